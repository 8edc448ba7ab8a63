/**
 * `quantize`: int8 / int4 weights for MatMul, Gemm and fused attention, int8 / int4 embedding tables, static int8.
 *
 *   quantize matmul int8 per-channel except layers 0
 *   quantize matmul, gemm, gather int8 per-channel on calib keep-float 2
 *   quantize matmul int4 block-size 32
 *   quantize matmul int8 calibration entropy on calib
 *   quantize matmul int8 qdq target onnx
 *   quantize gather int4 block-size 32
 *
 * Dynamic int8 (default): the weight is stored int8 (per tensor or per output column) and the activation is
 * quantized at run time to uint8, in the form onnxruntime's x86 kernels run fastest (measured by
 * bench/quant-forms.ts, DEFAULT_ORT_FORM) or QDQ for other runtimes. int4: weight-only com.microsoft MatMulNBits.
 * gather: the table becomes int8 rows with a per-row scale (Gather on both, then Cast and Mul), 4x smaller; with
 * `int4`, 4-bit codes in blocks of `block-size` along each row with a float scale per block (and 4-bit zero points
 * when not symmetric), 6.4x smaller at block 32: com.microsoft GatherBlockQuantized for onnxruntime, or for target
 * onnx standard ops (Gather the packed bytes, unpack through a 256 x 2 lookup table, scale per block).
 * com.microsoft Attention (from `fuse attention`) counts as a matmul: its fused QKV weight [D, 3*H*d] is stored int8
 * (per column or per tensor) and the node becomes DynamicQuantizeLinear + com.microsoft QAttention (QuantizeLinear with
 * the calibrated range under static calibration); int4 and target onnx leave it float with a reason.
 * Static int8 (`calibration minmax|percentile|entropy on DATA`): QuantizeLinear/DequantizeLinear on activations with
 * ranges calibrated on the data, and on weights; onnxruntime turns it into integer kernels.
 *
 * Mixed precision: `keep-float N` (or 25%) keeps the N most significant matrices in float: by the 'significance'
 * fact when an earlier step provided it, otherwise by the measured quantization error.
 * Every quantized matrix gets a row in ctx.details.matrices: how much quantizing it alone moves its output on the
 * data (relative L2), or its weight when no data was given.
 *
 * Dimension letters: K input features, N output features, M activation rows, V vocabulary rows, D embedding width.
 * Codes: AX3301 candidate declined (warning), AX3302 nothing quantized (warning), AX3303 bad option combination
 * (error), AX3304 calibration data problem (error), AX3305 the matrix that quantization hurts most (note).
 */
import { AxcError, diag, nodeLoc } from '../src/diagnostics/index.js';
import { Builder, DataType, Tensor, type Graph, type Model, type Node, type Value } from '../src/ir/index.js';
import { registerPass } from '../src/pass/registry.js';
import {
  locOf,
  selectLayers,
  type NamedItem,
  type PassContext,
  type PassDef,
  type PassResult,
} from '../src/pass/types.js';
import { analyzeLayers, projections, type LayerAnalysis } from './analysis/layers.js';
import { layersFact } from './analysis/analyze-layers.js';
import { qAttentionDecline, rewriteQAttention } from './lib/attention-fusion.js';
import { isConstInitializer } from './lib/graph-util.js';
import {
  DEFAULT_ORT_FORM,
  INT8_FORMS,
  dequantizeInt8,
  dequantizeNBits,
  emitInt8MatMul,
  emitMatMulNBits,
  fakeQuantDynamicU8,
  matmul,
  quantWeightValues,
  quantizeInt8,
  quantizeNBits,
  dequantizeRows4,
  emitRows4Gather,
  quantizeRows,
  quantizeRows4,
  relL2,
  weightKN,
  type Int8Form,
  type QuantWeightValues,
  type Rows4,
  type Rows4Form,
} from './lib/quant.js';
import { calibrate, calibrationFeeds, captureValues, fakeQuantU8, u8Params } from './lib/quant-calib.js';
import type {
  MatrixReport,
  MatrixRole,
  QuantMode,
  QuantTarget,
  QuantizeOptions,
  SignificanceView,
} from './lib/quant-types.js';

const STAMP = 'quantize';
/** Activation rows (tokens) used per matrix for the error report: enough for a stable figure, cheap in JS. */
const ERROR_ROWS = 256;

interface Place {
  layer?: number;
  role: MatrixRole;
}

/**
 * Where each weight-bearing node sits: layer index and role, from the layer analysis (the 'layers' fact, or
 * analyzeLayers when no earlier step provided it). Nodes the analysis does not place fall back to their exporter
 * name (`.../layer.3/...`).
 */
function placeNodes(model: Model, ctx: PassContext): { places: Map<Node, Place>; layerCount: number } {
  const places = new Map<Node, Place>();
  let a: LayerAnalysis | undefined = layersFact(ctx);
  if (!a) {
    try {
      a = analyzeLayers(model);
    } catch {
      a = undefined;
    }
  }
  let layerCount = 0;
  if (a) {
    layerCount = a.layers.length;
    for (const l of a.layers) {
      const p = projections(l);
      for (const role of ['q', 'k', 'v', 'o', 'up', 'down'] as const) {
        const lin = p[role];
        if (!lin) continue;
        if (lin.form === 'fused-qkv') places.set(lin.matmul, { layer: l.index, role: 'qkv' });
        else places.set(lin.matmul, { layer: l.index, role });
      }
    }
    if (a.head?.pooler) places.set(a.head.pooler.matmul, { role: 'pooler' });
    if (a.head?.classifier) places.set(a.head.classifier.matmul, { role: 'classifier' });
    for (const e of [a.embeddings?.word, a.embeddings?.position, a.embeddings?.tokenType])
      if (e) places.set(e.gather, { role: 'embedding' });
  }
  // fallback: exporter names
  for (const n of model.graph) {
    if (places.has(n)) continue;
    const m = /layer[._/](\d+)[._/]/.exec(n.name);
    if (m) {
      const i = Number(m[1]);
      places.set(n, { layer: i, role: 'other' });
      layerCount = Math.max(layerCount, i + 1);
    }
  }
  return { places, layerCount };
}

interface Candidate {
  node: Node;
  /** attention: a com.microsoft Attention node; its weight is the fused QKV weight [D, 3*H*d]. */
  kind: 'matmul' | 'gemm' | 'gather' | 'attention';
  weight: Value;
  /** Gemm transB=1: the weight is W_NK. */
  transposed: boolean;
  x: Value;
  bias: Value | null;
  place: Place;
}

function names(v: (NamedItem | string)[] | undefined): string[] {
  return (v ?? []).map((x) => (typeof x === 'string' ? x : x.name));
}

/** Quantizable nodes, or a reason why a node that looked like one is not. */
function findCandidates(
  g: Graph,
  ops: Set<string>,
  places: Map<Node, Place>,
  declines: { node: Node; reason: string }[],
  mode: QuantMode,
  target: QuantTarget,
): Candidate[] {
  const out: Candidate[] = [];
  for (const n of g) {
    if (n.domain === 'com.microsoft' && n.opType === 'Attention' && ops.has('matmul')) {
      const why =
        mode === 'int4'
          ? 'int4: the fused Q/K/V weight has no 4-bit attention kernel (QAttention is int8); it stays float (add an int8 step: `quantize matmul int8`)'
          : target === 'onnx'
            ? 'target onnx: QAttention is a com.microsoft op; the fused Q/K/V weight stays float'
            : qAttentionDecline(n);
      if (why) declines.push({ node: n, reason: why });
      else
        out.push({
          node: n,
          kind: 'attention',
          weight: n.input(1)!,
          transposed: false,
          x: n.input(0)!,
          bias: null,
          place: places.get(n) ?? { role: 'qkv' },
        });
      continue;
    }
    if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
    const place = places.get(n) ?? { role: 'other' as const };
    if (n.opType === 'MatMul' && ops.has('matmul')) {
      const w = n.input(1);
      const x = n.input(0);
      if (!w || !x || !isConstInitializer(w)) continue; // activation x activation (attention scores): not a weight
      if (w.constValue!.dims.length !== 2) {
        declines.push({ node: n, reason: `its weight '${w.name}' has rank ${w.constValue!.dims.length}, not 2` });
        continue;
      }
      if (w.constValue!.dataType !== DataType.FLOAT) {
        declines.push({ node: n, reason: `its weight '${w.name}' is not float32` });
        continue;
      }
      out.push({ node: n, kind: 'matmul', weight: w, transposed: false, x, bias: null, place });
    } else if (n.opType === 'Gemm' && ops.has('gemm')) {
      const [x, w, c] = [n.input(0), n.input(1), n.input(2)];
      if (!x || !w || !isConstInitializer(w) || w.constValue!.dims.length !== 2) continue;
      const why =
        n.getInt('transA', 0) !== 0
          ? 'it transposes its input (transA=1)'
          : n.getFloat('alpha', 1) !== 1
            ? `alpha is ${n.getFloat('alpha', 1)}, not 1`
            : c && n.getFloat('beta', 1) !== 1
              ? `beta is ${n.getFloat('beta', 1)}, not 1`
              : c && !(isConstInitializer(c) && c.constValue!.dims.length === 1)
                ? `its bias '${c.name}' is not a constant vector`
                : w.constValue!.dataType !== DataType.FLOAT
                  ? `its weight '${w.name}' is not float32`
                  : undefined;
      if (why) {
        declines.push({ node: n, reason: why });
        continue;
      }
      out.push({ node: n, kind: 'gemm', weight: w, transposed: n.getInt('transB', 0) === 1, x, bias: c, place });
    } else if (n.opType === 'Gather' && ops.has('gather')) {
      const [t, ids] = [n.input(0), n.input(1)];
      if (!t || !ids || !isConstInitializer(t) || t.constValue!.dims.length !== 2) continue;
      if (n.getInt('axis', 0) !== 0) {
        declines.push({ node: n, reason: 'it gathers along axis 1, not rows' });
        continue;
      }
      if (t.constValue!.dataType !== DataType.FLOAT) continue;
      out.push({ node: n, kind: 'gather', weight: t, transposed: false, x: ids, bias: null, place });
    }
  }
  return out;
}

/** Score of a matrix from the significance fact (larger = more important), if the fact has one for it. */
function significanceOf(sig: SignificanceView | undefined, p: Place): number | undefined {
  if (!sig || p.layer === undefined) return undefined;
  const l = sig.layers.find((x) => x.layer === p.layer);
  if (!l) return undefined;
  const attention = ['q', 'k', 'v', 'qkv', 'o'].includes(p.role);
  const ffn = p.role === 'up' || p.role === 'down';
  if (attention) return l.attention?.score ?? l.headScores?.reduce((a, s) => a + s.score, 0);
  if (ffn) return l.ffn?.score ?? l.groupScores?.reduce((a, s) => a + s.score, 0);
  return undefined;
}

function significanceFact(ctx: PassContext): SignificanceView | undefined {
  const f = ctx.facts.get('significance');
  return f && typeof f === 'object' && Array.isArray((f as SignificanceView).layers)
    ? (f as SignificanceView)
    : undefined;
}

/** Replace a node's (first) output by `v`, remove the node, and give `v` the old name. */
function replaceNode(g: Graph, node: Node, v: Value): void {
  const old = node.output(0);
  const name = old.name;
  if (old.type && !v.type) v.type = old.type;
  old.replaceAllUsesWith(v);
  g.remove(node);
  v.name = name;
  g.valueInfo = g.valueInfo.filter((x) => x.graph === g);
}

function dropIfUnused(g: Graph, w: Value): void {
  if (w.uses().length === 0 && !w.isGraphOutput() && !w.isGraphInput()) g.removeInitializer(w);
}

function bytesOf(vs: Value[]): number {
  return vs.reduce((a, v) => a + (v.constValue?.byteLength ?? 0), 0);
}

function sampleRows(x: Float32Array, K: number, rows: number): { x_MK: Float32Array; M: number } {
  const total = Math.floor(x.length / K);
  const M = Math.min(total, rows);
  const stride = total / M;
  const x_MK = new Float32Array(M * K);
  for (let m = 0; m < M; m++) x_MK.set(x.subarray(Math.floor(m * stride) * K, (Math.floor(m * stride) + 1) * K), m * K);
  return { x_MK, M };
}

export async function runQuantize(ctx: PassContext, opts: QuantizeOptions): Promise<PassResult> {
  const model = ctx.model;
  const g = model.graph;
  const where = locOf(ctx.span);
  const mode = opts.mode ?? 'int8';
  const perChannel = (opts.granularity ?? 'per-channel') === 'per-channel';
  const target = opts.target ?? 'onnxruntime';
  const calibration = opts.calibration ?? 'none';
  const blockSize = opts['block-size'] ?? 32;
  const rowsWanted = opts.rows ?? 64;
  const ops = new Set(names(opts.ops).map((s) => s.toLowerCase()));
  if (ops.size === 0) for (const s of ['matmul', 'gemm']) ops.add(s);
  const exceptOps = names(opts['except-ops']);
  let form: Int8Form = opts.form && opts.form !== 'auto' ? opts.form : target === 'onnx' ? 'qdq' : DEFAULT_ORT_FORM;
  /**
   * int4 embedding tables: standard ops that unpack the nibbles (the default for both targets: measured faster in
   * onnxruntime than its one-node com.microsoft GatherBlockQuantized, 0.35 against 0.65 ms a run on sst2-bert-mini),
   * or GatherBlockQuantized on request.
   */
  const rows4Form: Rows4Form = opts['table-form'] === 'gather-block-quantized' ? 'gather-block-quantized' : 'nibbles';
  if (rows4Form === 'gather-block-quantized' && target === 'onnx')
    throw new AxcError(
      diag(
        'AX3303',
        'error',
        'table-form gather-block-quantized is a com.microsoft op; target onnx allows nibbles',
        where,
      ),
    );

  // option combinations
  const int4Matrices = mode === 'int4' && (ops.has('matmul') || ops.has('gemm'));
  if ((int4Matrices && target === 'onnx') || (mode === 'int4' && calibration !== 'none'))
    throw new AxcError(
      diag(
        'AX3303',
        'error',
        calibration === 'none'
          ? 'int4 MatMul/Gemm use com.microsoft MatMulNBits, which target onnx (standard ops only) does not allow (int4 embedding tables alone can: `quantize gather int4 target onnx`)'
          : 'int4 is weight-only; calibration applies to static int8 only',
        where,
      ),
    );
  if (mode === 'int4' && (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0))
    throw new AxcError(diag('AX3303', 'error', `block-size ${blockSize} is not a power of 2 of at least 16`, where));
  if (target === 'onnx' && form !== 'qdq' && form !== 'matmul-integer')
    throw new AxcError(
      diag('AX3303', 'error', `form ${form} is a com.microsoft op; target onnx allows matmul-integer or qdq`, where),
    );
  if (calibration !== 'none') {
    if (!opts.on)
      throw new AxcError(
        diag('AX3304', 'error', `calibration ${calibration} needs data: add 'on NAME' (a declared data source)`, where),
      );
    form = 'qdq';
  }

  const { places, layerCount } = placeNodes(model, ctx);
  const declines: { node: Node; reason: string }[] = [];
  const cands = findCandidates(g, ops, places, declines, mode, target).filter((c) => {
    if (c.kind !== 'gather' || mode !== 'int4') return true;
    const D = c.weight.constValue!.dims[1]!;
    const why =
      D % 2 !== 0
        ? `int4: its table width ${D} is odd (two 4-bit codes a byte)`
        : rows4Form === 'nibbles' && D % blockSize !== 0
          ? `int4 (table-form nibbles): its table width ${D} is not a multiple of block-size ${blockSize}`
          : undefined;
    if (why) declines.push({ node: c.node, reason: why });
    return !why;
  });
  const selected = new Set(selectLayers(opts.layers, layerCount));
  const explicitLayers = !!opts.layers && !opts.layers.all && opts.layers.include.length > 0;
  const reports = new Map<Candidate, MatrixReport>();

  // which candidates are excluded by the plan
  const kept = new Map<Candidate, string>();
  for (const c of cands) {
    if (exceptOps.some((e) => e.toLowerCase() === c.node.opType.toLowerCase() || e === c.node.name))
      kept.set(c, 'except ops');
    else if (c.place.layer !== undefined && !selected.has(c.place.layer)) kept.set(c, `except layer ${c.place.layer}`);
    else if (c.place.layer === undefined && explicitLayers && c.kind !== 'gather')
      kept.set(c, 'outside the selected layers');
  }

  // quantize in JS (for the error report and the rewrite)
  interface Prepared {
    kind: 'int8' | 'int4' | 'rows' | 'rows4';
    K: number;
    N: number;
    w_KN: Float32Array;
    deq_KN: Float32Array;
    int8?: ReturnType<typeof quantizeInt8>;
    int4?: ReturnType<typeof quantizeNBits>;
    rows?: ReturnType<typeof quantizeRows>;
    rows4?: Rows4;
  }
  const prepared = new Map<Candidate, Prepared>();
  for (const c of cands) {
    if (c.kind === 'gather' && mode === 'int4') {
      const t = c.weight.constValue!;
      const [V, D] = t.dims as [number, number];
      const f = t.toFloat32();
      const q4 = quantizeRows4(f, V, D, blockSize, opts.symmetric ?? true);
      prepared.set(c, { kind: 'rows4', K: V, N: D, w_KN: f, deq_KN: dequantizeRows4(q4), rows4: q4 });
      continue;
    }
    if (c.kind === 'gather') {
      const t = c.weight.constValue!;
      const [V, D] = t.dims as [number, number];
      const f = t.toFloat32();
      const rq = quantizeRows(f, V, D);
      const deq = new Float32Array(V * D);
      for (let v = 0; v < V; v++) for (let d = 0; d < D; d++) deq[v * D + d] = rq.q_VD[v * D + d]! * rq.scale_V1[v]!;
      prepared.set(c, { kind: 'rows', K: V, N: D, w_KN: f, deq_KN: deq, rows: rq });
      continue;
    }
    const { w_KN, K, N } = weightKN(c.weight.constValue!, c.transposed);
    if (mode === 'int4') {
      const q4 = quantizeNBits(w_KN, K, N, blockSize, opts.symmetric ?? true);
      prepared.set(c, { kind: 'int4', K, N, w_KN, deq_KN: dequantizeNBits(q4), int4: q4 });
    } else {
      // QAttention: int8 weights (symmetric), whatever the mode says for MatMuls
      const q8 = quantizeInt8(w_KN, K, N, perChannel, mode === 'int8' || c.kind === 'attention');
      prepared.set(c, { kind: 'int8', K, N, w_KN, deq_KN: dequantizeInt8(q8), int8: q8 });
    }
  }

  // activations: for the error report, and for static calibration
  const matmuls = cands.filter((c) => c.kind !== 'gather');
  let acts = new Map<Value, Float32Array>();
  if (opts.on && matmuls.length) {
    const batches = await calibrationFeeds(ctx, opts.on, rowsWanted, where);
    ctx.progress('running the float model on calibration data', 0, 1);
    acts = await captureValues(model, [...new Set(matmuls.map((c) => c.x))], batches, ctx.threads ?? 1);
    ctx.progress('running the float model on calibration data', 1, 1);
  }
  const ranges = new Map<Value, { scale: number; zeroPoint: number }>();
  if (calibration !== 'none')
    for (const [v, x] of acts) ranges.set(v, u8Params(calibrate(x, calibration, opts.percentile ?? 99.99)));

  for (const c of cands) {
    const p = prepared.get(c)!;
    const x = acts.get(c.x);
    let relError: number;
    let errorOf: 'output' | 'weight' = 'weight';
    if (x && c.kind !== 'gather' && x.length >= p.K) {
      const { x_MK, M } = sampleRows(x, p.K, ERROR_ROWS);
      const y = matmul(x_MK, p.w_KN, M, p.K, p.N);
      const r = ranges.get(c.x);
      const xq = p.kind === 'int4' ? x_MK : r ? fakeQuantU8(x_MK, r.scale, r.zeroPoint) : fakeQuantDynamicU8(x_MK);
      relError = relL2(y, matmul(xq, p.deq_KN, M, p.K, p.N));
      errorOf = 'output';
    } else relError = relL2(p.w_KN, p.deq_KN);
    reports.set(c, {
      node: c.node.name,
      op: c.node.opType,
      ...(c.place.layer !== undefined ? { layer: c.place.layer } : {}),
      role: c.kind === 'gather' ? 'embedding' : c.kind === 'attention' ? 'qkv' : c.place.role,
      shape: [p.K, p.N],
      form:
        c.kind === 'gather'
          ? mode === 'int4'
            ? `int4-rows (${rows4Form})`
            : 'int8-rows'
          : c.kind === 'attention'
            ? calibration !== 'none'
              ? 'static-qattention'
              : 'qattention'
            : mode === 'int4'
              ? 'matmul-nbits'
              : calibration !== 'none'
                ? 'static-qdq'
                : form,
      relError: Number(relError.toPrecision(4)),
      errorOf,
      bytesBefore: c.weight.constValue!.byteLength,
      bytesAfter: c.weight.constValue!.byteLength,
    });
  }

  // mixed precision: keep the most significant (or most error-prone) matrices in float
  const keepFloat = opts['keep-float'];
  let keptBy: string | undefined;
  if (keepFloat !== undefined && keepFloat > 0) {
    const pool = matmuls.filter((c) => !kept.has(c));
    const count = Math.min(pool.length, keepFloat >= 1 ? Math.round(keepFloat) : Math.ceil(keepFloat * pool.length));
    const sig = significanceFact(ctx);
    const scored = pool.map((c) => ({ c, s: significanceOf(sig, c.place) }));
    const bySig = sig && scored.some((e) => e.s !== undefined);
    keptBy = bySig ? 'significance' : `quantization error (${reports.get(pool[0]!)?.errorOf ?? 'weight'})`;
    const ranked = scored
      .map((e, i) => ({ ...e, i, err: reports.get(e.c)!.relError }))
      .sort((a, b) => (bySig ? (b.s ?? -Infinity) - (a.s ?? -Infinity) || a.i - b.i : b.err - a.err || a.i - b.i));
    for (const e of ranked.slice(0, count)) kept.set(e.c, `keep-float (most significant by ${keptBy})`);
  }

  for (const [c, why] of kept) {
    const r = reports.get(c)!;
    r.form = 'float';
    r.kept = why;
  }

  // rewrite
  let changed = false;
  const stats: Record<string, number> = { matricesQuantized: 0, keptFloat: kept.size, bytesBefore: 0, bytesAfter: 0 };
  const weightCache = new Map<Value, QuantWeightValues>();
  const actCache = new Map<Value, Value>();
  const staticParams = new Map<Value, { scale: Value; zeroPoint: Value }>();
  /** The calibrated scale and zero point of activation `x` as initializers (made once; new ones go to `made`). */
  const staticParamsOf = (b: Builder, x: Value, made: Value[]): { scale: Value; zeroPoint: Value } => {
    let sp = staticParams.get(x);
    if (sp) return sp;
    const r = ranges.get(x);
    if (!r) throw new Error(`no calibrated range for '${x.name}'`);
    const scale = b.scalarFloat(`${x.name}_scale`, r.scale);
    const zeroPoint = b.initializer(
      `${x.name}_zero_point`,
      Tensor.fromUint8(`${x.name}_zero_point`, [], Uint8Array.of(r.zeroPoint)),
    );
    made.push(scale, zeroPoint);
    sp = { scale, zeroPoint };
    staticParams.set(x, sp);
    return sp;
  };
  for (const c of cands) {
    if (kept.has(c)) continue;
    const p = prepared.get(c)!;
    const n = c.node;
    const b = new Builder(g, n, STAMP);
    const base = c.weight.name;
    // the node's input now: an earlier rewrite may have replaced the value c.x (QAttention feeding the output
    // projection); c.x stays the key of the captured activations and calibrated ranges
    const x = n.input(c.kind === 'gather' ? 1 : 0)!;
    let y: Value | undefined;
    let newWeights: Value[] = [];
    if (c.kind === 'attention') {
      const staticInput = calibration !== 'none' ? staticParamsOf(b, c.x, newWeights) : undefined;
      const { weights: w } = rewriteQAttention(model, n, p.int8!, {
        stamp: STAMP,
        ...(staticInput ? { staticInput } : {}),
      });
      newWeights.push(w.q_KN, w.scale, w.zeroPoint);
      if (!model.opsetImports.has('com.microsoft')) model.opsetImports.set('com.microsoft', 1);
    } else if (p.kind === 'rows4') {
      const r4 = emitRows4Gather(b, rows4Form, x, p.rows4!, base, n.name);
      y = r4.y;
      newWeights = r4.weights;
      if (rows4Form === 'gather-block-quantized' && !model.opsetImports.has('com.microsoft'))
        model.opsetImports.set('com.microsoft', 1);
    } else if (p.kind === 'rows') {
      const rq = p.rows!;
      const tq = b.initializer(
        `${base}_int8`,
        Tensor.fromUint8(`${base}_int8`, [rq.V, rq.D], new Uint8Array(rq.q_VD.buffer), DataType.INT8),
      );
      const ts = b.initializer(`${base}_scale`, Tensor.fromFloat32(`${base}_scale`, [rq.V, 1], rq.scale_V1));
      newWeights = [tq, ts];
      const rows_q = b.op1('Gather', [tq, x], { name: `${n.name}/Gather_int8` });
      const scale_1 = b.op1('Gather', [ts, x], { name: `${n.name}/Gather_scale` });
      const rows_f = b.op1('Cast', [rows_q], { name: `${n.name}/Cast`, attrs: { to: DataType.FLOAT } });
      y = b.op1('Mul', [rows_f, scale_1], { name: `${n.name}/dequantize` });
    } else if (p.kind === 'int4') {
      const q4 = p.int4!;
      const before = g.initializers.length;
      y = emitMatMulNBits(b, x, q4, `${n.name}/${base}`, null);
      newWeights = g.initializers.slice(before);
      if (c.bias) y = b.op1('Add', [y, c.bias], { name: `${n.name}/bias` });
      if (!model.opsetImports.has('com.microsoft')) model.opsetImports.set('com.microsoft', 1);
    } else {
      let w = weightCache.get(c.weight);
      if (!w) {
        w = quantWeightValues(b, base, p.int8!);
        weightCache.set(c.weight, w);
        newWeights = [w.q_KN, w.scale, w.zeroPoint];
      }
      if (calibration !== 'none') {
        let xdq = actCache.get(c.x);
        if (!xdq) {
          const { scale: s, zeroPoint: z } = staticParamsOf(b, c.x, newWeights);
          const xq = b.op1('QuantizeLinear', [x, s, z], { name: `${n.name}/QuantizeLinear` });
          xdq = b.op1('DequantizeLinear', [xq, s, z], { name: `${n.name}/DequantizeLinear_x` });
          actCache.set(c.x, xdq);
        }
        y = emitInt8MatMul(b, 'qdq', xdq, w, n.name, c.bias);
      } else {
        const f = form;
        y = emitInt8MatMul(b, f, x, w, n.name, c.bias);
        if (f !== 'qdq' && f !== 'matmul-integer' && !model.opsetImports.has('com.microsoft'))
          model.opsetImports.set('com.microsoft', 1);
      }
    }
    if (y) replaceNode(g, n, y);
    const r = reports.get(c)!;
    r.bytesAfter = bytesOf(newWeights);
    stats.bytesBefore! += r.bytesBefore;
    stats.bytesAfter! += r.bytesAfter;
    dropIfUnused(g, c.weight);
    if (c.bias) dropIfUnused(g, c.bias);
    stats.matricesQuantized!++;
    changed = true;
  }

  // messages
  for (const d of declines)
    ctx.report(
      diag(
        'AX3301',
        'warning',
        `did not quantize '${d.node.name}' (${d.node.opType}): ${d.reason}`,
        nodeLoc(d.node.name, d.node.opType),
      ),
    );
  if (!changed) {
    const why =
      cands.length === 0
        ? `no ${[...ops].join('/')} node has a constant rank-2 float weight`
        : `every candidate was kept in float (${[...new Set(kept.values())].join('; ')})`;
    ctx.report(diag('AX3302', 'warning', `quantize changed nothing: ${why}`, where));
  }
  const list = cands.map((c) => reports.get(c)!);
  const worst = list.filter((r) => r.form !== 'float').sort((a, b) => b.relError - a.relError)[0];
  if (worst)
    ctx.report(
      diag(
        'AX3305',
        'note',
        `quantizing '${worst.node}'${worst.layer !== undefined ? ` (layer ${worst.layer}, ${worst.role})` : ''} moves its ${worst.errorOf} most: relative L2 error ${worst.relError}`,
        nodeLoc(worst.node, worst.op),
        ['see details.matrices for every matrix; exclude a layer with `except layers N`'],
      ),
    );
  ctx.details.matrices = list;
  const matrixForm =
    mode === 'int4' ? 'matmul-nbits' : calibration !== 'none' ? `static-qdq (${calibration})` : (form as string);
  const attentionForm = cands.some((c) => c.kind === 'attention' && !kept.has(c))
    ? ` + ${calibration !== 'none' ? 'static-' : ''}qattention`
    : '';
  const tableForm = mode === 'int4' ? `int4-rows (${rows4Form})` : 'int8-rows';
  const anyMatrices = ops.has('matmul') || ops.has('gemm');
  ctx.details.form = [
    ...(anyMatrices ? [matrixForm + attentionForm] : []),
    ...(ops.has('gather') ? [tableForm] : []),
  ].join(' + ');
  if (keptBy) ctx.details.keptFloatBy = keptBy;
  const mb = (x: number) => (x / 1e6).toFixed(2);
  return {
    changed,
    stats,
    summary: `quantized ${stats.matricesQuantized} matrices (${ctx.details.form as string}), kept ${kept.size} in float, weights ${mb(stats.bytesBefore!)} MB → ${mb(stats.bytesAfter!)} MB`,
  };
}

export const quantizePass: PassDef<QuantizeOptions> = {
  name: 'quantize',
  summary: 'int8/int4 weights for MatMul, Gemm and fused Attention, int8/int4 embedding tables, static int8',
  positional: 'ops',
  options: {
    ops: {
      type: 'names',
      summary: 'what to quantize: matmul (with fused Attention), gemm (rank-2 weights), gather (embedding tables)',
      values: ['matmul', 'gemm', 'gather'],
      default: [{ name: 'matmul' }, { name: 'gemm' }],
    },
    mode: { type: 'enum', summary: 'weight precision', values: ['int8', 'uint8', 'int4'], default: 'int8' },
    granularity: {
      type: 'enum',
      summary: 'one scale per tensor or per output channel',
      values: ['per-tensor', 'per-channel'],
      default: 'per-channel',
    },
    form: {
      type: 'enum',
      summary: 'int8 graph form (auto: fastest measured for onnxruntime, qdq for onnx)',
      values: ['auto', ...INT8_FORMS],
      default: 'auto',
    },
    'table-form': {
      type: 'enum',
      summary:
        'int4 embedding-table form: nibbles (standard ops, fastest measured in onnxruntime too) or com.microsoft gather-block-quantized (one node)',
      values: ['auto', 'nibbles', 'gather-block-quantized'],
      default: 'auto',
    },
    target: {
      type: 'enum',
      summary: 'runtime: onnx (standard ops only) or onnxruntime',
      values: ['onnx', 'onnxruntime'],
      default: 'onnxruntime',
    },
    layers: { type: 'layers', summary: 'layers to quantize (default all; `except layers N` leaves N in float)' },
    'except-ops': { type: 'names', summary: 'op types (MatMul, Gemm, Gather) or node names left in float' },
    'block-size': {
      type: 'integer',
      summary: 'int4 block size (power of 2): along K for matrices, along each row for tables',
      min: 16,
      default: 32,
    },
    symmetric: { type: 'boolean', summary: 'int4: symmetric blocks (no zero points)', default: true },
    'keep-float': {
      type: 'number',
      summary: 'matrices kept in float, most significant first: a count or a percent',
      percent: true,
      min: 0,
    },
    calibration: {
      type: 'enum',
      summary: 'static int8 activation ranges from data (none: dynamic quantization)',
      values: ['none', 'minmax', 'percentile', 'entropy'],
      default: 'none',
    },
    on: { type: 'data', summary: 'data for calibration and the per-matrix error report' },
    rows: { type: 'integer', summary: 'rows of the data used', min: 1, default: 64 },
    percentile: { type: 'number', summary: 'percentile for calibration percentile', min: 50, max: 100, default: 99.99 },
  },
  messages: {
    AX3301: 'a candidate node was not quantized; the message says why',
    AX3302: 'quantize changed nothing',
    AX3303: 'an option combination that cannot be honoured',
    AX3304: 'calibration data missing or empty',
    AX3305: 'the matrix whose output quantization moves most',
  },
  run: runQuantize,
};

registerPass(quantizePass);
