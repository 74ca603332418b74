// explain(): every requested method for a batch of images. The gradient CAMs come from one plan: one forward,
// one backward to the target layer (plus LIFT-CAM's head-only DeepLIFT pass) and the fused CAM epilogue, in one
// submit. Perturbation and pixel methods add their own batched plans. Definitions: docs/METHODS.md.
import { Graph, ModelError, consumers, isConst, logitsOf, numel, producers } from './graph.js';
import { Model, Plan, ProfileEntry, Step, addProfiles, candidates } from './model.js';
import { METHODS, METHOD_NAMES, Method, FAST_METHODS } from './methods.js';
import { mulberry32 } from './builder.js';
import { OutputTarget, targetSeed } from './target.js';

export type Targets = 'top1' | number[] | { topk: number } | Float32Array;
export interface ExplainOptions {
  /** One class per image, 'top1' (default), { topk: k } (k rows per image), or seed vectors (N, classes) at the logits. */
  targets?: Targets;
  /** Instead of targets: a score at the model's output (src/target.ts), one for every image or one per image: a class
   *  (summed over a box or weighted by a mask on a segmentation map) or one element of any output. */
  target?: OutputTarget | OutputTarget[];
  /** Target layer: an ONNX tensor (or node) name; default: the last 4-D activation before the classifier head. */
  layer?: string;
  methods?: Method[] | 'all' | 'fast';
  /** Target score: the raw logit (default) or the softmax probability. */
  score?: 'logit' | 'prob';
  /** ReLU on the raw map before normalising (default true). */
  relu?: boolean;
  /** Min-max normalisation: of the feature-resolution map (default), of the resized map, or none. */
  normalize?: 'before' | 'after' | 'none';
  /** Bilinear resize with half-pixel centres (default, align_corners=false) or corner-aligned. */
  resize?: 'bilinear' | 'bilinear-corners';
  /** Grad-CAM++: eq. 19 (default) or the authors' alpha-renormalised code. */
  gradcamPP?: 'eq19' | 'normalized';
  /** Score-CAM: pytorch-grad-cam's variant (default) or the official code's. */
  scorecam?: 'pgc' | 'official';
  /** Pixel DeepLIFT reference image (C,H,W), default zeros (the mean image in normalised space). */
  reference?: Float32Array;
  rise?: { n?: number; s?: number; p?: number; seed?: number };
  /** Images per plan (and masked inputs per perturbation batch); default: what fits memoryBudget, at most 16. */
  batch?: number;
  /** GPU bytes a plan may use when choosing the default batch (default 1 GiB). */
  memoryBudget?: number;
  onProgress?: (done: number, total: number, what: string) => void;
  /** Time every dispatch of the gradient pass with timestamp queries (Explanation.profile; needs 'timestamp-query'). */
  profile?: boolean;
  /** Cancels the call: checked between GPU batches (each perturbation batch, each chunk of images); rejects with CancelledError. */
  signal?: AbortSignal;
}

/** explain() was cancelled through its AbortSignal; what it held is released and the explainer stays usable. */
export class CancelledError extends Error {
  constructor(message = 'the explanation was cancelled') { super(message); this.name = 'CancelledError'; }
}
function checkAbort(o: ExplainOptions, where: string) {
  if (o.signal?.aborted) throw new CancelledError(`explanation cancelled (${where})`);
}
export interface MethodResult {
  /** (H, W) at input resolution, in [0,1] unless normalize is 'none'. */
  map: Float32Array;
  /** Feature-resolution raw map (pre-ReLU) for CAMs; the full attribution (C,H,W) or (H,W) for pixel methods. */
  raw: Float32Array; rawShape: number[];
  weights?: Float32Array;
}
export interface ImageResult {
  image: number; target: number; logits: Float32Array; probs: Float32Array;
  topk: { class: number; logit: number; prob: number }[];
  methods: Partial<Record<Method, MethodResult>>;
  /** Pixel DeepLIFT: sum of contributions and y(x) - y(x'), which must agree; scale = max(|y(x)|, |y(x')|). */
  deepliftDelta?: { sum: number; expected: number; scale: number };
}
export interface Explanation {
  layer: string; layerShape: number[]; inputShape: number[]; images: ImageResult[]; timings: Record<string, number>;
  /** GPU bytes of the largest gradient plan this call used. */
  gpuBytes: number;
  /** GPU bytes the model holds after the call (Model.memory(): weights, and every plan of it and its heads, this
   *  explainer's cached ones included), and the Gpu's live total over every model on it. */
  memory: { model: number; weights: number; plans: number; gpuLive: number };
  /** With profile: GPU ms per dispatch of the gradient pass, summed over its runs. */
  profile?: ProfileEntry[];
}

const RAW_SLOTS = 11, WEIGHT_ROWS = 8;

/**
 * The default CAM layer: the last 4-D activation before the head. The head starts at the last node that turns a
 * spatial activation (h*w > 1) into a non-spatial one (GlobalAveragePool, Flatten, a pool to 1x1); from its input we
 * step back over pooling, Dropout/Identity and a fully convolutional classifier (a conv to exactly `classes` channels
 * and its activation, as in SqueezeNet). VGG: the last ReLU before the MaxPool; ResNet: the last block's ReLU;
 * SqueezeNet: the last Fire module's Concat.
 */
export function defaultLayer(g: Graph): string {
  const prod = producers(g), classes = numel(g.tensors.get(logitsOf(g))!.shape);
  const shape = (t: string) => g.tensors.get(t)!.shape;
  const spatial = (t: string) => !g.tensors.get(t)!.data && shape(t).length === 3 && shape(t)[1] * shape(t)[2] > 1;
  let t: string | undefined;
  for (const n of g.nodes) if (!spatial(n.output)) t = n.inputs.find(spatial) ?? t;
  const isClassifier = (name: string) => { const p = prod.get(name); return p?.op.kind === 'conv' && p.op.cout === classes; };
  while (t) {
    const p = prod.get(t);
    if (!p) break;
    const k = p.op.kind;
    if (k === 'maxpool' || k === 'avgpool' || k === 'alias' || isClassifier(t) || (k === 'act' && isClassifier(p.inputs[0]))) t = p.inputs[0];
    else break;
  }
  if (t && t !== g.input) return t;
  const c = candidates(g);
  if (!c.length) throw new ModelError('this model has no 4-D activation with spatial size > 1 on the path to the output; CAM methods need one');
  return c[c.length - 1];
}

function upstream(g: Graph, t: string): Set<string> {
  const prod = producers(g), seen = new Set<string>(), stack = [t];
  while (stack.length) { const x = stack.pop()!; if (seen.has(x)) continue; seen.add(x); const p = prod.get(x); if (p) stack.push(...p.inputs); }
  return seen;
}

/** Resolves a layer name (tensor or node name) and checks it can be a CAM target. */
export function resolveLayer(g: Graph, name?: string): string {
  if (!name) return defaultLayer(g);
  const t = g.tensors.has(name) ? name : g.nodes.find((n) => n.name === name)?.output;
  const list = () => candidates(g).join(', ');
  if (!t || isConst(g, t)) throw new ModelError(`layer '${name}' is not a tensor or node of this model; 4-D candidates: ${list()}`);
  if (g.tensors.get(t)!.shape.length !== 3) throw new ModelError(`layer '${name}' has shape [N,${g.tensors.get(t)!.shape}], not a 4-D (N,K,h,w) activation; candidates: ${list()}`);
  if (t === g.input) throw new ModelError(`layer '${name}' is the input image; choose a feature map: ${list()}`);
  if (!upstream(g, logitsOf(g)).has(t)) throw new ModelError(`layer '${name}' is not on the path to the output; candidates: ${list()}`);
  return t;
}

/** CAM needs A -> GlobalAveragePool -> (Flatten) -> linear = logits. */
function checkCamHead(g: Graph, A: string) {
  const cons = consumers(g), path: string[] = [];
  let t = A;
  for (;;) {
    const c = cons.get(t) ?? [];
    if (c.length !== 1) break;
    path.push(c[0].op.kind); t = c[0].output;
    if (t === logitsOf(g)) break;
  }
  const kinds = path.filter((k) => k !== 'alias');
  if (t !== logitsOf(g) || kinds.length !== 2 || kinds[0] !== 'gap' || kinds[1] !== 'linear')
    throw new ModelError(`CAM needs the target layer to feed GlobalAveragePool -> linear; after '${A}' the head is ${path.join(' -> ') || 'missing'} (use gradcam, whose weights equal CAM's up to 1/Z on such heads)`);
}

export function parseMethods(m: ExplainOptions['methods']): Method[] {
  if (!m || m === 'fast') return FAST_METHODS;
  if (m === 'all') return METHOD_NAMES;
  // own keys only: `in` would take '__proto__' or 'toString' for a method
  for (const x of m) if (!Object.hasOwn(METHODS, x)) throw new ModelError(`unknown method '${String(x).slice(0, 40)}'; methods: ${METHOD_NAMES.join(', ')}`);
  return [...new Set(m)];
}

/** Caches plans per model, layer and options; call explain() repeatedly on the same instance. */
export class Explainer {
  // Overlapping explain() calls on one model are safe: plans are created once per key (the cache holds the
  // promise, so concurrent calls share one build), Plan.run/rerun are queued per plan, and the one sequence that
  // spans several submits on a plan (the gradient pass, then Eigen-CAM / perturbation weights written into its
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
    const C = m.numClasses, [, H, W] = inShape;

    // rows: (image, class spec) pairs; top-k makes k rows per image
    const rows: { image: number; cls: number }[] = [];
    if (o.target && o.targets) throw new ModelError('explain takes targets or target, not both');
    const t = o.target ? targetSeed(o.target, g.tensors.get(logitsOf(g))!.shape, nImages) : o.targets ?? 'top1';
    if (t === 'top1') for (let i = 0; i < nImages; i++) rows.push({ image: i, cls: -1 });
    else if (Array.isArray(t)) {
      if (t.length !== nImages) throw new ModelError(`targets has ${t.length} classes for ${nImages} images`);
      t.forEach((c, i) => { if (!Number.isInteger(c) || c < 0 || c >= C) throw new ModelError(`class ${c} is out of range: the model has ${C} classes (0..${C - 1})`); rows.push({ image: i, cls: c }); });
    } else if (t instanceof Float32Array) {
      if (t.length !== nImages * C) throw new ModelError(`seed targets have ${t.length} values; expected ${nImages} x ${C}`);
      for (let i = 0; i < nImages; i++) rows.push({ image: i, cls: -1 });
    } else {
      if (!Number.isInteger(t.topk) || t.topk < 1 || t.topk > C) throw new ModelError(`topk must be 1..${C}, got ${t.topk}`);
      for (let i = 0; i < nImages; i++) for (let r = 0; r < t.topk; r++) rows.push({ image: i, cls: -(r + 1) });
    }
    const seedRows = t instanceof Float32Array ? t : null;
    // activations, gradients and the LIFT-CAM head pass: about 3x the forward activations per image
    const fits = Math.floor((o.memoryBudget ?? 2 ** 30) / (3 * m.bytesPerSample()));
    const B = Math.max(1, Math.min(o.batch ?? Math.min(16, fits), rows.length, m.maxBatch()));
    // masked inputs of the perturbation methods: forward only, so about a third of the memory per image
    const PB = Math.max(1, Math.min(o.batch ?? Math.min(64, 3 * fits), m.maxBatch()));
    const timings: Record<string, number> = {};
    // a phase's time leaves out pipeline compilation (plans built inside it), which timings.compile has
    const time = async <T>(k: string, f: () => Promise<T>) => {
      const s = now(), c = m.gpu.compiled.ms;
      const r = await f();
      timings[k] = (timings[k] ?? 0) + now() - s - (m.gpu.compiled.ms - c);
      return r;
    };
    const results: ImageResult[] = [];
    const camMethods = methods.filter((x) => METHODS[x].slot !== undefined);
    const needCamSlots = [...camMethods]; if (methods.includes('guided-gradcam') && !needCamSlots.includes('gradcam')) needCamSlots.push('gradcam');
    const lift = methods.includes('liftcam');
    const wantInputGrad = methods.includes('saliency');
    let gpuBytes = 0, profile: ProfileEntry[] | undefined;

    for (let r0 = 0; r0 < rows.length; r0 += B) {
      checkAbort(o, `before image row ${r0} of ${rows.length}`);
      const chunk = rows.slice(r0, r0 + B), k = chunk.length;
      const x = new Float32Array(k * per);
      chunk.forEach((r, i) => x.set(images.subarray(r.image * per, (r.image + 1) * per), i * per));
      const key = JSON.stringify([B, A, lift, wantInputGrad, needCamSlots, o.score, o.relu, o.normalize, o.resize, o.gradcamPP]);
      const { plan, cam, lock } = await this.once(this.plans, key, async () => {
        const plan = await m.plan({ batch: B, read: [A], score: o.score, backward: [
          { grads: wantInputGrad ? [A, g.input] : [A], mode: 'grad' },
          ...(lift ? [{ grads: [A], mode: 'deeplift' as const, reference: { zeroAt: A } }] : []),
        ] });
        try {
          const cam = new CamEpilogue(plan, A, aShape, [H, W], needCamSlots.map((x) => METHODS[x].slot!), o, lift);
          await cam.attach();
          return { plan, cam, lock: new Lock() };
        } catch (e) { plan.destroy(); throw e; }
      }, (e) => e.plan.destroy());
      gpuBytes = Math.max(gpuBytes, plan.bytes);
      // held from the gradient pass until the maps are re-run from its buffers; every exit releases it
      const release = await lock.acquire();
      let held = true; const unlock = () => { if (held) { held = false; release(); } };
      try {
        const seed = seedRows ? seedRows.subarray(chunk[0].image * C, (chunk[0].image + k) * C) : undefined;
        const res = await time('gradient pass', () => plan.run(x, { ...(seedRows ? { seed } : { classes: Int32Array.from(chunk.map((r) => r.cls)) }), profile: o.profile }));
        if (res.profile) profile = addProfiles(profile, res.profile);
        const targets = res.targets ? Array.from(res.targets) : chunk.map((_, i) => argmax(seed!.subarray(i * C, (i + 1) * C)));
        const act = res.values.get(A)!, Z = aShape[1] * aShape[2], K = aShape[0];
        let maps = res.extra.get('cam.maps')!, raw = res.extra.get('cam.raw')!, wts = res.extra.get('cam.weights')!;
        const eigen = methods.includes('eigencam') ? chunk.map((_, i) => eigenCam(act.subarray(i * K * Z, (i + 1) * K * Z), K, Z)) : null;

        // perturbation weights (written into the CAM buffers, then the epilogue maps them)
        const extraW = new Map<Method, Float32Array[]>();
        if (methods.includes('scorecam')) extraW.set('scorecam', await time('scorecam', () => this.scoreCam(x, act, chunk.length, targets, aShape, o, PB)));
        if (methods.includes('ablationcam')) extraW.set('ablationcam', await time('ablationcam', () => this.ablationCam(act, res.logits, k, targets, A, aShape, PB, o)));
        if (eigen || extraW.size) {
          const upd = await time('remap', () => cam.remap(k, eigen?.map((e) => e.raw) ?? null, extraW));
          maps = upd.get('cam.maps')!; raw = upd.get('cam.raw')!; wts = upd.get('cam.weights')!;
        }
        unlock();
        const pixel = await this.pixel(methods, x, k, targets, seed, res.grads.get(g.input), o, B, time);
        const rise = methods.includes('rise') ? await time('rise', () => this.rise(x, k, targets, o, PB)) : null;

        chunk.forEach((row, i) => {
          const logits = res.logits.subarray(i * C, (i + 1) * C), probs = softmax(logits);
          const out: ImageResult = { image: row.image, target: targets[i], logits: logits.slice(), probs, topk: topk(logits, probs, 5), methods: {} };
          needCamSlots.forEach((mm, j) => {
            if (!methods.includes(mm)) return;
            const slot = METHODS[mm].slot!, rows8 = [0, 1, 2, 3, 4, 5, 6, 7];
            const map = maps.slice(((i * needCamSlots.length) + j) * H * W, ((i * needCamSlots.length) + j + 1) * H * W);
            const mr: MethodResult = { map, raw: raw.slice((i * RAW_SLOTS + slot) * Z, (i * RAW_SLOTS + slot + 1) * Z), rawShape: [aShape[1], aShape[2]] };
            if (rows8.includes(slot)) mr.weights = wts.slice((i * WEIGHT_ROWS + slot) * K, (i * WEIGHT_ROWS + slot + 1) * K);
            if (mm === 'eigencam') mr.weights = eigen![i].weights;
            out.methods[mm] = mr;
          });
          if (pixel) {
            for (const [mm, v] of pixel.maps) {
              const attr = v[i];
              if (mm === 'guided-gradcam') { // guided backprop x the Grad-CAM map
                const gc = maps.subarray(((i * needCamSlots.length) + needCamSlots.indexOf('gradcam')) * H * W), full = attr.map((a, q) => a * gc[q % (H * W)]);
                out.methods[mm] = { raw: full, rawShape: [inShape[0], H, W], map: normMap(absMaxChannels(full, inShape[0], H * W)) };
              } else if (mm === 'saliency') out.methods[mm] = { raw: attr, rawShape: [H, W], map: normMap(attr) };
              else out.methods[mm] = { raw: attr, rawShape: [inShape[0], H, W], map: normMap(absMaxChannels(attr, inShape[0], H * W)) };
            }
            if (pixel.delta) out.deepliftDelta = pixel.delta[i];
          }
          if (rise) out.methods.rise = { raw: rise[i], rawShape: [H, W], map: normMap(rise[i]) };
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

  /** Saliency (from the gradient pass), guided backprop (+ Guided Grad-CAM) and pixel DeepLIFT. */
  private async pixel(methods: Method[], x: Float32Array, k: number, targets: number[], seed: Float32Array | undefined, inputGrad: Float32Array | undefined,
    o: ExplainOptions, B: number, time: <T>(k: string, f: () => Promise<T>) => Promise<T>) {
    const g = this.model.graph, per = x.length / k, [Cc, H, W] = this.model.inputShape, HW = H * W;
    const maps = new Map<Method, Float32Array[]>();
    const split = (a: Float32Array) => Array.from({ length: k }, (_, i) => a.slice(i * per, (i + 1) * per));
    const run = { classes: Int32Array.from(targets), ...(seed ? { seed, classes: undefined } : {}) };
    if (methods.includes('saliency') && inputGrad) maps.set('saliency', split(inputGrad).map((gr) => absMaxChannels(gr, Cc, HW)));
    if (methods.includes('guided') || methods.includes('guided-gradcam')) {
      checkAbort(o, 'guided');
      const p = await this.planFor('guided', { batch: B, backward: [{ grads: [g.input], mode: 'guided' }], score: o.score });
      const r = await time('guided', () => p.run(x, run));
      const gb = split(r.grads.get(g.input)!);
      if (methods.includes('guided')) maps.set('guided', gb);
      if (methods.includes('guided-gradcam')) maps.set('guided-gradcam', gb);
    }
    let delta: { sum: number; expected: number; scale: number }[] | undefined;
    if (methods.includes('deeplift')) {
      const ref = o.reference ?? new Float32Array(per);
      if (ref.length !== per) throw new ModelError(`DeepLIFT reference has ${ref.length} values; one image is ${Cc}x${H}x${W}`);
      const refs = new Float32Array(x.length); for (let i = 0; i < k; i++) refs.set(ref, i * per);
      checkAbort(o, 'deeplift');
      const p = await this.planFor('deeplift', { batch: B, backward: [{ grads: [g.input], mode: 'deeplift', reference: 'input' }], score: o.score });
      const r = await time('deeplift', () => p.run(x, { ...run, refInput: refs }));
      const mult = r.grads.get(g.input)!, contrib = mult.map((v, q) => v * (x[q] - refs[q])), C = this.model.numClasses;
      maps.set('deeplift', split(contrib));
      delta = targets.map((c, i) => {
        let s = 0; for (let q = i * per; q < (i + 1) * per; q++) s += contrib[q];
        // the seed is one-hot on c for logits (or the softmax chain rule for prob, where the delta is not a class score)
        const y = r.logits[i * C + c], y0 = r.refLogits![i * C + c];
        return { sum: s, expected: y - y0, scale: Math.max(Math.abs(y), Math.abs(y0)) };
      });
    }
    return maps.size ? { maps, delta } : null;
  }

  private async planFor(name: string, opts: Parameters<Model['plan']>[0], model = this.model): Promise<Plan> {
    return this.once(this.extra, `${name}:${JSON.stringify(opts)}`, () => model.plan(opts), (p) => p.destroy());
  }

  /** The cached value for key, created by make() once even when calls overlap; a failed make is forgotten. */
  private once<T>(cache: Map<string, Promise<T>>, key: string, make: () => Promise<T>, free: (v: T) => void): Promise<T> {
    if (this.destroyed) return Promise.reject(new ModelError('this explainer was destroyed'));
    let p = cache.get(key);
    if (!p) {
      p = make().then((v) => { if (this.destroyed) { free(v); throw new ModelError('this explainer was destroyed while a plan was built'); } return v; });
      cache.set(key, p);
      p.catch(() => { if (cache.get(key) === p) cache.delete(key); });
    }
    return p;
  }

  /** Score-CAM weights per row: masked forwards batched B at a time. */
  private async scoreCam(x: Float32Array, act: Float32Array, k: number, targets: number[], aShape: number[], o: ExplainOptions, B: number): Promise<Float32Array[]> {
    const [Cc, H, W] = this.model.inputShape, per = Cc * H * W, [K, h, w] = aShape, Z = h * w, C = this.model.numClasses;
    const official = o.scorecam === 'official', plan = await this.planFor('forward', { batch: B });
    const out: Float32Array[] = [];
    for (let i = 0; i < k; i++) {
      const img = x.subarray(i * per, (i + 1) * per), scores = new Float32Array(K), skip = new Uint8Array(K);
      for (let k0 = 0; k0 < K; k0 += B) {
        const n = Math.min(B, K - k0), batch = new Float32Array(n * per);
        for (let j = 0; j < n; j++) {
          const up = resize(act.subarray((i * K + k0 + j) * Z, (i * K + k0 + j + 1) * Z), h, w, H, W, !official);
          let lo = Infinity, hi = -Infinity; for (const v of up) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
          if (official && hi === lo) skip[k0 + j] = 1;
          const den = official ? hi - lo : hi - lo + 1e-8;
          for (let c = 0; c < Cc; c++) for (let q = 0; q < H * W; q++) batch[j * per + c * H * W + q] = img[c * H * W + q] * (den === 0 ? 0 : (up[q] - lo) / den);
        }
        checkAbort(o, 'scorecam');
        const r = await plan.run(batch);
        for (let j = 0; j < n; j++) {
          const l = r.logits.subarray(j * C, (j + 1) * C);
          scores[k0 + j] = official ? softmax(l)[targets[i]] : (o.score === 'prob' ? softmax(l)[targets[i]] : l[targets[i]]);
        }
        o.onProgress?.(i * K + k0 + n, k * K, 'scorecam');
      }
      if (official) out.push(scores.map((s, j) => (skip[j] ? 0 : s)));
      else out.push(softmax(scores));
    }
    return out;
  }

  /** Ablation-CAM weights per row: the head re-run from A with one channel ablated, B channels at a time. */
  private async ablationCam(act: Float32Array, logits: Float32Array, k: number, targets: number[], A: string, aShape: number[], B: number, o: ExplainOptions): Promise<Float32Array[]> {
    let head = this.heads.get(A);
    if (!head) { head = this.model.head(A); this.heads.set(A, head); }
    const [K, h, w] = aShape, Z = h * w, per = K * Z, C = this.model.numClasses;
    const plan = await this.planFor(`head:${A}`, { batch: B }, head);
    const out: Float32Array[] = [];
    for (let i = 0; i < k; i++) {
      const a = act.subarray(i * per, (i + 1) * per);
      let mn = Infinity; for (const v of a) mn = Math.min(mn, v);
      const value = mn === 0 ? 0 : mn - 1e7; // pytorch-grad-cam's AblationLayer
      const y = logits[i * C + targets[i]], wts = new Float32Array(K);
      for (let k0 = 0; k0 < K; k0 += B) {
        const n = Math.min(B, K - k0), batch = new Float32Array(n * per);
        for (let j = 0; j < n; j++) { batch.set(a, j * per); batch.fill(value, j * per + (k0 + j) * Z, j * per + (k0 + j + 1) * Z); }
        checkAbort(o, 'ablationcam');
        const r = await plan.run(batch);
        for (let j = 0; j < n; j++) wts[k0 + j] = (y - r.logits[j * C + targets[i]]) / y;
        o.onProgress?.(i * K + k0 + n, k * K, 'ablationcam');
      }
      out.push(wts);
    }
    return out;
  }

  /** RISE saliency per row: N seeded random masks, batched forwards, softmax probability of the target. */
  private async rise(x: Float32Array, k: number, targets: number[], o: ExplainOptions, B: number): Promise<Float32Array[]> {
    const [Cc, H, W] = this.model.inputShape, per = Cc * H * W, HW = H * W, C = this.model.numClasses;
    const N = o.rise?.n ?? 4000, s = o.rise?.s ?? 8, p = o.rise?.p ?? 0.5;
    const plan = await this.planFor('forward', { batch: B });
    const out: Float32Array[] = [];
    for (let i = 0; i < k; i++) {
      const rand = mulberry32(o.rise?.seed ?? 0), sal = new Float64Array(HW), img = x.subarray(i * per, (i + 1) * per);
      for (let m0 = 0; m0 < N; m0 += B) {
        const n = Math.min(B, N - m0), masks = Array.from({ length: n }, () => riseMask(rand, s, p, H, W)), batch = new Float32Array(n * per);
        masks.forEach((mk, j) => { for (let c = 0; c < Cc; c++) for (let q = 0; q < HW; q++) batch[j * per + c * HW + q] = img[c * HW + q] * mk[q]; });
        checkAbort(o, 'rise');
        const r = await plan.run(batch);
        masks.forEach((mk, j) => { const pc = softmax(r.logits.subarray(j * C, (j + 1) * C))[targets[i]]; for (let q = 0; q < HW; q++) sal[q] += pc * mk[q]; });
        o.onProgress?.(i * N + m0 + n, k * N, 'rise');
      }
      out.push(Float32Array.from(sal, (v) => v / (N * p)));
    }
    return out;
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

/** A FIFO mutex: acquire() resolves with the release function once every earlier holder has released. */
class Lock {
  private tail: Promise<void> = Promise.resolve();
  acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => { release = r; });
    const ready = this.tail.then(() => release);
    this.tail = next;
    return ready;
  }
}

/** The fused CAM kernels attached to a gradient plan (shaders/cam.wgsl). */
class CamEpilogue {
  private wts!: GPUBuffer; private raw!: GPUBuffer; private maps!: GPUBuffer;
  private weightStep!: Step; private mapSteps: Step[] = [];
  constructor(readonly plan: Plan, readonly A: string, readonly aShape: number[], readonly out: [number, number], readonly slots: number[], readonly o: ExplainOptions, readonly lift: boolean) {}

  async attach() {
    const p = this.plan, N = p.batch, [K, h, w] = this.aShape, Z = h * w, [H, W] = this.out, S = this.slots.length;
    const norm = this.o.normalize ?? 'before', relu = this.o.relu === false ? 0 : 1, corners = this.o.resize === 'bilinear-corners' ? 1 : 0;
    this.wts = p.alloc('cam.weights', N * WEIGHT_ROWS * K * 4);
    this.raw = p.alloc('cam.raw', N * RAW_SLOTS * Z * 4);
    this.maps = p.alloc('cam.maps', (N * S * H * W + N * S * 2) * 4);
    const sel = p.alloc('cam.sel', Math.max(S, 1) * 4, GPUBufferUsage.STORAGE, Uint32Array.from(this.slots));
    const bufs = { A: p.buf(this.A), g: p.gradBuf(this.A, 0), m: this.lift ? p.gradBuf(this.A, 1) : p.gradBuf(this.A, 0), sel, wts: this.wts, raw: this.raw, maps: this.maps };
    const params = { N, K, Z, h, w, H, W, NSEL: S };
    const c = (extra: Record<string, number>) => ({ PPNORM: this.o.gradcamPP === 'normalized' ? 1 : 0, RELU: relu, NORM: norm === 'before' ? 1 : 0, CORNERS: corners, SRC: 0, ...extra });
    this.weightStep = p.step('cam', 'cam_weights', c({}), 'cam.weights', params, bufs, N * K);
    const raw = p.step('cam', 'cam_raw', c({}), 'cam.raw', params, bufs, N * Z);
    this.mapSteps = [raw];
    if (norm === 'before') this.mapSteps.push(p.step('cam', 'cam_minmax', c({ SRC: 0 }), 'cam.minmax', params, bufs, N * S * 64));
    this.mapSteps.push(p.step('cam', 'cam_resize', c({}), 'cam.resize', params, bufs, N * S * H * W));
    if (norm === 'after') this.mapSteps.push(p.step('cam', 'cam_minmax', c({ SRC: 1, NORM: 0 }), 'cam.minmax_after', params, bufs, N * S * 64),
      p.step('cam', 'cam_normalize', c({ NORM: 0 }), 'cam.normalize', params, bufs, N * S * H * W));
    await p.epilogue([this.weightStep, ...this.mapSteps], [
      { name: 'cam.weights', src: this.wts, bytes: N * WEIGHT_ROWS * K * 4 }, { name: 'cam.raw', src: this.raw, bytes: N * RAW_SLOTS * Z * 4 },
      { name: 'cam.maps', src: this.maps, bytes: (N * S * H * W + N * S * 2) * 4, perRow: false }]);
  }

  /** Writes host-computed Eigen-CAM raw maps and perturbation weights, then re-runs the map kernels. */
  remap(k: number, eigen: Float32Array[] | null, weights: Map<Method, Float32Array[]>) {
    this.plan.live(); // no writes into the buffers of a lost device
    const dev = this.plan.model.device, [K, h, w] = this.aShape, Z = h * w;
    for (let i = 0; i < k; i++) {
      if (eigen) dev.queue.writeBuffer(this.raw, (i * RAW_SLOTS + 10) * Z * 4, eigen[i] as Float32Array<ArrayBuffer>);
      for (const [m, ws] of weights) dev.queue.writeBuffer(this.wts, (i * WEIGHT_ROWS + METHODS[m].slot!) * K * 4, ws[i] as Float32Array<ArrayBuffer>);
    }
    return this.plan.rerun(this.mapSteps, ['cam.weights', 'cam.raw', 'cam.maps']);
  }
}

/** Eigen-CAM: A (K,Z) -> projection of the centred (Z,K) matrix on its first right singular vector, via the Z x Z Gram matrix. */
export function eigenCam(a: Float32Array, K: number, Z: number): { raw: Float32Array; weights: Float32Array } {
  const X = new Float64Array(Z * K); // centred (Z,K)
  for (let k = 0; k < K; k++) { let mu = 0; for (let z = 0; z < Z; z++) mu += a[k * Z + z]; mu /= Z; for (let z = 0; z < Z; z++) X[z * K + k] = a[k * Z + z] - mu; }
  const G = new Float64Array(Z * Z);
  for (let i = 0; i < Z; i++) for (let j = i; j < Z; j++) { let s = 0; for (let k = 0; k < K; k++) s += X[i * K + k] * X[j * K + k]; G[i * Z + j] = G[j * Z + i] = s; }
  // power iteration on G (symmetric PSD): u -> top eigenvector; projection = X v1 = sigma u
  let u = new Float64Array(Z).map((_, i) => 1 + ((i * 7919) % 13) / 13), lambda = 0;
  for (let it = 0; it < 500; it++) {
    const v = new Float64Array(Z);
    for (let i = 0; i < Z; i++) { let s = 0; for (let j = 0; j < Z; j++) s += G[i * Z + j] * u[j]; v[i] = s; }
    const nrm = Math.hypot(...v); if (nrm === 0) break;
    const next = v.map((x) => x / nrm), diff = next.reduce((s, x, i) => s + Math.abs(x - u[i]), 0);
    u = next; lambda = nrm;
    if (diff < 1e-13) break;
  }
  const sigma = Math.sqrt(lambda);
  let big = 0; for (let i = 0; i < Z; i++) if (Math.abs(u[i]) > Math.abs(big)) big = u[i];
  const sign = big < 0 ? -1 : 1;
  const raw = Float32Array.from(u, (x) => sign * sigma * x);
  const weights = new Float32Array(K); // v1 = X^T u / sigma
  if (sigma > 0) for (let k = 0; k < K; k++) { let s = 0; for (let z = 0; z < Z; z++) s += X[z * K + k] * u[z]; weights[k] = sign * s / sigma; }
  return { raw, weights };
}

/** Bilinear resize of one (h,w) map to (H,W): half-pixel centres, or corner-aligned. */
export function resize(a: ArrayLike<number>, h: number, w: number, H: number, W: number, corners: boolean): Float32Array {
  const out = new Float32Array(H * W);
  const src = (o: number, n: number, N: number): [number, number, number] => {
    const x = corners ? (N > 1 ? (o * (n - 1)) / (N - 1) : 0) : Math.max((o + 0.5) * (n / N) - 0.5, 0);
    const i0 = Math.min(Math.floor(x), n - 1); return [i0, Math.min(i0 + 1, n - 1), x - i0];
  };
  for (let Y = 0; Y < H; Y++) {
    const [y0, y1, ly] = src(Y, h, H);
    for (let X = 0; X < W; X++) {
      const [x0, x1, lx] = src(X, w, W);
      out[Y * W + X] = (1 - ly) * ((1 - lx) * a[y0 * w + x0] + lx * a[y0 * w + x1]) + ly * ((1 - lx) * a[y1 * w + x0] + lx * a[y1 * w + x1]);
    }
  }
  return out;
}

/** One RISE mask: an s x s binary grid (keep probability p), bilinearly upsampled to (s+1)*cell, randomly shifted crop (H,W). */
function riseMask(rand: () => number, s: number, p: number, H: number, W: number): Float32Array {
  const ch = Math.ceil(H / s), cw = Math.ceil(W / s), grid = Float32Array.from({ length: s * s }, () => (rand() < p ? 1 : 0));
  const up = resize(grid, s, s, (s + 1) * ch, (s + 1) * cw, false), dy = Math.floor(rand() * ch), dx = Math.floor(rand() * cw), UW = (s + 1) * cw;
  const m = new Float32Array(H * W);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) m[y * W + x] = up[(y + dy) * UW + x + dx];
  return m;
}

const now = () => (globalThis.performance ?? Date).now();
export function softmax(l: ArrayLike<number>): Float32Array {
  let m = -Infinity; for (let i = 0; i < l.length; i++) m = Math.max(m, l[i]);
  let s = 0; const e = new Float32Array(l.length); for (let i = 0; i < l.length; i++) { e[i] = Math.exp(l[i] - m); s += e[i]; }
  return e.map((v) => v / s);
}
const argmax = (a: ArrayLike<number>) => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; };
function topk(logits: Float32Array, probs: Float32Array, k: number) {
  return [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b).slice(0, k).map((c) => ({ class: c, logit: logits[c], prob: probs[c] }));
}
function absMaxChannels(a: Float32Array, C: number, HW: number): Float32Array {
  const o = new Float32Array(HW);
  for (let c = 0; c < C; c++) for (let q = 0; q < HW; q++) o[q] = Math.max(o[q], Math.abs(a[c * HW + q]));
  return o;
}
/** (v - min) / (max - min + 1e-7), the same normalisation as the CAM maps. */
export function normMap(a: Float32Array): Float32Array {
  let lo = Infinity, hi = -Infinity; for (const v of a) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return a.map((v) => (v - lo) / (hi - lo + 1e-7));
}

const cache = new WeakMap<Model, Explainer>();
/** explain(model, images, options): see ExplainOptions. Plans are cached per model. */
export function explain(model: Model, images: Float32Array, o: ExplainOptions = {}): Promise<Explanation> {
  let e = cache.get(model);
  if (!e) { e = new Explainer(model); cache.set(model, e); }
  return e.explain(images, o);
}
