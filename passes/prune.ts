import { AxcError, diag } from '../src/diagnostics/index.js';
import { registerPass, type PassContext, type PassDef, type PassResult } from '../src/pass/index.js';
import { locOf, selectLayers, type LayerSelector, type NamedItem } from '../src/pass/types.js';
import { decodeModel, serializeModel } from '../src/onnx/index.js';
import { applyPrune } from './lib/prune-apply.js';
import { compensationScales, type LayerScales } from './lib/prune-compensate.js';
import { GateEvaluator, noWorseFraction, type Objective, type Sample } from './lib/prune-eval.js';
import { requireLayers } from './lib/prune-layers.js';
import { allScores, elementsOf, lossScores, type ElementChoice } from './lib/prune-score.js';
import {
  describePruneSet,
  elementKey,
  emptyPruneSet,
  encoderMacs,
  encoderParams,
  groupCount,
  isRemoved,
  layersFingerprint,
  normalizePruneSet,
  removedMacs,
  remapSignificance,
  removedParams,
  withElement,
  type Element,
  type ElementScore,
  type EvalResult,
  type PruneLayer,
  type PruneSet,
  type Significance,
} from './lib/prune-types.js';
import { loadSamples, parseElements } from './significance.js';

/**
 * `prune`: physically remove heads, FFN neuron groups and whole blocks, chosen from the 'significance' fact.
 * Three forms:
 * - threshold: `prune heads where significance < 0`, `prune ffn-groups where significance < 0.001 keep >= 25%`;
 * - greedy (AxFormer): `prune greedy on dev tolerance 1.1`: from the top layer down, try the FFN block then the
 *   attention block; accept a removal when the loss goes down and more than half of the samples are no worse; when
 *   a block is rejected but its loss is within `tolerance` x the best so far, try its heads (or FFN groups) one by one;
 * - budget: `prune budget 40% params max-drop 0.5 on dev`: remove the least significant elements (per parameter)
 *   until the budget is met, re-scoring the next candidates after each step, never exceeding the accuracy drop.
 */

export interface Condition {
  metric: string;
  op: '<' | '<=' | '>' | '>=' | '==' | '!=';
  value: number;
}

export interface PruneOptions {
  elements?: NamedItem[];
  where?: Condition;
  keep?: { op: string; value: number } | number;
  greedy?: boolean;
  budget?: number;
  target?: 'params' | 'macs';
  'max-drop'?: number;
  tolerance?: number;
  step?: number;
  rescore?: number;
  on?: string;
  layers?: LayerSelector;
  compensate?: boolean;
}

/** One decision, for the report. */
export interface Decision {
  element: string;
  /** Mean loss before (the best so far) and with the element removed. */
  lossBefore?: number;
  lossAfter?: number;
  /** Fraction of samples no worse with the element removed. */
  noWorse?: number;
  accuracyAfter?: number;
  score?: number;
  accepted: boolean;
  reason: string;
}

const r6 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? x : Number(x.toPrecision(6)));

function compare(x: number, c: Condition): boolean {
  switch (c.op) {
    case '<':
      return x < c.value;
    case '<=':
      return x <= c.value;
    case '>':
      return x > c.value;
    case '>=':
      return x >= c.value;
    case '==':
      return x === c.value;
    case '!=':
      return x !== c.value;
  }
}

function getSignificance(ctx: PassContext, layers: readonly PruneLayer[]): Significance {
  const sig = ctx.facts.get('significance') as Significance | undefined;
  if (!sig || typeof sig !== 'object' || !Array.isArray(sig.layers))
    throw new AxcError(
      diag('AX2301', 'error', "'prune' needs significance, which no earlier step provides", locOf(ctx.span)),
    );
  for (const ls of sig.layers) {
    const l = layers.find((x) => x.index === ls.layer);
    if (!l || (l.attention?.heads ?? 0) !== ls.heads || (l.ffn?.size ?? 0) !== ls.ffnSize)
      throw new AxcError(
        diag(
          'AX3603',
          'error',
          `the significance scores are stale: layer ${ls.layer} had ${ls.heads} heads and FFN size ${ls.ffnSize} when scored, and has ${l?.attention?.heads ?? 0} and ${l?.ffn?.size ?? 0} now`,
          locOf(ctx.span),
          ["run 'significance' again after steps that change the layers"],
        ),
      );
  }
  return sig;
}

function minKeepFraction(keep: PruneOptions['keep']): number {
  if (keep === undefined) return 0;
  if (typeof keep === 'number') return keep;
  return keep.value;
}

function kindAllowed(e: Element, which: ElementChoice): boolean {
  return e.kind === 'head' ? which.heads : e.kind === 'ffn-group' ? which.groups : which.blocks;
}

/** Threshold form: every element whose score satisfies the condition, within the keep bound. */
function chooseByThreshold(
  sig: Significance,
  layers: readonly PruneLayer[],
  which: ElementChoice,
  selected: readonly number[],
  cond: Condition,
  keepFrac: number,
  decisions: Decision[],
): PruneSet {
  let p = emptyPruneSet(layers, sig.groupSize);
  const scores = allScores(sig).filter((s) => selected.includes(s.layer) && kindAllowed(s, which));
  const matching = scores.filter((s) => compare(s.score, cond)).sort((a, b) => a.score - b.score);
  const removedCount = new Map<string, number>();
  for (const s of matching) {
    const l = layers.find((x) => x.index === s.layer)!;
    const key = `${s.layer}.${s.kind}`;
    if (s.kind === 'attention' || s.kind === 'ffn') {
      if (keepFrac > 0) {
        decisions.push({
          element: elementKey(s),
          score: r6(s.score),
          accepted: false,
          reason: `removing the whole block would keep less than ${Math.round(keepFrac * 100)}% of its ${s.kind === 'attention' ? 'heads' : 'FFN neurons'}`,
        });
        continue;
      }
    } else {
      const count = s.kind === 'head' ? (l.attention?.heads ?? 0) : groupCount(l.ffn?.size ?? 0, sig.groupSize);
      const minKeep = Math.ceil(keepFrac * count - 1e-9);
      const done = removedCount.get(key) ?? 0;
      if (count - done - 1 < minKeep) {
        decisions.push({
          element: elementKey(s),
          score: r6(s.score),
          accepted: false,
          reason: `keep >= ${Math.round(keepFrac * 100)}%: layer ${s.layer} must keep ${minKeep} of ${count} ${s.kind === 'head' ? 'heads' : 'FFN groups'}`,
        });
        continue;
      }
      removedCount.set(key, done + 1);
    }
    p = withElement(p, s, layers);
    decisions.push({
      element: elementKey(s),
      score: r6(s.score),
      accepted: true,
      reason: `significance ${r6(s.score)} ${cond.op} ${cond.value}`,
    });
  }
  return p;
}

function scoreOrder(sig: Significance, e: Element): number {
  const ls = sig.layers.find((l) => l.layer === e.layer);
  const list = e.kind === 'head' ? ls?.headScores : e.kind === 'ffn-group' ? ls?.groupScores : undefined;
  return list?.find((s) => s.index === e.index)?.score ?? 0;
}

/** AxFormer's greedy search, top layer down. */
async function greedySearch(
  ev: GateEvaluator,
  sig: Significance,
  layers: readonly PruneLayer[],
  which: ElementChoice,
  selected: readonly number[],
  tolerance: number,
  decisions: Decision[],
  progress: (done: number, total: number) => void,
): Promise<{ set: PruneSet; best: EvalResult; start: EvalResult }> {
  let cur = emptyPruneSet(layers, sig.groupSize);
  const start = await ev.prepare(cur);
  let best = start;
  const tryOne = async (e: Element): Promise<{ accepted: boolean; result: EvalResult }> => {
    const cand = withElement(cur, e, layers);
    const [r] = await ev.evaluate([cand]);
    const nw = noWorseFraction(best.perSample, r!.perSample);
    const accepted = r!.loss < best.loss && nw > 0.5;
    const why = accepted
      ? `loss ${r6(best.loss)} -> ${r6(r!.loss)} and ${(100 * nw).toFixed(1)}% of samples no worse`
      : r!.loss >= best.loss
        ? `loss does not go down (${r6(best.loss)} -> ${r6(r!.loss)})`
        : `only ${(100 * nw).toFixed(1)}% of samples are no worse (needs more than half)`;
    decisions.push({
      element: elementKey(e),
      lossBefore: r6(best.loss),
      lossAfter: r6(r!.loss),
      noWorse: r6(nw),
      accuracyAfter: r6(r!.accuracy),
      accepted,
      reason: why,
    });
    if (accepted) {
      cur = cand;
      best = r!;
    }
    return { accepted, result: r! };
  };
  const order = [...selected].sort((a, b) => b - a);
  let done = 0;
  for (const li of order) {
    const l = layers.find((x) => x.index === li)!;
    const blocks: Element[] = [];
    if (l.ffn) blocks.push({ kind: 'ffn', layer: li, index: 0 });
    if (l.attention) blocks.push({ kind: 'attention', layer: li, index: 0 });
    for (const b of blocks) {
      if (isRemoved(cur, b)) continue;
      const { accepted, result } = which.blocks
        ? await tryOne(b)
        : { accepted: false, result: { loss: Infinity } as EvalResult };
      if (accepted) continue;
      const fine = b.kind === 'attention' ? which.heads : which.groups;
      if (!fine) continue;
      if (which.blocks && !(result.loss <= tolerance * best.loss)) {
        decisions.push({
          element: `${elementKey(b)} (parts)`,
          lossBefore: r6(best.loss),
          lossAfter: r6(result.loss),
          accepted: false,
          reason: `not tried one by one: removing the block costs more than ${tolerance} x the best loss`,
        });
        continue;
      }
      const parts: Element[] =
        b.kind === 'attention'
          ? [...Array(l.attention!.heads).keys()].map((h) => ({ kind: 'head', layer: li, index: h }))
          : [...Array(groupCount(l.ffn!.size, sig.groupSize)).keys()].map((g) => ({
              kind: 'ffn-group',
              layer: li,
              index: g,
            }));
      parts.sort((x, y) => scoreOrder(sig, x) - scoreOrder(sig, y) || x.index - y.index);
      for (const e of parts) if (!isRemoved(cur, e)) await tryOne(e);
    }
    progress(++done, order.length);
  }
  return { set: cur, best, start };
}

/** Budget form: remove the least significant elements until the target, within the accuracy drop. */
async function budgetSearch(
  ev: GateEvaluator | undefined,
  sig: Significance,
  layers: readonly PruneLayer[],
  which: ElementChoice,
  selected: readonly number[],
  opts: { budget: number; target: 'params' | 'macs'; maxDrop: number; step: number; rescore: number },
  decisions: Decision[],
  progress: (done: number, total: number) => void,
): Promise<{ set: PruneSet; best?: EvalResult; start?: EvalResult }> {
  const cost = (p: PruneSet) => (opts.target === 'params' ? removedParams(p, layers) : removedMacs(p, layers));
  const total = opts.target === 'params' ? encoderParams(layers) : encoderMacs(layers, sig.groupSize);
  const goal = opts.budget * total;
  let cur = emptyPruneSet(layers, sig.groupSize);
  const start = ev ? await ev.prepare(cur) : undefined;
  let best = start;
  const universe = elementsOf(layers, which, sig.groupSize, selected);
  const scores = new Map<string, number>();
  for (const s of allScores(sig)) scores.set(elementKey(s), s.score);
  // weight scores are "bigger is more important" like loss scores; rank by score per removed unit of cost
  const protectedEls = new Set<string>();
  const rank = (e: Element): number => {
    const gain = cost(withElement(cur, e, layers)) - cost(cur);
    const s = scores.get(elementKey(e));
    if (s === undefined || gain <= 0) return Infinity;
    return sig.by === 'weight-norm' ? (s * s) / gain : s / gain;
  };
  const stepGoal = Math.max(opts.step * total, 1);
  while (cost(cur) < goal) {
    const cands = universe
      .filter((e) => !isRemoved(cur, e) && !protectedEls.has(elementKey(e)) && scores.has(elementKey(e)))
      .map((e) => ({ e, r: rank(e) }))
      .filter((x) => Number.isFinite(x.r))
      .sort((a, b) => a.r - b.r || elementKey(a.e).localeCompare(elementKey(b.e)));
    if (!cands.length) break;
    // a step: the next candidates until `step` of the total (or the goal) is reached
    const before = cost(cur);
    let next = cur;
    const taken: Element[] = [];
    for (const { e } of cands) {
      if (cost(next) - before >= stepGoal || cost(next) >= goal) break;
      next = withElement(next, e, layers);
      taken.push(e);
    }
    if (!ev) {
      for (const e of taken)
        decisions.push({
          element: elementKey(e),
          score: r6(scores.get(elementKey(e))),
          accepted: true,
          reason: 'lowest score per parameter',
        });
      cur = next;
      progress(Math.min(cost(cur), goal), goal);
      continue;
    }
    const [r] = await ev.evaluate([next]);
    const drop = 100 * (start!.accuracy - r!.accuracy);
    if (drop <= opts.maxDrop) {
      for (const e of taken)
        decisions.push({
          element: elementKey(e),
          score: r6(scores.get(elementKey(e))),
          lossBefore: r6(best!.loss),
          lossAfter: r6(r!.loss),
          noWorse: r6(noWorseFraction(best!.perSample, r!.perSample)),
          accuracyAfter: r6(r!.accuracy),
          accepted: true,
          reason: `step of ${taken.length}: accuracy drop ${drop.toFixed(2)} pp <= ${opts.maxDrop}`,
        });
      cur = next;
      best = r!;
    } else if (taken.length > 1) {
      // too much at once: retry this step one element at a time
      const first = taken[0]!;
      const one = withElement(cur, first, layers);
      const [r1] = await ev.evaluate([one]);
      const d1 = 100 * (start!.accuracy - r1!.accuracy);
      const ok = d1 <= opts.maxDrop;
      decisions.push({
        element: elementKey(first),
        score: r6(scores.get(elementKey(first))),
        lossBefore: r6(best!.loss),
        lossAfter: r6(r1!.loss),
        noWorse: r6(noWorseFraction(best!.perSample, r1!.perSample)),
        accuracyAfter: r6(r1!.accuracy),
        accepted: ok,
        reason: `accuracy drop ${d1.toFixed(2)} pp ${ok ? '<=' : '>'} ${opts.maxDrop} (a step of ${taken.length} dropped ${drop.toFixed(2)} pp)`,
      });
      if (ok) {
        cur = one;
        best = r1!;
      } else protectedEls.add(elementKey(first));
    } else {
      const first = taken[0]!;
      decisions.push({
        element: elementKey(first),
        score: r6(scores.get(elementKey(first))),
        lossBefore: r6(best!.loss),
        lossAfter: r6(r!.loss),
        accuracyAfter: r6(r!.accuracy),
        accepted: false,
        reason: `accuracy drop ${drop.toFixed(2)} pp > ${opts.maxDrop}`,
      });
      protectedEls.add(elementKey(first));
    }
    progress(Math.min(cost(cur), goal), goal);
    // re-score the next candidates on top of what is removed now
    if (opts.rescore > 0 && (sig.by === 'loss' || sig.by === 'kl') && cost(cur) < goal) {
      const nextCands = universe
        .filter((e) => !isRemoved(cur, e) && !protectedEls.has(elementKey(e)) && scores.has(elementKey(e)))
        .map((e) => ({ e, r: rank(e) }))
        .sort((a, b) => a.r - b.r)
        .slice(0, opts.rescore)
        .map((x) => x.e);
      const base = await ev.prepare(cur);
      const { scores: fresh } = await lossScores(ev, cur, base, nextCands);
      for (const s of fresh) scores.set(elementKey(s), s.score);
    }
  }
  return { set: cur, best, start };
}

export async function runPrune(ctx: PassContext, options: PruneOptions): Promise<PassResult> {
  const layers = requireLayers(ctx.model, (d) => ctx.report(d));
  const fact = getSignificance(ctx, layers);
  const { which, groupSize } = parseElements(options.elements, ctx, 'prune');
  const explicitGroups = options.elements?.find((e) => e.name === 'ffn-groups')?.arg;
  // without group scores in the fact, 'ffn-groups(N)' chooses the group size (greedy then tries groups in order)
  const hasGroupScores = fact.layers.some((l) => l.groupScores.length > 0);
  const sig = explicitGroups !== undefined && !hasGroupScores ? { ...fact, groupSize } : fact;
  if (explicitGroups !== undefined && groupSize !== sig.groupSize)
    throw new AxcError(
      diag(
        'AX3604',
        'error',
        `'prune' asks for ffn-groups(${groupSize}) but the significance scores are for groups of ${sig.groupSize}`,
        locOf(ctx.span),
      ),
    );
  const selected = selectLayers(options.layers, layers.length);
  const decisions: Decision[] = [];
  const mode = options.greedy
    ? 'greedy'
    : options.budget !== undefined
      ? 'budget'
      : options.where
        ? 'threshold'
        : undefined;
  if (!mode)
    throw new AxcError(
      diag(
        'AX3606',
        'error',
        "'prune' needs a criterion: 'where significance < N', 'greedy' or 'budget N%'",
        locOf(ctx.span),
        ['e.g. prune heads where significance < 0'],
      ),
    );
  if ([options.greedy, options.budget !== undefined].filter(Boolean).length > 1)
    throw new AxcError(
      diag('AX3606', 'error', "'prune' takes one form: 'greedy' or 'budget N%', not both", locOf(ctx.span)),
    );
  const t0 = performance.now();
  let set: PruneSet;
  let ev: GateEvaluator | undefined;
  let start: EvalResult | undefined;
  let best: EvalResult | undefined;
  const dataName = options.on ?? sig.data;
  // the budget form measures what the significance step measured (task loss, or KL to the original's predictions);
  // greedy is AxFormer's procedure on the task loss (the KL of the unpruned model is 0: no removal lowers it)
  const objective: Objective = sig.by === 'kl' && mode !== 'greedy' ? 'kl' : 'label';
  const openEvaluator = async (samples: Sample[]) => {
    const e = await GateEvaluator.create(ctx.model, layers, samples, {
      groupSize: sig.groupSize,
      threads: ctx.threads ?? 2,
      objective,
    });
    if (
      sig.memo &&
      objective === (sig.by === 'kl' ? 'kl' : 'label') &&
      sig.memo.data === dataName &&
      sig.memo.groupSize === sig.groupSize &&
      sig.memo.fingerprint === layersFingerprint(layers)
    )
      for (const [k, v] of sig.memo.results) e.memo.set(k, v);
    return e;
  };
  try {
    if (mode === 'threshold') {
      const cond = options.where!;
      if (cond.metric !== 'significance')
        throw new AxcError(
          diag('AX3606', 'error', `'prune' can filter on 'significance', not '${cond.metric}'`, locOf(ctx.span)),
        );
      set = chooseByThreshold(sig, layers, which, selected, cond, minKeepFraction(options.keep), decisions);
    } else if (mode === 'greedy') {
      const samples = await loadSamples(ctx, dataName, 'prune', 'greedy');
      ev = await openEvaluator(samples);
      ({ set, best, start } = await greedySearch(
        ev,
        sig,
        layers,
        which,
        selected,
        options.tolerance ?? 1.1,
        decisions,
        (d, t) => ctx.progress('layers', d, t),
      ));
    } else {
      if (dataName)
        ev = await openEvaluator(await loadSamples(ctx, dataName, 'prune', 'budget', objective === 'label'));
      ({ set, best, start } = await budgetSearch(
        ev,
        sig,
        layers,
        which,
        selected,
        {
          budget: options.budget!,
          target: options.target ?? 'params',
          maxDrop: options['max-drop'] ?? 1,
          step: options.step ?? 0.05,
          rescore: options.rescore ?? 12,
        },
        decisions,
        (d, t) => ctx.progress('budget', d, t),
      ));
    }
  } finally {
    await ev?.release();
  }
  const searchMs = performance.now() - t0;
  set = normalizePruneSet(set, layers);
  let scales: LayerScales[] = [];
  if (options.compensate) {
    const samples = await loadSamples(ctx, dataName, 'prune', 'compensate', objective === 'label');
    scales = await compensationScales(ctx.model, layers, set, samples, ctx.threads ?? 2);
    if (scales.length) {
      // KL is measured against the unpruned model's predictions on these samples
      let targets = ev?.samples.length === samples.length ? ev.targets : undefined;
      if (objective === 'kl' && !targets) {
        const e0 = await GateEvaluator.create(ctx.model, layers, samples, {
          groupSize: set.groupSize,
          threads: ctx.threads ?? 2,
          reuseHidden: false,
          objective,
        });
        targets = e0.targets;
        await e0.release();
      }
      const measure = async (sc: LayerScales[]) => {
        const copy = decodeModel(serializeModel(ctx.model));
        applyPrune(copy, requireLayers(copy), set, sc);
        const cl = requireLayers(copy);
        const e = await GateEvaluator.create(copy, cl, samples, {
          groupSize: set.groupSize,
          threads: ctx.threads ?? 2,
          reuseHidden: false,
          objective,
          ...(targets ? { targets } : {}),
        });
        try {
          return (await e.evaluate([emptyPruneSet(cl, set.groupSize)]))[0]!;
        } finally {
          await e.release();
        }
      };
      const plain = best && ev?.samples.length === samples.length ? best : await measure([]);
      const comp = await measure(scales);
      const applied = comp.loss < plain.loss;
      ctx.details.compensation = {
        layers: scales.map((x) => x.layer),
        lossWithout: r6(plain.loss),
        lossWith: r6(comp.loss),
        accuracyWithout: r6(plain.accuracy),
        accuracyWith: r6(comp.accuracy),
        applied,
        ...(applied ? {} : { reason: 'the compensated model has a higher calibration loss' }),
      };
      if (applied) best = comp;
      else scales = [];
    }
  }
  const totalParams = encoderParams(layers);
  const totalMacs = encoderMacs(layers, sig.groupSize);
  const macsRemoved = removedMacs(set, layers);
  const stats = applyPrune(ctx.model, layers, set, scales);
  const changed = stats.paramsRemoved > 0 || stats.nodesRemoved > 0;
  // element indices moved: the scores follow them (as measured before pruning)
  if (changed) ctx.facts.set('significance', remapSignificance(fact, set, layers));
  ctx.details.mode = mode;
  ctx.details.removed = describePruneSet(set);
  ctx.details.pruneSet = set;
  ctx.details.decisions = decisions;
  ctx.details.encoderParams = { before: totalParams, removed: stats.paramsRemoved };
  ctx.details.encoderMacsPerToken = { before: totalMacs, removed: macsRemoved, sequence: 128 };
  if (ev) {
    ctx.details.evaluations = Number(ev.evaluations.toFixed(3));
    ctx.details.settingsEvaluated = ev.settingsEvaluated;
    ctx.details.memoHits = ev.memoHits;
  }
  if (start && best)
    ctx.details.calibration = {
      data: dataName,
      samples: ev?.samples.length,
      lossBefore: r6(start.loss),
      lossAfter: r6(best.loss),
      accuracyBefore: r6(start.accuracy),
      accuracyAfter: r6(best.accuracy),
      note: 'measured on the data that chose what to prune: not a held-out figure',
    };
  if (!changed)
    ctx.report(
      diag(
        'AX3607',
        'warning',
        `nothing pruned: ${explainNothing(
          mode,
          decisions,
          allScores(sig).filter((s) => selected.includes(s.layer) && kindAllowed(s, which)),
          options,
        )}`,
        locOf(ctx.span),
      ),
    );
  const pct = (x: number, t: number) => (t ? ((100 * x) / t).toFixed(1) : '0');
  return {
    changed,
    stats: {
      headsRemoved: stats.headsRemoved,
      neuronsRemoved: stats.neuronsRemoved,
      attentionBlocksRemoved: stats.attentionBlocksRemoved,
      ffnBlocksRemoved: stats.ffnBlocksRemoved,
      paramsRemoved: stats.paramsRemoved,
      nodesRemoved: stats.nodesRemoved,
      ...(ev ? { evaluations: Number(ev.evaluations.toFixed(3)) } : {}),
      searchMs: Math.round(searchMs),
    },
    summary: changed
      ? `${mode}: removed ${describePruneSet(set)} (${pct(stats.paramsRemoved, totalParams)}% of encoder parameters, ${pct(macsRemoved, totalMacs)}% of encoder MACs)` +
        (start && best
          ? objective === 'kl'
            ? `; on '${dataName}' (calibration) KL to the original ${best.loss.toFixed(4)}, agreement with its predictions ${(100 * best.accuracy).toFixed(1)}%`
            : `; on '${dataName}' (calibration) loss ${start.loss.toFixed(4)} -> ${best.loss.toFixed(4)}, accuracy ${(100 * start.accuracy).toFixed(1)}% -> ${(100 * best.accuracy).toFixed(1)}%`
          : '') +
        (ev ? `; ${ev.evaluations.toFixed(1)} evaluations` : '')
      : 'nothing pruned',
  };
}

function explainNothing(mode: string, decisions: Decision[], all: ElementScore[], options: PruneOptions): string {
  if (mode === 'threshold') {
    const lowest = [...all].sort((a, b) => a.score - b.score)[0];
    if (decisions.length) return `every matching element was kept (${decisions[0]!.reason})`;
    return `no element has significance ${options.where!.op} ${options.where!.value}${lowest ? ` (the lowest is ${elementKey(lowest)} at ${r6(lowest.score)})` : ''}`;
  }
  if (mode === 'greedy')
    return `no removal lowered the loss with more than half of the samples no worse (${decisions.length} tried)`;
  return `no element could be removed within the accuracy drop (${decisions.length} tried)`;
}

export const prune: PassDef<PruneOptions> = {
  name: 'prune',
  summary:
    'Physically remove attention heads, FFN neuron groups and whole blocks chosen by significance: by threshold, by greedy search (AxFormer), or to a budget',
  positional: 'elements',
  options: {
    elements: {
      type: 'names',
      summary: 'What may be removed: heads, ffn-groups, blocks (default all three)',
    },
    where: {
      type: 'condition',
      summary: 'Threshold form: remove elements whose score satisfies it (where significance < 0)',
      values: ['significance'],
    },
    keep: {
      type: 'bound',
      summary: 'Threshold form: keep at least this fraction of the heads (FFN groups) of every layer (keep >= 25%)',
    },
    greedy: {
      type: 'boolean',
      summary: "AxFormer's greedy search on data: top layer down, FFN then attention blocks, then their parts",
    },
    tolerance: {
      type: 'number',
      summary: 'Greedy: try a rejected block part by part while its loss stays within this factor of the best',
      default: 1.1,
      min: 1,
    },
    budget: {
      type: 'number',
      percent: true,
      min: 0,
      max: 1,
      summary: 'Budget form: fraction of encoder parameters (or MACs) to remove (budget 40%)',
    },
    target: {
      type: 'enum',
      values: ['params', 'macs'],
      default: 'params',
      summary: 'Budget form: what the budget counts (params or macs)',
    },
    'max-drop': {
      type: 'number',
      min: 0,
      summary:
        'Budget form: largest accuracy drop allowed on the data, in percentage points (default 1; after significance by kl, the drop of agreement with the original model predictions)',
    },
    step: {
      type: 'number',
      percent: true,
      min: 0,
      max: 1,
      summary: 'Budget form: fraction of the encoder removed per step before re-scoring (default 5%)',
    },
    rescore: {
      type: 'integer',
      min: 0,
      summary: 'Budget form: how many next candidates are re-scored after each step (0: never; default 12)',
    },
    on: { type: 'data', summary: "Labelled data for greedy and budget (default: the significance step's data)" },
    layers: { type: 'layers', summary: 'Layers that may be pruned (default all)' },
    compensate: {
      type: 'boolean',
      summary:
        'Least-squares compensation (mask tuning): rescale kept heads and FFN neurons to reconstruct each block output on the data; applied only if it lowers the loss',
      default: false,
    },
  },
  requires: ['significance'],
  messages: {
    AX3601: 'no prunable encoder layer recognized (names the nodes where recognition stopped)',
    AX3608: 'a part of the model that looks like attention or FFN was not recognized, and why (note)',
    AX3603: 'the significance scores do not match the layers of the model any more',
    AX3604: 'unknown element name or a group size different from the scores',
    AX3606: 'no criterion, or more than one form',
    AX3607: 'nothing pruned, and why',
  },
  run: runPrune,
};

registerPass(prune);
