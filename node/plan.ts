// `camgpu plan`: the plans explain() builds for a model and methods, as the GPU-free planner (src/planner.ts) makes
// them: every dispatch (pipeline, workgroups, bindings), every buffer (size, lifetime) and the peak memory. No
// adapter is asked for; limits are WebGPU's defaults unless --max-binding says otherwise.
import type { Graph } from '../src/graph.js';
import { Buf, DEFAULT_LIMITS, Limits, PlanDesc, PlanOptions, Planner } from '../src/planner.js';
import { Method, METHODS } from '../src/methods.js';
import { gradientPlanOptions, requestPlan } from '../src/explain.js';

/** The plans explain() makes for these methods at CAM layer A: name, options, and whether they run on the head
 *  after A (Ablation-CAM). B: the gradient batch, PB: the masked-input batch (src/explain.ts). */
export function explainPlans(g: Graph, methods: Method[], A: string, B: number, PB: number, score?: 'logit' | 'prob'): { name: string; opts: PlanOptions; head?: boolean }[] {
  const has = (m: Method) => methods.includes(m);
  const plans: { name: string; opts: PlanOptions; head?: boolean }[] = [{ name: 'gradient', opts: gradientPlanOptions(g, A, B, requestPlan(methods), score) }];
  if (has('guided') || has('guided-gradcam')) plans.push({ name: 'guided', opts: { batch: B, backward: [{ grads: [g.input], mode: 'guided' }], score } });
  if (has('deeplift')) plans.push({ name: 'deeplift', opts: { batch: B, backward: [{ grads: [g.input], mode: 'deeplift', reference: 'input' }], score } });
  if (has('scorecam') || has('rise')) plans.push({ name: 'forward', opts: { batch: PB } });
  if (has('ablationcam')) plans.push({ name: `head:${A}`, opts: { batch: PB }, head: true });
  return plans;
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
const pad = (rows: string[][]) => {
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((s, c) => (c === r.length - 1 ? s : s.padEnd(w[c]))).join('  ').trimEnd()).join('\n');
};

/** A buffer that fills a binding the entry point does not read (PlanDesc.placeholder). */
const placeholder = (b: Buf) => b.owner === 'plan' && b.label.startsWith('placeholder[');

/** One plan as text: its dispatches in replay order and its buffers with their lifetimes. */
export function describePlan(name: string, d: PlanDesc): string {
  const phase = (i: number) => (i < d.forward.length ? 'forward' : i < d.forward.length + d.refForward.length ? 'reference' : d.seed && i === d.forward.length + d.refForward.length ? 'seed' : 'backward');
  const all = d.dispatches;
  const rows = all.map((x, i) => [String(i), phase(i), x.label, `${x.family}:${x.entry}${Object.keys(x.consts).length ? ` ${JSON.stringify(x.consts)}` : ''}`,
    x.groups.join('x'), Object.entries(x.bind).filter(([, b]) => !placeholder(b)).map(([k, b]) => `${k}=${b.owner === 'model' ? 'w' : 'b'}${b.id}`).join(' ')]);
  const bufs = d.buffers.map((b) => [`b${b.id}`, b.label, String(b.size), b.usage, b.first < 0 ? '-' : `${b.first}..${b.last}`]);
  const c = d.counts;
  return [
    `plan '${name}' batch ${d.batch}: ${all.length} dispatches (forward ${c.forward}, ${c.fused} fused units; reference ${c.reference}; seed ${d.seed ? 1 : 0}; backward ${c.backward}), `
      + `${d.buffers.length} buffers ${mib(d.bytes)} (all live for the plan's life; at most ${mib(d.peakLive())} bound within one dispatch window), ${d.reads.length} read-backs`,
    pad([['#', 'phase', 'label', 'pipeline', 'groups', 'bindings (b: plan buffer, w: model buffer; unread slots left out)'], ...rows]),
    '',
    pad([['buffer', 'label', 'bytes', 'usage', 'dispatches'], ...bufs]),
  ].join('\n');
}

export interface PlanArgs { methods: Method[]; layer: string; batch?: number; maxBinding?: number; score?: 'logit' | 'prob' }

/** The text `camgpu plan` prints: every plan explain() would build, the model buffers and the peak memory. */
export function planReport(g: Graph, name: string, a: PlanArgs): string {
  const limits: Limits = { ...DEFAULT_LIMITS, ...(a.maxBinding ? { binding: a.maxBinding } : {}) };
  const planner = new Planner(g, name, limits);
  const fits = Math.floor(2 ** 30 / (3 * planner.bytesPerSample())); // explain's default memory budget
  const B = a.batch ?? Math.max(1, Math.min(16, fits, planner.maxBatch()));
  const PB = a.batch ?? Math.max(1, Math.min(64, 3 * fits, planner.maxBatch()));
  const plans = explainPlans(g, a.methods, a.layer, B, PB, a.score).map((p) => {
    const pl = p.head ? planner.head(a.layer) : planner;
    return { name: p.name, desc: pl.plan(p.opts) };
  });
  const weights = planner.statics.reduce((s, b) => s + b.size, 0), planBytes = plans.reduce((s, p) => s + p.desc.bytes, 0);
  const cams = a.methods.filter((m) => METHODS[m].slot !== undefined).length;
  return [
    `${name}: input ${g.tensors.get(g.input)!.shape.join('x')}, CAM layer ${a.layer} ${g.tensors.get(a.layer)!.shape.join('x')}, methods ${a.methods.join(',')}`,
    `limits: storage binding ${limits.binding} bytes, ${limits.maxDim} workgroups per dimension (${a.maxBinding ? '--max-binding' : 'WebGPU defaults'})`,
    '',
    ...plans.flatMap((p) => [describePlan(p.name, p.desc), '']),
    ...(cams ? ['explain() appends the CAM epilogue (cam.wgsl: weights, raw maps, min-max, resize) to the gradient plan', ''] : []),
    `model buffers: ${planner.statics.length}, ${mib(weights)} (weights, constants, Winograd and transposed-conv weights)`,
    `pipelines: ${new Set(plans.flatMap((p) => p.desc.dispatches.map((x) => `${x.family}:${x.entry}:${JSON.stringify(x.consts)}`))).size} distinct`,
    `peak memory: ${mib(weights + planBytes)} (model buffers + ${plans.length} plan${plans.length > 1 ? 's' : ''} ${mib(planBytes)}, all cached together by explain())`,
  ].join('\n');
}
