/**
 * Fake passes with realistic metadata, in a local registry (never the global one, so the real passes can register
 * the same names). Their `run` is never called by the DSL tests.
 */
import { localRegistry } from '../../dsl/index.js';
import type { AnyPass } from '../../src/pass/index.js';

const noRun = () => {
  throw new Error('fake pass: not runnable');
};

export const FAKE_PASSES: AnyPass[] = [
  {
    name: 'significance',
    summary: 'measure how much each head, FFN group and block matters on labelled data',
    positional: 'elements',
    options: {
      elements: {
        type: 'names',
        summary: 'what to score',
        values: ['heads', 'ffn-groups', 'blocks'],
        default: [{ name: 'heads' }],
      },
      on: { type: 'data', summary: 'labelled data to measure on' },
      by: {
        type: 'enum',
        summary: 'criterion',
        values: ['loss', 'magnitude', 'activation', 'weight-norm'],
        default: 'loss',
      },
    },
    provides: ['significance'],
    run: noRun,
  },
  {
    name: 'prune',
    summary: 'remove heads, FFN groups or blocks',
    positional: 'elements',
    options: {
      elements: { type: 'names', summary: 'what to remove', values: ['heads', 'ffn-groups', 'blocks'], required: true },
      where: { type: 'condition', summary: 'which elements to remove', values: ['significance'] },
      keep: { type: 'bound', summary: 'keep at least this fraction', min: 0, max: 1 },
      mode: { type: 'enum', summary: 'search', values: ['threshold', 'greedy'], default: 'threshold' },
      tolerance: { type: 'number', summary: 'loss factor for finer search', min: 1, default: 1.1 },
      on: { type: 'data', summary: 'data for the greedy search' },
    },
    requires: ['significance'],
    run: noRun,
  },
  {
    name: 'topk-attention',
    summary: 'keep the k largest attention scores per query',
    options: {
      layers: { type: 'layers', summary: 'layers to change' },
      k: { type: 'integer', summary: 'scores kept per query', min: 1, required: true },
      renormalize: { type: 'boolean', summary: 'renormalize after top-k', default: true },
    },
    run: noRun,
  },
  {
    name: 'quantize',
    summary: 'quantize MatMul weights',
    positional: 'ops',
    options: {
      ops: { type: 'names', summary: 'ops to quantize', values: ['matmul', 'gemm'], default: [{ name: 'matmul' }] },
      mode: { type: 'enum', summary: 'precision', values: ['int8', 'int4', 'uint8'], default: 'int8' },
      granularity: { type: 'enum', summary: 'scales', values: ['per-tensor', 'per-channel'], default: 'per-tensor' },
      layers: { type: 'layers', summary: 'layers to quantize' },
      'except-ops': { type: 'names', summary: 'ops to leave in float' },
      'block-size': { type: 'integer', summary: 'int4 block size', min: 16, default: 32 },
      'keep-float': { type: 'number', summary: 'fraction of matrices kept in float', percent: true, min: 0, max: 1 },
    },
    run: noRun,
  },
  {
    name: 'fuse',
    summary: 'fuse subgraphs into single ops',
    positional: 'patterns',
    options: {
      patterns: {
        type: 'names',
        summary: 'what to fuse',
        values: ['attention', 'layernorm', 'gelu', 'skip-layernorm'],
        required: true,
      },
      target: { type: 'enum', summary: 'runtime', values: ['onnx', 'onnxruntime'], default: 'onnxruntime' },
    },
    run: noRun,
  },
  {
    name: 'ambiguous',
    summary: 'test pass whose two enum options share a value',
    options: {
      speed: { type: 'enum', summary: 'speed', values: ['fast', 'slow'] },
      mode: { type: 'enum', summary: 'mode', values: ['fast', 'exact'] },
    },
    run: noRun,
  },
  {
    name: 'cleanup',
    summary: 'remove dead code, identities and fold constants',
    options: {},
    run: noRun,
  },
];

export const fakeRegistry = localRegistry(FAKE_PASSES);
