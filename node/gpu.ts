// WebGPU in Node through Dawn (npm `webgpu`). One place creates and releases the device.
import { create, globals } from 'webgpu';
import { Gpu, GpuError, NO_ADAPTER, requestDevice } from '../src/gpu.js';

let instance: GPU | null = null;
let shared: Promise<Gpu> | null = null;

/** The process-wide GPU (Dawn). Throws a one-line GpuError naming what to install when no adapter exists. */
export function nodeGpu(): Promise<Gpu> {
  shared ??= (async () => {
    Object.assign(globalThis, globals);
    instance = create([]);
    const dawn = instance;
    // src/gpu.ts: the adapter's full buffer limits, timestamp queries; after a device loss the next call gets a new one
    const gpu = new Gpu(await requestDevice(dawn), () => requestDevice(dawn));
    const info = gpu.device.adapterInfo;
    gpu.adapterInfo = `${info.vendor} ${info.architecture} ${info.description}`.replace(/\s+/g, ' ').trim();
    return gpu;
  })();
  return shared;
}

/** Another device on the same Dawn instance with WebGPU's default features and limits: what an application's own
 *  device may look like (a second Dawn instance in one process crashes lavapipe). */
export async function plainDevice(label: string): Promise<GPUDevice> {
  await nodeGpu();
  const adapter = await instance!.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new GpuError(NO_ADAPTER);
  return adapter.requestDevice({ label });
}

/** Destroys the device so Dawn lets the Node event loop end. */
export async function closeGpu(): Promise<void> {
  if (!shared) return;
  const p = shared; shared = null;
  try { (await p).device.destroy(); } catch { /* no device was created */ }
  instance = null;
}
