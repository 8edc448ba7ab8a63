/**
 * One measurement in a fresh process: read a model and write it back, timing each phase and reporting peak RSS.
 * Usage: node dist/bench/codec-worker.js MODEL OUT  → prints one JSON line.
 */
import * as fs from 'node:fs';
import { loadModel, saveModel } from '../src/onnx/index.js';

/** Peak resident memory of this process (VmHWM; unlike getrusage's maxRSS it is not inherited from the parent). */
function peakRssBytes(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

const [file, out] = process.argv.slice(2) as [string, string];
if (file === '--baseline') {
  process.stdout.write(JSON.stringify({ peakRss: peakRssBytes() }) + '\n');
  process.exit(0);
}
const bytes = fs.statSync(file).size;
const t0 = performance.now();
const model = loadModel(file);
const t1 = performance.now();
saveModel(model, out);
const t2 = performance.now();
const peakRss = peakRssBytes();
const same = Buffer.compare(fs.readFileSync(file), fs.readFileSync(out)) === 0;
fs.unlinkSync(out);
process.stdout.write(
  JSON.stringify({
    file,
    bytes,
    readMs: t1 - t0,
    writeMs: t2 - t1,
    peakRss,
    identical: same,
  }) + '\n',
);
