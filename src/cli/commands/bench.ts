import type { Command } from 'commander';
import { AxcError, diag } from '../../diagnostics/index.js';
import { benchModels, benchTable, type BenchOptions } from '../../bench/index.js';
import { action, table } from '../util.js';

function numberList(flag: string, s: string): number[] {
  const out = s.split(',').map((x) => Number(x.trim()));
  if (out.length === 0 || out.some((v) => !Number.isInteger(v) || v < 1))
    throw new AxcError(
      diag('AX4103', 'error', `${flag}: expected positive whole numbers separated by commas, got '${s}'`),
    );
  return out;
}

function positive(flag: string, s: string): number {
  const v = Number(s);
  if (!Number.isInteger(v) || v < 1)
    throw new AxcError(diag('AX4103', 'error', `${flag}: expected a positive whole number, got '${s}'`));
  return v;
}

interface BenchCliOptions {
  data: string[];
  batch: string;
  seq: string;
  runs: string;
  warmup?: string;
  threads: string;
  optimization: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('bench')
    .description(
      'measure latency (median, p10, p90) and throughput in onnxruntime-node, runs alternating between models; size, parameters, accuracy',
    )
    .argument('<models...>', 'ONNX model files (speedups are relative to the first)')
    .option(
      '--data <NAME=PATH>',
      'labelled data for accuracy (.jsonl token ids with label, or a test_data_set folder); repeatable',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option('--batch <list>', 'batch sizes, comma separated', '1')
    .option('--seq <list>', 'sequence lengths, comma separated', '128')
    .option('--runs <n>', 'timed runs per model and shape', '50')
    .option('--warmup <n>', 'untimed runs first (default max(3, runs/10))')
    .option('--threads <n>', 'onnxruntime intra-op threads', '1')
    .option('--optimization <level>', 'onnxruntime graph optimization: disabled, basic, extended, all', 'all')
    .option(
      '--json',
      'print JSON: {"models": [{path, bytes, parameters, batch, seq, medianMs, p10Ms, p90Ms, speedup, accuracy, ...}]}',
    )
    .action(
      action(async (models: string[], o: BenchCliOptions) => {
        const levels = ['disabled', 'basic', 'extended', 'all'] as const;
        const level = levels.find((l) => l === o.optimization);
        if (!level)
          throw new AxcError(
            diag('AX4103', 'error', `--optimization must be one of ${levels.join(', ')}, got '${o.optimization}'`),
          );
        const data = o.data.map((d) => {
          const i = d.indexOf('=');
          if (i <= 0 || i === d.length - 1)
            throw new AxcError(diag('AX4103', 'error', `--data expects NAME=PATH, got '${d}'`));
          return { name: d.slice(0, i), path: d.slice(i + 1) };
        });
        const opts: BenchOptions = {
          batch: numberList('--batch', o.batch),
          seq: numberList('--seq', o.seq),
          runs: positive('--runs', o.runs),
          threads: positive('--threads', o.threads),
          optimization: level,
          data,
        };
        if (o.warmup !== undefined) opts.warmup = positive('--warmup', o.warmup);
        if (!o.json && process.stderr.isTTY)
          opts.progress = (label, done, total) => process.stderr.write(`\r${label}: run ${done}/${total}   `);
        const r = await benchModels(models, opts);
        if (!o.json && process.stderr.isTTY) process.stderr.write('\r\x1b[K');
        if (o.json) {
          process.stdout.write(JSON.stringify(r, null, 2) + '\n');
          return;
        }
        const rows = benchTable(r);
        process.stdout.write(
          `onnxruntime ${r.onnxruntime}, ${r.threads} thread(s), optimization ${r.optimization}, ${r.models[0]?.runs ?? 0} runs per model and shape\n` +
            table(rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r']) +
            '\n',
        );
      }),
    );
}
