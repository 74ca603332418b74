// Small host-side helpers shared by the method runners: resize, softmax, normalisation, seeded draws, a FIFO lock.
import { mulberry32 } from '../builder.js';

/** Bilinear resize of one (h,w) map to (H,W): half-pixel centres, or corner-aligned. */
export function resize(a: ArrayLike<number>, h: number, w: number, H: number, W: number, corners: boolean): Float32Array {
  const out = new Float32Array(H * W);
  const src = (o: number, n: number, N: number): [number, number, number] => {
    const x = corners ? (N > 1 ? (o * (n - 1)) / (N - 1) : 0) : Math.max((o + 0.5) * (n / N) - 0.5, 0);
    const i0 = Math.min(Math.floor(x), n - 1);
    return [i0, Math.min(i0 + 1, n - 1), x - i0];
  };
  for (let Y = 0; Y < H; Y++) {
    const [y0, y1, ly] = src(Y, h, H);
    for (let X = 0; X < W; X++) {
      const [x0, x1, lx] = src(X, w, W);
      out[Y * W + X] = (1 - ly) * ((1 - lx) * a[y0 * w + x0] + lx * a[y0 * w + x1]) + ly * ((1 - lx) * a[y1 * w + x0] + lx * a[y1 * w + x1]);
    }
  }
  return out;
}

export function softmax(l: ArrayLike<number>): Float32Array {
  let m = -Infinity;
  for (let i = 0; i < l.length; i++) m = Math.max(m, l[i]);
  let s = 0;
  const e = new Float32Array(l.length);
  for (let i = 0; i < l.length; i++) { e[i] = Math.exp(l[i] - m); s += e[i]; }
  return e.map((v) => v / s);
}

export const argmax = (a: ArrayLike<number>) => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; };

export function topk(logits: Float32Array, probs: Float32Array, k: number) {
  return [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b).slice(0, k).map((c) => ({ class: c, logit: logits[c], prob: probs[c] }));
}

/** a: (C,HW) -> (HW) max over channels of |a|. */
export function absMaxChannels(a: Float32Array, C: number, HW: number): Float32Array {
  const o = new Float32Array(HW);
  for (let c = 0; c < C; c++) for (let q = 0; q < HW; q++) o[q] = Math.max(o[q], Math.abs(a[c * HW + q]));
  return o;
}

/** (v - min) / (max - min + 1e-7), the same normalisation as the CAM maps. */
export function normMap(a: Float32Array): Float32Array {
  let lo = Infinity, hi = -Infinity;
  for (const v of a) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return a.map((v) => (v - lo) / (hi - lo + 1e-7));
}

/** The score of class c from one row of logits: the logit, or its softmax probability. */
export const scoreOf = (l: Float32Array, c: number, score: 'logit' | 'prob' | undefined) => (score === 'prob' ? softmax(l)[c] : l[c]);

/**
 * A seeded stream (mulberry32) positioned at draw `skip`: the draws of row r of a (rows, n) matrix in C order start
 * at r * n, so a row's values do not depend on how rows are batched. The Python oracles replay the same stream.
 */
export function stream(seed: number, skip: number): () => number {
  const rand = mulberry32(seed);
  for (let i = 0; i < skip; i++) rand();
  return rand;
}
/** A standard normal from two uniform draws (Box-Muller, cosine branch): sqrt(-2 ln(1 - u1)) cos(2 pi u2). */
export const normal = (rand: () => number) => { const u1 = rand(), u2 = rand(); return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2); };

export const now = () => (globalThis.performance ?? Date).now();

/** A FIFO mutex: acquire() resolves with the release function once every earlier holder has released. */
export class Lock {
  private tail: Promise<void> = Promise.resolve();
  acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => { release = r; });
    const ready = this.tail.then(() => release);
    this.tail = next;
    return ready;
  }
}
