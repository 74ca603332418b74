// Layout ops: Transpose, Slice (and Split, imported as one Slice per output), Pad (constant, reflect, edge), Tile (and
// Expand, a Tile of size-1 axes), Gather with constant indices. One IR kind per op (its own parameters, shape
// inference and float64 reference), and one shader family for all: shaders/layout.wgsl, a strided view in which each
// output axis d reads one input axis at coordinate i_d(c_d) (view() below builds the per-axis maps). They only move
// values (y[o] = x[src(o)], or a constant for padding), so they are linear in x: the gradient, guided backprop and the
// DeepLIFT multipliers are one and the same gather, dx[j] = sum of dy over the outputs that read j.
// Axes here are per sample (the batch is never indexed: an ONNX attribute that would move, cut or repeat it is a
// precise UnsupportedError at import). Flatten, Reshape, Squeeze and Identity stay aliases (src/ops/shape.ts).
// Reference: tests/ref.ts layoutIndex (each op's source index per output element) in nodeForward/nodeBackward.
import { BATCH, Node, Shape, numel } from '../graph.js';
import type { Importer } from '../import.js';
import type { OnnxNode } from '../onnx.js';
import type { Buf, Enc, OnnxImport, OpDef } from './types.js';

/** y axis d = x axis perm[d]. */
export interface TransposeOp { kind: 'transpose'; perm: number[] }
/** y[c] = x[begin + c * step] per axis, c < ceil((end - begin) / step) (ONNX's clamped begin/end; step != 0). */
export interface SliceOp { kind: 'slice'; begin: number[]; end: number[]; step: number[] }
/** y = x with begin[d] / end[d] values added before / after axis d (negative crops, constant mode only). */
export interface PadOp { kind: 'pad'; mode: 'constant' | 'reflect' | 'edge'; begin: number[]; end: number[]; value: number }
/** y[c] = x[c mod x_d], y_d = x_d * reps[d] (Expand: reps > 1 only on axes of size 1). */
export interface TileOp { kind: 'tile'; reps: number[] }
/** y = x with axis `axis` replaced by x[..., indices[q], ...], q < indices.length. */
export interface GatherOp { kind: 'gather'; axis: number; indices: number[] }
export type LayoutOp = TransposeOp | SliceOp | PadOp | TileOp | GatherOp;

/** Axis slots of layout.wgsl (two vec4s per per-axis quantity): per-sample rank up to 8. */
export const MAX_RANK = 8;
const MAP = { affine: 0, constant: 1, reflect: 2, edge: 3, tile: 4, gather: 5 } as const;

const stridesOf = (s: Shape) => s.map((_, d) => numel(s.slice(d + 1)));
const sliceSize = (b: number, e: number, k: number) => Math.max(0, Math.ceil((e - b) / k));

/** Output shape of a layout op on x, or the reason it does not apply (zero-size results included). */
function outShape(op: LayoutOp, x: Shape): Shape | string {
  const s = shapeOf(op, x);
  return typeof s !== 'string' && s.includes(0) ? `gives an empty tensor [N,${s}] (zero-size tensors are not supported)` : s;
}

function shapeOf(op: LayoutOp, x: Shape): Shape | string {
  const r = x.length, perAxis = (v: number[], what: string) => (v.length === r ? '' : `${what} has ${v.length} values for rank ${r}`);
  if (r > MAX_RANK) return `per-sample rank ${r} is over the supported ${MAX_RANK}`;
  switch (op.kind) {
    case 'transpose':
      if (op.perm.length !== r || [...op.perm].sort((p, q) => p - q).some((v, i) => v !== i)) return `perm [${op.perm}] is not a permutation of ${r} axes`;
      return op.perm.map((p) => x[p]);
    case 'slice': {
      const why = perAxis(op.begin, 'begin') || perAxis(op.end, 'end') || perAxis(op.step, 'step');
      if (why) return why;
      const size = x.map((_, i) => sliceSize(op.begin[i], op.end[i], op.step[i]));
      const inside = (v: number, d: number) => v >= 0 && v < d; // the first and the last element read
      const bad = x.findIndex((d, i) => op.step[i] === 0 || (size[i] > 0 && !(inside(op.begin[i], d) && inside(op.begin[i] + (size[i] - 1) * op.step[i], d))));
      return bad >= 0 ? `axis ${bad}: begin ${op.begin[bad]}, end ${op.end[bad]}, step ${op.step[bad]} read outside size ${x[bad]}` : size;
    }
    case 'pad': {
      const why = perAxis(op.begin, 'begin') || perAxis(op.end, 'end');
      if (why) return why;
      const bad = x.findIndex((d, i) => (op.mode !== 'constant' && (op.begin[i] < 0 || op.end[i] < 0)) || (op.mode === 'reflect' && Math.max(op.begin[i], op.end[i]) >= d));
      return bad >= 0 ? `${op.mode} pads ${op.begin[bad]}, ${op.end[bad]} on axis ${bad} of size ${x[bad]}` : x.map((d, i) => d + op.begin[i] + op.end[i]);
    }
    case 'tile':
      return perAxis(op.reps, 'reps') || (op.reps.some((v) => !(v >= 1)) ? `reps [${op.reps}] must be >= 1` : x.map((d, i) => d * op.reps[i]));
    case 'gather':
      if (!(op.axis >= 0 && op.axis < r)) return `axis ${op.axis} outside rank ${r}`;
      if (op.indices.some((v) => !(v >= 0 && v < x[op.axis]))) return `indices [${op.indices}] outside [0, ${x[op.axis]})`;
      return x.map((d, i) => (i === op.axis ? op.indices.length : d));
  }
}

/** layout.wgsl's view: MAP, and per output axis its size o, the size s and stride t of the input axis it reads, the
 *  offset a and step k of the coordinate map; right-aligned into MAX_RANK slots. */
function view(op: LayoutOp, xs: Shape, ys: Shape) {
  const st = stridesOf(xs), r = xs.length, lead = MAX_RANK - r;
  const src = op.kind === 'transpose' ? op.perm : xs.map((_, d) => d);
  const a = op.kind === 'slice' ? op.begin : op.kind === 'pad' ? op.begin.map((v) => -v) : xs.map(() => 0);
  const k = op.kind === 'slice' ? op.step : xs.map(() => 1);
  const fill = (v: number[], pad: number) => [...Array(lead).fill(pad), ...v];
  const two = (v: number[]) => [v.slice(0, 4), v.slice(4, 8)];
  const [o0, o1] = two(fill(ys, 1)), [s0, s1] = two(fill(src.map((d) => xs[d]), 1)), [t0, t1] = two(fill(src.map((d) => st[d]), 1));
  const [a0, a1] = two(fill(a, 0)), [k0, k1] = two(fill(k, 1));
  const params = { o0, o1, s0, s1, t0, t1, a0, a1, k0, k1, XS: numel(xs), YS: numel(ys), G: op.kind === 'gather' ? lead + op.axis : 0,
    value: op.kind === 'pad' ? op.value : 0 };
  return { map: mapOf(op), params };
}
const mapOf = (op: LayoutOp) => (op.kind === 'pad' ? MAP[op.mode] : op.kind === 'tile' ? MAP.tile : op.kind === 'gather' ? MAP.gather : MAP.affine);

const layoutDef = <O extends LayoutOp>(kind: O['kind']): OpDef<O> => ({
  kind,
  reference: `layoutIndex, nodeForward/nodeBackward case ${kind}`,
  shape(_n, op, [x], bad) {
    const s = outShape(op, x);
    return typeof s === 'string' ? bad(s) : s;
  },
  upload: kind === 'gather'
    ? (u, n, op) => ({ w: [u.buffer(`${n.name}.indices`, new Float32Array(Uint32Array.from((op as GatherOp).indices).buffer))], b: [], rows: [] }) // u32 bits
    : undefined,
  // y (N, o) = x (N, xs) through the view
  forward(e, n, op, ref) {
    const { map, params, idx } = encoding(e, n, op);
    return [e.step('layout', 'layout_forward', { MAP: map }, (ref ? 'ref:' : '') + n.name, { ...params, N: e.batch },
      { x: e.buf(n.inputs[0], ref), ...idx, y: e.buf(n.output, ref) }, e.batch * params.YS)];
  },
  // dx (N, xs) = sum of dy (N, o) over the outputs that read each input element; the same in every mode (linear)
  backward(e, n, op, b) {
    const x = n.inputs[0];
    if (!b.need.has(x)) return [];
    const { map, params, idx } = encoding(e, n, op);
    return [e.step('layout', 'layout_backward', { MAP: map }, b.label, { ...params, N: e.batch, acc: b.acc(x) },
      { dy: b.dy, ...idx, dx: b.dx(x) }, e.batch * params.XS)];
  },
});

/** The node's view at this plan, and its gather indices' buffer. */
function encoding(e: Enc, n: Node, op: LayoutOp) {
  const idx: Record<string, Buf> = op.kind === 'gather' ? { idx: e.weights(n).w[0] } : {};
  return { ...view(op, e.g.tensors.get(n.inputs[0])!.shape, e.g.tensors.get(n.output)!.shape), idx };
}

export const transpose = layoutDef<TransposeOp>('transpose');
export const slice = layoutDef<SliceOp>('slice');
export const pad = layoutDef<PadOp>('pad');
export const tile = layoutDef<TileOp>('tile');
export const gather = layoutDef<GatherOp>('gather');

// ------------------------------------------------------------------------------------------------ ONNX import

type Im = Importer;
const dim = (v: number) => (v === BATCH ? 'N' : `${v}`);
const list = (v: number[]) => `[${v.map(dim).join(',')}]`;

/** A full-rank ONNX axis (negative counts from the end) as a per-sample axis; the batch axis 0 is refused. */
function sampleAxis(im: Im, n: OnnxNode, a: number, rank: number, what = 'axis'): number {
  const v = a < 0 ? a + rank : a;
  if (!(v >= 0 && v < rank)) im.unsupported(n, `with ${what}=${a} outside rank ${rank}`);
  if (v === 0) im.unsupported(n, `on the batch axis 0 (${what}=${a}): camgpu never moves, cuts or repeats the batch`);
  return v - 1;
}

/** Emits op, or an alias where it leaves x as it is (an identity permutation, a full slice, zero pads, repeats of 1). */
function emitLayout(im: Im, n: OnnxNode, op: LayoutOp, identity: boolean, out = n.outputs[0], name = n.name) {
  const x = im.shape(n, 0), s = outShape(op, x);
  if (typeof s === 'string') im.unsupported(n, `${s} (input [N,${x}])`);
  if (identity) im.emit(n, { kind: 'alias' }, [n.inputs[0]], s, out, name);
  else im.emit(n, op, [n.inputs[0]], s, out, name);
}

/** ONNX Slice clamping of one axis of size d: begin and end with negatives counted from the end, then clamped to
 *  [0, d] for a positive step, begin to [0, d-1] and end to [-1, d-1] for a negative one. */
export function clampSlice(d: number, start: number, end: number, step: number): [number, number] {
  const at = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + d : v, lo), hi);
  return step > 0 ? [at(start, 0, d), at(end, 0, d)] : [at(start, 0, d - 1), at(end, -1, d - 1)];
}

function sliceImport(im: Im, n: OnnxNode) {
  const x = im.shape(n, 0), rank = x.length + 1, a = im.attrs(n), old = im.opset < 10;
  const starts = old ? a.ints('starts', []) : im.constInts(n, 1, 'starts'), ends = old ? a.ints('ends', []) : im.constInts(n, 2, 'ends');
  const axes = old ? a.ints('axes', starts.map((_, i) => i)) : n.inputs[3] ? im.constInts(n, 3, 'axes') : starts.map((_, i) => i);
  const steps = !old && n.inputs[4] ? im.constInts(n, 4, 'steps') : starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length)
    im.unsupported(n, `with ${starts.length} starts, ${ends.length} ends, ${axes.length} axes and ${steps.length} steps`);
  const op: SliceOp = { kind: 'slice', begin: x.map(() => 0), end: x.slice(), step: x.map(() => 1) };
  const seen = new Set<number>();
  axes.forEach((ax, i) => {
    const full = ax < 0 ? ax + rank : ax;
    if (seen.has(full)) im.unsupported(n, `with axis ${ax} given twice in axes [${axes}]`);
    seen.add(full);
    const [st, en, k] = [starts[i], ends[i], steps[i]];
    if (full === 0) { // the whole batch is the only slice of it that keeps the batch
      if (st === 0 && k === 1 && (en === BATCH || en >= 2 ** 31 - 1)) return;
      im.unsupported(n, `on the batch axis 0 (start ${dim(st)}, end ${dim(en)}, step ${k}): only [0:] over the whole batch keeps the batch`);
    }
    const d = sampleAxis(im, n, ax, rank);
    if (k === 0) im.unsupported(n, `with step 0 on axis ${ax}`);
    if (st === BATCH || en === BATCH) im.unsupported(n, `of axis ${ax} up to the batch size (start ${dim(st)}, end ${dim(en)})`);
    [op.begin[d], op.end[d]] = clampSlice(x[d], st, en, k);
    op.step[d] = k;
  });
  emitLayout(im, n, op, op.step.every((k, d) => k === 1 && op.begin[d] === 0 && op.end[d] === x[d]));
}

function splitImport(im: Im, n: OnnxNode) {
  const x = im.shape(n, 0), rank = x.length + 1, a = im.attrs(n), K = n.outputs.length;
  const d = sampleAxis(im, n, a.i('axis', 0), rank), size = x[d];
  let sizes: number[];
  if (im.opset >= 13 && n.inputs[1]) sizes = im.constInts(n, 1, 'split');
  else if (im.opset < 13 && a.ints('split', []).length) sizes = a.ints('split', []);
  else if (im.opset >= 18 && im.intIn(n, 'num_outputs', 0, 0, 2 ** 20)) { // the last part is smaller when the axis does not divide
    const chunk = Math.ceil(size / a.i('num_outputs', 0));
    sizes = Array.from({ length: K }, (_, k) => Math.max(0, Math.min(chunk, size - k * chunk)));
  } else {
    if (size % K) im.unsupported(n, `into ${K} equal parts of axis ${d + 1} of size ${size}`);
    sizes = Array(K).fill(size / K);
  }
  if (sizes.length !== K || sizes.some((v) => v < 0) || sizes.reduce((p, v) => p + v, 0) !== size)
    im.unsupported(n, `with split [${sizes}] for ${K} outputs of axis ${d + 1} of size ${size}`);
  let off = 0;
  sizes.forEach((len, k) => {
    const out = n.outputs[k], begin = off;
    off += len;
    if (!out || !(im.uses.has(out) || im.isGraphOutput(out))) return; // unused outputs cost nothing
    const op: SliceOp = { kind: 'slice', begin: x.map(() => 0), end: x.slice(), step: x.map(() => 1) };
    op.begin[d] = begin; op.end[d] = begin + len;
    emitLayout(im, n, op, len === size, out, `${n.name}:${k}`);
  });
}

function padImport(im: Im, n: OnnxNode) {
  const x = im.shape(n, 0), rank = x.length + 1, a = im.attrs(n), mode = a.s('mode', 'constant');
  if (mode !== 'constant' && mode !== 'reflect' && mode !== 'edge') im.unsupported(n, `with mode='${mode}' (constant, reflect and edge are supported)`);
  const old = im.opset < 11;
  const pads = old ? a.ints('pads', []) : im.constInts(n, 1, 'pads');
  const value = old ? a.f('value', 0) : n.inputs[2] ? im.scalar(n, 2, 'constant_value') : 0;
  const axes = !old && n.inputs[3] ? im.constInts(n, 3, 'axes') : Array.from({ length: rank }, (_, i) => i);
  if (pads.length !== 2 * axes.length) im.unsupported(n, `with ${pads.length} pads for ${axes.length} axes`);
  const op: PadOp = { kind: 'pad', mode, begin: x.map(() => 0), end: x.map(() => 0), value };
  axes.forEach((ax, i) => {
    const [b, e] = [pads[i], pads[i + axes.length]];
    if (b === 0 && e === 0) return;
    const d = sampleAxis(im, n, ax, rank, `pads ${list(pads)} on axis`);
    if (mode !== 'constant' && (b < 0 || e < 0)) im.unsupported(n, `with negative pads ${list(pads)} in mode '${mode}' (only constant mode crops)`);
    if (mode === 'reflect' && Math.max(b, e) >= x[d]) im.unsupported(n, `reflect pads ${b}, ${e} on axis ${ax} of size ${x[d]} (pads must be smaller than the axis, as in PyTorch)`);
    op.begin[d] = b; op.end[d] = e;
  });
  emitLayout(im, n, op, op.begin.every((v, d) => v === 0 && op.end[d] === 0));
}

/** Expand to a constant shape: numpy broadcasting of x against it, which keeps the batch only where the target has
 *  no more axes than x and a 1 (or the batch size) at axis 0. */
function expandImport(im: Im, n: OnnxNode) {
  const x = im.shape(n, 0), rank = x.length + 1, t = im.constInts(n, 1, 'shape');
  if (t.length > rank) im.unsupported(n, `to ${list(t)} adds axes before the batch axis of [N,${x}]`);
  const full = [...Array(rank - t.length).fill(1), ...t];
  if (full[0] !== 1 && full[0] !== BATCH) im.unsupported(n, `to ${list(t)}: axis 0 must be 1 or the batch size (a literal ${full[0]} would expand the batch)`);
  const reps = x.map((d, i) => {
    const v = full[i + 1];
    if (v === BATCH) im.unsupported(n, `to ${list(t)}: axis ${i + 1} is the batch size`);
    if (v === 1 || v === d) return 1;
    if (d !== 1) im.unsupported(n, `to ${list(t)}: axis ${i + 1} of size ${d} does not broadcast to ${v}`);
    return v;
  });
  emitLayout(im, n, { kind: 'tile', reps }, reps.every((v) => v === 1));
}

function tileImport(im: Im, n: OnnxNode) {
  const x = im.shape(n, 0), reps = im.constInts(n, 1, 'repeats');
  if (reps.length !== x.length + 1) im.unsupported(n, `with repeats ${list(reps)} for rank ${x.length + 1}`);
  if (reps[0] !== 1) im.unsupported(n, `with repeats ${list(reps)} repeats the batch axis 0`);
  if (reps.some((v) => v === BATCH || v < 1)) im.unsupported(n, `with repeats ${list(reps)} (each must be a constant >= 1)`);
  emitLayout(im, n, { kind: 'tile', reps: reps.slice(1) }, reps.every((v) => v === 1));
}

/** Gather of constant indices of any rank on a per-sample axis: a gather of the flattened indices, then an alias to
 *  the index shape (a scalar index drops the axis: x[:, 0] of (N, T, D) is (N, D)). */
function gatherImport(im: Im, n: OnnxNode) {
  const x = im.shape(n, 0), axis = sampleAxis(im, n, im.attrs(n).i('axis', 0), x.length + 1), size = x[axis];
  const raw = im.constInts(n, 1, 'indices'), dims = im.ints.get(n.inputs[1])!.dims;
  if (raw.includes(BATCH)) im.unsupported(n, 'with the batch size as an index');
  const bad = raw.find((v) => !(v >= -size && v < size));
  if (bad !== undefined) im.unsupported(n, `index ${bad} is outside axis ${axis + 1} of size ${size}`);
  const op: GatherOp = { kind: 'gather', axis, indices: raw.map((v) => (v < 0 ? v + size : v)) };
  const final = [...x.slice(0, axis), ...dims, ...x.slice(axis + 1)];
  if (dims.length === 1) { emitLayout(im, n, op, false); return; }
  const mid = `${n.outputs[0]}:gather`;
  emitLayout(im, n, op, false, mid);
  im.emit(n, { kind: 'alias' }, [mid], final, n.outputs[0], `${n.name}:reshape`);
}

function transposeImport(im: Im, n: OnnxNode) {
  const x = im.shape(n, 0), rank = x.length + 1;
  const perm = im.attrs(n).ints('perm', Array.from({ length: rank }, (_, i) => rank - 1 - i));
  if (perm.length !== rank || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) im.unsupported(n, `with perm [${perm}]: not a permutation of the ${rank} axes`);
  if (perm[0] !== 0) im.unsupported(n, `with perm [${perm}] moves the batch axis 0 (only permutations that keep axis 0 first)`);
  const op: TransposeOp = { kind: 'transpose', perm: perm.slice(1).map((p) => p - 1) };
  emitLayout(im, n, op, op.perm.every((p, i) => p === i));
}

export const onnx: Record<string, OnnxImport> = {
  Transpose: transposeImport, Slice: sliceImport, Split: splitImport, Pad: padImport, Expand: expandImport, Tile: tileImport, Gather: gatherImport,
};
