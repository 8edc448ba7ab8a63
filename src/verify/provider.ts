/**
 * The plan's data sources for passes and verification: loaded on first use, then cached.
 */
import * as path from 'node:path';
import { AxcError, diag, didYouMean } from '../diagnostics/index.js';
import type { DataDecl } from '../pass/plan.js';
import type { DataProvider } from '../pass/types.js';
import { loadDataset, type Dataset, type LoadDataOptions } from './data.js';

export interface ProviderOptions extends LoadDataOptions {
  /** `--data NAME=PATH` overrides: the path replaces the declared one (resolved against the cwd). */
  overrides?: Record<string, string>;
}

export class PlanDataProvider implements DataProvider {
  private readonly decls = new Map<string, DataDecl>();
  private readonly cache = new Map<string, Promise<Dataset>>();

  constructor(
    decls: readonly DataDecl[],
    private readonly opts: ProviderOptions = {},
  ) {
    for (const d of decls) this.decls.set(d.name, d);
    for (const name of Object.keys(opts.overrides ?? {}))
      if (!this.decls.has(name)) throw this.unknown(name, '--data names');
  }

  names(): string[] {
    return [...this.decls.keys()];
  }

  decl(name: string): DataDecl | undefined {
    return this.decls.get(name);
  }

  /** Load a data source by name (once; later calls share the same promise). */
  get(name: string): Promise<Dataset> {
    const hit = this.cache.get(name);
    if (hit) return hit;
    let decl = this.decls.get(name);
    if (!decl) return Promise.reject(this.unknown(name, 'the plan uses'));
    const o = this.opts.overrides?.[name];
    let opts: LoadDataOptions = this.opts;
    if (o !== undefined) {
      // an override comes from the command line: relative to the cwd; the tokenizer stays relative to the plan
      const planDir = this.opts.baseDir ?? (decl.span ? path.dirname(decl.span.file) : process.cwd());
      decl = { ...decl, path: path.resolve(o) };
      if (decl.tokenizer) decl.tokenizer = path.resolve(planDir, decl.tokenizer);
      opts = { ...this.opts, baseDir: process.cwd() };
    }
    const p = loadDataset(decl, opts);
    this.cache.set(name, p);
    // a failed load is not cached, so a later call reports the error again rather than a stale rejection
    p.catch(() => this.cache.delete(name));
    return p;
  }

  private unknown(name: string, what: string): AxcError {
    const dym = didYouMean(name, this.decls.keys());
    return new AxcError(
      diag(
        'AX5011',
        'error',
        `${what} data source '${name}', which is not declared (declared: ${this.names().join(', ') || 'none'})`,
        { kind: 'none' },
        dym ? [`did you mean '${dym}'?`] : undefined,
      ),
    );
  }
}
