import { describe, expect, it } from 'vitest';
import { AxcError, type Diagnostic } from '../../src/diagnostics/index.js';
import { Builder, DataType, Graph, Model, Tensor, Value } from '../../src/ir/index.js';
import { loadModel } from '../../src/onnx/index.js';
import { getPass, type PassContext } from '../../src/pass/index.js';
import '../../passes/index.js';
import type { LayerAnalysis } from '../../passes/analysis/layers.js';
import { inspectExtensions } from '../../src/cli/commands/inspect.js';
import '../../src/cli/commands/inspect-layers.js';
import { TINY_MODEL } from '../support/paths.js';
import { buildBert, smallConfig } from '../gen/bert.js';

function ctxFor(model: Model): PassContext & { diags: Diagnostic[] } {
  const diags: Diagnostic[] = [];
  return {
    model,
    facts: new Map(),
    data: { names: () => [], get: () => Promise.reject(new Error('no data')) },
    report: (d) => diags.push(d),
    progress: () => {},
    details: {},
    diags,
  };
}

describe('analyze-layers pass', () => {
  const pass = getPass('analyze-layers')!;

  it('is registered, provides the layers fact and changes nothing', async () => {
    expect(pass.provides).toEqual(['layers']);
    const ctx = ctxFor(loadModel(TINY_MODEL));
    const r = await pass.run(ctx, {});
    expect(r.changed).toBe(false);
    expect(r.stats).toEqual({ layers: 2, unrecognized: 0 });
    expect(r.summary).toBe('2 layers (2 heads of 64, FFN 512, post-norm, softmax attention)');
    const a = ctx.facts.get('layers') as LayerAnalysis;
    expect(a.layers.map((l) => l.heads)).toEqual([2, 2]);
    expect(ctx.diags).toEqual([]);
  });

  it('warns (AX3101) about what it did not recognize, naming the node', async () => {
    const m = buildBert(smallConfig());
    const sm = m.graph.nodes().filter((x) => x.opType === 'Softmax')[1]!;
    sm.setAttr('axis', 2);
    const ctx = ctxFor(m);
    const r = await pass.run(ctx, {});
    expect(r.stats!.layers).toBe(1);
    expect(ctx.diags[0]).toEqual({
      code: 'AX3101',
      severity: 'warning',
      message: 'not recognized as part of a transformer layer: Softmax is not over the last axis (keys)',
      location: { kind: 'node', node: sm.name, op: 'Softmax', graph: 'main_graph' },
    });
  });

  it('fails with AX3100 when no layer is recognized, saying why', async () => {
    const g = new Graph('g');
    const m = new Model(g);
    m.opsetImports.set('', 17);
    const x = g.addInput(new Value('x', { kind: 'tensor', elemType: DataType.FLOAT, shape: [1, 4] }));
    const b = new Builder(g);
    const w = b.initializer('w', Tensor.fromFloat32('w', [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]));
    const y = b.op1('MatMul', [x, w], { name: 'proj' });
    g.outputs.push(y);
    try {
      await pass.run(ctxFor(m), {});
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(AxcError);
      const d = (e as AxcError).diagnostics[0]!;
      expect(d.code).toBe('AX3100');
      expect(d.message).toBe(
        "no transformer layer was recognized in graph 'g' (1 nodes); passes that edit layers cannot run",
      );
      expect(d.notes).toEqual([
        "'proj' (MatMul): projection with a constant weight that is not part of any recognized layer or the classifier head",
      ]);
    }
  });
});

describe('axc inspect --layers', () => {
  const ext = inspectExtensions.find((e) => e.flag === '--layers')!;

  it('prints the documented JSON fields', () => {
    const r = ext.run(loadModel(TINY_MODEL), TINY_MODEL);
    const j = r.json as { layers: Record<string, unknown>[]; unrecognized: unknown[] };
    expect(
      j.layers.map((l) => ({
        index: l.index,
        heads: l.heads,
        headSize: l.headSize,
        ffnSize: l.ffnSize,
        norm: l.norm,
        attention: l.attention,
      })),
    ).toEqual([
      { index: 0, heads: 2, headSize: 64, ffnSize: 512, norm: 'post', attention: 'softmax' },
      { index: 1, heads: 2, headSize: 64, ffnSize: 512, norm: 'post', attention: 'softmax' },
    ]);
    expect(j.layers[0]!.activation).toBe('erf-gelu');
    expect(j.unrecognized).toEqual([]);
    expect(JSON.stringify(r.json)).toBe(JSON.stringify(ext.run(loadModel(TINY_MODEL), TINY_MODEL).json));
  });

  it('prints a table and the reasons for what was not recognized', () => {
    const m = buildBert(smallConfig());
    m.graph
      .nodes()
      .filter((x) => x.opType === 'Softmax')[1]!
      .setAttr('axis', 2);
    const { text } = ext.run(m, 'gen.onnx');
    const lines = text.split('\n');
    expect(lines[0]).toBe('gen.onnx: 1 transformer layer(s) recognized');
    expect(lines[1]).toMatch(/^\s+layer\s+heads\s+head size\s+hidden\s+FFN\s+norm\s+attention/);
    expect(lines[2]).toMatch(
      /^\s+0\s+4\s+8\s+32\s+64\s+post\s+softmax\s+mul-scores \(0\.3536\)\s+add\s+erf-gelu\s+LayerNormalization$/,
    );
    expect(text).toContain(
      "'/m/bert/encoder/layer.1/attention/self/Softmax' (Softmax): Softmax is not over the last axis (keys)",
    );
  });
});
