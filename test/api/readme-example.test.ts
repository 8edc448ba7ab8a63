import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, test, vi } from 'vitest';
import * as axc from '../../src/index.js';
import { DEV_JSONL, TINY_MODEL } from '../support/paths.js';
import { readmeExample } from './readme-example.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'axc-api-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('the README example runs: compile, diff, verify through the library entry point', async () => {
  const plan = path.join(tmp, 'plan.ax');
  fs.writeFileSync(
    plan,
    `data cal = jsonl ${JSON.stringify(DEV_JSONL)} label "label" split odd limit 48
data dev = jsonl ${JSON.stringify(DEV_JSONL)} label "label" split odd offset 48 limit 48
significance heads on cal by loss
prune heads where significance < 0.01 keep >= 50%
quantize matmul
verify on dev: accuracy drop <= 10 points; logits argmax >= 80%
`,
  );
  const output = path.join(tmp, 'out.onnx');
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const { result, changes, check } = await readmeExample({ model: TINY_MODEL, plan, output, data: DEV_JSONL });
  const printed = log.mock.calls.map((c) => String(c[0]));
  log.mockRestore();
  expect(result.ok).toBe(true);
  expect(fs.existsSync(output)).toBe(true);
  // the heads the diff finds missing (by comparing weights) are the ones the prune step says it removed
  const prune = result.steps.find((st) => st.pass === 'prune')!;
  const pruneSet = prune.details.pruneSet as { layers: { layer: number; heads: number[] }[] };
  expect(changes.layers.map((l) => l.removedHeads)).toEqual(
    changes.layers.map((l) => pruneSet.layers.find((p) => p.layer === l.index)?.heads ?? []),
  );
  expect(changes.layers.some((l) => l.removedHeads.length > 0)).toBe(true);
  expect(changes.layers.every((l) => l.after?.precision === 'int8 per-channel')).toBe(true);
  expect(printed[0]).toMatch(/^layer 0: softmax → softmax, heads 2 → \d \(removed: (?:[\d, ]+|none)\)$/);
  expect(check.rows).toBe(64);
  expect(check.metrics.compiled?.accuracy).toBeGreaterThan(0.5);
  expect(printed.at(-1)).toMatch(/^accuracy 0\.\d+ → 0\.\d+, pass: (true|false)$/);
});

test('the entry point exports what the README names', () => {
  for (const name of [
    'compile',
    'loadModel',
    'diff',
    'verify',
    'diffText',
    'diffHtml',
    'writeCompileReport',
    'renderCompileHtml',
  ])
    expect(typeof (axc as Record<string, unknown>)[name], name).toBe('function');
  expect(axc.REPORT_SCHEMA).toBe('axc.report/1');
});
