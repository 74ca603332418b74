// Images in and out for the CLI: PNG (pngjs) and JPEG (jpeg-js) decoding to 8-bit RGB, the torchvision
// preprocessing (Resize, CenterCrop, Normalize) and the model sidecar JSON that configures it.
//   pixels:  Rgb.data (H,W,3) uint8, interleaved, row-major
//   planes:  Float32Array (3,H,W), values 0..255 before normalisation
//   model x: Float32Array (3,H,W), (v/255 - mean_c) / std_c
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import { inflateSync } from 'node:zlib';
import { FileError, pathKind, readRegular } from './files.js';

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

// ============================================================================================ limits

/** What an input image may cost. maxMegapixels bounds the decoded image and the resized one (before the crop). */
export interface ImageLimits { maxMegapixels?: number }
export const DEFAULT_MAX_MEGAPIXELS = 50;
const maxPixels = (l?: ImageLimits) => Math.round((l?.maxMegapixels ?? DEFAULT_MAX_MEGAPIXELS) * 1e6);
const mp = (px: number) => `${(px / 1e6).toFixed(px < 1e7 ? 2 : 1)} megapixels`;

/** An image's size and layout from its header, read before anything is decoded. */
export interface ImageHeader { kind: 'png' | 'jpeg'; width: number; height: number; interlaced: boolean; bitDepth: number; channels: number }

const be32 = (b: Uint8Array, i: number) => ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
const be16 = (b: Uint8Array, i: number) => (b[i] << 8) | b[i + 1];

/** PNG IHDR: the first chunk, 13 bytes: width, height (4 each), bit depth, colour type, compression, filter, interlace. */
function pngHeader(b: Uint8Array, file: string): ImageHeader {
  const bad = (why: string): never => { throw new ImageError(`${file}: corrupt PNG (${why})`); };
  if (b.length < 33 || be32(b, 8) !== 13 || String.fromCharCode(...b.subarray(12, 16)) !== 'IHDR') bad('no IHDR chunk first');
  const width = be32(b, 16), height = be32(b, 20), depth = b[24], color = b[25], interlace = b[28];
  if (!width || !height || width > 2 ** 31 - 1 || height > 2 ** 31 - 1) bad(`size ${width}x${height}`);
  const depths: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
  if (!depths[color]?.includes(depth)) bad(`colour type ${color} with bit depth ${depth}`);
  if (b[26] !== 0 || b[27] !== 0 || interlace > 1) bad(`compression ${b[26]}, filter ${b[27]}, interlace ${interlace}`);
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[color as 0 | 2 | 3 | 4 | 6];
  return { kind: 'png', width, height, interlaced: interlace === 1, bitDepth: depth, channels };
}

/** JPEG: the markers up to the first SOF (baseline, extended, progressive, lossless): precision, height, width, components. */
function jpegHeader(b: Uint8Array, file: string): ImageHeader {
  const bad = (why: string): never => { throw new ImageError(`${file}: corrupt or truncated JPEG (${why})`); };
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) bad(`no marker at byte ${i}`);
    const m = b[i + 1];
    if (m === 0xff) { i++; continue; } // fill byte
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) { i += 2; continue; } // standalone markers
    if (m === 0xd9 || m === 0xda) bad(`${m === 0xda ? 'scan' : 'end of image'} before the frame header`);
    const len = be16(b, i + 2);
    if (len < 2 || i + 2 + len > b.length) bad(`segment of ${len} bytes at byte ${i} runs past the end`);
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      if (len < 8) bad('short frame header');
      const height = be16(b, i + 5), width = be16(b, i + 7), channels = b[i + 9];
      if (!width || !height) bad(`frame size ${width}x${height} (a height given later by DNL is not supported)`);
      if (![1, 3, 4].includes(channels)) bad(`${channels} components`);
      return { kind: 'jpeg', width, height, interlaced: m === 0xc2 || m === 0xc6 || m === 0xca || m === 0xce, bitDepth: b[i + 4], channels };
    }
    i += 2 + len;
  }
  return bad('no frame header');
}

/** The header of PNG or JPEG bytes, checked against the limits: pixels, and bytes enough for that many pixels (a PNG's
 *  zlib stream cannot shrink data more than 1032:1; a JPEG needs at least a bit per 8x8 block), so a tiny file
 *  claiming a huge image is refused here, before anything is allocated. */
export function imageHeader(bytes: Uint8Array, file: string, limits?: ImageLimits): ImageHeader {
  const kind = sniff(bytes);
  if (kind !== 'png' && kind !== 'jpeg') throw new ImageError(`${file}: not a PNG or JPEG image`);
  const h = kind === 'png' ? pngHeader(bytes, file) : jpegHeader(bytes, file), px = h.width * h.height, max = maxPixels(limits);
  if (px > max) throw new ImageError(`${file}: ${h.width}x${h.height} is ${mp(px)}, above the limit of ${mp(max)} (--max-megapixels; API: maxMegapixels)`);
  const raw = kind === 'png' ? h.height * (Math.ceil((h.width * h.channels * h.bitDepth) / 8) + 1) : 0;
  const least = kind === 'png' ? raw / 1100 : px / 64 / 8 / 2;
  if (bytes.length < least) throw new ImageError(`${file}: ${bytes.length} bytes cannot hold a ${h.width}x${h.height} ${kind === 'png' ? 'PNG' : 'JPEG'} (truncated, or a header that lies)`);
  return h;
}

/** A PNG's IDAT stream inflated with a cap, for interlaced images (pngjs caps only non-interlaced ones): the Adam7
 *  passes' filtered rows are all it may hold. */
function checkInterlaced(b: Uint8Array, h: ImageHeader, file: string) {
  const bpp = h.channels * h.bitDepth, passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
  let size = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const w = Math.ceil((h.width - x0) / dx), rows = Math.ceil((h.height - y0) / dy);
    if (w > 0 && rows > 0) size += rows * (Math.ceil((w * bpp) / 8) + 1);
  }
  const parts: Uint8Array[] = [];
  for (let i = 8; i + 12 <= b.length;) {
    const len = be32(b, i), type = String.fromCharCode(...b.subarray(i + 4, i + 8));
    if (i + 12 + len > b.length) break;
    if (type === 'IDAT') parts.push(b.subarray(i + 8, i + 8 + len));
    if (type === 'IEND') break;
    i += 12 + len;
  }
  try { inflateSync(Buffer.concat(parts), { maxOutputLength: size + 1 }); }
  catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) throw new ImageError(`${file}: corrupt PNG (its interlaced image data inflates past the ${size} bytes a ${h.width}x${h.height} image holds)`);
    throw new ImageError(`${file}: corrupt PNG (image data does not inflate: ${(e as NodeJS.ErrnoException).code ?? 'zlib error'})`);
  }
}

/**
 * PNG or JPEG bytes -> 8-bit RGB. pngjs expands grayscale, palette and 16-bit PNGs to 8-bit RGBA; alpha is
 * dropped, as PIL's Image.convert('RGB') does in a torchvision pipeline (no compositing on a background).
 * JPEG: baseline and progressive, grayscale and CMYK; a truncated file is an error, as in PIL.
 */
export function decodeImage(bytes: Uint8Array, file: string, limits?: ImageLimits): Rgb {
  const h = imageHeader(bytes, file, limits), kind = h.kind;
  if (kind === 'png') {
    if (h.interlaced) checkInterlaced(bytes, h, file);
    let png: PNG;
    try { png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)); }
    catch (e) { throw new ImageError(`${file}: corrupt PNG (${pngReason(e)})`); }
    if (png.width !== h.width || png.height !== h.height) throw new ImageError(`${file}: corrupt PNG (decoded ${png.width}x${png.height}, header says ${h.width}x${h.height})`);
    const { width, height } = png, data = new Uint8Array(width * height * 3);
    for (let p = 0; p < width * height; p++) { data[3 * p] = png.data[4 * p]; data[3 * p + 1] = png.data[4 * p + 1]; data[3 * p + 2] = png.data[4 * p + 2]; }
    return { width, height, data };
  }
  if (kind === 'jpeg') {
    try {
      // jpeg-js budgets its own buffers: the components at full size (4 bytes a sample with upsampling), the output
      const mb = Math.ceil((h.width * h.height * (h.channels * 4 + 3)) / 2 ** 20) + 16;
      const j = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false, maxMemoryUsageInMB: mb, maxResolutionInMP: maxPixels(limits) / 1e6 + 1 });
      if (j.width !== h.width || j.height !== h.height || j.data.length !== h.width * h.height * 3) throw new Error('size');
      return { width: j.width, height: j.height, data: j.data };
    } catch (e) { throw new ImageError(`${file}: corrupt or truncated JPEG (${jpegReason(e)})`); }
  }
  throw new ImageError(`${file}: not a PNG or JPEG image`);
}

/** A decoder's failure in a few plain words, never its internals (stack text, engine messages). */
function pngReason(e: unknown): string {
  const m = String((e as Error)?.message ?? e);
  if (/unexpected end|truncat|Incomplete|premature/i.test(m)) return 'truncated';
  if (/crc/i.test(m)) return 'bad CRC';
  if (/invalid (signature|filter|file)|unsupported|unrecognised|unrecognized|bad|invalid/i.test(m)) return m.length < 80 && !/undefined|NaN|of null/.test(m) ? m : 'invalid data';
  if (/incorrect header check|invalid (stored|block|distance|code)|zlib|inflate/i.test(m)) return 'image data does not inflate';
  return 'invalid data';
}
function jpegReason(e: unknown): string {
  const m = String((e as Error)?.message ?? e);
  if (/maxMemoryUsageInMB|maxResolutionInMP|memory/i.test(m)) return 'it needs more memory than its size allows';
  if (/marker|SOI|EOI|huffman|scan|DQT|DHT|SOF|unknown|unsupported/i.test(m) && m.length < 80 && !/undefined|NaN|of null|Cannot read/.test(m)) return m;
  return 'invalid data';
}

/** Reads and decodes an image file (a regular file only; header checked before decoding). */
export function readImage(path: string, limits?: ImageLimits): Rgb {
  let bytes: Uint8Array;
  try { bytes = readRegular(path, 'image'); } catch (e) { if (e instanceof FileError) throw new ImageError(e.message); throw e; }
  return decodeImage(bytes, path, limits);
}

/** The size an image becomes under Resize(resize) (torchvision: shorter side to `resize`, the longer floor(resize *
 *  long / short)); refused when it is smaller than the crop or above the pixel limit (a 1x100000 strip would become
 *  256x25600000). */
export function resizedSize(w: number, h: number, H: number, W: number, resize: Sidecar['resize'], file: string, limits?: ImageLimits): [number, number] {
  let rh: number, rw: number;
  if (typeof resize === 'number') {
    if (h <= w) { rh = resize; rw = Math.floor((resize * w) / h); } else { rw = resize; rh = Math.floor((resize * h) / w); }
  } else [rh, rw] = resize;
  if (rh < H || rw < W) throw new ImageError(`${file}: resized image ${rw}x${rh} is smaller than the crop ${W}x${H}`);
  const max = maxPixels(limits);
  if (rh * rw > max) throw new ImageError(`${file}: ${w}x${h} resized to ${rw}x${rh} is ${mp(rh * rw)}, above the limit of ${mp(max)} (aspect ratio ${(Math.max(w, h) / Math.min(w, h)).toFixed(0)}:1; --max-megapixels)`);
  return [rh, rw];
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
/** The largest "resize" / "crop" side a sidecar may give (the resized image must also stay under the pixel limit). */
export const MAX_SIDE = 16384;

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
  if (pathKind(path) === null) return defaults;
  try { text = new TextDecoder().decode(readRegular(path, 'sidecar', 2 ** 24)); } catch (e) { throw new ImageError((e as Error).message); }
  let j: Record<string, unknown>;
  try { j = JSON.parse(text); } catch (e) { throw new ImageError(`${path}: not valid JSON (${(e as Error).message})`); }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw new ImageError(`${path}: expected a JSON object`);
  const bad = (why: string) => new ImageError(`${path}: ${why}`);
  for (const k of Object.keys(j)) if (!KEYS.includes(k)) throw bad(`unknown key '${k.slice(0, 40)}' (keys: ${KEYS.join(', ')})`);
  const nums = (k: string, n: number, pos = false) => {
    const v = j[k];
    if (!Array.isArray(v) || v.length !== n || v.some((x) => typeof x !== 'number' || !Number.isFinite(x) || (pos && x <= 0)))
      throw bad(`'${k}' must be ${n} ${pos ? 'positive ' : ''}numbers, got ${JSON.stringify(v)}`);
    return v as number[];
  };
  const size = (k: string): number | [number, number] => {
    const v = j[k];
    const ok = (x: unknown) => Number.isInteger(x) && (x as number) > 0 && (x as number) <= MAX_SIDE;
    if (ok(v)) return v as number;
    if (Array.isArray(v) && v.length === 2 && v.every(ok)) return v as [number, number];
    throw bad(`'${k}' must be an integer in [1, ${MAX_SIDE}] or [h, w] of them, got ${JSON.stringify(v)}`);
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
export function preprocess(img: Rgb, H: number, W: number, s: Pick<Sidecar, 'mean' | 'std' | 'resize'>, file = 'image', limits?: ImageLimits): { x: Float32Array; view: Rgb } {
  const { width: w, height: h } = img;
  const [rh, rw] = resizedSize(w, h, H, W, s.resize, file, limits);
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
