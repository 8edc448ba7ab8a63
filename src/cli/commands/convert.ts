import * as fs from 'node:fs';
import type { Command } from 'commander';
import { loadModel, saveModel } from '../../onnx/index.js';
import { action, formatBytes } from '../util.js';

export function register(program: Command): void {
  program
    .command('convert')
    .description('read a model and write it back: checks the round trip, moves weights to or from external data')
    .argument('<input>', 'ONNX model file')
    .argument('<output>', 'output file (never the input)')
    .option('--external-data', 'write tensors of at least --threshold bytes to <output>.data')
    .option('--threshold <bytes>', 'minimum tensor size for external data', '1024')
    .option('--location <file>', 'external data file name, relative to the output')
    .action(
      action(
        (input: string, output: string, opts: { externalData?: boolean; threshold: string; location?: string }) => {
          const threshold = Number(opts.threshold);
          if (!Number.isInteger(threshold) || threshold < 0) {
            process.stderr.write(
              `error AX0002: --threshold must be a whole number of bytes, got '${opts.threshold}'\n`,
            );
            return 1;
          }
          const t0 = performance.now();
          const model = loadModel(input);
          const r = saveModel(model, output, {
            inputPath: input,
            externalData: opts.externalData,
            threshold,
            location: opts.location,
          });
          const ms = performance.now() - t0;
          const inBytes = fs.statSync(input).size;
          process.stdout.write(
            `wrote ${output}: ${formatBytes(r.bytes)}${r.externalBytes ? ` + ${formatBytes(r.externalBytes)} external data` : ''} (input ${formatBytes(inBytes)}) in ${ms.toFixed(0)} ms\n`,
          );
        },
      ),
    );
}
