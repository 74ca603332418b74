// The HTML reports as a reader gets them: `camgpu eval --report` and `camgpu explain --report` run as a user runs them
// (node dist/cli.js in a child process; build first), then each report.html is opened in headless Debian Chromium,
// served from 127.0.0.1 with every other request blocked (the pages must need no network). The numbers on the pages
// are read back from the DOM and checked against the eval JSON (--json, eval.json) and summary.json; the plots'
// polylines are mapped back to the curves; the pointing game is recomputed here from each map's maximum and the boxes
// of boxes.json; the mean curves' AUC must equal the mean of per-scene AUCs; the explain page's images must be the
// overlay PNGs the CLI wrote. Screenshots: out/report/eval.png, out/report/explain.png. No Chromium is a failure.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { auc } from '../src/metrics.js';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';

const test = suite('report');
const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'];
const tmp = mkdtempSync(join(tmpdir(), 'camgpu-report-'));
const data = join(tmp, 'scenes'), evalDir = join(tmp, 'eval'), explainOut = join(tmp, 'explain'), explainDir = join(tmp, 'explain-report');
const METHODS = ['gradcam', 'gradcam++', 'liftcam', 'eigencam'];
const SHOTS = 'out/report';

interface Scene { file: string; class: number; boxes: number[][]; multi: boolean }
const all: Scene[] = JSON.parse(readFileSync('data/scenes/boxes.json', 'utf8'));
// 5 single- and 3 multi-instance scenes of the committed sample, referenced from a folder of their own
const picked = [...all.filter((s) => !s.multi).slice(0, 5), ...all.filter((s) => s.multi).slice(0, 3)];
mkdirSync(data, { recursive: true });
writeFileSync(join(data, 'boxes.json'), JSON.stringify(picked.map((s) => ({ ...s, file: relative(data, resolve('data/scenes', s.file)) }))));

function cli(args: string[]) {
  const r = spawnSync(process.execPath, ['dist/cli.js', ...args], { encoding: 'utf8', timeout: 600_000 });
  if (r.error) throw r.error;
  assert.is(r.status, 0, `camgpu ${args.join(' ')}: ${r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning: ')).join(' | ')}`);
  return r.stdout;
}

let ctx: BrowserContext | null = null, server: Server | null = null, origin = '', profile = '';
const blocked: string[] = [], errors: string[] = [];
/** Serves tmp/ on 127.0.0.1 (a free port). */
function serve(): Promise<string> {
  server = createServer((req, res) => {
    const file = join(tmp, decodeURIComponent(new URL(req.url!, 'http://x').pathname));
    if (!file.startsWith(tmp) || !existsSync(file)) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(readFileSync(file));
  });
  return new Promise((ok) => server!.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${(server!.address() as { port: number }).port}`)));
}
async function open(path: string): Promise<Page> {
  if (!ctx) {
    if (!existsSync(CHROMIUM)) assert.unreachable(`Debian's chromium is not installed at ${CHROMIUM}: run \`bash tools/setup.sh\``);
    origin = await serve();
    profile = mkdtempSync(join(tmpdir(), 'camgpu-report-chromium-'));
    ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, headless: true, timeout: 30_000, viewport: { width: 1400, height: 1000 } });
    await ctx.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
      blocked.push(url); return route.abort();
    });
  }
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push(`${path}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${path}: ${m.text()}`); });
  await page.goto(`${origin}/${path}`);
  return page;
}

/** Mean and largest absolute difference of the RGB channels of two RGBA images of one size. */
function pixelError(a: Uint8Array, b: Uint8Array) {
  let sum = 0, max = 0;
  for (let i = 0; i < a.length; i++) { if (i % 4 === 3) continue; const e = Math.abs(a[i] - b[i]); sum += e; max = Math.max(max, e); }
  return { mean: sum / (a.length * 0.75), max };
}

const close = (a: number, b: number, tol = 1e-9) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

test('camgpu eval --report: eval.json agrees with --json; curves, per-scene hits and the pointing game are consistent', () => {
  const out = cli(['eval', '--model', 'weights/resnet.onnx', '--data', data, '--methods', METHODS.join(','), '--steps', '8', '--auc-limit', '4',
    '--gallery', '6', '--json', join(tmp, 'eval-cli.json'), '--report', evalDir]);
  assert.match(out, /report: .*report\.html/);
  const j = JSON.parse(readFileSync(join(evalDir, 'eval.json'), 'utf8')), cliJson = JSON.parse(readFileSync(join(tmp, 'eval-cli.json'), 'utf8'));
  assert.equal(j.methods, cliJson.methods, 'report numbers = --json numbers');
  assert.is(j.scenes, 8); assert.is(j.multi, 3); assert.is(j.perScene.length, 8);
  for (const m of METHODS) {
    for (const kind of ['deletion', 'insertion'] as const) {
      const c: number[] = j.curves[m][kind];
      assert.is(c.length, 8 + 1, `${m} ${kind}: steps + 1 points`);
      assert.ok(close(auc(c), j.methods[m][kind], 1e-6), `${m} ${kind}: AUC of the mean curve ${auc(c)} = mean AUC ${j.methods[m][kind]}`);
    }
    // the pointing game recomputed from the recorded maximum and the boxes of boxes.json (15 px tolerance)
    const hits = picked.map((s, i) => {
      const [px, py] = j.perScene[i].peak[m];
      const hit = s.boxes.some(([x0, y0, x1, y1]) => Math.hypot(Math.max(x0 - px, 0, px - (x1 - 1)), Math.max(y0 - py, 0, py - (y1 - 1))) <= 15);
      assert.is(j.perScene[i].hit[m], hit, `${m} ${s.file}: hit`);
      return hit ? 1 : 0;
    });
    assert.ok(close(hits.reduce<number>((a, b) => a + b, 0) / 8, j.methods[m].pointing), `${m}: pointing = share of hits`);
    assert.ok(close(j.perScene.reduce((a: number, s: { energy: Record<string, number> }) => a + s.energy[m], 0) / 8, j.methods[m].energy, 1e-6), `${m}: energy = mean of per-scene`);
  }
});

test('eval report.html in Chromium: table, sorting, plots, gallery with boxes and peaks, pointing game, settings; no network', async () => {
  const j = JSON.parse(readFileSync(join(evalDir, 'eval.json'), 'utf8'));
  const page = await open('eval/report.html');
  const table = await page.$$eval('#metrics tbody tr', (rows) => rows.map((r) => ({ method: (r as HTMLElement).dataset.method!,
    cells: Array.from(r.querySelectorAll('td[data-key]')).map((c) => ({ key: (c as HTMLElement).dataset.key!, value: Number((c as HTMLElement).dataset.value), text: c.textContent! })) })));
  assert.equal(table.map((r) => r.method), METHODS);
  const digits: Record<string, number> = { avgDrop: 1, increase: 1, msPerImage: 1 };
  for (const r of table) for (const c of r.cells) {
    const want = j.methods[r.method][c.key];
    if (want === null) { assert.ok(Number.isNaN(c.value) && c.text === '-', `${r.method} ${c.key}: no value`); continue; } // NaN in JSON
    assert.ok(close(c.value, want, 1e-12), `${r.method} ${c.key}: page ${c.value} vs eval.json ${want}`);
    assert.is(c.text, want.toFixed(digits[c.key] ?? 3), `${r.method} ${c.key} as shown`);
  }
  // sorting: deletion AUC ascending, then descending
  await page.click('#metrics th[data-key=deletion]');
  const order = () => page.$$eval('#metrics tbody tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.method!));
  const byDel = [...METHODS].sort((a, b) => j.methods[a].deletion - j.methods[b].deletion);
  assert.equal((await order()).map((m) => j.methods[m].deletion), byDel.map((m) => j.methods[m].deletion), 'ascending deletion AUC');
  await page.click('#metrics th[data-key=deletion]');
  assert.equal((await order()).map((m) => j.methods[m].deletion), byDel.reverse().map((m) => j.methods[m].deletion), 'descending');
  // plots: one polyline per method whose points map back to the mean curve (y = T + (1 - p) * ph)
  for (const kind of ['deletion', 'insertion']) {
    const lines = await page.$$eval(`#${kind}-plot polyline`, (ls) => ls.map((l) => ({ method: (l as SVGElement).dataset.method!, auc: Number((l as SVGElement).dataset.auc), points: l.getAttribute('points')! })));
    const frame = await page.$eval(`#${kind}-plot rect`, (r) => ({ y: Number(r.getAttribute('y')), h: Number(r.getAttribute('height')) }));
    assert.equal(lines.map((l) => l.method), METHODS, `${kind}: a curve per method`);
    for (const l of lines) {
      const ys = l.points.split(' ').map((p) => 1 - (Number(p.split(',')[1]) - frame.y) / frame.h);
      const want: number[] = j.curves[l.method][kind];
      assert.is(ys.length, want.length);
      ys.forEach((y, q) => assert.ok(Math.abs(y - want[q]) < 1e-3, `${kind} ${l.method} point ${q}: ${y} vs ${want[q]}`));
      assert.ok(close(l.auc, j.methods[l.method][kind], 1e-12));
    }
  }
  // gallery: 6 scenes, the image plus one tile per method, every ground-truth box drawn, the peak coloured by hit
  const gallery = await page.$$eval('.scene', (ss) => ss.map((s) => ({ index: Number((s as HTMLElement).dataset.index),
    tiles: Array.from(s.querySelectorAll('.tile')).map((t) => ({ method: (t as HTMLElement).dataset.method ?? null, rects: Array.from(t.querySelectorAll('rect.gt')).map((r) => ['x', 'y', 'width', 'height'].map((a) => Number(r.getAttribute(a)))),
      peak: t.querySelector('circle.peak') ? { cls: t.querySelector('circle.peak')!.getAttribute('class')!, x: Number(t.querySelector('circle.peak')!.getAttribute('cx')), y: Number(t.querySelector('circle.peak')!.getAttribute('cy')) } : null,
      loaded: (t.querySelector('img') as HTMLImageElement).naturalWidth })) })));
  assert.equal(gallery.map((g) => g.index), [0, 1, 2, 3, 4, 5]);
  for (const g of gallery) {
    const s = picked[g.index], ps = j.perScene[g.index];
    assert.equal(g.tiles.map((t) => t.method), [null, ...METHODS]);
    for (const t of g.tiles) {
      assert.is(t.loaded, 64, 'the embedded JPEG decodes (64 px)');
      assert.equal(t.rects, s.boxes.map(([x0, y0, x1, y1]) => [x0, y0, x1 - x0, y1 - y0]), `${s.file}: boxes`);
      if (!t.method) continue;
      assert.is(t.peak!.cls, `peak ${ps.hit[t.method] ? 'hit' : 'miss'}`);
      assert.equal([t.peak!.x - 0.5, t.peak!.y - 0.5], ps.peak[t.method]);
    }
  }
  // pointing-game table: a row per scene, hit/miss per method, totals
  const pg = await page.$$eval('#pointing tbody tr', (rows) => rows.map((r) => Array.from(r.querySelectorAll('td[data-method]')).map((c) => c.textContent)));
  assert.equal(pg, j.perScene.map((s: { hit: Record<string, boolean> }) => METHODS.map((m) => (s.hit[m] ? 'hit' : 'miss'))));
  const totals = await page.$$eval('#pointing tfoot td[data-method]', (cs) => cs.map((c) => Number((c as HTMLElement).dataset.value)));
  assert.equal(totals, METHODS.map((m) => Math.round(j.methods[m].pointing * 8)));
  // settings
  const settings = Object.fromEntries(await page.$$eval('#settings td[data-key]', (cs) => cs.map((c) => [(c as HTMLElement).dataset.key!, c.textContent!])));
  assert.is(settings.model, 'weights/resnet.onnx'); assert.is(settings.adapter, j.adapter);
  assert.is(settings.layer, `${j.layer} (${j.layerShape.join('x')})`);
  assert.match(settings['wall time'], /^\d+\.\d s$/);
  // the embedded data island is the eval.json
  assert.equal(JSON.parse(await page.$eval('#eval-data', (e) => e.textContent!)), j);
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: `${SHOTS}/eval.png`, fullPage: true });
  await page.close();
  assert.equal(blocked, [], 'no request leaves the page'); assert.equal(errors, [], 'no script error');
});

test('camgpu explain --report in Chromium: top-k and timings = summary.json, tiles = the overlay PNGs, click-to-compare', async () => {
  const files = ['data/scenes/multi_00047.png', `data/scenes/${picked[0].file}`], methods = ['gradcam', 'liftcam', 'eigencam'];
  cli(['explain', ...files, '--model', 'weights/resnet.onnx', '--methods', methods.join(','), '--class', 'top2', '--out', explainOut, '--report', explainDir]);
  const summary = JSON.parse(readFileSync(join(explainOut, 'summary.json'), 'utf8'));
  const page = await open('explain-report/report.html');
  const rows = await page.$$eval('.scene', (ss) => ss.map((s) => ({ name: (s as HTMLElement).dataset.name!, target: Number((s as HTMLElement).dataset.target),
    top: Array.from(s.querySelectorAll('table.topk tbody tr')).map((r) => ({ class: Number((r as HTMLElement).dataset.class), label: r.children[1].textContent, prob: Number((r.children[2] as HTMLElement).dataset.value), logit: Number((r.children[3] as HTMLElement).dataset.value) })),
    tiles: Array.from(s.querySelectorAll('.tile')).map((t) => ({ method: (t as HTMLElement).dataset.method!, src: (t.querySelector('img') as HTMLImageElement).src })) })));
  const want = summary.images.flatMap((im: { name: string; top: unknown[]; targets: { class: number; label: string; overlays: Record<string, string> }[] }) => im.targets.map((t) => ({ im, t })));
  assert.is(rows.length, 4, '2 images x top-2');
  rows.forEach((r, i) => {
    const { im, t } = want[i];
    assert.is(r.name, im.name); assert.is(r.target, t.class);
    assert.equal(r.top, im.top, `${r.name}: top-k classes, labels, probabilities, logits`);
    assert.equal(r.tiles.map((x) => x.method), ['image', ...methods]);
    // a tile is its overlay PNG as a JPEG (quality 90): within JPEG's error of that PNG, and no other method's overlay nearer
    const overlays = Object.fromEntries(methods.map((m) => [m, PNG.sync.read(readFileSync(t.overlays[m])).data]));
    for (const x of r.tiles.slice(1)) {
      assert.match(x.src, /^data:image\/jpeg;base64,/);
      const tile = jpeg.decode(Buffer.from(x.src.replace(/^data:image\/jpeg;base64,/, ''), 'base64'), { useTArray: true });
      assert.is(tile.width * tile.height * 4, overlays[x.method].length, `${r.name} ${x.method}: the overlay's size`);
      const d = Object.fromEntries(methods.map((m) => [m, pixelError(tile.data, overlays[m])]));
      assert.ok(d[x.method].mean < 4 && d[x.method].max < 64, `${r.name} ${x.method}: JPEG error vs ${t.overlays[x.method]}: mean ${d[x.method].mean}, max ${d[x.method].max}`);
      // (Grad-CAM's and LIFT-CAM's maps are close on this head, so only: no other overlay is nearer)
      for (const m of methods) assert.ok(d[x.method].mean <= d[m].mean, `${r.name} ${x.method}: nearer its own overlay than ${m}'s (${d[x.method].mean} vs ${d[m].mean})`);
    }
  });
  const timings = Object.fromEntries(await page.$$eval('#timings tbody tr', (rs) => rs.map((r) => [(r as HTMLElement).dataset.key!, Number((r.children[1] as HTMLElement).dataset.value)])));
  assert.equal(timings, summary.timings_ms);
  // click-to-compare: two tiles -> A and B shown large, labels, swipe slider moves the clip
  assert.ok(await page.$eval('#compare', (e) => (e as HTMLElement).hidden), 'hidden until a click');
  const a = page.locator('.scene[data-row="0"] .tile[data-method="gradcam"]'), b = page.locator('.scene[data-row="1"] .tile[data-method="liftcam"]');
  await a.click(); await b.click();
  const cmp = await page.evaluate(() => ({ hidden: (document.getElementById('compare') as HTMLElement).hidden, a: document.getElementById('label-a')!.textContent, b: document.getElementById('label-b')!.textContent,
    srcA: (document.querySelector('#compare .pair > figure img.cmp-a') as HTMLImageElement).src, srcB: (document.querySelector('#compare .pair > figure img.cmp-b') as HTMLImageElement).src,
    selA: document.querySelectorAll('.tile.sel-a').length, selB: document.querySelectorAll('.tile.sel-b').length }));
  assert.is(cmp.hidden, false);
  const tag = (i: number) => `${rows[i].name} (${want[i].t.label})`;
  assert.is(cmp.a, `${tag(1)}: liftcam`, 'the last click is A'); assert.is(cmp.b, `${tag(0)}: gradcam`);
  assert.is(cmp.srcA, rows[1].tiles[2].src); assert.is(cmp.srcB, rows[0].tiles[1].src);
  assert.is(cmp.selA, 1); assert.is(cmp.selB, 1);
  await page.$eval('#swipe-range', (e) => { (e as HTMLInputElement).value = '20'; e.dispatchEvent(new Event('input')); });
  assert.is(await page.$eval('#swipe-b', (e) => (e as HTMLElement).style.clipPath), 'inset(0px 0px 0px 20%)');
  mkdirSync(SHOTS, { recursive: true });
  await page.locator('.scene[data-row="1"]').scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${SHOTS}/explain.png` }); // the viewport: the sticky compare panel over the grid
  await page.close();
  assert.equal(blocked, [], 'no request leaves the page'); assert.equal(errors, [], 'no script error');
});

test.after(async () => {
  await ctx?.close().catch(() => undefined);
  server?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
});
test.run();
