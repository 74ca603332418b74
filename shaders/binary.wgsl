// Broadcasting binary ops y = g(a, b) (OP override: 0 add, 1 mul, 2 sub, 3 div, 4 max, 5 min) over rank-4 shapes
// [N, d1, d2, d3] (numpy rules, constants broadcast over N with stride 0).
//   binary_forward:  out[i] = g(a[i . sa], b[i . sb])          (sa, sb: element strides, 0 on broadcast axes)
//   binary_backward: the multiplier of one operand u (WRT override: 0 a, 1 b), shape su; gathers over the output
//     positions that read u[j]: du[j] = sum dy[i] * m_u(i).
//     MODE 0 (gradient; guided too): m = dg/du: add 1, 1; sub 1, -1; mul b, a; div 1/b, -a/b^2; max [a > b] and
//       [b > a], a tie a == b giving each dy/2 (PyTorch's maximum / minimum); min likewise.
//     MODE 2 (DeepLIFT): the two-player Shapley split, which keeps summation to delta exact for any g:
//       m_a (a - a') = [g(a,b) - g(a',b) + g(a,b') - g(a',b')] / 2,  m_b (b - b') = [g(a,b) - g(a,b') + g(a',b) - g(a',b')] / 2,
//       so m_a (a - a') + m_b (b - b') = g(a,b) - g(a',b'). In closed form (no division by a - a'): add, sub as the
//       gradient; mul (b + b')/2, (a + a')/2; div (1/b + 1/b')/2, -(a + a')/(2 b b'). max, min by the differences,
//       each exact up to one rounding (g is 1-Lipschitz in each argument, so nothing cancels), and
//       (dg/du(u, v) + dg/du(u, v'))/2 where |u - u'| < 1e-10. With a constant v (v' = v): the Rescale secant.
// Bindings: a, b; ar, br (the reference pass's; = a, b outside DeepLIFT), dy, out (y, or du of shape su).
struct Params { o: vec4<u32>, sa: vec4<u32>, sb: vec4<u32>, su: vec4<u32>, E: u32, acc: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> ar: array<f32>;
@group(0) @binding(4) var<storage, read> br: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;
override OP: u32 = 0u;
override MODE: u32 = 0u;
override WRT: u32 = 0u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn coords(i: u32, s: vec4<u32>) -> vec4<u32> {
  return vec4<u32>(i / (s.y * s.z * s.w), (i / (s.z * s.w)) % s.y, (i / s.w) % s.z, i % s.w);
}

fn g(u: f32, v: f32) -> f32 {
  switch OP {
    case 0u: { return u + v; }
    case 1u: { return u * v; }
    case 2u: { return u - v; }
    case 3u: { return u / v; }
    case 4u: { return max(u, v); }
    default: { return min(u, v); }
  }
}

// dg/d(operand WRT) at (u, v) = (a, b)
fn dg(u: f32, v: f32) -> f32 {
  let w = WRT == 1u;
  switch OP {
    case 0u: { return 1.0; }
    case 1u: { return select(v, u, w); }
    case 2u: { return select(1.0, -1.0, w); }
    case 3u: { return select(1.0 / v, -u / (v * v), w); }
    default: {
      if (u == v) { return 0.5; }
      return select(0.0, 1.0, ((u > v) != w) == (OP == 4u));
    }
  }
}

// DeepLIFT multiplier of operand WRT at (u, v) = (a, b) against the reference (ur, vr) = (a', b')
fn dl(u: f32, v: f32, ur: f32, vr: f32) -> f32 {
  let w = WRT == 1u;
  switch OP {
    case 1u: { return select(0.5 * (v + vr), 0.5 * (u + ur), w); }
    case 3u: { return select(0.5 * (1.0 / v + 1.0 / vr), -0.5 * (u + ur) / (v * vr), w); }
    case 4u, 5u: {
      let d = select(u - ur, v - vr, w);
      if (abs(d) < 1e-10) { return 0.5 * (dg(u, v) + dg(select(u, ur, w), select(vr, v, w))); }
      if (w) { return 0.5 * ((g(u, v) - g(u, vr)) + (g(ur, v) - g(ur, vr))) / d; }
      return 0.5 * ((g(u, v) - g(ur, v)) + (g(u, vr) - g(ur, vr))) / d;
    }
    default: { return dg(u, v); }
  }
}

@compute @workgroup_size(WG)
fn binary_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.E) { return; }
  let c = coords(i, p.o);
  out[i] = g(a[dot(c, p.sa)], b[dot(c, p.sb)]);
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
  for (var i0 = 0u; i0 < span.x; i0++) { for (var i1 = 0u; i1 < span.y; i1++) {
    for (var i2 = 0u; i2 < span.z; i2++) { for (var i3 = 0u; i3 < span.w; i3++) {
      let oc = select(cu, vec4<u32>(i0, i1, i2, i3), p.su != p.o);
      let gy = dy[dot(oc, ostride)];
      if (OP == 0u || OP == 2u) { s += gy * dg(0.0, 0.0); continue; }
      let ka = dot(oc, p.sa); let kb = dot(oc, p.sb);
      if (MODE == 2u) { s += gy * dl(a[ka], b[kb], ar[ka], br[kb]); }
      else { s += gy * dg(a[ka], b[kb]); }
    } }
  } }
  if (p.acc != 0u) { s += out[j]; }
  out[j] = s;
}
