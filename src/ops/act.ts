// Element-wise activations (the table of functions is src/ops/acts.ts) and the per-channel affine (an unfolded
// BatchNormalization): shaders/act.wgsl. Reference: tests/ref.ts actF / actD (forward, derivative), the DeepLIFT
// secant in nodeBackward case act.
import { ModelError, Node, Shape, numel } from '../graph.js';
import type { Importer } from '../import.js';
import type { OnnxNode } from '../onnx.js';
import { ACTS, ActFn } from './acts.js';
import { Buf, Enc, MODE_ID, OnnxImport, OpDef } from './types.js';

export type { ActFn } from './acts.js';
/**
 * y = f(x) element-wise, parameters alpha, beta as in the table (clip: [min, max]; hardsigmoid: max(0, min(1,
 * alpha x + beta)); selu: alpha, gamma = beta; pow: x^alpha). With `alphas`, alpha varies along a block of axes:
 * element i of (N, ...) takes alphas[floor(i / inner) % alphas.length] (PRelu's slope, Pow's exponent tensor).
 */
export interface ActOp { kind: 'act'; fn: ActFn; alpha: number; beta: number; alphas?: Float32Array; inner?: number }
/** Per-channel y = x * scale[c] + shift[c]: a BatchNormalization that could not be folded into a conv. */
export interface AffineOp { kind: 'affine'; scale: Float32Array; shift: Float32Array }

/** Activations the conv kernels apply in their epilogue (conv2d.wgsl p.act), with scalar parameters only. */
const CONV_ACT: Partial<Record<ActFn, number>> = { relu: 1, clip: 2, leakyrelu: 3 };
/** act.wgsl overrides of an op: the function and whether alpha is per element (PER). */
const consts = (op: ActOp) => ({ FN: ACTS[op.fn].id, PER: op.alphas ? 1 : 0 });
/** Params and bindings shared by both entry points: sizes, parameters, the per-element alphas (C values of stride HW). */
function actArgs(e: Enc, n: Node, op: ActOp) {
  const E = e.batch * numel(e.g.tensors.get(n.inputs[0])!.shape);
  const params = { E, alpha: op.alpha, beta: op.beta, C: op.alphas?.length ?? 0, HW: op.inner ?? 0 };
  const alphas: Record<string, Buf> = op.alphas ? { alphas: e.weights(n).w[0] } : {};
  return { E, params, alphas };
}

export const act: OpDef<ActOp> = {
  kind: 'act',
  reference: 'actF, actD',
  shape: (_n, op, [x], bad) => (!op.alphas || numel(x) % (op.alphas.length * op.inner!) === 0 ? x.slice()
    : bad(`${op.alphas.length} values of alpha (stride ${op.inner}) do not tile the input`)),
  upload: (u, n, op) => ({ w: op.alphas ? [u.buffer(`${n.name}.alphas`, op.alphas)] : [], b: [], rows: [] }), // PRelu's slope, Pow's exponents
  // y (E) = f(x (E))
  forward(e, n, op, ref) {
    const { E, params, alphas } = actArgs(e, n, op);
    return [e.step('act', 'act_forward', consts(op), (ref ? 'ref:' : '') + n.name, params, { x: e.buf(n.inputs[0], ref), ...alphas, out: e.buf(n.output, ref) }, E)];
  },
  // dx (E) = dy * f'(x), guided: relu gates on dy > 0 too, deconvnet: relu passes relu(dy), DeepLIFT: dy * secant(x, x')
  backward(e, n, op, b) {
    const x = n.inputs[0];
    if (!b.need.has(x)) return [];
    const { E, params, alphas } = actArgs(e, n, op), dl = b.mode === 'deeplift';
    return [e.step('act', 'act_backward', { ...consts(op), MODE: MODE_ID[b.mode] }, b.label, { ...params, acc: b.acc(x) },
      { x: e.buf(x), xr: dl ? e.buf(x, true) : e.buf(x), dy: b.dy, ...alphas, out: b.dx(x) }, E)];
  },
  convEpilogue: (op) => (op.alphas ? undefined : CONV_ACT[op.fn]),
};

export const affine: OpDef<AffineOp> = {
  kind: 'affine',
  reference: 'nodeForward/nodeBackward case affine',
  shape: (_n, op, [x], bad) => (x.length >= 1 && x[0] === op.scale.length ? x.slice() : bad(`${op.scale.length} channels on input of ${x[0]}`)),
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

// ------------------------------------------------------------------------------------------------ ONNX import

const emitAct = (im: Importer, n: OnnxNode, fn: ActFn, alpha = 0, beta = 0, per?: { alphas: Float32Array; inner: number }) =>
  im.emit(n, { kind: 'act', fn, alpha, beta, ...per }, [n.inputs[0]]);
/** A row's import: its ONNX attributes into alpha and beta. */
const fromTable = (fn: ActFn): OnnxImport => (im, n) => {
  const a = im.attrs(n), r = ACTS[fn];
  emitAct(im, n, fn, r.alpha ? a.f(...r.alpha) : 0, r.beta ? a.f(...r.beta) : 0);
};

/**
 * A constant input (PRelu's slope, Pow's exponent) broadcast to the activation x (N, ...s) as ONNX's unidirectional
 * broadcasting says: a scalar, or the values over the block of axes where it is not 1, tiled to that block
 * ({ alphas, inner }: element i takes alphas[floor(i / inner) % alphas.length]).
 */
function perElement(im: Importer, n: OnnxNode, i: number, what: string, s: Shape): number | { alphas: Float32Array; inner: number } {
  const c = im.constant(n.inputs[i]);
  if (!c) im.unsupported(n, `with ${what} '${n.inputs[i]}' computed from the input (only a constant ${what} is supported)`);
  if (c.data.length === 1) return c.data[0];
  if (c.dims.length > s.length + 1) im.unsupported(n, `${what} of shape [${c.dims}] has more axes than the input [N,${s}]`);
  const d = [...Array(s.length + 1 - c.dims.length).fill(1), ...c.dims], ps = d.slice(1);
  if (d[0] !== 1) im.unsupported(n, `${what} of shape [${c.dims}] varies along the batch axis`);
  if (ps.some((v, k) => v !== 1 && v !== s[k])) im.unsupported(n, `${what} of shape [${c.dims}] does not broadcast to the input [N,${s}]`);
  const lo = ps.findIndex((v) => v !== 1), hi = ps.length - 1 - [...ps].reverse().findIndex((v) => v !== 1);
  const block = s.slice(lo, hi + 1), alphas = new Float32Array(numel(block));
  // tile the constant (shape ps[lo..hi], 1 where it broadcasts) to the block
  for (let j = 0; j < alphas.length; j++) {
    let rem = j, src = 0, stride = 1;
    for (let k = block.length - 1; k >= 0; k--) {
      const pk = ps[lo + k], at = rem % block[k];
      rem = Math.floor(rem / block[k]);
      if (pk !== 1) src += at * stride;
      stride *= pk;
    }
    alphas[j] = c.data[src];
  }
  return { alphas, inner: numel(s.slice(hi + 1)) };
}
const withAlpha = (im: Importer, n: OnnxNode, fn: ActFn, p: ReturnType<typeof perElement>) =>
  (typeof p === 'number' ? emitAct(im, n, fn, p) : emitAct(im, n, fn, 0, 0, p));

/** ONNX ops of this family whose importer itself checks a constant first input (refusing it precisely). */
export const CONST_FIRST = ['Pow'];

export const onnx: Record<string, OnnxImport> = {
  ...Object.fromEntries((['relu', 'sigmoid', 'leakyrelu', 'hardsigmoid', 'tanh', 'exp', 'log', 'sqrt', 'reciprocal', 'neg', 'abs', 'erf',
    'elu', 'selu', 'celu', 'softplus', 'softsign', 'mish'] as ActFn[]).map((fn) => [ACTS[fn].onnx, fromTable(fn)])),
  HardSwish: (im, n) => emitAct(im, n, 'hardswish', 1 / 6, 0.5),
  Clip(im, n) {
    const a = im.attrs(n);
    const bound = (i: number, attr: string, d: number) => (n.inputs[i] ? im.scalar(n, i, attr) : a.f(attr, d));
    emitAct(im, n, 'clip', bound(1, 'min', -3.4e38), bound(2, 'max', 3.4e38));
  },
  Gelu(im, n) {
    const approx = im.attrs(n).s('approximate', 'none');
    if (approx !== 'none' && approx !== 'tanh') im.unsupported(n, `with approximate='${approx}' (only 'none' and 'tanh')`);
    emitAct(im, n, approx === 'tanh' ? 'gelu_tanh' : 'gelu');
  },
  // PRelu: x > 0 ? x : slope x, the slope a constant broadcast to x (a scalar slope is a LeakyRelu)
  PRelu: (im, n) => withAlpha(im, n, 'leakyrelu', perElement(im, n, 1, 'slope', im.shape(n, 0))),
  // Pow with a constant exponent (a scalar or a tensor broadcast to x); an exponent computed from the input is refused
  Pow(im, n) {
    if (!im.isVar(n.inputs[0])) im.unsupported(n, `of the constant base '${n.inputs[0]}' (only an activation raised to a constant exponent)`);
    withAlpha(im, n, 'pow', perElement(im, n, 1, 'exponent', im.shape(n, 0)));
  },
  BatchNormalization(im, n) {
    const a = im.attrs(n);
    if (im.intIn(n, 'training_mode', 0, 0, 1)) im.unsupported(n, 'with training_mode=1');
    if (im.intIn(n, 'spatial', 1, 0, 1) !== 1) im.unsupported(n, 'with spatial=0 (statistics per element, opset 7-8)');
    const [scale, bias, mean, vari] = [1, 2, 3, 4].map((i) => im.constFloat(n, i, ['scale', 'B', 'mean', 'var'][i - 1]).data);
    const eps = a.f('epsilon', 1e-5), C = scale.length;
    for (const [v, what] of [[bias, 'B'], [mean, 'mean'], [vari, 'var']] as const)
      if (v.length !== C) throw new ModelError(`node '${n.name}' (BatchNormalization): ${what} has ${v.length} values, scale has ${C}`);
    if (!(eps >= 0)) im.unsupported(n, `epsilon ${eps} (must be >= 0)`);
    const bad = vari.findIndex((v) => !(v + eps > 0));
    if (bad >= 0) im.unsupported(n, `var '${n.inputs[4]}'[${bad}] + epsilon = ${vari[bad] + eps} (must be > 0)`);
    const mul = scale.map((s, c) => s / Math.sqrt(vari[c] + eps)), add = bias.map((b, c) => b - mean[c] * mul[c]);
    if (im.foldIntoConv(n, mul, add)) return;
    const s = im.shape(n, 0);
    if (s.length < 1 || mul.length !== s[0]) im.unsupported(n, `with ${mul.length} channels on input [N,${s}]`);
    im.emit(n, { kind: 'affine', scale: mul, shift: add }, [n.inputs[0]]);
  },
};
