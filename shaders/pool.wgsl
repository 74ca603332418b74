// Pooling over (N,C,H,W) -> (N,C,OH,OW); window KHxKW, stride, pads (top, left; bottom/right implied by OH/OW), dilation.
//   maxpool_forward:  y = max over the window's in-input positions; idx = argmax as h*W+w (first on ties, like PyTorch)
//   maxpool_backward: gather, dx[i] = sum over windows j whose argmax is i of dy[j]; DeepLIFT (MODE 2) routes
//                     dy_j*(y_j - y'_j)/(x_a - x'_a) to the actual argmax a, else to the reference argmax a',
//                     else the plain gradient, so contributions sum to the delta exactly (see METHODS.md).
//   avgpool_forward/backward: PyTorch divisor rules (count_include_pad clips the window to the padded input).
//   gap_forward/backward: mean over H*W.
// Bindings: x, xr (reference input), idx, idxr (argmax of the actual and reference pass), dy, out (y or dx), oidx
// (forward writes the argmax). y = x[idx], so the pooled values need no binding of their own.
struct Params {
  N: u32, C: u32, H: u32, W: u32, OH: u32, OW: u32, KH: u32, KW: u32,
  SH: u32, SW: u32, PT: u32, PL: u32, DH: u32, DW: u32, PB: u32, PR: u32,
  incpad: u32, acc: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> xr: array<f32>;
@group(0) @binding(3) var<storage, read> idx: array<i32>;
@group(0) @binding(4) var<storage, read> idxr: array<i32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> oidx: array<i32>;

override WG: u32 = 256;
override MODE: u32 = 0u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(WG)
fn maxpool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = index(gid, nwg);
  if (o >= p.N * p.C * p.OH * p.OW) { return; }
  let ox = o % p.OW; let oy = (o / p.OW) % p.OH; let plane = (o / (p.OW * p.OH)) * p.H * p.W;
  var best = -3.4e38; var arg = -1;
  for (var ky = 0u; ky < p.KH; ky++) {
    let iy = i32(oy * p.SH + ky * p.DH) - i32(p.PT);
    if (iy < 0 || iy >= i32(p.H)) { continue; }
    for (var kx = 0u; kx < p.KW; kx++) {
      let ix = i32(ox * p.SW + kx * p.DW) - i32(p.PL);
      if (ix < 0 || ix >= i32(p.W)) { continue; }
      let k = iy * i32(p.W) + ix;
      let v = x[plane + u32(k)];
      if (v > best || arg < 0) { best = v; arg = k; }
    }
  }
  out[o] = best;
  oidx[o] = arg;
}

@compute @workgroup_size(WG)
fn maxpool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.N * p.C * p.H * p.W) { return; }
  let ix = i % p.W; let iy = (i / p.W) % p.H; let nc = i / (p.W * p.H);
  let me = i32(iy * p.W + ix); let plane = nc * p.H * p.W;
  var s = 0.0;
  for (var ky = 0u; ky < p.KH; ky++) {
    let ty = i32(iy + p.PT) - i32(ky * p.DH);
    if (ty < 0 || u32(ty) % p.SH != 0u || u32(ty) / p.SH >= p.OH) { continue; }
    for (var kx = 0u; kx < p.KW; kx++) {
      let tx = i32(ix + p.PL) - i32(kx * p.DW);
      if (tx < 0 || u32(tx) % p.SW != 0u || u32(tx) / p.SW >= p.OW) { continue; }
      let j = (nc * p.OH + u32(ty) / p.SH) * p.OW + u32(tx) / p.SW;
      let a = idx[j];
      if (MODE != 2u) { if (a == me) { s += dy[j]; } continue; }
      let ar = idxr[j];
      let da = x[plane + u32(a)] - xr[plane + u32(a)];
      let dar = x[plane + u32(ar)] - xr[plane + u32(ar)];
      let dyj = x[plane + u32(a)] - xr[plane + u32(ar)]; // y_j - y'_j
      if (abs(da) >= 1e-10) { if (a == me) { s += dy[j] * dyj / da; } }
      else if (abs(dar) >= 1e-10) { if (ar == me) { s += dy[j] * dyj / dar; } }
      else if (a == me) { s += dy[j]; }
    }
  }
  if (p.acc != 0u) { s += out[i]; }
  out[i] = s;
}

// Window [y0, y1) x [x0, x1) clipped to the input, and PyTorch's divisor.
fn window(oy: u32, ox: u32) -> vec4<i32> {
  let y0 = i32(oy * p.SH) - i32(p.PT); let x0 = i32(ox * p.SW) - i32(p.PL);
  return vec4<i32>(y0, x0, min(y0 + i32(p.KH), i32(p.H + p.PB)), min(x0 + i32(p.KW), i32(p.W + p.PR)));
}
fn divisor(r: vec4<i32>) -> f32 {
  if (p.incpad != 0u) { return f32((r.z - r.x) * (r.w - r.y)); }
  return f32((min(r.z, i32(p.H)) - max(r.x, 0)) * (min(r.w, i32(p.W)) - max(r.y, 0)));
}

@compute @workgroup_size(WG)
fn avgpool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = index(gid, nwg);
  if (o >= p.N * p.C * p.OH * p.OW) { return; }
  let ox = o % p.OW; let oy = (o / p.OW) % p.OH; let plane = (o / (p.OW * p.OH)) * p.H * p.W;
  let r = window(oy, ox);
  var s = 0.0;
  for (var iy = max(r.x, 0); iy < min(r.z, i32(p.H)); iy++) {
    for (var ix = max(r.y, 0); ix < min(r.w, i32(p.W)); ix++) { s += x[plane + u32(iy) * p.W + u32(ix)]; }
  }
  out[o] = s / divisor(r);
}

@compute @workgroup_size(WG)
fn avgpool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.N * p.C * p.H * p.W) { return; }
  let ix = i32(i % p.W); let iy = i32((i / p.W) % p.H); let nc = i / (p.W * p.H);
  var s = 0.0;
  for (var ky = 0u; ky < p.KH; ky++) {
    let ty = iy + i32(p.PT) - i32(ky);
    if (ty < 0 || u32(ty) % p.SH != 0u || u32(ty) / p.SH >= p.OH) { continue; }
    for (var kx = 0u; kx < p.KW; kx++) {
      let tx = ix + i32(p.PL) - i32(kx);
      if (tx < 0 || u32(tx) % p.SW != 0u || u32(tx) / p.SW >= p.OW) { continue; }
      let oy = u32(ty) / p.SH; let ox = u32(tx) / p.SW;
      s += dy[(nc * p.OH + oy) * p.OW + ox] / divisor(window(oy, ox));
    }
  }
  if (p.acc != 0u) { s += out[i]; }
  out[i] = s;
}

@compute @workgroup_size(WG)
fn gap_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = index(gid, nwg);
  if (o >= p.N * p.C) { return; }
  let HW = p.H * p.W;
  var s = 0.0;
  for (var k = 0u; k < HW; k++) { s += x[o * HW + k]; }
  out[o] = s / f32(HW);
}

@compute @workgroup_size(WG)
fn gap_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  let HW = p.H * p.W;
  if (i >= p.N * p.C * HW) { return; }
  var s = dy[i / HW] / f32(HW);
  if (p.acc != 0u) { s += out[i]; }
  out[i] = s;
}
