// Backward seed at the logits, chosen on the GPU so one submit covers forward, seed and backward.
//   Row n's class: cls[n] >= 0 is that class; cls[n] = -(r+1) is the r-th largest logit (top-1 is -1).
//   PROB = 0: seed = one-hot(c)  (target score = the logit y_c)
//   PROB = 1: seed_j = p_c (delta_jc - p_j)  (target score = softmax probability p_c, chain rule through softmax)
// Bindings: logits (N,F), cls (N) i32, seed (N,F) out, chosen (N) i32 out. One invocation per row.
struct Params { N: u32, F: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> cls: array<i32>;
@group(0) @binding(3) var<storage, read_write> seed: array<f32>;
@group(0) @binding(4) var<storage, read_write> chosen: array<i32>;

override WG: u32 = 64;
override PROB: u32 = 0u;

@compute @workgroup_size(WG)
fn seed_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  if (n >= p.N) { return; }
  let r = n * p.F;
  var c = cls[n];
  if (c < 0) { // rank -(c+1): walk down the order (larger logit first, earlier index on ties) one step per rank
    var prev = -1;
    for (var t = 0u; t <= u32(-c - 1); t++) {
      var best = -1;
      for (var j = 0u; j < p.F; j++) {
        let lj = logits[r + j];
        let belowPrev = prev < 0 || lj < logits[r + u32(prev)] || (lj == logits[r + u32(prev)] && i32(j) > prev);
        if (belowPrev && (best < 0 || lj > logits[r + u32(best)])) { best = i32(j); }
      }
      prev = best;
    }
    c = prev;
  }
  chosen[n] = c;
  var m = -3.4e38;
  for (var j = 0u; j < p.F; j++) { m = max(m, logits[r + j]); }
  var s = 0.0;
  for (var j = 0u; j < p.F; j++) { s += exp(logits[r + j] - m); }
  let pc = exp(logits[r + u32(c)] - m) / s;
  for (var j = 0u; j < p.F; j++) {
    let one = select(0.0, 1.0, j == u32(c));
    if (PROB == 0u) { seed[r + j] = one; }
    else { seed[r + j] = pc * (one - exp(logits[r + j] - m) / s); }
  }
}
