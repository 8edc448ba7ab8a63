/**
 * Tokens of the plan language (.ax). One file, in the order the lexer tries them.
 *
 * Lexical rules:
 * - `#` starts a comment that runs to the end of the line.
 * - Statements end at a newline. A line that ends with `,`, `;` or `:` continues on the next line.
 * - Numbers: `16`, `0.5`, `1e-3`, `-2`; a number directly followed by `%` is a percent (`25%` = 0.25).
 * - Identifiers may contain dashes and digits: `ffn-groups`, `int8`, `per-channel`, `text-pair`.
 * - Strings are double-quoted, with backslash escapes.
 * - Ranges `2..3`, lists `0, 2, 5`.
 */
import { createToken, Lexer, type TokenType } from 'chevrotain';

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t]+/, group: Lexer.SKIPPED });
export const Comment = createToken({ name: 'Comment', pattern: /#[^\r\n]*/, group: Lexer.SKIPPED });
export const Newline = createToken({ name: 'Newline', pattern: /\r?\n/, line_breaks: true, label: 'end of line' });

export const Identifier = createToken({
  name: 'Identifier',
  pattern: /[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*/,
  label: 'a name',
});

const keyword = (word: string): TokenType =>
  createToken({
    name: word[0]!.toUpperCase() + word.slice(1),
    pattern: word,
    longer_alt: Identifier,
    label: `'${word}'`,
  });

export const Data = keyword('data');
export const Verify = keyword('verify');
export const On = keyword('on');
export const By = keyword('by');
export const Layers = keyword('layers');
export const Except = keyword('except');
export const Where = keyword('where');
export const Keep = keyword('keep');
export const All = keyword('all');

export const StringLit = createToken({ name: 'StringLit', pattern: /"(?:[^"\\\r\n]|\\.)*"/, label: 'a string' });
export const DotDot = createToken({ name: 'DotDot', pattern: '..', label: "'..'" });
export const NumberLit = createToken({
  name: 'NumberLit',
  pattern: /-?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?/,
  label: 'a number',
});
export const Percent = createToken({ name: 'Percent', pattern: '%', label: "'%'" });

/** Comparison operators share the category CompareOp. */
export const CompareOp = createToken({
  name: 'CompareOp',
  pattern: Lexer.NA,
  label: 'a comparison (<, <=, >, >=, ==, !=)',
});
export const Le = createToken({ name: 'Le', pattern: '<=', categories: CompareOp, label: "'<='" });
export const Ge = createToken({ name: 'Ge', pattern: '>=', categories: CompareOp, label: "'>='" });
export const EqEq = createToken({ name: 'EqEq', pattern: '==', categories: CompareOp, label: "'=='" });
export const Ne = createToken({ name: 'Ne', pattern: '!=', categories: CompareOp, label: "'!='" });
export const Lt = createToken({ name: 'Lt', pattern: '<', categories: CompareOp, label: "'<'" });
export const Gt = createToken({ name: 'Gt', pattern: '>', categories: CompareOp, label: "'>'" });

export const Equals = createToken({ name: 'Equals', pattern: '=', label: "'='" });
export const Comma = createToken({ name: 'Comma', pattern: ',', label: "','" });
export const Semicolon = createToken({ name: 'Semicolon', pattern: ';', label: "';'" });
export const Colon = createToken({ name: 'Colon', pattern: ':', label: "':'" });
export const LParen = createToken({ name: 'LParen', pattern: '(', label: "'('" });
export const RParen = createToken({ name: 'RParen', pattern: ')', label: "')'" });
export const Star = createToken({ name: 'Star', pattern: '*', label: "'*'" });

/** Every token, in lexing order: keywords before Identifier, longer operators before shorter ones. */
export const allTokens: TokenType[] = [
  WhiteSpace,
  Comment,
  Newline,
  StringLit,
  Data,
  Verify,
  On,
  By,
  Layers,
  Except,
  Where,
  Keep,
  All,
  Identifier,
  DotDot,
  NumberLit,
  Percent,
  CompareOp,
  Le,
  Ge,
  EqEq,
  Ne,
  Lt,
  Gt,
  Equals,
  Comma,
  Semicolon,
  Colon,
  LParen,
  RParen,
  Star,
];

export const planLexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: false });

/** Tokens after which a newline does not end the statement (line continuation). */
export const CONTINUES_LINE: ReadonlySet<TokenType> = new Set([Comma, Semicolon, Colon]);
