// 2-D convolution (groups, strides, pads, dilations): shaders/conv2d.wgsl. Kernel choice, tiles, Winograd weights and
// the backward-as-forward (transposed) conv live in src/conv.ts, shared with the tuner.
// Reference: tests/ref.ts convForward / convBackward (convMacs).
import { Node, Shape, numel, windowOut } from '../graph.js';
import { ConvKernels, convKP } from '../conv.js';
import type { Buf, Enc, OnnxImport, OpDef, Dispatch } from './types.js';

/** Convolution: w (cout, cin/group, kh, kw), b (cout); pads [top, left, bottom, right]. */
export interface ConvOp { kind: 'conv'; w: Float32Array; b: Float32Array; cout: number; kh: number; kw: number;
  stride: [number, number]; pad: [number, number, number, number]; dil: [number, number]; group: number }
/** A fused epilogue: conv2d.wgsl's activation id and its parameters. */
export interface ConvAct { id: number; alpha: number; beta: number }

/** The plan's side of a conv: its kernel choice at this batch, Winograd's scratch and weights, the transposed conv. */
export interface ConvEnc {
  kernels(n: Node): ConvKernels;
  /** Winograd tiles per dispatch at this batch (a multiple of 16). */
  chunk(n: Node, w: { m: number; T: number }): number;
  /** Winograd's transformed input V, GEMM output M and the zero bias its GEMMs read. */
  scratch(): { V: Buf; M: Buf; zero: Buf };
  winogradWeights(n: Node, m: 2 | 4): Buf;
  /** The backward to n's input as a forward conv node (weights uploaded), or null. */
  transposed(n: Node): Node | null;
}

/** conv2d.wgsl's Params: x (C,H,W) -> y (K,OH,OW); act and res a fused epilogue, wino Winograd's tiling, wrep the
 *  weight sets of conv2d_forward_1x1 (Winograd's GEMMs). */
function params(op: ConvOp, [C, H, W]: Shape, [K, OH, OW]: Shape, N: number, acc: number, act?: ConvAct, res = false,
  wino?: { TW: number; T: number; T4: number; t0: number }, wrep = 1) {
  return { N, C, H, W, K, OH, OW, KH: op.kh, KW: op.kw, SH: op.stride[0], SW: op.stride[1], PT: op.pad[0], PL: op.pad[1],
    DH: op.dil[0], DW: op.dil[1], G: op.group, KP: convKP(op.cout), acc, act: act?.id ?? 0, alpha: act?.alpha ?? 0, beta: act?.beta ?? 0,
    res: res ? 1 : 0, wrep, ...(wino ?? {}) };
}
/** The shape of Winograd's GEMMs as a 1x1 conv to K channels (its weights are never read from here). */
const gemmOp = (K: number): ConvOp => ({ kind: 'conv', w: new Float32Array(0), b: new Float32Array(0), cout: K, kh: 1, kw: 1, stride: [1, 1], pad: [0, 0, 0, 0], dil: [1, 1], group: 1 });

/** A conv's forward dispatches, X (N,C,H,W) -> Y (N,K,OH,OW) [+ R, act]: one conv2d kernel, or Winograd's three per
 *  chunk of tiles (input transform, the (m+2)^2 GEMMs, output transform). Fused units call it too. */
export function convForward(e: Enc, n: Node, L: string, X: Buf, R: Buf | null, Y: Buf, act?: ConvAct, acc = 0): Dispatch[] {
  const op = n.op as ConvOp, N = e.batch, k = e.conv.kernels(n), w = e.weights(n);
  const xs = e.g.tensors.get(n.inputs[0])!.shape, ys = e.g.tensors.get(n.output)!.shape, [C] = xs, [K] = ys;
  const r: Record<string, Buf> = R ? { r: R } : {};
  if (!k.wino) return [e.step('conv2d', k.forward, k.forwardConsts, L, params(op, xs, ys, N, acc, act, !!R), { x: X, w: w.w[0], b: w.b[0], ...r, y: Y }, N * k.forwardThreads)];
  const { m, TW } = k.wino, E = (m + 2) ** 2, { TK, TP } = k.forwardConsts, { V, M, zero } = e.conv.scratch(), chunk = e.conv.chunk(n, k.wino), steps: Dispatch[] = [];
  for (let t0 = 0; t0 < k.wino.T; t0 += chunk) { // the image's m x m tiles, a chunk at a time through the scratch
    const T = Math.min(chunk, k.wino.T - t0), T4 = Math.ceil(T / 16) * 16, j = steps.length;
    const wp = params(op, xs, ys, N, acc, act, !!R, { TW, T, T4, t0 });
    const gemm = params(gemmOp(K), [C, 1, T4], [K, 1, T4], E * N, 0, undefined, false, undefined, E);
    steps.push(
      e.step('conv2d', `${k.forward}_input`, {}, `${L}[${j}]`, wp, { x: X, y: V }, N * C * T),
      e.step('conv2d', 'conv2d_forward_1x1', { TK, TP }, `${L}[${j + 1}]`, gemm, { x: V, w: e.conv.winogradWeights(n, m), b: zero, y: M }, E * N * Math.ceil(K / TK) * (T4 / TP)),
      e.step('conv2d', `${k.forward}_output`, {}, `${L}[${j + 2}]`, wp, { x: M, b: w.b[0], ...r, y: Y }, N * K * T));
  }
  return steps;
}

export const conv: OpDef<ConvOp> = {
  kind: 'conv',
  reference: 'convForward, convBackward (convMacs)',
  shape(_n, op, [x], bad) {
    if (x.length !== 3) bad('needs a 4-D input (N,C,H,W)');
    const oh = windowOut(x[1], op.kh, op.stride[0], op.pad[0], op.pad[2], op.dil[0]);
    const ow = windowOut(x[2], op.kw, op.stride[1], op.pad[1], op.pad[3], op.dil[1]);
    if (oh < 1 || ow < 1) bad(`window ${op.kh}x${op.kw} does not fit the input`);
    const cin = op.w.length / (op.cout * op.kh * op.kw);
    if (cin * op.group !== x[0]) bad(`weight expects ${cin * op.group} input channels (group ${op.group}), got ${x[0]}`);
    if (op.cout % op.group) bad(`${op.cout} output channels not divisible by group ${op.group}`);
    return [op.cout, oh, ow];
  },
  macs: (op, out) => numel(out) * (op.w.length / op.cout),
  /** w (K, C/G, KH, KW) -> (C/G, KH, KW, KP): output channels side by side for vec4 loads, zero-padded to KP; b zero-padded. */
  upload(u, n, op) {
    const per = op.w.length / op.cout, KP = convKP(op.cout), wt = new Float32Array(per * KP);
    for (let k = 0; k < op.cout; k++) for (let i = 0; i < per; i++) wt[i * KP + k] = op.w[k * per + i];
    const bp = new Float32Array(KP); bp.set(op.b);
    return { w: [u.buffer(`${n.name}.w`, wt)], b: [u.buffer(`${n.name}.b`, bp)], rows: [KP] };
  },
  forward: (e, n, _op, ref) => convForward(e, n, (ref ? 'ref:' : '') + n.name, e.buf(n.inputs[0], ref), null, e.buf(n.output, ref)),
  // dx (N,C,H,W) = sum_k w[k,c] correlated with dy (N,K,OH,OW); stride-1 convs run it as a forward conv (conv.ts
  // transposedConv) with accumulation in the epilogue. Linear in x: every mode (guided, DeepLIFT) is the gradient.
  backward(e, n, op, b) {
    const x = n.inputs[0];
    if (!b.need.has(x)) return [];
    const t = e.conv.transposed(n);
    if (t) return convForward(e, t, b.label, b.dy, null, b.dx(x), undefined, b.acc(x));
    const w = e.weights(n), k = e.conv.kernels(n), xs = e.g.tensors.get(x)!.shape, ys = e.g.tensors.get(n.output)!.shape;
    return [e.step('conv2d', k.backward, {}, b.label, params(op, xs, ys, e.batch, b.acc(x)), { x: b.dy, w: w.w[0], b: w.b[0], y: b.dx(x) }, e.batch * k.backwardThreads)];
  },
};

export const onnx: Record<string, OnnxImport> = {
  Conv(im, n) {
    const a = im.attrs(n), w = im.constFloat(n, 1, 'weight');
    if (w.dims.length !== 4) im.unsupported(n, `weight of shape [${w.dims}] (only 2-D convolution is supported)`);
    const [cout, , kh, kw] = w.dims, group = a.i('group', 1);
    if (!Number.isInteger(group) || group < 1 || cout % group) im.unsupported(n, `group ${group} with ${cout} output channels`);
    const ks = im.intList(n, 'kernel_shape', [kh, kw], 2, 1);
    if (ks[0] !== kh || ks[1] !== kw) im.unsupported(n, `kernel_shape [${ks}] differs from the weight's ${kh}x${kw}`);
    if (w.dims.some((v) => v < 1)) im.unsupported(n, `weight '${n.inputs[1]}' of shape [${w.dims}] is empty`);
    let b: Float32Array = new Float32Array(cout);
    if (n.inputs[2]) {
      const c = im.constFloat(n, 2, 'bias');
      if (c.dims.length !== 1 || c.data.length !== cout) im.unsupported(n, `bias has ${c.data.length} values; the weight has ${cout} output channels (bias '${n.inputs[2]}' of shape [${c.dims}], weight '${n.inputs[1]}' of shape [${w.dims}])`);
      b = c.data;
    }
    const s = im.intList(n, 'strides', [1, 1], 2, 1), d = im.intList(n, 'dilations', [1, 1], 2, 1);
    const pad = im.pads(n, im.shape(n, 0), [kh, kw], s, d);
    im.emit(n, { kind: 'conv', w: Float32Array.from(w.data), b: Float32Array.from(b), cout, kh, kw, stride: [s[0], s[1]], pad, dil: [d[0], d[1]], group }, [n.inputs[0]]);
  },
};
