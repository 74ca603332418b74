// Pooling: max (argmax saved by the forward), average (PyTorch's divisor rules) and global average: shaders/pool.wgsl.
// Reference: tests/ref.ts poolWindows, argmaxes and nodeForward/nodeBackward cases maxpool, avgpool, gap.
import { Node, Shape, numel, windowOut } from '../graph.js';
import type { Buf, Enc, OnnxImport, OpDef } from './types.js';
import type { ParamValues } from '../reflect.js';

export interface PoolOp { kind: 'maxpool' | 'avgpool'; kh: number; kw: number; stride: [number, number];
  pad: [number, number, number, number]; dil: [number, number]; ceil: boolean; countIncludePad: boolean }
export interface GapOp { kind: 'gap' }

/** pool.wgsl's Params for x (C,H,W) -> y (C,OH,OW); a global average pool is a window over the whole map. */
function params(op: PoolOp | GapOp, xs: Shape, ys: Shape, N: number, acc: number): ParamValues {
  const [C, H, W] = xs;
  if (op.kind === 'gap') return { N, C, H, W, OH: 1, OW: 1, SH: 1, SW: 1, DH: 1, DW: 1, acc };
  return { N, C, H, W, OH: ys[1], OW: ys[2], KH: op.kh, KW: op.kw, SH: op.stride[0], SW: op.stride[1], PT: op.pad[0], PL: op.pad[1],
    DH: op.dil[0], DW: op.dil[1], PB: op.pad[2], PR: op.pad[3], incpad: op.countIncludePad ? 1 : 0, acc };
}
const shapes = (e: Enc, n: Node) => [e.g.tensors.get(n.inputs[0])!.shape, e.g.tensors.get(n.output)!.shape];

function poolDef<O extends PoolOp | GapOp>(kind: O['kind'], shape: OpDef<O>['shape']): OpDef<O> {
  const max = kind === 'maxpool';
  return {
    kind, shape,
    reference: `poolWindows${max ? ', argmaxes' : ''}, nodeForward/nodeBackward case ${kind}`,
    // y (N,C,OH,OW) from x (N,C,H,W); max-pool writes its argmax (h*W+w) to oidx
    forward(e, n, op, ref) {
      const [xs, ys] = shapes(e, n);
      const bind = { x: e.buf(n.inputs[0], ref), out: e.buf(n.output, ref), ...(max ? { oidx: e.argmax(n.output, ref) } : {}) };
      return [e.step('pool', `${kind}_forward`, {}, (ref ? 'ref:' : '') + n.name, params(op, xs, ys, e.batch, 0), bind, e.batch * numel(ys))];
    },
    // dx (N,C,H,W) gathers dy over the windows that read it; DeepLIFT max-pool routes by the argmaxes of both passes
    backward(e, n, op, b) {
      const x = n.inputs[0];
      if (!b.need.has(x)) return [];
      const [xs, ys] = shapes(e, n), dl = b.mode === 'deeplift';
      const bind: Record<string, Buf> = max
        ? { x: e.buf(x), xr: dl ? e.buf(x, true) : e.buf(x), idx: e.argmax(n.output, false), idxr: e.argmax(n.output, dl), dy: b.dy, out: b.dx(x) }
        : { dy: b.dy, out: b.dx(x) };
      return [e.step('pool', `${kind}_backward`, max ? { MODE: dl ? 2 : 0 } : {}, b.label, params(op, xs, ys, e.batch, b.acc(x)), bind, e.batch * numel(xs))];
    },
  };
}

const windowShape: OpDef<PoolOp>['shape'] = (_n, op, [x], bad) => {
  if (x.length !== 3) bad('needs a 4-D input (N,C,H,W)');
  const oh = windowOut(x[1], op.kh, op.stride[0], op.pad[0], op.pad[2], op.dil[0], op.ceil);
  const ow = windowOut(x[2], op.kw, op.stride[1], op.pad[1], op.pad[3], op.dil[1], op.ceil);
  if (oh < 1 || ow < 1) bad(`window ${op.kh}x${op.kw} does not fit the input`);
  return [x[0], oh, ow];
};
export const maxpool = poolDef<PoolOp>('maxpool', windowShape);
export const avgpool = poolDef<PoolOp>('avgpool', windowShape);
export const gap = poolDef<GapOp>('gap', (_n, _op, [x], bad) => (x.length === 3 ? [x[0], 1, 1] : bad('needs a 4-D input')));

const windowImport = (kind: PoolOp['kind']): OnnxImport => (im, n) => {
  const a = im.attrs(n), k0 = a.ints('kernel_shape', []);
  if (k0.length !== 2) im.unsupported(n, `with kernel_shape [${k0}] (only 2-D pooling)`);
  if (im.intIn(n, 'storage_order', 0, 0, 1)) im.unsupported(n, 'with storage_order=1');
  const ceil = im.intIn(n, 'ceil_mode', 0, 0, 1) === 1, countIncludePad = im.intIn(n, 'count_include_pad', 0, 0, 1) === 1;
  const k = im.intList(n, 'kernel_shape', [], 2, 1), s = im.intList(n, 'strides', [1, 1], 2, 1), d = im.intList(n, 'dilations', [1, 1], 2, 1);
  if (kind === 'avgpool' && d.some((v) => v !== 1)) im.unsupported(n, `with dilations [${d}] (only MaxPool takes dilations)`);
  const pad = im.pads(n, im.shape(n, 0), k, s, d);
  // a window entirely in the padding has nothing to pool (ONNX Runtime refuses pads >= the kernel too)
  if (pad.some((p, i) => p >= k[i % 2] * d[i % 2])) im.unsupported(n, `pads [${pad}] must be smaller than the kernel ${k[0]}x${k[1]}`);
  im.emit(n, { kind, kh: k[0], kw: k[1], stride: [s[0], s[1]], pad, dil: [d[0], d[1]], ceil, countIncludePad }, [n.inputs[0]]);
};
export const onnx: Record<string, OnnxImport> = {
  MaxPool: windowImport('maxpool'),
  AveragePool: windowImport('avgpool'),
  GlobalAveragePool: (im, n) => im.emit(n, { kind: 'gap' }, [n.inputs[0]]),
};
