import * as ort from 'onnxruntime-node';
import { Builder, DataType, Graph, Model, Value, tensorType } from '../../src/ir/index.js';
import { serializeModel } from '../../src/onnx/index.js';
import { buildGateModel, gateFeeds } from './gates.js';
import type { Sample } from './prune-eval.js';
import { normalizePruneSet, type PruneLayer, type PruneSet } from './prune-types.js';

/**
 * Least-squares compensation of kept weights (Kwon et al.'s mask tuning, layer-wise): after pruning, each kept head
 * (FFN neuron) gets a scale m, folded into its rows of the output (down) projection, chosen to minimize
 *   sum_t || sum_u m_u c_u(t) - Y(t) ||^2
 * over the calibration tokens t, where c_u(t) is the contribution of kept unit u in the pruned model (its slice of
 * `context_BSD` or `act_BSF` times its rows of W_O / W_down) and Y(t) the unpruned model's block output (bias
 * excluded). With X the unit activations [T, F] and W the projection [F, D]:
 *   G_uv = sum_{i in u, j in v} (X^T X)_ij (W W^T)_ij,   b_u = sum_{i in u} W_i . (X^T Y)_i.
 * The Gram matrices are computed in onnxruntime; the small system is solved by Cholesky with a tiny ridge.
 */

export interface LayerScales {
  layer: number;
  /** Scale per head (index = original head), for layers that lost some heads. */
  heads?: Float64Array;
  /** Scale per FFN neuron (index = original neuron), for layers that lost some neurons. */
  neurons?: Float64Array;
}

/** A helper model: XtX = X^T X, XtY = X^T Y for X [T, F], Y [T, D]. */
function gramModel(): Uint8Array {
  const g = new Graph('gram');
  const x = g.addInput(new Value('X', tensorType(DataType.FLOAT, ['T', 'F'])));
  const y = g.addInput(new Value('Y', tensorType(DataType.FLOAT, ['T', 'D'])));
  const b = new Builder(g);
  const xt = b.op1('Transpose', [x], { name: 'xt', attrs: { perm: [1, 0] } });
  const xtx = b.op1('MatMul', [xt, x], { name: 'gram_xtx', outputNames: ['XtX'] });
  const xty = b.op1('MatMul', [xt, y], { name: 'gram_xty', outputNames: ['XtY'] });
  xtx.type = tensorType(DataType.FLOAT, ['F', 'F']);
  xty.type = tensorType(DataType.FLOAT, ['F', 'D']);
  g.outputs.push(xtx, xty);
  const m = new Model(g);
  m.irVersion = 8;
  m.opsetImports.set('', 17);
  return serializeModel(m);
}

/** Solve (A + ridge) x = b for symmetric positive semi-definite A (n x n), by Cholesky. */
export function solveSpd(A: Float64Array, b: Float64Array, n: number): Float64Array {
  let tr = 0;
  for (let i = 0; i < n; i++) tr += A[i * n + i]!;
  const ridge = Math.max(1e-12, (1e-6 * tr) / Math.max(1, n));
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * n + j]! + (i === j ? ridge : 0);
      for (let k = 0; k < j; k++) s -= L[i * n + k]! * L[j * n + k]!;
      L[i * n + j] = i === j ? Math.sqrt(Math.max(s, 1e-30)) : s / L[j * n + j]!;
    }
  }
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= L[i * n + k]! * y[k]!;
    y[i] = s / L[i * n + i]!;
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i]!;
    for (let k = i + 1; k < n; k++) s -= L[k * n + i]! * x[k]!;
    x[i] = s / L[i * n + i]!;
  }
  return x;
}

interface Acc {
  F: number;
  D: number;
  xtx: Float64Array;
  xty: Float64Array;
}

/** Scales of the kept units of every pruned (not removed) block of `set`, from calibration samples. */
export async function compensationScales(
  model: Model,
  layers: readonly PruneLayer[],
  set: PruneSet,
  samples: readonly Sample[],
  threads: number,
): Promise<LayerScales[]> {
  const p = normalizePruneSet(set, layers);
  const want = p.layers.filter((l) => (!l.attention && l.heads.length) || (!l.ffn && l.groups.length));
  if (!want.length) return [];
  const gm = buildGateModel(model, layers, p.groupSize, { probeOutputs: true });
  const opts = { graphOptimizationLevel: 'all' as const, intraOpNumThreads: threads };
  const session = await ort.InferenceSession.create(gm.bytes, opts);
  const gram = await ort.InferenceSession.create(gramModel(), opts);
  const empty: PruneSet = { groupSize: p.groupSize, layers: [] };
  const acc = new Map<string, Acc>();
  const chunk = 32;
  try {
    for (let i = 0; i < samples.length; i += chunk) {
      const part = samples.slice(i, i + chunk);
      const lens = part.map((s) => (s.inputs.input_ids ?? Object.values(s.inputs)[0]!).length);
      const S = Math.max(1, ...lens);
      const feeds: Record<string, ort.Tensor> = {};
      for (const name of gm.dataInputs) {
        const buf = new BigInt64Array(part.length * S);
        part.forEach((s, b) => {
          const v = s.inputs[name];
          if (v) buf.set(v.subarray(0, S), b * S);
          else if (name === 'attention_mask') buf.fill(1n, b * S, b * S + lens[b]!);
        });
        feeds[name] = new ort.Tensor('int64', buf, [part.length, S]);
      }
      const fetchP: string[] = [];
      const fetchO: string[] = [];
      for (const w of want) {
        const pr = gm.probes.find((x) => x.layer === w.layer)!;
        if (!w.attention && w.heads.length) {
          fetchP.push(pr.context!);
          fetchO.push(pr.attnBranch!);
        }
        if (!w.ffn && w.groups.length) {
          fetchP.push(pr.act!);
          fetchO.push(pr.ffnBranch!);
        }
      }
      const outP = await session.run({ ...feeds, ...gateFeeds(gm, [p], part.length) }, fetchP);
      const outO = await session.run({ ...feeds, ...gateFeeds(gm, [empty], part.length) }, fetchO);
      // real tokens only: padded rows are zeroed in X and Y
      const T = part.length * S;
      const keep = new Uint8Array(T);
      part.forEach((_, b) => keep.fill(1, b * S, b * S + lens[b]!));
      for (let k = 0; k < fetchP.length; k++) {
        const xt = outP[fetchP[k]!]!;
        const yt = outO[fetchO[k]!]!;
        const F = xt.dims[2]!;
        const D = yt.dims[2]!;
        const X = (xt.data as Float32Array).slice();
        const Y = (yt.data as Float32Array).slice();
        for (let t = 0; t < T; t++)
          if (!keep[t]) {
            X.fill(0, t * F, (t + 1) * F);
            Y.fill(0, t * D, (t + 1) * D);
          }
        const r = await gram.run({
          X: new ort.Tensor('float32', X, [T, F]),
          Y: new ort.Tensor('float32', Y, [T, D]),
        });
        const a = acc.get(fetchP[k]!) ?? { F, D, xtx: new Float64Array(F * F), xty: new Float64Array(F * D) };
        const g1 = r.XtX!.data as Float32Array;
        const g2 = r.XtY!.data as Float32Array;
        for (let q = 0; q < g1.length; q++) a.xtx[q]! += g1[q]!;
        for (let q = 0; q < g2.length; q++) a.xty[q]! += g2[q]!;
        acc.set(fetchP[k]!, a);
      }
    }
    const out: LayerScales[] = [];
    for (const w of want) {
      const l = layers.find((x) => x.index === w.layer)!;
      const pr = gm.probes.find((x) => x.layer === w.layer)!;
      const ls: LayerScales = { layer: w.layer };
      if (!w.attention && w.heads.length && l.attention) {
        const a = l.attention;
        const units = [...Array(a.heads).keys()]
          .filter((h) => !w.heads.includes(h))
          .map((h) => ({ id: h, cols: [...Array(a.headSize).keys()].map((j) => h * a.headSize + j) }));
        const x = await solveUnits(acc.get(pr.context!)!, a.o.weight.constValue!.toFloat32(), units, gram);
        ls.heads = new Float64Array(a.heads).fill(1);
        units.forEach((u, i) => (ls.heads![u.id] = x[i]!));
      }
      if (!w.ffn && w.groups.length && l.ffn) {
        const f = l.ffn;
        const dropped = new Set(
          w.groups.flatMap((g) => [...Array(p.groupSize).keys()].map((j) => g * p.groupSize + j)),
        );
        const units = [...Array(f.size).keys()].filter((i) => !dropped.has(i)).map((i) => ({ id: i, cols: [i] }));
        const x = await solveUnits(acc.get(pr.act!)!, f.down.weight.constValue!.toFloat32(), units, gram);
        ls.neurons = new Float64Array(f.size).fill(1);
        units.forEach((u, i) => (ls.neurons![u.id] = x[i]!));
      }
      out.push(ls);
    }
    return out;
  } finally {
    await session.release();
    await gram.release();
  }
}

async function solveUnits(
  a: Acc,
  W: Float32Array,
  units: { id: number; cols: number[] }[],
  gram: ort.InferenceSession,
): Promise<Float64Array> {
  const { F, D } = a;
  // M = W W^T [F, F], via the gram model on W^T
  const Wt = new Float32Array(D * F);
  for (let i = 0; i < F; i++) for (let d = 0; d < D; d++) Wt[d * F + i] = W[i * D + d]!;
  const r = await gram.run({
    X: new ort.Tensor('float32', Wt, [D, F]),
    Y: new ort.Tensor('float32', new Float32Array(D), [D, 1]),
  });
  const M = r.XtX!.data as Float32Array;
  const n = units.length;
  const G = new Float64Array(n * n);
  const b = new Float64Array(n);
  for (let u = 0; u < n; u++) {
    const cu = units[u]!.cols;
    for (const i of cu) {
      let s = 0;
      for (let d = 0; d < D; d++) s += W[i * D + d]! * a.xty[i * D + d]!;
      b[u]! += s;
    }
    for (let v = 0; v <= u; v++) {
      const cv = units[v]!.cols;
      let s = 0;
      for (const i of cu) for (const j of cv) s += a.xtx[i * F + j]! * M[i * F + j]!;
      G[u * n + v] = s;
      G[v * n + u] = s;
    }
  }
  return solveSpd(G, b, n);
}
