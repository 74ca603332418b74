// npm run fuzz -- --cases N [--seed S] [--images M] [--cli K] [--hang-ms T] [--max-mb B]: bundles tests/fuzz-run.ts
// (with the mutators in tests/fuzz-lib.ts) and runs the campaign; prints the outcome table. Needs dist/cli.js (node build.mjs).
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
await build({ bundle: true, format: 'esm', platform: 'node', packages: 'external', loader: { '.wgsl': 'text' }, sourcemap: true,
  logLevel: 'warning', target: 'es2022', entryPoints: ['tests/fuzz-run.ts'], outfile: 'dist/fuzz.js' });
const r = spawnSync(process.execPath, ['--enable-source-maps', 'dist/fuzz.js', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
