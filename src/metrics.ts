// Evaluation metrics of the papers (docs/METHODS.md): Average Drop / Increase in Confidence (Grad-CAM++),
// deletion / insertion AUC (RISE), pointing game and energy-based pointing game, and for multi-instance scenes the
// share of instances that receive a local maximum of the map. Maps are (H,W) in [0,1] at input resolution; images
// are (C,H,W) in the model's normalised space. Forward passes go through `forward`, which runs a batch on the GPU.
import { softmax } from './explain.js';

/** Runs k images (k*C*H*W values) and returns their logits (k*classes). */
export type Forward = (x: Float32Array, k: number) => Promise<Float32Array>;
export type Box = [number, number, number, number]; // x0, y0 inclusive; x1, y1 exclusive (pixels)

/** Average Drop and Increase in Confidence of one map: O = p_c(x * E), Y = p_c(x). Returns per-image terms. */
export function dropIncrease(Y: number, O: number): { drop: number; increase: number } {
  return { drop: Math.max(0, Y - O) / Y, increase: O > Y ? 1 : 0 };
}

/** The image multiplied by the map (broadcast over channels). */
export function masked(x: Float32Array, map: Float32Array): Float32Array {
  const HW = map.length; return x.map((v, i) => v * map[i % HW]);
}

/** Pixel order by decreasing saliency (stable: earlier index first on ties). */
export function ranking(map: Float32Array): Uint32Array {
  return Uint32Array.from(map.keys()).sort((a, b) => map[b] - map[a] || a - b);
}

/** Area under a curve sampled at equally spaced fractions 0..1 (trapezoid rule). */
export function auc(curve: ArrayLike<number>): number {
  const n = curve.length - 1; if (n < 1) return curve[0] ?? 0;
  let s = 0; for (let i = 0; i < n; i++) s += (curve[i] + curve[i + 1]) / 2;
  return s / n;
}

/** Gaussian blur (kernel size k, sigma), per channel, zero padding like the RISE authors' conv (C,H,W). */
export function blur(x: Float32Array, C: number, H: number, W: number, k = 11, sigma = 5): Float32Array {
  const r = k >> 1, g = Float64Array.from({ length: k }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const gs = g.reduce((a, b) => a + b, 0); for (let i = 0; i < k; i++) g[i] /= gs;
  const tmp = new Float64Array(C * H * W), out = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let xx = 0; xx < W; xx++) {
    let s = 0; for (let i = 0; i < k; i++) { const u = xx + i - r; if (u >= 0 && u < W) s += g[i] * x[(c * H + y) * W + u]; }
    tmp[(c * H + y) * W + xx] = s;
  }
  for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let xx = 0; xx < W; xx++) {
    let s = 0; for (let i = 0; i < k; i++) { const v = y + i - r; if (v >= 0 && v < H) s += g[i] * tmp[(c * H + v) * W + xx]; }
    out[(c * H + y) * W + xx] = s;
  }
  return out;
}

/**
 * Deletion or insertion curve of one map (RISE protocol): pixels in order of decreasing saliency are deleted
 * (set to 0 in normalised space) from x, or inserted from x into the blurred x, `step` pixels at a time; the curve
 * holds p_c after 0, 1, ..., n steps. The images of a curve run `batch` at a time.
 */
export async function curve(kind: 'deletion' | 'insertion', x: Float32Array, map: Float32Array, c: number, [C, H, W]: number[],
  forward: Forward, o: { step?: number; batch?: number; blurred?: Float32Array } = {}): Promise<Float32Array> {
  const HW = H * W, step = Math.max(1, Math.round(o.step ?? HW / 224)), n = Math.ceil(HW / step);
  const order = ranking(map), start = kind === 'deletion' ? x : (o.blurred ?? blur(x, C, H, W));
  const cur = Float32Array.from(start), per = cur.length, batch = o.batch ?? 32, probs = new Float32Array(n + 1);
  for (let s0 = 0; s0 <= n; s0 += batch) {
    const k = Math.min(batch, n + 1 - s0), imgs = new Float32Array(k * per);
    for (let j = 0; j < k; j++) {
      const s = s0 + j;
      if (s > 0) for (let q = (s - 1) * step; q < Math.min(s * step, HW); q++) {
        const p = order[q]; for (let ch = 0; ch < C; ch++) cur[ch * HW + p] = kind === 'deletion' ? 0 : x[ch * HW + p];
      }
      imgs.set(cur, j * per);
    }
    const logits = await forward(imgs, k), F = logits.length / k;
    for (let j = 0; j < k; j++) probs[s0 + j] = softmax(logits.subarray(j * F, (j + 1) * F))[c];
  }
  return probs;
}

/** Pointing game: the map's maximum lies within `tol` pixels of a box. */
export function pointingHit(map: Float32Array, W: number, boxes: Box[], tol = 15): boolean {
  let best = 0; for (let i = 1; i < map.length; i++) if (map[i] > map[best]) best = i;
  const px = best % W, py = Math.floor(best / W);
  return boxes.some(([x0, y0, x1, y1]) => {
    const dx = Math.max(x0 - px, 0, px - (x1 - 1)), dy = Math.max(y0 - py, 0, py - (y1 - 1));
    return Math.hypot(dx, dy) <= tol;
  });
}

/** Energy-based pointing game: the share of the map's mass inside the boxes. */
export function energyInBoxes(map: Float32Array, W: number, boxes: Box[]): number {
  let inside = 0, total = 0;
  for (let i = 0; i < map.length; i++) {
    const x = i % W, y = Math.floor(i / W); total += map[i];
    if (boxes.some(([x0, y0, x1, y1]) => x >= x0 && x < x1 && y >= y0 && y < y1)) inside += map[i];
  }
  return total > 0 ? inside / total : 0;
}

/**
 * Multi-instance localisation: the share of boxes that contain a local maximum of the map (a pixel not smaller
 * than its 8 neighbours, strictly larger than at least one, with value >= `floor` of the map's maximum).
 */
export function instancesWithPeak(map: Float32Array, W: number, boxes: Box[], floor = 0.5): number {
  const H = map.length / W; let top = 0; for (const v of map) top = Math.max(top, v);
  const peaks: [number, number][] = [];
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const v = map[y * W + x]; if (v < floor * top || v <= 0) continue;
    let ok = true, above = false;
    for (let dy = -1; dy <= 1 && ok; dy++) for (let dx = -1; dx <= 1; dx++) {
      if (!dx && !dy) continue; const u = x + dx, w = y + dy;
      if (u < 0 || w < 0 || u >= W || w >= H) continue;
      const nv = map[w * W + u]; if (nv > v) { ok = false; break; } if (nv < v) above = true;
    }
    if (ok && above) peaks.push([x, y]);
  }
  const hit = boxes.filter(([x0, y0, x1, y1]) => peaks.some(([x, y]) => x >= x0 && x < x1 && y >= y0 && y < y1)).length;
  return boxes.length ? hit / boxes.length : 0;
}
