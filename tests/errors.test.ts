// Errors at the API boundary are precise: the importer and the runtime name the op, the node, the shapes
// and the limits. ONNX models are written by hand with a tiny protobuf writer (field numbers as in
// src/onnx.ts / onnx.proto); a control test checks that the writer's valid model imports and runs, so
// the rejections below are about the one thing each case changes.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { importOnnx, SUPPORTED_OPS, UnsupportedError } from '../src/import.js';
import { OnnxError } from '../src/onnx.js';
import { ModelError } from '../src/graph.js';
import { Model } from '../src/model.js';
import { nodeGpu } from '../node/gpu.js';
import { FLOAT, INT64, Pb, model, node, tensor, valueInfo } from './onnx-writer.js';

// ==================================================================================================== models

/** Deterministic small weights. */
const ramp = (n: number, scale = 0.01) => Float32Array.from({ length: n }, (_, i) => ((i * 37) % 17 - 8) * scale);

/**
 * The valid model the cases vary: input (N,3,8,8) -> Conv 3x3 (4 out, pad 1) -> Relu -> GlobalAveragePool ->
 * Flatten -> Gemm (5 classes, transB) -> logits (N,5). `mid` replaces the Relu (node name 'act0').
 */
function convNet(o: { input?: Pb; mid?: Pb; weightExternal?: boolean } = {}): Uint8Array {
  return model({
    nodes: [
      node('Conv', 'conv0', ['input', 'w', 'b'], ['c'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
      o.mid ?? node('Relu', 'act0', ['c'], ['r']),
      node('GlobalAveragePool', 'gap0', ['r'], ['p']),
      node('Flatten', 'flat0', ['p'], ['f'], { axis: 1 }),
      node('Gemm', 'fc0', ['f', 'fw', 'fb'], ['logits'], { transB: 1 }),
    ],
    inits: [tensor('w', [4, 3, 3, 3], ramp(108), o.weightExternal), tensor('b', [4], ramp(4)),
      tensor('fw', [5, 4], ramp(20, 0.1)), tensor('fb', [5], ramp(5))],
    inputs: [o.input ?? valueInfo('input', FLOAT, ['N', 3, 8, 8])],
    outputs: [valueInfo('logits', FLOAT, ['N', 5])],
  });
}

/** Asserts that fn throws an error of class E whose message matches every pattern. */
function throwsWith(fn: () => unknown, E: new (...a: never[]) => Error, ...patterns: (RegExp | string)[]) {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  assert.ok(err, 'expected an error, none was thrown');
  assert.instance(err, E, `expected ${E.name}, got ${(err as Error).name}: ${(err as Error).message}`);
  for (const p of patterns) {
    const msg = (err as Error).message;
    assert.ok(typeof p === 'string' ? msg.includes(p) : p.test(msg), `message does not contain ${p}: ${msg}`);
  }
}

async function rejectsWith(p: Promise<unknown>, E: new (...a: never[]) => Error, ...patterns: (RegExp | string)[]) {
  let err: unknown;
  try { await p; } catch (e) { err = e; }
  assert.ok(err, 'expected a rejection, the promise resolved');
  throwsWith(() => { throw err; }, E, ...patterns);
}

// ==================================================================================================== importer

const imp = suite('errors: importer');

imp('control: handmade conv model x=[N,3,8,8] imports as conv, relu, gap, flatten, gemm -> [5]', () => {
  const g = importOnnx(convNet());
  assert.equal(g.nodes.map((n) => n.op.kind), ['conv', 'act', 'gap', 'alias', 'linear']);
  assert.equal(g.tensors.get('c')!.shape, [4, 8, 8]);
  assert.equal(g.tensors.get('logits')!.shape, [5]);
});

imp('float16 and float64 initializers are converted to float32 on load (raw_data), with the exact values', () => {
  // values k/64 for k in -8..8 and 1.5e-5 (a half subnormal) are exact in float16
  const vals = Float32Array.from({ length: 108 }, (_, i) => (i === 5 ? 2 ** -24 * 251 : ((i * 37) % 17 - 8) / 64));
  const half = new Uint16Array(vals.length);
  vals.forEach((v, i) => { // float32 -> float16 bits, for these exactly representable values
    const a = Math.abs(v), sign = v < 0 ? 0x8000 : 0;
    if (a === 0) half[i] = sign;
    else if (a < 2 ** -14) half[i] = sign | Math.round(a / 2 ** -24);
    else { const e = Math.floor(Math.log2(a)); half[i] = sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024); }
  });
  const t16 = new Pb(); for (const d of [4, 3, 3, 3]) t16.int(1, d);
  t16.int(2, 10).str(8, 'w').bytes(9, new Uint8Array(half.buffer));
  const f64 = Float64Array.from(ramp(4)), t64 = new Pb().int(1, 4).int(2, 11).str(8, 'b').bytes(9, new Uint8Array(f64.buffer));
  const bytes = model({
    nodes: [node('Conv', 'conv0', ['input', 'w', 'b'], ['c'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }), node('Relu', 'act0', ['c'], ['r']),
      node('GlobalAveragePool', 'gap0', ['r'], ['p']), node('Flatten', 'flat0', ['p'], ['f'], { axis: 1 }), node('Gemm', 'fc0', ['f', 'fw', 'fb'], ['logits'], { transB: 1 })],
    inits: [t16, t64, tensor('fw', [5, 4], ramp(20, 0.1)), tensor('fb', [5], ramp(5))],
    inputs: [valueInfo('input', FLOAT, ['N', 3, 8, 8])], outputs: [valueInfo('logits', FLOAT, ['N', 5])],
  });
  const conv = importOnnx(bytes).nodes[0].op as { w: Float32Array; b: Float32Array };
  assert.equal(Array.from(conv.w), Array.from(vals));
  assert.equal(Array.from(conv.b), Array.from(ramp(4)));
});

imp('unsupported op Sin at node act0 -> names node and op, lists every supported op', () => {
  throwsWith(() => importOnnx(convNet({ mid: node('Sin', 'act0', ['c'], ['r']) })), UnsupportedError,
    "node 'act0'", 'op Sin is not supported', `Supported ops: ${SUPPORTED_OPS.join(', ')}`);
});

imp('dynamic H/W input [N,3,H,W] without a size -> names the input, the dimension and the flag; with one it imports', () => {
  const bytes = convNet({ input: valueInfo('input', FLOAT, ['N', 3, 'H', 'W']) });
  throwsWith(() => importOnnx(bytes), ModelError, "graph input 'input' has symbolic dimension 2 ('H') in [N,3,H,W]", '--input-shape 1x3xHxW');
  assert.equal(importOnnx(bytes, { inputShape: [1, 3, 8, 8] }).tensors.get('input')!.shape, [3, 8, 8]);
});

imp('int64 input [N,3,8,8] -> names the input and its type', () => {
  throwsWith(() => importOnnx(convNet({ input: valueInfo('input', INT64, ['N', 3, 8, 8]) })), UnsupportedError,
    "graph input 'input' is int64", 'only float32 inputs');
});

imp('external data on conv weight w=[4,3,3,3] -> names the tensor and how to inline it', () => {
  throwsWith(() => importOnnx(convNet({ weightExternal: true })), OnnxError, "tensor 'w' uses external data", 'save_as_external_data=False');
});

imp('Reshape (N,4,8,8) to [2,-1] (hard-coded batch) -> names the node and the target shape', () => {
  const bytes = model({
    nodes: [node('Conv', 'conv0', ['input', 'w', 'b'], ['c'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
      node('Reshape', 'reshape0', ['c', 'shape'], ['logits'])],
    inits: [tensor('w', [4, 3, 3, 3], ramp(108)), tensor('b', [4], ramp(4)), tensor('shape', [2], [2n, -1n])],
    inputs: [valueInfo('input', FLOAT, ['N', 3, 8, 8])], outputs: [valueInfo('logits', FLOAT, ['N', 256])],
  });
  throwsWith(() => importOnnx(bytes), UnsupportedError, "node 'reshape0'", 'Reshape to [2,-1]', 'the first dimension must stay the batch');
});

imp('Softmax (N,10) over the batch axis 0, followed by Relu -> names the node and the axis', () => {
  const bytes = model({
    nodes: [node('Softmax', 'softmax0', ['input'], ['s'], { axis: 0 }), node('Relu', 'relu0', ['s'], ['y'])],
    inputs: [valueInfo('input', FLOAT, ['N', 10])], outputs: [valueInfo('y', FLOAT, ['N', 10])],
  });
  throwsWith(() => importOnnx(bytes), UnsupportedError, "node 'softmax0'", 'Softmax over the batch axis 0 (axis=0)');
});

imp('opset 21 -> names the opset and the supported range', () => {
  const bytes = model({ nodes: [node('Relu', 'relu0', ['input'], ['y'])], inputs: [valueInfo('input', FLOAT, ['N', 10])], outputs: [valueInfo('y', FLOAT, ['N', 10])], opset: 21 });
  throwsWith(() => importOnnx(bytes), UnsupportedError, 'ONNX opset 21 is not supported', 'opsets 7 to 20');
});

imp('Conv with a non-constant weight (a second graph input) -> counts the inputs', () => {
  const bytes = model({
    nodes: [node('Conv', 'conv0', ['input', 'w'], ['y'], { kernel_shape: [3, 3] })],
    inputs: [valueInfo('input', FLOAT, ['N', 3, 8, 8]), valueInfo('w', FLOAT, [4, 3, 3, 3])], outputs: [valueInfo('y', FLOAT, ['N', 4, 6, 6])],
  });
  throwsWith(() => importOnnx(bytes), UnsupportedError, 'exactly one graph input, found 2: input, w');
});

imp('Conv weight [4,2,3,3] on a 3-channel input -> names the node and both channel counts', () => {
  const bytes = model({
    nodes: [node('Conv', 'conv0', ['input', 'w'], ['y'], { kernel_shape: [3, 3] })],
    inits: [tensor('w', [4, 2, 3, 3], ramp(72))],
    inputs: [valueInfo('input', FLOAT, ['N', 3, 8, 8])], outputs: [valueInfo('y', FLOAT, ['N', 4, 6, 6])],
  });
  throwsWith(() => importOnnx(bytes), ModelError, "node 'conv0' (Conv)", 'expects 2 input channels', 'got 3', '[3,8,8]');
});

/** A one-conv model: input (N,3,8,8), weight [4,3,3,3], the given attributes and bias. */
const oneConv = (attrs: Record<string, number[] | number>, bias: Float32Array | null = ramp(4)) => model({
  nodes: [node('Conv', 'conv0', ['input', 'w', ...(bias ? ['b'] : [])], ['y'], attrs)],
  inits: [tensor('w', [4, 3, 3, 3], ramp(108)), ...(bias ? [tensor('b', [bias.length], bias)] : [])],
  inputs: [valueInfo('input', FLOAT, ['N', 3, 8, 8])], outputs: [valueInfo('y', FLOAT, ['N', 4, 6, 6])],
});

imp('strict Conv attributes: bias length, dilations/strides >= 1 and of length 2, pads of length 4, kernel_shape = weight', () => {
  throwsWith(() => importOnnx(oneConv({ kernel_shape: [3, 3] }, ramp(3))), UnsupportedError, "node 'conv0'", 'bias has 3 values; the weight has 4 output channels');
  throwsWith(() => importOnnx(oneConv({ kernel_shape: [3, 3] }, ramp(6))), UnsupportedError, 'bias has 6 values');
  throwsWith(() => importOnnx(oneConv({ dilations: [0, 0] })), UnsupportedError, 'attribute dilations = [0,0]: every value must be an integer >= 1');
  throwsWith(() => importOnnx(oneConv({ strides: [1, 1, 1] })), UnsupportedError, 'attribute strides has 3 values [1,1,1]; expected 2');
  throwsWith(() => importOnnx(oneConv({ pads: [1, 1] })), UnsupportedError, 'attribute pads has 2 values [1,1]; expected 4');
  throwsWith(() => importOnnx(oneConv({ pads: [1, -1, 1, 1] })), UnsupportedError, 'attribute pads = [1,-1,1,1]: every value must be an integer >= 0');
  throwsWith(() => importOnnx(oneConv({ kernel_shape: [5, 5] })), UnsupportedError, 'kernel_shape [5,5] differs from the weight\'s 3x3');
  throwsWith(() => importOnnx(oneConv({ group: 3 })), UnsupportedError, 'group 3 with 4 output channels');
  assert.equal(importOnnx(oneConv({ kernel_shape: [3, 3] })).tensors.get('y')!.shape, [4, 6, 6], 'the control imports');
});

imp('a tensor past 2^28 values per sample is refused at import, by node and shape (fuzz: a mutated pad of 8e7)', () => {
  // pads 82733805 on W: W_out = 8 + 2*82733805 - 2 = 165467616, 4 * 6 * 165467616 = 3.97e9 values per sample
  throwsWith(() => importOnnx(oneConv({ pads: [0, 82733805, 0, 82733805] })), ModelError, "node 'conv0' (Conv): output 'y' would have shape (N,4,6,165467616)", 'the limit is 268435456');
  // just under the limit imports: 4 * 6 * W_out = 2^28 - 16 -> W_out = 11184810 (pad 5592402)
  assert.equal(importOnnx(oneConv({ pads: [0, 5592402, 0, 5592402] })).tensors.get('y')!.shape, [4, 6, 11184810]);
});

const vggBytes = () => new Uint8Array(readFileSync('tests/fixtures/vgg/model.onnx'));

imp('truncated file: vgg fixture cut to half its bytes -> truncated protobuf', () => {
  const b = vggBytes();
  throwsWith(() => importOnnx(b.subarray(0, b.length >> 1)), OnnxError, 'truncated protobuf');
});

imp('not ONNX: a .npy file and plain text -> not an ONNX protobuf', () => {
  throwsWith(() => importOnnx(new Uint8Array(readFileSync('tests/fixtures/vgg/x.npy'))), OnnxError, /not an ONNX/);
  throwsWith(() => importOnnx(new TextEncoder().encode('hello, this is not a model\n')), OnnxError, /not an ONNX/);
});

imp('empty file (0 bytes) -> no graph with nodes', () => {
  throwsWith(() => importOnnx(new Uint8Array(0)), OnnxError, 'no graph with nodes');
});

imp.run();

// ===================================================================================================== runtime

const rt = suite('errors: runtime');
let net: Model;
rt.before(async () => { net = await Model.load(await nodeGpu(), convNet(), 'handmade'); });
rt.after(() => net?.destroy());

rt('control: handmade conv model runs batch=2 x=[2,3,8,8] -> 2x5 finite logits', async () => {
  const plan = await net.plan({ batch: 2 });
  try {
    const r = await plan.run(ramp(2 * 3 * 64, 0.1));
    assert.is(r.logits.length, 10);
    assert.ok(r.logits.every(Number.isFinite));
  } finally { plan.destroy(); }
});

rt("plan read=['nope'] -> names the tensor and lists the 4-D candidates", async () => {
  await rejectsWith(net.plan({ batch: 1, read: ['nope'] }), ModelError, "'nope' is not a tensor of this model", '4-D candidates: c, r');
});

rt("plan grads=['conv0'] (a node name, not a tensor) -> lists the 4-D candidates", async () => {
  await rejectsWith(net.plan({ batch: 1, grads: ['conv0'] }), ModelError, "'conv0' is not a tensor of this model", 'candidates: c, r');
});

rt('plan batch=maxBatch+1 x=[N,3,8,8] -> names the binding limit and the max batch', async () => {
  const max = net.maxBatch(), limit = net.limits.binding;
  // the largest activation is the conv output, 4*8*8 floats = 1 KiB per image
  assert.is(max, Math.floor(limit / (4 * 8 * 8 * 4)));
  await rejectsWith(net.plan({ batch: max + 1 }), ModelError, `at batch ${max + 1}`, `storage binding limit of ${limit}`, `use a batch of at most ${max}`);
});

rt('plan batch=0 -> positive integer', async () => {
  await rejectsWith(net.plan({ batch: 0 }), ModelError, 'batch must be a positive integer, got 0');
});

rt('run batch=2 with 1.5 images (288 values) and with 3 images (576 values) -> expected k*192 for 1 <= k <= 2', async () => {
  const plan = await net.plan({ batch: 2 });
  try {
    await rejectsWith(plan.run(new Float32Array(288)), ModelError, 'input has 288 values', 'expected k*192 for 1 <= k <= 2', '[3,8,8]');
    await rejectsWith(plan.run(new Float32Array(576)), ModelError, 'input has 576 values');
    assert.is((await plan.run(new Float32Array(192))).logits.length, 5); // the plan still works afterwards
  } finally { plan.destroy(); }
});

rt.run();
