import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel, saveModel, serializeModel, ModelFileError } from '../../src/onnx/index.js';
import { dumpModelBytes, firstDifference } from '../../src/onnx/schema-dump.js';
import { checkModel } from '../../src/ir/index.js';
import { DEV_JSONL, TINY_MODEL } from '../support/paths.js';
import { devFeeds, runModel } from '../support/ort.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'axc-test-'));

describe('ONNX round trip on the real SST-2 model', () => {
  const orig = fs.readFileSync(TINY_MODEL);
  const model = loadModel(TINY_MODEL);

  it('decodes to the same message field for field, and even byte for byte', () => {
    const out = serializeModel(model);
    expect(firstDifference(dumpModelBytes(orig), dumpModelBytes(out))).toBeUndefined();
    expect(Buffer.compare(orig, out)).toBe(0);
  });

  it('passes the invariant checker', () => {
    expect(checkModel(model).filter((d) => d.severity === 'error')).toEqual([]);
  });

  it('gives bit-identical outputs in onnxruntime', async () => {
    const feeds = devFeeds(DEV_JSONL, 8);
    const a = await runModel(orig, feeds);
    const b = await runModel(serializeModel(loadModel(TINY_MODEL)), feeds);
    expect(
      Buffer.compare(Buffer.from(a.logits!.data as Float32Array), Buffer.from(b.logits!.data as Float32Array)),
    ).toBe(0);
  });

  it('keeps weights as views into the file buffer (no copy on read)', () => {
    const buf = fs.readFileSync(TINY_MODEL);
    const m = loadModel(TINY_MODEL, { buffer: buf });
    const big = m.graph.initializers.map((v) => v.constValue!).sort((x, y) => y.byteLength - x.byteLength)[0]!;
    expect(big.bytes().buffer).toBe(buf.buffer);
  });

  it('streams large weights from the file: only the structure is read, the output is still byte-identical', async () => {
    const m = loadModel(TINY_MODEL, { stream: true, streamThreshold: 4096 });
    const big = m.graph.initializers.filter((v) => v.constValue!.byteLength >= 8192);
    expect(big.length).toBeGreaterThan(10);
    expect(big.every((v) => v.constValue!.storageKind === 'file')).toBe(true);
    const dir = tmp();
    const out = path.join(dir, 'streamed.onnx');
    saveModel(m, out);
    expect(Buffer.compare(fs.readFileSync(out), orig)).toBe(0);
    expect(Buffer.compare(serializeModel(m), orig)).toBe(0);
    const feeds = devFeeds(DEV_JSONL, 4);
    const a = await runModel(orig, feeds);
    const b = await runModel(serializeModel(m), feeds);
    expect(Array.from(b.logits!.data as Float32Array)).toEqual(Array.from(a.logits!.data as Float32Array));
  });

  it('notices when a streamed model file changes on disk', () => {
    const dir = tmp();
    const copy = path.join(dir, 'm.onnx');
    fs.copyFileSync(TINY_MODEL, copy);
    const m = loadModel(copy, { stream: true, streamThreshold: 4096 });
    fs.appendFileSync(copy, Buffer.alloc(10));
    const t = m.graph.initializers.find((v) => v.constValue!.storageKind === 'file')!.constValue!;
    expect(() => t.bytes()).toThrow(/changed on disk after it was read/);
  });

  it('writes and reads external data, with outputs unchanged', async () => {
    const dir = tmp();
    const out = path.join(dir, 'ext.onnx');
    const r = saveModel(model, out, { externalData: true, threshold: 1024 });
    expect(r.externalBytes).toBeGreaterThan(16_000_000);
    expect(fs.statSync(out).size).toBeLessThan(200_000);
    const back = loadModel(out);
    const inline = path.join(dir, 'inline.onnx');
    saveModel(back, inline);
    expect(Buffer.compare(fs.readFileSync(inline), orig)).toBe(0);
    const feeds = devFeeds(DEV_JSONL, 4);
    const a = await runModel(orig, feeds);
    const b = await runModel(out, feeds);
    expect(Array.from(b.logits!.data as Float32Array)).toEqual(Array.from(a.logits!.data as Float32Array));
  });

  it('writes atomically and never over its input', () => {
    const dir = tmp();
    const copy = path.join(dir, 'm.onnx');
    fs.copyFileSync(TINY_MODEL, copy);
    const m = loadModel(copy);
    expect(() => saveModel(m, copy, { inputPath: copy })).toThrow(/refusing to write over the input/);
    expect(Buffer.compare(fs.readFileSync(copy), orig)).toBe(0);
    expect(fs.readdirSync(dir)).toEqual(['m.onnx']);
  });
});

describe('bad model files', () => {
  const dir = tmp();
  const write = (name: string, data: Uint8Array | string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, data);
    return p;
  };
  const orig = fs.readFileSync(TINY_MODEL);

  it.each([
    ['truncated.onnx', orig.subarray(0, orig.length - 1000), /truncated\.onnx: not a valid ONNX model: .*at byte \d+/],
    ['half.onnx', orig.subarray(0, 5_000_000), /half\.onnx: not a valid ONNX model/],
    ['empty.onnx', new Uint8Array(0), /empty\.onnx: not a valid ONNX model: empty file/],
    ['text.onnx', 'hello, this is not a model\n'.repeat(20), /looks like text/],
    [
      'random.onnx',
      Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 251),
      /random\.onnx: not a valid ONNX model/,
    ],
  ])('%s gets a clear error naming the file', (name, data, re) => {
    const p = write(name, data);
    for (const stream of [false, true]) {
      let err: unknown;
      try {
        loadModel(p, { stream });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ModelFileError);
      expect((err as Error).message).toMatch(re);
    }
  });

  it('a missing file is a clear error', () => {
    expect(() => loadModel(path.join(dir, 'nope.onnx'))).toThrow(/nope\.onnx: cannot read: ENOENT/);
  });

  it('refuses external data locations that escape the model folder', () => {
    const sub = path.join(dir, 'sub');
    fs.mkdirSync(sub, { recursive: true });
    const m = loadModel(TINY_MODEL);
    const out = path.join(sub, 'x.onnx');
    saveModel(m, out, { externalData: true, location: 'x.data' });
    const bytes = fs.readFileSync(out);
    for (const [evil, why] of [
      ['../x.dat', /contains '\.\.'/],
      ['/etc/pas', /absolute path/],
    ] as const) {
      const patched = Buffer.from(
        bytes.toString('latin1').split('x.data').join(evil.padEnd(6, 'a').slice(0, 6)),
        'latin1',
      );
      const p = path.join(sub, `evil-${evil.length}-${why.source.length}.onnx`);
      fs.writeFileSync(p, patched);
      const mm = loadModel(p);
      const t = mm.graph.initializers.find((v) => v.constValue!.external)!.constValue!;
      expect(() => t.bytes()).toThrow(why);
    }
    // a symlink that leads out of the folder
    fs.writeFileSync(path.join(dir, 'outside.data'), Buffer.alloc(100_000));
    fs.symlinkSync(path.join(dir, 'outside.data'), path.join(sub, 'link.d'));
    const patched = Buffer.from(bytes.toString('latin1').split('x.data').join('link.d'), 'latin1');
    fs.writeFileSync(path.join(sub, 'link.onnx'), patched);
    const mm = loadModel(path.join(sub, 'link.onnx'));
    const t = mm.graph.initializers.find((v) => v.constValue!.external)!.constValue!;
    expect(() => t.bytes()).toThrow(/symlink that leads out of the model folder/);
  });
});
