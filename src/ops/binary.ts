// Broadcasting binary ops of activations and constants: shaders/binary.wgsl.
// Reference: tests/ref.ts nodeForward/nodeBackward cases add, mul (broadcastIndex).
import { Graph, ModelError, Node, Shape, broadcast, fmt, isConst, numel } from '../graph.js';
import type { OnnxImport, OpDef } from './types.js';

/** y = a (+|*) b with numpy broadcasting over [N, ...shape]; either input may be a constant tensor. */
export interface BinaryOp { kind: 'add' | 'mul' }

/** Rank-4 [N, d1, d2, d3] view of a per-sample shape of rank <= 3. */
export function rank4(N: number, s: Shape, n: Node): number[] {
  if (s.length > 3) throw new ModelError(`node '${n.name}' (${n.source}): per-sample rank ${s.length} ${fmt(s)} is over the supported 3`);
  return [N, ...Array(3 - s.length).fill(1), ...s];
}

/** Element strides of operand t broadcast to the rank-4 output shape o (0 on broadcast axes; constants have N = 1). */
export function strides(g: Graph, N: number, t: string, o: number[], n: Node): number[] {
  const s = rank4(isConst(g, t) ? 1 : N, g.tensors.get(t)!.shape, n);
  const st = [s[1] * s[2] * s[3], s[2] * s[3], s[3], 1];
  return st.map((v, d) => (s[d] === 1 && o[d] > 1 ? 0 : v));
}

const OP_ID = { add: 0, mul: 1 } as const;

const binaryDef = (kind: BinaryOp['kind']): OpDef<BinaryOp> => ({
  kind,
  reference: `nodeForward/nodeBackward case ${kind}`,
  shape: (_n, _op, [a, b], bad) => broadcast(a, b) ?? bad('shapes do not broadcast'),
  pipelines: () => [['binary', 'binary_forward', { OP: OP_ID[kind] }], ['binary', 'binary_backward', { OP: OP_ID[kind], MODE: 0 }], ['binary', 'binary_backward', { OP: OP_ID[kind], MODE: 2 }]],
  // y (o) = a[o . sa] op b[o . sb]
  forward(e, n, _op, ref) {
    const [a, b] = n.inputs, o = rank4(e.batch, e.g.tensors.get(n.output)!.shape, n);
    return [e.step('binary', 'binary_forward', { OP: OP_ID[kind] }, (ref ? 'ref:' : '') + n.name,
      { o, sa: strides(e.g, e.batch, a, o, n), sb: strides(e.g, e.batch, b, o, n), E: numel(o) },
      { in0: e.buf(a, ref), in1: e.buf(b, ref), out: e.buf(n.output, ref) }, numel(o))];
  },
  // du (su) = sum over broadcast axes of dy * (add: 1; mul: v, DeepLIFT: (v + v')/2, which keeps summation to delta)
  backward(e, n, _op, b) {
    const N = e.batch, o = rank4(N, e.g.tensors.get(n.output)!.shape, n), dl = b.mode === 'deeplift';
    return n.inputs.flatMap((u, k) => {
      if (!b.need.has(u)) return [];
      const v = n.inputs[1 - k], su = rank4(N, e.g.tensors.get(u)!.shape, n);
      const V = e.buf(v), VR = dl && kind === 'mul' ? e.buf(v, true) : V;
      return [e.step('binary', 'binary_backward', { OP: OP_ID[kind], MODE: dl ? 2 : 0 }, `${b.label}[${k}]`,
        { o, sb: strides(e.g, N, v, o, n), su, E: numel(su), acc: b.acc(u) }, { in0: b.dy, in1: V, in2: VR, out: b.dx(u) }, numel(su))];
    });
  },
});
export const add = binaryDef('add');
export const mul = binaryDef('mul');

const binaryImport = (kind: BinaryOp['kind']): OnnxImport => (im, n) => {
  const ins = n.inputs.map((i) => im.operand(n, i));
  if (ins.length !== 2) im.unsupported(n, `with ${ins.length} inputs (needs 2)`);
  if (!ins.some((i) => im.isVar(i))) im.unsupported(n, 'of two constants (fold constants before export)');
  im.emit(n, { kind }, ins);
};
/** Sub and Div with a constant right-hand side run on the add and mul kernels: y = a + (-c), y = a * (1/c) (linear in
 *  a, so gradients and DeepLIFT multipliers are those of add and mul). Hard-swish written as x * Clip(x + 3, 0, 6) / 6
 *  and normalisation inside the graph ((x - mean) / std) export this way. */
const byConstant = (kind: BinaryOp['kind'], what: string, f: (v: number) => number): OnnxImport => (im, n) => {
  const [a, c] = n.inputs, k = im.floats.get(c);
  if (!im.isVar(a) || !k) return im.unsupported(n, `of '${a}' and '${c}': only an activation ${what} a constant float tensor is supported (two activations, or a constant first operand, are not yet)`);
  if (kind === 'mul' && k.data.some((v) => v === 0)) im.unsupported(n, `divides by a constant '${c}' that holds zeros`);
  const name = `${c}:${kind === 'add' ? 'negated' : 'reciprocal'}`;
  im.floats.set(name, { dims: k.dims, data: k.data.map(f) });
  im.emit(n, { kind }, [a, im.operand(n, name)]);
};
export const onnx: Record<string, OnnxImport> = {
  Add: binaryImport('add'), Mul: binaryImport('mul'),
  Sub: byConstant('add', 'minus', (v) => -v), Div: byConstant('mul', 'divided by', (v) => 1 / v),
};
