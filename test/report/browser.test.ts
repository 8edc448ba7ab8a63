/**
 * Opens the HTML diff and the HTML compile report in headless Chromium (playwright-core, Debian's
 * /usr/bin/chromium): no page errors, no console errors, no network requests, and DOM facts (one summary row per
 * layer, removed heads marked, changed nodes highlighted). Screenshots go to $AXC_SCREENSHOTS or a temp folder.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { addHistograms, renderCompileHtml } from '../../src/report/compile-report.js';
import { renderDiffHtml } from '../../src/report/html.js';
import { compileTiny, diffTiny, significanceDetail } from './fixtures.js';

/** Debian's chromium (CI installs it); AXC_CHROMIUM overrides the path. */
const CHROMIUM = process.env.AXC_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'axc-browser-'));
const shots = process.env.AXC_SCREENSHOTS ?? tmp;

if (!haveChromium) {
  console.warn(`SKIPPED headless browser checks: ${CHROMIUM} is absent (CI installs Debian's chromium)`);
  test.skip(`headless browser checks need ${CHROMIUM}, which is absent on this machine`, () => {});
}

describe.skipIf(!haveChromium)('HTML pages in headless Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    if (!process.env.AXC_SCREENSHOTS) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Open a page from a file, collecting page errors, console errors and any request other than the file. */
  async function open(html: string, name: string): Promise<{ page: Page; problems: string[] }> {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, html);
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    page.on('request', (r) => {
      if (r.url() !== `file://${file}`) problems.push(`request: ${r.url()}`);
    });
    await page.goto(`file://${file}`, { waitUntil: 'load' });
    return { page, problems };
  }

  test('diff page: one row per layer, removed heads marked, changed nodes highlighted', async () => {
    const r = diffTiny();
    const { page, problems } = await open(renderDiffHtml(r), 'diff.html');
    expect(await page.locator('#layers tbody tr').count()).toBe(r.diff.layers.length);
    expect(await page.locator('#layers tbody tr').count()).toBe(2);
    const removed = await page
      .locator('tr[data-layer="1"] .head.removed')
      .evaluateAll((es) => es.map((e) => e.getAttribute('data-head')));
    expect(removed).toEqual(['0']);
    expect(await page.locator('tr[data-layer="0"] .head.removed').count()).toBe(0);
    // struck-through chip really renders as such
    const deco = await page
      .locator('tr[data-layer="1"] .head.removed')
      .evaluate(
        (e) =>
          (globalThis as unknown as { getComputedStyle(x: unknown): { textDecorationLine: string } }).getComputedStyle(
            e,
          ).textDecorationLine,
      );
    expect(deco).toContain('line-through');
    // layer 0 was quantized: its after drawing has added (DynamicQuantizeMatMul) nodes, its before drawing removed MatMuls
    const l0 = page.locator('details.layer[data-layer="0"]');
    expect(await l0.locator('figure').nth(1).locator('g.node.added').count()).toBe(6);
    expect(await l0.locator('figure').nth(0).locator('g.node.removed').count()).toBe(6);
    // layer 1 lost a head: its Q/K/V/O MatMuls and bias Adds changed
    expect(await page.locator('details.layer[data-layer="1"] figure').nth(1).locator('g.node.changed').count()).toBe(7);
    await page.screenshot({ path: path.join(shots, 'diff.png'), fullPage: true });
    await page.screenshot({ path: path.join(shots, 'diff-top.png') });
    await page.locator('details.layer[data-layer="1"]').screenshot({ path: path.join(shots, 'diff-layer1.png') });
    expect(problems).toEqual([]);
    await page.close();
  });

  test('compile report: steps, heat map, histogram, diff summary', async () => {
    const result = await compileTiny(tmp);
    await addHistograms(result);
    const withSig = {
      ...result,
      steps: [
        {
          pass: 'significance',
          changed: false,
          ms: 40,
          stats: {},
          details: { significance: significanceDetail() },
          diagnostics: [],
        },
        ...result.steps,
      ],
    };
    const { page, problems } = await open(renderCompileHtml(withSig), 'report.html');
    expect(await page.locator('#steps tbody tr').count()).toBe(withSig.steps.length);
    expect(await page.locator('#significance g.cell').count()).toBe(2 * (2 + 2));
    expect(await page.locator('svg.histogram rect').count()).toBeGreaterThan(5);
    expect(await page.locator('#layers tbody tr').count()).toBe(2);
    expect(await page.locator('#layers tr[data-layer="1"] td').nth(6).textContent()).toBe('softmax → top-k k=8');
    const box = await page.locator('#significance').boundingBox();
    expect(box!.width).toBeGreaterThan(100);
    await page.screenshot({ path: path.join(shots, 'report.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });
});
