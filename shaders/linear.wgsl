// Fully connected y = x w^T + b over one chunk of output rows [O0, O0 + OC) (big weights are split into chunks
// that fit a storage binding).
//   linear_forward:  y[n, O0+o] = b[o] + sum_i x[n,i] w[o,i]        one invocation = 4 rows o for one n
//   linear_backward: dx[n,i] (+)= sum_o dy[n, O0+o] w[o,i]           one invocation per (n,i), gather over the chunk
// Bindings: x (N,I) [backward: dy (N,O)], w (OC,I), b (OC), y (N,O) [backward: dx (N,I)].
struct Params { N: u32, I: u32, O: u32, O0: u32, OC: u32, acc: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WG: u32 = 64;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(WG)
fn linear_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let OT = (p.OC + 3u) / 4u;
  let t = index(gid, nwg);
  if (t >= p.N * OT) { return; }
  let o0 = (t % OT) * 4u; let n = t / OT;
  // rows past the chunk re-read row o0 (always valid) and are not written
  let r = vec4<u32>(o0, min(o0 + 1u, p.OC - 1u), min(o0 + 2u, p.OC - 1u), min(o0 + 3u, p.OC - 1u)) * p.I;
  var s = vec4<f32>(0.0);
  for (var i = 0u; i < p.I; i++) {
    let xv = x[n * p.I + i];
    s += xv * vec4<f32>(w[r.x + i], w[r.y + i], w[r.z + i], w[r.w + i]);
  }
  for (var q = 0u; q < 4u; q++) {
    if (o0 + q < p.OC) { y[n * p.O + p.O0 + o0 + q] = s[q] + b[o0 + q]; }
  }
}

@compute @workgroup_size(WG)
fn linear_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.I) { return; }
  let i = t % p.I; let n = t / p.I;
  var s = 0.0;
  for (var o = 0u; o < p.OC; o++) { s += x[n * p.O + p.O0 + o] * w[o * p.I + i]; }
  if (p.acc != 0u) { s += y[t]; }
  y[t] = s;
}
