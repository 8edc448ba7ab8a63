import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { Model } from '../../../src/ir/index.js';
import { loadModel, serializeModel } from '../../../src/onnx/index.js';
import { loadDataset, makeBatches, type Dataset } from '../../../src/verify/data.js';
import { PassManager } from '../../../src/pass/index.js';
import { PlanDataProvider } from '../../../src/verify/provider.js';
import '../../../passes/quantize.js';
import { requireLayers } from '../../../passes/lib/prune-layers.js';
import { encoderParams, type Significance } from '../../../passes/lib/prune-types.js';
import type { Decision } from '../../../passes/prune.js';
import { buildBert, smallConfig } from '../../gen/bert.js';
import { DEV_JSONL, TINY_MODEL } from '../../support/paths.js';
import { dev, errorOf, lossOf, runSteps } from './helpers.js';

const tiny = () => loadModel(TINY_MODEL);
const byNorm = { pass: 'significance', options: { by: 'weight-norm' } };

/** Head scores of the tiny model by weight norm, sorted, to place thresholds between them. */
async function headNorms(): Promise<{ key: string; score: number }[]> {
  const { facts } = await runSteps(tiny(), [byNorm]);
  const sig = facts.get('significance') as Significance;
  return sig.layers
    .flatMap((l) => l.headScores.map((s) => ({ key: `L${l.layer}.head${s.index}`, score: s.score })))
    .sort((a, b) => a.score - b.score);
}

describe('prune: threshold form (table)', () => {
  const cases: {
    name: string;
    options: (t: number[]) => Record<string, unknown>;
    removed: (keys: string[]) => string[];
    heads: number[];
  }[] = [
    {
      name: 'heads below the 2nd lowest norm: exactly the lowest head',
      options: (t) => ({
        elements: [{ name: 'heads' }],
        where: { metric: 'significance', op: '<', value: (t[0]! + t[1]!) / 2 },
      }),
      removed: (k) => [k[0]!],
      heads: [1, 2],
    },
    {
      name: 'keep >= 50% caps each layer at one removed head',
      options: (t) => ({
        elements: [{ name: 'heads' }],
        where: { metric: 'significance', op: '<', value: t[3]! + 1 },
        keep: { op: '>=', value: 0.5 },
      }),
      removed: (k) => k,
      heads: [1, 1],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const norms = await headNorms();
      const m = tiny();
      const { reports } = await runSteps(m, [byNorm, { pass: 'prune', options: c.options(norms.map((n) => n.score)) }]);
      const r = reports[1]!;
      expect(r.changed).toBe(true);
      const layers = requireLayers(m);
      expect(layers.map((l) => l.attention?.heads ?? 0).sort()).toEqual(c.heads);
      expect(layers.map((l) => l.attention!.q.weight.constValue!.dims[1])).toEqual(
        layers.map((l) => l.attention!.heads * 64),
      );
      const decisions = r.details.decisions as Decision[];
      const accepted = decisions.filter((d) => d.accepted).map((d) => d.element);
      if (c.name.startsWith('keep')) {
        expect(accepted.length).toBe(2);
        expect(decisions.filter((d) => !d.accepted).every((d) => /keep >= 50%/.test(d.reason))).toBe(true);
        // the lower-scored head of each layer goes
        for (const l of [0, 1]) {
          const mine = norms.filter((n) => n.key.startsWith(`L${l}.`));
          expect(accepted).toContain(mine[0]!.key);
        }
      } else expect(accepted).toEqual(c.removed(norms.map((n) => n.key)));
    });
  }

  it('nothing matches: warning AX3607 naming the lowest score, model unchanged', async () => {
    const m = tiny();
    const { reports } = await runSteps(m, [
      byNorm,
      {
        pass: 'prune',
        options: { elements: [{ name: 'heads' }], where: { metric: 'significance', op: '<', value: 0 } },
      },
    ]);
    expect(reports[1]!.changed).toBe(false);
    expect(reports[1]!.diagnostics[0]!.code).toBe('AX3607');
    expect(reports[1]!.diagnostics[0]!.message).toMatch(/the lowest is L\d\.head\d/);
  });

  it('the fact follows the pruning (renumbered heads), so a second prune step still works', async () => {
    const norms = await headNorms();
    const m = tiny();
    const t = (norms[0]!.score + norms[1]!.score) / 2;
    const { facts } = await runSteps(m, [
      byNorm,
      {
        pass: 'prune',
        options: { elements: [{ name: 'heads' }], where: { metric: 'significance', op: '<', value: t } },
      },
      {
        pass: 'prune',
        options: { elements: [{ name: 'heads' }], where: { metric: 'significance', op: '<', value: t } },
      },
    ]);
    const sig = facts.get('significance') as Significance;
    expect(sig.layers.map((l) => l.heads).sort()).toEqual([1, 2]);
    expect(sig.layers.flatMap((l) => l.headScores.map((s) => s.index))).toEqual(
      sig.layers.flatMap((l) => [...Array(l.heads).keys()]),
    );
  });
});

describe('prune: errors', () => {
  it('prune without significance: the manager names the missing fact (AX2301)', async () => {
    const e = await errorOf(() =>
      runSteps(tiny(), [{ pass: 'prune', options: { where: { metric: 'significance', op: '<', value: 0 } } }]),
    );
    expect(e?.code).toBe('AX2301');
    expect(e!.message).toMatch(/needs significance/);
  });
  it('an onnxruntime-fused graph (AX3601): the error names the node and says to decompose first', async () => {
    const m = buildBert(smallConfig({ ortFused: true, seed: 3 }));
    const e = await errorOf(() => runSteps(m, [byNorm]));
    expect(e?.code).toBe('AX3601');
    expect(e!.diagnostics[0]!.location).toMatchObject({ kind: 'node' });
    expect(e!.diagnostics[0]!.notes?.[0]).toMatch(
      /fused by onnxruntime \(SkipLayerNormalization '.+'\): add a 'decompose' step before this one/,
    );
  });
  it('a quantized graph (AX3601): each projection is named, with the order to use', async () => {
    const m = tiny();
    await new PassManager({ cleanup: false }).run(m, [{ pass: 'quantize', options: {} }]);
    const e = await errorOf(() => runSteps(m, [byNorm]));
    expect(e?.code).toBe('AX3601');
    expect(e!.diagnostics[0]!.message).toMatch(
      /projection is quantized \(dynamic-quantize-matmul\): prune before quantize/,
    );
  });
  it('no criterion (AX3606)', async () => {
    const e = await errorOf(() => runSteps(tiny(), [byNorm, { pass: 'prune', options: {} }]));
    expect(e?.code).toBe('AX3606');
  });
  it('stale scores (AX3603)', async () => {
    const facts = new Map<string, unknown>();
    await runSteps(tiny(), [byNorm], undefined, facts);
    (facts.get('significance') as Significance).layers[0]!.heads = 3;
    const e = await errorOf(() =>
      runSteps(
        tiny(),
        [{ pass: 'prune', options: { where: { metric: 'significance', op: '<', value: 0 } } }],
        undefined,
        facts,
      ),
    );
    expect(e?.code).toBe('AX3603');
  });
  it('group size different from the scores (AX3604)', async () => {
    const e = await errorOf(() =>
      runSteps(tiny(), [
        byNorm,
        {
          pass: 'prune',
          options: {
            elements: [{ name: 'ffn-groups', arg: 32 }],
            where: { metric: 'significance', op: '<', value: 0 },
          },
        },
      ]),
    );
    expect(e?.code).toBe('AX3604');
  });
});

describe('prune: greedy (AxFormer) on the real tiny model', () => {
  it("top layer first, FFN before attention; every decision follows the acceptance rule; reported loss is the pruned model's", async () => {
    const m = tiny();
    const { reports } = await runSteps(m, [
      {
        pass: 'significance',
        options: { on: 'dev', elements: [{ name: 'heads' }, { name: 'ffn-groups', arg: 128 }, { name: 'blocks' }] },
      },
      { pass: 'prune', options: { greedy: true, tolerance: 1.5 } },
    ]);
    const r = reports[1]!;
    const ds = r.details.decisions as Decision[];
    const at = (k: string) => ds.findIndex((d) => d.element === k);
    expect(ds[0]!.element).toBe('L1.ffn');
    // FFN block (then its groups, if it was close), then the attention block (then its heads)
    expect(at('L1.attention')).toBeGreaterThan(0);
    expect(ds.slice(0, at('L1.attention')).every((d) => d.element.startsWith('L1.ffn'))).toBe(true);
    let best = ds[0]!.lossBefore!;
    for (const d of ds) {
      if (d.lossAfter === undefined || d.noWorse === undefined) continue; // "not tried part by part" notes
      expect(d.lossBefore).toBe(best);
      expect(d.accepted).toBe(d.lossAfter < d.lossBefore! && d.noWorse > 0.5);
      if (d.accepted) best = d.lossAfter;
    }
    // layer order: no layer-0 decision before the last layer-1 decision
    const firstL0 = ds.findIndex((d) => d.element.startsWith('L0'));
    const lastL1 = ds.map((d) => d.element.startsWith('L1')).lastIndexOf(true);
    expect(firstL0 === -1 || firstL0 > lastL1).toBe(true);
    const cal = r.details.calibration as { lossAfter: number; lossBefore: number };
    expect(cal.lossAfter).toBeLessThanOrEqual(cal.lossBefore);
    const after = await lossOf(m, await dev());
    expect(after.loss).toBeCloseTo(cal.lossAfter, 4);
    expect(r.stats.evaluations).toBeGreaterThan(0);
    // the significance results were reused (memo): the first trial (L1.ffn on the unpruned model) cost nothing
    expect(r.details.memoHits as number).toBeGreaterThanOrEqual(1);
  });
});

describe('prune: budget form', () => {
  it('weight-norm, no data: removes at least the budget of encoder parameters', async () => {
    const m = tiny();
    const total = encoderParams(requireLayers(m));
    const { reports } = await runSteps(m, [byNorm, { pass: 'prune', options: { budget: 0.3 } }]);
    const r = reports[1]!;
    expect(r.stats.paramsRemoved).toBeGreaterThanOrEqual(0.3 * total);
    expect(r.stats.paramsRemoved).toBeLessThan(0.45 * total);
    expect((r.details.decisions as Decision[])[0]!.reason).toMatch(/lowest score per parameter/);
  });

  it('by loss with max-drop 0: calibration accuracy does not drop, re-scoring counted', async () => {
    const m = tiny();
    const { reports } = await runSteps(m, [
      { pass: 'significance', options: { on: 'dev', elements: [{ name: 'heads' }, { name: 'ffn-groups', arg: 128 }] } },
      { pass: 'prune', options: { budget: 0.2, 'max-drop': 0, rescore: 4, step: 0.1 } },
    ]);
    const r = reports[1]!;
    const cal = r.details.calibration as { accuracyAfter: number; accuracyBefore: number };
    expect(cal.accuracyAfter).toBeGreaterThanOrEqual(cal.accuracyBefore);
    const after = await lossOf(m, await dev());
    expect(after.accuracy).toBeCloseTo(cal.accuracyAfter, 6);
  });
});

describe('pruned models are recognized again', () => {
  it('an FFN pruned down to the hidden size (F = D) is still an FFN; parameter counts agree', async () => {
    const { applyPrune } = await import('../../../passes/lib/prune-apply.js');
    const { removedParams } = await import('../../../passes/lib/prune-types.js');
    const m = tiny();
    const layers = requireLayers(m);
    const total = encoderParams(layers);
    const set = {
      groupSize: 64,
      layers: [
        { layer: 0, attention: false, ffn: false, heads: [1], groups: [0, 2, 3, 5, 6, 7] },
        { layer: 1, attention: true, ffn: false, heads: [], groups: [] },
      ],
    };
    const removed = removedParams(set, layers);
    applyPrune(m, layers, set);
    const after = requireLayers(m);
    expect(after.map((l) => [l.attention?.heads, l.ffn?.size])).toEqual([
      [1, 128],
      [undefined, 512],
    ]);
    expect(encoderParams(after)).toBe(total - removed);
  });
});

describe('prune: least-squares compensation', () => {
  it('solveSpd solves a small positive definite system', async () => {
    const { solveSpd } = await import('../../../passes/lib/prune-compensate.js');
    const A = Float64Array.from([4, 1, 0, 1, 3, 1, 0, 1, 2]);
    const x = solveSpd(A, Float64Array.from([1, 2, 3]), 3);
    const r = [0, 1, 2].map((i) => A[i * 3]! * x[0]! + A[i * 3 + 1]! * x[1]! + A[i * 3 + 2]! * x[2]!);
    r.forEach((v, i) => expect(v).toBeCloseTo([1, 2, 3][i]!, 4));
  });

  it('budget + compensate: applied only when it lowers the calibration loss; the model has the reported loss', async () => {
    const m = tiny();
    const { reports } = await runSteps(m, [
      { pass: 'significance', options: { on: 'dev', elements: [{ name: 'heads' }, { name: 'ffn-groups', arg: 64 }] } },
      { pass: 'prune', options: { budget: 0.3, 'max-drop': 5, rescore: 0, step: 0.3, compensate: true } },
    ]);
    const c = reports[1]!.details.compensation as {
      applied: boolean;
      lossWith: number;
      lossWithout: number;
      layers: number[];
    };
    expect(c.layers.length).toBeGreaterThan(0);
    expect(c.applied).toBe(c.lossWith < c.lossWithout);
    const after = await lossOf(m, await dev());
    expect(after.loss).toBeCloseTo(c.applied ? c.lossWith : c.lossWithout, 4);
  });
});

describe('prune: greedy with block scores only', () => {
  it('ffn-groups(N) sets the group size when the fact has no group scores; parts are tried in index order', async () => {
    const m = tiny();
    const { reports } = await runSteps(m, [
      { pass: 'significance', options: { on: 'dev', elements: [{ name: 'blocks' }] } },
      {
        pass: 'prune',
        options: { greedy: true, tolerance: 100, elements: [{ name: 'ffn-groups', arg: 256 }, { name: 'blocks' }] },
      },
    ]);
    const ds = (reports[1]!.details.decisions as Decision[]).map((d) => d.element);
    // tolerance 100: every rejected FFN block is tried group by group; 512 / 256 = 2 groups, in order
    const l1 = ds.filter((e) => e.startsWith('L1.ffn-group'));
    expect(l1.length === 0 || l1.join() === 'L1.ffn-group0,L1.ffn-group1' || l1.join() === 'L1.ffn-group0').toBe(true);
    expect(ds.some((e) => e.includes('head'))).toBe(false);
  });
});

describe('prune: the kl objective (divergence from the original predictions, no labels needed)', () => {
  /** Mean KL(original || pruned) and argmax agreement over a dataset, straight from onnxruntime logits. */
  async function klOf(original: Model, pruned: Model, data: Dataset): Promise<{ kl: number; agreement: number }> {
    const run = async (m: Model) => {
      const s = await ort.InferenceSession.create(serializeModel(m), {
        graphOptimizationLevel: 'disabled',
        intraOpNumThreads: 1,
      });
      const out: Float32Array[] = [];
      for (const b of makeBatches(data, s.inputNames, 16)) {
        const z = (await s.run(b.feeds))[s.outputNames[0]!]!.data as Float32Array;
        b.rows.forEach((ri, k) => (out[ri] = z.slice(2 * k, 2 * k + 2)));
      }
      await s.release();
      return out;
    };
    const [a, b] = await Promise.all([run(original), run(pruned)]);
    const logp = (z: Float32Array) => {
      const m = Math.max(z[0]!, z[1]!);
      const lse = m + Math.log(Math.exp(z[0]! - m) + Math.exp(z[1]! - m));
      return [z[0]! - lse, z[1]! - lse];
    };
    let kl = 0;
    let agree = 0;
    a.forEach((za, i) => {
      const p = logp(za);
      const q = logp(b[i]!);
      kl += Math.exp(p[0]!) * (p[0]! - q[0]!) + Math.exp(p[1]!) * (p[1]! - q[1]!);
      if (za[1]! > za[0]! === b[i]![1]! > b[i]![0]!) agree++;
    });
    return { kl: kl / a.length, agreement: agree / a.length };
  }
  // the first 48 dev rows without their labels
  const RAW = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'axc-kl-')), 'raw.jsonl');
  fs.writeFileSync(
    RAW,
    fs
      .readFileSync(DEV_JSONL, 'utf8')
      .split('\n')
      .slice(0, 48)
      .map((line) => {
        const { label: _label, ...rest } = JSON.parse(line) as Record<string, unknown>;
        return JSON.stringify(rest);
      })
      .join('\n') + '\n',
  );
  const unlabelled = () => new PlanDataProvider([{ name: 'raw', format: 'jsonl', path: RAW, split: 'even' }]);
  const elements = [{ name: 'heads' }, { name: 'ffn-groups', arg: 128 }];

  it('significance by kl on unlabelled rows: every score >= 0 (the original is the reference); by loss refuses them', async () => {
    const { facts } = await runSteps(
      tiny(),
      [{ pass: 'significance', options: { on: 'raw', by: 'kl', elements } }],
      unlabelled(),
    );
    const sig = facts.get('significance') as Significance;
    const scores = sig.layers.flatMap((l) => [...l.headScores, ...l.groupScores].map((s) => s.score));
    expect(scores.length).toBe(2 * 2 + 2 * 4);
    for (const s of scores) expect(s).toBeGreaterThanOrEqual(0);
    expect(Math.max(...scores)).toBeGreaterThan(1e-3);
    const err = await errorOf(() =>
      runSteps(tiny(), [{ pass: 'significance', options: { on: 'raw', by: 'loss', elements } }], unlabelled()),
    );
    expect(err?.diagnostics[0]?.code).toBe('AX3602');
  });

  it('budget by kl with compensation: the reported KL and agreement are those of the written model against the original', async () => {
    const m = tiny();
    const { reports } = await runSteps(
      m,
      [
        { pass: 'significance', options: { on: 'raw', by: 'kl', elements } },
        { pass: 'prune', options: { budget: 0.25, 'max-drop': 10, rescore: 2, step: 0.1, compensate: true } },
      ],
      unlabelled(),
    );
    const r = reports[1]!;
    expect(r.stats.paramsRemoved).toBeGreaterThan(0);
    const cal = r.details.calibration as { lossBefore: number; lossAfter: number; accuracyAfter: number };
    expect(cal.lossBefore).toBeLessThan(1e-6); // the unpruned model against itself
    const data = await loadDataset({ name: 'raw', format: 'jsonl', path: RAW, split: 'even' });
    expect(data.labelled).toBe(false);
    const measured = await klOf(tiny(), m, data);
    expect(measured.kl).toBeCloseTo(cal.lossAfter, 4);
    expect(measured.agreement).toBeCloseTo(cal.accuracyAfter, 6);
    expect(measured.agreement).toBeGreaterThanOrEqual(0.9);
  });
});
