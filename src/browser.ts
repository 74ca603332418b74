// Browser helpers on top of the core: a device (new, or the app's own), models from bytes / a URL / a File, images
// (HTMLImageElement, ImageBitmap, ImageData, canvas) to normalised (1,3,H,W) tensors, and maps to ImageData or a
// canvas ready to draw. Only DOM / WebGPU globals, no Node imports; the pure parts (pixelsToTensor, cropRect) run anywhere.
import { Gpu, GpuError, requestDevice } from './gpu.js';
import { Model } from './model.js';
import { resize } from './explain.js';
import { type Colormap, colorize } from './colormap.js';

/**
 * The Gpu for a page. With `device` (an app that already uses WebGPU), camgpu shares it: nothing is requested and the
 * device is never destroyed by camgpu; if it is lost, calls fail with DeviceLostError until the app gives a new one
 * (gpu.useDevice). Without, a lost device is replaced on the next call and models re-uploaded. Without, one is requested from navigator.gpu, falling back to the browser's
 * fallback (software) adapter, e.g. SwiftShader; no optional feature (such as shader-f16) is required.
 * `adapterInfo` names the adapter, e.g. "google swiftshader (fallback adapter)" in headless Chromium without a GPU.
 */
export async function browserGpu(device?: GPUDevice): Promise<Gpu> {
  if (device) {
    const gpu = new Gpu(device);
    gpu.adapterInfo = describeAdapter(device.adapterInfo);
    return gpu;
  }
  const nav = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!nav) throw new GpuError('no WebGPU here: navigator.gpu is missing (WebGPU needs a secure context, https:// or http://127.0.0.1, and a browser with it enabled)');
  let adapter: GPUAdapter | null = null;
  // requestDevice() asks for the adapter's full limits; this wrapper adds the fallback adapter and keeps the adapter for its info
  const gpuWithFallback = {
    requestAdapter: async (o?: GPURequestAdapterOptions) => (adapter = (await nav.requestAdapter(o)) ?? (await nav.requestAdapter({ ...o, forceFallbackAdapter: true }))),
    getPreferredCanvasFormat: () => nav.getPreferredCanvasFormat(),
    wgslLanguageFeatures: nav.wgslLanguageFeatures,
  } as unknown as GPU;
  let dev: GPUDevice;
  try { dev = await requestDevice(gpuWithFallback); } catch (e) {
    if (adapter) throw e;
    throw new GpuError('no WebGPU adapter: this browser has WebGPU disabled or no adapter for it (on Linux, Chromium needs --enable-unsafe-webgpu; '
      + 'without a GPU it falls back to SwiftShader)');
  }
  // after a device loss the next call requests a new one the same way (Gpu.ready)
  const gpu = new Gpu(dev, () => requestDevice(gpuWithFallback)), a = adapter as GPUAdapter | null;
  gpu.adapterInfo = describeAdapter(gpu.device.adapterInfo ?? a?.info, (a as { isFallbackAdapter?: boolean } | null)?.isFallbackAdapter);
  return gpu;
}

function describeAdapter(info: GPUAdapterInfo | undefined, fallback?: boolean): string {
  if (!info) return 'unknown adapter';
  const s = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ').replace(/\s+/g, ' ').trim();
  return `${s || 'unknown adapter'}${(info.isFallbackAdapter ?? fallback) ? ' (fallback adapter)' : ''}`;
}

export type ModelSource = Uint8Array | ArrayBuffer | Blob | Response | string | URL;

/** ONNX bytes from bytes, a File/Blob, a fetch Response, or a URL (fetched). */
export async function modelBytes(source: ModelSource): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (typeof Blob !== 'undefined' && source instanceof Blob) return new Uint8Array(await source.arrayBuffer());
  let res: Response;
  if (typeof source === 'string' || source instanceof URL) {
    try { res = await fetch(source); } catch (e) { throw new Error(`cannot fetch model '${source}': ${(e as Error).message}`); }
  } else res = source as Response;
  if (!res.ok) throw new Error(`cannot fetch model '${res.url || source}': HTTP ${res.status} ${res.statusText}`.trim());
  return new Uint8Array(await res.arrayBuffer());
}

/**
 * Loads an ONNX model onto a device: `device` is a GPUDevice (the app's own, shared), a Gpu (share one between models
 * so pipelines are compiled once), or null for a new one (browserGpu()). The name (for messages) defaults to the
 * file or URL name.
 */
export async function loadModel(device: GPUDevice | Gpu | null, source: ModelSource, name?: string): Promise<Model> {
  const gpu = device instanceof Gpu ? device : await browserGpu(device ?? undefined);
  const n = name ?? (typeof File !== 'undefined' && source instanceof File ? source.name
    : typeof source === 'string' || source instanceof URL ? String(source).split(/[?#]/)[0].split('/').pop() || 'model' : 'model');
  const bytes = await modelBytes(source);
  try { return await Model.load(gpu, bytes, n); }
  catch (e) { (e as Error).message = `${n}: ${(e as Error).message}`; throw e; }
}

export type ImageSource = HTMLImageElement | ImageBitmap | ImageData | HTMLCanvasElement | OffscreenCanvas | HTMLVideoElement;
export interface TensorOptions {
  /** [H, W] of the model input. */
  size: [number, number];
  /** Per-channel mean and std of the [0,1] RGB values: x = (v / 255 - mean) / std. Defaults 0 and 1. */
  mean?: number[]; std?: number[];
  /** 'stretch' (default): the whole image scaled to H x W. 'center-crop': scaled (aspect kept) so the shorter side is
   *  `resize` (default: just covering H x W), then the centre H x W cut out: torchvision's Resize(resize) + CenterCrop(size). */
  fit?: 'stretch' | 'center-crop';
  resize?: number;
}

/** The source rectangle [sx, sy, sw, sh] that fills an H x W target under `fit` (may extend past the image: zero padding). */
export function cropRect(width: number, height: number, o: TensorOptions): [number, number, number, number] {
  const [H, W] = o.size;
  if ((o.fit ?? 'stretch') === 'stretch') return [0, 0, width, height];
  const s = o.resize ? o.resize / Math.min(width, height) : Math.max(W / width, H / height); // target px per source px
  const sw = W / s, sh = H / s;
  return [(width - sw) / 2, (height - sh) / 2, sw, sh];
}

/** RGBA pixels (H*W*4, 0..255) -> (1,3,H,W) float32, (v / 255 - mean[c]) / std[c]. Pure: the same numbers in Node. */
export function pixelsToTensor(rgba: ArrayLike<number>, W: number, H: number, mean: number[] = [0, 0, 0], std: number[] = [1, 1, 1]): Float32Array {
  if (rgba.length !== W * H * 4) throw new Error(`pixelsToTensor: ${rgba.length} values are not ${W}x${H} RGBA (${W * H * 4})`);
  if (mean.length !== 3 || std.length !== 3 || std.some((s) => !(s !== 0))) throw new Error(`pixelsToTensor: mean and std need 3 values each, std non-zero (got mean ${mean}, std ${std})`);
  const x = new Float32Array(3 * H * W), HW = H * W;
  for (let c = 0; c < 3; c++) for (let p = 0; p < HW; p++) x[c * HW + p] = (rgba[p * 4 + c] / 255 - mean[c]) / std[c];
  return x;
}

function canvas(W: number, H: number): HTMLCanvasElement | OffscreenCanvas {
  if (typeof OffscreenCanvas !== 'undefined') return new OffscreenCanvas(W, H);
  if (typeof document !== 'undefined') return Object.assign(document.createElement('canvas'), { width: W, height: H });
  throw new Error('no canvas here (OffscreenCanvas or document): draw images in a browser or a worker, or use pixelsToTensor');
}
function ctx2d(c: HTMLCanvasElement | OffscreenCanvas): CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D {
  const g = c.getContext('2d', { willReadFrequently: true, colorSpace: 'srgb' }) as CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D | null;
  if (!g) throw new Error('cannot get a 2D canvas context');
  return g;
}
const isImageData = (s: unknown): s is ImageData => typeof ImageData !== 'undefined' && s instanceof ImageData;
function sizeOf(s: ImageSource): [number, number] {
  if (typeof HTMLImageElement !== 'undefined' && s instanceof HTMLImageElement) {
    if (!s.complete || !s.naturalWidth) throw new Error(`image '${s.src.slice(0, 80)}' is not loaded (await img.decode() first)`);
    return [s.naturalWidth, s.naturalHeight];
  }
  if (typeof HTMLVideoElement !== 'undefined' && s instanceof HTMLVideoElement) return [s.videoWidth, s.videoHeight];
  return [s.width, s.height];
}

/** The image drawn (resized / cropped per `o`) at o.size: the pixels the tensor is made from, and a base for overlays. */
export function imagePixels(source: ImageSource, o: TensorOptions): ImageData {
  const [H, W] = o.size, [w, h] = sizeOf(source);
  if (!(H > 0 && W > 0 && w > 0 && h > 0)) throw new Error(`cannot draw a ${w}x${h} image at ${W}x${H}`);
  const [sx, sy, sw, sh] = cropRect(w, h, o);
  if (isImageData(source) && sx === 0 && sy === 0 && w === W && h === H) return source; // exact: no resampling
  let src: CanvasImageSource = source as CanvasImageSource;
  if (isImageData(source)) { const c = canvas(w, h); ctx2d(c).putImageData(source, 0, 0); src = c; }
  const g = ctx2d(canvas(W, H));
  g.imageSmoothingEnabled = true; g.imageSmoothingQuality = 'high';
  g.drawImage(src, sx, sy, sw, sh, 0, 0, W, H);
  return g.getImageData(0, 0, W, H);
}

/** An image as the normalised (1,3,H,W) Float32Array a model takes: drawn at o.size (see TensorOptions), then pixelsToTensor. */
export function imageToTensor(source: ImageSource, o: TensorOptions): Float32Array {
  const [H, W] = o.size;
  return pixelsToTensor(imagePixels(source, o).data, W, H, o.mean, o.std);
}

export interface OverlayOptions {
  /** Weight of the colour over the image (default 0.5); without an image, the alpha channel of the result. */
  alpha?: number;
  /** The image under the map: ImageData (any size: the map is resized bilinearly to it) or a source drawn at the map's size. */
  image?: ImageData | ImageSource;
}

/** A map (H, W) with values in [0,1] (MethodResult.map) coloured and blended onto an image, as ImageData. */
export function mapToImageData(map: ArrayLike<number>, W: number, H: number, colormap: Colormap = 'jet', o: OverlayOptions = {}): ImageData {
  if (map.length !== W * H) throw new Error(`map has ${map.length} values, not ${W}x${H}`);
  let img: ImageData | undefined, m = map, w = W, h = H;
  if (o.image) img = isImageData(o.image) ? o.image : imagePixels(o.image, { size: [H, W] });
  if (img && (img.width !== W || img.height !== H)) { w = img.width; h = img.height; m = resize(map, H, W, h, w, false); }
  return new ImageData(colorize(m, colormap, { alpha: o.alpha, image: img?.data }), w, h);
}

/** mapToImageData on a new canvas (HTMLCanvasElement in a page, OffscreenCanvas in a worker). */
export function mapToCanvas(map: ArrayLike<number>, W: number, H: number, colormap: Colormap = 'jet', o: OverlayOptions = {}): HTMLCanvasElement | OffscreenCanvas {
  const d = mapToImageData(map, W, H, colormap, o);
  const c = typeof document !== 'undefined' ? Object.assign(document.createElement('canvas'), { width: d.width, height: d.height }) : canvas(d.width, d.height);
  ctx2d(c).putImageData(d, 0, 0);
  return c;
}

