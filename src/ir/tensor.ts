import { createHash } from 'node:crypto';
import { DataType, bitsOf, byteSizeOf, dtypeName } from './dtype.js';

/**
 * Where a tensor's bytes live. Weights stay views until their values are really needed:
 * - `raw`: little-endian bytes, usually a view into the model file's buffer (no copy);
 * - `typed`: values decoded from one of TensorProto's typed fields (float_data, int64_data, ...);
 *   kept in that field on write so a round trip is lossless;
 * - `strings`: string_data entries;
 * - `external`: a byte range of an external data file, loaded on first access;
 * - `lazy`: computed when first needed (e.g. when written), then cached.
 */
export type TensorStorage =
  | { kind: 'raw'; bytes: Uint8Array }
  | {
      kind: 'typed';
      field: TypedField;
      values: Float32Array | Int32Array | Float64Array | BigInt64Array | BigUint64Array;
    }
  | { kind: 'strings'; values: Uint8Array[] }
  | { kind: 'external'; ref: ExternalRef; load: () => Uint8Array }
  | { kind: 'lazy'; compute: () => Uint8Array }
  | { kind: 'file'; range: FileRange };

/**
 * A byte range of a file (the model file itself, for large weights): never read until needed, and streamed
 * on write without being held in memory. The reader supplies `read`; the IR does no I/O of its own.
 */
export interface FileRange {
  file: string;
  offset: number;
  length: number;
  /** Fill `into` with the bytes at [offset + at, offset + at + into.length). */
  read(into: Uint8Array, at: number): void;
}

export type TypedField = 'float_data' | 'int32_data' | 'int64_data' | 'double_data' | 'uint64_data';

/** TensorProto.external_data, as written in the model. `entries` keeps every key/value in order. */
export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
  entries: [string, string][];
}

export class TensorError extends Error {}

/** An immutable-by-convention tensor. Replace a weight by making a new Tensor. */
export class Tensor {
  name: string;
  readonly dataType: DataType;
  readonly dims: readonly number[];
  docString?: string;
  metadataProps?: [string, string][];
  /** TensorProto.segment (begin, end), rarely used. */
  segment?: { begin?: number; end?: number };
  /** Protobuf fields axc does not model, kept byte for byte. */
  unknownFields?: Uint8Array[];
  /** TensorProto.data_location as read (0 default, 1 external), kept for a lossless round trip. */
  dataLocation?: number;
  /** The name field was absent in the file (attribute tensors often have none). */
  nameOmitted?: boolean;
  /** external_data entries of a tensor whose data is nevertheless inline (kept as read). */
  externalEntries?: [string, string][];
  private storage: TensorStorage;
  private cachedBytes?: Uint8Array;
  private cachedHash?: string;

  constructor(name: string, dataType: DataType, dims: readonly number[], storage: TensorStorage) {
    this.name = name;
    this.dataType = dataType;
    this.dims = dims;
    this.storage = storage;
  }

  get numElements(): number {
    let n = 1;
    for (const d of this.dims) n *= d;
    return n;
  }

  /** Size in bytes of the raw little-endian form (0 for string tensors). */
  get byteLength(): number {
    if (this.dataType === DataType.STRING) return 0;
    return byteSizeOf(this.dataType, this.numElements);
  }

  get storageKind(): TensorStorage['kind'] {
    return this.storage.kind;
  }

  /** The storage as read or built; the ONNX writer uses it to write each form back as it came. */
  get rawStorage(): TensorStorage {
    return this.storage;
  }

  /** The external reference when the tensor is (still) stored outside the model file. */
  get external(): ExternalRef | undefined {
    return this.storage.kind === 'external' ? this.storage.ref : undefined;
  }

  /** Little-endian raw bytes. A view when stored raw; otherwise materialized once and cached. */
  bytes(): Uint8Array {
    const s = this.storage;
    if (s.kind === 'raw') return s.bytes;
    if (this.cachedBytes) return this.cachedBytes;
    let out: Uint8Array;
    switch (s.kind) {
      case 'external':
        out = s.load();
        break;
      case 'lazy':
        out = s.compute();
        break;
      case 'file':
        out = new Uint8Array(s.range.length);
        s.range.read(out, 0);
        break;
      case 'typed':
        out = typedToRaw(this.dataType, this.numElements, s.field, s.values);
        break;
      case 'strings':
        throw new TensorError(`tensor '${this.name}' holds strings; it has no raw bytes`);
    }
    if (this.dataType !== DataType.STRING && out.byteLength !== this.byteLength) {
      throw new TensorError(
        `tensor '${this.name}' (${dtypeName(this.dataType)}[${this.dims.join(',')}]) has ${out.byteLength} bytes of data, expected ${this.byteLength}`,
      );
    }
    this.cachedBytes = out;
    return out;
  }

  /**
   * Pass the raw bytes to `sink` in order, without keeping them: file-backed tensors are read in pieces into one
   * reused buffer, so writing a model never holds its weights in memory. `sink` must consume each chunk at once.
   */
  writeTo(sink: (chunk: Uint8Array) => void, pieceSize = 1 << 22): void {
    const s = this.storage;
    if (s.kind !== 'file' || this.cachedBytes) {
      sink(this.bytes());
      return;
    }
    // one warm buffer for every streamed tensor: no page faults or zero-filling per tensor
    if (!streamScratch || streamScratch.length < Math.min(pieceSize, s.range.length))
      streamScratch = new Uint8Array(Math.max(pieceSize, 1 << 20));
    const buf = streamScratch.subarray(0, Math.min(pieceSize, s.range.length));
    for (let at = 0; at < s.range.length; at += buf.length) {
      const piece = at + buf.length <= s.range.length ? buf : buf.subarray(0, s.range.length - at);
      s.range.read(piece, at);
      sink(piece);
    }
  }

  /** The string_data entries of a STRING tensor. */
  strings(): Uint8Array[] {
    if (this.storage.kind !== 'strings') throw new TensorError(`tensor '${this.name}' is not a string tensor`);
    return this.storage.values;
  }

  /** Values as float32 (converting from float16, bfloat16, double, integer types). */
  toFloat32(): Float32Array {
    const b = this.bytes();
    const n = this.numElements;
    switch (this.dataType) {
      case DataType.FLOAT:
        return alignedView(b, Float32Array, n);
      case DataType.DOUBLE:
        return Float32Array.from(alignedView(b, Float64Array, n));
      case DataType.FLOAT16: {
        const u = alignedView(b, Uint16Array, n);
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = halfToFloat(u[i]!);
        return out;
      }
      case DataType.BFLOAT16: {
        const u = alignedView(b, Uint16Array, n);
        const out = new Float32Array(n);
        const tmp = new Uint32Array(out.buffer);
        for (let i = 0; i < n; i++) tmp[i] = u[i]! << 16;
        return out;
      }
      default: {
        const vals = this.toNumbers();
        return Float32Array.from(vals);
      }
    }
  }

  /** Values as JS numbers (int64 beyond 2^53 loses precision; use toBigInt64 for exact values). */
  toNumbers(): number[] {
    const b = this.bytes();
    const n = this.numElements;
    switch (this.dataType) {
      case DataType.FLOAT:
        return Array.from(alignedView(b, Float32Array, n));
      case DataType.DOUBLE:
        return Array.from(alignedView(b, Float64Array, n));
      case DataType.INT64:
        return Array.from(alignedView(b, BigInt64Array, n), (v) => Number(v));
      case DataType.UINT64:
        return Array.from(alignedView(b, BigUint64Array, n), (v) => Number(v));
      case DataType.INT32:
        return Array.from(alignedView(b, Int32Array, n));
      case DataType.UINT32:
        return Array.from(alignedView(b, Uint32Array, n));
      case DataType.INT16:
        return Array.from(alignedView(b, Int16Array, n));
      case DataType.UINT16:
        return Array.from(alignedView(b, Uint16Array, n));
      case DataType.INT8:
        return Array.from(new Int8Array(b.buffer, b.byteOffset, n));
      case DataType.UINT8:
      case DataType.BOOL:
        return Array.from(b.subarray(0, n));
      case DataType.FLOAT16:
      case DataType.BFLOAT16:
        return Array.from(this.toFloat32());
      case DataType.INT4:
      case DataType.UINT4: {
        const out: number[] = [];
        for (let i = 0; i < n; i++) {
          const byte = b[i >> 1]!;
          let v = i & 1 ? byte >> 4 : byte & 15;
          if (this.dataType === DataType.INT4 && v > 7) v -= 16;
          out.push(v);
        }
        return out;
      }
      default:
        throw new TensorError(`tensor '${this.name}': cannot read ${dtypeName(this.dataType)} values as numbers`);
    }
  }

  toBigInt64(): BigInt64Array {
    if (this.dataType !== DataType.INT64) return BigInt64Array.from(this.toNumbers(), (v) => BigInt(v));
    return alignedView(this.bytes(), BigInt64Array, this.numElements);
  }

  /** sha256 of dtype, dims and raw bytes (strings: their entries); stable across runs, used by the printer and diff. */
  contentHash(): string {
    if (this.cachedHash) return this.cachedHash;
    const h = createHash('sha256');
    h.update(`${this.dataType}:${this.dims.join(',')}:`);
    if (this.dataType === DataType.STRING) for (const s of this.strings()) h.update(`${s.byteLength}:`).update(s);
    else h.update(this.bytes());
    this.cachedHash = h.digest('hex').slice(0, 16);
    return this.cachedHash;
  }

  /** Make a new tensor with the same metadata and new storage. */
  withStorage(storage: TensorStorage, dims: readonly number[] = this.dims, dataType: DataType = this.dataType): Tensor {
    const t = new Tensor(this.name, dataType, dims, storage);
    t.docString = this.docString;
    return t;
  }

  static fromBytes(name: string, dataType: DataType, dims: readonly number[], bytes: Uint8Array): Tensor {
    return new Tensor(name, dataType, dims, { kind: 'raw', bytes });
  }

  static fromFloat32(name: string, dims: readonly number[], values: Float32Array | readonly number[]): Tensor {
    const arr = values instanceof Float32Array ? values : Float32Array.from(values);
    return new Tensor(name, DataType.FLOAT, dims, { kind: 'raw', bytes: asBytes(arr) });
  }

  static fromInt64(
    name: string,
    dims: readonly number[],
    values: readonly (number | bigint)[] | BigInt64Array,
  ): Tensor {
    const arr = values instanceof BigInt64Array ? values : BigInt64Array.from(values, (v) => BigInt(v));
    return new Tensor(name, DataType.INT64, dims, { kind: 'raw', bytes: asBytes(arr) });
  }

  static fromInt32(name: string, dims: readonly number[], values: readonly number[] | Int32Array): Tensor {
    const arr = values instanceof Int32Array ? values : Int32Array.from(values);
    return new Tensor(name, DataType.INT32, dims, { kind: 'raw', bytes: asBytes(arr) });
  }

  static fromInt8(name: string, dims: readonly number[], values: Int8Array): Tensor {
    return new Tensor(name, DataType.INT8, dims, { kind: 'raw', bytes: asBytes(values) });
  }

  static fromUint8(name: string, dims: readonly number[], values: Uint8Array, dataType = DataType.UINT8): Tensor {
    return new Tensor(name, dataType, dims, { kind: 'raw', bytes: values });
  }

  /** A tensor whose bytes are computed when first needed (e.g. a pruned weight, only when written). */
  static lazy(name: string, dataType: DataType, dims: readonly number[], compute: () => Uint8Array): Tensor {
    return new Tensor(name, dataType, dims, { kind: 'lazy', compute });
  }

  static scalarInt64(name: string, v: number): Tensor {
    return Tensor.fromInt64(name, [], [v]);
  }

  static scalarFloat(name: string, v: number): Tensor {
    return Tensor.fromFloat32(name, [], [v]);
  }
}

let streamScratch: Uint8Array | undefined;

export function asBytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

type TypedCtor<T> = {
  new (buf: ArrayBufferLike, off: number, len: number): T;
  new (len: number): T;
  BYTES_PER_ELEMENT: number;
};

/** A typed view over bytes, copying only when the bytes are misaligned for the element size. */
export function alignedView<T extends { set(a: ArrayLike<never>): void }>(
  b: Uint8Array,
  C: TypedCtor<T>,
  n: number,
): T {
  if (b.byteOffset % C.BYTES_PER_ELEMENT === 0) return new C(b.buffer, b.byteOffset, n);
  const copy = new Uint8Array(n * C.BYTES_PER_ELEMENT);
  copy.set(b.subarray(0, n * C.BYTES_PER_ELEMENT));
  return new C(copy.buffer, 0, n);
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function typedToRaw(
  dt: DataType,
  n: number,
  field: TypedField,
  values: Float32Array | Int32Array | Float64Array | BigInt64Array | BigUint64Array,
): Uint8Array {
  if (field === 'int32_data' && bitsOf(dt) < 32) {
    // int32_data holds one element per entry for 8/16-bit types, two 4-bit elements per entry for int4/uint4.
    const out = new Uint8Array(byteSizeOf(dt, n));
    const bits = bitsOf(dt);
    const v = values as Int32Array;
    if (bits === 16) {
      const u = new Uint16Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = v[i]! & 0xffff;
    } else if (bits === 8) {
      for (let i = 0; i < n; i++) out[i] = v[i]! & 0xff;
    } else {
      for (let i = 0; i < out.length; i++) out[i] = v[i]! & 0xff;
    }
    return out;
  }
  if (field === 'float_data' && dt === DataType.COMPLEX64) return asBytes(Float32Array.from(values as Float32Array));
  if (field === 'double_data' && dt === DataType.COMPLEX128) return asBytes(Float64Array.from(values as Float64Array));
  if (field === 'uint64_data' && dt === DataType.UINT32)
    return asBytes(Uint32Array.from(values as BigUint64Array, Number));
  if (field === 'int32_data' && dt === DataType.UINT32) return asBytes(Uint32Array.from(values as Int32Array));
  const copy = (values as Float32Array).slice();
  return asBytes(copy);
}
