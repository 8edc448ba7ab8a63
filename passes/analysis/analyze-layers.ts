/**
 * `analyze-layers`: recognizes the transformer layers once (passes/analysis/layers.ts) and provides the fact
 * 'layers' (a LayerAnalysis) to the passes that edit them. It never changes the model.
 *
 * Parts it cannot recognize are reported as warnings (AX3101), naming the node where matching stopped and the check
 * that failed; a model in which no layer is recognized is an error (AX3100).
 */
import { AxcError, diag, nodeLoc, type Diagnostic } from '../../src/diagnostics/index.js';
import { locOf, registerPass, type PassContext, type PassDef, type PassResult } from '../../src/pass/index.js';
import { analyzeLayers, type LayerAnalysis } from './layers.js';

export const ANALYZE_LAYERS_MESSAGES = {
  AX3100: 'no transformer layer was recognized in the model',
  AX3101: 'a part of the model that looks like a transformer layer (or a projection) was not recognized',
};

/** The 'layers' fact, as consumers read it: `ctx.facts.get('layers') as LayerAnalysis`. */
export function layersFact(ctx: PassContext): LayerAnalysis | undefined {
  const f = ctx.facts.get('layers');
  return f && typeof f === 'object' && 'layers' in f ? (f as LayerAnalysis) : undefined;
}

export function unrecognizedDiagnostics(a: LayerAnalysis, graph: string): Diagnostic[] {
  return a.unrecognized.map((u) =>
    diag(
      'AX3101',
      'warning',
      `not recognized as part of a transformer layer: ${u.reason}`,
      nodeLoc(u.node, u.op, graph),
    ),
  );
}

export function runAnalyzeLayers(ctx: PassContext): PassResult {
  const a = analyzeLayers(ctx.model);
  const graph = ctx.model.graph.name;
  if (a.layers.length === 0) {
    const notes = a.unrecognized.slice(0, 8).map((u) => `'${u.node}' (${u.op}): ${u.reason}`);
    if (a.unrecognized.length > 8) notes.push(`... and ${a.unrecognized.length - 8} more`);
    if (notes.length === 0)
      notes.push('the model has no Softmax attention and no com.microsoft Attention/MultiHeadAttention node');
    throw new AxcError(
      diag(
        'AX3100',
        'error',
        `no transformer layer was recognized in graph '${graph}' (${ctx.model.graph.nodeCount} nodes); passes that edit layers cannot run`,
        locOf(ctx.span),
        notes,
      ),
    );
  }
  for (const d of unrecognizedDiagnostics(a, graph)) ctx.report(d);
  ctx.facts.set('layers', a);
  const l0 = a.layers[0]!;
  ctx.details.layers = a.layers.map((l) => ({
    index: l.index,
    heads: l.heads,
    headSize: l.headSize,
    ffnSize: l.ffnSize,
    norm: l.norm,
    attention: l.attentionKind,
    activation: l.activation,
  }));
  if (a.unrecognized.length) ctx.details.unrecognized = a.unrecognized;
  return {
    changed: false,
    stats: { layers: a.layers.length, unrecognized: a.unrecognized.length },
    summary: `${a.layers.length} layers (${l0.heads} heads of ${l0.headSize}, FFN ${l0.ffnSize}, ${l0.norm}-norm, ${l0.attentionKind} attention)${a.unrecognized.length ? `, ${a.unrecognized.length} part(s) not recognized` : ''}`,
  };
}

export const analyzeLayersPass: PassDef<Record<string, never>> = {
  name: 'analyze-layers',
  summary: 'Recognize the transformer layers (projections, heads, norms, FFN) for the passes that edit them',
  options: {},
  provides: ['layers'],
  messages: ANALYZE_LAYERS_MESSAGES,
  run: runAnalyzeLayers,
};

registerPass(analyzeLayersPass);
