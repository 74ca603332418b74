// Constant folding (src/fold.ts) and symbolic input sizes, against PyTorch goldens (tools/make_fold_fixtures.py) and
// hand-worked values: the shape sub-graphs of real exports disappear at import, a model exported with dynamic H and W
// runs at each size it is given, and arithmetic on the unknown batch size is refused, never guessed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { Model } from '../src/model.js';
import { importOnnx } from '../src/import.js';
import { BATCH, ModelError } from '../src/graph.js';
import { CTensor, FOLD, FoldError } from '../src/fold.js';
import { nodeGpu } from '../node/gpu.js';
import { parseNpy } from '../node/npy.js';
import { relMax } from './helpers.js';

const test = suite('fold');
const dir = (name: string) => `tests/fixtures/fold/${name}`;
const npy = (name: string, f: string) => parseNpy(readFileSync(`${dir(name)}/${f}`), f);
const bytes = (name: string) => readFileSync(`${dir(name)}/model.onnx`);
const attrs = (v: Record<string, number | number[]> = {}) => ({
  i: (k: string, d: number) => (v[k] as number) ?? d, f: (k: string, d: number) => (v[k] as number) ?? d, ints: (k: string, d: number[]) => (v[k] as number[]) ?? d,
});
const T = (dims: number[], data: number[], int = true): CTensor => ({ dims, data, int });
const node = { name: 'n', opType: 'X', domain: '', inputs: [], outputs: ['y'], attrs: new Map() };

test('symbolic H and W without a size: the error names the input, the dimension and the flag', () => {
  assert.throws(() => importOnnx(bytes('dyn_hw')), (e: Error) => e instanceof ModelError
    && /graph input 'x' has symbolic dimension 2 \('H'\)/.test(e.message) && /--input-shape 1x3xHxW/.test(e.message));
  assert.throws(() => importOnnx(bytes('dyn_hw'), { inputShape: [1, 4, 32, 32] }), /static dimension 1 = 3; the input shape 1x4x32x32 says 4/);
});

test('dyn_hw (dynamic N, H, W): logits vs PyTorch at 32x32 and 40x48, batch 1 and 2, one Model per size', async () => {
  const gpu = await nodeGpu();
  const m32 = await Model.load(gpu, bytes('dyn_hw'), 'dyn_hw', { inputShape: [1, 3, 32, 32] });
  try {
    for (const tag of ['32x32', '40x48']) {
      const [H, W] = tag.split('x').map(Number);
      const m = tag === '32x32' ? m32 : await m32.withInputShape([1, 3, H, W]);
      assert.equal(m.inputShape, [3, H, W]);
      const x = npy('dyn_hw', `x${tag}.npy`), want = npy('dyn_hw', `logits${tag}.npy`).data;
      for (const B of [1, 2]) {
        const got = (await (await m.plan({ batch: B })).run(x.data.subarray(0, (x.data.length / 2) * B))).logits;
        const err = relMax(got, want.subarray(0, (want.length / 2) * B));
        assert.ok(err <= 1e-4, `${tag} batch ${B}: logit error ${err}`);
      }
    }
    assert.is(await m32.withInputShape([1, 3, 40, 48]), await m32.withInputShape([5, 3, 40, 48]), 'one Model per size, whatever N');
  } finally { m32.destroy(); }
});

test('shapes (ConstantOfShape, Div, Cast, Range, Where/Equal, Expand to the batch, weight arithmetic): folded away, logits vs PyTorch', async () => {
  const g = importOnnx(bytes('shapes'));
  const kinds = [...new Set(g.nodes.map((n) => n.op.kind))].sort();
  assert.equal(kinds, ['add', 'alias', 'conv', 'act', 'linear', 'mul'].sort(), `only image-dependent ops reach the GPU: ${kinds}`);
  assert.ok(g.nodes.length <= 7, `${g.nodes.length} nodes: ${g.nodes.map((n) => n.source).join(' ')}`);
  const gpu = await nodeGpu(), m = await Model.load(gpu, g, 'shapes');
  try {
    const x = npy('shapes', 'x8x8.npy'), want = npy('shapes', 'logits8x8.npy').data;
    const got = (await (await m.plan({ batch: 2 })).run(x.data)).logits;
    assert.ok(relMax(got, want) <= 1e-4, `logit error ${relMax(got, want)}`);
  } finally { m.destroy(); }
});

test('fold: hand-worked Gather, Slice (negative step), Concat, Where, Range, Tile, Transpose, ScatterND', () => {
  const a = attrs();
  assert.equal(FOLD.Gather([T([4], [10, 11, 12, 13]), T([2], [-1, 1])], a, node, 13).data, [13, 11]);
  assert.equal(FOLD.Slice([T([5], [0, 1, 2, 3, 4]), T([1], [-1]), T([1], [-10]), T([1], [0]), T([1], [-2])], a, node, 13).data, [4, 2, 0]);
  assert.equal(FOLD.Concat([T([2], [1, 2]), T([1], [BATCH])], a, node, 13).data, [1, 2, BATCH]);
  assert.equal(FOLD.Where([T([3], [1, 0, 1]), T([3], [5, 6, 7]), T([1], [0])], a, node, 13).data, [5, 0, 7]);
  assert.equal(FOLD.Range([T([], [2]), T([], [9]), T([], [3])], a, node, 13).data, [2, 5, 8]);
  assert.equal(FOLD.Tile([T([2], [1, 2]), T([1], [2])], a, node, 13).data, [1, 2, 1, 2]);
  assert.equal(FOLD.Transpose([T([2, 3], [0, 1, 2, 3, 4, 5])], attrs({ perm: [1, 0] }), node, 13).data, [0, 3, 1, 4, 2, 5]);
  assert.equal(FOLD.ScatterND([T([4], [0, 0, 0, 0]), T([2, 1], [1, 3]), T([2], [7, 9])], a, node, 13).data, [0, 7, 0, 9]);
  assert.equal(FOLD.Div([T([2], [7, -7]), T([], [2])], a, node, 13).data, [3, -3], 'integer Div truncates');
});

test('fold: the batch size never enters arithmetic (a precise error, not a wrong shape)', () => {
  const a = attrs();
  for (const op of ['Mul', 'Add', 'Div', 'Sub']) assert.throws(() => FOLD[op]([T([1], [BATCH]), T([1], [4])], a, node, 13), (e: Error) => e instanceof FoldError && /batch size/.test(e.message));
  assert.throws(() => FOLD.Equal([T([1], [BATCH]), T([1], [1])], a, node, 13), /batch size with a non-negative/);
  assert.equal(FOLD.Equal([T([1], [BATCH]), T([1], [-1])], a, node, 13).data, [0], 'N is never -1');
  assert.throws(() => FOLD.ConstantOfShape([T([2], [BATCH, 3])], a, node, 13), /batch size/);
});

test.run();
