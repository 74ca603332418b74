// ONNX ops imported as short chains of existing records (no IR kind, no shader of their own), so each inherits its
// parts' kernels, float64 references and exact DeepLIFT rules:
//   LRN:          y = x * (bias + alpha/size * sum_{c' in window(c)} x_c'^2)^(-beta): Pow 2 -> a constant banded 1x1 conv
//                 (weights alpha/size inside the channel window, bias `bias`) -> Pow -beta -> Mul by x (the two-activation
//                 product rule: exact summation to delta);
//   DepthToSpace: Reshape to (N, b, b, C/b^2, H, W) (DCR) or (N, C/b^2, b, b, H, W) (CRD) -> Transpose -> Reshape to
//                 (N, C/b^2, H b, W b);  SpaceToDepth: (N, C, H/b, b, W/b, b) -> Transpose -> (N, C b^2, H/b, W/b).
// Reference: tests/ref.ts through the parts; ONNX conformance (test_lrn*, test_depthtospace*, test_spacetodepth*).
import type { Importer } from '../import.js';
import type { OnnxNode } from '../onnx.js';
import type { OnnxImport } from './types.js';

/** Emits an intermediate node named `${node}:${part}`; returns its output tensor. */
export const part = (im: Importer, n: OnnxNode, what: string, op: Parameters<Importer['emit']>[1], inputs: string[], shape?: number[]) => {
  const out = `${n.outputs[0]}:${what}`;
  im.emit(n, op, inputs, shape, out, `${n.name}:${what}`);
  return out;
};

function lrnImport(im: Importer, n: OnnxNode) {
  const a = im.attrs(n), x = im.shape(n, 0), size = a.i('size', 0);
  if (!Number.isInteger(size) || size < 1) im.unsupported(n, `with size ${size} (a positive integer is required)`);
  if (x.length !== 3) im.unsupported(n, `on input [N,${x}] (only 4-D (N,C,H,W))`);
  const alpha = a.f('alpha', 1e-4), beta = a.f('beta', 0.75), bias = a.f('bias', 1), C = x[0];
  if (!(bias > 0)) im.unsupported(n, `with bias ${bias} (must be > 0: the base of the power)`);
  // square_sum[c] = sum of x^2 over c' in [c - floor((size-1)/2), c + ceil((size-1)/2)] inside [0, C)
  const lo = Math.floor((size - 1) / 2), hi = Math.ceil((size - 1) / 2), w = new Float32Array(C * C);
  for (let k = 0; k < C; k++) for (let c = Math.max(0, k - lo); c <= Math.min(C - 1, k + hi); c++) w[k * C + c] = alpha / size;
  const sq = part(im, n, 'square', { kind: 'act', fn: 'pow', alpha: 2, beta: 0 }, [n.inputs[0]]);
  const den = part(im, n, 'window', { kind: 'conv', w, b: new Float32Array(C).fill(bias), cout: C, kh: 1, kw: 1, stride: [1, 1], pad: [0, 0, 0, 0], dil: [1, 1], group: 1 }, [sq]);
  const inv = part(im, n, 'power', { kind: 'act', fn: 'pow', alpha: -beta, beta: 0 }, [den]);
  im.emit(n, { kind: 'mul' }, [n.inputs[0], inv]);
}

/** DepthToSpace (DCR, CRD) and SpaceToDepth: a reshape, a per-sample rank-5 transpose, a reshape. */
const rearrange = (toSpace: boolean): OnnxImport => (im, n) => {
  const a = im.attrs(n), x = im.shape(n, 0), b = a.i('blocksize', 0);
  if (!Number.isInteger(b) || b < 1) im.unsupported(n, `with blocksize ${b} (a positive integer is required)`);
  if (x.length !== 3) im.unsupported(n, `on input [N,${x}] (only 4-D (N,C,H,W))`);
  const [C, H, W] = x;
  let mid: number[], perm: number[], out: number[];
  if (toSpace) {
    const mode = a.s('mode', 'DCR');
    if (mode !== 'DCR' && mode !== 'CRD') im.unsupported(n, `with mode='${mode}' (DCR and CRD)`);
    if (C % (b * b)) im.unsupported(n, `of ${C} channels by blocksize ${b} (channels must divide by ${b * b})`);
    const c = C / (b * b);
    // per sample: DCR (b, b, c, H, W) -> (c, H, b, W, b); CRD (c, b, b, H, W) -> (c, H, b, W, b)
    [mid, perm] = mode === 'DCR' ? [[b, b, c, H, W], [2, 3, 0, 4, 1]] : [[c, b, b, H, W], [0, 3, 1, 4, 2]];
    out = [c, H * b, W * b];
  } else {
    if (H % b || W % b) im.unsupported(n, `of ${H}x${W} by blocksize ${b} (H and W must divide by it)`);
    // per sample (C, H/b, b, W/b, b) -> (b, b, C, H/b, W/b)
    [mid, perm, out] = [[C, H / b, b, W / b, b], [2, 4, 0, 1, 3], [C * b * b, H / b, W / b]];
  }
  const r = part(im, n, 'split', { kind: 'alias' }, [n.inputs[0]], mid);
  const t = part(im, n, 'transpose', { kind: 'transpose', perm }, [r]);
  im.emit(n, { kind: 'alias' }, [t], out);
};

export const onnx: Record<string, OnnxImport> = { LRN: lrnImport, DepthToSpace: rearrange(true), SpaceToDepth: rearrange(false) };
