import * as ort from 'onnxruntime-node';
import { Builder, DataType, Value, tensorType, type Model } from '../../src/ir/index.js';
import { decodeModel, serializeModel } from '../../src/onnx/index.js';
import { sweep } from './prune-apply.js';
import { recognizeLayers } from './prune-layers.js';
import { groupCount, normalizePruneSet, type PruneLayer, type PruneSet } from './prune-types.js';

/**
 * The instrumented gate model: ONE copy of the model with multiplier inputs, so that every ablation is a new set
 * of gate values in the same onnxruntime session rather than a rebuilt model.
 *
 * Gates have a leading row axis aligned with the batch (N = samples x gate settings), so one run evaluates many
 * settings: row r of the batch is multiplied by row r of every gate.
 * - per head: `gate_NH @ expand_HD` (D = H*d) multiplies `context_BSD`, the per-head slices of the merged context
 *   just before the output projection, so a zero gate removes exactly that head's contribution;
 * - per FFN group: `gate_NG @ expand_GF` multiplies `act_BSF`, the activation before the down projection;
 * - per block: `gate_N1` multiplies the block's branch output before the residual Add (the projection biases
 *   included), so a zero gate leaves `LayerNorm(residual input)` (post-norm) or the residual stream (pre-norm).
 */

export type GateKind = 'heads' | 'groups' | 'attention' | 'ffn';

export interface GateInput {
  layer: number;
  kind: GateKind;
  /** Graph input name. */
  name: string;
  /** Gate width: heads, groups, or 1 for blocks. */
  width: number;
}

export interface GateModel {
  /** The serialized instrumented model. */
  bytes: Uint8Array;
  /** Layers of the original model. */
  layers: PruneLayer[];
  gates: GateInput[];
  groupSize: number;
  /** Name of the logits output. */
  logits: string;
  /** Real (data) inputs of the model, in order. */
  dataInputs: string[];
  /** Name of the hidden-state input of a cut model. */
  hidden?: string;
  /** Names of the hidden-state outputs (hiddenOutputs), one per cut point (see cutPoints). */
  hiddenOutputs: string[];
  /** Per-layer probe outputs (probeOutputs): gated `context_BSD`, gated `act_BSF`, branch outputs before the block gate. */
  probes: LayerProbe[];
}

function expandMatrix(rows: number, cols: number, span: number): Float32Array {
  // E[r, c] = 1 when column c belongs to row r's span
  const e = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = r * span; c < Math.min(cols, (r + 1) * span); c++) e[r * cols + c] = 1;
  return e;
}

export interface GateModelOptions {
  /**
   * Cut the model at this cut point (an index into cutPoints): the hidden state `hidden_BSD` entering that block
   * becomes an input (`axc_hidden`), everything before it is dropped, and only blocks from there on have gates.
   */
  cut?: number;
  /** Add the hidden state entering every block as an output, to feed cut models. */
  hiddenOutputs?: boolean;
  /** Add per-layer probes as outputs: gated context and activation, block branch outputs (for compensation). */
  probeOutputs?: boolean;
}

export interface LayerProbe {
  layer: number;
  context?: string;
  act?: string;
  attnBranch?: string;
  ffnBranch?: string;
}

/** A place where the gate model can be cut: the input of one block. */
export interface CutPoint {
  layer: number;
  block: 'attention' | 'ffn';
}

/** Every block input, in graph order. */
export function cutPoints(layers: readonly PruneLayer[]): CutPoint[] {
  const out: CutPoint[] = [];
  for (const l of layers) {
    if (l.attention) out.push({ layer: l.index, block: 'attention' });
    if (l.ffn) out.push({ layer: l.index, block: 'ffn' });
  }
  return out;
}

/** The hidden state entering a block: its residual input. */
export function cutInput(layers: readonly PruneLayer[], p: CutPoint): Value {
  const l = layers.find((x) => x.index === p.layer);
  const v = p.block === 'attention' ? l?.attention?.residualInput : l?.ffn?.residualInput;
  if (!v) throw new Error(`layer ${p.layer} has no ${p.block} block`);
  return v;
}

/** Build the gate model for a model (which is not modified: the gates go into a copy). */
export function buildGateModel(
  model: Model,
  layers: readonly PruneLayer[],
  groupSize: number,
  opts: GateModelOptions = {},
): GateModel {
  const copy = decodeModel(serializeModel(model));
  const cl = recognizeLayers(copy).layers;
  if (cl.length !== layers.length) throw new Error('gate model: the copy does not have the same layers');
  const g = copy.graph;
  g.trackNames();
  const opset = copy.opset('') ?? 17;
  const gates: GateInput[] = [];
  const points = cutPoints(cl);
  const cutIdx = opts.cut ?? 0;
  const cut = points[cutIdx] ?? points[0]!;
  if (opts.hiddenOutputs) {
    for (const p of points) {
      const x = cutInput(cl, p);
      x.type ??= tensorType(DataType.FLOAT);
      if (!g.outputs.includes(x)) g.outputs.push(x);
    }
  }
  let hiddenName: string | undefined;
  if (cutIdx > 0) {
    const x = cutInput(cl, cut);
    const hidden = new Value('axc_hidden', tensorType(DataType.FLOAT, ['rows', 'sequence', null]));
    g.addInput(hidden);
    x.replaceAllUsesWith(hidden, { replaceGraphOutputs: false });
    hiddenName = hidden.name;
  }
  const probes: LayerProbe[] = [];
  const probe = (v: Value): string => {
    if (opts.probeOutputs && !g.outputs.includes(v)) {
      v.type ??= tensorType(DataType.FLOAT);
      g.outputs.push(v);
    }
    return v.name;
  };
  const b = new Builder(g, null, 'gates');
  const unsqueeze = (x: Value, axis: number, name: string): Value => {
    if (opset >= 13) return b.op1('Unsqueeze', [x, b.constInt64(`${name}_axes`, [axis])], { name });
    return b.op1('Unsqueeze', [x], { name, attrs: { axes: [axis] } });
  };
  const addGate = (layer: number, kind: GateKind, width: number): Value => {
    const name = `axc_gate_L${layer}_${kind}`;
    const v = new Value(name, tensorType(DataType.FLOAT, ['gate_rows', width]));
    g.addInput(v);
    gates.push({ layer, kind, name: v.name, width });
    return v;
  };
  for (const l of cl) {
    if (cutIdx > 0 && l.index < cut.layer) continue;
    const a = cutIdx > 0 && l.index === cut.layer && cut.block === 'ffn' ? undefined : l.attention;
    const pr: LayerProbe = { layer: l.index };
    probes.push(pr);
    if (a) {
      const D = a.heads * a.headSize;
      const gate = addGate(l.index, 'heads', a.heads);
      b.anchor = a.o.matmul;
      const E = b.constFloat(`gate_L${l.index}_heads_expand_HD`, expandMatrix(a.heads, D, a.headSize), [a.heads, D]);
      const g_ND = b.op1('MatMul', [gate, E], { name: `gate_L${l.index}_heads_ND` });
      const g_N1D = unsqueeze(g_ND, 1, `gate_L${l.index}_heads_N1D`);
      const masked = b.op1('Mul', [a.context, g_N1D], { name: `gate_L${l.index}_context_BSD` });
      pr.context = probe(masked);
      pr.attnBranch = probe(a.branchOutput);
      a.o.matmul.replaceInput(0, masked);
      const bg = addGate(l.index, 'attention', 1);
      b.anchor = a.residualAdd;
      const bg3 = unsqueeze(bg, 2, `gate_L${l.index}_attention_N11`);
      const gated = b.op1('Mul', [a.branchOutput, bg3], { name: `gate_L${l.index}_attention_BSD` });
      a.residualAdd.replaceInput(a.residualAdd.input(0) === a.branchOutput ? 0 : 1, gated);
    }
    const f = l.ffn;
    if (f) {
      const G = groupCount(f.size, groupSize);
      const gate = addGate(l.index, 'groups', G);
      b.anchor = f.down.matmul;
      const E = b.constFloat(`gate_L${l.index}_groups_expand_GF`, expandMatrix(G, f.size, groupSize), [G, f.size]);
      const g_NF = b.op1('MatMul', [gate, E], { name: `gate_L${l.index}_groups_NF` });
      const g_N1F = unsqueeze(g_NF, 1, `gate_L${l.index}_groups_N1F`);
      const masked = b.op1('Mul', [f.activation, g_N1F], { name: `gate_L${l.index}_act_BSF` });
      pr.act = probe(masked);
      pr.ffnBranch = probe(f.branchOutput);
      f.down.matmul.replaceInput(0, masked);
      const bg = addGate(l.index, 'ffn', 1);
      b.anchor = f.residualAdd;
      const bg3 = unsqueeze(bg, 2, `gate_L${l.index}_ffn_N11`);
      const gated = b.op1('Mul', [f.branchOutput, bg3], { name: `gate_L${l.index}_ffn_BSD` });
      f.residualAdd.replaceInput(f.residualAdd.input(0) === f.branchOutput ? 0 : 1, gated);
    }
  }
  if (cutIdx > 0) {
    sweep(g);
    // inputs nothing uses any more (token inputs of dropped lower layers)
    g.inputs = g.inputs.filter((v) => v.uses().length > 0 || v.isInitializer());
  }
  const logits = copy.graph.outputs[0];
  if (!logits) throw new Error('gate model: the model has no output');
  return {
    bytes: serializeModel(copy),
    layers: [...layers],
    gates,
    groupSize,
    logits: logits.name,
    dataInputs: g.inputs
      .filter((v) => !v.isInitializer() && !gates.some((x) => x.name === v.name) && v.name !== hiddenName)
      .map((v) => v.name),
    hidden: hiddenName,
    hiddenOutputs: opts.hiddenOutputs ? points.map((p) => cutInput(cl, p).name) : [],
    probes,
  };
}

/** Gate values of one prune set, per gate input (1 = keep, 0 = removed). */
export function gateValues(gm: GateModel, set: PruneSet): Map<string, Float32Array> {
  const p = normalizePruneSet(set, gm.layers);
  const out = new Map<string, Float32Array>();
  for (const gi of gm.gates) {
    const v = new Float32Array(gi.width).fill(1);
    const lp = p.layers.find((x) => x.layer === gi.layer);
    if (lp) {
      if (gi.kind === 'attention' && lp.attention) v[0] = 0;
      if (gi.kind === 'ffn' && lp.ffn) v[0] = 0;
      if (gi.kind === 'heads') for (const h of lp.heads) if (h < gi.width) v[h] = 0;
      if (gi.kind === 'groups') for (const x of lp.groups) if (x < gi.width) v[x] = 0;
    }
    out.set(gi.name, v);
  }
  return out;
}

/**
 * Gate feeds for a batch made of `settings.length` copies of `rows` samples, setting-major:
 * row `s * rows + i` is sample i under setting s.
 */
export function gateFeeds(gm: GateModel, settings: readonly PruneSet[], rows: number): Record<string, ort.Tensor> {
  const N = settings.length * rows;
  const vals = settings.map((s) => gateValues(gm, s));
  const feeds: Record<string, ort.Tensor> = {};
  for (const gi of gm.gates) {
    const data = new Float32Array(N * gi.width);
    vals.forEach((m, s) => {
      const v = m.get(gi.name)!;
      for (let i = 0; i < rows; i++) data.set(v, (s * rows + i) * gi.width);
    });
    feeds[gi.name] = new ort.Tensor('float32', data, [N, gi.width]);
  }
  return feeds;
}
