/**
 * `compile()`: the library form of `axc compile`. Checks the plan, runs its steps with the pass manager, verifies
 * the result against the original on the plan's data, and writes the output atomically only when every `verify`
 * requirement holds. The CLI is a thin layer over this.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkPlan } from '../dsl/index.js';
import '../passes/index.js';
import { AxcError, diag, type Diagnostic } from './diagnostics/index.js';
import { modelStats, type Model } from './ir/index.js';
import { loadModel, saveModel, serializeModel } from './onnx/index.js';
import { PassManager, type Plan, type StepReport } from './pass/index.js';
import {
  modelInputNames,
  modelOutputNames,
  PlanDataProvider,
  runDataset,
  verify,
  labelModelErrors,
  type Dataset,
  type RunResult,
  type VerifyResult,
} from './verify/index.js';
import { analyzeLayers } from '../passes/analysis/layers.js';

export interface CompileOptions {
  /** Path of the input model. */
  model: string;
  /** Path of the plan file, or its source with a file name for messages. */
  plan: string | { source: string; file: string };
  /** Output path. Omit to compile and verify without writing. */
  output?: string;
  /** Override data sources of the plan: NAME → path. */
  data?: Record<string, string>;
  /** Verify after every step, not only at the end (slower; pinpoints the step that broke accuracy). */
  verifyEach?: boolean;
  printIrAfter?: string[];
  dumpDir?: string;
  /** Write tensors to external data (see saveModel). */
  externalData?: boolean;
  threads?: number;
  log?: (line: string) => void;
  progress?: (label: string, done: number, total: number) => void;
}

export interface ModelFacts {
  path: string;
  bytes: number;
  parameters: number;
  nodes: number;
}

export interface CompileResult {
  /** True when every verify requirement held (and the output was written, if asked). */
  ok: boolean;
  model: Model;
  plan: Plan;
  steps: StepReport[];
  verification: VerifyResult[];
  before: ModelFacts;
  after: Omit<ModelFacts, 'path'> & { path?: string };
  /** Warnings and notes from the plan check and the passes. */
  diagnostics: Diagnostic[];
  /** Failures of verify requirements (empty when ok). */
  failures: Diagnostic[];
  totalMs: number;
}

/** Read and check a plan; throws AxcError (with the plan's diagnostics) when it has errors. */
export function loadPlan(
  plan: CompileOptions['plan'],
  model?: Model,
  overrides?: Record<string, string>,
): { plan: Plan; diagnostics: Diagnostic[]; source: string; file: string } {
  let source: string;
  let file: string;
  if (typeof plan === 'string') {
    file = plan;
    try {
      source = fs.readFileSync(plan, 'utf8');
    } catch (e) {
      throw new AxcError(
        diag(
          'AX2000',
          'error',
          `${plan}: cannot read the plan: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
          { kind: 'file', file: plan },
        ),
      );
    }
  } else {
    source = plan.source;
    file = plan.file;
  }
  let modelInfo: { layers?: number; heads?: number[] } | undefined;
  if (model) {
    try {
      const a = analyzeLayers(model);
      if (a.layers.length) modelInfo = { layers: a.layers.length, heads: a.layers.map((l) => l.heads) };
    } catch {
      /* layer-dependent checks are then left to the passes */
    }
  }
  const r = checkPlan(source, file, {
    model,
    modelInfo,
    baseDir: path.dirname(path.resolve(file)),
    // an overridden data path is checked when it is loaded, against the model's inputs
    checkData: !overrides || Object.keys(overrides).length === 0,
  });
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length || !r.plan) throw new PlanError(r.diagnostics, source, file);
  return { plan: r.plan, diagnostics: r.diagnostics, source, file };
}

/** A plan with errors: carries the source so the CLI can print lines and carets. */
export class PlanError extends AxcError {
  constructor(
    diagnostics: Diagnostic[],
    readonly source: string,
    readonly file: string,
  ) {
    super(diagnostics.filter((d) => d.severity === 'error'));
  }
}

export async function compile(opts: CompileOptions): Promise<CompileResult> {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const inputBytes = fs.readFileSync(opts.model);
  const model = loadModel(opts.model, { buffer: inputBytes });
  const beforeStats = modelStats(model);
  const before: ModelFacts = {
    path: opts.model,
    bytes: inputBytes.length,
    parameters: beforeStats.parameters,
    nodes: beforeStats.nodes,
  };
  const { plan, diagnostics } = loadPlan(opts.plan, model, opts.data);
  const data = new PlanDataProvider(plan.data, {
    overrides: opts.data,
    modelInputs: modelInputNames(model),
    modelOutputs: modelOutputNames(model),
  });
  const verification: VerifyResult[] = [];
  const failures: Diagnostic[] = [];
  // the original model runs once per data source, however many times (--verify-each) the compiled one is checked
  const references = new Map<string, RunResult>();
  const runOpts = { threads: opts.threads ?? 2, optimization: 'disabled' as const };
  const runVerify = async (compiled: Model, label: string): Promise<boolean> => {
    let ok = true;
    const bytes = serializeModel(compiled);
    for (const spec of plan.verify) {
      const ds: Dataset = await data.get(spec.data);
      let reference = references.get(spec.data);
      if (!reference) {
        reference = await labelModelErrors('original', () => runDataset(inputBytes, ds, runOpts));
        references.set(spec.data, reference);
      }
      const r = await verify(inputBytes, bytes, spec, ds, { ...runOpts, reference });
      verification.push(r);
      if (!r.pass) {
        ok = false;
        failures.push(...r.failures);
      }
      if (opts.verifyEach) log(`verify ${label} on ${spec.data}: ${r.pass ? 'pass' : 'FAIL'}`);
    }
    return ok;
  };
  const pm = new PassManager({
    data,
    printIrAfter: opts.printIrAfter,
    dumpDir: opts.dumpDir,
    log,
    progress: opts.progress,
    threads: opts.threads,
    afterStep: opts.verifyEach
      ? async (step, report, m) => {
          if (!report.changed) return;
          const ok = await runVerify(m, `after ${step.pass}${report.at ? ` (${report.at})` : ''}`);
          if (!ok) throw new AxcError(failures);
        }
      : undefined,
  });
  const steps = await pm.run(model, plan.steps);
  for (const s of steps) diagnostics.push(...s.diagnostics);
  const ok = opts.verifyEach ? failures.length === 0 : await runVerify(model, 'final');
  const afterStats = modelStats(model);
  const after: CompileResult['after'] = { bytes: 0, parameters: afterStats.parameters, nodes: afterStats.nodes };
  if (ok && opts.output) {
    fs.mkdirSync(path.dirname(path.resolve(opts.output)), { recursive: true });
    const w = saveModel(model, opts.output, { inputPath: opts.model, externalData: opts.externalData });
    after.bytes = w.bytes + w.externalBytes;
    after.path = opts.output;
  } else {
    after.bytes = serializeModel(model).length;
  }
  return {
    ok,
    model,
    plan,
    steps,
    verification,
    before,
    after,
    diagnostics,
    failures,
    totalMs: performance.now() - t0,
  };
}
