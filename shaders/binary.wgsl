// Broadcasting add / mul (OP override: 0 add, 1 mul) over rank-4 shapes [N, d1, d2, d3] (numpy rules,
// constants broadcast over N with stride 0).
//   binary_forward:  out[i] = a[i . sa] (+|*) b[i . sb]          (sa, sb: element strides, 0 on broadcast axes)
//   binary_backward: gradient of one operand u, shape su; gathers over the output positions that read u[j]:
//     du[j] = sum dy[i] * (add: 1, mul: v[i . sv]; DeepLIFT (MODE 2) mul: (v + v')[i . sv] / 2)
// Bindings: in0, in1, in2 (forward: a, b, unused; backward: dy, v, v'), out.
struct Params { o: vec4<u32>, sa: vec4<u32>, sb: vec4<u32>, su: vec4<u32>, E: u32, acc: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> in0: array<f32>;
@group(0) @binding(2) var<storage, read> in1: array<f32>;
@group(0) @binding(3) var<storage, read> in2: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;
override OP: u32 = 0u;
override MODE: u32 = 0u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn coords(i: u32, s: vec4<u32>) -> vec4<u32> {
  return vec4<u32>(i / (s.y * s.z * s.w), (i / (s.z * s.w)) % s.y, (i / s.w) % s.z, i % s.w);
}

@compute @workgroup_size(WG)
fn binary_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.E) { return; }
  let c = coords(i, p.o);
  let a = in0[dot(c, p.sa)]; let b = in1[dot(c, p.sb)];
  out[i] = select(a + b, a * b, OP == 1u);
}

@compute @workgroup_size(WG)
fn binary_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let j = index(gid, nwg);
  if (j >= p.E) { return; }
  let cu = coords(j, p.su);
  // axes where u is broadcast (size 1 but the output is larger) are summed over
  let span = select(vec4<u32>(1u), p.o, p.su != p.o);
  let ostride = vec4<u32>(p.o.y * p.o.z * p.o.w, p.o.z * p.o.w, p.o.w, 1u);
  var s = 0.0;
  for (var a = 0u; a < span.x; a++) { for (var b = 0u; b < span.y; b++) {
    for (var c = 0u; c < span.z; c++) { for (var d = 0u; d < span.w; d++) {
      let oc = select(cu, vec4<u32>(a, b, c, d), p.su != p.o);
      let g = in0[dot(oc, ostride)];
      if (OP == 0u) { s += g; }
      else if (MODE == 2u) { let k = dot(oc, p.sb); s += g * 0.5 * (in1[k] + in2[k]); }
      else { s += g * in1[dot(oc, p.sb)]; }
    } }
  } }
  if (p.acc != 0u) { s += out[j]; }
  out[j] = s;
}
