// `camgpu eval` split across processes, for real: Debian's redis-server started here on 127.0.0.1 (a free port, its
// own empty directory, no persistence) and stopped at the end; three `camgpu worker` processes, one killed with
// SIGKILL while it holds a batch; and `eval --shard i/n` + `camgpu merge`. Oracle: the single-process run of the same
// eval; the queue run's and the merge's JSON must equal it exactly (every metric, bit for bit through JSON), only the
// timings (seconds, msPerImage) aside. Plus: a worker with another model refuses the job (exit 1, one clear line) and
// the job waits, untouched, for a matching worker.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { readScenes } from '../node/eval.js';
import { fromWire, toWire } from '../node/queue.js';
import { fromJson, toJson } from '../node/shard.js';

const CLI = 'dist/cli.js';
const tmp = mkdtempSync(join(tmpdir(), 'camgpu-queue-'));
const nativeNoise = (l: string) => l.trim() === '' || l.startsWith('Warning: ') || /^\s+at \w+ \(.*\.cpp:\d+\)$/.test(l);

// A small subset of the committed scenes, single- and multi-instance: 8 + 4 scenes in batches of 2 (6 batches).
const DATA = join(tmp, 'scenes');
const EVAL = ['--model', 'weights/resnet.onnx', '--data', DATA, '--methods', 'gradcam,gradcam++,liftcam', '--steps', '4', '--auc-limit', '5', '--batch', '2', '--gallery', '5'];
// short locks so a dead worker's batch comes back within seconds
const WORKER = ['--model', 'weights/resnet.onnx', '--lock-ms', '4000', '--stalled-ms', '1000'];

// explain: 3 images, 2 targets each, in runs of 2 (a run of 2 and a run of 1)
const XFILES = [...readdirSync('data/scenes').filter((f) => f.startsWith('single_')).slice(0, 2), ...readdirSync('data/scenes').filter((f) => f.startsWith('multi_')).slice(0, 1)].map((f) => join('data/scenes', f));
const X = ['explain', ...XFILES, '--model', 'weights/resnet.onnx', '--methods', 'gradcam,liftcam,saliency', '--class', 'top2', '--batch', '2'];
const XLOCAL = join(tmp, 'x-local');

let redis: ChildProcess | null = null, port = 0;
const children = new Set<ChildProcess>();

interface Proc { child: ChildProcess; out: string; err: string; exit: Promise<number | null>; waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray> }
/** A camgpu process running in the background; waitFor resolves on the first stdout+stderr match. */
function start(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.add(child);
  const p: Proc = { child, out: '', err: '', exit: new Promise((r) => child.on('close', (code) => { children.delete(child); r(code); })), waitFor: () => Promise.reject() };
  const waiters: { re: RegExp; ok: (m: RegExpExecArray) => void }[] = [];
  const poke = () => { for (const w of [...waiters]) { const m = w.re.exec(p.out + p.err); if (m) { waiters.splice(waiters.indexOf(w), 1); w.ok(m); } } };
  child.stdout!.on('data', (d) => { p.out += d; poke(); });
  child.stderr!.on('data', (d) => { p.err += d; poke(); });
  p.waitFor = (re, ms = 120_000) => new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`no ${re} from camgpu ${args.join(' ')} in ${ms} ms:\n${p.out}\n${p.err}`)), ms);
    waiters.push({ re, ok: (m) => { clearTimeout(t); ok(m); } }); poke();
  });
  return p;
}
const errLines = (p: Proc) => p.err.split('\n').filter((l) => !nativeNoise(l));

function run(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 300_000 });
  if (r.error) throw r.error;
  assert.is(r.status, 0, `camgpu ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The eval JSON without its timings: what must be equal exactly. */
function metrics(file: string) {
  const j = JSON.parse(readFileSync(file, 'utf8'));
  delete j.seconds;
  for (const m of Object.values(j.methods) as Record<string, unknown>[]) delete m.msPerImage;
  return j;
}

/**
 * A report page with its timings taken out (wall time, how it ran, ms/image cells) and its JSON island apart: the rest,
 * every number, tile image and curve point, must be the single run's byte for byte.
 */
function reportPage(dir: string) {
  const html = readFileSync(join(dir, 'report.html'), 'utf8'), island = /<script type="application\/json" id="eval-data">(.*?)<\/script>/s.exec(html)!;
  const page = html.replace(island[0], '').replace(/<td data-key="(wall time|run)">[^<]*<\/td>/g, '').replace(/<td data-key="msPerImage" data-value="[^"]*"[^>]*>[^<]*<\/td>/g, '');
  const data = JSON.parse(island[1]);
  delete data.seconds;
  for (const m of Object.values(data.methods) as Record<string, unknown>[]) delete m.msPerImage;
  assert.equal(JSON.parse(readFileSync(join(dir, 'eval.json'), 'utf8')).perScene, data.perScene, 'eval.json = the page\'s island');
  return { page, data, run: /<td data-key="run">([^<]*)<\/td>/.exec(html)![1], tiles: (html.match(/src="data:image\//g) ?? []).length };
}
/** An explain report page less its timings table, its adapter cell (a queue run's coordinator has none) and its JSON island. */
const xpage = (d: string) => readFileSync(join(tmp, d, 'report.html'), 'utf8').replace(/<table id="timings">.*?<\/table>/s, '')
  .replace(/<td data-key="adapter">[^<]*<\/td>/, '').replace(/<script type="application\/json" id="summary-data">.*?<\/script>/s, '');
const sameReport = (dir: string, what: string) => {
  const a = reportPage(dir), b = reportPage(join(tmp, 'r-single'));
  assert.equal(a.data, b.data, `${what}: the report's numbers (curves, per-scene results, metrics) = the single run's`);
  assert.is(a.tiles, 5 * 4, `${what}: 5 gallery scenes x (image + 3 methods)`);
  assert.ok(a.page === b.page, `${what}: report.html (timings aside) = the single run's byte for byte`);
  return a.run;
};

const freePort = () => new Promise<number>((ok, fail) => {
  const s = createServer().once('error', fail).listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => ok(p)); });
});

const test = suite('queue');

test.before(async () => {
  // scenes 0-7 (single) and the first 4 multi-instance scenes, their files named relative to the subset's folder
  const all = readScenes('data/scenes'), pick = [...all.filter((s) => !s.multi).slice(0, 8), ...all.filter((s) => s.multi).slice(0, 4)];
  mkdirSync(DATA);
  writeFileSync(join(DATA, 'boxes.json'), JSON.stringify(pick.map((s) => ({ ...s, file: relative(DATA, resolve('data/scenes', s.file)) }))));
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (which.error) throw new Error('redis-server is not installed: bash tools/setup.sh installs it (Debian package redis-server)');
  port = await freePort();
  mkdirSync(join(tmp, 'redis'));
  const r = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', join(tmp, 'redis')], { stdio: ['ignore', 'pipe', 'pipe'] });
  redis = r;
  // never leave a server (or a worker) behind, even when the suite dies before test.after
  process.on('exit', () => { for (const c of [r, ...children]) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL'); });
  let log = '';
  await new Promise<void>((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`redis-server did not start on port ${port}:\n${log}`)), 20_000);
    r.stdout!.on('data', (d) => { log += d; if (/Ready to accept connections/.test(log)) { clearTimeout(t); ok(); } });
    r.on('close', (code) => { clearTimeout(t); fail(new Error(`redis-server exited (${code}):\n${log}`)); });
  });
});

test.after(async () => {
  for (const c of children) c.kill('SIGKILL');
  if (redis && redis.exitCode === null) {
    const gone = new Promise((r) => redis!.once('close', r));
    redis.kill('SIGTERM');
    await gone;
  }
  rmSync(tmp, { recursive: true, force: true });
});

const single = join(tmp, 'single.json');

test('an explain result crosses the wire whole: maps, raw, weights and every method\'s completeness record (delta), NaN kept', () => {
  const f = (...v: number[]) => Float32Array.from(v);
  const r = { image: 2, target: 7, logits: f(1.5, -2, NaN), probs: f(0.25, 0.75, 0), topk: [{ class: 1, logit: -2, prob: 0.75 }],
    methods: { 'integrated-gradients': { map: f(0, 1), raw: f(0.1, -0.3, 1e-30, 3), rawShape: [1, 2, 2], delta: { sum: 0.41, expected: 0.4, scale: 2 } },
      gradcam: { map: f(0.5, 1), raw: f(-1, 2), rawShape: [1, 2], weights: f(0.5, Infinity) } },
    deepliftDelta: { sum: 1, expected: 1.01, scale: 3 } };
  const back = fromWire(fromJson(toJson(toWire(r))) as ReturnType<typeof toWire>);
  // uvu's deep equal compares typed-array elements with !==, so NaN never equals itself there: compare the exact text
  // (every float32 printed in its shortest round-trip form, NaN/Infinity spelled out) and the array types
  assert.is(toJson(back), toJson(r));
  assert.instance(back.logits, Float32Array); assert.instance(back.methods['integrated-gradients']!.raw, Float32Array);
  assert.equal(back.methods['integrated-gradients']!.delta, { sum: 0.41, expected: 0.4, scale: 2 });
});

test('the single-process run (the oracle)', () => {
  run(['eval', ...EVAL, '--json', single, '--report', join(tmp, 'r-single')]);
  const j = metrics(single);
  assert.is(reportPage(join(tmp, 'r-single')).run, 'one process');
  assert.is(j.scenes, 12); assert.is(j.multi, 4); assert.is(j.aucScenes, 5);
  assert.equal(Object.keys(j.methods), ['gradcam', 'gradcam++', 'liftcam']);
});

test('three workers, one killed with SIGKILL mid-batch: its batch runs again elsewhere, the result equals the single run exactly; explain --queue writes the local run\'s files', async () => {
  const url = `redis://127.0.0.1:${port}/camgpu-test`, json = join(tmp, 'queue.json');
  const workers = [0, 1, 2].map(() => start(['worker', '--queue', url, ...WORKER]));
  await Promise.all(workers.map((w) => w.waitFor(/waiting for batches/)));
  const coord = start(['eval', ...EVAL, '--queue', url, '--json', json, '--report', join(tmp, 'r-queue')]);
  // the victim dies the moment it has started its first batch (a lock held, the batch half done)
  const m = await workers[0].waitFor(/batch (\d+) of run \S+ \(scenes (\d+)\.\.(\d+), attempt 1\): start/);
  workers[0].child.kill('SIGKILL');
  const victimBatch = Number(m[1]);
  assert.is(await coord.exit, 0, `eval --queue: ${coord.err}`);
  assert.equal(metrics(json), metrics(single));
  assert.match(sameReport(join(tmp, 'r-queue'), 'eval --queue --report'), /^6 batches through redis:\/\/127\.0\.0\.1:\d+\/camgpu-test on [12] workers/);
  // the coordinator saw the stall and names who ran the batch again
  // (on a loaded machine a live worker may also miss a lock renewal: its batch then runs twice, and is counted once)
  const stats = /through redis:\/\/127\.0\.0\.1:\d+\/camgpu-test, ([12]) workers .*, (\d+) stalled, 0 failed attempts/.exec(coord.out);
  assert.ok(stats && Number(stats[2]) >= 1, coord.out);
  const again = new RegExp(`batch ${victimBatch} \\(scenes ${m[2]}\\.\\.${m[3]}\\) was run again by \\S+:(\\d+) .*after its worker stalled`).exec(coord.out);
  assert.ok(again, `no re-run line for batch ${victimBatch} in:\n${coord.out}`);
  assert.ok([workers[1], workers[2]].some((w) => String(w.child.pid) === again![1]), 'a surviving worker ran it');
  assert.not.match(workers[0].out, new RegExp(`batch ${victimBatch} of run \\S+: done`), 'the victim never finished it');
  // explain through the same queue (the two survivors): overlays, grid and raw .npy byte for byte as a local run
  const qo = join(tmp, 'x-queue');
  run([...X, '--out', XLOCAL, '--raw', join(XLOCAL, 'raw'), '--report', join(tmp, 'x-local-report')]);
  const lo = XLOCAL, x = X;
  const xq = start([...x, '--out', qo, '--raw', join(qo, 'raw'), '--queue', url, '--report', join(tmp, 'x-queue-report')]);
  assert.is(await xq.exit, 0, xq.err);
  assert.ok(xpage('x-queue-report') === xpage('x-local-report'), 'explain --queue report.html = the local run\'s (timings, adapter aside)');
  assert.match(xq.out, /queue +redis:\/\/127\.0\.0\.1:\d+\/camgpu-test: 2 batches, /);
  const outputs = readdirSync(lo, { recursive: true }).map(String).filter((f) => /\.(png|npy)$/.test(f)).sort();
  assert.is(outputs.length, 3 * 2 * 3 + 1 + 2 * 2 + 1 + 1, outputs.join(' ')); // overlays, grid, CAM maps + weights, saliency, logits
  for (const f of outputs) assert.ok(readFileSync(join(lo, f)).equals(readFileSync(join(qo, f))), `${f} differs between the local and the queue run`);
  const images = (d: string) => JSON.stringify(JSON.parse(readFileSync(join(d, 'summary.json'), 'utf8')).images).replaceAll(d, 'DIR');
  assert.is(images(qo), images(lo));
  // SIGTERM: the survivors finish what they hold and exit 0
  for (const w of workers.slice(1)) w.child.kill('SIGTERM');
  for (const w of workers.slice(1)) assert.is(await w.exit, 0, w.err);
  assert.is(workers[0].child.signalCode, 'SIGKILL');
});

test('a worker with another model refuses the job (exit 1, one line); the job waits untouched for a matching worker', async () => {
  const url = `redis://127.0.0.1:${port}/camgpu-refuse`, small = ['--model', 'weights/resnet.onnx', '--data', DATA, '--limit', '2', '--methods', 'gradcam', '--steps', '4', '--auc-limit', '0', '--batch', '2'];
  const wrong = start(['worker', '--queue', url, '--model', 'weights/mobilenet.onnx']);
  await wrong.waitFor(/waiting for batches/);
  const coord = start(['eval', ...small, '--queue', url]);
  assert.is(await wrong.exit, 1);
  const lines = errLines(wrong);
  assert.is(lines.length, 1, lines.join(' | '));
  assert.match(lines[0], /^camgpu: worker \S+ refused batch 0 of run \S+: it is for model resnet\.onnx \(sha256 [0-9a-f]{12}\), this worker has mobilenet\.onnx \(sha256 [0-9a-f]{12}\)/);
  await coord.waitFor(/refused batch 0/); // the coordinator tells its user too
  const right = start(['worker', '--queue', url, '--model', 'weights/resnet.onnx']);
  await right.waitFor(/batch 0 of run \S+ \(scenes 0\.\.1, attempt 1\): start/); // no attempt was used by the refusal
  assert.is(await coord.exit, 0, coord.err);
  assert.match(coord.out, /1 workers .*0 stalled, 0 failed attempts/);
  right.child.kill('SIGTERM');
  assert.is(await right.exit, 0);
});

test('eval --shard i/n in three processes side by side, then camgpu merge: equal to the single run exactly; explain --shard writes the single run\'s overlays', async () => {
  const files = [0, 1, 2].map((i) => join(tmp, `shard${i}.json`));
  const shards = files.map((f, i) => start(['eval', ...EVAL, '--shard', `${i}/3`, '--json', f]));
  for (const s of shards) assert.is(await s.exit, 0, s.err);
  // 6 batches of 2 over 3 shards: 2 batches (4 scenes) each
  shards.forEach((s, i) => assert.match(s.out, new RegExp(`shard ${i}/3: 2 of 6 batches, 4 of 12 scenes`)));
  const merged = join(tmp, 'merged.json');
  run(['merge', ...files, '--json', merged, '--report', join(tmp, 'r-merged')]);
  assert.equal(metrics(merged), metrics(single));
  assert.is(sameReport(join(tmp, 'r-merged'), 'merge --report'), '3 shards merged (camgpu merge)');
  // explain --shard: each shard's overlays are the single run's files, byte for byte, and together they are all of them
  const xs = [0, 1].map((i) => start([...X, '--shard', `${i}/2`, '--out', join(tmp, `x-shard${i}`), '--raw', join(tmp, `x-shard${i}`, 'raw')]));
  for (const s of xs) assert.is(await s.exit, 0, s.err);
  const pngs = (d: string) => readdirSync(d).filter((f) => f.endsWith('.png') && f !== 'grid.png').sort();
  const got = [0, 1].map((i) => pngs(join(tmp, `x-shard${i}`)));
  assert.is(got[0].length, 2 * 2 * 3); assert.is(got[1].length, 1 * 2 * 3); // shard 0: the run of 2 images; shard 1: the run of 1
  assert.equal([...got[0], ...got[1]].sort(), pngs(XLOCAL));
  got.forEach((fs, i) => fs.forEach((f) => assert.ok(readFileSync(join(tmp, `x-shard${i}`, f)).equals(readFileSync(join(XLOCAL, f))), `shard ${i}: ${f} differs`)));
  assert.equal(JSON.parse(readFileSync(join(tmp, 'x-shard1', 'summary.json'), 'utf8')).shard, [1, 2]);
  // camgpu merge of the explain shards: the single run's overlays, grid.png, raw .npy and summary.json (timings and the compile line aside: each shard compiled its own pipelines)
  const xm = join(tmp, 'x-merged'), sums = [0, 1].map((i) => join(tmp, `x-shard${i}`, 'summary.json'));
  run(['merge', sums[1], sums[0], '--out', xm, '--raw', join(xm, 'raw'), '--report', join(tmp, 'x-merged-report')]);
  const outs = readdirSync(XLOCAL, { recursive: true }).map(String).filter((f) => /\.(png|npy)$/.test(f)).sort();
  assert.equal(readdirSync(xm, { recursive: true }).map(String).filter((f) => /\.(png|npy)$/.test(f)).sort(), outs);
  for (const f of outs) assert.ok(readFileSync(join(xm, f)).equals(readFileSync(join(XLOCAL, f))), `merged ${f} differs from the single run's`);
  const summary = (d: string) => { const j = JSON.parse(readFileSync(join(d, 'summary.json'), 'utf8').replaceAll(d, 'DIR')); assert.ok(Object.keys(j.timings_ms).length > 0); delete j.timings_ms; delete j.compile; return j; };
  assert.equal(summary(xm), summary(XLOCAL), 'summary.json: every image once, in run order, the same numbers and paths');
  // the explain report: the single run's page byte for byte, but for its timings table and its JSON island (summary.json)
  assert.is((xpage('x-merged-report').match(/class="scene"/g) ?? []).length, 3 * 2, 'the report: a section per image and target');
  assert.ok(xpage('x-merged-report') === xpage('x-local-report'), 'merged explain report.html = the single run\'s (timings aside)');
  // refused, one line each: a shard missing, a shard given twice, a shard of another run (other --methods)
  const other = join(tmp, 'x-other');
  run([...X.map((a) => (a === 'gradcam,liftcam,saliency' ? 'gradcam,liftcam' : a)), '--shard', '1/2', '--out', other]);
  for (const [args, re] of [[[sums[0]], /^camgpu: shard 1\/2 missing \(1 of 2 files given\)$/], [[sums[0], sums[0]], /^camgpu: .*summary\.json: shard 0\/2 is also .*summary\.json$/],
    [[sums[0], join(other, 'summary.json')], /^camgpu: .*x-other\/summary\.json: its settings or image list differ from .*summary\.json's \(methods: \["gradcam","liftcam"\] vs \["gradcam","liftcam","saliency"\]\)$/]] as [string[], RegExp][]) {
    const r = spawnSync(process.execPath, [CLI, 'merge', ...args, '--out', join(tmp, 'x-bad')], { encoding: 'utf8' });
    assert.is(r.status, 1, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => !nativeNoise(l));
    assert.is(lines.length, 1, lines.join(' | ')); assert.match(lines[0], re);
  }
  // a merge that lacks a shard, or counts one twice, is refused naming it
  const r = spawnSync(process.execPath, [CLI, 'merge', files[0], files[2], files[2]], { encoding: 'utf8' });
  assert.is(r.status, 1);
  assert.match(r.stderr, /shard 2\/3 is also/);
  const r2 = spawnSync(process.execPath, [CLI, 'merge', files[0], files[1]], { encoding: 'utf8' });
  assert.is(r2.status, 1);
  assert.match(r2.stderr, /camgpu: shard 2\/3 missing \(2 of 3 files given\)/);
});

test('a worker whose tuning cache picks another conv tile refuses the job (one line naming the layer shape); Ctrl-C on eval --queue and explain --queue takes the run\'s jobs off the queue and exits 130', async () => {
  const url = `redis://127.0.0.1:${port}/camgpu-tiles`, name = 'camgpu-tiles';
  // the run's picks, as the shard files of the test before recorded them, and one layer shape given another tile
  const picks: Record<string, string> = JSON.parse(readFileSync(join(tmp, 'shard0.json'), 'utf8')).settings.tiles, shape = Object.keys(picks)[0];
  assert.ok(Object.keys(picks).length >= 3, 'resnet has conv layers');
  const other = picks[shape] === '8x8' ? { TK: 16, TP: 8 } : { TK: 8, TP: 8 }, cache = join(tmp, 'tiles.json');
  const adapter = JSON.parse(readFileSync(join(tmp, 'r-single', 'eval.json'), 'utf8')).adapter;
  writeFileSync(cache, JSON.stringify({ version: 1, adapters: { [adapter]: { [shape]: other } } }));
  const wrong = start(['worker', '--queue', url, ...WORKER], { CAMGPU_TUNE_CACHE: cache });
  await wrong.waitFor(/waiting for batches/);
  const coord = start(['eval', '--model', 'weights/resnet.onnx', '--data', DATA, '--limit', '4', '--methods', 'gradcam', '--steps', '4', '--auc-limit', '0', '--batch', '2', '--queue', url]);
  assert.is(await wrong.exit, 1);
  const lines = errLines(wrong);
  assert.is(lines.length, 1, lines.join(' | '));
  const esc = shape.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  assert.match(lines[0], new RegExp(`^camgpu: worker \\S+ refused batch \\d of run \\S+: its conv tiles are not this worker's \\(layer ${esc}: ${picks[shape]} in the run, ${other.TK}x${other.TP} here; this worker: conv tiles tuned for 1 of \\d+ layer shapes \\(${cache.replace(/[.]/g, '\\.')}\\)\\); give every worker the coordinator's tuning cache \\(CAMGPU_TUNE_CACHE\\) or none$`));
  await coord.waitFor(/refused batch/);
  // nobody will take the jobs now: Ctrl-C cancels the run, its 2 waiting batches leave the queue
  const m = /\((run \S+)\); waiting for workers/.exec(coord.err)!;
  coord.child.kill('SIGINT');
  assert.is(await coord.exit, 130, coord.err);
  assert.match(errLines(coord).at(-1)!, new RegExp(`^camgpu: cancelled: ${m[1]} on ${url.replace(/[./]/g, '\\$&')}: 2 of its 2 pending batches taken off the queue; 0 of 2 had come back$`));
  const IORedis = (await import('ioredis')).default, r = new IORedis({ host: '127.0.0.1', port });
  try {
    const left = async (run: string) => (await r.keys(`bull:${name}:*`)).filter((k) => k.includes(run));
    assert.equal(await left(m[1].slice(4)), [], 'no key of the run is left in Redis');
    assert.is(await r.llen(`bull:${name}:wait`), 0, 'nothing waits');
    // explain --queue likewise
    const xq = start([...X, '--out', join(tmp, 'x-cancel'), '--queue', url]);
    const xm = await xq.waitFor(/\((run \S+)\); waiting for workers/);
    xq.child.kill('SIGINT');
    assert.is(await xq.exit, 130, xq.err);
    assert.match(errLines(xq).at(-1)!, /^camgpu: cancelled: run \S+ on .*: 2 of its 2 pending batches taken off the queue; 0 of 2 had come back$/);
    assert.equal(await left(xm[1].slice(4)), []);
    assert.is(await r.llen(`bull:${name}:wait`), 0);
  } finally { r.disconnect(); }
});

test.run();
