// The fuzz suite's bounded sample for `npm test` (issue 11 item 8): seeded mutants of a small CNN (protobuf-aware and
// byte-level), of PNG / JPEG / .npy inputs, and a few command lines. Every outcome must be ok (for an accepted ONNX
// mutant: the unmutated model's logits, or ONNX Runtime's for the mutant) or a clean one-line error; none may take
// more than CASE_LIMIT_MS. Longer campaigns with the outcome table: npm run fuzz -- --cases N (tools/fuzz.mjs).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { OUTCOME_NAMES, Outcome, Result, VERDICTS, baseImages, caseRng, convModel, imageCase, mutateArgs, mutateImage, mutateOnnx, onnxCase, recordedOrt, refLogits, SAMPLE } from './fuzz-lib.js';
import { cliFiles, cliCase } from './fuzz-cli.js';

const SEED = SAMPLE.seed, ONNX_CASES = SAMPLE.onnx, IMAGE_CASES = 120, CLI_CASES = 6, CASE_LIMIT_MS = 10_000;
const fz = suite('fuzz sample');

function tally(results: Result[]) {
  const t: Partial<Record<Outcome, number>> = {};
  for (const r of results) t[r.outcome] = (t[r.outcome] ?? 0) + 1;
  return Object.entries(t).map(([k, v]) => `${OUTCOME_NAMES[k as Outcome]} ${v}`).join(', ');
}
function check(what: string, results: (Result & { ms: number; i: number; input: string })[]) {
  console.log(`  ${what}: ${results.length} cases: ${tally(results)}`);
  const bad = results.filter((r) => r.outcome !== 'ok' && r.outcome !== 'clean');
  assert.equal(bad.map((r) => `case ${r.i} (${r.input}): ${r.outcome}: ${r.detail}`), [], `${what}: every outcome ok or a clean error`);
  const slow = results.filter((r) => r.ms > CASE_LIMIT_MS);
  assert.equal(slow.map((r) => `case ${r.i} (${r.input}) took ${r.ms.toFixed(0)} ms`), [], `${what}: no case over ${CASE_LIMIT_MS} ms`);
  assert.ok(results.some((r) => r.outcome === 'clean') && results.some((r) => r.outcome === 'ok'), `${what}: the sample has both accepted and refused mutants`);
}

fz(`ONNX: ${ONNX_CASES} mutants (protobuf fields and bytes) of a Conv-BN-Relu-MaxPool-Conv-Add-GAP-Gemm net, seed ${SEED}`, async () => {
  // ONNX Runtime's verdicts on this sample's mutants, recorded by `node tools/fuzz.mjs --write-verdicts` (its
  // onnxruntime-node lives in bench/peers/), so npm test never needs it; a missing file or verdict fails the test
  const base = convModel(), baseLogits = refLogits(base), ort = recordedOrt(VERDICTS);
  const theirs = await ort(base);
  assert.ok(theirs && Array.from(theirs).every((v, i) => Math.abs(v - baseLogits[i]) < 1e-5), 'control: ONNX Runtime agrees with the reference on the unmutated model');
  // the oracle can fail: an accepted model whose logits are neither the original's nor ONNX Runtime's is 'changed'
  const wrong = baseLogits.map((x) => x + 1);
  assert.is((await onnxCase(base, wrong, { bytes: base, what: 'control', data: false }, async () => null)).outcome, 'changed');
  assert.is((await onnxCase(base, wrong, { bytes: base, what: 'control', data: false }, ort)).outcome, 'ok', 'ONNX Runtime vouches for the real logits');
  const results = [];
  for (let i = 0; i < ONNX_CASES; i++) {
    const m = mutateOnnx(base, caseRng(SEED, i)), t0 = performance.now();
    results.push({ ...(await onnxCase(base, baseLogits, m, ort)), ms: performance.now() - t0, i, input: m.what });
  }
  check('ONNX', results);
});

fz(`images and tensors: ${IMAGE_CASES} mutants of PNG (RGB, 16-bit gray), JPEG and .npy, seed ${SEED}`, () => {
  const bases = baseImages(new Uint8Array(readFileSync('tests/fixtures/images/shapes32.jpg'))), results = [];
  for (let i = 0; i < IMAGE_CASES; i++) {
    const rng = caseRng(SEED + 1, i), b = bases[i % bases.length], m = mutateImage(b, rng), t0 = performance.now();
    results.push({ ...imageCase(b.kind, m.bytes), ms: performance.now() - t0, i, input: `${b.kind} ${m.what}` });
  }
  check('images', results);
});

fz(`command lines: ${CLI_CASES} random argv run as processes, seed ${SEED}`, async () => {
  const files = cliFiles(), results = [];
  for (let i = 0; i < CLI_CASES; i++) {
    const args = mutateArgs(caseRng(SEED + 2, i), files), r = await cliCase(args, 60_000);
    results.push({ ...r, i, input: args.join(' ').slice(0, 200) });
  }
  console.log(`  command lines: ${results.length} cases: ${tally(results)}`);
  const bad = results.filter((r) => r.outcome !== 'ok' && r.outcome !== 'clean');
  assert.equal(bad.map((r) => `case ${r.i} (${r.input}): ${r.outcome}: ${r.detail}`), []);
});

fz.run();
