import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { checkModel, type Model } from '../../src/ir/index.js';
import { loadModel, serializeModel } from '../../src/onnx/index.js';
import { TINY_MODEL } from '../support/paths.js';
import { BERT_TINY, buildBert, smallConfig, type BertConfig } from './bert.js';

const opSeq = (m: Model) => m.graph.nodes().map((n) => n.qualifiedOp);

function feeds(names: readonly string[], B: number, S: number, vocab: number, pad = true): Record<string, ort.Tensor> {
  const ids = new BigInt64Array(B * S);
  const mask = new BigInt64Array(B * S);
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++) {
      ids[b * S + s] = BigInt((b * 7 + s * 13 + 2) % vocab);
      mask[b * S + s] = !pad || s < S - b ? 1n : 0n; // row b has b padding positions
    }
  const all: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', ids, [B, S]),
    attention_mask: new ort.Tensor('int64', mask, [B, S]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(B * S), [B, S]),
  };
  return Object.fromEntries(names.map((n) => [n, all[n]!]));
}

export async function runGenerated(m: Model, B = 2, S = 5, pad = true): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(serializeModel(m), {
    graphOptimizationLevel: 'disabled',
    intraOpNumThreads: 1,
  });
  const out = await s.run(feeds(s.inputNames, B, S, 100, pad));
  await s.release();
  expect(s.outputNames).toEqual(['logits']);
  return out.logits!.data as Float32Array;
}

describe('generator at the bert-tiny configuration', () => {
  const real = loadModel(TINY_MODEL);
  const gen = buildBert(BERT_TINY);

  it('has the real export op sequence, node for node', () => {
    expect(opSeq(gen)).toEqual(opSeq(real));
  });

  it('has the same inputs, outputs and initializer shapes', () => {
    const io = (m: Model) => ({
      inputs: m.graph.inputs.map((v) => [v.name, v.elemType, v.shape]),
      outputs: m.graph.outputs.map((v) => [v.name, v.elemType, v.shape]),
      params: m.graph.initializers.map((v) => v.constValue!.dims.join('x')).sort(),
    });
    expect(io(gen)).toEqual(io(real));
  });

  it('passes the checker and runs in onnxruntime with [B, 2] logits', async () => {
    expect(checkModel(gen).filter((d) => d.severity === 'error')).toEqual([]);
    const logits = await runGenerated(gen, 3, 7);
    expect(logits.length).toBe(6);
    expect([...logits].every(Number.isFinite)).toBe(true);
  });

  it('is deterministic (same config, same bytes)', () => {
    const a = serializeModel(buildBert(smallConfig()));
    const b = serializeModel(buildBert(smallConfig()));
    expect(Buffer.compare(a, b)).toBe(0);
    const c = serializeModel(buildBert(smallConfig({ seed: 2 })));
    expect(Buffer.compare(a, c)).not.toBe(0);
  });

  it('keeps weights lazy until written', () => {
    const m = buildBert({ ...BERT_TINY, layers: 12, hidden: 768, heads: 12, ffn: 3072 });
    const kinds = new Set(m.graph.initializers.map((v) => v.constValue!.storageKind));
    expect([...kinds]).toEqual(['lazy']);
  });
});

const VARIANTS: [string, Partial<BertConfig>][] = [
  ['decomposed LayerNorm', { layerNorm: 'decomposed' }],
  ['sdpa attention', { attention: 'sdpa' }],
  ['explicit heads', { headsInReshape: 'explicit' }],
  ['distilbert', { family: 'distilbert', headsInReshape: 'explicit' }],
  ['roberta', { family: 'roberta' }],
  ['pre-norm', { norm: 'pre' }],
  ['tanh-gelu', { activation: 'tanh-gelu' }],
  ['relu', { activation: 'relu' }],
  ['gelu-op', { activation: 'gelu-op' }],
  ['gelu-op decomposed', { activation: 'gelu-op', layerNorm: 'decomposed' }],
  ['ortFused', { ortFused: true }],
  ['msAttention', { msAttention: true }],
  ['msAttention ortFused', { msAttention: true, ortFused: true }],
];

describe('generator variants run in onnxruntime', () => {
  it.each(VARIANTS)('%s', async (_, over) => {
    const m = buildBert(smallConfig(over));
    expect(checkModel(m).filter((d) => d.severity === 'error')).toEqual([]);
    const logits = await runGenerated(m);
    expect(logits.length).toBe(4);
    expect([...logits].every(Number.isFinite)).toBe(true);
  });

  it('eager, sdpa, decomposed, explicit, ORT-fused and MS Attention forms compute the same function', async () => {
    const a = await runGenerated(buildBert(smallConfig()));
    const b = await runGenerated(buildBert(smallConfig({ attention: 'sdpa' })));
    const c = await runGenerated(buildBert(smallConfig({ layerNorm: 'decomposed' })));
    const d = await runGenerated(buildBert(smallConfig({ headsInReshape: 'explicit' })));
    const e = await runGenerated(buildBert(smallConfig({ ortFused: true })));
    const f = await runGenerated(buildBert(smallConfig({ msAttention: true })));
    const g = await runGenerated(buildBert(smallConfig({ msAttention: true, ortFused: true })));
    for (const o of [b, c, d, e, f, g]) for (let i = 0; i < a.length; i++) expect(o[i]).toBeCloseTo(a[i]!, 5);
    // the mask matters: row 0 has no padding, row 1 has one padded position
    const u = await runGenerated(buildBert(smallConfig()), 2, 5, false);
    expect(u[0]).toBeCloseTo(a[0]!, 6);
    expect(Math.abs(u[2]! - a[2]!)).toBeGreaterThan(1e-4);
    // and the weights matter: another seed gives other logits
    const h = await runGenerated(buildBert(smallConfig({ seed: 7 })));
    expect(Math.max(...[...h].map((x, i) => Math.abs(x - a[i]!)))).toBeGreaterThan(1e-3);
  });
});

describe('generator command line', () => {
  it('parses presets and options', async () => {
    const { parseGenArgs } = await import('./cli.js');
    const r = parseGenArgs(['o.onnx', '--preset', 'base', '--layers', '6', '--norm', 'pre', '--ort-fused']);
    expect(r.out).toBe('o.onnx');
    expect([r.config.layers, r.config.hidden, r.config.heads, r.config.ffn, r.config.norm, r.config.ortFused]).toEqual([
      6,
      768,
      12,
      3072,
      'pre',
      true,
    ]);
    expect(() => parseGenArgs(['o.onnx', '--layers', 'x'])).toThrow('--layers: expected a positive integer');
    expect(() => parseGenArgs(['o.onnx', '--bogus'])).toThrow("unknown option '--bogus'");
  });
});
