// Images in and out for the CLI: PNG (pngjs) and JPEG (jpeg-js) decoding to 8-bit RGB, the torchvision
// preprocessing (Resize, CenterCrop, Normalize) and the model sidecar JSON that configures it.
//   pixels:  Rgb.data (H,W,3) uint8, interleaved, row-major
//   planes:  Float32Array (3,H,W), values 0..255 before normalisation
//   model x: Float32Array (3,H,W), (v/255 - mean_c) / std_c
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';

export interface Rgb { width: number; height: number; data: Uint8Array }

/** A file that is not a readable image; the message names the file. */
export class ImageError extends Error {}

export type FileKind = 'png' | 'jpeg' | 'npy';
/** The kind of a file from its first bytes (not its extension), or null. */
export function sniff(head: Uint8Array): FileKind | null {
  const is = (sig: number[]) => sig.every((b, i) => head[i] === b);
  if (is([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (is([0xff, 0xd8, 0xff])) return 'jpeg';
  if (is([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59])) return 'npy';
  return null;
}

/**
 * PNG or JPEG bytes -> 8-bit RGB. pngjs expands grayscale, palette and 16-bit PNGs to 8-bit RGBA; alpha is
 * dropped, as PIL's Image.convert('RGB') does in a torchvision pipeline (no compositing on a background).
 * JPEG: baseline and progressive, grayscale and CMYK; a truncated file is an error, as in PIL.
 */
export function decodeImage(bytes: Uint8Array, file: string): Rgb {
  const kind = sniff(bytes);
  if (kind === 'png') {
    let png: PNG;
    try { png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)); }
    catch (e) { throw new ImageError(`${file}: corrupt PNG (${(e as Error).message})`); }
    const { width, height } = png, data = new Uint8Array(width * height * 3);
    for (let p = 0; p < width * height; p++) { data[3 * p] = png.data[4 * p]; data[3 * p + 1] = png.data[4 * p + 1]; data[3 * p + 2] = png.data[4 * p + 2]; }
    return { width, height, data };
  }
  if (kind === 'jpeg') {
    try {
      const j = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false, maxMemoryUsageInMB: 1024 });
      if (!j.width || !j.height) throw new Error('no image data');
      return { width: j.width, height: j.height, data: j.data };
    } catch (e) { throw new ImageError(`${file}: corrupt or truncated JPEG (${String((e as Error).message ?? e)})`); }
  }
  throw new ImageError(`${file}: not a PNG or JPEG image`);
}

/** RGB -> PNG bytes (8-bit RGB, no alpha). */
export function encodePng(img: Rgb): Uint8Array {
  const png = new PNG({ width: img.width, height: img.height });
  for (let p = 0; p < img.width * img.height; p++) {
    png.data[4 * p] = img.data[3 * p]; png.data[4 * p + 1] = img.data[3 * p + 1]; png.data[4 * p + 2] = img.data[3 * p + 2]; png.data[4 * p + 3] = 255;
  }
  return PNG.sync.write(png, { colorType: 2 });
}

// ============================================================================================ sidecar

/** How images become model inputs; fields of the sidecar JSON next to the model (`m.onnx` -> `m.json`). */
export interface Sidecar {
  /** The sidecar's path, or null when the ImageNet defaults are used. */
  path: string | null;
  mean: number[]; std: number[];
  /** One name per class; default: the class indices. */
  labels: string[];
  /** Default target layer, or undefined for the model's default. */
  layer?: string;
  /** A number: the shorter side is resized to it (aspect kept); [h, w]: resized to exactly that. */
  resize: number | [number, number];
}

export const IMAGENET_MEAN = [0.485, 0.456, 0.406], IMAGENET_STD = [0.229, 0.224, 0.225];
const KEYS = ['input', 'mean', 'std', 'labels', 'layer', 'resize', 'crop'];

export const sidecarPath = (model: string) => (/\.onnx$/i.test(model) ? model.replace(/\.onnx$/i, '.json') : `${model}.json`);

/**
 * Reads `<model>.json` if present. inShape: the model's (C,H,W). Defaults: ImageNet mean/std, shorter side to
 * round(max(H,W) * 256/224) then centre crop (H,W), labels = class indices. Every field is checked against the
 * model; `input` and `crop` must agree with the model's input (they document it, they cannot change it).
 */
export function readSidecar(model: string, inShape: number[], classes: number): Sidecar {
  const path = sidecarPath(model), [C, H, W] = inShape;
  const defaults: Sidecar = { path: null, mean: IMAGENET_MEAN, std: IMAGENET_STD, labels: Array.from({ length: classes }, (_, i) => String(i)), resize: Math.round((Math.max(H, W) * 256) / 224) };
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return defaults;
    throw new ImageError(`cannot read sidecar '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let j: Record<string, unknown>;
  try { j = JSON.parse(text); } catch (e) { throw new ImageError(`${path}: not valid JSON (${(e as Error).message})`); }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw new ImageError(`${path}: expected a JSON object`);
  const bad = (why: string) => new ImageError(`${path}: ${why}`);
  for (const k of Object.keys(j)) if (!KEYS.includes(k)) throw bad(`unknown key '${k}' (keys: ${KEYS.join(', ')})`);
  const nums = (k: string, n: number, pos = false) => {
    const v = j[k];
    if (!Array.isArray(v) || v.length !== n || v.some((x) => typeof x !== 'number' || !Number.isFinite(x) || (pos && x <= 0)))
      throw bad(`'${k}' must be ${n} ${pos ? 'positive ' : ''}numbers, got ${JSON.stringify(v)}`);
    return v as number[];
  };
  const size = (k: string): number | [number, number] => {
    const v = j[k];
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
    if (Array.isArray(v) && v.length === 2 && v.every((x) => Number.isInteger(x) && x > 0)) return v as [number, number];
    throw bad(`'${k}' must be a positive integer or [h, w], got ${JSON.stringify(v)}`);
  };
  const s: Sidecar = { ...defaults, path };
  if (j.input !== undefined) {
    const v = nums('input', 3, true);
    if (v.some((d, i) => d !== inShape[i])) throw bad(`'input' is [${v}] but the model's input is [${inShape}]`);
  }
  if (j.mean !== undefined) s.mean = nums('mean', C);
  if (j.std !== undefined) s.std = nums('std', C, true);
  if (j.labels !== undefined) {
    const v = j.labels;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw bad(`'labels' must be a list of strings`);
    if (v.length !== classes) throw bad(`'labels' has ${v.length} names; the model has ${classes} classes`);
    s.labels = v as string[];
  }
  if (j.layer !== undefined) {
    if (typeof j.layer !== 'string' || !j.layer) throw bad(`'layer' must be a tensor or node name`);
    s.layer = j.layer;
  }
  if (j.crop !== undefined) {
    const c = size('crop'), [ch, cw] = typeof c === 'number' ? [c, c] : c;
    if (ch !== H || cw !== W) throw bad(`'crop' is ${JSON.stringify(j.crop)} but the model's input is ${H}x${W}`);
  }
  if (j.resize !== undefined) s.resize = size('resize');
  else if (j.crop !== undefined) s.resize = Math.round((Math.max(H, W) * 256) / 224);
  const [rh, rw] = typeof s.resize === 'number' ? [s.resize, s.resize] : s.resize;
  if (typeof s.resize !== 'number' && (rh < H || rw < W)) throw bad(`'resize' ${JSON.stringify(s.resize)} is smaller than the crop ${H}x${W}`);
  if (typeof s.resize === 'number' && s.resize < Math.max(H, W)) throw bad(`'resize' ${s.resize} is smaller than the crop ${H}x${W}`);
  return s;
}

// ====================================================================================== preprocessing

/**
 * Resampling weights for n -> m samples along one axis, as PIL's bilinear filter (what torchvision's Resize
 * does on PIL images): a triangle kernel of radius 1 output-sample, widened to `scale = n/m` input samples
 * when shrinking (antialiasing); sample centres at half pixels; taps outside the image dropped and the rest
 * renormalised. Upscaling is therefore plain half-pixel bilinear with edge clamping.
 */
export function resampleWeights(n: number, m: number): { start: number; w: number[] }[] {
  const scale = n / m, width = Math.max(scale, 1), out: { start: number; w: number[] }[] = [];
  for (let i = 0; i < m; i++) {
    const centre = (i + 0.5) * scale;
    const lo = Math.max(Math.trunc(centre - width + 0.5), 0), hi = Math.min(Math.trunc(centre + width + 0.5), n);
    const w: number[] = [];
    for (let j = lo; j < hi; j++) w.push(Math.max(0, 1 - Math.abs((j - centre + 0.5) / width)));
    const s = w.reduce((a, b) => a + b, 0);
    out.push({ start: lo, w: w.map((x) => x / s) });
  }
  return out;
}

/** planes (C,h,w) -> (C,H,W): separable resampling, rows then columns, in float (no rounding in between). */
export function resizePlanes(src: Float32Array, C: number, h: number, w: number, H: number, W: number): Float32Array {
  if (h === H && w === W) return src.slice();
  const wx = resampleWeights(w, W), wy = resampleWeights(h, H);
  const mid = new Float32Array(C * h * W), out = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++) for (let y = 0; y < h; y++) for (let X = 0; X < W; X++) {
    const { start, w: k } = wx[X], row = (c * h + y) * w; let s = 0;
    for (let t = 0; t < k.length; t++) s += k[t] * src[row + start + t];
    mid[(c * h + y) * W + X] = s;
  }
  for (let c = 0; c < C; c++) for (let Y = 0; Y < H; Y++) {
    const { start, w: k } = wy[Y];
    for (let X = 0; X < W; X++) { let s = 0; for (let t = 0; t < k.length; t++) s += k[t] * mid[(c * h + start + t) * W + X]; out[(c * H + Y) * W + X] = s; }
  }
  return out;
}

/** Python's round(): halves to even (torchvision's CenterCrop offsets use it). */
export const roundHalfEven = (x: number) => { const r = Math.round(x); return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; };

/**
 * torchvision's Resize(resize) + CenterCrop((H,W)) + ToTensor + Normalize(mean, std) on an RGB image.
 * Resize(number): the shorter side becomes `resize`, the longer floor(resize * long / short).
 * Returns x (3,H,W) for the model and `view`, the (H,W) crop in 8-bit RGB as the model saw it.
 */
export function preprocess(img: Rgb, H: number, W: number, s: Pick<Sidecar, 'mean' | 'std' | 'resize'>): { x: Float32Array; view: Rgb } {
  const { width: w, height: h } = img;
  let rh: number, rw: number;
  if (typeof s.resize === 'number') {
    if (h <= w) { rh = s.resize; rw = Math.floor((s.resize * w) / h); } else { rw = s.resize; rh = Math.floor((s.resize * h) / w); }
  } else [rh, rw] = s.resize;
  if (rh < H || rw < W) throw new ImageError(`resized image ${rw}x${rh} is smaller than the crop ${W}x${H}`);
  const planes = new Float32Array(3 * h * w);
  for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) planes[c * h * w + p] = img.data[3 * p + c];
  const r = resizePlanes(planes, 3, h, w, rh, rw);
  const top = roundHalfEven((rh - H) / 2), left = roundHalfEven((rw - W) / 2);
  const x = new Float32Array(3 * H * W), view: Rgb = { width: W, height: H, data: new Uint8Array(H * W * 3) };
  for (let c = 0; c < 3; c++) for (let y = 0; y < H; y++) for (let X = 0; X < W; X++) {
    const v = r[(c * rh + top + y) * rw + left + X];
    x[(c * H + y) * W + X] = (v / 255 - s.mean[c]) / s.std[c];
    view.data[(y * W + X) * 3 + c] = Math.min(255, Math.max(0, Math.round(v)));
  }
  return { x, view };
}

/**
 * A normalised input (C,H,W) back to 8-bit RGB for display: x * std + mean when they fit C, else a per-image
 * min-max stretch; one channel is shown as gray, more than three as their first three.
 */
export function denormalize(x: Float32Array, C: number, H: number, W: number, mean: number[], std: number[]): Rgb {
  const HW = H * W, data = new Uint8Array(HW * 3);
  let lo = Infinity, hi = -Infinity; for (const v of x) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const known = mean.length === C && std.length === C;
  for (let c = 0; c < 3; c++) {
    const src = Math.min(c, C - 1);
    for (let p = 0; p < HW; p++) {
      const v = x[src * HW + p], u = known ? v * std[src] + mean[src] : (v - lo) / (hi - lo || 1);
      data[p * 3 + c] = Math.min(255, Math.max(0, Math.round(u * 255)));
    }
  }
  return { width: W, height: H, data };
}
