// The evaluation metrics on hand-made cases with known answers.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { auc, blur, curve, dropIncrease, energyInBoxes, instancesWithPeak, pointingHit, ranking, Box } from '../src/metrics.js';

const test = suite('metrics');
const close = (a: number, b: number, t = 1e-9) => assert.ok(Math.abs(a - b) <= t, `${a} vs ${b}`);

test('Average Drop and Increase in Confidence: drop (Y-O)/Y only when O < Y; increase counts O > Y', () => {
  close(dropIncrease(0.8, 0.2).drop, 0.75); assert.is(dropIncrease(0.8, 0.2).increase, 0);
  close(dropIncrease(0.5, 0.9).drop, 0); assert.is(dropIncrease(0.5, 0.9).increase, 1);
});

test('pointing game: a map equal to the box hits; a peak 15 px away hits, 16 px misses', () => {
  const W = 64, box: Box = [10, 10, 20, 20], inBox = new Float32Array(W * W);
  for (let y = 10; y < 20; y++) for (let x = 10; x < 20; x++) inBox[y * W + x] = 1;
  assert.ok(pointingHit(inBox, W, [box]));
  close(energyInBoxes(inBox, W, [box]), 1);
  const at = (x: number, y: number) => { const m = new Float32Array(W * W); m[y * W + x] = 1; return m; };
  assert.ok(pointingHit(at(19 + 15, 15), W, [box]), '15 px right of the box');
  assert.not.ok(pointingHit(at(19 + 16, 15), W, [box]), '16 px right');
  assert.not.ok(pointingHit(at(19 + 11, 19 + 11), W, [box]), 'diagonal 15.6 px');
});

test('energy pointing game: a uniform map gives the box area share', () => {
  const W = 10, m = new Float32Array(100).fill(1);
  close(energyInBoxes(m, W, [[0, 0, 5, 4]]), 0.2);
  close(energyInBoxes(m, W, [[0, 0, 5, 4], [0, 0, 5, 4]]), 0.2, 1e-12);
});

test('multi-instance: two bumps in two boxes -> 1; one bump -> 0.5; flat map -> 0', () => {
  const W = 40, m = new Float32Array(W * W);
  const bump = (cx: number, cy: number, a: number) => { for (let y = 0; y < W; y++) for (let x = 0; x < W; x++) m[y * W + x] += a * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 8); };
  const boxes: Box[] = [[2, 2, 12, 12], [25, 25, 35, 35]];
  bump(7, 7, 1); assert.is(instancesWithPeak(m, W, boxes), 0.5);
  bump(30, 30, 0.8); assert.is(instancesWithPeak(m, W, boxes), 1);
  assert.is(instancesWithPeak(new Float32Array(W * W).fill(0.3), W, boxes), 0);
});

test('AUC by the trapezoid rule; ranking is stable', () => {
  close(auc([1, 1, 1]), 1); close(auc([1, 0]), 0.5); close(auc([1, 0.5, 0]), 0.5); close(auc([0, 1, 1, 1, 1]), 0.875);
  assert.equal(Array.from(ranking(Float32Array.of(0.1, 0.9, 0.5, 0.9))), [1, 3, 2, 0]);
});

test('blur: Gaussian k=11 sigma=5 keeps a constant image constant away from the border and sums to 1 for an impulse', () => {
  const H = 32, x = new Float32Array(H * H).fill(2), b = blur(x, 1, H, H);
  close(b[16 * H + 16], 2, 1e-6);
  const imp = new Float32Array(H * H); imp[16 * H + 16] = 1;
  close(blur(imp, 1, H, H).reduce((s, v) => s + v, 0), 1, 1e-6);
});

test('deletion / insertion curves: a fake model whose class-0 probability is the mean of the top-left quadrant', async () => {
  // logits = [log(q), log(1-q)] with q = mean pixel value of the top-left 4x4 quadrant of an 8x8 image of ones
  const H = 8, forward = async (x: Float32Array, k: number) => {
    const out = new Float32Array(k * 2);
    for (let j = 0; j < k; j++) {
      let q = 0; for (let y = 0; y < 4; y++) for (let xx = 0; xx < 4; xx++) q += x[j * 64 + y * 8 + xx];
      q = Math.min(Math.max(q / 16, 1e-6), 1 - 1e-6); out[2 * j] = Math.log(q); out[2 * j + 1] = Math.log(1 - q);
    }
    return out;
  };
  const x = new Float32Array(H * H).fill(1), good = new Float32Array(64);
  for (let y = 0; y < 4; y++) for (let xx = 0; xx < 4; xx++) good[y * 8 + xx] = 1 - (y * 4 + xx) / 100; // the quadrant first
  const del = await curve('deletion', x, good, 0, [1, 8, 8], forward, { step: 4, batch: 5 });
  assert.is(del.length, 17);
  close(del[0], 1, 1e-5); close(del[4], 1e-6, 1e-5); // after 16 pixels the quadrant is gone
  const bad = good.map((v) => 1 - v); // the quadrant last: deletion keeps the class until the end
  const delBad = await curve('deletion', x, bad, 0, [1, 8, 8], forward, { step: 4 });
  assert.ok(auc(del) < 0.2 && auc(delBad) > 0.7, `${auc(del)} vs ${auc(delBad)}`);
  const ins = await curve('insertion', x, good, 0, [1, 8, 8], forward, { step: 4, blurred: new Float32Array(64) });
  close(ins[4], 1, 1e-5); assert.ok(auc(ins) > 0.8, `insertion ${auc(ins)}`);
});

test.run();
