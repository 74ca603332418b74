// camgpu core: browser-safe (no Node imports). The Node layer (node/) only adds Dawn and files.
export { Model, Plan, candidates, convShape, defaultTile, TILES, addProfiles } from './model.js';
export type { Mode, PlanOptions, RunOptions, RunResult, LoadOptions, ProfileEntry, Tile } from './model.js';
export { tune } from './tune.js';
export type { TuneEntry, TuneOptions } from './tune.js';
export { Gpu, GpuError, requestDevice, NO_ADAPTER } from './gpu.js';
export { importOnnx, importModel, SUPPORTED_OPS, UnsupportedError } from './import.js';
export { parseOnnx, parseTensor, OnnxError } from './onnx.js';
export { ModelError, logitsOf, numel, macs, validate } from './graph.js';
export type { Graph, Node, Op, Shape, Tensor } from './graph.js';
export { explain, Explainer, defaultLayer, resolveLayer, parseMethods, eigenCam, resize, normMap, softmax } from './explain.js';
export type { ExplainOptions, Explanation, ImageResult, MethodResult, Targets } from './explain.js';
export { METHODS, METHOD_NAMES, FAST_METHODS } from './methods.js';
export type { Method, MethodInfo } from './methods.js';
export { browserGpu, loadModel, modelBytes, imageToTensor, imagePixels, pixelsToTensor, cropRect, mapToImageData, mapToCanvas, cancellable, CancelledError } from './browser.js';
export type { ModelSource, ImageSource, TensorOptions, OverlayOptions } from './browser.js';
export { COLORMAPS, colormap, colormapLut, colormapIndex, colorize } from './colormap.js';
export type { Colormap, ColorizeOptions } from './colormap.js';
