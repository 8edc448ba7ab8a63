/**
 * `axc diff`: what changed between two models, semantically first (per layer: which heads were removed, numbered
 * as in the original model; FFN width; removed blocks; attention kind; precision of each matrix; fused ops; totals)
 * and then node by node (matched by structure, see nodes.ts), with the axc pass that made each new node.
 */
import * as fs from 'node:fs';
import { DataType, allNodes, type Model } from '../ir/index.js';
import { encodedSize, loadModel } from '../onnx/index.js';
import { embeddingViews, layerViews, type LayerView, type Projection } from './layers.js';
import { structuralDiff, type InitializerDiff, type NodeDiff, type StructuralDiff } from './nodes.js';

export {
  embeddingViews,
  layerViews,
  projectionOf,
  type EmbeddingView,
  type LayerView,
  type Projection,
} from './layers.js';
export {
  structuralDiff,
  passOf,
  type NodeDiff,
  type InitializerDiff,
  type NodeInfo,
  type NodeChange,
} from './nodes.js';

export const DIFF_SCHEMA = 'axc.diff/1';

/** One side of a layer. */
export interface LayerSide {
  heads: number;
  headSize: number;
  ffnSize: number;
  /** `softmax`, `top-k k=16`, `fused (com.microsoft.Attention)`, or `none` when the block is gone. */
  attention: string;
  /** The precision shared by every matrix of the layer, or `mixed` (see `matrices`). */
  precision: string;
  /** Precision of each matrix: q, k, v, o, ffn.in, ffn.out. */
  matrices: Record<string, string>;
  /** Weight elements of the layer's matrices. */
  weights: number;
  /** Multiply-adds of the layer for one sequence of length `seq` (dense attention kernels). */
  macs: number;
}

export interface LayerDiff {
  /** The layer's index in the original (before) model; after-only layers get the after index. */
  index: number;
  /** The layer's index in the after model (null when the whole layer is gone). */
  afterIndex: number | null;
  before: LayerSide | null;
  after: LayerSide | null;
  /** Heads of the original layer that are gone, numbered as in the original model. */
  removedHeads: number[];
  /** For each head of the after model, the original head it is (-1 when no original head matches). */
  headOrigin: number[];
  /** How heads were matched: `exact` (equal weight slices), `approximate` (quantized: cosine ≥ 0.9), `none`. */
  headMatch: 'exact' | 'approximate' | 'none';
  removedBlocks: ('attention' | 'ffn')[];
  /** FFN neurons removed (before ffnSize - after ffnSize). */
  removedNeurons: number;
  changed: boolean;
}

export interface Totals {
  parameters: number;
  bytes: number;
  nodes: number;
  /** Multiply-adds of the encoder layers for one sequence of length `seq`. */
  encoderMacs: number;
}

export interface ModelDiff {
  schema: typeof DIFF_SCHEMA;
  before: { path?: string };
  after: { path?: string };
  /** Sequence length used for MACs. */
  seq: number;
  /** True when the models are the same (no semantic, node, initializer or graph difference). */
  same: boolean;
  layers: LayerDiff[];
  totals: { before: Totals; after: Totals };
  /** Ops whose count changed: before and after counts. */
  ops: { op: string; before: number; after: number }[];
  /** Embedding tables (Gather on ids), paired in order by shape: precision before and after. */
  embeddings: { name: string; rows: number; cols: number; before: string | null; after: string | null }[];
  /** Fused or contrib ops the after model has and the before model did not, with counts. */
  fused: { op: string; count: number }[];
  nodes: NodeDiff;
  initializers: InitializerDiff;
  /** Opsets, graph inputs/outputs, model metadata. */
  graph: string[];
  /** New and changed nodes by the pass that made them (`axc.pass`; `(unstamped)` when none). */
  passes: Record<string, { added: number; changed: number }>;
}

export interface DiffOptions {
  /** Sequence length for MACs (default 128). */
  seq?: number;
  beforePath?: string;
  afterPath?: string;
}

/** Everything computed for a diff, including what the HTML view draws (layer views and node matches). */
export interface DiffResult {
  diff: ModelDiff;
  beforeLayers: LayerView[];
  afterLayers: LayerView[];
  structure: StructuralDiff;
}

export function diffFiles(beforePath: string, afterPath: string, opts: DiffOptions = {}): DiffResult {
  const before = loadModel(beforePath);
  const after = loadModel(afterPath);
  return diffModelsFull(before, after, { ...opts, beforePath, afterPath });
}

/** The JSON-ready difference of two models. */
export function diffModels(before: Model, after: Model, opts: DiffOptions = {}): ModelDiff {
  return diffModelsFull(before, after, opts).diff;
}

export function diffModelsFull(before: Model, after: Model, opts: DiffOptions = {}): DiffResult {
  const seq = opts.seq ?? 128;
  const bl = layerViews(before);
  const al = layerViews(after);
  const layers = diffLayers(bl, al, seq);
  const structure = structuralDiff(before, after);
  const meta = (m: Model) => JSON.stringify(m.metadataProps ?? []);
  const graph = [...structure.graph];
  if (meta(before) !== meta(after)) graph.push('model metadata changed');
  const ops = opCounts(before);
  const opsAfter = opCounts(after);
  const opDiff: ModelDiff['ops'] = [];
  for (const op of [...new Set([...ops.keys(), ...opsAfter.keys()])].sort()) {
    const x = ops.get(op) ?? 0;
    const y = opsAfter.get(op) ?? 0;
    if (x !== y) opDiff.push({ op, before: x, after: y });
  }
  const fused = opDiff
    .filter((o) => o.before === 0 && (o.op.includes('.') || FUSED_STANDARD.has(o.op)))
    .map((o) => ({ op: o.op, count: o.after }));
  const passes: ModelDiff['passes'] = {};
  const bump = (p: string | undefined, k: 'added' | 'changed') => {
    const key = p ?? '(unstamped)';
    passes[key] ??= { added: 0, changed: 0 };
    passes[key][k]++;
  };
  for (const n of structure.nodes.added) bump(n.pass, 'added');
  for (const n of structure.nodes.changed) if (n.pass) bump(n.pass, 'changed');
  const sortedPasses = Object.fromEntries(Object.entries(passes).sort(([a], [b]) => a.localeCompare(b)));
  const totals = {
    before: totalsOf(before, bl, seq, opts.beforePath),
    after: totalsOf(after, al, seq, opts.afterPath),
  };
  const same =
    layers.every((l) => !l.changed) &&
    structure.nodes.added.length === 0 &&
    structure.nodes.removed.length === 0 &&
    structure.nodes.changed.length === 0 &&
    structure.initializers.added.length === 0 &&
    structure.initializers.removed.length === 0 &&
    structure.initializers.changed.length === 0 &&
    structure.initializers.renamed.length === 0 &&
    graph.length === 0;
  const embeddings = diffEmbeddings(before, after);
  const diff: ModelDiff = {
    schema: DIFF_SCHEMA,
    before: opts.beforePath ? { path: opts.beforePath } : {},
    after: opts.afterPath ? { path: opts.afterPath } : {},
    seq,
    same,
    layers,
    totals,
    ops: opDiff,
    embeddings,
    fused,
    nodes: structure.nodes,
    initializers: structure.initializers,
    graph,
    passes: sortedPasses,
  };
  return { diff, beforeLayers: bl, afterLayers: al, structure };
}

/** Pair embedding tables by shape, in order (word, position, token type...). */
function diffEmbeddings(before: Model, after: Model): ModelDiff['embeddings'] {
  const b = embeddingViews(before);
  const a = embeddingViews(after);
  const used = new Set<number>();
  const out: ModelDiff['embeddings'] = [];
  for (const x of b) {
    const j = a.findIndex((y, i) => !used.has(i) && y.rows === x.rows && y.cols === x.cols);
    if (j >= 0) used.add(j);
    out.push({ name: x.name, rows: x.rows, cols: x.cols, before: x.precision, after: j >= 0 ? a[j]!.precision : null });
  }
  a.forEach((y, i) => {
    if (!used.has(i)) out.push({ name: y.name, rows: y.rows, cols: y.cols, before: null, after: y.precision });
  });
  return out;
}

const FUSED_STANDARD = new Set(['Gelu', 'LayerNormalization', 'Attention', 'RMSNormalization']);

function opCounts(m: Model): Map<string, number> {
  const c = new Map<string, number>();
  for (const n of allNodes(m.graph)) c.set(n.qualifiedOp, (c.get(n.qualifiedOp) ?? 0) + 1);
  return c;
}

const SHAPE_TYPES = new Set([DataType.INT64, DataType.INT32, DataType.BOOL, DataType.STRING]);

function totalsOf(m: Model, layers: LayerView[], seq: number, file?: string): Totals {
  // MatMulNBits packs several weights per byte: count K x N for its B input
  const packed = new Map<unknown, number>();
  for (const n of allNodes(m.graph))
    if (n.opType === 'MatMulNBits' && n.input(1)) packed.set(n.input(1), (n.getInt('K') ?? 0) * (n.getInt('N') ?? 0));
  let parameters = 0;
  for (const v of m.graph.initializers) {
    const t = v.constValue!;
    if (SHAPE_TYPES.has(t.dataType)) continue;
    parameters += packed.get(v) ?? t.numElements;
  }
  let bytes: number;
  if (file && fs.existsSync(file)) bytes = fs.statSync(file).size;
  else bytes = encodedSize(m);
  let nodes = 0;
  for (const _ of allNodes(m.graph)) nodes++;
  return { parameters, bytes, nodes, encoderMacs: layers.reduce((s, l) => s + sideOf(l, seq).macs, 0) };
}

export function sideOf(l: LayerView, seq: number): LayerSide {
  const a = l.attention;
  const f = l.ffn;
  const matrices: Record<string, string> = {};
  let weights = 0;
  let macs = 0;
  const add = (name: string, p: Projection | null | undefined) => {
    if (!p) return;
    matrices[name] = p.precision;
    weights += p.in * p.out;
    macs += seq * p.in * p.out;
  };
  if (a) {
    add('q', a.q);
    add('k', a.k);
    add('v', a.v);
    add('o', a.o);
    // scores and context: H x S x S x d each (dense kernels; top-k keeps the dense products)
    macs += 2 * a.heads * seq * seq * a.headSize;
  }
  if (f) {
    add('ffn.in', f.in);
    add('ffn.out', f.out);
  }
  const kinds = [...new Set(Object.values(matrices))];
  return {
    heads: a?.heads ?? 0,
    headSize: a?.headSize ?? 0,
    ffnSize: f?.size ?? 0,
    attention: a ? a.kind : 'none',
    precision: kinds.length === 1 ? kinds[0]! : kinds.length === 0 ? 'none' : 'mixed',
    matrices,
    weights,
    macs,
  };
}

interface HeadMatch {
  /** after head → before head (or -1). */
  origin: number[];
  exact: boolean;
  /** mean similarity of the matched heads */
  score: number;
}

/** Columns of a [rows, cols] matrix, normalized, for one head: cols [h*d, (h+1)*d). */
function headColumns(m: Float32Array, rows: number, cols: number, h: number, d: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let c = h * d; c < (h + 1) * d; c++) {
    const col = new Float32Array(rows);
    for (let r = 0; r < rows; r++) col[r] = m[r * cols + c]!;
    out.push(col);
  }
  return out;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  if (aa === 0 && bb === 0) return 1;
  if (aa === 0 || bb === 0) return 0;
  return ab / Math.sqrt(aa * bb);
}

function equal(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Which original head each head of the after layer is: compare the after layer's Q, K and V column slices with
 * the before layer's per-head slices. Exact equality first (pruning keeps weights bit for bit), otherwise the mean
 * column cosine (quantized weights: per-column scales do not change a column's direction).
 */
function matchHeads(b: NonNullable<LayerView['attention']>, a: NonNullable<LayerView['attention']>): HeadMatch | null {
  const d = b.headSize;
  if (a.headSize !== d || a.q.in !== b.q.in) return null;
  const D = b.q.in;
  const mats = (x: NonNullable<LayerView['attention']>) => [x.q, x.k, x.v].map((p) => ({ m: p.matrix(), cols: p.out }));
  let bm: { m: Float32Array; cols: number }[];
  let am: { m: Float32Array; cols: number }[];
  try {
    bm = mats(b);
    am = mats(a);
  } catch {
    return null;
  }
  const bCols = bm.map((x) => Array.from({ length: b.heads }, (_, h) => headColumns(x.m, D, x.cols, h, d)));
  const aCols = am.map((x) => Array.from({ length: a.heads }, (_, h) => headColumns(x.m, D, x.cols, h, d)));
  const taken = new Set<number>();
  const origin: number[] = [];
  let exact = true;
  let total = 0;
  for (let j = 0; j < a.heads; j++) {
    // exact first
    let found = -1;
    for (let i = 0; i < b.heads && found < 0; i++) {
      if (taken.has(i)) continue;
      if ([0, 1, 2].every((m) => aCols[m]![j]!.every((col, c) => equal(col, bCols[m]![i]![c]!)))) found = i;
    }
    if (found >= 0) {
      taken.add(found);
      origin.push(found);
      total += 1;
      continue;
    }
    exact = false;
    let best = -1;
    let bestSim = 0.9;
    for (let i = 0; i < b.heads; i++) {
      if (taken.has(i)) continue;
      let s = 0;
      for (let m = 0; m < 3; m++) for (let c = 0; c < d; c++) s += cosine(aCols[m]![j]![c]!, bCols[m]![i]![c]!);
      s /= 3 * d;
      if (s > bestSim) {
        bestSim = s;
        best = i;
      }
    }
    if (best >= 0) {
      taken.add(best);
      total += bestSim;
    }
    origin.push(best);
  }
  return { origin, exact, score: a.heads ? total / a.heads : 1 };
}

/** Whether an after layer's FFN is (a subset of) a before layer's FFN: its first FFN column appears there. */
function ffnSimilar(b: LayerView, a: LayerView): boolean {
  if (!a.ffn || !b.ffn || a.ffn.in.in !== b.ffn.in.in) return false;
  try {
    const D = b.ffn.in.in;
    const am = a.ffn.in.matrix();
    const bm = b.ffn.in.matrix();
    const col0 = headColumns(am, D, a.ffn.in.out, 0, 1)[0]!;
    for (let c = 0; c < b.ffn.in.out; c++)
      if (cosine(col0, headColumns(bm, D, b.ffn.in.out, c, 1)[0]!) > 0.9) return true;
  } catch {
    return false;
  }
  return false;
}

function similar(b: LayerView, a: LayerView): boolean {
  if (a.attention && b.attention) {
    const m = matchHeads(b.attention, a.attention);
    return m !== null && m.origin.some((o) => o >= 0);
  }
  if (!a.attention && a.ffn) return ffnSimilar(b, a);
  return false;
}

function sameSide(x: LayerSide | null, y: LayerSide | null): boolean {
  return JSON.stringify(x) === JSON.stringify(y);
}

function diffLayers(bl: LayerView[], al: LayerView[], seq: number): LayerDiff[] {
  // pair after layers with before layers, in order
  const pairs: [number | null, number | null][] = [];
  if (bl.length === al.length) bl.forEach((_, i) => pairs.push([i, i]));
  else {
    let i = 0;
    for (let j = 0; j < al.length; j++) {
      let k = i;
      while (k < bl.length && !similar(bl[k]!, al[j]!)) k++;
      if (k === bl.length) {
        // no similar before layer: pair in order when there is room, else after-only
        if (i < bl.length && bl.length - i >= al.length - j) k = i;
        else {
          pairs.push([null, j]);
          continue;
        }
      }
      for (; i < k; i++) pairs.push([i, null]);
      pairs.push([k, j]);
      i = k + 1;
    }
    for (; i < bl.length; i++) pairs.push([i, null]);
  }
  return pairs.map(([bi, ai]) => {
    const b = bi !== null ? bl[bi]! : null;
    const a = ai !== null ? al[ai]! : null;
    const before = b ? sideOf(b, seq) : null;
    const after = a ? sideOf(a, seq) : null;
    const removedBlocks: LayerDiff['removedBlocks'] = [];
    if (b?.attention && !a?.attention) removedBlocks.push('attention');
    if (b?.ffn && !a?.ffn) removedBlocks.push('ffn');
    let removedHeads: number[] = [];
    let headOrigin: number[] = [];
    let headMatch: LayerDiff['headMatch'] = 'none';
    if (b?.attention && a?.attention) {
      const m = matchHeads(b.attention, a.attention);
      if (m) {
        headOrigin = m.origin;
        headMatch = m.exact ? 'exact' : 'approximate';
        const kept = new Set(m.origin);
        removedHeads = [...Array(b.attention.heads).keys()].filter((h) => !kept.has(h));
      }
    } else if (b?.attention) removedHeads = [...Array(b.attention.heads).keys()];
    const removedNeurons = Math.max(0, (before?.ffnSize ?? 0) - (after?.ffnSize ?? 0));
    const changed =
      !sameSide(before, after) ||
      removedHeads.length > 0 ||
      removedBlocks.length > 0 ||
      headOrigin.some((o, j) => o !== j);
    return {
      index: bi ?? ai!,
      afterIndex: ai,
      before,
      after,
      removedHeads,
      headOrigin,
      headMatch,
      removedBlocks,
      removedNeurons,
      changed,
    };
  });
}

/** Whether a diff shows no difference at all. */
export function isSame(d: ModelDiff): boolean {
  return d.same;
}

/** The diff as JSON without internal fields, stable key order. */
export function diffJson(d: ModelDiff): string {
  return JSON.stringify(d, null, 2) + '\n';
}

export { diffText, type TextOptions } from './text.js';
