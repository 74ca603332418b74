// The command line as a user runs it: `node dist/cli.js ...` in a child process (build first: node build.mjs).
// info is checked against numbers computed here independently from the ONNX file and the fixtures' meta.json;
// classify against PyTorch's logits; bad command lines and bad files end with exactly one `camgpu:` line.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseOnnx } from '../src/onnx.js';
import { NO_ADAPTER } from '../src/gpu.js';
import { parseNpy } from '../node/npy.js';
import { FIXTURES, fixtureDir, meta, npy, relMax } from './helpers.js';

const CLI = 'dist/cli.js';
const tmp = mkdtempSync(join(tmpdir(), 'camgpu-cli-'));
/** An environment in which Dawn finds no Vulkan driver, hence no adapter. */
const NO_GPU = { ...process.env, VK_ICD_FILENAMES: join(tmp, 'no-such-icd.json'), VK_DRIVER_FILES: join(tmp, 'no-such-icd.json') };

/**
 * Lines that Dawn and the Vulkan loader print to stderr from native code (e.g. "Warning: maxDynamic...
 * artificially reduced", or the loader's complaints when no driver is found); camgpu cannot silence them.
 */
const nativeNoise = (l: string) => l.trim() === '' || l.startsWith('Warning: ') || /^\s+at \w+ \(.*\.cpp:\d+\)$/.test(l);

function cli(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, timeout: 120_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout, err: r.stderr.split('\n').filter((l) => !nativeNoise(l)) };
}

/** Exactly one stderr line (native noise aside), `camgpu: ` + a reason matching `why`, and the exit status. */
function fails(args: string[], code: number, why: RegExp | string, env?: NodeJS.ProcessEnv) {
  const r = cli(args, env);
  assert.is(r.code, code, `exit status of camgpu ${args.join(' ')} (stderr: ${r.err.join(' | ')})`);
  assert.is(r.err.length, 1, `one stderr line, got ${r.err.length}: ${r.err.join(' | ')}`);
  const line = r.err[0];
  assert.ok(line.startsWith('camgpu: '), line);
  assert.ok(typeof why === 'string' ? line.includes(why) : why.test(line), `'${line}' does not match ${why}`);
  assert.not.match(line, /\bat .*\.(js|ts):\d+/, 'no stack trace');
  assert.is(r.out, '', 'nothing on stdout');
}

/** The value column of a `key  value` line at the top of `info`. */
function field(out: string, key: string): string {
  const line = out.split('\n').find((l) => l.startsWith(key + ' '));
  assert.ok(line, `no '${key}' line in:\n${out}`);
  return line!.slice(key.length).trim();
}

const model = (name: string) => `${fixtureDir(name)}/model.onnx`;
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

const test = suite('cli');

test.before(() => { if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run node build.mjs first`); });
test.after(() => rmSync(tmp, { recursive: true, force: true }));

// ======================================================================================================== info

for (const name of FIXTURES) {
  test(`info ${name}: input, output, ops per type and the default CAM target agree with meta.json`, () => {
    const m = meta(name) as ReturnType<typeof meta> & { act_shape: number[] }, r = cli(['info', model(name)]);
    assert.is(r.code, 0, r.err.join('\n'));
    assert.is(r.err.length, 0, `stderr: ${r.err.join(' | ')}`);
    assert.ok(field(r.out, 'input').startsWith(`input (N,${m.input.slice(1).join(',')}) float32`), field(r.out, 'input'));
    assert.match(field(r.out, 'output'), /^logits \(N,10\)|^\S+ \(N,10\) = Softmax\(logits '.+'\)$/);
    assert.match(field(r.out, 'model'), `ONNX opset ${m.opset}`);
    // ops: every ONNX op type with its count, counted here from the file
    const counts = new Map<string, number>();
    for (const n of parseOnnx(readFileSync(model(name))).nodes) counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
    assert.equal([...counts.keys()].sort(), [...m.ops].sort(), 'fixture ops vs meta.json');
    const listed = new Map(field(r.out, 'ops').split(', ').map((s) => { const [k, c] = s.split(' '); return [k, Number(c)] as [string, number]; }));
    assert.equal(Object.fromEntries([...listed].sort()), Object.fromEntries([...counts].sort()));
    // the default target is the layer tools/make_fixtures.py explains (the output of `features`)
    assert.ok(field(r.out, 'CAM target').startsWith(`${m.target} (N,${m.act_shape.slice(1).join(',')}) by default`), field(r.out, 'CAM target'));
    const row = r.out.split('\n').find((l) => l.startsWith(m.target + ' '));
    assert.ok(row && / default$/.test(row), `target row marked default: ${row}`);
  });
}

test('info vgg: parameters = sum of float initializer sizes; MACs = sum over Conv and Gemm from the weights', () => {
  const onnx = parseOnnx(readFileSync(model('vgg')));
  let params = 0;
  for (const t of onnx.initializers.values()) if (t.dataType === 1) params += numel(t.dims);
  const r = cli(['info', model('vgg')]);
  assert.is(r.code, 0, r.err.join('\n'));
  assert.ok(field(r.out, 'parameters').startsWith(`${params.toLocaleString('en-US')} (float initializers`), `${field(r.out, 'parameters')} vs ${params}`);
  // the standalone BatchNormalization (16 channels: scale, B, mean, var) is held as scale + shift on the GPU
  assert.match(field(r.out, 'parameters'), `${(params - 2 * 16).toLocaleString('en-US')} on the GPU`);
  // MACs per sample: Conv = numel(output) * (C/group * kh * kw) with the output shape from the node table; Gemm = numel(B)
  const rows = new Map(r.out.split('\n').map((l) => l.split(/\s{2,}/)).filter((c) => c.length >= 3).map((c) => [c[0], c]));
  let macs = 0;
  for (const n of onnx.nodes) {
    if (n.opType === 'Conv') {
      const w = onnx.initializers.get(n.inputs[1])!.dims, shape = rows.get(n.outputs[0])![2];
      const out = shape.slice(1, -1).split(',').slice(1).map(Number);
      macs += numel(out) * w[1] * w[2] * w[3];
    } else if (n.opType === 'Gemm') macs += numel(onnx.initializers.get(n.inputs[1])!.dims);
  }
  const [value, prefix] = field(r.out, 'compute').split(' ');
  const reported = Number(value) * { k: 1e3, M: 1e6, G: 1e9 }[prefix as 'k' | 'M' | 'G'];
  assert.ok(Math.abs(reported - macs) <= 0.005 * macs, `compute ${field(r.out, 'compute')} vs ${macs} MACs`);
});

test('info needs no GPU: runs with no Vulkan driver, prints nothing on stderr', () => {
  const r = spawnSync(process.execPath, [CLI, 'info', model('resnet')], { encoding: 'utf8', env: NO_GPU });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr, '');
  assert.not.match(r.stdout, /adapter/);
});

// ==================================================================================================== classify

test('classify vgg x=[2,3,32,32] --out: logits match PyTorch to 1e-4, top-1 and probabilities printed', () => {
  const out = join(tmp, 'vgg-logits.npy'), ref = npy('vgg', 'logits.npy');
  const r = cli(['classify', '--model', model('vgg'), '--input', `${fixtureDir('vgg')}/x.npy`, '--out', out, '--top', '3']);
  assert.is(r.code, 0, r.err.join('\n'));
  const got = parseNpy(readFileSync(out));
  assert.equal(got.shape, [2, 10]);
  const err = relMax(got.data, ref.data);
  assert.ok(err <= 1e-4, `max |camgpu - torch| / max |torch| = ${err}`);
  assert.match(field(r.out, 'adapter'), /\S/);
  // the printed table: image 0 and 1, ranks 1..3, class = argmax of PyTorch's logits, prob = its softmax
  const rows = r.out.split('\n').filter((l) => /^\s*\d*\s+\d\s+\d+\s+-?[\d.e+-]+\s+[\d.]+$/.test(l)).map((l) => l.trim().split(/\s+/));
  assert.is(rows.length, 6, r.out);
  for (let i = 0; i < 2; i++) {
    const l = Array.from(ref.data.subarray(i * 10, i * 10 + 10)), best = l.indexOf(Math.max(...l));
    const p = Math.exp(l[best]) / l.reduce((s, v) => s + Math.exp(v), 0);
    const row = rows[i * 3];
    assert.equal(row.slice(0, 3), [String(i), '1', String(best)]);
    assert.ok(Math.abs(Number(row[4]) - p) < 1e-5, `prob ${row[4]} vs ${p}`);
  }
});

test('classify a map output (fcn, symbolic N/H/W, --input-shape): the (N,3,8,8) map vs PyTorch, argmax share per image', () => {
  const dir = 'tests/fixtures/fold/fcn', out = join(tmp, 'fcn.npy'), ref = parseNpy(readFileSync(`${dir}/logits16x16.npy`));
  const args = ['classify', '--model', `${dir}/model.onnx`, '--input', `${dir}/x16x16.npy`];
  fails(args, 1, /symbolic dimension 2 \('H'\).*--input-shape 1x3xHxW/);
  const r = cli([...args, '--input-shape', '1x3x16x16', '--out', out]);
  assert.is(r.code, 0, r.err.join('\n'));
  const got = parseNpy(readFileSync(out));
  assert.equal(got.shape, [2, 3, 8, 8]);
  assert.ok(relMax(got.data, ref.data) <= 1e-4, `map error ${relMax(got.data, ref.data)}`);
  for (let i = 0; i < 2; i++) { // the class winning the most of the 64 positions, computed here from PyTorch's map
    const v = ref.data.subarray(i * 192, (i + 1) * 192), wins = [0, 0, 0];
    for (let q = 0; q < 64; q++) { let b = 0; for (let k = 1; k < 3; k++) if (v[k * 64 + q] > v[b * 64 + q]) b = k; wins[b]++; }
    const best = wins.indexOf(Math.max(...wins));
    assert.match(r.out, new RegExp(`\\n\\s*${i}\\s+\\(3,8,8\\)\\s+\\S+\\s+\\S+\\s+${best} \\(${(100 * wins[best] / 64).toFixed(1)}%\\)`), r.out);
  }
  fails([...args, '--input-shape', '1x3x16'], 1, /input shape 1x3x16 has 3 dimensions/);
  fails([...args, '--input-shape', '1x3xHx16'], 1, /--input-shape '1x3xHx16': expected positive integers/);
});

test('info / layers on a model with symbolic H/W: --input-shape sets the size (MACs computed here), no size is one error line', () => {
  const m = 'tests/fixtures/fold/dyn_hw/model.onnx';
  const r = cli(['info', m, '--input-shape', '1x3x40x48']);
  assert.is(r.code, 0, r.err.join('\n'));
  assert.match(field(r.out, 'input'), /\(N,3,40,48\)/);
  const macs = 8 * 40 * 48 * 3 * 9; // the first conv: 8 output channels at 40x48, 3x3x3 taps each
  assert.match(r.out, new RegExp(`/c1/Conv_output_0\\s+Conv\\s+\\(N,8,40,48\\)\\s+${(macs / 1000).toFixed(2)} k`));
  fails(['layers', m], 1, /symbolic dimension 2 \('H'\).*--input-shape 1x3xHxW/);
  assert.is(cli(['layers', m, '--input-shape', '1x3x32x32']).code, 0);
});

test('classify resnet --batch 1 (2 runs) = --batch 2 (1 run), both match PyTorch to 1e-4', () => {
  const ref = npy('resnet', 'logits.npy');
  for (const batch of ['1', '2']) {
    const out = join(tmp, `resnet-b${batch}.npy`);
    const r = cli(['classify', '--model', model('resnet'), '--input', `${fixtureDir('resnet')}/x.npy`, '--out', out, '--batch', batch]);
    assert.is(r.code, 0, r.err.join('\n'));
    assert.match(field(r.out, 'input'), `batch ${batch}`);
    assert.match(field(r.out, 'input'), batch === '1' ? '2 runs' : '1 run');
    const err = relMax(parseNpy(readFileSync(out)).data, ref.data);
    assert.ok(err <= 1e-4, `batch ${batch}: ${err}`);
  }
});

test('classify resnet --batch 1 --profile: the same logits, a per-op GPU time table over both runs', () => {
  const out = join(tmp, 'resnet-profile.npy');
  const r = cli(['classify', '--model', model('resnet'), '--input', `${fixtureDir('resnet')}/x.npy`, '--out', out, '--batch', '1', '--profile']);
  assert.is(r.code, 0, r.err.join('\n'));
  assert.ok(relMax(parseNpy(readFileSync(out)).data, npy('resnet', 'logits.npy').data) <= 1e-4);
  const m = /profile: forward of 2 images in 2 runs of batch 1; (\d+) dispatches/.exec(r.out);
  assert.ok(m, r.out);
  assert.match(r.out, /forward +conv\+add\+act +\d+ /); // fused bottleneck ends
  assert.match(r.out, /slowest dispatches +phase +GPU time +share/);
});

test('tune resnet (own cache file): a table of tiles per conv shape; classify then loads them and matches PyTorch; a bad cache is one line', () => {
  const env = { ...process.env, CAMGPU_TUNE_CACHE: join(tmp, 'tiles.json') };
  const before = cli(['classify', '--model', model('resnet'), '--input', `${fixtureDir('resnet')}/x.npy`], env);
  assert.match(field(before.out, 'adapter'), 'default conv tiles (run camgpu tune)');
  const r = cli(['tune', '--model', model('resnet'), '--runs', '1'], env);
  assert.is(r.code, 0, r.err.join('\n'));
  assert.match(r.out, /layer shape +layers +default +ms +best +ms +GFLOP\/s +speed-up +tried/);
  assert.match(field(r.out, 'cache'), `${env.CAMGPU_TUNE_CACHE} (8 shapes for this adapter)`);
  const cache = JSON.parse(readFileSync(env.CAMGPU_TUNE_CACHE, 'utf8'));
  assert.is(Object.keys(Object.values(cache.adapters)[0] as object).length, 8);
  const out = join(tmp, 'resnet-tuned.npy');
  const c = cli(['classify', '--model', model('resnet'), '--input', `${fixtureDir('resnet')}/x.npy`, '--out', out], env);
  assert.is(c.code, 0, c.err.join('\n'));
  assert.match(field(c.out, 'adapter'), `conv tiles tuned for 8 of 8 layer shapes (${env.CAMGPU_TUNE_CACHE})`);
  assert.ok(relMax(parseNpy(readFileSync(out)).data, npy('resnet', 'logits.npy').data) <= 1e-4);
  writeFileSync(env.CAMGPU_TUNE_CACHE, '{"version": 1, "adapters": {"x": {"s": {"TK": 3, "TP": 8}}}}');
  fails(['classify', '--model', model('resnet'), '--input', `${fixtureDir('resnet')}/x.npy`], 1, /tuning cache .*tiles\.json: adapter 'x', layer s: .* is not one of the tiles .*camgpu tune/, env);
});

test('classify linear_fc (Softmax output): --out holds the pre-softmax logits, printed probs = probs.npy', () => {
  const out = join(tmp, 'fc-logits.npy');
  const r = cli(['classify', '--model', model('linear_fc'), '--input', `${fixtureDir('linear_fc')}/x.npy`, '--out', out, '--top', '1']);
  assert.is(r.code, 0, r.err.join('\n'));
  const err = relMax(parseNpy(readFileSync(out)).data, npy('linear_fc', 'logits.npy').data);
  assert.ok(err <= 1e-4, `logits ${err}`);
  const probs = npy('linear_fc', 'probs.npy').data;
  const rows = r.out.split('\n').filter((l) => /^\d+\s+1\s+\d+\s/.test(l)).map((l) => l.split(/\s+/));
  assert.is(rows.length, 2, r.out);
  rows.forEach((row, i) => assert.ok(Math.abs(Number(row[4]) - probs[i * 10 + Number(row[2])]) < 1e-5, `image ${i}: ${row.join(' ')}`));
});

// ======================================================================================================= help

test('--help: top level lists the commands; every command has its own usage', () => {
  for (const args of [['--help'], ['-h'], ['help']]) {
    const r = cli(args);
    assert.is(r.code, 0);
    assert.match(r.out, /^usage: camgpu <command>/);
    assert.match(r.out, /\n {2}info {2,}/);
    assert.match(r.out, /\n {2}classify {2,}/);
  }
  for (const c of ['info', 'classify']) {
    for (const args of [[c, '--help'], ['help', c]]) {
      const r = cli(args);
      assert.is(r.code, 0, r.err.join('\n'));
      assert.match(r.out, new RegExp(`^usage: camgpu ${c} `));
      assert.match(r.out, /-h, --help/);
    }
  }
});

test('bin/camgpu.mjs launches dist/cli.js (package.json "bin")', () => {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
  assert.is(pkg.bin.camgpu, 'bin/camgpu.mjs');
  const r = spawnSync(process.execPath, [pkg.bin.camgpu, '--version'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim(), pkg.version);
});

// ===================================================================================================== errors

const V = fixtureDir('vgg'), VM = model('vgg'), VX = `${V}/x.npy`;

test('usage errors exit 2 with one line: no command, unknown command, missing and unknown options', () => {
  fails([], 2, 'no command given');
  fails(['explode'], 2, "unknown command 'explode' (commands: info, classify");
  fails(['info'], 2, 'info needs MODEL.onnx');
  fails(['info', VM, VM], 2, `unexpected argument '${VM}'`);
  fails(['info', '--frobnicate', VM], 2, "unknown option '--frobnicate'");
  fails(['classify', '--input', VX], 2, 'classify needs --model MODEL.onnx');
  fails(['classify', '--model', VM], 2, 'classify needs --input X.npy');
  fails(['classify', '--model'], 2, '--model needs a value');
  fails(['classify', '--model', VM, '--input', VX, '--batch', '0'], 2, "--batch must be a positive integer, got '0'");
  fails(['classify', '--model', VM, '--input', VX, '--top', 'five'], 2, "--top must be a positive integer, got 'five'");
});

test('file errors exit 1 with one line: missing model, directory, not ONNX, truncated ONNX', () => {
  fails(['info', join(tmp, 'missing.onnx')], 1, /cannot read model '.*missing\.onnx': no such file/);
  fails(['info', V], 1, `cannot read model '${V}': it is a directory`);
  fails(['info', VX], 1, new RegExp(`^camgpu: ${VX}: not an ONNX`));
  const cut = join(tmp, 'cut.onnx'), bytes = readFileSync(VM);
  writeFileSync(cut, bytes.subarray(0, bytes.length >> 1));
  fails(['info', cut], 1, 'truncated protobuf');
});

test('input errors exit 1 with one line: missing .npy, not .npy, int64 .npy, truncated .npy, wrong shape', () => {
  fails(['classify', '--model', VM, '--input', join(tmp, 'none.npy')], 1, /cannot read input '.*none\.npy': no such file/);
  fails(['classify', '--model', VM, '--input', VM], 1, `${VM}: not a .npy file (bad magic)`);
  const x = readFileSync(VX), header = x.subarray(0, 128).toString('latin1');
  const i64 = join(tmp, 'int.npy');
  writeFileSync(i64, Buffer.concat([Buffer.from(header.replace("'<f4'", "'<i8'"), 'latin1'), x.subarray(128)]));
  fails(['classify', '--model', VM, '--input', i64], 1, 'dtype <i8 is not supported');
  const cut = join(tmp, 'cut.npy');
  writeFileSync(cut, x.subarray(0, 1000));
  fails(['classify', '--model', VM, '--input', cut], 1, 'truncated, shape (2,3,32,32)');
  fails(['classify', '--model', VM, '--input', `${fixtureDir('resnet')}/x.npy`], 1, 'has shape (2,3,64,64); model.onnx expects (N,3,32,32)');
  fails(['classify', '--model', VM, '--input', VX, '--out', join(tmp, 'no', 'dir', 'l.npy')], 1, /cannot write '.*l\.npy': no such file/);
});

test('runtime errors exit 1 with one line: --batch over the binding limit names the limit and the max batch', () => {
  fails(['classify', '--model', VM, '--input', VX, '--batch', '100000000'], 1, /storage binding limit of \d+; use a batch of at most \d+/);
});

test('no WebGPU adapter (no Vulkan driver) -> the NO_ADAPTER line, exit 1', () => {
  fails(['classify', '--model', VM, '--input', VX], 1, `camgpu: ${NO_ADAPTER}`, NO_GPU);
});

test.run();
