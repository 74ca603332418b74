// explain() beyond golden parity: one-pass proof, invariants, targets and errors.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { Model } from '../src/model.js';
import { Explainer } from '../src/explain.js';
import { Method } from '../src/methods.js';
import { nodeGpu, plainDevice } from '../node/gpu.js';
import { fixtureDir, meta, npy } from './helpers.js';

const test = suite('explain');
const SEVEN: Method[] = ['gradcam', 'gradcam-neg', 'gradcam++', 'xgradcam', 'layercam', 'hirescam', 'liftcam'];
const open = async (name: string) => Model.load(await nodeGpu(), readFileSync(`${fixtureDir(name)}/model.onnx`), name);

test('one pass: seven gradient methods = one submit, one forward, one backward, the head-only LIFT pass and the CAM epilogue', async () => {
  const model = await open('vgg'), ex = new Explainer(model), x = npy('vgg', 'x.npy');
  try {
    const gpu = model.gpu;
    const one = await ex.explain(x.data, { methods: ['gradcam'] });
    let s0 = gpu.submits; await ex.explain(x.data, { methods: ['gradcam'] }); const subOne = gpu.submits - s0;
    s0 = gpu.submits; const seven = await ex.explain(x.data, { methods: SEVEN }); const subSeven = gpu.submits - s0;
    assert.is(subOne, 1); assert.is(subSeven, 1);
    const plans = (ex as unknown as { plans: Map<string, Promise<{ plan: { counts: Record<string, number> } }>> }).plans;
    const counts = (await Promise.all(plans.values())).map((p) => p.plan.counts);
    const c1 = counts[0], c7 = counts[1];
    const fwd = model.graph.nodes.filter((n) => n.op.kind !== 'alias').length;
    assert.is(c7.forward, c1.forward, 'the same forward');
    assert.ok(c1.forward <= fwd + 2, `forward dispatches ${c1.forward} for ${fwd} nodes`);
    assert.is(c7.epilogue, c1.epilogue, 'one CAM epilogue whatever the method count');
    // LIFT-CAM adds the head only: reference forward and DeepLIFT backward of the nodes after the target layer
    const head = model.head(meta('vgg').target).graph.nodes.filter((n) => n.op.kind !== 'alias').length;
    assert.ok(c7.reference <= head + 1 && c7.backward - c1.backward <= head + 1, `LIFT extra: ref ${c7.reference}, backward +${c7.backward - c1.backward}, head nodes ${head}`);
    assert.equal(seven.images.map((i) => i.target), one.images.map((i) => i.target));
    for (const m of SEVEN) for (const im of seven.images) for (const v of im.methods[m]!.map) assert.ok(Number.isFinite(v) && v >= 0 && v <= 1, `${m} map in [0,1]`);
  } finally { ex.destroy(); model.destroy(); }
});

test('GAP -> linear head (resnet): CAM = W_fc[c] = Z * Grad-CAM weights = LIFT-CAM / mean(A_k); LIFT-CAM sums to y(A) - y(0)', async () => {
  const model = await open('resnet'), ex = new Explainer(model), x = npy('resnet', 'x.npy'), m = meta('resnet');
  try {
    const r = await ex.explain(x.data, { methods: ['cam', 'gradcam', 'xgradcam', 'liftcam'], targets: m.classes, layer: m.target });
    const fc = model.graph.nodes.find((n) => n.op.kind === 'linear')!.op as { w: Float32Array; in: number };
    const [K, h, w] = r.layerShape, Z = h * w;
    const plan = await model.plan({ batch: 2, read: [m.target] });
    const act = (await plan.run(x.data)).values.get(m.target)!;
    const head = model.head(m.target), hp = await head.plan({ batch: 1 });
    for (const [i, im] of r.images.entries()) {
      const cam = im.methods.cam!.weights!, gc = im.methods.gradcam!.weights!, lift = im.methods.liftcam!.weights!;
      for (let k = 0; k < K; k++) {
        const wfc = fc.w[im.target * fc.in + k];
        let mean = 0; for (let z = 0; z < Z; z++) mean += act[(i * K + k) * Z + z]; mean /= Z;
        assert.ok(Math.abs(cam[k] - wfc) <= 1e-5 * (1 + Math.abs(wfc)), `CAM w${k}`);
        assert.ok(Math.abs(gc[k] * Z - wfc) <= 1e-5 * (1 + Math.abs(wfc)), `Grad-CAM w${k}`);
        assert.ok(Math.abs(lift[k] - wfc * mean) <= 1e-5 * (1 + Math.abs(wfc * mean)), `LIFT-CAM w${k}`);
      }
      const y0 = (await hp.run(new Float32Array(K * Z))).logits[im.target];
      const sum = lift.reduce((s, v) => s + v, 0), delta = im.logits[im.target] - y0;
      assert.ok(Math.abs(sum - delta) <= 1e-4 * Math.max(1, Math.abs(delta)), `summation to delta ${sum} vs ${delta}`);
    }
    head.destroy();
  } finally { ex.destroy(); model.destroy(); }
});

test('profile: timestamp queries time every dispatch of the gradient pass; results unchanged; a device without the feature is refused', async () => {
  const model = await open('resnet'), ex = new Explainer(model), x = npy('resnet', 'x.npy');
  try {
    const plain = await ex.explain(x.data, { methods: SEVEN });
    const timed = await ex.explain(x.data, { methods: SEVEN, profile: true });
    for (const [i, im] of timed.images.entries()) for (const m of SEVEN) assert.equal(Array.from(im.methods[m]!.map), Array.from(plain.images[i].methods[m]!.map), `${m} map unchanged`);
    const plan = (await [...(ex as unknown as { plans: Map<string, Promise<{ plan: { counts: Record<string, number> } }>> }).plans.values()][0]).plan, c = plan.counts;
    const p = timed.profile!;
    assert.is(p.length, c.forward + c.reference + 1 + c.backward + c.epilogue, 'one entry per dispatch (forward, reference, seed, backward, epilogue)');
    assert.ok(p.every((e) => Number.isFinite(e.ms) && e.ms >= 0), 'finite, non-negative times');
    assert.is(p.filter((e) => e.phase === 'forward').length, c.forward + c.reference + 1);
    assert.ok(p.some((e) => e.label.includes('+')), 'fused dispatches are named by their nodes joined with +');
    assert.is(plain.profile, undefined);
  } finally { ex.destroy(); model.destroy(); }
  // a device created without 'timestamp-query': a precise error, nothing run
  const dev = await plainDevice('no timestamps');
  const bare = await Model.load(dev, readFileSync(`${fixtureDir('resnet')}/model.onnx`), 'resnet');
  try {
    const plan = await bare.plan({ batch: 1 });
    const err = await plan.run(x.data.subarray(0, x.data.length / 2), { profile: true }).then(() => null, (e: Error) => e.message);
    assert.match(err ?? '', /profiling needs the 'timestamp-query' feature/);
  } finally { bare.destroy(); dev.destroy(); }
});

test('timings: each phase counted once, so the phases add up to no more than the call (a pixel runner and its pass share a name)', async () => {
  const model = await open('resnet'), ex = new Explainer(model), x = npy('resnet', 'x.npy');
  await ex.explain(x.data, { methods: ['guided', 'deeplift'] }); // warm: plans built, pipelines compiled
  for (let round = 0; round < 3; round++) {
    const t = (await ex.explain(x.data, { methods: ['guided', 'guided-gradcam', 'deeplift'] })).timings;
    const phases = Object.entries(t).filter(([k]) => k !== 'total' && k !== 'compile').reduce((a, [, ms]) => a + ms, 0);
    assert.ok(t.guided > 0 && t.deeplift > 0, `guided and deeplift are timed: ${JSON.stringify(t)}`);
    assert.ok(phases <= t.total, `round ${round}: phases ${phases.toFixed(1)} ms > the call's ${t.total.toFixed(1)} ms: ${JSON.stringify(t)}`);
  }
  ex.destroy(); model.destroy();
});

test('targets: top-3 rows per image in one batched backward; seed vectors; probability score', async () => {
  const model = await open('mobilenet'), ex = new Explainer(model), x = npy('mobilenet', 'x.npy');
  try {
    const r = await ex.explain(x.data, { methods: ['gradcam'], targets: { topk: 3 } });
    assert.is(r.images.length, 6);
    for (let i = 0; i < 2; i++) {
      const rows = r.images.filter((im) => im.image === i);
      assert.equal(rows.map((im) => im.target), rows[0].topk.slice(0, 3).map((t) => t.class), 'rows follow the top-3 ranking');
    }
    const C = model.numClasses, seed = new Float32Array(2 * C); seed[4] = 1; seed[C + 9] = 1;
    const s = await ex.explain(x.data, { methods: ['gradcam'], targets: seed });
    const f = await ex.explain(x.data, { methods: ['gradcam'], targets: [4, 9] });
    assert.equal(Array.from(s.images[1].methods.gradcam!.raw), Array.from(f.images[1].methods.gradcam!.raw), 'a one-hot seed equals the class target');
    const p = await ex.explain(x.data, { methods: ['gradcam'], targets: [4, 9], score: 'prob' });
    // d p_c / dA = p_c (g_c - sum_j p_j g_j): differs from the logit map, same sign structure not guaranteed
    assert.not.equal(Array.from(p.images[0].methods.gradcam!.weights!), Array.from(f.images[0].methods.gradcam!.weights!));
  } finally { ex.destroy(); model.destroy(); }
});

test('errors: unknown layer lists candidates, 2-D layer, CAM on an FC head, class out of range, unknown method', async () => {
  const model = await open('vgg'), ex = new Explainer(model), x = npy('vgg', 'x.npy');
  try {
    const fails = async (o: Parameters<Explainer['explain']>[1], re: RegExp) => {
      try { await ex.explain(x.data, o); } catch (e) { assert.match((e as Error).message, re); return; }
      assert.unreachable(`expected ${re}`);
    };
    await fails({ layer: 'nope' }, /layer 'nope' is not a tensor or node of this model; 4-D candidates: .*Relu_output_0/);
    const flat = model.graph.nodes.find((n) => n.source === 'Gemm')!.output;
    await fails({ layer: flat }, /not a 4-D \(N,K,h,w\) activation/);
    await fails({ methods: ['cam'] }, /CAM needs the target layer to feed GlobalAveragePool -> linear; after '.*' the head is maxpool -> alias -> linear/);
    await fails({ targets: [3, 10] }, /class 10 is out of range: the model has 10 classes/);
    await fails({ methods: ['gradcam', 'nope' as Method] }, /unknown method 'nope'; methods: gradcam, /);
    await fails({ methods: ['__proto__' as Method] }, /unknown method '__proto__'; methods: gradcam, /); // an own key, not an inherited one
    await fails({ targets: [1] }, /targets has 1 classes for 2 images/);
  } finally { ex.destroy(); model.destroy(); }
});

test('Score-CAM, Ablation-CAM and RISE run batched, report progress, and give maps in [0,1]; RISE is seedable', async () => {
  const model = await open('resnet'), ex = new Explainer(model), x = npy('resnet', 'x.npy');
  try {
    const seen = new Set<string>();
    const o = { methods: ['scorecam', 'ablationcam', 'rise'] as Method[], batch: 8, rise: { n: 64, seed: 3 }, onProgress: (_d: number, _t: number, w: string) => { seen.add(w); } };
    const a = await ex.explain(x.data, o), b = await ex.explain(x.data, o);
    assert.ok(seen.has('scorecam') && seen.has('ablationcam') && seen.has('rise'), [...seen].join(','));
    for (const im of a.images) for (const m of o.methods) for (const v of im.methods[m]!.map) assert.ok(v >= 0 && v <= 1 && Number.isFinite(v));
    assert.equal(Array.from(a.images[0].methods.rise!.raw), Array.from(b.images[0].methods.rise!.raw), 'same seed, same RISE map');
    const sw = a.images[0].methods.scorecam!.weights!;
    assert.ok(Math.abs(sw.reduce((s, v) => s + v, 0) - 1) < 1e-5, 'Score-CAM weights are a softmax');
  } finally { ex.destroy(); model.destroy(); }
});

test.run();
