// Resize / Upsample (src/ops/resize.ts builds the tables): separable interpolation of P planes of H x W to OH x OW.
//   resize_forward:  y[p, o, q] = sum_a sum_b wh[o, a] ww[q, b] x[p, ih[o, a], iw[q, b]]   (a < TH, b < TW; 1, 2 or 4 taps)
//   resize_backward: dx[p, i, j] = sum over the outputs (o, wh) reading row i and (q, ww) reading column j of wh ww dy[p, o, q]
//                    (a gather over the inverted tables, no atomics; linear, so every mode is this)
// Tables: tu (u32) = [ih (OH TH) | iw (OW TW) | row offsets (H + 1) | column offsets (W + 1) | row entries' o | column
// entries' q], tf (f32) = [wh (OH TH) | ww (OW TW) | row entries' weights | column entries' weights]; Params give where
// each part starts (fw: iw / ww, cho / cwo: the offsets, che / cwe: the entries in tu, chw / cww: their weights in tf).
struct Params { P: u32, H: u32, W: u32, OH: u32, OW: u32, TH: u32, TW: u32, acc: u32, fw: u32, cho: u32, cwo: u32, che: u32, cwe: u32, chw: u32, cww: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> tu: array<u32>;
@group(0) @binding(3) var<storage, read> tf: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

override WG: u32 = 256;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(WG)
fn resize_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.P * p.OH * p.OW) { return; }
  let q = i % p.OW; let o = (i / p.OW) % p.OH; let pl = i / (p.OW * p.OH);
  let base = pl * p.H * p.W;
  var s = 0.0;
  for (var a = 0u; a < p.TH; a++) {
    let ih = tu[o * p.TH + a]; let wh = tf[o * p.TH + a];
    var r = 0.0;
    for (var b = 0u; b < p.TW; b++) { r += tf[p.fw + q * p.TW + b] * x[base + ih * p.W + tu[p.fw + q * p.TW + b]]; }
    s += wh * r;
  }
  y[i] = s;
}

@compute @workgroup_size(WG)
fn resize_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = index(gid, nwg);
  if (i >= p.P * p.H * p.W) { return; }
  let j = i % p.W; let r = (i / p.W) % p.H; let pl = i / (p.W * p.H);
  let base = pl * p.OH * p.OW;
  var s = 0.0;
  for (var e = tu[p.cho + r]; e < tu[p.cho + r + 1u]; e++) {
    let o = tu[p.che + e]; let wh = tf[p.chw + e];
    var t = 0.0;
    for (var f = tu[p.cwo + j]; f < tu[p.cwo + j + 1u]; f++) { t += tf[p.cww + f] * dy[base + o * p.OW + tu[p.cwe + f]]; }
    s += wh * t;
  }
  if (p.acc != 0u) { s += dx[i]; }
  dx[i] = s;
}
