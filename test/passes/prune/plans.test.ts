import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkPlan } from '../../../dsl/index.js';
import '../../../passes/prune.js';
import '../../../passes/significance.js';
import { GOLDEN } from '../../support/paths.js';

const plan = (name: string) => {
  const file = path.join(GOLDEN, 'plans', name);
  const r = checkPlan(fs.readFileSync(file, 'utf8'), file);
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return r.plan!.steps.map((s) => ({ pass: s.pass, options: s.options }));
};

describe('golden pruning plans lower to the pass options', () => {
  it('prune-greedy.ax', () => {
    const steps = plan('prune-greedy.ax');
    expect(steps[0]).toMatchObject({
      pass: 'significance',
      options: {
        on: 'sig',
        by: 'loss',
        elements: [{ name: 'heads' }, { name: 'ffn-groups', arg: 128 }, { name: 'blocks' }],
      },
    });
    expect(steps[1]).toMatchObject({ pass: 'prune', options: { greedy: true, tolerance: 1.1 } });
  });
  it('prune-budget.ax', () => {
    expect(plan('prune-budget.ax')[1]).toMatchObject({
      pass: 'prune',
      options: { budget: 0.4, target: 'params', 'max-drop': 0.5 },
    });
  });
  it('prune-threshold.ax', () => {
    const steps = plan('prune-threshold.ax');
    expect(steps[1]).toMatchObject({
      pass: 'prune',
      options: {
        elements: [{ name: 'heads' }],
        where: { metric: 'significance', op: '<', value: 0 },
        keep: { op: '>=', value: 0.5 },
      },
    });
    expect(steps[2]).toMatchObject({
      pass: 'prune',
      options: { where: { metric: 'significance', op: '<', value: 0.001 }, keep: { op: '>=', value: 0.5 } },
    });
  });
  it('significance.ax: scores only (into the metadata), no prune step', () => {
    const steps = plan('significance.ax');
    expect(steps.map((s) => s.pass)).toEqual(['significance']);
    expect(steps[0]).toMatchObject({ options: { by: 'loss', on: 'sig', metadata: true } });
  });
  it('prune-kl.ax: significance by kl on a data source without labels', () => {
    const steps = plan('prune-kl.ax');
    expect(steps[0]).toMatchObject({ pass: 'significance', options: { by: 'kl', on: 'text' } });
    expect(steps[1]).toMatchObject({ pass: 'prune', options: { budget: 0.4, 'max-drop': 1, compensate: true } });
  });
  it('significance-weight-norm.ax', () => {
    const steps = plan('significance-weight-norm.ax');
    expect(steps[0]).toMatchObject({ pass: 'significance', options: { by: 'weight-norm', metadata: true } });
    expect(steps[1]).toMatchObject({ pass: 'prune', options: { budget: 0.4 } });
  });
});
