// 2-D transposed convolution (ONNX ConvTranspose: groups, strides, pads, output_padding, output_shape, auto_pad,
// dilations, bias): shaders/convtranspose.wgsl. Its forward is a conv's input gradient, y = conv^T(x) + b, computed
// as a gather (each output position sums the input taps that reach it); its backward is the conv itself,
// dx = conv(dy, w) without bias. Linear in x: the gradient, guided backprop and the DeepLIFT multipliers agree.
// Reference: tests/ref.ts convTransposeForward (a scatter over input taps) / convTransposeBackward.
import { Shape, numel } from '../graph.js';
import type { Enc, OnnxImport, OpDef } from './types.js';
import type { Node } from '../graph.js';

/** w (cin, cout/group, kh, kw), b (cout); pads [top, left, bottom, right] (negative: output_shape larger than the
 *  natural size, the extra rows get the bias); outPad ONNX's output_padding (extra rows at the end). */
export interface ConvTransposeOp { kind: 'convtranspose'; w: Float32Array; b: Float32Array; cout: number; kh: number; kw: number;
  stride: [number, number]; pad: [number, number, number, number]; dil: [number, number]; group: number; outPad: [number, number] }

/** Output size along one axis: s (in - 1) + output_padding + d (k - 1) + 1 - pads. */
export const transposedOut = (size: number, k: number, s: number, p0: number, p1: number, d: number, op: number) => s * (size - 1) + op + d * (k - 1) + 1 - p0 - p1;

function params(e: Enc, n: Node, op: ConvTransposeOp, acc: number) {
  const [C, H, W] = e.g.tensors.get(n.inputs[0])!.shape, [K, OH, OW] = e.g.tensors.get(n.output)!.shape;
  return { N: e.batch, C, H, W, K, OH, OW, KH: op.kh, KW: op.kw, SH: op.stride[0], SW: op.stride[1], PT: op.pad[0], PL: op.pad[1],
    DH: op.dil[0], DW: op.dil[1], G: op.group, acc };
}

export const convtranspose: OpDef<ConvTransposeOp> = {
  kind: 'convtranspose',
  reference: 'convTransposeForward, convTransposeBackward',
  shape(_n, op, [x], bad) {
    if (x.length !== 3) bad('needs a 4-D input (N,C,H,W)');
    const cin = op.w.length / ((op.cout / op.group) * op.kh * op.kw);
    if (cin !== x[0]) bad(`weight expects ${cin} input channels, got ${x[0]}`);
    if (x[0] % op.group || op.cout % op.group) bad(`${x[0]} input / ${op.cout} output channels not divisible by group ${op.group}`);
    const oh = transposedOut(x[1], op.kh, op.stride[0], op.pad[0], op.pad[2], op.dil[0], op.outPad[0]);
    const ow = transposedOut(x[2], op.kw, op.stride[1], op.pad[1], op.pad[3], op.dil[1], op.outPad[1]);
    if (oh < 1 || ow < 1) bad(`output ${oh}x${ow} is empty`);
    return [op.cout, oh, ow];
  },
  // every input element meets cout/group x kh x kw weights once (x per output: divide by the strides' area)
  macs: (op, out) => Math.round(numel(out) * (op.w.length / op.cout) / (op.stride[0] * op.stride[1])),
  upload: (u, n, op) => ({ w: [u.buffer(`${n.name}.w`, op.w)], b: [u.buffer(`${n.name}.b`, op.b)], rows: [] }),
  // y (N,K,OH,OW) = b[k] + sum over c in k's group and taps (i, j) with oh = ih s - pt + i d of x[n,c,ih,iw] w[c,k',i,j]
  forward(e, n, op, ref) {
    const p = params(e, n, op, 0), w = e.weights(n);
    return [e.step('convtranspose', 'convtranspose_forward', {}, (ref ? 'ref:' : '') + n.name, p,
      { x: e.buf(n.inputs[0], ref), w: w.w[0], b: w.b[0], y: e.buf(n.output, ref) }, p.N * p.K * p.OH * p.OW)];
  },
  // dx (N,C,H,W) = conv(dy, w): sum over k in c's group and taps of dy[n,k,ih s - pt + i d, ...] w[c,k',i,j]
  backward(e, n, op, b) {
    const x = n.inputs[0];
    if (!b.need.has(x)) return [];
    const p = params(e, n, op, b.acc(x)), w = e.weights(n);
    return [e.step('convtranspose', 'convtranspose_backward', {}, b.label, p, { dy: b.dy, w: w.w[0], dx: b.dx(x) }, p.N * p.C * p.H * p.W)];
  },
};

/** A ConvTransposeOp with weights U(-a, a), a = sqrt(3 / (cin/group kh kw)) from rand, bias U(-0.5, 0.5) (tests). */
export function convTransposeOf(cin: number, cout: number, k: [number, number], rand: () => number, o: { stride?: [number, number];
  pad?: [number, number, number, number]; dil?: [number, number]; group?: number; outPad?: [number, number] } = {}): ConvTransposeOp {
  const group = o.group ?? 1, a = Math.sqrt(3 / ((cin / group) * k[0] * k[1]));
  return { kind: 'convtranspose', w: Float32Array.from({ length: cin * (cout / group) * k[0] * k[1] }, () => a * (2 * rand() - 1)),
    b: Float32Array.from({ length: cout }, () => rand() - 0.5), cout, kh: k[0], kw: k[1], stride: o.stride ?? [1, 1],
    pad: o.pad ?? [0, 0, 0, 0], dil: o.dil ?? [1, 1], group, outPad: o.outPad ?? [0, 0] };
}

export const onnx: Record<string, OnnxImport> = {
  ConvTranspose(im, n) {
    const a = im.attrs(n), w = im.constFloat(n, 1, 'weight');
    if (w.dims.length !== 4) im.unsupported(n, `weight of shape [${w.dims}] (only 2-D transposed convolution is supported)`);
    const [cin, cg, kh, kw] = w.dims, group = a.i('group', 1), x = im.shape(n, 0) as Shape;
    if (!Number.isInteger(group) || group < 1 || cin % group) im.unsupported(n, `group ${group} with ${cin} input channels`);
    if (x.length !== 3 || x[0] !== cin) im.unsupported(n, `weight of shape [${w.dims}] on input [N,${x}] (needs (N,${cin},H,W))`);
    const cout = cg * group;
    const ks = im.intList(n, 'kernel_shape', [kh, kw], 2, 1);
    if (ks[0] !== kh || ks[1] !== kw) im.unsupported(n, `kernel_shape [${ks}] differs from the weight's ${kh}x${kw}`);
    let b = new Float32Array(cout);
    if (n.inputs[2]) {
      b = Float32Array.from(im.constFloat(n, 2, 'bias').data);
      if (b.length !== cout) im.unsupported(n, `bias has ${b.length} values; the weight gives ${cout} output channels`);
    }
    const s = im.intList(n, 'strides', [1, 1], 2, 1), d = im.intList(n, 'dilations', [1, 1], 2, 1);
    const outPad = im.intList(n, 'output_padding', [0, 0], 2, 0);
    if (outPad.some((v, i) => v >= Math.max(s[i], d[i]))) im.unsupported(n, `output_padding [${outPad}] must be below the stride or dilation [${s}] / [${d}]`);
    const auto = a.s('auto_pad', 'NOTSET'), shape = a.ints('output_shape', []);
    let pad: [number, number, number, number] = [0, 0, 0, 0];
    const natural = (i: number) => s[i] * (x[i + 1] - 1) + outPad[i] + d[i] * ([kh, kw][i] - 1) + 1;
    if (shape.length) { // pads from the wanted size, the total split with C's truncation (ONNX's conformance data): a negative
      // total (output_shape past the natural size) adds rows at the end; SAME_LOWER puts the odd one first
      const want = shape.slice(-2);
      if (shape.length !== 2 && shape.length !== 4) im.unsupported(n, `output_shape [${shape}] (needs H, W or N, C, H, W)`);
      const tot = [0, 1].map((i) => natural(i) - want[i]), lower = auto === 'SAME_LOWER';
      const lo = tot.map((t) => (lower ? t - Math.trunc(t / 2) : Math.trunc(t / 2)));
      pad = [lo[0], lo[1], tot[0] - lo[0], tot[1] - lo[1]];
    } else if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') { // output = input * stride
      const tot = [0, 1].map((i) => Math.max(0, natural(i) - x[i + 1] * s[i]));
      const lo = tot.map((t) => (auto === 'SAME_UPPER' ? Math.floor(t / 2) : t - Math.floor(t / 2)));
      pad = [lo[0], lo[1], tot[0] - lo[0], tot[1] - lo[1]];
    } else if (auto === 'VALID') pad = [0, 0, 0, 0];
    else if (auto === 'NOTSET') { const p = im.intList(n, 'pads', [0, 0, 0, 0], 4, 0); pad = [p[0], p[1], p[2], p[3]]; }
    else im.unsupported(n, `with auto_pad=${auto}`);
    im.emit(n, { kind: 'convtranspose', w: Float32Array.from(w.data), b, cout, kh, kw, stride: [s[0], s[1]], pad, dil: [d[0], d[1]], group,
      outPad: [outPad[0], outPad[1]] }, [n.inputs[0]]);
  },
};
