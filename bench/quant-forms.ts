/**
 * Which quantized MatMul form does onnxruntime (CPU EP) run fastest on this machine?
 *
 * Builds one MatMul x_BSK @ W_KN for W 768x768 and 768x3072, at batch 1 and 32 (sequence 128), in every form of
 * passes/lib/quant.ts (fp32 baseline, four int8 forms, int4 MatMulNBits), runs each in onnxruntime-node with one
 * intra-op thread and graph optimization 'all', and prints the median time of many runs plus the relative L2 error
 * against the fp32 output. The fastest int8 form is DEFAULT_ORT_FORM in passes/lib/quant.ts.
 *
 * Forms run interleaved (one run of each form in turn), so load from other processes hits them alike.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/quant-forms.js [--runs N] [--level all|disabled]
 *
 * Measured 2026-11-22 on the team machine (2 cores shared by 5 engineers, AVX2, no VNNI; onnxruntime-node 1.30,
 * 1 thread, level all, --runs 40, medians in ms; the machine was loaded, so compare rows, not absolute times):
 *
 *   W         batch  fp32     matmul-integer  dyn-quant-matmul  matmul-int-to-float  qdq      matmul-nbits(int4)
 *   768x768   1      7.02     1.28            1.52              1.21                 12.90    10.17
 *   768x768   32     241.36   136.07          113.82            131.01               315.95   220.80
 *   768x3072  1      34.12    16.00           16.21             18.98                46.95    31.15
 *   768x3072  32     1157.09  593.42          540.49            559.12               1242.28  966.48
 *
 * Geometric-mean speedup over fp32: dynamic-quantize-matmul 2.58x, matmul-integer 2.52x, matmul-integer-to-float
 * 2.51x, qdq 0.73x (weight-only QDQ dequantizes the weight every run). The three integer forms are within noise of
 * each other at level all (onnxruntime fuses DynamicQuantizeLinear + MatMulInteger into the same kernels);
 * DynamicQuantizeMatMul is one node, also fast with optimizations disabled, and takes the bias: it is the default.
 * With --level disabled (--runs 24; no onnxruntime fusion): dynamic-quantize-matmul 2.43x, matmul-integer-to-float
 * 2.42x, matmul-integer 2.22x (unfused DynamicQuantizeLinear + MatMulInteger + Cast + Mul), qdq 0.71x.
 * Relative L2 error vs fp32 on random data: int8 2.3e-2 (activation quantization included), int4 9.2e-2.
 */
import * as ort from 'onnxruntime-node';
import { Builder, Graph, Model, Value, tensorType, DataType } from '../src/ir/index.js';
import { serializeModel } from '../src/onnx/index.js';
import {
  INT8_FORMS,
  emitInt8MatMul,
  emitMatMulNBits,
  quantizeInt8,
  quantizeNBits,
  quantWeightValues,
  relL2,
  type Int8Form,
} from '../passes/lib/quant.js';

type Form = 'fp32' | Int8Form | 'matmul-nbits';
const FORMS: Form[] = ['fp32', ...INT8_FORMS, 'matmul-nbits'];

/** Deterministic pseudo-random numbers (xorshift), roughly N(0, sd). */
function rand(n: number, seed: number, sd: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let j = 0; j < 4; j++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      acc += (s >>> 0) / 4294967296;
    }
    out[i] = (acc - 2) * sd * 1.732;
  }
  return out;
}

export function buildFormModel(form: Form, w_KN: Float32Array, K: number, N: number): Uint8Array {
  const g = new Graph('bench');
  const x_BSK = g.addInput(new Value('x_BSK', tensorType(DataType.FLOAT, ['B', 'S', K])));
  const b = new Builder(g);
  let y: Value;
  if (form === 'fp32') {
    const w = b.constFloat('w_KN', w_KN, [K, N]);
    y = b.op1('MatMul', [x_BSK, w], { name: 'matmul', outputNames: ['y_BSN'] });
  } else if (form === 'matmul-nbits') {
    y = emitMatMulNBits(b, x_BSK, quantizeNBits(w_KN, K, N, 32, true), 'w', null, 'y_BSN');
  } else {
    // onnxruntime's x86 kernels want activations uint8 and weights int8
    const qw = quantWeightValues(b, 'w', quantizeInt8(w_KN, K, N, true, true));
    y = emitInt8MatMul(b, form, x_BSK, qw, 'w', null, 'y_BSN');
  }
  y.type = tensorType(DataType.FLOAT, ['B', 'S', N]);
  g.outputs.push(y);
  const m = new Model(g);
  m.irVersion = 8;
  m.opsetImports.set('', 17);
  m.opsetImports.set('com.microsoft', 1);
  return serializeModel(m);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const runsArg = process.argv.indexOf('--runs');
  const baseRuns = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 40;
  const levelArg = process.argv.indexOf('--level');
  const level = (levelArg > 0 ? process.argv[levelArg + 1] : 'all') as 'all' | 'disabled';
  const S = 128;
  const rows: string[][] = [['W (KxN)', 'batch', 'form', 'median ms', 'vs fp32', 'rel L2 err']];
  const speedups = new Map<Form, number[]>();
  for (const [K, N] of [
    [768, 768],
    [768, 3072],
  ] as const) {
    const w_KN = rand(K * N, 7 + N, 0.04);
    for (const B of [1, 32]) {
      const x = rand(B * S * K, 11 + B, 1);
      const feeds = { x_BSK: new ort.Tensor('float32', x, [B, S, K]) };
      const runs = B === 1 ? baseRuns : Math.max(5, Math.round(baseRuns / 4));
      const sessions: ort.InferenceSession[] = [];
      const outs: Float32Array[] = [];
      for (const form of FORMS) {
        const sess = await ort.InferenceSession.create(buildFormModel(form, w_KN, K, N), {
          graphOptimizationLevel: level,
          intraOpNumThreads: 1,
          interOpNumThreads: 1,
        });
        outs.push((await sess.run(feeds)).y_BSN!.data as Float32Array); // warm-up
        sessions.push(sess);
      }
      // interleave the forms run by run, so that load from other processes hits every form alike
      const ts: number[][] = FORMS.map(() => []);
      for (let r = 0; r < runs; r++)
        for (let f = 0; f < FORMS.length; f++) {
          const t0 = performance.now();
          await sessions[f]!.run(feeds);
          ts[f]!.push(performance.now() - t0);
        }
      for (const s of sessions) await s.release();
      const base = median(ts[0]!);
      FORMS.forEach((form, f) => {
        const med = median(ts[f]!);
        const sp = speedups.get(form) ?? [];
        sp.push(base / med);
        speedups.set(form, sp);
        rows.push([
          `${K}x${N}`,
          String(B),
          form,
          med.toFixed(2),
          `${(base / med).toFixed(2)}x`,
          relL2(outs[0]!, outs[f]!).toExponential(2),
        ]);
      });
      process.stderr.write(`${K}x${N} B=${B} done\n`);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  const geo = (xs: number[]) => Math.exp(xs.reduce((a, b) => a + Math.log(b), 0) / xs.length);
  const ranked = INT8_FORMS.map((f) => [f, geo(speedups.get(f)!)] as const).sort((a, b) => b[1] - a[1]);
  console.log(
    `\nint8 forms by geometric-mean speedup over fp32: ${ranked.map(([f, g]) => `${f} ${g.toFixed(2)}x`).join(', ')}`,
  );
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
