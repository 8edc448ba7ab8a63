import * as ort from 'onnxruntime-node';
import { DataType, tensorType, type Model } from '../../src/ir/index.js';
import { decodeModel, serializeModel } from '../../src/onnx/index.js';
import { GateEvaluator, noWorseFraction, type EvalResult, type Sample } from './prune-eval.js';
import { recognizeLayers } from './prune-layers.js';
import {
  elementParams,
  groupCount,
  isRemoved,
  withElement,
  type Element,
  type ElementScore,
  type LayerSignificance,
  type PruneLayer,
  type PruneSet,
  type Significance,
} from './prune-types.js';

/**
 * Element scores: by loss (ablation on labelled data through the gate model), by weights (magnitude / weight norm,
 * no data), or by activations (mean |activation| on data, no labels needed).
 */

export type ScoreBy = Significance['by'];

export interface ElementChoice {
  blocks: boolean;
  heads: boolean;
  groups: boolean;
}

/** The elements of the selected layers, blocks first, then heads, then groups, layer by layer. */
export function elementsOf(
  layers: readonly PruneLayer[],
  which: ElementChoice,
  groupSize: number,
  selected: readonly number[],
): Element[] {
  const out: Element[] = [];
  for (const l of layers) {
    if (!selected.includes(l.index)) continue;
    if (which.blocks && l.attention) out.push({ kind: 'attention', layer: l.index, index: 0 });
    if (which.blocks && l.ffn) out.push({ kind: 'ffn', layer: l.index, index: 0 });
    if (which.heads && l.attention)
      for (let h = 0; h < l.attention.heads; h++) out.push({ kind: 'head', layer: l.index, index: h });
    if (which.groups && l.ffn)
      for (let g = 0; g < groupCount(l.ffn.size, groupSize); g++)
        out.push({ kind: 'ffn-group', layer: l.index, index: g });
  }
  return out;
}

/** Loss-based scores of `elements` on top of the prune set `base`: loss increase when each is removed alone. */
export async function lossScores(
  ev: GateEvaluator,
  base: PruneSet,
  baseResult: EvalResult | undefined,
  elements: readonly Element[],
): Promise<{ base: EvalResult; scores: ElementScore[] }> {
  const layers = ev.gm.layers;
  const todo = elements.filter((e) => !isRemoved(base, e));
  const sets = todo.map((e) => withElement(base, e, layers));
  const results = await ev.evaluate(baseResult ? sets : [base, ...sets]);
  const b = baseResult ?? results.shift()!;
  const scores = todo.map((e, i) => {
    const r = results[i]!;
    const l = layers.find((x) => x.index === e.layer)!;
    return {
      ...e,
      score: r.loss - b.loss,
      lossRemoved: r.loss,
      noWorse: noWorseFraction(b.perSample, r.perSample),
      params: elementParams(l, e, base.groupSize),
    };
  });
  return { base: b, scores };
}

function columnsStat(w: Float32Array, cols: number, c0: number, c1: number, f: (x: number) => number): number {
  let s = 0;
  const rows = w.length / cols;
  for (let r = 0; r < rows; r++) for (let c = c0; c < c1; c++) s += f(w[r * cols + c]!);
  return s;
}

function rowsStat(w: Float32Array, cols: number, r0: number, r1: number, f: (x: number) => number): number {
  let s = 0;
  for (let i = r0 * cols; i < r1 * cols; i++) s += f(w[i]!);
  return s;
}

/** Weight scores: `weight-norm` = L2 norm of the element's weights; `magnitude` = mean |w| of them. */
export function weightScores(
  layers: readonly PruneLayer[],
  elements: readonly Element[],
  groupSize: number,
  by: 'magnitude' | 'weight-norm',
): ElementScore[] {
  const f = by === 'weight-norm' ? (x: number) => x * x : Math.abs;
  return elements.map((e) => {
    const l = layers.find((x) => x.index === e.layer)!;
    let sum = 0;
    let count = 0;
    const a = l.attention;
    const ff = l.ffn;
    if ((e.kind === 'head' || e.kind === 'attention') && a) {
      const HD = a.heads * a.headSize;
      const c0 = e.kind === 'head' ? e.index * a.headSize : 0;
      const c1 = e.kind === 'head' ? c0 + a.headSize : HD;
      // a head: its Q/K/V columns (onnxsim's criterion); a block: every projection
      for (const lin of [a.q, a.k, a.v]) {
        const w = lin.weight.constValue!.toFloat32();
        const cols = lin.weight.constValue!.dims[1]!;
        const off = lin.columns?.[0] ?? 0;
        sum += columnsStat(w, cols, off + c0, off + c1, f);
        count += (w.length / cols) * (c1 - c0);
      }
      if (e.kind === 'attention') {
        const w = a.o.weight.constValue!.toFloat32();
        sum += rowsStat(w, w.length / HD, 0, HD, f);
        count += w.length;
      }
    } else if ((e.kind === 'ffn-group' || e.kind === 'ffn') && ff) {
      const F = ff.size;
      const c0 = e.kind === 'ffn-group' ? e.index * groupSize : 0;
      const c1 = e.kind === 'ffn-group' ? Math.min(F, c0 + groupSize) : F;
      const w1 = ff.up.weight.constValue!.toFloat32();
      sum += columnsStat(w1, F, c0, c1, f);
      count += (w1.length / F) * (c1 - c0);
      const w2 = ff.down.weight.constValue!.toFloat32();
      sum += rowsStat(w2, w2.length / F, c0, c1, f);
      count += (w2.length / F) * (c1 - c0);
    }
    const score = by === 'weight-norm' ? Math.sqrt(sum) : count ? sum / count : 0;
    return { ...e, score, params: elementParams(l, e, groupSize) };
  });
}

/**
 * Activation scores on data: a head scores the mean |context| of its slice, an FFN group the mean |activation| of
 * its neurons, a block the mean |branch output|, over real (unpadded) tokens.
 */
export async function activationScores(
  model: Model,
  layers: readonly PruneLayer[],
  samples: readonly Sample[],
  elements: readonly Element[],
  groupSize: number,
  threads: number,
): Promise<ElementScore[]> {
  const copy = decodeModel(serializeModel(model));
  const cl = recognizeLayers(copy).layers;
  const outs: { layer: number; kind: 'context' | 'act' | 'attnOut' | 'ffnOut'; name: string }[] = [];
  for (const l of cl) {
    const add = (v: import('../../src/ir/index.js').Value | undefined, kind: (typeof outs)[number]['kind']) => {
      if (!v) return;
      if (!v.type) v.type = tensorType(DataType.FLOAT);
      if (!copy.graph.outputs.includes(v)) copy.graph.outputs.push(v);
      outs.push({ layer: l.index, kind, name: v.name });
    };
    add(l.attention?.context, 'context');
    add(l.attention?.branchOutput, 'attnOut');
    add(l.ffn?.activation, 'act');
    add(l.ffn?.branchOutput, 'ffnOut');
  }
  const session = await ort.InferenceSession.create(serializeModel(copy), {
    graphOptimizationLevel: 'disabled',
    intraOpNumThreads: threads,
  });
  const sums = new Map<string, Float64Array>();
  let tokens = 0;
  const inputs = model.graph.inputs.filter((v) => !v.isInitializer()).map((v) => v.name);
  const chunk = 32;
  for (let i = 0; i < samples.length; i += chunk) {
    const part = samples.slice(i, i + chunk);
    const lens = part.map((s) => (s.inputs.input_ids ?? Object.values(s.inputs)[0]!).length);
    const S = Math.max(1, ...lens);
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of inputs) {
      const buf = new BigInt64Array(part.length * S);
      part.forEach((s, b) => {
        const v = s.inputs[name];
        if (v) buf.set(v.subarray(0, S), b * S);
        else if (name === 'attention_mask') buf.fill(1n, b * S, b * S + lens[b]!);
      });
      feeds[name] = new ort.Tensor('int64', buf, [part.length, S]);
    }
    const res = await session.run(
      feeds,
      outs.map((o) => o.name),
    );
    for (const o of outs) {
      const t = res[o.name]!;
      const W = t.dims[2]!;
      const data = t.data as Float32Array;
      const acc = sums.get(o.name) ?? new Float64Array(W);
      part.forEach((_, b) => {
        for (let s = 0; s < lens[b]!; s++) {
          const off = (b * S + s) * W;
          for (let c = 0; c < W; c++) acc[c]! += Math.abs(data[off + c]!);
        }
      });
      sums.set(o.name, acc);
    }
    tokens += lens.reduce((a, b) => a + b, 0);
  }
  await session.release();
  const mean = (layer: number, kind: (typeof outs)[number]['kind'], c0: number, c1: number): number => {
    const o = outs.find((x) => x.layer === layer && x.kind === kind);
    const acc = o && sums.get(o.name);
    if (!acc) return 0;
    let s = 0;
    const hi = Math.min(c1, acc.length);
    for (let c = c0; c < hi; c++) s += acc[c]!;
    return hi > c0 ? s / (hi - c0) / Math.max(1, tokens) : 0;
  };
  return elements.map((e) => {
    const l = layers.find((x) => x.index === e.layer)!;
    let score = 0;
    if (e.kind === 'head' && l.attention)
      score = mean(e.layer, 'context', e.index * l.attention.headSize, (e.index + 1) * l.attention.headSize);
    else if (e.kind === 'ffn-group') score = mean(e.layer, 'act', e.index * groupSize, (e.index + 1) * groupSize);
    else if (e.kind === 'attention') score = mean(e.layer, 'attnOut', 0, Infinity);
    else if (e.kind === 'ffn') score = mean(e.layer, 'ffnOut', 0, Infinity);
    return { ...e, score, params: elementParams(l, e, groupSize) };
  });
}

/** Arrange element scores per layer (the fact's shape). */
export function perLayer(layers: readonly PruneLayer[], scores: readonly ElementScore[]): LayerSignificance[] {
  return layers
    .filter((l) => scores.some((s) => s.layer === l.index))
    .map((l) => {
      const mine = scores.filter((s) => s.layer === l.index);
      const ls: LayerSignificance = {
        layer: l.index,
        heads: l.attention?.heads ?? 0,
        headSize: l.attention?.headSize ?? 0,
        ffnSize: l.ffn?.size ?? 0,
        headScores: mine.filter((s) => s.kind === 'head'),
        groupScores: mine.filter((s) => s.kind === 'ffn-group'),
      };
      const a = mine.find((s) => s.kind === 'attention');
      const f = mine.find((s) => s.kind === 'ffn');
      if (a) ls.attention = a;
      if (f) ls.ffn = f;
      return ls;
    });
}

/** Every element score of a significance fact, in layer order. */
export function allScores(sig: Significance): ElementScore[] {
  const out: ElementScore[] = [];
  for (const l of sig.layers) {
    if (l.attention) out.push(l.attention);
    if (l.ffn) out.push(l.ffn);
    out.push(...l.headScores, ...l.groupScores);
  }
  return out;
}
