// onnxruntime-node (CPU) runs an ONNX file on one .npy input and writes every graph output as .npy: tools/make_zoo.py's
// independent check that an exported graph computes what PyTorch computes (onnx 1.12 has no reference evaluator).
// Usage: node tools/zoo_ort.mjs model.onnx x.npy OUT_PREFIX   ->  OUT_PREFIX<k>.npy for graph output k (float32)
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// onnxruntime-node is a benchmark peer: installed into bench/peers/node_modules by `node bench/peers/install.mjs`
// (or `npm run bench:peers`), not by the root install.
let ort;
try { ort = createRequire(new URL('../bench/peers/package.json', import.meta.url))('onnxruntime-node'); }
catch { console.error('zoo_ort: onnxruntime-node is not installed; run `node bench/peers/install.mjs` first'); process.exit(1); }

/** float32 .npy (C order, little endian, format 1.0 / 2.0) -> { shape, data }. */
function readNpy(path) {
  const b = readFileSync(path), v2 = b[6] >= 2, hl = v2 ? b.readUInt32LE(8) : b.readUInt16LE(8), off = (v2 ? 12 : 10) + hl;
  const h = b.subarray(v2 ? 12 : 10, off).toString('latin1');
  if (!/'descr':\s*'<f4'/.test(h) || /'fortran_order':\s*True/.test(h)) throw new Error(`${path}: only C-order <f4 arrays: ${h.trim()}`);
  const shape = [...h.match(/'shape':\s*\(([^)]*)\)/)[1].matchAll(/\d+/g)].map(Number);
  return { shape, data: new Float32Array(b.buffer.slice(b.byteOffset + off, b.byteOffset + b.length)) };
}

function writeNpy(path, dims, data) {
  let h = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
  h += ' '.repeat(63 - ((h.length + 10) % 64)) + '\n';
  const head = Buffer.alloc(10); head.write('\x93NUMPY', 0, 'latin1'); head[6] = 1; head[7] = 0; head.writeUInt16LE(h.length, 8);
  writeFileSync(path, Buffer.concat([head, Buffer.from(h, 'latin1'), Buffer.from(Float32Array.from(data).buffer)]));
}

const [model, input, prefix] = process.argv.slice(2);
const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'disabled' });
const x = readNpy(input);
const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) });
session.outputNames.forEach((name, k) => writeNpy(`${prefix}${k}.npy`, out[name].dims, out[name].data));
console.log(JSON.stringify(session.outputNames));
