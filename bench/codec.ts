/**
 * Reader/writer benchmark: read + write each model in a fresh process (wall time, throughput, peak RSS as a
 * multiple of the file size). Targets (issue 2): more than 1 GB/s, peak memory under 1.5x the file size.
 * Reference: Python onnx 1.23 load+save of a 438 MB BERT-base took 3.8 s and 1.3 GB peak (115 MB/s, 2.9x).
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const worker = path.join(here, 'codec-worker.js');

export interface CodecFigures {
  file: string;
  bytes: number;
  readMs: number;
  writeMs: number;
  peakRss: number;
  identical: boolean;
}

function runWorker(args: string[]): CodecFigures {
  const out = execFileSync(process.execPath, [worker, ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!) as CodecFigures;
}

export function benchCodec(models: string[], repeats = 5): string[] {
  const lines: string[] = [];
  const baseline = runWorker(['--baseline']).peakRss;
  lines.push(`node + axc baseline RSS: ${(baseline / 1e6).toFixed(0)} MB`);
  lines.push(
    'model                                   size MB   read ms  write ms   total GB/s   peak RSS MB   peak/size  (peak-baseline)/size  identical',
  );
  for (const m of models) {
    const runs: CodecFigures[] = [];
    for (let i = 0; i < repeats; i++)
      runs.push(runWorker([m, path.join(os.tmpdir(), `axc-bench-${process.pid}.onnx`)]));
    runs.sort((a, b) => a.readMs + a.writeMs - (b.readMs + b.writeMs));
    const r = runs[Math.floor(runs.length / 2)]!;
    const total = r.readMs + r.writeMs;
    lines.push(
      [
        path.basename(path.dirname(m)) + '/' + path.basename(m),
        (r.bytes / 1e6).toFixed(1),
        r.readMs.toFixed(0),
        r.writeMs.toFixed(0),
        (r.bytes / 1e9 / (total / 1000)).toFixed(2),
        (r.peakRss / 1e6).toFixed(0),
        (r.peakRss / r.bytes).toFixed(2) + 'x',
        ((r.peakRss - baseline) / r.bytes).toFixed(2) + 'x',
        String(runs.every((x) => x.identical)),
      ]
        .map((c, i) => (i === 0 ? c.padEnd(38) : c.padStart(i === 8 ? 10 : 10)))
        .join(' '),
    );
  }
  return lines;
}
