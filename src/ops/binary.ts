// Broadcasting binary ops of activations and constants: shaders/binary.wgsl (the math and the DeepLIFT split are in
// its header). ONNX's n-ary Sum, Mean, Max, Min become chains of them.
// Reference: tests/ref.ts nodeForward/nodeBackward case binary (broadcastIndex, binaryG, shapley).
import { Graph, ModelError, Node, Shape, broadcast, fmt, isConst, numel } from '../graph.js';
import type { Importer } from '../import.js';
import type { OnnxNode } from '../onnx.js';
import type { OnnxImport, OpDef } from './types.js';

/** y = g(a, b) with numpy broadcasting over [N, ...shape]; either input may be a constant tensor. max / min: a tie gives
 *  each input half the gradient (PyTorch's maximum / minimum). */
export interface BinaryOp { kind: 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min' }
type Kind = BinaryOp['kind'];

/** Rank-4 [N, d1, d2, d3] view of a per-sample shape of rank <= 3. */
export function rank4(N: number, s: Shape, n: Node): number[] {
  if (s.length > 3) throw new ModelError(`node '${n.name}' (${n.source}): per-sample rank ${s.length} ${fmt(s)} is over the supported 3`);
  return [N, ...Array(3 - s.length).fill(1), ...s];
}

/** Element strides of a per-sample shape s (N samples; constants have N = 1) broadcast to the rank-4 output shape o
 *  (0 on broadcast axes). */
function stridesOf(N: number, shape: Shape, o: number[], n: Node): number[] {
  const s = rank4(N, shape, n);
  const st = [s[1] * s[2] * s[3], s[2] * s[3], s[3], 1];
  return st.map((v, d) => (s[d] === 1 && o[d] > 1 ? 0 : v));
}
/** Element strides of operand t broadcast to the rank-4 output shape o (0 on broadcast axes; constants have N = 1). */
export function strides(g: Graph, N: number, t: string, o: number[], n: Node): number[] {
  return stridesOf(isConst(g, t) ? 1 : N, g.tensors.get(t)!.shape, o, n);
}

/** The output and operand shapes with adjacent axes merged where every operand is either whole or broadcast on both
 *  (and output axes of size 1 dropped): the same element map, in as few axes as the broadcast pattern needs, so any
 *  per-sample rank fits binary.wgsl's three ((4,2,16,8) * a scalar is one axis of 1024). */
export function coalesce(y: Shape, ops: Shape[]): { y: Shape; ops: Shape[] } {
  const pad = ops.map((s) => [...Array(y.length - s.length).fill(1), ...s]), Y: number[] = [], P: number[][] = ops.map(() => []);
  y.forEach((d, i) => {
    if (d === 1) return;
    const last = Y.length - 1;
    if (last >= 0 && pad.every((s, k) => (s[i] !== 1) === (P[k][last] !== 1))) { Y[last] *= d; pad.forEach((s, k) => { P[k][last] *= s[i]; }); }
    else { Y.push(d); pad.forEach((s, k) => P[k].push(s[i])); }
  });
  return { y: Y, ops: P };
}

/** binary.wgsl's view of node n at batch N: the rank-4 output o, each operand's strides and rank-4 shape. */
function view(g: Graph, N: number, n: Node) {
  const [A, B] = n.inputs, c = coalesce(g.tensors.get(n.output)!.shape, [A, B].map((t) => g.tensors.get(t)!.shape));
  const o = rank4(N, c.y, n), per = (k: number, t: string) => (isConst(g, t) ? 1 : N);
  return { o, sa: stridesOf(per(0, A), c.ops[0], o, n), sb: stridesOf(per(1, B), c.ops[1], o, n), su: c.ops.map((s, k) => rank4(per(k, n.inputs[k]), s, n)) };
}

/** binary.wgsl's OP override. */
const OP_ID: Record<Kind, number> = { add: 0, mul: 1, sub: 2, div: 3, max: 4, min: 5 };

const binaryDef = (kind: Kind): OpDef<BinaryOp> => ({
  kind,
  reference: 'nodeForward/nodeBackward case binary',
  shape: (_n, _op, [a, b], bad) => broadcast(a, b) ?? bad('shapes do not broadcast'),
  // y (o) = g(a[o . sa], b[o . sb]) over the coalesced view
  forward(e, n, _op, ref) {
    const [a, b] = n.inputs, { o, sa, sb } = view(e.g, e.batch, n);
    return [e.step('binary', 'binary_forward', { OP: OP_ID[kind] }, (ref ? 'ref:' : '') + n.name,
      { o, sa, sb, E: numel(o) },
      { a: e.buf(a, ref), b: e.buf(b, ref), out: e.buf(n.output, ref) }, numel(o))];
  },
  // du (su) = sum over broadcast axes of dy * m_u (the gradient, or the DeepLIFT split of binary.wgsl's header)
  backward(e, n, _op, b) {
    const dl = b.mode === 'deeplift', [A, B] = n.inputs, { o, sa, sb, su } = view(e.g, e.batch, n);
    return n.inputs.flatMap((u, k) => {
      if (!b.need.has(u)) return [];
      return [e.step('binary', 'binary_backward', { OP: OP_ID[kind], MODE: dl ? 2 : 0, WRT: k }, `${b.label}[${k}]`,
        { o, sa, sb, su: su[k], E: numel(su[k]), acc: b.acc(u) },
        { a: e.buf(A), b: e.buf(B), ar: e.buf(A, dl), br: e.buf(B, dl), dy: b.dy, out: b.dx(u) }, numel(su[k]))];
    });
  },
});
export const add = binaryDef('add');
export const sub = binaryDef('sub');
export const mul = binaryDef('mul');
export const div = binaryDef('div');
export const max = binaryDef('max');
export const min = binaryDef('min');

// ------------------------------------------------------------------------------------------------ ONNX import

/** The operands of n as IR tensors (constants made per-sample); two activations must agree in rank (their batch axes
 *  align only then). */
function operands(im: Importer, n: OnnxNode): string[] {
  const ins = n.inputs.map((i) => im.operand(n, i));
  if (!ins.some((i) => im.isVar(i))) im.unsupported(n, 'of constants only (fold constants before export)');
  const ranks = new Set(ins.filter((i) => im.isVar(i)).map((i) => im.g.tensors.get(i)!.shape.length));
  if (ranks.size > 1) im.unsupported(n, `of activations of different ranks ${ins.filter((i) => im.isVar(i)).map((i) => `[N,${im.g.tensors.get(i)!.shape}]`).join(', ')} (the batch axes would not align)`);
  return ins;
}
const binaryImport = (kind: Kind): OnnxImport => (im, n) => {
  if (n.inputs.length !== 2) im.unsupported(n, `with ${n.inputs.length} inputs (needs 2)`);
  im.emit(n, { kind }, operands(im, n));
};
/** A left fold of an n-ary op over binary nodes n/1, n/2, ... (the last one is n's own output); one input: a copy. */
function chain(im: Importer, n: OnnxNode, kind: Kind, ins: string[], last = n.outputs[0]): void {
  if (ins.length === 1) { im.emit({ ...n, outputs: [last] }, { kind: 'alias' }, ins, im.g.tensors.get(ins[0])!.shape.slice()); return; }
  let acc = ins[0];
  for (let k = 1; k < ins.length; k++) {
    const out = k === ins.length - 1 ? last : `${n.outputs[0]}/${k}`;
    im.emit({ ...n, name: k === ins.length - 1 && last === n.outputs[0] ? n.name : `${n.name}/${k}`, outputs: [out] }, { kind }, [acc, ins[k]]);
    acc = out;
  }
}
const naryImport = (kind: Kind): OnnxImport => (im, n) => chain(im, n, kind, operands(im, n));

export const onnx: Record<string, OnnxImport> = {
  Add: binaryImport('add'),
  Sub: binaryImport('sub'),
  Mul: binaryImport('mul'),
  // a / c for a constant c is a * (1/c); a divisor computed from the input is a div node
  Div(im, n) {
    const c = im.isVar(n.inputs[1]) ? undefined : im.floats.get(n.inputs[1]);
    if (!c || n.inputs.length !== 2) return binaryImport('div')(im, n);
    const name = `1/${n.inputs[1]}`;
    if (!im.floats.has(name)) im.floats.set(name, { dims: c.dims, data: c.data.map((v) => 1 / v) });
    const m = { ...n, inputs: [n.inputs[0], name] };
    im.emit(m, { kind: 'mul' }, operands(im, m));
  },
  Sum: naryImport('add'),
  Max: naryImport('max'),
  Min: naryImport('min'),
  // (x_1 + ... + x_k) * (1/k)
  Mean(im, n) {
    const ins = operands(im, n), k = ins.length;
    if (k === 1) return chain(im, n, 'add', ins);
    const sum = `${n.outputs[0]}/sum`, scale = `${n.outputs[0]}/1/${k}`;
    chain(im, n, 'add', ins, sum);
    im.g.tensors.set(scale, { name: scale, shape: [], data: Float32Array.of(1 / k) });
    im.emit(n, { kind: 'mul' }, [sum, scale]);
  },
};
/** ONNX ops of this family that take a constant first input (c - x, c / x, max(c, x), ...). */
export const CONST_FIRST = Object.keys(onnx);
