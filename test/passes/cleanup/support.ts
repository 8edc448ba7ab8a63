import type { Diagnostic } from '../../../src/diagnostics/index.js';
import { checkModel, Graph, Model, modelText } from '../../../src/ir/index.js';
import { getPass, withDefaults, type PassContext, type PassResult } from '../../../src/pass/index.js';
import '../../../passes/index.js';

export interface Ran {
  result: PassResult;
  diagnostics: Diagnostic[];
  details: Record<string, unknown>;
}

/** Run one registered pass on a model the way the manager does (defaults filled), collecting its notes. */
export async function runPass(model: Model, name: string, options: Record<string, unknown> = {}): Promise<Ran> {
  const pass = getPass(name);
  if (!pass) throw new Error(`no pass '${name}'`);
  const diagnostics: Diagnostic[] = [];
  const details: Record<string, unknown> = {};
  const ctx: PassContext = {
    model,
    facts: new Map(),
    data: { names: () => [], get: () => Promise.reject(new Error('no data')) },
    report: (d) => diagnostics.push(d),
    progress: () => {},
    details,
  };
  const result = await pass.run(ctx, withDefaults(pass, options));
  return { result, diagnostics, details };
}

/** Errors of the invariant checker (empty when the IR is valid). */
export function invariantErrors(m: Model): string[] {
  return checkModel(m)
    .filter((d) => d.severity === 'error')
    .map((d) => `${d.code} ${d.message}`);
}

/** A model around a fresh graph at opset 17. */
export function newModel(): Model {
  const m = new Model(new Graph('g'));
  m.irVersion = 8;
  m.opsetImports.set('', 17);
  return m;
}

export { modelText };
