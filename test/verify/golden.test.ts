import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { DataType, Tensor, type Model } from '../../src/ir/index.js';
import { decodeTensorProto, encodeTensorProto, loadModel } from '../../src/onnx/index.js';
import { checkGolden, loadDataset, runDataset, verify, writeGolden, type Dataset } from '../../src/verify/index.js';
import { DEV_JSONL, DEV_TSV, TINY_MODEL, TOKENIZER } from '../support/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'axc-golden-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function perturbed(delta: number): Model {
  const m = loadModel(TINY_MODEL);
  const v = m.graph.initializers.find((x) => x.name === 'm.bert.encoder.layer.1.output.LayerNorm.weight')!;
  const vals = Float32Array.from(v.constValue!.toFloat32(), (x) => x * (1 + delta));
  v.constValue = Tensor.fromFloat32(v.name, v.constValue!.dims, vals);
  return m;
}

let data: Dataset;
const dir = path.join(tmp, 'golden');
beforeAll(async () => {
  data = await loadDataset({ name: 'dev', format: 'jsonl', path: DEV_JSONL, limit: 30, batch: 8 });
});

describe('TensorProto', () => {
  test('encode then decode keeps name, type, dims and bytes; re-encoding is byte-identical', () => {
    const t = Tensor.fromInt64('input_ids', [2, 3], [101, 7, 102, 101, 0, 0]);
    const b = encodeTensorProto(t);
    const d = decodeTensorProto(b);
    expect(d.name).toBe('input_ids');
    expect(d.dataType).toBe(DataType.INT64);
    expect(d.dims).toEqual([2, 3]);
    expect(Array.from(d.toBigInt64(), Number)).toEqual([101, 7, 102, 101, 0, 0]);
    expect(Buffer.compare(encodeTensorProto(d), b)).toBe(0);
  });
});

describe('golden test data sets', () => {
  test('write: one test_data_set per batch, named TensorProtos', async () => {
    const s = await writeGolden(TINY_MODEL, data, dir, { limit: 20 });
    expect(s).toMatchObject({
      sets: 3,
      rows: 20,
      inputs: ['input_ids', 'attention_mask', 'token_type_ids'],
      outputs: ['logits'],
    });
    expect(fs.readdirSync(dir).sort()).toEqual(['test_data_set_0', 'test_data_set_1', 'test_data_set_2']);
    expect(fs.readdirSync(path.join(dir, 'test_data_set_2')).sort()).toEqual([
      'input_0.pb',
      'input_1.pb',
      'input_2.pb',
      'output_0.pb',
    ]);
    const ids = decodeTensorProto(fs.readFileSync(path.join(dir, 'test_data_set_0/input_0.pb')));
    expect(ids.name).toBe('input_ids');
    expect(ids.dims[0]).toBe(8);
    expect(Array.from(ids.toBigInt64().slice(0, 12), Number)).toEqual([
      101, 2009, 1005, 1055, 1037, 11951, 1998, 2411, 12473, 4990, 1012, 102,
    ]);
    const mask = decodeTensorProto(fs.readFileSync(path.join(dir, 'test_data_set_0/input_1.pb')));
    expect(mask.name).toBe('attention_mask');
    const out = decodeTensorProto(fs.readFileSync(path.join(dir, 'test_data_set_2/output_0.pb')));
    expect(out.name).toBe('logits');
    expect(out.dims).toEqual([4, 2]);
    // the stored logits are the model's
    const r = await runDataset(TINY_MODEL, { ...data, rows: data.rows.slice(16, 20) });
    expect(Array.from(out.toFloat32())).toEqual(Array.from(Float32Array.from(r.outputs.get('logits')!.data)));
  });

  test('writing twice is refused unless asked', async () => {
    await expect(writeGolden(TINY_MODEL, data, dir, { limit: 4 })).rejects.toThrow(/AX5015.*refusing to overwrite/);
  });

  test('check: the same model passes exactly, without the original', async () => {
    const r = await checkGolden(loadModel(TINY_MODEL), dir, [{ output: '*', atol: 0, rtol: 0 }]);
    expect(r.failures).toEqual([]);
    expect(r.pass).toBe(true);
    expect(r.rows).toBe(3); // one row per stored set
    expect(r.outputs[0]).toMatchObject({ name: 'logits', maxAbsError: 0, argmaxRows: 20, argmaxAgreement: 1 });
  });

  test('check: a perturbed model fails with the figures and the tolerance that would pass', async () => {
    const r = await checkGolden(perturbed(0.2), dir, [{ output: 'logits', atol: 1e-4, rtol: 1e-3 }]);
    expect(r.pass).toBe(false);
    expect(r.failures.map((f) => f.code)).toEqual(['AX4001']);
    const f = r.failures[0]!;
    expect(f.message).toMatch(
      /^output 'logits': \d+ of 40 values differ by more than atol 1e-4 \+ rtol 0\.001 × \|golden\|/,
    );
    expect(f.message).toMatch(/test_data_set_\d/);
    const need = r.outputs[0]!.tolerance!.passingAtol;
    expect(need).toBeGreaterThan(1e-3);
    const again = await checkGolden(perturbed(0.2), dir, [{ output: 'logits', atol: need, rtol: 1e-3 }]);
    expect(again.pass).toBe(true);
  });

  test('a single test_data_set folder is a data source, and so is the model-zoo folder', async () => {
    const one = await loadDataset({ name: 'g', format: 'onnx-testdata', path: path.join(dir, 'test_data_set_1') });
    expect(one.rows).toHaveLength(1);
    expect(Object.keys(one.rows[0]!.inputs)).toEqual(['input_ids', 'attention_mask', 'token_type_ids']);
    expect(Object.keys(one.rows[0]!.expected!)).toEqual(['logits']);
    const all = await loadDataset({ name: 'g', format: 'onnx-testdata', path: dir, limit: 2 });
    expect(all.rows.map((r) => path.basename(r.where))).toEqual(['test_data_set_0', 'test_data_set_1']);
    const r = await verify(
      TINY_MODEL,
      perturbed(0.2),
      { data: 'g', outputs: [{ output: 'logits', cosine: 0.5 }] },
      all,
    );
    expect(r.pass).toBe(true);
    expect(r.outputs[0]!.elements).toBe(32);
    expect(r.outputs[0]!.maxAbsError).toBeGreaterThan(0);
  });

  test('tensors match model inputs by name, else by position; a stray name among matching ones is reported', async () => {
    const set = path.join(tmp, 'unnamed/test_data_set_0');
    fs.mkdirSync(set, { recursive: true });
    const src = path.join(dir, 'test_data_set_0');
    for (const f of fs.readdirSync(src)) {
      const t = decodeTensorProto(fs.readFileSync(path.join(src, f)));
      t.name = f === 'input_2.pb' ? 'segment_ids' : f === 'input_0.pb' ? 'input_ids' : '';
      fs.writeFileSync(path.join(set, f), encodeTensorProto(t));
    }
    const opts = { modelInputs: ['input_ids', 'attention_mask', 'token_type_ids'], modelOutputs: ['logits'] };
    await expect(loadDataset({ name: 'u', format: 'onnx-testdata', path: set }, opts)).rejects.toThrow(
      /AX5005: .*input_2\.pb is named 'segment_ids', which matches no input of the model \(inputs: input_ids, attention_mask, token_type_ids\)/,
    );
    const t2 = decodeTensorProto(fs.readFileSync(path.join(src, 'input_2.pb')));
    t2.name = '';
    fs.writeFileSync(path.join(set, 'input_2.pb'), encodeTensorProto(t2));
    const d = await loadDataset({ name: 'u', format: 'onnx-testdata', path: set }, opts);
    expect(Object.keys(d.rows[0]!.inputs)).toEqual(['input_ids', 'attention_mask', 'token_type_ids']);
    expect(Object.keys(d.rows[0]!.expected!)).toEqual(['logits']);
    // model-zoo sets whose names all differ from the model's (older exports) are matched by position
    const t0 = decodeTensorProto(fs.readFileSync(path.join(src, 'input_0.pb')));
    t0.name = 'data_0';
    fs.writeFileSync(path.join(set, 'input_0.pb'), encodeTensorProto(t0));
    const z = await loadDataset({ name: 'u', format: 'onnx-testdata', path: set }, opts);
    expect(Object.keys(z.rows[0]!.inputs)).toEqual(['input_ids', 'attention_mask', 'token_type_ids']);
    await expect(loadDataset({ name: 'u', format: 'onnx-testdata', path: set })).rejects.toThrow(
      /AX5009: .*input_1\.pb has no tensor name and the model's inputs are not known/,
    );
    fs.writeFileSync(path.join(set, 'output_0.pb'), Buffer.from([0xff, 0xff, 0xff]));
    await expect(loadDataset({ name: 'u', format: 'onnx-testdata', path: set }, opts)).rejects.toThrow(
      /AX5009: .*output_0\.pb: not a valid TensorProto/,
    );
  });
});

describe('axc golden', () => {
  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const { Command } = await import('commander');
    const { register } = await import('../../src/cli/commands/golden.js');
    const program = new Command().exitOverride();
    register(program);
    let out = '';
    let err = '';
    const spyOut = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
    const spyErr = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
    const before = process.exitCode;
    try {
      await program.parseAsync(['node', 'axc', 'golden', ...args]);
      return { code: Number(process.exitCode ?? 0), out, err };
    } finally {
      spyOut.mockRestore();
      spyErr.mockRestore();
      process.exitCode = before;
    }
  }

  test('writes sets from text data, checks them, and reports user errors with codes', async () => {
    const g = path.join(tmp, 'cli');
    const w = await cli(
      TINY_MODEL,
      '--data',
      DEV_TSV,
      '--tokenizer',
      TOKENIZER,
      '--limit',
      '10',
      '--batch',
      '4',
      '-o',
      g,
    );
    expect(w.err).toBe('');
    expect(w.code).toBe(0);
    expect(w.out).toMatch(
      /^wrote 3 test data set\(s\) of 10 rows to .*cli \(.*; inputs input_ids, attention_mask, token_type_ids; outputs logits\)\n$/,
    );
    const c = await cli(TINY_MODEL, '--check', g, '--atol', '0', '--rtol', '0', '--argmax', '1');
    expect(c.code).toBe(0);
    expect(c.out.split('\n')[0]).toBe("verify on 'cli' (3 test data sets): PASS");
    const again = await cli(TINY_MODEL, '--data', DEV_TSV, '--tokenizer', TOKENIZER, '-o', g);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/error AX5015: .*refusing to overwrite\n {2}= pass --force to replace them/);
    const bad = await cli(TINY_MODEL, '--data', path.join(tmp, 'missing.jsonl'), '-o', path.join(tmp, 'cli2'));
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/error AX5001: data source 'missing\.jsonl': file not found/);
    expect(bad.err).not.toMatch(/\bat .*\.ts:\d+/); // no stack trace
  });
});
