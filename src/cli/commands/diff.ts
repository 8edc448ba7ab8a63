import * as fs from 'node:fs';
import type { Command } from 'commander';
import { AxcError, diag } from '../../diagnostics/index.js';
import { diffFiles, diffJson, diffText } from '../../diff/index.js';
import { renderDiffHtml } from '../../report/html.js';
import { EXIT_INTERNAL, isTTY, reportError } from '../util.js';

/** Exit codes like diff(1): 0 the models are the same, 1 they differ, 2 trouble (bad file, bad option). */
export const DIFF_SAME = 0;
export const DIFF_DIFFERENT = 1;

export interface DiffCliOptions {
  json?: boolean;
  html?: string;
  seq?: string;
  color?: boolean;
}

export function runDiff(beforePath: string, afterPath: string, opts: DiffCliOptions): number {
  let seq = 128;
  if (opts.seq !== undefined) {
    seq = Number(opts.seq);
    if (!Number.isInteger(seq) || seq < 1)
      throw new AxcError(
        diag('AX7001', 'error', `--seq ${opts.seq}: the sequence length must be a positive integer`, {
          kind: 'none',
        }),
      );
  }
  const r = diffFiles(beforePath, afterPath, { seq });
  if (opts.html) {
    try {
      fs.writeFileSync(opts.html, renderDiffHtml(r));
    } catch (e) {
      throw new AxcError(
        diag(
          'AX7002',
          'error',
          `--html ${opts.html}: cannot write the page: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
          {
            kind: 'file',
            file: opts.html,
          },
        ),
      );
    }
  }
  process.stdout.write(opts.json ? diffJson(r.diff) : diffText(r.diff, { color: opts.color ?? isTTY() }));
  return r.diff.same ? DIFF_SAME : DIFF_DIFFERENT;
}

export function register(program: Command): void {
  program
    .command('diff')
    .description(
      'what changed between two models: per layer (heads removed, numbered as in the original; FFN width; blocks; attention kind; precision), totals, then node by node with the pass that made each new node. Exit 0 same, 1 different, 2 error',
    )
    .argument('<before>', 'the original ONNX model')
    .argument('<after>', 'the transformed ONNX model')
    .option('--json', 'print JSON (schema axc.diff/1, see docs/report-schema.md)')
    .option('--html <file>', 'also write a self-contained HTML page (summary table, side-by-side layer graphs)')
    .option('--seq <n>', 'sequence length for multiply-add counts', '128')
    .action((before: string, after: string, opts: DiffCliOptions) => {
      let code: number;
      try {
        code = runDiff(before, after, opts);
      } catch (e) {
        reportError(e);
        code = EXIT_INTERNAL;
      }
      process.exitCode = code;
    });
}
