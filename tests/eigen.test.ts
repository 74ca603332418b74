// Eigen-CAM's principal component on the GPU (shaders/eigen.wgsl) against a float64 SVD (cyclic Jacobi on the Gram
// matrix, an algorithm independent of the kernel's power iteration), on activations with prescribed singular values
// (both Gram sides, a near-degenerate second singular value), batched in one plan; and the activation tensor is no
// longer read back for it. The target layer is input + 0 (exact in float32), so A is the image itself.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { GraphBuilder, mulberry32 } from '../src/builder.js';
import { Model } from '../src/model.js';
import { Explainer, eigenCam } from '../src/explain.js';
import { nodeGpu } from '../node/gpu.js';
import { relMax } from './helpers.js';

const test = suite('eigen');

/** Orthonormal vectors of length n (float64 Gram-Schmidt), the first `fixed` of them given. */
function orthonormal(r: () => number, n: number, count: number, fixed: Float64Array[] = []): Float64Array[] {
  const out: Float64Array[] = [];
  for (const f of fixed) out.push(f.map((x) => x / Math.hypot(...f)));
  while (out.length < fixed.length + count) {
    const v = Float64Array.from({ length: n }, () => r() * 2 - 1);
    for (let pass = 0; pass < 2; pass++) for (const u of out) { let d = 0; for (let i = 0; i < n; i++) d += u[i] * v[i]; for (let i = 0; i < n; i++) v[i] -= d * u[i]; }
    const nv = Math.hypot(...v);
    out.push(v.map((x) => x / nv));
  }
  return out.slice(fixed.length);
}

/** A (K,Z) = sum_r s_r a_r b_r^T + channel offsets, b_r orthogonal to the ones vector (so centring keeps the s_r). */
function prescribed(seed: number, K: number, Z: number, s: number[]): Float32Array {
  const r = mulberry32(seed), a = orthonormal(r, K, s.length), b = orthonormal(r, Z, s.length, [new Float64Array(Z).fill(1)]);
  const A = new Float32Array(K * Z);
  for (let k = 0; k < K; k++) {
    const c = r() * 2 - 1;
    for (let z = 0; z < Z; z++) { let v = c; s.forEach((sr, q) => { v += sr * a[q][k] * b[q][z]; }); A[k * Z + z] = v; }
  }
  return A;
}

/** Float64 oracle: centre, Gram X^T X (K,K), cyclic Jacobi to convergence, top eigenvector v1; raw = X v1 with the
 *  first entry of largest |value| positive; weights = v1 with that sign. */
function svdProjection(a: Float32Array, K: number, Z: number) {
  const X = new Float64Array(Z * K);
  for (let k = 0; k < K; k++) { let mu = 0; for (let z = 0; z < Z; z++) mu += a[k * Z + z]; mu /= Z; for (let z = 0; z < Z; z++) X[z * K + k] = a[k * Z + z] - mu; }
  const G = new Float64Array(K * K), V = new Float64Array(K * K);
  for (let i = 0; i < K; i++) { V[i * K + i] = 1; for (let j = 0; j < K; j++) { let s = 0; for (let z = 0; z < Z; z++) s += X[z * K + i] * X[z * K + j]; G[i * K + j] = s; } }
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let i = 0; i < K; i++) for (let j = i + 1; j < K; j++) off += G[i * K + j] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < K; p++) for (let q = p + 1; q < K; q++) {
      const gpq = G[p * K + q];
      if (Math.abs(gpq) < 1e-300) continue;
      const th = (G[q * K + q] - G[p * K + p]) / (2 * gpq), t = Math.sign(th || 1) / (Math.abs(th) + Math.sqrt(th * th + 1)), c = 1 / Math.sqrt(t * t + 1), s = t * c;
      for (let k = 0; k < K; k++) { const gkp = G[k * K + p], gkq = G[k * K + q]; G[k * K + p] = c * gkp - s * gkq; G[k * K + q] = s * gkp + c * gkq; }
      for (let k = 0; k < K; k++) { const gpk = G[p * K + k], gqk = G[q * K + k]; G[p * K + k] = c * gpk - s * gqk; G[q * K + k] = s * gpk + c * gqk; }
      for (let k = 0; k < K; k++) { const vkp = V[k * K + p], vkq = V[k * K + q]; V[k * K + p] = c * vkp - s * vkq; V[k * K + q] = s * vkp + c * vkq; }
    }
  }
  let top = 0;
  for (let i = 1; i < K; i++) if (G[i * K + i] > G[top * K + top]) top = i;
  const v = Float64Array.from({ length: K }, (_, k) => V[k * K + top]);
  const raw = Float64Array.from({ length: Z }, (_, z) => { let s = 0; for (let k = 0; k < K; k++) s += X[z * K + k] * v[k]; return s; });
  let big = 0;
  for (const x of raw) if (Math.abs(x) > Math.abs(big)) big = x;
  const sg = big < 0 ? -1 : 1;
  return { raw: raw.map((x) => sg * x), weights: v.map((x) => sg * x) };
}

async function identityModel(K: number, h: number, w: number) {
  const b = new GraphBuilder([K, h, w], 3);
  const A = b.as('target').add(b.input, b.constant(new Float32Array(K * h * w), [K, h, w]));
  const g = b.finish(b.linear(b.flatten(b.gap(A)), 4));
  return { model: await Model.load(await nodeGpu(), g, `eigen-${K}x${h}x${w}`), A };
}

// [K, h, w, singular values per image]: Z > K (Gram X^T X) and Z < K (Gram X X^T); the last image of each has
// sigma2 / sigma1 = 0.999 (eigenvalue ratio 0.998: 500 plain power steps leave 37% of the second component).
const CASES: [number, number, number, number[][]][] = [
  [12, 6, 7, [[3, 1, 0.5, 0.2], [2, 1.9, 1], [1, 0.999, 0.3]]],
  [48, 4, 5, [[5, 2, 1], [1, 0.9, 0.5, 0.1], [2, 1.998, 0.7]]],
];

for (const [K, h, w, sv] of CASES) test(`eigencam GPU = float64 SVD, ${sv.length} images of A ${K}x${h}x${w} (Z=${h * w}) in one plan`, async () => {
  const Z = h * w, { model, A } = await identityModel(K, h, w);
  const x = new Float32Array(sv.length * K * Z);
  sv.forEach((s, i) => x.set(prescribed(100 + i, K, Z, s), i * K * Z));
  const ex = new Explainer(model);
  try {
    const r = await ex.explain(x, { layer: A, methods: ['eigencam'], batch: sv.length });
    r.images.forEach((img, i) => {
      const a = x.subarray(i * K * Z, (i + 1) * K * Z), want = svdProjection(a, K, Z), got = img.methods.eigencam!;
      const eRaw = relMax(got.raw, want.raw), eW = relMax(got.weights!, want.weights), host = eigenCam(a, K, Z), eHost = relMax(host.raw, want.raw);
      console.log(`  ${K}x${h}x${w} s=${sv[i].join(',')}: GPU raw ${eRaw.toExponential(1)} weights ${eW.toExponential(1)}; host float64 power iteration raw ${eHost.toExponential(1)}`);
      assert.ok(eRaw <= 1e-4, `image ${i} raw error ${eRaw}`);
      assert.ok(eW <= 1e-4, `image ${i} weights error ${eW}`);
    });
  } finally { ex.destroy(); model.destroy(); }
});

test('eigencam reads no activation back (Score-CAM still does)', async () => {
  const { model, A } = await identityModel(8, 4, 4);
  const ex = new Explainer(model);
  try {
    const x = prescribed(7, 8, 16, [1, 0.5]);
    const readsOf = async (methods: ('eigencam' | 'scorecam')[]) => {
      await ex.explain(x, { layer: A, methods });
      const plans = (ex as unknown as { plans: Map<string, Promise<{ plan: { desc: { reads: { name: string; kind: string }[] } } }>> }).plans;
      const all = await Promise.all(plans.values());
      return all[all.length - 1].plan.desc.reads.filter((q) => q.kind === 'value' && q.name === A).length;
    };
    assert.is(await readsOf(['eigencam']), 0);
    assert.is(await readsOf(['eigencam', 'scorecam']), 1);
  } finally { ex.destroy(); model.destroy(); }
});

test.run();
