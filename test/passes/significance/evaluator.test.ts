import { describe, expect, it } from 'vitest';
import { loadModel } from '../../../src/onnx/index.js';
import { loadDataset } from '../../../src/verify/data.js';
import { GateEvaluator, samplesOf } from '../../../passes/lib/prune-eval.js';
import { requireLayers } from '../../../passes/lib/prune-layers.js';
import { emptyPruneSet, withElement, type PruneSet } from '../../../passes/lib/prune-types.js';
import { DEV_JSONL, TINY_MODEL } from '../../support/paths.js';

describe('gate evaluator', () => {
  it('hidden-state reuse (cut models) gives the same losses as full runs; memo and counters', async () => {
    const model = loadModel(TINY_MODEL);
    const layers = requireLayers(model);
    const data = await loadDataset({ name: 'dev', format: 'jsonl', path: DEV_JSONL, label: 'label', limit: 40 });
    const samples = samplesOf(data, { kind: 'none' });
    const opts = { groupSize: 128, threads: 1, chunk: 16, maxRows: 64 };
    const fast = await GateEvaluator.create(model, layers, samples, opts);
    const slow = await GateEvaluator.create(model, layers, samples, { ...opts, reuseHidden: false });
    try {
      const base = withElement(emptyPruneSet(layers, 128), { kind: 'ffn-group', layer: 1, index: 0 }, layers);
      const b1 = await fast.prepare(base);
      const settings: PruneSet[] = [
        withElement(base, { kind: 'head', layer: 1, index: 0 }, layers),
        withElement(base, { kind: 'ffn-group', layer: 1, index: 2 }, layers),
        withElement(base, { kind: 'attention', layer: 1, index: 0 }, layers),
        withElement(base, { kind: 'head', layer: 0, index: 1 }, layers),
      ];
      const runsBefore = fast.runs;
      const a = await fast.evaluate(settings);
      const b = await slow.evaluate([base, ...settings]);
      expect(Math.abs(b1.loss - b[0]!.loss)).toBeLessThan(1e-6);
      a.forEach((r, i) => {
        expect(Math.abs(r.loss - b[i + 1]!.loss)).toBeLessThan(1e-5);
        expect(r.accuracy).toBe(b[i + 1]!.accuracy);
      });
      // cut points: L0 attention, L0 FFN, L1 attention, L1 FFN; the L1 head and block start at L1 attention (half
      // the blocks), the L1 group at L1 FFN (a quarter), the L0 head from the start
      expect(fast.evaluations).toBeCloseTo(1 + 0.5 + 0.25 + 0.5 + 1, 6);
      expect(fast.runs).toBeGreaterThan(runsBefore);
      // different settings give different losses (the gates do something)
      expect(new Set(a.map((r) => r.loss.toFixed(6))).size).toBe(4);
      const again = await fast.evaluate([settings[1]!]);
      expect(again[0]!.loss).toBe(a[1]!.loss);
      expect(fast.memoHits).toBe(1);
    } finally {
      await fast.release();
      await slow.release();
    }
  });
});
