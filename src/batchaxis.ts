// Where the batch axis sits in an ONNX tensor. camgpu's IR is per sample: every activation is stored batch-outermost,
// (N, ...per-sample shape), and its IR shape leaves the batch out. Most exports keep the batch at ONNX axis 0, but
// nn.MultiheadAttention's export moves it: (N,L,E) -Transpose-> (L,N,E) -Reshape-> (L,N*H,hd) -Transpose-> (N*H,L,hd),
// bmm / softmax / bmm, and back through (L,N*H,hd), (L*N,E) (the out-projection Gemm), (L,N,E) and (N,L,E).
// Such a tensor is still exactly "N per-sample blocks", because only reorderings and regroupings that keep each
// sample's elements together happened: its ONNX dims, read in memory order as factors, are the per-sample factors
// with the single factor N inserted somewhere. BatchAxis records where: ONNX axis `axis` holds N, as outer * N * inner
// (outer and inner: the per-sample factors merged into that axis before and after N). The per-sample layout is the
// ONNX memory order with N taken out, so the IR shape is the ONNX dims with axis `axis` divided by N (dropped when it
// was N alone: the usual (N, C, H, W) -> (C, H, W)). Then
//   - Transpose moves whole axes: the batch axis moves with its factors, the per-sample transpose permutes the rest;
//     one that only moves N is free (an alias: (N,L,E) -> (L,N,E) keeps every sample's data in place);
//   - Reshape regroups factors: it keeps the batch exactly when the per-sample elements before N (and after it) stay
//     before (after) it, which fixes the new outer and inner (reshapeRule); anything else would split or fix N;
//   - row-wise ops (MatMul, Gemm, Softmax, Slice and element-wise ops) are exact per sample when they do not read
//     across the batch axis; an op that would (a softmax or a reduction over it, a MatMul contracting it, a slice of
//     it) mixes samples and is refused with the node, op and shape; so is every other op on a moved batch.
// Shape() of such a tensor gives k * BATCH at the batch axis (src/fold.ts scales it by integer constants), so the
// exporter's own shape arithmetic (L * N, N * H) folds to the values the rules above check.
// A constant Expand-ed to the batch (ViT's class token, Expand(cls, [N,1,E])) is the same for every sample: a
// per-sample constant that Concat may take (src/ops/shape.ts).
import { BATCH, Shape, batchMultiple, numel, showDim } from './graph.js';
import type { Importer } from './import.js';
import type { OnnxNode } from './onnx.js';
import { ONNX_IMPORTS } from './ops/index.js';
import { clampSlice } from './ops/layout.js';
import { linearImport } from './ops/matmul.js';
import { gemmOp } from './ops/linear.js';

/** ONNX axis `axis` is outer * N * inner (outer, inner: per-sample factors); the IR shape has outer * inner there,
 *  or no axis when both are 1. Batch-outermost tensors (axis 0, outer = inner = 1) have no entry in Importer.batch. */
export interface BatchAxis { axis: number; outer: number; inner: number }
const CANONICAL: BatchAxis = { axis: 0, outer: 1, inner: 1 };
const isCanonical = (b: BatchAxis) => b.axis === 0 && b.outer === 1 && b.inner === 1;
const kept = (b: BatchAxis) => b.outer * b.inner > 1;

/** The batch axis of an IR tensor (canonical when the importer has no entry). */
export const batchOf = (im: Importer, t: string): BatchAxis => im.batch.get(im.name(t)) ?? CANONICAL;
function setBatch(im: Importer, t: string, b: BatchAxis) { if (isCanonical(b)) im.batch.delete(t); else im.batch.set(t, b); }

/** The ONNX dims of a tensor with per-sample shape s: the batch axis as k * BATCH (k = outer * inner). */
export function onnxDims(s: Shape, b: BatchAxis): number[] {
  if (!kept(b)) return [...s.slice(0, b.axis), BATCH, ...s.slice(b.axis)];
  return s.map((d, i) => (i === b.axis ? d * BATCH : d));
}
const show = (d: number[]) => `[${d.map(showDim).join(',')}]`;
/** ONNX dims of (s, b) for messages: [L,N,E], [L,2*N,16]. */
export const showDims = (s: Shape, b: BatchAxis) => show(onnxDims(s, b));

/** The per-sample axis of ONNX axis a (normalised); -1 for the batch axis when it holds N alone. */
function sampleAxis(b: BatchAxis, a: number): number {
  if (kept(b)) return a;
  return a === b.axis ? -1 : a < b.axis ? a : a - 1;
}

/** Transpose by perm: the per-sample perm and the new batch axis. */
export function transposeRule(s: Shape, b: BatchAxis, perm: number[]): { perm: number[]; batch: BatchAxis } {
  const axis = perm.indexOf(b.axis), batch = { ...b, axis };
  if (kept(b)) return { perm, batch };
  return { perm: perm.filter((p) => p !== b.axis).map((p) => (p > b.axis ? p - 1 : p)), batch };
}

/** Reshape of a tensor (per-sample s, batch b) to the ONNX target (0: copy, -1: infer; k * BATCH allowed): the new
 *  per-sample shape and batch axis, or why it does not keep the batch. */
export function reshapeRule(s: Shape, b: BatchAxis, target: number[], allowZero: boolean): { shape: Shape; batch: BatchAxis } | string {
  const from = onnxDims(s, b), size = numel(s);
  const t = target.map((v, i) => (v === 0 && !allowZero ? (from[i] ?? NaN) : v));
  if (t.some((v) => Number.isNaN(v))) return 'copies (0) an axis the input does not have';
  const batchAt = t.map((v, i) => (batchMultiple(v) ? i : -1)).filter((i) => i >= 0), free = t.filter((v) => v === -1).length;
  if (batchAt.length > 1 || free > 1) return `has ${batchAt.length > 1 ? 'the batch size' : '-1'} at more than one axis`;
  const fixed = t.filter((v) => v !== -1 && !batchMultiple(v));
  if (fixed.some((v) => !(Number.isInteger(v) && v >= 1))) return 'has a dimension that is not a positive integer';
  const known = numel(fixed);
  let dims: number[], j: number, k: number;
  if (batchAt.length) { // -1 (if any) takes what the batch axis and the constants leave
    j = batchAt[0]; k = batchMultiple(t[j]);
    const rest = size / (known * k);
    if (!Number.isInteger(rest) || (!free && rest !== 1)) return `changes the element count (per sample ${size})`;
    dims = t.map((v, i) => (i === j ? k : v === -1 ? rest : v));
  } else if (free) { // -1 takes the batch with it
    j = t.indexOf(-1); k = size / known;
    if (!Number.isInteger(k)) return `changes the element count (per sample ${size})`;
    dims = t.map((v, i) => (i === j ? k : v));
  } else return 'fixes the batch size (a constant shape; export with the batch size from Shape, or -1)';
  const pre = numel(from.slice(0, b.axis)) * b.outer, post = numel(from.slice(b.axis + 1)) * b.inner;
  const outer = pre / numel(dims.slice(0, j)), inner = k / outer;
  if (!Number.isInteger(outer) || !Number.isInteger(inner) || numel(dims.slice(j + 1)) * inner !== post)
    return `splits the batch from the elements next to it (the input has ${pre} per-sample elements before N and ${post} after it)`;
  const batch = { axis: j, outer, inner };
  return { shape: kept(batch) ? dims : dims.filter((_, i) => i !== j), batch };
}

/** The op types that take tensors with a moved batch axis here (everything else refuses them). */
const UNARY = ['Relu', 'Sigmoid', 'LeakyRelu', 'HardSigmoid', 'Tanh', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Neg', 'Abs', 'Erf',
  'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign', 'Mish', 'HardSwish', 'Clip', 'Gelu', 'Identity', 'Dropout'];
const BINARY: Record<string, 'add' | 'sub' | 'mul' | 'div'> = { Add: 'add', Sub: 'sub', Mul: 'mul', Div: 'div' };

/** Whether this module imports n: Transpose and Reshape always (they may move the batch), any op of a moved tensor. */
export function handles(im: Importer, n: OnnxNode): boolean {
  if (n.opType === 'Transpose' || n.opType === 'Reshape') return true;
  return n.inputs.some((i) => i && im.isVar(i) && !isCanonical(batchOf(im, i)));
}

/** Imports n (handles(im, n)): Transpose / Reshape by the rules above (through the ordinary importers when the batch
 *  stays outermost), row-wise ops of a moved tensor, and a precise refusal of everything else. */
export function importBatchAware(im: Importer, n: OnnxNode): void {
  const x = n.inputs.find((i) => i && im.isVar(i))!, b = batchOf(im, x), s = im.shape(n, n.inputs.indexOf(x)), dims = onnxDims(s, b);
  const refuse = (why: string): never => im.unsupported(n, `of ${show(dims)} ('${x}', whose batch axis N an earlier Transpose or Reshape moved to axis ${b.axis}): ${why}`);
  const axisOf = (a: number, what: string) => {
    const v = a < 0 ? a + dims.length : a;
    if (!(v >= 0 && v < dims.length)) refuse(`${what} ${a} is outside rank ${dims.length}`);
    return v;
  };
  const out = n.outputs[0];
  switch (n.opType) {
    case 'Transpose': {
      const perm = im.attrs(n).ints('perm', dims.map((_, i) => dims.length - 1 - i));
      if (perm.length !== dims.length || [...perm].sort((p, q) => p - q).some((v, i) => v !== i)) refuse(`perm [${perm}] is not a permutation of ${dims.length} axes`);
      if (isCanonical(b) && perm[0] === 0) return ONNX_IMPORTS.Transpose(im, n);
      const r = transposeRule(s, b, perm), identity = r.perm.every((p, i) => p === i);
      im.emit(n, identity ? { kind: 'alias' } : { kind: 'transpose', perm: r.perm }, [x], r.perm.map((p) => s[p]));
      return setBatch(im, out, r.batch);
    }
    case 'Reshape': {
      const t = im.constInts(n, 1, 'shape'), allowZero = im.attrs(n).i('allowzero', 0) === 1;
      const rest = t.slice(1).map((v, i) => (v === 0 && !allowZero ? s[i] : v));
      const legacy = isCanonical(b) && [BATCH, -1, 0, 1].includes(t[0]) && !rest.some((v) => v === -1 || batchMultiple(v)) && numel(rest) === numel(s);
      if (legacy) return ONNX_IMPORTS.Reshape(im, n); // the batch stays at axis 0 (a literal 1 there: an export at batch 1)
      const r = reshapeRule(s, b, t, allowZero);
      if (typeof r === 'string' && isCanonical(b)) return ONNX_IMPORTS.Reshape(im, n); // its own message (a literal batch, ...)
      if (typeof r === 'string') im.unsupported(n, `of ${show(dims)} to ${show(t)} ${r}`);
      im.emit(n, { kind: 'alias' }, [x], r.shape);
      return setBatch(im, out, r.batch);
    }
  }
  if (UNARY.includes(n.opType) || (n.opType === 'Pow' && im.constant(n.inputs[1])?.data.length === 1)) {
    ONNX_IMPORTS[n.opType](im, n);
    return setBatch(im, out, b);
  }
  const kind = BINARY[n.opType];
  if (kind) {
    if (n.inputs.length !== 2) refuse(`${n.inputs.length} inputs`);
    let ins = n.inputs.map((i) => operand(im, n, i, dims.length, b, refuse));
    let op = kind;
    const c = im.floats.get(n.inputs[1]);
    if (kind === 'div' && c && !im.isVar(n.inputs[1])) { // a / c = a * (1/c)
      const name = `1/${ins[1]}`;
      if (!im.g.tensors.has(name)) im.g.tensors.set(name, { name, shape: im.g.tensors.get(ins[1])!.shape.slice(), data: im.g.tensors.get(ins[1])!.data!.map((v) => 1 / v) });
      ins = [ins[0], name]; op = 'mul';
    }
    im.emit(n, { kind: op }, ins);
    return setBatch(im, out, b);
  }
  switch (n.opType) {
    case 'Softmax': case 'LogSoftmax': {
      const modern = im.opset >= 13, a = axisOf(im.attrs(n).i('axis', modern ? -1 : 1), 'axis');
      if (a === b.axis || (!modern && a < b.axis)) refuse(`a softmax over axis ${a}${modern ? '' : ' and after'} would mix the samples of the batch`);
      const p = sampleAxis(b, a);
      im.emit(n, { kind: 'softmax', axis: p, end: modern ? p + 1 : s.length, log: n.opType === 'LogSoftmax' }, [x]);
      return setBatch(im, out, b);
    }
    case 'MatMul': {
      const [A, B] = n.inputs, R = dims.length;
      if (x !== A) refuse('a constant times a tensor with a moved batch axis is not supported');
      if (b.axis >= R - 2 + (im.isVar(B) ? 0 : 1)) refuse(`the batch axis ${b.axis} is a matrix axis of the product (it would mix the samples)`);
      const Bc = im.isVar(B) ? undefined : im.floats.get(B);
      if (Bc && Bc.dims.length <= 2) { linearImport(im, n, Bc); return setBatch(im, out, b); }
      if (!im.isVar(B)) refuse(`the constant '${B}' of rank ${Bc?.dims.length ?? '?'} (only a 2-D weight)`);
      const bb = batchOf(im, B), bd = onnxDims(im.shape(n, 1), bb);
      if (bd.length !== R || bb.axis !== b.axis || bb.outer !== b.outer || bb.inner !== b.inner)
        refuse(`the other operand '${B}' ${show(bd)} has its batch elsewhere (batch axis ${bb.axis}, ${bb.outer}*N*${bb.inner})`);
      im.emit(n, { kind: 'matmul' }, [A, B]);
      return setBatch(im, out, b);
    }
    case 'Gemm': { // (outer*N*inner, K) rows: a linear layer over the last axis of every sample's rows
      if (dims.length !== 2 || b.axis !== 0) refuse('Gemm needs the batch in its rows (axis 0)');
      im.emit(n, gemmOp(im, n), [x]);
      return setBatch(im, out, b);
    }
    case 'Slice': return slice(im, n, x, s, b, dims, refuse, axisOf);
    case 'Gather': { // constant indices on a per-sample axis (Swin's q, k, v = qkv[0], qkv[1], qkv[2])
      const a = axisOf(im.attrs(n).i('axis', 0), 'axis');
      if (a === b.axis || x !== n.inputs[0]) refuse(`a Gather along the batch axis ${a} would pick samples`);
      const raw = im.constInts(n, 1, 'indices'), idims = im.ints.get(n.inputs[1])!.dims, p = sampleAxis(b, a), size = s[p];
      const badIndex = raw.find((v) => !(v >= -size && v < size));
      if (badIndex !== undefined) refuse(`index ${showDim(badIndex)} is outside axis ${a} of size ${size}`);
      const op = { kind: 'gather' as const, axis: p, indices: raw.map((v) => (v < 0 ? v + size : v)) };
      const final = [...s.slice(0, p), ...idims, ...s.slice(p + 1)], batch = { ...b, axis: b.axis < a ? b.axis : b.axis + idims.length - 1 };
      if (idims.length === 1) im.emit(n, op, [x]);
      else {
        const mid = `${out}:gather`;
        im.emit(n, op, [x], undefined, mid);
        im.emit(n, { kind: 'alias' }, [mid], final, out, `${n.name}:reshape`);
      }
      return setBatch(im, out, batch);
    }
    case 'Concat': { // along a per-sample axis, every input with the same batch axis
      const a = axisOf(im.attrs(n).i('axis', 0), 'axis');
      if (a === b.axis) refuse(`a Concat along the batch axis ${a} would join samples`);
      for (const i of n.inputs) {
        const bi = im.isVar(i) ? batchOf(im, i) : undefined, d = bi && onnxDims(im.shape(n, n.inputs.indexOf(i)), bi);
        if (!bi || !d || d.length !== dims.length || bi.axis !== b.axis || bi.outer !== b.outer || bi.inner !== b.inner)
          refuse(`input '${i}' is ${bi ? `${show(d!)} with its batch elsewhere` : 'a constant'}`);
      }
      const p = sampleAxis(b, a);
      im.emit(n, p === 0 ? { kind: 'concat' } : { kind: 'concat', axis: p }, n.inputs);
      return setBatch(im, out, b);
    }
  }
  refuse(`${n.opType} is only supported with the batch at axis 0 (Transpose, Reshape, MatMul, Gemm, Softmax, LogSoftmax, Slice, Gather, Concat, Add, Sub, Mul, Div and element-wise activations take a moved batch axis)`);
}

/** An operand of a binary op with the batch at b of an ONNX rank R: an activation with the same batch axis, or a
 *  constant (right-aligned to rank R, size 1 at the batch axis) as a per-sample constant. */
function operand(im: Importer, n: OnnxNode, t: string, R: number, b: BatchAxis, refuse: (why: string) => never): string {
  if (im.isVar(t)) {
    const bt = batchOf(im, t), d = onnxDims(im.shape(n, n.inputs.indexOf(t)), bt);
    if (d.length !== R || bt.axis !== b.axis || bt.outer !== b.outer || bt.inner !== b.inner) refuse(`the other operand '${t}' ${show(d)} has its batch elsewhere`);
    return im.name(t);
  }
  const c = im.floats.get(t);
  if (!c) refuse(`operand '${t}' is not a float constant`);
  if (c.dims.length > R) refuse(`the constant '${t}' of shape [${c.dims}] has more axes than the activation`);
  const at = b.axis - (R - c.dims.length); // the constant's axis under the batch axis, if it reaches it
  if (at >= 0 && c.dims[at] !== 1) refuse(`the constant '${t}' of shape [${c.dims}] varies along the batch axis ${b.axis}`);
  const shape = at >= 0 && !kept(b) ? c.dims.filter((_, i) => i !== at) : c.dims.slice();
  const name = `${t}:batch@${b.axis}`;
  if (!im.g.tensors.has(name)) im.g.tensors.set(name, { name, shape, data: c.data });
  return name;
}

/** Slice of a moved tensor: per-sample axes as Slice of them; the batch axis only whole. */
function slice(im: Importer, n: OnnxNode, x: string, s: Shape, b: BatchAxis, dims: number[], refuse: (why: string) => never, axisOf: (a: number, what: string) => number) {
  if (im.opset < 10) refuse('Slice before opset 10 is not supported here');
  const starts = im.constInts(n, 1, 'starts'), ends = im.constInts(n, 2, 'ends');
  const axes = n.inputs[3] ? im.constInts(n, 3, 'axes') : starts.map((_, i) => i), steps = n.inputs[4] ? im.constInts(n, 4, 'steps') : starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) refuse(`${starts.length} starts, ${ends.length} ends, ${axes.length} axes, ${steps.length} steps`);
  const op = { kind: 'slice' as const, begin: s.map(() => 0), end: s.slice(), step: s.map(() => 1) };
  axes.forEach((a0, i) => {
    const a = axisOf(a0, 'axis'), [st, en, k] = [starts[i], ends[i], steps[i]];
    if (a === b.axis) {
      if (st === 0 && k === 1 && (en === dims[a] || en >= 2 ** 31 - 1)) return;
      refuse(`a slice of the batch axis ${a} (start ${showDim(st)}, end ${showDim(en)}, step ${k}) would cut the batch`);
    }
    if (k === 0 || batchMultiple(st) || batchMultiple(en)) refuse(`slice of axis ${a} with start ${showDim(st)}, end ${showDim(en)}, step ${k}`);
    const p = sampleAxis(b, a);
    [op.begin[p], op.end[p]] = clampSlice(s[p], st, en, k);
    op.step[p] = k;
  });
  const whole = op.step.every((k, d) => k === 1 && op.begin[d] === 0 && op.end[d] === s[d]);
  im.emit(n, whole ? { kind: 'alias' } : op, [x], whole ? s.slice() : undefined);
  setBatch(im, n.outputs[0], b);
}
