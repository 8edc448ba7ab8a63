import * as fc from 'fast-check';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { Model } from '../../../src/ir/index.js';
import { decodeModel, loadModel, serializeModel } from '../../../src/onnx/index.js';
import { PassManager } from '../../../src/pass/index.js';
import '../../../passes/decompose.js';
import { buildGateModel, gateFeeds } from '../../../passes/lib/gates.js';
import { applyPrune } from '../../../passes/lib/prune-apply.js';
import { recognizeLayers } from '../../../passes/lib/prune-layers.js';
import { groupCount, normalizePruneSet, type PruneLayer, type PruneSet } from '../../../passes/lib/prune-types.js';
import { buildBert, smallConfig, type BertConfig } from '../../gen/bert.js';
import { DEV_JSONL, TINY_MODEL } from '../../support/paths.js';
import { devFeeds } from '../../support/ort.js';

const opts: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 };

async function run(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, opts);
  const f: Record<string, ort.Tensor> = {};
  for (const n of s.inputNames) f[n] = feeds[n]!;
  const out = await s.run(f);
  await s.release();
  return out[s.outputNames[0]!]!.data as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** An arbitrary prune set for the layers: any heads, groups and blocks (including all of them). */
function pruneSetArb(layers: PruneLayer[], groupSize: number): fc.Arbitrary<PruneSet> {
  return fc
    .tuple(
      ...layers.map((l) =>
        fc.record({
          attention: fc.integer({ min: 0, max: 3 }).map((x) => x === 0),
          ffn: fc.integer({ min: 0, max: 3 }).map((x) => x === 0),
          heads: fc.subarray([...Array(l.attention!.heads).keys()]),
          groups: fc.subarray([...Array(groupCount(l.ffn!.size, groupSize)).keys()]),
        }),
      ),
    )
    .map((ls) => ({
      groupSize,
      layers: ls.map((x, i) => ({ layer: layers[i]!.index, ...x })),
    }));
}

function clone(m: Model): Model {
  return decodeModel(serializeModel(m));
}

describe('pruned model equals the gate-masked model', () => {
  const original = loadModel(TINY_MODEL);
  const layers = recognizeLayers(original).layers;
  const feeds = devFeeds(DEV_JSONL, 6, 100);
  const B = feeds.input_ids!.dims[0]!;

  it('recognizes both layers of the tiny model', () => {
    expect(layers.map((l) => [l.index, l.norm, l.attention?.heads, l.attention?.headSize, l.ffn?.size])).toEqual([
      [0, 'post', 2, 64, 512],
      [1, 'post', 2, 64, 512],
    ]);
  });

  for (const groupSize of [64, 100]) {
    it(`random heads/groups/blocks, group size ${groupSize} (real tiny model)`, async () => {
      const gm = buildGateModel(original, layers, groupSize);
      await fc.assert(
        fc.asyncProperty(pruneSetArb(layers, groupSize), async (set) => {
          const m = clone(original);
          const ml = recognizeLayers(m).layers;
          const stats = applyPrune(m, ml, set);
          const norm = normalizePruneSet(set, layers);
          const empty = norm.layers.every((l) => !l.attention && !l.ffn && !l.heads.length && !l.groups.length);
          expect(stats.paramsRemoved > 0).toBe(!empty);
          const pruned = await run(serializeModel(m), feeds);
          const masked = await run(gm.bytes, { ...feeds, ...gateFeeds(gm, [norm], B) });
          expect(maxAbsDiff(pruned, masked)).toBeLessThan(1e-4);
          if (!empty) {
            // the check can fail: the unmasked gate model differs from the pruned one
            const full = await run(gm.bytes, { ...feeds, ...gateFeeds(gm, [{ groupSize, layers: [] }], B) });
            expect(maxAbsDiff(pruned, full)).toBeGreaterThan(1e-4);
          }
        }),
        { numRuns: 8, seed: 42 },
      );
    });
  }
});

/** Token feeds for a generated model: a few rows of random ids below `vocab`, with padding in one row. */
function genFeeds(vocab: number, B: number, S: number, seed: number): Record<string, ort.Tensor> {
  let a = seed;
  const rnd = () => (a = (a * 1103515245 + 12345) % 2147483648) / 2147483648;
  const ids = new BigInt64Array(B * S);
  const mask = new BigInt64Array(B * S);
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++) {
      const real = b === 0 && s >= S - 2 ? false : true;
      ids[b * S + s] = real ? BigInt(1 + Math.floor(rnd() * (vocab - 1))) : 0n;
      mask[b * S + s] = real ? 1n : 0n;
    }
  return {
    input_ids: new ort.Tensor('int64', ids, [B, S]),
    attention_mask: new ort.Tensor('int64', mask, [B, S]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(B * S), [B, S]),
  };
}

describe('pruned model equals the gate-masked model on generated export variants', () => {
  const variants: [string, Partial<BertConfig>][] = [
    ['HF default ([B,S,-1,d] reshapes)', {}],
    ['explicit head counts in reshapes', { headsInReshape: 'explicit' }],
    ['pre-norm', { norm: 'pre' }],
    ['sdpa-style scaling and mask', { attention: 'sdpa' }],
    ['decomposed LayerNorm (opset 14)', { layerNorm: 'decomposed' }],
    ['relu activation, 3 layers', { activation: 'relu', layers: 3 }],
    ['fused com.microsoft Attention (packed QKV, num_heads)', { msAttention: true }],
    ['onnxruntime-fused (SkipLayerNormalization, BiasGelu), after decompose', { ortFused: true }],
  ];
  for (const [name, over] of variants) {
    it(name, async () => {
      const cfg = smallConfig({ ...over, seed: 7 });
      const original = buildBert(cfg);
      if (cfg.ortFused) await new PassManager({ cleanup: false }).run(original, [{ pass: 'decompose', options: {} }]);
      const layers = recognizeLayers(original).layers;
      expect(layers.length).toBe(cfg.layers);
      expect(layers.every((l) => l.attention?.heads === cfg.heads && l.ffn?.size === cfg.ffn)).toBe(true);
      const feeds = genFeeds(cfg.vocab, 3, 7, 11);
      const groupSize = 16;
      const gm = buildGateModel(original, layers, groupSize);
      await fc.assert(
        fc.asyncProperty(pruneSetArb(layers, groupSize), async (set) => {
          const m = clone(original);
          applyPrune(m, recognizeLayers(m).layers, set);
          const norm = normalizePruneSet(set, layers);
          const pruned = await run(serializeModel(m), feeds);
          const masked = await run(gm.bytes, { ...feeds, ...gateFeeds(gm, [norm], 3) });
          expect(maxAbsDiff(pruned, masked)).toBeLessThan(1e-4);
        }),
        { numRuns: 4, seed: 5 },
      );
    });
  }
});

describe('value_info after pruning', () => {
  it('stale intermediate shapes are dropped (element types kept) and the model runs', async () => {
    const m = clone(loadModel(TINY_MODEL));
    const layers = recognizeLayers(m).layers;
    const q = layers[0]!.attention!.q.biasAdd!.output(0);
    q.type = { kind: 'tensor', elemType: 1, shape: ['batch_size', 'sequence_length', 128] };
    m.graph.valueInfo.push(q);
    applyPrune(m, layers, {
      groupSize: 64,
      layers: [{ layer: 0, attention: false, ffn: false, heads: [0], groups: [] }],
    });
    expect(q.type).toEqual({ kind: 'tensor', elemType: 1 });
    const out = await run(serializeModel(m), devFeeds(DEV_JSONL, 2));
    expect(out.length).toBe(4);
  });
});
