// Overlapping explain() calls on one model: 16 calls with mixed methods and targets in one Promise.all give,
// bit for bit, what the same calls give one after another, on a warm explainer (plans cached) and a cold one (the
// calls race to build plans; each plan is built once). The oracle is the sequential run of the same engine.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Model } from '../src/model.js';
import { CancelledError, Explainer, ExplainOptions, Explanation } from '../src/explain.js';
import { nodeGpu } from '../node/gpu.js';
import { fixtureDir, npy } from './helpers.js';

const test = suite('concurrency');
const open = async () => Model.load(await nodeGpu(), readFileSync(`${fixtureDir('resnet')}/model.onnx`), 'resnet');

// four distinct images (the fixture's two, scaled and shifted) so a result carrying another call's data shows
const x = npy('resnet', 'x.npy').data, per = x.length / 2;
const image = (j: number) => Float32Array.from(x.subarray((j % 2) * per, (j % 2 + 1) * per), (v, q) => v * (1 + 0.1 * j) + 0.05 * j * Math.sin(q));
const REQUESTS: { images: Float32Array; o: ExplainOptions }[] = Array.from({ length: 16 }, (_, i) => {
  const a = image(i), b = image(i + 1), two = new Float32Array(2 * per); two.set(a); two.set(b, per);
  switch (i % 4) {
    case 0: return { images: a, o: { methods: 'fast' } }; // includes eigencam (computed in the gradient pass's epilogue)
    case 1: return { images: a, o: { methods: ['gradcam', 'eigencam', 'scorecam'], targets: [i % 10] } };
    case 2: return { images: two, o: { methods: ['ablationcam', 'liftcam', 'guided', 'gradcam++'], targets: { topk: 2 } } };
    default: return { images: two, o: { methods: ['deeplift', 'saliency', 'rise', 'layercam'], rise: { n: 24, seed: i } } };
  }
});

/** Everything an explanation returns except timings, as plain arrays. */
function flat(e: Explanation) {
  return { layer: e.layer, images: e.images.map((im) => ({ image: im.image, target: im.target, logits: Array.from(im.logits), delta: im.deepliftDelta,
    methods: Object.fromEntries(Object.entries(im.methods).map(([m, r]) => [m, { map: Array.from(r!.map), raw: Array.from(r!.raw), weights: r!.weights ? Array.from(r!.weights) : null }])) })) };
}
function same(got: Explanation[], want: Explanation[], what: string) {
  assert.is(got.length, want.length);
  got.forEach((g, i) => {
    const a = flat(g), b = flat(want[i]);
    assert.equal(Object.keys(a.images[0].methods).sort(), Object.keys(b.images[0].methods).sort(), `${what}: call ${i} methods`);
    assert.equal(a, b, `${what}: call ${i} (${JSON.stringify(REQUESTS[i].o.methods)}) equals its sequential run bit for bit`);
  });
}

test('16 overlapping explain() calls (mixed methods, classes, top-k, seeds) = the sequential runs, warm and cold; one plan per key', async () => {
  const ref = await open(), seqEx = new Explainer(ref);
  const cold = await open(), coldEx = new Explainer(cold);
  try {
    const seq: Explanation[] = [];
    for (const r of REQUESTS) seq.push(await seqEx.explain(r.images, r.o));
    // the images differ, so a mixed-up result cannot pass by accident
    assert.not.equal(flat(seq[0]).images[0].methods.gradcam!.map, flat(seq[4]).images[0].methods.gradcam!.map);
    const plansSeq = ref.planCount;

    const warm = await Promise.all(REQUESTS.map((r) => seqEx.explain(r.images, r.o)));
    same(warm, seq, 'warm');
    assert.is(ref.planCount, plansSeq, 'warm: no new plans');

    const coldRun = await Promise.all(REQUESTS.map((r) => coldEx.explain(r.images, r.o)));
    same(coldRun, seq, 'cold');
    assert.is(cold.planCount, plansSeq, `cold: ${cold.planCount} plans built by racing calls, ${plansSeq} by sequential ones`);
  } finally { seqEx.destroy(); coldEx.destroy(); ref.destroy(); cold.destroy(); }
});

test('destroy() while calls are building plans: the calls fail with a clear error and every plan is freed', async () => {
  const m = await open(), ex = new Explainer(m);
  try {
    const calls = REQUESTS.slice(0, 4).map((r) => ex.explain(r.images, r.o).then(() => 'ok', (e: Error) => e.message));
    await new Promise((r) => setTimeout(r, 0));
    ex.destroy();
    const out = await Promise.all(calls);
    for (const s of out) assert.ok(s === 'ok' || /destroyed/.test(s), `outcome: ${s}`);
    await new Promise((r) => setTimeout(r, 50));
    assert.is(m.planCount, 0, 'no plan left behind');
  } finally { m.destroy(); }
});

test('cancel through an AbortSignal: the aborted call rejects with CancelledError between batches, overlapping calls are unaffected, the next call equals a fresh run', async () => {
  const m = await open(), ex = new Explainer(m), fresh = new Explainer(m);
  try {
    for (const method of ['scorecam', 'ablationcam', 'rise'] as const) {
      const ac = new AbortController(); let calls = 0;
      const o: ExplainOptions = { methods: [method, 'gradcam'], rise: { n: 64 }, batch: 8 };
      const other = ex.explain(REQUESTS[1].images, REQUESTS[1].o); // overlaps the cancelled call on the same plans
      const e = await ex.explain(x, { ...o, signal: ac.signal, onProgress: (_d, _t, what) => { if (what !== 'images' && ++calls === 1) ac.abort(); } })
        .then(() => null, (err: unknown) => err);
      assert.ok(e instanceof CancelledError, `${method}: rejects with CancelledError (got ${e})`);
      assert.is(calls, 1, `${method}: stopped at the first batch after the abort`);
      assert.equal(flat(await other), flat(await fresh.explain(REQUESTS[1].images, REQUESTS[1].o)), `${method}: the overlapping call is unaffected`);
      assert.equal(flat(await ex.explain(x, o)), flat(await fresh.explain(x, o)), `${method}: after the cancel, the explainer gives a fresh one's result`);
    }
  } finally { ex.destroy(); fresh.destroy(); m.destroy(); }
});

test('CLI: Ctrl-C (SIGINT) during a long RISE run stops after the current batch with exit 130 and a one-line message', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'camgpu-cancel-'));
  try {
    const child = spawn(process.execPath, ['dist/cli.js', 'explain', 'data/scenes/single_00064.png', '--model', 'weights/resnet.onnx', '--methods', 'rise', '--rise-n', '200000', '--out', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    // 200000 masks take minutes on any adapter here; the signal comes while they run (or, at worst, while loading)
    const timer = setTimeout(() => child.kill('SIGINT'), 5000);
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    clearTimeout(timer);
    assert.is(code, 130, `exit status 130 (stderr: ${err.slice(-300)})`);
    const last = err.trim().split('\n').pop()!;
    assert.match(last, /^camgpu: cancelled: /);
    assert.not.match(err, /internal error|at .*\.js:\d+/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test.run();
