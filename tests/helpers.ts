// Shared test helpers: fixture loading, error measures, PyTorch fixture checks.
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { parseNpy } from '../node/npy.js';
import { nodeGpu } from '../node/gpu.js';
import type { Graph } from '../src/graph.js';
import { UnsupportedError, importOnnx } from '../src/import.js';
import { Model } from '../src/model.js';

export const FIXTURES = ['vgg', 'resnet', 'mobilenet', 'squeezenet', 'effnet', 'linear_fc'];
export const fixtureDir = (name: string) => `tests/fixtures/${name}`;
export interface Meta { input: number[]; classes: number[]; target: string; opset: number; ops: string[] }
export const meta = (name: string): Meta => JSON.parse(readFileSync(`${fixtureDir(name)}/meta.json`, 'utf8'));
export const npy = (name: string, file: string) => parseNpy(readFileSync(`${fixtureDir(name)}/${file}`), file);

/** max |a - b| / max |b|: the error relative to the reference tensor's largest magnitude. */
export function relMax(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0, d = 0;
  for (let i = 0; i < a.length; i++) { m = Math.max(m, Math.abs(b[i])); d = Math.max(d, Math.abs(a[i] - b[i])); }
  if (!Number.isFinite(d)) return Infinity;
  return m === 0 ? d : d / m;
}

/** One-hot seed (batch, classes) for the given class per image. */
export function oneHot(classes: number[], n: number): Float32Array {
  const s = new Float32Array(classes.length * n); classes.forEach((c, i) => { s[i * n + c] = 1; }); return s;
}

/**
 * A PyTorch fixture directory (x.npy and seed.npy of two images, float64 goldens logits.npy and grad.npy = d sum(seed *
 * logits) / dx) through graph g at batch 1 and 2: logits and input gradient within tol of the goldens (relative to their
 * max; printed), and DeepLIFT summation to delta against the zero image (to 1e-4 of the sum of |terms|).
 */
export async function checkTorchFixture(dir: string, name: string, g: Graph, tol: number) {
  const f = (file: string) => parseNpy(readFileSync(`${dir}/${file}`), file).data;
  const x = f('x.npy'), seed = f('seed.npy'), logits = f('logits.npy'), grad = f('grad.npy');
  const m = await Model.load(await nodeGpu(), g, name);
  try {
    for (const B of [1, 2]) {
      const per = x.length / 2, F = logits.length / 2;
      const plan = await m.plan({ batch: B, backward: [{ grads: [g.input] }, { grads: [g.input], mode: 'deeplift' }] });
      const xr = new Float32Array(B * per); // the zero image as the DeepLIFT reference
      const res = await plan.run(x.subarray(0, B * per), { seed: seed.subarray(0, B * F), refInput: xr });
      const el = relMax(res.logits, logits.subarray(0, B * F)), eg = relMax(res.grads.get(g.input)!, grad.subarray(0, B * per));
      console.log(`  ${name} batch ${B}: logits ${el.toExponential(1)}, gradient ${eg.toExponential(1)}`);
      assert.ok(el <= tol, `logits: ${el}`);
      assert.ok(eg <= tol, `gradient: ${eg}`);
      const mult = res.passes[1].get(g.input)!;
      for (let n = 0; n < B; n++) { // sum m * (x - 0) = sum seed * (y - y_ref)
        let lhs = 0, mag = 0, rhs = 0;
        for (let i = n * per; i < (n + 1) * per; i++) { lhs += mult[i] * x[i]; mag += Math.abs(mult[i] * x[i]); }
        for (let j = n * F; j < (n + 1) * F; j++) rhs += seed[j] * (res.logits[j] - res.refLogits![j]);
        assert.ok(Math.abs(lhs - rhs) <= 1e-4 * Math.max(mag, Math.abs(rhs)), `image ${n}: sum m*x = ${lhs} vs delta ${rhs} (terms ${mag.toExponential(2)})`);
      }
      plan.destroy();
    }
  } finally { m.destroy(); }
}

/** Importing `bytes` throws an UnsupportedError whose one-line message contains every pattern (node, op, values). */
export function importRejects(bytes: Uint8Array, patterns: string[]) {
  let err: Error | undefined;
  try { importOnnx(bytes); } catch (e) { err = e as Error; }
  assert.instance(err, UnsupportedError, `expected UnsupportedError, got ${err?.name}: ${err?.message}`);
  for (const p of patterns) assert.ok(err!.message.includes(p), `message does not contain '${p}': ${err!.message}`);
}
