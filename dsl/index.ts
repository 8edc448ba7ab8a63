/**
 * The plan language (.ax): parse, check and lower a plan into a Plan (src/pass/plan.ts).
 * See dsl/tokens.ts (lexical rules), dsl/parser.ts (grammar), dsl/lower.ts (how statements map to pass options).
 */
import { hasErrors, type Diagnostic } from '../src/diagnostics/index.js';
import type { Plan } from '../src/pass/plan.js';
import type { PlanAst } from './ast.js';
import { PlanChecker, type CheckOptions } from './lower.js';
import { parsePlan as parse } from './visitor.js';

export type * from './ast.js';
export { PLAN_CODES } from './codes.js';
export { globalRegistry, localRegistry, example, type CheckOptions, type ModelInfo, type PassLookup } from './lower.js';

/** Parse a plan: its AST (what could be recovered) and the syntax errors. */
export function parsePlan(source: string, file: string): { ast: PlanAst; diagnostics: Diagnostic[] } {
  const { ast, diagnostics } = parse(source, file);
  return { ast, diagnostics };
}

/**
 * Parse, check and lower a plan. Returns the Plan when there are no errors (warnings allowed), and every diagnostic
 * in source order (syntax errors first).
 */
export function checkPlan(
  source: string,
  file: string,
  opts: CheckOptions = {},
): { plan?: Plan; ast: PlanAst; diagnostics: Diagnostic[] } {
  const { ast, diagnostics: syntax, brokenData } = parse(source, file);
  const checker = new PlanChecker(ast, source, opts, brokenData);
  const plan = checker.lower();
  const semantic = [...checker.diagnostics].sort(byPosition);
  const diagnostics = [...syntax, ...semantic];
  return hasErrors(diagnostics) ? { ast, diagnostics } : { plan, ast, diagnostics };
}

function byPosition(a: Diagnostic, b: Diagnostic): number {
  const la = a.location.kind === 'plan' ? a.location : undefined;
  const lb = b.location.kind === 'plan' ? b.location : undefined;
  return (la?.line ?? 0) - (lb?.line ?? 0) || (la?.col ?? 0) - (lb?.col ?? 0);
}
