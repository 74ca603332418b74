// Runs across machines through a Redis-backed job queue (BullMQ). `camgpu eval --queue redis://HOST:PORT/NAME`
// enqueues the run's batches (sceneBatches in eval.ts: the same batches a single run explains), each job carrying its
// scenes' image files, the run's settings and two hashes; `camgpu worker --queue URL --model M` processes jobs on its
// own GPU with its own plans and sends back per-scene records; the coordinator keys them by scene index and
// aggregate() adds them up in scene order, so the result equals a single run's exactly (timings aside).
//   - bounded retries: a job that throws is tried `attempts` times (fixed back-off), then the run fails naming it;
//   - a dead worker's job: its lock (lockDuration) runs out, another worker's stalled check (stalledInterval) puts it
//     back in the queue, at most maxStalledCount times;
//   - a worker whose model (sha256 of the ONNX file and its sidecar) or settings hash differs from the job's puts the
//     job back untouched (no attempt used), says why on stderr and in the job's progress (the coordinator prints it),
//     and stops;
//   - nothing counted twice or lost: results are keyed by scene index; aggregate() refuses duplicates and gaps.
import { hostname } from 'node:os';
import type { Job, Worker } from 'bullmq';
import { EvalRunner, EvalSettings, Scene } from './eval.js';
import { CancelledError, Delta, Explainer, ExplainOptions, ImageResult } from '../src/explain.js';
import { Method } from '../src/methods.js';
import { ENGINE, f32, fromJson, recordToWire, settingsHash, toJson, unf32 } from './shard.js';
import { Model } from '../src/model.js';
import { Sidecar } from './image.js';

/** Scenes s..e-1 of a batch [s, e), as the worker's log names them. */
export const span = ([s, e]: [number, number]) => `${s}..${e - 1}`;

export interface QueueTarget { host: string; port: number; db?: number; username?: string; password?: string; name: string; url: string }

/** redis://[USER:PASSWORD@]HOST[:PORT]/NAME[?db=N]: NAME is the queue (BullMQ keys bull:NAME:*), N the Redis database. */
export function parseQueueUrl(url: string): QueueTarget {
  let u: URL;
  try { u = new URL(url); } catch { throw new Error(`--queue '${url}': expected redis://HOST:PORT/NAME`); }
  const name = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (u.protocol !== 'redis:') throw new Error(`--queue '${url}': only redis:// URLs are supported`);
  if (!u.hostname || !/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`--queue '${url}': expected redis://HOST:PORT/NAME with a queue NAME of letters, digits, '.', '_' or '-'`);
  const db = u.searchParams.get('db');
  if (db !== null && !/^\d+$/.test(db)) throw new Error(`--queue '${url}': db must be a database number, got '${db}'`);
  return { host: u.hostname, port: u.port ? Number(u.port) : 6379, name, url,
    ...(db !== null ? { db: Number(db) } : {}), ...(u.username ? { username: decodeURIComponent(u.username) } : {}), ...(u.password ? { password: decodeURIComponent(u.password) } : {}) };
}

const connection = (t: QueueTarget) => ({ host: t.host, port: t.port, db: t.db, username: t.username, password: t.password, maxRetriesPerRequest: null });

/**
 * Fails fast with one line when Redis cannot be reached (ioredis itself would retry for ever). Returns the server's
 * clock in ms: event stream ids are server time, so a run reads its events from there on (none is missed between
 * the listener's start and the jobs' arrival, whatever the clocks of the machines say).
 */
export async function ping(t: QueueTarget, timeoutMs = 5000): Promise<number> {
  const IORedis = (await import('ioredis')).default; // loaded by the commands that use the queue only (it takes a while)
  const r = new IORedis({ ...connection(t), maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true, connectTimeout: timeoutMs });
  r.on('error', () => { /* reported below */ });
  try { await r.connect(); const [s, us] = await r.time(); return Number(s) * 1000 + Math.floor(Number(us) / 1000); }
  catch (e) { throw new Error(`cannot reach Redis at ${t.host}:${t.port} (${t.url}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  finally { r.disconnect(); }
}

// ============================================================================================ jobs

/** What every job carries besides its work: which run and batch, and what it must be computed with. */
interface JobHead { run: string; batch: number; modelName: string; modelHash: string; settingsHash: string }
/** An eval batch; `detail` (with `eval --report`): also the per-scene results, curves and gallery maps the report shows. */
export interface EvalJob extends JobHead { kind: 'eval'; settings: EvalSettings; first: number; scenes: Scene[]; images: string[]; detail?: { gallery: number } }
/** An explain batch: its input tensor (k,C,H,W) as the coordinator prepared it, the run's explain options. */
export interface ExplainJob extends JobHead { kind: 'explain'; settings: ExplainSettings; x: string; count: number }
/** What decides an explain run's numbers (its ExplainOptions less progress and profiling, targets as a rule). */
export interface ExplainSettings {
  kind: 'explain'; methods: Method[]; layer: string; score: 'logit' | 'prob'; normalize: 'before' | 'after' | 'none'; relu: boolean;
  scorecam: 'pgc' | 'official'; riseN?: number; targets: { c: number } | { k: number };
  /** The sampling and path methods' options (--seed, --ig-*, --noise-*, --occlusion-*), when given. */
  sampling?: Pick<ExplainOptions, 'seed' | 'ig' | 'noise' | 'occlusion'>;
  /** the conv tile per layer shape (shard.ts convTiles) */ tiles: Record<string, string>;

}
export interface ExplainReply { worker: string; images: WireImage[]; timings: Record<string, number> }

/** The eval job of batch k: its scenes and their image files. */
export const evalJob = (settings: EvalSettings, first: number, scenes: Scene[], images: Uint8Array[], detail?: { gallery: number }) =>
  ({ kind: 'eval', settings, first, scenes, images: images.map((b) => Buffer.from(b).toString('base64')), ...(detail ? { detail } : {}) });
export const explainJob = (settings: ExplainSettings, x: Float32Array, count: number) => ({ kind: 'explain', settings, x: f32(x), count });

/** The explain() options of a settings record, for `count` images. */
export function explainOptions(s: ExplainSettings, count: number): ExplainOptions {
  return { methods: s.methods, layer: s.layer, score: s.score, normalize: s.normalize, relu: s.relu, scorecam: s.scorecam,
    ...(s.riseN ? { rise: { n: s.riseN } } : {}), ...(s.sampling ?? {}), targets: 'c' in s.targets ? Array(count).fill(s.targets.c) : s.targets.k === 1 ? 'top1' : { topk: s.targets.k } };
}

// float arrays as base64 float32 (exact); a method's completeness record (delta: plain numbers) travels as it is
type WireImage = Omit<ImageResult, 'logits' | 'probs' | 'methods'> & { logits: string; probs: string; methods: Record<string, { map: string; raw: string; rawShape: number[]; weights?: string; delta?: Delta }> };
export const toWire = (r: ImageResult): WireImage => ({ ...r, logits: f32(r.logits), probs: f32(r.probs),
  methods: Object.fromEntries(Object.entries(r.methods).map(([m, v]) => [m, { map: f32(v!.map), raw: f32(v!.raw), rawShape: v!.rawShape, ...(v!.weights ? { weights: f32(v!.weights) } : {}), ...(v!.delta ? { delta: v!.delta } : {}) }])) });
export const fromWire = (r: WireImage): ImageResult => ({ ...r, logits: unf32(r.logits), probs: unf32(r.probs),
  methods: Object.fromEntries(Object.entries(r.methods).map(([m, v]) => [m, { map: unf32(v.map), raw: unf32(v.raw), rawShape: v.rawShape, ...(v.weights ? { weights: unf32(v.weights) } : {}), ...(v.delta ? { delta: v.delta } : {}) }])) });
/** What a worker sends back (as toJson text, so NaN survives): the records keyed by scene index (shard.ts recordToWire's
 *  form), who computed them, on which adapter and with which conv tiles (for the report's settings). */
export interface EvalReply { worker: string; adapter: string; tuned: string; records: unknown[] }

export interface QueueStats {
  jobs: number; workers: Record<string, number>; stalled: { batch: number; at: number }[]; retried: { batch: number; reason: string }[];
  refused: string[]; rerun: { batch: number; by: string; attempts: number }[]; seconds: number;
}

/**
 * Enqueues one job per batch and collects the replies; `onReply` gets each batch's reply as it comes (in any order),
 * once. Resolves when every batch is back; rejects when one has used its attempts. `what[k]` names batch k's items
 * in messages. The run's jobs are removed from Redis at the end.
 */
export async function runQueue<R extends { worker: string }>(t: QueueTarget, head: Omit<JobHead, 'batch' | 'run'>, what: string[],
  job: (batch: number) => Record<string, unknown>,
  o: { attempts: number; onReply: (batch: number, r: R) => void; log: (s: string) => void; signal?: AbortSignal }): Promise<QueueStats> {
  const now = await ping(t);
  const t0 = performance.now(), run = `${now.toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const { Job, Queue, QueueEvents } = await import('bullmq');
  const queue = new Queue(t.name, { connection: connection(t) }), events = new QueueEvents(t.name, { connection: connection(t), lastEventId: `${now - 1}-0` });
  const ids = what.map((_, k) => `${run}-${k}`), index = new Map(ids.map((id, k) => [id, k]));
  const pending = new Set(ids), stats: QueueStats = { jobs: ids.length, workers: {}, stalled: [], retried: [], refused: [], rerun: [], seconds: 0 };
  const stalledBatches = new Set<number>();
  let poll: NodeJS.Timeout | undefined, failure: unknown = null, cancelled = false;
  try {
    await events.waitUntilReady();
    if (!ids.length) return stats;
    await new Promise<void>((resolve, reject) => {
      const take = (id: string, value: unknown, attempts: number) => {
        if (!pending.delete(id)) return; // a late second reply of a batch is never counted twice
        const k = index.get(id)!, r = fromJson(String(value)) as R;
        stats.workers[r.worker] = (stats.workers[r.worker] ?? 0) + 1;
        if (stalledBatches.has(k) || attempts > 1) stats.rerun.push({ batch: k, by: r.worker, attempts });
        o.onReply(k, r);
        if (!pending.size) resolve();
      };
      const check = async (id: string) => {
        const j = await Job.fromId(queue, id);
        if (!j || !pending.has(id)) return;
        const state = await j.getState();
        if (state === 'completed') take(id, j.returnvalue, j.attemptsMade);
        else if (state === 'failed') reject(new Error(`batch ${index.get(id)} (${what[index.get(id)!]}) failed after ${j.attemptsMade} attempt${j.attemptsMade > 1 ? 's' : ''}: ${j.failedReason}`));
      };
      events.on('completed', ({ jobId }) => { if (pending.has(jobId)) check(jobId).catch(reject); });
      events.on('failed', ({ jobId, failedReason }) => {
        if (!pending.has(jobId)) return;
        stats.retried.push({ batch: index.get(jobId)!, reason: failedReason });
        check(jobId).catch(reject);
      });
      events.on('stalled', ({ jobId }) => {
        if (!index.has(jobId)) return;
        const k = index.get(jobId)!;
        stalledBatches.add(k); stats.stalled.push({ batch: k, at: (performance.now() - t0) / 1000 });
        o.log(`batch ${k} (${what[k]}) stalled (its worker stopped renewing the lock: dead or hung); back in the queue`);
      });
      events.on('progress', ({ jobId, data }) => {
        const why = (data as { refused?: string })?.refused;
        if (index.has(jobId) && why && !stats.refused.includes(why)) { stats.refused.push(why); o.log(why); }
      });
      // a backstop for events missed while reconnecting: look at the jobs still pending every few seconds
      poll = setInterval(() => { for (const id of [...pending].slice(0, 64)) check(id).catch(reject); }, 3000);
      // Ctrl-C (the CLI's STOP signal): stop waiting; the finally below takes the run's jobs off the queue
      const stop = () => { cancelled = true; reject(new CancelledError('queue run cancelled')); };
      if (o.signal?.aborted) return stop();
      o.signal?.addEventListener('abort', stop, { once: true });
      queue.addBulk(what.map((_, k) => {
        const data = { ...job(k), run, batch: k, ...head };
        return { name: String((data as Record<string, unknown>).kind ?? 'job'), data, opts: { jobId: ids[k], attempts: o.attempts, backoff: { type: 'fixed', delay: 1000 } } };
      })).then(() => o.log(`${ids.length} batch${ids.length > 1 ? 'es' : ''} queued on ${t.url} (run ${run}); waiting for workers`), reject);
    });
  } catch (e) { failure = e; } finally {
    clearInterval(poll);
    const left = [...pending], removed = await Promise.allSettled(ids.map((id) => queue.remove(id)));
    await events.close(); await queue.close();
    if (cancelled) {
      // a job a worker holds is locked (remove() refuses it): the worker finishes it, and its reply goes unread
      const gone = left.filter((id) => { const r = removed[index.get(id)!]; return r.status === 'fulfilled' && r.value === 1; }).length;
      failure = new CancelledError(`run ${run} on ${t.url}: ${gone} of its ${left.length} pending batch${left.length === 1 ? '' : 'es'} taken off the queue`
        + (left.length > gone ? `; ${left.length - gone} in a worker's hands finish there and are discarded` : '') + `; ${ids.length - left.length} of ${ids.length} had come back`);
    }
  }
  if (failure) throw failure;
  stats.seconds = (performance.now() - t0) / 1000;
  return stats;
}

// ========================================================================================== worker

/** The first layer shape whose conv tile differs between a run and this worker, as words, or ''. */
function tileDiff(run: Record<string, string>, mine: Record<string, string>): string {
  for (const k of [...new Set([...Object.keys(run), ...Object.keys(mine)])].sort()) if (run[k] !== mine[k]) return `layer ${k}: ${run[k] ?? 'none'} in the run, ${mine[k] ?? 'none'} here`;
  return '';
}

/** tiles: this worker's conv tile per layer shape (its tuning cache's picks, else the rule); adapter, tuned: for replies. */
export interface WorkerContext { model: Model; side: Sidecar; modelName: string; modelHash: string; tiles: Record<string, string>; adapter: string; tuned: string }
export interface WorkerOptions { lockMs: number; stalledMs: number; maxStalled: number; log: (s: string) => void }

/**
 * Processes jobs of the queue one at a time on this process's GPU until close() (or a refusal, which closes it and
 * resolves `refused` with the reason). One EvalRunner or Explainer (and its plans) is kept per settings hash.
 */
export async function startWorker(t: QueueTarget, ctx: WorkerContext, o: WorkerOptions): Promise<{ worker: Worker; refused: Promise<string>; close: () => Promise<void> }> {
  const { Worker, WaitingError } = await import('bullmq');
  const me = `${hostname()}:${process.pid}`;
  let runner: { hash: string; eval?: EvalRunner; explain?: Explainer; destroy(): void } | null = null, refuse!: (why: string) => void;
  const refused = new Promise<string>((r) => { refuse = r; });
  const worker = new Worker(t.name, async (job: Job, token?: string) => {
    const d = job.data as EvalJob | ExplainJob, where = `batch ${d.batch} of run ${d.run}`;
    const tiles = d.modelHash === ctx.modelHash ? tileDiff(d.settings.tiles ?? {}, ctx.tiles) : '';
    const mismatch = d.modelHash !== ctx.modelHash ? `it is for model ${d.modelName} (sha256 ${d.modelHash.slice(0, 12)}), this worker has ${ctx.modelName} (sha256 ${ctx.modelHash.slice(0, 12)})`
      : tiles ? `its conv tiles are not this worker's (${tiles}; this worker: ${ctx.tuned}); give every worker the coordinator's tuning cache (CAMGPU_TUNE_CACHE) or none`
      : settingsHash(ctx.modelHash, d.settings) !== d.settingsHash ? `its settings hash ${d.settingsHash.slice(0, 12)} is not that of its settings with this worker's model and ${ENGINE} (${settingsHash(ctx.modelHash, d.settings).slice(0, 12)}): another camgpu version made it`
      : d.kind !== 'eval' && d.kind !== 'explain' ? `unknown job kind '${(d as { kind: string }).kind}'` : '';
    if (mismatch) {
      const why = `worker ${me} refused ${where}: ${mismatch}${tiles ? '' : '; start workers with the run\'s model (and sidecar)'}`;
      await job.updateProgress({ refused: why }).catch(() => undefined);
      await job.moveToWait(token); // back in the queue for a matching worker; no attempt used
      refuse(why);
      throw new WaitingError();
    }
    const t0 = performance.now(), n = d.kind === 'eval' ? d.scenes.length : d.count;
    const items = d.kind === 'eval' ? `scenes ${d.first}..${d.first + n - 1}` : `${n} images`;
    o.log(`worker ${me}: ${where} (${items}, attempt ${job.attemptsMade + 1}): start`);
    let reply: EvalReply | ExplainReply;
    const key = d.kind === 'eval' && d.detail ? `${d.settingsHash} gallery ${d.detail.gallery}` : d.settingsHash;
    if (runner?.hash !== key) { runner?.destroy(); runner = null; }
    if (d.kind === 'eval') {
      runner ??= { hash: key, eval: new EvalRunner(ctx.model, ctx.side, d.settings, d.detail ? { detail: d.detail } : {}), destroy() { this.eval!.destroy(); } };
      const records = await runner.eval!.run(d.first, d.scenes, d.images.map((b) => new Uint8Array(Buffer.from(b, 'base64'))));
      reply = { worker: me, adapter: ctx.adapter, tuned: ctx.tuned, records: records.map(recordToWire) };
    } else {
      runner ??= { hash: d.settingsHash, explain: new Explainer(ctx.model), destroy() { this.explain!.destroy(); } };
      const e = await runner.explain!.explain(unf32(d.x), explainOptions(d.settings, d.count));
      reply = { worker: me, images: e.images.map(toWire), timings: e.timings };
    }
    o.log(`worker ${me}: ${where}: done, ${n} ${d.kind === 'eval' ? 'scenes' : 'images'} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    return toJson(reply);
  }, { connection: connection(t), concurrency: 1, lockDuration: o.lockMs, stalledInterval: o.stalledMs, maxStalledCount: o.maxStalled });
  worker.on('error', (e) => o.log(`worker ${me}: ${e.message}`));
  const close = async () => { await worker.close(); runner?.destroy(); runner = null; };
  return { worker, refused, close };
}
