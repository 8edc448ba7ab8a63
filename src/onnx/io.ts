import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExternalRef, FileRange, Model, Tensor } from '../ir/index.js';
import { scanModelFile } from './scan.js';
import { decodeModel } from './decode.js';
import { encodeModel } from './encode.js';
import { DecodeError, type Message } from './wire.js';

/** A user-facing problem with a model file: its message names the file (and the byte offset when known). */
export class ModelFileError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly offset?: number,
  ) {
    super(message);
    this.name = 'ModelFileError';
  }
}

/** Protobuf's hard limit for one message: models larger than this must keep weights in external data. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

export interface LoadOptions {
  /** Read the file with this buffer instead (the path is then used for messages and external data). */
  buffer?: Uint8Array;
  /**
   * Keep large initializers in the file (read when needed, streamed on write) instead of reading the whole file.
   * Default: when the file is at least 8 MiB. The file must not change while the model is in use.
   */
  stream?: boolean;
  /** Initializers of at least this many bytes stay in the file when streaming (default 64 KiB). */
  streamThreshold?: number;
}

const STREAM_FILE_SIZE = 8 << 20;

/** Read an ONNX model. Weights stay views into the file buffer; external data is read lazily, confined to the model's folder. */
export function loadModel(file: string, opts: LoadOptions = {}): Model {
  let buf: Uint8Array;
  let fileRanges: FileRange[] | undefined;
  if (opts.buffer) buf = opts.buffer;
  else if (opts.stream ?? statSize(file) >= STREAM_FILE_SIZE) {
    try {
      const sk = scanModelFile(file, opts.streamThreshold ?? 64 << 10);
      buf = sk.bytes;
      fileRanges = sk.ranges;
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      // malformed structure: decode the whole file for the detailed error (and offsets in file terms)
      buf = fs.readFileSync(file);
    }
  } else {
    try {
      const st = fs.statSync(file);
      if (st.isDirectory()) throw new ModelFileError(`${file}: is a directory, not an ONNX file`, file);
      buf = fs.readFileSync(file);
    } catch (e) {
      if (e instanceof ModelFileError) throw e;
      throw new ModelFileError(
        `${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        file,
      );
    }
  }
  const dir = path.dirname(path.resolve(file));
  try {
    return decodeModel(buf, { loadExternal: (ref, name) => readExternal(dir, file, ref, name), fileRanges });
  } catch (e) {
    if (e instanceof DecodeError) {
      const hint =
        buf.length === 0 ? '' : looksLikeText(buf) ? ' (the file looks like text, not a binary ONNX model)' : '';
      throw new ModelFileError(
        `${file}: not a valid ONNX model: ${e.message} at byte ${e.offset} of ${buf.length}${hint}`,
        file,
        e.offset,
      );
    }
    throw e;
  }
}

function statSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0; // the regular path reports the error
  }
}

function looksLikeText(buf: Uint8Array): boolean {
  const n = Math.min(buf.length, 256);
  let printable = 0;
  for (let i = 0; i < n; i++) {
    const c = buf[i]!;
    if (c === 9 || c === 10 || c === 13 || (c >= 32 && c < 127)) printable++;
  }
  return printable / n > 0.95;
}

/**
 * Resolve an external data location safely: relative, inside the model's folder, and not through a symlink
 * that leaves it (CVE-2024-27318/27319-style path traversal in the reference onnx package).
 */
export function resolveExternalLocation(dir: string, modelFile: string, location: string, tensorName: string): string {
  const bad = (why: string) =>
    new ModelFileError(
      `${modelFile}: tensor '${tensorName}': external data location '${location}' ${why}; refused`,
      modelFile,
    );
  if (location.includes('\0')) throw bad('contains a NUL byte');
  if (path.isAbsolute(location) || /^[a-zA-Z]:[\\/]/.test(location)) throw bad('is an absolute path');
  const parts = location.split(/[\\/]/);
  if (parts.includes('..')) throw bad("contains '..'");
  const full = path.resolve(dir, location);
  if (full !== dir && !full.startsWith(dir + path.sep)) throw bad('escapes the model folder');
  let real: string;
  try {
    real = fs.realpathSync(full);
  } catch {
    throw new ModelFileError(
      `${modelFile}: tensor '${tensorName}': external data file '${location}' not found next to the model`,
      modelFile,
    );
  }
  const realDir = fs.realpathSync(dir);
  if (real !== realDir && !real.startsWith(realDir + path.sep))
    throw bad('is a symlink that leads out of the model folder');
  return real;
}

function readExternal(dir: string, modelFile: string, ref: ExternalRef, tensorName: string): Uint8Array {
  const file = resolveExternalLocation(dir, modelFile, ref.location, tensorName);
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const length = ref.length >= 0 ? ref.length : size - ref.offset;
    if (ref.offset + length > size)
      throw new ModelFileError(
        `${modelFile}: tensor '${tensorName}': external data range ${ref.offset}+${length} runs past the end of '${ref.location}' (${size} bytes)`,
        modelFile,
      );
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, out, done, length - done, ref.offset + done);
      if (n <= 0) break;
      done += n;
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

export interface SaveOptions {
  /** Write tensors of at least `threshold` bytes to an external data file next to the model. */
  externalData?: boolean;
  /** Minimum tensor size for external data (default 1024 bytes). */
  threshold?: number;
  /** External data file name, relative to the model (default: `<model file name>.data`). */
  location?: string;
  /** Allow writing over an existing file that is not the input (default true). */
  overwrite?: boolean;
  /** Path of the model this one was read from; saving over it is refused. */
  inputPath?: string;
  /** fsync the file before the rename (survives power loss; costs about as much as the write itself). */
  durable?: boolean;
}

/** Serialize in memory (inline data only). Throws if the model exceeds protobuf's 2 GiB limit. */
export function serializeModel(m: Model): Buffer {
  const msg = encodeModel(m);
  if (msg.size > PROTOBUF_LIMIT)
    throw new ModelFileError(
      `model is ${msg.size} bytes, over protobuf's 2 GiB limit: save it with external data`,
      '<memory>',
    );
  return msg.toBuffer();
}

/** Total size of the encoded model (inline). */
export function encodedSize(m: Model): number {
  return encodeModel(m).size;
}

/**
 * Write a model atomically: to a temporary file in the same folder, then rename. Never writes over `inputPath`.
 * External data is used when asked or when the model would pass protobuf's 2 GiB limit.
 */
export function saveModel(m: Model, file: string, opts: SaveOptions = {}): { bytes: number; externalBytes: number } {
  const out = path.resolve(file);
  if (opts.inputPath && sameFile(out, path.resolve(opts.inputPath)))
    throw new ModelFileError(`${file}: refusing to write over the input model`, file);
  const dir = path.dirname(out);
  if (!fs.existsSync(dir)) throw new ModelFileError(`${file}: folder '${dir}' does not exist`, file);
  let external = opts.externalData ?? false;
  let msg: Message | undefined;
  if (!external) {
    msg = encodeModel(m);
    if (msg.size > PROTOBUF_LIMIT) external = true;
  }
  const location = opts.location ?? `${path.basename(out)}.data`;
  const dataPath = path.join(dir, location);
  const threshold = opts.threshold ?? 1024;
  const tmp = `${out}.axc-tmp-${process.pid}`;
  const tmpData = `${dataPath}.axc-tmp-${process.pid}`;
  let extBytes = 0;
  let dataFd: number | undefined;
  try {
    if (external) {
      if (opts.inputPath) {
        const inDir = path.dirname(path.resolve(opts.inputPath));
        for (const v of m.graph.initializers) {
          const ext = v.constValue?.external;
          if (ext && sameFile(dataPath, path.resolve(inDir, ext.location)))
            throw new ModelFileError(`${dataPath}: refusing to write over the input model's external data`, file);
        }
      }
      dataFd = fs.openSync(tmpData, 'w');
      const fd = dataFd;
      msg = encodeModel(m, {
        placeTensor: (t: Tensor): ExternalRef | null => {
          if (t.byteLength < threshold) return null;
          // align each tensor to 4 KiB like onnx's writer, so the file can be memory-mapped
          const pad = (4096 - (extBytes % 4096)) % 4096;
          if (pad) {
            fs.writeSync(fd, Buffer.alloc(pad));
            extBytes += pad;
          }
          const length = t.byteLength;
          t.writeTo((chunk) => writeAll(fd, chunk));
          const ref: ExternalRef = {
            location,
            offset: extBytes,
            length,
            entries: [
              ['location', location],
              ['offset', String(extBytes)],
              ['length', String(length)],
            ],
          };
          extBytes += length;
          return ref;
        },
      });
      fs.closeSync(fd);
      dataFd = undefined;
      if (msg.size > PROTOBUF_LIMIT)
        throw new ModelFileError(
          `${file}: the graph alone is over protobuf's 2 GiB limit even with external data`,
          file,
        );
    }
    writeMessage(msg!, tmp, opts.durable ?? false);
    if (external) fs.renameSync(tmpData, dataPath);
    fs.renameSync(tmp, out);
    return { bytes: msg!.size, externalBytes: extBytes };
  } catch (e) {
    if (dataFd !== undefined) fs.closeSync(dataFd);
    for (const t of [tmp, tmpData]) if (fs.existsSync(t)) fs.unlinkSync(t);
    if (e instanceof ModelFileError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code) throw new ModelFileError(`${file}: cannot write: ${code}`, file);
    throw e;
  }
}

function sameFile(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

function writeAll(fd: number, b: Uint8Array): void {
  let off = 0;
  while (off < b.byteLength) off += fs.writeSync(fd, b, off, b.byteLength - off);
}

/** Stream a message tree to a file: small chunks are coalesced, large tensor views are written directly. */
function writeMessage(msg: Message, file: string, durable: boolean): void {
  const fd = fs.openSync(file, 'w');
  try {
    const stage = Buffer.allocUnsafe(1 << 20);
    let used = 0;
    msg.walk((b) => {
      if (b.byteLength >= stage.length / 4) {
        if (used) {
          writeAll(fd, stage.subarray(0, used));
          used = 0;
        }
        writeAll(fd, b);
        return;
      }
      if (used + b.byteLength > stage.length) {
        writeAll(fd, stage.subarray(0, used));
        used = 0;
      }
      stage.set(b, used);
      used += b.byteLength;
    });
    if (used) writeAll(fd, stage.subarray(0, used));
    if (durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
