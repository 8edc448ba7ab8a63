/**
 * `npm run bench`: every benchmark, figures printed as measured in this run.
 * Models: AXC_SHARED (default ../shared next to the repo) when present, else the bundled golden model.
 * Sections can be chosen: `npm run bench -- codec`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchCodec } from './codec.js';
import { benchPipeline } from './pipeline.js';
import { benchPrune } from './prune.js';
import { benchPruneCv } from './prune-cv.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const shared = process.env.AXC_SHARED ?? path.resolve(root, '../shared');
const sections = process.argv.slice(2);
const want = (s: string) => sections.length === 0 || sections.includes(s);

function realModels(): string[] {
  const list = [
    'models/sst2-bert-tiny/model.onnx',
    'models/sst2-bert-mini/model.onnx',
    'models/sst2-bert-mini/variants/opset14.onnx',
    'models/sst2-bert-mini/variants/ortfused.onnx',
  ]
    .map((p) => path.join(shared, p))
    .filter((p) => fs.existsSync(p));
  return list.length ? list : [path.join(root, 'golden/models/sst2-bert-tiny/model.onnx')];
}

export const benchCacheDir = path.join(root, 'bench/.cache');

async function main(): Promise<void> {
  if (want('codec')) {
    console.log('== reader/writer (issue 2) ==');
    const models = realModels();
    const extra = await generatedBertBase();
    for (const l of benchCodec(extra ? [...models, extra] : models)) console.log(l);
  }
  if (want('pipeline')) {
    console.log('== pipeline: original vs ORT-tools-equivalent vs axc (issue 7) ==');
    await benchPipeline({
      shared,
      root,
      cacheDir: benchCacheDir,
      generateBase: async () => void (await generatedBertBase()),
      // `npm run bench -- pipeline no-topk` skips the top-k attention timings
      topk: !sections.includes('no-topk'),
    });
  }
  if (want('prune')) {
    console.log('== pruning: significance, greedy search, budget vs weight-norm (h6) ==');
    await benchPrune({ shared });
  }
  if (sections.includes('prune-cv')) {
    console.log('== pruning criteria, 2-fold cross-validated on the SST-2 dev set (issue 4) ==');
    await benchPruneCv({ shared, root, cacheDir: benchCacheDir });
  }
}

/** The BERT-base-sized generated model (12 layers, hidden 768), written once into bench/.cache. */
async function generatedBertBase(): Promise<string | undefined> {
  try {
    const genPath = '../test/gen/bert.js'; // compiled with the full tsconfig; absent in a build-only tree
    const gen = (await import(genPath)) as unknown as {
      writeGeneratedModel?: (file: string, cfg: Record<string, unknown>) => void | Promise<void>;
    };
    if (!gen.writeGeneratedModel) return undefined;
    fs.mkdirSync(benchCacheDir, { recursive: true });
    const file = path.join(benchCacheDir, 'bert-base-generated.onnx');
    if (!fs.existsSync(file)) await gen.writeGeneratedModel(file, { layers: 12, hidden: 768, heads: 12, ffn: 3072 });
    return file;
  } catch (e) {
    console.log(`(generated BERT-base model unavailable: ${(e as Error).message})`);
    return undefined;
  }
}

await main();
