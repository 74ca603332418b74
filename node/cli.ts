// The camgpu command line: a table of commands on top of the core (src/) and the Node layer (Dawn, files,
// .npy). Options are parsed with node:util parseArgs, no framework. Every failure ends as ONE line
// `camgpu: <reason>` on stderr; exit status 0 = done, 1 = the work failed (file, model, data, GPU),
// 2 = the command line is wrong. CAMGPU_DEBUG=1 adds the stack of unexpected (internal) errors.
// `info`, `layers` and `plan` never touch the GPU; the other commands create the Dawn device once and always release it.
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { Graph, ModelError, Shape, logitsOf, numel, producers } from '../src/graph.js';
import { macs } from '../src/ops/index.js';
import { Gpu, GpuError } from '../src/gpu.js';
import { UnsupportedError, importModel } from '../src/import.js';
import { Model, ProfileEntry, addProfiles, candidates } from '../src/model.js';
import { Tile, convShape, tileName } from '../src/conv.js';
import { TuneEntry, tune } from '../src/tune.js';
import { cachedTiles, saveTiles, tuneCachePath } from './tune.js';
import { CancelledError, ExplainOptions, Explainer, Explanation, ImageResult, defaultLayer, normMap, parseMethods, resolveLayer } from '../src/explain.js';
import { FAST_METHODS, METHODS, METHOD_NAMES, Method } from '../src/methods.js';
import { OnnxError, OnnxModel, parseOnnx } from '../src/onnx.js';
import { closeGpu, nodeGpu } from './gpu.js';
import { planReport } from './plan.js';
import { EvalError, EvalResult, SceneRecord, accuracy, aggregate, evalBatches, evalSettings, markdown, readScenes, sceneBatches } from './eval.js';
import { EvalShard, ExplainShardRun, ExplainSummary, ShardReport, convTiles, explainShards, evalJson, mergeEval, modelHash, parseShard, recordFromWire, recordToWire, scenesHash, settingsHash, shardBatches, toJson } from './shard.js';
import { EvalReply, ExplainReply, ExplainSettings, QueueStats, QueueTarget, evalJob, explainJob, explainOptions, fromWire, parseQueueUrl, ping, runQueue, span, startWorker } from './queue.js';
import { ExplainRow, writeEvalReport, writeExplainReport } from './report.js';
import { NpyError, nonFinite, npyBytes, parseNpy } from './npy.js';
import { FileError, errno, makeDir as mkdirChecked, readRegular, writableFile } from './files.js';
import { DEFAULT_MAX_MEGAPIXELS, FileKind, ImageError, ImageLimits, Rgb, Sidecar, decodeImage, denormalize, encodePng, imageHeader, preprocess, readSidecar, resizedSize, sidecarPath, sniff } from './image.js';

const classes = (g: Graph) => numel(g.tensors.get(logitsOf(g))!.shape);
import { COLORMAP_NAMES, Colormap, GridWriter, lut, overlay } from './render.js';

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
  variadic?: boolean;       // the last positional may repeat (IMAGE...)
  options: Record<string, Opt>;
  run(v: Values, pos: string[]): Promise<void>;
}

const out = (s = '') => process.stdout.write(s + '\n');

// ============================================================================================= commands

const COMMANDS: Record<string, Command> = {
  info: {
    summary: 'describe an ONNX model: ops, shapes, parameters, MACs, CAM target layers (no GPU; --gpu: the GPU bytes it holds)',
    usage: 'MODEL.onnx',
    about: 'Imports the model as camgpu would (without the GPU) and prints its ops per type, input and output,\n'
      + 'node count, parameters (float initializers in the file, and what the GPU holds after BatchNorm\n'
      + 'folding), multiply-adds per sample, and one line per camgpu node: output tensor, op, per-sample shape,\n'
      + 'MACs. CAM target candidates (4-D activations) are marked *, the default target (the last 4-D\n'
      + 'activation before the head) is marked "default". With --gpu it also loads the model onto the GPU and\n'
      + 'prints the bytes it holds there: weights, a batch-1 forward plan, and all of it after one\n'
      + '`explain --methods fast` of a zero image (model.gpuBytes).',
    positionals: ['MODEL.onnx'],
    options: {
      'input-shape': { type: 'string', arg: 'NxCxHxW', help: 'the input size for a model with symbolic dimensions (N is ignored; default: the sidecar\'s "input")' },
      gpu: { type: 'boolean', help: 'load the model onto the GPU and print the GPU bytes it holds (weights, plans)' },
    },
    run: async (v, [path]) => info(path, v['input-shape'] as string | undefined, !!v.gpu),
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
      out: { type: 'string', arg: 'OUT.npy', help: 'write the output, float32 (N, ...): the logits (N,classes), or a map as the model outputs it' },
      batch: { type: 'string', arg: 'N', help: 'images per GPU run (default: min(N, the largest batch that fits the device))' },
      top: { type: 'string', arg: 'K', help: 'classes to print per image (default 5)' },
      profile: { type: 'boolean', help: 'time every dispatch on the GPU (timestamp queries) and print where the time goes' },
      'allow-nonfinite': { type: 'boolean', help: 'accept NaN and infinite input values (refused by default)' },
      'input-shape': { type: 'string', arg: 'NxCxHxW', help: 'the input size for a model with symbolic dimensions (N is ignored; default: the sidecar\'s "input")' },
    },
    run: (v) => classify(v.model as string, v.input as string, v.out as string | undefined,
      v.batch === undefined ? undefined : posInt('--batch', v.batch as string), v.top === undefined ? 5 : posInt('--top', v.top as string), !!v.profile, v['input-shape'] as string | undefined, !!v['allow-nonfinite']),
  },
  explain: {
    summary: 'explain images: heat-map overlays, a comparison grid, raw maps (.npy) and a JSON summary',
    usage: 'IMAGE... --model MODEL.onnx [--methods LIST|fast|all] [--class N|top1|topK] [--layer NAME] [--out DIR] [--raw DIR] [options]',
    about: 'IMAGE: PNG (8/16-bit, gray, palette, alpha dropped) or JPEG files, or .npy float32 (N,C,H,W) tensors already\n'
      + 'normalised. Images are prepared as torchvision does: shorter side resized (bilinear, antialiased when shrinking)\n'
      + 'to H*256/224, centre crop (H,W), mean/std normalisation (ImageNet\'s by default). A sidecar MODEL.json next to\n'
      + 'MODEL.onnx overrides that: {"input": [3,H,W], "mean": [...], "std": [...], "labels": [...], "layer": NAME,\n'
      + '"resize": S or [h,w], "crop": H}. Writes, under --out: <image>[.c<class>].<method>.png (the map blended on the\n'
      + 'image the model saw; .c<class> unless --class is top1), grid.png (a row per image and target, a column per\n'
      + 'method) and summary.json; under --raw: <method>.npy raw maps (rows, feature-resolution pre-ReLU map, or a pixel\n'
      + 'method\'s attribution), <method>.weights.npy (rows, K) channel weights, logits.npy (rows, classes). Rows are\n'
      + 'image-target pairs in input order. A progress bar shows on stderr when it is a terminal.\n'
      + `Methods (fast: ${FAST_METHODS.join(', ')}):\n${methodList()}`,
    positionals: ['IMAGE...'],
    variadic: true,
    options: {
      model: { type: 'string', arg: 'MODEL.onnx', help: 'the ONNX model (and MODEL.json, its sidecar, if present)', required: true },
      methods: { type: 'string', arg: 'LIST', help: 'comma-separated methods, fast (default: one forward + backward each) or all' },
      class: { type: 'string', arg: 'N|top1|topK', help: 'class to explain: N for every image, the top-1 (default) or top-K classes (K rows per image)' },
      layer: { type: 'string', arg: 'NAME', help: 'target layer, a tensor or node name (default: the sidecar\'s, else the last 4-D activation before the head)' },
      out: { type: 'string', arg: 'DIR', help: 'where overlays, grid.png and summary.json go (default out/)' },
      raw: { type: 'string', arg: 'DIR', help: 'also write raw maps, channel weights and logits as .npy' },
      colormap: { type: 'string', arg: 'NAME', help: `${COLORMAP_NAMES.join(', ')} (default jet)` },
      alpha: { type: 'string', arg: 'A', help: 'weight of the heat map over the image, 0..1 (default 0.5)' },
      batch: { type: 'string', arg: 'N', help: 'images read and explained per run (default 8), which bounds memory; one model and plan cache for all runs' },
      score: { type: 'string', arg: 'logit|prob', help: 'target score: the class logit (default) or its softmax probability' },
      normalize: { type: 'string', arg: 'before|after|none', help: 'min-max of the feature map (default), of the resized map, or none' },
      'no-relu': { type: 'boolean', help: 'keep negative evidence (no ReLU on the raw map)' },
      scorecam: { type: 'string', arg: 'pgc|official', help: 'Score-CAM variant: pytorch-grad-cam\'s (default) or the official code\'s' },
      'rise-n': { type: 'string', arg: 'N', help: 'RISE masks (default 4000)' },
      seed: { type: 'string', arg: 'N', help: 'seed of randomcam, smoothgrad, vargrad and gradientshap (default 0)' },
      'ig-steps': { type: 'string', arg: 'N', help: 'integrated-gradients steps (default 50)' },
      'ig-rule': { type: 'string', arg: 'RULE', help: 'gausslegendre (default), riemann_trapezoid, riemann_left, riemann_right or riemann_middle' },
      'noise-n': { type: 'string', arg: 'N', help: 'smoothgrad / vargrad / gradientshap samples (default 16)' },
      'noise-sigma': { type: 'string', arg: 'S', help: 'their noise standard deviation in normalised input units (default 0.15)' },
      'occlusion-window': { type: 'string', arg: 'N', help: 'occlusion window in pixels (default 8)' },
      'occlusion-stride': { type: 'string', arg: 'N', help: 'occlusion stride in pixels (default 4)' },
      profile: { type: 'boolean', help: 'time every dispatch of the gradient pass on the GPU (timestamp queries); printed and in summary.json' },
      'max-megapixels': { type: 'string', arg: 'MP', help: `refuse images (as decoded, and as resized before the crop) above MP megapixels (default ${DEFAULT_MAX_MEGAPIXELS})` },
      'allow-nonfinite': { type: 'boolean', help: 'accept NaN and infinite values in .npy inputs (refused by default)' },
      report: { type: 'string', arg: 'DIR', help: 'also write DIR/report.html: the grid with top-k classes and timings, click two tiles to compare (self-contained)' },
      'input-shape': { type: 'string', arg: 'NxCxHxW', help: 'the input size for a model with symbolic dimensions (N is ignored; default: the sidecar\'s "input")' },
      queue: { type: 'string', arg: 'redis://HOST:PORT/NAME', help: 'explain the batches on `camgpu worker`s through this Redis job queue (BullMQ); same outputs' },
      attempts: { type: 'string', arg: 'N', help: 'with --queue: tries per batch before the run fails (default 3)' },
      shard: { type: 'string', arg: 'i/n', help: 'only shard i of n (0-based) of the images, in whole --batch runs; give each shard its own --out' },
    },
    run: (v, pos) => explainCommand(v, pos),
  },
  eval: {
    summary: 'the papers\' metrics per method over scenes with boxes: Average Drop, Increase, deletion/insertion AUC, pointing games',
    usage: '--model MODEL.onnx --data DIR [--methods LIST|fast|all] [--limit N] [--steps N] [--auc-limit N] [--batch N] [--json FILE]',
    about: 'DIR holds PNG scenes and boxes.json ([{file, class, boxes: [[x0,y0,x1,y1], ...], multi}], x1/y1 exclusive), like\n'
      + 'data/scenes/. Every scene is explained for its ground-truth class. Per method: Average Drop % and Increase in\n'
      + 'Confidence % (softmax of the image times the map), deletion and insertion AUC (pixels removed to 0 in normalised\n'
      + 'space, or inserted into the image blurred with a Gaussian (11, sigma 5), --steps steps, default 224), pointing\n'
      + 'game (map maximum within 15 px of a box), energy-based pointing game (share of the map inside the boxes), and on\n'
      + 'multi-instance scenes the share of garments holding a local maximum of the map (>= half the map maximum).\n'
      + 'Prints a markdown table; --json writes the numbers.',
    positionals: [],
    options: {
      model: { type: 'string', arg: 'MODEL.onnx', help: 'the ONNX model (and its sidecar MODEL.json)', required: true },
      data: { type: 'string', arg: 'DIR', help: 'scenes and boxes.json', required: true },
      methods: { type: 'string', arg: 'LIST', help: 'comma-separated methods, fast or all (default: the channel-weight and element-wise CAMs)' },
      limit: { type: 'string', arg: 'N', help: 'the first N scenes only' },
      steps: { type: 'string', arg: 'N', help: 'deletion/insertion steps (default 224: H*W/224 pixels a step)' },
      'auc-limit': { type: 'string', arg: 'N', help: 'deletion/insertion AUC over the first N scenes only (2*(steps+1) forwards per scene and method)' },
      batch: { type: 'string', arg: 'N', help: 'scenes explained per run (default 16)' },
      'rise-n': { type: 'string', arg: 'N', help: 'RISE masks (default 4000)' },
      json: { type: 'string', arg: 'FILE', help: 'also write the results as JSON' },
      report: { type: 'string', arg: 'DIR', help: 'also write DIR/report.html (metrics, curves, gallery with boxes, pointing game, settings; self-contained) and DIR/eval.json' },
      gallery: { type: 'string', arg: 'N', help: 'scenes in the report\'s gallery (default 12)' },
      accuracy: { type: 'boolean', help: 'only the top-1 accuracy over the scenes (forward passes, no explanations)' },
      'max-megapixels': { type: 'string', arg: 'MP', help: `refuse scenes (as decoded, and as resized before the crop) above MP megapixels (default ${DEFAULT_MAX_MEGAPIXELS})` },
      queue: { type: 'string', arg: 'redis://HOST:PORT/NAME', help: 'run the batches on `camgpu worker`s through this Redis job queue (BullMQ); same results' },
      attempts: { type: 'string', arg: 'N', help: 'with --queue: tries per batch before the run fails (default 3)' },
      shard: { type: 'string', arg: 'i/n', help: 'only shard i of n (0-based; whole batches); --json then writes a shard file for `camgpu merge`' },
    },
    run: (v) => evalCommand(v),
  },
  worker: {
    summary: 'process eval and explain batches from a Redis job queue (BullMQ) on this machine\'s GPU, until stopped',
    usage: '--queue redis://HOST:PORT/NAME --model MODEL.onnx [--lock-ms MS] [--stalled-ms MS] [--max-stalled N]',
    about: 'Takes jobs that `camgpu eval --queue` or `explain --queue` put on the queue, one at a time, explains (and scores) them with\n'
      + 'its own GPU device and plans, and sends back per-scene records. A job for another model (sha256 of MODEL.onnx and\n'
      + 'its sidecar) or whose settings hash does not match is put back untouched and the worker stops with exit 1,\n'
      + 'saying why. A worker that dies mid-batch stops renewing its lock; after --lock-ms another worker\'s stalled\n'
      + 'check (every --stalled-ms) puts the batch back in the queue, at most --max-stalled times. SIGTERM or SIGINT: the\n'
      + 'batch in hand is finished, then the worker exits 0.',
    positionals: [],
    options: {
      queue: { type: 'string', arg: 'redis://HOST:PORT/NAME', help: 'the queue (NAME) on a Redis server', required: true },
      model: { type: 'string', arg: 'MODEL.onnx', help: 'the ONNX model (and its sidecar MODEL.json): must be the run\'s', required: true },
      'lock-ms': { type: 'string', arg: 'MS', help: 'lock on the batch in hand, renewed every MS/2 (default 30000)' },
      'stalled-ms': { type: 'string', arg: 'MS', help: 'how often to look for batches whose worker died (default 30000)' },
      'max-stalled': { type: 'string', arg: 'N', help: 'times a batch may be taken back from a dead worker before it fails (default 2)' },
    },
    run: (v) => workerCommand(v),
  },
  merge: {
    summary: 'add up the shards of `eval --shard i/n` or `explain --shard i/n` into the single run\'s outputs (exactly)',
    usage: 'SHARD.json... [--json FILE] [--report DIR]  |  DIR-i/summary.json... [--out DIR] [--raw DIR] [--report DIR]',
    about: 'Checks that the files are shards 0..n-1 of one run (same model sha256, same settings hash, every scene or image\n'
      + 'once), then writes what the single run writes. Eval shard files: their per-scene records are summed in scene order\n'
      + 'as a single run does (the same numbers); prints the markdown table; --json writes what `eval --json` writes\n'
      + '(seconds: the longest shard\'s), --report the report. Explain shards (each --out DIR\'s summary.json): --out gets the\n'
      + 'overlays, grid.png and summary.json of the single run, --raw the raw .npy (rows in run order), --report the page.',
    positionals: ['SHARD.json...'],
    variadic: true,
    options: {
      json: { type: 'string', arg: 'FILE', help: 'write the merged results as JSON' },
      report: { type: 'string', arg: 'DIR', help: 'also write DIR/report.html (and for eval DIR/eval.json), as a single run\'s --report does' },
      out: { type: 'string', arg: 'DIR', help: 'explain shards: where summary.json, grid.png and the overlays go (default out/)' },
      raw: { type: 'string', arg: 'DIR', help: 'explain shards: the shards\' raw .npy concatenated in row order (every shard needs --raw)' },
    },
    run: async (v, files) => mergeCommand(files, v),
  },
  tune: {
    summary: 'time every conv tile of a model on this GPU and cache the fastest per layer shape (later commands use it)',
    usage: '--model MODEL.onnx [--runs N]',
    about: 'For each distinct conv layer shape, runs the forward conv with every register tile camgpu has (output channels\n'
      + 'x pixels per invocation, WGSL override constants; Winograd F(2x2,3x3) with three tiles for 3x3 stride-1 layers),\n'
      + 'checks its output against the default tile\'s (1e-5 of the\n'
      + 'max), times it with timestamp queries (median of --runs, default 3) and keeps the fastest. The picks are\n'
      + 'cached per adapter and driver in $CAMGPU_TUNE_CACHE, else $XDG_CACHE_HOME/camgpu/tiles.json, else\n'
      + '~/.cache/camgpu/tiles.json; classify, explain and eval load them. Needs the adapter\'s timestamp-query feature.',
    positionals: [],
    options: {
      model: { type: 'string', arg: 'MODEL.onnx', help: 'the ONNX model', required: true },
      runs: { type: 'string', arg: 'N', help: 'timed runs per tile (default 3)' },
    },
    run: (v) => tuneCommand(v.model as string, v.runs === undefined ? 3 : posInt('--runs', v.runs as string)),
  },
  layers: {
    summary: 'list the CAM target layers of an ONNX model with their shapes and the default (no GPU)',
    usage: 'MODEL.onnx',
    about: 'Lists every candidate target layer (a 4-D activation with spatial size > 1 on the path to the output) with\n'
      + 'its node, op and shape, in graph order. The default (used when explain gets no --layer) is the sidecar\'s\n'
      + '"layer" when MODEL.json has one, else the last 4-D activation before the classifier head.',
    positionals: ['MODEL.onnx'],
    options: {
      'input-shape': { type: 'string', arg: 'NxCxHxW', help: 'the input size for a model with symbolic dimensions (N is ignored; default: the sidecar\'s "input")' },
    },
    run: async (v, [path]) => layers(path, v['input-shape'] as string | undefined),
  },
  plan: {
    summary: 'print the plans explain builds: every dispatch, buffer and lifetime, and the peak memory (no GPU)',
    usage: '--model MODEL.onnx [--methods LIST|fast|all] [--batch B] [--layer NAME]',
    about: 'Runs the planner (src/planner.ts) as explain would for these methods and prints each plan: its dispatches in\n'
      + 'replay order (label, pipeline with override constants, workgroups, bindings by buffer id), its buffers (bytes,\n'
      + 'the dispatches that bind them), the model buffers and the peak memory. Asks for no adapter: limits are\n'
      + 'WebGPU\'s defaults (128 MiB per storage binding) unless --max-binding is given.',
    positionals: [],
    options: {
      model: { type: 'string', arg: 'MODEL.onnx', help: 'the ONNX model (and MODEL.json, its sidecar, if present)', required: true },
      methods: { type: 'string', arg: 'LIST', help: 'comma-separated methods, fast (default) or all' },
      batch: { type: 'string', arg: 'B', help: 'images per run (default: explain\'s choice for 16 or more images)' },
      layer: { type: 'string', arg: 'NAME', help: 'target layer (default: the sidecar\'s, else the last 4-D activation before the head)' },
      'max-binding': { type: 'string', arg: 'BYTES', help: 'the storage binding limit to plan for (default 134217728)' },
      'input-shape': { type: 'string', arg: 'NxCxHxW', help: 'the input size for a model with symbolic dimensions' },
    },
    run: async (v) => planCommand(v),
  },
};

async function planCommand(v: Values) {
  const path = v.model as string, { graph: g } = loadGraph(path, v['input-shape'] as string | undefined);
  const shape = g.tensors.get(g.input)!.shape, side = shape.length === 3 ? sidecar(path, shape, classes(g)) : null;
  const layer = resolveLayer(g, (v.layer as string | undefined) ?? side?.layer);
  out(planReport(g, basename(path), { methods: methodsArg(v, 'plan', 'fast'), layer,
    batch: v.batch === undefined ? undefined : posInt('--batch', v.batch as string),
    maxBinding: v['max-binding'] === undefined ? undefined : posInt('--max-binding', v['max-binding'] as string) }));
}

// ================================================================================================= info

async function info(path: string, shape?: string, gpuBytes = false) {
  const { onnx, graph: g, bytes } = loadGraph(path, shape);
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
    ...(gpuBytes ? [['GPU memory', await gpuMemory(g, path, target !== null)]] : []),
  ]));
  out();
  out(table([['tensor', 'op', 'shape', 'MACs', 'cam'],
    ...g.nodes.map((n, i) => [n.output, n.source, shapeN(g.tensors.get(n.output)!.shape), perNode[i] ? human(perNode[i], '') : '',
      n.output === target ? 'default' : cands.has(n.output) ? '*' : ''])]));
}

/** `info --gpu`: the bytes the model holds on the GPU (Model.memory, counted by src/gpu.ts ledgers). */
async function gpuMemory(g: Graph, path: string, explainable: boolean): Promise<string> {
  const { model } = await loadTuned(g, path), ex = new Explainer(model);
  try {
    const weights = model.gpuBytes, plan = await model.plan({ batch: 1 }), forward = plan.bytes;
    plan.destroy();
    const parts = [`weights ${human(weights, 'B')} (${weights} B)`, `forward plan at batch 1 ${human(forward, 'B')}`];
    if (explainable && model.inputShape.length === 3) {
      const e = await ex.explain(new Float32Array(numel(model.inputShape)), { methods: 'fast' });
      parts.push(`after explain --methods fast of one image ${human(e.memory.model, 'B')} (${e.memory.model} B, ${model.memory().plans.length} plans)`);
    }
    return parts.join('; ');
  } finally { ex.destroy(); model.destroy(); }
}

/** Values a node's op holds on the GPU (weights, biases, folded BN scale/shift, LayerNorm / InstanceNorm scale and bias). */
function opParams(op: Graph['nodes'][number]['op']): number {
  if (op.kind === 'conv' || op.kind === 'linear' || op.kind === 'convtranspose') return op.w.length + op.b.length;
  if (op.kind === 'affine') return op.scale.length + op.shift.length;
  if (op.kind === 'norm') return op.scale.length + op.bias.length;
  return 0;
}

// ============================================================================================= classify

async function classify(modelPath: string, inputPath: string, outPath: string | undefined, batch: number | undefined, top: number, profiled: boolean, inputShape?: string, allowNonfinite = false) {
  const t0 = performance.now();
  const { graph: g } = loadGraph(modelPath, inputShape);
  const x = readNpy(inputPath);
  if (!allowNonfinite) finiteInput(inputPath, x.data, x.shape);
  const per = g.tensors.get(g.input)!.shape;
  if (x.shape.length !== per.length + 1 || x.shape.slice(1).some((d, i) => d !== per[i]))
    throw new CliError(`${inputPath} has shape (${x.shape}); ${basename(modelPath)} expects (N,${per})`);
  if (outPath) writable(outPath);
  const N = x.shape[0], classes = numel(g.tensors.get(logitsOf(g))!.shape);
  if (N < 1) throw new CliError(`${inputPath} holds no images (shape (${x.shape}))`);
  const tImport = performance.now();

  const { gpu, model, tuned } = await loadTuned(g, modelPath);
  const tLoad = performance.now();
  const B = batch ?? Math.min(N, model.maxBatch());
  const plan = await model.plan({ batch: B });
  const tPlan = performance.now();
  out(table([
    ['model', `${modelPath}: (${per}) -> ${classes} classes`],
    ['adapter', `${gpu.adapterInfo || '(unknown)'}; ${tuned}`],
    ['input', `${inputPath}: ${N} image${N > 1 ? 's' : ''}, batch ${B} (at most ${model.maxBatch()} on this device), ${Math.ceil(N / B)} run${N > B ? 's' : ''}`],
  ]));

  const n1 = numel(per), logits = new Float32Array(N * classes);
  let profile: ProfileEntry[] | undefined;
  for (let i = 0; i < N; i += B) {
    const k = Math.min(B, N - i);
    const r = await plan.run(x.data.subarray(i * n1, (i + k) * n1), { profile: profiled });
    logits.set(r.logits, i * classes);
    if (r.profile) profile = addProfiles(profile, r.profile);
  }
  const tRun = performance.now();

  const outShape = g.tensors.get(logitsOf(g))!.shape;
  const rows: string[][] = outShape.length > 1 ? mapRows(logits, N, outShape) : [['image', 'rank', 'class', 'logit', 'prob']];
  for (let i = 0; i < N && outShape.length === 1; i++) {
    const l = logits.subarray(i * classes, (i + 1) * classes), p = softmax(l);
    const order = [...l.keys()].sort((a, b) => l[b] - l[a]).slice(0, Math.min(top, classes));
    order.forEach((c, r) => rows.push([r === 0 ? String(i) : '', String(r + 1), String(c), l[c].toPrecision(6), p[c].toFixed(6)]));
  }
  out();
  out(table(rows));
  if (outPath) {
    try { writeFileSync(outPath, npyBytes(logits, [N, ...outShape])); } catch (e) { throw new CliError(`cannot write '${outPath}': ${errno(e)}`); }
  }
  const macsPer = g.nodes.reduce((s, n) => s + macs(g, n), 0), sec = (tRun - tPlan) / 1000;
  out();
  out(table([
    ['time', `read + import ${secs(tImport - t0)}, upload + compile ${secs(tLoad - tImport)}, plan ${secs(tPlan - tLoad)}, `
      + `forward ${secs(tRun - tPlan)} (${secs((tRun - tPlan) / N)}/image, ${(2 * macsPer * N / sec / 1e9).toFixed(1)} GFLOP/s)`],
    ...(outPath ? [['output', `${outPath} (${[N, ...outShape].join(',')}) float32`]] : []),
  ]));
  if (profile) printProfile(g, profile, `forward of ${N} image${N > 1 ? 's' : ''} in ${Math.ceil(N / B)} run${N > B ? 's' : ''} of batch ${B}`);
  plan.destroy();
  model.destroy();
}

/** Rows for a model whose output is a map (segmentation (K,H,W), detection grids, any rank > 1): per image its range and,
 *  for (K, ...) outputs, the classes that win the most positions (argmax over K). */
function mapRows(y: Float32Array, N: number, shape: number[]): string[][] {
  const per = numel(shape), K = shape[0], P = per / K, rows = [['image', 'output', 'min', 'max', 'argmax over axis 1: class (share of positions)']];
  for (let i = 0; i < N; i++) {
    const v = y.subarray(i * per, (i + 1) * per), wins = new Array<number>(K).fill(0);
    let lo = Infinity, hi = -Infinity;
    for (const t of v) { lo = Math.min(lo, t); hi = Math.max(hi, t); }
    for (let q = 0; q < P; q++) { let b = 0; for (let k = 1; k < K; k++) if (v[k * P + q] > v[b * P + q]) b = k; wins[b]++; }
    const best = [...wins.keys()].sort((a, b) => wins[b] - wins[a]).slice(0, 3).filter((k) => wins[k] > 0);
    rows.push([String(i), `(${shape.join(',')})`, lo.toPrecision(4), hi.toPrecision(4), best.map((k) => `${k} (${(100 * wins[k] / P).toFixed(1)}%)`).join(', ')]);
  }
  return rows;
}

/** Loads a graph onto the Dawn device with the tiles `camgpu tune` cached for this adapter. */
async function loadTuned(g: Graph, path: string): Promise<{ gpu: Gpu; model: Model; tuned: string; picks: Record<string, string> }> {
  const t = await runTiles(g);
  return { ...t, model: await Model.load(t.gpu, g, basename(path), { tiles: t.tiles }) };
}

/** The conv tiles a model gets on this machine's adapter (the tuning cache's, else the rule), without loading it: a queue
 *  run's coordinator puts them in the run's settings, so only workers that compute with the same tiles take its jobs. */
async function runTiles(g: Graph) {
  const gpu = await nodeGpu(), file = tuneCachePath();
  let tiles: Record<string, Tile>;
  try { tiles = cachedTiles(gpu.adapterInfo, file); } catch (e) { if (e instanceof FileError || /^tuning cache/.test((e as Error).message)) throw new CliError((e as Error).message); throw e; }
  const mine = new Set(g.nodes.filter((n) => n.op.kind === 'conv').map((n) => convShape(g, n))), n = Object.keys(tiles).filter((k) => mine.has(k)).length;
  return { gpu, tiles, picks: convTiles(g, tiles), tuned: n ? `conv tiles tuned for ${n} of ${mine.size} layer shapes (${file})` : 'default conv tiles (run camgpu tune)' };
}

async function tuneCommand(path: string, runs: number) {
  const t0 = performance.now(), { graph: g } = loadGraph(path), file = tuneCachePath();
  makeDir(dirname(file), 'tuning cache folder'); // before the (long) tuning run
  const gpu = await nodeGpu();
  let entries: TuneEntry[], progress: Progress | null = null;
  try { entries = await tune(gpu, g, { runs, onProgress: (d, n, shape) => { progress ??= new Progress(n, 'layer shapes'); progress.show(d, shape); } }); }
  finally { (progress as Progress | null)?.end(); }
  try { saveTiles(gpu.adapterInfo, Object.fromEntries(entries.map((e) => [e.shape, e.best])), file); }
  catch (e) { throw new CliError(e instanceof FileError || (e as Error).message.startsWith('tuning cache') ? (e as Error).message : `cannot write '${file}': ${errno(e)}`); }
  const tile = tileName, count = (e: TuneEntry) => e.layers.length;
  const sum = (f: (e: TuneEntry) => number) => entries.reduce((s, e) => s + f(e) * count(e), 0);
  out(`${basename(path)} on ${gpu.adapterInfo}: ${entries.length} conv layer shapes, ${runs} timed runs per tile\n`);
  out(table([['layer shape', 'layers', 'default', 'ms', 'best', 'ms', 'GFLOP/s', 'speed-up', 'tried (ms)'], ...entries.map((e) => [
    e.shape, String(count(e)), tile(e.defaultTile), e.defaultMs.toFixed(2), tile(e.best), e.ms.toFixed(2), (2 * e.macs / e.ms / 1e6).toFixed(1),
    `${(e.defaultMs / e.ms).toFixed(2)}x`, e.tried.map((t) => `${tile(t.tile)} ${t.ms?.toFixed(2) ?? t.error}`).join(', ')])]));
  out();
  out(table([
    ['conv layers', `${secs(sum((e) => e.defaultMs))} with the default tiles, ${secs(sum((e) => e.ms))} tuned (${(sum((e) => e.defaultMs) / sum((e) => e.ms)).toFixed(2)}x), every conv once, GPU time`],
    ['cache', `${file} (${entries.length} shapes for this adapter)`],
    ['time', secs(performance.now() - t0)],
  ]));
}

// ============================================================================================== explain

interface ExplainArgs {
  model: string; files: string[]; methods: Method[];
  /** A fixed class for every image, or the top-k classes (k rows per image). */
  cls: { c: number } | { k: number };
  layer?: string; outDir: string; rawDir?: string; colormap: Colormap; alpha: number; batch: number;
  score: 'logit' | 'prob'; normalize: 'before' | 'after' | 'none'; relu: boolean; scorecam: 'pgc' | 'official'; riseN?: number;
  sampling?: ExplainSettings['sampling'];
}

/** The command line of explain, checked before any file is read (errors exit 2). */
function explainArgs(v: Values, files: string[]): ExplainArgs {
  const pick = <T extends string>(flag: string, allowed: readonly T[], dflt: T): T => {
    const x = v[flag];
    if (x === undefined) return dflt;
    if (!allowed.includes(x as T)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')}, got '${x}'`);
    return x as T;
  };
  const methods = methodsArg(v, 'explain', 'fast');
  const c = (v.class as string | undefined) ?? 'top1';
  let cls: ExplainArgs['cls'];
  if (/^\d+$/.test(c)) cls = { c: Number(c) };
  else if (/^top[1-9]\d*$/.test(c)) cls = { k: Number(c.slice(3)) };
  else throw new UsageError(`--class must be a class index N, top1 or topK (e.g. top3), got '${c}'`);
  const alpha = v.alpha === undefined ? 0.5 : Number(v.alpha);
  if (!(alpha >= 0 && alpha <= 1)) throw new UsageError(`--alpha must be a number in [0, 1], got '${v.alpha}'`);
  return {
    model: v.model as string, files, methods, cls, layer: v.layer as string | undefined,
    outDir: (v.out as string | undefined) ?? 'out', rawDir: v.raw as string | undefined,
    colormap: pick('colormap', COLORMAP_NAMES, 'jet'), alpha,
    batch: v.batch === undefined ? 8 : posInt('--batch', v.batch as string),
    score: pick('score', ['logit', 'prob'] as const, 'logit'), normalize: pick('normalize', ['before', 'after', 'none'] as const, 'before'),
    relu: !v['no-relu'], scorecam: pick('scorecam', ['pgc', 'official'] as const, 'pgc'),
    riseN: v['rise-n'] === undefined ? undefined : posInt('--rise-n', v['rise-n'] as string),
    sampling: samplingArgs(v),
  };
}

/** One model input: an image file, or image `index` of an .npy batch; `name` is unique in the run. */
interface Item { file: string; kind: FileKind; index: number; name: string }

/** Checks every input before the GPU starts: a regular file, PNG/JPEG/.npy by content; images by their header (pixel
 *  limit, size after the resize), .npy by shape and finite values; expands .npy batches. */
function scanInputs(files: string[], inShape: number[], side: Sidecar, limits: ImageLimits, allowNonfinite: boolean): Item[] {
  const items: Item[] = [], used = new Set<string>();
  for (const f of files) {
    const bytes = readFile(f, 'image'), kind = sniff(bytes), stem = basename(f, extname(f)) || basename(f);
    if (!kind) throw new CliError(`${f}: not a PNG, JPEG or .npy file`);
    let n = 1;
    if (kind === 'npy') {
      let x;
      try { x = parseNpy(bytes, f); } catch (e) { if (e instanceof NpyError) throw new CliError(e.message); throw e; }
      if (x.shape.length !== 4 || x.shape.slice(1).some((d, i) => d !== inShape[i]) || x.shape[0] < 1)
        throw new CliError(`${f} has shape (${x.shape}); the model expects (N,${inShape}), normalised`);
      if (!allowNonfinite) finiteInput(f, x.data, x.shape);
      n = x.shape[0];
    } else if (inShape[0] !== 3) throw new CliError(`${f}: the model takes ${inShape[0]}-channel input, not RGB; give it a .npy (N,${inShape})`);
    else {
      const h = imageHeader(bytes, f, limits);
      resizedSize(h.width, h.height, inShape[1], inShape[2], side.resize, f, limits);
    }
    for (let i = 0; i < n; i++) {
      const base = n > 1 ? `${stem}_${i}` : stem, ext = extname(f).slice(1);
      let name = used.has(base) && ext ? `${base}_${ext}` : base; // shapes.png, shapes.jpg -> shapes, shapes_jpg
      for (let k = 2; used.has(name); k++) name = `${base}-${k}`;
      used.add(name);
      items.push({ file: f, kind, index: i, name });
    }
  }
  return items;
}

/** Model inputs for a batch of items: x (k,C,H,W) normalised, and each image as the model saw it. */
function loadBatch(items: Item[], inShape: number[], side: Sidecar, cache: { file?: string; data?: Float32Array }, limits: ImageLimits): { x: Float32Array; views: Rgb[] } {
  const [C, H, W] = inShape, per = C * H * W, x = new Float32Array(items.length * per), views: Rgb[] = [];
  items.forEach((it, i) => {
    if (it.kind === 'npy') {
      if (cache.file !== it.file) { cache.data = readNpy(it.file).data; cache.file = it.file; }
      const img = cache.data!.subarray(it.index * per, (it.index + 1) * per);
      x.set(img, i * per);
      views.push(denormalize(img, C, H, W, side.mean, side.std));
    } else {
      const p = preprocess(decodeImage(readFile(it.file, 'image'), it.file, limits), H, W, side, it.file, limits);
      x.set(p.x, i * per);
      views.push(p.view);
    }
  });
  return { x, views };
}

async function explainCommand(v: Values, files: string[]) {
  const t0 = performance.now(), a = explainArgs(v, files), limits = limitsArg(v);
  const { graph: g } = loadGraph(a.model, v['input-shape'] as string | undefined);
  const inShape = g.tensors.get(g.input)!.shape, classes = numel(g.tensors.get(logitsOf(g))!.shape);
  if (inShape.length !== 3) throw new CliError(`${a.model}: explain needs an image input (N,C,H,W); this model's input is (N,${inShape})`);
  const side = sidecar(a.model, inShape, classes);
  let layer: string;
  try { layer = resolveLayer(g, a.layer ?? side.layer); }
  catch (e) { if (e instanceof ModelError && !a.layer && side.layer) throw new CliError(`${side.path}: ${e.message}`); throw e; }
  if ('c' in a.cls && a.cls.c >= classes) throw new CliError(`class ${a.cls.c} is out of range: the model has ${classes} classes (0..${classes - 1})`);
  if ('k' in a.cls && a.cls.k > classes) throw new CliError(`--class top${a.cls.k}: the model has only ${classes} classes`);
  const allItems = scanInputs(a.files, inShape, side, limits, !!v['allow-nonfinite']);
  let items = allItems, shard: { i: number; n: number } | undefined;
  try { if (v.shard !== undefined) shard = parseShard(v.shard as string); } catch (e) { throw new UsageError((e as Error).message); }
  if (shard && v.queue !== undefined) throw new UsageError('explain: --queue and --shard are two ways to split a run; give one');
  if (shard) { // whole --batch runs of the input list, as a single run makes them; names stay those of the whole list
    const runsOf = Array.from({ length: Math.ceil(items.length / a.batch) }, (_, j) => items.slice(j * a.batch, (j + 1) * a.batch));
    items = shardBatches(runsOf, shard.i, shard.n).flat();
    if (!items.length) throw new CliError(`--shard ${shard.i}/${shard.n}: no images for this shard (${runsOf.length} runs of --batch ${a.batch} over ${shard.n} shards)`);
  }
  const k = 'k' in a.cls ? a.cls.k : 1, rows = items.length * k, named = !('k' in a.cls && a.cls.k === 1);
  makeDir(a.outDir);
  if (a.rawDir) makeDir(a.rawDir, 'raw output folder');
  const [, H, W] = inShape, layerShape = g.tensors.get(layer)!.shape, cmap = lut(a.colormap);

  let target: QueueTarget | undefined;
  try { if (v.queue !== undefined) target = parseQueueUrl(v.queue as string); } catch (e) { throw new UsageError((e as Error).message); }
  if (target && v.profile) throw new UsageError('explain: --profile times this machine\'s GPU; it does not go with --queue');
  // what decides the numbers: a local run and the queue's workers explain each batch with these same options
  const local = target ? null : await loadTuned(g, a.model), progress = new Progress(items.length);
  const settings: ExplainSettings = { kind: 'explain', methods: a.methods, layer, score: a.score, normalize: a.normalize, relu: a.relu, scorecam: a.scorecam,
    ...(a.riseN ? { riseN: a.riseN } : {}), ...(a.sampling ? { sampling: a.sampling } : {}), targets: 'c' in a.cls ? { c: a.cls.c } : { k: a.cls.k },
    tiles: local ? local.picks : (await runTiles(g)).picks };
  const explainer = local ? new Explainer(local.model) : null;
  const remote = target ? explainQueue(target, a.model, settings, items, a.batch, inShape, side, (s) => { progress.end(); process.stderr.write(`camgpu: ${s}\n`); }, v.attempts === undefined ? 3 : posInt('--attempts', v.attempts as string), limits) : null;
  const gridPath = join(a.outDir, 'grid.png'), raws = new Map<string, NpyWriter>();
  const raw = (name: string, shape: number[]) => {
    let w = raws.get(name);
    if (!w) { w = new NpyWriter(join(a.rawDir!, name), shape); raws.set(name, w); }
    return w;
  };
  const timings: Record<string, number> = {}, images: Record<string, unknown>[] = [], printed: string[][] = [];
  const reportDir = v.report as string | undefined, reportRows: ExplainRow[] = [];
  if (reportDir) makeDir(reportDir);
  let overlays = 0, runs = 0, last: Item | null = null, profile: ProfileEntry[] | undefined, queueStats: QueueStats | undefined;
  let memory: Explanation['memory'] | undefined; // GPU bytes the model held after the last batch (weights + plans)
  // no `batch`: explain() picks the GPU batch that fits its memory budget (at most 16, at most the rows of a call)
  const opts = (count: number): ExplainOptions => ({ ...explainOptions(settings, count), profile: !!v.profile, signal: STOP.signal });
  try {
    const grid = guard(gridPath, () => new GridWriter(gridPath, rows, ['image', ...a.methods], H, W));
    const cache = {};
    for (let i0 = 0; i0 < items.length; i0 += a.batch) {
      const chunk = items.slice(i0, i0 + a.batch), { x, views } = loadBatch(chunk, inShape, side, cache, limits);
      progress.show(i0);
      const e: { images: ImageResult[]; timings: Record<string, number>; profile?: ProfileEntry[] } = remote ? await remote.batch(i0 / a.batch) : await explainer!.explain(x, {
        ...opts(chunk.length),
        onProgress: (done, total, what) => progress.show(i0 + (what === 'images' ? Math.floor(done / k) : 0), what === 'images' ? '' : `${what} ${done}/${total}`),
      });
      runs++;
      if (!remote) memory = (e as Explanation).memory;
      for (const [key, ms] of Object.entries(e.timings)) timings[key] = (timings[key] ?? 0) + ms;
      if (e.profile) profile = addProfiles(profile, e.profile);
      for (const r of e.images) {
        const it = chunk[r.image], view = views[r.image], stem = named ? `${it.name}.c${r.target}` : it.name;
        const tiles: Rgb[] = [view], files: Record<string, string> = {};
        for (const m of a.methods) {
          const mr = r.methods[m]!, heat = a.normalize === 'none' ? normMap(mr.map) : mr.map;
          const pic = overlay(view, heat, cmap, a.alpha), path = join(a.outDir, `${stem}.${m}.png`);
          guard(path, () => writeFileSync(path, encodePng(pic)));
          files[m] = path; tiles.push(pic); overlays++;
          if (a.rawDir) {
            raw(`${m}.npy`, [rows, ...mr.rawShape]).append(mr.raw);
            if (mr.weights) raw(`${m}.weights.npy`, [rows, mr.weights.length]).append(mr.weights);
          }
        }
        if (a.rawDir) raw('logits.npy', [rows, classes]).append(r.logits);
        const label = side.labels[r.target], prob = r.probs[r.target];
        if (reportDir) reportRows.push({ name: it.name, target: r.target, label, prob, view, overlays: Object.fromEntries(a.methods.map((m, j) => [m, tiles[j + 1]])) });
        await grid.addRow(gridLabel(it.name, label, r.target, prob), tiles);
        printed.push([it.name, String(r.target), label, fmtProb(prob), r.logits[r.target].toPrecision(5)]);
        if (last !== it) {
          last = it;
          images.push({ file: it.file, ...(it.kind === 'npy' ? { index: it.index } : {}), name: it.name,
            top: r.topk.map((t) => ({ class: t.class, label: side.labels[t.class], prob: t.prob, logit: t.logit })), targets: [] });
        }
        (images[images.length - 1].targets as unknown[]).push(targetSummary(r, label, files));
      }
      progress.show(Math.min(i0 + a.batch, items.length));
    }
    await grid.close();
    for (const w of raws.values()) w.close();
    if (remote) queueStats = await remote.done;
  } catch (e) {
    if (remote && !(e instanceof CliError) && !(e instanceof CancelledError)) throw new CliError(`explain --queue ${target!.url}: ${(e as Error).message}`);
    throw e;
  } finally {
    progress.end();
    explainer?.destroy();
    local?.model.destroy();
  }

  const summaryPath = join(a.outDir, 'summary.json');
  const compiled = local ? { ...local.gpu.compiled } : null; // every pipeline this process compiled (cold: the driver's JIT too)
  const summary = {
    versions: { camgpu: version(), node: process.versions.node, webgpu: pkgVersion('webgpu'), pngjs: pkgVersion('pngjs'), 'jpeg-js': pkgVersion('jpeg-js') },
    adapter: local ? local.gpu.adapterInfo || null : null,
    ...(shard ? { shard: [shard.i, shard.n], shard_run: explainShardRun(a, settings, allItems, side) } : {}),
    ...(queueStats ? { queue: { url: target!.url, batches: queueStats.jobs, workers: queueStats.workers, stalled: queueStats.stalled.length, failed_attempts: queueStats.retried.length } } : {}),
    model: { file: a.model, input: inShape, classes, sidecar: side.path },
    preprocessing: { resize: side.resize, crop: [H, W], mean: side.mean, std: side.std },
    layer: { name: layer, shape: layerShape, from: a.layer ? '--layer' : side.layer ? 'sidecar' : 'default' },
    methods: a.methods,
    options: { class: (v.class as string | undefined) ?? 'top1', score: a.score, normalize: a.normalize, relu: a.relu, scorecam: a.scorecam,
      rise_n: a.riseN ?? null, colormap: a.colormap, alpha: a.alpha, batch: a.batch },
    timings_ms: Object.fromEntries(Object.entries(timings).map(([key, ms]) => [key, Math.round(ms * 100) / 100])),
    ...(memory ? { gpu_memory: { model_bytes: memory.model, weights_bytes: memory.weights, plans_bytes: memory.plans } } : {}),
    compile: compiled ? { pipelines: compiled.count, ms: Math.round(compiled.ms * 100) / 100 } : null, // this process's, none in a pass's time
    ...(profile ? { profile_ms: profile.map((p) => ({ dispatch: p.label, phase: p.phase, ms: Math.round(p.ms * 1000) / 1000 })) } : {}),
    outputs: { dir: a.outDir, grid: gridPath, raw: a.rawDir ? Object.fromEntries([...raws].map(([n, w]) => [join(a.rawDir!, n), w.shape])) : null },
    images,
  };
  guard(summaryPath, () => writeFileSync(summaryPath, pretty(summary) + '\n'));
  const reportPath = reportDir ? guard(join(reportDir, 'report.html'), () => writeExplainReport(reportDir, summary, reportRows)) : null;

  out(table([
    ['model', `${a.model}: (${inShape}) -> ${classes} classes; ${side.path ? `preprocessing from ${side.path}` : 'no sidecar, ImageNet preprocessing'}:`
      + ` resize ${side.resize}, crop ${H}x${W}`],
    local ? ['adapter', `${local.gpu.adapterInfo || '(unknown)'}; ${local.tuned}`]
      : ['queue', `${target!.url}: ${queueStats!.jobs} batches, ${Object.keys(queueStats!.workers).length} workers (${Object.entries(queueStats!.workers).map(([w, n]) => `${w}: ${n}`).join(', ')}), ${queueStats!.stalled.length} stalled, ${queueStats!.retried.length} failed attempts`],
    ['layer', `${layer} ${shapeN(layerShape)}${a.layer ? '' : side.layer ? ', from the sidecar' : ', the default'}`],
    ['methods', a.methods.join(', ')],
    ...(memory ? [['GPU memory', `${human(memory.model, 'B')} held by the model (weights ${human(memory.weights, 'B')}, plans ${human(memory.plans, 'B')})`]] : []),
    ['inputs', `${items.length} image${items.length > 1 ? 's' : ''}, ${rows} row${rows > 1 ? 's' : ''} (image x target), ${runs} run${runs > 1 ? 's' : ''} of at most ${a.batch}`],
  ]));
  out();
  out(table([['image', 'class', 'label', 'prob', 'logit'], ...printed]));
  out();
  out(table([
    ['overlays', `${join(a.outDir, `<image>${named ? '.c<class>' : ''}.<method>.png`)} (${overlays} files, colormap ${a.colormap}, alpha ${a.alpha})`],
    ['grid', `${gridPath} (${rows} row${rows > 1 ? 's' : ''} x ${a.methods.length + 1} columns)`],
    ['summary', summaryPath],
    ...(reportPath ? [['report', reportPath]] : []),
    ...[...raws.values()].map((w, i) => [i ? '' : 'raw', `${w.path} (${w.shape})`]),
    ['time', `${secs(performance.now() - t0)} in all; ` + Object.entries(timings).filter(([key]) => key !== 'total' && key !== 'compile').map(([key, ms]) => `${key} ${secs(ms)}`).join(', ')],
    ...(compiled ? [['compile', `compiled ${compiled.count} pipelines in ${secs(compiled.ms)} (not in the times above)`]] : []),
  ]));
  if (profile) printProfile(g, profile, `gradient pass (forward, backward to ${layer}, CAM epilogue) over ${runs} call${runs > 1 ? 's' : ''}`);
}

/** The batches of an explain run on the queue's workers: batch(k) resolves with batch k's results (they may come in any order). */
function explainQueue(t: QueueTarget, modelPath: string, settings: ExplainSettings, items: Item[], batch: number, inShape: number[], side: Sidecar,
  log: (s: string) => void, attempts: number, limits: ImageLimits) {
  const mHash = modelHash(readFile(modelPath, 'model'), side.path), n = Math.ceil(items.length / batch), cache = {};
  const waits = Array.from({ length: n }, () => {
    let ok!: (r: { images: ImageResult[]; timings: Record<string, number> }) => void, fail!: (e: unknown) => void;
    const promise = new Promise<{ images: ImageResult[]; timings: Record<string, number> }>((a, b) => { ok = a; fail = b; });
    promise.catch(() => undefined); // a batch the loop never reaches must not count as unhandled
    return { promise, ok, fail };
  });
  const what = waits.map((_, k) => `images ${k * batch}..${Math.min((k + 1) * batch, items.length) - 1}`);
  const done = runQueue<ExplainReply>(t, { modelName: basename(modelPath), modelHash: mHash, settingsHash: settingsHash(mHash, settings) }, what,
    (k) => { const chunk = items.slice(k * batch, (k + 1) * batch); return explainJob(settings, loadBatch(chunk, inShape, side, cache, limits).x, chunk.length); },
    { attempts, log, signal: STOP.signal, onReply: (k, r) => waits[k].ok({ images: r.images.map(fromWire), timings: r.timings }) });
  done.catch((e) => waits.forEach((w) => w.fail(e)));
  return { batch: (k: number) => waits[k].promise, done };
}

/** What shards of one explain run share: the model, the options that decide the numbers and pictures, the whole image list. */
function explainShardRun(a: ExplainArgs, settings: ExplainSettings, all: Item[], side: Sidecar): ExplainShardRun {
  const mHash = modelHash(readFile(a.model, 'model'), side.path);
  const inputs = all.map((it) => [it.file, it.index, it.name]);
  return { model_sha256: mHash, settings_hash: settingsHash(mHash, { ...settings, colormap: a.colormap, alpha: a.alpha, batch: a.batch, inputs }), images: all.length };
}

const gridLabel = (name: string, label: string, target: number, prob: number) => `${name}: ${label === String(target) ? `class ${label}` : `${label} (${target})`} p=${fmtProb(prob)}`;
const fmtProb = (p: number) => (p >= 1e-3 || p === 0 ? p.toFixed(4) : p.toExponential(1));

function targetSummary(r: ImageResult, label: string, overlays: Record<string, string>) {
  return { class: r.target, label, prob: r.probs[r.target], logit: r.logits[r.target], overlays, ...(r.deepliftDelta ? { deeplift: r.deepliftDelta } : {}) };
}

/** The sidecar of a model (or the defaults), its errors as one line. */
function sidecar(model: string, inShape: number[], classes: number): Sidecar {
  try { return readSidecar(model, inShape, classes); } catch (e) { if (e instanceof ImageError) throw new CliError(e.message); throw e; }
}

function makeDir(dir: string, what?: string) {
  try { mkdirChecked(dir, what); } catch (e) { if (e instanceof FileError) throw new CliError(e.message); throw e; }
}

/** Runs a file-writing step; a failure becomes one line naming the file. */
function guard<T>(path: string, f: () => T): T {
  try { return f(); } catch (e) { if (e instanceof CliError) throw e; throw new CliError(`cannot write '${path}': ${errno(e)}`); }
}

/** A float32 .npy written in pieces: the header (the shape is known up front), then values as they come. */
class NpyWriter {
  private fd: number; private left: number;
  constructor(readonly path: string, readonly shape: number[]) {
    this.fd = guard(path, () => openSync(path, 'w'));
    writeSync(this.fd, npyBytes(new Float32Array(0), shape));
    this.left = numel(shape);
  }
  append(a: Float32Array) {
    if (a.length > this.left) throw new Error(`${this.path}: more values than its shape (${this.shape})`);
    writeSync(this.fd, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    this.left -= a.length;
  }
  close() {
    closeSync(this.fd);
    if (this.left) throw new Error(`${this.path}: ${this.left} values short of its shape (${this.shape})`);
  }
}

/** A one-line progress bar on stderr, only when stderr is a terminal; redrawn at most 10 times a second. */
class Progress {
  private on = process.stderr.isTTY === true; private last = 0;
  constructor(readonly total: number, readonly unit = 'images') {}
  show(done: number, what = '') {
    if (!this.on || (performance.now() - this.last < 100 && done < this.total)) return;
    this.last = performance.now();
    const w = 30, f = Math.round((w * done) / this.total);
    process.stderr.write(`\r[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${this.total} ${this.unit}${what ? `  ${what}` : ''}\x1b[K`);
  }
  end() { if (this.on) process.stderr.write('\r\x1b[K'); }
}

// ================================================================================================= eval

/** --seed, --ig-*, --noise-*, --occlusion-*: the sampling and path methods' options (undefined when none is given). */
function samplingArgs(v: Values): ExplainSettings['sampling'] {
  const int = (f: string) => (v[f] === undefined ? undefined : posInt(`--${f}`, v[f] as string));
  const rules = ['gausslegendre', 'riemann_trapezoid', 'riemann_left', 'riemann_right', 'riemann_middle'] as const;
  const rule = v['ig-rule'] as (typeof rules)[number] | undefined;
  if (rule !== undefined && !rules.includes(rule)) throw new UsageError(`--ig-rule must be one of ${rules.join(', ')}, got '${rule}'`);
  const sigma = v['noise-sigma'] === undefined ? undefined : Number(v['noise-sigma']);
  if (sigma !== undefined && !(sigma >= 0 && Number.isFinite(sigma))) throw new UsageError(`--noise-sigma must be a number >= 0, got '${v['noise-sigma']}'`);
  const seed = v.seed === undefined ? undefined : Number(v.seed);
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) throw new UsageError(`--seed must be an integer in 0..2^32-1, got '${v.seed}'`);
  const s: NonNullable<ExplainSettings['sampling']> = {};
  if (seed !== undefined) s.seed = seed;
  if (int('ig-steps') !== undefined || rule) s.ig = { steps: int('ig-steps'), rule };
  if (int('noise-n') !== undefined || sigma !== undefined) s.noise = { n: int('noise-n'), sigma };
  if (int('occlusion-window') !== undefined || int('occlusion-stride') !== undefined) s.occlusion = { window: int('occlusion-window'), stride: int('occlusion-stride') };
  return Object.keys(s).length ? s : undefined;
}

/** The help's method list, one line per kind, from the method table. */
function methodList(): string {
  const kinds = { gradient: 'gradient CAMs', perturbation: 'perturbation', pixel: 'pixel' } as const;
  return Object.entries(kinds).map(([k, what]) => `  ${what}: ${METHOD_NAMES.filter((m) => METHODS[m].kind === k).join(', ')}.`).join('\n');
}

/** --methods: a comma-separated list, fast or all; a bad name is a usage error listing the methods. */
function methodsArg(v: Values, cmd: string, dflt: string): Method[] {
  const m = (v.methods as string | undefined)?.trim() ?? dflt;
  let methods: Method[];
  try { methods = parseMethods(m === 'fast' || m === 'all' ? m : (m.split(',').map((x) => x.trim()).filter(Boolean) as Method[])); }
  catch (e) { if (e instanceof ModelError) throw new UsageError(`${cmd}: ${e.message} (or fast, all)`); throw e; }
  if (!methods.length) throw new UsageError(`--methods lists no method (methods: ${METHOD_NAMES.join(', ')}; or fast, all)`);
  return methods;
}

async function evalCommand(v: Values) {
  const int = (k: string) => { const x = v[k]; if (x === undefined) return undefined; const n = Number(x); if (!Number.isInteger(n) || n < (k === 'auc-limit' ? 0 : 1)) throw new UsageError(`--${k} must be a ${k === 'auc-limit' ? 'non-negative' : 'positive'} integer, got '${x}'`); return n; };
  const methods = methodsArg(v, 'eval', 'gradcam,gradcam++,xgradcam,liftcam,layercam,hirescam,eigencam');
  let target: QueueTarget | undefined, shard: { i: number; n: number } | undefined;
  try {
    if (v.queue !== undefined) target = parseQueueUrl(v.queue as string);
    if (v.shard !== undefined) shard = parseShard(v.shard as string);
  } catch (e) { throw new UsageError((e as Error).message); }
  if (target && shard) throw new UsageError('eval: --queue and --shard are two ways to split a run; give one');
  if ((target || shard) && v.accuracy) throw new UsageError('eval: --accuracy runs in one process (no --queue or --shard)');
  if (shard && !v.json) throw new UsageError('eval --shard i/n needs --json FILE (the shard file for camgpu merge)');
  if (shard && v.report) throw new UsageError('eval --shard: the shard file carries what the report needs; `camgpu merge SHARD.json... --report DIR` writes it');
  const path = v.model as string, dir = v.data as string, { graph: g } = loadGraph(path);
  const inShape = g.tensors.get(g.input)!.shape, side = sidecar(path, inShape, numel(g.tensors.get(logitsOf(g))!.shape));
  let scenes;
  try { scenes = readScenes(dir, classes(g)); } catch (e) { if (e instanceof EvalError || e instanceof FileError) throw new CliError(e.message); throw e; }
  const limits = limitsArg(v);
  if (v.json) writable(v.json as string); // before the (long) evaluation
  const limit = int('limit'), n = Math.min(limit ?? Infinity, scenes.length), progress = new Progress(n);
  const reportDir = v.report as string | undefined, gallery = int('gallery') ?? 12;
  if (reportDir) makeDir(reportDir, 'report folder');
  const o = { methods, limit, steps: int('steps'), aucLimit: int('auc-limit'), batch: int('batch'), riseN: int('rise-n') };
  const options = { methods: methods.join(','), limit: limit ?? null, steps: int('steps') ?? null, 'auc-limit': int('auc-limit') ?? null, batch: int('batch') ?? null, 'rise-n': int('rise-n') ?? null };
  scenes = scenes.slice(0, n);
  const mHash = modelHash(readFile(path, 'model'), side.path), head = `${basename(path)} on ${dir}`, json = v.json as string | undefined;
  // the settings hash covers what decides the numbers: options, the scene list, and the conv tiles (of this machine's adapter)
  const settingsOf = (picks: Record<string, string>) => { const st = evalSettings(o, n, { tiles: picks, data: scenesHash(scenes) }); return { st, batches: sceneBatches(st), sHash: settingsHash(mHash, st) }; };
  if (target) {
    const { picks } = await runTiles(g), { st, batches, sHash } = settingsOf(picks), t0 = performance.now();
    const records: SceneRecord[] = [], adapters = new Set<string>(), tuned = new Set<string>();
    let stats: QueueStats;
    try {
      stats = await runQueue<EvalReply>(target, { modelName: basename(path), modelHash: mHash, settingsHash: sHash }, batches.map((b) => `scenes ${span(b)}`),
        (k) => { const sc = scenes.slice(...batches[k]); return evalJob(st, batches[k][0], sc, sc.map((s) => readFile(join(dir, s.file), 'scene')), reportDir ? { gallery } : undefined); },
        { attempts: int('attempts') ?? 3, signal: STOP.signal, log: (s) => { progress.end(); process.stderr.write(`camgpu: ${s}\n`); },
          onReply: (_, b) => { records.push(...b.records.map(recordFromWire)); adapters.add(b.adapter); tuned.add(b.tuned); progress.show(records.length); } });
    } catch (e) { if (e instanceof CliError || e instanceof CancelledError) throw e; throw new CliError(`eval --queue ${target.url}: ${(e as Error).message}`); }
    finally { progress.end(); }
    const r = aggregate(records, st, (performance.now() - t0) / 1000), who = `${Object.keys(stats.workers).length} workers (${Object.entries(stats.workers).map(([w, k]) => `${w}: ${k}`).join(', ')})`;
    out(`${head}: ${batches.length} batches through ${target.url}, ${who}, ${stats.stalled.length} stalled, ${stats.retried.length} failed attempts, ${(n / stats.seconds).toFixed(2)} scenes/s`);
    for (const x of stats.rerun) out(`batch ${x.batch} (scenes ${span(batches[x.batch])}) was run again by ${x.by} (attempt ${x.attempts}) after ${stalledNote(stats, x.batch)}`);
    finishEval(head, path, dir, r, json, reportDir && { dir: reportDir, input: inShape, adapter: [...adapters].join('; '), tuned: [...tuned].join('; '), labels: side.labels, options,
      run: `${batches.length} batches through ${target.url} on ${who}` });
    return;
  }
  const { gpu, model, tuned, picks } = await loadTuned(g, path);
  if (v.accuracy) {
    const a = await accuracy(model, side, dir, { limit, batch: int('batch'), limits });
    out(`${basename(path)} on ${dir}: top-1 accuracy ${(100 * a.single).toFixed(2)}% on ${a.nSingle} single-instance scenes, ${(100 * a.multi).toFixed(2)}% on ${a.nMulti} multi-instance scenes`);
    return;
  }
  const { st, batches, sHash } = settingsOf(picks), mine = shard ? shardBatches(batches, shard.i, shard.n) : batches, t1 = performance.now();
  // a shard always keeps the report's detail (per-scene results, curves, the gallery's maps): merge --report needs it
  const records = await evalBatches(model, side, dir, scenes, st, mine, (d) => progress.show(d), { signal: STOP.signal, limits, ...(reportDir || shard ? { detail: { gallery } } : {}) });
  progress.end();
  const info: ShardReport = { input: [...model.inputShape], adapter: gpu.adapterInfo || '(unknown)', tuned, labels: side.labels, options };
  if (shard) {
    const file: EvalShard = { kind: 'camgpu-eval-shard', version: 1, shard: [shard.i, shard.n], model: path, data: dir, modelHash: mHash, settingsHash: sHash, settings: st,
      batches: mine, seconds: (performance.now() - t1) / 1000, report: info, records: records.map(recordToWire) as SceneRecord[] };
    guard(json!, () => writeFileSync(json!, toJson(file) + '\n'));
    out(`${head}: shard ${shard.i}/${shard.n}: ${mine.length} of ${batches.length} batches, ${records.length} of ${n} scenes, ${file.seconds.toFixed(1)} s; shard file ${json} (camgpu merge adds the shards up)`);
    return;
  }
  const r = aggregate(records, st, (performance.now() - t1) / 1000);
  finishEval(head, path, dir, r, json, reportDir && { dir: reportDir, ...info, run: 'one process' });
}

/** Prints the table, writes --json and the report: the same for a single run, a queue run and a merge of shards. */
function finishEval(head: string, model: string, data: string, r: EvalResult, json?: string, report?: ShardReport & { dir: string; run: string } | '') {
  printEval(head, r);
  if (json) guard(json, () => writeFileSync(json, JSON.stringify(evalJson(model, data, r), null, 1)));
  if (!report) return;
  if (!r.detail) throw new CliError(`${report.dir}: the run's records carry no report detail`);
  r.detail.input = report.input;
  const file = guard(join(report.dir, 'report.html'), () => writeEvalReport(report.dir, { model, data, adapter: report.adapter, tuned: report.tuned, labels: report.labels, run: report.run,
    versions: { camgpu: version(), node: process.versions.node, webgpu: pkgVersion('webgpu') }, options: report.options }, r));
  out(`report: ${file} (and ${join(report.dir, 'eval.json')})`);
}

const stalledNote = (s: QueueStats, k: number) => {
  const st = s.stalled.find((x) => x.batch === k);
  return st ? `its worker stalled (died or hung; back in the queue ${st.at.toFixed(1)} s into the run)` : 'a failed attempt';
};

function printEval(head: string, r: EvalResult) {
  out(`${head}: ${r.scenes} scenes (${r.multi} multi-instance), accuracy ${(100 * r.accuracy).toFixed(1)}%, deletion/insertion: ${r.steps} steps over ${r.aucScenes} scenes; ${r.seconds.toFixed(0)} s`);
  out(markdown(r));
}

async function mergeCommand(files: string[], v: Values) {
  const texts = files.map((f) => new TextDecoder().decode(readFile(f, 'shard file'))), isEval = texts.map((t) => /^\{"kind":"camgpu-eval-shard"/.test(t));
  if (isEval.some((e) => e !== isEval[0])) throw new CliError(`${files[isEval.indexOf(true)]} is an eval shard file, ${files[isEval.indexOf(false)]} is not: merge one run at a time`);
  if (!isEval[0]) return mergeExplain(files, texts, v);
  if (v.out !== undefined || v.raw !== undefined) throw new UsageError('merge: --out and --raw are for explain shards; eval shards merge into --json FILE and --report DIR');
  const json = v.json as string | undefined, reportDir = v.report as string | undefined;
  if (json) writable(json);
  let m;
  try { m = mergeEval(files, texts); } catch (e) { throw new CliError((e as Error).message); }
  const info = m.shards.map((s, k) => s.report ?? (reportDir ? (() => { throw new CliError(`${files[k]}: no report detail in this shard file (an older camgpu wrote it); run the shard again for --report`); })() : null));
  if (reportDir) makeDir(reportDir, 'report folder');
  const distinct = (f: (r: ShardReport) => string) => [...new Set(info.map((r) => f(r!)))].join('; ');
  finishEval(`${basename(m.first.model)} on ${m.first.data} (${m.shards.length} shards merged)`, m.first.model, m.first.data, m.result, json,
    reportDir && { dir: reportDir, ...info[0]!, adapter: distinct((r) => r.adapter), tuned: distinct((r) => r.tuned), run: `${m.shards.length} shards merged (camgpu merge)` });
}

/**
 * Explain shards (`explain --shard i/n --out DIR-i`, their summary.json) into what the single run writes: --out gets the
 * overlays (copied), grid.png (rebuilt from the images, as the model saw them, and the overlays) and summary.json (images in
 * run order, timings added up); --raw DIR the shards' .npy concatenated in row order; --report DIR the report page.
 */
async function mergeExplain(files: string[], texts: string[], v: Values) {
  if (v.json) throw new UsageError('merge: --json is for eval shard files; explain shards merge into --out DIR (summary.json, grid.png, overlays)');
  let shards: ExplainSummary[];
  try { shards = explainShards(files, texts); } catch (e) { throw new CliError((e as Error).message); }
  const first = shards[0] as Record<string, any>, outDir = (v.out as string | undefined) ?? 'out', rawDir = v.raw as string | undefined, reportDir = v.report as string | undefined;
  const noRaw = shards.findIndex((s) => !s.outputs.raw);
  if (rawDir && noRaw >= 0) throw new CliError(`${files[noRaw]}: that shard ran without --raw, so there are no raw maps to merge into ${rawDir}`);
  makeDir(outDir);
  if (rawDir) makeDir(rawDir, 'raw output folder');
  if (reportDir) makeDir(reportDir);
  const pre = first.preprocessing, inShape: number[] = first.model.input, methods: string[] = first.methods, [, H, W] = inShape;
  const side: Sidecar = { path: first.model.sidecar, mean: pre.mean, std: pre.std, resize: pre.resize, labels: [] };
  const images = shards.flatMap((s) => s.images) as Record<string, any>[], rows = images.reduce((n, im) => n + im.targets.length, 0);
  const gridPath = join(outDir, 'grid.png'), grid = guard(gridPath, () => new GridWriter(gridPath, rows, ['image', ...methods], H, W));
  const cache = {}, reportRows: ExplainRow[] = [];
  for (const im of images) {
    const item: Item = { file: im.file, kind: im.index === undefined ? 'png' : 'npy', index: im.index ?? 0, name: im.name };
    const [view] = loadBatch([item], inShape, side, cache, {}).views; // the image as the model saw it (not a file of the shards)
    for (const t of im.targets) {
      const pics = methods.map((m) => {
        const from = t.overlays[m], bytes = readFile(from, 'overlay'), to = join(outDir, basename(from));
        guard(to, () => writeFileSync(to, bytes));
        t.overlays[m] = to;
        return decodeImage(bytes, from);
      });
      await grid.addRow(gridLabel(im.name, t.label, t.class, t.prob), [view, ...pics]);
      if (reportDir) reportRows.push({ name: im.name, target: t.class, label: t.label, prob: t.prob, view, overlays: Object.fromEntries(methods.map((m, j) => [m, pics[j]])) });
    }
  }
  await grid.close();
  const raw: Record<string, number[]> = {};
  for (const name of rawDir ? Object.keys(first.outputs.raw).map((p) => basename(p)) : []) {
    const parts = shards.map((s, k) => { const p = Object.keys(s.outputs.raw!).find((q) => basename(q) === name); if (!p) throw new CliError(`${files[k]}: no raw ${name}`); return readNpy(p); });
    const shape = [parts.reduce((n, x) => n + x.shape[0], 0), ...parts[0].shape.slice(1)], w = new NpyWriter(join(rawDir!, name), shape);
    for (const x of parts) w.append(x.data);
    w.close();
    raw[w.path] = shape;
  }
  const timings: Record<string, number> = {};
  for (const s of shards) for (const [k, ms] of Object.entries(s.timings_ms)) timings[k] = Math.round(((timings[k] ?? 0) + ms) * 100) / 100;
  const summary: Record<string, any> = { ...first, adapter: [...new Set(shards.map((s) => s.adapter))].join('; ') || null, timings_ms: timings,
    outputs: { dir: outDir, grid: gridPath, raw: rawDir ? raw : null }, images };
  delete summary.shard; delete summary.shard_run; delete summary.profile_ms;
  const summaryPath = join(outDir, 'summary.json');
  guard(summaryPath, () => writeFileSync(summaryPath, pretty(summary) + '\n'));
  const reportPath = reportDir ? guard(join(reportDir, 'report.html'), () => writeExplainReport(reportDir, summary, reportRows)) : null;
  out(table([
    ['merged', `${shards.length} explain shards: ${images.length} images, ${rows} rows (image x target), ${methods.length} methods`],
    ['outputs', `${summaryPath}, ${gridPath}, ${rows * methods.length} overlays in ${outDir}${rawDir ? `, ${Object.keys(raw).length} raw .npy in ${rawDir}` : ''}${reportPath ? `, ${reportPath}` : ''}`],
  ]));
}

async function workerCommand(v: Values) {
  let target: QueueTarget;
  try { target = parseQueueUrl(v.queue as string); } catch (e) { throw new UsageError((e as Error).message); }
  const ms = (k: string, d: number) => (v[k] === undefined ? d : posInt(`--${k}`, v[k] as string));
  const path = v.model as string, { graph: g } = loadGraph(path), bytes = readFile(path, 'model');
  const inShape = g.tensors.get(g.input)!.shape, side = sidecar(path, inShape, numel(g.tensors.get(logitsOf(g))!.shape));
  try { await ping(target); } catch (e) { throw new CliError((e as Error).message); }
  const { gpu, model, picks, tuned } = await loadTuned(g, path), hash = modelHash(bytes, side.path);
  const w = await startWorker(target, { model, side, modelName: basename(path), modelHash: hash, tiles: picks, adapter: gpu.adapterInfo || '(unknown)', tuned },
    { lockMs: ms('lock-ms', 30000), stalledMs: ms('stalled-ms', 30000), maxStalled: ms('max-stalled', 2), log: (s) => out(s) });
  out(`worker on ${target.url}: ${basename(path)} (sha256 ${hash.slice(0, 12)}) on ${gpu.adapterInfo || 'unknown adapter'}; waiting for batches`);
  const stop = new Promise<string | null>((resolve) => { process.once('SIGTERM', () => resolve(null)); process.once('SIGINT', () => resolve(null)); });
  const why = await Promise.race([stop, w.refused]);
  await w.close();
  model.destroy();
  if (why) throw new CliError(why);
}

// =============================================================================================== layers

async function layers(path: string, inputShape?: string) {
  const { graph: g } = loadGraph(path, inputShape);
  const shape = g.tensors.get(g.input)!.shape, classes = numel(g.tensors.get(logitsOf(g))!.shape), prod = producers(g);
  const cands = candidates(g);
  if (!cands.length) throw new CliError(`${path}: no 4-D activation with spatial size > 1 on the path to the output; CAM methods need one`);
  const modelDefault = defaultLayer(g), side = shape.length === 3 ? sidecar(path, shape, classes) : null;
  let chosen = modelDefault, why = 'the last 4-D activation before the head';
  if (side?.layer) {
    try { chosen = resolveLayer(g, side.layer); } catch (e) { if (e instanceof ModelError) throw new CliError(`${side.path}: ${e.message}`); throw e; }
    why = `"layer" in ${side.path}`;
  }
  const ts = (t: string) => g.tensors.get(t)!.shape;
  out(table([
    ['model', `${path}: (${shape}) -> ${classes} classes`],
    ['default', `${chosen} ${shapeN(ts(chosen))} (${why})`],
    ['layers', `${cands.length} candidates (4-D activations on the path to the output), in graph order`],
  ]));
  out();
  out(table([['tensor', 'node', 'op', 'shape', 'default'],
    ...cands.map((t) => [t, prod.get(t)!.name, prod.get(t)!.source, shapeN(ts(t)), t === chosen ? 'default' : t === modelDefault ? 'model default' : ''])]));
}

/** JSON with two-space indents, arrays of numbers and strings on one line. */
function pretty(v: unknown, indent = ''): string {
  const inner = indent + '  ';
  if (Array.isArray(v)) {
    if (v.every((x) => x === null || typeof x !== 'object')) return `[${v.map((x) => JSON.stringify(x) ?? 'null').join(', ')}]`;
    return `[\n${v.map((x) => inner + pretty(x, inner)).join(',\n')}\n${indent}]`;
  }
  if (v && typeof v === 'object') {
    const e = Object.entries(v).filter(([, x]) => x !== undefined);
    return e.length ? `{\n${e.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${pretty(x, inner)}`).join(',\n')}\n${indent}}` : '{}';
  }
  return JSON.stringify(v) ?? 'null';
}

/** The version of an installed package, or 'unknown'. */
function pkgVersion(name: string): string {
  try { return JSON.parse(readFileSync(createRequire(import.meta.url).resolve(`${name}/package.json`), 'utf8')).version; } catch { return 'unknown'; }
}

// ============================================================================================== helpers

/** Reads a regular file (never blocks on a FIFO or device); a missing or unreadable one is a one-line error naming it. */
function readFile(path: string, what: string): Uint8Array {
  try { return readRegular(path, what); } catch (e) { if (e instanceof FileError) throw new CliError(e.message); throw e; }
}

/** NaN or infinite values in a model input are refused (they give a confident class out of nothing). */
function finiteInput(file: string, data: Float32Array, shape: number[]) {
  const { count, first } = nonFinite(data);
  if (!count) return;
  const per = numel(shape.slice(1)) || 1, v = data[first];
  throw new CliError(`${file}: ${count} of ${data.length} values are NaN or infinite (the first, ${v}, in image ${Math.floor(first / per)} at element ${first % per}); --allow-nonfinite accepts them`);
}

/** --max-megapixels MP: a positive number. */
function limitsArg(v: Values): ImageLimits {
  const s = v['max-megapixels'];
  if (s === undefined) return {};
  const n = Number(s);
  if (!/^\s*\d*\.?\d+(e[+-]?\d+)?\s*$/i.test(s as string) || !(n > 0) || !Number.isFinite(n)) throw new UsageError(`--max-megapixels must be a positive number, got '${s}'`);
  return { maxMegapixels: n };
}

/** Parses and imports an ONNX file (no GPU); errors carry the path. */
/** Imports a model; symbolic input dimensions come from --input-shape, else from the sidecar's "input" [C,H,W]. */
function loadGraph(path: string, inputShape?: string): { onnx: OnnxModel; graph: Graph; bytes: number } {
  const bytes = readFile(path, 'model');
  let shape: number[] | undefined;
  if (inputShape !== undefined) {
    shape = inputShape.split('x').map(Number);
    if (shape.length < 2 || shape.some((d) => !Number.isInteger(d) || d < 1)) throw new CliError(`--input-shape '${inputShape}': expected positive integers joined by x, e.g. 1x3x224x224`);
  }
  try {
    const onnx = parseOnnx(bytes);
    try { return { onnx, graph: importModel(onnx, { inputShape: shape }), bytes: bytes.length }; }
    catch (e) {
      const side = shape ? undefined : sidecarInput(path);
      if (!side || !(e instanceof ModelError) || !/symbolic dimension/.test(e.message)) throw e;
      return { onnx, graph: importModel(onnx, { inputShape: [1, ...side] }), bytes: bytes.length };
    }
  } catch (e) {
    if (e instanceof OnnxError || e instanceof ModelError) throw new CliError(`${path}: ${e.message}`);
    throw e;
  }
}

/** The sidecar's "input" [C,H,W] when MODEL.json exists and has one (checked fully later by readSidecar). */
function sidecarInput(model: string): number[] | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(readRegular(sidecarPath(model), 'sidecar', 2 ** 24))).input;
    return Array.isArray(v) && v.every((d) => Number.isInteger(d) && d > 0) ? v : undefined;
  } catch { return undefined; }
}

function readNpy(path: string) {
  const bytes = readFile(path, 'input');
  try { return parseNpy(bytes, path); } catch (e) { if (e instanceof NpyError) throw new CliError(e.message); throw e; }
}

/** Fails before the (long) run when the output file could not be written. */
function writable(path: string) {
  try { writableFile(path); } catch (e) { if (e instanceof FileError) throw new CliError(e.message); throw e; }
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
/**
 * Where GPU time went, from run({ profile: true }): totals per phase and op (fused dispatches are named by their
 * nodes joined with '+'), then the slowest dispatches. Timestamps may be quantised by the browser / Dawn.
 */
function printProfile(g: Graph, p: ProfileEntry[], what: string) {
  const kinds = new Map(g.nodes.map((n) => [n.name, n.op.kind as string]));
  const kindOf = (label: string): string => label.startsWith('ref:') ? `ref:${kindOf(label.slice(4))}` : label.replace(/\.backward\d+/, '').replace(/\[\d+\]$/, '').split('+').map((n) => kinds.get(n) ?? label.split(/[.[]/)[0]).join('+');
  const total = p.reduce((s, e) => s + e.ms, 0), by = new Map<string, { ms: number; n: number }>();
  for (const e of p) { const k = `${e.phase} ${kindOf(e.label)}`, v = by.get(k) ?? { ms: 0, n: 0 }; v.ms += e.ms; v.n++; by.set(k, v); }
  const pct = (ms: number) => `${(100 * ms / total).toFixed(1)}%`;
  out();
  out(`profile: ${what}; ${p.length} dispatches, ${secs(total)} of GPU time (timestamp queries, one compute pass per dispatch)`);
  out(table([['phase', 'op', 'dispatches', 'GPU time', 'share'], ...[...by].sort((a, b) => b[1].ms - a[1].ms)
    .map(([k, v]) => [...k.split(' '), String(v.n), secs(v.ms), pct(v.ms)])]));
  out();
  out(table([['slowest dispatches', 'phase', 'GPU time', 'share'], ...[...p].sort((a, b) => b.ms - a.ms).slice(0, 10).map((e) => [e.label, e.phase, secs(e.ms), pct(e.ms)])]));
}

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
  if (r.positionals.length > c.positionals.length && !c.variadic) throw new UsageError(`${name}: unexpected argument '${r.positionals[c.positionals.length]}' (usage: camgpu ${name} ${c.usage})`);
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

/**
 * Ctrl-C: the first SIGINT aborts the running explanation or evaluation between GPU batches (what it holds is
 * freed, the GPU released) and the command exits with 130; a second one exits at once.
 */
const STOP = new AbortController();
process.once('SIGINT', () => {
  STOP.abort();
  process.stderr.write('\ncamgpu: stopping after the current GPU batch (Ctrl-C again to quit at once)\n');
  process.once('SIGINT', () => process.exit(130));
});

/** One line for stderr, and the exit status. */
function report(e: unknown): number {
  const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();
  if (e instanceof CancelledError) { process.stderr.write(`camgpu: cancelled: ${oneLine(e.message)}\n`); return 130; }
  if (e instanceof UsageError) { process.stderr.write(`camgpu: ${oneLine(e.message)}\n`); return 2; }
  if (e instanceof CliError || e instanceof ModelError || e instanceof UnsupportedError || e instanceof OnnxError || e instanceof GpuError || e instanceof ImageError || e instanceof FileError || e instanceof NpyError || e instanceof EvalError) {
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
