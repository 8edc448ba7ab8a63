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
    `data dev = jsonl ${JSON.stringify(DEV_JSONL)} label "label" split odd limit 32
cleanup
topk-attention layers 1 k 16
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
  expect(changes.layers.map((l) => l.after?.attention)).toEqual(['softmax', 'top-k k=16']);
  expect(printed[1]).toBe('layer 1: softmax → top-k k=16, heads 2 → 2 (removed: none)');
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
