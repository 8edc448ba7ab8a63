import { describe, expect, test } from 'vitest';
import { analyzeLayers } from '../../passes/analysis/layers.js';
import { diffModels, layerViews } from '../../src/diff/index.js';
import { buildBert, smallConfig, type BertConfig } from '../gen/bert.js';

/** Every export variant of the generator: the diff's layer reading must find each layer, its heads and its FFN. */
const VARIANTS: [string, Partial<BertConfig>][] = [
  ['default (eager, inferred heads, fused LN)', {}],
  ['decomposed LayerNorm (opset 14 style)', { layerNorm: 'decomposed' }],
  ['SDPA attention', { attention: 'sdpa' }],
  ['explicit head count in reshapes', { headsInReshape: 'explicit' }],
  ['DistilBERT', { family: 'distilbert', headsInReshape: 'explicit' }],
  ['RoBERTa', { family: 'roberta' }],
  ['pre-norm', { norm: 'pre' }],
  ['tanh GELU', { activation: 'tanh-gelu' }],
  ['ReLU', { activation: 'relu' }],
  ['Gelu op', { activation: 'gelu-op' }],
  ['ORT-fused (SkipLayerNormalization, BiasGelu)', { ortFused: true }],
  ['com.microsoft Attention', { msAttention: true }],
];

describe('layer reading on generator variants', () => {
  test.each(VARIANTS)('%s', (_, over) => {
    const cfg = smallConfig({ layers: 2, heads: 4, ...over });
    const m = buildBert(cfg);
    const views = layerViews(m);
    expect(views.map((l) => [l.attention?.heads, l.attention?.headSize, l.ffn?.size])).toEqual([
      [4, 8, 64],
      [4, 8, 64],
    ]);
    // agrees with the shared layer analysis where it recognizes the layer
    const a = analyzeLayers(m);
    expect(a.layers.length).toBe(2);
    a.layers.forEach((l, i) => {
      expect(l.heads, `layer ${i} heads`).toBe(views[i]!.attention!.heads);
      expect(l.ffnSize, `layer ${i} FFN`).toBe(views[i]!.ffn!.size);
    });
    // a model against itself: no difference
    expect(diffModels(m, buildBert(cfg)).same).toBe(true);
  });
});
