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

/** One dispatch as the plan replays it. */
export interface Step { pipe: Promise<GPUComputePipeline>; pipeline?: GPUComputePipeline; bind: GPUBindGroup; groups: [number, number] }
/** Weights of one node on the GPU; linear weights are split into row chunks that fit one storage binding. */
export interface Weights { w: GPUBuffer[]; b: GPUBuffer[]; rows: number[] }
/** A pipeline a graph may need: family, entry point, override constants. */
export type PipeSpec = [Family, string, Record<string, number>];

/** What a record's encoders get from the plan (src/model.ts Plan implements it). */
export interface Enc {
  readonly batch: number;
  readonly g: Graph;
  /** Activation buffer of a tensor (a constant's buffer for constants), in the reference pass when ref. */
  buf(t: string, ref?: boolean): GPUBuffer;
  /** A dispatch: Params by field name, buffers by WGSL binding name (unnamed bindings get placeholders). */
  step(f: Family, entry: string, consts: Record<string, number>, label: string, params: ParamValues, bind: Record<string, GPUBuffer>, threads: number): Step;
  weights(n: Node): Weights;
  /** A max-pool's argmax buffer (per output tensor, per pass). */
  argmax(t: string, ref: boolean): GPUBuffer;
  /** The conv record's view of the plan (Winograd scratch, kernel choice at this batch). */
  readonly conv: import('./conv.js').ConvEnc;
}
/** A backward pass as one node's encoder sees it. */
export interface Back {
  pass: number; mode: Mode; label: string;
  /** Tensors that need a gradient in this pass. */
  need: Set<string>;
  /** Gradient of the node's output. */
  dy: GPUBuffer;
  /** Gradient buffer of input t. */
  dx(t: string): GPUBuffer;
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
  /** Every pipeline a node may use, forward and backward in every mode (compiled at load). */
  pipelines(m: PipeCtx, n: Node, op: O): PipeSpec[];
  /** Uploads the node's weights (Weights for Enc.weights). */
  upload?(u: UploadCtx, n: Node, op: O): Weights;
  /** Forward dispatches reading the node's inputs (ref: the DeepLIFT reference pass). */
  forward(e: Enc, n: Node, op: O, ref: boolean): Step[];
  /** Backward dispatches: gradients of the inputs in b.need from b.dy, in mode b.mode. */
  backward(e: Enc, n: Node, op: O, b: Back): Step[];
  /** When a conv's epilogue can apply this op (conv2d.wgsl p.act id), for fusion. */
  convEpilogue?(op: O): number | undefined;
}
/** What pipelines() may ask of the model (tuned conv kernels). */
export interface PipeCtx { convKernels(n: Node): import('../conv.js').ConvKernels }
export interface UploadCtx { buffer(label: string, data: Float32Array): GPUBuffer; binding: number }

/** An ONNX importer for one op type: reads the node, validates it, emits IR nodes through the Importer. */
export type OnnxImport = (im: Importer, n: OnnxNode) => void;
