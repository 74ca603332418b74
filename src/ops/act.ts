// Element-wise activations and the per-channel affine (an unfolded BatchNormalization): shaders/act.wgsl.
// Reference: tests/ref.ts actF / actD (forward, derivative), the DeepLIFT secant in refBackward.
import { ModelError, numel } from '../graph.js';
import { MODE_ID, OnnxImport, OpDef, PipeSpec } from './types.js';

export type ActFn = 'relu' | 'clip' | 'leakyrelu' | 'sigmoid' | 'hardsigmoid' | 'hardswish';
/** Element-wise activation. clip: [alpha, beta] = [min, max]; leakyrelu: alpha; hardsigmoid: max(0, min(1, alpha x + beta)). */
export interface ActOp { kind: 'act'; fn: ActFn; alpha: number; beta: number }
/** Per-channel y = x * scale[c] + shift[c]: a BatchNormalization that could not be folded into a conv. */
export interface AffineOp { kind: 'affine'; scale: Float32Array; shift: Float32Array }

/** act.wgsl's FN override. */
const ACT_ID: Record<ActFn, number> = { relu: 0, clip: 1, leakyrelu: 2, sigmoid: 3, hardsigmoid: 4, hardswish: 5 };
/** Activations the conv kernels apply in their epilogue (conv2d.wgsl p.act). */
const CONV_ACT: Partial<Record<ActFn, number>> = { relu: 1, clip: 2, leakyrelu: 3 };

export const act: OpDef<ActOp> = {
  kind: 'act',
  reference: 'actF, actD',
  shape: (_n, _op, [x]) => x.slice(),
  pipelines(_m, _n, op) {
    const FN = ACT_ID[op.fn];
    return [['act', 'act_forward', { FN }], ...[0, 1, 2].map((MODE): PipeSpec => ['act', 'act_backward', { FN, MODE }])];
  },
  // y (E) = f(x (E))
  forward(e, n, op, ref) {
    const E = e.batch * numel(e.g.tensors.get(n.inputs[0])!.shape);
    return [e.step('act', 'act_forward', { FN: ACT_ID[op.fn] }, (ref ? 'ref:' : '') + n.name, { E, alpha: op.alpha, beta: op.beta },
      { x: e.buf(n.inputs[0], ref), out: e.buf(n.output, ref) }, E)];
  },
  // dx (E) = dy * f'(x), guided: relu gates on dy > 0 too, DeepLIFT: dy * secant(x, x')
  backward(e, n, op, b) {
    const x = n.inputs[0];
    if (!b.need.has(x)) return [];
    const E = e.batch * numel(e.g.tensors.get(x)!.shape), dl = b.mode === 'deeplift';
    return [e.step('act', 'act_backward', { FN: ACT_ID[op.fn], MODE: MODE_ID[b.mode] }, b.label, { E, acc: b.acc(x), alpha: op.alpha, beta: op.beta },
      { x: e.buf(x), xr: dl ? e.buf(x, true) : e.buf(x), dy: b.dy, out: b.dx(x) }, E)];
  },
  convEpilogue: (op) => CONV_ACT[op.fn],
};

export const affine: OpDef<AffineOp> = {
  kind: 'affine',
  reference: 'nodeForward/nodeBackward case affine',
  shape: (_n, op, [x], bad) => (x.length >= 1 && x[0] === op.scale.length ? x.slice() : bad(`${op.scale.length} channels on input of ${x[0]}`)),
  pipelines: () => [['act', 'affine_forward', {}], ['act', 'affine_backward', {}]],
  upload: (u, n, op) => ({ w: [u.buffer(`${n.name}.scale`, op.scale)], b: [u.buffer(`${n.name}.shift`, op.shift)], rows: [] }),
  // y (N,C,...) = x * scale[c] + shift[c]
  forward(e, n, _op, ref) {
    const xs = e.g.tensors.get(n.inputs[0])!.shape, E = e.batch * numel(xs), w = e.weights(n);
    return [e.step('act', 'affine_forward', {}, (ref ? 'ref:' : '') + n.name, { E, C: xs[0], HW: numel(xs.slice(1)) },
      { x: e.buf(n.inputs[0], ref), xr: w.w[0], dy: w.b[0], out: e.buf(n.output, ref) }, E)];
  },
  // dx = dy * scale[c] (the shader reads dy from x's binding and scale from xr's); linear, so every mode agrees
  backward(e, n, _op, b) {
    const x = n.inputs[0];
    if (!b.need.has(x)) return [];
    const xs = e.g.tensors.get(x)!.shape, E = e.batch * numel(xs);
    return [e.step('act', 'affine_backward', {}, b.label, { E, acc: b.acc(x), C: xs[0], HW: numel(xs.slice(1)) }, { x: b.dy, xr: e.weights(n).w[0], out: b.dx(x) }, E)];
  },
};

const simple = (fn: ActFn, alpha = 0, beta = 0): OnnxImport => (im, n) => im.emit(n, { kind: 'act', fn, alpha, beta }, [n.inputs[0]]);

export const onnx: Record<string, OnnxImport> = {
  Relu: simple('relu'),
  Sigmoid: simple('sigmoid'),
  HardSwish: simple('hardswish', 1 / 6, 0.5),
  LeakyRelu: (im, n) => simple('leakyrelu', im.attrs(n).f('alpha', 0.01))(im, n),
  HardSigmoid: (im, n) => { const a = im.attrs(n); simple('hardsigmoid', a.f('alpha', 0.2), a.f('beta', 0.5))(im, n); },
  Clip(im, n) {
    const a = im.attrs(n);
    const bound = (i: number, attr: string, d: number) => (n.inputs[i] ? im.scalar(n, i, attr) : a.f(attr, d));
    simple('clip', bound(1, 'min', -3.4e38), bound(2, 'max', 3.4e38))(im, n);
  },
  BatchNormalization(im, n) {
    const a = im.attrs(n);
    if (a.i('training_mode', 0)) im.unsupported(n, 'with training_mode=1');
    const [scale, bias, mean, vari] = [1, 2, 3, 4].map((i) => im.constFloat(n, i, ['scale', 'B', 'mean', 'var'][i - 1]).data);
    const eps = a.f('epsilon', 1e-5), C = scale.length;
    for (const [v, what] of [[bias, 'B'], [mean, 'mean'], [vari, 'var']] as const)
      if (v.length !== C) throw new ModelError(`node '${n.name}' (BatchNormalization): ${what} has ${v.length} values, scale has ${C}`);
    const mul = scale.map((s, c) => s / Math.sqrt(vari[c] + eps)), add = bias.map((b, c) => b - mean[c] * mul[c]);
    if (im.foldIntoConv(n, mul, add)) return;
    const s = im.shape(n, 0);
    if (s.length < 1 || mul.length !== s[0]) im.unsupported(n, `with ${mul.length} channels on input [N,${s}]`);
    im.emit(n, { kind: 'affine', scale: mul, shift: add }, [n.inputs[0]]);
  },
};
