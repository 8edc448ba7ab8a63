import { AxcError, diag, nodeLoc, type Diagnostic } from '../../src/diagnostics/index.js';
import type { Model, Node, Value } from '../../src/ir/index.js';
import type { Linear, PruneAttention, PruneFfn, PruneLayer } from './prune-types.js';

/**
 * The structural view pruning needs (projections as weight Values, residual Adds, head count and size), recognized
 * from the graph: eager attention anchored on each Softmax, FFN as up-projection → element-wise activation →
 * down-projection. Layers are numbered in graph order.
 *
 * Dimension letters: B batch, S sequence, D hidden, H heads, d head size, F FFN size.
 */

/** Why a part of a layer was not recognized, naming the node where recognition stopped. */
export interface LayerDecline {
  node: string;
  op: string;
  reason: string;
}

export interface RecognizedLayers {
  layers: PruneLayer[];
  declines: LayerDecline[];
}

const PASS_THROUGH = new Set(['Transpose', 'Reshape', 'Squeeze', 'Unsqueeze']);
const ELEMENTWISE = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Erf',
  'Tanh',
  'Pow',
  'Relu',
  'Gelu',
  'FastGelu',
  'BiasGelu',
  'Sigmoid',
  'Cast',
]);

function isConst(v: Value | null): boolean {
  if (!v) return false;
  if (v.constValue && !v.isGraphInput()) return true;
  const p = v.producer();
  return p !== null && p.opType === 'Constant';
}

/** Constant integer values of a shape input: an initializer, a Constant node, or a Concat of those (null = dynamic). */
export function constInts(v: Value | null): (number | null)[] | undefined {
  if (!v) return undefined;
  if (v.constValue && !v.isGraphInput()) return v.constValue.toNumbers();
  const p = v.producer();
  if (!p) return undefined;
  if (p.opType === 'Constant') {
    const t = p.getTensor('value');
    if (t) return t.toNumbers();
    const ints = p.getInts('value_ints');
    if (ints) return ints;
    const i = p.getInt('value_int');
    return i === undefined ? undefined : [i];
  }
  if (p.opType === 'Concat') {
    const out: (number | null)[] = [];
    for (const inp of p.inputs) {
      const c = constInts(inp);
      if (c) out.push(...c);
      else {
        const r = inp?.shape;
        // a dynamic piece of known length 1 (Unsqueeze of a scalar)
        if (r && r.length === 1 && r[0] === 1) out.push(null);
        else if (inp?.producer()?.opType === 'Unsqueeze') out.push(null);
        else return undefined;
      }
    }
    return out;
  }
  return undefined;
}

/** The MatMul(x, W const [in, out]) (+ Add(bias)) producing `v`, if any. */
function linearProducing(v: Value | null): Linear | undefined {
  if (!v) return undefined;
  const p = v.producer();
  if (!p) return undefined;
  if (p.opType === 'Add' && p.inputs.length === 2) {
    const [a, b] = p.inputs;
    const biasIdx = isInitializer(a) ? 0 : isInitializer(b) ? 1 : -1;
    if (biasIdx < 0) return undefined;
    const mm = p.input(1 - biasIdx)?.producer();
    if (!mm || mm.opType !== 'MatMul' || !isInitializer(mm.input(1))) return undefined;
    if (mm.output(0).uses().length !== 1) return undefined;
    return { matmul: mm, weight: mm.input(1)!, biasAdd: p, bias: p.input(biasIdx)! };
  }
  if (p.opType === 'MatMul' && isInitializer(p.input(1))) return { matmul: p, weight: p.input(1)! };
  return undefined;
}

function isInitializer(v: Value | null): v is Value {
  return !!v && v.constValue !== undefined && !v.isGraphInput();
}

/** A MatMul(x, W const) and the Add(bias const) that is its only consumer, when present. */
function linearFromMatMul(n: Node): Linear | undefined {
  if (n.opType !== 'MatMul' || !isInitializer(n.input(1))) return undefined;
  const add = soleConsumer(n.output(0));
  const biasIdx =
    add && add.opType === 'Add' ? (isInitializer(add.input(0)) ? 0 : isInitializer(add.input(1)) ? 1 : -1) : -1;
  return biasIdx >= 0 && add
    ? { matmul: n, weight: n.input(1)!, biasAdd: add, bias: add.input(biasIdx)! }
    : { matmul: n, weight: n.input(1)! };
}

/** The output of a linear: its bias Add when present. */
function linearOutput(l: Linear): Value {
  return (l.biasAdd ?? l.matmul).output(0);
}

/** Walk back through layout ops (and a constant scale for Q/K) to a linear; collects the Reshapes passed. */
function walkBackToLinear(v: Value | null, reshapes: Node[]): Linear | undefined {
  let cur = v;
  for (let i = 0; i < 8 && cur; i++) {
    const lin = linearProducing(cur);
    if (lin) return lin;
    const p = cur.producer();
    if (!p) return undefined;
    if (PASS_THROUGH.has(p.opType)) {
      if (p.opType === 'Reshape') reshapes.push(p);
      cur = p.input(0);
    } else if ((p.opType === 'Mul' || p.opType === 'Div') && isConst(p.input(1))) {
      cur = p.input(0);
    } else if (p.opType === 'Mul' && isConst(p.input(0))) {
      cur = p.input(1);
    } else return undefined;
  }
  return undefined;
}

/** The QK^T MatMul feeding a Softmax through scale, mask and guard ops. */
function scoresMatMul(v: Value | null, depth = 0): Node | undefined {
  if (!v || depth > 8) return undefined;
  const p = v.producer();
  if (!p) return undefined;
  if (p.opType === 'MatMul') return isInitializer(p.input(1)) ? undefined : p;
  if (['Add', 'Mul', 'Div', 'Where', 'Sub', 'Cast'].includes(p.opType)) {
    for (const inp of p.inputs) {
      if (!inp || isConst(inp)) continue;
      const m = scoresMatMul(inp, depth + 1);
      if (m) return m;
    }
  }
  return undefined;
}

/** The only consumer of a value, if it has exactly one use. */
function soleConsumer(v: Value): Node | undefined {
  const u = v.uses();
  return u.length === 1 ? u[0]!.node : undefined;
}

/** The residual Add consuming a branch output: Add(branch, x) with x not constant. */
function residualOf(branch: Value): { add: Node; input: Value } | undefined {
  const add = soleConsumer(branch);
  if (!add || add.opType !== 'Add' || add.inputs.length !== 2) return undefined;
  const other = add.input(0) === branch ? add.input(1) : add.input(0);
  if (!other || isConst(other)) return undefined;
  return { add, input: other };
}

function dim(v: Value, i: number): number | undefined {
  const d = v.constValue?.dims[i];
  return typeof d === 'number' ? d : undefined;
}

function recognizeAttention(softmax: Node, decl: (n: Node, why: string) => void): PruneAttention | undefined {
  let probs = softmax.output(0);
  // a NaN guard (Where(IsNaN(p), 0, p)) may sit between the Softmax and the context MatMul
  const guard = probs.uses().find((u) => u.node.opType === 'Where' && u.index === 2)?.node;
  if (guard) probs = guard.output(0);
  const ctxMM = probs.uses().find((u) => u.node.opType === 'MatMul' && u.index === 0)?.node;
  if (!ctxMM) return void decl(softmax, 'no MatMul(probs, V) consumes the attention probabilities');
  const scores = scoresMatMul(softmax.input(0));
  if (!scores) return void decl(softmax, 'no QK^T MatMul found before the Softmax');
  const reshapes: Node[] = [];
  const q = walkBackToLinear(scores.input(0), reshapes);
  const k = walkBackToLinear(scores.input(1), reshapes);
  const v = walkBackToLinear(ctxMM.input(1), reshapes);
  if (!q || !k || !v)
    return void decl(
      scores,
      `the ${!q ? 'query' : !k ? 'key' : 'value'} projection is not a MatMul with a constant weight`,
    );
  // forward from the per-head context to the output projection
  let cur = ctxMM.output(0);
  let o: Linear | undefined;
  for (let i = 0; i < 6; i++) {
    const c = soleConsumer(cur);
    if (!c) break;
    if (c.opType === 'MatMul' && c.input(0) === cur && isInitializer(c.input(1))) {
      o = linearFromMatMul(c);
      break;
    }
    if (!PASS_THROUGH.has(c.opType)) break;
    if (c.opType === 'Reshape') reshapes.push(c);
    cur = c.output(0);
  }
  if (!o) return void decl(ctxMM, 'no output projection (MatMul with a constant weight) after the attention context');
  const branchOutput = linearOutput(o);
  const res = residualOf(branchOutput);
  if (!res) return void decl(o.biasAdd ?? o.matmul, 'the output projection does not feed a residual Add');
  const D = dim(q.weight, 0);
  const HD = dim(q.weight, 1);
  if (
    D === undefined ||
    HD === undefined ||
    dim(k.weight, 1) !== HD ||
    dim(v.weight, 1) !== HD ||
    dim(o.weight, 0) !== HD
  )
    return void decl(q.matmul, 'Q/K/V/O weight shapes do not agree');
  // head size from a split Reshape [B, S, H|-1, d]
  let headSize: number | undefined;
  let heads: number | undefined;
  for (const r of reshapes) {
    const s = constInts(r.input(1));
    if (!s || s.length !== 4) continue;
    const last = s[3];
    if (typeof last === 'number' && last > 0) headSize = last;
    const h = s[2];
    if (typeof h === 'number' && h > 0) heads = h;
  }
  if (headSize === undefined && heads !== undefined) headSize = HD / heads;
  if (headSize === undefined || !Number.isInteger(headSize) || HD % headSize !== 0)
    return void decl(scores, 'the head size is not a constant of the head-splitting Reshape');
  return {
    heads: HD / headSize,
    headSize,
    q,
    k,
    v,
    o,
    context: o.matmul.input(0)!,
    reshapes,
    residualAdd: res.add,
    residualInput: res.input,
    branchOutput,
  };
}

/** com.microsoft Attention(x, W_qkv [D, 3*H*d], b_qkv [3*H*d], mask) with num_heads, then the output projection. */
function recognizeFusedAttention(n: Node, decl: (n: Node, why: string) => void): PruneAttention | undefined {
  const w = n.input(1);
  const bias = n.input(2);
  const H = n.getInt('num_heads');
  if (!isInitializer(w) || !H) return void decl(n, 'the fused attention has no constant QKV weight or no num_heads');
  if (n.getInt('unidirectional', 0) || n.inputs.length > 4 || n.getInts('qkv_hidden_sizes'))
    return void decl(
      n,
      'fused attention with past state, bias inputs beyond the mask, or qkv_hidden_sizes is not supported',
    );
  const W3 = dim(w, 1);
  if (W3 === undefined || W3 % 3 !== 0 || (W3 / 3) % H !== 0)
    return void decl(n, 'the QKV weight is not [D, 3 * num_heads * head size]');
  const HD = W3 / 3;
  const c = soleConsumer(n.output(0));
  const o = c && c.input(0) === n.output(0) ? linearFromMatMul(c) : undefined;
  if (!o) return void decl(n, 'no output projection (MatMul with a constant weight) after the fused attention');
  const branchOutput = linearOutput(o);
  const res = residualOf(branchOutput);
  if (!res) return void decl(o.biasAdd ?? o.matmul, 'the output projection does not feed a residual Add');
  const part = (k: number): Linear => {
    const l: Linear = { matmul: n, weight: w, columns: [k * HD, (k + 1) * HD] };
    if (isInitializer(bias)) l.bias = bias;
    return l;
  };
  return {
    heads: H,
    headSize: HD / H,
    q: part(0),
    k: part(1),
    v: part(2),
    o,
    context: n.output(0),
    reshapes: [],
    residualAdd: res.add,
    residualInput: res.input,
    branchOutput,
    fused: n,
  };
}

/** FFN blocks: up MatMul W[D, F] → bias → element-wise activation → down MatMul W[F, D] → bias → residual Add. */
function recognizeFfn(up: Linear, D: number): PruneFfn | undefined {
  const F = dim(up.weight, 1);
  if (F === undefined) return undefined;
  // breadth-first through element-wise ops
  const seen = new Set<Node>();
  let frontier: Value[] = [linearOutput(up)];
  for (let depth = 0; depth < 10 && frontier.length; depth++) {
    const next: Value[] = [];
    for (const val of frontier) {
      for (const u of val.uses()) {
        const n = u.node;
        if (seen.has(n)) continue;
        seen.add(n);
        if (n.opType === 'MatMul' && u.index === 0 && isInitializer(n.input(1))) {
          if (dim(n.input(1)!, 0) !== F || dim(n.input(1)!, 1) !== D) continue;
          const down = linearFromMatMul(n)!;
          const branchOutput = linearOutput(down);
          const res = residualOf(branchOutput);
          if (!res) return undefined;
          return {
            size: F,
            up,
            down,
            activation: n.input(0)!,
            residualAdd: res.add,
            residualInput: res.input,
            branchOutput,
          };
        }
        if (ELEMENTWISE.has(n.opType)) next.push(...n.outputs);
      }
    }
    frontier = next;
  }
  return undefined;
}

/** Recognize every encoder layer of a model. Layers are numbered in graph order of their attention Softmax. */
export function recognizeLayers(model: Model): RecognizedLayers {
  const g = model.graph;
  const declines: LayerDecline[] = [];
  const decl = (n: Node, reason: string) => declines.push({ node: n.name, op: n.qualifiedOp, reason });
  const order = new Map<Node, number>();
  let i = 0;
  for (const n of g) order.set(n, i++);
  const attns: PruneAttention[] = [];
  for (const n of g) {
    if (n.opType !== 'Softmax') continue;
    const a = recognizeAttention(n, decl);
    if (a) attns.push(a);
  }
  for (const n of g) {
    if (n.domain === 'com.microsoft' && n.opType === 'Attention') {
      const a = recognizeFusedAttention(n, decl);
      if (a) attns.push(a);
    }
  }
  const ffns: PruneFfn[] = [];
  const attnMatmuls = new Set<Node>();
  for (const a of attns) for (const l of [a.q, a.k, a.v, a.o]) attnMatmuls.add(l.matmul);
  for (const n of g) {
    if (n.opType !== 'MatMul' || attnMatmuls.has(n)) continue;
    const lin = linearFromMatMul(n);
    if (!lin) continue;
    const D = dim(lin.weight, 0);
    const F = dim(lin.weight, 1);
    if (D === undefined || F === undefined) continue;
    const f = recognizeFfn(lin, D);
    if (f) ffns.push(f);
  }
  // blocks in graph order: an attention block starts a layer; an FFN joins the current layer unless that layer
  // already has one (a layer whose attention was pruned away keeps its FFN as a layer of its own)
  const pos = (n: Node) => order.get(n) ?? -1;
  type Block = { at: number; attention?: PruneAttention; ffn?: PruneFfn };
  const blocks: Block[] = [
    ...attns.map((a) => ({ at: pos(a.q.matmul), attention: a })),
    ...ffns.map((f) => ({ at: pos(f.up.matmul), ffn: f })),
  ].sort((a, b) => a.at - b.at);
  const layers: PruneLayer[] = [];
  let cur: PruneLayer | undefined;
  for (const b of blocks) {
    if (b.attention) {
      const a = b.attention;
      cur = { index: layers.length, norm: a.q.matmul.input(0) === a.residualInput ? 'post' : 'pre', attention: a };
      layers.push(cur);
    } else if (b.ffn) {
      const f = b.ffn;
      if (!cur || cur.ffn) {
        cur = { index: layers.length, norm: f.up.matmul.input(0) === f.residualInput ? 'post' : 'pre' };
        layers.push(cur);
      }
      cur.ffn = f;
    }
  }
  return { layers, declines };
}

/** Recognize layers or throw AX3601 naming the nodes where recognition stopped; other declines become notes. */
export function requireLayers(model: Model, report?: (d: Diagnostic) => void): PruneLayer[] {
  const r = recognizeLayers(model);
  if (report && r.layers.length)
    for (const d of r.declines) report(diag('AX3608', 'note', `not prunable: ${d.reason}`, nodeLoc(d.node, d.op)));
  if (r.layers.length === 0) {
    // graphs onnxruntime's optimizer fused: the residual Add lives inside SkipLayerNormalization
    const fused = model.graph
      .nodes()
      .find(
        (n) =>
          n.domain === 'com.microsoft' && ['SkipLayerNormalization', 'BiasGelu', 'FastGelu', 'Gelu'].includes(n.opType),
      );
    const hint = fused
      ? [
          `the graph is fused by onnxruntime (${fused.opType} '${fused.name}'): add a 'decompose' step before this one, and 'fuse' after pruning`,
        ]
      : undefined;
    const ds = r.declines.length
      ? r.declines.map((d) =>
          diag('AX3601', 'error', `no prunable encoder layer recognized: ${d.reason}`, nodeLoc(d.node, d.op), hint),
        )
      : [
          diag(
            'AX3601',
            'error',
            'no prunable encoder layer recognized: the model has no attention Softmax followed by a MatMul with V',
            { kind: 'none' },
          ),
        ];
    throw new AxcError(ds);
  }
  return r.layers;
}
