/**
 * Attention fusion: each recognized eager self-attention block (Q/K/V projections, head split, scaled QK^T, additive
 * padding mask, Softmax, probs x V, head merge) becomes one com.microsoft Attention node with a fused QKV weight
 * [D_in, 3*H*d], a fused bias [3*H*d], `num_heads` per layer (layers may differ after pruning), the raw int32
 * attention mask [B, S] as mask_index, and `scale` when the scores are not scaled by 1/sqrt(d).
 *
 * It declines, with a reason naming nodes, what it cannot rewrite faithfully: SDPA exports (NaN guard, masks by
 * Where), top-k attention layers, masks that are not the standard padding mask derived from one int [B, S] input
 * (causal or windowed masks, pre-computed float masks), quantized or non-constant projections, cross-attention, and
 * blocks whose intermediate values are used outside the block. The standard-ONNX target leaves attention unfused.
 *
 * Dimension letters: B batch, S sequence, D hidden (input width), H heads, d head size.
 */
import { diag, nodeLoc, type Diagnostic } from '../../src/diagnostics/index.js';
import { AttrType, Builder, DataType, Tensor, type Model, type Node, type Value } from '../../src/ir/index.js';
import { analyzeLayers, type AttentionInfo, type LayerAnalysis, type Linear } from '../analysis/layers.js';

/** What the fusion needs of a layer: its attention block and its position (complete or attention-only layers). */
type AttnLayer = { index: number; attention: AttentionInfo };

/** Complete layers and the attention-only layers pruning leaves (whose FFN block was removed), in stream order. */
function attentionLayers(an: LayerAnalysis): AttnLayer[] {
  const partial = an.partialLayers
    .filter((p) => p.attention)
    .map((p) => ({ index: p.position, attention: p.attention! }));
  const full = an.layers.map((l) => ({ index: l.position, attention: l.attention }));
  return [...full, ...partial].sort((a, b) => a.index - b.index);
}
import type { Fusion, FusionEnv, FusionResult } from '../fuse.js';
import { constTensor } from './consts.js';
import { removeNode } from './graph-util.js';
import { quantizeInt8, quantWeightValues, type QuantWeight, type QuantWeightValues } from './quant.js';

export interface AttentionFusionOptions {
  /** Fuse only these layer indices (default: every recognized layer). */
  layers?: number[];
}

export interface AttentionDecline {
  layer: number | null;
  node: string;
  op: string;
  reason: string;
}

export interface AttentionFusionResult {
  fused: number[];
  declined: AttentionDecline[];
  /** The Attention nodes made, in layer order. */
  nodes: Node[];
}

export const ATTENTION_FUSION_MESSAGES = {
  AX3751: 'an attention block was not fused (note with the reason and the node)',
};

const MS = 'com.microsoft';
const STAMP = 'fuse';

/** Ops allowed on the data path from the attention_mask input to the additive mask. */
const MASK_PATH_OPS = new Set([
  'Cast',
  'Unsqueeze',
  'Reshape',
  'Flatten',
  'Expand',
  'Gather',
  'Concat',
  'And',
  'Sub',
  'Mul',
  'Where',
  'Not',
  'Equal',
  'Identity',
  'Squeeze',
  'Slice',
]);

/** A scalar constant's value (one element), or undefined. */
function scalar(v: Value | null): number | undefined {
  const t = constTensor(v);
  if (!t || t.numElements !== 1) return undefined;
  return t.toNumbers()[0];
}

interface MaskCheck {
  ok: boolean;
  reason?: string;
  node?: Node;
  /** The int [B, S] graph input the mask comes from. */
  input?: Value;
}

/**
 * Whether `mask` is the standard additive padding mask of one int [B, S] input: 0 where the input is 1 and a large
 * negative number (<= -1e4) where it is 0, broadcast over heads and queries. Accepts the two Hugging Face forms:
 * `(1 - mask) * c` and `Where(mask, 0, c)`, with Cast/Unsqueeze/Expand/And (with an always-true shape-derived term)
 * in between. Walks the data path only: values computed from Shape are sizes, not data.
 */
export function checkStandardMask(mask: Value): MaskCheck {
  const p = mask.producer();
  if (!p) return { ok: false, reason: `the mask '${mask.name}' is a graph input or initializer (pre-computed)` };
  // the last op: Where(keep, 0, c) or Mul(flipped, c)
  let start: Value | null;
  let flipsWanted: number;
  if (p.opType === 'Where') {
    const zero = scalar(p.input(1));
    const fill = scalar(p.input(2));
    if (zero !== 0 || fill === undefined || fill > -1e4)
      return {
        ok: false,
        node: p,
        reason: `Where does not select 0 for kept keys and a large negative fill (got ${zero}, ${fill})`,
      };
    start = p.input(0);
    flipsWanted = 0;
  } else if (p.opType === 'Mul') {
    const ci = scalar(p.input(1)) !== undefined ? 1 : 0;
    const c = scalar(p.input(ci));
    if (c === undefined || c > -1e4)
      return { ok: false, node: p, reason: `the mask is scaled by ${c}, not by a large negative constant` };
    start = p.input(1 - ci);
    flipsWanted = 1; // (1 - mask): one flip of the keep mask
  } else {
    return {
      ok: false,
      node: p,
      reason: `the mask is made by ${p.qualifiedOp}, not by Where or Mul (not the standard padding mask)`,
    };
  }
  // walk the data path back to one int graph input, counting polarity flips (Not, Equal(x, 0), Sub(1, x))
  const inputs = new Set<Value>();
  const memo = new Map<Value, number | string>();
  const walk = (v: Value | null): number | string => {
    if (!v) return 'a missing input';
    const m = memo.get(v);
    if (m !== undefined) return m;
    let r: number | string;
    const n = v.producer();
    if (v.isGraphInput() && !v.constValue) {
      inputs.add(v);
      r = 0;
    } else if (!n) r = constTensor(v) ? -1 : `'${v.name}' is not a constant`;
    else if (n.opType === 'Shape' || n.opType === 'Constant' || n.opType === 'ConstantOfShape')
      r = -1; // size or constant
    else r = walkNode(n);
    memo.set(v, r);
    return r;
  };
  const ranges = new Map<Value, boolean>();
  const fromRange = (v: Value | null): boolean => {
    if (!v) return false;
    const known = ranges.get(v);
    if (known !== undefined) return known;
    ranges.set(v, false);
    const n = v.producer();
    const r = !n || n.opType === 'Shape' ? false : n.opType === 'Range' ? true : n.inputs.some((x) => fromRange(x));
    ranges.set(v, r);
    return r;
  };
  // returns flips (>= 0) on a data path, -1 for shape/constant-only values, or a reason
  const walkNode = (n: Node): number | string => {
    const ins = n.inputs.map((x) => walk(x));
    const bad = ins.find((x) => typeof x === 'string');
    if (bad !== undefined) return bad;
    const data = ins.map((x, i) => ({ x: x as number, i })).filter((e) => e.x >= 0);
    if (data.length === 0) {
      // a size computation; comparisons here can only be the always-true Range >= 0 of recent exports
      // (Equal on sizes, as in Expand's shape handling, is fine)
      const compares = ['Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Equal'].includes(n.opType);
      const alwaysTrue = n.opType === 'GreaterOrEqual' && scalar(n.input(1)) === 0;
      if (compares && !alwaysTrue && n.inputs.some((x) => fromRange(x)))
        return `${n.label()} compares positions (a causal or windowed mask)`;
      return -1;
    }
    if (!MASK_PATH_OPS.has(n.opType) || (n.domain !== '' && n.domain !== 'ai.onnx'))
      return `${n.label()} on the mask path is not a broadcast, cast or select`;
    const flips = Math.max(...data.map((e) => e.x));
    if (data.some((e) => e.x !== flips)) return `${n.label()} combines mask values of different polarity`;
    switch (n.opType) {
      case 'Not':
        return flips + 1;
      case 'Equal':
        return scalar(n.input(data[0]!.i === 0 ? 1 : 0)) === 0
          ? flips + 1
          : `${n.label()} compares the mask with a value other than 0`;
      case 'Sub':
        return data.length === 1 && data[0]!.i === 1 && scalar(n.input(0)) === 1
          ? flips + 1
          : `${n.label()} is not 1 - mask`;
      case 'Mul':
        return data.length === 1 && scalar(n.input(1 - data[0]!.i)) === 1 ? flips : `${n.label()} scales the mask`;
      case 'Where':
        return `${n.label()} selects inside the mask path`;
      default:
        return flips;
    }
  };
  const r = walk(start);
  if (typeof r === 'string') return { ok: false, node: p, reason: r };
  if (r < 0 || inputs.size !== 1)
    return { ok: false, node: p, reason: 'the mask does not come from exactly one model input' };
  const input = [...inputs][0]!;
  const et = input.elemType;
  if (et !== DataType.INT64 && et !== DataType.INT32 && et !== DataType.BOOL)
    return { ok: false, node: p, reason: `the mask input '${input.name}' is not an int or bool tensor` };
  if (input.shape && input.shape.length !== 2)
    return { ok: false, node: p, reason: `the mask input '${input.name}' is not [batch, sequence]` };
  if (r % 2 !== flipsWanted % 2)
    return {
      ok: false,
      node: p,
      reason: 'the mask has the opposite polarity (1 = masked): not the standard padding mask',
    };
  return { ok: true, input };
}

/** The weight as float32 [in, out] (transposing 'out-in' layouts), or a reason. */
function weightInOut(l: Linear): Float32Array | string {
  const t = constTensor(l.weight);
  if (!t) return `the weight of ${l.matmul.label()} is not a constant`;
  if (t.dataType !== DataType.FLOAT) return `the weight of ${l.matmul.label()} is not float32 (quantized?)`;
  const w = t.toFloat32();
  if (l.layout === 'in-out') return w;
  const out = new Float32Array(w.length);
  const I = l.inFeatures;
  const O = l.outFeatures;
  for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) out[i * O + o] = w[o * I + i]!;
  return out;
}

function biasOf(l: Linear): Float32Array | string {
  if (!l.bias) return new Float32Array(l.outFeatures);
  const t = constTensor(l.bias);
  if (!t || t.dataType !== DataType.FLOAT) return `the bias of ${l.matmul.label()} is not a float32 constant`;
  return t.toFloat32();
}

/** Nodes on the block's data path, whose outputs must not escape. */
function blockNodes(l: AttnLayer): Node[] {
  const a = l.attention;
  const out: Node[] = [];
  const add = (n: Node | undefined) => n && !out.includes(n) && out.push(n);
  for (const p of [a.q, a.k, a.v]) {
    add(p.matmul);
    add(p.biasAdd);
  }
  add(a.headReshapes?.q);
  add(a.headReshapes?.k);
  add(a.headReshapes?.v);
  add(a.transposes?.q);
  for (const t of a.transposes?.k ?? []) add(t);
  add(a.transposes?.v);
  add(a.scores);
  for (const n of a.scaling.nodes) add(n);
  for (const n of a.mask.nodes) add(n);
  add(a.softmax);
  add(a.context);
  add(a.contextTranspose);
  add(a.contextReshape);
  return out;
}

type Plan = { layer: AttnLayer; mask?: Value } | { decline: AttentionDecline };

function planLayer(l: AttnLayer, model: Model): Plan {
  const a = l.attention;
  const no = (n: Node, reason: string): Plan => ({
    decline: { layer: l.index, node: n.name, op: n.qualifiedOp, reason },
  });
  if (a.kind === 'ms-attention') return no(a.fused ?? a.q.matmul, 'already a fused attention node');
  if (a.kind === 'topk')
    return no(a.topk?.node ?? a.softmax ?? a.q.matmul, 'top-k attention layer: com.microsoft Attention has no top-k');
  if (a.nanGuard.length) return no(a.nanGuard[0]!, 'SDPA export (NaN guard after Softmax): left unfused');
  if (a.scaling.form === 'q-and-k')
    return no(a.scaling.nodes[0] ?? a.q.matmul, 'SDPA export (Q and K each scaled by d^-1/4): left unfused');
  const softmax = a.softmax!;
  if (!a.contextReshape || !a.context || !a.scores)
    return no(softmax, 'the head merge (Transpose + Reshape) was not recognized');
  for (const p of [a.q, a.k, a.v])
    if (p.form !== 'matmul' && p.form !== 'gemm') return no(p.matmul, `projection form '${p.form}' cannot be fused`);
  if (a.q.input !== a.k.input || a.q.input !== a.v.input)
    return no(a.q.matmul, 'Q, K and V do not read the same input (cross-attention)');
  if (a.q.outFeatures !== a.k.outFeatures)
    return no(a.k.matmul, `Q and K widths differ (${a.q.outFeatures} vs ${a.k.outFeatures})`);
  if (a.q.outFeatures !== a.heads * a.headSize)
    return no(a.q.matmul, `Q width ${a.q.outFeatures} is not heads x head size (${a.heads} x ${a.headSize})`);
  let maskInput: Value | undefined;
  if (a.mask.form === 'add') {
    if (!a.mask.value) return no(a.mask.nodes[0] ?? softmax, 'the additive mask has no value');
    const m = checkStandardMask(a.mask.value);
    if (!m.ok) return no(m.node ?? a.mask.nodes[0] ?? softmax, `mask: ${m.reason}`);
    maskInput = m.input;
  } else if (a.mask.form !== 'none') {
    return no(a.mask.nodes[0] ?? softmax, `mask applied by ${a.mask.form} (DistilBERT/SDPA style): left unfused`);
  }
  // nothing inside may escape, except the block's output
  const nodes = blockNodes(l);
  const inside = new Set(nodes);
  for (const n of nodes) {
    for (const o of n.outputs) {
      if (n === a.contextReshape) continue;
      if (o.isGraphOutput()) return no(n, `its output '${o.name}' is a graph output`);
      for (const u of o.uses())
        if (!inside.has(u.node))
          return no(n, `its output '${o.name}' is also used by ${u.node.label()} outside the attention block`);
    }
  }
  for (const p of [a.q, a.k, a.v]) {
    const w = weightInOut(p);
    if (typeof w === 'string') return no(p.matmul, w);
    const b = biasOf(p);
    if (typeof b === 'string') return no(p.matmul, b);
  }
  void model;
  return maskInput ? { layer: l, mask: maskInput } : { layer: l };
}

/**
 * Fuse the attention blocks of a model in place. `analysis` is the layer analysis of the model as it is now (run
 * again when omitted). Returns the fused layer indices and the declines with reasons.
 */
export function fuseAttention(
  model: Model,
  analysis?: LayerAnalysis,
  opts: AttentionFusionOptions = {},
): AttentionFusionResult {
  const an = analysis ?? analyzeLayers(model);
  const g = model.graph;
  const declined: AttentionDecline[] = an.unrecognized.map((u) => ({
    layer: null,
    node: u.node,
    op: u.op,
    reason: `not recognized as a layer: ${u.reason}`,
  }));
  const plans: { layer: AttnLayer; mask?: Value }[] = [];
  for (const l of attentionLayers(an)) {
    if (opts.layers && !opts.layers.includes(l.index)) continue;
    const p = planLayer(l, model);
    if ('decline' in p) declined.push(p.decline);
    else plans.push(p);
  }
  const made: Node[] = [];
  const maskIndex = new Map<Value, Value>();
  for (const { layer: l, mask } of plans) {
    const a = l.attention;
    const anchor = a.contextReshape!;
    const b = new Builder(g, anchor, STAMP);
    const out = anchor.output(0);
    const y_BSD = buildAttention(model, l, mask, b, maskIndex);
    made.push(b.lastNode()!);
    out.replaceAllUsesWith(y_BSD);
    // the old block is dead now (nothing inside escaped); its shape and constant feeders are left to dce
    const old = blockNodes(l);
    for (let n = anchor as Node | null; n;) {
      const prev: Node | null = n.prev();
      if (old.includes(n) && n.outputs.every((o) => o.uses().length === 0 && !o.isGraphOutput())) removeNode(n);
      n = prev;
    }
  }
  if (made.length && !model.opsetImports.has(MS)) model.opsetImports.set(MS, 1);
  return { fused: plans.map((p) => p.layer.index), declined, nodes: made };
}

/** Build the com.microsoft Attention node of a layer with `b`; the mask Cast is shared through `maskIndex`. */
function buildAttention(
  model: Model,
  l: AttnLayer,
  mask: Value | undefined,
  b: Builder,
  maskIndex = sharedMasks(model),
): Value {
  const g = model.graph;
  const a = l.attention;
  const scope = scopeOf(a.softmax!);
  let mask_BS: Value | null = null;
  if (mask) {
    mask_BS = maskIndex.get(mask) ?? null;
    if (!mask_BS) {
      // one Cast for every layer, at the top of the graph
      const top = new Builder(g, g.first(), STAMP);
      mask_BS =
        mask.elemType === DataType.INT32
          ? mask
          : top.op1('Cast', [mask], { name: `${mask.name}/mask_index`, attrs: { to: DataType.INT32 } });
      maskIndex.set(mask, mask_BS);
    }
  }
  const D = a.q.inFeatures;
  const widths = [a.q.outFeatures, a.k.outFeatures, a.v.outFeatures];
  const total = widths[0]! + widths[1]! + widths[2]!;
  const projs = [a.q, a.k, a.v];
  const wName = `${scope}/qkv_weight`;
  const weight = Tensor.lazy(wName, DataType.FLOAT, [D, total], () => {
    const ws = projs.map((p) => weightInOut(p) as Float32Array);
    const out = new Float32Array(D * total);
    for (let i = 0; i < D; i++) {
      let o = i * total;
      ws.forEach((w, j) => {
        const W = widths[j]!;
        out.set(w.subarray(i * W, (i + 1) * W), o);
        o += W;
      });
    }
    return new Uint8Array(out.buffer);
  });
  const bias = Tensor.lazy(`${scope}/qkv_bias`, DataType.FLOAT, [total], () => {
    const out = new Float32Array(total);
    let o = 0;
    projs.forEach((p) => {
      const bb = biasOf(p) as Float32Array;
      out.set(bb, o);
      o += bb.length;
    });
    return new Uint8Array(out.buffer);
  });
  const attrs: Record<string, number | number[]> = { num_heads: a.heads };
  if (Math.abs(a.scaling.factor * Math.sqrt(a.headSize) - 1) > 1e-6) attrs.scale = a.scaling.factor;
  if (widths[2] !== widths[0]) attrs.qkv_hidden_sizes = widths;
  const out = a.contextReshape!.output(0);
  const y_BSD = b.op1(
    'Attention',
    [a.q.input, b.initializer(wName, weight), b.initializer(`${scope}/qkv_bias`, bias), mask_BS],
    {
      domain: MS,
      name: `${scope}/Attention`,
      attrs,
    },
  );
  if (out.type) y_BSD.type = out.type;
  return y_BSD;
}

/** Cast(attention_mask) to int32 values already made, per model (reused when still in the graph). */
const maskCasts = new WeakMap<Model, Map<Value, Value>>();
function sharedMasks(model: Model): Map<Value, Value> {
  let m = maskCasts.get(model);
  if (!m) maskCasts.set(model, (m = new Map()));
  for (const [k, v] of [...m]) if (v !== k && v.graph !== model.graph) m.delete(k);
  return m;
}

function scopeOf(n: Node): string {
  const i = n.name.lastIndexOf('/');
  return i > 0 ? n.name.slice(0, i) : n.name || 'attention';
}

/** Notes for declines, located at the node. */
export function attentionDeclineDiagnostics(r: AttentionFusionResult, graph = ''): Diagnostic[] {
  return r.declined.map((d) =>
    diag(
      'AX3751',
      'note',
      `did not fuse attention${d.layer !== null ? ` of layer ${d.layer}` : ''} at '${d.node}' (${d.op}): ${d.reason}`,
      nodeLoc(d.node, d.op, graph),
    ),
  );
}

// --- the `attention` entry of the fuse pass's table ------------------------------------------------------------

interface Cached {
  graphNodes: number;
  bySoftmax: Map<Node, AttnLayer>;
  unrecognized: Set<string>;
}
const analyses = new WeakMap<Model, Cached>();

/** The analysis of the current graph, recomputed when the layer's nodes are no longer all in the graph. */
function layerOf(model: Model, softmax: Node): AttnLayer | undefined {
  let c = analyses.get(model);
  const fresh = (l: AttnLayer | undefined) => l !== undefined && blockNodes(l).every((n) => n.graph === model.graph);
  if (!c || !fresh(c.bySoftmax.get(softmax))) {
    const an = analyzeLayers(model);
    c = {
      graphNodes: model.graph.nodeCount,
      bySoftmax: new Map(),
      unrecognized: new Set(an.unrecognized.map((u) => u.node)),
    };
    for (const l of attentionLayers(an)) if (l.attention.softmax) c.bySoftmax.set(l.attention.softmax, l);
    analyses.set(model, c);
  }
  return c.bySoftmax.get(softmax);
}

/**
 * `fuse attention`: one match per recognized attention layer, anchored at its Softmax. The fuse pass checks that no
 * intermediate value escapes, rewrites, and removes the matched nodes.
 */
export const attentionFusion: Fusion = {
  name: 'attention',
  summary: 'eager self-attention (Q/K/V, scaled QK^T, padding mask, Softmax, probs x V) into com.microsoft Attention',
  anchors: ['Softmax'],
  match(anchor: Node, env: FusionEnv): FusionResult {
    if (anchor.domain !== '' && anchor.domain !== 'ai.onnx') return null;
    const l = layerOf(env.model, anchor);
    if (!l) return { declined: true, node: anchor, reason: 'this Softmax is not part of a recognized attention layer' };
    if (env.target === 'onnx')
      return {
        declined: true,
        node: anchor,
        reason: 'target onnx: com.microsoft Attention is not standard ONNX, left unfused',
      };
    const p = planLayer(l, env.model);
    if ('decline' in p) {
      const n = env.graph.nodes().find((x) => x.name === p.decline.node) ?? anchor;
      return { declined: true, node: n, reason: `layer ${l.index}: ${p.decline.reason}` };
    }
    const a = l.attention;
    return {
      nodes: blockNodes(l),
      output: a.contextReshape!.output(0),
      usesMicrosoftDomain: true,
      rewrite: (b: Builder) => buildAttention(env.model, l, p.mask, b),
    };
  },
};

// --- int8: com.microsoft Attention -> DynamicQuantizeLinear + QAttention -------------------------------------------

export interface QuantizeAttentionResult {
  quantized: number;
  declined: AttentionDecline[];
  bytesBefore: number;
  bytesAfter: number;
}

/** QAttention's attributes (onnxruntime contrib schema); Attention's others (qkv_hidden_sizes, ...) have no equivalent. */
const QATTENTION_ATTRS = new Set([
  'num_heads',
  'unidirectional',
  'do_rotary',
  'past_present_share_buffer',
  'mask_filter_value',
  'scale',
]);

/** Why a com.microsoft Attention node cannot become QAttention, or undefined when it can. */
export function qAttentionDecline(n: Node): string | undefined {
  const w = constTensor(n.input(1));
  if (!w || w.dataType !== DataType.FLOAT || w.dims.length !== 2)
    return 'the QKV weight is not a constant float32 matrix';
  if (n.inputs.length > 4 && n.inputs.slice(4).some((v) => v !== null))
    return 'past state or attention bias inputs are not supported by this rewrite';
  for (const k of n.attributes.keys())
    if (!QATTENTION_ATTRS.has(k))
      return `attribute ${k} has no QAttention equivalent${k === 'qkv_hidden_sizes' ? ' (V width differs from Q/K after pruning)' : ''}`;
  return undefined;
}

/**
 * Replace one com.microsoft Attention (checked with qAttentionDecline) by QAttention with the int8 weight `qw`
 * (QuantWeight of the [D, 3*H*d] QKV weight). The input is quantized to uint8 at run time (DynamicQuantizeLinear), or
 * with constant `staticInput` scale and zero point (QuantizeLinear, from calibration). Nodes are stamped `stamp`;
 * the QAttention output takes the Attention output's name. Returns the new node and the initializers made.
 */
export function rewriteQAttention(
  model: Model,
  n: Node,
  qw: QuantWeight,
  opts: { stamp?: string; staticInput?: { scale: Value; zeroPoint: Value } } = {},
): { node: Node; weights: QuantWeightValues } {
  const g = model.graph;
  const b = new Builder(g, n, opts.stamp ?? 'quantize');
  let x_u8: Value, xScale: Value, xZero: Value;
  if (opts.staticInput) {
    xScale = opts.staticInput.scale;
    xZero = opts.staticInput.zeroPoint;
    x_u8 = b.op1('QuantizeLinear', [n.input(0), xScale, xZero], { name: `${n.name}/QuantizeLinear` });
  } else
    [x_u8, xScale, xZero] = b.op('DynamicQuantizeLinear', [n.input(0)], {
      name: `${n.name}/DynamicQuantizeLinear`,
      outputs: 3,
    }) as [Value, Value, Value];
  const wv = quantWeightValues(b, `${n.input(1)!.name}`, qw);
  const attrs: Record<string, number | number[]> = {};
  for (const [k, a] of n.attributes) {
    if (a.data.type === AttrType.INT || a.data.type === AttrType.FLOAT || a.data.type === AttrType.INTS)
      attrs[k] = a.data.value;
  }
  const y = b.op1(
    'QAttention',
    [x_u8, wv.q_KN, n.input(2), xScale, wv.scale, n.input(3) ?? null, xZero, wv.zeroPoint],
    { domain: MS, name: `${n.name}/QAttention`, attrs },
  );
  const node = b.lastNode()!;
  const out = n.output(0);
  if (out.type) y.type = out.type;
  const name = out.name;
  out.replaceAllUsesWith(y);
  removeNode(n);
  y.name = name;
  return { node, weights: wv };
}

/**
 * Turn every com.microsoft Attention with a constant float32 QKV weight into onnxruntime's int8 form: the input is
 * quantized at run time (DynamicQuantizeLinear, uint8) and the weight is stored int8 (symmetric, per tensor or per
 * output column). The `quantize` pass does the same (with layer selection, keep-float and reports) through
 * rewriteQAttention; this is the library call.
 */
export function quantizeAttention(model: Model, opts: { perChannel?: boolean } = {}): QuantizeAttentionResult {
  const g = model.graph;
  const r: QuantizeAttentionResult = { quantized: 0, declined: [], bytesBefore: 0, bytesAfter: 0 };
  for (const n of g.nodes()) {
    if (n.opType !== 'Attention' || n.domain !== MS) continue;
    const why = qAttentionDecline(n);
    if (why) {
      r.declined.push({ layer: null, node: n.name, op: n.qualifiedOp, reason: why });
      continue;
    }
    const w = constTensor(n.input(1))!;
    const [K, N] = w.dims as [number, number];
    const qw = quantizeInt8(w.toFloat32(), K, N, opts.perChannel ?? true, true);
    rewriteQAttention(model, n, qw);
    r.bytesBefore += w.byteLength;
    r.bytesAfter += K * N + qw.scale.length * 5;
    r.quantized++;
  }
  g.invalidateNames();
  return r;
}
