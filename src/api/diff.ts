/**
 * Library form of `axc diff`: `diff(before, after)` takes models or paths and returns the JSON-ready difference
 * (schema axc.diff/1, docs/report-schema.md). Render it with `diffText`, or write the HTML page with `diffHtml`.
 */
import { diffModelsFull, type DiffOptions, type DiffResult, type ModelDiff } from '../diff/index.js';
import type { Model } from '../ir/index.js';
import { loadModel } from '../onnx/index.js';
import { renderDiffHtml } from '../report/html.js';

export type { DiffOptions, ModelDiff, LayerDiff, LayerSide, Totals } from '../diff/index.js';
export { diffText, diffJson } from '../diff/index.js';

function resolve(m: Model | string): { model: Model; path?: string } {
  return typeof m === 'string' ? { model: loadModel(m), path: m } : { model: m };
}

function full(before: Model | string, after: Model | string, opts: DiffOptions): DiffResult {
  const b = resolve(before);
  const a = resolve(after);
  return diffModelsFull(b.model, a.model, {
    ...opts,
    ...(b.path ? { beforePath: b.path } : {}),
    ...(a.path ? { afterPath: a.path } : {}),
  });
}

/** What changed from `before` to `after` (models or ONNX file paths): per layer, totals, then node by node. */
export function diff(before: Model | string, after: Model | string, opts: DiffOptions = {}): ModelDiff {
  return full(before, after, opts).diff;
}

/** The self-contained HTML page of `axc diff --html` for two models or paths. */
export function diffHtml(before: Model | string, after: Model | string, opts: DiffOptions = {}): string {
  return renderDiffHtml(full(before, after, opts));
}
