// Explanation targets at the model output (src/target.ts): the seeds of class / box / mask / element targets by
// enumeration; explain() and `camgpu explain --target` on the zoo's segmentation models (seg_lraspp, seg_fcn:
// tools/make_zoo.py) against PyTorch float64 Grad-CAM raw maps of pytorch-grad-cam's SemanticSegmentationTarget
// (score = sum_i (out[i, c_i] * mask).sum(), gradcam.npy); an element target against Grad-CAM computed here from the
// plan's activations and gradients (tests/zoo-run.ts gradcam); every malformed spec's one-line error.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model } from '../src/model.js';
import { Explainer } from '../src/explain.js';
import { ModelError } from '../src/graph.js';
import { parseTarget, targetSeed } from '../src/target.js';
import { nodeGpu } from '../node/gpu.js';
import { parseNpy } from '../node/npy.js';
import { relMax } from './helpers.js';
import { gradcam, readMeta } from './zoo-run.js';

const test = suite('target');
const CAM_TOL = 1e-3; // the zoo's Grad-CAM raw-map tolerance (relative to the golden's max)
const tmp = mkdtempSync(join(tmpdir(), 'camgpu-target-'));
const npyOf = (file: string) => parseNpy(readFileSync(file), file);

test('seeds: class on logits (3), class over a (2,2,3) map, a box, a mask, an element, one per image', () => {
  assert.equal(Array.from(targetSeed({ class: 1 }, [3], 2)), [0, 1, 0, 0, 1, 0]);
  assert.equal(Array.from(targetSeed({ class: 1 }, [2, 2, 3], 1)), [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
  assert.equal(Array.from(targetSeed({ class: 0, box: [1, 0, 3, 1] }, [2, 2, 3], 1)), [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(Array.from(targetSeed({ class: 1, mask: [0.5, 0, 0, 0, 0, 2] }, [2, 2, 3], 1)), [0, 0, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 2]);
  assert.equal(Array.from(targetSeed({ element: [1, 0, 2] }, [2, 2, 3], 1)), [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.equal(Array.from(targetSeed([{ class: 2 }, { element: [0] }], [3], 2)), [0, 0, 1, 1, 0, 0]);
});

test('seed errors name the target and the output shape', () => {
  const bad: [Parameters<typeof targetSeed>[0], number[], string][] = [
    [{ class: 3 }, [3], 'target class 3 is out of range for the output [N,3]: 3 classes (0..2)'],
    [{ class: 0, box: [0, 0, 4, 1] }, [2, 2, 3], 'target box [0,0,4,1] (x0,y0,x1,y1, x1/y1 exclusive) is empty or outside the 2x3 map'],
    [{ class: 0, box: [0, 0, 1, 1] }, [3], 'a target box needs a map output (N,K,H,W)'],
    [{ class: 0, mask: [1, 2] }, [2, 2, 3], 'target mask has 2 values; the output [N,2,2,3] has [2,3] = 6 per class'],
    [{ element: [0, 2] }, [2, 2, 3], 'target element [0,2] is not an index of the output [N,2,2,3]'],
  ];
  for (const [t, out, msg] of bad) assert.throws(() => targetSeed(t, out, 1), (e: Error) => e instanceof ModelError && e.message.includes(msg), msg);
  assert.throws(() => targetSeed([{ class: 0 }], [3], 2), /target has 1 entries for 2 images/);
});

test('parseTarget: the four forms, and each malformed spec', () => {
  assert.equal(parseTarget('class=3'), { class: 3 });
  assert.equal(parseTarget('class=1,box=18:12:42:30'), { class: 1, box: [18, 12, 42, 30] });
  assert.equal(parseTarget('class=2,mask=m.npy'), { class: 2, maskFile: 'm.npy' });
  assert.equal(parseTarget('element=0:4:7'), { element: [0, 4, 7] });
  for (const [spec, why] of [['cls=3', "'cls=3' is not key=value"], ['class=-1', "class '-1' must be non-negative integers"], ['box=1:2:3:4', 'no class'],
    ['class=1,box=1:2:3', 'box has 3 values'], ['class=1,box=0:0:1:1,mask=m.npy', 'a box or a mask, not both'], ['element=1,class=2', 'element goes alone'],
    ['class=1,class=2', 'class given twice'], ['class=1:2', 'class is one index']]) {
    assert.throws(() => parseTarget(spec), (e: Error) => e.message.startsWith(`--target '${spec}': ${why}`), spec);
  }
});

for (const name of ['seg_lraspp', 'seg_fcn']) {
  const dir = `tests/fixtures/zoo/${name}`;
  test(`${name}: explain() with a mask target and with the same region as a box, per image class: Grad-CAM raw map vs PyTorch float64 (SemanticSegmentationTarget); an element target vs Grad-CAM from the plan`, async () => {
    const m = readMeta(dir), x = npyOf(`${dir}/x.npy`).data, mask = npyOf(`${dir}/mask.npy`).data, want = npyOf(`${dir}/gradcam.npy`).data;
    const [H, W] = [m.output_shape[2], m.output_shape[3]], on = [...mask.keys()].filter((p) => mask[p] === 1);
    const ys = on.map((p) => Math.floor(p / W)), xs = on.map((p) => p % W);
    const box: [number, number, number, number] = [Math.min(...xs), Math.min(...ys), Math.max(...xs) + 1, Math.max(...ys) + 1];
    assert.is(on.length, (box[2] - box[0]) * (box[3] - box[1]), 'the golden mask is the rectangle [x0,y0,x1,y1] and 0 elsewhere');
    assert.is(mask.filter((v) => v !== 0).length, on.length);
    const model = await Model.load(await nodeGpu(), readFileSync(`${dir}/model.onnx`), name, { inputShape: m.input });
    try {
      const ex = new Explainer(model), o = { methods: ['gradcam' as const], layer: m.target };
      for (const [what, target] of [['mask', m.classes.map((c) => ({ class: c, mask }))], ['box', m.classes.map((c) => ({ class: c, box }))]] as const) {
        const e = await ex.explain(x, { ...o, target: [...target] });
        const raw = Float32Array.from(e.images.flatMap((r) => Array.from(r.methods.gradcam!.raw)));
        const err = relMax(raw, want);
        console.log(`  ${name} ${what} target [x0,y0,x1,y1]=[${box}] of ${H}x${W}: Grad-CAM raw ${err.toExponential(1)} vs PyTorch`);
        assert.ok(err <= CAM_TOL, `${what}: ${err}`);
      }
      // one element of the output: explain()'s raw map vs Grad-CAM from the plan's activations and gradients there
      const el = [m.classes[0], 20, 30], per = m.output_shape.slice(1).reduce((p, v) => p * v, 1);
      const seed = new Float32Array(2 * per);
      seed[(el[0] * H + el[1]) * W + el[2]] = 1;
      seed[per + (el[0] * H + el[1]) * W + el[2]] = 1;
      const plan = await model.plan({ batch: 2, read: [m.target], grads: [m.target] });
      const r = await plan.run(x, { seed });
      const cam = gradcam(r.values.get(m.target)!, r.grads.get(m.target)!, m.layout, m.act_shape.slice(1), 2);
      plan.destroy();
      const e = await ex.explain(x, { ...o, target: { element: el } });
      const raw = Float32Array.from(e.images.flatMap((q) => Array.from(q.methods.gradcam!.raw)));
      const err = relMax(raw, cam);
      console.log(`  ${name} element [${el}]: Grad-CAM raw ${err.toExponential(1)} vs the plan's activations and gradients`);
      assert.ok(Math.max(...Array.from(cam, Math.abs)) > 0 && err <= 1e-5, `element: ${err}`);
    } finally { model.destroy(); }
  });
}

test('camgpu explain --target class=C,mask=FILE.npy on seg_lraspp: the --raw Grad-CAM map of image 0 vs PyTorch; --class with --target is a usage error', () => {
  const dir = 'tests/fixtures/zoo/seg_lraspp', m = readMeta(dir), out = join(tmp, 'out'), raw = join(tmp, 'raw');
  const run = (args: string[]) => spawnSync(process.execPath, ['dist/cli.js', 'explain', `${dir}/x.npy`, '--model', `${dir}/model.onnx`, ...args], { encoding: 'utf8', timeout: 300_000 });
  const r = run(['--target', `class=${m.classes[0]},mask=${dir}/mask.npy`, '--layer', m.target, '--methods', 'gradcam', '--out', out, '--raw', raw]);
  assert.is(r.status, 0, r.stderr);
  const got = npyOf(join(raw, 'gradcam.npy')), want = npyOf(`${dir}/gradcam.npy`).data, P = want.length / 2;
  assert.equal(got.shape, [2, ...m.gradcam_shape.slice(1)]);
  const err = relMax(got.data.subarray(0, P), want.subarray(0, P));
  console.log(`  CLI --target class=${m.classes[0]},mask=mask.npy: Grad-CAM raw of image 0 ${err.toExponential(1)} vs PyTorch`);
  assert.ok(err <= CAM_TOL, `${err}`);
  const u = run(['--target', 'class=1', '--class', '2']);
  assert.is(u.status, 2);
  assert.match(u.stderr, 'camgpu: explain: --class and --target are two ways to pick the score; give one');
  const b = run(['--target', 'class=99', '--methods', 'gradcam', '--out', out]);
  assert.is(b.status, 1);
  assert.match(b.stderr, 'camgpu: --target: target class 99 is out of range for the output [N,10,48,48]: 10 classes (0..9)');
});

test.run();
