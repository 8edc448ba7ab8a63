/**
 * Run models in onnxruntime-node over a Dataset, collecting every output per row.
 */
import * as ort from 'onnxruntime-node';
import { AxcError, diag, nodeLoc, type Location } from '../diagnostics/index.js';
import type { Model } from '../ir/index.js';
import { decodeModel, loadModel, serializeModel } from '../onnx/index.js';
import { makeBatches, type Batch, type Dataset, type TensorValue } from './data.js';

export type ModelSource = Model | string | Uint8Array;

export interface SessionOptions {
  /** Threads onnxruntime may use inside one op (default 1: deterministic and kind to shared machines). */
  threads?: number;
  /** Graph optimization level (default 'disabled', so the model runs as written). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
}

export interface RunOptions extends SessionOptions {
  /** Override the dataset's batch size. */
  batch?: number;
  /** Called after each batch. */
  progress?: (done: number, total: number) => void;
}

export async function createSession(model: ModelSource, opts: SessionOptions = {}): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: opts.optimization ?? 'disabled',
    intraOpNumThreads: opts.threads ?? 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
  const what = typeof model === 'string' ? model : model instanceof Uint8Array ? 'model bytes' : 'model';
  try {
    if (typeof model === 'string') return await ort.InferenceSession.create(model, options);
    const bytes = model instanceof Uint8Array ? model : serializeModel(model);
    return await ort.InferenceSession.create(bytes, options);
  } catch (e) {
    if (e instanceof AxcError) throw e;
    let loc: Location = typeof model === 'string' ? { kind: 'file', file: model } : { kind: 'none' };
    const msg = firstLine((e as Error).message);
    const notes: string[] = [];
    // an op onnxruntime does not know: name the nodes that use it
    const unknown = /([\w.]*):(\w+)\(-?\d+\) is not a registered function\/op/.exec(msg);
    if (unknown) {
      try {
        const m =
          typeof model === 'string' ? loadModel(model) : model instanceof Uint8Array ? decodeModel(model) : model;
        const domain = unknown[1] === 'ai.onnx' ? '' : unknown[1]!;
        const nodes = [...m.graph].filter((n) => n.opType === unknown[2] && (n.domain || '') === domain);
        if (nodes[0]) loc = nodeLoc(nodes[0].name, nodes[0].qualifiedOp);
        if (nodes.length > 1)
          notes.push(
            `also used by ${nodes
              .slice(1, 4)
              .map((n) => `'${n.name}'`)
              .join(', ')}${nodes.length > 4 ? ', ...' : ''}`,
          );
        notes.push(
          `onnxruntime has no kernel for ${unknown[1]}.${unknown[2]}: register a custom-op library, or remove the op`,
        );
      } catch {
        /* keep the plain message */
      }
    }
    throw new AxcError(diag('AX4010', 'error', `onnxruntime cannot load the ${what}: ${msg}`, loc, notes));
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

/** Every value of one output, concatenated over batches, with per-row boundaries. */
export interface OutputRows {
  name: string;
  type: ort.Tensor.Type;
  /** Values as float64 (numbers), row after row. */
  data: Float64Array;
  /** Element offset of each dataset row in `data` (length rows + 1). */
  offsets: number[];
  /** Dims of each row's slice (the batch output's dims without the batch axis), per row. */
  rowDims: number[][];
}

export interface RunResult {
  outputNames: string[];
  outputs: Map<string, OutputRows>;
  rows: number;
  /** Wall time spent in session.run, milliseconds. */
  runMs: number;
  /** The raw outputs of each batch (for writing goldens). */
  batches?: { batch: Batch; outputs: Record<string, TensorValue> }[];
}

function toFloat64(t: ort.Tensor | TensorValue): Float64Array {
  const d = t.data;
  if (d instanceof Float64Array) return d;
  if (t.type === 'float16') {
    const out = new Float64Array(d.length);
    const u = d as Uint16Array;
    for (let i = 0; i < u.length; i++) out[i] = half(u[i]!);
    return out;
  }
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Float64Array.from(d, (x) => Number(x));
  if (Array.isArray(d)) throw new Error(`output of type ${t.type} cannot be compared numerically`);
  return Float64Array.from(d as ArrayLike<number>);
}

function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Append one batch's output to the per-row collection. */
export function appendOutput(
  acc: { chunks: Float64Array[]; offsets: number[]; rowDims: number[][]; size: number },
  value: ort.Tensor | TensorValue,
  rowCount: number,
): void {
  const vals = toFloat64(value);
  const dims = [...value.dims];
  // a batch output whose leading axis is the batch splits into rows; anything else is one block for the batch
  const split = dims.length > 0 && dims[0] === rowCount;
  const parts = split ? rowCount : 1;
  const per = vals.length / parts;
  const rd = split ? dims.slice(1) : dims;
  for (let r = 0; r < parts; r++) {
    acc.offsets.push(acc.size + r * per);
    acc.rowDims.push(rd);
  }
  // keep rows aligned with dataset rows even when the output is not batched
  for (let r = parts; r < rowCount; r++) {
    acc.offsets.push(acc.size + vals.length);
    acc.rowDims.push([0]);
  }
  acc.chunks.push(vals);
  acc.size += vals.length;
}

function finish(
  name: string,
  type: ort.Tensor.Type,
  acc: { chunks: Float64Array[]; offsets: number[]; rowDims: number[][]; size: number },
): OutputRows {
  const data = new Float64Array(acc.size);
  let o = 0;
  for (const c of acc.chunks) {
    data.set(c, o);
    o += c.length;
  }
  return { name, type, data, offsets: [...acc.offsets, acc.size], rowDims: acc.rowDims };
}

function isSession(m: ModelSource | ort.InferenceSession): m is ort.InferenceSession {
  return typeof m === 'object' && !(m instanceof Uint8Array) && typeof (m as ort.InferenceSession).run === 'function';
}

/** Run a model (IR, path, bytes or an open session) on every row of a dataset. */
export async function runDataset(
  model: ModelSource | ort.InferenceSession,
  data: Dataset,
  opts: RunOptions & { keepBatches?: boolean } = {},
): Promise<RunResult> {
  const own = !isSession(model);
  const session = isSession(model) ? model : await createSession(model, opts);
  try {
    const batches = makeBatches(data, session.inputNames, opts.batch ?? data.batch);
    const names = [...session.outputNames];
    const accs = new Map(
      names.map((n) => [
        n,
        { chunks: [] as Float64Array[], offsets: [] as number[], rowDims: [] as number[][], size: 0 },
      ]),
    );
    const types = new Map<string, ort.Tensor.Type>();
    const kept: RunResult['batches'] = opts.keepBatches ? [] : undefined;
    let runMs = 0;
    for (let b = 0; b < batches.length; b++) {
      const batch = batches[b]!;
      const t0 = performance.now();
      let out: ort.InferenceSession.OnnxValueMapType;
      try {
        out = await session.run(batch.feeds);
      } catch (e) {
        const first = data.rows[batch.rows[0]!]!.where;
        throw new AxcError(
          diag(
            'AX4011',
            'error',
            `onnxruntime failed on data source '${data.name}' (batch ${b + 1} of ${batches.length}, starting at ${first}): ${firstLine((e as Error).message)}`,
          ),
        );
      }
      runMs += performance.now() - t0;
      const keep: Record<string, TensorValue> = {};
      for (const n of names) {
        const v = out[n] as ort.Tensor;
        types.set(n, v.type);
        appendOutput(accs.get(n)!, v, batch.rows.length);
        if (kept) keep[n] = { type: v.type, dims: [...v.dims], data: v.data };
      }
      if (kept) kept.push({ batch, outputs: keep });
      opts.progress?.(b + 1, batches.length);
    }
    const outputs = new Map<string, OutputRows>();
    for (const n of names) outputs.set(n, finish(n, types.get(n) ?? 'float32', accs.get(n)!));
    const r: RunResult = { outputNames: names, outputs, rows: data.rows.length, runMs };
    if (kept) r.batches = kept;
    return r;
  } finally {
    if (own) await session.release();
  }
}

/** The expected outputs stored with an onnx-testdata dataset, as a RunResult (null when some row has none). */
export function expectedOutputs(data: Dataset): RunResult | null {
  if (!data.rows.length || data.rows.some((r) => !r.expected)) return null;
  const names = Object.keys(data.rows[0]!.expected!);
  const accs = new Map(
    names.map((n) => [
      n,
      { chunks: [] as Float64Array[], offsets: [] as number[], rowDims: [] as number[][], size: 0 },
    ]),
  );
  const types = new Map<string, ort.Tensor.Type>();
  for (const row of data.rows) {
    for (const n of names) {
      const v = row.expected![n];
      if (!v) return null;
      types.set(n, v.type);
      // one stored set is one row
      appendOutput(accs.get(n)!, v, 1);
    }
  }
  const outputs = new Map<string, OutputRows>();
  for (const n of names) outputs.set(n, finish(n, types.get(n)!, accs.get(n)!));
  return { outputNames: names, outputs, rows: data.rows.length, runMs: 0 };
}
