// camgpu's graph IR: a static, single-input CNN graph in NCHW float32. Shapes are per sample (the batch
// dimension is left out and chosen when a plan is built), so one loaded model serves any batch size.

export type Shape = number[];
export type ActFn = 'relu' | 'clip' | 'leakyrelu' | 'sigmoid' | 'hardsigmoid' | 'hardswish';
export const ACT_FNS: ActFn[] = ['relu', 'clip', 'leakyrelu', 'sigmoid', 'hardsigmoid', 'hardswish'];

/** Convolution: w (cout, cin/group, kh, kw), b (cout); pads [top, left, bottom, right]. */
export interface ConvOp { kind: 'conv'; w: Float32Array; b: Float32Array; cout: number; kh: number; kw: number;
  stride: [number, number]; pad: [number, number, number, number]; dil: [number, number]; group: number }
/** Element-wise activation. clip: [alpha, beta] = [min, max]; leakyrelu: alpha; hardsigmoid: max(0, min(1, alpha x + beta)). */
export interface ActOp { kind: 'act'; fn: ActFn; alpha: number; beta: number }
/** y = a (+|*) b with numpy broadcasting over [N, ...shape]; either input may be a constant tensor. */
export interface BinaryOp { kind: 'add' | 'mul' }
export interface PoolOp { kind: 'maxpool' | 'avgpool'; kh: number; kw: number; stride: [number, number];
  pad: [number, number, number, number]; dil: [number, number]; ceil: boolean; countIncludePad: boolean }
export interface GapOp { kind: 'gap' }
/** y = x w^T + b: w (out, in), b (out). Gemm and MatMul with a constant right-hand side become this. */
export interface LinearOp { kind: 'linear'; w: Float32Array; b: Float32Array; out: number; in: number }
/** Per-channel y = x * scale[c] + shift[c]: a BatchNormalization that could not be folded into a conv. */
export interface AffineOp { kind: 'affine'; scale: Float32Array; shift: Float32Array }
export interface ConcatOp { kind: 'concat' }   // along channels (per-sample axis 0)
export interface SoftmaxOp { kind: 'softmax' } // over the last axis, only at the graph output
export interface AliasOp { kind: 'alias' }     // Flatten, Reshape, Squeeze, Unsqueeze, Dropout, Identity: new shape, same data
export type Op = ConvOp | ActOp | BinaryOp | PoolOp | GapOp | LinearOp | AffineOp | ConcatOp | SoftmaxOp | AliasOp;

export interface Tensor { name: string; shape: Shape; data?: Float32Array } // data: a constant operand (per sample, broadcast over the batch)
export interface Node { name: string; source: string; op: Op; inputs: string[]; output: string } // source: the ONNX op type (or builder)
export interface Graph { input: string; output: string; tensors: Map<string, Tensor>; nodes: Node[] }

export class ModelError extends Error {
  constructor(message: string) { super(message); this.name = 'ModelError'; }
}

export const numel = (s: Shape) => s.reduce((a, b) => a * b, 1);
export const fmt = (s: Shape) => `[${s.join(',')}]`;

/** The node that produces a tensor, and every node that reads it. */
export function producers(g: Graph): Map<string, Node> { return new Map(g.nodes.map((n) => [n.output, n])); }
export function consumers(g: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  for (const n of g.nodes) for (const i of n.inputs) { if (!m.has(i)) m.set(i, []); if (!m.get(i)!.includes(n)) m.get(i)!.push(n); }
  return m;
}
export const isConst = (g: Graph, name: string) => g.tensors.get(name)!.data !== undefined;

/** The tensor the final Softmax reads (the logits), or the graph output when there is no Softmax. */
export function logitsOf(g: Graph): string {
  const last = producers(g).get(g.output);
  return last?.op.kind === 'softmax' ? last.inputs[0] : g.output;
}

/** Output spatial size of a conv or pool window (PyTorch's ceil_mode rule: the last window starts inside). */
export function windowOut(size: number, k: number, s: number, p0: number, p1: number, d: number, ceil = false): number {
  const span = size + p0 + p1 - d * (k - 1) - 1;
  let o = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (o - 1) * s >= size + p0) o--;
  return o;
}

/** Output shape of a node from its input shapes; throws with the node name on any mismatch. */
export function inferShape(node: Node, ins: Shape[]): Shape {
  const op = node.op, x = ins[0];
  const bad = (why: string): never => { throw new ModelError(`node '${node.name}' (${node.source}): ${why}; input shapes ${ins.map(fmt).join(', ')}`); };
  switch (op.kind) {
    case 'conv': case 'maxpool': case 'avgpool': {
      if (x.length !== 3) bad('needs a 4-D input (N,C,H,W)');
      const ceil = op.kind !== 'conv' && op.ceil;
      const oh = windowOut(x[1], op.kh, op.stride[0], op.pad[0], op.pad[2], op.dil[0], ceil);
      const ow = windowOut(x[2], op.kw, op.stride[1], op.pad[1], op.pad[3], op.dil[1], ceil);
      if (oh < 1 || ow < 1) bad(`window ${op.kh}x${op.kw} does not fit the input`);
      if (op.kind === 'conv') {
        const cin = op.w.length / (op.cout * op.kh * op.kw);
        if (cin * op.group !== x[0]) bad(`weight expects ${cin * op.group} input channels (group ${op.group}), got ${x[0]}`);
        if (op.cout % op.group) bad(`${op.cout} output channels not divisible by group ${op.group}`);
        return [op.cout, oh, ow];
      }
      return [x[0], oh, ow];
    }
    case 'act': case 'affine': return x.slice();
    case 'gap': if (x.length !== 3) bad('needs a 4-D input'); return [x[0], 1, 1];
    case 'linear': if (numel(x) !== op.in || x.length !== 1) bad(`expects a (N,${op.in}) input`); return [op.out];
    case 'add': case 'mul': return broadcast(ins[0], ins[1]) ?? bad('shapes do not broadcast');
    case 'concat': {
      for (const s of ins) if (s.length !== x.length || s.some((d, i) => i > 0 && d !== x[i])) bad('inputs differ outside the channel axis');
      return [ins.reduce((a, s) => a + s[0], 0), ...x.slice(1)];
    }
    case 'softmax': if (x.length !== 1) bad('Softmax is supported over (N,F) only'); return x.slice();
    case 'alias': return x.slice(); // the importer sets the new shape
  }
}

/** numpy broadcasting of two per-sample shapes, or null. */
export function broadcast(a: Shape, b: Shape): Shape | null {
  const r = Math.max(a.length, b.length), out: Shape = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1, db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return null;
    out.push(Math.max(da, db));
  }
  return out;
}

/** Multiply-adds of one forward pass per sample (convs and linears), for `camgpu info` and GFLOP/s. */
export function macs(g: Graph, node: Node): number {
  const out = g.tensors.get(node.output)!.shape, op = node.op;
  if (op.kind === 'conv') return numel(out) * (op.w.length / op.cout);
  if (op.kind === 'linear') return op.out * op.in;
  return 0;
}

/** Checks that every tensor is defined before use and that shapes agree; fills shapes of node outputs. */
export function validate(g: Graph): void {
  for (const n of g.nodes) {
    for (const i of n.inputs) if (!g.tensors.has(i)) throw new ModelError(`node '${n.name}' (${n.source}) reads '${i}', which nothing produces`);
    const shape = inferShape(n, n.inputs.map((i) => g.tensors.get(i)!.shape));
    const t = g.tensors.get(n.output);
    if (n.op.kind === 'alias') { if (!t || numel(t.shape) !== numel(shape)) throw new ModelError(`node '${n.name}' (${n.source}): reshape of ${fmt(shape)} to ${t ? fmt(t.shape) : '?'} changes the element count`); }
    else g.tensors.set(n.output, { name: n.output, shape });
  }
  if (!producers(g).has(g.output)) throw new ModelError(`graph output '${g.output}' is not produced by any node`);
}
