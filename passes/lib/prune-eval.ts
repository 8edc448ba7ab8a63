import * as ort from 'onnxruntime-node';
import { AxcError, diag, type Location } from '../../src/diagnostics/index.js';
import type { Model } from '../../src/ir/index.js';
import type { Dataset } from '../../src/verify/data.js';
import { buildGateModel, gateFeeds, type GateModel } from './gates.js';
import type { PruneLayer, PruneSet } from './prune-types.js';

/**
 * Evaluates prune sets (as gate values) on labelled token data in one onnxruntime session of the gate model.
 * Samples are sorted by length and padded per chunk; each run holds several gate settings (the chunk replicated).
 */

/** A labelled token sample. */
export interface Sample {
  /** Token inputs by model input name (input_ids, attention_mask, token_type_ids), one id per position. */
  inputs: Record<string, BigInt64Array>;
  label: number;
}

export interface EvalResult {
  /** Mean cross-entropy over the samples. */
  loss: number;
  /** Per-sample cross-entropy, in sample order. */
  perSample: Float64Array;
  accuracy: number;
}

export interface EvaluatorOptions {
  groupSize: number;
  /** onnxruntime intra-op threads (default 2). */
  threads?: number;
  /** Samples per chunk (default 32). */
  chunk?: number;
  /** Maximum batch rows per run (chunk x settings, default 256). */
  maxRows?: number;
}

/** Labelled token samples of a dataset; AX3602 when a row has no label or is not a token row. */
export function samplesOf(data: Dataset, where: Location): Sample[] {
  const out: Sample[] = [];
  for (const r of data.rows) {
    if (r.label === undefined)
      throw new AxcError(
        diag(
          'AX3602',
          'error',
          `data source '${data.name}' has no label for ${r.where}: significance needs labels`,
          where,
        ),
      );
    const inputs: Record<string, BigInt64Array> = {};
    for (const [k, v] of Object.entries(r.inputs)) {
      if (!(v instanceof BigInt64Array))
        throw new AxcError(
          diag('AX3602', 'error', `data source '${data.name}' (${r.where}) holds tensors, not token ids`, where),
        );
      inputs[k] = v;
    }
    out.push({ inputs, label: r.label });
  }
  if (out.length === 0) throw new AxcError(diag('AX3602', 'error', `data source '${data.name}' has no rows`, where));
  return out;
}

function seqLen(s: Sample): number {
  return (s.inputs.input_ids ?? Object.values(s.inputs)[0] ?? new BigInt64Array(0)).length;
}

interface Chunk {
  idx: number[];
  S: number;
  feeds: Record<string, BigInt64Array>;
}

export class GateEvaluator {
  /** Gate settings evaluated, each over every sample (one unit = one full pass over the data). */
  evaluations = 0;
  /** onnxruntime runs made. */
  runs = 0;
  private readonly chunks: Chunk[];

  private constructor(
    readonly gm: GateModel,
    private readonly session: ort.InferenceSession,
    readonly samples: readonly Sample[],
    private readonly opts: Required<EvaluatorOptions>,
  ) {
    const order = samples.map((_, i) => i).sort((a, b) => seqLen(samples[a]!) - seqLen(samples[b]!) || a - b);
    this.chunks = [];
    for (let i = 0; i < order.length; i += opts.chunk) {
      const idx = order.slice(i, i + opts.chunk);
      const S = Math.max(1, ...idx.map((j) => seqLen(samples[j]!)));
      const feeds: Record<string, BigInt64Array> = {};
      for (const name of gm.dataInputs) {
        const buf = new BigInt64Array(idx.length * S);
        idx.forEach((j, b) => {
          const s = samples[j]!;
          const n = seqLen(s);
          const v = s.inputs[name];
          if (v) buf.set(v.subarray(0, S), b * S);
          else if (name === 'attention_mask') buf.fill(1n, b * S, b * S + n);
          else if (name === 'position_ids') for (let t = 0; t < n; t++) buf[b * S + t] = BigInt(t);
          else if (name !== 'token_type_ids')
            throw new AxcError(diag('AX3602', 'error', `the data has no values for model input '${name}'`));
        });
        feeds[name] = buf;
      }
      this.chunks.push({ idx, S, feeds });
    }
  }

  static async create(
    model: Model,
    layers: readonly PruneLayer[],
    samples: readonly Sample[],
    opts: EvaluatorOptions,
  ): Promise<GateEvaluator> {
    const gm = buildGateModel(model, layers, opts.groupSize);
    const session = await ort.InferenceSession.create(gm.bytes, {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: opts.threads ?? 2,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    });
    return new GateEvaluator(gm, session, samples, {
      groupSize: opts.groupSize,
      threads: opts.threads ?? 2,
      chunk: opts.chunk ?? 32,
      maxRows: opts.maxRows ?? 256,
    });
  }

  /** Evaluate prune sets; results in the same order. */
  async evaluate(settings: readonly PruneSet[]): Promise<EvalResult[]> {
    const n = this.samples.length;
    const per = settings.map(() => new Float64Array(n));
    const correct = settings.map(() => 0);
    for (const ch of this.chunks) {
      const rows = ch.idx.length;
      const perRun = Math.max(1, Math.floor(this.opts.maxRows / rows));
      for (let s0 = 0; s0 < settings.length; s0 += perRun) {
        const group = settings.slice(s0, s0 + perRun);
        const feeds: Record<string, ort.Tensor> = gateFeeds(this.gm, group, rows);
        for (const name of this.gm.dataInputs) {
          const base = ch.feeds[name]!;
          const data = new BigInt64Array(base.length * group.length);
          for (let k = 0; k < group.length; k++) data.set(base, k * base.length);
          feeds[name] = new ort.Tensor('int64', data, [rows * group.length, ch.S]);
        }
        const out = await this.session.run(feeds, [this.gm.logits]);
        this.runs++;
        const t = out[this.gm.logits]!;
        const L = t.dims[1] ?? 1;
        const z = t.data as Float32Array;
        for (let k = 0; k < group.length; k++) {
          for (let b = 0; b < rows; b++) {
            const r = k * rows + b;
            const j = ch.idx[b]!;
            const label = this.samples[j]!.label;
            let mx = -Infinity;
            let am = 0;
            for (let c = 0; c < L; c++) {
              const x = z[r * L + c]!;
              if (x > mx) {
                mx = x;
                am = c;
              }
            }
            let se = 0;
            for (let c = 0; c < L; c++) se += Math.exp(z[r * L + c]! - mx);
            per[s0 + k]![j] = mx + Math.log(se) - z[r * L + label]!;
            if (am === label) correct[s0 + k]!++;
          }
        }
      }
    }
    this.evaluations += settings.length;
    return settings.map((_, i) => {
      const p = per[i]!;
      let sum = 0;
      for (let j = 0; j < n; j++) sum += p[j]!;
      return { loss: sum / n, perSample: p, accuracy: correct[i]! / n };
    });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Fraction of samples whose loss under `b` is no worse than under `a` (with a float32-level tolerance). */
export function noWorseFraction(a: Float64Array, b: Float64Array): number {
  let k = 0;
  for (let i = 0; i < a.length; i++) if (b[i]! <= a[i]! + 1e-6) k++;
  return a.length ? k / a.length : 0;
}
