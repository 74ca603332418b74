// Constant folding at import: an ONNX node whose inputs are all constants (initializers, Constant nodes, shapes of
// activations) is evaluated once here, in plain TS, so exporters' shape sub-graphs (Shape -> Gather -> Concat ->
// Reshape, Where/Equal/Expand/ConstantOfShape/Range arithmetic) and weight preprocessing never reach the GPU.
// Values are numbers in row-major order with their full ONNX dims. The batch size is not known at import: Shape of an
// activation puts BATCH at its batch axis (k * BATCH where the batch is merged with k other elements, src/batchaxis.ts),
// which may pass through ops that only move values (Gather, Slice, Concat, Squeeze, Unsqueeze, Reshape, Identity,
// Cast, Where) and be scaled by a positive integer (Mul; Div by a divisor of k: the batch times the heads, or the
// tokens times the batch, as nn.MultiheadAttention's export computes them) but never enters other arithmetic: that is
// a precise error, never a guess.
import { BATCH, batchMultiple } from './graph.js';
import type { OnnxNode } from './onnx.js';

export interface CTensor { dims: number[]; data: number[]; int: boolean }
/** Attribute getters (Importer.attrs). */
export interface Attrs { i(k: string, d: number): number; f(k: string, d: number): number; ints(k: string, d: number[]): number[] }
type Fold = (ins: (CTensor | undefined)[], a: Attrs, n: OnnxNode, opset: number) => CTensor;

export class FoldError extends Error {}

/** v rounded to the nearest IEEE half (ties to even), as a Cast to float16 stores it. */
function toHalf(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  const e = Math.max(Math.floor(Math.log2(Math.abs(v))), -14), q = 2 ** (e - 10), r = v / q, f = Math.floor(r);
  const m = r - f > 0.5 || (r - f === 0.5 && f % 2 !== 0) ? f + 1 : f, h = m * q;
  return Math.abs(h) > 65504 ? Math.sign(v) * Infinity : h;
}

const size = (d: number[]) => d.reduce((p, v) => p * v, 1);
const stridesOf = (d: number[]) => d.map((_, i) => size(d.slice(i + 1)));
const axis = (a: number, rank: number) => (a < 0 ? a + rank : a);
const need = (t: CTensor | undefined, what: string): CTensor => { if (!t) throw new FoldError(`${what} is missing`); return t; };
const tensor = (dims: number[], data: number[], int: boolean): CTensor => ({ dims, data, int });

/** numpy broadcasting of several tensors: the output dims and, per input, the flat index of each output element. */
function broadcastAll(ts: CTensor[]): { dims: number[]; index: number[][] } {
  const rank = Math.max(...ts.map((t) => t.dims.length));
  const pad = ts.map((t) => [...Array(rank - t.dims.length).fill(1), ...t.dims]);
  const dims = Array.from({ length: rank }, (_, i) => Math.max(...pad.map((d) => d[i])));
  for (const d of pad) d.forEach((v, i) => { if (v !== 1 && v !== dims[i]) throw new FoldError(`shapes [${ts.map((t) => t.dims).join('] [')}] do not broadcast`); });
  const out = stridesOf(dims), total = size(dims);
  const index = pad.map((d) => {
    const st = stridesOf(d), idx = new Array<number>(total);
    for (let o = 0; o < total; o++) { let j = 0; for (let k = 0; k < rank; k++) if (d[k] !== 1) j += Math.floor(o / out[k]) % dims[k] * st[k]; idx[o] = j; }
    return idx;
  });
  return { dims, index };
}

/** Element-wise op over broadcast inputs; values holding the symbolic batch are refused. */
const elementwise = (f: (...v: number[]) => number, int?: (ins: CTensor[]) => boolean): Fold => (ins) => {
  const ts = ins.map((t, i) => need(t, `input ${i}`));
  for (const t of ts) if (t.data.some(batchMultiple)) throw new FoldError('does arithmetic on the batch size, which is only known when the model runs');
  const { dims, index } = broadcastAll(ts);
  const data = index[0].map((_, o) => f(...ts.map((t, k) => t.data[index[k][o]])));
  return tensor(dims, data, int ? int(ts) : ts[0].int);
};
/** k N * c (and c * k N) for a positive integer c; k N / c (integers) where c divides k; null when no batch value is
 *  involved (the plain elementwise fold runs). Anything else with the batch in it is refused there. */
function scaleBatch(ins: (CTensor | undefined)[], div: boolean): CTensor | null {
  const [x, y] = ins.map((t, i) => need(t, `input ${i}`));
  if (!x.data.some(batchMultiple) && !y.data.some(batchMultiple)) return null;
  if (!x.int || !y.int || (div && y.data.some(batchMultiple))) throw new FoldError(`${div ? 'divides' : 'multiplies'} the batch size by a non-integer or by itself`);
  const { dims, index } = broadcastAll([x, y]);
  const data = index[0].map((_, o) => {
    const u = x.data[index[0][o]], v = y.data[index[1][o]], [b, c] = batchMultiple(u) ? [u, v] : [v, u];
    if (!batchMultiple(b)) return div ? Math.trunc(u / v) : u * v;
    if (!(Number.isInteger(c) && c >= 1) || batchMultiple(c)) throw new FoldError(`scales the batch size by ${c} (only by a positive integer constant)`);
    if (div && (b / BATCH) % c !== 0) throw new FoldError(`divides ${b / BATCH}*N by ${c}, which does not divide it`);
    return div ? b / c : b * c;
  });
  return tensor(dims, data, true);
}
const anyFloat = (ts: CTensor[]) => ts.every((t) => t.int);
const bool = () => true;

/** Gathers elements of x (dims) into a new tensor of dims `out`, reading x at src(outIndex). */
function remap(x: CTensor, out: number[], src: (coords: number[]) => number): CTensor {
  const st = stridesOf(out), total = size(out), data = new Array<number>(total);
  for (let o = 0; o < total; o++) data[o] = x.data[src(out.map((d, k) => Math.floor(o / st[k]) % d))];
  return tensor(out, data, x.int);
}

function slice(x: CTensor, starts: number[], ends: number[], axes: number[], steps: number[]): CTensor {
  const r = x.dims.length, st = stridesOf(x.dims), begin = Array(r).fill(0), step = Array(r).fill(1), out = x.dims.slice();
  axes.forEach((a0, i) => {
    const a = axis(a0, r), d = x.dims[a], s = steps[i] ?? 1;
    if (s === 0) throw new FoldError('Slice step 0');
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + d : v, lo), hi);
    const b = s > 0 ? clamp(starts[i], 0, d) : clamp(starts[i], -1, d - 1), e = s > 0 ? clamp(ends[i], 0, d) : clamp(ends[i], -1, d - 1);
    begin[a] = b; step[a] = s; out[a] = Math.max(0, Math.ceil((e - b) / s));
  });
  return remap(x, out, (c) => c.reduce((j, v, k) => j + (begin[k] + v * step[k]) * st[k], 0));
}

function reshape(x: CTensor, target: number[], allowZero: boolean): CTensor {
  const dims = target.map((v, i) => (v === 0 && !allowZero ? x.dims[i] : v));
  const known = dims.filter((v) => v !== -1).reduce((p, v) => p * v, 1);
  const out = dims.map((v) => (v === -1 ? size(x.dims) / known : v));
  if (size(out) !== size(x.dims)) throw new FoldError(`reshape of [${x.dims}] to [${target}] changes the element count`);
  return tensor(out, x.data, x.int);
}

const ints = (t: CTensor | undefined, what: string) => need(t, what).data;

export const FOLD: Record<string, Fold> = {
  Identity: ([x]) => need(x, 'input'),
  Cast: ([x], a) => {
    const to = a.i('to', 1), t = need(x, 'input'), int = [2, 3, 4, 5, 6, 7, 9, 12, 13].includes(to);
    if (!int && ![1, 10, 11].includes(to)) throw new FoldError(`Cast to ONNX type ${to} (only numeric types)`);
    const conv = (v: number) => (batchMultiple(v) ? v : to === 9 ? Number(v !== 0) : int ? Math.trunc(v) : to === 10 ? toHalf(v) : v);
    return tensor(t.dims, t.data.map(conv), int);
  },
  Gather([x, idx], a) {
    const t = need(x, 'data'), i = need(idx, 'indices'), ax = axis(a.i('axis', 0), t.dims.length), d = t.dims[ax];
    const out = [...t.dims.slice(0, ax), ...i.dims, ...t.dims.slice(ax + 1)], st = stridesOf(t.dims), ist = stridesOf(i.dims);
    return remap(t, out, (c) => {
      const k = i.data[c.slice(ax, ax + i.dims.length).reduce((j, v, q) => j + v * ist[q], 0)];
      const kk = k < 0 ? k + d : k;
      if (kk < 0 || kk >= d) throw new FoldError(`Gather index ${k} is out of range for axis size ${d}`);
      const rest = [...c.slice(0, ax), kk, ...c.slice(ax + i.dims.length)];
      return rest.reduce((j, v, q) => j + v * st[q], 0);
    });
  },
  Unsqueeze([x, ax], a, _n, opset) {
    const t = need(x, 'input'), axes = opset >= 13 ? ints(ax, 'axes') : a.ints('axes', []), r = t.dims.length + axes.length, out = t.dims.slice();
    for (const v of axes.map((v) => axis(v, r)).sort((p, q) => p - q)) out.splice(v, 0, 1);
    return tensor(out, t.data, t.int);
  },
  Squeeze([x, ax], a, _n, opset) {
    const t = need(x, 'input'), axes = (opset >= 13 ? (ax ? ax.data : []) : a.ints('axes', [])).map((v) => axis(v, t.dims.length));
    return tensor(t.dims.filter((d, i) => (axes.length ? !axes.includes(i) : d !== 1)), t.data, t.int);
  },
  Concat(ins, a) {
    const ts = ins.map((t, i) => need(t, `input ${i}`)), r = ts[0].dims.length, ax = axis(a.i('axis', 0), r);
    const outer = size(ts[0].dims.slice(0, ax)), data: number[] = [];
    for (let o = 0; o < outer; o++) for (const t of ts) { const inner = size(t.dims.slice(ax)); data.push(...t.data.slice(o * inner, (o + 1) * inner)); }
    return tensor([...ts[0].dims.slice(0, ax), ts.reduce((s, t) => s + t.dims[ax], 0), ...ts[0].dims.slice(ax + 1)], data, ts.every((t) => t.int));
  },
  Slice([x, s, e, ax, st], a, _n, opset) {
    const t = need(x, 'data');
    if (opset < 10) { const starts = a.ints('starts', []); return slice(t, starts, a.ints('ends', []), a.ints('axes', starts.map((_, i) => i)), []); }
    const starts = ints(s, 'starts');
    return slice(t, starts, ints(e, 'ends'), ax ? ax.data : starts.map((_, i) => i), st ? st.data : []);
  },
  Reshape: ([x, shape], a) => reshape(need(x, 'data'), ints(shape, 'shape'), a.i('allowzero', 0) === 1),
  Flatten([x], a) { const t = need(x, 'input'), ax = axis(a.i('axis', 1), t.dims.length); return tensor([size(t.dims.slice(0, ax)), size(t.dims.slice(ax))], t.data, t.int); },
  Transpose([x], a) {
    const t = need(x, 'data'), perm = a.ints('perm', t.dims.map((_, i) => t.dims.length - 1 - i)), st = stridesOf(t.dims);
    return remap(t, perm.map((p) => t.dims[p]), (c) => c.reduce((j, v, k) => j + v * st[perm[k]], 0));
  },
  Expand([x, shape]) {
    const t = need(x, 'input'), target = ints(shape, 'shape').map((v, i, all) => (v === BATCH && i === 0 && all.length >= t.dims.length ? 1 : v));
    if (target.some(batchMultiple)) throw new FoldError('expands to the batch size along an axis other than 0');
    const { dims, index } = broadcastAll([t, tensor(target, new Array(size(target)).fill(0), true)]);
    return tensor(dims, index[0].map((j) => t.data[j]), t.int);
  },
  Tile([x, reps]) {
    const t = need(x, 'input'), r = ints(reps, 'repeats'), st = stridesOf(t.dims);
    return remap(t, t.dims.map((d, i) => d * r[i]), (c) => c.reduce((j, v, k) => j + (v % t.dims[k]) * st[k], 0));
  },
  ConstantOfShape([shape], _a, n) {
    const dims = ints(shape, 'shape');
    if (dims.some(batchMultiple)) throw new FoldError('makes a tensor of the batch size, which is only known when the model runs');
    const v = n.attrs.get('value')?.t;
    const value = v ? Number(v.data[0]) : 0, int = !!v && !(v.data instanceof Float32Array);
    return tensor(dims, new Array(size(dims)).fill(value), int);
  },
  Range([s, l, d]) {
    const [start, limit, delta] = [s, l, d].map((t, i) => ints(t, ['start', 'limit', 'delta'][i])[0]);
    if (delta === 0) throw new FoldError('Range delta 0');
    const count = Math.max(Math.ceil((limit - start) / delta), 0);
    if (count > 1e7) throw new FoldError(`Range of ${count} values`);
    return tensor([count], Array.from({ length: count }, (_, i) => start + i * delta), !!s?.int);
  },
  Where: (ins) => {
    const [c, x, y] = ins.map((t, i) => need(t, ['condition', 'X', 'Y'][i]));
    const { dims, index } = broadcastAll([c, x, y]);
    return tensor(dims, index[0].map((_, o) => (c.data[index[0][o]] ? x.data[index[1][o]] : y.data[index[2][o]])), x.int && y.int);
  },
  Equal: (ins) => {
    // the batch size is a positive integer: equal to no negative constant, unknown against anything else
    const [x, y] = ins.map((t, i) => need(t, `input ${i}`));
    const { dims, index } = broadcastAll([x, y]);
    return tensor(dims, index[0].map((_, o) => {
      const u = x.data[index[0][o]], v = y.data[index[1][o]], bu = batchMultiple(u) > 0, bv = batchMultiple(v) > 0;
      if (bu !== bv && (bu ? v : u) >= 0) throw new FoldError('compares the batch size with a non-negative value');
      return Number(u === v); // k N = j N only for k = j
    }), true);
  },
  Not: elementwise((v) => Number(!v), bool),
  And: elementwise((u, v) => Number(!!u && !!v), bool),
  Or: elementwise((u, v) => Number(!!u || !!v), bool),
  Less: elementwise((u, v) => Number(u < v), bool),
  Greater: elementwise((u, v) => Number(u > v), bool),
  Add: elementwise((u, v) => u + v, anyFloat),
  Sub: elementwise((u, v) => u - v, anyFloat),
  Mul: (ins, a, n, o) => scaleBatch(ins, false) ?? elementwise((u, v) => u * v, anyFloat)(ins, a, n, o),
  Div: (ins, a, n, o) => {
    const int = ins.every((t) => t?.int);
    return scaleBatch(ins, true) ?? elementwise((u, v) => (int ? Math.trunc(u / v) : u / v), anyFloat)(ins, a, n, o);
  },
  Mod: (ins, a, n, o) => elementwise((u, v) => (a.i('fmod', 0) ? u % v : ((u % v) + v) % v), anyFloat)(ins, a, n, o),
  Neg: elementwise((v) => -v),
  Abs: elementwise((v) => Math.abs(v)),
  Sqrt: elementwise((v) => Math.sqrt(v)),
  Reciprocal: elementwise((v) => 1 / v),
  Exp: elementwise((v) => Math.exp(v)),
  Log: elementwise((v) => Math.log(v)),
  Floor: elementwise((v) => Math.floor(v)),
  Ceil: elementwise((v) => Math.ceil(v)),
  Pow: elementwise((u, v) => u ** v),
  Min: elementwise((...v) => Math.min(...v), anyFloat),
  Max: elementwise((...v) => Math.max(...v), anyFloat),
  ScatterND([x, idx, upd], _a, n) {
    const reduction = n.attrs.get('reduction')?.s ?? 'none';
    const combine = { none: (_o: number, u: number) => u, add: (o: number, u: number) => o + u, mul: (o: number, u: number) => o * u,
      max: (o: number, u: number) => Math.max(o, u), min: (o: number, u: number) => Math.min(o, u) }[reduction];
    if (!combine) throw new FoldError(`ScatterND reduction '${reduction}'`);
    const t = need(x, 'data'), i = need(idx, 'indices'), u = need(upd, 'updates'), k = i.dims[i.dims.length - 1], st = stridesOf(t.dims);
    const data = t.data.slice(), inner = size(t.dims.slice(k)), count = size(i.dims.slice(0, -1));
    for (let q = 0; q < count; q++) {
      const base = i.data.slice(q * k, (q + 1) * k).reduce((j, v, a) => j + (v < 0 ? v + t.dims[a] : v) * st[a], 0);
      for (let e = 0; e < inner; e++) data[base + e] = combine(data[base + e], u.data[q * inner + e]);
    }
    return tensor(t.dims, data, t.int);
  },
};
