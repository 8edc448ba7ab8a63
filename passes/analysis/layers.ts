/**
 * Transformer layer recognition: the shared analysis that every structural pass (pruning, quantization, fusion,
 * top-k attention, diff) consumes. It recognizes each encoder layer once, structurally (never by node or tensor
 * names), and records for layer i the nodes and weights to edit.
 *
 * Dimension letters used in names and comments:
 *   B batch, S sequence, D hidden (model width), H heads, d head size (D = H * d), F FFN (intermediate) size.
 *
 * Recognized forms (what PyTorch / Hugging Face exports and onnxruntime's optimizer leave):
 * - projections: MatMul(x, W[in, out]) + Add(bias) (either operand order), MatMul alone (bias folded into a later
 *   SkipLayerNormalization or BiasGelu), Gemm (transB decides the layout), com.microsoft Attention's fused QKV weight;
 * - attention: Softmax-anchored eager attention with heads split by Reshape([B, S, -1, d] or [B, S, H, d]) +
 *   Transpose; scaling Mul/Div of the scores, Div/Mul of Q (DistilBERT), or SDPA's d^-1/4 on both Q and K;
 *   mask by Add or Where (DistilBERT, SDPA); SDPA's IsNaN/Where guard after Softmax; TopK-based sparse attention
 *   between Softmax and the context MatMul; com.microsoft Attention / MultiHeadAttention;
 * - LayerNorm: LayerNormalization, com.microsoft SkipLayerNormalization (residual fused), or the opset-14
 *   decomposition ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add;
 * - FFN: up projection, element-wise activation (erf GELU, tanh GELU, Gelu, BiasGelu, FastGelu, Relu, SiLU),
 *   down projection; post-norm (BERT) and pre-norm encoders.
 *
 * What is not recognized is listed in `unrecognized` with the node where matching stopped and the check that failed.
 * The analysis holds references to nodes and values: it is valid until the graph is edited (re-run it after).
 *
 * Use:
 *   const a = analyzeLayers(model);            // or ctx.facts.get('layers') after the `analyze-layers` pass
 *   const l = a.layers[i];                     // l.heads, l.headSize, l.ffnSize, l.norm, l.attentionKind, l.activation
 *   const { q, k, v, o, up, down } = projections(l);   // Linear: matmul node, weight (layout!), bias, biasAdd
 *   l.attention.headReshapes.q.input(1)        // the shape feeding the head split (Concat of constants)
 *   l.norms.attention.gamma, l.residuals.ffn, l.ffn.activationNodes, l.nodes (all of the layer's own nodes)
 */
import { AttrType, type Model, type Node, type Value } from '../../src/ir/index.js';
import { constInts, constTensor } from '../lib/consts.js';

// ---------------------------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------------------------

/**
 * A linear projection. Field names `matmul`, `weight`, `biasAdd`, `bias` match passes/lib/prune-types.ts `Linear`,
 * so a recognized projection can be handed to code written against that type.
 */
export interface Linear {
  /** 'matmul': MatMul(x, W) [+ Add]; 'gemm': Gemm(x, W, b); 'fused-qkv': a column slice of an Attention weight. */
  form: 'matmul' | 'gemm' | 'fused-qkv';
  /** The MatMul, Gemm, or (fused-qkv) com.microsoft Attention node. */
  matmul: Node;
  /** The weight initializer. Its layout is given by `layout`. */
  weight: Value;
  /** 'in-out': W is [in, out] (MatMul; Gemm transB=0; fused QKV [D, 3D]); 'out-in': W is [out, in] (Gemm transB=1). */
  layout: 'in-out' | 'out-in';
  /** The Add node adding the bias (MatMul form), when the bias is added separately. */
  biasAdd?: Node;
  /** The bias initializer [out], wherever it is added. */
  bias?: Value;
  /** A node that adds the bias as part of a fused op (SkipLayerNormalization input 4, BiasGelu input 1). */
  biasFusedInto?: Node;
  inFeatures: number;
  outFeatures: number;
  /** fused-qkv only: the columns [start, end) of this projection in the fused weight and bias. */
  columns?: [number, number];
  /**
   * A quantized projection (after `quantize`): how, and the nodes involved besides `matmul`. `weight` is then the
   * stored integer tensor: int8 [in, out] for the int8 forms, packed 4-bit blocks for MatMulNBits.
   */
  quant?: {
    form: 'qdq' | 'dynamic-quantize-matmul' | 'matmul-integer-to-float' | 'matmul-integer' | 'matmul-nbits';
    nodes: Node[];
  };
  /** The projection's input, `x_BSD`-like (before any activation quantization). */
  input: Value;
  /** The projection's output after its separately-added bias (the MatMul's output when there is none). */
  output: Value;
}

export type LayerNormForm = 'LayerNormalization' | 'SkipLayerNormalization' | 'decomposed';

export interface LayerNormInfo {
  form: LayerNormForm;
  /** Every node of the norm, in graph order (one node, or the nine of the decomposition). */
  nodes: Node[];
  /** The normalized input (SkipLayerNormalization: input 0, the branch). */
  input: Value;
  /** SkipLayerNormalization only: the residual input (input 1). */
  skip?: Value;
  output: Value;
  gamma: Value;
  beta?: Value;
  epsilon?: number;
}

export type AttentionKind = 'softmax' | 'topk' | 'ms-attention';

export type ScalingForm =
  /** scores * c (current HF eager). */
  | 'mul-scores'
  /** scores / c (older exports). */
  | 'div-scores'
  /** Q / c or Q * c before QK^T (DistilBERT). */
  | 'q'
  /** Q * c and K * c (Hugging Face SDPA export, c = d^-1/4). */
  | 'q-and-k'
  /** Inside a fused op (com.microsoft Attention). */
  | 'fused'
  | 'none';

export interface AttentionScaling {
  form: ScalingForm;
  /** The Mul/Div nodes that scale. */
  nodes: Node[];
  /** The overall factor the scores QK^T end up multiplied by (1/sqrt(d) normally). */
  factor: number;
}

export interface AttentionMask {
  /** 'add': scores + mask; 'where': Where(mask, scores, fill) style; 'mask-index': input of a fused op. */
  form: 'add' | 'where' | 'mask-index' | 'none';
  /** The nodes applying the mask inside the layer (Add, or Where and the per-layer Expand/Where feeding it). */
  nodes: Node[];
  /** The mask value the layer consumes (additive [B, 1, S, S], boolean, or mask index). */
  value?: Value;
}

export interface AttentionInfo {
  kind: AttentionKind;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  heads: number;
  headSize: number;
  scaling: AttentionScaling;
  mask: AttentionMask;
  /** The Softmax (null for fused attention). */
  softmax?: Node;
  /** SDPA's NaN guard after Softmax: IsNaN and Where. */
  nanGuard: Node[];
  /** TopK-based sparse attention: the TopK node and the nodes between Softmax and the context MatMul. */
  topk?: { node: Node; nodes: Node[] };
  /** scores_BHSS = MatMul(q_BHSd, kT_BHdS). */
  scores?: Node;
  /** context_BHSd = MatMul(probs_BHSS, v_BHSd). */
  context?: Node;
  /** Reshapes splitting Q, K, V into heads ([B, S, H, d]) and their shape inputs. */
  headReshapes?: { q: Node; k: Node; v: Node };
  /** Transposes: Q [0,2,1,3], K (to [B,H,d,S]), V [0,2,1,3]. */
  transposes?: { q: Node; k: Node[]; v: Node };
  /** The context's Transpose back to [B, S, H, d] and Reshape to [B, S, D] (merging heads). */
  contextTranspose?: Node;
  contextReshape?: Node;
  /** The fused com.microsoft Attention / MultiHeadAttention node. */
  fused?: Node;
}

export type ActivationKind =
  | 'erf-gelu'
  | 'tanh-gelu'
  /** ONNX Gelu (opset 20) or com.microsoft Gelu. */
  | 'gelu'
  | 'bias-gelu'
  | 'fast-gelu'
  | 'relu'
  | 'silu'
  | 'unknown';

export interface FfnInfo {
  up: Linear;
  down: Linear;
  activation: ActivationKind;
  /** The activation's nodes (between the up projection's output and the down projection), in graph order. */
  activationNodes: Node[];
  /** F: the intermediate size. */
  size: number;
}

export interface LayerInfo {
  /** Index among the complete layers, in residual-stream order, from 0. */
  index: number;
  /** Position along the residual stream counting partial layers too (equals `index` when there are none). */
  position: number;
  /** Residual stream into the layer (hidden_BSD) and out of it. */
  input: Value;
  output: Value;
  hidden: number;
  heads: number;
  headSize: number;
  ffnSize: number;
  norm: 'post' | 'pre';
  attentionKind: AttentionKind;
  activation: ActivationKind;
  attention: AttentionInfo;
  ffn: FfnInfo;
  /** Post-norm: the norms after each residual Add. Pre-norm: the norms before each sub-block. */
  norms: { attention: LayerNormInfo; ffn: LayerNormInfo };
  /** The residual Adds closing each sub-block (a SkipLayerNormalization when the residual is fused into it). */
  residuals: { attention: Node; ffn: Node };
  /** Every node of the layer, in graph order (excluding what it shares with other layers, such as the mask). */
  nodes: Node[];
}

/**
 * A layer of which one sub-block is left: the other was removed (typically by `prune`, which bypasses a block's
 * residual and keeps the post-norm LayerNorm). Listed apart so that `layers` keeps only complete layers.
 */
export interface PartialLayer {
  /** Position along the residual stream, counting complete and partial layers. */
  position: number;
  kind: 'attention-only' | 'ffn-only';
  norm: 'post' | 'pre';
  input: Value;
  output: Value;
  hidden: number;
  attention?: AttentionInfo;
  ffn?: FfnInfo;
  /** The norm of the sub-block that is left (post-norm: after its residual; pre-norm: before the sub-block). */
  normInfo: LayerNormInfo;
  /** Post-norm: the LayerNorm of the removed sub-block, which stays on the stream. */
  leftoverNorm?: LayerNormInfo;
  residual: Node;
}

export interface EmbeddingsInfo {
  word?: { gather: Node; table: Value };
  position?: { gather: Node; table: Value };
  tokenType?: { gather: Node; table: Value };
  norm?: LayerNormInfo;
  /** hidden_BSD entering layer 0. */
  output: Value;
}

export interface HeadInfo {
  /** The node picking the first token (Gather axis 1, Slice...), if any. */
  select?: Node;
  /** BERT pooler / RoBERTa classifier.dense / DistilBERT pre_classifier. */
  pooler?: Linear;
  poolerActivation?: Node;
  classifier?: Linear;
  nodes: Node[];
}

export interface Unrecognized {
  /** The node where matching stopped. */
  node: string;
  op: string;
  reason: string;
}

export interface LayerAnalysis {
  /** Complete layers, in residual-stream order; `layers[i].index === i`. */
  layers: LayerInfo[];
  /** Layers with one sub-block removed, in residual-stream order (see `position`). */
  partialLayers: PartialLayer[];
  embeddings?: EmbeddingsInfo;
  /** Pre-norm encoders: the norm after the last layer. */
  finalNorm?: LayerNormInfo;
  head?: HeadInfo;
  unrecognized: Unrecognized[];
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------------

class NoMatch extends Error {
  constructor(
    readonly node: Node,
    readonly reason: string,
  ) {
    super(reason);
  }
}

function fail(node: Node, reason: string): never {
  throw new NoMatch(node, reason);
}

const isDefault = (n: Node) => n.domain === '' || n.domain === 'ai.onnx';
const isMs = (n: Node) => n.domain === 'com.microsoft';
/** A node that passed an op check (branded so that a failed check does not narrow a Node to never). */
type Matched = Node & { readonly __matched: true };
function is(n: Node | null | undefined, op: string): n is Matched {
  return !!n && n.opType === op && isDefault(n);
}
function isMsOp(n: Node | null | undefined, op: string): n is Matched {
  return !!n && n.opType === op && isMs(n);
}
const label = (n: Node) => `'${n.name || '<unnamed>'}' (${n.qualifiedOp})`;

function isConst(v: Value | null): boolean {
  return constTensor(v) !== undefined;
}

/** A scalar (or one-element) float constant. */
function scalarOf(v: Value | null): number | undefined {
  const t = constTensor(v);
  if (!t || t.numElements !== 1) return undefined;
  try {
    return t.toNumbers()[0];
  } catch {
    return undefined;
  }
}

/** The weight-like constant at a node input: a 2-D initializer (or Constant). */
function weight2d(v: Value | null): [number, number] | undefined {
  const t = constTensor(v);
  if (!t || t.dims.length !== 2) return undefined;
  return [t.dims[0]!, t.dims[1]!];
}

function const1dSize(v: Value | null): number | undefined {
  const t = constTensor(v);
  if (!t) return undefined;
  return t.dims.length === 1 ? t.dims[0] : undefined;
}

function onlyConsumer(v: Value): Node | undefined {
  const c = v.consumers();
  return c.length === 1 && !v.isGraphOutput() ? c[0] : undefined;
}

function permOf(n: Node): number[] | undefined {
  return n.getInts('perm');
}
const samePerm = (a: number[] | undefined, b: number[]) =>
  !!a && a.length === b.length && a.every((x, i) => x === b[i]);

/** A Reshape's target shape from constants: an initializer / Constant, or a Concat of constants and (1-element) dynamic pieces (null). */
function reshapeTarget(v: Value | null): (number | null)[] | undefined {
  const c = constInts(v);
  if (c) return c;
  const p = v?.producer();
  if (!is(p, 'Concat')) return undefined;
  const out: (number | null)[] = [];
  for (const i of p.inputs) {
    const ci = constInts(i);
    if (ci) out.push(...ci);
    else out.push(null);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Projections
// ---------------------------------------------------------------------------------------------------------------

/** The float activation behind run-time quantization: DynamicQuantizeLinear(x) or DequantizeLinear(QuantizeLinear(x)). */
function unquant(v: Value): Value {
  const p = v.producer();
  if (is(p, 'DynamicQuantizeLinear') && v.outputIndex() === 0 && p.input(0)) return p.input(0)!;
  if (is(p, 'DequantizeLinear')) {
    const q = p.input(0)?.producer();
    if (is(q, 'QuantizeLinear') && q.input(0)) return q.input(0)!;
  }
  return v;
}

/** The nodes quantizing a projection's activation input (DynamicQuantizeLinear, or QuantizeLinear + DequantizeLinear). */
function inputQuantNodes(v: Value): Node[] {
  const p = v.producer();
  if (is(p, 'DynamicQuantizeLinear')) return [p];
  if (is(p, 'DequantizeLinear')) {
    const q = p.input(0)?.producer();
    if (is(q, 'QuantizeLinear')) return [q, p];
  }
  return [];
}

/**
 * A projection node, seen from the node: MatMul / Gemm with a constant weight, MatMul of a DequantizeLinear'd
 * constant (QDQ), com.microsoft DynamicQuantizeMatMul / MatMulIntegerToFloat / MatMulNBits, or MatMulInteger
 * followed by Cast and Mul. A separate Add of a constant bias after it is part of it.
 */
function projectionAt(n: Node): Linear | undefined {
  let l: Linear | undefined;
  const x0 = n.input(0);
  if (!x0 || isConst(x0)) return undefined;
  const x = unquant(x0);
  const xq = inputQuantNodes(x0);
  if (is(n, 'MatMul')) {
    let wv = n.input(1);
    let w = weight2d(wv);
    let quant: Linear['quant'];
    const dq = wv?.producer();
    if (!w && is(dq, 'DequantizeLinear') && weight2d(dq.input(0))) {
      wv = dq.input(0);
      w = weight2d(wv);
      quant = { form: 'qdq', nodes: [...xq, dq] };
    }
    if (!w || !wv) return undefined;
    l = {
      form: 'matmul',
      matmul: n,
      weight: wv,
      layout: 'in-out',
      inFeatures: w[0],
      outFeatures: w[1],
      input: x,
      output: n.output(0),
    };
    if (quant) l.quant = quant;
  } else if (is(n, 'Gemm')) {
    const w = weight2d(n.input(1));
    if (!w || n.getInt('transA', 0) !== 0) return undefined;
    const transB = n.getInt('transB', 0) === 1;
    l = {
      form: 'gemm',
      matmul: n,
      weight: n.input(1)!,
      layout: transB ? 'out-in' : 'in-out',
      inFeatures: transB ? w[1] : w[0],
      outFeatures: transB ? w[0] : w[1],
      input: x,
      output: n.output(0),
    };
    const b = n.input(2);
    if (b && isConst(b)) l.bias = b;
  } else if (isMsOp(n, 'DynamicQuantizeMatMul') || isMsOp(n, 'MatMulIntegerToFloat')) {
    const w = weight2d(n.input(1));
    if (!w) return undefined;
    const dyn = n.opType === 'DynamicQuantizeMatMul';
    l = {
      form: 'matmul',
      matmul: n,
      weight: n.input(1)!,
      layout: 'in-out',
      inFeatures: w[0],
      outFeatures: w[1],
      input: x,
      output: n.output(0),
    };
    l.quant = { form: dyn ? 'dynamic-quantize-matmul' : 'matmul-integer-to-float', nodes: xq };
    const b = n.input(dyn ? 4 : 6);
    if (b && const1dSize(b) === w[1]) l.bias = b;
  } else if (isMsOp(n, 'MatMulNBits')) {
    const K = n.getInt('K');
    const N = n.getInt('N');
    if (!K || !N || !isConst(n.input(1))) return undefined;
    l = {
      form: 'matmul',
      matmul: n,
      weight: n.input(1)!,
      layout: 'out-in',
      inFeatures: K,
      outFeatures: N,
      input: x,
      output: n.output(0),
    };
    l.quant = { form: 'matmul-nbits', nodes: xq };
    const b = n.input(5);
    if (b && const1dSize(b) === N) l.bias = b;
  } else if (is(n, 'MatMulInteger')) {
    const w = weight2d(n.input(1));
    const cast = onlyConsumer(n.output(0));
    const mul = cast && is(cast, 'Cast') ? onlyConsumer(cast.output(0)) : undefined;
    if (!w || !is(cast, 'Cast') || !is(mul, 'Mul')) return undefined;
    const scale = mul.input(0) === cast.output(0) ? mul.input(1)?.producer() : mul.input(0)?.producer();
    l = {
      form: 'matmul',
      matmul: n,
      weight: n.input(1)!,
      layout: 'in-out',
      inFeatures: w[0],
      outFeatures: w[1],
      input: x,
      output: mul.output(0),
    };
    l.quant = { form: 'matmul-integer', nodes: [...xq, cast, ...(is(scale, 'Mul') ? [scale] : []), mul] };
  }
  if (!l) return undefined;
  if (!l.bias) {
    const add = onlyConsumer(l.output);
    if (is(add, 'Add')) {
      const other = add.input(0) === l.output ? add.input(1) : add.input(0);
      if (const1dSize(other) === l.outFeatures) {
        l.biasAdd = add;
        l.bias = other!;
        l.output = add.output(0);
      }
    }
  }
  return l;
}

/** Projections reading `x` (directly, or through activation quantization). */
function projectionsReading(x: Value): Linear[] {
  const out: Linear[] = [];
  const cands: Node[] = [];
  for (const c of x.consumers()) {
    if (is(c, 'DynamicQuantizeLinear')) {
      cands.push(...c.output(0).consumers());
    } else if (is(c, 'QuantizeLinear')) {
      for (const d of c.output(0).consumers()) if (is(d, 'DequantizeLinear')) cands.push(...d.output(0).consumers());
    } else {
      cands.push(c);
    }
  }
  for (const c of cands) {
    const l = projectionAt(c);
    if (l && l.input === x && !out.some((o) => o.matmul === l.matmul)) out.push(l);
  }
  return out;
}

/** The projection whose (pre-bias) output `n` produces: the projection node itself, or the last Mul of MatMulInteger. */
function projectionEndingAt(n: Node | null | undefined): Linear | undefined {
  if (!n) return undefined;
  if (is(n, 'Mul')) {
    for (const i of n.inputs) {
      const cast = i?.producer();
      const mi = is(cast, 'Cast') ? cast.input(0)?.producer() : undefined;
      if (is(mi, 'MatMulInteger')) return projectionAt(mi);
    }
    return undefined;
  }
  return projectionAt(n);
}

/** The projection producing `v` (MatMul [+ Add bias] or Gemm); fails naming the node found instead. */
function projectionProducing(v: Value, what: string, from: Node): Linear {
  const p = v.producer();
  if (!p) fail(from, `${what}: '${v.name}' is a graph input or initializer, not the output of a projection`);
  if (is(p, 'Add')) {
    for (const [x, b] of [
      [p.input(0), p.input(1)],
      [p.input(1), p.input(0)],
    ] as const) {
      if (isConst(b)) {
        const l = projectionEndingAt(x?.producer());
        if (l && l.biasAdd === p) return l;
      }
    }
    fail(
      p,
      `${what}: expected MatMul(x, W) + Add(bias) with constant W and bias; this Add does not add a constant bias to a MatMul with a constant weight`,
    );
  }
  const l = projectionEndingAt(p);
  if (l && l.output === v) return l;
  fail(p, `${what}: expected a projection (MatMul or Gemm with a constant weight), found ${p.qualifiedOp}`);
}

// ---------------------------------------------------------------------------------------------------------------
// LayerNorms
// ---------------------------------------------------------------------------------------------------------------

/** The norm whose output is `v`, or undefined. */
function normProducing(v: Value): LayerNormInfo | undefined {
  const p = v.producer();
  if (!p) return undefined;
  if ((is(p, 'LayerNormalization') || isMsOp(p, 'LayerNormalization')) && v.outputIndex() === 0) {
    const info: LayerNormInfo = {
      form: 'LayerNormalization',
      nodes: [p],
      input: p.input(0)!,
      output: v,
      gamma: p.input(1)!,
    };
    if (p.input(2)) info.beta = p.input(2)!;
    const eps = p.getFloat('epsilon');
    if (eps !== undefined) info.epsilon = eps;
    return info;
  }
  if (isMsOp(p, 'SkipLayerNormalization') || isMsOp(p, 'SkipSimplifiedLayerNormalization')) {
    if (v.outputIndex() !== 0) return undefined;
    const info: LayerNormInfo = {
      form: 'SkipLayerNormalization',
      nodes: [p],
      input: p.input(0)!,
      skip: p.input(1)!,
      output: v,
      gamma: p.input(2)!,
    };
    if (p.input(3)) info.beta = p.input(3)!;
    const eps = p.getFloat('epsilon');
    if (eps !== undefined) info.epsilon = eps;
    return info;
  }
  return decomposedProducing(v);
}

/** (x - mean) / sqrt(var + eps) * gamma + beta, as exported at opset <= 16. */
function decomposedProducing(v: Value): LayerNormInfo | undefined {
  let n = v.producer();
  const nodes: Node[] = [];
  let beta: Value | undefined;
  let gamma: Value | undefined;
  if (is(n, 'Add')) {
    const [a, b] = [n.input(0), n.input(1)];
    const c = isConst(b) ? b : isConst(a) ? a : null;
    if (!c) return undefined;
    beta = c;
    nodes.push(n);
    n = (c === b ? a : b)?.producer() ?? null;
  }
  if (!is(n, 'Mul')) return undefined;
  {
    const [a, b] = [n.input(0), n.input(1)];
    const c = isConst(b) ? b : isConst(a) ? a : null;
    if (!c) return undefined;
    gamma = c;
    nodes.push(n);
    n = (c === b ? a : b)?.producer() ?? null;
  }
  if (!is(n, 'Div')) return undefined;
  const div = n;
  const sub = div.input(0)?.producer();
  const sqrt = div.input(1)?.producer();
  if (!is(sub, 'Sub') || !is(sqrt, 'Sqrt')) return undefined;
  const addEps = sqrt.input(0)?.producer();
  if (!is(addEps, 'Add')) return undefined;
  const varRm = (isConst(addEps.input(1)) ? addEps.input(0) : addEps.input(1))?.producer();
  const eps = scalarOf(isConst(addEps.input(1)) ? addEps.input(1) : addEps.input(0));
  if (!is(varRm, 'ReduceMean')) return undefined;
  const sq = varRm.input(0)?.producer();
  const sqOk =
    (is(sq, 'Pow') && sq.input(0) === sub.output(0) && scalarOf(sq.input(1)) === 2) ||
    (is(sq, 'Mul') && sq.input(0) === sub.output(0) && sq.input(1) === sub.output(0));
  if (!sqOk || !sq) return undefined;
  const meanRm = sub.input(1)?.producer();
  const x = sub.input(0);
  if (!is(meanRm, 'ReduceMean') || !x || meanRm.input(0) !== x) return undefined;
  const info: LayerNormInfo = {
    form: 'decomposed',
    nodes: [meanRm, sub, sq, varRm, addEps, sqrt, div, ...nodes.reverse()],
    input: x,
    output: v,
    gamma,
  };
  // Constant nodes feeding only the norm belong to it too.
  for (const m of [...info.nodes])
    for (const i of m.inputs) {
      const p = i?.producer();
      if (is(p, 'Constant') && i!.consumers().every((c) => info.nodes.includes(c))) info.nodes.push(p);
    }
  if (beta) info.beta = beta;
  if (eps !== undefined) info.epsilon = eps;
  return info;
}

/** A norm reading `x` (LayerNormalization input 0, SkipLayerNormalization input 0/1, or a decomposition). */
function normReading(x: Value, exclude?: Node): LayerNormInfo | undefined {
  for (const c of x.consumers()) {
    if (c === exclude) continue;
    if ((is(c, 'LayerNormalization') || isMsOp(c, 'LayerNormalization')) && c.input(0) === x)
      return normProducing(c.output(0));
    if (is(c, 'ReduceMean') && c.input(0) === x) {
      for (const s of c.output(0).consumers()) {
        if (!is(s, 'Sub') || s.input(0) !== x) continue;
        for (const d of s.output(0).consumers()) {
          if (!is(d, 'Div') || d.input(0) !== s.output(0)) continue;
          let out = d.output(0);
          const mul = onlyConsumer(out);
          if (is(mul, 'Mul')) {
            out = mul.output(0);
            const add = onlyConsumer(out);
            if (is(add, 'Add') && (isConst(add.input(0)) || isConst(add.input(1)))) out = add.output(0);
          }
          const info = decomposedProducing(out);
          if (info && info.input === x) return info;
        }
      }
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Attention cores
// ---------------------------------------------------------------------------------------------------------------

interface Core {
  attention: Omit<AttentionInfo, 'o' | 'heads' | 'headSize'> & { heads?: number; headSize?: number };
  /** The value entering the output projection (context_BSD). */
  context_BSD: Value;
  anchor: Node;
}

/** Whether `v` comes from a MatMul of two non-constant inputs through element-wise ops (depth-bounded). */
function leadsToScores(v: Value | null, depth = 6): boolean {
  const p = v?.producer();
  if (!p || depth === 0) return false;
  if (is(p, 'MatMul')) return !isConst(p.input(0)) && !isConst(p.input(1));
  if (['Mul', 'Div', 'Add', 'Sub', 'Where', 'Cast'].includes(p.opType) && isDefault(p))
    return p.inputs.some((i) => !isConst(i) && leadsToScores(i, depth - 1));
  return false;
}

function dependsOn(v: Value | null, pred: (n: Node) => boolean, depth = 6): Node | undefined {
  const p = v?.producer();
  if (!p || depth === 0) return undefined;
  if (pred(p)) return p;
  for (const i of p.inputs) {
    const r = dependsOn(i, pred, depth - 1);
    if (r) return r;
  }
  return undefined;
}

/** Walk back through Mul/Div by a scalar constant; returns the value before scaling, the nodes and the factor. */
function unscale(v: Value): { value: Value; nodes: Node[]; factor: number; ops: string[] } {
  const nodes: Node[] = [];
  const ops: string[] = [];
  let factor = 1;
  for (;;) {
    const p = v.producer();
    if (is(p, 'Mul')) {
      const s1 = scalarOf(p.input(1));
      const s0 = scalarOf(p.input(0));
      if (s1 !== undefined && !isConst(p.input(0))) {
        factor *= s1;
        v = p.input(0)!;
      } else if (s0 !== undefined && !isConst(p.input(1))) {
        factor *= s0;
        v = p.input(1)!;
      } else break;
      nodes.push(p);
      ops.push('Mul');
      continue;
    }
    if (is(p, 'Div')) {
      const s = scalarOf(p.input(1));
      if (s === undefined || s === 0 || isConst(p.input(0))) break;
      factor /= s;
      v = p.input(0)!;
      nodes.push(p);
      ops.push('Div');
      continue;
    }
    break;
  }
  return { value: v, nodes, factor, ops };
}

/** Q/K/V head split: [Transpose] <- Reshape([B, S, H|-1, d]) <- projection. */
function headSplit(
  v: Value,
  what: 'Q' | 'K' | 'V',
  from: Node,
): { linear: Linear; reshape: Node; transposes: Node[]; shape: (number | null)[] } {
  const transposes: Node[] = [];
  let perm = [0, 1, 2, 3];
  let cur = v;
  while (is(cur.producer(), 'Transpose')) {
    const t = cur.producer()!;
    const p = permOf(t);
    if (!p || p.length !== 4) fail(t, `${what} path: Transpose without a 4-D perm`);
    perm = perm.map((i) => p[i]!);
    transposes.unshift(t);
    cur = t.input(0)!;
  }
  const want = what === 'K' ? [[0, 2, 3, 1]] : [[0, 2, 1, 3]];
  if (!want.some((w) => samePerm(perm, w)))
    fail(
      transposes[0] ?? cur.producer() ?? from,
      `${what} path: expected a Transpose to ${what === 'K' ? '[B, H, d, S] (perm [0, 2, 3, 1])' : '[B, H, S, d] (perm [0, 2, 1, 3])'} of the head split, found perm [${perm.join(', ')}]`,
    );
  const r = cur.producer();
  if (!is(r, 'Reshape'))
    fail(r ?? from, `${what} path: expected a Reshape splitting heads, found ${r ? r.qualifiedOp : 'a graph input'}`);
  const shape = reshapeTarget(r.input(1));
  if (!shape || shape.length !== 4)
    fail(
      r,
      `${what} path: the Reshape's shape is not a 4-element constant or Concat of constants (cannot read heads and head size)`,
    );
  const linear = projectionProducing(r.input(0)!, `${what} projection`, r);
  return { linear, reshape: r, transposes, shape };
}

function softmaxCore(sm: Node): Core {
  if ((sm.getInt('axis') ?? -1) !== -1 && sm.getInt('axis') !== 3) fail(sm, 'Softmax is not over the last axis (keys)');
  // Forward: NaN guard, TopK sparse attention, then the context MatMul probs x V.
  const nanGuard: Node[] = [];
  let probs = sm.output(0);
  const c1 = onlyConsumer(probs);
  if (is(c1, 'IsNaN')) {
    const w = onlyConsumer(c1.output(0));
    if (!is(w, 'Where') || w.input(2) !== probs)
      fail(c1, 'IsNaN after Softmax is not the SDPA guard Where(IsNaN(p), 0, p)');
    nanGuard.push(c1, w);
    probs = w.output(0);
  } else if (probs.consumers().length === 2 && probs.consumers().some((c) => is(c, 'IsNaN'))) {
    const isnan = probs.consumers().find((c) => is(c, 'IsNaN'))!;
    const w = onlyConsumer(isnan.output(0));
    if (is(w, 'Where') && w.input(2) === probs) {
      nanGuard.push(isnan, w);
      probs = w.output(0);
    }
  }
  // Find the context MatMul: the first MatMul downstream of the probabilities (through TopK-style ops).
  let context: Node | undefined;
  let topk: { node: Node; nodes: Node[] } | undefined;
  {
    const seen = new Set<Node>();
    const queue: Node[] = [...probs.consumers()];
    const between: Node[] = [];
    while (queue.length && seen.size < 24) {
      const n = queue.shift()!;
      if (seen.has(n)) continue;
      seen.add(n);
      if (is(n, 'MatMul') && !isConst(n.input(0)) && !isConst(n.input(1))) {
        context = n;
        break;
      }
      between.push(n);
      for (const o of n.outputs) queue.push(...o.consumers());
    }
    if (!context) fail(sm, 'no MatMul applying the attention probabilities to V was found after the Softmax');
    const t = between.find((n) => is(n, 'TopK'));
    if (t) topk = { node: t, nodes: between };
    else if (between.length)
      fail(between[0]!, `unexpected ${between[0]!.qualifiedOp} between the Softmax and the context MatMul`);
  }
  // Backward: mask and scaling between the scores MatMul and the Softmax.
  const maskNodes: Node[] = [];
  let maskForm: AttentionMask['form'] = 'none';
  let maskValue: Value | undefined;
  const scaleNodes: Node[] = [];
  let scoreScale = 1;
  let scoreScaleOp = '';
  let v = sm.input(0)!;
  let scores: Node | undefined;
  for (let guard = 0; guard < 16; guard++) {
    const p = v.producer();
    if (!p) fail(sm, 'the Softmax input is a graph input, not attention scores');
    if (is(p, 'MatMul') && !isConst(p.input(0)) && !isConst(p.input(1))) {
      scores = p;
      break;
    }
    if ((is(p, 'Mul') || is(p, 'Div')) && scalarOf(p.input(1)) !== undefined) {
      const s = scalarOf(p.input(1))!;
      scoreScale = is(p, 'Mul') ? scoreScale * s : scoreScale / s;
      scoreScaleOp = p.opType;
      scaleNodes.push(p);
      v = p.input(0)!;
      continue;
    }
    if (is(p, 'Mul') && scalarOf(p.input(0)) !== undefined) {
      scoreScale *= scalarOf(p.input(0))!;
      scoreScaleOp = 'Mul';
      scaleNodes.push(p);
      v = p.input(1)!;
      continue;
    }
    if (is(p, 'Add')) {
      const side = leadsToScores(p.input(0)) ? 0 : leadsToScores(p.input(1)) ? 1 : -1;
      if (side < 0) fail(p, 'Add before Softmax: neither input comes from the QK^T MatMul');
      maskNodes.push(p);
      maskForm = maskForm === 'none' ? 'add' : maskForm;
      maskValue = p.input(1 - side)!;
      const mp = maskValue.producer();
      // a per-layer Where(keep, 0, -inf) (SDPA) belongs to the layer
      if (is(mp, 'Where') && isConst(mp.input(1)) && isConst(mp.input(2)) && maskValue.consumers().length === 1)
        maskNodes.push(mp);
      v = p.input(side)!;
      continue;
    }
    if (is(p, 'Where')) {
      const side = leadsToScores(p.input(1)) ? 1 : leadsToScores(p.input(2)) ? 2 : -1;
      if (side < 0) fail(p, 'Where before Softmax: neither branch comes from the QK^T MatMul');
      const t = dependsOn(p.input(0), (n) => is(n, 'TopK'));
      if (t) topk = { node: t, nodes: [p] };
      else {
        maskNodes.push(p);
        maskForm = 'where';
        maskValue = p.input(0)!;
        const ep = maskValue.producer();
        if (is(ep, 'Expand') && maskValue.consumers().length === 1) {
          maskNodes.push(ep);
          maskValue = ep.input(0)!;
        }
      }
      v = p.input(side)!;
      continue;
    }
    fail(
      p,
      `${p.qualifiedOp} between the scores and the Softmax is not a scaling by a constant, a mask Add or a Where`,
    );
  }
  if (!scores) fail(sm, 'no QK^T MatMul found before the Softmax');
  // Q and K sides, with SDPA / DistilBERT scaling before the MatMul.
  const qs = unscale(scores.input(0)!);
  const ks = unscale(scores.input(1)!);
  const q = headSplit(qs.value, 'Q', scores);
  const k = headSplit(ks.value, 'K', scores);
  // V: the value rows; a TopK gather formulation reads them through GatherElements/Reshape.
  let vIn = context.input(1)!;
  const vSkipped: Node[] = [];
  if (topk)
    for (let p = vIn.producer(); p && vSkipped.length < 6 && !is(p, 'Transpose'); p = vIn.producer()) {
      if (!['Reshape', 'GatherElements', 'Gather', 'Expand', 'Unsqueeze'].includes(p.opType) || !p.input(0)) break;
      vSkipped.push(p);
      vIn = p.input(0)!;
    }
  const vv = headSplit(vIn, 'V', context);
  // Context: Transpose [0,2,1,3] then Reshape to [B, S, D] (a TopK gather formulation squeezes first).
  let ctxOut = context.output(0);
  for (let c = onlyConsumer(ctxOut); topk && (is(c, 'Squeeze') || is(c, 'Reshape')); c = onlyConsumer(ctxOut)) {
    topk.nodes.push(c);
    ctxOut = c.output(0);
  }
  if (topk) topk.nodes.push(...vSkipped);
  const ct = onlyConsumer(ctxOut);
  if (!is(ct, 'Transpose') || !samePerm(permOf(ct), [0, 2, 1, 3]))
    fail(ct ?? context, 'the context MatMul is not followed by a Transpose back to [B, S, H, d] (perm [0, 2, 1, 3])');
  const cr = onlyConsumer(ct.output(0));
  if (!is(cr, 'Reshape')) fail(cr ?? ct, 'the context Transpose is not followed by a Reshape merging heads');
  // Scaling summary.
  const scaleAll = [...qs.nodes, ...ks.nodes, ...scaleNodes];
  let form: ScalingForm = 'none';
  if (qs.nodes.length && ks.nodes.length) form = 'q-and-k';
  else if (qs.nodes.length) form = 'q';
  else if (scaleNodes.length) form = scoreScaleOp === 'Div' ? 'div-scores' : 'mul-scores';
  const factor = qs.factor * ks.factor * scoreScale;
  const heads_ = (shape: (number | null)[], width: number, r: Node): [number, number] => {
    const h = shape[2];
    const d = shape[3];
    let H: number;
    let dd: number;
    if (typeof d === 'number' && d > 0) {
      dd = d;
      H = typeof h === 'number' && h > 0 ? h : width / d;
    } else if (typeof h === 'number' && h > 0) {
      H = h;
      dd = width / h;
    } else fail(r, 'the head-split Reshape gives neither the head count nor the head size as a constant');
    if (!Number.isInteger(H) || !Number.isInteger(dd) || H * dd !== width)
      fail(r, `heads ${H} x head size ${dd} does not match the projection width ${width}`);
    return [H, dd];
  };
  const [H, d] = heads_(q.shape, q.linear.outFeatures, q.reshape);
  const [Hk, dk] = heads_(k.shape, k.linear.outFeatures, k.reshape);
  const [Hv] = heads_(vv.shape, vv.linear.outFeatures, vv.reshape);
  if (H !== Hk || d !== dk || H !== Hv)
    fail(k.reshape, `Q has ${H} heads of ${d}, K ${Hk} of ${dk}, V ${Hv}: they must agree`);
  const attention: Core['attention'] = {
    kind: topk ? 'topk' : 'softmax',
    q: q.linear,
    k: k.linear,
    v: vv.linear,
    heads: H,
    headSize: d,
    scaling: { form, nodes: scaleAll, factor },
    mask: maskValue ? { form: maskForm, nodes: maskNodes, value: maskValue } : { form: 'none', nodes: maskNodes },
    softmax: sm,
    nanGuard,
    scores,
    context,
    headReshapes: { q: q.reshape, k: k.reshape, v: vv.reshape },
    transposes: { q: q.transposes[0]!, k: k.transposes, v: vv.transposes[0]! },
    contextTranspose: ct,
    contextReshape: cr,
  };
  if (topk) attention.topk = topk;
  return { attention, context_BSD: cr.output(0), anchor: sm };
}

function msAttentionCore(n: Node): Core {
  const H = n.getInt('num_heads');
  if (!H) fail(n, `${n.opType} has no num_heads attribute`);
  let q: Linear;
  let k: Linear;
  let v: Linear;
  if (n.opType === 'Attention') {
    const x = n.input(0);
    const w = weight2d(n.input(1));
    if (!x || !w) fail(n, 'Attention weight (input 1) is not a constant 2-D [D, 3D] tensor');
    if (w[1] % 3 !== 0) fail(n, `Attention weight width ${w[1]} is not 3 x D`);
    const D = w[1] / 3;
    const bias = n.input(2) && isConst(n.input(2)) ? n.input(2)! : undefined;
    const mk = (i: number): Linear => {
      const l: Linear = {
        form: 'fused-qkv',
        matmul: n,
        weight: n.input(1)!,
        layout: 'in-out',
        inFeatures: w[0],
        outFeatures: D,
        columns: [i * D, (i + 1) * D],
        input: x,
        output: n.output(0),
      };
      if (bias) l.bias = bias;
      return l;
    };
    [q, k, v] = [mk(0), mk(1), mk(2)];
  } else {
    q = projectionProducing(n.input(0)!, 'MultiHeadAttention query', n);
    k = projectionProducing(n.input(1)!, 'MultiHeadAttention key', n);
    v = projectionProducing(n.input(2)!, 'MultiHeadAttention value', n);
  }
  const width = q.outFeatures;
  if (width % H !== 0) fail(n, `projection width ${width} is not a multiple of num_heads ${H}`);
  const d = width / H;
  const maskIn = n.opType === 'Attention' ? n.input(3) : n.input(4);
  const scale = n.getFloat('scale');
  return {
    attention: {
      kind: 'ms-attention',
      q,
      k,
      v,
      heads: H,
      headSize: d,
      scaling: { form: 'fused', nodes: [], factor: scale ?? 1 / Math.sqrt(d) },
      mask: maskIn ? { form: 'mask-index', nodes: [], value: maskIn } : { form: 'none', nodes: [] },
      nanGuard: [],
      fused: n,
    },
    context_BSD: n.output(0),
    anchor: n,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------------------------

/** The consumer of a branch output closing a residual: Add(branch, r) or SkipLayerNormalization(branch, r, ...). */
function residualAfter(branch: Value, from: Node, what: string): { node: Node; residual: Value; sln?: LayerNormInfo } {
  const cs = branch.consumers();
  for (const c of cs) {
    if (isMsOp(c, 'SkipLayerNormalization') && (c.input(0) === branch || c.input(1) === branch)) {
      const info = normProducing(c.output(0))!;
      const residual = c.input(0) === branch ? c.input(1)! : c.input(0)!;
      return { node: c, residual, sln: info };
    }
  }
  for (const c of cs) {
    if (is(c, 'Add') && !isConst(c.input(0)) && !isConst(c.input(1))) {
      return { node: c, residual: c.input(0) === branch ? c.input(1)! : c.input(0)! };
    }
  }
  fail(from, `${what}: its output is not closed by a residual Add or SkipLayerNormalization`);
}

function foldSlnBias(l: Linear, sln?: LayerNormInfo): void {
  if (!sln || l.biasAdd || l.bias) return;
  const n = sln.nodes[0]!;
  const b = n.input(4);
  if (b && const1dSize(b) === l.outFeatures) {
    l.bias = b;
    l.biasFusedInto = n;
  }
}

const ACT_OPS = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Erf', 'Tanh', 'Relu', 'Gelu', 'Sigmoid', 'Cast', 'Sqrt']);
const MS_ACT_OPS = new Set(['Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu']);
const QUANT_OPS = new Set(['DynamicQuantizeLinear', 'QuantizeLinear', 'DequantizeLinear']);

function ffnAfter(up: Linear): { acts: Node[]; down: Linear; kind: ActivationKind } {
  // BiasGelu folds the up projection's bias.
  const start = up.output;
  const acts: Node[] = [];
  const seen = new Set<Node>();
  const queue: Node[] = [...start.consumers()];
  let down: Linear | undefined;
  while (queue.length) {
    const n = queue.shift()!;
    if (seen.has(n)) continue;
    seen.add(n);
    if (seen.size > 24) break;
    const l = projectionAt(n);
    if (l && l.inFeatures === up.outFeatures) {
      down = l;
      continue;
    }
    if (down?.quant?.nodes.includes(n)) continue; // e.g. MatMulInteger's scale Mul, which reads the quantized input
    if (QUANT_OPS.has(n.opType) && isDefault(n)) {
      // activation quantization of the down projection's input
      for (const o of n.outputs) queue.push(...o.consumers());
      continue;
    }
    const ok = (isDefault(n) && ACT_OPS.has(n.opType)) || (isMs(n) && MS_ACT_OPS.has(n.opType));
    if (!ok) fail(n, `FFN: ${n.qualifiedOp} after the up projection is not an element-wise activation op`);
    acts.push(n);
    for (const o of n.outputs) queue.push(...o.consumers());
  }
  if (!down)
    fail(
      up.matmul,
      `FFN: no down projection (MatMul with a constant [${up.outFeatures}, D] weight) after the up projection`,
    );
  for (const a of acts)
    for (const o of a.outputs)
      for (const c of o.consumers())
        if (
          c !== down.matmul &&
          !acts.includes(c) &&
          !(seen.has(c) && QUANT_OPS.has(c.opType)) &&
          !down.quant?.nodes.includes(c)
        )
          fail(a, `FFN activation output is also used by ${label(c)}, outside the FFN`);
  let kind: ActivationKind = 'unknown';
  const has = (op: string, ms = false) => acts.some((a) => a.opType === op && (ms ? isMs(a) : true));
  if (has('BiasGelu', true)) kind = 'bias-gelu';
  else if (has('FastGelu', true)) kind = 'fast-gelu';
  else if (has('Gelu')) kind = 'gelu';
  else if (has('Erf')) kind = 'erf-gelu';
  else if (has('Tanh')) kind = 'tanh-gelu';
  else if (has('Relu')) kind = 'relu';
  else if (has('Sigmoid')) kind = 'silu';
  const bg = acts.find((a) => isMsOp(a, 'BiasGelu') || isMsOp(a, 'FastGelu'));
  if (bg && !up.bias && bg.input(1) && const1dSize(bg.input(1)) === up.outFeatures) {
    up.bias = bg.input(1)!;
    up.biasFusedInto = bg;
  }
  return { acts, down, kind };
}

type Partial_ = Omit<LayerInfo, 'index' | 'position' | 'nodes'>;

interface FfnBlock {
  up: Linear;
  down: Linear;
  f: { acts: Node[]; down: Linear; kind: ActivationKind };
  r2: { node: Node; residual: Value; sln?: LayerNormInfo };
  preNorm?: LayerNormInfo;
  postNorm?: LayerNormInfo;
  output: Value;
}

/** The FFN sub-block on the stream `h`: [pre-norm LN] -> up -> activation -> down -> residual Add [-> post-norm LN]. */
function ffnBlock(h: Value, norm: 'post' | 'pre', from: Node): FfnBlock {
  let ffnIn = h;
  let preNorm: LayerNormInfo | undefined;
  if (norm === 'pre') {
    preNorm = normReading(h, undefined);
    if (!preNorm) fail(from, 'pre-norm: the residual stream after attention is not read by a LayerNorm before the FFN');
    ffnIn = preNorm.output;
  }
  const ups = projectionsReading(ffnIn);
  if (ups.length !== 1)
    fail(ffnIn.producer() ?? from, `FFN: expected one up projection reading '${ffnIn.name}', found ${ups.length}`);
  const up = ups[0]!;
  const f = ffnAfter(up);
  const down = f.down;
  const r2 = residualAfter(down.output, down.biasAdd ?? down.matmul, 'FFN down projection');
  foldSlnBias(down, r2.sln);
  if (r2.residual !== h)
    fail(r2.node, `FFN residual adds '${r2.residual.name}', not the stream after attention '${h.name}'`);
  const out: FfnBlock = { up, down, f, r2, output: r2.node.output(0) };
  if (preNorm) out.preNorm = preNorm;
  if (norm === 'post') {
    const ln = r2.sln ?? normReading(r2.node.output(0));
    if (!ln) fail(r2.node, 'residual Add after the FFN is not followed by a LayerNorm (post-norm)');
    out.postNorm = ln;
    out.output = ln.output;
  }
  return out;
}

type PartialOut = Omit<PartialLayer, 'position'>;

function completeLayer(core: Core, qkv: Set<Node>): Partial_ | PartialOut {
  const a = core.attention;
  const x = a.q.input;
  if (a.k.input !== x || a.v.input !== x)
    fail(a.q.matmul, 'Q, K and V projections read different inputs (cross-attention is not an encoder layer)');
  // Output projection: the context's only consumer.
  const os = projectionsReading(core.context_BSD);
  const oNode = os[0]?.matmul ?? core.context_BSD.consumers()[0];
  const o = os.length === 1 && core.context_BSD.consumers().length === 1 ? os[0] : undefined;
  if (!o)
    fail(
      oNode ?? core.anchor,
      'the merged context is not the input of one output projection (MatMul with a constant weight)',
    );
  const r1 = residualAfter(o.output, o.biasAdd ?? o.matmul, 'attention output projection');
  foldSlnBias(o, r1.sln);
  let norm: 'post' | 'pre';
  let attnNorm: LayerNormInfo;
  let h: Value;
  let input: Value;
  if (r1.residual === x) {
    norm = 'post';
    input = x;
    const ln = r1.sln ?? normReading(r1.node.output(0));
    if (!ln)
      fail(
        r1.node,
        'residual Add after attention is not followed by a LayerNorm (post-norm), and the attention input is not a LayerNorm of the residual (pre-norm)',
      );
    attnNorm = ln;
    h = ln.output;
  } else {
    const ln = normProducing(x);
    if (!ln || ln.input !== r1.residual)
      fail(
        r1.node,
        `the residual input '${r1.residual.name}' is neither the attention input (post-norm) nor the input of the LayerNorm feeding attention (pre-norm)`,
      );
    norm = 'pre';
    input = r1.residual;
    attnNorm = ln;
    h = r1.node.output(0);
  }
  // FFN.
  const attention: AttentionInfo = { ...a, o, heads: a.heads!, headSize: a.headSize! };
  let fb: FfnBlock;
  try {
    fb = ffnBlock(h, norm, r1.node);
  } catch (e) {
    // The FFN sub-block was removed when the stream after attention goes straight to the next layer's Q/K/V (or to
    // nothing but the head): an attention-only layer.
    const after = normReading(h);
    const next = after ? after.output : h;
    const readers = projectionsReading(next);
    if (e instanceof NoMatch && readers.every((l) => qkv.has(l.matmul)) && projectionsReading(h).length === 0) {
      const p: PartialOut = {
        kind: 'attention-only',
        norm,
        input,
        output: norm === 'post' && after ? after.output : h,
        hidden: o.outFeatures,
        attention,
        normInfo: attnNorm,
        residual: r1.node,
      };
      if (norm === 'post' && after) p.leftoverNorm = after;
      return p;
    }
    throw e;
  }
  const { up, down, f, r2, output } = fb;
  const ffnNorm = norm === 'post' ? fb.postNorm! : fb.preNorm!;
  return {
    input,
    output,
    hidden: o.outFeatures,
    heads: attention.heads,
    headSize: attention.headSize,
    ffnSize: up.outFeatures,
    norm,
    attentionKind: attention.kind,
    activation: f.kind,
    attention,
    ffn: { up, down, activation: f.kind, activationNodes: f.acts, size: up.outFeatures },
    norms: { attention: attnNorm, ffn: ffnNorm },
    residuals: { attention: r1.node, ffn: r2.node },
  };
}

/** Nodes between a layer's input and output: backward-reachable from the output and forward from the input. */
function layerNodes(l: Partial_, order: Map<Node, number>): Node[] {
  const back = new Set<Node>();
  const stack: Value[] = [l.output];
  const seenV = new Set<Value>();
  while (stack.length) {
    const v = stack.pop()!;
    if (seenV.has(v) || v === l.input) continue;
    seenV.add(v);
    const p = v.producer();
    if (!p || back.has(p)) continue;
    back.add(p);
    for (const i of p.inputs) if (i) stack.push(i);
  }
  const fwd = new Set<Node>();
  const q: Value[] = [l.input];
  while (q.length) {
    const v = q.pop()!;
    for (const c of v.consumers())
      if (back.has(c) && !fwd.has(c)) {
        fwd.add(c);
        q.push(...c.outputs);
      }
  }
  // constants and per-layer mask nodes (SDPA Where, DistilBERT Expand/Where) that read only constants or the shared mask
  for (const n of back)
    if (!fwd.has(n) && n.outputs.every((o) => o.consumers().length > 0 && o.consumers().every((c) => fwd.has(c))))
      if (is(n, 'Constant') || l.attention.mask.nodes.includes(n)) fwd.add(n);
  for (const n of l.attention.mask.nodes) fwd.add(n);
  // Drop what is shared: a node whose result is used outside the layer (other than the layer output) is not the
  // layer's own (e.g. the mask computed from the embeddings' shape, read by every layer).
  for (let changed = true; changed;) {
    changed = false;
    for (const n of fwd)
      for (const o of n.outputs)
        if (o !== l.output && (o.isGraphOutput() || o.consumers().some((c) => !fwd.has(c)))) {
          fwd.delete(n);
          changed = true;
          break;
        }
  }
  return [...fwd].sort((a, b) => order.get(a)! - order.get(b)!);
}

// ---------------------------------------------------------------------------------------------------------------
// Embeddings and head
// ---------------------------------------------------------------------------------------------------------------

function embeddingsInfo(out: Value): EmbeddingsInfo | undefined {
  const info: EmbeddingsInfo = { output: out };
  const norm = normProducing(out);
  let sum = out;
  if (norm) {
    info.norm = norm;
    sum = norm.input;
  }
  const gathers: Node[] = [];
  const stack: Value[] = [sum];
  const seen = new Set<Value>();
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    const p = v.producer();
    if (is(p, 'Gather') && weight2d(p.input(0))) gathers.push(p);
    else if (is(p, 'Add')) for (const i of p.inputs) if (i) stack.push(i);
  }
  if (!gathers.length) return norm ? info : undefined;
  gathers.sort((a, b) => constTensor(b.input(0))!.dims[0]! - constTensor(a.input(0))!.dims[0]!);
  const byInput = gathers.filter((g) => g.input(1)?.isGraphInput());
  const word = byInput[0] ?? gathers[0]!;
  info.word = { gather: word, table: word.input(0)! };
  for (const g of gathers) {
    if (g === word) continue;
    const rows = constTensor(g.input(0))!.dims[0]!;
    const direct = g.input(1)?.isGraphInput() ?? false;
    if ((direct || rows <= 16) && !info.tokenType) info.tokenType = { gather: g, table: g.input(0)! };
    else if (!info.position) info.position = { gather: g, table: g.input(0)! };
  }
  return info;
}

function headInfo(from: Value): HeadInfo | undefined {
  const nodes: Node[] = [];
  const linears: Linear[] = [];
  let select: Node | undefined;
  let act: Node | undefined;
  let v = from;
  for (let i = 0; i < 12; i++) {
    if (v.isGraphOutput()) break;
    const cs = v.consumers().filter((c) => !is(c, 'Shape'));
    if (cs.length !== 1) break;
    const n = cs[0]!;
    const l = projectionAt(n);
    if (l) {
      linears.push(l);
      nodes.push(n);
      if (l.biasAdd) nodes.push(l.biasAdd);
      v = l.output;
      continue;
    }
    if (['Gather', 'Slice', 'Squeeze', 'Reshape', 'Flatten'].includes(n.opType) && !linears.length) select ??= n;
    else if (['Tanh', 'Relu', 'Gelu', 'Erf', 'Sigmoid'].includes(n.opType) && linears.length) act ??= n;
    nodes.push(n);
    v = n.output(0);
  }
  if (!linears.length) return undefined;
  const h: HeadInfo = { nodes, classifier: linears[linears.length - 1]! };
  if (linears.length > 1) h.pooler = linears[linears.length - 2]!;
  if (select) h.select = select;
  if (act) h.poolerActivation = act;
  return h;
}

// ---------------------------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------------------------

/** Recognize the encoder layers of a model (main graph). Never throws for an unrecognized model: see `unrecognized`. */
export function analyzeLayers(model: Model): LayerAnalysis {
  const g = model.graph;
  const order = new Map<Node, number>();
  let i = 0;
  for (const n of g) order.set(n, i++);
  const unrecognized: Unrecognized[] = [];
  const note = (e: unknown) => {
    if (!(e instanceof NoMatch)) throw e;
    unrecognized.push({ node: e.node.name, op: e.node.qualifiedOp, reason: e.reason });
  };
  // 1. Attention cores.
  const cores: Core[] = [];
  for (const n of g) {
    try {
      if (is(n, 'Softmax')) {
        // a Softmax over a projection's output (class probabilities) is not attention
        if (!leadsToScores(n.input(0), 8) && dependsOn(n.input(0), (p) => projectionAt(p) !== undefined, 4)) continue;
        cores.push(softmaxCore(n));
      } else if (isMsOp(n, 'Attention') || isMsOp(n, 'MultiHeadAttention')) cores.push(msAttentionCore(n));
    } catch (e) {
      note(e);
    }
  }
  const qkv = new Set<Node>();
  for (const c of cores) for (const l of [c.attention.q, c.attention.k, c.attention.v]) qkv.add(l.matmul);
  // 2. Complete layers around each core (or attention-only layers whose FFN was removed).
  const found: Partial_[] = [];
  const partials: PartialOut[] = [];
  for (const core of cores) {
    try {
      const r = completeLayer(core, qkv);
      if ('kind' in r) partials.push(r);
      else found.push(r);
    } catch (e) {
      note(e);
    }
  }
  // 3. FFN-only layers (attention removed): an unclaimed up projection closing a residual on its own stream.
  const claimed = new Set<Node>();
  const claim = (ls: Linear[]) => ls.forEach((l) => claimed.add(l.matmul));
  for (const l of found) claim([l.attention.q, l.attention.k, l.attention.v, l.attention.o, l.ffn.up, l.ffn.down]);
  for (const p of partials) if (p.attention) claim([p.attention.q, p.attention.k, p.attention.v, p.attention.o]);
  // Only on a stream that comes from a recognized block or the embeddings: an FFN after an attention block that
  // was not recognized is not an FFN-only layer.
  const blockOutputs = new Set<Value>([...found.map((l) => l.output), ...partials.map((p) => p.output)]);
  const streamOk = (v: Value) => blockOutputs.has(v) || embeddingsInfo(v)?.word !== undefined;
  if (found.length + partials.length > 0)
    for (const n of g) {
      if (claimed.has(n) || qkv.has(n)) continue;
      const up = projectionAt(n);
      if (!up) continue;
      for (const norm of ['post', 'pre'] as const) {
        let h = up.input;
        let leftover: LayerNormInfo | undefined;
        if (norm === 'pre') {
          const ln = normProducing(up.input);
          if (!ln) continue;
          h = ln.input;
          if (!streamOk(h)) continue;
        } else {
          const ln = normProducing(h);
          if (!streamOk(h) && !(ln && streamOk(ln.input))) continue;
          if (!streamOk(h)) leftover = ln;
        }
        let fb: FfnBlock;
        try {
          fb = ffnBlock(h, norm, n);
        } catch {
          continue;
        }
        if (fb.up.matmul !== n) continue;
        claim([fb.up, fb.down]);
        blockOutputs.add(fb.output);
        partials.push({
          ...(leftover ? { leftoverNorm: leftover } : {}),
          kind: 'ffn-only',
          norm,
          input: leftover ? leftover.input : h,
          output: fb.output,
          hidden: fb.down.outFeatures,
          ffn: { up: fb.up, down: fb.down, activation: fb.f.kind, activationNodes: fb.f.acts, size: fb.up.outFeatures },
          normInfo: (norm === 'post' ? fb.postNorm : fb.preNorm)!,
          residual: fb.r2.node,
        });
        break;
      }
    }
  // 4. Order along the residual stream: each layer's input is the previous one's output.
  type Block = { full?: Partial_; part?: PartialOut; input: Value; output: Value };
  const blocks: Block[] = [
    ...found.map((l) => ({ full: l, input: l.input, output: l.output })),
    ...partials.map((p) => ({ part: p, input: p.input, output: p.output })),
  ];
  const firstNode = (b: Block) =>
    Math.min(
      ...[b.full?.attention.q.matmul, b.part?.attention?.q.matmul, b.part?.ffn?.up.matmul].map((n) =>
        n ? (order.get(n) ?? Infinity) : Infinity,
      ),
    );
  blocks.sort((a, b) => firstNode(a) - firstNode(b));
  const byInput = new Map<Value, Block>();
  for (const b of blocks) if (!byInput.has(b.input)) byInput.set(b.input, b);
  const outputs = new Set(blocks.map((b) => b.output));
  const ordered: Block[] = [];
  const firsts = blocks.filter((b) => !outputs.has(b.input));
  for (const f of firsts) {
    let cur: Block | undefined = f;
    while (cur && !ordered.includes(cur)) {
      ordered.push(cur);
      cur = byInput.get(cur.output);
    }
  }
  for (const b of blocks) if (!ordered.includes(b)) ordered.push(b);
  if (firsts.length > 1)
    for (const f of firsts.slice(1)) {
      const n = f.full?.attention.q.matmul ?? f.part?.attention?.q.matmul ?? f.part!.ffn!.up.matmul;
      unrecognized.push({
        node: n.name,
        op: n.qualifiedOp,
        reason: `layer reading '${f.input.name}' does not continue the residual stream of the previous layer`,
      });
    }
  const byOrder = (a: Node, b: Node) => (order.get(a) ?? 0) - (order.get(b) ?? 0);
  const sortAttention = (a: AttentionInfo) => {
    a.mask.nodes.sort(byOrder);
    a.scaling.nodes.sort(byOrder);
  };
  for (const b of ordered) {
    const l = b.full;
    if (l) {
      l.ffn.activationNodes.sort(byOrder);
      l.norms.attention.nodes.sort(byOrder);
      l.norms.ffn.nodes.sort(byOrder);
      sortAttention(l.attention);
    }
    if (b.part) {
      b.part.normInfo.nodes.sort(byOrder);
      b.part.ffn?.activationNodes.sort(byOrder);
      if (b.part.attention) sortAttention(b.part.attention);
    }
  }
  const layers: LayerInfo[] = [];
  const partialLayers: PartialLayer[] = [];
  ordered.forEach((b, position) => {
    if (b.full) layers.push({ index: layers.length, position, ...b.full, nodes: layerNodes(b.full, order) });
    else partialLayers.push({ position, ...b.part! });
  });
  const result: LayerAnalysis = { layers, partialLayers, unrecognized };
  if (ordered.length) {
    const emb = embeddingsInfo(ordered[0]!.input);
    if (emb) result.embeddings = emb;
    let last = ordered[ordered.length - 1]!.output;
    const pre = (ordered[0]!.full ?? ordered[0]!.part)!.norm === 'pre';
    if (pre) {
      const fn = normReading(last);
      if (fn) {
        result.finalNorm = fn;
        last = fn.output;
      }
    }
    const head = headInfo(last);
    if (head) result.head = head;
  }
  // 5. Projections nobody claimed.
  for (const n of result.head?.nodes ?? []) claimed.add(n);
  const reported = new Set(unrecognized.map((u) => u.node));
  for (const n of g) {
    if (claimed.has(n) || reported.has(n.name)) continue;
    if ((is(n, 'MatMul') || is(n, 'Gemm')) && projectionAt(n))
      unrecognized.push({
        node: n.name,
        op: n.qualifiedOp,
        reason: 'projection with a constant weight that is not part of any recognized layer or the classifier head',
      });
  }
  return result;
}

/** The layer with index i, or undefined. */
export function layerAt(a: LayerAnalysis, i: number): LayerInfo | undefined {
  return a.layers[i];
}

/** The six projections of a layer by role, for passes that edit weights. */
export function projections(l: LayerInfo): Record<'q' | 'k' | 'v' | 'o' | 'up' | 'down', Linear> {
  return { q: l.attention.q, k: l.attention.k, v: l.attention.v, o: l.attention.o, up: l.ffn.up, down: l.ffn.down };
}

/**
 * A JSON-friendly summary of one layer (names of nodes and values, no object references). `index` is the position
 * along the residual stream (counting partial layers), as `axc inspect --layers` prints it.
 */
export function layerSummary(l: LayerInfo): Record<string, unknown> {
  const a = l.attention;
  const lin = (x: Linear) => ({
    node: x.matmul.name,
    form: x.form,
    weight: x.weight.name,
    layout: x.layout,
    shape: [x.inFeatures, x.outFeatures],
    ...(x.bias ? { bias: x.bias.name } : {}),
    ...(x.columns ? { columns: x.columns } : {}),
  });
  const ln = (n: LayerNormInfo) => ({ form: n.form, node: n.nodes[n.nodes.length - 1]!.name, gamma: n.gamma.name });
  return {
    index: l.position,
    heads: l.heads,
    headSize: l.headSize,
    ffnSize: l.ffnSize,
    norm: l.norm,
    attention: l.attentionKind,
    activation: l.activation,
    hidden: l.hidden,
    scaling: { form: a.scaling.form, factor: Number(a.scaling.factor.toPrecision(7)) },
    mask: a.mask.form,
    layerNorm: l.norms.attention.form,
    input: l.input.name,
    output: l.output.name,
    projections: { q: lin(a.q), k: lin(a.k), v: lin(a.v), o: lin(a.o), up: lin(l.ffn.up), down: lin(l.ffn.down) },
    norms: { attention: ln(l.norms.attention), ffn: ln(l.norms.ffn) },
    ...(a.softmax ? { softmax: a.softmax.name } : {}),
    ...(a.fused ? { fused: a.fused.name } : {}),
    nodes: l.nodes.length,
  };
}

void AttrType;

/** A JSON-friendly summary of a partial layer: the removed sub-block shows as 0 heads or FFN size 0. */
export function partialSummary(p: PartialLayer): Record<string, unknown> {
  const a = p.attention;
  return {
    index: p.position,
    heads: a ? a.heads : 0,
    headSize: a ? a.headSize : 0,
    ffnSize: p.ffn ? p.ffn.size : 0,
    norm: p.norm,
    attention: a ? a.kind : 'none',
    activation: p.ffn ? p.ffn.activation : 'none',
    hidden: p.hidden,
    partial: p.kind,
    layerNorm: p.normInfo.form,
    input: p.input.name,
    output: p.output.name,
    residual: p.residual.name,
  };
}

/** Complete and partial layers in residual-stream order, as JSON summaries. */
export function allLayerSummaries(a: LayerAnalysis): Record<string, unknown>[] {
  const rows: [number, Record<string, unknown>][] = [
    ...a.layers.map((l) => [l.position, layerSummary(l)] as [number, Record<string, unknown>]),
    ...a.partialLayers.map((p) => [p.position, partialSummary(p)] as [number, Record<string, unknown>]),
  ];
  return rows.sort((x, y) => x[0] - y[0]).map((r) => r[1]);
}
