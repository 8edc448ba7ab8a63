/**
 * Diagnostics: every user-facing message has a stable code (AXnnnn), a severity and a location.
 * Code ranges: AX1xxx model files and IR invariants, AX2xxx plan syntax and semantics, AX3xxx passes,
 * AX4xxx verification, AX5xxx data sources, AX9xxx internal errors.
 */

export type Severity = 'error' | 'warning' | 'note';

export interface SourceSpan {
  file: string;
  /** 1-based line and column of the first character. */
  line: number;
  col: number;
  endLine?: number;
  endCol?: number;
  /** 0-based character offsets, when known. */
  start?: number;
  end?: number;
}

export type Location =
  | ({ kind: 'plan' } & SourceSpan)
  | { kind: 'node'; node: string; op?: string; graph?: string }
  | { kind: 'file'; file: string; offset?: number }
  | { kind: 'none' };

export interface Diagnostic {
  code: string;
  severity: Severity;
  message: string;
  location: Location;
  /** Extra lines (notes, hints such as "did you mean"). */
  notes?: string[];
}

export function diag(
  code: string,
  severity: Severity,
  message: string,
  location: Location = { kind: 'none' },
  notes?: string[],
): Diagnostic {
  const d: Diagnostic = { code, severity, message, location };
  if (notes && notes.length) d.notes = notes;
  return d;
}

export const nodeLoc = (node: string, op?: string, graph?: string): Location => {
  const l: Location = { kind: 'node', node };
  if (op) l.op = op;
  if (graph) l.graph = graph;
  return l;
};

/** An error that carries diagnostics: a user mistake (exit 1), never printed with a stack trace. */
export class AxcError extends Error {
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: Diagnostic[] | Diagnostic) {
    const ds = Array.isArray(diagnostics) ? diagnostics : [diagnostics];
    super(ds.map((d) => `${d.code}: ${d.message}`).join('\n'));
    this.name = 'AxcError';
    this.diagnostics = ds;
  }
  get code(): string {
    return this.diagnostics[0]?.code ?? 'AX9000';
  }
}

export function hasErrors(ds: readonly Diagnostic[]): boolean {
  return ds.some((d) => d.severity === 'error');
}

export interface RenderOptions {
  /** Source texts by file name, to print the offending line and a caret. */
  sources?: Map<string, string> | Record<string, string>;
  color?: boolean;
}

const COLORS: Record<Severity, string> = { error: '\x1b[31m', warning: '\x1b[33m', note: '\x1b[36m' };

/** Render like a compiler: `plan.ax:4:3: error AX2003: message`, then the source line and a caret. */
export function renderDiagnostic(d: Diagnostic, opts: RenderOptions = {}): string {
  const c = (s: string, code: string) => (opts.color ? `${code}${s}\x1b[0m` : s);
  const sev = c(d.severity, COLORS[d.severity]);
  const loc = d.location;
  let head: string;
  const lines: string[] = [];
  switch (loc.kind) {
    case 'plan': {
      head = `${loc.file}:${loc.line}:${loc.col}: ${sev} ${d.code}: ${d.message}`;
      const src = opts.sources instanceof Map ? opts.sources.get(loc.file) : opts.sources?.[loc.file];
      if (src !== undefined) {
        const text = src.split(/\r?\n/)[loc.line - 1];
        if (text !== undefined) {
          const gutter = String(loc.line).padStart(4);
          lines.push(`${gutter} | ${text}`);
          const width =
            loc.endLine === loc.line && loc.endCol !== undefined ? Math.max(1, loc.endCol - loc.col + 1) : 1;
          lines.push(
            `${' '.repeat(4)} | ${' '.repeat(Math.max(0, loc.col - 1))}${c('^' + '~'.repeat(width - 1), COLORS[d.severity])}`,
          );
        }
      }
      break;
    }
    case 'node':
      head = `${sev} ${d.code}: ${d.message}`;
      lines.push(
        `  at node '${loc.node}'${loc.op ? ` (${loc.op})` : ''}${loc.graph ? ` in graph '${loc.graph}'` : ''}`,
      );
      break;
    case 'file':
      head = `${loc.file}${loc.offset !== undefined ? `@${loc.offset}` : ''}: ${sev} ${d.code}: ${d.message}`;
      break;
    default:
      head = `${sev} ${d.code}: ${d.message}`;
  }
  for (const n of d.notes ?? []) lines.push(`  = ${n}`);
  return [head, ...lines].join('\n');
}

export function renderDiagnostics(ds: readonly Diagnostic[], opts: RenderOptions = {}): string {
  return ds.map((d) => renderDiagnostic(d, opts)).join('\n');
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  let prev = Array.from({ length: n + 1 }, (_, j) => j);
  for (let i = 1; i <= m; i++) {
    const cur = [i];
    for (let j = 1; j <= n; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[n]!;
}

/** The closest candidate within a distance proportional to the word's length, if any. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}
