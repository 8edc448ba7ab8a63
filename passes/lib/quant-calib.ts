/**
 * Calibration for static int8 and data for the per-matrix error report: run the float model in onnxruntime with
 * chosen intermediate values exposed as extra outputs, then derive activation ranges (minmax, percentile, entropy).
 */
import * as ort from 'onnxruntime-node';
import { AxcError, diag, type Location } from '../../src/diagnostics/index.js';
import { DataType, type Model, type Value } from '../../src/ir/index.js';
import { serializeModel } from '../../src/onnx/index.js';
import type { PassContext } from '../../src/pass/types.js';
import { makeBatches, modelInputNames, type Dataset } from '../../src/verify/data.js';
import type { Calibration, FeedSource } from './quant-types.js';

type Feeds = Record<string, ort.Tensor>;

function isDataset(x: unknown): x is Dataset {
  return typeof x === 'object' && x !== null && Array.isArray((x as Dataset).rows);
}

/**
 * Feeds for calibration from a plan data source (a Dataset from src/verify/data.ts), a FeedSource function, or an
 * array of feeds; at most `rows` rows (whole batches of the source).
 */
export async function calibrationFeeds(
  ctx: PassContext,
  source: string,
  rows: number,
  where: Location,
): Promise<Feeds[]> {
  const data: unknown = await ctx.data.get(source);
  const inputs = modelInputNames(ctx.model);
  let batches: Feeds[] = [];
  if (isDataset(data)) {
    const limited: Dataset = { ...data, rows: data.rows.slice(0, rows) };
    batches = makeBatches(limited, inputs, Math.min(data.batch, 32)).map((b) => b.feeds);
  } else if (typeof data === 'function') {
    const it = (data as FeedSource)();
    let n = 0;
    for await (const f of it as AsyncIterable<Feeds>) {
      batches.push(f);
      n += Object.values(f)[0]?.dims[0] ?? 1;
      if (n >= rows) break;
    }
  } else if (Array.isArray(data)) batches = (data as Feeds[]).slice(0, Math.max(1, rows));
  if (batches.length === 0)
    throw new AxcError(diag('AX3304', 'error', `data source '${source}' gave no rows for calibration`, where));
  return batches;
}

/**
 * Run the model on `batches` with `values` exposed as extra outputs; returns, per value, the concatenated float data
 * of every batch. The model is left as it was (the outputs are added to a serialized copy only).
 */
export async function captureValues(
  model: Model,
  values: readonly Value[],
  batches: readonly Feeds[],
  threads = 1,
): Promise<Map<Value, Float32Array>> {
  const g = model.graph;
  const added: Value[] = [];
  const typed: Value[] = [];
  for (const v of values) {
    if (g.outputs.includes(v)) continue;
    if (!v.type) {
      v.type = { kind: 'tensor', elemType: DataType.FLOAT };
      typed.push(v);
    }
    g.outputs.push(v);
    added.push(v);
  }
  let bytes: Uint8Array;
  try {
    bytes = serializeModel(model);
  } finally {
    g.outputs.splice(g.outputs.length - added.length, added.length);
    for (const v of typed) v.type = undefined;
  }
  const sess = await ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: 'disabled',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  const parts = new Map<Value, Float32Array[]>();
  try {
    for (const feeds of batches) {
      const f: Feeds = {};
      for (const n of sess.inputNames) f[n] = feeds[n]!;
      const out = await sess.run(f);
      for (const v of values) {
        const t = out[v.name];
        if (!t) continue;
        const list = parts.get(v) ?? [];
        list.push(t.data as Float32Array);
        parts.set(v, list);
      }
    }
  } finally {
    await sess.release();
  }
  const res = new Map<Value, Float32Array>();
  for (const [v, list] of parts) {
    const n = list.reduce((a, x) => a + x.length, 0);
    const all = new Float32Array(n);
    let o = 0;
    for (const x of list) {
      all.set(x, o);
      o += x.length;
    }
    res.set(v, all);
  }
  return res;
}

export interface Range {
  lo: number;
  hi: number;
}

/** The range an activation is quantized over (always containing 0, as uint8 with a zero point needs). */
export function calibrate(x: Float32Array, method: Calibration, percentile = 99.99): Range {
  let lo = 0;
  let hi = 0;
  for (const v of x) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (method === 'minmax' || method === 'none' || x.length === 0) return { lo, hi };
  if (method === 'percentile') {
    const s = Float32Array.from(x).sort();
    const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.round((p / 100) * (s.length - 1))))]!;
    return { lo: Math.min(0, at(100 - percentile)), hi: Math.max(0, at(percentile)) };
  }
  const t = entropyThreshold(x, Math.max(-lo, hi));
  return { lo: Math.max(lo, -t), hi: Math.min(hi, t) };
}

/**
 * KL-divergence calibration (TensorRT's method): histogram |x| into 2048 bins, and pick the clipping threshold whose
 * 128-level quantized distribution is closest to the clipped reference distribution.
 */
export function entropyThreshold(x: Float32Array, amax: number, bins = 2048, levels = 128): number {
  if (amax <= 0) return 0;
  const hist = new Float64Array(bins);
  const w = amax / bins;
  for (const v of x) hist[Math.min(bins - 1, Math.floor(Math.abs(v) / w))]! += 1;
  let best = bins;
  let bestKl = Infinity;
  for (let i = levels; i <= bins; i += 16) {
    const p = Array.from(hist.subarray(0, i));
    let outliers = 0;
    for (let j = i; j < bins; j++) outliers += hist[j]!;
    p[i - 1]! += outliers;
    // quantize p's first i bins into `levels` bins, then expand back over the non-empty bins
    const q = new Float64Array(i);
    const step = i / levels;
    for (let l = 0; l < levels; l++) {
      const a = Math.floor(l * step);
      const b = Math.floor((l + 1) * step);
      let sum = 0;
      let nz = 0;
      for (let j = a; j < b; j++) {
        sum += hist[j]!;
        if (hist[j]! > 0) nz++;
      }
      for (let j = a; j < b; j++) q[j] = hist[j]! > 0 ? sum / nz : 0;
    }
    const ps = p.reduce((s, v) => s + v, 0);
    const qs = q.reduce((s, v) => s + v, 0);
    if (ps === 0 || qs === 0) continue;
    let kl = 0;
    for (let j = 0; j < i; j++) {
      const pj = p[j]! / ps;
      const qj = q[j]! / qs;
      if (pj > 0) kl += qj > 0 ? pj * Math.log(pj / qj) : pj * 20;
    }
    if (kl < bestKl) {
      bestKl = kl;
      best = i;
    }
  }
  return (best + 0.5) * w;
}

/** uint8 scale and zero point for a range (asymmetric, as QuantizeLinear with a uint8 zero point). */
export function u8Params(r: Range): { scale: number; zeroPoint: number } {
  const scale = r.hi - r.lo > 0 ? (r.hi - r.lo) / 255 : 1;
  return { scale, zeroPoint: Math.min(255, Math.max(0, Math.round(-r.lo / scale))) };
}

/** What QuantizeLinear + DequantizeLinear with these parameters do to x. */
export function fakeQuantU8(x: Float32Array, scale: number, zeroPoint: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++)
    out[i] = (Math.min(255, Math.max(0, Math.round(x[i]! / scale) + zeroPoint)) - zeroPoint) * scale;
  return out;
}
