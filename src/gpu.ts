// The GPU boundary: device creation, labelled objects inside validation error scopes, pipeline cache,
// and one place that handles device loss.
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
import reduce from '../shaders/reduce.wgsl';
import norm from '../shaders/norm.wgsl';
import matmul from '../shaders/matmul.wgsl';
import resize from '../shaders/resize.wgsl';
import convtranspose from '../shaders/convtranspose.wgsl';
import { Binding, ParamValues, Reflection, packParams, reflect } from './reflect.js';

export class GpuError extends Error {
  constructor(message: string) { super(message); this.name = 'GpuError'; }
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
  reduce: { code: reduce, wg: 256 },
  norm: { code: norm, wg: 64 },
  matmul: { code: matmul, wg: 64 },
  resize: { code: resize, wg: 256 },
  convtranspose: { code: convtranspose, wg: 64 },
} as const;
export type Family = keyof typeof FAMILIES;

/** Pipelines keyed by family, entry point and override constants; shapes never enter the key. */
export class Gpu {
  private pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private layouts = new Map<Family, GPUBindGroupLayout>();
  private modules = new Map<Family, GPUShaderModule>();
  private reflections = new Map<Family, Reflection>();
  lost: string | null = null;
  adapterInfo = '';
  submits = 0; // submissions so far (the one-pass tests read it)

  constructor(readonly device: GPUDevice) {
    device.lost.then((info) => { this.lost = `GPU device lost (${info.reason}): ${info.message}`; });
  }

  check() { if (this.lost) throw new GpuError(this.lost); }

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
    let bind = this.warmBinds.get(f);
    if (!bind) {
      const dev = this.device, r = this.reflection(f);
      const buf = (usage: number, size: number) => dev.createBuffer({ label: `${f}.warm`, size: Math.max(16, Math.ceil(size / 16) * 16), usage });
      const entries = r.bindings.map((s) => ({ binding: s.index, resource: { buffer: s.access === 'uniform' ? buf(GPUBufferUsage.UNIFORM, r.size) : buf(GPUBufferUsage.STORAGE, 16) } }));
      bind = dev.createBindGroup({ label: `${f}.warm`, layout: this.layout(f), entries });
      this.warmBinds.set(f, bind);
    }
    const b = bind;
    await this.scopedSync(`${key}: warm-up`, () => {
      const enc = this.device.createCommandEncoder({ label: `${key}.warm` }), pass = enc.beginComputePass({ label: `${key}.warm` });
      pass.setPipeline(pipe); pass.setBindGroup(0, b); pass.dispatchWorkgroups(1, 1); pass.end();
      this.device.queue.submit([enc.finish()]);
    });
    await this.device.queue.onSubmittedWorkDone();
    return pipe;
  }
  private warmBinds = new Map<Family, GPUBindGroup>();

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

  /** scoped() for synchronous work: push, run, pop with no await in between, so it needs no queue. */
  private async scopedSync<T>(label: string, fn: () => T): Promise<Awaited<T>> {
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

  buffer(label: string, size: number, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, data?: ArrayBufferView): GPUBuffer {
    const b = this.device.createBuffer({ label, size: Math.max(16, Math.ceil(size / 16) * 16), usage, mappedAtCreation: !!data });
    if (data) { new Uint8Array(b.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)); b.unmap(); }
    return b;
  }

  /** The uniform buffer of family f's Params from named values (wgsl.ts packParams). */
  uniform(label: string, f: Family, values: ParamValues): GPUBuffer {
    const bytes = packParams(this.reflection(f), values, label);
    return this.buffer(label, bytes.byteLength, GPUBufferUsage.UNIFORM, new Uint8Array(bytes));
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
