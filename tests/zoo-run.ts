// The model zoo (tools/make_zoo.py) through camgpu: one fixture directory's ONNX model is loaded, run at batch 1 and
// 2 with the target activation A read back and d score / dA computed, and compared with PyTorch's float64 goldens:
// logits to LOGIT_TOL of max |logit|, the Grad-CAM raw map (made here from A and dA, after the layout reshape) to
// CAM_TOL of its max. Shared by tests/zoo.test.ts (the committed reduced zoo) and tools/zoo_full.mjs (--full DIR).
//
// Every fixture ends in exactly one of
//   PASS      the numbers match;
//   REJECTED  camgpu refused it at load or plan with its own typed error (ModelError, UnsupportedError included)
//             whose message names a node of the model ("node '<name>'") and that node's op type;
//   FAIL      it ran and mismatched, or threw anything else (another error, or a ModelError not naming node and op).
import { existsSync, readFileSync } from 'node:fs';
import { ModelError } from '../src/graph.js';
import type { Gpu } from '../src/gpu.js';
import { Model } from '../src/model.js';
import { parseOnnx } from '../src/onnx.js';
import { Npy, parseNpy } from '../node/npy.js';

export const LOGIT_TOL = 1e-4, CAM_TOL = 1e-3;
/** Files every fixture has (segmentation fixtures also mask.npy). */
export const GOLDEN_FILES = ['model.onnx', 'meta.json', 'x.npy', 'logits.npy', 'act.npy', 'grad_act.npy', 'grad_input.npy', 'gradcam.npy'];

export type Layout = 'nchw' | 'nhwc' | 'tokens-cls' | 'tokens';
export interface ZooMeta {
  family: string; input: number[]; classes: number[]; output: string; output_shape: number[];
  target: string; target_module: string; layout: Layout; act_shape: number[]; gradcam_shape: number[];
  opset: number; ops: string[]; ops_on_activations: string[]; ops_on_shapes: string[]; reduced: string; seed_rule: string;
}
export type Outcome =
  | { status: 'PASS'; logits: number; cam: number; gradInput: number }
  | { status: 'REJECTED'; message: string }
  | { status: 'FAIL'; why: string };

const isMask = (m: ZooMeta) => m.seed_rule.startsWith('mask');
export const readMeta = (dir: string): ZooMeta => JSON.parse(readFileSync(`${dir}/meta.json`, 'utf8'));
const npy = (dir: string, f: string): Npy => parseNpy(readFileSync(`${dir}/${f}`), `${dir}/${f}`);

/** The golden files a fixture directory lacks (mask.npy for a segmentation target). */
export function missingGoldens(dir: string): string[] {
  const need = [...GOLDEN_FILES];
  if (existsSync(`${dir}/meta.json`) && isMask(readMeta(dir))) need.push('mask.npy');
  return need.filter((f) => !existsSync(`${dir}/${f}`));
}

/** max |a - b| / max |b| (float64). */
export function relMax(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0, d = 0;
  for (let i = 0; i < a.length; i++) { m = Math.max(m, Math.abs(b[i])); d = Math.max(d, Math.abs(a[i] - b[i])); }
  if (!Number.isFinite(d)) return Infinity;
  return m === 0 ? d : d / m;
}

/** Index of A[d, p] (channel d, pixel p of the h*w map) in one sample of a target with this layout and per-sample
 *  shape, as pytorch-grad-cam's reshape_transform reads it: nchw (D,h,w); nhwc (h,w,D); tokens (h*w, D);
 *  tokens-cls (1+h*w, D), the class token 0 dropped. */
export function mapOf(layout: Layout, shape: number[]): { D: number; P: number; at: (d: number, p: number) => number } {
  if (layout === 'nchw') { const [D, h, w] = shape; return { D, P: h * w, at: (d, p) => d * h * w + p }; }
  if (layout === 'nhwc') { const [h, w, D] = shape; return { D, P: h * w, at: (d, p) => p * D + d }; }
  const [T, D] = shape, skip = layout === 'tokens-cls' ? 1 : 0;
  return { D, P: T - skip, at: (d, p) => (p + skip) * D + d };
}

/** Grad-CAM raw map before the ReLU, per image: cam[p] = sum_d mean_p'(dA[d,p']) A[d,p].
 *  a, g: (B, ...perSample); returns (B, P). */
export function gradcam(a: Float32Array, g: Float32Array, layout: Layout, perSample: number[], B: number): Float64Array {
  const { D, P, at } = mapOf(layout, perSample), n = a.length / B, cam = new Float64Array(B * P);
  for (let i = 0; i < B; i++) {
    const o = i * n;
    for (let d = 0; d < D; d++) {
      let w = 0;
      for (let p = 0; p < P; p++) w += g[o + at(d, p)];
      w /= P;
      for (let p = 0; p < P; p++) cam[i * P + p] += w * a[o + at(d, p)];
    }
  }
  return cam;
}

/** The backward seed (B, outputs): one-hot at classes[i], or the mask over class classes[i]'s map. */
function seedOf(m: ZooMeta, dir: string, B: number, outputs: number): Float32Array {
  const s = new Float32Array(B * outputs);
  if (!isMask(m)) { for (let i = 0; i < B; i++) s[i * outputs + m.classes[i]] = 1; return s; }
  const mask = npy(dir, 'mask.npy').data, HW = mask.length;
  for (let i = 0; i < B; i++) s.set(mask, i * outputs + m.classes[i] * HW);
  return s;
}

/** A REJECTED message must name a node of the model and that node's op type; null when it does, else why not. */
export function rejectionProblem(message: string, nodes: Map<string, string>): string | null {
  const named = [...message.matchAll(/node '([^']*)'/g)].map((x) => x[1]);
  if (!named.length) return `names no node ("node '<name>'")`;
  const node = named.find((n) => nodes.has(n));
  if (node === undefined) return `names node '${named[0]}', which is not in the model`;
  if (!new RegExp(`\\b${nodes.get(node)}\\b`).test(message)) return `does not name node '${node}''s op ${nodes.get(node)}`;
  return null;
}

const perSample = (shape: number[]) => shape.slice(1).reduce((p, v) => p * v, 1);

interface Errors { logits: number; cam: number; gradInput: number }
type Stage = { name: string; ran: boolean };

/** Runs the loaded model at batch 1 and 2 against the goldens; the largest error of each kind. `stage` says how far it got. */
async function compare(model: Model, m: ZooMeta, dir: string, stage: Stage): Promise<Errors> {
  const x = npy(dir, 'x.npy'), logits = npy(dir, 'logits.npy'), want = npy(dir, 'gradcam.npy'), gx = npy(dir, 'grad_input.npy');
  const outputs = perSample(m.output_shape), P = perSample(m.gradcam_shape), X = perSample(x.shape), input = model.graph.input;
  const err: Errors = { logits: 0, cam: 0, gradInput: 0 };
  for (const B of [1, 2]) {
    stage.name = `plan batch ${B}`;
    const plan = await model.plan({ batch: B, read: [m.target], grads: [m.target, input] });
    stage.name = `run batch ${B}`;
    stage.ran = true;
    const r = await plan.run(x.data.subarray(0, B * X), { seed: seedOf(m, dir, B, outputs) });
    const cam = gradcam(r.values.get(m.target)!, r.grads.get(m.target)!, m.layout, m.act_shape.slice(1), B);
    err.logits = Math.max(err.logits, relMax(r.logits, logits.data.subarray(0, B * outputs)));
    err.cam = Math.max(err.cam, relMax(cam, want.data.subarray(0, B * P)));
    err.gradInput = Math.max(err.gradInput, relMax(r.grads.get(input)!, gx.data.subarray(0, B * X)));
  }
  return err;
}

/** Loads the fixture's model (at its golden input size) and compares; a typed error before anything ran is REJECTED
 *  when its message names a node of the model and its op. */
export async function runFixture(gpu: Gpu, dir: string, name: string): Promise<Outcome> {
  const m = readMeta(dir), bytes = readFileSync(`${dir}/model.onnx`), outputs = perSample(m.output_shape);
  const nodes = new Map(parseOnnx(bytes).nodes.map((n) => [n.name, n.opType]));
  const stage: Stage = { name: 'load', ran: false };
  let model: Model | null = null, err: Errors;
  try {
    model = await Model.load(gpu, bytes, name, { inputShape: m.input });
    if (model.numClasses !== outputs) {
      return { status: 'FAIL', why: `camgpu's output has ${model.numClasses} values per image, PyTorch's ${outputs} (${m.output_shape.slice(1).join('x')})` };
    }
    err = await compare(model, m, dir, stage);
  } catch (e) {
    const msg = `${(e as Error).name}: ${(e as Error).message}`;
    if (!(e instanceof ModelError) || stage.ran) return { status: 'FAIL', why: `${stage.name}: threw ${msg}` };
    const problem = rejectionProblem((e as Error).message, nodes);
    if (problem) return { status: 'FAIL', why: `${stage.name}: ${msg} (not a clear rejection: it ${problem})` };
    return { status: 'REJECTED', message: msg };
  } finally {
    model?.destroy();
  }
  if (err.logits <= LOGIT_TOL && err.cam <= CAM_TOL) return { status: 'PASS', ...err };
  return { status: 'FAIL', why: `mismatch: logits ${err.logits.toExponential(1)} (tol ${LOGIT_TOL}), Grad-CAM ${err.cam.toExponential(1)} (tol ${CAM_TOL})` };
}

/** The model's op types camgpu lacks: on activations, not in SUPPORTED_OPS; on constants and shapes only, neither
 *  supported nor folded at import (marked '(shapes)'). */
export function lacking(m: ZooMeta, supported: string[], folded: string[]): string[] {
  const onAct = m.ops_on_activations.filter((op) => !supported.includes(op));
  const onShapes = m.ops_on_shapes.filter((op) => !supported.includes(op) && !folded.includes(op) && !m.ops_on_activations.includes(op));
  return [...onAct, ...onShapes.map((op) => `${op}(shapes)`)];
}

/** One table row: name, status, errors or the rejection message, and the model's ops camgpu lacks. */
export function row(name: string, o: Outcome, unsupported: string[]): string {
  const lacks = unsupported.length ? `  [lacks ${unsupported.join(' ')}]` : '', e = (v: number) => v.toExponential(1);
  if (o.status === 'PASS') return `${name.padEnd(24)} PASS      logits ${e(o.logits)}  Grad-CAM ${e(o.cam)}  grad_input ${e(o.gradInput)}${lacks}`;
  if (o.status === 'REJECTED') return `${name.padEnd(24)} REJECTED  ${o.message.replace(/\. Supported ops: .*$/, '')}${lacks}`;
  return `${name.padEnd(24)} FAIL      ${o.why}${lacks}`;
}
