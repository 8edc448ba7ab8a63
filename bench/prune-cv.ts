/**
 * `npm run bench -- prune-cv`: pruning criteria compared by two-fold cross-validation on the SST-2 dev set.
 *
 * The 872 dev sentences are split by idx parity. Each criterion prunes sst2-bert-mini twice, once calibrated on the
 * even half and scored on the odd half, once the other way round; the held-out figure pools both, so every one of
 * the 872 sentences is predicted by a model that did not see it. This halves the noise of a single 436-sentence
 * held-out half (there, one sentence is 0.23 points). Reported per criterion and budget: held-out accuracy (and its
 * change from the original's), agreement with the original's predictions, and the fraction of encoder parameters
 * and MACs removed.
 *
 * Criteria (same budget, same physical removal):
 * - weight-norm: onnxsim's data-free criterion (no data at all);
 * - weight-norm + guard: the same ranking, steps checked against max-drop on the calibration half, compensated;
 * - loss: single-ablation task-loss significance, budget with re-scoring and max-drop, compensated (AxFormer's data);
 * - kl: the same with the KL divergence to the original's predictions as the loss.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { compile } from '../src/compile.js';
import { makeBatches, loadDataset, type Dataset } from '../src/verify/data.js';

export interface PruneCvOptions {
  shared: string;
  root: string;
  cacheDir: string;
  budgets?: number[];
  criteria?: string[];
  log?: (line: string) => void;
}

const CRITERIA: Record<string, (budget: number) => string> = {
  'weight-norm': (b) => `significance heads, ffn-groups(64), blocks by weight-norm\nprune budget ${b}% params`,
  'weight-norm + guard': (b) =>
    `significance heads, ffn-groups(64), blocks by weight-norm\nprune budget ${b}% params on calib max-drop 1 compensate true`,
  loss: (b) =>
    `significance heads, ffn-groups(64), blocks on calib by loss\nprune budget ${b}% params max-drop 1 compensate true`,
  kl: (b) =>
    `significance heads, ffn-groups(64), blocks on calib by kl\nprune budget ${b}% params max-drop ${b >= 50 ? 3 : 1} compensate true`,
};

async function predictions(file: string, data: Dataset): Promise<number[]> {
  const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'all', intraOpNumThreads: 2 });
  const out: number[] = [];
  for (const b of makeBatches(data, s.inputNames, 64)) {
    const t = (await s.run(b.feeds))[s.outputNames[0]!]!;
    const L = t.dims[1]!;
    const z = t.data as Float32Array;
    b.rows.forEach((ri, k) => {
      let am = 0;
      for (let c = 1; c < L; c++) if (z[k * L + c]! > z[k * L + am]!) am = c;
      out[ri] = am;
    });
  }
  await s.release();
  return out;
}

export async function benchPruneCv(o: PruneCvOptions): Promise<string[]> {
  const lines: string[] = [];
  const log = (l: string) => {
    lines.push(l);
    (o.log ?? console.log)(l);
  };
  const model = path.join(o.shared, 'models/sst2-bert-mini/model.onnx');
  if (!fs.existsSync(model)) {
    log(`(${model} not found: prune-cv skipped)`);
    return lines;
  }
  const dev = path.join(o.root, 'golden/sst2/dev.jsonl');
  fs.mkdirSync(o.cacheDir, { recursive: true });
  const folds = (['even', 'odd'] as const).map((calib) => ({
    calib,
    held: calib === 'even' ? ('odd' as const) : ('even' as const),
  }));
  const heldData = new Map<string, Dataset>();
  const original = new Map<string, number[]>();
  for (const f of folds) {
    const d = await loadDataset({ name: f.held, format: 'jsonl', path: dev, label: 'label', split: f.held });
    heldData.set(f.held, d);
    original.set(f.held, await predictions(model, d));
  }
  const score = (preds: Map<string, number[]>) => {
    let n = 0;
    let ok = 0;
    let agree = 0;
    for (const [half, d] of heldData) {
      const p = preds.get(half)!;
      const p0 = original.get(half)!;
      d.rows.forEach((r, i) => {
        n++;
        if (p[i] === r.label) ok++;
        if (p[i] === p0[i]) agree++;
      });
    }
    return { accuracy: ok / n, agreement: agree / n };
  };
  const base = score(original);
  log(`sst2-bert-mini, 2-fold cross-validation over the 872 SST-2 dev sentences (calibrate on one idx parity, score`);
  log(`on the other): original accuracy ${(100 * base.accuracy).toFixed(2)}%`);
  const rows = [
    ['criterion', 'budget', 'removed params', 'removed MACs', 'held-out acc', 'change', 'agreement', 'time'],
  ];
  for (const budget of o.budgets ?? [40, 60]) {
    for (const name of o.criteria ?? Object.keys(CRITERIA)) {
      const preds = new Map<string, number[]>();
      let removed = '';
      let macs = '';
      const t0 = performance.now();
      for (const f of folds) {
        const plan = `data calib = jsonl "${dev}" label "label" split ${f.calib}\n${CRITERIA[name]!(budget)}\n`;
        const out = path.join(o.cacheDir, `prune-cv.${name.replace(/\W+/g, '-')}.${budget}.${f.calib}.onnx`);
        const r = await compile({
          model,
          plan: { source: plan, file: path.join(o.root, 'golden/plans/cv.ax') },
          output: out,
        });
        const step = r.steps.find((s) => s.pass === 'prune');
        const ep = step?.details.encoderParams as { before: number; removed: number } | undefined;
        const em = step?.details.encoderMacsPerToken as { before: number; removed: number } | undefined;
        if (ep) removed += `${removed ? '/' : ''}${((100 * ep.removed) / ep.before).toFixed(1)}%`;
        if (em) macs += `${macs ? '/' : ''}${((100 * em.removed) / em.before).toFixed(1)}%`;
        preds.set(f.held, await predictions(out, heldData.get(f.held)!));
      }
      const s = score(preds);
      rows.push([
        name,
        `${budget}%`,
        removed,
        macs,
        `${(100 * s.accuracy).toFixed(2)}%`,
        `${(100 * (s.accuracy - base.accuracy)).toFixed(2)}`,
        `${(100 * s.agreement).toFixed(2)}%`,
        `${((performance.now() - t0) / 1000).toFixed(0)} s`,
      ]);
      log(`  ${rows[rows.length - 1]!.join('  ')}`);
    }
  }
  const width = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  log('');
  for (const r of rows) log('  ' + r.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join('  '));
  return lines;
}
