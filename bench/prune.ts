/**
 * Pruning benchmark (issue h6): significance + AxFormer greedy search, the budget form, and the weight-norm
 * baseline at the same budget, on the real SST-2 models in /work/shared.
 *
 * Honest figures: significance and search run on the even-idx dev sentences (436, "calibration"); accuracy is
 * reported on the odd-idx dev sentences (436, "held-out"), which chose nothing.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Model } from '../src/ir/index.js';
import { decodeModel, loadModel, serializeModel } from '../src/onnx/index.js';
import { PassManager, type StepReport } from '../src/pass/index.js';
import type { PlanStep } from '../src/pass/types.js';
import { makeBatches, type Dataset } from '../src/verify/data.js';
import { PlanDataProvider } from '../src/verify/provider.js';
import { requireLayers } from '../passes/lib/prune-layers.js';
import { encoderParams } from '../passes/lib/prune-types.js';
import '../passes/prune.js';
import '../passes/significance.js';
import '../passes/dce.js';

export interface PruneBenchOptions {
  shared: string;
  /** Models (relative to shared), default tiny and mini. */
  models?: string[];
  threads?: number;
  log?: (line: string) => void;
}

async function accuracy(model: Model, data: Dataset): Promise<number> {
  const s = await ort.InferenceSession.create(serializeModel(model), {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 2,
  });
  let ok = 0;
  for (const b of makeBatches(data, s.inputNames, 64)) {
    const out = await s.run(b.feeds);
    const t = out[s.outputNames[0]!]!;
    const L = t.dims[1]!;
    const z = t.data as Float32Array;
    b.rows.forEach((ri, k) => {
      let am = 0;
      for (let c = 1; c < L; c++) if (z[k * L + c]! > z[k * L + am]!) am = c;
      if (am === data.rows[ri]!.label) ok++;
    });
  }
  await s.release();
  return ok / data.rows.length;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Latency (ms, median) of several models, runs alternating between them, after warm-up. */
async function latency(models: Model[], batch: number, seq: number, runs: number, threads: number): Promise<number[]> {
  const sessions = await Promise.all(
    models.map((m) =>
      ort.InferenceSession.create(serializeModel(m), { graphOptimizationLevel: 'all', intraOpNumThreads: threads }),
    ),
  );
  const n = batch * seq;
  const ids = new BigInt64Array(n);
  for (let i = 0; i < n; i++) ids[i] = BigInt(1000 + ((i * 7919) % 20000));
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', ids, [batch, seq]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [batch, seq]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(n), [batch, seq]),
  };
  const times = models.map(() => [] as number[]);
  for (let r = -3; r < runs; r++)
    for (let i = 0; i < sessions.length; i++) {
      const s = sessions[i]!;
      const f: Record<string, ort.Tensor> = {};
      for (const name of s.inputNames) f[name] = feeds[name]!;
      const t0 = performance.now();
      await s.run(f);
      if (r >= 0) times[i]!.push(performance.now() - t0);
    }
  for (const s of sessions) await s.release();
  return times.map(median);
}

async function runPlan(
  model: Model,
  steps: PlanStep[],
  data: PlanDataProvider,
  threads: number,
  facts?: Map<string, unknown>,
): Promise<{ reports: StepReport[]; ms: number; cpuS: number }> {
  const pm = new PassManager({ data, threads, ...(facts ? { facts } : {}) });
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const reports = await pm.run(model, steps);
  const c = process.cpuUsage(c0);
  return { reports, ms: performance.now() - t0, cpuS: (c.user + c.system) / 1e6 };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export async function benchPrune(opts: PruneBenchOptions): Promise<void> {
  const log = opts.log ?? console.log;
  const threads = opts.threads ?? 2;
  const tokens = path.join(opts.shared, 'data/sst2/glue_sst2_validation.tokens.jsonl');
  if (!fs.existsSync(tokens)) {
    log(`(pruning bench skipped: ${tokens} not found)`);
    return;
  }
  const data = new PlanDataProvider([
    { name: 'cal', format: 'jsonl', path: tokens, label: 'label', split: 'even' },
    { name: 'held', format: 'jsonl', path: tokens, label: 'label', split: 'odd' },
  ]);
  const held = (await data.get('held')) as Dataset;
  const cal = (await data.get('cal')) as Dataset;
  log(
    `data: ${cal.rows.length} calibration sentences (even idx), ${held.rows.length} held-out (odd idx); ORT threads ${threads}`,
  );
  for (const rel of opts.models ?? ['models/sst2-bert-tiny/model.onnx', 'models/sst2-bert-mini/model.onnx']) {
    const file = path.join(opts.shared, rel);
    if (!fs.existsSync(file)) continue;
    const original = loadModel(file);
    const clone = () => decodeModel(serializeModel(original));
    const params0 = encoderParams(requireLayers(original));
    const size0 = serializeModel(original).length;
    const acc0 = await accuracy(original, held);
    log(`-- ${rel}: encoder params ${params0}, file ${(size0 / 1e6).toFixed(2)} MB, held-out accuracy ${pct(acc0)}`);

    const variants: { name: string; model: Model; ms?: number; note: string }[] = [];
    // 1. AxFormer greedy
    {
      const m = clone();
      const { reports, ms, cpuS } = await runPlan(
        m,
        [
          {
            pass: 'significance',
            options: { on: 'cal', elements: [{ name: 'heads' }, { name: 'ffn-groups', arg: 128 }, { name: 'blocks' }] },
          },
          { pass: 'prune', options: { greedy: true, tolerance: 1.1 } },
        ],
        data,
        threads,
      );
      const [sg, pr] = reports;
      log(
        `   greedy: significance ${(sg!.ms / 1000).toFixed(1)} s (${sg!.stats.evaluations} evals) + search ${(pr!.ms / 1000).toFixed(1)} s (${pr!.stats.evaluations} evals) = ${(ms / 1000).toFixed(1)} s wall, ${cpuS.toFixed(1)} CPU s (load average ${os.loadavg()[0]!.toFixed(1)})`,
      );
      log(`           ${pr!.summary}`);
      variants.push({ name: 'greedy', model: m, ms, note: '' });
    }
    // 1b. greedy with block scores only (parts tried in index order): the fast configuration
    {
      const m = clone();
      const { reports, ms, cpuS } = await runPlan(
        m,
        [
          { pass: 'significance', options: { on: 'cal', elements: [{ name: 'blocks' }] } },
          {
            pass: 'prune',
            options: {
              greedy: true,
              tolerance: 1.1,
              elements: [{ name: 'heads' }, { name: 'ffn-groups', arg: 128 }, { name: 'blocks' }],
            },
          },
        ],
        data,
        threads,
      );
      const [sg, pr] = reports;
      log(
        `   greedy (block scores only): significance ${(sg!.ms / 1000).toFixed(1)} s (${sg!.stats.evaluations} evals) + search ${(pr!.ms / 1000).toFixed(1)} s (${pr!.stats.evaluations} evals) = ${(ms / 1000).toFixed(1)} s wall, ${cpuS.toFixed(1)} CPU s (load average ${os.loadavg()[0]!.toFixed(1)})`,
      );
      log(`           ${pr!.summary}`);
      variants.push({ name: 'greedy (block scores)', model: m, ms, note: '' });
    }
    // 2. budget by loss (scores measured once, shared by both runs), with and without compensation;
    // 3. the weight-norm baseline at the same budget
    for (const budget of [0.4]) {
      const facts = new Map<string, unknown>();
      const sig = await runPlan(
        clone(),
        [
          {
            pass: 'significance',
            options: { on: 'cal', elements: [{ name: 'heads' }, { name: 'ffn-groups', arg: 64 }, { name: 'blocks' }] },
          },
        ],
        data,
        threads,
        facts,
      );
      log(`   significance (64-neuron groups): ${(sig.ms / 1000).toFixed(1)} s wall, ${sig.cpuS.toFixed(1)} CPU s`);
      for (const compensate of [false, true]) {
        const m = clone();
        const { reports, ms, cpuS } = await runPlan(
          m,
          [{ pass: 'prune', options: { budget, 'max-drop': 0.5, compensate } }],
          data,
          threads,
          new Map(facts),
        );
        const name = `budget ${pct(budget)} (loss${compensate ? ', comp.' : ''})`;
        log(`   ${name}: search ${(ms / 1000).toFixed(1)} s wall, ${cpuS.toFixed(1)} CPU s; ${reports[0]!.summary}`);
        const comp = reports[0]!.details.compensation as Record<string, unknown> | undefined;
        if (comp) log(`      compensation: ${JSON.stringify(comp)}`);
        variants.push({ name, model: m, ms, note: '' });
      }
      const w = clone();
      const r2 = await runPlan(
        w,
        [
          {
            pass: 'significance',
            options: { by: 'weight-norm', elements: [{ name: 'heads' }, { name: 'ffn-groups', arg: 64 }] },
          },
          { pass: 'prune', options: { budget } },
        ],
        data,
        threads,
      );
      log(`   budget ${pct(budget)} by weight-norm (baseline): ${r2.reports[1]!.summary}`);
      variants.push({ name: `budget ${pct(budget)} (weight-norm)`, model: w, note: '' });
      // the same ranking with the data guard (max-drop on the calibration half) and compensation
      const wc = clone();
      const r3 = await runPlan(
        wc,
        [
          {
            pass: 'significance',
            options: { by: 'weight-norm', elements: [{ name: 'heads' }, { name: 'ffn-groups', arg: 64 }] },
          },
          { pass: 'prune', options: { budget, on: 'cal', 'max-drop': 0.5, compensate: true } },
        ],
        data,
        threads,
      );
      log(`   budget ${pct(budget)} by weight-norm, guarded on data, compensated: ${r3.reports[1]!.summary}`);
      const comp3 = r3.reports[1]!.details.compensation as Record<string, unknown> | undefined;
      if (comp3) log(`      compensation: ${JSON.stringify(comp3)}`);
      variants.push({ name: `budget ${pct(budget)} (w-norm, guard, comp.)`, model: wc, note: '' });
    }
    const models = [original, ...variants.map((v) => v.model)];
    const lat1 = await latency(models, 1, 128, 40, threads);
    const lat32 = await latency(models, 32, 128, 6, threads);
    log(
      `   ${'variant'.padEnd(34)} ${'held-out acc'.padStart(12)} ${'enc params'.padStart(11)} ${'file MB'.padStart(8)} ${'b1 ms'.padStart(7)} ${'b32 ms'.padStart(8)}`,
    );
    const row = (name: string, m: Model, i: number, acc: number) => {
      const p = encoderParams(requireLayers(m));
      log(
        `   ${name.padEnd(34)} ${pct(acc).padStart(12)} ${`${p} (-${pct(1 - p / params0)})`.padStart(11)} ${(serializeModel(m).length / 1e6).toFixed(2).padStart(8)} ${lat1[i]!.toFixed(2).padStart(7)} ${lat32[i]!.toFixed(1).padStart(8)}`,
      );
    };
    row('original', original, 0, acc0);
    for (let i = 0; i < variants.length; i++)
      row(variants[i]!.name, variants[i]!.model, i + 1, await accuracy(variants[i]!.model, held));
  }
}
