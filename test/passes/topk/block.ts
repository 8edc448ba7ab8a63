/**
 * A single eager self-attention block as an ONNX model (the structure of a Hugging Face export: Q/K/V Linear, head
 * reshape and transpose, QK^T scaled, additive mask from an int64 attention_mask, Softmax, probs x V, merge heads),
 * plus a plain TypeScript reference of the same computation with optional top-k. Used by the top-k and attention
 * fusion tests.
 *
 * Dimension letters: B batch, S sequence, D hidden, H heads, d head size.
 */
import { Builder, DataType, Graph, Model, Value } from '../../../src/ir/index.js';
import { mulberry32 } from '../../../src/util/prng.js';

export interface BlockWeights {
  D: number;
  H: number;
  d: number;
  /** [D, H*d] each, row-major (x @ W). */
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  bq: Float32Array;
  bk: Float32Array;
  bv: Float32Array;
  scale: number;
}

function rand(seed: number): () => number {
  const r = mulberry32(seed);
  return () => r() - 0.5;
}

export function blockWeights(D: number, H: number, d: number, seed = 7, scale = 1 / Math.sqrt(d)): BlockWeights {
  const r = rand(seed);
  const mat = (n: number, s: number) => Float32Array.from({ length: n }, () => r() * s);
  return {
    D,
    H,
    d,
    wq: mat(D * H * d, 1.2),
    wk: mat(D * H * d, 1.2),
    wv: mat(D * H * d, 1),
    bq: mat(H * d, 0.2),
    bk: mat(H * d, 0.2),
    bv: mat(H * d, 0.2),
    scale,
  };
}

export interface BlockOptions {
  /** 'hf': (1 - mask) * -10000 added; 'where': Where(mask, 0, -FLT_MAX) as current HF; 'none': no mask. */
  mask?: 'hf' | 'where' | 'none';
  /** Use Div by sqrt(d) instead of Mul by scale. */
  divScale?: boolean;
  /** Put the reshape head count explicitly (H) instead of -1. */
  explicitHeads?: boolean;
}

/** The block as a model: inputs x [B, S, D] float, attention_mask [B, S] int64; output y [B, S, H*d]. */
export function blockModel(w: BlockWeights, opts: BlockOptions = {}): Model {
  const g = new Graph('block');
  const m = new Model(g);
  m.irVersion = 8;
  m.opsetImports.set('', 17);
  const x_BSD = g.addInput(new Value('x', { kind: 'tensor', elemType: DataType.FLOAT, shape: ['B', 'S', w.D] }));
  const mask_BS = g.addInput(
    new Value('attention_mask', { kind: 'tensor', elemType: DataType.INT64, shape: ['B', 'S'] }),
  );
  const b = new Builder(g);
  const HD = w.H * w.d;
  const lin = (name: string, W: Float32Array, bias: Float32Array) => {
    const mm = b.op1('MatMul', [x_BSD, b.constFloat(`${name}.weight`, W, [w.D, HD])], { name: `/${name}/MatMul` });
    return b.op1('Add', [b.constFloat(`${name}.bias`, bias), mm], { name: `/${name}/Add` });
  };
  const heads = b.constInt64('head_shape', [0, 0, opts.explicitHeads ? w.H : -1, w.d]);
  const q_BSHd = b.op1('Reshape', [lin('query', w.wq, w.bq), heads], { name: '/Reshape' });
  const q_BHSd = b.op1('Transpose', [q_BSHd], { name: '/Transpose', attrs: { perm: [0, 2, 1, 3] } });
  const k_BSHd = b.op1('Reshape', [lin('key', w.wk, w.bk), heads], { name: '/Reshape_1' });
  const v_BSHd = b.op1('Reshape', [lin('value', w.wv, w.bv), heads], { name: '/Reshape_2' });
  const v_BHSd = b.op1('Transpose', [v_BSHd], { name: '/Transpose_1', attrs: { perm: [0, 2, 1, 3] } });
  const kT_BHdS = b.op1('Transpose', [k_BSHd], { name: '/Transpose_2', attrs: { perm: [0, 2, 3, 1] } });
  const qk_BHSS = b.op1('MatMul', [q_BHSd, kT_BHdS], { name: '/MatMul' });
  const scaled_BHSS = opts.divScale
    ? b.op1('Div', [qk_BHSS, b.scalarFloat('sqrt_d', 1 / w.scale)], { name: '/Div' })
    : b.op1('Mul', [qk_BHSS, b.scalarFloat('scale', w.scale)], { name: '/Mul' });
  let scores_BHSS = scaled_BHSS;
  if (opts.mask !== 'none') {
    const m_B11S = b.op1('Unsqueeze', [mask_BS, b.constInt64('mask_axes', [1, 2])], { name: '/mask/Unsqueeze' });
    let add_B11S: Value;
    if (opts.mask === 'where') {
      const keep = b.op1('Cast', [m_B11S], { name: '/mask/Cast', attrs: { to: DataType.BOOL } });
      add_B11S = b.op1('Where', [keep, b.scalarFloat('zero', 0), b.scalarFloat('min', -3.4028234663852886e38)], {
        name: '/mask/Where',
      });
    } else {
      const f = b.op1('Cast', [m_B11S], { name: '/mask/Cast', attrs: { to: DataType.FLOAT } });
      const inv = b.op1('Sub', [b.scalarFloat('one', 1), f], { name: '/mask/Sub' });
      add_B11S = b.op1('Mul', [inv, b.scalarFloat('neg', -10000)], { name: '/mask/Mul' });
    }
    scores_BHSS = b.op1('Add', [scaled_BHSS, add_B11S], { name: '/Add' });
  }
  const probs_BHSS = b.op1('Softmax', [scores_BHSS], { name: '/Softmax', attrs: { axis: -1 } });
  const ctx_BHSd = b.op1('MatMul', [probs_BHSS, v_BHSd], { name: '/MatMul_1' });
  const ctx_BSHd = b.op1('Transpose', [ctx_BHSd], { name: '/Transpose_3', attrs: { perm: [0, 2, 1, 3] } });
  const y = b.op1('Reshape', [ctx_BSHd, b.constInt64('merge_shape', [0, 0, -1])], {
    name: '/Reshape_3',
    outputNames: ['y'],
  });
  y.type = { kind: 'tensor', elemType: DataType.FLOAT, shape: ['B', 'S', HD] };
  g.outputs.push(y);
  return m;
}

/**
 * The reference: y[b, s] = sum_t p[b, h, s, t] v[b, h, t] with p the softmax of masked scaled scores, of which each
 * row keeps its k largest entries (all when k is undefined), optionally renormalized. Float64 throughout.
 */
export function referenceAttention(
  w: BlockWeights,
  x_BSD: Float32Array,
  mask_BS: number[],
  B: number,
  S: number,
  k?: number,
  renormalize = false,
  maskValue = -10000,
): Float64Array {
  const { D, H, d } = w;
  const HD = H * d;
  const proj = (W: Float32Array, bias: Float32Array) => {
    const out = new Float64Array(B * S * HD);
    for (let r = 0; r < B * S; r++)
      for (let j = 0; j < HD; j++) {
        let acc = bias[j]!;
        for (let i = 0; i < D; i++) acc += x_BSD[r * D + i]! * W[i * HD + j]!;
        out[r * HD + j] = acc;
      }
    return out;
  };
  const q = proj(w.wq, w.bq);
  const kk = proj(w.wk, w.bk);
  const v = proj(w.wv, w.bv);
  const y = new Float64Array(B * S * HD);
  for (let bb = 0; bb < B; bb++)
    for (let h = 0; h < H; h++)
      for (let s = 0; s < S; s++) {
        const scores = new Float64Array(S);
        for (let t = 0; t < S; t++) {
          let dot = 0;
          for (let j = 0; j < d; j++) dot += q[(bb * S + s) * HD + h * d + j]! * kk[(bb * S + t) * HD + h * d + j]!;
          scores[t] = dot * w.scale + (mask_BS[bb * S + t] ? 0 : maskValue);
        }
        const max = Math.max(...scores);
        let sum = 0;
        const p = scores.map((z) => {
          const e = Math.exp(z - max);
          sum += e;
          return e;
        });
        for (let t = 0; t < S; t++) p[t] = p[t]! / sum;
        if (k !== undefined && k < S) {
          const order = [...p.keys()].sort((a, c) => p[c]! - p[a]! || a - c);
          const keep = new Set(order.slice(0, k));
          for (let t = 0; t < S; t++) if (!keep.has(t)) p[t] = 0;
        }
        if (renormalize) {
          const tot = p.reduce((a, c) => a + c, 0);
          for (let t = 0; t < S; t++) p[t] = p[t]! / tot;
        }
        for (let j = 0; j < d; j++) {
          let acc = 0;
          for (let t = 0; t < S; t++) acc += p[t]! * v[(bb * S + t) * HD + h * d + j]!;
          y[(bb * S + s) * HD + h * d + j] = acc;
        }
      }
  return y;
}

export function randomInput(B: number, S: number, D: number, seed = 3): Float32Array {
  const r = rand(seed);
  return Float32Array.from({ length: B * S * D }, () => r() * 2);
}
