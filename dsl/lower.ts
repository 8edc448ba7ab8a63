/**
 * Semantic checks and lowering: AST → Plan (src/pass/plan.ts). The DSL consults pass metadata only (a PassLookup,
 * by default the global registry), never pass code.
 *
 * How a step's arguments map to options (regular, schema-driven):
 * 1. `KEYWORD` names the pass.
 * 2. The first comma list after the keyword goes to the pass's `positional` option — unless it is a single word that
 *    names an option of the pass or is a value of one of its enum options (then rule 4 applies).
 * 3. Clauses: `on NAME` → option `on`; `by NAME` → `by`; `layers SEL` → `layers`; `where M OP N` → `where`
 *    (type condition); `keep OP N` → `keep` (type bound, or a number when OP is `>=`); `except layers SEL` → option
 *    `except` if the pass has one, otherwise it removes layers from the `layers` selector; `except NAME VALUES`
 *    → option `except-NAME` (e.g. `except ops MatMul, Gemm` → `except-ops`).
 * 4. A word that names an option takes the following value (`k 16`, `block-size 32`); a boolean option may stand
 *    alone (`renormalize` = `renormalize true`). A bare word that is one of the `values` of exactly one enum option
 *    sets that option (`int8` → mode int8 when mode is an enum listing int8).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { diag, didYouMean, type Diagnostic, type SourceSpan } from '../src/diagnostics/index.js';
import type { Model } from '../src/ir/index.js';
import type { DataDecl, DataFormat, OutputTolerance, Plan, VerifySpec } from '../src/pass/plan.js';
import { allPasses, getPass, withDefaults } from '../src/pass/registry.js';
import type { AnyPass, LayerSelector, NamedItem, OptionSpec, PlanStep } from '../src/pass/types.js';
import type * as A from './ast.js';

/** Where lowering looks passes up. Tests pass a local one (see localRegistry) so fake passes never clash. */
export interface PassLookup {
  get(name: string): AnyPass | undefined;
  all(): AnyPass[];
}

export const globalRegistry: PassLookup = { get: getPass, all: allPasses };

/** A registry of the given passes only (for tests and tools). */
export function localRegistry(passes: AnyPass[]): PassLookup {
  const m = new Map<string, AnyPass>();
  for (const p of passes) {
    if (m.has(p.name)) throw new Error(`pass '${p.name}' given twice`);
    m.set(p.name, p);
  }
  return { get: (n) => m.get(n), all: () => [...m.values()].sort((a, b) => a.name.localeCompare(b.name)) };
}

/** What the checker knows of the model (axc check --model, or compile). */
export interface ModelInfo {
  /** Number of encoder layers. */
  layers?: number;
  /** Heads per layer. */
  heads?: number[];
  /** Names of the model's (non-initializer) inputs and its outputs. */
  inputs?: string[];
  outputs?: string[];
}

export interface CheckOptions {
  modelInfo?: ModelInfo;
  /** The model itself: gives inputs and outputs when modelInfo does not. */
  model?: Model;
  /** Folder data paths are relative to (default: the plan file's folder). */
  baseDir?: string;
  registry?: PassLookup;
  /** Facts available before the first step (e.g. 'layers' when the caller pre-computes the layer analysis). */
  facts?: string[];
  /** Warn about data files that do not exist (AX2203). */
  checkFiles?: boolean;
  /** Read the first row of existing data files to check fields against the model (AX2202). Default true; turn it
   * off when the data paths will be overridden (compile --data NAME=PATH). */
  checkData?: boolean;
}

const DATA_FORMATS: readonly DataFormat[] = ['jsonl', 'tsv', 'text-jsonl', 'onnx-testdata'];
const TEXT_FORMATS: readonly DataFormat[] = ['tsv', 'text-jsonl'];
/** Model inputs a data source may omit: the data loader derives them (mask of ones, zero token types). */
const DERIVABLE_INPUTS = new Set(['attention_mask', 'token_type_ids']);

type DataField = 'label' | 'text' | 'textPair' | 'tokenizer' | 'split' | 'limit' | 'offset' | 'maxLength' | 'batch';
const DATA_OPTIONS: Record<string, { field: DataField; kind: 'string' | 'path' | 'split' | 'int'; min?: number }> = {
  label: { field: 'label', kind: 'string' },
  text: { field: 'text', kind: 'string' },
  'text-pair': { field: 'textPair', kind: 'string' },
  tokenizer: { field: 'tokenizer', kind: 'path' },
  split: { field: 'split', kind: 'split' },
  limit: { field: 'limit', kind: 'int', min: 1 },
  offset: { field: 'offset', kind: 'int', min: 0 },
  'max-length': { field: 'maxLength', kind: 'int', min: 1 },
  batch: { field: 'batch', kind: 'int', min: 1 },
};

/** An own property only: plan words such as `constructor` must not find Object.prototype members. */
function own<T>(obj: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

const loc = (s: SourceSpan) => ({ kind: 'plan' as const, ...s });
const at = (s: SourceSpan) => `line ${s.line}`;
const hint = (word: string, candidates: Iterable<string>): string[] => {
  const d = didYouMean(word, candidates);
  return d ? [`did you mean '${d}'?`] : [];
};
const quoteList = (xs: readonly string[]) => xs.map((x) => `'${x}'`).join(', ');

function valueText(v: A.Value): string {
  switch (v.kind) {
    case 'number':
      return v.text;
    case 'range':
      return `${v.from.text}..${v.to.text}`;
    case 'string':
      return JSON.stringify(v.value);
    case 'word':
      return v.arg ? `${v.name}(${v.arg.text})` : v.name;
    case 'all':
      return 'all';
  }
}
const listText = (l: A.ValueList) => l.items.map(valueText).join(', ');

function spanUnion(a: A.Span, b: A.Span): A.Span {
  return { ...a, endLine: b.endLine, endCol: b.endCol, end: b.end };
}

/** The checker: one instance per plan. */
export class PlanChecker {
  readonly diagnostics: Diagnostic[] = [];
  private readonly registry: PassLookup;
  private readonly dataByName = new Map<string, DataDecl>();
  private readonly usedData = new Set<string>();
  private readonly info: ModelInfo;

  constructor(
    readonly ast: A.PlanAst,
    readonly source: string,
    readonly opts: CheckOptions = {},
    /** Data names declared by statements with syntax errors: uses of them are not reported again. */
    private readonly brokenData: ReadonlySet<string> = new Set(),
  ) {
    this.registry = opts.registry ?? globalRegistry;
    const info: ModelInfo = { ...opts.modelInfo };
    if (opts.model) {
      info.inputs ??= opts.model.graph.inputs.filter((v) => !v.constValue).map((v) => v.name);
      info.outputs ??= opts.model.graph.outputs.map((v) => v.name);
    }
    this.info = info;
  }

  private error(code: string, message: string, span: SourceSpan, notes?: string[]): void {
    this.diagnostics.push(diag(code, 'error', message, loc(span), notes));
  }
  private warn(code: string, message: string, span: SourceSpan, notes?: string[]): void {
    this.diagnostics.push(diag(code, 'warning', message, loc(span), notes));
  }

  /** Lower the whole plan (statements with syntax errors are not in the AST). */
  lower(): Plan {
    const stmts = this.ast.statements;
    const data: DataDecl[] = [];
    // data first: steps and verify may name a source declared further down
    for (const s of stmts) if (s.kind === 'data') this.lowerData(s, data);
    const steps: PlanStep[] = [];
    const verify: VerifySpec[] = [];
    const facts = new Set(this.opts.facts ?? []);
    for (const s of stmts) {
      if (s.kind === 'step') {
        const st = this.lowerStep(s, facts);
        if (st) steps.push(st);
      } else if (s.kind === 'verify') {
        const v = this.lowerVerify(s);
        if (v) verify.push(v);
      }
    }
    for (const d of data)
      if (!this.usedData.has(d.name) && d.span)
        this.warn('AX2302', `data source '${d.name}' is declared but no step or verify uses it`, d.span);
    return { file: this.ast.file, source: this.source, data, steps, verify };
  }

  // ---------------------------------------------------------------- data

  private resolvePath(p: string): string {
    if (path.isAbsolute(p)) return p;
    return path.join(this.opts.baseDir ?? path.dirname(this.ast.file), p);
  }

  private lowerData(s: A.DataStmt, out: DataDecl[]): void {
    const name = s.name.text;
    const first = this.dataByName.get(name);
    if (first) {
      this.error('AX2107', `data source '${name}' is declared twice`, s.name.span, [
        `first declared at ${first.span ? at(first.span) : 'an earlier line'}`,
      ]);
      return;
    }
    let ok = true;
    const format = s.format.text as DataFormat;
    if (!DATA_FORMATS.includes(format)) {
      this.error('AX2105', `unknown data format '${s.format.text}'`, s.format.span, [
        ...hint(s.format.text, DATA_FORMATS),
        `formats: ${DATA_FORMATS.join(', ')}`,
      ]);
      ok = false;
    }
    const decl: DataDecl = { name, format, path: this.resolvePath(s.path.value), span: s.span };
    const given = new Map<string, A.DataOption>();
    for (const o of s.options) {
      const key = o.name.text;
      const spec = own(DATA_OPTIONS, key);
      if (!spec) {
        this.error('AX2102', `unknown data option '${key}'`, o.name.span, [
          ...hint(key, Object.keys(DATA_OPTIONS)),
          `options: ${Object.keys(DATA_OPTIONS).join(', ')}`,
        ]);
        ok = false;
        continue;
      }
      const prev = given.get(key);
      if (prev) {
        this.error('AX2108', `data option '${key}' is given twice`, o.name.span, [
          `first given at col ${prev.span.col}`,
        ]);
        ok = false;
        continue;
      }
      given.set(key, o);
      const v = o.value;
      switch (spec.kind) {
        case 'string':
        case 'path': {
          if (v.kind !== 'string' && !(v.kind === 'word' && !v.arg)) {
            this.error('AX2103', `data option '${key}' takes a string, got ${valueText(v)}`, v.span, [
              `write ${key} "${valueText(v)}"`,
            ]);
            ok = false;
            break;
          }
          const text = v.kind === 'string' ? v.value : v.name;
          (decl as unknown as Record<string, unknown>)[spec.field] =
            spec.kind === 'path' ? this.resolvePath(text) : text;
          if ((key === 'text' || key === 'text-pair' || key === 'tokenizer') && !TEXT_FORMATS.includes(format) && ok) {
            this.error(
              'AX2102',
              `data option '${key}' applies to raw text (tsv, text-jsonl), not to ${format} data`,
              o.name.span,
            );
            ok = false;
          }
          break;
        }
        case 'split': {
          const w = v.kind === 'word' ? v.name : v.kind === 'string' ? v.value : undefined;
          if (w !== 'even' && w !== 'odd') {
            this.error(
              'AX2105',
              `split must be 'even' or 'odd', got ${valueText(v)}`,
              v.span,
              hint(valueText(v), ['even', 'odd']),
            );
            ok = false;
          } else decl.split = w;
          break;
        }
        case 'int': {
          if (v.kind !== 'number' || v.percent || !Number.isInteger(v.value)) {
            this.error('AX2103', `data option '${key}' takes a whole number, got ${valueText(v)}`, v.span);
            ok = false;
          } else if (v.value < spec.min!) {
            this.error('AX2104', `data option '${key}' must be at least ${spec.min}, got ${v.text}`, v.span);
            ok = false;
          } else (decl as unknown as Record<string, unknown>)[spec.field] = v.value;
          break;
        }
      }
    }
    if (TEXT_FORMATS.includes(format)) {
      for (const req of ['tokenizer', 'text'] as const)
        if (!given.has(req)) {
          this.error(
            'AX2109',
            `${format} data needs '${req}' (raw text is tokenized with a tokenizer.json)`,
            s.format.span,
            [
              `e.g. data ${name} = ${format} "${s.path.value}" tokenizer "tokenizer.json" text "sentence" label "label"`,
            ],
          );
          ok = false;
        }
    }
    this.dataByName.set(name, decl);
    if (!ok) return;
    out.push(decl);
    this.checkDataFile(decl, s, given);
  }

  /** AX2203 (missing file, with checkFiles) and AX2202 (fields vs the model's inputs, when the model is known). */
  private checkDataFile(d: DataDecl, s: A.DataStmt, given: Map<string, A.DataOption>): void {
    if (this.opts.checkData === false) return;
    const exists = fs.existsSync(d.path);
    if (!exists) {
      if (this.opts.checkFiles)
        this.warn('AX2203', `data file "${s.path.value}" of '${d.name}' does not exist`, s.path.span, [
          "paths are relative to the plan's folder",
        ]);
      return;
    }
    if (d.format === 'jsonl') {
      const row = firstJsonlRow(d.path);
      if (!row) return;
      const keys = Object.keys(row);
      if (this.info.inputs) {
        const missing = this.info.inputs.filter((i) => !keys.includes(i) && !DERIVABLE_INPUTS.has(i));
        if (missing.length)
          this.error(
            'AX2202',
            `data '${d.name}' does not match the model: its rows have no ${quoteList(missing)} (model inputs: ${this.info.inputs.join(', ')})`,
            s.path.span,
            [`first row fields: ${keys.join(', ')}`],
          );
      }
      if (d.label !== undefined && !keys.includes(d.label)) {
        const lab = given.get('label')!;
        this.error('AX2202', `data '${d.name}' has no field '${d.label}' for the label`, lab.value.span, [
          ...hint(d.label, keys),
          `first row fields: ${keys.join(', ')}`,
        ]);
      }
    } else if (d.format === 'tsv') {
      const header = firstLine(d.path)?.split('\t') ?? [];
      for (const [key, field] of [
        ['text', d.text],
        ['text-pair', d.textPair],
        ['label', d.label],
      ] as const) {
        if (field !== undefined && !header.includes(field))
          this.error('AX2202', `data '${d.name}' has no column '${field}' (${key})`, given.get(key)!.value.span, [
            ...hint(field, header),
            `columns: ${header.join(', ')}`,
          ]);
      }
    }
  }

  private dataRef(n: A.Name): boolean {
    this.usedData.add(n.text);
    if (this.dataByName.has(n.text)) return true;
    if (this.brokenData.has(n.text)) return false;
    const names = [...this.dataByName.keys()];
    this.error('AX2106', `no data source named '${n.text}'`, n.span, [
      ...hint(n.text, names),
      names.length
        ? `declared: ${names.join(', ')}`
        : `declare it first: data ${n.text} = jsonl "path.jsonl" label "label"`,
    ]);
    return false;
  }

  // ---------------------------------------------------------------- steps

  private lowerStep(s: A.StepStmt, facts: Set<string>): PlanStep | undefined {
    const kw = s.keyword.text;
    const pass = this.registry.get(kw);
    if (!pass) {
      this.error('AX2101', `unknown pass '${kw}'`, s.keyword.span, [
        ...hint(
          kw,
          this.registry.all().map((p) => p.name),
        ),
        'run `axc passes` to list the passes',
      ]);
      return undefined;
    }
    const before = this.diagnostics.length;
    const options = new Map<string, { value: unknown; span: A.Span }>();
    const set = (name: string, value: unknown, span: A.Span) => {
      const prev = options.get(name);
      if (prev) {
        this.error('AX2108', `option '${name}' of '${kw}' is given twice`, span, [
          `first given at col ${prev.span.col}`,
        ]);
        return;
      }
      options.set(name, { value, span });
    };
    const spec = (name: string, span: A.Span, written: string): OptionSpec | undefined => {
      const sp = own(pass.options, name);
      if (sp) return sp;
      const names = Object.keys(pass.options);
      this.error(
        'AX2102',
        `pass '${kw}' has no option '${name}'${written && written !== name ? ` (from '${written}')` : ''}`,
        span,
        [...hint(name, names), names.length ? `options of '${kw}': ${names.join(', ')}` : `'${kw}' takes no options`],
      );
      return undefined;
    };
    const enumOwners = (word: string) =>
      Object.entries(pass.options)
        .filter(([n, o]) => n !== pass.positional && o.type === 'enum' && o.values?.includes(word))
        .map(([n]) => n);
    const isOptionWord = (l: A.ValueList) => {
      const v = l.items[0]!;
      if (l.items.length !== 1 || v.kind !== 'word' || v.arg) return false;
      return (own(pass.options, v.name) !== undefined && v.name !== pass.positional) || enumOwners(v.name).length > 0;
    };

    let exceptLayers: { sel: A.LayerSelectorAst; span: A.Span } | undefined;
    const args = s.args;
    let i = 0;
    const first = args[0];
    if (pass.positional && first?.kind === 'values' && !isOptionWord(first)) {
      const sp = own(pass.options, pass.positional);
      if (!sp) throw new Error(`pass '${kw}': positional option '${pass.positional}' has no schema`);
      const v = this.convert(first, sp, pass.positional, kw);
      if (v !== undefined) set(pass.positional, v, first.span);
      i = 1;
    }
    for (; i < args.length; i++) {
      const a = args[i]!;
      switch (a.kind) {
        case 'on': {
          this.usedData.add(a.data.text);
          const sp = spec('on', a.span, 'on');
          if (!sp) break;
          const v = this.convert(wordList(a.data), sp, 'on', kw);
          if (v !== undefined) set('on', v, a.span);
          break;
        }
        case 'by': {
          const sp = spec('by', a.span, 'by');
          if (!sp) break;
          const v = this.convert(wordList(a.value), sp, 'by', kw);
          if (v !== undefined) set('by', v, a.span);
          break;
        }
        case 'layers': {
          const sp = spec('layers', a.span, 'layers');
          if (!sp) break;
          if (sp.type !== 'layers') {
            this.error('AX2103', `option 'layers' of '${kw}' is ${article(sp.type)}, not a layer selector`, a.span);
            break;
          }
          const v = this.layerSelector(a.selector);
          if (v) set('layers', v, a.span);
          break;
        }
        case 'except': {
          if (a.selector) {
            const ex = own(pass.options, 'except');
            if (ex) {
              if (ex.type !== 'layers') {
                this.error('AX2103', `option 'except' of '${kw}' is ${article(ex.type)}, not a layer selector`, a.span);
                break;
              }
              const v = this.layerSelector(a.selector);
              if (v) set('except', v, a.span);
            } else if (own(pass.options, 'layers')?.type === 'layers') {
              if (exceptLayers) this.error('AX2108', `'except layers' of '${kw}' is given twice`, a.span);
              else exceptLayers = { sel: a.selector, span: a.span };
            } else spec('except', a.span, 'except layers');
          } else if (a.name && a.values) {
            const name = `except-${a.name.text}`;
            const sp = spec(name, a.span, `except ${a.name.text}`);
            if (!sp) break;
            const v = this.convert(a.values, sp, name, kw);
            if (v !== undefined) set(name, v, a.span);
          }
          break;
        }
        case 'where': {
          const sp = spec('where', a.span, 'where');
          if (!sp) break;
          if (sp.type !== 'condition') {
            this.error('AX2103', `option 'where' of '${kw}' is ${article(sp.type)}, not a condition`, a.span);
            break;
          }
          if (sp.values && !sp.values.includes(a.metric.text)) {
            this.error('AX2105', `'${kw}' cannot filter on '${a.metric.text}'`, a.metric.span, [
              ...hint(a.metric.text, sp.values),
              `metrics: ${sp.values.join(', ')}`,
            ]);
            break;
          }
          const value = this.number(a.value, sp, 'where', kw);
          if (value !== undefined) set('where', { metric: a.metric.text, op: a.op, value }, a.span);
          break;
        }
        case 'keep': {
          const sp = spec('keep', a.span, 'keep');
          if (!sp) break;
          if (sp.type === 'bound') {
            const value = this.number(a.value, sp, 'keep', kw);
            if (value !== undefined) set('keep', { op: a.op, value }, a.span);
          } else if (sp.type === 'number' || sp.type === 'integer') {
            if (a.op !== '>=') {
              this.error('AX2105', `'keep' of '${kw}' is a minimum: write 'keep >= ${a.value.text}'`, a.opSpan);
              break;
            }
            const value = this.number(a.value, sp, 'keep', kw);
            if (value !== undefined) set('keep', value, a.span);
          } else this.error('AX2103', `option 'keep' of '${kw}' is ${article(sp.type)}, not a bound`, a.span);
          break;
        }
        case 'values': {
          const w = a.items[0]!;
          if (a.items.length !== 1 || w.kind !== 'word' || w.arg) {
            const names = Object.keys(pass.options).filter((n) => n !== pass.positional);
            this.error('AX2110', `unexpected value '${listText(a)}' in '${kw}': no option name before it`, a.span, [
              names.length ? `options of '${kw}': ${names.join(', ')} (write NAME VALUE)` : `'${kw}' takes no options`,
            ]);
            break;
          }
          const name = w.name;
          const named = name !== pass.positional ? own(pass.options, name) : undefined;
          if (named) {
            const sp = named;
            const next = args[i + 1];
            if (sp.type === 'boolean') {
              const nw = next?.kind === 'values' && next.items.length === 1 ? next.items[0] : undefined;
              if (nw?.kind === 'word' && (nw.name === 'true' || nw.name === 'false')) {
                set(name, nw.name === 'true', spanUnion(w.span, nw.span));
                i++;
              } else if (
                next?.kind === 'values' &&
                (next.items.length > 1 || nw?.kind !== 'word' || nw.arg || !isOptionWord(next))
              ) {
                i++;
                this.convert(next, sp, name, kw); // reports it: a boolean is true or false
              } else set(name, true, w.span);
              break;
            }
            if (next?.kind !== 'values') {
              this.error('AX2109', `option '${name}' of '${kw}' needs a value`, w.span, [
                `e.g. ${name} ${example(sp)}`,
              ]);
              break;
            }
            i++;
            const v = this.convert(next, sp, name, kw);
            if (v !== undefined) set(name, v, spanUnion(w.span, next.span));
            break;
          }
          const owners = enumOwners(name);
          if (owners.length === 1) {
            set(owners[0]!, name, w.span);
            break;
          }
          if (owners.length > 1) {
            this.error('AX2111', `'${name}' is a value of several options of '${kw}': ${owners.join(', ')}`, w.span, [
              `write the option name: ${owners[0]} ${name}`,
            ]);
            break;
          }
          const words = [
            ...Object.keys(pass.options).filter((n) => n !== pass.positional),
            ...Object.entries(pass.options).flatMap(([n, o]) =>
              n !== pass.positional && o.type === 'enum' ? (o.values ?? []) : [],
            ),
          ];
          const names = Object.keys(pass.options);
          this.error('AX2102', `pass '${kw}' has no option '${name}'`, w.span, [
            ...hint(name, words),
            names.length ? `options of '${kw}': ${names.join(', ')}` : `'${kw}' takes no options`,
          ]);
          // skip the value that probably belongs to the unknown option
          const next = args[i + 1];
          if (next?.kind === 'values' && next.items.every((x) => x.kind !== 'word')) i++;
          break;
        }
      }
    }
    if (exceptLayers) {
      const ex = this.layerSelector(exceptLayers.sel);
      if (ex) {
        const cur = options.get('layers');
        const base = (cur?.value as LayerSelector | undefined) ?? { all: true, include: [], exclude: [] };
        const merged: LayerSelector = { ...base, exclude: [...base.exclude, ...ex.include] };
        if (ex.all) {
          this.error('AX2104', `'except layers all' leaves no layer for '${kw}'`, exceptLayers.span);
        } else
          options.set('layers', {
            value: merged,
            span: cur ? spanUnion(cur.span, exceptLayers.span) : exceptLayers.span,
          });
      }
    }
    const stepHasErrors = () => this.diagnostics.slice(before).some((d) => d.severity === 'error');
    // a missing required option is often a misspelt one, reported above: say it only when nothing else is wrong
    if (!stepHasErrors())
      for (const [name, sp] of Object.entries(pass.options))
        if (sp.required && !options.has(name) && sp.default === undefined)
          this.error('AX2109', `'${kw}' needs option '${name}': ${sp.summary}`, s.keyword.span, [
            name === pass.positional
              ? `write it right after the keyword: ${kw} ${example(sp)}`
              : `e.g. ${kw} ${name} ${example(sp)}`,
          ]);
    for (const req of pass.requires ?? []) {
      if (facts.has(req)) continue;
      const providers = this.registry
        .all()
        .filter((p) => p.provides?.includes(req))
        .map((p) => p.name);
      this.error('AX2301', `'${kw}' needs ${req}, which no earlier step provides`, s.keyword.span, [
        providers.length
          ? `add a step before this one that provides it: ${providers.join(' or ')}`
          : `no registered pass provides '${req}'`,
      ]);
    }
    for (const f of pass.provides ?? []) facts.add(f);
    if (stepHasErrors()) return undefined;
    const raw: Record<string, unknown> = {};
    for (const [k, v] of options) raw[k] = v.value;
    return { pass: kw, options: withDefaults(pass, raw), span: s.span };
  }

  /** A number (percent → fraction when the spec allows it), with the range check. */
  private number(n: A.NumberValue, sp: OptionSpec, name: string, kw: string): number | undefined {
    // a bound (`keep >= 25%`) is a fraction by nature: percents are allowed unless the schema says percent: false
    const percentOk = sp.type === 'bound' ? sp.percent !== false : Boolean(sp.percent);
    if (n.percent && !percentOk) {
      this.error('AX2103', `option '${name}' of '${kw}' takes a plain number, not a percent`, n.span, [
        `if you mean the fraction, write ${n.value / 100}`,
      ]);
      return undefined;
    }
    const value = n.percent ? n.value / 100 : n.value;
    if (sp.type === 'integer' && !Number.isInteger(value)) {
      this.error('AX2103', `option '${name}' of '${kw}' takes a whole number, got ${n.text}`, n.span);
      return undefined;
    }
    const show = (x: number) => (n.percent ? `${Math.round(x * 1e6) / 1e4}%` : String(x));
    if (sp.min !== undefined && value < sp.min) {
      this.error('AX2104', `option '${name}' of '${kw}' must be at least ${show(sp.min)}, got ${n.text}`, n.span);
      return undefined;
    }
    if (sp.max !== undefined && value > sp.max) {
      this.error('AX2104', `option '${name}' of '${kw}' must be at most ${show(sp.max)}, got ${n.text}`, n.span);
      return undefined;
    }
    return value;
  }

  /** Convert a value list to an option's type; reports and returns undefined on a mismatch. */
  private convert(l: A.ValueList, sp: OptionSpec, name: string, kw: string): unknown {
    const single = l.items.length === 1 ? l.items[0] : undefined;
    const wrong = (what: string) => {
      this.error('AX2103', `option '${name}' of '${kw}' takes ${what}, got '${listText(l)}'`, l.span, [
        `e.g. ${name} ${example(sp)}`,
      ]);
      return undefined;
    };
    switch (sp.type) {
      case 'number':
      case 'integer':
        if (single?.kind !== 'number') return wrong(sp.type === 'integer' ? 'a whole number' : 'a number');
        return this.number(single, sp, name, kw);
      case 'boolean':
        if (single?.kind !== 'word' || (single.name !== 'true' && single.name !== 'false'))
          return wrong('true or false');
        return single.name === 'true';
      case 'string':
        if (single?.kind === 'string') return single.value;
        if (single?.kind === 'word' && !single.arg) return single.name;
        return wrong('a string');
      case 'enum': {
        const w =
          single?.kind === 'word' && !single.arg ? single.name : single?.kind === 'string' ? single.value : undefined;
        if (w === undefined) return wrong(`one of ${(sp.values ?? []).join(', ')}`);
        if (sp.values && !sp.values.includes(w)) {
          this.error('AX2105', `'${w}' is not a value of option '${name}' of '${kw}'`, l.span, [
            ...hint(w, sp.values),
            `values: ${sp.values.join(', ')}`,
          ]);
          return undefined;
        }
        return w;
      }
      case 'data': {
        if (single?.kind !== 'word' || single.arg) return wrong('the name of a data source');
        return this.dataRef({ kind: 'name', text: single.name, span: single.span }) ? single.name : undefined;
      }
      case 'names': {
        const items: NamedItem[] = [];
        let ok = true;
        for (const v of l.items) {
          if (v.kind !== 'word') {
            this.error('AX2103', `option '${name}' of '${kw}' takes names, got '${valueText(v)}'`, v.span, [
              `e.g. ${example(sp)}`,
            ]);
            ok = false;
            continue;
          }
          if (sp.values && !sp.values.includes(v.name)) {
            this.error('AX2105', `'${v.name}' is not a value of option '${name}' of '${kw}'`, v.span, [
              ...hint(v.name, sp.values),
              `values: ${sp.values.join(', ')}`,
            ]);
            ok = false;
            continue;
          }
          if (v.arg && v.arg.percent) {
            this.error('AX2103', `the argument of '${v.name}' is a plain number, not a percent`, v.arg.span);
            ok = false;
            continue;
          }
          items.push(v.arg ? { name: v.name, arg: v.arg.value } : { name: v.name });
        }
        return ok ? items : undefined;
      }
      case 'layers': {
        const items: (A.NumberValue | A.RangeValue)[] = [];
        let all = false;
        for (const v of l.items) {
          if (v.kind === 'number' || v.kind === 'range') items.push(v);
          else if (v.kind === 'all') all = true;
          else return wrong('layers (e.g. 0, 2..3 or all)');
        }
        return this.layerSelector({ kind: 'selector', all, items, span: l.span });
      }
      case 'condition':
        return wrong(`a condition, written 'where METRIC < NUMBER'`);
      case 'bound':
        return wrong(`a bound, written 'keep >= NUMBER'`);
      default: {
        const plain = (v: A.Value): unknown =>
          v.kind === 'number'
            ? v.percent
              ? v.value / 100
              : v.value
            : v.kind === 'string'
              ? v.value
              : v.kind === 'word'
                ? v.name
                : valueText(v);
        return single ? plain(single) : l.items.map(plain);
      }
    }
  }

  /** Expand a selector; checks indices are whole, non-negative, ranges ascending, and within the model (AX2201). */
  private layerSelector(sel: A.LayerSelectorAst): LayerSelector | undefined {
    if (sel.all) return { all: true, include: [], exclude: [] };
    const include: number[] = [];
    let ok = true;
    const n = this.info.layers;
    const check = (x: A.NumberValue): boolean => {
      if (x.percent || !Number.isInteger(x.value)) {
        this.error('AX2103', `a layer is a whole number, got ${x.text}`, x.span);
        return false;
      }
      if (x.value < 0) {
        this.error('AX2104', `layers are numbered from 0, got ${x.text}`, x.span);
        return false;
      }
      if (n !== undefined && x.value >= n) {
        this.error(
          'AX2201',
          `layer ${x.value} does not exist: the model has ${n} layer${n === 1 ? '' : 's'} (${n === 1 ? '0' : `0..${n - 1}`})`,
          x.span,
        );
        return false;
      }
      return true;
    };
    for (const it of sel.items) {
      if (it.kind === 'number') {
        if (check(it)) include.push(it.value);
        else ok = false;
      } else {
        const a = check(it.from);
        const b = check(it.to);
        if (!a || !b) {
          ok = false;
          continue;
        }
        if (it.to.value < it.from.value) {
          this.error('AX2104', `range ${it.from.text}..${it.to.text} is empty: write the lower layer first`, it.span);
          ok = false;
          continue;
        }
        for (let k = it.from.value; k <= it.to.value; k++) include.push(k);
      }
    }
    return ok ? { include: [...new Set(include)], exclude: [] } : undefined;
  }

  // ---------------------------------------------------------------- verify

  private lowerVerify(s: A.VerifyStmt): VerifySpec | undefined {
    const before = this.diagnostics.length;
    this.dataRef(s.data);
    const spec: VerifySpec = { data: s.data.text, outputs: [], span: s.span };
    const outputs = new Map<string, OutputTolerance>();
    const fieldSpans = new Map<string, A.Span>();
    const setOnce = (key: string, span: A.Span, apply: () => void) => {
      const prev = fieldSpans.get(key);
      if (prev) {
        this.error('AX2108', `requirement '${key}' is given twice in this verify`, span, [
          `first given at col ${prev.col}`,
        ]);
        return;
      }
      fieldSpans.set(key, span);
      apply();
    };
    for (const r of s.requirements) this.requirement(r, spec, outputs, setOnce);
    spec.outputs = [...outputs.values()];
    if (this.diagnostics.slice(before).some((d) => d.severity === 'error')) return undefined;
    return spec;
  }

  private requirement(
    r: A.Requirement,
    spec: VerifySpec,
    outputs: Map<string, OutputTolerance>,
    setOnce: (key: string, span: A.Span, apply: () => void) => void,
  ): void {
    const t = r.terms;
    const isWord = (x: A.Term | undefined, w?: string): x is A.Name =>
      x?.kind === 'name' && (w === undefined || x.text === w);
    const isOp = (x: A.Term | undefined, op: string) => x?.kind === 'op' && x.op === op;
    const num = (x: A.Term | undefined): x is A.NumberValue => x?.kind === 'number';
    const fail = (code: string, msg: string, span: A.Span, notes?: string[]) => this.error(code, msg, span, notes);
    const subj = r.subject.text;
    if (subj === 'accuracy') {
      if (isWord(t[0], 'drop')) {
        // accuracy drop <= X [points]
        if (!isOp(t[1], '<=')) return fail('AX2105', `write 'accuracy drop <= X points'`, (t[1] ?? t[0]).span);
        const x = t[2];
        if (!num(x)) return fail('AX2103', `'accuracy drop <=' needs a number of percentage points`, (x ?? t[1]!).span);
        if (x.percent)
          return fail('AX2103', `an accuracy drop is in percentage points, not a percent`, x.span, [
            `write ${x.value} points`,
          ]);
        const rest = t.slice(3);
        if (rest.length > 1 || (rest[0] && !isWord(rest[0], 'points')))
          return fail('AX2102', `unexpected '${termText(rest[0]!)}' after the accuracy drop`, rest[0]!.span, [
            `write 'accuracy drop <= ${x.text} points'`,
          ]);
        setOnce('accuracy drop', r.span, () => (spec.accuracyDrop = x.value));
        return;
      }
      if (isOp(t[0], '>=')) {
        const x = t[1];
        if (!num(x))
          return fail('AX2103', `'accuracy >=' needs a percent`, (x ?? t[0]!).span, ['e.g. accuracy >= 85%']);
        const v = x.percent ? x.value / 100 : x.value;
        if (v < 0 || v > 1)
          return fail(
            'AX2104',
            `an accuracy is between 0% and 100%, got ${x.text}`,
            x.span,
            x.percent ? [] : [`write ${x.value}% for a percent`],
          );
        if (t.length > 2) return fail('AX2102', `unexpected '${termText(t[2]!)}' after the accuracy`, t[2]!.span);
        setOnce('accuracy', r.span, () => (spec.minAccuracy = v));
        return;
      }
      return fail(
        'AX2105',
        `an accuracy requirement is 'accuracy drop <= X points' or 'accuracy >= X%'`,
        (t[0] ?? r.subject).span,
      );
    }
    if (
      isWord(t[0], 'drop') ||
      (subj !== '*' && didYouMean(subj, ['accuracy']) === 'accuracy' && !this.info.outputs?.includes(subj))
    )
      return fail('AX2105', `unknown metric '${subj}'`, r.subject.span, [`did you mean 'accuracy'?`]);
    // OUTPUT (atol X | rtol X | cosine >= X | argmax >= X%)+
    if (this.info.outputs && subj !== '*' && !this.info.outputs.includes(subj)) {
      fail('AX2204', `the model has no output '${subj}'`, r.subject.span, [
        ...hint(subj, this.info.outputs),
        `outputs: ${this.info.outputs.join(', ')}`,
      ]);
      return;
    }
    if (t.length === 0)
      return fail('AX2109', `'${subj}' needs a tolerance: atol X, rtol X, cosine >= X or argmax >= X%`, r.subject.span);
    const tol: OutputTolerance = outputs.get(subj) ?? { output: subj, span: r.span };
    const METRICS = ['atol', 'rtol', 'cosine', 'argmax'];
    let k = 0;
    while (k < t.length) {
      const w = t[k]!;
      if (!isWord(w) || !METRICS.includes(w.text)) {
        return fail('AX2105', `unknown output requirement '${termText(w)}'`, w.span, [
          ...(isWord(w) ? hint(w.text, METRICS) : []),
          'write atol X, rtol X, cosine >= X or argmax >= X%',
        ]);
      }
      const m = w.text as 'atol' | 'rtol' | 'cosine' | 'argmax';
      if (m === 'atol' || m === 'rtol') {
        const x = t[k + 1];
        if (!num(x) || x.percent) return fail('AX2103', `'${m}' needs a plain number, e.g. ${m} 1e-3`, (x ?? w).span);
        if (x.value < 0) return fail('AX2104', `'${m}' must be at least 0, got ${x.text}`, x.span);
        setOnce(`${subj} ${m}`, spanUnion(w.span, x.span), () => (tol[m] = x.value));
        k += 2;
      } else {
        if (!isOp(t[k + 1], '>=')) return fail('AX2105', `write '${m} >= X'`, (t[k + 1] ?? w).span);
        const x = t[k + 2];
        if (!num(x)) return fail('AX2103', `'${m} >=' needs a number`, (x ?? t[k + 1]!).span);
        if (m === 'cosine' && x.percent)
          return fail('AX2103', `a cosine similarity is a plain number, e.g. cosine >= 0.999`, x.span);
        const v = x.percent ? x.value / 100 : x.value;
        if (v < 0 || v > 1)
          return fail(
            'AX2104',
            `'${m}' must be between 0 and 1${m === 'argmax' ? ' (or 0% and 100%)' : ''}, got ${x.text}`,
            x.span,
          );
        setOnce(`${subj} ${m}`, spanUnion(w.span, x.span), () => (tol[m] = v));
        k += 3;
      }
    }
    outputs.set(subj, tol);
  }
}

function termText(t: A.Term): string {
  return t.kind === 'name' ? t.text : t.kind === 'op' ? t.op : t.text;
}

function wordList(n: A.Name): A.ValueList {
  return { kind: 'values', items: [{ kind: 'word', name: n.text, span: n.span }], span: n.span };
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/** An example value for a spec, for hints. */
export function example(sp: OptionSpec): string {
  switch (sp.type) {
    case 'number':
      return sp.percent ? '25%' : String(sp.default ?? sp.min ?? 1);
    case 'integer':
      return String(sp.default ?? sp.min ?? 1);
    case 'boolean':
      return 'true';
    case 'string':
      return '"text"';
    case 'enum':
      return sp.values?.[0] ?? 'VALUE';
    case 'layers':
      return '0, 2..3';
    case 'names':
      return (sp.values ?? ['NAME']).slice(0, 2).join(', ');
    case 'data':
      return 'dev';
    case 'condition':
      return 'where METRIC < 0';
    case 'bound':
      return 'keep >= 25%';
    default:
      return 'VALUE';
  }
}

function firstLine(file: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(1 << 16);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, n).toString('utf8');
    const nl = text.indexOf('\n');
    return (nl < 0 ? text : text.slice(0, nl)).replace(/\r$/, '');
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function firstJsonlRow(file: string): Record<string, unknown> | undefined {
  const line = firstLine(file);
  if (!line) return undefined;
  try {
    const v = JSON.parse(line) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
