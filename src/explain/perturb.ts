// Perturbation methods: many forwards of masked inputs (or of the head on a modified activation), batched on the GPU,
// checked for cancellation between batches. Each returns one value per row of the chunk. Definitions: docs/METHODS.md.
import { ModelError } from '../graph.js';
import type { MethodResult, RunContext } from './types.js';
import { checkAbort } from './types.js';
import { normMap, resize, scoreOf, softmax, stream } from './maps.js';

/** Runs n inputs built by fill(j, dst) through a forward plan, PB at a time; score(j, logits row) receives each result;
 *  progress counts from done0 of all. */
async function forwards(c: RunContext, what: string, done0: number, all: number, n: number,
  fill: (j: number, dst: Float32Array) => void, score: (j: number, logits: Float32Array) => void) {
  const [Cc, H, W] = c.model.inputShape, per = Cc * H * W, C = c.model.numClasses, B = c.PB;
  const plan = await c.plan('forward', { batch: B });
  for (let j0 = 0; j0 < n; j0 += B) {
    const m = Math.min(B, n - j0), batch = new Float32Array(m * per);
    for (let j = 0; j < m; j++) fill(j0 + j, batch.subarray(j * per, (j + 1) * per));
    checkAbort(c.o, what);
    const r = await plan.run(batch);
    for (let j = 0; j < m; j++) score(j0 + j, r.logits.subarray(j * C, (j + 1) * C));
    c.o.onProgress?.(done0 + j0 + m, all, what);
  }
}

/** Score-CAM weights per row: each channel upsampled and min-max normalised into a mask of the input. */
export async function scoreCam(c: RunContext): Promise<Float32Array[]> {
  const [Cc, H, W] = c.model.inputShape, HW = H * W, per = Cc * HW, [K, h, w] = c.aShape, Z = h * w;
  const official = c.o.scorecam === 'official', out: Float32Array[] = [];
  for (let i = 0; i < c.k; i++) {
    const img = c.x.subarray(i * per, (i + 1) * per), scores = new Float32Array(K), skip = new Uint8Array(K);
    await forwards(c, 'scorecam', i * K, c.k * K, K, (ch, dst) => {
      const up = resize(c.act.subarray((i * K + ch) * Z, (i * K + ch + 1) * Z), h, w, H, W, !official);
      let lo = Infinity, hi = -Infinity;
      for (const v of up) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      if (official && hi === lo) skip[ch] = 1;
      const den = official ? hi - lo : hi - lo + 1e-8;
      for (let q = 0; q < per; q++) dst[q] = img[q] * (den === 0 ? 0 : (up[q % HW] - lo) / den);
    }, (ch, l) => { scores[ch] = official ? softmax(l)[c.targets[i]] : scoreOf(l, c.targets[i], c.o.score); });
    out.push(official ? scores.map((s, j) => (skip[j] ? 0 : s)) : softmax(scores));
  }
  return out;
}

/** Ablation-CAM weights per row: the head re-run from A with one channel ablated, B channels at a time. */
export async function ablationCam(c: RunContext): Promise<Float32Array[]> {
  const head = c.head(c.A), [K, h, w] = c.aShape, Z = h * w, per = K * Z, C = c.model.numClasses, B = c.PB;
  const plan = await c.plan(`head:${c.A}`, { batch: B }, head);
  const out: Float32Array[] = [];
  for (let i = 0; i < c.k; i++) {
    const a = c.act.subarray(i * per, (i + 1) * per);
    let mn = Infinity;
    for (const v of a) mn = Math.min(mn, v);
    const value = mn === 0 ? 0 : mn - 1e7; // pytorch-grad-cam's AblationLayer
    const y = c.logits[i * C + c.targets[i]], wts = new Float32Array(K);
    for (let k0 = 0; k0 < K; k0 += B) {
      const n = Math.min(B, K - k0), batch = new Float32Array(n * per);
      for (let j = 0; j < n; j++) { batch.set(a, j * per); batch.fill(value, j * per + (k0 + j) * Z, j * per + (k0 + j + 1) * Z); }
      checkAbort(c.o, 'ablationcam');
      const r = await plan.run(batch);
      for (let j = 0; j < n; j++) wts[k0 + j] = (y - r.logits[j * C + c.targets[i]]) / y;
      c.o.onProgress?.(i * K + k0 + n, c.k * K, 'ablationcam');
    }
    out.push(wts);
  }
  return out;
}

/** RandomCAM weights: row r takes draws r*K .. r*K+K-1 of one seeded stream, mapped to [-1, 1). */
export async function randomCam(c: RunContext): Promise<Float32Array[]> {
  const K = c.aShape[0];
  return Array.from({ length: c.k }, (_, i) => {
    const rand = stream(c.o.seed ?? 0, (c.row0 + i) * K);
    return Float32Array.from({ length: K }, () => 2 * rand() - 1);
  });
}

/** RISE saliency per row: N seeded random masks, batched forwards, softmax probability of the target. */
export async function rise(c: RunContext): Promise<MethodResult[]> {
  const [Cc, H, W] = c.model.inputShape, HW = H * W, per = Cc * HW;
  const N = c.o.rise?.n ?? 4000, s = c.o.rise?.s ?? 8, p = c.o.rise?.p ?? 0.5;
  const out: MethodResult[] = [];
  for (let i = 0; i < c.k; i++) {
    const rand = stream(c.o.rise?.seed ?? 0, 0), sal = new Float64Array(HW), img = c.x.subarray(i * per, (i + 1) * per);
    let masks: Float32Array[] = [];
    await forwards(c, 'rise', i * N, c.k * N, N, (j, dst) => {
      if (j % c.PB === 0) masks = [];
      const mk = riseMask(rand, s, p, H, W);
      masks.push(mk);
      for (let q = 0; q < per; q++) dst[q] = img[q] * mk[q % HW];
    }, (j, l) => {
      const pc = softmax(l)[c.targets[i]], mk = masks[j % c.PB];
      for (let q = 0; q < HW; q++) sal[q] += pc * mk[q];
    });
    const raw = Float32Array.from(sal, (v) => v / (N * p));
    out.push({ raw, rawShape: [H, W], map: normMap(raw) });
  }
  return out;
}

/** One RISE mask: an s x s binary grid (keep probability p), bilinearly upsampled to (s+1)*cell, randomly shifted crop (H,W). */
function riseMask(rand: () => number, s: number, p: number, H: number, W: number): Float32Array {
  const ch = Math.ceil(H / s), cw = Math.ceil(W / s), grid = Float32Array.from({ length: s * s }, () => (rand() < p ? 1 : 0));
  const up = resize(grid, s, s, (s + 1) * ch, (s + 1) * cw, false), dy = Math.floor(rand() * ch), dx = Math.floor(rand() * cw), UW = (s + 1) * cw;
  const m = new Float32Array(H * W);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) m[y * W + x] = up[(y + dy) * UW + x + dx];
  return m;
}

const pair = (v: number | [number, number] | undefined, d: number): [number, number] => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v);

/**
 * Occlusion (Captum's sliding window over every channel): windows at 0, s, 2s, ... that fit the image; a pixel's
 * attribution is the mean, over the windows covering it, of y_c(x) - y_c(x with the window set to the baseline).
 */
export async function occlusion(c: RunContext): Promise<MethodResult[]> {
  const [Cc, H, W] = c.model.inputShape, HW = H * W, per = Cc * HW, C = c.model.numClasses;
  const [wh, ww] = pair(c.o.occlusion?.window, 8), [sh, sw] = pair(c.o.occlusion?.stride, 4), base = c.o.occlusion?.baseline ?? 0;
  for (const [name, v, lim] of [['window height', wh, H], ['window width', ww, W], ['stride', sh, H], ['stride', sw, W]] as const)
    if (!Number.isInteger(v) || v < 1 || v > lim) throw new ModelError(`occlusion ${name} must be an integer in 1..${lim}, got ${v}`);
  const ny = Math.floor((H - wh) / sh) + 1, nx = Math.floor((W - ww) / sw) + 1, n = ny * nx;
  const out: MethodResult[] = [];
  for (let i = 0; i < c.k; i++) {
    const img = c.x.subarray(i * per, (i + 1) * per), y = scoreOf(c.logits.subarray(i * C, (i + 1) * C), c.targets[i], c.o.score);
    const sum = new Float64Array(HW), count = new Float64Array(HW);
    const cover = (j: number, f: (q: number) => void) => {
      const y0 = Math.floor(j / nx) * sh, x0 = (j % nx) * sw;
      for (let yy = y0; yy < y0 + wh; yy++) for (let xx = x0; xx < x0 + ww; xx++) f(yy * W + xx);
    };
    await forwards(c, 'occlusion', i * n, c.k * n, n, (j, dst) => {
      dst.set(img);
      cover(j, (q) => { for (let ch = 0; ch < Cc; ch++) dst[ch * HW + q] = base; });
    }, (j, l) => {
      const d = y - scoreOf(l, c.targets[i], c.o.score);
      cover(j, (q) => { sum[q] += d; count[q] += 1; });
    });
    const raw = Float32Array.from(sum, (v, q) => (count[q] ? v / count[q] : 0));
    out.push({ raw, rawShape: [H, W], map: normMap(raw) });
  }
  return out;
}
