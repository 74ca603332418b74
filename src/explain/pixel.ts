// Pixel attributions: backward passes to the input (gradient, guided, deconvnet, DeepLIFT modes), and the methods that
// average gradients over many modified inputs, batched (Integrated Gradients, SmoothGrad, VarGrad, GradientSHAP).
// Each returns one MethodResult per row: raw (C,H,W) (saliency: (H,W)), map = min-max of max_c |raw|.
import { ModelError } from '../graph.js';
import type { Mode, RunResult } from '../model.js';
import type { Delta, MethodResult, RunContext } from './types.js';
import { checkAbort } from './types.js';
import { absMaxChannels, normMap, scoreOf, stream, normal } from './maps.js';

const dims = (c: RunContext) => { const [C, H, W] = c.model.inputShape; return { C, H, W, HW: H * W, per: C * H * W }; };
const split = (a: Float32Array, k: number, per: number) => Array.from({ length: k }, (_, i) => a.slice(i * per, (i + 1) * per));
/** A (C,H,W) attribution as a result: map = normalised max over colour channels of |a|. */
function attribution(c: RunContext, a: Float32Array, delta?: Delta): MethodResult {
  const { C, H, W, HW } = dims(c);
  return { raw: a, rawShape: [C, H, W], map: normMap(absMaxChannels(a, C, HW)), ...(delta ? { delta } : {}) };
}
/** The class choice of the chunk's rows for a backward plan: the targets, or the seed rows. */
const runTargets = (c: RunContext) => (c.seed ? { seed: c.seed } : { classes: Int32Array.from(c.targets) });
const inputGrad = (c: RunContext) => {
  const gx = c.res.grads.get(c.model.graph.input);
  if (!gx) throw new ModelError('internal: the gradient pass did not compute dy/dx');
  return gx;
};

/** One backward to the input in a mode (its own plan, shared by the chunk's methods that need it). */
function modePass(c: RunContext, mode: Mode, extra: { refInput?: Float32Array } = {}): Promise<RunResult> {
  return c.shared(`pass:${mode}`, async () => {
    const g = c.model.graph, reference = mode === 'deeplift' ? { reference: 'input' as const } : {};
    const p = await c.plan(mode, { batch: c.B, backward: [{ grads: [g.input], mode, ...reference }], score: c.o.score });
    checkAbort(c.o, mode);
    return c.time(mode, () => p.run(c.x, { ...runTargets(c), ...extra }));
  });
}

export async function saliency(c: RunContext): Promise<MethodResult[]> {
  const { C, H, W, HW, per } = dims(c);
  return split(inputGrad(c), c.k, per).map((gr) => { const raw = absMaxChannels(gr, C, HW); return { raw, rawShape: [H, W], map: normMap(raw) }; });
}

export async function inputXGradient(c: RunContext): Promise<MethodResult[]> {
  const { per } = dims(c), gx = inputGrad(c);
  return split(gx.map((v, q) => v * c.x[q]), c.k, per).map((a) => attribution(c, a));
}

export async function guided(c: RunContext): Promise<MethodResult[]> {
  const r = await modePass(c, 'guided');
  return split(r.grads.get(c.model.graph.input)!, c.k, dims(c).per).map((a) => attribution(c, a));
}

/** Guided backprop times the row's upsampled Grad-CAM map (broadcast over colour channels). */
export async function guidedGradcam(c: RunContext): Promise<MethodResult[]> {
  const r = await modePass(c, 'guided'), { HW, per } = dims(c);
  return split(r.grads.get(c.model.graph.input)!, c.k, per).map((a, i) => {
    const gc = c.camMap(i, 'gradcam');
    return attribution(c, a.map((v, q) => v * gc[q % HW]));
  });
}

export async function deconvnet(c: RunContext): Promise<MethodResult[]> {
  const r = await modePass(c, 'deconv');
  return split(r.grads.get(c.model.graph.input)!, c.k, dims(c).per).map((a) => attribution(c, a));
}

/** The reference image x' (C,H,W) repeated for k rows; default zeros. */
function references(c: RunContext, what: string): Float32Array {
  const { C, H, W, per } = dims(c), ref = c.o.reference ?? new Float32Array(per);
  if (ref.length !== per) throw new ModelError(`${what} reference has ${ref.length} values; one image is ${C}x${H}x${W}`);
  const refs = new Float32Array(c.k * per);
  for (let i = 0; i < c.k; i++) refs.set(ref, i * per);
  return refs;
}

/** y of row i from a logits row: the seed's dot product, or the target's logit / probability. */
function yOf(c: RunContext, i: number, l: Float32Array): number {
  if (!c.seed) return scoreOf(l, c.targets[i], c.o.score);
  const C = l.length;
  let s = 0;
  for (let j = 0; j < C; j++) s += c.seed[i * C + j] * l[j];
  return s;
}
const sumOf = (a: Float32Array) => { let s = 0; for (const v of a) s += v; return s; };

export async function deeplift(c: RunContext): Promise<MethodResult[]> {
  const refs = references(c, 'DeepLIFT'), r = await modePass(c, 'deeplift', { refInput: refs }), { per } = dims(c), C = c.model.numClasses;
  const contrib = r.grads.get(c.model.graph.input)!.map((v, q) => v * (c.x[q] - refs[q]));
  return split(contrib, c.k, per).map((a, i) => {
    // the seed is one-hot on c for logits (or the softmax chain rule for prob, where the delta is not a class score)
    const y = r.logits[i * C + c.targets[i]], y0 = r.refLogits![i * C + c.targets[i]];
    return attribution(c, a, { sum: sumOf(a), expected: y - y0, scale: Math.max(Math.abs(y), Math.abs(y0)) });
  });
}

/**
 * dy/dx at n modified inputs per row, batched GB at a time through one gradient plan: fill(i, s, dst) writes sample s of
 * row i, acc(i, s, grad) receives its gradient (C,H,W). Rows keep their targets (or seed rows).
 */
async function sampleGrads(c: RunContext, what: string, n: number, fill: (i: number, s: number, dst: Float32Array) => void,
  acc: (i: number, s: number, grad: Float32Array) => void) {
  const { per } = dims(c), g = c.model.graph, C = c.model.numClasses, total = c.k * n;
  const plan = await c.plan('input-grad', { batch: c.GB, backward: [{ grads: [g.input] }], score: c.o.score });
  for (let j0 = 0; j0 < total; j0 += c.GB) {
    const m = Math.min(c.GB, total - j0), batch = new Float32Array(m * per), rows = Array.from({ length: m }, (_, j) => Math.floor((j0 + j) / n));
    for (let j = 0; j < m; j++) fill(rows[j], (j0 + j) % n, batch.subarray(j * per, (j + 1) * per));
    const seed = c.seed ? new Float32Array(m * C) : undefined;
    if (seed) rows.forEach((i, j) => seed.set(c.seed!.subarray(i * C, (i + 1) * C), j * C));
    checkAbort(c.o, what);
    const r = await plan.run(batch, seed ? { seed } : { classes: Int32Array.from(rows, (i) => c.targets[i]) });
    const gx = r.grads.get(g.input)!;
    for (let j = 0; j < m; j++) acc(rows[j], (j0 + j) % n, gx.subarray(j * per, (j + 1) * per));
    c.o.onProgress?.(j0 + m, total, what);
  }
}

/** Gauss-Legendre nodes and weights on [-1, 1] (Newton on P_n, float64), as numpy.polynomial.legendre.leggauss. */
export function gaussLegendre(n: number): { x: number[]; w: number[] } {
  const x: number[] = [], w: number[] = [];
  for (let i = 0; i < n; i++) {
    let z = Math.cos((Math.PI * (i + 0.75)) / (n + 0.5)), dp = 0;
    for (let it = 0; it < 100; it++) {
      let p0 = 1, p1 = z;
      for (let k = 2; k <= n; k++) { const p2 = ((2 * k - 1) * z * p1 - (k - 1) * p0) / k; p0 = p1; p1 = p2; }
      dp = (n * (z * p1 - p0)) / (z * z - 1);
      const dz = p1 / dp;
      z -= dz;
      if (Math.abs(dz) < 1e-16) break;
    }
    x.push(z);
    w.push(2 / ((1 - z * z) * dp * dp));
  }
  return { x: x.reverse(), w: w.reverse() };
}

/** Integrated Gradients' path points alpha_s and weights w_s (Captum's approximation methods). */
export function igSteps(n: number, rule: string): { alpha: number[]; w: number[] } {
  if (!Number.isInteger(n) || n < 2) throw new ModelError(`integrated-gradients needs at least 2 steps, got ${n}`);
  const lin = (a: number, b: number) => Array.from({ length: n }, (_, s) => a + ((b - a) * s) / (n - 1));
  const flat = () => Array.from({ length: n }, () => 1 / n);
  switch (rule) {
    case 'gausslegendre': { const g = gaussLegendre(n); return { alpha: g.x.map((v) => 0.5 * (v + 1)), w: g.w.map((v) => 0.5 * v) }; }
    case 'riemann_trapezoid': { const w = flat(); w[0] /= 2; w[n - 1] /= 2; return { alpha: lin(0, 1), w }; }
    case 'riemann_left': return { alpha: lin(0, 1 - 1 / n), w: flat() };
    case 'riemann_right': return { alpha: lin(1 / n, 1), w: flat() };
    case 'riemann_middle': return { alpha: lin(1 / (2 * n), 1 - 1 / (2 * n)), w: flat() };
    default: throw new ModelError(`integrated-gradients rule must be gausslegendre, riemann_trapezoid, riemann_left, riemann_right or riemann_middle, got '${rule}'`);
  }
}

/** y(x') per row: one forward of the reference images. */
async function referenceScores(c: RunContext, refs: Float32Array): Promise<number[]> {
  const { per } = dims(c), C = c.model.numClasses, plan = await c.plan('forward', { batch: c.PB }), out: number[] = [];
  for (let i0 = 0; i0 < c.k; i0 += c.PB) {
    const m = Math.min(c.PB, c.k - i0), r = await plan.run(refs.subarray(i0 * per, (i0 + m) * per));
    for (let j = 0; j < m; j++) out.push(yOf(c, i0 + j, r.logits.subarray(j * C, (j + 1) * C)));
  }
  return out;
}

/** Integrated Gradients: (x - x') sum_s w_s dy/dx(x' + alpha_s (x - x')); completeness against y(x) - y(x'). */
export async function integratedGradients(c: RunContext): Promise<MethodResult[]> {
  const { per } = dims(c), C = c.model.numClasses, refs = references(c, 'integrated-gradients');
  const { alpha, w } = igSteps(c.o.ig?.steps ?? 50, c.o.ig?.rule ?? 'gausslegendre');
  const total = Array.from({ length: c.k }, () => new Float64Array(per));
  await sampleGrads(c, 'integrated-gradients', alpha.length, (i, s, dst) => {
    for (let q = 0; q < per; q++) { const x0 = refs[i * per + q]; dst[q] = x0 + alpha[s] * (c.x[i * per + q] - x0); }
  }, (i, s, gr) => { const t = total[i]; for (let q = 0; q < per; q++) t[q] += w[s] * gr[q]; });
  const y0 = await referenceScores(c, refs);
  return total.map((t, i) => {
    const a = Float32Array.from(t, (v, q) => v * (c.x[i * per + q] - refs[i * per + q]));
    const y = yOf(c, i, c.logits.subarray(i * C, (i + 1) * C));
    return attribution(c, a, { sum: sumOf(a), expected: y - y0[i], scale: Math.max(Math.abs(y), Math.abs(y0[i])) });
  });
}

/**
 * The noise tunnel's draws: row r, sample s, element q takes normal number (r n + s) per + q of one seeded stream
 * (two uniforms each), so a row's noise does not depend on batching. `extra` uniforms per sample follow its noise.
 */
function noiseOf(c: RunContext, n: number, extra: number) {
  const { per } = dims(c), sigma = c.o.noise?.sigma ?? 0.15;
  if (!(sigma >= 0) || !Number.isFinite(sigma)) throw new ModelError(`noise sigma must be a finite number >= 0, got ${sigma}`);
  return (i: number, s: number, dst: Float32Array, x: Float32Array): number[] => {
    const rand = stream(c.o.seed ?? 0, ((c.row0 + i) * n + s) * (2 * per + extra));
    for (let q = 0; q < per; q++) dst[q] = x[q] + sigma * normal(rand);
    return Array.from({ length: extra }, () => rand());
  };
}
const samples = (c: RunContext) => {
  const n = c.o.noise?.n ?? 16;
  if (!Number.isInteger(n) || n < 1) throw new ModelError(`noise samples must be a positive integer, got ${n}`);
  return n;
};

/** SmoothGrad (mean) or VarGrad (variance) of dy/dx over n noisy copies of each row. */
async function tunnel(c: RunContext, what: string, variance: boolean): Promise<MethodResult[]> {
  const { per } = dims(c), n = samples(c), draw = noiseOf(c, n, 0);
  const s1 = Array.from({ length: c.k }, () => new Float64Array(per)), s2 = Array.from({ length: c.k }, () => new Float64Array(per));
  await sampleGrads(c, what, n, (i, s, dst) => { draw(i, s, dst, c.x.subarray(i * per, (i + 1) * per)); }, (i, _s, gr) => {
    for (let q = 0; q < per; q++) { s1[i][q] += gr[q]; s2[i][q] += gr[q] * gr[q]; }
  });
  return s1.map((m1, i) => attribution(c, Float32Array.from(m1, (v, q) => (variance ? s2[i][q] / n - (v / n) ** 2 : v / n))));
}
export const smoothGrad = (c: RunContext) => tunnel(c, 'smoothgrad', false);
export const varGrad = (c: RunContext) => tunnel(c, 'vargrad', true);

/** DeepLIFT-SHAP's references (R, C*H*W): the option, or R = noise.n standard normal images (draws b*2*per.. of the stream). */
function shapReferences(c: RunContext): Float32Array[] {
  const { C, H, W, per } = dims(c), given = c.o.shapReferences;
  if (given) {
    if (!given.length || given.length % per) throw new ModelError(`shapReferences has ${given.length} values; expected R images of ${C}x${H}x${W} (${per})`);
    return Array.from({ length: given.length / per }, (_, b) => given.subarray(b * per, (b + 1) * per));
  }
  const rand = stream(c.o.seed ?? 0, 0);
  return Array.from({ length: samples(c) }, () => Float32Array.from({ length: per }, () => normal(rand)));
}

/** DeepLIFT-SHAP: mean over the references x'_b of the DeepLIFT contributions m_b (x - x'_b); they sum to y(x) - mean_b y(x'_b). */
export async function deepliftShap(c: RunContext): Promise<MethodResult[]> {
  const { per } = dims(c), g = c.model.graph, C = c.model.numClasses, refs = shapReferences(c), R = refs.length, total = c.k * R;
  const plan = await c.plan('deeplift-shap', { batch: c.GB, backward: [{ grads: [g.input], mode: 'deeplift', reference: 'input' }], score: c.o.score });
  const acc = Array.from({ length: c.k }, () => new Float64Array(per)), y0 = new Float64Array(c.k);
  for (let j0 = 0; j0 < total; j0 += c.GB) {
    const m = Math.min(c.GB, total - j0), rows = Array.from({ length: m }, (_, j) => Math.floor((j0 + j) / R));
    const batch = new Float32Array(m * per), rb = new Float32Array(m * per);
    rows.forEach((i, j) => { batch.set(c.x.subarray(i * per, (i + 1) * per), j * per); rb.set(refs[(j0 + j) % R], j * per); });
    const seed = c.seed ? new Float32Array(m * C) : undefined;
    if (seed) rows.forEach((i, j) => seed.set(c.seed!.subarray(i * C, (i + 1) * C), j * C));
    checkAbort(c.o, 'deepliftshap');
    const r = await plan.run(batch, { ...(seed ? { seed } : { classes: Int32Array.from(rows, (i) => c.targets[i]) }), refInput: rb });
    const mult = r.grads.get(g.input)!;
    rows.forEach((i, j) => {
      const t = acc[i];
      for (let q = 0; q < per; q++) t[q] += mult[j * per + q] * (batch[j * per + q] - rb[j * per + q]);
      y0[i] += yOf(c, i, r.refLogits!.subarray(j * C, (j + 1) * C)) / R;
    });
    c.o.onProgress?.(j0 + m, total, 'deepliftshap');
  }
  return acc.map((t, i) => {
    const a = Float32Array.from(t, (v) => v / R), y = yOf(c, i, c.logits.subarray(i * C, (i + 1) * C));
    return attribution(c, a, { sum: sumOf(a), expected: y - y0[i], scale: Math.max(Math.abs(y), Math.abs(y0[i])) });
  });
}

/** GradientSHAP (one reference x'): mean_s (x_s - x') dy/dx(x' + a_s (x_s - x')), x_s = x + noise, a_s ~ U(0,1). */
export async function gradientShap(c: RunContext): Promise<MethodResult[]> {
  const { per } = dims(c), n = samples(c), draw = noiseOf(c, n, 1), refs = references(c, 'gradientshap');
  const total = Array.from({ length: c.k }, () => new Float64Array(per)), noisy = new Float32Array(per);
  const diffs = new Map<string, Float32Array>();
  await sampleGrads(c, 'gradientshap', n, (i, s, dst) => {
    const [a] = draw(i, s, noisy, c.x.subarray(i * per, (i + 1) * per)), d = new Float32Array(per);
    for (let q = 0; q < per; q++) { d[q] = noisy[q] - refs[i * per + q]; dst[q] = refs[i * per + q] + a * d[q]; }
    diffs.set(`${i}:${s}`, d);
  }, (i, s, gr) => {
    const d = diffs.get(`${i}:${s}`)!, t = total[i];
    diffs.delete(`${i}:${s}`);
    for (let q = 0; q < per; q++) t[q] += d[q] * gr[q];
  });
  return total.map((t) => attribution(c, Float32Array.from(t, (v) => v / n)));
}
