import type { SourceSpan } from '../diagnostics/index.js';
import type { PlanStep } from './types.js';

/**
 * A checked, lowered plan: what `dsl/` produces from a .ax file and what `axc compile` runs.
 * The DSL layer fills it; src/verify and the pass manager consume it.
 */
export interface Plan {
  file: string;
  source: string;
  data: DataDecl[];
  steps: PlanStep[];
  verify: VerifySpec[];
}

/** Formats of data sources. */
export type DataFormat =
  /** JSON lines with token ids per model input (`input_ids`, optional `attention_mask`, `token_type_ids`) and an optional label. */
  | 'jsonl'
  /** ONNX test_data_set_N folders (input_K.pb / output_K.pb TensorProto files), as in the model zoo and backend tests. */
  | 'onnx-testdata'
  /** Raw text in a TSV file (header row), tokenized with a tokenizer.json. */
  | 'tsv'
  /** Raw text in JSON lines, tokenized with a tokenizer.json. */
  | 'text-jsonl';

export interface DataDecl {
  name: string;
  format: DataFormat;
  /** Path as written in the plan (resolved relative to the plan's folder), or overridden by --data NAME=PATH. */
  path: string;
  /** Field holding the label (jsonl/tsv/text-jsonl). */
  label?: string;
  /** Field holding the text (tsv/text-jsonl). */
  text?: string;
  /** Second text field for sentence pairs. */
  textPair?: string;
  /** tokenizer.json path (tsv/text-jsonl). */
  tokenizer?: string;
  /** Keep only rows whose position (or `idx` field when present) is even or odd: significance on one half, verification on the other. */
  split?: 'even' | 'odd';
  /** Use at most this many rows (after split). */
  limit?: number;
  /** Skip this many rows first (after split). */
  offset?: number;
  /** Truncate token sequences to this length. */
  maxLength?: number;
  /** Batch size used when running the model on this data (default 32). */
  batch?: number;
  span?: SourceSpan;
}

/** One `verify` statement: requirements that gate the output. */
export interface VerifySpec {
  data: string;
  /** Maximum accuracy drop in percentage points (negative allows none and demands a gain). */
  accuracyDrop?: number;
  /** Minimum accuracy of the compiled model, as a fraction (0..1). */
  minAccuracy?: number;
  /** Per-output numeric tolerances; output '*' applies to every output. */
  outputs: OutputTolerance[];
  span?: SourceSpan;
}

export interface OutputTolerance {
  output: string;
  /** |a - b| <= atol + rtol * |b| element-wise. */
  atol?: number;
  rtol?: number;
  /** Minimum cosine similarity (0..1). */
  cosine?: number;
  /** Minimum fraction of rows whose argmax agrees (0..1). */
  argmax?: number;
  span?: SourceSpan;
}
