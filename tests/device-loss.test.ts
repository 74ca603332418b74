// Device loss, handled in one place (src/gpu.ts Gpu: device.lost, ready(), generation). A device destroyed between
// calls: the next explain() gets a new device, the model re-uploaded from the host copies, its plans rebuilt, and
// results bit for bit equal to those before the loss (the oracle: the same engine before the loss). Destroyed while
// calls are in flight: each rejects with DeviceLostError (none hangs: a 60 s guard fails the test; none returns a
// different answer), and the next call works again. An app-owned device stays lost until the app gives a new one.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { Model } from '../src/model.js';
import { Explainer, type ExplainOptions, type Explanation } from '../src/explain.js';
import { DeviceLostError, Gpu } from '../src/gpu.js';
import { nodeGpu, plainDevice } from '../node/gpu.js';
import { fixtureDir, npy } from './helpers.js';

const test = suite('device-loss');
const MODEL = 'resnet';
const bytes = readFileSync(`${fixtureDir(MODEL)}/model.onnx`);
const x = npy(MODEL, 'x.npy').data; // two images
const OPTS: ExplainOptions = { methods: ['gradcam', 'eigencam', 'liftcam', 'scorecam', 'ablationcam', 'deeplift', 'guided', 'rise'], rise: { n: 16 }, batch: 4 };

/** Everything an explanation returns except timings and memory, as plain arrays. */
const flat = (e: Explanation) => e.images.map((im) => ({ target: im.target, logits: Array.from(im.logits),
  methods: Object.fromEntries(Object.entries(im.methods).map(([m, r]) => [m, [Array.from(r!.map), Array.from(r!.raw)]])) }));

/** p, or a failure naming `what` when it has not settled in 60 s (a hang must fail, not stall the suite). */
async function settled<T>(p: Promise<T>, what: string): Promise<{ ok: T } | { err: unknown }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, fail) => { timer = setTimeout(() => fail(new Error(`${what}: still pending after 60 s (hang)`)), 60_000); });
  try { return await Promise.race([p.then((ok) => ({ ok }), (err: unknown) => ({ err })), limit]); } finally { clearTimeout(timer); }
}

async function lose(gpu: Gpu) {
  const old = gpu.device;
  old.destroy();
  await old.lost;
}

test(`between calls (${MODEL}, 8 methods): destroyed device -> the next explain() gets a new device, re-uploads, rebuilds its plans; bit-identical results, same bytes`, async () => {
  const gpu = await nodeGpu(), m = await Model.load(gpu, bytes, MODEL), ex = new Explainer(m);
  try {
    const before = await ex.explain(x, OPTS), plans = m.planCount, held = m.gpuBytes, gen = gpu.generation;
    const direct = await m.plan({ batch: 1 });
    const old = gpu.device;
    await lose(gpu);
    assert.instance(gpu.lost === null ? null : new DeviceLostError(gpu.lost), DeviceLostError);
    assert.is(m.gpuBytes, 0, 'a lost device holds nothing: every ledger forgot its buffers');
    const stale = await settled(direct.run(x.subarray(0, x.length / 2)), 'a plan of the lost device');
    assert.ok('err' in stale && stale.err instanceof DeviceLostError, `a plan of the lost device rejects with DeviceLostError (got ${JSON.stringify(stale)})`);

    const after = await ex.explain(x, OPTS);
    assert.ok(gpu.device !== old, 'a new device');
    assert.is(gpu.generation, gen + 1);
    assert.is(m.reuploads, 1, 'the weights were uploaded again once');
    assert.equal(flat(after), flat(before), 'every method\'s maps, raw maps and logits equal those before the loss, bit for bit');
    assert.is(m.planCount, plans, 'the explainer\'s plan caches were rebuilt (the stale plans destroyed, not reused)');
    assert.is(m.gpuBytes, held, 'the model holds the same bytes on the new device');
    const again = await settled(direct.run(x.subarray(0, x.length / 2)), 'the stale plan after recovery');
    assert.ok('err' in again && again.err instanceof DeviceLostError, 'a plan made before the loss stays unusable (it would read freed buffers)');
  } finally { ex.destroy(); m.destroy(); }
});

test('mid-run: the device destroyed during a Score-CAM batch -> that call rejects with DeviceLostError; the next call equals the result before', async () => {
  const gpu = await nodeGpu(), m = await Model.load(gpu, bytes, MODEL), ex = new Explainer(m);
  try {
    const o: ExplainOptions = { methods: ['gradcam', 'scorecam'], batch: 4 };
    const before = await ex.explain(x, o);
    let destroyed = 0;
    const run = ex.explain(x, { ...o, onProgress: (_d, _t, what) => { if (what === 'scorecam' && !destroyed++) gpu.device.destroy(); } });
    const r = await settled(run, 'explain() in flight during the loss');
    assert.is(destroyed, 1, 'the device was destroyed inside the call');
    assert.ok('err' in r && r.err instanceof DeviceLostError, `rejects with DeviceLostError, got ${'err' in r ? String(r.err) : 'a result'}`);
    assert.match((r as { err: Error }).err.message, /device lost/i);
    const after = await ex.explain(x, o);
    assert.equal(flat(after), flat(before), 'the next call equals the result before the loss');
  } finally { ex.destroy(); m.destroy(); }
});

test('8 overlapping calls, device destroyed while they run: each rejects with DeviceLostError or returns the right answer; none hangs; then all work again', async () => {
  const gpu = await nodeGpu(), m = await Model.load(gpu, bytes, MODEL), ex = new Explainer(m);
  try {
    const reqs: ExplainOptions[] = Array.from({ length: 8 }, (_, i) => ({ ...OPTS, targets: [i % 10, (i + 3) % 10] }));
    const want: Explanation[] = [];
    for (const o of reqs) want.push(await ex.explain(x, o));
    const calls = reqs.map((o) => ex.explain(x, o));
    await new Promise((r) => setTimeout(r, 20)); // the calls are in their GPU work
    gpu.device.destroy();
    const out = await Promise.all(calls.map((c, i) => settled(c, `call ${i}`)));
    let lost = 0;
    out.forEach((r, i) => {
      if ('err' in r) { assert.instance(r.err, DeviceLostError, `call ${i}: ${String(r.err)}`); lost++; }
      else assert.equal(flat(r.ok), flat(want[i]), `call ${i} finished: its answer is the right one`);
    });
    console.log(`  ${lost} of 8 calls in flight got DeviceLostError, ${8 - lost} finished before the loss reached them`);
    assert.ok(lost > 0, 'the loss reached calls in flight');
    const again = await Promise.all(reqs.map((o) => ex.explain(x, o)));
    again.forEach((e, i) => assert.equal(flat(e), flat(want[i]), `call ${i} after the loss`));
  } finally { ex.destroy(); m.destroy(); }
});

test('an app-owned device (no way to replace it): DeviceLostError naming gpu.useDevice until the app gives one; then the same results and bytes', async () => {
  const gpu = new Gpu(await plainDevice('app device')), m = await Model.load(gpu, bytes, MODEL), ex = new Explainer(m);
  try {
    const o: ExplainOptions = { methods: ['gradcam', 'liftcam', 'ablationcam'] };
    const before = await ex.explain(x, o), held = gpu.liveBytes;
    await lose(gpu);
    for (let i = 0; i < 2; i++) {
      const r = await settled(ex.explain(x, o), 'explain() on a lost app device');
      assert.ok('err' in r && r.err instanceof DeviceLostError && /useDevice/.test((r.err as Error).message), `call ${i}: ${'err' in r ? String(r.err) : 'a result'}`);
    }
    gpu.useDevice(await plainDevice('app device 2'));
    const after = await ex.explain(x, o);
    assert.equal(flat(after), flat(before));
    assert.is(gpu.liveBytes, held);
  } finally { ex.destroy(); m.destroy(); gpu.device.destroy(); }
  assert.is(gpu.liveBytes, 0, 'destroy returns every byte');
});

test.run();
