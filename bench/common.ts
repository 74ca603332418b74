// What bench.ts and peers.ts share: error measures, random inputs, and the float64 reference logits (tests/ref.ts
// refForward), cached under bench/results/*.tmp and keyed by a fingerprint of the weights.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mulberry32 } from '../src/builder.js';
import { Graph } from '../src/graph.js';
import { refForward } from '../tests/ref.js';

export const median = (a: number[]) => { const s = [...a].sort((p, q) => p - q); return s[s.length >> 1]; };
export const rand = (n: number, seed: number) => { const r = mulberry32(seed), a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = 2 * r() - 1; return a; };

/** max |a - b| / max |b| (b the reference); Infinity on a length mismatch or a non-finite difference. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0, d = 0;
  for (let i = 0; i < a.length; i++) { m = Math.max(m, Math.abs(b[i])); d = Math.max(d, Math.abs(a[i] - b[i])); }
  return a.length === b.length && Number.isFinite(d) ? d / (m || 1) : Infinity;
}

/** A cheap fingerprint of a graph's weights, to key the cached reference logits. */
function fingerprint(g: Graph): string {
  let h = 0;
  for (const n of g.nodes) {
    const op = n.op;
    if (op.kind !== 'conv' && op.kind !== 'linear') continue;
    for (let i = 0; i < op.w.length; i += 4099) h = (h * 31 + Math.round(op.w[i] * 1e6)) % 2147483647;
    h = (h * 31 + op.w.length) % 2147483647;
  }
  return h.toString(36);
}

/** Float64 logits for x (batch 1), computed once per net and weights (VGG16 takes ~30 s) and cached. */
export function referenceLogits(net: string, g: Graph, x: Float32Array): { logits: Float64Array; how: string } {
  const file = `bench/results/ref-${net}-${fingerprint(g)}.tmp`;
  if (existsSync(file)) return { logits: Float64Array.from(JSON.parse(readFileSync(file, 'utf8'))), how: `ref.ts (cached ${file})` };
  const t = performance.now();
  const logits = refForward(g, Float64Array.from(x), 1).get(g.output)!;
  writeFileSync(file, JSON.stringify([...logits]));
  return { logits, how: `ref.ts (${((performance.now() - t) / 1000).toFixed(1)} s, cached)` };
}
