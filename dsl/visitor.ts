/**
 * Lexing, parsing and the CST visitor that builds the typed AST (dsl/ast.ts). Syntax errors become diagnostics
 * AX2001..AX2005 with the location of the offending token; parsing continues after an error (chevrotain
 * recovery), so one run reports the first error of every broken statement.
 */
import { EOF, type CstNode, type IRecognitionException, type IToken } from 'chevrotain';
import { diag, type Diagnostic } from '../src/diagnostics/index.js';
import type * as A from './ast.js';
import { planParser } from './parser.js';
import * as T from './tokens.js';

type Children = Record<string, (CstNode | IToken)[] | undefined>;

const isToken = (x: CstNode | IToken): x is IToken => (x as IToken).image !== undefined;

/** Position helper: line/col of a character offset (for EOF and lexer errors). */
class Positions {
  private readonly lineStarts: number[] = [0];
  constructor(readonly source: string) {
    for (let i = 0; i < source.length; i++) if (source[i] === '\n') this.lineStarts.push(i + 1);
  }
  at(offset: number): { line: number; col: number } {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - this.lineStarts[lo]! + 1 };
  }
  span(file: string, start: number, end: number): A.Span {
    const a = this.at(start);
    const b = this.at(Math.max(start, end - 1));
    return { file, line: a.line, col: a.col, endLine: b.line, endCol: b.col, start, end };
  }
}

const validToken = (t: IToken): boolean => !t.isInsertedInRecovery && Number.isFinite(t.startOffset);

function tokensOf(node: CstNode | IToken, out: IToken[] = []): IToken[] {
  if (isToken(node)) {
    if (validToken(node)) out.push(node);
  } else for (const k of Object.keys(node.children)) for (const c of node.children[k]!) tokensOf(c, out);
  return out;
}

function unescape(lit: string): string {
  const body = lit.slice(1, -1);
  return body.replace(/\\(.)/g, (m, ch: string) =>
    ch === 'n' ? '\n' : ch === 't' ? '\t' : ch === '"' ? '"' : ch === '\\' ? '\\' : m,
  );
}

function compareOp(image: string): A.CompareOperator {
  return image as A.CompareOperator;
}

const BaseVisitor = planParser.getBaseCstVisitorConstructorWithDefaults();

/** Builds the AST. Tolerates the partial CST that error recovery leaves (missing children are skipped). */
class AstBuilder extends BaseVisitor {
  constructor(
    readonly file: string,
    readonly pos: Positions,
  ) {
    super();
    this.validateVisitor();
  }

  spanOf(...nodes: (CstNode | IToken | undefined)[]): A.Span {
    const toks = nodes.flatMap((n) => (n ? tokensOf(n) : []));
    if (toks.length === 0) return this.pos.span(this.file, this.pos.source.length, this.pos.source.length);
    let start = Infinity;
    let end = -Infinity;
    for (const t of toks) {
      start = Math.min(start, t.startOffset);
      end = Math.max(end, (t.endOffset ?? t.startOffset) + 1);
    }
    return this.pos.span(this.file, start, end);
  }

  tok(ch: Children, key: string, i = 0): IToken | undefined {
    const x = ch[key]?.[i];
    return x && isToken(x) && validToken(x) ? x : undefined;
  }
  sub(ch: Children, key: string, i = 0): CstNode | undefined {
    const x = ch[key]?.[i];
    return x && !isToken(x) ? x : undefined;
  }
  name(t: IToken): A.Name {
    return { kind: 'name', text: t.image, span: this.spanOf(t) };
  }
  num(t: IToken, pct?: IToken): A.NumberValue {
    return {
      kind: 'number',
      value: Number(t.image),
      percent: pct !== undefined,
      text: t.image + (pct ? '%' : ''),
      span: this.spanOf(t, pct),
    };
  }

  plan(ch: Children): A.PlanAst {
    const statements: A.Statement[] = [];
    for (const s of ch.statement ?? []) {
      const st = isToken(s) ? undefined : (this.visit(s) as A.Statement | undefined);
      if (st) statements.push(st);
    }
    return { kind: 'plan', file: this.file, statements, span: this.pos.span(this.file, 0, this.pos.source.length) };
  }

  statement(ch: Children): A.Statement | undefined {
    const inner = this.sub(ch, 'dataStmt') ?? this.sub(ch, 'verifyStmt') ?? this.sub(ch, 'stepStmt');
    return inner ? (this.visit(inner) as A.Statement | undefined) : undefined;
  }

  dataStmt(ch: Children, node?: CstNode): A.DataStmt | undefined {
    const name = this.tok(ch, 'name');
    const format = this.tok(ch, 'format');
    const path = this.tok(ch, 'path');
    if (!name || !format || !path) return undefined;
    const options: A.DataOption[] = [];
    const names = ch.optionName ?? [];
    names.forEach((n, i) => {
      const v = this.sub(ch, 'optionValue', i);
      if (!isToken(n) || !validToken(n) || !v) return;
      const value = this.visit(v) as A.Value | undefined;
      if (value) options.push({ name: this.name(n), value, span: this.spanOf(n, v) });
    });
    return {
      kind: 'data',
      name: this.name(name),
      format: this.name(format),
      path: { kind: 'string', value: unescape(path.image), span: this.spanOf(path) },
      options,
      span: this.spanOf(...Object.values(ch).flatMap((x) => x ?? []), node),
    };
  }

  verifyStmt(ch: Children): A.VerifyStmt | undefined {
    const data = this.tok(ch, 'data');
    if (!data) return undefined;
    const requirements: A.Requirement[] = [];
    for (const r of ch.requirement ?? []) {
      const req = isToken(r) ? undefined : (this.visit(r) as A.Requirement | undefined);
      if (req) requirements.push(req);
    }
    return {
      kind: 'verify',
      data: this.name(data),
      requirements,
      span: this.spanOf(...Object.values(ch).flatMap((x) => x ?? [])),
    };
  }

  requirement(ch: Children): A.Requirement | undefined {
    const subj = this.tok(ch, 'subject');
    if (!subj) return undefined;
    const subject: A.Name = {
      kind: 'name',
      text: subj.tokenType === T.StringLit ? unescape(subj.image) : subj.tokenType === T.Identifier ? subj.image : '*',
      span: this.spanOf(subj),
    };
    const terms: A.Term[] = [];
    const raw = (ch.term ?? []).filter((t): t is IToken => isToken(t) && validToken(t));
    for (let i = 0; i < raw.length; i++) {
      const t = raw[i]!;
      if (t.tokenType === T.NumberLit) {
        const pct = raw[i + 1]?.tokenType === T.Percent ? raw[++i] : undefined;
        terms.push(this.num(t, pct));
      } else if (t.tokenType === T.Identifier) terms.push(this.name(t));
      else terms.push({ kind: 'op', op: compareOp(t.image), span: this.spanOf(t) });
    }
    return { kind: 'requirement', subject, terms, span: this.spanOf(subj, ...raw) };
  }

  stepStmt(ch: Children): A.StepStmt | undefined {
    const kw = this.tok(ch, 'keyword');
    if (!kw) return undefined;
    const args: A.StepArg[] = [];
    for (const a of ch.stepArg ?? []) {
      const arg = isToken(a) ? undefined : (this.visit(a) as A.StepArg | undefined);
      if (arg) args.push(arg);
    }
    return {
      kind: 'step',
      keyword: this.name(kw),
      args,
      span: this.spanOf(kw, ...(ch.stepArg ?? [])),
    };
  }

  stepArg(ch: Children, node?: CstNode): A.StepArg | undefined {
    const all = Object.values(ch).flatMap((x) => x ?? []);
    const span = this.spanOf(...all, node);
    const nameTok = this.tok(ch, 'name');
    if (this.tok(ch, 'On')) return nameTok ? { kind: 'on', data: this.name(nameTok), span } : undefined;
    if (this.tok(ch, 'By')) return nameTok ? { kind: 'by', value: this.name(nameTok), span } : undefined;
    if (this.tok(ch, 'Except')) {
      const sel = this.sub(ch, 'selector');
      if (sel) {
        const selector = this.visit(sel) as A.LayerSelectorAst | undefined;
        return selector ? { kind: 'except', selector, span } : undefined;
      }
      const vl = this.sub(ch, 'valueList');
      const values = vl ? (this.visit(vl) as A.ValueList | undefined) : undefined;
      return nameTok && values ? { kind: 'except', name: this.name(nameTok), values, span } : undefined;
    }
    if (this.tok(ch, 'Layers')) {
      const sel = this.sub(ch, 'selector');
      const selector = sel ? (this.visit(sel) as A.LayerSelectorAst | undefined) : undefined;
      return selector ? { kind: 'layers', selector, span } : undefined;
    }
    const opTok = this.tok(ch, 'CompareOp');
    const numNode = this.sub(ch, 'number');
    const value = numNode ? (this.visit(numNode) as A.NumberValue | undefined) : undefined;
    if (this.tok(ch, 'Where')) {
      if (!nameTok || !opTok || !value) return undefined;
      return {
        kind: 'where',
        metric: this.name(nameTok),
        op: compareOp(opTok.image),
        opSpan: this.spanOf(opTok),
        value,
        span,
      };
    }
    if (this.tok(ch, 'Keep')) {
      if (!opTok || !value) return undefined;
      return { kind: 'keep', op: compareOp(opTok.image), opSpan: this.spanOf(opTok), value, span };
    }
    const vl = this.sub(ch, 'valueList');
    return vl ? (this.visit(vl) as A.ValueList | undefined) : undefined;
  }

  selector(ch: Children): A.LayerSelectorAst | undefined {
    const span = this.spanOf(...Object.values(ch).flatMap((x) => x ?? []));
    if (this.tok(ch, 'All')) return { kind: 'selector', all: true, items: [], span };
    const items: (A.NumberValue | A.RangeValue)[] = [];
    for (const it of ch.layerItem ?? []) {
      const v = isToken(it) ? undefined : (this.visit(it) as A.NumberValue | A.RangeValue | undefined);
      if (v) items.push(v);
    }
    return items.length ? { kind: 'selector', all: false, items, span } : undefined;
  }

  layerItem(ch: Children): A.NumberValue | A.RangeValue | undefined {
    const from = this.tok(ch, 'from');
    if (!from) return undefined;
    const to = this.tok(ch, 'to');
    if (!to) return this.num(from);
    return { kind: 'range', from: this.num(from), to: this.num(to), span: this.spanOf(from, to) };
  }

  valueList(ch: Children): A.ValueList | undefined {
    const items: A.Value[] = [];
    for (const v of ch.value ?? []) {
      const x = isToken(v) ? undefined : (this.visit(v) as A.Value | undefined);
      if (x) items.push(x);
    }
    return items.length
      ? { kind: 'values', items, span: this.spanOf(...Object.values(ch).flatMap((x) => x ?? [])) }
      : undefined;
  }

  value(ch: Children): A.Value | undefined {
    const n = this.tok(ch, 'NumberLit');
    if (n) {
      const to = this.tok(ch, 'to');
      if (to) return { kind: 'range', from: this.num(n), to: this.num(to), span: this.spanOf(n, to) };
      return this.num(n, this.tok(ch, 'Percent'));
    }
    const s = this.tok(ch, 'StringLit');
    if (s) return { kind: 'string', value: unescape(s.image), span: this.spanOf(s) };
    const w = this.tok(ch, 'Identifier');
    if (w) {
      const argTok = this.tok(ch, 'arg');
      const v: A.WordValue = { kind: 'word', name: w.image, span: this.spanOf(w, argTok, this.tok(ch, 'RParen')) };
      if (argTok) v.arg = this.num(argTok);
      return v;
    }
    const all = this.tok(ch, 'All');
    if (all) return { kind: 'all', span: this.spanOf(all) };
    return undefined;
  }

  number(ch: Children): A.NumberValue | undefined {
    const n = this.tok(ch, 'NumberLit');
    return n ? this.num(n, this.tok(ch, 'Percent')) : undefined;
  }
}

function syntaxCode(e: IRecognitionException): string {
  switch (e.name) {
    case 'MismatchedTokenException':
      return 'AX2003';
    case 'NotAllInputParsedException':
      return 'AX2005';
    default:
      return 'AX2004';
  }
}

export interface ParseResult {
  ast: A.PlanAst;
  diagnostics: Diagnostic[];
  /** Lines of statements that had syntax errors (left out of the AST). */
  errorLines: Set<number>;
  /** Names declared by `data` statements that had syntax errors (so uses of them are not reported again). */
  brokenData: Set<string>;
}

/** Lex and parse a plan into its AST; syntax errors are diagnostics (the AST holds what could be recovered). */
export function parsePlan(source: string, file: string): ParseResult {
  const pos = new Positions(source);
  const diagnostics: Diagnostic[] = [];
  const lexed = T.planLexer.tokenize(source);
  for (const e of lexed.errors) {
    const ch = source[e.offset] ?? '';
    const span = pos.span(file, e.offset, e.offset + Math.max(1, ch === '"' ? e.length : 1));
    if (ch === '"') {
      diagnostics.push(
        diag('AX2002', 'error', "unterminated string: add the closing '\"' on the same line", {
          kind: 'plan',
          ...span,
        }),
      );
    } else {
      diagnostics.push(
        diag('AX2001', 'error', `unexpected character '${ch}'`, { kind: 'plan', ...span }, [
          'names are letters, digits, - and _; strings are in double quotes; comments start with #',
        ]),
      );
    }
  }
  // line continuation: a newline right after ',', ';' or ':' does not end the statement; then one statement a line
  const lines: IToken[][] = [[]];
  let prev: IToken | undefined;
  for (const t of lexed.tokens) {
    if (t.tokenType === T.Newline) {
      if (!(prev && T.CONTINUES_LINE.has(prev.tokenType)) && lines[lines.length - 1]!.length) lines.push([]);
    } else lines[lines.length - 1]!.push(t);
    if (t.tokenType !== T.Newline) prev = t; // blank lines after a continuation are skipped too
  }
  const errorLines = new Set<number>();
  for (const d of diagnostics) if (d.location.kind === 'plan') errorLines.add(d.location.line);
  const builder = new AstBuilder(file, pos);
  const statements: A.Statement[] = [];
  for (const line of lines) {
    if (!line.length) continue;
    const last = line[line.length - 1]!;
    const lineEnd = (last.endOffset ?? last.startOffset) + 1;
    planParser.input = line;
    const cst = planParser.statement();
    // one syntax error per statement: later ones are usually consequences of the first
    const e = planParser.errors[0];
    const firstLine = line[0]!.startLine ?? 0;
    if (e && !errorLines.has(firstLine)) {
      const t = e.token;
      const span =
        t.tokenType === EOF || !Number.isFinite(t.startOffset)
          ? pos.span(file, lineEnd, lineEnd + 1)
          : pos.span(file, t.startOffset, (t.endOffset ?? t.startOffset) + 1);
      diagnostics.push(diag(syntaxCode(e), 'error', e.message, { kind: 'plan', ...span }));
    }
    if (e || errorLines.has(firstLine)) {
      for (let l = firstLine; l <= (last.endLine ?? firstLine); l++) errorLines.add(l);
      continue; // a statement with a syntax error is not checked further
    }
    const st = builder.visit(cst) as A.Statement | undefined;
    if (st) statements.push(st);
  }
  const ast: A.PlanAst = { kind: 'plan', file, statements, span: pos.span(file, 0, source.length) };
  const brokenData = new Set<string>();
  const srcLines = source.split(/\r?\n/);
  for (const l of errorLines) {
    const m = /^\s*data\s+([A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)/.exec(srcLines[l - 1] ?? '');
    if (m) brokenData.add(m[1]!);
  }
  return { ast, diagnostics, errorLines, brokenData };
}
