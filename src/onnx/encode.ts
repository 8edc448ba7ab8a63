import {
  AttrType,
  DataType,
  type Attribute,
  type ExternalRef,
  type Graph,
  type Model,
  type Node,
  type OnnxFunction,
  type Tensor,
  type TypeInfo,
  type Value,
} from '../ir/index.js';
import { Message } from './wire.js';

export interface EncodeOptions {
  /**
   * Decide where a tensor's data goes. Return an ExternalRef to write the tensor as external data (the caller
   * writes the bytes), or null to write it inline. Called once per initializer/attribute tensor with data.
   */
  placeTensor?: (t: Tensor) => ExternalRef | null;
}

/** Encode a Model as a protobuf message tree. Fields are written in field-number order, unknown fields last. */
export function encodeModel(m: Model, opts: EncodeOptions = {}): Message {
  return new Encoder(opts).model(m);
}

class Encoder {
  constructor(readonly opts: EncodeOptions) {}

  model(m: Model): Message {
    const msg = new Message();
    if (m.irVersion !== undefined) msg.varint(1, m.irVersion);
    if (m.producerName !== undefined) msg.string(2, m.producerName);
    if (m.producerVersion !== undefined) msg.string(3, m.producerVersion);
    if (m.domain !== undefined) msg.string(4, m.domain);
    if (m.modelVersion !== undefined) msg.varint(5, m.modelVersion);
    if (m.docString !== undefined) msg.string(6, m.docString);
    msg.message(7, this.graph(m.graph));
    for (const [d, v] of m.opsetImports) msg.message(8, opsetId(d, v, m.opsetDomainOmitted.has(d)));
    for (const e of m.metadataProps ?? []) msg.message(14, entry(e));
    for (const f of m.functions) msg.message(25, this.func(f));
    for (const u of m.unknownFields ?? []) msg.raw(u);
    return msg.seal();
  }

  graph(g: Graph): Message {
    const msg = new Message();
    for (const n of g) msg.message(1, this.node(n));
    if (g.name !== undefined) msg.string(2, g.name);
    for (const v of g.initializers) {
      const t = v.constValue!;
      if (t.name !== v.name) t.name = v.name;
      msg.message(5, this.tensor(t));
    }
    if (g.docString !== undefined) msg.string(10, g.docString);
    for (const v of g.inputs) msg.message(11, valueInfo(v));
    for (const v of g.outputs) msg.message(12, valueInfo(v));
    for (const v of g.valueInfo) msg.message(13, valueInfo(v));
    for (const v of g.sparseInitializers) msg.bytes(15, v.sparseInit!.bytes);
    for (const e of g.metadataProps ?? []) msg.message(16, entry(e));
    for (const u of g.unknownFields ?? []) msg.raw(u);
    return msg.seal();
  }

  node(n: Node): Message {
    const msg = new Message();
    const ins = n.inputs;
    for (let i = 0; i < ins.length; i++) msg.string(1, ins[i]?.name ?? '');
    for (const o of n.outputs) msg.string(2, o.name);
    if (n.name !== '' || n.nameWritten) msg.string(3, n.name);
    msg.string(4, n.opType);
    for (const a of n.attributes.values()) msg.message(5, this.attribute(a));
    if (n.docString !== undefined) msg.string(6, n.docString);
    if (n.domain !== '' || n.domainWritten) msg.string(7, n.domain);
    if (n.overload !== undefined) msg.string(8, n.overload);
    for (const e of n.metadataProps ?? []) msg.message(9, entry(e));
    for (const u of n.unknownFields ?? []) msg.raw(u);
    return msg.seal();
  }

  attribute(a: Attribute): Message {
    const msg = new Message();
    msg.string(1, a.name);
    const d = a.data;
    switch (d.type) {
      case AttrType.FLOAT:
        msg.float(2, d.value);
        break;
      case AttrType.INT:
        msg.varint(3, d.value);
        break;
      case AttrType.STRING:
        msg.bytes(4, d.value);
        break;
      case AttrType.TENSOR:
        msg.message(5, this.tensor(d.value));
        break;
      case AttrType.GRAPH:
        msg.message(6, this.graph(d.value));
        break;
      case AttrType.FLOATS:
        for (const f of d.value) msg.float(7, f);
        break;
      case AttrType.INTS:
        for (const i of d.value) msg.varint(8, i);
        break;
      case AttrType.STRINGS:
        for (const s of d.value) msg.bytes(9, s);
        break;
      case AttrType.TENSORS:
        for (const t of d.value) msg.message(10, this.tensor(t));
        break;
      case AttrType.GRAPHS:
        for (const g of d.value) msg.message(11, this.graph(g));
        break;
      default:
        break;
    }
    if (a.docString !== undefined) msg.string(13, a.docString);
    if (d.type === AttrType.TYPE_PROTO) msg.message(14, typeProto(d.value));
    if (d.type === AttrType.TYPE_PROTOS) for (const t of d.value) msg.message(15, typeProto(t));
    if (a.typeWritten) msg.varint(20, d.type);
    if (a.refAttrName !== undefined) msg.string(21, a.refAttrName);
    if (d.type === AttrType.SPARSE_TENSOR) msg.bytes(22, d.value.bytes);
    if (d.type === AttrType.SPARSE_TENSORS) for (const s of d.value) msg.bytes(23, s.bytes);
    for (const u of a.unknownFields ?? []) msg.raw(u);
    return msg.seal();
  }

  tensor(t: Tensor): Message {
    const msg = new Message();
    for (const d of t.dims) msg.varint(1, d);
    msg.varint(2, t.dataType);
    if (t.segment) {
      const s = new Message();
      if (t.segment.begin !== undefined) s.varint(1, t.segment.begin);
      if (t.segment.end !== undefined) s.varint(2, t.segment.end);
      msg.message(3, s);
    }
    const st = t.rawStorage;
    const place = st.kind !== 'strings' && t.dataType !== DataType.STRING ? this.opts.placeTensor?.(t) : null;
    if (!place && st.kind === 'typed') {
      const v = st.values;
      switch (st.field) {
        case 'float_data': {
          const b = new Uint8Array(v.byteLength);
          b.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
          msg.bytes(4, b);
          break;
        }
        case 'int32_data':
          msg.packedVarints(5, v as Int32Array);
          break;
        case 'int64_data':
          msg.packedBigVarints(7, v as BigInt64Array);
          break;
        case 'double_data': {
          const b = new Uint8Array(v.byteLength);
          b.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
          msg.bytes(10, b);
          break;
        }
        case 'uint64_data':
          msg.packedBigVarints(11, v as BigUint64Array, true);
          break;
      }
    }
    if (st.kind === 'strings') for (const s of st.values) msg.bytes(6, s);
    if (!t.nameOmitted || t.name !== '') msg.string(8, t.name);
    if (!place && st.kind === 'file')
      msg.deferredBytes(9, { length: st.range.length, write: (sink) => t.writeTo(sink) });
    else if (!place && st.kind !== 'typed' && st.kind !== 'strings') msg.bytes(9, t.bytes());
    if (t.docString !== undefined) msg.string(12, t.docString);
    if (place) {
      for (const e of place.entries) msg.message(13, entry(e));
      msg.varint(14, 1);
    } else {
      for (const e of t.externalEntries ?? []) msg.message(13, entry(e));
      if (t.dataLocation !== undefined && t.dataLocation !== 1) msg.varint(14, t.dataLocation);
    }
    for (const e of t.metadataProps ?? []) msg.message(16, entry(e));
    for (const u of t.unknownFields ?? []) msg.raw(u);
    return msg.seal();
  }

  func(f: OnnxFunction): Message {
    const msg = new Message();
    msg.string(1, f.name);
    for (const v of f.body.inputs) msg.string(4, v.name);
    for (const v of f.body.outputs) msg.string(5, v.name);
    for (const a of f.attributeNames) msg.string(6, a);
    for (const n of f.body) msg.message(7, this.node(n));
    if (f.docString !== undefined) msg.string(8, f.docString);
    for (const [d, v] of f.opsetImports) msg.message(9, opsetId(d, v));
    msg.string(10, f.domain);
    for (const a of f.attributeProtos) msg.message(11, this.attribute(a));
    for (const v of f.body.valueInfo) msg.message(12, valueInfo(v));
    if (f.overload !== undefined) msg.string(13, f.overload);
    for (const e of f.metadataProps ?? []) msg.message(14, entry(e));
    for (const u of f.unknownFields ?? []) msg.raw(u);
    return msg.seal();
  }
}

function opsetId(domain: string, version: number, omitDomain = false): Message {
  const m = new Message();
  if (!omitDomain || domain !== '') m.string(1, domain);
  return m.varint(2, version).seal();
}

function entry([k, v]: [string, string]): Message {
  return new Message().string(1, k).string(2, v).seal();
}

function valueInfo(v: Value): Message {
  const msg = new Message();
  msg.string(1, v.name);
  if (v.type) msg.message(2, typeProto(v.type));
  if (v.docString !== undefined) msg.string(3, v.docString);
  for (const e of v.metadataProps ?? []) msg.message(4, entry(e));
  return msg.seal();
}

export function typeProto(t: TypeInfo): Message {
  const msg = new Message();
  switch (t.kind) {
    case 'tensor':
    case 'sparse_tensor': {
      const tt = new Message();
      tt.varint(1, t.elemType);
      if (t.shape) {
        const sh = new Message();
        t.shape.forEach((d, i) => {
          const dm = new Message();
          if (typeof d === 'number') dm.varint(1, d);
          else if (typeof d === 'string') dm.string(2, d);
          const den = t.dimDenotations?.[i];
          if (den !== undefined) dm.string(3, den);
          sh.message(1, dm);
        });
        tt.message(2, sh);
      }
      msg.message(t.kind === 'tensor' ? 1 : 8, tt);
      break;
    }
    case 'sequence':
    case 'optional': {
      const s = new Message();
      if (t.elem) s.message(1, typeProto(t.elem));
      msg.message(t.kind === 'sequence' ? 4 : 9, s);
      break;
    }
    case 'map': {
      const s = new Message();
      s.varint(1, t.keyType);
      if (t.value) s.message(2, typeProto(t.value));
      msg.message(5, s);
      break;
    }
    case 'opaque': {
      const s = new Message();
      if (t.domain !== undefined) s.string(1, t.domain);
      if (t.name !== undefined) s.string(2, t.name);
      msg.message(7, s);
      break;
    }
    case 'none':
      break;
  }
  if (t.denotation !== undefined) msg.string(6, t.denotation);
  return msg.seal();
}

/** Encode a single TensorProto (e.g. an `output_0.pb` of an ONNX test_data_set), data inline. */
export function encodeTensorProto(t: Tensor): Buffer {
  return new Encoder({}).tensor(t).toBuffer();
}
