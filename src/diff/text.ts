/** Text rendering of a model diff (for a terminal: optional colour). */
import type { LayerDiff, ModelDiff, Totals } from './index.js';

export interface TextOptions {
  color?: boolean;
  /** Show at most this many entries per node/initializer list (default 40; 0 = all). */
  limit?: number;
}

const C = { red: '\x1b[31m', green: '\x1b[32m', yellow: '\x1b[33m', bold: '\x1b[1m', dim: '\x1b[2m', off: '\x1b[0m' };

function table(rows: string[][], align: ('l' | 'r')[] = []): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) =>
    r
      .map((c, i) => ((align[i] ?? 'l') === 'r' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

export function count(n: number): string {
  if (Math.abs(n) < 1e3) return String(n);
  if (Math.abs(n) < 1e6) return `${(n / 1e3).toFixed(1)} k`;
  if (Math.abs(n) < 1e9) return `${(n / 1e6).toFixed(2)} M`;
  return `${(n / 1e9).toFixed(2)} G`;
}

export function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function change(x: number, y: number): string {
  if (x === y) return 'unchanged';
  if (x === 0) return 'new';
  const p = ((y - x) / x) * 100;
  return `${p > 0 ? '+' : ''}${p.toFixed(1)}%`;
}

function arrow<T>(x: T | undefined, y: T | undefined, fmt: (v: T) => string = String): string {
  const xs = x === undefined ? '-' : fmt(x);
  const ys = y === undefined ? '-' : fmt(y);
  return xs === ys ? xs : `${xs} → ${ys}`;
}

/** One row per layer for the summary table (shared by text and HTML). */
export function layerRow(l: LayerDiff): Record<string, string> {
  const b = l.before;
  const a = l.after;
  return {
    layer: l.afterIndex !== null && l.afterIndex !== l.index ? `${l.index} (now ${l.afterIndex})` : String(l.index),
    heads: arrow(b?.heads, a?.heads),
    removedHeads: l.removedHeads.length ? l.removedHeads.join(', ') : '-',
    headSize: arrow(b?.headSize || undefined, a?.headSize || undefined),
    ffn: arrow(b?.ffnSize || undefined, a?.ffnSize || undefined),
    blocks: !l.after ? 'layer removed' : l.removedBlocks.length ? `removed ${l.removedBlocks.join(', ')}` : '-',
    attention: arrow(b?.attention, a?.attention),
    precision: arrow(b?.precision, a?.precision),
  };
}

export const LAYER_COLUMNS: [keyof ReturnType<typeof layerRow>, string][] = [
  ['layer', 'layer'],
  ['heads', 'heads'],
  ['removedHeads', 'removed heads'],
  ['headSize', 'head size'],
  ['ffn', 'FFN'],
  ['blocks', 'blocks'],
  ['attention', 'attention'],
  ['precision', 'precision'],
];

export function totalsRows(t: { before: Totals; after: Totals }, seq: number): string[][] {
  return [
    [
      'parameters',
      count(t.before.parameters),
      count(t.after.parameters),
      change(t.before.parameters, t.after.parameters),
    ],
    ['file size', bytesText(t.before.bytes), bytesText(t.after.bytes), change(t.before.bytes, t.after.bytes)],
    [
      `encoder MACs @ seq ${seq}`,
      count(t.before.encoderMacs),
      count(t.after.encoderMacs),
      change(t.before.encoderMacs, t.after.encoderMacs),
    ],
    ['nodes', String(t.before.nodes), String(t.after.nodes), change(t.before.nodes, t.after.nodes)],
  ];
}

export function diffText(d: ModelDiff, opts: TextOptions = {}): string {
  const col = (c: keyof typeof C, s: string) => (opts.color ? `${C[c]}${s}${C.off}` : s);
  const limit = opts.limit ?? 40;
  const out: string[] = [];
  const title = `${d.before.path ?? 'before'} → ${d.after.path ?? 'after'}`;
  out.push(col('bold', title));
  if (d.same) {
    out.push('the models are the same');
    return out.join('\n') + '\n';
  }
  out.push('');
  if (d.layers.length) {
    out.push(col('bold', 'layers'));
    const rows = [LAYER_COLUMNS.map(([, h]) => h)];
    for (const l of d.layers) {
      const r = layerRow(l);
      rows.push(LAYER_COLUMNS.map(([k]) => r[k]!));
    }
    const lines = table(rows);
    out.push('  ' + lines[0]);
    d.layers.forEach((l, i) => out.push('  ' + (l.changed ? col('yellow', lines[i + 1]!) : lines[i + 1]!)));
    for (const l of d.layers) {
      const mats = (s: typeof l.before) => (s ? Object.entries(s.matrices) : []);
      const b = Object.fromEntries(mats(l.before));
      const a = Object.fromEntries(mats(l.after));
      const changedMats = Object.keys({ ...b, ...a }).filter((k) => b[k] !== a[k]);
      if (changedMats.length && (l.before?.precision === 'mixed' || l.after?.precision === 'mixed'))
        out.push(`  layer ${l.index} matrices: ${changedMats.map((k) => `${k} ${arrow(b[k], a[k])}`).join(', ')}`);
      if (l.headMatch === 'approximate')
        out.push(
          col('dim', `  layer ${l.index}: heads matched by weight direction (quantized weights), not bit for bit`),
        );
    }
    out.push('');
  }
  out.push(col('bold', 'totals'));
  for (const l of table([['', 'before', 'after', 'change'], ...totalsRows(d.totals, d.seq)], ['l', 'r', 'r', 'r']))
    out.push('  ' + l);
  const emb = d.embeddings.filter((e) => e.before !== e.after);
  if (emb.length)
    out.push(
      '',
      `embeddings: ${emb.map((e) => `${e.name} [${e.rows}×${e.cols}] ${e.before ?? '-'} → ${e.after ?? '-'}`).join(', ')}`,
    );
  if (d.fused.length)
    out.push('', `new fused and contrib ops: ${d.fused.map((f) => `${f.op} x${f.count}`).join(', ')}`);
  if (d.ops.length) out.push(`op counts: ${d.ops.map((o) => `${o.op} ${o.before}→${o.after}`).join(', ')}`);
  if (Object.keys(d.passes).length)
    out.push(
      `by pass: ${Object.entries(d.passes)
        .map(([p, c]) => `${p} (+${c.added} nodes, ~${c.changed})`)
        .join(', ')}`,
    );
  for (const g of d.graph) out.push(col('yellow', `graph: ${g}`));

  const cap = <T>(list: T[], f: (x: T) => string) => {
    const shown = limit > 0 ? list.slice(0, limit) : list;
    for (const x of shown) out.push(f(x));
    if (shown.length < list.length) out.push(col('dim', `  ... and ${list.length - shown.length} more (see --json)`));
  };
  const n = d.nodes;
  out.push('', col('bold', `nodes: ${n.added.length} added, ${n.removed.length} removed, ${n.changed.length} changed`));
  cap(n.added, (x) => col('green', `  + ${x.op} '${x.name}'${x.pass ? ` [${x.pass}]` : ''}`));
  cap(n.removed, (x) => col('red', `  - ${x.op} '${x.name}'`));
  cap(n.changed, (x) =>
    col('yellow', `  ~ ${x.op} '${x.after}'${x.pass ? ` [${x.pass}]` : ''}: ${x.changes.join('; ')}`),
  );
  const it = d.initializers;
  out.push(
    '',
    col(
      'bold',
      `initializers: ${it.added.length} added, ${it.removed.length} removed, ${it.changed.length} changed, ${it.renamed.length} renamed`,
    ),
  );
  const ti = (t: { name: string; dtype: string; dims: number[]; hash: string }) =>
    `${t.name} ${t.dtype}[${t.dims.join(',')}] #${t.hash}`;
  cap(it.added, (x) => col('green', `  + ${ti(x)}`));
  cap(it.removed, (x) => col('red', `  - ${ti(x)}`));
  cap(it.changed, (x) => col('yellow', `  ~ ${ti(x.before)} → ${ti(x.after)}`));
  cap(it.renamed, (x) => `  = ${x.before} → ${x.after} #${x.hash}`);
  return out.join('\n') + '\n';
}
