import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { GOLDEN, ROOT, TINY_MODEL } from '../support/paths.js';

const CLI = path.join(ROOT, 'dist/src/cli/main.js');
const CLEANUP_PLAN = path.join(GOLDEN, 'plans/cleanup.ax');

function axc(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'axc-cli-'));

describe('axc compile', () => {
  it('compiles the bundled model with the cleanup plan, verifies it, and is deterministic', () => {
    const dir = tmp();
    const a = path.join(dir, 'a.onnx');
    const b = path.join(dir, 'b.onnx');
    const r1 = axc('compile', TINY_MODEL, '-p', CLEANUP_PLAN, '-o', a);
    expect(r1.stderr).toBe('');
    expect(r1.code).toBe(0);
    expect(r1.stdout).toMatch(/cleanup\s+\S+cleanup\.ax:\d+\s+yes/);
    expect(r1.stdout).toMatch(/verify on 'dev' \(436 rows\): PASS/);
    expect(r1.stdout).toMatch(/nodes 237 -> 1\d\d/);
    const r2 = axc('compile', TINY_MODEL, '-p', CLEANUP_PLAN, '-o', b, '--quiet');
    expect(r2.code).toBe(0);
    expect(r2.stdout).toBe('');
    expect(Buffer.compare(fs.readFileSync(a), fs.readFileSync(b))).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual(['a.onnx', 'b.onnx']);
  });

  it('refuses to write over its input, leaving it untouched', () => {
    const dir = tmp();
    const copy = path.join(dir, 'model.onnx');
    fs.copyFileSync(TINY_MODEL, copy);
    const r = axc('compile', copy, '-p', CLEANUP_PLAN, '-o', copy);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refusing to write over the input/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(Buffer.compare(fs.readFileSync(copy), fs.readFileSync(TINY_MODEL))).toBe(0);
  });

  it('a plan with errors exits 1 with located diagnostics and writes nothing', () => {
    const dir = tmp();
    const plan = path.join(dir, 'bad.ax');
    fs.writeFileSync(
      plan,
      `data dev = jsonl "${path.join(GOLDEN, 'sst2/dev.jsonl')}" label "label"\ncleanpu\nverify on dev: logits atol 1e-5\n`,
    );
    const out = path.join(dir, 'out.onnx');
    const r = axc('compile', TINY_MODEL, '-p', plan, '-o', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad\.ax:2:1: error AX2101: .*cleanpu/);
    expect(r.stderr).toMatch(/did you mean 'cleanup'/);
    expect(r.stderr).toMatch(/\^/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('a failed verification exits 1, prints the figures, and writes nothing', () => {
    const dir = tmp();
    const plan = path.join(dir, 'strict.ax');
    // int8 quantization moves the logits by far more than 1e-9
    fs.writeFileSync(
      plan,
      `data dev = jsonl "${path.join(GOLDEN, 'sst2/dev.jsonl')}" label "label" limit 32\nquantize matmul int8\nverify on dev: logits atol 1e-9 rtol 0\n`,
    );
    const out = path.join(dir, 'out.onnx');
    const r = axc('compile', TINY_MODEL, '-p', plan, '-o', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/AX40\d\d/);
    expect(r.stderr).toMatch(/would pass with atol/);
    expect(r.stderr).toMatch(/nothing was written/);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(dir)).toEqual(['strict.ax']);
  });

  it('--data overrides a data source; an unknown name is a clear error', () => {
    const dir = tmp();
    const small = path.join(dir, 'small.jsonl');
    fs.writeFileSync(
      small,
      fs.readFileSync(path.join(GOLDEN, 'sst2/dev.jsonl'), 'utf8').split('\n').slice(0, 20).join('\n') + '\n',
    );
    const r = axc('compile', TINY_MODEL, '-p', CLEANUP_PLAN, '--data', `dev=${small}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/verify on 'dev' \(10 rows\): PASS/);
    const bad = axc('compile', TINY_MODEL, '-p', CLEANUP_PLAN, '--data', `deev=${small}`);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/deev/);
  });

  it('a data file that does not match the model inputs names the file and line', () => {
    const dir = tmp();
    const wrong = path.join(dir, 'wrong.jsonl');
    fs.writeFileSync(wrong, '{"input_ids": [101, 102], "label": 1}\n{"tokens": [101, 2000, 102], "label": 0}\n');
    const r = axc('compile', TINY_MODEL, '-p', CLEANUP_PLAN, '--data', `dev=${wrong}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/wrong\.jsonl: error AX5\d+: line 2: .*tokens/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('axc inspect and convert', () => {
  it('inspect prints inputs, op histogram and parameters; --json is machine readable', () => {
    const r = axc('inspect', TINY_MODEL);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/input_ids: int64\[batch_size,sequence_length\]/);
    expect(r.stdout).toMatch(/MatMul\s+16/);
    const j = JSON.parse(axc('inspect', TINY_MODEL, '--json').stdout) as {
      parameters: number;
      nodes: number;
      opsets: Record<string, number>;
    };
    expect(j.nodes).toBe(237);
    expect(j.opsets['ai.onnx']).toBe(17);
    expect(j.parameters).toBeGreaterThan(4_000_000);
  });

  it('inspect --graph is deterministic text with large tensors by hash', () => {
    const a = axc('inspect', TINY_MODEL, '--graph').stdout;
    expect(a).toBe(axc('inspect', TINY_MODEL, '--graph').stdout);
    expect(a).toMatch(/float32\[30522,128\] #[0-9a-f]{16}/);
    expect(a).toMatch(/= Softmax<axis=-1>/);
  });

  it('convert round-trips byte for byte and moves weights to external data and back', () => {
    const dir = tmp();
    const same = path.join(dir, 'same.onnx');
    expect(axc('convert', TINY_MODEL, same).code).toBe(0);
    expect(Buffer.compare(fs.readFileSync(same), fs.readFileSync(TINY_MODEL))).toBe(0);
    const ext = path.join(dir, 'ext.onnx');
    const r = axc('convert', TINY_MODEL, ext, '--external-data', '--threshold', '4096');
    expect(r.code).toBe(0);
    expect(fs.existsSync(`${ext}.data`)).toBe(true);
    const back = path.join(dir, 'back.onnx');
    expect(axc('convert', ext, back).code).toBe(0);
    expect(Buffer.compare(fs.readFileSync(back), fs.readFileSync(TINY_MODEL))).toBe(0);
  });

  it.each([
    [
      'a truncated model',
      (p: string) => fs.writeFileSync(p, fs.readFileSync(TINY_MODEL).subarray(0, 1_000_000)),
      /not a valid ONNX model/,
    ],
    ['a text file', (p: string) => fs.writeFileSync(p, 'not a model\n'.repeat(50)), /looks like text/],
    ['a missing file', () => {}, /cannot read: ENOENT/],
  ])('%s: exit 1 with a message naming the file, no stack trace', (_, make, re) => {
    const dir = tmp();
    const p = path.join(dir, 'm.onnx');
    make(p);
    for (const cmd of [
      ['inspect', p],
      ['convert', p, path.join(dir, 'o.onnx')],
    ]) {
      const r = axc(...cmd);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(re);
      expect(r.stderr).toContain('m.onnx');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(fs.existsSync(path.join(dir, 'o.onnx'))).toBe(false);
  });

  it('usage errors exit 1; --help exits 0 on every command', () => {
    expect(axc('compile', TINY_MODEL).code).toBe(1);
    for (const c of ['compile', 'inspect', 'convert', 'check', 'passes', 'diff', 'bench', 'golden']) {
      const r = axc(c, '--help');
      expect(r.code, c).toBe(0);
      expect(r.stdout, c).toMatch(/Usage: axc/);
    }
  });
});

describe("the README's quick start", () => {
  it('compiles the bundled model with golden/plans/full.ax: smaller, verified on held-out rows, reproducible', () => {
    const dir = tmp();
    const out = path.join(dir, 'out', 'sst2-tiny.onnx');
    const r = axc(
      'compile',
      TINY_MODEL,
      '-p',
      path.join(GOLDEN, 'plans/full.ax'),
      '-o',
      out,
      '--report',
      path.join(dir, 'r.json'),
    );
    expect(r.code).toBe(0);
    for (const step of ['cleanup', 'significance', 'prune', 'fuse', 'quantize'])
      expect(r.stdout).toMatch(new RegExp(`\\n  ${step}\\s`));
    expect(r.stdout).toMatch(/verify on 'dev' \(436 rows\): PASS/);
    expect(fs.statSync(out).size).toBeLessThan(fs.statSync(TINY_MODEL).size / 4);
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')) as { schema: string; ok: boolean };
    expect(report.schema).toBe('axc.report/1');
    expect(report.ok).toBe(true);
    const again = path.join(dir, 'again.onnx');
    expect(axc('compile', TINY_MODEL, '-p', path.join(GOLDEN, 'plans/full.ax'), '-o', again, '-q').code).toBe(0);
    expect(Buffer.compare(fs.readFileSync(out), fs.readFileSync(again))).toBe(0);
  });
});

describe('a model with an op onnxruntime does not know', () => {
  it('compile exits 1 naming the node and the op, without a stack trace', async () => {
    const { loadModel, saveModel } = await import('../../src/onnx/index.js');
    const dir = tmp();
    const m = loadModel(TINY_MODEL);
    const tanh = [...m.graph].find((n) => n.opType === 'Tanh')!;
    tanh.opType = 'FooBar';
    tanh.domain = 'com.example';
    m.opsetImports.set('com.example', 1);
    const p = path.join(dir, 'custom.onnx');
    saveModel(m, p);
    const r = axc('compile', p, '-p', CLEANUP_PLAN, '-o', path.join(dir, 'out.onnx'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/AX4010: original model: .*FooBar/);
    expect(r.stderr).toMatch(/at node '\/m\/bert\/pooler\/activation\/Tanh' \(com\.example\.FooBar\)/);
    expect(r.stderr).not.toMatch(/\n\s+at .*:\d+:\d+\)?\n/); // no stack frames
    expect(fs.existsSync(path.join(dir, 'out.onnx'))).toBe(false);
  });
});
