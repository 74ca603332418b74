// The demo page: an image (dropped, picked, or a sample scene), a model (bundled in weights/, a test fixture, or any
// .onnx file), every fast method's map side by side under one colormap and opacity, the top-5 classes (click one to
// explain it), and the perturbation methods with a progress bar and cancel. Served by tools/serve.mjs, which also
// answers index.json (what models and scenes exist); without it (a plain static host) the file pickers and the
// built-in scenes still work. window.camgpuDemo exposes the numbers to tests/browser.test.ts.
import { COLORMAPS, CancelledError, Explainer, FAST_METHODS, browserGpu, imagePixels, imageToTensor, loadModel, mapToImageData } from '../src/index.js';
import type { Colormap, Explanation, Gpu, Method, MethodResult, Model, TensorOptions } from '../src/index.js';

interface Entry { id: string; name: string; url: string; bytes?: number; meta: string | null }
interface Scene { id: string; name: string; url?: string; draw?: (g: OffscreenCanvasRenderingContext2D, n: number) => void }
interface Index { models: Entry[]; fixtures: Entry[]; scenes: Scene[]; boxes: unknown }
/** weights/<name>.json: the model's input (3,H,W), normalisation, class labels and CAM layer; optional resize for center-crop. */
interface Sidecar { input?: number[]; mean?: number[]; std?: number[]; labels?: string[]; layer?: string; resize?: number; fit?: TensorOptions['fit'] }
interface Box { x0: number; y0: number; x1: number; y1: number; label?: string }
type Perturb = 'scorecam' | 'ablationcam' | 'rise';

const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }, UNIT = { mean: [0, 0, 0], std: [1, 1, 1] };
const PERTURB: Perturb[] = ['scorecam', 'ablationcam', 'rise'];
const NAMES: Record<string, string> = { gradcam: 'Grad-CAM', 'gradcam-neg': 'Grad-CAM, counterfactual', 'gradcam++': 'Grad-CAM++', xgradcam: 'XGrad-CAM',
  liftcam: 'LIFT-CAM', layercam: 'LayerCAM', hirescam: 'HiResCAM', eigencam: 'Eigen-CAM', saliency: 'Saliency', guided: 'Guided backprop',
  'guided-gradcam': 'Guided Grad-CAM', deeplift: 'DeepLIFT', scorecam: 'Score-CAM', ablationcam: 'Ablation-CAM', rise: 'RISE' };
/** The timed pass of explain() (Explanation.timings) each fast method's map comes from; the rest share 'gradient pass'. */
const PASS: Partial<Record<Method, string[]>> = { eigencam: ['gradient pass', 'remap'], guided: ['guided'], 'guided-gradcam': ['guided', 'gradient pass'], deeplift: ['deeplift'] };
const CARD = 192, INPUT = 256; // display sizes (longer side, px)

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const el = {
  status: $('status'), adapter: $('adapter'), drop: $('drop'), imageFile: $<HTMLInputElement>('imageFile'), scenes: $('scenes'),
  model: $<HTMLSelectElement>('model'), modelFile: $<HTMLInputElement>('modelFile'), norm: $<HTMLSelectElement>('norm'), modelInfo: $('modelInfo'),
  cmap: $<HTMLSelectElement>('cmap'), alpha: $<HTMLInputElement>('alpha'), alphaOut: $('alphaOut'), top5: $('top5'),
  pmethod: $<HTMLSelectElement>('pmethod'), riseN: $('riseN'), riseCount: $<HTMLSelectElement>('riseCount'), prun: $<HTMLButtonElement>('prun'),
  pcancel: $<HTMLButtonElement>('pcancel'), pbar: $<HTMLProgressElement>('pbar'), ptext: $('ptext'), timings: $('timings'),
  input: $<HTMLCanvasElement>('input'), inputCaption: $('inputCaption'), grid: $('grid'),
};

const S = {
  gpu: null as Gpu | null,
  index: { models: [], fixtures: [], scenes: [], boxes: null } as Index,
  modelName: '', model: null as Model | null, explainer: null as Explainer | null, side: {} as Sidecar,
  image: null as ImageBitmap | null, imageName: '', boxes: [] as Box[],
  target: 'top1' as 'top1' | number,
  tensor: null as Float32Array | null, fast: null as Explanation | null, extra: {} as Record<string, number>,
  perturb: new Map<Perturb, { r: MethodResult; ms: number; target: number }>(),
  abort: null as AbortController | null,
};

// --- one explain() at a time: plans are reused, and two runs of one plan must not interleave
let queue: Promise<unknown> = Promise.resolve();
function serial<T>(f: () => Promise<T>): Promise<T> { const p = queue.then(f); queue = p.catch(() => undefined); return p; }

function status(text: string, error = false) { el.status.textContent = text; el.status.classList.toggle('error', error); }
function fail(e: unknown) {
  const msg = e instanceof Error ? e.message : String(e);
  console.error(e); status(`error: ${msg}`, true); api.status = 'error'; api.error = msg;
}
const ms = (v: number) => (v < 10 ? v.toFixed(2) : v.toFixed(1));
const label = (c: number) => S.side.labels?.[c] ?? `class ${c}`;

// ------------------------------------------------------------------------------------------- models
function tensorOptions(size?: [number, number]): TensorOptions {
  const [, H, W] = S.model!.inputShape, side = S.side;
  const norm = el.norm.value === 'imagenet' ? IMAGENET : el.norm.value === 'unit' ? UNIT : { mean: side.mean ?? UNIT.mean, std: side.std ?? UNIT.std };
  const sz = size ?? [H, W];
  return { size: sz, ...norm, fit: side.fit ?? (side.resize ? 'center-crop' : 'stretch'), resize: side.resize && (side.resize * sz[0]) / H };
}

async function fetchJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`cannot fetch ${url}: HTTP ${r.status}`);
  return r.json() as Promise<T>;
}

/** Loads a model (an index entry or a picked file) and explains the current image with it. */
async function selectModel(source: Entry | File) {
  S.abort?.abort();
  const name = source instanceof File ? source.name : source.name;
  await serial(async () => {
    api.status = 'loading'; status(`loading ${name}…`);
    S.explainer?.destroy(); S.model?.destroy();
    S.model = S.explainer = null; S.fast = null; S.perturb.clear(); S.target = 'top1';
    const t0 = performance.now();
    const side: Sidecar = source instanceof File ? {} : source.meta ? await fetchJson<Sidecar>(source.meta) : source.id.startsWith('fixtures/') ? { ...UNIT } : {};
    const model = await loadModel(S.gpu!, source instanceof File ? source : source.url, name);
    const [C, H, W] = model.inputShape;
    if (side.input && side.input.join() !== model.inputShape.join()) console.warn(`${name}: sidecar input ${side.input} differs from the model's ${model.inputShape}`);
    if (C !== 3) throw new Error(`${name}: the input has ${C} channels; the demo feeds RGB images (3 channels)`);
    S.model = model; S.explainer = new Explainer(model); S.side = side; S.modelName = name;
    // a model with no sidecar: ImageNet statistics for ImageNet-sized inputs, else [0,1]
    el.norm.value = source instanceof File ? (H >= 128 ? 'imagenet' : 'unit') : 'model';
    S.extra = { 'model load + pipelines': performance.now() - t0 };
    el.modelInfo.textContent = `${name}: input ${C}x${H}x${W}, ${model.numClasses} classes, ${model.graph.nodes.length} nodes${side.labels ? '' : ', no labels'}`;
    api.model = name;
  });
  await explainFast();
}

// ------------------------------------------------------------------------------------------- images
const BUILTIN: Scene[] = [
  { id: 'builtin:shapes', name: 'shapes (built in)', draw: (g, n) => {
    const sky = g.createLinearGradient(0, 0, 0, n); sky.addColorStop(0, '#8ec5ff'); sky.addColorStop(1, '#e8f4ff');
    g.fillStyle = sky; g.fillRect(0, 0, n, n); g.fillStyle = '#5a9e4b'; g.fillRect(0, n * 0.72, n, n * 0.28);
    g.fillStyle = '#d83a2e'; g.beginPath(); g.arc(n * 0.3, n * 0.45, n * 0.16, 0, 2 * Math.PI); g.fill();
    g.fillStyle = '#f2c230'; g.fillRect(n * 0.58, n * 0.4, n * 0.26, n * 0.26);
  } },
  { id: 'builtin:rings', name: 'rings (built in)', draw: (g, n) => {
    g.fillStyle = '#202733'; g.fillRect(0, 0, n, n);
    for (let i = 6; i > 0; i--) { g.fillStyle = i % 2 ? '#f0f0f0' : '#3060d0'; g.beginPath(); g.arc(n * 0.62, n * 0.58, (n * 0.33 * i) / 6, 0, 2 * Math.PI); g.fill(); }
    g.fillStyle = '#e0632b'; g.fillRect(n * 0.08, n * 0.1, n * 0.22, n * 0.22);
  } },
];

async function sceneBitmap(s: Scene): Promise<ImageBitmap> {
  if (s.draw) { const c = new OffscreenCanvas(224, 224); s.draw(c.getContext('2d')!, 224); return c.transferToImageBitmap(); }
  const r = await fetch(s.url!);
  if (!r.ok) throw new Error(`cannot fetch scene ${s.url}: HTTP ${r.status}`);
  return createImageBitmap(await r.blob());
}

/** Boxes of a scene from data/scenes/boxes.json ([{ file, label, boxes: [[x0, y0, x1, y1], ...] }], scene pixels; see
 *  tools/make_scenes.py), read leniently: also { file: entry } maps, and boxes as { box | bbox: [...], label }. */
function boxesFor(id: string): Box[] {
  const b = S.index.boxes as unknown;
  if (!b || typeof b !== 'object') return [];
  const keys = [id, `${id}.png`, `${id}.jpg`];
  const entry = (Array.isArray(b) ? (b as Record<string, unknown>[]).find((e) => keys.includes(String(e?.file ?? e?.image ?? e?.name)))
    : keys.map((k) => (b as Record<string, unknown>)[k]).find((v) => v !== undefined)) as Record<string, unknown> | unknown[] | undefined;
  const list = Array.isArray(entry) ? entry : entry?.boxes, label = Array.isArray(entry) ? undefined : entry?.label;
  if (!Array.isArray(list)) return [];
  return list.flatMap((e): Box[] => {
    const o = e as Record<string, unknown>, v = (Array.isArray(e) ? e : o.box ?? o.bbox) as number[] | undefined;
    const l = (Array.isArray(e) ? label : o.label ?? label) as string | undefined;
    return Array.isArray(v) && v.length === 4 && v.every(Number.isFinite) ? [{ x0: v[0], y0: v[1], x1: v[2], y1: v[3], label: l }] : [];
  });
}

async function selectImage(img: ImageBitmap, name: string, boxes: Box[] = []) {
  S.abort?.abort();
  S.image?.close(); S.image = img; S.imageName = name; S.boxes = boxes; S.perturb.clear(); S.target = 'top1';
  el.scenes.querySelectorAll('button').forEach((b) => b.classList.toggle('active', b.dataset.id === name));
  api.scene = name;
  if (S.model) await explainFast(); else render();
}

// ------------------------------------------------------------------------------------------- explaining
async function explainFast() {
  if (!S.model || !S.image) return;
  await serial(async () => {
    api.status = 'explaining'; status('explaining…');
    const t0 = performance.now(), x = imageToTensor(S.image!, tensorOptions()), t1 = performance.now();
    const r = await S.explainer!.explain(x, { methods: 'fast', targets: S.target === 'top1' ? 'top1' : [S.target], layer: S.side.layer });
    S.tensor = x; S.fast = r; S.extra['image → tensor'] = t1 - t0;
    const t2 = performance.now(); render(); S.extra.render = performance.now() - t2;
    renderTimings();
    const im = r.images[0];
    status(`${S.modelName} on ${S.imageName}: ${label(im.target)} (${(100 * im.probs[im.target]).toFixed(1)}%), ${ms(r.timings.total)} ms`);
    api.runs++; api.status = 'done';
  });
}

async function runPerturbation(method: Perturb, o: { n?: number; cancelAfter?: number } = {}) {
  if (!S.fast || !S.tensor || !S.explainer) throw new Error('explain an image first');
  const ac = new AbortController(); S.abort = ac;
  el.pmethod.value = method; el.riseN.hidden = method !== 'rise';
  el.prun.disabled = true; el.pcancel.disabled = false; el.pbar.value = 0; el.ptext.textContent = `${NAMES[method]}: waiting…`;
  let calls = 0;
  try {
    return await serial(async () => {
      const target = S.fast!.images[0].target, x = S.tensor!, t0 = performance.now();
      try {
        const r = await S.explainer!.explain(x, { methods: [method], targets: [target], layer: S.side.layer, rise: { n: o.n ?? Number(el.riseCount.value) },
          signal: ac.signal, onProgress: (done, total, what) => {
            if (what === 'images') return;
            el.pbar.value = done / total;
            el.ptext.textContent = `${NAMES[method]}: ${done} / ${total} ${what === 'rise' ? 'masks' : 'channels'}`;
            if (o.cancelAfter !== undefined && ++calls >= o.cancelAfter) ac.abort();
          } });
        const t = performance.now() - t0, res = r.images[0].methods[method]!;
        S.perturb.set(method, { r: res, ms: t, target }); render(); renderTimings();
        el.ptext.textContent = `${NAMES[method]} for ${label(target)}: ${ms(t)} ms`;
        return { status: 'done' as const, ms: t, target, raw: Array.from(res.raw), rawShape: res.rawShape, timings: r.timings };
      } catch (e) {
        if (!(e instanceof CancelledError)) throw e;
        el.pbar.value = 0; el.ptext.textContent = `${NAMES[method]}: ${e.message}`;
        return { status: 'cancelled' as const, message: e.message, ms: performance.now() - t0 };
      }
    });
  } finally {
    if (S.abort === ac) S.abort = null;
    el.prun.disabled = false; el.pcancel.disabled = true;
  }
}

/** Plain JSON of an explanation (numbers as arrays) for the test. */
function toJson(r: Explanation) {
  const im = r.images[0];
  return {
    layer: r.layer, layerShape: r.layerShape, inputShape: r.inputShape, target: im.target, top5: im.topk, logits: Array.from(im.logits), timings: r.timings,
    raw: Object.fromEntries(Object.entries(im.methods).map(([m, v]) => [m, Array.from(v!.raw)])),
    rawShape: Object.fromEntries(Object.entries(im.methods).map(([m, v]) => [m, v!.rawShape])),
  };
}

// ------------------------------------------------------------------------------------------- drawing
const cards = new Map<Method, { fig: HTMLElement; canvas: HTMLCanvasElement; time: HTMLElement }>();
function card(m: Method) {
  let c = cards.get(m);
  if (!c) {
    const fig = document.createElement('figure'), canvas = document.createElement('canvas'), cap = document.createElement('figcaption');
    const name = document.createElement('span'), time = document.createElement('span');
    name.textContent = NAMES[m] ?? m; time.className = 't'; cap.append(name, time); fig.append(canvas, cap); fig.dataset.method = m;
    if ((PERTURB as string[]).includes(m)) fig.addEventListener('click', () => { el.pmethod.value = m; el.pmethod.dispatchEvent(new Event('change')); });
    el.grid.append(fig); c = { fig, canvas, time }; cards.set(m, c);
  }
  return c;
}

/** Display size (rows, cols) with the longer side `n`, in the model input's aspect. */
function fitSize(n: number): [number, number] {
  const [, H, W] = S.model!.inputShape;
  return H >= W ? [n, Math.max(1, Math.round((n * W) / H))] : [Math.max(1, Math.round((n * H) / W)), n];
}

function render() {
  if (!S.image) return;
  if (!S.model) { // image only: show it as is
    const g = el.input.getContext('2d')!; g.clearRect(0, 0, el.input.width, el.input.height); g.drawImage(S.image, 0, 0, el.input.width, el.input.height); return;
  }
  const cmap = el.cmap.value as Colormap, alpha = Number(el.alpha.value), [, H, W] = S.model.inputShape;
  // input at display size, with the scene's boxes mapped through the same resize / crop
  const [ih, iw] = fitSize(INPUT), base = imagePixels(S.image, tensorOptions([ih, iw]));
  Object.assign(el.input, { width: iw, height: ih });
  const g = el.input.getContext('2d')!; g.putImageData(base, 0, 0);
  if (S.boxes.length) {
    const o = tensorOptions([ih, iw]), fitW = o.fit === 'center-crop';
    const s = fitW ? (o.resize ? o.resize / Math.min(S.image.width, S.image.height) : Math.max(iw / S.image.width, ih / S.image.height)) : 0;
    const tx = (x: number) => (fitW ? (x - S.image!.width / 2) * s + iw / 2 : (x * iw) / S.image!.width);
    const ty = (y: number) => (fitW ? (y - S.image!.height / 2) * s + ih / 2 : (y * ih) / S.image!.height);
    g.lineWidth = 2; g.setLineDash([5, 3]); g.strokeStyle = '#00e5ff';
    for (const b of S.boxes) g.strokeRect(tx(b.x0), ty(b.y0), tx(b.x1) - tx(b.x0), ty(b.y1) - ty(b.y0));
  }
  const truth = S.boxes[0]?.label ? `: ${S.boxes[0].label}${S.boxes.length > 1 ? ` x${S.boxes.length}` : ''}` : '';
  el.inputCaption.textContent = `${S.imageName}${truth} (${S.image.width}x${S.image.height} → ${W}x${H})`;

  const [ch, cw] = fitSize(CARD), cardBase = imagePixels(S.image, tensorOptions([ch, cw]));
  const im = S.fast?.images[0];
  for (const m of [...FAST_METHODS, ...PERTURB]) {
    const c = card(m), p = S.perturb.get(m as Perturb), res = p?.r ?? im?.methods[m];
    Object.assign(c.canvas, { width: cw, height: ch });
    c.canvas.getContext('2d')!.putImageData(res ? mapToImageData(res.map, W, H, cmap, { alpha, image: cardBase }) : cardBase, 0, 0);
    c.fig.classList.toggle('pending', !res);
    if (p) c.time.textContent = `${ms(p.ms)} ms`;
    else if (res && S.fast) {
      const passes = PASS[m] ?? ['gradient pass'];
      c.time.textContent = `${passes.join('+')} ${ms(passes.reduce((s, k) => s + (S.fast!.timings[k] ?? 0), 0))} ms`;
      c.time.title = passes.length > 1 || !PASS[m] ? 'the shared pass(es) this map comes from' : '';
    } else c.time.textContent = (PERTURB as Method[]).includes(m) ? 'not run: click, then Run' : '';
  }
  if (im) {
    el.top5.replaceChildren(...im.topk.map((t) => {
      const li = document.createElement('li'), p = document.createElement('span'), bar = document.createElement('span');
      p.className = 'p'; p.textContent = `${(100 * t.prob).toFixed(1)}%`; bar.className = 'bar'; bar.style.width = `${(100 * t.prob).toFixed(1)}%`;
      li.append(p, label(t.class), bar); li.classList.toggle('target', t.class === im.target); li.dataset.cls = String(t.class);
      li.title = `logit ${t.logit.toFixed(3)}: click to explain this class`;
      li.addEventListener('click', () => { S.target = t.class; S.perturb.clear(); explainFast().catch(fail); });
      return li;
    }));
  }
}

function renderTimings() {
  const rows: [string, number][] = Object.entries(S.extra);
  if (S.fast) for (const [k, v] of Object.entries(S.fast.timings)) rows.push([k === 'total' ? 'explain() total' : k, v]);
  for (const [m, p] of S.perturb) rows.push([`${NAMES[m]} (total)`, p.ms]);
  el.timings.replaceChildren(...rows.map(([k, v]) => { const tr = document.createElement('tr'); tr.innerHTML = `<td></td><td>${ms(v)}</td>`; tr.cells[0].textContent = k; return tr; }));
}

// ------------------------------------------------------------------------------------------- wiring
const api = {
  status: 'init' as 'init' | 'loading' | 'explaining' | 'done' | 'idle' | 'error', error: '', adapter: '', model: '', scene: '', runs: 0,
  ready: null as Promise<void> | null,
  /** The last UI explanation with the exact tensor it was computed from. */
  result: () => (S.fast && S.tensor ? { ...toJson(S.fast), tensor: Array.from(S.tensor), model: S.modelName, scene: S.imageName } : null),
  /** Explains a given normalised (1,3,H,W) tensor with the current model (all fast methods unless told). */
  explainTensor: (x: ArrayLike<number>, o: { methods?: Method[]; targets?: 'top1' | number[] } = {}) => serial(async () => {
    if (!S.explainer) throw new Error('no model loaded');
    return toJson(await S.explainer.explain(Float32Array.from(x), { methods: o.methods ?? 'fast', targets: o.targets ?? 'top1', layer: S.side.layer }));
  }),
  runPerturbation, cancel: () => S.abort?.abort(),
  /** Destroys the page's GPUDevice (as a driver reset would lose it), between calls or, with `during`, inside a Score-CAM
   *  explain() at its first batch; reports that call's error and the Gpu's generation (devices replaced so far). */
  loseDevice: (during = false) => serial(async () => {
    if (!S.explainer || !S.tensor) throw new Error('explain an image first');
    const gpu = S.gpu!;
    if (!during) { const dev = gpu.device; dev.destroy(); await dev.lost; return { error: '', name: '', generation: gpu.generation }; }
    let name = '', error = '', calls = 0;
    try {
      await S.explainer.explain(S.tensor, { methods: ['gradcam', 'scorecam'], batch: 4, onProgress: (_d, _t, what) => { if (what === 'scorecam' && !calls++) gpu.device.destroy(); } });
    } catch (e) { name = (e as Error).name; error = (e as Error).message; }
    return { error, name, generation: gpu.generation, calls };
  }),
  runsDone: () => api.runs,
};
(window as unknown as { camgpuDemo: typeof api }).camgpuDemo = api;

async function init() {
  const q = new URLSearchParams(location.search);
  el.cmap.replaceChildren(...COLORMAPS.map((c) => new Option(c, c)));
  el.cmap.value = COLORMAPS.includes(q.get('cmap') as Colormap) ? q.get('cmap')! : 'jet';
  if (q.get('alpha')) el.alpha.value = q.get('alpha')!;
  el.alphaOut.textContent = Number(el.alpha.value).toFixed(2);
  el.cmap.addEventListener('change', () => render());
  el.alpha.addEventListener('input', () => { el.alphaOut.textContent = Number(el.alpha.value).toFixed(2); render(); });
  el.norm.addEventListener('change', () => { S.perturb.clear(); explainFast().catch(fail); });
  el.pmethod.addEventListener('change', () => { el.riseN.hidden = el.pmethod.value !== 'rise'; });
  el.prun.addEventListener('click', () => { runPerturbation(el.pmethod.value as Perturb).catch(fail); });
  el.pcancel.addEventListener('click', () => S.abort?.abort());
  const openImage = async (f: File) => selectImage(await createImageBitmap(f), f.name);
  el.imageFile.addEventListener('change', () => { const f = el.imageFile.files?.[0]; if (f) openImage(f).catch(fail); });
  el.modelFile.addEventListener('change', () => { const f = el.modelFile.files?.[0]; if (f) { el.model.value = ''; selectModel(f).catch(fail); } });
  document.addEventListener('dragover', (e) => { e.preventDefault(); document.body.classList.add('dragging'); });
  document.addEventListener('dragleave', (e) => { if (!e.relatedTarget) document.body.classList.remove('dragging'); });
  document.addEventListener('drop', (e) => {
    e.preventDefault(); document.body.classList.remove('dragging');
    const f = e.dataTransfer?.files[0];
    if (f) (f.name.endsWith('.onnx') ? selectModel(f) : openImage(f)).catch(fail);
  });

  S.gpu = await browserGpu();
  api.adapter = S.gpu.adapterInfo; el.adapter.textContent = `adapter: ${S.gpu.adapterInfo}`;

  // what the server has; a static host has no index.json: pickers and built-in scenes only
  S.index = await fetchJson<Index>('index.json').catch(() => S.index);
  const bundled = S.index.models.length > 0;
  const models = bundled ? S.index.models : S.index.fixtures;
  const wanted = q.get('model');
  const extra = wanted && !models.some((m) => m.id === wanted) ? [...S.index.models, ...S.index.fixtures].find((m) => m.id === wanted) : undefined;
  const list = extra ? [...models, extra] : models;
  el.model.replaceChildren(new Option(list.length ? 'choose a model' : 'no bundled models: load a file', ''), ...list.map((m) => new Option(m.name, m.id)));
  el.model.addEventListener('change', () => { const m = list.find((x) => x.id === el.model.value); if (m) selectModel(m).catch(fail); });

  const scenes = [...S.index.scenes, ...BUILTIN];
  for (const s of scenes) {
    const b = document.createElement('button'), truth = boxesFor(s.id)[0]?.label;
    b.dataset.id = s.id; b.title = truth ? `${s.name}: ${truth}` : s.name;
    if (s.url) { const i = new Image(); i.loading = 'lazy'; i.src = s.url; i.alt = s.name; b.append(i); }
    else { const c = document.createElement('canvas'); c.width = c.height = 52; const o = new OffscreenCanvas(52, 52); s.draw!(o.getContext('2d')!, 52); c.getContext('2d')!.drawImage(o, 0, 0); b.append(c); }
    b.addEventListener('click', () => { sceneBitmap(s).then((img) => selectImage(img, s.id, boxesFor(s.id))).catch(fail); });
    el.scenes.append(b);
  }
  const scene = scenes.find((s) => s.id === q.get('scene')) ?? scenes[0];
  await selectImage(await sceneBitmap(scene), scene.id, boxesFor(scene.id));

  const model = list.find((m) => m.id === wanted) ?? (bundled ? list[0] : list.find((m) => m.id === 'fixtures/resnet') ?? list[0]);
  if (!model) { api.status = 'idle'; status('no bundled model: load an .onnx file'); return; }
  el.model.value = model.id;
  await selectModel(model);
}

api.ready = init().catch(fail);
