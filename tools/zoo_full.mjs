// The zoo comparison of tests/zoo.test.ts (tests/zoo-run.ts: PASS / REJECTED / FAIL per fixture, logits to 1e-4,
// Grad-CAM raw map to 1e-3, at batch 1 and 2) on a directory of fixtures, e.g. the full-size models that
// `python3 tools/make_zoo.py --full DIR` writes (not committed). Exit code 1 when any fixture FAILs.
// Usage: node tools/zoo_full.mjs DIR [name ...]
import { build } from 'esbuild';
import { existsSync, readdirSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [dir, ...only] = process.argv.slice(2);
if (!dir || !existsSync(dir)) {
  console.error('usage: node tools/zoo_full.mjs DIR [name ...]   (DIR from: /usr/bin/python3 tools/make_zoo.py --full DIR)');
  process.exit(2);
}
const entry = [
  "export { runFixture, missingGoldens, readMeta, row, lacking } from './tests/zoo-run.ts';",
  "export { nodeGpu, closeGpu } from './node/gpu.ts';",
  "export { SUPPORTED_OPS, FOLDED_OPS } from './src/import.ts';",
].join('\n');
await build({
  stdin: { contents: entry, resolveDir: '.', loader: 'ts' }, bundle: true, platform: 'node', format: 'esm', packages: 'external',
  loader: { '.wgsl': 'text' }, outfile: 'dist/zoo-full.js', logLevel: 'warning',
});
const z = await import(pathToFileURL('dist/zoo-full.js').href);

const names = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name)
  .filter((n) => !only.length || only.includes(n)).sort();
const gpu = await z.nodeGpu();
const counts = { PASS: 0, REJECTED: 0, FAIL: 0 };
for (const name of names) {
  const d = `${dir}/${name}`, missing = z.missingGoldens(d);
  const t0 = performance.now();
  const o = missing.length ? { status: 'FAIL', why: `golden files missing: ${missing.join(', ')}` } : await z.runFixture(gpu, d, name);
  counts[o.status]++;
  const lacks = missing.length ? [] : z.lacking(z.readMeta(d), z.SUPPORTED_OPS, z.FOLDED_OPS);
  console.log(`${z.row(name, o, lacks)}  (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
console.log(`\n${dir}: ${counts.PASS} PASS, ${counts.REJECTED} REJECTED, ${counts.FAIL} FAIL`);
await z.closeGpu();
process.exit(counts.FAIL ? 1 : 0);
