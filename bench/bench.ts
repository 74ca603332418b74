// camgpu benchmark: conv kernels per layer shape of ResNet-50 and VGG16 (224, batch 1) and both nets end to end.
// Everything is checked before it is timed, and speeds are printed as ratios to a CPU sgemm measured in the
// same run (never timing assertions in tests).
//   npm run bench                 every conv shape of both nets, both nets end to end
//   npm run bench -- --quick      a few shapes, ResNet-50 end to end only
//   npm run bench -- --tag=NAME   appends NAME to the results file name
//   npm run bench -- --compare=bench/results/FILE.json   adds before/after tables against an earlier run
//   npm run bench -- --kbatch     only the k-of-B section (k = 1, 4, 16 images in a batch-16 plan)
// Writes bench/results/<date>-<adapter>[-NAME].json and prints markdown tables.
//
// GFLOP/s counts a direct convolution's 2 x MACs, also for Winograd layers (which multiply 2.25x less): an effective rate.
// Timing: a kernel is timed alone, on the GPU only: the same dispatch encoded R times in one compute pass,
// one submit, then onSubmittedWorkDone; ms = wall / R (R sized so a batch takes ~0.2 s; median of 3 batches).
// That leaves out plan.run's upload, submit and read-back, which the end-to-end numbers (plain plan.run,
// median of several) include. The per-node breakdown comes from plan.run({ profile: true }): timestamp queries
// around every dispatch of a real run (Dawn quantises them to 2^16 ns = 0.066 ms).
// On a CPU adapter (lavapipe) other processes take cores from the kernels, so the results also keep the process
// CPU time per dispatch (driver threads included) and the load average; compare CPU times across loaded runs.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { closeGpu, nodeGpu } from '../node/gpu.js';
import { GraphBuilder, mulberry32, resnet50, vgg16 } from '../src/builder.js';
import { ConvOp, Graph, numel } from '../src/graph.js';
import { macs } from '../src/ops/index.js';
import { Gpu } from '../src/gpu.js';
import { Model, Plan, Step } from '../src/model.js';
import { Tile, convKernels, convShape, tileName } from '../src/conv.js';
import { tune } from '../src/tune.js';
import { refBackward, refForward } from '../tests/ref.js';
import { Explainer, defaultLayer } from '../src/explain.js';
import { fixtureDir, meta, npy } from '../tests/helpers.js';
import { median, rand, referenceLogits, relErr } from './common.js';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const KBATCH_ONLY = args.includes('--kbatch');
const TAG = args.find((a) => a.startsWith('--tag='))?.slice(6);
const COMPARE = args.find((a) => a.startsWith('--compare='))?.slice(10);
const TARGET_S = QUICK ? 0.1 : 0.2; // wall time of one timed batch of R dispatches
const TOL = 1e-4;                    // per-layer check: max |gpu - ref| / max |ref|
const E2E_TOL = 1e-3;                // end to end: float32 through 16-53 layers vs float64
const E2E_S = QUICK ? 2 : 4;         // wall time per end-to-end measurement (the count of runs adapts)

// ---------- helpers ----------

const gflops = (macCount: number, ms: number) => (2 * macCount) / (ms * 1e6);
const f1 = (v: number) => v.toFixed(1), f2 = (v: number) => v.toFixed(2);


/** A plan's dispatches in encode order. The bench reads the private lists on purpose: it times exactly the
 *  dispatches the engine replays, with no second copy of the dispatch logic. */
const stepsOf = (p: Plan) => ({ forward: p['forward'] as Step[], backward: p['backward'] as Step[] });

/** Wall and process-CPU ms per repetition of `steps`, GPU only (see the header). The CPU time counts the driver's
 *  worker threads too (lavapipe runs dispatches on CPU threads), so it shows how much of the machine a kernel used. */
async function gpuMs(gpu: Gpu, steps: Step[], reps: number): Promise<{ wall: number; cpu: number }> {
  const dev = gpu.device, enc = dev.createCommandEncoder({ label: 'bench' }), pass = enc.beginComputePass({ label: 'bench' });
  for (let r = 0; r < reps; r++) for (const s of steps) { pass.setPipeline(s.pipeline!); pass.setBindGroup(0, s.bind); pass.dispatchWorkgroups(s.groups[0], s.groups[1]); }
  pass.end();
  const c = process.cpuUsage(), t = performance.now();
  dev.queue.submit([enc.finish()]);
  await dev.queue.onSubmittedWorkDone();
  const wall = performance.now() - t, cu = process.cpuUsage(c);
  return { wall: wall / reps, cpu: (cu.user + cu.system) / 1000 / reps };
}

/** One warm-up batch sizes R; then the median (by wall time) of 3 batches. */
async function timeSteps(gpu: Gpu, steps: Step[], target = TARGET_S): Promise<{ wall: number; cpu: number }> {
  const first = await gpuMs(gpu, steps, 1);
  const reps = Math.max(1, Math.min(64, Math.round((target * 1000) / Math.max(first.wall, 0.01))));
  const t: { wall: number; cpu: number }[] = [];
  for (let i = 0; i < 3; i++) t.push(await gpuMs(gpu, steps, reps));
  gpu.check();
  return t.sort((a, b) => a.wall - b.wall)[1];
}

// ---------- CPU baseline: blocked sgemm in JS ----------

/**
 * C (M,N) = A (M,K) B (K,N), row-major Float32Arrays, single-threaded. B is packed into 4-column panels
 * (K,4) so the 4x4 register tile reads both operands contiguously; 16 accumulators live in locals over all
 * of K. Plain scalar JS (V8 does not vectorise), so this is what a careful CPU fallback in JS would get.
 */
function sgemm(M: number, N: number, K: number, A: Float32Array, B: Float32Array, C: Float32Array) {
  const P = new Float32Array(K * N); // panel j/4: P[(j/4)*K*4 + k*4 + jj] = B[k, j + jj]
  for (let j = 0; j < N; j += 4) for (let k = 0; k < K; k++) for (let jj = 0; jj < 4; jj++) P[j * K + k * 4 + jj] = B[k * N + j + jj];
  for (let i = 0; i < M; i += 4) {
    const a0 = i * K, a1 = a0 + K, a2 = a1 + K, a3 = a2 + K;
    for (let j = 0; j < N; j += 4) {
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      for (let k = 0, p = j * K; k < K; k++, p += 4) {
        const b0 = P[p], b1 = P[p + 1], b2 = P[p + 2], b3 = P[p + 3];
        const x0 = A[a0 + k], x1 = A[a1 + k], x2 = A[a2 + k], x3 = A[a3 + k];
        c00 += x0 * b0; c01 += x0 * b1; c02 += x0 * b2; c03 += x0 * b3;
        c10 += x1 * b0; c11 += x1 * b1; c12 += x1 * b2; c13 += x1 * b3;
        c20 += x2 * b0; c21 += x2 * b1; c22 += x2 * b2; c23 += x2 * b3;
        c30 += x3 * b0; c31 += x3 * b1; c32 += x3 * b2; c33 += x3 * b3;
      }
      const r0 = i * N + j, r1 = r0 + N, r2 = r1 + N, r3 = r2 + N;
      C[r0] = c00; C[r0 + 1] = c01; C[r0 + 2] = c02; C[r0 + 3] = c03;
      C[r1] = c10; C[r1 + 1] = c11; C[r1 + 2] = c12; C[r1 + 3] = c13;
      C[r2] = c20; C[r2 + 1] = c21; C[r2 + 2] = c22; C[r2 + 3] = c23;
      C[r3] = c30; C[r3 + 1] = c31; C[r3 + 2] = c32; C[r3 + 3] = c33;
    }
  }
}

/** GFLOP/s of sgemm at 512^3 (a mid-size ResNet layer as a GEMM: 512 channels x 784 pixels x 1152 taps is
 *  the same order), checked against a float64 dot product at sampled entries; median of 3. */
function sgemmBaseline(): { gflops: number; size: number } {
  const n = 512, A = rand(n * n, 11), B = rand(n * n, 12), C = new Float32Array(n * n), r = mulberry32(13);
  sgemm(n, n, n, A, B, C); // warm-up (JIT)
  for (let s = 0; s < 64; s++) {
    const i = Math.floor(r() * n), j = Math.floor(r() * n);
    let ref = 0; for (let k = 0; k < n; k++) ref += A[i * n + k] * B[k * n + j];
    if (Math.abs(C[i * n + j] - ref) > 1e-4 * Math.sqrt(n)) throw new Error(`sgemm baseline wrong at (${i},${j}): ${C[i * n + j]} vs ${ref}`);
  }
  const t: number[] = [];
  for (let i = 0; i < 3; i++) { const t0 = performance.now(); sgemm(n, n, n, A, B, C); t.push(performance.now() - t0); }
  return { gflops: gflops(n * n * n, median(t)), size: n };
}

// ---------- per-layer conv ----------

interface ConvShape { key: string; C: number; H: number; W: number; op: ConvOp; out: number[]; layers: string[] }
interface LayerResult {
  shape: string; layers: string[]; kernels: string; macs: number; check: string; fwdErr: number; bwdErr: number;
  fwdMs: number; fwdCpuMs: number; fwdGflops: number; bwdMs: number; bwdCpuMs: number; bwdGflops: number;
  /** The forward with the tile `camgpu tune` picked on this adapter (checked the same way), when it differs. */
  tuned?: { tile: string; err: number; ms: number; gflops: number };
}

/** Distinct conv shapes of a graph, with the names of the layers that have each. */
function convShapes(g: Graph, net: string): ConvShape[] {
  const m = new Map<string, ConvShape>();
  for (const n of g.nodes) {
    const op = n.op;
    if (op.kind !== 'conv') continue;
    const [C, H, W] = g.tensors.get(n.inputs[0])!.shape, out = g.tensors.get(n.output)!.shape;
    const key = `${C}x${H}x${W}->${op.cout} k${op.kh} s${op.stride[0]}${op.pad[0] ? ` p${op.pad[0]}` : ''}${op.group > 1 ? ` g${op.group}` : ''}`;
    if (!m.has(key)) m.set(key, { key, C, H, W, op, out, layers: [] });
    m.get(key)!.layers.push(`${net}:${n.name}`);
  }
  return [...m.values()];
}

/** Float64 y at flat output position i (N = 1), straight from the definition. */
function convAt(op: ConvOp, s: ConvShape, x: Float32Array, i: number): number {
  const [K, OH, OW] = s.out, CG = s.C / op.group, KG = K / op.group;
  const ox = i % OW, oy = Math.floor(i / OW) % OH, k = Math.floor(i / (OW * OH)), c0 = Math.floor(k / KG) * CG;
  let v = op.b[k];
  for (let c = 0; c < CG; c++) for (let ky = 0; ky < op.kh; ky++) for (let kx = 0; kx < op.kw; kx++) {
    const iy = oy * op.stride[0] - op.pad[0] + ky * op.dil[0], ix = ox * op.stride[1] - op.pad[1] + kx * op.dil[1];
    if (iy >= 0 && iy < s.H && ix >= 0 && ix < s.W) v += op.w[((k * CG + c) * op.kh + ky) * op.kw + kx] * x[((c0 + c) * s.H + iy) * s.W + ix];
  }
  return v;
}

/** Float64 dx at flat input position i (N = 1): every output that read x[i] sends back w * dy. */
function convGradAt(op: ConvOp, s: ConvShape, dy: Float32Array, i: number): number {
  const [K, OH, OW] = s.out, CG = s.C / op.group, KG = K / op.group;
  const ix = i % s.W, iy = Math.floor(i / s.W) % s.H, c = Math.floor(i / (s.W * s.H)), g = Math.floor(c / CG), cl = c % CG;
  let v = 0;
  for (let ky = 0; ky < op.kh; ky++) for (let kx = 0; kx < op.kw; kx++) {
    const ty = iy + op.pad[0] - ky * op.dil[0], tx = ix + op.pad[1] - kx * op.dil[1];
    if (ty < 0 || tx < 0 || ty % op.stride[0] || tx % op.stride[1]) continue;
    const oy = ty / op.stride[0], ox = tx / op.stride[1];
    if (oy >= OH || ox >= OW) continue;
    for (let k = g * KG; k < (g + 1) * KG; k++) v += op.w[((k * CG + cl) * op.kh + ky) * op.kw + kx] * dy[(k * OH + oy) * OW + ox];
  }
  return v;
}

const FULL_REF_MACS = 5e7; // below this the whole layer goes through tests/ref.ts; above, 1024 sampled positions
const SAMPLES = 1024;

async function benchConv(gpu: Gpu, s: ConvShape, tiles: Record<string, Tile>): Promise<LayerResult> {
  const op = s.op, b = new GraphBuilder([s.C, s.H, s.W], 1);
  const g = b.finish(b.conv(b.input, op.cout, [op.kh, op.kw], { stride: op.stride, pad: op.pad, dil: op.dil, group: op.group }));
  const node = g.nodes[0], w = node.op as ConvOp, mac = macs(g, node), k = convKernels(g, node), tile = tiles[convShape(g, node)];
  const model = await Model.load(gpu, g, `bench ${s.key}`);
  try {
    const t = model.transposed(node); // stride 1: the backward runs as a forward conv
    const kernels = `${k.forward.replace('conv2d_', '')}, ${t ? `${model.convKernels(t).forward.replace('conv2d_', '')} (transposed)` : k.backward.replace('conv2d_', '')}`;
    const plan = await model.plan({ batch: 1, grads: [g.input] });
    const x = rand(s.C * s.H * s.W, 2), dy = rand(numel(s.out), 3);
    const res = await plan.run(x, { seed: dy });
    const y = res.logits, dx = res.grads.get(g.input)!;
    // y and dx against float64: the whole layer through tests/ref.ts when small, else SAMPLES positions
    let yErr: (y: Float32Array) => number, bwdErr: number, check: string;
    if (mac <= FULL_REF_MACS) {
      const vals = refForward(g, Float64Array.from(x), 1), ry = vals.get(node.output)!;
      yErr = (v) => relErr(v, ry);
      bwdErr = relErr(dx, refBackward(g, vals, node.output, Float64Array.from(dy), 1, 'grad').get(g.input)!);
      check = 'ref.ts';
    } else {
      const r = mulberry32(4), at: number[] = [], ry: number[] = [], ix = [], rx = [];
      for (let k = 0; k < SAMPLES; k++) {
        const i = Math.floor(r() * y.length); at.push(i); ry.push(convAt(w, s, x, i));
        const j = Math.floor(r() * dx.length); ix.push(dx[j]); rx.push(convGradAt(w, s, dy, j));
      }
      yErr = (v) => relErr(at.map((i) => v[i]), ry);
      bwdErr = relErr(ix, rx);
      check = `${SAMPLES} samples`;
    }
    const fwdErr = yErr(y);
    if (!(fwdErr <= TOL) || !(bwdErr <= TOL)) throw new Error(`conv ${s.key}: GPU differs from the float64 reference: forward ${fwdErr.toExponential(2)}, backward-input ${bwdErr.toExponential(2)} (tolerance ${TOL})`);
    const { forward, backward } = stepsOf(plan);
    const fwd = await timeSteps(gpu, forward), bwd = await timeSteps(gpu, backward);
    const r: LayerResult = { shape: s.key, layers: s.layers, kernels, macs: mac, check, fwdErr, bwdErr, fwdMs: fwd.wall, fwdCpuMs: fwd.cpu, fwdGflops: gflops(mac, fwd.wall),
      bwdMs: bwd.wall, bwdCpuMs: bwd.cpu, bwdGflops: gflops(mac, bwd.wall) };
    if (tile) {
      model.tiles = { [convShape(g, node)]: tile };
      const tp = await model.plan({ batch: 1 }), err = yErr((await tp.run(x)).logits);
      if (!(err <= TOL)) throw new Error(`conv ${s.key}, tuned tile ${tile.TK}x${tile.TP}: differs from the float64 reference by ${err.toExponential(2)}`);
      const t = await timeSteps(gpu, stepsOf(tp).forward);
      r.tuned = { tile: tileName(tile), err, ms: t.wall, gflops: gflops(mac, t.wall) };
    }
    return r;
  } finally { model.destroy(); }
}

// ---------- end to end ----------

interface E2EResult {
  net: string; gmacs: number; logitsErr: number; reference: string; gradcamLayer: string;
  /** forward with the default tiles, then everything with the tuned ones */
  forwardDefaultMs: number; forwardMs: number; gradcamMs: number; tunedShapes: number;
  saliencyMs: number; forwardGflops: number;
  /** GPU bytes each plan holds (activations, gradients, read-back staging; weights excluded). */
  forwardBytes: number; gradcamBytes: number;
  /** GPU-only ms per node (forward) and for the whole backward to the Grad-CAM layer, each dispatch timed alone. */
  breakdown: { node: string; kind: string; ms: number }[]; breakdownSumMs: number; backwardSteps: number; backwardMs: number;
}

/** plan.run wall ms: a warm-up run sizes the count (about E2E_S seconds in all, 1 to 5 runs), then the median. */
async function medianRun(plan: Plan, x: Float32Array, o: Parameters<Plan['run']>[1]): Promise<number> {
  let t0 = performance.now();
  await plan.run(x, o);
  const n = Math.max(1, Math.min(5, Math.round((E2E_S * 1000) / (performance.now() - t0))));
  const t: number[] = [];
  for (let i = 0; i < n; i++) { t0 = performance.now(); await plan.run(x, o); t.push(performance.now() - t0); }
  return median(t);
}

async function benchNet(gpu: Gpu, net: string, g: Graph, gradcamLayer: string, tiles: Record<string, Tile>): Promise<E2EResult> {
  const model = await Model.load(gpu, g, net), gm = g.nodes.reduce((s, n) => s + macs(g, n), 0) / 1e9;
  try {
    const x = rand(3 * 224 * 224, 5);
    const plain = await model.plan({ batch: 1 }), forwardDefaultMs = await medianRun(plain, x, {});
    plain.destroy();
    model.tiles = tiles; // every plan from here on uses the tuned tiles
    const fwd = await model.plan({ batch: 1 });
    const logits = (await fwd.run(x)).logits;
    let varies = false;
    for (const v of logits) { if (!Number.isFinite(v)) throw new Error(`${net}: non-finite logit`); if (v !== logits[0]) varies = true; }
    if (!varies) throw new Error(`${net}: constant logits`);
    const ref = referenceLogits(net, g, x), logitsErr = relErr(logits, ref.logits);
    if (!(logitsErr <= E2E_TOL)) throw new Error(`${net}: logits differ from the float64 reference by ${logitsErr.toExponential(2)} (tolerance ${E2E_TOL})`);
    const forwardMs = await medianRun(fwd, x, {});
    // Grad-CAM: forward, top-1 class chosen on the GPU, backward to the last conv block's activation.
    const cam = await model.plan({ batch: 1, grads: [gradcamLayer] });
    const gradcamMs = await medianRun(cam, x, { classes: Int32Array.of(-1) });
    // Saliency / guided backprop cost: backward all the way to the image (every conv's backward-input).
    const sal = await model.plan({ batch: 1, grads: [g.input] });
    const saliencyMs = await medianRun(sal, x, { classes: Int32Array.of(-1) });
    sal.destroy();
    // Breakdown: the Grad-CAM plan run once more with timestamp queries around every dispatch, grouped by node.
    const prof = (await cam.run(x, { classes: Int32Array.of(-1), profile: true })).profile!, kind = new Map(g.nodes.map((n) => [n.name, n.op.kind]));
    const breakdown: E2EResult['breakdown'] = [];
    for (const e of prof.filter((p) => p.phase === 'forward')) {
      const node = e.label.replace(/\[\d+\]$/, ''), last = breakdown[breakdown.length - 1];
      if (last?.node === node) last.ms += e.ms; else breakdown.push({ node, kind: node.split('+').map((n) => kind.get(n) ?? n).join('+'), ms: e.ms });
    }
    const back = prof.filter((p) => p.phase === 'backward'), backwardMs = back.reduce((a, p) => a + p.ms, 0);
    const breakdownSumMs = breakdown.reduce((a, b) => a + b.ms, 0);
    const mine = new Set(g.nodes.filter((n) => n.op.kind === 'conv').map((n) => convShape(g, n)));
    return { net, gmacs: gm, logitsErr, reference: ref.how, forwardDefaultMs, forwardMs, gradcamMs, gradcamLayer, saliencyMs, forwardGflops: gflops(gm * 1e9, forwardMs),
      tunedShapes: Object.keys(tiles).filter((k) => mine.has(k)).length,
      forwardBytes: fwd.bytes, gradcamBytes: cam.bytes,
      breakdown, breakdownSumMs, backwardSteps: back.length, backwardMs };
  } finally { model.destroy(); }
}

// ---------- k of B: a request of k images in a batch-B plan ----------

interface KBatchRow { plan: string; k: number; ms: number; ratio: number; cpuMs: number; cpuRatio: number; ideal: number; groups: number }

/**
 * k = 1, 4, 16 images through batch-16 plans of the bundled ResNet (weights/resnet.onnx, 64x64): explain()'s
 * gradient plan (Grad-CAM's backward to the layer and LIFT-CAM's DeepLIFT pass, classes chosen on the GPU) and a
 * forward-only plan. Checked first: every read-back of a k-image run equals the first k rows of the full run, bit
 * for bit. Timed: plan.run wall ms, the three k interleaved per round (15 rounds after a warm-up each), median, with the process CPU time
 * (lavapipe's threads run in this process: less moved by other processes' load than wall time); the
 * ratio is to the k = 16 time of the same run (ideal k/16; before k of B every k cost the k = 16 time).
 */
async function benchKBatch(gpu: Gpu): Promise<KBatchRow[]> {
  const model = await Model.load(gpu, readFileSync('weights/resnet.onnx'), 'resnet'), g = model.graph, B = 16, A = defaultLayer(g);
  const per = numel(model.inputShape), x = rand(B * per, 11), cls = new Int32Array(B).fill(-1), rows: KBatchRow[] = [];
  try {
    const plans: [string, Plan, boolean][] = [
      ['gradient (grad + DeepLIFT at the layer)', await model.plan({ batch: B, read: [A], backward: [{ grads: [A] }, { grads: [A], mode: 'deeplift', reference: { zeroAt: A } }] }), true],
      ['forward', await model.plan({ batch: B }), false],
    ];
    for (const [name, plan, grad] of plans) {
      const opts = (k: number) => (grad ? { classes: cls.subarray(0, k) } : {});
      const full = await plan.run(x, { ...opts(B), trace: true });
      const ks = [1, 4, 16], groups = new Map<number, number>(), times = new Map<number, number[]>(ks.map((k) => [k, []])), cpu = new Map<number, number[]>(ks.map((k) => [k, []]));
      for (const k of ks) {
        const r = await plan.run(x.subarray(0, k * per), { ...opts(k), trace: true });
        groups.set(k, r.trace!.reduce((s, d) => s + d.groups[0] * d.groups[1], 0));
        const same = (a: Float32Array, b: Float32Array) => a.length === (b.length / B) * k && a.every((v, i) => Object.is(v, b[i]));
        const ok = same(r.logits, full.logits) && [...r.values].every(([t, v]) => same(v, full.values.get(t)!))
          && r.passes.every((p, j) => [...p].every(([t, v]) => same(v, full.passes[j].get(t)!)));
        if (!ok) throw new Error(`k of B: ${name} plan, k=${k}: the read-backs differ from the first ${k} rows of the full batch`);
      }
      for (let round = 0; round < 15; round++) for (const k of ks) {
        const t0 = performance.now(), c0 = process.cpuUsage();
        await plan.run(x.subarray(0, k * per), opts(k));
        const c = process.cpuUsage(c0);
        times.get(k)!.push(performance.now() - t0);
        cpu.get(k)!.push((c.user + c.system) / 1000);
      }
      const t16 = median(times.get(16)!), c16 = median(cpu.get(16)!);
      for (const k of ks) {
        const ms = median(times.get(k)!), cpuMs = median(cpu.get(k)!);
        rows.push({ plan: name, k, ms, ratio: ms / t16, cpuMs, cpuRatio: cpuMs / c16, ideal: k / B, groups: groups.get(k)! / groups.get(16)! });
      }
      plan.destroy();
    }
  } finally { model.destroy(); }
  return rows;
}

function printKBatch(rows: KBatchRow[]) {
  console.log('\n## k of B: k images in a batch-16 plan (bundled resnet, 64x64), plan.run wall ms, median of 15 interleaved rounds (checked: k-image read-backs = the full run\'s first k rows, bit for bit)\n');
  console.log('| plan | k | wall ms | ratio to k = 16 | process CPU ms | ratio to k = 16 | ideal k/16 | workgroups vs k = 16 |');
  console.log('|---|--:|--:|--:|--:|--:|--:|--:|');
  for (const r of rows) console.log(`| ${r.plan} | ${r.k} | ${f1(r.ms)} | ${f2(r.ratio)} | ${f1(r.cpuMs)} | ${f2(r.cpuRatio)} | ${f2(r.ideal)} | ${f2(r.groups)} |`);
}

// ---------- perturbation methods: masked forwards per second ----------

interface PerturbResult { model: string; method: string; batch: number; forwards: number; ms: number; perSec: number }

/**
 * Score-CAM and RISE throughput on the bundled ResNet (64x64 scenes, weights/resnet.onnx): one explanation per
 * method at perturbation batch 1 and 16 (explain()'s own timing of the method, masks built on the host and
 * uploaded per batch). Checked first: Score-CAM on the resnet fixture against PyTorch's (tests/fixtures/resnet/cam),
 * and RISE at batch 16 equal to RISE at batch 1 (the same seeded masks).
 */
async function benchPerturbation(gpu: Gpu): Promise<{ check: string; rows: PerturbResult[] }> {
  const m = meta('resnet'), fx = npy('resnet', 'x.npy'), fixture = await Model.load(gpu, readFileSync(`${fixtureDir('resnet')}/model.onnx`), 'resnet fixture');
  let check: string;
  try {
    const r = await new Explainer(fixture).explain(fx.data, { layer: m.target, targets: m.classes, methods: ['scorecam'], batch: 8 });
    const raw = Float32Array.from(r.images.flatMap((i) => Array.from(i.methods.scorecam!.raw)));
    const e = relErr(raw, npy('resnet', 'cam/fixed/scorecam.raw.npy').data);
    if (!(e <= 1e-4)) throw new Error(`Score-CAM on the resnet fixture differs from PyTorch by ${e.toExponential(2)}`);
    check = `Score-CAM vs PyTorch (resnet fixture) ${e.toExponential(1)}`;
  } finally { fixture.destroy(); }
  const model = await Model.load(gpu, readFileSync('weights/resnet.onnx'), 'resnet (bundled)');
  const rows: PerturbResult[] = [], n = QUICK ? 256 : 1024, x = rand(numel(model.inputShape), 11);
  try {
    const maps: Record<number, Float32Array> = {};
    for (const method of ['scorecam', 'rise'] as const) for (const batch of [1, 16]) {
      const ex = new Explainer(model), o = { methods: [method], batch, rise: { n } };
      try {
        await ex.explain(x, { ...o, rise: { n: batch } }); // compiles the plans
        const e = await ex.explain(x, o), ms = e.timings[method], forwards = method === 'scorecam' ? e.layerShape[0] : n;
        if (method === 'rise') maps[batch] = e.images[0].methods.rise!.map;
        rows.push({ model: 'resnet (bundled, 64x64)', method, batch, forwards, ms, perSec: (1000 * forwards) / ms });
      } finally { ex.destroy(); }
    }
    const d = relErr(maps[16], maps[1]);
    if (!(d <= 1e-5)) throw new Error(`RISE at batch 16 differs from batch 1 by ${d.toExponential(2)}`);
    check += `; RISE batch 16 vs 1 ${d.toExponential(1)}`;
  } finally { model.destroy(); }
  return { check, rows };
}

// ---------- before / after ----------

/** Tables of this run against an earlier results file: wall-time ratios, and process-CPU ratios (robust to load). */
function compare(old: { layers: LayerResult[]; e2e: E2EResult[]; load?: number[]; sgemm: { gflops: number } }, name: string) {
  const x = (a: number, b: number) => `${f2(a / b)}x`;
  console.log(`\n## Against ${name} (load ${old.load?.map(f1).join(' -> ') ?? '?'}, sgemm ${f2(old.sgemm.gflops)} GFLOP/s then)\n`);
  console.log('| shape | fwd ms before | after | speed-up | CPU-time speed-up | bwd-in ms before | after | speed-up | CPU-time speed-up |');
  console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const l of layers) {
    const o = old.layers.find((p) => p.shape === l.shape);
    if (o) console.log(`| ${l.shape} | ${f1(o.fwdMs)} | ${f1(l.fwdMs)} | ${x(o.fwdMs, l.fwdMs)} | ${x(o.fwdCpuMs, l.fwdCpuMs)} | ${f1(o.bwdMs)} | ${f1(l.bwdMs)} | ${x(o.bwdMs, l.bwdMs)} | ${x(o.bwdCpuMs, l.bwdCpuMs)} |`);
  }
  console.log('\n| net | forward ms before | after | Grad-CAM ms before | after | saliency ms before | after |');
  console.log('|---|--:|--:|--:|--:|--:|--:|');
  for (const e of e2e) {
    const o = old.e2e.find((p) => p.net === e.net);
    if (o) console.log(`| ${e.net} | ${f1(o.forwardMs)} | ${f1(e.forwardMs)} (${x(o.forwardMs, e.forwardMs)}) | ${f1(o.gradcamMs)} | ${f1(e.gradcamMs)} (${x(o.gradcamMs, e.gradcamMs)}) | ${f1(o.saliencyMs)} | ${f1(e.saliencyMs)} (${x(o.saliencyMs, e.saliencyMs)}) |`);
  }
}

// ---------- main ----------

const t0 = performance.now();
mkdirSync('bench/results', { recursive: true });
const gpu = await nodeGpu();
const load0 = loadavg()[0];
console.log(`# camgpu bench${QUICK ? ' (--quick)' : ''}\n\nadapter: ${gpu.adapterInfo}\nload average at start: ${f2(load0)} (on ${cpus().length} CPUs; other processes slow a CPU adapter down)\n`);
if (KBATCH_ONLY) {
  const rows = await benchKBatch(gpu);
  printKBatch(rows);
  const file = `bench/results/${new Date().toISOString().slice(0, 10)}-kbatch${TAG ? `-${TAG}` : ''}.json`;
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), adapter: gpu.adapterInfo, load: [load0, loadavg()[0]], kbatch: rows, totalS: (performance.now() - t0) / 1000 }, null, 1));
  console.log(`\nwrote ${file} (${f1((performance.now() - t0) / 1000)} s)`);
  await closeGpu();
  process.exit(0);
}
const base = sgemmBaseline();
console.log(`CPU baseline: JS sgemm ${base.size}^3, single thread: ${f2(base.gflops)} GFLOP/s\n`);

const nets: [string, () => Graph, string][] = [['resnet50', () => resnet50(), 'layer4.2.relu_2'], ['vgg16', () => vgg16(), 'features.29']];
const graphs = new Map(nets.map(([name, make]) => [name, make()]));
let shapes = [...graphs].flatMap(([name, g]) => convShapes(g, name));
if (QUICK) shapes = shapes.filter((s) => ['64x56x56->64 k3 s1 p1', '256x56x56->64 k1 s1', '128x28x28->128 k3 s1 p1', '1024x14x14->256 k1 s1', '256x56x56->256 k3 s1 p1'].includes(s.key));

// The autotuner (src/tune.ts, what `camgpu tune` runs) on every conv shape of the nets run end to end.
const tiles: Record<string, Tile> = {};
const tuneT = performance.now();
for (const [name] of QUICK ? nets.slice(0, 1) : nets) for (const e of await tune(gpu, graphs.get(name)!)) tiles[e.shape] = e.best;
console.log(`tuned ${Object.keys(tiles).length} conv layer shapes (${QUICK ? 'resnet50' : 'resnet50, vgg16'}) in ${f1((performance.now() - tuneT) / 1000)} s\n`);

console.log('## Conv layers (batch 1), GPU-only time per dispatch: default tile, then the tuned one\n');
console.log(`| shape (CxHxW->K) | layers | kernels (fwd, bwd-in) | MMAC | check | fwd ms | fwd GFLOP/s | x sgemm | tuned tile | fwd ms | GFLOP/s | x sgemm | bwd-in ms | bwd-in GFLOP/s | x sgemm |`);
console.log(`|---|---|---|--:|---|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|`);
const layers: LayerResult[] = [];
for (const s of shapes) {
  const r = await benchConv(gpu, s, tiles), t = r.tuned;
  layers.push(r);
  const names = r.layers.length > 2 ? `${r.layers[0]} +${r.layers.length - 1}` : r.layers.join(', ');
  const tuned = t ? `${t.tile} | ${f2(t.ms)} | ${f2(t.gflops)} | ${f2(t.gflops / base.gflops)}` : '(default) | | |';
  console.log(`| ${r.shape} | ${names} | ${r.kernels} | ${f1(r.macs / 1e6)} | ${r.check} | ${f2(r.fwdMs)} | ${f2(r.fwdGflops)} | ${f2(r.fwdGflops / base.gflops)} | ${tuned} | ${f2(r.bwdMs)} | ${f2(r.bwdGflops)} | ${f2(r.bwdGflops / base.gflops)} |`);
}

for (const [net] of nets) {
  const own = layers.filter((l) => l.layers.some((n) => n.startsWith(`${net}:`)));
  const sum = (f: (l: LayerResult) => number) => own.reduce((a, l) => a + f(l) * l.layers.filter((n) => n.startsWith(`${net}:`)).length, 0);
  if (own.length) console.log(`\n${net}, every conv layer once (${QUICK ? 'the shapes above only' : 'sum of shape time x count'}): forward ${f1(sum((l) => l.fwdMs))} ms (tuned ${f1(sum((l) => l.tuned?.ms ?? l.fwdMs))} ms), backward-input ${f1(sum((l) => l.bwdMs))} ms`);
}

const e2e: E2EResult[] = [];
for (const [name, , layer] of QUICK ? nets.slice(0, 1) : nets) e2e.push(await benchNet(gpu, name, graphs.get(name)!, layer, tiles));
console.log('\n## End to end (224, batch 1), plan.run wall time, median; tuned tiles except the first forward column\n');
console.log('| net | GMAC | logits err (vs float64) | forward ms, default tiles | forward ms, tuned | GFLOP/s | x sgemm | Grad-CAM fwd+bwd ms | layer | saliency fwd+bwd-to-input ms |');
console.log('|---|--:|--:|--:|--:|--:|--:|--:|---|--:|');
for (const r of e2e) console.log(`| ${r.net} | ${f2(r.gmacs)} | ${r.logitsErr.toExponential(1)} | ${f1(r.forwardDefaultMs)} | ${f1(r.forwardMs)} | ${f2(r.forwardGflops)} | ${f2(r.forwardGflops / base.gflops)} | ${f1(r.gradcamMs)} | ${r.gradcamLayer} | ${f1(r.saliencyMs)} |`);
const mib = (b: number) => `${f1(b / 2 ** 20)} MiB`;
for (const r of e2e) console.log(`\n${r.net} GPU memory per plan (weights excluded): forward ${mib(r.forwardBytes)} (buffers reused by lifetime), Grad-CAM ${mib(r.gradcamBytes)}`);
for (const r of e2e) {
  const byKind = new Map<string, number>();
  for (const b of r.breakdown) byKind.set(b.kind, (byKind.get(b.kind) ?? 0) + b.ms);
  console.log(`\n### ${r.net}: where forward time goes (Grad-CAM plan, timestamp queries around each dispatch; sum ${f1(r.breakdownSumMs)} ms vs ${f1(r.forwardMs)} ms per plan.run)\n`);
  console.log(`by op: ${[...byKind].sort((a, b) => b[1] - a[1]).map(([k, ms]) => `${k} ${f1(ms)} ms (${f1((100 * ms) / r.breakdownSumMs)}%)`).join(', ')}; `
    + `Grad-CAM backward (${r.backwardSteps} dispatches) ${f1(r.backwardMs)} ms`);
  console.log(`top nodes: ${[...r.breakdown].sort((a, b) => b.ms - a.ms).slice(0, 8).map((b) => `${b.node} ${f1(b.ms)}`).join(', ')}`);
}

const perturb = await benchPerturbation(gpu);
console.log(`\n## Perturbation methods: masked forwards per second (checked: ${perturb.check})\n`);
console.log('| model | method | batch | forwards | ms | forwards/s |');
console.log('|---|---|--:|--:|--:|--:|');
for (const p of perturb.rows) console.log(`| ${p.model} | ${p.method} | ${p.batch} | ${p.forwards} | ${f1(p.ms)} | ${f1(p.perSec)} |`);

const kbatch = await benchKBatch(gpu);
printKBatch(kbatch);

if (COMPARE) compare(JSON.parse(readFileSync(COMPARE, 'utf8')), COMPARE);

// adapter name up to the first ':' ("mesa software llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)" -> mesa-software-llvmpipe)
const date = new Date().toISOString().slice(0, 10), slug = gpu.adapterInfo.split(':')[0].toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
const file = `bench/results/${date}-${slug || 'adapter'}${TAG ? `-${TAG}` : ''}.json`;
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), adapter: gpu.adapterInfo, quick: QUICK, load: [load0, loadavg()[0]], sgemm: base, tiles, layers, e2e, perturbation: perturb, kbatch, totalS: (performance.now() - t0) / 1000 }, null, 1));
console.log(`\nwrote ${file} (${f1((performance.now() - t0) / 1000)} s)`);
await closeGpu();
