// camgpu's graph IR: a static, single-input CNN graph in NCHW float32. Shapes are per sample (the batch
// dimension is left out and chosen when a plan is built), so one loaded model serves any batch size.

export type Shape = number[];
// The op kinds and their parameters live with their records in src/ops/ (the op table).
export type { ActFn, ActOp, AffineOp, AliasOp, BinaryOp, ConcatOp, ConvOp, ConvTransposeOp, GapOp, GatherOp, LayoutOp, LinearOp, MatmulOp, NormOp, Op, OpKind, PadOp, PoolOp, ReduceFn, ReduceOp, ResizeOp, SliceOp, SoftmaxOp, TileOp, TransposeOp } from './ops/index.js';
import type { Op } from './ops/index.js';

/** Marker for the (symbolic) batch size inside integer shape computations (Shape -> Gather -> Concat -> Reshape). */
export const BATCH = -(2 ** 40);
/** k when v is k * BATCH for a positive integer k (the batch size times a constant, as merged axes have), else 0. */
export const batchMultiple = (v: number): number => (v <= BATCH && Number.isInteger(v / BATCH) ? v / BATCH : 0);
/** A dimension for messages: N, k*N or the number. */
export const showDim = (v: number): string => { const k = batchMultiple(v); return k ? (k === 1 ? 'N' : `${k}*N`) : `${v}`; };

export interface Tensor { name: string; shape: Shape; data?: Float32Array } // data: a constant operand (per sample, broadcast over the batch)
export interface Node { name: string; source: string; op: Op; inputs: string[]; output: string } // source: the ONNX op type (or builder)
export interface Graph { input: string; output: string; tensors: Map<string, Tensor>; nodes: Node[] }

/** Control characters (a newline in a tensor name read from a hostile file) escaped, so an error stays one line. */
export const oneLine = (s: string) => s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

export class ModelError extends Error {
  constructor(message: string) { super(oneLine(message)); this.name = 'ModelError'; }
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
