// The GPU boundary: device creation, labelled objects inside validation error scopes, pipeline cache, the one place
// that creates GPU buffers (each counted against its owner: a model's weights, a plan, a run's scratch), and the one
// place that handles device loss (a lost device is replaced on the next call; models re-upload from host memory).
import conv2d from '../shaders/conv2d.wgsl';
import act from '../shaders/act.wgsl';
import binary from '../shaders/binary.wgsl';
import pool from '../shaders/pool.wgsl';
import linear from '../shaders/linear.wgsl';
import copy from '../shaders/copy.wgsl';
import layout from '../shaders/layout.wgsl';
import softmax from '../shaders/softmax.wgsl';
import seed from '../shaders/seed.wgsl';
import cam from '../shaders/cam.wgsl';
import eigen from '../shaders/eigen.wgsl';
import reduce from '../shaders/reduce.wgsl';
import norm from '../shaders/norm.wgsl';
import matmul from '../shaders/matmul.wgsl';
import resize from '../shaders/resize.wgsl';
import convtranspose from '../shaders/convtranspose.wgsl';
import { Binding, ParamValues, Reflection, packParams, reflect } from './reflect.js';

export class GpuError extends Error {
  constructor(message: string) { super(message); this.name = 'GpuError'; }
}

/** The GPU device was lost (destroyed, driver reset) while or before this call used it. Nothing it computed is
 *  returned; the next call requests a new device and re-uploads the model (Gpu.ready, Model.ready). */
export class DeviceLostError extends GpuError {
  constructor(message: string) { super(message); this.name = 'DeviceLostError'; }
}

/** Who holds a buffer: a model's weights (and Winograd / transposed copies), a plan's buffers, or one run's scratch. */
export type Role = 'weights' | 'plan' | 'scratch';

/**
 * The GPU buffers of one owner, created, counted and freed together. Every buffer camgpu makes comes from a
 * Ledger, so Gpu.liveBytes is exact: the sum of the ledgers' bytes (buffer sizes as allocated, 16-byte rounded).
 */
export class Ledger {
  bytes = 0;
  private live = new Set<GPUBuffer>();
  private sets = new Map<GPUQuerySet, number>();
  private readonly generation: number;
  constructor(private readonly gpu: Gpu, readonly owner: string, readonly role: Role) { this.generation = gpu.generation; }

  /** A ledger makes buffers only on the device it began on: after a loss a build in flight stops here. */
  private check() {
    this.gpu.check();
    if (this.generation !== this.gpu.generation) throw new DeviceLostError(`GPU device lost: ${this.owner} was made on a device that has since been replaced`);
  }

  /** A buffer of at least `size` bytes (rounded up to 16), filled with `data` when given. */
  buffer(label: string, size: number, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, data?: ArrayBufferView): GPUBuffer {
    this.check();
    const dev = this.gpu.device;
    const b = dev.createBuffer({ label, size: Math.max(16, Math.ceil(size / 16) * 16), usage, mappedAtCreation: !!data });
    if (data) {
      new Uint8Array(b.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      b.unmap();
    }
    this.live.add(b);
    this.bytes += b.size;
    this.gpu.attach(this);
    return b;
  }

  /** The uniform buffer of family f's Params from named values (reflect.ts packParams). */
  uniform(label: string, f: Family, values: ParamValues): GPUBuffer {
    const bytes = packParams(this.gpu.reflection(f), values, label);
    return this.buffer(label, bytes.byteLength, GPUBufferUsage.UNIFORM, new Uint8Array(bytes));
  }

  /** A timestamp query set (counted as 8 bytes a query). */
  querySet(label: string, count: number): GPUQuerySet {
    this.check();
    const q = this.gpu.device.createQuerySet({ label, type: 'timestamp', count });
    this.sets.set(q, count * 8);
    this.bytes += count * 8;
    this.gpu.attach(this);
    return q;
  }

  /** Destroys every buffer and query set of this owner; its bytes go to 0. */
  destroy() {
    for (const b of this.live) b.destroy();
    for (const q of this.sets.keys()) q.destroy();
    this.forget();
  }

  /** The device is gone, and these buffers with it: nothing left to destroy, nothing held. */
  forget() {
    this.live.clear();
    this.sets.clear();
    this.bytes = 0;
    this.gpu.detach(this);
  }
}

export const NO_ADAPTER = 'no WebGPU adapter found. In a browser, use one with WebGPU enabled. In Node on Debian/Ubuntu without a GPU, '
  + 'install a Vulkan driver: run `bash tools/setup.sh` (installs Mesa lavapipe, mesa-vulkan-drivers and libvulkan1, from bookworm-backports).';

/** Requests a device with the adapter's full buffer limits (VGG16's FC weight needs them). */
export async function requestDevice(gpu?: GPU): Promise<GPUDevice> {
  const g = gpu ?? (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!g) throw new GpuError(NO_ADAPTER);
  const adapter = await g.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new GpuError(NO_ADAPTER);
  const l = adapter.limits;
  return adapter.requestDevice({
    label: 'camgpu',
    requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [], // for run({ profile: true })
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize, maxBufferSize: l.maxBufferSize,
      maxStorageBuffersPerShaderStage: Math.min(l.maxStorageBuffersPerShaderStage, 8),
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  });
}

/** Shader families: source and workgroup size. Each family's uniform struct `Params` and its bindings are read from
 *  the WGSL itself (reflect()), so parameters and buffers are passed by name and can never drift from the shader. */
export const FAMILIES = {
  conv2d: { code: conv2d, wg: 64 },
  act: { code: act, wg: 256 },
  binary: { code: binary, wg: 256 },
  pool: { code: pool, wg: 256 },
  linear: { code: linear, wg: 64 },
  copy: { code: copy, wg: 256 },
  layout: { code: layout, wg: 256 },
  softmax: { code: softmax, wg: 64 },
  seed: { code: seed, wg: 64 },
  cam: { code: cam, wg: 64 },
  eigen: { code: eigen, wg: 64 },
  reduce: { code: reduce, wg: 256 },
  norm: { code: norm, wg: 64 },
  matmul: { code: matmul, wg: 64 },
  resize: { code: resize, wg: 256 },
  convtranspose: { code: convtranspose, wg: 64 },
} as const;
export type Family = keyof typeof FAMILIES;

/**
 * One GPU device and what is made from it: pipelines keyed by family, entry point and override constants (shapes never
 * enter the key), bind group layouts, and the ledgers of live buffers. `device.lost` is handled here and only here:
 * the loss is recorded and every ledger forgets its buffers; ready() (called by Model.load and Model.ready, so by every
 * explain()) then puts a new device in place from `replace` and bumps `generation`, which tells models and plans
 * that what they made belongs to a dead device.
 */
export class Gpu {
  private pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private layouts = new Map<Family, GPUBindGroupLayout>();
  private modules = new Map<Family, GPUShaderModule>();
  private reflections = new Map<Family, Reflection>();
  private ledgers = new Set<Ledger>();
  private current!: GPUDevice;
  private replacing: Promise<void> | null = null;
  lost: string | null = null;
  /** Devices this Gpu had before the current one (0 until the first loss). */
  generation = 0;
  adapterInfo = '';
  submits = 0; // submissions so far (the one-pass tests read it)

  /** `replace` requests a new device after a loss; without it (an app's own device) a lost device stays lost until
   *  the app gives a new one with useDevice(). */
  constructor(device: GPUDevice, private readonly replace?: () => Promise<GPUDevice>) {
    this.watch(device);
  }

  get device(): GPUDevice { return this.current; }

  /** Uses `device` from now on (after a loss, or an app's own replacement): pipelines and layouts are made again and
   *  what was made on the old device is stale (generation + 1). */
  useDevice(device: GPUDevice) {
    if (device === this.current) return;
    for (const l of [...this.ledgers]) l.forget();
    this.pipelines.clear();
    this.layouts.clear();
    this.modules.clear();
    this.serial = Promise.resolve();
    this.generation++;
    this.watch(device);
  }

  /** Records a loss of `device` (its lost promise): every ledger forgets its buffers, and calls fail until ready(). */
  private watch(device: GPUDevice) {
    this.current = device;
    this.lost = null;
    device.lost.then((info) => {
      if (device !== this.current) return; // an old device, already replaced
      this.lost = `GPU device lost (${info.reason || 'unknown'})${info.message ? `: ${info.message}` : ''}`;
      for (const l of [...this.ledgers]) l.forget();
    });
  }

  /** Resolves once a live device is in place: after a loss, a new one from `replace` (one request however many
   *  calls wait). Throws DeviceLostError when the device was the app's own (no `replace`) or no new one comes. */
  async ready(): Promise<void> {
    if (!this.lost) return;
    const replace = this.replace, lost = this.lost;
    if (!replace) throw new DeviceLostError(`${lost}; camgpu did not create this device, so it cannot make a new one: give one with gpu.useDevice(device)`);
    this.replacing ??= (async () => {
      try { this.useDevice(await replace()); }
      catch (e) { throw new DeviceLostError(`${lost}; a new device could not be created: ${(e as Error).message}`); }
      finally { this.replacing = null; }
    })();
    return this.replacing;
  }

  check() { if (this.lost) throw new DeviceLostError(this.lost); }

  /** What a failed GPU wait (mapAsync) means: a DeviceLostError when the device was lost or replaced meanwhile (its
   *  lost promise may settle just after the wait rejects, so it is given one task turn), else the error itself. */
  async failure(e: unknown, generation: number): Promise<Error> {
    if (!this.lost && generation === this.generation) await new Promise((r) => setTimeout(r, 0));
    if (this.lost) return new DeviceLostError(this.lost);
    if (generation !== this.generation) return new DeviceLostError('GPU device lost: it was replaced while this call used it');
    return e as Error;
  }

  /** A new ledger for `owner`'s buffers (counted from its first buffer on). */
  ledger(owner: string, role: Role): Ledger { return new Ledger(this, owner, role); }
  /** Ledger bookkeeping (a ledger holding bytes is live). */
  attach(l: Ledger) { this.ledgers.add(l); }
  detach(l: Ledger) { this.ledgers.delete(l); }
  /** Bytes of every live buffer and query set, exact. */
  get liveBytes(): number {
    let s = 0;
    for (const l of this.ledgers) s += l.bytes;
    return s;
  }
  /** Live bytes per role, and per owner. */
  memory(): { total: number; byRole: Record<Role, number>; owners: { owner: string; role: Role; bytes: number }[] } {
    const byRole: Record<Role, number> = { weights: 0, plan: 0, scratch: 0 };
    const owners = [...this.ledgers].map((l) => ({ owner: l.owner, role: l.role, bytes: l.bytes }));
    for (const o of owners) byRole[o.role] += o.bytes;
    return { total: this.liveBytes, byRole, owners };
  }

  /** The family's Params struct and bindings, read from its WGSL once. */
  reflection(f: Family): Reflection {
    let r = this.reflections.get(f);
    if (!r) { r = reflect(FAMILIES[f].code); this.reflections.set(f, r); }
    return r;
  }

  layout(f: Family): GPUBindGroupLayout {
    let l = this.layouts.get(f);
    if (!l) {
      l = this.device.createBindGroupLayout({ label: `${f}.layout`, entries: this.reflection(f).bindings.map((s) => ({
        binding: s.index, visibility: GPUShaderStage.COMPUTE,
        buffer: { type: s.access === 'uniform' ? 'uniform' : s.access === 'read' ? 'read-only-storage' : 'storage' } as GPUBufferBindingLayout })) });
      this.layouts.set(f, l);
    }
    return l;
  }

  /** Pipelines compiled so far, and the wall-clock ms during which at least one compile was in flight (compiles
   *  overlap: createComputePipelineAsync). Callers time phases by differences of this, never inside a pass. */
  readonly compiled = { count: 0, ms: 0 };
  private compiling = 0;
  private compileSince = 0;

  /** A compute pipeline, compiled once per (family, entry, constants) on first use. */
  pipeline(f: Family, entry: string, constants: Record<string, number> = {}): Promise<GPUComputePipeline> {
    const key = `${f}:${entry}:${JSON.stringify(constants)}`;
    let p = this.pipelines.get(key);
    if (!p) {
      if (this.compiling++ === 0) this.compileSince = performance.now();
      let module = this.modules.get(f);
      if (!module) { module = this.device.createShaderModule({ label: `${f}.wgsl`, code: FAMILIES[f].code }); this.modules.set(f, module); }
      // the sync calls get their own scope (pushed and popped with no await between, so overlapping builds cannot
      // interleave it); compile errors reject the async pipeline's promise itself
      const mod = module;
      p = this.scopedSync(key, () => this.device.createComputePipelineAsync({
        label: key, layout: this.device.createPipelineLayout({ label: key, bindGroupLayouts: [this.layout(f)] }),
        compute: { module: mod, entryPoint: entry, constants: { WG: FAMILIES[f].wg, ...constants } },
      })).then((pipe) => this.warm(f, key, pipe))
        .catch((e: Error) => { throw e instanceof GpuError ? e : new GpuError(`${key}: ${e.message}`); });
      this.pipelines.set(key, p);
      const done = () => {
        this.compiled.count++;
        if (--this.compiling === 0) this.compiled.ms += performance.now() - this.compileSince;
      };
      p.then(done, done);
    }
    return p;
  }

  /** One workgroup of a new pipeline over all-zero Params (every entry point's bounds guard then returns at once) and
   *  16-byte buffers: drivers that compile at the first dispatch (Mesa's lavapipe JITs there, 0.1-15 s a variant cold)
   *  then do it here, counted as compile time, instead of inside the first pass that uses it. */
  private async warm(f: Family, key: string, pipe: GPUComputePipeline): Promise<GPUComputePipeline> {
    const dev = this.device, r = this.reflection(f), mem = this.ledger(`${key}: warm-up`, 'scratch'); // freed when done
    try {
      await this.scopedSync(`${key}: warm-up`, () => {
        const buf = (usage: number, size: number) => mem.buffer(`${key}.warm`, size, usage);
        const entries = r.bindings.map((s) => ({ binding: s.index, resource: { buffer: s.access === 'uniform' ? buf(GPUBufferUsage.UNIFORM, r.size) : buf(GPUBufferUsage.STORAGE, 16) } }));
        const bind = dev.createBindGroup({ label: `${key}.warm`, layout: this.layout(f), entries });
        const enc = dev.createCommandEncoder({ label: `${key}.warm` }), pass = enc.beginComputePass({ label: `${key}.warm` });
        pass.setPipeline(pipe); pass.setBindGroup(0, bind); pass.dispatchWorkgroups(1, 1); pass.end();
        dev.queue.submit([enc.finish()]);
      });
      await dev.queue.onSubmittedWorkDone();
    } finally { mem.destroy(); }
    return pipe;
  }

  /**
   * Runs fn inside a validation + out-of-memory error scope; throws with the label on any error. Error scopes are a
   * stack per device, so scopes that span an await are taken one at a time: overlapping model loads and plan
   * builds (concurrent explain() calls) queue here instead of popping each other's scopes.
   */
  scoped<T>(label: string, fn: () => T | Promise<T>): Promise<T> {
    const r = this.serial.then(() => this.scopedNow(label, fn));
    this.serial = r.catch(() => undefined);
    return r;
  }
  private serial: Promise<unknown> = Promise.resolve();

  /** scoped() for synchronous work: push, run, pop with no await in between, so it needs no queue (and it may run
   *  inside a caller's scoped(): a plan's run() makes its k-image steps this way while the caller holds the queue). */
  async scopedSync<T>(label: string, fn: () => T): Promise<Awaited<T>> {
    this.check();
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let value: T, thrown: unknown = null;
    try { value = fn(); } catch (e) { thrown = e; }
    const pops = [this.device.popErrorScope(), this.device.popErrorScope()];
    const [v, m] = await Promise.all(pops);
    const e = v ?? m;
    if (e) throw new GpuError(`${label}: ${e.message}`);
    if (thrown) throw thrown;
    return await value!;
  }

  private async scopedNow<T>(label: string, fn: () => T | Promise<T>): Promise<T> {
    this.check();
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let value: T;
    try { value = await fn(); } finally {
      const [v, m] = [await this.device.popErrorScope(), await this.device.popErrorScope()];
      const e = v ?? m;
      if (e) throw new GpuError(`${label}: ${e.message}`);
    }
    return value;
  }

  /** A bind group of family f: the uniform, then buffers by any of their binding's WGSL names; a binding not
   *  named gets fill(binding) (a plan's placeholder). Unknown or repeated names are errors. */
  bindGroup(label: string, f: Family, uniform: GPUBuffer, buffers: Record<string, GPUBuffer>, fill: (b: Binding) => GPUBuffer): GPUBindGroup {
    const slots = this.reflection(f).bindings, chosen = new Map<number, GPUBuffer>();
    for (const [name, buf] of Object.entries(buffers)) {
      const b = slots.find((s) => s.names.includes(name));
      if (!b || b.access === 'uniform') throw new Error(`internal: ${label}: ${f} has no storage binding '${name}' (${slots.map((s) => s.names.join('/')).join(', ')})`);
      if (chosen.has(b.index)) throw new Error(`internal: ${label}: binding ${b.index} (${b.names.join('/')}) given twice`);
      chosen.set(b.index, buf);
    }
    const entries = slots.map((s) => ({ binding: s.index, resource: { buffer: s.access === 'uniform' ? uniform : chosen.get(s.index) ?? fill(s) } }));
    return this.device.createBindGroup({ label, layout: this.layout(f), entries });
  }
}

/** Workgroup counts for a 1-D range of `threads` invocations, folded into y past the per-dimension limit. */
export function grid(threads: number, wg: number, maxDim: number): [number, number] {
  const groups = Math.ceil(threads / wg);
  if (groups <= maxDim) return [Math.max(groups, 1), 1];
  const x = maxDim; return [x, Math.ceil(groups / x)];
}
