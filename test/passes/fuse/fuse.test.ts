import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Builder, DataType, Graph, Model, modelText, tensorType, Value } from '../../../src/ir/index.js';
import { loadModel } from '../../../src/onnx/index.js';
import { FUSIONS } from '../../../passes/fuse.js';
import { buildBert, smallConfig } from '../../gen/bert.js';
import { devFeeds } from '../../support/ort.js';
import { DEV_JSONL, TINY_MODEL } from '../../support/paths.js';
import { argmaxAgreement, genFeeds, maxAbsDiff, opCounts, run, runPass } from './support.js';

/**
 * Table tests of `fuse` (typescript-eslint style): `valid` cases leave the model unchanged and say why;
 * `invalid` cases are rewritten, and the rewritten model runs in onnxruntime with outputs that match the original.
 */
interface Case {
  name: string;
  model: () => Model;
  options: Record<string, unknown>;
  /** Op counts after the pass (only the listed ops are checked). */
  ops?: Record<string, number>;
  /** Substrings expected among the diagnostics' messages, with their codes. */
  messages?: [string, string][];
  /** Max |Δ| allowed on the logits (invalid cases). */
  tol?: number;
  /** Use the real tiny model's dev rows (otherwise generated feeds). */
  real?: boolean;
  /** Feeds for hand-built graphs. */
  feeds?: () => Record<string, ort.Tensor>;
}

const tiny = () => loadModel(TINY_MODEL);
const gen = (over: Parameters<typeof smallConfig>[0]) => () => buildBert(smallConfig(over));
const names = (...xs: string[]) => xs.map((name) => ({ name }));
/** The generated decomposed-LayerNorm model declared at opset 14, as the sst2-bert-mini opset14 variant. */
const opset14 = () => {
  const m = buildBert(smallConfig({ layerNorm: 'decomposed' }));
  m.opsetImports.set('', 14);
  return m;
};

/**
 * A hand-built decomposed LayerNorm over x_BSD [2, 3, 8] without scale and bias; with `escape`, the centred value
 * (x - mean) is also a graph output, so the match must be declined.
 */
function bareLayerNorm(escape = false): Model {
  const g = new Graph('ln');
  const m = new Model(g);
  m.irVersion = 8;
  m.opsetImports.set('', 17);
  const x = g.addInput(new Value('x_BSD', tensorType(DataType.FLOAT, [2, 3, 8])));
  const b = new Builder(g);
  const mean = b.op1('ReduceMean', [x], { name: 'mean', attrs: { axes: [-1] } });
  const d = b.op1('Sub', [x, mean], { name: 'centre' });
  const sq = b.op1('Pow', [d, b.scalarFloat('two', 2)], { name: 'square' });
  const v = b.op1('ReduceMean', [sq], { name: 'variance', attrs: { axes: [-1] } });
  const ve = b.op1('Add', [v, b.scalarFloat('eps', 1e-5)], { name: 'add_eps' });
  const sd = b.op1('Sqrt', [ve], { name: 'std' });
  const y = b.op1('Div', [d, sd], { name: 'normalize', outputNames: ['y_BSD'] });
  y.type = tensorType(DataType.FLOAT, [2, 3, 8]);
  g.outputs.push(y);
  if (escape) {
    d.type = tensorType(DataType.FLOAT, [2, 3, 8]);
    g.outputs.push(d);
  }
  return m;
}

const xFeeds = () => ({
  x_BSD: new ort.Tensor(
    'float32',
    Float32Array.from({ length: 48 }, (_, i) => Math.sin(i * 1.7) * 3 + (i % 8)),
    [2, 3, 8],
  ),
});

/** The tiny model with one GELU's intermediate (the Erf output) also made a graph output. */
function tinyWithEscapingErf(): Model {
  const m = tiny();
  const erf = m.graph.nodes().find((n) => n.opType === 'Erf')!;
  m.graph.outputs.push(erf.output(0));
  return m;
}

const valid: Case[] = [
  {
    name: 'layernorm on a model whose LayerNorms are already fused: applies nowhere, says why',
    model: tiny,
    options: { patterns: names('layernorm') },
    messages: [['AX3202', "fusion 'layernorm' applied nowhere: no Div node starts this pattern"]],
  },
  {
    name: 'gelu with target onnx at opset 17: the standard Gelu needs opset 20',
    model: tiny,
    options: { patterns: names('gelu'), target: 'onnx' },
    messages: [
      ['AX3201', 'the standard Gelu op needs opset 20 and the model imports opset 17'],
      ['AX3202', "fusion 'gelu' applied nowhere: every candidate was declined"],
    ],
  },
  {
    name: 'skip-layernorm with target onnx: com.microsoft op refused',
    model: tiny,
    options: { patterns: names('skip-layernorm'), target: 'onnx' },
    messages: [['AX3201', 'SkipLayerNormalization is a com.microsoft op and the target is onnx']],
  },
  {
    name: 'embed-layernorm on RoBERTa: padding-aware position ids are declined, naming the position lookup',
    model: gen({ family: 'roberta' }),
    options: { patterns: names('embed-layernorm') },
    messages: [['AX3201', 'padding-aware positions, as RoBERTa']],
  },
  {
    name: 'embed-layernorm with target onnx: com.microsoft op refused',
    model: tiny,
    options: { patterns: names('embed-layernorm'), target: 'onnx' },
    messages: [['AX3201', 'EmbedLayerNormalization is a com.microsoft op and the target is onnx']],
  },
  {
    name: 'bias-gelu without a Gelu node: nothing to start from',
    model: tiny,
    options: { patterns: names('bias-gelu') },
    messages: [['AX3202', 'the model has no Gelu or FastGelu node']],
  },
  {
    name: 'decomposed LayerNorm at opset 14 with target onnx: LayerNormalization needs opset 17',
    model: opset14,
    options: { patterns: names('layernorm'), target: 'onnx' },
    messages: [['AX3201', 'LayerNormalization needs opset 17']],
  },
  {
    name: 'a LayerNorm whose centred value escapes (graph output) is not replaced',
    model: () => bareLayerNorm(true),
    options: { patterns: names('layernorm') },
    messages: [['AX3201', "intermediate value 'centre_out' of 'centre' is a graph output"]],
  },
  {
    name: 'fast-gelu does not touch the pooler Tanh',
    model: tiny,
    options: { patterns: names('fast-gelu') },
    messages: [['AX3202', 'no Tanh node starts this pattern']],
  },
];

const invalid: Case[] = [
  {
    name: 'decomposed LayerNorm (opset 14 export) → LayerNormalization',
    model: gen({ layerNorm: 'decomposed' }),
    options: { patterns: names('layernorm') },
    ops: { LayerNormalization: 5, ReduceMean: 0, Sqrt: 0, Pow: 0 },
    tol: 1e-5,
  },
  {
    name: 'decomposed LayerNorm at opset 14 with target onnxruntime: onnxruntime runs LayerNormalization there',
    model: opset14,
    options: { patterns: names('layernorm') },
    ops: { LayerNormalization: 5, ReduceMean: 0 },
    tol: 1e-5,
  },
  {
    name: 'LayerNorm without scale or bias → LayerNormalization with a unit scale',
    model: () => bareLayerNorm(),
    options: { patterns: names('layernorm') },
    ops: { LayerNormalization: 1, ReduceMean: 0 },
    tol: 1e-5,
    feeds: xFeeds,
  },
  {
    name: 'erf GELU → com.microsoft.Gelu (real tiny model)',
    model: tiny,
    options: { patterns: names('gelu') },
    ops: { 'com.microsoft.Gelu': 2, Erf: 0 },
    tol: 1e-5,
    real: true,
  },
  {
    name: 'erf GELU + bias → com.microsoft.BiasGelu (real tiny model)',
    model: tiny,
    options: { patterns: names('gelu', 'bias-gelu') },
    ops: { 'com.microsoft.BiasGelu': 2, 'com.microsoft.Gelu': 0, Erf: 0 },
    tol: 1e-5,
    real: true,
  },
  {
    name: 'residual Add + LayerNormalization → SkipLayerNormalization with the dense bias folded in; the embedding sum is declined',
    model: tiny,
    options: { patterns: names('skip-layernorm') },
    ops: { 'com.microsoft.SkipLayerNormalization': 4, LayerNormalization: 1, Add: (opCounts(tiny()).Add ?? 0) - 4 - 4 },
    // 4 residual Adds and the 4 dense-bias Adds before them are gone
    messages: [['AX3201', 'SkipLayerNormalization does not broadcast']],
    tol: 1e-5,
    real: true,
  },
  {
    name: 'word + position + token type lookups and their LayerNorm → EmbedLayerNormalization (real tiny model)',
    model: tiny,
    options: { patterns: names('embed-layernorm') },
    ops: { 'com.microsoft.EmbedLayerNormalization': 1, LayerNormalization: 4, Cast: (opCounts(tiny()).Cast ?? 0) + 2 },
    tol: 1e-4,
    real: true,
  },
  {
    name: 'DistilBERT embeddings (no token type) → EmbedLayerNormalization without segment inputs',
    model: gen({ family: 'distilbert' }),
    options: { patterns: names('embed-layernorm') },
    ops: { 'com.microsoft.EmbedLayerNormalization': 1 },
    tol: 1e-4,
  },
  {
    name: 'tanh GELU → com.microsoft.FastGelu, then its bias folded in',
    model: gen({ activation: 'tanh-gelu' }),
    options: { patterns: names('fast-gelu', 'bias-gelu') },
    ops: { 'com.microsoft.FastGelu': 2, Pow: 0 },
    tol: 1e-5,
  },
  {
    name: 'tanh GELU → Gelu approximate=tanh at opset 20 with target onnx',
    model: () => {
      const m = buildBert(smallConfig({ activation: 'tanh-gelu' }));
      m.opsetImports.set('', 20);
      return m;
    },
    options: { patterns: names('fast-gelu'), target: 'onnx' },
    ops: { Gelu: 2, Tanh: 1 },
    tol: 1e-5,
  },
  {
    name: 'everything on the decomposed model: LayerNorm, GELU, bias, embeddings, residual',
    model: gen({ layerNorm: 'decomposed' }),
    options: {},
    ops: {
      'com.microsoft.SkipLayerNormalization': 4,
      'com.microsoft.EmbedLayerNormalization': 1,
      LayerNormalization: 0,
      'com.microsoft.BiasGelu': 2,
      Erf: 0,
    },
    tol: 1e-5,
  },
  {
    name: 'a GELU whose Erf output escapes (graph output) is kept; the other one is fused',
    model: tinyWithEscapingErf,
    options: { patterns: names('gelu') },
    ops: { 'com.microsoft.Gelu': 1, Erf: 1 },
    messages: [['AX3201', 'is a graph output']],
    tol: 1e-5,
    real: true,
  },
];

function check(c: Case, diagnostics: { code: string; message: string }[]): void {
  for (const [code, text] of c.messages ?? []) {
    const hit = diagnostics.find((d) => d.code === code && d.message.includes(text));
    expect(
      hit,
      `expected ${code} containing "${text}" among:\n${diagnostics.map((d) => `${d.code} ${d.message}`).join('\n')}`,
    ).toBeDefined();
  }
}

describe('fuse: valid (unchanged)', () => {
  for (const c of valid)
    it(c.name, async () => {
      const m = c.model();
      const before = modelText(m);
      const { result, diagnostics } = await runPass(m, 'fuse', c.options);
      expect(result.changed).toBe(false);
      expect(modelText(m)).toBe(before);
      check(c, diagnostics);
    });
});

describe('fuse: invalid (rewritten), checked in onnxruntime', () => {
  for (const c of invalid)
    it(c.name, async () => {
      const feeds = c.feeds ? c.feeds() : c.real ? devFeeds(DEV_JSONL, 8) : genFeeds(100);
      const ref = await run(c.model(), feeds);
      const m = c.model();
      const { result, diagnostics } = await runPass(m, 'fuse', c.options);
      expect(result.changed).toBe(true);
      const counts = opCounts(m);
      for (const [op, n] of Object.entries(c.ops ?? {})) expect(counts[op] ?? 0, op).toBe(n);
      check(c, diagnostics);
      const got = await run(m, feeds);
      expect(maxAbsDiff(ref, got)).toBeLessThanOrEqual(c.tol ?? 1e-5);
      if (!c.feeds) expect(argmaxAgreement(ref, got, 2)).toBe(1);
      // and with onnxruntime's own optimizations on top
      const gotOpt = await run(m, feeds, true);
      expect(maxAbsDiff(ref, gotOpt)).toBeLessThanOrEqual(1e-4);
    });
});

describe('fuse: metadata and determinism', () => {
  it('fuses deterministically (same input, same text)', async () => {
    const a = buildBert(smallConfig({ layerNorm: 'decomposed' }));
    const b = buildBert(smallConfig({ layerNorm: 'decomposed' }));
    await runPass(a, 'fuse', {});
    await runPass(b, 'fuse', {});
    expect(modelText(a)).toBe(modelText(b));
  });
  it('keeps the names of the values it replaces (graph outputs too)', async () => {
    const m = tiny();
    const names0 = m.graph.outputs.map((o) => o.name);
    await runPass(m, 'fuse', {});
    expect(m.graph.outputs.map((o) => o.name)).toEqual(names0);
  });
  it('rejects an unknown fusion with a suggestion', async () => {
    await expect(runPass(tiny(), 'fuse', { patterns: names('layer-norm') })).rejects.toThrow(
      /AX3203: unknown fusion 'layer-norm'/,
    );
  });
  it('table order is stable', () => {
    expect(FUSIONS.map((f) => f.name).slice(0, 6)).toEqual([
      'layernorm',
      'gelu',
      'fast-gelu',
      'bias-gelu',
      'embed-layernorm',
      'skip-layernorm',
    ]);
  });
});
