import { DataType, Tensor, Value, type Graph, type Node } from '../src/ir/index.js';
import { registerPass, type PassContext, type PassDef, type PassResult } from '../src/pass/index.js';
import { constantNodeTensor, constTensor } from './lib/consts.js';
import { EVALUATED_OPS, EvalDecline, evaluate, fromTensor, toTensor, type CTensor } from './lib/evaluator.js';
import { Declines, plural, pruneValueInfo, removeNode } from './lib/graph-util.js';

export interface FoldConstantsOptions {
  /** Fold only when the result has at most this many elements (weights are never duplicated). */
  'size-limit'?: number;
}

/** Inputs larger than this are not read for folding (a Gather from a weight, say). */
const MAX_INPUT_ELEMENTS = 1 << 20;

interface Stats {
  constantsConverted: number;
  nodesFolded: number;
  nodesRemoved: number;
}

const isStd = (n: Node) => n.domain === '' || n.domain === 'ai.onnx';

/**
 * Replace node `n` (one output) by an initializer holding `t`, named as the output was so names stay stable.
 * Returns false (and declines) when the output is a graph output.
 */
function replaceByInitializer(g: Graph, n: Node, t: Tensor, created: Value[]): void {
  const out = n.outputs[0]!;
  const v = new Value(out.name);
  out.replaceAllUsesWith(v);
  removeNode(n);
  g.invalidateNames(); // the output's name is free again: the initializer takes it
  g.addInitializer(v, t);
  created.push(v);
}

/** The shape a Shape node reports, when the dimensions it covers are static; undefined otherwise. */
function staticShape(n: Node, x: Value): number[] | undefined {
  const shape = x.constValue ? [...x.constValue.dims] : x.shape;
  if (!shape) return undefined;
  const r = shape.length;
  const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + r : i, 0), r);
  const start = clamp(n.getInt('start', 0));
  const end = clamp(n.getInt('end', r));
  const dims = shape.slice(start, Math.max(start, end));
  return dims.every((d): d is number => typeof d === 'number') ? dims : undefined;
}

function foldIn(g: Graph, opset: number, limit: number, declines: Declines, stats: Stats): void {
  const created: Value[] = [];
  for (const n of g) {
    for (const sg of n.subgraphs()) foldIn(sg, opset, limit, declines, stats);
    if (!isStd(n) || n.outputs.length !== 1 || n.subgraphs().length > 0) continue;
    const out = n.outputs[0]!;
    if (n.opType === 'Constant') {
      const t = constantNodeTensor(n);
      if (!t) {
        declines.add(n, `its attribute ${[...n.attributes.keys()].join(', ')} is not a dense tensor axc converts`);
        continue;
      }
      if (out.isGraphOutput()) {
        declines.add(n, `its output '${out.name}' is a graph output`);
        continue;
      }
      // a fresh tensor with the same storage (attribute tensors often have no name of their own)
      replaceByInitializer(g, n, t.withStorage(t.rawStorage), created);
      stats.constantsConverted++;
      stats.nodesRemoved++;
      continue;
    }
    if (!EVALUATED_OPS.has(n.opType)) {
      const allConst = n.inputs.length > 0 && n.inputs.every((v) => !v || constTensor(v));
      if (allConst && n.inputs.some((v) => v))
        declines.add(n, `its inputs are constant but axc has no evaluator for ${n.opType}`);
      continue;
    }
    let result: CTensor;
    try {
      if (n.opType === 'Shape' || n.opType === 'Size') {
        const x = n.input(0);
        if (!x) continue;
        const dims = staticShape(n, x);
        if (!dims) continue; // dynamic shape: not a candidate
        result =
          n.opType === 'Shape'
            ? { dtype: DataType.INT64, dims: [dims.length], data: dims.map((d) => BigInt(d)) }
            : { dtype: DataType.INT64, dims: [], data: [BigInt(dims.reduce((a, b) => a * b, 1))] };
      } else {
        const ts = n.inputs.map((v) => (v ? constTensor(v) : null));
        if (ts.some((t) => t === undefined) || ts.every((t) => t === null)) continue; // some input is computed
        const big = ts.find((t) => t && t.numElements > MAX_INPUT_ELEMENTS);
        if (big) {
          declines.add(n, `an input has ${big.numElements} elements, too many to evaluate`);
          continue;
        }
        result = evaluate(
          n,
          ts.map((t) => (t ? fromTensor(t) : null)),
          opset,
        );
      }
    } catch (e) {
      if (e instanceof EvalDecline) {
        declines.add(n, e.message);
        continue;
      }
      throw e;
    }
    if (result.data.length > limit) {
      declines.add(n, `its result has ${result.data.length} elements, above size-limit ${limit}`);
      continue;
    }
    if (out.isGraphOutput()) {
      declines.add(n, `its output '${out.name}' is a graph output`);
      continue;
    }
    replaceByInitializer(g, n, toTensor(result, out.name), created);
    stats.nodesFolded++;
    stats.nodesRemoved++;
  }
  // initializers this pass made and then folded away (an intermediate of a folded chain) are dropped at once;
  // initializers that were in the model before are left to dce
  for (const v of created) if (v.uses().length === 0 && !v.isGraphOutput()) g.removeInitializer(v);
  pruneValueInfo(g);
}

export function runFoldConstants(ctx: PassContext, options: FoldConstantsOptions): PassResult {
  const stats: Stats = { constantsConverted: 0, nodesFolded: 0, nodesRemoved: 0 };
  const declines = new Declines('AX3831', 'fold');
  const limit = options['size-limit'] ?? 1024;
  foldIn(ctx.model.graph, ctx.model.opset('') ?? 1, limit, declines, stats);
  declines.flush(ctx);
  const changed = stats.nodesRemoved > 0;
  return {
    changed,
    stats: { ...stats },
    summary: changed
      ? `turned ${plural(stats.constantsConverted, 'Constant node')} into initializers and folded ${plural(stats.nodesFolded, 'node')}`
      : 'nothing to fold',
  };
}

export const foldConstants: PassDef<FoldConstantsOptions> = {
  name: 'fold-constants',
  summary: 'Evaluate small shape computations on constants (exactly) and turn Constant nodes into initializers',
  options: {
    'size-limit': {
      type: 'integer',
      summary: 'Fold only results with at most this many elements',
      default: 1024,
      min: 0,
    },
  },
  messages: { AX3831: 'a node with constant inputs was not folded, with the reason' },
  run: runFoldConstants,
};

registerPass(foldConstants);
