// 2-D convolution, NCHW, groups and dilation.
//   forward:  y[n,k,oy,ox] = b[k] + sum_{c in group(k), ky, kx} w[c,ky,kx,k] * x[n, c, oy*SH-PT+ky*DH, ox*SW-PL+kx*DW]
//   backward: dx[n,c,iy,ix] = sum_{k in group(c), ky, kx with oy=(iy+PT-ky*DH)/SH integral and in range} w[c,ky,kx,k] * dy[n,k,oy,ox]
// Bindings: x (N,C,H,W), w (C/G,KH,KW,KP) transposed at load so 4 output channels are one vec4 (KP = K rounded up to 4),
//           b (KP), y (N,K,OH,OW); backward: dy (N,K,OH,OW), dx (N,C,H,W).
// conv2d_forward: one invocation = 4 output channels x 4 output pixels of a row (register tile, no workgroup memory);
// needs the 4 channels in one group (G == 1 or K/G % 4 == 0). conv2d_forward_grouped: 1 channel x 4 pixels (depthwise).
struct Params {
  N: u32, C: u32, H: u32, W: u32, K: u32, OH: u32, OW: u32, KH: u32,
  KW: u32, SH: u32, SW: u32, PT: u32, PL: u32, DH: u32, DW: u32, G: u32,
  KP: u32, acc: u32, act: u32, alpha: f32, beta: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WG: u32 = 64;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// Optional fused activation on the output (p.act: 0 none, 1 relu, 2 clip(alpha, beta)).
fn activate(v: vec4<f32>) -> vec4<f32> {
  if (p.act == 1u) { return max(v, vec4<f32>(0.0)); }
  if (p.act == 2u) { return clamp(v, vec4<f32>(p.alpha), vec4<f32>(p.beta)); }
  return v;
}

@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let OWT = (p.OW + 3u) / 4u; let KT = (p.K + 3u) / 4u;
  var t = index(gid, nwg);
  if (t >= p.N * KT * p.OH * OWT) { return; }
  let ox0 = (t % OWT) * 4u; t = t / OWT;
  let oy = t % p.OH; t = t / p.OH;
  let k0 = (t % KT) * 4u; let n = t / KT;
  let CG = p.C / p.G; let c0 = (k0 / (p.K / p.G)) * CG;
  let bias = vec4<f32>(b[k0], b[k0 + 1u], b[k0 + 2u], b[k0 + 3u]);
  var acc = array<vec4<f32>, 4>(bias, bias, bias, bias); // acc[j] = 4 channels at pixel ox0 + j
  for (var c = 0u; c < CG; c++) {
    let xplane = (n * p.C + c0 + c) * p.H;
    for (var ky = 0u; ky < p.KH; ky++) {
      let iy = i32(oy * p.SH + ky * p.DH) - i32(p.PT);
      if (iy < 0 || iy >= i32(p.H)) { continue; }
      let xrow = (xplane + u32(iy)) * p.W;
      for (var kx = 0u; kx < p.KW; kx++) {
        let wi = ((c * p.KH + ky) * p.KW + kx) * p.KP + k0;
        let wv = vec4<f32>(w[wi], w[wi + 1u], w[wi + 2u], w[wi + 3u]);
        for (var j = 0u; j < 4u; j++) {
          let ix = i32((ox0 + j) * p.SW + kx * p.DW) - i32(p.PL);
          if (ix >= 0 && ix < i32(p.W)) { acc[j] += wv * x[xrow + u32(ix)]; }
        }
      }
    }
  }
  for (var j = 0u; j < 4u; j++) {
    let ox = ox0 + j;
    if (ox >= p.OW) { break; }
    let v = activate(acc[j]);
    for (var q = 0u; q < 4u; q++) {
      if (k0 + q < p.K) { y[((n * p.K + k0 + q) * p.OH + oy) * p.OW + ox] = v[q]; }
    }
  }
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
  let v = activate(acc);
  for (var j = 0u; j < 4u; j++) {
    if (ox0 + j < p.OW) { y[((n * p.K + k) * p.OH + oy) * p.OW + ox0 + j] = v[j]; }
  }
}

// Backward to the input; bindings reuse the forward slots: x <- dy, y <- dx (b unused).
@compute @workgroup_size(WG)
fn conv2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
