// Softmax over the last axis of (N, F).
//   softmax_forward:  y[n,f] = exp(x[n,f] - max_f x) / sum exp(...)
//   softmax_backward: dx[n,f] = y[n,f] * (dy[n,f] - sum_g dy[n,g] y[n,g])
// Bindings: x (forward input; backward: y), dy (backward only), out (N,F). One invocation per row.
struct Params { N: u32, F: u32, acc: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn softmax_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  if (n >= p.N) { return; }
  let r = n * p.F;
  var m = -3.4e38;
  for (var f = 0u; f < p.F; f++) { m = max(m, x[r + f]); }
  var s = 0.0;
  for (var f = 0u; f < p.F; f++) { s += exp(x[r + f] - m); }
  for (var f = 0u; f < p.F; f++) { out[r + f] = exp(x[r + f] - m) / s; }
}

@compute @workgroup_size(WG)
fn softmax_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  if (n >= p.N) { return; }
  let r = n * p.F;
  var d = 0.0;
  for (var f = 0u; f < p.F; f++) { d += dy[r + f] * x[r + f]; }
  for (var f = 0u; f < p.F; f++) {
    var v = x[r + f] * (dy[r + f] - d);
    if (p.acc != 0u) { v += out[r + f]; }
    out[r + f] = v;
  }
}
