import * as ort from 'onnxruntime-node';
import { expect, test } from 'vitest';
import '../../passes/index.js';
import { applyPrune } from '../../passes/lib/prune-apply.js';
import { requireLayers } from '../../passes/lib/prune-layers.js';
import { emptyPruneSet } from '../../passes/lib/prune-types.js';
import { diffModels } from '../../src/diff/index.js';
import { loadModel, serializeModel } from '../../src/onnx/index.js';
import { PassManager } from '../../src/pass/index.js';
import { devFeeds, runModel } from '../support/ort.js';
import { DEV_JSONL, TINY_MODEL } from '../support/paths.js';

test('real passes on the golden tiny model: prune API, then quantize and fuse through the pass manager', async () => {
  const before = loadModel(TINY_MODEL);
  const after = loadModel(TINY_MODEL);
  const layers = requireLayers(after);
  const set = emptyPruneSet(layers, 64);
  set.layers[1]!.heads = [0];
  applyPrune(after, layers, set);
  await new PassManager().run(after, [
    { pass: 'quantize', options: { ops: [{ name: 'matmul' }], layers: { include: [0], exclude: [] } } },
    { pass: 'fuse', options: {} },
  ]);
  // the result is a working model
  const out = await runModel(serializeModel(after), devFeeds(DEV_JSONL, 4));
  expect((out.logits!.data as Float32Array).every(Number.isFinite)).toBe(true);
  void ort;

  const d = diffModels(before, after);
  expect(d.layers.map((l) => l.removedHeads)).toEqual([[], [0]]);
  expect(d.layers[0]!.after!.precision).toMatch(/^int8 per-channel$/);
  expect(d.layers[1]!.after!.precision).toBe('float32');
  expect(d.layers[1]!.headMatch).toBe('exact');
  // every new node says which pass made it
  expect(d.passes['(unstamped)']).toBeUndefined();
  expect(Object.keys(d.passes)).toEqual(expect.arrayContaining(['quantize']));
  for (const n of d.nodes.added) expect(['quantize', 'fuse', 'prune']).toContain(n.pass);
});

test('embedding tables: the quantize pass on gather turns the tables to int8 rows with per-row scales', async () => {
  const before = loadModel(TINY_MODEL);
  const after = loadModel(TINY_MODEL);
  await new PassManager().run(after, [{ pass: 'quantize', options: { ops: [{ name: 'gather' }] } }]);
  const out = await runModel(serializeModel(after), devFeeds(DEV_JSONL, 2));
  expect((out.logits!.data as Float32Array).every(Number.isFinite)).toBe(true);
  const d = diffModels(before, after);
  const word = d.embeddings.find((e) => e.rows === 30522)!;
  expect(word).toEqual({
    name: 'm.bert.embeddings.word_embeddings.weight',
    rows: 30522,
    cols: 128,
    before: 'float32',
    after: 'int8 per-row',
  });
  expect(d.layers.every((l) => !l.changed)).toBe(true);
  // unchanged models list their tables, unchanged
  expect(diffModels(before, loadModel(TINY_MODEL)).embeddings.map((e) => [e.rows, e.before, e.after])).toEqual([
    [30522, 'float32', 'float32'],
    [2, 'float32', 'float32'],
    [512, 'float32', 'float32'],
  ]);
});

test.each(['dense', 'gather'])(
  'top-k attention (%s formulation) is read as the attention kind with its k',
  async (formulation) => {
    const before = loadModel(TINY_MODEL);
    const after = loadModel(TINY_MODEL);
    await new PassManager().run(after, [
      { pass: 'topk-attention', options: { layers: { include: [0], exclude: [] }, k: 4, formulation } },
    ]);
    const d = diffModels(before, after);
    expect(d.layers.map((l) => l.after?.attention)).toEqual(['top-k k=4', 'softmax']);
    expect(d.layers.map((l) => [l.after?.heads, l.removedHeads])).toEqual([
      [2, []],
      [2, []],
    ]);
    expect(Object.keys(d.passes)).toEqual(['topk-attention']);
    // the formulation really differs: gather selects V rows, dense scatters the kept probabilities
    const op = formulation === 'gather' ? 'GatherElements' : 'ScatterElements';
    expect(d.ops.find((o) => o.op === op)).toEqual({ op, before: 0, after: 1 });
  },
);

test.each([
  ['onnxruntime', 'auto'],
  ['onnx', 'auto'],
  ['onnxruntime', 'gather-block-quantized'],
])('4-bit embedding tables (target %s, table-form %s) are read as int4 blocks', async (target, tableForm) => {
  const before = loadModel(TINY_MODEL);
  const after = loadModel(TINY_MODEL);
  await new PassManager().run(after, [
    {
      pass: 'quantize',
      options: { ops: [{ name: 'gather' }], mode: 'int4', 'block-size': 32, target, 'table-form': tableForm },
    },
  ]);
  const out = await runModel(serializeModel(after), devFeeds(DEV_JSONL, 2));
  expect((out.logits!.data as Float32Array).every(Number.isFinite)).toBe(true);
  const d = diffModels(before, after);
  const word = d.embeddings.find((e) => e.rows === 30522)!;
  expect([word.cols, word.before, word.after]).toEqual([128, 'float32', 'int4 block 32']);
  // the word, position and type tables, and nothing of the unpack
  expect(d.embeddings.map((e) => e.after)).toEqual(['int4 block 32', 'int4 block 32', 'int4 block 32']);
});
