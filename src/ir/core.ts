import { DataType } from './dtype.js';
import { Tensor } from './tensor.js';

/** A dimension: a fixed size, a symbolic name (`batch_size`), or unknown (null). */
export type Dim = number | string | null;
export type Shape = Dim[];

/** TypeProto. `denotation` and dim denotations are carried for a lossless round trip. */
export type TypeInfo =
  | { kind: 'tensor'; elemType: DataType; shape?: Shape; dimDenotations?: (string | undefined)[]; denotation?: string }
  | {
      kind: 'sparse_tensor';
      elemType: DataType;
      shape?: Shape;
      dimDenotations?: (string | undefined)[];
      denotation?: string;
    }
  | { kind: 'sequence'; elem?: TypeInfo; denotation?: string }
  | { kind: 'map'; keyType: DataType; value?: TypeInfo; denotation?: string }
  | { kind: 'optional'; elem?: TypeInfo; denotation?: string }
  | { kind: 'opaque'; domain?: string; name?: string; denotation?: string }
  | { kind: 'none'; denotation?: string };

export function tensorType(elemType: DataType, shape?: Shape): TypeInfo {
  return shape ? { kind: 'tensor', elemType, shape } : { kind: 'tensor', elemType };
}

export interface Use {
  node: Node;
  index: number;
}

/** AttributeProto.AttributeType */
export enum AttrType {
  UNDEFINED = 0,
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  GRAPH = 5,
  SPARSE_TENSOR = 11,
  TYPE_PROTO = 13,
  FLOATS = 6,
  INTS = 7,
  STRINGS = 8,
  TENSORS = 9,
  GRAPHS = 10,
  SPARSE_TENSORS = 12,
  TYPE_PROTOS = 14,
}

/** An opaque protobuf message carried byte for byte (sparse tensors and other rarely used messages). */
export interface Opaque {
  bytes: Uint8Array;
}

export type AttrValue =
  | { type: AttrType.FLOAT; value: number }
  | { type: AttrType.INT; value: number }
  | { type: AttrType.STRING; value: Uint8Array }
  | { type: AttrType.TENSOR; value: Tensor }
  | { type: AttrType.GRAPH; value: Graph }
  | { type: AttrType.SPARSE_TENSOR; value: Opaque }
  | { type: AttrType.TYPE_PROTO; value: TypeInfo }
  | { type: AttrType.FLOATS; value: number[] }
  | { type: AttrType.INTS; value: number[] }
  | { type: AttrType.STRINGS; value: Uint8Array[] }
  | { type: AttrType.TENSORS; value: Tensor[] }
  | { type: AttrType.GRAPHS; value: Graph[] }
  | { type: AttrType.SPARSE_TENSORS; value: Opaque[] }
  | { type: AttrType.TYPE_PROTOS; value: TypeInfo[] }
  | { type: AttrType.UNDEFINED; value: null };

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

export class Attribute {
  name: string;
  data: AttrValue;
  docString?: string;
  /** Set in function bodies: the attribute refers to the calling node's attribute of that name. */
  refAttrName?: string;
  /** The `type` field was present in the file (always written by current exporters). */
  typeWritten = true;
  unknownFields?: Uint8Array[];

  constructor(name: string, data: AttrValue) {
    this.name = name;
    this.data = data;
  }

  get type(): AttrType {
    return this.data.type;
  }

  static int(name: string, v: number): Attribute {
    return new Attribute(name, { type: AttrType.INT, value: v });
  }
  static float(name: string, v: number): Attribute {
    return new Attribute(name, { type: AttrType.FLOAT, value: v });
  }
  static string(name: string, v: string): Attribute {
    return new Attribute(name, { type: AttrType.STRING, value: utf8.encode(v) });
  }
  static ints(name: string, v: number[]): Attribute {
    return new Attribute(name, { type: AttrType.INTS, value: v });
  }
  static floats(name: string, v: number[]): Attribute {
    return new Attribute(name, { type: AttrType.FLOATS, value: v });
  }
  static tensor(name: string, t: Tensor): Attribute {
    return new Attribute(name, { type: AttrType.TENSOR, value: t });
  }
  static graph(name: string, g: Graph): Attribute {
    return new Attribute(name, { type: AttrType.GRAPH, value: g });
  }
}

export type AttrInput = number | string | number[] | Tensor | Graph | Attribute;

let valueCounter = 0;

/** An SSA value: one producer (a node output, or none for graph inputs and initializers) and ordered uses. */
export class Value {
  name: string;
  type?: TypeInfo;
  docString?: string;
  metadataProps?: [string, string][];
  /** The initializer tensor when this value is a graph initializer. */
  constValue?: Tensor;
  /** Opaque SparseTensorProto when the value is a sparse initializer. */
  sparseInit?: Opaque;
  /** The producing node and output slot, if any. */
  private _producer: Node | null = null;
  private _index = -1;
  private readonly _uses: Use[] = [];
  /** Unique per process; for ordering in maps only, never printed. */
  readonly id = valueCounter++;
  /** The graph that defines this value (input, initializer or node output). */
  graph: Graph | null = null;

  constructor(name: string, type?: TypeInfo) {
    this.name = name;
    this.type = type;
  }

  producer(): Node | null {
    return this._producer;
  }
  outputIndex(): number {
    return this._index;
  }
  uses(): readonly Use[] {
    return this._uses;
  }
  /** Nodes that consume this value (a node may appear once per input slot). */
  consumers(): Node[] {
    const out: Node[] = [];
    for (const u of this._uses) if (!out.includes(u.node)) out.push(u.node);
    return out;
  }
  isGraphInput(): boolean {
    return this.graph !== null && this.graph.inputs.includes(this);
  }
  isGraphOutput(): boolean {
    return this.graph !== null && this.graph.outputs.includes(this);
  }
  isInitializer(): boolean {
    return this.constValue !== undefined;
  }
  get shape(): Shape | undefined {
    return this.type && (this.type.kind === 'tensor' || this.type.kind === 'sparse_tensor')
      ? this.type.shape
      : undefined;
  }
  get elemType(): DataType | undefined {
    return this.type && (this.type.kind === 'tensor' || this.type.kind === 'sparse_tensor')
      ? this.type.elemType
      : undefined;
  }

  /** Replace every use of this value by `other` (graph outputs included). */
  replaceAllUsesWith(other: Value, opts: { replaceGraphOutputs?: boolean } = {}): void {
    if (other === this) return;
    for (const u of [...this._uses]) u.node.replaceInput(u.index, other);
    if (opts.replaceGraphOutputs !== false && this.graph) {
      const outs = this.graph.outputs;
      for (let i = 0; i < outs.length; i++) if (outs[i] === this) outs[i] = other;
    }
  }

  /** @internal */
  _setProducer(node: Node | null, index: number): void {
    this._producer = node;
    this._index = index;
  }
  /** @internal */
  _addUse(node: Node, index: number): void {
    this._uses.push({ node, index });
  }
  /** @internal */
  _removeUse(node: Node, index: number): void {
    const i = this._uses.findIndex((u) => u.node === node && u.index === index);
    if (i >= 0) this._uses.splice(i, 1);
  }
}

let nodeCounter = 0;

/** A node. Inputs are read-only: edit them with replaceInput/setInputs so use lists stay true. */
export class Node {
  domain: string;
  opType: string;
  name: string;
  overload?: string;
  docString?: string;
  metadataProps?: [string, string][];
  /** Opaque NodeProto fields axc does not model (device_configurations, newer fields). */
  unknownFields?: Uint8Array[];
  readonly attributes = new Map<string, Attribute>();
  /** The name / domain field was present in the file even if empty (kept for a lossless round trip). */
  nameWritten = false;
  domainWritten = false;
  private _inputs: (Value | null)[] = [];
  private _outputs: Value[] = [];
  /** @internal linked list */
  _prev: Node | null = null;
  /** @internal linked list */
  _next: Node | null = null;
  /** @internal */
  _graph: Graph | null = null;
  readonly id = nodeCounter++;

  constructor(
    domain: string,
    opType: string,
    inputs: readonly (Value | null)[],
    outputs: readonly Value[] | number,
    name = '',
    attributes?: Record<string, AttrInput> | Attribute[],
  ) {
    this.domain = domain;
    this.opType = opType;
    this.name = name;
    inputs.forEach((v, i) => {
      this._inputs.push(v);
      v?._addUse(this, i);
    });
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => new Value('')) : outputs;
    outs.forEach((v, i) => {
      if (v.producer()) throw new Error(`value '${v.name}' already has a producer`);
      v._setProducer(this, i);
      this._outputs.push(v);
    });
    if (attributes) {
      if (Array.isArray(attributes)) for (const a of attributes) this.attributes.set(a.name, a);
      else for (const [k, v] of Object.entries(attributes)) this.setAttr(k, v);
    }
  }

  get inputs(): readonly (Value | null)[] {
    return this._inputs;
  }
  get outputs(): readonly Value[] {
    return this._outputs;
  }
  get graph(): Graph | null {
    return this._graph;
  }
  input(i: number): Value | null {
    return this._inputs[i] ?? null;
  }
  output(i: number): Value {
    const v = this._outputs[i];
    if (!v) throw new Error(`node '${this.name}' (${this.opType}) has no output ${i}`);
    return v;
  }

  replaceInput(index: number, v: Value | null): void {
    const old = this._inputs[index];
    if (old === v) return;
    old?._removeUse(this, index);
    this._inputs[index] = v;
    v?._addUse(this, index);
  }

  setInputs(values: readonly (Value | null)[]): void {
    this._inputs.forEach((v, i) => v?._removeUse(this, i));
    this._inputs = [];
    values.forEach((v, i) => {
      this._inputs.push(v);
      v?._addUse(this, i);
    });
  }

  /** Drop all uses this node makes (before it is discarded). */
  dropInputs(): void {
    this.setInputs([]);
  }

  /** Append an output value (used by the reader and by rewrites that add outputs). */
  addOutput(v: Value): void {
    if (v.producer()) throw new Error(`value '${v.name}' already has a producer`);
    v._setProducer(this, this._outputs.length);
    v.graph = this._graph;
    this._outputs.push(v);
  }

  setAttr(name: string, v: AttrInput): void {
    this.attributes.set(name, toAttribute(name, v));
  }

  attr(name: string): Attribute | undefined {
    return this.attributes.get(name);
  }
  getInt(name: string, dflt: number): number;
  getInt(name: string): number | undefined;
  getInt(name: string, dflt?: number): number | undefined {
    const a = this.attributes.get(name);
    return a && a.data.type === AttrType.INT ? a.data.value : dflt;
  }
  getFloat(name: string, dflt: number): number;
  getFloat(name: string): number | undefined;
  getFloat(name: string, dflt?: number): number | undefined {
    const a = this.attributes.get(name);
    return a && a.data.type === AttrType.FLOAT ? a.data.value : dflt;
  }
  getInts(name: string): number[] | undefined {
    const a = this.attributes.get(name);
    return a && a.data.type === AttrType.INTS ? a.data.value : undefined;
  }
  getFloats(name: string): number[] | undefined {
    const a = this.attributes.get(name);
    return a && a.data.type === AttrType.FLOATS ? a.data.value : undefined;
  }
  getString(name: string, dflt: string): string;
  getString(name: string): string | undefined;
  getString(name: string, dflt?: string): string | undefined {
    const a = this.attributes.get(name);
    return a && a.data.type === AttrType.STRING ? utf8d.decode(a.data.value) : dflt;
  }
  getTensor(name: string): Tensor | undefined {
    const a = this.attributes.get(name);
    return a && a.data.type === AttrType.TENSOR ? a.data.value : undefined;
  }
  /** Subgraphs held in GRAPH and GRAPHS attributes. */
  subgraphs(): Graph[] {
    const out: Graph[] = [];
    for (const a of this.attributes.values()) {
      if (a.data.type === AttrType.GRAPH) out.push(a.data.value);
      else if (a.data.type === AttrType.GRAPHS) out.push(...a.data.value);
    }
    return out;
  }

  /** `Add` or `com.microsoft.Attention`, for messages. */
  get qualifiedOp(): string {
    return this.domain && this.domain !== 'ai.onnx' ? `${this.domain}.${this.opType}` : this.opType;
  }

  /** A label for messages: `'name' (Op)`. */
  label(): string {
    return `'${this.name || '<unnamed>'}' (${this.qualifiedOp})`;
  }

  prev(): Node | null {
    return this._prev;
  }
  next(): Node | null {
    return this._next;
  }
}

function toAttribute(name: string, v: AttrInput): Attribute {
  if (v instanceof Attribute) return v;
  if (typeof v === 'number') return Number.isInteger(v) ? Attribute.int(name, v) : Attribute.float(name, v);
  if (typeof v === 'string') return Attribute.string(name, v);
  if (Array.isArray(v)) return v.every(Number.isInteger) ? Attribute.ints(name, v) : Attribute.floats(name, v);
  if (v instanceof Tensor) return Attribute.tensor(name, v);
  return Attribute.graph(name, v);
}

/**
 * A graph: inputs, outputs, initializers, and nodes in a doubly linked list that stays safe to edit while iterating.
 * Values are compared by identity; names are labels kept unique by `freshName`.
 */
export class Graph {
  name: string;
  docString?: string;
  metadataProps?: [string, string][];
  inputs: Value[] = [];
  outputs: Value[] = [];
  /** Initializer values in file order (each has constValue). */
  initializers: Value[] = [];
  /** Sparse initializers (opaque), in file order. */
  sparseInitializers: Value[] = [];
  /** Values that carry a value_info entry, in the order they are written. */
  valueInfo: Value[] = [];
  /** GraphProto fields axc does not model (quantization_annotation, newer fields). */
  unknownFields?: Uint8Array[];
  /** The node whose attribute holds this graph, for subgraphs. */
  parentNode: Node | null = null;
  private _head: Node | null = null;
  private _tail: Node | null = null;
  private _count = 0;
  private usedNames: Set<string> | null = null;

  constructor(name = '') {
    this.name = name;
  }

  get nodeCount(): number {
    return this._count;
  }

  /** Iterate nodes in order. Removing or inserting nodes during iteration is safe. */
  *[Symbol.iterator](): IterableIterator<Node> {
    let n = this._head;
    while (n) {
      const next = n._next;
      yield n;
      n = n._graph === this ? n._next : next;
    }
  }

  nodes(): Node[] {
    return [...this];
  }

  first(): Node | null {
    return this._head;
  }
  last(): Node | null {
    return this._tail;
  }

  /** Append a node (or insert before/after an anchor). Outputs become values of this graph. */
  append(node: Node): Node {
    return this.insertAfter(this._tail, node);
  }

  insertBefore(anchor: Node | null, node: Node): Node {
    if (anchor === null) return this.insertAfter(this._tail, node);
    return this.insertAfter(anchor._prev, node, anchor === this._head);
  }

  insertAfter(anchor: Node | null, node: Node, atHead = false): Node {
    if (node._graph) throw new Error(`node ${node.label()} already belongs to a graph`);
    node._graph = this;
    for (const o of node.outputs) {
      o.graph = this;
      this.claimName(o);
    }
    if (node.name) node.name = this.claimNodeName(node.name);
    if (anchor === null && (atHead || this._head === null)) {
      node._next = this._head;
      if (this._head) this._head._prev = node;
      this._head = node;
      if (!this._tail) this._tail = node;
    } else {
      const a = anchor ?? this._tail!;
      node._prev = a;
      node._next = a._next;
      if (a._next) a._next._prev = node;
      a._next = node;
      if (this._tail === a) this._tail = node;
    }
    this._count++;
    return node;
  }

  /** Unlink a node. With `safe` (default) it refuses while an output is still used or is a graph output. */
  remove(node: Node, opts: { safe?: boolean } = {}): void {
    if (node._graph !== this) throw new Error(`node ${node.label()} is not in graph '${this.name}'`);
    if (opts.safe !== false) {
      for (const o of node.outputs) {
        if (o.uses().length > 0)
          throw new Error(
            `cannot remove ${node.label()}: output '${o.name}' is still used by ${o.uses()[0]!.node.label()}`,
          );
        if (this.outputs.includes(o))
          throw new Error(`cannot remove ${node.label()}: output '${o.name}' is a graph output`);
      }
    }
    node.dropInputs();
    if (node._prev) node._prev._next = node._next;
    else this._head = node._next;
    if (node._next) node._next._prev = node._prev;
    else this._tail = node._prev;
    node._prev = node._next = null;
    node._graph = null;
    for (const o of node.outputs) o.graph = null;
    this._count--;
  }

  /** Reorder: move a node before `anchor` (used by topological sort). */
  moveBefore(node: Node, anchor: Node | null): void {
    if (node === anchor) return;
    this.unlink(node);
    if (anchor === null) {
      node._prev = this._tail;
      if (this._tail) this._tail._next = node;
      else this._head = node;
      this._tail = node;
    } else {
      node._next = anchor;
      node._prev = anchor._prev;
      if (anchor._prev) anchor._prev._next = node;
      else this._head = node;
      anchor._prev = node;
    }
    node._graph = this;
    this._count++;
  }

  private unlink(node: Node): void {
    if (node._prev) node._prev._next = node._next;
    else this._head = node._next;
    if (node._next) node._next._prev = node._prev;
    else this._tail = node._prev;
    node._prev = node._next = null;
    this._count--;
  }

  addInput(v: Value): Value {
    v.graph = this;
    this.claimName(v);
    this.inputs.push(v);
    return v;
  }

  addInitializer(v: Value, t?: Tensor): Value {
    if (t) v.constValue = t;
    if (!v.constValue) throw new Error(`initializer '${v.name}' has no tensor`);
    if (!v.type) v.type = { kind: 'tensor', elemType: v.constValue.dataType, shape: [...v.constValue.dims] };
    v.graph = this;
    this.claimName(v);
    v.constValue.name = v.name;
    this.initializers.push(v);
    return v;
  }

  /** Make and register an initializer value for a tensor, with a fresh name derived from `base`. */
  initializer(base: string, t: Tensor): Value {
    this.trackNames();
    const v = new Value(base);
    return this.addInitializer(v, t);
  }

  removeInitializer(v: Value): void {
    const i = this.initializers.indexOf(v);
    if (i >= 0) this.initializers.splice(i, 1);
    const j = this.inputs.indexOf(v);
    if (j >= 0) this.inputs.splice(j, 1);
    const k = this.valueInfo.indexOf(v);
    if (k >= 0) this.valueInfo.splice(k, 1);
    v.graph = null;
  }

  /** Every name used by values and nodes of this graph (and, lazily, kept up to date by claim). */
  private names(): Set<string> {
    if (!this.usedNames) {
      const s = new Set<string>();
      for (const v of this.inputs) s.add(v.name);
      for (const v of this.initializers) s.add(v.name);
      for (const v of this.sparseInitializers) s.add(v.name);
      for (const n of this) {
        if (n.name) s.add(n.name);
        for (const o of n.outputs) if (o.name) s.add(o.name);
      }
      let p = this.parentNode?.graph ?? null;
      while (p) {
        for (const name of p.names()) s.add(name);
        p = p.parentNode?.graph ?? null;
      }
      this.usedNames = s;
    }
    return this.usedNames;
  }

  /** A name derived from `base` that no value or node of this graph uses yet (deterministic: base, base_1, ...). */
  freshName(base: string): string {
    const s = this.names();
    if (!s.has(base)) return base;
    let i = 1;
    while (s.has(`${base}_${i}`)) i++;
    return `${base}_${i}`;
  }

  /** Give a value a unique name (keeps its name when free). Empty names stay empty (optional outputs). */
  claimName(v: Value): void {
    if (!this.usedNames) return; // the reader and bulk builders rely on names being unique already
    if (v.name === '') return;
    const s = this.usedNames;
    if (!s.has(v.name)) {
      s.add(v.name);
      return;
    }
    v.name = this.freshName(v.name);
    s.add(v.name);
  }

  private claimNodeName(name: string): string {
    if (!this.usedNames) return name;
    const n = this.usedNames.has(name) ? this.freshName(name) : name;
    this.usedNames.add(n);
    return n;
  }

  /** Start tracking names so inserted values and nodes get unique ones (passes call this via `edit`). */
  trackNames(): void {
    this.names();
  }
  /** Forget the name cache (after renames done outside the graph's methods). */
  invalidateNames(): void {
    this.usedNames = null;
  }
}

/** ModelProto. */
export class Model {
  irVersion?: number;
  opsetImports: Map<string, number> = new Map();
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  docString?: string;
  metadataProps?: [string, string][];
  graph: Graph;
  functions: OnnxFunction[] = [];
  /** Domains whose OperatorSetId was written without a domain field (the default domain, by some exporters). */
  opsetDomainOmitted = new Set<string>();
  /** ModelProto fields axc does not model (training_info, configuration, newer fields). */
  unknownFields?: Uint8Array[];

  constructor(graph: Graph) {
    this.graph = graph;
  }

  /** The opset version of a domain ('' or 'ai.onnx' = default domain). */
  opset(domain = ''): number | undefined {
    return this.opsetImports.get(domain === 'ai.onnx' ? '' : domain) ?? this.opsetImports.get(domain);
  }

  getMetadata(key: string): string | undefined {
    return this.metadataProps?.find(([k]) => k === key)?.[1];
  }

  setMetadata(key: string, value: string): void {
    this.metadataProps ??= [];
    const e = this.metadataProps.find(([k]) => k === key);
    if (e) e[1] = value;
    else this.metadataProps.push([key, value]);
  }
}

/** FunctionProto: a body graph whose inputs/outputs are formal parameters. */
export class OnnxFunction {
  name: string;
  domain: string;
  overload?: string;
  body: Graph;
  /** Attribute names without defaults. */
  attributeNames: string[] = [];
  /** Attributes with default values. */
  attributeProtos: Attribute[] = [];
  opsetImports: Map<string, number> = new Map();
  docString?: string;
  metadataProps?: [string, string][];
  unknownFields?: Uint8Array[];

  constructor(name: string, domain: string, body: Graph) {
    this.name = name;
    this.domain = domain;
    this.body = body;
  }
}

/** Walk a graph and every subgraph, depth-first, nodes in order. */
export function* allNodes(g: Graph): IterableIterator<Node> {
  for (const n of g) {
    yield n;
    for (const sg of n.subgraphs()) yield* allNodes(sg);
  }
}
