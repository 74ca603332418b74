// Fully connected y = x w^T + b over one chunk of output rows [O0, O0 + OC) (big weights are split into chunks
// that fit a storage binding).
//   linear_forward:  y[n, O0+o] = b[o] + sum_i x[n,i] w[o,i]        one invocation = 4 rows o for one n
//   linear_backward: dx[n,i] (+)= sum_o dy[n, O0+o] w[o,i]           one invocation = 16 consecutive i for one n, gather over the chunk
// Both read x and w as vec4 along i and need I % 4 == 0; the _scalar entry points take any I (backward: one i per invocation).
// Bindings: x (N,I) [backward: dy (N,O)], w (OC,I), b (OC), y (N,O) [backward: dx (N,I)]; x4, w4 are vec4 views.
struct Params { N: u32, I: u32, O: u32, O0: u32, OC: u32, acc: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WG: u32 = 64;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// rows o0..o0+3 of the chunk (rows past the chunk re-read row o0, always valid, and are not written)
fn rows(o0: u32) -> vec4<u32> { return vec4<u32>(o0, min(o0 + 1u, p.OC - 1u), min(o0 + 2u, p.OC - 1u), min(o0 + 3u, p.OC - 1u)); }

fn storeRows(n: u32, o0: u32, s: vec4<f32>) {
  for (var q = 0u; q < 4u; q++) {
    if (o0 + q < p.OC) { y[n * p.O + p.O0 + o0 + q] = s[q] + b[o0 + q]; }
  }
}

@compute @workgroup_size(WG)
fn linear_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let OT = (p.OC + 3u) / 4u;
  let t = index(gid, nwg);
  if (t >= p.N * OT) { return; }
  let o0 = (t % OT) * 4u; let n = t / OT;
  let I4 = p.I / 4u; let r = rows(o0) * I4; let xr = n * I4;
  var s = vec4<f32>(0.0);
  for (var i = 0u; i < I4; i++) {
    let xv = x4[xr + i];
    s += vec4<f32>(dot(xv, w4[r.x + i]), dot(xv, w4[r.y + i]), dot(xv, w4[r.z + i]), dot(xv, w4[r.w + i]));
  }
  storeRows(n, o0, s);
}

@compute @workgroup_size(WG)
fn linear_forward_scalar(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let OT = (p.OC + 3u) / 4u;
  let t = index(gid, nwg);
  if (t >= p.N * OT) { return; }
  let o0 = (t % OT) * 4u; let n = t / OT;
  let r = rows(o0) * p.I;
  var s = vec4<f32>(0.0);
  for (var i = 0u; i < p.I; i++) {
    let xv = x[n * p.I + i];
    s += xv * vec4<f32>(w[r.x + i], w[r.y + i], w[r.z + i], w[r.w + i]);
  }
  storeRows(n, o0, s);
}

@compute @workgroup_size(WG)
fn linear_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  // 16 consecutive i (4 vec4) per invocation: for each o the lanes of a SIMD group read one contiguous run of w's row,
  // where 4 i per invocation jumped a whole row (I floats) between every 16 bytes read (3x slower on lavapipe)
  let I4 = p.I / 4u; let B = (I4 + 3u) / 4u;
  let t = index(gid, nwg);
  if (t >= p.N * B) { return; }
  let i4 = (t % B) * 4u; let n = t / B;
  var s: array<vec4<f32>, 4>;
  for (var o = 0u; o < p.OC; o++) {
    let d = x[n * p.O + p.O0 + o]; let r = o * I4 + i4;
    for (var j = 0u; j < 4u; j++) { if (i4 + j < I4) { s[j] += d * w4[r + j]; } }
  }
  for (var j = 0u; j < 4u; j++) {
    if (i4 + j >= I4) { continue; }
    for (var q = 0u; q < 4u; q++) { let i = n * p.I + 4u * (i4 + j) + q; y[i] = s[j][q] + select(0.0, y[i], p.acc != 0u); }
  }
}

@compute @workgroup_size(WG)
fn linear_backward_scalar(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.I) { return; }
  let i = t % p.I; let n = t / p.I;
  var s = 0.0;
  for (var o = 0u; o < p.OC; o++) { s += x[n * p.O + p.O0 + o] * w[o * p.I + i]; }
  if (p.acc != 0u) { s += y[t]; }
  y[t] = s;
}
