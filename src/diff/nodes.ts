/**
 * Node-level difference of two models, matched by structure rather than by name.
 *
 * Matching walks the after-model's nodes in order (a topological order) with a correspondence of values
 * (after → before): graph inputs by name (then position), initializers by content hash (then name), and node
 * outputs as their producers get matched. A node matches an unmatched before-node of the same op whose inputs
 * correspond slot by slot; an input whose correspondence is still unknown (an output of an added node, a changed
 * initializer) matches anything, so one new node does not unsettle everything downstream. Ties go to the node
 * with the same name, then to the earliest. Values are keys by identity, never by name.
 */
import {
  AttrType,
  dtypeName,
  tensorText,
  typeText,
  type Attribute,
  type Graph,
  type Model,
  type Node,
  type Tensor,
  type Value,
} from '../ir/index.js';

export interface TensorInfo {
  name: string;
  dtype: string;
  dims: number[];
  /** Content hash (sha256 prefix of dtype, dims and bytes). */
  hash: string;
}

export interface NodeInfo {
  name: string;
  op: string;
  inputs: string[];
  outputs: string[];
  /** The axc pass that made this node (node metadata `axc.pass`), when stamped. */
  pass?: string;
}

export interface NodeChange {
  op: string;
  before: string;
  after: string;
  /** Human-readable differences, one per item: `attribute perm: [0,2,1,3] → [0,1,2,3]`, `input 1: ...`. */
  changes: string[];
  pass?: string;
}

export interface InitializerChange {
  before: TensorInfo;
  after: TensorInfo;
}

export interface NodeDiff {
  added: NodeInfo[];
  removed: NodeInfo[];
  changed: NodeChange[];
}

export interface InitializerDiff {
  added: TensorInfo[];
  removed: TensorInfo[];
  /** Same role (same name, or same input slot of matched nodes), different content, type or shape. */
  changed: InitializerChange[];
  /** Same content under another name. */
  renamed: { before: string; after: string; hash: string }[];
}

export interface StructuralDiff {
  nodes: NodeDiff;
  initializers: InitializerDiff;
  /** Graph-level differences: opsets, inputs, outputs. */
  graph: string[];
  /** Matched node pairs (after → before), for callers that draw both graphs. */
  nodeMatch: Map<Node, Node>;
  /** After-model nodes that matched a before node but differ from it. */
  changedNodes: Set<Node>;
}

export function tensorInfo(v: Value): TensorInfo {
  const t = v.constValue!;
  return { name: v.name, dtype: dtypeName(t.dataType), dims: [...t.dims], hash: safeHash(t) };
}

function safeHash(t: Tensor): string {
  try {
    return t.contentHash();
  } catch {
    return 'unreadable';
  }
}

export function passOf(n: Node): string | undefined {
  return n.metadataProps?.find(([k]) => k === 'axc.pass')?.[1];
}

export function nodeInfo(n: Node): NodeInfo {
  const info: NodeInfo = {
    name: n.name,
    op: n.qualifiedOp,
    inputs: n.inputs.map((v) => (v ? v.name : '')),
    outputs: n.outputs.map((v) => v.name),
  };
  const p = passOf(n);
  if (p) info.pass = p;
  return info;
}

function attrText(a: Attribute): string {
  const d = a.data;
  switch (d.type) {
    case AttrType.TENSOR:
      return tensorText(d.value);
    case AttrType.GRAPH:
      return `<graph ${d.value.nodeCount} nodes>`;
    case AttrType.STRING:
      return JSON.stringify(new TextDecoder().decode(d.value));
    case AttrType.FLOATS:
    case AttrType.INTS:
      return `[${d.value.join(',')}]`;
    case AttrType.FLOAT:
    case AttrType.INT:
      return String(d.value);
    default:
      return `<${AttrType[d.type]}>`;
  }
}

function attrsKey(n: Node): string {
  return [...n.attributes.values()]
    .map((a) => `${a.name}=${attrText(a)}`)
    .sort()
    .join(';');
}

function valueText(v: Value | null): string {
  if (!v) return '_';
  if (v.constValue) return `%${v.name} ${tensorText(v.constValue)}`;
  return `%${v.name}`;
}

/** Match initializers: same name and content, then same content (renamed). */
function matchInitializers(before: Graph, after: Graph, vmap: Map<Value, Value>, used: Set<Value>, d: InitializerDiff) {
  const byHash = new Map<string, Value[]>();
  const byName = new Map<string, Value>();
  for (const v of before.initializers) {
    const h = safeHash(v.constValue!);
    const list = byHash.get(h);
    if (list) list.push(v);
    else byHash.set(h, [v]);
    byName.set(v.name, v);
  }
  // same name and same content
  for (const a of after.initializers) {
    const b = byName.get(a.name);
    if (b && !used.has(b) && safeHash(b.constValue!) === safeHash(a.constValue!)) {
      vmap.set(a, b);
      used.add(b);
    }
  }
  // same content under another name
  for (const a of after.initializers) {
    if (vmap.has(a)) continue;
    const b = byHash.get(safeHash(a.constValue!))?.find((x) => !used.has(x));
    if (b) {
      vmap.set(a, b);
      used.add(b);
      if (a.name !== b.name) d.renamed.push({ before: b.name, after: a.name, hash: safeHash(a.constValue!) });
    }
  }
}

/**
 * Defaults of attributes that tools write out explicitly (onnxruntime's optimizer does): an absent attribute equals
 * its default, so `axis: (none) → 0` on a Gather is no change. Values as attrText prints them.
 */
const DEFAULTS: Record<string, Record<string, string>> = {
  Gather: { axis: '0' },
  GatherElements: { axis: '0' },
  Shape: { start: '0' },
  LayerNormalization: { axis: '-1', stash_type: '1', epsilon: '0.000009999999747378752' },
  Softmax: { axis: '-1' },
  Reshape: { allowzero: '0' },
  Cast: { saturate: '1' },
  ReduceMean: { keepdims: '1', noop_with_empty_axes: '0' },
  ReduceSum: { keepdims: '1', noop_with_empty_axes: '0' },
  Gemm: { alpha: '1', beta: '1', transA: '0', transB: '0' },
  Concat: {},
  Split: { axis: '0' },
  TopK: { axis: '-1', largest: '1', sorted: '1' },
  Flatten: { axis: '1' },
  Squeeze: {},
  Gelu: { approximate: '"none"' },
};

/**
 * A Constant node of the before model whose tensor became an initializer of the after model (constant folding,
 * onnxruntime's optimizer): the initializer stands for the Constant's output, so its consumers are unchanged.
 */
function matchFoldedConstants(before: Graph, after: Graph, vmap: Map<Value, Value>): void {
  const byHash = new Map<string, Value[]>();
  for (const n of before) {
    if (n.opType !== 'Constant') continue;
    const a = n.attributes.get('value');
    if (!a || a.data.type !== AttrType.TENSOR) continue;
    const h = safeHash(a.data.value);
    const l = byHash.get(h);
    if (l) l.push(n.outputs[0]!);
    else byHash.set(h, [n.outputs[0]!]);
  }
  if (!byHash.size) return;
  const taken = new Set<Value>(vmap.values());
  for (const v of after.initializers) {
    if (vmap.has(v)) continue;
    const list = byHash.get(safeHash(v.constValue!));
    const b = list?.find((x) => x.name === v.name && !taken.has(x)) ?? list?.find((x) => !taken.has(x));
    if (b) {
      vmap.set(v, b);
      taken.add(b);
    }
  }
}

interface Candidate {
  node: Node;
  score: number;
}

/**
 * Score how well before-node `b` fits after-node `a`; null when a known correspondence contradicts it.
 * Each input slot whose correspondence is known and agrees scores 2; unknown slots score 0 (1 when both are
 * initializers of the same type and rank, a likely changed weight).
 */
function score(a: Node, b: Node, vmap: Map<Value, Value>, usedBefore: Set<Value>): number | null {
  let s = 0;
  const n = Math.min(a.inputs.length, b.inputs.length);
  for (let i = 0; i < n; i++) {
    const x = a.inputs[i]!;
    const y = b.inputs[i]!;
    if (x === null || y === null) {
      if (x !== y) return null;
      continue;
    }
    const m = vmap.get(x);
    if (m !== undefined) {
      if (m !== y) return null;
      s += 2;
    } else if (x.constValue && y.constValue) {
      if (usedBefore.has(y)) s -= 1;
      else if (x.constValue.dataType === y.constValue.dataType && x.constValue.dims.length === y.constValue.dims.length)
        s += 1;
    } else if (y.constValue && !x.constValue) {
      s -= 1;
    }
  }
  if (a.inputs.length !== b.inputs.length) s -= 1;
  if (attrsKey(a) === attrsKey(b)) s += 1;
  return s;
}

export function structuralDiff(before: Model, after: Model): StructuralDiff {
  const bg = before.graph;
  const ag = after.graph;
  const vmap = new Map<Value, Value>();
  const usedBefore = new Set<Value>();
  const inits: InitializerDiff = { added: [], removed: [], changed: [], renamed: [] };
  const graph: string[] = [];

  // graph inputs: by name, then by position
  const bInputs = bg.inputs.filter((v) => !v.constValue);
  const aInputs = ag.inputs.filter((v) => !v.constValue);
  for (const [i, a] of aInputs.entries()) {
    const b = bInputs.find((x) => x.name === a.name) ?? bInputs[i];
    if (b && !usedBefore.has(b)) {
      vmap.set(a, b);
      usedBefore.add(b);
      if (typeText(a.type) !== typeText(b.type) || a.name !== b.name)
        graph.push(`input %${b.name}: ${typeText(b.type)} → %${a.name}: ${typeText(a.type)}`);
    } else graph.push(`input added: %${a.name}: ${typeText(a.type)}`);
  }
  for (const b of bInputs) if (!usedBefore.has(b)) graph.push(`input removed: %${b.name}: ${typeText(b.type)}`);

  const opsets = (m: Model) =>
    [...m.opsetImports.entries()]
      .sort(([x], [y]) => x.localeCompare(y))
      .map(([d, v]) => `${d || 'ai.onnx'}:${v}`)
      .join(', ');
  if (opsets(before) !== opsets(after)) graph.push(`opsets {${opsets(before)}} → {${opsets(after)}}`);

  matchInitializers(bg, ag, vmap, usedBefore, inits);
  matchFoldedConstants(bg, ag, vmap);

  // candidates by op, in before order
  const byOp = new Map<string, Node[]>();
  for (const n of bg) {
    const k = `${n.domain}|${n.opType}`;
    const l = byOp.get(k);
    if (l) l.push(n);
    else byOp.set(k, [n]);
  }
  const matchedBefore = new Set<Node>();
  const nodeMatch = new Map<Node, Node>();
  const changed: NodeChange[] = [];
  const changedNodes = new Set<Node>();
  const added: NodeInfo[] = [];

  for (const a of ag) {
    const cands = (byOp.get(`${a.domain}|${a.opType}`) ?? []).filter((b) => !matchedBefore.has(b));
    let best: Candidate | null = null;
    for (const b of cands) {
      const s = score(a, b, vmap, usedBefore);
      if (s === null) continue;
      const sameName = a.name !== '' && a.name === b.name;
      const sameAttrs = attrsKey(a) === attrsKey(b);
      // A match needs evidence: the same name, or equal attributes and at least one input known to correspond (or
      // no inputs at all). A node a pass made with other attributes (Cast to int32 of the mask next to the
      // exporter's Cast to bool) is new, not a changed version of the first node of its op.
      const informative = sameName || (sameAttrs && (s > 1 || (a.inputs.length === 0 && s >= 1)));
      if (!informative) continue;
      const total = s + (sameName ? 0.5 : 0);
      if (!best || total > best.score) best = { node: b, score: total };
    }
    if (!best) {
      // last resort: same name and op, even with contradicting inputs (a rewired node)
      const b = cands.find((x) => x.name !== '' && x.name === a.name);
      if (b) best = { node: b, score: 0 };
    }
    if (!best) {
      added.push(nodeInfo(a));
      continue;
    }
    const b = best.node;
    matchedBefore.add(b);
    nodeMatch.set(a, b);
    a.outputs.forEach((o, i) => {
      const bo = b.outputs[i];
      if (bo && !vmap.has(o)) vmap.set(o, bo);
    });
    const ch = compareNodes(a, b, vmap, usedBefore, inits);
    if (ch.length) {
      const c: NodeChange = { op: a.qualifiedOp, before: b.name, after: a.name, changes: ch };
      const p = passOf(a);
      if (p) c.pass = p;
      changed.push(c);
      changedNodes.add(a);
    }
  }
  const removed = bg
    .nodes()
    .filter((n) => !matchedBefore.has(n))
    .map(nodeInfo);

  // initializers still unmatched: pair by name (changed), the rest added / removed
  const bByName = new Map(bg.initializers.map((v) => [v.name, v]));
  for (const a of ag.initializers) {
    if (vmap.has(a)) continue;
    const b = bByName.get(a.name);
    if (b && !usedBefore.has(b)) {
      vmap.set(a, b);
      usedBefore.add(b);
      inits.changed.push({ before: tensorInfo(b), after: tensorInfo(a) });
    }
  }
  // an initializer standing for a folded Constant node is still new in the file
  for (const a of ag.initializers) if (!vmap.get(a)?.constValue) inits.added.push(tensorInfo(a));
  for (const b of bg.initializers) if (!usedBefore.has(b)) inits.removed.push(tensorInfo(b));

  // graph outputs
  ag.outputs.forEach((a, i) => {
    const b = bg.outputs[i];
    if (!b) graph.push(`output added: %${a.name}: ${typeText(a.type)}`);
    else if (vmap.get(a) !== b || a.name !== b.name || typeText(a.type) !== typeText(b.type))
      graph.push(`output ${i}: %${b.name}: ${typeText(b.type)} → %${a.name}: ${typeText(a.type)}`);
  });
  for (let i = ag.outputs.length; i < bg.outputs.length; i++)
    graph.push(`output removed: %${bg.outputs[i]!.name}: ${typeText(bg.outputs[i]!.type)}`);

  return { nodes: { added, removed, changed }, initializers: inits, graph, nodeMatch, changedNodes };
}

function compareNodes(
  a: Node,
  b: Node,
  vmap: Map<Value, Value>,
  usedBefore: Set<Value>,
  inits: InitializerDiff,
): string[] {
  const out: string[] = [];
  if (a.name !== b.name) out.push(`name '${b.name}' → '${a.name}'`);
  const names = [...new Set([...b.attributes.keys(), ...a.attributes.keys()])].sort();
  for (const k of names) {
    const x = b.attributes.get(k);
    const y = a.attributes.get(k);
    const dflt = DEFAULTS[a.opType]?.[k];
    const xs = x ? attrText(x) : dflt;
    const ys = y ? attrText(y) : dflt;
    if (xs !== ys) out.push(`attribute ${k}: ${xs ?? '(none)'} → ${ys ?? '(none)'}`);
  }
  const n = Math.max(a.inputs.length, b.inputs.length);
  for (let i = 0; i < n; i++) {
    const x = b.inputs[i] ?? null;
    const y = a.inputs[i] ?? null;
    if (x === null && y === null) continue;
    if (y && x && vmap.get(y) === x) continue;
    // the same constant content (e.g. identical constants merged by CSE, or a Constant folded to an initializer)
    if (y && x && constHash(x) !== undefined && constHash(x) === constHash(y)) continue;
    if (y && x && y.constValue && x.constValue && !vmap.has(y) && !usedBefore.has(x)) {
      // the same slot holds a different weight: a changed initializer
      vmap.set(y, x);
      usedBefore.add(x);
      inits.changed.push({ before: tensorInfo(x), after: tensorInfo(y) });
      out.push(`input ${i}: ${valueText(x)} → ${valueText(y)}`);
      continue;
    }
    if (y && x && !vmap.has(y) && !y.constValue) {
      // an input produced by an added node: report the rewiring
      out.push(`input ${i}: ${valueText(x)} → ${valueText(y)}${producerNote(y)}`);
      continue;
    }
    out.push(`input ${i}: ${valueText(x)} → ${valueText(y)}`);
  }
  a.outputs.forEach((o, i) => {
    const bo = b.outputs[i];
    if (!bo) out.push(`output ${i} added: %${o.name}`);
    else if (o.type && bo.type && typeText(o.type) !== typeText(bo.type))
      out.push(`output ${i} type: ${typeText(bo.type)} → ${typeText(o.type)}`);
  });
  return out;
}

/** Content hash of a constant value: an initializer or a Constant node's tensor. */
function constHash(v: Value): string | undefined {
  if (v.constValue) return safeHash(v.constValue);
  const p = v.producer();
  if (p && p.opType === 'Constant') {
    const a = p.attributes.get('value');
    if (a && a.data.type === AttrType.TENSOR) return safeHash(a.data.value);
  }
  return undefined;
}

function producerNote(v: Value): string {
  const p = v.producer();
  if (!p) return '';
  const pass = passOf(p);
  return ` (from ${p.qualifiedOp} '${p.name}'${pass ? `, made by ${pass}` : ''})`;
}
