import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import {
  emitInt8MatMul,
  emitMatMulNBits,
  quantizeInt8,
  quantizeNBits,
  quantWeightValues,
  weightKN,
} from '../../passes/lib/quant.js';
import { diffModels, layerViews } from '../../src/diff/index.js';
import { Builder, type Model } from '../../src/ir/index.js';
import { serializeModel } from '../../src/onnx/index.js';
import { buildBert, smallConfig } from '../gen/bert.js';
import { runModel } from '../support/ort.js';
import { removeHeads } from './edit.js';

const gen4 = () => buildBert(smallConfig({ layers: 2, heads: 4 }));

type Form =
  | {
      kind: 'int8';
      form: 'matmul-integer' | 'dynamic-quantize-matmul' | 'matmul-integer-to-float' | 'qdq';
      perChannel: boolean;
    }
  | { kind: 'nbits'; block: number; symmetric: boolean };

/** Replace every projection of one layer by a quantized form written with the quantize pass's emitters. */
function quantizeLayerAs(model: Model, layer: number, f: Form): void {
  const l = layerViews(model)[layer]!;
  model.opsetImports.set('com.microsoft', 1);
  for (const p of [l.attention!.q, l.attention!.k, l.attention!.v, l.attention!.o!, l.ffn!.in, l.ffn!.out]) {
    const mm = p.node;
    const w = mm.input(1)!;
    const { w_KN, K, N } = weightKN(w.constValue!, false);
    const b = new Builder(model.graph, mm, 'quantize');
    const y =
      f.kind === 'int8'
        ? emitInt8MatMul(
            b,
            f.form,
            mm.input(0)!,
            quantWeightValues(b, mm.name, quantizeInt8(w_KN, K, N, f.perChannel, true)),
            mm.name,
            null,
          )
        : emitMatMulNBits(b, mm.input(0)!, quantizeNBits(w_KN, K, N, f.block, f.symmetric), mm.name, null);
    mm.output(0).replaceAllUsesWith(y);
    model.graph.remove(mm);
    if (w.uses().length === 0) model.graph.removeInitializer(w);
  }
}

function feeds(B = 2, S = 6): Record<string, ort.Tensor> {
  const ids = BigInt64Array.from({ length: B * S }, (_, i) => BigInt((i * 13 + 5) % 100));
  return {
    input_ids: new ort.Tensor('int64', ids, [B, S]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(B * S).fill(1n), [B, S]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(B * S), [B, S]),
  };
}

const CASES: [string, Form, string][] = [
  ['MatMulInteger per-channel', { kind: 'int8', form: 'matmul-integer', perChannel: true }, 'int8 per-channel'],
  ['MatMulInteger per-tensor', { kind: 'int8', form: 'matmul-integer', perChannel: false }, 'int8 per-tensor'],
  [
    'DynamicQuantizeMatMul per-channel',
    { kind: 'int8', form: 'dynamic-quantize-matmul', perChannel: true },
    'int8 per-channel',
  ],
  [
    'MatMulIntegerToFloat per-tensor',
    { kind: 'int8', form: 'matmul-integer-to-float', perChannel: false },
    'int8 per-tensor',
  ],
  ['QDQ per-channel', { kind: 'int8', form: 'qdq', perChannel: true }, 'int8 per-channel'],
  ['MatMulNBits int4 block 16 symmetric', { kind: 'nbits', block: 16, symmetric: true }, 'int4 block 16'],
  ['MatMulNBits int4 block 32 asymmetric', { kind: 'nbits', block: 32, symmetric: false }, 'int4 block 32'],
];

describe('precision read from each quantized form, heads still identified', () => {
  test.each(CASES)('%s', async (_, form, precision) => {
    const before = gen4();
    const after = gen4();
    removeHeads(after, 1, [1]); // prune first (heads 0, 2, 3 stay), then quantize the layer
    quantizeLayerAs(after, 1, form);
    // the quantized model runs and stays close to the pruned float model
    const pruned = gen4();
    removeHeads(pruned, 1, [1]);
    const ref = (await runModel(serializeModel(pruned), feeds())).logits!.data as Float32Array;
    const got = (await runModel(serializeModel(after), feeds())).logits!.data as Float32Array;
    ref.forEach((x, i) => expect(Math.abs(x - got[i]!)).toBeLessThan(form.kind === 'nbits' ? 0.2 : 0.05));
    const d = diffModels(before, after);
    expect(d.layers[0]!.changed).toBe(false);
    expect(d.layers[1]).toMatchObject({
      removedHeads: [1],
      headOrigin: [0, 2, 3],
      headMatch: 'approximate',
      before: { precision: 'float32', heads: 4 },
      after: { precision, heads: 3, headSize: 8, ffnSize: 64 },
    });
    expect(Object.values(d.layers[1]!.after!.matrices)).toEqual(Array(6).fill(precision));
    expect(d.nodes.added.every((n) => n.pass === 'quantize')).toBe(true);
  });
});
