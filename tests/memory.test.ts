// GPU memory: every buffer is counted by the ledgers in src/gpu.ts. Checked against hand-counted sizes on a tiny
// model; model.gpuBytes is what the Gpu's live total grew by; destroy() returns every byte (the live total back to
// its value before the load, exactly); and a reduced soak (tests/soak-lib.ts; tools/soak.mjs runs the full one):
// 100 explanations with mixed methods, GPU bytes identical on every call after warm-up and RSS growth under a stated
// limit, then 20 load / explain / destroy cycles back to the baseline bytes each time, RSS within a stated limit.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model } from '../src/model.js';
import { Explainer } from '../src/explain.js';
import { GraphBuilder } from '../src/builder.js';
import { nodeGpu } from '../node/gpu.js';
import { cycleSoak, explainSoak, modelBytes, request, SOAK_MODEL } from './soak-lib.js';
import { fixtureDir } from './helpers.js';

const test = suite('memory');

// limits of the reduced run (the full soak measured: see tools/soak.mjs and the README's numbers)
const EXPLANATIONS = 100, RSS_EXPLAIN_MB = 40; // RSS growth from the first sample after warm-up to the last
const CYCLES = 20, RSS_CYCLE_MB = 40;         // RSS growth from the first cycle to the last

test('ledgers: Linear(10 -> 3) holds 128 + 16 bytes of weights (120 and 12 rounded to 16); a forward plan adds exactly its ledger; destroy returns all', async () => {
  const gpu = await nodeGpu(), before = gpu.liveBytes;
  const b = new GraphBuilder([10]), g = b.finish(b.linear(b.input, 3));
  const m = await Model.load(gpu, g, 'fc');
  try {
    assert.is(m.memory().weights, 128 + 16, 'weights: w (3x10 float32 = 120 -> 128) + b (3 float32 = 12 -> 16)');
    assert.is(gpu.liveBytes - before, 144, 'the Gpu grew by the weights only');
    const p = await m.plan({ batch: 2 });
    // input (2x10x4 = 80), logits (2x3x4 = 24 -> 32), its read-back stage (32), the linear step's uniform
    const uniform = gpu.reflection('linear').size;
    assert.is(p.bytes, 80 + 32 + 32 + Math.max(16, Math.ceil(uniform / 16) * 16), `plan bytes ${JSON.stringify(m.memory().plans)}`);
    assert.is(m.gpuBytes, 144 + p.bytes, 'model.gpuBytes = weights + plans');
    assert.is(gpu.liveBytes - before, m.gpuBytes, 'every live byte is the model\'s');
    p.destroy();
    assert.is(gpu.liveBytes - before, 144, 'plan.destroy() returns its bytes');
  } finally { m.destroy(); }
  assert.is(gpu.liveBytes, before, 'model.destroy() returns every byte');
});

test('one place creates GPU memory: createBuffer / createQuerySet / createTexture appear only in src/gpu.ts, inside Ledger', () => {
  const files = ['src', 'src/ops', 'node', 'web'].flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.ts')).map((f) => join(d, f)));
  assert.ok(files.length > 30, `${files.length} source files`);
  for (const f of files) {
    const text = readFileSync(f, 'utf8'), hits = [...text.matchAll(/\.create(Buffer|QuerySet|Texture)\(/g)];
    if (f !== join('src', 'gpu.ts')) { assert.is(hits.length, 0, `${f} creates GPU memory outside the ledgers`); continue; }
    const ledger = text.slice(text.indexOf('export class Ledger'), text.indexOf('export class Gpu {'));
    assert.is(hits.length, 2, 'src/gpu.ts: one createBuffer and one createQuerySet');
    assert.ok(/\.createBuffer\(/.test(ledger) && /\.createQuerySet\(/.test(ledger), 'both inside Ledger');
  }
});

test(`model.gpuBytes = what the Gpu grew by; explain() reports it; Explainer + model destroy return the live total to its value before load (${SOAK_MODEL})`, async () => {
  const gpu = await nodeGpu(), before = gpu.liveBytes;
  const m = await Model.load(gpu, modelBytes(), SOAK_MODEL), ex = new Explainer(m);
  try {
    const weights = m.gpuBytes;
    assert.ok(weights > 0 && weights === m.memory().weights, `weights ${weights}`);
    for (let i = 0; i < 6; i++) {
      const r = request(i), e = await ex.explain(r.images, r.o);
      assert.is(e.memory.model, m.gpuBytes, 'explain().memory.model = model.gpuBytes');
      assert.is(e.memory.gpuLive - before, m.gpuBytes, `call ${i}: every live byte since the load is the model's (${JSON.stringify(gpu.memory().byRole)})`);
      assert.is(e.memory.weights + e.memory.plans, e.memory.model);
    }
    assert.ok(m.memory().plans.length >= 5, `${m.memory().plans.length} plans`);
    console.log(`  ${SOAK_MODEL}: weights ${weights} B, with every method's plans ${m.gpuBytes} B in ${m.memory().plans.length} plans`);
  } finally { ex.destroy(); m.destroy(); }
  assert.is(gpu.liveBytes, before, 'destroy returns every byte');
});

test(`${EXPLANATIONS} explanations (every method, perturbation ones at small settings): GPU bytes identical on every call after warm-up; RSS growth under ${RSS_EXPLAIN_MB} MB`, async () => {
  const gpu = await nodeGpu(), before = gpu.liveBytes;
  const r = await explainSoak(gpu, EXPLANATIONS, 25);
  console.log(`  GPU live bytes ${r.samples.map((s) => s.gpuLive).join(' / ')}; RSS MB ${r.samples.map((s) => s.rss.toFixed(1)).join(' / ')} at ${r.samples.map((s) => s.done).join(' / ')} calls`);
  assert.equal(r.notFlat, [], 'GPU bytes changed after warm-up');
  const first = r.samples[0], last = r.samples.at(-1)!;
  assert.is(last.gpuLive, first.gpuLive);
  assert.ok(last.rss - first.rss < RSS_EXPLAIN_MB, `RSS grew ${(last.rss - first.rss).toFixed(1)} MB over ${EXPLANATIONS} explanations (limit ${RSS_EXPLAIN_MB})`);
  assert.is(gpu.liveBytes, before, 'and all of it returned by destroy');
});

test(`${CYCLES} load / explain / destroy cycles: the live bytes back to the baseline exactly after each; RSS growth under ${RSS_CYCLE_MB} MB`, async () => {
  const gpu = await nodeGpu();
  const r = await cycleSoak(gpu, CYCLES, 5);
  console.log(`  baseline ${r.before} B; model held ${r.samples.map((s) => s.modelBytes).join(' / ')} B; RSS MB ${r.samples.map((s) => s.rss.toFixed(1)).join(' / ')} after ${r.samples.map((s) => s.done).join(' / ')} cycles`);
  assert.equal(r.off, [], 'a cycle left bytes behind');
  const first = r.samples[0], last = r.samples.at(-1)!;
  assert.ok(r.samples.every((s) => s.modelBytes === first.modelBytes), 'each cycle\'s model held the same bytes');
  assert.ok(last.rss - first.rss < RSS_CYCLE_MB, `RSS grew ${(last.rss - first.rss).toFixed(1)} MB over ${CYCLES} cycles (limit ${RSS_CYCLE_MB})`);
});

test(`camgpu info --gpu and explain report the library's byte counts (${SOAK_MODEL}): weights, explain --methods fast, summary.json gpu_memory`, async () => {
  const gpu = await nodeGpu(), m = await Model.load(gpu, modelBytes(), SOAK_MODEL), ex = new Explainer(m);
  let weights = 0, fast = 0;
  try {
    weights = m.gpuBytes;
    fast = (await ex.explain(new Float32Array(3 * 64 * 64), { methods: 'fast' })).memory.model;
  } finally { ex.destroy(); m.destroy(); }
  const model = `${fixtureDir(SOAK_MODEL)}/model.onnx`;
  const info = spawnSync(process.execPath, ['dist/cli.js', 'info', model, '--gpu'], { encoding: 'utf8' });
  assert.is(info.status, 0, info.stderr);
  const line = info.stdout.split('\n').find((l) => l.startsWith('GPU memory')) ?? '';
  assert.ok(line.includes(`(${weights} B)`) && line.includes(`(${fast} B,`), `info --gpu: '${line}' vs weights ${weights} B, explain fast ${fast} B`);
  const out = mkdtempSync(join(tmpdir(), 'camgpu-mem-'));
  try {
    const r = spawnSync(process.execPath, ['dist/cli.js', 'explain', `${fixtureDir(SOAK_MODEL)}/x.npy`, '--model', model, '--methods', 'gradcam,scorecam', '--out', out], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    const sum = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).gpu_memory;
    assert.is(sum.weights_bytes, weights, 'summary.json weights = model.gpuBytes after load');
    assert.is(sum.model_bytes, sum.weights_bytes + sum.plans_bytes);
    assert.ok(sum.plans_bytes > 0);
    assert.match(r.stdout, new RegExp(`GPU memory +[0-9.]+ (KiB|MiB) held by the model`));
  } finally { rmSync(out, { recursive: true, force: true }); }
});

test.run();
