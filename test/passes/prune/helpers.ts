import * as ort from 'onnxruntime-node';
import { AxcError } from '../../../src/diagnostics/index.js';
import type { Model } from '../../../src/ir/index.js';
import { serializeModel } from '../../../src/onnx/index.js';
import { PassManager, type StepReport } from '../../../src/pass/index.js';
import type { PlanStep } from '../../../src/pass/types.js';
import { loadDataset, makeBatches, type Dataset } from '../../../src/verify/data.js';
import { PlanDataProvider } from '../../../src/verify/provider.js';
import '../../../passes/prune.js';
import '../../../passes/significance.js';
import { DEV_JSONL } from '../../support/paths.js';

/** 'dev': the first 2*limit golden dev rows, even positions (significance); 'held': odd positions. */
export function provider(limit = 24): PlanDataProvider {
  return new PlanDataProvider([
    { name: 'dev', format: 'jsonl', path: DEV_JSONL, label: 'label', split: 'even', limit },
    { name: 'held', format: 'jsonl', path: DEV_JSONL, label: 'label', split: 'odd', limit },
  ]);
}

export async function runSteps(
  model: Model,
  steps: PlanStep[],
  data = provider(),
  facts?: Map<string, unknown>,
): Promise<{ reports: StepReport[]; facts: Map<string, unknown> }> {
  const pm = new PassManager({ data, threads: 1, cleanup: false, ...(facts ? { facts } : {}) });
  const reports = await pm.run(model, steps);
  return { reports, facts: pm.facts };
}

/** The error code an async call throws (AxcError), or undefined. */
export async function errorOf(f: () => Promise<unknown>): Promise<AxcError | undefined> {
  try {
    await f();
  } catch (e) {
    if (e instanceof AxcError) return e;
    throw e;
  }
  return undefined;
}

/** Mean cross-entropy and accuracy of a model on a dataset, computed straight from onnxruntime logits. */
export async function lossOf(model: Model, data: Dataset): Promise<{ loss: number; accuracy: number }> {
  const s = await ort.InferenceSession.create(serializeModel(model), {
    graphOptimizationLevel: 'disabled',
    intraOpNumThreads: 1,
  });
  let sum = 0;
  let ok = 0;
  for (const b of makeBatches(data, s.inputNames, 16)) {
    const out = await s.run(b.feeds);
    const z = out[s.outputNames[0]!]!.data as Float32Array;
    b.rows.forEach((ri, k) => {
      const label = data.rows[ri]!.label!;
      const a = z[2 * k]!;
      const c = z[2 * k + 1]!;
      const m = Math.max(a, c);
      sum += m + Math.log(Math.exp(a - m) + Math.exp(c - m)) - z[2 * k + label]!;
      if ((c > a ? 1 : 0) === label) ok++;
    });
  }
  await s.release();
  return { loss: sum / data.rows.length, accuracy: ok / data.rows.length };
}

export async function dev(limit = 24, split: 'even' | 'odd' = 'even'): Promise<Dataset> {
  return loadDataset({ name: 'dev', format: 'jsonl', path: DEV_JSONL, label: 'label', split, limit });
}
