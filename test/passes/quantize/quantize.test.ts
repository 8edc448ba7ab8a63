import type * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { modelText, Tensor, type Model } from '../../../src/ir/index.js';
import { loadModel, serializeModel } from '../../../src/onnx/index.js';
import type { DataProvider } from '../../../src/pass/index.js';
import '../../../passes/quantize.js';
import { runFuse } from '../../../passes/fuse.js';
import { dequantizeRows4, quantizeRows4 } from '../../../passes/lib/quant.js';
import type { MatrixReport, SignificanceView } from '../../../passes/lib/quant-types.js';
import { devFeeds } from '../../support/ort.js';
import { DEV_JSONL, TINY_MODEL } from '../../support/paths.js';
import { argmaxAgreement, maxAbsDiff, opCounts, run, runPass } from '../fuse/support.js';

/**
 * Table tests of `quantize` on the real tiny SST-2 model. `valid`: unchanged, with the reason. `invalid`: rewritten
 * in the expected form, and in onnxruntime the logits stay close to the float model's on dev rows the calibration
 * did not see (rows 0..63 evaluated; calibration on rows 200..263).
 */
const tiny = () => loadModel(TINY_MODEL);
/** Run `fuse attention` in place (synchronously, no data needed). */
function fusedAttention(m: Model): void {
  runFuse(
    {
      model: m,
      facts: new Map(),
      data,
      report: () => {},
      progress: () => {},
      details: {},
    },
    { patterns: [{ name: 'attention' }] },
  );
}
const fused = () => {
  const m = tiny();
  fusedAttention(m);
  return m;
};
const N = (...xs: string[]) => xs.map((name) => ({ name }));
const EVAL = devFeeds(DEV_JSONL, 64, 0);
const CALIB: Record<string, ort.Tensor>[] = [devFeeds(DEV_JSONL, 32, 200), devFeeds(DEV_JSONL, 32, 232)];
const data: DataProvider = {
  names: () => ['calib'],
  get: (n) => (n === 'calib' ? Promise.resolve(CALIB) : Promise.reject(new Error(`no data ${n}`))),
};

interface Case {
  name: string;
  model?: () => Model;
  options: Record<string, unknown>;
  ops?: Record<string, number>;
  messages?: [string, string][];
  /** Minimum argmax agreement with the float model and maximum |Δ logits|. */
  agree?: number;
  maxDiff?: number;
  /** Minimum ratio of float weight bytes to quantized bytes over the quantized matrices. */
  shrink?: number;
  facts?: Map<string, unknown>;
  check?: (details: Record<string, unknown>, m: Model) => void;
}

const valid: Case[] = [
  {
    name: 'every op excepted: nothing to do, says why',
    options: { 'except-ops': N('MatMul', 'Gemm') },
    messages: [['AX3302', 'every candidate was kept in float (except ops)']],
  },
  {
    name: 'int4 tables, target onnx, block-size wider than the tables: each table declined naming its node',
    options: { ops: N('gather'), mode: 'int4', target: 'onnx', 'block-size': 256 },
    messages: [
      [
        'AX3301',
        "did not quantize '/m/bert/embeddings/word_embeddings/Gather' (Gather): int4 (table-form nibbles): its table width 128 is not a multiple of block-size 256",
      ],
      ['AX3302', 'no gather node has a constant rank-2 float weight'],
    ],
  },
  {
    name: 'gemm only, with alpha != 1: declined naming the node',
    model: () => {
      const m = tiny();
      for (const n of m.graph) if (n.opType === 'Gemm') n.setAttr('alpha', 0.5);
      return m;
    },
    options: { ops: N('gemm') },
    messages: [
      ['AX3301', "did not quantize '/m/classifier/Gemm' (Gemm): alpha is 0.5, not 1"],
      ['AX3302', 'no gemm node has a constant rank-2 float weight'],
    ],
  },
];

const FLOAT_MATMULS = 12;
const GATHERS = opCounts(tiny()).Gather ?? 0;
const invalid: Case[] = [
  ...(['dynamic-quantize-matmul', 'matmul-integer-to-float', 'matmul-integer', 'qdq'] as const).map((form): Case => ({
    name: `int8 per-channel, form ${form}`,
    options: { form },
    ops: {
      MatMul: form === 'qdq' ? 4 + FLOAT_MATMULS + 2 : 4,
      Gemm: 0,
      'com.microsoft.DynamicQuantizeMatMul': form === 'dynamic-quantize-matmul' ? FLOAT_MATMULS + 2 : 0,
      'com.microsoft.MatMulIntegerToFloat': form === 'matmul-integer-to-float' ? FLOAT_MATMULS + 2 : 0,
      MatMulInteger: form === 'matmul-integer' ? FLOAT_MATMULS + 2 : 0,
      DequantizeLinear: form === 'qdq' ? FLOAT_MATMULS + 2 : 0,
    },
    agree: 0.95,
    maxDiff: 0.5,
    shrink: 3.5,
  })),
  {
    name: 'int8 per-tensor, unsigned weights',
    options: { mode: 'uint8', granularity: 'per-tensor' },
    ops: { 'com.microsoft.DynamicQuantizeMatMul': 14 },
    agree: 0.9,
    maxDiff: 1,
  },
  {
    name: 'except layers 0 keeps layer 0 in float; the report says why',
    options: { layers: { include: [], exclude: [0] } },
    ops: { MatMul: 4 + 6, 'com.microsoft.DynamicQuantizeMatMul': 6 + 2 },
    agree: 0.95,
    maxDiff: 0.5,
    check: (d) => {
      const ms = d.matrices as MatrixReport[];
      expect(ms.filter((r) => r.kept === 'except layer 0')).toHaveLength(6);
      expect(ms.find((r) => r.layer === 1 && r.role === 'q')?.form).toBe('dynamic-quantize-matmul');
    },
  },
  {
    name: 'after fuse attention: Attention becomes DynamicQuantizeLinear + QAttention (int8 QKV weight per column)',
    model: fused,
    options: {},
    ops: {
      'com.microsoft.DynamicQuantizeMatMul': 2 * 3 + 2,
      'com.microsoft.QAttention': 2,
      'com.microsoft.Attention': 0,
      DynamicQuantizeLinear: 2,
    },
    agree: 0.97,
    maxDiff: 0.5,
    shrink: 3.5,
    check: (d, m) => {
      expect(d.form).toBe('dynamic-quantize-matmul + qattention');
      const qkv = (d.matrices as MatrixReport[]).filter((r) => r.role === 'qkv');
      expect(qkv.map((r) => [r.layer, r.form, r.shape])).toEqual([
        [0, 'qattention', [128, 384]],
        [1, 'qattention', [128, 384]],
      ]);
      for (const r of qkv) expect(r.bytesAfter).toBe(128 * 384 + 384 * 4 + 384);
      for (const n of m.graph)
        if (n.opType === 'QAttention' || n.opType === 'DynamicQuantizeLinear')
          expect(n.metadataProps).toEqual([['axc.pass', 'quantize']]);
    },
  },
  {
    name: 'after fuse attention, per-tensor: one weight scale per QAttention',
    model: fused,
    options: { granularity: 'per-tensor' },
    ops: { 'com.microsoft.QAttention': 2 },
    agree: 0.95,
    maxDiff: 0.5,
    check: (_d, m) => {
      for (const n of m.graph) if (n.opType === 'QAttention') expect(n.input(4)!.constValue!.dims).toEqual([]);
    },
  },
  {
    name: 'after fuse attention, except layers 0: layer 0 Attention stays float, layer 1 is QAttention',
    model: fused,
    options: { layers: { include: [], exclude: [0] } },
    ops: { 'com.microsoft.QAttention': 1, 'com.microsoft.Attention': 1, 'com.microsoft.DynamicQuantizeMatMul': 3 + 2 },
    agree: 0.95,
    maxDiff: 0.5,
    check: (d) => {
      const qkv = (d.matrices as MatrixReport[]).filter((r) => r.role === 'qkv');
      expect(qkv.map((r) => [r.layer, r.form, r.kept])).toEqual([
        [0, 'float', 'except layer 0'],
        [1, 'qattention', undefined],
      ]);
    },
  },
  {
    name: 'after fuse attention, keep-float 1 by significance: the most significant attention block stays float',
    model: fused,
    options: { 'keep-float': 1 },
    facts: new Map<string, unknown>([
      [
        'significance',
        {
          layers: [
            { layer: 0, attention: { score: 0.1 }, ffn: { score: 0.2 } },
            { layer: 1, attention: { score: 0.9 }, ffn: { score: 0.3 } },
          ],
        } satisfies SignificanceView,
      ],
    ]),
    ops: { 'com.microsoft.QAttention': 1, 'com.microsoft.Attention': 1 },
    agree: 0.97,
    check: (d, m) => {
      const kept = (d.matrices as MatrixReport[]).filter((r) => r.form === 'float');
      expect(kept.map((r) => `${r.layer}.${r.role}`)).toEqual(['1.qkv']);
      const att = m.graph.nodes().find((n) => n.opType === 'Attention')!;
      expect(att.name).toContain('layer.1');
    },
  },
  {
    name: 'after fuse attention, static calibration: QAttention reads a QuantizeLinear with the calibrated range',
    model: fused,
    options: { calibration: 'minmax', on: 'calib' },
    ops: { 'com.microsoft.QAttention': 2, DynamicQuantizeLinear: 0 },
    agree: 0.9,
    maxDiff: 1,
    check: (d, m) => {
      for (const n of m.graph)
        if (n.opType === 'QAttention') {
          expect(n.input(0)!.producer()!.opType).toBe('QuantizeLinear');
          expect(n.input(3)!.constValue).toBeDefined(); // input scale: a constant
        }
      const qkv = (d.matrices as MatrixReport[]).filter((r) => r.role === 'qkv');
      expect(qkv.map((r) => [r.form, r.errorOf])).toEqual([
        ['static-qattention', 'output'],
        ['static-qattention', 'output'],
      ]);
    },
  },
  {
    name: 'after fuse attention, int4: Attention declined naming the node (no 4-bit attention), the rest MatMulNBits',
    model: fused,
    options: { mode: 'int4' },
    ops: { 'com.microsoft.MatMulNBits': 2 * 3 + 2, 'com.microsoft.Attention': 2 },
    messages: [['AX3301', '(Attention): int4: the fused Q/K/V weight has no 4-bit attention kernel']],
    agree: 0.85,
    maxDiff: 1.5,
  },
  {
    name: 'int4 MatMulNBits, block 32, symmetric',
    options: { mode: 'int4' },
    ops: { 'com.microsoft.MatMulNBits': 14, MatMul: 4 },
    agree: 0.85,
    maxDiff: 1.5,
    shrink: 5,
  },
  {
    name: 'int4 MatMulNBits, block 64, asymmetric (packed zero points)',
    options: { mode: 'int4', 'block-size': 64, symmetric: false },
    ops: { 'com.microsoft.MatMulNBits': 14 },
    agree: 0.85,
    maxDiff: 1.5,
  },
  {
    name: 'embedding tables: int8 rows, per-row scales (4x smaller)',
    options: { ops: N('gather') },
    // each of the 3 table Gathers becomes two (rows and scales)
    ops: { Gather: (opCounts(tiny()).Gather ?? 0) + 3, Cast: (opCounts(tiny()).Cast ?? 0) + 3 },
    agree: 0.98,
    maxDiff: 0.2,
    shrink: 3.8,
  },
  {
    name: 'embedding tables int4: com.microsoft GatherBlockQuantized, block 32, symmetric (6x smaller)',
    options: { ops: N('gather'), mode: 'int4', 'table-form': 'gather-block-quantized' },
    ops: { Gather: GATHERS - 3, 'com.microsoft.GatherBlockQuantized': 3 },
    agree: 0.97,
    maxDiff: 0.5,
    shrink: 6,
    check: (d, m) => {
      expect(d.form).toBe('int4-rows (gather-block-quantized)');
      const ms = d.matrices as MatrixReport[];
      expect(ms.map((r) => [r.role, r.form, r.shape])).toEqual([
        ['embedding', 'int4-rows (gather-block-quantized)', [30522, 128]],
        ['embedding', 'int4-rows (gather-block-quantized)', [2, 128]],
        ['embedding', 'int4-rows (gather-block-quantized)', [512, 128]],
      ]);
      // 4 bits a value + one float scale per 32 values
      expect(ms[0]!.bytesAfter).toBe(30522 * 64 + 30522 * 4 * 4);
      for (const r of ms) expect(r.relError).toBeLessThan(0.15);
      for (const n of m.graph)
        if (n.opType === 'GatherBlockQuantized') {
          expect([n.getInt('bits', 0), n.getInt('block_size', 0), n.inputs.length]).toEqual([4, 32, 3]);
          expect(n.metadataProps).toEqual([['axc.pass', 'quantize']]);
        }
    },
  },
  {
    name: 'embedding tables int4, block 64, asymmetric: packed 4-bit zero points',
    options: {
      ops: N('gather'),
      mode: 'int4',
      'block-size': 64,
      symmetric: false,
      'table-form': 'gather-block-quantized',
    },
    ops: { 'com.microsoft.GatherBlockQuantized': 3 },
    agree: 0.97,
    maxDiff: 0.5,
    shrink: 6,
    check: (_d, m) => {
      const n = m.graph.nodes().find((x) => x.opType === 'GatherBlockQuantized')!;
      expect(n.input(3)!.constValue!.dims).toEqual([30522, 1]); // 2 blocks of 64: one byte of zero points a row
    },
  },
  {
    name: 'embedding tables int4, target onnx: standard ops only (packed bytes, arithmetic unpack, block scales)',
    options: { ops: N('gather'), mode: 'int4', target: 'onnx' },
    // per table: the packed rows and the block scales; the high nibble by Floor
    ops: { Gather: GATHERS + 3, Floor: 3, 'com.microsoft.GatherBlockQuantized': 0 },
    agree: 0.97,
    maxDiff: 0.5,
    shrink: 6,
    check: (d, m) => {
      expect(d.form).toBe('int4-rows (nibbles)');
      expect(m.graph.nodes().filter((n) => n.domain !== '' && n.domain !== 'ai.onnx')).toEqual([]);
      expect(m.opsetImports.has('com.microsoft')).toBe(false);
    },
  },
  ...(['minmax', 'percentile', 'entropy'] as const).map((calibration): Case => ({
    name: `static int8, calibration ${calibration}`,
    options: { calibration, on: 'calib' },
    // one QuantizeLinear per distinct activation (Q, K and V share theirs): 4 per layer, pooler, classifier
    ops: { QuantizeLinear: 10, MatMul: 4 + 14 },
    agree: 0.9,
    maxDiff: 1,
    check: (d) => expect(d.form).toBe(`static-qdq (${calibration})`),
  })),
  {
    name: 'per-matrix error report on data: output error of every matrix',
    options: { on: 'calib' },
    agree: 0.95,
    check: (d) => {
      const ms = d.matrices as MatrixReport[];
      expect(ms).toHaveLength(14);
      for (const r of ms) {
        expect(r.errorOf).toBe('output');
        expect(r.relError).toBeGreaterThan(0);
        expect(r.relError).toBeLessThan(0.2);
      }
    },
  },
  {
    name: 'keep-float 2 by significance: the matrices of the most significant block stay float',
    options: { 'keep-float': 2 },
    facts: new Map<string, unknown>([
      [
        'significance',
        {
          layers: [
            { layer: 0, attention: { score: 0.1 }, ffn: { score: 0.9 } },
            { layer: 1, attention: { score: 0.2 }, ffn: { score: 0.3 } },
          ],
        } satisfies SignificanceView,
      ],
    ]),
    ops: { 'com.microsoft.DynamicQuantizeMatMul': 12 },
    agree: 0.95,
    check: (d) => {
      const kept = (d.matrices as MatrixReport[]).filter((r) => r.form === 'float');
      expect(kept.map((r) => `${r.layer}.${r.role}`)).toEqual(['0.up', '0.down']);
      expect(d.keptFloatBy).toBe('significance');
    },
  },
  {
    name: 'keep-float 25% without significance: the matrices with the largest error stay float',
    options: { 'keep-float': 0.25 },
    ops: { 'com.microsoft.DynamicQuantizeMatMul': 10 },
    agree: 0.95,
    check: (d) => {
      const ms = d.matrices as MatrixReport[];
      const kept = ms.filter((r) => r.form === 'float');
      expect(kept).toHaveLength(4);
      const minKept = Math.min(...kept.map((r) => r.relError));
      for (const r of ms) if (r.form !== 'float') expect(r.relError).toBeLessThanOrEqual(minKept);
      expect(d.keptFloatBy).toBe('quantization error (weight)');
    },
  },
];

function checkMessages(c: Case, ds: { code: string; message: string }[]): void {
  for (const [code, text] of c.messages ?? [])
    expect(
      ds.find((d) => d.code === code && d.message.includes(text)),
      `${code} "${text}" among:\n${ds.map((d) => `${d.code} ${d.message}`).join('\n')}`,
    ).toBeDefined();
}

const floatLogits = run(tiny(), EVAL);

describe('quantize: valid (unchanged)', () => {
  for (const c of valid)
    it(c.name, async () => {
      const m = (c.model ?? tiny)();
      const before = modelText(m);
      const { result, diagnostics } = await runPass(m, 'quantize', c.options, { data });
      expect(result.changed).toBe(false);
      expect(modelText(m)).toBe(before);
      checkMessages(c, diagnostics);
    });
});

describe('quantize: invalid (rewritten), checked in onnxruntime on dev rows', () => {
  for (const c of invalid)
    it(c.name, async () => {
      const m = (c.model ?? tiny)();
      const { result, diagnostics, details } = await runPass(m, 'quantize', c.options, { data, facts: c.facts });
      expect(result.changed).toBe(true);
      const counts = opCounts(m);
      for (const [op, n] of Object.entries(c.ops ?? {})) expect(counts[op] ?? 0, op).toBe(n);
      checkMessages(c, diagnostics);
      c.check?.(details, m);
      const ref = await floatLogits;
      const got = await run(m, EVAL, true);
      const agree = argmaxAgreement(ref, got, 2);
      const diff = maxAbsDiff(ref, got);
      expect(agree).toBeGreaterThanOrEqual(c.agree ?? 0.9);
      expect(diff).toBeLessThanOrEqual(c.maxDiff ?? 1);
      expect(diff).toBeGreaterThan(0); // it really is quantized
      if (c.shrink) expect(result.stats!.bytesBefore! / result.stats!.bytesAfter!).toBeGreaterThanOrEqual(c.shrink);
    });
});

describe('quantize: options and determinism', () => {
  it('int4 tables: the default form is standard ops for onnxruntime too; GatherBlockQuantized with target onnx is refused', async () => {
    const model = tiny();
    await runPass(model, 'quantize', { ops: N('gather'), mode: 'int4' });
    expect(opCounts(model)['com.microsoft.GatherBlockQuantized']).toBeUndefined();
    expect(opCounts(model).Floor).toBe(3);
    await expect(
      runPass(tiny(), 'quantize', {
        ops: N('gather'),
        mode: 'int4',
        target: 'onnx',
        'table-form': 'gather-block-quantized',
      }),
    ).rejects.toThrow(/AX3303.*table-form gather-block-quantized/);
  });
  it('int4 with target onnx is refused (MatMulNBits is com.microsoft)', async () => {
    await expect(runPass(tiny(), 'quantize', { mode: 'int4', target: 'onnx' })).rejects.toThrow(/AX3303/);
  });
  it('int4 matmul with target onnx is refused even alongside tables; int4 tables alone are allowed', async () => {
    await expect(
      runPass(tiny(), 'quantize', { ops: N('matmul', 'gather'), mode: 'int4', target: 'onnx' }),
    ).rejects.toThrow(/AX3303.*MatMulNBits/);
    const { result } = await runPass(tiny(), 'quantize', { ops: N('gather'), mode: 'int4', target: 'onnx' });
    expect(result.changed).toBe(true);
  });
  it('int4 tables: GatherBlockQuantized, the standard-ONNX form and the float model on the JS-dequantized tables agree', async () => {
    const opts = { ops: N('gather'), mode: 'int4', symmetric: false, 'block-size': 32 };
    const ort1 = tiny();
    await runPass(ort1, 'quantize', { ...opts, 'table-form': 'gather-block-quantized' });
    const std = tiny();
    await runPass(std, 'quantize', { ...opts, target: 'onnx' });
    // reference: the float model whose tables are replaced by what the int4 codes stand for
    const ref = tiny();
    for (const n of ref.graph.nodes()) {
      const t = n.opType === 'Gather' ? n.input(0)?.constValue : undefined;
      if (!t || t.dims.length !== 2 || t.dims[1] !== 128) continue;
      const [V, D] = t.dims as [number, number];
      const deq = dequantizeRows4(quantizeRows4(t.toFloat32(), V, D, 32, false));
      n.replaceInput(0, ref.graph.initializer(`${n.input(0)!.name}_deq`, Tensor.fromFloat32('t', [V, D], deq)));
    }
    const [a, b, c] = await Promise.all([run(ort1, EVAL), run(std, EVAL), run(ref, EVAL)]);
    expect(maxAbsDiff(a, c)).toBeLessThan(1e-4);
    expect(maxAbsDiff(b, c)).toBeLessThan(1e-4);
    expect(maxAbsDiff(c, await floatLogits)).toBeGreaterThan(1e-3); // the tables really changed
  });
  it('int8 matmuls then int4 tables: the whole tiny model about 6x smaller', async () => {
    const m = tiny();
    const before = serializeModel(m).length;
    await runPass(m, 'quantize', {});
    await runPass(m, 'quantize', { ops: N('gather'), mode: 'int4' });
    expect(before / serializeModel(m).length).toBeGreaterThan(5.5);
  });
  it('calibration without data is refused', async () => {
    await expect(runPass(tiny(), 'quantize', { calibration: 'minmax' })).rejects.toThrow(/AX3304.*on NAME/);
  });
  it('target onnx defaults to the QDQ form with standard ops only', async () => {
    const m = tiny();
    await runPass(m, 'quantize', { target: 'onnx' });
    expect(Object.keys(opCounts(m)).filter((k) => k.startsWith('com.microsoft'))).toEqual([]);
    expect(opCounts(m).DequantizeLinear).toBe(14);
  });
  it('same input, byte-identical output', async () => {
    const a = tiny();
    const b = tiny();
    await runPass(a, 'quantize', { ops: N('matmul', 'gemm', 'gather') });
    await runPass(b, 'quantize', { ops: N('matmul', 'gemm', 'gather') });
    expect(Buffer.compare(serializeModel(a), serializeModel(b))).toBe(0);
  });
  it('same input, byte-identical output: fused attention to QAttention, then int4 tables in both forms', async () => {
    const once = async (target: string) => {
      const m = fused();
      await runPass(m, 'quantize', {});
      await runPass(m, 'quantize', { ops: N('gather'), mode: 'int4', symmetric: false, target });
      return serializeModel(m);
    };
    for (const target of ['onnxruntime', 'onnx'])
      expect(Buffer.compare(await once(target), await once(target)), target).toBe(0);
  });
  it('the whole model with embeddings shrinks about 4x', async () => {
    const m = tiny();
    const before = serializeModel(m).length;
    await runPass(m, 'quantize', { ops: N('matmul', 'gemm', 'gather') });
    const after = serializeModel(m).length;
    expect(before / after).toBeGreaterThan(3.5);
  });
});

describe('quantize: calibration from a plan data source (src/verify Dataset)', () => {
  it('static int8 with entropy calibration on dev.jsonl rows 200..263', async () => {
    const { loadDataset } = await import('../../../src/verify/data.js');
    const ds = await loadDataset({
      name: 'calib',
      format: 'jsonl',
      path: DEV_JSONL,
      label: 'label',
      offset: 200,
      limit: 64,
    });
    const provider: DataProvider = { names: () => ['calib'], get: () => Promise.resolve(ds) };
    const m = tiny();
    const { result, details } = await runPass(
      m,
      'quantize',
      { calibration: 'entropy', on: 'calib' },
      { data: provider },
    );
    expect(result.changed).toBe(true);
    expect((details.matrices as MatrixReport[]).every((r) => r.errorOf === 'output')).toBe(true);
    const got = await run(m, EVAL, true);
    expect(argmaxAgreement(await floatLogits, got, 2)).toBeGreaterThanOrEqual(0.9);
  });
});
