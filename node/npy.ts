// NumPy .npy (format 1.0-3.0) read/write for float32 C-order arrays: the exchange format with PyTorch.
export interface Npy { shape: number[]; data: Float32Array }

/** A .npy that cannot be read; the message names the file. */
export class NpyError extends Error { constructor(message: string) { super(message); this.name = 'NpyError'; } }

/** The header dict, parsed strictly: {'descr': '<f4', 'fortran_order': False, 'shape': (N, C, H, W), } with exactly
 *  those three keys, the shape a tuple of non-negative integers. */
function parseHeader(h: string, bad: (why: string) => never): { descr: string; fortran: boolean; shape: number[] } {
  let i = 0;
  const ws = () => { while (i < h.length && /\s/.test(h[i])) i++; };
  const eat = (c: string) => { ws(); if (h[i] !== c) bad(`header: expected '${c}' at character ${i}`); i++; };
  const str = () => { ws(); const q = h[i]; if (q !== "'" && q !== '"') bad(`header: expected a string at character ${i}`); const e = h.indexOf(q, i + 1); if (e < 0) bad('header: unterminated string'); const v = h.slice(i + 1, e); i = e + 1; return v; };
  const out: Record<string, unknown> = {};
  eat('{');
  for (;;) {
    ws();
    if (h[i] === '}') { i++; break; }
    const key = str();
    if (key in out) bad(`header: key '${key}' twice`);
    eat(':'); ws();
    if (key === 'descr') out.descr = str();
    else if (key === 'fortran_order') {
      const m = /^(True|False)/.exec(h.slice(i));
      if (!m) bad(`header: fortran_order must be True or False`);
      out.fortran = m![1] === 'True'; i += m![0].length;
    } else if (key === 'shape') {
      eat('('); const dims: number[] = [];
      for (;;) {
        ws();
        if (h[i] === ')') { i++; break; }
        const m = /^\d+/.exec(h.slice(i));
        if (!m) bad(`header: shape must be a tuple of non-negative integers, found '${h.slice(i, i + 12).split(/[,)]/)[0]}'`);
        if (m![0].length > 15) bad(`header: shape dimension ${m![0].slice(0, 20)} is too large`);
        dims.push(Number(m![0])); i += m![0].length; ws();
        if (h[i] === ',') i++; else if (h[i] !== ')') bad(`header: shape must be a tuple of non-negative integers, found '${h.slice(i, i + 12).split(/[,)]/)[0]}'`);
      }
      out.shape = dims;
    } else bad(`header: unknown key '${key.slice(0, 40)}'`);
    ws();
    if (h[i] === ',') i++; else if (h[i] !== '}') bad(`header: expected ',' or '}' at character ${i}`);
  }
  if (h.slice(i).trim()) bad('header: text after the dict');
  for (const k of ['descr', 'fortran', 'shape']) if (!(k in out)) bad(`header: no '${k === 'fortran' ? 'fortran_order' : k}'`);
  return out as { descr: string; fortran: boolean; shape: number[] };
}

/** .npy bytes -> float32 array; everything about the header and the data size is checked before allocating. */
export function parseNpy(buf: Uint8Array, file = '.npy'): Npy {
  const bad = (why: string): never => { throw new NpyError(`${file}: ${why}`); };
  if (buf.length < 10 || String.fromCharCode(...buf.subarray(0, 6)) !== '\x93NUMPY') bad('not a .npy file (bad magic)');
  const major = buf[6], dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (major < 1 || major > 3 || buf[7] !== 0) bad(`.npy format version ${major}.${buf[7]} is not supported (1.0, 2.0, 3.0)`);
  if (major > 1 && buf.length < 12) bad('truncated header');
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true), hstart = major === 1 ? 10 : 12;
  if (hstart + hlen > buf.length) bad(`header of ${hlen} bytes runs past the end of the file (${buf.length} bytes)`);
  if (hlen > 65536) bad(`header of ${hlen} bytes (at most 65536)`);
  const { descr, fortran, shape } = parseHeader(new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(buf.subarray(hstart, hstart + hlen)), bad);
  if (fortran) bad('Fortran-order arrays are not supported (save with np.ascontiguousarray)');
  const size = descr === '<f4' ? 4 : descr === '<f8' ? 8 : bad(`dtype ${descr.slice(0, 20)} is not supported (float32 <f4 or float64 <f8)`);
  const n = shape.reduce((a, b) => a * b, 1), off = hstart + hlen, body = buf.length - off;
  if (!Number.isSafeInteger(n * size) || n * size !== body)
    bad(`${n * size > body ? 'truncated, ' : ''}shape (${shape}) of ${descr} needs ${n * size} bytes of data, the file has ${body}${n * size > body ? '' : ' (extra bytes after the data)'}`);
  let data: Float32Array;
  if (size === 4) { const c = new Uint8Array(n * 4); c.set(buf.subarray(off, off + n * 4)); data = new Float32Array(c.buffer); }
  else { const c = new Uint8Array(n * 8); c.set(buf.subarray(off, off + n * 8)); data = Float32Array.from(new Float64Array(c.buffer)); }
  return { shape, data };
}

/** The NaN and infinite values of x: how many, and the first one's index (-1 when none). */
export function nonFinite(x: Float32Array): { count: number; first: number } {
  let count = 0, first = -1;
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) { if (first < 0) first = i; count++; }
  return { count, first };
}

export function npyBytes(data: Float32Array, shape: number[]): Uint8Array {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((header.length + 10) % 64)) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 78, 85, 77, 80, 89, 1, 0, header.length & 255, header.length >> 8]);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}
