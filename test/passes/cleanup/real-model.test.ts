import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadModel, serializeModel } from '../../../src/onnx/index.js';
import { modelText, type Model } from '../../../src/ir/index.js';
import { DEV_JSONL, TINY_MODEL } from '../../support/paths.js';
import { devFeeds, runModel } from '../../support/ort.js';
import { invariantErrors, runPass } from './support.js';

const countOps = (m: Model, op: string) => m.graph.nodes().filter((n) => n.opType === op).length;

describe('cleanup on the real SST-2 bert-tiny export', () => {
  const orig = fs.readFileSync(TINY_MODEL);
  const feeds = devFeeds(DEV_JSONL, 6);

  it('removes most of the exporter clutter, keeps the IR valid and the logits bit-identical', async () => {
    const m = loadModel(TINY_MODEL);
    const before = m.graph.nodeCount;
    const constantsBefore = countOps(m, 'Constant');
    const r = await runPass(m, 'cleanup');
    expect(invariantErrors(m)).toEqual([]);
    expect(r.result.changed).toBe(true);
    const after = m.graph.nodeCount;
    // measured: 237 -> 132 nodes; every one of the 77 Constant nodes became an initializer
    expect(before).toBe(237);
    expect(constantsBefore).toBe(77);
    expect(countOps(m, 'Constant')).toBe(0);
    expect(after).toBe(132);
    expect(r.result.stats).toMatchObject({ nodesBefore: 237, nodesAfter: 132 });
    // the duplicated Shape(LayerNorm) -> Gather chains collapse to one per distinct input
    const shapeInputs = m.graph
      .nodes()
      .filter((n) => n.opType === 'Shape')
      .map((n) => n.input(0));
    expect(new Set(shapeInputs).size).toBe(shapeInputs.length);
    // duplicate constant initializers (int64[1] {0} and friends) are merged
    const consts = m.graph.initializers.filter((v) => v.constValue!.numElements <= 16).map((v) => v.constValue!);
    const keys = consts.map((t) => `${t.dataType}:${t.dims.join(',')}:${t.contentHash()}`);
    expect(new Set(keys).size).toBe(keys.length);

    const a = await runModel(orig, feeds);
    const b = await runModel(serializeModel(m), feeds);
    const x = a.logits!.data as Float32Array;
    const y = b.logits!.data as Float32Array;
    expect(
      Buffer.compare(
        Buffer.from(x.buffer, x.byteOffset, x.byteLength),
        Buffer.from(y.buffer, y.byteOffset, y.byteLength),
      ),
    ).toBe(0);
  });

  it('is idempotent: a second run changes nothing and prints the same model', async () => {
    const m = loadModel(TINY_MODEL);
    await runPass(m, 'cleanup');
    const text = modelText(m);
    const bytes = serializeModel(m);
    const again = await runPass(m, 'cleanup');
    expect(again.result.changed).toBe(false);
    expect(modelText(m)).toBe(text);
    expect(Buffer.compare(serializeModel(m), bytes)).toBe(0);
  });

  it('is deterministic: two runs on fresh loads give byte-identical models', async () => {
    const m1 = loadModel(TINY_MODEL);
    const m2 = loadModel(TINY_MODEL);
    await runPass(m1, 'cleanup');
    await runPass(m2, 'cleanup');
    expect(Buffer.compare(serializeModel(m1), serializeModel(m2))).toBe(0);
  });

  it('toposort restores a valid order after the nodes are reversed, and cleanup then gives the same model', async () => {
    const m = loadModel(TINY_MODEL);
    for (const n of m.graph.nodes()) m.graph.moveBefore(n, m.graph.first());
    expect(invariantErrors(m).length).toBeGreaterThan(0);
    const r = await runPass(m, 'toposort');
    expect(r.result.changed).toBe(true);
    expect(invariantErrors(m)).toEqual([]);
    const a = await runModel(orig, feeds);
    const b = await runModel(serializeModel(m), feeds);
    expect(Array.from(b.logits!.data as Float32Array)).toEqual(Array.from(a.logits!.data as Float32Array));
    // a valid but different order: cleanup output follows the order of the graph it is given, still valid
    await runPass(m, 'cleanup');
    expect(invariantErrors(m)).toEqual([]);
    expect(m.graph.nodeCount).toBe(132);
  });

  it('each member pass alone keeps the IR valid and the logits bit-identical', async () => {
    const ref = await runModel(orig, feeds);
    const want = Array.from(ref.logits!.data as Float32Array);
    const removed: Record<string, number> = {};
    for (const name of ['fold-constants', 'cse', 'eliminate-identity', 'dce', 'toposort']) {
      const m = loadModel(TINY_MODEL);
      const r = await runPass(m, name);
      expect(invariantErrors(m), name).toEqual([]);
      removed[name] = 237 - m.graph.nodeCount;
      const out = await runModel(serializeModel(m), feeds);
      expect(Array.from(out.logits!.data as Float32Array), name).toEqual(want);
      const twice = await runPass(m, name);
      // fold-constants and cse expose more work to each other, but alone each is idempotent
      expect(twice.result.changed, `${name} twice`).toBe(false);
      expect(r.result.changed).toBe(removed[name]! > 0);
    }
    expect(removed).toEqual({ 'fold-constants': 78, cse: 81, 'eliminate-identity': 6, dce: 0, toposort: 0 });
  });
});
