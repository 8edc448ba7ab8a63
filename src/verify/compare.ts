/**
 * Compare two runs over the same data: numeric error statistics per output, tolerance checks, argmax agreement and
 * task metrics (accuracy, binary F1) on labelled data. Failures are diagnostics located at the verify statement.
 */
import { AxcError, diag, didYouMean, type Diagnostic } from '../diagnostics/index.js';
import { locOf } from '../pass/types.js';
import type { OutputTolerance, VerifySpec } from '../pass/plan.js';
import type { Dataset } from './data.js';
import { runDataset, type ModelSource, type OutputRows, type RunOptions, type RunResult } from './runner.js';

export interface ToleranceCheck {
  atol: number;
  rtol: number;
  /** Elements outside atol + rtol·|reference|. */
  violations: number;
  /** Smallest atol that passes at this rtol (Infinity when a NaN or infinity differs). */
  passingAtol: number;
  /** Smallest rtol that passes at this atol (Infinity when a reference value is 0 and the error exceeds atol). */
  passingRtol: number;
}

export interface OutputComparison {
  name: string;
  elements: number;
  rows: number;
  maxAbsError: number;
  meanAbsError: number;
  /** max |a - b| / |b| over elements whose reference b is not 0. */
  maxRelError: number;
  cosine: number;
  /**
   * Fraction of vectors along the last axis whose argmax agrees: one vector per row for classifier outputs
   * (undefined when the last axis has one element).
   */
  argmaxAgreement?: number;
  argmaxAgreeRows?: number;
  argmaxRows?: number;
  /** Row holding the largest absolute error, and where it came from. */
  worstRow: number;
  worstWhere?: string;
  /** Count of elements where exactly one side is NaN or they differ as infinities. */
  nonFinite: number;
  tolerance?: ToleranceCheck;
  /** Required minimums from the spec, when given. */
  minCosine?: number;
  minArgmax?: number;
  /** |compiled − original| per element in log-decade bins (for reports). */
  histogram?: ErrorHistogram;
  pass: boolean;
}

/** Counts of |candidate − reference| per bin: bin 0 holds exact zeros, then decades [10^e, 10^(e+1)). */
export interface ErrorHistogram {
  /** Lower edges of the non-zero bins (powers of ten); errors below the first edge go to the first bin. */
  edges: number[];
  /** counts[0]: exactly equal elements; counts[i + 1]: elements with edges[i] <= error < edges[i + 1]. */
  counts: number[];
  elements: number;
}

const EDGES = Array.from({ length: 12 }, (_, i) => Number(`1e${i - 10}`)); // 1e-10 .. 1e1

export function errorHistogram(reference: ArrayLike<number>, candidate: ArrayLike<number>): ErrorHistogram {
  const counts = new Array<number>(EDGES.length + 1).fill(0);
  const n = Math.min(reference.length, candidate.length);
  for (let i = 0; i < n; i++) {
    const e = Math.abs(candidate[i]! - reference[i]!);
    if (e === 0) counts[0]!++;
    else if (!Number.isFinite(e)) counts[EDGES.length]!++;
    else {
      let b = Math.floor(Math.log10(e)) + 10;
      b = Math.max(0, Math.min(EDGES.length - 1, b));
      counts[b + 1]!++;
    }
  }
  return { edges: EDGES, counts, elements: n };
}

export interface TaskMetrics {
  rows: number;
  correct: number;
  accuracy: number;
  /** Binary F1 of class 1 (labels 0/1 and two classes only). */
  f1?: number;
}

export interface VerifyResult {
  pass: boolean;
  data: string;
  rows: number;
  /** What a row is: 'rows', or 'test data sets' for onnx-testdata (each set holds a whole batch). */
  rowUnit: string;
  outputs: OutputComparison[];
  metrics: {
    /** Metrics of the reference (original model, or stored golden outputs). */
    original?: TaskMetrics;
    compiled?: TaskMetrics;
    /** original − compiled accuracy, in percentage points. */
    accuracyDrop?: number;
    /** Output whose argmax is the prediction. */
    output?: string;
  };
  failures: Diagnostic[];
  /** Milliseconds spent in onnxruntime for each side. */
  timing?: { originalMs: number; compiledMs: number };
}

export interface CompareNames {
  reference: string;
  candidate: string;
}

const DEFAULT_NAMES: CompareNames = { reference: 'original', candidate: 'compiled' };

export interface VerifyOptions extends RunOptions {
  /**
   * The original model's run on this data, when already computed (e.g. verifying after every step): the original is
   * then not run again. Must come from the same data (same rows, same batch size).
   */
  reference?: RunResult;
}

/** Run both models on the data and compare them against `spec`. */
/** Say which model a load or run error came from. */
export async function labelModelErrors<T>(side: 'original' | 'compiled', run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (!(e instanceof AxcError)) throw e;
    throw new AxcError(e.diagnostics.map((d) => ({ ...d, message: `${side} model: ${d.message}` })));
  }
}

export async function verify(
  original: ModelSource,
  compiled: ModelSource,
  spec: VerifySpec,
  data: Dataset,
  opts: VerifyOptions = {},
): Promise<VerifyResult> {
  const ref = opts.reference ?? (await labelModelErrors('original', () => runDataset(original, data, opts)));
  if (ref.rows !== data.rows.length)
    throw new Error(`verify: the reference run has ${ref.rows} rows but data '${data.name}' has ${data.rows.length}`);
  const got = await labelModelErrors('compiled', () => runDataset(compiled, data, opts));
  const r = compareRuns(ref, got, spec, data);
  r.timing = { originalMs: opts.reference ? 0 : ref.runMs, compiledMs: got.runMs };
  return r;
}

function tolerancesFor(name: string, list: readonly OutputTolerance[]): OutputTolerance {
  const all = list.filter((t) => t.output === '*');
  const own = list.filter((t) => t.output === name);
  const merged: OutputTolerance = { output: name };
  for (const t of [...all, ...own]) {
    if (t.atol !== undefined) merged.atol = t.atol;
    if (t.rtol !== undefined) merged.rtol = t.rtol;
    if (t.cosine !== undefined) merged.cosine = t.cosine;
    if (t.argmax !== undefined) merged.argmax = t.argmax;
    if (t.span) merged.span = t.span;
  }
  return merged;
}

/** Index of the row holding element `e` (offsets has rows + 1 entries). */
function rowOf(offsets: readonly number[], e: number): number {
  let lo = 0;
  let hi = offsets.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (offsets[mid]! <= e) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Compare a candidate run against a reference run (e.g. compiled against original, or a model against goldens). */
export function compareRuns(
  reference: RunResult,
  candidate: RunResult,
  spec: VerifySpec,
  data: Dataset,
  names: CompareNames = DEFAULT_NAMES,
): VerifyResult {
  const loc = locOf(spec.span);
  const failures: Diagnostic[] = [];
  const outputs: OutputComparison[] = [];
  for (const t of spec.outputs) {
    if (t.output !== '*' && !reference.outputs.has(t.output)) {
      const dym = didYouMean(t.output, reference.outputNames);
      failures.push(
        diag(
          'AX4008',
          'error',
          `verify names output '${t.output}', which the ${names.reference} model does not have (outputs: ${reference.outputNames.join(', ')})`,
          locOf(t.span ?? spec.span),
          dym ? [`did you mean '${dym}'?`] : undefined,
        ),
      );
    }
  }
  for (const name of reference.outputNames) {
    const a = candidate.outputs.get(name);
    const b = reference.outputs.get(name)!;
    if (!a) {
      failures.push(
        diag(
          'AX4006',
          'error',
          `the ${names.candidate} model has no output '${name}' (its outputs: ${candidate.outputNames.join(', ') || 'none'})`,
          loc,
        ),
      );
      continue;
    }
    const shapeIssue = compareShapes(a, b);
    if (shapeIssue !== undefined) {
      const row = data.rows[shapeIssue.row];
      failures.push(
        diag(
          'AX4006',
          'error',
          `output '${name}' has shape [${shapeIssue.got.join(', ')}] in the ${names.candidate} model but [${shapeIssue.want.join(', ')}] in the ${names.reference} model (row ${shapeIssue.row}${row ? `, ${row.where}` : ''})`,
          loc,
        ),
      );
      continue;
    }
    const tol = tolerancesFor(name, spec.outputs);
    const c = compareOutput(name, a, b, tol);
    c.worstWhere = data.rows[c.worstRow]?.where;
    outputs.push(c);
    failures.push(...outputFailures(c, tol, spec, names));
  }
  const metrics = taskMetrics(reference, candidate, spec, data, failures, names);
  return {
    pass: failures.every((f) => f.severity !== 'error'),
    data: data.name,
    rows: data.rows.length,
    rowUnit: data.format === 'onnx-testdata' ? 'test data sets' : 'rows',
    outputs,
    metrics,
    failures,
  };
}

function compareShapes(a: OutputRows, b: OutputRows): { row: number; got: number[]; want: number[] } | undefined {
  const n = Math.max(a.rowDims.length, b.rowDims.length);
  for (let r = 0; r < n; r++) {
    const ga = a.rowDims[r] ?? [];
    const gb = b.rowDims[r] ?? [];
    if (ga.length !== gb.length || ga.some((d, i) => d !== gb[i])) return { row: r, got: ga, want: gb };
  }
  return undefined;
}

/** Figures for one output; `a` is the candidate, `b` the reference. */
export function compareOutput(name: string, a: OutputRows, b: OutputRows, tol: OutputTolerance): OutputComparison {
  const n = b.data.length;
  const atol = tol.atol ?? 0;
  const rtol = tol.rtol ?? 0;
  const checkTol = tol.atol !== undefined || tol.rtol !== undefined;
  let maxAbs = 0;
  let sumAbs = 0;
  let maxRel = 0;
  let worst = 0;
  let dot = 0;
  let na = 0;
  let nb = 0;
  let nonFinite = 0;
  let violations = 0;
  let passAtol = 0;
  let passRtol = 0;
  for (let i = 0; i < n; i++) {
    const x = a.data[i]!;
    const y = b.data[i]!;
    let d: number;
    if (Number.isNaN(x) || Number.isNaN(y) || !Number.isFinite(x) || !Number.isFinite(y)) {
      if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue; // same NaN or same infinity
      nonFinite++;
      d = Infinity;
    } else {
      d = Math.abs(x - y);
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    sumAbs += d;
    if (d > maxAbs) {
      maxAbs = d;
      worst = i;
    }
    const ay = Math.abs(y);
    if (ay > 0) maxRel = Math.max(maxRel, d / ay);
    if (checkTol) {
      if (!(d <= atol + rtol * ay)) violations++;
      passAtol = Math.max(passAtol, d - rtol * (Number.isFinite(ay) ? ay : 0));
      const need = d <= atol ? 0 : ay > 0 && Number.isFinite(ay) ? (d - atol) / ay : Infinity;
      passRtol = Math.max(passRtol, need);
    }
  }
  const cosine = na === 0 && nb === 0 ? 1 : na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
  const rows = b.offsets.length - 1;
  // argmax agreement per vector along the last axis: one per row for classifier outputs ([B, C]), one per position for
  // sequence outputs, one per stored row for onnx-testdata sets holding a whole batch
  let agreeRows = 0;
  let argmaxRows = 0;
  for (let r = 0; r < rows; r++) {
    const dims = b.rowDims[r]!;
    const last = dims.length ? dims[dims.length - 1]! : 1;
    const s = b.offsets[r]!;
    const e = b.offsets[r + 1]!;
    if (last <= 1 || e === s) continue;
    for (let v = s; v + last <= e; v += last) {
      argmaxRows++;
      if (argmax(a.data, v, last) === argmax(b.data, v, last)) agreeRows++;
    }
  }
  const c: OutputComparison = {
    name,
    elements: n,
    rows,
    maxAbsError: maxAbs,
    meanAbsError: n ? sumAbs / n : 0,
    maxRelError: maxRel,
    cosine: nonFinite ? NaN : cosine,
    worstRow: rowOf(b.offsets, worst),
    nonFinite,
    histogram: errorHistogram(a.data, b.data),
    pass: true,
  };
  if (argmaxRows) {
    c.argmaxAgreeRows = agreeRows;
    c.argmaxRows = argmaxRows;
    c.argmaxAgreement = agreeRows / argmaxRows;
  }
  if (checkTol)
    c.tolerance = {
      atol,
      rtol,
      violations,
      passingAtol: nonFinite ? Infinity : passAtol,
      passingRtol: nonFinite ? Infinity : passRtol,
    };
  if (tol.cosine !== undefined) c.minCosine = tol.cosine;
  if (tol.argmax !== undefined) c.minArgmax = tol.argmax;
  c.pass =
    (!c.tolerance || c.tolerance.violations === 0) &&
    (tol.cosine === undefined || c.cosine >= tol.cosine) &&
    (tol.argmax === undefined || (c.argmaxAgreement ?? 1) >= tol.argmax);
  return c;
}

export function argmax(d: Float64Array, start: number, len: number): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < len; i++) {
    const v = d[start + i]!;
    if (v > bv || (Number.isNaN(v) && !Number.isNaN(bv))) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/** A compact number: 3 significant digits, exponent form for small and large magnitudes. */
export function fmt(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a < 1e-3 || a >= 1e5)
    return x
      .toExponential(2)
      .replace(/\.?0+e/, 'e')
      .replace('e+', 'e');
  return String(Number(x.toPrecision(4)));
}

/** Like fmt, but rounded up (to 3 significant digits), for a tolerance that must pass when used as printed. */
export function fmtUp(x: number): string {
  if (!Number.isFinite(x) || x <= 0) return fmt(x);
  const f = 10 ** (Math.floor(Math.log10(x)) - 2);
  const up = Math.ceil(x / f) * f;
  return fmt(Number(up.toPrecision(3)));
}

const pct = (x: number, digits = 1): string => `${(x * 100).toFixed(digits)}%`;

function outputFailures(
  c: OutputComparison,
  tol: OutputTolerance,
  spec: VerifySpec,
  names: CompareNames,
): Diagnostic[] {
  const loc = locOf(tol.span ?? spec.span);
  const out: Diagnostic[] = [];
  const where = c.worstWhere ? `row ${c.worstRow}, ${c.worstWhere}` : `row ${c.worstRow}`;
  const t = c.tolerance;
  if (t && t.violations > 0) {
    const would =
      Number.isFinite(t.passingAtol) || Number.isFinite(t.passingRtol)
        ? `would pass with atol ${fmtUp(t.passingAtol)} at rtol ${fmt(t.rtol)}${Number.isFinite(t.passingRtol) ? `, or rtol ${fmtUp(t.passingRtol)} at atol ${fmt(t.atol)}` : ''}`
        : 'no tolerance passes: NaN or infinite values differ';
    out.push(
      diag(
        'AX4001',
        'error',
        `output '${c.name}': ${t.violations} of ${c.elements} values differ by more than atol ${fmt(t.atol)} + rtol ${fmt(t.rtol)} × |${names.reference}| (max abs error ${fmt(c.maxAbsError)} at ${where}; mean ${fmt(c.meanAbsError)}; max rel ${fmt(c.maxRelError)}); ${would}`,
        loc,
        c.nonFinite ? [`${c.nonFinite} values are NaN or infinite on one side only`] : undefined,
      ),
    );
  }
  if (tol.cosine !== undefined && !(c.cosine >= tol.cosine))
    out.push(
      diag(
        'AX4002',
        'error',
        `output '${c.name}': cosine similarity ${c.cosine.toFixed(6)} is below the required ${tol.cosine}; would pass with cosine ≥ ${Math.floor(c.cosine * 1e6) / 1e6}`,
        loc,
      ),
    );
  if (tol.argmax !== undefined) {
    if (c.argmaxAgreement === undefined)
      out.push(
        diag(
          'AX4003',
          'error',
          `output '${c.name}': argmax agreement was asked for, but the last axis of the output has a single element`,
          loc,
        ),
      );
    else if (c.argmaxAgreement < tol.argmax) {
      out.push(
        diag(
          'AX4003',
          'error',
          `output '${c.name}': argmax agrees on ${pct(c.argmaxAgreement, 2)} of rows (${c.argmaxAgreeRows} of ${c.argmaxRows}), below the required ${pct(tol.argmax, 2)}; would pass with argmax ≥ ${pct(Math.floor(c.argmaxAgreement * 1e4) / 1e4, 2)}`,
          loc,
        ),
      );
    }
  }
  return out;
}

/** Accuracy and binary F1 from the argmax of `out` over the last axis; undefined when rows hold more than one vector. */
export function metricsOf(out: OutputRows, labels: readonly number[]): TaskMetrics | undefined {
  const rows = out.offsets.length - 1;
  let correct = 0;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let binary = true;
  for (let r = 0; r < rows; r++) {
    const s = out.offsets[r]!;
    const len = out.offsets[r + 1]! - s;
    const dims = out.rowDims[r]!;
    const last = dims.length ? dims[dims.length - 1]! : 1;
    if (len !== last || last < 2) return undefined;
    if (last !== 2) binary = false;
    const p = argmax(out.data, s, len);
    const y = labels[r]!;
    if (y !== 0 && y !== 1) binary = false;
    if (p === y) correct++;
    if (p === 1 && y === 1) tp++;
    else if (p === 1) fp++;
    else if (y === 1) fn++;
  }
  const m: TaskMetrics = { rows, correct, accuracy: rows ? correct / rows : 0 };
  if (binary) m.f1 = tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
  return m;
}

function taskMetrics(
  reference: RunResult,
  candidate: RunResult,
  spec: VerifySpec,
  data: Dataset,
  failures: Diagnostic[],
  names: CompareNames,
): VerifyResult['metrics'] {
  const loc = locOf(spec.span);
  const wants = spec.accuracyDrop !== undefined || spec.minAccuracy !== undefined;
  const metrics: VerifyResult['metrics'] = {};
  const first = reference.outputNames[0];
  if (!data.labelled || first === undefined) {
    if (wants)
      failures.push(
        diag(
          'AX4007',
          'error',
          `verify asks for accuracy, but data source '${data.name}' has ${data.rows.some((r) => r.label !== undefined) ? 'rows without' : 'no'} labels`,
          loc,
          ['declare the label field of the data source (label = "...") or drop accuracy from the verify statement'],
        ),
      );
    return metrics;
  }
  metrics.output = first;
  const labels = data.rows.map((r) => r.label!);
  const ref = reference.outputs.get(first)!;
  const got = candidate.outputs.get(first);
  const mr = metricsOf(ref, labels);
  const mc = got ? metricsOf(got, labels) : undefined;
  if (!mr) {
    if (wants)
      failures.push(
        diag(
          'AX4009',
          'error',
          `accuracy needs one class-score vector per row in output '${first}', but its rows have shape [${ref.rowDims[0]?.join(', ')}]`,
          loc,
        ),
      );
    return metrics;
  }
  metrics.original = mr;
  if (!mc) return metrics;
  metrics.compiled = mc;
  const drop = (mr.accuracy - mc.accuracy) * 100;
  metrics.accuracyDrop = drop;
  const accText = `${names.reference} ${pct(mr.accuracy, 2)} → ${names.candidate} ${pct(mc.accuracy, 2)} on ${mr.rows} rows of '${data.name}'`;
  if (spec.accuracyDrop !== undefined && drop > spec.accuracyDrop + 1e-9) {
    const allowed = spec.accuracyDrop;
    const what =
      drop > 1e-9
        ? `accuracy dropped by ${drop.toFixed(2)} points (${accText}), more than the allowed ${allowed}`
        : drop < -1e-9
          ? `accuracy rose by ${(-drop).toFixed(2)} points (${accText}), but the verify statement demands a gain of at least ${-allowed}`
          : `accuracy did not change (${accText}), but the verify statement demands a gain of at least ${-allowed}`;
    // rounded up to the printed precision, so that the suggested figure passes
    const need = Math.ceil(drop * 100 - 1e-9) / 100;
    failures.push(diag('AX4004', 'error', `${what}; would pass with accuracy drop <= ${need.toFixed(2)} points`, loc));
  }
  if (spec.minAccuracy !== undefined && mc.accuracy < spec.minAccuracy)
    failures.push(
      diag(
        'AX4005',
        'error',
        `accuracy of the ${names.candidate} model is ${pct(mc.accuracy, 2)} (${mc.correct} of ${mc.rows} rows of '${data.name}'), below the required ${pct(spec.minAccuracy, 2)}`,
        loc,
      ),
    );
  return metrics;
}

/** The requirements on one output and whether each held, for the summary table. */
function requirements(c: OutputComparison): string {
  const parts: string[] = [];
  const t = c.tolerance;
  if (t)
    parts.push(
      `atol ${fmt(t.atol)} rtol ${fmt(t.rtol)}: ${t.violations ? `${t.violations} over (needs atol ${fmtUp(t.passingAtol)})` : 'ok'}`,
    );
  if (c.minCosine !== undefined) parts.push(`cosine >= ${c.minCosine}: ${c.cosine >= c.minCosine ? 'ok' : 'FAIL'}`);
  if (c.minArgmax !== undefined)
    parts.push(`argmax >= ${pct(c.minArgmax, 2)}: ${(c.argmaxAgreement ?? 0) >= c.minArgmax ? 'ok' : 'FAIL'}`);
  return parts.length ? parts.join('; ') : '-';
}

/** The figures as aligned text for the CLI summary. Deterministic: no timings unless asked. */
export function renderVerifyResult(r: VerifyResult, opts: { timing?: boolean; names?: CompareNames } = {}): string {
  const names = opts.names ?? DEFAULT_NAMES;
  const lines: string[] = [];
  lines.push(`verify on '${r.data}' (${r.rows} ${r.rowUnit}): ${r.pass ? 'PASS' : 'FAIL'}`);
  const rows: string[][] = [['output', 'max abs', 'mean abs', 'max rel', 'cosine', 'argmax', 'requirements']];
  for (const c of r.outputs) {
    rows.push([
      c.name,
      fmt(c.maxAbsError),
      fmt(c.meanAbsError),
      fmt(c.maxRelError),
      Number.isNaN(c.cosine) ? 'NaN' : c.cosine.toFixed(6),
      c.argmaxAgreement === undefined ? '-' : pct(c.argmaxAgreement, 2),
      requirements(c),
    ]);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows)
    lines.push('  ' + row.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  '));
  const m = r.metrics;
  if (m.original) {
    const f = (x: TaskMetrics) =>
      `accuracy ${pct(x.accuracy, 2)} (${x.correct}/${x.rows})${x.f1 !== undefined ? `, F1 ${x.f1.toFixed(4)}` : ''}`;
    lines.push(`  ${names.reference}: ${f(m.original)}`);
    if (m.compiled) lines.push(`  ${names.candidate}: ${f(m.compiled)}; drop ${m.accuracyDrop!.toFixed(2)} points`);
  }
  if (opts.timing && r.timing)
    lines.push(
      `  onnxruntime: ${names.reference} ${r.timing.originalMs.toFixed(0)} ms, ${names.candidate} ${r.timing.compiledMs.toFixed(0)} ms`,
    );
  return lines.join('\n');
}
