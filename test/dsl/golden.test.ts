/**
 * Text baselines: every golden/plans/bad/NAME.ax is checked against the real tiny model's inputs/outputs and layer
 * count, with the fake passes; the rendered diagnostics must equal NAME.expected.txt. Regenerate the baselines with
 * `UPDATE_GOLDEN=1 npx vitest run test/dsl` and review the diff.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { checkPlan, PLAN_CODES, type ModelInfo } from '../../dsl/index.js';
import { renderDiagnostics } from '../../src/diagnostics/index.js';
import { loadModel } from '../../src/onnx/index.js';
import { GOLDEN, ROOT, TINY_MODEL } from '../support/paths.js';
import { fakeRegistry } from './fake-passes.js';

const BAD = path.join(GOLDEN, 'plans/bad');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

/** What `axc check --model` knows about the golden tiny model: inputs and outputs from the file, layers from its config. */
export function tinyModelInfo(): ModelInfo {
  const model = loadModel(TINY_MODEL);
  const config = JSON.parse(fs.readFileSync(path.join(path.dirname(TINY_MODEL), 'config.json'), 'utf8')) as {
    num_hidden_layers: number;
  };
  return {
    layers: config.num_hidden_layers,
    inputs: model.graph.inputs.filter((v) => !v.constValue).map((v) => v.name),
    outputs: model.graph.outputs.map((v) => v.name),
  };
}

/** Check a golden plan and render its diagnostics (file names relative to the repo, so baselines are portable). */
export function renderGoldenPlan(file: string, info: ModelInfo): { text: string; codes: string[] } {
  const rel = path.relative(ROOT, file).split(path.sep).join('/');
  const source = fs.readFileSync(file, 'utf8');
  const r = checkPlan(source, rel, {
    registry: fakeRegistry,
    modelInfo: info,
    baseDir: path.dirname(file),
    checkFiles: true,
  });
  return {
    text: renderDiagnostics(r.diagnostics, { sources: { [rel]: source } }) + '\n',
    codes: r.diagnostics.map((d) => d.code),
  };
}

describe('golden bad plans', () => {
  const info = tinyModelInfo();
  const plans = fs
    .readdirSync(BAD)
    .filter((f) => f.endsWith('.ax'))
    .sort();

  test('one bad plan per diagnostic code', () => {
    const codes = plans.map((f) => f.slice(0, 6));
    expect(codes).toEqual(Object.keys(PLAN_CODES).sort());
  });

  for (const f of plans) {
    test(f, () => {
      const { text, codes } = renderGoldenPlan(path.join(BAD, f), info);
      expect(codes).toContain(f.slice(0, 6));
      const expectedFile = path.join(BAD, f.replace(/\.ax$/, '.expected.txt'));
      if (UPDATE || !fs.existsSync(expectedFile)) {
        if (!UPDATE) throw new Error(`${expectedFile} is missing: run with UPDATE_GOLDEN=1 and review it`);
        fs.writeFileSync(expectedFile, text);
      }
      expect(text).toBe(fs.readFileSync(expectedFile, 'utf8'));
    });
  }
});
