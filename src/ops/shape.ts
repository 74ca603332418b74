// Layout ops: channel Concat (shaders/copy.wgsl; a constant input, such as ViT's class token expanded to the batch, is
// broadcast over the batch) and aliases (Flatten,
// Reshape, Squeeze, Unsqueeze, Dropout, Identity: a new shape over the same data, no dispatch).
// Reference: tests/ref.ts nodeForward/nodeBackward cases concat, alias.
import { BATCH, Shape, fmt, isConst, numel } from '../graph.js';
import type { OnnxImport, OpDef } from './types.js';

export interface ConcatOp { kind: 'concat'; axis?: number } // along per-sample axis `axis` (default 0, the channels)
export interface AliasOp { kind: 'alias' }     // new shape, same data

export const concat: OpDef<ConcatOp> = {
  kind: 'concat',
  reference: 'nodeForward/nodeBackward case concat',
  shape(_n, op, ins, bad) {
    const x = ins[0], a = op.axis ?? 0;
    if (!(a >= 0 && a < x.length)) bad(`axis ${a} outside per-sample rank ${x.length}`);
    for (const s of ins) if (s.length !== x.length || s.some((d, i) => i !== a && d !== x[i])) bad(`inputs differ outside axis ${a}`);
    return x.map((d, i) => (i === a ? ins.reduce((t, s) => t + s[a], 0) : d));
  },
  // y (N*O, sum R_k) gets x_k (N*O, R_k) at column offset Y0 = sum_{j<k} R_j: O blocks per sample (the axes before the
  // concat axis), R_k = x_k's size from the concat axis on; a constant (one for every sample, O = 1) has XS = 0
  forward(e, n, op, ref) {
    const ys = e.g.tensors.get(n.output)!.shape, O = numel(ys.slice(0, op.axis ?? 0)), N = e.batch * O, YS = numel(ys) / O, L = (ref ? 'ref:' : '') + n.name;
    let Y0 = 0;
    return n.inputs.map((i, k) => {
      const R = numel(e.g.tensors.get(i)!.shape) / O;
      const s = e.step('copy', 'concat_forward', {}, `${L}[${k}]`, { N, R, XS: isConst(e.g, i) ? 0 : R, YS, Y0 }, { x: e.buf(i, ref), y: e.buf(n.output, ref) }, N * R);
      Y0 += R;
      return s;
    });
  },
  // dx_k = dy[:, Y0 : Y0 + R_k] per block
  backward(e, n, op, b) {
    const ys = e.g.tensors.get(n.output)!.shape, O = numel(ys.slice(0, op.axis ?? 0)), N = e.batch * O, YS = numel(ys) / O;
    let Y0 = 0;
    return n.inputs.flatMap((i, k) => {
      const R = numel(e.g.tensors.get(i)!.shape) / O, off = Y0;
      Y0 += R;
      return b.need.has(i) && !isConst(e.g, i) ? [e.step('copy', 'concat_backward', {}, `${b.label}[${k}]`, { N, R, XS: R, YS, Y0: off, acc: b.acc(i) }, { x: b.dy, y: b.dx(i) }, N * R)] : [];
    });
  },
};

export const alias: OpDef<AliasOp> = {
  kind: 'alias',
  reference: 'nodeForward case alias (a copy), nodeBackward (the gradient passes through)',
  shape: (_n, _op, [x]) => x.slice(), // the importer sets the new shape
  forward: () => [],
  backward: () => [],
};

const keep = (im: Parameters<OnnxImport>[0], n: Parameters<OnnxImport>[1], out: Shape) => im.emit(n, { kind: 'alias' }, [n.inputs[0]], out);

/** Concat may start with a constant (the class token before the patch tokens). */
export const CONST_FIRST = ['Concat'];

export const onnx: Record<string, OnnxImport> = {
  Dropout: (im, n) => keep(im, n, im.shape(n, 0).slice()),
  Identity: (im, n) => keep(im, n, im.shape(n, 0).slice()),
  Flatten(im, n) {
    // (d0, ..., d_{a-1}, ...) -> (d0 * ... * d_{a-1}, rest): the batch stays alone in axis 0 only when the axes that
    // join it have size 1 (axis 1, or Flatten(axis=2) of (N, 1, T, D))
    const given = im.attrs(n).i('axis', 1), s = im.shape(n, 0), axis = given < 0 ? given + s.length + 1 : given;
    if (!(axis >= 0 && axis <= s.length + 1)) im.unsupported(n, `with axis=${given} outside [-${s.length + 1}, ${s.length + 1}] for rank ${s.length + 1}`);
    if (axis === 0) im.unsupported(n, `with axis=${given} of [N,${s}] gives [1,N*${numel(s)}]: it folds the batch into one row`);
    const joined = s.slice(0, axis - 1);
    if (joined.some((d) => d !== 1))
      im.unsupported(n, `with axis=${given} of [N,${s}] gives [N*${numel(joined)},${numel(s.slice(axis - 1))}]: it merges the batch with ${axis === 2 ? 'axis 1' : `axes 1..${axis - 1}`} (only axis=1, or one after size-1 axes, keeps the batch)`);
    keep(im, n, [numel(s.slice(axis - 1))]);
  },
  Reshape(im, n) {
    const s = im.shape(n, 0), t = im.constInts(n, 1, 'shape');
    if (im.intIn(n, 'allowzero', 0, 0, 1) && t.includes(0)) im.unsupported(n, `with allowzero=1 and a 0 in shape [${t}] (zero-size tensors are not supported)`);
    if (t.some((v) => v < -1 && v !== BATCH)) im.unsupported(n, `to [${t}]: dimensions must be >= -1`);
    if (!(t[0] === BATCH || t[0] === -1 || t[0] === 0 || t[0] === 1))
      im.unsupported(n, `to [${t.map((v) => (v === BATCH ? 'N' : v))}]: the first dimension must stay the batch`);
    const rest = t.slice(1).map((v, i) => (v === 0 ? s[i] : v === BATCH ? im.unsupported(n, 'moves the batch dimension') : v));
    const known = rest.filter((v) => v !== -1).reduce((p, v) => p * v, 1);
    const out = rest.map((v) => (v === -1 ? numel(s) / known : v));
    if (t[0] === -1 && rest.includes(-1)) im.unsupported(n, 'with two -1 dimensions');
    if (numel(out) !== numel(s)) im.unsupported(n, `of per-sample shape ${fmt(s)} to ${fmt(out)} changes the element count`);
    keep(im, n, out);
  },
  Squeeze: (im, n) => squeeze(im, n, true),
  Unsqueeze: (im, n) => squeeze(im, n, false),
  // along any per-sample axis; a constant input must be the same for every sample: Expand-ed to the batch (ViT's class
  // token), (1, ...) per sample, and concatenated along the first per-sample axis
  Concat(im, n) {
    const v = n.inputs.find((i) => im.isVar(i)) ?? im.unsupported(n, 'of constants only');
    const s = im.shape(n, n.inputs.indexOf(v)), given = im.attrs(n).i('axis', 1), axis = given < 0 ? given + s.length + 1 : given;
    if (!(axis >= 0 && axis <= s.length)) im.unsupported(n, `with axis=${given} outside rank ${s.length + 1}`);
    if (axis === 0) im.unsupported(n, `with axis=${given}: along the batch axis 0 (camgpu never joins samples)`);
    for (const i of n.inputs) {
      if (im.isVar(i)) continue;
      const c = im.floats.get(i);
      if (!c || !im.batchConsts.has(i) || c.dims.length !== s.length + 1 || c.dims[0] !== 1 || axis !== 1)
        return im.unsupported(n, `of constant input '${i}' (only activations, or a constant Expand-ed to the batch size along axis 1, can be concatenated)`);
      if (!im.g.tensors.has(i)) im.g.tensors.set(i, { name: i, shape: c.dims.slice(1), data: c.data });
    }
    im.emit(n, axis === 1 ? { kind: 'concat' } : { kind: 'concat', axis: axis - 1 }, n.inputs);
  },
};

function squeeze(im: Parameters<OnnxImport>[0], n: Parameters<OnnxImport>[1], sq: boolean) {
  const s = im.shape(n, 0);
  const axes = n.inputs[1] ? im.constInts(n, 1, 'axes') : im.attrs(n).ints('axes', []);
  const rank = sq ? s.length + 1 : s.length + 1 + axes.length;
  const ax = axes.map((v) => (v < 0 ? v + rank : v));
  const out0 = ax.findIndex((v) => !(v >= 0 && v < rank));
  if (out0 >= 0) im.unsupported(n, `with axis ${axes[out0]} outside rank ${rank}`);
  if (new Set(ax).size !== ax.length) im.unsupported(n, `with axes [${axes}] naming an axis twice`);
  if (ax.includes(0)) im.unsupported(n, 'on the batch axis 0');
  let out: Shape;
  if (sq) {
    out = ax.length ? s.filter((_, i) => !ax.includes(i + 1)) : s.filter((d) => d !== 1);
    for (const i of ax) if (s[i - 1] !== 1) im.unsupported(n, `of axis ${i} with size ${s[i - 1]}`);
  } else {
    out = s.slice();
    for (const i of ax.sort((p, q) => p - q)) out.splice(i - 1, 0, 1);
  }
  keep(im, n, out);
}
