// Reductions, normalisations, softmax and MatMul through the importer: PyTorch exports (tools/make_rows_fixtures.py, at
// opsets 11, 13 and 17: LayerNorm written out and as LayerNormalization, Reduce* axes as attributes and as inputs)
// against PyTorch float64 logits and input gradients at batch 1 and 2, with DeepLIFT summation to delta; hand-made ONNX
// models for the import rules (global pooling written as ReduceMean is a GlobalAveragePool, GlobalMaxPool is a
// ReduceMax, MatMul by a constant is a linear layer over the last axis, LayerNormalization's extra outputs) and every
// refused attribute's precise error. Kernel-level checks are in tests/kernels.test.ts, the float64 reference in tests/ref.ts.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { importOnnx } from '../src/import.js';
import { Graph } from '../src/graph.js';
import { Model } from '../src/model.js';
import { nodeGpu } from '../node/gpu.js';
import { checkTorchFixture, importRejects } from './helpers.js';
import { AttrVal, FLOAT, model, node, tensor, valueInfo } from './onnx-writer.js';

const test = suite('rows');
const dir = (name: string) => `tests/fixtures/rows/${name}`;
const TOL = 1e-4; // float32 GPU vs PyTorch float64, relative to the golden's max (observed values printed)

/** What a graph exercises: op kinds, reduce functions, softmax / log-softmax, instance vs layer norm, linear over rows. */
function forms(g: Graph): Set<string> {
  const f = new Set<string>();
  for (const n of g.nodes) {
    const op = n.op, xs = g.tensors.get(n.inputs[0])!.shape;
    if (op.kind === 'reduce') f.add(`reduce ${op.fn}`);
    else if (op.kind === 'softmax') f.add(op.log ? 'log-softmax' : `softmax ${op.axis === xs.length - 1 ? 'last' : 'inner'} axis`);
    else if (op.kind === 'norm') f.add(op.stride > 1 ? 'instancenorm' : 'layernorm');
    else if (op.kind === 'linear' && xs.length > 1) f.add('linear over the last axis');
    else if (op.kind === 'matmul') f.add(n.inputs.every((t) => !g.tensors.get(t)!.data) ? 'matmul of activations' : 'matmul by a constant');
    else if (op.kind === 'affine') f.add(`affine rank ${xs.length}`);
  }
  return f;
}

for (const name of ['op11', 'op13', 'op17']) {
  test(`${name}: InstanceNorm, BN after Concat and on (N,C), channel Softmax, LayerNorm${name === 'op17' ? '' : ' written out'}, attention MatMuls, ReduceMean/Max/L2/Sum, LogSoftmax: logits and input gradient vs PyTorch at batch 1 and 2, DeepLIFT summation to delta`, async () => {
    const g = importOnnx(readFileSync(`${dir(name)}/model.onnx`));
    // opset 11 exports softmax(dim=1) as Transpose, Softmax over the last axis, Transpose
    const want = ['reduce mean', 'reduce max', 'reduce l2', 'reduce sum', 'softmax last axis', 'log-softmax', 'instancenorm', 'linear over the last axis',
      'matmul of activations', 'affine rank 3', 'affine rank 1', ...(name === 'op11' ? [] : ['softmax inner axis']), ...(name === 'op17' ? ['layernorm'] : [])];
    assert.equal(want.filter((k) => !forms(g).has(k)), [], `forms the fixture exercises: ${[...forms(g)]}`);
    await checkTorchFixture(dir(name), name, g, TOL);
  });
}

// ---------------------------------------------------------------------------------------------- hand-made models

const ramp = (n: number, scale = 0.1) => Float32Array.from({ length: n }, (_, i) => ((i * 37) % 17 - 8) * scale);
/** input (N, ...dims) -> one node `op` (inputs: the activation, x2 = pre(x) when given, then float and int64
 *  initializers) -> its outputs (the first is the graph output unless `out` names others), at `opset`. */
function one(op: string, dims: number[], attrs: Record<string, AttrVal> = {},
  o: { opset?: number; ints?: Record<string, number[]>; floats?: Record<string, [number[], Float32Array]>; outputs?: string[]; out?: string[];
    pre?: [string, Record<string, AttrVal>] } = {}) {
  const ints = Object.keys(o.ints ?? {}), floats = Object.keys(o.floats ?? {}), outs = o.outputs ?? ['y'];
  const pre = o.pre ? [node(o.pre[0], 'pre', ['x'], ['x2'], o.pre[1])] : [];
  return model({
    nodes: [...pre, node(op, 'n0', ['x', ...(o.pre ? ['x2'] : []), ...floats, ...ints], outs, attrs)],
    inits: [...ints.map((k) => tensor(k, [o.ints![k].length], o.ints![k].map(BigInt))), ...floats.map((k) => tensor(k, o.floats![k][0], o.floats![k][1]))],
    inputs: [valueInfo('x', FLOAT, ['N', ...dims])], outputs: (o.out ?? [outs[0]]).map((v) => valueInfo(v, FLOAT, [])), opset: o.opset,
  });
}
const shapeOf = (g: Graph, t = g.output) => g.tensors.get(t)!.shape;
const kinds = (g: Graph) => g.nodes.map((n) => n.op.kind);

test('Reduce axes: ReduceSum opset 13 axes input [-1] keepdims 0, ReduceMean opset 18 axes input, ReduceMax opset 13 attribute, noop_with_empty_axes', () => {
  const s = importOnnx(one('ReduceSum', [3, 4, 5], { keepdims: 0 }, { ints: { ax: [-1] } }));
  assert.equal([kinds(s), shapeOf(s)], [['reduce'], [3, 4]]);
  assert.ok(s.nodes[0].op.kind === 'reduce' && s.nodes[0].op.axes.join() === '2' && !s.nodes[0].op.keep);
  const m = importOnnx(one('ReduceMean', [3, 4, 5], {}, { opset: 18, ints: { ax: [1, 3] } }));
  assert.equal(shapeOf(m), [1, 4, 1]);
  const mx = importOnnx(one('ReduceMax', [3, 4, 5], { axes: [-2], keepdims: 1 }));
  assert.equal(shapeOf(mx), [3, 1, 5]);
  const noop = importOnnx(one('ReduceSum', [3, 4], { noop_with_empty_axes: 1 }));
  assert.equal([kinds(noop), shapeOf(noop)], [['alias'], [3, 4]]);
});

test('global pooling written as ReduceMean over (2,3) is a GlobalAveragePool (keepdims 0: then an alias to (N,C)), with its values; GlobalMaxPool is ReduceMax over (H,W)', async () => {
  const mean = importOnnx(one('ReduceMean', [4, 5, 6], { axes: [2, 3], keepdims: 0 })), gap = importOnnx(one('GlobalAveragePool', [4, 5, 6]));
  assert.equal([kinds(mean), shapeOf(mean)], [['gap', 'alias'], [4]]);
  const gmax = importOnnx(one('GlobalMaxPool', [4, 5, 6])), rmax = importOnnx(one('ReduceMax', [4, 5, 6], { axes: [3, 2] }));
  assert.equal([kinds(gmax), shapeOf(gmax)], [['reduce'], [4, 1, 1]]);
  const gpu = await nodeGpu(), x = ramp(2 * 120, 0.37), out = async (g: Graph) => {
    const m = await Model.load(gpu, g, 'pool');
    try { return (await (await m.plan({ batch: 2 })).run(x)).logits; } finally { m.destroy(); }
  };
  const [a, b, c, d] = [await out(mean), await out(gap), await out(gmax), await out(rmax)];
  assert.equal(Array.from(a), Array.from(b), 'ReduceMean over (2,3) and GlobalAveragePool give the same values');
  assert.equal(Array.from(c), Array.from(d), 'GlobalMaxPool and ReduceMax over (2,3) give the same values');
  for (let i = 0; i < 8; i++) assert.is(c[i], Math.max(...x.subarray(i * 30, (i + 1) * 30)), `max of channel ${i}`);
});

test('LayerNormalization (N,5,8) axis -1: Scale [8] and B [1,8] (broadcast) become the norm op; Mean and InvStdDev become nodes only when read', () => {
  const floats = { s: [[8], ramp(8)] as [number[], Float32Array], b: [[1, 8], ramp(8, 0.01)] as [number[], Float32Array] };
  const g = importOnnx(one('LayerNormalization', [5, 8], { axis: -1, epsilon: { float: 0.01 } }, { opset: 17, floats }));
  assert.equal(kinds(g), ['norm']);
  const op = g.nodes[0].op;
  assert.ok(op.kind === 'norm' && op.axis === 1 && op.stride === 1 && Math.abs(op.eps - 0.01) < 1e-9);
  assert.equal(Array.from(op.kind === 'norm' ? op.bias : []), Array.from(ramp(8, 0.01)));
  const withStats = importOnnx(one('LayerNormalization', [5, 8], {}, { opset: 17, floats, outputs: ['y', 'mean', 'inv'], out: ['inv'] }));
  assert.equal(kinds(withStats), ['norm', 'reduce', 'sub', 'mul', 'reduce', 'add', 'act']);
  assert.equal(shapeOf(withStats, 'inv'), [5, 1]);
});

test('MatMul: by a constant (D,P) a linear over the last axis; by a constant (D) a linear to one output and an alias; of activations a matmul; constant on the left a matmul', () => {
  const lin = importOnnx(one('MatMul', [3, 4, 6], {}, { floats: { w: [[6, 5], ramp(30)] } }));
  assert.equal([kinds(lin), shapeOf(lin)], [['linear'], [3, 4, 5]]);
  const vec = importOnnx(one('MatMul', [3, 6], {}, { floats: { w: [[6], ramp(6)] } }));
  assert.equal([kinds(vec), shapeOf(vec)], [['linear', 'alias'], [3]]);
  const act = importOnnx(one('MatMul', [2, 5, 4], {}, { pre: ['Transpose', { perm: [0, 1, 3, 2] }] }));
  assert.equal([kinds(act), shapeOf(act)], [['transpose', 'matmul'], [2, 5, 5]]);
  const left = importOnnx(model({
    nodes: [node('MatMul', 'n0', ['w', 'x'], ['y'])], inits: [tensor('w', [3, 2], ramp(6))],
    inputs: [valueInfo('x', FLOAT, ['N', 4, 2, 5])], outputs: [valueInfo('y', FLOAT, [])],
  }));
  assert.equal([kinds(left), shapeOf(left)], [['matmul'], [4, 3, 5]]);
});

test('Softmax opset 11 axis 1 of (N,3,4) normalises the flattened (3,4); opset 13 axis 1 only the 3; LogSoftmax likewise', () => {
  const old = importOnnx(one('Softmax', [3, 4], { axis: 1 }, { opset: 11 })).nodes[0].op, now = importOnnx(one('LogSoftmax', [3, 4], { axis: 1 })).nodes[0].op;
  assert.equal(old, { kind: 'softmax', axis: 0, end: 2, log: false });
  assert.equal(now, { kind: 'softmax', axis: 0, end: 1, log: true });
});

/** Each rejection: the node, the op and the attribute values in one line. */
const REJECT: [string, Uint8Array, string[]][] = [
  ['ReduceMean without axes (every axis, the batch too)', one('ReduceMean', [3, 4]), ["node 'n0'", 'ReduceMean without axes reduces every axis of [N,3,4], the batch axis 0 included']],
  ['ReduceSum over the batch', one('ReduceSum', [3, 4], {}, { ints: { ax: [0, 1] } }), ['ReduceSum over the batch axis 0 (axes [0,1])']],
  ['ReduceMax axis out of range', one('ReduceMax', [3, 4], { axes: [3] }), ['ReduceMax with axis 3 outside rank 3']],
  ['ReduceL2 naming an axis twice', one('ReduceL2', [3, 4], { axes: [1, -2] }), ['ReduceL2 with axes [1,-2] naming an axis twice']],
  ['ReduceSum axes computed from the image', one('ReduceSum', [3, 4], {}, { pre: ['Relu', {}] }), ['ReduceSum): axes (input', 'must be a constant']],
  ['LayerNormalization over the batch', one('LayerNormalization', [3, 4], { axis: 0 }, { opset: 17, floats: { s: [[2, 3, 4], ramp(24)] } }), ['LayerNormalization over the batch axis 0 (axis=0)']],
  ['LayerNormalization Scale of the wrong shape', one('LayerNormalization', [3, 4], { axis: -1 }, { opset: 17, floats: { s: [[3], ramp(3)] } }), ['LayerNormalization Scale of shape [3] does not broadcast to the normalised shape [4]']],
  ['LogSoftmax over the batch', one('LogSoftmax', [3, 4], { axis: -3 }), ['LogSoftmax over the batch axis 0 (axis=-3)']],
  ['Gemm of a rank-3 input', one('Gemm', [3, 4], { transB: 1 }, { floats: { w: [[5, 4], ramp(20)] } }), ['Gemm of an input of rank 3 [N,3,4] (Gemm is 2-D']],
  ['MatMul by a constant that varies along the batch', one('MatMul', [3, 4], {}, { floats: { w: [[2, 4, 5], ramp(40)] } }), ["MatMul constant 'w' of shape [2,4,5] varies along the batch axis"]],
  ['MatMul of activations of different ranks', one('MatMul', [2, 3, 4], {}, { pre: ['ReduceMean', { axes: [1], keepdims: 0 }] }), ['MatMul of activations of different ranks [N,2,3,4] and [N,3,4]']],
  ['MatMul of (N,K) activations (the rows would be the batch)', one('MatMul', [4], {}, { pre: ['Relu', {}] }), ["MatMul of the activation 'x' of shape [N,4]: its matrix rows would be the batch"]],
  ['MatMul with inner sizes that differ', one('MatMul', [3, 4], {}, { floats: { w: [[5, 2], ramp(10)] } }), ['MatMul of [N,3,4] by a constant of shape [5,2]: inner sizes differ']],
];
for (const [what, bytes, patterns] of REJECT) {
  test(`rejected with a precise UnsupportedError: ${what}`, () => importRejects(bytes, patterns));
}

test.run();
