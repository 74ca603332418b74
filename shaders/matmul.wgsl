// Batched matrix product (src/ops/matmul.ts) y = a b per sample: a (.., M, K), b (.., K, P), y (.., M, P), the leading
// axes right-aligned into 4 slots (o: the output's; sa, sb: each operand's element stride per leading axis, 0 where it
// broadcasts; AS, BS: per-sample sizes, 0 for a constant, which every sample shares), YS = numel(y) per sample.
//   matmul_forward:  y[n, l, m, p] = sum_k a[n, l, m, k] b[n, l, k, p]       (one invocation per output element)
//   matmul_backward (WRT override: 0 a, 1 b; one invocation per element of that operand, leading shape u): gathers
//     over the output's leading positions that read it (every position of the axes where it broadcasts):
//       da[n, l, m, k] = sum_{l', p} dy[n, l', m, p] b~[n, l', k, p],   db[n, l, k, p] = sum_{l', m} a~[n, l', m, k] dy[n, l', m, p]
//     MODE 0 (gradient; guided too): a~ = a, b~ = b. MODE 2 (DeepLIFT): a~ = (a + a')/2, b~ = (b + b')/2 over the two
//     passes, so sum da (a - a') + sum db (b - b') = sum dy (y - y') exactly (ab - a'b' = a~(b - b') + (a - a')b~).
// Bindings: a, b; ar, br (the reference pass's; = a, b outside DeepLIFT); dy (N, YS); out (y, or the gradient of WRT).
struct Params { o: vec4<u32>, sa: vec4<u32>, sb: vec4<u32>, u: vec4<u32>, N: u32, M: u32, K: u32, P: u32, AS: u32, BS: u32, YS: u32, acc: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> ar: array<f32>;
@group(0) @binding(4) var<storage, read> br: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

override WG: u32 = 64;
override MODE: u32 = 0u;
override WRT: u32 = 0u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// leading coordinates of flat leading index l in shape s
fn coords(l: u32, s: vec4<u32>) -> vec4<u32> {
  return vec4<u32>(l / (s.y * s.z * s.w), (l / (s.z * s.w)) % s.y, (l / s.w) % s.z, l % s.w);
}
fn flat(c: vec4<u32>, s: vec4<u32>) -> u32 { return ((c.x * s.y + c.y) * s.z + c.z) * s.w + c.w; }

fn av(i: u32) -> f32 { return select(a[i], 0.5 * (a[i] + ar[i]), MODE == 2u); }
fn bv(i: u32) -> f32 { return select(b[i], 0.5 * (b[i] + br[i]), MODE == 2u); }

@compute @workgroup_size(WG)
fn matmul_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = index(gid, nwg);
  if (t >= p.N * p.YS) { return; }
  let n = t / p.YS; let r = t % p.YS;
  let q = r % p.P; let m = (r / p.P) % p.M; let c = coords(r / (p.M * p.P), p.o);
  let a0 = n * p.AS + dot(c, p.sa) + m * p.K; let b0 = n * p.BS + dot(c, p.sb) + q;
  var s = 0.0;
  for (var k = 0u; k < p.K; k++) { s += a[a0 + k] * b[b0 + k * p.P]; }
  out[t] = s;
}

@compute @workgroup_size(WG)
fn matmul_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  // the operand's own element: (row, col) = (m, k) of a or (k, q) of b, at leading coordinates cu of shape u
  let rows = select(p.M, p.K, WRT == 1u); let cols = select(p.K, p.P, WRT == 1u);
  let size = rows * cols * p.u.x * p.u.y * p.u.z * p.u.w;
  let t = index(gid, nwg);
  if (t >= p.N * size) { return; }
  let n = t / size; let r = t % size;
  let col = r % cols; let row = (r / cols) % rows; let cu = coords(r / (rows * cols), p.u);
  // leading axes where the operand broadcasts (size 1, the output larger) are summed over
  let span = select(vec4<u32>(1u), p.o, p.u != p.o);
  var s = 0.0;
  for (var i0 = 0u; i0 < span.x; i0++) { for (var i1 = 0u; i1 < span.y; i1++) {
    for (var i2 = 0u; i2 < span.z; i2++) { for (var i3 = 0u; i3 < span.w; i3++) {
      let c = select(cu, vec4<u32>(i0, i1, i2, i3), p.u != p.o);
      let y0 = n * p.YS + flat(c, p.o) * p.M * p.P;
      if (WRT == 0u) { // da[m = row, k = col] = sum_q dy[m, q] b~[k, q]
        let b0 = n * p.BS + dot(c, p.sb) + col * p.P;
        for (var q = 0u; q < p.P; q++) { s += dy[y0 + row * p.P + q] * bv(b0 + q); }
      } else {         // db[k = row, q = col] = sum_m a~[m, k] dy[m, q]
        let a0 = n * p.AS + dot(c, p.sa) + row;
        for (var m = 0u; m < p.M; m++) { s += av(a0 + m * p.K) * dy[y0 + m * p.P + col]; }
      }
    } }
  } }
  if (p.acc != 0u) { s += out[t]; }
  out[t] = s;
}
