// The op table's contract: what one record (src/ops/<family>.ts) holds for one op kind, and what the importer and
// the plan give it. A new op touches its record, its shader family (shaders/<family>.wgsl) and its float64
// reference (tests/ref.ts); nothing else.
import type { Graph, Node, Shape } from '../graph.js';
import type { Family } from '../gpu.js';
import type { ParamValues } from '../reflect.js';
import type { OnnxNode } from '../onnx.js';
import type { Importer } from '../import.js';

/** Backward modes: the gradient, guided backprop, DeepLIFT multipliers, deconvnet (ReLU passes relu(dy)). */
export type Mode = 'grad' | 'guided' | 'deeplift' | 'deconv';
export const MODE_ID: Record<Mode, number> = { grad: 0, guided: 1, deeplift: 2, deconv: 3 };

/** A buffer as the planner names it (no GPU object): a model's (weights, constants; data uploaded once) or a plan's
 *  (activations, gradients, scratch, read-backs). bytes as asked; the GPU buffer is rounded up to 16 (size). */
export interface Buf {
  id: number; owner: 'model' | 'plan'; label: string; bytes: number; size: number;
  /** storage (read/write, copy source and target), read (a mapped read-back stage). */
  usage: 'storage' | 'read';
  /** Model buffers: the values to upload (dropped once uploaded). */
  data?: Float32Array | Int32Array | Uint32Array;
  /** Plan buffers: the first and last dispatch (index in the plan's order) that binds it; -1 when none does. */
  first: number; last: number;
}
/** One planned dispatch: a pipeline (family, entry point, override constants), Params by field name, every binding
 *  by its WGSL name, and the workgroup counts. */
export interface Dispatch {
  family: Family; entry: string; consts: Record<string, number>; label: string;
  params: ParamValues; bind: Record<string, Buf>; groups: [number, number];
}
/** One dispatch as the executor replays it (src/model.ts Plan). */
export interface Step { pipe: Promise<GPUComputePipeline>; pipeline?: GPUComputePipeline; bind: GPUBindGroup; groups: [number, number] }
/** Weights of one node; linear weights are split into row chunks that fit one storage binding. */
export interface Weights { w: Buf[]; b: Buf[]; rows: number[] }

/** What a record's encoders get from the planner (src/planner.ts PlanBuilder implements it). */
export interface Enc {
  readonly batch: number;
  readonly g: Graph;
  /** Activation buffer of a tensor (a constant's buffer for constants), in the reference pass when ref. */
  buf(t: string, ref?: boolean): Buf;
  /** A dispatch: Params by field name, buffers by WGSL binding name (unnamed bindings get placeholders). */
  step(f: Family, entry: string, consts: Record<string, number>, label: string, params: ParamValues, bind: Record<string, Buf>, threads: number): Dispatch;
  weights(n: Node): Weights;
  /** A max-pool's argmax buffer (per output tensor, per pass). */
  argmax(t: string, ref: boolean): Buf;
  /** The conv record's view of the plan (Winograd scratch, kernel choice at this batch). */
  readonly conv: import('./conv.js').ConvEnc;
}
/** A backward pass as one node's encoder sees it. */
export interface Back {
  pass: number; mode: Mode; label: string;
  /** Tensors that need a gradient in this pass. */
  need: Set<string>;
  /** Gradient of the node's output. */
  dy: Buf;
  /** Gradient buffer of input t. */
  dx(t: string): Buf;
  /** 1 when t's gradient already holds a contribution (add to it), 0 for the first writer; marks t written. */
  acc(t: string): number;
}

export interface OpDef<O extends { kind: string }> {
  kind: O['kind'];
  /** The float64 oracle in tests/ref.ts (function names), itself checked by finite differences there. */
  reference: string;
  /** Output shape from the input shapes (per sample); bad() throws a ModelError naming the node. */
  shape(n: Node, op: O, ins: Shape[], bad: (why: string) => never): Shape;
  /** Multiply-adds per sample of one forward pass (for `info` and GFLOP/s). */
  macs?(op: O, out: Shape): number;
  /** Uploads the node's weights (Weights for Enc.weights). */
  upload?(u: UploadCtx, n: Node, op: O): Weights;
  /** Forward dispatches reading the node's inputs (ref: the DeepLIFT reference pass). */
  forward(e: Enc, n: Node, op: O, ref: boolean): Dispatch[];
  /** Backward dispatches: gradients of the inputs in b.need from b.dy, in mode b.mode. */
  backward(e: Enc, n: Node, op: O, b: Back): Dispatch[];
  /** When a conv's epilogue can apply this op (conv2d.wgsl p.act id), for fusion. */
  convEpilogue?(op: O): number | undefined;
}
export interface UploadCtx { buffer(label: string, data: Float32Array): Buf; binding: number }

/** An ONNX importer for one op type: reads the node, validates it, emits IR nodes through the Importer. */
export type OnnxImport = (im: Importer, n: OnnxNode) => void;
