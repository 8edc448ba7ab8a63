import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';

/** A few SST-2 dev rows as int64 feeds (padded to the longest), for numeric checks in tests. */
export function devFeeds(jsonl: string, count: number, offset = 0): Record<string, ort.Tensor> {
  const rows = fs
    .readFileSync(jsonl, 'utf8')
    .trim()
    .split('\n')
    .slice(offset, offset + count)
    .map((l) => JSON.parse(l) as { input_ids: number[] });
  const S = Math.max(...rows.map((r) => r.input_ids.length));
  const B = rows.length;
  const ids = new BigInt64Array(B * S);
  const mask = new BigInt64Array(B * S);
  rows.forEach((r, b) =>
    r.input_ids.forEach((id, s) => {
      ids[b * S + s] = BigInt(id);
      mask[b * S + s] = 1n;
    }),
  );
  return {
    input_ids: new ort.Tensor('int64', ids, [B, S]),
    attention_mask: new ort.Tensor('int64', mask, [B, S]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(B * S), [B, S]),
  };
}

export async function runModel(
  model: Uint8Array | string,
  feeds: Record<string, ort.Tensor>,
  opt = false,
): Promise<Record<string, ort.Tensor>> {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: opt ? 'all' : 'disabled',
    intraOpNumThreads: 1,
  };
  const s =
    typeof model === 'string'
      ? await ort.InferenceSession.create(model, options)
      : await ort.InferenceSession.create(model, options);
  const names = s.inputNames;
  const f: Record<string, ort.Tensor> = {};
  for (const n of names) f[n] = feeds[n]!;
  const out = await s.run(f);
  await s.release();
  return out;
}
