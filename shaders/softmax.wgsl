// Softmax and log-softmax along rows (src/ops/norm.ts): per sample O blocks of F x I elements; row t = (n*O + o)*I + i
// reads F elements at stride I from (n*O + o)*F*I + i (the normalised axes flattened into F, I the elements after them).
//   softmax_forward:  LOG 0: y_f = exp(x_f - max x) / S, S = sum_f exp(x_f - max x);  LOG 1: y_f = x_f - max x - log S
//   softmax_backward:
//     MODE 0 gradient (guided too), from y: LOG 0 dx = y (dy - sum dy y); LOG 1 dx = dy - exp(y) sum dy.
//     MODE 2 DeepLIFT against the reference row x', both exact (sum_f dx_f (x_f - x'_f) = sum_f dy_f (y_f - y'_f)) and
//       equal to the gradient when x' = x. With one shift c = max(max x, max x') for both rows, e = exp(x - c),
//       e' = exp(x' - c), S, S' their sums and the Rescale secant s_f = (e_f - e'_f)/(x_f - x'_f) (exp at the midpoint
//       times sinh(d/2)/(d/2): no cancellation; e_f where |x_f - x'_f| < 1e-10):
//       LOG 0, y = e * (1/S), split as a product (as Mul) with d(1/S) = -dS/(S S'), dS = sum s_f dx_f:
//         dx_f = s_f (dy_f (1/S + 1/S')/2 - sum_g dy_g (e_g + e'_g)/2 / (S S'))
//       LOG 1, y = x - c - log S, with the log secant L = (log S - log S')/(S - S') (as log(u)/((u-1) S'), u = S/S'):
//         dx_f = dy_f - (sum_g dy_g) L s_f
// Bindings: x, xr (x', = x outside DeepLIFT), y (the forward output), dy, out (all (N, O*F*I)). One invocation per row.
struct Params { N: u32, O: u32, F: u32, I: u32, acc: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> xr: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

override WG: u32 = 64;
override LOG: u32 = 0u;
override MODE: u32 = 0u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// first element of row t
fn start(t: u32) -> u32 { return (t / p.I) * p.F * p.I + t % p.I; }

@compute @workgroup_size(WG)
fn softmax_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.O * p.I) { return; }
  let r = start(t);
  var m = -3.4e38;
  for (var f = 0u; f < p.F; f++) { m = max(m, x[r + f * p.I]); }
  var s = 0.0;
  for (var f = 0u; f < p.F; f++) { s += exp(x[r + f * p.I] - m); }
  let ls = log(s);
  for (var f = 0u; f < p.F; f++) {
    let k = r + f * p.I;
    out[k] = select(exp(x[k] - m) / s, x[k] - m - ls, LOG == 1u);
  }
}

// (exp(v - c) - exp(w - c)) / (v - w), exp(v - c) where |v - w| < 1e-10
fn secExp(v: f32, w: f32, c: f32) -> f32 {
  let d = v - w;
  if (abs(d) < 1e-10) { return exp(v - c); }
  if (abs(d) >= 1.0) { return (exp(v - c) - exp(w - c)) / d; }
  let h = 0.5 * d; let q = h * h;
  return exp(0.5 * (v + w) - c) * (1.0 + q * (1.0 / 6.0 + q * (1.0 / 120.0 + q * (1.0 / 5040.0 + q / 362880.0))));
}

fn store(k: u32, v: f32) {
  var d = v;
  if (p.acc != 0u) { d += out[k]; }
  out[k] = d;
}

@compute @workgroup_size(WG)
fn softmax_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.O * p.I) { return; }
  let r = start(t);
  if (MODE != 2u) {
    var d = 0.0;
    for (var f = 0u; f < p.F; f++) { let k = r + f * p.I; d += select(dy[k] * y[k], dy[k], LOG == 1u); }
    for (var f = 0u; f < p.F; f++) {
      let k = r + f * p.I;
      store(k, select(y[k] * (dy[k] - d), dy[k] - exp(y[k]) * d, LOG == 1u));
    }
    return;
  }
  var c = -3.4e38;
  for (var f = 0u; f < p.F; f++) { let k = r + f * p.I; c = max(c, max(x[k], xr[k])); }
  var S = 0.0; var Sr = 0.0; var K = 0.0; var dS = 0.0; var sdy = 0.0;
  for (var f = 0u; f < p.F; f++) {
    let k = r + f * p.I; let e = exp(x[k] - c); let er = exp(xr[k] - c);
    S += e; Sr += er; K += 0.5 * dy[k] * (e + er); sdy += dy[k];
    dS += secExp(x[k], xr[k], c) * (x[k] - xr[k]);
  }
  let u = 1.0 + dS / Sr;
  let L = select(log(u) / ((u - 1.0) * Sr), 1.0 / Sr, u == 1.0);
  for (var f = 0u; f < p.F; f++) {
    let k = r + f * p.I; let s = secExp(x[k], xr[k], c);
    store(k, select(s * (dy[k] * 0.5 * (1.0 / S + 1.0 / Sr) - K / (S * Sr)), dy[k] - sdy * L * s, LOG == 1u));
  }
}
