import * as fs from 'node:fs';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { compile, PlanError, type CompileResult } from '../../compile.js';
import { renderDiagnostics } from '../../diagnostics/index.js';
import { renderVerifyResult } from '../../verify/index.js';
import { writeCompileReports } from '../../report/compile-report.js';
import { action, formatBytes, formatCount, isTTY, table, EXIT_OK, EXIT_USER } from '../util.js';

interface CompileCliOptions {
  plan: string;
  output?: string;
  data: string[];
  report?: string;
  html?: string;
  verifyEach?: boolean;
  printIrAfter: string[];
  dumpDir?: string;
  quiet?: boolean;
  externalData?: boolean;
  threads?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function register(program: Command): void {
  program
    .command('compile')
    .description('run a plan on a model, verify the result against the original, write it atomically')
    .argument('<model>', 'input ONNX model')
    .requiredOption('-p, --plan <plan.ax>', 'the plan to run')
    .option('-o, --output <out.onnx>', 'output model (never the input); omit to check and verify only')
    .option('--data <NAME=PATH>', 'override a data source of the plan (repeatable)', collect, [])
    .option('--report <report.json>', 'write a JSON report')
    .option('--html <report.html>', 'write an HTML report')
    .option('--verify-each', 'verify after every step that changed the model')
    .option('--print-ir-after <pass>', "print the IR after a pass ('all' for every pass; repeatable)", collect, [])
    .option('--dump-dir <dir>', 'write the IR text after every step into this folder')
    .option('--external-data', 'write weights to <output>.data')
    .option('--threads <n>', 'onnxruntime threads (default: all cores)')
    .option('-q, --quiet', 'print only errors')
    .action(
      action(async (modelPath: string, o: CompileCliOptions) => {
        const data: Record<string, string> = {};
        for (const kv of o.data) {
          const i = kv.indexOf('=');
          if (i <= 0) {
            process.stderr.write(`error AX0001: --data expects NAME=PATH, got '${kv}'\n`);
            return EXIT_USER;
          }
          data[kv.slice(0, i)] = kv.slice(i + 1);
        }
        const out = (s: string) => {
          if (!o.quiet) process.stdout.write(s + '\n');
        };
        let bar: cliProgress.SingleBar | undefined;
        let barLabel = '';
        const progress =
          isTTY() && !o.quiet
            ? (label: string, done: number, total: number) => {
                if (label !== barLabel) {
                  bar?.stop();
                  barLabel = label;
                  bar = new cliProgress.SingleBar(
                    { format: `  ${label} [{bar}] {value}/{total}`, clearOnComplete: true, hideCursor: true },
                    cliProgress.Presets.shades_classic,
                  );
                  bar.start(total, done);
                } else bar?.update(done);
                if (done >= total) {
                  bar?.stop();
                  bar = undefined;
                  barLabel = '';
                }
              }
            : undefined;
        let result: CompileResult;
        try {
          result = await compile({
            model: modelPath,
            plan: o.plan,
            output: o.output,
            data,
            verifyEach: o.verifyEach,
            printIrAfter: o.printIrAfter,
            dumpDir: o.dumpDir,
            externalData: o.externalData,
            threads: o.threads ? Number(o.threads) : undefined,
            log: (l) => out(l),
            progress,
          });
        } catch (e) {
          bar?.stop();
          if (e instanceof PlanError) {
            process.stderr.write(
              renderDiagnostics(e.diagnostics, {
                sources: { [e.file]: e.source },
                color: Boolean(process.stderr.isTTY),
              }) + '\n',
            );
            return EXIT_USER;
          }
          throw e;
        }
        bar?.stop();
        const planSource = fs.readFileSync(o.plan, 'utf8');
        if (result.diagnostics.length)
          process.stderr.write(
            renderDiagnostics(result.diagnostics, {
              sources: { [o.plan]: planSource },
              color: Boolean(process.stderr.isTTY),
            }) + '\n',
          );
        out(summaryText(result));
        if (o.report || o.html) await writeReports(result, o.report, o.html);
        if (!result.ok) {
          process.stderr.write(
            renderDiagnostics(result.failures, {
              sources: { [o.plan]: planSource },
              color: Boolean(process.stderr.isTTY),
            }) + '\n',
          );
          process.stderr.write(`axc: verification failed: nothing was written${o.output ? ` to ${o.output}` : ''}\n`);
          return EXIT_USER;
        }
        return EXIT_OK;
      }),
    );
}

async function writeReports(result: CompileResult, json?: string, html?: string): Promise<void> {
  await writeCompileReports(result, { json, html });
}

export function summaryText(r: CompileResult): string {
  const lines: string[] = [];
  lines.push(`axc compile: ${r.before.path} with ${r.plan.file}`);
  const rows = [['  step', 'at', 'changed', 'ms', 'effect']];
  for (const s of r.steps) {
    const stats = Object.entries(s.stats)
      .filter(([, v]) => v !== 0)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    rows.push(['  ' + s.pass, s.at ?? '', s.changed ? 'yes' : 'no', s.ms.toFixed(0), s.summary ?? stats]);
  }
  lines.push(table(rows, ['l', 'l', 'l', 'r', 'l']));
  const pct = (a: number, b: number) => (b ? `${(((a - b) / b) * 100).toFixed(1)}%` : '');
  lines.push(
    `  size: ${formatBytes(r.before.bytes)} -> ${formatBytes(r.after.bytes)} (${pct(r.after.bytes, r.before.bytes)}); parameters ${formatCount(r.before.parameters)} -> ${formatCount(r.after.parameters)} (${pct(r.after.parameters, r.before.parameters)}); nodes ${r.before.nodes} -> ${r.after.nodes}`,
  );
  for (const v of r.verification) lines.push(renderVerifyResult(v));
  lines.push(
    r.ok
      ? r.after.path
        ? `  wrote ${r.after.path} in ${(r.totalMs / 1000).toFixed(1)} s`
        : `  ok (nothing written: no -o)`
      : '  FAILED',
  );
  return lines.join('\n');
}
