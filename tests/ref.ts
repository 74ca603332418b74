// Independent CPU reference executor for camgpu graphs, in float64: the oracle the GPU kernels are checked
// against. Plain loops written for clarity: each op's forward and backward sit together. Every tensor value
// is a Float64Array of batch * numel(shape) in NCHW row-major order (constants are repeated over the batch).
// Backward rules: 'grad' (plain gradient), 'guided' (guided backprop at ReLUs), 'deeplift' (DeepLIFT
// Rescale against a reference pass); see refBackward.

import { ActOp, BinaryOp, ConcatOp, ConvOp, Graph, LayoutOp, LinearOp, Node, NormOp, PoolOp, ReduceOp, ResizeOp, ConvTransposeOp, Shape, SoftmaxOp, fmt, isConst, numel } from '../src/graph';

export type Mode = 'grad' | 'guided' | 'deeplift' | 'deconv';
type Vals = Map<string, Float64Array>;

/** Below this |x - x'| DeepLIFT falls back to the gradient (the LIFT-CAM code's threshold). */
const DL_EPS = 1e-10;

// ---------- activations: f(x) and f'(x) with PyTorch's conventions at the kinks (src/ops/acts.ts `kink`) ----------

const SQRT_PI = Math.sqrt(Math.PI), GELU_K = Math.sqrt(2 / Math.PI);
/** erfc(z) for z >= 2.5: the continued fraction e^(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))), 200 levels. */
function erfcFrac(z: number): number {
  let t = z;
  for (let k = 200; k >= 1; k--) t = z + k / 2 / t;
  return Math.exp(-z * z) / (SQRT_PI * t);
}
/** erf in float64: its Maclaurin series below |x| = 2.5 (summed until a term is below 1e-17 of the sum), 1 - erfc above. */
export function erf(x: number): number {
  const z = Math.abs(x);
  if (z >= 2.5) return Math.sign(x) * (1 - erfcFrac(z));
  let term = z, sum = z; // term = (-1)^n z^(2n+1) / n!, sum of term / (2n + 1)
  for (let n = 1; Math.abs(term) > 1e-17 * sum; n++) { term *= -z * z / n; sum += term / (2 * n + 1); }
  return Math.sign(x) * sum * 2 / SQRT_PI;
}
export const erfc = (x: number) => (x >= 2.5 ? erfcFrac(x) : x <= -2.5 ? 2 - erfcFrac(-x) : 1 - erf(x));
/** The standard normal CDF and density. */
const Phi = (x: number) => 0.5 * erfc(-x / Math.SQRT2);
const phi = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const softplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));

/** alpha of element i (flat over the batch): the op's, or its per-element block's (PRelu's slope, Pow's exponents). */
export const alphaAt = (op: ActOp, i: number) => (op.alphas ? op.alphas[Math.floor(i / op.inner!) % op.alphas.length] : op.alpha);

export function actF(op: ActOp, x: number, a = op.alpha): number {
  const b = op.beta;
  switch (op.fn) {
    case 'relu': return x > 0 ? x : 0;
    case 'clip': return Math.min(Math.max(x, a), b);                              // [alpha, beta] = [min, max]
    case 'leakyrelu': return x > 0 ? x : a * x;
    case 'sigmoid': return sigmoid(x);
    case 'hardsigmoid': return Math.max(0, Math.min(1, a * x + b));
    case 'hardswish': return (x * Math.min(Math.max(x + 3, 0), 6)) / 6;           // alpha/beta unused
    case 'tanh': return Math.tanh(x);
    case 'exp': return Math.exp(x);
    case 'log': return Math.log(x);
    case 'sqrt': return Math.sqrt(x);
    case 'reciprocal': return 1 / x;
    case 'neg': return -x;
    case 'abs': return Math.abs(x);
    case 'erf': return erf(x);
    case 'gelu': return x * Phi(x);
    case 'gelu_tanh': return 0.5 * x * (1 + Math.tanh(GELU_K * (x + 0.044715 * x ** 3)));
    case 'elu': return x > 0 ? x : a * Math.expm1(x);
    case 'selu': return b * (x > 0 ? x : a * Math.expm1(x));                      // beta = gamma
    case 'celu': return x > 0 ? x : a * Math.expm1(x / a);
    case 'softplus': return softplus(x);                                         // ONNX: log(1 + e^x), no threshold
    case 'softsign': return x / (1 + Math.abs(x));
    case 'mish': return x * Math.tanh(softplus(x));
    case 'pow': return x ** a;                                                   // NaN for x < 0 and a fractional
  }
}

export function actD(op: ActOp, x: number, a = op.alpha): number {
  const b = op.beta;
  switch (op.fn) {
    case 'relu': return x > 0 ? 1 : 0;                                           // 0 at x == 0 (threshold_backward)
    case 'clip': return x > a && x < b ? 1 : 0;                                  // hardtanh: 0 at the bounds
    case 'leakyrelu': return x > 0 ? 1 : a;                                      // alpha at x == 0
    case 'sigmoid': { const s = sigmoid(x); return s * (1 - s); }
    case 'hardsigmoid': { const z = a * x + b; return z > 0 && z < 1 ? a : 0; }
    case 'hardswish': return x < -3 ? 0 : x <= 3 ? x / 3 + 0.5 : 1;             // PyTorch: -0.5 at -3, 1.5 at 3
    case 'tanh': return 1 - Math.tanh(x) ** 2;
    case 'exp': return Math.exp(x);
    case 'log': return 1 / x;                                                    // PyTorch: grad / x, at any x
    case 'sqrt': return 0.5 / Math.sqrt(x);                                      // grad / (2 sqrt x): inf at 0
    case 'reciprocal': return -1 / (x * x);
    case 'neg': return -1;
    case 'abs': return Math.sign(x);                                             // sgn: 0 at 0
    case 'erf': return (2 / SQRT_PI) * Math.exp(-x * x);
    case 'gelu': return Phi(x) + x * phi(x);
    case 'gelu_tanh': { // PyTorch's GeluBackward (tanh)
      const t = Math.tanh(GELU_K * (x + 0.044715 * x ** 3));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_K * (1 + 3 * 0.044715 * x * x);
    }
    case 'elu': return x > 0 ? 1 : a * Math.exp(x);                              // elu_backward: alpha at 0
    case 'selu': return b * (x > 0 ? 1 : a * Math.exp(x));                       // gamma alpha at 0
    case 'celu': return x > 0 ? 1 : Math.exp(x / a);                             // 1 at 0
    case 'softplus': return sigmoid(x);
    case 'softsign': return 1 / (1 + Math.abs(x)) ** 2;
    case 'mish': { const t = Math.tanh(softplus(x)); return t + x * (1 - t * t) * sigmoid(x); }
    case 'pow': return a === 0 ? 0 : a * x ** (a - 1);                           // pow_backward: 0 when alpha = 0
  }
}

// ---------- binary ops: y = g(a, b) ----------

export function binaryG(kind: BinaryOp['kind'], a: number, b: number): number {
  switch (kind) {
    case 'add': return a + b;
    case 'sub': return a - b;
    case 'mul': return a * b;
    case 'div': return a / b;
    case 'max': return Math.max(a, b);
    case 'min': return Math.min(a, b);
  }
}
/** [dg/da, dg/db] at (a, b); max / min: a tie gives each input half (PyTorch's maximum / minimum). */
export function binaryD(kind: BinaryOp['kind'], a: number, b: number): [number, number] {
  switch (kind) {
    case 'add': return [1, 1];
    case 'sub': return [1, -1];
    case 'mul': return [b, a];
    case 'div': return [1 / b, -a / (b * b)];
    case 'max': return a === b ? [0.5, 0.5] : a > b ? [1, 0] : [0, 1];
    case 'min': return a === b ? [0.5, 0.5] : a < b ? [1, 0] : [0, 1];
  }
}
/**
 * DeepLIFT multipliers [m_a, m_b] of g(a, b) against the reference (a', b'), by their definition: the two-player
 * Shapley split m_a (a - a') = (g(a,b) - g(a',b) + g(a,b') - g(a',b')) / 2, m_b likewise, so that m_a (a - a') +
 * m_b (b - b') = g(a,b) - g(a',b'); where |a - a'| < 1e-10, the mean of dg/da at (a, b) and (a, b').
 */
function shapley(kind: BinaryOp['kind'], a: number, b: number, ar: number, br: number): [number, number] {
  const g = (u: number, v: number) => binaryG(kind, u, v);
  const ma = Math.abs(a - ar) >= DL_EPS ? (g(a, b) - g(ar, b) + g(a, br) - g(ar, br)) / (2 * (a - ar))
    : (binaryD(kind, a, b)[0] + binaryD(kind, a, br)[0]) / 2;
  const mb = Math.abs(b - br) >= DL_EPS ? (g(a, b) - g(a, br) + g(ar, b) - g(ar, br)) / (2 * (b - br))
    : (binaryD(kind, a, b)[1] + binaryD(kind, ar, b)[1]) / 2;
  return [ma, mb];
}

// ---------- conv: ONNX Conv, w (Co, C/g, kh, kw), pads [top, left, bottom, right] ----------

/** The output indices o in [lo, hi) whose input index o*s - p + kd lies inside [0, size). */
function validRange(size: number, outSize: number, s: number, p: number, kd: number): [number, number] {
  return [Math.max(0, Math.ceil((p - kd) / s)), Math.min(outSize, Math.floor((size - 1 + p - kd) / s) + 1)];
}

/**
 * The conv's multiply-accumulates, either direction: for each sample, output channel oc, input channel ic
 * of its group and tap (ky, kx), output (oy, ox) reads input (oy*sh - pt + ky*dh, ox*sw - pl + kx*dw)
 * through w[oc, ic, ky, kx]; taps that land in the padding read zeros and are skipped.
 * forward: y[out] += w * x[in]. backward: dx[in] += w * dy[out] (the transpose: a scatter).
 */
function convMacs(op: ConvOp, xs: Shape, ys: Shape, N: number, src: Float64Array, dst: Float64Array, forward: boolean) {
  const [C, H, W] = xs, [Co, OH, OW] = ys, cg = C / op.group, cog = Co / op.group;
  const [sh, sw] = op.stride, [dh, dw] = op.dil, [pt, pl] = op.pad;
  for (let n = 0; n < N; n++) for (let g = 0; g < op.group; g++) for (let icl = 0; icl < cg; icl++) {
    const xo = (n * C + g * cg + icl) * H * W;
    for (let ky = 0; ky < op.kh; ky++) for (let kx = 0; kx < op.kw; kx++) {
      const [oy0, oy1] = validRange(H, OH, sh, pt, ky * dh), [ox0, ox1] = validRange(W, OW, sw, pl, kx * dw);
      const xb = xo + (ky * dh - pt) * W + kx * dw - pl; // input index of output (oy, ox) is xb + oy*sh*W + ox*sw
      for (let oc = g * cog; oc < (g + 1) * cog; oc++) {
        const wv = op.w[((oc * cg + icl) * op.kh + ky) * op.kw + kx], yo = (n * Co + oc) * OH * OW;
        for (let oy = oy0; oy < oy1; oy++) {
          const xr = xb + oy * sh * W, yr = yo + oy * OW;
          if (forward) for (let ox = ox0; ox < ox1; ox++) dst[yr + ox] += wv * src[xr + ox * sw];
          else for (let ox = ox0; ox < ox1; ox++) dst[xr + ox * sw] += wv * src[yr + ox];
        }
      }
    }
  }
}

/** y (N,Co,OH,OW) = sum_{ic in group, ky, kx} w[oc,ic,ky,kx] * x[n, ic, oy*sh - pt + ky*dh, ox*sw - pl + kx*dw] + b[oc]. */
function convForward(x: Float64Array, xs: Shape, op: ConvOp, ys: Shape, N: number): Float64Array {
  const [Co, OH, OW] = ys, plane = OH * OW, y = new Float64Array(N * Co * plane);
  for (let i = 0; i < N * Co; i++) y.fill(op.b[i % Co], i * plane, (i + 1) * plane);
  convMacs(op, xs, ys, N, x, y, true);
  return y;
}

/** dx (N,C,H,W): every output that read x[i] through weight w sends back w * dy. */
function convBackward(dy: Float64Array, xs: Shape, op: ConvOp, ys: Shape, N: number): Float64Array {
  const dx = new Float64Array(N * numel(xs));
  convMacs(op, xs, ys, N, dy, dx, false);
  return dx;
}

// ---------- pools: window rows y0 + ky*dh with y0 = oy*sh - pt (PyTorch / ONNX) ----------

/**
 * Calls fn(j, taps, divisor) for every output element j (flat over N,C,OH,OW): `taps` are the flat input
 * indices of the window positions inside the input, in scan order (ky, kx row-major). divisor is the
 * average pool's: countIncludePad counts window positions inside the padded input (PyTorch clips a
 * ceil-mode window at H + pad_bottom), otherwise only positions inside the input.
 */
function poolWindows(xs: Shape, op: PoolOp, ys: Shape, N: number, fn: (j: number, taps: number[], divisor: number) => void) {
  const [C, H, W] = xs, [, OH, OW] = ys;
  const [sh, sw] = op.stride, [dh, dw] = op.dil, [pt, pl, pb, pr] = op.pad;
  for (let nc = 0; nc < N * C; nc++) for (let oy = 0; oy < OH; oy++) for (let ox = 0; ox < OW; ox++) {
    const y0 = oy * sh - pt, x0 = ox * sw - pl, taps: number[] = [];
    let rowsPad = 0, colsPad = 0, rowsIn = 0, colsIn = 0;
    for (let ky = 0; ky < op.kh; ky++) { const r = y0 + ky * dh; if (r < H + pb) rowsPad++; if (r >= 0 && r < H) rowsIn++; }
    for (let kx = 0; kx < op.kw; kx++) { const c = x0 + kx * dw; if (c < W + pr) colsPad++; if (c >= 0 && c < W) colsIn++; }
    for (let ky = 0; ky < op.kh; ky++) for (let kx = 0; kx < op.kw; kx++) {
      const r = y0 + ky * dh, c = x0 + kx * dw;
      if (r >= 0 && r < H && c >= 0 && c < W) taps.push((nc * H + r) * W + c);
    }
    fn((nc * OH + oy) * OW + ox, taps, op.countIncludePad ? rowsPad * colsPad : rowsIn * colsIn);
  }
}

/** Flat input index of each window's maximum: padding never wins; on ties the first in scan order (PyTorch). -1 for an all-padding window. */
function argmaxes(x: Float64Array, xs: Shape, op: PoolOp, ys: Shape, N: number): Int32Array {
  const a = new Int32Array(N * numel(ys)).fill(-1);
  poolWindows(xs, op, ys, N, (j, taps) => {
    let best = -1;
    for (const t of taps) if (best < 0 || x[t] > x[best]) best = t;
    a[j] = best;
  });
  return a;
}

// ---------- broadcasting for binary ops over [N, ...shape] ----------

/** For each flat index of the output [N, ...out], the flat index of the operand [N, ...inp] it reads (numpy broadcasting). */
function broadcastIndex(out: Shape, inp: Shape, N: number): Int32Array {
  const r = out.length, padded = [...Array<number>(r - inp.length).fill(1), ...inp];
  const strides = new Array<number>(r);
  for (let d = r - 1, s = 1; d >= 0; d--) { strides[d] = padded[d] === 1 ? 0 : s; s *= padded[d]; }
  const M = numel(out), Mi = numel(inp), idx = new Int32Array(N * M);
  for (let o = 0; o < N * M; o++) {
    let rem = o % M, k = Math.floor(o / M) * Mi;
    for (let d = r - 1; d >= 0; d--) { k += (rem % out[d]) * strides[d]; rem = Math.floor(rem / out[d]); }
    idx[o] = k;
  }
  return idx;
}

// ---------- layout ops: every output element reads one input element, or a pad constant ----------

/** The per-sample input coordinates that output coordinates c read (null: a constant pad), from each op's definition. */
function layoutSource(op: LayoutOp, xs: Shape, c: number[]): number[] | null {
  switch (op.kind) {
    case 'transpose': { const i = new Array<number>(xs.length); op.perm.forEach((p, d) => { i[p] = c[d]; }); return i; }
    case 'slice': return c.map((v, d) => op.begin[d] + v * op.step[d]);
    case 'tile': return c.map((v, d) => v % xs[d]);
    case 'gather': return c.map((v, d) => (d === op.axis ? op.indices[v] : v));
    case 'pad': {
      const i = c.map((v, d) => v - op.begin[d]);
      if (op.mode === 'constant') return i.every((v, d) => v >= 0 && v < xs[d]) ? i : null;
      if (op.mode === 'edge') return i.map((v, d) => Math.min(Math.max(v, 0), xs[d] - 1));
      return i.map((v, d) => (v < 0 ? -v : v > xs[d] - 1 ? 2 * (xs[d] - 1) - v : v)); // numpy 'reflect' (pads < size)
    }
  }
}

/** For each flat per-sample output index, the flat per-sample input index it reads, or -1 for a constant pad. */
function layoutIndex(op: LayoutOp, xs: Shape, ys: Shape): Int32Array {
  const M = numel(ys), idx = new Int32Array(M), c = new Array<number>(ys.length);
  for (let o = 0; o < M; o++) {
    for (let d = ys.length - 1, rem = o; d >= 0; d--) { c[d] = rem % ys[d]; rem = Math.floor(rem / ys[d]); }
    const i = layoutSource(op, xs, c);
    idx[o] = i ? i.reduce((k, v, d) => k * xs[d] + v, 0) : -1;
  }
  return idx;
}

// ---------- reductions over per-sample axes (the kept axes stay in order) ----------

/** For each per-sample offset j of x, the per-sample index of the output it goes into. */
function reduceIndex(xs: Shape, axes: number[]): Int32Array {
  const M = numel(xs), out = new Int32Array(M);
  for (let j = 0; j < M; j++) {
    let rem = j, o = 0, stride = 1;
    for (let d = xs.length - 1; d >= 0; d--) {
      const c = rem % xs[d];
      rem = Math.floor(rem / xs[d]);
      if (axes.includes(d)) continue;
      o += c * stride;
      stride *= xs[d];
    }
    out[j] = o;
  }
  return out;
}

/**
 * y (N, kept) = fn over the reduced axes, visiting x in row-major order, so max / min keep the first extremum in scan
 * order; arg: its per-sample offset in x (max / min only).
 */
function reduceForward(x: Float64Array, xs: Shape, op: ReduceOp, N: number): { y: Float64Array; arg: Int32Array } {
  const idx = reduceIndex(xs, op.axes), M = numel(xs), R = op.axes.reduce((p, a) => p * xs[a], 1), Y = M / R;
  const y = new Float64Array(N * Y), arg = new Int32Array(N * Y).fill(-1);
  for (let n = 0; n < N; n++) for (let j = 0; j < M; j++) {
    const v = x[n * M + j], o = n * Y + idx[j];
    switch (op.fn) {
      case 'sum': case 'mean': y[o] += v; break;
      case 'l2': case 'sumsquare': y[o] += v * v; break;
      case 'l1': y[o] += Math.abs(v); break;
      case 'max': if (arg[o] < 0 || v > y[o]) { y[o] = v; arg[o] = j; } break;
      case 'min': if (arg[o] < 0 || v < y[o]) { y[o] = v; arg[o] = j; } break;
    }
  }
  if (op.fn === 'mean') for (let o = 0; o < y.length; o++) y[o] /= R;
  if (op.fn === 'l2') for (let o = 0; o < y.length; o++) y[o] = Math.sqrt(y[o]);
  return { y, arg };
}

/**
 * dx (N, xs) = dy at each element's output times its multiplier. Gradient: sum 1, mean 1/R, l2 x / y (0 at y = 0),
 * l1 sign(x), sumsquare 2x, max / min to the first extremum. DeepLIFT (each exact: sum m (x - x') = y - y'): sum and
 * mean as the gradient; l2 (x + x') / (y + y'); l1 (|x| - |x'|) / (x - x') (sign(x) where |x - x'| < 1e-10);
 * sumsquare x + x'; max / min route dy (y - y') / (x_a - x'_a) to the argmax a, else to the reference argmax a' (as
 * max-pool), else dy to a.
 */
function reduceBackward(x: Float64Array, xr: Float64Array | undefined, xs: Shape, op: ReduceOp, dy: Float64Array, N: number): Float64Array {
  const idx = reduceIndex(xs, op.axes), M = numel(xs), R = op.axes.reduce((p, a) => p * xs[a], 1), Y = M / R;
  const { y, arg } = reduceForward(x, xs, op, N), dx = new Float64Array(N * M);
  const ref = xr && reduceForward(xr, xs, op, N);
  if (op.fn === 'max' || op.fn === 'min') {
    for (let o = 0; o < N * Y; o++) {
      const b = Math.floor(o / Y) * M, a = b + arg[o];
      if (!ref) { dx[a] += dy[o]; continue; }
      const ar = b + ref.arg[o], dY = x[a] - xr![ar];
      if (Math.abs(x[a] - xr![a]) >= DL_EPS) dx[a] += dy[o] * dY / (x[a] - xr![a]);
      else if (Math.abs(x[ar] - xr![ar]) >= DL_EPS) dx[ar] += dy[o] * dY / (x[ar] - xr![ar]);
      else dx[a] += dy[o];
    }
    return dx;
  }
  for (let i = 0; i < dx.length; i++) {
    const o = Math.floor(i / M) * Y + idx[i % M], v = x[i];
    let m = 1;
    if (op.fn === 'mean') m = 1 / R;
    if (op.fn === 'l2') { const t = ref ? y[o] + ref.y[o] : y[o]; m = t > 0 ? (ref ? v + xr![i] : v) / t : 0; }
    if (op.fn === 'l1') m = ref && Math.abs(v - xr![i]) >= DL_EPS ? (Math.abs(v) - Math.abs(xr![i])) / (v - xr![i]) : Math.sign(v);
    if (op.fn === 'sumsquare') m = ref ? v + xr![i] : 2 * v;
    dx[i] = dy[o] * m;
  }
  return dx;
}

// ---------- row normalisations: LayerNorm / InstanceNorm, softmax / log-softmax ----------

/** Rows of a per-sample shape xs normalised over the flattened axes [axis, end): the flat indices of each row. */
function rowsOf(xs: Shape, axis: number, end: number, N: number): number[][] {
  const O = numel(xs.slice(0, axis)), F = numel(xs.slice(axis, end)), I = numel(xs.slice(end)), rows: number[][] = [];
  for (let q = 0; q < N * O; q++) for (let i = 0; i < I; i++) rows.push(Array.from({ length: F }, (_, f) => (q * F + f) * I + i));
  return rows;
}

/** Mean, centred values c and r = 1/sqrt(mean(c^2) + eps) of one row. */
function rowStats(x: Float64Array, row: number[], eps: number) {
  const mu = row.reduce((s, k) => s + x[k], 0) / row.length, c = row.map((k) => x[k] - mu);
  const v = c.reduce((s, u) => s + u * u, 0) / row.length;
  return { c, v, r: 1 / Math.sqrt(v + eps) };
}

/** y = (x - mean) / sqrt(var + eps) * scale + bias per row; element i of a sample takes scale[floor(i / stride) % L]. */
function normForward(x: Float64Array, xs: Shape, op: NormOp, N: number): Float64Array {
  const y = new Float64Array(x.length), M = numel(xs), L = op.scale.length;
  for (const row of rowsOf(xs, op.axis, xs.length, N)) {
    const { c, r } = rowStats(x, row, op.eps);
    row.forEach((k, m) => { const s = Math.floor((k % M) / op.stride) % L; y[k] = c[m] * r * op.scale[s] + op.bias[s]; });
  }
  return y;
}

/**
 * Gradient: dx = r (g - mean(g) - xhat mean(g xhat)), g = dy scale. DeepLIFT (exact; shaders/norm.wgsl): the
 * difference of xhat = c r split as a product, r = (v + eps)^(-1/2) by its secant over v, v = mean(c^2) as a difference
 * of squares, c the centring: u = (r + r')/2 g + sec (c + c')/M sum g (c + c')/2, dx = u - mean(u).
 */
function normBackward(x: Float64Array, xr: Float64Array | undefined, xs: Shape, op: NormOp, dy: Float64Array, N: number): Float64Array {
  const dx = new Float64Array(x.length), M = numel(xs), L = op.scale.length;
  for (const row of rowsOf(xs, op.axis, xs.length, N)) {
    const n = row.length, g = row.map((k) => dy[k] * op.scale[Math.floor((k % M) / op.stride) % L]), a = rowStats(x, row, op.eps);
    const mean = (v: number[]) => v.reduce((s, u) => s + u, 0) / n;
    let u: number[];
    if (!xr) {
      const mg = mean(g), mgx = mean(g.map((v, m) => v * a.c[m] * a.r));
      u = g.map((v, m) => a.r * (v - mg - a.c[m] * a.r * mgx));
    } else {
      const b = rowStats(xr, row, op.eps), sa = Math.sqrt(a.v + op.eps), sb = Math.sqrt(b.v + op.eps);
      const sec = -1 / (sa * sb * (sa + sb)), cc = a.c.map((v, m) => v + b.c[m]);
      const K = g.reduce((s, v, m) => s + v * cc[m] / 2, 0), w = g.map((v, m) => (a.r + b.r) / 2 * v + sec * cc[m] / n * K), mw = mean(w);
      u = w.map((v) => v - mw);
    }
    row.forEach((k, m) => { dx[k] = u[m]; });
  }
  return dx;
}

function softmaxForward(x: Float64Array, xs: Shape, op: SoftmaxOp, N: number): Float64Array {
  const y = new Float64Array(x.length);
  for (const row of rowsOf(xs, op.axis, op.end, N)) {
    const mx = Math.max(...row.map((k) => x[k])), s = row.reduce((t, k) => t + Math.exp(x[k] - mx), 0);
    for (const k of row) y[k] = op.log ? x[k] - mx - Math.log(s) : Math.exp(x[k] - mx) / s;
  }
  return y;
}

/**
 * Gradient from y: softmax dx = y (dy - sum dy y), log-softmax dx = dy - exp(y) sum dy. DeepLIFT (exact;
 * shaders/softmax.wgsl) with e = exp(x - c), e' = exp(x' - c), one shift c for both rows, s = (e - e') / (x - x'):
 * softmax dx = s (dy (1/S + 1/S')/2 - sum dy (e + e')/2 / (S S')); log-softmax dx = dy - sum(dy) s (log S - log S') / (S - S').
 */
function softmaxBackward(x: Float64Array, xr: Float64Array | undefined, y: Float64Array, xs: Shape, op: SoftmaxOp, dy: Float64Array, N: number): Float64Array {
  const dx = new Float64Array(x.length);
  for (const row of rowsOf(xs, op.axis, op.end, N)) {
    const sdy = row.reduce((t, k) => t + dy[k], 0);
    if (!xr) {
      const d = row.reduce((t, k) => t + dy[k] * y[k], 0);
      for (const k of row) dx[k] = op.log ? dy[k] - Math.exp(y[k]) * sdy : y[k] * (dy[k] - d);
      continue;
    }
    const c = Math.max(...row.map((k) => Math.max(x[k], xr[k])));
    const e = row.map((k) => Math.exp(x[k] - c)), er = row.map((k) => Math.exp(xr[k] - c));
    const S = e.reduce((t, v) => t + v, 0), Sr = er.reduce((t, v) => t + v, 0);
    const s = row.map((k, f) => (Math.abs(x[k] - xr[k]) >= DL_EPS ? (e[f] - er[f]) / (x[k] - xr[k]) : e[f]));
    const K = row.reduce((t, k, f) => t + dy[k] * (e[f] + er[f]) / 2, 0);
    const Lsec = S !== Sr ? (Math.log(S) - Math.log(Sr)) / (S - Sr) : 1 / S;
    row.forEach((k, f) => { dx[k] = op.log ? dy[k] - sdy * Lsec * s[f] : s[f] * (dy[k] * (1 / S + 1 / Sr) / 2 - K / (S * Sr)); });
  }
  return dx;
}

// ---------- matrix products: y (N, lead, M, P) = a (N, lead_a, M, K) b (N, lead_b, K, P), leading axes broadcast ----------

/** For each leading index of the output, the leading index of an operand with per-sample shape s (numpy broadcasting). */
function leadIndex(ys: Shape, s: Shape): Int32Array {
  return broadcastIndex(ys.slice(0, -2), s.slice(0, -2), 1);
}

/** Calls fn(ia, ib, iy) for every multiply-add: flat indices into a, b and y over the batch. */
function matmulTerms(as: Shape, bs: Shape, ys: Shape, N: number, fn: (ia: number, ib: number, iy: number) => void) {
  const [M, K] = as.slice(-2), P = bs[bs.length - 1], la = leadIndex(ys, as), lb = leadIndex(ys, bs);
  const A = numel(as), B = numel(bs), Y = numel(ys);
  for (let n = 0; n < N; n++) for (let l = 0; l < la.length; l++) for (let m = 0; m < M; m++) for (let q = 0; q < P; q++) {
    for (let k = 0; k < K; k++) fn(n * A + (la[l] * M + m) * K + k, n * B + (lb[l] * K + k) * P + q, n * Y + (l * M + m) * P + q);
  }
}

function matmulForward(a: Float64Array, b: Float64Array, as: Shape, bs: Shape, ys: Shape, N: number): Float64Array {
  const y = new Float64Array(N * numel(ys));
  matmulTerms(as, bs, ys, N, (ia, ib, iy) => { y[iy] += a[ia] * b[ib]; });
  return y;
}

/** da = dy b~^T, db = a~^T dy (summed where an operand broadcasts); gradient: a~ = a, b~ = b; DeepLIFT: the means of
 *  both passes, a~ = (a + a')/2, b~ = (b + b')/2 (exact: ab - a'b' = a~(b - b') + (a - a')b~). */
function matmulBackward(a: Float64Array, b: Float64Array, ar: Float64Array, br: Float64Array, as: Shape, bs: Shape, ys: Shape, dy: Float64Array, N: number) {
  const da = new Float64Array(a.length), db = new Float64Array(b.length);
  matmulTerms(as, bs, ys, N, (ia, ib, iy) => { da[ia] += dy[iy] * (b[ib] + br[ib]) / 2; db[ib] += (a[ia] + ar[ia]) / 2 * dy[iy]; });
  return { da, db };
}

// ---------- Einsum by its definition: y[out letters] = sum over the other letters of prod of the operands ----------
// (independent of src/ops/einsum.ts's lowering: every assignment of every letter is visited; terms include the batch
// letter, shapes are full (N first))

/** Calls fn(i_0, ..., iy) for every assignment of the letters: flat indices into each operand and into y. */
function einsumTerms(terms: string[], out: string, shapes: Shape[], fn: (ix: number[], iy: number) => void) {
  const size = new Map<string, number>();
  terms.forEach((t, k) => [...t].forEach((c, i) => size.set(c, shapes[k][i])));
  const letters = [...size.keys()], dims = letters.map((c) => size.get(c)!);
  const flat = (t: string, at: number[]) => [...t].reduce((f, c) => f * size.get(c)! + at[letters.indexOf(c)], 0);
  const at = letters.map(() => 0);
  for (let j = 0; j < numel(dims); j++) {
    for (let d = letters.length - 1, r = j; d >= 0; d--) { at[d] = r % dims[d]; r = Math.floor(r / dims[d]); }
    fn(terms.map((t) => flat(t, at)), flat(out, at));
  }
}

/** y = einsum(terms -> out) of the operands xs with full shapes; returns y and its shape. */
export function einsumForward(terms: string[], out: string, xs: Float64Array[], shapes: Shape[]) {
  const size = new Map<string, number>();
  terms.forEach((t, k) => [...t].forEach((c, i) => size.set(c, shapes[k][i])));
  const ys = [...out].map((c) => size.get(c)!), y = new Float64Array(numel(ys));
  einsumTerms(terms, out, shapes, (ix, iy) => { y[iy] += ix.reduce((p, i, k) => p * xs[k][i], 1); });
  return { y, ys };
}

/** d sum(dy * y) / d operand k: dx_k[i_k] = sum of dy[iy] times the other operands, over every assignment. */
export function einsumBackward(terms: string[], out: string, xs: Float64Array[], shapes: Shape[], dy: Float64Array): Float64Array[] {
  const dx = xs.map((x) => new Float64Array(x.length));
  einsumTerms(terms, out, shapes, (ix, iy) => ix.forEach((i, k) => { dx[k][i] += dy[iy] * ix.reduce((p, j, q) => (q === k ? p : p * xs[q][j]), 1); }));
  return dx;
}

// ---------- transposed conv: ONNX ConvTranspose, w (C, K/g, kh, kw) ----------

/** Every (input element, output element, weight) term, visited by scattering each input tap: y[n, k, ih s - pt + i d,
 *  iw s - pl + j d] gets x[n, c, ih, iw] w[c, k', i, j] for k in c's group (outside the output: dropped). */
function convTransposeTerms(op: ConvTransposeOp, xs: Shape, ys: Shape, N: number, fn: (ix: number, iy: number, w: number) => void) {
  const [C, H, W] = xs, [K, OH, OW] = ys, Kg = K / op.group, Cg = C / op.group;
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let ih = 0; ih < H; ih++) for (let iw = 0; iw < W; iw++)
    for (let kk = 0; kk < Kg; kk++) for (let i = 0; i < op.kh; i++) for (let j = 0; j < op.kw; j++) {
      const oh = ih * op.stride[0] - op.pad[0] + i * op.dil[0], ow = iw * op.stride[1] - op.pad[1] + j * op.dil[1];
      if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
      const k = Math.floor(c / Cg) * Kg + kk;
      fn(((n * C + c) * H + ih) * W + iw, ((n * K + k) * OH + oh) * OW + ow, op.w[((c * Kg + kk) * op.kh + i) * op.kw + j]);
    }
}
function convTransposeForward(x: Float64Array, xs: Shape, op: ConvTransposeOp, ys: Shape, N: number): Float64Array {
  const y = new Float64Array(N * numel(ys)), M = ys[1] * ys[2];
  for (let i = 0; i < y.length; i++) y[i] = op.b[Math.floor(i / M) % ys[0]];
  convTransposeTerms(op, xs, ys, N, (ix, iy, w) => { y[iy] += x[ix] * w; });
  return y;
}
/** dx = the conv of dy by w (linear: every mode). */
function convTransposeBackward(dy: Float64Array, xs: Shape, op: ConvTransposeOp, ys: Shape, N: number): Float64Array {
  const dx = new Float64Array(N * numel(xs));
  convTransposeTerms(op, xs, ys, N, (ix, iy, w) => { dx[ix] += dy[iy] * w; });
  return dx;
}

// ---------- resize: ONNX Resize / Upsample of the last two per-sample axes ----------

/**
 * Per output element, written from ONNX's definitions directly (not from src/ops/resize.ts's tables): for each of the
 * two resized axes the source coordinate v of output position o (coordinate_transformation_mode), then nearest: the
 * rounded index; linear: taps floor(v), floor(v) + 1 weighted 1 - t, t; cubic: floor(v) - 1 .. floor(v) + 2 with Keys'
 * kernel |s| <= 1: (A+2)|s|^3 - (A+3)|s|^2 + 1, 1 < |s| < 2: A|s|^3 - 5A|s|^2 + 8A|s| - 4A (exclude_outside: taps
 * outside the axis get 0 and the rest are renormalised); indices outside the axis read its edge. The terms are
 * visited as (output element, input element, weight) triples: forward y += w x, backward dx += w dy.
 */
function resizeTerms(op: ResizeOp, xs: Shape, N: number, fn: (iy: number, ix: number, w: number) => void) {
  const [H, W] = op.inSize, [OH, OW] = op.outSize, P = N * numel(xs) / (H * W);
  const taps = (o: number, L: number, O: number, s: number): [number, number][] => {
    let v: number;
    if (op.nearest === 'simple') v = o / s;
    else switch (op.coord) {
      case 'half_pixel': v = (o + 0.5) / s - 0.5; break;
      case 'pytorch_half_pixel': v = O > 1 ? (o + 0.5) / s - 0.5 : 0; break;
      case 'align_corners': v = O === 1 ? 0 : o * (L - 1) / (O - 1); break;
      case 'asymmetric': v = o / s; break;
      case 'tf_half_pixel_for_nn': v = (o + 0.5) / s; break;
    }
    const edge = (i: number) => Math.min(Math.max(i, 0), L - 1), f = Math.floor(v);
    if (op.mode === 'nearest') {
      const half = v - f === 0.5;
      const i = op.nearest === 'floor' || op.nearest === 'simple' ? f : op.nearest === 'ceil' ? Math.ceil(v)
        : half ? (op.nearest === 'round_prefer_floor' ? f : f + 1) : Math.round(v);
      return [[edge(i), 1]];
    }
    if (op.mode === 'linear') return [[edge(f), 1 - (v - f)], [edge(f + 1), v - f]];
    const A = op.cubicA, k = (d: number) => { const s2 = Math.abs(d); return s2 <= 1 ? (A + 2) * s2 ** 3 - (A + 3) * s2 ** 2 + 1 : s2 < 2 ? A * s2 ** 3 - 5 * A * s2 ** 2 + 8 * A * s2 - 4 * A : 0; };
    const t: [number, number][] = [-1, 0, 1, 2].map((d) => [f + d, k(v - (f + d))]);
    const kept = op.exclude ? t.filter(([i]) => i >= 0 && i < L) : t, sum = kept.reduce((p, [, w]) => p + w, 0);
    return kept.map(([i, w]) => [edge(i), op.exclude ? w / sum : w]);
  };
  // O: the resized length the transform uses, in * scale unrounded when scales were given (op.len)
  const th = Array.from({ length: OH }, (_, o) => taps(o, H, op.len[0], op.scale[0])), tw = Array.from({ length: OW }, (_, q) => taps(q, W, op.len[1], op.scale[1]));
  for (let pl = 0; pl < P; pl++) for (let o = 0; o < OH; o++) for (let q = 0; q < OW; q++)
    for (const [i, wh] of th[o]) for (const [j, ww] of tw[q]) fn((pl * OH + o) * OW + q, (pl * H + i) * W + j, wh * ww);
}
function resizeForward(x: Float64Array, xs: Shape, op: ResizeOp, ys: Shape, N: number): Float64Array {
  const y = new Float64Array(N * numel(ys));
  resizeTerms(op, xs, N, (iy, ix, w) => { y[iy] += w * x[ix]; });
  return y;
}
/** dx = the transposed interpolation of dy (linear: the same in every mode). */
function resizeBackward(dy: Float64Array, xs: Shape, op: ResizeOp, N: number): Float64Array {
  const dx = new Float64Array(N * numel(xs));
  resizeTerms(op, xs, N, (iy, ix, w) => { dx[ix] += w * dy[iy]; });
  return dx;
}

// ---------- forward ----------

const shapeOf = (g: Graph, t: string) => g.tensors.get(t)!.shape;

function nodeForward(g: Graph, node: Node, v: Vals, N: number): Float64Array {
  const op = node.op, xs = shapeOf(g, node.inputs[0]), ys = shapeOf(g, node.output);
  const x = v.get(node.inputs[0])!, y = new Float64Array(N * numel(ys));
  switch (op.kind) {
    case 'conv': return convForward(x, xs, op, ys, N);
    case 'act': for (let i = 0; i < y.length; i++) y[i] = actF(op, x[i], alphaAt(op, i)); return y;
    case 'add': case 'sub': case 'mul': case 'div': case 'max': case 'min': {
      const b = v.get(node.inputs[1])!, ia = broadcastIndex(ys, xs, N), ib = broadcastIndex(ys, shapeOf(g, node.inputs[1]), N);
      for (let o = 0; o < y.length; o++) y[o] = binaryG(op.kind, x[ia[o]], b[ib[o]]);
      return y;
    }
    case 'maxpool': { const a = argmaxes(x, xs, op, ys, N); for (let j = 0; j < y.length; j++) y[j] = a[j] < 0 ? -Infinity : x[a[j]]; return y; }
    case 'avgpool':
      poolWindows(xs, op, ys, N, (j, taps, div) => { let s = 0; for (const t of taps) s += x[t]; y[j] = s / div; });
      return y;
    case 'gap': { // y (N,C,1,1) = mean over H*W
      const hw = xs[1] * xs[2];
      for (let nc = 0; nc < y.length; nc++) { let s = 0; for (let i = 0; i < hw; i++) s += x[nc * hw + i]; y[nc] = s / hw; }
      return y;
    }
    case 'linear': return linearForward(x, op, x.length / op.in); // every row of every sample (over the last axis)
    case 'affine': { // y = x * scale[c] + shift[c], c = per-sample axis 0
      const C = xs[0], inner = numel(xs) / C;
      for (let i = 0; i < y.length; i++) { const c = Math.floor(i / inner) % C; y[i] = x[i] * op.scale[c] + op.shift[c]; }
      return y;
    }
    case 'concat': { // per sample and per block of the axes before the concat axis, the inputs' blocks one after the other
      const O = numel(ys.slice(0, (node.op as ConcatOp).axis ?? 0)), M = numel(ys) / O;
      let off = 0;
      for (const t of node.inputs) {
        const m = numel(shapeOf(g, t)) / O, xt = v.get(t)!;
        for (let q = 0; q < N * O; q++) y.set(xt.subarray(q * m, (q + 1) * m), q * M + off);
        off += m;
      }
      return y;
    }
    case 'softmax': return softmaxForward(x, xs, op, N);
    case 'norm': return normForward(x, xs, op, N);
    case 'alias': y.set(x); return y;
    case 'reduce': return reduceForward(x, xs, op, N).y;
    case 'resize': return resizeForward(x, xs, op, ys, N);
    case 'convtranspose': return convTransposeForward(x, xs, op, ys, N);
    case 'matmul': return matmulForward(x, v.get(node.inputs[1])!, xs, shapeOf(g, node.inputs[1]), ys, N);
    case 'transpose': case 'slice': case 'pad': case 'tile': case 'gather': { // y[n, o] = x[n, src(o)] (or the pad value)
      const idx = layoutIndex(op, xs, ys), M = idx.length, Mx = numel(xs);
      for (let j = 0; j < y.length; j++) { const k = idx[j % M]; y[j] = k < 0 ? (op.kind === 'pad' ? op.value : 0) : x[Math.floor(j / M) * Mx + k]; }
      return y;
    }
  }
}

/** y (rows,out) = x (rows,in) w^T + b, w (out, in). */
function linearForward(x: Float64Array, op: LinearOp, N: number): Float64Array {
  const y = new Float64Array(N * op.out);
  for (let n = 0; n < N; n++) for (let o = 0; o < op.out; o++) {
    let s = op.b[o];
    for (let i = 0; i < op.in; i++) s += x[n * op.in + i] * op.w[o * op.in + i];
    y[n * op.out + o] = s;
  }
  return y;
}

/**
 * Forward over a batch; returns every tensor's values (batch*numel(shape), NCHW; constants repeated over
 * the batch). `override` replaces a tensor's value (e.g. zeros at a target layer for a reference pass):
 * the node producing it is skipped and every node downstream reads the override.
 */
export function refForward(g: Graph, x: Float64Array, batch: number, override?: { tensor: string; value: Float64Array }): Vals {
  const v: Vals = new Map(), N = batch;
  const check = (t: string, a: Float64Array) => {
    const want = N * numel(shapeOf(g, t));
    if (a.length !== want) throw new Error(`refForward: '${t}' ${fmt(shapeOf(g, t))} x batch ${N} needs ${want} values, got ${a.length}`);
  };
  if (override) { if (!g.tensors.has(override.tensor)) throw new Error(`refForward: no tensor '${override.tensor}' to override`); check(override.tensor, override.value); }
  check(g.input, x);
  v.set(g.input, Float64Array.from(x));
  for (const t of g.tensors.values()) if (t.data) {
    const m = t.data.length, a = new Float64Array(N * m);
    for (let n = 0; n < N; n++) for (let i = 0; i < m; i++) a[n * m + i] = t.data[i];
    v.set(t.name, a);
  }
  if (override && v.has(override.tensor)) v.set(override.tensor, Float64Array.from(override.value));
  for (const node of g.nodes) {
    v.set(node.output, override?.tensor === node.output ? Float64Array.from(override.value) : nodeForward(g, node, v, N));
  }
  return v;
}

// ---------- backward ----------

/**
 * Backward from `seed` (batch*numel values) placed at tensor `seedAt` (usually logitsOf(g)); returns
 * dseed/dt for every non-constant tensor t upstream of seedAt, including seedAt and g.input.
 * - 'grad': the gradient. Kinks follow PyTorch (relu'(0) = 0, maxpool routes to the first maximum, ...).
 * - 'guided': at act nodes with fn 'relu' only, dx = dy * [x > 0] * [dy > 0] (Springenberg et al. 2015).
 * - 'deeplift': DeepLIFT Rescale (Shrikumar et al. 2017) against `refVals`, a refForward of the reference:
 *   acts use m = (f(x) - f(x')) / (x - x') (the derivative where |x - x'| < 1e-10); a binary op g(u, v) splits
 *   the difference as the two-player Shapley value (shapley(): mul gets du = dy (v + v')/2, dv = dy (u + u')/2,
 *   div du = dy (1/v + 1/v')/2, dv = -dy (u + u')/(2 v v')); maxpool routes
 *   dy (y - y') / (x_a - x'_a) to the argmax a (or the reference argmax a' when x_a == x'_a); linear ops
 *   pass multipliers like gradients. Then sum(m * (x - x')) == y - y' exactly, for every tensor x that
 *   separates the seed from the input (summation to delta).
 */
export function refBackward(g: Graph, vals: Vals, seedAt: string, seed: Float64Array, batch: number, mode: Mode, refVals?: Vals): Vals {
  if (mode === 'deeplift' && !refVals) throw new Error("refBackward: mode 'deeplift' needs refVals (a refForward of the reference)");
  const N = batch, grads: Vals = new Map();
  if (seed.length !== N * numel(shapeOf(g, seedAt))) throw new Error(`refBackward: seed for '${seedAt}' needs ${N * numel(shapeOf(g, seedAt))} values, got ${seed.length}`);
  grads.set(seedAt, Float64Array.from(seed));
  const acc = (t: string, d: Float64Array) => { // gradients from several consumers add up
    if (isConst(g, t)) return;
    const prev = grads.get(t);
    if (!prev) grads.set(t, d); else for (let i = 0; i < d.length; i++) prev[i] += d[i];
  };
  // Nodes are in topological order, so in reverse every consumer of a tensor runs before its producer.
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const node = g.nodes[k], dy = grads.get(node.output);
    if (!dy) continue;
    nodeBackward(g, node, vals, dy, N, mode, refVals, acc);
  }
  return grads;
}

function nodeBackward(g: Graph, node: Node, v: Vals, dy: Float64Array, N: number, mode: Mode, ref: Vals | undefined,
  acc: (t: string, d: Float64Array) => void) {
  const op = node.op, xName = node.inputs[0], xs = shapeOf(g, xName), ys = shapeOf(g, node.output);
  const x = v.get(xName)!, dx = new Float64Array(N * numel(xs));
  switch (op.kind) {
    case 'conv': acc(xName, convBackward(dy, xs, op, ys, N)); return;
    case 'act': {
      const xr = mode === 'deeplift' ? ref!.get(xName)! : undefined;
      for (let i = 0; i < dx.length; i++) {
        const a = alphaAt(op, i);
        if (mode === 'guided' && op.fn === 'relu') dx[i] = x[i] > 0 && dy[i] > 0 ? dy[i] : 0;
        else if (mode === 'deconv' && op.fn === 'relu') dx[i] = Math.max(dy[i], 0);
        else if (xr && Math.abs(x[i] - xr[i]) >= DL_EPS) dx[i] = dy[i] * (actF(op, x[i], a) - actF(op, xr[i], a)) / (x[i] - xr[i]);
        else dx[i] = dy[i] * actD(op, x[i], a);
      }
      acc(xName, dx);
      return;
    }
    case 'add': case 'sub': case 'mul': case 'div': case 'max': case 'min': {
      const [aN, bN] = node.inputs, bs = shapeOf(g, bN), b = v.get(bN)!;
      const ia = broadcastIndex(ys, xs, N), ib = broadcastIndex(ys, bs, N);
      const da = new Float64Array(N * numel(xs)), db = new Float64Array(N * numel(bs));
      const ar = mode === 'deeplift' ? ref!.get(aN)! : x, br = mode === 'deeplift' ? ref!.get(bN)! : b;
      for (let o = 0; o < dy.length; o++) { // summing into the broadcast index reduces over broadcast dims
        const [ma, mb] = mode === 'deeplift' ? shapley(op.kind, x[ia[o]], b[ib[o]], ar[ia[o]], br[ib[o]]) : binaryD(op.kind, x[ia[o]], b[ib[o]]);
        da[ia[o]] += dy[o] * ma;
        db[ib[o]] += dy[o] * mb;
      }
      acc(aN, da); acc(bN, db);
      return;
    }
    case 'maxpool': {
      const a = argmaxes(x, xs, op, ys, N);
      if (mode !== 'deeplift') { for (let j = 0; j < dy.length; j++) if (a[j] >= 0) dx[a[j]] += dy[j]; acc(xName, dx); return; }
      const xr = ref!.get(xName)!, ar = argmaxes(xr, xs, op, ys, N);
      for (let j = 0; j < dy.length; j++) {
        if (a[j] < 0) continue;
        const dY = x[a[j]] - xr[ar[j]];                                         // y_j - y'_j
        if (Math.abs(x[a[j]] - xr[a[j]]) >= DL_EPS) dx[a[j]] += dy[j] * dY / (x[a[j]] - xr[a[j]]);
        else if (Math.abs(x[ar[j]] - xr[ar[j]]) >= DL_EPS) dx[ar[j]] += dy[j] * dY / (x[ar[j]] - xr[ar[j]]);
        else dx[a[j]] += dy[j];                                                 // then y_j == y'_j: contributes 0
      }
      acc(xName, dx);
      return;
    }
    case 'avgpool':
      poolWindows(xs, op, ys, N, (j, taps, div) => { for (const t of taps) dx[t] += dy[j] / div; });
      acc(xName, dx);
      return;
    case 'gap': {
      const hw = xs[1] * xs[2];
      for (let i = 0; i < dx.length; i++) dx[i] = dy[Math.floor(i / hw)] / hw;
      acc(xName, dx);
      return;
    }
    case 'linear': // dx (rows,in) = dy (rows,out) w (out,in)
      for (let n = 0; n < dx.length / op.in; n++) for (let o = 0; o < op.out; o++) {
        const d = dy[n * op.out + o];
        for (let i = 0; i < op.in; i++) dx[n * op.in + i] += d * op.w[o * op.in + i];
      }
      acc(xName, dx);
      return;
    case 'affine': {
      const C = xs[0], inner = numel(xs) / C;
      for (let i = 0; i < dx.length; i++) dx[i] = dy[i] * op.scale[Math.floor(i / inner) % C];
      acc(xName, dx);
      return;
    }
    case 'concat': {
      const O = numel(ys.slice(0, (node.op as ConcatOp).axis ?? 0)), M = numel(ys) / O;
      let off = 0;
      for (const t of node.inputs) {
        const m = numel(shapeOf(g, t)) / O, d = new Float64Array(N * O * m);
        for (let q = 0; q < N * O; q++) d.set(dy.subarray(q * M + off, q * M + off + m), q * m);
        acc(t, d);
        off += m;
      }
      return;
    }
    case 'softmax': acc(xName, softmaxBackward(x, mode === 'deeplift' ? ref!.get(xName)! : undefined, v.get(node.output)!, xs, op, dy, N)); return;
    case 'norm': acc(xName, normBackward(x, mode === 'deeplift' ? ref!.get(xName)! : undefined, xs, op, dy, N)); return;
    case 'alias': dx.set(dy); acc(xName, dx); return;
    case 'matmul': {
      const [aN, bN] = node.inputs, b = v.get(bN)!, dl = mode === 'deeplift';
      const { da, db } = matmulBackward(x, b, dl ? ref!.get(aN)! : x, dl ? ref!.get(bN)! : b, xs, shapeOf(g, bN), ys, dy, N);
      acc(aN, da); acc(bN, db);
      return;
    }
    case 'resize': acc(xName, resizeBackward(dy, xs, op, N)); return;
    case 'convtranspose': acc(xName, convTransposeBackward(dy, xs, op, ys, N)); return;
    case 'reduce': acc(xName, reduceBackward(x, mode === 'deeplift' ? ref!.get(xName)! : undefined, xs, op, dy, N)); return;
    case 'transpose': case 'slice': case 'pad': case 'tile': case 'gather': { // dx[n, src(o)] += dy[n, o] (linear: every mode)
      const idx = layoutIndex(op, xs, ys), M = idx.length, Mx = numel(xs);
      for (let j = 0; j < dy.length; j++) { const k = idx[j % M]; if (k >= 0) dx[Math.floor(j / M) * Mx + k] += dy[j]; }
      acc(xName, dx);
      return;
    }
  }
}
