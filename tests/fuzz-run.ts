// The fuzz campaign (npm run fuzz -- --cases N [--seed S] [--images M] [--cli K]): N ONNX mutants, M images/tensors
// (default 0.3 N) and K command lines (default 0.075 N). ONNX and image cases run in a worker process, one JSON line
// per case; the parent watches it: a case with no answer after --hang-ms (30 s) is a hang, a worker over --max-mb
// (2048 MB RSS) is over-memory; either kills the worker and the campaign goes on with the next case. Command lines run
// one process each under the same limits. Prints the outcome table and the first cases of each bad outcome.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { SAMPLE, VERDICTS, recording, OUTCOMES, OUTCOME_NAMES, Outcome, baseImages, caseRng, convModel, imageCase, loadOrt, mutateArgs, mutateImage, mutateOnnx, onnxCase, refLogits } from './fuzz-lib.js';
import { cliCase, cliFiles } from './fuzz-cli.js';

const { values: v } = parseArgs({ options: {
  cases: { type: 'string' }, seed: { type: 'string' }, images: { type: 'string' }, cli: { type: 'string' }, 'hang-ms': { type: 'string' }, 'max-mb': { type: 'string' },
  worker: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, 'write-verdicts': { type: 'boolean' },
} });
const seed = Number(v.seed ?? 1);

async function worker(kind: string, from: number, to: number) {
  const say = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
  if (kind === 'onnx') {
    const base = convModel(), baseLogits = refLogits(base), ort = await loadOrt();
    for (let i = from; i < to; i++) {
      const m = mutateOnnx(base, caseRng(seed, i)); say({ i, start: true });
      const t0 = performance.now(), r = await onnxCase(base, baseLogits, m, ort);
      say({ i, ...r, input: m.what, ms: performance.now() - t0 });
    }
  } else {
    const bases = baseImages(new Uint8Array(readFileSync('tests/fixtures/images/shapes32.jpg')));
    for (let i = from; i < to; i++) {
      const b = bases[i % bases.length], m = mutateImage(b, caseRng(seed + 1, i)); say({ i, start: true });
      const t0 = performance.now(), r = imageCase(b.kind, m.bytes);
      say({ i, ...r, input: `${b.kind}: ${m.what}`, ms: performance.now() - t0 });
    }
  }
}

interface Row { i: number; outcome: Outcome; detail: string; input?: string; ms?: number }

/** Runs cases [from, to) of a kind in workers, restarting after a hang or over-memory kill. */
async function campaign(kind: string, n: number, hangMs: number, maxBytes: number): Promise<Row[]> {
  const rows: Row[] = [];
  let next = 0;
  while (next < n) {
    const child = spawn(process.execPath, ['--max-old-space-size=4096', process.argv[1], '--worker', kind, '--from', String(next), '--to', String(n), '--seed', String(seed)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let current = next, last = performance.now(), killed: Outcome | null = null;
    const poll = setInterval(() => {
      let r = 0;
      try { r = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024; } catch { /* gone */ }
      if (r > maxBytes) { killed = 'memory'; child.kill('SIGKILL'); } else if (performance.now() - last > hangMs) { killed = 'hang'; child.kill('SIGKILL'); }
    }, 100);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (l) => {
      const o = JSON.parse(l);
      last = performance.now();
      if (o.start) { current = o.i; return; }
      rows.push(o); next = o.i + 1;
      if (rows.length % 250 === 0) process.stderr.write(`  ${kind}: ${rows.length}/${n}\n`);
    });
    const code: number | null = await new Promise((done) => child.on('close', (c) => done(c)));
    clearInterval(poll);
    if (next >= n) break;
    rows.push({ i: current, outcome: killed ?? 'internal', detail: killed ? `worker killed (${killed})` : `worker exited with ${code} during the case` });
    next = current + 1;
  }
  return rows;
}

function table(groups: [string, Row[]][]) {
  const head = ['inputs', 'cases', ...OUTCOMES.map((o) => OUTCOME_NAMES[o])];
  const body = groups.map(([k, rows]) => [k, String(rows.length), ...OUTCOMES.map((o) => String(rows.filter((r) => r.outcome === o).length))]);
  const all = groups.flatMap(([, r]) => r);
  body.push(['all', String(all.length), ...OUTCOMES.map((o) => String(all.filter((r) => r.outcome === o).length))]);
  const w = head.map((_, c) => Math.max(...[head, ...body].map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((s, c) => s.padEnd(w[c])).join(' | ')} |`;
  return [line(head), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

/** Records ONNX Runtime's verdicts on the npm test sample (the base model and every accepted mutant whose logits changed). */
async function writeVerdicts() {
  const ort = await loadOrt();
  if (!ort) { console.error('fuzz: onnxruntime-node is not installed; run `node bench/peers/install.mjs` first'); process.exit(1); }
  const verdicts: Record<string, number[] | null> = {}, rec = recording(ort, verdicts), base = convModel(), baseLogits = refLogits(base);
  await rec(base);
  const tally: Record<string, number> = {};
  for (let i = 0; i < SAMPLE.onnx; i++) { const r = await onnxCase(base, baseLogits, mutateOnnx(base, caseRng(SAMPLE.seed, i)), rec); tally[r.outcome] = (tally[r.outcome] ?? 0) + 1; }
  mkdirSync(dirname(VERDICTS), { recursive: true });
  writeFileSync(VERDICTS, JSON.stringify({ about: 'ONNX Runtime (onnxruntime-node, CPU) logits for the fuzz sample mutants that needed a verdict; written by node tools/fuzz.mjs --write-verdicts', seed: SAMPLE.seed, cases: SAMPLE.onnx, verdicts }, null, 0) + '\n');
  console.log(`${VERDICTS}: ${Object.keys(verdicts).length} verdicts; sample outcomes ${JSON.stringify(tally)}`);
}

async function main() {
  if (v.worker) return worker(v.worker, Number(v.from), Number(v.to));
  if (v['write-verdicts']) return writeVerdicts();
  const n = Number(v.cases ?? 2000), images = Number(v.images ?? Math.round(n * 0.3)), cli = Number(v.cli ?? Math.round(n * 0.075));
  const hangMs = Number(v['hang-ms'] ?? 30_000), maxBytes = Number(v['max-mb'] ?? 2048) * 2 ** 20, t0 = performance.now();
  if (!(await loadOrt())) console.log('fuzz: onnxruntime-node is not installed (node bench/peers/install.mjs): accepted mutants with changed logits cannot be judged and count as changed');
  console.log(`camgpu fuzz campaign: seed ${seed}, ${n} ONNX mutants, ${images} images/tensors, ${cli} command lines; hang > ${hangMs / 1000} s, memory > ${maxBytes / 2 ** 20} MB`);
  const onnx = await campaign('onnx', n, hangMs, maxBytes);
  const img = await campaign('images', images, hangMs, maxBytes);
  const files = cliFiles(), cl: Row[] = [];
  let slowest = 0, peak = 0;
  for (let i = 0; i < cli; i++) {
    const args = mutateArgs(caseRng(seed + 2, i), files), r = await cliCase(args, hangMs, maxBytes);
    slowest = Math.max(slowest, r.ms); peak = Math.max(peak, r.rss);
    cl.push({ i, outcome: r.outcome, detail: r.detail, input: args.join(' ').slice(0, 160), ms: r.ms });
  }
  const all = [...onnx, ...img];
  console.log(`\n${table([['ONNX', onnx], ['images/tensors', img], ['command lines', cl]])}\n`);
  const okKinds = new Map<string, number>();
  for (const r of onnx.filter((x) => x.outcome === 'ok')) okKinds.set(r.detail, (okKinds.get(r.detail) ?? 0) + 1);
  console.log(`accepted ONNX mutants: ${[...okKinds].map(([k, c]) => `${c} ${k}`).join('; ')}`);
  console.log(`slowest in-process case ${Math.max(0, ...all.map((r) => r.ms ?? 0)).toFixed(0)} ms; slowest command line ${(slowest / 1000).toFixed(1)} s, peak command-line RSS ${(peak / 2 ** 20).toFixed(0)} MB; ${((performance.now() - t0) / 1000).toFixed(0)} s in all`);
  for (const o of ['internal', 'changed', 'hang', 'memory'] as Outcome[]) {
    const bad = [...onnx.map((r) => ['onnx', r] as const), ...img.map((r) => ['image', r] as const), ...cl.map((r) => ['cli', r] as const)].filter(([, r]) => r.outcome === o);
    for (const [k, r] of bad.slice(0, 12)) console.log(`  ${OUTCOME_NAMES[o]}: ${k} case ${r.i} (${r.input ?? ''}): ${r.detail}`);
  }
  const clean = [...onnx, ...img, ...cl].every((r) => r.outcome === 'ok' || r.outcome === 'clean');
  process.exitCode = clean ? 0 : 1;
}
main();
