// Spatial ops through the importer: Resize / Upsample, ConvTranspose, LRN, DepthToSpace / SpaceToDepth.
// - PyTorch exports of a tiny text-detector-style encoder-decoder (tools/make_spatial_fixtures.py, opsets 9 / 11 / 13)
//   against PyTorch float64: output map and input gradient at batch 1 and 2, DeepLIFT summation to delta;
// - LRN (a composite: Pow, banded 1x1 conv, Pow, Mul) against its ONNX definition written out here in float64, and its
//   GPU gradient and DeepLIFT multipliers against tests/ref.ts;
// - import rules (which IR ops each form becomes) and every unsupported attribute's precise error.
// Kernel-level checks are in tests/kernels.test.ts (resize, convtranspose), the float64 references in tests/ref.ts.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { importOnnx } from '../src/import.js';
import { Graph } from '../src/graph.js';
import { Model } from '../src/model.js';
import { mulberry32 } from '../src/builder.js';
import { nodeGpu } from '../node/gpu.js';
import { checkTorchFixture, importRejects, relMax } from './helpers.js';
import { refBackward, refForward } from './ref.js';
import { AttrVal, FLOAT, Pb, model, node, tensor, valueInfo } from './onnx-writer.js';

const test = suite('spatial');
const TOL = 1e-5; // float32 GPU vs PyTorch float64, relative to the golden's max (observed values printed)
const kinds = (g: Graph) => new Set(g.nodes.map((n) => (n.op.kind === 'resize' ? `resize ${n.op.mode} ${n.op.mode === 'nearest' ? n.op.nearest : n.op.coord}` : n.op.kind)));

for (const opset of [9, 11, 13]) {
  const name = `textdet_op${opset}`;
  test(`${name}: encoder, FPN with nearest x2, grouped ConvTranspose s2 output_padding 1, PixelShuffle/Unshuffle, bilinear resizes, ConvTranspose head: map and input gradient vs PyTorch float64 at batch 1 and 2, DeepLIFT summation`, async () => {
    const g = importOnnx(readFileSync(`tests/fixtures/spatial/${name}/model.onnx`));
    const want = opset < 11 ? ['resize nearest simple', 'convtranspose', 'transpose']
      : ['resize nearest floor', 'resize linear align_corners', 'resize linear half_pixel', 'convtranspose', 'affine', 'transpose'];
    assert.equal(want.filter((k) => !kinds(g).has(k)), [], `ops the fixture exercises: ${[...kinds(g)]}`);
    assert.is(g.nodes.filter((n) => n.op.kind === 'convtranspose').length, 3, 'three ConvTranspose');
    await checkTorchFixture(`tests/fixtures/spatial/${name}`, name, g, TOL);
  });
}

// ---------------------------------------------------------------------------------------------- hand-made models

/** input (N, ...dims) -> one node `op` (inputs: the activation, then initializers) at `opset`. */
function one(op: string, dims: number[], inits: Pb[], attrs: Record<string, AttrVal> = {}, opset = 13, names = inits.map((_, i) => `c${i}`)) {
  return model({ nodes: [node(op, 'n0', ['x', ...names], ['y'], attrs)], inits, inputs: [valueInfo('x', FLOAT, ['N', ...dims])], outputs: [valueInfo('y', FLOAT, [])], opset });
}
const f32 = (name: string, v: number[]) => tensor(name, [v.length], Float32Array.from(v));
const i64 = (name: string, v: number[]) => tensor(name, [v.length], v.map(BigInt));

test('LRN x=[2,7,3,4] size 3 alpha 0.3 beta 0.6 bias 1.5 (a Pow / banded conv / Pow / Mul chain): forward vs its ONNX definition in float64, gradient and DeepLIFT vs the reference, summation to delta', async () => {
  const [C, H, W, N, size, alpha, beta, bias] = [7, 3, 4, 2, 3, 0.3, 0.6, 1.5];
  const g = importOnnx(one('LRN', [C, H, W], [], { size, alpha: { float: alpha }, beta: { float: beta }, bias: { float: bias } }));
  assert.equal(g.nodes.map((n) => n.op.kind), ['act', 'conv', 'act', 'mul']);
  const r = mulberry32(11), x = Float32Array.from({ length: N * C * H * W }, () => 4 * r() - 2), xr = Float32Array.from(x, () => 4 * r() - 2);
  // y = x / (bias + alpha/size sum_{c-1..c+1} x^2)^beta, with the attributes as float32 (the model's values)
  const want = new Float64Array(x.length), M = H * W, k = Math.fround(Math.fround(alpha) / size), b32 = Math.fround(beta);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / M) % C, base = i - c * M;
    let s = 0;
    for (let k = Math.max(0, c - 1); k <= Math.min(C - 1, c + 1); k++) s += x[base + k * M] ** 2;
    want[i] = x[i] / (bias + k * s) ** b32;
  }
  const m = await Model.load(await nodeGpu(), g, 'lrn');
  try {
    const plan = await m.plan({ batch: N, read: [g.output], seedAt: g.output, backward: [{ grads: [g.input] }, { grads: [g.input], mode: 'deeplift' }] });
    const seed = Float32Array.from({ length: x.length }, () => 2 * r() - 1);
    const res = await plan.run(x, { seed, refInput: xr });
    const ef = relMax(res.values.get(g.output)!, want);
    const vals = refForward(g, Float64Array.from(x), N), refVals = refForward(g, Float64Array.from(xr), N);
    const ef64 = relMax(vals.get(g.output)!, want);
    const eg = relMax(res.passes[0].get(g.input)!, refBackward(g, vals, g.output, Float64Array.from(seed), N, 'grad').get(g.input)!);
    const md = res.passes[1].get(g.input)!, ed = relMax(md, refBackward(g, vals, g.output, Float64Array.from(seed), N, 'deeplift', refVals).get(g.input)!);
    let lhs = 0, rhs = 0, mag = 0;
    for (let i = 0; i < x.length; i++) { lhs += md[i] * (x[i] - xr[i]); const t = seed[i] * (want[i] - refVals.get(g.output)![i]); rhs += t; mag += Math.abs(t); }
    const es = Math.abs(lhs - rhs) / mag;
    console.log(`  LRN: forward ${ef.toExponential(1)} (reference ${ef64.toExponential(1)}), gradient ${eg.toExponential(1)}, DeepLIFT ${ed.toExponential(1)}, summation ${es.toExponential(1)}`);
    assert.ok(ef64 <= 1e-12, `reference vs definition ${ef64}`);
    assert.ok(ef <= 1e-5 && eg <= 1e-5 && ed <= 1e-5 && es <= 1e-5, `forward ${ef}, gradient ${eg}, deeplift ${ed}, summation ${es}`);
  } finally { m.destroy(); }
});

test('import rules: Resize by scales / sizes (opset 13) and Upsample (opsets 7 and 9) become one resize; an identity Resize an alias; DepthToSpace / SpaceToDepth a reshape, a transpose and a reshape', () => {
  const r13 = importOnnx(one('Resize', [2, 5, 6], [f32('s', [1, 1, 2, 3])], { mode: 'linear' }, 13, ['', 's']));
  const op = r13.nodes[0].op;
  assert.ok(op.kind === 'resize' && op.coord === 'half_pixel' && op.outSize.join() === '10,18', 'linear half_pixel 5x6 -> 10x18');
  const sz = importOnnx(one('Resize', [2, 5, 6], [i64('z', [1, 2, 7, 4])], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }, 13, ['', '', 'z']));
  const so = sz.nodes[0].op;
  assert.ok(so.kind === 'resize' && so.outSize.join() === '7,4' && so.scale[0] === 7 / 5, 'sizes: scale = out / in');
  const u7 = importOnnx(one('Upsample', [2, 3, 3], [], { mode: 'nearest', scales: { floats: [1, 1, 2, 2] } }, 7));
  assert.equal(u7.tensors.get(u7.output)!.shape, [2, 6, 6]);
  const u9 = importOnnx(one('Upsample', [2, 3, 3], [f32('c0', [1, 1, 3, 2])], { mode: 'linear' }, 9));
  const uo = u9.nodes[0].op;
  assert.ok(uo.kind === 'resize' && uo.nearest === 'simple' && uo.coord === 'asymmetric' && uo.outSize.join() === '9,6');
  assert.equal(importOnnx(one('Resize', [2, 5, 6], [f32('s', [1, 1, 1, 1])], {}, 13, ['', 's'])).nodes.map((n) => n.op.kind), ['alias']);
  const d2s = importOnnx(one('DepthToSpace', [8, 3, 3], [], { blocksize: 2, mode: 'CRD' }));
  assert.equal(d2s.nodes.map((n) => n.op.kind), ['alias', 'transpose', 'alias']);
  assert.equal(d2s.tensors.get(d2s.output)!.shape, [2, 6, 6]);
  const s2d = importOnnx(one('SpaceToDepth', [2, 4, 6], [], { blocksize: 2 }));
  assert.equal(s2d.tensors.get(s2d.output)!.shape, [8, 2, 3]);
});

const W3 = tensor('c0', [4, 2, 3, 3], new Float32Array(72).fill(0.1));
/** Each rejection: the node, the op and the attribute values in one line. */
const REJECT: [string, Uint8Array, string[]][] = [
  ['Resize tf_crop_and_resize', one('Resize', [2, 4, 4], [f32('r', [0, 0, 0, 0, 1, 1, 1, 1]), f32('s', [1, 1, 2, 2])], { coordinate_transformation_mode: 'tf_crop_and_resize' }, 13, ['r', 's']), ["node 'n0'", "Resize with coordinate_transformation_mode='tf_crop_and_resize'"]],
  ['Resize of the channel axis', one('Resize', [2, 4, 4], [f32('s', [1, 2, 1, 1])], {}, 13, ['', 's']), ['Resize changes axis 1 (scales [1,2,1,1]): only the last two axes (H, W) may be resized']],
  ['Resize of the batch', one('Resize', [2, 4, 4], [f32('s', [2, 1, 1, 1])], {}, 13, ['', 's']), ['Resize changes axis 0']],
  ['Resize antialias', one('Resize', [2, 4, 4], [f32('s', [1, 1, 0.5, 0.5])], { antialias: 1, mode: 'linear' }, 18, ['', 's']), ['Resize with antialias=1']],
  ['Resize keep_aspect_ratio_policy', one('Resize', [2, 4, 4], [i64('z', [3, 3])], { keep_aspect_ratio_policy: 'not_larger', axes: [2, 3] }, 18, ['', '', 'z']), ["Resize with keep_aspect_ratio_policy='not_larger'"]],
  ['Resize mode', one('Resize', [2, 4, 4], [f32('s', [1, 1, 2, 2])], { mode: 'area' }, 13, ['', 's']), ["Resize with mode='area'"]],
  ['Resize nearest_mode', one('Resize', [2, 4, 4], [f32('s', [1, 1, 2, 2])], { nearest_mode: 'stochastic' }, 13, ['', 's']), ["Resize with nearest_mode='stochastic'"]],
  ['Resize with scales and sizes', one('Resize', [2, 4, 4], [f32('s', [1, 1, 2, 2]), i64('z', [1, 2, 8, 8])], {}, 13, ['', 's', 'z']), ['Resize with both scales and sizes']],
  ['Resize without scales or sizes', one('Resize', [2, 4, 4], [], {}, 13, []), ['Resize without scales or sizes']],
  ['Resize nearest downsampling at opset 10', one('Resize', [2, 4, 4], [f32('c0', [1, 1, 0.5, 0.5])], {}, 10), ['Resize nearest downsampling at opset 10']],
  ['Resize scales computed from the input', model({ nodes: [node('Relu', 'r', ['x'], ['s']), node('Resize', 'n0', ['x', '', 's'], ['y'])], inputs: [valueInfo('x', FLOAT, ['N', 2, 4, 4])], outputs: [valueInfo('y', FLOAT, [])] }), ["node 'n0'", 'scales (input 2', 'must be a constant']],
  ['Upsample below 1', one('Upsample', [2, 4, 4], [f32('c0', [1, 1, 0.5, 1])], {}, 9), ['Upsample with scales [1,1,0.5,1] below 1']],
  ['ConvTranspose 1-D', one('ConvTranspose', [2, 5], [tensor('c0', [2, 3, 3], new Float32Array(18))]), ["node 'n0'", 'ConvTranspose weight of shape [2,3,3] (only 2-D']],
  ['ConvTranspose output_padding >= stride', one('ConvTranspose', [4, 5, 5], [W3], { strides: [2, 2], output_padding: [2, 0] }), ['output_padding [2,0] must be below the stride or dilation']],
  ['ConvTranspose channels mismatch', one('ConvTranspose', [3, 5, 5], [W3]), ['ConvTranspose weight of shape [4,2,3,3] on input [N,3,5,5]']],
  ['ConvTranspose group', one('ConvTranspose', [4, 5, 5], [W3], { group: 3 }), ['ConvTranspose group 3 with 4 input channels']],
  ['LRN size 0', one('LRN', [4, 5, 5], [], { size: 0 }), ['LRN with size 0']],
  ['DepthToSpace channels', one('DepthToSpace', [6, 2, 2], [], { blocksize: 2 }), ['DepthToSpace of 6 channels by blocksize 2']],
  ['SpaceToDepth odd size', one('SpaceToDepth', [2, 5, 4], [], { blocksize: 2 }), ['SpaceToDepth of 5x4 by blocksize 2']],
];
for (const [what, bytes, patterns] of REJECT) {
  test(`rejected with a precise UnsupportedError: ${what}`, () => importRejects(bytes, patterns));
}

test.run();
