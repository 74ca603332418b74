// Layout ops through the importer: PyTorch exports of the patterns real models use (tools/make_layout_fixtures.py, at
// opsets 9, 11 and 13: Slice, Pad and Split as attributes and as inputs) against PyTorch float64 logits and input
// gradients, plus DeepLIFT summation to delta; hand-made ONNX models for the import rules (a scalar Gather drops its
// axis, Split emits only the outputs used, Flatten after size-1 axes) and every batch-moving attribute's precise error.
// Kernel-level checks of the ops are in tests/kernels.test.ts, the float64 reference in tests/ref.ts.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { importOnnx, UnsupportedError } from '../src/import.js';
import { Graph } from '../src/graph.js';
import { checkTorchFixture, importRejects } from './helpers.js';
import { AttrVal, FLOAT, Pb, model, node, tensor, valueInfo } from './onnx-writer.js';

const test = suite('layout');
const dir = (name: string) => `tests/fixtures/layout/${name}`;
const TOL = 1e-4; // float32 GPU vs PyTorch float64, relative to the golden's max (observed below, printed)

/** The layout ops of a graph, with their modes: what the fixture must exercise. */
const kinds = (g: Graph) => new Set(g.nodes.map((n) => (n.op.kind === 'pad' ? `pad ${n.op.mode}` : n.op.kind === 'slice' && n.op.step.some((k) => k < 0) ? 'slice reversed' : n.op.kind)));

for (const name of ['op9', 'op11', 'op13']) {
  test(`${name}: reflect/edge/constant Pad, channel shuffle, Split, strided and reversed Slice, Tile, class-token Gather: logits and input gradient vs PyTorch at batch 1 and 2, DeepLIFT summation to delta`, async () => {
    const g = importOnnx(readFileSync(`${dir(name)}/model.onnx`));
    const want = ['pad reflect', 'pad edge', 'pad constant', 'transpose', 'slice', 'tile', 'gather', ...(name === 'op9' ? [] : ['slice reversed'])];
    assert.equal(want.filter((k) => !kinds(g).has(k)), [], `layout ops the fixture exercises: ${[...kinds(g)]}`);
    assert.is(g.nodes.filter((n) => n.source === 'Split').length, 2, 'Split: one slice per output');
    await checkTorchFixture(dir(name), name, g, TOL);
  });
}

// ---------------------------------------------------------------------------------------------- hand-made models

/** input (N, ...dims) -> one node `op` (inputs: the activation, then int64 initializers) -> outputs (the first is the
 *  graph output), at `opset`. */
function one(op: string, dims: number[], consts: Record<string, number[]>, attrs: Record<string, AttrVal> = {}, o: { opset?: number; outputs?: string[]; floats?: Pb[] } = {}) {
  const names = Object.keys(consts), outs = o.outputs ?? ['y'];
  return model({
    nodes: [node(op, 'n0', ['x', ...names], outs, attrs)],
    inits: [...names.map((k) => tensor(k, [consts[k].length], consts[k].map(BigInt))), ...(o.floats ?? [])],
    inputs: [valueInfo('x', FLOAT, ['N', ...dims])], outputs: [valueInfo(outs[0], FLOAT, [])], opset: o.opset,
  });
}
const shapeOf = (g: Graph, t = g.output) => g.tensors.get(t)!.shape;

test('Gather x[:, 0] of (N,5,8) (a scalar index) is a gather of one token and an alias that drops the axis: (N,8)', () => {
  const bytes = model({
    nodes: [node('Gather', 'cls', ['x', 'i'], ['y'], { axis: 1 })],
    inits: [new Pb().int(2, 7).str(8, 'i').int(7, 0)], // a rank-0 int64 tensor
    inputs: [valueInfo('x', FLOAT, ['N', 5, 8])], outputs: [valueInfo('y', FLOAT, ['N', 8])],
  });
  const g = importOnnx(bytes);
  assert.equal(g.nodes.map((n) => n.op.kind), ['gather', 'alias']);
  assert.equal(shapeOf(g), [8]);
});

test('Gather of 2-D indices [[3,0],[1,1],[0,2]] on axis 2 of (N,2,4,3): (N,2,3,2,3)', () => {
  const bytes = model({
    nodes: [node('Gather', 'g', ['x', 'i'], ['y'], { axis: 2 })],
    inits: [tensor('i', [3, 2], [3n, 0n, 1n, 1n, 0n, 2n])],
    inputs: [valueInfo('x', FLOAT, ['N', 2, 4, 3])], outputs: [valueInfo('y', FLOAT, [])],
  });
  const g = importOnnx(bytes);
  assert.equal(shapeOf(g), [2, 3, 2, 3]);
  const op = g.nodes[0].op;
  assert.ok(op.kind === 'gather' && op.axis === 1 && op.indices.join() === '3,0,1,1,0,2');
});

test('Split (N,6,4) on axis 1 into [1,2,3] with only outputs 0 and 2 used: two slices; opset 11 attribute, opset 18 num_outputs (last part smaller)', () => {
  const used = (opset: number, attrs: Record<string, AttrVal>, consts: Record<string, number[]> = {}) => importOnnx(model({
    nodes: [node('Split', 's', ['x', ...Object.keys(consts)], ['a', 'b', 'c'], attrs), node('Relu', 'r', ['c'], ['rc']), node('Add', 'add', ['a', 'rc'], ['y'])],
    inits: Object.entries(consts).map(([k, v]) => tensor(k, [v.length], v.map(BigInt))),
    inputs: [valueInfo('x', FLOAT, ['N', 6, 4])], outputs: [valueInfo('y', FLOAT, [])], opset,
  }));
  for (const g of [used(13, { axis: 1 }, { split: [1, 2, 3] }), used(11, { axis: 1, split: [1, 2, 3] })]) {
    const slices = g.nodes.filter((n) => n.source === 'Split');
    assert.equal(slices.map((n) => [n.output, shapeOf(g, n.output)]), [['a', [1, 4]], ['c', [3, 4]]]);
  }
  const g18 = importOnnx(one('Split', [7, 4], {}, { axis: 1, num_outputs: 3 }, { opset: 18, outputs: ['a', 'b', 'c'] }));
  assert.equal(g18.nodes.map((n) => [n.output, shapeOf(g18, n.output)]), [['a', [3, 4]]], 'ceil(7 / 3) = 3: parts 3, 3, 1; only a is used');
  const g18c = importOnnx(model({ nodes: [node('Split', 's', ['x'], ['a', 'b', 'c'], { axis: 1, num_outputs: 3 })], inputs: [valueInfo('x', FLOAT, ['N', 7, 4])], outputs: [valueInfo('c', FLOAT, [])], opset: 18 }));
  assert.equal(shapeOf(g18c, 'c'), [1, 4]);
  assert.ok(g18c.nodes[0].op.kind === 'slice' && g18c.nodes[0].op.begin[0] === 6, 'the last part starts at 6');
});

test('Flatten(axis=2) of (N,1,4,5) keeps the batch (the axis it joins has size 1): an alias to (N,20)', () => {
  const g = importOnnx(one('Flatten', [1, 4, 5], {}, { axis: 2 }));
  assert.equal(g.nodes.map((n) => n.op.kind), ['alias']);
  assert.equal(shapeOf(g), [20]);
});

test('identity Transpose, full Slice, zero Pad, Tile of ones, Expand to the same shape: aliases (no dispatch)', () => {
  const cases = [one('Transpose', [3, 4], {}, { perm: [0, 1, 2] }), one('Slice', [3, 4], { st: [0], en: [2 ** 31 - 1], ax: [2] }),
    one('Pad', [3, 4], { pads: [0, 0, 0, 0, 0, 0] }), one('Tile', [3, 4], { r: [1, 1, 1] }), one('Expand', [3, 4], { s: [1, 3, 1] })];
  for (const bytes of cases) assert.equal(importOnnx(bytes).nodes.map((n) => n.op.kind), ['alias']);
});

/** Each rejection: the node, the op and the attribute values in one line. */
const REJECT: [string, Uint8Array, string[]][] = [
  ['Transpose perm [1,0,2] moves the batch', one('Transpose', [3, 4], {}, { perm: [1, 0, 2] }), ["node 'n0'", "Transpose gives the graph output 'y' [3,N,4] with the batch at axis 1"]], // src/batchaxis.ts moves it; the output needs it at 0
  ['Slice of the batch 0:2', one('Slice', [3, 4], { st: [0], en: [2], ax: [0] }), ["node 'n0'", 'Slice on the batch axis 0 (start 0, end 2, step 1)']],
  ['Slice giving an empty tensor', one('Slice', [3, 4], { st: [5], en: [9], ax: [1] }), ['Slice gives an empty tensor [N,0,4]']],
  ['Slice step 0', one('Slice', [3, 4], { st: [0], en: [2], ax: [1], k: [0] }), ['Slice with step 0 on axis 1']],
  ['Gather on the batch axis', one('Gather', [3, 4], { i: [0] }, { axis: 0 }), ['Gather on the batch axis 0 (axis=0)']],
  ['Gather index out of range', one('Gather', [3, 4], { i: [0, 3] }, { axis: 1 }), ['Gather index 3 is outside axis 1 of size 3']],
  ['Pad of the batch', one('Pad', [3, 4], { pads: [1, 0, 0, 0, 0, 0] }), ['Pad on the batch axis 0']],
  ['Pad mode wrap', one('Pad', [3, 4], { pads: [0, 0, 1, 0, 0, 1] }, { mode: 'wrap' }), ["Pad with mode='wrap'"]],
  ['reflect Pad as large as the axis', one('Pad', [3, 4], { pads: [0, 0, 4, 0, 0, 0] }, { mode: 'reflect' }), ['reflect pads 4, 0 on axis 2 of size 4']],
  ['edge Pad cropping', one('Pad', [3, 4], { pads: [0, 0, -1, 0, 0, 0] }, { mode: 'edge' }), ["negative pads [0,0,-1,0,0,0] in mode 'edge'"]],
  ['Tile of the batch', one('Tile', [3, 4], { r: [2, 1, 1] }), ['Tile with repeats [2,1,1] repeats the batch axis 0']],
  ['Expand to a literal batch', one('Expand', [3, 1], { s: [2, 3, 5] }), ['Expand to [2,3,5]: axis 0 must be 1 or the batch size']],
  ['Expand adding axes before the batch', one('Expand', [3, 1], { s: [2, 1, 3, 5] }), ['Expand to [2,1,3,5] adds axes before the batch axis']],
  ['Expand that does not broadcast', one('Expand', [3, 2], { s: [1, 3, 5] }), ['axis 2 of size 2 does not broadcast to 5']],
  ['Flatten axis 2 merging the batch', one('Flatten', [3, 4, 5], {}, { axis: 2 }), ['Flatten with axis=2 of [N,3,4,5] gives [N*3,20]: it merges the batch with axis 1']],
  ['Flatten axis 0', one('Flatten', [3, 4], {}, { axis: 0 }), ['Flatten with axis=0 of [N,3,4] gives [1,N*12]']],
  ['Split on the batch', one('Split', [6], {}, { axis: 0 }, { outputs: ['a', 'b'] }), ['Split on the batch axis 0']],
  ['Split into unequal parts', one('Split', [7], {}, { axis: 1 }, { outputs: ['a', 'b'] }), ['Split into 2 equal parts of axis 1 of size 7']],
];
for (const [what, bytes, patterns] of REJECT) {
  test(`rejected with a precise UnsupportedError: ${what}`, () => importRejects(bytes, patterns));
}

test('a per-sample rank over 8 (a Reshape of (N,32) to rank 10, then Transpose) is a clear error naming the limit', () => {
  const dims = [0, 1, 2, 1, 2, 1, 2, 1, 2, 2];
  const bytes = model({
    nodes: [node('Reshape', 'r', ['x', 's'], ['h']), node('Transpose', 't', ['h'], ['y'], { perm: [0, 2, 1, 3, 4, 5, 6, 7, 8, 9] })],
    inits: [tensor('s', [dims.length], dims.map(BigInt))], inputs: [valueInfo('x', FLOAT, ['N', 32])], outputs: [valueInfo('y', FLOAT, [])],
  });
  assert.throws(() => importOnnx(bytes), (e: Error) => e instanceof UnsupportedError && e.message.includes("node 't': Transpose per-sample rank 9 is over the supported 8"));
});

test.run();
