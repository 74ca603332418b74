// The memory soak shared by tests/memory.test.ts (a reduced run in CI) and tools/soak.mjs (the full one): N
// explanations with mixed methods on one loaded model, then M load / explain / destroy cycles, sampling the Gpu's
// live bytes (src/gpu.ts ledgers) and the process RSS after a forced GC.
import { readFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { Model } from '../src/model.js';
import { Explainer, type ExplainOptions } from '../src/explain.js';
import type { Gpu } from '../src/gpu.js';
import { FAST_METHODS } from '../src/methods.js';
import { fixtureDir, npy } from './helpers.js';

export const SOAK_MODEL = 'resnet'; // tests/fixtures/resnet: 3x64x64, target layer 32x8x8, 10 classes
export const modelBytes = () => readFileSync(`${fixtureDir(SOAK_MODEL)}/model.onnx`);

/** The rotation of requests: every method family, perturbation ones at small settings, varied targets and sizes. */
let images: Float32Array | null = null;
export function request(i: number): { images: Float32Array; o: ExplainOptions } {
  const x = (images ??= npy(SOAK_MODEL, 'x.npy').data), per = x.length / 2;
  const one = x.subarray((i % 2) * per, (i % 2 + 1) * per);
  switch (i % 6) {
    case 0: return { images: one, o: { methods: 'fast' } };
    case 1: return { images: one, o: { methods: ['scorecam', 'gradcam'], targets: [i % 10] } };
    case 2: return { images: x, o: { methods: ['ablationcam', 'liftcam'], targets: { topk: 2 } } };
    case 3: return { images: one, o: { methods: ['rise'], rise: { n: 16, seed: i } } };
    case 4: return { images: x, o: { methods: ['deeplift', 'guided', 'saliency', 'guided-gradcam'] } };
    default: return { images: one, o: { methods: 'all', rise: { n: 8 } } };
  }
}

const gc: () => void = (() => { setFlagsFromString('--expose-gc'); return runInNewContext('gc') as () => void; })();
/** RSS in MB after two forced GCs (what the process holds, not garbage waiting for a collection). */
export function rssMB(): number {
  gc(); gc();
  return process.memoryUsage().rss / 2 ** 20;
}

export interface Sample { done: number; gpuLive: number; modelBytes: number; rss: number }

/** n explanations on one model; `warm` rounds of the rotation first (every plan built), then a sample every `every`. */
export async function explainSoak(gpu: Gpu, n: number, every: number, warm = 6, onSample?: (s: Sample) => void) {
  const model = await Model.load(gpu, modelBytes(), SOAK_MODEL), ex = new Explainer(model);
  try {
    for (let i = 0; i < warm; i++) { const r = request(i); await ex.explain(r.images, r.o); }
    const samples: Sample[] = [];
    const sample = (done: number) => {
      const s = { done, gpuLive: gpu.liveBytes, modelBytes: model.gpuBytes, rss: rssMB() };
      samples.push(s);
      onSample?.(s);
    };
    sample(0);
    const flat: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = request(i), e = await ex.explain(r.images, r.o);
      // every call after warm-up holds exactly what the first sample held (checked on every call, not only at samples)
      if (e.memory.gpuLive !== samples[0].gpuLive || e.memory.model !== samples[0].modelBytes) flat.push(`call ${i}: ${e.memory.gpuLive} live, ${e.memory.model} model`);
      if ((i + 1) % every === 0) sample(i + 1);
    }
    return { samples, notFlat: flat, plans: model.planCount };
  } finally { ex.destroy(); model.destroy(); }
}

/** m cycles of load, one explanation (the fast methods and Score-CAM), destroy; the live bytes before and after each. */
export async function cycleSoak(gpu: Gpu, m: number, every: number, onSample?: (s: Sample) => void) {
  const before = gpu.liveBytes, samples: Sample[] = [], off: string[] = [];
  for (let i = 0; i < m; i++) {
    const model = await Model.load(gpu, modelBytes(), SOAK_MODEL), ex = new Explainer(model);
    let held = 0;
    try {
      const r = request(0);
      await ex.explain(r.images, { methods: [...FAST_METHODS, 'scorecam'] });
      held = model.gpuBytes;
    } finally { ex.destroy(); model.destroy(); }
    if (gpu.liveBytes !== before) off.push(`cycle ${i}: ${gpu.liveBytes} live bytes after destroy, ${before} before the first load`);
    if (i === 0 || (i + 1) % every === 0) {
      const s = { done: i + 1, gpuLive: gpu.liveBytes, modelBytes: held, rss: rssMB() };
      samples.push(s);
      onSample?.(s);
    }
  }
  return { before, samples, off };
}
