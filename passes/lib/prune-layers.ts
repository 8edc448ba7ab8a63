import { AxcError, diag, nodeLoc, type Diagnostic } from '../../src/diagnostics/index.js';
import type { Model, Node, Value } from '../../src/ir/index.js';
import { analyzeLayers, type AttentionInfo, type FfnInfo, type Linear as AnalysisLinear } from '../analysis/layers.js';
import type { Linear, PruneAttention, PruneFfn, PruneLayer } from './prune-types.js';

/**
 * The structural view pruning needs (projections as weight Values, residual Adds, head count and size), read off
 * the shared layer analysis (passes/analysis/layers.ts `analyzeLayers`): every pass that needs transformer layers
 * recognizes them the same way. Layers are numbered in residual-stream order, counting the partial layers an earlier
 * prune left.
 *
 * Dimension letters: B batch, S sequence, D hidden, H heads, d head size, F FFN size.
 */

/** Why a part of a layer was not recognized, naming the node where recognition stopped. */
export interface LayerDecline {
  node: string;
  op: string;
  reason: string;
}

export interface RecognizedLayers {
  layers: PruneLayer[];
  declines: LayerDecline[];
}

/**
 * Pruning's view of every encoder layer, from the shared analysis (`analyzeLayers`): complete layers and the partial
 * ones an earlier prune left, in residual-stream order. What pruning cannot edit is declined, naming the node: a
 * residual fused into SkipLayerNormalization or a bias fused into BiasGelu (`decompose` first), Gemm or transposed
 * weights, quantized projections, top-k attention, MultiHeadAttention.
 */
export function recognizeLayers(model: Model): RecognizedLayers {
  const a = analyzeLayers(model);
  const declines: LayerDecline[] = a.unrecognized.map((u) => ({ node: u.node, op: u.op, reason: u.reason }));
  const decl = (n: Node, reason: string) => declines.push({ node: n.name, op: n.qualifiedOp, reason });
  const linear = (l: AnalysisLinear, what: string): Linear | undefined => {
    if (l.quant)
      return void decl(l.matmul, `the ${what} projection is quantized (${l.quant.form}): prune before quantize`);
    if (l.form === 'gemm' || l.layout !== 'in-out')
      return void decl(
        l.matmul,
        `the ${what} projection is a Gemm or has a transposed weight, which prune does not edit`,
      );
    if (l.biasFusedInto)
      return void decl(
        l.biasFusedInto,
        `the ${what} projection's bias is fused into ${l.biasFusedInto.opType}: add a 'decompose' step first`,
      );
    return {
      matmul: l.matmul,
      weight: l.weight,
      ...(l.biasAdd ? { biasAdd: l.biasAdd } : {}),
      ...(l.bias ? { bias: l.bias } : {}),
      ...(l.columns ? { columns: l.columns } : {}),
    };
  };
  const residual = (res: Node, branch: Value, what: string): { add: Node; input: Value } | undefined => {
    if (res.opType !== 'Add' || (res.domain !== '' && res.domain !== 'ai.onnx') || res.inputs.length !== 2)
      return void decl(res, `the ${what} block's residual is fused into ${res.opType}: add a 'decompose' step first`);
    const other = res.input(0) === branch ? res.input(1) : res.input(1) === branch ? res.input(0) : null;
    if (!other) return void decl(res, `the ${what} block's output does not feed its residual Add directly`);
    return { add: res, input: other };
  };
  const attention = (at: AttentionInfo, res: Node): PruneAttention | undefined => {
    if (at.kind === 'topk')
      return void decl(at.topk?.node ?? at.q.matmul, 'top-k attention: prune before topk-attention');
    if (at.fused && !(at.fused.opType === 'Attention' && at.fused.domain === 'com.microsoft'))
      return void decl(
        at.fused,
        `${at.fused.opType} is not a fused attention prune edits (com.microsoft Attention is)`,
      );
    if (
      at.fused &&
      (at.fused.getInt('unidirectional', 0) || at.fused.inputs.length > 4 || at.fused.getInts('qkv_hidden_sizes'))
    )
      return void decl(
        at.fused,
        'fused attention with past state, bias inputs beyond the mask, or qkv_hidden_sizes is not supported',
      );
    const [q, k, v, o] = [linear(at.q, 'query'), linear(at.k, 'key'), linear(at.v, 'value'), linear(at.o, 'output')];
    if (!q || !k || !v || !o) return undefined;
    const branchOutput = at.o.output;
    const r = residual(res, branchOutput, 'attention');
    if (!r) return undefined;
    const reshapes = at.fused
      ? []
      : [at.headReshapes?.q, at.headReshapes?.k, at.headReshapes?.v, at.contextReshape].filter((x): x is Node => !!x);
    return {
      heads: at.heads,
      headSize: at.headSize,
      q,
      k,
      v,
      o,
      context: at.fused ? at.fused.output(0) : at.o.matmul.input(0)!,
      reshapes,
      residualAdd: r.add,
      residualInput: r.input,
      branchOutput,
      ...(at.fused ? { fused: at.fused } : {}),
    };
  };
  const ffn = (f: FfnInfo, res: Node): PruneFfn | undefined => {
    const [up, down] = [linear(f.up, 'FFN up'), linear(f.down, 'FFN down')];
    if (!up || !down) return undefined;
    const r = residual(res, f.down.output, 'FFN');
    if (!r) return undefined;
    return {
      size: f.size,
      up,
      down,
      activation: f.down.matmul.input(0)!,
      residualAdd: r.add,
      residualInput: r.input,
      branchOutput: f.down.output,
    };
  };
  const found: { position: number; layer: Omit<PruneLayer, 'index'> }[] = [];
  for (const l of a.layers) {
    const at = attention(l.attention, l.residuals.attention);
    const ff = ffn(l.ffn, l.residuals.ffn);
    if (at || ff)
      found.push({
        position: l.position,
        layer: { norm: l.norm, ...(at ? { attention: at } : {}), ...(ff ? { ffn: ff } : {}) },
      });
  }
  for (const p of a.partialLayers) {
    const at = p.attention ? attention(p.attention, p.residual) : undefined;
    const ff = p.ffn ? ffn(p.ffn, p.residual) : undefined;
    if (at || ff)
      found.push({
        position: p.position,
        layer: { norm: p.norm, ...(at ? { attention: at } : {}), ...(ff ? { ffn: ff } : {}) },
      });
  }
  found.sort((x, y) => x.position - y.position);
  return { layers: found.map((f, index) => ({ index, ...f.layer })), declines };
}

/** Recognize layers or throw AX3601 naming the nodes where recognition stopped; other declines become notes. */
export function requireLayers(model: Model, report?: (d: Diagnostic) => void): PruneLayer[] {
  const r = recognizeLayers(model);
  if (report && r.layers.length)
    for (const d of r.declines) report(diag('AX3608', 'note', `not prunable: ${d.reason}`, nodeLoc(d.node, d.op)));
  if (r.layers.length === 0) {
    // graphs onnxruntime's optimizer fused: the residual Add lives inside SkipLayerNormalization
    const fused = model.graph
      .nodes()
      .find(
        (n) =>
          n.domain === 'com.microsoft' && ['SkipLayerNormalization', 'BiasGelu', 'FastGelu', 'Gelu'].includes(n.opType),
      );
    const hint = fused
      ? [
          `the graph is fused by onnxruntime (${fused.opType} '${fused.name}'): add a 'decompose' step before this one, and 'fuse' after pruning`,
        ]
      : undefined;
    const ds = r.declines.length
      ? r.declines.map((d) =>
          diag('AX3601', 'error', `no prunable encoder layer recognized: ${d.reason}`, nodeLoc(d.node, d.op), hint),
        )
      : [
          diag(
            'AX3601',
            'error',
            'no prunable encoder layer recognized: the model has no attention Softmax followed by a MatMul with V',
            { kind: 'none' },
          ),
        ];
    throw new AxcError(ds);
  }
  return r.layers;
}
