// Resize (opsets 10-18) and Upsample (opsets 7-9): nearest, linear and cubic interpolation of the last two per-sample
// axes (H, W; or W alone of an (N, C, L) input), separable: y[p, o, q] = sum_a sum_b wh[o, a] ww[q, b] x[p, ih[o, a], iw[q, b]]
// with per-axis tap tables (index and weight of up to 4 input positions per output position) computed here at import,
// from ONNX's coordinate transforms, rounding rules and cubic coefficients: shaders/resize.wgsl. Linear in x, so the
// gradient, guided backprop and the DeepLIFT multipliers are one and the same transposed interpolation, computed as a
// gather (no atomics) from the inverted tables (per input position: the outputs that read it and their weights).
// Reference: tests/ref.ts resizeForward / resizeBackward (its own coordinate arithmetic, per output element).
import { BATCH, Shape, numel } from '../graph.js';
import type { Importer } from '../import.js';
import type { OnnxNode } from '../onnx.js';
import type { OnnxImport, OpDef } from './types.js';

export type ResizeMode = 'nearest' | 'linear' | 'cubic';
export type CoordMode = 'half_pixel' | 'pytorch_half_pixel' | 'align_corners' | 'asymmetric' | 'tf_half_pixel_for_nn';
/** 'simple': Upsample's and Resize-10's nearest, floor(o / scale) (their scales are >= 1). */
export type NearestMode = 'round_prefer_floor' | 'round_prefer_ceil' | 'floor' | 'ceil' | 'simple';
/** y (..., OH, OW) from x (..., H, W): per resized axis its input and output size, the scale the coordinate transform
 *  divides by and the resized length it uses (align_corners, pytorch_half_pixel): given scales, in * scale unrounded (as
 *  ONNX defines it); given sizes, out / in and out. An (N, C, L) input resizes L only (H = OH = 1). */
export interface ResizeOp {
  kind: 'resize'; mode: ResizeMode; coord: CoordMode; nearest: NearestMode; cubicA: number; exclude: boolean;
  inSize: [number, number]; outSize: [number, number]; scale: [number, number]; len: [number, number];
}

/** Input coordinate of output position o along one axis (ONNX's coordinate_transformation_mode); outLen is the resized
 *  length, unrounded where scales were given. */
export function sourceCoord(coord: CoordMode | 'simple', o: number, inLen: number, outLen: number, scale: number): number {
  switch (coord) {
    case 'half_pixel': return (o + 0.5) / scale - 0.5;
    case 'pytorch_half_pixel': return outLen > 1 ? (o + 0.5) / scale - 0.5 : 0;
    case 'align_corners': return outLen === 1 ? 0 : (o * (inLen - 1)) / (outLen - 1);
    case 'asymmetric': case 'simple': return o / scale;
    case 'tf_half_pixel_for_nn': return (o + 0.5) / scale;
  }
}
/** ONNX's nearest_mode rounding of a source coordinate (before clamping to the axis). */
export function nearestIndex(mode: NearestMode, v: number): number {
  switch (mode) {
    case 'round_prefer_floor': return v === Math.floor(v) + 0.5 ? Math.floor(v) : Math.round(v);
    case 'round_prefer_ceil': return Math.round(v); // JS rounds halves up
    case 'floor': case 'simple': return Math.floor(v);
    case 'ceil': return Math.ceil(v);
  }
}
/** Keys' cubic convolution weights of the taps floor(v) - 1 .. floor(v) + 2 at fraction t = v - floor(v). */
export function cubicCoeffs(t: number, A: number): number[] {
  const far = (s: number) => ((A * s - 5 * A) * s + 8 * A) * s - 4 * A, near = (s: number) => ((A + 2) * s - (A + 3)) * s * s + 1;
  return [far(t + 1), near(t), near(1 - t), far(2 - t)];
}

/** Taps of one axis: T per output position, index (clamped to the axis: edge padding) and weight. */
export interface AxisTaps { T: number; idx: Uint32Array; w: Float32Array }
export function axisTaps(op: ResizeOp, axis: 0 | 1): AxisTaps {
  const L = op.inSize[axis], O = op.outSize[axis], s = op.scale[axis], len = op.len[axis];
  const T = op.mode === 'nearest' ? 1 : op.mode === 'linear' ? 2 : 4, idx = new Uint32Array(O * T), w = new Float32Array(O * T);
  const clamp = (i: number) => Math.min(Math.max(i, 0), L - 1);
  const coord = op.nearest === 'simple' ? 'simple' : op.coord;
  for (let o = 0; o < O; o++) {
    const v = sourceCoord(coord, o, L, len, s);
    if (op.mode === 'nearest') { idx[o] = clamp(nearestIndex(op.nearest, v)); w[o] = 1; continue; }
    const f = Math.floor(v), t = v - f;
    if (op.mode === 'linear') { idx[2 * o] = clamp(f); idx[2 * o + 1] = clamp(f + 1); w[2 * o] = 1 - t; w[2 * o + 1] = t; continue; }
    const c = cubicCoeffs(t, op.cubicA);
    const inside = (k: number) => !op.exclude || (f - 1 + k >= 0 && f - 1 + k < L);
    const sum = op.exclude ? c.reduce((p, v2, k) => p + (inside(k) ? v2 : 0), 0) : 1;
    for (let k = 0; k < 4; k++) { idx[4 * o + k] = clamp(f - 1 + k); w[4 * o + k] = inside(k) ? c[k] / sum : 0; }
  }
  return { T, idx, w };
}

/** The tables resize.wgsl reads, u32 and f32 side by side: forward taps of H then W, and per axis the inverse (CSR:
 *  per input position the range of entries, each an output position and its weight; zero weights dropped). */
function tables(op: ResizeOp) {
  const th = axisTaps(op, 0), tw = axisTaps(op, 1);
  const invert = (t: AxisTaps, L: number) => {
    const rows: [number, number][][] = Array.from({ length: L }, () => []);
    for (let j = 0; j < t.idx.length; j++) if (t.w[j] !== 0) rows[t.idx[j]].push([Math.floor(j / t.T), t.w[j]]);
    const off = [0];
    for (const r of rows) off.push(off[off.length - 1] + r.length);
    return { off, o: rows.flat().map((e) => e[0]), w: rows.flat().map((e) => e[1]) };
  };
  const ih = invert(th, op.inSize[0]), iw = invert(tw, op.inSize[1]);
  const u = [...th.idx, ...tw.idx, ...ih.off, ...iw.off, ...ih.o, ...iw.o], f = [...th.w, ...tw.w, ...ih.w, ...iw.w];
  const fw = th.idx.length, cho = fw + tw.idx.length, cwo = cho + ih.off.length, che = cwo + iw.off.length, cwe = che + ih.o.length;
  return { TH: th.T, TW: tw.T, u: Uint32Array.from(u), f: Float32Array.from(f), offsets: { fw, cho, cwo, che, cwe, chw: cho, cww: cho + ih.w.length } };
}

/** resize.wgsl's Params at batch N: P planes of H x W (every axis before the resized ones, batch included). */
function params(op: ResizeOp, xs: Shape, N: number, acc: number) {
  const planes = N * numel(xs) / (op.inSize[0] * op.inSize[1]), t = tables(op);
  return { P: planes, H: op.inSize[0], W: op.inSize[1], OH: op.outSize[0], OW: op.outSize[1], TH: t.TH, TW: t.TW, acc, ...t.offsets };
}

export const resize: OpDef<ResizeOp> = {
  kind: 'resize',
  reference: 'resizeForward, resizeBackward',
  shape(_n, op, [x], bad) {
    const r = x.length, hw = r >= 3 ? x.slice(r - 2) : [1, x[r - 1]]; // (C,H,W): H, W; (C,L) or (F): the last axis
    if (hw[0] !== op.inSize[0] || hw[1] !== op.inSize[1]) bad(`resize of [${op.inSize}] on an input ending in [${hw}]`);
    if (op.outSize.some((v) => !(v >= 1))) bad(`output size [${op.outSize}] is empty`);
    return r >= 3 ? [...x.slice(0, r - 2), ...op.outSize] : [...x.slice(0, r - 1), op.outSize[1]];
  },
  macs: (op, out) => numel(out) * (op.mode === 'nearest' ? 1 : op.mode === 'linear' ? 4 : 16),
  upload(u, n, op) {
    const t = tables(op);
    return { w: [u.buffer(`${n.name}.taps_u32`, new Float32Array(t.u.buffer))], b: [u.buffer(`${n.name}.taps_f32`, t.f)], rows: [] };
  },
  // y (P, OH, OW) = separable interpolation of x (P, H, W)
  forward(e, n, op, ref) {
    const xs = e.g.tensors.get(n.inputs[0])!.shape, p = params(op, xs, e.batch, 0), w = e.weights(n);
    return [e.step('resize', 'resize_forward', {}, (ref ? 'ref:' : '') + n.name, p,
      { x: e.buf(n.inputs[0], ref), tu: w.w[0], tf: w.b[0], y: e.buf(n.output, ref) }, p.P * p.OH * p.OW)];
  },
  // dx (P, H, W) = the transposed interpolation of dy (P, OH, OW); linear, so every mode is the gradient
  backward(e, n, op, b) {
    const x = n.inputs[0];
    if (!b.need.has(x)) return [];
    const xs = e.g.tensors.get(x)!.shape, p = params(op, xs, e.batch, b.acc(x)), w = e.weights(n);
    return [e.step('resize', 'resize_backward', {}, b.label, p, { dy: b.dy, tu: w.w[0], tf: w.b[0], dx: b.dx(x) }, p.P * p.H * p.W)];
  },
};

// ------------------------------------------------------------------------------------------------ ONNX import

const COORDS = ['half_pixel', 'pytorch_half_pixel', 'align_corners', 'asymmetric', 'tf_half_pixel_for_nn'];
const NEAREST = ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil'];

/**
 * Per-axis (full rank, batch first) scales or sizes -> the op: only the last two axes (the last one of a rank-3
 * input) may change; the batch and channel axes must keep their size.
 */
function emitResize(im: Importer, n: OnnxNode, base: Omit<ResizeOp, 'kind' | 'inSize' | 'outSize' | 'scale' | 'len'>, scales: number[] | null, sizes: number[] | null) {
  const x = im.shape(n, 0), rank = x.length + 1, full = [BATCH, ...x];
  const given = scales ?? sizes!, what = scales ? 'scales' : 'sizes';
  if (given.length !== rank) im.unsupported(n, `with ${given.length} ${what} for an input of rank ${rank}`);
  if (scales && scales.some((v) => !(v > 0) || !Number.isFinite(v))) im.unsupported(n, `with scales [${scales}] (each must be a positive number)`);
  if (sizes && sizes.some((v, d) => !(Number.isInteger(v) && v >= 1) && !(d === 0 && v === BATCH))) im.unsupported(n, `with sizes [${sizes}] (each must be a positive integer)`);
  const out = full.map((d, k) => (k === 0 ? d : scales ? Math.floor(d * scales[k]) : sizes![k]));
  const first = rank >= 4 ? rank - 2 : rank - 1;
  for (let k = 0; k < first; k++) {
    const same = k === 0 ? (scales ? scales[0] === 1 : sizes![0] === BATCH || sizes![0] === 1) : out[k] === full[k];
    if (!same) im.unsupported(n, `changes axis ${k} (${what} [${given.map((v) => (v === BATCH ? 'N' : v))}]): only the last ${rank >= 4 ? 'two axes (H, W)' : 'axis'} may be resized`);
  }
  if (out.some((v, k) => k > 0 && v < 1)) im.unsupported(n, `gives an empty output [N,${out.slice(1)}]`);
  const ax = rank >= 4 ? [rank - 2, rank - 1] : [-1, rank - 1];
  const at = (v: number[], k: number, d: number) => (k < 0 ? d : v[k]);
  const inSize = ax.map((k) => at(full, k, 1)) as [number, number], outSize = ax.map((k) => at(out, k, 1)) as [number, number];
  const scale = ax.map((k, i) => (k < 0 ? 1 : scales ? scales[k] : outSize[i] / inSize[i])) as [number, number];
  const len = ax.map((_, i) => (scales ? inSize[i] * scale[i] : outSize[i])) as [number, number];
  const op: ResizeOp = { kind: 'resize', ...base, inSize, outSize, scale, len };
  if (inSize[0] === outSize[0] && inSize[1] === outSize[1] && scale[0] === 1 && scale[1] === 1) { im.emit(n, { kind: 'alias' }, [n.inputs[0]]); return; }
  im.emit(n, op, [n.inputs[0]]);
}

/** Resize: opset 10 (X, scales; asymmetric coordinates as Upsample), 11+ (X, roi, scales, sizes; the coordinate and
 *  nearest modes, cubic), 18 (axes, antialias, keep_aspect_ratio_policy). scales and sizes must be constants (folded). */
function resizeImport(im: Importer, n: OnnxNode) {
  const a = im.attrs(n), mode = a.s('mode', 'nearest');
  if (mode !== 'nearest' && mode !== 'linear' && mode !== 'cubic') im.unsupported(n, `with mode='${mode}' (nearest, linear and cubic are supported)`);
  if (im.opset < 11) {
    if (mode === 'cubic') im.unsupported(n, "with mode='cubic' at opset 10 (cubic needs opset 11)");
    const scales = im.constFloat(n, 1, 'scales').data;
    if (mode === 'nearest' && Array.from(scales).some((v) => v < 1)) im.unsupported(n, `nearest downsampling at opset 10 (scales [${Array.from(scales)}]): its rounding is not defined by the opset (export at opset 11+)`);
    emitResize(im, n, { mode: mode as ResizeMode, coord: 'asymmetric', nearest: 'simple', cubicA: -0.75, exclude: false }, Array.from(scales), null);
    return;
  }
  const coord = a.s('coordinate_transformation_mode', 'half_pixel');
  if (coord === 'tf_crop_and_resize') im.unsupported(n, "with coordinate_transformation_mode='tf_crop_and_resize' (crops by roi; not supported)");
  if (!COORDS.includes(coord)) im.unsupported(n, `with coordinate_transformation_mode='${coord}' (supported: ${COORDS.join(', ')})`);
  const nearest = a.s('nearest_mode', 'round_prefer_floor');
  if (mode === 'nearest' && !NEAREST.includes(nearest)) im.unsupported(n, `with nearest_mode='${nearest}' (supported: ${NEAREST.join(', ')})`);
  if (a.i('antialias', 0)) im.unsupported(n, 'with antialias=1 (not supported)');
  const policy = a.s('keep_aspect_ratio_policy', 'stretch');
  if (policy !== 'stretch') im.unsupported(n, `with keep_aspect_ratio_policy='${policy}' (only 'stretch')`);
  const cubicA = a.f('cubic_coeff_a', -0.75), exclude = a.i('exclude_outside', 0) === 1;
  const rank = im.shape(n, 0).length + 1, axes = a.ints('axes', []).map((v) => (v < 0 ? v + rank : v));
  const expand = (v: number[], fill: number) => { // opset 18 axes: the values for those axes only
    if (!axes.length) return v;
    if (v.length !== axes.length) im.unsupported(n, `with ${v.length} values for axes [${axes}]`);
    const f = Array(rank).fill(fill);
    axes.forEach((k, i) => { f[k] = v[i]; });
    return f;
  };
  const present = (i: number) => !!n.inputs[i] && (im.floats.get(n.inputs[i])?.data.length ?? im.ints.get(n.inputs[i])?.data.length ?? 1) > 0;
  const base = { mode: mode as ResizeMode, coord: coord as CoordMode, nearest: nearest as NearestMode, cubicA, exclude };
  if (present(2)) {
    if (present(3)) im.unsupported(n, 'with both scales and sizes (exactly one may be given)');
    emitResize(im, n, base, expand(Array.from(im.constFloat(n, 2, 'scales').data), 1), null);
  } else if (present(3)) {
    const full = [BATCH, ...im.shape(n, 0)];
    emitResize(im, n, base, null, expand(im.constInts(n, 3, 'sizes'), 0).map((v, k) => (axes.length && !axes.includes(k) ? full[k] : v)));
  } else im.unsupported(n, 'without scales or sizes');
}

/** Upsample: opset 7 (scales attribute), 9 (scales input); nearest (floor of o / scale) or linear, asymmetric coordinates. */
function upsampleImport(im: Importer, n: OnnxNode) {
  const a = im.attrs(n), mode = a.s('mode', 'nearest');
  if (mode !== 'nearest' && mode !== 'linear' && mode !== 'bilinear') im.unsupported(n, `with mode='${mode}' (nearest and linear are supported)`);
  const scales = im.opset < 9 ? (n.attrs.get('scales')?.floats ?? []) : Array.from(im.constFloat(n, 1, 'scales').data);
  if (scales.some((v) => v < 1)) im.unsupported(n, `with scales [${scales}] below 1 (Upsample only enlarges)`);
  emitResize(im, n, { mode: mode === 'nearest' ? 'nearest' : 'linear', coord: 'asymmetric', nearest: 'simple', cubicA: -0.75, exclude: false }, scales, null);
}

export const onnx: Record<string, OnnxImport> = { Resize: resizeImport, Upsample: upsampleImport };
/** A ResizeOp of (H, W) by scales or to sizes, as the importer builds it (builder and tests). */
export function resizeOf(inSize: [number, number], o: { mode: ResizeMode; coord?: CoordMode; nearest?: NearestMode; scales?: [number, number];
  sizes?: [number, number]; cubicA?: number; exclude?: boolean }): ResizeOp {
  const s = o.scales, outSize = s ? [Math.floor(inSize[0] * s[0]), Math.floor(inSize[1] * s[1])] as [number, number] : o.sizes!;
  return { kind: 'resize', mode: o.mode, coord: o.coord ?? 'half_pixel', nearest: o.nearest ?? 'round_prefer_floor', cubicA: o.cubicA ?? -0.75,
    exclude: o.exclude ?? false, inSize, outSize, scale: s ?? [outSize[0] / inSize[0], outSize[1] / inSize[1]],
    len: s ? [inSize[0] * s[0], inSize[1] * s[1]] : outSize };
}
