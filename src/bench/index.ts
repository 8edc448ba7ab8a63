/**
 * `axc bench`: latency and throughput of ONNX models in onnxruntime-node, all in one process, with runs alternating
 * between models so that machine noise hits every model alike; file size, parameter count, and task accuracy on
 * labelled data.
 *
 * Feeds are synthetic and deterministic: token ids from a fixed pseudo-random sequence in [1000, 2000) (real WordPiece
 * ids of a BERT vocabulary), attention_mask all ones, token_type_ids zeros; float inputs uniform in [-1, 1). Symbolic
 * dims take the batch size (axis 0) and the sequence length (axis 1 and beyond).
 */
import * as fs from 'node:fs';
import { mulberry32 } from '../util/prng.js';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { AxcError, diag } from '../diagnostics/index.js';
import { DataType, modelStats, type Model } from '../ir/index.js';
import { loadModel } from '../onnx/index.js';
import type { DataDecl, DataFormat } from '../pass/plan.js';
import { metricsOf } from '../verify/compare.js';
import { loadDataset, type Dataset } from '../verify/data.js';
import { runDataset } from '../verify/runner.js';

export interface BenchOptions {
  /** Batch sizes (default [1]). */
  batch?: number[];
  /** Sequence lengths (default [128]). */
  seq?: number[];
  /** Timed runs per model and shape (default 50). */
  runs?: number;
  /** Untimed runs per model and shape first (default: max(3, runs / 10)). */
  warmup?: number;
  /** intra-op threads (default 1). */
  threads?: number;
  /** onnxruntime graph optimization level (default 'all'). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Labelled data for accuracy: name and path (.jsonl token ids with `label`, or an onnx test_data_set folder). */
  data?: { name: string; path: string }[];
  /** Called after every timed round (all models once). */
  progress?: (label: string, done: number, total: number) => void;
}

export interface BenchEntry {
  path: string;
  bytes: number;
  /** Bytes including external data files the model refers to. */
  totalBytes: number;
  parameters: number;
  batch: number;
  seq: number;
  runs: number;
  medianMs: number;
  p10Ms: number;
  p90Ms: number;
  meanMs: number;
  /** Sequences per second at the median latency. */
  throughput: number;
  /** First model's median / this model's median (1 for the first model). */
  speedup: number;
  /** Accuracy (0..1) on the first labelled data source, null when no data was given. */
  accuracy: number | null;
  /** Accuracy per data source name. */
  accuracies?: Record<string, number>;
}

export interface BenchResult {
  models: BenchEntry[];
  threads: number;
  optimization: string;
  onnxruntime: string;
}

/** The q-th quantile (0..1) of sorted numbers, linear interpolation. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

const prng = mulberry32;

const ORT_TYPE: Partial<Record<DataType, ort.Tensor.Type>> = {
  [DataType.FLOAT]: 'float32',
  [DataType.INT64]: 'int64',
  [DataType.INT32]: 'int32',
  [DataType.FLOAT16]: 'float16',
  [DataType.BOOL]: 'bool',
};

export interface InputSpec {
  name: string;
  elemType: DataType;
  shape: (number | string | null)[];
}

/** Deterministic synthetic feeds for a model's inputs at a batch size and sequence length. */
export function syntheticFeeds(inputs: readonly InputSpec[], batch: number, seq: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const inp of inputs) {
    const dims = inp.shape.map((d, i) => (typeof d === 'number' && d > 0 ? d : i === 0 ? batch : seq));
    const n = dims.reduce((a, b) => a * b, 1);
    const type = ORT_TYPE[inp.elemType];
    if (!type)
      throw new AxcError(
        diag('AX4101', 'error', `bench cannot make data for input '${inp.name}' of element type ${inp.elemType}`),
      );
    const r = prng(1234);
    const lname = inp.name.toLowerCase();
    if (type === 'int64' || type === 'int32') {
      const vals = Array.from({ length: n }, () =>
        lname.includes('mask') ? 1 : lname.includes('type') ? 0 : 1000 + Math.floor(r() * 1000),
      );
      if (lname.includes('position')) for (let i = 0; i < n; i++) vals[i] = i % dims[dims.length - 1]!;
      feeds[inp.name] =
        type === 'int64'
          ? new ort.Tensor(
              'int64',
              BigInt64Array.from(vals, (v) => BigInt(v)),
              dims,
            )
          : new ort.Tensor('int32', Int32Array.from(vals), dims);
    } else if (type === 'bool') {
      feeds[inp.name] = new ort.Tensor('bool', new Uint8Array(n).fill(1), dims);
    } else if (type === 'float32') {
      feeds[inp.name] = new ort.Tensor(
        'float32',
        Float32Array.from({ length: n }, () => r() * 2 - 1),
        dims,
      );
    } else {
      throw new AxcError(diag('AX4101', 'error', `bench cannot make data for input '${inp.name}' of type ${type}`));
    }
  }
  return feeds;
}

function formatOf(p: string): DataFormat {
  if (fs.existsSync(p) && fs.statSync(p).isDirectory()) return 'onnx-testdata';
  if (p.endsWith('.jsonl')) return 'jsonl';
  throw new AxcError(
    diag('AX4102', 'error', `bench --data: cannot tell the format of '${p}'`, { kind: 'file', file: p }, [
      'give token-id JSON lines (.jsonl with input_ids and label) or an ONNX test_data_set folder',
    ]),
  );
}

/** Size of the external data files a model's tensors refer to. */
function externalBytes(file: string, m: Model): number {
  const files = new Set<string>();
  for (const v of m.graph.initializers) {
    const ext = v.constValue?.external;
    if (ext) files.add(path.resolve(path.dirname(file), ext.location));
  }
  let n = 0;
  for (const f of files) if (fs.existsSync(f)) n += fs.statSync(f).size;
  return n;
}

/** Benchmark models; entries are ordered by shape (batch, then seq), then by model in the given order. */
export async function benchModels(paths: readonly string[], opts: BenchOptions = {}): Promise<BenchResult> {
  if (paths.length === 0) throw new AxcError(diag('AX4100', 'error', 'bench needs at least one model'));
  const batches = opts.batch ?? [1];
  const seqs = opts.seq ?? [128];
  const runs = opts.runs ?? 50;
  const warmup = opts.warmup ?? Math.max(3, Math.round(runs / 10));
  const threads = opts.threads ?? 1;
  const optimization = opts.optimization ?? 'all';
  for (const [what, list] of [
    ['--batch', batches],
    ['--seq', seqs],
  ] as const)
    for (const v of list)
      if (!Number.isInteger(v) || v < 1)
        throw new AxcError(diag('AX4103', 'error', `bench ${what}: expected positive whole numbers, got ${v}`));
  if (!Number.isInteger(runs) || runs < 1)
    throw new AxcError(diag('AX4103', 'error', `bench --runs: expected a positive whole number, got ${runs}`));

  const infos = paths.map((p) => {
    if (!fs.existsSync(p))
      throw new AxcError(diag('AX1001', 'error', `no such model file: ${p}`, { kind: 'file', file: p }));
    const m = loadModel(p);
    const inputs: InputSpec[] = m.graph.inputs
      .filter((v) => !v.isInitializer())
      .map((v) => ({ name: v.name, elemType: v.elemType ?? DataType.FLOAT, shape: [...(v.shape ?? [])] }));
    const bytes = fs.statSync(p).size;
    return { path: p, bytes, totalBytes: bytes + externalBytes(p, m), parameters: modelStats(m).parameters, inputs };
  });

  const sessionOptions: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: optimization,
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
  const sessions: ort.InferenceSession[] = [];
  try {
    for (const i of infos) {
      try {
        sessions.push(await ort.InferenceSession.create(i.path, sessionOptions));
      } catch (e) {
        throw new AxcError(
          diag('AX4010', 'error', `onnxruntime cannot load ${i.path}: ${(e as Error).message.split('\n')[0]}`, {
            kind: 'file',
            file: i.path,
          }),
        );
      }
    }

    // accuracy (optional), with the same sessions
    const accuracies = infos.map(() => ({}) as Record<string, number>);
    for (const d of opts.data ?? []) {
      const decl: DataDecl = { name: d.name, format: formatOf(d.path), path: path.resolve(d.path), label: 'label' };
      const data: Dataset = await loadDataset(decl, { modelInputs: infos[0]!.inputs.map((x) => x.name) });
      if (!data.labelled)
        throw new AxcError(
          diag('AX4104', 'error', `bench --data ${d.name}: the rows have no labels`, { kind: 'file', file: d.path }),
        );
      const labels = data.rows.map((r) => r.label!);
      for (let m = 0; m < sessions.length; m++) {
        const r = await runDataset(sessions[m]!, data);
        const out = r.outputs.get(r.outputNames[0]!)!;
        const met = metricsOf(out, labels);
        if (!met)
          throw new AxcError(
            diag('AX4105', 'error', `bench: the first output of ${infos[m]!.path} is not one score vector per row`),
          );
        accuracies[m]![d.name] = met.accuracy;
      }
    }

    const entries: BenchEntry[] = [];
    for (const batch of batches)
      for (const seq of seqs) {
        const feeds = infos.map((i) => syntheticFeeds(i.inputs, batch, seq));
        const label = `batch ${batch}, seq ${seq}`;
        for (let w = 0; w < warmup; w++) for (let m = 0; m < sessions.length; m++) await sessions[m]!.run(feeds[m]!);
        const times = infos.map(() => [] as number[]);
        for (let r = 0; r < runs; r++) {
          // alternate the order every round so no model always runs right after another
          for (let j = 0; j < sessions.length; j++) {
            const m = r % 2 === 0 ? j : sessions.length - 1 - j;
            const t0 = performance.now();
            await sessions[m]!.run(feeds[m]!);
            times[m]!.push(performance.now() - t0);
          }
          opts.progress?.(label, r + 1, runs);
        }
        const medians = times.map((t) =>
          quantile(
            [...t].sort((a, b) => a - b),
            0.5,
          ),
        );
        infos.forEach((info, m) => {
          const sorted = [...times[m]!].sort((a, b) => a - b);
          const median = medians[m]!;
          const acc = accuracies[m]!;
          const first = opts.data?.[0]?.name;
          const e: BenchEntry = {
            path: info.path,
            bytes: info.bytes,
            totalBytes: info.totalBytes,
            parameters: info.parameters,
            batch,
            seq,
            runs,
            medianMs: median,
            p10Ms: quantile(sorted, 0.1),
            p90Ms: quantile(sorted, 0.9),
            meanMs: sorted.reduce((a, b) => a + b, 0) / sorted.length,
            throughput: (batch * 1000) / median,
            speedup: medians[0]! / median,
            accuracy: first !== undefined ? (acc[first] ?? null) : null,
          };
          if (Object.keys(acc).length) e.accuracies = acc;
          entries.push(e);
        });
      }
    return { models: entries, threads, optimization, onnxruntime: ort.env.versions?.common ?? 'unknown' };
  } finally {
    for (const s of sessions) await s.release();
  }
}

/** A text table of a bench result. */
export function benchTable(r: BenchResult): string[][] {
  const rows: string[][] = [
    ['model', 'batch', 'seq', 'median ms', 'p10', 'p90', 'seq/s', 'speedup', 'size', 'params', 'accuracy'],
  ];
  for (const e of r.models)
    rows.push([
      e.path,
      String(e.batch),
      String(e.seq),
      e.medianMs.toFixed(2),
      e.p10Ms.toFixed(2),
      e.p90Ms.toFixed(2),
      e.throughput.toFixed(1),
      `${e.speedup.toFixed(2)}x`,
      mib(e.totalBytes),
      `${(e.parameters / 1e6).toFixed(2)} M`,
      e.accuracy === null ? '-' : `${(e.accuracy * 100).toFixed(2)}%`,
    ]);
  return rows;
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
