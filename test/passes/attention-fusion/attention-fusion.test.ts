import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Builder, checkModel, DataType, Value, type Model } from '../../../src/ir/index.js';
import { loadModel, serializeModel } from '../../../src/onnx/index.js';
import { runDce } from '../../../passes/dce.js';
import { runFuse } from '../../../passes/fuse.js';
import { applyPrune } from '../../../passes/lib/prune-apply.js';
import { requireLayers } from '../../../passes/lib/prune-layers.js';
import { emptyPruneSet } from '../../../passes/lib/prune-types.js';
import { analyzeLayers } from '../../../passes/analysis/layers.js';
import { attentionDeclineDiagnostics, fuseAttention, quantizeAttention } from '../../../passes/lib/attention-fusion.js';
import { runTopkAttention } from '../../../passes/topk-attention.js';
import { buildBert, smallConfig, type BertConfig } from '../../gen/bert.js';
import { DEV_JSONL, TINY_MODEL } from '../../support/paths.js';
import { devFeeds, runModel } from '../../support/ort.js';

function ctx(model: Model) {
  return {
    model,
    facts: new Map(),
    data: { names: () => [], get: () => Promise.reject(new Error('no data')) },
    report: () => {},
    progress: () => {},
    details: {},
  };
}

/** Token feeds with padding: row 0 full, row 1 padded after 5 tokens. Ids below `vocab`. */
function feeds(vocab: number, B = 2, S = 9): Record<string, ort.Tensor> {
  const ids = BigInt64Array.from({ length: B * S }, (_, i) => BigInt(1 + ((i * 37) % (vocab - 1))));
  const mask = BigInt64Array.from({ length: B * S }, (_, i) => (i >= S && i % S >= 5 ? 0n : 1n));
  return {
    input_ids: new ort.Tensor('int64', ids, [B, S]),
    attention_mask: new ort.Tensor('int64', mask, [B, S]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(B * S), [B, S]),
  };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function fuseAndCompare(model: Model, f: Record<string, ort.Tensor>) {
  const before = (await runModel(serializeModel(model), f)).logits!.data as Float32Array;
  const r = fuseAttention(model);
  runDce(ctx(model), {});
  expect(checkModel(model).filter((d) => d.severity === 'error')).toEqual([]);
  const after = (await runModel(serializeModel(model), f)).logits!.data as Float32Array;
  const scale = Math.max(...Array.from(before, Math.abs));
  return {
    r,
    diff: maxAbsDiff(before, after),
    scale,
    attention: model.graph.nodes().filter((n) => n.opType === 'Attention'),
  };
}

describe('attention fusion: valid cases (fused, logits equal to float32 rounding)', () => {
  it('golden SST-2 tiny model: both layers, mask_index from attention_mask', async () => {
    const model = loadModel(TINY_MODEL);
    const { r, diff, attention } = await fuseAndCompare(model, devFeeds(DEV_JSONL, 8));
    expect(r.fused).toEqual([0, 1]);
    expect(r.declined).toEqual([]);
    expect(attention).toHaveLength(2);
    for (const n of attention) {
      expect(n.domain).toBe('com.microsoft');
      expect(n.getInt('num_heads')).toBe(2);
      expect(n.attr('scale')).toBeUndefined(); // 0.125 = 1/sqrt(64)
      expect(n.input(1)!.constValue!.dims).toEqual([128, 384]);
      expect(n.input(3)!.producer()!.opType).toBe('Cast'); // int32 mask_index [B, S]
      expect(n.input(3)!.producer()!.input(0)!.name).toBe('attention_mask');
    }
    // one shared Cast
    expect(attention[0]!.input(3)).toBe(attention[1]!.input(3));
    expect(diff).toBeLessThan(1e-4);
    // the Softmax, scores MatMuls and head reshapes are gone
    expect(model.graph.nodes().filter((n) => n.opType === 'Softmax')).toHaveLength(0);
  });

  const variants: { name: string; cfg: Partial<BertConfig>; heads: number }[] = [
    { name: 'explicit head count in the reshape', cfg: { headsInReshape: 'explicit' }, heads: 4 },
    { name: 'decomposed LayerNorm (opset 14 style)', cfg: { layerNorm: 'decomposed' }, heads: 4 },
    { name: 'pre-norm', cfg: { norm: 'pre' }, heads: 4 },
    { name: 'ORT-fused (SkipLayerNormalization, BiasGelu)', cfg: { ortFused: true }, heads: 4 },
    { name: 'RoBERTa', cfg: { family: 'roberta' }, heads: 4 },
    { name: '2 heads of 16', cfg: { heads: 2 }, heads: 2 },
  ];
  for (const v of variants) {
    it(`generated model: ${v.name}`, async () => {
      const c = smallConfig(v.cfg);
      const model = buildBert(c);
      const { r, diff, scale, attention } = await fuseAndCompare(model, feeds(c.vocab));
      expect(r.declined).toEqual([]);
      expect(r.fused).toEqual([0, 1]);
      expect(attention.map((n) => n.getInt('num_heads'))).toEqual([v.heads, v.heads]);
      expect(diff).toBeLessThan(1e-5 * Math.max(1, scale));
    });
  }

  it('a scaling other than 1/sqrt(d) becomes the scale attribute', async () => {
    const c = smallConfig();
    const model = buildBert(c);
    const a = analyzeLayers(model);
    const mul = a.layers[1]!.attention.scaling.nodes[0]!;
    const b = new Builder(model.graph, mul);
    const ci = mul.input(1)!.producer()?.opType === 'Constant' || mul.input(1)!.constValue ? 1 : 0;
    mul.replaceInput(ci, b.scalarFloat('odd_scale', 0.5));
    const { r, diff, attention } = await fuseAndCompare(model, feeds(c.vocab));
    expect(r.fused).toEqual([0, 1]);
    expect(attention[0]!.attr('scale')).toBeUndefined();
    expect(attention[1]!.getFloat('scale')).toBeCloseTo(0.5);
    expect(diff).toBeLessThan(1e-4);
  });
});

describe('attention fusion: invalid cases (declined with a reason naming the node)', () => {
  it('SDPA export', () => {
    const model = buildBert(smallConfig({ attention: 'sdpa' }));
    const r = fuseAttention(model);
    expect(r.fused).toEqual([]);
    expect(r.declined).toHaveLength(2);
    expect(r.declined[0]!.reason).toMatch(/SDPA/);
    expect(r.declined[0]!.node).toMatch(/layer\.0/);
  });

  it('DistilBERT (mask by Where): left unfused', () => {
    const model = buildBert(smallConfig({ family: 'distilbert' }));
    const r = fuseAttention(model);
    expect(r.fused).toEqual([]);
    expect(r.declined.map((d) => d.reason).join('\n')).toMatch(/mask/);
  });

  it('top-k attention layer declined, the other layer fused', async () => {
    const model = loadModel(TINY_MODEL);
    await runTopkAttention({ ...ctx(model), threads: 1 }, { k: 4, layers: { include: [1], exclude: [] } });
    const r = fuseAttention(model);
    expect(r.fused).toEqual([0]);
    expect(r.declined).toHaveLength(1);
    expect(r.declined[0]!.layer).toBe(1);
    expect(r.declined[0]!.reason).toMatch(/top-k/);
    expect(r.declined[0]!.op).toBe('TopK');
    const f = devFeeds(DEV_JSONL, 4);
    const out = await runModel(serializeModel(model), f);
    expect(out.logits!.dims).toEqual([4, 2]);
  });

  it('pre-computed float mask given as a model input', () => {
    const model = loadModel(TINY_MODEL);
    const a = analyzeLayers(model);
    const old = a.layers[0]!.attention.mask.value!;
    const input = model.graph.addInput(
      new Value('extended_mask', { kind: 'tensor', elemType: DataType.FLOAT, shape: ['B', 1, 'S', 'S'] }),
    );
    old.replaceAllUsesWith(input);
    const r = fuseAttention(model);
    expect(r.fused).toEqual([]);
    expect(r.declined[0]!.reason).toMatch(/pre-computed/);
  });

  it('mask of the opposite polarity (1 = masked)', () => {
    const model = loadModel(TINY_MODEL);
    const a = analyzeLayers(model);
    const where = a.layers[0]!.attention.mask.value!.producer()!;
    const b = new Builder(model.graph, where);
    where.replaceInput(0, b.op1('Not', [where.input(0)], { name: 'flip' }));
    const r = fuseAttention(model);
    expect(r.fused).toEqual([]);
    expect(r.declined[0]!.reason).toMatch(/polarity/);
    expect(r.declined[0]!.node).toBe(where.name);
  });

  it('causal mask (positions compared)', () => {
    const model = buildBert(smallConfig());
    const a = analyzeLayers(model);
    const where = a.layers[0]!.attention.mask.value!.producer()!;
    const b = new Builder(model.graph, where);
    // And the padding mask with (q_pos >= k_pos), computed from the sequence length
    const ids = model.graph.inputs[0]!;
    const shape = b.op1('Shape', [ids]);
    const seq = b.op1('Gather', [shape, b.constInt64('one', [1], [])], { attrs: { axis: 0 } });
    const range = b.op1('Range', [b.constInt64('z', [0], []), seq, b.constInt64('st', [1], [])]);
    const col = b.op1('Unsqueeze', [range, b.constInt64('ax', [1])]);
    const causal = b.op1('GreaterOrEqual', [col, range]);
    where.replaceInput(0, b.op1('And', [where.input(0), causal]));
    const r = fuseAttention(model);
    expect(r.fused).toEqual([]);
    expect(r.declined[0]!.reason).toMatch(/causal/);
  });

  it('an intermediate value used outside the block (probabilities as a model output)', () => {
    const model = loadModel(TINY_MODEL);
    const a = analyzeLayers(model);
    model.graph.outputs.push(a.layers[1]!.attention.softmax!.output(0));
    const r = fuseAttention(model);
    expect(r.fused).toEqual([0]);
    expect(r.declined[0]!.layer).toBe(1);
    expect(r.declined[0]!.reason).toMatch(/graph output/);
    const ds = attentionDeclineDiagnostics(r, model.graph.name);
    expect(ds[0]!.code).toBe('AX3751');
    expect(ds[0]!.location).toMatchObject({ kind: 'node' });
  });

  it('already fused (com.microsoft Attention) is left alone', () => {
    const model = buildBert(smallConfig({ msAttention: true }));
    const r = fuseAttention(model);
    expect(r.fused).toEqual([]);
    expect(r.declined.every((d) => /already/.test(d.reason))).toBe(true);
  });
});

describe('the attention entry of the fuse pass', () => {
  it('fuse (all fusions) on the golden model: Attention + SkipLayerNormalization + BiasGelu, logits unchanged', async () => {
    const model = loadModel(TINY_MODEL);
    const f = devFeeds(DEV_JSONL, 8);
    const before = (await runModel(serializeModel(model), f)).logits!.data as Float32Array;
    const c = ctx(model);
    const r = runFuse(c, {});
    expect(r.changed).toBe(true);
    expect(r.stats?.attention).toBe(2);
    runDce(ctx(model), {});
    const ops = model.graph.nodes().map((n) => n.opType);
    expect(ops.filter((o) => o === 'Attention')).toHaveLength(2);
    expect(ops.filter((o) => o === 'Softmax')).toHaveLength(0);
    const after = (await runModel(serializeModel(model), f)).logits!.data as Float32Array;
    expect(maxAbsDiff(before, after)).toBeLessThan(1e-4);
  });

  it('fuse attention target onnx: left unfused, with a reason per layer', () => {
    const model = loadModel(TINY_MODEL);
    const diags: string[] = [];
    const r = runFuse(
      { ...ctx(model), report: (d) => diags.push(`${d.code} ${d.message}`) },
      { patterns: 'attention', target: 'onnx' },
    );
    expect(r.changed).toBe(false);
    expect(diags.filter((d) => d.startsWith('AX3201') && /target onnx/.test(d))).toHaveLength(2);
  });

  it('fuse attention on an SDPA export declines naming the layer', () => {
    const model = buildBert(smallConfig({ attention: 'sdpa' }));
    const diags: string[] = [];
    runFuse({ ...ctx(model), report: (d) => diags.push(d.message) }, { patterns: 'attention' });
    expect(diags.some((d) => /layer 0: SDPA/.test(d))).toBe(true);
  });
});

describe('int8 attention: QAttention', () => {
  for (const perChannel of [false, true]) {
    it(`Attention -> DynamicQuantizeLinear + QAttention (${perChannel ? 'per column' : 'per tensor'}), predictions kept`, async () => {
      const model = loadModel(TINY_MODEL);
      const f = devFeeds(DEV_JSONL, 32);
      const before = (await runModel(serializeModel(model), f)).logits!.data as Float32Array;
      fuseAttention(model);
      const q = quantizeAttention(model, { perChannel });
      runDce(ctx(model), {});
      expect(q.quantized).toBe(2);
      expect(q.bytesAfter).toBeLessThan(q.bytesBefore / 3.8);
      const ops = model.graph.nodes().map((n) => n.opType);
      expect(ops.filter((o) => o === 'QAttention')).toHaveLength(2);
      expect(ops.filter((o) => o === 'Attention')).toHaveLength(0);
      const after = (await runModel(serializeModel(model), f)).logits!.data as Float32Array;
      // int8: close, not equal; the predicted class agrees on (nearly) every sentence
      const d = maxAbsDiff(before, after);
      expect(d).toBeGreaterThan(0);
      expect(d).toBeLessThan(0.3);
      let agree = 0;
      for (let i = 0; i < 32; i++)
        if (before[2 * i]! > before[2 * i + 1]! === after[2 * i]! > after[2 * i + 1]!) agree++;
      expect(agree).toBeGreaterThanOrEqual(31);
    });
  }
});

describe('attention fusion after head pruning (per-layer head counts)', () => {
  it('layers with 3, 4 and 4 heads: num_heads per layer, Q/K/V width < hidden, logits unchanged', async () => {
    const c = smallConfig({ layers: 3 });
    const model = buildBert(c);
    const layers = requireLayers(model);
    const set = emptyPruneSet(layers, 16);
    set.layers[0]!.heads = [1];
    set.layers[2]!.heads = [0, 3];
    applyPrune(model, layers, set);
    runDce(ctx(model), {});
    const { r, diff, scale, attention } = await fuseAndCompare(model, feeds(c.vocab));
    expect(r.declined).toEqual([]);
    expect(attention.map((n) => n.getInt('num_heads'))).toEqual([3, 4, 2]);
    expect(attention.map((n) => n.input(1)!.constValue!.dims)).toEqual([
      [32, 72],
      [32, 96],
      [32, 48],
    ]);
    expect(diff).toBeLessThan(1e-5 * Math.max(1, scale));
  });
});
