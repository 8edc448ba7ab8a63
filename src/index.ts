/**
 * axc as a library: `import { compile, loadModel, diff, verify } from 'axc'`. The CLI is a thin layer over this.
 * Errors are typed: user mistakes throw AxcError (with diagnostics: code, message, location) or ModelFileError.
 */
export { compile, loadPlan, PlanError, type CompileOptions, type CompileResult, type ModelFacts } from './compile.js';
export {
  loadModel,
  saveModel,
  serializeModel,
  ModelFileError,
  type LoadOptions,
  type SaveOptions,
} from './onnx/index.js';
export {
  verify,
  loadDataset,
  PlanDataProvider,
  renderVerifyResult,
  writeGolden,
  checkGolden,
  type VerifyResult,
  type Dataset,
} from './verify/index.js';
export { AxcError, renderDiagnostics, type Diagnostic, type Location, type Severity } from './diagnostics/index.js';
export { checkPlan, parsePlan } from '../dsl/index.js';
export {
  PassManager,
  registerPass,
  allPasses,
  getPass,
  type PassDef,
  type PassContext,
  type PassResult,
  type Plan,
  type PlanStep,
} from './pass/index.js';
export { analyzeLayers, type LayerAnalysis, type LayerInfo } from '../passes/analysis/layers.js';
export * as ir from './ir/index.js';
export { Model, Graph, Node, Value, Tensor, DataType, modelText, modelStats, checkModel } from './ir/index.js';
export {
  diff,
  diffHtml,
  diffText,
  diffJson,
  type DiffOptions,
  type ModelDiff,
  type LayerDiff,
  type LayerSide,
  type Totals,
} from './api/diff.js';
export {
  writeCompileReport,
  writeCompileReports,
  renderCompileHtml,
  compileReportJson,
  REPORT_SCHEMA,
  type CompileReportInput,
} from './report/compile-report.js';
