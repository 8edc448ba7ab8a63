/** Table tests of the plan language: valid plans (AST and lowered Plan asserted) and invalid ones (codes asserted). */
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { checkPlan, localRegistry, parsePlan, type StepStmt, type WhereClause } from '../../dsl/index.js';
import { allPasses } from '../../src/pass/index.js';
import type { Plan } from '../../src/pass/plan.js';
import { GOLDEN } from '../support/paths.js';
import { fakeRegistry, FAKE_PASSES } from './fake-passes.js';

const DATA = 'data dev = jsonl "dev.jsonl" label "label"\n';

/** The lowered plan without spans and source (what the table compares). */
function lowered(src: string, opts: Parameters<typeof checkPlan>[2] = {}): Omit<Plan, 'source'> {
  const r = checkPlan(src, 'plan.ax', { registry: fakeRegistry, ...opts });
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  expect(errors.map((d) => `${d.code} ${d.message}`)).toEqual([]);
  const { source: _s, ...plan } = JSON.parse(JSON.stringify(r.plan, (k, v) => (k === 'span' ? undefined : v))) as Plan;
  return plan;
}
const steps = (src: string, opts: Parameters<typeof checkPlan>[2] = {}) => lowered(src, opts).steps;
const codes = (src: string, opts: Parameters<typeof checkPlan>[2] = {}) =>
  checkPlan(src, 'plan.ax', { registry: fakeRegistry, ...opts }).diagnostics.map((d) => d.code);

describe('valid plans lower to steps', () => {
  const cases: { name: string; src: string; steps: unknown[] }[] = [
    {
      name: 'positional names with an argument, on, by',
      src: DATA + 'significance heads, ffn-groups(64), blocks on dev by magnitude\n',
      steps: [
        {
          pass: 'significance',
          options: {
            elements: [{ name: 'heads' }, { name: 'ffn-groups', arg: 64 }, { name: 'blocks' }],
            on: 'dev',
            by: 'magnitude',
          },
        },
      ],
    },
    {
      name: 'where and keep with a percent, defaults filled',
      src: DATA + 'significance heads on dev\nprune ffn-groups where significance < 0.001 keep >= 25%\n',
      steps: [
        { pass: 'significance', options: { elements: [{ name: 'heads' }], on: 'dev', by: 'loss' } },
        {
          pass: 'prune',
          options: {
            elements: [{ name: 'ffn-groups' }],
            where: { metric: 'significance', op: '<', value: 0.001 },
            keep: { op: '>=', value: 0.25 },
            mode: 'threshold',
            tolerance: 1.1,
          },
        },
      ],
    },
    {
      name: 'layers range, IDENT value pair, boolean with and without value',
      src: 'topk-attention layers 2..3 k 16 renormalize false\ntopk-attention k 8 renormalize\n',
      steps: [
        { pass: 'topk-attention', options: { layers: { include: [2, 3], exclude: [] }, k: 16, renormalize: false } },
        { pass: 'topk-attention', options: { k: 8, renormalize: true } },
      ],
    },
    {
      name: 'bare enum values and except layers folded into the layer selector',
      src: 'quantize matmul int4 per-channel except layers 0, 2\n',
      steps: [
        {
          pass: 'quantize',
          options: {
            ops: [{ name: 'matmul' }],
            mode: 'int4',
            granularity: 'per-channel',
            'block-size': 32,
            layers: { all: true, include: [], exclude: [0, 2] },
          },
        },
      ],
    },
    {
      name: 'a bare enum value first is not taken for the positional option',
      src: 'quantize int8 layers 0..1 except layers 1\n',
      steps: [
        {
          pass: 'quantize',
          options: {
            ops: [{ name: 'matmul' }],
            mode: 'int8',
            granularity: 'per-tensor',
            'block-size': 32,
            layers: { include: [0, 1], exclude: [1] },
          },
        },
      ],
    },
    {
      name: 'except NAME values → except-NAME; percent option; dashed option names',
      src: 'quantize matmul, gemm except ops gemm keep-float 25% block-size 64\n',
      steps: [
        {
          pass: 'quantize',
          options: {
            ops: [{ name: 'matmul' }, { name: 'gemm' }],
            'except-ops': [{ name: 'gemm' }],
            'keep-float': 0.25,
            'block-size': 64,
            mode: 'int8',
            granularity: 'per-tensor',
          },
        },
      ],
    },
    {
      name: 'layers all; list continued on the next line after a comma',
      src: 'fuse attention,\n     layernorm, gelu target onnx\ntopk-attention layers all k 4\n',
      steps: [
        {
          pass: 'fuse',
          options: { patterns: [{ name: 'attention' }, { name: 'layernorm' }, { name: 'gelu' }], target: 'onnx' },
        },
        {
          pass: 'topk-attention',
          options: { layers: { all: true, include: [], exclude: [] }, k: 4, renormalize: true },
        },
      ],
    },
    {
      name: 'a continued list may skip blank lines and comments',
      src: 'fuse attention, # first\n\n  # more\n  gelu\ncleanup\n',
      steps: [
        { pass: 'fuse', options: { patterns: [{ name: 'attention' }, { name: 'gelu' }], target: 'onnxruntime' } },
        { pass: 'cleanup', options: {} },
      ],
    },
    {
      name: 'comments, blank lines, CRLF, a step with no options',
      src: '# header\r\n\r\ncleanup   # trailing comment\r\n\r\n',
      steps: [{ pass: 'cleanup', options: {} }],
    },
  ];
  for (const c of cases) test(c.name, () => expect(steps(c.src)).toEqual(c.steps));
});

describe('data and verify lower to DataDecl and VerifySpec', () => {
  test('every data option, paths relative to the plan folder', () => {
    const src =
      'data t = tsv "in/reviews.tsv" tokenizer "tok/tokenizer.json" text "sentence" text-pair "s2" label "label" split odd limit 100 offset 5 max-length 128 batch 16\n' +
      'data j = jsonl "/abs/dev.jsonl"\n' +
      'verify on t: accuracy >= 80%\nverify on j: accuracy drop <= 0.5 points\n';
    const r = checkPlan(src, 'plans/p.ax', { registry: fakeRegistry });
    expect(r.diagnostics).toEqual([]);
    const data = r.plan!.data.map(({ span: _s, ...d }) => d);
    expect(data).toEqual([
      {
        name: 't',
        format: 'tsv',
        path: path.join('plans', 'in/reviews.tsv'),
        tokenizer: path.join('plans', 'tok/tokenizer.json'),
        text: 'sentence',
        textPair: 's2',
        label: 'label',
        split: 'odd',
        limit: 100,
        offset: 5,
        maxLength: 128,
        batch: 16,
      },
      { name: 'j', format: 'jsonl', path: '/abs/dev.jsonl' },
    ]);
    expect(checkPlan(src, 'p.ax', { registry: fakeRegistry, baseDir: '/base' }).plan!.data[0]!.path).toBe(
      '/base/in/reviews.tsv',
    );
  });

  test('verify requirements merge per output; percents become fractions', () => {
    const src =
      DATA +
      'verify on dev: accuracy drop <= 0.5 points; logits atol 1e-3 rtol 1e-2;\n' +
      '               logits cosine >= 0.999; * argmax >= 99.5%; accuracy >= 0.75\n' +
      'verify on dev: accuracy drop <= -1\n';
    const plan = lowered(src);
    expect(plan.verify).toEqual([
      {
        data: 'dev',
        accuracyDrop: 0.5,
        minAccuracy: 0.75,
        outputs: [
          { output: 'logits', atol: 0.001, rtol: 0.01, cosine: 0.999 },
          { output: '*', argmax: 0.995 },
        ],
      },
      { data: 'dev', accuracyDrop: -1, outputs: [] },
    ]);
  });

  test('data fields are checked against the model unless checkData is false', () => {
    const src = `data dev = jsonl "${path.join(GOLDEN, 'sst2/dev.jsonl')}" label "labels"\nverify on dev: accuracy >= 50%\n`;
    const info = { inputs: ['input_ids', 'attention_mask', 'token_type_ids', 'pixel_values'] };
    expect(codes(src, { modelInfo: info })).toEqual(['AX2202', 'AX2202']);
    expect(codes(src, { modelInfo: info, checkData: false })).toEqual([]);
    expect(codes(src.replace('"labels"', '"label"'), { modelInfo: { inputs: info.inputs.slice(0, 3) } })).toEqual([]);
  });

  test('a data source may be declared after its use', () => {
    expect(lowered('verify on dev: accuracy drop <= 1 points\n' + DATA).verify[0]!.data).toBe('dev');
  });
});

describe('AST carries spans', () => {
  test('statement, clause and value spans', () => {
    const src = DATA + 'prune heads, ffn-groups(64) where significance < 0.001 keep >= 25%\n';
    const { ast, diagnostics } = parsePlan(src, 'p.ax');
    expect(diagnostics).toEqual([]);
    const step = ast.statements[1] as StepStmt;
    expect(step.span).toMatchObject({ file: 'p.ax', line: 2, col: 1, endLine: 2, endCol: 66 });
    expect(src.slice(step.span.start, step.span.end)).toBe(
      'prune heads, ffn-groups(64) where significance < 0.001 keep >= 25%',
    );
    const list = step.args[0]!;
    expect(list.kind).toBe('values');
    if (list.kind !== 'values') return;
    const item = list.items[1]!;
    expect(item).toMatchObject({ kind: 'word', name: 'ffn-groups', arg: { value: 64, percent: false } });
    expect(src.slice(item.span.start, item.span.end)).toBe('ffn-groups(64)');
    const where = step.args[1] as WhereClause;
    expect(where).toMatchObject({ kind: 'where', op: '<', metric: { text: 'significance' }, value: { value: 0.001 } });
    expect(src.slice(where.span.start, where.span.end)).toBe('where significance < 0.001');
    expect(where.opSpan).toMatchObject({ line: 2, col: 48 });
    const keep = step.args[2]!;
    expect(keep).toMatchObject({ kind: 'keep', op: '>=', value: { value: 25, percent: true, text: '25%' } });
  });

  test('lexing: numbers, ranges, negative numbers, dashed names, strings with escapes', () => {
    const { ast, diagnostics } = parsePlan('x a-b-1 1e-3 -2.5 2..3 "q\\"uote\\\\" all\n', 'p.ax');
    expect(diagnostics).toEqual([]);
    const step = ast.statements[0] as StepStmt;
    const vals = step.args.flatMap((a) => (a.kind === 'values' ? a.items : []));
    expect(vals.map((v) => v.kind)).toEqual(['word', 'number', 'number', 'range', 'string', 'all']);
    expect(vals[0]).toMatchObject({ name: 'a-b-1' });
    expect(vals[1]).toMatchObject({ value: 0.001 });
    expect(vals[2]).toMatchObject({ value: -2.5 });
    expect(vals[3]).toMatchObject({ from: { value: 2 }, to: { value: 3 } });
    expect(vals[4]).toMatchObject({ value: 'q"uote\\' });
  });
});

describe('invalid plans give stable codes', () => {
  const cases: { name: string; src: string; codes: string[]; opts?: Parameters<typeof checkPlan>[2] }[] = [
    {
      name: 'several syntax errors in one run',
      src: 'data = x\nfuse attention\nverify dev\n',
      codes: ['AX2003', 'AX2003'],
    },
    { name: 'unknown pass with a suggestion', src: 'fuze attention\n', codes: ['AX2101'] },
    { name: 'clause the pass does not take', src: 'fuse attention on dev\n' + DATA, codes: ['AX2102'] },
    { name: 'where on a pass without where', src: 'topk-attention k 1 where significance < 0\n', codes: ['AX2102'] },
    { name: 'percent where not allowed', src: 'topk-attention k 50%\n', codes: ['AX2103'] },
    {
      name: 'a bound refuses a percent only with percent: false',
      src: 'strict keep >= 25%\n',
      codes: ['AX2103'],
      opts: {
        registry: localRegistry([
          {
            name: 'strict',
            summary: 'test',
            options: { keep: { type: 'bound', summary: 'count', percent: false } },
            run: () => ({ changed: false }),
          },
        ]),
      },
    },
    {
      name: 'boolean given a word that is not true/false',
      src: 'topk-attention k 1 renormalize yes\n',
      codes: ['AX2103'],
    },
    { name: 'prototype names are not options', src: 'fuse gelu constructor toString\n', codes: ['AX2102', 'AX2102'] },
    {
      name: 'prototype names are not data options',
      src: 'data d = jsonl "x" constructor 1\nverify on d: accuracy >= 1%\n',
      codes: ['AX2102'],
    },
    { name: 'fractional integer', src: 'topk-attention k 1.5\n', codes: ['AX2103'] },
    { name: 'negative layer', src: 'topk-attention layers -1 k 2\n', codes: ['AX2104'] },
    {
      name: 'where metric not in values',
      src: DATA + 'significance heads on dev\nprune heads where loss < 0\n',
      codes: ['AX2105'],
    },
    { name: 'undeclared data in on', src: 'significance heads on dev\n', codes: ['AX2106'] },
    { name: 'duplicate data', src: DATA + DATA + 'verify on dev: accuracy >= 50%\n', codes: ['AX2107'] },
    { name: 'option twice', src: 'quantize int8 mode int4\n', codes: ['AX2108'] },
    { name: 'value without name', src: 'fuse attention "x"\n', codes: ['AX2110'] },
    {
      name: 'layers beyond the model',
      src: 'topk-attention layers 0, 4 k 2\n',
      codes: ['AX2201'],
      opts: { modelInfo: { layers: 4 } },
    },
    {
      name: 'prune before significance',
      src: DATA + 'prune heads where significance < 0\n',
      codes: ['AX2302', 'AX2301'],
    },
    {
      name: 'facts given by the caller satisfy requires',
      src: DATA + 'prune heads where significance < 0\n',
      codes: ['AX2302'],
      opts: { facts: ['significance'] },
    },
    { name: 'accuracy typo', src: DATA + 'verify on dev: acuracy drop <= 1 points\n', codes: ['AX2105'] },
    { name: 'unknown tolerance word', src: DATA + 'verify on dev: logits atl 1e-3\n', codes: ['AX2105'] },
    { name: 'cosine as a percent', src: DATA + 'verify on dev: logits cosine >= 99%\n', codes: ['AX2103'] },
    {
      name: 'text option on token data',
      src: 'data d = jsonl "x.jsonl" text "s"\nverify on d: accuracy >= 1%\n',
      codes: ['AX2102'],
    },
  ];
  for (const c of cases) test(c.name, () => expect(codes(c.src, c.opts)).toEqual(c.codes));

  test('a plan with errors has no lowered plan; with only warnings it has one', () => {
    expect(checkPlan('fuze x\n', 'p.ax', { registry: fakeRegistry }).plan).toBeUndefined();
    const w = checkPlan(DATA + 'cleanup\n', 'p.ax', { registry: fakeRegistry });
    expect(w.diagnostics.map((d) => [d.code, d.severity])).toEqual([['AX2302', 'warning']]);
    expect(w.plan?.steps.map((s) => s.pass)).toEqual(['cleanup']);
  });

  test('diagnostics carry plan locations and did-you-mean notes', () => {
    const r = checkPlan('fuse attention\nsignifcance heads\n', 'p.ax', { registry: fakeRegistry });
    expect(r.diagnostics).toHaveLength(1);
    expect(r.diagnostics[0]).toMatchObject({
      code: 'AX2101',
      location: { kind: 'plan', file: 'p.ax', line: 2, col: 1, endLine: 2, endCol: 11 },
      notes: ["did you mean 'significance'?", 'run `axc passes` to list the passes'],
    });
  });
});

describe('robustness and determinism', () => {
  test('any input gives diagnostics with plan locations, never an exception', () => {
    const alphabet = fc.constantFrom(
      ...'data verify on by layers except where keep all prune fuse quantize significance heads k 16 2..3 25% 1e-3 "s" , ; : = < >= ( ) # \n x-y'.split(
        ' ',
      ),
      ' ',
      '\n',
      '$',
      '"',
    );
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 40 }), (parts) => {
        const src = parts.join(' ');
        const r = checkPlan(src, 'p.ax', { registry: fakeRegistry });
        for (const d of r.diagnostics) {
          expect(d.code).toMatch(/^AX2\d{3}$/);
          expect(d.location.kind).toBe('plan');
          if (d.location.kind === 'plan') expect(d.location.line).toBeGreaterThanOrEqual(1);
        }
        if (r.diagnostics.some((d) => d.severity === 'error')) expect(r.plan).toBeUndefined();
      }),
      { numRuns: 300, seed: 42 },
    );
  });

  test('checking twice gives identical output', () => {
    const src = DATA + 'significance heads, blocks on dev\nprune blocks where significance < 0\nfuze x\n';
    const a = JSON.stringify(checkPlan(src, 'p.ax', { registry: fakeRegistry }));
    const b = JSON.stringify(checkPlan(src, 'p.ax', { registry: fakeRegistry }));
    expect(a).toBe(b);
  });

  test('a local registry leaves the global one untouched', () => {
    const before = allPasses().map((p) => p.name);
    const reg = localRegistry(FAKE_PASSES);
    expect(reg.get('prune')).toBe(FAKE_PASSES.find((p) => p.name === 'prune'));
    expect(allPasses().map((p) => p.name)).toEqual(before);
    expect(() => localRegistry([FAKE_PASSES[0]!, FAKE_PASSES[0]!])).toThrow(/given twice/);
  });
});

describe('golden/plans/cleanup.ax', () => {
  test('lowers to a cleanup step and a verify on the odd half of dev', () => {
    const file = path.join(GOLDEN, 'plans/cleanup.ax');
    const src = fs.readFileSync(file, 'utf8');
    const r = checkPlan(src, file, { registry: fakeRegistry, checkFiles: true });
    expect(r.diagnostics).toEqual([]);
    expect(r.plan!.steps.map((s) => s.pass)).toEqual(['cleanup']);
    expect(r.plan!.data[0]).toMatchObject({
      name: 'dev',
      format: 'jsonl',
      split: 'odd',
      path: path.join(GOLDEN, 'sst2/dev.jsonl'),
    });
    expect(r.plan!.verify[0]).toMatchObject({
      data: 'dev',
      accuracyDrop: 0,
      outputs: [{ output: 'logits', atol: 1e-5, rtol: 1e-4, argmax: 1 }],
    });
  });
});
