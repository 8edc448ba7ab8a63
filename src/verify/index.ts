/**
 * Verification: data sources, onnxruntime runs, comparisons and golden test data.
 *
 * - data.ts: `loadDataset(decl, {baseDir, modelInputs, modelOutputs}) → Dataset` for jsonl / tsv / text-jsonl /
 *   onnx-testdata; `makeBatches(data, inputNames, batch)` → onnxruntime feeds padded per batch (id 0, mask 0);
 *   `loadTokenizer(file)` (truncation and padding of tokenizer.json switched off).
 * - provider.ts: `PlanDataProvider` (the pass framework's DataProvider): lazy, cached, `--data NAME=PATH` overrides.
 * - runner.ts: `createSession(model, {threads, optimization})`, `runDataset(model, data) → RunResult` (every output
 *   per row, in data order).
 * - compare.ts: `verify(original, compiled, spec, data, {reference?}) → VerifyResult`, `compareRuns`,
 *   `metricsOf` (accuracy, binary F1), `renderVerifyResult` (text summary).
 * - golden.ts: `writeGolden(model, data, dir)` (test_data_set_N folders) and `checkGolden(model, dir, tolerances)`.
 *
 * Codes: AX4xxx verification (4001 atol/rtol, 4002 cosine, 4003 argmax, 4004 accuracy drop, 4005 minimum accuracy,
 * 4006 missing output or shape, 4007 no labels, 4008 unknown output, 4009 no class vector, 4010 load, 4011 run);
 * AX5xxx data (5001 not found, 5002 bad JSON, 5003 missing field, 5004 label, 5005 field vs model inputs,
 * 5006 token id, 5007 TSV columns, 5008 tokenizer, 5009 test data, 5010 no rows, 5011 unknown source,
 * 5012 lengths differ, 5013 bad option, 5014 format, 5015 golden folder not empty).
 */
export * from './data.js';
export * from './runner.js';
export * from './compare.js';
export * from './golden.js';
export * from './provider.js';
