// PyTorch parity on the fixture networks (tools/make_fixtures.py): logits and the target activation to 1e-4
// of the tensor's max, gradients, guided gradients and DeepLIFT multipliers to 1e-3; DeepLIFT sums to delta.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { Model } from '../src/model.js';
import { nodeGpu } from '../node/gpu.js';
import { FIXTURES, fixtureDir, meta, npy, oneHot, relMax } from './helpers.js';

const test = suite('golden');
const report: string[] = [];

for (const name of FIXTURES) {
  test(`golden ${name}: forward, gradient, guided, DeepLIFT vs PyTorch`, async () => {
    const gpu = await nodeGpu(), m = meta(name);
    const model = await Model.load(gpu, readFileSync(`${fixtureDir(name)}/model.onnx`), name);
    try {
      const x = npy(name, 'x.npy'), B = x.shape[0], seed = oneHot(m.classes, model.numClasses);
      const input = model.graph.input, A = m.target;
      const plain = await (await model.plan({ batch: B, read: [A], grads: [A, input] })).run(x.data, { seed });
      const guided = await (await model.plan({ batch: B, grads: [input], mode: 'guided' })).run(x.data, { seed });
      const liftA = await (await model.plan({ batch: B, grads: [A], mode: 'deeplift', reference: { zeroAt: A } })).run(x.data, { seed });
      const liftX = await (await model.plan({ batch: B, grads: [input], mode: 'deeplift' })).run(x.data, { seed, refInput: new Float32Array(x.data.length) });
      const err = {
        logits: relMax(plain.logits, npy(name, 'logits.npy').data),
        act: relMax(plain.values.get(A)!, npy(name, 'act.npy').data),
        grad_act: relMax(plain.grads.get(A)!, npy(name, 'grad_act.npy').data),
        grad_input: relMax(plain.grads.get(input)!, npy(name, 'grad_input.npy').data),
        guided: relMax(guided.grads.get(input)!, npy(name, 'guided_input.npy').data),
        deeplift_act: relMax(liftA.grads.get(A)!, npy(name, 'deeplift_act.npy').data),
        deeplift_input: relMax(liftX.grads.get(input)!, npy(name, 'deeplift_input.npy').data),
      };
      // a forward-only plan reuses activation buffers by lifetime and fuses conv + residual add + activation
      // (the plans above keep those tensors: their backward reads them): same logits bit for bit, less memory
      const fwd = await model.plan({ batch: B });
      assert.equal(Array.from((await fwd.run(x.data)).logits), Array.from(plain.logits), 'forward-only plan, same logits');
      report.push(`${name}: forward-only plan ${fwd.counts.forward} dispatches (${fwd.counts.fused} fused units)`);
      assert.ok(fwd.counts.fused > 0, `${name}: the forward-only plan fused nothing`);
      assert.ok(fwd.bytes < model.bytesPerSample() * B, `forward plan ${fwd.bytes} B vs all activations ${model.bytesPerSample() * B} B`);
      report.push(`${name}: ${Object.entries(err).map(([k, v]) => `${k} ${v.toExponential(1)}`).join(', ')}`);
      assert.ok(err.logits <= 1e-4 && err.act <= 1e-4, `forward ${JSON.stringify(err)}`);
      for (const k of ['grad_act', 'grad_input', 'guided', 'deeplift_act', 'deeplift_input'] as const) assert.ok(err[k] <= 1e-3, `${k} ${err[k]}`);
      // summation to delta: sum(m * (A - 0)) = y_c(A) - y_c(0), per image
      const act = plain.values.get(A)!, mult = liftA.grads.get(A)!, per = act.length / B, C = model.numClasses;
      for (let i = 0; i < B; i++) {
        let s = 0; for (let j = i * per; j < (i + 1) * per; j++) s += mult[j] * act[j];
        const delta = liftA.logits[i * C + m.classes[i]] - liftA.refLogits![i * C + m.classes[i]];
        assert.ok(Math.abs(s - delta) <= 1e-4 * Math.max(1, Math.abs(delta)), `${name} image ${i}: sum ${s} vs delta ${delta}`);
      }
    } finally { model.destroy(); }
  });
}

test.after(() => { console.log(`\n  golden max errors (relative to the tensor's max):\n  ${report.join('\n  ')}`); });
test.run();
