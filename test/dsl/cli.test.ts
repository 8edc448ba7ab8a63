/** `axc check` and `axc passes` through commander, with the real registry and the real layer analysis. */
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { register as registerCheck } from '../../src/cli/commands/check.js';
import { passesText, register as registerPasses } from '../../src/cli/commands/passes.js';
import { GOLDEN, TINY_MODEL } from '../support/paths.js';
import { fakeRegistry } from './fake-passes.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'axc-dsl-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const program = new Command().exitOverride();
  registerCheck(program);
  registerPasses(program);
  let out = '';
  let err = '';
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  const saved = process.exitCode;
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    await program.parseAsync(['node', 'axc', ...args]);
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = saved;
  return { code, out, err };
}

describe('axc check', () => {
  test('golden/plans/cleanup.ax is ok against the tiny model', async () => {
    const plan = path.join(GOLDEN, 'plans/cleanup.ax');
    const r = await run('check', plan, '--model', TINY_MODEL);
    expect(r.err).toBe('');
    expect(r.out).toBe(`${plan}: ok, 1 step\n`);
    expect(r.code).toBe(0);
  });

  test('layers the model does not have (from the real layer analysis), rendered with a caret, exit 1', async () => {
    const plan = path.join(tmp, 'topk.ax');
    fs.writeFileSync(plan, '# two layers only\ntopk-attention layers 1..3 k 16\n');
    const r = await run('check', plan, '--model', TINY_MODEL);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toBe(
      `${plan}:2:26: error AX2201: layer 3 does not exist: the model has 2 layers (0..1)\n` +
        '   2 | topk-attention layers 1..3 k 16\n' +
        '     |                          ^\n' +
        `${plan}: 1 error\n`,
    );
    // without the model the same plan is fine
    expect((await run('check', plan)).code).toBe(0);
  });

  test('--json prints the lowered plan', async () => {
    const plan = path.join(tmp, 'k.ax');
    fs.writeFileSync(plan, 'topk-attention layers 0 k 4 renormalize\n');
    const r = await run('check', plan, '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as {
      ok: boolean;
      plan: { steps: { pass: string; options: Record<string, unknown> }[] };
    };
    expect(j.ok).toBe(true);
    expect(j.plan.steps[0]).toMatchObject({
      pass: 'topk-attention',
      options: { k: 4, renormalize: true, layers: { include: [0], exclude: [] } },
    });
  });

  test('a missing plan file is a user error with a code', async () => {
    const r = await run('check', path.join(tmp, 'nope.ax'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error AX2000: cannot read the plan: ENOENT/);
  });
});

describe('axc passes', () => {
  test('text lists every registered pass with its options', async () => {
    const r = await run('passes');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^topk-attention: /m);
    expect(r.out).toMatch(/^ {2}k +integer +required +>= 1 +/m);
    expect(r.out).toMatch(/^analyze-layers: .*\[provides layers\]$/m);
  });

  test('--json is generated from the registry', async () => {
    const r = await run('passes', '--json');
    const j = JSON.parse(r.out) as { name: string; options: Record<string, { type: string }> }[];
    const names = j.map((p) => p.name);
    expect(names).toEqual([...names].sort((a, b) => a.localeCompare(b)));
    expect(j.find((p) => p.name === 'topk-attention')?.options.k?.type).toBe('integer');
  });

  test('text form of a known registry', () => {
    expect(passesText(fakeRegistry).split('\n').slice(0, 4)).toEqual([
      'ambiguous: test pass whose two enum options share a value',
      '  speed  enum    fast|slow   speed (e.g. speed fast)',
      '  mode   enum    fast|exact  mode (e.g. mode fast)',
      'cleanup: remove dead code, identities and fold constants',
    ]);
  });
});
