// The planner (src/planner.ts) against the executor (src/model.ts Plan): a GPU-free planner, made independently
// with the device's limits, describes exactly the buffers the executor allocates (bytes from the GPUBuffers
// themselves) and the dispatches it encodes (recorded by run({ trace: true })); and `camgpu plan` works in a
// process that has no adapter at all (Vulkan's loader pointed at no driver). Build first: node build.mjs.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { nodeGpu } from '../node/gpu.js';
import { importOnnx } from '../src/import.js';
import type { Graph } from '../src/graph.js';
import { LoadOptions, Model, PlanOptions } from '../src/model.js';
import { DEFAULT_LIMITS, Planner, reflection } from '../src/planner.js';
import { Explainer, defaultLayer } from '../src/explain.js';
import { METHODS, METHOD_NAMES, Method } from '../src/methods.js';
import { fixtureDir } from './helpers.js';
import { GraphBuilder } from '../src/builder.js';

const test = suite('planner');
const onnx = (path: string) => importOnnx(readFileSync(path));
const pipelineKey = (d: { family: string; entry: string; consts: Record<string, number> }) => `${d.family}:${d.entry}:${JSON.stringify(d.consts)}`;

/** Plans covering every planner path: pooled forward-only, gradient with read-backs, two passes with a DeepLIFT
 *  reference at zero, DeepLIFT from an input image (direct convs, no Winograd), guided. */
function configs(g: Graph): [string, PlanOptions][] {
  const A = defaultLayer(g);
  return [
    ['forward B=3', { batch: 3 }],
    ['grad B=2', { batch: 2, read: [A], backward: [{ grads: [A, g.input] }] }],
    ['grad+lift B=4', { batch: 4, read: [A], backward: [{ grads: [A] }, { grads: [A], mode: 'deeplift', reference: { zeroAt: A } }] }],
    ['deeplift input B=2', { batch: 2, backward: [{ grads: [g.input], mode: 'deeplift', reference: 'input' }] }],
    ['guided B=1', { batch: 1, backward: [{ grads: [g.input], mode: 'guided' }] }],
  ];
}

/** Every config of graph g: the executor's plan against a fresh GPU-free planner's, buffers, bytes and dispatches. */
async function matches(name: string, g: Graph, opts: LoadOptions = {}) {
  const gpu = await nodeGpu(), m = await Model.load(gpu, g, name, opts);
  const fresh = new Planner(g, name, Model.limitsOf(gpu.device, opts));
  if (opts.winogradScratch) fresh.winogradScratch = opts.winogradScratch;
  try {
    for (const [tag, o] of configs(g)) {
      const plan = await m.plan(o), desc = fresh.plan(o);
      const x = new Float32Array(o.batch * g.tensors.get(g.input)!.shape.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i));
      const r = await plan.run(x, { trace: true, classes: o.backward ? new Int32Array(o.batch).fill(-1) : undefined, refInput: o.backward?.[0].reference === 'input' ? new Float32Array(x.length) : undefined });
      const gpuSizes = [...plan['gpuBufs'].values()].map((b) => b.size); // the GPUBuffers' own sizes
      assert.is(gpuSizes.length, desc.buffers.length, `${name} ${tag}: buffers allocated vs planned`);
      assert.is(gpuSizes.reduce((a, b) => a + b, 0), desc.bytes, `${name} ${tag}: bytes allocated vs planned`);
      assert.equal(gpuSizes, desc.buffers.map((b) => b.size), `${name} ${tag}: buffer sizes in allocation order`);
      // the plan's ledger (src/gpu.ts) counts every buffer it made: the planned ones and one uniform per dispatch
      const uniforms = desc.dispatches.reduce((s, d) => s + Math.max(16, Math.ceil(reflection(d.family).size / 16) * 16), 0);
      assert.is(plan.bytes, desc.bytes + uniforms, `${name} ${tag}: Plan.bytes (ledger) = planned buffers + uniforms`);
      const want = desc.dispatches.map((d) => ({ label: d.label, pipeline: pipelineKey(d), groups: d.groups }));
      assert.ok(want.length > 0 && r.trace!.length === want.length, `${name} ${tag}: ${r.trace!.length} dispatches encoded, ${want.length} planned`);
      assert.equal(r.trace, want, `${name} ${tag}: dispatches encoded vs planned`);
      for (const b of desc.buffers) assert.ok(b.first <= b.last, `${name} ${tag}: ${b.label} lifetime ${b.first}..${b.last}`);
      plan.destroy();
    }
    // model buffers: the ones uploaded (weights at load, Winograd / transposed weights on first use) vs described
    const statics = [...m['statics'].values()].map((b) => b.size), described = fresh.statics.reduce((a, b) => a + b.size, 0);
    assert.is(statics.length, fresh.statics.length, `${name}: model buffers uploaded vs described`);
    assert.is(statics.reduce((a, b) => a + b, 0), described, `${name}: model bytes uploaded vs described`);
    assert.is(m.memory().weights, described, `${name}: weights ledger vs described`);
  } finally { m.destroy(); }
}

test('bundled resnet (weights/resnet.onnx): planned buffers and dispatches = allocated and encoded', async () => {
  await matches('resnet', onnx('weights/resnet.onnx'));
});
test('fixtures mobilenet (grouped convs), vgg (pools, linear head): planned = executed', async () => {
  for (const f of ['mobilenet', 'vgg']) await matches(f, onnx(`${fixtureDir(f)}/model.onnx`));
});
test('conv net with a 3x3 Winograd conv and an FC weight over maxBinding (chunked; Winograd scratch for 16 tiles at batch 1 only): planned = executed', async () => {
  // x (3,16,16) -> conv 3x3 32 -> relu -> conv 3x3 32 (Winograd) -> relu -> flatten -> linear 8192 -> 10
  const b = new GraphBuilder([3, 16, 16], 7);
  const a1 = b.relu(b.conv(b.input, 32, [3, 3], { pad: 1 })), a2 = b.relu(b.conv(a1, 32, [3, 3], { pad: 1 }));
  const g = b.finish(b.linear(b.flatten(a2), 10));
  const fc = g.nodes.find((n) => n.op.kind === 'linear')!, maxBinding = 4 * 8192 * 4; // 4 rows of the FC weight; one activation at batch 4
  assert.ok(new Planner(g, 'chunked', { ...DEFAULT_LIMITS, binding: maxBinding }).weightsOf(fc).rows.length === 3, 'FC weight in 3 chunks');
  await matches('chunked', g, { maxBinding, winogradScratch: 80000 });
});

test('camgpu plan runs with no adapter (Vulkan loader given no driver) and prints what the planner plans', () => {
  const env = { ...process.env, VK_ICD_FILENAMES: '/nonexistent.json', VK_DRIVER_FILES: '/nonexistent.json' };
  const cli = (...args: string[]) => spawnSync(process.execPath, ['dist/cli.js', ...args], { encoding: 'utf8', env, timeout: 120_000 });
  // the same environment really has no adapter: a GPU command fails with the no-adapter message
  const gpuCmd = cli('classify', '--model', 'weights/resnet.onnx', '--input', `${fixtureDir('resnet')}/x.npy`);
  assert.is(gpuCmd.status, 1, gpuCmd.stderr);
  assert.match(gpuCmd.stderr, /no WebGPU adapter found/);
  const r = cli('plan', '--model', 'weights/resnet.onnx', '--methods', 'gradcam,liftcam,scorecam', '--batch', '4');
  assert.is(r.status, 0, r.stderr);
  const p = new Planner(onnx('weights/resnet.onnx'), 'resnet.onnx', DEFAULT_LIMITS), A = defaultLayer(p.graph);
  const grad = p.plan({ batch: 4, read: [A], backward: [{ grads: [A] }, { grads: [A], mode: 'deeplift', reference: { zeroAt: A } }] });
  const fwd = p.plan({ batch: 4 });
  assert.ok(r.stdout.includes(`plan 'gradient' batch 4: ${grad.dispatches.length} dispatches`), r.stdout.slice(0, 2000));
  assert.ok(r.stdout.includes(`plan 'forward' batch 4: ${fwd.dispatches.length} dispatches`), r.stdout.slice(0, 2000));
  for (const d of grad.dispatches) assert.ok(r.stdout.includes(d.label), `${d.label} printed`);
  const weights = p.statics.reduce((s, b) => s + b.size, 0);
  assert.ok(r.stdout.includes(`peak memory: ${((weights + grad.bytes + fwd.bytes) / 2 ** 20).toFixed(2)} MiB`), r.stdout.slice(-600));
});

/** n deterministic images of g's input shape (sine patterns, distinct per image). */
function images(g: Graph, n: number): Float32Array {
  const per = g.tensors.get(g.input)!.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n * per);
  for (let i = 0; i < out.length; i++) out[i] = Math.sin(0.37 * (i % per) + 1.3 * Math.floor(i / per)) * (1 + 0.1 * Math.floor(i / per));
  return out;
}

// k of B (issue 13 target 3): a run of k < batch images replays the plan at batch k on the plan's own buffers
const GRADIENT = METHOD_NAMES.filter((m) => METHODS[m].kind === 'gradient' && !METHODS[m].runner);
test('k of B: k = 1, 3 images in a batch-4 plan = the same images in a full run, bit for bit, with fewer workgroups (resnet, vgg)', async () => {
  assert.ok(GRADIENT.length >= 8 && GRADIENT.includes('gradcam') && GRADIENT.includes('liftcam'), `gradient-pass methods ${GRADIENT}`);
  for (const [name, path] of [['resnet', 'weights/resnet.onnx'], ['vgg', `${fixtureDir('vgg')}/model.onnx`]]) {
    // CAM needs GAP -> linear after the layer, which vgg's head (maxpool, three linears) is not
    const methods: Method[] = [...GRADIENT, 'saliency', 'integrated-gradients'].filter((mm) => name === 'resnet' || mm !== 'cam') as Method[];
    const gpu = await nodeGpu(), m = await Model.load(gpu, readFileSync(path), name), g = m.graph, B = 4;
    const per = g.tensors.get(g.input)!.shape.reduce((a, b) => a * b, 1), A = defaultLayer(g);
    const ex = new Explainer(m), o = { methods, batch: B, ig: { steps: 3 } };
    try {
      // plan level: the trace of a k-image run, and every read-back against the first k rows of a full run
      const plan = await m.plan({ batch: B, read: [A], backward: [{ grads: [A, g.input] }, { grads: [A], mode: 'deeplift', reference: { zeroAt: A } }] });
      const x = images(g, B), cls = new Int32Array(B).fill(-1);
      const full = await plan.run(x, { classes: cls, trace: true });
      const groups = (t: { groups: [number, number] }[]) => t.reduce((s, d) => s + d.groups[0] * d.groups[1], 0);
      for (const k of [1, 3]) {
        const r = await plan.run(x.subarray(0, k * per), { classes: cls.subarray(0, k), trace: true });
        assert.is(r.trace!.length, full.trace!.length, `${name} k=${k}: the same dispatches`);
        assert.equal(r.trace!.map((d) => d.pipeline), full.trace!.map((d) => d.pipeline), `${name} k=${k}: the same pipelines`);
        r.trace!.forEach((d, i) => assert.ok(d.groups[0] * d.groups[1] <= full.trace![i].groups[0] * full.trace![i].groups[1], `${name} k=${k}: ${d.label} workgroups ${d.groups} vs ${full.trace![i].groups}`));
        const share = groups(r.trace!) / groups(full.trace!);
        assert.ok(share < (k + 0.5) / B, `${name} k=${k}: ${share.toFixed(3)} of the full run's workgroups`);
        const rows = (a: Float32Array) => a.subarray(0, (a.length / B) * k);
        assert.equal(r.logits, rows(full.logits), `${name} k=${k}: logits`);
        assert.equal(r.targets, full.targets!.subarray(0, k), `${name} k=${k}: targets`);
        for (const [t, v] of r.values) assert.equal(v, rows(full.values.get(t)!), `${name} k=${k}: value ${t}`);
        r.passes.forEach((p, j) => { for (const [t, v] of p) assert.equal(v, rows(full.passes[j].get(t)!), `${name} k=${k}: pass ${j} grad ${t}`); });
      }
      plan.destroy();
      // explain level: every gradient-pass method (with saliency, from the same pass) and Integrated Gradients (3
      // steps: its own batch-4 plan). ref: the k images first in a full batch of 4; sub: 4 other images first, so the
      // k images are the last chunk (k of B); Integrated Gradients' 3 samples per image end in a partial chunk too
      for (const k of [1, 3]) {
        const imgs = images(g, B + k), mine = imgs.subarray(B * per);
        const ref = await ex.explain(Float32Array.from([...mine, ...imgs.subarray(0, (B - k) * per)]), o);
        const sub = await ex.explain(imgs, o);
        for (let i = 0; i < k; i++) {
          const a = ref.images[i], b = sub.images[B + i];
          assert.is(b.target, a.target, `${name} k=${k} image ${i}: target`);
          assert.equal(b.logits, a.logits, `${name} k=${k} image ${i}: logits`);
          for (const mm of methods) {
            const ma = a.methods[mm]!, mb = b.methods[mm]!;
            assert.equal(mb.map, ma.map, `${name} k=${k} image ${i}: ${mm} map`);
            assert.equal(mb.raw, ma.raw, `${name} k=${k} image ${i}: ${mm} raw`);
            assert.equal(mb.weights, ma.weights, `${name} k=${k} image ${i}: ${mm} weights`);
          }
        }
      }
    } finally { ex.destroy(); m.destroy(); }
  }
});

test.run();
