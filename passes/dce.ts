import type { Graph, Node } from '../src/ir/index.js';
import { registerPass, type PassContext, type PassDef, type PassResult } from '../src/pass/index.js';
import { plural, pruneValueInfo, removeNode } from './lib/graph-util.js';

export interface DceOptions {
  initializers?: boolean;
}

export interface DceStats {
  nodesRemoved: number;
  initializersRemoved: number;
  bytesSaved: number;
}

/** A node is dead when it has outputs and none of them is used (by any node, subgraphs included) or a graph output. */
function isDead(n: Node): boolean {
  if (n.outputs.length === 0) return false; // no result: kept, in case a custom op exists for its effect
  for (const o of n.outputs) if (o.uses().length > 0 || o.isGraphOutput()) return false;
  return true;
}

/**
 * Removes dead nodes of a graph, last to first (so whole dead chains go in one sweep), and recurses into the
 * subgraphs of live nodes (their outputs are the roots there). Repeats while the graph is not topologically sorted
 * and a sweep still removed something.
 */
function dceGraph(g: Graph, stats: DceStats, withInitializers: boolean): void {
  for (;;) {
    let removed = 0;
    for (let n = g.last(); n;) {
      const prev = n.prev();
      if (isDead(n)) {
        removeNode(n);
        removed++;
      } else {
        for (const sg of n.subgraphs()) dceGraph(sg, stats, withInitializers);
      }
      n = prev;
    }
    stats.nodesRemoved += removed;
    if (removed === 0) break;
    // another sweep only finds something if a producer came after its consumer (unsorted graph)
    let again = false;
    for (const n of g)
      if (isDead(n)) {
        again = true;
        break;
      }
    if (!again) break;
  }
  if (withInitializers) {
    for (const v of [...g.initializers]) {
      if (v.uses().length > 0 || v.isGraphOutput()) continue;
      stats.initializersRemoved++;
      stats.bytesSaved += v.constValue?.byteLength ?? 0;
      // also drops the matching graph input (an initializer-backed, optional input) and its value_info
      g.removeInitializer(v);
    }
  }
  pruneValueInfo(g);
}

export function runDce(ctx: PassContext, options: DceOptions): PassResult {
  const stats: DceStats = { nodesRemoved: 0, initializersRemoved: 0, bytesSaved: 0 };
  dceGraph(ctx.model.graph, stats, options.initializers !== false);
  for (const f of ctx.model.functions) dceGraph(f.body, stats, false);
  const changed = stats.nodesRemoved + stats.initializersRemoved > 0;
  return {
    changed,
    stats: { ...stats },
    summary: changed
      ? `removed ${plural(stats.nodesRemoved, 'dead node')} and ${plural(stats.initializersRemoved, 'unused initializer')} (${plural(stats.bytesSaved, 'byte')})`
      : 'nothing dead',
  };
}

export const dce: PassDef<DceOptions> = {
  name: 'dce',
  summary: 'Remove nodes whose results are never used, and unused initializers',
  options: {
    initializers: { type: 'boolean', summary: 'Also remove initializers nothing uses', default: true },
  },
  cleanup: true,
  run: runDce,
};

registerPass(dce);
