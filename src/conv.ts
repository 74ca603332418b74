// Convolution choices, shared by the plan builder and the tuner: weight layout, register tiles, which conv2d.wgsl
// entry points run a layer, Winograd's transformed weights and the backward-as-forward (transposed) conv.
import type { ConvOp, Graph, Node } from './graph.js';

/** Output channels of a conv's weight and bias on the GPU: K rounded up to the 32 channels the widest tile reads. */
export const convKP = (cout: number) => Math.ceil(cout / 32) * 32;

/** A forward register tile of conv2d.wgsl's tiled entry points: TK output channels x TP pixels per invocation;
 *  wino: m, the layer runs as Winograd F(m x m, 3x3) (conv2d.wgsl) with that tile for its (m+2)^2 GEMMs. */
export interface Tile { TK: number; TP: number; wino?: 2 | 4 }
export const sameTile = (a: Tile, b: Tile) => a.TK === b.TK && a.TP === b.TP && (a.wino ?? 0) === (b.wino ?? 0);
export const tileName = (t: Tile) => `${t.TK}x${t.TP}${t.wino ? ` F${t.wino}` : ''}`;
/** The tiles `camgpu tune` tries (conv2d.wgsl: TK a multiple of 4 up to TKMAX = 32, TP up to TPMAX = 16, TP % 4 = 0
 *  for 1x1). Wider ones did not pay on lavapipe (64 x 8, 64 x 16 no faster than 32 x 16). */
export const TILES: Tile[] = [{ TK: 8, TP: 8 }, { TK: 16, TP: 8 }, { TK: 8, TP: 16 }, { TK: 16, TP: 16 }, { TK: 32, TP: 8 }, { TK: 32, TP: 16 },
  ...[2, 4].flatMap((wino) => [{ TK: 16, TP: 16 }, { TK: 32, TP: 8 }, { TK: 32, TP: 16 }].map((t) => ({ ...t, wino: wino as 2 | 4 })))];
/** The untuned tile of a conv: 16 x 8 where the layer fills it, else 8 x 8. 16 x 16 runs up to 1.3x faster on large
 *  layers, but lavapipe compiles it (at its first dispatch) in ~15 s cold against ~1 s for 16 x 8, which a first run
 *  never earns back; `camgpu tune` still picks 16 x 16 and wider tiles per layer where they pay;
 *  Winograd for 3x3 stride-1 layers with at least 32 channels in and out (fewer leave the transforms too large a
 *  share): F(4x4, 3x3) where it makes >= 16 output tiles (on lavapipe 1.5-2.5x faster than F(2x2), which is 1.1-2.3x
 *  faster than the best direct tile, for ResNet-50's and VGG16's layers from 14x14 up), else F(2x2, 3x3) (7x7:
 *  F(4x4)'s 4 tiles would pad its GEMMs to 16). */
export function defaultTile(g: Graph, n: Node): Tile {
  const op = n.op as ConvOp, [C] = g.tensors.get(n.inputs[0])!.shape, [K, OH, OW] = g.tensors.get(n.output)!.shape;
  const wino = Math.ceil(OH / 4) * Math.ceil(OW / 4) >= 16 ? 4 : 2;
  return { TK: K >= 16 ? 16 : 8, TP: 8, ...(winogradFits(op) && C >= 32 && K >= 32 ? { wino: wino as 2 | 4 } : {}) };
}

/** A conv layer's shape as tuning results are keyed: "CxHxW->K k3x3 s1x1 p1,1,1,1 d1x1 g1". */
export function convShape(g: Graph, n: Node): string {
  const op = n.op;
  if (op.kind !== 'conv') throw new Error(`internal: '${n.name}' is not a conv`);
  return `${g.tensors.get(n.inputs[0])!.shape.join('x')}->${op.cout} k${op.kh}x${op.kw} s${op.stride.join('x')} p${op.pad.join(',')} d${op.dil.join('x')} g${op.group}`;
}

/** The conv2d.wgsl entry points for one conv node, the forward's override constants and the invocation counts per
 *  image (the shader's header lists each entry point's tile and the shapes it takes). */
export function convKernels(g: Graph, n: Node, tile?: Tile): ConvKernels {
  const op = n.op;
  if (op.kind !== 'conv') throw new Error(`internal: '${n.name}' is not a conv`);
  const [C, H, W] = g.tensors.get(n.inputs[0])!.shape, [K, OH, OW] = g.tensors.get(n.output)!.shape, [SH, SW] = op.stride;
  const tiles = (v: number) => Math.ceil(v / 8); // backward: 8 channels or 8 pixels per tiled invocation
  const { TK, TP, wino } = tile ?? defaultTile(g, n), plain = op.group === 1;
  const backward = plain
    ? { backward: 'conv2d_backward', backwardThreads: tiles(C) * SH * SW * Math.ceil(H / SH) * tiles(Math.ceil(W / SW)) }
    : { backward: 'conv2d_backward_grouped', backwardThreads: C * H * W };
  if (wino && winogradFits(op)) {
    const TW = Math.ceil(OW / wino);
    return { forward: wino === 4 ? 'winograd4' : 'winograd', forwardConsts: { TK, TP }, forwardThreads: 0, wino: { m: wino, TW, T: TW * Math.ceil(OH / wino) }, ...backward };
  }
  const gemm = plain && op.kh === 1 && op.kw === 1 && SH === 1 && SW === 1 && op.pad.every((v) => v === 0) && (OH * OW) % 4 === 0 && OH * OW >= TP;
  const forward = plain || (K / op.group) % TK === 0
    ? { forward: gemm ? 'conv2d_forward_1x1' : 'conv2d_forward', forwardConsts: { TK, TP }, forwardThreads: Math.ceil(K / TK) * Math.ceil(OH * OW / TP) }
    : { forward: 'conv2d_forward_grouped', forwardConsts: {} as Record<string, number>, forwardThreads: K * OH * Math.ceil(OW / 4) };
  return { ...forward, ...backward };
}
/** backward: one invocation per 8 channels x 8 same-phase pixels of a row, for each row and phase (conv2d_backward) */
export interface ConvKernels {
  forward: string; forwardConsts: Record<string, number>; forwardThreads: number; backward: string; backwardThreads: number;
  /** Winograd F(m x m, 3x3): m x m output tiles per row and in all (conv2d.wgsl) */
  wino?: { m: 2 | 4; TW: number; T: number };
}
/** Convs Winograd F(m x m, 3x3) computes: 3x3, stride 1, no dilation, no groups (any padding up to 2). */
export const winogradFits = (op: ConvOp) => op.kh === 3 && op.kw === 3 && op.stride.every((v) => v === 1) && op.dil.every((v) => v === 1) && op.group === 1 && op.pad.every((v) => v <= 2);

/** Winograd's G (filter transform) for F(2x2, 3x3) and F(4x4, 3x3) (Lavin & Gray 2016). */
const WINO_G = {
  2: [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
  4: [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
};

/** U = G g G^T per (k, c) of a 3x3 conv, laid out ((m+2)^2, C, KP) as the Winograd GEMMs read it (float64 products). */
export function winogradWeights(n: Node, m: 2 | 4): Float32Array {
  const op = n.op;
  if (op.kind !== 'conv' || !winogradFits(op)) throw new Error(`internal: '${n.name}' is not a Winograd conv`);
  const G = WINO_G[m], a = m + 2, K = op.cout, C = op.w.length / (9 * K), KP = convKP(K), U = new Float32Array(a * a * C * KP);
  for (let k = 0; k < K; k++) for (let c = 0; c < C; c++) {
    const g = op.w.subarray((k * C + c) * 9, (k * C + c) * 9 + 9);
    for (let i = 0; i < a; i++) for (let j = 0; j < a; j++) {
      let v = 0;
      for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) v += G[i][y] * g[y * 3 + x] * G[j][x];
      U[((a * i + j) * C + c) * KP + k] = v;
    }
  }
  return U;
}

/**
 * The backward to a stride-1 conv's input as a forward conv, so it runs on the forward kernels (tuned tiles,
 * Winograd): dx[c] = sum_k conv(dy[k], w[k, c] rotated 180 degrees) with padding KH-1-p. A node of its own (input dy,
 * output dx); null for strided, dilated or grouped convs and pads >= the kernel.
 */
export function transposedConv(n: Node): Node | null {
  const op = n.op;
  if (op.kind !== 'conv' || op.group !== 1 || op.stride.some((s) => s !== 1) || op.dil.some((d) => d !== 1)
    || Math.max(op.pad[0], op.pad[2]) > op.kh - 1 || Math.max(op.pad[1], op.pad[3]) > op.kw - 1) return null;
  const K = op.cout, KH = op.kh, KW = op.kw, C = op.w.length / (K * KH * KW), w = new Float32Array(op.w.length);
  for (let k = 0; k < K; k++) for (let c = 0; c < C; c++) for (let y = 0; y < KH; y++) for (let x = 0; x < KW; x++)
    w[((c * K + k) * KH + y) * KW + x] = op.w[((k * C + c) * KH + KH - 1 - y) * KW + KW - 1 - x];
  return { name: `${n.name}.T`, source: `${n.source} backward`, inputs: [n.output], output: n.inputs[0], op: {
    kind: 'conv', w, b: new Float32Array(C), cout: C, kh: KH, kw: KW, stride: [1, 1], dil: [1, 1], group: 1,
    pad: [KH - 1 - op.pad[0], KW - 1 - op.pad[1], KH - 1 - op.pad[2], KW - 1 - op.pad[3]] } };
}
