// 2-D convolution, NCHW, groups and dilation.
//   forward:  y[n,k,oy,ox] = b[k] + sum_{c in group(k), ky, kx} w[c,ky,kx,k] * x[n, c, oy*SH-PT+ky*DH, ox*SW-PL+kx*DW]
//             optionally fused: y = act(conv + r) with r a residual of y's shape (p.res) and act relu, clip or leaky relu
//   backward: dx[n,c,iy,ix] = sum_{k in group(c), ky, kx with oy=(iy+PT-ky*DH)/SH integral and in range} w[c,ky,kx,k] * dy[n,k,oy,ox]
//   Winograd F(2x2, 3x3) for 3x3 stride-1 convs (Lavin & Gray 2016): per 2x2 output tile t and channels c -> k,
//             y[k, t] = A^T [ sum_c (G g[k,c] G^T) * (B^T d[c,t] B) ] A   (* element-wise over the 4x4 tile), 16
//             multiplies per tile and channel pair instead of 36; the sum over c is 16 GEMMs, one per tile position e
//             B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   A^T = [1 1 1 0; 0 1 -1 -1]
// Bindings: x (N,C,H,W), w (C/G,KH,KW,KP) transposed at load so output channels are contiguous (KP = K rounded up to 32,
//           zero-padded), b (KP, zero-padded), r (N,K,OH,OW) residual (read when p.res = 1), y (N,K,OH,OW);
//           backward: dy (N,K,OH,OW) in x's slot, dx (N,C,H,W) in y's, r unused.
//           x4, w4 and b4 are vec4 views of the same bindings.
//
// Entry points; the dispatch code (src/model.ts convKernels) picks them per layer from its shape and tile:
//   conv2d_forward          G == 1 or K/G % TK == 0: TK output channels x TP output pixels (flattened) per invocation;
//                           taps outside, input channels inside, so the pixels' input offsets are set once per tap
//   conv2d_forward_1x1      1x1, stride 1, no padding, G == 1, OH*OW % 4 == 0 and >= TP: the same tile as a GEMM over
//                           pixels, x read as vec4. With wrep > 1, image n uses weight set n % wrep (w holds wrep sets
//                           of (C, KP)): Winograd's 16 GEMMs M[n,e] = U[e] V[n,e] as N*16 images
//   winograd_input          V[n,e,c,t] = (B^T d B)[e], d the 4x4 input patch of tile t0 + t (zeros outside): x -> y = V
//                           (N,16,C,T4); TW = ceil(OW/2) tiles per row; a dispatch takes the T tiles from t0 on
//                           (T4 = T rounded up to 16), so the scratch stays small (src/model.ts winogradChunk)
//   winograd_output         y at tile t0 + t = epilogue((A^T M[n,:,k,t] A)[i,j] + b[k]): x = M (N,16,K,T4) -> y
//   winograd4_input/_output the same for F(4x4, 3x3): 6x6 input tiles, 36 GEMMs, 4x4 output tiles
//   conv2d_forward_grouped  other grouped convs (depthwise): 1 channel x 4 pixels
//   conv2d_backward         G == 1: 8 input channels x 8 pixels of one dx row that share their phase modulo the
//                           stride (so they meet the same taps), 4 output channels per step (stride-1 convs instead
//                           run their backward as a forward conv with rotated, transposed weights: Model.transposed)
//   conv2d_backward_grouped G > 1: one element per invocation, gathering over its group
// Why these tiles: a load from a storage buffer costs far more than an FMA, most of all on a CPU adapter (lavapipe
// loads lane by lane, with a bounds check each, whether or not the address is uniform: measured the same); a 16 x 16
// register tile reads 32 values (16 of them as four vec4 weight loads) for 256 FMAs, an 8 x 8 one 16 for 64.
struct Params {
  N: u32, C: u32, H: u32, W: u32, K: u32, OH: u32, OW: u32, KH: u32,
  KW: u32, SH: u32, SW: u32, PT: u32, PL: u32, DH: u32, DW: u32, G: u32,
  KP: u32, acc: u32, act: u32, alpha: f32, beta: f32, res: u32, wrep: u32, TW: u32,
  T: u32, T4: u32, t0: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> r: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

override WG: u32 = 64;
// Forward register tile, picked per layer (camgpu tune): TK output channels (a multiple of 4) x TP pixels per
// invocation. Private arrays need a const size, so they are sized for the largest tile and the loops run to the
// override (constants once the pipeline is made, so the compiler unrolls them and drops the unused elements).
// Keep TKMAX x TPMAX the largest tile tried: on lavapipe a tile that used a small part of a bigger array fell off a
// cliff (16 x 32 in 32 x 32 arrays, 32 x 16 in 64 x 16 ones: 4-8x slower than their neighbours).
override TK: u32 = 8u;
override TP: u32 = 8u;
const TKMAX = 32u;
const TPMAX = 16u;
// Backward tile (conv2d_backward): KT input channels x PX pixels.
const KT = 8u;
const PX = 8u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// The epilogue of a forward output element at flat index i: fused residual, then activation (p.act: 0 none, 1 relu,
// 2 clip(alpha, beta), 3 leaky relu(alpha); act.wgsl's formulas), then p.acc adds what y holds. Uniform branches, so
// nothing is read that is not used.
fn epilogue(v: f32, i: u32) -> f32 {
  var s = v;
  if (p.res != 0u) { s += r[i]; }
  switch p.act {
    case 1u: { s = max(s, 0.0); }
    case 2u: { s = clamp(s, p.alpha, p.beta); }
    case 3u: { s = select(p.alpha * s, s, s > 0.0); }
    default: {}
  }
  if (p.acc != 0u) { s += y[i]; } // a backward-as-forward conv adding into a gradient
  return s;
}

// acc[q][j]: output channels k0+4q .. k0+4q+3 at pixel j of the tile.
alias Tile = array<array<vec4<f32>, TPMAX>, TKMAX / 4u>;

fn biasTile(k0: u32) -> Tile {
  var acc: Tile;
  for (var q = 0u; q < TK / 4u; q++) { let bq = b4[k0 / 4u + q]; for (var j = 0u; j < TP; j++) { acc[q][j] = bq; } }
  return acc;
}

// Adds one tap: acc[q][j] += w[c, ky, kx, k0+4q..+3] * xv[j]; wi = the w4 index of (c, ky, kx, k0).
fn fmaTile(acc: ptr<function, Tile>, wi: u32, xv: array<f32, TPMAX>) {
  for (var q = 0u; q < TK / 4u; q++) {
    let wv = w4[wi + q];
    for (var j = 0u; j < TP; j++) { (*acc)[q][j] += wv * xv[j]; }
  }
}

// Writes the tile to y at output channels k0.. and flattened pixels p0 + j, skipping those before `start`.
fn storeTile(acc: ptr<function, Tile>, n: u32, k0: u32, p0: u32, start: u32) {
  let HW = p.OH * p.OW;
  for (var q = 0u; q < TK / 4u; q++) {
    for (var j = 0u; j < TP; j++) {
      for (var i = 0u; i < 4u; i++) {
        let k = k0 + 4u * q + i; let o = (n * p.K + k) * HW + p0 + j;
        if (k < p.K && p0 + j >= start && p0 + j < HW) { y[o] = epilogue((*acc)[q][j][i], o); }
      }
    }
  }
}

@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let HW = p.OH * p.OW; let tiles = (HW + TP - 1u) / TP; let KB = (p.K + TK - 1u) / TK;
  var t = index(gid, nwg);
  if (t >= p.N * KB * tiles) { return; }
  let p0 = (t % tiles) * TP; t = t / tiles;
  let k0 = (t % KB) * TK; let n = t / KB;
  let CG = p.C / p.G; let c0 = (k0 / (p.K / p.G)) * CG;
  let iH = i32(p.H); let iW = i32(p.W); let HWin = p.H * p.W;
  // top-left input tap of each pixel (negative inside the padding)
  var iy0: array<i32, TPMAX>; var ix0: array<i32, TPMAX>;
  for (var j = 0u; j < TP; j++) {
    let q = min(p0 + j, HW - 1u);
    iy0[j] = i32((q / p.OW) * p.SH) - i32(p.PT); ix0[j] = i32((q % p.OW) * p.SW) - i32(p.PL);
  }
  var acc = biasTile(k0);
  for (var ky = 0u; ky < p.KH; ky++) {
    for (var kx = 0u; kx < p.KW; kx++) {
      // where each pixel of the tile reads through this tap, in channel c0's plane (0 and masked when in the padding)
      var off: array<u32, TPMAX>; var ok: array<bool, TPMAX>;
      for (var j = 0u; j < TP; j++) {
        let iy = iy0[j] + i32(ky * p.DH); let ix = ix0[j] + i32(kx * p.DW);
        ok[j] = iy >= 0 && iy < iH && ix >= 0 && ix < iW;
        off[j] = (n * p.C + c0) * HWin + u32(select(0, iy * iW + ix, ok[j]));
      }
      var wi = ((ky * p.KW + kx) * p.KP + k0) / 4u;
      for (var c = 0u; c < CG; c++) {
        var xv: array<f32, TPMAX>;
        for (var j = 0u; j < TP; j++) { xv[j] = select(0.0, x[off[j] + c * HWin], ok[j]); }
        fmaTile(&acc, wi, xv);
        wi += p.KH * p.KW * p.KP / 4u;
      }
    }
  }
  storeTile(&acc, n, k0, p0, p0);
}

@compute @workgroup_size(WG)
fn conv2d_forward_1x1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let HW = p.OH * p.OW; let tiles = (HW + TP - 1u) / TP; let KB = (p.K + TK - 1u) / TK;
  var t = index(gid, nwg);
  if (t >= p.N * KB * tiles) { return; }
  let start = (t % tiles) * TP; t = t / tiles;
  let p0 = min(start, HW - TP); // the last tile shifts back to stay whole (vec4 loads); it stores only from `start` on
  let k0 = (t % KB) * TK; let n = t / KB;
  var acc = biasTile(k0);
  var xi = (n * p.C * HW + p0) / 4u; var wi = ((n % p.wrep) * p.C * p.KP + k0) / 4u; // wrep: see the header
  for (var c = 0u; c < p.C; c++) {
    var xv: array<f32, TPMAX>;
    for (var j = 0u; j < TP / 4u; j++) { let v = x4[xi + j]; xv[4u * j] = v.x; xv[4u * j + 1u] = v.y; xv[4u * j + 2u] = v.z; xv[4u * j + 3u] = v.w; }
    fmaTile(&acc, wi, xv);
    xi += HW / 4u; wi += p.KP / 4u;
  }
  storeTile(&acc, n, k0, p0, start);
}

@compute @workgroup_size(WG)
fn conv2d_forward_grouped(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let OWT = (p.OW + 3u) / 4u;
  var t = index(gid, nwg);
  if (t >= p.N * p.K * p.OH * OWT) { return; }
  let ox0 = (t % OWT) * 4u; t = t / OWT;
  let oy = t % p.OH; t = t / p.OH;
  let k = t % p.K; let n = t / p.K;
  let CG = p.C / p.G; let c0 = (k / (p.K / p.G)) * CG;
  var acc = vec4<f32>(b[k]); // 4 pixels
  for (var c = 0u; c < CG; c++) {
    let xplane = (n * p.C + c0 + c) * p.H;
    for (var ky = 0u; ky < p.KH; ky++) {
      let iy = i32(oy * p.SH + ky * p.DH) - i32(p.PT);
      if (iy < 0 || iy >= i32(p.H)) { continue; }
      let xrow = (xplane + u32(iy)) * p.W;
      for (var kx = 0u; kx < p.KW; kx++) {
        let wv = w[((c * p.KH + ky) * p.KW + kx) * p.KP + k];
        for (var j = 0u; j < 4u; j++) {
          let ix = i32((ox0 + j) * p.SW + kx * p.DW) - i32(p.PL);
          if (ix >= 0 && ix < i32(p.W)) { acc[j] += wv * x[xrow + u32(ix)]; }
        }
      }
    }
  }
  for (var j = 0u; j < 4u; j++) {
    let o = ((n * p.K + k) * p.OH + oy) * p.OW + ox0 + j;
    if (ox0 + j < p.OW) { y[o] = epilogue(acc[j], o); }
  }
}

// ---------- Winograd F(2x2, 3x3): the transforms around the GEMMs (conv2d_forward_1x1 with wrep = 16) ----------

// B^T v for a column (or row) v of the tile.
fn bt(v: vec4<f32>) -> vec4<f32> { return vec4<f32>(v.x - v.z, v.y + v.z, v.z - v.y, v.y - v.w); }

@compute @workgroup_size(WG)
fn winograd_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  var i = index(gid, nwg);
  if (i >= p.N * p.C * p.T) { return; }
  let t = i % p.T; i = i / p.T;
  let c = i % p.C; let n = i / p.C; let g = p.t0 + t; // g: the tile in the image
  let iy0 = i32(2u * (g / p.TW)) - i32(p.PT); let ix0 = i32(2u * (g % p.TW)) - i32(p.PL);
  let plane = (n * p.C + c) * p.H * p.W;
  var d: array<vec4<f32>, 4>; // d[row] = the patch's row, columns in x..w
  for (var a = 0u; a < 4u; a++) {
    let iy = iy0 + i32(a);
    var row = vec4<f32>(0.0);
    if (iy >= 0 && iy < i32(p.H)) {
      for (var j = 0u; j < 4u; j++) {
        let ix = ix0 + i32(j);
        if (ix >= 0 && ix < i32(p.W)) { row[j] = x[plane + u32(iy) * p.W + u32(ix)]; }
      }
    }
    d[a] = row;
  }
  // rows of B^T d, then B^T applied along each row: V = B^T d B
  let m = array<vec4<f32>, 4>(d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]);
  let base = n * 16u * p.C * p.T4 + c * p.T4 + t;
  for (var a = 0u; a < 4u; a++) {
    let v = bt(m[a]);
    for (var j = 0u; j < 4u; j++) { y[base + (4u * a + j) * p.C * p.T4] = v[j]; }
  }
}

@compute @workgroup_size(WG)
fn winograd_output(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  var i = index(gid, nwg);
  if (i >= p.N * p.K * p.T) { return; }
  let t = i % p.T; i = i / p.T;
  let k = i % p.K; let n = i / p.K;
  let base = n * 16u * p.K * p.T4 + k * p.T4 + t; let step = p.K * p.T4;
  var m: array<vec4<f32>, 4>;
  for (var a = 0u; a < 4u; a++) {
    m[a] = vec4<f32>(x[base + (4u * a) * step], x[base + (4u * a + 1u) * step], x[base + (4u * a + 2u) * step], x[base + (4u * a + 3u) * step]);
  }
  // A^T M A: rows first (s0 = m0 + m1 + m2, s1 = m1 - m2 - m3), then the same along each row
  let s = array<vec4<f32>, 2>(m[0] + m[1] + m[2], m[1] - m[2] - m[3]);
  let g = p.t0 + t; let oy0 = 2u * (g / p.TW); let ox0 = 2u * (g % p.TW);
  for (var a = 0u; a < 2u; a++) {
    let v = vec2<f32>(s[a].x + s[a].y + s[a].z, s[a].y - s[a].z - s[a].w) + b[k];
    for (var j = 0u; j < 2u; j++) {
      let oy = oy0 + a; let ox = ox0 + j;
      if (oy < p.OH && ox < p.OW) { let o = ((n * p.K + k) * p.OH + oy) * p.OW + ox; y[o] = epilogue(v[j], o); }
    }
  }
}

// ---------- Winograd F(4x4, 3x3): 6x6 input tiles, 36 GEMMs (wrep = 36), 4x4 output tiles ----------
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// 2.25x fewer multiplies than F(2x2, 3x3) in the GEMMs for larger transforms; its points (0, +-1, +-2) keep fp32
// error near the direct conv's (the kernel tests hold it to 1e-5 of the max like every tile).

alias R6 = array<f32, 6>;
fn bt6(v: R6) -> R6 {
  return R6(4.0 * v[0] - 5.0 * v[2] + v[4], -4.0 * (v[1] + v[2]) + v[3] + v[4], 4.0 * (v[1] - v[2]) - v[3] + v[4],
            2.0 * (v[3] - v[1]) - v[2] + v[4], 2.0 * (v[1] - v[3]) - v[2] + v[4], 4.0 * v[1] - 5.0 * v[3] + v[5]);
}
fn at6(v: R6) -> vec4<f32> {
  return vec4<f32>(v[0] + v[1] + v[2] + v[3] + v[4], v[1] - v[2] + 2.0 * (v[3] - v[4]), v[1] + v[2] + 4.0 * (v[3] + v[4]), v[1] - v[2] + 8.0 * (v[3] - v[4]) + v[5]);
}

@compute @workgroup_size(WG)
fn winograd4_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  var i = index(gid, nwg);
  if (i >= p.N * p.C * p.T) { return; }
  let t = i % p.T; i = i / p.T;
  let c = i % p.C; let n = i / p.C; let g = p.t0 + t;
  let iy0 = i32(4u * (g / p.TW)) - i32(p.PT); let ix0 = i32(4u * (g % p.TW)) - i32(p.PL);
  let plane = (n * p.C + c) * p.H * p.W;
  var d: array<R6, 6>; // d[column][row]: columns first, so B^T runs down each column
  for (var a = 0u; a < 6u; a++) {
    let iy = iy0 + i32(a);
    if (iy < 0 || iy >= i32(p.H)) { continue; }
    for (var j = 0u; j < 6u; j++) {
      let ix = ix0 + i32(j);
      if (ix >= 0 && ix < i32(p.W)) { d[j][a] = x[plane + u32(iy) * p.W + u32(ix)]; }
    }
  }
  var m: array<R6, 6>; // m[row of B^T d][column]
  for (var j = 0u; j < 6u; j++) { let col = bt6(d[j]); for (var a = 0u; a < 6u; a++) { m[a][j] = col[a]; } }
  let base = n * 36u * p.C * p.T4 + c * p.T4 + t;
  for (var a = 0u; a < 6u; a++) {
    let v = bt6(m[a]);
    for (var j = 0u; j < 6u; j++) { y[base + (6u * a + j) * p.C * p.T4] = v[j]; }
  }
}

@compute @workgroup_size(WG)
fn winograd4_output(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  var i = index(gid, nwg);
  if (i >= p.N * p.K * p.T) { return; }
  let t = i % p.T; i = i / p.T;
  let k = i % p.K; let n = i / p.K;
  let base = n * 36u * p.K * p.T4 + k * p.T4 + t; let step = p.K * p.T4;
  var col: array<R6, 6>; // col[j][a] = M[a][j]
  for (var a = 0u; a < 6u; a++) { for (var j = 0u; j < 6u; j++) { col[j][a] = x[base + (6u * a + j) * step]; } }
  var s: array<R6, 4>; // s[row of A^T M][column]
  for (var j = 0u; j < 6u; j++) { let v = at6(col[j]); for (var a = 0u; a < 4u; a++) { s[a][j] = v[a]; } }
  let g = p.t0 + t; let oy0 = 4u * (g / p.TW); let ox0 = 4u * (g % p.TW);
  for (var a = 0u; a < 4u; a++) {
    let v = at6(s[a]) + b[k];
    for (var j = 0u; j < 4u; j++) {
      let oy = oy0 + a; let ox = ox0 + j;
      if (oy < p.OH && ox < p.OW) { let o = ((n * p.K + k) * p.OH + oy) * p.OW + ox; y[o] = epilogue(v[j], o); }
    }
  }
}

// ---------- backward to the input (G == 1 unless grouped): x <- dy, y <- dx, b unused ----------

// dy[n, k..k+3, o] as a vec4 (o = oy*OW + ox); channels past K repeat K-1, whose weights are the zero padding.
fn dy4(n: u32, k: u32, o: u32) -> vec4<f32> {
  let OHW = p.OH * p.OW; let base = n * p.K * OHW + o; let last = p.K - 1u;
  return vec4<f32>(x[base + k * OHW], x[base + min(k + 1u, last) * OHW], x[base + min(k + 2u, last) * OHW], x[base + min(k + 3u, last) * OHW]);
}

@compute @workgroup_size(WG)
fn conv2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  // An invocation takes KT channels x PX pixels of one dx row that share their phase modulo the stride,
  // ix = px + SW*(PX*blk + j), so all of them meet the same taps; rows and columns are ordered by phase so that
  // neighbouring invocations skip the same taps (a stride-s conv sends each pixel back 1/s^2 of them).
  let rows = (p.H + p.SH - 1u) / p.SH; let blocks = ((p.W + p.SW - 1u) / p.SW + PX - 1u) / PX; let CB = (p.C + KT - 1u) / KT;
  var t = index(gid, nwg);
  if (t >= p.N * CB * p.SH * p.SW * rows * blocks) { return; }
  let blk = t % blocks; t = t / blocks;
  let r = t % rows; t = t / rows;
  let px = t % p.SW; t = t / p.SW;
  let py = t % p.SH; t = t / p.SH;
  let c0 = (t % CB) * KT; let n = t / CB;
  let iy = py + p.SH * r; let ix0 = px + p.SW * PX * blk;
  var a: array<array<f32, PX>, KT>; // a[ci][j]: dx at channel c0 + ci, pixel (iy, ix0 + SW*j)
  for (var ky = 0u; ky < p.KH; ky++) {
    let ty = i32(iy + p.PT) - i32(ky * p.DH);
    if (ty < 0 || ty % i32(p.SH) != 0 || u32(ty) / p.SH >= p.OH) { continue; }
    let orow = u32(ty) / p.SH * p.OW;
    for (var kx = 0u; kx < p.KW; kx++) {
      let tx = i32(ix0 + p.PL) - i32(kx * p.DW);
      if (tx % i32(p.SW) != 0) { continue; }
      let ox0 = tx / i32(p.SW); // pixel j meets output column ox0 + j
      for (var k = 0u; k < p.K; k += 4u) {
        var d: array<vec4<f32>, PX>;
        for (var j = 0u; j < PX; j++) {
          let ox = ox0 + i32(j);
          d[j] = select(vec4<f32>(0.0), dy4(n, k, orow + u32(clamp(ox, 0, i32(p.OW) - 1))), ox >= 0 && ox < i32(p.OW));
        }
        for (var ci = 0u; ci < KT; ci++) {
          let wv = w4[((min(c0 + ci, p.C - 1u) * p.KH + ky) * p.KW + kx) * (p.KP / 4u) + k / 4u];
          for (var j = 0u; j < PX; j++) { a[ci][j] += dot(wv, d[j]); }
        }
      }
    }
  }
  if (iy >= p.H) { return; }
  for (var ci = 0u; ci < KT; ci++) {
    let c = c0 + ci;
    for (var j = 0u; j < PX; j++) {
      let ix = ix0 + p.SW * j;
      if (c < p.C && ix < p.W) {
        let i = ((n * p.C + c) * p.H + iy) * p.W + ix;
        y[i] = a[ci][j] + select(0.0, y[i], p.acc != 0u);
      }
    }
  }
}

@compute @workgroup_size(WG)
fn conv2d_backward_grouped(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  var t = index(gid, nwg);
  if (t >= p.N * p.C * p.H * p.W) { return; }
  let i = t;
  let ix = t % p.W; t = t / p.W;
  let iy = t % p.H; t = t / p.H;
  let c = t % p.C; let n = t / p.C;
  let CG = p.C / p.G; let KG = p.K / p.G;
  let g = c / CG; let cl = c % CG;
  var s = 0.0;
  for (var ky = 0u; ky < p.KH; ky++) {
    let ty = i32(iy + p.PT) - i32(ky * p.DH);
    if (ty < 0 || u32(ty) % p.SH != 0u) { continue; }
    let oy = u32(ty) / p.SH;
    if (oy >= p.OH) { continue; }
    for (var kx = 0u; kx < p.KW; kx++) {
      let tx = i32(ix + p.PL) - i32(kx * p.DW);
      if (tx < 0 || u32(tx) % p.SW != 0u) { continue; }
      let ox = u32(tx) / p.SW;
      if (ox >= p.OW) { continue; }
      let wi = ((cl * p.KH + ky) * p.KW + kx) * p.KP + g * KG;
      let di = ((n * p.K + g * KG) * p.OH + oy) * p.OW + ox;
      for (var k = 0u; k < KG; k++) { s += w[wi + k] * x[di + k * p.OH * p.OW]; }
    }
  }
  if (p.acc != 0u) { s += y[i]; }
  y[i] = s;
}
