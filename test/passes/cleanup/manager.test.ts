import * as fc from 'fast-check';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { allPasses, PassManager } from '../../../src/pass/index.js';
import { loadModel, serializeModel } from '../../../src/onnx/index.js';
import { DataType, graphText, modelText, tensorType, Tensor, type Value } from '../../../src/ir/index.js';
import { TINY_MODEL } from '../../support/paths.js';
import { G } from './cases.js';
import { invariantErrors, runPass } from './support.js';

describe('cleanup passes in the pass manager', () => {
  it('registers dce and eliminate-identity (only) as the cheap cleanup run between steps', () => {
    const names = allPasses()
      .filter((p) => p.cleanup)
      .map((p) => p.name);
    expect(names).toContain('dce');
    expect(names).toContain('eliminate-identity');
    for (const n of ['cleanup', 'cse', 'fold-constants', 'toposort']) expect(names).not.toContain(n);
  });

  it('runs a plan step, then the cleanup passes, and reports what each removed', async () => {
    const m = loadModel(TINY_MODEL);
    const pm = new PassManager();
    const [rep] = await pm.run(m, [{ pass: 'fold-constants', options: {} }]);
    expect(rep!.changed).toBe(true);
    expect(rep!.stats).toMatchObject({ constantsConverted: 77, nodesFolded: 1 });
    // 5 no-op Casts (bool->bool, int64->int64) and a single-input Concat go (eliminate-identity); nothing is dead
    expect(rep!.cleanup!.stats).toMatchObject({ initializersRemoved: 0, nodesRemoved: 6 });
    expect(invariantErrors(m)).toEqual([]);
    const text = modelText(m);
    const c2 = await pm.cleanup(m);
    expect(c2.stats).toMatchObject({ nodesRemoved: 0, initializersRemoved: 0 });
    expect(modelText(m)).toBe(text);
  });
});

/**
 * Property: on random graphs mixing duplicated subexpressions, Identity/no-op nodes, dead branches and Constant
 * nodes, `cleanup` keeps the IR valid, is idempotent, and gives bit-identical outputs in onnxruntime.
 */
type Step = {
  op: 'Add' | 'Mul' | 'Sub' | 'Neg' | 'Identity' | 'Cast' | 'Const' | 'Dead';
  a: number;
  b: number;
  k: number;
};

const stepArb = fc.record({
  op: fc.constantFrom('Add', 'Mul', 'Sub', 'Neg', 'Identity', 'Cast', 'Const', 'Dead' as const),
  a: fc.nat(),
  b: fc.nat(),
  k: fc.integer({ min: -3, max: 3 }),
}) as fc.Arbitrary<Step>;

function build(steps: Step[], outs: number[]): G {
  const t = new G();
  const vals: Value[] = [t.input('x', DataType.FLOAT, [2, 3]), t.input('y', DataType.FLOAT, [3])];
  for (const s of steps) {
    const a = vals[s.a % vals.length]!;
    const b = vals[s.b % vals.length]!;
    switch (s.op) {
      case 'Neg':
      case 'Identity':
        vals.push(t.op(s.op, [a]));
        break;
      case 'Cast':
        vals.push(t.op('Cast', [a], { to: DataType.FLOAT }));
        break;
      case 'Const':
        vals.push(t.constant('k', Tensor.fromFloat32('k', [3], [s.k, 0.5, s.k / 3])));
        break;
      case 'Dead':
        t.op('Neg', [t.op('Mul', [a, b])]);
        break;
      default:
        vals.push(t.op(s.op, [a, b]));
    }
  }
  const seen = new Set<Value>();
  for (const o of outs) {
    const v = vals[2 + (o % Math.max(1, vals.length - 2))] ?? vals[0]!;
    if (seen.has(v) || v.isGraphInput() || v.producer()?.opType === 'Constant') continue;
    seen.add(v);
    v.type = tensorType(DataType.FLOAT);
    t.out(v);
  }
  if (t.g.outputs.length === 0) {
    const v = t.op('Add', [vals[0]!, vals[vals.length - 1]!]);
    v.type = tensorType(DataType.FLOAT);
    t.out(v);
  }
  return t;
}

async function run(bytes: Uint8Array): Promise<Buffer[]> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  const x = new ort.Tensor('float32', Float32Array.from([0.1, -2, 3.5, 7, 1e-3, -0.25]), [2, 3]);
  const y = new ort.Tensor('float32', Float32Array.from([1.5, -0.3, 2]), [3]);
  const out = await s.run({ x, y });
  await s.release();
  return s.outputNames.map((n) => {
    const d = out[n]!.data as Float32Array;
    return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  });
}

describe('cleanup on random graphs (fast-check)', () => {
  it('keeps outputs bit-identical, the IR valid, and is idempotent', async () => {
    let removed = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArb, { minLength: 1, maxLength: 14 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
        async (steps, outs) => {
          const t = build(steps, outs);
          const want = await run(serializeModel(t.m));
          const names = t.g.outputs.map((v) => v.name);
          removed += (await runPass(t.m, 'cleanup')).result.stats!.nodesRemoved!;
          expect(invariantErrors(t.m)).toEqual([]);
          expect(t.g.outputs.map((v) => v.name)).toEqual(names);
          expect(
            t.g
              .nodes()
              .some((n) => ['Identity', 'Constant', 'Cast'].includes(n.opType) && !n.outputs[0]!.isGraphOutput()),
          ).toBe(false);
          const text = graphText(t.g);
          const again = await runPass(t.m, 'cleanup');
          expect(again.result.changed).toBe(false);
          expect(graphText(t.g)).toBe(text);
          expect(await run(serializeModel(t.m))).toEqual(want);
        },
      ),
      { numRuns: 40, seed: 20261122 },
    );
    // the generator does produce work for cleanup (no vacuous pass)
    expect(removed).toBeGreaterThan(100);
  }, 60000);
});
