// Static server for the demo page on 127.0.0.1 (WebGPU needs a secure context; loopback is one).
//   node tools/serve.mjs [--port N]    (default 8737; 0 = any free port; prints "camgpu demo: http://127.0.0.1:PORT/")
// Serves the built page (dist/web/), the library (dist/camgpu.js), the bundled models (weights/*.onnx and their
// sidecars weights/<name>.json), the sample scenes (data/scenes/*.png, data/scenes/boxes.json) and the test fixtures'
// models, plus /index.json: what of those exists right now, read on every request. Nothing else of the repository.
import { createServer } from 'node:http';
import { readFileSync, readdirSync, existsSync, statSync, createReadStream } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.json': 'application/json',
  '.map': 'application/json', '.png': 'image/png', '.jpg': 'image/jpeg', '.onnx': 'application/octet-stream', '.ts': 'text/plain; charset=utf-8' };
/** URL prefix -> directory (relative to the repository) and the files it may serve. */
const MOUNTS = [
  ['/weights/', 'weights', /^[\w.-]+\.(onnx|json)$/],
  ['/data/scenes/', 'data/scenes', /^[\w.-]+\.(png|jpg|json)$/],
  ['/fixtures/', 'tests/fixtures', /^[\w-]+\/(model\.onnx|meta\.json)$/],
  ['/dist/', 'dist', /^camgpu\.(js|js\.map|d\.ts)$/],
  ['/', 'dist/web', /^[\w.-]+$/],
];

const list = (dir, re) => (existsSync(join(root, dir)) ? readdirSync(join(root, dir)).filter((f) => re.test(f)).sort() : []);
const readJson = (f) => { try { return JSON.parse(readFileSync(join(root, f), 'utf8')); } catch { return null; } };

/** What the demo can offer: bundled models (with sidecar when present), scenes, and the fixtures (the fallback). */
export function index() {
  const models = list('weights', /\.onnx$/).map((f) => {
    const name = f.replace(/\.onnx$/, ''), side = `weights/${name}.json`;
    return { id: `weights/${name}`, name, url: `weights/${f}`, bytes: statSync(join(root, 'weights', f)).size, meta: existsSync(join(root, side)) ? side : null };
  });
  const fixtures = list('tests/fixtures', /^[\w-]+$/).filter((d) => existsSync(join(root, 'tests/fixtures', d, 'model.onnx')))
    .map((d) => ({ id: `fixtures/${d}`, name: `${d} (test fixture)`, url: `fixtures/${d}/model.onnx`, bytes: statSync(join(root, 'tests/fixtures', d, 'model.onnx')).size, meta: null }));
  const scenes = list('data/scenes', /\.(png|jpg)$/).map((f) => ({ id: f.replace(/\.\w+$/, ''), name: f.replace(/\.\w+$/, ''), url: `data/scenes/${f}` }));
  return { models, fixtures, scenes, boxes: existsSync(join(root, 'data/scenes/boxes.json')) ? readJson('data/scenes/boxes.json') : null };
}

function resolvePath(urlPath) {
  for (const [prefix, dir, allow] of MOUNTS) {
    if (!urlPath.startsWith(prefix)) continue;
    const rel = urlPath.slice(prefix.length) || 'index.html';
    if (!allow.test(rel) || rel.split('/').includes('..')) return null;
    const full = normalize(join(root, dir, rel));
    return full.startsWith(join(root, dir) + sep) && existsSync(full) && statSync(full).isFile() ? full : null;
  }
  return null;
}

/** Starts the server; resolves to { server, port, url } once it listens. */
export function serve({ port = 8737, host = '127.0.0.1', log = false } = {}) {
  const server = createServer((req, res) => {
    const send = (code, type, body) => { res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' }); res.end(body); };
    let path;
    try { path = decodeURIComponent((req.url ?? '/').split(/[?#]/)[0]); } catch { return send(400, 'text/plain', 'bad URL\n'); }
    if (log) console.log(`${req.method} ${path}`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'GET only\n');
    if (path === '/index.json') return send(200, TYPES['.json'], JSON.stringify(index()));
    const file = resolvePath(path);
    if (!file) {
      const hint = path === '/' || path === '/index.html' ? ' (dist/web/ is missing: run `node build.mjs` first)' : '';
      return send(404, 'text/plain; charset=utf-8', `not found: ${path}${hint}\n`);
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': statSync(file).size, 'cache-control': 'no-store' });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => { const p = server.address().port; ok({ server, port: p, url: `http://${host}:${p}/` }); });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port'), port = i > 0 ? Number(process.argv[i + 1]) : 8737;
  if (!Number.isInteger(port) || port < 0 || port > 65535) { console.error(`serve: bad --port '${process.argv[i + 1]}'`); process.exit(2); }
  if (!existsSync(join(root, 'dist/web/index.html'))) console.error('serve: dist/web/index.html is missing: run `node build.mjs` (or `npm run demo:web`)');
  const { server, url } = await serve({ port, log: process.argv.includes('--log') }).catch((e) => { console.error(`serve: ${e.message}`); process.exit(1); });
  console.log(`camgpu demo: ${url}`);
  const stop = () => { server.close(() => process.exit(0)); server.closeAllConnections(); };
  process.on('SIGINT', stop); process.on('SIGTERM', stop);
}
