// 2-D transposed convolution (src/ops/convtranspose.ts): x (N,C,H,W), w (C, K/G, KH, KW), b (K) -> y (N,K,OH,OW).
//   convtranspose_forward:  y[n,k,oh,ow] = b[k] + sum over c in k's group, taps (i, j) with oh + PT - i DH = ih SH and
//                           ow + PL - j DW = iw SW (0 <= ih < H, 0 <= iw < W) of x[n,c,ih,iw] w[c, k mod K/G, i, j]
//   convtranspose_backward: dx[n,c,ih,iw] = sum over k in c's group, taps (i, j), oh = ih SH - PT + i DH, ow likewise
//                           (inside OH x OW) of dy[n,k,oh,ow] w[c, k mod K/G, i, j]: the conv of dy (no bias)
// Both gather (one invocation per element written, no atomics). PT, PL may be negative (output_shape past the natural size).
struct Params { N: u32, C: u32, H: u32, W: u32, K: u32, OH: u32, OW: u32, KH: u32, KW: u32, SH: u32, SW: u32, PT: i32, PL: i32,
  DH: u32, DW: u32, G: u32, acc: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

override WG: u32 = 64;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(WG)
fn convtranspose_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.K * p.OH * p.OW) { return; }
  let ow = i32(t % p.OW); let oh = i32((t / p.OW) % p.OH); let k = (t / (p.OW * p.OH)) % p.K; let n = t / (p.OW * p.OH * p.K);
  let Kg = p.K / p.G; let Cg = p.C / p.G; let g = k / Kg; let kk = k % Kg;
  var s = b[k];
  for (var i = 0u; i < p.KH; i++) {
    let nh = oh + p.PT - i32(i * p.DH);
    if (nh < 0 || nh % i32(p.SH) != 0) { continue; }
    let ih = u32(nh) / p.SH;
    if (ih >= p.H) { continue; }
    for (var j = 0u; j < p.KW; j++) {
      let nw = ow + p.PL - i32(j * p.DW);
      if (nw < 0 || nw % i32(p.SW) != 0) { continue; }
      let iw = u32(nw) / p.SW;
      if (iw >= p.W) { continue; }
      for (var cc = 0u; cc < Cg; cc++) {
        let c = g * Cg + cc;
        s += x[((n * p.C + c) * p.H + ih) * p.W + iw] * w[((c * Kg + kk) * p.KH + i) * p.KW + j];
      }
    }
  }
  y[t] = s;
}

@compute @workgroup_size(WG)
fn convtranspose_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.C * p.H * p.W) { return; }
  let iw = i32(t % p.W); let ih = i32((t / p.W) % p.H); let c = (t / (p.W * p.H)) % p.C; let n = t / (p.W * p.H * p.C);
  let Kg = p.K / p.G; let g = c / (p.C / p.G);
  var s = 0.0;
  for (var i = 0u; i < p.KH; i++) {
    let oh = ih * i32(p.SH) - p.PT + i32(i * p.DH);
    if (oh < 0 || oh >= i32(p.OH)) { continue; }
    for (var j = 0u; j < p.KW; j++) {
      let ow = iw * i32(p.SW) - p.PL + i32(j * p.DW);
      if (ow < 0 || ow >= i32(p.OW)) { continue; }
      for (var kk = 0u; kk < Kg; kk++) {
        s += dy[((n * p.K + g * Kg + kk) * p.OH + u32(oh)) * p.OW + u32(ow)] * w[((c * Kg + kk) * p.KH + i) * p.KW + j];
      }
    }
  }
  if (p.acc != 0u) { s += dx[t]; }
  dx[t] = s;
}
