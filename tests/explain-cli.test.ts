// `camgpu explain` and `camgpu layers` as a user runs them (node dist/cli.js in a child process; build first), plus
// the image pipeline and colormaps they use. Oracles: hand-computed resize/crop/normalise values; published colormap
// values; the explain() API run here in-process on the same normalised input (its maps must be where the overlays
// are hot, and its raw maps, weights and logits must equal the --raw files); PNGs decoded here with pngjs.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { Model } from '../src/model.js';
import { Explainer, Explanation, ExplainOptions } from '../src/explain.js';
import { closeGpu, nodeGpu } from '../node/gpu.js';
import { parseNpy } from '../node/npy.js';
import { Rgb, decodeImage, preprocess, roundHalfEven } from '../node/image.js';
import { Colormap, gridLayout, lut } from '../node/render.js';
import { colormap as colorAt } from '../src/colormap.js';
import { fixtureDir, meta, npy, relMax } from './helpers.js';

const CLI = 'dist/cli.js', IMG = 'tests/fixtures/images';
const tmp = mkdtempSync(join(tmpdir(), 'camgpu-explain-'));
const NO_GPU = { ...process.env, VK_ICD_FILENAMES: join(tmp, 'no-such-icd.json'), VK_DRIVER_FILES: join(tmp, 'no-such-icd.json') };
/** Dawn's and the Vulkan loader's native stderr lines ("Warning: ... artificially reduced"); camgpu cannot silence them. */
const nativeNoise = (l: string) => l.trim() === '' || l.startsWith('Warning: ') || /^\s+at \w+ \(.*\.cpp:\d+\)$/.test(l);

function cli(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, timeout: 300_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout, err: r.stderr.split('\n').filter((l) => !nativeNoise(l)) };
}
function ok(args: string[]) {
  const r = cli(args);
  assert.is(r.code, 0, `camgpu ${args.join(' ')}: ${r.err.join(' | ')}`);
  assert.equal(r.err, [], 'nothing on stderr (no progress bar when stderr is not a terminal)');
  return r.out;
}
/** Exactly one stderr line, `camgpu: ` + a reason matching `why`, the exit status, nothing on stdout. */
function fails(args: string[], code: number, why: RegExp | string) {
  const r = cli(args);
  assert.is(r.code, code, `exit status of camgpu ${args.join(' ')} (stderr: ${r.err.join(' | ')})`);
  assert.is(r.err.length, 1, `one stderr line, got ${r.err.length}: ${r.err.join(' | ')}`);
  assert.ok(r.err[0].startsWith('camgpu: '), r.err[0]);
  assert.ok(typeof why === 'string' ? r.err[0].includes(why) : why.test(r.err[0]), `'${r.err[0]}' does not match ${why}`);
  assert.not.match(r.err[0], /\bat .*\.(js|ts):\d+/, 'no stack trace');
  assert.is(r.out, '');
}

/** A PNG decoded here (pngjs), as 8-bit RGB. */
function readPng(path: string): Rgb {
  const p = PNG.sync.read(readFileSync(path)), data = new Uint8Array(p.width * p.height * 3);
  for (let i = 0; i < p.width * p.height; i++) data.set(p.data.subarray(4 * i, 4 * i + 3), 3 * i);
  return { width: p.width, height: p.height, data };
}
function writePng(path: string, w: number, h: number, rgb: (x: number, y: number) => number[]) {
  const p = new PNG({ width: w, height: h });
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) p.data.set([...rgb(x, y), 255], 4 * (y * w + x));
  writeFileSync(path, PNG.sync.write(p, { colorType: 2 }));
}

/** Heat of an overlay drawn with alpha 1: the colormap inverted by the nearest of its 256 colours -> t in [0,1]. */
function heatOf(img: Rgb, cmap: Colormap): Float32Array {
  const table = lut(cmap), n = img.width * img.height, heat = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    let best = 0, bd = Infinity;
    for (let i = 0; i < 256; i++) {
      const d = (img.data[3 * p] - table[3 * i]) ** 2 + (img.data[3 * p + 1] - table[3 * i + 1]) ** 2 + (img.data[3 * p + 2] - table[3 * i + 2]) ** 2;
      if (d < bd) { bd = d; best = i; }
    }
    heat[p] = best / 255;
  }
  return heat;
}
const argmax = (a: ArrayLike<number>) => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; };
const absMax = (a: ArrayLike<number>, b: ArrayLike<number>) => { let d = 0; for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i])); return d; };
const model = (name: string) => `${fixtureDir(name)}/model.onnx`;

/** The overlay of the API's map must show the same heat, hottest where the API's map is. */
function checkHeat(file: string, map: Float32Array, cmap: Colormap, what: string) {
  const heat = heatOf(readPng(file), cmap);
  const err = absMax(heat, map);
  // 8-bit quantisation, and jet's flat stretch t in [0.11, 0.125] (pure blue) that no inversion can resolve
  assert.ok(err <= 5 / 255, `${what}: overlay heat vs API map, max error ${err}`);
  const hot = argmax(heat), top = argmax(map);
  assert.ok(map[hot] >= map[top] - 0.02 && heat[top] >= heat[hot] - 0.02, `${what}: hottest overlay pixel ${hot} (API ${map[hot]}), API's hottest ${top} (overlay ${heat[top]})`);
}

/** The API on the images the CLI read, prepared here with node/image.ts (checked against hand values below). */
async function api(name: string, x: Float32Array, o: ExplainOptions, path = model(name)): Promise<Explanation> {
  const m = await Model.load(await nodeGpu(), readFileSync(path), name), ex = new Explainer(m);
  try { return await ex.explain(x, o); } finally { ex.destroy(); m.destroy(); }
}
function prepared(files: string[], H: number, W: number, s: { mean: number[]; std: number[]; resize: number | [number, number] }) {
  const per = 3 * H * W, x = new Float32Array(files.length * per), views: Rgb[] = [];
  files.forEach((f, i) => { const p = preprocess(decodeImage(readFileSync(f), f), H, W, s); x.set(p.x, i * per); views.push(p.view); });
  return { x, views };
}
const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

const test = suite('explain-cli');
test.before(() => { if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run node build.mjs first`); });
test.after(async () => { rmSync(tmp, { recursive: true, force: true }); await closeGpu(); });

// ================================================================================================ image pipeline

test('image pipeline: 4x4 ramp -> resize 2 (antialiased triangle, 2 px support) = (3a+3b+c)/7 -> normalise', () => {
  const f = join(tmp, 'ramp4.png'), ramp = [0, 70, 140, 210];
  writePng(f, 4, 4, (x) => [ramp[x], ramp[x], 255 - ramp[x]]);
  const s = { mean: [0.5, 0.25, 0.125], std: [0.5, 0.25, 0.2], resize: 2 };
  const { x, view } = preprocess(decodeImage(readFileSync(f), f), 2, 2, s);
  // output sample 0: centre 1.0 in input pixels, taps 0,1,2 weighted 0.75, 0.75, 0.25 -> (3*0 + 3*70 + 140)/7 = 50
  // output sample 1: taps 1,2,3 weighted 0.25, 0.75, 0.75 -> (70 + 3*140 + 3*210)/7 = 160
  const want = [50, 160], blue = [205, 95];
  for (let y = 0; y < 2; y++) for (let X = 0; X < 2; X++) {
    assert.equal([...view.data.subarray(3 * (2 * y + X), 3 * (2 * y + X) + 3)], [want[X], want[X], blue[X]]);
    [want[X], want[X], blue[X]].forEach((v, c) => assert.ok(Math.abs(x[c * 4 + 2 * y + X] - (v / 255 - s.mean[c]) / s.std[c]) < 1e-5, `x[${c},${y},${X}]`));
  }
});

test('image pipeline: 2x2 -> 4x4 (upscaling is half-pixel bilinear, edges clamped): [0,100] -> [0,25,75,100]', () => {
  const f = join(tmp, 'up2.png');
  writePng(f, 2, 2, (x, y) => [100 * x, 100 * y, 40]);
  const { x, view } = preprocess(decodeImage(readFileSync(f), f), 4, 4, { mean: [0, 0, 0], std: [1, 1, 1], resize: 4 });
  const want = [0, 25, 75, 100];
  for (let y = 0; y < 4; y++) for (let X = 0; X < 4; X++) {
    assert.equal([...view.data.subarray(3 * (4 * y + X), 3 * (4 * y + X) + 3)], [want[X], want[y], 40]);
    assert.ok(Math.abs(x[4 * y + X] - want[X] / 255) < 1e-6);
  }
});

test('image pipeline: 8x3 -> resize 3 (no-op) -> centre crop 3x3 at left = round_half_even(2.5) = 2 (torchvision)', () => {
  assert.equal([0.5, 1.5, 2.5, 3.5, 2].map(roundHalfEven), [0, 2, 2, 4, 2]);
  const f = join(tmp, 'wide8.png');
  writePng(f, 8, 3, (x, y) => [10 * x, 10 * y, 7]);
  const { view } = preprocess(decodeImage(readFileSync(f), f), 3, 3, { ...IMAGENET, resize: 3 });
  for (let y = 0; y < 3; y++) for (let X = 0; X < 3; X++) assert.equal([...view.data.subarray(3 * (3 * y + X), 3 * (3 * y + X) + 3)], [10 * (X + 2), 10 * y, 7]);
});

test('image decoding: grayscale PNG -> R=G=B; RGBA PNG -> alpha dropped (= the RGB twin); JPEG q95 ~ the PNG twin', () => {
  const gray = decodeImage(readFileSync(`${IMG}/gray48x40.png`), 'gray');
  assert.equal([gray.width, gray.height], [48, 40]);
  for (let p = 0; p < 48 * 40; p++) assert.ok(gray.data[3 * p] === gray.data[3 * p + 1] && gray.data[3 * p] === gray.data[3 * p + 2]);
  assert.is(gray.data[3 * (20 * 48 + 5)], 240, 'the bar (rows 16..23)');
  assert.is(gray.data[3 * (2 * 48 + 10)], 50, 'the ramp 20 + 3x');
  const png = decodeImage(readFileSync(`${IMG}/shapes32.png`), 'png'), rgba = decodeImage(readFileSync(`${IMG}/rgba32.png`), 'rgba');
  assert.equal([...rgba.data], [...png.data]);
  const jpg = decodeImage(readFileSync(`${IMG}/shapes32.jpg`), 'jpg');
  assert.equal([jpg.width, jpg.height], [32, 32]);
  let sum = 0; for (let i = 0; i < jpg.data.length; i++) sum += Math.abs(jpg.data[i] - png.data[i]);
  assert.ok(sum / jpg.data.length < 4, `JPEG vs PNG mean abs difference ${sum / jpg.data.length}`);
});

test('colormaps: jet(0) dark blue, jet(1) dark red; viridis, inferno at 0, 0.5, 1 match matplotlib; turbo from Google\'s table', () => {
  const near = (name: Colormap, t: number, want: number[], tol: number) => {
    const got = colorAt(name, t);
    assert.ok(got.every((v, i) => Math.abs(v - want[i]) <= tol), `${name}(${t}) = ${got}, expected ${want} +- ${tol}`);
  };
  near('jet', 0, [0, 0, 128], 1); near('jet', 1, [128, 0, 0], 1);
  assert.is(colorAt('jet', 0.5)[1], 255, 'jet is green in the middle');
  near('viridis', 0, [68, 1, 84], 4); near('viridis', 0.5, [33, 145, 140], 4); near('viridis', 1, [253, 231, 37], 5);
  near('inferno', 0, [0, 0, 4], 4); near('inferno', 0.5, [188, 55, 84], 4); near('inferno', 1, [252, 255, 164], 5);
  near('turbo', 0, [48, 18, 59], 1); near('turbo', 1, [122, 4, 3], 1);
  for (const m of ['jet', 'turbo', 'viridis', 'inferno'] as Colormap[]) { // no two of 256 entries alike (the heat inversion below needs it)
    const t = lut(m), seen = new Set<string>();
    for (let i = 0; i < 256; i++) seen.add(t.subarray(3 * i, 3 * i + 3).join());
    assert.ok(seen.size >= 250, `${m}: ${seen.size} distinct colours`);
  }
});

// ============================================================================================== explain: images

const VGG_IMAGES = [`${IMG}/shapes32.png`, `${IMG}/shapes32.jpg`, `${IMG}/gray48x40.png`];

test('explain vgg (3,32,32), no sidecar: PNG + JPEG + gray PNG, gradcam,gradcam++,liftcam, alpha 1: overlays = API maps, hot where the API is hot', async () => {
  const out = join(tmp, 'vgg'), raw = join(tmp, 'vgg-raw'), methods = ['gradcam', 'gradcam++', 'liftcam'] as const;
  const text = ok(['explain', ...VGG_IMAGES, '--model', model('vgg'), '--methods', methods.join(','), '--alpha', '1', '--out', out, '--raw', raw]);
  assert.match(text, `${join(out, 'grid.png')} (3 rows x 4 columns)`);
  assert.match(text, 'resize 37, crop 32x32'); // round(32 * 256 / 224)
  const { x, views } = prepared(VGG_IMAGES, 32, 32, { ...IMAGENET, resize: 37 });
  const e = await api('vgg', x, { methods: [...methods] });
  const names = ['shapes32', 'shapes32_jpg', 'gray48x40'];
  names.forEach((n, i) => {
    for (const m of methods) {
      const f = join(out, `${n}.${m}.png`), img = readPng(f);
      assert.equal([img.width, img.height], [32, 32], f);
      checkHeat(f, e.images[i].methods[m]!.map, 'jet', `${n} ${m}`);
    }
  });
  // --raw: (rows, h, w) pre-ReLU feature maps, (rows, K) weights, (rows, classes) logits, equal to the API's
  const m = meta('vgg') as ReturnType<typeof meta> & { act_shape: number[] }, [, K, h, w] = m.act_shape;
  for (const mm of methods) {
    const r = parseNpy(readFileSync(join(raw, `${mm}.npy`))), wt = parseNpy(readFileSync(join(raw, `${mm}.weights.npy`)));
    assert.equal(r.shape, [3, h, w]); assert.equal(wt.shape, [3, K]);
    const want = (k: 'raw' | 'weights') => Float32Array.from(e.images.flatMap((im) => [...im.methods[mm]![k]!]));
    assert.ok(relMax(r.data, want('raw')) <= 1e-5, `${mm} raw`);
    assert.ok(relMax(wt.data, want('weights')) <= 1e-5, `${mm} weights`);
  }
  const logits = parseNpy(readFileSync(join(raw, 'logits.npy')));
  assert.equal(logits.shape, [3, 10]);
  assert.ok(relMax(logits.data, Float32Array.from(e.images.flatMap((im) => [...im.logits]))) <= 1e-5, 'logits');
  // the grid: header strip, a label strip per row; column 0 is the image the model saw, then the overlays
  const grid = readPng(join(out, 'grid.png')), L = gridLayout(3, 4, 32, 32);
  assert.equal([grid.width, grid.height], [L.width, L.height]);
  names.forEach((n, r) => [views[r], ...methods.map((mm) => readPng(join(out, `${n}.${mm}.png`)))].forEach((img, c) => {
    const [x0, y0] = L.tile(r, c);
    for (let y = 0; y < L.th; y++) for (let X = 0; X < L.tw; X++) {
      const g = 3 * ((y0 + y) * grid.width + x0 + X), s = 3 * (Math.floor(y / L.scale) * 32 + Math.floor(X / L.scale));
      if (grid.data[g] !== img.data[s] || grid.data[g + 1] !== img.data[s + 1] || grid.data[g + 2] !== img.data[s + 2]) assert.unreachable(`grid row ${r} column ${c} pixel (${X},${y})`);
    }
  }));
  // summary.json
  const sum = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(sum.layer, { name: m.target, shape: m.act_shape.slice(1), from: 'default' });
  assert.equal(sum.methods, [...methods]);
  assert.is(sum.versions.camgpu, JSON.parse(readFileSync('package.json', 'utf8')).version);
  assert.match(sum.adapter, /\S/);
  assert.ok(sum.timings_ms['gradient pass'] > 0);
  assert.is(sum.model.sidecar, null);
  assert.equal(sum.images.map((im: { file: string }) => im.file), VGG_IMAGES);
  sum.images.forEach((im: { top: { class: number; label: string; prob: number }[]; targets: { class: number; overlays: Record<string, string> }[] }, i: number) => {
    assert.is(im.top[0].class, e.images[i].topk[0].class);
    assert.is(im.top[0].label, String(im.top[0].class));
    assert.ok(Math.abs(im.top[0].prob - e.images[i].probs[im.top[0].class]) < 1e-6);
    assert.is(im.targets.length, 1);
    assert.is(im.targets[0].class, e.images[i].target);
    assert.equal(Object.keys(im.targets[0].overlays), [...methods]);
  });
});

test('explain resnet (3,64,64) with a sidecar (mean, std, labels, layer, resize 72, crop 64) --class top3 --colormap viridis', async () => {
  const dir = join(tmp, 'side'), out = join(dir, 'out');
  mkdirSync(dir);
  copyFileSync(model('resnet'), join(dir, 'net.onnx'));
  // a layer other than the default: the output of the previous block
  const layers = ok(['layers', model('resnet')]).split('\n').filter((l) => l.startsWith('/')).map((l) => l.split(/\s{2,}/));
  const def = layers.findIndex((c) => c.at(-1) === 'default'), layer = layers.slice(0, def).reverse().find((c) => c[2] === 'Relu')![0];
  const labels = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
  const side = { input: [3, 64, 64], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], labels, layer, resize: 72, crop: 64 };
  writeFileSync(join(dir, 'net.json'), JSON.stringify(side));
  const files = [`${IMG}/wide96x64.jpg`, `${IMG}/shapes32.png`];
  const text = ok(['explain', ...files, '--model', join(dir, 'net.onnx'), '--methods', 'gradcam,xgradcam', '--class', 'top3', '--colormap', 'viridis', '--alpha', '1', '--out', out]);
  assert.match(text, `preprocessing from ${join(dir, 'net.json')}: resize 72, crop 64x64`);
  assert.match(text, `${layer} `);
  const { x } = prepared(files, 64, 64, side);
  const e = await api('resnet', x, { methods: ['gradcam', 'xgradcam'], layer, targets: { topk: 3 } });
  assert.is(e.images.length, 6);
  e.images.forEach((im, r) => {
    const name = ['wide96x64', 'shapes32'][Math.floor(r / 3)];
    assert.is(im.image, Math.floor(r / 3));
    for (const m of ['gradcam', 'xgradcam'] as const) checkHeat(join(out, `${name}.c${im.target}.${m}.png`), im.methods[m]!.map, 'viridis', `${name} class ${im.target} ${m}`);
  });
  const grid = readPng(join(out, 'grid.png')), L = gridLayout(6, 3, 64, 64);
  assert.equal([grid.width, grid.height], [L.width, L.height]);
  const sum = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.is(sum.model.sidecar, join(dir, 'net.json'));
  assert.equal(sum.layer.name, layer); assert.is(sum.layer.from, 'sidecar');
  assert.equal(sum.preprocessing, { resize: 72, crop: [64, 64], mean: side.mean, std: side.std });
  assert.equal(sum.images[0].targets.map((t: { class: number; label: string }) => [t.class, t.label]), e.images.slice(0, 3).map((im) => [im.target, labels[im.target]]));
  assert.equal(sum.images[1].top.slice(0, 3).map((t: { label: string }) => t.label), e.images.slice(3).map((im) => labels[im.target]));
});

test('explain vgg x.npy (2,3,32,32) --class 3: overlays x_0, x_1; --raw gradcam (2,9,9), saliency (2,32,32), guided (2,3,32,32) = API on the same tensor', async () => {
  const out = join(tmp, 'npy'), raw = join(tmp, 'npy-raw'), methods = ['gradcam', 'saliency', 'guided'] as const;
  ok(['explain', `${fixtureDir('vgg')}/x.npy`, '--model', model('vgg'), '--methods', methods.join(','), '--class', '3', '--alpha', '1', '--out', out, '--raw', raw]);
  const e = await api('vgg', npy('vgg', 'x.npy').data, { methods: [...methods], targets: [3, 3] });
  for (const i of [0, 1]) {
    checkHeat(join(out, `x_${i}.c3.gradcam.png`), e.images[i].methods.gradcam!.map, 'jet', `x_${i} gradcam`);
    checkHeat(join(out, `x_${i}.c3.saliency.png`), e.images[i].methods.saliency!.map, 'jet', `x_${i} saliency`);
  }
  const shapes: Record<string, number[]> = { gradcam: [2, 9, 9], saliency: [2, 32, 32], guided: [2, 3, 32, 32] };
  for (const m of methods) {
    const r = parseNpy(readFileSync(join(raw, `${m}.npy`)));
    assert.equal(r.shape, shapes[m], m);
    assert.ok(relMax(r.data, Float32Array.from(e.images.flatMap((im) => [...im.methods[m]!.raw]))) <= 1e-5, `${m} raw`);
  }
  assert.ok(existsSync(join(raw, 'gradcam.weights.npy')) && !existsSync(join(raw, 'saliency.weights.npy')), 'weights only where the method has them');
  const sum = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(sum.images.map((im: { index: number; targets: { class: number }[] }) => [im.index, im.targets[0].class]), [[0, 3], [1, 3]]);
});

test('explain --batch 1 (3 runs) writes the same raw maps and overlays as one batch of 3', () => {
  const a = join(tmp, 'b1'), b = join(tmp, 'b8');
  const t1 = ok(['explain', ...VGG_IMAGES, '--model', model('vgg'), '--methods', 'gradcam,eigencam', '--batch', '1', '--out', a, '--raw', a]);
  ok(['explain', ...VGG_IMAGES, '--model', model('vgg'), '--methods', 'gradcam,eigencam', '--out', b, '--raw', b]);
  assert.match(t1, '3 runs of at most 1');
  for (const f of ['gradcam.npy', 'eigencam.npy', 'logits.npy']) assert.ok(relMax(parseNpy(readFileSync(join(a, f))).data, parseNpy(readFileSync(join(b, f))).data) <= 1e-5, f);
  const pngs = readdirSync(b).filter((f) => f.endsWith('.png') && f !== 'grid.png');
  assert.is(pngs.length, 6);
  for (const f of pngs) assert.ok(absMax(readPng(join(a, f)).data, readPng(join(b, f)).data) <= 1, f);
});

// ======================================================================================================= layers

test('layers vgg / resnet: candidates with shapes, the default marked = meta target; no GPU needed', () => {
  for (const name of ['vgg', 'resnet']) {
    const m = meta(name) as ReturnType<typeof meta> & { act_shape: number[] };
    const r = cli(['layers', model(name)], NO_GPU);
    assert.is(r.code, 0, r.err.join('\n'));
    const rows = r.out.split('\n').filter((l) => l.startsWith('/')).map((l) => l.split(/\s{2,}/));
    const def = rows.filter((c) => c.at(-1) === 'default');
    assert.is(def.length, 1);
    assert.equal(def[0].slice(0, 1).concat(def[0][3]), [m.target, `(N,${m.act_shape.slice(1)})`]);
    assert.ok(rows.every((c) => /^\(N,\d+,\d+,\d+\)$/.test(c[3])), 'every candidate is 4-D');
    assert.match(r.out, /^model {3}.*-> 10 classes/);
  }
});

// ================================================================================================ errors, help

test('explain bad inputs exit non-zero with one line: missing file, corrupt PNG, truncated JPEG, not an image, wrong class, unknown method/layer, bad sidecar', () => {
  const V = model('vgg'), png = `${IMG}/shapes32.png`, out = ['--out', join(tmp, 'err')];
  fails(['explain', join(tmp, 'none.png'), '--model', V, ...out], 1, /cannot read image '.*none\.png': no such file/);
  const bad = join(tmp, 'bad.png');
  writeFileSync(bad, Buffer.concat([readFileSync(png).subarray(0, 8), Buffer.from('this is not a PNG stream at all')]));
  fails(['explain', bad, '--model', V, ...out], 1, `${bad}: corrupt PNG`);
  const cut = join(tmp, 'cut.jpg');
  writeFileSync(cut, readFileSync(`${IMG}/wide96x64.jpg`).subarray(0, 600));
  fails(['explain', cut, '--model', V, ...out], 1, `${cut}: corrupt or truncated JPEG`);
  fails(['explain', V, '--model', V, ...out], 1, `${V}: not a PNG, JPEG or .npy file`);
  fails(['explain', `${fixtureDir('resnet')}/x.npy`, '--model', V, ...out], 1, 'has shape (2,3,64,64); the model expects (N,3,32,32)');
  fails(['explain', png, '--model', V, '--class', '10', ...out], 1, 'class 10 is out of range: the model has 10 classes (0..9)');
  fails(['explain', png, '--model', V, '--class', 'top11', ...out], 1, 'top11: the model has only 10 classes');
  fails(['explain', png, '--model', V, '--class', 'best', ...out], 2, "--class must be a class index N, top1 or topK (e.g. top3), got 'best'");
  fails(['explain', png, '--model', V, '--methods', 'gradcam,frobcam', ...out], 2, /unknown method 'frobcam'; methods: gradcam, .*deeplift/);
  fails(['explain', png, '--model', V, '--layer', 'no/such/layer', ...out], 1, /layer 'no\/such\/layer' is not a tensor or node of this model; 4-D candidates: .*features\.15\/Relu_output_0/);
  fails(['explain', png, '--model', V, '--methods', 'cam', ...out], 1, 'CAM needs the target layer to feed GlobalAveragePool -> linear');
  fails(['explain', png, '--model', V, '--alpha', '1.5', ...out], 2, "--alpha must be a number in [0, 1], got '1.5'");
  fails(['explain', png, '--model', V, '--colormap', 'hot', ...out], 2, '--colormap must be one of jet, turbo, viridis, inferno');
  fails(['explain', png, ...out], 2, 'explain needs --model MODEL.onnx');
  fails(['explain', '--model', V, ...out], 2, 'explain needs IMAGE...');
  fails(['explain', png, '--model', V, '--out', join(png, 'sub')], 1, /cannot write to '.*shapes32\.png\/sub': a parent is not a directory/);
  const dir = join(tmp, 'badside');
  mkdirSync(dir);
  copyFileSync(V, join(dir, 'm.onnx'));
  const side = (j: object) => writeFileSync(join(dir, 'm.json'), JSON.stringify(j));
  side({ labels: ['a', 'b'] });
  fails(['explain', png, '--model', join(dir, 'm.onnx'), ...out], 1, `${join(dir, 'm.json')}: 'labels' has 2 names; the model has 10 classes`);
  side({ input: [3, 224, 224] });
  fails(['explain', png, '--model', join(dir, 'm.onnx'), ...out], 1, "'input' is [3,224,224] but the model's input is [3,32,32]");
  side({ layer: 'nope' });
  fails(['explain', png, '--model', join(dir, 'm.onnx'), ...out], 1, `${join(dir, 'm.json')}: layer 'nope' is not a tensor or node`);
  side({ lables: [] });
  fails(['layers', join(dir, 'm.onnx')], 1, "unknown key 'lables'");
  writeFileSync(join(dir, 'm.json'), '{"mean": [0.5,');
  fails(['explain', png, '--model', join(dir, 'm.onnx'), ...out], 1, `${join(dir, 'm.json')}: not valid JSON`);
});

test('--help: explain and layers have their usage; the top level lists them', () => {
  for (const c of ['explain', 'layers']) {
    const r = cli([c, '--help']);
    assert.is(r.code, 0);
    assert.match(r.out, new RegExp(`^usage: camgpu ${c} `));
  }
  assert.match(cli(['explain', '--help']).out, /--no-relu[\s\S]*--rise-n N/);
  const top = cli(['--help']).out;
  assert.match(top, /\n {2}explain {2,}/); assert.match(top, /\n {2}layers {2,}/);
});

test('eval on the bundled resnet and sample scenes: accuracy matches classify-by-explain, metrics in range, JSON written', () => {
  const json = join(tmp, 'eval.json');
  const out = ok(['eval', '--model', 'weights/resnet.onnx', '--data', 'data/scenes', '--limit', '6', '--methods', 'gradcam,liftcam', '--steps', '4', '--auc-limit', '2', '--json', json]);
  assert.match(out, /\| gradcam \|/); assert.match(out, /\| liftcam \|/);
  const r = JSON.parse(readFileSync(json, 'utf8'));
  assert.is(r.scenes, 6); assert.is(r.aucScenes, 2);
  for (const m of ['gradcam', 'liftcam']) {
    const s = r.methods[m];
    for (const k of ['deletion', 'insertion', 'pointing', 'energy']) assert.ok(s[k] >= 0 && s[k] <= 1, `${m} ${k} ${s[k]}`);
    assert.ok(s.avgDrop >= 0 && s.avgDrop <= 100 && s.increase >= 0 && s.increase <= 100, `${m} drop ${s.avgDrop} increase ${s.increase}`);
  }
  const acc = ok(['eval', '--model', 'weights/resnet.onnx', '--data', 'data/scenes', '--limit', '6', '--accuracy']);
  const pct = Number(/top-1 accuracy ([\d.]+)%/.exec(acc)![1]);
  assert.ok(Math.abs(pct / 100 - r.accuracy) < 1e-9, `--accuracy ${pct}% vs eval ${r.accuracy}`);
  fails(['eval', '--model', 'weights/resnet.onnx', '--data', tmp], 1, /boxes\.json/);
});

test.run();
