// explain(): every requested method for a batch of images, by walking the method table (src/methods.ts). The
// gradient pass is one plan: one forward, one backward to the target layer (and to the input, and LIFT-CAM's
// head-only DeepLIFT pass, when a requested method needs them) and the fused CAM epilogue, in one submit. Runners
// then add weight rows or raw slots (re-mapped on the same plan's buffers) and the batched pixel and perturbation
// results. Definitions: docs/METHODS.md.
import { Graph, ModelError, Shape, logitsOf, numel } from '../graph.js';
import { targetSeed } from '../target.js';
import { Model, Plan, PlanOptions, ProfileEntry, addProfiles } from '../model.js';
import { CAM_ROWS, CAM_SLOTS, FAST_METHODS, METHODS, METHOD_NAMES, Method, Pass } from '../methods.js';
import { CamEpilogue, checkCamLayout } from './cam.js';
import { checkCamHead, resolveLayer } from './layer.js';
import { Lock, argmax, now, softmax, topk } from './maps.js';
import { checkAbort } from './types.js';
import { DeviceLostError } from '../gpu.js';
import type { ExplainOptions, Explanation, ImageResult, MethodResult, RunContext } from './types.js';

export { CancelledError } from './types.js';
export type { Delta, ExplainOptions, Explanation, IgRule, ImageResult, MethodResult, RunContext, Targets } from './types.js';
export { defaultLayer, resolveLayer } from './layer.js';
export { eigenCam } from './cam.js';
export { resize, normMap, softmax } from './maps.js';
export { gaussLegendre, igSteps } from './pixel.js';

export function parseMethods(m: ExplainOptions['methods']): Method[] {
  if (!m || m === 'fast') return FAST_METHODS;
  if (m === 'all') return METHOD_NAMES;
  // own keys only: `in` would take '__proto__' or 'toString' for a method
  for (const x of m) if (!Object.hasOwn(METHODS, x)) throw new ModelError(`unknown method '${String(x).slice(0, 40)}'; methods: ${METHOD_NAMES.join(', ')}`);
  return [...new Set(m)];
}

/** The request's rows: (image, class spec) pairs (top-k makes k rows per image; cls -1 = top-1, -(r+1) the r-th). */
function targetRows(o: ExplainOptions, nImages: number, C: number, out: Shape) {
  if (o.target && o.targets) throw new ModelError('explain takes targets or target, not both');
  const rows: { image: number; cls: number }[] = [], t = o.target ? targetSeed(o.target, out, nImages) : o.targets ?? 'top1';
  if (t === 'top1') for (let i = 0; i < nImages; i++) rows.push({ image: i, cls: -1 });
  else if (Array.isArray(t)) {
    if (t.length !== nImages) throw new ModelError(`targets has ${t.length} classes for ${nImages} images`);
    t.forEach((c, i) => {
      if (!Number.isInteger(c) || c < 0 || c >= C) throw new ModelError(`class ${c} is out of range: the model has ${C} classes (0..${C - 1})`);
      rows.push({ image: i, cls: c });
    });
  } else if (t instanceof Float32Array) {
    if (t.length !== nImages * C) throw new ModelError(`seed targets have ${t.length} values; expected ${nImages} x ${C}`);
    for (let i = 0; i < nImages; i++) rows.push({ image: i, cls: -1 });
  } else {
    if (!Number.isInteger(t.topk) || t.topk < 1 || t.topk > C) throw new ModelError(`topk must be 1..${C}, got ${t.topk}`);
    for (let i = 0; i < nImages; i++) for (let r = 0; r < t.topk; r++) rows.push({ image: i, cls: -(r + 1) });
  }
  return { rows, seedRows: t instanceof Float32Array ? t : null };
}

/** What the table says a request needs: the gradient pass's extra backward passes and the fused maps to compute. */
export function requestPlan(methods: Method[]) {
  const needs = (p: Pass) => methods.some((m) => METHODS[m].passes.includes(p));
  const camSlots: Method[] = [];
  for (const m of methods) {
    for (const u of (METHODS[m].uses ?? []) as Method[]) if (!camSlots.includes(u) && !methods.includes(u)) camSlots.push(u);
    if (METHODS[m].slot !== undefined) camSlots.push(m);
  }
  // requested CAMs first, in request order, then the ones only used by others (as the maps buffer was always laid out)
  const ordered = [...camSlots.filter((m) => methods.includes(m)), ...camSlots.filter((m) => !methods.includes(m))];
  return { lift: needs('deeplift-layer'), inputGrad: needs('grad-input'), readA: methods.some((m) => METHODS[m].readsA), camSlots: ordered };
}

/** The gradient pass's plan for a request (explain() builds it; `camgpu plan` prints it): forward, backward to A (and the
 *  input), LIFT-CAM's head-only DeepLIFT pass; A read back only for the methods that read it. */
export function gradientPlanOptions(g: Graph, A: string, B: number, req: ReturnType<typeof requestPlan>, score?: 'logit' | 'prob'): PlanOptions {
  return { batch: B, read: req.readA ? [A] : [], score, backward: [
    { grads: req.inputGrad ? [A, g.input] : [A], mode: 'grad' },
    ...(req.lift ? [{ grads: [A], mode: 'deeplift' as const, reference: { zeroAt: A } }] : []),
  ] };
}

/** Caches plans per model, layer and options; call explain() repeatedly on the same instance. */
export class Explainer {
  // Overlapping explain() calls on one model are safe: plans are created once per key (the cache holds the
  // promise, so concurrent calls share one build), Plan.run/rerun are queued per plan, and the one sequence that
  // spans several submits on a plan (the gradient pass, then perturbation weights written into its
  // CAM buffers and the maps re-run) holds that plan's lock, so no other call's run lands in between.
  private plans = new Map<string, Promise<{ plan: Plan; cam: CamEpilogue; lock: Lock }>>();
  private extra = new Map<string, Promise<Plan>>();
  private heads = new Map<string, Model>(); // Ablation-CAM: the network after each target layer
  private destroyed = false;
  private generation: number; // the model's weight generation the cached plans were built for
  constructor(readonly model: Model) { this.generation = model.generation; }

  async explain(images: Float32Array, o: ExplainOptions = {}): Promise<Explanation> {
    const m = this.model, g = m.graph, t0 = now(), compiled0 = m.gpu.compiled.ms;
    const methods = parseMethods(o.methods);
    await m.ready(); // after a device loss: a new device, the weights uploaded again
    if (this.generation !== m.generation) this.invalidate();
    const inShape = m.inputShape, per = numel(inShape), nImages = images.length / per;
    if (!Number.isInteger(nImages) || nImages < 1) throw new ModelError(`images have ${images.length} values, not a multiple of one image ${inShape.join('x')} (${per})`);
    if (inShape.length !== 3) throw new ModelError(`explain needs an image input (N,C,H,W); this model's input is [N,${inShape}]`);
    const A = resolveLayer(g, o.layer), aShape = g.tensors.get(A)!.shape;
    if (methods.includes('cam')) checkCamHead(g, A);
    const C = m.numClasses, [, H, W] = inShape, [K, h, w] = aShape, Z = h * w;
    const { rows, seedRows } = targetRows(o, nImages, C, g.tensors.get(logitsOf(g))!.shape);
    // activations, gradients and the LIFT-CAM head pass: about 3x the forward activations per image
    const fits = Math.floor((o.memoryBudget ?? 2 ** 30) / (3 * m.bytesPerSample()));
    const B = Math.max(1, Math.min(o.batch ?? Math.min(16, fits), rows.length, m.maxBatch()));
    // masked inputs of the perturbation methods: forward only, so about a third of the memory per image
    const PB = Math.max(1, Math.min(o.batch ?? Math.min(64, 3 * fits), m.maxBatch()));
    // modified inputs of the sampling pixel methods (Integrated Gradients, the noise tunnel): a backward each
    const GB = Math.max(1, Math.min(o.batch ?? Math.min(16, fits), m.maxBatch()));
    const timings: Record<string, number> = {};
    // a phase's time leaves out pipeline compilation (plans built inside it), which timings.compile has
    // a phase timed inside itself (a runner timed as 'guided' whose pass is timed as 'guided' again) counts once
    const timing = new Set<string>();
    const time = async <T>(k: string, f: () => Promise<T>) => {
      if (timing.has(k)) return f();
      const s = now(), c = m.gpu.compiled.ms;
      timing.add(k);
      try {
        const r = await f();
        timings[k] = (timings[k] ?? 0) + now() - s - (m.gpu.compiled.ms - c);
        return r;
      } finally { timing.delete(k); }
    };
    const results: ImageResult[] = [];
    const req = requestPlan(methods), S = req.camSlots.length;
    const writers = methods.filter((mm) => { const r = METHODS[mm].runner; return r && r.writes !== 'result'; });
    const others = methods.filter((mm) => METHODS[mm].runner?.writes === 'result');
    let gpuBytes = 0, profile: ProfileEntry[] | undefined;

    for (let r0 = 0; r0 < rows.length; r0 += B) {
      checkAbort(o, `before image row ${r0} of ${rows.length}`);
      const chunk = rows.slice(r0, r0 + B), k = chunk.length;
      const x = new Float32Array(k * per);
      chunk.forEach((r, i) => x.set(images.subarray(r.image * per, (r.image + 1) * per), i * per));
      const { plan, cam, lock } = await this.gradientPlan(B, A, aShape, [H, W], req, o);
      gpuBytes = Math.max(gpuBytes, plan.bytes);
      // held from the gradient pass until the maps are re-run from its buffers; every exit releases it
      const release = await lock.acquire();
      let held = true;
      const unlock = () => { if (held) { held = false; release(); } };
      try {
        const seed = seedRows ? seedRows.subarray(chunk[0].image * C, (chunk[0].image + k) * C) : undefined;
        const target = seedRows ? { seed } : { classes: Int32Array.from(chunk.map((r) => r.cls)) };
        const res = await time('gradient pass', () => plan.run(x, { ...target, profile: o.profile }));
        if (res.profile) profile = addProfiles(profile, res.profile);
        const targets = res.targets ? Array.from(res.targets) : chunk.map((_, i) => argmax(seed!.subarray(i * C, (i + 1) * C)));
        let maps = res.extra.get('cam.maps')!, raw = res.extra.get('cam.raw')!, wts = res.extra.get('cam.weights')!;
        const eigenWts = res.extra.get('eigen.weights'); // (k,K), when eigencam was requested
        const memo = new Map<string, Promise<unknown>>();
        const ctx: RunContext = {
          model: m, o, x, k, targets, seed, row0: r0, A, aShape, act: res.values.get(A) ?? new Float32Array(0), logits: res.logits, res, B, PB, GB,
          plan: (name, opts, model) => this.planFor(name, opts, model),
          head: (layer) => this.headOf(layer),
          time,
          shared: <T>(key: string, f: () => Promise<T>) => { if (!memo.has(key)) memo.set(key, f()); return memo.get(key) as Promise<T>; },
          camMap: (i, mm) => { const j = req.camSlots.indexOf(mm); return maps.subarray((i * S + j) * H * W, (i * S + j + 1) * H * W); },
        };

        // runner-written weight rows and raw slots, then the epilogue's map kernels re-run on them
        const newWeights = new Map<Method, Float32Array[]>(), newRaws = new Map<Method, Float32Array[]>(), hostWeights = new Map<Method, Float32Array[]>();
        for (const mm of writers) {
          const r = METHODS[mm].runner!;
          if (r.writes === 'weights') newWeights.set(mm, await time(mm, () => r.run(ctx)));
          else if (r.writes === 'raw') {
            const v = await time(mm, () => r.run(ctx));
            newRaws.set(mm, v.raw);
            hostWeights.set(mm, v.weights);
          }
        }
        if (writers.length) {
          const upd = await time('remap', () => cam.remap(k, newWeights, newRaws));
          maps = upd.get('cam.maps')!; raw = upd.get('cam.raw')!; wts = upd.get('cam.weights')!;
        }
        unlock();
        const outs = new Map<Method, MethodResult[]>();
        for (const mm of others) outs.set(mm, await time(mm, () => (METHODS[mm].runner as { run: (c: RunContext) => Promise<MethodResult[]> }).run(ctx)));

        chunk.forEach((row, i) => {
          const logits = res.logits.subarray(i * C, (i + 1) * C), probs = softmax(logits);
          const out: ImageResult = { image: row.image, target: targets[i], logits: logits.slice(), probs, topk: topk(logits, probs, 5), methods: {} };
          for (const mm of methods) {
            const e = METHODS[mm], j = req.camSlots.indexOf(mm);
            if (j >= 0) {
              const at = (i * CAM_SLOTS + e.slot!) * Z;
              const mr: MethodResult = { map: maps.slice((i * S + j) * H * W, (i * S + j + 1) * H * W), raw: raw.slice(at, at + Z), rawShape: [h, w] };
              if (e.row !== undefined) mr.weights = wts.slice((i * CAM_ROWS + e.row) * K, (i * CAM_ROWS + e.row + 1) * K);
              if (hostWeights.has(mm)) mr.weights = hostWeights.get(mm)![i];
              if (mm === 'eigencam') mr.weights = eigenWts!.slice(i * K, (i + 1) * K);
              out.methods[mm] = mr;
            } else if (outs.has(mm)) out.methods[mm] = outs.get(mm)![i];
          }
          const dl = out.methods.deeplift?.delta;
          if (dl) out.deepliftDelta = dl;
          results.push(out);
        });
        o.onProgress?.(Math.min(r0 + B, rows.length), rows.length, 'images');
      } finally { unlock(); }
    }
    timings.compile = m.gpu.compiled.ms - compiled0; // pipelines compiled for this call's plans (shared with overlapping calls)
    timings.total = now() - t0;
    const mem = m.memory();
    const memory = { model: mem.total, weights: mem.weights, plans: mem.total - mem.weights, gpuLive: m.gpu.liveBytes };
    return { layer: A, layerShape: aShape, inputShape: inShape, images: results, timings, gpuBytes, memory, profile };
  }

  /** The gradient pass for a request shape: forward, backward to A (and the input, and LIFT-CAM's pass), fused CAM epilogue. */
  private gradientPlan(B: number, A: string, aShape: number[], out: [number, number], req: ReturnType<typeof requestPlan>, o: ExplainOptions) {
    const g = this.model.graph, slots = req.camSlots.map((mm) => METHODS[mm].slot!);
    const key = JSON.stringify([B, A, req.lift, req.inputGrad, req.readA, req.camSlots, o.score, o.relu, o.normalize, o.resize, o.gradcamPP]);
    return this.once(this.plans, key, async () => {
      checkCamLayout();
      const plan = await this.model.plan(gradientPlanOptions(g, A, B, req, o.score));
      try {
        const cam = new CamEpilogue(plan, A, aShape, out, slots, o, req.lift);
        await cam.attach();
        return { plan, cam, lock: new Lock() };
      } catch (e) { plan.destroy(); throw e; }
    }, (e) => e.plan.destroy());
  }

  private headOf(A: string): Model {
    let head = this.heads.get(A);
    if (!head) { head = this.model.head(A); this.heads.set(A, head); }
    return head;
  }

  private planFor(name: string, opts: Parameters<Model['plan']>[0], model = this.model): Promise<Plan> {
    return this.once(this.extra, `${name}:${JSON.stringify(opts)}`, () => model.plan(opts), (p) => p.destroy());
  }

  /** The cached value for key, created by make() once even when calls overlap; a failed make is forgotten. Every
   *  value belongs to this.generation: one whose build straddled a device loss is freed and its call fails. */
  private once<T>(cache: Map<string, Promise<T>>, key: string, make: () => Promise<T>, free: (v: T) => void): Promise<T> {
    if (this.destroyed) return Promise.reject(new ModelError('this explainer was destroyed'));
    let p = cache.get(key);
    if (!p) {
      const gen = this.generation, stale = () => this.model.generation !== gen || this.model.gpu.lost !== null;
      if (stale()) return Promise.reject(new DeviceLostError(this.model.gpu.lost ?? 'GPU device lost: the device was replaced during this call'));
      p = make().then((v) => {
        if (this.destroyed) { free(v); throw new ModelError('this explainer was destroyed while a plan was built'); }
        if (stale()) { free(v); throw new DeviceLostError(this.model.gpu.lost ?? 'GPU device lost: the device was replaced while a plan was built'); }
        return v;
      });
      cache.set(key, p);
      p.catch(() => { if (cache.get(key) === p) cache.delete(key); });
    }
    return p;
  }

  /** Frees every plan, including those still being built (they are freed when their build ends). */
  destroy() {
    this.destroyed = true;
    this.clear();
  }

  /** The device was replaced since the plans were cached: they belong to the old one (Model.ready destroyed them). */
  private invalidate() {
    this.generation = this.model.generation;
    this.clear();
  }

  private clear() {
    for (const e of this.plans.values()) e.then((x) => x.plan.destroy(), () => undefined);
    for (const p of this.extra.values()) p.then((x) => x.destroy(), () => undefined);
    for (const h of this.heads.values()) h.destroy();
    this.plans.clear(); this.extra.clear(); this.heads.clear();
  }
}

const cache = new WeakMap<Model, Explainer>();
/** explain(model, images, options): see ExplainOptions. Plans are cached per model. */
export function explain(model: Model, images: Float32Array, o: ExplainOptions = {}): Promise<Explanation> {
  let e = cache.get(model);
  if (!e) { e = new Explainer(model); cache.set(model, e); }
  return e.explain(images, o);
}
