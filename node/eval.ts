// `camgpu eval`: the papers' quantitative protocol over a folder of scenes with ground-truth boxes
// (data/scenes/boxes.json: [{file, class, boxes: [[x0,y0,x1,y1],...], multi}]). Per method: Average Drop % and
// Increase in Confidence % (Grad-CAM++), deletion and insertion AUC (RISE), pointing game and energy-based pointing
// game, and on multi-instance scenes the share of instances that receive a local maximum of the map.
// Every explanation targets the ground-truth class. Perturbed forwards run batched on the GPU.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Model, Plan } from '../src/model.js';
import { CancelledError, Explainer, softmax } from '../src/explain.js';
import { Method } from '../src/methods.js';
import { Box, blur, curve, dropIncrease, energyInBoxes, instancesWithPeak, masked, pointingHit, auc } from '../src/metrics.js';
import { Rgb, decodeImage, preprocess, Sidecar } from './image.js';

export interface Scene { file: string; class: number; boxes: Box[]; multi: boolean }
export interface EvalOptions { methods: Method[]; limit?: number; steps?: number; /** deletion/insertion on the first N scenes only (they cost 2*(steps+1) forwards per scene and method) */ aucLimit?: number; batch?: number; riseN?: number; onProgress?: (done: number, total: number) => void;
  /** Also return per-scene results, mean curves and the maps of the first `gallery` scenes (for the HTML report). */
  detail?: { gallery: number };
  /** stops between GPU batches (CancelledError) */ signal?: AbortSignal }
export interface MethodScores {
  avgDrop: number; increase: number; deletion: number; insertion: number; pointing: number; energy: number;
  /** multi-instance scenes: share of instances with a local maximum of the map */
  instances: number; msPerImage: number;
}
export interface EvalResult { scenes: number; multi: number; accuracy: number; methods: Record<string, MethodScores>; steps: number; aucScenes: number; seconds: number; detail?: EvalDetail }
/** Per-scene results (EvalOptions.detail): what the report shows beyond the means. */
export interface SceneResult {
  file: string; class: number; multi: boolean; boxes: Box[]; top1: number; prob: number;
  /** per method: pointing-game hit, the map's maximum [x, y], energy inside the boxes */
  hit: Record<string, boolean>; peak: Record<string, [number, number]>; energy: Record<string, number>;
}
export interface EvalDetail {
  layer: string; layerShape: number[]; input: number[];
  /** per method: the deletion and insertion curves (class probability after each step), averaged over the AUC scenes */
  curves: Record<string, { deletion: number[]; insertion: number[] }>;
  scenes: SceneResult[];
  /** the first `gallery` scenes: the preprocessed image (H,W,3 RGB, what the model saw) and every method's map (H,W) */
  gallery: { index: number; view: Rgb; maps: Record<string, Float32Array> }[];
}

export function readScenes(dir: string): Scene[] {
  let list: Scene[];
  try { list = JSON.parse(readFileSync(join(dir, 'boxes.json'), 'utf8')); } catch (e) { throw new Error(`${dir}/boxes.json: ${(e as Error).message}`); }
  if (!Array.isArray(list) || !list.every((s) => typeof s.file === 'string' && Number.isInteger(s.class) && Array.isArray(s.boxes)))
    throw new Error(`${dir}/boxes.json: expected [{file, class, boxes: [[x0,y0,x1,y1], ...], multi}]`);
  return list;
}

export async function evaluate(model: Model, side: Sidecar, dir: string, o: EvalOptions): Promise<EvalResult> {
  const t0 = performance.now(), [C, H, W] = model.inputShape, per = C * H * W, HW = H * W;
  const scenes = readScenes(dir).slice(0, o.limit ?? Infinity);
  const steps = o.steps ?? 224, step = HW / steps, B = o.batch ?? 16, aucN = Math.min(o.aucLimit ?? Infinity, scenes.length);
  const explainer = new Explainer(model);
  // a static plan computes its whole batch, so the forward passes use a plan sized to each request (cached; at most 64)
  const plans = new Map<number, Plan>();
  const forward = async (x: Float32Array, k: number) => {
    const out = new Float32Array(k * model.numClasses);
    for (let i = 0; i < k; i += 64) {
      const n = Math.min(64, k - i);
      if (o.signal?.aborted) throw new CancelledError('evaluation cancelled');
      if (!plans.has(n)) plans.set(n, await model.plan({ batch: n }));
      out.set((await plans.get(n)!.run(x.subarray(i * per, (i + n) * per))).logits, i * model.numClasses);
    }
    return out;
  };
  const sums: Record<string, { drop: number; inc: number; del: number; ins: number; pg: number; en: number; inst: number; nInst: number; ms: number }> = {};
  for (const m of o.methods) sums[m] = { drop: 0, inc: 0, del: 0, ins: 0, pg: 0, en: 0, inst: 0, nInst: 0, ms: 0 };
  let correct = 0;
  const G = o.detail ? Math.min(o.detail.gallery, scenes.length) : 0;
  const detail: EvalDetail | undefined = o.detail ? { layer: '', layerShape: [], input: [C, H, W], curves: {}, scenes: [], gallery: [] } : undefined;
  const curveSums: Record<string, { deletion: Float64Array; insertion: Float64Array }> = {};
  try {
    for (let s0 = 0; s0 < scenes.length; s0 += B) {
      const chunk = scenes.slice(s0, s0 + B), x = new Float32Array(chunk.length * per);
      const views: Rgb[] = [];
      chunk.forEach((s, i) => { const p = preprocess(decodeImage(readFileSync(join(dir, s.file)), s.file), H, W, side); x.set(p.x, i * per); views.push(p.view); });
      const e = await explainer.explain(x, { methods: o.methods, targets: chunk.map((s) => s.class), ...(o.riseN ? { rise: { n: o.riseN } } : {}), signal: o.signal });
      if (detail) { detail.layer = e.layer; detail.layerShape = e.layerShape; }
      // time per image per method: the fused gradient pass is shared by every gradient method
      const shared = (e.timings['gradient pass'] ?? 0) + (e.timings.remap ?? 0);
      for (const m of o.methods) sums[m].ms += (e.timings[m] ?? e.timings[m === 'guided-gradcam' ? 'guided' : ''] ?? 0) + shared;
      for (const [i, im] of e.images.entries()) {
        const s = chunk[i], xi = x.subarray(i * per, (i + 1) * per), Y = im.probs[s.class], blurred = blur(xi, C, H, W);
        if (im.topk[0].class === s.class) correct++;
        const masks = o.methods.map((m) => masked(xi, im.methods[m]!.map)), cat = new Float32Array(masks.length * per);
        masks.forEach((mk, j) => cat.set(mk, j * per));
        const lo = await forward(cat, masks.length);
        const sr: SceneResult | undefined = detail ? { file: s.file, class: s.class, multi: !!s.multi, boxes: s.boxes, top1: im.topk[0].class, prob: Y, hit: {}, peak: {}, energy: {} } : undefined;
        if (sr && s0 + i < G) detail!.gallery.push({ index: s0 + i, view: views[i], maps: Object.fromEntries(o.methods.map((m) => [m, im.methods[m]!.map])) });
        for (const [j, m] of o.methods.entries()) {
          const map = im.methods[m]!.map, acc = sums[m];
          const O = softmax(lo.subarray(j * model.numClasses, (j + 1) * model.numClasses))[s.class], di = Y > 0 ? dropIncrease(Y, O) : { drop: 0, increase: O > Y ? 1 : 0 };
          acc.drop += di.drop; acc.inc += di.increase;
          if (s0 + i < aucN) {
            const del = await curve('deletion', xi, map, s.class, [C, H, W], forward, { step, batch: 64 });
            const ins = await curve('insertion', xi, map, s.class, [C, H, W], forward, { step, batch: 64, blurred });
            acc.del += auc(del); acc.ins += auc(ins);
            if (detail) {
              const cs = (curveSums[m] ??= { deletion: new Float64Array(del.length), insertion: new Float64Array(ins.length) });
              del.forEach((v, q) => (cs.deletion[q] += v)); ins.forEach((v, q) => (cs.insertion[q] += v));
            }
          }
          const hit = pointingHit(map, W, s.boxes), energy = energyInBoxes(map, W, s.boxes);
          acc.pg += hit ? 1 : 0;
          acc.en += energy;
          if (sr) { let b = 0; for (let q = 1; q < map.length; q++) if (map[q] > map[b]) b = q; sr.hit[m] = hit; sr.peak[m] = [b % W, Math.floor(b / W)]; sr.energy[m] = energy; }
          if (s.multi) { acc.inst += instancesWithPeak(map, W, s.boxes) * s.boxes.length; acc.nInst += s.boxes.length; }
        }
        if (sr) detail!.scenes.push(sr);
      }
      o.onProgress?.(Math.min(s0 + B, scenes.length), scenes.length);
    }
  } finally { explainer.destroy(); for (const p of plans.values()) p.destroy(); }
  const n = scenes.length, methods: Record<string, MethodScores> = {};
  for (const m of o.methods) {
    const a = sums[m];
    methods[m] = { avgDrop: (100 * a.drop) / n, increase: (100 * a.inc) / n, deletion: a.del / aucN, insertion: a.ins / aucN, pointing: a.pg / n,
      energy: a.en / n, instances: a.nInst ? a.inst / a.nInst : NaN, msPerImage: a.ms / n };
  }
  if (detail) for (const [m, c] of Object.entries(curveSums)) detail.curves[m] = { deletion: Array.from(c.deletion, (v) => v / aucN), insertion: Array.from(c.insertion, (v) => v / aucN) };
  return { scenes: n, multi: scenes.filter((s) => s.multi).length, accuracy: correct / n, methods, steps, aucScenes: aucN, seconds: (performance.now() - t0) / 1000, ...(detail ? { detail } : {}) };
}

/** The results as a markdown table (arrows: which direction is better). */
export function markdown(r: EvalResult): string {
  const f = (v: number, d = 3) => (Number.isNaN(v) ? '-' : v.toFixed(d));
  const lines = ['| method | Avg Drop % ↓ | Increase % ↑ | deletion AUC ↓ | insertion AUC ↑ | pointing ↑ | energy ↑ | instances ↑ | ms/image |', '|---|---|---|---|---|---|---|---|---|'];
  for (const [m, s] of Object.entries(r.methods))
    lines.push(`| ${m} | ${f(s.avgDrop, 1)} | ${f(s.increase, 1)} | ${f(s.deletion)} | ${f(s.insertion)} | ${f(s.pointing)} | ${f(s.energy)} | ${f(s.instances)} | ${f(s.msPerImage, 1)} |`);
  return lines.join('\n');
}

/** Top-1 accuracy of the model over the scenes (single- and multi-instance separately), forward passes only. */
export async function accuracy(model: Model, side: Sidecar, dir: string, o: { limit?: number; batch?: number } = {}) {
  const [C, H, W] = model.inputShape, per = C * H * W, scenes = readScenes(dir).slice(0, o.limit ?? Infinity);
  const plan = await model.plan({ batch: o.batch ?? 64 }), hit = { single: 0, multi: 0 }, n = { single: 0, multi: 0 };
  try {
    for (let s0 = 0; s0 < scenes.length; s0 += plan.batch) {
      const chunk = scenes.slice(s0, s0 + plan.batch), x = new Float32Array(chunk.length * per);
      chunk.forEach((s, i) => x.set(preprocess(decodeImage(readFileSync(join(dir, s.file)), s.file), H, W, side).x, i * per));
      const logits = (await plan.run(x)).logits, F = model.numClasses;
      chunk.forEach((s, i) => {
        const l = logits.subarray(i * F, (i + 1) * F), top = l.indexOf(Math.max(...l)), k = s.multi ? 'multi' : 'single';
        n[k]++; if (top === s.class) hit[k]++;
      });
    }
  } finally { plan.destroy(); }
  return { single: hit.single / n.single, multi: hit.multi / n.multi, nSingle: n.single, nMulti: n.multi };
}
