import * as fs from 'node:fs';
import type { Command } from 'commander';
import { checkModel, modelStats, modelText, typeText, dtypeName, type Model } from '../../ir/index.js';
import { loadModel } from '../../onnx/index.js';
import { action, formatBytes, formatCount, table } from '../util.js';

/** Hooks other modules add to `axc inspect` (e.g. `--layers` from the layer analysis). */
export interface InspectExtension {
  flag: string;
  description: string;
  /** Returns [text, json] for the model. */
  run(model: Model, file: string): { text: string; json: unknown };
}
export const inspectExtensions: InspectExtension[] = [];

export function inspectSummary(model: Model, file: string) {
  const st = modelStats(model);
  const size = fs.existsSync(file) ? fs.statSync(file).size : undefined;
  const io = (vs: typeof model.graph.inputs) =>
    vs.filter((v) => !v.constValue).map((v) => ({ name: v.name, type: typeText(v.type) }));
  return {
    file,
    bytes: size,
    irVersion: model.irVersion,
    opsets: Object.fromEntries([...model.opsetImports].map(([d, v]) => [d || 'ai.onnx', v])),
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    inputs: io(model.graph.inputs),
    outputs: model.graph.outputs.map((v) => ({ name: v.name, type: typeText(v.type) })),
    nodes: st.nodes,
    ops: st.ops,
    parameters: st.parameters,
    parametersByType: st.paramsByType,
    initializerBytesByType: st.bytesByType,
    largestTensors: st.largest,
    diagnostics: checkModel(model).map((d) => ({ code: d.code, severity: d.severity, message: d.message })),
  };
}

export function register(program: Command): void {
  const cmd = program
    .command('inspect')
    .description('describe a model: inputs, outputs, opsets, op histogram, parameters, largest tensors')
    .argument('<model>', 'ONNX model file')
    .option('--json', 'print JSON for machines')
    .option('--graph', 'print a deterministic text form of the whole graph (small tensors inline, large ones by hash)');
  for (const ext of inspectExtensions) cmd.option(ext.flag, ext.description);
  cmd.action(
    action((file: string, opts: Record<string, boolean>) => {
      const model = loadModel(file);
      if (opts.graph) {
        process.stdout.write(modelText(model));
        return;
      }
      for (const ext of inspectExtensions) {
        const key = ext.flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
        if (opts[key]) {
          const r = ext.run(model, file);
          process.stdout.write(opts.json ? JSON.stringify(r.json, null, 2) + '\n' : r.text + '\n');
          return;
        }
      }
      const s = inspectSummary(model, file);
      if (opts.json) {
        process.stdout.write(JSON.stringify(s, null, 2) + '\n');
        return;
      }
      const out: string[] = [];
      out.push(`${file}${s.bytes !== undefined ? ` (${formatBytes(s.bytes)})` : ''}`);
      out.push(
        `  IR version ${s.irVersion}, opsets ${Object.entries(s.opsets)
          .map(([d, v]) => `${d} ${v}`)
          .join(', ')}${s.producer ? `, producer ${s.producer}` : ''}`,
      );
      out.push('', 'inputs:');
      for (const v of s.inputs) out.push(`  ${v.name}: ${v.type}`);
      out.push('outputs:');
      for (const v of s.outputs) out.push(`  ${v.name}: ${v.type}`);
      out.push('', `${s.nodes} nodes:`);
      out.push(
        table(
          Object.entries(s.ops).map(([op, n]) => ['  ' + op, String(n)]),
          ['l', 'r'],
        ),
      );
      out.push('', `parameters: ${formatCount(s.parameters)} (${s.parameters})`);
      out.push(
        table(
          Object.entries(s.initializerBytesByType).map(([dt, b]) => [
            '  ' + dt,
            formatCount(s.parametersByType[dt] ?? 0),
            formatBytes(b),
          ]),
          ['l', 'r', 'r'],
        ),
      );
      out.push('', 'largest tensors:');
      out.push(
        table(
          s.largestTensors.map((t) => ['  ' + t.name, `${t.dtype}[${t.dims.join(',')}]`, formatBytes(t.bytes)]),
          ['l', 'l', 'r'],
        ),
      );
      const bad = s.diagnostics.filter((d) => d.severity === 'error');
      if (bad.length) {
        out.push('', `${bad.length} IR problem(s):`);
        for (const d of bad.slice(0, 20)) out.push(`  ${d.code}: ${d.message}`);
      }
      process.stdout.write(out.join('\n') + '\n');
      void dtypeName;
    }),
  );
}
