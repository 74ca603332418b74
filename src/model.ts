// A loaded model (weights on the GPU) and the executor of its plans: src/planner.ts decides the dispatches and
// buffers (no GPU); a Plan here allocates them, makes bind groups and uniforms once per (batch, outputs, gradients,
// mode), compiles the pipelines they use and replays them with one submit per request.
import { Graph, ModelError, Node, fmt, logitsOf, numel } from './graph.js';
import { DeviceLostError, Family, FAMILIES, Gpu, GpuError, Ledger, grid } from './gpu.js';
import { importOnnx } from './import.js';
import type { Tile } from './conv.js';
import { Limits, PlanDesc, PlanOptions, Planner, Read } from './planner.js';
import type { Buf, Dispatch, Step } from './ops/types.js';
import type { Binding, ParamValues } from './reflect.js';

export type { Mode, Step } from './ops/types.js';
export type { Backward, PlanOptions } from './planner.js';
export { candidates } from './planner.js';

export interface RunOptions {
  /** Seed at seedAt, (k, numel) values; or */
  seed?: Float32Array;
  /** one class per image, chosen on the GPU: c >= 0 that class, -(r+1) the r-th largest logit (-1 = top-1). */
  classes?: Int32Array;
  refInput?: Float32Array;
  /** Time every dispatch on the GPU with timestamp queries (the device needs 'timestamp-query'); see RunResult.profile. */
  profile?: boolean;
  /** Record every dispatch as encoded (RunResult.trace), to check the executor against its plan description. */
  trace?: boolean;
}
/** GPU time of one dispatch (timestamp queries around it, alone in its compute pass). */
export interface ProfileEntry { label: string; phase: 'forward' | 'backward'; ms: number }
/** Per-dispatch times of several runs of one plan, added up (the runs replay the same dispatches). */
export const addProfiles = (a: ProfileEntry[] | undefined, b: ProfileEntry[]) => a ? a.map((e, i) => ({ ...e, ms: e.ms + b[i].ms })) : b;
export interface RunResult {
  logits: Float32Array; values: Map<string, Float32Array>;
  /** Gradients of the first backward pass; `passes` has every pass. */
  grads: Map<string, Float32Array>; passes: Map<string, Float32Array>[];
  /** The class each image was explained for (when run with classes). */
  targets?: Int32Array;
  /** DeepLIFT only: the seed tensor of the reference pass (for summation-to-delta checks). */
  refLogits?: Float32Array;
  /** Read-backs registered by epilogues (e.g. CAM maps). */
  extra: Map<string, Float32Array>;
  /** With run({ profile: true }): every dispatch in order (forward, reference, seed, backward, epilogue). */
  profile?: ProfileEntry[];
  /** With run({ trace: true }): every dispatch encoded, in order (bind group label, pipeline label, workgroups). */
  trace?: { label: string; pipeline: string; groups: [number, number] }[];
}

export interface LoadOptions {
  /** The full input shape [N, C, H, W] for an ONNX model with symbolic dimensions (N is ignored: plans choose the
   *  batch); one Model serves one input size (load again, or withInputShape(), for another). */
  inputShape?: number[];
  /** Caps the storage-binding size camgpu plans for (default: the device's limit); tests use it to force weight chunking. */
  maxBinding?: number;
  /** Forward conv tiles by layer shape (convShape), as `camgpu tune` measures them for an adapter (else defaultTile). */
  tiles?: Record<string, Tile>;
  /** Bytes each of a plan's two Winograd scratch buffers may take (default 32 MiB): a layer's tiles go through them
   *  in chunks, and a layer where not even 16 tiles fit runs the direct kernel. */
  winogradScratch?: number;
}

export class Model {
  private statics = new Map<Buf, GPUBuffer>(); // model buffers on the GPU (weights, constants, Winograd, transposed)
  private plans = new Set<Plan>();
  private heads = new Set<Model>(); // head() sub-models: their plans count in gpuBytes and go with this model
  private parent: Model | null = null;
  private own: Ledger; // weight buffers (a head uses its parent's)
  private uploaded = 0; // gpu.generation the weights were uploaded at
  private reuploading: Promise<void> | null = null;
  /** Times the weights were uploaded again onto a new device after a loss (plans made before are stale). */
  reuploads = 0;
  private source: { bytes: Uint8Array; opts: LoadOptions } | null = null; // to load the same ONNX at another input size
  private shapes = new Map<string, Promise<Model>>();
  private owner = true; // a head() shares its parent's weight buffers and does not free them

  private constructor(readonly gpu: Gpu, readonly planner: Planner) {
    this.own = gpu.ledger(`${planner.name}: weights`, 'weights');
    this.uploaded = gpu.generation;
  }

  /** The device's limits, capped by LoadOptions.maxBinding. */
  static limitsOf(device: GPUDevice, opts: LoadOptions = {}): Limits {
    const l = device.limits;
    return { binding: Math.min(l.maxStorageBufferBindingSize, opts.maxBinding ?? Infinity), buffer: l.maxBufferSize, maxDim: l.maxComputeWorkgroupsPerDimension };
  }

  /** Loads an ONNX file (bytes) or a builder Graph and uploads its weights; pipelines compile when a plan first uses them. */
  static async load(device: GPUDevice | Gpu, source: Uint8Array | Graph, name = 'model', opts: LoadOptions = {}): Promise<Model> {
    const gpu = device instanceof Gpu ? device : new Gpu(device);
    await gpu.ready();
    const graph = source instanceof Uint8Array ? importOnnx(source, { inputShape: opts.inputShape }) : source;
    const m = new Model(gpu, new Planner(graph, name, Model.limitsOf(gpu.device, opts)));
    if (source instanceof Uint8Array && opts.inputShape) m.source = { bytes: source, opts }; // kept only for a model loaded at a chosen size
    if (opts.tiles) m.tiles = opts.tiles;
    if (opts.winogradScratch) m.winogradScratch = opts.winogradScratch;
    try { await gpu.scoped(`${name}: weights`, () => m.upload()); }
    catch (e) { m.destroy(); throw e; } // what was uploaded before the error
    return m;
  }

  /** Every model buffer described so far onto the GPU. */
  private upload() { for (const b of this.planner.statics) this.gpuOf(b); }

  /**
   * A live device with this model's weights on it. After a device loss (Gpu.ready puts a new device in place) the
   * plans made on the old one are destroyed and the model buffers are uploaded again from the planner's host copies,
   * once however many calls wait (pipelines compile again as plans use them); a head defers to the model it came from.
   */
  async ready(): Promise<void> {
    if (this.parent) return this.parent.ready();
    await this.gpu.ready();
    if (this.uploaded === this.gpu.generation) return;
    this.reuploading ??= (async () => {
      try {
        for (const m of [this, ...this.heads]) for (const p of [...m.plans]) p.destroy();
        this.clearWeights();
        const gen = this.gpu.generation;
        await this.gpu.scoped(`${this.name}: weights (re-upload after device loss)`, () => this.upload());
        this.uploaded = gen;
        this.reuploads++;
      } finally { this.reuploading = null; }
    })();
    return this.reuploading;
  }

  /** The gpu.generation this model's weights live on (Explainer compares it to drop plans made before a loss). */
  get generation(): number { return this.parent ? this.parent.generation : this.uploaded; }
  private get mem(): Ledger { return this.parent ? this.parent.mem : this.own; }

  /** The same ONNX model at another input size [N, C, H, W] (its symbolic dimensions set), loaded once per size and
   *  destroyed with this model. */
  withInputShape(shape: number[]): Promise<Model> {
    if (!this.source) throw new ModelError(`${this.name} was not loaded from ONNX bytes with LoadOptions.inputShape (a model with symbolic dimensions); its input size is fixed at [N,${this.inputShape}]`);
    const key = shape.slice(1).join('x');
    let m = this.shapes.get(key);
    if (!m) {
      m = Model.load(this.gpu, this.source.bytes, `${this.name}@${key}`, { ...this.source.opts, inputShape: shape });
      this.shapes.set(key, m);
      m.catch(() => this.shapes.delete(key));
    }
    return m;
  }

  /** The sub-model from `tensor` (a 4-D activation) to the output, sharing this model's GPU weights: the head
   *  that Ablation-CAM re-runs. Throws when a head node reads anything computed before `tensor`. */
  head(tensor: string): Model {
    const h = new Model(this.gpu, this.planner.head(tensor));
    h.statics = this.statics; h.owner = false;
    h.parent = this;
    this.heads.add(h);
    return h;
  }

  get name() { return this.planner.name; }
  get graph() { return this.planner.graph; }
  get limits() { return this.planner.limits; }
  get tiles() { return this.planner.tiles; }
  set tiles(t: Record<string, Tile>) { this.planner.tiles = t; }
  get winogradScratch() { return this.planner.winogradScratch; }
  set winogradScratch(v: number) { this.planner.winogradScratch = v; }
  get device() { return this.gpu.device; }
  get logits() { return logitsOf(this.graph); }
  get inputShape() { return this.graph.tensors.get(this.graph.input)!.shape; }
  get numClasses() { return numel(this.graph.tensors.get(this.logits)!.shape); }

  /** A model buffer on the GPU, uploaded on first use (weights at load; Winograd and transposed weights when a
   *  plan first binds them). The planner keeps its host copy, to upload again after a device loss. */
  gpuOf(b: Buf): GPUBuffer {
    let g = this.statics.get(b);
    if (!g) {
      g = this.mem.buffer(b.label, b.bytes, GPUBufferUsage.STORAGE, b.data);
      this.statics.set(b, g);
    }
    return g;
  }

  /** The backward to a stride-1 conv's input as a forward conv (conv.ts transposedConv); null where that does not apply. */
  transposed(n: Node): Node | null { return this.planner.transposed(n); }
  bytesPerSample(): number { return this.planner.bytesPerSample(); }
  maxBatch(): number { return this.planner.maxBatch(); }
  isAlias(t: string) { return this.planner.isAlias(t); }
  weightsOf(n: Node) { return this.planner.weightsOf(n); }
  /** A conv's kernels with its tuned forward tile (LoadOptions.tiles), else the default. */
  convKernels(n: Node) { return this.planner.convKernels(n); }

  /** Plans (GPU-free, src/planner.ts), then allocates, binds and compiles what the plan dispatches. */
  async plan(o: PlanOptions): Promise<Plan> {
    await this.ready();
    const p = new Plan(this, this.planner.plan(o));
    this.plans.add(p);
    try { await this.gpu.scoped(`${this.name}: plan batch=${o.batch}`, () => p.build()); }
    catch (e) { p.destroy(); throw e; } // free what was allocated before the error
    return p;
  }

  forget(p: Plan) { this.plans.delete(p); }
  /** Plans this model holds (built and not destroyed). */
  get planCount() { return this.plans.size; }

  /** GPU bytes this model holds: its weights (with the Winograd and transposed copies made on first use) and every
   *  plan of it and of its heads; see memory() for the split. A head reports its own plans only. */
  get gpuBytes(): number { return this.memory().total; }
  memory(): { total: number; weights: number; plans: { plan: string; bytes: number }[] } {
    const models = this.parent ? [this as Model] : [this as Model, ...this.heads];
    const plans = models.flatMap((m) => [...m.plans].map((p) => ({ plan: `${m.name} ${p.describe()}`, bytes: p.bytes })));
    const weights = this.parent ? 0 : this.own.bytes;
    return { total: weights + plans.reduce((s, p) => s + p.bytes, 0), weights, plans };
  }

  private clearWeights() {
    this.own.destroy();
    this.own = this.gpu.ledger(`${this.name}: weights`, 'weights');
    this.statics.clear();
  }

  /** Frees every GPU byte this model holds: its plans, its heads' plans, its weights (a head frees only its plans). */
  destroy() {
    for (const p of [...this.plans]) p.destroy();
    for (const m of this.shapes.values()) m.then((x) => x.destroy(), () => undefined);
    this.shapes.clear();
    if (this.parent) { this.parent.heads.delete(this); return; }
    for (const h of [...this.heads]) h.destroy();
    if (this.owner) this.clearWeights();
  }
}

/** The dispatches of a k-image run in a larger plan (Plan.subOf). */
interface Sub { forward: Step[]; refForward: Step[]; backward: Step[]; seedStep: Step | null }

/** A GPU read-back: source and mapped stage. */
interface GpuRead { name: string; kind: Read['kind']; pass: number; src: GPUBuffer; stage: GPUBuffer; bytes: number; perRow: boolean }

/** The executor of one planned plan (PlanDesc): its buffers allocated, every dispatch's uniform and bind group made
 *  once, replayed into one command encoder with one submit and one read-back per request. */
export class Plan {
  readonly batch: number;
  readonly passes: PlanDesc['passes'];
  readonly seedAt: string;
  readonly counts: PlanDesc['counts'];
  private gpuBufs = new Map<Buf, GPUBuffer>();     // plan buffers on the GPU
  private mem: Ledger;
  private readonly generation: number; // gpu.generation this plan's buffers and bind groups belong to
  private forward: Step[] = [];
  private refForward: Step[] = [];
  private backward: Step[] = [];
  private post: Step[] = [];
  private seedStep: Step | null = null;
  private reads: GpuRead[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private placeholders = new Map<number, GPUBuffer>(); // epilogue bindings not named, past the planned placeholders
  private subs = new Map<number, Promise<Sub | null>>(); // per k < batch: the dispatches of the first k images (PlanDesc.sub)

  constructor(readonly model: Model, readonly desc: PlanDesc) {
    this.batch = desc.batch;
    this.passes = desc.passes;
    this.seedAt = desc.seedAt;
    this.counts = desc.counts;
    this.mem = model.gpu.ledger(`${model.name}: plan batch=${desc.batch}`, 'plan');
    this.generation = model.gpu.generation;
  }

  get o() { return this.desc.o; }
  get g() { return this.model.graph; }
  /** GPU bytes of this plan's buffers (activations, gradients, read-back stages, uniforms, scratch). */
  get bytes() { return this.mem.bytes; }
  describe() { return `batch=${this.batch}${this.passes.length ? ` backward=${this.passes.map((p) => p.mode).join('+')}` : ' forward'}`; }
  /** Throws DeviceLostError when the device this plan was built on is lost or replaced (its buffers are gone). */
  live() {
    const gpu = this.model.gpu;
    gpu.check();
    if (this.generation !== gpu.generation) throw new DeviceLostError('GPU device lost: this plan was built on a device that has since been replaced (build it again)');
    if (this.destroyed) throw new GpuError('this plan was destroyed');
  }

  /** Allocates the planned buffers, makes every dispatch's Step and compiles the pipelines they use. */
  async build() {
    for (const b of this.desc.buffers) this.gpuBufs.set(b, this.alloc(b.label, b.bytes, b.usage === 'read' ? GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST : undefined));
    const steps = (ds: Dispatch[]) => ds.map((d) => this.stepOf(d));
    this.forward = steps(this.desc.forward);
    this.refForward = steps(this.desc.refForward);
    this.backward = steps(this.desc.backward);
    this.seedStep = this.desc.seed && this.stepOf(this.desc.seed);
    for (const r of this.desc.reads) this.reads.push({ ...r, src: this.gpuOf(r.src), stage: this.gpuOf(r.stage) });
    await this.resolve();
  }

  /** The GPU buffer of a planned buffer (a model buffer is uploaded on first use). */
  gpuOf(b: Buf): GPUBuffer { return b.owner === 'model' ? this.model.gpuOf(b) : this.gpuBufs.get(b)!; }
  alloc(label: string, bytes: number, usage?: number, data?: ArrayBufferView) {
    if (bytes > this.model.limits.binding) throw new ModelError(`${label} needs ${bytes} bytes at batch ${this.batch}, over this device's storage binding limit of ${this.model.limits.binding}; use a batch of at most ${this.model.maxBatch()}`);
    return this.mem.buffer(label, bytes, usage, data);
  }

  /** Activation buffer of a tensor in the actual (ref=false) or reference pass. */
  buf(t: string, ref = false): GPUBuffer { return this.gpuOf(this.desc.buf(t, ref)); }
  /** Gradient buffer of a tensor in backward pass `pass`. */
  gradBuf(t: string, pass = 0): GPUBuffer { return this.gpuOf(this.desc.gradBuf(t, pass)); }

  private stepOf(d: Dispatch, onto?: Map<Buf, Buf>): Step {
    const bind = Object.fromEntries(Object.entries(d.bind).map(([k, b]) => [k, this.gpuOf(onto?.get(b) ?? b)]));
    return this.makeStep(d.family, d.entry, d.consts, d.label, d.params, bind, d.groups);
  }

  /** A dispatch with its own uniform buffer and bind group, made once: Params by field name, buffers by WGSL binding
   *  name; a binding not named gets this plan's placeholder for that index (never read by the entry point). For
   *  epilogues (the CAM kernels) that run after the planned dispatches. */
  step(f: Family, entry: string, consts: Record<string, number>, label: string, params: ParamValues, bind: Record<string, GPUBuffer>, threads: number): Step {
    return this.makeStep(f, entry, consts, label, params, bind, grid(threads, FAMILIES[f].wg, this.model.limits.maxDim));
  }

  private makeStep(f: Family, entry: string, consts: Record<string, number>, label: string, params: ParamValues, bind: Record<string, GPUBuffer>, groups: [number, number]): Step {
    const gpu = this.model.gpu;
    const u = this.mem.uniform(`${label}.params`, f, params);
    const fill = (b: Binding) => {
      const planned = this.desc.placeholders.get(b.index);
      if (planned) return this.gpuOf(planned);
      let p = this.placeholders.get(b.index);
      if (!p) { p = this.alloc(`placeholder[${b.index}]`, 16); this.placeholders.set(b.index, p); }
      return p;
    };
    return { pipe: gpu.pipeline(f, entry, consts), bind: gpu.bindGroup(label, f, u, bind, fill), groups };
  }

  /** The steps of a k-image run (k < batch), made once per k: the plan at batch k on this plan's buffers (only the
   *  first k images' rows of each are touched), so it dispatches about k/batch of the work; null: run the whole batch. */
  private subOf(k: number): Promise<Sub | null> {
    let s = this.subs.get(k);
    if (!s) {
      // not gpu.scoped(): run() may be called inside a caller's scoped(), whose queue it would wait on forever
      s = this.model.gpu.scopedSync(`${this.model.name}: plan batch=${this.batch} for ${k} images`, () => {
        const sub = this.desc.sub(k);
        if (!sub) return null;
        const steps = (ds: Dispatch[]) => ds.map((d) => this.stepOf(d, sub.onto));
        const r: Sub = { forward: steps(sub.desc.forward), refForward: steps(sub.desc.refForward), backward: steps(sub.desc.backward),
          seedStep: sub.desc.seed && this.stepOf(sub.desc.seed, sub.onto) };
        return r;
      }).then(async (r) => {
        if (!r) return null;
        const all = [r.seedStep, ...r.forward, ...r.refForward, ...r.backward].filter((x) => x !== null);
        const pipes = await Promise.all(all.map((x) => x.pipe));
        all.forEach((x, i) => { x.pipeline = pipes[i]; });
        return r;
      });
      this.subs.set(k, s);
      s.catch(() => this.subs.delete(k));
    }
    return s;
  }

  /** Awaits the pipelines of every step (gpu.pipeline compiles each once, concurrently, on first use). */
  private async resolve() {
    const all = [this.seedStep, ...this.forward, ...this.refForward, ...this.backward, ...this.post].filter((s) => s !== null);
    const pipes = await Promise.all(all.map((s) => s.pipe));
    all.forEach((s, i) => { s.pipeline = pipes[i]; });
  }

  /** Appends dispatches that run after the backward passes in the same submit (the CAM epilogue), and their
   *  read-backs (extra[name]; perRow: the buffer holds `batch` rows and only the rows of the images given are returned). */
  async epilogue(steps: Step[], reads: { name: string; src: GPUBuffer; bytes: number; perRow?: boolean }[]) {
    this.post.push(...steps);
    this.counts.epilogue = this.post.length;
    for (const r of reads) this.reads.push({ name: r.name, kind: 'extra', pass: 0, src: r.src, bytes: r.bytes, perRow: r.perRow ?? true,
      stage: this.alloc(`${r.name}.extra0.read`, r.bytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST) });
    await this.resolve();
  }

  /** Runs forward (and backward) for x (k <= batch images, NCHW, normalised); one submit, one read-back. Fewer
   *  images than the batch dispatch the plan at batch k on this plan's buffers (subOf): about k/batch of the work. */
  run(x: Float32Array, o: RunOptions = {}): Promise<RunResult> {
    const r = this.queue.then(() => this.runNow(x, o));
    this.queue = r.catch(() => undefined);
    return r;
  }

  private async runNow(x: Float32Array, o: RunOptions): Promise<RunResult> {
    const m = this.model, gpu = m.gpu, dev = m.device, g = this.g;
    this.live();
    const inShape = g.tensors.get(g.input)!.shape, per = numel(inShape), k = x.length / per;
    if (!Number.isInteger(k) || k < 1 || k > this.batch)
      throw new ModelError(`input has ${x.length} values; expected k*${per} for 1 <= k <= ${this.batch} images of shape ${fmt(inShape)}`);
    const sub = k < this.batch ? await this.subOf(k) : null;
    this.live();
    const run: Sub = sub ?? { forward: this.forward, refForward: this.refForward, backward: this.backward, seedStep: this.seedStep };
    dev.queue.writeBuffer(this.buf(g.input), 0, own(x));
    const F = numel(g.tensors.get(this.seedAt)!.shape);
    if (this.passes.length) {
      if (o.classes) {
        if (o.classes.length !== k) throw new ModelError(`classes has ${o.classes.length} entries for ${k} images`);
        for (const c of o.classes) if (c >= F || c < -F) throw new ModelError(`class ${c >= 0 ? c : `rank ${-c}`} is out of range for ${F} classes`);
        const cls = new Int32Array(this.batch); cls.set(o.classes);
        dev.queue.writeBuffer(this.gpuOf(this.desc.classes!), 0, cls);
      } else {
        const seed = o.seed ?? new Float32Array(F * k).fill(1);
        if (seed.length !== F * k && seed.length !== F * this.batch)
          throw new ModelError(`seed has ${seed.length} values; expected ${F * k} (${k} images x ${fmt(g.tensors.get(this.seedAt)!.shape)} at '${this.seedAt}')`);
        const full = new Float32Array(F * this.batch); full.set(seed.subarray(0, F * k));
        dev.queue.writeBuffer(this.gradBuf(this.seedAt, 0), 0, full);
      }
    }
    if (this.desc.refInputNeeded) {
      if (!o.refInput || o.refInput.length !== x.length) throw new ModelError(`DeepLIFT with a reference input needs refInput with ${x.length} values`);
      dev.queue.writeBuffer(this.buf(g.input, true), 0, own(o.refInput));
    }
    const enc = dev.createCommandEncoder({ label: 'camgpu.run' });
    if (this.desc.zero) enc.clearBuffer(this.gpuOf(this.desc.zero));
    const phases = [[...run.forward, ...run.refForward, ...(o.classes && run.seedStep ? [run.seedStep] : [])], [...run.backward, ...this.post]];
    const timer = o.profile ? this.timer(phases.flat().length) : null;
    const trace: RunResult['trace'] = o.trace ? [] : undefined;
    phases.forEach((steps, i) => {
      if (i === 1) for (let p = 1; p < this.passes.length; p++) enc.copyBufferToBuffer(this.gradBuf(this.seedAt, 0), 0, this.gradBuf(this.seedAt, p), 0, this.desc.size(this.seedAt));
      const label = i === 0 ? 'camgpu.forward' : 'camgpu.backward';
      let pass = timer ? null : enc.beginComputePass({ label });
      for (const s of steps) {
        // profiling: one pass per dispatch, timestamps written at its start and end
        if (timer) pass = enc.beginComputePass({ label, timestampWrites: { querySet: timer.set, beginningOfPassWriteIndex: timer.n, endOfPassWriteIndex: timer.n + 1 } });
        pass!.setPipeline(s.pipeline!); pass!.setBindGroup(0, s.bind); pass!.dispatchWorkgroups(s.groups[0], s.groups[1]);
        trace?.push({ label: s.bind.label, pipeline: s.pipeline!.label, groups: s.groups });
        if (timer) { pass!.end(); timer.n += 2; timer.labels.push([s.bind.label, i === 0 ? 'forward' : 'backward']); }
      }
      if (!timer) pass!.end();
    });
    if (timer) { enc.resolveQuerySet(timer.set, 0, timer.n, timer.resolve, 0); enc.copyBufferToBuffer(timer.resolve, 0, timer.stage, 0, timer.n * 8); }
    for (const r of this.reads) enc.copyBufferToBuffer(r.src, 0, r.stage, 0, r.perRow ? (r.bytes / this.batch) * k : r.bytes); // the rows of the images given
    dev.queue.submit([enc.finish()]);
    gpu.submits++;
    let profile: ProfileEntry[] | undefined;
    try {
      await Promise.all([...this.reads.map((r) => r.stage.mapAsync(GPUMapMode.READ)), timer?.stage.mapAsync(GPUMapMode.READ)])
        .catch(async (e) => { throw await gpu.failure(e, this.generation); });
      this.live(); // lost after the copies were read: nothing from this run is returned
      if (timer) {
        const t = new BigInt64Array(timer.stage.getMappedRange(0, timer.n * 8).slice(0));
        profile = timer.labels.map(([label, phase], j) => ({ label, phase, ms: Number(t[2 * j + 1] - t[2 * j]) / 1e6 }));
      }
    } finally { timer?.mem.destroy(); }
    const res: RunResult = { logits: new Float32Array(0), values: new Map(), grads: new Map(), passes: this.passes.map(() => new Map()), extra: new Map() };
    for (const r of this.reads) {
      const n = r.perRow ? (r.bytes / 4 / this.batch) * k : r.bytes / 4;
      const raw = r.stage.getMappedRange(0, r.bytes).slice(0, n * 4);
      r.stage.unmap();
      if (r.kind === 'targets') { if (o.classes) res.targets = new Int32Array(raw); continue; }
      const v = new Float32Array(raw);
      if (r.kind === 'value') res.values.set(r.name, v);
      else if (r.kind === 'grad') res.passes[r.pass].set(r.name, v);
      else if (r.kind === 'extra') res.extra.set(r.name, v);
      else res.refLogits = v;
    }
    res.grads = res.passes[0] ?? new Map();
    res.logits = res.values.get(m.logits)!;
    res.profile = profile;
    res.trace = trace;
    return res;
  }

  /** A query set with two timestamps per dispatch and the buffers to read them back (destroyed after the run). */
  private timer(steps: number) {
    const dev = this.model.device, count = 2 * steps, mem = this.model.gpu.ledger(`${this.model.name}: profile`, 'scratch');
    if (!dev.features.has('timestamp-query')) throw new GpuError(`profiling needs the 'timestamp-query' feature, which this device was created without${this.model.gpu.adapterInfo ? ` (${this.model.gpu.adapterInfo})` : ''}`);
    if (count > 4096) throw new ModelError(`profiling times at most 2048 dispatches per run (a query set holds 4096 timestamps); this plan has ${steps}`);
    return {
      mem, set: mem.querySet('camgpu.profile', count), n: 0, labels: [] as [string, ProfileEntry['phase']][],
      resolve: mem.buffer('camgpu.profile.resolve', count * 8, GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC),
      stage: mem.buffer('camgpu.profile.read', count * 8, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST),
    };
  }

  /** Submits extra dispatches against this plan's buffers (after run()), and returns the named epilogue read-backs whole. */
  rerun(steps: Step[], names: string[]): Promise<Map<string, Float32Array>> {
    const r = this.queue.then(async () => {
      this.live();
      const dev = this.model.device, reads = this.reads.filter((q) => q.kind === 'extra' && names.includes(q.name));
      for (const s of steps) s.pipeline ??= await s.pipe;
      this.live();
      const enc = dev.createCommandEncoder({ label: 'camgpu.rerun' }), pass = enc.beginComputePass({ label: 'camgpu.rerun' });
      for (const s of steps) { pass.setPipeline(s.pipeline!); pass.setBindGroup(0, s.bind); pass.dispatchWorkgroups(s.groups[0], s.groups[1]); }
      pass.end();
      for (const q of reads) enc.copyBufferToBuffer(q.src, 0, q.stage, 0, q.bytes);
      dev.queue.submit([enc.finish()]);
      this.model.gpu.submits++;
      await Promise.all(reads.map((q) => q.stage.mapAsync(GPUMapMode.READ))).catch(async (e) => { throw await this.model.gpu.failure(e, this.generation); });
      this.live();
      const out = new Map<string, Float32Array>();
      for (const q of reads) { out.set(q.name, new Float32Array(q.stage.getMappedRange().slice(0))); q.stage.unmap(); }
      return out;
    });
    this.queue = r.catch(() => undefined);
    return r;
  }

  private destroyed = false;
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.mem.destroy();
    this.model.forget(this);
  }
}

/** A copy when the data lives in shared memory (Dawn's writeBuffer rejects wasm/shared buffers). */
const own = (a: Float32Array): Float32Array<ArrayBuffer> => (a.buffer instanceof ArrayBuffer ? a as Float32Array<ArrayBuffer> : a.slice());
