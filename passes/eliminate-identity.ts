import { DataType, type Graph, type Node, type Value } from '../src/ir/index.js';
import { registerPass, type PassContext, type PassDef, type PassResult } from '../src/pass/index.js';
import { constInts, constTensor, elemTypeOf } from './lib/consts.js';
import { Declines, plural, pruneValueInfo, removeNode } from './lib/graph-util.js';

export interface EliminateIdentityOptions {
  /** Also remove no-op Cast, Reshape, Dropout and Transpose (default true); false removes only Identity. */
  noops?: boolean;
}

const isStd = (n: Node) => n.domain === '' || n.domain === 'ai.onnx';

/**
 * Whether node `n` passes its input 0 through unchanged (same values, dtype and shape) to its output 0; returns
 * the reason when it cannot tell or it is not a no-op of a kind this pass handles, or null for a no-op.
 */
export function noopReason(n: Node, memo: Map<Value, DataType | undefined>, opset = 17): string | null | undefined {
  if (!isStd(n)) return undefined;
  const x = n.input(0);
  switch (n.opType) {
    case 'Identity':
      return x ? null : 'it has no input';
    case 'Concat':
      // a Concat of a single tensor returns it unchanged
      return n.inputs.length === 1 && x ? null : undefined;
    case 'Cast':
    case 'CastLike': {
      const to = n.opType === 'Cast' ? n.getInt('to') : elemTypeOf(n.input(1), memo);
      const from = elemTypeOf(x, memo);
      if (to === undefined || from === undefined) return undefined; // unknown types: not a candidate
      return to === from ? null : undefined;
    }
    case 'Dropout': {
      const mask = n.outputs[1];
      const training = n.input(2);
      // before opset 7, Dropout trains unless is_test=1
      if (opset < 7 && n.getInt('is_test', 0) !== 1) return 'it runs in training mode (is_test is not 1)';
      if (training) {
        const t = constTensor(training);
        if (!t) return 'its training_mode input is not a constant';
        if (t.toNumbers().some((b) => b !== 0)) return 'its training_mode input is true';
      }
      if (mask && (mask.uses().length > 0 || mask.isGraphOutput())) return `its mask output '${mask.name}' is used`;
      return null;
    }
    case 'Transpose': {
      const perm = n.getInts('perm');
      if (perm) return perm.every((p, i) => p === i) ? null : undefined;
      const rank = x?.shape?.length;
      return rank !== undefined && rank <= 1 ? null : undefined;
    }
    case 'Reshape': {
      const target = constInts(n.input(1));
      const shape = x?.shape;
      if (!target || !shape || target.length !== shape.length) return undefined;
      const allowZero = n.getInt('allowzero', 0) === 1;
      let minusOne = 0;
      for (let i = 0; i < target.length; i++) {
        const t = target[i]!;
        const d = shape[i];
        if (t === -1) minusOne++;
        else if (t === 0 && !allowZero)
          continue; // copies the input's dimension
        else if (typeof d !== 'number' || d !== t) return undefined;
      }
      // with one -1 and every other dimension equal, the -1 must be the remaining input dimension
      return minusOne <= 1 ? null : undefined;
    }
    default:
      return undefined;
  }
}

interface Stats {
  nodesRemoved: number;
  outputsRenamed: number;
}

function eliminateIn(g: Graph, noops: boolean, opset: number, declines: Declines, stats: Stats): void {
  const memo = new Map<Value, DataType | undefined>();
  for (const n of g) {
    for (const sg of n.subgraphs()) eliminateIn(sg, noops, opset, declines, stats);
    if (!noops && n.opType !== 'Identity') continue;
    const r = noopReason(n, memo, opset);
    if (r === undefined) continue;
    if (r !== null) {
      declines.add(n, r);
      continue;
    }
    const x = n.input(0)!;
    const y = n.outputs[0]!;
    if (y.isGraphOutput()) {
      // y's name is part of the model's interface: x takes it over when x is a plain node output of this graph
      const why =
        x.graph !== g
          ? `its output '${y.name}' is a graph output and its input '${x.name}' is defined outside this graph`
          : x.isGraphInput()
            ? `its output '${y.name}' is a graph output and its input '${x.name}' is a graph input`
            : x.constValue
              ? `its output '${y.name}' is a graph output and its input '${x.name}' is an initializer`
              : x.isGraphOutput()
                ? `its output '${y.name}' and its input '${x.name}' are both graph outputs`
                : !x.producer()
                  ? `its output '${y.name}' is a graph output and its input '${x.name}' has no producer`
                  : null;
      if (why) {
        declines.add(n, why);
        continue;
      }
      const name = y.name;
      const type = y.type ?? x.type;
      y.replaceAllUsesWith(x);
      removeNode(n);
      x.name = name;
      x.type = type;
      g.valueInfo = g.valueInfo.filter((v) => v !== x);
      g.invalidateNames();
      stats.outputsRenamed++;
    } else {
      y.replaceAllUsesWith(x);
      // other outputs (an unused Dropout mask) go with the node
      removeNode(n);
    }
    stats.nodesRemoved++;
  }
  pruneValueInfo(g);
}

export function runEliminateIdentity(ctx: PassContext, options: EliminateIdentityOptions): PassResult {
  const stats: Stats = { nodesRemoved: 0, outputsRenamed: 0 };
  const declines = new Declines('AX3811', 'remove');
  const opset = ctx.model.opset('') ?? 17;
  eliminateIn(ctx.model.graph, options.noops !== false, opset, declines, stats);
  for (const f of ctx.model.functions)
    eliminateIn(f.body, options.noops !== false, f.opsetImports.get('') ?? opset, declines, stats);
  declines.flush(ctx);
  const changed = stats.nodesRemoved > 0;
  return {
    changed,
    stats: { ...stats },
    summary: changed
      ? `removed ${plural(stats.nodesRemoved, 'identity or no-op node', 'identity and no-op nodes')}`
      : 'no identity or no-op node',
  };
}

export const eliminateIdentity: PassDef<EliminateIdentityOptions> = {
  name: 'eliminate-identity',
  summary:
    'Remove Identity nodes and no-op Cast, Reshape, Dropout (inference) and Transpose, keeping graph output names',
  options: {
    noops: {
      type: 'boolean',
      summary: 'Also remove no-op Cast, Reshape, Dropout and Transpose (false: Identity only)',
      default: true,
    },
  },
  messages: { AX3811: 'an identity or no-op node was kept, with the reason' },
  cleanup: true,
  run: runEliminateIdentity,
};

registerPass(eliminateIdentity);
