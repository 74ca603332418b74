// camgpu for Node: the core plus Dawn, files and .npy.
import { basename } from 'node:path';
import { LoadOptions, Model } from '../src/model.js';
import { nodeGpu } from './gpu.js';
import { cachedTiles } from './tune.js';
import { readRegular } from './files.js';

export * from '../src/index.js';
export { nodeGpu, closeGpu } from './gpu.js';
export { parseNpy, npyBytes, nonFinite, NpyError } from './npy.js';
export { decodeImage, readImage, imageHeader, resizedSize, preprocess, ImageError, DEFAULT_MAX_MEGAPIXELS } from './image.js';
export type { ImageLimits, ImageHeader, Rgb } from './image.js';
export { readRegular, makeDir, FileError } from './files.js';
export { cachedTiles, saveTiles, tuneCachePath } from './tune.js';

/** Loads an .onnx file onto the shared Dawn device, with the conv tiles `camgpu tune` cached for this adapter. */
export async function loadModel(path: string, opts: LoadOptions = {}): Promise<Model> {
  let bytes: Uint8Array;
  bytes = readRegular(path, 'model'); // a FileError naming the path (a FIFO or device is refused, never waited on)
  const gpu = await nodeGpu();
  try { return await Model.load(gpu, bytes, basename(path), { tiles: cachedTiles(gpu.adapterInfo), ...opts }); }
  catch (e) { (e as Error).message = `${path}: ${(e as Error).message}`; throw e; }
}
