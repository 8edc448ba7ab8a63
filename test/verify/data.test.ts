import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { AxcError } from '../../src/diagnostics/index.js';
import type { DataDecl } from '../../src/pass/plan.js';
import { loadDataset, loadTokenizer, makeBatches, PlanDataProvider, type Dataset } from '../../src/verify/index.js';
import { DEV_JSONL, DEV_TSV, TOKENIZER } from '../support/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'axc-verify-data-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

const INPUTS = ['input_ids', 'attention_mask', 'token_type_ids'];
const ids = (d: Dataset, i: number, k = 'input_ids') => Array.from(d.rows[i]!.inputs[k] as BigInt64Array, Number);

async function expectError(p: Promise<unknown>): Promise<AxcError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(AxcError);
    return e as AxcError;
  }
  throw new Error('expected an AxcError');
}

describe('jsonl', () => {
  test('reads the SST-2 dev ids with labels and idx', async () => {
    const d = await loadDataset({ name: 'dev', format: 'jsonl', path: DEV_JSONL });
    expect(d.rows.length).toBe(872);
    expect(d.labelled).toBe(true);
    expect(d.batch).toBe(32);
    expect(ids(d, 0)).toEqual([101, 2009, 1005, 1055, 1037, 11951, 1998, 2411, 12473, 4990, 1012, 102]);
    expect(d.rows[0]!.label).toBe(1);
    expect(d.rows[1]!.label).toBe(0);
    expect(d.rows[5]!.where).toBe('dev.jsonl:6');
  });

  test('split by idx, then offset and limit', async () => {
    const odd = await loadDataset({ name: 'o', format: 'jsonl', path: DEV_JSONL, split: 'odd', offset: 2, limit: 3 });
    expect(odd.rows.map((r) => r.idx)).toEqual([5, 7, 9]);
    const even = await loadDataset({ name: 'e', format: 'jsonl', path: DEV_JSONL, split: 'even', limit: 2 });
    expect(even.rows.map((r) => r.idx)).toEqual([0, 2]);
  });

  test('split by position when rows have no idx', async () => {
    const f = write(
      'noidx.jsonl',
      [10, 11, 12, 13, 14].map((x) => JSON.stringify({ input_ids: [101, x, 102] })).join('\n'),
    );
    const d = await loadDataset({ name: 'n', format: 'jsonl', path: f, split: 'odd' });
    expect(d.rows.map((r) => ids(d, d.rows.indexOf(r))[1])).toEqual([11, 13]);
    expect(d.labelled).toBe(false);
  });

  test('max-length keeps the final [SEP]', async () => {
    const d = await loadDataset({ name: 'dev', format: 'jsonl', path: DEV_JSONL, limit: 1, maxLength: 5 });
    expect(ids(d, 0)).toEqual([101, 2009, 1005, 1055, 102]);
  });

  test('batches pad to the longest row with id 0 and mask 0; missing mask is ones, type ids zeros', async () => {
    const d = await loadDataset({ name: 'dev', format: 'jsonl', path: DEV_JSONL, limit: 5, batch: 2 });
    const bs = makeBatches(d, INPUTS);
    expect(bs.map((b) => b.rows)).toEqual([[0, 1], [2, 3], [4]]);
    const b = bs[0]!;
    expect(b.feeds.input_ids!.dims).toEqual([2, 12]);
    const idsBS = Array.from(b.feeds.input_ids!.data as BigInt64Array, Number);
    const maskBS = Array.from(b.feeds.attention_mask!.data as BigInt64Array, Number);
    expect(idsBS.slice(12)).toEqual([101, 4895, 10258, 2378, 8450, 2135, 21657, 1998, 7143, 102, 0, 0]);
    expect(maskBS.slice(12)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    expect(maskBS.slice(0, 12).every((x) => x === 1)).toBe(true);
    expect(Array.from(b.feeds.token_type_ids!.data as BigInt64Array).every((x) => x === 0n)).toBe(true);
    // inputs the rows carry are used as given
    const f = write('typed.jsonl', JSON.stringify({ input_ids: [1, 2, 3], token_type_ids: [0, 1, 1] }));
    const t = await loadDataset({ name: 't', format: 'jsonl', path: f }, { modelInputs: INPUTS });
    // fields that are not token arrays (text, word lists) are not inputs and are left alone
    const w = write('words.jsonl', JSON.stringify({ input_ids: [1, 2], words: ['a', 'b'], text: 'a b', idx: 4 }));
    const wd = await loadDataset({ name: 'w', format: 'jsonl', path: w }, { modelInputs: INPUTS });
    expect(Object.keys(wd.rows[0]!.inputs)).toEqual(['input_ids']);
    expect(wd.rows[0]!.idx).toBe(4);
    expect(Array.from(makeBatches(t, INPUTS)[0]!.feeds.token_type_ids!.data as BigInt64Array, Number)).toEqual([
      0, 1, 1,
    ]);
  });
});

describe('text', () => {
  test('tokenizing dev.tsv reproduces the golden ids of all 872 sentences', async () => {
    const [tsv, golden] = await Promise.all([
      loadDataset({ name: 'tsv', format: 'tsv', path: DEV_TSV, tokenizer: TOKENIZER }),
      loadDataset({ name: 'dev', format: 'jsonl', path: DEV_JSONL }),
    ]);
    expect(tsv.rows.length).toBe(872);
    const mismatches = tsv.rows.filter((r, i) => ids(tsv, i).join(',') !== ids(golden, i).join(','));
    expect(mismatches.map((r) => r.where)).toEqual([]);
    expect(tsv.rows.map((r) => r.label)).toEqual(golden.rows.map((r) => r.label));
    expect(tsv.rows.map((r) => r.idx)).toEqual(golden.rows.map((r) => r.idx));
    // the file asks for padding to 128: it must be off
    expect(Math.max(...tsv.rows.map((r, i) => ids(tsv, i).length))).toBeLessThan(128);
  });

  test('text-jsonl, sentence pairs and max-length truncation (longest first)', async () => {
    const f = write(
      'pairs.jsonl',
      [
        JSON.stringify({ text: 'a charming journey', label: 1 }),
        JSON.stringify({ text: 'it is good', other: 'a very long and rather tedious second sentence', label: 0 }),
      ].join('\n'),
    );
    const single = await loadDataset({ name: 's', format: 'text-jsonl', path: f, tokenizer: TOKENIZER, limit: 1 });
    expect(ids(single, 0)).toEqual([101, 1037, 11951, 4990, 102]);
    const tok = loadTokenizer(TOKENIZER);
    const pair = tok.encode('it is good', 'a very long and rather tedious second sentence');
    expect(pair.ids[0]).toBe(101);
    expect(pair.typeIds.filter((t) => t === 1).length).toBe(10); // 9 word pieces ('tedious' is ted ##ious) + [SEP]
    const cut = tok.encode('it is good', 'a very long and rather tedious second sentence', 10);
    expect(cut.ids.length).toBe(10);
    // budget 10 - 3 specials = 7: longest first trims the second sentence (9 pieces) to 4 and keeps 'it is good'
    expect(cut.ids).toEqual([...pair.ids.slice(0, 5), ...pair.ids.slice(5, 9), 102]);
    expect(cut.typeIds).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    // when the first sequence is the longer one, it is the one trimmed
    expect(tok.encode('a b c d e f g', 'x y', 8).ids).toEqual([101, 1037, 1038, 1039, 102, 1060, 1061, 102]);
    const trunc = await loadDataset({ name: 's', format: 'text-jsonl', path: f, tokenizer: TOKENIZER, maxLength: 4 });
    expect(ids(trunc, 0)).toEqual([101, 1037, 11951, 102]);
  });
});

interface ErrorCase {
  name: string;
  file?: [string, string];
  decl: Partial<DataDecl>;
  modelInputs?: string[];
  code: string;
  message: RegExp;
}

const CASES: ErrorCase[] = [
  { name: 'file not found', decl: { path: 'nope.jsonl' }, code: 'AX5001', message: /file not found: .*nope\.jsonl/ },
  {
    name: 'bad JSON names the line',
    file: ['bad.jsonl', '{"input_ids": [1, 2]}\n\n{"input_ids": [1, 2]\n'],
    decl: {},
    code: 'AX5002',
    message: /^line 3: invalid JSON/,
  },
  {
    name: 'not an object',
    file: ['arr.jsonl', '[1, 2, 3]\n'],
    decl: {},
    code: 'AX5002',
    message: /line 1: expected a JSON object, got an array/,
  },
  {
    name: 'missing input_ids',
    file: ['noids.jsonl', '{"input_ids": [1]}\n{"ids": [1, 2], "label": 0}\n'],
    decl: {},
    code: 'AX5003',
    message: /line 2: missing field 'input_ids'/,
  },
  {
    name: 'label not an integer',
    file: ['label.jsonl', '{"input_ids": [1], "label": 0.5}\n'],
    decl: {},
    code: 'AX5004',
    message: /line 1: label field 'label' must be an integer, got 0.5/,
  },
  {
    name: 'declared label field missing',
    file: ['nolabel.jsonl', '{"input_ids": [1], "label": 1}\n'],
    decl: { label: 'gold' },
    code: 'AX5003',
    message: /line 1: missing label field 'gold'/,
  },
  {
    name: 'field that is not a model input lists the inputs',
    file: ['field.jsonl', '{"input_ids": [1, 2], "attention_masks": [1, 1]}\n'],
    decl: {},
    modelInputs: INPUTS,
    code: 'AX5005',
    message:
      /line 1: field 'attention_masks' does not match any input of the model \(inputs: input_ids, attention_mask, token_type_ids\)/,
  },
  {
    name: 'token id not an integer',
    file: ['ids.jsonl', '{"input_ids": [101, "x", 102]}\n'],
    decl: {},
    code: 'AX5006',
    message: /line 1: field 'input_ids' entry 1 is "x"/,
  },
  {
    name: 'mask length differs',
    file: ['len.jsonl', '{"input_ids": [101, 102], "attention_mask": [1]}\n'],
    decl: {},
    code: 'AX5012',
    message: /line 1: field 'attention_mask' has 1 entries but 'input_ids' has 2/,
  },
  {
    name: 'empty after split',
    file: ['one.jsonl', '{"idx": 0, "input_ids": [1]}\n'],
    decl: { split: 'odd' },
    code: 'AX5010',
    message: /has no rows after split/,
  },
  {
    name: 'tsv without tokenizer',
    file: ['a.tsv', 'sentence\tlabel\nfine\t1\n'],
    decl: { format: 'tsv' },
    code: 'AX5008',
    message: /needs a tokenizer/,
  },
  {
    name: 'tsv missing text column suggests one',
    file: ['b.tsv', 'sentense\tlabel\nfine\t1\n'],
    decl: { format: 'tsv', tokenizer: TOKENIZER },
    code: 'AX5003',
    message: /line 1: the header has no column 'sentence' \(columns: sentense, label\)/,
  },
  {
    name: 'tsv row with too many cells',
    file: ['c.tsv', 'sentence\tlabel\nfine\t1\nbad\t0\textra\n'],
    decl: { format: 'tsv', tokenizer: TOKENIZER },
    code: 'AX5007',
    message: /line 3: 3 columns, but the header has 2/,
  },
  {
    name: 'tsv label not an integer',
    file: ['d.tsv', 'sentence\tlabel\nfine\tpositive\n'],
    decl: { format: 'tsv', tokenizer: TOKENIZER },
    code: 'AX5004',
    message: /line 2: label field 'label' must be an integer, got "positive"/,
  },
  {
    name: 'tokenizer not found',
    file: ['e.jsonl', '{"text": "fine"}\n'],
    decl: { format: 'text-jsonl', tokenizer: 'missing-tokenizer.json' },
    code: 'AX5008',
    message: /tokenizer file not found: .*missing-tokenizer\.json/,
  },
  {
    name: 'text field missing',
    file: ['f.jsonl', '{"sentence": "fine"}\n'],
    decl: { format: 'text-jsonl', tokenizer: TOKENIZER },
    code: 'AX5003',
    message: /line 1: missing text field 'text'/,
  },
  {
    name: 'onnx-testdata folder without sets',
    file: ['empty-dir/readme.txt', 'nothing here'],
    decl: { format: 'onnx-testdata', path: 'empty-dir' },
    code: 'AX5009',
    message: /holds no test_data_set_N folders/,
  },
];

describe('errors', () => {
  test.each(CASES)('$name → $code', async (c) => {
    if (c.file) {
      fs.mkdirSync(path.dirname(path.join(tmp, c.file[0])), { recursive: true });
      write(c.file[0], c.file[1]);
    }
    const decl: DataDecl = { name: 'd', format: 'jsonl', path: c.file?.[0] ?? 'x', ...c.decl };
    const e = await expectError(loadDataset(decl, { baseDir: tmp, modelInputs: c.modelInputs }));
    expect(e.diagnostics).toHaveLength(1);
    const d = e.diagnostics[0]!;
    expect(d.code).toBe(c.code);
    expect(d.severity).toBe('error');
    expect(d.message).toMatch(c.message);
    expect(d.location.kind === 'file' || d.location.kind === 'plan').toBe(true);
    if (d.location.kind === 'file') expect(path.isAbsolute(d.location.file)).toBe(true);
  });

  test('a missing file is located at the plan declaration when there is one', async () => {
    const span = { file: path.join(tmp, 'plan.ax'), line: 3, col: 1 };
    const e = await expectError(loadDataset({ name: 'dev', format: 'jsonl', path: 'gone.jsonl', span }));
    expect(e.diagnostics[0]!.location).toMatchObject({ kind: 'plan', line: 3, col: 1 });
    expect(e.diagnostics[0]!.message).toContain(path.join(tmp, 'gone.jsonl'));
  });

  test('batching for a model input the rows cannot supply', async () => {
    const d = await loadDataset({ name: 'dev', format: 'jsonl', path: DEV_JSONL, limit: 2 });
    expect(() => makeBatches(d, ['input_ids', 'pixel_values'])).toThrowError(/no value for model input 'pixel_values'/);
  });
});

describe('PlanDataProvider', () => {
  test('loads lazily, caches, and reports unknown names', async () => {
    const decls: DataDecl[] = [
      { name: 'dev', format: 'jsonl', path: DEV_JSONL, limit: 4 },
      { name: 'broken', format: 'jsonl', path: path.join(tmp, 'not-there.jsonl') },
    ];
    const p = new PlanDataProvider(decls);
    expect(p.names()).toEqual(['dev', 'broken']);
    const a = await p.get('dev');
    expect(a.rows.length).toBe(4);
    expect(await p.get('dev')).toBe(a);
    await expect(p.get('broken')).rejects.toThrow(/AX5001/);
    const e = await expectError(p.get('deV'));
    expect(e.code).toBe('AX5011');
    expect(e.diagnostics[0]!.notes).toEqual(["did you mean 'dev'?"]);
  });

  test('--data overrides replace the path', async () => {
    const f = write('override.jsonl', JSON.stringify({ input_ids: [101, 7, 102], label: 1 }));
    const p = new PlanDataProvider([{ name: 'dev', format: 'jsonl', path: DEV_JSONL }], { overrides: { dev: f } });
    expect((await p.get('dev')).rows.length).toBe(1);
    expect(() => new PlanDataProvider([], { overrides: { nope: f } })).toThrow(/AX5011/);
  });
});
