// Explanation targets at any output tensor: the backward seed d score / d y for a score that is one class's value
// (a classifier's logit, or a segmentation map's class channel summed over a region, as pytorch-grad-cam's
// SemanticSegmentationTarget: score = sum_{h,w} y[c, h, w] mask[h, w]) or one element of the output. The seed is the
// score's gradient with respect to the output, so it is exact: 1 (or mask[h, w]) where the score reads y, 0 elsewhere.
// GPU-free; explain() takes it as ExplainOptions.target, the CLI as `--target SPEC` (parseTarget).
import { ModelError, Shape, fmt, numel } from './graph.js';

/** One image's target: a class (over the whole map, inside a box, or weighted by a mask on a (K, ...) map), or the
 *  element at a per-sample index of the output. box: [x0, y0, x1, y1] in output pixels, x1 and y1 exclusive. */
export type OutputTarget = { class: number; box?: [number, number, number, number]; mask?: ArrayLike<number> } | { element: number[] };

/** The seed (N, ...out) of one target per image (one target: the same for every image); out is the per-sample shape. */
export function targetSeed(t: OutputTarget | OutputTarget[], out: Shape, nImages: number): Float32Array {
  const ts = Array.isArray(t) ? t : Array(nImages).fill(t);
  if (ts.length !== nImages) throw new ModelError(`target has ${ts.length} entries for ${nImages} images`);
  const per = numel(out), seed = new Float32Array(nImages * per);
  ts.forEach((ti, i) => seed.set(oneSeed(ti, out), i * per));
  return seed;
}

function oneSeed(t: OutputTarget, out: Shape): Float32Array {
  const s = new Float32Array(numel(out)), where = `the output [N,${out}]`;
  if ('element' in t) {
    const e = t.element;
    if (e.length !== out.length || e.some((v, d) => !Number.isInteger(v) || v < 0 || v >= out[d])) throw new ModelError(`target element [${e}] is not an index of ${where} (per sample ${fmt(out)})`);
    s[e.reduce((f, v, d) => f * out[d] + v, 0)] = 1;
    return s;
  }
  const K = out[0], c = t.class, P = numel(out.slice(1));
  if (!Number.isInteger(c) || c < 0 || c >= K) throw new ModelError(`target class ${c} is out of range for ${where}: ${K} classes (0..${K - 1})`);
  if (t.box && t.mask) throw new ModelError('a target has a box or a mask, not both');
  if (t.mask) {
    if (t.mask.length !== P) throw new ModelError(`target mask has ${t.mask.length} values; ${where} has ${fmt(out.slice(1))} = ${P} per class`);
    for (let p = 0; p < P; p++) s[c * P + p] = t.mask[p];
  } else if (t.box) {
    if (out.length !== 3) throw new ModelError(`a target box needs a map output (N,K,H,W); ${where} is not one`);
    const [, H, W] = out, [x0, y0, x1, y1] = t.box;
    if (!t.box.every(Number.isInteger) || !(x0 >= 0 && x0 < x1 && x1 <= W && y0 >= 0 && y0 < y1 && y1 <= H))
      throw new ModelError(`target box [${t.box}] (x0,y0,x1,y1, x1/y1 exclusive) is empty or outside the ${H}x${W} map`);
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) s[c * P + y * W + x] = 1;
  } else s.fill(1, c * P, (c + 1) * P);
  return s;
}

/** The CLI's target spec: `class=C`, `class=C,box=X0:Y0:X1:Y1`, `class=C,mask=FILE.npy` (the caller reads the file
 *  into `mask`) or `element=I:J:...`. Throws with the expected forms on anything else. */
export function parseTarget(spec: string): { class: number; box?: [number, number, number, number]; maskFile?: string } | { element: number[] } {
  const forms = 'class=C, class=C,box=X0:Y0:X1:Y1, class=C,mask=FILE.npy or element=I:J:...';
  const fail = (why: string): never => { throw new ModelError(`--target '${spec}': ${why} (forms: ${forms})`); };
  const kv = new Map<string, string>();
  for (const part of spec.split(',')) {
    const m = /^(class|box|mask|element)=(.+)$/.exec(part.trim());
    if (!m) fail(`'${part}' is not key=value`);
    if (kv.has(m![1])) fail(`${m![1]} given twice`);
    kv.set(m![1], m![2]);
  }
  const ints = (v: string, what: string) => v.split(':').map((x) => (/^\d+$/.test(x) ? Number(x) : fail(`${what} '${v}' must be non-negative integers separated by ':'`)));
  if (kv.has('element')) {
    if (kv.size > 1) fail('element goes alone');
    return { element: ints(kv.get('element')!, 'element') };
  }
  if (!kv.has('class')) fail('no class');
  const cs = ints(kv.get('class')!, 'class'), c = cs[0];
  if (cs.length !== 1) fail('class is one index');
  if (kv.has('box') && kv.has('mask')) fail('a box or a mask, not both');
  if (kv.has('box')) {
    const b = ints(kv.get('box')!, 'box');
    if (b.length !== 4) fail(`box has ${b.length} values (X0:Y0:X1:Y1)`);
    return { class: c, box: b as [number, number, number, number] };
  }
  return kv.has('mask') ? { class: c, maskFile: kv.get('mask')! } : { class: c };
}
