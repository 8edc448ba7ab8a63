import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { checkPlan, type ModelInfo } from '../../../dsl/index.js';
import { analyzeLayers, type LayerAnalysis } from '../../../passes/analysis/layers.js';
import '../../../passes/index.js';
import { AxcError, diag, hasErrors, renderDiagnostics } from '../../diagnostics/index.js';
import type { Model } from '../../ir/index.js';
import { loadModel } from '../../onnx/index.js';
import { action } from '../util.js';

/**
 * Layer count and heads per layer from the layer analysis. When no layer is recognized the plan's layer selectors
 * are checked for shape only (the compile step explains why recognition failed, naming nodes).
 */
function layerInfo(model: Model): Pick<ModelInfo, 'layers' | 'heads'> {
  let analysis: LayerAnalysis;
  try {
    analysis = analyzeLayers(model);
  } catch {
    return {};
  }
  if (!analysis.layers.length) return {};
  return { layers: analysis.layers.length, heads: analysis.layers.map((l) => l.heads) };
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
          modelInfo = layerInfo(model);
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
