import type { Diagnostic, Location, SourceSpan } from '../diagnostics/index.js';
import type { Model } from '../ir/index.js';

/**
 * Option schema of a pass. The DSL checks plan values against it (type, range, allowed values) and fills defaults.
 * - `number`/`integer`: a number, optionally with min/max; `percent: true` also accepts `25%` (stored as 0.25).
 * - `enum`: one of `values`.
 * - `layers`: a layer selector (list, range, `all`, `except`), stored as a LayerSelector.
 * - `names`: a list of identifiers (e.g. `heads, ffn-groups(64)`), each optionally with one numeric argument.
 * - `data`: the name of a data source declared in the plan.
 * - `boolean`, `string`.
 * - `condition`: written `where METRIC OP NUMBER[%]` (e.g. `where significance < 0`), stored as a Condition.
 * - `bound`: written `keep OP NUMBER[%]` (e.g. `keep >= 25%`), stored as a Bound (a percent is stored as a fraction;
 *   bounds accept percents unless `percent: false`).
 */
export type OptionType =
  'number' | 'integer' | 'boolean' | 'string' | 'enum' | 'layers' | 'names' | 'data' | 'condition' | 'bound';

export type CompareOp = '<' | '<=' | '>' | '>=' | '==' | '!=';

/** `where significance < 0.001` → { metric: 'significance', op: '<', value: 0.001 } (a percent is a fraction). */
export interface Condition {
  metric: string;
  op: CompareOp;
  value: number;
}

/** `keep >= 25%` → { op: '>=', value: 0.25 }. */
export interface Bound {
  op: CompareOp;
  value: number;
}

export interface OptionSpec {
  type: OptionType;
  summary: string;
  default?: unknown;
  min?: number;
  max?: number;
  percent?: boolean;
  values?: readonly string[];
  required?: boolean;
}

/** A layer selector: `all`, lists and ranges, minus exceptions. Resolved against the model's layer count. */
export interface LayerSelector {
  all?: boolean;
  include: number[];
  exclude: number[];
}

export function selectLayers(sel: LayerSelector | undefined, layerCount: number): number[] {
  const base = !sel || sel.all || sel.include.length === 0 ? [...Array(layerCount).keys()] : sel.include;
  const ex = new Set(sel?.exclude ?? []);
  return [...new Set(base)].filter((i) => i >= 0 && i < layerCount && !ex.has(i)).sort((a, b) => a - b);
}

/** A named item with an optional numeric argument: `ffn-groups(64)` is { name: 'ffn-groups', arg: 64 }. */
export interface NamedItem {
  name: string;
  arg?: number;
}

/** Facts are named results that passes provide and require (e.g. 'layers', 'significance'). */
export type FactName = string;

export interface PassContext {
  model: Model;
  /** Facts computed by earlier passes, by name. */
  facts: Map<FactName, unknown>;
  /** Plan data sources, loaded lazily by name (see src/verify). */
  data: DataProvider;
  /** Report a warning or note (errors: throw AxcError). */
  report(d: Diagnostic): void;
  /** Progress for long steps (a bar on a terminal, nothing otherwise). */
  progress(label: string, done: number, total: number): void;
  /** Where this step was configured in the plan, for messages. */
  span?: SourceSpan;
  /** Free-form detail that goes to the JSON report under this step (decisions, scores...). */
  details: Record<string, unknown>;
  /** Number of threads onnxruntime may use (default: all cores). */
  threads?: number;
}

export interface DataProvider {
  /** Names of declared data sources. */
  names(): string[];
  /** Load a data source by name (throws AxcError with the plan location if it cannot be loaded). */
  get(name: string): Promise<unknown>;
}

export interface PassResult {
  /** Whether the model changed. The manager relies on it: verify and clean up only after a change. */
  changed: boolean;
  /** Counters for the summary and the report: nodesRemoved, headsRemoved, bytesSaved, ... */
  stats?: Record<string, number>;
  /** One line for the summary. */
  summary?: string;
}

export interface PassDef<O = Record<string, unknown>> {
  /** The DSL keyword. */
  name: string;
  summary: string;
  options: Record<string, OptionSpec>;
  /** The first positional argument of the statement (e.g. `prune heads`) maps to this option. */
  positional?: string;
  requires?: FactName[];
  provides?: FactName[];
  /** Message ids this pass may emit, code -> description (typescript-eslint style). */
  messages?: Record<string, string>;
  /** Whether this is a cleanup pass (run between steps by the manager). */
  cleanup?: boolean;
  run(ctx: PassContext, options: O): PassResult | Promise<PassResult>;
}

export type AnyPass = PassDef<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface PlanStep {
  pass: string;
  options: Record<string, unknown>;
  span?: SourceSpan;
}

export function locOf(span: SourceSpan | undefined): Location {
  return span ? { kind: 'plan', ...span } : { kind: 'none' };
}
