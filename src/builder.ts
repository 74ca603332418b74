// Programmatic construction of camgpu graphs (src/graph.ts) with seeded random weights, and the three
// reference architectures in torchvision's layout: VGG16, ResNet-50 and MobileNetV2 (BatchNorm folded
// into the convs, so a conv carries a bias). Used by tests and benchmarks; shapes are per sample.

import { ActFn, Graph, ReduceFn, LayoutOp, Node, Op, Shape, fmt, ModelError, numel } from './graph';
import { ACTS, actDefaults } from './ops/acts';
import { inferShape, validate } from './ops/index';

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);
const pads = (p: number | [number, number, number, number]): [number, number, number, number] =>
  typeof p === 'number' ? [p, p, p, p] : [p[0], p[1], p[2], p[3]];

export interface ConvOptions {
  stride?: Pair; dil?: Pair; group?: number; bias?: boolean; name?: string;
  pad?: number | [number, number, number, number]; // [top, left, bottom, right]
  /** Init gain: w ~ U(-a, a), a = gain * sqrt(3 / fanIn), so Var(w) = gain^2 / fanIn. Default sqrt(2) (He, for a following ReLU). */
  gain?: number;
}

const LAYOUT_SOURCE: Record<LayoutOp['kind'], string> = { transpose: 'Transpose', slice: 'Slice', pad: 'Pad', tile: 'Tile', gather: 'Gather' };

/**
 * Builds a Graph node by node. Every method returns the name of the tensor it produced (a node's output
 * tensor has the node's name). Name a node with `b.as('layer3.2.relu').relu(x)` or conv's `name`;
 * otherwise it gets the op name. A repeated name gets a suffix `_1`, `_2`, ... (as torchvision's ONNX
 * export does for a reused ReLU module), so names are unique.
 */
export class GraphBuilder {
  readonly input = 'input';
  private readonly g: Graph;
  private readonly rand: () => number;
  private readonly named: string | undefined; // set only on the views that as() returns

  constructor(inputShape: Shape, seed = 1) {
    this.g = { input: this.input, output: '', tensors: new Map(), nodes: [] };
    this.g.tensors.set(this.input, { name: this.input, shape: inputShape.slice() });
    this.rand = mulberry32(seed);
  }

  /**
   * A view of this builder whose nodes are named `name`: `b.as('fc').linear(x, 10)`. The view shares the
   * graph and the PRNG; nested calls on `b` itself (`b.as('a').add(x, b.relu(y))`) keep their own names.
   */
  as(name: string): this {
    return Object.create(this, { named: { value: name } }) as this;
  }

  shape(t: string): Shape {
    const s = this.g.tensors.get(t);
    if (!s) throw new ModelError(`builder: no tensor '${t}'`);
    return s.shape;
  }

  /** Conv with He-uniform weights: w (cout, cin/group, kh, kw), bias U(-0.05, 0.05) (zeros with bias: false). */
  conv(x: string, cout: number, k: Pair, o: ConvOptions = {}): string {
    const [kh, kw] = pair(k), group = o.group ?? 1, cin = this.shape(x)[0];
    if (cin % group) throw new ModelError(`node '${o.name ?? this.named ?? 'conv'}': ${cin} input channels not divisible by group ${group}`);
    const fanIn = (cin / group) * kh * kw;
    const w = this.uniform(cout * fanIn, (o.gain ?? Math.SQRT2) * Math.sqrt(3 / fanIn));
    const b = o.bias === false ? new Float32Array(cout) : this.uniform(cout, 0.05);
    const op: Op = { kind: 'conv', w, b, cout, kh, kw, stride: pair(o.stride ?? 1), pad: pads(o.pad ?? 0), dil: pair(o.dil ?? 1), group };
    return this.push('conv', 'Conv', op, [x], o.name);
  }

  /** Element-wise f (src/ops/acts.ts; defaults: PyTorch's, clip is ReLU6). `per`: alpha per element block (PRelu). */
  act(x: string, fn: ActFn, alpha?: number, beta?: number, per?: { alphas: Float32Array; inner: number }): string {
    const [a, b] = actDefaults(fn);
    return this.push(fn, per && fn === 'leakyrelu' ? 'PRelu' : ACTS[fn].onnx, { kind: 'act', fn, alpha: alpha ?? a, beta: beta ?? b, ...per }, [x]);
  }
  relu(x: string): string { return this.act(x, 'relu'); }

  maxpool(x: string, k: number, stride = k, pad = 0, ceil = false): string {
    return this.push('maxpool', 'MaxPool', this.pool('maxpool', k, stride, pad, ceil, false), [x]);
  }
  avgpool(x: string, k: number, stride = k, pad = 0, o: { ceil?: boolean; countIncludePad?: boolean } = {}): string {
    return this.push('avgpool', 'AveragePool', this.pool('avgpool', k, stride, pad, o.ceil ?? false, o.countIncludePad ?? false), [x]);
  }
  gap(x: string): string { return this.push('gap', 'GlobalAveragePool', { kind: 'gap' }, [x]); }

  /** y = x * scale[c] + shift[c], scale ~ U(0.8, 1.2), shift ~ U(-0.1, 0.1): an unfolded BatchNorm. */
  affine(x: string): string {
    const { scale, bias: shift } = this.scaleBias(this.shape(x)[0]);
    return this.push('affine', 'BatchNormalization', { kind: 'affine', scale, shift }, [x]);
  }

  /** Alias to [numel]: (C,H,W) -> (C*H*W), row-major, like torch.flatten(x, 1). */
  flatten(x: string): string { return this.push('flatten', 'Flatten', { kind: 'alias' }, [x], undefined, [numel(this.shape(x))]); }

  /** y = x w^T + b, w (out, in) He-uniform, b U(-0.05, 0.05). */
  linear(x: string, out: number): string { return this.fc(x, numel(this.shape(x)), out, 'linear', 'Gemm'); }

  /** y = x w^T + b over the last axis of x (any rank), w (out, in), initialised as linear's. */
  dense(x: string, out: number): string { const s = this.shape(x); return this.fc(x, s[s.length - 1], out, 'dense', 'MatMul'); }
  /** y = a b per sample, leading axes broadcast (src/ops/matmul.ts); either may be a constant. */
  matmul(a: string, b: string): string { return this.push('matmul', 'MatMul', { kind: 'matmul' }, [a, b]); }

  add(a: string, b: string): string { return this.push('add', 'Add', { kind: 'add' }, [a, b]); }
  mul(a: string, b: string): string { return this.push('mul', 'Mul', { kind: 'mul' }, [a, b]); }
  /** y = g(a, b) for the other binary ops, with broadcasting. */
  binary(kind: 'sub' | 'div' | 'max' | 'min', a: string, b: string): string {
    return this.push(kind, { sub: 'Sub', div: 'Div', max: 'Max', min: 'Min' }[kind], { kind }, [a, b]);
  }

  /** A constant operand (per-sample shape, broadcast over the batch). */
  constant(data: Float32Array, shape: Shape): string {
    const name = this.unique(this.named ?? 'const');
    if (data.length !== numel(shape)) throw new ModelError(`builder: constant '${name}' has ${data.length} values for shape ${fmt(shape)}`);
    this.g.tensors.set(name, { name, shape: shape.slice(), data });
    return name;
  }

  /** A layout op (src/ops/layout.ts): transpose, slice, pad, tile or gather, per-sample axes. */
  layout(x: string, op: LayoutOp): string { return this.push(op.kind, LAYOUT_SOURCE[op.kind], op, [x]); }
  /** Any single-input op record as given (Resize, ConvTranspose: tests build their parameters), source its ONNX op type. */
  op(x: string, op: Op, source: string): string { return this.push(op.kind, source, op, [x]); }
  /** Alias to a new per-sample shape of the same size (Reshape): same data, no dispatch. */
  reshape(x: string, shape: Shape): string {
    if (numel(shape) !== numel(this.shape(x))) throw new ModelError(`builder: reshape of ${fmt(this.shape(x))} to ${fmt(shape)} changes the size`);
    return this.push('reshape', 'Reshape', { kind: 'alias' }, [x], undefined, shape);
  }

  /** A reduction over per-sample axes (src/ops/reduce.ts): fn over `axes`, kept as size 1 when keep. */
  reduce(x: string, fn: ReduceFn, axes: number[], keep = true): string {
    const src = { sum: 'ReduceSum', mean: 'ReduceMean', max: 'ReduceMax', min: 'ReduceMin', l2: 'ReduceL2', l1: 'ReduceL1', sumsquare: 'ReduceSumSquare' }[fn];
    return this.push(`reduce_${fn}`, src, { kind: 'reduce', fn, axes: [...axes].sort((p, q) => p - q), keep }, [x]);
  }

  concat(xs: string[]): string { return this.push('concat', 'Concat', { kind: 'concat' }, xs); }
  /** Softmax (log-softmax) along per-sample axis `axis` (default the last), or over the axes [axis, end) as one (opset < 13). */
  softmax(x: string, axis = this.shape(x).length - 1, log = false, end = axis + 1): string {
    return this.push(log ? 'logsoftmax' : 'softmax', log ? 'LogSoftmax' : 'Softmax', { kind: 'softmax', axis, end, log }, [x]);
  }
  /** LayerNormalization over the per-sample axes [axis, rank) (default the last), scale ~ U(0.8, 1.2), bias ~ U(-0.1, 0.1) per element. */
  layernorm(x: string, axis = this.shape(x).length - 1, eps = 1e-5): string {
    const M = numel(this.shape(x).slice(axis)), { scale, bias } = this.scaleBias(M);
    return this.push('layernorm', 'LayerNormalization', { kind: 'norm', axis, eps, scale, bias, stride: 1 }, [x]);
  }
  /** InstanceNormalization of (C, ...): each channel over the axes after it, scale and bias per channel as layernorm's. */
  instancenorm(x: string, eps = 1e-5): string {
    const s = this.shape(x), { scale, bias } = this.scaleBias(s[0]);
    return this.push('instancenorm', 'InstanceNormalization', { kind: 'norm', axis: 1, eps, scale, bias, stride: numel(s.slice(1)) }, [x]);
  }

  /** Sets the output and validates the whole graph. */
  finish(output: string): Graph {
    this.g.output = output;
    validate(this.g);
    return this.g;
  }

  // Uniform(-a, a) filled straight into a Float32Array (VGG16's 138M weights take well under a second).
  private uniform(n: number, a: number): Float32Array {
    const out = new Float32Array(n), r = this.rand;
    for (let i = 0; i < n; i++) out[i] = (2 * r() - 1) * a;
    return out;
  }

  private fc(x: string, inF: number, out: number, base: string, source: string): string {
    const w = this.uniform(out * inF, Math.SQRT2 * Math.sqrt(3 / inF)), b = this.uniform(out, 0.05);
    return this.push(base, source, { kind: 'linear', w, b, out, in: inF }, [x]);
  }

  private scaleBias(n: number) {
    const scale = this.uniform(n, 0.2), bias = this.uniform(n, 0.1);
    for (let i = 0; i < n; i++) scale[i] += 1;
    return { scale, bias };
  }

  private pool(kind: 'maxpool' | 'avgpool', k: number, s: number, p: number, ceil: boolean, countIncludePad: boolean): Op {
    return { kind, kh: k, kw: k, stride: [s, s], pad: [p, p, p, p], dil: [1, 1], ceil, countIncludePad };
  }

  private unique(base: string): string {
    if (!this.g.tensors.has(base)) return base;
    for (let i = 1; ; i++) if (!this.g.tensors.has(`${base}_${i}`)) return `${base}_${i}`;
  }

  /** Appends a node whose output tensor has the node's name; inferShape checks shapes and names the node on error. */
  private push(base: string, source: string, op: Op, inputs: string[], name?: string, aliasShape?: Shape): string {
    const nodeName = this.unique(name ?? this.named ?? base);
    const node: Node = { name: nodeName, source, op, inputs, output: nodeName };
    const shape = inferShape(node, inputs.map((t) => this.shape(t)));
    this.g.tensors.set(nodeName, { name: nodeName, shape: aliasShape ?? shape });
    this.g.nodes.push(node);
    return nodeName;
  }
}

/** Number of learned parameters: conv, transposed conv and linear weights and biases, affine and norm scales and shifts, PRelu slopes, constants. */
export function paramCount(g: Graph): number {
  let n = 0;
  for (const node of g.nodes) {
    const op = node.op;
    if (op.kind === 'conv' || op.kind === 'linear' || op.kind === 'convtranspose') n += op.w.length + op.b.length;
    else if (op.kind === 'affine') n += op.scale.length + op.shift.length;
    else if (op.kind === 'act' && op.alphas) n += op.alphas.length;
    else if (op.kind === 'norm') n += op.scale.length + op.bias.length;
  }
  for (const t of g.tensors.values()) if (t.data) n += t.data.length;
  return n;
}

export interface ModelOptions { size?: number; classes?: number; seed?: number }

/**
 * torchvision vgg16 (no BatchNorm): 13 3x3 convs with ReLU in features.0..30, 5 max-pools, then
 * classifier.0/3/6 = FC 25088-4096-4096-classes (at 224; dropout is the identity at inference).
 * The 7x7 adaptive average pool is the identity at 224 and is left out, so at other sizes the first FC
 * has 512*(size/32)^2 inputs.
 */
export function vgg16({ size = 224, classes = 1000, seed = 1 }: ModelOptions = {}): Graph {
  const b = new GraphBuilder([3, size, size], seed);
  const cfg: (number | 'M')[] = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'];
  let x = b.input, i = 0;
  for (const c of cfg) {
    if (c === 'M') { x = b.as(`features.${i++}`).maxpool(x, 2, 2); continue; }
    x = b.conv(x, c, 3, { pad: 1, name: `features.${i++}` });
    x = b.as(`features.${i++}`).relu(x);
  }
  x = b.as('flatten').flatten(x);
  x = b.as('classifier.0').linear(x, 4096);
  x = b.as('classifier.1').relu(x);
  x = b.as('classifier.3').linear(x, 4096);
  x = b.as('classifier.4').relu(x);
  x = b.as('classifier.6').linear(x, classes);
  return b.finish(x);
}

// The last conv of a residual branch gets this init gain: the branch then adds ~0.1 of the trunk's second
// moment per block, so activations stay O(1) through ResNet-50's 16 blocks instead of doubling per block.
const RESIDUAL_GAIN = 0.3;

/** torchvision resnet50 (v1.5: stride on the 3x3), BatchNorm folded: conv1, layer1..4 with [3,4,6,3] bottlenecks, avgpool, fc. */
export function resnet50({ size = 224, classes = 1000, seed = 1 }: ModelOptions = {}): Graph {
  const b = new GraphBuilder([3, size, size], seed);
  let x = b.conv(b.input, 64, 7, { stride: 2, pad: 3, name: 'conv1' });
  x = b.as('relu').relu(x);
  x = b.as('maxpool').maxpool(x, 3, 2, 1);
  const stages: [number, number, number][] = [[64, 3, 1], [128, 4, 2], [256, 6, 2], [512, 3, 2]]; // width, blocks, stride
  stages.forEach(([width, blocks, stride], li) => {
    for (let i = 0; i < blocks; i++) {
      // Bottleneck: 1x1 (width) -> 3x3 (width, stride) -> 1x1 (4*width), plus the shortcut, then ReLU.
      const p = `layer${li + 1}.${i}`, s = i === 0 ? stride : 1;
      let y = b.conv(x, width, 1, { name: `${p}.conv1` });
      y = b.as(`${p}.relu`).relu(y);
      y = b.conv(y, width, 3, { stride: s, pad: 1, name: `${p}.conv2` });
      y = b.as(`${p}.relu`).relu(y);                                      // -> relu_1
      y = b.conv(y, 4 * width, 1, { name: `${p}.conv3`, gain: RESIDUAL_GAIN });
      // The first block of a stage changes width (and stride): a 1x1 projection shortcut (gain 1 keeps E[x^2]).
      const shortcut = i === 0 ? b.conv(x, 4 * width, 1, { stride: s, name: `${p}.downsample.0`, gain: 1 }) : x;
      y = b.as(`${p}.add`).add(y, shortcut);
      x = b.as(`${p}.relu`).relu(y);                                      // -> relu_2
    }
  });
  x = b.as('avgpool').gap(x);
  x = b.as('flatten').flatten(x);
  x = b.as('fc').linear(x, classes);
  return b.finish(x);
}

/**
 * torchvision mobilenet_v2 (width 1.0), BatchNorm folded, ReLU6 = clip(0, 6). features.0: 3x3 s2 conv 32;
 * features.1..17: inverted residuals (1x1 expand by t -> 3x3 depthwise -> 1x1 linear projection, residual add
 * when stride 1 and channels match); features.18: 1x1 conv 1280; global average pool; classifier.1: linear.
 */
export function mobilenetV2({ size = 224, classes = 1000, seed = 1 }: ModelOptions = {}): Graph {
  const b = new GraphBuilder([3, size, size], seed);
  const relu6 = (x: string, name: string) => b.as(name).act(x, 'clip', 0, 6);
  let x = b.conv(b.input, 32, 3, { stride: 2, pad: 1, name: 'features.0.0' });
  x = relu6(x, 'features.0.2');
  const cfg: [number, number, number, number][] = [ // expansion t, channels c, repeats n, first stride s
    [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]];
  let cin = 32, f = 1;
  for (const [t, c, n, s] of cfg) {
    for (let i = 0; i < n; i++, f++) {
      const p = `features.${f}.conv`, stride = i === 0 ? s : 1, hidden = cin * t;
      let y = x, j = 0;
      if (t !== 1) {
        y = b.conv(y, hidden, 1, { name: `${p}.${j}.0` });
        y = relu6(y, `${p}.${j++}.2`);
      }
      y = b.conv(y, hidden, 3, { stride, pad: 1, group: hidden, name: `${p}.${j}.0` }); // depthwise: one 3x3 filter per channel
      y = relu6(y, `${p}.${j++}.2`);
      const residual = stride === 1 && cin === c;
      y = b.conv(y, c, 1, { name: `${p}.${j}`, gain: residual ? RESIDUAL_GAIN : 1 }); // linear bottleneck: no activation
      x = residual ? b.as(`features.${f}.add`).add(x, y) : y;
      cin = c;
    }
  }
  x = b.conv(x, 1280, 1, { name: 'features.18.0' });
  x = relu6(x, 'features.18.2');
  x = b.as('avgpool').gap(x);
  x = b.as('flatten').flatten(x);
  x = b.as('classifier.1').linear(x, classes);
  return b.finish(x);
}
