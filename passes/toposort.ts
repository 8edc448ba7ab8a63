import { AxcError, diag, nodeLoc } from '../src/diagnostics/index.js';
import type { Graph, Node, Value } from '../src/ir/index.js';
import { registerPass, type PassContext, type PassDef, type PassResult } from '../src/pass/index.js';
import { plural } from './lib/graph-util.js';

/** Values a node reads: its inputs and, for nodes with subgraphs, the outer values those subgraphs use. */
function readsOf(n: Node): Value[] {
  const out: Value[] = [];
  for (const v of n.inputs) if (v) out.push(v);
  const visit = (g: Graph) => {
    for (const m of g) {
      for (const v of m.inputs) if (v && v.graph !== g) out.push(v);
      for (const sg of m.subgraphs()) visit(sg);
    }
  };
  for (const sg of n.subgraphs()) visit(sg);
  return out;
}

/** A binary min-heap of node positions, so ready nodes come out in their original order (stable sort). */
class MinHeap {
  private a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(x: number): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= x) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = x;
  }
  pop(): number {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        let mv = last;
        if (l < a.length && a[l]! < mv) {
          m = l;
          mv = a[l]!;
        }
        if (r < a.length && a[r]! < mv) m = r;
        if (m === i) break;
        a[i] = a[m]!;
        i = m;
      }
      a[i] = last;
    }
    return top;
  }
}

/**
 * Stable topological sort of one graph (Kahn's algorithm, always taking the ready node that came first): an already
 * sorted graph keeps its order. Returns the number of nodes that moved. Throws AX3821 on a cycle, naming its nodes.
 */
export function toposortGraph(g: Graph): number {
  const nodes = g.nodes();
  const pos = new Map<Node, number>();
  nodes.forEach((n, i) => pos.set(n, i));
  const pending = new Array<number>(nodes.length).fill(0);
  const users: number[][] = nodes.map(() => []);
  nodes.forEach((n, i) => {
    const seen = new Set<number>();
    for (const v of readsOf(n)) {
      const p = v.producer();
      const j = p ? pos.get(p) : undefined;
      if (j === undefined || j === i || seen.has(j)) continue;
      seen.add(j);
      pending[i]!++;
      users[j]!.push(i);
    }
  });
  const heap = new MinHeap();
  pending.forEach((c, i) => c === 0 && heap.push(i));
  const order: number[] = [];
  while (heap.size) {
    const i = heap.pop();
    order.push(i);
    for (const u of users[i]!) if (--pending[u]! === 0) heap.push(u);
  }
  if (order.length < nodes.length) {
    const stuck = nodes.filter((_, i) => pending[i]! > 0);
    const first = stuck[0]!;
    throw new AxcError(
      diag(
        'AX3821',
        'error',
        `graph '${g.name}' has a cycle through ${stuck.length} nodes: ${stuck
          .slice(0, 5)
          .map((n) => n.label())
          .join(', ')}${stuck.length > 5 ? ', ...' : ''}`,
        nodeLoc(first.name, first.qualifiedOp, g.name),
      ),
    );
  }
  let moved = 0;
  order.forEach((i, k) => i !== k && moved++);
  if (moved > 0) for (const i of order) g.moveBefore(nodes[i]!, null);
  for (const n of nodes) for (const sg of n.subgraphs()) moved += toposortGraph(sg);
  return moved;
}

export function runToposort(ctx: PassContext): PassResult {
  let moved = toposortGraph(ctx.model.graph);
  for (const f of ctx.model.functions) moved += toposortGraph(f.body);
  return {
    changed: moved > 0,
    stats: { nodesMoved: moved },
    summary: moved > 0 ? `moved ${plural(moved, 'node')} into topological order` : 'already in topological order',
  };
}

export const toposort: PassDef<Record<string, never>> = {
  name: 'toposort',
  summary: 'Sort nodes topologically, keeping the existing order where it is already valid',
  options: {},
  messages: { AX3821: 'the graph has a cycle' },
  run: runToposort,
};

registerPass(toposort);
