// Reductions over any set of per-sample axes (ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceL2, ReduceL1,
// ReduceSumSquare, GlobalMaxPool): shaders/reduce.wgsl, whose header has the math, the backward of every function and
// its DeepLIFT rule. x's per-sample shape is passed as at most 8 groups of adjacent axes that are all reduced or all
// kept (groups() below), so one kernel takes any axes; keepdims only changes the output's shape, never its layout.
// ReduceMean over (H, W) of an (N,C,H,W) input stays a GlobalAveragePool (the gap record), as it always was.
// Reference: tests/ref.ts reduceForward / reduceBackward.
import { Node, Shape, fmt, numel } from '../graph.js';
import type { Importer } from '../import.js';
import type { OnnxNode } from '../onnx.js';
import type { Buf, Enc, OnnxImport, OpDef } from './types.js';

export type ReduceFn = 'sum' | 'mean' | 'max' | 'min' | 'l2' | 'l1' | 'sumsquare';
/** y = fn over the per-sample axes `axes` (sorted, distinct) of x; keep: those axes stay with size 1. max / min: the
 *  first extremum in scan order (row-major over the reduced axes) takes the gradient. */
export interface ReduceOp { kind: 'reduce'; fn: ReduceFn; axes: number[]; keep: boolean }

/** reduce.wgsl's FN override. */
const FN_ID: Record<ReduceFn, number> = { sum: 0, mean: 1, max: 2, min: 3, l2: 4, l1: 5, sumsquare: 6 };
const ARG = (fn: ReduceFn) => fn === 'max' || fn === 'min';
/** Group slots of reduce.wgsl (two vec4s of sizes). */
const GROUPS = 8;

/** x's per-sample shape as groups of adjacent axes that are all reduced or all kept, size-1 axes dropped (they change
 *  no index): sizes left-padded with 1 to GROUPS slots, and bit d of mask set where slot d is reduced. */
export function groups(xs: Shape, axes: number[]): { sizes: number[]; mask: number } | string {
  const g: [number, boolean][] = [];
  xs.forEach((d, i) => {
    if (d === 1) return;
    const red = axes.includes(i), last = g[g.length - 1];
    if (last && last[1] === red) last[0] *= d; else g.push([d, red]);
  });
  if (g.length > GROUPS) return `axes [${axes}] of ${fmt(xs)} alternate ${g.length} times between reduced and kept (at most ${GROUPS})`;
  const sizes = [...Array(GROUPS - g.length).fill(1), ...g.map((v) => v[0])];
  const mask = g.reduce((m, v, k) => (v[1] ? m | (1 << (GROUPS - g.length + k)) : m), 0);
  return { sizes, mask };
}

function outShape(op: ReduceOp, x: Shape): Shape | string {
  if (op.axes.some((a, i) => !(Number.isInteger(a) && a >= 0 && a < x.length) || (i > 0 && a <= op.axes[i - 1])))
    return `axes [${op.axes}] are not distinct sorted per-sample axes of ${fmt(x)}`;
  if (!op.axes.length) return 'reduces no axis';
  const g = groups(x, op.axes);
  if (typeof g === 'string') return g;
  return op.keep ? x.map((d, i) => (op.axes.includes(i) ? 1 : d)) : x.filter((_, i) => !op.axes.includes(i));
}

/** reduce.wgsl's Params at this plan (N, the groups, the per-sample sizes of x and y, R values reduced per output). */
function params(e: Enc, n: Node, op: ReduceOp, acc = 0) {
  const xs = e.g.tensors.get(n.inputs[0])!.shape, g = groups(xs, op.axes) as { sizes: number[]; mask: number };
  const R = op.axes.reduce((p, a) => p * xs[a], 1);
  return { s0: g.sizes.slice(0, 4), s1: g.sizes.slice(4), mask: g.mask, N: e.batch, XS: numel(xs), YS: numel(xs) / R, R, acc };
}

export const reduce: OpDef<ReduceOp> = {
  kind: 'reduce',
  reference: 'reduceForward, reduceBackward',
  shape(_n, op, [x], bad) {
    const s = outShape(op, x);
    return typeof s === 'string' ? bad(s) : s;
  },
  // y (N, kept) = fn over the reduced groups of x (N, xs); max / min also write their argmax (offset in the sample)
  forward(e, n, op, ref) {
    const p = params(e, n, op), arg: Record<string, Buf> = ARG(op.fn) ? { oidx: e.argmax(n.output, ref) } : {};
    return [e.step('reduce', 'reduce_forward', { FN: FN_ID[op.fn] }, (ref ? 'ref:' : '') + n.name, p,
      { x: e.buf(n.inputs[0], ref), out: e.buf(n.output, ref), ...arg }, e.batch * p.YS)];
  },
  // dx (N, xs) gathers dy at the output each element went into, times the function's (or DeepLIFT's) multiplier
  backward(e, n, op, b) {
    const x = n.inputs[0];
    if (!b.need.has(x)) return [];
    const dl = b.mode === 'deeplift', p = params(e, n, op, b.acc(x)), arg = ARG(op.fn);
    const bind: Record<string, Buf> = arg
      ? { x: e.buf(x), xr: e.buf(x, dl), idx: e.argmax(n.output, false), idxr: e.argmax(n.output, dl), dy: b.dy, out: b.dx(x) }
      : { x: e.buf(x), xr: e.buf(x, dl), y: e.buf(n.output), yr: e.buf(n.output, dl), dy: b.dy, out: b.dx(x) };
    return [e.step('reduce', arg ? 'reduce_backward_arg' : 'reduce_backward', { FN: FN_ID[op.fn], MODE: dl ? 2 : 0 }, b.label, p, bind, e.batch * p.XS)];
  },
};

// ------------------------------------------------------------------------------------------------ ONNX import

/**
 * Reduce<fn>: axes from the attribute before `inputFrom` (opset 18; ReduceSum 13), from the optional second input
 * after; keepdims (default 1). No axes means every axis, the batch too (refused), unless noop_with_empty_axes makes
 * the node an identity. ReduceMean over (2, 3) of an (N,C,H,W) input is a GlobalAveragePool.
 */
const reduceImport = (fn: ReduceFn, inputFrom: number): OnnxImport => (im, n) => {
  const s = im.shape(n, 0), rank = s.length + 1, a = im.attrs(n), byInput = im.opset >= inputFrom;
  const given = byInput ? (n.inputs[1] ? im.constInts(n, 1, 'axes') : []) : a.ints('axes', []);
  const keep = im.intIn(n, 'keepdims', 1, 0, 1) !== 0;
  if (!given.length) {
    if (byInput && im.intIn(n, 'noop_with_empty_axes', 0, 0, 1)) return im.emit(n, { kind: 'alias' }, [n.inputs[0]], s.slice());
    im.unsupported(n, `without axes reduces every axis of [N,${s}], the batch axis 0 included (give axes >= 1)`);
  }
  const full = given.map((v) => (v < 0 ? v + rank : v));
  const bad = full.findIndex((v) => !(v >= 0 && v < rank));
  if (bad >= 0) im.unsupported(n, `with axis ${given[bad]} outside rank ${rank}`);
  if (new Set(full).size !== full.length) im.unsupported(n, `with axes [${given}] naming an axis twice`);
  if (full.includes(0)) im.unsupported(n, `over the batch axis 0 (axes [${given}]): camgpu never mixes the images of a batch`);
  const axes = full.map((v) => v - 1).sort((p, q) => p - q);
  if (fn === 'mean' && s.length === 3 && axes.join() === '1,2') return globalMean(im, n, s, keep);
  emitReduce(im, n, { kind: 'reduce', fn, axes, keep });
};

function emitReduce(im: Importer, n: OnnxNode, op: ReduceOp) {
  const s = outShape(op, im.shape(n, 0));
  if (typeof s === 'string') im.unsupported(n, `${s} (input [N,${im.shape(n, 0)}])`);
  im.emit(n, op, [n.inputs[0]], s);
}

/** x.mean((2, 3)): a global average pool, then without keepdims an alias to (N, C). */
function globalMean(im: Importer, n: OnnxNode, s: Shape, keep: boolean) {
  if (keep) return im.emit(n, { kind: 'gap' }, [n.inputs[0]]);
  const pooled = `${n.outputs[0]}:pooled`;
  im.emit({ ...n, outputs: [pooled] }, { kind: 'gap' }, [n.inputs[0]]);
  im.emit({ ...n, name: `${n.name}:squeeze`, inputs: [pooled] }, { kind: 'alias' }, [pooled], [s[0]]);
}

export const onnx: Record<string, OnnxImport> = {
  ReduceSum: reduceImport('sum', 13),
  ReduceMean: reduceImport('mean', 18),
  ReduceMax: reduceImport('max', 18),
  ReduceMin: reduceImport('min', 18),
  ReduceL2: reduceImport('l2', 18),
  ReduceL1: reduceImport('l1', 18),
  ReduceSumSquare: reduceImport('sumsquare', 18),
  // the maximum over every axis after the channels (N, C, ...) -> (N, C, 1, ...)
  GlobalMaxPool(im, n) {
    const s = im.shape(n, 0);
    if (s.length < 2) im.unsupported(n, `of [N,${s}] (needs (N, C, spatial axes...))`);
    emitReduce(im, n, { kind: 'reduce', fn: 'max', axes: s.slice(1).map((_, i) => i + 1), keep: true });
  },
};
