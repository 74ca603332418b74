// Shared test helpers: fixture loading and error measures.
import { readFileSync } from 'node:fs';
import { parseNpy } from '../node/npy.js';

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
