import type { Diagnostic } from '../src/diagnostics/index.js';
import { registerPass, type PassContext, type PassDef, type PassResult } from '../src/pass/index.js';
import { runCse } from './cse.js';
import { runDce } from './dce.js';
import { runEliminateIdentity } from './eliminate-identity.js';
import { foldConstants, runFoldConstants } from './fold-constants.js';
import { addStats, countNodes, plural } from './lib/graph-util.js';
import { runToposort } from './toposort.js';

export interface CleanupOptions {
  'size-limit'?: number;
  'max-iterations'?: number;
}

/**
 * Runs toposort once, then fold-constants, cse, eliminate-identity and dce in rounds until a round changes nothing
 * (a fixed point) or `max-iterations` rounds ran. Notes (declined folds and merges) are those of the last round.
 */
export async function runCleanup(ctx: PassContext, options: CleanupOptions): Promise<PassResult> {
  const maxIter = options['max-iterations'] ?? 8;
  const stats: Record<string, number> = {};
  const before = countNodes(ctx.model);
  let notes: Diagnostic[] = [];
  let details: Record<string, unknown> = {};
  const sub = (): PassContext => ({
    ...ctx,
    details,
    report: (d) => notes.push(d),
  });
  let changed = runToposort(sub()).changed;
  let rounds = 0;
  let fixedPoint = false;
  while (rounds < maxIter) {
    rounds++;
    notes = [];
    details = {};
    let roundChanged = false;
    const steps = [
      () => runFoldConstants(sub(), { 'size-limit': options['size-limit'] ?? 1024 }),
      () => runCse(sub(), {}),
      () => runEliminateIdentity(sub(), {}),
      () => runDce(sub(), {}),
    ];
    for (const step of steps) {
      const r = step();
      addStats(stats, r.stats);
      roundChanged ||= r.changed;
    }
    changed ||= roundChanged;
    if (!roundChanged) {
      fixedPoint = true;
      break;
    }
  }
  for (const d of notes) ctx.report(d);
  if (details.declined) ctx.details.declined = details.declined;
  ctx.details.rounds = rounds;
  ctx.details.fixedPoint = fixedPoint;
  const after = countNodes(ctx.model);
  stats.rounds = rounds;
  stats.nodesBefore = before;
  stats.nodesAfter = after;
  return {
    changed,
    stats,
    summary: `${before} -> ${after} nodes in ${plural(rounds, 'round')}${fixedPoint ? '' : ` (stopped at max-iterations ${maxIter} before a fixed point)`}`,
  };
}

export const cleanup: PassDef<CleanupOptions> = {
  name: 'cleanup',
  summary: 'Fold constants, merge common subexpressions, remove no-ops and dead code, to a fixed point',
  options: {
    'size-limit': foldConstants.options['size-limit']!,
    'max-iterations': { type: 'integer', summary: 'Give up after this many rounds', default: 8, min: 1, max: 100 },
  },
  run: runCleanup,
};

registerPass(cleanup);
