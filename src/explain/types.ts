// The public shapes of explain(): options, per-method results, and the context a method's runner receives.
import type { Model, Plan, PlanOptions, RunResult } from '../model.js';
import type { OutputTarget } from '../target.js';
import type { Method } from '../methods.js';

export type Targets = 'top1' | number[] | { topk: number } | Float32Array;
/** Integrated Gradients' quadrature over the path x' + alpha (x - x'), as Captum names it. */
export type IgRule = 'gausslegendre' | 'riemann_trapezoid' | 'riemann_left' | 'riemann_right' | 'riemann_middle';
export interface ExplainOptions {
  /** One class per image, 'top1' (default), { topk: k } (k rows per image), or seed vectors (N, classes) at the logits. */
  targets?: Targets;
  /** Instead of targets: a score at the model's output (src/target.ts), one for every image or one per image: a class
   *  (summed over a box or weighted by a mask on a segmentation map) or one element of any output. */
  target?: OutputTarget | OutputTarget[];
  /** Target layer: an ONNX tensor (or node) name; default: the last 4-D activation before the classifier head. */
  layer?: string;
  methods?: Method[] | 'all' | 'fast';
  /** Target score: the raw logit (default) or the softmax probability. */
  score?: 'logit' | 'prob';
  /** ReLU on the raw map before normalising (default true). */
  relu?: boolean;
  /** Min-max normalisation: of the feature-resolution map (default), of the resized map, or none. */
  normalize?: 'before' | 'after' | 'none';
  /** Bilinear resize with half-pixel centres (default, align_corners=false) or corner-aligned. */
  resize?: 'bilinear' | 'bilinear-corners';
  /** Grad-CAM++: eq. 19 (default) or the authors' alpha-renormalised code. */
  gradcamPP?: 'eq19' | 'normalized';
  /** Score-CAM: pytorch-grad-cam's variant (default) or the official code's. */
  scorecam?: 'pgc' | 'official';
  /** Reference image x' (C,H,W) of pixel DeepLIFT and Integrated Gradients, default zeros (the mean image in normalised space). */
  reference?: Float32Array;
  rise?: { n?: number; s?: number; p?: number; seed?: number };
  /** Integrated Gradients: interpolation steps (default 50) and quadrature rule (default Gauss-Legendre, as Captum). */
  ig?: { steps?: number; rule?: IgRule };
  /** SmoothGrad / VarGrad noise tunnel: samples (default 16) and the noise's standard deviation in normalised input units (default 0.15). */
  noise?: { n?: number; sigma?: number };
  /** Occlusion: window (default 8) and stride (default 4) in pixels, as [h, w] or one number for both; occluded value (default 0). */
  occlusion?: { window?: number | [number, number]; stride?: number | [number, number]; baseline?: number };
  /** DeepLIFT-SHAP's reference images (R,C,H,W); default: noise.n images of standard normal pixels from the seeded stream. */
  shapReferences?: Float32Array;
  /** Seed of the sampling methods (RandomCAM's weights, the noise tunnel's draws); default 0. */
  seed?: number;
  /** Images per plan (and masked inputs per perturbation batch); default: what fits memoryBudget, at most 16. */
  batch?: number;
  /** GPU bytes a plan may use when choosing the default batch (default 1 GiB). */
  memoryBudget?: number;
  onProgress?: (done: number, total: number, what: string) => void;
  /** Time every dispatch of the gradient pass with timestamp queries (Explanation.profile; needs 'timestamp-query'). */
  profile?: boolean;
  /** Cancels the call: checked between GPU batches (each perturbation batch, each chunk of images); rejects with CancelledError. */
  signal?: AbortSignal;
}

/** explain() was cancelled through its AbortSignal; what it held is released and the explainer stays usable. */
export class CancelledError extends Error {
  constructor(message = 'the explanation was cancelled') { super(message); this.name = 'CancelledError'; }
}
export function checkAbort(o: ExplainOptions, where: string) {
  if (o.signal?.aborted) throw new CancelledError(`explanation cancelled (${where})`);
}

/** A completeness check: the attributions' sum against y(x) - y(x'); scale = max(|y(x)|, |y(x')|). */
export interface Delta { sum: number; expected: number; scale: number }
export interface MethodResult {
  /** (H, W) at input resolution, in [0,1] unless normalize is 'none'. */
  map: Float32Array;
  /** Feature-resolution raw map (pre-ReLU) for CAMs; the full attribution (C,H,W) or (H,W) for pixel methods. */
  raw: Float32Array; rawShape: number[];
  weights?: Float32Array;
  /** DeepLIFT and Integrated Gradients: completeness (summation to delta). */
  delta?: Delta;
}
export interface ImageResult {
  image: number; target: number; logits: Float32Array; probs: Float32Array;
  topk: { class: number; logit: number; prob: number }[];
  methods: Partial<Record<Method, MethodResult>>;
  /** Pixel DeepLIFT: sum of contributions and y(x) - y(x'), which must agree (the same as methods.deeplift.delta). */
  deepliftDelta?: Delta;
}
export interface Explanation {
  layer: string; layerShape: number[]; inputShape: number[]; images: ImageResult[]; timings: Record<string, number>;
  /** GPU bytes of the largest gradient plan this call used. */
  gpuBytes: number;
  /** GPU bytes the model holds after the call (Model.memory(): weights, and every plan of it and its heads, this
   *  explainer's cached ones included), and the Gpu's live total over every model on it. */
  memory: { model: number; weights: number; plans: number; gpuLive: number };
  /** With profile: GPU ms per dispatch of the gradient pass, summed over its runs. */
  profile?: import('../model.js').ProfileEntry[];
}

/** What a method's runner sees of one chunk of rows (image, target pairs) after the gradient pass. */
export interface RunContext {
  model: Model; o: ExplainOptions;
  /** The chunk's images (k, C, H, W) and their targets; seed rows (k, classes) when the targets are seed vectors. */
  x: Float32Array; k: number; targets: number[]; seed?: Float32Array;
  /** Global row number of the chunk's first row (sampling streams are indexed by row, so batching does not change them). */
  row0: number;
  /** The target layer, its per-image shape (K,h,w), its activation (k,K,h,w; read back only when a requested method's
   *  row has readsA, else empty) and the logits (k, classes) of the gradient pass. */
  A: string; aShape: number[]; act: Float32Array; logits: Float32Array;
  /** The gradient pass's result (dy/dA, dy/dx when requested). */
  res: RunResult;
  /** Images per gradient-pass plan (at most the rows), inputs per forward-only batch, modified inputs per backward batch. */
  B: number; PB: number; GB: number;
  /** A cached plan (single-flight per key); `model` defaults to the explained one. */
  plan(name: string, opts: PlanOptions, model?: Model): Promise<Plan>;
  /** The network after layer A (Ablation-CAM), one per layer. */
  head(A: string): Model;
  time<T>(what: string, f: () => Promise<T>): Promise<T>;
  /** A value shared by the methods of this chunk (the guided pass of guided and guided-gradcam), made once. */
  shared<T>(key: string, f: () => Promise<T>): Promise<T>;
  /** The final (H,W) map of a fused CAM method for row i (after the weights written by runners were re-mapped). */
  camMap(i: number, m: Method): Float32Array;
}
