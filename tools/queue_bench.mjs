// Throughput of `camgpu eval` through the job queue: a single-process run, then 1 and 3 workers (started and
// waiting before the run, so their start-up is not counted), then 3 workers with one SIGKILLed at its first batch.
// Starts its own redis-server on 127.0.0.1 (a free port) and stops it. Build first (node build.mjs).
//   node tools/queue_bench.mjs [--limit 96] [--batch 8] [--steps 16] [--methods gradcam,gradcam++,liftcam]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({ options: { limit: { type: 'string', default: '96' }, batch: { type: 'string', default: '8' }, steps: { type: 'string', default: '16' },
  methods: { type: 'string', default: 'gradcam,gradcam++,liftcam' }, model: { type: 'string', default: 'weights/resnet.onnx' } } });
const tmp = mkdtempSync(join(tmpdir(), 'camgpu-qbench-'));
const EVAL = ['--model', a.model, '--data', 'data/scenes', '--limit', a.limit, '--batch', a.batch, '--steps', a.steps, '--auc-limit', a.limit, '--methods', a.methods];
const port = await new Promise((ok) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => ok(p)); }); });
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 500));
const procs = new Set();
function start(args) {
  const c = spawn(process.execPath, ['dist/cli.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  c.text = ''; c.stdout.on('data', (d) => { c.text += d; }); c.stderr.on('data', (d) => { c.text += d; });
  c.done = new Promise((r) => c.on('close', (code) => { procs.delete(c); r(code); })); procs.add(c);
  return c;
}
const until = (c, re) => new Promise((r) => { const t = setInterval(() => { const m = re.exec(c.text); if (m) { clearInterval(t); r(m); } }, 20); });
const metrics = (f) => { const j = JSON.parse(readFileSync(f, 'utf8')); delete j.seconds; for (const m of Object.values(j.methods)) delete m.msPerImage; return JSON.stringify(j); };

try {
  const single = join(tmp, 'single.json');
  const r = spawnSync(process.execPath, ['dist/cli.js', 'eval', ...EVAL, '--json', single], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  const s1 = JSON.parse(readFileSync(single, 'utf8')).seconds, n = Number(a.limit);
  console.log(`single process: ${n} scenes in ${s1.toFixed(1)} s = ${(n / s1).toFixed(2)} scenes/s (load average ${loadavg()[0].toFixed(1)})`);
  for (const [k, kill] of [[1, false], [3, false], [3, true]]) {
    const url = `redis://127.0.0.1:${port}/bench${k}${kill ? 'k' : ''}`, json = join(tmp, `q${k}${kill}.json`);
    const ws = Array.from({ length: k }, () => start(['worker', '--queue', url, '--model', a.model, '--lock-ms', '5000', '--stalled-ms', '1000']));
    await Promise.all(ws.map((w) => until(w, /waiting for batches/)));
    const c = start(['eval', ...EVAL, '--queue', url, '--json', json]);
    if (kill) { const m = await until(ws[0], /batch (\d+) of run \S+ \(scenes (\S+), attempt 1\): start/); ws[0].kill('SIGKILL'); console.log(`  killed worker ${ws[0].pid} (SIGKILL) holding batch ${m[1]} (scenes ${m[2]})`); }
    if (await c.done !== 0) throw new Error(c.text);
    const line = /\d+ batches through .*scenes\/s/.exec(c.text)[0], again = c.text.split('\n').filter((l) => /was run again/.test(l));
    console.log(`${k} worker${k > 1 ? 's' : ''}${kill ? ', one killed' : ''}: ${line}; metrics equal to the single run: ${metrics(json) === metrics(single)}`);
    for (const l of again) console.log(`  ${l}`);
    for (const w of ws) w.kill('SIGTERM');
    await Promise.all(ws.map((w) => w.done));
  }
} finally {
  for (const c of procs) c.kill('SIGKILL');
  redis.kill('SIGTERM');
  await new Promise((r) => redis.on('close', r));
  rmSync(tmp, { recursive: true, force: true });
}
