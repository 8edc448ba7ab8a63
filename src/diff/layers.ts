/**
 * What `axc diff` needs to know about each encoder layer, in both models: the Q/K/V/O and FFN projections in any
 * of the forms axc writes (float MatMul or Gemm, QDQ DequantizeLinear→MatMul, MatMulInteger, DynamicQuantizeMatMul,
 * MatMulIntegerToFloat, MatMulNBits, com.microsoft Attention), their precision, the head count and head size, the
 * FFN width and the attention kind (softmax, top-k with its k, fused).
 *
 * This is a reading of the graph for reporting only; it never edits. It is deliberately tolerant of quantized and
 * pruned forms (the shared layer analysis in passes/analysis recognizes float exports for the passes that edit them).
 *
 * Dimension letters: S sequence, D hidden, H heads, d head size, F FFN size; weights are read as [in, out].
 */
import { AttrType, DataType, dtypeName, type Model, type Node, type Tensor, type Value } from '../ir/index.js';

/** A projection: a product of the activations with a constant weight, in one of its forms. */
export interface Projection {
  node: Node;
  /** The node whose output carries the projection's result (a Cast/Mul after MatMulInteger, or the node itself). */
  form: string;
  in: number;
  out: number;
  precision: string;
  /** The weight as floats [in, out] row-major; for forms whose scale is not local (MatMulInteger), q - zero point. */
  matrix(): Float32Array;
}

export interface LayerView {
  /** Order along the residual stream (0-based). */
  index: number;
  attention: {
    kind: string;
    q: Projection;
    k: Projection;
    v: Projection;
    o: Projection | null;
    heads: number;
    headSize: number;
    /** top-k attention's k, when the layer keeps only the k largest probabilities. */
    topk?: number;
    /** Anchor node (Softmax or fused attention op). */
    anchor: Node;
  } | null;
  ffn: { in: Projection; out: Projection; size: number } | null;
  /** Hidden size D. */
  hidden: number;
  /** Nodes that belong to the layer, in graph order (for drawing). */
  nodes: Node[];
}

const LAYERNORM_OPS = new Set([
  'LayerNormalization',
  'SkipLayerNormalization',
  'SimplifiedLayerNormalization',
  'SkipSimplifiedLayerNormalization',
]);

function constOf(v: Value | null): Tensor | undefined {
  if (!v) return undefined;
  if (v.constValue && !v.isGraphInput()) return v.constValue;
  const p = v.producer();
  if (p && p.opType === 'Constant') {
    const a = p.attributes.get('value');
    if (a && a.data.type === AttrType.TENSOR) return a.data.value;
  }
  return undefined;
}

function numbers(t: Tensor | undefined): number[] | undefined {
  if (!t) return undefined;
  try {
    return t.toNumbers();
  } catch {
    return undefined;
  }
}

function floats(t: Tensor): Float32Array {
  return t.dataType === DataType.FLOAT ? t.toFloat32() : Float32Array.from(t.toNumbers());
}

function kindOfScale(scale: Tensor | undefined, n: number, label: string): string {
  if (!scale) return label;
  return scale.numElements > 1 && scale.numElements === n ? `${label} per-channel` : `${label} per-tensor`;
}

/** Recognize a projection node (with its constant weight), or undefined. */
export function projectionOf(n: Node): Projection | undefined {
  const op = n.opType;
  const dom = n.domain === 'ai.onnx' ? '' : n.domain;
  if (dom === '' && op === 'MatMul') {
    const w = n.input(1);
    if (!w || n.input(0) === null || constOf(n.input(0))) return undefined;
    const t = constOf(w);
    if (t && t.dims.length === 2) {
      return {
        node: n,
        form: 'MatMul',
        in: t.dims[0]!,
        out: t.dims[1]!,
        precision: dtypeName(t.dataType),
        matrix: () => floats(t),
      };
    }
    const dq = w.producer();
    if (dq && dq.opType === 'DequantizeLinear') {
      const q = constOf(dq.input(0));
      if (!q || q.dims.length !== 2) return undefined;
      const scale = constOf(dq.input(1));
      const zp = constOf(dq.input(2));
      const [K, N] = [q.dims[0]!, q.dims[1]!];
      const block = dq.getInt('block_size', 0);
      const axis = dq.getInt('axis', 1);
      const label = dtypeName(q.dataType);
      const precision = block > 0 ? `${label} block ${block}` : kindOfScale(scale, N, label);
      return {
        node: n,
        form: 'QDQ',
        in: K,
        out: N,
        precision,
        matrix: () => dequant(q, scale, zp, block, axis),
      };
    }
    return undefined;
  }
  if (dom === '' && op === 'Gemm') {
    const t = constOf(n.input(1));
    if (!t || t.dims.length !== 2 || constOf(n.input(0))) return undefined;
    const transB = n.getInt('transB', 0) === 1;
    const [K, N] = transB ? [t.dims[1]!, t.dims[0]!] : [t.dims[0]!, t.dims[1]!];
    return {
      node: n,
      form: 'Gemm',
      in: K,
      out: N,
      precision: dtypeName(t.dataType),
      matrix: () => (transB ? transpose(floats(t), N, K) : floats(t)),
    };
  }
  if (dom === '' && op === 'MatMulInteger') {
    const q = constOf(n.input(1));
    if (!q || q.dims.length !== 2) return undefined;
    const [K, N] = [q.dims[0]!, q.dims[1]!];
    const zp = constOf(n.input(3));
    const scale = downstreamScale(n, N);
    return {
      node: n,
      form: 'MatMulInteger',
      in: K,
      out: N,
      precision: kindOfScale(scale ?? (zp && zp.numElements > 1 ? zp : undefined), N, dtypeName(q.dataType)),
      matrix: () => dequant(q, scale, zp, 0, 1),
    };
  }
  if (dom === 'com.microsoft' && (op === 'DynamicQuantizeMatMul' || op === 'MatMulIntegerToFloat')) {
    const q = constOf(n.input(1));
    if (!q || q.dims.length !== 2) return undefined;
    const [K, N] = [q.dims[0]!, q.dims[1]!];
    const scale = constOf(n.input(op === 'DynamicQuantizeMatMul' ? 2 : 3));
    const zp = constOf(n.input(op === 'DynamicQuantizeMatMul' ? 3 : 5));
    return {
      node: n,
      form: op,
      in: K,
      out: N,
      precision: kindOfScale(scale, N, dtypeName(q.dataType)),
      matrix: () => dequant(q, scale, zp, 0, 1),
    };
  }
  if (dom === 'com.microsoft' && op === 'MatMulNBits') {
    const b = constOf(n.input(1));
    const K = n.getInt('K');
    const N = n.getInt('N');
    const bits = n.getInt('bits', 4);
    const block = n.getInt('block_size', 32);
    if (!b || K === undefined || N === undefined) return undefined;
    const scales = constOf(n.input(2));
    const zp = constOf(n.input(3));
    return {
      node: n,
      form: op,
      in: K,
      out: N,
      precision: `int${bits} block ${block}`,
      matrix: () => unpackNBits(b, scales, zp, K, N, bits, block),
    };
  }
  return undefined;
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

/** w[k, n] = (q - zp) * scale for per-tensor, per-column (axis 1) and block-wise along K (axis 0) scales. */
function dequant(
  q: Tensor,
  scale: Tensor | undefined,
  zp: Tensor | undefined,
  block: number,
  axis: number,
): Float32Array {
  const [K, N] = [q.dims[0]!, q.dims[1]!];
  const qv = q.toNumbers();
  const s = scale ? floats(scale) : undefined;
  const z = zp ? zp.toNumbers() : undefined;
  const out = new Float32Array(K * N);
  for (let k = 0; k < K; k++)
    for (let n = 0; n < N; n++) {
      let idx = 0;
      if (block > 0 && axis === 0) idx = Math.floor(k / block) * N + n;
      else if (block > 0) idx = k * Math.ceil(N / block) + Math.floor(n / block);
      else if (s && s.length > 1) idx = axis === 0 ? k : n;
      const zz = z ? (z.length > 1 ? z[idx]! : z[0]!) : 0;
      const ss = s ? (s.length > 1 ? s[idx]! : s[0]!) : 1;
      out[k * N + n] = (qv[k * N + n]! - zz) * ss;
    }
  return out;
}

/** MatMulNBits: B is [N, blocks, blob] (each blob `block * bits / 8` bytes, low nibble first); returns [K, N]. */
function unpackNBits(
  b: Tensor,
  scales: Tensor | undefined,
  zp: Tensor | undefined,
  K: number,
  N: number,
  bits: number,
  block: number,
): Float32Array {
  const bytes = b.bytes();
  const blocks = Math.ceil(K / block);
  const blob = (block * bits) / 8;
  const s = scales ? floats(scales) : undefined;
  const zq = zp && zp.dataType === DataType.UINT8 ? zp.bytes() : undefined;
  const zf = zp && zp.dataType !== DataType.UINT8 ? floats(zp) : undefined;
  const zpBytesPerRow = Math.ceil((blocks * bits) / 8);
  const out = new Float32Array(K * N);
  for (let n = 0; n < N; n++)
    for (let blk = 0; blk < blocks; blk++) {
      let z = 2 ** (bits - 1);
      if (zq) {
        const byte = zq[n * zpBytesPerRow + Math.floor((blk * bits) / 8)]!;
        z = bits === 4 ? (blk & 1 ? byte >> 4 : byte & 15) : byte;
      } else if (zf) z = zf[n * blocks + blk]!;
      const sc = s ? s[n * blocks + blk]! : 1;
      for (let i = 0; i < block; i++) {
        const k = blk * block + i;
        if (k >= K) break;
        const off = (n * blocks + blk) * blob;
        let q: number;
        if (bits === 4) {
          const byte = bytes[off + (i >> 1)]!;
          q = i & 1 ? byte >> 4 : byte & 15;
        } else q = bytes[off + i]!;
        out[k * N + n] = zf ? q * sc - z * sc : (q - z) * sc;
      }
    }
  return out;
}

/** The scale a MatMulInteger's int32 result is multiplied by (Cast → Mul(const) or Mul(Mul(a_scale, const))). */
function downstreamScale(n: Node, N: number): Tensor | undefined {
  let frontier: Node[] = [n];
  for (let depth = 0; depth < 3; depth++) {
    const next: Node[] = [];
    for (const f of frontier)
      for (const c of f.outputs[0]?.consumers() ?? []) {
        if (c.opType === 'Mul') {
          for (const inp of c.inputs) {
            const t = constOf(inp);
            if (t && t.dataType === DataType.FLOAT && (t.numElements === N || t.numElements === 1)) return t;
            const p = inp?.producer();
            if (p && p.opType === 'Mul')
              for (const i2 of p.inputs) {
                const t2 = constOf(i2);
                if (t2 && t2.dataType === DataType.FLOAT && (t2.numElements === N || t2.numElements === 1)) return t2;
              }
          }
        }
        next.push(c);
      }
    frontier = next;
  }
  return undefined;
}

/** Ops an upward search for a projection does not cross. */
const STOP_UP = new Set(['Softmax', 'Shape', ...LAYERNORM_OPS]);

/** Breadth-first search upwards from a value for the nearest projection (through data inputs only). */
function projectionAbove(v: Value | null, maxDepth = 8): Projection | undefined {
  let frontier: Value[] = v ? [v] : [];
  const seen = new Set<Value>();
  for (let depth = 0; depth < maxDepth && frontier.length; depth++) {
    const next: Value[] = [];
    for (const x of frontier) {
      if (seen.has(x)) continue;
      seen.add(x);
      const p = x.producer();
      if (!p) continue;
      const proj = projectionOf(p);
      if (proj) return proj;
      if (STOP_UP.has(p.opType) || p.domain === 'com.microsoft') continue;
      // Reshape/Expand/Slice: only the data input; elementwise: the non-constant inputs
      const ins = ['Reshape', 'Expand', 'Slice', 'Unsqueeze', 'Squeeze', 'Tile'].includes(p.opType)
        ? [p.input(0)]
        : p.inputs;
      for (const i of ins) if (i && !constOf(i)) next.push(i);
    }
    frontier = next;
  }
  return undefined;
}

/** Breadth-first search downwards for the nearest projection that `accept` takes. */
function projectionBelow(v: Value, accept: (p: Projection) => boolean, maxDepth = 8): Projection | undefined {
  let frontier: Value[] = [v];
  const seen = new Set<Node>();
  for (let depth = 0; depth < maxDepth && frontier.length; depth++) {
    const next: Value[] = [];
    for (const x of frontier)
      for (const c of x.consumers()) {
        if (seen.has(c)) continue;
        seen.add(c);
        const proj = projectionOf(c);
        if (proj && proj.node.input(0) !== null && accept(proj)) return proj;
        if (proj) continue;
        if (c.opType === 'Shape') continue;
        next.push(...c.outputs);
      }
    frontier = next;
  }
  return undefined;
}

/** A MatMul of two activations (attention scores or context). */
function isActivationMatMul(n: Node): boolean {
  return n.opType === 'MatMul' && !projectionOf(n) && !constOf(n.input(0)) && !constOf(n.input(1));
}

function scoresAbove(softmax: Node): Node | undefined {
  let frontier: Value[] = [softmax.input(0)!];
  for (let depth = 0; depth < 6 && frontier.length; depth++) {
    const next: Value[] = [];
    for (const x of frontier) {
      const p = x.producer();
      if (!p) continue;
      if (isActivationMatMul(p)) return p;
      if (STOP_UP.has(p.opType)) continue;
      for (const i of p.inputs) if (i && !constOf(i)) next.push(i);
    }
    frontier = next;
  }
  return undefined;
}

/** Head size from the Reshape that splits a projection's output into heads ([B, S, H|-1, d]). */
function headSizeBelow(proj: Projection): number | undefined {
  let frontier: Value[] = [proj.node.outputs[0]!];
  for (let depth = 0; depth < 6 && frontier.length; depth++) {
    const next: Value[] = [];
    for (const x of frontier)
      for (const c of x.consumers()) {
        if (c.opType === 'Reshape' && c.input(0) === x) {
          const shape = c.input(1);
          let last = numbers(constOf(shape))?.at(-1);
          if (last === undefined) {
            const cat = shape?.producer();
            if (cat && cat.opType === 'Concat') last = numbers(constOf(cat.inputs.at(-1) ?? null))?.at(-1);
          }
          if (last !== undefined && last > 0) return last;
        }
        if (c.opType !== 'Shape') next.push(...c.outputs);
      }
    frontier = next;
  }
  return undefined;
}

/** k of a TopK between the Softmax and the context (k = min(const, T) as topk-attention writes it). */
function topkBelow(softmax: Node, stop: Node | undefined): number | undefined {
  for (const c of softmax.outputs[0]!.consumers()) {
    if (c === stop) continue;
    if (c.opType === 'TopK') {
      const kv = c.input(1);
      const direct = numbers(constOf(kv))?.[0];
      if (direct !== undefined) return direct;
      const p = kv?.producer();
      if (p && p.opType === 'Min')
        for (const i of p.inputs) {
          const n = numbers(constOf(i));
          if (n && n.length === 1) return n[0];
        }
      return -1;
    }
  }
  return undefined;
}

/** Recognize the encoder layers of a model, in graph order. */
export function layerViews(model: Model): LayerView[] {
  const g = model.graph;
  const nodes = g.nodes();
  const pos = new Map<Node, number>(nodes.map((n, i) => [n, i]));
  type Att = NonNullable<LayerView['attention']>;
  const atts: Att[] = [];
  const qkv = new Set<Node>();
  for (const n of nodes) {
    if (n.domain === 'com.microsoft' && n.opType === 'Attention') {
      const w = constOf(n.input(1));
      const heads = n.getInt('num_heads');
      if (!w || w.dims.length !== 2 || !heads) continue;
      const D = w.dims[0]!;
      const three = w.dims[1]!;
      const hd = three / 3;
      const slice = (j: number): Projection => ({
        node: n,
        form: 'Attention',
        in: D,
        out: hd,
        precision: dtypeName(w.dataType),
        matrix: () => {
          const all = floats(w);
          const out = new Float32Array(D * hd);
          for (let r = 0; r < D; r++) out.set(all.subarray(r * three + j * hd, r * three + (j + 1) * hd), r * hd);
          return out;
        },
      });
      const o = projectionBelow(n.outputs[0]!, () => true) ?? null;
      qkv.add(n);
      atts.push({
        kind: 'fused (com.microsoft.Attention)',
        q: slice(0),
        k: slice(1),
        v: slice(2),
        o,
        heads,
        headSize: hd / heads,
        anchor: n,
      });
      continue;
    }
    if (n.opType !== 'Softmax' || (n.domain !== '' && n.domain !== 'ai.onnx')) continue;
    const scores = scoresAbove(n);
    if (!scores) continue;
    const q = projectionAbove(scores.input(0));
    const k = projectionAbove(scores.input(1));
    if (!q || !k) continue;
    // the context MatMul and O: nearest projection below the Softmax
    const o = projectionBelow(n.outputs[0]!, () => true) ?? null;
    let v: Projection | undefined;
    if (o) {
      // V: the projection above O's input that is neither Q nor K (the search stops at the Softmax)
      let frontier: Value[] = [o.node.input(0)!];
      const seen = new Set<Value>();
      for (let depth = 0; depth < 10 && frontier.length && !v; depth++) {
        const next: Value[] = [];
        for (const x of frontier) {
          if (seen.has(x)) continue;
          seen.add(x);
          const p = x.producer();
          if (!p || STOP_UP.has(p.opType)) continue;
          const proj = projectionOf(p);
          if (proj) {
            if (proj.node !== q.node && proj.node !== k.node) {
              v = proj;
              break;
            }
            continue;
          }
          const ins = ['Reshape', 'Expand', 'Slice', 'Unsqueeze', 'Squeeze', 'Tile'].includes(p.opType)
            ? [p.input(0)]
            : p.inputs;
          for (const i of ins) if (i && !constOf(i)) next.push(i);
        }
        frontier = next;
      }
    }
    if (!v) continue;
    let d = headSizeBelow(q) ?? headSizeBelow(k) ?? headSizeBelow(v);
    if (!d) {
      // fall back on the scale 1/sqrt(d) between the scores and the Softmax
      d = q.out;
    }
    const topk = topkBelow(n, undefined);
    const att: Att = {
      kind: topk !== undefined ? (topk > 0 ? `top-k k=${topk}` : 'top-k') : 'softmax',
      q,
      k,
      v,
      o,
      heads: Math.round(q.out / d),
      headSize: d,
      anchor: n,
    };
    if (topk !== undefined && topk > 0) att.topk = topk;
    for (const p of [q, k, v]) qkv.add(p.node);
    atts.push(att);
  }
  atts.sort((a, b) => pos.get(a.q.node)! - pos.get(b.q.node)!);

  // FFN pairs: projection P1 [D, F] → activation → P2 [F, D] whose result joins a residual with P1's input
  const used = new Set<Node>(qkv);
  for (const a of atts) if (a.o) used.add(a.o.node);
  const ffns: { in: Projection; out: Projection; size: number }[] = [];
  for (const n of nodes) {
    if (used.has(n)) continue;
    const p1 = projectionOf(n);
    if (!p1 || !n.input(0)) continue;
    const p2 = projectionBelow(n.outputs[0]!, (p) => p.in === p1.out && p.out === p1.in && !used.has(p.node), 8);
    if (!p2) continue;
    if (!joinsResidual(p1, p2)) continue;
    used.add(p1.node);
    used.add(p2.node);
    ffns.push({ in: p1, out: p2, size: p1.out });
  }

  // assemble layers: each FFN joins the latest attention before it that has none (and no other attention between)
  const layers: Omit<LayerView, 'index' | 'nodes'>[] = atts.map((a) => ({ attention: a, ffn: null, hidden: a.q.in }));
  for (const f of ffns) {
    const fp = pos.get(f.in.node)!;
    let host = -1;
    for (let i = 0; i < atts.length; i++) {
      const ap = pos.get(atts[i]!.o?.node ?? atts[i]!.anchor)!;
      if (ap < fp) host = i;
    }
    if (host >= 0 && layers[host]!.ffn === null) layers[host]!.ffn = f;
    else layers.push({ attention: null, ffn: f, hidden: f.in.in });
  }
  const start = (l: Omit<LayerView, 'index' | 'nodes'>) =>
    pos.get(l.attention ? firstOf(l.attention, pos) : l.ffn!.in.node)!;
  layers.sort((a, b) => start(a) - start(b));
  // node spans: from the layer's first projection to the one before the next layer's first projection
  const views: LayerView[] = [];
  layers.forEach((l, i) => {
    const from = start(l);
    const endNode = l.ffn ? l.ffn.out.node : (l.attention?.o?.node ?? l.attention!.anchor);
    let to = pos.get(endNode)!;
    // include the residual and LayerNorm that close the layer
    to = Math.min(closeOf(endNode, pos) ?? to, i + 1 < layers.length ? start(layers[i + 1]!) - 1 : nodes.length - 1);
    views.push({ index: i, ...l, nodes: nodes.slice(from, to + 1) });
  });
  return views;
}

function firstOf(a: NonNullable<LayerView['attention']>, pos: Map<Node, number>): Node {
  return [a.q.node, a.k.node, a.v.node].sort((x, y) => pos.get(x)! - pos.get(y)!)[0]!;
}

/** Position of the LayerNorm (or residual Add) that closes a block ending at `n`, within a few steps. */
function closeOf(n: Node, pos: Map<Node, number>): number | undefined {
  let frontier: Node[] = [n];
  let best: number | undefined;
  for (let depth = 0; depth < 4; depth++) {
    const next: Node[] = [];
    for (const f of frontier)
      for (const c of f.outputs[0]?.consumers() ?? []) {
        if (LAYERNORM_OPS.has(c.opType)) return pos.get(c);
        if (c.opType === 'Add') best = Math.max(best ?? 0, pos.get(c)!);
        next.push(c);
      }
    frontier = next;
  }
  return best;
}

/** The float activations a projection reads (before a DynamicQuantizeLinear, for MatMulInteger). */
export function activationInput(p: Projection): Value {
  const x = p.node.input(0)!;
  const q = x.producer();
  return q && q.opType === 'DynamicQuantizeLinear' && q.input(0) ? q.input(0)! : x;
}

/** Whether P2's result meets P1's input (or what fed its LayerNorm) at a residual within a few steps. */
function joinsResidual(p1: Projection, p2: Projection): boolean {
  const x = activationInput(p1);
  const r = new Set<Value>([x]);
  const xp = x.producer();
  if (xp && LAYERNORM_OPS.has(xp.opType)) for (const i of xp.inputs) if (i) r.add(i);
  // a skip-layernorm made of a pre-norm input: its residual output
  if (xp) for (const o of xp.outputs) r.add(o);
  let frontier: Value[] = [p2.node.outputs[0]!];
  for (let depth = 0; depth < 4; depth++) {
    const next: Value[] = [];
    for (const v of frontier)
      for (const c of v.consumers()) {
        if (c.inputs.some((i) => i !== v && i !== null && r.has(i))) return true;
        next.push(...c.outputs);
      }
    frontier = next;
  }
  return false;
}

/** An embedding table read by a Gather on token/position/type ids. */
export interface EmbeddingView {
  /** The table's initializer name. */
  name: string;
  rows: number;
  cols: number;
  /** `float32`, `float16`, `int8 per-row` (int8 rows with a gathered per-row scale), `int8`, ... */
  precision: string;
  node: Node;
}

/**
 * The block size when a uint8 Gather is axc's standard-ops 4-bit form (packed bytes → Cast → Mul 1/16 → Floor →
 * ... → Concat of the two nibble halves → Reshape to [-1, blocks, block]), else undefined.
 */
function int4NibbleTable(n: Node): number | undefined {
  const t = constOf(n.input(0));
  if (!t || t.dataType !== DataType.UINT8) return undefined;
  // follow the unpack forward a few nodes: it must Floor (the high nibble) and end in the block Reshape
  let frontier: Node[] = [n];
  let floored = false;
  for (let depth = 0; depth < 6 && frontier.length; depth++) {
    const next: Node[] = [];
    for (const f of frontier)
      for (const c of f.outputs[0]!.consumers()) {
        if (c.opType === 'Floor') floored = true;
        if (c.opType === 'Reshape' && floored) {
          const shape = constOf(c.input(1));
          if (shape?.numElements === 3) return shape.toNumbers()[2];
        }
        if (['Cast', 'Mul', 'Floor', 'Sub', 'Concat'].includes(c.opType)) next.push(c);
      }
    frontier = next;
  }
  return undefined;
}

/** Embedding tables in graph order: Gather(table[V, D], ids) with V > 1 and D > 1. */
export function embeddingViews(model: Model): EmbeddingView[] {
  const out: EmbeddingView[] = [];
  for (const n of model.graph) {
    // 4-bit tables: com.microsoft GatherBlockQuantized (packed codes [V, D/2], scales [V, blocks])
    if (n.domain === 'com.microsoft' && n.opType === 'GatherBlockQuantized' && n.getInt('gather_axis', 0) === 0) {
      const t = constOf(n.input(0));
      const scales = constOf(n.input(2));
      if (t && scales && t.dims.length === 2) {
        const bits = n.getInt('bits', 4);
        const block = n.getInt('block_size', 128);
        const cols = t.dataType === DataType.UINT8 ? (t.dims[1]! * 8) / bits : t.dims[1]!;
        out.push({ name: n.input(0)!.name, rows: t.dims[0]!, cols, precision: `int${bits} block ${block}`, node: n });
      }
      continue;
    }
    if (n.opType !== 'Gather' || (n.domain !== '' && n.domain !== 'ai.onnx') || n.getInt('axis', 0) !== 0) continue;
    const t = constOf(n.input(0));
    const ids = n.input(1);
    if (!t || t.dims.length !== 2 || !ids || constOf(ids)) continue;
    const [V, D] = [t.dims[0]!, t.dims[1]!];
    if (V < 2 || D < 2) continue;
    const nibbles = int4NibbleTable(n);
    if (nibbles) {
      out.push({ name: n.input(0)!.name, rows: V, cols: D * 2, precision: `int4 block ${nibbles}`, node: n });
      continue;
    }
    let precision = dtypeName(t.dataType);
    if (t.dataType === DataType.INT8 || t.dataType === DataType.UINT8) {
      // a per-row scale gathered with the same ids ([V, 1] table), or a DequantizeLinear after the Gather
      const perRow = ids
        .consumers()
        .some((c) => c !== n && c.opType === 'Gather' && constOf(c.input(0))?.dims.join(',') === `${V},1`);
      const dq = n.outputs[0]!.consumers().find((c) => c.opType === 'DequantizeLinear');
      if (perRow) precision += ' per-row';
      else if (dq) precision = kindOfScale(constOf(dq.input(1)), V, precision);
    }
    out.push({ name: n.input(0)!.name, rows: V, cols: D, precision, node: n });
  }
  return out;
}
