// Eigen-CAM's principal component on the GPU (pytorch-grad-cam get_2d_projection): A (N,K,h,w) target activation,
// Z = h*w, X (Z,K) = A_n^T with the channel means removed (X_zk = A_nkz - mu_nk). The projection on the first right
// singular vector v1 of X is X v1 = sigma1 u1 (u1 the first left one); sign: the entry of largest |value| positive
// (the first such entry; SVD's own sign is arbitrary). Per image, on the smaller Gram matrix (D = min(Z,K)):
//   GRAM 0: G = X X^T (Z,Z), top eigenvector u1; weights v1 = X^T u1 / sigma1, sigma1 = |X^T u1|; raw = sigma1 u1.
//   GRAM 1: G = X^T X (K,K), top eigenvector v1 = weights; raw = X v1.
//   eigen_mean   (one invocation per (n,k)): xc (N,K,Z) = A - mu, mu_nk the mean over Z.
//   eigen_gram   (one invocation per (n,i,j)): dst (N,D,D) = G.
//   eigen_square (one invocation per (n,i,j)): dst = src src / tr(src)^2 (eigenvalues <= 1; the host runs it SQ
//     times, so the power iteration below converges with (lambda2/lambda1)^(2^SQ) per step).
//   eigen_power  (one workgroup of 64 per image): power iteration u <- src u / |src u| from the host's start vector
//     1 + (i*7919 mod 13)/13, until max |du| <= 2e-7 or ITERS steps; then the projection and weights above, written
//     to raw (N,S,Z) slot SLOT (the CAM epilogue's raw buffer) and wts (N,K). D <= MAXD.
struct Params { N: u32, K: u32, Z: u32, D: u32, S: u32, SLOT: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;             // (N,K,Z)
@group(0) @binding(2) var<storage, read_write> xc: array<f32>;      // (N,K,Z)
@group(0) @binding(3) var<storage, read> src: array<f32>;           // (N,D,D)
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;     // (N,D,D)
@group(0) @binding(5) var<storage, read_write> raw: array<f32>;     // (N,S,Z)
@group(0) @binding(6) var<storage, read_write> wts: array<f32>;     // (N,K)

const MAXD = 1024u;
override WG: u32 = 64;
override GRAM: u32 = 0u;
override ITERS: u32 = 2000u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }
/** X_zk of image n. */
fn X(n: u32, z: u32, k: u32) -> f32 { return xc[(n * p.K + k) * p.Z + z]; }

@compute @workgroup_size(WG)
fn eigen_mean(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.K) { return; }
  var s = 0.0;
  for (var z = 0u; z < p.Z; z++) { s += A[t * p.Z + z]; }
  let mu = s / f32(p.Z);
  for (var z = 0u; z < p.Z; z++) { xc[t * p.Z + z] = A[t * p.Z + z] - mu; }
}

@compute @workgroup_size(WG)
fn eigen_gram(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  let DD = p.D * p.D;
  if (t >= p.N * DD) { return; }
  let n = t / DD; let i = (t % DD) / p.D; let j = t % p.D;
  var s = 0.0;
  if (GRAM == 0u) { for (var k = 0u; k < p.K; k++) { s += X(n, i, k) * X(n, j, k); } }
  else { for (var z = 0u; z < p.Z; z++) { s += X(n, z, i) * X(n, z, j); } }
  dst[t] = s;
}

@compute @workgroup_size(WG)
fn eigen_square(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  let DD = p.D * p.D;
  if (t >= p.N * DD) { return; }
  let n = t / DD; let i = (t % DD) / p.D; let j = t % p.D; let b = n * DD;
  var tr = 0.0;
  for (var l = 0u; l < p.D; l++) { tr += src[b + l * p.D + l]; }
  var s = 0.0;
  for (var l = 0u; l < p.D; l++) { s += src[b + i * p.D + l] * src[b + l * p.D + j]; }
  dst[t] = select(0.0, s / tr / tr, tr > 0.0);
}

var<workgroup> u: array<f32, MAXD>;
var<workgroup> nu: array<f32, MAXD>;
var<workgroup> red: array<f32, 64>;
var<workgroup> at: array<u32, 64>;
var<workgroup> flag: u32;

/** Sum of red[0..64) into red[0] (all 64 invocations call it). */
fn sum64(l: u32) {
  workgroupBarrier();
  for (var st = 32u; st > 0u; st >>= 1u) {
    if (l < st) { red[l] += red[l + st]; }
    workgroupBarrier();
  }
}

@compute @workgroup_size(64)
fn eigen_power(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = wid.x + wid.y * nwg.x;
  let l = lid.x;
  let D = p.D; let b = n * D * D;
  for (var i = l; i < D; i += 64u) { u[i] = 1.0 + f32((i * 7919u) % 13u) / 13.0; }
  for (var it = 0u; it < ITERS; it++) {
    workgroupBarrier();
    var s2 = 0.0;
    for (var i = l; i < D; i += 64u) {
      var s = 0.0;
      for (var j = 0u; j < D; j++) { s += src[b + i * D + j] * u[j]; }
      nu[i] = s; s2 += s * s;
    }
    red[l] = s2;
    sum64(l);
    let nrm = sqrt(red[0]);
    var dmax = 0.0;
    if (nrm > 0.0) {
      for (var i = l; i < D; i += 64u) { let v = nu[i] / nrm; dmax = max(dmax, abs(v - u[i])); u[i] = v; }
    }
    workgroupBarrier();
    red[l] = dmax;
    workgroupBarrier();
    if (l == 0u) {
      var m = 0.0;
      for (var q = 0u; q < 64u; q++) { m = max(m, red[q]); }
      flag = select(0u, 1u, nrm == 0.0 || m <= 2e-7);
    }
    if (workgroupUniformLoad(&flag) == 1u) { break; }
  }
  workgroupBarrier();
  // the other factor: GRAM 0: w = X^T u (K) into wts; GRAM 1: pz = X u (Z) into raw
  let ob = (n * p.S + p.SLOT) * p.Z;
  var s2 = 0.0;
  if (GRAM == 0u) {
    for (var k = l; k < p.K; k += 64u) { var s = 0.0; for (var z = 0u; z < p.Z; z++) { s += X(n, z, k) * u[z]; } wts[n * p.K + k] = s; s2 += s * s; }
  } else {
    for (var z = l; z < p.Z; z += 64u) { var s = 0.0; for (var k = 0u; k < p.K; k++) { s += X(n, z, k) * u[k]; } raw[ob + z] = s; }
  }
  red[l] = s2;
  sum64(l);
  let sigma = sqrt(red[0]);
  storageBarrier();
  workgroupBarrier();
  // sign: the first entry of largest |raw|
  var big = -1.0; var bi = 0u;
  for (var z = l; z < p.Z; z += 64u) {
    var v: f32;
    if (GRAM == 0u) { v = u[z]; } else { v = raw[ob + z]; }
    if (abs(v) > big) { big = abs(v); bi = z; }
  }
  workgroupBarrier();
  red[l] = big; at[l] = bi;
  workgroupBarrier();
  if (l == 0u) {
    var m = -1.0; var mi = 0u;
    for (var q = 0u; q < 64u; q++) { if (red[q] > m || (red[q] == m && at[q] < mi)) { m = red[q]; mi = at[q]; } }
    at[0] = mi;
  }
  workgroupBarrier();
  let z0 = at[0];
  var sv: f32;
  if (GRAM == 0u) { sv = u[z0]; } else { sv = raw[ob + z0]; }
  let sg = select(1.0, -1.0, sv < 0.0);
  storageBarrier();
  workgroupBarrier();
  if (GRAM == 0u) {
    for (var z = l; z < p.Z; z += 64u) { raw[ob + z] = sg * sigma * u[z]; }
    for (var k = l; k < p.K; k += 64u) { wts[n * p.K + k] = select(0.0, sg * wts[n * p.K + k] / sigma, sigma > 0.0); }
  } else {
    for (var z = l; z < p.Z; z += 64u) { raw[ob + z] = sg * raw[ob + z]; }
    for (var k = l; k < p.K; k += 64u) { wts[n * p.K + k] = sg * u[k]; }
  }
}
