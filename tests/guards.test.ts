// Input guards (issue 11 item 3) and the strict importer (item 2), each with a crafted file: a tiny file claiming a
// huge image, a strip that explodes when resized, .npy headers that lie, FIFOs and devices, output folders under
// /proc, sidecar values out of range, box lists that are empty or malformed, ONNX files with wrong-typed or duplicate
// attributes, short/long/non-float conv biases, cycles, over-long varints. Every case asserts the error class and the
// words of its one-line message; a control for each family shows the unmutated input is accepted.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { ImageError, decodeImage, encodePng, imageHeader, readImage, readSidecar, resizedSize } from '../node/image.js';
import { NpyError, nonFinite, npyBytes, parseNpy } from '../node/npy.js';
import { FileError, makeDir, readRegular } from '../node/files.js';
import { EvalError, readScenes } from '../node/eval.js';
import { importOnnx, UnsupportedError } from '../src/import.js';
import { OnnxError } from '../src/onnx.js';
import { ModelError } from '../src/graph.js';
import { FLOAT, Pb, model, node, tensor, valueInfo, attr } from './onnx-writer.js';
import { crc32, pngChunks, npyWithHeader, sofJpeg, convModel } from './fuzz-lib.js';

const tmp = mkdtempSync(join(tmpdir(), 'camgpu-guards-'));

/** Asserts that fn throws an error of class E whose message is one line and matches every pattern, with no engine text. */
function throwsWith(fn: () => unknown, E: new (...a: never[]) => Error, ...patterns: (RegExp | string)[]) {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  assert.ok(err, 'expected an error, none was thrown');
  assert.instance(err, E, `expected ${E.name}, got ${(err as Error).name}: ${(err as Error).message}`);
  const msg = (err as Error).message;
  assert.not.match(msg, /\n/, 'one line');
  assert.not.match(msg, /undefined|NaN|Cannot read prop|Invalid typed array|ENOENT|is not a function/, `engine text in: ${msg}`);
  for (const p of patterns) assert.ok(typeof p === 'string' ? msg.includes(p) : p.test(msg), `message does not contain ${p}: ${msg}`);
}

// ============================================================================================== images

const img = suite('guards: images');

img('control: a real 40x30 PNG decodes, its header says 40x30', () => {
  const rgb = { width: 40, height: 30, data: new Uint8Array(40 * 30 * 3).map((_, i) => i % 251) };
  const png = encodePng(rgb);
  assert.equal(imageHeader(png, 'a.png'), { kind: 'png', width: 40, height: 30, interlaced: false, bitDepth: 8, channels: 3 });
  assert.equal(decodeImage(png, 'a.png').data, rgb.data);
});

img('80-byte PNG claiming 30000x30000 -> refused by its header (900 megapixels > 50), nothing decoded', () => {
  const b = pngChunks(30000, 30000, { idat: deflateSync(Buffer.alloc(10)) });
  assert.ok(b.length <= 80, `${b.length} bytes`);
  throwsWith(() => decodeImage(b, 'big.png'), ImageError, 'big.png', '30000x30000 is 900.0 megapixels, above the limit of 50.0 megapixels', '--max-megapixels');
  // within a raised limit it is still refused: 80 bytes cannot hold that many pixels
  throwsWith(() => imageHeader(b, 'big.png', { maxMegapixels: 1000 }), ImageError, 'cannot hold a 30000x30000 PNG');
});

img('1x100000 PNG: decodes (0.1 megapixels), but resizing its shorter side to 256 would make 256x25600000 -> refused', () => {
  const png = new PNG({ width: 100000, height: 1 }); png.data.fill(128);
  const b = new Uint8Array(PNG.sync.write(png));
  const h = imageHeader(b, 'strip.png');
  assert.equal([h.width, h.height], [100000, 1]);
  throwsWith(() => resizedSize(h.width, h.height, 224, 224, 256, 'strip.png'), ImageError, 'strip.png', 'resized to 25600000x256', 'above the limit');
  assert.equal(resizedSize(640, 480, 224, 224, 256, 'ok.png'), [256, 341], 'control: a 4:3 photo resizes');
});

img('interlaced PNG whose image data inflates past its size -> refused while inflating (capped)', () => {
  const b = pngChunks(500, 500, { interlace: 1, idat: deflateSync(Buffer.alloc(40_000_000)) });
  throwsWith(() => decodeImage(b, 'bomb.png'), ImageError, 'bomb.png', 'interlaced image data inflates past the');
});

img('PNG with a bad IHDR (colour type 2, bit depth 3) and a PNG with no IHDR -> corrupt PNG', () => {
  throwsWith(() => decodeImage(pngChunks(4, 4, { depth: 3 }), 'd.png'), ImageError, 'corrupt PNG (colour type 2 with bit depth 3)');
  const sig = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0);
  throwsWith(() => decodeImage(sig, 'n.png'), ImageError, 'corrupt PNG (no IHDR chunk first)');
  assert.ok(crc32(new TextEncoder().encode('IEND')) === 0xae426082, 'the test PNG writer computes CRCs');
});

img('723-byte JPEG header claiming 8000x8000 -> refused by its SOF (64 megapixels); 4000x4000 in 723 bytes -> too small for it', () => {
  throwsWith(() => decodeImage(sofJpeg(8000, 8000, 723), 'big.jpg'), ImageError, 'big.jpg', '8000x8000 is 64.0 megapixels');
  throwsWith(() => decodeImage(sofJpeg(4000, 4000, 723), 'lie.jpg'), ImageError, 'cannot hold a 4000x4000 JPEG');
  throwsWith(() => decodeImage(sofJpeg(0, 10, 100), 'z.jpg'), ImageError, 'corrupt or truncated JPEG (frame size 0x10');
});

img('--max-megapixels: a 40x30 image is refused under 0.001 megapixels, accepted at 0.0012', () => {
  const b = encodePng({ width: 40, height: 30, data: new Uint8Array(3600) });
  throwsWith(() => decodeImage(b, 'a.png', { maxMegapixels: 0.001 }), ImageError, '40x30 is 0.00 megapixels, above the limit of 0.00 megapixels');
  assert.is(decodeImage(b, 'a.png', { maxMegapixels: 0.0012 }).width, 40);
});

img('a truncated JPEG fails with a plain reason (no decoder internals)', () => {
  const real = new Uint8Array(readRegular('tests/fixtures/images/shapes32.jpg', 'image'));
  throwsWith(() => decodeImage(real.subarray(0, real.length - 40), 'cut.jpg'), ImageError, /^cut\.jpg: corrupt or truncated JPEG \([^)]{1,80}\)$/);
});

// =============================================================================================== files

const files = suite('guards: files and folders');

files('a FIFO, a device and a directory are refused at once (never blocks on the FIFO)', () => {
  const fifo = join(tmp, 'pipe.png');
  const r = spawnSync('mkfifo', [fifo]);
  assert.is(r.status, 0, 'mkfifo');
  throwsWith(() => readImage(fifo), ImageError, `cannot read image '${fifo}': it is a FIFO (named pipe), not a regular file`);
  throwsWith(() => readRegular('/dev/zero', 'input'), FileError, "cannot read input '/dev/zero': it is a device, not a regular file");
  throwsWith(() => readRegular(tmp, 'model'), FileError, 'it is a directory');
  throwsWith(() => readRegular(join(tmp, 'nope.onnx'), 'model'), FileError, 'no such file or directory');
});

files('output folders: under /proc refused at once (no recursive mkdir loop), an unwritable one refused, a file in the way named', () => {
  throwsWith(() => makeDir('/proc/camgpu-out/sub'), FileError, "cannot write to '/proc/camgpu-out/sub'", "at '/proc/camgpu-out'");
  throwsWith(() => makeDir('/proc/self'), FileError, "cannot write to '/proc/self'", 'not writable');
  writeFileSync(join(tmp, 'afile'), 'x');
  throwsWith(() => makeDir(join(tmp, 'afile', 'sub')), FileError, 'a parent is not a directory');
  makeDir(join(tmp, 'a', 'b', 'c'));
  writeFileSync(join(tmp, 'a', 'b', 'c', 'ok'), 'control: created and writable');
});

// ================================================================================================= npy

const np = suite('guards: .npy');
const f32 = (n: number) => new Uint8Array(new Float32Array(n).buffer);

np('control: npyBytes round-trips (2,3,4,4)', () => {
  const x = Float32Array.from({ length: 96 }, (_, i) => i / 7), r = parseNpy(npyBytes(x, [2, 3, 4, 4]), 'x.npy');
  assert.equal(r.shape, [2, 3, 4, 4]); assert.equal(r.data, x);
});

np("shape ('a',3,64,64), (1.5,3,64,64), (-1,3), a dtype, a key and sizes that lie -> refused with the reason", () => {
  const body = f32(3 * 64 * 64);
  throwsWith(() => parseNpy(npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': ('a', 3, 64, 64), }", body), 'a.npy'), NpyError, 'a.npy', 'shape must be a tuple of non-negative integers', "'a'");
  throwsWith(() => parseNpy(npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1.5, 3, 64, 64), }", body), 'b.npy'), NpyError, 'shape must be a tuple of non-negative integers', "'.5'");
  throwsWith(() => parseNpy(npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }", body), 'c.npy'), NpyError, "'-1'");
  throwsWith(() => parseNpy(npyWithHeader("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", f32(6)), 'd.npy'), NpyError, 'dtype <i8 is not supported');
  throwsWith(() => parseNpy(npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", f32(3)), 'e.npy'), NpyError, "unknown key 'x'");
  throwsWith(() => parseNpy(npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", f32(3)), 'f.npy'), NpyError, 'truncated, shape (4) of <f4 needs 16 bytes of data, the file has 12');
  throwsWith(() => parseNpy(npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f32(3)), 'g.npy'), NpyError, 'needs 8 bytes of data, the file has 12 (extra bytes after the data)');
  throwsWith(() => parseNpy(npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", f32(3)), 'h.npy'), NpyError, 'needs');
  throwsWith(() => parseNpy(npyWithHeader("{'descr': '<f4', 'shape': (3,), }", f32(3)), 'i.npy'), NpyError, "no 'fortran_order'");
  const short = npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f32(3)); short[8] = 0xff; short[9] = 0xff;
  throwsWith(() => parseNpy(short, 'j.npy'), NpyError, 'runs past the end of the file');
});

np('NaN and Inf: counted with the first index (the CLI refuses them unless --allow-nonfinite)', () => {
  const x = Float32Array.of(0, 1, NaN, 2, Infinity, -Infinity);
  assert.equal(nonFinite(x), { count: 3, first: 2 });
  assert.equal(nonFinite(new Float32Array(8)), { count: 0, first: -1 });
});

// ============================================================================================= sidecar

const side = suite('guards: sidecar and scenes');

side('sidecar "resize": [64, 1e8], 100000, [0, 64] and "crop": 1e9 -> refused, naming the key and the range', () => {
  const m = join(tmp, 'm.onnx'), put = (j: unknown) => writeFileSync(join(tmp, 'm.json'), JSON.stringify(j));
  for (const v of [[64, 1e8], 100000, [0, 64], 2.5]) {
    put({ resize: v });
    throwsWith(() => readSidecar(m, [3, 32, 32], 10), ImageError, 'm.json', "'resize' must be an integer in [1, 16384]");
  }
  put({ crop: 1e9 });
  throwsWith(() => readSidecar(m, [3, 32, 32], 10), ImageError, "'crop' must be an integer in [1, 16384]");
  put({ resize: [40, 48] });
  assert.equal(readSidecar(m, [3, 32, 32], 10).resize, [40, 48], 'control');
});

side('eval scenes: empty list, malformed boxes, a bad class, a missing scene file, a directory as scene, no folder -> refused', () => {
  const dir = join(tmp, 'scenes'); mkdirSync(dir, { recursive: true }); mkdirSync(join(dir, 'sub'), { recursive: true });
  writeFileSync(join(dir, 'a.png'), encodePng({ width: 8, height: 8, data: new Uint8Array(192) }));
  const put = (j: unknown) => writeFileSync(join(dir, 'boxes.json'), JSON.stringify(j));
  const ok = { file: 'a.png', class: 1, boxes: [[0, 0, 4, 4]], multi: false };
  put([]); throwsWith(() => readScenes(dir, 10), EvalError, 'the list of scenes is empty');
  put([{ ...ok, boxes: [] }]); throwsWith(() => readScenes(dir, 10), EvalError, "'boxes' must be a non-empty list");
  put([{ ...ok, boxes: [[0, 0, 4]] }]); throwsWith(() => readScenes(dir, 10), EvalError, 'box 0 [0,0,4] must be four finite numbers');
  put([{ ...ok, boxes: [[5, 0, 4, 4]] }]); throwsWith(() => readScenes(dir, 10), EvalError, 'x0 < x1');
  put([{ ...ok, class: 10 }]); throwsWith(() => readScenes(dir, 10), EvalError, "'class' must be an integer in [0, 10), got 10");
  put([{ ...ok, file: 'gone.png' }]); throwsWith(() => readScenes(dir, 10), EvalError, 'gone.png', 'does not exist');
  put([{ ...ok, file: 'sub' }]); throwsWith(() => readScenes(dir, 10), EvalError, 'is a directory');
  put({ not: 'a list' }); throwsWith(() => readScenes(dir, 10), EvalError, 'expected a list');
  throwsWith(() => readScenes(join(tmp, 'no-such-dir'), 10), EvalError, 'no such folder');
  put([ok]); assert.equal(readScenes(dir, 10), [{ file: 'a.png', class: 1, boxes: [[0, 0, 4, 4]], multi: false }], 'control');
});

// ============================================================================================ importer

const imp = suite('guards: strict importer');

imp('control: the conv model imports (BatchNorm folded into conv0)', () => {
  assert.equal(importOnnx(convModel()).nodes.map((n) => n.op.kind), ['conv', 'act', 'maxpool', 'conv', 'add', 'gap', 'alias', 'linear']);
});

imp('conv bias shorter, longer, int64 and float64-typed-but-empty -> precise errors naming node and initializer', () => {
  throwsWith(() => importOnnx(convModel({ bias: tensor('b', [3], new Float32Array(3)) })), UnsupportedError, "node 'conv0'", 'bias has 3 values', "bias 'b' of shape [3]", "weight 'w'");
  throwsWith(() => importOnnx(convModel({ bias: tensor('b', [6], new Float32Array(6)) })), UnsupportedError, 'bias has 6 values');
  throwsWith(() => importOnnx(convModel({ bias: tensor('b', [4], [1n, 2n, 3n, 4n]) })), UnsupportedError, "node 'conv0'", "bias (input 2 'b') must be a constant float tensor ('b' is int64)");
  // dims [4] but 3 floats of raw data: the reader refuses the tensor itself
  const t = new Pb().int(1, 4).int(2, FLOAT).str(8, 'b').bytes(9, f32(3));
  throwsWith(() => importOnnx(convModel({ bias: t })), OnnxError, "tensor 'b' (float32) has 12 bytes of raw_data (3 values); dims [4] need 4");
});

imp('attributes: wrong type, dilations [0,0], pads of 2, duplicate, unknown name, out-of-range axis -> errors, never defaults', () => {
  const padsFloat = new Pb().str(1, 'pads').f32(2, 1).int(20, 1);
  throwsWith(() => importOnnx(convModel({ convAttrs: [padsFloat], noPads: true })), UnsupportedError, "node 'conv0'", 'attribute pads must be INTS, got FLOAT');
  throwsWith(() => importOnnx(convModel({ convAttrs: [attr('dilations', [0, 0])] })), UnsupportedError, 'attribute dilations = [0,0]: every value must be an integer >= 1');
  throwsWith(() => importOnnx(convModel({ convAttrs: [attr('pads', [1, 1])], noPads: true })), UnsupportedError, 'attribute pads has 2 values [1,1]; expected 4');
  throwsWith(() => importOnnx(convModel({ convAttrs: [attr('strides', [1, 1]), attr('strides', [2, 2])] })), OnnxError, "node 'conv0' (Conv): attribute 'strides' appears twice");
  throwsWith(() => importOnnx(convModel({ convAttrs: [attr('pad', [1, 1, 1, 1])] })), ModelError, "unknown attribute 'pad' (Conv takes auto_pad, dilations, group, kernel_shape, pads, strides)");
  throwsWith(() => importOnnx(convModel({ flattenAxis: 7 })), UnsupportedError, "node 'flat0'", 'axis=7 outside');
  const typeLies = new Pb().str(1, 'group').f32(2, 1).int(20, 2);
  throwsWith(() => importOnnx(convModel({ convAttrs: [typeLies] })), OnnxError, "attribute 'group' is declared INT but holds a FLOAT value");
});

imp('graph: output = input, Add with one input, a node reading a later output (cycle), two writers, output not produced -> errors', () => {
  const inp = valueInfo('x', FLOAT, [1, 3, 4, 4]);
  throwsWith(() => importOnnx(model({ nodes: [node('Relu', 'r', ['x'], ['y'])], inputs: [inp], outputs: [valueInfo('x', FLOAT, [1, 3, 4, 4])] })), ModelError, "graph output 'x' is the graph input");
  throwsWith(() => importOnnx(model({ nodes: [node('Add', 'add0', ['x'], ['y'])], inputs: [inp], outputs: [valueInfo('y', FLOAT, [1, 3, 4, 4])] })), ModelError, "node 'add0' (Add) has 1 input; Add takes 2");
  throwsWith(() => importOnnx(model({ nodes: [node('Relu', 'a', ['z'], ['y']), node('Relu', 'b', ['y'], ['z'])], inputs: [inp], outputs: [valueInfo('z', FLOAT, [1, 3, 4, 4])] })), ModelError, "node 'a' (Relu) reads 'z', which no earlier node", 'topological order');
  throwsWith(() => importOnnx(model({ nodes: [node('Relu', 'a', ['x'], ['y']), node('Relu', 'b', ['x'], ['y'])], inputs: [inp], outputs: [valueInfo('y', FLOAT, [1, 3, 4, 4])] })), ModelError, "node 'b' (Relu) writes 'y', which another node already writes");
  throwsWith(() => importOnnx(model({ nodes: [node('Relu', 'a', ['x'], ['y'])], inputs: [inp], outputs: [valueInfo('q', FLOAT, [1, 3, 4, 4])] })), ModelError, "graph output 'q' is not produced by any node");
});

imp('protobuf: a 300 KB file of one over-long varint, a length prefix past the end, a negative length -> OnnxError at once', () => {
  const b = new Uint8Array(300_000).fill(0x80); b[0] = 0x3a; // field 7 (graph), wire 2, then a varint that never ends
  throwsWith(() => importOnnx(b), OnnxError, 'varint longer than 10 bytes at offset 1');
  throwsWith(() => importOnnx(Uint8Array.of(0x3a, 0x7f, 1, 2)), OnnxError, 'truncated protobuf (field of 127 bytes at offset 2, 2 left)');
  throwsWith(() => importOnnx(Uint8Array.of(0x3a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)), OnnxError, 'negative length');
});

imp('2000 chained Identity nodes import as one Relu (Identity is a name alias, no plan work)', () => {
  const nodes = Array.from({ length: 2000 }, (_, i) => node('Identity', `id${i}`, [i ? `t${i - 1}` : 'x'], [`t${i}`]));
  nodes.push(node('Relu', 'r', ['t1999'], ['y']));
  const g = importOnnx(model({ nodes, inputs: [valueInfo('x', FLOAT, [1, 3, 4, 4])], outputs: [valueInfo('y', FLOAT, [1, 3, 4, 4])] }));
  assert.equal(g.nodes.map((n) => [n.op.kind, n.inputs[0]]), [['act', 'x']]);
});

// ================================================================================================= CLI

const cli = suite('guards: command line');
const run = (args: string[]) => {
  const r = spawnSync(process.execPath, ['dist/cli.js', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, err: r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning: ')) };
};
const V = 'tests/fixtures/vgg/model.onnx';

cli('classify refuses an all-NaN .npy before the GPU; --methods __proto__ is a usage error; eval of an empty box list exits 1', () => {
  const x = join(tmp, 'nan.npy'); writeFileSync(x, npyBytes(new Float32Array(3 * 32 * 32).fill(NaN), [1, 3, 32, 32]));
  let r = run(['classify', '--model', V, '--input', x]);
  assert.is(r.code, 1); assert.is(r.err.length, 1, r.err.join(' | '));
  assert.match(r.err[0], /nan\.npy: 3072 of 3072 values are NaN or infinite .*--allow-nonfinite/);
  r = run(['explain', 'tests/fixtures/images/shapes32.png', '--model', V, '--methods', '__proto__']);
  assert.is(r.code, 2); assert.equal(r.err, ["camgpu: explain: unknown method '__proto__'; methods: " + r.err[0].split('methods: ')[1]]);
  const dir = join(tmp, 'empty-scenes'); mkdirSync(dir, { recursive: true }); writeFileSync(join(dir, 'boxes.json'), '[]');
  r = run(['eval', '--model', V, '--data', dir]);
  assert.is(r.code, 1); assert.is(r.err.length, 1); assert.match(r.err[0], /boxes\.json: the list of scenes is empty/);
});

img.run();
files.run();
np.run();
side.run();
imp.run();
cli.run();
