/**
 * Types shared by the `quantize` pass and its helpers: the options, the minimal view of the 'significance' fact that
 * mixed precision needs, and the per-matrix error report.
 */
import type * as ort from 'onnxruntime-node';
import type { LayerSelector, NamedItem } from '../../src/pass/types.js';
import type { Int8Form } from './quant.js';

export type QuantMode = 'int8' | 'uint8' | 'int4';
export type Granularity = 'per-tensor' | 'per-channel';
export type Calibration = 'none' | 'minmax' | 'percentile' | 'entropy';
export type QuantTarget = 'onnx' | 'onnxruntime';

export interface QuantizeOptions {
  /** What to quantize: matmul, gemm (weights of rank 2), gather (embedding tables). */
  ops?: (NamedItem | string)[];
  mode?: QuantMode;
  granularity?: Granularity;
  /** The int8 graph form; 'auto' = the measured fastest for onnxruntime, qdq for onnx. */
  form?: 'auto' | Int8Form;
  'table-form'?: 'auto' | 'nibbles' | 'gather-block-quantized';
  target?: QuantTarget;
  layers?: LayerSelector;
  /** Op types (MatMul, Gemm, Gather) or node names left in float. */
  'except-ops'?: (NamedItem | string)[];
  'block-size'?: number;
  /** int4: symmetric blocks (no zero points, the kernel's default 8) or asymmetric (packed uint8 zero points). */
  symmetric?: boolean;
  /** Matrices kept in float: a count (>= 1) or a fraction (25% = 0.25), the most significant first. */
  'keep-float'?: number;
  /** Static int8 with activation ranges calibrated on `on` (none = dynamic quantization). */
  calibration?: Calibration;
  /** Data source for calibration and the per-matrix error report. */
  on?: string;
  /** Rows of `on` used for calibration and the error report. */
  rows?: number;
  /** Percentile for `calibration percentile`. */
  percentile?: number;
}

/**
 * What mixed precision reads from the 'significance' fact (passes/lib/prune-types.ts `Significance` satisfies it):
 * per layer, a score for the attention block and the FFN block, or per head / FFN group scores that are summed.
 * Larger means more important.
 */
export interface SignificanceView {
  layers: {
    layer: number;
    attention?: { score: number };
    ffn?: { score: number };
    headScores?: { score: number }[];
    groupScores?: { score: number }[];
  }[];
}

/** Which projection of a layer a matrix is. */
export type MatrixRole =
  | 'q'
  | 'k'
  | 'v'
  /** The fused Q/K/V weight of a com.microsoft Attention node. */
  | 'qkv'
  | 'o'
  | 'up'
  | 'down'
  | 'pooler'
  | 'classifier'
  | 'embedding'
  | 'other';

/** One row of the per-matrix error report (ctx.details.matrices). */
export interface MatrixReport {
  node: string;
  op: string;
  layer?: number;
  role: MatrixRole;
  /** [K, N] of the weight as used (rows in, columns out), or [V, D] for a table. */
  shape: number[];
  /** What was done: the form, or 'float' when kept (and why). */
  form: string;
  kept?: string;
  /**
   * Relative L2 error of this matrix's output when only it is quantized, on the calibration rows (`output`), or of
   * the weight itself when no data was given (`weight`).
   */
  relError: number;
  errorOf: 'output' | 'weight';
  bytesBefore: number;
  bytesAfter: number;
}

/** Feeds for calibration when no plan data source is involved (tests, library use). */
export type FeedSource = () => Iterable<Record<string, ort.Tensor>> | AsyncIterable<Record<string, ort.Tensor>>;
