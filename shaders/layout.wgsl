// Layout ops as one strided view (src/ops/layout.ts builds its per-axis maps): Transpose, Slice (and Split), Pad
// (constant, reflect, edge), Expand and Tile, Gather with constant indices. They move values and never combine them,
// so every backward mode (gradient, guided, DeepLIFT multipliers) is the same gather.
// Shapes are per sample, right-aligned into 8 axis slots (unused leading slots have size 1); the batch n stays outside:
//   y[n, c] = x[n, sum_d i_d(c_d) * t_d]        c = (c_0 .. c_7) the coordinates of y in its shape o
// where output axis d reads input axis src(d), of size s_d and element stride t_d, at coordinate i_d(c) by MAP:
//   MAP 0 affine  (Transpose, Slice): i = a_d + k_d * c (k_d < 0 for a reversed slice; always inside [0, s_d))
//   MAP 1 constant pad:               i = a_d + c (a_d = -pad_begin_d); outside [0, s_d) the output is `value`
//   MAP 2 reflect pad:                i = a_d + c mirrored at 0 and s_d - 1 (pads < s_d: one mirror is enough)
//   MAP 3 edge pad:                   i = clamp(a_d + c, 0, s_d - 1)
//   MAP 4 tile (Tile, Expand):        i = c mod s_d (an expanded axis has s_d = 1)
//   MAP 5 gather:                     i = idx[c] on axis G, affine elsewhere
// layout_backward gathers (no atomics): one invocation per input element j (coordinates j_e), summing dy over every
// output position c with i_d(c_d) = j_src(d) on every axis d. Per axis it tries a few candidates c and keeps those that
// the forward map sends back to j_src(d): the inverse for affine and constant pad, the progression j, j + s, j + 2s ..
// for tile, the interval of clamped positions for edge, the three mirror images for reflect, every index for gather.
// Bindings: x (N, XS) forward input / dy (N, YS) backward input; idx (o_G) gather indices; y (N, YS) / dx (N, XS).
struct Params {
  o0: vec4<u32>, o1: vec4<u32>, s0: vec4<u32>, s1: vec4<u32>, t0: vec4<u32>, t1: vec4<u32>,
  a0: vec4<i32>, a1: vec4<i32>, k0: vec4<i32>, k1: vec4<i32>,
  N: u32, XS: u32, YS: u32, G: u32, acc: u32, value: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

override WG: u32 = 256;
override MAP: u32 = 0u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// Lane d (0..7) of a quantity packed as two vec4s.
fn lu(lo: vec4<u32>, hi: vec4<u32>, d: u32) -> u32 { return select(hi[d & 3u], lo[d & 3u], d < 4u); }
fn li(lo: vec4<i32>, hi: vec4<i32>, d: u32) -> i32 { return select(hi[d & 3u], lo[d & 3u], d < 4u); }
fn o_(d: u32) -> i32 { return i32(lu(p.o0, p.o1, d)); }
fn s_(d: u32) -> i32 { return i32(lu(p.s0, p.s1, d)); }
fn t_(d: u32) -> u32 { return lu(p.t0, p.t1, d); }
fn a_(d: u32) -> i32 { return li(p.a0, p.a1, d); }
fn k_(d: u32) -> i32 { return li(p.k0, p.k1, d); }
/** An axis the pad maps leave alone (no padding there): it behaves as affine. */
fn unpadded(d: u32) -> bool { return a_(d) == 0 && o_(d) == s_(d); }

// The input coordinate that output coordinate c of axis d reads; -1 outside the input (constant pad).
fn fwd(d: u32, c: i32) -> i32 {
  let s = s_(d);
  switch MAP {
    case 1u: { let i = a_(d) + c; return select(-1, i, i >= 0 && i < s); }
    case 2u: { var i = a_(d) + c; if (i < 0) { i = -i; } if (i > s - 1) { i = 2 * (s - 1) - i; } return i; }
    case 3u: { return clamp(a_(d) + c, 0, s - 1); }
    case 4u: { return c % s; }
    case 5u: { if (d == p.G) { return i32(idx[c]); } return a_(d) + k_(d) * c; }
    default: { return a_(d) + k_(d) * c; }
  }
}

// How many candidate output coordinates of axis d may read input coordinate i (a superset: cand() and fwd() decide).
fn count(d: u32, i: i32) -> u32 {
  let o = o_(d); let s = s_(d);
  if (MAP == 2u && !unpadded(d)) { return 3u; }
  if (MAP == 3u && !unpadded(d)) {
    let lo = select(i - a_(d), 0, i == 0); let hi = select(i - a_(d), o - 1, i == s - 1);
    return u32(max(hi - lo + 1, 0));
  }
  if (MAP == 4u) { return u32((o - i + s - 1) / s); }
  if (MAP == 5u && d == p.G) { return u32(o); }
  return 1u;
}

// Candidate m of axis d for input coordinate i (-1: none).
fn cand(d: u32, i: i32, m: u32) -> i32 {
  let s = s_(d); let a = a_(d);
  if (MAP == 2u && !unpadded(d)) {
    if (m == 1u) { return select(-1, -i - a, i > 0); }          // mirrored at 0
    if (m == 2u) { return select(-1, 2 * (s - 1) - i - a, i < s - 1); } // mirrored at s - 1
    return i - a;
  }
  if (MAP == 3u && !unpadded(d)) { return select(i - a, 0, i == 0) + i32(m); }
  if (MAP == 4u) { return i + i32(m) * s; }
  if (MAP == 5u && d == p.G) { return i32(m); }
  if (MAP == 0u || MAP == 5u) { return (i - a) / k_(d); } // truncating: fwd() rejects a step that does not divide
  return i - a;
}

@compute @workgroup_size(WG)
fn layout_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = index(gid, nwg);
  if (o >= p.N * p.YS) { return; }
  let n = o / p.YS;
  var r = o % p.YS;
  var off = 0u;
  var inside = true;
  for (var d = 7i; d >= 0; d--) {
    let od = u32(o_(u32(d)));
    let i = fwd(u32(d), i32(r % od));
    r = r / od;
    if (i < 0) { inside = false; } else { off += u32(i) * t_(u32(d)); }
  }
  var v = p.value;
  if (inside) { v = x[n * p.XS + off]; }
  y[o] = v;
}

@compute @workgroup_size(WG)
fn layout_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let j = index(gid, nwg);
  if (j >= p.N * p.XS) { return; }
  let n = j / p.XS;
  let r = j % p.XS;
  // per output axis: the input coordinate it must read (that of its source axis) and its candidate count
  var want: array<i32, 8>;
  var cnt: array<u32, 8>;
  var total = 1u;
  for (var d = 0u; d < 8u; d++) {
    want[d] = i32((r / t_(d)) % u32(s_(d)));
    cnt[d] = count(d, want[d]);
    total *= cnt[d];
  }
  var sum = 0.0;
  for (var m = 0u; m < total; m++) {
    var q = m;
    var off = 0u;
    var stride = 1u;
    var ok = true;
    for (var d = 7i; d >= 0; d--) {
      let e = u32(d);
      let c = cand(e, want[e], q % cnt[e]);
      q = q / cnt[e];
      if (c < 0 || c >= o_(e) || fwd(e, c) != want[e]) { ok = false; break; }
      off += u32(c) * stride;
      stride *= u32(o_(e));
    }
    if (ok) { sum += dy[n * p.YS + off]; }
  }
  if (p.acc != 0u) { sum += dx[j]; }
  dx[j] = sum;
}
