// `camgpu eval`: the papers' quantitative protocol over a folder of scenes with ground-truth boxes
// (data/scenes/boxes.json: [{file, class, boxes: [[x0,y0,x1,y1],...], multi}]). Per method: Average Drop % and
// Increase in Confidence % (Grad-CAM++), deletion and insertion AUC (RISE), pointing game and energy-based pointing
// game, and on multi-instance scenes the share of instances that receive a local maximum of the map.
// Every explanation targets the ground-truth class. Perturbed forwards run batched on the GPU.
import { join } from 'node:path';
import { Model, Plan } from '../src/model.js';
import { CancelledError, Explainer, softmax } from '../src/explain.js';
import { Method } from '../src/methods.js';
import { Box, blur, curve, dropIncrease, energyInBoxes, instancesWithPeak, masked, pointingHit, auc } from '../src/metrics.js';
import { ImageLimits, Rgb, decodeImage, preprocess, readImage, Sidecar } from './image.js';
import { pathKind, readRegular } from './files.js';

/** A scene list or scene file that cannot be used; the message names it. */
export class EvalError extends Error { constructor(message: string) { super(message); this.name = 'EvalError'; } }

export interface Scene { file: string; class: number; boxes: Box[]; multi: boolean }
export interface EvalOptions { methods: Method[]; limit?: number; steps?: number; /** deletion/insertion on the first N scenes only (they cost 2*(steps+1) forwards per scene and method) */ aucLimit?: number; batch?: number; riseN?: number; onProgress?: (done: number, total: number) => void;
  /** Also return per-scene results, mean curves and the maps of the first `gallery` scenes (for the HTML report). */
  detail?: { gallery: number };
  /** stops between GPU batches (CancelledError) */ signal?: AbortSignal;
  /** the pixel limit of the scenes (node/image.ts) */ limits?: ImageLimits }
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

/**
 * The scenes of dir/boxes.json, every entry checked: a file that is a regular file in dir, a class in [0, classes),
 * at least one box of four finite numbers with x0 < x1 and y0 < y1, multi a boolean (optional). An empty list is an
 * error (the scores of no scene are NaN).
 */
export function readScenes(dir: string, classes = Infinity): Scene[] {
  const path = join(dir, 'boxes.json'), bad = (why: string): never => { throw new EvalError(`${path}: ${why}`); };
  const kind = pathKind(dir);
  if (kind !== 'directory') throw new EvalError(`--data '${dir}': ${kind === null ? 'no such folder' : 'not a folder'}`);
  let list: unknown;
  const text = new TextDecoder().decode(readRegular(path, 'scene list', 2 ** 28));
  try { list = JSON.parse(text); } catch { bad('not valid JSON'); }
  if (!Array.isArray(list)) return bad('expected a list [{file, class, boxes: [[x0,y0,x1,y1], ...], multi}]');
  if (!list.length) bad('the list of scenes is empty');
  return list.map((s: Record<string, unknown>, i: number) => {
    const at = `scene ${i}${s && typeof s.file === 'string' ? ` ('${s.file.slice(0, 80)}')` : ''}`;
    if (!s || typeof s !== 'object' || Array.isArray(s)) bad(`${at}: expected {file, class, boxes, multi}`);
    if (typeof s.file !== 'string' || !s.file) bad(`${at}: 'file' must be a file name`);
    if (!Number.isInteger(s.class) || (s.class as number) < 0 || (s.class as number) >= classes) bad(`${at}: 'class' must be an integer in [0, ${classes}), got ${JSON.stringify(s.class)}`);
    if (!Array.isArray(s.boxes) || !s.boxes.length) bad(`${at}: 'boxes' must be a non-empty list of [x0, y0, x1, y1]`);
    (s.boxes as unknown[]).forEach((b, k) => {
      const ok = Array.isArray(b) && b.length === 4 && b.every((v) => typeof v === 'number' && Number.isFinite(v)) && b[0] < b[2] && b[1] < b[3];
      if (!ok) bad(`${at}: box ${k} ${JSON.stringify(b).slice(0, 60)} must be four finite numbers [x0, y0, x1, y1] with x0 < x1 and y0 < y1`);
    });
    if (s.multi !== undefined && typeof s.multi !== 'boolean') bad(`${at}: 'multi' must be true or false`);
    const f = join(dir, s.file as string), k = pathKind(f);
    if (k !== 'file') throw new EvalError(`${path}: ${at}: '${f}' ${k === null ? 'does not exist' : k === 'directory' ? 'is a directory' : 'is not a regular file'}`);
    return { file: s.file as string, class: s.class as number, boxes: s.boxes as Box[], multi: s.multi === true };
  });
}

/** The settings that decide an evaluation's numbers, resolved (a single run, a shard and a queue job carry the same). */
export interface EvalSettings { methods: Method[]; scenes: number; steps: number; aucN: number; batch: number; riseN?: number;
  /** the conv tile per layer shape (shard.ts convTiles) and the scene list's sha256 (scenesHash): set by the CLI, hashed */
  tiles?: Record<string, string>; data?: string }
/** One method's terms for one scene; aggregate() sums them in scene order. */
export interface SceneTerms { drop: number; inc: number; del?: number; ins?: number; pg: number; en: number; inst?: number; nInst?: number }
/**
 * One scene's contribution, keyed by its index in the run's scene list: what a batch returns, a queue job sends back
 * and a shard file holds. `ms` (per method, the batch's GPU time) is on the first scene of each batch only.
 */
export interface SceneRecord { index: number; file: string; correct: boolean; multi: boolean; terms: Record<string, SceneTerms>; ms?: Record<string, number>;
  /** with EvalOptions.detail (single-process runs; in memory only): what the report shows of this scene */
  detail?: { scene: SceneResult; layer: string; layerShape: number[]; curves: Record<string, { deletion: Float32Array; insertion: Float32Array }>; gallery?: { view: Rgb; maps: Record<string, Float32Array> } } }

export function evalSettings(o: EvalOptions, scenes: number, ident: Pick<EvalSettings, 'tiles' | 'data'> = {}): EvalSettings {
  return { methods: [...o.methods], scenes, steps: o.steps ?? 224, aucN: Math.min(o.aucLimit ?? Infinity, scenes), batch: o.batch ?? 16, ...(o.riseN ? { riseN: o.riseN } : {}), ...ident };
}

/** Scene index ranges [start, end) of the run's batches: the unit that a single run, a shard and a queue job explain at once. */
export function sceneBatches(s: EvalSettings): [number, number][] {
  const r: [number, number][] = [];
  for (let s0 = 0; s0 < s.scenes; s0 += s.batch) r.push([s0, Math.min(s0 + s.batch, s.scenes)]);
  return r;
}

/**
 * Explains batches of scenes and scores them, one explainer and plan cache for all batches. A batch is the same set of
 * scenes (same GPU calls) in a single run, a shard and a queue worker, so its records are the same numbers wherever it runs.
 */
export class EvalRunner {
  private explainer: Explainer; private plans = new Map<number, Plan>();
  constructor(readonly model: Model, readonly side: Sidecar, readonly s: EvalSettings, readonly o: { detail?: { gallery: number }; signal?: AbortSignal; limits?: ImageLimits } = {}) { this.explainer = new Explainer(model); }

  // a static plan computes its whole batch, so the forward passes use a plan sized to each request (cached; at most 64)
  private forward = async (x: Float32Array, k: number) => {
    const model = this.model, [C, H, W] = model.inputShape, per = C * H * W, out = new Float32Array(k * model.numClasses);
    for (let i = 0; i < k; i += 64) {
      const n = Math.min(64, k - i);
      if (this.o.signal?.aborted) throw new CancelledError('evaluation cancelled');
      if (!this.plans.has(n)) this.plans.set(n, await model.plan({ batch: n }));
      out.set((await this.plans.get(n)!.run(x.subarray(i * per, (i + n) * per))).logits, i * model.numClasses);
    }
    return out;
  };

  /** One batch: scenes[i] is scene `first + i` of the run, bytes[i] its image file. */
  async run(first: number, scenes: Scene[], bytes: Uint8Array[]): Promise<SceneRecord[]> {
    const { model, side, s: st } = this, [C, H, W] = model.inputShape, per = C * H * W, step = (H * W) / st.steps, methods = st.methods;
    const x = new Float32Array(scenes.length * per), views: Rgb[] = [], detail = this.o.detail;
    scenes.forEach((s, i) => { const p = preprocess(decodeImage(bytes[i], s.file, this.o.limits), H, W, side, s.file, this.o.limits); x.set(p.x, i * per); views.push(p.view); });
    const e = await this.explainer.explain(x, { methods, targets: scenes.map((s) => s.class), ...(st.riseN ? { rise: { n: st.riseN } } : {}), signal: this.o.signal });
    // time per image per method: the fused gradient pass is shared by every gradient method
    const shared = (e.timings['gradient pass'] ?? 0) + (e.timings.remap ?? 0), ms: Record<string, number> = {};
    for (const m of methods) ms[m] = (e.timings[m] ?? e.timings[m === 'guided-gradcam' ? 'guided' : ''] ?? 0) + shared;
    const records: SceneRecord[] = [];
    for (const [i, im] of e.images.entries()) {
      const s = scenes[i], index = first + i, xi = x.subarray(i * per, (i + 1) * per), Y = im.probs[s.class], blurred = blur(xi, C, H, W);
      const masks = methods.map((m) => masked(xi, im.methods[m]!.map)), cat = new Float32Array(masks.length * per);
      masks.forEach((mk, j) => cat.set(mk, j * per));
      const lo = await this.forward(cat, masks.length), terms: Record<string, SceneTerms> = {};
      const d: SceneRecord['detail'] = detail ? { scene: { file: s.file, class: s.class, multi: !!s.multi, boxes: s.boxes, top1: im.topk[0].class, prob: Y, hit: {}, peak: {}, energy: {} },
        layer: e.layer, layerShape: e.layerShape, curves: {},
        ...(index < detail.gallery ? { gallery: { view: views[i], maps: Object.fromEntries(methods.map((m) => [m, im.methods[m]!.map])) } } : {}) } : undefined;
      for (const [j, m] of methods.entries()) {
        const map = im.methods[m]!.map;
        const O = softmax(lo.subarray(j * model.numClasses, (j + 1) * model.numClasses))[s.class], di = Y > 0 ? dropIncrease(Y, O) : { drop: 0, increase: O > Y ? 1 : 0 };
        const t: SceneTerms = { drop: di.drop, inc: di.increase, pg: pointingHit(map, W, s.boxes) ? 1 : 0, en: energyInBoxes(map, W, s.boxes) };
        if (index < st.aucN) {
          const del = await curve('deletion', xi, map, s.class, [C, H, W], this.forward, { step, batch: 64 });
          const ins = await curve('insertion', xi, map, s.class, [C, H, W], this.forward, { step, batch: 64, blurred });
          t.del = auc(del); t.ins = auc(ins);
          if (d) d.curves[m] = { deletion: del, insertion: ins };
        }
        if (d) { let b = 0; for (let q = 1; q < map.length; q++) if (map[q] > map[b]) b = q; d.scene.hit[m] = t.pg === 1; d.scene.peak[m] = [b % W, Math.floor(b / W)]; d.scene.energy[m] = t.en; }
        if (s.multi) { t.inst = instancesWithPeak(map, W, s.boxes) * s.boxes.length; t.nInst = s.boxes.length; }
        terms[m] = t;
      }
      records.push({ index, file: s.file, correct: im.topk[0].class === s.class, multi: !!s.multi, terms, ...(i === 0 ? { ms } : {}), ...(d ? { detail: d } : {}) });
    }
    return records;
  }

  destroy() { this.explainer.destroy(); for (const p of this.plans.values()) p.destroy(); this.plans.clear(); }
}

/**
 * The run's numbers from its scene records, summed in scene order whatever order they arrived in: a single run, a
 * merge of shards and a queue run all end here, so their metrics are the same float64 values. Every scene
 * 0..scenes-1 must be there exactly once.
 */
export function aggregate(all: SceneRecord[], st: EvalSettings, seconds: number): EvalResult {
  const n = st.scenes, byIndex = new Array<SceneRecord | undefined>(n);
  for (const r of all) {
    if (!Number.isInteger(r.index) || r.index < 0 || r.index >= n) throw new Error(`scene record ${r.index} (${r.file}) is outside the run's ${n} scenes`);
    if (byIndex[r.index]) throw new Error(`scene ${r.index} (${r.file}) is counted twice`);
    byIndex[r.index] = r;
  }
  const missing = byIndex.findIndex((r) => !r);
  if (missing >= 0 || byIndex.length < n) throw new Error(`scene ${missing} of ${n} has no result (${byIndex.filter(Boolean).length} of ${n} scenes present)`);
  const sums: Record<string, { drop: number; inc: number; del: number; ins: number; pg: number; en: number; inst: number; nInst: number; ms: number }> = {};
  for (const m of st.methods) sums[m] = { drop: 0, inc: 0, del: 0, ins: 0, pg: 0, en: 0, inst: 0, nInst: 0, ms: 0 };
  let correct = 0, multi = 0;
  for (const r of byIndex as SceneRecord[]) {
    if (r.correct) correct++;
    if (r.multi) multi++;
    for (const m of st.methods) {
      const t = r.terms[m], acc = sums[m];
      if (!t) throw new Error(`scene ${r.index} (${r.file}) has no result for ${m}`);
      if (r.ms) acc.ms += r.ms[m] ?? 0;
      acc.drop += t.drop; acc.inc += t.inc;
      if (r.index < st.aucN) { acc.del += t.del!; acc.ins += t.ins!; }
      acc.pg += t.pg; acc.en += t.en;
      if (r.multi) { acc.inst += t.inst!; acc.nInst += t.nInst!; }
    }
  }
  const methods: Record<string, MethodScores> = {}, aucN = st.aucN;
  for (const m of st.methods) {
    const a = sums[m];
    methods[m] = { avgDrop: (100 * a.drop) / n, increase: (100 * a.inc) / n, deletion: a.del / aucN, insertion: a.ins / aucN, pointing: a.pg / n,
      energy: a.en / n, instances: a.nInst ? a.inst / a.nInst : NaN, msPerImage: a.ms / n };
  }
  const withDetail = (byIndex as SceneRecord[]).every((r) => r.detail); // a merge of shards, one of them without detail, has none
  return { scenes: n, multi, accuracy: correct / n, methods, steps: st.steps, aucScenes: aucN, seconds, ...(withDetail ? { detail: details(byIndex as SceneRecord[], st) } : {}) };
}

/** The report's detail from the records (scene order): per-scene results, curves averaged over the AUC scenes, the gallery. */
function details(records: SceneRecord[], st: EvalSettings): EvalDetail {
  const first = records[0].detail!, curveSums: Record<string, { deletion: Float64Array; insertion: Float64Array }> = {};
  const detail: EvalDetail = { layer: first.layer, layerShape: first.layerShape, input: [], curves: {}, scenes: [], gallery: [] };
  for (const r of records) {
    const d = r.detail!;
    detail.scenes.push(d.scene);
    if (d.gallery) detail.gallery.push({ index: r.index, ...d.gallery });
    for (const [m, c] of Object.entries(d.curves)) {
      const cs = (curveSums[m] ??= { deletion: new Float64Array(c.deletion.length), insertion: new Float64Array(c.insertion.length) });
      c.deletion.forEach((v, q) => (cs.deletion[q] += v)); c.insertion.forEach((v, q) => (cs.insertion[q] += v));
    }
  }
  for (const [m, c] of Object.entries(curveSums)) detail.curves[m] = { deletion: Array.from(c.deletion, (v) => v / st.aucN), insertion: Array.from(c.insertion, (v) => v / st.aucN) };
  return detail;
}

/** A single-process run: every batch here, then aggregate(). */
export async function evaluate(model: Model, side: Sidecar, dir: string, o: EvalOptions): Promise<EvalResult> {
  const t0 = performance.now(), scenes = readScenes(dir, model.numClasses).slice(0, o.limit ?? Infinity), st = evalSettings(o, scenes.length);
  const records = await evalBatches(model, side, dir, scenes, st, sceneBatches(st), o.onProgress, o);
  const r = aggregate(records, st, (performance.now() - t0) / 1000);
  if (r.detail) r.detail.input = [...model.inputShape];
  return r;
}

/** Runs the given batches of a run here (a single run: all of them; a shard: its own). */
export async function evalBatches(model: Model, side: Sidecar, dir: string, scenes: Scene[], st: EvalSettings, batches: [number, number][],
  onProgress?: (done: number, total: number) => void, o: { detail?: { gallery: number }; signal?: AbortSignal; limits?: ImageLimits } = {}): Promise<SceneRecord[]> {
  const runner = new EvalRunner(model, side, st, { detail: o.detail, signal: o.signal, limits: o.limits }), records: SceneRecord[] = [], total = batches.reduce((a, [s, e]) => a + e - s, 0);
  try {
    for (const [s0, s1] of batches) {
      const chunk = scenes.slice(s0, s1);
      records.push(...await runner.run(s0, chunk, chunk.map((s) => readRegular(join(dir, s.file), 'scene'))));
      onProgress?.(records.length, total);
    }
  } finally { runner.destroy(); }
  return records;
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
export async function accuracy(model: Model, side: Sidecar, dir: string, o: { limit?: number; batch?: number; limits?: ImageLimits } = {}) {
  const [C, H, W] = model.inputShape, per = C * H * W, scenes = readScenes(dir, model.numClasses).slice(0, o.limit ?? Infinity);
  const plan = await model.plan({ batch: o.batch ?? 64 }), hit = { single: 0, multi: 0 }, n = { single: 0, multi: 0 };
  try {
    for (let s0 = 0; s0 < scenes.length; s0 += plan.batch) {
      const chunk = scenes.slice(s0, s0 + plan.batch), x = new Float32Array(chunk.length * per);
      chunk.forEach((s, i) => x.set(preprocess(readImage(join(dir, s.file), o.limits), H, W, side, join(dir, s.file), o.limits).x, i * per));
      const logits = (await plan.run(x)).logits, F = model.numClasses;
      chunk.forEach((s, i) => {
        const l = logits.subarray(i * F, (i + 1) * F), top = l.indexOf(Math.max(...l)), k = s.multi ? 'multi' : 'single';
        n[k]++; if (top === s.class) hit[k]++;
      });
    }
  } finally { plan.destroy(); }
  return { single: hit.single / n.single, multi: hit.multi / n.multi, nSingle: n.single, nMulti: n.multi };
}
