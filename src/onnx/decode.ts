import {
  Attribute,
  AttrType,
  DataType,
  Graph,
  Model,
  Node,
  OnnxFunction,
  Tensor,
  Value,
  type AttrValue,
  type ExternalRef,
  type FileRange,
  type Opaque,
  type Shape,
  type TensorStorage,
  type TypeInfo,
  type TypedField,
} from '../ir/index.js';
import { DecodeError, WireReader, readRepeatedFloat, readRepeatedVarint } from './wire.js';

export interface DecodeOptions {
  /** Loads an external tensor's bytes (resolved and checked by the caller). Called lazily, once per tensor. */
  loadExternal?: (ref: ExternalRef, tensorName: string) => Uint8Array;
  /** File ranges referred to by FILE_RANGE_MARKER fields of a skeleton (see scan.ts). */
  fileRanges?: FileRange[];
}

/** TensorProto field number used inside a skeleton to mark a file-backed raw_data (see scan.ts). */
const FILE_RANGE_MARKER = 19999;

/** Decode an ONNX ModelProto. Tensor data stays as views into `buf`. Throws DecodeError on malformed input. */
export function decodeModel(buf: Uint8Array, opts: DecodeOptions = {}): Model {
  const d = new Decoder(buf, opts);
  return d.model();
}

type Range = [number, number];

class Scope {
  readonly values = new Map<string, Value>();
  readonly pending = new Map<string, Value>();
  constructor(readonly parent: Scope | null) {}
  lookup(name: string): Value | undefined {
    const v = this.values.get(name);
    if (v) return v;
    return this.parent?.lookup(name);
  }
}

class Decoder {
  constructor(
    readonly buf: Uint8Array,
    readonly opts: DecodeOptions,
  ) {}

  private reader(r: Range): WireReader {
    return new WireReader(this.buf, r[0], r[1]);
  }

  model(): Model {
    const r = new WireReader(this.buf);
    let graphRange: Range | undefined;
    const fnRanges: Range[] = [];
    const m = new Model(new Graph());
    const unknown: Uint8Array[] = [];
    let sawAnyField = false;
    while (!r.done()) {
      const tagStart = r.pos;
      const tag = r.varint();
      const field = tag >>> 3;
      const wt = tag & 7;
      if (field === 0) r.fail('invalid field number 0 (not an ONNX model?)', tagStart);
      sawAnyField = true;
      switch (field) {
        case 1:
          m.irVersion = this.expectVarint(r, wt, tagStart);
          break;
        case 2:
          m.producerName = this.expectString(r, wt, tagStart);
          break;
        case 3:
          m.producerVersion = this.expectString(r, wt, tagStart);
          break;
        case 4:
          m.domain = this.expectString(r, wt, tagStart);
          break;
        case 5:
          m.modelVersion = this.expectVarint(r, wt, tagStart);
          break;
        case 6:
          m.docString = this.expectString(r, wt, tagStart);
          break;
        case 7:
          this.expectWire(r, wt, 2, tagStart);
          graphRange = r.lengthDelimited();
          break;
        case 8: {
          this.expectWire(r, wt, 2, tagStart);
          const [dom, ver, omitted] = this.opsetId(r.lengthDelimited());
          m.opsetImports.set(dom, ver);
          if (omitted) m.opsetDomainOmitted.add(dom);
          break;
        }
        case 14:
          this.expectWire(r, wt, 2, tagStart);
          (m.metadataProps ??= []).push(this.stringEntry(r.lengthDelimited()));
          break;
        case 25:
          this.expectWire(r, wt, 2, tagStart);
          fnRanges.push(r.lengthDelimited());
          break;
        default:
          unknown.push(r.skip(wt, tagStart));
      }
    }
    if (!sawAnyField) throw new DecodeError('empty file: no ONNX model in it', 0);
    if (!graphRange) throw new DecodeError('not an ONNX model: it has no graph (ModelProto field 7)', 0);
    if (m.irVersion === undefined)
      throw new DecodeError('not an ONNX model: it has no ir_version (ModelProto field 1)', 0);
    if (unknown.length) m.unknownFields = unknown;
    for (const fr of fnRanges) m.functions.push(this.func(fr));
    m.graph = this.graph(graphRange, null);
    return m;
  }

  private expectWire(r: WireReader, wt: number, want: number, at: number): void {
    if (wt !== want) r.fail(`unexpected wire type ${wt} (expected ${want})`, at);
  }
  private expectVarint(r: WireReader, wt: number, at: number): number {
    this.expectWire(r, wt, 0, at);
    return r.varint();
  }
  private expectString(r: WireReader, wt: number, at: number): string {
    this.expectWire(r, wt, 2, at);
    return r.string();
  }

  private opsetId(range: Range): [string, number, boolean] {
    const r = this.reader(range);
    let domain: string | undefined;
    let version = 0;
    while (!r.done()) {
      const at = r.pos;
      const tag = r.varint();
      if (tag >>> 3 === 1) domain = this.expectString(r, tag & 7, at);
      else if (tag >>> 3 === 2) version = this.expectVarint(r, tag & 7, at);
      else r.skip(tag & 7, at);
    }
    return [domain ?? '', version, domain === undefined];
  }

  private stringEntry(range: Range): [string, string] {
    const r = this.reader(range);
    let k = '';
    let v = '';
    while (!r.done()) {
      const at = r.pos;
      const tag = r.varint();
      if (tag >>> 3 === 1) k = this.expectString(r, tag & 7, at);
      else if (tag >>> 3 === 2) v = this.expectString(r, tag & 7, at);
      else r.skip(tag & 7, at);
    }
    return [k, v];
  }

  // --- Graph ----------------------------------------------------------------------------------------------------

  graph(range: Range, parentScope: Scope | null, parentNode: Node | null = null): Graph {
    const g = new Graph();
    g.parentNode = parentNode;
    const r = this.reader(range);
    const nodes: Range[] = [];
    const inits: Range[] = [];
    const sparse: Range[] = [];
    const inputs: Range[] = [];
    const outputs: Range[] = [];
    const vinfo: Range[] = [];
    const unknown: Uint8Array[] = [];
    while (!r.done()) {
      const at = r.pos;
      const tag = r.varint();
      const f = tag >>> 3;
      const wt = tag & 7;
      switch (f) {
        case 1:
          this.expectWire(r, wt, 2, at);
          nodes.push(r.lengthDelimited());
          break;
        case 2:
          g.name = this.expectString(r, wt, at);
          break;
        case 5:
          this.expectWire(r, wt, 2, at);
          inits.push(r.lengthDelimited());
          break;
        case 10:
          g.docString = this.expectString(r, wt, at);
          break;
        case 11:
          this.expectWire(r, wt, 2, at);
          inputs.push(r.lengthDelimited());
          break;
        case 12:
          this.expectWire(r, wt, 2, at);
          outputs.push(r.lengthDelimited());
          break;
        case 13:
          this.expectWire(r, wt, 2, at);
          vinfo.push(r.lengthDelimited());
          break;
        case 15:
          this.expectWire(r, wt, 2, at);
          sparse.push(r.lengthDelimited());
          break;
        case 16:
          this.expectWire(r, wt, 2, at);
          (g.metadataProps ??= []).push(this.stringEntry(r.lengthDelimited()));
          break;
        default:
          unknown.push(r.skip(wt, at));
      }
    }
    if (unknown.length) g.unknownFields = unknown;
    const scope = new Scope(parentScope);

    for (const ir of inputs) {
      const v = this.valueInfo(ir);
      v.graph = g;
      g.inputs.push(v);
      scope.values.set(v.name, v);
    }
    for (const tr of inits) {
      const t = this.tensor(tr);
      let v = scope.values.get(t.name);
      if (!v) {
        v = new Value(t.name, { kind: 'tensor', elemType: t.dataType, shape: [...t.dims] });
        v.graph = g;
        scope.values.set(v.name, v);
      }
      v.constValue = t;
      g.initializers.push(v);
    }
    for (const sr of sparse) {
      const name = this.sparseName(sr);
      const v = scope.values.get(name) ?? new Value(name);
      v.sparseInit = { bytes: this.buf.subarray(sr[0], sr[1]) };
      v.graph = g;
      scope.values.set(name, v);
      g.sparseInitializers.push(v);
    }
    for (const nr of nodes) g.append(this.node(nr, scope, g));
    for (const or of outputs) {
      const info = this.valueInfo(or);
      const v = this.resolve(scope, info.name);
      mergeInfo(v, info);
      g.outputs.push(v);
    }
    for (const vr of vinfo) {
      const info = this.valueInfo(vr);
      const v = this.resolve(scope, info.name);
      mergeInfo(v, info);
      g.valueInfo.push(v);
    }
    return g;
  }

  private resolve(scope: Scope, name: string): Value {
    const v = scope.lookup(name) ?? scope.pending.get(name);
    if (v) return v;
    // Forward reference or an undefined name: a placeholder that a later producer adopts.
    const p = new Value(name);
    scope.pending.set(name, p);
    return p;
  }

  private valueInfo(range: Range): Value {
    const r = this.reader(range);
    const v = new Value('');
    while (!r.done()) {
      const at = r.pos;
      const tag = r.varint();
      switch (tag >>> 3) {
        case 1:
          v.name = this.expectString(r, tag & 7, at);
          break;
        case 2:
          this.expectWire(r, tag & 7, 2, at);
          v.type = this.typeProto(r.lengthDelimited());
          break;
        case 3:
          v.docString = this.expectString(r, tag & 7, at);
          break;
        case 4:
          this.expectWire(r, tag & 7, 2, at);
          (v.metadataProps ??= []).push(this.stringEntry(r.lengthDelimited()));
          break;
        default:
          r.skip(tag & 7, at);
      }
    }
    return v;
  }

  typeProto(range: Range): TypeInfo {
    const r = this.reader(range);
    let t: TypeInfo = { kind: 'none' };
    let denotation: string | undefined;
    while (!r.done()) {
      const at = r.pos;
      const tag = r.varint();
      const f = tag >>> 3;
      if (f === 6) {
        denotation = this.expectString(r, tag & 7, at);
        continue;
      }
      if ((tag & 7) !== 2) {
        r.skip(tag & 7, at);
        continue;
      }
      const sub = r.lengthDelimited();
      switch (f) {
        case 1:
        case 8: {
          const { elemType, shape, dimDenotations } = this.tensorTypeProto(sub);
          const tt: TypeInfo & { kind: 'tensor' | 'sparse_tensor' } = {
            kind: f === 1 ? 'tensor' : 'sparse_tensor',
            elemType,
          };
          if (shape) tt.shape = shape;
          if (dimDenotations) tt.dimDenotations = dimDenotations;
          t = tt;
          break;
        }
        case 4:
        case 9: {
          const sr = this.reader(sub);
          let elem: TypeInfo | undefined;
          while (!sr.done()) {
            const a = sr.pos;
            const tg = sr.varint();
            if (tg >>> 3 === 1 && (tg & 7) === 2) elem = this.typeProto(sr.lengthDelimited());
            else sr.skip(tg & 7, a);
          }
          t = f === 4 ? { kind: 'sequence' } : { kind: 'optional' };
          if (elem) t.elem = elem;
          break;
        }
        case 5: {
          const sr = this.reader(sub);
          let keyType = DataType.UNDEFINED;
          let value: TypeInfo | undefined;
          while (!sr.done()) {
            const a = sr.pos;
            const tg = sr.varint();
            if (tg >>> 3 === 1) keyType = this.expectVarint(sr, tg & 7, a);
            else if (tg >>> 3 === 2 && (tg & 7) === 2) value = this.typeProto(sr.lengthDelimited());
            else sr.skip(tg & 7, a);
          }
          t = { kind: 'map', keyType };
          if (value) t.value = value;
          break;
        }
        case 7: {
          const sr = this.reader(sub);
          const o: TypeInfo = { kind: 'opaque' };
          while (!sr.done()) {
            const a = sr.pos;
            const tg = sr.varint();
            if (tg >>> 3 === 1) o.domain = this.expectString(sr, tg & 7, a);
            else if (tg >>> 3 === 2) o.name = this.expectString(sr, tg & 7, a);
            else sr.skip(tg & 7, a);
          }
          t = o;
          break;
        }
      }
    }
    if (denotation !== undefined) t.denotation = denotation;
    return t;
  }

  private tensorTypeProto(range: Range): {
    elemType: DataType;
    shape?: Shape;
    dimDenotations?: (string | undefined)[];
  } {
    const r = this.reader(range);
    let elemType = DataType.UNDEFINED;
    let shape: Shape | undefined;
    let dimDenotations: (string | undefined)[] | undefined;
    while (!r.done()) {
      const at = r.pos;
      const tag = r.varint();
      if (tag >>> 3 === 1) elemType = this.expectVarint(r, tag & 7, at);
      else if (tag >>> 3 === 2 && (tag & 7) === 2) {
        shape = [];
        const sr = this.reader(r.lengthDelimited());
        while (!sr.done()) {
          const a = sr.pos;
          const tg = sr.varint();
          if (tg >>> 3 !== 1 || (tg & 7) !== 2) {
            sr.skip(tg & 7, a);
            continue;
          }
          const dr = this.reader(sr.lengthDelimited());
          let dim: number | string | null = null;
          let den: string | undefined;
          while (!dr.done()) {
            const b = dr.pos;
            const t3 = dr.varint();
            if (t3 >>> 3 === 1) dim = this.expectVarint(dr, t3 & 7, b);
            else if (t3 >>> 3 === 2) dim = this.expectString(dr, t3 & 7, b);
            else if (t3 >>> 3 === 3) den = this.expectString(dr, t3 & 7, b);
            else dr.skip(t3 & 7, b);
          }
          if (den !== undefined) {
            dimDenotations ??= [];
            dimDenotations[shape.length] = den;
          }
          shape.push(dim);
        }
      } else r.skip(tag & 7, at);
    }
    const out: { elemType: DataType; shape?: Shape; dimDenotations?: (string | undefined)[] } = { elemType };
    if (shape) out.shape = shape;
    if (dimDenotations) {
      dimDenotations.length = shape!.length;
      out.dimDenotations = dimDenotations;
    }
    return out;
  }

  // --- Node -----------------------------------------------------------------------------------------------------

  private node(range: Range, scope: Scope, g: Graph): Node {
    const r = this.reader(range);
    const inNames: string[] = [];
    const outNames: string[] = [];
    let name: string | undefined;
    let opType = '';
    let domain: string | undefined;
    let overload: string | undefined;
    let docString: string | undefined;
    let metadata: [string, string][] | undefined;
    const attrRanges: Range[] = [];
    const unknown: Uint8Array[] = [];
    while (!r.done()) {
      const at = r.pos;
      const tag = r.varint();
      const wt = tag & 7;
      switch (tag >>> 3) {
        case 1:
          inNames.push(this.expectString(r, wt, at));
          break;
        case 2:
          outNames.push(this.expectString(r, wt, at));
          break;
        case 3:
          name = this.expectString(r, wt, at);
          break;
        case 4:
          opType = this.expectString(r, wt, at);
          break;
        case 5:
          this.expectWire(r, wt, 2, at);
          attrRanges.push(r.lengthDelimited());
          break;
        case 6:
          docString = this.expectString(r, wt, at);
          break;
        case 7:
          domain = this.expectString(r, wt, at);
          break;
        case 8:
          overload = this.expectString(r, wt, at);
          break;
        case 9:
          this.expectWire(r, wt, 2, at);
          (metadata ??= []).push(this.stringEntry(r.lengthDelimited()));
          break;
        default:
          unknown.push(r.skip(wt, at));
      }
    }
    const inputs = inNames.map((n) => (n === '' ? null : this.resolve(scope, n)));
    const outputs = outNames.map((n) => {
      if (n === '') return new Value('');
      const p = scope.pending.get(n);
      if (p) {
        scope.pending.delete(n);
        scope.values.set(n, p);
        return p;
      }
      const v = new Value(n);
      scope.values.set(n, v);
      return v;
    });
    const node = new Node(domain ?? '', opType, inputs, outputs, name ?? '');
    node.nameWritten = name !== undefined;
    node.domainWritten = domain !== undefined;
    if (overload !== undefined) node.overload = overload;
    if (docString !== undefined) node.docString = docString;
    if (metadata) node.metadataProps = metadata;
    if (unknown.length) node.unknownFields = unknown;
    // attributes after the node exists, so subgraphs know their parent
    for (const ar of attrRanges) {
      const a = this.attribute(ar, scope, node, g);
      node.attributes.set(a.name, a);
    }
    return node;
  }

  private attribute(range: Range, scope: Scope | null, node: Node | null, g: Graph | null): Attribute {
    const r = this.reader(range);
    let name = '';
    let type: number | undefined;
    let f: number | undefined;
    let i: number | undefined;
    let s: Uint8Array | undefined;
    let t: Tensor | undefined;
    let graphRange: Range | undefined;
    const floats: number[] = [];
    const ints: number[] = [];
    const strings: Uint8Array[] = [];
    const tensors: Tensor[] = [];
    const graphRanges: Range[] = [];
    let tp: TypeInfo | undefined;
    const tps: TypeInfo[] = [];
    let sparse: Opaque | undefined;
    const sparses: Opaque[] = [];
    let doc: string | undefined;
    let ref: string | undefined;
    const unknown: Uint8Array[] = [];
    while (!r.done()) {
      const at = r.pos;
      const tag = r.varint();
      const wt = tag & 7;
      switch (tag >>> 3) {
        case 1:
          name = this.expectString(r, wt, at);
          break;
        case 2:
          this.expectWire(r, wt, 5, at);
          f = r.float32();
          break;
        case 3:
          i = this.expectVarint(r, wt, at);
          break;
        case 4:
          this.expectWire(r, wt, 2, at);
          s = r.bytes();
          break;
        case 5:
          this.expectWire(r, wt, 2, at);
          t = this.tensor(r.lengthDelimited());
          break;
        case 6:
          this.expectWire(r, wt, 2, at);
          graphRange = r.lengthDelimited();
          break;
        case 7:
          readRepeatedFloat(r, wt, floats);
          break;
        case 8:
          readRepeatedVarint(r, wt, ints);
          break;
        case 9:
          this.expectWire(r, wt, 2, at);
          strings.push(r.bytes());
          break;
        case 10:
          this.expectWire(r, wt, 2, at);
          tensors.push(this.tensor(r.lengthDelimited()));
          break;
        case 11:
          this.expectWire(r, wt, 2, at);
          graphRanges.push(r.lengthDelimited());
          break;
        case 13:
          doc = this.expectString(r, wt, at);
          break;
        case 14:
          this.expectWire(r, wt, 2, at);
          tp = this.typeProto(r.lengthDelimited());
          break;
        case 15:
          this.expectWire(r, wt, 2, at);
          tps.push(this.typeProto(r.lengthDelimited()));
          break;
        case 20:
          type = this.expectVarint(r, wt, at);
          break;
        case 21:
          ref = this.expectString(r, wt, at);
          break;
        case 22:
          this.expectWire(r, wt, 2, at);
          sparse = { bytes: r.bytes() };
          break;
        case 23:
          this.expectWire(r, wt, 2, at);
          sparses.push({ bytes: r.bytes() });
          break;
        default:
          unknown.push(r.skip(wt, at));
      }
    }
    const written = type !== undefined;
    if (type === undefined) {
      // IR < 3 files omit the type: infer it from the field that is set
      type =
        f !== undefined
          ? AttrType.FLOAT
          : i !== undefined
            ? AttrType.INT
            : s !== undefined
              ? AttrType.STRING
              : t
                ? AttrType.TENSOR
                : graphRange
                  ? AttrType.GRAPH
                  : floats.length
                    ? AttrType.FLOATS
                    : ints.length
                      ? AttrType.INTS
                      : strings.length
                        ? AttrType.STRINGS
                        : tensors.length
                          ? AttrType.TENSORS
                          : graphRanges.length
                            ? AttrType.GRAPHS
                            : AttrType.UNDEFINED;
    }
    const sub = (gr: Range): Graph => {
      const sg = this.graph(gr, scope, node);
      void g;
      return sg;
    };
    let data: AttrValue;
    switch (type as AttrType) {
      case AttrType.FLOAT:
        data = { type: AttrType.FLOAT, value: f ?? 0 };
        break;
      case AttrType.INT:
        data = { type: AttrType.INT, value: i ?? 0 };
        break;
      case AttrType.STRING:
        data = { type: AttrType.STRING, value: s ?? new Uint8Array(0) };
        break;
      case AttrType.TENSOR:
        data = { type: AttrType.TENSOR, value: t ?? Tensor.fromFloat32('', [0], []) };
        break;
      case AttrType.GRAPH:
        data = { type: AttrType.GRAPH, value: graphRange ? sub(graphRange) : new Graph() };
        break;
      case AttrType.SPARSE_TENSOR:
        data = { type: AttrType.SPARSE_TENSOR, value: sparse ?? { bytes: new Uint8Array(0) } };
        break;
      case AttrType.TYPE_PROTO:
        data = { type: AttrType.TYPE_PROTO, value: tp ?? { kind: 'none' } };
        break;
      case AttrType.FLOATS:
        data = { type: AttrType.FLOATS, value: floats };
        break;
      case AttrType.INTS:
        data = { type: AttrType.INTS, value: ints };
        break;
      case AttrType.STRINGS:
        data = { type: AttrType.STRINGS, value: strings };
        break;
      case AttrType.TENSORS:
        data = { type: AttrType.TENSORS, value: tensors };
        break;
      case AttrType.GRAPHS:
        data = { type: AttrType.GRAPHS, value: graphRanges.map(sub) };
        break;
      case AttrType.SPARSE_TENSORS:
        data = { type: AttrType.SPARSE_TENSORS, value: sparses };
        break;
      case AttrType.TYPE_PROTOS:
        data = { type: AttrType.TYPE_PROTOS, value: tps };
        break;
      default:
        data = { type: AttrType.UNDEFINED, value: null };
    }
    const a = new Attribute(name, data);
    a.typeWritten = written;
    if (doc !== undefined) a.docString = doc;
    if (ref !== undefined) a.refAttrName = ref;
    // keep fields present besides the one the type selects (rare; e.g. a ref attribute with a default)
    const extra: Uint8Array[] = [...unknown];
    if (extra.length) a.unknownFields = extra;
    return a;
  }

  // --- Tensor ---------------------------------------------------------------------------------------------------

  tensor(range: Range): Tensor {
    const r = this.reader(range);
    const dims: number[] = [];
    let dataType = DataType.UNDEFINED;
    let name: string | undefined;
    let raw: Uint8Array | undefined;
    let typedField: TypedField | undefined;
    let floatVals: number[] | undefined;
    let intVals: number[] | undefined;
    let bigVals: bigint[] | undefined;
    let doubleVals: number[] | undefined;
    let strings: Uint8Array[] | undefined;
    let external: [string, string][] | undefined;
    let dataLocation: number | undefined;
    let fileRange: FileRange | undefined;
    let doc: string | undefined;
    let segment: { begin?: number; end?: number } | undefined;
    let metadata: [string, string][] | undefined;
    const unknown: Uint8Array[] = [];
    while (!r.done()) {
      const at = r.pos;
      const tag = r.varint();
      const wt = tag & 7;
      switch (tag >>> 3) {
        case 1:
          readRepeatedVarint(r, wt, dims);
          break;
        case 2:
          dataType = this.expectVarint(r, wt, at);
          break;
        case 3: {
          this.expectWire(r, wt, 2, at);
          const sr = this.reader(r.lengthDelimited());
          segment = {};
          while (!sr.done()) {
            const a = sr.pos;
            const tg = sr.varint();
            if (tg >>> 3 === 1) segment.begin = this.expectVarint(sr, tg & 7, a);
            else if (tg >>> 3 === 2) segment.end = this.expectVarint(sr, tg & 7, a);
            else sr.skip(tg & 7, a);
          }
          break;
        }
        case 4:
          typedField = 'float_data';
          readRepeatedFloat(r, wt, (floatVals ??= []));
          break;
        case 5:
          typedField = 'int32_data';
          readRepeatedVarint(r, wt, (intVals ??= []));
          break;
        case 6:
          this.expectWire(r, wt, 2, at);
          (strings ??= []).push(r.bytes());
          break;
        case 7:
        case 11: {
          typedField = tag >>> 3 === 7 ? 'int64_data' : 'uint64_data';
          bigVals ??= [];
          if (wt === 2) {
            const [s, e] = r.lengthDelimited();
            const sr = new WireReader(this.buf, s, e);
            while (!sr.done()) bigVals.push(sr.varintBig());
          } else bigVals.push(r.varintBig());
          break;
        }
        case 8:
          name = this.expectString(r, wt, at);
          break;
        case 9:
          this.expectWire(r, wt, 2, at);
          raw = r.bytes();
          break;
        case 10: {
          typedField = 'double_data';
          doubleVals ??= [];
          if (wt === 2) {
            const [s, e] = r.lengthDelimited();
            const dv = new DataView(this.buf.buffer, this.buf.byteOffset + s, e - s);
            for (let k = 0; k + 8 <= e - s; k += 8) doubleVals.push(dv.getFloat64(k, true));
          } else {
            this.expectWire(r, wt, 1, at);
            if (r.pos + 8 > r.end) r.fail('truncated fixed64');
            doubleVals.push(new DataView(this.buf.buffer, this.buf.byteOffset + r.pos, 8).getFloat64(0, true));
            r.pos += 8;
          }
          break;
        }
        case 12:
          doc = this.expectString(r, wt, at);
          break;
        case 13:
          this.expectWire(r, wt, 2, at);
          (external ??= []).push(this.stringEntry(r.lengthDelimited()));
          break;
        case 14:
          dataLocation = this.expectVarint(r, wt, at);
          break;
        case 16:
          this.expectWire(r, wt, 2, at);
          (metadata ??= []).push(this.stringEntry(r.lengthDelimited()));
          break;
        case FILE_RANGE_MARKER: {
          const idx = this.expectVarint(r, wt, at);
          fileRange = this.opts.fileRanges?.[idx];
          if (!fileRange) r.fail(`file range marker ${idx} without a range`, at);
          break;
        }
        default:
          unknown.push(r.skip(wt, at));
      }
    }
    let storage: TensorStorage;
    if (fileRange) storage = { kind: 'file', range: fileRange };
    else if (dataLocation === 1 || (external && raw === undefined)) {
      const ref = externalRef(external ?? [], name ?? '', range[0]);
      const load = this.opts.loadExternal;
      storage = {
        kind: 'external',
        ref,
        load: () => {
          if (!load)
            throw new DecodeError(
              `tensor '${name ?? ''}' is stored in external file '${ref.location}', but no model folder was given to read it from`,
              range[0],
            );
          return load(ref, name ?? '');
        },
      };
    } else if (raw !== undefined) storage = { kind: 'raw', bytes: raw };
    else if (strings) storage = { kind: 'strings', values: strings };
    else if (typedField === 'float_data')
      storage = { kind: 'typed', field: typedField, values: Float32Array.from(floatVals!) };
    else if (typedField === 'int32_data')
      storage = { kind: 'typed', field: typedField, values: Int32Array.from(intVals!) };
    else if (typedField === 'int64_data')
      storage = { kind: 'typed', field: typedField, values: BigInt64Array.from(bigVals!) };
    else if (typedField === 'uint64_data')
      storage = {
        kind: 'typed',
        field: typedField,
        values: BigUint64Array.from(bigVals!, (b) => BigInt.asUintN(64, b)),
      };
    else if (typedField === 'double_data')
      storage = { kind: 'typed', field: typedField, values: Float64Array.from(doubleVals!) };
    else if (dataType === DataType.STRING) storage = { kind: 'strings', values: [] };
    else storage = { kind: 'raw', bytes: new Uint8Array(0) };
    const t = new Tensor(name ?? '', dataType, dims, storage);
    if (name === undefined) t.nameOmitted = true;
    if (doc !== undefined) t.docString = doc;
    if (segment) t.segment = segment;
    if (metadata) t.metadataProps = metadata;
    if (dataLocation !== undefined) t.dataLocation = dataLocation;
    if (external && storage.kind !== 'external') t.externalEntries = external;
    if (unknown.length) t.unknownFields = unknown;
    return t;
  }

  private sparseName(range: Range): string {
    const r = this.reader(range);
    while (!r.done()) {
      const at = r.pos;
      const tag = r.varint();
      if (tag >>> 3 === 1 && (tag & 7) === 2) return this.tensor(r.lengthDelimited()).name;
      r.skip(tag & 7, at);
    }
    return '';
  }

  // --- Function -------------------------------------------------------------------------------------------------

  private func(range: Range): OnnxFunction {
    const r = this.reader(range);
    const body = new Graph();
    const fn = new OnnxFunction('', '', body);
    const ins: string[] = [];
    const outs: string[] = [];
    const nodes: Range[] = [];
    const vinfo: Range[] = [];
    const unknown: Uint8Array[] = [];
    const attrProtos: Range[] = [];
    while (!r.done()) {
      const at = r.pos;
      const tag = r.varint();
      const wt = tag & 7;
      switch (tag >>> 3) {
        case 1:
          fn.name = this.expectString(r, wt, at);
          break;
        case 4:
          ins.push(this.expectString(r, wt, at));
          break;
        case 5:
          outs.push(this.expectString(r, wt, at));
          break;
        case 6:
          fn.attributeNames.push(this.expectString(r, wt, at));
          break;
        case 7:
          this.expectWire(r, wt, 2, at);
          nodes.push(r.lengthDelimited());
          break;
        case 8:
          fn.docString = this.expectString(r, wt, at);
          break;
        case 9: {
          this.expectWire(r, wt, 2, at);
          const [d, v] = this.opsetId(r.lengthDelimited());
          fn.opsetImports.set(d, v);
          break;
        }
        case 10:
          fn.domain = this.expectString(r, wt, at);
          break;
        case 11:
          this.expectWire(r, wt, 2, at);
          attrProtos.push(r.lengthDelimited());
          break;
        case 12:
          this.expectWire(r, wt, 2, at);
          vinfo.push(r.lengthDelimited());
          break;
        case 13:
          fn.overload = this.expectString(r, wt, at);
          break;
        case 14:
          this.expectWire(r, wt, 2, at);
          (fn.metadataProps ??= []).push(this.stringEntry(r.lengthDelimited()));
          break;
        default:
          unknown.push(r.skip(wt, at));
      }
    }
    if (unknown.length) fn.unknownFields = unknown;
    const scope = new Scope(null);
    for (const n of ins) {
      const v = new Value(n);
      v.graph = body;
      body.inputs.push(v);
      scope.values.set(n, v);
    }
    for (const nr of nodes) body.append(this.node(nr, scope, body));
    for (const n of outs) body.outputs.push(this.resolve(scope, n));
    for (const vr of vinfo) {
      const info = this.valueInfo(vr);
      const v = this.resolve(scope, info.name);
      mergeInfo(v, info);
      body.valueInfo.push(v);
    }
    for (const ar of attrProtos) fn.attributeProtos.push(this.attribute(ar, null, null, null));
    return fn;
  }
}

function mergeInfo(v: Value, info: Value): void {
  if (info.type) v.type = info.type;
  if (info.docString !== undefined) v.docString = info.docString;
  if (info.metadataProps) v.metadataProps = info.metadataProps;
}

function externalRef(entries: [string, string][], name: string, at: number): ExternalRef {
  let location: string | undefined;
  let offset = 0;
  let length = -1;
  for (const [k, v] of entries) {
    if (k === 'location') location = v;
    else if (k === 'offset') offset = Number(v);
    else if (k === 'length') length = Number(v);
  }
  if (!location) throw new DecodeError(`tensor '${name}' is marked external but names no location`, at);
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw new DecodeError(`tensor '${name}': invalid external data offset '${offset}'`, at);
  return { location, offset, length, entries };
}

/** Decode a single TensorProto (e.g. an `input_0.pb` of an ONNX test_data_set). Raw data stays a view into `buf`. */
export function decodeTensorProto(buf: Uint8Array): Tensor {
  return new Decoder(buf, {}).tensor([0, buf.length]);
}
