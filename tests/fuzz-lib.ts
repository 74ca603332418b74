// The fuzz suite's mutators and oracles (issue 11 item 8), shared by tests/fuzz.test.ts (a bounded sample in
// `npm test`) and tools/fuzz.mjs (`npm run fuzz -- --cases N`, campaigns with an outcome table).
//   ONNX:   protobuf-aware mutations of a small CNN (a field deleted, duplicated, its varint/float/string changed, two
//           repeated fields swapped, a wire type changed, a message truncated) and byte-level ones (flips, inserts,
//           deletes, truncation). Every mutant goes through parseOnnx + importOnnx; an accepted one is run on the CPU
//           float64 reference (tests/ref.ts refForward) and must give the unmutated model's logits, or, where the
//           mutant is a different valid model, ONNX Runtime's logits for it (the independent oracle). A mutation
//           inside an initializer's numbers (a data mutation) may change the logits, but they must match ONNX Runtime.
//   Images: PNG / JPEG header and byte mutations through decodeImage + preprocess; .npy header and byte mutations
//           through parseNpy + the CLI's shape and finite checks.
//   Command lines: random argv from the CLI's commands, options and hostile values, run as processes.
// Outcomes: ok (accepted, correct output), clean (one-line error of camgpu's own classes), internal (anything
// else: another error class, engine text, a wrong answer), changed (an accepted structural mutant whose logits are
// neither the original's nor ONNX Runtime's), plus hang and over-memory, which the campaign runner detects.
import { deflateSync } from 'node:zlib';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { PNG } from 'pngjs';
import { FLOAT, Pb, model, node, tensor, valueInfo } from './onnx-writer.js';
import { importOnnx, UnsupportedError } from '../src/import.js';
import { OnnxError } from '../src/onnx.js';
import { ModelError, logitsOf } from '../src/graph.js';
import { refForward } from './ref.js';
import { ImageError, decodeImage, encodePng, preprocess } from '../node/image.js';
import { NpyError, nonFinite, npyBytes, parseNpy } from '../node/npy.js';
import { FileError } from '../node/files.js';

// ============================================================================================ randomness

/** mulberry32: a small seeded generator, so every case is reproducible from (seed, index). */
export class Rng {
  constructor(private s: number) {}
  next(): number { let t = (this.s = (this.s + 0x6d2b79f5) | 0); t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; }
  int(n: number) { return Math.floor(this.next() * n); }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)]; }
}
export const caseRng = (seed: number, i: number) => new Rng((seed * 0x9e3779b1 + i * 0x85ebca6b) | 0);

// ============================================================================================ base inputs

const ramp = (n: number, scale = 0.05) => Float32Array.from({ length: n }, (_, i) => ((i * 37) % 17 - 8) * scale);

/**
 * A small CNN with the ops most models have, input (1,3,8,8): Conv 3x3 pad 1 (4) -> BatchNormalization -> Relu ->
 * MaxPool 2x2 s2 -> Conv 1x1 (4) -> Add (residual from the pool) -> GlobalAveragePool -> Flatten -> Gemm (5, transB).
 * Options replace parts for the guard tests (bias, conv attributes, Flatten's axis).
 */
export function convModel(o: { bias?: Pb; convAttrs?: Pb[]; noPads?: boolean; flattenAxis?: number } = {}): Uint8Array {
  const conv0 = node('Conv', 'conv0', ['x', 'w', 'b'], ['c0'], { kernel_shape: [3, 3], ...(o.noPads ? {} : { pads: [1, 1, 1, 1] }) });
  for (const a of o.convAttrs ?? []) conv0.msg(5, a);
  return model({
    nodes: [
      conv0,
      node('BatchNormalization', 'bn0', ['c0', 'bs', 'bb', 'bm', 'bv'], ['n0'], { epsilon: { float: 1e-5 } }),
      node('Relu', 'relu0', ['n0'], ['r0']),
      node('MaxPool', 'pool0', ['r0'], ['p0'], { kernel_shape: [2, 2], strides: [2, 2] }),
      node('Conv', 'conv1', ['p0', 'w1', 'b1'], ['c1'], { kernel_shape: [1, 1] }),
      node('Add', 'add0', ['p0', 'c1'], ['a0']),
      node('GlobalAveragePool', 'gap0', ['a0'], ['g0']),
      node('Flatten', 'flat0', ['g0'], ['f0'], { axis: o.flattenAxis ?? 1 }),
      node('Gemm', 'fc0', ['f0', 'fw', 'fb'], ['logits'], { transB: 1 }),
    ],
    inits: [tensor('w', [4, 3, 3, 3], ramp(108)), o.bias ?? tensor('b', [4], ramp(4)),
      tensor('bs', [4], Float32Array.of(1, 0.5, 2, 1.5)), tensor('bb', [4], ramp(4)), tensor('bm', [4], ramp(4, 0.01)), tensor('bv', [4], Float32Array.of(1, 2, 0.5, 1)),
      tensor('w1', [4, 4, 1, 1], ramp(16, 0.1)), tensor('b1', [4], ramp(4)), tensor('fw', [5, 4], ramp(20, 0.1)), tensor('fb', [5], ramp(5))],
    inputs: [valueInfo('x', FLOAT, [1, 3, 8, 8])],
    outputs: [valueInfo('logits', FLOAT, [1, 5])],
  });
}
/** The input all ONNX mutants run on: (1,3,8,8), deterministic. */
export const X = Float32Array.from({ length: 192 }, (_, i) => Math.sin(i * 0.37) * 1.5);

// ====================================================================================== crafted files

export function crc32(b: Uint8Array): number {
  let c = ~0;
  for (const x of b) { c ^= x; for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1)); }
  return ~c >>> 0;
}
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length), dv = new DataView(out.buffer);
  dv.setUint32(0, data.length); out.set(new TextEncoder().encode(type), 4); out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}
/** A PNG of IHDR (w, h, depth 8, RGB unless told), one IDAT (default: empty zlib stream) and IEND, CRCs right. */
export function pngChunks(w: number, h: number, o: { depth?: number; color?: number; interlace?: number; idat?: Uint8Array } = {}): Uint8Array {
  const ihdr = new Uint8Array(13), dv = new DataView(ihdr.buffer);
  dv.setUint32(0, w); dv.setUint32(4, h); ihdr[8] = o.depth ?? 8; ihdr[9] = o.color ?? 2; ihdr[12] = o.interlace ?? 0;
  const parts = [Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a), chunk('IHDR', ihdr), chunk('IDAT', o.idat ?? deflateSync(Buffer.alloc(0))), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0; for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
/** A JPEG of SOI, SOF0 (w x h, 3 components) and filler up to `total` bytes (no scan: a header that lies). */
export function sofJpeg(w: number, h: number, total: number): Uint8Array {
  const out = new Uint8Array(total);
  out.set([0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, h >> 8, h & 255, w >> 8, w & 255, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
  out.set([0xff, 0xfe, (total - 25) >> 8, (total - 25) & 255], 21); // a comment segment filling the rest
  return out;
}
/** A .npy (format 1.0) with this header text (padded as numpy does) and these data bytes. */
export function npyWithHeader(header: string, body: Uint8Array): Uint8Array {
  const h = header + ' '.repeat(63 - ((header.length + 10) % 64)) + '\n', out = new Uint8Array(10 + h.length + body.length);
  out.set([0x93, 78, 85, 77, 80, 89, 1, 0, h.length & 255, h.length >> 8]);
  out.set(new TextEncoder().encode(h), 10); out.set(body, 10 + h.length);
  return out;
}

// ============================================================================================ protobuf tree

/** One decoded protobuf field; `sub` when the field is a message camgpu reads (by the ONNX schema below). */
export interface Field { field: number; wire: number; v?: bigint; fixed?: Uint8Array; bytes?: Uint8Array; sub?: Field[]; data?: boolean }
/** Which (message kind, field) pairs are sub-messages, and their kind. */
const SCHEMA: Record<string, Record<number, string>> = {
  model: { 7: 'graph', 8: 'opset' }, graph: { 1: 'node', 5: 'tensor', 11: 'value', 12: 'value' }, node: { 5: 'attr' },
  attr: { 5: 'tensor' }, value: { 2: 'type' }, type: { 1: 'ttype' }, ttype: { 2: 'shape' }, shape: { 1: 'dim' }, opset: {}, tensor: {}, dim: {},
};
/** Tensor fields that hold numbers (data mutations may change the logits legitimately). */
const DATA_FIELDS = new Set([4, 5, 7, 9, 10, 11]);

function readVarint(b: Uint8Array, at: number): [bigint, number] {
  let v = 0n, s = 0n;
  for (let i = 0; i < 10; i++) { const x = b[at + i]; if (x === undefined) throw new Error('eof'); v |= BigInt(x & 0x7f) << s; s += 7n; if (!(x & 0x80)) return [v, at + i + 1]; }
  throw new Error('long varint');
}
export function decode(b: Uint8Array, kind = 'model'): Field[] {
  const out: Field[] = [];
  for (let at = 0; at < b.length;) {
    const [key, p] = readVarint(b, at); at = p;
    const field = Number(key >> 3n), wire = Number(key & 7n);
    if (wire === 0) { const [v, q] = readVarint(b, at); at = q; out.push({ field, wire, v }); }
    else if (wire === 1 || wire === 5) { const n = wire === 1 ? 8 : 4; out.push({ field, wire, fixed: b.slice(at, at + n) }); at += n; }
    else if (wire === 2) {
      const [n, q] = readVarint(b, at); at = q; const bytes = b.slice(at, at + Number(n)); at += Number(n);
      const sk = SCHEMA[kind]?.[field];
      out.push(sk ? { field, wire, sub: decode(bytes, sk) } : { field, wire, bytes, data: kind === 'tensor' && DATA_FIELDS.has(field) });
    } else throw new Error(`wire ${wire}`);
  }
  return out;
}
function varintBytes(v: bigint, out: number[]) { let x = BigInt.asUintN(64, v); do { const b = Number(x & 0x7fn); x >>= 7n; out.push(x ? b | 0x80 : b); } while (x); }
export function encode(fs: Field[]): Uint8Array {
  const out: number[] = [];
  for (const f of fs) {
    varintBytes(BigInt(f.field * 8 + f.wire), out);
    if (f.wire === 0) varintBytes(f.v ?? 0n, out);
    else if (f.wire === 1 || f.wire === 5) for (const x of f.fixed ?? new Uint8Array(f.wire === 1 ? 8 : 4)) out.push(x);
    else { const b = f.sub ? encode(f.sub) : f.bytes ?? new Uint8Array(0); varintBytes(BigInt(b.length), out); for (const x of b) out.push(x); }
  }
  return Uint8Array.from(out);
}
/** Every field of the tree with its parent list (for deletes, duplicates and swaps) and whether it is inside tensor data. */
function walk(fs: Field[], out: { f: Field; list: Field[]; data: boolean }[] = [], inData = false) {
  for (const f of fs) { out.push({ f, list: fs, data: inData || !!f.data }); if (f.sub) walk(f.sub, out, inData); }
  return out;
}
/** The byte spans of tensor data (raw_data, float_data, ...) in the encoded model, for byte-level mutations. */
function dataSpans(b: Uint8Array, kind = 'model', base = 0, out: [number, number][] = []): [number, number][] {
  for (let at = 0; at < b.length;) {
    const [key, p] = readVarint(b, at); at = p;
    const field = Number(key >> 3n), wire = Number(key & 7n);
    if (wire === 0) at = readVarint(b, at)[1];
    else if (wire === 1 || wire === 5) at += wire === 1 ? 8 : 4;
    else {
      const [n, q] = readVarint(b, at); at = q;
      const sk = SCHEMA[kind]?.[field];
      if (sk) dataSpans(b.subarray(at, at + Number(n)), sk, base + at, out);
      else if (kind === 'tensor' && DATA_FIELDS.has(field)) out.push([base + at, base + at + Number(n)]);
      at += Number(n);
    }
  }
  return out;
}

// ======================================================================================== ONNX mutators

const NAMES = ['x', 'w', 'b', 'c0', 'n0', 'r0', 'p0', 'c1', 'a0', 'g0', 'f0', 'logits', 'pads', 'strides', 'kernel_shape', 'dilations', 'group', 'axis', 'transB', 'epsilon', 'Conv', 'Relu', 'Add', 'Identity', '', 'bv', 'fw'];
const VARINTS = [0n, 1n, 2n, 3n, -1n, 7n, 13n, 255n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 53n, -(2n ** 63n), 2n ** 63n - 1n, 1000000n];
const FLOATS = [0, -1, 1e30, -1e-30, NaN, Infinity, 0.5, 3];

/** A structural (schema-aware) mutation of the base model; `data` when it touched only tensor numbers. */
export function mutateOnnx(base: Uint8Array, rng: Rng): { bytes: Uint8Array; what: string; data: boolean } {
  if (rng.next() < 0.35) return mutateBytes(base, rng);
  const tree = decode(base), all = walk(tree), t = rng.pick(all), f = t.f, k = rng.int(9);
  const idx = t.list.indexOf(f);
  let what: string;
  if (k === 0) { t.list.splice(idx, 1); what = `delete field ${f.field}`; }
  else if (k === 1) { t.list.splice(idx, 0, structuredClone(f)); what = `duplicate field ${f.field}`; }
  else if (k === 2 && f.wire === 0) { f.v = rng.pick(VARINTS); what = `field ${f.field} varint -> ${f.v}`; }
  else if (k === 3 && f.wire === 5) { const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, rng.pick(FLOATS), true); f.fixed = b; what = `field ${f.field} float -> ${new DataView(b.buffer).getFloat32(0, true)}`; }
  else if (k === 4 && f.bytes && !f.data) { const s = rng.pick(NAMES); f.bytes = new TextEncoder().encode(s); what = `field ${f.field} string -> '${s}'`; }
  else if (k === 5) {
    const same = t.list.filter((g) => g.field === f.field && g !== f);
    if (same.length) { const g = rng.pick(same), j = t.list.indexOf(g); [t.list[idx], t.list[j]] = [t.list[j], t.list[idx]]; what = `swap two field ${f.field}`; }
    else { t.list.splice(idx, 1); t.list.push(f); what = `move field ${f.field} last`; }
  } else if (k === 6) { const w = rng.pick([0, 1, 2, 5].filter((x) => x !== f.wire)); f.wire = w; f.sub = undefined; f.bytes = w === 2 ? new Uint8Array(3) : undefined; f.fixed = undefined; f.v = 1n; what = `field ${f.field} wire -> ${w}`; }
  else if (k === 7 && (f.sub || f.bytes)) {
    const b = f.sub ? encode(f.sub) : f.bytes!; f.sub = undefined; f.bytes = b.subarray(0, rng.int(b.length + 1)); what = `truncate field ${f.field} to ${f.bytes.length} bytes`;
  } else if (k === 8) { t.list.splice(idx + 1, 0, { field: 1 + rng.int(25), wire: 0, v: rng.pick(VARINTS) }); what = 'insert a varint field'; }
  else { const d = new Uint8Array(4); new DataView(d.buffer).setUint32(0, rng.int(2 ** 32)); f.wire = 2; f.sub = undefined; f.bytes = d; f.v = undefined; f.fixed = undefined; what = `field ${f.field} -> 4 random bytes`; }
  return { bytes: encode(tree), what, data: t.data && (k === 2 || k === 3) };
}

/** Byte-level: flips, inserts, deletes, truncation; `data` when every change lies inside tensor numbers and keeps the length. */
export function mutateBytes(base: Uint8Array, rng: Rng): { bytes: Uint8Array; what: string; data: boolean } {
  const spans = dataSpans(base), inData = (i: number) => spans.some(([a, b]) => i >= a && i < b);
  const k = rng.int(4), b = base.slice();
  if (k === 0) {
    const n = 1 + rng.int(4), at: number[] = [];
    for (let j = 0; j < n; j++) { const i = rng.int(b.length); b[i] ^= 1 << rng.int(8); at.push(i); }
    return { bytes: b, what: `flip bits at ${at}`, data: at.every(inData) };
  }
  if (k === 1) { const i = rng.int(b.length); return { bytes: Uint8Array.from([...b.subarray(0, i), rng.int(256), ...b.subarray(i)]), what: `insert a byte at ${i}`, data: false }; }
  if (k === 2) { const i = rng.int(b.length), n = 1 + rng.int(8); return { bytes: Uint8Array.from([...b.subarray(0, i), ...b.subarray(i + n)]), what: `delete ${n} bytes at ${i}`, data: false }; }
  const n = rng.int(b.length); return { bytes: b.subarray(0, n), what: `truncate to ${n} bytes`, data: false };
}

// ============================================================================================== outcomes

export type Outcome = 'ok' | 'clean' | 'internal' | 'changed' | 'hang' | 'memory';
export const OUTCOMES: Outcome[] = ['ok', 'clean', 'internal', 'hang', 'memory', 'changed'];
export const OUTCOME_NAMES: Record<Outcome, string> = { ok: 'ok', clean: 'clean error', internal: 'internal error', hang: 'hang', memory: 'over-memory', changed: 'accepted-with-changed-logits' };
export interface Result { outcome: Outcome; detail: string }

const ENGINE = /undefined|NaN\b|Cannot read prop|Invalid typed array|is not a function|is not iterable|Maximum call stack|out of bounds|ENOENT|EISDIR|\n/;
/** A thrown error as an outcome: camgpu's own classes with a one-line message free of engine text are clean. */
export function classify(e: unknown): Result {
  const ours = e instanceof OnnxError || e instanceof ModelError || e instanceof UnsupportedError || e instanceof ImageError || e instanceof NpyError || e instanceof FileError;
  const msg = e instanceof Error ? e.message : String(e);
  if (ours && !ENGINE.test(msg)) return { outcome: 'clean', detail: msg };
  return { outcome: 'internal', detail: `${e instanceof Error ? e.name : typeof e}: ${msg.slice(0, 300)}` };
}

/** max |a - b| / max |b|, with NaN equal to NaN and Infinity to Infinity. */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0, d = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    if (a[i] === b[i]) continue;
    m = Math.max(m, Math.abs(b[i])); d = Math.max(d, Math.abs(a[i] - b[i]));
  }
  return Number.isNaN(d) ? Infinity : m === 0 || !Number.isFinite(m) ? d : d / m;
}

/** The camgpu logits of an ONNX model on X, in float64 on its imported graph (tests/ref.ts). */
export function refLogits(bytes: Uint8Array): Float64Array {
  const g = importOnnx(bytes);
  const inShape = g.tensors.get(g.input)!.shape, n = inShape.reduce((a, b) => a * b, 1);
  if (n !== X.length) throw new ModelError(`the mutant's input has ${n} values per sample, the test input ${X.length}`);
  const vals = refForward(g, Float64Array.from(X), 1);
  return vals.get(logitsOf(g)) as Float64Array;
}

/** ONNX Runtime's logits for a model on X, or null when it refuses the model (the independent oracle). */
export type Ort = (bytes: Uint8Array) => Promise<Float32Array | null>;
/** onnxruntime-node from bench/peers/node_modules (node bench/peers/install.mjs), else the root install; null when absent. */
export async function loadOrt(): Promise<Ort | null> {
  // typed here, not from the package: a fresh clone's root install has no onnxruntime-node (it is a bench peer)
  interface OrtTensor { type: string; data: unknown }
  interface OrtSession { inputNames: string[]; outputNames: string[]; run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>; release(): Promise<void> }
  let ort: { InferenceSession: { create(b: Uint8Array, o: object): Promise<OrtSession> }; Tensor: new (t: string, d: Float32Array, dims: number[]) => OrtTensor };
  try { ort = createRequire(resolve('bench/peers/package.json'))('onnxruntime-node'); }
  catch { try { ort = createRequire(resolve('package.json'))('onnxruntime-node'); } catch { return null; } }
  return async (bytes) => {
    try {
      const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled', logSeverityLevel: 4 });
      try {
        const r = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', X.slice(), [1, 3, 8, 8]) });
        const out = r[s.outputNames[0]];
        return out.type === 'float32' ? (out.data as Float32Array) : null;
      } finally { await s.release(); }
    } catch { return null; }
  };
}
export const mutantHash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 24);
/** ONNX Runtime's verdicts recorded for the mutants that needed one (tools/fuzz.mjs --write-verdicts): hash -> logits
 *  or null (refused). A mutant without a recorded verdict throws: the file must be regenerated. */
export const VERDICTS = 'tests/fixtures/fuzz/ort-verdicts.json';
/** The npm test sample's ONNX cases (tests/fuzz.test.ts), whose verdicts VERDICTS holds. */
export const SAMPLE = { seed: 11, onnx: 240 };
export function recordedOrt(file = VERDICTS): Ort {
  const v: Record<string, number[] | null> = JSON.parse(readFileSync(file, 'utf8')).verdicts;
  return async (bytes) => {
    const h = mutantHash(bytes);
    if (!(h in v)) throw new Error(`no recorded ONNX Runtime verdict for mutant ${h}; regenerate ${file}: node tools/fuzz.mjs --write-verdicts`);
    return v[h] ? Float32Array.from(v[h]!) : null;
  };
}
/** Wraps an oracle to record every verdict it gives (for --write-verdicts). */
export function recording(ort: Ort, into: Record<string, number[] | null>): Ort {
  return async (bytes) => { const r = await ort(bytes); into[mutantHash(bytes)] = r ? Array.from(r) : null; return r; };
}

/** One ONNX mutant: clean error, or accepted with the original's logits, or with ONNX Runtime's for the mutant. */
export async function onnxCase(base: Uint8Array, baseLogits: Float64Array, m: { bytes: Uint8Array; what: string; data: boolean }, ort: Ort | null): Promise<Result> {
  let got: Float64Array;
  try { got = refLogits(m.bytes); } catch (e) { return classify(e); }
  if (relDiff(got, baseLogits) === 0) return { outcome: 'ok', detail: 'same logits' };
  const theirs = ort ? await ort(m.bytes) : null;
  if (theirs && relDiff(got, theirs) < 1e-4) return { outcome: 'ok', detail: `a different valid model (${m.data ? 'data' : 'structural'}); ONNX Runtime agrees` };
  // a mutated weight near float32's maximum (1.7e38): ONNX Runtime's float32 logits overflow to +-Infinity, the float64
  // reference stays finite; both describe the same model, which float32 cannot run (camgpu's GPU logits overflow too)
  const big = got.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  if (theirs && theirs.some((v) => !Number.isFinite(v)) && big > 1e36) return { outcome: 'ok', detail: `overflows float32 (ONNX Runtime: non-finite logits; float64 reference: |logit| ${big.toExponential(1)})` };
  const why = theirs ? `ONNX Runtime gives other logits (rel ${relDiff(got, theirs).toExponential(1)})` : ort ? 'ONNX Runtime refuses the mutant' : 'no ONNX Runtime to judge it';
  if (m.data && !theirs && !ort) return { outcome: 'ok', detail: 'data mutation (no oracle)' };
  return { outcome: m.data ? 'internal' : 'changed', detail: `${m.what}: logits differ from the original (rel ${relDiff(got, baseLogits).toExponential(1)}); ${why}` };
}

// ===================================================================================== image mutators

/** The base images: a 32x32 RGB PNG, an interlaced 16-bit gray PNG, a JPEG, and a (1,3,32,32) .npy. */
export function baseImages(jpeg: Uint8Array): { kind: 'png' | 'jpeg' | 'npy'; bytes: Uint8Array }[] {
  const rgb = { width: 32, height: 32, data: Uint8Array.from({ length: 32 * 32 * 3 }, (_, i) => (i * 7) % 256) };
  const g16 = new PNG({ width: 24, height: 20, bitDepth: 16, colorType: 0, inputColorType: 0, inputHasAlpha: false } as ConstructorParameters<typeof PNG>[0]);
  g16.data = Buffer.from(Uint8Array.from({ length: 24 * 20 * 2 }, (_, i) => i % 256));
  let inter: Uint8Array;
  try { inter = new Uint8Array(PNG.sync.write(g16, { colorType: 0, bitDepth: 16, inputColorType: 0, inputHasAlpha: false } as Parameters<typeof PNG.sync.write>[1])); } catch { inter = encodePng(rgb); }
  return [
    { kind: 'png', bytes: encodePng(rgb) }, { kind: 'png', bytes: inter }, { kind: 'jpeg', bytes: jpeg },
    { kind: 'npy', bytes: npyBytes(Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.cos(i)), [1, 3, 32, 32]) },
  ];
}

const NPY_SHAPES = ["(1, 3, 32, 32)", "('a', 3, 32, 32)", "(1.5, 3, 32, 32)", "(-1, 3, 32, 32)", "(0, 3, 32, 32)", "(99999999999999, 3, 32, 32)", "()", "(3072,)", "(1, 3, 32, 32, 1)", "[1, 3, 32, 32]", "(1 3 32 32)", "(2, 3, 32, 32)"];
const BIG = [0, 1, 2, 255, 65535, 65536, 30000, 2 ** 31 - 1, 2 ** 32 - 1, 100000];

/** A mutation of an image or tensor: header fields (sizes, depth, colour type, interlace, SOF dims, .npy dict) or bytes. */
export function mutateImage(b: { kind: string; bytes: Uint8Array }, rng: Rng): { bytes: Uint8Array; what: string } {
  const out = b.bytes.slice(), k = rng.int(4);
  if (k === 0 && b.kind === 'png') { // IHDR fields, CRC fixed so the decoder reads them
    const dv = new DataView(out.buffer), f = rng.int(5);
    if (f < 2) dv.setUint32(16 + 4 * f, rng.pick(BIG)); else if (f === 2) out[24] = rng.pick([1, 2, 3, 4, 8, 16, 5]); else if (f === 3) out[25] = rng.pick([0, 2, 3, 4, 6, 7]); else out[28] = rng.pick([0, 1, 2]);
    dv.setUint32(29, crc32(out.subarray(12, 29)));
    return { bytes: out, what: `IHDR field ${f}` };
  }
  if (k === 0 && b.kind === 'jpeg') {
    const i = out.findIndex((v, j) => v === 0xff && (out[j + 1] === 0xc0 || out[j + 1] === 0xc2));
    if (i >= 0) { const dv = new DataView(out.buffer); dv.setUint16(i + 5 + 2 * rng.int(2), rng.pick(BIG) & 0xffff); }
    return { bytes: out, what: 'SOF size' };
  }
  if (k === 0 && b.kind === 'npy') {
    const r = rng.int(3), shape = rng.pick(NPY_SHAPES), descr = rng.pick(['<f4', '<f8', '>f4', '<i8', '|u1', 'f4']);
    const header = r === 0 ? `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }` : r === 1 ? `{'descr': '${descr}', 'fortran_order': False, 'shape': (1, 3, 32, 32), }` : `{'descr': '<f4', 'fortran_order': ${rng.pick(['True', 'False', '1', ''])}, 'shape': (1, 3, 32, 32), ${rng.pick(['', "'x': 1", "'shape': (1,)"])}}`;
    const body = b.bytes.subarray(b.bytes.length - 3 * 32 * 32 * 4);
    return { bytes: npyWithHeader(header, rng.next() < 0.2 ? body.subarray(0, rng.int(body.length)) : body), what: `npy header ${header}` };
  }
  if (k === 1 && b.kind === 'npy') { // values: NaN / Inf somewhere
    const f = new Float32Array(out.buffer, out.length - 3 * 32 * 32 * 4); f[rng.int(f.length)] = rng.pick([NaN, Infinity, -Infinity, 1e38]);
    return { bytes: out, what: 'a non-finite value' };
  }
  if (k === 2) { const n = rng.int(out.length); return { bytes: out.subarray(0, n), what: `truncate to ${n}` }; }
  const n = 1 + rng.int(6), at: number[] = [];
  for (let j = 0; j < n; j++) { const i = rng.int(out.length); out[i] = rng.int(256); at.push(i); }
  return { bytes: out, what: `bytes at ${at}` };
}

/** One image or tensor through the Node layer as `explain` takes it (decode + torchvision preprocessing to 3x32x32). */
export function imageCase(kind: string, bytes: Uint8Array): Result {
  try {
    if (kind === 'npy') {
      const x = parseNpy(bytes, 'fuzz.npy');
      if (x.shape.length !== 4 || x.shape[1] !== 3 || x.shape[2] !== 32 || x.shape[3] !== 32 || x.shape[0] < 1) return { outcome: 'clean', detail: 'shape refused' };
      if (x.data.length !== x.shape.reduce((a, b) => a * b, 1)) return { outcome: 'internal', detail: `shape (${x.shape}) but ${x.data.length} values` };
      if (nonFinite(x.data).count) return { outcome: 'clean', detail: 'non-finite refused' };
      return { outcome: 'ok', detail: `(${x.shape})` };
    }
    const img = decodeImage(bytes, `fuzz.${kind}`);
    if (img.data.length !== img.width * img.height * 3) return { outcome: 'internal', detail: `decoded ${img.width}x${img.height} with ${img.data.length} bytes` };
    const p = preprocess(img, 32, 32, { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], resize: 36 }, `fuzz.${kind}`);
    if (p.x.length !== 3 * 32 * 32 || nonFinite(p.x).count) return { outcome: 'internal', detail: 'preprocessed input is not 3x32x32 finite values' };
    return { outcome: 'ok', detail: `${img.width}x${img.height}` };
  } catch (e) { return classify(e); }
}

// ===================================================================================== command lines

/** A random command line over the CLI's commands and options, with hostile values and files. `files` maps roles to paths. */
export function mutateArgs(rng: Rng, files: Record<string, string>): string[] {
  const path = () => rng.pick(Object.values(files));
  if (rng.next() < 0.3) { // a valid command line with one argument swapped for a hostile one
    const good = rng.pick([['info', files.model], ['layers', files.model], ['classify', '--model', files.model, '--input', files.npy],
      ['explain', files.png, '--model', files.model, '--methods', 'gradcam', '--out', join(files.cwd, 'out')], ['info', files.model, '--input-shape', '1x3x32x32']]);
    if (rng.next() < 0.6) good[1 + rng.int(good.length - 1)] = rng.pick([path(), '__proto__', '', '-1', '1x3x0x32', files.fifo, files.dir, files.proc]);
    return good;
  }
  const cmd = rng.pick(['info', 'layers', 'classify', 'explain', 'eval', 'tune', 'nope', '--help', '', '--version']);
  const value = () => rng.pick(['0', '-1', '1e9', 'NaN', '__proto__', 'constructor', '', ' ', '1x3x32x32', 'top0', 'top99999', 'gradcam,__proto__', 'fast', 'all', '0.5', '99999999999999999999', '%s%n', 'a'.repeat(300), path()]);
  const opts = ['--model', '--input', '--out', '--raw', '--methods', '--class', '--layer', '--batch', '--top', '--alpha', '--colormap', '--score', '--normalize', '--rise-n', '--steps', '--limit', '--data', '--input-shape', '--max-megapixels', '--allow-nonfinite', '--profile', '--runs', '--bogus', '-h'];
  const args = cmd ? [cmd] : [];
  if (rng.next() < 0.5) args.push(path());
  if (rng.next() < 0.7 && cmd !== 'info' && cmd !== 'layers') args.push('--model', rng.next() < 0.7 ? files.model : path());
  for (let i = rng.int(5); i > 0; i--) { const o = rng.pick(opts); args.push(o); if (rng.next() < 0.8) args.push(o === '--input' ? path() : value()); }
  return args;
}
