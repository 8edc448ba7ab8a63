import {
  Attribute,
  Builder,
  DataType,
  Graph,
  Node,
  Tensor,
  tensorType,
  Value,
  type Model,
  type Shape,
} from '../../../src/ir/index.js';
import { newModel } from './support.js';

/** Helpers to build small graphs by hand for the table tests. */
export class G {
  readonly m: Model = newModel();
  readonly g: Graph = this.m.graph;
  readonly b = new Builder(this.g);

  input(name: string, dt: DataType, shape: Shape): Value {
    return this.g.addInput(new Value(name, tensorType(dt, shape)));
  }
  out(...vs: Value[]): void {
    this.g.outputs.push(...vs);
  }
  op(
    op: string,
    ins: (Value | null)[],
    attrs?: Record<string, number | number[] | string | Tensor>,
    name?: string,
  ): Value {
    return this.b.op1(op, ins, { attrs, name });
  }
  ints(name: string, v: number[], dims: number[] = [v.length]): Value {
    return this.b.constInt64(name, v, dims);
  }
  floats(name: string, v: number[], dims: number[] = [v.length]): Value {
    return this.b.constFloat(name, v, dims);
  }
  /** A Constant node holding `t`. */
  constant(name: string, t: Tensor): Value {
    return this.b.op1('Constant', [], { name, attrs: { value: t } });
  }
  /** Declare a value's type (as value_info would). */
  typed(v: Value, dt: DataType, shape: Shape): Value {
    v.type = tensorType(dt, shape);
    this.g.valueInfo.push(v);
    return v;
  }
  /** An If node whose branches read `outer` (an outer-scope value) and return Neg(outer) / outer. */
  ifNode(cond: Value, outer: Value, name: string): Value {
    const thenG = new Graph(`${name}_then`);
    const elseG = new Graph(`${name}_else`);
    const t = new Value(`${name}_t`);
    thenG.append(new Node('', 'Neg', [outer], [t], `${name}_neg`));
    thenG.outputs.push(t);
    const e = new Value(`${name}_e`);
    elseG.append(new Node('', 'Abs', [outer], [e], `${name}_abs`));
    elseG.outputs.push(e);
    const y = new Value(`${name}_out`);
    const n = new Node('', 'If', [cond], [y], name, [
      Attribute.graph('then_branch', thenG),
      Attribute.graph('else_branch', elseG),
    ]);
    thenG.parentNode = n;
    elseG.parentNode = n;
    this.g.append(n);
    return y;
  }
}

export { DataType, Tensor };
