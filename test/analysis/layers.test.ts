import { describe, expect, it } from 'vitest';
import { DataType, Value, type Model, type Node } from '../../src/ir/index.js';
import { loadModel } from '../../src/onnx/index.js';
import { analyzeLayers, projections, type LayerAnalysis } from '../../passes/analysis/layers.js';
import { TINY_MODEL } from '../support/paths.js';
import { buildBert, smallConfig, type BertConfig } from '../gen/bert.js';

/** Every structural invariant a consumer relies on, checked against the config the model was generated from. */
function checkAgainstConfig(a: LayerAnalysis, c: Pick<BertConfig, 'layers' | 'hidden' | 'heads' | 'ffn' | 'labels'>) {
  expect(a.layers.length).toBe(c.layers);
  const seen = new Set<Node>();
  a.layers.forEach((l, i) => {
    expect(l.index).toBe(i);
    expect([l.hidden, l.heads, l.headSize, l.ffnSize]).toEqual([c.hidden, c.heads, c.hidden / c.heads, c.ffn]);
    if (i > 0) expect(l.input).toBe(a.layers[i - 1]!.output);
    const p = projections(l);
    for (const [role, lin] of Object.entries(p)) {
      const w = lin.weight.constValue!;
      expect(w, role).toBeDefined();
      const [inF, outF] =
        role === 'up' ? [c.hidden, c.ffn] : role === 'down' ? [c.ffn, c.hidden] : [c.hidden, c.hidden];
      expect([lin.inFeatures, lin.outFeatures], role).toEqual([inF, outF]);
      const dims =
        lin.form === 'fused-qkv' ? [c.hidden, 3 * c.hidden] : lin.layout === 'in-out' ? [inF, outF] : [outF, inF];
      expect([...w.dims], role).toEqual(dims);
      expect(lin.matmul.inputs.includes(lin.weight), role).toBe(true);
      expect(lin.bias, `${role} bias`).toBeDefined();
      expect(l.nodes.includes(lin.matmul), `${role} in layer nodes`).toBe(true);
    }
    expect(l.norms.attention.gamma.constValue!.dims).toEqual([c.hidden]);
    expect(l.norms.ffn.gamma.constValue!.dims).toEqual([c.hidden]);
    if (l.attention.softmax) expect(l.nodes.includes(l.attention.softmax)).toBe(true);
    for (const n of l.nodes) {
      expect(seen.has(n), `node ${n.name} in two layers`).toBe(false);
      seen.add(n);
    }
  });
  expect(a.embeddings?.word).toBeDefined();
  expect(a.head?.classifier?.outFeatures).toBe(c.labels);
}

describe('layer recognition on the real bert-tiny export', () => {
  const model = loadModel(TINY_MODEL);
  const a = analyzeLayers(model);

  it('recognizes 2 post-norm layers of 2 heads x 64, FFN 512, erf GELU, nothing left over', () => {
    expect(a.unrecognized).toEqual([]);
    checkAgainstConfig(a, { layers: 2, hidden: 128, heads: 2, ffn: 512, labels: 2 });
    for (const l of a.layers) {
      expect([l.norm, l.attentionKind, l.activation]).toEqual(['post', 'softmax', 'erf-gelu']);
      expect(l.attention.scaling.form).toBe('mul-scores');
      expect(l.attention.scaling.factor).toBeCloseTo(0.125, 7);
      expect(l.attention.mask.form).toBe('add');
      expect(l.norms.attention.form).toBe('LayerNormalization');
    }
  });

  it('points at the exported nodes and parameters of each layer', () => {
    const l1 = a.layers[1]!;
    const p = '/m/bert/encoder/layer.1/';
    expect(l1.attention.q.matmul.name).toBe(`${p}attention/self/query/MatMul`);
    expect(l1.attention.q.biasAdd!.name).toBe(`${p}attention/self/query/Add`);
    expect(l1.attention.q.bias!.name).toBe('m.bert.encoder.layer.1.attention.self.query.bias');
    expect(l1.attention.k.bias!.name).toBe('m.bert.encoder.layer.1.attention.self.key.bias');
    expect(l1.attention.v.bias!.name).toBe('m.bert.encoder.layer.1.attention.self.value.bias');
    expect(l1.attention.o.bias!.name).toBe('m.bert.encoder.layer.1.attention.output.dense.bias');
    expect(l1.ffn.up.bias!.name).toBe('m.bert.encoder.layer.1.intermediate.dense.bias');
    expect(l1.ffn.down.bias!.name).toBe('m.bert.encoder.layer.1.output.dense.bias');
    expect(l1.norms.attention.gamma.name).toBe('m.bert.encoder.layer.1.attention.output.LayerNorm.weight');
    expect(l1.norms.ffn.beta!.name).toBe('m.bert.encoder.layer.1.output.LayerNorm.bias');
    expect(l1.attention.softmax!.name).toBe(`${p}attention/self/Softmax`);
    expect(l1.attention.contextReshape!.name).toBe(`${p}attention/self/Reshape_3`);
    expect(l1.residuals.attention.name).toBe(`${p}attention/output/Add`);
    expect(l1.residuals.ffn.name).toBe(`${p}output/Add`);
    expect(l1.ffn.activationNodes.map((n) => n.opType)).toEqual(['Div', 'Erf', 'Add', 'Mul', 'Mul']);
    expect(a.embeddings!.word!.table.name).toBe('m.bert.embeddings.word_embeddings.weight');
    expect(a.embeddings!.position!.table.name).toBe('m.bert.embeddings.position_embeddings.weight');
    expect(a.embeddings!.tokenType!.table.name).toBe('m.bert.embeddings.token_type_embeddings.weight');
    expect(a.head!.pooler!.weight.name).toBe('m.bert.pooler.dense.weight');
    expect(a.head!.pooler!.layout).toBe('out-in');
    expect(a.head!.classifier!.weight.name).toBe('m.classifier.weight');
    // the mask is shared by both layers: it belongs to neither
    const mask = a.layers[0]!.attention.mask.value!;
    expect(mask).toBe(l1.attention.mask.value);
    expect(a.layers.some((l) => l.nodes.includes(mask.producer()!))).toBe(false);
  });

  it('is deterministic', () => {
    const b = analyzeLayers(loadModel(TINY_MODEL));
    const names = (x: LayerAnalysis) => x.layers.map((l) => l.nodes.map((n) => n.name));
    expect(names(b)).toEqual(names(a));
  });
});

interface Expect {
  norm: 'post' | 'pre';
  attention: string;
  activation: string;
  scaling: string;
  mask: string;
  layerNorm: string;
}
const base: Expect = {
  norm: 'post',
  attention: 'softmax',
  activation: 'erf-gelu',
  scaling: 'mul-scores',
  mask: 'add',
  layerNorm: 'LayerNormalization',
};

const CASES: [string, Partial<BertConfig>, Partial<Expect>][] = [
  ['default (current HF export)', {}, {}],
  ['decomposed LayerNorm (opset 14)', { layerNorm: 'decomposed' }, { layerNorm: 'decomposed' }],
  ['SDPA attention', { attention: 'sdpa' }, { scaling: 'q-and-k' }],
  [
    'explicit head count (older export: Div scaling, two K Transposes, -10000 mask)',
    { headsInReshape: 'explicit' },
    { scaling: 'div-scores' },
  ],
  ['explicit head count with SDPA', { headsInReshape: 'explicit', attention: 'sdpa' }, { scaling: 'q-and-k' }],
  ['DistilBERT', { family: 'distilbert', headsInReshape: 'explicit' }, { scaling: 'q', mask: 'where' }],
  ['RoBERTa', { family: 'roberta' }, {}],
  ['pre-norm', { norm: 'pre' }, { norm: 'pre' }],
  ['tanh GELU', { activation: 'tanh-gelu' }, { activation: 'tanh-gelu' }],
  ['ReLU', { activation: 'relu' }, { activation: 'relu' }],
  ['ONNX Gelu (opset 20)', { activation: 'gelu-op' }, { activation: 'gelu' }],
  [
    'ORT-fused (SkipLayerNormalization, BiasGelu)',
    { ortFused: true },
    { activation: 'bias-gelu', layerNorm: 'SkipLayerNormalization' },
  ],
  [
    'com.microsoft Attention',
    { msAttention: true },
    { attention: 'ms-attention', scaling: 'fused', mask: 'mask-index' },
  ],
  [
    'com.microsoft Attention, ORT-fused',
    { msAttention: true, ortFused: true },
    {
      attention: 'ms-attention',
      scaling: 'fused',
      mask: 'mask-index',
      activation: 'bias-gelu',
      layerNorm: 'SkipLayerNormalization',
    },
  ],
  [
    'pre-norm, decomposed, SDPA, tanh GELU, 3 layers',
    { norm: 'pre', layerNorm: 'decomposed', attention: 'sdpa', activation: 'tanh-gelu', layers: 3 },
    { norm: 'pre', layerNorm: 'decomposed', scaling: 'q-and-k', activation: 'tanh-gelu' },
  ],
  [
    'DistilBERT pre-norm ReLU, 8 heads',
    { family: 'distilbert', norm: 'pre', activation: 'relu', heads: 8, hidden: 64 },
    { norm: 'pre', scaling: 'q', mask: 'where', activation: 'relu' },
  ],
];

describe('layer recognition on every generator variant', () => {
  it.each(CASES)('%s', (_, over, exp) => {
    const c = smallConfig(over);
    const a = analyzeLayers(buildBert(c));
    expect(a.unrecognized).toEqual([]);
    checkAgainstConfig(a, c);
    const want = { ...base, ...exp };
    for (const l of a.layers) {
      expect({
        norm: l.norm,
        attention: l.attentionKind,
        activation: l.activation,
        scaling: l.attention.scaling.form,
        mask: l.attention.mask.form,
        layerNorm: l.norms.attention.form,
      }).toEqual(want);
      expect(l.attention.scaling.factor).toBeCloseTo(1 / Math.sqrt(l.headSize), 6);
    }
    if (c.norm === 'pre') expect(a.finalNorm).toBeDefined();
    if (c.ortFused)
      for (const l of a.layers) expect(l.attention.o.biasFusedInto?.opType).toBe('SkipLayerNormalization');
  });
});

/** Replace input `i` of the first node matching `pick` by a fresh graph input (so it is no longer a constant). */
function unconst(m: Model, pick: (n: Node) => boolean, i: number): Node {
  const n = m.graph.nodes().find(pick)!;
  const v = m.graph.addInput(new Value('w_in', { kind: 'tensor', elemType: DataType.FLOAT, shape: [32, 32] }));
  n.replaceInput(i, v);
  return n;
}

describe('what is not recognized is explained, naming nodes', () => {
  it('a Q projection whose weight is not a constant', () => {
    const m = buildBert(smallConfig());
    unconst(m, (x) => x.name.endsWith('layer.1/attention/self/query/MatMul'), 1);
    const a = analyzeLayers(m);
    expect(a.layers.length).toBe(1);
    expect(a.unrecognized[0]!.node).toBe('/m/bert/encoder/layer.1/attention/self/query/Add');
    expect(a.unrecognized[0]!.reason).toMatch(/^Q projection: expected MatMul\(x, W\) \+ Add\(bias\)/);
    // K, V, O, FFN up/down of layer 1, the pooler and the classifier are then left over, and listed
    const rest = a.unrecognized.slice(1);
    expect(rest.map((u) => u.node.replace(/^.*layer\.1\//, ''))).toEqual([
      'attention/self/key/MatMul',
      'attention/self/value/MatMul',
      'attention/output/dense/MatMul',
      'intermediate/dense/MatMul',
      'output/dense/MatMul',
      '/m/bert/pooler/dense/Gemm',
      '/m/classifier/Gemm',
    ]);
  });

  it('a Softmax over the wrong axis', () => {
    const m = buildBert(smallConfig());
    const sm = m.graph.nodes().find((x) => x.opType === 'Softmax')!;
    sm.setAttr('axis', 1);
    const a = analyzeLayers(m);
    expect(a.layers.map((l) => l.index)).toEqual([0]);
    expect(a.unrecognized).toContainEqual({
      node: sm.name,
      op: 'Softmax',
      reason: 'Softmax is not over the last axis (keys)',
    });
    // the projections of the unrecognized layer are listed too
    expect(a.unrecognized.filter((u) => u.reason.startsWith('projection with a constant weight'))).toHaveLength(6);
  });

  it('a residual that skips the layer', () => {
    const m = buildBert(smallConfig({ layers: 1 }));
    const add = m.graph.nodes().find((x) => x.name.endsWith('layer.0/output/Add'))!;
    const emb = m.graph.nodes().find((x) => x.name === '/m/bert/embeddings/LayerNorm/LayerNormalization')!;
    add.replaceInput(1, emb.output(0));
    const a = analyzeLayers(m);
    expect(a.layers).toEqual([]);
    expect(a.unrecognized[0]).toMatchObject({ node: add.name, op: 'Add' });
    expect(a.unrecognized[0]!.reason).toMatch(/FFN residual adds '\/m\/bert\/embeddings\/LayerNorm/);
  });

  it('an FFN activation that is not element-wise', () => {
    const m = buildBert(smallConfig({ layers: 1, activation: 'relu' }));
    const relu = m.graph.nodes().find((x) => x.opType === 'Relu')!;
    relu.opType = 'Softsign2';
    relu.domain = 'custom';
    const a = analyzeLayers(m);
    expect(a.layers).toEqual([]);
    expect(a.unrecognized[0]).toEqual({
      node: relu.name,
      op: 'custom.Softsign2',
      reason: 'FFN: custom.Softsign2 after the up projection is not an element-wise activation op',
    });
  });

  it('a classifier Softmax on the logits is not mistaken for attention', () => {
    const m = buildBert(smallConfig());
    const logits = m.graph.outputs[0]!;
    const [probs] = [new Value('probs')];
    const { Node: N } = { Node: m.graph.first()!.constructor as typeof Node };
    m.graph.append(new N('', 'Softmax', [logits], [probs!], 'probs', { axis: -1 }));
    m.graph.outputs.push(probs!);
    const a = analyzeLayers(m);
    expect(a.layers.length).toBe(2);
    expect(a.unrecognized).toEqual([]);
  });
});

describe('TopK sparse attention (from the topk-attention pass) is recognized as such', () => {
  it.each(['dense', 'gather'] as const)('%s formulation', async (formulation) => {
    const { applyTopk, findAttentionCores } = await import('../../passes/topk-attention.js');
    const m = buildBert(smallConfig());
    const cores = findAttentionCores(m).cores;
    applyTopk(m, cores[1]!, 2, { formulation });
    const a = analyzeLayers(m);
    expect(a.unrecognized).toEqual([]);
    checkAgainstConfig(a, smallConfig());
    expect(a.layers.map((l) => l.attentionKind)).toEqual(['softmax', 'topk']);
    expect(a.layers[1]!.attention.topk!.node.opType).toBe('TopK');
  });
});

describe('the analysis never reads weights', () => {
  it('leaves every lazy weight of a generated BERT-base unmaterialized', () => {
    const m = buildBert({ layers: 12, hidden: 768, heads: 12, ffn: 3072 });
    let computed = 0;
    for (const v of m.graph.initializers) {
      const t = v.constValue!;
      const s = t.rawStorage;
      if (s.kind === 'lazy') {
        const f = s.compute;
        s.compute = () => {
          computed++;
          return f();
        };
      }
    }
    const a = analyzeLayers(m);
    expect(a.layers.map((l) => l.heads)).toEqual(Array(12).fill(12));
    expect(computed).toBe(0);
  });
});

describe('com.microsoft MultiHeadAttention', () => {
  it('is recognized with its separate Q/K/V projections', async () => {
    const { Node: IrNode } = await import('../../src/ir/index.js');
    const { runDce } = await import('../../passes/dce.js');
    const c = smallConfig();
    const m = buildBert(c);
    m.opsetImports.set('com.microsoft', 1);
    for (const l of analyzeLayers(m).layers) {
      const a = l.attention;
      const out = new Value(`${a.o.matmul.name}/mha_out`);
      const mha = new IrNode(
        'com.microsoft',
        'MultiHeadAttention',
        [a.q.output, a.k.output, a.v.output],
        [out],
        `${a.o.matmul.name}/mha`,
        {
          num_heads: l.heads,
        },
      );
      m.graph.insertBefore(a.o.matmul, mha);
      a.o.matmul.replaceInput(0, out);
    }
    runDce({ model: m } as Parameters<typeof runDce>[0], {});
    const a = analyzeLayers(m);
    expect(a.unrecognized).toEqual([]);
    checkAgainstConfig(a, c);
    expect(a.layers.map((l) => [l.attentionKind, l.attention.fused!.opType, l.attention.q.form])).toEqual([
      ['ms-attention', 'MultiHeadAttention', 'matmul'],
      ['ms-attention', 'MultiHeadAttention', 'matmul'],
    ]);
  });
});

describe('quantized projections (the output of `quantize`) are still recognized', () => {
  const forms: [string, Record<string, unknown>, string][] = [
    ['int8 DynamicQuantizeMatMul', { form: 'dynamic-quantize-matmul' }, 'dynamic-quantize-matmul'],
    ['int8 MatMulIntegerToFloat', { form: 'matmul-integer-to-float' }, 'matmul-integer-to-float'],
    ['int8 MatMulInteger', { form: 'matmul-integer' }, 'matmul-integer'],
    ['int8 QDQ', { form: 'qdq', target: 'onnx' }, 'qdq'],
    ['int4 MatMulNBits', { mode: 'int4' }, 'matmul-nbits'],
  ];
  it.each(forms)('%s', async (_, opts, form) => {
    const { getPass, withDefaults } = await import('../../src/pass/index.js');
    await import('../../passes/index.js');
    const q = getPass('quantize')!;
    expect(q).toBeDefined();
    const c = smallConfig();
    const m = buildBert(c);
    const ctx = {
      model: m,
      facts: new Map(),
      data: { names: () => [], get: () => Promise.reject(new Error('no data')) },
      report: () => {},
      progress: () => {},
      details: {},
      threads: 1,
    };
    const r = await q.run(ctx, withDefaults(q, { ops: [{ name: 'matmul' }], ...opts }));
    expect(r.changed).toBe(true);
    const a = analyzeLayers(m);
    expect(a.unrecognized).toEqual([]);
    expect(a.layers.map((l) => [l.heads, l.headSize, l.ffnSize])).toEqual([
      [4, 8, 64],
      [4, 8, 64],
    ]);
    for (const l of a.layers) for (const p of Object.values(projections(l))) expect(p.quant?.form).toBe(form);
  });
});

describe('layers with a removed block (as `prune` leaves them) are partial layers, in stream order', () => {
  const cases: [string, 'post' | 'pre', 'attention' | 'ffn', number][] = [
    ['post-norm, attention removed from layer 1', 'post', 'attention', 1],
    ['post-norm, FFN removed from layer 1', 'post', 'ffn', 1],
    ['pre-norm, attention removed from layer 1', 'pre', 'attention', 1],
    ['pre-norm, FFN removed from layer 2 (the last)', 'pre', 'ffn', 2],
    ['post-norm, attention removed from layer 0', 'post', 'attention', 0],
  ];
  it.each(cases)('%s', async (_, norm, block, at) => {
    const { runDce } = await import('../../passes/dce.js');
    const { allLayerSummaries } = await import('../../passes/analysis/layers.js');
    const m = buildBert(smallConfig({ layers: 3, norm }));
    const l = analyzeLayers(m).layers[at]!;
    const r = l.residuals[block];
    const branch = block === 'attention' ? l.attention.o.output : l.ffn.down.output;
    // what prune does: the residual Add's result becomes its residual input
    r.output(0).replaceAllUsesWith(r.inputs.find((i) => i !== branch)!);
    runDce({ model: m } as Parameters<typeof runDce>[0], {});
    const a = analyzeLayers(m);
    expect(a.unrecognized).toEqual([]);
    expect(a.layers.map((x) => [x.index, x.position])).toEqual([0, 1, 2].filter((p) => p !== at).map((p, i) => [i, p]));
    expect(a.partialLayers.map((p) => [p.position, p.kind, p.norm])).toEqual([
      [at, block === 'attention' ? 'ffn-only' : 'attention-only', norm],
    ]);
    expect(a.head?.classifier).toBeDefined();
    const json = allLayerSummaries(a).map((s) => [s.index, s.heads, s.ffnSize]);
    expect(json).toEqual(
      [0, 1, 2].map((p) => (p !== at ? [p, 4, 64] : block === 'attention' ? [p, 0, 64] : [p, 4, 0])),
    );
  });
});
