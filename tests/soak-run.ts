// The full memory soak (npm run soak): tools/soak.mjs bundles this. Defaults: 1000 explanations on one model, then
// 100 load / explain / destroy cycles; GPU live bytes and RSS printed every 100. Exits 1 when the GPU bytes are not
// flat after warm-up or a cycle leaves bytes behind; cycles are sampled every 10 (--cycle-every) (RSS is printed, and limited only in tests/memory.test.ts).
import { parseArgs } from 'node:util';
import { closeGpu, nodeGpu } from '../node/gpu.js';
import { cycleSoak, explainSoak, type Sample } from './soak-lib.js';

const { values } = parseArgs({ options: { explanations: { type: 'string', default: '1000' }, cycles: { type: 'string', default: '100' }, every: { type: 'string', default: '100' },
  'cycle-every': { type: 'string', default: '10' } } });
const N = Number(values.explanations), M = Number(values.cycles), every = Number(values.every), cycleEvery = Number(values['cycle-every']);
const mb = (b: number) => (b / 2 ** 20).toFixed(2);
/** Least-squares slope of RSS (MB) per `per` calls over the samples: a leak shows as a trend, noise does not. */
function slope(s: Sample[], per: number): number {
  const n = s.length, mx = s.reduce((a, p) => a + p.done, 0) / n, my = s.reduce((a, p) => a + p.rss, 0) / n;
  const sxy = s.reduce((a, p) => a + (p.done - mx) * (p.rss - my), 0), sxx = s.reduce((a, p) => a + (p.done - mx) ** 2, 0);
  return sxx ? (sxy / sxx) * per : 0;
}
const range = (s: Sample[]) => `${Math.min(...s.map((p) => p.rss)).toFixed(1)}..${Math.max(...s.map((p) => p.rss)).toFixed(1)} MB`;
const row = (what: string) => (s: Sample) => console.log(`${what} ${String(s.done).padStart(5)}  GPU live ${String(s.gpuLive).padStart(10)} B  model ${String(s.modelBytes).padStart(10)} B  RSS ${s.rss.toFixed(1)} MB`);

const gpu = await nodeGpu();
console.log(`soak: ${N} explanations, ${M} load/destroy cycles on ${gpu.adapterInfo}`);
const t0 = Date.now();
const e = await explainSoak(gpu, N, every, 6, row('explanations'));
const first = e.samples[0], last = e.samples.at(-1)!;
console.log(`explanations: GPU live ${first.gpuLive} -> ${last.gpuLive} B (${e.notFlat.length} calls off), RSS ${first.rss.toFixed(1)} -> ${last.rss.toFixed(1)} MB, `
  + `range ${range(e.samples)}, slope ${slope(e.samples, 100).toFixed(2)} MB per 100, ${e.plans} plans, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
const t1 = Date.now();
const c = await cycleSoak(gpu, M, cycleEvery, row('cycles'));
console.log(`cycles: baseline ${c.before} B, after the last ${gpu.liveBytes} B (${c.off.length} cycles off), RSS ${c.samples[0].rss.toFixed(1)} -> ${c.samples.at(-1)!.rss.toFixed(1)} MB, `
  + `range ${range(c.samples)}, slope ${slope(c.samples, 10).toFixed(2)} MB per 10 cycles, ${((Date.now() - t1) / 1000).toFixed(0)} s`);
console.log(`peak GPU bytes of the model ${mb(first.modelBytes)} MiB`);
for (const s of [...e.notFlat, ...c.off].slice(0, 10)) console.log(`  ${s}`);
await closeGpu();
process.exit(e.notFlat.length || c.off.length ? 1 : 0);
