// The conv autotuner (src/tune.ts) and its cache (node/tune.ts): every tile it may pick is checked against the float64
// reference in kernels.test.ts; here, tuning a fixture gives a pick per conv shape that is no slower than the
// default in the same measurement, the tuned model still matches PyTorch, and the cache rejects bad files precisely.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model } from '../src/model.js';
import { TILES, convKernels, convShape } from '../src/conv.js';
import { importOnnx } from '../src/import.js';
import { tune } from '../src/tune.js';
import { nodeGpu, plainDevice } from '../node/gpu.js';
import { cachedTiles, saveTiles } from '../node/tune.js';
import { fixtureDir, npy, relMax } from './helpers.js';

const test = suite('tune');
const tmp = mkdtempSync(join(tmpdir(), 'camgpu-tune-'));

test('tune resnet fixture: one entry per conv shape, every tile variant tried and correct, pick <= default; tuned logits = PyTorch', async () => {
  const gpu = await nodeGpu(), bytes = readFileSync(`${fixtureDir('resnet')}/model.onnx`), g = importOnnx(bytes);
  const shapes = new Set(g.nodes.filter((n) => n.op.kind === 'conv').map((n) => convShape(g, n)));
  const seen: number[] = [];
  const entries = await tune(gpu, g, { runs: 1, onProgress: (d) => seen.push(d) });
  assert.is(entries.length, shapes.size, 'every conv shape has a tiled kernel for some tile, so each is tuned');
  assert.equal(seen, [...Array(shapes.size + 1).keys()], 'progress 0..n');
  for (const e of entries) {
    assert.ok(shapes.has(e.shape), e.shape);
    // one try per distinct kernel: a grouped conv (K/G = 8) runs the grouped kernel for TK 16 and 32, tried once
    const n = g.nodes.find((m) => m.op.kind === 'conv' && convShape(g, m) === e.shape)!;
    const variants = new Set(TILES.map((t) => { const k = convKernels(g, n, t); return `${k.forward} ${JSON.stringify(k.forwardConsts)}`; }));
    assert.is(e.tried.length, variants.size, `${e.shape}: ${variants.size} kernel variants tried`);
    assert.ok(e.tried.every((t) => t.error === undefined && t.ms! >= 0), `${e.shape}: ${JSON.stringify(e.tried)}`);
    assert.ok(e.ms <= e.defaultMs, `${e.shape}: pick ${e.ms} ms vs default ${e.defaultMs} ms`);
  }
  const tiles = Object.fromEntries(entries.map((e) => [e.shape, e.best]));
  const model = await Model.load(gpu, bytes, 'resnet tuned', { tiles });
  try {
    const x = npy('resnet', 'x.npy'), logits = (await (await model.plan({ batch: 2 })).run(x.data)).logits;
    assert.ok(relMax(logits, npy('resnet', 'logits.npy').data) <= 1e-4);
  } finally { model.destroy(); }
});

test('tune: a device without timestamp-query is refused with the reason', async () => {
  const dev = await plainDevice('no timestamps'), { Gpu } = await import('../src/gpu.js');
  try {
    const err = await tune(new Gpu(dev), importOnnx(readFileSync(`${fixtureDir('resnet')}/model.onnx`))).then(() => null, (e: Error) => e.message);
    assert.match(err ?? '', /timestamp queries; this device was created without 'timestamp-query'/);
  } finally { dev.destroy(); }
});

test('tuning cache: round trip per adapter, merge, missing file = {}, and bad files named with the fix', () => {
  const f = join(tmp, 'tiles.json');
  assert.equal(cachedTiles('a', f), {}, 'no file yet');
  saveTiles('a', { s1: TILES[0], s2: TILES[1] }, f);
  saveTiles('b', { s1: TILES[2] }, f);
  saveTiles('a', { s2: TILES[3] }, f);
  assert.equal(cachedTiles('a', f), { s1: TILES[0], s2: TILES[3] });
  assert.equal(cachedTiles('b', f), { s1: TILES[2] });
  assert.equal(cachedTiles('c', f), {});
  const bad = (text: string, why: RegExp) => { writeFileSync(f, text); assert.throws(() => cachedTiles('a', f), (e: Error) => why.test(e.message) && e.message.includes(f) && /camgpu tune/.test(e.message)); };
  bad('{ not json', /not JSON/);
  bad('{"version": 2, "adapters": {}}', /not a version 1 camgpu tuning cache/);
  bad('{"version": 1, "adapters": {"a": {"s1": {"TK": 12, "TP": 8}}}}', /adapter 'a', layer s1: \{"TK":12,"TP":8\} is not one of the tiles/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
