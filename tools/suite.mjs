// Builds and runs only the named test suites (plus the teardown suite), for quick iteration:
//   node tools/suite.mjs cam explain      -> tests/cam.test.ts, tests/explain.test.ts, tests/zz-close.test.ts
// `npm test` still runs everything; this is the short loop while one module changes.
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const names = process.argv.slice(2);
if (!names.length) { console.error('usage: node tools/suite.mjs NAME... (tests/NAME.test.ts)'); process.exit(2); }
const files = [...names.map((n) => `${n.replace(/^tests\//, '').replace(/\.test\.ts$/, '')}.test.ts`), 'zz-close.test.ts'];
for (const f of files) if (!existsSync(`tests/${f}`)) { console.error(`suite: tests/${f} does not exist`); process.exit(2); }
await build({ bundle: true, format: 'esm', platform: 'node', packages: 'external', loader: { '.wgsl': 'text' }, sourcemap: true,
  logLevel: 'warning', target: 'es2022', outfile: 'dist/tests/suite.js',
  stdin: { contents: [...new Set(files)].map((f) => `import './${f}';`).join('\n'), resolveDir: 'tests', loader: 'ts' } });
const r = spawnSync(process.execPath, ['--enable-source-maps', 'dist/tests/suite.js'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
