// Splitting an evaluation across processes: `--shard i/n` (schedulers that hand out indexes: Kubernetes Indexed
// Jobs, Slurm arrays) and the shard files that `camgpu merge` adds up. The unit of work is the run's batch
// (sceneBatches in eval.ts): a batch explains the same scenes with the same GPU calls wherever it runs, and
// aggregate() sums the per-scene records in scene order, so a merge equals a single run exactly (timings aside).
// The same hashes guard the job queue (node/queue.ts): a job or shard is only ever combined with, or run by, the model
// and settings it was made for.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { EvalResult, EvalSettings, SceneRecord, aggregate } from './eval.js';

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

/** What `eval --shard i/n --json FILE` writes: the shard's scene records and what they belong to. */
export interface EvalShard {
  kind: 'camgpu-eval-shard'; version: 1; shard: [number, number];
  model: string; data: string; modelHash: string; settingsHash: string; settings: EvalSettings;
  batches: [number, number][]; seconds: number; records: SceneRecord[];
}

/** The run's JSON (`eval --json`), the same for a single run, a queue run and a merge (the report's detail is not in it). */
export const evalJson = (model: string, data: string, r: EvalResult) => { const { detail: _, ...scores } = r; return { model, data, ...scores }; };

/**
 * Adds up shard files of one run: same model and settings hash, one file per shard 0..n-1, every scene exactly once.
 * Errors name the file. `seconds` of the result: the longest shard's (they run side by side).
 */
export function mergeEval(files: string[]): { result: EvalResult; first: EvalShard; shards: EvalShard[] } {
  const shards = files.map((f) => {
    let s: EvalShard;
    try { s = fromJson(readFileSync(f, 'utf8')); } catch (e) { throw new Error(`${f}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`); }
    if (s?.kind !== 'camgpu-eval-shard' || s.version !== 1 || !Array.isArray(s.records)) throw new Error(`${f}: not a camgpu eval shard file (eval --shard i/n --json FILE writes one)`);
    return s;
  });
  const first = shards[0], n = first.shard[1], seen = new Map<number, string>();
  shards.forEach((s, k) => {
    const f = files[k];
    if (s.modelHash !== first.modelHash) throw new Error(`${f}: model ${s.model} (sha256 ${s.modelHash.slice(0, 12)}) differs from ${files[0]}'s ${first.model} (sha256 ${first.modelHash.slice(0, 12)})`);
    if (s.settingsHash !== first.settingsHash) throw new Error(`${f}: settings ${canonical(s.settings)} differ from ${files[0]}'s ${canonical(first.settings)}`);
    if (settingsHash(s.modelHash, s.settings) !== s.settingsHash) throw new Error(`${f}: its settings hash is not that of its settings with ${ENGINE}: another camgpu version (or an edit) made it`);
    if (s.shard[1] !== n) throw new Error(`${f}: shard ${s.shard.join('/')} of a ${s.shard[1]}-way split; ${files[0]} is ${first.shard.join('/')}`);
    if (seen.has(s.shard[0])) throw new Error(`${f}: shard ${s.shard.join('/')} is also ${seen.get(s.shard[0])}`);
    seen.set(s.shard[0], f);
  });
  const missing = [...Array(n).keys()].filter((i) => !seen.has(i));
  if (missing.length) throw new Error(`shard${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i}/${n}`).join(', ')} missing (${shards.length} of ${n} files given)`);
  const result = aggregate(shards.flatMap((s) => s.records), first.settings, Math.max(...shards.map((s) => s.seconds)));
  return { result, first, shards };
}
