import { createHash } from 'node:crypto';
import type { Node, Value } from '../../src/ir/index.js';

/**
 * Types shared by significance analysis, pruning and (for mixed precision) quantization.
 *
 * Dimension letters: N rows of a batch (samples x gate settings), S sequence, D hidden, H heads, d head size,
 * F FFN size, G FFN groups, L labels.
 */

/** A linear projection as exported: MatMul(x, W[in, out]) optionally followed by Add(bias[out]). */
export interface Linear {
  matmul: Node;
  /** The weight initializer, [in, out]. */
  weight: Value;
  /** The Add node adding the bias, when present. */
  biasAdd?: Node;
  bias?: Value;
  /** For a packed weight (fused QKV): the columns [start, end) of `weight` (and `bias`) this projection uses. */
  columns?: [number, number];
}

/** What pruning needs to know about one attention block. */
export interface PruneAttention {
  heads: number;
  headSize: number;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  /** Context with heads merged, `context_BSD`: the input of the output projection MatMul. */
  context: Value;
  /** Reshape nodes that split Q/K/V into heads or merge the context (their shapes may carry the head count). */
  reshapes: Node[];
  /** The residual Add closing the block, the residual input (the block's input stream) and the branch output. */
  residualAdd: Node;
  residualInput: Value;
  branchOutput: Value;
  /** A com.microsoft Attention node, when attention is fused (num_heads attribute, packed QKV weight). */
  fused?: Node;
}

/** What pruning needs to know about one FFN block. */
export interface PruneFfn {
  size: number;
  up: Linear;
  down: Linear;
  /** The activation output, `act_BSF`: the input of the down projection MatMul. */
  activation: Value;
  residualAdd: Node;
  residualInput: Value;
  branchOutput: Value;
}

export interface PruneLayer {
  index: number;
  norm: 'post' | 'pre';
  attention?: PruneAttention;
  ffn?: PruneFfn;
}

/** Element kinds, at every granularity. Plan names: `blocks` (both block kinds), `heads`, `ffn-groups(N)`. */
export type ElementKind = 'attention' | 'ffn' | 'head' | 'ffn-group';

/** One prunable element: a whole block, a head, or a group of FFN neurons. */
export interface Element {
  kind: ElementKind;
  layer: number;
  /** Head index or group index (0 for whole blocks). */
  index: number;
}

export function elementKey(e: Element): string {
  return e.kind === 'attention' || e.kind === 'ffn' ? `L${e.layer}.${e.kind}` : `L${e.layer}.${e.kind}${e.index}`;
}

/** Score of one element. Larger means more important (removing it hurts more). */
export interface ElementScore extends Element {
  /** The score used for ranking: loss increase when removed (`by loss`), or a norm (`by magnitude` etc.). */
  score: number;
  /** Mean cross-entropy with the element removed (`by loss` only). */
  lossRemoved?: number;
  /** Fraction of samples whose loss is no worse with the element removed (`by loss` only). */
  noWorse?: number;
  /** Encoder parameters the element holds. */
  params: number;
}

/** Scores per layer, in layer order. */
export interface LayerSignificance {
  layer: number;
  heads: number;
  headSize: number;
  ffnSize: number;
  attention?: ElementScore;
  ffn?: ElementScore;
  headScores: ElementScore[];
  groupScores: ElementScore[];
}

/** The 'significance' fact. Quantization reads it for mixed precision (per layer: block and element scores). */
export interface Significance {
  by: 'loss' | 'kl' | 'magnitude' | 'activation' | 'weight-norm';
  /** Data source the scores were measured on (`by loss`, `by kl`, `by activation`). */
  data?: string;
  samples: number;
  /** Mean cross-entropy of the unpruned model on the data (`by loss`). */
  baseLoss?: number;
  baseAccuracy?: number;
  groupSize: number;
  layers: LayerSignificance[];
  /** Full passes over the data spent (a pass cut at layer l of L counts (L-l)/L). */
  evaluations: number;
  /** Results by prune set, for a later prune step on the same data and weights (not written to reports). */
  memo?: SignificanceMemo;
}

/** Result of evaluating one prune set on labelled data. */
export interface EvalResult {
  /** Mean cross-entropy over the samples. */
  loss: number;
  /** Per-sample cross-entropy, in sample order. */
  perSample: Float64Array;
  accuracy: number;
}

export interface SignificanceMemo {
  data: string;
  groupSize: number;
  /** layersFingerprint of the model the results were measured on. */
  fingerprint: string;
  results: Map<string, EvalResult>;
}

/** A hash of every prunable weight and bias: results measured on one model apply to another only if equal. */
export function layersFingerprint(layers: readonly PruneLayer[]): string {
  const h = createHash('sha256');
  for (const l of layers) {
    const lins: Linear[] = [];
    if (l.attention) lins.push(l.attention.q, l.attention.k, l.attention.v, l.attention.o);
    if (l.ffn) lins.push(l.ffn.up, l.ffn.down);
    h.update(`L${l.index}:`);
    for (const x of lins)
      h.update(`${x.weight.constValue?.contentHash()}/${x.bias?.constValue?.contentHash() ?? '-'};`);
  }
  return h.digest('hex').slice(0, 16);
}

/** What to remove, per layer. Heads and FFN groups are indices; groups have `groupSize` neurons. */
export interface PruneSet {
  groupSize: number;
  layers: LayerPrune[];
}

export interface LayerPrune {
  layer: number;
  attention: boolean;
  ffn: boolean;
  heads: number[];
  groups: number[];
}

export function emptyPruneSet(layers: readonly PruneLayer[], groupSize: number): PruneSet {
  return {
    groupSize,
    layers: layers.map((l) => ({ layer: l.index, attention: false, ffn: false, heads: [], groups: [] })),
  };
}

export function clonePruneSet(p: PruneSet): PruneSet {
  return {
    groupSize: p.groupSize,
    layers: p.layers.map((l) => ({ ...l, heads: [...l.heads], groups: [...l.groups] })),
  };
}

export function groupCount(ffnSize: number, groupSize: number): number {
  return Math.ceil(ffnSize / groupSize);
}

/**
 * Canonical form: indices sorted and unique; a block whose heads (groups) are all gone is removed as a whole,
 * and a removed block lists no heads (groups). Physical removal and the gate model agree on this form.
 */
export function normalizePruneSet(p: PruneSet, layers: readonly PruneLayer[]): PruneSet {
  const out = clonePruneSet(p);
  for (const lp of out.layers) {
    const l = layers.find((x) => x.index === lp.layer);
    const uniq = (a: number[]) => [...new Set(a)].sort((x, y) => x - y);
    lp.heads = uniq(lp.heads);
    lp.groups = uniq(lp.groups);
    if (!l?.attention) lp.attention = false;
    if (!l?.ffn) lp.ffn = false;
    if (l?.attention && lp.heads.length >= l.attention.heads) lp.attention = true;
    if (l?.ffn && lp.groups.length >= groupCount(l.ffn.size, p.groupSize)) lp.ffn = true;
    if (lp.attention) lp.heads = [];
    if (lp.ffn) lp.groups = [];
  }
  return out;
}

/** Add one element to a prune set (returns a new, normalized set). */
export function withElement(p: PruneSet, e: Element, layers: readonly PruneLayer[]): PruneSet {
  const out = clonePruneSet(p);
  const lp = out.layers.find((l) => l.layer === e.layer);
  if (!lp) throw new Error(`no layer ${e.layer}`);
  if (e.kind === 'attention') lp.attention = true;
  else if (e.kind === 'ffn') lp.ffn = true;
  else if (e.kind === 'head') lp.heads.push(e.index);
  else lp.groups.push(e.index);
  return normalizePruneSet(out, layers);
}

/** Whether an element is already removed by a prune set (directly or through its block). */
export function isRemoved(p: PruneSet, e: Element): boolean {
  const lp = p.layers.find((l) => l.layer === e.layer);
  if (!lp) return false;
  switch (e.kind) {
    case 'attention':
      return lp.attention;
    case 'ffn':
      return lp.ffn;
    case 'head':
      return lp.attention || lp.heads.includes(e.index);
    case 'ffn-group':
      return lp.ffn || lp.groups.includes(e.index);
  }
}

/** Encoder parameters held by an element (weights and biases of the projections it owns). */
export function elementParams(l: PruneLayer, e: Element, groupSize: number): number {
  const a = l.attention;
  const f = l.ffn;
  switch (e.kind) {
    case 'attention':
      return a ? attentionParams(a) : 0;
    case 'ffn':
      return f ? ffnParams(f) : 0;
    case 'head': {
      if (!a) return 0;
      const D = a.q.weight.shape?.[0];
      const Dn = typeof D === 'number' ? D : 0;
      // Q, K, V columns (+ their biases) and O rows
      return a.headSize * (3 * Dn + 3 + Dn);
    }
    case 'ffn-group': {
      if (!f) return 0;
      const n = Math.min(groupSize, f.size - e.index * groupSize);
      const D = f.up.weight.shape?.[0];
      const Dn = typeof D === 'number' ? D : 0;
      return n * (2 * Dn + 1);
    }
  }
}

function sizeOf(v: Value | undefined): number {
  const t = v?.constValue;
  return t ? t.numElements : 0;
}

function linearParams(l: Linear): number {
  return sizeOf(l.weight) + sizeOf(l.bias);
}

export function attentionParams(a: PruneAttention): number {
  // a fused attention packs Q, K and V into one weight: count it once
  if (a.fused) return linearParams(a.q) + linearParams(a.o);
  return linearParams(a.q) + linearParams(a.k) + linearParams(a.v) + linearParams(a.o);
}

export function ffnParams(f: PruneFfn): number {
  return linearParams(f.up) + linearParams(f.down);
}

/** Encoder parameters of prunable projections (attention and FFN weights and biases; LayerNorms excluded). */
export function encoderParams(layers: readonly PruneLayer[]): number {
  let n = 0;
  for (const l of layers) {
    if (l.attention) n += attentionParams(l.attention);
    if (l.ffn) n += ffnParams(l.ffn);
  }
  return n;
}

/** Encoder parameters a prune set removes. */
export function removedParams(p: PruneSet, layers: readonly PruneLayer[]): number {
  let n = 0;
  for (const lp of p.layers) {
    const l = layers.find((x) => x.index === lp.layer);
    if (!l) continue;
    if (lp.attention) n += elementParams(l, { kind: 'attention', layer: l.index, index: 0 }, p.groupSize);
    else for (const h of lp.heads) n += elementParams(l, { kind: 'head', layer: l.index, index: h }, p.groupSize);
    if (lp.ffn) n += elementParams(l, { kind: 'ffn', layer: l.index, index: 0 }, p.groupSize);
    else for (const g of lp.groups) n += elementParams(l, { kind: 'ffn-group', layer: l.index, index: g }, p.groupSize);
  }
  return n;
}

/** A short deterministic description: `L1: attention, ffn groups 0,3; L0: heads 1`. */
export function describePruneSet(p: PruneSet): string {
  const parts: string[] = [];
  for (const lp of p.layers) {
    const bits: string[] = [];
    if (lp.attention) bits.push('attention');
    else if (lp.heads.length) bits.push(`heads ${lp.heads.join(',')}`);
    if (lp.ffn) bits.push('ffn');
    else if (lp.groups.length) bits.push(`ffn groups ${lp.groups.join(',')}`);
    if (bits.length) parts.push(`L${lp.layer}: ${bits.join(', ')}`);
  }
  return parts.length ? parts.join('; ') : 'nothing';
}

/** Sequence length at which MACs are counted (attention score MACs grow with it). */
export const MACS_SEQ = 128;

/** Multiply-accumulates per token a prune set removes (projections, and attention scores at MACS_SEQ tokens). */
export function removedMacs(p: PruneSet, layers: readonly PruneLayer[]): number {
  let n = 0;
  const n0 = normalizePruneSet(p, layers);
  for (const lp of n0.layers) {
    const l = layers.find((x) => x.index === lp.layer);
    if (!l) continue;
    const a = l.attention;
    if (a) {
      const D = typeof a.q.weight.shape?.[0] === 'number' ? (a.q.weight.shape[0] as number) : 0;
      const perHead = 4 * D * a.headSize + 2 * MACS_SEQ * a.headSize;
      n += (lp.attention ? a.heads : lp.heads.length) * perHead;
    }
    const f = l.ffn;
    if (f) {
      const D = typeof f.up.weight.shape?.[0] === 'number' ? (f.up.weight.shape[0] as number) : 0;
      const neurons = lp.ffn
        ? f.size
        : lp.groups.reduce((s, g) => s + Math.max(0, Math.min(p.groupSize, f.size - g * p.groupSize)), 0);
      n += neurons * 2 * D;
    }
  }
  return n;
}

/** Encoder MACs per token (at MACS_SEQ tokens) of the prunable blocks. */
export function encoderMacs(layers: readonly PruneLayer[], groupSize = 64): number {
  const all: PruneSet = {
    groupSize,
    layers: layers.map((l) => ({ layer: l.index, attention: true, ffn: true, heads: [], groups: [] })),
  };
  return removedMacs(all, layers);
}

/**
 * The significance fact after pruning `set` (normalized): removed elements dropped, the others renumbered the way
 * the pruned model is recognized (heads and groups by rank, layers that lost both blocks gone). Scores stay as
 * measured before pruning (an approximation once neighbours are gone); the memo is dropped.
 */
export function remapSignificance(sig: Significance, set: PruneSet, layers: readonly PruneLayer[]): Significance {
  const p = normalizePruneSet(set, layers);
  const out: LayerSignificance[] = [];
  let next = 0;
  for (const l of layers) {
    const lp = p.layers.find((x) => x.layer === l.index);
    const hasAttn = !!l.attention && !lp?.attention;
    const hasFfn = !!l.ffn && !lp?.ffn;
    if (!hasAttn && !hasFfn) continue;
    const idx = next++;
    const ls = sig.layers.find((x) => x.layer === l.index);
    if (!ls) continue;
    const heads = lp?.heads ?? [];
    const groups = lp?.groups ?? [];
    const renum = (list: ElementScore[], removed: number[]): ElementScore[] =>
      list
        .filter((s) => !removed.includes(s.index))
        .map((s) => ({ ...s, layer: idx, index: s.index - removed.filter((r) => r < s.index).length }));
    const removedNeurons = groups.reduce(
      (n, g) => n + Math.max(0, Math.min(p.groupSize, ls.ffnSize - g * p.groupSize)),
      0,
    );
    const nl: LayerSignificance = {
      layer: idx,
      heads: hasAttn ? ls.heads - heads.length : 0,
      headSize: hasAttn ? ls.headSize : 0,
      ffnSize: hasFfn ? ls.ffnSize - removedNeurons : 0,
      headScores: hasAttn ? renum(ls.headScores, heads) : [],
      groupScores: hasFfn ? renum(ls.groupScores, groups) : [],
    };
    if (hasAttn && ls.attention) nl.attention = { ...ls.attention, layer: idx };
    if (hasFfn && ls.ffn) nl.ffn = { ...ls.ffn, layer: idx };
    out.push(nl);
  }
  const { memo: _memo, ...rest } = sig;
  void _memo;
  return { ...rest, layers: out };
}
