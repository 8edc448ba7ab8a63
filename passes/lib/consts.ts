import { AttrType, DataType, Tensor, type Node, type Value } from '../../src/ir/index.js';
import { isConstInitializer } from './graph-util.js';

/**
 * The tensor held by a Constant node, whichever attribute holds it (value, value_float(s), value_int(s)).
 * Undefined for sparse_value and value_string(s), which axc does not evaluate.
 */
export function constantNodeTensor(n: Node): Tensor | undefined {
  if (n.opType !== 'Constant' || (n.domain !== '' && n.domain !== 'ai.onnx')) return undefined;
  const a = [...n.attributes.values()][0];
  if (!a || n.attributes.size !== 1) return undefined;
  const name = n.outputs[0]?.name ?? '';
  switch (a.name) {
    case 'value':
      return a.data.type === AttrType.TENSOR ? a.data.value : undefined;
    case 'value_float':
      return a.data.type === AttrType.FLOAT ? Tensor.fromFloat32(name, [], [a.data.value]) : undefined;
    case 'value_floats':
      return a.data.type === AttrType.FLOATS
        ? Tensor.fromFloat32(name, [a.data.value.length], a.data.value)
        : undefined;
    case 'value_int':
      return a.data.type === AttrType.INT ? Tensor.fromInt64(name, [], [a.data.value]) : undefined;
    case 'value_ints':
      return a.data.type === AttrType.INTS ? Tensor.fromInt64(name, [a.data.value.length], a.data.value) : undefined;
    default:
      return undefined;
  }
}

/** The constant tensor a value holds: a (non-overridable) initializer, or the output of a Constant node. */
export function constTensor(v: Value | null): Tensor | undefined {
  if (!v) return undefined;
  if (isConstInitializer(v)) return v.constValue;
  const p = v.producer();
  if (p && p.opType === 'Constant') return constantNodeTensor(p);
  return undefined;
}

/** Integer values of a small constant int64/int32 tensor, or undefined. */
export function constInts(v: Value | null): number[] | undefined {
  const t = constTensor(v);
  if (!t || (t.dataType !== DataType.INT64 && t.dataType !== DataType.INT32)) return undefined;
  return t.toNumbers();
}

/**
 * A Reshape's target shape as far as it is constant: an initializer, a Constant node, or a Concat of those and of
 * one-element dynamic pieces (null). Unlike `constInts`, a Concat with dynamic pieces still gives an answer.
 */
export function shapeTargetInts(v: Value | null): (number | null)[] | undefined {
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
      const c = shapeTargetInts(inp);
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

const SAME_AS_INPUT0 = new Set([
  'Identity',
  'Gather',
  'GatherElements',
  'GatherND',
  'Unsqueeze',
  'Squeeze',
  'Reshape',
  'Flatten',
  'Concat',
  'Slice',
  'Expand',
  'Transpose',
  'Tile',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Neg',
  'Abs',
  'Max',
  'Min',
  'Mod',
  'Range',
  'Relu',
  'Dropout',
  'ReduceSum',
  'ReduceMax',
  'ReduceMin',
  'ReduceMean',
  'ReduceProd',
  'CumSum',
  'Pad',
]);
const BOOL_RESULT = new Set([
  'Equal',
  'Less',
  'Greater',
  'LessOrEqual',
  'GreaterOrEqual',
  'And',
  'Or',
  'Xor',
  'Not',
  'IsNaN',
  'IsInf',
]);
const INT64_RESULT = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero']);

/**
 * The element type of a value: declared (value_info, inputs, initializers), or inferred through the standard ops
 * whose result type follows from their inputs and attributes. Undefined when unknown.
 */
export function elemTypeOf(v: Value | null, memo: Map<Value, DataType | undefined> = new Map()): DataType | undefined {
  if (!v) return undefined;
  const declared = v.elemType;
  if (declared !== undefined && declared !== DataType.UNDEFINED) return declared;
  if (v.constValue) return v.constValue.dataType;
  if (memo.has(v)) return memo.get(v);
  memo.set(v, undefined); // cycles (invalid IR) give undefined
  const n = v.producer();
  let t: DataType | undefined;
  if (n && (n.domain === '' || n.domain === 'ai.onnx')) {
    const op = n.opType;
    if (op === 'Constant') t = constantNodeTensor(n)?.dataType;
    else if (op === 'Cast') t = n.getInt('to');
    else if (op === 'CastLike') t = elemTypeOf(n.input(1), memo);
    else if (op === 'ConstantOfShape') t = n.getTensor('value')?.dataType ?? DataType.FLOAT;
    else if (op === 'Where') t = elemTypeOf(n.input(1), memo) ?? elemTypeOf(n.input(2), memo);
    else if (op === 'Dropout' && v.outputIndex() === 1) t = DataType.BOOL;
    else if (BOOL_RESULT.has(op)) t = DataType.BOOL;
    else if (INT64_RESULT.has(op)) t = DataType.INT64;
    else if (SAME_AS_INPUT0.has(op) && v.outputIndex() === 0) t = elemTypeOf(n.input(0), memo);
  }
  memo.set(v, t);
  return t;
}
