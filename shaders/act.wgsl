// Element-wise activations y = f(x) (FN override: the ids of src/ops/acts.ts) and the per-channel affine y = x*s[c] + t[c].
//   FN: 0 relu, 1 clip [alpha, beta], 2 leakyrelu alpha (PRelu), 3 sigmoid, 4 hardsigmoid max(0, min(1, alpha x + beta)),
//       5 hardswish x relu6(x + 3)/6, 6 tanh, 7 exp, 8 log, 9 sqrt, 10 1/x, 11 -x, 12 |x|, 13 erf, 14 gelu x Phi(x),
//       15 gelu tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), 16 elu alpha (e^x - 1 below 0),
//       17 selu gamma = beta times elu alpha, 18 celu alpha (e^(x/alpha) - 1) below 0, 19 softplus log(1 + e^x),
//       20 softsign x / (1 + |x|), 21 mish x tanh(softplus x), 22 pow x^alpha.
//   PER override 1: alpha per element, alphas[(i / HW) % C] (PRelu's slope, Pow's exponent tensor); else p.alpha.
//   act_forward:  y = f(x)
//   act_backward (MODE override): 0 gradient dx = dy * f'(x) (PyTorch's conventions at the kinks: the table's `kink`);
//                 1 guided (relu only) dx = dy * [x>0] * [dy>0], every other f its gradient;
//                 3 deconvnet (relu only) dx = relu(dy) (the forward's gate is ignored), every other f its gradient;
//                 2 DeepLIFT rescale dx = dy * (f(x) - f(xr)) / (x - xr), or dy * f'(x) where |x - xr| < 1e-10
//                   (the secant is evaluated without float32 cancellation, see secant()).
// Bindings: x, xr (reference input, = x outside DeepLIFT), dy (all (E)), alphas (C), out (E): y or dx. E = numel.
struct Params { E: u32, acc: u32, alpha: f32, beta: f32, C: u32, HW: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> xr: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> alphas: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;
override FN: u32 = 0u;
override MODE: u32 = 0u;
override PER: u32 = 0u;

const BIG = 3.0e38; // reach() of a piece on which the secant is exact at any length

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn sigm(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }
// e^v - 1 to float32 relative accuracy (exp(v) - 1 loses digits for |v| < 1/2): Taylor series to v^8 there (error < 2e-8)
fn expm1(v: f32) -> f32 {
  if (abs(v) >= 0.5) { return exp(v) - 1.0; }
  return v * (1.0 + v * (0.5 + v * (1.0 / 6.0 + v * (1.0 / 24.0 + v * (1.0 / 120.0 + v * (1.0 / 720.0 + v * (1.0 / 5040.0 + v / 40320.0)))))));
}
fn tanh_(v: f32) -> f32 { return tanh(clamp(v, -10.0, 10.0)); } // tanh(10) is 1 in float32; no inf / inf beyond
fn softplus(v: f32) -> f32 { return max(v, 0.0) + log(1.0 + exp(-abs(v))); }
// erfc(z) for z >= 0 (Numerical Recipes' Chebyshev fit: relative error < 1.2e-7 for every z)
fn erfc_pos(z: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * z);
  return t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807
    + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
}
// erf: the Maclaurin series below |v| = 1/2 (to v^13, error < 1e-9), 1 - erfc above
fn erf_(v: f32) -> f32 {
  let z = abs(v);
  if (z >= 0.5) { return sign(v) * (1.0 - erfc_pos(z)); }
  let w = v * v;
  return 1.1283791670955126 * v * (1.0 + w * (-1.0 / 3.0 + w * (0.1 + w * (-1.0 / 42.0 + w * (1.0 / 216.0 + w * (-1.0 / 1320.0 + w / 9360.0))))));
}
// the standard normal CDF Phi(v) = erfc(-v / sqrt 2) / 2, through erfc on both sides (relative accuracy in the left tail)
fn phi_cdf(v: f32) -> f32 {
  let e = 0.5 * erfc_pos(abs(v) * 0.7071067811865476);
  return select(1.0 - e, e, v < 0.0);
}
// x^a: exact repeated products for integer a (|a| <= 64), sqrt for 1/2, exp2(a log2 |x|) otherwise; NaN for x < 0 and a
// not an integer (as PyTorch and ONNX), 0^a = 0 (a > 0), 1 (a = 0), inf (a < 0)
fn powf(v: f32, a: f32) -> f32 {
  if (a == 0.0) { return 1.0; }
  if (a == 0.5) { return sqrt(v); }
  let ia = i32(a);
  let integer = f32(ia) == a && abs(a) <= 64.0;
  if (integer) {
    var r = 1.0; var b = v; var k = abs(ia);
    loop { if (k == 0) { break; } if ((k & 1) == 1) { r *= b; } b *= b; k = k >> 1u; }
    return select(r, 1.0 / r, ia < 0);
  }
  if (v < 0.0) { return sqrt(v); }                      // NaN
  if (v == 0.0) { return select(1.0 / v, 0.0, a > 0.0); } // inf for a < 0
  return exp2(a * log2(v));
}

fn f(v: f32, a: f32, b: f32) -> f32 {
  switch FN {
    case 0u: { return max(v, 0.0); }
    case 1u: { return clamp(v, a, b); }
    case 2u: { return select(a * v, v, v > 0.0); }
    case 3u: { return sigm(v); }
    case 4u: { return clamp(a * v + b, 0.0, 1.0); }
    case 5u: { return v * clamp(v + 3.0, 0.0, 6.0) / 6.0; }
    case 6u: { return tanh_(v); }
    case 7u: { return exp(v); }
    case 8u: { return log(v); }
    case 9u: { return sqrt(v); }
    case 10u: { return 1.0 / v; }
    case 11u: { return -v; }
    case 12u: { return abs(v); }
    case 13u: { return erf_(v); }
    case 14u: { return v * phi_cdf(v); }
    case 15u: { return 0.5 * v * (1.0 + tanh_(0.7978845608028654 * (v + 0.044715 * v * v * v))); }
    case 16u: { return select(a * expm1(v), v, v > 0.0); }
    case 17u: { return b * select(a * expm1(v), v, v > 0.0); }
    case 18u: { return select(a * expm1(v / a), v, v > 0.0); }
    case 19u: { return softplus(v); }
    case 20u: { return v / (1.0 + abs(v)); }
    case 21u: { return v * tanh_(softplus(v)); }
    default: { return powf(v, a); }
  }
}

// f'(v), PyTorch's conventions at the kinks (relu'(0) = 0, hardtanh' = 0 at the bounds, elu'(0) = alpha, |x|'(0) = 0, ...).
fn df(v: f32, a: f32, b: f32) -> f32 {
  switch FN {
    case 0u: { return select(0.0, 1.0, v > 0.0); }
    case 1u: { return select(0.0, 1.0, v > a && v < b); }
    case 2u: { return select(a, 1.0, v > 0.0); }
    case 3u: { let s = sigm(v); return s * (1.0 - s); }
    case 4u: { let u = a * v + b; return select(0.0, a, u > 0.0 && u < 1.0); }
    case 5u: { if (v < -3.0) { return 0.0; } if (v <= 3.0) { return v / 3.0 + 0.5; } return 1.0; }
    case 6u: { let t = tanh_(v); return 1.0 - t * t; }
    case 7u: { return exp(v); }
    case 8u: { return 1.0 / v; }
    case 9u: { return 0.5 / sqrt(v); }
    case 10u: { return -1.0 / (v * v); }
    case 11u: { return -1.0; }
    case 12u: { return sign(v); }
    case 13u: { return 1.1283791670955126 * exp(-v * v); }
    case 14u: { return phi_cdf(v) + v * 0.3989422804014327 * exp(-0.5 * v * v); }
    case 15u: {
      let t = tanh_(0.7978845608028654 * (v + 0.044715 * v * v * v));
      return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 0.134145 * v * v);
    }
    case 16u: { return select(a * exp(v), 1.0, v > 0.0); }
    case 17u: { return b * select(a * exp(v), 1.0, v > 0.0); }
    case 18u: { return select(exp(v / a), 1.0, v > 0.0); }
    case 19u: { return sigm(v); }
    case 20u: { let u = 1.0 + abs(v); return 1.0 / (u * u); }
    case 21u: { let t = tanh_(softplus(v)); return t + v * (1.0 - t * t) * sigm(v); }
    default: { if (a == 0.0) { return 0.0; } return a * powf(v, a - 1.0); }
  }
}

// Index of the smooth piece of f that v lies on (pieces meet at the kinks; x^a off the integers: at 0).
fn piece(v: f32, a: f32, b: f32) -> u32 {
  switch FN {
    case 0u, 2u, 12u, 16u, 17u, 18u, 20u: { return select(0u, 1u, v > 0.0); }
    case 1u: { return select(select(1u, 2u, v >= b), 0u, v <= a); }
    case 4u: { let u = a * v + b; return select(select(1u, 2u, u >= 1.0), 0u, u <= 0.0); }
    case 5u: { return select(select(1u, 2u, v > 3.0), 0u, v < -3.0); }
    case 22u: { return select(0u, 1u, v > 0.0 || round(a) == a); }
    default: { return 0u; }
  }
}

// The longest |x - x'| on one piece for which gl4 is accurate to float32: f^(9)/f' stays below ~1e3 over 1/2 (the
// entire functions here), over alpha/2 (celu), over a fraction of the distance to the singularity at 0 (log, x^a).
fn reach(v: f32, r: f32, a: f32) -> f32 {
  switch FN {
    case 0u, 1u, 2u, 4u, 5u, 11u, 12u: { return BIG; }           // linear or quadratic pieces
    case 8u: { return 0.5 * min(abs(v), abs(r)); }
    case 18u: { return 0.5 * abs(a); }
    case 22u: {
      if (round(a) == a && a >= 0.0 && a <= 8.0) { return BIG; } // a polynomial of degree <= 8: gl4 is exact
      return 0.5 * min(abs(v), abs(r)) / (1.0 + abs(a) / 4.0);
    }
    default: { return 0.5; }
  }
}

// Mean of f' over [r, r + d] by 4-point Gauss-Legendre: a weighted sum of f' with positive weights, so no cancellation;
// exact for f polynomial of degree <= 8 there, else relative error 5.6e-10 d^8 max|f^(9)| / |f'|.
fn gl4(r: f32, d: f32, a: f32, b: f32) -> f32 {
  return 0.17392742256872693 * (df(r + 0.06943184420297371 * d, a, b) + df(r + 0.9305681557970263 * d, a, b))
    + 0.32607257743127307 * (df(r + 0.33000947820757187 * d, a, b) + df(r + 0.6699905217924281 * d, a, b));
}

// The kinks of the piecewise-linear (or -quadratic) functions whose secant kinked() splits: clip [a, b], hardsigmoid
// where a x + b is 0 and 1, hardswish -3 and 3 (in increasing order).
fn kinks(a: f32, b: f32) -> vec2<f32> {
  switch FN {
    case 1u: { return vec2<f32>(a, b); }
    case 4u: { let k0 = -b / a; let k1 = (1.0 - b) / a; return vec2<f32>(min(k0, k1), max(k0, k1)); }
    default: { return vec2<f32>(-3.0, 3.0); }
  }
}

// Secant of clip, hardsigmoid and hardswish split at the kinks: the mean of f' over [lo, hi] is the sum over the (at
// most three) pieces of (length x f' at the piece's midpoint), exact on linear and quadratic pieces, divided by the
// length. No difference of two function values, so no cancellation when x and x' straddle a kink closely
// (hardswish at x = 3 +- 1e-3: the difference quotient's error was eps 3 / 2e-3 = 1.8e-4 of the multiplier). Lengths
// are differences of inputs and kinks: exact for nearby values, relative eps otherwise; hardsigmoid's kinks -b/a,
// (1-b)/a are rounded to float32, which sets its floor at ulp(kink) / |x - x'|.
fn kinked(v: f32, r: f32, a: f32, b: f32) -> f32 {
  if (FN == 4u && a == 0.0) { return 0.0; } // constant clamp(b)
  let lo = min(v, r); let hi = max(v, r);
  let k = kinks(a, b);
  let c0 = clamp(k.x, lo, hi); let c1 = clamp(k.y, lo, hi);
  let s = (c0 - lo) * df(0.5 * (lo + c0), a, b) + (c1 - c0) * df(0.5 * (c0 + c1), a, b) + (hi - c1) * df(0.5 * (c1 + hi), a, b);
  return s / (hi - lo);
}

// DeepLIFT Rescale multiplier (f(v) - f(r)) / (v - r), evaluated without float32 cancellation. Closed forms where f
// has one: clip, hardsigmoid, hardswish split at their kinks (kinked); sigmoid s(v) - s(r) = s(-v) s(r) expm1(v - r);
// sqrt 1/(sqrt v + sqrt r); 1/x: -1/(v r); softsign on one side of 0: 1/((1 + |v|)(1 + |r|)). On one piece, closer
// than reach(): f' at the midpoint on linear and quadratic pieces (exact), else gl4. Otherwise the difference
// quotient, whose rounding error is then at most ~eps max|f| / reach (log: log(v / r) / d, one rounding); across a
// kink at 0 the two values have opposite signs around f(0) = 0 and are each accurate (expm1), so their difference is too.
fn secant(v: f32, r: f32, a: f32, b: f32) -> f32 {
  let d = v - r;
  switch FN {
    case 3u: {
      if (abs(d) >= 1.0) { return (f(v, a, b) - f(r, a, b)) / d; }
      // expm1(d)/d = sum d^k/(k+1)!, to d^9: within 4e-8 for |d| < 1
      let e = 1.0 + d * (0.5 + d * (1.0 / 6.0 + d * (1.0 / 24.0 + d * (1.0 / 120.0 + d * (1.0 / 720.0 + d * (1.0 / 5040.0
        + d * (1.0 / 40320.0 + d * (1.0 / 362880.0 + d / 3628800.0))))))));
      return (1.0 / (1.0 + exp(v))) * (1.0 / (1.0 + exp(-r))) * e;
    }
    case 1u, 4u, 5u: { return kinked(v, r, a, b); }
    case 9u: { return 1.0 / (sqrt(v) + sqrt(r)); }
    case 10u: { return -1.0 / (v * r); }
    case 20u: { if ((v > 0.0) == (r > 0.0)) { return 1.0 / ((1.0 + abs(v)) * (1.0 + abs(r))); } }
    default: {}
  }
  if (piece(v, a, b) == piece(r, a, b) && abs(d) < reach(v, r, a)) {
    if (reach(v, r, a) == BIG && FN != 22u) { return df(0.5 * (v + r), a, b); }
    return gl4(r, d, a, b);
  }
  if (FN == 8u) { return log(v / r) / d; }
  return (f(v, a, b) - f(r, a, b)) / d;
}

@compute @workgroup_size(WG)
fn act_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.E) { return; }
  var a = p.alpha;
  if (PER == 1u) { a = alphas[(i / p.HW) % p.C]; }
  out[i] = f(x[i], a, p.beta);
}

@compute @workgroup_size(WG)
fn act_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.E) { return; }
  var a = p.alpha;
  if (PER == 1u) { a = alphas[(i / p.HW) % p.C]; }
  let v = x[i]; let g = dy[i];
  var d: f32;
  if (MODE == 1u && FN == 0u) {
    d = select(0.0, g, v > 0.0 && g > 0.0);
  } else if (MODE == 3u && FN == 0u) {
    d = max(g, 0.0);
  } else if (MODE == 2u && abs(v - xr[i]) >= 1e-10) {
    d = g * secant(v, xr[i], a, p.beta);
  } else {
    d = g * df(v, a, p.beta);
  }
  if (p.acc != 0u) { d += out[i]; }
  out[i] = d;
}

// Per-channel affine (an unfolded BatchNormalization): xr holds scale (C), dy holds shift (C).
@compute @workgroup_size(WG)
fn affine_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.E) { return; }
  let c = (i / p.HW) % p.C;
  out[i] = x[i] * xr[c] + dy[c];
}

// dx = dy * scale[c]: x <- dy, xr <- scale.
@compute @workgroup_size(WG)
fn affine_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.E) { return; }
  var d = x[i] * xr[(i / p.HW) % p.C];
  if (p.acc != 0u) { d += out[i]; }
  out[i] = d;
}
