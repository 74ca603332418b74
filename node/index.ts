// camgpu for Node: the core plus Dawn, files and .npy.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { LoadOptions, Model } from '../src/model.js';
import { nodeGpu } from './gpu.js';
import { cachedTiles } from './tune.js';

export * from '../src/index.js';
export { nodeGpu, closeGpu } from './gpu.js';
export { parseNpy, npyBytes } from './npy.js';
export { cachedTiles, saveTiles, tuneCachePath } from './tune.js';

/** Loads an .onnx file onto the shared Dawn device, with the conv tiles `camgpu tune` cached for this adapter. */
export async function loadModel(path: string, opts: LoadOptions = {}): Promise<Model> {
  let bytes: Uint8Array;
  try { bytes = readFileSync(path); } catch (e) { throw new Error(`cannot read model '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  const gpu = await nodeGpu();
  try { return await Model.load(gpu, bytes, basename(path), { tiles: cachedTiles(gpu.adapterInfo), ...opts }); }
  catch (e) { (e as Error).message = `${path}: ${(e as Error).message}`; throw e; }
}
