/**
 * `topk-attention`: AxFormer's selective hard attention. In the chosen layers, each query row keeps only its k largest
 * attention probabilities; the others become 0 (AxFormer does not renormalize; `renormalize true` divides the kept
 * probabilities by their sum). k is clamped at run time to the key length (ONNX TopK needs k <= axis length), so the
 * sequence axis stays dynamic, and padding masks keep working: masked keys have probability 0 and are only picked
 * when fewer than k keys are real, which changes nothing.
 *
 * Three formulations:
 * - `dense` (default): TopK on the probabilities, then ScatterElements of the kept values into zeros; the layer's
 *   probs x V MatMul stays as it is.
 * - `gather`: TopK, then GatherElements of the k selected rows of V and a [1, k] x [k, d] MatMul per query row,
 *   replacing the probs x V MatMul (fewer multiply-adds, more data movement);
 * - `threshold`: TopK for the k-th largest value of each row, then Where(probs >= it, probs, 0) (ties at the k-th
 *   value are all kept, so a row may keep more than k when probabilities are exactly equal).
 *
 * Layers come from the plan (`layers 2..3`, `all`, `except`) or from an accuracy-driven search (`search on DATA`):
 * layers are tried one at a time, in order, and kept when the loss on the data drops (or rises by less than
 * `tolerance`), measured in onnxruntime.
 *
 * Dimension letters: B batch, H heads, S query length, T key length, K kept keys (min(k, T)), d head size.
 */
import { AxcError, diag, nodeLoc } from '../src/diagnostics/index.js';
import { Builder, Tensor, type Model, type Node, type Value } from '../src/ir/index.js';
import { serializeModel } from '../src/onnx/index.js';
import {
  locOf,
  registerPass,
  selectLayers,
  type LayerSelector,
  type PassContext,
  type PassDef,
  type PassResult,
} from '../src/pass/index.js';
import type { Dataset } from '../src/verify/data.js';
import { runDataset } from '../src/verify/runner.js';
import { removeNode } from './lib/graph-util.js';

export type Formulation = 'dense' | 'gather' | 'threshold';

export interface TopkAttentionOptions {
  k: number;
  layers?: LayerSelector;
  renormalize?: boolean;
  formulation?: Formulation;
  /** Choose layers by loss on the `on` data instead of taking all selected ones. */
  search?: boolean;
  /** Name of a labelled data source (for the search). */
  on?: string;
  /** Search: accept a layer when the loss rises by less than this (0: only when it drops). */
  tolerance?: number;
}

/** The attention core of one layer: the Softmax over keys and the MatMul that applies the probabilities to V. */
export interface AttentionCore {
  layer: number;
  softmax: Node;
  /** probs_BHST x value_BHTd. */
  contextMatMul: Node;
  probs_BHST: Value;
  value_BHTd: Value;
  /** Already rewritten by this pass. */
  topk?: boolean;
}

export const TOPK_MESSAGES = {
  AX3701: 'a selected layer has no attention core that top-k can rewrite',
  AX3702: 'the model has no attention layer',
  AX3703: 'the search data is not labelled, or the model has no logits output',
  AX3704: 'a layer is already top-k',
  AX3705: 'the opset is too old for TopK with a k input and ReduceSum with an axes input (needs 13)',
  AX3706: 'the search kept or rejected a layer (note with the losses)',
};

const TOPK_STAMP = 'topk-attention';

/** Whether a node was made by this pass (its TopK carries the axc.pass stamp). */
function isStamped(n: Node): boolean {
  return n.metadataProps?.some(([k, v]) => k === 'axc.pass' && v === TOPK_STAMP) ?? false;
}

/**
 * The attention cores of a model, in graph order (= layer order): each Softmax over the last axis whose output is
 * the first input of a MatMul. The recognition used here needs only the core, so it also works on SDPA-style exports
 * and on layers whose projections were rewritten (quantized, pruned).
 */
export function findAttentionCores(model: Model): {
  cores: AttentionCore[];
  declined: { node: Node; reason: string }[];
} {
  const cores: AttentionCore[] = [];
  const declined: { node: Node; reason: string }[] = [];
  for (const n of model.graph) {
    if (n.opType !== 'Softmax' || (n.domain !== '' && n.domain !== 'ai.onnx')) continue;
    const probs = n.output(0);
    const rank = probs.shape?.length ?? n.input(0)?.shape?.length;
    const axis = n.getInt('axis', -1);
    if (!(axis === -1 || (rank !== undefined && axis === rank - 1))) {
      declined.push({ node: n, reason: `Softmax over axis ${axis}, not the key axis (last)` });
      continue;
    }
    if (probs.uses().length > 0 && probs.uses().every((u) => isStamped(u.node))) {
      const done = topkCore(n, cores.length);
      if (done) {
        cores.push(done);
        continue;
      }
    }
    const mms = probs.uses().filter((u) => u.node.opType === 'MatMul' && u.index === 0);
    if (mms.length !== 1 || probs.uses().length !== 1) {
      declined.push({
        node: n,
        reason: `its output is used by ${probs
          .uses()
          .map((u) => u.node.label())
          .join(', ')}, not by exactly one probs x V MatMul`,
      });
      continue;
    }
    const mm = mms[0]!.node;
    const v = mm.input(1);
    if (!v) continue;
    cores.push({ layer: cores.length, softmax: n, contextMatMul: mm, probs_BHST: probs, value_BHTd: v });
  }
  return { cores, declined };
}

/** A core this pass already rewrote: follow the stamped nodes to the MatMul that makes the context. */
function topkCore(softmax: Node, layer: number): AttentionCore | undefined {
  const stamped = new Set<Node>();
  const queue = softmax.output(0).consumers();
  let contextMatMul: Node | undefined;
  while (queue.length) {
    const n = queue.shift()!;
    if (stamped.has(n)) continue;
    if (!isStamped(n)) {
      // dense: the original MatMul(scattered probs, V)
      if (n.opType === 'MatMul' && !contextMatMul) contextMatMul = n;
      continue;
    }
    stamped.add(n);
    for (const o of n.outputs) queue.push(...o.consumers());
  }
  const gather = [...stamped].find((m) => m.opType === 'GatherElements');
  if (gather) {
    // gather: the stamped weighted sum; V is the GatherElements data
    const ws = [...stamped].find((m) => m.opType === 'MatMul');
    const v = gather.input(0);
    if (!ws || !v) return undefined;
    return { layer, softmax, contextMatMul: ws, probs_BHST: softmax.output(0), value_BHTd: v, topk: true };
  }
  const v = contextMatMul?.input(1);
  if (!contextMatMul || !v) return undefined;
  return { layer, softmax, contextMatMul, probs_BHST: softmax.output(0), value_BHTd: v, topk: true };
}

function scopeOf(n: Node): string {
  const i = n.name.lastIndexOf('/');
  return i > 0 ? n.name.slice(0, i) : n.name || 'attention';
}

/** An undo record: what the rewrite of one core changed, so the search can take it back. */
interface Applied {
  core: AttentionCore;
  nodes: Node[];
  initializers: Value[];
  /** The value whose uses were redirected and the value that replaced it. */
  from: Value;
  to: Value;
}

/**
 * Rewrite one attention core. Returns what it added (to undo it), and is careful about opsets: the k input of TopK
 * needs opset 10, ReduceSum's axes input opset 13.
 */
export function applyTopk(
  model: Model,
  core: AttentionCore,
  k: number,
  opts: { renormalize?: boolean; formulation?: Formulation } = {},
): Applied {
  const g = model.graph;
  const scope = `${scopeOf(core.softmax)}/topk`;
  const formulation = opts.formulation ?? 'dense';
  // dense: insert right after the Softmax; gather: right before the context MatMul (V must be computed)
  const anchor = formulation === 'gather' ? core.contextMatMul : core.softmax.next();
  const b = new Builder(g, anchor, TOPK_STAMP);
  const firstBefore = anchor ? anchor.prev() : g.last();
  const initsBefore = g.initializers.length;

  const probs_BHST = core.probs_BHST;
  const shape_4 = b.op1('Shape', [probs_BHST], { name: `${scope}/Shape` });
  const keyLen_1 = b.op1('Gather', [shape_4, b.constInt64(`${scope}/last_axis`, [-1])], {
    name: `${scope}/KeyLength`,
    attrs: { axis: 0 },
  });
  const k_1 = b.op1('Min', [b.constInt64(`${scope}/k`, [k]), keyLen_1], { name: `${scope}/ClampK` });
  const [top_BHSK, idx_BHSK] = b.op('TopK', [probs_BHST, k_1], {
    name: `${scope}/TopK`,
    outputs: 2,
    outputNames: [`${scope}/TopK_values`, `${scope}/TopK_indices`],
    attrs: { axis: -1, largest: 1, sorted: 0 },
  }) as [Value, Value];
  let kept_BHSK = top_BHSK;
  if (opts.renormalize && formulation !== 'threshold') {
    const sum_BHS1 = b.op1('ReduceSum', [top_BHSK, b.constInt64(`${scope}/axes`, [-1])], {
      name: `${scope}/ReduceSum`,
      attrs: { keepdims: 1 },
    });
    kept_BHSK = b.op1('Div', [top_BHSK, sum_BHS1], { name: `${scope}/Renormalize` });
  }

  let from: Value;
  let to: Value;
  if (formulation === 'threshold') {
    // keep every probability >= the k-th largest of its row (ties at the k-th value are all kept)
    const opset = model.opset('') ?? 0;
    const kth_BHS1 =
      opset >= 18
        ? b.op1('ReduceMin', [top_BHSK, b.constInt64(`${scope}/min_axes`, [-1])], {
            name: `${scope}/KthValue`,
            attrs: { keepdims: 1 },
          })
        : b.op1('ReduceMin', [top_BHSK], { name: `${scope}/KthValue`, attrs: { axes: [-1], keepdims: 1 } });
    const keep_BHST = b.op1('GreaterOrEqual', [probs_BHST, kth_BHS1], { name: `${scope}/Keep` });
    to = b.op1('Where', [keep_BHST, probs_BHST, b.scalarFloat(`${scope}/zero`, 0)], { name: `${scope}/Select` });
    if (opts.renormalize) {
      const sum_BHS1 = b.op1('ReduceSum', [to, b.constInt64(`${scope}/axes`, [-1])], {
        name: `${scope}/ReduceSum`,
        attrs: { keepdims: 1 },
      });
      to = b.op1('Div', [to, sum_BHS1], { name: `${scope}/Renormalize` });
    }
    to.type = probs_BHST.type;
    from = probs_BHST;
  } else if (formulation === 'dense') {
    const zeros_BHST = b.op1('ConstantOfShape', [shape_4], {
      name: `${scope}/Zeros`,
      attrs: { value: Tensor.fromFloat32('', [1], [0]) },
    });
    to = b.op1('ScatterElements', [zeros_BHST, idx_BHSK, kept_BHSK], {
      name: `${scope}/ScatterElements`,
      attrs: { axis: -1 },
    });
    to.type = probs_BHST.type;
    from = probs_BHST;
  } else {
    const value_BHTd = core.value_BHTd;
    // indices of the selected key rows, repeated along d: [B, H, S*K, d]
    const idx_BHN1 = b.op1('Reshape', [idx_BHSK, b.constInt64(`${scope}/flat_shape`, [0, 0, -1, 1])], {
      name: `${scope}/FlattenIndices`,
    });
    const vShape_4 = b.op1('Shape', [value_BHTd], { name: `${scope}/ValueShape` });
    const d_1 = b.op1('Gather', [vShape_4, b.constInt64(`${scope}/d_axis`, [-1])], {
      name: `${scope}/HeadSize`,
      attrs: { axis: 0 },
    });
    const one_3 = b.constInt64(`${scope}/ones`, [1, 1, 1]);
    const expandShape_4 = b.op1('Concat', [one_3, d_1], { name: `${scope}/ExpandShape`, attrs: { axis: 0 } });
    const idx_BHNd = b.op1('Expand', [idx_BHN1, expandShape_4], { name: `${scope}/ExpandIndices` });
    const rows_BHNd = b.op1('GatherElements', [value_BHTd, idx_BHNd], {
      name: `${scope}/GatherValues`,
      attrs: { axis: 2 },
    });
    // [B, H, S, K, d]
    const idxShape_4 = b.op1('Shape', [idx_BHSK], { name: `${scope}/IndexShape` });
    const rowsShape_5 = b.op1('Concat', [idxShape_4, d_1], { name: `${scope}/RowsShape`, attrs: { axis: 0 } });
    const rows_BHSKd = b.op1('Reshape', [rows_BHNd, rowsShape_5], { name: `${scope}/RowsPerQuery` });
    const w_BHS1K = b.op1('Unsqueeze', [kept_BHSK, b.constInt64(`${scope}/unsq_axis`, [3])], {
      name: `${scope}/Weights`,
    });
    const ctx_BHS1d = b.op1('MatMul', [w_BHS1K, rows_BHSKd], { name: `${scope}/WeightedSum` });
    to = b.op1('Squeeze', [ctx_BHS1d, b.constInt64(`${scope}/sq_axis`, [3])], { name: `${scope}/Context` });
    to.type = core.contextMatMul.output(0).type;
    from = core.contextMatMul.output(0);
  }
  // collect what was inserted (between firstBefore and anchor)
  const nodes: Node[] = [];
  for (let n = firstBefore ? firstBefore.next() : g.first(); n && n !== anchor; n = n.next()) nodes.push(n);
  const initializers = g.initializers.slice(initsBefore);
  if (!to.type) delete to.type;
  from.replaceAllUsesWith(to);
  reattachInternalUses(nodes, from, to);
  if (formulation === 'gather') {
    // the old probs x V MatMul is now dead
    removeNode(core.contextMatMul);
  }
  return { core, nodes, initializers, from, to };
}

/** replaceAllUsesWith also redirected the new nodes' reads of `from` (no new node reads the final `to`). */
function reattachInternalUses(nodes: readonly Node[], from: Value, to: Value): void {
  for (const n of nodes) n.inputs.forEach((v, i) => v === to && n.replaceInput(i, from));
}

/** Take back a dense or threshold rewrite (gather removed the MatMul and is not undone; the search trials dense). */
function undoTopk(model: Model, a: Applied): void {
  a.to.replaceAllUsesWith(a.from);
  for (const n of [...a.nodes].reverse()) removeNode(n);
  for (const v of a.initializers) if (v.uses().length === 0) model.graph.removeInitializer(v);
}

// --- search ---------------------------------------------------------------------------------------------------------

/** Mean cross-entropy of the first output (logits [N, C]) against the labels. */
async function datasetLoss(
  model: Model,
  data: Dataset,
  threads: number | undefined,
): Promise<{ loss: number; accuracy: number }> {
  const r = await runDataset(serializeModel(model), data, { threads: threads ?? 1 });
  const out = r.outputs.get(r.outputNames[0]!)!;
  let loss = 0;
  let correct = 0;
  data.rows.forEach((row, i) => {
    const a = out.offsets[i]!;
    const e = out.offsets[i + 1]!;
    let max = -Infinity;
    let arg = 0;
    for (let j = a; j < e; j++)
      if (out.data[j]! > max) {
        max = out.data[j]!;
        arg = j - a;
      }
    let sum = 0;
    for (let j = a; j < e; j++) sum += Math.exp(out.data[j]! - max);
    const label = row.label!;
    loss += -(out.data[a + label]! - max - Math.log(sum));
    if (arg === label) correct++;
  });
  return { loss: loss / data.rows.length, accuracy: correct / data.rows.length };
}

// --- the pass -------------------------------------------------------------------------------------------------------

export async function runTopkAttention(ctx: PassContext, o: TopkAttentionOptions): Promise<PassResult> {
  const model = ctx.model;
  const opset = model.opset('') ?? 0;
  if (opset < 13)
    throw new AxcError(
      diag(
        'AX3705',
        'error',
        `topk-attention needs opset 13 or newer; the model imports opset ${opset}`,
        locOf(ctx.span),
      ),
    );
  const k = o.k;
  if (!Number.isInteger(k) || k < 1)
    throw new AxcError(diag('AX3701', 'error', `k must be a whole number of at least 1, got ${k}`, locOf(ctx.span)));
  const { cores, declined } = findAttentionCores(model);
  if (cores.length === 0) {
    const why = declined.map((d) => `${d.node.label()}: ${d.reason}`);
    throw new AxcError(
      diag(
        'AX3702',
        'error',
        'topk-attention found no attention layer (Softmax feeding a probs x V MatMul)',
        locOf(ctx.span),
        why,
      ),
    );
  }
  for (const d of declined)
    ctx.report(
      diag(
        'AX3701',
        'note',
        `not an attention core: ${d.reason}`,
        nodeLoc(d.node.name, d.node.qualifiedOp, model.graph.name),
      ),
    );
  const chosen = selectLayers(o.layers, cores.length);
  if (o.layers && !o.layers.all) {
    for (const l of o.layers.include)
      if (l < 0 || l >= cores.length)
        ctx.report(
          diag(
            'AX3701',
            'warning',
            `layer ${l} does not exist: the model has ${cores.length} attention layers (0..${cores.length - 1})`,
            locOf(ctx.span),
          ),
        );
  }
  const todo: AttentionCore[] = [];
  for (const l of chosen) {
    const core = cores[l]!;
    if (core.topk) {
      ctx.report(
        diag(
          'AX3704',
          'warning',
          `layer ${l} already has top-k attention; left as it is`,
          nodeLoc(core.softmax.name, 'Softmax', model.graph.name),
        ),
      );
      continue;
    }
    todo.push(core);
  }
  const layersDone: number[] = [];
  const formulation = o.formulation ?? 'dense';
  if (o.search) {
    if (!o.on)
      throw new AxcError(
        diag('AX3703', 'error', 'topk-attention search needs labelled data: add `on NAME`', locOf(ctx.span)),
      );
    const data = (await ctx.data.get(o.on)) as Dataset;
    if (!data.labelled)
      throw new AxcError(
        diag(
          'AX3703',
          'error',
          `search data '${o.on}' has no labels; the search needs a labelled data source`,
          locOf(ctx.span),
        ),
      );
    let cur = await datasetLoss(model, data, ctx.threads);
    const decisions: Record<string, unknown>[] = [];
    ctx.details.baseline = { loss: cur.loss, accuracy: cur.accuracy };
    let step = 0;
    for (const core of todo) {
      ctx.progress('search', step++, todo.length);
      // gather removes the probs x V MatMul and cannot be undone: trials use dense (same numbers), redone on accept
      const trialForm = formulation === 'gather' ? 'dense' : formulation;
      const a = applyTopk(model, core, k, { renormalize: o.renormalize, formulation: trialForm });
      const trial = await datasetLoss(model, data, ctx.threads);
      const tol = o.tolerance ?? 0;
      const accept = trial.loss < cur.loss + tol;
      decisions.push({
        layer: core.layer,
        loss: trial.loss,
        accuracy: trial.accuracy,
        before: cur.loss,
        accepted: accept,
      });
      ctx.report(
        diag(
          'AX3706',
          'note',
          `layer ${core.layer}: loss ${cur.loss.toFixed(5)} -> ${trial.loss.toFixed(5)} (accuracy ${(trial.accuracy * 100).toFixed(2)}%): ${accept ? 'top-k kept' : 'rejected'}`,
          nodeLoc(core.softmax.name, 'Softmax', model.graph.name),
        ),
      );
      if (accept) {
        cur = trial;
        if (formulation === 'gather') {
          undoTopk(model, a);
          applyTopk(model, core, k, { renormalize: o.renormalize, formulation });
        }
        layersDone.push(core.layer);
      } else {
        undoTopk(model, a);
      }
    }
    ctx.progress('search', todo.length, todo.length);
    ctx.details.search = decisions;
  } else {
    for (const core of todo) {
      applyTopk(model, core, k, { renormalize: o.renormalize, formulation });
      layersDone.push(core.layer);
    }
  }
  ctx.details.layers = layersDone;
  ctx.details.k = k;
  ctx.details.formulation = formulation;
  return {
    changed: layersDone.length > 0,
    stats: { layersTopk: layersDone.length },
    summary:
      layersDone.length > 0
        ? `top-${k} attention (${formulation}${o.renormalize ? ', renormalized' : ''}) in layers ${layersDone.join(', ')}`
        : 'no layer changed',
  };
}

export const topkAttention: PassDef<TopkAttentionOptions> = {
  name: 'topk-attention',
  summary: "Keep only the k largest attention probabilities of each query row (AxFormer's selective hard attention)",
  options: {
    k: {
      type: 'integer',
      summary: 'Number of keys each query keeps (clamped to the sequence length)',
      min: 1,
      required: true,
    },
    layers: { type: 'layers', summary: 'Layers to rewrite (all by default)' },
    renormalize: { type: 'boolean', summary: 'Divide the kept probabilities by their sum', default: false },
    formulation: {
      type: 'enum',
      summary:
        "'dense': scatter the k values into zeros; 'gather': gather the k value rows; 'threshold': zero what is below the k-th value",
      values: ['dense', 'gather', 'threshold'],
      default: 'dense',
    },
    search: {
      type: 'boolean',
      summary: 'Keep only the layers where top-k lowers the loss on the `on` data',
      default: false,
    },
    on: { type: 'data', summary: 'Labelled data for the search' },
    tolerance: {
      type: 'number',
      summary: 'Search: accept a layer when the loss rises by less than this',
      default: 0,
      min: 0,
    },
  },
  messages: TOPK_MESSAGES,
  run: runTopkAttention,
};

registerPass(topkAttention);
