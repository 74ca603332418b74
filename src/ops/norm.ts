// Row-wise normalisations: LayerNormalization and InstanceNormalization (shaders/norm.wgsl), Softmax and LogSoftmax
// along any axis, anywhere in the graph (shaders/softmax.wgsl). Each normalises rows of a per-sample tensor: a row
// is every element that shares the coordinates outside the normalised axes. The shader headers give the gradients and
// the DeepLIFT rules; both rules are exact (summation to delta holds), built from Rescale secants of the scalar
// nonlinearities (1/sqrt, exp, log) and the two-player split of each product, as binary.wgsl's Mul.
// (BatchNormalization is per-channel affine at inference: the affine record of src/ops/act.ts.)
// Reference: tests/ref.ts normForward / normBackward, softmaxForward / softmaxBackward.
import { Node, Shape, fmt, numel } from '../graph.js';
import type { Importer } from '../import.js';
import type { OnnxNode } from '../onnx.js';
import type { Enc, OnnxImport, OpDef } from './types.js';

/**
 * y = (x - mean) / sqrt(var + eps) * scale + bias over the per-sample axes [axis, rank) (population variance); the
 * per-sample element i takes scale[floor(i / stride) % scale.length] (and bias likewise): LayerNormalization has
 * stride 1 and one value per normalised element, InstanceNormalization (axis 1) stride H*W... and one per channel
 * (of (N, C) it normalises rows of one element: y = bias, as ONNX says).
 */
export interface NormOp { kind: 'norm'; axis: number; eps: number; scale: Float32Array; bias: Float32Array; stride: number }
/** y = softmax (or log-softmax) over the per-sample axes [axis, end) taken as one (ONNX before opset 13 flattens
 *  [axis, rank); from 13 end = axis + 1). */
export interface SoftmaxOp { kind: 'softmax'; axis: number; end: number; log: boolean }

export const norm: OpDef<NormOp> = {
  kind: 'norm',
  reference: 'normForward, normBackward',
  shape(_n, op, [x], bad) {
    if (!(op.axis >= 0 && op.axis <= x.length)) bad(`axis ${op.axis} outside per-sample rank ${x.length}`); // axis = rank: rows of one
    const L = op.scale.length;
    if (op.bias.length !== L || !(op.stride >= 1) || numel(x) % (L * op.stride) !== 0) bad(`${L} scale values of stride ${op.stride} do not tile the input`);
    return x.slice();
  },
  upload: (u, n, op) => ({ w: [u.buffer(`${n.name}.scale`, op.scale)], b: [u.buffer(`${n.name}.bias`, op.bias)], rows: [] }),
  // y (N, G, M) row-wise from x (N, G, M): G rows of M elements per sample
  forward(e, n, op, ref) {
    const w = e.weights(n), p = normParams(e, n, op);
    return [e.step('norm', 'norm_forward', {}, (ref ? 'ref:' : '') + n.name, p,
      { x: e.buf(n.inputs[0], ref), w: w.w[0], b: w.b[0], out: e.buf(n.output, ref) }, e.batch * p.G)];
  },
  // dx (N, G, M) per row from dy, x (and DeepLIFT's x'); guided is the gradient
  backward(e, n, op, b) {
    const x = n.inputs[0];
    if (!b.need.has(x)) return [];
    const dl = b.mode === 'deeplift', p = { ...normParams(e, n, op), acc: b.acc(x) };
    return [e.step('norm', 'norm_backward', { MODE: dl ? 2 : 0 }, b.label, p,
      { x: e.buf(x), xr: e.buf(x, dl), w: e.weights(n).w[0], dy: b.dy, out: b.dx(x) }, e.batch * p.G)];
  },
};

function normParams(e: Enc, n: Node, op: NormOp) {
  const xs = e.g.tensors.get(n.inputs[0])!.shape, M = numel(xs.slice(op.axis));
  return { N: e.batch, G: numel(xs) / M, M, SL: op.scale.length, SD: op.stride, eps: op.eps };
}

/** softmax.wgsl's rows: outer blocks O, row length F, stride (and rows per block) I. */
function rows(e: Enc, n: Node, op: SoftmaxOp) {
  const xs = e.g.tensors.get(n.inputs[0])!.shape;
  return { N: e.batch, O: numel(xs.slice(0, op.axis)), F: numel(xs.slice(op.axis, op.end)), I: numel(xs.slice(op.end)) };
}

export const softmax: OpDef<SoftmaxOp> = {
  kind: 'softmax',
  reference: 'softmaxForward, softmaxBackward',
  shape(_n, op, [x], bad) {
    if (!(op.axis >= 0 && op.axis < op.end && op.end <= x.length)) bad(`axes [${op.axis}, ${op.end}) outside per-sample rank ${x.length}`);
    return x.slice();
  },
  // y = softmax (log-softmax) of x along the rows
  forward(e, n, op, ref) {
    const r = rows(e, n, op);
    return [e.step('softmax', 'softmax_forward', { LOG: op.log ? 1 : 0 }, (ref ? 'ref:' : '') + n.name, r,
      { x: e.buf(n.inputs[0], ref), out: e.buf(n.output, ref) }, r.N * r.O * r.I)];
  },
  // dx from dy and y (gradient), or from x and x' (DeepLIFT); guided is the gradient
  backward(e, n, op, b) {
    const x = n.inputs[0];
    if (!b.need.has(x)) return [];
    const r = rows(e, n, op), dl = b.mode === 'deeplift';
    return [e.step('softmax', 'softmax_backward', { LOG: op.log ? 1 : 0, MODE: dl ? 2 : 0 }, b.label, { ...r, acc: b.acc(x) },
      { x: e.buf(x), xr: e.buf(x, dl), y: e.buf(n.output), dy: b.dy, out: b.dx(x) }, r.N * r.O * r.I)];
  },
};

// ------------------------------------------------------------------------------------------------ ONNX import

/** A full-rank ONNX axis as a per-sample one; the batch axis 0 is refused (a row would mix the images). */
function sampleAxis(im: Importer, n: OnnxNode, axis: number, rank: number): number {
  const v = axis < 0 ? axis + rank : axis;
  if (!(v >= 0 && v < rank)) im.unsupported(n, `with axis=${axis} outside rank ${rank}`);
  if (v === 0) im.unsupported(n, `over the batch axis 0 (axis=${axis}): camgpu never mixes the images of a batch`);
  return v - 1;
}

/** A constant (ONNX dims) broadcast to the per-sample block `to` (numpy rules, aligned at the right), or why not. */
function broadcastTo(c: { dims: number[]; data: Float32Array }, to: Shape): Float32Array | string {
  let dims = c.dims.slice();
  while (dims.length > to.length && dims[0] === 1) dims = dims.slice(1);
  const d = [...Array(to.length - dims.length).fill(1), ...dims];
  if (dims.length > to.length || d.some((v, k) => v !== 1 && v !== to[k])) return `of shape [${c.dims}] does not broadcast to the normalised shape ${fmt(to)}`;
  const out = new Float32Array(numel(to));
  for (let j = 0; j < out.length; j++) {
    let rem = j, src = 0, stride = 1;
    for (let k = to.length - 1; k >= 0; k--) {
      const at = rem % to[k];
      rem = Math.floor(rem / to[k]);
      if (d[k] !== 1) src += at * stride;
      stride *= d[k];
    }
    out[j] = c.data[src];
  }
  return out;
}

function constOf(im: Importer, n: OnnxNode, i: number, what: string, to: Shape, fill: number): Float32Array {
  if (!n.inputs[i]) return new Float32Array(numel(to)).fill(fill);
  const v = broadcastTo(im.constFloat(n, i, what), to);
  if (typeof v === 'string') im.unsupported(n, `${what} ${v}`);
  return v;
}

/**
 * LayerNormalization's Mean (reduce mean over `axes`, kept) and InvStdDev (1/sqrt(mean((x - Mean)^2) + eps), as sub,
 * mul, reduce mean, add, pow -1/2), emitted only for the outputs that are read or are graph outputs.
 */
function stats(im: Importer, n: OnnxNode, axes: number[], eps: number) {
  const [y, meanOut, invOut] = n.outputs, wanted = (o?: string) => !!o && (im.uses.has(o) || im.isGraphOutput(o));
  if (!wanted(meanOut) && !wanted(invOut)) return;
  const x = n.inputs[0], mean = wanted(meanOut) ? meanOut : `${y}:mean`, at = (what: string) => [`${y}:${what}`, `${n.name}:${what}`] as const;
  im.emit(n, { kind: 'reduce', fn: 'mean', axes, keep: true }, [x], undefined, mean, `${n.name}:mean`);
  if (!wanted(invOut)) return;
  const [d, dn] = at('centred'), [sq, sqn] = at('squared'), [v, vn] = at('variance'), [ve, ven] = at('variance+eps'), e = `${y}:epsilon`;
  im.emit(n, { kind: 'sub' }, [x, mean], undefined, d, dn);
  im.emit(n, { kind: 'mul' }, [d, d], undefined, sq, sqn);
  im.emit(n, { kind: 'reduce', fn: 'mean', axes, keep: true }, [sq], undefined, v, vn);
  im.g.tensors.set(e, { name: e, shape: [], data: Float32Array.of(eps) });
  im.emit(n, { kind: 'add' }, [v, e], undefined, ve, ven);
  im.emit(n, { kind: 'act', fn: 'pow', alpha: -0.5, beta: 0 }, [ve], undefined, invOut, `${n.name}:invstddev`);
}

const softmaxImport = (log: boolean): OnnxImport => (im, n) => {
  const s = im.shape(n, 0), rank = s.length + 1, modern = im.opset >= 13;
  const axis = sampleAxis(im, n, im.attrs(n).i('axis', modern ? -1 : 1), rank);
  im.emit(n, { kind: 'softmax', axis, end: modern ? axis + 1 : s.length, log }, [n.inputs[0]]);
};

export const onnx: Record<string, OnnxImport> = {
  Softmax: softmaxImport(false),
  LogSoftmax: softmaxImport(true),
  // opset 17: over [axis, rank); Scale and B broadcast to the normalised shape; the optional Mean and InvStdDev outputs
  // as their own nodes (stats()) where something reads them
  LayerNormalization(im, n) {
    const s = im.shape(n, 0), a = im.attrs(n), axis = sampleAxis(im, n, a.i('axis', -1), s.length + 1), to = s.slice(axis);
    const scale = constOf(im, n, 1, 'Scale', to, 1), bias = constOf(im, n, 2, 'B', to, 0), eps = a.f('epsilon', 1e-5);
    im.emit(n, { kind: 'norm', axis, eps, scale, bias, stride: 1 }, [n.inputs[0]]);
    stats(im, n, s.slice(axis).map((_, k) => axis + k), eps);
  },
  // (N, C, D1, ...): each channel over its spatial axes, scale and B per channel
  InstanceNormalization(im, n) {
    const s = im.shape(n, 0);
    if (s.length < 1) im.unsupported(n, `of [N] (needs (N, C, ...))`);
    const scale = constOf(im, n, 1, 'scale', [s[0]], 1), bias = constOf(im, n, 2, 'B', [s[0]], 0);
    im.emit(n, { kind: 'norm', axis: 1, eps: im.attrs(n).f('epsilon', 1e-5), scale, bias, stride: numel(s.slice(1)) }, [n.inputs[0]]);
  },
};
