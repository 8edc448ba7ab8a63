import { Builder, DataType, Node, Tensor, type Graph, type Model, type Value } from '../../src/ir/index.js';
import type { LayerScales } from './prune-compensate.js';
import { shapeTargetInts } from './consts.js';
import {
  normalizePruneSet,
  removedParams,
  type Linear,
  type PruneAttention,
  type PruneFfn,
  type PruneLayer,
  type PruneSet,
} from './prune-types.js';

/**
 * Physical removal (not masking) of pruned heads, FFN neurons and whole blocks. Weights are sliced lazily
 * (Tensor.lazy: computed when written or run). Dynamic batch and sequence axes are untouched.
 *
 * Dimension letters: D hidden, H heads, d head size, F FFN size; `W_DHd` is a [D, H*d] projection weight.
 */

export interface PruneStats {
  headsRemoved: number;
  neuronsRemoved: number;
  attentionBlocksRemoved: number;
  ffnBlocksRemoved: number;
  paramsRemoved: number;
  nodesRemoved: number;
}

function elemBytes(t: Tensor): number {
  const n = t.numElements;
  const b = t.byteLength;
  if (n === 0 || b % n !== 0) throw new Error(`tensor '${t.name}': sub-byte element types cannot be sliced`);
  return b / n;
}

/** Keep columns `keep` of a [R, C] tensor. */
export function sliceColumns(t: Tensor, keep: readonly number[], name: string): Tensor {
  const [R, C] = t.dims as [number, number];
  const k = [...keep];
  return Tensor.lazy(name, t.dataType, [R, k.length], () => {
    const eb = elemBytes(t);
    const src = t.bytes();
    const out = new Uint8Array(R * k.length * eb);
    for (let r = 0; r < R; r++)
      for (let j = 0; j < k.length; j++) {
        const s = (r * C + k[j]!) * eb;
        out.set(src.subarray(s, s + eb), (r * k.length + j) * eb);
      }
    return out;
  });
}

/** Keep rows `keep` of a [R, C] tensor (or elements of a vector). */
export function sliceRows(t: Tensor, keep: readonly number[], name: string): Tensor {
  const dims = t.dims;
  const C = dims.length > 1 ? dims.slice(1).reduce((a, b) => a * b, 1) : 1;
  const k = [...keep];
  return Tensor.lazy(name, t.dataType, [k.length, ...dims.slice(1)], () => {
    const eb = elemBytes(t);
    const src = t.bytes();
    const row = C * eb;
    const out = new Uint8Array(k.length * row);
    k.forEach((r, j) => out.set(src.subarray(r * row, (r + 1) * row), j * row));
    return out;
  });
}

/** Keep rows `keep` of a float32 [R, C] tensor, multiplying kept row j by `scale[j]`. */
export function sliceRowsScaled(t: Tensor, keep: readonly number[], scale: readonly number[], name: string): Tensor {
  const [, C] = t.dims as [number, number];
  const k = [...keep];
  const sc = [...scale];
  return Tensor.lazy(name, t.dataType, [k.length, C], () => {
    const src = t.toFloat32();
    const out = new Float32Array(k.length * C);
    k.forEach((r, j) => {
      for (let c = 0; c < C; c++) out[j * C + c] = src[r * C + c]! * sc[j]!;
    });
    return new Uint8Array(out.buffer);
  });
}

/** Replace input `index` of `node` with a new initializer holding `t` (the old value stays for other users). */
function replaceConst(g: Graph, node: Node, index: number, t: Tensor): Value {
  const v = g.initializer(t.name, t);
  node.replaceInput(index, v);
  return v;
}

function sliceLinearOut(g: Graph, l: Linear, keep: number[], tag: string): void {
  const w = l.weight.constValue!;
  replaceConst(g, l.matmul, 1, sliceColumns(w, keep, `${l.weight.name}_${tag}`));
  if (l.biasAdd && l.bias) {
    const i = l.biasAdd.input(0) === l.bias ? 0 : 1;
    replaceConst(g, l.biasAdd, i, sliceRows(l.bias.constValue!, keep, `${l.bias.name}_${tag}`));
  }
}

function sliceLinearIn(g: Graph, l: Linear, keep: number[], tag: string, scale?: number[]): void {
  const w = l.weight.constValue!;
  const name = `${l.weight.name}_${tag}`;
  if (scale && w.dataType !== DataType.FLOAT)
    throw new Error(`compensation needs a float32 weight ('${l.weight.name}')`);
  replaceConst(g, l.matmul, 1, scale ? sliceRowsScaled(w, keep, scale, name) : sliceRows(w, keep, name));
}

/**
 * Fix a Reshape whose shape holds `from` at `pos` (the head count, or H*d when merging heads): a new constant
 * for this Reshape only (a shared shape constant is left to its other users).
 */
function fixReshape(g: Graph, r: Node, pos: number, from: number, to: number): boolean {
  const shape = r.input(1);
  const vals = shapeTargetInts(shape);
  if (!shape || !vals || vals[pos] !== from) return false;
  const p = shape.producer();
  if (p && p.opType === 'Concat') {
    // rebuild the Concat with the piece at `pos` replaced
    let at = 0;
    const inputs = [...p.inputs];
    for (let i = 0; i < inputs.length; i++) {
      const c = shapeTargetInts(inputs[i]!);
      const len = c ? c.length : 1;
      if (pos >= at && pos < at + len) {
        if (!c) return false;
        const nv = [...c] as number[];
        nv[pos - at] = to;
        inputs[i] = g.initializer(`${r.name || 'reshape'}_shape_part`, Tensor.fromInt64('shape', [nv.length], nv));
        break;
      }
      at += len;
    }
    const b = new Builder(g, r, 'prune');
    const cat = b.op1('Concat', inputs, { name: `${p.name || 'Concat'}_pruned`, attrs: { axis: 0 } });
    r.replaceInput(1, cat);
    return true;
  }
  const nv = vals.map((x) => x ?? 0);
  nv[pos] = to;
  replaceConst(g, r, 1, Tensor.fromInt64(`${r.name || 'reshape'}_shape`, [nv.length], nv));
  return true;
}

function pruneHeads(g: Graph, a: PruneAttention, heads: readonly number[], tag: string, scale?: Float64Array): void {
  const H = a.heads;
  const d = a.headSize;
  const kept = [...Array(H).keys()].filter((h) => !heads.includes(h));
  const cols = kept.flatMap((h) => [...Array(d).keys()].map((j) => h * d + j));
  if (a.fused) {
    // packed QKV [D, 3*H*d]: keep the kept heads' columns of each of the three segments
    const HD = H * d;
    const packed = [0, 1, 2].flatMap((seg) => cols.map((c) => seg * HD + c));
    const n = a.fused;
    replaceConst(g, n, 1, sliceColumns(a.q.weight.constValue!, packed, `${a.q.weight.name}_${tag}`));
    if (a.q.bias) replaceConst(g, n, 2, sliceRows(a.q.bias.constValue!, packed, `${a.q.bias.name}_${tag}`));
    n.setAttr('num_heads', kept.length);
    const qkv = n.getInts('qkv_hidden_sizes');
    if (qkv)
      n.setAttr(
        'qkv_hidden_sizes',
        qkv.map(() => kept.length * d),
      );
  } else {
    sliceLinearOut(g, a.q, cols, tag);
    sliceLinearOut(g, a.k, cols, tag);
    sliceLinearOut(g, a.v, cols, tag);
  }
  sliceLinearIn(g, a.o, cols, tag, scale && cols.map((c) => scale[Math.floor(c / d)]!));
  for (const r of a.reshapes) {
    const s = shapeTargetInts(r.input(1));
    if (!s) continue;
    if (s.length === 4) fixReshape(g, r, 2, H, kept.length);
    else if (s.length === 3) fixReshape(g, r, 2, H * d, kept.length * d);
  }
}

function pruneNeurons(g: Graph, f: PruneFfn, neurons: readonly number[], tag: string, scale?: Float64Array): void {
  const drop = new Set(neurons);
  const kept = [...Array(f.size).keys()].filter((i) => !drop.has(i));
  sliceLinearOut(g, f.up, kept, tag);
  sliceLinearIn(g, f.down, kept, tag, scale && kept.map((i) => scale[i]!));
}

/** Remove a residual block: the residual Add's result becomes its residual input (a post-norm LayerNorm stays). */
function removeBlock(residualAdd: Node, residualInput: Value): void {
  residualAdd.output(0).replaceAllUsesWith(residualInput);
}

/** Remove dead nodes (last to first) and initializers nothing uses any more. */
export function sweep(g: Graph): number {
  let removed = 0;
  for (let n = g.last(); n;) {
    const prev = n.prev();
    if (n.outputs.length > 0 && n.outputs.every((o) => o.uses().length === 0 && !o.isGraphOutput())) {
      g.remove(n);
      removed++;
    }
    n = prev;
  }
  for (const v of [...g.initializers]) if (v.uses().length === 0 && !v.isGraphOutput()) g.removeInitializer(v);
  g.valueInfo = g.valueInfo.filter((v) => v.graph === g);
  return removed;
}

/**
 * Apply a prune set to a model in place. `layers` must describe this model. Returns what was removed.
 * A layer whose heads are all gone loses its attention block; likewise for FFN groups.
 */
export function applyPrune(
  model: Model,
  layers: readonly PruneLayer[],
  set: PruneSet,
  scales: readonly LayerScales[] = [],
): PruneStats {
  const p = normalizePruneSet(set, layers);
  const g = model.graph;
  g.trackNames();
  const stats: PruneStats = {
    headsRemoved: 0,
    neuronsRemoved: 0,
    attentionBlocksRemoved: 0,
    ffnBlocksRemoved: 0,
    paramsRemoved: removedParams(p, layers),
    nodesRemoved: 0,
  };
  for (const lp of p.layers) {
    const l = layers.find((x) => x.index === lp.layer);
    if (!l) continue;
    const a = l.attention;
    if (a && lp.attention) {
      removeBlock(a.residualAdd, a.residualInput);
      stats.attentionBlocksRemoved++;
      stats.headsRemoved += a.heads;
    } else if (a && lp.heads.length) {
      pruneHeads(g, a, lp.heads, 'pruned', scales.find((x) => x.layer === l.index)?.heads);
      stats.headsRemoved += lp.heads.length;
    }
    const f = l.ffn;
    if (f && lp.ffn) {
      removeBlock(f.residualAdd, f.residualInput);
      stats.ffnBlocksRemoved++;
      stats.neuronsRemoved += f.size;
    } else if (f && lp.groups.length) {
      const neurons = lp.groups.flatMap((gi) =>
        [...Array(p.groupSize).keys()].map((j) => gi * p.groupSize + j).filter((x) => x < f.size),
      );
      pruneNeurons(g, f, neurons, 'pruned', scales.find((x) => x.layer === l.index)?.neurons);
      stats.neuronsRemoved += neurons.length;
    }
  }
  stats.nodesRemoved = sweep(g);
  // value_info shapes inside pruned blocks are stale (head and FFN widths changed): keep the element types only,
  // onnxruntime infers the shapes again
  if (stats.paramsRemoved > 0)
    for (const v of g.valueInfo)
      if (v.type?.kind === 'tensor' && v.type.shape && !v.isGraphInput() && !v.isGraphOutput())
        v.type = { kind: 'tensor', elemType: v.type.elemType };
  return stats;
}
