import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { checkPlan, type ModelInfo } from '../../../dsl/index.js';
import '../../../passes/index.js';
import { AxcError, diag, hasErrors, renderDiagnostics } from '../../diagnostics/index.js';
import type { Model } from '../../ir/index.js';
import { loadModel } from '../../onnx/index.js';
import { action } from '../util.js';

/**
 * Layer count and heads from the layer analysis (passes/analysis/layers.ts, `analyzeLayers(model)`), when it is
 * there. Loaded by a computed specifier so `axc check` works before the analysis lands; without it the plan's layer
 * selectors are checked for shape only, not against the model.
 */
async function layerInfo(model: Model): Promise<Pick<ModelInfo, 'layers' | 'heads'> | undefined> {
  const spec = '../../../passes/analysis/layers.js';
  let mod: { analyzeLayers?: (m: Model) => unknown };
  try {
    mod = (await import(spec)) as typeof mod;
  } catch {
    return undefined;
  }
  if (typeof mod.analyzeLayers !== 'function') return undefined;
  let analysis: unknown;
  try {
    analysis = mod.analyzeLayers(model);
  } catch {
    return undefined; // the compile step reports why layers were not recognized
  }
  const layers = Array.isArray(analysis) ? analysis : (analysis as { layers?: unknown[] } | undefined)?.layers;
  if (!Array.isArray(layers)) return undefined;
  const heads = layers.map((l) => (l as { heads?: unknown }).heads);
  return heads.every((h) => typeof h === 'number')
    ? { layers: layers.length, heads: heads as number[] }
    : { layers: layers.length };
}

export function register(program: Command): void {
  program
    .command('check')
    .description(
      'check a plan (.ax): syntax, passes and options, data sources, step order; with --model, against the model',
    )
    .argument('<plan>', 'plan file')
    .option('--model <model.onnx>', 'also check layers, inputs and outputs against this model')
    .option('--json', 'print the lowered plan (or the diagnostics) as JSON')
    .action(
      action(async (planPath: string, opts: { model?: string; json?: boolean }) => {
        let source: string;
        try {
          source = fs.readFileSync(planPath, 'utf8');
        } catch (e) {
          throw new AxcError(
            diag(
              'AX2000',
              'error',
              `cannot read the plan: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
              {
                kind: 'file',
                file: planPath,
              },
            ),
          );
        }
        let model: Model | undefined;
        let modelInfo: ModelInfo | undefined;
        if (opts.model) {
          model = loadModel(opts.model);
          modelInfo = { ...(await layerInfo(model)) };
        }
        const r = checkPlan(source, planPath, {
          model,
          modelInfo,
          baseDir: path.dirname(planPath),
          checkFiles: true,
        });
        if (opts.json) {
          const out = r.plan
            ? { ok: true, plan: { ...r.plan, source: undefined }, diagnostics: r.diagnostics }
            : { ok: false, diagnostics: r.diagnostics };
          process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        } else {
          if (r.diagnostics.length)
            process.stderr.write(
              renderDiagnostics(r.diagnostics, {
                sources: { [planPath]: source },
                color: Boolean(process.stderr.isTTY),
              }) + '\n',
            );
          if (r.plan) {
            const n = r.plan.steps.length;
            const warnings = r.diagnostics.filter((d) => d.severity === 'warning').length;
            process.stdout.write(
              `${planPath}: ok, ${n} step${n === 1 ? '' : 's'}${warnings ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : ''}\n`,
            );
          } else {
            const errors = r.diagnostics.filter((d) => d.severity === 'error').length;
            process.stderr.write(`${planPath}: ${errors} error${errors === 1 ? '' : 's'}\n`);
          }
        }
        return hasErrors(r.diagnostics) ? 1 : 0;
      }),
    );
}
