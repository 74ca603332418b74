// ONNX's own operator conformance cases (onnx/backend/test/data/node, shipped by Debian as libonnx-testdata) run
// through camgpu's importer and forward kernels: an oracle camgpu's authors did not write.
//
// Selection: every case whose model uses only ops in SUPPORTED_OPS. Node tests pass weights as graph inputs, so
// every input except the data input (the first float32 one, else the first) becomes an initializer holding its
// input_k.pb values (the same values the test feeds). Dim 0 of the data input is the batch.
// Each selected case either
//   - passes: every output value within |got - expected| <= ATOL + RTOL * |expected|, shapes equal; or
//   - is skipped: camgpu rejected it before computing anything, with its own typed error (UnsupportedError /
//     ModelError from import, load or plan). The test asserts the error type; anything else is a failure; or
//   - fails: it ran and mismatched, or threw something that is not a clear rejection.
// Tolerance: ATOL = RTOL = 1e-4, numpy.allclose's form. The kernels compute in float32 and these cases have O(1)
// inputs and short reductions (<= a few hundred terms), so exact-in-float32 ops match to a few ulp (~1e-7 rel)
// and accumulations to ~1e-6; 1e-4 leaves room for lavapipe's exp/div approximations (Sigmoid, Softmax) while
// any real indexing or semantic error (a wrong tap, a wrong pad, a wrong axis) is off by O(1e-1) or more. It is
// tighter than ONNX's own rtol 1e-3 and looser than its atol 1e-7, which only matters for values near zero.
// Run alone: npx esbuild tests/onnx-conformance.test.ts --bundle --platform=node --format=esm --packages=external \
//   --loader:.wgsl=text --outfile=dist/conf.mjs && node dist/conf.mjs

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { OnnxModel, parseOnnx, parseTensor } from '../src/onnx.js';
import { SUPPORTED_OPS, importModel } from '../src/import.js';
import { ModelError, fmt, numel } from '../src/graph.js';
import { Model } from '../src/model.js';
import { closeGpu, nodeGpu } from '../node/gpu.js';

const ROOT = '/usr/share/libonnx-testdata/data/node';
const ATOL = 1e-4, RTOL = 1e-4;
/** Cases that passed when this floor was last raised: fewer is a regression (raise it as ops land). */
const PASS_FLOOR = 246;
const FLOAT = 1;
/** Ops whose output element i depends only on input element i (with numpy broadcasting for the binary ops), so leading
 *  1-dims added to a rank-0/1 input (below camgpu's rank 2) change nothing: (F) -> (1,F). */
const ELEMENTWISE = new Set(['Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Add', 'Mul', 'Dropout', 'Identity',
  'Tanh', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Neg', 'Abs', 'Erf', 'Gelu', 'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign', 'Mish', 'PRelu', 'Pow',
  'Sub', 'Div', 'Sum', 'Mean', 'Max', 'Min']);

interface Case { name: string; dir: string; model: OnnxModel; ops: string[] }

/** Cases using only supported ops, and the names of models camgpu's reader cannot parse (each one a reader bug). */
function selectCases(): { cases: Case[]; unreadable: [string, string][] } {
  const cases: Case[] = [], unreadable: [string, string][] = [];
  for (const name of readdirSync(ROOT).sort()) {
    const dir = `${ROOT}/${name}`;
    if (!existsSync(`${dir}/model.onnx`) || !existsSync(`${dir}/test_data_set_0`)) continue;
    let model: OnnxModel;
    try { model = parseOnnx(readFileSync(`${dir}/model.onnx`)); } catch (e) { unreadable.push([name, (e as Error).message]); continue; }
    const ops = [...new Set(model.nodes.map((n) => n.opType))];
    if (ops.every((o) => SUPPORTED_OPS.includes(o))) cases.push({ name, dir, model, ops });
  }
  return { cases, unreadable };
}

const pb = (c: Case, file: string) => parseTensor(readFileSync(`${c.dir}/test_data_set_0/${file}`));

/** The case's model with every input but the data input turned into an initializer; the data input, reshaped
 *  to rank 2 by leading 1s when an element-wise case has rank < 2. */
function prepare(c: Case): { model: OnnxModel; data: number; padded: number } {
  const m = c.model, inputs = m.inputs.filter((v) => !m.initializers.has(v.name));
  const first = inputs.findIndex((v) => v.elemType === FLOAT);
  const data = first >= 0 ? first : 0;
  const initializers = new Map(m.initializers);
  inputs.forEach((v, k) => { if (k !== data) initializers.set(v.name, { ...pb(c, `input_${k}.pb`), name: v.name }); });
  const x = inputs[data];
  const padded = x && x.dims.length < 2 && c.ops.every((o) => ELEMENTWISE.has(o)) ? 2 - x.dims.length : 0;
  const kept = x ? [{ ...x, dims: [...Array(padded).fill(1), ...x.dims] }] : [];
  return { model: { ...m, initializers, inputs: kept }, data, padded };
}

type Outcome = { kind: 'pass'; worst: number } | { kind: 'skip'; reason: string } | { kind: 'fail'; why: string };
const outcomes = new Map<string, Outcome>();

/** A case with several outputs (Split) runs once per output, the model cut to that output: it passes when every
 *  output passes, is skipped when camgpu refuses any, and fails when any fails. */
async function runCase(c: Case): Promise<Outcome> {
  const outs = c.model.outputs, got: Outcome[] = [];
  for (let k = 0; k < outs.length; k++) {
    const o = await runOutput(c, k);
    if (o.kind === 'fail') return outs.length > 1 ? { kind: 'fail', why: `output ${k} '${outs[k].name}': ${o.why}` } : o;
    got.push(o);
  }
  const skip = got.find((o) => o.kind === 'skip');
  return skip ?? { kind: 'pass', worst: Math.max(...got.map((o) => (o.kind === 'pass' ? o.worst : 0))) };
}

/** Imports, loads and plans; a ModelError (UnsupportedError included) anywhere here is camgpu refusing the case. */
async function runOutput(c: Case, k: number): Promise<Outcome> {
  const prepared = prepare(c), { data, padded } = prepared;
  const model = c.model.outputs.length > 1 ? { ...prepared.model, outputs: [c.model.outputs[k]] } : prepared.model;
  let m: Model | null = null, ran = false;
  try {
    const graph = importModel(model);
    const batch = model.inputs[0].dims[0] as number;
    m = await Model.load(await nodeGpu(), graph, c.name);
    const plan = await m.plan({ batch, read: [graph.output] });
    const x = pb(c, `input_${data}.pb`), want = pb(c, `output_${k}.pb`);
    assert.ok(x.data instanceof Float32Array && x.data.length === batch * numel(graph.tensors.get(graph.input)!.shape),
      `input_${data}.pb: ${x.data.length} values of type ${x.dataType} for batch ${batch} x ${fmt(graph.tensors.get(graph.input)!.shape)}`);
    ran = true;
    const got = (await plan.run(x.data as Float32Array)).values.get(graph.output)!;
    const gotShape = [batch, ...graph.tensors.get(graph.output)!.shape];
    const wantShape = [...Array(padded).fill(1), ...want.dims];
    if (want.dataType !== FLOAT) return { kind: 'fail', why: `expected output is of ONNX type ${want.dataType}, camgpu produced float32` };
    if (fmt(gotShape) !== fmt(wantShape)) return { kind: 'fail', why: `output shape ${fmt(gotShape)}, expected ${fmt(wantShape)}` };
    return compare(got, want.data as Float32Array);
  } catch (e) {
    if (e instanceof ModelError && !ran) return { kind: 'skip', reason: `${e.name}: ${e.message}` };
    return { kind: 'fail', why: `threw ${(e as Error).name}: ${(e as Error).message}` };
  } finally {
    m?.destroy();
  }
}

function compare(got: Float32Array, want: Float32Array): Outcome {
  if (got.length !== want.length) return { kind: 'fail', why: `${got.length} values, expected ${want.length}` };
  let bad = 0, first = -1, worst = 0;
  for (let i = 0; i < want.length; i++) {
    const ok = Number.isNaN(want[i]) ? Number.isNaN(got[i]) : Math.abs(got[i] - want[i]) <= ATOL + RTOL * Math.abs(want[i]);
    if (!ok) { bad++; if (first < 0) first = i; }
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  if (!bad) return { kind: 'pass', worst };
  return { kind: 'fail', why: `${bad} of ${want.length} values outside ${ATOL} + ${RTOL}|expected|: first at [${first}] got ${got[first]}, expected ${want[first]}; max |diff| ${worst.toExponential(2)}` };
}

/** Reason with node and tensor names, shapes and numbers blanked, so one limitation is one group. */
const reasonGroup = (r: string) => r.replace(/^(\w+): node '[^']*': /, '$1: ').replace(/found \d+:.*$/, 'found #')
  .replace(/'[^']*'/g, "'…'").replace(/\[[^\]]*\]/g, '[…]').replace(/-?\b\d+\b(?!-D)/g, '#');

const conf = suite('onnx conformance');

if (!existsSync(ROOT)) {
  conf('libonnx-testdata is installed', () => {
    assert.unreachable(`${ROOT} not found: the ONNX conformance data comes from Debian's libonnx-testdata; run \`bash tools/setup.sh\``);
  });
} else {
  const { cases, unreadable } = selectCases();
  for (const [name, why] of unreadable) conf(`${name}: model.onnx parses`, () => {
    outcomes.set(name, { kind: 'fail', why: `model.onnx does not parse: ${why}` });
    assert.unreachable(`${name}/model.onnx: ${why}`);
  });
  for (const c of cases) {
    conf(`${c.name} (${c.ops.join(',')})`, async () => {
      const o = await runCase(c);
      outcomes.set(c.name, o);
      if (o.kind === 'fail') assert.unreachable(`${c.name}: ${o.why}`);
      if (o.kind === 'skip') assert.ok(/^(UnsupportedError|ModelError): ./.test(o.reason), `${c.name}: not a clear rejection: ${o.reason}`);
    });
  }
  conf.after(async () => {
    const all = [...outcomes.entries()];
    const skips = all.filter(([, o]) => o.kind === 'skip') as [string, { kind: 'skip'; reason: string }][];
    const groups = new Map<string, [string, string][]>();
    for (const [name, o] of skips) { const k = reasonGroup(o.reason); if (!groups.has(k)) groups.set(k, []); groups.get(k)!.push([name, o.reason]); }
    const count = (k: Outcome['kind']) => all.filter(([, o]) => o.kind === k).length;
    const sorted = [...groups].sort((a, b) => b[1].length - a[1].length);
    console.log(`\nonnx conformance: ${count('pass')} passed, ${skips.length} skipped (${sorted.map(([k, v]) => `${v.length}x ${k}`).join('; ')}), ${count('fail')} failed`);
    for (const [k, v] of sorted) {
      console.log(`  skipped ${v.length}: ${k}`);
      for (const [name, reason] of v) console.log(`    ${name}: ${reason}`);
    }
    const passed = all.filter(([, o]) => o.kind === 'pass') as [string, { kind: 'pass'; worst: number }][];
    const worst = passed.reduce((w, p) => (p[1].worst > w[1].worst ? p : w), ['-', { kind: 'pass', worst: 0 }]);
    console.log(`  passed (largest |got - expected| ${worst[1].worst.toExponential(1)}, ${worst[0]}): ${passed.map(([n]) => n).join(' ')}`);
    for (const [name, o] of all) if (o.kind === 'fail') console.log(`  FAILED ${name}: ${o.why}`);
    await closeGpu();
  });
  conf('pass count does not drop below the floor', () => {
    // runs after every case above (uvu runs tests in order); the after hook prints the table
    const passed = [...outcomes.values()].filter((o) => o.kind === 'pass').length;
    assert.ok(passed >= PASS_FLOOR, `${passed} conformance cases passed, below the floor of ${PASS_FLOOR}`);
  });
}

conf.run();
