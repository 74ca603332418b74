// Element-wise activations (FN override: 0 relu, 1 clip(alpha,beta), 2 leakyrelu(alpha), 3 sigmoid,
// 4 hardsigmoid max(0,min(1,alpha x + beta)), 5 hardswish x*relu6(x+3)/6) and per-channel affine y = x*s[c] + t[c].
//   act_forward:  y = f(x)
//   act_backward (MODE override): 0 gradient dx = dy * f'(x); 1 guided (relu only) dx = dy * [x>0] * [dy>0];
//                 2 DeepLIFT rescale dx = dy * (f(x) - f(xr)) / (x - xr), or dy * f'(x) where |x - xr| < 1e-10
//                   (the secant is evaluated stably, see secant()).
// Bindings: x, xr (reference input, = x outside DeepLIFT), dy (all (E)), out (E): y or dx. E = numel.
struct Params { E: u32, acc: u32, alpha: f32, beta: f32, C: u32, HW: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> xr: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;
override FN: u32 = 0u;
override MODE: u32 = 0u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn f(v: f32) -> f32 {
  switch FN {
    case 0u: { return max(v, 0.0); }
    case 1u: { return clamp(v, p.alpha, p.beta); }
    case 2u: { return select(p.alpha * v, v, v > 0.0); }
    case 3u: { return 1.0 / (1.0 + exp(-v)); }
    case 4u: { return clamp(p.alpha * v + p.beta, 0.0, 1.0); }
    default: { return v * clamp(v + 3.0, 0.0, 6.0) / 6.0; }
  }
}

// PyTorch's derivative conventions at the kinks (relu'(0) = 0, hardtanh' = 0 at the bounds, ...).
fn df(v: f32) -> f32 {
  switch FN {
    case 0u: { return select(0.0, 1.0, v > 0.0); }
    case 1u: { return select(0.0, 1.0, v > p.alpha && v < p.beta); }
    case 2u: { return select(p.alpha, 1.0, v > 0.0); }
    case 3u: { let s = 1.0 / (1.0 + exp(-v)); return s * (1.0 - s); }
    case 4u: { let u = p.alpha * v + p.beta; return select(0.0, p.alpha, u > 0.0 && u < 1.0); }
    default: { if (v < -3.0) { return 0.0; } if (v <= 3.0) { return v / 3.0 + 0.5; } return 1.0; }
  }
}

// Index of the smooth piece of f that v lies on (pieces meet at the kinks).
fn piece(v: f32) -> u32 {
  switch FN {
    case 0u, 2u: { return select(0u, 1u, v > 0.0); }
    case 1u: { return select(select(1u, 2u, v >= p.beta), 0u, v <= p.alpha); }
    case 4u: { let u = p.alpha * v + p.beta; return select(select(1u, 2u, u >= 1.0), 0u, u <= 0.0); }
    case 5u: { return select(select(1u, 2u, v > 3.0), 0u, v < -3.0); }
    default: { return 0u; }
  }
}

// DeepLIFT Rescale multiplier (f(v) - f(r)) / (v - r), evaluated without float32 cancellation: on one linear or
// quadratic piece (ReLU, LeakyReLU, Clip, HardSigmoid, HardSwish) the secant equals f' at the midpoint exactly;
// for the sigmoid, s(v) - s(r) = s(-v) s(r) expm1(v - r).
fn secant(v: f32, r: f32) -> f32 {
  let d = v - r;
  if (FN == 3u) {
    if (abs(d) >= 1.0) { return (f(v) - f(r)) / d; }
    // expm1(d)/d = sum d^k/(k+1)!, to d^9: within 4e-8 for |d| < 1
    let e = 1.0 + d * (0.5 + d * (1.0 / 6.0 + d * (1.0 / 24.0 + d * (1.0 / 120.0 + d * (1.0 / 720.0 + d * (1.0 / 5040.0
      + d * (1.0 / 40320.0 + d * (1.0 / 362880.0 + d / 3628800.0))))))));
    return (1.0 / (1.0 + exp(v))) * (1.0 / (1.0 + exp(-r))) * e;
  }
  if (piece(v) == piece(r)) { return df(0.5 * (v + r)); }
  return (f(v) - f(r)) / d;
}

@compute @workgroup_size(WG)
fn act_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.E) { return; }
  out[i] = f(x[i]);
}

@compute @workgroup_size(WG)
fn act_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.E) { return; }
  let v = x[i]; let g = dy[i];
  var d: f32;
  if (MODE == 1u && FN == 0u) {
    d = select(0.0, g, v > 0.0 && g > 0.0);
  } else if (MODE == 2u && abs(v - xr[i]) >= 1e-10) {
    d = g * secant(v, xr[i]);
  } else {
    d = g * df(v);
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
