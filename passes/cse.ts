import {
  AttrType,
  isFloatType,
  type Attribute,
  type Graph,
  type Node,
  type Tensor,
  type Value,
} from '../src/ir/index.js';
import { registerPass, type PassContext, type PassDef, type PassResult } from '../src/pass/index.js';
import { Declines, plural, pruneValueInfo, removeNode } from './lib/graph-util.js';

export interface CseOptions {
  /** Merge identical constant initializers: integer and bool tensors and float scalars (default true). */
  initializers?: boolean;
  /**
   * Also merge identical float initializers of more than one element (weights). Off by default: two layers would
   * then share one weight, and a later pass that edits it for one layer would edit it for both.
   */
  'merge-weights'?: boolean;
}

interface Stats {
  nodesRemoved: number;
  initializersMerged: number;
  bytesSaved: number;
}

/** Ops whose results differ from call to call: never merged. */
const NONDETERMINISTIC = new Set([
  'RandomNormal',
  'RandomNormalLike',
  'RandomUniform',
  'RandomUniformLike',
  'Multinomial',
  'Bernoulli',
  'Dropout',
]);
/** Domains whose ops are known to be pure functions of their inputs and attributes. */
const PURE_DOMAINS = new Set(['', 'ai.onnx', 'com.microsoft']);

const utf8 = new TextDecoder();

const num = (v: number) => (Object.is(v, -0) ? '-0' : String(v));

function tensorKey(t: Tensor): string {
  return `${t.dataType}[${t.dims.join(',')}]#${t.contentHash()}`;
}

/** A canonical key of an attribute value; undefined for graphs (nodes with subgraphs are not merged). */
function attrKey(a: Attribute): string | undefined {
  const d = a.data;
  if (a.refAttrName !== undefined) return `@${a.refAttrName}`;
  switch (d.type) {
    case AttrType.FLOAT:
      return `f${num(d.value)}`;
    case AttrType.INT:
      return `i${d.value}`;
    case AttrType.STRING:
      return `s${JSON.stringify(utf8.decode(d.value))}`;
    case AttrType.FLOATS:
      return `F[${d.value.map(num).join(',')}]`;
    case AttrType.INTS:
      return `I[${d.value.join(',')}]`;
    case AttrType.STRINGS:
      return `S${JSON.stringify(d.value.map((s) => utf8.decode(s)))}`;
    case AttrType.TENSOR:
      return `t${tensorKey(d.value)}`;
    case AttrType.TENSORS:
      return `T[${d.value.map(tensorKey).join(',')}]`;
    case AttrType.TYPE_PROTO:
    case AttrType.TYPE_PROTOS:
      return `y${JSON.stringify(d.value)}`;
    default:
      return undefined;
  }
}

/** Key of a node: same key means same op, attributes and inputs (by identity), hence the same results. */
function nodeKey(n: Node, ids: Map<Value, number>): string | undefined {
  if (!PURE_DOMAINS.has(n.domain) || NONDETERMINISTIC.has(n.opType) || n.outputs.length === 0) return undefined;
  const attrs: string[] = [];
  for (const name of [...n.attributes.keys()].sort()) {
    const k = attrKey(n.attributes.get(name)!);
    if (k === undefined) return undefined;
    attrs.push(`${name}=${k}`);
  }
  const ins = n.inputs.map((v) => {
    if (!v) return '_';
    let id = ids.get(v);
    if (id === undefined) ids.set(v, (id = ids.size));
    return String(id);
  });
  return `${n.domain}|${n.opType}|${n.overload ?? ''}|${n.outputs.length}|${attrs.join(';')}|${ins.join(',')}`;
}

function mergeInitializers(g: Graph, weights: boolean, stats: Stats): void {
  const groups = new Map<string, Value[]>();
  for (const v of g.initializers) {
    const t = v.constValue!;
    if (!weights && isFloatType(t.dataType) && t.numElements > 1) continue;
    // initializers that are also graph inputs can be overridden by a feed; graph outputs keep their names
    if (v.isGraphInput() || v.isGraphOutput()) continue;
    // hashing would load an external tensor or compute a lazy one: left as they are
    if (t.storageKind === 'external' || t.storageKind === 'lazy') continue;
    const k = `${t.dataType}[${t.dims.join(',')}]`;
    const list = groups.get(k);
    if (list) list.push(v);
    else groups.set(k, [v]);
  }
  for (const list of groups.values()) {
    if (list.length < 2) continue;
    const seen = new Map<string, Value[]>();
    for (const v of list) {
      const t = v.constValue!;
      const h = t.contentHash();
      const same = seen.get(h);
      const twin = same?.find((w) => sameContent(w.constValue!, t));
      if (twin) {
        v.replaceAllUsesWith(twin);
        g.removeInitializer(v);
        stats.initializersMerged++;
        stats.bytesSaved += t.byteLength;
      } else if (same) same.push(v);
      else seen.set(h, [v]);
    }
  }
}

function sameContent(a: Tensor, b: Tensor): boolean {
  if (a.dataType !== b.dataType || a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i]))
    return false;
  if (a.storageKind === 'strings' || b.storageKind === 'strings') {
    const x = a.strings();
    const y = b.strings();
    return x.length === y.length && x.every((s, i) => Buffer.compare(s, y[i]!) === 0);
  }
  return Buffer.compare(a.bytes(), b.bytes()) === 0;
}

function cseGraph(g: Graph, withInits: boolean, weights: boolean, declines: Declines, stats: Stats): void {
  if (withInits) mergeInitializers(g, weights, stats);
  const ids = new Map<Value, number>();
  const seen = new Map<string, Node>();
  for (const n of g) {
    if (n.subgraphs().length > 0) {
      for (const sg of n.subgraphs()) cseGraph(sg, withInits, weights, declines, stats);
      continue;
    }
    const key = nodeKey(n, ids);
    if (key === undefined) continue;
    const first = seen.get(key);
    if (!first) {
      seen.set(key, n);
      continue;
    }
    const kept = n.outputs.find((o) => o.isGraphOutput());
    if (kept) {
      declines.add(n, `it computes the same as ${first.label()}, but its output '${kept.name}' is a graph output`);
      continue;
    }
    n.outputs.forEach((o, i) => {
      const to = first.outputs[i]!;
      if (!to.type && o.type) to.type = o.type;
      o.replaceAllUsesWith(to);
    });
    removeNode(n);
    stats.nodesRemoved++;
  }
  pruneValueInfo(g);
}

export function runCse(ctx: PassContext, options: CseOptions): PassResult {
  const stats: Stats = { nodesRemoved: 0, initializersMerged: 0, bytesSaved: 0 };
  const declines = new Declines('AX3841', 'merge');
  const weights = options['merge-weights'] === true;
  cseGraph(ctx.model.graph, options.initializers !== false, weights, declines, stats);
  for (const f of ctx.model.functions) cseGraph(f.body, false, false, declines, stats);
  declines.flush(ctx);
  const changed = stats.nodesRemoved + stats.initializersMerged > 0;
  return {
    changed,
    stats: { ...stats },
    summary: changed
      ? `merged ${plural(stats.nodesRemoved, 'duplicate node')} and ${plural(stats.initializersMerged, 'duplicate initializer')}`
      : 'no common subexpression',
  };
}

export const cse: PassDef<CseOptions> = {
  name: 'cse',
  summary: 'Merge nodes that compute the same thing (same op, attributes and inputs) and identical initializers',
  options: {
    initializers: {
      type: 'boolean',
      summary: 'Merge identical constant initializers (integer and bool tensors, float scalars)',
      default: true,
    },
    'merge-weights': {
      type: 'boolean',
      summary: 'Also merge identical float tensors of more than one element (layers would share a weight)',
      default: false,
    },
  },
  messages: { AX3841: 'a duplicate node was kept, with the reason' },
  run: runCse,
};

registerPass(cse);
