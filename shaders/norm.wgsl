// Row normalisation (LayerNormalization, InstanceNormalization; src/ops/norm.ts): per sample G rows of M elements, row
// t = n*G + g at x[t*M .. t*M + M); element m of the row is per-sample element i = g*M + m and takes w[s(i)], b[s(i)],
// s(i) = (i / SD) % SL. With c = x - mean(x), v = mean(c^2), r = 1/sqrt(v + eps), xhat = c r:
//   norm_forward:  y = xhat w + b
//   norm_backward (g = dy w per element):
//     MODE 0 gradient (guided too): dx = r (g - mean(g) - xhat mean(g xhat))
//     MODE 2 DeepLIFT against the reference row x' (c', v', r' likewise): the difference splits exactly along
//       xhat = c r (the two-player split of a product, as Mul: dxhat = (r + r')/2 dc + (c + c')/2 dr), r = f(v) with
//       f(v) = 1/sqrt(v + eps) (Rescale: dr = sec dv, sec = (r - r')/(v - v') = -1/(sa sb (sa + sb)), sa = sqrt(v + eps),
//       sb = sqrt(v' + eps), free of cancellation), v = mean(c^2) (dv = sum_j (c_j + c'_j)/M dc_j, a difference of
//       squares) and the centring c = x - mean(x) (linear):
//         u_j = (r + r')/2 g_j + sec (c_j + c'_j)/M sum_i g_i (c_i + c'_i)/2,   dx_j = u_j - mean(u)
//       so sum_j dx_j (x_j - x'_j) = sum_i dy_i (y_i - y'_i) exactly; x' = x gives the gradient.
// Bindings: x, xr (x', = x outside DeepLIFT), dy, out (N*G rows of M); w, b (SL). One invocation per row.
struct Params { N: u32, G: u32, M: u32, SL: u32, SD: u32, eps: f32, acc: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> xr: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> b: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

override WG: u32 = 64;
override MODE: u32 = 0u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn sc(t: u32, m: u32) -> u32 { return (((t % p.G) * p.M + m) / p.SD) % p.SL; }

fn meanOf(base: u32, second: bool) -> f32 {
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) { s += select(x[base + m], xr[base + m], second); }
  return s / f32(p.M);
}
// v + eps for the row (two-pass: the mean first); second: the reference row xr
fn varOf(base: u32, mu: f32, second: bool) -> f32 {
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) { let c = select(x[base + m], xr[base + m], second) - mu; s += c * c; }
  return s / f32(p.M) + p.eps;
}

@compute @workgroup_size(WG)
fn norm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.G) { return; }
  let base = t * p.M; let mu = meanOf(base, false); let r = inverseSqrt(varOf(base, mu, false));
  for (var m = 0u; m < p.M; m++) { let k = sc(t, m); out[base + m] = (x[base + m] - mu) * r * w[k] + b[k]; }
}

fn store(i: u32, v: f32) {
  var d = v;
  if (p.acc != 0u) { d += out[i]; }
  out[i] = d;
}

@compute @workgroup_size(WG)
fn norm_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.G) { return; }
  let base = t * p.M; let M = f32(p.M);
  let mu = meanOf(base, false); let va = varOf(base, mu, false); let r = inverseSqrt(va);
  if (MODE != 2u) {
    var sg = 0.0; var sgx = 0.0;
    for (var m = 0u; m < p.M; m++) { let g = dy[base + m] * w[sc(t, m)]; sg += g; sgx += g * (x[base + m] - mu) * r; }
    for (var m = 0u; m < p.M; m++) {
      let g = dy[base + m] * w[sc(t, m)];
      store(base + m, r * (g - sg / M - (x[base + m] - mu) * r * sgx / M));
    }
    return;
  }
  let mur = meanOf(base, true); let vb = varOf(base, mur, true); let rr = inverseSqrt(vb);
  let sa = sqrt(va); let sb = sqrt(vb);
  let sec = -1.0 / (sa * sb * (sa + sb));
  let rbar = 0.5 * (r + rr);
  // K = sum_i g_i (c_i + c'_i)/2; sum u = rbar sum g + K sec sum (c + c')/M
  var K = 0.0; var sg = 0.0; var scc = 0.0;
  for (var m = 0u; m < p.M; m++) {
    let g = dy[base + m] * w[sc(t, m)]; let cc = (x[base + m] - mu) + (xr[base + m] - mur);
    K += 0.5 * g * cc; sg += g; scc += cc;
  }
  let ks = K * sec / M;
  let mean_u = (rbar * sg + ks * scc) / M;
  for (var m = 0u; m < p.M; m++) {
    let g = dy[base + m] * w[sc(t, m)]; let cc = (x[base + m] - mu) + (xr[base + m] - mur);
    store(base + m, rbar * g + ks * cc - mean_u);
  }
}
