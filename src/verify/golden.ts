/**
 * Golden outputs stored with a model, in the ONNX test-data layout (test_data_set_N/input_K.pb, output_K.pb), so a
 * compiled model can be checked later without the original model.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AxcError, diag } from '../diagnostics/index.js';
import { encodeTensorProto } from '../onnx/encode.js';
import type { OutputTolerance, VerifySpec } from '../pass/plan.js';
import { compareRuns, type VerifyResult } from './compare.js';
import { loadDataset, testDataSets, valueToTensor, type Dataset } from './data.js';
import { createSession, expectedOutputs, runDataset, type ModelSource, type SessionOptions } from './runner.js';

export interface WriteGoldenOptions extends SessionOptions {
  /** Use at most this many rows of the data. */
  limit?: number;
  /** Rows per test_data_set (default: the dataset's batch size). */
  batch?: number;
  /** Replace test_data_set_N folders already in `dir`. */
  overwrite?: boolean;
}

export interface GoldenSummary {
  dir: string;
  sets: number;
  rows: number;
  inputs: string[];
  outputs: string[];
  bytes: number;
}

/** Run `model` on `data` and write each batch as a test_data_set_N folder of `dir` (created when missing). */
export async function writeGolden(
  model: ModelSource,
  data: Dataset,
  dir: string,
  opts: WriteGoldenOptions = {},
): Promise<GoldenSummary> {
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory())
      throw new AxcError(diag('AX5015', 'error', `${dir} exists and is not a folder`, { kind: 'file', file: dir }));
    const existing = testDataSets(dir);
    if (existing.length && !opts.overwrite)
      throw new AxcError(
        diag(
          'AX5015',
          'error',
          `${dir} already holds ${existing.length} test data set(s); refusing to overwrite`,
          {
            kind: 'file',
            file: dir,
          },
          ['pass --force to replace them'],
        ),
      );
    for (const e of existing) fs.rmSync(e, { recursive: true });
  } else fs.mkdirSync(dir, { recursive: true });
  const rows = opts.limit !== undefined ? data.rows.slice(0, opts.limit) : data.rows;
  const subset: Dataset = { ...data, rows, labelled: rows.every((r) => r.label !== undefined) };
  const session = await createSession(model, opts);
  let bytes = 0;
  try {
    const run = await runDataset(session, subset, { batch: opts.batch, keepBatches: true });
    run.batches!.forEach(({ batch, outputs }, k) => {
      const setDir = path.join(dir, `test_data_set_${k}`);
      fs.mkdirSync(setDir);
      session.inputNames.forEach((name, i) => {
        const f = batch.feeds[name]!;
        const b = encodeTensorProto(valueToTensor(name, { type: f.type, dims: f.dims, data: f.data }));
        fs.writeFileSync(path.join(setDir, `input_${i}.pb`), b);
        bytes += b.byteLength;
      });
      session.outputNames.forEach((name, i) => {
        const b = encodeTensorProto(valueToTensor(name, outputs[name]!));
        fs.writeFileSync(path.join(setDir, `output_${i}.pb`), b);
        bytes += b.byteLength;
      });
    });
    return {
      dir,
      sets: run.batches!.length,
      rows: rows.length,
      inputs: [...session.inputNames],
      outputs: [...session.outputNames],
      bytes,
    };
  } finally {
    await session.release();
  }
}

export interface CheckGoldenOptions extends SessionOptions {
  /** Name of the data source in messages (default: the folder name). */
  name?: string;
}

/**
 * Compare `model` against the golden outputs stored in `dir` (test_data_set_N folders or one such folder).
 * `tolerances` is a list of per-output tolerances or a whole verify statement.
 */
export async function checkGolden(
  model: ModelSource,
  dir: string,
  tolerances: readonly OutputTolerance[] | VerifySpec,
  opts: CheckGoldenOptions = {},
): Promise<VerifyResult> {
  const spec: VerifySpec = Array.isArray(tolerances)
    ? { data: opts.name ?? path.basename(dir), outputs: [...(tolerances as OutputTolerance[])] }
    : (tolerances as VerifySpec);
  const session = await createSession(model, opts);
  try {
    const data = await loadDataset(
      { name: opts.name ?? spec.data, format: 'onnx-testdata', path: path.resolve(dir) },
      { modelInputs: session.inputNames, modelOutputs: session.outputNames },
    );
    const expected = expectedOutputs(data);
    if (!expected)
      throw new AxcError(
        diag(
          'AX5009',
          'error',
          `${dir}: some test data sets hold no output_N.pb files, so there is nothing to compare against`,
          {
            kind: 'file',
            file: dir,
          },
        ),
      );
    const got = await runDataset(session, data);
    return compareRuns(expected, got, spec, data, { reference: 'golden', candidate: 'model' });
  } finally {
    await session.release();
  }
}
