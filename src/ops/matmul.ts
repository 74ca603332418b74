// MatMul (numpy semantics): with a constant 2-D (or 1-D) right-hand side a linear layer over the last axis
// (./linear.ts); otherwise the matmul record here (shaders/matmul.wgsl): a batched product of two activations (attention's
// (N,h,T,d) x (N,h,d,T)) or of an activation and a constant of any rank, the leading axes broadcast (numpy rules) and
// the batch N kept outside. It is bilinear: the gradient of each operand is the product with the other; DeepLIFT's
// multipliers use the mean of the other operand's two passes, which keeps summation to delta exact (as Mul's).
// Reference: tests/ref.ts matmulForward / matmulBackward.
import { Node, Shape, broadcast, fmt, isConst, numel } from '../graph.js';
import type { Importer } from '../import.js';
import type { OnnxNode } from '../onnx.js';
import { transpose } from './linear.js';
import type { Enc, OnnxImport, OpDef } from './types.js';

/** y (..., M, P) = a (..., M, K) b (..., K, P) over per-sample shapes; the leading axes broadcast. */
export interface MatmulOp { kind: 'matmul' }

/** Leading (batch) axes a product may have per sample: matmul.wgsl's vec4 slots. */
const MAX_LEAD = 4;

function outShape(a: Shape, b: Shape): Shape | string {
  if (a.length < 2 || b.length < 2) return 'needs operands of per-sample rank >= 2 (a matrix per sample)';
  if (a[a.length - 1] !== b[b.length - 2]) return `inner sizes differ: ${fmt(a)} x ${fmt(b)}`;
  const lead = broadcast(a.slice(0, -2), b.slice(0, -2));
  if (!lead) return `leading axes ${fmt(a.slice(0, -2))} and ${fmt(b.slice(0, -2))} do not broadcast`;
  if (lead.length > MAX_LEAD) return `${lead.length} leading axes (at most ${MAX_LEAD})`;
  return [...lead, a[a.length - 2], b[b.length - 1]];
}

/** matmul.wgsl's Params: the output's leading shape o (right-aligned in 4 slots), each operand's leading strides
 *  (0 where it broadcasts), u the leading shape of the operand whose gradient is taken, sizes and per-sample strides. */
function params(e: Enc, n: Node, wrt = 0, acc = 0) {
  const [A, B] = n.inputs, as = e.g.tensors.get(A)!.shape, bs = e.g.tensors.get(B)!.shape, ys = e.g.tensors.get(n.output)!.shape;
  const pad = (s: Shape) => [...Array(MAX_LEAD - s.length).fill(1), ...s];
  const o = pad(ys.slice(0, -2));
  const leadStrides = (s: Shape) => {
    const l = pad(s.slice(0, -2)), mat = s[s.length - 2] * s[s.length - 1];
    return l.map((d, i) => (d === 1 && o[i] > 1 ? 0 : numel(l.slice(i + 1)) * mat));
  };
  const [M, K] = as.slice(-2), P = bs[bs.length - 1];
  return { o, sa: leadStrides(as), sb: leadStrides(bs), u: pad((wrt ? bs : as).slice(0, -2)), N: e.batch, M, K, P,
    AS: isConst(e.g, A) ? 0 : numel(as), BS: isConst(e.g, B) ? 0 : numel(bs), YS: numel(ys), acc };
}

export const matmul: OpDef<MatmulOp> = {
  kind: 'matmul',
  reference: 'matmulForward, matmulBackward',
  shape(_n, _op, [a, b], bad) {
    const s = outShape(a, b);
    return typeof s === 'string' ? bad(s) : s;
  },
  // y (N, ..., M, P) = a b
  forward(e, n, _op, ref) {
    const [A, B] = n.inputs, p = params(e, n);
    return [e.step('matmul', 'matmul_forward', {}, (ref ? 'ref:' : '') + n.name, p, { a: e.buf(A, ref), b: e.buf(B, ref), out: e.buf(n.output, ref) }, e.batch * p.YS)];
  },
  // da = dy b^T, db = a^T dy, summed over the leading axes where the operand broadcasts; DeepLIFT: the other operand's
  // mean over both passes
  backward(e, n, _op, b) {
    const [A, B] = n.inputs, dl = b.mode === 'deeplift';
    return n.inputs.flatMap((u, k) => {
      if (!b.need.has(u)) return [];
      const p = params(e, n, k, b.acc(u)), size = numel(e.g.tensors.get(u)!.shape);
      return [e.step('matmul', 'matmul_backward', { MODE: dl ? 2 : 0, WRT: k }, `${b.label}[${k}]`, p,
        { a: e.buf(A), b: e.buf(B), ar: e.buf(A, dl), br: e.buf(B, dl), dy: b.dy, out: b.dx(u) }, e.batch * size)];
    });
  },
};

// ------------------------------------------------------------------------------------------------ ONNX import

/**
 * MatMul: activation x constant (K, P) or (K) is a linear layer over the last axis ((K): one output, its axis dropped);
 * any other pair is a matmul node. Two activations must have the same rank (their batch axes align only then) and a
 * matrix per sample (rank >= 3); a constant is made per-sample (its leading 1 over the batch dropped).
 */
function matmulImport(im: Importer, n: OnnxNode) {
  const [A, B] = n.inputs;
  const aVar = im.isVar(A), bVar = im.isVar(B);
  const Bc = bVar ? undefined : im.floats.get(B);
  if (aVar && Bc && Bc.dims.length <= 2) return linearImport(im, n, Bc);
  if (!aVar && !bVar) im.unsupported(n, 'of two constants (fold constants before export)');
  for (const [t, v] of [[A, aVar], [B, bVar]] as const) {
    if (!v) continue;
    const s = im.shape(n, n.inputs.indexOf(t));
    if (s.length < 2) im.unsupported(n, `of the activation '${t}' of shape [N,${s}]: its matrix rows would be the batch (MatMul of activations needs rank >= 3)`);
  }
  if (aVar && bVar && im.shape(n, 0).length !== im.shape(n, 1).length)
    im.unsupported(n, `of activations of different ranks [N,${im.shape(n, 0)}] and [N,${im.shape(n, 1)}] (the batch axes would not align)`);
  const ins = [A, B].map((t) => im.operand(n, t));
  for (const t of ins) if (im.g.tensors.get(im.name(t))!.shape.length < 2) im.unsupported(n, `with the constant '${t}' of rank < 2 on this side`);
  const s = outShape(im.g.tensors.get(im.name(ins[0]))!.shape, im.g.tensors.get(im.name(ins[1]))!.shape);
  if (typeof s === 'string') im.unsupported(n, s);
  im.emit(n, { kind: 'matmul' }, ins, s);
}

/** x (N, ..., K) times a constant (K, P): linear with w = B^T; times (K): linear to one output, then that axis dropped. */
export function linearImport(im: Importer, n: OnnxNode, B: { dims: number[]; data: Float32Array }) {
  const s = im.shape(n, 0), K = s[s.length - 1];
  const [k, P] = B.dims.length === 2 ? B.dims : [B.dims[0], 1];
  if (k !== K) im.unsupported(n, `of [N,${s}] by a constant of shape [${B.dims}]: inner sizes differ`);
  const op = { kind: 'linear' as const, w: transpose(B.data, K, P, 1), b: new Float32Array(P), out: P, in: K };
  if (B.dims.length === 2) return im.emit(n, op, [n.inputs[0]]);
  if (s.length < 2) im.unsupported(n, `of [N,${s}] by a vector: the result would have only the batch axis`);
  const mid = `${n.outputs[0]}:column`;
  im.emit(n, op, [n.inputs[0]], undefined, mid);
  im.emit(n, { kind: 'alias' }, [mid], s.slice(0, -1), n.outputs[0], `${n.name}:squeeze`);
}

export const onnx: Record<string, OnnxImport> = { MatMul: matmulImport };
/** MatMul's first input may be a constant (a constant matrix times an activation). */
export const CONST_FIRST = ['MatMul'];
