/**
 * `npm run bench -- pipeline`: what axc's speed pipeline buys in onnxruntime-node, measured in this run.
 *
 * Models: the real SST-2 BERT-mini (/work/shared, 4 layers, hidden 256) and a generated BERT-base-sized model
 * (12 layers, hidden 768, random weights, cached in bench/.cache). Every model runs with onnxruntime's own graph
 * optimizations on ('all'), 1 intra-op thread, batch 1 and 32, sequence 128, runs alternating between models.
 *
 * Variants:
 * - original: the export as it is;
 * - ORT-tools-equivalent: what onnxruntime's Python transformer optimizer + quantize_dynamic produce, EMULATED with
 *   axc passes (no Python onnxruntime here): SkipLayerNormalization and BiasGelu fusions (the optimizer fuses no
 *   attention on current Hugging Face exports), then dynamic int8 MatMulInteger with per-tensor weight scales for
 *   every MatMul, and int8 embedding tables (quantize_dynamic also quantizes Gather);
 * - axc quantize+fuse: golden/plans/speed.ax (fuse com.microsoft Attention, Gelu and BiasGelu, then dynamic int8 in
 *   axc's measured-fastest form with per-channel scales, the fused attention as QAttention, 4-bit embedding tables);
 * - axc prune+quantize+fuse (BERT-mini): 60% of the encoder pruned by significance measured on the even dev
 *   sentences (see PRUNE_PLAN), accuracy on the odd ones.
 *
 * Targets (printed as MET / MISSED with the figure): quantize+fuse >= 2x the original and >= 1.3x the
 * ORT-tools-equivalent; prune+quantize+fuse >= 3x faster and >= 5x smaller than the original, accuracy within 0.5
 * points.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { benchModels, benchTable, type BenchEntry } from '../src/bench/index.js';
import { compile } from '../src/compile.js';
import { loadModel, saveModel } from '../src/onnx/index.js';
import { getPass, PassManager } from '../src/pass/index.js';

export interface PipelineOptions {
  /** /work/shared (models/, data/). */
  shared: string;
  /** Repository root (golden/ plans and data). */
  root: string;
  cacheDir: string;
  /** Makes the BERT-base-sized model file when it is missing. */
  generateBase?: (file: string) => Promise<void> | void;
  /** Timed runs at batch 1 (batch 32 uses a fifth, at least 3). */
  runs?: number;
  threads?: number;
  /** Also measure top-k attention's cost per formulation (default true). */
  topk?: boolean;
  log?: (line: string) => void;
}

const ORT_EQUIVALENT_PLAN = `# ORT-tools-equivalent (emulated): optimizer fusions without attention, then quantize_dynamic defaults
fuse layernorm, gelu, skip-layernorm, bias-gelu
quantize matmul, gather granularity per-tensor form matmul-integer
`;

/**
 * Prune + quantize + fuse on BERT-mini: significance by loss on the even dev sentences, 60% of the encoder removed
 * (re-scored as it goes, max-drop 1 point on them, least-squares compensation), accuracy on the odd ones. Chosen by
 * `npm run bench -- prune-cv`: in 2-fold cross-validation over the 872 dev sentences this criterion keeps accuracy
 * (+0.23 points at 60%) where weight-norm loses 4.47 points (1.49 with the data guard). Train sentences measured
 * worse as calibration data (-0.69 points at 40%, by loss or kl): the model fits its own train set (95.5% there).
 */
const PRUNE_PLAN = (
  dev: string,
) => `# prune + quantize + fuse on BERT-mini: significance on even dev sentences, accuracy on odd ones
data sig = jsonl "${dev}" label "label" split even
data held = jsonl "${dev}" label "label" split odd
significance heads, ffn-groups(64), blocks on sig by loss
prune budget 60% params max-drop 1 compensate true
fuse attention, gelu, bias-gelu
quantize matmul
quantize gather int4 block-size 32
# the target is 0.5 points; the gate is looser so the bench measures (and reports) the model even when it misses
verify on held: accuracy drop <= 1.5 points
`;

interface Variant {
  name: string;
  file: string;
}

async function compileTo(
  model: string,
  planSource: string,
  planFile: string,
  out: string,
  log: (l: string) => void,
  threads: number,
): Promise<string | undefined> {
  const t0 = performance.now();
  // compiled outputs are cached by plan text and input model (size and time): delete bench/.cache to redo them
  const st = fs.statSync(model);
  const key = createHash('sha1')
    .update(`${planSource}\n${model}\n${st.size}\n${st.mtimeMs}`)
    .digest('hex')
    .slice(0, 10);
  out = out.replace(/\.onnx$/, `.${key}.onnx`);
  if (fs.existsSync(out)) {
    log(`  ${path.basename(out)}: cached (same plan and model)`);
    return out;
  }
  try {
    const r = await compile({ model, plan: { source: planSource, file: planFile }, output: out, threads });
    const steps = r.steps.map((s) => `${s.pass}: ${s.summary ?? ''}`).join('; ');
    log(
      `  ${path.basename(out)}: ${steps} (${((performance.now() - t0) / 1000).toFixed(1)} s)${r.ok ? '' : ' VERIFY FAILED'}`,
    );
    for (const v of r.verification) {
      const m = v.metrics;
      if (m.original && m.compiled)
        log(
          `    verify on ${v.data}: accuracy ${(m.original.accuracy * 100).toFixed(2)}% -> ${(m.compiled.accuracy * 100).toFixed(2)}% (${m.compiled.rows} rows)`,
        );
    }
    return r.ok ? out : undefined;
  } catch (e) {
    log(`  ${path.basename(out)}: compile failed: ${(e as Error).message.split('\n')[0]}`);
    return undefined;
  }
}

function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}x`;
}

function target(label: string, a: BenchEntry, b: BenchEntry, want: number): string {
  const got = a.medianMs / b.medianMs;
  const p10 = a.p10Ms / b.p10Ms;
  return `  ${got >= want ? 'MET   ' : 'MISSED'} ${label}: ${got.toFixed(2)}x by median, ${p10.toFixed(2)}x by p10 (target >= ${want}x)`;
}

/** Runs the pipeline benchmark and returns the printed lines. */
export async function benchPipeline(o: PipelineOptions): Promise<string[]> {
  const lines: string[] = [];
  const log = (l: string) => {
    lines.push(l);
    (o.log ?? console.log)(l);
  };
  const threads = o.threads ?? 1;
  const runs = o.runs ?? 30;
  fs.mkdirSync(o.cacheDir, { recursive: true });
  const devJsonl = path.join(o.root, 'golden/sst2/dev.jsonl');
  // held-out half for accuracy figures: the odd dev sentences (significance for pruning uses the even ones)
  const heldOut = path.join(o.cacheDir, 'dev-odd.jsonl');
  fs.writeFileSync(
    heldOut,
    fs
      .readFileSync(devJsonl, 'utf8')
      .split('\n')
      .filter((l) => l.trim() && (JSON.parse(l) as { idx: number }).idx % 2 === 1)
      .join('\n') + '\n',
  );
  const fullPlan = path.join(o.root, 'golden/plans/speed.ax');
  const planDir = path.join(o.root, 'golden/plans');
  log('ORT-tools-equivalent is an EMULATION with axc passes (no Python onnxruntime here): SkipLayerNormalization +');
  log("BiasGelu fusion (no attention fusion, as onnxruntime's optimizer on current HF exports) + quantize_dynamic");
  log('defaults (MatMulInteger, per-tensor int8 weights, int8 embedding tables).');

  const models: { name: string; file: string; real: boolean }[] = [];
  const mini = path.join(o.shared, 'models/sst2-bert-mini/model.onnx');
  if (fs.existsSync(mini)) models.push({ name: 'sst2-bert-mini', file: mini, real: true });
  else log(`(${mini} not found: BERT-mini skipped)`);
  const base = path.join(o.cacheDir, 'bert-base-generated.onnx');
  if (!fs.existsSync(base) && o.generateBase) await o.generateBase(base);
  if (fs.existsSync(base)) models.push({ name: 'bert-base (generated)', file: base, real: false });

  for (const m of models) {
    log('');
    log(`== ${m.name}: ${m.file} ==`);
    const stem = path.join(o.cacheDir, path.basename(path.dirname(m.file)) + '-' + path.basename(m.file, '.onnx'));
    const variants: Variant[] = [{ name: 'original', file: m.file }];
    const ortEq = await compileTo(
      m.file,
      ORT_EQUIVALENT_PLAN,
      path.join(planDir, 'ort-equivalent.ax'),
      `${stem}.ort-equivalent.onnx`,
      log,
      threads,
    );
    if (ortEq) variants.push({ name: 'ORT-tools-equivalent (emulated)', file: ortEq });
    const axc = await compileTo(
      m.file,
      fs.readFileSync(fullPlan, 'utf8'),
      fullPlan,
      `${stem}.axc-full.onnx`,
      log,
      threads,
    );
    if (axc) variants.push({ name: 'axc quantize+fuse', file: axc });
    if (m.real) {
      if (getPass('prune') && getPass('significance')) {
        const pr = await compileTo(
          m.file,
          PRUNE_PLAN(devJsonl),
          path.join(planDir, 'prune-full.ax'),
          `${stem}.axc-prune-full.onnx`,
          log,
          threads,
        );
        if (pr) variants.push({ name: 'axc prune+quantize+fuse', file: pr });
      } else log('  (prune pass not registered yet: prune+quantize+fuse skipped)');
    }
    const entries: BenchEntry[] = [];
    for (const batch of [1, 32]) {
      const r = await benchModels(
        variants.map((v) => v.file),
        {
          batch: [batch],
          seq: [128],
          runs: batch === 1 ? runs : Math.max(3, Math.round(runs / 5)),
          threads,
          optimization: 'all',
          ...(m.real && batch === 1 ? { data: [{ name: 'dev-odd', path: heldOut }] } : {}),
        },
      );
      entries.push(...r.models);
    }
    const names = new Map(variants.map((v) => [v.file, v.name]));
    const rows = benchTable({ models: entries, threads, optimization: 'all', onnxruntime: '' });
    rows[0]![0] = 'variant';
    for (let i = 1; i < rows.length; i++) rows[i]![0] = names.get(entries[i - 1]!.path) ?? rows[i]![0]!;
    const width = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const r of rows)
      log('  ' + r.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join('  '));
    // accuracy measured once (batch 1 pass, full dev set) applies to every shape
    for (const batch of [1, 32]) {
      const at = (name: string) => entries.find((e) => e.batch === batch && names.get(e.path) === name);
      const orig = at('original');
      const eq = at('ORT-tools-equivalent (emulated)');
      const ax = at('axc quantize+fuse');
      const pr = at('axc prune+quantize+fuse');
      log(`  batch ${batch}, seq 128:`);
      if (orig && ax) log(target('quantize+fuse vs original', orig, ax, 2));
      if (eq && ax) log(target('quantize+fuse vs ORT-tools-equivalent', eq, ax, 1.3));
      if (orig && eq) log(`         ORT-tools-equivalent vs original: ${ratio(orig.medianMs, eq.medianMs)}`);
      if (orig && pr) {
        log(target('prune+quantize+fuse vs original (speed)', orig, pr, 3));
        if (batch === 1) {
          const size = orig.totalBytes / pr.totalBytes;
          log(
            `  ${size >= 5 ? 'MET   ' : 'MISSED'} prune+quantize+fuse vs original (size): ${size.toFixed(2)}x smaller (target >= 5x)`,
          );
        }
      }
    }
    const accs = entries.filter((e) => e.batch === 1 && e.accuracy !== null);
    if (accs.length) {
      const a0 = accs[0]!.accuracy!;
      const prAcc = accs.find((e) => names.get(e.path) === 'axc prune+quantize+fuse')?.accuracy;
      if (prAcc !== undefined && prAcc !== null) {
        const drop = (a0 - prAcc) * 100;
        log(
          `  ${drop <= 0.5 ? 'MET   ' : 'MISSED'} prune+quantize+fuse held-out accuracy: ${drop > 0 ? `${drop.toFixed(2)} points lost` : `${(-drop).toFixed(2)} points gained`} (target: at most 0.5 lost)`,
        );
      }
      log(
        `  accuracy on the 436 odd (held-out) dev sentences: ${accs
          .map(
            (e) =>
              `${names.get(e.path)} ${(e.accuracy! * 100).toFixed(2)}% (${((e.accuracy! - a0) * 100).toFixed(2)} points)`,
          )
          .join('; ')}`,
      );
    }
  }
  if (o.topk !== false && models[0]?.real) await benchTopk(models[0].file, o.cacheDir, heldOut, runs, threads, log);
  return lines;
}

/**
 * What top-k attention (k = 16 in every layer) costs in onnxruntime, per formulation, at sequence 128 and 512:
 * dense (TopK + ScatterElements), threshold (TopK + Where against the k-th value), gather (TopK + GatherElements of
 * the k value rows + a small MatMul).
 */
export async function benchTopk(
  model: string,
  cacheDir: string,
  heldOut: string,
  runs: number,
  threads: number,
  log: (l: string) => void,
): Promise<void> {
  log('');
  log(`== top-k attention (k 16, all layers) on ${model}: cost per formulation ==`);
  const files = [model];
  const names = new Map<string, string>([[model, 'original (dense softmax)']]);
  for (const formulation of ['dense', 'threshold', 'gather'] as const) {
    const m = loadModel(model);
    await new PassManager().run(m, [{ pass: 'topk-attention', options: { k: 16, formulation } }]);
    const file = path.join(cacheDir, `${path.basename(path.dirname(model))}.topk16-${formulation}.onnx`);
    if (fs.existsSync(file)) fs.rmSync(file);
    saveModel(m, file);
    files.push(file);
    names.set(file, `top-16 ${formulation}`);
  }
  for (const seq of [128, 512]) {
    const r = await benchModels(files, {
      batch: [1],
      seq: [seq],
      runs,
      threads,
      optimization: 'all',
      ...(seq === 128 ? { data: [{ name: 'dev-odd', path: heldOut }] } : {}),
    });
    const rows = benchTable(r);
    rows[0]![0] = 'variant';
    for (let i = 1; i < rows.length; i++) rows[i]![0] = names.get(r.models[i - 1]!.path) ?? rows[i]![0]!;
    const width = rows[0]!.map((_, c) => Math.max(...rows.map((x) => x[c]!.length)));
    for (const x of rows)
      log('  ' + x.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join('  '));
  }
}
