// The tuning cache on disk: conv tiles by layer shape, per adapter (its name and driver version), written by
// `camgpu tune` and read by every command that loads a model. One JSON file:
//   { "version": 1, "adapters": { "<adapter info>": { "<convShape>": { "TK": 16, "TP": 16 }, ... } } }
import { writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { TILES, Tile, sameTile, tileName } from '../src/conv.js';
import { makeDir, pathKind, readRegular } from './files.js';

/** $CAMGPU_TUNE_CACHE, else $XDG_CACHE_HOME/camgpu/tiles.json, else ~/.cache/camgpu/tiles.json. */
export const tuneCachePath = () => process.env.CAMGPU_TUNE_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'camgpu', 'tiles.json');

type Cache = { version: 1; adapters: Record<string, Record<string, Tile>> };

function readCache(file: string): Cache {
  let text: string;
  if (pathKind(file) === null) return { version: 1, adapters: {} }; // no cache yet
  text = new TextDecoder().decode(readRegular(file, 'tuning cache', 2 ** 26)); // a FIFO or folder there is an error, never a wait
  const bad = (why: string): never => { throw new Error(`tuning cache ${file}: ${why}; delete it or run \`camgpu tune\` again`); };
  let c: Cache;
  try { c = JSON.parse(text); } catch (e) { return bad(`not JSON (${(e as Error).message})`); }
  if (c?.version !== 1 || typeof c.adapters !== 'object' || c.adapters === null) bad('not a version 1 camgpu tuning cache');
  for (const [a, tiles] of Object.entries(c.adapters)) for (const [shape, t] of Object.entries(tiles ?? {}))
    if (!TILES.some((u) => t && sameTile(u, t))) bad(`adapter '${a}', layer ${shape}: ${JSON.stringify(t)} is not one of the tiles camgpu has (${TILES.map(tileName).join(', ')})`);
  return c;
}

/** The cached tiles of an adapter ({} when it was never tuned). */
export const cachedTiles = (adapter: string, file = tuneCachePath()): Record<string, Tile> => readCache(file).adapters[adapter] ?? {};

/** Merges tiles into the adapter's entry (other shapes and adapters are kept). */
export function saveTiles(adapter: string, tiles: Record<string, Tile>, file = tuneCachePath()) {
  const c = readCache(file);
  c.adapters[adapter] = { ...c.adapters[adapter], ...tiles };
  makeDir(dirname(file), 'tuning cache folder'); // one level at a time: never loops (e.g. under /proc)
  writeFileSync(file, JSON.stringify(c, null, 1) + '\n');
}
