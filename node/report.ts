// HTML reports of `camgpu eval --report DIR` and `camgpu explain --report DIR`: one self-contained report.html each
// (inline CSS, inline script, images as JPEG data: URIs, plots as hand-written inline SVG; no network, no framework).
//   eval:    run settings, the metrics table (sortable), mean deletion / insertion curves per method, the pointing
//            game per scene (hit / miss per method), a gallery of scenes with every method's map, the ground-truth
//            boxes and the map's maximum drawn on it. DIR/eval.json holds the same numbers (and the curves, per-scene
//            results) for other tools.
//   explain: run settings and timings, then per image and target the top-k classes and the grid of maps; clicking
//            two tiles compares them side by side and with a swipe slider.
// Every number on a page carries its full value in a data-value attribute, so tests (and readers) can check it.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { EvalResult, MethodScores } from './eval.js';
import jpeg from 'jpeg-js';
import { Rgb } from './image.js';
import { Colormap, lut, overlay } from './render.js';

const esc = (v: unknown) => String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
/** Tiles as JPEG (jpeg-js, quality 90, no chroma subsampling): a quarter of the PNG's bytes for smooth heat maps; the
 *  overlay PNGs of `explain --out` stay the exact pictures. */
export const JPEG_QUALITY = 90;
function dataUri(img: Rgb) {
  const rgba = new Uint8Array(img.width * img.height * 4);
  for (let p = 0; p < img.width * img.height; p++) { rgba.set(img.data.subarray(3 * p, 3 * p + 3), 4 * p); rgba[4 * p + 3] = 255; }
  return `data:image/jpeg;base64,${Buffer.from(jpeg.encode({ width: img.width, height: img.height, data: rgba }, JPEG_QUALITY).data).toString('base64')}`;
}
/** A JSON island for the page's script (and for readers); '<' escaped so no text closes the script element. */
const island = (id: string, v: unknown) => `<script type="application/json" id="${id}">${JSON.stringify(v).replace(/</g, '\\u003c')}</script>`;
/** Distinct line colours (Tableau 10, then darker variants) by method index. */
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac',
  '#1f4e79', '#a0522d', '#7b1f1f', '#2f6f6a', '#2e5e28', '#8a7300'];
const colour = (i: number) => PALETTE[i % PALETTE.length];

const CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.4em; margin: 0 0 .3em; } h2 { font-size: 1.15em; margin: 1.6em 0 .5em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; background: #fff; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child, table.kv td { text-align: left; } th { background: #f0f0f0; }
table.sortable th { cursor: pointer; user-select: none; } th[aria-sort=ascending]::after { content: ' \\25B2'; } th[aria-sort=descending]::after { content: ' \\25BC'; }
td.best { font-weight: bold; } td.hit { color: #1a7f37; } td.miss { color: #c62828; background: #fff3f3; }
.plots { display: flex; flex-wrap: wrap; gap: 1.5em; } svg.plot { background: #fff; border: 1px solid #ddd; }
svg.plot text { font: 11px system-ui, sans-serif; } .legend { font-size: 12px; }
.scene { margin: .6em 0 1.2em; } .tiles { display: flex; flex-wrap: wrap; gap: 6px; }
.tile { position: relative; margin: 0; cursor: pointer; } .tile img, .tile svg.boxes { width: var(--tile, 128px); height: var(--tile, 128px); display: block; image-rendering: pixelated; }
.tile svg.boxes { position: absolute; left: 0; top: 0; pointer-events: none; } .tile figcaption { font-size: 12px; text-align: center; }
.tile.sel-a { outline: 3px solid #4e79a7; } .tile.sel-b { outline: 3px solid #f28e2b; }
.scroll { max-height: 28em; overflow: auto; display: inline-block; } .muted { color: #777; }
#compare { position: sticky; top: 0; background: #fafafa; padding: .5em 0; z-index: 2; border-bottom: 1px solid #ddd; }
#compare .pair { display: flex; gap: 1em; align-items: flex-start; } #compare img { width: 256px; height: 256px; image-rendering: pixelated; display: block; }
#swipe { position: relative; width: 256px; height: 256px; } #swipe img { position: absolute; left: 0; top: 0; } #swipe-b { clip-path: inset(0 0 0 50%); }
`;

/** Click a header to sort by its column (numbers by data-value; NaN last); click again to reverse. */
const SORT_JS = `
for (const table of document.querySelectorAll('table.sortable')) {
  const heads = [...table.tHead.rows[0].cells];
  heads.forEach((th, col) => th.addEventListener('click', () => {
    const dir = th.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
    heads.forEach((h) => h.removeAttribute('aria-sort')); th.setAttribute('aria-sort', dir);
    const key = (tr) => { const c = tr.cells[col], v = c.dataset.value; return v === undefined ? c.textContent : Number(v); };
    const rows = [...table.tBodies[0].rows].sort((a, b) => {
      const x = key(a), y = key(b);
      if (typeof x === 'string') return (dir === 'ascending' ? 1 : -1) * x.localeCompare(y);
      if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) - Number.isNaN(y);
      return dir === 'ascending' ? x - y : y - x;
    });
    table.tBodies[0].append(...rows);
  }));
}`;

/** Click a tile: it becomes A and the previous A becomes B; both are shown large, side by side and in a swipe view. */
const COMPARE_JS = `
const sel = [];
const show = () => {
  document.querySelectorAll('.tile').forEach((t) => t.classList.remove('sel-a', 'sel-b'));
  sel[0]?.classList.add('sel-a'); sel[1]?.classList.add('sel-b');
  for (const [i, id] of [[0, 'a'], [1, 'b']]) {
    const t = sel[i], src = t ? t.querySelector('img').src : '';
    for (const img of document.querySelectorAll('.cmp-' + id)) img.src = src;
    document.getElementById('label-' + id).textContent = t ? t.dataset.label : '(click a tile)';
  }
  document.getElementById('compare').hidden = !sel.length;
};
document.querySelectorAll('.tile').forEach((t) => t.addEventListener('click', () => {
  if (sel[0] === t) return; sel.unshift(t); sel.length = Math.min(sel.length, 2); show();
}));
document.getElementById('swipe-range').addEventListener('input', (e) => {
  document.getElementById('swipe-b').style.clipPath = 'inset(0 0 0 ' + e.target.value + '%)';
});`;

function page(title: string, body: string, script: string): string {
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<style>${CSS}</style></head>
<body>
${body}
<script>${script}</script>
</body></html>
`;
}

/** A two-column table of settings. */
const kv = (id: string, rows: [string, unknown][]) =>
  `<table class="kv" id="${id}">${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td data-key="${esc(k)}">${esc(v)}</td></tr>`).join('')}</table>`;

// ============================================================================================== eval report

export interface EvalReportInfo {
  model: string; data: string; adapter: string; tuned: string; labels: string[];
  versions: Record<string, string>; options: Record<string, unknown>; colormap?: Colormap;
  /** how it ran: one process, a queue run's workers, merged shards */ run?: string;
}

/** The metrics columns: key, heading, digits shown, which direction is better. */
const COLUMNS: { key: keyof MethodScores; head: string; digits: number; better: 'low' | 'high' | null }[] = [
  { key: 'avgDrop', head: 'Avg Drop %', digits: 1, better: 'low' },
  { key: 'increase', head: 'Increase %', digits: 1, better: 'high' },
  { key: 'deletion', head: 'deletion AUC', digits: 3, better: 'low' },
  { key: 'insertion', head: 'insertion AUC', digits: 3, better: 'high' },
  { key: 'pointing', head: 'pointing', digits: 3, better: 'high' },
  { key: 'energy', head: 'energy', digits: 3, better: 'high' },
  { key: 'instances', head: 'instances', digits: 3, better: 'high' },
  { key: 'msPerImage', head: 'ms/image', digits: 1, better: null },
];
const fmt = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : '-');

function metricsTable(r: EvalResult): string {
  const methods = Object.keys(r.methods);
  const best = Object.fromEntries(COLUMNS.filter((c) => c.better).map((c) => {
    const vals = methods.map((m) => r.methods[m][c.key]).filter(Number.isFinite);
    return [c.key, vals.length > 1 ? (c.better === 'low' ? Math.min(...vals) : Math.max(...vals)) : NaN];
  }));
  const head = `<tr><th>method</th>${COLUMNS.map((c) => `<th data-key="${c.key}" title="${c.better ? `${c.better === 'low' ? 'lower' : 'higher'} is better` : ''}">${esc(c.head)}${c.better === 'low' ? ' ↓' : c.better === 'high' ? ' ↑' : ''}</th>`).join('')}</tr>`;
  const rows = methods.map((m) => `<tr data-method="${esc(m)}"><td>${esc(m)}</td>${COLUMNS.map((c) => {
    const v = r.methods[m][c.key];
    return `<td data-key="${c.key}" data-value="${Number.isFinite(v) ? v : 'NaN'}"${v === best[c.key] ? ' class="best"' : ''}>${fmt(v, c.digits)}</td>`;
  }).join('')}</tr>`).join('\n');
  return `<table class="sortable" id="metrics"><thead>${head}</thead><tbody>\n${rows}\n</tbody></table>
<p class="muted">Click a column to sort. Bold: the best value of a column. Deletion/insertion over the first ${r.aucScenes} scenes,
${r.steps} steps; ms/image: the shared gradient pass per image plus the method's own passes.</p>`;
}

/** One curve plot (x: fraction of pixels deleted / inserted, y: class probability), a polyline per method. */
function curvePlot(kind: 'deletion' | 'insertion', curves: Record<string, { deletion: number[]; insertion: number[] }>, scores: Record<string, MethodScores>): string {
  const Wd = 440, Ht = 280, L = 44, R = 12, T = 26, B = 36, pw = Wd - L - R, ph = Ht - T - B;
  const X = (f: number) => L + f * pw, Y = (p: number) => T + (1 - p) * ph;
  const grid = [0, 0.25, 0.5, 0.75, 1].map((t) => `<line x1="${X(0)}" x2="${X(1)}" y1="${Y(t)}" y2="${Y(t)}" stroke="#eee"/>`
    + `<text x="${L - 6}" y="${Y(t) + 4}" text-anchor="end">${t}</text><text x="${X(t)}" y="${Ht - B + 16}" text-anchor="middle">${t}</text>`).join('');
  const lines = Object.entries(curves).map(([m, c], i) => {
    const ys = c[kind], n = ys.length - 1;
    const pts = ys.map((p, q) => `${X(n ? q / n : 0).toFixed(2)},${Y(p).toFixed(2)}`).join(' ');
    return `<polyline data-method="${esc(m)}" data-auc="${scores[m]?.[kind]}" fill="none" stroke="${colour(i)}" stroke-width="1.6" points="${pts}"><title>${esc(m)}: AUC ${fmt(scores[m]?.[kind], 3)}</title></polyline>`;
  }).join('\n');
  const legend = Object.keys(curves).map((m, i) => `<span style="color:${colour(i)}">&#9632;</span> ${esc(m)} ${fmt(scores[m]?.[kind], 3)}`).join(' &nbsp; ');
  return `<figure><svg class="plot" id="${kind}-plot" width="${Wd}" height="${Ht}" viewBox="0 0 ${Wd} ${Ht}" role="img" aria-label="${kind} curves">
<text x="${L}" y="16" font-weight="bold">${kind === 'deletion' ? 'Deletion (lower AUC is better)' : 'Insertion (higher AUC is better)'}</text>
${grid}<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>
<text x="${L + pw / 2}" y="${Ht - 4}" text-anchor="middle">fraction of pixels ${kind === 'deletion' ? 'deleted' : 'inserted'}</text>
<text x="12" y="${T + ph / 2}" text-anchor="middle" transform="rotate(-90 12 ${T + ph / 2})">class probability</text>
${lines}</svg><figcaption class="legend">${legend}</figcaption></figure>`;
}

/** A map tile with the ground-truth boxes and the map's maximum (green: pointing-game hit, red: miss). */
function boxedTile(img: Rgb, label: string, boxes: number[][], peak?: [number, number], hit?: boolean, extra = ''): string {
  const { width: W, height: H } = img;
  const rects = boxes.map(([x0, y0, x1, y1]) => `<rect class="gt" x="${x0}" y="${y0}" width="${x1 - x0}" height="${y1 - y0}" fill="none" stroke="#fff" stroke-width="${Math.max(1, W / 96)}"/>`).join('');
  const mark = peak ? `<circle class="peak ${hit ? 'hit' : 'miss'}" cx="${peak[0] + 0.5}" cy="${peak[1] + 0.5}" r="${Math.max(1.5, W / 32)}" fill="${hit ? '#2ecc40' : '#ff4136'}" stroke="#000" stroke-width="${W / 200}"/>` : '';
  return `<figure class="tile" data-label="${esc(label)}"${extra}><img alt="${esc(label)}" src="${dataUri(img)}">`
    + `<svg class="boxes" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none">${rects}${mark}</svg><figcaption>${esc(label)}</figcaption></figure>`;
}

/** Writes DIR/report.html and DIR/eval.json for an evaluation run with `detail`. Returns the report's path. */
export function writeEvalReport(dir: string, info: EvalReportInfo, r: EvalResult): string {
  const d = r.detail;
  if (!d) throw new Error('writeEvalReport: the evaluation ran without detail');
  mkdirSync(dir, { recursive: true });
  const methods = Object.keys(r.methods), label = (c: number) => info.labels[c] ?? String(c), cmap = lut(info.colormap ?? 'jet');
  const json = { model: info.model, data: info.data, adapter: info.adapter, versions: info.versions, options: info.options, layer: d.layer, layerShape: d.layerShape,
    scenes: r.scenes, multi: r.multi, accuracy: r.accuracy, steps: r.steps, aucScenes: r.aucScenes, seconds: r.seconds, methods: r.methods,
    curves: d.curves, perScene: d.scenes };
  writeFileSync(join(dir, 'eval.json'), JSON.stringify(json, null, 1) + '\n');

  const settings = kv('settings', [
    ['model', info.model], ['data', info.data], ['scenes', `${r.scenes} (${r.multi} multi-instance)`], ['accuracy', `${(100 * r.accuracy).toFixed(1)}%`],
    ['layer', `${d.layer} (${d.layerShape.join('x')})`], ['input', d.input.join('x')], ['adapter', info.adapter], ['conv tiles', info.tuned],
    ['deletion/insertion', `${r.steps} steps over the first ${r.aucScenes} scenes`], ['wall time', `${r.seconds.toFixed(1)} s`], ...(info.run ? [['run', info.run] as [string, unknown]] : []),
    ...Object.entries(info.options).map(([k, v]) => [`--${k}`, v ?? 'default'] as [string, unknown]),
    ['versions', Object.entries(info.versions).map(([k, v]) => `${k} ${v}`).join(', ')],
  ]);
  const hits = Object.fromEntries(methods.map((m) => [m, d.scenes.filter((s) => s.hit[m]).length]));
  const pointing = `<div class="scroll"><table class="sortable" id="pointing"><thead><tr><th>scene</th><th>class</th><th>multi</th><th>top-1 correct</th>
${methods.map((m) => `<th data-method="${esc(m)}">${esc(m)}</th>`).join('')}</tr></thead><tbody>
${d.scenes.map((s) => `<tr data-file="${esc(s.file)}"><td title="${esc(s.file)}">${esc(basename(s.file))}</td><td>${esc(label(s.class))}</td><td data-value="${s.multi ? 1 : 0}">${s.multi ? 'yes' : ''}</td>`
    + `<td data-value="${s.top1 === s.class ? 1 : 0}">${s.top1 === s.class ? 'yes' : `no (${esc(label(s.top1))})`}</td>`
    + methods.map((m) => `<td data-method="${esc(m)}" data-value="${s.hit[m] ? 1 : 0}" class="${s.hit[m] ? 'hit' : 'miss'}" title="max at (${s.peak[m]}), energy ${s.energy[m].toFixed(3)}">${s.hit[m] ? 'hit' : 'miss'}</td>`).join('') + '</tr>').join('\n')}
</tbody><tfoot><tr><td>hits</td><td></td><td></td><td></td>${methods.map((m) => `<td data-method="${esc(m)}" data-value="${hits[m]}">${hits[m]} / ${d.scenes.length}</td>`).join('')}</tr></tfoot></table></div>`;
  const gallery = d.gallery.map((g) => {
    const s = d.scenes[g.index];
    const tiles = [boxedTile(g.view, 'image', s.boxes)]
      .concat(methods.map((m) => boxedTile(overlay(g.view, g.maps[m], cmap, 0.5), m, s.boxes, s.peak[m], s.hit[m], ` data-method="${esc(m)}"`)));
    return `<div class="scene" data-index="${g.index}" data-file="${esc(s.file)}"><div>${esc(basename(s.file))}: ${esc(label(s.class))}${s.multi ? `, ${s.boxes.length} instances` : ''}; `
      + `p = ${s.prob.toFixed(3)}${s.top1 === s.class ? '' : `, model says ${esc(label(s.top1))}`}</div><div class="tiles">${tiles.join('')}</div></div>`;
  }).join('\n');
  const body = `<h1>camgpu eval: ${esc(info.model)} on ${esc(info.data)}</h1>
<h2>Metrics</h2>${metricsTable(r)}
<h2>Deletion and insertion curves</h2><p class="muted">Mean class probability over the first ${r.aucScenes} scenes after each of ${r.steps} steps; the legend gives each method's AUC.</p>
<div class="plots">${curvePlot('deletion', d.curves, r.methods)}${curvePlot('insertion', d.curves, r.methods)}</div>
<h2>Gallery</h2><p class="muted">The first ${d.gallery.length} scenes: the image the model saw, then each method's map (jet, alpha 0.5) with the
ground-truth boxes (white) and the map's maximum (green: pointing-game hit within 15 px of a box, red: miss). Click a tile to compare two.</p>
${compareBox()}
${gallery}
<h2>Pointing game</h2>${pointing}
<h2>Run settings</h2>${settings}
${island('eval-data', json)}`;
  const path = join(dir, 'report.html');
  writeFileSync(path, page(`camgpu eval: ${info.model}`, body, SORT_JS + COMPARE_JS));
  return path;
}

const compareBox = () => `<div id="compare" hidden><div class="pair">
<figure><img class="cmp-a" alt="A"><figcaption>A: <span id="label-a"></span></figcaption></figure>
<figure><img class="cmp-b" alt="B"><figcaption>B: <span id="label-b"></span></figcaption></figure>
<figure><div id="swipe"><img class="cmp-a" alt="A"><img class="cmp-b" id="swipe-b" alt="B"></div>
<figcaption>swipe A | B <input type="range" id="swipe-range" min="0" max="100" value="50"></figcaption></figure></div></div>`;

// =========================================================================================== explain report

/** One row of the explain grid: an image and target, the image the model saw and each method's overlay. */
export interface ExplainRow { name: string; target: number; label: string; prob: number; view: Rgb; overlays: Record<string, Rgb> }

/** Writes DIR/report.html for `camgpu explain`; `summary` is what summary.json holds. Returns the report's path. */
export function writeExplainReport(dir: string, summary: Record<string, any>, rows: ExplainRow[]): string {
  mkdirSync(dir, { recursive: true });
  const methods: string[] = summary.methods;
  const settings = kv('settings', [
    ['model', `${summary.model.file} (${summary.model.input.join('x')} -> ${summary.model.classes} classes)`],
    ['layer', `${summary.layer.name} (${summary.layer.shape.join('x')}, ${summary.layer.from})`],
    ['adapter', summary.adapter ?? '(unknown)'], ['methods', methods.join(', ')],
    ...Object.entries(summary.options as Record<string, unknown>).map(([k, v]) => [k, v ?? 'default'] as [string, unknown]),
    ['versions', Object.entries(summary.versions as Record<string, string>).map(([k, v]) => `${k} ${v}`).join(', ')],
  ]);
  const timings = `<table id="timings"><thead><tr><th>phase</th><th>ms</th></tr></thead><tbody>${Object.entries(summary.timings_ms as Record<string, number>)
    .map(([k, ms]) => `<tr data-key="${esc(k)}"><td>${esc(k)}</td><td data-value="${ms}">${ms.toFixed(1)}</td></tr>`).join('')}</tbody></table>
<p class="muted">GPU work of all images together: "gradient pass" is the one forward + backward + fused CAM kernel shared by every gradient
method; perturbation and pixel methods add their own passes.</p>`;
  const byName = new Map<string, Record<string, any>>((summary.images as Record<string, any>[]).map((im) => [im.name, im]));
  const sections = rows.map((r, i) => {
    const im = byName.get(r.name);
    const top = (im?.top ?? []) as { class: number; label: string; prob: number; logit: number }[];
    const topk = `<table class="topk"><thead><tr><th>class</th><th>label</th><th>prob</th><th>logit</th></tr></thead><tbody>${top.map((t) =>
      `<tr data-class="${t.class}"${t.class === r.target ? ' class="target"' : ''}><td>${t.class}</td><td>${esc(t.label)}</td><td data-value="${t.prob}">${(100 * t.prob).toFixed(2)}%</td><td data-value="${t.logit}">${t.logit.toFixed(3)}</td></tr>`).join('')}</tbody></table>`;
    const tag = `${r.name} (${r.label})`;
    const tiles = [boxedTile(r.view, `${tag}: image`, [], undefined, undefined, ' data-method="image"')]
      .concat(methods.map((m) => boxedTile(r.overlays[m], `${tag}: ${m}`, [], undefined, undefined, ` data-method="${esc(m)}"`)));
    return `<div class="scene" data-row="${i}" data-name="${esc(r.name)}" data-target="${r.target}"><h3>${esc(r.name)}: ${esc(r.label)} (class ${r.target}), p = ${r.prob.toFixed(4)}</h3>
${topk}<div class="tiles">${tiles.join('')}</div></div>`;
  }).join('\n');
  const body = `<h1>camgpu explain: ${rows.length} row${rows.length === 1 ? '' : 's'}, ${methods.length} method${methods.length === 1 ? '' : 's'}</h1>
${settings}
<h2>Timings</h2>${timings}
<h2>Maps</h2><p class="muted">One row per image and target, one tile per method. Click a tile, then another, to compare them.</p>
${compareBox()}
${sections}
${island('summary-data', summary)}`;
  const path = join(dir, 'report.html');
  writeFileSync(path, page(`camgpu explain: ${summary.model.file}`, body, COMPARE_JS));
  return path;
}
