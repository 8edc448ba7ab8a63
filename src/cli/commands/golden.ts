import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { AxcError, diag, renderDiagnostics } from '../../diagnostics/index.js';
import type { DataDecl, DataFormat, OutputTolerance } from '../../pass/plan.js';
import { checkGolden, createSession, loadDataset, renderVerifyResult, writeGolden } from '../../verify/index.js';
import { action, formatBytes } from '../util.js';

interface GoldenOpts {
  data?: string;
  output?: string;
  check?: string;
  format?: string;
  tokenizer?: string;
  text?: string;
  label?: string;
  limit?: string;
  offset?: string;
  split?: string;
  maxLength?: string;
  batch?: string;
  force?: boolean;
  atol?: string;
  rtol?: string;
  cosine?: string;
  argmax?: string;
  threads?: string;
}

const FORMATS: DataFormat[] = ['jsonl', 'text-jsonl', 'tsv', 'onnx-testdata'];

function usage(message: string): never {
  throw new AxcError(diag('AX0003', 'error', message));
}

function int(v: string | undefined, flag: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) usage(`${flag} must be a whole number of at least ${min}, got '${v}'`);
  return n;
}

function num(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) usage(`${flag} must be a non-negative number, got '${v}'`);
  return n;
}

/** The data format from --format, else from the path: a folder is onnx-testdata, .tsv is tsv, .jsonl is jsonl (text-jsonl with --tokenizer). */
function formatOf(p: string, opts: GoldenOpts): DataFormat {
  if (opts.format) {
    if (!FORMATS.includes(opts.format as DataFormat))
      usage(`--format must be one of ${FORMATS.join(', ')}, got '${opts.format}'`);
    return opts.format as DataFormat;
  }
  if (fs.existsSync(p) && fs.statSync(p).isDirectory()) return 'onnx-testdata';
  if (/\.tsv$/i.test(p)) return 'tsv';
  return opts.tokenizer ? 'text-jsonl' : 'jsonl';
}

export function register(program: Command): void {
  program
    .command('golden')
    .description(
      'store golden outputs of a model on data as ONNX test_data_set_N folders, or check a model against them (--check)',
    )
    .argument('<model>', 'ONNX model file')
    .option(
      '--data <path>',
      'data to run: token-id JSON lines, a TSV or text JSON lines (with --tokenizer), or a test data folder',
    )
    .option('-o, --output <dir>', 'folder to write test_data_set_N folders to')
    .option('--check <dir>', 'compare the model against the golden outputs in this folder instead of writing')
    .option('--format <format>', `data format: ${FORMATS.join(', ')} (default: from the path)`)
    .option('--tokenizer <file>', 'tokenizer.json for text data')
    .option('--text <field>', 'text field or column (default: sentence for TSV, text for JSON lines)')
    .option('--label <field>', 'label field or column (default: label)')
    .option('--limit <n>', 'use at most this many rows')
    .option('--offset <n>', 'skip this many rows first')
    .option('--split <half>', 'keep even or odd rows (by idx when the rows have one)')
    .option('--max-length <n>', 'truncate token sequences to this length')
    .option('--batch <n>', 'rows per batch and per test data set', '32')
    .option('--force', 'replace test data sets already in the output folder')
    .option('--atol <x>', 'with --check: absolute tolerance', '1e-5')
    .option('--rtol <x>', 'with --check: relative tolerance', '1e-4')
    .option('--cosine <x>', 'with --check: minimum cosine similarity')
    .option('--argmax <fraction>', 'with --check: minimum argmax agreement (0..1)')
    .option('--threads <n>', 'onnxruntime intra-op threads', '1')
    .action(
      action(async (model: string, opts: GoldenOpts) => {
        if (!fs.existsSync(model))
          throw new AxcError(diag('AX1001', 'error', `${model}: model file not found`, { kind: 'file', file: model }));
        const threads = int(opts.threads, '--threads', 1);
        if (opts.check) {
          if (opts.data || opts.output)
            usage('--check compares against stored outputs: do not give --data or --output');
          const tol: OutputTolerance = { output: '*', atol: num(opts.atol, '--atol'), rtol: num(opts.rtol, '--rtol') };
          const cos = num(opts.cosine, '--cosine');
          if (cos !== undefined) tol.cosine = cos;
          const am = num(opts.argmax, '--argmax');
          if (am !== undefined) tol.argmax = am;
          const r = await checkGolden(model, opts.check, [tol], { threads });
          process.stdout.write(renderVerifyResult(r, { names: { reference: 'golden', candidate: 'model' } }) + '\n');
          if (r.failures.length) process.stderr.write(renderDiagnostics(r.failures) + '\n');
          return r.pass ? 0 : 1;
        }
        if (!opts.data) usage('give --data <path> (the data to run the model on) and -o <dir>, or --check <dir>');
        if (!opts.output) usage('give -o <dir>: the folder to write test_data_set_N folders to');
        const format = formatOf(opts.data, opts);
        const decl: DataDecl = {
          name: path.basename(opts.data),
          format,
          path: path.resolve(opts.data),
          batch: int(opts.batch, '--batch', 1),
        };
        if (opts.tokenizer) decl.tokenizer = path.resolve(opts.tokenizer);
        if (opts.text) decl.text = opts.text;
        if (opts.label) decl.label = opts.label;
        const offset = int(opts.offset, '--offset', 0);
        if (offset !== undefined) decl.offset = offset;
        const maxLength = int(opts.maxLength, '--max-length', 2);
        if (maxLength !== undefined) decl.maxLength = maxLength;
        if (opts.split !== undefined) {
          if (opts.split !== 'even' && opts.split !== 'odd') usage(`--split must be even or odd, got '${opts.split}'`);
          decl.split = opts.split;
        }
        const limit = int(opts.limit, '--limit', 1);
        if (limit !== undefined) decl.limit = limit;
        const session = await createSession(model, { threads });
        const names = { inputs: [...session.inputNames], outputs: [...session.outputNames] };
        await session.release();
        const data = await loadDataset(decl, { modelInputs: names.inputs, modelOutputs: names.outputs });
        const s = await writeGolden(model, data, opts.output, { threads, overwrite: opts.force });
        process.stdout.write(
          `wrote ${s.sets} test data set(s) of ${s.rows} rows to ${s.dir} (${formatBytes(s.bytes)}; inputs ${s.inputs.join(', ')}; outputs ${s.outputs.join(', ')})\n`,
        );
      }),
    );
}
