/**
 * Known edits for diff tests, done by hand on the IR: physically remove attention heads (slice Q/K/V columns and
 * biases and the output projection's rows), independent of the prune pass so the diff is checked against a
 * removal whose head numbers the test chose.
 */
import { Builder, Tensor, type Model, type Node, type Value } from '../../src/ir/index.js';
import { layerViews } from '../../src/diff/index.js';

function replaceConst(node: Node, slot: number, t: Tensor): void {
  const old = node.input(slot)!;
  const g = node.graph!;
  const v = g.initializer(`${old.name}_sliced`, t);
  node.replaceInput(slot, v);
  if (old.uses().length === 0) g.removeInitializer(old);
}

/** The Add that adds a constant bias to a projection's output, with the bias slot. */
function biasAdd(n: Node): { node: Node; slot: number } | undefined {
  for (const c of n.outputs[0]!.consumers()) {
    if (c.opType !== 'Add') continue;
    const slot = c.inputs.findIndex((v: Value | null) => v !== null && v.constValue !== undefined);
    if (slot >= 0) return { node: c, slot };
  }
  return undefined;
}

/** Remove heads (numbered in the current model) of one layer; the reshapes are [B, S, -1, d] so only weights change. */
export function removeHeads(model: Model, layer: number, heads: number[]): void {
  const att = layerViews(model)[layer]!.attention!;
  const d = att.headSize;
  const keep = [...Array(att.heads).keys()].filter((h) => !heads.includes(h));
  const cols = keep.flatMap((h) => Array.from({ length: d }, (_, c) => h * d + c));
  for (const p of [att.q, att.k, att.v]) {
    const w_DN = p.node.input(1)!.constValue!;
    const [D, N] = [w_DN.dims[0]!, w_DN.dims[1]!];
    const src = w_DN.toFloat32();
    const out = new Float32Array(D * cols.length);
    for (let r = 0; r < D; r++) cols.forEach((c, j) => (out[r * cols.length + j] = src[r * N + c]!));
    replaceConst(p.node, 1, Tensor.fromFloat32('', [D, cols.length], out));
    const b = biasAdd(p.node);
    if (b) {
      const bv = b.node.input(b.slot)!.constValue!.toFloat32();
      replaceConst(
        b.node,
        b.slot,
        Tensor.fromFloat32(
          '',
          [cols.length],
          cols.map((c) => bv[c]!),
        ),
      );
    }
  }
  const o = att.o!;
  const w_ND = o.node.input(1)!.constValue!;
  const D = w_ND.dims[1]!;
  const src = w_ND.toFloat32();
  const out = new Float32Array(cols.length * D);
  cols.forEach((r, j) => out.set(src.subarray(r * D, (r + 1) * D), j * D));
  replaceConst(o.node, 1, Tensor.fromFloat32('', [cols.length, D], out));
}

/**
 * Quantize every projection of one layer to com.microsoft DynamicQuantizeMatMul with an int8 weight, symmetric,
 * per output channel. New nodes carry `axc.pass = quantize`, as axc's Builder stamps them.
 */
export function quantizeLayer(model: Model, layer: number): void {
  const l = layerViews(model)[layer]!;
  const g = model.graph;
  model.opsetImports.set('com.microsoft', 1);
  const projs = [l.attention?.q, l.attention?.k, l.attention?.v, l.attention?.o, l.ffn?.in, l.ffn?.out];
  for (const p of projs) {
    if (!p) continue;
    const mm = p.node;
    const w = mm.input(1)!;
    const t = w.constValue!;
    const [K, N] = [t.dims[0]!, t.dims[1]!];
    const f = t.toFloat32();
    const scale = new Float32Array(N);
    for (let n = 0; n < N; n++) {
      let m = 0;
      for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(f[k * N + n]!));
      scale[n] = m > 0 ? m / 127 : 1;
    }
    const q = new Int8Array(K * N);
    for (let k = 0; k < K; k++)
      for (let n = 0; n < N; n++) q[k * N + n] = Math.max(-127, Math.min(127, Math.round(f[k * N + n]! / scale[n]!)));
    const b = new Builder(g, mm, 'quantize');
    const qv = b.initializer(`${w.name}_quantized`, Tensor.fromInt8('', [K, N], q));
    const sv = b.initializer(`${w.name}_scale`, Tensor.fromFloat32('', [N], scale));
    const zv = b.initializer(`${w.name}_zero_point`, Tensor.fromInt8('', [N], new Int8Array(N)));
    const y = b.op1('DynamicQuantizeMatMul', [mm.input(0), qv, sv, zv], {
      domain: 'com.microsoft',
      name: `${mm.name}_quant`,
    });
    y.type = mm.output(0).type;
    mm.output(0).replaceAllUsesWith(y);
    g.remove(mm);
    if (w.uses().length === 0) g.removeInitializer(w);
  }
}
