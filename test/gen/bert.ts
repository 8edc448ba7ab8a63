/**
 * A generator of BERT-family encoder classifiers as axc IR models, with the node structure that PyTorch's
 * `torch.onnx.export` produces for Hugging Face `BertForSequenceClassification` (and DistilBERT / RoBERTa
 * variants), at any size, with seeded pseudo-random weights.
 *
 * Weights are `Tensor.lazy`: a BERT-base model (about 440 MB) costs nothing until it is written or run.
 *
 * Dimension letters: B batch, S sequence, D hidden, H heads, d head size (D = H * d), F FFN (intermediate) size,
 * V vocabulary, P max positions, L labels.
 *
 * The default configuration reproduces, op for op, the real export in golden/models/sst2-bert-tiny (opset 17,
 * eager attention, `[B, S, -1, d]` head reshapes, erf GELU, LayerNormalization, post-norm, pooler + classifier).
 */
import * as fs from 'node:fs';
import { mulberry32 } from '../../src/util/prng.js';
import { Attribute, Builder, DataType, Graph, Model, Tensor, Value, type AttrInput } from '../../src/ir/index.js';
import { saveModel } from '../../src/onnx/index.js';

export interface BertConfig {
  layers: number;
  hidden: number;
  heads: number;
  ffn: number;
  vocab: number;
  maxPositions: number;
  labels: number;
  /** Token type vocabulary (BERT: 2, RoBERTa: 1). */
  typeVocab: number;
  seed: number;
  /** 'fused': opset 17 LayerNormalization; 'decomposed': ReduceMean/Sub/Pow/Sqrt/Div as at opset 14. */
  layerNorm: 'fused' | 'decomposed';
  /** 'eager': Mul(QK^T, 1/sqrt(d)) then Add(mask); 'sdpa': Q and K each scaled by d^-1/4, Where mask, NaN guard. */
  attention: 'eager' | 'sdpa';
  /** 'inferred': Reshape to [B, S, -1, d] (current HF); 'explicit': [B, S, H, d] (older exports, DistilBERT). */
  headsInReshape: 'inferred' | 'explicit';
  family: 'bert' | 'distilbert' | 'roberta';
  norm: 'post' | 'pre';
  activation: 'erf-gelu' | 'tanh-gelu' | 'relu' | 'gelu-op';
  /** What onnxruntime's transformer optimizer leaves: SkipLayerNormalization and BiasGelu (attention not fused). */
  ortFused: boolean;
  /** com.microsoft Attention with a fused [D, 3D] QKV weight and num_heads. */
  msAttention: boolean;
  /** LayerNorm epsilon. */
  eps: number;
}

export const BERT_TINY: BertConfig = {
  layers: 2,
  hidden: 128,
  heads: 2,
  ffn: 512,
  vocab: 30522,
  maxPositions: 512,
  labels: 2,
  typeVocab: 2,
  seed: 1,
  layerNorm: 'fused',
  attention: 'eager',
  headsInReshape: 'inferred',
  family: 'bert',
  norm: 'post',
  activation: 'erf-gelu',
  ortFused: false,
  msAttention: false,
  eps: 1e-12,
};

export const BERT_BASE: BertConfig = { ...BERT_TINY, layers: 12, hidden: 768, heads: 12, ffn: 3072 };

/** A small config for tests (hidden 32, 2 layers, small vocabulary), with overrides. */
export function smallConfig(over: Partial<BertConfig> = {}): BertConfig {
  return { ...BERT_TINY, hidden: 32, heads: 4, ffn: 64, vocab: 100, maxPositions: 64, ...over };
}

/** mulberry32, seeded by a string hash: deterministic across runs and platforms. */
function prng(seed: number, key: string): () => number {
  let h = seed ^ 0x9e3779b9;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x85ebca6b) ^ (h >>> 13);
  return mulberry32(h);
}

function lazyFloat(name: string, dims: number[], seed: number, init: { mean?: number; scale: number }): Tensor {
  return Tensor.lazy(name, DataType.FLOAT, dims, () => {
    const n = dims.reduce((a, b) => a * b, 1);
    const r = prng(seed, name);
    const out = new Float32Array(n);
    const mean = init.mean ?? 0;
    // sum of 3 uniforms: a cheap bell shape with std scale
    for (let i = 0; i < n; i++) out[i] = mean + (r() + r() + r() - 1.5) * 2 * init.scale;
    return new Uint8Array(out.buffer);
  });
}

/** Emits nodes with the exporter's naming: `${scope}/${Op}`, `${scope}/${Op}_1`, outputs `${name}_output_0`. */
class Emitter {
  readonly b: Builder;
  private counters = new Map<string, number>();
  private anon = 0;
  constructor(readonly graph: Graph) {
    this.b = new Builder(graph);
  }
  private nodeName(scope: string, op: string): string {
    const key = `${scope}/${op}`;
    const n = this.counters.get(key) ?? 0;
    this.counters.set(key, n + 1);
    return n === 0 ? key : `${key}_${n}`;
  }
  op(scope: string, op: string, inputs: (Value | null)[], attrs?: Record<string, AttrInput>, domain?: string): Value {
    const name = this.nodeName(scope, op);
    const opts: Parameters<Builder['op']>[2] = { name, outputNames: [`${name}_output_0`] };
    if (attrs) opts.attrs = attrs;
    if (domain) opts.domain = domain;
    return this.b.op1(op, inputs, opts);
  }
  /** A Constant node holding an int64 tensor (dims [] for a scalar). */
  i64(scope: string, values: number[], dims: number[] = [values.length]): Value {
    return this.op(scope, 'Constant', [], { value: Tensor.fromInt64('', dims, values) });
  }
  f32(scope: string, values: number[], dims: number[] = []): Value {
    return this.op(scope, 'Constant', [], { value: Tensor.fromFloat32('', dims, values) });
  }
  anonName(prefix: string): string {
    return `${prefix}_${this.anon++}`;
  }
}

interface Ctx {
  e: Emitter;
  c: BertConfig;
  g: Graph;
  /** Parameter name prefix (`m.bert.`), node scope prefix (`/m/bert`). */
  p: string;
  s: string;
  /** Batch and sequence scalars (int64) from the embeddings, reused by layer 0 like the exporter does. */
  batch0: Value;
  seq0: Value;
  /** Additive mask [B, 1, S, S] (eager), the boolean keep mask [B, 1, S, S] (sdpa), or int32 mask_index [B, S]. */
  mask: Value;
  /** Scalar int64 0 from the embeddings (the pooler's Gather index reuses it). */
  zero: Value;
}

function param(ctx: Ctx, name: string, dims: number[], init: { mean?: number; scale: number }): Value {
  return ctx.g.initializer(name, lazyFloat(name, dims, ctx.c.seed, init));
}
/** A transposed Linear weight [in, out], anonymous like the exporter's `onnx::MatMul_N`. */
function matmulWeight(ctx: Ctx, paramName: string, inF: number, outF: number): Value {
  const v = ctx.g.initializer(
    ctx.e.anonName('onnx::MatMul'),
    lazyFloat(paramName, [inF, outF], ctx.c.seed, { scale: 0.02 }),
  );
  return v;
}

/** Linear as the exporter writes it: MatMul(x, W[in,out]) then Add(bias, y). With ortFused, returns before the Add. */
function linear(ctx: Ctx, scope: string, pname: string, x: Value, inF: number, outF: number, noBias = false) {
  const w = matmulWeight(ctx, `${pname}.weight`, inF, outF);
  const bias = param(ctx, `${pname}.bias`, [outF], { scale: 0.02 });
  const mm = ctx.e.op(scope, 'MatMul', [x, w]);
  if (noBias) return { out: mm, bias };
  return { out: ctx.e.op(scope, 'Add', [bias, mm]), bias };
}

function layerNorm(ctx: Ctx, scope: string, pname: string, x: Value): Value {
  const { e, c } = ctx;
  const D = c.hidden;
  const gamma = param(ctx, `${pname}.weight`, [D], { mean: 1, scale: 0.05 });
  const beta = param(ctx, `${pname}.bias`, [D], { scale: 0.02 });
  if (c.layerNorm === 'fused') return e.op(scope, 'LayerNormalization', [x, gamma, beta], { axis: -1, epsilon: c.eps });
  const opset = modelOpset(c);
  const reduce = (v: Value) =>
    opset >= 18 ? e.op(scope, 'ReduceMean', [v, e.i64(scope, [-1])]) : e.op(scope, 'ReduceMean', [v], { axes: [-1] });
  const mean = reduce(x);
  const sub = e.op(scope, 'Sub', [x, mean]);
  const pw = e.op(scope, 'Pow', [sub, e.f32(scope, [2])]);
  const variance = reduce(pw);
  const add = e.op(scope, 'Add', [variance, e.f32(scope, [c.eps])]);
  const sq = e.op(scope, 'Sqrt', [add]);
  const div = e.op(scope, 'Div', [sub, sq]);
  const mul = e.op(scope, 'Mul', [div, gamma]);
  return e.op(scope, 'Add', [mul, beta]);
}

/** Residual + LayerNorm (post-norm), or SkipLayerNormalization when ortFused (dense bias folded in). */
function addNorm(ctx: Ctx, scope: string, pname: string, dense: { out: Value; bias: Value }, residual: Value): Value {
  const { e, c } = ctx;
  if (c.ortFused) {
    const gamma = param(ctx, `${pname}.LayerNorm.weight`, [c.hidden], { mean: 1, scale: 0.05 });
    const beta = param(ctx, `${pname}.LayerNorm.bias`, [c.hidden], { scale: 0.02 });
    return e.op(
      `${scope}/LayerNorm`,
      'SkipLayerNormalization',
      [dense.out, residual, gamma, beta, dense.bias],
      { epsilon: c.eps },
      'com.microsoft',
    );
  }
  const add = e.op(scope, 'Add', [dense.out, residual]);
  return layerNorm(ctx, `${scope}/LayerNorm`, `${pname}.LayerNorm`, add);
}

function activation(ctx: Ctx, scope: string, x: Value): Value {
  const { e, c } = ctx;
  switch (c.activation) {
    case 'erf-gelu': {
      const div = e.op(scope, 'Div', [x, e.f32(scope, [Math.SQRT2])]);
      const erf = e.op(scope, 'Erf', [div]);
      const add = e.op(scope, 'Add', [erf, e.f32(scope, [1])]);
      const mul = e.op(scope, 'Mul', [x, add]);
      return e.op(scope, 'Mul', [mul, e.f32(scope, [0.5])]);
    }
    case 'tanh-gelu': {
      const half = e.op(scope, 'Mul', [x, e.f32(scope, [0.5])]);
      const cube = e.op(scope, 'Pow', [x, e.f32(scope, [3])]);
      const k = e.op(scope, 'Mul', [cube, e.f32(scope, [0.044715])]);
      const inner = e.op(scope, 'Add', [x, k]);
      const scaled = e.op(scope, 'Mul', [inner, e.f32(scope, [Math.sqrt(2 / Math.PI)])]);
      const th = e.op(scope, 'Tanh', [scaled]);
      const one = e.op(scope, 'Add', [th, e.f32(scope, [1])]);
      return e.op(scope, 'Mul', [half, one]);
    }
    case 'relu':
      return e.op(scope, 'Relu', [x]);
    case 'gelu-op':
      return e.op(scope, 'Gelu', [x]);
  }
}

export function modelOpset(c: BertConfig): number {
  return c.activation === 'gelu-op' ? 20 : 17;
}

/** Embeddings: word + token type + position, then LayerNorm. Returns hidden [B, S, D] and batch/seq scalars. */
function embeddings(ctx: Ctx, inputIds: Value, tokenTypes: Value | null): Value {
  const { e, c } = ctx;
  const sc = `${ctx.s}/embeddings`;
  const pp = `${ctx.p}embeddings.`;
  const word = param(ctx, `${pp}word_embeddings.weight`, [c.vocab, c.hidden], { scale: 0.05 });
  const P = c.family === 'roberta' ? c.maxPositions + 2 : c.maxPositions;
  const pos = param(ctx, `${pp}position_embeddings.weight`, [P, c.hidden], { scale: 0.05 });
  const type =
    c.family !== 'distilbert'
      ? param(ctx, `${pp}token_type_embeddings.weight`, [c.typeVocab, c.hidden], { scale: 0.05 })
      : null;
  let positionIds: Value;
  if (c.family === 'roberta') {
    // create_position_ids_from_input_ids: cumsum(ids != pad) * (ids != pad) + pad
    const pad = 1;
    const eq = e.op(sc, 'Equal', [inputIds, e.i64(sc, [pad], [])]);
    const ne = e.op(sc, 'Not', [eq]);
    const m32 = e.op(sc, 'Cast', [ne], { to: DataType.INT32 });
    const cs = e.op(sc, 'CumSum', [m32, e.i64(sc, [1], [])]);
    const mul = e.op(sc, 'Mul', [cs, m32]);
    const l = e.op(sc, 'Cast', [mul], { to: DataType.INT64 });
    positionIds = e.op(sc, 'Add', [l, e.i64(sc, [pad], [])]);
    ctx.zero = e.i64(sc, [0], []);
  } else {
    const shape = e.op(sc, 'Shape', [inputIds]);
    const seq = e.op(sc, 'Gather', [shape, e.i64(sc, [1], [])], { axis: 0 });
    const ids = Array.from({ length: P }, (_, i) => i);
    const posBuf = e.i64(sc, ids, [1, P]);
    ctx.zero = e.i64(sc, [0], []);
    const axes = e.i64(sc, [1]);
    const starts = e.i64(sc, [0]);
    const un = e.op(sc, 'Unsqueeze', [seq, e.i64(sc, [0])]);
    positionIds = e.op(sc, 'Slice', [posBuf, starts, un, axes, e.i64(sc, [1])]);
  }
  const w = e.op(`${sc}/word_embeddings`, 'Gather', [word, inputIds]);
  let sum = w;
  if (type) {
    let tt = tokenTypes;
    if (!tt) {
      // RoBERTa without token_type_ids input: zeros like input_ids
      tt = e.op(sc, 'Mul', [inputIds, e.i64(sc, [0], [])]);
    }
    const t = e.op(`${sc}/token_type_embeddings`, 'Gather', [type, tt]);
    sum = e.op(sc, 'Add', [w, t]);
  }
  const pe = e.op(`${sc}/position_embeddings`, 'Gather', [pos, positionIds]);
  sum = e.op(sc, 'Add', [sum, pe]);
  return layerNorm(ctx, `${sc}/LayerNorm`, `${pp}LayerNorm`, sum);
}

/**
 * The attention mask as Hugging Face's masking utilities export it (BERT, RoBERTa): a boolean keep mask
 * [B, 1, S, S] built by index arithmetic, then (eager) an additive float mask Where(keep, 0, finfo.min).
 * Sets ctx.batch0 / ctx.seq0 (scalars of the embeddings' shape), which layer 0 reuses.
 */
function hfMask(ctx: Ctx, attentionMask: Value, hidden: Value): void {
  const { e, c } = ctx;
  const sc = ctx.s;
  const keep = e.op(sc, 'Cast', [attentionMask], { to: DataType.BOOL });
  const seq = e.op(sc, 'Gather', [e.op(sc, 'Shape', [hidden]), e.i64(sc, [1], [])], { axis: 0 });
  const kvLen = e.op(sc, 'Gather', [e.op(sc, 'Shape', [keep]), e.i64(sc, [1], [])], { axis: 0 });
  const batch = e.op(sc, 'Gather', [e.op(sc, 'Shape', [hidden]), e.i64(sc, [0], [])], { axis: 0 });
  ctx.batch0 = batch;
  ctx.seq0 = seq;
  const range = (n: Value) => {
    const l = e.op(sc, 'Cast', [n], { to: DataType.INT64 });
    return e.op(sc, 'Range', [e.i64(sc, [0], []), l, e.i64(sc, [1], [])]);
  };
  const bIdx = range(batch);
  const qIdx = range(seq);
  const kIdx = range(kvLen);
  const unsq = (v: Value, axes: number[]) => axes.reduce((acc, a) => e.op(sc, 'Unsqueeze', [acc, e.i64(sc, [a])]), v);
  const b_B111 = unsq(bIdx, [1, 2, 3]);
  const q_11S1 = unsq(qIdx, [0, 1, 3]);
  const k_111S = unsq(kIdx, [0, 1, 2]);
  const t = e.op(sc, 'ConstantOfShape', [e.i64(sc, [], [0])], {
    value: Tensor.fromUint8('', [1], new Uint8Array([1]), DataType.BOOL),
  });
  const ge = e.op(sc, 'GreaterOrEqual', [q_11S1, e.i64(sc, [0], [])]);
  const and0 = e.op(sc, 'And', [t, e.op(sc, 'Cast', [ge], { to: DataType.BOOL })]);
  const kv1 = e.op(sc, 'Gather', [e.op(sc, 'Shape', [keep]), e.i64(sc, [1])], { axis: 0 });
  const flat = e.op(sc, 'Flatten', [keep], { axis: 2 });
  const off = e.op(sc, 'Mul', [b_B111, kv1]);
  const idx = e.op(sc, 'Add', [k_111S, off]);
  const g = e.op(sc, 'Gather', [flat, idx], { axis: 0 });
  const idxShape = e.op(sc, 'Shape', [idx]);
  const r = e.op(sc, 'Reshape', [g, e.i64(sc, [-1])], { allowzero: 0 });
  const cat = e.op(sc, 'Concat', [idxShape], { axis: 0 });
  const pad_B11S = e.op(sc, 'Reshape', [r, cat], { allowzero: 0 });
  const and1 = e.op(sc, 'And', [and0, e.op(sc, 'Cast', [pad_B11S], { to: DataType.BOOL })]);
  const ub = e.op(sc, 'Unsqueeze', [batch, e.i64(sc, [0])]);
  const m1 = e.i64(sc, [-1]);
  const us = e.op(sc, 'Unsqueeze', [seq, e.i64(sc, [0])]);
  const uk = e.op(sc, 'Unsqueeze', [kvLen, e.i64(sc, [0])]);
  const shape4 = e.op(sc, 'Concat', [ub, m1, us, uk], { axis: 0 });
  const shape4r = e.op(sc, 'Reshape', [shape4, e.i64(sc, [-1])], { allowzero: 0 });
  const ones = e.op(sc, 'ConstantOfShape', [e.op(sc, 'Shape', [shape4r])], { value: Tensor.fromInt64('', [1], [1]) });
  const neg = e.op(sc, 'Mul', [ones, e.i64(sc, [-1], [])]);
  const eq = e.op(sc, 'Equal', [shape4r, neg]);
  const expShape = e.op(sc, 'Where', [eq, ones, shape4r]);
  const keep_B1SS = e.op(sc, 'Expand', [and1, expShape]);
  if (c.attention === 'sdpa') {
    ctx.mask = keep_B1SS;
    return;
  }
  const zero = e.f32(sc, [0]);
  const min = e.f32(sc, [-3.4028234663852886e38]);
  ctx.mask = e.op(sc, 'Where', [keep_B1SS, zero, min]);
}

/**
 * Older BERT exports (explicit head count): the extended mask (1 - mask[:, None, None, :]) * -10000 added to the
 * scores, scores divided by sqrt(d), and K transposed by two Transposes.
 */
export function legacy(c: BertConfig): boolean {
  return c.headsInReshape === 'explicit' && c.family !== 'distilbert' && c.attention === 'eager' && !c.msAttention;
}

function legacyMask(ctx: Ctx, attentionMask: Value, hidden: Value): void {
  const { e } = ctx;
  const sc = ctx.s;
  ctx.seq0 = e.op(sc, 'Gather', [e.op(sc, 'Shape', [hidden]), e.i64(sc, [1], [])], { axis: 0 });
  ctx.batch0 = e.op(sc, 'Gather', [e.op(sc, 'Shape', [hidden]), e.i64(sc, [0], [])], { axis: 0 });
  const u1 = e.op(sc, 'Unsqueeze', [attentionMask, e.i64(sc, [1])]);
  const u2 = e.op(sc, 'Unsqueeze', [u1, e.i64(sc, [2])]);
  const f = e.op(sc, 'Cast', [u2], { to: DataType.FLOAT });
  const inv = e.op(sc, 'Sub', [e.f32(sc, [1]), f]);
  ctx.mask = e.op(sc, 'Mul', [inv, e.f32(sc, [-10000])]);
}

/** DistilBERT's mask: (mask == 0) reshaped to [B, 1, 1, S]; each layer expands it and fills with finfo.min. */
function distilMask(ctx: Ctx, attentionMask: Value, hidden: Value): void {
  const { e } = ctx;
  const sc = `${ctx.s}/transformer`;
  ctx.batch0 = e.op(sc, 'Gather', [e.op(sc, 'Shape', [hidden]), e.i64(sc, [0], [])], { axis: 0 });
  ctx.seq0 = e.op(sc, 'Gather', [e.op(sc, 'Shape', [hidden]), e.i64(sc, [1], [])], { axis: 0 });
  const eq = e.op(sc, 'Equal', [attentionMask, e.i64(sc, [0], [])]);
  const kv = e.op(sc, 'Gather', [e.op(sc, 'Shape', [attentionMask]), e.i64(sc, [1], [])], { axis: 0 });
  const shape = e.op(
    sc,
    'Concat',
    [
      e.op(sc, 'Unsqueeze', [ctx.batch0, e.i64(sc, [0])]),
      e.i64(sc, [1, 1]),
      e.op(sc, 'Unsqueeze', [kv, e.i64(sc, [0])]),
    ],
    { axis: 0 },
  );
  ctx.mask = e.op(sc, 'Reshape', [eq, shape], { allowzero: 0 });
}

/** Shape [B, S, a, b] or [B, S, a] for Reshape, from batch/seq scalars, like the exporter: Unsqueeze + Concat. */
function shapeOf(ctx: Ctx, scope: string, batch: Value, seq: Value, tail: number[]): Value {
  const { e } = ctx;
  const ub = e.op(scope, 'Unsqueeze', [batch, e.i64(scope, [0])]);
  const us = e.op(scope, 'Unsqueeze', [seq, e.i64(scope, [0])]);
  return e.op(scope, 'Concat', [ub, us, ...tail.map((t) => e.i64(scope, [t]))], { axis: 0 });
}

interface Names {
  /** Scope and parameter prefix of layer i. */
  scope: string;
  param: string;
  q: string;
  k: string;
  v: string;
  o: string;
  attnNorm: string;
  ffn1: string;
  ffn2: string;
  ffnNorm: string;
  selfScope: string;
}

function layerNames(ctx: Ctx, i: number): Names {
  if (ctx.c.family === 'distilbert') {
    const scope = `${ctx.s}/transformer/layer.${i}`;
    const param = `${ctx.p}transformer.layer.${i}.`;
    return {
      scope,
      param,
      selfScope: `${scope}/attention`,
      q: 'attention/q_lin',
      k: 'attention/k_lin',
      v: 'attention/v_lin',
      o: 'attention/out_lin',
      attnNorm: 'sa_layer_norm',
      ffn1: 'ffn/lin1',
      ffn2: 'ffn/lin2',
      ffnNorm: 'output_layer_norm',
    };
  }
  const scope = `${ctx.s}/encoder/layer.${i}`;
  return {
    scope,
    param: `${ctx.p}encoder.layer.${i}.`,
    selfScope: `${scope}/attention/self`,
    q: 'attention/self/query',
    k: 'attention/self/key',
    v: 'attention/self/value',
    o: 'attention/output/dense',
    attnNorm: 'attention/output',
    ffn1: 'intermediate/dense',
    ffn2: 'output/dense',
    ffnNorm: 'output',
  };
}

const dotted = (s: string) => s.replace(/\//g, '.');

/** Self-attention: returns the context [B, S, D] (before the output projection). */
function selfAttention(ctx: Ctx, i: number, n: Names, x: Value): Value {
  const { e, c } = ctx;
  const D = c.hidden;
  const H = c.heads;
  const d = D / H;
  const sc = n.selfScope;
  if (c.msAttention) {
    // The fused QKV weight [D, 3D] and bias [3D] hold the same values the separate projections would (same seeds),
    // so the fused and unfused variants compute the same function.
    const keys = [n.q, n.k, n.v].map((part) => `${n.param}${dotted(part)}`);
    const concat = (suffix: string, rows: number, scale: number) => () => {
      const parts = keys.map(
        (k) => new Float32Array(lazyFloat(`${k}.${suffix}`, [rows, D], c.seed, { scale }).bytes().slice().buffer),
      );
      const out = new Float32Array(rows * 3 * D);
      for (let r = 0; r < rows; r++)
        parts.forEach((p, i) => out.set(p.subarray(r * D, (r + 1) * D), r * 3 * D + i * D));
      return new Uint8Array(out.buffer);
    };
    const w = ctx.g.initializer(
      `${n.param}attention.qkv.weight`,
      Tensor.lazy('', DataType.FLOAT, [D, 3 * D], concat('weight', D, 0.02)),
    );
    const b = ctx.g.initializer(
      `${n.param}attention.qkv.bias`,
      Tensor.lazy('', DataType.FLOAT, [3 * D], concat('bias', 1, 0.02)),
    );
    return e.op(sc, 'Attention', [x, w, b, ctx.mask], { num_heads: H }, 'com.microsoft');
  }
  let batch: Value;
  let seq: Value;
  if (i === 0) {
    batch = ctx.batch0;
    seq = ctx.seq0;
  } else {
    batch = e.op(sc, 'Gather', [e.op(sc, 'Shape', [x]), e.i64(sc, [0], [])], { axis: 0 });
    seq = e.op(sc, 'Gather', [e.op(sc, 'Shape', [x]), e.i64(sc, [1], [])], { axis: 0 });
  }
  const headTail = c.headsInReshape === 'explicit' ? [H, d] : [-1, d];
  const lin = (part: string) => linear(ctx, `${n.scope}/${part}`, `${n.param}${dotted(part)}`, x, D, D);
  const q_BSD = lin(n.q).out;
  const sq = shapeOf(ctx, sc, batch, seq, headTail);
  const sk = shapeOf(ctx, sc, batch, seq, headTail);
  const sv = shapeOf(ctx, sc, batch, seq, headTail);
  const q_BHSd = e.op(sc, 'Transpose', [e.op(sc, 'Reshape', [q_BSD, sq], { allowzero: 0 })], { perm: [0, 2, 1, 3] });
  const k_BSHd = e.op(sc, 'Reshape', [lin(n.k).out, sk], { allowzero: 0 });
  const v_BSHd = e.op(sc, 'Reshape', [lin(n.v).out, sv], { allowzero: 0 });
  const v_BHSd = e.op(sc, 'Transpose', [v_BSHd], { perm: [0, 2, 1, 3] });
  // older exports: key.permute(0, 2, 1, 3) then .transpose(-1, -2), two Transposes
  const kT_BHdS = legacy(c)
    ? e.op(sc, 'Transpose', [e.op(sc, 'Transpose', [k_BSHd], { perm: [0, 2, 1, 3] })], { perm: [0, 1, 3, 2] })
    : e.op(sc, 'Transpose', [k_BSHd], { perm: [0, 2, 3, 1] });
  let probs_BHSS: Value;
  if (c.family === 'distilbert') {
    const qs = e.op(sc, 'Div', [q_BHSd, e.f32(sc, [Math.sqrt(d)])]);
    const scores = e.op(sc, 'MatMul', [qs, kT_BHdS]);
    const cond = e.op(sc, 'Expand', [ctx.mask, e.op(sc, 'Shape', [scores])]);
    const filled = e.op(sc, 'Where', [cond, e.f32(sc, [-3.4028234663852886e38]), scores]);
    probs_BHSS = e.op(sc, 'Softmax', [filled], { axis: -1 });
  } else if (c.attention === 'sdpa') {
    const s = Math.pow(d, -0.25);
    const m = e.op(sc, 'Where', [ctx.mask, e.f32(sc, [0], [1]), e.f32(sc, [-Infinity], [1])]);
    const qs = e.op(sc, 'Mul', [q_BHSd, e.f32(sc, [s])]);
    const ks = e.op(sc, 'Mul', [kT_BHdS, e.f32(sc, [s])]);
    const scores = e.op(sc, 'MatMul', [qs, ks]);
    const sm = e.op(sc, 'Softmax', [e.op(sc, 'Add', [scores, m])], { axis: -1 });
    probs_BHSS = e.op(sc, 'Where', [e.op(sc, 'IsNaN', [sm]), e.f32(sc, [0], [1]), sm]);
  } else {
    const scores = e.op(sc, 'MatMul', [q_BHSd, kT_BHdS]);
    const scaled = legacy(c)
      ? e.op(sc, 'Div', [scores, e.f32(sc, [Math.sqrt(d)])])
      : e.op(sc, 'Mul', [scores, e.f32(sc, [1 / Math.sqrt(d)])]);
    probs_BHSS = e.op(sc, 'Softmax', [e.op(sc, 'Add', [scaled, ctx.mask])], { axis: -1 });
  }
  const ctx_BHSd = e.op(sc, 'MatMul', [probs_BHSS, v_BHSd]);
  const ctx_BSHd = e.op(sc, 'Transpose', [ctx_BHSd], { perm: [0, 2, 1, 3] });
  const so = shapeOf(ctx, sc, batch, seq, [c.headsInReshape === 'explicit' ? D : -1]);
  return e.op(sc, 'Reshape', [ctx_BSHd, so], { allowzero: 0 });
}

function encoderLayer(ctx: Ctx, i: number, x_BSD: Value): Value {
  const { e, c } = ctx;
  const n = layerNames(ctx, i);
  const D = c.hidden;
  const normParam = (p: string) => `${n.param}${dotted(p)}${c.family === 'distilbert' ? '' : '.LayerNorm'}`;
  const normScope = (p: string) => `${n.scope}/${p}${c.family === 'distilbert' ? '' : '/LayerNorm'}`;
  if (c.norm === 'pre') {
    const h = layerNorm(ctx, normScope(n.attnNorm + '_pre'), normParam(n.attnNorm + '_pre'), x_BSD);
    const attn = selfAttention(ctx, i, n, h);
    const o = linear(ctx, `${n.scope}/${n.o}`, `${n.param}${dotted(n.o)}`, attn, D, D).out;
    const r1 = e.op(`${n.scope}/attention`, 'Add', [o, x_BSD]);
    const h2 = layerNorm(ctx, normScope(n.ffnNorm + '_pre'), normParam(n.ffnNorm + '_pre'), r1);
    const f1 = linear(ctx, `${n.scope}/${n.ffn1}`, `${n.param}${dotted(n.ffn1)}`, h2, D, c.ffn).out;
    const a = activation(ctx, `${n.scope}/intermediate/intermediate_act_fn`, f1);
    const f2 = linear(ctx, `${n.scope}/${n.ffn2}`, `${n.param}${dotted(n.ffn2)}`, a, c.ffn, D).out;
    return e.op(`${n.scope}/output`, 'Add', [f2, r1]);
  }
  const attn = selfAttention(ctx, i, n, x_BSD);
  const o = linear(ctx, `${n.scope}/${n.o}`, `${n.param}${dotted(n.o)}`, attn, D, D, c.ortFused);
  const h1 =
    c.family === 'distilbert' && !c.ortFused
      ? layerNorm(ctx, `${n.scope}/${n.attnNorm}`, `${n.param}${n.attnNorm}`, e.op(n.scope, 'Add', [o.out, x_BSD]))
      : addNorm(ctx, `${n.scope}/${n.attnNorm}`, `${n.param}${dotted(n.attnNorm)}`, o, x_BSD);
  const f1 = linear(ctx, `${n.scope}/${n.ffn1}`, `${n.param}${dotted(n.ffn1)}`, h1, D, c.ffn, c.ortFused);
  let a: Value;
  if (c.ortFused && c.activation === 'erf-gelu')
    a = e.op(`${n.scope}/intermediate`, 'BiasGelu', [f1.out, f1.bias], undefined, 'com.microsoft');
  else {
    const pre = c.ortFused ? e.op(`${n.scope}/${n.ffn1}`, 'Add', [f1.bias, f1.out]) : f1.out;
    a = activation(ctx, `${n.scope}/intermediate/intermediate_act_fn`, pre);
  }
  const f2 = linear(ctx, `${n.scope}/${n.ffn2}`, `${n.param}${dotted(n.ffn2)}`, a, c.ffn, D, c.ortFused);
  if (c.family === 'distilbert' && !c.ortFused)
    return layerNorm(ctx, `${n.scope}/${n.ffnNorm}`, `${n.param}${n.ffnNorm}`, e.op(n.scope, 'Add', [f2.out, h1]));
  return addNorm(ctx, `${n.scope}/${n.ffnNorm}`, `${n.param}${dotted(n.ffnNorm)}`, f2, h1);
}

/** Gemm(x, W[out,in], b) with transB=1, as the exporter writes nn.Linear on 2-D inputs. */
function gemm(ctx: Ctx, scope: string, pname: string, x: Value, inF: number, outF: number, out?: string): Value {
  const w = param(ctx, `${pname}.weight`, [outF, inF], { scale: 0.05 });
  const b = param(ctx, `${pname}.bias`, [outF], { scale: 0.02 });
  const attrs = { alpha: Attribute.float('alpha', 1), beta: Attribute.float('beta', 1), transB: 1 };
  if (!out) return ctx.e.op(scope, 'Gemm', [x, w, b], attrs);
  return ctx.e.b.op1('Gemm', [x, w, b], {
    name: `${scope}/Gemm`,
    outputNames: [out],
    attrs,
    types: [{ kind: 'tensor', elemType: DataType.FLOAT, shape: ['batch_size', ctx.c.labels] }],
  });
}

/** Builds the model. Deterministic: the same config gives the same graph and the same weights. */
export function buildBert(config: Partial<BertConfig> = {}): Model {
  const c: BertConfig = { ...BERT_TINY, ...config };
  if (c.hidden % c.heads !== 0) throw new Error(`hidden ${c.hidden} is not a multiple of heads ${c.heads}`);
  if (c.ortFused && c.norm === 'pre') throw new Error('ortFused is only generated for post-norm encoders');
  if (c.ortFused && c.layerNorm === 'decomposed') throw new Error('ortFused implies fused LayerNorm');
  const g = new Graph('main_graph');
  const model = new Model(g);
  model.irVersion = 8;
  model.opsetImports.set('', modelOpset(c));
  if (c.ortFused || c.msAttention) model.opsetImports.set('com.microsoft', 1);
  model.producerName = 'axc-test-gen';
  model.producerVersion = '1';
  const io = (name: string) => {
    const v = new Value(name, { kind: 'tensor', elemType: DataType.INT64, shape: ['batch_size', 'sequence_length'] });
    return g.addInput(v);
  };
  const inputIds = io('input_ids');
  const attentionMask = io('attention_mask');
  const tokenTypes = c.family === 'bert' ? io('token_type_ids') : null;
  const root = c.family === 'distilbert' ? 'distilbert' : c.family === 'roberta' ? 'roberta' : 'bert';
  const e = new Emitter(g);
  const ctx = { e, c, g, p: `m.${root}.`, s: `/m/${root}` } as Ctx;
  let h = embeddings(ctx, inputIds, tokenTypes);
  if (c.msAttention) ctx.mask = e.op(ctx.s, 'Cast', [attentionMask], { to: DataType.INT32 });
  else if (c.family === 'distilbert') distilMask(ctx, attentionMask, h);
  else if (legacy(c)) legacyMask(ctx, attentionMask, h);
  else hfMask(ctx, attentionMask, h);
  for (let i = 0; i < c.layers; i++) h = encoderLayer(ctx, i, h);
  if (c.norm === 'pre') h = layerNorm(ctx, `${ctx.s}/encoder/LayerNorm`, `${ctx.p}encoder.LayerNorm`, h);
  let logits: Value;
  if (c.family === 'distilbert') {
    const cls = e.op(ctx.s, 'Gather', [h, ctx.zero], { axis: 1 });
    const pre = gemm(ctx, '/m/pre_classifier', 'm.pre_classifier', cls, c.hidden, c.hidden);
    const act = e.op('/m', 'Relu', [pre]);
    logits = gemm(ctx, '/m/classifier', 'm.classifier', act, c.hidden, c.labels, 'logits');
  } else if (c.family === 'roberta') {
    const cls = e.op('/m/classifier', 'Gather', [h, ctx.zero], { axis: 1 });
    const dense = gemm(ctx, '/m/classifier/dense', 'm.classifier.dense', cls, c.hidden, c.hidden);
    const act = e.op('/m/classifier', 'Tanh', [dense]);
    logits = gemm(ctx, '/m/classifier/out_proj', 'm.classifier.out_proj', act, c.hidden, c.labels, 'logits');
  } else {
    const cls = e.op(`${ctx.s}/pooler`, 'Gather', [h, ctx.zero], { axis: 1 });
    const dense = gemm(ctx, `${ctx.s}/pooler/dense`, `${ctx.p}pooler.dense`, cls, c.hidden, c.hidden);
    const act = e.op(`${ctx.s}/pooler/activation`, 'Tanh', [dense]);
    logits = gemm(ctx, '/m/classifier', 'm.classifier', act, c.hidden, c.labels, 'logits');
  }
  g.outputs.push(logits);
  return model;
}

/** Builds and writes a generated model (for the benchmark: BERT-base is about 440 MB; never commit it). */
export function writeGeneratedModel(path: string, config: Partial<BertConfig> = {}): Model {
  const m = buildBert(config);
  if (fs.existsSync(path)) fs.rmSync(path);
  saveModel(m, path);
  return m;
}
