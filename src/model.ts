// A loaded model (weights on the GPU, pipelines compiled) and its static plans: buffers, bind groups and
// dispatches made once per (batch, outputs, gradients, mode) and replayed with one submit per request.
import { Graph, ModelError, Node, consumers, fmt, isConst, logitsOf, numel, producers } from './graph.js';
import { DeviceLostError, Family, FAMILIES, Gpu, GpuError, Ledger, grid } from './gpu.js';
import { importOnnx } from './import.js';
import { ConvKernels, Tile, convKP, convKernels, convShape, transposedConv, winogradWeights } from './conv.js';
import { OPS, opDef } from './ops/index.js';
import { ConvEnc, convForward } from './ops/conv.js';
import type { Back, Enc, Mode, PipeSpec, Step, Weights } from './ops/types.js';
import type { Binding, ParamValues } from './reflect.js';

export type { Mode, Step } from './ops/types.js';

/** One forward dispatch: a node, or a conv fused with the residual add and/or activation that alone read its output
 *  (inputs: what the unit reads from outside itself). */
interface Unit { nodes: Node[]; inputs: string[]; output: string }

/** One backward pass: gradients (or DeepLIFT multipliers) of the seed w.r.t. the named tensors. */
export interface Backward {
  grads: string[];
  mode?: Mode;
  /** DeepLIFT reference: a reference input image (given to run()), or zeros at a named tensor (default: 'input'). */
  reference?: 'input' | { zeroAt: string };
}
export interface PlanOptions {
  batch: number;
  /** Tensors whose forward values to read back (the logits always are). */
  read?: string[];
  /** Backward passes, all seeded at the same place and run after one forward (at most one DeepLIFT pass). */
  backward?: Backward[];
  /** Shorthand for a single backward pass. */
  grads?: string[]; mode?: Mode; reference?: 'input' | { zeroAt: string };
  /** Where the backward seed is placed (default: the logits, i.e. the input of a final Softmax). */
  seedAt?: string;
  /** Target score for seeds chosen on the GPU from classes (run({ classes })): the logit or the softmax probability. */
  score?: 'logit' | 'prob';
}
export interface RunOptions {
  /** Seed at seedAt, (k, numel) values; or */
  seed?: Float32Array;
  /** one class per image, chosen on the GPU: c >= 0 that class, -(r+1) the r-th largest logit (-1 = top-1). */
  classes?: Int32Array;
  refInput?: Float32Array;
  /** Time every dispatch on the GPU with timestamp queries (the device needs 'timestamp-query'); see RunResult.profile. */
  profile?: boolean;
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
  private weights = new Map<string, Weights>();
  private consts = new Map<string, GPUBuffer>();
  private plans = new Set<Plan>();
  private heads = new Set<Model>(); // head() sub-models: their plans count in gpuBytes and go with this model
  private parent: Model | null = null;
  private own: Ledger; // weight buffers (a head uses its parent's)
  private uploaded = 0; // gpu.generation the weights were uploaded at
  private reuploading: Promise<void> | null = null;
  /** Times the weights were uploaded again onto a new device after a loss (plans made before are stale). */
  reuploads = 0;
  readonly limits: { binding: number; buffer: number; maxDim: number };

  private source: { bytes: Uint8Array; opts: LoadOptions } | null = null; // to load the same ONNX at another input size
  private shapes = new Map<string, Promise<Model>>();
  private owner = true; // a head() shares its parent's weight buffers and does not free them
  tiles: Record<string, Tile> = {}; // tuned forward conv tiles by convShape
  winogradScratch = 32 * 2 ** 20;
  private wino = new Map<string, GPUBuffer>(); // Winograd weights by conv node
  private transposedNodes = new Map<string, Node>(); // backward-as-forward convs by conv node (transposed())

  private constructor(readonly gpu: Gpu, readonly graph: Graph, readonly name: string) {
    const l = gpu.device.limits;
    this.own = gpu.ledger(`${name}: weights`, 'weights');
    this.uploaded = gpu.generation;
    this.limits = { binding: l.maxStorageBufferBindingSize, buffer: l.maxBufferSize, maxDim: l.maxComputeWorkgroupsPerDimension };
  }

  /** Loads an ONNX file (bytes) or a builder Graph: uploads weights and compiles every pipeline it can need. */
  static async load(device: GPUDevice | Gpu, source: Uint8Array | Graph, name = 'model', opts: LoadOptions = {}): Promise<Model> {
    const gpu = device instanceof Gpu ? device : new Gpu(device);
    await gpu.ready();
    const graph = source instanceof Uint8Array ? importOnnx(source, { inputShape: opts.inputShape }) : source;
    const m = new Model(gpu, graph, name);
    if (source instanceof Uint8Array && opts.inputShape) m.source = { bytes: source, opts }; // kept only for a model loaded at a chosen size
    if (opts.maxBinding) m.limits.binding = Math.min(m.limits.binding, opts.maxBinding);
    if (opts.tiles) m.tiles = opts.tiles;
    if (opts.winogradScratch) m.winogradScratch = opts.winogradScratch;
    try {
      await gpu.scoped(`${name}: weights`, () => m.upload());
      await m.compile();
    } catch (e) { m.destroy(); throw e; } // what was uploaded before the error
    return m;
  }

  private compile() { return Promise.all(this.pipelinesNeeded().map(([f, e, c]) => this.gpu.pipeline(f, e, c))); }

  /**
   * A live device with this model's weights on it. After a device loss (Gpu.ready puts a new device in place) the
   * plans made on the old one are destroyed, the weights are uploaded again from the host copies the graph keeps and
   * the pipelines compiled again, once however many calls wait; a head defers to the model it came from.
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
        await this.compile();
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
    const g = this.graph, down = new Set([tensor]), nodes: Node[] = [];
    if (!g.tensors.has(tensor)) throw new ModelError(`'${tensor}' is not a tensor of this model`);
    for (const n of g.nodes) {
      if (!n.inputs.some((i) => down.has(i))) continue;
      const other = n.inputs.find((i) => !down.has(i) && !isConst(g, i));
      if (other) throw new ModelError(`the head after '${tensor}' also reads '${other}' (node '${n.name}'), so it cannot be re-run from '${tensor}' alone`);
      down.add(n.output); nodes.push(n);
    }
    if (!down.has(g.output)) throw new ModelError(`'${tensor}' does not lead to the output`);
    const tensors = new Map([...g.tensors].filter(([k, t]) => down.has(k) || t.data));
    const h = new Model(this.gpu, { input: tensor, output: g.output, tensors, nodes }, `${this.name}:head`);
    h.weights = this.weights; h.consts = this.consts; h.owner = false; h.tiles = this.tiles; h.winogradScratch = this.winogradScratch; h.wino = this.wino; h.transposedNodes = this.transposedNodes;
    h.parent = this;
    this.heads.add(h);
    return h;
  }

  get device() { return this.gpu.device; }
  get logits() { return logitsOf(this.graph); }
  get inputShape() { return this.graph.tensors.get(this.graph.input)!.shape; }
  get numClasses() { return numel(this.graph.tensors.get(this.logits)!.shape); }

  /** Uploads a node's weights through its op record (conv: transposed for vec4 loads; linear: row chunks that fit one
   *  storage binding) and any constant operand it reads. */
  private uploadNode(n: Node) {
    const binding = this.limits.binding;
    const buffer = (label: string, data: Float32Array) => {
      if (data.byteLength > binding) throw new ModelError(`node '${n.name}' (${n.source}): ${label} needs ${data.byteLength} bytes, over this device's storage binding limit of ${binding}`);
      return this.mem.buffer(label, data.byteLength, GPUBufferUsage.STORAGE, data);
    };
    const w = opDef(n.op).upload?.({ buffer, binding }, n, n.op);
    if (w) this.weights.set(n.name, w);
    for (const i of n.inputs) {
      const t = this.graph.tensors.get(i);
      if (t?.data && !this.consts.has(i)) this.consts.set(i, this.mem.buffer(`${i}.const`, t.data.byteLength, GPUBufferUsage.STORAGE, t.data));
    }
  }

  /** The backward to a stride-1 conv's input as a forward conv (conv.ts transposedConv), weights uploaded on first
   *  use; null where that does not apply. */
  transposed(n: Node): Node | null {
    let t = this.transposedNodes.get(n.name);
    if (!t) {
      const made = transposedConv(n);
      if (!made) return null;
      this.uploadNode(made); this.transposedNodes.set(n.name, made); t = made;
    }
    return t;
  }

  private upload() {
    for (const n of this.graph.nodes) this.uploadNode(n);
  }

  /** [family, entry, constants] of every pipeline the graph can use, forward and backward in every mode. */
  private pipelinesNeeded(): PipeSpec[] {
    const seeds: PipeSpec[] = [['seed', 'seed_forward', { PROB: 0 }], ['seed', 'seed_forward', { PROB: 1 }]];
    return [...seeds, ...this.graph.nodes.flatMap((n) => opDef(n.op).pipelines(this, n, n.op))];
  }

  /** Bytes of activation memory one sample needs (every tensor, gradients and reference pass excluded). */
  bytesPerSample(): number {
    let s = 0;
    for (const [name, t] of this.graph.tensors) if (!t.data && !this.isAlias(name)) s += numel(t.shape) * 4;
    return s;
  }
  /** Largest batch whose biggest activation fits one storage binding. */
  maxBatch(): number {
    let big = 0;
    for (const t of this.graph.tensors.values()) if (!t.data) big = Math.max(big, numel(t.shape) * 4);
    return Math.max(1, Math.floor(this.limits.binding / big));
  }
  isAlias(t: string) { return producers(this.graph).get(t)?.op.kind === 'alias'; }

  async plan(o: PlanOptions): Promise<Plan> {
    await this.ready();
    const p = new Plan(this, o);
    this.plans.add(p);
    try { await this.gpu.scoped(`${this.name}: plan batch=${o.batch}`, () => p.build()); }
    catch (e) { p.destroy(); throw e; } // free what was allocated before the error
    return p;
  }

  weightsOf(n: Node) { return this.weights.get(n.name)!; }
  /** U = G g G^T of a 3x3 conv for F(m x m, 3x3) (conv.ts winogradWeights), made on first use. */
  winogradWeights(n: Node, m: 2 | 4): GPUBuffer {
    const key = `${n.name} F${m}`;
    let u = this.wino.get(key);
    if (!u) { const U = winogradWeights(n, m); u = this.mem.buffer(`${n.name}.winograd${m}`, U.byteLength, GPUBufferUsage.STORAGE, U); this.wino.set(key, u); }
    return u;
  }

  /** A conv's kernels with its tuned forward tile (LoadOptions.tiles), else the default. */
  convKernels(n: Node) { return convKernels(this.graph, n, this.tiles[convShape(this.graph, n)]); }
  constOf(t: string) { return this.consts.get(t); }
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
    this.weights.clear(); this.consts.clear(); this.wino.clear(); this.transposedNodes.clear();
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

/** One static execution plan. */
export class Plan implements Enc {
  readonly batch: number;
  readonly passes: Required<Backward>[];
  private bufs = new Map<string, GPUBuffer>();      // activation buffers by root tensor
  private refs = new Map<string, GPUBuffer>();      // reference-pass buffers (DeepLIFT) by root tensor
  private grads: Map<string, GPUBuffer>[] = [];     // per backward pass: gradient buffers by root tensor
  private idx = new Map<string, GPUBuffer>();       // maxpool argmax by output root (and `ref:` for the reference pass)
  private mem: Ledger;
  private readonly generation: number; // gpu.generation this plan's buffers and bind groups belong to
  private forward: Step[] = [];
  private refForward: Step[] = [];
  private backward: Step[] = [];
  private post: Step[] = [];
  private seedStep: Step | null = null;
  private classBuf!: GPUBuffer; private chosenBuf!: GPUBuffer;
  private reads: { name: string; kind: 'value' | 'grad' | 'ref' | 'extra' | 'targets'; pass: number; src: GPUBuffer; stage: GPUBuffer; bytes: number; perRow: boolean }[] = [];
  private zero: string | null = null;
  private refInputNeeded = false;
  readonly seedAt: string;
  private queue: Promise<unknown> = Promise.resolve();
  private placeholders = new Map<number, GPUBuffer>(); // per binding index: what an unnamed binding gets
  private winoScratch: [GPUBuffer, GPUBuffer] | null = null; private winoZero: GPUBuffer | null = null;
  readonly counts = { forward: 0, fused: 0, reference: 0, backward: 0, epilogue: 0 };

  constructor(readonly model: Model, readonly o: PlanOptions) {
    this.batch = o.batch;
    this.seedAt = o.seedAt ?? model.logits;
    this.mem = model.gpu.ledger(`${model.name}: plan batch=${o.batch}`, 'plan');
    this.generation = model.gpu.generation;
    if (!Number.isInteger(o.batch) || o.batch < 1) throw new ModelError(`batch must be a positive integer, got ${o.batch}`);
    const passes = o.backward ?? (o.grads?.length ? [{ grads: o.grads, mode: o.mode, reference: o.reference }] : []);
    this.passes = passes.map((b) => ({ grads: b.grads, mode: b.mode ?? 'grad', reference: b.reference ?? 'input' }));
    if (this.passes.filter((b) => b.mode === 'deeplift').length > 1) throw new ModelError('a plan takes at most one DeepLIFT pass (one reference); use two plans');
  }

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
  root(t: string): string { const p = producers(this.g).get(t); return p?.op.kind === 'alias' ? this.root(p.inputs[0]) : t; }
  private size(t: string) { return this.batch * numel(this.g.tensors.get(t)!.shape) * 4; }
  alloc(label: string, bytes: number, usage?: number, data?: ArrayBufferView) {
    if (bytes > this.model.limits.binding) throw new ModelError(`${label} needs ${bytes} bytes at batch ${this.batch}, over this device's storage binding limit of ${this.model.limits.binding}; use a batch of at most ${this.model.maxBatch()}`);
    return this.mem.buffer(label, bytes, usage, data);
  }
  private known(t: string, what: string) {
    if (!this.g.tensors.has(t)) throw new ModelError(`${what} '${t}' is not a tensor of this model; 4-D candidates: ${candidates(this.g).join(', ')}`);
    if (isConst(this.g, t)) throw new ModelError(`${what} '${t}' is a constant, not an activation`);
  }

  /** Activation buffer of a tensor in the actual (ref=false) or reference pass. */
  buf(t: string, ref = false): GPUBuffer {
    const c = this.model.constOf(t); if (c) return c;
    const r = this.root(t);
    if (ref && this.refs.has(r)) return this.refs.get(r)!;
    return this.bufs.get(r)!;
  }
  /** Gradient buffer of a tensor in backward pass `pass`. */
  gradBuf(t: string, pass = 0): GPUBuffer {
    const b = this.grads[pass]?.get(this.root(t));
    if (!b) throw new ModelError(`no gradient of '${t}' in backward pass ${pass}`);
    return b;
  }

  async build() {
    const g = this.g, m = this.model;
    for (const t of [...(this.o.read ?? []), ...this.passes.flatMap((p) => p.grads)]) this.known(t, 'tensor');
    this.known(this.seedAt, 'seed tensor');
    const needs = this.passes.map((pass) => this.gradientPath(pass.grads));
    this.allocateWinograd(needs);
    const units = this.units(needs);
    this.allocateActivations(units);
    for (const u of units) this.forward.push(...(u.nodes.length > 1 ? this.encodeFused(u) : this.encodeForward(u.nodes[0], false)));
    this.counts.forward = this.forward.length;
    this.counts.fused = units.filter((u) => u.nodes.length > 1).length;

    this.passes.forEach((pass, k) => {
      const need = needs[k], grads = new Map<string, GPUBuffer>();
      this.grads.push(grads);
      if (pass.mode === 'deeplift') this.buildReference(need, pass.reference);
      for (const t of need) { const r = this.root(t); if (!grads.has(r)) grads.set(r, this.alloc(`${r}.grad${k}`, this.size(r))); }
      const written = new Set<string>([this.root(this.seedAt)]);
      for (const n of [...g.nodes].reverse()) {
        if (n.op.kind === 'alias' || !need.has(n.output)) continue;
        const back: Back = {
          pass: k, mode: pass.mode, label: `${n.name}.backward${k}`, need, dy: grads.get(this.root(n.output))!,
          dx: (t) => grads.get(this.root(t))!,
          acc: (t) => { const r = this.root(t), a = written.has(r) ? 1 : 0; written.add(r); return a; },
        };
        this.backward.push(...opDef(n.op).backward(this, n, n.op, back));
      }
    });
    this.counts.backward = this.backward.length;
    if (this.passes.length) {
      const F = numel(g.tensors.get(this.seedAt)!.shape);
      this.classBuf = this.alloc('classes', this.batch * 4);
      this.chosenBuf = this.alloc('targets', this.batch * 4);
      this.seedStep = this.step('seed', 'seed_forward', { PROB: this.o.score === 'prob' ? 1 : 0 }, 'seed', { N: this.batch, F },
        { logits: this.buf(this.seedAt), cls: this.classBuf, seed: this.gradBuf(this.seedAt, 0), chosen: this.chosenBuf }, this.batch);
      this.readBack('targets', 'targets', this.chosenBuf, this.batch * 4);
    }
    for (const t of new Set([this.seedAt, m.logits, ...(this.o.read ?? [])])) this.readBack(t, 'value', this.buf(t), this.size(t));
    this.passes.forEach((p, k) => { for (const t of p.grads) this.readBack(t, 'grad', this.gradBuf(t, k), this.size(t), k); });
    if (this.refs.size) this.readBack(this.seedAt, 'ref', this.buf(this.seedAt, true), this.size(this.seedAt));
    await this.resolve();
  }

  /** Winograd's transformed input and GEMM output (one pair for every Winograd conv: they run one after another),
   *  and the zero bias its GEMM reads. */
  private allocateWinograd(needs: Set<string>[]) {
    let v = 0, mm = 0, kp = 0;
    const convs = this.g.nodes.filter((n) => n.op.kind === 'conv');
    const back = convs.filter((n) => needs.some((s) => s.has(n.inputs[0]))).map((n) => this.model.transposed(n)).filter((t) => t !== null);
    for (const n of [...convs, ...back]) {
      if (n.op.kind !== 'conv') continue;
      const k = this.convKernels(n);
      if (!k.wino) continue;
      const [C] = this.g.tensors.get(n.inputs[0])!.shape, K = n.op.cout, T4 = this.winogradChunk(n, k.wino), E = (k.wino.m + 2) ** 2;
      v = Math.max(v, this.batch * E * C * T4 * 4); mm = Math.max(mm, this.batch * E * K * T4 * 4); kp = Math.max(kp, convKP(K) * 4);
    }
    if (v) this.winoScratch = [this.alloc('winograd.V', v), this.alloc('winograd.M', mm)], this.winoZero = this.alloc('winograd.zero-bias', kp);
  }

  /**
   * Activation buffers. A plan with a backward pass keeps every activation (the backward reads them). A forward-only
   * plan reuses buffers by lifetime: a tensor's buffer returns to a pool after the last node that reads it, and a
   * node's output takes the smallest pooled buffer that is large enough (the input, the read-back tensors and the
   * logits are never released), so peak memory is a few activations instead of all of them.
   */
  private allocateActivations(units: Unit[]) {
    const g = this.g, inner = new Set(units.flatMap((u) => u.nodes.slice(0, -1).map((n) => this.root(n.output))));
    const roots = [...g.tensors].filter(([n, t]) => !t.data && this.root(n) === n && !inner.has(n)).map(([n]) => n);
    if (this.passes.length) { for (const r of roots) this.bufs.set(r, this.alloc(r, this.size(r))); return; }
    const keep = new Set([g.input, this.seedAt, this.model.logits, ...(this.o.read ?? [])].map((t) => this.root(t)));
    const last = new Map<string, number>();
    units.forEach((u, i) => { for (const t of u.inputs) if (!isConst(g, t)) last.set(this.root(t), i); });
    const pool: GPUBuffer[] = [];
    const take = (r: string) => {
      if (keep.has(r)) return this.alloc(r, this.size(r));
      const need = this.size(r), i = pool.reduce((b, x, j) => (x.size >= need && (b < 0 || x.size < pool[b].size) ? j : b), -1);
      return i >= 0 ? pool.splice(i, 1)[0] : this.alloc(`activation[${this.bufs.size}]`, need);
    };
    this.bufs.set(g.input, this.alloc(g.input, this.size(g.input)));
    units.forEach((u, i) => {
      const r = this.root(u.output);
      if (!this.bufs.has(r)) this.bufs.set(r, take(r));
      for (const t of new Set(u.inputs.map((x) => this.root(x)))) if (last.get(t) === i && !keep.has(t) && this.bufs.has(t)) pool.push(this.bufs.get(t)!);
    });
  }

  /**
   * The forward pass as dispatch units, in order. A conv fuses with the residual add (y = conv + r, r of the same
   * shape) and/or the relu / clip / leaky relu that alone read its output, when no one else needs the tensors in
   * between: they are not read back, not the seed, not on a backward pass's path or read by its nodes, and not
   * used by a DeepLIFT reference pass. The unit runs where its last node was (the residual is ready by then).
   */
  private units(needs: Set<string>[]): Unit[] {
    const g = this.g, cons = consumers(g), keep = new Set<string>();
    const hold = (t: string) => keep.add(this.root(t));
    [g.input, this.seedAt, this.model.logits, ...(this.o.read ?? [])].forEach(hold);
    this.passes.forEach((pass, k) => {
      const used = new Set(needs[k]);
      if (pass.mode === 'deeplift') for (const t of this.downstream(pass.reference === 'input' ? g.input : pass.reference.zeroAt)) used.add(t);
      for (const n of g.nodes) if (used.has(n.output)) { hold(n.output); n.inputs.forEach(hold); }
    });
    const sole = (t: string) => { const c = cons.get(t) ?? []; return c.length === 1 && !keep.has(this.root(t)) ? c[0] : undefined; };
    const same = (a: string, b: string) => fmt(g.tensors.get(a)!.shape) === fmt(g.tensors.get(b)!.shape);
    const groups = new Map<Node, Node[]>(), inner = new Set<Node>();
    for (const c of g.nodes) {
      if (c.op.kind !== 'conv') continue;
      const group = [c]; let next = sole(c.output);
      if (next && (inner.has(next) || groups.has(next))) continue; // claimed by the conv on the add's other side
      if (next?.op.kind === 'add' && next.inputs[0] !== next.inputs[1]) {
        const r = next.inputs.find((i) => i !== c.output)!;
        if (!isConst(g, r) && same(r, c.output)) { group.push(next); next = sole(next.output); }
      }
      if (next && opDef(next.op).convEpilogue?.(next.op) !== undefined) group.push(next);
      if (group.length === 1) continue;
      groups.set(group.at(-1)!, group); group.slice(0, -1).forEach((n) => inner.add(n));
    }
    const units: Unit[] = [];
    for (const n of g.nodes) {
      if (inner.has(n)) continue;
      const nodes = groups.get(n) ?? [n], made = new Set(nodes.map((m) => m.output));
      units.push({ nodes, inputs: [...new Set(nodes.flatMap((m) => m.inputs))].filter((t) => !made.has(t)), output: n.output });
    }
    return units;
  }

  /** Tensors computed from `start` (itself included). */
  private downstream(start: string): Set<string> {
    const down = new Set([start]);
    for (const n of this.g.nodes) if (n.inputs.some((i) => down.has(i))) down.add(n.output);
    return down;
  }

  private readBack(name: string, kind: Plan['reads'][number]['kind'], src: GPUBuffer, bytes: number, pass = 0, perRow = true) {
    this.reads.push({ name, kind, pass, src, bytes, perRow, stage: this.alloc(`${name}.${kind}${pass}.read`, bytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST) });
  }

  /** Pipelines were compiled at load; this only awaits the cached promises. */
  private async resolve() {
    for (const s of [this.seedStep, ...this.forward, ...this.refForward, ...this.backward, ...this.post]) if (s) s.pipeline = await s.pipe;
  }

  /** Appends dispatches that run after the backward passes in the same submit (the CAM epilogue), and their
   *  read-backs (extra[name]; perRow: the buffer holds `batch` rows and only the rows of the images given are returned). */
  async epilogue(steps: Step[], reads: { name: string; src: GPUBuffer; bytes: number; perRow?: boolean }[]) {
    this.post.push(...steps);
    this.counts.epilogue = this.post.length;
    for (const r of reads) this.readBack(r.name, 'extra', r.src, r.bytes, 0, r.perRow ?? true);
    await this.resolve();
  }

  /** Non-constant tensors that lie between a requested gradient target and the seed. */
  private gradientPath(targets: string[]): Set<string> {
    const g = this.g, prod = producers(g), cons = consumers(g);
    const up = new Set<string>(), stack = [this.seedAt];
    while (stack.length) { const t = stack.pop()!; if (up.has(t) || isConst(g, t)) continue; up.add(t); const p = prod.get(t); if (p) stack.push(...p.inputs); }
    const need = new Set<string>(), q = [...targets];
    for (const t of targets) if (!up.has(t)) throw new ModelError(`gradient target '${t}' does not lead to the seed tensor '${this.seedAt}'`);
    while (q.length) { const t = q.pop()!; if (need.has(t) || !up.has(t)) continue; need.add(t); for (const n of cons.get(t) ?? []) q.push(n.output); }
    return need;
  }

  /** DeepLIFT reference pass: the whole net on a reference input, or the nodes after a tensor set to zero. */
  private buildReference(need: Set<string>, ref: 'input' | { zeroAt: string }) {
    const g = this.g;
    const start = ref === 'input' ? g.input : ref.zeroAt;
    this.known(start, 'DeepLIFT reference tensor');
    const down = this.downstream(start);
    if (!need.has(start) && start !== g.input) throw new ModelError(`DeepLIFT reference '${start}' is not on the path from the gradient targets to '${this.seedAt}'`);
    for (const t of down) { const r = this.root(t); if (!this.refs.has(r)) this.refs.set(r, this.alloc(`ref:${r}`, this.size(r))); }
    if (ref !== 'input') this.zero = this.root(start); else this.refInputNeeded = true;
    for (const n of g.nodes) if (down.has(n.output) && n.output !== start) this.refForward.push(...this.encodeForward(n, true));
    this.counts.reference = this.refForward.length;
  }

  /** A dispatch with its own uniform buffer and bind group, made once: Params by field name, buffers by WGSL binding
   *  name; a binding not named gets this plan's placeholder for that index (never read by the entry point). */
  step(f: Family, entry: string, consts: Record<string, number>, label: string, params: ParamValues, bind: Record<string, GPUBuffer>, threads: number): Step {
    const gpu = this.model.gpu;
    const u = this.mem.uniform(`${label}.params`, f, params);
    const fill = (b: Binding) => {
      let p = this.placeholders.get(b.index);
      if (!p) { p = this.alloc(`placeholder[${b.index}]`, 16); this.placeholders.set(b.index, p); }
      return p;
    };
    return { pipe: gpu.pipeline(f, entry, consts), bind: gpu.bindGroup(label, f, u, bind, fill), groups: grid(threads, FAMILIES[f].wg, this.model.limits.maxDim) };
  }

  weights(n: Node): Weights { return this.model.weightsOf(n); }

  /** The conv record's view of this plan (ops/conv.ts ConvEnc). */
  readonly conv: ConvEnc = {
    kernels: (n) => this.convKernels(n),
    chunk: (n, w) => this.winogradChunk(n, w),
    scratch: () => ({ V: this.winoScratch![0], M: this.winoScratch![1], zero: this.winoZero! }),
    winogradWeights: (n, m) => this.model.winogradWeights(n, m),
    transposed: (n) => this.model.transposed(n),
  };

  /** A fused unit: the conv's kernel with the residual and activation in its epilogue, writing the unit's output. */
  private encodeFused(u: Unit): Step[] {
    const [c, ...rest] = u.nodes;
    if (c.op.kind !== 'conv') throw new Error(`internal: fused unit starts with '${c.name}', not a conv`);
    const add = rest.find((n) => n.op.kind === 'add'), a = rest.find((n) => n.op.kind === 'act')?.op;
    const act = a?.kind === 'act' ? { id: OPS.act.convEpilogue!(a)!, alpha: a.alpha, beta: a.beta } : undefined;
    const res = add?.inputs.find((i) => i !== c.output);
    return convForward(this, c, u.nodes.map((n) => n.name).join('+'), this.buf(c.inputs[0]), res ? this.buf(res) : null, this.buf(u.output), act);
  }

  /** Winograd tiles per dispatch (a multiple of 16): as many as keep its scratch, N x (m+2)^2 x max(C, K) floats a
   *  tile, within LoadOptions.winogradScratch and one binding; 0 when not even 16 fit (the layer then runs a direct kernel). */
  winogradChunk(n: Node, w: { m: number; T: number }): number {
    const [C] = this.g.tensors.get(n.inputs[0])!.shape, [K] = this.g.tensors.get(n.output)!.shape, tiles = w.T;
    const perTile = this.batch * (w.m + 2) ** 2 * Math.max(C, K) * 4, fit = Math.floor(Math.min(this.model.winogradScratch, this.model.limits.binding) / perTile / 16) * 16;
    return Math.min(fit, Math.ceil(tiles / 16) * 16);
  }

  /** The model's kernels for a conv, but the direct kernel where not even 16 Winograd tiles fit the scratch at this
   *  batch, and in plans with a DeepLIFT pass from a reference input: its rescale rule divides by the difference of
   *  two forward passes, which amplifies Winograd's larger rounding (F(4x4): 2.7e-6 of the max vs 2.6e-7 direct) and
   *  broke summation-to-delta on the vgg fixture (2.5e-4 vs 1.3e-4). */
  convKernels(n: Node): ConvKernels {
    const k = this.model.convKernels(n);
    if (!k.wino) return k;
    const exact = this.passes.some((p) => p.mode === 'deeplift' && p.reference === 'input');
    return !exact && this.winogradChunk(n, k.wino) >= 16 ? k : convKernels(this.g, n, { TK: k.forwardConsts.TK, TP: k.forwardConsts.TP });
  }

  private encodeForward(n: Node, ref: boolean): Step[] { return opDef(n.op).forward(this, n, n.op, ref); }

  /** A max-pool's argmax buffer, per output tensor and pass. */
  argmax(t: string, ref: boolean): GPUBuffer {
    const key = (ref ? 'ref:' : '') + t;
    if (!this.idx.has(key)) this.idx.set(key, this.alloc(`${key}.argmax`, this.size(t)));
    return this.idx.get(key)!;
  }

  /** Runs forward (and backward) for x (k <= batch images, NCHW, normalised); one submit, one read-back. */
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
    dev.queue.writeBuffer(this.bufs.get(g.input)!, 0, own(x));
    const F = numel(g.tensors.get(this.seedAt)!.shape);
    if (this.passes.length) {
      if (o.classes) {
        if (o.classes.length !== k) throw new ModelError(`classes has ${o.classes.length} entries for ${k} images`);
        for (const c of o.classes) if (c >= F || c < -F) throw new ModelError(`class ${c >= 0 ? c : `rank ${-c}`} is out of range for ${F} classes`);
        const cls = new Int32Array(this.batch); cls.set(o.classes);
        dev.queue.writeBuffer(this.classBuf, 0, cls);
      } else {
        const seed = o.seed ?? new Float32Array(F * k).fill(1);
        if (seed.length !== F * k && seed.length !== F * this.batch)
          throw new ModelError(`seed has ${seed.length} values; expected ${F * k} (${k} images x ${fmt(g.tensors.get(this.seedAt)!.shape)} at '${this.seedAt}')`);
        const full = new Float32Array(F * this.batch); full.set(seed.subarray(0, F * k));
        dev.queue.writeBuffer(this.gradBuf(this.seedAt, 0), 0, full);
      }
    }
    if (this.refInputNeeded) {
      if (!o.refInput || o.refInput.length !== x.length) throw new ModelError(`DeepLIFT with a reference input needs refInput with ${x.length} values`);
      dev.queue.writeBuffer(this.refs.get(g.input)!, 0, own(o.refInput));
    }
    const enc = dev.createCommandEncoder({ label: 'camgpu.run' });
    if (this.zero) enc.clearBuffer(this.refs.get(this.zero)!);
    const phases = [[...this.forward, ...this.refForward, ...(o.classes && this.seedStep ? [this.seedStep] : [])], [...this.backward, ...this.post]];
    const timer = o.profile ? this.timer(phases.flat().length) : null;
    phases.forEach((steps, i) => {
      if (i === 1) for (let p = 1; p < this.passes.length; p++) enc.copyBufferToBuffer(this.gradBuf(this.seedAt, 0), 0, this.gradBuf(this.seedAt, p), 0, this.size(this.seedAt));
      const label = i === 0 ? 'camgpu.forward' : 'camgpu.backward';
      let pass = timer ? null : enc.beginComputePass({ label });
      for (const s of steps) {
        // profiling: one pass per dispatch, timestamps written at its start and end
        if (timer) pass = enc.beginComputePass({ label, timestampWrites: { querySet: timer.set, beginningOfPassWriteIndex: timer.n, endOfPassWriteIndex: timer.n + 1 } });
        pass!.setPipeline(s.pipeline!); pass!.setBindGroup(0, s.bind); pass!.dispatchWorkgroups(s.groups[0], s.groups[1]);
        if (timer) { pass!.end(); timer.n += 2; timer.labels.push([s.bind.label, i === 0 ? 'forward' : 'backward']); }
      }
      if (!timer) pass!.end();
    });
    if (timer) { enc.resolveQuerySet(timer.set, 0, timer.n, timer.resolve, 0); enc.copyBufferToBuffer(timer.resolve, 0, timer.stage, 0, timer.n * 8); }
    for (const r of this.reads) enc.copyBufferToBuffer(r.src, 0, r.stage, 0, r.bytes);
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

/** 4-D activations with spatial size > 1 that lie on the path to the logits: the candidate CAM target layers. */
export function candidates(g: Graph): string[] {
  const prod = producers(g), up = new Set<string>(), stack = [logitsOf(g)];
  while (stack.length) { const t = stack.pop()!; if (up.has(t)) continue; up.add(t); const p = prod.get(t); if (p) stack.push(...p.inputs); }
  return g.nodes.map((n) => n.output).filter((t) => {
    const s = g.tensors.get(t)!.shape;
    return up.has(t) && s.length === 3 && s[1] * s[2] > 1;
  });
}
