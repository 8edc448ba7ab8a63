import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Builder, DataType, Graph, Model, Value, tensorType } from '../../../src/ir/index.js';
import { serializeModel } from '../../../src/onnx/index.js';
import { recognizeLayers } from '../../../passes/lib/prune-layers.js';
import '../../../passes/decompose.js';
import { buildBert, smallConfig } from '../../gen/bert.js';
import { genFeeds, maxAbsDiff, opCounts, run, runPass } from '../fuse/support.js';

const D = 8;
const rnd = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.3));

/** A one-node model y = OP(x, ...constant inputs) over x[2, 3, D], at the given default-domain opset. */
function single(
  op: string,
  extra: (b: Builder) => (Value | null)[],
  opts: { opset?: number; attrs?: Record<string, number>; outputs?: number } = {},
): Model {
  const g = new Graph('one');
  const x = g.addInput(new Value('x', tensorType(DataType.FLOAT, [2, 3, D])));
  const b = new Builder(g);
  const outs = b.op(op, [x, ...extra(b)], {
    domain: 'com.microsoft',
    name: op,
    attrs: opts.attrs ?? {},
    outputs: opts.outputs ?? 1,
    outputNames: ['y', 'mean', 'inv_std', 'sum'].slice(0, opts.outputs ?? 1),
  });
  for (const o of outs) {
    o.type = tensorType(DataType.FLOAT, o.name === 'y' || o.name === 'sum' ? [2, 3, D] : [2, 3, 1]);
    g.outputs.push(o);
  }
  const m = new Model(g);
  m.irVersion = 8;
  m.opsetImports.set('', opts.opset ?? 17);
  m.opsetImports.set('com.microsoft', 1);
  return m;
}

const X = {
  x: new ort.Tensor(
    'float32',
    rnd(2 * 3 * D, 1).map((v) => v * 3),
    [2, 3, D],
  ),
};

async function outputs(m: Model): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(serializeModel(m), { graphOptimizationLevel: 'disabled' });
  const r = await s.run(X);
  await s.release();
  return Object.fromEntries(Object.entries(r).map(([k, t]) => [k, t.data as Float32Array]));
}

const skipInputs = (b: Builder) => [
  b.constFloat('skip', rnd(2 * 3 * D, 2), [2, 3, D]),
  b.constFloat('gamma', rnd(D, 3), [D]),
  b.constFloat('beta', rnd(D, 4), [D]),
  b.constFloat('bias', rnd(D, 5), [D]),
];

describe('decompose: each fused op equals its standard-op rewrite in onnxruntime (table)', () => {
  const cases: { name: string; model: () => Model; ops: Record<string, number> }[] = [
    {
      name: 'SkipLayerNormalization with bias, opset 17: Add, Add, LayerNormalization',
      model: () => single('SkipLayerNormalization', skipInputs, { attrs: { epsilon: 1e-5 } }),
      ops: { Add: 2, LayerNormalization: 1 },
    },
    {
      name: 'SkipLayerNormalization, opset 14: the LayerNorm written out as the opset-14 export does',
      model: () => single('SkipLayerNormalization', skipInputs, { opset: 14, attrs: { epsilon: 1e-5 } }),
      ops: { ReduceMean: 2, Sqrt: 1, Div: 1, LayerNormalization: 0 },
    },
    {
      name: 'SkipLayerNormalization without beta and bias, its sum output used',
      model: () => {
        const m = single(
          'SkipLayerNormalization',
          (b) => [b.constFloat('skip', rnd(2 * 3 * D, 2), [2, 3, D]), b.constFloat('gamma', rnd(D, 3), [D])],
          { outputs: 4 },
        );
        // y and the input+skip sum are the graph outputs; mean and inv_std are unused
        m.graph.outputs = m.graph.outputs.filter((o) => o.name === 'y' || o.name === 'sum');
        return m;
      },
      ops: { Add: 1, LayerNormalization: 1 },
    },
    {
      name: 'BiasGelu: Add then the Erf GELU',
      model: () => single('BiasGelu', (b) => [b.constFloat('bias', rnd(D, 5), [D])]),
      ops: { Add: 2, Erf: 1 },
    },
    {
      name: 'com.microsoft Gelu: the Erf GELU',
      model: () => single('Gelu', () => []),
      ops: { Erf: 1 },
    },
    {
      name: 'FastGelu with bias: Add then the tanh GELU',
      model: () => single('FastGelu', (b) => [b.constFloat('bias', rnd(D, 5), [D])]),
      ops: { Tanh: 1 },
    },
  ];
  for (const c of cases)
    it(c.name, async () => {
      const before = c.model();
      const after = c.model();
      const r = await runPass(after, 'decompose');
      expect(r.result.changed).toBe(true);
      const counts = opCounts(after);
      expect(Object.keys(counts).filter((k) => k.startsWith('com.microsoft'))).toEqual([]);
      for (const [op, n] of Object.entries(c.ops)) expect(counts[op] ?? 0, op).toBe(n);
      // graph outputs keep their names and values
      expect(after.graph.outputs.map((o) => o.name)).toEqual(before.graph.outputs.map((o) => o.name));
      const [a, b] = await Promise.all([outputs(before), outputs(after)]);
      for (const k of Object.keys(a)) expect(maxAbsDiff(a[k]!, b[k]!), k).toBeLessThan(1e-5);
    });
});

describe('decompose: declines and options', () => {
  it('a SkipLayerNormalization whose mean output is used stays, with AX3851 naming it', async () => {
    const m = single('SkipLayerNormalization', skipInputs, { outputs: 2 });
    const r = await runPass(m, 'decompose');
    expect(r.result.changed).toBe(false);
    expect(r.diagnostics.map((d) => [d.code, d.message])).toEqual([
      [
        'AX3851',
        "did not decompose 'SkipLayerNormalization' (com.microsoft.SkipLayerNormalization): its mean output 'mean' is used",
      ],
    ]);
  });
  it('an export with nothing fused is left as it is, and the summary says so', async () => {
    const m = buildBert(smallConfig({ seed: 3 }));
    const r = await runPass(m, 'decompose');
    expect(r.result.changed).toBe(false);
    expect(r.result.summary).toBe('no SkipLayerNormalization, BiasGelu, Gelu or FastGelu node to decompose');
  });
  it('kinds limit what is decomposed', async () => {
    const m = buildBert(smallConfig({ ortFused: true, seed: 3 }));
    await runPass(m, 'decompose', { kinds: [{ name: 'gelu' }] });
    const c = opCounts(m);
    expect(c['com.microsoft.BiasGelu']).toBeUndefined();
    expect(c['com.microsoft.SkipLayerNormalization']).toBeGreaterThan(0);
  });
});

describe('decompose: an onnxruntime-fused encoder becomes prunable again', () => {
  it('generated ORT-fused BERT: same outputs, no contrib ops left, every layer recognized by the pruner', async () => {
    const cfg = smallConfig({ ortFused: true, seed: 3 });
    const before = buildBert(cfg);
    const after = buildBert(cfg);
    expect(recognizeLayers(before).layers.length).toBe(0);
    const r = await runPass(after, 'decompose');
    expect(r.result.stats).toEqual({ SkipLayerNormalization: 2 * cfg.layers, BiasGelu: cfg.layers });
    const layers = recognizeLayers(after).layers;
    expect(layers.length).toBe(cfg.layers);
    expect(layers.every((l) => l.attention?.heads === cfg.heads && l.ffn?.size === cfg.ffn)).toBe(true);
    const feeds = genFeeds(cfg.vocab);
    expect(maxAbsDiff(await run(before, feeds), await run(after, feeds))).toBeLessThan(1e-5);
  });
});
