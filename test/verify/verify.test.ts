import { beforeAll, describe, expect, test } from 'vitest';
import { Tensor, type Model } from '../../src/ir/index.js';
import { loadModel } from '../../src/onnx/index.js';
import type { VerifySpec } from '../../src/pass/plan.js';
import {
  compareOutput,
  createSession,
  fmt,
  fmtUp,
  loadDataset,
  metricsOf,
  renderVerifyResult,
  runDataset,
  verify,
  type Dataset,
  type OutputRows,
} from '../../src/verify/index.js';
import { DEV_JSONL, TINY_MODEL } from '../support/paths.js';

const span = { file: 'plan.ax', line: 7, col: 1, endLine: 7, endCol: 30 };

/** The tiny model with `delta` added to bias entry `k` of the named initializer. */
function perturbed(name: string, k: number, delta: number): Model {
  const m = loadModel(TINY_MODEL);
  const v = m.graph.initializers.find((x) => x.name === name)!;
  const vals = Float32Array.from(v.constValue!.toFloat32());
  vals[k]! += delta;
  v.constValue = Tensor.fromFloat32(v.name, v.constValue!.dims, vals);
  return m;
}

let data: Dataset;
beforeAll(async () => {
  data = await loadDataset({ name: 'dev', format: 'jsonl', path: DEV_JSONL, split: 'odd', limit: 48, batch: 16 });
});

describe('runner', () => {
  test('the whole dev set, batches of 64 padded per batch, gives the published accuracy 78.8%', async () => {
    const dev = await loadDataset({ name: 'dev', format: 'jsonl', path: DEV_JSONL, batch: 64 });
    const r = await runDataset(TINY_MODEL, dev);
    expect(r.rows).toBe(872);
    const logits = r.outputs.get('logits')!;
    expect(logits.offsets).toHaveLength(873);
    expect(logits.rowDims[0]).toEqual([2]);
    const m = metricsOf(
      logits,
      dev.rows.map((x) => x.label!),
    )!;
    expect(m.correct).toBe(687);
    expect(m.accuracy).toBeCloseTo(0.7878, 4);
    expect(m.f1!).toBeGreaterThan(0.75);
    expect(m.f1!).toBeLessThan(0.85);
  });

  test('rows come out in data order whatever the batch size', async () => {
    const a = await runDataset(TINY_MODEL, data, { batch: 5 });
    const b = await runDataset(TINY_MODEL, data, { batch: 48 });
    const la = a.outputs.get('logits')!.data;
    const lb = b.outputs.get('logits')!.data;
    expect(la.length).toBe(96);
    // padding changes float rounding a little; predictions and values agree closely
    for (let i = 0; i < la.length; i++) expect(Math.abs(la[i]! - lb[i]!)).toBeLessThan(1e-4);
  });

  test('onnxruntime load failure is a diagnostic', async () => {
    await expect(createSession(new Uint8Array([1, 2, 3]))).rejects.toThrow(/AX4010/);
  });
});

describe('verify', () => {
  test('a model against itself (IR vs file) passes with zero tolerance', async () => {
    const spec: VerifySpec = { data: 'dev', outputs: [{ output: '*', atol: 0, rtol: 0, cosine: 1, argmax: 1 }], span };
    const r = await verify(TINY_MODEL, loadModel(TINY_MODEL), spec, data);
    expect(r.failures).toEqual([]);
    expect(r.pass).toBe(true);
    const o = r.outputs[0]!;
    expect(o.name).toBe('logits');
    expect(o.maxAbsError).toBe(0);
    expect(o.cosine).toBeCloseTo(1, 12);
    expect(o.argmaxAgreement).toBe(1);
    expect(o.argmaxRows).toBe(48);
    expect(r.metrics.accuracyDrop).toBe(0);
    expect(r.metrics.original!.rows).toBe(48);
  });

  test('a perturbed weight fails the tolerance with the figures and the tolerance that would pass', async () => {
    const spec: VerifySpec = { data: 'dev', outputs: [{ output: 'logits', atol: 1e-4, rtol: 0 }], span };
    const r = await verify(TINY_MODEL, perturbed('m.classifier.bias', 1, 0.5), spec, data);
    expect(r.pass).toBe(false);
    expect(r.failures.map((f) => f.code)).toEqual(['AX4001']);
    const f = r.failures[0]!;
    expect(f.location).toEqual({ kind: 'plan', ...span });
    // every class-1 logit moved by 0.5, class-0 logits not at all
    expect(f.message).toMatch(
      /^output 'logits': 48 of 96 values differ by more than atol 1e-4 \+ rtol 0 × \|original\| \(max abs error 0\.5 at row \d+, dev\.jsonl:\d+; mean 0\.25;/,
    );
    expect(f.message).toMatch(/would pass with atol 0\.501 at rtol 0, or rtol \d+ at atol 1e-4$/);
    const o = r.outputs[0]!;
    expect(o.maxAbsError).toBeCloseTo(0.5, 5);
    expect(o.meanAbsError).toBeCloseTo(0.25, 5);
    expect(o.tolerance!.passingAtol).toBeCloseTo(0.5, 5);
    // float32 arithmetic makes the need a hair over 0.5; the printed figure is rounded up so that it passes
    expect(o.tolerance!.passingAtol).toBeLessThanOrEqual(0.501);
    // the figures it reports are sufficient: verifying again with them passes
    const again = await verify(
      TINY_MODEL,
      perturbed('m.classifier.bias', 1, 0.5),
      { ...spec, outputs: [{ output: 'logits', atol: o.tolerance!.passingAtol, rtol: 0 }] },
      data,
    );
    expect(again.pass).toBe(true);
    // a reference run computed once gives the same figures
    const ref = await runDataset(TINY_MODEL, data);
    const cached = await verify(TINY_MODEL, perturbed('m.classifier.bias', 1, 0.5), spec, data, { reference: ref });
    expect(cached.failures).toEqual(r.failures);
    expect(cached.outputs).toEqual(r.outputs);
  });

  test('accuracy, argmax and cosine requirements each report their own code', async () => {
    const spec: VerifySpec = {
      data: 'dev',
      accuracyDrop: 1,
      minAccuracy: 0.7,
      outputs: [{ output: '*', cosine: 0.9999, argmax: 0.99 }],
      span,
    };
    // a large bias on class 1 makes every prediction positive
    const r = await verify(TINY_MODEL, perturbed('m.classifier.bias', 1, 20), spec, data);
    expect(r.pass).toBe(false);
    expect(r.failures.map((f) => f.code).sort()).toEqual(['AX4002', 'AX4003', 'AX4004', 'AX4005']);
    const positives = data.rows.filter((x) => x.label === 1).length;
    expect(r.metrics.compiled!.correct).toBe(positives);
    const drop = (r.metrics.original!.accuracy - positives / 48) * 100;
    expect(r.metrics.accuracyDrop).toBeCloseTo(drop, 9);
    const byCode = Object.fromEntries(r.failures.map((f) => [f.code, f.message]));
    expect(byCode.AX4004).toMatch(
      new RegExp(`^accuracy dropped by ${drop.toFixed(2)} points .*more than the allowed 1`),
    );
    expect(byCode.AX4005).toContain(`(${positives} of 48 rows of 'dev'), below the required 70.00%`);
    expect(byCode.AX4003).toMatch(/argmax agrees on [\d.]+% of rows \(\d+ of 48\), below the required 99\.00%/);
    expect(byCode.AX4002).toMatch(/cosine similarity 0\.\d+ is below the required 0\.9999/);
  });

  test('an unknown output in the tolerances is named, with a suggestion', async () => {
    const spec: VerifySpec = { data: 'dev', outputs: [{ output: 'logit', atol: 1 }], span };
    const r = await verify(TINY_MODEL, TINY_MODEL, spec, data);
    expect(r.failures.map((f) => [f.code, f.notes])).toEqual([['AX4008', ["did you mean 'logits'?"]]]);
    expect(r.failures[0]!.message).toContain('(outputs: logits)');
  });

  test('a negative allowed drop demands a gain', async () => {
    const r = await verify(TINY_MODEL, TINY_MODEL, { data: 'dev', accuracyDrop: -1, outputs: [], span }, data);
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]!.message).toMatch(
      /^accuracy did not change \(original (\d+\.\d\d)% → compiled \1% on 48 rows of 'dev'\), but the verify statement demands a gain of at least 1; would pass with accuracy drop <= 0\.00 points$/,
    );
  });

  test('accuracy on unlabelled data is an error', async () => {
    const unlabelled: Dataset = { ...data, rows: data.rows.map(({ label: _l, ...rest }) => rest), labelled: false };
    const r = await verify(TINY_MODEL, TINY_MODEL, { data: 'dev', accuracyDrop: 0, outputs: [], span }, unlabelled);
    expect(r.failures.map((f) => f.code)).toEqual(['AX4007']);
  });

  test('text summary', async () => {
    const r = await verify(
      TINY_MODEL,
      perturbed('m.classifier.bias', 1, 0.5),
      { data: 'dev', outputs: [{ output: 'logits', atol: 1e-4 }], span },
      data,
    );
    const text = renderVerifyResult(r);
    const lines = text.split('\n');
    expect(lines[0]).toBe("verify on 'dev' (48 rows): FAIL");
    expect(lines[1]).toMatch(/^ {2}output +max abs +mean abs +max rel +cosine +argmax +requirements$/);
    expect(lines[2]).toMatch(/^ {2}logits +0\.5 +0\.25 .* atol 1e-4 rtol 0: 48 over \(needs atol 0\.501\)$/);
    expect(lines[3]).toMatch(/^ {2}original: accuracy \d+\.\d\d% \(\d+\/48\), F1 0\.\d{4}$/);
    expect(renderVerifyResult(r)).toBe(text);
  });
});

describe('compareOutput', () => {
  const rows = (vals: number[], width: number): OutputRows => ({
    name: 'y',
    type: 'float32',
    data: Float64Array.from(vals),
    offsets: Array.from({ length: vals.length / width + 1 }, (_, i) => i * width),
    rowDims: Array.from({ length: vals.length / width }, () => [width]),
  });

  test('statistics and the smallest passing tolerances', () => {
    const ref = rows([1, 2, -4, 0], 2);
    const got = rows([1.1, 2, -4.4, 0.05], 2);
    const c = compareOutput('y', got, ref, { output: 'y', atol: 0.01, rtol: 0.05 });
    expect(c.maxAbsError).toBeCloseTo(0.4, 12);
    expect(c.meanAbsError).toBeCloseTo(0.1375, 12);
    expect(c.maxRelError).toBeCloseTo(0.1, 12); // 0.4 / 4 and 0.1 / 1; the 0 reference is skipped
    expect(c.worstRow).toBe(1);
    // |d| - rtol|b|: 0.1 - 0.05, 0.4 - 0.2, 0.05 - 0 → 0.2
    expect(c.tolerance!.passingAtol).toBeCloseTo(0.2, 12);
    // the 0 reference with an error above atol needs an infinite rtol
    expect(c.tolerance!.passingRtol).toBe(Infinity);
    expect(c.tolerance!.violations).toBe(3);
    expect(c.argmaxAgreement).toBe(1);
    expect(c.pass).toBe(false);
    // 4.4 - 4 is 0.4000000000000004 in float64: exactly 0.2 does not pass, the printed (rounded-up) figure does
    expect(compareOutput('y', got, ref, { output: 'y', atol: 0.2, rtol: 0.05 }).pass).toBe(false);
    expect(fmtUp(c.tolerance!.passingAtol)).toBe('0.201');
    expect(compareOutput('y', got, ref, { output: 'y', atol: 0.201, rtol: 0.05 }).pass).toBe(true);
  });

  test('NaN on one side fails every tolerance; matching NaN and infinities are equal', () => {
    const c = compareOutput('y', rows([NaN, 1], 2), rows([0, 1], 2), { output: 'y', atol: 1e9 });
    expect(c.nonFinite).toBe(1);
    expect(c.tolerance!.violations).toBe(1);
    expect(c.tolerance!.passingAtol).toBe(Infinity);
    const same = compareOutput('y', rows([NaN, Infinity], 2), rows([NaN, Infinity], 2), { output: 'y', atol: 0 });
    expect(same.tolerance!.violations).toBe(0);
    expect(same.maxAbsError).toBe(0);
  });

  test('argmax agreement counts vectors along the last axis', () => {
    const c = compareOutput('y', rows([0, 1, 1, 0, 5, 6], 2), rows([0, 1, 0, 1, 5, 6], 2), { output: 'y' });
    expect(c.argmaxAgreeRows).toBe(2);
    expect(c.argmaxRows).toBe(3);
    expect(c.tolerance).toBeUndefined();
  });

  test('number format', () => {
    expect([0, 0.5, 1e-4, 2.5e-7, 123.456, 1e6, NaN, Infinity].map(fmt)).toEqual([
      '0',
      '0.5',
      '1e-4',
      '2.5e-7',
      '123.5',
      '1e6',
      'NaN',
      'inf',
    ]);
  });
});
