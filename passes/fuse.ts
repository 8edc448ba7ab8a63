/**
 * `fuse`: replace decomposed subgraphs by single ops.
 *
 *   fuse layernorm, gelu, skip-layernorm, bias-gelu [target onnx|onnxruntime]
 *
 * The fusions form a table keyed by name (FUSIONS); each has anchor op types and a match function that either
 * returns null (the anchor is not the start of this pattern at all), a decline with a reason naming nodes, or a match:
 * the nodes it covers, the value it replaces, and a rewrite that builds the fused op. The pass itself checks that no
 * intermediate value of a match escapes it (used outside the match or a graph output) before rewriting, so every
 * fusion gets that rule for free. Fusions run in table order (layernorm before skip-layernorm, gelu before bias-gelu).
 *
 * Dimension letters: B batch, S sequence, D hidden (normalized axis), F FFN width.
 *
 * Measured (onnxruntime-node 1.30 CPU, 1 thread, 32 dev rows, interleaved medians, loaded machine): on the tiny
 * model (hidden 128) gelu and bias-gelu are 2-6% faster than the float graph, while SkipLayerNormalization is ~15%
 * slower than Add + LayerNormalization (with or without the folded bias); at hidden 768 the differences are inside
 * the run-to-run noise (MatMuls dominate). Fuse for runtimes that want the fused ops, not for CPU speed by itself.
 *
 * Codes: AX3201 a fusion declined a candidate (warning, names the node and why); AX3202 a requested fusion applied
 * nowhere (warning, says why); AX3203 unknown fusion name (error).
 */
import { AxcError, diag, didYouMean, nodeLoc } from '../src/diagnostics/index.js';
import { Builder, DataType, type Graph, type Model, type Node, type Value } from '../src/ir/index.js';
import { registerPass } from '../src/pass/registry.js';
import { locOf, type NamedItem, type PassContext, type PassDef, type PassResult } from '../src/pass/types.js';
import { analyzeLayers } from './analysis/layers.js';
import { attentionFusion } from './lib/attention-fusion.js';
import { constTensor } from './lib/consts.js';

export type FuseTarget = 'onnx' | 'onnxruntime';

export interface FusionEnv {
  model: Model;
  graph: Graph;
  target: FuseTarget;
  /** Default-domain opset of the model. */
  opset: number;
}

export interface FusionMatch {
  /** Every node of the match (removed after the rewrite). */
  nodes: Node[];
  /** The value the fused op replaces; every other output of `nodes` must stay inside the match. */
  output: Value;
  /** Build the fused op(s) with `b` (inserted before the node producing `output`) and return the new value. */
  rewrite(b: Builder): Value;
  /** com.microsoft ops are emitted: the pass adds the opset import. */
  usesMicrosoftDomain?: boolean;
}

export interface FusionDecline {
  declined: true;
  node: Node;
  reason: string;
}

export type FusionResult = FusionMatch | FusionDecline | null;

export interface Fusion {
  name: string;
  summary: string;
  /** Op types (default or com.microsoft domain) a match starts from. */
  anchors: readonly string[];
  match(anchor: Node, env: FusionEnv): FusionResult;
}

// ---------------------------------------------------------------------------------------------------------------
// Matching helpers (exported for other fusions, e.g. attention)

export const isDefaultDomain = (n: Node): boolean => n.domain === '' || n.domain === 'ai.onnx';

/** The node producing `v` when it is the given default-domain op. */
export function producedBy(v: Value | null, op: string): Node | null {
  const p = v?.producer() ?? null;
  return p && p.opType === op && (isDefaultDomain(p) || op === 'Gelu' || op === 'FastGelu') ? p : null;
}

/** The single-element float value of a constant (initializer or Constant node), or undefined. */
export function constScalar(v: Value | null): number | undefined {
  const t = constTensor(v);
  if (!t || t.numElements !== 1) return undefined;
  if (t.dataType !== DataType.FLOAT && t.dataType !== DataType.DOUBLE && t.dataType !== DataType.FLOAT16)
    return undefined;
  return t.toFloat32()[0];
}

export function near(x: number | undefined, want: number, rel = 1e-3): boolean {
  return x !== undefined && Math.abs(x - want) <= rel * Math.abs(want);
}

/** For a binary node with one constant scalar operand: [the other operand, the scalar]. */
export function splitConst(n: Node): [Value, number] | undefined {
  const a = n.input(0);
  const b = n.input(1);
  const cb = constScalar(b);
  if (a && cb !== undefined) return [a, cb];
  const ca = constScalar(a);
  if (b && ca !== undefined && (n.opType === 'Add' || n.opType === 'Mul')) return [b, ca];
  return undefined;
}

/**
 * The only consumer of a value (undefined when it has several). A value that is also a graph output still has a
 * sole consumer: the pass's escape check then declines the match with that precise reason.
 */
export function soleConsumer(v: Value): Node | undefined {
  const c = v.consumers();
  return c.length === 1 ? c[0] : undefined;
}

/** The operand of a commutative binary node that is not `v` (or undefined when `v` is not an operand). */
export function otherOperand(n: Node, v: Value): Value | null | undefined {
  if (n.input(0) === v) return n.input(1);
  if (n.input(1) === v) return n.input(0);
  return undefined;
}

const q = (n: Node) => `'${n.name || '<unnamed>'}'`;

function decline(node: Node, reason: string): FusionDecline {
  return { declined: true, node, reason };
}

/**
 * The GELU tail shared by erf and tanh GELU: given `onePlus = 1 + f(x)` (an Add), find `0.5 * x * onePlus` as
 * Mul(Mul(x, onePlus), 0.5) or Mul(Mul(x, 0.5), onePlus) (either operand order). Returns the nodes and output.
 */
function geluTail(onePlus: Node, x: Value): { nodes: Node[]; out: Value } | string {
  const v = onePlus.output(0);
  const m1 = soleConsumer(v);
  if (!m1 || m1.opType !== 'Mul' || !isDefaultDomain(m1)) return `${q(onePlus)} does not feed a single Mul`;
  const other = otherOperand(m1, v);
  if (other === x) {
    const m2 = soleConsumer(m1.output(0));
    const half = m2 && m2.opType === 'Mul' ? splitConst(m2) : undefined;
    if (!m2 || !half || half[0] !== m1.output(0) || !near(half[1], 0.5))
      return `${q(m1)} (x * (1 + f(x))) is not followed by a Mul by 0.5`;
    return { nodes: [m1, m2], out: m2.output(0) };
  }
  const h = other ? producedBy(other, 'Mul') : null;
  const hs = h ? splitConst(h) : undefined;
  if (h && hs && hs[0] === x && near(hs[1], 0.5)) return { nodes: [h, m1], out: m1.output(0) };
  return `${q(m1)} multiplies 1 + f(x) by neither x nor 0.5 * x`;
}

function ensureMsDomain(m: Model): void {
  if (!m.opsetImports.has('com.microsoft')) m.opsetImports.set('com.microsoft', 1);
}

// ---------------------------------------------------------------------------------------------------------------
// The fusions

/** Axes of a ReduceMean (attribute before opset 18, input from 18). */
function reduceAxes(n: Node): number[] | undefined {
  const a = n.getInts('axes');
  if (a) return a;
  const t = constTensor(n.input(1));
  return t ? t.toNumbers() : undefined;
}

function lastAxisOnly(n: Node, x: Value): boolean {
  const axes = reduceAxes(n);
  if (!axes || axes.length !== 1) return false;
  const rank = x.shape?.length;
  return axes[0] === -1 || (rank !== undefined && axes[0] === rank - 1);
}

/**
 * Decomposed LayerNorm: d = x - ReduceMean(x); y = d / Sqrt(ReduceMean(d^2) + eps) [* gamma] [+ beta]
 * → LayerNormalization(x, gamma, beta, axis=-1, epsilon). Anchored at the Div.
 */
const layernorm: Fusion = {
  name: 'layernorm',
  summary: 'ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add → LayerNormalization',
  anchors: ['Div'],
  match(div, env) {
    const sqrt = producedBy(div.input(1), 'Sqrt');
    const sub = producedBy(div.input(0), 'Sub');
    if (!sqrt || !sub) return null;
    const x = sub.input(0);
    const mean1 = producedBy(sub.input(1), 'ReduceMean');
    if (!x || !mean1 || mean1.input(0) !== x)
      return decline(div, `${q(sub)} does not subtract the mean of its own input (ReduceMean of x)`);
    const addEps = producedBy(sqrt.input(0), 'Add');
    const eps = addEps ? splitConst(addEps) : undefined;
    if (!addEps || !eps)
      return decline(div, `${q(sqrt)} does not take the square root of variance + a constant epsilon`);
    const mean2 = producedBy(eps[0], 'ReduceMean');
    const pow = mean2 ? producedBy(mean2.input(0), 'Pow') : null;
    const mul2 = mean2 && !pow ? producedBy(mean2.input(0), 'Mul') : null;
    const sq = pow ?? mul2;
    if (!mean2 || !sq) return decline(div, `the variance under ${q(addEps)} is not ReduceMean(Pow(x - mean, 2))`);
    if (pow && (pow.input(0) !== sub.output(0) || !near(constScalar(pow.input(1)), 2)))
      return decline(div, `${q(pow)} is not (x - mean) to the power 2`);
    if (mul2 && (mul2.input(0) !== sub.output(0) || mul2.input(1) !== sub.output(0)))
      return decline(div, `${q(mul2)} is not (x - mean) * (x - mean)`);
    if (!lastAxisOnly(mean1, x) || !lastAxisOnly(mean2, sub.output(0)))
      return decline(div, `${q(mean1)} or ${q(mean2)} does not reduce the last axis only`);
    if (mean1.getInt('keepdims', 1) !== 1 || mean2.getInt('keepdims', 1) !== 1)
      return decline(div, `${q(mean1)} or ${q(mean2)} drops the reduced axis (keepdims=0)`);
    if (env.opset < 17 && env.target === 'onnx')
      return decline(
        div,
        `LayerNormalization needs opset 17 and the model imports opset ${env.opset} (target onnxruntime accepts it)`,
      );
    const nodes = [mean1, sub, sq, mean2, addEps, sqrt, div];
    let out = div.output(0);
    // optional affine: Mul by a constant gamma, Add a constant beta
    let gamma: Value | null = null;
    let beta: Value | null = null;
    const mulG = soleConsumer(out);
    if (mulG && mulG.opType === 'Mul' && isDefaultDomain(mulG)) {
      const g = otherOperand(mulG, out);
      if (g && constTensor(g) && constTensor(g)!.dims.length === 1) {
        gamma = g;
        nodes.push(mulG);
        out = mulG.output(0);
        const addB = soleConsumer(out);
        if (addB && addB.opType === 'Add' && isDefaultDomain(addB)) {
          const bv = otherOperand(addB, out);
          if (bv && constTensor(bv) && constTensor(bv)!.dims.length === 1) {
            beta = bv;
            nodes.push(addB);
            out = addB.output(0);
          }
        }
      }
    }
    const epsilon = eps[1];
    const lastDim = x.shape?.[x.shape.length - 1];
    const D = constTensor(gamma ?? beta)?.dims[0] ?? (typeof lastDim === 'number' ? lastDim : undefined);
    if (!gamma && D === undefined)
      return decline(div, `the LayerNorm at ${q(div)} has no scale and the width of '${x.name}' is unknown`);
    return {
      nodes,
      output: out,
      rewrite(b) {
        const g = gamma ?? b.constFloat(`${div.name}_gamma`, new Float32Array(D!).fill(1), [D!]);
        const inputs: (Value | null)[] = beta ? [x, g, beta] : [x, g];
        return b.op1('LayerNormalization', inputs, {
          name: `${div.name}/LayerNormalization`,
          attrs: { axis: -1, epsilon },
        });
      },
    };
  },
};

/** Erf GELU: 0.5 * x * (1 + Erf(x / sqrt 2)) → com.microsoft Gelu (onnxruntime) or Gelu (opset 20). */
const gelu: Fusion = {
  name: 'gelu',
  summary: 'x * 0.5 * (1 + Erf(x / sqrt(2))) → Gelu',
  anchors: ['Erf'],
  match(erf, env) {
    if (!isDefaultDomain(erf)) return null;
    const scaleNode = erf.input(0)?.producer() ?? null;
    const sc = scaleNode && isDefaultDomain(scaleNode) ? splitConst(scaleNode) : undefined;
    const okScale =
      sc &&
      ((scaleNode!.opType === 'Div' && near(sc[1], Math.SQRT2)) ||
        (scaleNode!.opType === 'Mul' && near(sc[1], Math.SQRT1_2)));
    if (!scaleNode || !okScale) return decline(erf, `the input of ${q(erf)} is not x / sqrt(2) or x * (1 / sqrt(2))`);
    const x = sc![0];
    const add1 = soleConsumer(erf.output(0));
    const one = add1 && add1.opType === 'Add' ? splitConst(add1) : undefined;
    if (!add1 || !one || !near(one[1], 1)) return decline(erf, `${q(erf)} is not followed by a single Add of 1`);
    const tail = geluTail(add1, x);
    if (typeof tail === 'string') return decline(erf, tail);
    if (env.target === 'onnx' && env.opset < 20)
      return decline(
        erf,
        `the standard Gelu op needs opset 20 and the model imports opset ${env.opset}; target onnxruntime uses com.microsoft.Gelu`,
      );
    const ms = env.target === 'onnxruntime';
    return {
      nodes: [scaleNode, erf, add1, ...tail.nodes],
      output: tail.out,
      usesMicrosoftDomain: ms,
      rewrite: (b) =>
        b.op1('Gelu', [x], ms ? { domain: 'com.microsoft', name: `${erf.name}/Gelu` } : { name: `${erf.name}/Gelu` }),
    };
  },
};

/**
 * Tanh GELU: 0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) → com.microsoft FastGelu (onnxruntime) or
 * Gelu approximate=tanh (opset 20).
 */
const fastGelu: Fusion = {
  name: 'fast-gelu',
  summary: '0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3))) → FastGelu',
  anchors: ['Tanh'],
  match(tanh, env) {
    if (!isDefaultDomain(tanh)) return null;
    const mulK = producedBy(tanh.input(0), 'Mul');
    const k = mulK ? splitConst(mulK) : undefined;
    if (!mulK || !k || !near(k[1], Math.sqrt(2 / Math.PI))) return null; // a plain Tanh (e.g. the pooler)
    const inner = producedBy(k[0], 'Add');
    if (!inner) return decline(tanh, `${q(mulK)} does not scale x + 0.044715 * x^3`);
    let x: Value | null = null;
    let cube: Node | null = null;
    let mulC: Node | null = null;
    for (const [xi, ci] of [
      [0, 1],
      [1, 0],
    ] as const) {
      const m = producedBy(inner.input(ci), 'Mul');
      const c = m ? splitConst(m) : undefined;
      const p = c && near(c[1], 0.044715) ? producedBy(c[0], 'Pow') : null;
      if (m && p && p.input(0) === inner.input(xi) && near(constScalar(p.input(1)), 3)) {
        x = inner.input(xi);
        cube = p;
        mulC = m;
      }
    }
    if (!x || !cube || !mulC) return decline(tanh, `${q(inner)} is not x + 0.044715 * Pow(x, 3)`);
    const add1 = soleConsumer(tanh.output(0));
    const one = add1 && add1.opType === 'Add' ? splitConst(add1) : undefined;
    if (!add1 || !one || !near(one[1], 1)) return decline(tanh, `${q(tanh)} is not followed by a single Add of 1`);
    const tail = geluTail(add1, x);
    if (typeof tail === 'string') return decline(tanh, tail);
    if (env.target === 'onnx' && env.opset < 20)
      return decline(tanh, `the standard Gelu op needs opset 20 and the model imports opset ${env.opset}`);
    const ms = env.target === 'onnxruntime';
    const xv = x;
    return {
      nodes: [cube, mulC, inner, mulK, tanh, add1, ...tail.nodes],
      output: tail.out,
      usesMicrosoftDomain: ms,
      rewrite: (b) =>
        ms
          ? b.op1('FastGelu', [xv], { domain: 'com.microsoft', name: `${tanh.name}/FastGelu` })
          : b.op1('Gelu', [xv], { name: `${tanh.name}/Gelu`, attrs: { approximate: 'tanh' } }),
    };
  },
};

/** Add(x, bias) + com.microsoft Gelu → BiasGelu(x, bias); Add + FastGelu → FastGelu(x, bias). onnxruntime only. */
const biasGelu: Fusion = {
  name: 'bias-gelu',
  summary: 'Add(bias) + Gelu → com.microsoft BiasGelu (and FastGelu with bias)',
  anchors: ['Gelu', 'FastGelu'],
  match(gl, env) {
    const ms = gl.domain === 'com.microsoft';
    if (!ms && !(isDefaultDomain(gl) && gl.opType === 'Gelu')) return null;
    if (gl.opType === 'FastGelu' && gl.input(1)) return null; // already has its bias
    const add = producedBy(gl.input(0), 'Add');
    if (!add) return decline(gl, `the input of ${q(gl)} is not an Add of a bias`);
    let x: Value | null = null;
    let bias: Value | null = null;
    for (const [xi, bi] of [
      [0, 1],
      [1, 0],
    ] as const) {
      const t = constTensor(add.input(bi));
      if (!bias && t && t.dims.length === 1 && !constTensor(add.input(xi))) {
        bias = add.input(bi);
        x = add.input(xi);
      }
    }
    if (!x || !bias) return decline(gl, `${q(add)} does not add a constant 1-D bias`);
    if (env.target === 'onnx')
      return decline(gl, `BiasGelu is a com.microsoft op and the target is onnx (standard ops only)`);
    if (!ms && gl.getString('approximate', 'none') !== 'none')
      return decline(gl, `${q(gl)} is the tanh approximation; only exact Gelu maps to BiasGelu`);
    const xv = x;
    const bv = bias;
    return {
      nodes: [add, gl],
      output: gl.output(0),
      usesMicrosoftDomain: true,
      rewrite: (b) =>
        gl.opType === 'FastGelu'
          ? b.op1('FastGelu', [xv, bv], { domain: 'com.microsoft', name: `${gl.name}/FastGelu` })
          : b.op1('BiasGelu', [xv, bv], { domain: 'com.microsoft', name: `${gl.name}/BiasGelu` }),
    };
  },
};

/** A value that is certainly a full [B, S, D] activation: the output of a LayerNorm or of a (biased) projection. */
function fullShapeEvidence(v: Value): string | undefined {
  const p = v.producer();
  if (!p) return undefined;
  if (
    (p.opType === 'LayerNormalization' ||
      p.opType === 'SkipLayerNormalization' ||
      p.opType === 'EmbedLayerNormalization') &&
    v.outputIndex() === 0
  )
    return p.opType;
  if (p.opType === 'MatMul' && isDefaultDomain(p)) return 'MatMul';
  if (p.opType === 'Add' && isDefaultDomain(p)) {
    for (const i of [0, 1]) {
      const t = constTensor(p.input(i));
      const o = p.input(1 - i);
      if (t && t.dims.length === 1 && o && producedBy(o, 'MatMul')) return 'MatMul + bias';
    }
  }
  return undefined;
}

function sameKnownShape(a: Value, b: Value): boolean {
  const sa = a.shape;
  const sb = b.shape;
  return !!sa && !!sb && sa.length === sb.length && sa.every((d, i) => d !== null && d === sb[i]);
}

/**
 * Whether `ids` are the positions 0, 1, ..., S-1: a Slice of a constant 0..N-1 (from 0, step 1, along its last axis),
 * or Range(0, S, 1), possibly Unsqueezed or Expanded over the batch. Returns the reason when they are not.
 */
function implicitPositionsReason(ids: Value | null): string | undefined {
  let v = ids;
  for (let i = 0; i < 4 && v; i++) {
    const p = v.producer();
    if (!p) return `position ids '${v.name}' are a graph input, not 0..S-1`;
    if ((p.opType === 'Unsqueeze' || p.opType === 'Expand') && isDefaultDomain(p)) {
      v = p.input(0);
      continue;
    }
    if (p.opType === 'Range' && isDefaultDomain(p)) {
      const start = constTensor(p.input(0))?.toNumbers();
      const delta = constTensor(p.input(2))?.toNumbers();
      return start?.[0] === 0 && delta?.[0] === 1 ? undefined : `${q(p)} does not count from 0 in steps of 1`;
    }
    if (p.opType === 'Slice' && isDefaultDomain(p)) {
      const data = constTensor(p.input(0));
      const starts = constTensor(p.input(1))?.toNumbers();
      const axes = constTensor(p.input(3))?.toNumbers();
      const steps = p.input(4) ? constTensor(p.input(4))?.toNumbers() : [1];
      if (!data || !starts || !steps) return `${q(p)} slices non-constant position ids`;
      const vals = data.toNumbers();
      const last = data.dims.length - 1;
      const arange = data.dims.slice(0, last).every((d) => d === 1) && vals.every((x, k) => x === k);
      const alongLast = !axes || (axes.length === 1 && (axes[0] === last || axes[0] === -1));
      if (!arange || !alongLast || starts.some((x) => x !== 0) || steps.some((x) => x !== 1))
        return `${q(p)} does not take positions 0..S-1 of a constant 0..N-1`;
      return undefined;
    }
    return `position ids come from ${q(p)}, not from 0..S-1 (padding-aware positions, as RoBERTa's, need explicit ids)`;
  }
  return 'position ids not traced to a constant 0..S-1';
}

/**
 * Embeddings: Gather(word, input_ids) + Gather(position, 0..S-1) [+ Gather(token_type, token_type_ids)] →
 * LayerNormalization → com.microsoft EmbedLayerNormalization (one kernel, int32 ids). onnxruntime only. The tables
 * stay float inside the fused op, so apply it before `quantize gather`, or not at all when the tables are to be
 * quantized. Measured on sst2-bert-mini (fuse attention + gelu + bias-gelu, int8 matmuls, batch 1, seq 128, one
 * thread): the op itself takes 0.09 ms, about what the lookups and LayerNorm took, yet the model ran 17% slower
 * (8.57 against 7.31 ms): with the output shape the op declares, onnxruntime's own optimizer goes on to fuse every
 * residual Add + LayerNormalization into SkipLayerNormalization, which is slower on this CPU (see above). axc's
 * plans therefore leave it out; it is here for runtimes and CPUs where it pays.
 */
const embedLayerNorm: Fusion = {
  name: 'embed-layernorm',
  summary: 'word + position [+ token type] Gathers, Adds, LayerNormalization → com.microsoft EmbedLayerNormalization',
  anchors: ['LayerNormalization'],
  match(ln, env) {
    if (!isDefaultDomain(ln)) return null;
    // the sum of Gathers feeding the LayerNorm: a tree of Adds whose leaves are all table lookups
    const top = producedBy(ln.input(0), 'Add');
    if (!top) return null;
    const adds: Node[] = [];
    const leaves: Node[] = [];
    const walk = (v: Value | null): boolean => {
      const a = producedBy(v, 'Add');
      if (a && (a === top || soleConsumer(a.output(0)))) {
        adds.push(a);
        return walk(a.input(0)) && walk(a.input(1));
      }
      const g = producedBy(v, 'Gather');
      const t = g ? constTensor(g.input(0)) : undefined;
      if (!g || !t || t.dims.length !== 2 || g.getInt('axis', 0) !== 0) return false;
      leaves.push(g);
      return true;
    };
    if (!walk(ln.input(0)) || leaves.length < 2 || leaves.length > 3) return null;
    if (leaves.some((g) => constTensor(g.input(0))!.dataType !== DataType.FLOAT))
      return decline(
        ln,
        `${q(ln)}: the embedding tables are not float (quantize gather ran before fuse embed-layernorm)`,
      );
    // which lookup is which: the shared analysis of the embeddings (by structure and names)
    const e = analyzeLayers(env.model).embeddings;
    const word = e?.word?.gather;
    const pos = e?.position?.gather;
    const segment = e?.tokenType?.gather;
    const known = [word, pos, segment].filter((g): g is Node => !!g);
    if (!word || !pos || leaves.some((g) => !known.includes(g)))
      return decline(
        ln,
        `${q(ln)}: the summed lookups are not recognized as word, position [and token type] embeddings`,
      );
    const why = implicitPositionsReason(pos.input(1));
    if (why) return decline(pos, why);
    const D = constTensor(word.input(0))!.dims[1]!;
    if (leaves.some((g) => constTensor(g.input(0))!.dims[1] !== D))
      return decline(ln, `${q(ln)}: the embedding tables have different widths`);
    const axis = ln.getInt('axis', -1);
    if (axis !== -1 && axis !== 2) return decline(ln, `${q(ln)} normalizes axis ${axis}, not the last axis`);
    if (ln.outputs.length > 1 && ln.outputs.slice(1).some((o) => o.name !== '' && o.uses().length > 0))
      return decline(ln, `${q(ln)} has its Mean/InvStdDev outputs in use`);
    if (env.target === 'onnx')
      return decline(ln, 'EmbedLayerNormalization is a com.microsoft op and the target is onnx (standard ops only)');
    const epsilon = ln.getFloat('epsilon', 1e-5);
    return {
      nodes: [...leaves, ...adds, ln],
      output: ln.output(0),
      usesMicrosoftDomain: true,
      rewrite: (b) => {
        const int32 = (g: Node | undefined): Value | null => {
          if (!g) return null;
          const x = g.input(1)!;
          return x.elemType === DataType.INT32
            ? x
            : b.op1('Cast', [x], { name: `${g.name}/Cast_int32`, attrs: { to: DataType.INT32 } });
        };
        const beta = ln.input(2) ?? b.constFloat(`${ln.name}_beta`, new Float32Array(D), [D]);
        return b.op(
          'EmbedLayerNormalization',
          [
            int32(word),
            int32(segment),
            word.input(0),
            pos.input(0),
            segment ? segment.input(0) : null,
            ln.input(1),
            beta,
          ],
          { domain: 'com.microsoft', name: `${ln.name}/EmbedLayerNormalization`, attrs: { epsilon }, outputs: 2 },
        )[0]!;
      },
    };
  },
};

/** Add(input, skip) + LayerNormalization → com.microsoft SkipLayerNormalization. onnxruntime only. */
const skipLayerNorm: Fusion = {
  name: 'skip-layernorm',
  summary: 'Add (residual) [+ Add (bias)] + LayerNormalization → com.microsoft SkipLayerNormalization',
  anchors: ['LayerNormalization'],
  match(ln, env) {
    if (!isDefaultDomain(ln)) return null;
    const add = producedBy(ln.input(0), 'Add');
    if (!add) return null;
    const [a, c] = [add.input(0), add.input(1)];
    if (!a || !c || constTensor(a) || constTensor(c)) return null; // a bias add, not a residual
    const axis = ln.getInt('axis', -1);
    const rank = ln.input(0)?.shape?.length;
    if (axis !== -1 && !(rank !== undefined && axis === rank - 1))
      return decline(ln, `${q(ln)} normalizes axis ${axis}, not the last axis`);
    if (!sameKnownShape(a, c) && !(fullShapeEvidence(a) && fullShapeEvidence(c)))
      return decline(
        ln,
        `cannot show that the operands '${a.name}' and '${c.name}' of ${q(add)} have the same shape ` +
          `(SkipLayerNormalization does not broadcast, e.g. a [1, S, D] position embedding)`,
      );
    if (env.target === 'onnx')
      return decline(ln, `SkipLayerNormalization is a com.microsoft op and the target is onnx (standard ops only)`);
    if (ln.outputs.length > 1 && ln.outputs.slice(1).some((o) => o.name !== '' && o.uses().length > 0))
      return decline(ln, `${q(ln)} has its Mean/InvStdDev outputs in use`);
    const gamma = ln.input(1);
    const beta = ln.input(2);
    const epsilon = ln.getFloat('epsilon', 1e-5);
    // fold a projection's bias into the op (its input 4), as onnxruntime's optimizer does:
    // Add(Add(bias_D, MatMul(...)), residual) → SkipLayerNormalization(MatMul(...), residual, gamma, beta, bias_D)
    const nodes = [add, ln];
    let input = a;
    let skip = c;
    let bias: Value | null = null;
    for (const [p, other] of [
      [a, c],
      [c, a],
    ] as const) {
      const ba: Node | null = bias ? null : producedBy(p, 'Add');
      if (!ba || soleConsumer(p) !== add) continue;
      for (const i of [0, 1]) {
        const t = constTensor(ba.input(i));
        const mm = ba.input(1 - i);
        if (!bias && t && t.dims.length === 1 && mm && producedBy(mm, 'MatMul')) {
          bias = ba.input(i);
          input = mm;
          skip = other;
          nodes.unshift(ba);
        }
      }
    }
    const inputs: (Value | null)[] = [input, skip, gamma, beta ?? null];
    if (bias) inputs.push(bias);
    while (inputs[inputs.length - 1] === null) inputs.pop();
    return {
      nodes,
      output: ln.output(0),
      usesMicrosoftDomain: true,
      rewrite: (b) =>
        b.op1('SkipLayerNormalization', inputs, {
          domain: 'com.microsoft',
          name: `${ln.name}/SkipLayerNormalization`,
          attrs: { epsilon },
        }),
    };
  },
};

/**
 * The fusion table, in the order fusions run. Add a fusion by adding an entry. Attention runs last: the layer
 * analysis it uses recognizes residuals already fused into SkipLayerNormalization (with their folded bias).
 */
export const FUSIONS: Fusion[] = [layernorm, gelu, fastGelu, biasGelu, embedLayerNorm, skipLayerNorm, attentionFusion];

export function getFusion(name: string): Fusion | undefined {
  return FUSIONS.find((f) => f.name === name);
}

// ---------------------------------------------------------------------------------------------------------------
// The pass

export interface FuseOptions {
  patterns?: (NamedItem | string)[] | string;
  target?: FuseTarget;
}

export interface FusionReport {
  applied: number;
  declined: { node: string; op: string; reason: string }[];
}

/** Why a match cannot be replaced: an intermediate value is used outside it or is a graph output. */
export function escapeReason(m: FusionMatch): string | undefined {
  const inMatch = new Set(m.nodes);
  for (const n of m.nodes)
    for (const o of n.outputs) {
      if (o === m.output) continue;
      if (o.isGraphOutput()) return `intermediate value '${o.name}' of ${q(n)} is a graph output`;
      const outside = o.consumers().find((c) => !inMatch.has(c));
      if (outside) return `intermediate value '${o.name}' of ${q(n)} is also used by ${q(outside)} (${outside.opType})`;
    }
  return undefined;
}

/** Rewrite one match: build the fused op before the output's producer, rewire, remove the matched nodes. */
export function applyMatch(g: Graph, m: FusionMatch, stamp = 'fuse'): Value {
  const last = m.output.producer()!;
  const b = new Builder(g, last, stamp);
  const fused = m.rewrite(b);
  const name = m.output.name;
  if (m.output.type && !fused.type) fused.type = m.output.type;
  m.output.replaceAllUsesWith(fused);
  // remove in reverse topological order (each node's outputs are unused by then)
  const order = [...m.nodes];
  const pos = new Map<Node, number>();
  let i = 0;
  for (const n of g) pos.set(n, i++);
  order.sort((x, y) => pos.get(y)! - pos.get(x)!);
  for (const n of order) g.remove(n);
  // keep the replaced value's name (graph outputs keep their names; diffs stay readable)
  fused.name = name;
  g.valueInfo = g.valueInfo.filter((v) => v.graph === g);
  return fused;
}

function requestedFusions(opts: FuseOptions, ctx: PassContext): Fusion[] {
  const raw = opts.patterns;
  const names =
    raw === undefined
      ? FUSIONS.map((f) => f.name)
      : (typeof raw === 'string' ? raw.split(/[,\s]+/) : raw.map((r) => (typeof r === 'string' ? r : r.name))).filter(
          (s) => s.length > 0,
        );
  const out: Fusion[] = [];
  for (const n of names) {
    const f = getFusion(n);
    if (!f) {
      const dym = didYouMean(
        n,
        FUSIONS.map((x) => x.name),
      );
      throw new AxcError(
        diag('AX3203', 'error', `unknown fusion '${n}'`, locOf(ctx.span), [
          ...(dym ? [`did you mean '${dym}'?`] : []),
          `fusions: ${FUSIONS.map((x) => x.name).join(', ')}`,
        ]),
      );
    }
    if (!out.includes(f)) out.push(f);
  }
  return FUSIONS.filter((f) => out.includes(f));
}

export function runFuse(ctx: PassContext, opts: FuseOptions): PassResult {
  const model = ctx.model;
  const g = model.graph;
  const env: FusionEnv = { model, graph: g, target: opts.target ?? 'onnxruntime', opset: model.opset('') ?? 0 };
  const fusions = requestedFusions(opts, ctx);
  const report: Record<string, FusionReport> = {};
  const stats: Record<string, number> = { nodesRemoved: 0, nodesAdded: 0 };
  let changed = false;
  for (const f of fusions) {
    const r: FusionReport = { applied: 0, declined: [] };
    report[f.name] = r;
    let anchors = 0;
    // collect anchors first: a rewrite removes nodes after the anchor, which a live iteration would then follow
    for (const n of g.nodes().filter((x) => f.anchors.includes(x.opType))) {
      if (n.graph !== g) continue;
      anchors++;
      const m = f.match(n, env);
      if (!m) continue;
      if ('declined' in m) {
        r.declined.push({ node: m.node.name, op: m.node.qualifiedOp, reason: m.reason });
        continue;
      }
      const esc = escapeReason(m);
      if (esc) {
        r.declined.push({ node: n.name, op: n.qualifiedOp, reason: esc });
        continue;
      }
      if (m.usesMicrosoftDomain) ensureMsDomain(model);
      const before = g.nodeCount;
      applyMatch(g, m);
      stats.nodesRemoved! += m.nodes.length;
      stats.nodesAdded! += g.nodeCount - before + m.nodes.length;
      r.applied++;
      changed = true;
    }
    stats[f.name] = r.applied;
    for (const d of r.declined)
      ctx.report(
        diag(
          'AX3201',
          'warning',
          `did not fuse ${f.name} at '${d.node}' (${d.op}): ${d.reason}`,
          nodeLoc(d.node, d.op),
        ),
      );
    if (r.applied === 0) {
      const why =
        r.declined.length > 0
          ? `every candidate was declined (${r.declined.length}, see above)`
          : anchors === 0
            ? `the model has no ${f.anchors.join(' or ')} node to start from`
            : `no ${f.anchors.join(' or ')} node starts this pattern (${f.summary})`;
      ctx.report(diag('AX3202', 'warning', `fusion '${f.name}' applied nowhere: ${why}`, locOf(ctx.span)));
    }
  }
  ctx.details.fusions = report;
  const parts = Object.entries(report).map(([k, v]) => `${k} ${v.applied}`);
  return { changed, stats, summary: `fused ${parts.join(', ')}` };
}

export const fusePass: PassDef<FuseOptions> = {
  name: 'fuse',
  summary: 'fuse decomposed LayerNorm, GELU, residual + LayerNorm and bias + GELU into single ops',
  positional: 'patterns',
  options: {
    patterns: {
      type: 'names',
      summary: 'fusions to apply, in table order (default: all)',
      // a getter, so that fusions added to the table later (attention) are valid plan values too
      get values() {
        return FUSIONS.map((f) => f.name);
      },
    },
    target: {
      type: 'enum',
      summary: 'runtime: onnx (standard ops only) or onnxruntime (com.microsoft ops too)',
      values: ['onnx', 'onnxruntime'],
      default: 'onnxruntime',
    },
  },
  messages: {
    AX3201: 'a fusion declined a candidate; the message names the node and the reason',
    AX3202: 'a requested fusion applied nowhere',
    AX3203: 'unknown fusion name',
  },
  run: runFuse,
};

registerPass(fusePass);
