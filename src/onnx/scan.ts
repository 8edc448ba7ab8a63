/**
 * Structural scan of a model file without reading its weights: walks ModelProto → GraphProto → initializer
 * TensorProto with small positional reads, copies every other byte of structure into a compact "skeleton"
 * message, and replaces each large initializer's raw_data by a marker that refers to its byte range in the file.
 * The decoder turns markers into file-backed tensors, which are read only when needed and streamed on write.
 * Reading a 440 MB BERT-base this way touches a few hundred KB instead of allocating and filling 440 MB.
 */
import * as fs from 'node:fs';
import type { FileRange } from '../ir/index.js';
import { DecodeError, Message } from './wire.js';

/** TensorProto field number used inside a skeleton to mark a file-backed raw_data (never written to files). */
export const FILE_RANGE_MARKER = 19999;

export interface Skeleton {
  bytes: Buffer;
  ranges: FileRange[];
}

class FileCursor {
  private win = Buffer.alloc(0);
  private winStart = 0;
  constructor(
    readonly fd: number,
    readonly size: number,
  ) {}

  private load(pos: number, min: number): void {
    const len = Math.min(Math.max(1 << 20, min), this.size - pos);
    if (this.win.length < len) this.win = Buffer.allocUnsafe(Math.max(len, 1 << 20));
    let done = 0;
    while (done < len) {
      const n = fs.readSync(this.fd, this.win, done, len - done, pos + done);
      if (n <= 0) break;
      done += n;
    }
    this.winStart = pos;
    this.winEnd = pos + done;
  }
  private winEnd = 0;

  byte(pos: number): number {
    if (pos >= this.size) throw new DecodeError('truncated varint', pos);
    if (pos < this.winStart || pos >= this.winEnd) this.load(pos, 16);
    return this.win[pos - this.winStart]!;
  }

  /** [value, next position] */
  varint(pos: number): [number, number] {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte(pos++);
      v += (b & 0x7f) * mul;
      if (b < 0x80) return [v, pos];
      mul *= 128;
    }
    throw new DecodeError('varint too long', pos);
  }

  copy(pos: number, len: number): Uint8Array {
    if (pos < this.winStart || pos + len > this.winEnd) this.load(pos, len);
    return Buffer.from(this.win.subarray(pos - this.winStart, pos - this.winStart + len));
  }
}

/** Skip one field's payload at `pos` (after its tag), returning the end position. */
function skip(c: FileCursor, pos: number, wt: number, end: number, tagAt: number): number {
  let next: number;
  switch (wt) {
    case 0:
      next = c.varint(pos)[1];
      break;
    case 1:
      next = pos + 8;
      break;
    case 5:
      next = pos + 4;
      break;
    case 2: {
      const [len, p] = c.varint(pos);
      next = p + len;
      if (next > end)
        throw new DecodeError(`length ${len} runs past the end of its message (${end - p} bytes left)`, pos);
      break;
    }
    default:
      throw new DecodeError(`invalid wire type ${wt}`, tagAt);
  }
  if (next > end) throw new DecodeError('field runs past the end of its message', tagAt);
  return next;
}

/**
 * Scan a model file. Initializers of at least `threshold` bytes become file ranges. Throws DecodeError on
 * malformed structure (the caller may fall back to a full read for the detailed error).
 */
export function scanModelFile(file: string, threshold: number): Skeleton {
  const fd = fs.openSync(file, 'r');
  try {
    const st = fs.fstatSync(fd);
    const c = new FileCursor(fd, st.size);
    const ranges: FileRange[] = [];
    const stamp = { size: st.size, mtimeMs: st.mtimeMs };
    const makeRange = (offset: number, length: number): FileRange => ({
      file,
      offset,
      length,
      read(into: Uint8Array, at: number) {
        readRange(file, stamp, offset + at, into);
      },
    });

    /** Copy fields verbatim in runs; `special` decides per field whether to handle it. */
    const walk = (
      start: number,
      end: number,
      out: Message,
      special: (
        field: number,
        wt: number,
        payload: number,
        tagAt: number,
      ) => { end: number; emit: () => void } | undefined,
    ) => {
      let runStart = start;
      let pos = start;
      while (pos < end) {
        const tagAt = pos;
        const [tag, p] = c.varint(pos);
        const field = Math.floor(tag / 8);
        const wt = tag & 7;
        if (field === 0) throw new DecodeError('invalid field number 0 (not an ONNX model?)', tagAt);
        const handled = special(field, wt, p, tagAt);
        if (handled === undefined) {
          pos = skip(c, p, wt, end, tagAt);
          continue;
        }
        if (tagAt > runStart) out.raw(c.copy(runStart, tagAt - runStart));
        handled.emit();
        pos = handled.end;
        runStart = pos;
      }
      if (end > runStart) out.raw(c.copy(runStart, end - runStart));
    };

    const tensor = (start: number, end: number): Message => {
      const m = new Message();
      walk(start, end, m, (field, wt, p, tagAt) => {
        if (field !== 9 || wt !== 2) return undefined;
        const [len, q] = c.varint(p);
        if (q + len > end)
          throw new DecodeError(`length ${len} runs past the end of its message (${end - q} bytes left)`, tagAt);
        return {
          end: q + len,
          emit: () => {
            m.varint(FILE_RANGE_MARKER, ranges.length);
            ranges.push(makeRange(q, len));
          },
        };
      });
      return m;
    };

    const graph = (start: number, end: number): Message => {
      const m = new Message();
      walk(start, end, m, (field, wt, p, tagAt) => {
        if (field !== 5 || wt !== 2) return undefined;
        const [len, q] = c.varint(p);
        if (q + len > end)
          throw new DecodeError(`length ${len} runs past the end of its message (${end - q} bytes left)`, tagAt);
        if (len < threshold) return undefined;
        return { end: q + len, emit: () => m.message(5, tensor(q, q + len)) };
      });
      return m;
    };

    const model = new Message();
    walk(0, st.size, model, (field, wt, p, tagAt) => {
      if (field !== 7 || wt !== 2) return undefined;
      const [len, q] = c.varint(p);
      if (q + len > st.size)
        throw new DecodeError(`length ${len} runs past the end of its message (${st.size - q} bytes left)`, tagAt);
      return { end: q + len, emit: () => model.message(7, graph(q, q + len)) };
    });
    return { bytes: model.seal().toBuffer(), ranges };
  } finally {
    fs.closeSync(fd);
  }
}

function readRange(file: string, stamp: { size: number; mtimeMs: number }, pos: number, into: Uint8Array): void {
  const fd = fs.openSync(file, 'r');
  try {
    const st = fs.fstatSync(fd);
    if (st.size !== stamp.size || st.mtimeMs !== stamp.mtimeMs)
      throw new DecodeError(`${file} changed on disk after it was read; its weights can no longer be read`, pos);
    let done = 0;
    while (done < into.length) {
      const n = fs.readSync(fd, into, done, into.length - done, pos + done);
      if (n <= 0) throw new DecodeError(`${file}: unexpected end of file`, pos + done);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}
