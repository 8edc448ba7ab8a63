/**
 * `decompose`: rewrite onnxruntime's fused contrib ops back into the standard ops a Hugging Face export has, so that
 * the passes that read transformer layers (significance, prune, topk-attention) work on graphs onnxruntime's
 * transformer optimizer already fused. `fuse` re-fuses afterwards.
 *
 *   decompose                      # every kind below
 *   decompose skip-layernorm       # only SkipLayerNormalization
 *
 * - com.microsoft SkipLayerNormalization(x, skip, gamma, beta?, bias?) → Add(x, bias) → Add(·, skip) →
 *   LayerNormalization(axis -1, epsilon): the bias joins its projection and the residual Add is a plain Add again.
 *   Below opset 17 (no standard LayerNormalization) the LayerNorm is written out as the opset-14 export does
 *   (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add). Its input+skip+bias sum output maps to the sum;
 *   a node whose mean or inverse-deviation outputs are used is left alone, with the reason.
 * - com.microsoft BiasGelu(x, bias) / Gelu(x) → Add(x, bias) → x * 0.5 * (1 + Erf(x / sqrt 2)).
 * - com.microsoft FastGelu(x, bias?) → Add(x, bias) → 0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
 * The rewrite is exact up to float rounding (the fused kernels compute the same formulas).
 *
 * Codes: AX3851 a fused node left alone, with the reason (note).
 */
import { Builder, type Node, type Value } from '../src/ir/index.js';
import { registerPass, type PassContext, type PassDef, type PassResult } from '../src/pass/index.js';
import type { NamedItem } from '../src/pass/types.js';
import { Declines, removeNode } from './lib/graph-util.js';

export const DECOMPOSE_KINDS = ['skip-layernorm', 'gelu', 'fast-gelu'] as const;
type Kind = (typeof DECOMPOSE_KINDS)[number];

export interface DecomposeOptions {
  kinds?: (NamedItem | string)[];
}

const MS = 'com.microsoft';

function kindOf(n: Node): Kind | undefined {
  if (n.domain !== MS) return undefined;
  if (n.opType === 'SkipLayerNormalization' || n.opType === 'SkipSimplifiedLayerNormalization') return 'skip-layernorm';
  if (n.opType === 'BiasGelu' || n.opType === 'Gelu') return 'gelu';
  if (n.opType === 'FastGelu') return 'fast-gelu';
  return undefined;
}

/** x + bias when a bias is given. */
function addBias(b: Builder, x: Value, bias: Value | null, name: string): Value {
  return bias ? b.op1('Add', [x, bias], { name: `${name}/Add_bias` }) : x;
}

/** LayerNorm over the last axis: LayerNormalization (opset >= 17) or the opset-14 export's decomposition. */
function layerNorm(
  b: Builder,
  s: Value,
  gamma: Value,
  beta: Value | null,
  epsilon: number,
  opset: number,
  name: string,
): Value {
  if (opset >= 17)
    return b.op1('LayerNormalization', beta ? [s, gamma, beta] : [s, gamma], {
      name: `${name}/LayerNormalization`,
      attrs: { axis: -1, epsilon },
    });
  const reduce = (x: Value, what: string) =>
    opset >= 18
      ? b.op1('ReduceMean', [x, b.constInt64(`${name}_axes`, [-1])], { name: `${name}/${what}` })
      : b.op1('ReduceMean', [x], { name: `${name}/${what}`, attrs: { axes: [-1], keepdims: 1 } });
  const mean = reduce(s, 'ReduceMean');
  const d = b.op1('Sub', [s, mean], { name: `${name}/Sub` });
  const sq = b.op1('Pow', [d, b.scalarFloat(`${name}_two`, 2)], { name: `${name}/Pow` });
  const variance = reduce(sq, 'ReduceMean_1');
  const sd = b.op1(
    'Sqrt',
    [b.op1('Add', [variance, b.scalarFloat(`${name}_epsilon`, epsilon)], { name: `${name}/Add_epsilon` })],
    { name: `${name}/Sqrt` },
  );
  const n = b.op1('Div', [d, sd], { name: `${name}/Div` });
  const scaled = b.op1('Mul', [n, gamma], { name: `${name}/Mul` });
  return beta ? b.op1('Add', [scaled, beta], { name: `${name}/Add_beta` }) : scaled;
}

/** Why the node cannot be decomposed, or undefined. */
function declineReason(n: Node): string | undefined {
  if (n.opType === 'SkipSimplifiedLayerNormalization')
    return 'SkipSimplifiedLayerNormalization (RMS norm) has no standard-op form this pass writes';
  if (n.opType === 'SkipLayerNormalization') {
    for (const i of [1, 2]) {
      const o = n.outputs[i];
      if (o && (o.uses().length > 0 || o.isGraphOutput()))
        return `its ${i === 1 ? 'mean' : 'inverse standard deviation'} output '${o.name}' is used`;
    }
  }
  return undefined;
}

function decomposeNode(b: Builder, n: Node, opset: number): void {
  const name = n.name || n.opType;
  const out = n.outputs[0]!;
  let y: Value;
  let sum: Value | undefined;
  if (n.opType === 'SkipLayerNormalization') {
    const x = addBias(b, n.input(0)!, n.input(4), name);
    sum = b.op1('Add', [x, n.input(1)!], { name: `${name}/Add_skip` });
    y = layerNorm(b, sum, n.input(2)!, n.input(3), n.getFloat('epsilon', 1e-12)!, opset, name);
  } else if (n.opType === 'FastGelu') {
    const x = addBias(b, n.input(0)!, n.input(1), name);
    const cube = b.op1('Mul', [b.op1('Mul', [x, x], { name: `${name}/Mul_sq` }), x], { name: `${name}/Mul_cube` });
    const inner = b.op1(
      'Add',
      [x, b.op1('Mul', [cube, b.scalarFloat(`${name}_c`, 0.044715)], { name: `${name}/Mul_c` })],
      { name: `${name}/Add_inner` },
    );
    const t = b.op1(
      'Tanh',
      [b.op1('Mul', [inner, b.scalarFloat(`${name}_k`, Math.sqrt(2 / Math.PI))], { name: `${name}/Mul_k` })],
      { name: `${name}/Tanh` },
    );
    const one = b.op1('Add', [t, b.scalarFloat(`${name}_one`, 1)], { name: `${name}/Add_one` });
    const half = b.op1('Mul', [x, b.scalarFloat(`${name}_half`, 0.5)], { name: `${name}/Mul_half` });
    y = b.op1('Mul', [half, one], { name: `${name}/Mul` });
  } else {
    // BiasGelu(x, bias) or Gelu(x): the Erf GELU exactly as torch.onnx exports it
    const x = addBias(b, n.input(0)!, n.opType === 'BiasGelu' ? n.input(1) : null, name);
    const e = b.op1('Erf', [b.op1('Div', [x, b.scalarFloat(`${name}_sqrt2`, Math.SQRT2)], { name: `${name}/Div` })], {
      name: `${name}/Erf`,
    });
    const one = b.op1('Add', [e, b.scalarFloat(`${name}_one`, 1)], { name: `${name}/Add_one` });
    const xm = b.op1('Mul', [x, one], { name: `${name}/Mul` });
    y = b.op1('Mul', [xm, b.scalarFloat(`${name}_half`, 0.5)], { name: `${name}/Mul_half` });
  }
  y.type = out.type;
  out.replaceAllUsesWith(y, { replaceGraphOutputs: true });
  const s3 = n.opType === 'SkipLayerNormalization' ? n.outputs[3] : undefined;
  const renames: [Value, string][] = [[y, out.name]];
  if (s3 && sum && (s3.uses().length > 0 || s3.isGraphOutput())) {
    s3.replaceAllUsesWith(sum, { replaceGraphOutputs: true });
    renames.push([sum, s3.name]);
  }
  removeNode(n);
  // the rewrite's values take over the node's output names (graph outputs keep their names); those names are
  // already in the graph's name cache, so nothing else can be handed them
  for (const [v, name] of renames) v.name = name;
}

export function runDecompose(ctx: PassContext, options: DecomposeOptions): PassResult {
  const wanted = new Set<string>(
    (options.kinds ?? []).map((k) => (typeof k === 'string' ? k : k.name)).filter(Boolean),
  );
  const kinds = wanted.size ? wanted : new Set<string>(DECOMPOSE_KINDS);
  const g = ctx.model.graph;
  const opset = ctx.model.opset('') ?? 17;
  const declines = new Declines('AX3851', 'decompose');
  const counts = new Map<string, number>();
  for (const n of g.nodes()) {
    const k = kindOf(n);
    if (!k || !kinds.has(k)) continue;
    const why = declineReason(n);
    if (why) {
      declines.add(n, why);
      continue;
    }
    const op = n.opType;
    const b = new Builder(g, n, 'decompose');
    decomposeNode(b, n, opset);
    counts.set(op, (counts.get(op) ?? 0) + 1);
  }
  declines.flush(ctx);
  const total = [...counts.values()].reduce((a, c) => a + c, 0);
  return {
    changed: total > 0,
    stats: Object.fromEntries([...counts].map(([k, v]) => [k, v])),
    summary: total
      ? `decomposed ${[...counts].map(([k, v]) => `${v} ${k}`).join(', ')} into standard ops`
      : 'no SkipLayerNormalization, BiasGelu, Gelu or FastGelu node to decompose',
  };
}

export const decompose: PassDef<DecomposeOptions> = {
  name: 'decompose',
  summary:
    "Rewrite onnxruntime's fused SkipLayerNormalization, BiasGelu/Gelu and FastGelu into standard ops, so that layer passes (significance, prune) read graphs onnxruntime already fused; fuse re-fuses",
  positional: 'kinds',
  options: {
    kinds: {
      type: 'names',
      summary: 'What to decompose: skip-layernorm, gelu (BiasGelu and com.microsoft Gelu), fast-gelu (default all)',
      values: [...DECOMPOSE_KINDS],
    },
  },
  messages: { AX3851: 'a fused node left as it is, with the reason' },
  run: runDecompose,
};

registerPass(decompose);
