import * as ort from 'onnxruntime-node';
import type { Diagnostic } from '../../../src/diagnostics/index.js';
import { checkModel, type Model } from '../../../src/ir/index.js';
import { serializeModel } from '../../../src/onnx/index.js';
import type { DataProvider, PassContext, PassResult } from '../../../src/pass/index.js';
import { getPass, withDefaults } from '../../../src/pass/registry.js';
import '../../../passes/fuse.js';

export interface Ran {
  result: PassResult;
  diagnostics: Diagnostic[];
  details: Record<string, unknown>;
}

const noData: DataProvider = { names: () => [], get: () => Promise.reject(new Error('no data')) };

/** Run one registered pass the way the manager does (defaults filled), collecting its diagnostics. */
export async function runPass(
  model: Model,
  name: string,
  options: Record<string, unknown> = {},
  extra: { facts?: Map<string, unknown>; data?: DataProvider } = {},
): Promise<Ran> {
  const pass = getPass(name);
  if (!pass) throw new Error(`no pass '${name}'`);
  const diagnostics: Diagnostic[] = [];
  const details: Record<string, unknown> = {};
  const ctx: PassContext = {
    model,
    facts: extra.facts ?? new Map(),
    data: extra.data ?? noData,
    report: (d) => diagnostics.push(d),
    progress: () => {},
    details,
    threads: 1,
  };
  const result = await pass.run(ctx, withDefaults(pass, options));
  const errors = checkModel(model).filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(`invalid IR after ${name}: ${errors.map((d) => d.message).join('; ')}`);
  return { result, diagnostics, details };
}

/** Count nodes by qualified op type. */
export function opCounts(m: Model): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of m.graph) out[n.qualifiedOp] = (out[n.qualifiedOp] ?? 0) + 1;
  return out;
}

/** Token feeds with padding for a generated model (ids below `vocab`). */
export function genFeeds(vocab: number, B = 3, S = 11): Record<string, ort.Tensor> {
  const ids = BigInt64Array.from({ length: B * S }, (_, i) => BigInt(1 + ((i * 37 + 5) % (vocab - 1))));
  const mask = BigInt64Array.from({ length: B * S }, (_, i) => (i >= S && i % S >= 6 ? 0n : 1n));
  return {
    input_ids: new ort.Tensor('int64', ids, [B, S]),
    attention_mask: new ort.Tensor('int64', mask, [B, S]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(B * S), [B, S]),
  };
}

/** Run a model (IR) in onnxruntime with one thread and no graph optimization; returns the first output. */
export async function run(m: Model, feeds: Record<string, ort.Tensor>, opt = false): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(serializeModel(m), {
    graphOptimizationLevel: opt ? 'all' : 'disabled',
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const f: Record<string, ort.Tensor> = {};
  for (const n of s.inputNames) f[n] = feeds[n]!;
  const out = await s.run(f);
  const y = out[s.outputNames[0]!]!.data as Float32Array;
  await s.release();
  return y;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Fraction of rows whose argmax agrees (rows of width `w`). */
export function argmaxAgreement(a: ArrayLike<number>, b: ArrayLike<number>, w: number): number {
  const rows = a.length / w;
  let same = 0;
  for (let r = 0; r < rows; r++) {
    let ia = 0;
    let ib = 0;
    for (let j = 1; j < w; j++) {
      if (a[r * w + j]! > a[r * w + ia]!) ia = j;
      if (b[r * w + j]! > b[r * w + ib]!) ib = j;
    }
    if (ia === ib) same++;
  }
  return same / rows;
}
