import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, test } from 'vitest';
import { diffJson, diffModels, diffText, layerViews } from '../../src/diff/index.js';
import { register } from '../../src/cli/commands/diff.js';
import { Graph, type Model } from '../../src/ir/index.js';
import { loadModel, saveModel, serializeModel } from '../../src/onnx/index.js';
import { applyPrune } from '../../passes/lib/prune-apply.js';
import { requireLayers } from '../../passes/lib/prune-layers.js';
import { emptyPruneSet } from '../../passes/lib/prune-types.js';
import { buildBert, smallConfig } from '../gen/bert.js';
import { devFeeds, runModel } from '../support/ort.js';
import { DEV_JSONL, TINY_MODEL } from '../support/paths.js';
import { quantizeLayer, removeHeads } from './edit.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'axc-diff-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** 2 layers x 4 heads (hidden 32, head size 8, FFN 64), seeded weights. */
const gen4 = () => buildBert(smallConfig({ layers: 2, heads: 4 }));

function genFeeds(B = 2, S = 5): Record<string, ort.Tensor> {
  const ids = BigInt64Array.from({ length: B * S }, (_, i) => BigInt((i * 7 + 3) % 100));
  return {
    input_ids: new ort.Tensor('int64', ids, [B, S]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(B * S).fill(1n), [B, S]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(B * S), [B, S]),
  };
}

async function logits(m: Model, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const out = await runModel(serializeModel(m), feeds);
  return out.logits!.data as Float32Array;
}

describe('axc diff on known edits', () => {
  test('identical models: same, no layer change, empty node and initializer lists', () => {
    const d = diffModels(loadModel(TINY_MODEL), loadModel(TINY_MODEL));
    expect(d.same).toBe(true);
    expect(d.layers.map((l) => [l.index, l.changed, l.removedHeads])).toEqual([
      [0, false, []],
      [1, false, []],
    ]);
    expect(d.layers[0]!.before).toEqual(d.layers[0]!.after);
    expect(d.layers[0]!.before).toMatchObject({
      heads: 2,
      headSize: 64,
      ffnSize: 512,
      attention: 'softmax',
      precision: 'float32',
    });
    expect(d.nodes).toEqual({ added: [], removed: [], changed: [] });
    expect(d.initializers).toEqual({ added: [], removed: [], changed: [], renamed: [] });
    expect(d.graph).toEqual([]);
    expect(diffText(d)).toContain('the models are the same');
  });

  test('tiny model: head 0 of layer 1 removed by hand is reported as removedHeads [0], layer 0 untouched', async () => {
    const before = loadModel(TINY_MODEL);
    const after = loadModel(TINY_MODEL);
    removeHeads(after, 1, [0]);
    // the edited model is a valid model that still runs
    const feeds = devFeeds(DEV_JSONL, 2);
    expect((await logits(after, feeds)).every(Number.isFinite)).toBe(true);
    const d = diffModels(before, after);
    expect(d.same).toBe(false);
    expect(d.layers[0]).toMatchObject({ index: 0, removedHeads: [], removedBlocks: [], changed: false });
    expect(d.layers[1]).toMatchObject({
      index: 1,
      removedHeads: [0],
      headOrigin: [1],
      headMatch: 'exact',
      before: { heads: 2 },
      after: { heads: 1, headSize: 64, ffnSize: 512 },
    });
    // node level: 7 nodes changed (Q/K/V MatMul and bias Add, O MatMul), none added or removed
    expect(d.nodes.added).toEqual([]);
    expect(d.nodes.removed).toEqual([]);
    expect(d.nodes.changed.map((c) => c.after)).toEqual([
      '/m/bert/encoder/layer.1/attention/self/query/MatMul',
      '/m/bert/encoder/layer.1/attention/self/query/Add',
      '/m/bert/encoder/layer.1/attention/self/key/MatMul',
      '/m/bert/encoder/layer.1/attention/self/key/Add',
      '/m/bert/encoder/layer.1/attention/self/value/MatMul',
      '/m/bert/encoder/layer.1/attention/self/value/Add',
      '/m/bert/encoder/layer.1/attention/output/dense/MatMul',
    ]);
    expect(d.initializers.changed.map((c) => [c.before.dims, c.after.dims])).toContainEqual([
      [128, 128],
      [64, 128],
    ]);
    // 3 x 128 x 64 + 64 x 128 weights and 3 x 64 biases fewer
    expect(d.totals.before.parameters - d.totals.after.parameters).toBe(4 * 128 * 64 + 3 * 64);
    expect(d.totals.after.encoderMacs).toBeLessThan(d.totals.before.encoderMacs);
  });

  test('generated 2 x 4 heads: heads 0 and 2 of layer 1 removed by hand → removedHeads [0, 2], nothing in layer 0', async () => {
    const before = gen4();
    const after = gen4();
    removeHeads(after, 1, [0, 2]);
    expect((await logits(after, genFeeds())).every(Number.isFinite)).toBe(true);
    const d = diffModels(before, after);
    expect(d.layers.map((l) => l.removedHeads)).toEqual([[], [0, 2]]);
    expect(d.layers[1]!.headOrigin).toEqual([1, 3]);
    expect(d.layers[1]!.after).toMatchObject({ heads: 2, headSize: 8 });
    expect(d.layers[0]!.changed).toBe(false);
  });

  test('generated 2 x 4 heads: the prune pass removal API (applyPrune) removing heads 0 and 2 of layer 1', () => {
    const before = gen4();
    const after = gen4();
    const layers = requireLayers(after);
    const set = emptyPruneSet(layers, 16);
    set.layers[1]!.heads = [0, 2];
    applyPrune(after, layers, set);
    const d = diffModels(before, after);
    expect(d.layers.map((l) => l.removedHeads)).toEqual([[], [0, 2]]);
    expect(d.layers[1]!.headMatch).toBe('exact');
  });

  test('heads keep their original numbers across two successive removals', () => {
    const before = gen4();
    const after = gen4();
    removeHeads(after, 0, [1]); // layer 0 keeps original heads 0, 2, 3
    removeHeads(after, 0, [1]); // now removes what was originally head 2
    const d = diffModels(before, after);
    expect(d.layers[0]!.removedHeads).toEqual([1, 2]);
    expect(d.layers[0]!.headOrigin).toEqual([0, 3]);
    expect(d.layers[1]!.removedHeads).toEqual([]);
  });

  test('a removed FFN block and FFN neurons (prune API) are reported per layer', () => {
    const before = gen4();
    const after = gen4();
    const layers = requireLayers(after);
    const set = emptyPruneSet(layers, 16);
    set.layers[0]!.ffn = true;
    set.layers[1]!.groups = [1];
    applyPrune(after, layers, set);
    const d = diffModels(before, after);
    expect(d.layers[0]).toMatchObject({ removedBlocks: ['ffn'], removedHeads: [], after: { ffnSize: 0 } });
    expect(d.layers[1]).toMatchObject({ removedBlocks: [], removedNeurons: 16, after: { ffnSize: 48 } });
  });

  test('quantizing one layer: its precision changes, the other layer does not, heads still match', async () => {
    const before = gen4();
    const after = gen4();
    quantizeLayer(after, 0);
    const ref = await logits(before, genFeeds());
    const got = await logits(after, genFeeds());
    ref.forEach((x, i) => expect(Math.abs(x - got[i]!)).toBeLessThan(0.05));
    const d = diffModels(before, after);
    expect(d.layers[0]!.before!.precision).toBe('float32');
    expect(d.layers[0]!.after!.precision).toBe('int8 per-channel');
    expect(d.layers[0]!.after!.matrices).toEqual({
      q: 'int8 per-channel',
      k: 'int8 per-channel',
      v: 'int8 per-channel',
      o: 'int8 per-channel',
      'ffn.in': 'int8 per-channel',
      'ffn.out': 'int8 per-channel',
    });
    expect(d.layers[0]!.removedHeads).toEqual([]);
    expect(d.layers[0]!.headMatch).toBe('approximate');
    expect(d.layers[1]!.changed).toBe(false);
    expect(d.layers[1]!.after!.precision).toBe('float32');
    // 6 DynamicQuantizeMatMul nodes added by 'quantize', 6 MatMuls removed
    expect(d.nodes.added.map((n) => [n.op, n.pass])).toEqual(
      Array(6).fill(['com.microsoft.DynamicQuantizeMatMul', 'quantize']),
    );
    expect(d.nodes.removed.map((n) => n.op)).toEqual(Array(6).fill('MatMul'));
    expect(d.passes).toEqual({ quantize: { added: 6, changed: 0 } });
    expect(d.fused).toEqual([{ op: 'com.microsoft.DynamicQuantizeMatMul', count: 6 }]);
    // the bias Adds after the replaced MatMuls are matched by structure and reported as rewired
    expect(d.nodes.changed.length).toBe(6);
    expect(d.nodes.changed[0]!.changes[0]).toMatch(/from com\.microsoft\.DynamicQuantizeMatMul .* made by quantize/);
  });

  test('renamed nodes and initializers: matched by structure and content, reported as renames only', () => {
    const before = gen4();
    const after = gen4();
    let i = 0;
    for (const n of after.graph) n.name = `node_${i++}`;
    for (const v of after.graph.initializers) v.name = `w_${i++}`;
    const d = diffModels(before, after);
    expect(d.nodes.added).toEqual([]);
    expect(d.nodes.removed).toEqual([]);
    expect(d.nodes.changed.every((c) => c.changes.length === 1 && c.changes[0]!.startsWith('name '))).toBe(true);
    expect(d.initializers.renamed.length).toBe(after.graph.initializers.length);
    expect(d.initializers.changed).toEqual([]);
    expect(d.layers.every((l) => !l.changed)).toBe(true);
  });

  test('deterministic: the same inputs give byte-identical JSON and text', () => {
    const a = gen4();
    const b = gen4();
    removeHeads(b, 1, [3]);
    expect(diffJson(diffModels(a, b))).toBe(
      diffJson(
        diffModels(
          gen4(),
          (() => {
            const m = gen4();
            removeHeads(m, 1, [3]);
            return m;
          })(),
        ),
      ),
    );
    expect(diffText(diffModels(a, b))).toBe(diffText(diffModels(a, b)));
  });

  test('a model with no encoder layer gives an empty layer list, not an error', () => {
    const m = gen4();
    const empty = new (m.constructor as typeof import('../../src/ir/index.js').Model)(new Graph('g'));
    expect(diffModels(empty, empty).layers).toEqual([]);
    expect(layerViews(empty)).toEqual([]);
  });
});

describe('axc diff command', () => {
  async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
    const program = new Command().exitOverride();
    register(program);
    let out = '';
    let err = '';
    const w1 = process.stdout.write.bind(process.stdout);
    const w2 = process.stderr.write.bind(process.stderr);
    process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
    process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
    const prev = process.exitCode;
    try {
      process.exitCode = undefined;
      await program.parseAsync(['node', 'axc', 'diff', ...args]);
      return { code: Number(process.exitCode ?? 0), out, err };
    } finally {
      process.stdout.write = w1;
      process.stderr.write = w2;
      process.exitCode = prev;
    }
  }

  test('exit 0 for the same model, 1 for different models (with --json), 2 for a missing file or bad --seq', async () => {
    const pruned = path.join(tmp, 'pruned.onnx');
    const m = loadModel(TINY_MODEL);
    removeHeads(m, 1, [1]);
    saveModel(m, pruned);
    const same = await run([TINY_MODEL, TINY_MODEL]);
    expect(same.code).toBe(0);
    expect(same.out).toContain('the models are the same');
    const diff = await run([TINY_MODEL, pruned, '--json', '--seq', '64']);
    expect(diff.code).toBe(1);
    const j = JSON.parse(diff.out) as {
      schema: string;
      seq: number;
      layers: { removedHeads: number[] }[];
      totals: unknown;
    };
    expect(j.schema).toBe('axc.diff/1');
    expect(j.seq).toBe(64);
    expect(j.layers.map((l) => l.removedHeads)).toEqual([[], [1]]);
    expect(j.totals).toMatchObject({ before: { parameters: expect.any(Number), bytes: fs.statSync(TINY_MODEL).size } });
    const missing = await run([TINY_MODEL, path.join(tmp, 'nope.onnx')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/nope\.onnx/);
    expect(missing.err).not.toMatch(/\n\s+at /); // no stack trace
    const bad = await run([TINY_MODEL, TINY_MODEL, '--seq', 'abc']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('AX7001');
  });

  test('--html writes a self-contained page', async () => {
    const pruned = path.join(tmp, 'pruned2.onnx');
    const m = loadModel(TINY_MODEL);
    removeHeads(m, 1, [0]);
    saveModel(m, pruned);
    const html = path.join(tmp, 'diff.html');
    const r = await run([TINY_MODEL, pruned, '--html', html]);
    expect(r.code).toBe(1);
    const page = fs.readFileSync(html, 'utf8');
    expect(page).toMatch(/^<!DOCTYPE html>/);
    expect(page).not.toMatch(/(src|href)="(https?:)?\/\//); // nothing loaded from the network
    expect(page).toContain('<span class="head removed" data-head="0"');
  });
});

describe('whole blocks and layers', () => {
  test('a removed attention block leaves an FFN-only layer; a layer without both blocks is gone', () => {
    const before = buildBert(smallConfig({ layers: 3, heads: 4 }));
    const after = buildBert(smallConfig({ layers: 3, heads: 4 }));
    const layers = requireLayers(after);
    const set = emptyPruneSet(layers, 16);
    set.layers[0]!.attention = true;
    set.layers[0]!.ffn = true;
    set.layers[2]!.attention = true;
    applyPrune(after, layers, set);
    const d = diffModels(before, after);
    expect(d.layers.map((l) => [l.index, l.afterIndex, l.removedBlocks, l.removedHeads])).toEqual([
      [0, null, ['attention', 'ffn'], [0, 1, 2, 3]],
      [1, 0, [], []],
      [2, 1, ['attention'], [0, 1, 2, 3]],
    ]);
    expect(d.layers[2]!.after).toMatchObject({ heads: 0, attention: 'none', ffnSize: 64 });
    expect(d.layers[0]!.after).toBeNull();
    expect(diffText(d)).toMatch(/\n {2}0 +4 → - +0, 1, 2, 3 .*layer removed/);
  });
});
