import { DataType, dtypeName, Tensor, type Node } from '../../src/ir/index.js';

/**
 * A small exact evaluator for the shape-computation ops exporters leave in graphs, on small tensors.
 * Each op follows the ONNX specification and gives the same bits as onnxruntime's CPU kernels:
 * float32 arithmetic is done in float64 and rounded once (exact for + - * /), int64 in BigInt with two's complement
 * wrap-around, integer division truncates toward zero. Anything it cannot do exactly throws EvalDecline with the reason.
 */

export class EvalDecline extends Error {}

/** Element types the evaluator handles. int64 values are bigints; all others are JS numbers. */
const SUPPORTED = new Set([DataType.FLOAT, DataType.DOUBLE, DataType.INT32, DataType.INT64, DataType.BOOL]);

export interface CTensor {
  dtype: DataType;
  dims: number[];
  /** Row-major values; bigint for int64, number otherwise (float32 values are exactly representable). */
  data: (number | bigint)[];
}

const decline = (why: string): never => {
  throw new EvalDecline(why);
};

export function fromTensor(t: Tensor): CTensor {
  if (!SUPPORTED.has(t.dataType)) decline(`element type ${dtypeName(t.dataType)} is not evaluated`);
  const dims = [...t.dims];
  if (t.dataType === DataType.INT64) return { dtype: t.dataType, dims, data: Array.from(t.toBigInt64()) };
  return { dtype: t.dataType, dims, data: t.toNumbers() };
}

export function toTensor(c: CTensor, name: string): Tensor {
  const n = c.data.length;
  switch (c.dtype) {
    case DataType.FLOAT:
      return Tensor.fromFloat32(name, c.dims, Float32Array.from(c.data as number[]));
    case DataType.DOUBLE: {
      const a = Float64Array.from(c.data as number[]);
      return Tensor.fromBytes(name, DataType.DOUBLE, c.dims, new Uint8Array(a.buffer, 0, n * 8));
    }
    case DataType.INT32:
      return Tensor.fromInt32(name, c.dims, Int32Array.from(c.data as number[]));
    case DataType.INT64:
      return Tensor.fromInt64(name, c.dims, BigInt64Array.from(c.data as bigint[]));
    case DataType.BOOL:
      return Tensor.fromUint8(
        name,
        c.dims,
        Uint8Array.from(c.data as number[], (v) => (v ? 1 : 0)),
        DataType.BOOL,
      );
    default:
      return decline(`element type ${dtypeName(c.dtype)} is not evaluated`);
  }
}

const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!;
  return s;
}

/** Multidirectional (numpy) broadcast of shapes. */
export function broadcastDims(shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      const x = k >= 0 ? s[k]! : 1;
      if (x === 1) continue;
      if (d !== 1 && d !== x) decline(`shapes [${shapes.map((s) => s.join(',')).join('] and [')}] do not broadcast`);
      d = x;
    }
    out.push(d);
  }
  return out;
}

/** For each element of `outDims`, the flat index into a tensor of `inDims` broadcast to it. */
function broadcastIndex(outDims: readonly number[], inDims: readonly number[]): number[] {
  const n = size(outDims);
  const rank = outDims.length;
  const pad = rank - inDims.length;
  const inStr = strides(inDims);
  const idx = new Array<number>(n);
  const coord = new Array<number>(rank).fill(0);
  for (let f = 0; f < n; f++) {
    let k = 0;
    for (let i = pad; i < rank; i++) if (inDims[i - pad]! !== 1) k += coord[i]! * inStr[i - pad]!;
    idx[f] = k;
    for (let i = rank - 1; i >= 0; i--) {
      if (++coord[i]! < outDims[i]!) break;
      coord[i] = 0;
    }
  }
  return idx;
}

const normAxis = (axis: number, rank: number, what = 'axis'): number => {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) decline(`${what} ${axis} is out of range for rank ${rank}`);
  return a;
};

const F = Math.fround;
const I64 = (v: bigint) => BigInt.asIntN(64, v);
const I32 = (v: number) => v | 0;

type Bin = (a: number | bigint, b: number | bigint) => number | bigint;

function arith(op: string, dt: DataType): Bin {
  if (dt === DataType.INT64) {
    switch (op) {
      case 'Add':
        return (a, b) => I64((a as bigint) + (b as bigint));
      case 'Sub':
        return (a, b) => I64((a as bigint) - (b as bigint));
      case 'Mul':
        return (a, b) => I64((a as bigint) * (b as bigint));
      case 'Div':
        return (a, b) => (b === 0n ? decline('integer division by zero') : I64((a as bigint) / (b as bigint)));
    }
  }
  if (dt === DataType.INT32) {
    switch (op) {
      case 'Add':
        return (a, b) => I32((a as number) + (b as number));
      case 'Sub':
        return (a, b) => I32((a as number) - (b as number));
      case 'Mul':
        return (a, b) => Math.imul(a as number, b as number);
      case 'Div':
        return (a, b) =>
          b === 0
            ? decline('integer division by zero')
            : a === -2147483648 && b === -1
              ? decline('int32 division overflows')
              : I32(Math.trunc((a as number) / (b as number)));
    }
  }
  if (dt === DataType.FLOAT || dt === DataType.DOUBLE) {
    const r = dt === DataType.FLOAT ? F : (x: number) => x;
    switch (op) {
      case 'Add':
        return (a, b) => r((a as number) + (b as number));
      case 'Sub':
        return (a, b) => r((a as number) - (b as number));
      case 'Mul':
        return (a, b) => r((a as number) * (b as number));
      case 'Div':
        return (a, b) => r((a as number) / (b as number));
    }
  }
  return decline(`${op} on ${dtypeName(dt)} is not evaluated`);
}

function compare(op: string): Bin {
  switch (op) {
    case 'Equal':
      return (a, b) => (a === b ? 1 : 0);
    case 'Less':
      return (a, b) => (a < b ? 1 : 0);
    case 'Greater':
      return (a, b) => (a > b ? 1 : 0);
    case 'LessOrEqual':
      return (a, b) => (a <= b ? 1 : 0);
    case 'GreaterOrEqual':
      return (a, b) => (a >= b ? 1 : 0);
    case 'And':
      return (a, b) => (a && b ? 1 : 0);
    case 'Or':
      return (a, b) => (a || b ? 1 : 0);
    case 'Xor':
      return (a, b) => (!a !== !b ? 1 : 0);
  }
  return decline(`no evaluator for ${op}`);
}

function elementwise(inputs: CTensor[], outType: DataType, f: (vals: (number | bigint)[]) => number | bigint): CTensor {
  const dims = broadcastDims(inputs.map((t) => t.dims));
  const idx = inputs.map((t) => broadcastIndex(dims, t.dims));
  const n = size(dims);
  const data = new Array<number | bigint>(n);
  for (let i = 0; i < n; i++) data[i] = f(inputs.map((t, k) => t.data[idx[k]![i]!]!));
  return { dtype: outType, dims, data };
}

const intsOf = (t: CTensor, what: string): number[] => {
  if (t.dtype !== DataType.INT64 && t.dtype !== DataType.INT32) decline(`${what} must be int64`);
  return t.data.map((v) => Number(v));
};

function castValue(v: number | bigint, from: DataType, to: DataType): number | bigint {
  if (from === to) return v;
  if (to === DataType.BOOL) return v !== 0 && v !== 0n ? 1 : 0; // NaN is true and -0 false, as static_cast<bool>
  if (to === DataType.INT64) {
    if (typeof v === 'bigint') return v;
    if (!Number.isFinite(v) || Math.abs(v) >= 2 ** 63)
      decline(`${v} is outside the int64 range, so its cast is undefined`);
    return BigInt(Math.trunc(v));
  }
  if (to === DataType.INT32) {
    if (typeof v === 'bigint') return Number(BigInt.asIntN(32, v));
    if (!Number.isFinite(v) || v >= 2 ** 31 || v < -(2 ** 31))
      decline(`${v} is outside the int32 range, so its cast is undefined`);
    return Math.trunc(v);
  }
  if (to === DataType.FLOAT || to === DataType.DOUBLE) {
    let x: number;
    if (typeof v === 'bigint') {
      if (v > 2n ** 53n || v < -(2n ** 53n)) decline(`cast of int64 ${v} to a float type may round twice`);
      x = Number(v);
    } else x = v;
    return to === DataType.FLOAT ? F(x) : x;
  }
  return decline(`cast to ${dtypeName(to)} is not evaluated`);
}

function gather(data: CTensor, indices: CTensor, axis0: number): CTensor {
  const r = data.dims.length;
  const axis = normAxis(axis0, r);
  const dimA = data.dims[axis]!;
  const ind = intsOf(indices, 'Gather indices').map((i) => {
    const k = i < 0 ? i + dimA : i;
    if (k < 0 || k >= dimA) decline(`Gather index ${i} is out of range for dimension ${dimA}`);
    return k;
  });
  const outer = size(data.dims.slice(0, axis));
  const inner = size(data.dims.slice(axis + 1));
  const dims = [...data.dims.slice(0, axis), ...indices.dims, ...data.dims.slice(axis + 1)];
  const out: (number | bigint)[] = [];
  for (let o = 0; o < outer; o++)
    for (const k of ind) for (let j = 0; j < inner; j++) out.push(data.data[(o * dimA + k) * inner + j]!);
  return { dtype: data.dtype, dims, data: out };
}

function slice(
  data: CTensor,
  starts: number[],
  ends: number[],
  axes0: number[] | undefined,
  steps0?: number[],
): CTensor {
  const r = data.dims.length;
  const axes = axes0 ?? starts.map((_, i) => i);
  const steps = steps0 ?? starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length)
    decline('Slice starts, ends, axes and steps differ in length');
  const st = data.dims.map(() => 0);
  const en = [...data.dims];
  const sp = data.dims.map(() => 1);
  const seen = new Set<number>();
  axes.forEach((a0, i) => {
    const a = normAxis(a0, r);
    if (seen.has(a)) decline(`Slice axis ${a0} is repeated`);
    seen.add(a);
    const d = data.dims[a]!;
    const step = steps[i]!;
    if (step === 0) decline('Slice step is 0');
    let s = starts[i]!;
    let e = ends[i]!;
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (step > 0) {
      s = Math.min(Math.max(s, 0), d);
      e = Math.min(Math.max(e, 0), d);
    } else {
      s = Math.min(Math.max(s, 0), d - 1);
      e = Math.min(Math.max(e, -1), d - 1);
    }
    st[a] = s;
    en[a] = e;
    sp[a] = step;
  });
  const dims = data.dims.map((_, a) => Math.max(0, Math.ceil((en[a]! - st[a]!) / sp[a]!)));
  const inStr = strides(data.dims);
  const n = size(dims);
  const out = new Array<number | bigint>(n);
  const coord = dims.map(() => 0);
  for (let f = 0; f < n; f++) {
    let k = 0;
    for (let a = 0; a < r; a++) k += (st[a]! + coord[a]! * sp[a]!) * inStr[a]!;
    out[f] = data.data[k]!;
    for (let a = r - 1; a >= 0; a--) {
      if (++coord[a]! < dims[a]!) break;
      coord[a] = 0;
    }
  }
  return { dtype: data.dtype, dims, data: out };
}

function reshapeDims(inDims: readonly number[], target: number[], allowZero: boolean): number[] {
  const out = target.map((t, i) => {
    if (t === 0 && !allowZero) {
      if (i >= inDims.length) decline(`Reshape copies dimension ${i}, which the input lacks`);
      return inDims[i]!;
    }
    return t;
  });
  const neg = out.filter((d) => d === -1).length;
  if (neg > 1) decline('Reshape has more than one -1');
  if (out.some((d) => d < -1)) decline('Reshape has a negative dimension');
  const n = size(inDims);
  if (neg === 1) {
    const known = size(out.filter((d) => d !== -1));
    if (known === 0 || n % known !== 0) decline(`Reshape of ${n} elements to [${target.join(',')}] is invalid`);
    out[out.indexOf(-1)] = n / known;
  }
  if (size(out) !== n) decline(`Reshape of ${n} elements to [${target.join(',')}] is invalid`);
  return out;
}

function transpose(t: CTensor, perm0: number[] | undefined): CTensor {
  const r = t.dims.length;
  const perm = perm0 ?? t.dims.map((_, i) => r - 1 - i);
  const dims = perm.map((p) => t.dims[p]!);
  const inStr = strides(t.dims);
  const n = size(dims);
  const out = new Array<number | bigint>(n);
  const coord = dims.map(() => 0);
  for (let f = 0; f < n; f++) {
    let k = 0;
    for (let a = 0; a < r; a++) k += coord[a]! * inStr[perm[a]!]!;
    out[f] = t.data[k]!;
    for (let a = r - 1; a >= 0; a--) {
      if (++coord[a]! < dims[a]!) break;
      coord[a] = 0;
    }
  }
  return { dtype: t.dtype, dims, data: out };
}

/** Ops the evaluator implements (standard domain). */
export const EVALUATED_OPS = new Set([
  'Identity',
  'Shape',
  'Size',
  'Gather',
  'Unsqueeze',
  'Squeeze',
  'Concat',
  'Slice',
  'Reshape',
  'Flatten',
  'Transpose',
  'Cast',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Neg',
  'Not',
  'Equal',
  'Less',
  'Greater',
  'LessOrEqual',
  'GreaterOrEqual',
  'And',
  'Or',
  'Xor',
  'Where',
  'Range',
  'ConstantOfShape',
  'Expand',
]);

/**
 * Evaluate one node on constant inputs (null for absent optional inputs). `opset` is the default-domain opset,
 * which decides where Slice/Squeeze/Unsqueeze read their axes from. Shape and Size are handled by the caller
 * (they need only the input's shape). Throws EvalDecline when it cannot evaluate exactly.
 */
export function evaluate(n: Node, ins: (CTensor | null)[], opset: number): CTensor {
  const x = ins[0] ?? null;
  const need = (t: CTensor | null, what: string): CTensor => t ?? decline(`its ${what} input is missing`);
  switch (n.opType) {
    case 'Identity':
      return need(x, 'first');
    case 'Gather':
      return gather(need(x, 'data'), need(ins[1] ?? null, 'indices'), n.getInt('axis', 0));
    case 'Unsqueeze': {
      const d = need(x, 'data');
      const axes0 = opset >= 13 ? intsOf(need(ins[1] ?? null, 'axes'), 'axes') : (n.getInts('axes') ?? []);
      const r = d.dims.length + axes0.length;
      const axes = axes0.map((a) => normAxis(a, r)).sort((a, b) => a - b);
      if (new Set(axes).size !== axes.length) decline('Unsqueeze axes repeat');
      const dims = [...d.dims];
      for (const a of axes) dims.splice(a, 0, 1);
      return { ...d, dims };
    }
    case 'Squeeze': {
      const d = need(x, 'data');
      const a0 = opset >= 13 ? (ins[1] ? intsOf(ins[1], 'axes') : undefined) : n.getInts('axes');
      const axes = a0 ? a0.map((a) => normAxis(a, d.dims.length)) : d.dims.flatMap((s, i) => (s === 1 ? [i] : []));
      for (const a of axes) if (d.dims[a] !== 1) decline(`Squeeze axis ${a} has size ${d.dims[a]}, not 1`);
      return { ...d, dims: d.dims.filter((_, i) => !axes.includes(i)) };
    }
    case 'Concat': {
      const parts = ins.map((t, i) => need(t, `#${i}`));
      const first = parts[0] ?? decline('Concat has no inputs');
      const r = first.dims.length;
      const axis = normAxis(n.getInt('axis') ?? decline('Concat has no axis'), r);
      for (const p of parts)
        if (p.dtype !== first.dtype || p.dims.length !== r || p.dims.some((s, i) => i !== axis && s !== first.dims[i]))
          decline('Concat inputs differ in type or shape');
      const outer = size(first.dims.slice(0, axis));
      const dims = [...first.dims];
      dims[axis] = parts.reduce((a, p) => a + p.dims[axis]!, 0);
      const out: (number | bigint)[] = [];
      for (let o = 0; o < outer; o++)
        for (const p of parts) {
          const chunk = size(p.dims.slice(axis));
          for (let j = 0; j < chunk; j++) out.push(p.data[o * chunk + j]!);
        }
      return { dtype: first.dtype, dims, data: out };
    }
    case 'Slice': {
      const d = need(x, 'data');
      if (opset < 10) {
        const s = n.getInts('starts') ?? decline('Slice has no starts');
        const e = n.getInts('ends') ?? decline('Slice has no ends');
        return slice(d, s, e, n.getInts('axes'));
      }
      return slice(
        d,
        intsOf(need(ins[1] ?? null, 'starts'), 'starts'),
        intsOf(need(ins[2] ?? null, 'ends'), 'ends'),
        ins[3] ? intsOf(ins[3], 'axes') : undefined,
        ins[4] ? intsOf(ins[4], 'steps') : undefined,
      );
    }
    case 'Reshape': {
      const d = need(x, 'data');
      const target = intsOf(need(ins[1] ?? null, 'shape'), 'shape');
      return { ...d, dims: reshapeDims(d.dims, target, n.getInt('allowzero', 0) === 1) };
    }
    case 'Flatten': {
      const d = need(x, 'data');
      const r = d.dims.length;
      let axis = n.getInt('axis', 1);
      if (axis < 0) axis += r;
      if (axis < 0 || axis > r) decline(`Flatten axis ${axis} is out of range`);
      return { ...d, dims: [size(d.dims.slice(0, axis)), size(d.dims.slice(axis))] };
    }
    case 'Transpose': {
      const d = need(x, 'data');
      const perm = n.getInts('perm');
      if (perm && (perm.length !== d.dims.length || [...perm].sort().some((p, i) => p !== i)))
        decline(`Transpose perm [${perm.join(',')}] is invalid for rank ${d.dims.length}`);
      return transpose(d, perm);
    }
    case 'Cast': {
      const d = need(x, 'data');
      const to = n.getInt('to') ?? decline('Cast has no target type');
      if (!SUPPORTED.has(to)) decline(`cast to ${dtypeName(to)} is not evaluated`);
      return { dtype: to, dims: d.dims, data: d.data.map((v) => castValue(v, d.dtype, to)) };
    }
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div': {
      const a = need(x, 'A');
      const b = need(ins[1] ?? null, 'B');
      if (a.dtype !== b.dtype) decline('its inputs differ in element type');
      const f = arith(n.opType, a.dtype);
      return elementwise([a, b], a.dtype, ([p, q]) => f(p!, q!));
    }
    case 'Neg': {
      const a = need(x, 'X');
      const f: (v: number | bigint) => number | bigint =
        a.dtype === DataType.INT64
          ? (v: number | bigint) => I64(-(v as bigint))
          : a.dtype === DataType.INT32
            ? (v: number | bigint) => I32(-(v as number))
            : a.dtype === DataType.BOOL
              ? decline('Neg on bool')
              : (v: number | bigint) => -(v as number);
      return { ...a, data: a.data.map(f) };
    }
    case 'Not': {
      const a = need(x, 'X');
      if (a.dtype !== DataType.BOOL) decline('Not needs a bool input');
      return { ...a, data: a.data.map((v) => (v ? 0 : 1)) };
    }
    case 'Equal':
    case 'Less':
    case 'Greater':
    case 'LessOrEqual':
    case 'GreaterOrEqual':
    case 'And':
    case 'Or':
    case 'Xor': {
      const a = need(x, 'A');
      const b = need(ins[1] ?? null, 'B');
      if (a.dtype !== b.dtype) decline('its inputs differ in element type');
      const f = compare(n.opType);
      return elementwise([a, b], DataType.BOOL, ([p, q]) => f(p!, q!));
    }
    case 'Where': {
      const c = need(x, 'condition');
      const a = need(ins[1] ?? null, 'X');
      const b = need(ins[2] ?? null, 'Y');
      if (c.dtype !== DataType.BOOL || a.dtype !== b.dtype) decline('its inputs have unexpected element types');
      return elementwise([c, a, b], a.dtype, ([p, q, r]) => (p ? q! : r!));
    }
    case 'Range': {
      const s = need(x, 'start');
      const l = need(ins[1] ?? null, 'limit');
      const dl = need(ins[2] ?? null, 'delta');
      if (s.dims.length || l.dims.length || dl.dims.length) decline('Range inputs must be scalars');
      if (s.dtype === DataType.INT64) {
        const [a, b, c] = [s.data[0] as bigint, l.data[0] as bigint, dl.data[0] as bigint];
        if (c === 0n) decline('Range delta is 0');
        const diff = b - a;
        let cnt = diff / c;
        if (cnt * c !== diff) cnt += 1n; // ceil for same signs; negative counts clamp below
        if (diff > 0n !== c > 0n || diff === 0n) cnt = 0n;
        if (cnt > 1n << 24n) decline('Range is too long');
        const out: bigint[] = [];
        for (let i = 0n; i < cnt; i++) out.push(I64(a + i * c));
        return { dtype: DataType.INT64, dims: [out.length], data: out };
      }
      if (s.dtype === DataType.INT32) {
        const [a, b, c] = [s.data[0] as number, l.data[0] as number, dl.data[0] as number];
        if (c === 0) decline('Range delta is 0');
        const cnt = Math.max(Math.ceil((b - a) / c), 0);
        const out: number[] = [];
        for (let i = 0; i < cnt; i++) out.push(I32(a + i * c));
        return { dtype: DataType.INT32, dims: [out.length], data: out };
      }
      return decline(`Range on ${dtypeName(s.dtype)} is not folded (its rounding depends on the runtime)`);
    }
    case 'ConstantOfShape': {
      const shape = intsOf(need(x, 'shape'), 'shape');
      if (shape.some((d) => d < 0)) decline('ConstantOfShape has a negative dimension');
      const vt = n.getTensor('value');
      const v = vt ? fromTensor(vt) : { dtype: DataType.FLOAT, dims: [1], data: [0] };
      if (v.data.length !== 1) decline('ConstantOfShape value must hold one element');
      return { dtype: v.dtype, dims: shape, data: new Array<number | bigint>(size(shape)).fill(v.data[0]!) };
    }
    case 'Expand': {
      const d = need(x, 'input');
      const shape = intsOf(need(ins[1] ?? null, 'shape'), 'shape');
      const dims = broadcastDims([d.dims, shape]);
      const idx = broadcastIndex(dims, d.dims);
      return { dtype: d.dtype, dims, data: idx.map((i) => d.data[i]!) };
    }
  }
  return decline(`no evaluator for ${n.opType}`);
}
