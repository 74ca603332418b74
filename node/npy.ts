// NumPy .npy (format 1.0-3.0) read/write for float32 C-order arrays: the exchange format with PyTorch.
export interface Npy { shape: number[]; data: Float32Array }

export function parseNpy(buf: Uint8Array, file = '.npy'): Npy {
  const magic = String.fromCharCode(...buf.subarray(0, 6));
  if (magic !== '\x93NUMPY') throw new Error(`${file}: not a .npy file (bad magic)`);
  const major = buf[6], dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true), hstart = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(buf.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1], fortran = /'fortran_order':\s*True/.test(header);
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (fortran) throw new Error(`${file}: Fortran-order arrays are not supported (save with np.ascontiguousarray)`);
  const n = shape.reduce((a, b) => a * b, 1), off = hstart + hlen, body = buf.subarray(off);
  const size = descr === '<f8' ? 8 : 4;
  if ((descr === '<f4' || descr === '<f8') && body.length < n * size) throw new Error(`${file}: truncated, shape (${shape}) needs ${n * size} bytes of data, the file has ${body.length}`);
  let data: Float32Array;
  if (descr === '<f4') { const c = new Uint8Array(n * 4); c.set(body.subarray(0, n * 4)); data = new Float32Array(c.buffer); }
  else if (descr === '<f8') { const c = new Uint8Array(n * 8); c.set(body.subarray(0, n * 8)); data = Float32Array.from(new Float64Array(c.buffer)); }
  else throw new Error(`${file}: dtype ${descr} is not supported (float32 or float64)`);
  return { shape, data };
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
