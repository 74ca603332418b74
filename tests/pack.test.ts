// The published package as a new user gets it: `npm pack` of this checkout (after the build), installed into a fresh
// project in a temporary folder, then the `camgpu` command, `import ... from 'camgpu/node'`, the browser bundle from
// 'camgpu' (bundled here by esbuild for the browser) and its TypeScript types. Oracles: the repository's own CLI and
// Explainer on the same image (the packed copy must give the same classes and raw maps), the tarball's file list,
// and tsc rejecting a misuse (so the types are real, not `any`).
//
// Offline: the fresh project gets a package-lock.json made from this repository's lock (the runtime closure of
// camgpu: the entries npm marks non-dev) plus the tarball, and `npm ci --offline` takes every dependency from the npm
// cache, which the root `npm ci` (tools/setup.sh) filled. Plain `npm install --offline ./camgpu-*.tgz` would need the
// registry's metadata documents, which `npm ci` never caches.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { Model } from '../src/model.js';
import { Explainer } from '../src/explain.js';
import { nodeGpu } from '../node/gpu.js';
import { decodeImage, preprocess, readSidecar } from '../node/image.js';
import { parseNpy } from '../node/npy.js';

const test = suite('pack');
const ROOT = process.cwd();
const tmp = mkdtempSync(join(tmpdir(), 'camgpu-pack-'));
const app = join(tmp, 'app');
const SCENE = 'data/scenes/multi_00047.png';
const nativeNoise = (l: string) => l.trim() === '' || l.startsWith('Warning: ') || /^npm warn/.test(l);
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const tgzName = `camgpu-${pkg.version}.tgz`;

function run(cmd: string, args: string[], cwd: string, timeout = 300_000) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, npm_config_update_notifier: 'false' } });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout, err: r.stderr.split('\n').filter((l) => !nativeNoise(l)).join('\n') };
}
function ok(cmd: string, args: string[], cwd: string) {
  const r = run(cmd, args, cwd);
  assert.is(r.code, 0, `${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.code}:\n${r.err.slice(-2000)}`);
  return r.out;
}

test('npm pack ships the built library, CLI, types, LICENSE and the bundled resnet; nothing else', () => {
  // --ignore-scripts: the suite runs after `node build.mjs` (prepack would build again)
  const out = ok('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], ROOT);
  const files: string[] = JSON.parse(out)[0].files.map((f: { path: string }) => f.path).sort();
  for (const f of ['LICENSE', 'README.md', 'package.json', 'bin/camgpu.mjs', 'dist/cli.js', 'dist/node.js', 'dist/camgpu.js',
    'dist/camgpu.d.ts', 'dist/node.d.ts', 'dist/types/src/index.d.ts', 'dist/types/node/index.d.ts', 'weights/resnet.onnx', 'weights/resnet.json'])
    assert.ok(files.includes(f), `${f} is in the tarball`);
  const stray = files.filter((f) => /^(src|node|tests|bench|tools|shaders|web|data)\/|^dist\/(tests|web|bench)|^weights\/(vgg|mobilenet)/.test(f));
  assert.equal(stray, [], 'no sources, tests, benchmarks, demo or other models in the tarball');
  assert.match(readFileSync('LICENSE', 'utf8'), /^MIT License\n\nCopyright \(c\) \d{4} camgpu authors\n/);
});

test('the tarball installs offline into a fresh project (runtime dependencies only)', () => {
  const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
  const root = lock.packages[''];
  const tgz = join(tmp, tgzName);
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
  const spec = `file:../${tgzName}`;
  const packages: Record<string, unknown> = {
    '': { name: 'fresh-app', dependencies: { camgpu: spec } },
    'node_modules/camgpu': { version: root.version, resolved: spec, integrity, license: root.license, dependencies: root.dependencies, bin: root.bin, engines: root.engines },
  };
  for (const [k, v] of Object.entries(lock.packages as Record<string, { dev?: boolean }>)) if (k && !v.dev) packages[k] = v;
  mkdirSync(app, { recursive: true });
  const writeLock = () => writeFileSync(join(app, 'package-lock.json'), JSON.stringify({ name: 'fresh-app', lockfileVersion: 3, requires: true, packages }, null, 2));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'fresh-app', private: true, type: 'module', dependencies: { camgpu: spec } }, null, 2));
  writeLock();
  const first = run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], app);
  if (first.code !== 0) {
    // An npm cache without these tarballs (node_modules restored by CI, cache not): the same packages, packed from
    // this checkout's node_modules, stand in for the registry's tarballs. Anything else is a failure.
    assert.match(first.err, /ENOTCACHED/, `npm ci --offline failed:\n${first.err.slice(-2000)}`);
    console.log('\n  pack: the npm cache lacks camgpu\'s dependencies; installing them from tarballs of ./node_modules instead');
    mkdirSync(join(tmp, 'deps'), { recursive: true });
    for (const k of Object.keys(packages).filter((k) => k.startsWith('node_modules/') && k !== 'node_modules/camgpu')) {
      const name = JSON.parse(ok('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', join(tmp, 'deps'), `./${k}`], ROOT))[0].filename as string;
      const entry: Record<string, unknown> = { ...(packages[k] as Record<string, unknown>), resolved: `file:../deps/${name}` };
      delete entry.integrity;
      packages[k] = entry;
    }
    writeLock();
    ok('npm', ['ci', '--offline', '--no-audit', '--no-fund'], app);
  }
  const installed = readdirSync(join(app, 'node_modules')).filter((f) => !f.startsWith('.')).sort();
  assert.equal(installed, ['@webgpu', 'camgpu', 'debug', 'jpeg-js', 'ms', 'pngjs', 'webgpu'], 'the runtime closure, no dev tools');
  assert.ok(readFileSync(join(app, 'node_modules/camgpu/weights/resnet.onnx')).equals(readFileSync('weights/resnet.onnx')), 'bundled model bytes');
});

test('npx camgpu explain in the fresh project equals the repository CLI (classes, probabilities, raw maps)', () => {
  const scene = resolve(SCENE);
  const args = (model: string, out: string) => ['explain', scene, '--model', model, '--methods', 'gradcam,liftcam', '--out', out, '--raw', `${out}/raw`];
  ok('npx', ['--offline', '--no-install', 'camgpu', ...args('node_modules/camgpu/weights/resnet.onnx', 'out')], app);
  ok(process.execPath, ['dist/cli.js', ...args('weights/resnet.onnx', join(tmp, 'repo-out'))], ROOT);
  const a = JSON.parse(readFileSync(join(app, 'out/summary.json'), 'utf8')), b = JSON.parse(readFileSync(join(tmp, 'repo-out/summary.json'), 'utf8'));
  assert.equal(a.images[0].top, b.images[0].top, 'top-k classes, labels, probabilities and logits');
  assert.is(a.images[0].top[0].label, 'Trouser', 'multi_00047 is a Trouser scene (data/scenes/boxes.json)');
  assert.is(a.layer.name, b.layer.name);
  for (const m of ['gradcam', 'liftcam']) {
    const x = parseNpy(readFileSync(join(app, `out/raw/${m}.npy`))), y = parseNpy(readFileSync(join(tmp, `repo-out/raw/${m}.npy`)));
    assert.equal(x.shape, y.shape);
    assert.ok(x.data.every((v, i) => v === y.data[i]), `${m} raw map identical`);
  }
});

test("import { loadModel, explain } from 'camgpu/node' runs; its Grad-CAM equals this checkout's Explainer", async () => {
  const script = `import { loadModel, explain, closeGpu, METHOD_NAMES } from 'camgpu/node';
import { readFileSync } from 'node:fs';
const x = new Float32Array(readFileSync('x.bin').buffer.slice(0));
const m = await loadModel('node_modules/camgpu/weights/resnet.onnx');
const r = await explain(m, x, { methods: ['gradcam'] });
console.log(JSON.stringify({ top: r.images[0].topk[0].class, raw: Array.from(r.images[0].methods.gradcam.raw), methods: METHOD_NAMES.length }));
await closeGpu();
`;
  const bytes = readFileSync('weights/resnet.onnx');
  const model = await Model.load(await nodeGpu(), bytes, 'resnet.onnx');
  const [, H, W] = model.inputShape; // (C,H,W)
  const side = readSidecar('weights/resnet.onnx', model.inputShape, 10);
  const { x } = preprocess(decodeImage(readFileSync(SCENE), SCENE), H, W, side);
  writeFileSync(join(app, 'x.bin'), x);
  writeFileSync(join(app, 'use.mjs'), script);
  const got = JSON.parse(ok(process.execPath, ['use.mjs'], app).trim().split('\n').pop()!);
  const want = await new Explainer(model).explain(x, { methods: ['gradcam'] }); // the API's default layer, like the script
  assert.is(got.top, want.images[0].topk[0].class);
  const raw = want.images[0].methods.gradcam!.raw;
  assert.is(got.raw.length, raw.length);
  assert.ok(got.raw.every((v: number, i: number) => Math.abs(v - raw[i]) <= 1e-6 * Math.max(1, Math.abs(raw[i]))), 'raw Grad-CAM map');
  assert.ok(got.methods >= 16);
  model.destroy();
});

test("the browser bundle: 'camgpu' bundled for the browser resolves to dist/camgpu.js, no Node built-in", async () => {
  writeFileSync(join(app, 'page.js'), "import { explain, loadModel, mapToImageData } from 'camgpu';\nwindow.camgpu = { explain, loadModel, mapToImageData };\n");
  const r = await build({ absWorkingDir: app, entryPoints: ['page.js'], bundle: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent', loader: { '.wgsl': 'text' } });
  const inputs = Object.keys(r.metafile.inputs);
  assert.ok(inputs.includes('node_modules/camgpu/dist/camgpu.js'), inputs.join(', '));
  assert.equal(inputs.filter((f) => /node_modules\/(webgpu|pngjs|jpeg-js)\//.test(f) || f.startsWith('node:')), [], 'no Node dependency in the page');
});

test('TypeScript types resolve for camgpu and camgpu/node (and reject a misuse)', () => {
  const tsc = [join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext',
    '--target', 'es2022', '--lib', 'es2022,dom', '--types', '@webgpu/types'];
  writeFileSync(join(app, 'good.ts'), `import { loadModel, explain, closeGpu, type Explanation } from 'camgpu/node';
import { requestDevice, Model, METHODS, type Method } from 'camgpu';
const m = await loadModel('node_modules/camgpu/weights/resnet.onnx');
const r: Explanation = await explain(m, new Float32Array(3 * 64 * 64), { methods: ['gradcam', 'liftcam'] });
const map: Float32Array | undefined = r.images[0].methods.gradcam?.map;
const name: Method = 'gradcam++';
console.log(map?.length, METHODS[name].paper, typeof requestDevice, Model.name);
await closeGpu();
`);
  writeFileSync(join(app, 'bad.ts'), "import { loadModel } from 'camgpu/node';\nconst n: number = (await loadModel('x.onnx')).noSuchMember;\nconsole.log(n);\n");
  const good = run(process.execPath, [...tsc, 'good.ts'], app);
  assert.is(good.code, 0, `tsc good.ts:\n${good.out}${good.err}`);
  const bad = run(process.execPath, [...tsc, 'bad.ts'], app);
  assert.is.not(bad.code, 0, 'tsc must reject bad.ts');
  assert.match(bad.out, /noSuchMember/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
