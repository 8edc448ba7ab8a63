import type { Command } from 'commander';
import { example, globalRegistry, type PassLookup } from '../../../dsl/index.js';
import '../../../passes/index.js';
import type { OptionSpec } from '../../pass/index.js';
import { action } from '../util.js';

function range(o: OptionSpec): string {
  const show = (x: number) => (o.percent ? `${x * 100}%` : String(x));
  if (o.values && o.values.length) return o.values.join('|');
  if (o.min !== undefined && o.max !== undefined) return `${show(o.min)}..${show(o.max)}`;
  if (o.min !== undefined) return `>= ${show(o.min)}`;
  if (o.max !== undefined) return `<= ${show(o.max)}`;
  return '';
}

function defaultText(v: unknown): string {
  if (v === undefined) return '';
  if (Array.isArray(v))
    return v
      .map((x) =>
        x && typeof x === 'object' && 'name' in x ? `${x.name}${x.arg !== undefined ? `(${x.arg})` : ''}` : String(x),
      )
      .join(', ');
  if (v && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** How an option is written in a plan: `k 16`, `prune heads`, `where significance < 0`, `keep >= 25%`. */
function usage(pass: string, name: string, o: OptionSpec, positional: boolean): string {
  if (positional) return `${pass} ${example(o)}`;
  if (o.type === 'condition') return `where ${o.values?.[0] ?? 'METRIC'} < 0`;
  if (o.type === 'bound') return `${name} >= 25%`;
  return `${name} ${example(o)}`;
}

/** The pass list as JSON: generated from the registry's metadata. */
export function passesJson(reg: PassLookup = globalRegistry) {
  return reg.all().map((p) => ({
    name: p.name,
    summary: p.summary,
    positional: p.positional ?? null,
    requires: p.requires ?? [],
    provides: p.provides ?? [],
    cleanup: Boolean(p.cleanup),
    options: Object.fromEntries(
      Object.entries(p.options).map(([k, o]) => [
        k,
        {
          type: o.type,
          summary: o.summary,
          default: o.default ?? null,
          min: o.min ?? null,
          max: o.max ?? null,
          percent: Boolean(o.percent),
          values: o.values ?? null,
          required: Boolean(o.required),
        },
      ]),
    ),
  }));
}

/** The pass list as text: one block per pass with its options, types, defaults and ranges. */
export function passesText(reg: PassLookup = globalRegistry): string {
  const out: string[] = [];
  for (const p of reg.all()) {
    const facts = [
      p.requires?.length ? `requires ${p.requires.join(', ')}` : '',
      p.provides?.length ? `provides ${p.provides.join(', ')}` : '',
      p.cleanup ? 'runs between steps' : '',
    ].filter(Boolean);
    out.push(`${p.name}: ${p.summary}${facts.length ? ` [${facts.join('; ')}]` : ''}`);
    const rows = Object.entries(p.options).map(([k, o]) => {
      const name = k === p.positional ? `${k} (positional)` : k;
      const dflt = defaultText(o.default);
      const r = range(o);
      return [
        `  ${name}`,
        o.type,
        o.required ? 'required' : dflt ? `default ${dflt}` : '',
        r,
        `${o.summary} (e.g. ${usage(p.name, k, o, k === p.positional)})`,
      ];
    });
    if (rows.length) {
      const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows)
        out.push(
          r
            .map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c))
            .join('  ')
            .trimEnd(),
        );
    }
  }
  return out.join('\n');
}

export function register(program: Command): void {
  program
    .command('passes')
    .description('list every pass (the plan keywords) with its summary and options')
    .option('--json', 'print as JSON')
    .action(
      action((opts: { json?: boolean }) => {
        if (opts.json) process.stdout.write(JSON.stringify(passesJson(), null, 2) + '\n');
        else {
          const text = passesText();
          process.stdout.write(text ? `${text}\n` : 'no passes are registered\n');
        }
      }),
    );
}
