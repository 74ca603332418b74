// The fused CAM epilogue attached to the gradient plan (shaders/cam.wgsl): every requested weight row and raw map from
// one read of A and dy/dA, Eigen-CAM's principal component (shaders/eigen.wgsl), then ReLU, min-max and the bilinear
// resize, all in the gradient pass's submit.
import { ModelError } from '../graph.js';
import type { Plan, Step } from '../model.js';
import { CAM_ROWS, CAM_SLOTS, METHODS, Method } from '../methods.js';
import type { ExplainOptions } from './types.js';

export class CamEpilogue {
  private wts!: GPUBuffer; private raw!: GPUBuffer; private maps!: GPUBuffer; private eigenWts?: GPUBuffer;
  private mapSteps: Step[] = [];
  /** slots: the raw slots of the maps to compute, in output order. */
  constructor(readonly plan: Plan, readonly A: string, readonly aShape: number[], readonly out: [number, number], readonly slots: number[], readonly o: ExplainOptions, readonly lift: boolean) {}

  async attach() {
    const p = this.plan, N = p.batch, [K, h, w] = this.aShape, Z = h * w, [H, W] = this.out, S = this.slots.length;
    const norm = this.o.normalize ?? 'before', relu = this.o.relu === false ? 0 : 1, corners = this.o.resize === 'bilinear-corners' ? 1 : 0;
    const wBytes = N * CAM_ROWS * K * 4, rBytes = N * CAM_SLOTS * Z * 4, mBytes = (N * S * H * W + N * S * 2) * 4;
    this.wts = p.alloc('cam.weights', wBytes);
    this.raw = p.alloc('cam.raw', rBytes);
    this.maps = p.alloc('cam.maps', mBytes);
    const sel = p.alloc('cam.sel', Math.max(S, 1) * 4, GPUBufferUsage.STORAGE, Uint32Array.from(this.slots));
    const m = this.lift ? p.gradBuf(this.A, 1) : p.gradBuf(this.A, 0);
    const bufs = { A: p.buf(this.A), g: p.gradBuf(this.A, 0), m, sel, wts: this.wts, raw: this.raw, maps: this.maps };
    const params = { N, K, Z, h, w, H, W, NSEL: S };
    const base = { R: CAM_ROWS, S: CAM_SLOTS, PPNORM: this.o.gradcamPP === 'normalized' ? 1 : 0, RELU: relu, NORM: norm === 'before' ? 1 : 0, CORNERS: corners, SRC: 0 };
    const step = (entry: string, label: string, threads: number, extra: Record<string, number> = {}) => p.step('cam', entry, { ...base, ...extra }, label, params, bufs, threads);
    const weightStep = step('cam_weights', 'cam.weights', N * K);
    this.mapSteps = [step('cam_raw', 'cam.raw', N * Z)];
    if (norm === 'before') this.mapSteps.push(step('cam_minmax', 'cam.minmax', N * S * 64));
    this.mapSteps.push(step('cam_resize', 'cam.resize', N * S * H * W));
    if (norm === 'after') this.mapSteps.push(step('cam_minmax', 'cam.minmax_after', N * S * 64, { SRC: 1, NORM: 0 }), step('cam_normalize', 'cam.normalize', N * S * H * W, { NORM: 0 }));
    const eigen = this.slots.includes(METHODS.eigencam.slot!) ? this.eigenSteps() : [];
    const reads = [{ name: 'cam.weights', src: this.wts, bytes: wBytes }, { name: 'cam.raw', src: this.raw, bytes: rBytes },
      { name: 'cam.maps', src: this.maps, bytes: mBytes, perRow: false }];
    if (this.eigenWts) reads.push({ name: 'eigen.weights', src: this.eigenWts, bytes: N * K * 4 });
    await p.epilogue([weightStep, ...eigen, ...this.mapSteps], reads);
  }

  /** Eigen-CAM's dispatches (shaders/eigen.wgsl): the centred activation, the smaller Gram matrix, SQ squarings, the power
   *  iteration writing raw slot eigencam and its weights (N,K). */
  private eigenSteps(): Step[] {
    const p = this.plan, N = p.batch, [K, h, w] = this.aShape, Z = h * w, D = Math.min(Z, K), GRAM = Z <= K ? 0 : 1;
    if (D > EIGEN_MAXD) throw new ModelError(`eigencam at '${this.A}' (${K}x${h}x${w}): the smaller side of the ${Z}x${K} activation matrix is ${D}, over eigen.wgsl's limit of ${EIGEN_MAXD}`);
    const xc = p.alloc('eigen.xc', N * K * Z * 4), g0 = p.alloc('eigen.gram0', N * D * D * 4), g1 = p.alloc('eigen.gram1', N * D * D * 4);
    this.eigenWts = p.alloc('eigen.weights', N * K * 4);
    const params = { N, K, Z, D, S: CAM_SLOTS, SLOT: METHODS.eigencam.slot! };
    const A = p.buf(this.A), raw = this.raw, wts = this.eigenWts;
    const step = (entry: string, label: string, bind: Record<string, GPUBuffer>, threads: number) => p.step('eigen', entry, { GRAM }, label, params, bind, threads);
    const steps = [step('eigen_mean', 'eigen.mean', { A, xc }, N * K), step('eigen_gram', 'eigen.gram', { xc, dst: g0 }, N * D * D)];
    for (let i = 0; i < EIGEN_SQUARINGS; i++) steps.push(step('eigen_square', `eigen.square${i}`, i % 2 ? { src: g1, dst: g0 } : { src: g0, dst: g1 }, N * D * D));
    steps.push(step('eigen_power', 'eigen.power', { xc, src: EIGEN_SQUARINGS % 2 ? g1 : g0, raw, wts }, N * 64));
    return steps;
  }

  /** Writes runner-computed weight rows and raw slots for k rows, then re-runs the map kernels. */
  remap(k: number, weights: Map<Method, Float32Array[]>, raws: Map<Method, Float32Array[]>) {
    this.plan.live(); // no writes into the buffers of a lost device
    const dev = this.plan.model.device, [K, h, w] = this.aShape, Z = h * w;
    for (let i = 0; i < k; i++) {
      for (const [m, rs] of raws) dev.queue.writeBuffer(this.raw, (i * CAM_SLOTS + METHODS[m].slot!) * Z * 4, rs[i] as Float32Array<ArrayBuffer>);
      for (const [m, ws] of weights) dev.queue.writeBuffer(this.wts, (i * CAM_ROWS + METHODS[m].row!) * K * 4, ws[i] as Float32Array<ArrayBuffer>);
    }
    return this.plan.rerun(this.mapSteps, ['cam.weights', 'cam.raw', 'cam.maps']);
  }
}

/** eigen.wgsl: the largest Gram side (MAXD) and the squarings before its power iteration. */
const EIGEN_MAXD = 1024;
const EIGEN_SQUARINGS = 4;

/** The fused kernel's fixed order (shaders/cam.wgsl header): the table's rows and slots must match it. */
const KERNEL_ROWS: Method[] = ['gradcam', 'gradcam-neg', 'gradcam++', 'xgradcam', 'liftcam', 'cam', 'fem'];
const KERNEL_SLOTS: Method[] = ['layercam', 'hirescam', 'gradcam-elementwise'];
/** Throws if src/methods.ts and shaders/cam.wgsl disagree (checked by tests/methods.test.ts and before every attach). */
export function checkCamLayout() {
  KERNEL_ROWS.forEach((m, r) => { if (METHODS[m].row !== r || !METHODS[m].fused) throw new Error(`methods table: ${m} must be fused weight row ${r} of cam.wgsl`); });
  KERNEL_SLOTS.forEach((m, j) => { if (METHODS[m].slot !== CAM_ROWS + j || !METHODS[m].fused) throw new Error(`methods table: ${m} must be fused raw slot ${CAM_ROWS + j} (rows + ${j}) of cam.wgsl`); });
  for (const m of Object.keys(METHODS) as Method[]) {
    const e = METHODS[m];
    if (e.row !== undefined && e.slot !== e.row) throw new Error(`methods table: ${m}'s raw slot must equal its weight row`);
    if (e.fused && !KERNEL_ROWS.includes(m) && !KERNEL_SLOTS.includes(m)) throw new Error(`methods table: ${m} is marked fused but cam.wgsl does not compute it`);
  }
  if (METHODS.eigencam.slot !== CAM_ROWS + KERNEL_SLOTS.length || METHODS.eigencam.fused || METHODS.eigencam.runner) throw new Error(`methods table: eigencam must be raw slot ${CAM_ROWS + KERNEL_SLOTS.length}, written by eigen.wgsl in the epilogue (no runner)`);
  if (CAM_SLOTS > 16) throw new Error(`cam.wgsl accumulates at most 16 raw slots; the table has ${CAM_SLOTS}`);
}

/** Eigen-CAM on the host in float64 (the GPU's reference in tests): A (K,Z) -> projection of the centred (Z,K) matrix on its first right singular vector, via the Z x Z Gram matrix. */
export function eigenCam(a: Float32Array, K: number, Z: number): { raw: Float32Array; weights: Float32Array } {
  const X = new Float64Array(Z * K); // centred (Z,K)
  for (let k = 0; k < K; k++) {
    let mu = 0;
    for (let z = 0; z < Z; z++) mu += a[k * Z + z];
    mu /= Z;
    for (let z = 0; z < Z; z++) X[z * K + k] = a[k * Z + z] - mu;
  }
  const G = new Float64Array(Z * Z);
  for (let i = 0; i < Z; i++) for (let j = i; j < Z; j++) { let s = 0; for (let k = 0; k < K; k++) s += X[i * K + k] * X[j * K + k]; G[i * Z + j] = G[j * Z + i] = s; }
  // power iteration on G (symmetric PSD): u -> top eigenvector; projection = X v1 = sigma u
  let u = new Float64Array(Z).map((_, i) => 1 + ((i * 7919) % 13) / 13), lambda = 0;
  for (let it = 0; it < 500; it++) {
    const v = new Float64Array(Z);
    for (let i = 0; i < Z; i++) { let s = 0; for (let j = 0; j < Z; j++) s += G[i * Z + j] * u[j]; v[i] = s; }
    const nrm = Math.hypot(...v);
    if (nrm === 0) break;
    const next = v.map((x) => x / nrm), diff = next.reduce((s, x, i) => s + Math.abs(x - u[i]), 0);
    u = next;
    lambda = nrm;
    if (diff < 1e-13) break;
  }
  const sigma = Math.sqrt(lambda);
  let big = 0;
  for (let i = 0; i < Z; i++) if (Math.abs(u[i]) > Math.abs(big)) big = u[i];
  const sign = big < 0 ? -1 : 1;
  const raw = Float32Array.from(u, (x) => sign * sigma * x);
  const weights = new Float32Array(K); // v1 = X^T u / sigma
  if (sigma > 0) for (let k = 0; k < K; k++) { let s = 0; for (let z = 0; z < Z; z++) s += X[z * K + k] * u[z]; weights[k] = sign * s / sigma; }
  return { raw, weights };
}
