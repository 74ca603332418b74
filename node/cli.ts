// The camgpu command line: a table of commands on top of the core (src/) and the Node layer (Dawn, files,
// .npy). Options are parsed with node:util parseArgs, no framework. Every failure ends as ONE line
// `camgpu: <reason>` on stderr; exit status 0 = done, 1 = the work failed (file, model, data, GPU),
// 2 = the command line is wrong. CAMGPU_DEBUG=1 adds the stack of unexpected (internal) errors.
// `info` never touches the GPU; the other commands create the Dawn device once and always release it.
import { accessSync, constants, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { Graph, ModelError, Shape, logitsOf, macs, numel, producers } from '../src/graph.js';
import { GpuError } from '../src/gpu.js';
import { UnsupportedError, importModel } from '../src/import.js';
import { Model, candidates } from '../src/model.js';
import { defaultLayer } from '../src/explain.js';
import { OnnxError, OnnxModel, parseOnnx } from '../src/onnx.js';
import { closeGpu, nodeGpu } from './gpu.js';
import { npyBytes, parseNpy } from './npy.js';

/** The command line is wrong (exit 2). */
class UsageError extends Error {}
/** A file, a model or data is wrong (exit 1); the message is already the whole story. */
class CliError extends Error {}

interface Opt { type: 'string' | 'boolean'; arg?: string; help: string; required?: boolean }
type Values = Record<string, string | boolean | undefined>;
interface Command {
  summary: string;
  usage: string;            // after `camgpu <name> `
  about: string;            // the paragraph under the usage line
  positionals: string[];    // names of the positional arguments (all required)
  options: Record<string, Opt>;
  run(v: Values, pos: string[]): Promise<void>;
}

const out = (s = '') => process.stdout.write(s + '\n');

// ============================================================================================= commands

const COMMANDS: Record<string, Command> = {
  info: {
    summary: 'describe an ONNX model: ops, shapes, parameters, MACs, CAM target layers (no GPU)',
    usage: 'MODEL.onnx',
    about: 'Imports the model as camgpu would (without the GPU) and prints its ops per type, input and output,\n'
      + 'node count, parameters (float initializers in the file, and what the GPU holds after BatchNorm\n'
      + 'folding), multiply-adds per sample, and one line per camgpu node: output tensor, op, per-sample shape,\n'
      + 'MACs. CAM target candidates (4-D activations) are marked *, the default target (the last 4-D\n'
      + 'activation before the head) is marked "default".',
    positionals: ['MODEL.onnx'],
    options: {},
    run: async (_v, [path]) => info(path),
  },
  classify: {
    summary: 'run the model on a .npy batch and print the top-K classes per image',
    usage: '--model MODEL.onnx --input X.npy [--out LOGITS.npy] [--batch N] [--top K]',
    about: 'X.npy: float32 (or float64) (N,C,H,W), already normalised the way the model expects. Runs the forward\n'
      + 'pass in chunks of --batch images and prints, per image, the top-K class indices with their logits and\n'
      + 'softmax probabilities. For a model whose output is a Softmax the logits are its input.',
    positionals: [],
    options: {
      model: { type: 'string', arg: 'MODEL.onnx', help: 'the ONNX model', required: true },
      input: { type: 'string', arg: 'X.npy', help: 'input images, (N,C,H,W)', required: true },
      out: { type: 'string', arg: 'LOGITS.npy', help: 'write the logits, float32 (N,classes)' },
      batch: { type: 'string', arg: 'N', help: 'images per GPU run (default: min(N, the largest batch that fits the device))' },
      top: { type: 'string', arg: 'K', help: 'classes to print per image (default 5)' },
    },
    run: (v) => classify(v.model as string, v.input as string, v.out as string | undefined,
      v.batch === undefined ? undefined : posInt('--batch', v.batch as string), v.top === undefined ? 5 : posInt('--top', v.top as string)),
  },
};

// ================================================================================================= info

async function info(path: string) {
  const { onnx, graph: g, bytes } = loadGraph(path);
  const prod = producers(g), logits = logitsOf(g);
  const fileParams = [...onnx.initializers.values()].filter((t) => t.data instanceof Float32Array).reduce((s, t) => s + t.data.length, 0);
  const gpuParams = g.nodes.reduce((s, n) => s + opParams(n.op), 0) + [...g.tensors.values()].reduce((s, t) => s + (t.data?.length ?? 0), 0);
  const perNode = g.nodes.map((n) => macs(g, n)), total = perNode.reduce((a, b) => a + b, 0);
  const ops = new Map<string, number>();
  for (const n of onnx.nodes) ops.set(n.opType, (ops.get(n.opType) ?? 0) + 1);
  const folded = (ops.get('BatchNormalization') ?? 0) - g.nodes.filter((n) => n.source === 'BatchNormalization').length;
  const cands = new Set(candidates(g)), target = (() => { try { return defaultLayer(g); } catch { return null; } })();
  const inp = onnx.inputs.find((v) => v.name === g.input)!;

  out(table([
    ['model', `${path} (${human(bytes, 'B')}, ONNX opset ${onnx.opset}${onnx.producer ? `, ${onnx.producer}` : ''})`],
    ['input', `${g.input} ${shapeN(g.tensors.get(g.input)!.shape, inp.dims[0])} float32`],
    ['output', g.output === logits ? `${g.output} ${shapeN(g.tensors.get(g.output)!.shape)}`
      : `${g.output} ${shapeN(g.tensors.get(g.output)!.shape)} = ${prod.get(g.output)!.source}(logits '${logits}')`],
    ['ops', [...ops].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k, c]) => `${k} ${c}`).join(', ')],
    ['nodes', `${g.nodes.length} (from ${onnx.nodes.length} ONNX nodes${folded > 0 ? `; ${folded} BatchNormalization folded into Conv` : ''})`],
    ['parameters', `${fileParams.toLocaleString('en-US')} (float initializers, ${human(fileParams * 4, 'B')} as float32); `
      + `${gpuParams.toLocaleString('en-US')} on the GPU (BatchNorm folded, zero biases made explicit)`],
    ['compute', `${human(total, '')} MACs = ${human(2 * total, '')} FLOPs per sample`],
    ['CAM target', target ? `${target} ${shapeN(g.tensors.get(target)!.shape)} by default; ${cands.size} candidates (4-D activations, * below)`
      : 'none (no 4-D activation)'],
  ]));
  out();
  out(table([['tensor', 'op', 'shape', 'MACs', 'cam'],
    ...g.nodes.map((n, i) => [n.output, n.source, shapeN(g.tensors.get(n.output)!.shape), perNode[i] ? human(perNode[i], '') : '',
      n.output === target ? 'default' : cands.has(n.output) ? '*' : ''])]));
}

/** Values a node's op holds on the GPU (weights, biases, folded BN scale/shift). */
function opParams(op: Graph['nodes'][number]['op']): number {
  if (op.kind === 'conv' || op.kind === 'linear') return op.w.length + op.b.length;
  if (op.kind === 'affine') return op.scale.length + op.shift.length;
  return 0;
}

// ============================================================================================= classify

async function classify(modelPath: string, inputPath: string, outPath: string | undefined, batch: number | undefined, top: number) {
  const t0 = performance.now();
  const { graph: g } = loadGraph(modelPath);
  const x = readNpy(inputPath);
  const per = g.tensors.get(g.input)!.shape;
  if (x.shape.length !== per.length + 1 || x.shape.slice(1).some((d, i) => d !== per[i]))
    throw new CliError(`${inputPath} has shape (${x.shape}); ${basename(modelPath)} expects (N,${per})`);
  if (outPath) writable(outPath);
  const N = x.shape[0], classes = numel(g.tensors.get(logitsOf(g))!.shape);
  if (N < 1) throw new CliError(`${inputPath} holds no images (shape (${x.shape}))`);
  const tImport = performance.now();

  const gpu = await nodeGpu();
  const model = await Model.load(gpu, g, basename(modelPath));
  const tLoad = performance.now();
  const B = batch ?? Math.min(N, model.maxBatch());
  const plan = await model.plan({ batch: B });
  const tPlan = performance.now();
  out(table([
    ['model', `${modelPath}: (${per}) -> ${classes} classes`],
    ['adapter', gpu.adapterInfo || '(unknown)'],
    ['input', `${inputPath}: ${N} image${N > 1 ? 's' : ''}, batch ${B} (at most ${model.maxBatch()} on this device), ${Math.ceil(N / B)} run${N > B ? 's' : ''}`],
  ]));

  const n1 = numel(per), logits = new Float32Array(N * classes);
  for (let i = 0; i < N; i += B) {
    const k = Math.min(B, N - i);
    const r = await plan.run(x.data.subarray(i * n1, (i + k) * n1));
    logits.set(r.logits, i * classes);
  }
  const tRun = performance.now();

  const rows: string[][] = [['image', 'rank', 'class', 'logit', 'prob']];
  for (let i = 0; i < N; i++) {
    const l = logits.subarray(i * classes, (i + 1) * classes), p = softmax(l);
    const order = [...l.keys()].sort((a, b) => l[b] - l[a]).slice(0, Math.min(top, classes));
    order.forEach((c, r) => rows.push([r === 0 ? String(i) : '', String(r + 1), String(c), l[c].toPrecision(6), p[c].toFixed(6)]));
  }
  out();
  out(table(rows));
  if (outPath) {
    try { writeFileSync(outPath, npyBytes(logits, [N, classes])); } catch (e) { throw new CliError(`cannot write '${outPath}': ${errno(e)}`); }
  }
  const macsPer = g.nodes.reduce((s, n) => s + macs(g, n), 0), sec = (tRun - tPlan) / 1000;
  out();
  out(table([
    ['time', `read + import ${secs(tImport - t0)}, upload + compile ${secs(tLoad - tImport)}, plan ${secs(tPlan - tLoad)}, `
      + `forward ${secs(tRun - tPlan)} (${secs((tRun - tPlan) / N)}/image, ${(2 * macsPer * N / sec / 1e9).toFixed(1)} GFLOP/s)`],
    ...(outPath ? [['logits', `${outPath} (${N},${classes}) float32`]] : []),
  ]));
  plan.destroy();
  model.destroy();
}

// ============================================================================================== helpers

/** Reads a file; a missing or unreadable one is a one-line error naming it. */
function readFile(path: string, what: string): Uint8Array {
  try {
    if (statSync(path).isDirectory()) throw new CliError(`cannot read ${what} '${path}': it is a directory`);
    return readFileSync(path);
  } catch (e) { if (e instanceof CliError) throw e; throw new CliError(`cannot read ${what} '${path}': ${errno(e)}`); }
}

/** Parses and imports an ONNX file (no GPU); errors carry the path. */
function loadGraph(path: string): { onnx: OnnxModel; graph: Graph; bytes: number } {
  const bytes = readFile(path, 'model');
  try {
    const onnx = parseOnnx(bytes);
    return { onnx, graph: importModel(onnx), bytes: bytes.length };
  } catch (e) {
    if (e instanceof OnnxError || e instanceof ModelError) throw new CliError(`${path}: ${e.message}`);
    throw e;
  }
}

function readNpy(path: string) {
  const bytes = readFile(path, 'input');
  try { return parseNpy(bytes, path); } catch (e) { throw new CliError((e as Error).message.startsWith(path) ? (e as Error).message : `${path}: ${(e as Error).message}`); }
}

/** Fails before the (long) run when the output file could not be written. */
function writable(path: string) {
  try { accessSync(dirname(path) || '.', constants.W_OK); } catch (e) { throw new CliError(`cannot write '${path}': ${errno(e)}`); }
  try { if (statSync(path).isDirectory()) throw new CliError(`cannot write '${path}': it is a directory`); } catch (e) { if (e instanceof CliError) throw e; }
}

function errno(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const why: Record<string, string> = { ENOENT: 'no such file or directory', EACCES: 'permission denied', EISDIR: 'it is a directory', ENOTDIR: 'a parent is not a directory' };
  return code ? why[code] ?? code : (e as Error).message;
}

function posInt(flag: string, s: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s.trim()) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got '${s}'`);
  return n;
}

/** Softmax in float64 (max-subtracted). */
function softmax(l: Float32Array): Float64Array {
  let m = -Infinity; for (const v of l) m = Math.max(m, v);
  const e = Float64Array.from(l, (v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** (N,3,224,224): a per-sample shape with the batch dimension in front (ONNX's name for it where known). */
const shapeN = (s: Shape, batch: number | string = 'N') => `(${[typeof batch === 'string' && batch !== '?' ? batch : 'N', ...s].join(',')})`;
const secs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms >= 10 ? 0 : 1)} ms`);

/** 1234567 -> '1.23 M' (SI prefixes; bytes use KiB/MiB/GiB). */
function human(v: number, unit: string): string {
  if (unit === 'B') {
    const k = ['B', 'KiB', 'MiB', 'GiB'], i = Math.min(k.length - 1, Math.max(0, Math.floor(Math.log2(Math.max(v, 1)) / 10)));
    return `${i ? (v / 1024 ** i).toFixed(1) : v} ${k[i]}`;
  }
  const k = ['', 'k', 'M', 'G', 'T'], i = Math.min(k.length - 1, Math.max(0, Math.floor(Math.log10(Math.max(v, 1)) / 3)));
  return i ? `${(v / 1000 ** i).toFixed(2)} ${k[i]}` : String(v);
}

/** Left-aligned columns, two spaces apart. */
function table(rows: string[][]): string {
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((s, c) => (c === r.length - 1 ? s : s.padEnd(w[c]))).join('  ').trimEnd()).join('\n');
}

// ============================================================================================ dispatch

function version(): string {
  try { return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version; } catch { return 'unknown'; }
}

function topHelp(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return ['usage: camgpu <command> [options]', '',
    'Class activation maps and CNN explanations on WebGPU (ONNX models, hand-written WGSL kernels).', '', 'commands:',
    ...Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(w)}  ${c.summary}`), '',
    'camgpu <command> --help shows the options of a command. Exit status: 0 done, 1 failed, 2 bad command line.',
    'Without a GPU, Dawn needs a Vulkan driver (Mesa lavapipe): bash tools/setup.sh'].join('\n');
}

function commandHelp(name: string, c: Command): string {
  const opts: [string, string][] = Object.entries(c.options).map(([k, o]) => [`--${k}${o.arg ? ` ${o.arg}` : ''}`, `${o.help}${o.required ? ' (required)' : ''}`]);
  opts.push(['-h, --help', 'this help']);
  const w = Math.max(...opts.map(([a]) => a.length));
  return [`usage: camgpu ${name} ${c.usage}`, '', c.about, '', 'options:', ...opts.map(([a, h]) => `  ${a.padEnd(w)}  ${h}`)].join('\n');
}

/** parseArgs with camgpu's one-line messages; returns null when --help was asked for. */
function parse(name: string, c: Command, args: string[]): { values: Values; positionals: string[] } | null {
  const options = Object.fromEntries(Object.entries(c.options).map(([k, o]) => [k, { type: o.type }]));
  let r: { values: Values; positionals: string[] };
  try {
    r = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true }) as typeof r;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code, arg = /'([^' ]+)/.exec((e as Error).message)?.[1] ?? '?';
    const known = Object.keys(c.options).map((k) => `--${k}`).join(', ') || 'none but --help';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`${name}: unknown option '${arg}' (options: ${known})`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new UsageError(`${name}: ${arg} needs a value`);
    throw new UsageError(`${name}: ${(e as Error).message.split('.')[0]}`);
  }
  if (r.values.help) return null;
  for (const [k, o] of Object.entries(c.options)) {
    if (o.required && r.values[k] === undefined) throw new UsageError(`${name} needs --${k} ${o.arg} (usage: camgpu ${name} ${c.usage})`);
    if (o.type === 'string' && r.values[k] === '') throw new UsageError(`${name}: --${k} needs a value`);
  }
  if (r.positionals.length < c.positionals.length) throw new UsageError(`${name} needs ${c.positionals.slice(r.positionals.length).join(' ')} (usage: camgpu ${name} ${c.usage})`);
  if (r.positionals.length > c.positionals.length) throw new UsageError(`${name}: unexpected argument '${r.positionals[c.positionals.length]}' (usage: camgpu ${name} ${c.usage})`);
  return r;
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined) throw new UsageError(`no command given (commands: ${Object.keys(COMMANDS).join(', ')}; camgpu --help for more)`);
  if (name === '--help' || name === '-h' || name === 'help') {
    const c = rest[0] === undefined ? undefined : COMMANDS[rest[0]];
    if (rest[0] !== undefined && !c) throw new UsageError(`unknown command '${rest[0]}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
    out(c ? commandHelp(rest[0], c) : topHelp());
    return;
  }
  if (name === '--version' || name === '-V') { out(version()); return; }
  const c = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!c) throw new UsageError(`unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(', ')}; camgpu --help for more)`);
  const r = parse(name, c, rest);
  if (!r) { out(commandHelp(name, c)); return; }
  await c.run(r.values, r.positionals);
}

/** One line for stderr, and the exit status. */
function report(e: unknown): number {
  const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();
  if (e instanceof UsageError) { process.stderr.write(`camgpu: ${oneLine(e.message)}\n`); return 2; }
  if (e instanceof CliError || e instanceof ModelError || e instanceof UnsupportedError || e instanceof OnnxError || e instanceof GpuError) {
    process.stderr.write(`camgpu: ${oneLine(e.message)}\n`); return 1;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  process.stderr.write(`camgpu: internal error: ${oneLine(err.message)}${process.env.CAMGPU_DEBUG ? `\n${err.stack}` : ' (CAMGPU_DEBUG=1 shows the stack)'}\n`);
  return 1;
}

// `camgpu info ... | head` closes stdout early: that is not an error
process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(0); throw e; });

main(process.argv.slice(2))
  .then(() => 0, report)
  .then(async (code) => { await closeGpu(); process.exitCode = code; });
