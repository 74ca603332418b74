// The GPU-free planner. From a graph, the device limits and the tuned tiles it decides what a plan dispatches and
// which buffers live when: the gradient path, conv fusion, buffer reuse by lifetime, weight chunking and Winograd
// scratch. Its output is plain data (PlanDesc: dispatches with family, entry point, constants, Params, bindings by
// buffer, workgroups and label; buffers with sizes and lifetimes) that src/model.ts's executor allocates, binds and
// replays, and that `camgpu plan` prints without any adapter.
import { Graph, ModelError, Node, consumers, fmt, isConst, logitsOf, numel, producers } from './graph.js';
import { FAMILIES, Family, grid } from './gpu.js';
import { Reflection, ParamValues, reflect } from './reflect.js';
import { ConvKernels, Tile, convKP, convKernels, convShape, transposedConv, winogradWeights } from './conv.js';
import { OPS, opDef } from './ops/index.js';
import { ConvEnc, convForward } from './ops/conv.js';
import type { Back, Buf, Dispatch, Enc, Mode, Weights } from './ops/types.js';

export type { Buf, Dispatch } from './ops/types.js';

/** The device limits a plan is made for. */
export interface Limits { binding: number; buffer: number; maxDim: number }
/** WebGPU's default limits (what `camgpu plan` assumes without an adapter). */
export const DEFAULT_LIMITS: Limits = { binding: 2 ** 27, buffer: 2 ** 28, maxDim: 65535 };

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
/** A read-back: the source buffer is copied into a mapped stage after the dispatches. */
export interface Read { name: string; kind: 'value' | 'grad' | 'ref' | 'extra' | 'targets'; pass: number; src: Buf; stage: Buf; bytes: number; perRow: boolean }

/** One forward dispatch: a node, or a conv fused with the residual add and/or activation that alone read its output
 *  (inputs: what the unit reads from outside itself). */
interface Unit { nodes: Node[]; inputs: string[]; output: string }

const reflections = new Map<Family, Reflection>();
/** A family's Params and bindings, read from its WGSL (no GPU). */
export function reflection(f: Family): Reflection {
  let r = reflections.get(f);
  if (!r) { r = reflect(FAMILIES[f].code); reflections.set(f, r); }
  return r;
}
const roundUp = (bytes: number) => Math.max(16, Math.ceil(bytes / 16) * 16);

/** A model's side of planning: its graph and limits, and the model buffers (weights, constants, Winograd and
 *  transposed-conv weights) described with their data; the executor uploads them. */
export class Planner {
  tiles: Record<string, Tile> = {}; // tuned forward conv tiles by convShape
  winogradScratch = 32 * 2 ** 20;
  /** Every model buffer described so far, in order (Winograd and transposed weights join on first use). */
  statics: Buf[] = [];
  private weights = new Map<string, Weights>();
  private consts = new Map<string, Buf>();
  private wino = new Map<string, Buf>();
  private transposedNodes = new Map<string, Node>();

  constructor(readonly graph: Graph, readonly name: string, readonly limits: Limits) {
    for (const n of graph.nodes) this.describeNode(n);
  }

  /** The sub-graph from `tensor` (a 4-D activation) to the output on this planner's model buffers: the head that
   *  Ablation-CAM re-runs. Throws when a head node reads anything computed before `tensor`. */
  head(tensor: string): Planner {
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
    const p = Object.create(Planner.prototype) as Planner;
    return Object.assign(p, this, { graph: { input: tensor, output: g.output, tensors, nodes }, name: `${this.name}:head` });
  }

  private staticBuf(label: string, data: Float32Array): Buf {
    const b: Buf = { id: this.statics.length, owner: 'model', label, bytes: data.byteLength, size: roundUp(data.byteLength), usage: 'storage', data, first: -1, last: -1 };
    this.statics.push(b);
    return b;
  }

  /** A node's weights through its op record (conv: transposed for vec4 loads; linear: row chunks that fit one
   *  storage binding) and any constant operand it reads. */
  private describeNode(n: Node) {
    const binding = this.limits.binding;
    const buffer = (label: string, data: Float32Array) => {
      if (data.byteLength > binding) throw new ModelError(`node '${n.name}' (${n.source}): ${label} needs ${data.byteLength} bytes, over this device's storage binding limit of ${binding}`);
      return this.staticBuf(label, data);
    };
    const w = opDef(n.op).upload?.({ buffer, binding }, n, n.op);
    if (w) this.weights.set(n.name, w);
    for (const i of n.inputs) {
      const t = this.graph.tensors.get(i);
      if (t?.data && !this.consts.has(i)) this.consts.set(i, this.staticBuf(`${i}.const`, t.data));
    }
  }

  /** The backward to a stride-1 conv's input as a forward conv (conv.ts transposedConv), its weights described on
   *  first use; null where that does not apply. */
  transposed(n: Node): Node | null {
    let t = this.transposedNodes.get(n.name);
    if (!t) {
      const made = transposedConv(n);
      if (!made) return null;
      this.describeNode(made); this.transposedNodes.set(n.name, made); t = made;
    }
    return t;
  }
  /** U = G g G^T of a 3x3 conv for F(m x m, 3x3) (conv.ts winogradWeights), made on first use. */
  winogradWeights(n: Node, m: 2 | 4): Buf {
    const key = `${n.name} F${m}`;
    let u = this.wino.get(key);
    if (!u) { u = this.staticBuf(`${n.name}.winograd${m}`, winogradWeights(n, m)); this.wino.set(key, u); }
    return u;
  }
  weightsOf(n: Node) { return this.weights.get(n.name)!; }
  constOf(t: string) { return this.consts.get(t); }
  /** A conv's kernels with its tuned forward tile (tiles), else the default. */
  convKernels(n: Node) { return convKernels(this.graph, n, this.tiles[convShape(this.graph, n)]); }

  get logits() { return logitsOf(this.graph); }
  isAlias(t: string) { return producers(this.graph).get(t)?.op.kind === 'alias'; }
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

  /** Plans one (batch, read-backs, backward passes) configuration; throws a ModelError on bad options or limits. */
  plan(o: PlanOptions): PlanDesc { return new PlanDesc(this, o); }
}

/** One plan as data: the dispatches in order and the buffers they bind. Implements the op records' Enc. */
export class PlanDesc implements Enc {
  readonly batch: number;
  readonly passes: Required<Backward>[];
  readonly seedAt: string;
  /** Plan-owned buffers, in allocation order (a pooled buffer serves several tensors of a forward-only plan). */
  readonly buffers: Buf[] = [];
  readonly forward: Dispatch[] = [];
  readonly refForward: Dispatch[] = [];
  readonly backward: Dispatch[] = [];
  /** Seeds chosen on the GPU from classes (run({ classes })); runs after the forward passes. */
  seed: Dispatch | null = null;
  classes: Buf | null = null;
  targets: Buf | null = null;
  readonly reads: Read[] = [];
  /** The reference-pass tensor set to zero before a run (DeepLIFT from zeros at a tensor). */
  zero: Buf | null = null;
  refInputNeeded = false;
  /** Per binding index: the buffer a binding the entry point does not use gets. */
  readonly placeholders = new Map<number, Buf>();
  /** Sum of the plan buffers' sizes (all live for the plan's life). */
  bytes = 0;
  readonly counts = { forward: 0, fused: 0, reference: 0, backward: 0, epilogue: 0 };
  private bufs = new Map<string, Buf>();      // activation buffers by root tensor
  private refs = new Map<string, Buf>();      // reference-pass buffers (DeepLIFT) by root tensor
  private grads: Map<string, Buf>[] = [];     // per backward pass: gradient buffers by root tensor
  private idx = new Map<string, Buf>();       // maxpool argmax by output root (and `ref:` for the reference pass)
  private winoScratch: { V: Buf; M: Buf; zero: Buf } | null = null;

  /** like: the batch-B plan this one replays the first o.batch images of (its Winograd chunks are used, so the
   *  kernels and their arithmetic per image are the same; see sub()). */
  constructor(readonly planner: Planner, readonly o: PlanOptions, private readonly like?: PlanDesc) {
    this.batch = o.batch;
    this.seedAt = o.seedAt ?? planner.logits;
    if (!Number.isInteger(o.batch) || o.batch < 1) throw new ModelError(`batch must be a positive integer, got ${o.batch}`);
    const passes = o.backward ?? (o.grads?.length ? [{ grads: o.grads, mode: o.mode, reference: o.reference }] : []);
    this.passes = passes.map((b) => ({ grads: b.grads, mode: b.mode ?? 'grad', reference: b.reference ?? 'input' }));
    if (this.passes.filter((b) => b.mode === 'deeplift').length > 1) throw new ModelError('a plan takes at most one DeepLIFT pass (one reference); use two plans');
    this.build();
    this.lifetimes();
  }

  get g() { return this.planner.graph; }

  /**
   * The dispatches of this plan for its first k images only (k < batch), on this plan's buffers: the plan at batch k
   * (workgroups over k images, Params N = k, this plan's Winograd chunks) whose buffers map, in allocation order, onto
   * this plan's (same labels, each no larger), so a k-image run touches only the first k images' rows of each.
   * null where the two allocations do not line up (the executor then runs the whole batch).
   */
  sub(k: number): { desc: PlanDesc; onto: Map<Buf, Buf> } | null {
    if (!Number.isInteger(k) || k < 1 || k >= this.batch) throw new Error(`internal: sub-plan of ${k} images in a batch-${this.batch} plan`);
    const desc = new PlanDesc(this.planner, { ...this.o, batch: k }, this), onto = new Map<Buf, Buf>();
    if (desc.buffers.length !== this.buffers.length) return null;
    for (const [i, b] of desc.buffers.entries()) {
      const B = this.buffers[i];
      if (b.label !== B.label || b.size > B.size || b.usage !== B.usage) return null;
      onto.set(b, B);
    }
    return { desc, onto };
  }

  /** Every dispatch in replay order: forward, reference, seed, backward. */
  get dispatches(): Dispatch[] { return [...this.forward, ...this.refForward, ...(this.seed ? [this.seed] : []), ...this.backward]; }
  root(t: string): string { const p = producers(this.g).get(t); return p?.op.kind === 'alias' ? this.root(p.inputs[0]) : t; }
  size(t: string) { return this.batch * numel(this.g.tensors.get(t)!.shape) * 4; }
  private alloc(label: string, bytes: number, usage: Buf['usage'] = 'storage'): Buf {
    const binding = this.planner.limits.binding;
    if (bytes > binding) throw new ModelError(`${label} needs ${bytes} bytes at batch ${this.batch}, over this device's storage binding limit of ${binding}; use a batch of at most ${this.planner.maxBatch()}`);
    const b: Buf = { id: this.buffers.length, owner: 'plan', label, bytes, size: roundUp(bytes), usage, first: -1, last: -1 };
    this.buffers.push(b); this.bytes += b.size;
    return b;
  }
  private known(t: string, what: string) {
    if (!this.g.tensors.has(t)) throw new ModelError(`${what} '${t}' is not a tensor of this model; 4-D candidates: ${candidates(this.g).join(', ')}`);
    if (isConst(this.g, t)) throw new ModelError(`${what} '${t}' is a constant, not an activation`);
  }

  /** Activation buffer of a tensor in the actual (ref=false) or reference pass. */
  buf(t: string, ref = false): Buf {
    const c = this.planner.constOf(t); if (c) return c;
    const r = this.root(t);
    if (ref && this.refs.has(r)) return this.refs.get(r)!;
    return this.bufs.get(r)!;
  }
  /** Gradient buffer of a tensor in backward pass `pass`. */
  gradBuf(t: string, pass = 0): Buf {
    const b = this.grads[pass]?.get(this.root(t));
    if (!b) throw new ModelError(`no gradient of '${t}' in backward pass ${pass}`);
    return b;
  }

  private build() {
    const g = this.g;
    for (const t of [...(this.o.read ?? []), ...this.passes.flatMap((p) => p.grads)]) this.known(t, 'tensor');
    this.known(this.seedAt, 'seed tensor');
    const needs = this.passes.map((pass) => this.gradientPath(pass.grads));
    this.allocateWinograd(needs);
    const units = this.units(needs);
    this.allocateActivations(units);
    for (const u of units) this.forward.push(...(u.nodes.length > 1 ? this.encodeFused(u) : this.encodeForward(u.nodes[0], false)));
    this.counts.forward = this.forward.length;
    this.counts.fused = units.filter((u) => u.nodes.length > 1).length;
    this.passes.forEach((pass, k) => this.buildBackward(pass, k, needs[k]));
    this.counts.backward = this.backward.length;
    if (this.passes.length) {
      const F = numel(g.tensors.get(this.seedAt)!.shape);
      this.classes = this.alloc('classes', this.batch * 4);
      this.targets = this.alloc('targets', this.batch * 4);
      this.seed = this.step('seed', 'seed_forward', { PROB: this.o.score === 'prob' ? 1 : 0 }, 'seed', { N: this.batch, F },
        { logits: this.buf(this.seedAt), cls: this.classes, seed: this.gradBuf(this.seedAt, 0), chosen: this.targets }, this.batch);
      this.readBack('targets', 'targets', this.targets, this.batch * 4);
    }
    for (const t of new Set([this.seedAt, this.planner.logits, ...(this.o.read ?? [])])) this.readBack(t, 'value', this.buf(t), this.size(t));
    this.passes.forEach((p, k) => { for (const t of p.grads) this.readBack(t, 'grad', this.gradBuf(t, k), this.size(t), k); });
    if (this.refs.size) this.readBack(this.seedAt, 'ref', this.buf(this.seedAt, true), this.size(this.seedAt));
  }

  /** Backward pass k: gradient buffers of the tensors it needs, and each node's backward in reverse order. */
  private buildBackward(pass: Required<Backward>, k: number, need: Set<string>) {
    const grads = new Map<string, Buf>();
    this.grads.push(grads);
    if (pass.mode === 'deeplift') this.buildReference(need, pass.reference);
    for (const t of need) { const r = this.root(t); if (!grads.has(r)) grads.set(r, this.alloc(`${r}.grad${k}`, this.size(r))); }
    const written = new Set<string>([this.root(this.seedAt)]);
    for (const n of [...this.g.nodes].reverse()) {
      if (n.op.kind === 'alias' || !need.has(n.output)) continue;
      const back: Back = {
        pass: k, mode: pass.mode, label: `${n.name}.backward${k}`, need, dy: grads.get(this.root(n.output))!,
        dx: (t) => grads.get(this.root(t))!,
        acc: (t) => { const r = this.root(t), a = written.has(r) ? 1 : 0; written.add(r); return a; },
      };
      this.backward.push(...opDef(n.op).backward(this, n, n.op, back));
    }
  }

  /** Each plan buffer's first and last dispatch; read-back sources stay live to the copies after the last one. */
  private lifetimes() {
    const all = this.dispatches, end = all.length;
    const use = (b: Buf, i: number) => { if (b.owner !== 'plan') return; if (b.first < 0) b.first = i; b.last = Math.max(b.last, i); };
    all.forEach((d, i) => { for (const b of Object.values(d.bind)) use(b, i); });
    for (const r of this.reads) { use(r.src, end); use(r.stage, end); }
  }

  /** Winograd's transformed input and GEMM output (one pair for every Winograd conv: they run one after another),
   *  and the zero bias its GEMM reads. */
  private allocateWinograd(needs: Set<string>[]) {
    let v = 0, mm = 0, kp = 0;
    const convs = this.g.nodes.filter((n) => n.op.kind === 'conv');
    const back = convs.filter((n) => needs.some((s) => s.has(n.inputs[0]))).map((n) => this.planner.transposed(n)).filter((t) => t !== null);
    for (const n of [...convs, ...back]) {
      if (n.op.kind !== 'conv') continue;
      const k = this.convKernels(n);
      if (!k.wino) continue;
      const [C] = this.g.tensors.get(n.inputs[0])!.shape, K = n.op.cout, T4 = this.winogradChunk(n, k.wino), E = (k.wino.m + 2) ** 2;
      v = Math.max(v, this.batch * E * C * T4 * 4); mm = Math.max(mm, this.batch * E * K * T4 * 4); kp = Math.max(kp, convKP(K) * 4);
    }
    if (v) this.winoScratch = { V: this.alloc('winograd.V', v), M: this.alloc('winograd.M', mm), zero: this.alloc('winograd.zero-bias', kp) };
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
    const keep = new Set([g.input, this.seedAt, this.planner.logits, ...(this.o.read ?? [])].map((t) => this.root(t)));
    const last = new Map<string, number>();
    units.forEach((u, i) => { for (const t of u.inputs) if (!isConst(g, t)) last.set(this.root(t), i); });
    const pool: Buf[] = [];
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
    [g.input, this.seedAt, this.planner.logits, ...(this.o.read ?? [])].forEach(hold);
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
    if (ref !== 'input') this.zero = this.refs.get(this.root(start))!; else this.refInputNeeded = true;
    for (const n of g.nodes) if (down.has(n.output) && n.output !== start) this.refForward.push(...this.encodeForward(n, true));
    this.counts.reference = this.refForward.length;
  }

  /** Tensors computed from `start` (itself included). */
  private downstream(start: string): Set<string> {
    const down = new Set([start]);
    for (const n of this.g.nodes) if (n.inputs.some((i) => down.has(i))) down.add(n.output);
    return down;
  }

  private readBack(name: string, kind: Read['kind'], src: Buf, bytes: number, pass = 0, perRow = true) {
    this.reads.push({ name, kind, pass, src, bytes, perRow, stage: this.alloc(`${name}.${kind}${pass}.read`, bytes, 'read') });
  }

  /** A dispatch: Params by field name, buffers by WGSL binding name; a binding not named gets this plan's placeholder
   *  for that index (never read by the entry point), so the description binds every slot. */
  step(f: Family, entry: string, consts: Record<string, number>, label: string, params: ParamValues, bind: Record<string, Buf>, threads: number): Dispatch {
    const full: Record<string, Buf> = {};
    for (const s of reflection(f).bindings) {
      if (s.access === 'uniform') continue;
      const name = s.names.find((x) => x in bind);
      full[name ?? s.names[0]] = name ? bind[name] : this.placeholder(s.index);
    }
    for (const name of Object.keys(bind)) if (!(name in full)) throw new Error(`internal: ${label}: ${f} has no storage binding '${name}'`);
    return { family: f, entry, consts, label, params, bind: full, groups: grid(threads, FAMILIES[f].wg, this.planner.limits.maxDim) };
  }
  placeholder(index: number): Buf {
    let p = this.placeholders.get(index);
    if (!p) { p = this.alloc(`placeholder[${index}]`, 16); this.placeholders.set(index, p); }
    return p;
  }

  weights(n: Node): Weights { return this.planner.weightsOf(n); }

  /** The conv record's view of this plan (ops/conv.ts ConvEnc). */
  readonly conv: ConvEnc = {
    kernels: (n) => this.convKernels(n),
    chunk: (n, w) => this.winogradChunk(n, w),
    scratch: () => this.winoScratch!,
    winogradWeights: (n, m) => this.planner.winogradWeights(n, m),
    transposed: (n) => this.planner.transposed(n),
  };

  /** A fused unit: the conv's kernel with the residual and activation in its epilogue, writing the unit's output. */
  private encodeFused(u: Unit): Dispatch[] {
    const [c, ...rest] = u.nodes;
    if (c.op.kind !== 'conv') throw new Error(`internal: fused unit starts with '${c.name}', not a conv`);
    const add = rest.find((n) => n.op.kind === 'add'), a = rest.find((n) => n.op.kind === 'act')?.op;
    const act = a?.kind === 'act' ? { id: OPS.act.convEpilogue!(a)!, alpha: a.alpha, beta: a.beta } : undefined;
    const res = add?.inputs.find((i) => i !== c.output);
    return convForward(this, c, u.nodes.map((n) => n.name).join('+'), this.buf(c.inputs[0]), res ? this.buf(res) : null, this.buf(u.output), act);
  }

  /** Winograd tiles per dispatch (a multiple of 16): as many as keep its scratch, N x (m+2)^2 x max(C, K) floats a
   *  tile, within winogradScratch and one binding; 0 when not even 16 fit (the layer then runs a direct kernel). */
  winogradChunk(n: Node, w: { m: number; T: number }): number {
    if (this.like) return this.like.winogradChunk(n, w);
    const [C] = this.g.tensors.get(n.inputs[0])!.shape, [K] = this.g.tensors.get(n.output)!.shape, tiles = w.T;
    const perTile = this.batch * (w.m + 2) ** 2 * Math.max(C, K) * 4, fit = Math.floor(Math.min(this.planner.winogradScratch, this.planner.limits.binding) / perTile / 16) * 16;
    return Math.min(fit, Math.ceil(tiles / 16) * 16);
  }

  /** The model's kernels for a conv, but the direct kernel where not even 16 Winograd tiles fit the scratch at this
   *  batch, and in plans with a DeepLIFT pass from a reference input: its rescale rule divides by the difference of
   *  two forward passes, which amplifies Winograd's larger rounding (F(4x4): 2.7e-6 of the max vs 2.6e-7 direct) and
   *  broke summation-to-delta on the vgg fixture (2.5e-4 vs 1.3e-4). */
  convKernels(n: Node): ConvKernels {
    const k = this.planner.convKernels(n);
    if (!k.wino) return k;
    const exact = this.passes.some((p) => p.mode === 'deeplift' && p.reference === 'input');
    return !exact && this.winogradChunk(n, k.wino) >= 16 ? k : convKernels(this.g, n, { TK: k.forwardConsts.TK, TP: k.forwardConsts.TP });
  }

  private encodeForward(n: Node, ref: boolean): Dispatch[] { return opDef(n.op).forward(this, n, n.op, ref); }

  /** A max-pool's argmax buffer, per output tensor and pass. */
  argmax(t: string, ref: boolean): Buf {
    const key = (ref ? 'ref:' : '') + t;
    if (!this.idx.has(key)) this.idx.set(key, this.alloc(`${key}.argmax`, this.size(t)));
    return this.idx.get(key)!;
  }

  /** The most plan-buffer bytes bound at once by any dispatch's lifetime window (what allocating buffers only while
   *  they live would need; the executor allocates all of them, `bytes`). */
  peakLive(): number {
    let peak = 0;
    const end = this.dispatches.length;
    for (let i = 0; i <= end; i++) peak = Math.max(peak, this.buffers.reduce((s, b) => s + (b.first <= i && i <= b.last ? b.size : 0), 0));
    return peak;
  }
}

/** 4-D activations with spatial size > 1 that lie on the path to the logits: the candidate CAM target layers. */
export function candidates(g: Graph): string[] {
  const prod = producers(g), up = new Set<string>(), stack = [logitsOf(g)];
  while (stack.length) { const t = stack.pop()!; if (up.has(t)) continue; up.add(t); const p = prod.get(t); if (p) stack.push(...p.inputs); }
  return g.nodes.map((n) => n.output).filter((t) => {
    const s = g.tensors.get(t)!.shape;
    return up.has(t) && s.length === 3 && s[1] * s[2] > 1;
  });
}
