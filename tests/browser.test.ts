// The browser side. In Node: colormap tables against their published values, image-to-tensor arithmetic, and
// cancellation of perturbation methods through onProgress. End to end: the built demo page (dist/web/) served by
// tools/serve.mjs on 127.0.0.1, in headless Debian Chromium (WebGPU on its SwiftShader adapter) driven by
// playwright-core, against the Node path (Dawn) on the same normalised tensor: top-1 and Grad-CAM / LIFT-CAM raw maps
// to 1e-4 of the max; the page's device destroyed between and inside calls (DeviceLostError in flight, then the same
// numbers bit for bit on a new device). Screenshot: out/browser/demo.png. No Chromium or no WebGPU in it is a failure, not a skip.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { Model } from '../src/model.js';
import { CancelledError, Explainer, type ExplainOptions, type Explanation } from '../src/explain.js';
import type { Method } from '../src/methods.js';
import { cropRect, pixelsToTensor } from '../src/browser.js';
import { COLORMAPS, colorize, colormap, colormapLut } from '../src/colormap.js';
import { nodeGpu } from '../node/gpu.js';
import { fixtureDir, npy, relMax } from './helpers.js';

const test = suite('browser');
const CHROMIUM = '/usr/bin/chromium';
/** Headless Chromium with WebGPU on a machine without a GPU or network: the unsafe-WebGPU switch (Linux has no
 *  WebGPU by default), no GPU sandbox (SwiftShader runs in the GPU process), and no background services to hang on. */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-gpu-sandbox', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic',
  // the page draws its maps into 2D canvases: software Vulkan / ANGLE for them
  '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-angle=swiftshader'];
const MODEL = 'resnet'; // tests/fixtures/resnet: 3x64x64, no sidecar (mean 0, std 1)

// ------------------------------------------------------------------------------------------- Node-only
test('colormaps: 256-entry tables; jet from its segment data, turbo / viridis / inferno ends and quartiles as published', () => {
  // matplotlib 3.6 cmap(t)[:3] * 255, rounded (turbo: Google's table)
  const want: Record<string, number[][]> = {
    jet: [[0, 0, 128], [0, 129, 255], [125, 255, 122], [255, 148, 0], [128, 0, 0]],
    turbo: [[48, 18, 59], [40, 188, 235], [164, 252, 60], [251, 126, 33], [122, 4, 3]],
    viridis: [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
    inferno: [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]],
  };
  for (const name of COLORMAPS) {
    assert.is(colormapLut(name).length, 768, name);
    [0, 0.25, 0.5, 0.75, 1].forEach((t, i) => assert.equal(colormap(name, t), want[name][i], `${name}(${t})`));
  }
  assert.equal(colormap('jet', -1), colormap('jet', 0), 'below 0 clamps'); assert.equal(colormap('jet', 2), colormap('jet', 1), 'above 1 clamps');
  const px = colorize([0, 1], 'viridis', { alpha: 0.25, image: [100, 100, 100, 255, 0, 0, 0, 255] });
  assert.equal(Array.from(px), [Math.round(0.75 * 100 + 0.25 * 68), Math.round(0.75 * 100 + 0.25 * 1), Math.round(0.75 * 100 + 0.25 * 84), 255,
    Math.round(0.25 * 253), Math.round(0.25 * 231), Math.round(0.25 * 37), 255], 'blend (1 - alpha) image + alpha colour');
  assert.equal(Array.from(colorize([1], 'jet', { alpha: 0.5 })), [128, 0, 0, 128], 'no image: alpha channel');
});

test('pixelsToTensor: RGBA (H,W,4) -> (1,3,H,W), (v / 255 - mean) / std; cropRect: Resize(256) + CenterCrop(224) of 640x480', () => {
  const rgba = [255, 0, 51, 255, 0, 102, 255, 9]; // 1x2 pixels
  const x = pixelsToTensor(rgba, 2, 1, [0.5, 0, 0.2], [0.5, 1, 0.1]);
  const want = [(1 - 0.5) / 0.5, (0 - 0.5) / 0.5, 0, 0.4, (0.2 - 0.2) / 0.1, (1 - 0.2) / 0.1];
  want.forEach((v, i) => assert.ok(Math.abs(x[i] - v) < 1e-6, `x[${i}] = ${x[i]}, want ${v}`));
  assert.equal(cropRect(640, 480, { size: [224, 224], fit: 'center-crop', resize: 256 }), [110, 30, 420, 420]);
  assert.equal(cropRect(640, 480, { size: [224, 224], fit: 'center-crop' }), [80, 0, 480, 480]);
  assert.equal(cropRect(640, 480, { size: [224, 224] }), [0, 0, 640, 480]);
  assert.throws(() => pixelsToTensor([1, 2, 3], 1, 1), /RGBA/);
});

test(`cancel: an aborted signal stops Score-CAM and RISE (${MODEL}); the Explainer then matches a fresh one`, async () => {
  const model = await Model.load(await nodeGpu(), readFileSync(`${fixtureDir(MODEL)}/model.onnx`), MODEL);
  const x = npy(MODEL, 'x.npy').data.slice(0, 3 * 64 * 64);
  const used = new Explainer(model), fresh = new Explainer(model);
  try {
    for (const m of ['scorecam', 'rise'] as const) {
      const ac = new AbortController(); let calls = 0;
      const run = used.explain(x, { methods: [m], rise: { n: 64 }, batch: 8, signal: ac.signal, onProgress: () => { if (++calls === 1) ac.abort(); } });
      const e = await run.then(() => null, (err: unknown) => err);
      assert.ok(e instanceof CancelledError, `${m}: explain rejects with CancelledError (got ${e})`);
      assert.is(calls, 1, `${m}: stopped at the first progress call after the abort`);
    }
    const methods: Method[] = ['gradcam', 'scorecam', 'rise'], opts = { methods, rise: { n: 64 }, batch: 8 };
    const a = await used.explain(x, opts), b = await fresh.explain(x, opts);
    for (const m of methods) assert.ok(relMax(a.images[0].methods[m]!.raw, b.images[0].methods[m]!.raw) === 0, `${m} after a cancel equals a fresh Explainer's`);
  } finally { used.destroy(); fresh.destroy(); model.destroy(); }
});

// ------------------------------------------------------------------------------------------- Chromium
let ctx: BrowserContext | null = null, page: Page | null = null, pageReady = false, server: ChildProcess | null = null, profile = '';
const logs: string[] = [];
const parity: [string, number][] = [];

/** Starts tools/serve.mjs on a free port; resolves to its URL. */
function startServer(): Promise<string> {
  return new Promise((ok, fail) => {
    const s = spawn(process.execPath, ['tools/serve.mjs', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    server = s;
    let err = '';
    const timer = setTimeout(() => fail(new Error(`tools/serve.mjs did not start in 10 s: ${err}`)), 10_000);
    s.stderr!.on('data', (d) => { err += d; });
    s.stdout!.on('data', (d) => { const m = /http:\/\/127\.0\.0\.1:\d+\//.exec(String(d)); if (m) { clearTimeout(timer); ok(m[0]); } });
    s.on('exit', (code) => { clearTimeout(timer); fail(new Error(`tools/serve.mjs exited (${code}): ${err}`)); });
  });
}

/** The Node path on the same tensor: what the page's numbers must match. */
async function nodeExplain(x: Float32Array, methods: ExplainOptions['methods'] = 'fast', extra: ExplainOptions = {}, name = MODEL): Promise<Explanation> {
  const model = await Model.load(await nodeGpu(), readFileSync(`${fixtureDir(name)}/model.onnx`), name);
  const ex = new Explainer(model);
  try { return await ex.explain(x, { methods, ...extra }); } finally { ex.destroy(); model.destroy(); }
}

interface PageResult { target: number; top5: { class: number }[]; raw: Record<string, number[]>; logits: number[]; timings: Record<string, number>; tensor?: number[]; layer: string }
function compare(tag: string, got: PageResult, want: Explanation, methods: string[], tol: number) {
  const im = want.images[0];
  assert.is(got.target, im.target, `${tag}: top-1 class in the browser vs Node`);
  assert.equal(got.top5.map((t) => t.class), im.topk.map((t) => t.class), `${tag}: top-5 classes`);
  for (const m of methods) {
    const e = relMax(got.raw[m], (im.methods as Record<string, { raw: Float32Array }>)[m].raw);
    parity.push([`${tag} ${m}`, e]);
    assert.ok(e <= tol, `${tag}: ${m} raw map, browser vs Node: error ${e} (relative to max) > ${tol}`);
  }
}

test('demo page in headless Chromium: WebGPU adapter, model and sample scene load, maps drawn', async () => {
  if (!existsSync(CHROMIUM)) assert.unreachable(`Debian's chromium is not installed at ${CHROMIUM}: run \`bash tools/setup.sh\` (apt-get install -y chromium); this test must run in CI`);
  if (!existsSync('dist/web/index.html') || !existsSync('dist/web/demo.js')) assert.unreachable('dist/web/ is not built: run `node build.mjs`');
  const url = await startServer();
  profile = mkdtempSync(join(tmpdir(), 'camgpu-chromium-'));
  ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30_000, viewport: { width: 1400, height: 1000 } });
  page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') logs.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => logs.push(`page error: ${e.message}`));
  const gpu = await page.goto(url).then(() => page!.evaluate(async () => {
    if (!navigator.gpu) return `navigator.gpu is missing (secure context: ${isSecureContext})`;
    const a = await navigator.gpu.requestAdapter();
    return a ? '' : 'navigator.gpu.requestAdapter() returned null';
  }));
  if (gpu) assert.unreachable(`WebGPU is unavailable in Chromium (${CHROMIUM} ${CHROMIUM_ARGS.join(' ')}): ${gpu}`);
  await page.goto(`${url}?model=fixtures/${MODEL}`); // the first scene: data/scenes/ when it has any, else a built-in one
  await page.waitForFunction(() => { const d = (window as { camgpuDemo?: { status: string } }).camgpuDemo; return d && ['done', 'error', 'idle'].includes(d.status); }, null, { timeout: 40_000 })
    .catch((e) => { throw new Error(`the demo did not finish explaining: ${e.message}\n${logs.join('\n')}`); });
  const s = await page.evaluate(() => { const d = (window as unknown as { camgpuDemo: { status: string; error: string; adapter: string } }).camgpuDemo; return { status: d.status, error: d.error, adapter: d.adapter }; });
  assert.is(s.status, 'done', `demo status: ${s.error}\n${logs.join('\n')}`);
  console.log(`\n  Chromium adapter: ${s.adapter}`);
  assert.match(s.adapter, /\S/, 'the page names its adapter');
  const drawn = await page.evaluate(() => document.querySelectorAll('#grid figure:not(.pending) canvas').length);
  assert.ok(drawn >= 12, `${drawn} maps drawn, want every fast method's (12)`);
  pageReady = true;
});

/** Calls window.camgpuDemo[f](...args) in the page; 45 s at most (a hung GPU must fail the test, not stall CI). */
const demo = <T>(f: string, ...args: unknown[]): Promise<T> => {
  if (!page || !pageReady) throw new Error('no demo page: the Chromium test above failed');
  const call = page.evaluate(([f, args]) => (window as unknown as Record<string, Record<string, (...a: unknown[]) => unknown>>).camgpuDemo[f as string](...(args as unknown[])), [f, args] as const) as Promise<T>;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, fail) => { timer = setTimeout(() => fail(new Error(`camgpuDemo.${f}() took over 45 s\n${logs.join('\n')}`)), 45_000); });
  return Promise.race([call, limit]).finally(() => clearTimeout(timer));
};

test(`browser vs Node (${MODEL}): top-1 and Grad-CAM / LIFT-CAM raw maps to 1e-4, on the page's tensor of its sample scene and on the fixture's x`, async () => {
  const r = await demo<PageResult>('result');
  assert.ok(r && r.tensor && r.tensor.length === 3 * 64 * 64, 'the page exposes the tensor it explained');
  compare('scene', r, await nodeExplain(Float32Array.from(r.tensor!)), ['gradcam', 'liftcam', 'gradcam++', 'xgradcam', 'layercam', 'hirescam', 'eigencam'], 1e-4);
  const x = npy(MODEL, 'x.npy').data.slice(0, 3 * 64 * 64);
  const t = await demo<PageResult>('explainTensor', Array.from(x));
  compare('x.npy[0]', t, await nodeExplain(x), ['gradcam', 'liftcam'], 1e-4);
  const again = await demo<PageResult>('explainTensor', Array.from(x));
  console.log(`  in-browser explain(), all 12 fast methods, steady state (ms): ${Object.entries(again.timings).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`);
});

test(`browser perturbation methods (${MODEL}): RISE cancelled mid-run, then Score-CAM and RISE complete and match Node`, async () => {
  const c = await demo<{ status: string; message?: string }>('runPerturbation', 'rise', { n: 400, cancelAfter: 2 });
  assert.is(c.status, 'cancelled', `RISE cancel: ${JSON.stringify(c)}`);
  const r = await demo<PageResult & { ms: number }>('result');
  const sc = await demo<{ status: string; raw: number[]; ms: number; target: number }>('runPerturbation', 'scorecam', {});
  const rise = await demo<{ status: string; raw: number[]; ms: number; target: number }>('runPerturbation', 'rise', { n: 128 });
  assert.is(sc.status, 'done'); assert.is(rise.status, 'done');
  const want = await nodeExplain(Float32Array.from(r.tensor!), ['scorecam', 'rise'], { targets: [sc.target], rise: { n: 128 } });
  for (const [m, got] of [['scorecam', sc], ['rise', rise]] as const) {
    const e = relMax(got.raw, want.images[0].methods[m]!.raw);
    parity.push([`scene ${m}`, e]);
    assert.ok(e <= 1e-4, `${m} raw map, browser vs Node: error ${e}`);
  }
  console.log(`  in-browser Score-CAM ${sc.ms.toFixed(0)} ms, RISE (128 masks) ${rise.ms.toFixed(0)} ms`);
  mkdirSync('out/browser', { recursive: true });
  await page!.screenshot({ path: 'out/browser/demo.png', fullPage: true });
});

test(`browser device loss (${MODEL}): the page's GPUDevice destroyed between calls and inside a Score-CAM call; DeviceLostError in flight, then a new device and the same numbers bit for bit`, async () => {
  const x = npy(MODEL, 'x.npy').data.slice(0, 3 * 64 * 64);
  const before = await demo<PageResult>('explainTensor', Array.from(x));
  const lost = await demo<{ generation: number }>('loseDevice', false);
  const after = await demo<PageResult>('explainTensor', Array.from(x));
  const gen = (await demo<{ generation: number }>('loseDevice', false)).generation;
  assert.is(gen, lost.generation + 1, 'the call after the loss requested a new device');
  assert.equal(after.raw, before.raw, 'every fast method\'s raw map after the loss equals the one before, bit for bit');
  assert.equal(after.logits, before.logits);
  const during = await demo<{ name: string; error: string; generation: number; calls: number }>('loseDevice', true);
  assert.is(during.calls, 1, 'the device was destroyed inside the call, at its first Score-CAM batch');
  assert.is(during.name, 'DeviceLostError', `the call in flight rejects with DeviceLostError (got ${during.name || 'a result'}: ${during.error})`);
  const again = await demo<PageResult>('explainTensor', Array.from(x));
  assert.equal(again.raw, before.raw, 'after a loss inside a call: the same numbers again');
  // left lost: the file-picker test below then loads a model onto it (Model.load gets a new device first)
  const d = await demo<{ generation: number }>('loseDevice', false);
  console.log(`  browser: ${d.generation} devices replaced; results after each loss equal the first, bit for bit`);
});

test('library bundle dist/camgpu.js in the page: an app-owned GPUDevice, ImageData -> tensor, mapToImageData; same numbers as Node (vgg)', async () => {
  if (!page || !pageReady) assert.unreachable('no demo page: the Chromium test above failed');
  const px = Uint8ClampedArray.from({ length: 32 * 32 * 4 }, (_, i) => (i % 4 === 3 ? 255 : (i * 37 + (i >> 7) * 11) % 256));
  const got = await page!.evaluate(async (pixels) => {
    const c = await import(`${location.origin}/dist/camgpu.js`);
    const adapter = await navigator.gpu.requestAdapter(), device = await adapter!.requestDevice({ label: 'app device' }); // the app's, default limits
    const model = await c.loadModel(device, 'fixtures/vgg/model.onnx');
    const img = new ImageData(Uint8ClampedArray.from(pixels), 32, 32);
    const x = c.imageToTensor(img, { size: [32, 32] });
    const r = await c.explain(model, x, { methods: ['gradcam', 'liftcam'] });
    const m = r.images[0].methods, overlay = c.mapToImageData(m.gradcam.map, 32, 32, 'turbo', { alpha: 0.4, image: img });
    model.destroy(); device.destroy();
    return { x: Array.from(x as Float32Array), target: r.images[0].target, map: Array.from(m.gradcam.map as Float32Array), overlay: Array.from(overlay.data as Uint8ClampedArray),
      raw: { gradcam: Array.from(m.gradcam.raw as Float32Array), liftcam: Array.from(m.liftcam.raw as Float32Array) } };
  }, Array.from(px));
  const x = pixelsToTensor(px, 32, 32);
  assert.ok(relMax(got.x, x) === 0, 'imageToTensor(ImageData) in the page equals pixelsToTensor in Node');
  const want = await nodeExplain(x, ['gradcam', 'liftcam'], {}, 'vgg');
  assert.is(got.target, want.images[0].target, 'top-1');
  for (const m of ['gradcam', 'liftcam'] as const) {
    const e = relMax(got.raw[m], want.images[0].methods[m]!.raw); parity.push([`bundle ${m}`, e]);
    assert.ok(e <= 1e-4, `bundle ${m}: error ${e}`);
  }
  assert.equal(got.overlay, Array.from(colorize(got.map, 'turbo', { alpha: 0.4, image: px })), 'mapToImageData = colorize on the same map');
});

test('browser: an .onnx file from the file picker (vgg fixture, 3x32x32) replaces the model and is explained like in Node', async () => {
  const runs = await demo<number>('runsDone');
  await page!.setInputFiles('#modelFile', `${fixtureDir('vgg')}/model.onnx`);
  await page!.waitForFunction((n) => { const d = (window as unknown as { camgpuDemo: { status: string; runs: number } }).camgpuDemo; return d.status === 'error' || (d.status === 'done' && d.runs > n); }, runs, { timeout: 20_000 });
  const r = await demo<PageResult & { model: string }>('result');
  assert.is(r.model, 'model.onnx'); assert.is(r.tensor!.length, 3 * 32 * 32);
  compare('vgg file', r, await nodeExplain(Float32Array.from(r.tensor!), 'fast', {}, 'vgg'), ['gradcam', 'liftcam'], 1e-4);
});

test.after(async () => {
  if (parity.length) console.log(`\n  browser vs Node parity (max |diff| / max |Node|): ${parity.map(([k, e]) => `${k} ${e.toExponential(1)}`).join(', ')}`);
  if (logs.length) console.log(`  page console: ${logs.slice(0, 10).join(' | ')}`);
  await ctx?.close().catch(() => undefined);
  server?.kill();
  if (profile) rmSync(profile, { recursive: true, force: true });
  ctx = null; page = null; server = null;
});
test.run();
