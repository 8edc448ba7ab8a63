/**
 * Write a generated BERT-family model: `node dist/test/gen/cli.js out.onnx [--preset tiny|base] [--layers 4]
 * [--hidden 256] [--heads 4] [--ffn 1024] [--vocab N] [--family bert|distilbert|roberta] [--layer-norm fused|decomposed]
 * [--attention eager|sdpa] [--heads-in-reshape inferred|explicit] [--norm post|pre] [--activation erf-gelu|...]
 * [--ort-fused] [--ms-attention] [--seed N]`. BERT-base is about 440 MB: never commit it.
 */
import { BERT_BASE, BERT_TINY, writeGeneratedModel, type BertConfig } from './bert.js';

export function parseGenArgs(argv: readonly string[]): { out: string; config: BertConfig } {
  const args = [...argv];
  const out = args.shift();
  if (!out || out.startsWith('--')) throw new Error('usage: cli.js <out.onnx> [--preset tiny|base] [--layers N] ...');
  let config: BertConfig = { ...BERT_TINY };
  const nums: Record<string, keyof BertConfig> = {
    '--layers': 'layers',
    '--hidden': 'hidden',
    '--heads': 'heads',
    '--ffn': 'ffn',
    '--vocab': 'vocab',
    '--max-positions': 'maxPositions',
    '--labels': 'labels',
    '--seed': 'seed',
  };
  const strs: Record<string, keyof BertConfig> = {
    '--family': 'family',
    '--layer-norm': 'layerNorm',
    '--attention': 'attention',
    '--heads-in-reshape': 'headsInReshape',
    '--norm': 'norm',
    '--activation': 'activation',
  };
  while (args.length) {
    const a = args.shift()!;
    if (a === '--preset') {
      const p = args.shift();
      if (p !== 'tiny' && p !== 'base') throw new Error(`--preset: expected tiny or base, got '${p}'`);
      config = { ...config, ...(p === 'base' ? BERT_BASE : BERT_TINY) };
    } else if (a === '--ort-fused') config.ortFused = true;
    else if (a === '--ms-attention') config.msAttention = true;
    else if (nums[a]) {
      const v = Number(args.shift());
      if (!Number.isInteger(v) || v <= 0) throw new Error(`${a}: expected a positive integer`);
      (config as unknown as Record<string, number>)[nums[a]] = v;
    } else if (strs[a]) (config as unknown as Record<string, string>)[strs[a]] = args.shift() ?? '';
    else throw new Error(`unknown option '${a}'`);
  }
  return { out, config };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/').split('/').pop()!)) {
  try {
    const { out, config } = parseGenArgs(process.argv.slice(2));
    const m = writeGeneratedModel(out, config);
    process.stdout.write(`${out}: ${m.graph.nodeCount} nodes, ${config.layers} layers, hidden ${config.hidden}\n`);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
