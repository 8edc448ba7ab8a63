import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { DataType, Tensor as TensorCls, tensorType } from '../../../src/ir/index.js';
import { serializeModel } from '../../../src/onnx/index.js';
import { G } from './cases.js';
import { invariantErrors, runPass } from './support.js';

/**
 * Exactness of fold-constants against onnxruntime: each case builds a one-op graph on initializers, runs it in
 * onnxruntime (graph optimizations off, so onnxruntime computes the op itself), folds it, and compares the folded
 * initializer's bytes with onnxruntime's output bytes.
 */
interface FoldCase {
  name: string;
  out: DataType;
  build: (t: G) => ReturnType<G['op']>;
}

const F = DataType.FLOAT;
const I64 = DataType.INT64;
const I32 = DataType.INT32;
const BOOL = DataType.BOOL;
const i32 = (t: G, name: string, v: number[], dims = [v.length]) =>
  t.b.initializer(name, TensorCls.fromInt32(name, dims, v));
const bools = (t: G, name: string, v: number[], dims = [v.length]) =>
  t.b.initializer(name, TensorCls.fromUint8(name, dims, Uint8Array.from(v), BOOL));
const dbl = (t: G, name: string, v: number[]) =>
  t.b.initializer(
    name,
    TensorCls.fromBytes(name, DataType.DOUBLE, [v.length], new Uint8Array(Float64Array.from(v).buffer)),
  );

const cases: FoldCase[] = [
  {
    name: 'Add float32 broadcast',
    out: F,
    build: (t) => t.op('Add', [t.floats('a', [0.1, 0.2, 1e-8]), t.floats('b', [0.7])]),
  },
  { name: 'Sub float32', out: F, build: (t) => t.op('Sub', [t.floats('a', [0.3, 1e20]), t.floats('b', [0.1, 1])]) },
  {
    name: 'Mul float32 2-way broadcast',
    out: F,
    build: (t) => t.op('Mul', [t.floats('a', [3.3, -7.1e-3]), t.floats('b', [1.1, 2.3], [2, 1])]),
  },
  { name: 'Div float32', out: F, build: (t) => t.op('Div', [t.floats('a', [1, 2, 3, -0]), t.floats('b', [7])]) },
  {
    name: 'Div int64 truncates',
    out: I64,
    build: (t) => t.op('Div', [t.ints('a', [-7, 7, 9, -9]), t.ints('b', [2, 2, -4, -4])]),
  },
  {
    name: 'Add int64 wraps',
    out: I64,
    build: (t) =>
      t.op('Add', [
        t.b.initializer('a', TensorCls.fromInt64('a', [2], [9223372036854775807n, -5n])),
        t.ints('b', [1, 3]),
      ]),
  },
  {
    name: 'Mul int32',
    out: I32,
    build: (t) => t.op('Mul', [i32(t, 'a', [65536, -3, 7]), i32(t, 'b', [65537, 5, -1])]),
  },
  { name: 'Div int32', out: I32, build: (t) => t.op('Div', [i32(t, 'a', [-7, 7]), i32(t, 'b', [2, -2])]) },
  { name: 'Sub int32', out: I32, build: (t) => t.op('Sub', [i32(t, 'a', [-2147483648]), i32(t, 'b', [1])]) },
  { name: 'Neg int64', out: I64, build: (t) => t.op('Neg', [t.ints('a', [3, -4, 0])]) },
  { name: 'Neg float32', out: F, build: (t) => t.op('Neg', [t.floats('a', [0, 1.5, -2])]) },
  { name: 'Equal int64', out: BOOL, build: (t) => t.op('Equal', [t.ints('a', [1, 2, 3]), t.ints('b', [2], [])]) },
  {
    name: 'Equal float32 zeros',
    out: BOOL,
    build: (t) => t.op('Equal', [t.floats('a', [0, -0, 1]), t.floats('b', [-0], [])]),
  },
  { name: 'Less float32', out: BOOL, build: (t) => t.op('Less', [t.floats('a', [1, 2, 3]), t.floats('b', [2])]) },
  {
    name: 'GreaterOrEqual int64',
    out: BOOL,
    build: (t) => t.op('GreaterOrEqual', [t.ints('a', [1, 2, 3]), t.ints('b', [2])]),
  },
  {
    name: 'And bool',
    out: BOOL,
    build: (t) => t.op('And', [bools(t, 'a', [1, 1, 0, 0]), bools(t, 'b', [1, 0, 1, 0])]),
  },
  { name: 'Not bool', out: BOOL, build: (t) => t.op('Not', [bools(t, 'a', [1, 0])]) },
  {
    name: 'Where 3-way broadcast',
    out: F,
    build: (t) => t.op('Where', [bools(t, 'c', [1, 0], [2, 1]), t.floats('x', [1, 2, 3]), t.floats('y', [-1], [])]),
  },
  {
    name: 'Range int64 up',
    out: I64,
    build: (t) => t.op('Range', [t.ints('s', [0], []), t.ints('l', [10], []), t.ints('d', [3], [])]),
  },
  {
    name: 'Range int64 down',
    out: I64,
    build: (t) => t.op('Range', [t.ints('s', [10], []), t.ints('l', [0], []), t.ints('d', [-3], [])]),
  },
  {
    name: 'Range int64 empty',
    out: I64,
    build: (t) => t.op('Range', [t.ints('s', [5], []), t.ints('l', [1], []), t.ints('d', [1], [])]),
  },
  {
    name: 'Range int32',
    out: I32,
    build: (t) => t.op('Range', [i32(t, 's', [-2], []), i32(t, 'l', [5], []), i32(t, 'd', [2], [])]),
  },
  {
    name: 'ConstantOfShape int64',
    out: I64,
    build: (t) => t.op('ConstantOfShape', [t.ints('s', [2, 3])], { value: TensorCls.fromInt64('v', [1], [7]) }),
  },
  { name: 'ConstantOfShape default float', out: F, build: (t) => t.op('ConstantOfShape', [t.ints('s', [3])]) },
  { name: 'Expand', out: F, build: (t) => t.op('Expand', [t.floats('x', [1, 2, 3], [3, 1]), t.ints('s', [2, 1, 4])]) },
  {
    name: 'Gather axis 1, negative index',
    out: I64,
    build: (t) => t.op('Gather', [t.ints('x', [1, 2, 3, 4, 5, 6], [2, 3]), t.ints('i', [-1, 0])], { axis: 1 }),
  },
  {
    name: 'Gather scalar index',
    out: I64,
    build: (t) => t.op('Gather', [t.ints('x', [4, 5, 6]), t.ints('i', [1], [])], { axis: 0 }),
  },
  { name: 'Unsqueeze', out: F, build: (t) => t.op('Unsqueeze', [t.floats('x', [1, 2]), t.ints('a', [0, -1])]) },
  { name: 'Squeeze axes', out: F, build: (t) => t.op('Squeeze', [t.floats('x', [1, 2], [2, 1]), t.ints('a', [1])]) },
  { name: 'Squeeze all', out: F, build: (t) => t.op('Squeeze', [t.floats('x', [1, 2], [1, 2, 1])]) },
  {
    name: 'Concat axis 1',
    out: I64,
    build: (t) => t.op('Concat', [t.ints('a', [1, 2], [2, 1]), t.ints('b', [3, 4, 5, 6], [2, 2])], { axis: 1 }),
  },
  {
    name: 'Slice negative step, INT64_MIN end',
    out: I64,
    build: (t) =>
      t.op('Slice', [
        t.ints('x', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        t.ints('s', [-1]),
        t.b.initializer('e', TensorCls.fromInt64('e', [1], [-9223372036854775808n])),
        t.ints('a', [0]),
        t.ints('st', [-2]),
      ]),
  },
  {
    name: 'Slice 2-D with a large end',
    out: F,
    build: (t) =>
      t.op('Slice', [
        t.floats('x', [1, 2, 3, 4, 5, 6], [2, 3]),
        t.ints('s', [1]),
        t.ints('e', [1000]),
        t.ints('a', [-1]),
      ]),
  },
  {
    name: 'Reshape 0 and -1',
    out: F,
    build: (t) => t.op('Reshape', [t.floats('x', [1, 2, 3, 4, 5, 6], [2, 3]), t.ints('s', [0, -1, 1])]),
  },
  {
    name: 'Flatten',
    out: F,
    build: (t) => t.op('Flatten', [t.floats('x', [...Array(12).keys()], [2, 3, 2])], { axis: 2 }),
  },
  {
    name: 'Transpose perm',
    out: F,
    build: (t) => t.op('Transpose', [t.floats('x', [...Array(12).keys()], [2, 3, 2])], { perm: [1, 2, 0] }),
  },
  { name: 'Transpose default', out: F, build: (t) => t.op('Transpose', [t.floats('x', [...Array(6).keys()], [2, 3])]) },
  {
    name: 'Cast float32 -> int64',
    out: I64,
    build: (t) => t.op('Cast', [t.floats('x', [-2.7, 2.7, -0.5, 1e9])], { to: I64 }),
  },
  {
    name: 'Cast float32 -> bool',
    out: BOOL,
    build: (t) => t.op('Cast', [t.floats('x', [0, -0, NaN, 2])], { to: BOOL }),
  },
  {
    name: 'Cast int64 -> float32 rounds',
    out: F,
    build: (t) => t.op('Cast', [t.ints('x', [16777217, -16777219, 3])], { to: F }),
  },
  {
    name: 'Cast double -> float32',
    out: F,
    build: (t) => t.op('Cast', [dbl(t, 'x', [0.1, 1e-50, 3.4e39])], { to: F }),
  },
  { name: 'Cast bool -> float32', out: F, build: (t) => t.op('Cast', [bools(t, 'x', [1, 0])], { to: F }) },
  {
    name: 'Cast int64 -> int32 wraps',
    out: I32,
    build: (t) => t.op('Cast', [t.ints('x', [2 ** 32 + 5, -1])], { to: I32 }),
  },
  { name: 'Identity', out: F, build: (t) => t.op('Identity', [t.floats('x', [1.25])]) },
  {
    name: 'Shape with start',
    out: I64,
    build: (t) => t.op('Shape', [t.floats('x', [1, 2, 3, 4, 5, 6], [1, 2, 3])], { start: -2 }),
  },
  { name: 'Size', out: I64, build: (t) => t.op('Size', [t.floats('x', [1, 2, 3, 4, 5, 6], [2, 3])]) },
];

function bytesOf(data: ort.Tensor['data']): Buffer {
  const v = data as ArrayBufferView;
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

describe('fold-constants gives the same bits as onnxruntime', () => {
  for (const c of cases)
    it(c.name, async () => {
      const t = new G();
      const y = c.build(t);
      const name = y.name;
      // the graph output is an Identity of the folded value (a graph output itself is never folded)
      const out = t.op('Identity', [y], undefined, 'keep');
      out.name = 'out';
      out.type = tensorType(c.out);
      t.out(out);
      const session = await ort.InferenceSession.create(serializeModel(t.m), {
        graphOptimizationLevel: 'disabled',
        intraOpNumThreads: 1,
      });
      const ref = (await session.run({})).out!;
      await session.release();
      const r = await runPass(t.m, 'fold-constants');
      expect(r.diagnostics.map((d) => d.message)).toEqual([
        "did not fold 'keep' (Identity): its output 'out' is a graph output",
      ]);
      expect(invariantErrors(t.m)).toEqual([]);
      expect(t.g.nodeCount).toBe(1);
      const folded = t.g.initializers.find((v) => v.name === name)!;
      expect(folded.constValue!.dataType).toBe(c.out);
      expect([...folded.constValue!.dims]).toEqual(ref.dims);
      expect([...Buffer.from(folded.constValue!.bytes())]).toEqual([...bytesOf(ref.data)]);
    });
});
