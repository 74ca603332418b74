// Builds: dist/camgpu.js (browser ESM library) and dist/camgpu.d.ts, dist/node.d.ts (types, emitted into dist/types/), dist/web/
// (the demo page: index.html, style.css, demo.js), dist/node.js (Node entry), dist/cli.js, dist/tests/run.js,
// dist/bench.js, bench/peers/dist/peers.js (bench/peers/peers.ts:
// next to bench/peers/node_modules, where its own package's dependencies are installed). .wgsl files are bundled as text. The browser bundles must not reach
// a Node built-in: src/ and web/ are scanned for such imports and esbuild's metafile is checked; either finding fails
// the build, naming the file.
import { build } from 'esbuild';
import { readdirSync, existsSync, readFileSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const common = { bundle: true, format: 'esm', loader: { '.wgsl': 'text' }, sourcemap: true, logLevel: 'warning', target: 'es2022' };
const nodeOpts = { ...common, platform: 'node', packages: 'external' };
const tests = readdirSync('tests').filter((f) => f.endsWith('.test.ts')).sort();

// --- browser bundles: no Node built-ins ('fs', 'node:fs', 'path/posix', ...)
const NODE_BUILTIN = new RegExp(`^(node:.*|(${builtinModules.filter((m) => !m.startsWith('_')).join('|')})(/.*)?)$`);
const nodeHits = [];
const noNode = { name: 'no-node-builtins', setup(b) {
  // record instead of failing inside esbuild, so the message names every importer at once
  b.onResolve({ filter: NODE_BUILTIN }, (a) => { nodeHits.push(`${a.importer} imports '${a.path}'`); return { path: a.path, external: true }; });
} };
function checkMeta(out, meta) {
  for (const [file, input] of Object.entries(meta.inputs)) {
    if (/^node\//.test(file)) nodeHits.push(`${out} bundles ${file} (the Node layer)`);
    for (const i of input.imports) if (i.external || NODE_BUILTIN.test(i.path)) nodeHits.push(`${out}: ${file} imports '${i.path}'${i.external ? ' (external)' : ''}`);
  }
}
function scanSources(dir) {
  for (const f of readdirSync(dir, { recursive: true }).map(String).filter((f) => /\.[cm]?[tj]s$/.test(f))) {
    const text = readFileSync(`${dir}/${f}`, 'utf8');
    for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm))
      if (NODE_BUILTIN.test(m[1])) nodeHits.push(`${dir}/${f} imports '${m[1]}'`);
  }
}
const browser = async (entry, outfile) => {
  const r = await build({ ...common, platform: 'browser', entryPoints: [entry], outfile, metafile: true, plugins: [noNode] });
  checkMeta(outfile, r.metafile);
};
// Declarations of the library and of its Node entry (dist/types/{src,node}/*.d.ts) and one entry file for each:
// dist/camgpu.d.ts (package "camgpu" in a browser) and dist/node.d.ts ("camgpu/node").
const declarations = async () => {
  await promisify(execFile)(process.execPath, ['node_modules/typescript/bin/tsc', 'src/index.ts', 'node/index.ts', 'src/wgsl.d.ts', '--declaration', '--emitDeclarationOnly',
    '--outDir', 'dist/types', '--rootDir', '.', '--target', 'es2022', '--module', 'esnext', '--moduleResolution', 'bundler',
    '--lib', 'es2022,dom', '--types', '@webgpu/types,node', '--strict', '--skipLibCheck'])
    .catch((e) => { throw new Error(`declarations (tsc) failed:\n${e.stdout}${e.stderr}`.trim()); });
  writeFileSync('dist/camgpu.d.ts', '// Types of dist/camgpu.js (emitted by build.mjs into dist/types/).\n/// <reference types="@webgpu/types" />\nexport * from \'./types/src/index.js\';\n');
  writeFileSync('dist/node.d.ts', '// Types of dist/node.js, "camgpu/node" (emitted by build.mjs into dist/types/).\n/// <reference types="@webgpu/types" />\nexport * from \'./types/node/index.js\';\n');
};

function failOnNode() {
  if (!nodeHits.length) return;
  console.error(`build: the browser bundles must not use Node built-ins (src/ is the browser-safe core; Node code goes in node/):\n  ${[...new Set(nodeHits)].join('\n  ')}`);
  process.exit(1);
}

scanSources('src');
if (existsSync('web')) scanSources('web');
failOnNode();
const results = await Promise.allSettled([
  browser('src/index.ts', 'dist/camgpu.js'),
  existsSync('web/demo.ts') ? browser('web/demo.ts', 'dist/web/demo.js') : null,
  declarations(),
  build({ ...nodeOpts, entryPoints: ['node/index.ts'], outfile: 'dist/node.js' }),
  build({ ...nodeOpts, entryPoints: ['node/cli.ts'], outfile: 'dist/cli.js' }),
  build({ ...nodeOpts, stdin: { contents: tests.map((f) => `import './${f}';`).join('\n'), resolveDir: 'tests', loader: 'ts' }, outfile: 'dist/tests/run.js' }),
  existsSync('bench/bench.ts') ? build({ ...nodeOpts, entryPoints: ['bench/bench.ts'], outfile: 'dist/bench.js' }) : null,
  existsSync('bench/peers/peers.ts') ? build({ ...nodeOpts, entryPoints: ['bench/peers/peers.ts'], outfile: 'bench/peers/dist/peers.js' }) : null,
]);
failOnNode(); // first: it explains errors the other steps may also hit
const failed = results.filter((r) => r.status === 'rejected');
if (failed.length) { for (const r of failed) console.error(`build: ${r.reason?.message ?? r.reason}`); process.exit(1); }
if (existsSync('web/demo.ts')) {
  mkdirSync('dist/web', { recursive: true });
  for (const f of ['index.html', 'style.css']) copyFileSync(`web/${f}`, `dist/web/${f}`);
}
