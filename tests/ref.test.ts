// Checks the float64 reference executor (tests/ref.ts) against independent oracles: hand-computed
// forwards, central finite differences for every op's backward, the DeepLIFT summation-to-delta
// invariant, and the model builders (layer and parameter counts, finite non-constant logits).
// Run: npx esbuild tests/ref.test.ts --bundle --platform=node --format=esm --outfile=/tmp/ref.mjs && node /tmp/ref.mjs

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { ActFn, ActOp, BinaryOp, ConvOp, Graph, LayoutOp, LinearOp, NormOp, ReduceFn, Shape, logitsOf, numel } from '../src/graph';
import { GraphBuilder, mobilenetV2, mulberry32, paramCount, resnet50, vgg16 } from '../src/builder';
import { ACTS } from '../src/ops/acts';
import { resizeOf } from '../src/ops/resize';
import { convTransposeOf } from '../src/ops/convtranspose';
import { actD, actF, binaryD, binaryG, refBackward, refForward } from './ref';

const rand = mulberry32(20240611);
const uniform = (n: number, lo = -1, hi = 1) => Float64Array.from({ length: n }, () => lo + (hi - lo) * rand());
const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i], 0);
const maxAbs = (a: Float64Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12) => {
  assert.is(a.length, b.length, 'length');
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `[${i}]: ${a[i]} vs ${b[i]}`);
};

/** Distinct values (gaps >= 0.01 before scaling) in random order: no ties or near-ties for max-pool finite differences. */
function distinct(n: number, scale = 1): Float64Array {
  const v = Float64Array.from({ length: n }, (_, i) => (i - n / 2) * 0.02 * scale / Math.max(1, n / 100));
  for (let i = n - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [v[i], v[j]] = [v[j], v[i]]; }
  return v;
}

/**
 * Central finite differences (eps 1e-6, float64) of L(x) = sum(seed * y) against refBackward 'grad' at the
 * input, for a graph built by `body` on an input of `shape` with a batch of `batch`.
 */
function gradCheck(shape: Shape, batch: number, body: (b: GraphBuilder, x: string) => string, x?: Float64Array) {
  const b = new GraphBuilder(shape, 7);
  const g = b.finish(body(b, b.input));
  x ??= uniform(batch * numel(shape), -2, 2);
  const y = refForward(g, x, batch).get(g.output)!;
  const seed = uniform(y.length);
  const dx = refBackward(g, refForward(g, x, batch), g.output, seed, batch, 'grad').get(g.input)!;
  const L = (xx: Float64Array) => dot(refForward(g, xx, batch).get(g.output)!, seed);
  const eps = 1e-6;
  let err = 0;
  for (let i = 0; i < x.length; i++) {
    const xp = x.slice(), xm = x.slice();
    xp[i] += eps; xm[i] -= eps;
    err = Math.max(err, Math.abs((L(xp) - L(xm)) / (2 * eps) - dx[i]));
  }
  const scale = maxAbs(dx);
  assert.ok(scale > 1e-6, `gradient is all zero (max ${scale})`);
  assert.ok(err <= 1e-7 * Math.max(scale, 1), `max |fd - grad| = ${err.toExponential(2)} (max |grad| ${scale.toExponential(2)})`);
}

// ===================================================================================== hand-computed forwards

const hand = suite('ref forward: hand-computed');

/** 1-channel 3x3 input 1..9 through a 2x2 conv w = [[1,2],[3,4]], b = 0.5. */
function tinyConv(stride: number, pad: number): Float64Array {
  const b = new GraphBuilder([1, 3, 3]);
  const g = b.finish(b.conv(b.input, 1, 2, { stride, pad }));
  const op = g.nodes[0].op as ConvOp;
  op.w.set([1, 2, 3, 4]); op.b.set([0.5]);
  return refForward(g, Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), 1).get(g.output)!;
}

hand('conv x=[1,1,3,3] w=[1,1,2,2] s=1 p=0: [[37.5,47.5],[67.5,77.5]]', () => {
  close(tinyConv(1, 0), [37.5, 47.5, 67.5, 77.5]); // e.g. 1*1 + 2*2 + 4*3 + 5*4 + 0.5
});

hand('conv x=[1,1,3,3] w=[1,1,2,2] s=2 p=1: [[4.5,18.5],[36.5,77.5]]', () => {
  // windows start at -1 and 1: (0,0) sees only x00 under w11 = 4; (0,1) sees x01*w10 + x02*w11 = 6 + 12
  close(tinyConv(2, 1), [4.5, 18.5, 36.5, 77.5]);
});

hand('conv x=[1,2,2,2] w=[2,1,1,1] g=2 (depthwise scale per channel)', () => {
  const b = new GraphBuilder([2, 2, 2]);
  const g = b.finish(b.conv(b.input, 2, 1, { group: 2, bias: false }));
  (g.nodes[0].op as ConvOp).w.set([2, -1]);
  close(refForward(g, Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8]), 1).get(g.output)!, [2, 4, 6, 8, -5, -6, -7, -8]);
});

hand('avgpool x=[1,1,6,6] of ones k=3 s=2 p=1 ceil: include pad divides by the clipped window', () => {
  // per axis the windows are rows {-1,0,1}, {1,2,3}, {3,4,5}, {5,6} (clipped at H + pad = 7):
  // in-input rows 2,3,3,1 out of 3,3,3,2 -> factors 2/3, 1, 1, 1/2
  const ones = new Float64Array(36).fill(1), r = [2 / 3, 1, 1, 1 / 2];
  for (const countIncludePad of [true, false]) {
    const b = new GraphBuilder([1, 6, 6]);
    const g = b.finish(b.avgpool(b.input, 3, 2, 1, { ceil: true, countIncludePad }));
    const want = r.flatMap((ri) => r.map((rj) => (countIncludePad ? ri * rj : 1)));
    close(refForward(g, ones, 1).get(g.output)!, want);
  }
});

hand('avgpool x=[1,1,3,3] k=2 s=2 ceil p=0: last window has one column', () => {
  const b = new GraphBuilder([1, 3, 3]);
  const g = b.finish(b.avgpool(b.input, 2, 2, 0, { ceil: true, countIncludePad: true }));
  close(refForward(g, Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), 1).get(g.output)!, [3, 4.5, 7.5, 9]);
});

hand('maxpool x=[1,1,3,3] negative k=2 s=1 p=1: padding never wins', () => {
  const b = new GraphBuilder([1, 3, 3]);
  const g = b.finish(b.maxpool(b.input, 2, 1, 1));
  const y = refForward(g, Float64Array.from([-1, -2, -3, -4, -5, -6, -7, -8, -9]), 1).get(g.output)!;
  close(y, [-1, -1, -2, -3, -1, -1, -2, -3, -4, -4, -5, -6, -7, -7, -8, -9]);
});

hand('maxpool ties x=[1,1,2,4] k=2 s=2: the first maximum in scan order gets the gradient', () => {
  const b = new GraphBuilder([1, 2, 4]);
  const g = b.finish(b.maxpool(b.input, 2));
  const x = Float64Array.from([1, 1, 0, 2, /**/ 1, 0, 2, 2]);
  const vals = refForward(g, x, 1);
  close(vals.get(g.output)!, [1, 2]);
  const dx = refBackward(g, vals, g.output, Float64Array.from([3, 5]), 1, 'grad').get(g.input)!;
  close(dx, [3, 0, 0, 5, 0, 0, 0, 0]);
});

hand('act forwards and PyTorch kink gradients', () => {
  const op = (fn: ActFn, alpha = 0, beta = 0) => ({ kind: 'act' as const, fn, alpha, beta });
  assert.is(actD(op('relu'), 0), 0);
  assert.is(actD(op('clip', 0, 6), 0), 0); assert.is(actD(op('clip', 0, 6), 6), 0); assert.is(actD(op('clip', 0, 6), 3), 1);
  assert.is(actD(op('leakyrelu', 0.1), 0), 0.1);
  assert.is(actD(op('hardsigmoid', 0.2, 0.5), 2.5), 0); assert.is(actD(op('hardsigmoid', 0.2, 0.5), 0), 0.2);
  assert.is(actD(op('hardswish'), -3), -0.5); assert.is(actD(op('hardswish'), 3), 1.5); assert.is(actD(op('hardswish'), -3.1), 0);
  // forwards through graphs: [-4, -1, 0.5, 7]
  const x = Float64Array.from([-4, -1, 0.5, 7]);
  const f = (fn: ActFn, alpha?: number, beta?: number) => {
    const bb = new GraphBuilder([4]);
    const g = bb.finish(bb.act(bb.input, fn, alpha, beta));
    return refForward(g, x, 1).get(g.output)!;
  };
  close(f('relu'), [0, 0, 0.5, 7]);
  close(f('clip'), [0, 0, 0.5, 6]);
  close(f('leakyrelu'), [-0.04, -0.01, 0.5, 7]);
  close(f('hardsigmoid'), [0, 0.3, 0.6, 1]);
  close(f('hardswish'), [0, -1 / 3, 0.5 * 3.5 / 6, 7]);
  close(f('sigmoid'), [...x].map((v) => 1 / (1 + Math.exp(-v))));
});

/** PyTorch's values and derivatives (float64 autograd), written by tools/make_act_goldens.py; null is NaN. */
const TORCH: {
  torch: string;
  acts: { fn: ActFn; alpha: number; beta: number; x: number[]; y: (number | null)[]; dy: (number | null)[] }[];
  binary: { op: BinaryOp['kind']; a: number[]; b: number[]; y: (number | null)[]; da: (number | null)[]; db: (number | null)[] }[];
} = JSON.parse(readFileSync('tests/fixtures/acts/torch.json', 'utf8'));
/** got equals PyTorch's want to tol (relative above 1), infinities and NaN exactly. */
const sameAs = (got: number, want: number | null, what: string, tol = 1e-12) => {
  if (want === null) assert.ok(Number.isNaN(got), `${what}: ${got}, PyTorch NaN`);
  else if (!Number.isFinite(want)) assert.is(got, want, what);
  else assert.ok(Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)), `${what}: ${got}, PyTorch ${want}`);
};

hand(`act values and derivatives, kinks included, vs PyTorch ${TORCH.torch} float64 autograd (tests/fixtures/acts/torch.json)`, () => {
  const missing = (Object.keys(ACTS) as ActFn[]).filter((fn) => !TORCH.acts.some((e) => e.fn === fn));
  assert.equal(missing, [], 'every function of the table has PyTorch goldens');
  for (const e of TORCH.acts) {
    const op: ActOp = { kind: 'act', fn: e.fn, alpha: e.alpha, beta: e.beta };
    e.x.forEach((x, i) => {
      sameAs(actF(op, x), e.y[i], `${e.fn}(${x}; ${e.alpha}, ${e.beta})`);
      // PyTorch's hardsigmoid_backward multiplies by the float32 constant 1/6, also in float64
      sameAs(actD(op, x), e.dy[i], `${e.fn}'(${x}; ${e.alpha}, ${e.beta})`, e.fn === 'hardsigmoid' ? 1e-7 : 1e-12);
    });
  }
});

hand(`binary sub, mul, div, max, min values and gradients (ties split in halves) vs PyTorch ${TORCH.torch}`, () => {
  assert.ok(TORCH.binary.length === 5, 'five binary ops in the goldens');
  for (const e of TORCH.binary) e.a.forEach((a, i) => {
    const b = e.b[i], [da, db] = binaryD(e.op, a, b);
    sameAs(binaryG(e.op, a, b), e.y[i], `${e.op}(${a}, ${b})`);
    sameAs(da, e.da[i], `d${e.op}/da at (${a}, ${b})`);
    sameAs(db, e.db[i], `d${e.op}/db at (${a}, ${b})`);
  });
});

hand('gap, broadcast add of a [2] constant, concat, linear, softmax on x=[1,2,1,2]', () => {
  const b = new GraphBuilder([2, 1, 2]);                                              // x = [[1,2]], [[3,4]]
  const gp = b.gap(b.input);                                                          // [2,1,1]: 1.5, 3.5
  const s = b.add(b.input, b.constant(Float32Array.from([10, 20]), [2]));             // broadcasts along W
  const cat = b.concat([b.input, s]);                                                 // [4,1,2]
  const lin = b.linear(b.flatten(gp), 2);                                             // w = [[1,1],[1,-1]], b = [0.5, 0]
  const g = b.finish(b.softmax(lin));
  const op = g.nodes.find((n) => n.name === lin)!.op as LinearOp;
  op.w.set([1, 1, 1, -1]); op.b.set([0.5, 0]);
  const v = refForward(g, Float64Array.from([1, 2, 3, 4]), 1);
  close(v.get(gp)!, [1.5, 3.5]);
  close(v.get(s)!, [11, 22, 13, 24]);
  close(v.get(cat)!, [1, 2, 3, 4, 11, 22, 13, 24]);
  close(v.get(lin)!, [5.5, -2]);
  const e = Math.exp(7.5);
  close(v.get(g.output)!, [e / (e + 1), 1 / (e + 1)]);
});

/** The per-sample values of a one-node layout graph on x (batch 1). */
function layoutOf(xs: Shape, op: LayoutOp, x: number[]): Float64Array {
  const b = new GraphBuilder(xs);
  const g = b.finish(b.layout(b.input, op));
  return refForward(g, Float64Array.from(x), 1).get(g.output)!;
}

hand('pad x=[1,1,3] = [1,2,3] by 2 each side: reflect [3,2,1,2,3,2,1], edge [1,1,1,2,3,3,3], constant 9 (numpy.pad examples)', () => {
  const op = (mode: 'reflect' | 'edge' | 'constant'): LayoutOp => ({ kind: 'pad', mode, begin: [0, 2], end: [0, 2], value: 9 });
  close(layoutOf([1, 3], op('reflect'), [1, 2, 3]), [3, 2, 1, 2, 3, 2, 1]);
  close(layoutOf([1, 3], op('edge'), [1, 2, 3]), [1, 1, 1, 2, 3, 3, 3]);
  close(layoutOf([1, 3], op('constant'), [1, 2, 3]), [9, 9, 1, 2, 3, 9, 9]);
  // negative pads crop (constant mode): [1,2,3,4] with begin -1, end 1 -> [2,3,4,0]
  close(layoutOf([4], { kind: 'pad', mode: 'constant', begin: [-1], end: [1], value: 0 }, [1, 2, 3, 4]), [2, 3, 4, 0]);
});

hand('transpose x=[1,2,3] perm [1,0] -> [[1,4],[2,5],[3,6]]; slice, tile, gather on it', () => {
  const x = [1, 2, 3, 4, 5, 6]; // [[1,2,3],[4,5,6]]
  close(layoutOf([2, 3], { kind: 'transpose', perm: [1, 0] }, x), [1, 4, 2, 5, 3, 6]);
  close(layoutOf([2, 3], { kind: 'slice', begin: [1, 2], end: [-1, -1], step: [-1, -2] }, x), [6, 4, 3, 1]); // x[::-1, ::-2]
  close(layoutOf([2, 3], { kind: 'slice', begin: [0, 1], end: [2, 3], step: [1, 1] }, x), [2, 3, 5, 6]);   // x[:, 1:]
  close(layoutOf([2, 3], { kind: 'tile', reps: [1, 2] }, x), [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6]);
  close(layoutOf([2, 3], { kind: 'gather', axis: 1, indices: [2, 0, 2] }, x), [3, 1, 3, 6, 4, 6]);
});

// ===================================================================================== finite differences

const fd = suite('ref backward vs finite differences');

const convCases: [Shape, number, number, [number, number], number | [number, number], number | [number, number, number, number], number | [number, number], number][] = [
  // x (C,H,W), batch, cout, k, stride, pad, dil, group
  [[3, 7, 7], 2, 4, [3, 3], 2, 1, 1, 1],
  [[2, 6, 5], 1, 3, [2, 3], 1, [0, 1, 2, 1], 1, 1],
  [[2, 9, 9], 1, 2, [3, 3], 1, 2, 2, 1],
  [[3, 8, 7], 1, 2, [3, 2], [2, 1], [1, 0, 1, 2], [2, 1], 1],
  [[4, 6, 6], 2, 6, [3, 3], 1, 1, 1, 2],
  [[4, 7, 7], 1, 4, [3, 3], 2, 1, 1, 4],
  [[3, 5, 5], 1, 6, [3, 3], 1, 1, 1, 3],
  [[3, 5, 6], 1, 5, [1, 1], 2, 0, 1, 1],
  [[1, 4, 4], 1, 2, [4, 4], 1, 3, 1, 1],
];
for (const [xs, N, cout, k, s, p, d, grp] of convCases) {
  const f = (v: number | number[]) => (typeof v === 'number' ? `${v}` : `[${v.join(',')}]`);
  fd(`conv backward x=[${N},${xs.join(',')}] w=[${cout},${xs[0] / grp},${k.join(',')}] s=${f(s)} p=${f(p)} d=${f(d)} g=${grp}`, () =>
    gradCheck(xs, N, (b, x) => b.conv(x, cout, k, { stride: s, pad: p, dil: d, group: grp })));
}
fd('conv backward x=[1,2,5,5] w=[3,2,3,3] s=1 p=1 bias=false', () => gradCheck([2, 5, 5], 1, (b, x) => b.conv(x, 3, 3, { pad: 1, bias: false })));

/** Inputs for an activation: values in [lo, hi] kept at least 0.01 from the function's kinks. */
function awayFrom(n: number, lo: number, hi: number, kinks: number[]): Float64Array {
  const v = uniform(n, lo, hi);
  for (let i = 0; i < n; i++) for (const k of kinks) if (Math.abs(v[i] - k) < 0.01) v[i] = k + (v[i] < k ? -0.05 : 0.05);
  return v;
}
/** Act configurations, their kinks and the input range (positive where f is defined only there). */
const actCases: [ActFn, number | undefined, number | undefined, number[], [number, number]?][] = [
  ['relu', undefined, undefined, [0]],
  ['clip', undefined, undefined, [0, 6]],
  ['clip', -1, 0.5, [-1, 0.5]],
  ['leakyrelu', undefined, undefined, [0]],
  ['leakyrelu', 0.2, undefined, [0]],
  ['sigmoid', undefined, undefined, []],
  ['hardsigmoid', undefined, undefined, [-2.5, 2.5]],
  ['hardsigmoid', 1 / 6, 0.5, [-3, 3]],
  ['hardswish', undefined, undefined, [-3, 3]],
  ['tanh', undefined, undefined, []],
  ['exp', undefined, undefined, []],
  ['log', undefined, undefined, [], [0.05, 8]],
  ['sqrt', undefined, undefined, [], [0.05, 8]],
  ['reciprocal', undefined, undefined, [0]],
  ['neg', undefined, undefined, []],
  ['abs', undefined, undefined, [0]],
  ['erf', undefined, undefined, []],
  ['gelu', undefined, undefined, []],
  ['gelu_tanh', undefined, undefined, []],
  ['elu', undefined, undefined, [0]],
  ['elu', 0.4, undefined, [0]],
  ['selu', undefined, undefined, [0]],
  ['celu', 0.5, undefined, [0]],
  ['softplus', undefined, undefined, []],
  ['softsign', undefined, undefined, []],
  ['mish', undefined, undefined, []],
  ['pow', 2, undefined, []],
  ['pow', 3, undefined, []],
  ['pow', -1, undefined, [0]],
  ['pow', 0.5, undefined, [], [0.05, 8]],
  ['pow', 1.5, undefined, [], [0.05, 8]],
];
for (const [fn, alpha, beta, kinks, [lo, hi] = [-8, 8]] of actCases) {
  const cfg = alpha === undefined ? 'defaults' : `alpha=${+alpha.toFixed(4)} beta=${beta ?? 0}`;
  fd(`act ${fn} backward x=[2,3,4,5] ${cfg} in [${lo}, ${hi}]`, () =>
    gradCheck([3, 4, 5], 2, (b, x) => b.act(x, fn, alpha, beta), awayFrom(120, lo, hi, kinks)));
}
/** PRelu slopes and Pow exponents per element block: per channel [3] of [3,4,5] (inner 20), per column [5] (inner 1). */
const perCases: [ActFn, number[], number, [number, number]][] = [
  ['leakyrelu', [0.25, -0.5, 2], 20, [-8, 8]],
  ['leakyrelu', [0.1, 0.2, 0.3, -0.4, 1.5], 1, [-8, 8]],
  ['pow', [2, 0.5, 3], 20, [0.05, 4]],
  ['pow', [1, 2, 3, -1, 1.5], 1, [0.05, 4]],
];
for (const [fn, alphas, inner, [lo, hi]] of perCases) {
  fd(`act ${fn} backward x=[2,3,4,5] alpha per element [${alphas}] (inner ${inner})`, () =>
    gradCheck([3, 4, 5], 2, (b, x) => b.act(x, fn, 0, 0, { alphas: Float32Array.from(alphas), inner }), awayFrom(120, lo, hi, [0])));
}

fd('add backward same shape x=[2,3,5,5] + conv(x)', () => gradCheck([3, 5, 5], 2, (b, x) => b.add(x, b.conv(x, 3, 3, { pad: 1 }))));
fd('add backward per-channel x=[2,4,5,5] + gap(x) [4,1,1]', () => gradCheck([4, 5, 5], 2, (b, x) => b.add(b.gap(x), x)));
fd('add backward constant [3,1,1] and [5] (rank-lower) x=[2,3,4,5]', () => gradCheck([3, 4, 5], 2, (b, x) => {
  const y = b.add(x, b.constant(Float32Array.from([1, -2, 3]), [3, 1, 1]));
  return b.add(b.constant(Float32Array.from([1, 2, 3, 4, 5]), [5]), y);
}));
fd('mul backward same shape x=[2,3,5,5] * conv(x)', () => gradCheck([3, 5, 5], 2, (b, x) => b.mul(x, b.conv(x, 3, 3, { pad: 1 }))));
fd('mul backward x*x (one tensor on both sides) x=[1,2,3,3]', () => gradCheck([2, 3, 3], 1, (b, x) => b.mul(x, x)));
fd('mul backward per-channel x=[2,4,5,5] * gap(x) [4,1,1]', () => gradCheck([4, 5, 5], 2, (b, x) => b.mul(x, b.gap(x))));
fd('mul backward constant full [3,4,5] and [1,4,5] x=[2,3,4,5]', () => gradCheck([3, 4, 5], 2, (b, x) => {
  const y = b.mul(b.constant(Float32Array.from(uniform(60)), [3, 4, 5]), x);
  return b.mul(y, b.constant(Float32Array.from(uniform(20)), [1, 4, 5]));
}));

fd('sub backward x - conv(x) and constant [3,1,1] - x x=[2,3,4,4]', () => gradCheck([3, 4, 4], 2, (b, x) =>
  b.binary('sub', b.constant(Float32Array.from([1, -2, 3]), [3, 1, 1]), b.binary('sub', x, b.conv(x, 3, 3, { pad: 1 })))));
fd('div backward x / exp(conv(x)) and constant [3,1,1] / softplus(x) x=[2,3,4,4]', () => gradCheck([3, 4, 4], 2, (b, x) =>
  b.add(b.binary('div', x, b.act(b.conv(x, 3, 3, { pad: 1 }), 'exp')), b.binary('div', b.constant(Float32Array.from([1, -2, 3]), [3, 1, 1]), b.act(x, 'softplus')))));
fd('div backward x / exp(x) (x on both sides) x=[1,2,3,3]', () => gradCheck([2, 3, 3], 1, (b, x) => b.binary('div', x, b.act(x, 'exp'))));
fd('max, min backward max(x, conv(x)), min(gap(x) [3,1,1], x), max(x, constant [1]) x=[2,3,4,4]', () => gradCheck([3, 4, 4], 2, (b, x) => {
  const m = b.binary('max', x, b.conv(x, 3, 3, { pad: 1 }));
  return b.add(b.binary('min', b.gap(m), m), b.binary('max', x, b.constant(Float32Array.from([0.3]), [1])));
}));

const poolCases: [Shape, number, number, number, boolean][] = [ // x, k, stride, pad, ceil
  [[2, 6, 6], 2, 2, 0, false],
  [[2, 7, 7], 3, 2, 1, false],
  [[2, 8, 8], 3, 2, 0, true],
  [[2, 6, 6], 3, 2, 1, true],
  [[1, 5, 7], 2, 1, 0, false],
  [[1, 7, 5], 3, 3, 1, true],
];
for (const [xs, k, s, p, ceil] of poolCases) {
  const cfg = `x=[2,${xs.join(',')}] k=${k} s=${s} p=${p} ceil=${ceil}`;
  fd(`maxpool backward ${cfg}`, () => gradCheck(xs, 2, (b, x) => b.maxpool(x, k, s, p, ceil), distinct(2 * numel(xs))));
  for (const countIncludePad of [true, false])
    fd(`avgpool backward ${cfg} countIncludePad=${countIncludePad}`, () => gradCheck(xs, 2, (b, x) => b.avgpool(x, k, s, p, { ceil, countIncludePad })));
}

fd('gap backward x=[2,3,4,5]', () => gradCheck([3, 4, 5], 2, (b, x) => b.gap(x)));
fd('flatten + linear backward x=[2,3,4,4] -> 48 -> 7', () => gradCheck([3, 4, 4], 2, (b, x) => b.linear(b.flatten(x), 7)));
fd('affine backward x=[2,4,3,3]', () => gradCheck([4, 3, 3], 2, (b, x) => b.affine(x)));
fd('affine backward after flatten x=[2,6]', () => gradCheck([6], 2, (b, x) => b.affine(x)));
fd('concat backward x=[2,2,4,4] ++ conv(x) [3,4,4] ++ x', () => gradCheck([2, 4, 4], 2, (b, x) => b.concat([x, b.conv(x, 3, 3, { pad: 1 }), x])));
fd('softmax backward x=[2,12] -> linear 5 -> softmax', () => gradCheck([12], 2, (b, x) => b.softmax(b.linear(x, 5))));
fd('flatten backward x=[2,3,2,2] (alias)', () => gradCheck([3, 2, 2], 2, (b, x) => b.flatten(x)));
const layoutCases: [string, Shape, LayoutOp][] = [
  ['transpose perm [2,0,1]', [3, 4, 5], { kind: 'transpose', perm: [2, 0, 1] }],
  ['slice begin [2,0,4] end [0,4,-1] step [-1,2,-2]', [3, 4, 5], { kind: 'slice', begin: [2, 0, 4], end: [0, 4, -1], step: [-1, 2, -2] }],
  ['pad constant 0.5 begin [1,0,2] end [0,2,-1]', [3, 4, 5], { kind: 'pad', mode: 'constant', begin: [1, 0, 2], end: [0, 2, -1], value: 0.5 }],
  ['pad reflect begin [0,3,1] end [2,1,4]', [3, 4, 5], { kind: 'pad', mode: 'reflect', begin: [0, 3, 1], end: [2, 1, 4], value: 0 }],
  ['pad edge begin [2,0,6] end [1,5,0]', [3, 4, 5], { kind: 'pad', mode: 'edge', begin: [2, 0, 6], end: [1, 5, 0], value: 0 }],
  ['tile reps [2,1,3]', [3, 4, 5], { kind: 'tile', reps: [2, 1, 3] }],
  ['gather axis 1 indices [3,0,3,1,3]', [3, 4, 5], { kind: 'gather', axis: 1, indices: [3, 0, 3, 1, 3] }],
];
for (const [cfg, xs, op] of layoutCases) fd(`${cfg} backward x=[2,${xs.join(',')}] (then conv 1x1, so dy varies)`, () =>
  gradCheck(xs, 2, (b, x) => b.conv(b.layout(x, op), 2, 1)));

fd('mini CNN backward x=[2,3,8,8]: conv-relu-maxpool-conv-add-affine-leakyrelu-gap-linear-softmax', () =>
  gradCheck([3, 8, 8], 2, (b, x) => {
    const c1 = b.relu(b.conv(x, 4, 3, { pad: 1 }));
    const p = b.maxpool(c1, 2);
    const c2 = b.conv(p, 4, 3, { pad: 1 });
    const y = b.act(b.affine(b.add(c2, p)), 'leakyrelu');
    return b.softmax(b.linear(b.flatten(b.gap(y)), 5));
  }));

// ===================================================================================== guided and DeepLIFT

const dl = suite('ref guided backprop and DeepLIFT');

dl('guided: relu passes dy only where x > 0 and dy > 0; other acts are plain gradients', () => {
  const b = new GraphBuilder([20]);
  const r = b.relu(b.input), c = b.act(r, 'clip', -1, 0.5);
  const g = b.finish(b.linear(c, 6));
  const x = awayFrom(40, -2, 2, [0, -1, 0.5]), vals = refForward(g, x, 2), seed = uniform(12);
  const grad = refBackward(g, vals, g.output, seed, 2, 'grad'), guided = refBackward(g, vals, g.output, seed, 2, 'guided');
  close(guided.get(r)!, grad.get(r)!); // the clip is not touched
  const dy = grad.get(r)!;
  close(guided.get(g.input)!, dy.map((d, i) => (x[i] > 0 && d > 0 ? d : 0)));
  assert.ok(dy.some((d, i) => x[i] > 0 && d < 0), 'some positive-x gradients are negative (the case guided differs)');
});

dl('deeplift with the reference equal to the input is the gradient', () => {
  const b = new GraphBuilder([3, 6, 6]);
  const y = b.linear(b.flatten(b.maxpool(b.act(b.relu(b.conv(b.input, 4, 3, { pad: 1 })), 'hardswish'), 2)), 5);
  const g = b.finish(y);
  const x = uniform(2 * 108), vals = refForward(g, x, 2), seed = uniform(10);
  const grad = refBackward(g, vals, g.output, seed, 2, 'grad').get(g.input)!;
  close(refBackward(g, vals, g.output, seed, 2, 'deeplift', vals).get(g.input)!, grad);
});

/** A graph with every non-linear rule: relu, sigmoid, hardswish, hardsigmoid, leakyrelu, clip, maxpool, mul of two tensors. */
function dlGraph(): { g: Graph; taps: Record<string, string> } {
  const b = new GraphBuilder([3, 9, 9], 3);
  const c1 = b.conv(b.input, 6, 3, { pad: 1 });
  const r1 = b.relu(c1);
  const p1 = b.maxpool(r1, 3, 2, 1);                                     // [6,5,5], overlapping windows
  const s = b.act(b.conv(p1, 6, 3, { pad: 1 }), 'sigmoid');
  const m = b.mul(s, b.conv(p1, 6, 1));                                  // gate: two varying tensors
  const h = b.act(m, 'hardswish');
  const m2 = b.mul(h, b.act(b.gap(h), 'hardsigmoid'));                   // channel attention, broadcast [6,1,1]
  const l = b.act(b.affine(m2), 'leakyrelu', 0.1);
  const p2 = b.maxpool(b.act(l, 'clip', -1, 2), 2, 2, 0, true);           // [6,3,3]
  const cat = b.concat([p2, b.avgpool(m2, 3, 2, 1, { countIncludePad: false })]);
  const y = b.linear(b.relu(b.linear(b.flatten(cat), 16)), 10);
  return { g: b.finish(y), taps: { r1, p1, h } };
}

/** Per sample, sum over tensor t of m * (x - x') against sum(seed * (y - y')) at the logits. */
function checkSummation(g: Graph, t: string, vals: Map<string, Float64Array>, refVals: Map<string, Float64Array>, seed: Float64Array, N: number) {
  const out = logitsOf(g), m = refBackward(g, vals, out, seed, N, 'deeplift', refVals).get(t)!;
  const x = vals.get(t)!, xr = refVals.get(t)!, M = x.length / N, F = seed.length / N;
  for (let n = 0; n < N; n++) {
    let lhs = 0, rhs = 0, mag = 0;
    for (let i = n * M; i < (n + 1) * M; i++) { lhs += m[i] * (x[i] - xr[i]); mag += Math.abs(m[i] * (x[i] - xr[i])); }
    for (let o = n * F; o < (n + 1) * F; o++) rhs += seed[o] * (vals.get(out)![o] - refVals.get(out)![o]);
    assert.ok(Math.abs(rhs) > 1e-3, `delta at the seed is not tiny (${rhs})`);
    assert.ok(Math.abs(lhs - rhs) <= 1e-9 * Math.abs(rhs), `sample ${n} at '${t}': sum m*dx = ${lhs}, dy = ${rhs} (terms ${mag.toExponential(2)})`);
  }
}

dl('deeplift summation to delta at the input, random reference input, batch 3', () => {
  const { g } = dlGraph(), N = 3;
  const vals = refForward(g, uniform(N * 243, -2, 2), N), refVals = refForward(g, uniform(N * 243, -2, 2), N);
  checkSummation(g, g.input, vals, refVals, uniform(N * 10), N);
  // one-hot seeds (the explanation case): class 3 for every sample
  const oneHot = new Float64Array(N * 10); for (let n = 0; n < N; n++) oneHot[n * 10 + 3] = 1;
  checkSummation(g, g.input, vals, refVals, oneHot, N);
});

dl('deeplift summation to delta from a zero override at an intermediate tensor (LIFT-CAM)', () => {
  const { g, taps } = dlGraph(), N = 2, x = uniform(N * 243, -2, 2), vals = refForward(g, x, N);
  for (const t of [taps.r1, taps.p1, taps.h]) {
    const zeros = new Float64Array(vals.get(t)!.length);
    const refVals = refForward(g, x, N, { tensor: t, value: zeros });
    close(refVals.get(t)!, zeros);
    checkSummation(g, t, vals, refVals, uniform(N * 10), N);
  }
});

/** A graph through every element-wise function and binary op added with the op table's element-wise family. */
export function elementwiseGraph(b: GraphBuilder): string {
  const x = b.input, C = b.shape(x)[0], HW = numel(b.shape(x).slice(1)), c1 = b.conv(x, C, 3, { pad: 1 });
  const g1 = b.act(c1, 'gelu'), t = b.act(b.conv(g1, C, 1), 'tanh');
  const e = b.act(b.conv(x, C, 3, { pad: 1 }), 'elu');
  const d = b.binary('div', t, b.add(b.act(b.conv(e, C, 1), 'softplus'), b.constant(Float32Array.of(0.5), [])));
  const mx = b.binary('max', d, b.act(e, 'mish'));
  const mn = b.binary('min', mx, b.act(b.act(g1, 'gelu_tanh'), 'erf'));
  const s = b.binary('sub', b.act(b.act(c1, 'abs'), 'sqrt'), mn);
  const pw = b.act(s, 'pow', 0, 0, { alphas: Float32Array.from({ length: C }, (_, c) => [2, 3, 1, 0.5][c % 4]), inner: HW });
  const pr = b.act(b.act(pw, 'softsign'), 'leakyrelu', 0, 0, { alphas: Float32Array.from({ length: C }, (_, c) => 0.3 - 0.2 * c), inner: HW });
  const ce = b.act(b.act(pr, 'selu'), 'celu', 0.7);
  const lg = b.act(b.add(b.act(b.act(ce, 'neg'), 'exp'), b.act(s, 'sigmoid')), 'log');
  const rc = b.act(b.add(b.act(lg, 'pow', 2), b.constant(Float32Array.of(1), [])), 'reciprocal');
  return b.binary('div', b.constant(Float32Array.from({ length: C }, (_, c) => c - 1.5), [C, 1, 1]), b.add(rc, b.constant(Float32Array.of(1), [])));
}

dl('deeplift summation to delta through every element-wise function and binary op, random reference input, batch 2', () => {
  const b = new GraphBuilder([4, 5, 5], 11), N = 2;
  const g = b.finish(b.linear(b.flatten(elementwiseGraph(b)), 10));
  const vals = refForward(g, uniform(N * 100, -2, 2), N), refVals = refForward(g, uniform(N * 100, -2, 2), N);
  for (const t of g.tensors.keys()) assert.ok(vals.get(t)!.every(Number.isFinite), `'${t}' is finite`);
  checkSummation(g, g.input, vals, refVals, uniform(N * 10), N);
});

dl('deeplift maxpool x=[1,1,2,2] k=2: routes to the reference argmax when the actual one did not move', () => {
  // x = [5,1,0,0], x' = [5,7,0,0]: the argmax (index 0) has x - x' = 0, the reference argmax (index 1) moved
  // by 1 - 7 = -6; y - y' = 5 - 7 = -2 goes to index 1 with multiplier -2 / -6.
  const b = new GraphBuilder([1, 2, 2]);
  const g = b.finish(b.maxpool(b.input, 2));
  const vals = refForward(g, Float64Array.from([5, 1, 0, 0]), 1), refVals = refForward(g, Float64Array.from([5, 7, 0, 0]), 1);
  close(refBackward(g, vals, g.output, Float64Array.from([1]), 1, 'deeplift', refVals).get(g.input)!, [0, 1 / 3, 0, 0]);
  // neither moved: plain routing to the argmax (contributes 0)
  close(refBackward(g, vals, g.output, Float64Array.from([2]), 1, 'deeplift', vals).get(g.input)!, [2, 0, 0, 0]);
});

// ===================================================================================== model builders

const bl = suite('builder');

const count = (g: Graph, kind: string) => g.nodes.filter((n) => n.op.kind === kind).length;

/** Params at 224/1000 from torchvision, minus the BatchNorm weight+bias pairs replaced by one conv bias each. */
const TORCHVISION = {
  vgg16: 138_357_544,                 // no BatchNorm
  resnet50: 25_557_032 - 26_560,      // BN channels: 64 + sum 6w per bottleneck (22,656) + 4w per downsample (3,840)
  mobilenetV2: 3_504_872 - 17_056,    // BN channels: 32 + per block (2*hidden + out, no expand BN when t = 1) + 1280
};

bl('vgg16 at 224/1000 has torchvision\'s 138,357,544 parameters; FC1 reads 25088', () => {
  const g = vgg16();
  assert.is(paramCount(g), TORCHVISION.vgg16);
  assert.is((g.nodes.find((n) => n.name === 'classifier.0')!.op as LinearOp).in, 25088);
});

bl('resnet50 and mobilenetV2 at 224/1000 have torchvision\'s parameter counts with BN folded', () => {
  assert.is(paramCount(resnet50()), TORCHVISION.resnet50);     // 25,530,472
  assert.is(paramCount(mobilenetV2()), TORCHVISION.mobilenetV2); // 3,487,816
});

/** Logits of a batch of 2 random images: finite, different across classes and samples. Also checks every tensor's RMS is O(1). */
function checkModel(g: Graph, size: number) {
  const N = 2, vals = refForward(g, uniform(N * 3 * size * size, -2, 2), N);
  const y = vals.get(logitsOf(g))!;
  assert.ok(y.every(Number.isFinite), 'finite logits');
  const spread = Math.max(...y) - Math.min(...y);
  assert.ok(spread > 1e-2 * Math.max(1, maxAbs(y)), `logits not all equal (spread ${spread})`);
  assert.ok(y.slice(0, y.length / 2).some((v, i) => Math.abs(v - y[i + y.length / 2]) > 1e-6), 'samples differ');
  for (const n of g.nodes) {
    const v = vals.get(n.output)!, rms = Math.sqrt(v.reduce((s, a) => s + a * a, 0) / v.length);
    assert.ok(rms > 0.05 && rms < 20, `RMS of '${n.name}' is ${rms}`);
  }
}

bl('vgg16 size=32 classes=10: 13 conv, 15 relu, 5 maxpool, 3 linear; FC1 reads 512', () => {
  const g = vgg16({ size: 32, classes: 10 });
  assert.equal([count(g, 'conv'), count(g, 'act'), count(g, 'maxpool'), count(g, 'linear'), g.nodes.length], [13, 15, 5, 3, 37]);
  assert.is(paramCount(g), 14_714_688 + (512 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 10 + 10));
  assert.ok(g.tensors.has('features.28') && g.tensors.has('features.30') && g.tensors.has('classifier.6'));
  assert.equal(g.tensors.get('features.30')!.shape, [512, 1, 1]);
  checkModel(g, 32);
});

bl('resnet50 size=64 classes=10: 53 conv (4 downsample), 16 adds, 49 relu, 1 linear', () => {
  const g = resnet50({ size: 64, classes: 10 });
  assert.equal([count(g, 'conv'), count(g, 'add'), count(g, 'act'), count(g, 'linear'), g.nodes.length], [53, 16, 49, 1, 122]);
  assert.is(paramCount(g), TORCHVISION.resnet50 - 2048 * 990 - 990);
  for (const t of ['layer3.2.conv2', 'layer3.2.relu_2', 'layer4.0.downsample.0', 'avgpool', 'fc']) assert.ok(g.tensors.has(t), t);
  assert.equal(g.tensors.get('layer4.2.relu_2')!.shape, [2048, 2, 2]);
  checkModel(g, 64);
});

bl('mobilenetV2 size=64 classes=10: 52 conv (17 depthwise), 10 adds, 35 relu6, 1 linear', () => {
  const g = mobilenetV2({ size: 64, classes: 10 });
  const dw = g.nodes.filter((n) => n.op.kind === 'conv' && n.op.group > 1).length;
  assert.equal([count(g, 'conv'), dw, count(g, 'add'), count(g, 'act'), count(g, 'linear')], [52, 17, 10, 35, 1]);
  assert.is(paramCount(g), TORCHVISION.mobilenetV2 - 1280 * 990 - 990);
  for (const t of ['features.1.conv.0.0', 'features.17.conv.2', 'features.18.2', 'classifier.1']) assert.ok(g.tensors.has(t), t);
  assert.equal(g.tensors.get('features.18.2')!.shape, [1280, 2, 2]);
  checkModel(g, 64);
});

bl('builder: seeded weights are reproducible; errors name the node', () => {
  const w = (seed: number) => (resnet50({ size: 32, classes: 10, seed }).nodes[0].op as ConvOp).w;
  assert.equal(w(5).slice(0, 50), w(5).slice(0, 50));
  assert.not.equal(w(5).slice(0, 50), w(6).slice(0, 50));
  const b = new GraphBuilder([3, 8, 8]);
  assert.throws(() => b.as('head.fc').linear(b.input, 10), /node 'head\.fc'.*\(N,192\)/);
  const b2 = new GraphBuilder([3, 8, 8]);
  assert.throws(() => b2.as('join').add(b2.input, b2.conv(b2.input, 4, 1)), /node 'join' \(Add\): shapes do not broadcast; input shapes \[3,8,8\], \[4,8,8\]/);
  assert.ok(b2.shape('conv'), 'the nested conv kept its own name');
  assert.throws(() => new GraphBuilder([3, 4, 4]).conv('input', 4, 5), /window 5x5 does not fit/);
});

// ===================================================================================== reductions, normalisations, softmax, matmul

const rw = suite('ref reductions, normalisations, softmax, matmul');

/** y of a one-node graph on x (batch 1). */
const one = (xs: Shape, body: (b: GraphBuilder, x: string) => string, x: number[]) => {
  const b = new GraphBuilder(xs);
  const g = b.finish(body(b, b.input));
  return refForward(g, Float64Array.from(x), 1).get(g.output)!;
};

rw('reduce x=[1,2,3] = [[1,-2,3],[4,5,-6]]: sum, mean, max, min, l2, l1, sumsquare over axis 1, axis 0, both', () => {
  const x = [1, -2, 3, 4, 5, -6];
  const r = (fn: ReduceFn, axes: number[]) => one([2, 3], (b, t) => b.reduce(t, fn, axes), x);
  close(r('sum', [1]), [2, 3]); close(r('mean', [1]), [2 / 3, 1]); close(r('max', [1]), [3, 5]); close(r('min', [1]), [-2, -6]);
  close(r('l2', [1]), [Math.sqrt(14), Math.sqrt(77)]); close(r('l1', [1]), [6, 15]); close(r('sumsquare', [1]), [14, 77]);
  close(r('sum', [0]), [5, 3, -3]); close(r('max', [0]), [4, 5, 3]); close(r('mean', [0, 1]), [5 / 6]);
});

rw('reduce max ties x=[1,2,3] = [[2,7,7],[7,1,7]] over both axes: the first maximum in scan order takes the gradient', () => {
  const b = new GraphBuilder([2, 3]);
  const g = b.finish(b.reduce(b.input, 'max', [0, 1], false));
  const vals = refForward(g, Float64Array.from([2, 7, 7, 7, 1, 7]), 1);
  close(vals.get(g.output)!, [7]);
  close(refBackward(g, vals, g.output, Float64Array.from([3]), 1, 'grad').get(g.input)!, [0, 3, 0, 0, 0, 0]);
});

const reduceCases: [ReduceFn, Shape, number[], boolean][] = [ // fn, x, axes, keep
  ['sum', [3, 4, 5], [1], true], ['sum', [3, 4, 5], [0, 2], false], ['mean', [3, 4, 5], [2], false], ['mean', [2, 3, 2, 3], [0, 2], true],
  ['max', [3, 4, 5], [1, 2], false], ['max', [2, 3, 2, 3], [1, 3], true], ['min', [3, 4, 5], [0], true], ['min', [6], [0], false],
  ['l2', [3, 4, 5], [2], true], ['l2', [2, 3, 2, 3], [0, 1, 3], false], ['l1', [3, 4, 5], [0, 1], true], ['sumsquare', [3, 4, 5], [1], false],
];
for (const [fn, xs, axes, keep] of reduceCases) {
  const cfg = `x=[2,${xs}] axes [${axes}] keep=${keep}`;
  const x = fn === 'max' || fn === 'min' ? distinct(2 * numel(xs)) : fn === 'l1' ? awayFrom(2 * numel(xs), -2, 2, [0]) : undefined;
  rw(`reduce ${fn} backward vs finite differences ${cfg}`, () => gradCheck(xs, 2, (b, t) => b.reduce(b.act(t, 'tanh'), fn, axes, keep), x));
  rw(`reduce ${fn} deeplift summation to delta ${cfg}, random reference input`, () => {
    const b = new GraphBuilder(xs, 5), N = 2;
    const g = b.finish(b.linear(b.flatten(b.reduce(b.act(b.input, 'tanh'), fn, axes, keep)), 6));
    const vals = refForward(g, uniform(N * numel(xs), -2, 2), N), refVals = refForward(g, uniform(N * numel(xs), -2, 2), N);
    checkSummation(g, g.input, vals, refVals, uniform(N * 6), N);
  });
}
rw('reduce max deeplift x=[1,4] = [5,1,0,0], x\' = [5,7,0,0]: routes to the reference argmax (as max-pool)', () => {
  const b = new GraphBuilder([4]);
  const g = b.finish(b.reduce(b.input, 'max', [0]));
  const vals = refForward(g, Float64Array.from([5, 1, 0, 0]), 1), refVals = refForward(g, Float64Array.from([5, 7, 0, 0]), 1);
  close(refBackward(g, vals, g.output, Float64Array.from([1]), 1, 'deeplift', refVals).get(g.input)!, [0, 1 / 3, 0, 0]);
});

rw('layernorm x=[1,2,4] rows [1,2,3,4], [0,0,0,8], scale 2, bias 1: (x - mean) / sqrt(var + eps) * 2 + 1', () => {
  const b = new GraphBuilder([2, 4]);
  const g = b.finish(b.layernorm(b.input, 1, 0.25));
  const op = g.nodes[0].op as NormOp;
  op.scale.fill(2); op.bias.fill(1);
  const r1 = 1 / Math.sqrt(1.25 + 0.25), r2 = 1 / Math.sqrt(12 + 0.25); // var [1,2,3,4] = 1.25, var [0,0,0,8] = 12
  close(refForward(g, Float64Array.from([1, 2, 3, 4, 0, 0, 0, 8]), 1).get(g.output)!,
    [-1.5, -0.5, 0.5, 1.5, -2, -2, -2, 6].map((c, i) => c * (i < 4 ? r1 : r2) * 2 + 1));
});

rw('softmax x=[1,2,3] along axis 0 (columns) and log-softmax along axis 1 (rows), hand-computed', () => {
  const x = [0, 1, 2, 3, 5, 2];
  const col = one([2, 3], (b, t) => b.softmax(t, 0), x), row = one([2, 3], (b, t) => b.softmax(t, 1, true), x);
  const sm = (u: number, v: number) => [Math.exp(u) / (Math.exp(u) + Math.exp(v)), Math.exp(v) / (Math.exp(u) + Math.exp(v))];
  const [a0, a1] = sm(0, 3), [b0, b1] = sm(1, 5), [c0, c1] = sm(2, 2);
  close(col, [a0, b0, c0, a1, b1, c1]);
  const lse = (v: number[]) => Math.log(v.reduce((t, u) => t + Math.exp(u), 0));
  close(row, [0, 1, 2].map((v) => v - lse([0, 1, 2])).concat([3, 5, 2].map((v) => v - lse([3, 5, 2]))));
});

rw('instancenorm x=[1,2,2,2]: each channel of [[1,3],[5,7]], [[2,2],[2,2]] over H, W (a constant channel gives its bias)', () => {
  const b = new GraphBuilder([2, 2, 2]);
  const g = b.finish(b.instancenorm(b.input));
  const op = g.nodes[0].op as NormOp;
  op.scale.set([3, 1]); op.bias.set([0, 0.5]);
  const r = 1 / Math.sqrt(5 + 1e-5); // var [1,3,5,7] = 5
  close(refForward(g, Float64Array.from([1, 3, 5, 7, 2, 2, 2, 2]), 1).get(g.output)!, [-3 * r * 3, -r * 3, r * 3, 3 * r * 3, 0.5, 0.5, 0.5, 0.5]);
});

type RowBody = (b: GraphBuilder, x: string) => string;
const rowCases: [string, Shape, RowBody][] = [
  ['layernorm last axis x=[2,3,4,6]', [3, 4, 6], (b, x) => b.layernorm(x)],
  ['layernorm axes [1,3) x=[2,3,4,6]', [3, 4, 6], (b, x) => b.layernorm(x, 1)],
  ['layernorm every axis x=[2,3,4,5]', [3, 4, 5], (b, x) => b.layernorm(x, 0, 0.1)],
  ['layernorm tokens x=[2,7,8] (ViT)', [7, 8], (b, x) => b.layernorm(x)],
  ['instancenorm x=[2,3,4,5]', [3, 4, 5], (b, x) => b.instancenorm(x)],
  ['instancenorm x=[2,4,6] (N,C,L)', [4, 6], (b, x) => b.instancenorm(x, 0.01)],
  ['softmax last axis x=[2,3,4,6]', [3, 4, 6], (b, x) => b.softmax(x)],
  ['softmax middle axis x=[2,3,4,6]', [3, 4, 6], (b, x) => b.softmax(x, 1)],
  ['softmax axis 0 x=[2,5,3]', [5, 3], (b, x) => b.softmax(x, 0)],
  ['log-softmax last axis x=[2,3,4,6]', [3, 4, 6], (b, x) => b.softmax(x, 2, true)],
  ['log-softmax middle axis x=[2,3,4,6]', [3, 4, 6], (b, x) => b.softmax(x, 1, true)],
  ['softmax over the flattened axes [1,3) x=[2,3,4,5] (opset < 13)', [3, 4, 5], (b, x) => b.softmax(x, 1, false, 3)],
];
for (const [cfg, xs, body] of rowCases) {
  // a conv (or scale) in front, so rows are not constant and the seed reaches x through a non-trivial path
  const pre = (b: GraphBuilder, x: string) => b.mul(x, b.constant(Float32Array.from({ length: numel(xs) }, (_, i) => 1 + 0.3 * Math.sin(i)), xs));
  rw(`${cfg} backward vs finite differences`, () => gradCheck(xs, 2, (b, x) => body(b, pre(b, x))));
  rw(`${cfg} deeplift: summation to delta (random reference input), the gradient when the reference is the input`, () => {
    const b = new GraphBuilder(xs, 9), N = 2;
    const g = b.finish(b.linear(b.flatten(body(b, pre(b, b.input))), 6));
    const x = uniform(N * numel(xs), -2, 2), vals = refForward(g, x, N), refVals = refForward(g, uniform(N * numel(xs), -2, 2), N);
    checkSummation(g, g.input, vals, refVals, uniform(N * 6), N);
    const seed = uniform(N * 6);
    close(refBackward(g, vals, g.output, seed, N, 'deeplift', vals).get(g.input)!, refBackward(g, vals, g.output, seed, N, 'grad').get(g.input)!, 1e-10);
  });
}

rw('matmul x=[1,2,2,3] by itself transposed per head (a x a^T), and by a constant [3,2]: hand-computed', () => {
  const b = new GraphBuilder([2, 2, 3]);
  const t = b.layout(b.input, { kind: 'transpose', perm: [0, 2, 1] });
  const g = b.finish(b.concat([b.matmul(b.input, t), b.matmul(b.input, b.constant(Float32Array.from([1, 0, 0, 1, 1, 1]), [3, 2]))]));
  const x = [1, 2, 3, 0, 1, -1, /**/ 2, 0, 0, 1, 1, 1];
  // head 0: rows [1,2,3], [0,1,-1]: a a^T = [[14,-1],[-1,2]]; head 1: rows [2,0,0], [1,1,1]: [[4,2],[2,3]]
  // by [[1,0],[0,1],[1,1]]: [1+3, 2+3] = [4,5], [-1, 0]; [2,0], [2,2]
  close(refForward(g, Float64Array.from(x), 1).get(g.output)!, [14, -1, -1, 2, 4, 2, 2, 3, 4, 5, -1, 0, 2, 0, 2, 2]);
});

const matmulCases: [string, Shape, (b: GraphBuilder, x: string) => string][] = [
  ['attention q k^T x=[2,2,3,4] (N,h,T,d) by its transpose', [2, 3, 4], (b, x) => b.matmul(b.act(x, 'tanh'), b.layout(x, { kind: 'transpose', perm: [0, 2, 1] }))],
  ['attention (softmax) v x=[2,2,3,3] by tanh(x): two activations', [2, 3, 3], (b, x) => b.matmul(b.softmax(x), b.act(x, 'tanh'))],
  ['broadcast leading axes [2,1,3,4] x [1,3,4,2] (constant right)', [2, 1, 3, 4], (b, x) => b.matmul(x, b.constant(Float32Array.from({ length: 24 }, (_, i) => Math.cos(i)), [1, 3, 4, 2]))],
  ['constant left [3,2] x activation x=[2,2,2,5]', [2, 2, 5], (b, x) => b.matmul(b.constant(Float32Array.from({ length: 6 }, (_, i) => i - 2.5), [3, 2]), x)],
  ['dense over the last axis x=[2,3,4,5] -> 6 (linear of rank 3)', [3, 4, 5], (b, x) => b.dense(x, 6)],
];
for (const [cfg, xs, body] of matmulCases) {
  rw(`matmul ${cfg}: backward vs finite differences`, () => gradCheck(xs, 2, body));
  rw(`matmul ${cfg}: deeplift summation to delta, the gradient when the reference is the input`, () => {
    const b = new GraphBuilder(xs, 13), N = 2;
    const g = b.finish(b.linear(b.flatten(b.act(body(b, b.input), 'tanh')), 5));
    const x = uniform(N * numel(xs), -2, 2), vals = refForward(g, x, N), refVals = refForward(g, uniform(N * numel(xs), -2, 2), N);
    checkSummation(g, g.input, vals, refVals, uniform(N * 5), N);
    const seed = uniform(N * 5);
    close(refBackward(g, vals, g.output, seed, N, 'deeplift', vals).get(g.input)!, refBackward(g, vals, g.output, seed, N, 'grad').get(g.input)!, 1e-10);
  });
}

// ---------- spatial: Resize ----------

const sp = suite('ref spatial ops: Resize, ConvTranspose');
/** The per-sample values of a one-node graph on x (batch 1). */
function oneNode(xs: Shape, op: Parameters<GraphBuilder['op']>[1], x: number[], source = 'Resize'): Float64Array {
  const b = new GraphBuilder(xs);
  return refForward(b.finish(b.op(b.input, op, source)), Float64Array.from(x), 1).get(op.kind)!;
}
sp('resize hand-computed: nearest x2 (asymmetric floor), bilinear align_corners 2 -> 3, half_pixel 2 -> 4 (edge clamped), cubic A=-0.75 at the centre', () => {
  close(oneNode([1, 1, 2], resizeOf([1, 2], { mode: 'nearest', coord: 'asymmetric', nearest: 'floor', scales: [1, 2] }), [1, 2]), [1, 1, 2, 2]);
  close(oneNode([1, 1, 2], resizeOf([1, 2], { mode: 'linear', coord: 'align_corners', sizes: [1, 3] }), [1, 2]), [1, 1.5, 2]);
  // half_pixel: v = (o + 0.5)/2 - 0.5 = -0.25, 0.25, 0.75, 1.25: x[0], 0.75 x0 + 0.25 x1, 0.25 x0 + 0.75 x1, x[1]
  close(oneNode([1, 1, 2], resizeOf([1, 2], { mode: 'linear', scales: [1, 2] }), [1, 2]), [1, 1.25, 1.75, 2]);
  // cubic of 0..3 (linear data) at v = 1.5 (align_corners 4 -> 3: v = 0, 1.5, 3): Keys' kernel reproduces linear data
  close(oneNode([1, 1, 4], resizeOf([1, 4], { mode: 'cubic', coord: 'align_corners', sizes: [1, 3] }), [0, 1, 2, 3]), [0, 1.5, 3]);
});
/** DeepLIFT summation to delta at the input of x -> body -> sigmoid -> linear(5), batch 2, random x and reference. */
function linearSummation(xs: Shape, seed: number, body: (b: GraphBuilder, x: string) => string) {
  const b = new GraphBuilder(xs, seed), N = 2;
  const g = b.finish(b.linear(b.flatten(b.act(body(b, b.input), 'sigmoid')), 5));
  const x = uniform(N * numel(xs), -2, 2), vals = refForward(g, x, N), refVals = refForward(g, uniform(N * numel(xs), -2, 2), N);
  checkSummation(g, g.input, vals, refVals, uniform(N * 5), N);
}
const resizeCases: [string, Shape, Parameters<typeof resizeOf>[1]][] = [
  ['nearest x2 asymmetric floor (PyTorch nearest)', [2, 3, 4], { mode: 'nearest', coord: 'asymmetric', nearest: 'floor', scales: [2, 2] }],
  ['nearest round_prefer_ceil half_pixel 3x4 -> 5x7', [2, 3, 4], { mode: 'nearest', nearest: 'round_prefer_ceil', sizes: [5, 7] }],
  ['linear pytorch_half_pixel x2 (PyTorch bilinear)', [2, 3, 4], { mode: 'linear', coord: 'pytorch_half_pixel', scales: [2, 2] }],
  ['linear align_corners 3x4 -> 7x5', [2, 3, 4], { mode: 'linear', coord: 'align_corners', sizes: [7, 5] }],
  ['linear half_pixel downsample 6x5 -> 3x2', [2, 6, 5], { mode: 'linear', sizes: [3, 2] }],
  ['cubic half_pixel exclude_outside A=-0.5 3x4 -> 5x6', [2, 3, 4], { mode: 'cubic', cubicA: -0.5, exclude: true, sizes: [5, 6] }],
  ['linear asymmetric (N,C,L) L 5 -> 8', [3, 5], { mode: 'linear', coord: 'asymmetric', sizes: [1, 8] }],
];
for (const [cfg, xs, o] of resizeCases) {
  const hw: [number, number] = xs.length >= 3 ? [xs[xs.length - 2], xs[xs.length - 1]] : [1, xs[xs.length - 1]];
  const body = (b: GraphBuilder, x: string) => b.op(b.act(x, 'tanh'), resizeOf(hw, o), 'Resize');
  sp(`resize ${cfg} x=[2,${xs}]: backward vs finite differences`, () => gradCheck(xs, 2, body));
  sp(`resize ${cfg}: deeplift (the gradient: linear) summation to delta`, () => linearSummation(xs, 17, body));
}

sp('convtranspose hand-computed: x=[1,1,2,2] 1..4, w 2x2 ones, stride 2 (each input a 2x2 block), bias 0.5; stride 1 (overlapping sums)', () => {
  const op = convTransposeOf(1, 1, [2, 2], () => 0.5, { stride: [2, 2] });
  op.w.fill(1); op.b.fill(0.5);
  close(oneNode([1, 2, 2], op, [1, 2, 3, 4], 'ConvTranspose'), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4].map((v) => v + 0.5));
  const op1 = { ...op, stride: [1, 1] as [number, number] };
  close(oneNode([1, 2, 2], op1, [1, 2, 3, 4], 'ConvTranspose'), [1, 3, 2, 4, 10, 6, 3, 7, 4].map((v) => v + 0.5));
});
const convtCases: [string, Shape, number, (r: () => number) => Parameters<typeof convTransposeOf>[4]][] = [
  ['3x3 stride 2 pad 1 output_padding 1 (a decoder x2)', [4, 3, 4], 3, () => ({ stride: [2, 2], pad: [1, 1, 1, 1], outPad: [1, 1] })],
  ['2x2 stride 2 (U-Net up-conv)', [3, 3, 3], 2, () => ({ stride: [2, 2] })],
  ['3x3 groups 2 dilation 2 stride [2,1] asymmetric pads', [4, 3, 4], 4, () => ({ stride: [2, 1], dil: [2, 2], group: 2, pad: [1, 0, 2, 1] })],
  ['4x4 stride 2 pad 1 depthwise (groups = channels)', [3, 3, 3], 3, () => ({ stride: [2, 2], pad: [1, 1, 1, 1], group: 3 })],
  ['3x3 negative pads (output_shape past the natural size)', [2, 3, 3], 3, () => ({ stride: [2, 2], pad: [0, -1, -1, 0] })],
];
for (const [cfg, xs, cout, opts] of convtCases) {
  const k: [number, number] = cfg.startsWith('2x2') ? [2, 2] : cfg.startsWith('4x4') ? [4, 4] : [3, 3];
  const body = (b: GraphBuilder, x: string) => b.op(b.act(x, 'tanh'), convTransposeOf(xs[0], cout, k, mulberry32(5), opts(mulberry32(6))), 'ConvTranspose');
  sp(`convtranspose ${cfg} x=[2,${xs}]: backward vs finite differences`, () => gradCheck(xs, 2, body));
  sp(`convtranspose ${cfg}: deeplift (the gradient: linear) summation to delta`, () => linearSummation(xs, 19, body));
}

hand.run();
fd.run();
dl.run();
bl.run();
rw.run();
sp.run();
