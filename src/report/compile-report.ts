/**
 * Reports of `axc compile --report report.json --html report.html`: a stable, versioned JSON document
 * (`"schema": "axc.report/1"`, documented in docs/report-schema.md) and a self-contained HTML page with every
 * step (effect and time), significance as a heat map of heads by layer, the search's decisions, verification
 * figures (histogram of output errors, accuracy before/after) and the final diff summary.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Diagnostic } from '../diagnostics/index.js';
import { diffModels, type ModelDiff } from '../diff/index.js';
import type { Model } from '../ir/index.js';
import { loadModel, serializeModel } from '../onnx/index.js';
import type { DataDecl, VerifySpec } from '../pass/plan.js';
import type { StepReport } from '../pass/manager.js';
import { errorHistogram, type ErrorHistogram, type OutputComparison, type VerifyResult } from '../verify/compare.js';

export { errorHistogram, type ErrorHistogram };
import { PlanDataProvider } from '../verify/provider.js';
import { runDataset } from '../verify/runner.js';
import { bytesText, change, count, diffSummaryHtml, esc, page } from './html.js';

export const REPORT_SCHEMA = 'axc.report/1';

export type OutputWithHistogram = OutputComparison & { histogram?: ErrorHistogram };

/** What the compile report is made from: `CompileResult` (src/compile.ts) fits it. */
export interface CompileReportInput {
  ok: boolean;
  plan: { file: string; source?: string; data?: DataDecl[]; verify?: VerifySpec[] };
  steps: StepReport[];
  verification: (Omit<VerifyResult, 'outputs'> & { outputs: OutputWithHistogram[] })[];
  before: { path: string; bytes: number; parameters: number; nodes: number };
  after: { path?: string; bytes: number; parameters: number; nodes: number };
  diagnostics: Diagnostic[];
  failures: Diagnostic[];
  totalMs: number;
  /** The compiled model; with `before.path`, the report computes the diff summary when `diff` is absent. */
  model?: Model;
  diff?: ModelDiff;
}

/**
 * Attach output-error histograms to verification results that have none, by running both models again on the
 * verification data (at most `maxRows` rows each). Costs two more onnxruntime runs per verify statement.
 */
export async function addHistograms(r: CompileReportInput, opts: { maxRows?: number; threads?: number } = {}) {
  const specs = r.plan.verify ?? [];
  if (!r.model || !specs.length || !r.plan.data || !fs.existsSync(r.before.path)) return;
  if (r.verification.every((v) => v.outputs.every((o) => o.histogram))) return;
  const provider = new PlanDataProvider(r.plan.data, { baseDir: path.dirname(path.resolve(r.plan.file)) });
  const compiled = serializeModel(r.model);
  for (const v of r.verification) {
    if (v.outputs.every((o) => o.histogram)) continue;
    const full = await provider.get(v.data);
    const data = { ...full, rows: full.rows.slice(0, opts.maxRows ?? 256) };
    const ref = await runDataset(r.before.path, data, { threads: opts.threads ?? 1 });
    const got = await runDataset(compiled, data, { threads: opts.threads ?? 1 });
    for (const o of v.outputs) {
      const a = ref.outputs.get(o.name);
      const b = got.outputs.get(o.name);
      if (a && b) o.histogram = errorHistogram(a.data, b.data);
    }
  }
}

/** Make any value JSON-safe and deterministic: Maps become objects, IR objects their names, typed arrays arrays. */
export function jsonSafe(x: unknown, seen = new Set<unknown>()): unknown {
  if (x === null || x === undefined) return x ?? null;
  if (typeof x === 'number') return Number.isFinite(x) ? x : String(x);
  if (typeof x === 'bigint') return Number(x);
  if (typeof x === 'string' || typeof x === 'boolean') return x;
  if (typeof x === 'function' || typeof x === 'symbol') return undefined;
  if (seen.has(x)) return '[circular]';
  if (ArrayBuffer.isView(x)) return Array.from(x as unknown as ArrayLike<number>, (v) => jsonSafe(v));
  const o = x as Record<string, unknown>;
  // IR objects: Node, Value (have a name and, for nodes, an opType)
  if (typeof o.opType === 'string' && typeof o.name === 'string') return `${o.opType} '${o.name}'`;
  if (typeof o.name === 'string' && typeof o.producer === 'function') return `%${o.name}`;
  seen.add(x);
  let out: unknown;
  if (Array.isArray(x)) out = x.map((v) => jsonSafe(v, seen) ?? null);
  else if (x instanceof Map) out = Object.fromEntries([...x].map(([k, v]) => [String(k), jsonSafe(v, seen)]));
  else if (x instanceof Set) out = [...x].map((v) => jsonSafe(v, seen));
  else {
    const r: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) {
      const s = jsonSafe(v, seen);
      if (s !== undefined) r[k] = s;
    }
    out = r;
  }
  seen.delete(x);
  return out;
}

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

function diagJson(d: Diagnostic) {
  return jsonSafe({
    code: d.code,
    severity: d.severity,
    message: d.message,
    location: d.location,
    ...(d.notes?.length ? { notes: d.notes } : {}),
  });
}

/** The diff summary for the report, computed from the models when not given. */
export function reportDiff(r: CompileReportInput): ModelDiff | undefined {
  if (r.diff) return r.diff;
  if (!r.model || !fs.existsSync(r.before.path)) return undefined;
  r.diff = diffModels(loadModel(r.before.path), r.model, { beforePath: r.before.path, afterPath: r.after.path });
  return r.diff;
}

/** The JSON report (schema axc.report/1). */
export function compileReportJson(r: CompileReportInput): Record<string, unknown> {
  const diff = reportDiff(r);
  return {
    schema: REPORT_SCHEMA,
    ok: r.ok,
    totalMs: round(r.totalMs, 1),
    plan: { file: r.plan.file },
    models: {
      before: { path: r.before.path, bytes: r.before.bytes, parameters: r.before.parameters, nodes: r.before.nodes },
      after: {
        ...(r.after.path ? { path: r.after.path } : {}),
        bytes: r.after.bytes,
        parameters: r.after.parameters,
        nodes: r.after.nodes,
      },
    },
    steps: r.steps.map((s, i) => ({
      index: i + 1,
      pass: s.pass,
      ...(s.at ? { at: s.at } : {}),
      changed: s.changed,
      ms: round(s.ms, 1),
      ...(s.summary ? { summary: s.summary } : {}),
      stats: s.stats,
      details: jsonSafe(s.details),
      diagnostics: s.diagnostics.map(diagJson),
      ...(s.cleanup ? { cleanup: { ms: round(s.cleanup.ms, 1), stats: s.cleanup.stats } } : {}),
    })),
    verification: r.verification.map((v) => ({
      data: v.data,
      pass: v.pass,
      rows: v.rows,
      accuracy: {
        original: v.metrics.original?.accuracy ?? null,
        compiled: v.metrics.compiled?.accuracy ?? null,
        dropPoints: v.metrics.accuracyDrop ?? null,
      },
      outputs: v.outputs.map((o) => jsonSafe(o)),
      failures: v.failures.map(diagJson),
    })),
    diff: diff ? jsonSafe(diff) : null,
    diagnostics: r.diagnostics.map(diagJson),
    failures: r.failures.map(diagJson),
  };
}

export function writeCompileReport(r: CompileReportInput, file: string): void {
  writeAtomic(file, JSON.stringify(compileReportJson(r), null, 2) + '\n');
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** What `axc compile` calls: histograms (re-running verification data when needed), then the JSON and/or HTML. */
export async function writeCompileReports(r: CompileReportInput, o: { json?: string; html?: string }): Promise<void> {
  if (o.html) await addHistograms(r).catch(() => undefined);
  if (o.json) writeCompileReport(r, o.json);
  if (o.html) writeAtomic(o.html, renderCompileHtml(r));
}

// ---------------------------------------------------------------------------------------------------------------
// HTML

interface SigElement {
  index: number;
  score: number;
  lossRemoved?: number;
  noWorse?: number;
}
interface SigLayer {
  layer: number;
  heads: number;
  groupScores?: SigElement[];
  attention?: SigElement;
  ffn?: SigElement;
  headScores: SigElement[];
}
interface Sig {
  by: string;
  data?: string;
  samples?: number;
  layers: SigLayer[];
}

function findSignificance(r: CompileReportInput): { step: number; sig: Sig } | undefined {
  for (const [i, s] of r.steps.entries()) {
    const sig = s.details.significance as Sig | undefined;
    if (sig && Array.isArray(sig.layers)) return { step: i + 1, sig };
  }
  return undefined;
}

/** Diverging colour: negative (removal helps) blue, positive (removal hurts) red, scaled by `max`. */
function heat(v: number, max: number): string {
  const t = max > 0 ? Math.max(-1, Math.min(1, v / max)) : 0;
  const a = Math.abs(t);
  const [r, g, b] = t >= 0 ? [214, 69, 69] : [47, 111, 222];
  const mix = (c: number) => Math.round(255 + (c - 255) * a);
  return `rgb(${mix(r)},${mix(g)},${mix(b)})`;
}

function fmt(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) < 1e7) return String(x);
  const a = Math.abs(x);
  return a >= 100 || a < 0.001 ? x.toExponential(2) : String(Number(x.toPrecision(3)));
}

/** Heat map of head significance by layer (plus the whole-block scores), removed heads crossed out. */
export function significanceSvg(sig: Sig, diff?: ModelDiff): string {
  const layers = sig.layers;
  const maxHeads = Math.max(1, ...layers.map((l) => l.heads));
  const all = layers.flatMap((l) => [...l.headScores.map((h) => h.score), l.attention?.score ?? 0, l.ffn?.score ?? 0]);
  const max = Math.max(1e-12, ...all.map(Math.abs));
  const C = 40;
  const LW = 64;
  const top = 22;
  const width = LW + (maxHeads + 3) * C + 10;
  const height = top + layers.length * C + 40;
  const parts: string[] = [];
  for (let h = 0; h < maxHeads; h++)
    parts.push(`<text x="${LW + h * C + C / 2}" y="${top - 6}" text-anchor="middle">h${h}</text>`);
  parts.push(`<text x="${LW + (maxHeads + 1) * C + C / 2}" y="${top - 6}" text-anchor="middle">attn</text>`);
  parts.push(`<text x="${LW + (maxHeads + 2) * C + C / 2}" y="${top - 6}" text-anchor="middle">ffn</text>`);
  const removed = new Map<number, Set<number>>();
  const removedBlocks = new Map<number, Set<string>>();
  for (const l of diff?.layers ?? []) {
    removed.set(l.index, new Set(l.removedHeads));
    removedBlocks.set(l.index, new Set(l.removedBlocks));
  }
  const cell = (x: number, y: number, s: SigElement | undefined, label: string, gone: boolean) => {
    if (!s) return `<rect x="${x}" y="${y}" width="${C - 2}" height="${C - 2}" fill="#f3f5f9" stroke="#dde1ea"/>`;
    const title = `${label}: score ${fmt(s.score)}${s.lossRemoved !== undefined ? `, loss without it ${fmt(s.lossRemoved)}` : ''}${s.noWorse !== undefined ? `, ${(s.noWorse * 100).toFixed(0)}% samples no worse` : ''}${gone ? ' (removed)' : ''}`;
    const cross = gone
      ? `<path d="M${x + 6} ${y + 6} L${x + C - 8} ${y + C - 8} M${x + C - 8} ${y + 6} L${x + 6} ${y + C - 8}" stroke="#1d2330" stroke-width="2"/>`
      : '';
    return `<g class="cell${gone ? ' removed' : ''}"><title>${esc(title)}</title><rect x="${x}" y="${y}" width="${C - 2}" height="${C - 2}" rx="3" fill="${heat(s.score, max)}" stroke="#dde1ea"/>${cross}</g>`;
  };
  layers.forEach((l, i) => {
    const y = top + i * C;
    parts.push(`<text x="${LW - 8}" y="${y + C / 2 + 3}" text-anchor="end">layer ${l.layer}</text>`);
    for (let h = 0; h < maxHeads; h++) {
      const s = l.headScores.find((e) => e.index === h);
      parts.push(cell(LW + h * C, y, s, `layer ${l.layer} head ${h}`, removed.get(l.layer)?.has(h) ?? false));
    }
    parts.push(
      cell(
        LW + (maxHeads + 1) * C,
        y,
        l.attention,
        `layer ${l.layer} attention block`,
        removedBlocks.get(l.layer)?.has('attention') ?? false,
      ),
    );
    parts.push(
      cell(
        LW + (maxHeads + 2) * C,
        y,
        l.ffn,
        `layer ${l.layer} FFN block`,
        removedBlocks.get(l.layer)?.has('ffn') ?? false,
      ),
    );
  });
  // legend
  const ly = top + layers.length * C + 14;
  for (let i = 0; i <= 10; i++) {
    const v = ((i - 5) / 5) * max;
    parts.push(`<rect x="${LW + i * 14}" y="${ly}" width="14" height="10" fill="${heat(v, max)}"/>`);
  }
  parts.push(`<text x="${LW - 8}" y="${ly + 9}" text-anchor="end">${esc(fmt(-max))}</text>`);
  parts.push(`<text x="${LW + 11 * 14 + 6}" y="${ly + 9}">${esc(fmt(max))} (removing it hurts)</text>`);
  return `<svg id="significance" xmlns="http://www.w3.org/2000/svg" width="${width + 160}" height="${height}" viewBox="0 0 ${width + 160} ${height}">${parts.join('')}</svg>`;
}

/** Heat map of FFN neuron-group significance by layer (when the significance step scored groups). */
export function groupsSvg(sig: Sig, removed: Map<number, Set<number>> = new Map()): string {
  const layers = sig.layers.filter((l) => l.groupScores?.length);
  if (!layers.length) return '';
  const maxGroups = Math.max(...layers.map((l) => l.groupScores!.length));
  const all = layers.flatMap((l) => l.groupScores!.map((g) => g.score));
  const max = Math.max(1e-12, ...all.map(Math.abs));
  const C = Math.max(6, Math.min(24, Math.floor(900 / maxGroups)));
  const LW = 64;
  const top = 8;
  const width = LW + maxGroups * C + 10;
  const height = top + layers.length * 24 + 10;
  const cells = layers.flatMap((l, i) =>
    [`<text x="${LW - 8}" y="${top + i * 24 + 15}" text-anchor="end">layer ${l.layer}</text>`].concat(
      l.groupScores!.map((g) => {
        const x = LW + g.index * C;
        const y = top + i * 24;
        const gone = removed.get(l.layer)?.has(g.index) ?? false;
        const cross = gone
          ? `<path d="M${x + 2} ${y + 3} L${x + C - 3} ${y + 19} M${x + C - 3} ${y + 3} L${x + 2} ${y + 19}" stroke="#1d2330" stroke-width="1.5"/>`
          : '';
        return `<g class="group${gone ? ' removed' : ''}"><title>${esc(`layer ${l.layer} FFN group ${g.index}: score ${fmt(g.score)}${gone ? ' (removed)' : ''}`)}</title><rect x="${x}" y="${y}" width="${C - 1}" height="22" fill="${heat(g.score, max)}"/>${cross}</g>`;
      }),
    ),
  );
  return `<svg id="ffn-groups" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${cells.join('')}</svg>`;
}

/**
 * FFN groups the prune steps removed, by layer, from their `pruneSet` detail (`{layers: [{layer, groups}]}`).
 * Group numbers are those of the scores when pruning ran once after the significance step.
 */
function removedGroups(r: CompileReportInput): Map<number, Set<number>> {
  const out = new Map<number, Set<number>>();
  for (const s of r.steps) {
    const ps = s.details.pruneSet as { layers?: { layer: number; groups?: number[]; ffn?: boolean }[] } | undefined;
    for (const l of ps?.layers ?? []) {
      const set = out.get(l.layer) ?? new Set<number>();
      for (const g of l.groups ?? []) set.add(g);
      out.set(l.layer, set);
    }
  }
  return out;
}

/** A histogram of output errors as bars (log-decade bins). */
export function histogramSvg(h: ErrorHistogram, label: string): string {
  const W = 36;
  const H = 120;
  const max = Math.max(1, ...h.counts);
  const labels = ['0', ...h.edges.map((e) => `1e${Math.round(Math.log10(e))}`)];
  const bars = h.counts.map((c, i) => {
    const bh = Math.round((c / max) * H);
    const x = 40 + i * W;
    return `<g><title>${esc(`${i === 0 ? 'exactly equal' : `|error| in [${labels[i]}, ${labels[i + 1] ?? '∞'})`}: ${c} of ${h.elements}`)}</title><rect x="${x}" y="${10 + H - bh}" width="${W - 4}" height="${bh}" fill="${i === 0 ? '#1f9d55' : '#7aa2e3'}"/><text x="${x + (W - 4) / 2}" y="${H + 24}" text-anchor="middle" font-size="9">${esc(labels[i]!)}</text></g>`;
  });
  const width = 40 + h.counts.length * W + 10;
  return `<svg class="histogram" role="img" aria-label="${esc(label)}" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${H + 40}" viewBox="0 0 ${width} ${H + 40}"><text x="4" y="14" font-size="10">${max}</text><text x="4" y="${H + 10}" font-size="10">0</text><line x1="38" y1="${H + 10}" x2="${width}" y2="${H + 10}" stroke="#b7bdca"/>${bars.join('')}</svg>`;
}

function accuracySvg(before: number, after: number): string {
  const W = 260;
  const bar = (y: number, v: number, color: string, label: string) =>
    `<text x="0" y="${y + 12}">${label}</text><rect x="70" y="${y}" width="${Math.round(v * W)}" height="16" fill="${color}"/><text x="${74 + Math.round(v * W)}" y="${y + 12}">${(v * 100).toFixed(2)}%</text>`;
  return `<svg class="accuracy" xmlns="http://www.w3.org/2000/svg" width="${W + 140}" height="44" viewBox="0 0 ${W + 140} 44">${bar(2, before, '#8a93a6', 'original')}${bar(24, after, '#2f6fde', 'compiled')}</svg>`;
}

function effectOf(s: StepReport): string {
  if (s.summary) return s.summary;
  const st = Object.entries(s.stats)
    .filter(([, v]) => v !== 0)
    .map(([k, v]) => `${k} ${v}`);
  return st.length ? st.join(', ') : s.changed ? 'changed' : 'no change';
}

/** Step details shown as tables: key → heading. */
const DECISION_KEYS: Record<string, string> = {
  decisions: 'decisions',
  search: 'search decisions',
  matrices: 'error of each quantized matrix',
  fusions: 'fusions',
  declined: 'declined rewrites',
};

function accepted(list: unknown[]): string {
  const n = list.filter((x) => (x as Record<string, unknown>)?.accepted === true).length;
  return n ? `, ${n} accepted` : '';
}

function decisionsHtml(r: CompileReportInput): string {
  const out: string[] = [];
  r.steps.forEach((s, i) => {
    for (const key of Object.keys(DECISION_KEYS)) {
      const list = s.details[key];
      if (!Array.isArray(list) || !list.length || typeof list[0] !== 'object') continue;
      const rows = (jsonSafe(list) as Record<string, unknown>[]).slice(0, 300);
      const cols = [...new Set(rows.flatMap((x) => Object.keys(x)))];
      const cellText = (v: unknown) =>
        typeof v === 'number' ? fmt(v) : typeof v === 'object' ? JSON.stringify(v) : String(v ?? '');
      out.push(
        `<details class="decisions-of" data-step="${i + 1}"${list.length <= 16 ? ' open' : ''}><summary>Step ${i + 1}: ${esc(s.pass)} — ${esc(DECISION_KEYS[key]!)} (${list.length}${accepted(list)})</summary><table class="decisions"><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>${rows
          .map((x) => {
            const acc = x.accepted ?? x.accept ?? x.kept;
            const cls = acc === true ? ' class="added"' : acc === false ? ' class="removed-t"' : '';
            return `<tr${cls}>${cols.map((c) => `<td>${esc(cellText(x[c]))}</td>`).join('')}</tr>`;
          })
          .join(
            '',
          )}</tbody></table>${list.length > rows.length ? `<p>... and ${list.length - rows.length} more (see the JSON report)</p>` : ''}</details>`,
      );
    }
  });
  return out.join('\n');
}

function verificationHtml(r: CompileReportInput): string {
  if (!r.verification.length) return '<p>The plan has no <code>verify</code> statement.</p>';
  return r.verification
    .map((v) => {
      const o = v.metrics.original?.accuracy;
      const c = v.metrics.compiled?.accuracy;
      const acc =
        o !== undefined && c !== undefined
          ? `<p>Accuracy on ${v.rows} rows: ${(o * 100).toFixed(2)}% → ${(c * 100).toFixed(2)}% (${v.metrics.accuracyDrop !== undefined ? `${v.metrics.accuracyDrop >= 0 ? '−' : '+'}${Math.abs(v.metrics.accuracyDrop).toFixed(2)} points` : ''})</p>${accuracySvg(o, c)}`
          : '';
      const rows = v.outputs
        .map(
          (x) =>
            `<tr><td><code>${esc(x.name)}</code></td><td class="num">${fmt(x.maxAbsError)}</td><td class="num">${fmt(x.meanAbsError)}</td><td class="num">${fmt(x.maxRelError)}</td><td class="num">${x.cosine.toFixed(6)}</td><td class="num">${x.argmaxAgreement !== undefined ? `${(x.argmaxAgreement * 100).toFixed(2)}%` : '-'}</td><td>${x.pass ? '<span class="badge ok">pass</span>' : '<span class="badge fail">fail</span>'}</td></tr>`,
        )
        .join('');
      const hists = v.outputs
        .map((x) =>
          x.histogram
            ? `<figure><figcaption>|compiled − original| of <code>${esc(x.name)}</code>, ${x.histogram.elements} elements (log bins)</figcaption>${histogramSvg(x.histogram, `errors of ${x.name}`)}</figure>`
            : `<p>No error histogram recorded for <code>${esc(x.name)}</code>.</p>`,
        )
        .join('');
      const fails = v.failures.map((f) => `<li>${esc(f.code)}: ${esc(f.message)}</li>`).join('');
      return `<section class="verify" data-data="${esc(v.data)}"><h3>on <code>${esc(v.data)}</code> ${v.pass ? '<span class="badge ok">pass</span>' : '<span class="badge fail">FAIL</span>'}</h3>${acc}
<table class="outputs"><thead><tr><th>output</th><th class="num">max |err|</th><th class="num">mean |err|</th><th class="num">max rel</th><th class="num">cosine</th><th class="num">argmax agree</th><th></th></tr></thead><tbody>${rows}</tbody></table>
<div class="sides">${hists}</div>${fails ? `<ul class="failures">${fails}</ul>` : ''}</section>`;
    })
    .join('\n');
}

/** The `axc compile --html` page. */
export function renderCompileHtml(r: CompileReportInput): string {
  const diff = reportDiff(r);
  const maxMs = Math.max(1, ...r.steps.map((s) => s.ms));
  const steps = r.steps
    .map(
      (s, i) =>
        `<tr data-step="${i + 1}"${s.changed ? ' class="changed"' : ''}><td class="num">${i + 1}</td><td><code>${esc(s.pass)}</code></td><td>${esc(s.at ?? '')}</td><td>${esc(effectOf(s))}${
          s.cleanup && Object.values(s.cleanup.stats).some((v) => v)
            ? `<br><small>cleanup: ${esc(
                Object.entries(s.cleanup.stats)
                  .filter(([, v]) => v)
                  .map(([k, v]) => `${k} ${v}`)
                  .join(', '),
              )}</small>`
            : ''
        }${s.diagnostics.length ? `<details class="diags"><summary>${s.diagnostics.length} ${s.diagnostics.length === 1 ? 'message' : 'messages'} (${esc([...new Set(s.diagnostics.map((d) => d.code))].join(', '))})</summary><small>${s.diagnostics.map((d) => `${esc(d.code)} ${esc(d.message)}`).join('<br>')}</small></details>` : ''}</td><td>${s.changed ? 'yes' : 'no'}</td><td class="num">${s.ms.toFixed(0)} ms <span class="bar" style="width:${Math.max(1, Math.round((s.ms / maxMs) * 120))}px"></span></td></tr>`,
    )
    .join('\n');
  const sig = findSignificance(r);
  const b = r.before;
  const a = r.after;
  const body = `<h1>axc compile report</h1>
<div class="sub">${esc(b.path)} → ${esc(a.path ?? '(not written)')} with plan ${esc(r.plan.file)} · ${r.ok ? '<span class="badge ok">verified</span>' : '<span class="badge fail">FAILED</span>'} · ${(r.totalMs / 1000).toFixed(1)} s</div>
<table id="overview"><thead><tr><th></th><th class="num">before</th><th class="num">after</th><th class="num">change</th></tr></thead><tbody>
<tr><td>file size</td><td class="num">${bytesText(b.bytes)}</td><td class="num">${bytesText(a.bytes)}</td><td class="num">${change(b.bytes, a.bytes)}</td></tr>
<tr><td>parameters</td><td class="num">${count(b.parameters)}</td><td class="num">${count(a.parameters)}</td><td class="num">${change(b.parameters, a.parameters)}</td></tr>
<tr><td>nodes</td><td class="num">${b.nodes}</td><td class="num">${a.nodes}</td><td class="num">${change(b.nodes, a.nodes)}</td></tr>
</tbody></table>
<h2>Steps</h2>
<table id="steps"><thead><tr><th class="num">#</th><th>pass</th><th>plan</th><th>effect</th><th>changed</th><th class="num">time</th></tr></thead><tbody>
${steps}
</tbody></table>
${sig ? `<h2>Significance (step ${sig.step}, by ${esc(sig.sig.by)}${sig.sig.data ? ` on ${esc(sig.sig.data)}` : ''}${sig.sig.samples ? `, ${sig.sig.samples} samples` : ''})</h2><p>${sig.sig.by === 'kl' ? 'How far the predictions move from the original model’s (KL divergence) when a head or block is removed: darker moves them more; crossed cells were removed.' : sig.sig.by === 'loss' ? 'How much the loss rises when a head or block is removed: red hurts, blue helps; crossed cells were removed.' : `Scores by ${esc(sig.sig.by)} (larger matters more); crossed cells were removed.`}</p>${significanceSvg(sig.sig, diff)}${groupsSvg(sig.sig) ? `<h3>FFN neuron groups</h3>${groupsSvg(sig.sig, removedGroups(r))}` : ''}` : ''}
${decisionsHtml(r) ? `<h2>Decisions</h2>${decisionsHtml(r)}` : ''}
<h2>Verification</h2>
${verificationHtml(r)}
<h2>What changed</h2>
${diff ? diffSummaryHtml(diff) : '<p>No diff (the original model could not be read).</p>'}
${r.diagnostics.length ? `<h2>Diagnostics</h2><ul>${r.diagnostics.map((d) => `<li>${esc(d.severity)} ${esc(d.code)}: ${esc(d.message)}</li>`).join('')}</ul>` : ''}`;
  return page(`axc compile report: ${b.path}`, body);
}
