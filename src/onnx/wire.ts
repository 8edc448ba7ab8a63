/**
 * Protobuf wire format, hand-written for ONNX: decoding keeps bytes fields as views into the input buffer
 * (tensor data is never copied), and every field the decoder does not model can be kept as its raw bytes.
 */

export class DecodeError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

const TWO_32 = 4294967296;

export class WireReader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
    /** Absolute offset of buf[0] in the file, for error messages. */
    readonly base = 0,
  ) {
    this.pos = start;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  fail(msg: string, at = this.pos): never {
    throw new DecodeError(msg, this.base + at);
  }

  /** A varint as a JS number. Values beyond 2^53 are rounded (int64 extremes round-trip, see writeInt64). */
  varint(): number {
    const b = this.buf;
    let p = this.pos;
    let lo = 0;
    let shift = 0;
    let byte: number;
    // first 4 bytes fit in 28 bits
    for (; shift < 28; shift += 7) {
      if (p >= this.end) this.fail('truncated varint');
      byte = b[p++]!;
      lo |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        this.pos = p;
        return lo >>> 0;
      }
    }
    // 5th byte: 4 bits to lo, 3 bits to hi
    if (p >= this.end) this.fail('truncated varint');
    byte = b[p++]!;
    lo = (lo | ((byte & 0x0f) << 28)) >>> 0;
    let hi = (byte & 0x7f) >> 4;
    if (byte >= 0x80) {
      for (shift = 3; shift < 32; shift += 7) {
        if (p >= this.end) this.fail('truncated varint');
        byte = b[p++]!;
        hi = (hi | ((byte & 0x7f) << shift)) >>> 0;
        if (byte < 0x80) break;
        if (shift + 7 >= 32 + 7) this.fail('varint too long');
      }
      if (byte! >= 0x80) this.fail('varint too long');
    }
    this.pos = p;
    hi >>>= 0;
    if (hi & 0x80000000) return (hi - TWO_32) * TWO_32 + lo; // negative int64
    return hi * TWO_32 + lo;
  }

  /** Reads a varint as an exact signed 64-bit bigint. */
  varintBig(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const byte = this.buf[this.pos++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return BigInt.asIntN(64, result);
      shift += 7n;
    }
    this.fail('varint too long');
  }

  /** Length-delimited payload: returns [start, end) offsets (within buf), checked against the message end. */
  lengthDelimited(): [number, number] {
    const at = this.pos;
    const len = this.varint();
    if (len < 0 || this.pos + len > this.end)
      this.fail(`length ${len} runs past the end of its message (${this.end - this.pos} bytes left)`, at);
    const s = this.pos;
    this.pos += len;
    return [s, this.pos];
  }

  bytes(): Uint8Array {
    const [s, e] = this.lengthDelimited();
    return this.buf.subarray(s, e);
  }

  string(): string {
    const [s, e] = this.lengthDelimited();
    return decodeUtf8(this.buf, s, e);
  }

  float32(): number {
    if (this.pos + 4 > this.end) this.fail('truncated fixed32');
    const v = view(this.buf).getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** Skip a field's payload; returns the raw bytes of the whole field (tag included) starting at `tagStart`. */
  skip(wireType: number, tagStart: number): Uint8Array {
    switch (wireType) {
      case 0:
        this.varint();
        break;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.lengthDelimited();
        break;
      case 5:
        this.pos += 4;
        break;
      case 3: {
        // group: skip until the matching end-group
        for (;;) {
          if (this.pos >= this.end) this.fail('unterminated group');
          const t = this.varint();
          if ((t & 7) === 4) break;
          this.skip(t & 7, this.pos);
        }
        break;
      }
      default:
        this.fail(`invalid wire type ${wireType}`, tagStart);
    }
    if (this.pos > this.end) this.fail('field runs past the end of its message', tagStart);
    return this.buf.subarray(tagStart, this.pos);
  }
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

const decoder = new TextDecoder('utf-8');
export function decodeUtf8(buf: Uint8Array, s: number, e: number): string {
  // short ASCII strings are the common case (names): avoid TextDecoder's call overhead
  if (e - s < 64) {
    let out = '';
    for (let i = s; i < e; i++) {
      const c = buf[i]!;
      if (c >= 0x80) return decoder.decode(buf.subarray(s, e));
      out += String.fromCharCode(c);
    }
    return out;
  }
  return decoder.decode(buf.subarray(s, e));
}

/** Reads a packed-or-unpacked repeated varint field into `out`. */
export function readRepeatedVarint(r: WireReader, wireType: number, out: number[]): void {
  if (wireType === 2) {
    const [s, e] = r.lengthDelimited();
    const sub = new WireReader(r.buf, s, e, r.base);
    while (!sub.done()) out.push(sub.varint());
  } else out.push(r.varint());
}

export function readRepeatedFloat(r: WireReader, wireType: number, out: number[]): void {
  if (wireType === 2) {
    const [s, e] = r.lengthDelimited();
    const dv = new DataView(r.buf.buffer, r.buf.byteOffset + s, e - s);
    for (let i = 0; i + 4 <= e - s; i += 4) out.push(dv.getFloat32(i, true));
  } else out.push(r.float32());
}

// ---------------------------------------------------------------------------------------------------------------
// Writing. Messages are built as a tree of chunks: each nested message knows its size before its bytes are
// written, and large byte fields (tensor data) stay views that are written straight to the output.

/** Bytes produced only when the message is written (file-backed tensor data, streamed in pieces). */
export interface Deferred {
  length: number;
  write(sink: (b: Uint8Array) => void): void;
}

export type Chunk = Uint8Array | Message | Deferred;

export class Message {
  readonly parts: Chunk[] = [];
  size = 0;
  private scratch: number[] = [];

  private flushScratch(): void {
    if (this.scratch.length) {
      const b = Uint8Array.from(this.scratch);
      this.parts.push(b);
      this.scratch = [];
    }
  }

  private pushByte(b: number): void {
    this.scratch.push(b);
    this.size++;
  }

  private pushVarint(v: number): void {
    if (v >= 0 && v < TWO_32 * 2097152) {
      // < 2^53: exact
      while (v >= 0x80) {
        this.pushByte((v % 128) | 0x80);
        v = Math.floor(v / 128);
      }
      this.pushByte(v);
      return;
    }
    // negative or huge: two's complement 64-bit via bigint, clamping to the int64 range
    let big: bigint;
    if (v >= 2 ** 63) big = 9223372036854775807n;
    else if (v <= -(2 ** 63)) big = -9223372036854775808n;
    else big = BigInt(Math.trunc(v));
    this.pushBigVarint(big);
  }

  private pushBigVarint(big: bigint): void {
    let u = BigInt.asUintN(64, big);
    while (u >= 0x80n) {
      this.pushByte(Number(u & 0x7fn) | 0x80);
      u >>= 7n;
    }
    this.pushByte(Number(u));
  }

  private tag(field: number, wireType: number): void {
    this.pushVarint(field * 8 + wireType);
  }

  varint(field: number, v: number): this {
    this.tag(field, 0);
    this.pushVarint(v);
    return this;
  }

  bigVarint(field: number, v: bigint): this {
    this.tag(field, 0);
    this.pushBigVarint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    for (const x of b) this.pushByte(x);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, encoder.encode(s));
  }

  /** A bytes field. Large payloads are kept as views (never copied). */
  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2);
    this.pushVarint(b.byteLength);
    if (b.byteLength <= 64) {
      for (let i = 0; i < b.byteLength; i++) this.pushByte(b[i]!);
    } else {
      this.flushScratch();
      this.parts.push(b);
      this.size += b.byteLength;
    }
    return this;
  }

  /** A bytes field whose payload is streamed at write time. */
  deferredBytes(field: number, d: Deferred): this {
    this.tag(field, 2);
    this.pushVarint(d.length);
    this.flushScratch();
    this.parts.push(d);
    this.size += d.length;
    return this;
  }

  message(field: number, m: Message): this {
    m.seal();
    this.tag(field, 2);
    this.pushVarint(m.size);
    this.flushScratch();
    this.parts.push(m);
    this.size += m.size;
    return this;
  }

  packedVarints(field: number, vs: ArrayLike<number>): this {
    const m = new Message();
    for (let i = 0; i < vs.length; i++) m.pushVarint(vs[i]!);
    m.flushScratch();
    return this.message(field, m);
  }

  packedBigVarints(field: number, vs: ArrayLike<bigint>, unsigned = false): this {
    const m = new Message();
    for (let i = 0; i < vs.length; i++) m.pushBigVarint(unsigned ? BigInt.asIntN(64, vs[i]!) : vs[i]!);
    m.flushScratch();
    return this.message(field, m);
  }

  /** Raw already-encoded field bytes (unknown fields carried through). */
  raw(b: Uint8Array): this {
    if (b.byteLength <= 64) for (let i = 0; i < b.byteLength; i++) this.pushByte(b[i]!);
    else {
      this.flushScratch();
      this.parts.push(b);
      this.size += b.byteLength;
    }
    return this;
  }

  /** Finish: must be called before the message is written or nested (flushes pending bytes). */
  seal(): this {
    this.flushScratch();
    return this;
  }

  /** Calls `sink` on each output chunk in order. */
  walk(sink: (b: Uint8Array) => void): void {
    for (const p of this.parts) {
      if (p instanceof Message) p.walk(sink);
      else if (p instanceof Uint8Array) sink(p);
      else p.write(sink);
    }
  }

  /** Concatenate into one buffer (for in-memory uses such as creating an onnxruntime session). */
  toBuffer(): Buffer {
    const out = Buffer.allocUnsafe(this.size);
    let off = 0;
    this.walk((b) => {
      out.set(b, off);
      off += b.byteLength;
    });
    return out;
  }
}

const encoder = new TextEncoder();
