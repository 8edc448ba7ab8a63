import { AxcError, renderDiagnostics, type RenderOptions } from '../diagnostics/index.js';
import { ModelFileError } from '../onnx/index.js';

/** Exit codes: 0 success, 1 user error (bad input, failed verification), 2 internal error. */
export const EXIT_OK = 0;
export const EXIT_USER = 1;
export const EXIT_INTERNAL = 2;

export const isTTY = (): boolean => Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;

/** Print an error the way a compiler does and return the exit code. Stack traces only for internal errors. */
export function reportError(e: unknown, render: RenderOptions = {}): number {
  if (e instanceof AxcError) {
    process.stderr.write(renderDiagnostics(e.diagnostics, { color: Boolean(process.stderr.isTTY), ...render }) + '\n');
    return e.diagnostics.some((d) => d.code.startsWith('AX9')) ? EXIT_INTERNAL : EXIT_USER;
  }
  if (e instanceof ModelFileError) {
    process.stderr.write(`error AX1001: ${e.message}\n`);
    return EXIT_USER;
  }
  const err = e as Error;
  process.stderr.write(`axc: internal error: ${err?.message ?? String(e)}\n`);
  if (process.env.AXC_DEBUG && err?.stack) process.stderr.write(err.stack + '\n');
  else process.stderr.write('(set AXC_DEBUG=1 for a stack trace; please report this as a bug)\n');
  return EXIT_INTERNAL;
}

/** Wrap an async action so errors become messages and exit codes. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void> | number | void) {
  return async (...args: A): Promise<void> => {
    let code = EXIT_OK;
    try {
      const r = await fn(...args);
      if (typeof r === 'number') code = r;
    } catch (e) {
      code = reportError(e);
    }
    process.exitCode = code;
  };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatCount(n: number): string {
  if (n < 1e3) return String(n);
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} k`;
  if (n < 1e9) return `${(n / 1e6).toFixed(2)} M`;
  return `${(n / 1e9).toFixed(2)} G`;
}

/** A plain-text table with aligned columns. */
export function table(rows: string[][], align: ('l' | 'r')[] = []): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => ((align[i] ?? 'l') === 'r' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
