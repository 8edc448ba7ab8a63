/**
 * Data sources for verification and significance: token-id JSON lines, raw text (TSV or JSON lines, tokenized with a
 * tokenizer.json), and ONNX test_data_set folders. A source loads into a Dataset of rows; `makeBatches` turns rows
 * into onnxruntime feeds padded to the longest row of each batch (pad id 0, mask 0).
 *
 * Errors are AxcErrors with AX5xxx codes naming the file (and line when there is one).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import { AxcError, diag, didYouMean, type Diagnostic, type Location } from '../diagnostics/index.js';
import { DataType, Tensor, type Model } from '../ir/index.js';
import { decodeTensorProto } from '../onnx/decode.js';
import { DecodeError } from '../onnx/wire.js';
import type { DataDecl, DataFormat } from '../pass/plan.js';

/** A full tensor fed as is (onnx-testdata rows). */
export interface TensorValue {
  type: ort.Tensor.Type;
  dims: readonly number[];
  data: ort.Tensor.DataType;
}

/** One token sequence per model input (1-D), or a whole tensor for onnx-testdata. */
export type RowInput = BigInt64Array | TensorValue;

export interface DataRow {
  inputs: Record<string, RowInput>;
  label?: number;
  /** `idx` field of the row when it has one. */
  idx?: number;
  /** Where the row came from, for messages: `dev.jsonl:17` or a test_data_set folder. */
  where: string;
  /** Expected outputs stored with the data (onnx-testdata), by output name. */
  expected?: Record<string, TensorValue>;
}

export interface Dataset {
  name: string;
  format: DataFormat;
  /** Resolved path of the source. */
  path: string;
  rows: DataRow[];
  /** Batch size for running a model on the rows. */
  batch: number;
  /** Whether every row has a label. */
  labelled: boolean;
}

export interface LoadDataOptions {
  /** Folder that relative paths are resolved against (default: the plan's folder from the span, else the cwd). */
  baseDir?: string;
  /** Names of the model's inputs: fields that match none of them are reported, and onnx-testdata tensors without names are matched by position. */
  modelInputs?: readonly string[];
  /** Names of the model's outputs, to match unnamed expected outputs of onnx-testdata by position. */
  modelOutputs?: readonly string[];
}

/** The names of a model's real inputs (graph inputs that are not initializers), in order. */
export function modelInputNames(m: Model): string[] {
  return m.graph.inputs.filter((v) => !v.isInitializer()).map((v) => v.name);
}

export function modelOutputNames(m: Model): string[] {
  return m.graph.outputs.map((v) => v.name);
}

const TOKEN_INPUTS = ['input_ids', 'attention_mask', 'token_type_ids'];
const DEFAULT_BATCH = 32;

class DataErrors {
  constructor(
    readonly decl: DataDecl,
    readonly file: string,
  ) {}
  loc(): Location {
    return { kind: 'file', file: this.file };
  }
  notes(extra: string[] = []): string[] {
    const s = this.decl.span;
    return s ? [...extra, `data source '${this.decl.name}' is declared at ${s.file}:${s.line}:${s.col}`] : extra;
  }
  make(code: string, message: string, notes: string[] = []): Diagnostic {
    return diag(code, 'error', message, this.loc(), this.notes(notes));
  }
  fail(code: string, message: string, notes: string[] = []): never {
    throw new AxcError(this.make(code, message, notes));
  }
}

function resolveFrom(decl: DataDecl, p: string, opts: LoadDataOptions): string {
  if (path.isAbsolute(p)) return p;
  const base = opts.baseDir ?? (decl.span ? path.dirname(decl.span.file) : process.cwd());
  return path.resolve(base, p);
}

/** Load a declared data source. */
export async function loadDataset(decl: DataDecl, opts: LoadDataOptions = {}): Promise<Dataset> {
  const file = resolveFrom(decl, decl.path, opts);
  const errs: DataErrors = new DataErrors(decl, file);
  if (!fs.existsSync(file)) {
    const loc: Location = decl.span ? { kind: 'plan', ...decl.span } : { kind: 'file', file };
    throw new AxcError(
      diag(
        'AX5001',
        'error',
        `data source '${decl.name}': file not found: ${file}`,
        loc,
        decl.span ? [`paths in a plan are relative to the plan's folder`] : undefined,
      ),
    );
  }
  if (decl.batch !== undefined && (!Number.isInteger(decl.batch) || decl.batch < 1))
    errs.fail('AX5013', `data source '${decl.name}': batch must be a positive whole number, got ${decl.batch}`);
  if (decl.maxLength !== undefined && (!Number.isInteger(decl.maxLength) || decl.maxLength < 2))
    errs.fail(
      'AX5013',
      `data source '${decl.name}': max-length must be a whole number of at least 2, got ${decl.maxLength}`,
    );
  let rows: DataRow[];
  switch (decl.format) {
    case 'jsonl':
      rows = readTokenJsonl(decl, file, errs, opts);
      break;
    case 'tsv':
    case 'text-jsonl':
      rows = readText(decl, file, errs, opts);
      break;
    case 'onnx-testdata':
      rows = readTestData(decl, file, errs, opts);
      break;
    default:
      errs.fail('AX5014', `data source '${decl.name}': unknown format '${String(decl.format)}'`);
  }
  rows = selectRows(rows, decl);
  if (rows.length === 0)
    errs.fail(
      'AX5010',
      `data source '${decl.name}' has no rows${decl.split || decl.offset || decl.limit !== undefined ? ' after split/offset/limit' : ''}`,
    );
  return {
    name: decl.name,
    format: decl.format,
    path: file,
    rows,
    batch: decl.batch ?? DEFAULT_BATCH,
    labelled: rows.every((r) => r.label !== undefined),
  };
}

/** split (by `idx` when every row has one, else by position), then offset, then limit. */
function selectRows(rows: DataRow[], decl: DataDecl): DataRow[] {
  let out = rows;
  if (decl.split) {
    const byIdx = rows.every((r) => r.idx !== undefined);
    const want = decl.split === 'even' ? 0 : 1;
    out = out.filter((r, i) => Math.abs(byIdx ? r.idx! : i) % 2 === want);
  }
  const offset = decl.offset ?? 0;
  const end = decl.limit !== undefined ? offset + decl.limit : undefined;
  return out.slice(offset, end);
}

/** Truncate to maxLength keeping the last token ([SEP]), as a tokenizer truncating a single sequence does. */
function truncateSeq(a: BigInt64Array, maxLength: number | undefined): BigInt64Array {
  if (maxLength === undefined || a.length <= maxLength) return a;
  const out = new BigInt64Array(maxLength);
  out.set(a.subarray(0, maxLength - 1));
  out[maxLength - 1] = a[a.length - 1]!;
  return out;
}

function readLines(file: string, errs: DataErrors): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    errs.fail('AX5001', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text.split(/\r?\n/);
}

function parseJsonLine(line: string, n: number, file: string, errs: DataErrors): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    errs.fail('AX5002', `line ${n}: invalid JSON: ${(e as Error).message}`, [`in ${file}`]);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    errs.fail('AX5002', `line ${n}: expected a JSON object, got ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}`);
  return v as Record<string, unknown>;
}

function parseLabel(v: unknown, field: string, n: number, errs: DataErrors): number {
  const num = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof num !== 'number' || !Number.isInteger(num))
    errs.fail('AX5004', `line ${n}: label field '${field}' must be an integer, got ${JSON.stringify(v)}`);
  return num;
}

function parseIdx(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) ? v : undefined;
}

function readTokenJsonl(decl: DataDecl, file: string, errs: DataErrors, opts: LoadDataOptions): DataRow[] {
  const lines = readLines(file, errs);
  const rows: DataRow[] = [];
  const known = opts.modelInputs;
  const base = path.basename(file);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const n = i + 1;
    const obj = parseJsonLine(line, n, file, errs);
    const inputs: Record<string, BigInt64Array> = {};
    for (const [k, v] of Object.entries(obj)) {
      // inputs are arrays of numbers; other fields (idx, label, text, word lists) are not fed to the model
      if (!Array.isArray(v) || (v.length > 0 && !v.some((x) => typeof x === 'number'))) continue;
      if (known && !known.includes(k)) {
        const dym = didYouMean(k, known);
        errs.fail(
          'AX5005',
          `line ${n}: field '${k}' does not match any input of the model (inputs: ${known.join(', ')})`,
          dym ? [`did you mean '${dym}'?`] : [],
        );
      }
      if (!known && !TOKEN_INPUTS.includes(k)) continue;
      inputs[k] = toIds(v, k, n, errs);
    }
    if (!inputs.input_ids)
      errs.fail(
        'AX5003',
        `line ${n}: missing field 'input_ids' (an array of token ids)`,
        Object.keys(obj).length ? [`the row has fields: ${Object.keys(obj).join(', ')}`] : [],
      );
    const len = inputs.input_ids.length;
    for (const [k, a] of Object.entries(inputs))
      if (a.length !== len)
        errs.fail('AX5012', `line ${n}: field '${k}' has ${a.length} entries but 'input_ids' has ${len}`);
    for (const k of Object.keys(inputs)) inputs[k] = truncateSeq(inputs[k]!, decl.maxLength);
    const row: DataRow = { inputs, where: `${base}:${n}` };
    const labelField = decl.label ?? 'label';
    if (labelField in obj) row.label = parseLabel(obj[labelField], labelField, n, errs);
    else if (decl.label) errs.fail('AX5003', `line ${n}: missing label field '${decl.label}'`);
    const idx = parseIdx(obj.idx);
    if (idx !== undefined) row.idx = idx;
    rows.push(row);
  }
  return rows;
}

function toIds(v: unknown[], field: string, n: number, errs: DataErrors): BigInt64Array {
  const out = new BigInt64Array(v.length);
  for (let j = 0; j < v.length; j++) {
    const x = v[j];
    if (typeof x !== 'number' || !Number.isInteger(x))
      errs.fail('AX5006', `line ${n}: field '${field}' entry ${j} is ${JSON.stringify(x)}, not an integer token id`);
    out[j] = BigInt(x);
  }
  return out;
}

// --- text sources ------------------------------------------------------------------------------------------------

export interface TextEncoder {
  /** Token ids (with special tokens) and token type ids; truncated to maxLength when given. */
  encode(text: string, pair?: string, maxLength?: number): { ids: number[]; typeIds: number[] };
}

const tokenizerCache = new Map<string, TextEncoder>();

/**
 * Load a tokenizer.json (and the tokenizer_config.json next to it, when present). Truncation and padding configured in
 * the file are switched off: sequences are padded per batch, and truncated only when a max length is asked for.
 */
export function loadTokenizer(file: string, where?: { decl: DataDecl; dataFile: string }): TextEncoder {
  const cached = tokenizerCache.get(file);
  if (cached) return cached;
  const fail = (code: string, msg: string): never => {
    if (where) new DataErrors(where.decl, where.dataFile).fail(code, msg);
    throw new AxcError(diag(code, 'error', msg, { kind: 'file', file }));
  };
  if (!fs.existsSync(file)) fail('AX5008', `tokenizer file not found: ${file}`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    return fail('AX5008', `tokenizer ${file} is not valid JSON: ${(e as Error).message}`);
  }
  json = { ...json, truncation: null, padding: null };
  const cfgFile = path.join(path.dirname(file), 'tokenizer_config.json');
  let cfg: Record<string, unknown> = {};
  if (fs.existsSync(cfgFile)) {
    try {
      cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      fail('AX5008', `${cfgFile} is not valid JSON: ${(e as Error).message}`);
    }
  }
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json, cfg);
  } catch (e) {
    return fail('AX5008', `cannot load tokenizer ${file}: ${(e as Error).message}`);
  }
  const vocab = tok.get_vocab(true);
  const unk = tok.token_to_id(String(cfg.unk_token ?? '[UNK]'));
  const post = tok.post_processor;
  const toId = (t: string): number => {
    const id = vocab.get(t) ?? unk;
    if (id === undefined) throw new AxcError(diag('AX5008', 'error', `tokenizer ${file}: token '${t}' has no id`));
    return id;
  };
  const enc: TextEncoder = {
    encode(text, pair, maxLength) {
      let a = tok.tokenize(text, { add_special_tokens: false });
      let b = pair !== undefined ? tok.tokenize(pair, { add_special_tokens: false }) : null;
      if (maxLength !== undefined && post) {
        const specials = post([], b ? [] : null, true).tokens.length;
        const budget = Math.max(0, maxLength - specials);
        // longest-first truncation, as the Rust tokenizers library does
        a = a.slice();
        b = b ? b.slice() : null;
        while (a.length + (b?.length ?? 0) > budget) {
          if (b && b.length > a.length) b.pop();
          else a.pop();
        }
      }
      let tokens: string[];
      let typeIds: number[];
      if (post) {
        const r = post(a, b, true);
        tokens = r.tokens;
        typeIds = r.token_type_ids ?? new Array<number>(tokens.length).fill(0);
      } else {
        tokens = [...a, ...(b ?? [])];
        typeIds = [...new Array<number>(a.length).fill(0), ...new Array<number>(b?.length ?? 0).fill(1)];
        if (maxLength !== undefined) {
          tokens = tokens.slice(0, maxLength);
          typeIds = typeIds.slice(0, maxLength);
        }
      }
      return { ids: tokens.map(toId), typeIds };
    },
  };
  tokenizerCache.set(file, enc);
  return enc;
}

/** Split a TSV line (no quoting, as GLUE files are written). */
function splitTsv(line: string): string[] {
  return line.split('\t');
}

function readText(decl: DataDecl, file: string, errs: DataErrors, opts: LoadDataOptions): DataRow[] {
  if (!decl.tokenizer)
    errs.fail(
      'AX5008',
      `data source '${decl.name}' (${decl.format}) needs a tokenizer: give tokenizer = "tokenizer.json"`,
    );
  const tokFile = resolveFrom(decl, decl.tokenizer, opts);
  const enc = loadTokenizer(tokFile, { decl, dataFile: file });
  const textField = decl.text ?? (decl.format === 'tsv' ? 'sentence' : 'text');
  const labelField = decl.label ?? 'label';
  const base = path.basename(file);
  const lines = readLines(file, errs);
  const rows: DataRow[] = [];
  const push = (n: number, text: string, pair: string | undefined, label: unknown, idx: unknown, hasLabel: boolean) => {
    const e = enc.encode(text, pair, decl.maxLength);
    const L = e.ids.length;
    const row: DataRow = {
      inputs: {
        input_ids: BigInt64Array.from(e.ids, (x) => BigInt(x)),
        attention_mask: new BigInt64Array(L).fill(1n),
        token_type_ids: BigInt64Array.from(e.typeIds, (x) => BigInt(x)),
      },
      where: `${base}:${n}`,
    };
    if (hasLabel) row.label = parseLabel(label, labelField, n, errs);
    const i = typeof idx === 'string' && /^\d+$/.test(idx) ? Number(idx) : parseIdx(idx);
    if (i !== undefined) row.idx = i;
    rows.push(row);
  };
  if (decl.format === 'tsv') {
    const headerAt = lines.findIndex((l) => l.trim() !== '');
    if (headerAt < 0) return [];
    const header = splitTsv(lines[headerAt]!).map((h) => h.trim());
    const col = (name: string, required: boolean): number => {
      const c = header.indexOf(name);
      if (c < 0 && required) {
        const dym = didYouMean(name, header);
        errs.fail(
          'AX5003',
          `line ${headerAt + 1}: the header has no column '${name}' (columns: ${header.join(', ')})`,
          dym ? [`did you mean '${dym}'?`] : [],
        );
      }
      return c;
    };
    const tc = col(textField, true);
    const pc = decl.textPair ? col(decl.textPair, true) : -1;
    const lc = col(labelField, decl.label !== undefined);
    const ic = header.indexOf('idx');
    for (let i = headerAt + 1; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.trim() === '') continue;
      const cells = splitTsv(line);
      if (cells.length !== header.length)
        errs.fail('AX5007', `line ${i + 1}: ${cells.length} columns, but the header has ${header.length}`);
      push(
        i + 1,
        cells[tc]!,
        pc >= 0 ? cells[pc] : undefined,
        lc >= 0 ? cells[lc]!.trim() : undefined,
        ic >= 0 ? cells[ic]!.trim() : undefined,
        lc >= 0,
      );
    }
  } else {
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.trim() === '') continue;
      const n = i + 1;
      const obj = parseJsonLine(line, n, file, errs);
      const text = obj[textField];
      if (typeof text !== 'string')
        errs.fail(
          'AX5003',
          text === undefined
            ? `line ${n}: missing text field '${textField}'`
            : `line ${n}: text field '${textField}' is not a string`,
          [`the row has fields: ${Object.keys(obj).join(', ')}`],
        );
      let pair: string | undefined;
      if (decl.textPair) {
        const p = obj[decl.textPair];
        if (typeof p !== 'string') errs.fail('AX5003', `line ${n}: missing text field '${decl.textPair}'`);
        pair = p;
      }
      const has = labelField in obj;
      if (!has && decl.label) errs.fail('AX5003', `line ${n}: missing label field '${decl.label}'`);
      push(n, text, pair, obj[labelField], obj.idx, has);
    }
  }
  return rows;
}

// --- onnx-testdata -----------------------------------------------------------------------------------------------

const ORT_TYPES: Partial<Record<DataType, ort.Tensor.Type>> = {
  [DataType.FLOAT]: 'float32',
  [DataType.DOUBLE]: 'float64',
  [DataType.FLOAT16]: 'float16',
  [DataType.INT64]: 'int64',
  [DataType.INT32]: 'int32',
  [DataType.INT16]: 'int16',
  [DataType.INT8]: 'int8',
  [DataType.UINT64]: 'uint64',
  [DataType.UINT32]: 'uint32',
  [DataType.UINT16]: 'uint16',
  [DataType.UINT8]: 'uint8',
  [DataType.BOOL]: 'bool',
};

const IR_TYPES = new Map<string, DataType>(Object.entries(ORT_TYPES).map(([k, v]) => [v, Number(k) as DataType]));

/** An IR tensor as an onnxruntime-ready value (copies the bytes into an aligned array). */
export function tensorToValue(t: Tensor): TensorValue {
  const type = ORT_TYPES[t.dataType];
  if (!type) throw new Error(`tensor '${t.name}': data type ${t.dataType} cannot be fed to onnxruntime`);
  const b = t.bytes();
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  const buf = copy.buffer;
  const n = t.numElements;
  let data: ort.Tensor.DataType;
  switch (type) {
    case 'float32':
      data = new Float32Array(buf, 0, n);
      break;
    case 'float64':
      data = new Float64Array(buf, 0, n);
      break;
    case 'float16':
      data = new Uint16Array(buf, 0, n);
      break;
    case 'int64':
      data = new BigInt64Array(buf, 0, n);
      break;
    case 'uint64':
      data = new BigUint64Array(buf, 0, n);
      break;
    case 'int32':
      data = new Int32Array(buf, 0, n);
      break;
    case 'uint32':
      data = new Uint32Array(buf, 0, n);
      break;
    case 'int16':
      data = new Int16Array(buf, 0, n);
      break;
    case 'uint16':
      data = new Uint16Array(buf, 0, n);
      break;
    case 'int8':
      data = new Int8Array(buf, 0, n);
      break;
    case 'uint8':
    case 'bool':
      data = new Uint8Array(buf, 0, n);
      break;
    default:
      throw new Error(`unsupported tensor type ${type}`);
  }
  return { type, dims: [...t.dims], data };
}

/** An onnxruntime value as an IR tensor with the given name. */
export function valueToTensor(name: string, v: TensorValue): Tensor {
  const dt = IR_TYPES.get(v.type);
  if (dt === undefined) throw new Error(`output '${name}': onnxruntime type ${v.type} cannot be stored`);
  const d = v.data as ArrayBufferView;
  const bytes = new Uint8Array(d.byteLength);
  bytes.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  return Tensor.fromBytes(name, dt, [...v.dims], bytes);
}

/** Sort `prefix_N.pb` names by N. */
function numbered(files: string[], prefix: string): string[] {
  const re = new RegExp(`^${prefix}_(\\d+)\\.pb$`);
  return files.filter((f) => re.test(f)).sort((a, b) => Number(re.exec(a)![1]) - Number(re.exec(b)![1]));
}

/** The test_data_set_N folders of a model-zoo folder, or the folder itself when it is one. */
export function testDataSets(dir: string): string[] {
  const entries = fs.readdirSync(dir);
  if (entries.some((f) => /^input_\d+\.pb$/.test(f))) return [dir];
  const re = /^test_data_set_(\d+)$/;
  return entries
    .filter((f) => re.test(f) && fs.statSync(path.join(dir, f)).isDirectory())
    .sort((a, b) => Number(re.exec(a)![1]) - Number(re.exec(b)![1]))
    .map((f) => path.join(dir, f));
}

function readPb(file: string, errs: DataErrors): Tensor {
  try {
    return decodeTensorProto(fs.readFileSync(file));
  } catch (e) {
    if (e instanceof DecodeError)
      errs.fail('AX5009', `${file}: not a valid TensorProto: ${e.message} at byte ${e.offset}`);
    throw e;
  }
}

function readTestData(decl: DataDecl, dir: string, errs: DataErrors, opts: LoadDataOptions): DataRow[] {
  if (!fs.statSync(dir).isDirectory())
    errs.fail('AX5009', `data source '${decl.name}': onnx-testdata needs a folder, and ${dir} is a file`);
  const sets = testDataSets(dir);
  if (sets.length === 0) errs.fail('AX5009', `${dir} holds no test_data_set_N folders and no input_N.pb files`);
  const rows: DataRow[] = [];
  for (const set of sets) {
    const files = fs.readdirSync(set);
    const name = (list: Tensor[], names: readonly string[] | undefined, what: string): Record<string, TensorValue> => {
      const out: Record<string, TensorValue> = {};
      list.forEach((t, k) => {
        let n = t.name;
        if (!n || (names && !names.includes(n))) {
          if (names && k < names.length && (!n || list.every((x) => !names.includes(x.name)))) n = names[k]!;
          else if (!n)
            errs.fail('AX5009', `${set}: ${what}_${k}.pb has no tensor name and the model's ${what}s are not known`);
          else if (names)
            errs.fail(
              'AX5005',
              `${set}: ${what}_${k}.pb is named '${n}', which matches no ${what} of the model (${what}s: ${names.join(', ')})`,
            );
        }
        try {
          out[n] = tensorToValue(t);
        } catch (e) {
          errs.fail('AX5009', `${set}: ${what}_${k}.pb: ${(e as Error).message}`);
        }
      });
      return out;
    };
    const inputs = numbered(files, 'input').map((f) => readPb(path.join(set, f), errs));
    if (inputs.length === 0) errs.fail('AX5009', `${set} holds no input_N.pb files`);
    const outputs = numbered(files, 'output').map((f) => readPb(path.join(set, f), errs));
    const row: DataRow = { inputs: name(inputs, opts.modelInputs, 'input'), where: set };
    if (outputs.length) row.expected = name(outputs, opts.modelOutputs, 'output');
    rows.push(row);
  }
  return rows;
}

// --- batching ----------------------------------------------------------------------------------------------------

export interface Batch {
  feeds: Record<string, ort.Tensor>;
  /** Indices of the dataset rows in this batch, in order. */
  rows: number[];
}

/** The value of a token input a row does not carry: attention_mask → ones, token_type_ids → zeros. */
function defaultInput(name: string, len: number): BigInt64Array | undefined {
  if (name === 'attention_mask') return new BigInt64Array(len).fill(1n);
  if (name === 'token_type_ids') return new BigInt64Array(len);
  if (name === 'position_ids') return BigInt64Array.from({ length: len }, (_, i) => BigInt(i));
  return undefined;
}

/**
 * Group rows into onnxruntime feeds for a model with `inputNames`. Token rows are padded to the longest row of each
 * batch (ids 0, mask 0, type ids 0). Tensor rows (onnx-testdata) are fed one per batch, as stored.
 */
export function makeBatches(data: Dataset, inputNames: readonly string[], batchSize = data.batch): Batch[] {
  const out: Batch[] = [];
  let pending: number[] = [];
  const flush = () => {
    if (pending.length) out.push(tokenBatch(data, pending, inputNames));
    pending = [];
  };
  data.rows.forEach((row, i) => {
    const first = Object.values(row.inputs)[0];
    if (first !== undefined && !(first instanceof BigInt64Array)) {
      flush();
      const feeds: Record<string, ort.Tensor> = {};
      for (const n of inputNames) {
        const v = row.inputs[n];
        if (!v || v instanceof BigInt64Array) throw inputMismatch(data, row, n, inputNames);
        feeds[n] = new ort.Tensor(v.type, v.data, v.dims);
      }
      out.push({ feeds, rows: [i] });
      return;
    }
    pending.push(i);
    if (pending.length >= batchSize) flush();
  });
  flush();
  return out;
}

function inputMismatch(data: Dataset, row: DataRow, input: string, inputNames: readonly string[]): AxcError {
  return new AxcError(
    diag(
      'AX5005',
      'error',
      `data source '${data.name}' (${row.where}) has no value for model input '${input}' (inputs: ${inputNames.join(', ')}; the row has: ${Object.keys(row.inputs).join(', ')})`,
      { kind: 'file', file: data.path },
    ),
  );
}

function tokenBatch(data: Dataset, idxs: number[], inputNames: readonly string[]): Batch {
  const rows = idxs.map((i) => data.rows[i]!);
  const lens = rows.map((r) => ((r.inputs.input_ids ?? Object.values(r.inputs)[0]!) as BigInt64Array).length);
  const S = Math.max(1, ...lens);
  const B = rows.length;
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of inputNames) {
    const buf = new BigInt64Array(B * S);
    rows.forEach((r, b) => {
      const v = r.inputs[name] ?? defaultInput(name, lens[b]!);
      if (!v || !(v instanceof BigInt64Array)) throw inputMismatch(data, r, name, inputNames);
      buf.set(v, b * S);
    });
    feeds[name] = new ort.Tensor('int64', buf, [B, S]);
  }
  return { feeds, rows: idxs };
}
