import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { describe, expect, it, vi } from 'vitest';
import { benchModels, quantile, syntheticFeeds } from '../../src/bench/index.js';
import { register } from '../../src/cli/commands/bench.js';
import { DataType } from '../../src/ir/index.js';
import { DEV_JSONL, TINY_MODEL } from '../support/paths.js';

async function cli(args: string[]): Promise<{ out: string; err: string; code: number }> {
  const program = new Command().exitOverride();
  register(program);
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  const before = process.exitCode;
  process.exitCode = 0;
  try {
    await program.parseAsync(['node', 'axc', 'bench', ...args]);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = before;
  return { out, err, code };
}

describe('axc bench', () => {
  it('--json has one entry per model and shape, with the documented fields', async () => {
    // a second model: the same file under another name (speedup should be near 1, and the ratio is to the first)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'axc-bench-'));
    const copy = path.join(dir, 'copy.onnx');
    fs.copyFileSync(TINY_MODEL, copy);
    const dev = path.join(dir, 'dev.jsonl');
    fs.writeFileSync(dev, fs.readFileSync(DEV_JSONL, 'utf8').split('\n').slice(0, 40).join('\n') + '\n');
    const r = await cli([
      TINY_MODEL,
      copy,
      '--batch',
      '1,2',
      '--seq',
      '16',
      '--runs',
      '5',
      '--data',
      `dev=${dev}`,
      '--json',
    ]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { models: Record<string, unknown>[] };
    expect(j.models).toHaveLength(4);
    expect(j.models.map((m) => [m.path, m.batch, m.seq])).toEqual([
      [TINY_MODEL, 1, 16],
      [copy, 1, 16],
      [TINY_MODEL, 2, 16],
      [copy, 2, 16],
    ]);
    for (const m of j.models) {
      for (const k of [
        'path',
        'bytes',
        'parameters',
        'batch',
        'seq',
        'medianMs',
        'p10Ms',
        'p90Ms',
        'speedup',
        'accuracy',
      ])
        expect(m).toHaveProperty(k);
      expect(m.bytes).toBe(fs.statSync(TINY_MODEL).size);
      expect(m.parameters).toBeGreaterThan(4.3e6);
      expect(m.parameters).toBeLessThan(4.5e6);
      const p10 = m.p10Ms as number;
      expect(p10).toBeGreaterThan(0);
      expect(p10).toBeLessThanOrEqual(m.medianMs as number);
      expect(m.medianMs as number).toBeLessThanOrEqual(m.p90Ms as number);
      // same model, same data: same accuracy, a plausible SST-2 figure
      expect(m.accuracy).toBe(j.models[0]!.accuracy);
      expect(m.accuracy as number).toBeGreaterThan(0.5);
    }
    expect(j.models[0]!.speedup).toBe(1);
    expect(j.models[2]!.speedup).toBe(1);
    expect(j.models[1]!.speedup as number).toBeGreaterThan(0.3);
  });

  it('text output is a table; bad flags are user errors with a code', async () => {
    const t = await cli([TINY_MODEL, '--seq', '8', '--runs', '2']);
    expect(t.code).toBe(0);
    expect(t.out).toMatch(/median ms/);
    const bad = await cli([TINY_MODEL, '--batch', '0,x']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/AX4103/);
    const missing = await cli(['/nonexistent/model.onnx']);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/AX1001/);
  });

  it('accuracy matches a direct count on the data', async () => {
    const r = await benchModels([TINY_MODEL], { seq: [8], runs: 1, data: [{ name: 'dev', path: DEV_JSONL }] });
    // the model card: 78.8% on the 872 dev sentences (onnxruntime, padded batches)
    expect(r.models[0]!.accuracy).toBeCloseTo(0.788, 2);
  });

  it('helpers: quantiles and synthetic feeds', () => {
    expect(quantile([1, 2, 3, 4, 5], 0.5)).toBe(3);
    expect(quantile([1, 2, 3, 4, 5], 0.1)).toBeCloseTo(1.4);
    const f = syntheticFeeds(
      [
        { name: 'input_ids', elemType: DataType.INT64, shape: ['batch', 'seq'] },
        { name: 'attention_mask', elemType: DataType.INT64, shape: ['batch', 'seq'] },
        { name: 'x', elemType: DataType.FLOAT, shape: [null, null, 4] },
      ],
      3,
      5,
    );
    expect(f.input_ids!.dims).toEqual([3, 5]);
    expect([...(f.attention_mask!.data as BigInt64Array)].every((v) => v === 1n)).toBe(true);
    expect(f.x!.dims).toEqual([3, 5, 4]);
  });
});
