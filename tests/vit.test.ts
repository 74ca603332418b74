// Vision Transformers: torchvision's VisionTransformer exported with a dynamic batch (tools/make_vit_fixtures.py, opsets
// 13, 15, 17, and ViT-B/16's 12 heads) through src/batchaxis.ts (nn.MultiheadAttention moves the batch axis and merges
// it with the heads), against PyTorch float64 logits and input gradients at batch 1 and 2, with DeepLIFT summation to
// delta; exports that mix the samples of a batch are refused precisely; the Transpose / Reshape rules are checked by
// exact enumeration of where every element of a concrete batch goes; the folder's k*N arithmetic.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { BatchAxis, onnxDims, reshapeRule, transposeRule } from '../src/batchaxis.js';
import { BATCH, Graph, numel } from '../src/graph.js';
import { FOLD, FoldError } from '../src/fold.js';
import { importOnnx } from '../src/import.js';
import type { OnnxNode } from '../src/onnx.js';
import { Explainer } from '../src/explain.js';
import { Model } from '../src/model.js';
import { tokenMap } from '../src/tokens.js';
import { nodeGpu } from '../node/gpu.js';
import { parseNpy } from '../node/npy.js';
import { checkTorchFixture, importRejects, relMax } from './helpers.js';

const test = suite('vit');
const dir = (name: string) => `tests/fixtures/vit/${name}`;
const npy = (f: string) => parseNpy(readFileSync(f), f);
const TOL = 1e-5; // float32 GPU vs PyTorch float64, relative to the golden's max (observed values printed)

/** The attention forms a graph has: per-sample transposes of (H,L,hd), MatMuls of two activations, inner softmax. */
function forms(g: Graph) {
  let transposes = 0, products = 0, softmax = 0, concatConst = 0;
  for (const n of g.nodes) {
    if (n.op.kind === 'transpose') transposes++;
    if (n.op.kind === 'matmul' && n.inputs.every((t) => !g.tensors.get(t)!.data)) products++;
    if (n.op.kind === 'softmax') softmax++;
    if (n.op.kind === 'concat' && n.inputs.some((t) => g.tensors.get(t)!.data)) concatConst++;
  }
  return { transposes, products, softmax, concatConst };
}

for (const [name, layers, heads] of [['vit_tiny_op13', 2, 2], ['vit_tiny_op15', 2, 2], ['vit_tiny_op17', 2, 2], ['vit_b16_layout', 1, 12]] as const) {
  test(`${name}: logits and input gradient vs PyTorch float64 at batch 1 and 2, DeepLIFT summation to delta`, async () => {
    const g = importOnnx(readFileSync(`${dir(name)}/model.onnx`));
    // the patch tokens (E,h*w) -> (h*w,E); per layer: q, k, v to (H,L,hd) / (H,hd,L) and the result back to (L,H,hd); q k^T
    // and a v; one softmax; the class token
    assert.equal(forms(g), { transposes: 1 + 4 * layers, products: 2 * layers, softmax: layers, concatConst: 1 });
    const qk = g.nodes.find((n) => n.op.kind === 'matmul')!;
    assert.equal(g.tensors.get(qk.output)!.shape, [heads, 1 + (name === 'vit_b16_layout' ? 4 : 16), 1 + (name === 'vit_b16_layout' ? 4 : 16)], 'q k^T per sample is (H, L, L)');
    await checkTorchFixture(dir(name), name, g, TOL);
  });
}

test('swin_tiny_op17 (Swin-T structure: shifted windows merged with the batch): logits and input gradient vs PyTorch float64 at batch 1 and 2, DeepLIFT summation to delta', async () => {
  const g = importOnnx(readFileSync(`${dir('swin_tiny_op17')}/model.onnx`));
  const f = forms(g);
  assert.equal([f.products, f.softmax], [8, 4], 'four attention blocks: q k^T and a v, one softmax each');
  // per sample, stage 1's attention is (nW, H, L, L) = (4, 2, 16, 16): the windows stay with their image
  assert.equal(g.tensors.get(g.nodes.find((n) => n.op.kind === 'softmax')!.output)!.shape, [4, 2, 16, 16]);
  await checkTorchFixture(dir('swin_tiny_op17'), 'swin_tiny_op17', g, TOL);
});

test('exports that mix the samples of a batch after moving its axis are refused, naming node, op and shapes', () => {
  const bytes = (name: string) => readFileSync(`${dir(name)}/model.onnx`);
  importRejects(bytes('bad_softmax'), ["node '/Softmax'", 'Softmax of [96,N,32]', 'moved to axis 1', 'softmax over axis 1 would mix the samples']);
  importRejects(bytes('bad_reshape'), ["node '/Reshape_1'", 'Reshape of [96,N,32] to [N,-1]', 'splits the batch', '96 per-sample elements before N and 32 after']);
  importRejects(bytes('bad_matmul'), ["node '/MatMul'", 'MatMul of [96,32,N]', 'batch axis 2 is a matrix axis']);
  importRejects(bytes('bad_sum'), ["node '/ReduceSum'", 'ReduceSum of [96,N,32]', 'only supported with the batch at axis 0']);
});

// ------------------------------------------------------------------------------------------------ the rules, enumerated

/** For a tensor of per-sample shape s and batch b at a concrete batch N: for every ONNX flat index (memory order), the
 *  sample it belongs to and its flat index inside that sample (camgpu's storage: sample n at n * numel(s)). */
function owners(s: number[], b: BatchAxis, N: number): [number, number][] {
  const dims = onnxDims(s, b).map((d) => (d <= BATCH ? (d / BATCH) * N : d));
  // the ONNX axes as factors in memory order: the batch axis as outer, N, inner
  const f = dims.flatMap((d, i) => (i === b.axis ? [b.outer, N, b.inner] : [d]));
  const at = dims.slice(0, b.axis).length + 1; // index of N among the factors
  const total = numel(f), out: [number, number][] = [];
  for (let o = 0; o < total; o++) {
    let r = o, p = 0, stride = 1, n = 0;
    for (let k = f.length - 1; k >= 0; k--) {
      const c = r % f[k]; r = Math.floor(r / f[k]);
      if (k === at) n = c; else { p += c * stride; stride *= f[k]; }
    }
    out.push([n, p]);
  }
  return out;
}

/** ONNX transpose of a concrete tensor given as its values (flat) and dims. */
function transposeFlat<T>(v: T[], dims: number[], perm: number[]): T[] {
  const out = perm.map((p) => dims[p]), st = dims.map((_, i) => numel(dims.slice(i + 1))), r: T[] = [];
  for (let o = 0; o < numel(out); o++) {
    let rem = o, src = 0;
    for (let k = out.length - 1; k >= 0; k--) { src += (rem % out[k]) * st[perm[k]]; rem = Math.floor(rem / out[k]); }
    r.push(v[src]);
  }
  return r;
}

test('Transpose rule: every element of a batch of 3 lands where the per-sample transpose puts it', () => {
  const cases: [number[], BatchAxis, number[]][] = [
    [[5, 6], { axis: 0, outer: 1, inner: 1 }, [1, 0, 2]],  // (N,L,E) -> (L,N,E): free
    [[5, 6], { axis: 1, outer: 1, inner: 1 }, [1, 0, 2]],  // and back
    [[5, 2, 3], { axis: 1, outer: 1, inner: 2 }, [1, 0, 2]], // (L,N*H,hd) -> (N*H,L,hd)
    [[5, 2, 3], { axis: 1, outer: 1, inner: 2 }, [1, 2, 0]], // -> (N*H,hd,L)
    [[2, 5, 3], { axis: 0, outer: 2, inner: 1 }, [2, 0, 1]],
    [[4, 5, 6], { axis: 2, outer: 1, inner: 1 }, [3, 2, 0, 1]],
  ];
  for (const [s, b, perm] of cases) {
    const N = 3, r = transposeRule(s, b, perm), s2 = r.perm.map((p) => s[p]);
    const dims = onnxDims(s, b).map((d) => (d <= BATCH ? (d / BATCH) * N : d));
    const moved = transposeFlat(owners(s, b, N), dims, perm); // who sits at each output position after the ONNX transpose
    // camgpu: sample n's per-sample tensor transposed by r.perm; element q of the output sample came from p
    const per = transposeFlat(Array.from({ length: numel(s) }, (_, i) => i), s, r.perm);
    const want = owners(s2, r.batch, N).map(([n, q]) => [n, per[q]]);
    assert.equal(moved, want, `s [${s}], batch ${JSON.stringify(b)}, perm [${perm}]`);
  }
});

test('Reshape rule: every element keeps its sample and per-sample index; splits of the batch are refused', () => {
  const ok: [number[], BatchAxis, number[]][] = [
    [[5, 6], { axis: 1, outer: 1, inner: 1 }, [5, 2 * BATCH, 3]],   // (L,N,E) -> (L,N*H,hd)
    [[5, 2, 3], { axis: 1, outer: 1, inner: 2 }, [5 * BATCH, 6]],   // (L,N*H,hd) -> (L*N,E)
    [[5, 6], { axis: 0, outer: 5, inner: 1 }, [5, BATCH, 6]],       // (L*N,E) -> (L,N,E)
    [[5, 6], { axis: 0, outer: 1, inner: 1 }, [-1, 6]],             // (N,L,E) -> (N*L,E)
    [[5, 6], { axis: 1, outer: 1, inner: 1 }, [0, -1]],             // (L,N,E) -> (L,N*E)
    [[4, 6], { axis: 0, outer: 1, inner: 1 }, [0, 2, 2, 6]],      // 0 copies the batch
  ];
  for (const [s, b, t] of ok) {
    const r = reshapeRule(s, b, t, false);
    if (typeof r === 'string') { assert.unreachable(`[${s}] ${JSON.stringify(b)} to [${t}]: ${r}`); return; }
    assert.equal(numel(r.shape), numel(s));
    // a reshape keeps the memory order: element o has the same owner before and after
    assert.equal(owners(r.shape, r.batch, 3), owners(s, b, 3), `[${s}] ${JSON.stringify(b)} to [${t}]`);
  }
  const bad: [number[], BatchAxis, number[], string][] = [
    [[5, 6], { axis: 1, outer: 1, inner: 1 }, [BATCH, -1], 'splits the batch'],  // (L,N,E) viewed as (N, L*E)
    [[6], { axis: 0, outer: 1, inner: 1 }, [2, 3], 'fixes the batch size'],
    [[6], { axis: 0, outer: 1, inner: 1 }, [BATCH, BATCH, -1], 'more than one axis'],
    [[6], { axis: 0, outer: 1, inner: 1 }, [BATCH, 4], 'element count'],
    [[4, 6], { axis: 0, outer: 1, inner: 1 }, [2, -1, 6], 'splits the batch'],
  ];
  for (const [s, b, t, why] of bad) {
    const r = reshapeRule(s, b, t, false);
    assert.ok(typeof r === 'string' && r.includes(why), `[${s}] to [${t}]: ${JSON.stringify(r)}`);
  }
});

test('fold: the batch size scaled by integer constants (N*H, L*N, k*N / c), anything else refused', () => {
  const T = (dims: number[], data: number[]) => ({ dims, data, int: true });
  const a = { i: (_: string, d: number) => d, f: (_: string, d: number) => d, ints: (_: string, d: number[]) => d };
  const node = { name: 'n', opType: 'Mul', inputs: [], outputs: [], attrs: new Map(), domain: '' } as unknown as OnnxNode;
  assert.equal(FOLD.Mul([T([1], [BATCH]), T([1], [12])], a, node, 13).data, [12 * BATCH]);
  assert.equal(FOLD.Mul([T([], [17]), T([], [BATCH])], a, node, 13).data, [17 * BATCH]);
  assert.equal(FOLD.Div([T([1], [12 * BATCH]), T([1], [4])], a, node, 13).data, [3 * BATCH]);
  assert.equal(FOLD.Equal([T([1], [2 * BATCH]), T([1], [2 * BATCH])], a, node, 13).data, [1]);
  assert.equal(FOLD.Equal([T([1], [2 * BATCH]), T([1], [-1])], a, node, 13).data, [0]);
  const refused = (op: string, x: number[], y: number[], msg: RegExp) =>
    assert.throws(() => FOLD[op]([T([x.length], x), T([y.length], y)], a, node, 13), (e: Error) => e instanceof FoldError && msg.test(e.message));
  refused('Div', [3 * BATCH], [2], /does not divide/);
  refused('Div', [12], [BATCH], /by itself/);
  refused('Mul', [BATCH], [BATCH], /positive integer/);
  refused('Mul', [BATCH], [0], /positive integer/);
  refused('Add', [BATCH], [1], /batch size/);
  refused('Equal', [2 * BATCH], [2], /non-negative/);
  assert.throws(() => FOLD.Mul([T([1], [BATCH]), { dims: [1], data: [0.5], int: false }], a, node, 13), /non-integer/);
});


test('Grad-CAM on ViT tokens (tokenMap, tokens-cls): the raw map equals PyTorch\'s with reshape_transform; logits unchanged', async () => {
  const zoo = 'tests/fixtures/zoo/vit_b_16', m = JSON.parse(readFileSync(`${zoo}/meta.json`, 'utf8'));
  const g = importOnnx(readFileSync(`${zoo}/model.onnx`)), before = g.nodes.length;
  const layer = tokenMap(g, m.target, 'tokens-cls');
  assert.equal(g.tensors.get(layer)!.shape, [32, 4, 4], '(D, h, w) with the class token dropped');
  assert.is(g.nodes.length, before + 7);
  const x = npy(`${zoo}/x.npy`), want = npy(`${zoo}/gradcam.npy`), logits = npy(`${zoo}/logits.npy`);
  const model = await Model.load(await nodeGpu(), g, 'vit_b_16');
  try {
    const r = await new Explainer(model).explain(x.data, { methods: ['gradcam'], targets: m.classes, layer });
    const raw = new Float32Array(r.images.flatMap((im) => [...im.methods.gradcam!.raw]));
    const lg = new Float32Array(r.images.flatMap((im) => [...im.logits]));
    const ec = relMax(raw, want.data), el = relMax(lg, logits.data);
    console.log(`  vit_b_16 Grad-CAM raw ${ec.toExponential(1)}, logits ${el.toExponential(1)} (batch 2)`);
    assert.ok(ec <= 1e-5, `Grad-CAM raw ${ec}`);
    assert.ok(el <= 1e-5, `logits ${el}`);
  } finally { model.destroy(); }
  assert.throws(() => tokenMap(importOnnx(readFileSync(`${zoo}/model.onnx`)), m.target, 'tokens'), /17 tokens are not a square grid/);
});

test('Grad-CAM on Swin (tokenMap, nhwc): the raw map equals PyTorch\'s with reshape_transform', async () => {
  const zoo = 'tests/fixtures/zoo/swin_t', m = JSON.parse(readFileSync(`${zoo}/meta.json`, 'utf8'));
  const g = importOnnx(readFileSync(`${zoo}/model.onnx`)), layer = tokenMap(g, m.target, 'nhwc');
  assert.equal(g.tensors.get(layer)!.shape, [m.act_shape[3], m.act_shape[1], m.act_shape[2]], '(C, h, w) from (h, w, C)');
  const x = npy(`${zoo}/x.npy`), want = npy(`${zoo}/gradcam.npy`);
  const model = await Model.load(await nodeGpu(), g, 'swin_t');
  try {
    const r = await new Explainer(model).explain(x.data, { methods: ['gradcam'], targets: m.classes, layer });
    const ec = relMax(new Float32Array(r.images.flatMap((im) => [...im.methods.gradcam!.raw])), want.data);
    console.log(`  swin_t Grad-CAM raw ${ec.toExponential(1)} (batch 2)`);
    assert.ok(ec <= 1e-5, `Grad-CAM raw ${ec}`);
  } finally { model.destroy(); }
});

test.run();
