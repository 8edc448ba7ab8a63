import { Graph, Node, Value, type AttrInput, type TypeInfo } from './core.js';
import { DataType } from './dtype.js';
import { Tensor } from './tensor.js';

export interface OpOptions {
  domain?: string;
  name?: string;
  attrs?: Record<string, AttrInput>;
  /** Number of outputs (default 1). */
  outputs?: number;
  /** Names for the outputs (made unique in the graph). */
  outputNames?: string[];
  /** Types for the outputs. */
  types?: (TypeInfo | undefined)[];
}

/**
 * Inserts nodes into a graph at a fixed point (before `anchor`, or at the end), keeping names unique and
 * deterministic. Passes use it for every new node: `const [y] = b.op('Add', [x, bias], { name: 'layer0/add' })`.
 */
export class Builder {
  constructor(
    readonly graph: Graph,
    /** Insert before this node; null appends. */
    public anchor: Node | null = null,
    /** Written to each new node's metadata as `axc.pass`, so `axc diff` can say which pass made it. */
    public stamp?: string,
  ) {
    graph.trackNames();
  }

  op(opType: string, inputs: readonly (Value | null)[], opts: OpOptions = {}): Value[] {
    const n = opts.outputs ?? opts.outputNames?.length ?? 1;
    const base = opts.name ?? opType;
    const outs = Array.from({ length: n }, (_, i) => {
      const v = new Value(opts.outputNames?.[i] ?? `${base}_out${n > 1 ? i : ''}`);
      const t = opts.types?.[i];
      if (t) v.type = t;
      return v;
    });
    const node = new Node(opts.domain ?? '', opType, inputs, outs, base, opts.attrs);
    if (this.stamp) node.metadataProps = [['axc.pass', this.stamp]];
    this.graph.insertBefore(this.anchor, node);
    return outs;
  }

  /** One-output shorthand. */
  op1(opType: string, inputs: readonly (Value | null)[], opts: OpOptions = {}): Value {
    return this.op(opType, inputs, opts)[0]!;
  }

  /** The node that produced the last op (for callers that need it). */
  lastNode(): Node | null {
    return this.anchor ? this.anchor.prev() : this.graph.last();
  }

  initializer(base: string, t: Tensor): Value {
    return this.graph.initializer(base, t);
  }

  constInt64(base: string, values: readonly number[], dims: readonly number[] = [values.length]): Value {
    return this.graph.initializer(base, Tensor.fromInt64(base, dims, values));
  }

  constFloat(base: string, values: readonly number[] | Float32Array, dims: readonly number[] = [values.length]): Value {
    return this.graph.initializer(base, Tensor.fromFloat32(base, dims, values));
  }

  scalarFloat(base: string, v: number): Value {
    return this.graph.initializer(base, Tensor.fromFloat32(base, [], [v]));
  }
}

export function tensorTypeOf(t: Tensor): TypeInfo {
  return { kind: 'tensor', elemType: t.dataType, shape: [...t.dims] };
}

export { DataType };
