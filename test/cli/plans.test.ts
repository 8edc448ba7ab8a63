import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkPlan } from '../../dsl/index.js';
import '../../passes/index.js';
import { loadModel } from '../../src/onnx/index.js';
import { GOLDEN, TINY_MODEL } from '../support/paths.js';

const PLANS = path.join(GOLDEN, 'plans');
const plans = fs
  .readdirSync(PLANS)
  .filter((f) => f.endsWith('.ax'))
  .sort();

describe('every example plan in golden/plans checks clean against the bundled model and the real passes', () => {
  const model = loadModel(TINY_MODEL);
  it('there are example plans for each kind of pipeline', () => {
    expect(plans).toEqual(
      expect.arrayContaining(['cleanup.ax', 'full.ax', 'int8.ax', 'int4.ax', 'mixed.ax', 'topk.ax']),
    );
    expect(plans.some((p) => p.startsWith('prune-'))).toBe(true);
  });
  it.each(plans)('%s', (name) => {
    const file = path.join(PLANS, name);
    const r = checkPlan(fs.readFileSync(file, 'utf8'), file, { model, checkFiles: true });
    expect(r.diagnostics.filter((d) => d.severity !== 'note')).toEqual([]);
    expect(r.plan!.steps.length).toBeGreaterThan(0);
    expect(r.plan!.verify.length).toBeGreaterThan(0);
  });
});
