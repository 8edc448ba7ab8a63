import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const GOLDEN = path.join(ROOT, 'golden');
export const TINY_MODEL = path.join(GOLDEN, 'models/sst2-bert-tiny/model.onnx');
export const DEV_JSONL = path.join(GOLDEN, 'sst2/dev.jsonl');
export const DEV_TSV = path.join(GOLDEN, 'sst2/dev.tsv');
export const TOKENIZER = path.join(GOLDEN, 'tokenizer/tokenizer.json');
