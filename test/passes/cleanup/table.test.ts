import { describe, expect, it } from 'vitest';
import { Builder, graphText } from '../../../src/ir/index.js';
import { AxcError } from '../../../src/diagnostics/index.js';
import { DataType, G, Tensor } from './cases.js';
import { invariantErrors, runPass } from './support.js';

/**
 * Table tests in the typescript-eslint style: `valid` cases come out unchanged (changed=false, same text);
 * `invalid` cases come out as `output` (graph text), with the expected notes. Every case must pass the
 * invariant checker after the pass, and a second run must change nothing (idempotence).
 */
interface Case {
  name: string;
  build: (t: G) => void;
  options?: Record<string, unknown>;
  /** Expected graph text after the pass (invalid cases only). */
  output?: string;
  /** Expected note messages (code: message). */
  notes?: string[];
}

const F = DataType.FLOAT;
const I64 = DataType.INT64;

function table(pass: string, cases: { valid: Case[]; invalid: Case[] }): void {
  describe(pass, () => {
    for (const c of cases.valid)
      it(`valid: ${c.name}`, async () => {
        const t = new G();
        c.build(t);
        const before = graphText(t.g);
        const r = await runPass(t.m, pass, c.options);
        expect(r.result.changed).toBe(false);
        expect(graphText(t.g)).toBe(before);
        expect(r.diagnostics.map((d) => `${d.code}: ${d.message}`)).toEqual(c.notes ?? []);
      });
    for (const c of cases.invalid)
      it(`invalid: ${c.name}`, async () => {
        const t = new G();
        c.build(t);
        const r = await runPass(t.m, pass, c.options);
        expect(r.result.changed).toBe(true);
        expect(invariantErrors(t.m)).toEqual([]);
        expect(graphText(t.g)).toBe(c.output);
        expect(r.diagnostics.map((d) => `${d.code}: ${d.message}`)).toEqual(c.notes ?? []);
        const again = await runPass(t.m, pass, c.options);
        expect(again.result.changed).toBe(false);
        expect(graphText(t.g)).toBe(c.output);
      });
  });
}

table('dce', {
  valid: [
    {
      name: 'everything is used',
      build: (t) => {
        const x = t.input('x', F, [2]);
        t.out(t.op('Neg', [x]));
      },
    },
    {
      name: 'an initializer that is only a graph output stays',
      build: (t) => {
        t.input('x', F, [2]);
        t.out(t.floats('w', [1, 2]));
      },
    },
  ],
  invalid: [
    {
      name: 'a dead chain and the initializer only it used',
      build: (t) => {
        const x = t.input('x', F, [2]);
        const w = t.floats('w', [1, 2]);
        const dead = t.op('Add', [x, w], undefined, 'dead_add');
        t.op('Abs', [dead], undefined, 'dead_abs');
        t.out(t.op('Neg', [x]));
      },
      output: `graph "g" (
  %x: float32[2]
) -> (
  %Neg_out: ?
)
nodes {
  %Neg_out = Neg(%x)  # Neg
}`,
    },
    {
      name: 'a dead If node releases the outer value its branches read',
      build: (t) => {
        const x = t.input('x', F, [2]);
        const c = t.input('c', DataType.BOOL, []);
        const inner = t.op('Sqrt', [x], undefined, 'only_used_in_branches');
        t.ifNode(c, inner, 'if0');
        t.out(t.op('Neg', [x]));
      },
      output: `graph "g" (
  %x: float32[2]
  %c: bool[]
) -> (
  %Neg_out: ?
)
nodes {
  %Neg_out = Neg(%x)  # Neg
}`,
    },
  ],
});

table('eliminate-identity', {
  valid: [
    {
      name: 'a Cast that changes the type',
      build: (t) => {
        const x = t.input('x', I64, [2]);
        t.out(t.op('Cast', [x], { to: DataType.FLOAT }));
      },
    },
    {
      name: 'a real Transpose and a real Reshape',
      build: (t) => {
        const x = t.input('x', F, [2, 3]);
        const y = t.op('Transpose', [x], { perm: [1, 0] });
        t.out(t.op('Reshape', [y, t.ints('shape', [6])]));
      },
    },
    {
      name: 'Identity from a graph input to a graph output is kept, with the reason',
      build: (t) => {
        const x = t.input('x', F, [2]);
        t.out(t.op('Identity', [x]));
      },
      notes: [
        "AX3811: did not remove 'Identity' (Identity): its output 'Identity_out' is a graph output and its input 'x' is a graph input",
      ],
    },
    {
      name: 'Dropout whose mask is used is kept, with the reason',
      build: (t) => {
        const x = t.input('x', F, [2]);
        const [y, mask] = t.b.op('Dropout', [x], { outputs: 2 });
        t.out(y!, mask!);
      },
      notes: ["AX3811: did not remove 'Dropout' (Dropout): its mask output 'Dropout_out1' is used"],
    },
  ],
  invalid: [
    {
      name: 'Identity, no-op Cast, Transpose, Reshape, Dropout and single-input Concat in a chain',
      build: (t) => {
        const x = t.input('x', I64, ['B', 4]);
        const a = t.op('Identity', [x]);
        const c = t.op('Cast', [a], { to: DataType.INT64 });
        const tr = t.typed(t.op('Transpose', [c], { perm: [0, 1] }), I64, ['B', 4]);
        const r = t.typed(t.op('Reshape', [tr, t.ints('shape', [0, -1])]), I64, ['B', 4]);
        const d = t.op('Dropout', [
          r,
          null,
          t.b.initializer('train', Tensor.fromUint8('train', [], new Uint8Array([0]), DataType.BOOL)),
        ]);
        const cc = t.op('Concat', [d], { axis: 0 });
        t.out(t.op('Neg', [cc]));
      },
      output: `graph "g" (
  %x: int64[B,4]
) -> (
  %Neg_out: ?
)
initializers {
  %shape = int64[2] {0, -1}
  %train = bool[] {0}
}
nodes {
  %Neg_out = Neg(%x)  # Neg
}`,
    },
    {
      name: 'Identity before a graph output: the producer takes over the output name',
      build: (t) => {
        const x = t.input('x', F, [2]);
        const y = t.op('Neg', [x]);
        const z = t.op('Identity', [y]);
        z.name = 'result';
        z.type = { kind: 'tensor', elemType: F, shape: [2] };
        t.out(z);
      },
      output: `graph "g" (
  %x: float32[2]
) -> (
  %result: float32[2]
)
nodes {
  %result = Neg(%x)  : float32[2]  # Neg
}`,
    },
    {
      name: 'a Cast inside an If branch, reading an outer value',
      build: (t) => {
        const x = t.input('x', F, [2]);
        const c = t.input('c', DataType.BOOL, []);
        const y = t.ifNode(c, x, 'if0');
        t.out(y);
        // then branch: Neg(Cast<to=float>(x)) where x is float: the Cast goes, the branch reads x directly
        const thenG = t.g.first()!.subgraphs()[0]!;
        const neg = thenG.first()!;
        const cast = new Builder(thenG, neg).op1('Cast', [x], { attrs: { to: DataType.FLOAT }, name: 'inner_cast' });
        neg.replaceInput(0, cast);
      },
      output: `graph "g" (
  %x: float32[2]
  %c: bool[]
) -> (
  %if0_out: ?
)
nodes {
  %if0_out = If<then_branch=
      graph "if0_then" (
      ) -> (
        %if0_t: ?
      )
      nodes {
        %if0_t = Neg(%x)  # if0_neg
      }, else_branch=
      graph "if0_else" (
      ) -> (
        %if0_e: ?
      )
      nodes {
        %if0_e = Abs(%x)  # if0_abs
      }>(%c)  # if0
}`,
    },
  ],
});

table('fold-constants', {
  valid: [
    {
      name: 'Shape of a dynamic dimension is not folded',
      build: (t) => {
        const x = t.input('x', F, ['B', 4]);
        t.out(t.op('Shape', [x]));
      },
    },
    {
      name: 'a result above size-limit is declined, with the reason',
      options: { 'size-limit': 4 },
      build: (t) => {
        t.input('x', F, [2]);
        t.out(t.op('Neg', [t.op('ConstantOfShape', [t.ints('shape', [2, 3])])]));
      },
      notes: [
        "AX3831: did not fold 'ConstantOfShape' (ConstantOfShape): its result has 6 elements, above size-limit 4",
      ],
    },
    {
      name: 'float Range, integer division by zero and ops without an evaluator are declined, with reasons',
      build: (t) => {
        const x = t.input('x', F, [2]);
        const r = t.op('Range', [t.floats('s', [0], []), t.floats('l', [3], []), t.floats('d', [1], [])]);
        const q = t.op('Div', [t.ints('a', [1]), t.ints('z', [0])]);
        const e = t.op('Erf', [t.floats('v', [0.5])]);
        t.out(t.op('Sum', [x, r]), q, t.op('Abs', [e]));
      },
      notes: [
        "AX3831: did not fold 'Range' (Range): Range on float32 is not folded (its rounding depends on the runtime)",
        "AX3831: did not fold 'Div' (Div): integer division by zero",
        "AX3831: did not fold 'Erf' (Erf): its inputs are constant but axc has no evaluator for Erf",
      ],
    },
  ],
  invalid: [
    {
      name: 'Constant nodes become initializers with their names; the shape chain of a static input folds to its last value',
      build: (t) => {
        const x = t.input('x', F, [2, 8]);
        const s = t.op('Shape', [x]);
        const i1 = t.constant('c1', Tensor.scalarInt64('c1', 1));
        const d = t.op('Gather', [s, i1], { axis: 0 });
        const u = t.op('Unsqueeze', [d, t.constant('c0', Tensor.fromInt64('c0', [1], [0]))]);
        const shape = t.op('Concat', [t.ints('minus1', [-1]), u, t.ints('four', [4])], { axis: 0 });
        const half = t.op('Div', [shape, t.ints('two', [2], [])]);
        t.out(t.op('Reshape', [x, t.op('Slice', [half, t.ints('st', [1]), t.ints('en', [3])])]));
      },
      output: `graph "g" (
  %x: float32[2,8]
) -> (
  %Reshape_out: ?
)
initializers {
  %minus1 = int64[1] {-1}
  %four = int64[1] {4}
  %two = int64[] {2}
  %st = int64[1] {1}
  %en = int64[1] {3}
  %Slice_out = int64[2] {4, 2}
}
nodes {
  %Reshape_out = Reshape(%x, %Slice_out)  # Reshape
}`,
    },
    {
      name: 'float arithmetic, Cast, Equal and Where fold exactly',
      build: (t) => {
        t.input('x', F, [1]);
        const a = t.floats('a', [0.1, 1e30, -3]);
        const m = t.op('Mul', [a, t.floats('k', [3], [])]);
        const c = t.op('Cast', [m], { to: DataType.INT64 });
        const e = t.op('Equal', [c, t.ints('minus9', [-9], [])]);
        t.out(t.op('Where', [e, t.floats('one', [1], []), m]));
      },
      notes: [
        "AX3831: did not fold 'Cast' (Cast): 3.000000196258126e+30 is outside the int64 range, so its cast is undefined",
      ],
      output: `graph "g" (
  %x: float32[1]
) -> (
  %Where_out: ?
)
initializers {
  %a = float32[3] {0.1, 1.0000000150474662e+30, -3}
  %k = float32[] {3}
  %minus9 = int64[] {-9}
  %one = float32[] {1}
  %Mul_out = float32[3] {0.3, 3.000000196258126e+30, -9}
}
nodes {
  %Cast_out = Cast<to=7>(%Mul_out)  # Cast
  %Equal_out = Equal(%Cast_out, %minus9)  # Equal
  %Where_out = Where(%Equal_out, %one, %Mul_out)  # Where
}`,
    },
  ],
});

describe('fold-constants in a subgraph', () => {
  it('folds a Constant and a shape computation inside an If branch into that branch, reading outer constants', async () => {
    const t = new G();
    const x = t.input('x', F, [2, 3]);
    const c = t.input('c', DataType.BOOL, []);
    const outerAxes = t.ints('outer_axes', [0]);
    const y = t.ifNode(c, x, 'if0');
    t.out(y);
    const thenG = t.g.first()!.subgraphs()[0]!;
    const neg = thenG.first()!;
    const b = new Builder(thenG, neg);
    const k = b.op1('Constant', [], { name: 'k', attrs: { value: Tensor.fromInt64('k', [1], [1]) } });
    const shape = b.op1('Concat', [b.op1('Unsqueeze', [b.op1('Size', [x]), outerAxes]), k], { attrs: { axis: 0 } });
    neg.replaceInput(0, b.op1('Reshape', [x, shape]));
    const r = await runPass(t.m, 'fold-constants');
    expect(r.result.stats).toMatchObject({ constantsConverted: 1, nodesFolded: 3 });
    expect(invariantErrors(t.m)).toEqual([]);
    expect(graphText(thenG)).toBe(`graph "if0_then" (
) -> (
  %if0_t: ?
)
initializers {
  %Concat_out = int64[2] {6, 1}
}
nodes {
  %Reshape_out = Reshape(%x, %Concat_out)  # Reshape
  %if0_t = Neg(%Reshape_out)  # if0_neg
}`);
    expect(t.g.initializers.map((v) => v.name)).toEqual(['outer_axes']);
  });
});

table('cse', {
  valid: [
    {
      name: 'identical float weights stay apart unless merge-weights is on',
      build: (t) => {
        const x = t.input('x', F, [2]);
        t.out(t.op('Add', [t.op('Mul', [x, t.floats('w0', [0, 0])]), t.floats('w1', [0, 0])]));
      },
    },
    {
      name: 'different attributes or different inputs stay apart; random ops are never merged',
      build: (t) => {
        const x = t.input('x', F, [2, 3]);
        const y = t.input('y', F, [2, 3]);
        const a = t.op('Transpose', [x], { perm: [1, 0] });
        const b = t.op('Softmax', [x], { axis: 0 });
        const c = t.op('Softmax', [x], { axis: 1 });
        const d = t.op('Neg', [y]);
        const r1 = t.op('RandomNormalLike', [x]);
        const r2 = t.op('RandomNormalLike', [x]);
        t.out(a, b, c, d, r1, r2);
      },
    },
    {
      name: 'a duplicate whose output is a graph output is kept, with the reason',
      build: (t) => {
        const x = t.input('x', F, [2]);
        t.out(t.op('Neg', [x]), t.op('Neg', [x]));
      },
      notes: [
        "AX3841: did not merge 'Neg_1' (Neg): it computes the same as 'Neg' (Neg), but its output 'Neg_out_1' is a graph output",
      ],
    },
  ],
  invalid: [
    {
      name: 'merge-weights merges identical float tensors; integer constants and float scalars merge by default',
      options: { 'merge-weights': true },
      build: (t) => {
        const x = t.input('x', F, [2]);
        const y = t.op('Mul', [t.op('Add', [x, t.floats('w0', [0, 0])]), t.floats('w1', [0, 0])]);
        const z = t.op('Div', [t.op('Mul', [y, t.floats('s0', [0.5], [])]), t.floats('s1', [0.5], [])]);
        t.out(t.op('Unsqueeze', [t.op('Unsqueeze', [z, t.ints('a0', [0])]), t.ints('a1', [0])]));
      },
      output: `graph "g" (
  %x: float32[2]
) -> (
  %Unsqueeze_out_1: ?
)
initializers {
  %w0 = float32[2] {0, 0}
  %s0 = float32[] {0.5}
  %a0 = int64[1] {0}
}
nodes {
  %Add_out = Add(%x, %w0)  # Add
  %Mul_out = Mul(%Add_out, %w0)  # Mul
  %Mul_out_1 = Mul(%Mul_out, %s0)  # Mul_1
  %Div_out = Div(%Mul_out_1, %s0)  # Div
  %Unsqueeze_out = Unsqueeze(%Div_out, %a0)  # Unsqueeze
  %Unsqueeze_out_1 = Unsqueeze(%Unsqueeze_out, %a0)  # Unsqueeze_1
}`,
    },
    {
      name: 'duplicated constants and Shape -> Gather chains collapse',
      build: (t) => {
        const x = t.input('x', F, ['B', 'S']);
        const chain = () => {
          const s = t.op('Shape', [x]);
          const i = t.constant('idx', Tensor.scalarInt64('idx', 1));
          return t.op('Unsqueeze', [t.op('Gather', [s, i], { axis: 0 }), t.ints('axes', [0])]);
        };
        const a = chain();
        const b = chain();
        t.out(t.op('Concat', [a, b], { axis: 0 }));
      },
      output: `graph "g" (
  %x: float32[B,S]
) -> (
  %Concat_out: ?
)
initializers {
  %axes = int64[1] {0}
}
nodes {
  %Shape_out = Shape(%x)  # Shape
  %idx_out = Constant<value=int64[] {1}>()  # idx
  %Gather_out = Gather<axis=0>(%Shape_out, %idx_out)  # Gather
  %Unsqueeze_out = Unsqueeze(%Gather_out, %axes)  # Unsqueeze
  %Concat_out = Concat<axis=0>(%Unsqueeze_out, %Unsqueeze_out)  # Concat
}`,
    },
  ],
});

table('toposort', {
  valid: [
    {
      name: 'a sorted graph keeps its order',
      build: (t) => {
        const x = t.input('x', F, [2]);
        const b = t.op('Abs', [x]);
        const a = t.op('Neg', [x]);
        t.out(t.op('Add', [a, b]));
      },
    },
  ],
  invalid: [
    {
      name: 'nodes out of order move after their producers, ties keep their order',
      build: (t) => {
        const x = t.input('x', F, [2]);
        const a = t.op('Neg', [x]);
        const b = t.op('Abs', [x]);
        t.out(t.op('Add', [a, b]));
        // move the consumer first, then Abs before Neg: sorting restores producers first, Abs before Neg stays
        t.g.moveBefore(t.g.last()!, t.g.first());
        t.g.moveBefore(b.producer()!, a.producer()!);
      },
      output: `graph "g" (
  %x: float32[2]
) -> (
  %Add_out: ?
)
nodes {
  %Abs_out = Abs(%x)  # Abs
  %Neg_out = Neg(%x)  # Neg
  %Add_out = Add(%Neg_out, %Abs_out)  # Add
}`,
    },
  ],
});

describe('toposort on a cycle', () => {
  it('reports AX3821 naming the nodes', async () => {
    const t = new G();
    const x = t.input('x', F, [2]);
    const a = t.op('Neg', [x]);
    const b = t.op('Abs', [a]);
    a.producer()!.replaceInput(0, b);
    t.out(b);
    const err = await runPass(t.m, 'toposort').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AxcError);
    const d = (err as AxcError).diagnostics[0]!;
    expect(d.code).toBe('AX3821');
    expect(d.message).toBe("graph 'g' has a cycle through 2 nodes: 'Neg' (Neg), 'Abs' (Abs)");
    expect(d.location).toEqual({ kind: 'node', node: 'Neg', op: 'Neg', graph: 'g' });
  });
});
