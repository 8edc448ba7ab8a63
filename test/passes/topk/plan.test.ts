import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../../../src/compile.js';
import { GOLDEN, TINY_MODEL } from '../../support/paths.js';

describe('golden/plans/topk.ax end to end', () => {
  it('searches layers on the even dev sentences and verifies on the odd ones', async () => {
    const r = await compile({ model: TINY_MODEL, plan: path.join(GOLDEN, 'plans/topk.ax'), threads: 1 });
    const step = r.steps.find((s) => s.pass === 'topk-attention')!;
    const search = step.details.search as { layer: number; loss: number; before: number; accepted: boolean }[];
    expect(search.map((s) => s.layer)).toEqual([0, 1]);
    for (const s of search) expect(s.accepted).toBe(s.loss < s.before + 0.002);
    expect(step.details.layers).toEqual(search.filter((s) => s.accepted).map((s) => s.layer));
    expect(step.diagnostics.filter((d) => d.code === 'AX3706')).toHaveLength(2);
    const v = r.verification[0]!;
    expect(v.rows).toBe(436);
    // the gate decides: ok exactly when the held-out drop is within the plan's 1 point
    expect(r.ok).toBe((v.metrics.accuracyDrop ?? 0) <= 1);
  });
});
