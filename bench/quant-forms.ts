/**
 * Which quantized MatMul form does onnxruntime (CPU EP) run fastest on this machine?
 *
 * Builds one MatMul x_BSK @ W_KN for W 768x768 and 768x3072, at batch 1 and 32 (sequence 128), in every form of
 * passes/lib/quant.ts (fp32 baseline, four int8 forms, int4 MatMulNBits), runs each in onnxruntime-node with one
 * intra-op thread and graph optimization 'all', and prints the median time of many runs plus the relative L2 error
 * against the fp32 output. The fastest int8 form is DEFAULT_ORT_FORM in passes/lib/quant.ts.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/quant-forms.js [--runs N]
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
    y = emitInt8MatMul(b, form, x_BSK, quantizeInt8(w_KN, K, N, true, true), 'w', null, 'y_BSN');
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
  const S = 128;
  const rows: string[][] = [['W (KxN)', 'batch', 'form', 'median ms', 'vs fp32', 'rel L2 err']];
  for (const [K, N] of [
    [768, 768],
    [768, 3072],
  ] as const) {
    const w_KN = rand(K * N, 7 + N, 0.04);
    for (const B of [1, 32]) {
      const x = rand(B * S * K, 11 + B, 1);
      const feeds = { x_BSK: new ort.Tensor('float32', x, [B, S, K]) };
      const runs = B === 1 ? baseRuns : Math.max(5, Math.round(baseRuns / 4));
      let base = 0;
      let ref: Float32Array | undefined;
      for (const form of FORMS) {
        const bytes = buildFormModel(form, w_KN, K, N);
        const sess = await ort.InferenceSession.create(bytes, {
          graphOptimizationLevel: 'all',
          intraOpNumThreads: 1,
          interOpNumThreads: 1,
        });
        let out = (await sess.run(feeds)).y_BSN!.data as Float32Array; // warm-up
        await sess.run(feeds);
        const ts: number[] = [];
        for (let r = 0; r < runs; r++) {
          const t0 = performance.now();
          out = (await sess.run(feeds)).y_BSN!.data as Float32Array;
          ts.push(performance.now() - t0);
        }
        await sess.release();
        const med = median(ts);
        if (form === 'fp32') {
          base = med;
          ref = out;
        }
        rows.push([
          `${K}x${N}`,
          String(B),
          form,
          med.toFixed(2),
          `${(base / med).toFixed(2)}x`,
          ref ? relL2(ref, out).toExponential(2) : '-',
        ]);
        process.stderr.write(`${K}x${N} B=${B} ${form}: ${med.toFixed(2)} ms\n`);
      }
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
