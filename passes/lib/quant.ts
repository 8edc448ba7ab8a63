/**
 * Quantization math and the graph forms that run a quantized MatMul, shared by the `quantize` pass and
 * bench/quant-forms.ts.
 *
 * Dimension letters: K = reduction (input features), N = output features (channels), V = vocabulary rows,
 * D = embedding width, M = flattened activation rows.
 * A MatMul weight is W_KN (`x_MK @ W_KN`); a Gemm weight with transB=1 is W_NK and is read transposed.
 */
import { Builder, DataType, Tensor, type Value } from '../../src/ir/index.js';

export type Int8Form =
  /** Standard ONNX: DynamicQuantizeLinear + MatMulInteger + Cast + Mul (onnxruntime fuses it at level 'all'). */
  | 'matmul-integer'
  /** com.microsoft DynamicQuantizeMatMul: one node, float activation in, float out. */
  | 'dynamic-quantize-matmul'
  /** DynamicQuantizeLinear + com.microsoft MatMulIntegerToFloat. */
  | 'matmul-integer-to-float'
  /** QuantizeLinear/DequantizeLinear around the weight only (weight stored int8), for other runtimes. */
  | 'qdq';

export const INT8_FORMS: readonly Int8Form[] = [
  'matmul-integer',
  'dynamic-quantize-matmul',
  'matmul-integer-to-float',
  'qdq',
];

/**
 * The default int8 form for `target onnxruntime`, chosen by bench/quant-forms.ts on this machine (AVX2, no VNNI):
 * geometric-mean speedup over fp32 2.58x (matmul-integer 2.52x, matmul-integer-to-float 2.51x, qdq 0.73x); see the
 * figures in the bench's header comment.
 */
export const DEFAULT_ORT_FORM: Int8Form = 'dynamic-quantize-matmul';

/** An int8 (or uint8) quantized weight W_KN with per-tensor (length 1) or per-column (length N) scales. */
export interface QuantWeight {
  K: number;
  N: number;
  signed: boolean;
  /** Quantized values, K-major like the float weight: q_KN[k * N + n]. */
  q_KN: Int8Array | Uint8Array;
  scale: Float32Array;
  zeroPoint: Int8Array | Uint8Array;
}

/** Read a rank-2 weight as W_KN (transposing a Gemm transB=1 weight W_NK). */
export function weightKN(t: Tensor, transposed: boolean): { w_KN: Float32Array; K: number; N: number } {
  const f = t.toFloat32();
  const [r, c] = t.dims as [number, number];
  if (!transposed) return { w_KN: f, K: r, N: c };
  const K = c;
  const N = r;
  const w_KN = new Float32Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) w_KN[k * N + n] = f[n * K + k]!;
  return { w_KN, K, N };
}

/**
 * Quantize W_KN to 8 bits. Signed: symmetric, zero point 0, range [-127, 127] (so the int8 kernels never see -128).
 * Unsigned: asymmetric over [min(w, 0), max(w, 0)], range [0, 255].
 */
export function quantizeInt8(
  w_KN: Float32Array,
  K: number,
  N: number,
  perChannel: boolean,
  signed: boolean,
): QuantWeight {
  const C = perChannel ? N : 1;
  const lo = new Float32Array(C).fill(0);
  const hi = new Float32Array(C).fill(0);
  for (let k = 0; k < K; k++)
    for (let n = 0; n < N; n++) {
      const v = w_KN[k * N + n]!;
      const c = perChannel ? n : 0;
      if (v < lo[c]!) lo[c] = v;
      if (v > hi[c]!) hi[c] = v;
    }
  const scale = new Float32Array(C);
  const zeroPoint = signed ? new Int8Array(C) : new Uint8Array(C);
  for (let c = 0; c < C; c++) {
    if (signed) {
      const m = Math.max(Math.abs(lo[c]!), Math.abs(hi[c]!));
      scale[c] = m > 0 ? m / 127 : 1;
      zeroPoint[c] = 0;
    } else {
      const range = hi[c]! - lo[c]!;
      scale[c] = range > 0 ? range / 255 : 1;
      zeroPoint[c] = Math.min(255, Math.max(0, Math.round(-lo[c]! / scale[c]!)));
    }
  }
  const q_KN = signed ? new Int8Array(K * N) : new Uint8Array(K * N);
  const qmin = signed ? -127 : 0;
  const qmax = signed ? 127 : 255;
  for (let k = 0; k < K; k++)
    for (let n = 0; n < N; n++) {
      const c = perChannel ? n : 0;
      const q = Math.round(w_KN[k * N + n]! / scale[c]!) + zeroPoint[c]!;
      q_KN[k * N + n] = Math.min(qmax, Math.max(qmin, q));
    }
  return { K, N, signed, q_KN, scale, zeroPoint };
}

/** The float weight the quantized one stands for (for error reports). */
export function dequantizeInt8(qw: QuantWeight): Float32Array {
  const { K, N } = qw;
  const out = new Float32Array(K * N);
  const pc = qw.scale.length > 1;
  for (let k = 0; k < K; k++)
    for (let n = 0; n < N; n++) {
      const c = pc ? n : 0;
      out[k * N + n] = (qw.q_KN[k * N + n]! - qw.zeroPoint[c]!) * qw.scale[c]!;
    }
  return out;
}

/** Initializers for a quantized weight: q_KN, scale (scalar or [N]) and zero point (same shape). */
export function quantWeightValues(b: Builder, base: string, qw: QuantWeight): QuantWeightValues {
  const dt = qw.signed ? DataType.INT8 : DataType.UINT8;
  const sdims = qw.scale.length > 1 ? [qw.N] : [];
  const q_KN = b.initializer(
    `${base}_quantized`,
    Tensor.fromUint8(
      `${base}_quantized`,
      [qw.K, qw.N],
      new Uint8Array(qw.q_KN.buffer, qw.q_KN.byteOffset, qw.q_KN.byteLength),
      dt,
    ),
  );
  const scale = b.initializer(`${base}_scale`, Tensor.fromFloat32(`${base}_scale`, sdims, qw.scale));
  const zp = qw.zeroPoint;
  const zeroPoint = b.initializer(
    `${base}_zero_point`,
    Tensor.fromUint8(`${base}_zero_point`, sdims, new Uint8Array(zp.buffer, zp.byteOffset, zp.byteLength), dt),
  );
  return { q_KN, scale, zeroPoint, perChannel: qw.scale.length > 1 };
}

export interface QuantWeightValues {
  q_KN: Value;
  scale: Value;
  zeroPoint: Value;
  /** Scales per output column (a DequantizeLinear then needs axis 1). */
  perChannel: boolean;
}

/**
 * Emit `x @ W (+ bias)` with an int8 weight in one of the forms; returns the float output value.
 * `bias_N` is folded into the node when the form takes a bias (DynamicQuantizeMatMul, MatMulIntegerToFloat),
 * otherwise added with an Add. Nodes are named `${base}/...`.
 */
export function emitInt8MatMul(
  b: Builder,
  form: Int8Form,
  x: Value,
  w: QuantWeightValues,
  base: string,
  bias_N: Value | null = null,
  outputName?: string,
): Value {
  const name = (s: string) => `${base}/${s}`;
  const finalOpts = (s: string) => ({ name: name(s), ...(outputName ? { outputNames: [outputName] } : {}) });
  const withBias = (y: Value): Value => (bias_N ? b.op1('Add', [y, bias_N], finalOpts('Add')) : y);
  switch (form) {
    case 'dynamic-quantize-matmul':
      return b.op1('DynamicQuantizeMatMul', [x, w.q_KN, w.scale, w.zeroPoint, bias_N], {
        domain: 'com.microsoft',
        ...finalOpts('DynamicQuantizeMatMul'),
      });
    case 'matmul-integer-to-float': {
      const [xq, xs, xz] = b.op('DynamicQuantizeLinear', [x], { name: name('DynamicQuantizeLinear'), outputs: 3 });
      return b.op1('MatMulIntegerToFloat', [xq!, w.q_KN, xs!, w.scale, xz!, w.zeroPoint, bias_N], {
        domain: 'com.microsoft',
        ...finalOpts('MatMulIntegerToFloat'),
      });
    }
    case 'matmul-integer': {
      const [xq, xs, xz] = b.op('DynamicQuantizeLinear', [x], { name: name('DynamicQuantizeLinear'), outputs: 3 });
      const acc = b.op1('MatMulInteger', [xq!, w.q_KN, xz!, w.zeroPoint], { name: name('MatMulInteger') });
      const accf = b.op1('Cast', [acc], { name: name('Cast'), attrs: { to: DataType.FLOAT } });
      const s = b.op1('Mul', [xs!, w.scale], { name: name('scale') });
      const y = b.op1('Mul', [accf, s], bias_N ? { name: name('Mul') } : finalOpts('Mul'));
      return withBias(y);
    }
    case 'qdq': {
      const attrs = w.perChannel ? { axis: 1 } : undefined;
      const wf = b.op1('DequantizeLinear', [w.q_KN, w.scale, w.zeroPoint], {
        name: name('DequantizeLinear'),
        ...(attrs ? { attrs } : {}),
      });
      const y = b.op1('MatMul', [x, wf], bias_N ? { name: name('MatMul') } : finalOpts('MatMul'));
      return withBias(y);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Weight-only 4-bit: com.microsoft MatMulNBits

export interface NBitsWeight {
  K: number;
  N: number;
  blockSize: number;
  /** packed_NBb[n][block][byte]: 4-bit codes low nibble first along K. */
  packed: Uint8Array;
  /** scales[n * blocks + block] */
  scales: Float32Array;
  /** Packed uint8 zero points [N * ceil(blocks / 2)], or null when symmetric (the kernel's default zero point is 8). */
  zeroPoints: Uint8Array | null;
  blocks: number;
}

/** Block-quantize W_KN to 4 bits along K for MatMulNBits (bits = 4). */
export function quantizeNBits(
  w_KN: Float32Array,
  K: number,
  N: number,
  blockSize: number,
  symmetric: boolean,
): NBitsWeight {
  const blocks = Math.ceil(K / blockSize);
  const blob = blockSize / 2;
  const packed = new Uint8Array(N * blocks * blob);
  const scales = new Float32Array(N * blocks);
  const zpBytes = Math.ceil(blocks / 2);
  const zeroPoints = symmetric ? null : new Uint8Array(N * zpBytes);
  for (let n = 0; n < N; n++)
    for (let bl = 0; bl < blocks; bl++) {
      const k0 = bl * blockSize;
      const k1 = Math.min(K, k0 + blockSize);
      let lo = 0;
      let hi = 0;
      let amax = 0;
      for (let k = k0; k < k1; k++) {
        const v = w_KN[k * N + n]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
        if (Math.abs(v) > amax) amax = Math.abs(v);
      }
      let scale: number;
      let zp: number;
      if (symmetric) {
        // codes 0..15 around 8: the range [-8, 7] * scale; use amax / 8 with the negative side exact
        scale = amax > 0 ? amax / 7 : 1;
        zp = 8;
      } else {
        scale = hi - lo > 0 ? (hi - lo) / 15 : 1;
        zp = Math.min(15, Math.max(0, Math.round(-lo / scale)));
      }
      scales[n * blocks + bl] = scale;
      if (zeroPoints) {
        const i = n * zpBytes + (bl >> 1);
        zeroPoints[i] = zeroPoints[i]! | (bl & 1 ? zp << 4 : zp);
      }
      for (let k = k0; k < k1; k++) {
        const q = Math.min(15, Math.max(0, Math.round(w_KN[k * N + n]! / scale) + zp));
        const j = k - k0;
        const i = (n * blocks + bl) * blob + (j >> 1);
        packed[i] = packed[i]! | (j & 1 ? q << 4 : q);
      }
      // padding codes past K (when K is not a multiple of the block) stay 0 and multiply zero activations
    }
  return { K, N, blockSize, packed, scales, zeroPoints, blocks };
}

export function dequantizeNBits(w: NBitsWeight): Float32Array {
  const { K, N, blockSize, blocks } = w;
  const out = new Float32Array(K * N);
  const blob = blockSize / 2;
  const zpBytes = Math.ceil(blocks / 2);
  for (let n = 0; n < N; n++)
    for (let bl = 0; bl < blocks; bl++) {
      const s = w.scales[n * blocks + bl]!;
      const zb = w.zeroPoints ? w.zeroPoints[n * zpBytes + (bl >> 1)]! : 0;
      const zp = w.zeroPoints ? (bl & 1 ? zb >> 4 : zb & 15) : 8;
      for (let k = bl * blockSize; k < Math.min(K, (bl + 1) * blockSize); k++) {
        const j = k - bl * blockSize;
        const byte = w.packed[(n * blocks + bl) * blob + (j >> 1)]!;
        const q = j & 1 ? byte >> 4 : byte & 15;
        out[k * N + n] = (q - zp) * s;
      }
    }
  return out;
}

export function emitMatMulNBits(
  b: Builder,
  x: Value,
  w: NBitsWeight,
  base: string,
  bias_N: Value | null,
  outputName?: string,
): Value {
  const blob = w.blockSize / 2;
  const packed = b.initializer(`${base}_q4`, Tensor.fromUint8(`${base}_q4`, [w.N, w.blocks, blob], w.packed));
  const scales = b.initializer(`${base}_scales`, Tensor.fromFloat32(`${base}_scales`, [w.N * w.blocks], w.scales));
  const inputs: (Value | null)[] = [x, packed, scales];
  if (w.zeroPoints)
    inputs.push(
      b.initializer(
        `${base}_zero_points`,
        Tensor.fromUint8(`${base}_zero_points`, [w.zeroPoints.length], w.zeroPoints),
      ),
    );
  else inputs.push(null);
  if (bias_N) inputs.push(null, bias_N); // g_idx unused
  while (inputs.length > 3 && inputs[inputs.length - 1] === null) inputs.pop();
  return b.op1('MatMulNBits', inputs, {
    domain: 'com.microsoft',
    name: `${base}/MatMulNBits`,
    attrs: { K: w.K, N: w.N, bits: 4, block_size: w.blockSize, accuracy_level: 0 },
    ...(outputName ? { outputNames: [outputName] } : {}),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Embedding tables: int8 rows with a per-row scale

export interface RowQuant {
  V: number;
  D: number;
  q_VD: Int8Array;
  /** scale_V1[v]: one scale per row, shaped [V, 1] so that Gather(scale_V1, ids) broadcasts against the rows. */
  scale_V1: Float32Array;
}

export function quantizeRows(t_VD: Float32Array, V: number, D: number): RowQuant {
  const q_VD = new Int8Array(V * D);
  const scale_V1 = new Float32Array(V);
  for (let v = 0; v < V; v++) {
    let m = 0;
    for (let d = 0; d < D; d++) m = Math.max(m, Math.abs(t_VD[v * D + d]!));
    const s = m > 0 ? m / 127 : 1;
    scale_V1[v] = s;
    for (let d = 0; d < D; d++) q_VD[v * D + d] = Math.max(-127, Math.min(127, Math.round(t_VD[v * D + d]! / s)));
  }
  return { V, D, q_VD, scale_V1 };
}

// ---------------------------------------------------------------------------------------------------------------
// Embedding tables: int4 codes in blocks along each row (D), one scale per block

/**
 * A table T_VD quantized to 4 bits in blocks of `blockSize` along D (B = D / blockSize blocks per row).
 * Codes are stored two per byte, low nibble first (the MatMulNBits / GatherBlockQuantized uint8 convention):
 * packed_VH[v * H + h] holds d = 2h (low) and d = 2h + 1 (high), H = D / 2.
 * Symmetric: code - 8 times the scale (scale = max |t| / 7 per block). Asymmetric: code - zero point, scale =
 * (max - min) / 15, zero points 0..15 per block.
 */
export interface Rows4 {
  V: number;
  D: number;
  blockSize: number;
  blocks: number;
  packed_VH: Uint8Array;
  scale_VB: Float32Array;
  /** zeroPoint_VB[v * B + b] (0..15), or null when symmetric (8). */
  zeroPoint_VB: Uint8Array | null;
}

/** Quantize T_VD row blocks to int4; D must be even (two codes a byte). */
export function quantizeRows4(t_VD: Float32Array, V: number, D: number, blockSize: number, symmetric: boolean): Rows4 {
  const blocks = Math.ceil(D / blockSize);
  const H = D / 2;
  const packed_VH = new Uint8Array(V * H);
  const scale_VB = new Float32Array(V * blocks);
  const zeroPoint_VB = symmetric ? null : new Uint8Array(V * blocks);
  for (let v = 0; v < V; v++)
    for (let b = 0; b < blocks; b++) {
      const d0 = b * blockSize;
      const d1 = Math.min(D, d0 + blockSize);
      let lo = 0;
      let hi = 0;
      for (let d = d0; d < d1; d++) {
        const x = t_VD[v * D + d]!;
        if (x < lo) lo = x;
        if (x > hi) hi = x;
      }
      let scale: number;
      let zp: number;
      if (symmetric) {
        const amax = Math.max(-lo, hi);
        scale = amax > 0 ? amax / 7 : 1;
        zp = 8;
      } else {
        scale = hi - lo > 0 ? (hi - lo) / 15 : 1;
        zp = Math.min(15, Math.max(0, Math.round(-lo / scale)));
      }
      scale = Math.fround(scale);
      scale_VB[v * blocks + b] = scale;
      if (zeroPoint_VB) zeroPoint_VB[v * blocks + b] = zp;
      for (let d = d0; d < d1; d++) {
        const q = Math.min(15, Math.max(0, Math.round(t_VD[v * D + d]! / scale) + zp));
        const i = v * H + (d >> 1);
        packed_VH[i] = packed_VH[i]! | (d & 1 ? q << 4 : q);
      }
    }
  return { V, D, blockSize, blocks, packed_VH, scale_VB, zeroPoint_VB };
}

/** The float table the int4 one stands for (for error reports and tests). */
export function dequantizeRows4(q: Rows4): Float32Array {
  const { V, D, blockSize, blocks } = q;
  const out = new Float32Array(V * D);
  for (let v = 0; v < V; v++)
    for (let d = 0; d < D; d++) {
      const byte = q.packed_VH[v * (D / 2) + (d >> 1)]!;
      const code = d & 1 ? byte >> 4 : byte & 15;
      const b = Math.floor(d / blockSize);
      const zp = q.zeroPoint_VB ? q.zeroPoint_VB[v * blocks + b]! : 8;
      out[v * D + d] = (code - zp) * q.scale_VB[v * blocks + b]!;
    }
  return out;
}

/**
 * The packed codes of q in the halves layout: byte h of a row holds column h in its low nibble and column h + D/2
 * in its high nibble (q.packed_VH holds columns 2h and 2h + 1).
 */
export function halvesLayout(q: Rows4): Uint8Array {
  const { V, D } = q;
  const H = D / 2;
  const out = new Uint8Array(V * H);
  const code = (v: number, d: number) => (q.packed_VH[v * H + (d >> 1)]! >> ((d & 1) * 4)) & 15;
  for (let v = 0; v < V; v++) for (let h = 0; h < H; h++) out[v * H + h] = code(v, h) | (code(v, h + H) << 4);
  return out;
}

/** The graph forms of an int4 table lookup. */
export type Rows4Form =
  /** com.microsoft GatherBlockQuantized (bits 4, uint8-packed data, gather_axis 0, quantize_axis 1): one node. */
  | 'gather-block-quantized'
  /** Standard ONNX: Gather the packed bytes (stored in the halves layout: see halvesLayout) and the block scales,
   * unpack the nibbles with float arithmetic (Cast, Mul, Floor, Sub, Concat), subtract the zero point, scale per
   * block, Reshape to [...ids, D]. The fastest form in onnxruntime too. */
  | 'nibbles';

/**
 * Emit `table[ids]` from an int4 table in one of the forms; returns the float [...ids, D] value. Initializers are
 * named `${base}_int4`, `${base}_scale` (and `${base}_zero_point`), nodes `${nodeBase}/...`.
 */
export function emitRows4Gather(
  b: Builder,
  form: Rows4Form,
  ids: Value,
  q: Rows4,
  base: string,
  nodeBase: string,
): { y: Value; weights: Value[] } {
  const { V, D, blocks, blockSize } = q;
  const H = D / 2;
  const name = (s: string) => `${nodeBase}/${s}`;
  if (form === 'gather-block-quantized') {
    const data = b.initializer(`${base}_int4`, Tensor.fromUint8(`${base}_int4`, [V, H], q.packed_VH));
    const scale = b.initializer(`${base}_scale`, Tensor.fromFloat32(`${base}_scale`, [V, blocks], q.scale_VB));
    const weights = [data, scale];
    let zp: Value | null = null;
    if (q.zeroPoint_VB) {
      // two 4-bit zero points a byte along the blocks, low nibble first
      const zb = Math.ceil(blocks / 2);
      const packed = new Uint8Array(V * zb);
      for (let v = 0; v < V; v++)
        for (let k = 0; k < blocks; k++) {
          const z = q.zeroPoint_VB[v * blocks + k]!;
          packed[v * zb + (k >> 1)] = packed[v * zb + (k >> 1)]! | (k & 1 ? z << 4 : z);
        }
      zp = b.initializer(`${base}_zero_point`, Tensor.fromUint8(`${base}_zero_point`, [V, zb], packed));
      weights.push(zp);
    }
    const y = b.op1('GatherBlockQuantized', zp ? [data, ids, scale, zp] : [data, ids, scale], {
      domain: 'com.microsoft',
      name: name('GatherBlockQuantized'),
      attrs: { bits: 4, block_size: blockSize, gather_axis: 0, quantize_axis: 1 },
    });
    return { y, weights };
  }
  if (D % blockSize !== 0) throw new Error(`nibbles form: width ${D} is not a multiple of block ${blockSize}`);
  // Bytes hold columns h (low nibble) and h + D/2 (high nibble), so the two halves unpack with float arithmetic
  // on the gathered bytes (hi = floor(byte / 16), lo = byte - 16 hi) and one Concat of contiguous halves. Measured
  // on sst2-bert-mini (batch 1, seq 128, 1 thread, onnxruntime profiler, its 3 tables): this form takes about
  // 0.35 ms a run, GatherBlockQuantized 0.65 ms, the former 256 x 2 lookup-table unpack 0.5 ms (a Gather of 2 floats
  // a byte); BitShift is scalar code in onnxruntime.
  const data = b.initializer(`${base}_int4`, Tensor.fromUint8(`${base}_int4`, [V, H], halvesLayout(q)));
  // scales (and zero points) shaped [V, B, 1] so that the gathered rows broadcast over a block without Unsqueeze
  const scale = b.initializer(`${base}_scale`, Tensor.fromFloat32(`${base}_scale`, [V, blocks, 1], q.scale_VB));
  const weights = [data, scale];
  const ids_T = b.op1('Reshape', [ids, b.constInt64(`${base}_flat_shape`, [-1])], { name: name('flatten_ids') });
  const p_TH = b.op1('Gather', [data, ids_T], { name: name('Gather_int4') });
  const f_TH = b.op1('Cast', [p_TH], { name: name('Cast'), attrs: { to: DataType.FLOAT } });
  const hi_TH = b.op1(
    'Floor',
    [b.op1('Mul', [f_TH, b.scalarFloat(`${base}_sixteenth`, 1 / 16)], { name: name('div16') })],
    {
      name: name('high'),
    },
  );
  const lo_TH = b.op1(
    'Sub',
    [f_TH, b.op1('Mul', [hi_TH, b.scalarFloat(`${base}_sixteen`, 16)], { name: name('mul16') })],
    {
      name: name('low'),
    },
  );
  const q_TD = b.op1('Concat', [lo_TH, hi_TH], { name: name('unpack'), attrs: { axis: 1 } });
  let c_TBK = b.op1('Reshape', [q_TD, b.constInt64(`${base}_block_shape`, [-1, blocks, blockSize])], {
    name: name('blocks'),
  });
  if (q.zeroPoint_VB) {
    const zt = b.initializer(
      `${base}_zero_point`,
      Tensor.fromUint8(`${base}_zero_point`, [V, blocks, 1], q.zeroPoint_VB),
    );
    weights.push(zt);
    const z_TB1 = b.op1('Gather', [zt, ids_T], { name: name('Gather_zero_point') });
    const zf_TB1 = b.op1('Cast', [z_TB1], { name: name('Cast_zero_point'), attrs: { to: DataType.FLOAT } });
    c_TBK = b.op1('Sub', [c_TBK, zf_TB1], { name: name('zero_point') });
  } else c_TBK = b.op1('Sub', [c_TBK, b.scalarFloat(`${base}_eight`, 8)], { name: name('zero_point') });
  const s_TB1 = b.op1('Gather', [scale, ids_T], { name: name('Gather_scale') });
  const y_TBK = b.op1('Mul', [c_TBK, s_TB1], { name: name('dequantize') });
  const ids_shape = b.op1('Shape', [ids], { name: name('Shape') });
  const out_shape = b.op1('Concat', [ids_shape, b.constInt64(`${base}_width`, [D])], {
    name: name('out_shape'),
    attrs: { axis: 0 },
  });
  const y = b.op1('Reshape', [y_TBK, out_shape], { name: name('Reshape') });
  return { y, weights };
}

// ---------------------------------------------------------------------------------------------------------------
// Error statistics

/** ||a - b|| / ||a|| (0 when a is all zeros and b equals it). */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += a[i]! * a[i]!;
  }
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
}

/** x_MK @ w_KN. */
export function matmul(x_MK: Float32Array, w_KN: Float32Array, M: number, K: number, N: number): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++)
    for (let k = 0; k < K; k++) {
      const a = x_MK[m * K + k]!;
      if (a === 0) continue;
      const row = k * N;
      const out = m * N;
      for (let n = 0; n < N; n++) y[out + n] += a * w_KN[row + n]!;
    }
  return y;
}

/** What DynamicQuantizeLinear does to an activation: uint8 over [min(x,0), max(x,0)], then back to float. */
export function fakeQuantDynamicU8(x: Float32Array): Float32Array {
  let lo = 0;
  let hi = 0;
  for (const v of x) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const s = hi - lo > 0 ? (hi - lo) / 255 : 1;
  const zp = Math.min(255, Math.max(0, Math.round(-lo / s)));
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (Math.min(255, Math.max(0, Math.round(x[i]! / s) + zp)) - zp) * s;
  return out;
}
