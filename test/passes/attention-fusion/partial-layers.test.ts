import { expect, test } from 'vitest';
import '../../../passes/index.js';
import { applyPrune } from '../../../passes/lib/prune-apply.js';
import { requireLayers } from '../../../passes/lib/prune-layers.js';
import { emptyPruneSet } from '../../../passes/lib/prune-types.js';
import { loadModel, serializeModel } from '../../../src/onnx/index.js';
import { PassManager } from '../../../src/pass/index.js';
import { devFeeds, runModel } from '../../support/ort.js';
import { DEV_JSONL, TINY_MODEL } from '../../support/paths.js';

test('attention is fused in a layer whose FFN block was pruned away (an attention-only layer)', async () => {
  const m = loadModel(TINY_MODEL);
  const layers = requireLayers(m);
  const set = emptyPruneSet(layers, 64);
  set.layers[0]!.ffn = true;
  applyPrune(m, layers, set);
  const feeds = devFeeds(DEV_JSONL, 8);
  const before = (await runModel(serializeModel(m), feeds)).logits!.data as Float32Array;
  const reports = await new PassManager().run(m, [{ pass: 'fuse', options: { patterns: [{ name: 'attention' }] } }]);
  const attention = [...m.graph].filter((n) => n.opType === 'Attention' && n.domain === 'com.microsoft');
  expect(attention.length).toBe(2);
  expect(reports[0]!.diagnostics.filter((d) => d.code === 'AX3201')).toEqual([]);
  const after = (await runModel(serializeModel(m), feeds)).logits!.data as Float32Array;
  for (let i = 0; i < before.length; i++) expect(Math.abs(after[i]! - before[i]!)).toBeLessThan(1e-4);
});
