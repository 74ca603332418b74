// Winograd F(2x2, 3x3) for 3x3 stride-1 convs (Lavin & Gray 2016): per 2x2 output tile t and channels c -> k,
//   y[k, tile t] = A^T [ sum_c (G g[k,c] G^T) * (B^T d[c,t] B) ] A        (* element-wise over the 4x4 tile)
// 16 multiplies per tile and channel pair instead of 36. The sum over c is 16 GEMMs, one per tile position e:
// M[n,e,k,t] = sum_c U[e,c,k] V[n,e,c,t], run by conv2d.wgsl's conv2d_forward_1x1 with wrep = 16 (U = G g G^T is
// made once at load, src/model.ts winogradWeights). This family does the transforms around that GEMM:
//   winograd_input:  V[n,e,c,t] = (B^T d B)[e], d the 4x4 input patch of tile t (zeros outside the image)
//   winograd_output: y[n,k,2ty+i,2tx+j] = epilogue((A^T M[n,:,k,t] A)[i,j] + b[k]), the conv's fused residual and
//                    activation as in conv2d.wgsl
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   A^T = [1 1 1 0; 0 1 -1 -1]
// Bindings (conv2d's slots): input: x (N,C,H,W), y = V (N,16,C,T4); output: x = M (N,16,K,T4), b (KP), r, y (N,K,OH,OW).
// Tiles: TW = ceil(OW/2) per row, T = TW * ceil(OH/2), T4 = T rounded up for the GEMM's vec4 pixel tiles.
struct Params {
  N: u32, C: u32, H: u32, W: u32, K: u32, OH: u32, OW: u32, PT: u32,
  PL: u32, TW: u32, T: u32, T4: u32, act: u32, alpha: f32, beta: f32, res: u32, acc: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> r: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

override WG: u32 = 64;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// B^T v for a column (or row) v of the tile.
fn bt(v: vec4<f32>) -> vec4<f32> { return vec4<f32>(v.x - v.z, v.y + v.z, v.z - v.y, v.y - v.w); }

@compute @workgroup_size(WG)
fn winograd_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  var i = index(gid, nwg);
  if (i >= p.N * p.C * p.T) { return; }
  let t = i % p.T; i = i / p.T;
  let c = i % p.C; let n = i / p.C;
  let iy0 = i32(2u * (t / p.TW)) - i32(p.PT); let ix0 = i32(2u * (t % p.TW)) - i32(p.PL);
  let plane = (n * p.C + c) * p.H * p.W;
  var d: array<vec4<f32>, 4>; // d[row] = the patch's row, columns in x..w
  for (var a = 0u; a < 4u; a++) {
    let iy = iy0 + i32(a);
    var row = vec4<f32>(0.0);
    if (iy >= 0 && iy < i32(p.H)) {
      for (var j = 0u; j < 4u; j++) {
        let ix = ix0 + i32(j);
        if (ix >= 0 && ix < i32(p.W)) { row[j] = x[plane + u32(iy) * p.W + u32(ix)]; }
      }
    }
    d[a] = row;
  }
  // rows of B^T d, then B^T applied along each row: V = B^T d B
  let m = array<vec4<f32>, 4>(d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]);
  let base = n * 16u * p.C * p.T4 + c * p.T4 + t;
  for (var a = 0u; a < 4u; a++) {
    let v = bt(m[a]);
    for (var j = 0u; j < 4u; j++) { y[base + (4u * a + j) * p.C * p.T4] = v[j]; }
  }
}

// conv2d.wgsl's epilogue: fused residual and activation, and accumulation (p.acc).
fn epilogue(v: f32, i: u32) -> f32 {
  var s = v;
  if (p.res != 0u) { s += r[i]; }
  switch p.act {
    case 1u: { s = max(s, 0.0); }
    case 2u: { s = clamp(s, p.alpha, p.beta); }
    case 3u: { s = select(p.alpha * s, s, s > 0.0); }
    default: {}
  }
  if (p.acc != 0u) { s += y[i]; } // a backward-as-forward conv adding into a gradient
  return s;
}

@compute @workgroup_size(WG)
fn winograd_output(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  var i = index(gid, nwg);
  if (i >= p.N * p.K * p.T) { return; }
  let t = i % p.T; i = i / p.T;
  let k = i % p.K; let n = i / p.K;
  let base = n * 16u * p.K * p.T4 + k * p.T4 + t; let step = p.K * p.T4;
  var m: array<vec4<f32>, 4>;
  for (var a = 0u; a < 4u; a++) {
    m[a] = vec4<f32>(x[base + (4u * a) * step], x[base + (4u * a + 1u) * step], x[base + (4u * a + 2u) * step], x[base + (4u * a + 3u) * step]);
  }
  // A^T M A: rows first (s0 = m0 + m1 + m2, s1 = m1 - m2 - m3), then the same along each row
  let s = array<vec4<f32>, 2>(m[0] + m[1] + m[2], m[1] - m[2] - m[3]);
  let oy0 = 2u * (t / p.TW); let ox0 = 2u * (t % p.TW);
  for (var a = 0u; a < 2u; a++) {
    let v = vec2<f32>(s[a].x + s[a].y + s[a].z, s[a].y - s[a].z - s[a].w) + b[k];
    for (var j = 0u; j < 2u; j++) {
      let oy = oy0 + a; let ox = ox0 + j;
      if (oy < p.OH && ox < p.OW) { let o = ((n * p.K + k) * p.OH + oy) * p.OW + ox; y[o] = epilogue(v[j], o); }
    }
  }
}
