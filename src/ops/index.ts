// The op table: one record per IR op kind (src/ops/<family>.ts) and the ONNX op types each family imports.
// Shape inference, multiply-add counts and graph validation read the table; so do the importer and the plan.
import { Graph, ModelError, Node, Shape, fmt, numel, producers } from '../graph.js';
import * as actOps from './act.js';
import * as binaryOps from './binary.js';
import * as compositeOps from './composite.js';
import * as convOps from './conv.js';
import * as convtOps from './convtranspose.js';
import * as einsumOps from './einsum.js';
import * as layoutOps from './layout.js';
import * as linearOps from './linear.js';
import * as matmulOps from './matmul.js';
import * as normOps from './norm.js';
import * as poolOps from './pool.js';
import * as reduceOps from './reduce.js';
import * as resizeOps from './resize.js';
import * as shapeOps from './shape.js';
import type { OnnxImport, OpDef } from './types.js';

export type { ActFn, ActOp, AffineOp } from './act.js';
export type { BinaryOp } from './binary.js';
export type { ConvOp } from './conv.js';
export type { ConvTransposeOp } from './convtranspose.js';
export type { GatherOp, LayoutOp, PadOp, SliceOp, TileOp, TransposeOp } from './layout.js';
export type { LinearOp } from './linear.js';
export type { MatmulOp } from './matmul.js';
export type { GapOp, PoolOp } from './pool.js';
export type { ReduceFn, ReduceOp } from './reduce.js';
export type { ResizeOp } from './resize.js';
export type { AliasOp, ConcatOp } from './shape.js';
export type { NormOp, SoftmaxOp } from './norm.js';
export type Op = actOps.ActOp | actOps.AffineOp | binaryOps.BinaryOp | convOps.ConvOp | linearOps.LinearOp | poolOps.PoolOp | poolOps.GapOp
  | shapeOps.ConcatOp | normOps.SoftmaxOp | normOps.NormOp | shapeOps.AliasOp | layoutOps.LayoutOp | reduceOps.ReduceOp | matmulOps.MatmulOp
  | resizeOps.ResizeOp | convtOps.ConvTransposeOp;
export type OpKind = Op['kind'];

/** The op whose kind includes K (BinaryOp for 'add', 'mul', ...). */
type OpOf<K extends OpKind> = Op extends infer O ? (O extends { kind: infer Q } ? (K extends Q ? O : never) : never) : never;
type Table = { [K in OpKind]: OpDef<OpOf<K>> };
export const OPS: Table = {
  act: actOps.act, affine: actOps.affine, add: binaryOps.add, sub: binaryOps.sub, mul: binaryOps.mul, div: binaryOps.div, max: binaryOps.max, min: binaryOps.min,
  conv: convOps.conv, linear: linearOps.linear,
  maxpool: poolOps.maxpool, avgpool: poolOps.avgpool, gap: poolOps.gap, concat: shapeOps.concat, softmax: normOps.softmax, norm: normOps.norm, alias: shapeOps.alias,
  transpose: layoutOps.transpose, slice: layoutOps.slice, pad: layoutOps.pad, tile: layoutOps.tile, gather: layoutOps.gather,
  reduce: reduceOps.reduce, matmul: matmulOps.matmul, resize: resizeOps.resize, convtranspose: convtOps.convtranspose,
};
/** The record of a node's op (typed loosely: the record and the op agree by construction). */
export const opDef = (op: Op): OpDef<Op> => OPS[op.kind] as unknown as OpDef<Op>;

/** ONNX op type -> importer. Constant, Shape and the integer shape arithmetic are folded by the importer itself. */
export const ONNX_IMPORTS: Record<string, OnnxImport> = { ...convOps.onnx, ...actOps.onnx, ...binaryOps.onnx, ...poolOps.onnx, ...linearOps.onnx, ...shapeOps.onnx, ...layoutOps.onnx, ...reduceOps.onnx, ...normOps.onnx, ...matmulOps.onnx, ...resizeOps.onnx, ...convtOps.onnx, ...compositeOps.onnx, ...einsumOps.onnx };
/** ONNX op types whose first input may be a constant (c - x, c / x, ...) or is checked by the importer itself. */
export const CONST_FIRST = new Set([...actOps.CONST_FIRST, ...binaryOps.CONST_FIRST, ...matmulOps.CONST_FIRST, ...shapeOps.CONST_FIRST]);

/** Output shape of a node from its input shapes; throws with the node name on any mismatch. */
export function inferShape(node: Node, ins: Shape[]): Shape {
  const bad = (why: string): never => { throw new ModelError(`node '${node.name}' (${node.source}): ${why}; input shapes ${ins.map(fmt).join(', ')}`); };
  return opDef(node.op).shape(node, node.op, ins, bad);
}

/** Multiply-adds of one forward pass per sample, for `camgpu info` and GFLOP/s. */
export function macs(g: Graph, node: Node): number {
  return opDef(node.op).macs?.(node.op, g.tensors.get(node.output)!.shape) ?? 0;
}

/** Checks that every tensor is defined before use and that shapes agree; fills shapes of node outputs. */
export function validate(g: Graph): void {
  for (const n of g.nodes) {
    for (const i of n.inputs) if (!g.tensors.has(i)) throw new ModelError(`node '${n.name}' (${n.source}) reads '${i}', which nothing produces`);
    const shape = inferShape(n, n.inputs.map((i) => g.tensors.get(i)!.shape));
    const t = g.tensors.get(n.output);
    if (n.op.kind === 'alias') {
      if (!t || numel(t.shape) !== numel(shape)) throw new ModelError(`node '${n.name}' (${n.source}): reshape of ${fmt(shape)} to ${t ? fmt(t.shape) : '?'} changes the element count`);
    } else g.tensors.set(n.output, { name: n.output, shape });
  }
  if (!producers(g).has(g.output)) throw new ModelError(`graph output '${g.output}' is not produced by any node`);
}
