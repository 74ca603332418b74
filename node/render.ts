// Pictures of explanations: colormaps, heat-map overlays, and the comparison grid (one row per image-target,
// a column per method) written as a PNG stream so a run of many images never holds the whole grid in memory.
// Labels use a 3x5 bitmap font defined below. Images are Rgb (H,W,3) uint8 (see image.ts).
import { closeSync, openSync, writeSync } from 'node:fs';
import { once } from 'node:events';
import { createDeflate } from 'node:zlib';
import type { Rgb } from './image.js';
import { Colormap, colormapIndex, colormapLut } from '../src/colormap.js';

// ========================================================================================== colormaps
// The tables are the browser's (src/colormap.ts: matplotlib's jet, viridis, inferno and Google's turbo), so CLI
// and demo pictures are the same.
export { COLORMAPS as COLORMAP_NAMES } from '../src/colormap.js';
export type { Colormap } from '../src/colormap.js';
/** The (256, 3) RGB table of a colormap. */
export const lut = (name: Colormap): Uint8Array => colormapLut(name);

/**
 * The heat map blended on the image: out = (1 - alpha) * image + alpha * colormap(map), rounded.
 * map: (H,W) in [0,1] (values outside are clamped), quantised to the 256-entry table.
 */
export function overlay(img: Rgb, map: Float32Array, table: Uint8Array, alpha: number): Rgb {
  const n = img.width * img.height, data = new Uint8Array(n * 3);
  if (map.length !== n) throw new Error(`overlay: map has ${map.length} values, image ${img.width}x${img.height}`);
  for (let p = 0; p < n; p++) {
    const i = 3 * colormapIndex(map[p]);
    for (let c = 0; c < 3; c++) data[3 * p + c] = Math.round((1 - alpha) * img.data[3 * p + c] + alpha * table[i + c]);
  }
  return { width: img.width, height: img.height, data };
}

/** Nearest-neighbour upscaling by an integer factor (grid tiles of small models). */
export function upscale(img: Rgb, f: number): Rgb {
  if (f === 1) return img;
  const W = img.width * f, H = img.height * f, data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data.set(img.data.subarray(3 * (((y / f) | 0) * img.width + ((x / f) | 0)), 3 * (((y / f) | 0) * img.width + ((x / f) | 0)) + 3), 3 * (y * W + x));
  return { width: W, height: H, data };
}

// =============================================================================================== font

/**
 * A 3x5 pixel font: upper case, digits and common punctuation (lower case is drawn as upper case, anything
 * else as '?'). Each glyph is five rows, top to bottom, '#' = ink.
 */
const GLYPHS: Record<string, string> = {
  ' ': '...|...|...|...|...', A: '.#.|#.#|###|#.#|#.#', B: '##.|#.#|##.|#.#|##.', C: '.##|#..|#..|#..|.##',
  D: '##.|#.#|#.#|#.#|##.', E: '###|#..|##.|#..|###', F: '###|#..|##.|#..|#..', G: '.##|#..|#.#|#.#|.##',
  H: '#.#|#.#|###|#.#|#.#', I: '###|.#.|.#.|.#.|###', J: '..#|..#|..#|#.#|.#.', K: '#.#|#.#|##.|#.#|#.#',
  L: '#..|#..|#..|#..|###', M: '#.#|###|#.#|#.#|#.#', N: '##.|#.#|#.#|#.#|#.#', O: '###|#.#|#.#|#.#|###',
  P: '##.|#.#|##.|#..|#..', Q: '.#.|#.#|#.#|##.|.##', R: '##.|#.#|##.|#.#|#.#', S: '.##|#..|.#.|..#|##.',
  T: '###|.#.|.#.|.#.|.#.', U: '#.#|#.#|#.#|#.#|###', V: '#.#|#.#|#.#|#.#|.#.', W: '#.#|#.#|#.#|###|#.#',
  X: '#.#|#.#|.#.|#.#|#.#', Y: '#.#|#.#|.#.|.#.|.#.', Z: '###|..#|.#.|#..|###',
  0: '.#.|#.#|#.#|#.#|.#.', 1: '.#.|##.|.#.|.#.|###', 2: '##.|..#|.#.|#..|###', 3: '##.|..#|.#.|..#|##.',
  4: '#.#|#.#|###|..#|..#', 5: '###|#..|##.|..#|##.', 6: '.##|#..|###|#.#|###', 7: '###|..#|.#.|.#.|.#.',
  8: '###|#.#|###|#.#|###', 9: '###|#.#|###|..#|##.',
  '.': '...|...|...|...|.#.', ',': '...|...|...|.#.|#..', ':': '...|.#.|...|.#.|...', ';': '...|.#.|...|.#.|#..',
  '-': '...|...|###|...|...', '+': '...|.#.|###|.#.|...', _: '...|...|...|...|###', '=': '...|###|...|###|...',
  '/': '..#|..#|.#.|#..|#..', "'": '.#.|.#.|...|...|...', '"': '#.#|#.#|...|...|...', '(': '.#.|#..|#..|#..|.#.',
  ')': '.#.|..#|..#|..#|.#.', '[': '##.|#..|#..|#..|##.', ']': '.##|..#|..#|..#|.##', '%': '#.#|..#|.#.|#..|#.#',
  '#': '#.#|###|#.#|###|#.#', '!': '.#.|.#.|.#.|...|.#.', '?': '##.|..#|.#.|...|.#.', '*': '#.#|.#.|#.#|...|...',
  '&': '.#.|#.#|.#.|#.#|.##', '<': '..#|.#.|#..|.#.|..#', '>': '#..|.#.|..#|.#.|#..', '@': '###|#.#|###|#..|.##',
};
export const FONT = { w: 3, h: 5, advance: 4 };

/** Draws text at (x, y) (top-left), each font pixel a scale x scale block; clipped to maxWidth pixels. */
export function drawText(img: Rgb, x: number, y: number, text: string, color: [number, number, number], scale = 2, maxWidth = img.width - x) {
  const chars = [...text.toUpperCase()].slice(0, Math.max(0, Math.floor((maxWidth + scale) / (FONT.advance * scale))));
  chars.forEach((ch, i) => {
    const rows = (GLYPHS[ch] ?? GLYPHS['?']).split('|');
    for (let r = 0; r < FONT.h; r++) for (let c = 0; c < FONT.w; c++) {
      if (rows[r][c] !== '#') continue;
      for (let dy = 0; dy < scale; dy++) for (let dx = 0; dx < scale; dx++) {
        const px = x + (i * FONT.advance + c) * scale + dx, py = y + r * scale + dy;
        if (px >= 0 && py >= 0 && px < img.width && py < img.height) img.data.set(color, 3 * (py * img.width + px));
      }
    }
  });
}

// =============================================================================================== grid

const PAD = 4, TEXT_SCALE = 2, STRIP = FONT.h * TEXT_SCALE + 2 * PAD, MIN_TILE = 128;
const BG: [number, number, number] = [24, 24, 24], INK: [number, number, number] = [240, 240, 240];

/**
 * Where everything sits in the grid: a header strip with the column titles, then per row a label strip and
 * the tiles. Tiles are the (H,W) pictures upscaled by the integer `scale` that makes them at least 128 px wide.
 */
export function gridLayout(rows: number, cols: number, H: number, W: number) {
  const scale = Math.max(1, Math.ceil(MIN_TILE / W)), tw = W * scale, th = H * scale, rowH = STRIP + th + PAD;
  return {
    scale, tw, th, rowH, width: PAD + cols * (tw + PAD), height: STRIP + rows * rowH,
    /** Top-left pixel of tile (row r, column c). */
    tile: (r: number, c: number): [number, number] => [PAD + c * (tw + PAD), STRIP + r * rowH + STRIP],
  };
}

/** The grid PNG, written row band by row band: new GridWriter(...), await addRow(...) per row, await close(). */
export class GridWriter {
  private png: PngStream; private done = 0; private header: Promise<void>;
  readonly layout: ReturnType<typeof gridLayout>;
  constructor(path: string, readonly rows: number, titles: string[], H: number, W: number) {
    this.layout = gridLayout(rows, titles.length, H, W);
    const L = this.layout, band = blank(L.width, STRIP);
    titles.forEach((t, c) => drawText(band, PAD + c * (L.tw + PAD), PAD, t, INK, TEXT_SCALE, L.tw));
    this.png = new PngStream(path, L.width, L.height);
    this.header = this.png.write(band);
  }

  /** One row: a label across the whole width, then the tiles (each H x W) left to right. */
  async addRow(label: string, tiles: Rgb[]) {
    const L = this.layout, band = blank(L.width, L.rowH);
    if (this.done >= this.rows) throw new Error(`grid: more than ${this.rows} rows`);
    drawText(band, PAD, PAD, label, INK, TEXT_SCALE, L.width - 2 * PAD);
    tiles.forEach((t, c) => {
      const up = upscale(t, L.scale), x0 = PAD + c * (L.tw + PAD);
      for (let y = 0; y < L.th; y++) band.data.set(up.data.subarray(y * L.tw * 3, (y + 1) * L.tw * 3), ((STRIP + y) * L.width + x0) * 3);
    });
    this.done++;
    await this.header;
    await this.png.write(band);
  }

  async close() {
    if (this.done !== this.rows) throw new Error(`grid: ${this.done} of ${this.rows} rows written`);
    await this.png.end();
  }
}

function blank(width: number, height: number): Rgb {
  const data = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) data.set(BG, 3 * p);
  return { width, height, data };
}

// ====================================================================================== streamed PNG

const CRC = Uint32Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
function crc32(bytes: Uint8Array, c = 0xffffffff): number { for (const b of bytes) c = CRC[(c ^ b) & 255] ^ (c >>> 8); return c; }

/**
 * An 8-bit RGB PNG whose size is known up front, written band by band: signature and IHDR first, every band's
 * scanlines (filter type 0) through one zlib stream whose output goes out as IDAT chunks, IEND at the end.
 */
class PngStream {
  private fd: number; private z = createDeflate({ level: 6 }); private rows = 0;
  constructor(readonly path: string, readonly width: number, readonly height: number) {
    this.fd = openSync(path, 'w');
    writeSync(this.fd, Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const ihdr = new Uint8Array(13), dv = new DataView(ihdr.buffer);
    dv.setUint32(0, width); dv.setUint32(4, height); ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, RGB, deflate, filter 0, no interlace
    this.chunk('IHDR', ihdr);
    this.z.on('data', (d: Buffer) => this.chunk('IDAT', d));
  }

  private chunk(type: string, data: Uint8Array) {
    const head = new Uint8Array(8), dv = new DataView(head.buffer), t = new TextEncoder().encode(type);
    dv.setUint32(0, data.length); head.set(t, 4);
    const tail = new Uint8Array(4); new DataView(tail.buffer).setUint32(0, (crc32(data, crc32(t)) ^ 0xffffffff) >>> 0);
    writeSync(this.fd, head); writeSync(this.fd, data); writeSync(this.fd, tail);
  }

  /** Appends the rows of `band` (band.width must be the PNG's width). */
  async write(band: Rgb) {
    if (band.width !== this.width || this.rows + band.height > this.height) throw new Error(`png ${this.path}: band ${band.width}x${band.height} does not fit`);
    const line = this.width * 3, out = Buffer.alloc(band.height * (line + 1));
    for (let y = 0; y < band.height; y++) out.set(band.data.subarray(y * line, (y + 1) * line), y * (line + 1) + 1);
    this.rows += band.height;
    if (!this.z.write(out)) await once(this.z, 'drain');
  }

  async end() {
    if (this.rows !== this.height) throw new Error(`png ${this.path}: ${this.rows} of ${this.height} rows written`);
    const finished = once(this.z, 'end');
    this.z.end();
    await finished;
    this.chunk('IEND', new Uint8Array(0));
    closeSync(this.fd);
  }
}
