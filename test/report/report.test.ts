import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  compileReportJson,
  errorHistogram,
  type CompileReportInput,
  jsonSafe,
  renderCompileHtml,
  writeCompileReports,
} from '../../src/report/compile-report.js';
import { renderDiffHtml } from '../../src/report/html.js';
import { compileTiny, diffTiny, significanceDetail } from './fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'axc-report-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('compile report', () => {
  let r: CompileReportInput;
  beforeAll(async () => {
    r = await compileTiny(tmp);
  });

  test('JSON: schema axc.report/1 with steps, verification with an error histogram, and the diff summary', async () => {
    const json = path.join(tmp, 'report.json');
    const html = path.join(tmp, 'report.html');
    await writeCompileReports(r, { json, html });
    const j = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(j.schema).toBe('axc.report/1');
    expect(j.ok).toBe(true);
    expect(j.steps.map((s: { pass: string }) => s.pass)).toEqual(['cleanup', 'topk-attention']);
    expect(j.steps[1]).toMatchObject({ index: 2, changed: true, details: { k: 8 } });
    expect(j.models.before.bytes).toBe(r.before.bytes);
    const v = j.verification[0];
    expect(v).toMatchObject({ data: 'dev', pass: true, rows: 48 });
    expect(v.accuracy.original).toBeGreaterThan(0.5);
    const h = v.outputs[0].histogram;
    // every logit of the 48 rows is counted once
    expect(h.counts.reduce((a: number, b: number) => a + b, 0)).toBe(48 * 2);
    expect(h.elements).toBe(96);
    // the diff summary knows what top-k did to layer 1 and that topk-attention made the new nodes
    expect(j.diff.layers.map((l: { after: { attention: string } }) => l.after.attention)).toEqual([
      'softmax',
      'top-k k=8',
    ]);
    expect(Object.keys(j.diff.passes)).toEqual(['topk-attention']);
    // HTML written too
    expect(fs.readFileSync(html, 'utf8')).toContain('<table id="steps">');
  });

  test('JSON is stable: the same result gives the same document (apart from timings)', () => {
    const strip = (x: Record<string, unknown>) => JSON.stringify(x, (k, v) => (k === 'ms' || k === 'totalMs' ? 0 : v));
    expect(strip(compileReportJson(r))).toBe(strip(compileReportJson(r)));
  });

  test('HTML: steps, significance heat map with removed heads crossed out, decisions, histogram, diff', () => {
    const withSig = {
      ...r,
      steps: [
        ...r.steps,
        {
          pass: 'significance',
          changed: false,
          ms: 12,
          stats: {},
          details: {
            significance: significanceDetail(),
            pruneSet: {
              groupSize: 128,
              layers: [{ layer: 1, attention: false, ffn: false, heads: [0], groups: [2] }],
            },
            decisions: [
              { element: 'L1.head0', lossBefore: 0.41, lossAfter: 0.4, noWorse: 0.6, accepted: true },
              { element: 'L1.ffn', lossBefore: 0.4, lossAfter: 0.7, noWorse: 0.2, accepted: false },
            ],
          },
          diagnostics: [],
        },
      ],
      diff: diffTiny().diff,
    };
    const html = renderCompileHtml(withSig);
    expect(html).toContain('<svg id="significance"');
    // layer 1 head 0 was removed in the diff: its cell is crossed out; layer 0's heads are not
    expect(html).toMatch(/<g class="cell removed"><title>layer 1 head 0: score -0\.01/);
    expect(html).not.toMatch(/<g class="cell removed"><title>layer 0 head/);
    expect(html).toContain('<table class="decisions">');
    // FFN groups: the heat map crosses out the group the prune step removed
    expect(html).toContain('<svg id="ffn-groups"');
    expect(html.match(/<g class="group removed">/g)?.length).toBe(1);
    expect(html).toMatch(/<g class="group removed"><title>layer 1 FFN group 2: score 0\.01 \(removed\)/);
    expect(html).toContain('class="histogram"');
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
  });
});

describe('pieces', () => {
  test('errorHistogram: exact zeros apart, decade bins, non-finite in the last bin', () => {
    const h = errorHistogram([0, 1, 2, 3, 4], [0, 1.5, 2.0005, 3 + 2e-7, NaN]);
    expect(h.elements).toBe(5);
    expect(h.counts[0]).toBe(1);
    const bin = (e: number) => h.counts[Math.floor(Math.log10(e)) + 10 + 1];
    expect(bin(0.5)).toBe(1);
    expect(bin(5e-4)).toBe(1);
    expect(bin(2e-7)).toBe(1);
    expect(h.counts.at(-1)).toBe(1);
  });

  test('jsonSafe: maps, typed arrays, non-finite numbers, cycles', () => {
    const cyc: Record<string, unknown> = { a: 1 };
    cyc.self = cyc;
    expect(jsonSafe({ m: new Map([['x', 1]]), t: new Float32Array([1, 2]), inf: Infinity, c: cyc })).toEqual({
      m: { x: 1 },
      t: [1, 2],
      inf: 'Infinity',
      c: { a: 1, self: '[circular]' },
    });
  });

  test('diff page is deterministic', () => {
    expect(renderDiffHtml(diffTiny())).toBe(renderDiffHtml(diffTiny()));
  });
});
