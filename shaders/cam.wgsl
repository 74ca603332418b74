// The fused CAM epilogue. A (N,K,h,w) target activation, g = dy/dA, m = DeepLIFT multipliers at A (zero reference);
// Z = h*w. R weight rows and S raw slots are override constants from the method table (src/methods.ts), whose rows
// and slots must follow this kernel's order (checked by checkCamLayout in src/explain/cam.ts):
//   weight rows (N,R,K): 0 Grad-CAM, 1 counterfactual Grad-CAM, 2 Grad-CAM++, 3 XGrad-CAM, 4 LIFT-CAM, 5 CAM, 6 FEM
//     (computed here); rows 7..R-1 are written by the host (Score-CAM, Ablation-CAM, RandomCAM).
//   raw slots (N,S,Z): r < R: sum_k w_rk A_k; R LayerCAM, R+1 HiResCAM, R+2 Grad-CAM element-wise (computed here);
//     slot R+3 is Eigen-CAM's (written by shaders/eigen.wgsl between cam_weights and cam_raw). S <= MAXS.
//   cam_weights (one invocation per (n,k), two reads of A_k, g_k, one of m_k):
//     gradcam mean(g); counterfactual mean(-g); Grad-CAM++ sum a*relu(g), a = g^2/(2g^2 + S_k g^3 + 1e-6), S_k = sum A_k,
//     a = 0 where g = 0 (PPNORM=1: a / sum_ij a, the authors' renormalisation); XGrad-CAM sum(g A)/(sum A + 1e-7);
//     LIFT-CAM sum(m A); CAM sum(g) (= W_fc[c,k] on a GAP -> linear head, checked by the host);
//     FEM mean_ij [A > mu_k + 2 sigma_k], mu_k, sigma_k the mean and population std of A_k (two-pass).
//   cam_raw (one invocation per (n,ij), one read of A_:ij and g_:ij): every computed slot's raw map.
//   cam_minmax (one workgroup per (n,selected slot)): min and max of ReLU?(map) over the raw map (SRC 0) or the
//     resized map (SRC 1).
//   cam_resize (one invocation per output pixel): bilinear resize of ReLU?(raw) to (H,W), half-pixel centres
//     (CORNERS 0) or corner-aligned (CORNERS 1); then (v - min)/(max - min + 1e-7) when NORM = 1 (normalise before
//     resize; bilinear weights sum to 1, so normalising the small map or the resized one with the small map's
//     min/max is the same).
//   cam_normalize: (v - min)/(max - min + 1e-7) over the resized map with its own min/max (normalise after resize).
struct Params { N: u32, K: u32, Z: u32, h: u32, w: u32, H: u32, W: u32, NSEL: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> m: array<f32>;
@group(0) @binding(4) var<storage, read> sel: array<u32>;     // selected raw slots, in output order
@group(0) @binding(5) var<storage, read_write> wts: array<f32>;  // (N,R,K)
@group(0) @binding(6) var<storage, read_write> raw: array<f32>;  // (N,S,Z)
@group(0) @binding(7) var<storage, read_write> maps: array<f32>; // (N,NSEL,H,W), then (N,NSEL,2) stats at the end

const MAXS = 16u;
override R: u32 = 10u;
override S: u32 = 14u;
override WG: u32 = 64;
override PPNORM: u32 = 0u;
override RELU: u32 = 1u;
override SRC: u32 = 0u;
override NORM: u32 = 1u;
override CORNERS: u32 = 0u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }
fn act(v: f32) -> f32 { return select(v, max(v, 0.0), RELU == 1u); }

@compute @workgroup_size(WG)
fn cam_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.K) { return; }
  let n = t / p.K; let k = t % p.K; let base = t * p.Z;
  var sg = 0.0; var sa = 0.0; var sga = 0.0; var sma = 0.0;
  for (var i = 0u; i < p.Z; i++) {
    let a = A[base + i]; let d = g[base + i];
    sg += d; sa += a; sga += d * a; sma += m[base + i] * a;
  }
  let Zf = f32(p.Z);
  let mu = sa / Zf;
  var pp = 0.0; var asum = 0.0; var ss = 0.0;
  for (var i = 0u; i < p.Z; i++) {
    let d = g[base + i];
    if (d != 0.0) {
      let a = d * d / (2.0 * d * d + sa * d * d * d + 1e-6);
      pp += a * max(d, 0.0); asum += a;
    }
    let e = A[base + i] - mu;
    ss += e * e;
  }
  let th = mu + 2.0 * sqrt(ss / Zf);
  var hits = 0u;
  for (var i = 0u; i < p.Z; i++) { hits += select(0u, 1u, A[base + i] > th); }
  if (PPNORM == 1u && asum != 0.0) { pp = pp / asum; }
  let o = n * R * p.K + k;
  wts[o] = sg / Zf;
  wts[o + p.K] = -sg / Zf;
  wts[o + 2u * p.K] = pp;
  wts[o + 3u * p.K] = sga / (sa + 1e-7);
  wts[o + 4u * p.K] = sma;
  wts[o + 5u * p.K] = sg;
  wts[o + 6u * p.K] = f32(hits) / Zf;
}

@compute @workgroup_size(WG)
fn cam_raw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.Z) { return; }
  let n = t / p.Z; let i = t % p.Z;
  var acc: array<f32, MAXS>;
  for (var k = 0u; k < p.K; k++) {
    let j = (n * p.K + k) * p.Z + i;
    let a = A[j]; let d = g[j];
    let wr = n * R * p.K + k;
    for (var r = 0u; r < R; r++) { acc[r] += wts[wr + r * p.K] * a; }
    acc[R] += max(d, 0.0) * a;
    acc[R + 1u] += d * a;
    acc[R + 2u] += max(d * a, 0.0);
  }
  for (var r = 0u; r < R + 3u; r++) { raw[(n * S + r) * p.Z + i] = acc[r]; }
}

var<workgroup> lo: array<f32, 64>;
var<workgroup> hi: array<f32, 64>;

@compute @workgroup_size(64)
fn cam_minmax(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let q = wid.x; // (n, selected slot)
  let n = q / p.NSEL; let s = sel[q % p.NSEL];
  let L = select(p.Z, p.H * p.W, SRC == 1u);
  var a = 3.4e38; var b = -3.4e38;
  for (var i = lid.x; i < L; i += 64u) {
    var v: f32;
    if (SRC == 0u) { v = act(raw[(n * S + s) * p.Z + i]); } else { v = maps[q * L + i]; }
    a = min(a, v); b = max(b, v);
  }
  lo[lid.x] = a; hi[lid.x] = b;
  workgroupBarrier();
  for (var st = 32u; st > 0u; st >>= 1u) {
    if (lid.x < st) { lo[lid.x] = min(lo[lid.x], lo[lid.x + st]); hi[lid.x] = max(hi[lid.x], hi[lid.x + st]); }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    let st = p.N * p.NSEL * p.H * p.W + 2u * q;
    maps[st] = lo[0]; maps[st + 1u] = hi[0];
  }
}

// Source coordinate of output pixel o along an axis of input size n and output size N.
fn src(o: u32, n: u32, N: u32) -> vec3<f32> { // (i0, i1, lambda)
  var x: f32;
  if (CORNERS == 1u) { x = select(0.0, f32(o) * f32(n - 1u) / f32(N - 1u), N > 1u); }
  else { x = max((f32(o) + 0.5) * f32(n) / f32(N) - 0.5, 0.0); }
  let i0 = min(u32(floor(x)), n - 1u);
  let i1 = min(i0 + 1u, n - 1u);
  return vec3<f32>(f32(i0), f32(i1), x - f32(i0));
}

@compute @workgroup_size(WG)
fn cam_resize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  let HW = p.H * p.W;
  if (t >= p.N * p.NSEL * HW) { return; }
  let q = t / HW; let n = q / p.NSEL; let s = sel[q % p.NSEL];
  let X = t % p.W; let Y = (t / p.W) % p.H;
  let sy = src(Y, p.h, p.H); let sx = src(X, p.w, p.W);
  let base = (n * S + s) * p.Z;
  let v00 = act(raw[base + u32(sy.x) * p.w + u32(sx.x)]); let v01 = act(raw[base + u32(sy.x) * p.w + u32(sx.y)]);
  let v10 = act(raw[base + u32(sy.y) * p.w + u32(sx.x)]); let v11 = act(raw[base + u32(sy.y) * p.w + u32(sx.y)]);
  var v = (1.0 - sy.z) * ((1.0 - sx.z) * v00 + sx.z * v01) + sy.z * ((1.0 - sx.z) * v10 + sx.z * v11);
  if (NORM == 1u) {
    let st = p.N * p.NSEL * HW + 2u * q;
    v = (v - maps[st]) / (maps[st + 1u] - maps[st] + 1e-7);
  }
  maps[t] = v;
}

@compute @workgroup_size(WG)
fn cam_normalize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  let HW = p.H * p.W;
  if (t >= p.N * p.NSEL * HW) { return; }
  let st = p.N * p.NSEL * HW + 2u * (t / HW);
  maps[t] = (maps[t] - maps[st]) / (maps[st + 1u] - maps[st] + 1e-7);
}
