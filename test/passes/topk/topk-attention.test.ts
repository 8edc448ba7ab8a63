import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { Diagnostic } from '../../../src/diagnostics/index.js';
import { checkModel, type Model } from '../../../src/ir/index.js';
import { loadModel, serializeModel } from '../../../src/onnx/index.js';
import type { LayerSelector, PassContext } from '../../../src/pass/index.js';
import { loadDataset } from '../../../src/verify/data.js';
import { findAttentionCores, runTopkAttention, type TopkAttentionOptions } from '../../../passes/topk-attention.js';
import { DEV_JSONL, TINY_MODEL } from '../../support/paths.js';
import { devFeeds, runModel } from '../../support/ort.js';
import { blockModel, blockWeights, randomInput, referenceAttention } from './block.js';

function context(model: Model, data: Record<string, unknown> = {}): PassContext & { diags: Diagnostic[] } {
  const diags: Diagnostic[] = [];
  return {
    model,
    facts: new Map(),
    data: { names: () => Object.keys(data), get: (n) => Promise.resolve(data[n]) },
    report: (d) => diags.push(d),
    progress: () => {},
    details: {},
    threads: 1,
    diags,
  };
}

const layers = (include: number[], exclude: number[] = [], all = false): LayerSelector => ({ all, include, exclude });

async function runBlock(model: Model, x: Float32Array, mask: number[], B: number, S: number, D: number) {
  const out = await runModel(serializeModel(model), {
    x: new ort.Tensor('float32', x, [B, S, D]),
    attention_mask: new ort.Tensor(
      'int64',
      BigInt64Array.from(mask, (m) => BigInt(m)),
      [B, S],
    ),
  });
  return out.y!.data as Float32Array;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Counts the TopK nodes the pass inserted per attention scope. */
function topkScopes(model: Model): string[] {
  return model.graph
    .nodes()
    .filter((n) => n.opType === 'TopK')
    .map((n) => n.name);
}

describe('topk-attention against a TypeScript reference (single attention block)', () => {
  const D = 16;
  const H = 2;
  const d = 8;
  const w = blockWeights(D, H, d);
  const B = 2;
  const S = 12;
  const x = randomInput(B, S, D);
  // second row padded after 7 tokens
  const mask = [...Array(S).fill(1), ...Array(7).fill(1), ...Array(S - 7).fill(0)];

  const cases: { name: string; opts: TopkAttentionOptions; k: number | undefined; renorm?: boolean }[] = [
    { name: 'dense k=3', opts: { k: 3 }, k: 3 },
    { name: 'dense k=1', opts: { k: 1 }, k: 1 },
    { name: 'dense k=5 renormalized', opts: { k: 5, renormalize: true }, k: 5, renorm: true },
    { name: 'gather k=3', opts: { k: 3, formulation: 'gather' }, k: 3 },
    { name: 'gather k=4 renormalized', opts: { k: 4, formulation: 'gather', renormalize: true }, k: 4, renorm: true },
    { name: 'threshold k=3', opts: { k: 3, formulation: 'threshold' }, k: 3 },
    {
      name: 'threshold k=5 renormalized',
      opts: { k: 5, formulation: 'threshold', renormalize: true },
      k: 5,
      renorm: true,
    },
    // k larger than the sequence: clamped to S at run time, same as dense attention
    { name: 'dense k=64 > S (clamped)', opts: { k: 64 }, k: undefined },
    { name: 'gather k=64 > S (clamped)', opts: { k: 64, formulation: 'gather' }, k: undefined },
    { name: 'threshold k=64 > S (clamped)', opts: { k: 64, formulation: 'threshold' }, k: undefined },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const model = blockModel(w);
      const r = await runTopkAttention(context(model), c.opts);
      expect(r.changed).toBe(true);
      expect(checkModel(model).filter((e) => e.severity === 'error')).toEqual([]);
      const got = await runBlock(model, x, mask, B, S, D);
      const want = referenceAttention(w, x, mask, B, S, c.k, c.renorm);
      expect(maxAbsDiff(got, want)).toBeLessThan(2e-5);
      if (c.k !== undefined) {
        // and it really differs from dense attention (the test can fail)
        const dense = referenceAttention(w, x, mask, B, S);
        expect(maxAbsDiff(got, dense)).toBeGreaterThan(1e-3);
      }
    });
  }

  it('keeps the sequence axis dynamic: one model runs at S=12 and S=3 (k=5 clamped to 3)', async () => {
    const model = blockModel(w);
    await runTopkAttention(context(model), { k: 5 });
    const bytes = serializeModel(model);
    for (const s of [12, 3]) {
      const xs = randomInput(1, s, D, 11);
      const ms = Array(s).fill(1);
      const out = await runModel(bytes, {
        x: new ort.Tensor('float32', xs, [1, s, D]),
        attention_mask: new ort.Tensor(
          'int64',
          BigInt64Array.from(ms, (m) => BigInt(m)),
          [1, s],
        ),
      });
      const want = referenceAttention(w, xs, ms, 1, s, s > 5 ? 5 : undefined);
      expect(maxAbsDiff(out.y!.data as Float32Array, want)).toBeLessThan(2e-5);
    }
  });

  it('masks still work: a padded row gives the same results as the unpadded sentence', async () => {
    const model = blockModel(w);
    await runTopkAttention(context(model), { k: 4 });
    const n = 6;
    const xs = randomInput(1, n, D, 21);
    const unpadded = await runBlock(model, xs, Array(n).fill(1), 1, n, D);
    const Sp = 10;
    const xp = new Float32Array(Sp * D);
    xp.set(xs);
    for (let i = n * D; i < Sp * D; i++) xp[i] = 5 * Math.sin(i); // garbage in the padding
    const padded = await runBlock(model, xp, [...Array(n).fill(1), ...Array(Sp - n).fill(0)], 1, Sp, D);
    expect(maxAbsDiff(padded.subarray(0, n * H * d), unpadded)).toBeLessThan(1e-5);
  });
});

describe('topk-attention on the golden SST-2 tiny model', () => {
  const feeds = devFeeds(DEV_JSONL, 6);

  const table: { name: string; sel?: LayerSelector; want: number[] }[] = [
    { name: 'all layers by default', want: [0, 1] },
    { name: 'layers 1', sel: layers([1]), want: [1] },
    { name: 'all except 0', sel: layers([], [0], true), want: [1] },
    { name: 'layers 0..5 (5 does not exist: warning)', sel: layers([0, 1, 2, 3, 4, 5]), want: [0, 1] },
  ];
  for (const c of table) {
    it(`chooses layers: ${c.name}`, async () => {
      const model = loadModel(TINY_MODEL);
      const ctx = context(model);
      const r = await runTopkAttention(ctx, { k: 8, ...(c.sel ? { layers: c.sel } : {}) });
      expect(ctx.details.layers).toEqual(c.want);
      expect(r.stats?.layersTopk).toBe(c.want.length);
      expect(topkScopes(model).map((s) => /layer\.(\d+)/.exec(s)![1])).toEqual(c.want.map(String));
      if (c.sel?.include.includes(5))
        expect(ctx.diags.some((dg) => dg.code === 'AX3701' && dg.severity === 'warning')).toBe(true);
    });
  }

  it('k >= sequence length leaves the logits unchanged; small k changes them', async () => {
    const base = await runModel(fs.readFileSync(TINY_MODEL), feeds);
    const S = feeds.input_ids!.dims[1]!;
    const big = loadModel(TINY_MODEL);
    await runTopkAttention(context(big), { k: S });
    const same = await runModel(serializeModel(big), feeds);
    expect(maxAbsDiff(same.logits!.data as Float32Array, base.logits!.data as Float32Array)).toBeLessThan(1e-5);
    const small = loadModel(TINY_MODEL);
    await runTopkAttention(context(small), { k: 2 });
    const diff = await runModel(serializeModel(small), feeds);
    expect(maxAbsDiff(diff.logits!.data as Float32Array, base.logits!.data as Float32Array)).toBeGreaterThan(1e-3);
  });

  it('is refused a second time on the same layer (warning, unchanged)', async () => {
    const model = loadModel(TINY_MODEL);
    await runTopkAttention(context(model), { k: 8 });
    const ctx = context(model);
    const r = await runTopkAttention(ctx, { k: 8 });
    expect(r.changed).toBe(false);
    expect(ctx.diags.filter((dg) => dg.code === 'AX3704')).toHaveLength(2);
    const g = loadModel(TINY_MODEL);
    await runTopkAttention(context(g), { k: 8, formulation: 'gather' });
    const ctx3 = context(g);
    expect((await runTopkAttention(ctx3, { k: 8 })).changed).toBe(false);
    expect(findAttentionCores(g).cores.map((c) => c.topk)).toEqual([true, true]);
    expect(findAttentionCores(model).cores).toHaveLength(2);
  });

  it('search: keeps a layer only when the loss drops, and says so per layer', async () => {
    const data = await loadDataset({
      name: 'dev',
      format: 'jsonl',
      path: DEV_JSONL,
      label: 'label',
      limit: 48,
      batch: 48,
    });
    const strict = loadModel(TINY_MODEL);
    const ctx = context(strict, { dev: data });
    await runTopkAttention(ctx, { k: 2, search: true, on: 'dev' });
    const decisions = ctx.details.search as { layer: number; loss: number; before: number; accepted: boolean }[];
    expect(decisions.map((dd) => dd.layer)).toEqual([0, 1]);
    for (const dd of decisions) expect(dd.accepted).toBe(dd.loss < dd.before);
    expect(ctx.details.layers).toEqual(decisions.filter((dd) => dd.accepted).map((dd) => dd.layer));
    expect(ctx.diags.filter((dg) => dg.code === 'AX3706')).toHaveLength(2);
    // a generous tolerance accepts every layer
    const loose = loadModel(TINY_MODEL);
    const ctx2 = context(loose, { dev: data });
    await runTopkAttention(ctx2, { k: 2, search: true, on: 'dev', tolerance: 10 });
    expect(ctx2.details.layers).toEqual([0, 1]);
    expect(topkScopes(loose)).toHaveLength(2);
    expect(topkScopes(strict)).toHaveLength((ctx.details.layers as number[]).length);
  });

  for (const formulation of ['threshold', 'gather'] as const) {
    it(`search keeps the requested formulation (${formulation}) for accepted layers`, async () => {
      const data = await loadDataset({
        name: 'dev',
        format: 'jsonl',
        path: DEV_JSONL,
        label: 'label',
        limit: 16,
        batch: 16,
      });
      const model = loadModel(TINY_MODEL);
      const ctx = context(model, { dev: data });
      await runTopkAttention(ctx, { k: 2, search: true, on: 'dev', tolerance: 10, formulation });
      const ops = model.graph.nodes().map((n) => n.opType);
      expect(ops.filter((op) => op === 'ScatterElements')).toHaveLength(0);
      expect(
        ops.filter((op) => op === (formulation === 'gather' ? 'GatherElements' : 'GreaterOrEqual')).length,
      ).toBeGreaterThanOrEqual(2);
      expect(findAttentionCores(model).cores.every((c) => c.topk)).toBe(true);
    });
  }

  it('optimized onnxruntime session runs the rewritten model (seq axis dynamic)', async () => {
    const model = loadModel(TINY_MODEL);
    await runTopkAttention(context(model), { k: 4, formulation: 'gather' });
    const out = await runModel(serializeModel(model), feeds, true);
    expect(out.logits!.dims).toEqual([6, 2]);
  });
});
