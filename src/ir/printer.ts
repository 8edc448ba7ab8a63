import { AttrType, type Attribute, type Graph, type Model, type Node, type TypeInfo, type Value } from './core.js';
import { DataType, dtypeName } from './dtype.js';
import type { Tensor } from './tensor.js';

export interface PrintOptions {
  /** Tensors with at most this many elements print their values inline (default 16). */
  inlineLimit?: number;
}

const utf8 = new TextDecoder();

/** Text of a type: `float32[batch_size,128]`, `seq(float32[?])`. */
export function typeText(t: TypeInfo | undefined): string {
  if (!t) return '?';
  switch (t.kind) {
    case 'tensor':
    case 'sparse_tensor': {
      const shape = t.shape ? `[${t.shape.map((d) => (d === null ? '?' : String(d))).join(',')}]` : '';
      return `${t.kind === 'sparse_tensor' ? 'sparse ' : ''}${dtypeName(t.elemType)}${shape}`;
    }
    case 'sequence':
      return `seq(${typeText(t.elem)})`;
    case 'optional':
      return `optional(${typeText(t.elem)})`;
    case 'map':
      return `map(${dtypeName(t.keyType)},${typeText(t.value)})`;
    case 'opaque':
      return `opaque(${t.domain ?? ''}.${t.name ?? ''})`;
    default:
      return '?';
  }
}

function fmtNum(x: number): string {
  if (Number.isInteger(x)) return String(x);
  const s = x.toPrecision(7);
  return String(Number(s));
}

/** A tensor as text: values inline when small, otherwise element type, shape and content hash. */
export function tensorText(t: Tensor, opts: PrintOptions = {}): string {
  const limit = opts.inlineLimit ?? 16;
  const head = `${dtypeName(t.dataType)}[${t.dims.join(',')}]`;
  if (t.numElements <= limit) {
    try {
      if (t.dataType === DataType.STRING)
        return `${head} {${t
          .strings()
          .map((s) => JSON.stringify(utf8.decode(s)))
          .join(', ')}}`;
      const vals = t.toNumbers().map(fmtNum);
      return `${head} {${vals.join(', ')}}`;
    } catch {
      /* fall through to the hash form */
    }
  }
  try {
    return `${head} #${t.contentHash()}`;
  } catch {
    return `${head} <unreadable>`;
  }
}

function attrText(a: Attribute, indent: string, opts: PrintOptions): string {
  const d = a.data;
  const ref = a.refAttrName !== undefined ? `@${a.refAttrName}` : '';
  switch (d.type) {
    case AttrType.FLOAT:
      return fmtNum(d.value) + ref;
    case AttrType.INT:
      return String(d.value) + ref;
    case AttrType.STRING:
      return JSON.stringify(utf8.decode(d.value)) + ref;
    case AttrType.FLOATS:
      return `[${d.value.map(fmtNum).join(', ')}]`;
    case AttrType.INTS:
      return `[${d.value.join(', ')}]`;
    case AttrType.STRINGS:
      return `[${d.value.map((s) => JSON.stringify(utf8.decode(s))).join(', ')}]`;
    case AttrType.TENSOR:
      return tensorText(d.value, opts);
    case AttrType.TENSORS:
      return `[${d.value.map((t) => tensorText(t, opts)).join(', ')}]`;
    case AttrType.GRAPH:
      return '\n' + graphText(d.value, indent + '    ', opts);
    case AttrType.GRAPHS:
      return d.value.map((g) => '\n' + graphText(g, indent + '    ', opts)).join('');
    case AttrType.TYPE_PROTO:
      return typeText(d.value);
    case AttrType.TYPE_PROTOS:
      return `[${d.value.map(typeText).join(', ')}]`;
    case AttrType.SPARSE_TENSOR:
      return `sparse(${d.value.bytes.byteLength} bytes)`;
    case AttrType.SPARSE_TENSORS:
      return `[${d.value.length} sparse]`;
    default:
      return '?';
  }
}

const ref = (v: Value | null) => (v ? `%${v.name}` : '_');

export function nodeText(n: Node, indent = '', opts: PrintOptions = {}): string {
  const outs = n.outputs.map((o) => (o.name ? `%${o.name}` : '_')).join(', ');
  const attrs = [...n.attributes.values()].map((a) => `${a.name}=${attrText(a, indent, opts)}`);
  const attrPart = attrs.length ? `<${attrs.join(', ')}>` : '';
  const types = n.outputs.some((o) => o.type) ? `  : ${n.outputs.map((o) => typeText(o.type)).join(', ')}` : '';
  const name = n.name ? `  # ${n.name}` : '';
  return `${indent}${outs} = ${n.qualifiedOp}${attrPart}(${n.inputs.map(ref).join(', ')})${types}${name}`;
}

export function graphText(g: Graph, indent = '', opts: PrintOptions = {}): string {
  const lines: string[] = [];
  lines.push(`${indent}graph ${JSON.stringify(g.name)} (`);
  for (const v of g.inputs) if (!v.constValue) lines.push(`${indent}  %${v.name}: ${typeText(v.type)}`);
  lines.push(`${indent}) -> (`);
  for (const v of g.outputs) lines.push(`${indent}  %${v.name}: ${typeText(v.type)}`);
  lines.push(`${indent})`);
  if (g.initializers.length) {
    lines.push(`${indent}initializers {`);
    for (const v of g.initializers) lines.push(`${indent}  %${v.name} = ${tensorText(v.constValue!, opts)}`);
    lines.push(`${indent}}`);
  }
  lines.push(`${indent}nodes {`);
  for (const n of g) lines.push(nodeText(n, indent + '  ', opts));
  lines.push(`${indent}}`);
  return lines.join('\n');
}

/** A deterministic text form of the whole model, fit for golden files and diffs. */
export function modelText(m: Model, opts: PrintOptions = {}): string {
  const lines: string[] = [];
  const opsets = [...m.opsetImports.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([d, v]) => `${d || 'ai.onnx'}:${v}`)
    .join(', ');
  lines.push(
    `model ir_version=${m.irVersion ?? '?'} opsets={${opsets}}${m.producerName ? ` producer=${JSON.stringify(`${m.producerName} ${m.producerVersion ?? ''}`.trim())}` : ''}`,
  );
  for (const [k, v] of m.metadataProps ?? [])
    lines.push(`metadata ${JSON.stringify(k)} = ${JSON.stringify(v.length > 200 ? v.slice(0, 200) + '...' : v)}`);
  for (const f of m.functions) {
    lines.push(
      `function ${f.domain}.${f.name}(${f.body.inputs.map(ref).join(', ')}) -> (${f.body.outputs.map(ref).join(', ')})`,
    );
    lines.push(graphText(f.body, '  ', opts));
  }
  lines.push(graphText(m.graph, '', opts));
  return lines.join('\n') + '\n';
}
