// npm run soak -- [--explanations N] [--cycles M] [--every K] [--cycle-every C]: bundles tests/soak-run.ts (loop in tests/soak-lib.ts,
// shared with tests/memory.test.ts) and runs it: N explanations (default 1000) and M load/destroy cycles (default 100),
// GPU live bytes and RSS printed every K explanations (default 100) and every C cycles (default 10).
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
await build({ bundle: true, format: 'esm', platform: 'node', packages: 'external', loader: { '.wgsl': 'text' }, sourcemap: true,
  logLevel: 'warning', target: 'es2022', entryPoints: ['tests/soak-run.ts'], outfile: 'dist/soak.js' });
const r = spawnSync(process.execPath, ['--enable-source-maps', 'dist/soak.js', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
