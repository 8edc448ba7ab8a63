/**
 * Inputs for report tests, made by really running axc's pieces: the pass manager runs cleanup and top-k attention
 * (layer 1, k 8) on the golden tiny model, src/verify compares it with the original on odd dev rows; and a diff of
 * the tiny model with head 0 of layer 1 removed and layer 0 quantized to int8. The compile result is assembled the
 * way src/compile.ts assembles it (`CompileResult` fits `CompileReportInput`: checked below by the type checker),
 * without depending on the plan language.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import '../../passes/index.js';
import type { CompileResult } from '../../src/compile.js';
import { diffModelsFull, type DiffResult } from '../../src/diff/index.js';
import { modelStats } from '../../src/ir/index.js';
import { loadModel, saveModel } from '../../src/onnx/index.js';
import { PassManager, type DataDecl, type VerifySpec } from '../../src/pass/index.js';
import type { CompileReportInput } from '../../src/report/compile-report.js';
import { PlanDataProvider, verify } from '../../src/verify/index.js';
import { quantizeLayer, removeHeads } from '../diff/edit.js';
import { DEV_JSONL, TINY_MODEL } from '../support/paths.js';

/** The compile result type must stay usable as report input. */
export const compileResultFits = (r: CompileResult): CompileReportInput => r;

export async function compileTiny(dir: string): Promise<CompileReportInput> {
  const t0 = performance.now();
  const data: DataDecl[] = [{ name: 'dev', format: 'jsonl', path: DEV_JSONL, label: 'label', split: 'odd', limit: 48 }];
  const spec: VerifySpec = { data: 'dev', accuracyDrop: 10, outputs: [{ output: 'logits', argmax: 0.8 }] };
  const model = loadModel(TINY_MODEL);
  const st0 = modelStats(model);
  const steps = await new PassManager().run(model, [
    { pass: 'cleanup', options: {}, span: { file: 'plan.ax', line: 2, col: 1 } },
    {
      pass: 'topk-attention',
      options: { layers: { include: [1], exclude: [] }, k: 8 },
      span: { file: 'plan.ax', line: 3, col: 1 },
    },
  ]);
  const provider = new PlanDataProvider(data);
  const v = await verify(TINY_MODEL, model, spec, await provider.get('dev'), { threads: 1 });
  const output = path.join(dir, 'out.onnx');
  const w = saveModel(model, output, { inputPath: TINY_MODEL });
  const st1 = modelStats(model);
  return {
    ok: v.pass,
    model,
    plan: { file: path.join(dir, 'plan.ax'), data, verify: [spec] },
    steps,
    verification: [v],
    before: { path: TINY_MODEL, bytes: fs.statSync(TINY_MODEL).size, parameters: st0.parameters, nodes: st0.nodes },
    after: { path: output, bytes: w.bytes, parameters: st1.parameters, nodes: st1.nodes },
    diagnostics: steps.flatMap((s) => s.diagnostics),
    failures: v.failures,
    totalMs: performance.now() - t0,
  };
}

export function diffTiny(): DiffResult {
  const before = loadModel(TINY_MODEL);
  const after = loadModel(TINY_MODEL);
  removeHeads(after, 1, [0]);
  quantizeLayer(after, 0);
  return diffModelsFull(before, after, { beforePath: TINY_MODEL, afterPath: 'edited.onnx' });
}

/**
 * A significance detail as the significance pass writes it (passes/significance.ts significanceJson), for the
 * heat map: scores per head and per block of the tiny model's 2 layers.
 */
export function significanceDetail() {
  const el = (kind: string, layer: number, index: number, score: number) => ({ kind, layer, index, score, params: 1 });
  return {
    by: 'loss',
    data: 'cal',
    samples: 48,
    groupSize: 128,
    evaluations: 10,
    layers: [0, 1].map((layer) => ({
      layer,
      heads: 2,
      headSize: 64,
      ffnSize: 512,
      attention: el('attention', layer, 0, 0.2 - layer * 0.25),
      ffn: el('ffn', layer, 0, 0.4 - layer * 0.1),
      headScores: [el('head', layer, 0, layer === 1 ? -0.01 : 0.05), el('head', layer, 1, 0.12)],
      groupScores: [0, 1, 2, 3].map((g) => el('ffn-group', layer, g, (g - 1.5) * 0.01 * (layer + 1))),
    })),
  };
}
