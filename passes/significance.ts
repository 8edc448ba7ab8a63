import { AxcError, diag, didYouMean } from '../src/diagnostics/index.js';
import { registerPass, type PassContext, type PassDef, type PassResult } from '../src/pass/index.js';
import { locOf, selectLayers, type LayerSelector, type NamedItem } from '../src/pass/types.js';
import type { Dataset } from '../src/verify/data.js';
import { GateEvaluator, samplesOf } from './lib/prune-eval.js';
import { requireLayers } from './lib/prune-layers.js';
import {
  activationScores,
  elementsOf,
  lossScores,
  perLayer,
  weightScores,
  type ElementChoice,
  type ScoreBy,
} from './lib/prune-score.js';
import { emptyPruneSet, layersFingerprint, type ElementScore, type Significance } from './lib/prune-types.js';

/**
 * `significance heads, ffn-groups(64), blocks on dev by loss`: how much each element matters.
 * - by loss: mean cross-entropy against the labels with the element removed, minus without (forward passes only,
 *   one gate model session); also the fraction of samples no worse. Negative: removing it helps.
 * - by kl: the same ablations, measured as the KL divergence from the original model's predictions (no labels
 *   needed). Use it with data the model was trained on, or unlabelled text: the task loss there is near 0 and
 *   ranks elements by noise, while the KL ranks them by how much they change what the model predicts.
 * - by magnitude / weight-norm: from the weights only (no data): mean |w| / L2 norm of the element's weights
 *   (a head: its Q/K/V columns, onnxsim's criterion; an FFN group: its up columns and down rows).
 * - by activation: mean |activation| of the element on the data (no labels needed).
 * Provides the 'significance' fact (see passes/lib/prune-types.ts), also used by quantization for mixed precision.
 */

export interface SignificanceOptions {
  elements?: NamedItem[];
  on?: string;
  by?: ScoreBy;
  layers?: LayerSelector;
  metadata?: boolean;
}

export const ELEMENT_NAMES = ['heads', 'ffn-groups', 'blocks'] as const;
export const DEFAULT_GROUP_SIZE = 64;

/** Parse `heads, ffn-groups(64), blocks` into a choice and a group size (AX3604 for an unknown name). */
export function parseElements(
  items: readonly NamedItem[] | undefined,
  ctx: PassContext,
  pass: string,
): { which: ElementChoice; groupSize: number } {
  const which: ElementChoice = { blocks: false, heads: false, groups: false };
  let groupSize = DEFAULT_GROUP_SIZE;
  const list = items && items.length ? items : [{ name: 'heads' }, { name: 'ffn-groups' }, { name: 'blocks' }];
  for (const it of list) {
    if (it.name === 'heads') which.heads = true;
    else if (it.name === 'blocks') which.blocks = true;
    else if (it.name === 'ffn-groups') {
      which.groups = true;
      if (it.arg !== undefined) {
        if (!Number.isInteger(it.arg) || it.arg < 1)
          throw new AxcError(
            diag(
              'AX3604',
              'error',
              `'${pass}': ffn-groups(${it.arg}) needs a positive whole group size`,
              locOf(ctx.span),
            ),
          );
        groupSize = it.arg;
      }
    } else {
      const dym = didYouMean(it.name, ELEMENT_NAMES);
      throw new AxcError(
        diag('AX3604', 'error', `'${pass}' does not know the element '${it.name}'`, locOf(ctx.span), [
          ...(dym ? [`did you mean '${dym}'?`] : []),
          `elements: ${ELEMENT_NAMES.join(', ')}`,
        ]),
      );
    }
  }
  return { which, groupSize };
}

export async function loadSamples(
  ctx: PassContext,
  name: string | undefined,
  pass: string,
  why: string,
  needLabels = true,
) {
  if (!name)
    throw new AxcError(
      diag(
        'AX3605',
        'error',
        `'${pass}' ${why} needs ${needLabels ? 'labelled ' : ''}data: add 'on NAME' (a declared data source)`,
        locOf(ctx.span),
      ),
    );
  const data = (await ctx.data.get(name)) as Dataset;
  return samplesOf(data, locOf(ctx.span), needLabels);
}

function round(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(6)) : x;
}

/** The significance fact as JSON-friendly data (numbers to 6 significant digits), for the report and metadata. */
export function significanceJson(sig: Significance): unknown {
  const el = (s: ElementScore) => {
    const o: Record<string, unknown> = { kind: s.kind, layer: s.layer, index: s.index, score: round(s.score) };
    if (s.lossRemoved !== undefined) o.lossRemoved = round(s.lossRemoved);
    if (s.noWorse !== undefined) o.noWorse = round(s.noWorse);
    o.params = s.params;
    return o;
  };
  return {
    by: sig.by,
    ...(sig.data ? { data: sig.data } : {}),
    samples: sig.samples,
    ...(sig.baseLoss !== undefined ? { baseLoss: round(sig.baseLoss) } : {}),
    ...(sig.baseAccuracy !== undefined ? { baseAccuracy: round(sig.baseAccuracy) } : {}),
    groupSize: sig.groupSize,
    evaluations: sig.evaluations,
    layers: sig.layers.map((l) => ({
      layer: l.layer,
      heads: l.heads,
      headSize: l.headSize,
      ffnSize: l.ffnSize,
      ...(l.attention ? { attention: el(l.attention) } : {}),
      ...(l.ffn ? { ffn: el(l.ffn) } : {}),
      headScores: l.headScores.map(el),
      groupScores: l.groupScores.map(el),
    })),
  };
}

export async function runSignificance(ctx: PassContext, options: SignificanceOptions): Promise<PassResult> {
  const by = options.by ?? 'loss';
  const layers = requireLayers(ctx.model, (d) => ctx.report(d));
  const { which, groupSize } = parseElements(options.elements, ctx, 'significance');
  const selected = selectLayers(options.layers, layers.length);
  const elements = elementsOf(layers, which, groupSize, selected);
  const threads = ctx.threads ?? 2;
  const t0 = performance.now();
  let sig: Significance;
  if (by === 'loss' || by === 'kl') {
    const samples = await loadSamples(ctx, options.on, 'significance', `by ${by}`, by === 'loss');
    const ev = await GateEvaluator.create(ctx.model, layers, samples, {
      groupSize,
      threads,
      objective: by === 'kl' ? 'kl' : 'label',
    });
    try {
      ctx.progress('ablations', 0, elements.length);
      const empty = emptyPruneSet(layers, groupSize);
      const { base, scores } = await lossScores(ev, empty, await ev.prepare(empty), elements);
      ctx.progress('ablations', elements.length, elements.length);
      sig = {
        by,
        data: options.on,
        samples: samples.length,
        baseLoss: base.loss,
        baseAccuracy: base.accuracy,
        groupSize,
        layers: perLayer(layers, scores),
        evaluations: ev.evaluations,
        memo: { data: options.on!, groupSize, fingerprint: layersFingerprint(layers), results: ev.memo },
      };
    } finally {
      await ev.release();
    }
  } else if (by === 'activation') {
    const samples = await loadSamples(ctx, options.on, 'significance', 'by activation');
    const scores = await activationScores(ctx.model, layers, samples, elements, groupSize, threads);
    sig = {
      by,
      data: options.on,
      samples: samples.length,
      groupSize,
      layers: perLayer(layers, scores),
      evaluations: 1,
    };
  } else {
    const scores = weightScores(layers, elements, groupSize, by);
    sig = { by, samples: 0, groupSize, layers: perLayer(layers, scores), evaluations: 0 };
  }
  const ms = performance.now() - t0;
  ctx.facts.set('significance', sig);
  ctx.details.significance = significanceJson(sig);
  let changed = false;
  if (options.metadata) {
    const text = JSON.stringify(significanceJson(sig));
    if (ctx.model.getMetadata('axc.significance') !== text) {
      ctx.model.setMetadata('axc.significance', text);
      changed = true;
    }
  }
  const all = sig.layers.flatMap((l) => [
    ...(l.attention ? [l.attention] : []),
    ...(l.ffn ? [l.ffn] : []),
    ...l.headScores,
    ...l.groupScores,
  ]);
  const helpful = by === 'loss' || by === 'kl' ? all.filter((s) => s.score < 0).length : 0;
  return {
    changed,
    stats: {
      elements: all.length,
      evaluations: sig.evaluations,
      ms: Math.round(ms),
      ...(by === 'loss' || by === 'kl' ? { negative: helpful } : {}),
    },
    summary:
      `scored ${all.length} elements of ${sig.layers.length} layers by ${by}` +
      (by === 'loss'
        ? ` on ${sig.samples} samples (base loss ${sig.baseLoss!.toFixed(4)}, accuracy ${(100 * sig.baseAccuracy!).toFixed(1)}%; ${helpful} elements whose removal lowers the loss; ${sig.evaluations} evaluations)`
        : by === 'kl'
          ? ` on ${sig.samples} samples (KL to the original's predictions; ${sig.evaluations} evaluations)`
          : ''),
  };
}

export const significance: PassDef<SignificanceOptions> = {
  name: 'significance',
  summary:
    'Score heads, FFN neuron groups and whole blocks: loss increase on labelled data when removed (by loss), or weight magnitude / norm, or activations',
  positional: 'elements',
  options: {
    elements: {
      type: 'names',
      summary: 'What to score: heads, ffn-groups(N) (groups of N FFN neurons, default 64), blocks (attention and FFN)',
      default: [{ name: 'heads' }, { name: 'ffn-groups', arg: DEFAULT_GROUP_SIZE }, { name: 'blocks' }],
    },
    on: { type: 'data', summary: 'Labelled data the scores are measured on (by loss, by activation)' },
    by: {
      type: 'enum',
      summary:
        'loss (ablation on labelled data), kl (ablation, divergence from the original predictions: no labels), magnitude / weight-norm (weights only), activation (data)',
      values: ['loss', 'kl', 'magnitude', 'activation', 'weight-norm'],
      default: 'loss',
    },
    layers: { type: 'layers', summary: 'Layers to score (default all)' },
    metadata: {
      type: 'boolean',
      summary: "Also write the scores into the output model's metadata (key axc.significance)",
      default: false,
    },
  },
  provides: ['significance'],
  messages: {
    AX3601: 'no prunable encoder layer recognized (names the nodes where recognition stopped)',
    AX3608: 'a part of the model that looks like attention or FFN was not recognized, and why (note)',
    AX3602: 'the data cannot be used: no label, no rows, or tensors instead of token ids',
    AX3604: 'unknown element name or bad group size',
    AX3605: 'scoring by loss or activation needs a data source (on NAME)',
  },
  run: runSignificance,
};

registerPass(significance);
