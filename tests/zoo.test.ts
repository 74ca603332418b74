// Any model a user brings: the model zoo (tools/make_zoo.py; reduced torchvision families, a segmentation model and
// other exporters' patterns, each with PyTorch float64 goldens) through camgpu. Each fixture PASSes (logits to 1e-4 of
// max |logit| and the Grad-CAM raw map to 1e-3, at batch 1 and 2), is REJECTED (a typed error naming a node and its
// op) or FAILs the test (tests/zoo-run.ts). The after hook prints one line per fixture. Full-size models: tools/zoo_full.mjs.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { FOLDED_OPS, SUPPORTED_OPS } from '../src/import.js';
import { closeGpu, nodeGpu } from '../node/gpu.js';
import { Outcome, lacking, missingGoldens, readMeta, row, runFixture } from './zoo-run.js';

/** Fixtures that passed when this floor was last raised: fewer is a regression (raise it as ops land). */
const PASS_FLOOR = 32;
const ZOO = 'tests/fixtures/zoo';
/** Every fixture tools/make_zoo.py writes (`make_zoo.py --list`): each must be present with all its goldens. */
const FIXTURES = [
  'alexnet', 'vgg11_bn', 'resnet18', 'resnext50_32x4d', 'wide_resnet50_2', 'squeezenet1_1', 'densenet121', 'googlenet',
  'inception_v3', 'shufflenet_v2', 'mobilenet_v2', 'mobilenet_v3_large', 'mnasnet', 'efficientnet_b0', 'efficientnet_v2_s',
  'regnet_y_400mf', 'convnext_tiny', 'vit_b_16', 'swin_t', 'maxvit_t', 'resnet18_dynhw', 'seg_lraspp', 'seg_fcn',
  'pattern_hardswish', 'pattern_view_opset9', 'pattern_flatten_opset11', 'pattern_upsample_opset9', 'pattern_resize_opset11',
  'pattern_resize_opset13', 'pattern_nhwc', 'pattern_gap_mean', 'pattern_layernorm',
];

const test = suite('zoo');
const outcomes = new Map<string, Outcome>();
const present = existsSync(ZOO) ? readdirSync(ZOO, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort() : [];

test('every listed fixture is present with all its goldens, and every fixture is listed', () => {
  const missing = FIXTURES.filter((f) => !present.includes(f));
  assert.equal(missing, [], `fixture directories missing under ${ZOO} (run /usr/bin/python3 tools/make_zoo.py)`);
  const unlisted = present.filter((f) => !FIXTURES.includes(f));
  assert.equal(unlisted, [], 'fixture directories not in FIXTURES');
  for (const f of FIXTURES) assert.equal(missingGoldens(`${ZOO}/${f}`), [], `${f}: golden files missing`);
});

for (const name of FIXTURES) {
  test(`zoo ${name}`, async () => {
    const dir = `${ZOO}/${name}`;
    assert.equal(missingGoldens(dir), [], `${name}: golden files missing`);
    const o = await runFixture(await nodeGpu(), dir, name);
    outcomes.set(name, o);
    if (o.status === 'FAIL') assert.unreachable(`${name}: ${o.why}`);
  });
}

test('pass count does not drop below the floor', () => {
  const passed = [...outcomes.values()].filter((o) => o.status === 'PASS').length;
  assert.ok(passed >= PASS_FLOOR, `${passed} zoo fixtures passed, below the floor of ${PASS_FLOOR}`);
});

test.after(async () => {
  const count = (s: Outcome['status']) => [...outcomes.values()].filter((o) => o.status === s).length;
  console.log(`\nzoo: ${count('PASS')} PASS, ${count('REJECTED')} REJECTED, ${count('FAIL')} FAIL (floor ${PASS_FLOOR})`);
  for (const [name, o] of outcomes) {
    console.log(`  ${row(name, o, lacking(readMeta(`${ZOO}/${name}`), SUPPORTED_OPS, FOLDED_OPS))}`);
  }
  await closeGpu();
});
test.run();
