/**
 * Inputs for report tests, made by really running axc: a compile of the golden tiny model with a plan
 * (cleanup + top-k attention in layer 1, verified on odd dev rows), and a diff of the tiny model with head 0 of
 * layer 1 removed and layer 0 quantized to int8.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compile, type CompileResult } from '../../src/compile.js';
import { diffModelsFull, type DiffResult } from '../../src/diff/index.js';
import { loadModel } from '../../src/onnx/index.js';
import { quantizeLayer, removeHeads } from '../diff/edit.js';
import { DEV_JSONL, TINY_MODEL } from '../support/paths.js';

export async function compileTiny(dir: string): Promise<CompileResult> {
  const plan = path.join(dir, 'plan.ax');
  fs.writeFileSync(
    plan,
    `data dev = jsonl ${JSON.stringify(DEV_JSONL)} label "label" split odd limit 48
cleanup
topk-attention layers 1 k 8
verify on dev: accuracy drop <= 10 points; logits argmax >= 80%
`,
  );
  return compile({ model: TINY_MODEL, plan, output: path.join(dir, 'out.onnx'), threads: 1 });
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
    groupSize: 64,
    evaluations: 10,
    layers: [0, 1].map((layer) => ({
      layer,
      heads: 2,
      headSize: 64,
      ffnSize: 512,
      attention: el('attention', layer, 0, 0.2 - layer * 0.25),
      ffn: el('ffn', layer, 0, 0.4 - layer * 0.1),
      headScores: [el('head', layer, 0, layer === 1 ? -0.01 : 0.05), el('head', layer, 1, 0.12)],
      groupScores: [],
    })),
  };
}
