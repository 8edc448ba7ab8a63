import { diag, nodeLoc, type Diagnostic } from '../../src/diagnostics/index.js';
import type { Graph, Model, Node, Value } from '../../src/ir/index.js';
import type { PassContext } from '../../src/pass/index.js';

/**
 * Shared helpers of the cleanup passes (dce, eliminate-identity, fold-constants, cse, toposort, cleanup).
 * Every edit goes through IR methods so use lists stay true.
 */

/** Every graph of the model: the main graph, then subgraphs depth-first in node order (function bodies excluded). */
export function allGraphs(g: Graph): Graph[] {
  const out: Graph[] = [g];
  for (const n of g) for (const sg of n.subgraphs()) out.push(...allGraphs(sg));
  return out;
}

/**
 * Drop every use made by the nodes of a node's subgraphs (recursively), so that removing the node does not leave
 * outer values with stale uses. The subgraph is discarded with the node.
 */
export function detachSubgraphs(node: Node): void {
  for (const sg of node.subgraphs()) {
    for (const n of sg) {
      detachSubgraphs(n);
      n.dropInputs();
    }
  }
}

/** Remove a node whose outputs are no longer used (subgraph uses are dropped too). */
export function removeNode(node: Node): void {
  const g = node.graph;
  if (!g) throw new Error(`node ${node.label()} is not in a graph`);
  detachSubgraphs(node);
  g.remove(node);
}

/** Forget value_info entries of values that left the graph (outputs of removed nodes, removed initializers). */
export function pruneValueInfo(g: Graph): number {
  const before = g.valueInfo.length;
  g.valueInfo = g.valueInfo.filter((v) => v.graph === g);
  return before - g.valueInfo.length;
}

/** Whether the value is a constant of this graph: an initializer that is not also a graph input (overridable). */
export function isConstInitializer(v: Value): boolean {
  return v.constValue !== undefined && !v.isGraphInput();
}

/** A pass's record of a declined rewrite, naming the node and saying why. */
export interface Decline {
  node: string;
  op: string;
  graph: string;
  reason: string;
}

/** Collects declines: into the step's details (JSON report) and as notes with the node's location. */
export class Declines {
  readonly list: Decline[] = [];
  constructor(
    private readonly code: string,
    private readonly verb: string,
  ) {}

  add(node: Node, reason: string): void {
    this.list.push({ node: node.name, op: node.qualifiedOp, graph: node.graph?.name ?? '', reason });
  }

  diagnostics(): Diagnostic[] {
    return this.list.map((d) =>
      diag(
        this.code,
        'note',
        `did not ${this.verb} '${d.node || '<unnamed>'}' (${d.op}): ${d.reason}`,
        nodeLoc(d.node, d.op, d.graph),
      ),
    );
  }

  /** Report the declines to the pass context (notes) and record them under `details.declined`. */
  flush(ctx: PassContext): void {
    if (this.list.length === 0) return;
    for (const d of this.diagnostics()) ctx.report(d);
    const prev = (ctx.details.declined as Decline[] | undefined) ?? [];
    ctx.details.declined = [...prev, ...this.list];
  }
}

/** `1 node`, `2 nodes`: a count with its noun for summaries. */
export function plural(n: number, noun: string, many = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : many}`;
}

/** Sum counters into `into`. */
export function addStats(into: Record<string, number>, from: Record<string, number> | undefined): void {
  for (const [k, v] of Object.entries(from ?? {})) into[k] = (into[k] ?? 0) + v;
}

/** Number of nodes in the model, subgraphs included. */
export function countNodes(m: Model): number {
  let n = 0;
  for (const g of allGraphs(m.graph)) n += g.nodeCount;
  return n;
}
