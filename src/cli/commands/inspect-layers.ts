/**
 * `axc inspect --layers [--json]`: what the layer analysis recognized, per layer, and what it did not (naming nodes).
 * Registered through `inspectExtensions`; import this module before inspect registers its options.
 */
import type { Model } from '../../ir/index.js';
import { allLayerSummaries, analyzeLayers, type LayerAnalysis } from '../../../passes/analysis/layers.js';
import { table } from '../util.js';
import { inspectExtensions } from './inspect.js';

export function layersJson(a: LayerAnalysis): unknown {
  const emb = a.embeddings;
  return {
    layers: allLayerSummaries(a),
    unrecognized: a.unrecognized.map((u) => ({ node: u.node, op: u.op, reason: u.reason })),
    embeddings: emb
      ? {
          word: emb.word?.table.name ?? null,
          position: emb.position?.table.name ?? null,
          tokenType: emb.tokenType?.table.name ?? null,
          layerNorm: emb.norm?.form ?? null,
        }
      : null,
    finalNorm: a.finalNorm ? a.finalNorm.form : null,
    head: a.head
      ? {
          pooler: a.head.pooler?.matmul.name ?? null,
          activation: a.head.poolerActivation?.opType ?? null,
          classifier: a.head.classifier?.matmul.name ?? null,
          labels: a.head.classifier?.outFeatures ?? null,
        }
      : null,
  };
}

export function layersText(a: LayerAnalysis, file: string): string {
  const out: string[] = [];
  const partial = a.partialLayers.length ? ` and ${a.partialLayers.length} partial layer(s)` : '';
  out.push(`${file}: ${a.layers.length} transformer layer(s) recognized${partial}`);
  const rows: [number, string[]][] = [];
  for (const l of a.layers)
    rows.push([
      l.position,
      [
        `  ${l.position}`,
        String(l.heads),
        String(l.headSize),
        String(l.hidden),
        String(l.ffnSize),
        l.norm,
        l.attentionKind,
        `${l.attention.scaling.form} (${Number(l.attention.scaling.factor.toPrecision(4))})`,
        l.attention.mask.form,
        l.activation,
        l.norms.attention.form,
      ],
    ]);
  for (const p of a.partialLayers) {
    const at = p.attention;
    rows.push([
      p.position,
      [
        `  ${p.position}`,
        at ? String(at.heads) : '-',
        at ? String(at.headSize) : '-',
        String(p.hidden),
        p.ffn ? String(p.ffn.size) : '-',
        p.norm,
        at ? at.kind : 'removed',
        at ? `${at.scaling.form} (${Number(at.scaling.factor.toPrecision(4))})` : '-',
        at ? at.mask.form : '-',
        p.ffn ? p.ffn.activation : 'removed',
        p.normInfo.form,
      ],
    ]);
  }
  if (rows.length) {
    const header = [
      '  layer',
      'heads',
      'head size',
      'hidden',
      'FFN',
      'norm',
      'attention',
      'scaling',
      'mask',
      'activation',
      'LayerNorm',
    ];
    out.push(table([header, ...rows.sort((x, y) => x[0] - y[0]).map((r) => r[1])], ['r', 'r', 'r', 'r', 'r']));
  }
  const e = a.embeddings;
  if (e)
    out.push(
      '',
      `embeddings: ${[e.word && `word ${e.word.table.name}`, e.position && `position ${e.position.table.name}`, e.tokenType && `token type ${e.tokenType.table.name}`, e.norm && `${e.norm.form}`].filter(Boolean).join(', ')}`,
    );
  if (a.finalNorm)
    out.push(`final norm: ${a.finalNorm.form} '${a.finalNorm.nodes[a.finalNorm.nodes.length - 1]!.name}'`);
  if (a.head)
    out.push(
      `head: ${[a.head.pooler && `pooler '${a.head.pooler.matmul.name}'`, a.head.poolerActivation && a.head.poolerActivation.opType, a.head.classifier && `classifier '${a.head.classifier.matmul.name}' (${a.head.classifier.outFeatures} labels)`].filter(Boolean).join(' -> ')}`,
    );
  if (a.unrecognized.length) {
    out.push('', `not recognized (${a.unrecognized.length}):`);
    for (const u of a.unrecognized) out.push(`  '${u.node}' (${u.op}): ${u.reason}`);
  }
  return out.join('\n');
}

inspectExtensions.push({
  flag: '--layers',
  description: 'recognize the transformer layers: heads, head size, FFN size, norm placement, attention, activation',
  run(model: Model, file: string) {
    const a = analyzeLayers(model);
    return { text: layersText(a, file), json: layersJson(a) };
  },
});
