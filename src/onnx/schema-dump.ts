/**
 * A schema-driven canonical dump of an ONNX protobuf message, independent of the decoder in decode.ts:
 * every field of every message (including fields the decoder does not model), packed and unpacked repeated
 * scalars normalized, fields grouped by number in ascending order, repeated values in order. Two files whose dumps
 * are equal decode to the same message, field for field. Used by the round-trip tests and `axc convert --check`.
 */
import { WireReader } from './wire.js';

type FieldKind =
  'msg' | 'string' | 'bytes' | 'varint' | 'float' | 'double' | 'packed-varint' | 'packed-float' | 'packed-double';
type Schema = Record<string, Record<number, [FieldKind, string?]>>;

const S: Schema = {
  Model: {
    1: ['varint'],
    2: ['string'],
    3: ['string'],
    4: ['string'],
    5: ['varint'],
    6: ['string'],
    7: ['msg', 'Graph'],
    8: ['msg', 'OpsetId'],
    14: ['msg', 'Entry'],
    20: ['msg', 'TrainingInfo'],
    25: ['msg', 'Function'],
  },
  TrainingInfo: { 1: ['msg', 'Graph'], 2: ['msg', 'Graph'], 3: ['msg', 'Entry'], 4: ['msg', 'Entry'] },
  OpsetId: { 1: ['string'], 2: ['varint'] },
  Entry: { 1: ['string'], 2: ['string'] },
  Graph: {
    1: ['msg', 'Node'],
    2: ['string'],
    5: ['msg', 'Tensor'],
    10: ['string'],
    11: ['msg', 'ValueInfo'],
    12: ['msg', 'ValueInfo'],
    13: ['msg', 'ValueInfo'],
    14: ['msg', 'TensorAnnotation'],
    15: ['msg', 'Sparse'],
    16: ['msg', 'Entry'],
  },
  TensorAnnotation: { 1: ['string'], 2: ['msg', 'Entry'] },
  Node: {
    1: ['string'],
    2: ['string'],
    3: ['string'],
    4: ['string'],
    5: ['msg', 'Attribute'],
    6: ['string'],
    7: ['string'],
    8: ['string'],
    9: ['msg', 'Entry'],
  },
  Attribute: {
    1: ['string'],
    2: ['float'],
    3: ['varint'],
    4: ['bytes'],
    5: ['msg', 'Tensor'],
    6: ['msg', 'Graph'],
    7: ['packed-float'],
    8: ['packed-varint'],
    9: ['bytes'],
    10: ['msg', 'Tensor'],
    11: ['msg', 'Graph'],
    13: ['string'],
    14: ['msg', 'Type'],
    15: ['msg', 'Type'],
    20: ['varint'],
    21: ['string'],
    22: ['msg', 'Sparse'],
    23: ['msg', 'Sparse'],
  },
  ValueInfo: { 1: ['string'], 2: ['msg', 'Type'], 3: ['string'], 4: ['msg', 'Entry'] },
  Type: {
    1: ['msg', 'TensorType'],
    4: ['msg', 'SeqType'],
    5: ['msg', 'MapType'],
    6: ['string'],
    7: ['msg', 'Opaque'],
    8: ['msg', 'TensorType'],
    9: ['msg', 'SeqType'],
  },
  TensorType: { 1: ['varint'], 2: ['msg', 'Shape'] },
  SeqType: { 1: ['msg', 'Type'] },
  MapType: { 1: ['varint'], 2: ['msg', 'Type'] },
  Opaque: { 1: ['string'], 2: ['string'] },
  Shape: { 1: ['msg', 'Dim'] },
  Dim: { 1: ['varint'], 2: ['string'], 3: ['string'] },
  Tensor: {
    1: ['packed-varint'],
    2: ['varint'],
    3: ['msg', 'Segment'],
    4: ['packed-float'],
    5: ['packed-varint'],
    6: ['bytes'],
    7: ['packed-varint'],
    8: ['string'],
    9: ['bytes'],
    10: ['packed-double'],
    11: ['packed-varint'],
    12: ['string'],
    13: ['msg', 'Entry'],
    14: ['varint'],
    16: ['msg', 'Entry'],
  },
  Segment: { 1: ['varint'], 2: ['varint'] },
  Sparse: { 1: ['msg', 'Tensor'], 2: ['msg', 'Tensor'], 3: ['packed-varint'] },
  Function: {
    1: ['string'],
    4: ['string'],
    5: ['string'],
    6: ['string'],
    7: ['msg', 'Node'],
    8: ['string'],
    9: ['msg', 'OpsetId'],
    10: ['string'],
    11: ['msg', 'Attribute'],
    12: ['msg', 'ValueInfo'],
    13: ['string'],
    14: ['msg', 'Entry'],
  },
};

export type DumpValue = string | number | DumpNode;
export interface DumpNode {
  [field: string]: DumpValue[];
}

import { createHash } from 'node:crypto';

/** Dump a serialized ModelProto to a canonical tree. Large bytes fields are summarized by length and hash. */
export function dumpModelBytes(buf: Uint8Array): DumpNode {
  return dump(buf, 0, buf.length, 'Model');
}

function dump(buf: Uint8Array, start: number, end: number, type: string): DumpNode {
  const schema = S[type] ?? {};
  const r = new WireReader(buf, start, end);
  const out: DumpNode = {};
  while (!r.done()) {
    const at = r.pos;
    const tag = r.varint();
    const f = tag >>> 3;
    const wt = tag & 7;
    const spec = schema[f];
    const key = String(f).padStart(3, '0');
    const list = (out[key] ??= []);
    if (!spec) {
      list.push('unknown:' + Buffer.from(r.skip(wt, at)).toString('hex'));
      continue;
    }
    const [kind, sub] = spec;
    switch (kind) {
      case 'msg': {
        const [s, e] = r.lengthDelimited();
        list.push(dump(buf, s, e, sub!));
        break;
      }
      case 'string':
      case 'bytes': {
        const b = r.bytes();
        list.push(
          b.length > 256
            ? `bytes[${b.length}]:${createHash('sha256').update(b).digest('hex')}`
            : 'b:' + Buffer.from(b).toString('hex'),
        );
        break;
      }
      case 'varint':
        list.push(r.varintBig().toString());
        break;
      case 'float':
        list.push('f32:' + r.float32());
        break;
      case 'packed-varint':
        if (wt === 2) {
          const [s, e] = r.lengthDelimited();
          const sr = new WireReader(buf, s, e);
          while (!sr.done()) list.push(sr.varintBig().toString());
        } else list.push(r.varintBig().toString());
        break;
      case 'packed-float':
        if (wt === 2) {
          const [s, e] = r.lengthDelimited();
          const dv = new DataView(buf.buffer, buf.byteOffset + s, e - s);
          for (let i = 0; i + 4 <= e - s; i += 4) list.push('u32:' + dv.getUint32(i, true));
        } else {
          const dv = new DataView(buf.buffer, buf.byteOffset + r.pos, 4);
          list.push('u32:' + dv.getUint32(0, true));
          r.pos += 4;
        }
        break;
      case 'packed-double':
      case 'double':
        if (wt === 2) {
          const [s, e] = r.lengthDelimited();
          const dv = new DataView(buf.buffer, buf.byteOffset + s, e - s);
          for (let i = 0; i + 8 <= e - s; i += 8) list.push('u64:' + dv.getBigUint64(i, true).toString());
        } else {
          const dv = new DataView(buf.buffer, buf.byteOffset + r.pos, 8);
          list.push('u64:' + dv.getBigUint64(0, true).toString());
          r.pos += 8;
        }
        break;
    }
  }
  // canonical: fields in ascending number order
  const sorted: DumpNode = {};
  for (const k of Object.keys(out).sort()) sorted[k] = out[k]!;
  return sorted;
}

/** First difference between two dumps, as a path and both values; undefined when equal. */
export function firstDifference(a: DumpValue, b: DumpValue, at = ''): string | undefined {
  if (typeof a !== 'object' || typeof b !== 'object')
    return a === b ? undefined : `${at}: ${String(a)} != ${String(b)}`;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of [...keys].sort()) {
    const la = a[k] ?? [];
    const lb = b[k] ?? [];
    if (la.length !== lb.length) return `${at}/${k}: ${la.length} values != ${lb.length} values`;
    for (let i = 0; i < la.length; i++) {
      const d = firstDifference(la[i]!, lb[i]!, `${at}/${k}[${i}]`);
      if (d) return d;
    }
  }
  return undefined;
}
