// Builds: dist/camgpu.js (browser ESM library), dist/node.js (Node entry), dist/cli.js, dist/tests/run.js, dist/bench.js.
// .wgsl files are bundled as text.
import { build } from 'esbuild';
import { readdirSync, existsSync } from 'node:fs';

const common = { bundle: true, format: 'esm', loader: { '.wgsl': 'text' }, sourcemap: true, logLevel: 'warning', target: 'es2022' };
const nodeOpts = { ...common, platform: 'node', packages: 'external' };
const tests = readdirSync('tests').filter((f) => f.endsWith('.test.ts')).sort();

await Promise.all([
  build({ ...common, platform: 'browser', entryPoints: ['src/index.ts'], outfile: 'dist/camgpu.js', metafile: true }),
  build({ ...nodeOpts, entryPoints: ['node/index.ts'], outfile: 'dist/node.js' }),
  build({ ...nodeOpts, entryPoints: ['node/cli.ts'], outfile: 'dist/cli.js' }),
  build({ ...nodeOpts, stdin: { contents: tests.map((f) => `import './${f}';`).join('\n'), resolveDir: 'tests', loader: 'ts' }, outfile: 'dist/tests/run.js' }),
  existsSync('bench/bench.ts') ? build({ ...nodeOpts, entryPoints: ['bench/bench.ts'], outfile: 'dist/bench.js' }) : null,
]);
