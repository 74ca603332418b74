// Einsum through the importer (src/ops/einsum.ts lowers it to Transpose / Reshape / batched MatMul):
// - hand-made models x (N, La+Lb) -> Slice -> tanh / sigmoid -> Reshape -> Einsum, one per equation form (MaxViT's two
//   attention einsums as exported by torch.onnx, batch matmul, implicit output, a permuted output, two contracted
//   letters, free letters on both sides, a one-operand permutation): forward and input gradient on the GPU against
//   Einsum's definition enumerated in float64 (tests/ref.ts einsumForward / einsumBackward, itself checked by central
//   finite differences here), DeepLIFT multipliers against tests/ref.ts on the lowered graph, summation to delta;
// - DeepLIFT summation to delta on the MaxViT-T zoo fixture (8 Einsums; tools/make_zoo.py);
// - every unsupported form's precise error.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { importOnnx } from '../src/import.js';
import { defaultLayer } from '../src/explain.js';
import { Shape, numel } from '../src/graph.js';
import { Model } from '../src/model.js';
import { mulberry32 } from '../src/builder.js';
import { nodeGpu } from '../node/gpu.js';
import { parseNpy } from '../node/npy.js';
import { importRejects, relMax } from './helpers.js';
import { einsumBackward, einsumForward, refBackward, refForward } from './ref.js';
import { FLOAT, Pb, model, node, tensor, valueInfo } from './onnx-writer.js';

const test = suite('einsum');
const i64 = (name: string, v: number[]) => tensor(name, [v.length], v.map(BigInt));

/** x (N, La + Lb): a = Reshape(tanh(x[:, :La]), [N, ...A]), b = Reshape(sigmoid(x[:, La:]), [N, ...B]), y = Einsum(eq)(a, b)
 *  (one operand: y = Einsum(eq)(Reshape(tanh(x), [N, ...A]))). */
function einsumModel(eq: string, A: Shape, B?: Shape, constB = false): Uint8Array {
  const La = numel(A), Lb = B && !constB ? numel(B) : 0;
  const nodes: Pb[] = [], inits: Pb[] = [i64('sa', [0]), i64('ea', [La]), i64('ax', [1]), i64('ra', [0, ...A])];
  nodes.push(node('Slice', 'slice_a', ['x', 'sa', 'ea', 'ax'], ['xa']), node('Tanh', 'tanh', ['xa'], ['ta']), node('Reshape', 'reshape_a', ['ta', 'ra'], ['a']));
  if (B && constB) inits.push(tensor('b', [1, ...B], Float32Array.from({ length: numel(B) }, (_, i) => Math.cos(i))));
  else if (B) {
    inits.push(i64('sb', [La]), i64('eb', [La + Lb]), i64('rb', [0, ...B]));
    nodes.push(node('Slice', 'slice_b', ['x', 'sb', 'eb', 'ax'], ['xb']), node('Sigmoid', 'sigmoid', ['xb'], ['sb_']), node('Reshape', 'reshape_b', ['sb_', 'rb'], ['b']));
  }
  nodes.push(node('Einsum', 'e0', B ? ['a', 'b'] : ['a'], ['y'], { equation: eq }));
  return model({ nodes, inits, inputs: [valueInfo('x', FLOAT, ['N', La + Lb])], outputs: [valueInfo('y', FLOAT, [])], opset: 13 });
}

/** [what, equation as written in the node, the oracle's terms (batch letter first) and output, A, B, the lowered kinds] */
const CASES: [string, string, string[], string, Shape, Shape | undefined, string[]][] = [
  ["MaxViT q k^T 'B G H I D, B G H J D -> B G H I J'", 'B G H I D, B G H J D -> B G H I J', ['BGHID', 'BGHJD'], 'BGHIJ', [2, 2, 3, 4], [2, 2, 5, 4], ['alias', 'transpose', 'alias', 'matmul', 'alias']],
  ["MaxViT attn v 'B G H I J, B G H J D -> B G H I D'", 'B G H I J, B G H J D -> B G H I D', ['BGHIJ', 'BGHJD'], 'BGHID', [3, 1, 4, 5], [3, 1, 5, 2], ['alias', 'alias', 'matmul', 'alias']],
  ["batch matmul 'bij,bjk->bik'", 'bij,bjk->bik', ['bij', 'bjk'], 'bik', [3, 4], [4, 5], ['alias', 'alias', 'matmul', 'alias']],
  ["permuted output 'bik,bkj->bji'", 'bik,bkj->bji', ['bik', 'bkj'], 'bji', [3, 4], [4, 5], ['alias', 'alias', 'matmul', 'alias', 'transpose']],
  ["two contracted letters 'bxkl,bkly->byx'", 'bxkl,bkly->byx', ['bxkl', 'bkly'], 'byx', [2, 3, 4], [3, 4, 5], ['alias', 'alias', 'matmul', 'alias', 'transpose']],
  ["free letters on both sides, a batch letter after a free one in the output 'bhqd,bkhd->bqhk'", 'bhqd,bkhd->bqhk', ['bhqd', 'bkhd'], 'bqhk', [2, 3, 4], [5, 2, 4],
    ['alias', 'transpose', 'alias', 'matmul', 'alias', 'transpose']],
  ["one operand, a permutation 'bij->bji'", 'bij->bji', ['bij'], 'bji', [3, 4], undefined, ['transpose']],
  ["one operand, implicit output 'bji' (-> 'bij', letters in alphabetical order)", 'bji', ['bji'], 'bij', [3, 4], undefined, ['transpose']],
];

const tanh = (v: number) => Math.tanh(v), sig = (v: number) => 1 / (1 + Math.exp(-v));

test('tests/ref.ts einsumBackward vs central finite differences of einsumForward, every case', () => {
  const r = mulberry32(5);
  for (const [what, , terms, out, A, B] of CASES) {
    const shapes = [[2, ...A], ...(B ? [[2, ...B]] : [])];
    const xs = shapes.map((s) => Float64Array.from({ length: numel(s) }, () => 2 * r() - 1));
    const { y } = einsumForward(terms, out, xs, shapes), dy = Float64Array.from(y, () => 2 * r() - 1);
    const dx = einsumBackward(terms, out, xs, shapes, dy), eps = 1e-6;
    const L = (v: Float64Array[]) => einsumForward(terms, out, v, shapes).y.reduce((s, t, i) => s + t * dy[i], 0);
    let err = 0, scale = 0;
    xs.forEach((x, k) => x.forEach((_, i) => {
      const p = xs.map((v) => v.slice()), m = xs.map((v) => v.slice());
      p[k][i] += eps;
      m[k][i] -= eps;
      err = Math.max(err, Math.abs((L(p) - L(m)) / (2 * eps) - dx[k][i]));
      scale = Math.max(scale, Math.abs(dx[k][i]));
    }));
    assert.ok(scale > 1e-3 && err <= 1e-8 * scale, `${what}: max |fd - grad| ${err} (max |grad| ${scale})`);
  }
});

for (const [what, eq, terms, out, A, B, kinds] of CASES) {
  test(`Einsum ${what} a=[N,${A}]${B ? ` b=[N,${B}]` : ''} N=2: lowered to ${kinds.join(', ')}; forward and gradient vs the definition in float64, DeepLIFT vs the reference, summation to delta`, async () => {
    const g = importOnnx(einsumModel(eq, A, B));
    assert.equal(g.nodes.filter((n) => n.name.startsWith('e0')).map((n) => n.op.kind), kinds);
    const N = 2, La = numel(A), Lb = B ? numel(B) : 0, L = La + Lb, r = mulberry32(La * 31 + Lb);
    const x = Float32Array.from({ length: N * L }, () => 4 * r() - 2), xr = Float32Array.from(x, () => 4 * r() - 2);
    // the oracle: the operands in float64, Einsum by its definition, the chain rule through tanh and sigmoid
    const ops = (v: Float32Array) => [Float64Array.from({ length: N * La }, (_, i) => tanh(v[Math.floor(i / La) * L + (i % La)])),
      ...(B ? [Float64Array.from({ length: N * Lb }, (_, i) => sig(v[Math.floor(i / Lb) * L + La + (i % Lb)]))] : [])];
    const shapes = [[N, ...A], ...(B ? [[N, ...B]] : [])], xs = ops(x);
    const want = einsumForward(terms, out, xs, shapes).y, wantRef = einsumForward(terms, out, ops(xr), shapes).y;
    const seed = Float32Array.from(want, () => 2 * r() - 1);
    const [da, db] = einsumBackward(terms, out, xs, shapes, Float64Array.from(seed));
    const dx = Float64Array.from({ length: N * L }, (_, j) => {
      const n = Math.floor(j / L), i = j % L;
      if (i < La) { const t = xs[0][n * La + i]; return da[n * La + i] * (1 - t * t); }
      const s = xs[1][n * Lb + i - La];
      return db[n * Lb + i - La] * s * (1 - s);
    });
    const vals = refForward(g, Float64Array.from(x), N), refVals = refForward(g, Float64Array.from(xr), N);
    const e64 = relMax(vals.get(g.output)!, want);
    assert.ok(e64 <= 1e-12, `the lowered graph in float64 vs the definition: ${e64}`);
    const m = await Model.load(await nodeGpu(), g, 'einsum');
    try {
      const plan = await m.plan({ batch: N, read: [g.output], seedAt: g.output, backward: [{ grads: [g.input] }, { grads: [g.input], mode: 'deeplift' }] });
      const res = await plan.run(x, { seed, refInput: xr });
      const ef = relMax(res.values.get(g.output)!, want), eg = relMax(res.passes[0].get(g.input)!, dx);
      const md = res.passes[1].get(g.input)!;
      const ed = relMax(md, refBackward(g, vals, g.output, Float64Array.from(seed), N, 'deeplift', refVals).get(g.input)!);
      let lhs = 0, rhs = 0, mag = 0;
      for (let i = 0; i < x.length; i++) lhs += md[i] * (x[i] - xr[i]);
      for (let i = 0; i < want.length; i++) { const t = seed[i] * (want[i] - wantRef[i]); rhs += t; mag += Math.abs(t); }
      const es = Math.abs(lhs - rhs) / mag;
      console.log(`  ${eq}: forward ${ef.toExponential(1)}, gradient ${eg.toExponential(1)}, DeepLIFT ${ed.toExponential(1)}, summation ${es.toExponential(1)}`);
      assert.ok(ef <= 1e-5 && eg <= 1e-5 && ed <= 1e-5 && es <= 1e-5, `forward ${ef}, gradient ${eg}, deeplift ${ed}, summation ${es}`);
      plan.destroy();
    } finally { m.destroy(); }
  });
}

test('MaxViT-T default CAM layer: the NCHW map before the pool (pytorch-grad-cam\'s blocks[-1]), not the departition Transpose behind its Reshape', () => {
  const dir = 'tests/fixtures/zoo/maxvit_t', meta = JSON.parse(readFileSync(`${dir}/meta.json`, 'utf8'));
  const g = importOnnx(readFileSync(`${dir}/model.onnx`)), layer = defaultLayer(g);
  assert.is(layer, meta.target);
  assert.equal(g.tensors.get(layer)!.shape, [32, 4, 4]);
  // the rule still steps back over Dropout/Identity and pools: VGG's default is the last ReLU before its MaxPool
  assert.is(defaultLayer(importOnnx(readFileSync('tests/fixtures/zoo/vgg11_bn/model.onnx'))), '/features/features.27/Relu_output_0');
});

test('MaxViT-T zoo fixture (8 Einsums): DeepLIFT summation to delta against the zero image at batch 2', async () => {
  const dir = 'tests/fixtures/zoo/maxvit_t', meta = JSON.parse(readFileSync(`${dir}/meta.json`, 'utf8'));
  const g = importOnnx(readFileSync(`${dir}/model.onnx`));
  assert.is(g.nodes.filter((n) => n.source === 'Einsum' && n.op.kind === 'matmul').length, 8, 'one matmul per Einsum');
  const x = parseNpy(readFileSync(`${dir}/x.npy`), 'x.npy').data, F = meta.output_shape[1], N = 2, per = x.length / N;
  const seed = new Float32Array(N * F);
  meta.classes.forEach((c: number, n: number) => { seed[n * F + c] = 1; });
  const m = await Model.load(await nodeGpu(), g, 'maxvit_t');
  try {
    const plan = await m.plan({ batch: N, backward: [{ grads: [g.input], mode: 'deeplift' }] });
    const res = await plan.run(x, { seed, refInput: new Float32Array(x.length) });
    const mult = res.passes[0].get(g.input)!;
    for (let n = 0; n < N; n++) { // sum m * (x - 0) = sum seed * (y - y_ref)
      let lhs = 0, mag = 0, rhs = 0;
      for (let i = n * per; i < (n + 1) * per; i++) { lhs += mult[i] * x[i]; mag += Math.abs(mult[i] * x[i]); }
      for (let j = n * F; j < (n + 1) * F; j++) rhs += seed[j] * (res.logits[j] - res.refLogits![j]);
      const e = Math.abs(lhs - rhs) / Math.max(mag, Math.abs(rhs));
      console.log(`  maxvit_t image ${n}: sum m*x ${lhs.toExponential(4)}, delta ${rhs.toExponential(4)}, relative ${e.toExponential(1)}`);
      assert.ok(Math.abs(rhs) > 1e-6, `image ${n}: the delta is ${rhs} (a vacuous check)`);
      assert.ok(e <= 1e-4, `image ${n}: sum m*x = ${lhs} vs delta ${rhs} (terms ${mag.toExponential(2)})`);
    }
    plan.destroy();
  } finally { m.destroy(); }
});

/** Each rejection names the node, the equation and the shapes. */
const REJECT: [string, Uint8Array, string[]][] = [
  ['ellipsis', einsumModel('b...ij,b...jk->b...ik', [2, 3, 4], [2, 4, 5]), ["node 'e0'", "Einsum 'b...ij,b...jk->b...ik' on [N,2,3,4], [N,2,4,5]", 'ellipsis']],
  ['diagonal', einsumModel('bii,bij->bj', [3, 3], [3, 4]), ["'bii,bij->bj' on [N,3,3], [N,3,4]", "term 'bii' repeats a letter (a diagonal)"]],
  ['a letter summed within one operand', einsumModel('bij,bjk->bk', [3, 4], [4, 5]), ['letter i is summed within one operand']],
  ['implicit output of two operands (drops the shared batch letter)', einsumModel('bij,bjk', [3, 4], [4, 2]), ["output 'ik'", 'the batch axis']],
  ['the batch letter not first', einsumModel('bij,jbk->bik', [3, 4], [3, 5]), ['the batch axis: every term must start with the same letter (b)']],
  ['output without the batch letter first', einsumModel('bij,bjk->ikb', [3, 4], [4, 5]), ['the batch axis']],
  ['sizes disagree', einsumModel('bij,bjk->bik', [3, 4], [5, 2]), ['letter j has sizes 4 and 5']],
  ['term rank', einsumModel('bijk,bjk->bi', [3, 4], [4, 5]), ["term 'bijk' has 4 letters for operand 0 of rank 3"]],
  ['output letter in no operand', einsumModel('bij,bjk->biz', [3, 4], [4, 5]), ['output letter z is in no operand']],
  ['a constant operand', einsumModel('bij,bjk->bik', [3, 4], [4, 5], true), ["operand 'b' is a constant"]],
  ['one operand summed', einsumModel('bij->bi', [3, 4]), ['sums letters j of one operand']],
];
for (const [what, bytes, patterns] of REJECT) {
  test(`rejected with a precise UnsupportedError: Einsum ${what}`, () => importRejects(bytes, patterns));
}

test.run();
