import { describe, expect, it } from 'vitest';
import { checkPlan } from '../../../dsl/index.js';
import { loadModel } from '../../../src/onnx/index.js';
import { PassManager } from '../../../src/pass/index.js';
import '../../../passes/fuse.js';
import '../../../passes/quantize.js';
import { devFeeds } from '../../support/ort.js';
import { DEV_JSONL, TINY_MODEL } from '../../support/paths.js';
import { argmaxAgreement, opCounts, run } from '../fuse/support.js';

/** The plan statements from the issue, lowered by the real DSL against the registered passes, then run. */
function lower(src: string) {
  const r = checkPlan(src, 'plan.ax');
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  expect(errors.map((d) => `${d.code} ${d.message}`)).toEqual([]);
  return r.plan!;
}

describe('quantize and fuse from plan text', () => {
  it('quantize matmul int8 per-channel except layers 0', () => {
    const p = lower('quantize matmul int8 per-channel except layers 0\n');
    expect(p.steps[0]!.options).toMatchObject({
      ops: [{ name: 'matmul' }],
      mode: 'int8',
      granularity: 'per-channel',
      layers: { exclude: [0] },
    });
  });
  it('bare words pick the option that lists them: int4, qdq, entropy, onnx', () => {
    expect(lower('quantize matmul int4 block-size 64\n').steps[0]!.options).toMatchObject({
      mode: 'int4',
      'block-size': 64,
    });
    expect(lower('quantize gather int4 block-size 32\n').steps[0]!.options).toMatchObject({
      ops: [{ name: 'gather' }],
      mode: 'int4',
      'block-size': 32,
    });
    expect(lower('quantize matmul qdq target onnx keep-float 25%\n').steps[0]!.options).toMatchObject({
      form: 'qdq',
      target: 'onnx',
      'keep-float': 0.25,
    });
  });
  it('fuse layernorm, gelu, skip-layernorm, bias-gelu then quantize: runs in the pass manager and in onnxruntime', async () => {
    const plan = lower('fuse layernorm, gelu, skip-layernorm, bias-gelu\nquantize matmul, gemm int8 except layers 0\n');
    const m = loadModel(TINY_MODEL);
    const feeds = devFeeds(DEV_JSONL, 32, 300);
    const ref = await run(loadModel(TINY_MODEL), feeds);
    const reports = await new PassManager({ threads: 1 }).run(m, plan.steps);
    expect(reports.map((r) => r.changed)).toEqual([true, true]);
    const ops = opCounts(m);
    expect(ops['com.microsoft.SkipLayerNormalization']).toBe(4);
    expect(ops['com.microsoft.BiasGelu']).toBe(2);
    expect(ops['com.microsoft.DynamicQuantizeMatMul']).toBe(8);
    const got = await run(m, feeds, true);
    expect(argmaxAgreement(ref, got, 2)).toBeGreaterThanOrEqual(0.95);
  });
});
