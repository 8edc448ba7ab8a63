/**
 * The typed AST of a plan. Every node carries its SourceSpan (1-based line/col, inclusive end column; 0-based
 * `start`, exclusive `end`). The AST is generic: a step is a keyword with arguments; what the arguments mean is
 * decided when lowering, from the pass's option schema (dsl/lower.ts).
 */
import type { SourceSpan } from '../src/diagnostics/index.js';

export type Span = Required<SourceSpan>;

export interface Name {
  kind: 'name';
  text: string;
  span: Span;
}

export type CompareOperator = '<' | '<=' | '>' | '>=' | '==' | '!=';

/** A number as written: `16`, `1e-3`, `25%` (value 25, percent true). */
export interface NumberValue {
  kind: 'number';
  value: number;
  percent: boolean;
  text: string;
  span: Span;
}

/** `2..3` (inclusive). */
export interface RangeValue {
  kind: 'range';
  from: NumberValue;
  to: NumberValue;
  span: Span;
}

export interface StringValue {
  kind: 'string';
  value: string;
  span: Span;
}

/** A bare word, optionally with one numeric argument: `ffn-groups(64)`. */
export interface WordValue {
  kind: 'word';
  name: string;
  arg?: NumberValue;
  span: Span;
}

export interface AllValue {
  kind: 'all';
  span: Span;
}

export type Value = NumberValue | RangeValue | StringValue | WordValue | AllValue;

/** Comma-separated values (`heads, ffn-groups(64)`), or a single value. */
export interface ValueList {
  kind: 'values';
  items: Value[];
  span: Span;
}

/** `all`, or a list of layer indices and ranges. */
export interface LayerSelectorAst {
  kind: 'selector';
  all: boolean;
  items: (NumberValue | RangeValue)[];
  span: Span;
}

export interface OnClause {
  kind: 'on';
  data: Name;
  span: Span;
}
export interface ByClause {
  kind: 'by';
  value: Name;
  span: Span;
}
export interface LayersClause {
  kind: 'layers';
  selector: LayerSelectorAst;
  span: Span;
}
/** `except layers 0` (selector) or `except ops MatMul, Gemm` (name + values). */
export interface ExceptClause {
  kind: 'except';
  selector?: LayerSelectorAst;
  name?: Name;
  values?: ValueList;
  span: Span;
}
export interface WhereClause {
  kind: 'where';
  metric: Name;
  op: CompareOperator;
  opSpan: Span;
  value: NumberValue;
  span: Span;
}
export interface KeepClause {
  kind: 'keep';
  op: CompareOperator;
  opSpan: Span;
  value: NumberValue;
  span: Span;
}

export type StepArg = OnClause | ByClause | LayersClause | ExceptClause | WhereClause | KeepClause | ValueList;

export interface StepStmt {
  kind: 'step';
  keyword: Name;
  args: StepArg[];
  span: Span;
}

export interface DataOption {
  name: Name;
  value: Value;
  span: Span;
}

export interface DataStmt {
  kind: 'data';
  name: Name;
  format: Name;
  path: StringValue;
  options: DataOption[];
  span: Span;
}

/** A verify term: a word (`drop`, `atol`), a comparison, or a number. */
export type Term = Name | { kind: 'op'; op: CompareOperator; span: Span } | NumberValue;

/** `accuracy drop <= 0.5 points`, `logits atol 1e-3 rtol 1e-2`: a subject and terms, interpreted when lowering. */
export interface Requirement {
  kind: 'requirement';
  /** `*` and `all` are written as '*'. */
  subject: Name;
  terms: Term[];
  span: Span;
}

export interface VerifyStmt {
  kind: 'verify';
  data: Name;
  requirements: Requirement[];
  span: Span;
}

export type Statement = DataStmt | VerifyStmt | StepStmt;

export interface PlanAst {
  kind: 'plan';
  file: string;
  statements: Statement[];
  span: Span;
}
