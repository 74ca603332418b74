// Per-kernel checks of the WGSL kernels (through Model plans on one shared Dawn device) against independent oracles:
// the float64 CPU reference (tests/ref.ts: refForward / refBackward in modes grad, guided and deeplift, itself checked
// against finite differences in tests/ref.test.ts) on seeded random data, one test per op configuration, and for a
// representative subset central finite differences computed directly on refForward. Forward and backward errors are
// max |gpu - ref| / max |ref| <= 1e-5; against finite differences (float64, eps 1e-4) <= 1e-3.
// Run alone: npx esbuild tests/kernels.test.ts --bundle --platform=node --format=esm --packages=external \
//   --loader:.wgsl=text --outfile=dist/kt.mjs && node dist/kt.mjs
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ActFn, Graph, LayoutOp, Node, PoolOp, LinearOp, NormOp, ReduceFn, Shape, logitsOf, numel } from '../src/graph.js';
import { validate } from '../src/ops/index.js';
import { resizeOf } from '../src/ops/resize.js';
import { convTransposeOf } from '../src/ops/convtranspose.js';
import { GraphBuilder, mulberry32 } from '../src/builder.js';
import { Model, Mode, Plan } from '../src/model.js';
import { TILES, Tile, convKernels, convShape, tileName } from '../src/conv.js';
import { closeGpu, nodeGpu } from '../node/gpu.js';
import { refBackward, refForward } from './ref.js';
import { relMax } from './helpers.js';

const test = suite('kernels');
const t0 = performance.now();

const TOL = 1e-5;    // GPU (float32) vs the float64 reference, relative to the reference's max
const FD_TOL = 1e-3; // GPU vs central finite differences
const FD_EPS = 1e-4;

// ------------------------------------------------------------------------------------------------ helpers

/** FNV-1a of a test name: every test draws its data from its own seeded stream, whatever runs before it. */
const hash = (s: string) => { let h = 0x811c9dc5; for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0; return h; };
type Rand = () => number;
const uniform = (r: Rand, n: number, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
const f64 = (a: ArrayLike<number>) => Float64Array.from(a);
const maxAbs = (a: ArrayLike<number>) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i])); return m; };
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * b[i]; return s; };
const f = (v: number | number[]) => (typeof v === 'number' ? `${v}` : v.every((u) => u === v[0]) ? `${v[0]}` : `[${v.join(',')}]`);
const shp = (s: Shape) => `[${s.join(',')}]`;

/** Distinct values (gaps >= 0.02) in random order: no ties or near-ties, for max-pool finite differences. */
function distinct(r: Rand, n: number): Float32Array {
  const v = Float32Array.from({ length: n }, (_, i) => (i - n / 2) * 0.02);
  for (let i = n - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [v[i], v[j]] = [v[j], v[i]]; }
  return v;
}

/** Worst errors per op family, printed as a table at the end. */
type Col = 'forward' | 'grad' | 'guided' | 'deeplift' | 'deconv' | 'fd';
const COLS: Col[] = ['forward', 'grad', 'guided', 'deeplift', 'deconv', 'fd'];
const worst = new Map<string, Partial<Record<Col, { e: number; at: string }>>>();
function note(family: string, col: Col, e: number, at: string) {
  if (!worst.has(family)) worst.set(family, {});
  const w = worst.get(family)!;
  if (!w[col] || e > w[col]!.e || Number.isNaN(e)) w[col] = { e, at };
}
const entries = new Set<string>(); // kernel entry points exercised (conv and linear; checked by the last test)

interface Case {
  family: string;
  name: string;            // the test name (for the table and messages)
  g: Graph;
  N: number;
  x?: Float32Array;        // the input (default U(-2, 2))
  xr?: Float32Array;       // DeepLIFT reference input (default U(-2, 2))
  modes?: Mode[];          // backward passes, one plan (default ['grad'])
  grads?: string[];        // tensors whose gradients are compared (default the input)
  read?: string[];         // tensors whose forward values are compared (default the seed tensor)
  seedAt?: string;         // default the logits
  seed?: Float32Array;     // default U(-1, 1)
  maxBinding?: number;
  tiles?: Record<string, Tile>; // forward conv tiles by convShape (default: defaultTile)
  winogradScratch?: number;     // bytes per Winograd scratch buffer (default 32 MiB)
  tol?: Partial<Record<Col, number>>; // per column (default 1e-5)
  /** Backward errors are max |gpu - ref| / gradScale instead of / max |ref| (where the true gradient is tiny next to
   *  the quantities it is computed from, so float32 cancellation sets the floor: a saturated softmax). */
  gradScale?: number;
}
type RunResult = Awaited<ReturnType<Awaited<ReturnType<Model['plan']>>['run']>>;
interface Outcome { res: RunResult; x: Float32Array; xr?: Float32Array; seed: Float32Array; model: Model; plan: Plan; errs: string[] }

/**
 * Loads c.g, runs one plan (forward plus one backward pass per mode) inside a validation error scope, and compares
 * the forward values and every pass's gradients with refForward / refBackward. `more` runs extra checks while the
 * model is alive; the model is destroyed afterwards.
 */
async function check(c: Case, more?: (o: Outcome) => void | Promise<void>): Promise<void> {
  const gpu = await nodeGpu(), r = mulberry32(hash(c.name) ^ 0x9e3779b9), g = c.g, N = c.N;
  const model = await Model.load(gpu, g, c.family, { ...(c.maxBinding ? { maxBinding: c.maxBinding } : {}), tiles: c.tiles, winogradScratch: c.winogradScratch });
  try {
    for (const n of g.nodes) {
      if (n.op.kind === 'conv') { // a stride-1 conv's backward runs as a forward conv (Model.transposed)
        const k = model.convKernels(n), t = model.transposed(n);
        entries.add(k.forward); entries.add(t ? `${model.convKernels(t).forward} (as backward)` : k.backward);
      }
      if (n.op.kind === 'linear') entries.add(n.op.in % 4 === 0 ? 'linear_forward/linear_backward' : 'linear_forward_scalar/linear_backward_scalar');
    }
    const seedAt = c.seedAt ?? logitsOf(g), inShape = g.tensors.get(g.input)!.shape;
    const x = c.x ?? uniform(r, N * numel(inShape), -2, 2);
    const seed = c.seed ?? uniform(r, N * numel(g.tensors.get(seedAt)!.shape));
    const modes = c.modes ?? ['grad'], grads = c.grads ?? [g.input], read = c.read ?? [seedAt];
    const dl = modes.includes('deeplift');
    const xr = dl ? c.xr ?? uniform(r, x.length, -2, 2) : undefined;
    const plan = await model.plan({ batch: N, read, seedAt, backward: modes.map((mode) => ({ grads, mode })) });
    const res = await gpu.scoped(`${c.name}: run`, () => plan.run(x, { seed, refInput: xr }));
    const vals = refForward(g, f64(x), N), refVals = xr ? refForward(g, f64(xr), N) : undefined;
    const errs: string[] = [];
    const cmp = (col: Col, t: string, got: Float32Array | undefined, want: Float64Array | undefined) => {
      if (!got || !want) { errs.push(`${col} '${t}': missing (${got ? 'reference' : 'GPU result'})`); return; }
      if (maxAbs(want) < 1e-9) errs.push(`${col} '${t}': the reference is all zero (a vacuous check)`);
      const scaled = col !== 'forward' && c.gradScale !== undefined, tol = c.tol?.[col] ?? TOL;
      const e = scaled ? relMax(got, want) * maxAbs(want) / c.gradScale! : relMax(got, want);
      note(c.family, col, e, c.name);
      if (!(e <= tol)) errs.push(`${col} '${t}': max |gpu - ref| / ${scaled ? c.gradScale : 'max |ref|'} = ${e.toExponential(2)} > ${tol} (${worstAt(got, want)})`);
    };
    for (const t of read) cmp('forward', t, res.values.get(t), vals.get(t));
    modes.forEach((mode, k) => {
      const ref = refBackward(g, vals, seedAt, f64(seed), N, mode, refVals);
      for (const t of grads) cmp(mode, t, res.passes[k].get(t), ref.get(t));
    });
    if (more) await more({ res, x, xr, seed, model, plan, errs });
    assert.ok(errs.length === 0, errs.join('\n'));
  } finally { model.destroy(); }
}

/** "at [i]: gpu v vs ref w" for the element with the largest difference. */
function worstAt(got: ArrayLike<number>, want: ArrayLike<number>): string {
  let j = 0, d = -1;
  for (let i = 0; i < got.length; i++) { const e = Math.abs(got[i] - want[i]); if (!(e <= d)) { d = e; j = i; } }
  return `worst at [${j}]: gpu ${got[j]} vs ref ${want[j]}`;
}

/**
 * Central finite differences (float64, eps 1e-4) of L(x) = sum(seed * y) at seedAt on refForward, against the GPU
 * gradient at the input: |gpu - fd| / max |fd| <= 1e-3. Keeps x small: 2 forwards per input element.
 */
async function fdCheck(family: string, name: string, g: Graph, N: number, x: Float32Array, seedAt = logitsOf(g)) {
  const gpu = await nodeGpu(), r = mulberry32(hash(name) ^ 0x51ed270b);
  const model = await Model.load(gpu, g, family);
  try {
    const seed = uniform(r, N * numel(g.tensors.get(seedAt)!.shape));
    const plan = await model.plan({ batch: N, grads: [g.input], seedAt });
    const res = await gpu.scoped(`${name}: run`, () => plan.run(x, { seed }));
    const dx = res.grads.get(g.input)!;
    const x64 = f64(x), s64 = f64(seed), L = (xx: Float64Array) => dot(refForward(g, xx, N).get(seedAt)!, s64);
    const fd = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const v = x64[i];
      x64[i] = v + FD_EPS; const lp = L(x64);
      x64[i] = v - FD_EPS; const lm = L(x64);
      x64[i] = v;
      fd[i] = (lp - lm) / (2 * FD_EPS);
    }
    assert.ok(maxAbs(fd) > 1e-6, 'finite differences are all zero');
    const e = relMax(dx, fd);
    note(family, 'fd', e, name);
    assert.ok(e <= FD_TOL, `|gpu - fd| / max |fd| = ${e.toExponential(2)} > ${FD_TOL} (${worstAt(dx, fd)})`);
  } finally { model.destroy(); }
}

/** A one-node graph (per-sample input shape xs). */
function oneNode(xs: Shape, kind: string, source: string, op: Node['op']): Graph {
  const g: Graph = { input: 'input', output: kind, tensors: new Map([['input', { name: 'input', shape: xs.slice() }]]), nodes: [{ name: kind, source, op, inputs: ['input'], output: kind }] };
  validate(g);
  return g;
}

// ------------------------------------------------------------------------------------------------ conv2d

type P2 = number | [number, number];
type P4 = number | [number, number, number, number];
interface ConvCfg { x: [number, number, number, number]; k: number; kk: P2; s?: P2; p?: P4; d?: P2; g?: number }
const p2 = (v: P2 = 1): [number, number] => (typeof v === 'number' ? [v, v] : v);
const p4 = (v: P4 = 0): number[] => (typeof v === 'number' ? [v, v, v, v] : v);
const convName = (c: ConvCfg) => { const [kh, kw] = p2(c.kk), G = c.g ?? 1;
  return `x=${shp(c.x)} w=[${c.k},${c.x[1] / G},${kh},${kw}] s=${f(p2(c.s))} p=${f(p4(c.p))} d=${f(p2(c.d))} g=${G}`; };
const convGraph = (c: ConvCfg, seed: number) => {
  const b = new GraphBuilder(c.x.slice(1), seed);
  return b.finish(b.conv(b.input, c.k, c.kk, { stride: c.s ?? 1, pad: c.p ?? 0, dil: c.d ?? 1, group: c.g ?? 1 }));
};
const entriesOf = (g: Graph) => { const k = convKernels(g, g.nodes.find((n) => n.op.kind === 'conv')!); return `${k.forward}, ${k.backward}`; };

const CONVS: ConvCfg[] = [
  { x: [2, 3, 9, 11], k: 5, kk: 3, s: 2, p: [1, 0, 2, 1] },          // K % 8 != 0, asymmetric pads
  { x: [1, 4, 8, 8], k: 8, kk: 3, p: 1 },                             // one full channel tile
  { x: [3, 3, 7, 7], k: 13, kk: 3, s: 3, p: [2, 1, 0, 2] },          // stride 3, batch 3, K = 13
  { x: [2, 3, 9, 9], k: 6, kk: 3, p: 2, d: 2 },                       // dilation 2
  { x: [1, 2, 10, 9], k: 4, kk: [3, 2], s: [2, 1], p: [1, 0, 1, 2], d: [2, 1] }, // everything per axis
  { x: [1, 3, 9, 9], k: 4, kk: 2, s: 3 },                             // stride > kernel: pixels no tap reaches get dx = 0
  { x: [1, 1, 4, 4], k: 2, kk: 4, p: 3 },                             // kernel as large as the input, pad 3
  { x: [2, 3, 5, 1], k: 4, kk: 3, p: 1 },                             // width 1
  { x: [1, 3, 6, 3], k: 5, kk: 3, s: 2, p: 1 },                       // width 3
  { x: [1, 2, 4, 33], k: 8, kk: 3, s: 2, p: 1 },                      // width 33, stride 2
  { x: [1, 2, 3, 33], k: 3, kk: 3, p: [0, 1, 0, 1] },                 // width 33, stride 1
  { x: [1, 20, 5, 5], k: 36, kk: 3, s: 2, p: 1 },                     // C = 20: a partial input-channel tile in backward
  { x: [1, 64, 6, 6], k: 72, kk: 3, p: 1 },                           // 64 -> 72: many channel tiles both ways
  { x: [2, 4, 7, 7], k: 16, kk: 3, p: 1, g: 2 },                      // G = 2, K/G = 8: tiled forward
  { x: [1, 8, 5, 5], k: 32, kk: 3, s: 2, p: 1, g: 4 },               // G = 4, K/G = 8
  { x: [2, 4, 6, 6], k: 6, kk: 3, s: 2, p: 1, g: 2 },                 // G = 2, K/G = 3: grouped forward
  { x: [1, 4, 9, 9], k: 8, kk: 3, s: 2, p: [2, 1, 1, 2], d: 2, g: 2 }, // strided, padded, dilated, grouped (K/G = 4)
  { x: [2, 8, 7, 7], k: 8, kk: 3, p: 1, g: 8 },                       // depthwise (K/G = 1)
  { x: [1, 6, 9, 9], k: 6, kk: 3, s: 2, p: 1, g: 6 },                 // depthwise, stride 2
  { x: [1, 4, 5, 5], k: 8, kk: 3, p: 1, g: 4 },                       // depthwise, multiplier 2
  { x: [3, 6, 3, 7], k: 3, kk: [1, 3], p: [0, 1, 0, 1], g: 3 },      // depthwise-ish 1x3, width 7
  { x: [2, 16, 4, 6], k: 24, kk: 1 },                                 // 1x1 GEMM: 24 pixels
  { x: [2, 5, 3, 4], k: 10, kk: 1 },                                  // 1x1 GEMM: 12 pixels, the last tile shifts back
  { x: [1, 3, 2, 4], k: 7, kk: 1 },                                   // 1x1 GEMM: exactly 8 pixels
  { x: [2, 6, 7, 7], k: 9, kk: 1 },                                   // 1x1, 49 pixels (not % 4): tiled path
  { x: [3, 5, 2, 2], k: 8, kk: 1 },                                   // 1x1, 4 pixels (< 8): tiled path
  { x: [1, 4, 7, 7], k: 5, kk: 1, s: 2 },                             // 1x1 stride 2
  { x: [1, 3, 4, 4], k: 4, kk: 1, p: 1 },                             // 1x1 with padding
];

for (const c of CONVS) {
  const g = convGraph(c, hash(convName(c)));
  const name = `conv2d ${convName(c)}: forward, backward (${entriesOf(g)})`;
  test(name, () => check({ family: 'conv2d', name, g, N: c.x[0] }));
}

/** Every tile `camgpu tune` may pick (Winograd on the 3x3 stride-1 ones), on shapes that leave partial tiles. */
const TILED: ConvCfg[] = [
  { x: [2, 5, 9, 7], k: 37, kk: 3, s: 1, p: 1 },   // 63 pixels, 37 channels
  { x: [1, 6, 6, 10], k: 20, kk: 1 },              // 1x1 GEMM, 60 pixels
  { x: [1, 8, 7, 7], k: 32, kk: 3, p: 1, g: 2 },   // grouped, K/G = 16: tiled when TK divides it, else the grouped kernel
  { x: [2, 4, 8, 10], k: 6, kk: 3, p: 0 },          // Winograd tiles: no padding, even output 6x8
  { x: [1, 3, 5, 6], k: 17, kk: 3, p: [2, 1, 0, 2] }, // Winograd tiles: asymmetric padding up to 2, odd output
];
for (const c of TILED) for (const t of TILES) {
  const g = convGraph(c, hash(convName(c)) + 7), n = g.nodes.find((m) => m.op.kind === 'conv')!;
  const k = convKernels(g, n, t), name = `conv2d tile ${tileName(t)} ${convName(c)} (${k.forward}): forward, backward`;
  test(name, () => check({ family: 'conv2d tiles', name, g, N: c.x[0], tiles: { [convShape(g, n)]: t } }));
}

/** Winograd in chunks: a scratch of 32 tiles' worth makes the layer's 2x2 tiles go through it in several dispatches
 *  (the last one partial), forward and as the backward; and one too small for 16 tiles falls back to the direct kernel. */
for (const [tiles, what] of [[32, 'chunks of 32 tiles'], [8, 'too small: direct kernel']] as const) {
  const c: ConvCfg = { x: [2, 40, 13, 11], k: 36, kk: 3, p: 1 }, g = convGraph(c, hash(convName(c)) + tiles);
  const bytes = tiles * 2 * 16 * 40 * 4, name = `conv2d winograd scratch ${bytes} B (${what}) ${convName(c)}: forward, backward`;
  test(name, () => check({ family: 'conv2d tiles', name, g, N: 2, winogradScratch: bytes }, ({ plan, errs }) => {
    const fwd = (plan as unknown as { forward: { bind: GPUBindGroup }[] }).forward.filter((s) => s.bind.label.startsWith(g.nodes[0].name)).length;
    const want = tiles === 32 ? 3 * Math.ceil(Math.ceil(13 / 2) * Math.ceil(11 / 2) / 32) : 1;
    if (fwd !== want) errs.push(`${fwd} forward dispatches, want ${want}`);
  }));
}

/**
 * Accumulation: the conv's input also feeds a relu (built after the conv, so its backward runs first and the conv's
 * backward must add to dx: the kernel's acc flag). out = concat(flatten(conv(x)), flatten(relu(x))).
 */
const ACC_CONVS: ConvCfg[] = [
  { x: [2, 3, 8, 9], k: 5, kk: 3, s: 2, p: [1, 0, 2, 1] },
  { x: [1, 8, 6, 6], k: 12, kk: 3, p: 1 },
  { x: [2, 4, 6, 6], k: 16, kk: 3, p: 1, g: 2 },
  { x: [1, 6, 7, 7], k: 6, kk: 3, s: 2, p: 1, g: 6 },
  { x: [2, 5, 4, 4], k: 9, kk: 1 },
];
for (const c of ACC_CONVS) {
  const b = new GraphBuilder(c.x.slice(1), hash(convName(c)) + 1);
  const cv = b.conv(b.input, c.k, c.kk, { stride: c.s ?? 1, pad: c.p ?? 0, dil: c.d ?? 1, group: c.g ?? 1 });
  const rl = b.relu(b.input);
  const g = b.finish(b.concat([b.flatten(cv), b.flatten(rl)]));
  const name = `conv2d accumulate ${convName(c)} (+ relu of the same input): backward adds to dx (${entriesOf(g)})`;
  test(name, () => check({ family: 'conv2d', name, g, N: c.x[0], read: [cv] }));
}

/**
 * Fused forward (a forward-only plan): conv + residual add + activation in one dispatch, every conv entry point,
 * against the float64 reference; the residual is the input itself or another conv's output (both convs then want
 * the add: one of them takes it). The last check asserts the plan fused: fewer dispatches than nodes.
 */
const FUSED: [string, number[], (b: GraphBuilder, x: string) => string][] = [
  ['conv 3x3 + relu', [6, 9, 9], (b, x) => b.relu(b.conv(x, 12, 3, { pad: 1 }))],
  ['conv 3x3 s2 + relu6 (clip 0..6)', [5, 9, 8], (b, x) => b.act(b.conv(x, 10, 3, { stride: 2, pad: 1 }), 'clip', 0, 6)],
  ['conv 3x3 + leaky relu 0.1', [4, 7, 7], (b, x) => b.act(b.conv(x, 9, 3, { pad: 1 }), 'leakyrelu', 0.1)],
  ['conv 1x1 GEMM + add(input) + relu', [16, 4, 6], (b, x) => b.relu(b.add(b.conv(x, 16, 1), x))],
  ['conv 3x3 + add(conv 1x1) + relu (two convs meet one add)', [8, 6, 6], (b, x) => b.relu(b.add(b.conv(x, 12, 3, { pad: 1 }), b.conv(x, 12, 1)))],
  ['add(input, conv 3x3) no activation (residual on the left)', [8, 5, 5], (b, x) => b.add(x, b.conv(x, 8, 3, { pad: 1 }))],
  ['depthwise conv + relu6 + add(input)', [8, 7, 7], (b, x) => b.add(b.act(b.conv(x, 8, 3, { pad: 1, group: 8 }), 'clip', 0, 6), x)],
  ['grouped conv + add(input) + relu', [6, 5, 5], (b, x) => b.relu(b.add(b.conv(x, 6, 3, { pad: 1, group: 2 }), x))],
];
for (const [what, shape, make] of FUSED) {
  const b = new GraphBuilder(shape, hash(what));
  const g = b.finish(make(b, b.input));
  const name = `conv2d fused forward x=${shp([2, ...shape])}: ${what} (${entriesOf(g)})`;
  test(name, () => check({ family: 'conv2d fused', name, g, N: 2, modes: [] }, ({ plan, errs }) => {
    const nodes = g.nodes.filter((n) => n.op.kind !== 'alias').length;
    if (!(plan.counts.fused >= 1 && plan.counts.forward < nodes)) errs.push(`not fused: ${plan.counts.forward} dispatches for ${nodes} nodes`);
  }));
}

// ------------------------------------------------------------------------------------------------ activations

/** Act configurations (ref.test's) and their kinks, planted exactly into the input. */
const ACTS: [ActFn, number | undefined, number | undefined, number[]][] = [
  ['relu', undefined, undefined, [0]],
  ['clip', undefined, undefined, [0, 6]],
  ['clip', -1, 0.5, [-1, 0.5]],
  ['leakyrelu', undefined, undefined, [0]],
  ['leakyrelu', 0.2, undefined, [0]],
  ['sigmoid', undefined, undefined, [0]],
  ['hardsigmoid', undefined, undefined, [-2.5, 2.5]],
  ['hardsigmoid', 1 / 6, 0.5, [-3, 3]],
  ['hardswish', undefined, undefined, [-3, 3]],
];
for (const [fn, alpha, beta, kinks] of ACTS) {
  const cfg = alpha === undefined ? 'defaults' : `alpha=${+alpha.toFixed(4)} beta=${beta ?? 0}`;
  const name = `act ${fn} x=[2,3,10,10] ${cfg}, kinks ${f(kinks)} planted: forward, grad, guided, deeplift, deconvnet`;
  test(name, () => {
    const r = mulberry32(hash(name)), N = 2, E = N * 300;
    const b = new GraphBuilder([3, 10, 10]);
    const g = b.finish(b.act(b.input, fn, alpha, beta));
    // every 5th element sits exactly on a kink; the reference equals the input on every 7th (the derivative fallback,
    // PyTorch's convention at a kink) and sits on a kink on every 11th
    const x = uniform(r, E, -8, 8), xr = uniform(r, E, -8, 8);
    for (let i = 0; i < E; i++) {
      if (i % 5 === 0) x[i] = kinks[(i / 5) % kinks.length];
      if (i % 7 === 0) xr[i] = x[i];
      else if (i % 11 === 0) xr[i] = kinks[(i / 11) % kinks.length];
    }
    return check({ family: 'act', name, g, N, x, xr, modes: ['grad', 'guided', 'deeplift', 'deconv'] }, ({ res, errs }) => {
      const grad = res.passes[0].get(g.input)!;
      for (const [k, what] of [[1, 'guided'], [3, 'deconvnet']] as const) {
        const other = res.passes[k].get(g.input)!, same = grad.every((v, i) => v === other[i]);
        if (fn === 'relu' && same) errs.push(`${what} relu equals the gradient: the case where it differs was not exercised`);
        if (fn !== 'relu' && !same) errs.push(`${what} ${fn} differs from its gradient (only relu changes)`);
      }
    });
  });
}

/** Piecewise-linear (and -quadratic) activations with x and x' straddling a kink closely, |x - x'| in [2e-3, 2e-2]
 *  (hardsigmoid with kinks exact in float32: alpha 1/4, beta 1/2 at -2, 2): the DeepLIFT multiplier against the
 *  float64 secant, and summation to delta sum(m (x - x')) = sum(seed (f(x) - f(x'))) relative to sum |terms|. */
const STRADDLE: [ActFn, number | undefined, number | undefined, number[]][] = [
  ['hardswish', undefined, undefined, [-3, 3]],
  ['hardsigmoid', 0.25, 0.5, [-2, 2]],
  ['clip', undefined, undefined, [0, 6]],
  ['clip', -1, 0.5, [-1, 0.5]],
];
for (const [fn, alpha, beta, kinks] of STRADDLE) {
  const cfg = alpha === undefined ? 'defaults' : `alpha=${alpha} beta=${beta}`;
  const name = `act ${fn} x=[2,3,10,10] ${cfg}: deeplift with x, x' straddling the kinks ${f(kinks)} by 1e-3..1e-2 (split secant)`;
  test(name, () => {
    const r = mulberry32(hash(name)), N = 2, E = N * 300;
    const b = new GraphBuilder([3, 10, 10]);
    const g = b.finish(b.act(b.input, fn, alpha, beta));
    const x = new Float32Array(E), xr = new Float32Array(E);
    for (let i = 0; i < E; i++) {
      const k = kinks[i % kinks.length], s = r() < 0.5 ? -1 : 1;
      x[i] = k + s * (1e-3 + 9e-3 * r()); xr[i] = k - s * (1e-3 + 9e-3 * r());
    }
    return check({ family: 'act straddle', name, g, N, x, xr, modes: ['deeplift'] }, ({ res, seed, errs }) => {
      const m = res.passes[0].get(g.input)!, vals = refForward(g, f64(x), N).get(g.output)!, refv = refForward(g, f64(xr), N).get(g.output)!;
      let lhs = 0, rhs = 0, mag = 0;
      for (let i = 0; i < E; i++) { lhs += m[i] * (x[i] - xr[i]); rhs += seed[i] * (vals[i] - refv[i]); mag += Math.abs(seed[i] * (vals[i] - refv[i])); }
      const e = Math.abs(lhs - rhs) / mag;
      note('act straddle', 'deeplift', e, `${name} (summation)`);
      if (!(e <= 1e-6)) errs.push(`summation to delta: |sum m dx - sum seed df| / sum |terms| = ${e.toExponential(2)} > 1e-6`);
    });
  });
}

// ------------------------------------------------------------------------------------------------ add / mul

type Body = (b: GraphBuilder, x: string, r: Rand) => string;
const BINARY: [string, Shape, number, Body][] = [
  ['add same shape x=[2,3,5,5] + conv(x)', [3, 5, 5], 2, (b, x) => b.add(x, b.conv(x, 3, 3, { pad: 1 }))],
  ['add per-channel x=[2,4,5,5] + gap(x) [4,1,1]', [4, 5, 5], 2, (b, x) => b.add(b.gap(x), x)],
  ['add constants [3,1,1] and [5] (rank-lower) x=[2,3,4,5]', [3, 4, 5], 2, (b, x, r) => {
    const y = b.add(x, b.constant(uniform(r, 3), [3, 1, 1]));
    return b.add(b.constant(uniform(r, 5), [5]), y);
  }],
  ['add scalar constants [1] and [] x=[3,2,3,4]', [2, 3, 4], 3, (b, x, r) => b.add(b.constant(uniform(r, 1), []), b.add(x, b.constant(uniform(r, 1), [1])))],
  ['add x + x x=[2,3,4,4]', [3, 4, 4], 2, (b, x) => b.add(x, x)],
  ['mul same shape x=[2,3,5,5] * conv(x)', [3, 5, 5], 2, (b, x) => b.mul(x, b.conv(x, 3, 3, { pad: 1 }))],
  ['mul x * x x=[1,2,3,3]', [2, 3, 3], 1, (b, x) => b.mul(x, x)],
  ['mul per-channel x=[2,4,5,5] * gap(x) [4,1,1]', [4, 5, 5], 2, (b, x) => b.mul(x, b.gap(x))],
  ['mul per-channel [4,1,1] * x=[2,4,5,5] (broadcast operand first)', [4, 5, 5], 2, (b, x) => b.mul(b.act(b.gap(x), 'sigmoid'), x)],
  ['mul constants full [3,4,5] and [1,4,5] x=[2,3,4,5]', [3, 4, 5], 2, (b, x, r) => {
    const y = b.mul(b.constant(uniform(r, 60), [3, 4, 5]), x);
    return b.mul(y, b.constant(uniform(r, 20), [1, 4, 5]));
  }],
  ['mul constants per-channel [3,1,1] and scalar [1], [1,4,1] x=[2,3,4,5]', [3, 4, 5], 2, (b, x, r) => {
    const y = b.mul(x, b.constant(uniform(r, 3), [3, 1, 1]));
    return b.mul(b.constant(uniform(r, 4), [1, 4, 1]), b.mul(b.constant(uniform(r, 1), [1]), y));
  }],
  ['mul flat x=[5,12] * linear(x) [12]', [12], 5, (b, x) => b.mul(x, b.linear(x, 12))],
];
for (const [cfg, xs, N, body] of BINARY) {
  const name = `${cfg}: forward, grad, deeplift`;
  test(name, () => {
    const b = new GraphBuilder(xs, hash(name)), r = mulberry32(hash(name) + 7);
    const g = b.finish(body(b, b.input, r));
    return check({ family: 'add/mul', name, g, N, modes: ['grad', 'deeplift'] });
  });
}

{
  const name = 'mul deeplift product rule x=[2,3,6,6]: sigmoid(conv(x)) * conv1x1(x), h * hardsigmoid(gap(h)); summation to delta';
  test(name, () => {
    const b = new GraphBuilder([3, 6, 6], hash(name));
    const s = b.act(b.conv(b.input, 4, 3, { pad: 1 }), 'sigmoid');
    const m = b.mul(s, b.conv(b.input, 4, 1));
    const h = b.act(m, 'hardswish');
    const g = b.finish(b.linear(b.flatten(b.mul(h, b.act(b.gap(h), 'hardsigmoid'))), 5));
    return check({ family: 'add/mul', name, g, N: 2, modes: ['deeplift'], grads: [g.input, m, s] }, (o) => summation(o, 2));
  });
}

/**
 * DeepLIFT summation to delta on the GPU result, per image: sum over the input of m * (x - x') equals
 * sum(seed * (y - y')) at the seed tensor (GPU logits and reference logits), to 1e-4 of the sum of |terms|.
 */
function summation(o: Outcome, N: number) {
  const m = o.res.passes[o.res.passes.length - 1].get(o.model.graph.input)!, M = o.x.length / N, F = o.seed.length / N;
  for (let n = 0; n < N; n++) {
    let lhs = 0, mag = 0, rhs = 0;
    for (let i = n * M; i < (n + 1) * M; i++) { const t = m[i] * (o.x[i] - o.xr![i]); lhs += t; mag += Math.abs(t); }
    for (let j = n * F; j < (n + 1) * F; j++) rhs += o.seed[j] * (o.res.logits[j] - o.res.refLogits![j]);
    if (!(Math.abs(lhs - rhs) <= 1e-4 * Math.max(mag, Math.abs(rhs)))) o.errs.push(`image ${n}: sum m*(x-x') = ${lhs} vs delta ${rhs} (terms ${mag.toExponential(2)})`);
  }
}

// ------------------------------------------------------------------------------------------------ pools

interface PoolCfg { x: [number, number, number, number]; k: P2; s: P2; p?: P4; d?: P2; ceil?: boolean; cip?: boolean }
const poolOp = (kind: 'maxpool' | 'avgpool', c: PoolCfg): PoolOp => {
  const [kh, kw] = p2(c.k), pd = p4(c.p);
  return { kind, kh, kw, stride: p2(c.s), pad: [pd[0], pd[1], pd[2], pd[3]], dil: p2(c.d), ceil: !!c.ceil, countIncludePad: !!c.cip };
};
const poolName = (c: PoolCfg) => `x=${shp(c.x)} k=${f(p2(c.k))} s=${f(p2(c.s))} p=${f(p4(c.p))}${c.d ? ` d=${f(p2(c.d))}` : ''} ceil=${!!c.ceil}`;

/** Window shapes both pool kernels run: pads, ceil mode, stride 1 and stride > kernel. */
const POOLS: PoolCfg[] = [
  { x: [2, 2, 6, 6], k: 2, s: 2 },
  { x: [2, 2, 7, 7], k: 3, s: 2, p: 1 },
  { x: [2, 2, 8, 8], k: 3, s: 2, ceil: true },
  { x: [2, 2, 6, 6], k: 3, s: 2, p: 1, ceil: true },
  { x: [2, 1, 5, 7], k: 2, s: 1 },
  { x: [2, 1, 7, 5], k: 3, s: 3, p: 1, ceil: true },
];

const MAXPOOLS: PoolCfg[] = [
  ...POOLS,
  { x: [1, 3, 7, 8], k: 3, s: 2, p: [0, 1, 1, 0] },                 // asymmetric pads
  { x: [2, 2, 9, 9], k: 3, s: 1, p: 2, d: 2 },                       // dilation 2
  { x: [1, 3, 8, 7], k: [3, 2], s: [2, 1], p: [1, 0, 1, 1], d: [2, 2], ceil: true },
  { x: [2, 2, 9, 10], k: 2, s: 3 },                                  // stride > kernel: gaps get no gradient
  { x: [3, 4, 5, 5], k: 3, s: 2, p: 1 },                             // batch 3
];
for (const c of MAXPOOLS) {
  const name = `maxpool ${poolName(c)}: forward, grad, deeplift`;
  test(name, () => {
    const g = oneNode(c.x.slice(1), 'maxpool', 'MaxPool', poolOp('maxpool', c)), r = mulberry32(hash(name));
    // the reference equals the input on a third of the elements: windows whose argmax did not move route to the
    // reference argmax (DeepLIFT's maxpool rule)
    const x = uniform(r, numel(c.x), -2, 2), xr = uniform(r, x.length, -2, 2);
    for (let i = 0; i < x.length; i += 3) xr[i] = x[i];
    return check({ family: 'maxpool', name, g, N: c.x[0], x, xr, modes: ['grad', 'deeplift'] }, () => dlBranches(g.nodes[0].op as PoolOp, c.x, x, xr));
  });
}

/** Windows per branch of DeepLIFT's max-pool rule (counted on the CPU; the coverage test wants each branch taken). */
const branches = { actual: 0, reference: 0, neither: 0 };
function dlBranches(op: PoolOp, [N, C, H, W]: number[], x: Float32Array, xr: Float32Array) {
  const OH = Math.floor((H + op.pad[0] + op.pad[2] - op.dil[0] * (op.kh - 1) - 1) / op.stride[0]) + 1; // floor mode is enough to
  const OW = Math.floor((W + op.pad[1] + op.pad[3] - op.dil[1] * (op.kw - 1) - 1) / op.stride[1]) + 1; // sample the branches
  for (let nc = 0; nc < N * C; nc++) for (let oy = 0; oy < OH; oy++) for (let ox = 0; ox < OW; ox++) {
    let a = -1, ar = -1;
    for (let ky = 0; ky < op.kh; ky++) for (let kx = 0; kx < op.kw; kx++) {
      const iy = oy * op.stride[0] - op.pad[0] + ky * op.dil[0], ix = ox * op.stride[1] - op.pad[1] + kx * op.dil[1];
      if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
      const i = (nc * H + iy) * W + ix;
      if (a < 0 || x[i] > x[a]) a = i;
      if (ar < 0 || xr[i] > xr[ar]) ar = i;
    }
    if (a < 0) continue;
    if (x[a] !== xr[a]) branches.actual++; else if (x[ar] !== xr[ar]) branches.reference++; else branches.neither++;
  }
}

// Ties: values from {-1, 0, 1} and a constant plane: PyTorch gives the gradient to the first maximum in scan order.
const TIES: PoolCfg[] = [
  { x: [2, 2, 6, 6], k: 3, s: 1, p: 1 },
  { x: [1, 2, 7, 7], k: 3, s: 2, p: 1, ceil: true },
  { x: [1, 2, 9, 9], k: 3, s: 1, p: 2, d: 2 },
];
for (const c of TIES) {
  const name = `maxpool ties ${poolName(c)}: values in {-1,0,1}, a constant plane, zero reference: first index wins`;
  test(name, () => {
    const g = oneNode(c.x.slice(1), 'maxpool', 'MaxPool', poolOp('maxpool', c)), r = mulberry32(hash(name));
    const plane = c.x[2] * c.x[3], x = Float32Array.from({ length: numel(c.x) }, () => Math.floor(r() * 3) - 1);
    x.fill(-1.5, plane, 2 * plane); // channel 1 of image 0: constant and negative (padding must not win)
    const xr = new Float32Array(x.length);
    return check({ family: 'maxpool', name, g, N: c.x[0], x, xr, modes: ['grad', 'deeplift'] }, ({ res, seed, errs }) => {
      dlBranches(g.nodes[0].op as PoolOp, c.x, x, xr);
      // independent of refBackward: on the constant plane each window's dy lands on its first in-input tap
      const op = g.nodes[0].op as PoolOp, [, , H, W] = c.x, [, OH, OW] = g.tensors.get(g.output)!.shape;
      const want = new Float64Array(H * W);
      for (let oy = 0; oy < OH; oy++) for (let ox = 0; ox < OW; ox++) {
        let first = -1;
        for (let ky = 0; ky < op.kh && first < 0; ky++) for (let kx = 0; kx < op.kw && first < 0; kx++) {
          const iy = oy * op.stride[0] - op.pad[0] + ky * op.dil[0], ix = ox * op.stride[1] - op.pad[1] + kx * op.dil[1];
          if (iy >= 0 && iy < H && ix >= 0 && ix < W) first = iy * W + ix;
        }
        want[first] += seed[OH * OW + oy * OW + ox];
      }
      const got = res.passes[0].get(g.input)!.subarray(H * W, 2 * H * W), e = relMax(got, want);
      if (!(e <= TOL)) errs.push(`constant plane: gradient not on the first index (${e.toExponential(2)}, ${worstAt(got, want)})`);
    });
  });
}

const AVGPOOLS: PoolCfg[] = [
  ...POOLS,
  { x: [1, 3, 7, 8], k: [3, 2], s: [2, 1], p: [1, 0, 0, 1] },      // asymmetric pads and kernel
  { x: [1, 2, 9, 10], k: 2, s: 3, ceil: true },                     // stride > kernel
];
for (const c of AVGPOOLS) for (const cip of [true, false]) {
  const name = `avgpool ${poolName(c)} count_include_pad=${cip}: forward, backward`;
  test(name, () => check({ family: 'avgpool', name, g: oneNode(c.x.slice(1), 'avgpool', 'AveragePool', poolOp('avgpool', { ...c, cip })), N: c.x[0] }));
}

for (const xs of [[2, 3, 4, 5], [3, 5, 7, 7], [1, 8, 1, 1], [2, 2, 1, 9]] as [number, number, number, number][]) {
  const name = `gap x=${shp(xs)}: forward, backward`;
  test(name, () => check({ family: 'gap', name, g: oneNode(xs.slice(1), 'gap', 'GlobalAveragePool', { kind: 'gap' }), N: xs[0] }));
}

// ------------------------------------------------------------------------------------------------ linear

const LINEARS: [Shape, number, number][] = [ // per-sample input, out, batch
  [[48], 7, 2],        // in % 4 == 0 (vec4), out not % 4
  [[3, 4, 4], 10, 5],  // flatten of a 4-D activation, vec4, batch 5
  [[64], 4, 1],        // batch 1
  [[13], 10, 5],       // in % 4 != 0: scalar path
  [[30], 1, 3],        // out = 1
  [[2, 3, 3], 9, 1],   // flatten, scalar path, batch 1
  [[4], 9, 3],         // in = 4
];
for (const [xs, out, N] of LINEARS) {
  const inF = numel(xs);
  const name = `linear x=${shp([N, ...xs])} w=[${out},${inF}] (${inF % 4 === 0 ? 'vec4' : 'scalar'}): forward, backward`;
  test(name, () => {
    const b = new GraphBuilder(xs, hash(name));
    const g = b.finish(b.linear(xs.length > 1 ? b.flatten(b.input) : b.input, out));
    return check({ family: 'linear', name, g, N });
  });
}

// Weight split into row chunks (big FC layers on devices with a small storage-binding limit): Model.load's maxBinding
// caps the binding size so the chunking runs on small shapes.
for (const [inF, out, N, rowsPer] of [[20, 23, 3, 5], [16, 11, 2, 3], [13, 11, 2, 4]] as [number, number, number, number][]) {
  const maxBinding = rowsPer * inF * 4;
  const name = `linear chunked x=[${N},${inF}] w=[${out},${inF}] maxBinding=${maxBinding} (${rowsPer} rows per chunk, ${inF % 4 === 0 ? 'vec4' : 'scalar'}): forward, backward`;
  test(name, () => {
    const b = new GraphBuilder([inF], hash(name));
    const g = b.finish(b.linear(b.input, out));
    return check({ family: 'linear', name, g, N, maxBinding }, ({ model, errs }) => {
      const rows = model.weightsOf(g.nodes[0]).rows;
      const want = Array.from({ length: Math.ceil(out / rowsPer) }, (_, c) => Math.min(rowsPer, out - c * rowsPer));
      if (rows.length === 1) errs.push(`the weight was not split (rows ${JSON.stringify(rows)}): Model.load(gpu, graph, name, { maxBinding }) must cap model.limits.binding before the weights are uploaded`);
      else if (JSON.stringify(rows) !== JSON.stringify(want)) errs.push(`row chunks ${JSON.stringify(rows)}, expected ${JSON.stringify(want)}`);
    });
  });
}

// ------------------------------------------------------------------------------------------------ concat, softmax, affine

const CONCATS: [string, Shape, number, (b: GraphBuilder, x: string) => { parts: string[]; grads: string[] }][] = [
  ['concat 2 inputs x=[2,2,4,4] ++ conv(x) [3,4,4]', [2, 4, 4], 2, (b, x) => { const cv = b.conv(x, 3, 3, { pad: 1 }); return { parts: [x, cv], grads: [x, cv] }; }],
  ['concat 3 inputs conv(x) [5,3,5] ++ x=[3,2,3,5] ++ relu(x) [2,3,5]', [2, 3, 5], 3, (b, x) => {
    const cv = b.conv(x, 5, 3, { pad: 1 }), rl = b.relu(x); return { parts: [cv, x, rl], grads: [x, cv, rl] }; }],
  ['concat x ++ x ++ conv(x) x=[2,2,4,4] (one tensor twice: the slices accumulate)', [2, 4, 4], 2, (b, x) => {
    const cv = b.conv(x, 3, 3, { pad: 1 }); return { parts: [x, x, cv], grads: [x, cv] }; }],
  ['concat constant [1,6] ++ tokens x=[3,5,6] ++ conv-free tanh(x) (a class token, the same for every sample)', [5, 6], 3, (b, x) => {
    const cls = b.constant(Float32Array.from({ length: 6 }, (_, i) => 0.5 - 0.2 * i), [1, 6]); return { parts: [cls, x, b.act(x, 'tanh')], grads: [x] }; }],
];
for (const [cfg, xs, N, body] of CONCATS) {
  const name = `${cfg}: forward, backward slices`;
  test(name, () => {
    const b = new GraphBuilder(xs, hash(name)), { parts, grads } = body(b, b.input);
    const g = b.finish(b.concat(parts));
    return check({ family: 'concat', name, g, N, grads, read: [g.output] });
  });
}

for (const [inF, F, N, scale] of [[12, 5, 2, 1], [8, 37, 3, 1], [6, 10, 2, 40]] as [number, number, number, number][]) {
  const name = `softmax x=[${N},${inF}] -> linear ${F}${scale > 1 ? ` (saturated: inputs x${scale}, backward error / max|dy|)` : ''} -> softmax: forward, backward`;
  test(name, () => {
    const b = new GraphBuilder([inF], hash(name)), lin = b.linear(b.input, F);
    const g = b.finish(b.softmax(lin));
    const r = mulberry32(hash(name) + 3), x = uniform(r, N * inF, -2 * scale, 2 * scale);
    // Seed at the probabilities (the default seed point is the logits, which skips the softmax). Saturated (x40),
    // dx = y (dy - sum dy y) cancels to ~1e-5 of dy in float32 (as PyTorch's kernel does): measure it against max |dy|.
    return check({ family: 'softmax', name, g, N, x, seedAt: g.output, read: [lin, g.output], grads: [g.input, lin], gradScale: scale > 1 ? 1 : undefined });
  });
}

for (const [xs, N] of [[[4, 3, 3], 2], [[6], 2], [[5, 4, 7], 3]] as [Shape, number][]) {
  const name = `affine x=${shp([N, ...xs])} (unfolded BatchNorm): forward, backward`;
  test(name, () => {
    const b = new GraphBuilder(xs, hash(name));
    const g = b.finish(b.affine(b.input));
    return check({ family: 'affine', name, g, N, modes: ['grad', 'deeplift'] });
  });
}
{
  const name = 'affine after relu x=[2,3,6,6]: conv 4 -> relu -> affine -> conv 3 (a BatchNorm that cannot fold): forward, grad, deeplift';
  test(name, () => {
    const b = new GraphBuilder([3, 6, 6], hash(name)), a = b.affine(b.relu(b.conv(b.input, 4, 3, { pad: 1 })));
    const g = b.finish(b.conv(a, 3, 3, { pad: 1 }));
    return check({ family: 'affine', name, g, N: 2, modes: ['grad', 'deeplift'], read: [a, g.output] });
  });
}

// ------------------------------------------------------------------------------------------------ layout

type LOp = LayoutOp;
const T = (...perm: number[]): LOp => ({ kind: 'transpose', perm });
const S = (begin: number[], end: number[], step: number[]): LOp => ({ kind: 'slice', begin, end, step });
const P = (mode: 'constant' | 'reflect' | 'edge', begin: number[], end: number[], value = 0): LOp => ({ kind: 'pad', mode, begin, end, value });
const R = (...reps: number[]): LOp => ({ kind: 'tile', reps });
const G = (axis: number, ...indices: number[]): LOp => ({ kind: 'gather', axis, indices });
const opName = (op: LOp) => {
  switch (op.kind) {
    case 'transpose': return `transpose perm [${op.perm}]`;
    case 'slice': return `slice begin [${op.begin}] end [${op.end}] step [${op.step}]`;
    case 'pad': return `pad ${op.mode}${op.mode === 'constant' ? ` ${op.value}` : ''} begin [${op.begin}] end [${op.end}]`;
    case 'tile': return `tile reps [${op.reps}]`;
    case 'gather': return `gather axis ${op.axis} indices [${op.indices}]`;
  }
};
/** layout.wgsl MAP values exercised (the coverage test wants all six). */
const layoutMaps = new Set<string>();
const mapName = (op: LOp) => (op.kind === 'pad' ? `pad ${op.mode}` : op.kind === 'slice' || op.kind === 'transpose' ? 'affine' : op.kind);

const LAYOUTS: [Shape, number, LOp, string?][] = [ // per-sample x, batch, op, why
  [[3, 4, 5], 2, T(0, 2, 1)],
  [[3, 4, 5], 2, T(2, 0, 1)],
  [[3, 4, 5], 3, T(1, 0, 2)],
  [[2, 3, 4, 5], 2, T(1, 0, 3, 2), 'rank 4'],
  [[2, 3, 1, 4, 2], 2, T(4, 2, 0, 3, 1), 'rank 5: the second vec4 of axes'],
  [[2, 1, 3, 2, 2, 3], 1, T(5, 4, 3, 2, 1, 0), 'rank 6 reversed'],
  [[2, 1, 2, 1, 2, 3, 1, 2], 2, T(7, 5, 3, 1, 6, 4, 2, 0), 'rank 8: every axis slot'],
  [[12], 3, T(0), 'rank 1 identity'],
  [[3, 4, 5], 2, S([1, 1, 2], [3, 4, 5], [1, 1, 1]), 'offsets'],
  [[5, 7, 9], 2, S([0, 1, 2], [5, 7, 9], [2, 3, 4]), 'strides'],
  [[4, 7, 9], 2, S([3, 6, 8], [-1, 0, -1], [-1, -2, -3]), 'reversed'],
  [[12], 2, S([11], [-1], [-4]), 'rank 1 reversed'],
  [[3, 4, 5], 2, P('constant', [0, 1, 2], [0, 2, 1])],
  [[3, 4, 5], 2, P('constant', [2, -1, 1], [1, 0, -2], 1.5), 'value 1.5, channel pad, negative pads crop'],
  [[3, 4, 5], 2, P('reflect', [0, 3, 1], [0, 1, 4])],
  [[3, 4, 5], 2, P('reflect', [2, 1, 0], [1, 0, 2]), 'channels too'],
  [[3, 4, 5], 2, P('edge', [0, 6, 2], [0, 1, 7]), 'pads larger than the axis'],
  [[2, 1, 5], 2, P('edge', [1, 2, 0], [0, 3, 1]), 'a size-1 axis: first and last at once'],
  [[3, 4, 5], 2, R(2, 1, 3)],
  [[1, 4, 1], 2, R(3, 1, 5), 'Expand [1,4,1] -> [3,4,5]'],
  [[1, 1, 1], 2, R(4, 3, 5), 'Expand of one value: 60 outputs read each input'],
  [[2, 1, 3, 1, 2], 2, R(1, 3, 2, 2, 1), 'rank 5'],
  [[3, 4, 5], 2, G(0, 2, 0, 2, 1), 'repeated indices'],
  [[3, 4, 5], 2, G(2, 4)],
  [[5, 8], 3, G(0, 0), 'the class token x[:, 0] of (N,T,D), before the squeeze'],
  [[3, 4, 5], 2, G(1, 1, 1, 1, 0)],
];
for (const [xs, N, op, why] of LAYOUTS) {
  const name = `${opName(op)} x=${shp([N, ...xs])}${why ? ` (${why})` : ''}: forward, grad, guided, deeplift`;
  test(name, () => {
    const b = new GraphBuilder(xs, hash(name));
    const g = b.finish(b.layout(b.input, op));
    layoutMaps.add(mapName(op));
    return check({ family: op.kind, name, g, N, modes: ['grad', 'guided', 'deeplift'] }, ({ res, errs }) => {
      const [grad, guided, dl] = res.passes.map((p) => p.get(g.input)!);
      if (!grad.every((v, i) => v === guided[i] && v === dl[i])) errs.push('guided or DeepLIFT differs from the gradient (a layout op is linear)');
    });
  });
}

{
  const name = 'layout accumulate x=[2,3,6,6] into one dx: transpose, reversed slice, reflect pad, edge pad, tile, gather, flattened and concatenated -> linear 6: grad, deeplift, summation to delta';
  test(name, () => {
    const b = new GraphBuilder([3, 6, 6], hash(name)), x = b.input;
    const ops = [T(2, 1, 0), S([2, 5, 0], [-1, -1, 6], [-1, -2, 3]), P('reflect', [1, 2, 0], [0, 1, 3]), P('edge', [0, 3, 1], [2, 0, 0]), R(1, 2, 1), G(1, 5, 0, 5)];
    const g = b.finish(b.linear(b.concat(ops.map((op) => b.flatten(b.layout(x, op)))), 6));
    return check({ family: 'layout composite', name, g, N: 2, modes: ['grad', 'deeplift'] }, (o) => summation(o, 2));
  });
}
{
  const name = 'channel shuffle x=[2,6,5,5] (ShuffleNetV2): conv 6 -> reshape [2,3,5,5] -> transpose [1,0,2,3] -> reshape [6,5,5] -> conv 4 -> relu -> gap -> linear 5: grad, guided, deeplift, summation to delta';
  test(name, () => {
    const b = new GraphBuilder([6, 5, 5], hash(name));
    const c = b.conv(b.input, 6, 3, { pad: 1 });
    const s = b.reshape(b.layout(b.reshape(c, [2, 3, 5, 5]), T(1, 0, 2, 3)), [6, 5, 5]);
    const g = b.finish(b.linear(b.flatten(b.gap(b.relu(b.conv(s, 4, 3, { pad: 1 })))), 5));
    return check({ family: 'layout composite', name, g, N: 2, modes: ['grad', 'guided', 'deeplift'], grads: [g.input, s] }, (o) => summation(o, 2));
  });
}
{
  const name = 'class token x=[2,3,4,4]: conv 8 -> tokens reshape [8,16] -> transpose [1,0] -> constant pad a zero token in front -> gather token 0 and 5 -> linear 3: grad, deeplift, summation to delta';
  test(name, () => {
    const b = new GraphBuilder([3, 4, 4], hash(name));
    const tokens = b.layout(b.reshape(b.conv(b.input, 8, 3, { pad: 1 }), [8, 16]), T(1, 0));
    const withCls = b.layout(tokens, P('constant', [1, 0], [0, 0], 0.25));
    const g = b.finish(b.linear(b.flatten(b.layout(withCls, G(0, 0, 5))), 3));
    return check({ family: 'layout composite', name, g, N: 2, modes: ['grad', 'deeplift'], grads: [g.input, tokens] }, (o) => summation(o, 2));
  });
}

// ------------------------------------------------------------------------------------------------ reductions

const REDUCES: [ReduceFn, Shape, number, number[], boolean, string?][] = [ // fn, per-sample x, batch, axes, keep, why
  ['sum', [3, 4, 5], 2, [1], true],
  ['sum', [2, 3, 4, 5], 2, [0, 2], false, 'alternating groups'],
  ['mean', [3, 4, 5], 2, [2], false, 'the last axis'],
  ['mean', [3, 5, 7], 3, [1, 2], true, 'over (H, W): the GlobalAveragePool form'],
  ['max', [3, 4, 5], 2, [1, 2], false],
  ['max', [2, 3, 2, 3, 2], 1, [0, 2, 4], true, 'rank 5, five groups'],
  ['min', [4, 6], 3, [0], false],
  ['l2', [3, 4, 5], 2, [2], true],
  ['l2', [2, 3, 4], 2, [0, 1, 2], false, 'every axis: a per-sample scalar'],
  ['l1', [3, 4, 5], 2, [0, 1], true],
  ['sumsquare', [3, 4, 5], 2, [1], false],
  ['max', [2, 1, 3, 2, 1, 2, 3, 2], 2, [0, 3, 6], true, 'rank 8 with size-1 axes'],
  ['sum', [2, 3, 2, 3, 2, 3, 2, 3], 1, [1, 3, 5, 7], false, 'rank 8, eight groups'],
];
for (const [fn, xs, N, axes, keep, why] of REDUCES) {
  const name = `reduce ${fn} x=${shp([N, ...xs])} axes [${axes}] keep=${keep}${why ? ` (${why})` : ''}: forward, grad, guided, deeplift, summation to delta`;
  test(name, () => {
    const b = new GraphBuilder(xs, hash(name)), r = mulberry32(hash(name));
    const g = b.finish(b.reduce(b.input, fn, axes, keep));
    // the reference equals the input on a third of the elements: max / min windows whose argmax did not move route to
    // the reference argmax; l1's secant falls back to sign(x)
    const x = uniform(r, N * numel(xs), -2, 2), xr = uniform(r, x.length, -2, 2);
    for (let i = 0; i < x.length; i += 3) xr[i] = x[i];
    return check({ family: 'reduce', name, g, N, x, xr, modes: ['grad', 'guided', 'deeplift'] }, (o) => summation(o, N));
  });
}
{
  const name = 'reduce max and min ties x=[2,3,4,6] axes [1,2], values in {-1,0,1}: the first extremum in scan order takes the gradient';
  test(name, () => {
    const b = new GraphBuilder([3, 4, 6], hash(name)), r = mulberry32(hash(name));
    const mx = b.reduce(b.input, 'max', [1, 2]), mn = b.reduce(b.input, 'min', [1, 2]);
    const g = b.finish(b.concat([mx, mn]));
    const x = Float32Array.from({ length: 2 * 72 }, () => Math.floor(r() * 3) - 1);
    return check({ family: 'reduce', name, g, N: 2, x, xr: new Float32Array(x.length), modes: ['grad', 'deeplift'] });
  });
}
{
  const name = 'reduce mean over (H, W) x=[2,6,5,7] equals gap (GlobalAveragePool) to float32 rounding, forward and backward';
  test(name, () => {
    const b = new GraphBuilder([6, 5, 7], hash(name));
    const m = b.reduce(b.input, 'mean', [1, 2]), gp = b.gap(b.input);
    const g = b.finish(b.concat([m, gp]));
    return check({ family: 'reduce', name, g, N: 2, read: [m, gp], grads: [g.input] }, ({ res, errs }) => {
      const e = relMax(res.values.get(m)!, res.values.get(gp)!);
      if (!(e <= 1e-6)) errs.push(`reduce mean vs gap: ${e.toExponential(2)}`);
    });
  });
}

// ------------------------------------------------------------------------------------------------ normalisations, softmax

const ROWS: [string, Shape, number, Body][] = [ // what, per-sample x, batch, body (after a 3x3 conv or a scale, so rows vary)
  ['layernorm last axis', [3, 4, 6], 2, (b, x) => b.layernorm(x)],
  ['layernorm axes [1,3)', [3, 4, 6], 2, (b, x) => b.layernorm(x, 1)],
  ['layernorm every axis, eps 0.1', [3, 4, 5], 2, (b, x) => b.layernorm(x, 0, 0.1)],
  ['layernorm tokens (ViT) x=[3,7,8]', [7, 8], 3, (b, x) => b.layernorm(x)],
  ['instancenorm', [3, 4, 5], 2, (b, x) => b.instancenorm(x)],
  ['instancenorm (N,C,L), eps 0.01', [4, 6], 2, (b, x) => b.instancenorm(x, 0.01)],
  ['softmax last axis', [3, 4, 6], 2, (b, x) => b.softmax(x)],
  ['softmax middle axis', [3, 4, 6], 2, (b, x) => b.softmax(x, 1)],
  ['softmax axis 0', [5, 3], 3, (b, x) => b.softmax(x, 0)],
  ['softmax over the flattened axes [1,3) (opset < 13)', [3, 4, 5], 2, (b, x) => b.softmax(x, 1, false, 3)],
  ['log-softmax last axis', [3, 4, 6], 2, (b, x) => b.softmax(x, 2, true)],
  ['log-softmax middle axis', [3, 4, 6], 2, (b, x) => b.softmax(x, 1, true)],
];
for (const [what, xs, N, body] of ROWS) {
  const name = `${what} x=${shp([N, ...xs])}: forward, grad, guided, deeplift (exact rule), summation to delta`;
  test(name, () => {
    const b = new GraphBuilder(xs, hash(name)), r = mulberry32(hash(name) + 1);
    const pre = b.mul(b.input, b.constant(uniform(r, numel(xs), 0.5, 2), xs));
    const y = body(b, pre, r);
    const g = b.finish(b.linear(b.flatten(y), 5));
    return check({ family: what.split(' ')[0], name, g, N, modes: ['grad', 'guided', 'deeplift'], read: [y, g.output], grads: [g.input, pre] }, (o) => summation(o, N));
  });
}
{
  const name = 'instancenorm of (N,C) x=[3,4]: rows of one element, y = bias';
  test(name, () => {
    const b = new GraphBuilder([4], hash(name));
    const g = b.finish(b.instancenorm(b.input));
    return check({ family: 'instancenorm', name, g, N: 3, modes: [] }, ({ res, errs }) => {
      const bias = (g.nodes[0].op as NormOp).bias, y = res.values.get(g.output)!;
      if (!y.every((v, i) => v === bias[i % 4])) errs.push(`y ${Array.from(y)} is not the bias ${Array.from(bias)}`);
    });
  });
}
{
  const name = 'softmax saturated x=[2,3,9] (inputs x30) -> linear: deeplift secants far from the midpoint, summation to delta';
  test(name, () => {
    const b = new GraphBuilder([3, 9], hash(name)), r = mulberry32(hash(name));
    const g = b.finish(b.linear(b.flatten(b.softmax(b.input)), 4));
    const x = uniform(r, 54, -30, 30), xr = uniform(r, 54, -30, 30);
    // exp(x - c) for x - c down to -60: float32 rounds x - c by up to 1.9e-6 (half an ulp of 60) and WGSL's exp may err
    // by 3 + 2|x| ulp, so e carries ~1e-5 relative error whatever the rule; the multipliers are compared at 5e-5
    return check({ family: 'softmax', name, g, N: 2, x, xr, modes: ['grad', 'deeplift'], tol: { deeplift: 5e-5 } }, (o) => summation(o, 2));
  });
}
for (const [what, shape, make] of [
  ['BatchNormalization (affine) after a concat, before a linear', [3, 4, 4], (b: GraphBuilder, x: string) => b.linear(b.flatten(b.affine(b.concat([b.relu(x), b.conv(x, 2, 3, { pad: 1 })]))), 5)],
  ['BatchNormalization (affine) of (N,C,D,H,W) x=[2,3,2,3,4]', [3, 2, 3, 4], (b: GraphBuilder, x: string) => b.linear(b.flatten(b.affine(x)), 4)],
] as [string, Shape, Body][]) {
  const name = `${what}: forward, grad, deeplift, summation to delta`;
  test(name, () => {
    const b = new GraphBuilder(shape, hash(name));
    const g = b.finish(make(b, b.input, mulberry32(1)));
    return check({ family: 'affine', name, g, N: 2, modes: ['grad', 'deeplift'] }, (o) => summation(o, 2));
  });
}

// ------------------------------------------------------------------------------------------------ matmul

const TR = (...perm: number[]): LayoutOp => ({ kind: 'transpose', perm });
const MATMULS: [string, Shape, number, Body][] = [ // what, per-sample x, batch, body returning the product
  ['attention scores q k^T: tanh(x) (N,h,T,d) x transpose(x) (N,h,d,T)', [2, 5, 4], 2, (b, x) => b.matmul(b.act(x, 'tanh'), b.layout(x, TR(0, 2, 1)))],
  ['attention output softmax(x) (N,h,T,T) x sigmoid(x) (N,h,T,T)', [3, 4, 4], 2, (b, x) => b.matmul(b.softmax(x), b.act(x, 'sigmoid'))],
  ['both operands broadcast: mean over axis 1 (N,2,1,3,4) x mean over axis 0, transposed (N,1,3,4,3)', [2, 3, 3, 4], 2,
    (b, x) => b.matmul(b.reduce(x, 'mean', [1]), b.layout(b.reduce(x, 'mean', [0]), TR(0, 1, 3, 2)))],
  ['constant right of rank 4 [1,3,4,2] broadcast over (N,2,1,3,4)', [2, 1, 3, 4], 2, (b, x, r) => b.matmul(x, b.constant(uniform(r, 24), [1, 3, 4, 2]))],
  ['constant left [3,2] x activation (N,2,2,5)', [2, 2, 5], 3, (b, x, r) => b.matmul(b.constant(uniform(r, 6), [3, 2]), x)],
  ['four leading axes (N,2,1,2,1,3,4) x tanh transposed (N,2,1,2,1,4,3)', [2, 1, 2, 1, 3, 4], 1, (b, x) => b.matmul(x, b.layout(b.act(x, 'tanh'), TR(0, 1, 2, 3, 5, 4)))],
  ['one row M = 1 (N,1,6) x (N,6,1): a dot product per sample', [1, 6], 3, (b, x) => b.matmul(x, b.layout(b.act(x, 'tanh'), TR(1, 0)))],
];
for (const [what, xs, N, body] of MATMULS) {
  const name = `matmul ${what} x=${shp([N, ...xs])}: forward, grad, guided, deeplift (mean of both passes), summation to delta`;
  test(name, () => {
    const b = new GraphBuilder(xs, hash(name)), r = mulberry32(hash(name) + 1);
    const y = body(b, b.input, r);
    const g = b.finish(b.linear(b.flatten(y), 4));
    const ins = g.nodes.find((n) => n.output === y)!.inputs.filter((t) => !g.tensors.get(t)!.data);
    return check({ family: 'matmul', name, g, N, modes: ['grad', 'guided', 'deeplift'], read: [y, g.output], grads: [g.input, ...ins] }, (o) => summation(o, N));
  });
}
const DENSES: [Shape, number, number][] = [ // per-sample x (the last axis is the features), out, batch
  [[3, 4, 8], 6, 2],   // vec4 features, (N,H,W,C) as ConvNeXt's channels-last Linear
  [[7, 5], 9, 3],      // scalar path, tokens (N,T,D) as ViT's
  [[2, 2, 3, 4], 3, 1], // rank 5
];
for (const [xs, out, N] of DENSES) {
  const name = `linear over the last axis x=${shp([N, ...xs])} w=[${out},${xs[xs.length - 1]}] (MatMul by a constant): forward, grad, deeplift`;
  test(name, () => {
    const b = new GraphBuilder(xs, hash(name));
    const d = b.dense(b.input, out);
    const g = b.finish(b.linear(b.flatten(b.act(d, 'tanh')), 3));
    return check({ family: 'linear', name, g, N, modes: ['grad', 'deeplift'], read: [d, g.output] }, (o) => summation(o, N));
  });
}
{
  const name = 'linear over the last axis chunked x=[1,2,12] w=[10,12] maxBinding 192 (4 rows per chunk): forward, backward';
  test(name, () => {
    const b = new GraphBuilder([2, 12], hash(name));
    const g = b.finish(b.dense(b.input, 10));
    return check({ family: 'linear', name, g, N: 1, maxBinding: 192 }, ({ model, errs }) => {
      if (model.weightsOf(g.nodes[0]).rows.length !== 3) errs.push(`rows ${JSON.stringify(model.weightsOf(g.nodes[0]).rows)}: not chunked`);
    });
  });
}

// ------------------------------------------------------------------------------------------------ composites

{
  const name = 'accumulate x=[2,3,6,6] into one dx: relu, maxpool k=3 s=1 p=1, avgpool k=3 s=2 p=1, affine, gap, sigmoid, linear 7, concat: grad, guided, deeplift';
  test(name, () => {
    const b = new GraphBuilder([3, 6, 6], hash(name)), x = b.input;
    const parts = [b.relu(x), b.maxpool(x, 3, 1, 1), b.avgpool(x, 3, 2, 1), b.affine(x), b.gap(x), b.act(x, 'sigmoid')].map((t) => b.flatten(t));
    const g = b.finish(b.concat([...parts, b.linear(b.flatten(x), 7)]));
    return check({ family: 'accumulate', name, g, N: 2, modes: ['grad', 'guided', 'deeplift'] }, (o) => summation(o, 2));
  });
}

/** ref.test's DeepLIFT graph: every non-linear rule (relu, sigmoid, hardswish, hardsigmoid, leakyrelu, clip, maxpool, mul). */
function dlGraph(seed: number) {
  const b = new GraphBuilder([3, 9, 9], seed);
  const c1 = b.conv(b.input, 6, 3, { pad: 1 });
  const r1 = b.relu(c1);
  const p1 = b.maxpool(r1, 3, 2, 1);
  const s = b.act(b.conv(p1, 6, 3, { pad: 1 }), 'sigmoid');
  const m = b.mul(s, b.conv(p1, 6, 1));
  const h = b.act(m, 'hardswish');
  const m2 = b.mul(h, b.act(b.gap(h), 'hardsigmoid'));
  const l = b.act(b.affine(m2), 'leakyrelu', 0.1);
  const p2 = b.maxpool(b.act(l, 'clip', -1, 2), 2, 2, 0, true);
  const cat = b.concat([p2, b.avgpool(m2, 3, 2, 1, { countIncludePad: false })]);
  const y = b.linear(b.relu(b.linear(b.flatten(cat), 16)), 10);
  return { g: b.finish(y), taps: [r1, p1, h] };
}
/**
 * Every activation the GPU computed (a forward-only plan that reads them all), as float64 values for refBackward.
 * With the GPU's own float32 activations, refBackward's DeepLIFT multipliers check only the backward kernels'
 * arithmetic; against refForward's float64 activations the secants (f(x) - f(x')) / (x - x') and the max-pool ratio
 * are ill-conditioned wherever x - x' is small, and float32 rounding of the activations alone moves them by ~1e-5.
 */
async function gpuActivations(model: Model, x: Float32Array, N: number): Promise<Map<string, Float64Array>> {
  const g = model.graph, names = [...g.tensors.keys()].filter((t) => t !== g.input && !g.tensors.get(t)!.data);
  const plan = await model.plan({ batch: N, read: names });
  try {
    const res = await model.gpu.scoped('activations', () => plan.run(x));
    const v = new Map<string, Float64Array>([[g.input, f64(x)]]);
    for (const t of names) v.set(t, f64(res.values.get(t)!));
    return v;
  } finally { plan.destroy(); }
}
const DL_F64_TOL = 1e-4; // DeepLIFT multipliers of a deep graph against float64 activations (observed 5e-6)

/** A DeepLIFT composite: grad, guided and deeplift passes against the float64 reference (multipliers at DL_F64_TOL),
 *  summation to delta, and the multipliers at `grads` against refBackward on the GPU's own activations at TOL. */
function dlComposite(name: string, g: Graph, N: number, grads: string[]) {
  return check({ family: 'deeplift composite/f64', name, g, N, modes: ['grad', 'guided', 'deeplift'], grads, tol: { deeplift: DL_F64_TOL } }, async (o) => {
    summation(o, N);
    const want = refBackward(g, await gpuActivations(o.model, o.x, N), g.output, f64(o.seed), N, 'deeplift', await gpuActivations(o.model, o.xr!, N));
    for (const t of grads) {
      const got = o.res.passes[2].get(t)!, e = relMax(got, want.get(t)!);
      note('deeplift composite', 'deeplift', e, `${name} (${t}, GPU activations)`);
      if (!(e <= TOL)) o.errs.push(`deeplift '${t}' vs refBackward on the GPU's activations: ${e.toExponential(2)} > ${TOL} (${worstAt(got, want.get(t)!)})`);
    }
  });
}

{
  const name = 'deeplift composite x=[3,3,9,9] (every rule), random reference input: grad, guided, multipliers at the input and 3 taps, summation to delta';
  test(name, () => {
    const { g, taps } = dlGraph(hash(name)), N = 3, grads = [g.input, ...taps];
    return dlComposite(name, g, N, grads);
  });
}
{
  const name = 'deeplift transformer block x=[2,3,6,6]: conv tokens, layernorm, q k^T, softmax, a v, residual, layernorm, reduce max and mean over tokens, instancenorm: multipliers vs refBackward, summation to delta';
  test(name, () => {
    const b = new GraphBuilder([3, 6, 6], hash(name));
    const c = b.instancenorm(b.conv(b.input, 8, 3, { pad: 1 }));
    const tok = b.layout(b.reshape(c, [8, 36]), TR(1, 0));                       // (36, 8)
    const h = b.layernorm(tok), q = b.dense(h, 8), k = b.dense(h, 8), v = b.dense(h, 8);
    const a = b.softmax(b.matmul(q, b.layout(k, TR(1, 0))));                    // (36, 36)
    const o = b.layernorm(b.add(b.matmul(a, v), tok));
    const g = b.finish(b.linear(b.concat([b.reduce(o, 'max', [0], false), b.reduce(o, 'mean', [0], false)]), 5));
    const grads = [g.input, h, a], N = 2;
    return dlComposite(name, g, N, grads);
  });
}
{
  const name = 'deeplift composite x=[2,3,9,9], zero reference at a tap (LIFT-CAM): multipliers at relu, maxpool, hardswish taps, summation to delta';
  test(name, async () => {
    const { g, taps } = dlGraph(hash(name)), N = 2, r = mulberry32(hash(name)), gpu = await nodeGpu();
    const model = await Model.load(gpu, g, 'deeplift composite');
    try {
      const x = uniform(r, N * 243, -2, 2), seed = uniform(r, N * 10), vals = refForward(g, f64(x), N), errs: string[] = [];
      const gv = await gpuActivations(model, x, N);
      for (const t of taps) {
        const plan = await model.plan({ batch: N, backward: [{ grads: [t], mode: 'deeplift', reference: { zeroAt: t } }] });
        const res = await gpu.scoped(`${name}: run`, () => plan.run(x, { seed }));
        const got = res.grads.get(t)!, zeros = new Float64Array(vals.get(t)!.length);
        // the reference pass: zeros at t, then the head (on the GPU: the head sub-model run on zeros)
        const head = model.head(t), hv = await gpuActivations(head, new Float32Array(zeros.length), N);
        const gvr = new Map([...gv, ...hv]);
        const want32 = refBackward(g, gv, g.output, f64(seed), N, 'deeplift', gvr).get(t)!;
        const want64 = refBackward(g, vals, g.output, f64(seed), N, 'deeplift', refForward(g, f64(x), N, { tensor: t, value: zeros })).get(t)!;
        const e32 = relMax(got, want32), e64 = relMax(got, want64);
        note('deeplift composite', 'deeplift', e32, `${name} (${t}, GPU activations)`);
        note('deeplift composite/f64', 'deeplift', e64, `${name} (${t})`);
        if (!(e32 <= TOL)) errs.push(`'${t}' vs refBackward on the GPU's activations: ${e32.toExponential(2)} (${worstAt(got, want32)})`);
        if (!(e64 <= DL_F64_TOL)) errs.push(`'${t}' vs refBackward on float64 activations: ${e64.toExponential(2)} (${worstAt(got, want64)})`);
        // summation to delta: sum(m * (A - 0)) = sum(seed * (y - y_ref)), per image
        const A = gv.get(t)!, M = A.length / N;
        for (let n = 0; n < N; n++) {
          let lhs = 0, mag = 0, rhs = 0;
          for (let i = n * M; i < (n + 1) * M; i++) { lhs += got[i] * A[i]; mag += Math.abs(got[i] * A[i]); }
          for (let j = n * 10; j < (n + 1) * 10; j++) rhs += seed[j] * (res.logits[j] - res.refLogits![j]);
          if (!(Math.abs(lhs - rhs) <= 1e-4 * Math.max(mag, Math.abs(rhs)))) errs.push(`'${t}' image ${n}: sum m*A = ${lhs} vs delta ${rhs}`);
        }
        head.destroy(); plan.destroy();
      }
      assert.ok(errs.length === 0, errs.join('\n'));
    } finally { model.destroy(); }
  });
}

// ------------------------------------------------------------------------------------------------ resize

/** Resize configurations: per-sample input shape and the op's options; a conv 1x1 after it so the seed is not uniform. */
const RESIZE: [string, Shape, Parameters<typeof resizeOf>[1]][] = [
  ['nearest x2 asymmetric floor (PyTorch nearest)', [3, 5, 6], { mode: 'nearest', coord: 'asymmetric', nearest: 'floor', scales: [2, 2] }],
  ['nearest half_pixel round_prefer_floor downsample 9x10 -> 4x3', [3, 9, 10], { mode: 'nearest', sizes: [4, 3] }],
  ['nearest tf_half_pixel_for_nn ceil 4x5 -> 7x9', [2, 4, 5], { mode: 'nearest', coord: 'tf_half_pixel_for_nn', nearest: 'ceil', sizes: [7, 9] }],
  ['linear pytorch_half_pixel x2 (PyTorch bilinear)', [3, 5, 6], { mode: 'linear', coord: 'pytorch_half_pixel', scales: [2, 2] }],
  ['linear align_corners 13x17 -> 40x31', [4, 13, 17], { mode: 'linear', coord: 'align_corners', sizes: [40, 31] }],
  ['linear half_pixel scales 0.6 x 1.7', [3, 10, 7], { mode: 'linear', scales: [0.6, 1.7] }],
  ['cubic half_pixel A=-0.75 5x4 -> 9x11', [2, 5, 4], { mode: 'cubic', sizes: [9, 11] }],
  ['cubic align_corners exclude_outside A=-0.5 6x6 -> 4x9', [2, 6, 6], { mode: 'cubic', coord: 'align_corners', cubicA: -0.5, exclude: true, sizes: [4, 9] }],
];
for (const [what, xs, o] of RESIZE) {
  const name = `resize ${what} x=${shp([2, ...xs])} -> conv 1x1: forward, grad, guided, deeplift`;
  test(name, () => {
    const b = new GraphBuilder(xs, hash(name));
    const r = b.op(b.input, resizeOf([xs[1], xs[2]], o), 'Resize');
    const g = b.finish(b.conv(r, 3, 1));
    return check({ family: 'resize', name, g, N: 2, read: [r, g.output], modes: ['grad', 'guided', 'deeplift'] });
  });
}

// ------------------------------------------------------------------------------------------------ convtranspose

const CONVT: [string, Shape, number, [number, number], NonNullable<Parameters<typeof convTransposeOf>[4]>][] = [
  ['3x3 s=2 p=1 output_padding=1', [8, 6, 7], 5, [3, 3], { stride: [2, 2], pad: [1, 1, 1, 1], outPad: [1, 1] }],
  ['2x2 s=2 (U-Net up-conv)', [6, 5, 5], 4, [2, 2], { stride: [2, 2] }],
  ['4x4 s=2 p=1 g=2 d=1', [4, 6, 5], 6, [4, 4], { stride: [2, 2], pad: [1, 1, 1, 1], group: 2 }],
  ['3x3 s=[2,3] d=2 p=[1,0,2,1] g=3 output_padding=[1,0]', [6, 4, 5], 3, [3, 3], { stride: [2, 3], dil: [2, 2], pad: [1, 0, 2, 1], group: 3, outPad: [1, 0] }],
  ['3x3 s=2 negative pads [0,-1,-1,0] (output_shape larger)', [3, 4, 4], 2, [3, 3], { stride: [2, 2], pad: [0, -1, -1, 0] }],
];
for (const [what, xs, cout, k, o] of CONVT) {
  const name = `convtranspose ${what} x=${shp([2, ...xs])} w=${shp([xs[0], cout / (o.group ?? 1), ...k])}: forward, grad, guided, deeplift`;
  test(name, () => {
    const b = new GraphBuilder(xs, hash(name));
    const t = b.op(b.input, convTransposeOf(xs[0], cout, k, mulberry32(hash(name)), o), 'ConvTranspose');
    const g = b.finish(b.conv(b.relu(t), 3, 1));
    return check({ family: 'convtranspose', name, g, N: 2, read: [t, g.output], modes: ['grad', 'guided', 'deeplift'] });
  });
}

// ------------------------------------------------------------------------------------------------ finite differences

const FD: [string, string, Shape, number, Body, ((r: Rand, n: number) => Float32Array)?][] = [
  ['conv2d', 'conv2d x=[1,4,9,9] w=[8,2,3,3] s=2 p=[2,1,1,2] d=2 g=2', [4, 9, 9], 1, (b, x) => b.conv(x, 8, 3, { stride: 2, pad: [2, 1, 1, 2], dil: 2, group: 2 })],
  ['conv2d', 'conv2d x=[2,3,7,7] w=[5,3,3,3] s=2 p=[1,0,2,1] d=1 g=1', [3, 7, 7], 2, (b, x) => b.conv(x, 5, 3, { stride: 2, pad: [1, 0, 2, 1] })],
  ['conv2d', 'conv2d x=[1,6,6,6] w=[6,1,3,3] s=1 p=2 d=2 g=6 (depthwise)', [6, 6, 6], 1, (b, x) => b.conv(x, 6, 3, { pad: 2, dil: 2, group: 6 })],
  ['maxpool', 'maxpool x=[2,2,6,6] k=3 s=2 p=1 ceil=true (distinct values)', [2, 6, 6], 2, (b, x) => b.maxpool(x, 3, 2, 1, true), distinct],
  ['maxpool', 'maxpool x=[2,2,7,7] k=2 s=3 p=1 ceil=true (distinct values)', [2, 7, 7], 2, (b, x) => b.maxpool(x, 2, 3, 1, true), distinct],
  ['avgpool', 'avgpool x=[2,2,7,7] k=3 s=2 p=1 ceil=true count_include_pad=true', [2, 7, 7], 2, (b, x) => b.avgpool(x, 3, 2, 1, { ceil: true, countIncludePad: true })],
  ['avgpool', 'avgpool x=[2,2,6,6] k=3 s=2 p=1 ceil=true count_include_pad=false', [2, 6, 6], 2, (b, x) => b.avgpool(x, 3, 2, 1, { ceil: true })],
  ['linear', 'linear x=[2,13] w=[7,13] (scalar)', [13], 2, (b, x) => b.linear(x, 7)],
  ['linear', 'linear x=[3,16] w=[5,16] (vec4)', [16], 3, (b, x) => b.linear(x, 5)],
  ['act', 'act sigmoid x=[2,3,4,5]', [3, 4, 5], 2, (b, x) => b.act(x, 'sigmoid'), (r, n) => uniform(r, n, -6, 6)],
  ['act', 'act hardswish x=[2,3,4,5] (0.01 away from the kinks)', [3, 4, 5], 2, (b, x) => b.act(x, 'hardswish'), (r, n) => {
    const v = uniform(r, n, -5, 5);
    for (let i = 0; i < n; i++) for (const k of [-3, 3]) if (Math.abs(v[i] - k) < 0.01) v[i] = k + (v[i] < k ? -0.05 : 0.05);
    return v;
  }],
  ['softmax', 'softmax x=[2,6] -> linear 5 -> softmax', [6], 2, (b, x) => b.softmax(b.linear(x, 5))],
  ['convtranspose', 'convtranspose 3x3 s=2 p=1 output_padding=1 g=2 x=[2,4,3,3] -> conv 1x1', [4, 3, 3], 2, (b, x) => b.conv(b.op(x, convTransposeOf(4, 4, [3, 3], mulberry32(3), { stride: [2, 2], pad: [1, 1, 1, 1], outPad: [1, 1], group: 2 }), 'ConvTranspose'), 3, 1)],
  ['resize', 'resize linear half_pixel x=[2,2,3,4] -> 5x7 -> conv 1x1', [2, 3, 4], 2, (b, x) => b.conv(b.op(x, resizeOf([3, 4], { mode: 'linear', sizes: [5, 7] }), 'Resize'), 3, 1)],
  ['resize', 'resize cubic align_corners x=[2,2,4,3] -> 6x5 -> conv 1x1', [2, 4, 3], 2, (b, x) => b.conv(b.op(x, resizeOf([4, 3], { mode: 'cubic', coord: 'align_corners', sizes: [6, 5] }), 'Resize'), 3, 1)],
  ['reduce', 'reduce l2 axes [0,2] x=[2,3,4,5] -> linear 4', [3, 4, 5], 2, (b, x) => b.linear(b.flatten(b.reduce(x, 'l2', [0, 2])), 4)],
  ['reduce', 'reduce max axes [1] x=[2,3,4,5] (distinct values) -> linear 4', [3, 4, 5], 2, (b, x) => b.linear(b.flatten(b.reduce(x, 'max', [1], false)), 4), distinct],
  ['layernorm', 'layernorm axes [1,3) x=[2,3,4,5] -> linear 4', [3, 4, 5], 2, (b, x) => b.linear(b.flatten(b.layernorm(x, 1)), 4)],
  ['instancenorm', 'instancenorm x=[2,3,4,5] -> linear 4', [3, 4, 5], 2, (b, x) => b.linear(b.flatten(b.instancenorm(x)), 4)],
  ['softmax', 'softmax middle axis x=[2,3,4,5] -> linear 4', [3, 4, 5], 2, (b, x) => b.linear(b.flatten(b.softmax(x, 1)), 4)],
  ['log-softmax', 'log-softmax last axis x=[2,3,4,5] -> linear 4', [3, 4, 5], 2, (b, x) => b.linear(b.flatten(b.softmax(x, 2, true)), 4)],
  ['matmul', 'matmul tanh(x) x^T x=[2,2,3,4] (two activations) -> linear 4', [2, 3, 4], 2, (b, x) => b.linear(b.flatten(b.matmul(b.act(x, 'tanh'), b.layout(x, { kind: 'transpose', perm: [0, 2, 1] }))), 4)],
  ['matmul', 'matmul broadcast mean axis 1 x mean axis 0 transposed x=[2,2,2,3,3] -> linear 4', [2, 2, 3, 3], 2,
    (b, x) => b.linear(b.flatten(b.matmul(b.reduce(x, 'mean', [1]), b.layout(b.reduce(x, 'max', [0]), { kind: 'transpose', perm: [0, 1, 3, 2] }))), 4), distinct],
  ...([[[3, 4, 5], T(1, 2, 0)], [[4, 5, 6], S([3, 4, 5], [-1, 0, -1], [-2, -1, -3])], [[3, 4, 5], P('reflect', [1, 2, 3], [2, 3, 1])],
    [[3, 4, 5], P('edge', [1, 5, 0], [0, 2, 6])], [[3, 4, 5], P('constant', [0, 2, -1], [1, -1, 2], 0.5)], [[2, 1, 3], R(2, 4, 2)],
    [[3, 4, 5], G(2, 4, 4, 0, 2)]] as [Shape, LOp][]).map(([xs, op]): [string, string, Shape, number, Body] =>
    [op.kind, `${opName(op)} x=${shp([2, ...xs])} -> conv 1x1`, xs, 2, (b, x) => b.conv(b.layout(x, op), 3, 1)]),
];
for (const [family, cfg, xs, N, body, gen] of FD) {
  const name = `${cfg}: backward vs finite differences (eps ${FD_EPS})`;
  test(name, () => {
    const b = new GraphBuilder(xs, hash(name)), r = mulberry32(hash(name));
    const g = b.finish(body(b, b.input, r));
    const x = (gen ?? ((rr: Rand, n: number) => uniform(rr, n, -2, 2)))(r, N * numel(xs));
    return fdCheck(family, name, g, N, x, family === 'softmax' ? g.output : logitsOf(g)); // a softmax is seeded at its output
  });
}

// ------------------------------------------------------------------------------------------------ seed

/** The class the seed kernel should pick: c >= 0 itself; -(r+1) the r-th largest logit, ties to the lower index. */
function pick(row: ArrayLike<number>, c: number): number {
  if (c >= 0) return c;
  const order = Array.from({ length: row.length }, (_, i) => i).sort((a, b) => row[b] - row[a] || a - b);
  return order[-c - 1];
}
/** A linear 8 -> 10 whose logits tie: rows 1, 4, 6 identical and largest (bias 2), rows 0, 3 identical next (bias 1.5). */
function tiedHead(seed: number): Graph {
  const b = new GraphBuilder([8], seed);
  const g = b.finish(b.linear(b.input, 10)), op = g.nodes[0].op as LinearOp;
  for (let i = 0; i < op.w.length; i++) op.w[i] *= 0.05;
  for (const [rows, bias] of [[[1, 4, 6], 2], [[0, 3], 1.5]] as [number[], number][]) for (const o of rows) {
    op.w.copyWithin(o * 8, rows[0] * 8, rows[0] * 8 + 8); op.b[o] = bias;
  }
  return g;
}
const SEEDS: [string, 'logit' | 'prob', boolean, number[], number[] | null][] = [
  // score, tied logits, classes, expected targets (null: from a CPU sort of the GPU logits)
  ['tied logits', 'logit', true, [2, -1, -2, -3, -4, -5, 9], [2, 1, 4, 6, 0, 3, 9]],
  ['tied logits', 'prob', true, [7, -1, -3, -5, 0], [7, 1, 6, 3, 0]],
  ['random logits', 'logit', false, [-1, -3, 0, -10, 5], null],
  ['random logits', 'prob', false, [-1, -3, 0, -10, 5], null],
];
for (const [what, score, tied, classes, expected] of SEEDS) {
  const name = `seed ${what} x=[${classes.length},8] -> linear 10, score=${score}, classes [${classes.join(',')}] (plan batch ${classes.length + 1}): targets, seed, dx`;
  test(name, async () => {
    const gpu = await nodeGpu(), r = mulberry32(hash(name));
    let g: Graph;
    if (tied) g = tiedHead(hash(name));
    else { const b = new GraphBuilder([8], hash(name)); g = b.finish(b.linear(b.input, 10)); }
    const model = await Model.load(gpu, g, 'seed'), N = classes.length, F = 10, lg = logitsOf(g);
    try {
      const plan = await model.plan({ batch: N + 1, backward: [{ grads: [lg, g.input] }], score });
      const x = uniform(r, N * 8);
      const res = await gpu.scoped(`${name}: run`, () => plan.run(x, { classes: Int32Array.from(classes) }));
      const vals = refForward(g, f64(x), N), logits = res.logits;
      const fwd = relMax(logits, vals.get(lg)!);
      note('seed', 'forward', fwd, name);
      assert.ok(fwd <= TOL, `logits ${fwd}`);
      const want = classes.map((c, n) => pick(logits.subarray(n * F, (n + 1) * F), c));
      if (expected) assert.equal(want, expected, 'the test data: tied logits ordered as designed');
      assert.equal(Array.from(res.targets ?? []), want, 'targets');
      // the seed the kernel wrote (the gradient at the logits), from the GPU logits in float64
      const seed = new Float64Array(N * F);
      for (let n = 0; n < N; n++) {
        const row = Array.from(logits.subarray(n * F, (n + 1) * F)), mx = Math.max(...row), e = row.map((v) => Math.exp(v - mx)), s = e.reduce((a, v) => a + v, 0);
        const c = want[n], pc = e[c] / s;
        for (let j = 0; j < F; j++) seed[n * F + j] = score === 'logit' ? +(j === c) : pc * (+(j === c) - e[j] / s);
      }
      const es = relMax(res.grads.get(lg)!, seed);
      note('seed', 'grad', es, name);
      assert.ok(es <= TOL, `seed: ${es.toExponential(2)} (${worstAt(res.grads.get(lg)!, seed)})`);
      const dx = refBackward(g, vals, lg, seed, N, 'grad').get(g.input)!, ed = relMax(res.grads.get(g.input)!, dx);
      note('seed', 'grad', ed, name);
      assert.ok(ed <= TOL, `dx: ${ed.toExponential(2)}`);
    } finally { model.destroy(); }
  });
}

// ------------------------------------------------------------------------------------------------ coverage and report

test('coverage: every conv2d, winograd and linear entry point ran, forward and as a backward; every branch of the DeepLIFT max-pool rule was taken; every layout map ran', () => {
  const all = ['conv2d_forward', 'conv2d_forward_1x1', 'conv2d_forward_grouped', 'winograd', 'winograd4', 'conv2d_backward', 'conv2d_backward_grouped',
    'conv2d_forward (as backward)', 'conv2d_forward_1x1 (as backward)', 'winograd (as backward)',
    'linear_forward/linear_backward', 'linear_forward_scalar/linear_backward_scalar'];
  assert.equal(all.filter((e) => !entries.has(e)), [], 'entry points never selected');
  assert.ok(branches.actual > 0 && branches.reference > 0 && branches.neither > 0, `DeepLIFT max-pool branches taken: ${JSON.stringify(branches)}`);
  const maps = ['affine', 'pad constant', 'pad reflect', 'pad edge', 'tile', 'gather'];
  assert.equal(maps.filter((m) => !layoutMaps.has(m)), [], 'layout.wgsl MAPs never run');
});

test.after(async () => {
  const fmtE = (v?: { e: number }) => (v ? v.e.toExponential(1) : '-').padStart(9);
  const lines = [...worst].map(([fam, w]) => `  ${fam.padEnd(24)}${COLS.map((c) => fmtE(w[c])).join('')}`);
  console.log(`\n  kernels: worst max|gpu - ref| / max|ref| per op family (fd: vs finite differences)\n  ${'family'.padEnd(24)}${COLS.map((c) => c.padStart(9)).join('')}\n${lines.join('\n')}`);
  console.log(`  kernels suite: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await closeGpu();
});

test.run();
