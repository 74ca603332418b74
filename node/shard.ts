// Splitting an evaluation across processes: `--shard i/n` (schedulers that hand out indexes: Kubernetes Indexed
// Jobs, Slurm arrays) and the shard files that `camgpu merge` adds up. The unit of work is the run's batch
// (sceneBatches in eval.ts): a batch explains the same scenes with the same GPU calls wherever it runs, and
// aggregate() sums the per-scene records in scene order, so a merge equals a single run exactly (timings aside).
// The same hashes guard the job queue (node/queue.ts): a job or shard is only ever combined with, or run by, the model
// and settings it was made for.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { EvalResult, EvalSettings, Scene, SceneRecord, aggregate } from './eval.js';
import type { Graph } from '../src/graph.js';
import { Tile, convShape, defaultTile, tileName } from '../src/conv.js';

/** `i/n` with 0 <= i < n (Kubernetes' JOB_COMPLETION_INDEX and SLURM_ARRAY_TASK_ID=0..n-1 are 0-based). */
export function parseShard(s: string): { i: number; n: number } {
  const m = /^(\d+)\/(\d+)$/.exec(s.trim());
  const i = m ? Number(m[1]) : NaN, n = m ? Number(m[2]) : NaN;
  if (!m || !(n >= 1) || !(i < n)) throw new Error(`--shard must be i/n with 0 <= i < n (e.g. 0/4), got '${s}'`);
  return { i, n };
}

/** Shard i of n: a contiguous run of whole batches, the first (batches mod n) shards one batch longer. */
export function shardBatches<T>(batches: T[], i: number, n: number): T[] {
  const q = Math.floor(batches.length / n), r = batches.length % n, start = i * q + Math.min(i, r);
  return batches.slice(start, start + q + (i < r ? 1 : 0));
}

/** sha256 of the model file and its sidecar (MODEL.json, which sets preprocessing): what a worker must hold. */
export function modelHash(modelBytes: Uint8Array, sidecarPath?: string | null): string {
  const h = createHash('sha256').update(modelBytes);
  h.update(sidecarPath && existsSync(sidecarPath) ? readFileSync(sidecarPath) : new Uint8Array(0));
  return h.digest('hex');
}

/** This build's version (package.json): part of the settings hash, since another version may compute other numbers. */
export const ENGINE = (() => { try { return `camgpu ${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}`; } catch { return 'camgpu unknown'; } })();

/** sha256 of the model hash, this camgpu version and the run's settings (canonical JSON): equal only for the same three. */
export function settingsHash(model: string, settings: unknown, engine = ENGINE): string {
  return createHash('sha256').update(model).update('\0').update(engine).update('\0').update(canonical(settings)).digest('hex');
}

/**
 * The forward conv tile of each conv layer shape of a model ('16x16', '32x16 F4'): the tuning cache's pick, else the
 * rule (defaultTile). Another tile sums in another order (Winograd: other arithmetic), so the picks are settings: a
 * queue worker or a shard with other picks would not compute the single run's numbers bit for bit.
 */
export function convTiles(g: Graph, cached: Record<string, Tile>): Record<string, string> {
  const picks: Record<string, string> = {};
  for (const n of g.nodes) if (n.op.kind === 'conv') { const k = convShape(g, n); picks[k] = tileName(cached[k] ?? defaultTile(g, n)); }
  return picks;
}

/** sha256 of the scene list (files, classes, boxes, multi): shards and jobs of one run score the same scenes. */
export const scenesHash = (scenes: Scene[]) => createHash('sha256').update(canonical(scenes)).digest('hex');

/** The first setting where two settings records differ, as 'key: A vs B' (nested keys joined by '.'), or ''. */
export function settingsDiff(a: unknown, b: unknown, at = ''): string {
  if (canonical(a) === canonical(b)) return '';
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const x = a as Record<string, unknown>, y = b as Record<string, unknown>;
    for (const k of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort()) {
      const d = settingsDiff(x[k], y[k], at ? `${at}.${k}` : k);
      if (d) return d;
    }
  }
  const show = (v: unknown) => (v === undefined ? '(none)' : canonical(v).slice(0, 80));
  return `${at || 'settings'}: ${show(a)} vs ${show(b)}`;
}

/** JSON with sorted keys, so equal settings hash equally whatever order they were written in. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/** JSON that keeps NaN and +-Infinity (as strings) so numbers survive a file or Redis unchanged. */
export const toJson = (v: unknown, space?: number) => JSON.stringify(v, (_, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x), space);
export const fromJson = (s: string) => JSON.parse(s, (_, x) => (x === 'NaN' || x === 'Infinity' || x === '-Infinity' ? Number(x) : x));

// Float32Arrays travel as base64 of their bytes (exact; JSON numbers would be too, at 3x the size).
export const f32 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
export const unf32 = (s: string) => { const b = Buffer.from(s, 'base64'), a = new Float32Array(b.length / 4); new Uint8Array(a.buffer).set(b); return a; };
const mapValues = <A, B>(o: Record<string, A>, f: (a: A) => B) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));

/** A scene record as JSON can carry it (a shard file, a queue reply): the report detail's curves, image and maps in base64. */
export function recordToWire(r: SceneRecord): unknown {
  const d = r.detail;
  if (!d) return r;
  const curves = mapValues(d.curves, (c) => ({ deletion: f32(c.deletion), insertion: f32(c.insertion) }));
  const gallery = d.gallery && { view: { width: d.gallery.view.width, height: d.gallery.view.height, data: Buffer.from(d.gallery.view.data).toString('base64') }, maps: mapValues(d.gallery.maps, f32) };
  return { ...r, detail: { ...d, curves, ...(gallery ? { gallery } : {}) } };
}
type Wired = SceneRecord & { detail?: { curves: Record<string, { deletion: string; insertion: string }>; gallery?: { view: { width: number; height: number; data: string }; maps: Record<string, string> } } };
export function recordFromWire(w: unknown): SceneRecord {
  const r = w as Wired, d = r.detail;
  if (!d) return r;
  const curves = mapValues(d.curves, (c) => ({ deletion: unf32(c.deletion), insertion: unf32(c.insertion) }));
  const gallery = d.gallery && { view: { ...d.gallery.view, data: new Uint8Array(Buffer.from(d.gallery.view.data, 'base64')) }, maps: mapValues(d.gallery.maps, unf32) };
  return { ...r, detail: { ...(d as unknown as NonNullable<SceneRecord['detail']>), curves, ...(gallery ? { gallery } : {}) } };
}

/** What the eval report needs besides the records: the input size, where it ran, the labels, the options as given. */
export interface ShardReport { input: number[]; adapter: string; tuned: string; labels: string[]; options: Record<string, unknown> }
/** What `eval --shard i/n --json FILE` writes: the shard's scene records (with the report's detail, recordToWire's
 *  form) and what they belong to. */
export interface EvalShard {
  kind: 'camgpu-eval-shard'; version: 1; shard: [number, number];
  model: string; data: string; modelHash: string; settingsHash: string; settings: EvalSettings;
  batches: [number, number][]; seconds: number; report?: ShardReport; records: SceneRecord[];
}

/** The run's JSON (`eval --json`), the same for a single run, a queue run and a merge (the report's detail is not in it). */
export const evalJson = (model: string, data: string, r: EvalResult) => { const { detail: _, ...scores } = r; return { model, data, ...scores }; };

/**
 * Adds up shard files of one run: same model and settings hash, one file per shard 0..n-1, every scene exactly once.
 * Errors name the file. `seconds` of the result: the longest shard's (they run side by side).
 */
export function mergeEval(files: string[], texts?: string[]): { result: EvalResult; first: EvalShard; shards: EvalShard[] } {
  const shards = files.map((f, k) => {
    let s: EvalShard;
    try { s = fromJson(texts?.[k] ?? readFileSync(f, 'utf8')); } catch (e) { throw new Error(`${f}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`); }
    if (s?.kind !== 'camgpu-eval-shard' || s.version !== 1 || !Array.isArray(s.records)) throw new Error(`${f}: not a camgpu eval shard file (eval --shard i/n --json FILE writes one)`);
    return s;
  });
  const first = shards[0], n = first.shard[1], seen = new Map<number, string>();
  shards.forEach((s, k) => {
    const f = files[k];
    if (s.modelHash !== first.modelHash) throw new Error(`${f}: model ${s.model} (sha256 ${s.modelHash.slice(0, 12)}) differs from ${files[0]}'s ${first.model} (sha256 ${first.modelHash.slice(0, 12)})`);
    if (s.settingsHash !== first.settingsHash) throw new Error(`${f}: its settings differ from ${files[0]}'s (${settingsDiff(s.settings, first.settings)})`);
    if (settingsHash(s.modelHash, s.settings) !== s.settingsHash) throw new Error(`${f}: its settings hash is not that of its settings with ${ENGINE}: another camgpu version (or an edit) made it`);
    if (s.shard[1] !== n) throw new Error(`${f}: shard ${s.shard.join('/')} of a ${s.shard[1]}-way split; ${files[0]} is ${first.shard.join('/')}`);
    if (seen.has(s.shard[0])) throw new Error(`${f}: shard ${s.shard.join('/')} is also ${seen.get(s.shard[0])}`);
    seen.set(s.shard[0], f);
  });
  const missing = [...Array(n).keys()].filter((i) => !seen.has(i));
  if (missing.length) throw new Error(`shard${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i}/${n}`).join(', ')} missing (${shards.length} of ${n} files given)`);
  const result = aggregate(shards.flatMap((s) => s.records.map(recordFromWire)), first.settings, Math.max(...shards.map((s) => s.seconds)));
  return { result, first, shards };
}

/** The `shard_run` block of an explain shard's summary.json: what its shards must share. */
export interface ExplainShardRun { model_sha256: string; settings_hash: string; images: number }
/** The fields of an explain shard's summary.json that a merge reads. */
export interface ExplainSummary { shard: [number, number]; shard_run: ExplainShardRun; images: { name: string; targets: { overlays: Record<string, string> }[] }[];
  timings_ms: Record<string, number>; outputs: { raw: Record<string, number[]> | null }; [k: string]: unknown }

/**
 * The summary.json files of `explain --shard i/n` runs, checked to be shards 0..n-1 of one run (same model sha256 and
 * settings hash, each once, every image of the run in exactly one of them) and put in shard order. Errors name the file.
 */
export function explainShards(files: string[], texts: string[]): ExplainSummary[] {
  const all = texts.map((t, k) => {
    let s: ExplainSummary;
    try { s = JSON.parse(t); } catch (e) { throw new Error(`${files[k]}: ${(e as Error).message}`); }
    if (!Array.isArray(s?.shard) || !s.shard_run || !Array.isArray(s.images)) throw new Error(`${files[k]}: not the summary.json of an explain shard (explain --shard i/n --out DIR writes DIR/summary.json)`);
    return s;
  });
  const first = all[0], n = first.shard[1], seen = new Map<number, string>(), names = new Map<string, string>();
  all.forEach((s, k) => {
    const f = files[k];
    if (s.shard_run.model_sha256 !== first.shard_run.model_sha256) throw new Error(`${f}: model sha256 ${s.shard_run.model_sha256.slice(0, 12)} differs from ${files[0]}'s ${first.shard_run.model_sha256.slice(0, 12)}`);
    if (s.shard_run.settings_hash !== first.shard_run.settings_hash) throw new Error(`${f}: its settings or image list differ from ${files[0]}'s (${settingsDiff(pick(s), pick(first)) || 'the image lists differ'})`);
    if (s.shard[1] !== n) throw new Error(`${f}: shard ${s.shard.join('/')} of a ${s.shard[1]}-way split; ${files[0]} is ${first.shard.join('/')}`);
    if (seen.has(s.shard[0])) throw new Error(`${f}: shard ${s.shard.join('/')} is also ${seen.get(s.shard[0])}`);
    seen.set(s.shard[0], f);
    for (const im of s.images) { if (names.has(im.name)) throw new Error(`${f}: image ${im.name} is also in ${names.get(im.name)}`); names.set(im.name, f); }
  });
  const missing = [...Array(n).keys()].filter((i) => !seen.has(i));
  if (missing.length) throw new Error(`shard${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i}/${n}`).join(', ')} missing (${all.length} of ${n} files given)`);
  if (names.size !== first.shard_run.images) throw new Error(`the shards hold ${names.size} of the run's ${first.shard_run.images} images`);
  return all.sort((a, b) => a.shard[0] - b.shard[0]);
}
/** What a settings mismatch message shows of an explain summary. */
const pick = (s: ExplainSummary) => ({ methods: s.methods, layer: s.layer, options: s.options, model: s.model, camgpu: (s.versions as Record<string, string>)?.camgpu });
