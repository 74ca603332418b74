// Reductions over any set of per-sample axes (src/ops/reduce.ts). x's per-sample shape comes as 8 groups of adjacent
// axes (sizes s0 = groups 0..3, s1 = 4..7, row-major, padded with size-1 groups), group d reduced where bit d of mask
// is set; y (N, YS) holds the kept groups in order; XS = numel of x per sample, R = XS / YS values go into each output.
//   reduce_forward (one invocation per output o, r over the R reduced positions in scan order):
//     FN 0 sum, 1 mean (sum / R), 2 max, 3 min (oidx[o] = offset in the sample of the first extremum in scan order),
//     4 l2 sqrt(sum x^2), 5 l1 sum |x|, 6 sumsquare sum x^2.
//   reduce_backward (FN 0, 1, 4, 5, 6; one invocation per x element j, o(j) the output it went into):
//     dx_j = dy_o * m_j with, MODE 0 (gradient; guided too): sum 1, mean 1/R, l2 x_j / y_o (0 where y_o = 0, as
//     PyTorch's norm), l1 sign(x_j), sumsquare 2 x_j.
//     MODE 2 (DeepLIFT, against the reference pass x', y'), each exact (sum_j m_j (x_j - x'_j) = y_o - y'_o):
//     sum, mean as the gradient (linear); l2 (x_j + x'_j) / (y_o + y'_o), since y^2 - y'^2 = sum (x - x')(x + x') and
//     y - y' = (y^2 - y'^2) / (y + y') (0 where y + y' = 0); l1 the Rescale secant (|x_j| - |x'_j|) / (x_j - x'_j)
//     (sign(x_j) where |x_j - x'_j| < 1e-10); sumsquare x_j + x'_j.
//   reduce_backward_arg (FN 2, 3): MODE 0 routes dy_o to the saved argmax a = idx[o]; MODE 2 routes
//     dy_o (y - y') / (x_a - x'_a) to a, else (x_a unchanged) dy_o (y - y') / (x_a' - x'_a') to the reference pass's
//     argmax a' = idxr[o], else (neither moved, y = y') dy_o to a: the max-pool rule of shaders/pool.wgsl, exact.
// Bindings: x, xr (x', = x outside DeepLIFT) (N, XS); y, yr (N, YS) or idx, idxr (N, YS) i32; dy (N, YS);
// out (N, YS) forward / (N, XS) backward; oidx (N, YS) i32 (forward of max / min).
struct Params { s0: vec4<u32>, s1: vec4<u32>, mask: u32, N: u32, XS: u32, YS: u32, R: u32, acc: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> xr: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> idx: array<i32>;
@group(0) @binding(4) var<storage, read> yr: array<f32>;
@group(0) @binding(4) var<storage, read> idxr: array<i32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read_write> oidx: array<i32>;

override WG: u32 = 256;
override FN: u32 = 0u;
override MODE: u32 = 0u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn size(d: u32) -> u32 { return select(p.s1[d & 3u], p.s0[d & 3u], d < 4u); }
fn reduced(d: u32) -> bool { return ((p.mask >> d) & 1u) == 1u; }

// Offset in the sample of kept index o (over the kept groups) plus reduced index r (over the reduced groups).
fn offset(o: u32, r: u32) -> u32 {
  var ko = o; var kr = r; var stride = 1u; var off = 0u;
  for (var d = 7i; d >= 0; d--) {
    let e = u32(d); let s = size(e);
    if (reduced(e)) { off += (kr % s) * stride; kr /= s; } else { off += (ko % s) * stride; ko /= s; }
    stride *= s;
  }
  return off;
}

// The kept index (output index within the sample) of offset j in the sample.
fn kept(j: u32) -> u32 {
  var rem = j; var o = 0u; var ks = 1u;
  for (var d = 7i; d >= 0; d--) {
    let e = u32(d); let s = size(e); let c = rem % s;
    rem /= s;
    if (!reduced(e)) { o += c * ks; ks *= s; }
  }
  return o;
}

fn term(v: f32) -> f32 {
  switch FN {
    case 4u, 6u: { return v * v; }
    case 5u: { return abs(v); }
    default: { return v; }
  }
}

@compute @workgroup_size(WG)
fn reduce_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = index(gid, nwg);
  if (o >= p.N * p.YS) { return; }
  let n = o / p.YS; let k = o % p.YS; let base = n * p.XS;
  if (FN == 2u || FN == 3u) {
    var arg = offset(k, 0u); var best = x[base + arg];
    for (var r = 1u; r < p.R; r++) {
      let at = offset(k, r); let v = x[base + at];
      if ((FN == 2u && v > best) || (FN == 3u && v < best)) { best = v; arg = at; }
    }
    out[o] = best;
    oidx[o] = i32(arg);
    return;
  }
  var s = 0.0;
  for (var r = 0u; r < p.R; r++) { s += term(x[base + offset(k, r)]); }
  if (FN == 1u) { s /= f32(p.R); }
  if (FN == 4u) { s = sqrt(s); }
  out[o] = s;
}

// The multiplier of x_j (value v, reference vr) into output o (value w, reference wr).
fn mult(v: f32, vr: f32, w: f32, wr: f32) -> f32 {
  switch FN {
    case 1u: { return 1.0 / f32(p.R); }
    case 4u: {
      if (MODE == 2u) { let t = w + wr; return select(0.0, (v + vr) / t, t > 0.0); }
      return select(0.0, v / w, w > 0.0);
    }
    case 5u: {
      if (MODE == 2u && abs(v - vr) >= 1e-10) {
        if ((v >= 0.0) == (vr >= 0.0)) { return select(-1.0, 1.0, v >= 0.0); } // one linear piece: exactly +-1
        return (abs(v) - abs(vr)) / (v - vr);                                    // opposite signs: no cancellation
      }
      return sign(v);
    }
    case 6u: { return select(2.0 * v, v + vr, MODE == 2u); }
    default: { return 1.0; }
  }
}

@compute @workgroup_size(WG)
fn reduce_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let j = index(gid, nwg);
  if (j >= p.N * p.XS) { return; }
  let o = (j / p.XS) * p.YS + kept(j % p.XS);
  var s = dy[o] * mult(x[j], xr[j], y[o], yr[o]);
  if (p.acc != 0u) { s += out[j]; }
  out[j] = s;
}

@compute @workgroup_size(WG)
fn reduce_backward_arg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let j = index(gid, nwg);
  if (j >= p.N * p.XS) { return; }
  let base = (j / p.XS) * p.XS; let me = i32(j % p.XS);
  let o = (j / p.XS) * p.YS + kept(j % p.XS);
  let a = idx[o];
  var s = 0.0;
  if (MODE != 2u) {
    if (a == me) { s = dy[o]; }
  } else {
    let ar = idxr[o];
    let da = x[base + u32(a)] - xr[base + u32(a)];
    let dar = x[base + u32(ar)] - xr[base + u32(ar)];
    let dY = x[base + u32(a)] - xr[base + u32(ar)]; // y - y'
    if (abs(da) >= 1e-10) { if (a == me) { s = dy[o] * dY / da; } }
    else if (abs(dar) >= 1e-10) { if (ar == me) { s = dy[o] * dY / dar; } }
    else if (a == me) { s = dy[o]; }
  }
  if (p.acc != 0u) { s += out[j]; }
  out[j] = s;
}
