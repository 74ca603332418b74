// Strided block copy used by Concat: rows of R elements, per batch item n.
//   concat_forward:  y[n*YS + Y0 + r] = x[n*XS + r]            (input placed at its channel offset Y0)
//   concat_backward: dx[n*XS + r] (+)= dy[n*YS + Y0 + r]        (the slice of the gradient that belongs to the input)
// Bindings: x (N, XS) [backward: dy (N, YS)], y [backward: dx].
struct Params { N: u32, R: u32, XS: u32, YS: u32, Y0: u32, acc: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

override WG: u32 = 256;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(WG)
fn concat_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.R) { return; }
  let n = t / p.R; let r = t % p.R;
  y[n * p.YS + p.Y0 + r] = x[n * p.XS + r];
}

@compute @workgroup_size(WG)
fn concat_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.R) { return; }
  let n = t / p.R; let r = t % p.R;
  var s = x[n * p.YS + p.Y0 + r];
  if (p.acc != 0u) { s += y[n * p.XS + r]; }
  y[n * p.XS + r] = s;
}
