// Fully connected layers (Gemm, MatMul with a constant 2-D right-hand side): shaders/linear.wgsl, over the last axis of
// an input of any rank ((N, ..., I) -> (N, ..., O): the rows of every sample are rows of the kernel's N; ConvNeXt's and
// ViT's Linear layers). Weights are split into row chunks that each fit one storage binding (VGG16's
// 102760448-value FC weight), one dispatch per chunk. The MatMul import lives with the matmul record (./matmul.ts).
// Reference: tests/ref.ts linearForward and nodeBackward case linear.
import { type Node, numel } from '../graph.js';
import type { Importer } from '../import.js';
import type { OnnxNode } from '../onnx.js';
import type { Buf, Enc, OnnxImport, OpDef } from './types.js';

/** y = x w^T + b over the last axis of x: w (out, in), b (out). */
export interface LinearOp { kind: 'linear'; w: Float32Array; b: Float32Array; out: number; in: number }

/** The linear.wgsl entry points for a layer with `inputs` features: vec4 loads along the features when they come in fours. */
const kernels = (inputs: number) => (inputs % 4 === 0
  ? { forward: 'linear_forward', backward: 'linear_backward', backwardPer: 16 }
  : { forward: 'linear_forward_scalar', backward: 'linear_backward_scalar', backwardPer: 1 });

export const linear: OpDef<LinearOp> = {
  kind: 'linear',
  reference: 'linearForward, nodeBackward case linear',
  shape: (_n, op, [x], bad) => (x.length >= 1 && x[x.length - 1] === op.in ? [...x.slice(0, -1), op.out]
    : bad(`expects a (N,${op.in}) input, or (N, ..., ${op.in}) (over its last axis)`)),
  macs: (op, out) => numel(out) * op.in,
  upload(u, n, op) {
    const rowsPer = Math.max(1, Math.floor(u.binding / (op.in * 4)));
    const w: Buf[] = [], b: Buf[] = [], rows: number[] = [];
    for (let o0 = 0; o0 < op.out; o0 += rowsPer) {
      const oc = Math.min(rowsPer, op.out - o0), c = w.length;
      w.push(u.buffer(`${n.name}.w[${c}]`, op.w.subarray(o0 * op.in, (o0 + oc) * op.in)));
      b.push(u.buffer(`${n.name}.b[${c}]`, op.b.subarray(o0, o0 + oc)));
      rows.push(oc);
    }
    return { w, b, rows };
  },
  // y (N',O) rows O0..O0+OC of chunk c = x (N',I) w_c^T + b_c, N' = N times the rows of a sample
  forward(e, n, op, ref) {
    const w = e.weights(n), k = kernels(op.in), N = rowsOf(e, n, op), L = (ref ? 'ref:' : '') + n.name;
    let O0 = 0;
    return w.rows.map((OC, c) => {
      const s = e.step('linear', k.forward, {}, `${L}[${c}]`, { N, I: op.in, O: op.out, O0, OC }, { x: e.buf(n.inputs[0], ref), w: w.w[c], b: w.b[c], y: e.buf(n.output, ref) }, N * Math.ceil(OC / 4));
      O0 += OC;
      return s;
    });
  },
  // dx (N,I) = sum over chunks of dy[:, chunk] w_c (dy in x's binding, dx in y's); linear, so every mode agrees
  backward(e, n, op, b) {
    const x = n.inputs[0];
    if (!b.need.has(x)) return [];
    const w = e.weights(n), k = kernels(op.in), N = rowsOf(e, n, op);
    let O0 = 0;
    return w.rows.map((OC, c) => {
      const s = e.step('linear', k.backward, {}, `${b.label}[${c}]`, { N, I: op.in, O: op.out, O0, OC, acc: b.acc(x) }, { x: b.dy, w: w.w[c], b: w.b[c], y: b.dx(x) }, N * Math.ceil(op.in / k.backwardPer));
      O0 += OC;
      return s;
    });
  },
};

/** Rows of x at this batch: the batch times numel(x) / in (one per sample for a (N, in) input). */
const rowsOf = (e: Enc, n: Node, op: LinearOp) => e.batch * numel(e.g.tensors.get(n.inputs[0])!.shape) / op.in;

export function transpose(a: Float32Array, rows: number, cols: number, scale: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c] * scale;
  return t;
}

/** Gemm's linear layer: B (and alpha) as w, C (and beta) as b; shared with src/batchaxis.ts (rows merged with the batch). */
export function gemmOp(im: Importer, n: OnnxNode): LinearOp {
  const a = im.attrs(n), s = im.shape(n, 0), feat = s[s.length - 1];
  if (im.intIn(n, 'transA', 0, 0, 1)) im.unsupported(n, 'with transA=1 (it would mix the batch dimension)');
  const B = im.constFloat(n, 1, 'B'), alpha = a.f('alpha', 1), beta = a.f('beta', 1), tB = im.intIn(n, 'transB', 0, 0, 1);
  if (B.dims.length !== 2 || B.dims.some((v) => v < 1)) im.unsupported(n, `with B '${n.inputs[1]}' of shape [${B.dims}] (needs a non-empty matrix)`);
  if ((tB ? B.dims[1] : B.dims[0]) !== feat) im.unsupported(n, `B '${n.inputs[1]}' of shape [${B.dims}]${tB ? ' (transB=1)' : ''} takes ${tB ? B.dims[1] : B.dims[0]} features; the input has ${feat}`);
  const w = tB ? B.data.map((v) => v * alpha) : transpose(B.data, B.dims[0], B.dims[1], alpha);
  const out = tB ? B.dims[0] : B.dims[1], inn = w.length / out;
  let b = new Float32Array(out);
  if (n.inputs[2]) {
    const C = im.constFloat(n, 2, 'C');
    const perOutput = C.dims.length === 1 || (C.dims.length === 2 && C.dims[0] === 1); // [out] or [1,out]; (M,1) would be per sample
    if (C.data.length === 1) b.fill(C.data[0] * beta);
    else if (C.data.length === out && perOutput) b = C.data.map((v) => v * beta);
    else im.unsupported(n, `with C '${n.inputs[2]}' of shape [${C.dims}] (needs (${out}) or a scalar)`);
  }
  return { kind: 'linear', w, b, out, in: inn };
}

export const onnx: Record<string, OnnxImport> = {
  Gemm(im, n) {
    const s = im.shape(n, 0);
    if (s.length !== 1) im.unsupported(n, `of an input of rank ${s.length + 1} [N,${s}] (Gemm is 2-D; flatten first, or use MatMul)`);
    im.emit(n, gemmOp(im, n), [n.inputs[0]]);
  },
};
