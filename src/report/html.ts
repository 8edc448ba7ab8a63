/**
 * Self-contained HTML pages (no network: inline CSS, JS and SVG) for `axc diff --html` and `axc compile --html`.
 * Output is deterministic: the same input gives the same bytes (no dates, no object ids).
 */
import type { Node } from '../ir/index.js';
import type { DiffResult, LayerDiff, ModelDiff } from '../diff/index.js';
import { projectionOf, type LayerView } from '../diff/layers.js';
import { LAYER_COLUMNS, bytesText, change, count, layerRow, totalsRows } from '../diff/text.js';

export function esc(s: unknown): string {
  return String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

const CSS = `
:root{--fg:#1d2330;--muted:#6b7385;--bg:#fff;--line:#dde1ea;--add:#1f9d55;--add-bg:#e3f6ea;--rm:#d64545;--rm-bg:#fde8e8;--ch:#c27c0e;--ch-bg:#fdf3dc;--same:#8a93a6;--same-bg:#f3f5f9}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);margin:0;padding:24px 32px;max-width:1500px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
.sub{color:var(--muted);margin-bottom:16px;word-break:break-all}
table{border-collapse:collapse;margin:6px 0}th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}th{font-weight:600;background:#f7f8fb}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}tr.changed td{background:var(--ch-bg)}
.head{display:inline-block;min-width:20px;padding:0 4px;margin:1px;border-radius:3px;text-align:center;font-size:12px;background:var(--same-bg);color:var(--same);border:1px solid var(--line)}
.head.removed{background:var(--rm-bg);color:var(--rm);border-color:var(--rm);text-decoration:line-through}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}.ok{background:var(--add-bg);color:var(--add)}.fail{background:var(--rm-bg);color:var(--rm)}
.added{color:var(--add)}.removed-t{color:var(--rm)}.changed-t{color:var(--ch)}
.sides{display:flex;gap:24px;align-items:flex-start;overflow-x:auto}.sides figure{margin:0}.sides figcaption{color:var(--muted);font-size:12px;margin-bottom:4px}
svg text{font:11px system-ui,sans-serif}code{font:12px ui-monospace,Menlo,monospace}
details>summary{cursor:pointer;font-weight:600;margin:8px 0}.legend span{margin-right:14px}.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-2px;margin-right:4px}
.bar{display:inline-block;height:10px;background:#7aa2e3;border-radius:2px;vertical-align:middle}
.controls{margin:8px 0}.hidden{display:none}
`;

const JS = `
document.querySelectorAll('[data-toggle]').forEach(function(b){b.addEventListener('change',function(){
  var sel=b.getAttribute('data-toggle');document.querySelectorAll(sel).forEach(function(e){e.classList.toggle('hidden',!b.checked)})})});
`;

export function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body>
${body}
<script>${JS}</script>
</body></html>
`;
}

/** The per-layer summary table; removed heads are marked with class `removed` and `data-head`. */
export function layerTable(d: ModelDiff): string {
  const head = LAYER_COLUMNS.map(([, h]) => `<th>${esc(h)}</th>`).join('');
  const rows = d.layers
    .map((l) => {
      const r = layerRow(l);
      const cells = LAYER_COLUMNS.map(([k]) => {
        if (k === 'removedHeads') return `<td>${headChips(l)}</td>`;
        return `<td>${esc(r[k])}</td>`;
      }).join('');
      return `<tr data-layer="${l.index}"${l.changed ? ' class="changed"' : ''}>${cells}</tr>`;
    })
    .join('\n');
  return `<table id="layers"><thead><tr>${head}</tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

/** One chip per original head, removed ones struck through. */
function headChips(l: LayerDiff): string {
  const n = l.before?.heads ?? 0;
  if (n === 0) return '-';
  const removed = new Set(l.removedHeads);
  return Array.from({ length: n }, (_, h) =>
    removed.has(h)
      ? `<span class="head removed" data-head="${h}" title="head ${h} removed">${h}</span>`
      : `<span class="head" data-head="${h}" title="head ${h} kept">${h}</span>`,
  ).join('');
}

export function totalsTable(d: ModelDiff): string {
  const rows = totalsRows(d.totals, d.seq)
    .map(
      ([k, b, a, c]) =>
        `<tr><td>${esc(k)}</td><td class="num">${esc(b)}</td><td class="num">${esc(a)}</td><td class="num">${esc(c)}</td></tr>`,
    )
    .join('');
  return `<table id="totals"><thead><tr><th></th><th class="num">before</th><th class="num">after</th><th class="num">change</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** The diff summary (layers, totals, fused ops, passes): shared by the diff page and the compile report. */
export function diffSummaryHtml(d: ModelDiff): string {
  const parts: string[] = [];
  if (d.same) return '<p>The models are the same.</p>';
  if (d.layers.length) parts.push(layerTable(d));
  else parts.push('<p>No encoder layer was recognized in either model.</p>');
  parts.push('<h3>Totals</h3>', totalsTable(d));
  if (d.embeddings.length)
    parts.push(
      `<h3>Embedding tables</h3><table id="embeddings"><thead><tr><th>table</th><th class="num">rows × width</th><th>precision</th></tr></thead><tbody>${d.embeddings
        .map(
          (e) =>
            `<tr${e.before !== e.after ? ' class="changed"' : ''}><td><code>${esc(e.name)}</code></td><td class="num">${e.rows} × ${e.cols}</td><td>${esc(e.before === e.after ? e.before : `${e.before ?? '-'} → ${e.after ?? '-'}`)}</td></tr>`,
        )
        .join('')}</tbody></table>`,
    );
  if (d.fused.length)
    parts.push(
      `<p>New fused and contrib ops: ${d.fused.map((f) => `<code>${esc(f.op)}</code> x${f.count}`).join(', ')}</p>`,
    );
  const passes = Object.entries(d.passes);
  if (passes.length)
    parts.push(
      `<p>New nodes by pass: ${passes.map(([p, c]) => `<code>${esc(p)}</code> +${c.added} (changed ${c.changed})`).join(', ')}</p>`,
    );
  return parts.join('\n');
}

type Status = 'added' | 'removed' | 'changed' | 'same';
const FILL: Record<Status, [string, string]> = {
  added: ['#e3f6ea', '#1f9d55'],
  removed: ['#fde8e8', '#d64545'],
  changed: ['#fdf3dc', '#c27c0e'],
  same: ['#f3f5f9', '#8a93a6'],
};

/** Shape bookkeeping the drawings leave out. */
const HIDDEN_OPS = new Set([
  'Constant',
  'Shape',
  'Unsqueeze',
  'Squeeze',
  'Concat',
  'ConstantOfShape',
  'Range',
  'Min',
  'Max',
  'Equal',
]);

function visible(n: Node): boolean {
  if (HIDDEN_OPS.has(n.opType)) return false;
  if (n.opType === 'Gather' && n.input(0)?.producer()?.opType === 'Shape') return false;
  return true;
}

/** A layered drawing of a set of nodes: rank = longest path from the set's inputs; boxes coloured by status. */
export function graphSvg(nodes: Node[], status: (n: Node) => Status, label: string): string {
  const shown = nodes.filter(visible);
  const set = new Set(shown);
  const rank = new Map<Node, number>();
  for (const n of shown) {
    let r = 0;
    for (const v of n.inputs) {
      const p = v?.producer();
      if (p && set.has(p)) r = Math.max(r, (rank.get(p) ?? 0) + 1);
    }
    rank.set(n, r);
  }
  const rows = new Map<number, Node[]>();
  for (const n of shown) {
    const r = rank.get(n)!;
    const row = rows.get(r);
    if (row) row.push(n);
    else rows.set(r, [n]);
  }
  const W = 124;
  const H = 30;
  const GX = 12;
  const GY = 16;
  const maxCols = Math.max(1, ...[...rows.values()].map((r) => r.length));
  const width = maxCols * (W + GX) + GX;
  const height = (rows.size ? Math.max(...rows.keys()) + 1 : 1) * (H + GY) + GY;
  const pos = new Map<Node, { x: number; y: number }>();
  for (const [r, row] of rows) {
    const offset = ((maxCols - row.length) * (W + GX)) / 2;
    row.forEach((n, i) => pos.set(n, { x: GX + offset + i * (W + GX), y: GY + r * (H + GY) }));
  }
  const edges: string[] = [];
  for (const n of shown) {
    const to = pos.get(n)!;
    for (const v of n.inputs) {
      const p = v?.producer();
      if (!p || !set.has(p)) continue;
      const from = pos.get(p)!;
      const x1 = from.x + W / 2;
      const y1 = from.y + H;
      const x2 = to.x + W / 2;
      const y2 = to.y;
      const my = (y1 + y2) / 2;
      edges.push(
        `<path d="M${x1} ${y1} C${x1} ${my} ${x2} ${my} ${x2} ${y2}" fill="none" stroke="#b7bdca" stroke-width="1"/>`,
      );
    }
  }
  const boxes = shown.map((n) => {
    const { x, y } = pos.get(n)!;
    const st = status(n);
    const [fill, stroke] = FILL[st];
    const text = n.opType.length > 19 ? n.opType.slice(0, 18) + '…' : n.opType;
    const p = projectionOf(n);
    const sub = p ? `${p.in}×${p.out} ${p.precision.replace(' per-channel', '/ch').replace(' per-tensor', '/t')}` : '';
    const label = sub
      ? `<text x="${x + W / 2}" y="${y + 12}" text-anchor="middle" fill="#1d2330">${esc(text)}</text><text x="${x + W / 2}" y="${y + 25}" text-anchor="middle" fill="#4a5266" font-size="9">${esc(sub)}</text>`
      : `<text x="${x + W / 2}" y="${y + 19}" text-anchor="middle" fill="#1d2330">${esc(text)}</text>`;
    return `<g class="node ${st}" data-status="${st}"><title>${esc(`${n.qualifiedOp} '${n.name}' (${st})`)}</title><rect x="${x}" y="${y}" width="${W}" height="${H}" rx="4" fill="${fill}" stroke="${stroke}"/>${label}</g>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="${esc(label)}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${edges.join('')}${boxes.join('')}</svg>`;
}

const LEGEND = `<p class="legend"><span><i class="sw" style="background:#e3f6ea;border:1px solid #1f9d55"></i>added</span><span><i class="sw" style="background:#fde8e8;border:1px solid #d64545"></i>removed</span><span><i class="sw" style="background:#fdf3dc;border:1px solid #c27c0e"></i>changed</span><span><i class="sw" style="background:#f3f5f9;border:1px solid #8a93a6"></i>unchanged</span></p>`;

function layerGraphs(r: DiffResult): string {
  const { diff, beforeLayers, afterLayers, structure } = r;
  const matchedBefore = new Set(structure.nodeMatch.values());
  const changedBefore = new Set<Node>();
  for (const a of structure.changedNodes) changedBefore.add(structure.nodeMatch.get(a)!);
  const beforeStatus = (n: Node): Status =>
    !matchedBefore.has(n) ? 'removed' : changedBefore.has(n) ? 'changed' : 'same';
  const afterStatus = (n: Node): Status =>
    !structure.nodeMatch.has(n) ? 'added' : structure.changedNodes.has(n) ? 'changed' : 'same';
  const sections = diff.layers.map((l) => {
    const b: LayerView | undefined = l.before ? beforeLayers[l.index] : undefined;
    const a: LayerView | undefined = l.afterIndex !== null ? afterLayers[l.afterIndex] : undefined;
    const fig = (v: LayerView | undefined, st: (n: Node) => Status, cap: string) =>
      `<figure><figcaption>${esc(cap)}</figcaption>${v ? graphSvg(v.nodes, st, `${cap} layer ${l.index}`) : '<p>(no such layer)</p>'}</figure>`;
    return `<details class="layer" data-layer="${l.index}"${l.changed ? ' open' : ''}><summary>Layer ${l.index}${l.changed ? ' <span class="changed-t">(changed)</span>' : ''}</summary><div class="sides">${fig(b, beforeStatus, 'before')}${fig(a, afterStatus, 'after')}</div></details>`;
  });
  return sections.join('\n');
}

function nodeLists(d: ModelDiff, limit = 500): string {
  const n = d.nodes;
  const cap = <T>(xs: T[]) => xs.slice(0, limit);
  const more = (xs: unknown[]) => (xs.length > limit ? `<p>... and ${xs.length - limit} more (see --json)</p>` : '');
  const rows: string[] = [];
  for (const x of cap(n.added))
    rows.push(
      `<tr class="added"><td>+</td><td><code>${esc(x.op)}</code></td><td><code>${esc(x.name)}</code></td><td>${esc(x.pass ?? '')}</td><td></td></tr>`,
    );
  for (const x of cap(n.removed))
    rows.push(
      `<tr class="removed-t"><td>−</td><td><code>${esc(x.op)}</code></td><td><code>${esc(x.name)}</code></td><td></td><td></td></tr>`,
    );
  for (const x of cap(n.changed))
    rows.push(
      `<tr class="changed-t"><td>~</td><td><code>${esc(x.op)}</code></td><td><code>${esc(x.after)}</code></td><td>${esc(x.pass ?? '')}</td><td>${x.changes.map((c) => esc(c)).join('<br>')}</td></tr>`,
    );
  const it = d.initializers;
  const ti = (t: { name: string; dtype: string; dims: number[]; hash: string }) =>
    `<code>${esc(t.name)}</code> ${esc(t.dtype)}[${t.dims.join(',')}] <code>#${esc(t.hash)}</code>`;
  const irows: string[] = [];
  for (const x of cap(it.added)) irows.push(`<tr class="added"><td>+</td><td>${ti(x)}</td></tr>`);
  for (const x of cap(it.removed)) irows.push(`<tr class="removed-t"><td>−</td><td>${ti(x)}</td></tr>`);
  for (const x of cap(it.changed))
    irows.push(`<tr class="changed-t"><td>~</td><td>${ti(x.before)} → ${ti(x.after)}</td></tr>`);
  for (const x of cap(it.renamed))
    irows.push(
      `<tr><td>=</td><td><code>${esc(x.before)}</code> → <code>${esc(x.after)}</code> <code>#${esc(x.hash)}</code></td></tr>`,
    );
  return `<h2>Nodes: ${n.added.length} added, ${n.removed.length} removed, ${n.changed.length} changed</h2>
<table id="nodes"><thead><tr><th></th><th>op</th><th>node</th><th>pass</th><th>changes</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>${more([...n.added, ...n.removed, ...n.changed])}
<h2>Initializers: ${it.added.length} added, ${it.removed.length} removed, ${it.changed.length} changed, ${it.renamed.length} renamed</h2>
<table id="initializers"><tbody>${irows.join('\n')}</tbody></table>`;
}

/** The `axc diff --html` page. */
export function renderDiffHtml(r: DiffResult): string {
  const d = r.diff;
  const title = `axc diff: ${d.before.path ?? 'before'} → ${d.after.path ?? 'after'}`;
  const body = `<h1>axc diff</h1>
<div class="sub">${esc(d.before.path ?? 'before')} → ${esc(d.after.path ?? 'after')} · MACs at sequence length ${d.seq} · ${d.same ? '<span class="badge ok">same</span>' : '<span class="badge fail">different</span>'}</div>
<h2>Summary</h2>
${diffSummaryHtml(d)}
${d.graph.length ? `<h3>Graph</h3><ul>${d.graph.map((g) => `<li>${esc(g)}</li>`).join('')}</ul>` : ''}
<h2>Layers side by side</h2>
${LEGEND}
${layerGraphs(r)}
${nodeLists(d)}`;
  return page(title, body);
}

export { bytesText, change, count };
