/**
 * The README's library example, kept here so that it runs in the tests (test/api/readme-example.test.ts).
 * In the README the import reads `from 'axc'`; everything else is the same code.
 */
import { compile, diff, loadDataset, loadModel, verify } from '../../src/index.js';

export async function readmeExample(paths: { model: string; plan: string; output: string; data: string }) {
  // 1. Compile: run the plan's passes; the output is written only when the plan's `verify` requirements hold.
  const result = await compile({ model: paths.model, plan: paths.plan, output: paths.output });
  if (!result.ok) throw new Error(result.failures.map((f) => f.message).join('\n'));

  // 2. Diff: what changed, per layer (heads numbered as in the original model) and in total.
  const changes = diff(loadModel(paths.model), loadModel(paths.output));
  for (const layer of changes.layers)
    console.log(
      `layer ${layer.index}: ${layer.before?.attention} → ${layer.after?.attention}, ` +
        `heads ${layer.before?.heads} → ${layer.after?.heads} (removed: ${layer.removedHeads.join(', ') || 'none'})`,
    );
  console.log(`parameters ${changes.totals.before.parameters} → ${changes.totals.after.parameters}`);

  // 3. Verify: compare both models on labelled rows the plan did not use.
  const test = await loadDataset({
    name: 'test',
    format: 'jsonl',
    path: paths.data,
    label: 'label',
    split: 'even',
    limit: 64,
  });
  const check = await verify(
    paths.model,
    paths.output,
    { data: 'test', outputs: [{ output: 'logits', argmax: 0.9 }] },
    test,
  );
  console.log(
    `accuracy ${check.metrics.original?.accuracy} → ${check.metrics.compiled?.accuracy}, pass: ${check.pass}`,
  );

  return { result, changes, check };
}
