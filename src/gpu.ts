// The GPU boundary: device creation, labelled objects inside validation error scopes, pipeline cache,
// and one place that handles device loss.
import conv2d from '../shaders/conv2d.wgsl';
import act from '../shaders/act.wgsl';
import binary from '../shaders/binary.wgsl';
import pool from '../shaders/pool.wgsl';
import linear from '../shaders/linear.wgsl';
import copy from '../shaders/copy.wgsl';
import softmax from '../shaders/softmax.wgsl';
import seed from '../shaders/seed.wgsl';
import cam from '../shaders/cam.wgsl';

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

type Slot = 'uniform' | 'read' | 'rw';
const R: Slot = 'read', W: Slot = 'rw', U: Slot = 'uniform';
/** Shader families: source and the fixed binding list (uniform params, read-only inputs, outputs). */
export const FAMILIES = {
  conv2d: { code: conv2d, slots: [U, R, R, R, R, W], wg: 64 },
  act: { code: act, slots: [U, R, R, R, W], wg: 256 },
  binary: { code: binary, slots: [U, R, R, R, W], wg: 256 },
  pool: { code: pool, slots: [U, R, R, R, R, R, W, W], wg: 256 },
  linear: { code: linear, slots: [U, R, R, R, W], wg: 64 },
  copy: { code: copy, slots: [U, R, W], wg: 256 },
  softmax: { code: softmax, slots: [U, R, R, W], wg: 64 },
  seed: { code: seed, slots: [U, R, R, W, W], wg: 64 },
  cam: { code: cam, slots: [U, R, R, R, R, W, W, W], wg: 64 },
} as const;
export type Family = keyof typeof FAMILIES;

/** Pipelines keyed by family, entry point and override constants; shapes never enter the key. */
export class Gpu {
  private pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private layouts = new Map<Family, GPUBindGroupLayout>();
  private modules = new Map<Family, GPUShaderModule>();
  lost: string | null = null;
  adapterInfo = '';
  submits = 0; // submissions so far (the one-pass tests read it)

  constructor(readonly device: GPUDevice) {
    device.lost.then((info) => { this.lost = `GPU device lost (${info.reason}): ${info.message}`; });
  }

  check() { if (this.lost) throw new GpuError(this.lost); }

  layout(f: Family): GPUBindGroupLayout {
    let l = this.layouts.get(f);
    if (!l) {
      l = this.device.createBindGroupLayout({ label: `${f}.layout`, entries: FAMILIES[f].slots.map((s, binding) => ({
        binding, visibility: GPUShaderStage.COMPUTE,
        buffer: { type: s === 'uniform' ? 'uniform' : s === 'read' ? 'read-only-storage' : 'storage' } as GPUBufferBindingLayout })) });
      this.layouts.set(f, l);
    }
    return l;
  }

  pipeline(f: Family, entry: string, constants: Record<string, number> = {}): Promise<GPUComputePipeline> {
    const key = `${f}:${entry}:${JSON.stringify(constants)}`;
    let p = this.pipelines.get(key);
    if (!p) {
      let module = this.modules.get(f);
      if (!module) { module = this.device.createShaderModule({ label: `${f}.wgsl`, code: FAMILIES[f].code }); this.modules.set(f, module); }
      p = this.scoped(key, () => this.device.createComputePipelineAsync({
        label: key, layout: this.device.createPipelineLayout({ label: key, bindGroupLayouts: [this.layout(f)] }),
        compute: { module, entryPoint: entry, constants: { WG: FAMILIES[f].wg, ...constants } },
      }));
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** Runs fn inside a validation + out-of-memory error scope; throws with the label on any error. */
  async scoped<T>(label: string, fn: () => T | Promise<T>): Promise<T> {
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

  /** A uniform buffer from a list of u32 / f32 fields (f32 where the value is marked with f()). */
  uniform(label: string, fields: (number | { f: number })[]): GPUBuffer {
    const words = new ArrayBuffer(Math.ceil(Math.max(fields.length * 4, 16) / 16) * 16);
    const u = new Uint32Array(words), fl = new Float32Array(words);
    fields.forEach((v, i) => { if (typeof v === 'number') u[i] = v; else fl[i] = v.f; });
    return this.buffer(label, words.byteLength, GPUBufferUsage.UNIFORM, new Uint8Array(words));
  }

  bindGroup(label: string, f: Family, buffers: GPUBuffer[]): GPUBindGroup {
    if (buffers.length !== FAMILIES[f].slots.length) throw new Error(`internal: ${label} binds ${buffers.length} buffers, ${f} has ${FAMILIES[f].slots.length} slots`);
    return this.device.createBindGroup({ label, layout: this.layout(f), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) });
  }
}

/** Workgroup counts for a 1-D range of `threads` invocations, folded into y past the per-dimension limit. */
export function grid(threads: number, wg: number, maxDim: number): [number, number] {
  const groups = Math.ceil(threads / wg);
  if (groups <= maxDim) return [Math.max(groups, 1), 1];
  const x = maxDim; return [x, Math.ceil(groups / x)];
}
