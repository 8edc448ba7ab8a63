import * as fs from 'node:fs';
import * as path from 'node:path';
import { AxcError, diag, hasErrors, renderDiagnostics, type Diagnostic } from '../diagnostics/index.js';
import { checkModel, modelText, type Model } from '../ir/index.js';
import { saveModel } from '../onnx/index.js';
import { allPasses, getPass, withDefaults } from './registry.js';
import { locOf, type DataProvider, type PassContext, type PassResult, type PlanStep } from './types.js';

export interface StepReport {
  pass: string;
  /** Plan location `file:line`, when the step came from a plan. */
  at?: string;
  changed: boolean;
  ms: number;
  stats: Record<string, number>;
  summary?: string;
  details: Record<string, unknown>;
  diagnostics: Diagnostic[];
  /** Cleanup that ran after this step, with what it removed. */
  cleanup?: { ms: number; stats: Record<string, number> };
}

export interface ManagerOptions {
  data?: DataProvider;
  /** Run the invariant checker after every pass that changed the model (default true). */
  verifyInvariants?: boolean;
  /** Run the registered cleanup passes after every changing step (default true). */
  cleanup?: boolean;
  /** Print the IR (text form) after these passes ('all' for every pass). */
  printIrAfter?: string[];
  /** Write the IR text and the model after each step into this folder. */
  dumpDir?: string;
  /** Called after each step (e.g. `--verify-each` runs verification here). */
  afterStep?: (step: PlanStep, report: StepReport, model: Model) => Promise<void> | void;
  /** Sink for printed IR and progress. */
  log?: (text: string) => void;
  progress?: (label: string, done: number, total: number) => void;
  threads?: number;
  /** Shared facts (e.g. pre-computed layer analysis). */
  facts?: Map<string, unknown>;
}

const noData: DataProvider = {
  names: () => [],
  get: (name) => Promise.reject(new AxcError(diag('AX5001', 'error', `no data source named '${name}'`))),
};

/**
 * Runs a pipeline: each step's pass with its options; verifies IR invariants after every change; runs cleanup;
 * measures time; collects statistics; prints or dumps IR; on failure writes a reproducer and names the pass and plan line.
 */
export class PassManager {
  readonly reports: StepReport[] = [];
  readonly facts: Map<string, unknown>;

  constructor(readonly opts: ManagerOptions = {}) {
    this.facts = opts.facts ?? new Map();
  }

  async run(model: Model, steps: PlanStep[]): Promise<StepReport[]> {
    let i = 0;
    for (const step of steps) {
      await this.runStep(model, step, i++);
    }
    return this.reports;
  }

  private async runStep(model: Model, step: PlanStep, index: number): Promise<StepReport> {
    const pass = getPass(step.pass);
    const at = step.span ? `${step.span.file}:${step.span.line}` : undefined;
    if (!pass) throw new AxcError(diag('AX2101', 'error', `unknown pass '${step.pass}'`, locOf(step.span)));
    for (const req of pass.requires ?? []) {
      if (!this.facts.has(req))
        throw new AxcError(
          diag('AX2301', 'error', `'${pass.name}' needs ${req}, which no earlier step provides`, locOf(step.span)),
        );
    }
    const diagnostics: Diagnostic[] = [];
    const details: Record<string, unknown> = {};
    const ctx: PassContext = {
      model,
      facts: this.facts,
      data: this.opts.data ?? noData,
      report: (d) =>
        diagnostics.push(d.location.kind === 'none' && step.span ? { ...d, location: locOf(step.span) } : d),
      progress: (label, done, total) => this.opts.progress?.(`${pass.name}: ${label}`, done, total),
      span: step.span,
      details,
      threads: this.opts.threads,
    };
    const options = withDefaults(pass, step.options);
    const t0 = performance.now();
    let result: PassResult;
    try {
      result = await pass.run(ctx, options);
    } catch (e) {
      this.writeReproducer(model, step, index, e);
      if (e instanceof AxcError) {
        // attach the plan location to diagnostics that have none
        const ds = e.diagnostics.map((d) =>
          d.location.kind === 'none' && step.span ? { ...d, location: locOf(step.span) } : d,
        );
        throw new AxcError(ds);
      }
      throw new AxcError(
        diag(
          'AX9001',
          'error',
          `pass '${pass.name}'${at ? ` (configured at ${at})` : ''} failed: ${(e as Error).message}`,
          locOf(step.span),
          ['this is a bug in axc; a reproducer was written (see above)'],
        ),
      );
    }
    const ms = performance.now() - t0;
    for (const f of pass.provides ?? []) if (!this.facts.has(f)) this.facts.set(f, true);
    const report: StepReport = {
      pass: pass.name,
      changed: result.changed,
      ms,
      stats: result.stats ?? {},
      details,
      diagnostics,
    };
    if (at) report.at = at;
    if (result.summary) report.summary = result.summary;
    if (result.changed) {
      // facts derived from the graph's structure are stale after a change, unless the pass refreshed them
      if (this.opts.verifyInvariants !== false) this.checkInvariants(model, pass.name, at);
      if (this.opts.cleanup !== false && !pass.cleanup) report.cleanup = await this.cleanup(model);
    }
    this.reports.push(report);
    this.emitIr(model, pass.name, index);
    await this.opts.afterStep?.(step, report, model);
    return report;
  }

  private checkInvariants(model: Model, passName: string, at?: string): void {
    const ds = checkModel(model).filter((d) => d.severity === 'error');
    if (hasErrors(ds))
      throw new AxcError(
        diag(
          'AX9002',
          'error',
          `pass '${passName}'${at ? ` (configured at ${at})` : ''} left the IR invalid:\n${renderDiagnostics(ds)}`,
          { kind: 'none' },
          ['this is a bug in axc'],
        ),
      );
  }

  /** Run every registered cleanup pass once, in name order. */
  async cleanup(model: Model): Promise<{ ms: number; stats: Record<string, number> }> {
    const t0 = performance.now();
    const stats: Record<string, number> = {};
    for (const p of allPasses().filter((q) => q.cleanup)) {
      const ctx: PassContext = {
        model,
        facts: this.facts,
        data: noData,
        report: () => {},
        progress: () => {},
        details: {},
      };
      const r = await p.run(ctx, withDefaults(p, {}));
      for (const [k, v] of Object.entries(r.stats ?? {})) stats[k] = (stats[k] ?? 0) + v;
    }
    return { ms: performance.now() - t0, stats };
  }

  private emitIr(model: Model, passName: string, index: number): void {
    const pa = this.opts.printIrAfter ?? [];
    if (pa.includes('all') || pa.includes(passName)) this.opts.log?.(`// IR after ${passName}\n${modelText(model)}`);
    if (this.opts.dumpDir) {
      fs.mkdirSync(this.opts.dumpDir, { recursive: true });
      const base = path.join(this.opts.dumpDir, `${String(index + 1).padStart(2, '0')}-${passName}`);
      fs.writeFileSync(`${base}.txt`, modelText(model));
    }
  }

  private writeReproducer(model: Model, step: PlanStep, index: number, err: unknown): void {
    if (err instanceof AxcError) return; // user errors need no reproducer
    try {
      const dir = this.opts.dumpDir ?? fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'axc-repro-'));
      fs.mkdirSync(dir, { recursive: true });
      const base = path.join(dir, `repro-${String(index + 1).padStart(2, '0')}-${step.pass}`);
      saveModel(model, `${base}.onnx`);
      const opts = Object.entries(step.options)
        .map(([k, v]) => `${k} ${JSON.stringify(v)}`)
        .join(' ');
      fs.writeFileSync(`${base}.ax`, `# reproducer: the model before the failing step\n${step.pass} ${opts}\n`);
      this.opts.log?.(`axc: wrote a reproducer to ${base}.onnx and ${base}.ax`);
    } catch {
      /* best effort */
    }
  }
}
