import { describe, expect, it } from 'vitest';
import { analyzeLayers } from '../../../passes/analysis/layers.js';
import { Graph, Model, Node, Value, DataType, tensorType } from '../../../src/ir/index.js';
import { decodeModel, loadModel, serializeModel } from '../../../src/onnx/index.js';
import { applyPrune } from '../../../passes/lib/prune-apply.js';
import { requireLayers } from '../../../passes/lib/prune-layers.js';
import { emptyPruneSet, withElement, type Significance } from '../../../passes/lib/prune-types.js';
import { TINY_MODEL } from '../../support/paths.js';
import { dev, errorOf, lossOf, runSteps } from '../prune/helpers.js';

const tiny = () => loadModel(TINY_MODEL);

function l2(values: number[]): number {
  return Math.sqrt(values.reduce((s, x) => s + x * x, 0));
}

/** Columns c0..c1 of a [R, C] weight, as a flat list (independent of the pass's code). */
function cols(w: Float32Array, C: number, c0: number, c1: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < w.length; i++) if (i % C >= c0 && i % C < c1) out.push(w[i]!);
  return out;
}

describe('significance', () => {
  it('by weight-norm: a head scores the L2 norm of its Q/K/V columns; no data, model unchanged', async () => {
    const m = tiny();
    const { reports, facts } = await runSteps(m, [{ pass: 'significance', options: { by: 'weight-norm' } }]);
    const sig = facts.get('significance') as Significance;
    expect(reports[0]!.changed).toBe(false);
    expect(sig.layers.map((l) => [l.layer, l.headScores.length, l.groupScores.length])).toEqual([
      [0, 2, 8],
      [1, 2, 8],
    ]);
    const a = requireLayers(m)[1]!.attention!;
    const want = l2([a.q, a.k, a.v].flatMap((x) => cols(x.weight.constValue!.toFloat32(), 128, 64, 128)));
    expect(sig.layers[1]!.headScores[1]!.score).toBeCloseTo(want, 3);
    expect(sig.evaluations).toBe(0);
    expect(JSON.stringify(reports[0]!.details.significance)).toContain('"by":"weight-norm"');
  });

  it('by magnitude: an FFN group scores the mean |w| of its up columns and down rows', async () => {
    const m = tiny();
    const { facts } = await runSteps(m, [
      { pass: 'significance', options: { by: 'magnitude', elements: [{ name: 'ffn-groups', arg: 128 }] } },
    ]);
    const sig = facts.get('significance') as Significance;
    expect(sig.groupSize).toBe(128);
    expect(sig.layers[0]!.headScores).toEqual([]);
    const f = requireLayers(m)[0]!.ffn!;
    const up = cols(f.up.weight.constValue!.toFloat32(), 512, 128, 256);
    const down = Array.from(f.down.weight.constValue!.toFloat32().subarray(128 * 128, 256 * 128));
    const all = [...up, ...down];
    expect(sig.layers[0]!.groupScores[1]!.score).toBeCloseTo(all.reduce((s, x) => s + Math.abs(x), 0) / all.length, 5);
  });

  it('by loss: each score is the loss of the physically pruned model minus the original loss', async () => {
    const m = tiny();
    const { facts, reports } = await runSteps(m, [
      {
        pass: 'significance',
        options: { on: 'dev', elements: [{ name: 'heads' }, { name: 'ffn-groups', arg: 256 }, { name: 'blocks' }] },
      },
    ]);
    const sig = facts.get('significance') as Significance;
    const data = await dev();
    const base = await lossOf(m, data);
    expect(sig.baseLoss!).toBeCloseTo(base.loss, 4);
    expect(sig.baseAccuracy!).toBeCloseTo(base.accuracy, 6);
    const layers = requireLayers(m);
    for (const e of [
      { kind: 'head', layer: 1, index: 0 },
      { kind: 'ffn-group', layer: 0, index: 1 },
      { kind: 'attention', layer: 0, index: 0 },
    ] as const) {
      const copy = decodeModel(serializeModel(m));
      applyPrune(copy, requireLayers(copy), withElement(emptyPruneSet(layers, 256), e, layers));
      const r = await lossOf(copy, data);
      const ls = sig.layers[e.layer]!;
      const s =
        e.kind === 'head' ? ls.headScores[e.index]! : e.kind === 'ffn-group' ? ls.groupScores[e.index]! : ls.attention!;
      expect(s.lossRemoved!).toBeCloseTo(r.loss, 4);
      expect(s.score).toBeCloseTo(r.loss - base.loss, 4);
      expect(s.noWorse!).toBeGreaterThanOrEqual(0);
      expect(s.noWorse!).toBeLessThanOrEqual(1);
    }
    // 2 layers x (2 blocks + 2 heads + 2 groups) = 12 ablations, each from the cached input of its block
    expect(reports[0]!.stats.elements).toBe(12);
    expect(sig.evaluations).toBeCloseTo(1 + 5.25 + 2.25, 6);
  });

  it('by activation: positive finite scores for every element', async () => {
    const { facts } = await runSteps(tiny(), [{ pass: 'significance', options: { on: 'dev', by: 'activation' } }]);
    const sig = facts.get('significance') as Significance;
    const all = sig.layers.flatMap((l) => [l.attention!, l.ffn!, ...l.headScores, ...l.groupScores]);
    expect(all.length).toBe(2 * (2 + 2 + 8));
    for (const s of all) expect(Number.isFinite(s.score) && s.score > 0).toBe(true);
  });

  it('metadata writes the scores into the model (changed)', async () => {
    const m = tiny();
    const { reports } = await runSteps(m, [{ pass: 'significance', options: { by: 'weight-norm', metadata: true } }]);
    expect(reports[0]!.changed).toBe(true);
    const meta = JSON.parse(m.getMetadata('axc.significance')!) as { by: string; layers: unknown[] };
    expect(meta.by).toBe('weight-norm');
    expect(meta.layers.length).toBe(2);
  });

  const errorCases: [string, Record<string, unknown>, string, RegExp][] = [
    ['unknown element', { by: 'weight-norm', elements: [{ name: 'hedas' }] }, 'AX3604', /did you mean 'heads'/],
    ['bad group size', { by: 'weight-norm', elements: [{ name: 'ffn-groups', arg: 0 }] }, 'AX3604', /group size/],
    ['by loss without data', { by: 'loss' }, 'AX3605', /on NAME/],
  ];
  for (const [name, options, code, re] of errorCases) {
    it(`error: ${name} (${code})`, async () => {
      const e = await errorOf(() => runSteps(tiny(), [{ pass: 'significance', options }]));
      expect(e?.code).toBe(code);
      expect(JSON.stringify(e!.diagnostics)).toMatch(re);
    });
  }

  it('error: no layers recognized (AX3601 names the node where recognition stopped)', async () => {
    const g = new Graph('g');
    const x = g.addInput(new Value('x', tensorType(DataType.FLOAT, [1, 4, 4])));
    const y = new Value('y', tensorType(DataType.FLOAT, [1, 4, 4]));
    g.append(new Node('', 'Softmax', [x], [y], 'lonely_softmax'));
    g.outputs.push(y);
    const m = new Model(g);
    m.opsetImports.set('', 17);
    const e = await errorOf(() => runSteps(m, [{ pass: 'significance', options: { by: 'weight-norm' } }]));
    expect(e?.code).toBe('AX3601');
    expect(e!.diagnostics[0]!.location).toMatchObject({ kind: 'node', node: 'lonely_softmax' });
  });
});

describe('significance: partial recognition', () => {
  it('a Softmax that is not attention becomes a note naming it (AX3608); the layers are still scored', async () => {
    const m = tiny();
    // a stray Softmax over the embeddings' output, read as a side output (a classifier's Softmax after the logits is
    // part of the head and says nothing)
    const emb = analyzeLayers(m).embeddings!.output;
    const probs = new Value('probs', tensorType(DataType.FLOAT, ['batch_size', 'sequence_length', 128]));
    m.graph.append(new Node('', 'Softmax', [emb], [probs], 'stray_softmax', { axis: -1 }));
    m.graph.outputs.push(probs);
    const { reports, facts } = await runSteps(m, [{ pass: 'significance', options: { by: 'weight-norm' } }]);
    expect((facts.get('significance') as Significance).layers.length).toBe(2);
    const notes = reports[0]!.diagnostics.filter((d) => d.code === 'AX3608');
    expect(notes.length).toBe(1);
    expect(notes[0]!.severity).toBe('note');
    expect(notes[0]!.location).toMatchObject({ kind: 'node', node: 'stray_softmax' });
    expect(notes[0]!.message).toMatch(/not prunable: no MatMul applying the attention probabilities to V/);
  });
});
