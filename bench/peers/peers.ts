// camgpu against the other WebGPU engines, in one process, on the same Dawn adapter, on the same seeded graphs
// (src/builder.ts VGG16 and ResNet-50 at 224, batch 1), with CPU engines for context:
//   tfjs-webgpu  @tensorflow/tfjs + @tensorflow/tfjs-backend-webgpu: the nets written with tf ops (NHWC),
//                Grad-CAM the way a tfjs user writes it: tf.grad of the class logit w.r.t. the last conv activation
//   ort-webgpu   onnxruntime-web's 'webgpu' execution provider on an ONNX file written here from the graph
//                (forward only: onnxruntime has no gradients)
//   tfjs-wasm    the same tf code on @tensorflow/tfjs-backend-wasm (CPU, XNNPACK)
//   ort-node     onnxruntime-node (CPU, native MLAS)
//   npm run bench:peers                       installs the peers into bench/peers/node_modules (once), VGG16 and ResNet-50
//   node bench/peers/dist/peers.js --quick    ResNet-50 only (after one npm run bench:peers)
// Tasks: forward (logits read back); Grad-CAM (forward, backward to the CAM layer, the 224x224 map read back);
// seven CAMs (camgpu's explain() with gradcam, gradcam-neg, gradcam++, xgradcam, layercam, hirescam, liftcam: one
// forward, one backward, LIFT-CAM's head-only DeepLIFT pass and the fused epilogue; tfjs: one tf.grad for the
// gradient, a second through the head with DeepLIFT's Rescale rule at the ReLUs, and the seven maps in tf ops).
// Every engine's output is checked before it is timed: camgpu's logits against the float64 reference (tests/ref.ts),
// every peer's logits and maps against camgpu's. Timing: wall ms per call, inputs uploaded and outputs read back;
// one warm-up call (pipelines compile), then the median of 3 timed calls (1 when the warm-up took over 20 s).
// Prints one markdown table and writes bench/results/peers-<date>.json.
//
// Node notes. tfjs-backend-webgpu and onnxruntime-web find WebGPU at navigator.gpu, which Node lacks: we set it to a
// second Dawn instance of the `webgpu` package (camgpu's own lives in node/gpu.ts) before importing them. Dawn's
// binding crashes the process (SIGSEGV) when queue.writeBuffer is given a view of a SharedArrayBuffer, and
// onnxruntime-web's threaded wasm memory is one, so every device requested through our navigator.gpu copies such
// views first. lavapipe's maxStorageBufferBindingSize is 128 MiB and VGG16's classifier.0 weight is 392 MiB: bound
// whole, tfjs-webgpu's matMul fails validation and returns zeros, so the tf code splits a linear whose weight is
// over the limit into column blocks (what camgpu does inside); onnxruntime-web runs the plain Gemm correctly.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { create, globals } from 'webgpu';
import { closeGpu, nodeGpu } from '../../node/gpu.js';
import { resnet50, vgg16 } from '../../src/builder.js';
import { ActOp, Graph, Node, PoolOp, consumers, fmt, logitsOf, numel, producers } from '../../src/graph.js';
import { Gpu } from '../../src/gpu.js';
import { Model } from '../../src/model.js';
import { Explainer, defaultLayer } from '../../src/explain.js';
import { Method } from '../../src/methods.js';
import { importOnnx } from '../../src/import.js';
import { tune } from '../../src/tune.js';
import { median, rand, referenceLogits, relErr } from '../common.js';

type TF = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type Tensor2D = import('@tensorflow/tfjs').Tensor2D;
type Tensor4D = import('@tensorflow/tfjs').Tensor4D;
type OrtWeb = typeof import('onnxruntime-web');
type OrtNode = typeof import('onnxruntime-node');

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const LOGIT_TOL = 1e-3;          // max |logits - reference| / max |reference|
const MAP_TOL = 1e-3;            // max |map - camgpu's map|, maps in [0,1]
const SLOW_MS = 20e3;            // a call whose warm-up takes longer is timed once, not three times
const SIZE = 224;
const SEVEN: Method[] = ['gradcam', 'gradcam-neg', 'gradcam++', 'xgradcam', 'layercam', 'hirescam', 'liftcam'];
type Task = 'forward' | 'gradcam' | 'seven';
const TASK_NAMES: Record<Task, string> = { forward: 'forward', gradcam: 'Grad-CAM', seven: 'seven CAMs' };
const ENGINES = ['camgpu', 'tfjs-webgpu', 'ort-webgpu', 'tfjs-wasm', 'ort-node'] as const;
type EngineName = typeof ENGINES[number];

// ---------- helpers ----------

const f1 = (v: number) => v.toFixed(1);
const argmax = (a: ArrayLike<number>) => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; };
const errText = (e: unknown) => ((e as Error)?.message ?? String(e)).split('\n')[0].slice(0, 300);

function absErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return a.length === b.length && Number.isFinite(d) ? d : Infinity;
}

/** (C,H,W) -> (H,W,C), for the NHWC engines. */
function toHwc(x: Float32Array, C: number, H: number, W: number): Float32Array {
  const y = new Float32Array(x.length);
  for (let c = 0; c < C; c++) for (let i = 0; i < H * W; i++) y[i * C + c] = x[c * H * W + i];
  return y;
}

/** Wall ms of f: a warm-up call, then 3 timed calls (1 when the warm-up took over SLOW_MS); the median. */
async function timeIt(f: () => Promise<unknown>): Promise<{ ms: number; runs: number[]; warmupMs: number }> {
  let t = performance.now();
  await f();
  const warmupMs = performance.now() - t, runs: number[] = [];
  for (let i = 0; i < (warmupMs > SLOW_MS ? 1 : 3); i++) { t = performance.now(); await f(); runs.push(performance.now() - t); }
  return { ms: median(runs), runs, warmupMs };
}

// ---------- ONNX writer: the IR graph as a ModelProto ----------
// Protobuf wire format (https://protobuf.dev/programming-guides/encoding/), field numbers of onnx/onnx.proto as
// src/onnx.ts reads them. A message is a list of byte chunks, so weights are copied once, into the final buffer.

type Msg = Uint8Array[];
const msgSize = (m: Msg) => m.reduce((a, c) => a + c.length, 0);
function varint(v: number): Uint8Array {
  const out: number[] = [];
  let x = BigInt.asUintN(64, BigInt(v)); // negatives (Reshape's -1) as 64-bit two's complement
  do { let b = Number(x & 0x7fn); x >>= 7n; if (x) b |= 0x80; out.push(b); } while (x);
  return Uint8Array.from(out);
}
const key = (field: number, wire: number) => varint((field << 3) | wire);
const pInt = (f: number, v: number): Msg => [key(f, 0), varint(v)];
const pBytes = (f: number, b: Uint8Array): Msg => [key(f, 2), varint(b.length), b];
const pStr = (f: number, s: string): Msg => pBytes(f, new TextEncoder().encode(s));
const pSub = (f: number, m: Msg): Msg => [key(f, 2), varint(msgSize(m)), ...m];
const pF32 = (f: number, v: number): Msg => [key(f, 5), new Uint8Array(Float32Array.of(v).buffer)];

type Attr = [name: string, value: number | number[], kind?: 'float'];
// AttributeProto: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7)
const attrMsg = ([name, v, kind]: Attr): Msg => Array.isArray(v) ? [...pStr(1, name), ...v.flatMap((x) => pInt(8, x)), ...pInt(20, 7)]
  : kind === 'float' ? [...pStr(1, name), ...pF32(2, v), ...pInt(20, 1)] : [...pStr(1, name), ...pInt(3, v), ...pInt(20, 2)];
// NodeProto: input 1, output 2, name 3, op_type 4, attribute 5
const nodeMsg = (op: string, name: string, ins: string[], out: string, attrs: Attr[]): Msg =>
  [...ins.flatMap((i) => pStr(1, i)), ...pStr(2, out), ...pStr(3, name), ...pStr(4, op), ...attrs.flatMap((a) => pSub(5, attrMsg(a)))];
// TensorProto: dims 1, data_type 2 (FLOAT 1, INT64 7), name 8, raw_data 9 (little-endian)
const tensorMsg = (name: string, dims: number[], data: Float32Array | BigInt64Array): Msg =>
  [...dims.flatMap((d) => pInt(1, d)), ...pInt(2, data instanceof Float32Array ? 1 : 7), ...pStr(8, name),
    ...pBytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength))];
// ValueInfoProto: name 1, type 2 -> TypeProto.tensor_type 1 -> elem_type 1, shape 2 -> dim 1 -> dim_value 1 | dim_param 2
const valueInfoMsg = (name: string, dims: (number | string)[]): Msg => [...pStr(1, name), ...pSub(2, pSub(1, [...pInt(1, 1),
  ...pSub(2, dims.flatMap((d) => pSub(1, typeof d === 'number' ? pInt(1, d) : pStr(2, d))))]))];

const ONNX_OPSET = 13;

/**
 * A camgpu graph as ONNX bytes (opset 13, batch dimension 'N'): conv -> Conv, act -> Relu / Clip / LeakyRelu /
 * Sigmoid / HardSigmoid, maxpool / avgpool -> MaxPool / AveragePool, gap -> GlobalAveragePool, add / mul -> Add / Mul,
 * a 1-D alias -> Flatten (else Reshape), linear -> Gemm (transB), concat -> Concat, softmax -> Softmax.
 */
function writeOnnx(g: Graph): Uint8Array {
  const nodes: Msg[] = [], inits: Msg[] = [];
  const init = (name: string, dims: number[], data: Float32Array | BigInt64Array) => { inits.push(tensorMsg(name, dims, data)); return name; };
  const emit = (op: string, name: string, ins: string[], out: string, attrs: Attr[] = []) => nodes.push(nodeMsg(op, name, ins, out, attrs));
  for (const t of g.tensors.values()) if (t.data) init(t.name, t.shape, t.data);
  for (const n of g.nodes) {
    const op = n.op, x = n.inputs[0], y = n.output;
    switch (op.kind) {
      case 'conv':
        emit('Conv', n.name, [x, init(`${n.name}.weight`, [op.cout, op.w.length / (op.cout * op.kh * op.kw), op.kh, op.kw], op.w), init(`${n.name}.bias`, [op.cout], op.b)], y,
          [['kernel_shape', [op.kh, op.kw]], ['strides', op.stride], ['pads', op.pad], ['dilations', op.dil], ['group', op.group]]);
        break;
      case 'act':
        if (op.fn === 'relu') emit('Relu', n.name, [x], y);
        else if (op.fn === 'clip') emit('Clip', n.name, [x, init(`${n.name}.min`, [], Float32Array.of(op.alpha)), init(`${n.name}.max`, [], Float32Array.of(op.beta))], y);
        else if (op.fn === 'leakyrelu') emit('LeakyRelu', n.name, [x], y, [['alpha', op.alpha, 'float']]);
        else if (op.fn === 'sigmoid') emit('Sigmoid', n.name, [x], y);
        else if (op.fn === 'hardsigmoid') emit('HardSigmoid', n.name, [x], y, [['alpha', op.alpha, 'float'], ['beta', op.beta, 'float']]);
        else throw new Error(`writeOnnx: node '${n.name}': ${op.fn} has no opset-${ONNX_OPSET} op`);
        break;
      case 'maxpool': case 'avgpool':
        emit(op.kind === 'maxpool' ? 'MaxPool' : 'AveragePool', n.name, [x], y, [['kernel_shape', [op.kh, op.kw]], ['strides', op.stride], ['pads', op.pad],
          ['ceil_mode', op.ceil ? 1 : 0], op.kind === 'maxpool' ? ['dilations', op.dil] : ['count_include_pad', op.countIncludePad ? 1 : 0]]);
        break;
      case 'gap': emit('GlobalAveragePool', n.name, [x], y); break;
      case 'add': case 'mul': emit(op.kind === 'add' ? 'Add' : 'Mul', n.name, n.inputs, y); break;
      case 'concat': emit('Concat', n.name, n.inputs, y, [['axis', 1]]); break;
      case 'softmax': emit('Softmax', n.name, [x], y, [['axis', 1]]); break;
      case 'linear': emit('Gemm', n.name, [x, init(`${n.name}.weight`, [op.out, op.in], op.w), init(`${n.name}.bias`, [op.out], op.b)], y, [['transB', 1]]); break;
      case 'alias': {
        const s = g.tensors.get(y)!.shape;
        if (s.length === 1) emit('Flatten', n.name, [x], y, [['axis', 1]]);
        else emit('Reshape', n.name, [x, init(`${n.name}.shape`, [s.length + 1], BigInt64Array.from([-1, ...s], BigInt))], y);
        break;
      }
      default: throw new Error(`writeOnnx: node '${n.name}': op ${op.kind} is not written`);
    }
  }
  // GraphProto: node 1, name 2, initializer 5, input 11, output 12
  const graph: Msg = [...nodes.flatMap((m) => pSub(1, m)), ...pStr(2, 'camgpu'), ...inits.flatMap((m) => pSub(5, m)),
    ...pSub(11, valueInfoMsg(g.input, ['N', ...g.tensors.get(g.input)!.shape])), ...pSub(12, valueInfoMsg(g.output, ['N', ...g.tensors.get(g.output)!.shape]))];
  // ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 (domain 1, version 2)
  const model: Msg = [...pInt(1, 7), ...pStr(2, 'camgpu bench/peers/peers.ts'), ...pSub(7, graph), ...pSub(8, [...pStr(1, ''), ...pInt(2, ONNX_OPSET)])];
  const out = new Uint8Array(msgSize(model));
  let o = 0;
  for (const c of model) { out.set(c, o); o += c.length; }
  return out;
}

// ---------- navigator.gpu for the peers ----------

/** navigator.gpu on a Dawn instance of our own; every device requested through it copies SharedArrayBuffer views
 *  before queue.writeBuffer (Dawn's Node binding segfaults on them; onnxruntime-web's wasm memory is one). */
function installNavigatorGpu(): GPU {
  Object.assign(globalThis, globals);
  const dawn = create([]);
  const patchDevice = (d: GPUDevice) => {
    const q = d.queue, write = q.writeBuffer;
    q.writeBuffer = function (this: GPUQueue, buffer: GPUBuffer, offset: number, data: BufferSource | SharedArrayBuffer, dataOffset?: number, size?: number) {
      if (ArrayBuffer.isView(data) && data.buffer instanceof SharedArrayBuffer) data = (data as Uint8Array).slice();
      else if (data instanceof SharedArrayBuffer) data = new Uint8Array(data).slice();
      return write.call(this, buffer, offset, data as BufferSource, dataOffset, size);
    } as GPUQueue['writeBuffer'];
    return d;
  };
  const gpu = {
    wgslLanguageFeatures: dawn.wgslLanguageFeatures,
    getPreferredCanvasFormat: () => dawn.getPreferredCanvasFormat(),
    async requestAdapter(o?: GPURequestAdapterOptions) {
      const a = await dawn.requestAdapter(o);
      if (!a) return a;
      const request = a.requestDevice;
      a.requestDevice = async function (desc?: GPUDeviceDescriptor) { return patchDevice(await request.call(this, desc)); };
      return a;
    },
  } as GPU;
  Object.defineProperty(globalThis, 'navigator', { value: { gpu, userAgent: 'node' }, configurable: true, writable: true });
  return gpu;
}

// ---------- the nets in tf ops ----------

/** DeepLIFT's Rescale multiplier of a ReLU against the reference pre-activation x0 is (relu(x) - relu(x0)) / (x - x0),
 *  and relu'(x) where |x - x0| < DL_EPS (tests/ref.ts's rule). */
const DL_EPS = 1e-10;

/**
 * A camgpu graph as tfjs ops in NHWC: conv weights (K, C, kh, kw) -> filters (kh, kw, C, K); a conv followed by its
 * only consumer ReLU, or a linear followed by one, is one fused op (what tfjs-converter makes of such models);
 * the linear after a flatten of (C,H,W) gets its input rows permuted to the NHWC flatten order (H,W,C).
 * features() runs the nodes up to the CAM layer A, head() the rest; head(a, true) differentiates with DeepLIFT's
 * Rescale rule at the ReLUs against the reference A = 0 (LIFT-CAM): exact because the other head ops are linear, or
 * max-pools whose reference input is all zeros (checked), where DeepLIFT's rule for A >= 0 is the gradient.
 */
class TfNet {
  private w = new Map<string, { w: Tensor[]; b: Tensor[] }>();
  private fused = new Set<string>();         // act nodes folded into the producing conv/linear
  private fusedInto = new Set<string>();     // the conv/linear nodes that apply them
  private ref = new Map<string, Tensor>();   // deeplift: reference values of head act inputs and outputs
  readonly featureNodes: Node[]; readonly headNodes: Node[];
  readonly notes: string[] = [];

  constructor(readonly tf: TF, readonly g: Graph, readonly A: string, maxBindingBytes: number) {
    const cons = consumers(g), prod = producers(g);
    const cut = g.nodes.findIndex((n) => n.output === A);
    this.featureNodes = g.nodes.slice(0, cut + 1); this.headNodes = g.nodes.slice(cut + 1);
    for (const n of this.headNodes) for (const i of n.inputs) if (i !== A && !this.headNodes.some((h) => h.output === i))
      throw new Error(`tfjs: head node '${n.name}' reads '${i}', computed before the CAM layer '${A}'`);
    for (const n of g.nodes) {
      const op = n.op;
      const next = cons.get(n.output) ?? [];
      if ((op.kind === 'conv' || op.kind === 'linear') && next.length === 1 && next[0].op.kind === 'act' && next[0].op.fn === 'relu'
        && this.featureNodes.includes(n) === this.featureNodes.includes(next[0])) { this.fused.add(next[0].name); this.fusedInto.add(n.name); }
      if (op.kind === 'conv') {
        if (op.group !== 1) throw new Error(`tfjs: node '${n.name}': grouped conv (group ${op.group}) is not written here`);
        const C = op.w.length / (op.cout * op.kh * op.kw), f = new Float32Array(op.w.length);
        for (let k = 0; k < op.cout; k++) for (let c = 0; c < C; c++) for (let i = 0; i < op.kh * op.kw; i++) f[(i * C + c) * op.cout + k] = op.w[(k * C + c) * op.kh * op.kw + i];
        this.w.set(n.name, { w: [tf.tensor4d(f, [op.kh, op.kw, C, op.cout])], b: [tf.tensor1d(op.b)] });
      } else if (op.kind === 'linear') {
        // rows of the (in, out) matrix in NHWC flatten order when the input is a flattened (C,H,W) activation
        const src = prod.get(n.inputs[0]), s = src?.op.kind === 'alias' ? g.tensors.get(src.inputs[0])!.shape : [op.in];
        const [C, H, W] = s.length === 3 ? s : [op.in, 1, 1];
        // column blocks of at most maxBindingBytes each (tfjs-webgpu binds a matMul operand whole)
        const cols = Math.max(1, Math.min(op.out, Math.floor(maxBindingBytes / (op.in * 4))));
        const ws: Tensor[] = [], bs: Tensor[] = [];
        for (let o0 = 0; o0 < op.out; o0 += cols) {
          const k = Math.min(cols, op.out - o0), m = new Float32Array(op.in * k);
          for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) {
            const row = p * C + c, col = c * H * W + p;
            for (let o = 0; o < k; o++) m[row * k + o] = op.w[(o0 + o) * op.in + col];
          }
          ws.push(tf.tensor2d(m, [op.in, k])); bs.push(tf.tensor1d(op.b.subarray(o0, o0 + k)));
        }
        if (ws.length > 1) this.notes.push(`${n.name}: ${ws.length} column blocks (its ${f1(op.w.length * 4 / 2 ** 20)} MiB weight is over the ${f1(maxBindingBytes / 2 ** 20)} MiB binding limit)`);
        this.w.set(n.name, { w: ws, b: bs });
      }
    }
  }

  /** Runs `nodes` from the given values (NHWC); returns the last output. */
  private run(nodes: Node[], vals: Map<string, Tensor>, deeplift = false): Tensor {
    const tf = this.tf, g = this.g;
    let last: Tensor | undefined;
    for (const n of nodes) {
      const op = n.op, x = vals.get(n.inputs[0])!;
      const relu = !deeplift && this.fusedInto.has(n.name);
      let y: Tensor;
      switch (op.kind) {
        case 'conv': {
          const { w, b } = this.w.get(n.name)!, p = op.pad;
          y = tf.fused.conv2d({ x: x as Tensor4D, filter: w[0] as Tensor4D, strides: op.stride, dilations: op.dil,
            pad: p.every((v) => v === 0) ? 'valid' : [[0, 0], [p[0], p[2]], [p[1], p[3]], [0, 0]], bias: b[0], activation: relu ? 'relu' : 'linear' });
          break;
        }
        case 'linear': {
          const { w, b } = this.w.get(n.name)!, a = x as Tensor2D;
          const part = (i: number) => deeplift ? tf.add(tf.matMul(a, w[i]), b[i])
            : tf.fused.matMul({ a, b: w[i] as Tensor2D, bias: b[i], activation: relu ? 'relu' : 'linear' });
          y = w.length === 1 ? part(0) : tf.concat(w.map((_, i) => part(i)), 1);
          break;
        }
        case 'act':
          if (this.fused.has(n.name) && !deeplift) { y = x; break; }
          if (deeplift) { y = this.rescaleRelu(n, x); break; }
          y = actTf(tf, op, x, n);
          break;
        case 'maxpool': y = tf.maxPool(x as Tensor4D, [op.kh, op.kw], op.stride, poolPad(op, n)); break;
        case 'avgpool': y = tf.avgPool(x as Tensor4D, [op.kh, op.kw], op.stride, poolPad(op, n)); break;
        case 'gap': y = tf.mean(x, [1, 2], true); break;
        case 'add': y = tf.add(x, vals.get(n.inputs[1])!); break;
        case 'alias': {
          const s = g.tensors.get(n.output)!.shape;
          if (s.length !== 1) throw new Error(`tfjs: node '${n.name}': reshape to ${fmt(s)} is not written here`);
          y = tf.reshape(x, [x.shape[0], s[0]]);
          break;
        }
        default: throw new Error(`tfjs: node '${n.name}': op ${op.kind} is not written here`);
      }
      vals.set(n.output, y); last = y;
    }
    return last!;
  }

  features(x: Tensor): Tensor { return this.run(this.featureNodes, new Map([[this.g.input, x]])); }
  head(a: Tensor, deeplift = false): Tensor { return this.run(this.headNodes, new Map([[this.A, a]]), deeplift); }
  forward(x: Tensor): Tensor { return this.head(this.features(x)); }

  /** Reference values of the head on A = 0, kept for head(a, true); checks the head suits the Rescale rule. */
  async prepareDeeplift() {
    const tf = this.tf, vals = new Map<string, Tensor>([[this.A, tf.zeros([1, ...hwc(this.g.tensors.get(this.A)!.shape)])]]);
    for (const n of this.headNodes) {
      if (n.op.kind === 'act' && n.op.fn !== 'relu') throw new Error(`tfjs LIFT-CAM: head activation '${n.name}' is ${n.op.fn}; only ReLU's Rescale rule is written here`);
      if (n.op.kind === 'maxpool') { // read asynchronously: tfjs-webgpu's synchronous read needs OffscreenCanvas, which Node lacks
        const nonZero = tf.any(tf.notEqual(vals.get(n.inputs[0])!, 0)), any = (await nonZero.data())[0];
        nonZero.dispose();
        if (any) throw new Error(`tfjs LIFT-CAM: max-pool '${n.name}' has a non-zero reference input; its DeepLIFT rule is not the gradient there`);
      }
      vals.set(n.output, tf.tidy(() => this.run([n], new Map(vals), true)));
      if (n.op.kind === 'act') { this.ref.set(`${n.name}:x0`, vals.get(n.inputs[0])!); this.ref.set(`${n.name}:y0`, vals.get(n.output)!); }
    }
    const kept = new Set(this.ref.values());
    for (const t of vals.values()) if (!kept.has(t)) t.dispose();
  }
  private rescaleRelu(n: Node, x: Tensor): Tensor {
    const tf = this.tf, x0 = this.ref.get(`${n.name}:x0`), y0 = this.ref.get(`${n.name}:y0`);
    if (!x0 || !y0) return tf.relu(x); // the reference pass itself
    return tf.customGrad((...a: (Tensor | ((t: Tensor[]) => void))[]) => {
      const xi = a[0] as Tensor, save = a[1] as (t: Tensor[]) => void;
      save([xi]);
      return { value: tf.relu(xi), gradFunc: (dy: Tensor, [xs]: Tensor[]) => {
        const d = tf.sub(xs, x0), m = tf.where(tf.greaterEqual(tf.abs(d), DL_EPS), tf.div(tf.sub(tf.relu(xs), y0), d), tf.step(xs));
        return tf.mul(dy, m);
      } };
    })(x);
  }

  dispose() {
    for (const { w, b } of this.w.values()) for (const t of [...w, ...b]) t.dispose();
    for (const t of this.ref.values()) t.dispose();
  }
}

const hwc = (s: number[]) => s.length === 3 ? [s[1], s[2], s[0]] : s;

function actTf(tf: TF, op: ActOp, x: Tensor, n: Node): Tensor {
  if (op.fn === 'relu') return tf.relu(x);
  if (op.fn === 'clip') return tf.clipByValue(x, op.alpha, op.beta);
  if (op.fn === 'leakyrelu') return tf.leakyRelu(x, op.alpha);
  if (op.fn === 'sigmoid') return tf.sigmoid(x);
  throw new Error(`tfjs: node '${n.name}': activation ${op.fn} is not written here`);
}

function poolPad(op: PoolOp, n: Node): 'valid' | number {
  const p = op.pad;
  if (op.ceil || p.some((v) => v !== p[0]) || op.dil[0] !== 1 || op.dil[1] !== 1) throw new Error(`tfjs: node '${n.name}': pool with pads [${p}], ceil ${op.ceil}, dilation ${op.dil} is not written here`);
  return p[0] === 0 ? 'valid' : p[0];
}

/**
 * Gradient of the sum of a 2x2 max-pool over zeros (1,2,4,1): one 1 per window, 2 in all. tfjs-backend-wasm 4.22's
 * MaxPoolGrad starts its running maximum at std::numeric_limits<float>::min(), the smallest positive float, so a
 * window of values <= 1.2e-38 (zeros after a ReLU) records no argmax and its gradient is lost (only the window
 * holding element 0 keeps it): 1 here.
 */
async function zeroWindowPoolGrad(tf: TF): Promise<number> {
  const g = tf.grad((x: Tensor) => tf.sum(tf.maxPool(x as Tensor4D, [2, 2], 2, 'valid')))(tf.zeros([1, 2, 4, 1]));
  const s = Array.from(await g.data() as Float32Array).reduce((p, q) => p + q, 0);
  g.dispose();
  return s;
}

/**
 * The tfjs tasks on an NHWC image: forward logits; Grad-CAM; the seven CAMs. A CAM map: ReLU of the raw map,
 * min-max normalised at feature resolution ((v - min) / (max - min + 1e-7)), bilinear resize with half-pixel
 * centres to 224x224: camgpu's defaults.
 */
class TfTasks {
  constructor(readonly tf: TF, readonly net: TfNet, readonly classes: number) {}

  async forward(x: Float32Array): Promise<Float32Array> {
    const tf = this.tf, y = tf.tidy(() => this.net.forward(tf.tensor4d(x, [1, SIZE, SIZE, 3])));
    const out = await y.data() as Float32Array; y.dispose();
    return out;
  }

  /** Class logit of the top-1 class (chosen inside the differentiated function, so one forward serves both). */
  private gradOfTop(A: Tensor, keep: { oneHot?: Tensor }): Tensor {
    const tf = this.tf;
    return tf.grad((a: Tensor) => {
      const logits = this.net.head(a), oneHot = tf.oneHot(tf.argMax(logits, 1), this.classes);
      keep.oneHot = tf.keep(oneHot);
      return tf.sum(tf.mul(logits, oneHot));
    })(A);
  }

  /** (1,h,w,S) raw maps -> (S,224,224) maps: ReLU, min-max per map, resize. */
  private finish(raw: Tensor): Tensor {
    const tf = this.tf, r = tf.relu(raw), lo = tf.min(r, [1, 2], true), hi = tf.max(r, [1, 2], true);
    const norm = tf.div(tf.sub(r, lo), tf.add(tf.sub(hi, lo), 1e-7)) as Tensor4D;
    return tf.transpose(tf.image.resizeBilinear(norm, [SIZE, SIZE], false, true), [0, 3, 1, 2]);
  }

  async gradcam(x: Float32Array): Promise<{ target: number; map: Float32Array }> {
    const tf = this.tf, keep: { oneHot?: Tensor } = {};
    const [map, cls] = tf.tidy(() => {
      const A = this.net.features(tf.tensor4d(x, [1, SIZE, SIZE, 3])), g = this.gradOfTop(A, keep);
      const w = tf.mean(g, [1, 2], true);                                   // (1,1,1,K)
      return [this.finish(tf.sum(tf.mul(A, w), 3, true)), tf.argMax(keep.oneHot!, 1)];
    });
    const out = { target: (await cls.data())[0], map: await map.data() as Float32Array };
    map.dispose(); cls.dispose(); keep.oneHot!.dispose();
    return out;
  }

  /** The seven CAMs of shaders/cam.wgsl from one gradient and one DeepLIFT pass through the head. */
  async seven(x: Float32Array): Promise<{ target: number; maps: Float32Array }> {
    const tf = this.tf, keep: { oneHot?: Tensor } = {};
    const [maps, cls] = tf.tidy(() => {
      const A = this.net.features(tf.tensor4d(x, [1, SIZE, SIZE, 3])), g = this.gradOfTop(A, keep);
      const oneHot = keep.oneHot!, m = tf.grad((a: Tensor) => tf.sum(tf.mul(this.net.head(a, true), oneHot)))(A);
      const [, h, w] = A.shape, Z = h * w;
      const sum = (t: Tensor) => tf.sum(t, [1, 2], true);                // (1,1,1,K)
      const sg = sum(g), sa = sum(A), ga = tf.mul(g, A);
      const g2 = tf.square(g), alpha = tf.where(tf.notEqual(g, 0), tf.div(g2, tf.add(tf.add(tf.mul(g2, 2), tf.mul(sa, tf.mul(g2, g))), 1e-6)), tf.zerosLike(g));
      const wts = [tf.div(sg, Z), tf.div(tf.neg(sg), Z), sum(tf.mul(alpha, tf.relu(g))), tf.div(sum(ga), tf.add(sa, 1e-7))];
      const lift = sum(tf.mul(m, A));
      const raw = tf.concat([...wts.map((wk) => tf.sum(tf.mul(A, wk), 3, true)),
        tf.sum(tf.mul(tf.relu(g), A), 3, true), tf.sum(ga, 3, true), tf.sum(tf.mul(A, lift), 3, true)], 3); // SEVEN's order
      return [this.finish(raw), tf.argMax(oneHot, 1)];
    });
    const out = { target: (await cls.data())[0], maps: await maps.data() as Float32Array };
    maps.dispose(); cls.dispose(); keep.oneHot!.dispose();
    return out;
  }
}

// ---------- results ----------

interface Cell { ms?: number; runs?: number[]; warmupMs?: number; check?: string; err?: number; failed?: string; wrong?: boolean; skipped?: string }
type Row = Partial<Record<EngineName, Cell>>;
const results = new Map<string, Record<Task, Row>>(); // net -> task -> engine
const notes: string[] = [];
const cell = (net: string, task: Task, e: EngineName, c: Cell) => { results.get(net)![task][e] = c; };

/** Checks, then times; a wrong result or an error lands in the cell (and the run goes on with the next engine). */
async function measure(net: string, task: Task, e: EngineName, check: () => Promise<{ err: number; tol: number; what: string }>, f: () => Promise<unknown>) {
  try {
    const c = await check();
    if (!(c.err <= c.tol)) {
      const why = `${c.what} differs by ${c.err.toExponential(2)} (tolerance ${c.tol})`;
      cell(net, task, e, { failed: why, wrong: true, err: c.err });
      console.error(`  ${e} ${task}: WRONG: ${why}`);
      return;
    }
    const t = await timeIt(f);
    cell(net, task, e, { ...t, check: `${c.what} ${c.err.toExponential(1)}`, err: c.err });
    console.error(`  ${e} ${task}: ${f1(t.ms)} ms (runs ${t.runs.map((r) => f1(r)).join(', ')}; warm-up ${f1(t.warmupMs)}; ${c.what} ${c.err.toExponential(1)})`);
  } catch (err) {
    cell(net, task, e, { failed: errText(err) });
    console.error(`  ${e} ${task}: FAILED: ${errText(err)}`);
  }
}

// ---------- main ----------

const t0 = performance.now();
mkdirSync('bench/results', { recursive: true });
const load0 = loadavg()[0];
const gpu: Gpu = await nodeGpu();
const navGpu = installNavigatorGpu();
const peerAdapter = await navGpu.requestAdapter({ powerPreference: 'high-performance' });
const adapterInfo = (a: GPUAdapter | null) => a ? `${a.info.vendor} ${a.info.architecture} ${a.info.description}`.replace(/\s+/g, ' ').trim() : 'none';
const maxBinding = peerAdapter?.limits.maxStorageBufferBindingSize ?? 2 ** 27;
if (adapterInfo(peerAdapter) !== gpu.adapterInfo) notes.push(`the peers' adapter (${adapterInfo(peerAdapter)}) is not camgpu's (${gpu.adapterInfo})`);

const tf: TF = await import('@tensorflow/tfjs'); // not tfjs-core alone: its Node build registers no gradients
await import('@tensorflow/tfjs-backend-webgpu');
const tfWasm = await import('@tensorflow/tfjs-backend-wasm');
const ortWeb: OrtWeb = await import('onnxruntime-web/webgpu');
const ortNode: OrtNode = await import('onnxruntime-node');
let ortWebDevice = false; // whether onnxruntime-web made its device (reading env.webgpu.device before that makes one)
ortWeb.env.logLevel = 'error';
const pkgVersion = (p: string) => { try { return JSON.parse(readFileSync(`node_modules/${p}/package.json`, 'utf8')).version as string; } catch { return '?'; } };
const versions = Object.fromEntries(['@tensorflow/tfjs', '@tensorflow/tfjs-backend-webgpu', '@tensorflow/tfjs-backend-wasm', 'onnxruntime-web', 'onnxruntime-node', 'webgpu']
  .map((p) => [p, pkgVersion(p)]));

console.error(`# camgpu vs peers${QUICK ? ' (--quick)' : ''}: adapter ${gpu.adapterInfo}, load ${load0.toFixed(2)} on ${cpus().length} CPUs`);
const probed = new Set<EngineName>(); // tfjs backends whose max-pool gradient was probed
const nets: [string, string, () => Graph][] = [['vgg16', 'VGG16', () => vgg16()], ['resnet50', 'ResNet-50', () => resnet50()]];
for (const [net, title, make] of QUICK ? nets.slice(1) : nets) {
  const g = make(), A = defaultLayer(g), C = numel(g.tensors.get(logitsOf(g))!.shape);
  const x = rand(3 * SIZE * SIZE, 5), xHwc = toHwc(x, 3, SIZE, SIZE);
  results.set(net, { forward: {}, gradcam: {}, seven: {} });
  console.error(`\n## ${title} (CAM layer ${A})`);

  // camgpu, with the conv tiles its autotuner picks on this adapter (what `camgpu tune` caches): logits against
  // float64, then the reference outputs for every peer
  const tuneT = performance.now(), tiles = Object.fromEntries((await tune(gpu, g)).map((e) => [e.shape, e.best]));
  notes.push(`${title}: camgpu ran with the conv tiles its autotuner picked in this run (${Object.keys(tiles).length} layer shapes, ${f1((performance.now() - tuneT) / 1000)} s)`);
  const model = await Model.load(gpu, g, net, { tiles }), fwd = await model.plan({ batch: 1 }), ex = new Explainer(model);
  const logits = (await fwd.run(x)).logits;
  const camOne = (await ex.explain(x, { methods: ['gradcam'] })).images[0];
  const camSeven = (await ex.explain(x, { methods: SEVEN })).images[0];
  const ref = referenceLogits(net, g, x).logits;
  await measure(net, 'forward', 'camgpu', async () => ({ err: relErr(logits, ref), tol: LOGIT_TOL, what: 'logits vs float64' }), () => fwd.run(x));
  await measure(net, 'gradcam', 'camgpu', async () => ({ err: camOne.target === argmax(ref) ? relErr(camOne.logits, ref) : Infinity, tol: LOGIT_TOL, what: 'logits vs float64' }),
    () => ex.explain(x, { methods: ['gradcam'] }));
  await measure(net, 'seven', 'camgpu', async () => ({ err: camSeven.target === argmax(ref) ? relErr(camSeven.logits, ref) : Infinity, tol: LOGIT_TOL, what: 'logits vs float64' }),
    () => ex.explain(x, { methods: SEVEN }));
  const camMaps = SEVEN.map((m) => camSeven.methods[m]!.map);
  ex.destroy(); model.destroy();

  // the ONNX file: re-imported by camgpu, it must give the same logits
  let onnx = writeOnnx(g);
  {
    const back = await Model.load(gpu, importOnnx(onnx), `${net}.onnx`), p = await back.plan({ batch: 1 });
    const err = relErr((await p.run(x)).logits, logits);
    back.destroy();
    notes.push(`${title}: the ONNX file written here (${f1(onnx.length / 2 ** 20)} MiB, opset ${ONNX_OPSET}) re-imported by camgpu gives its logits within ${err.toExponential(1)}`);
    if (!(err <= 1e-6)) throw new Error(`${net}: the written ONNX file does not round-trip: logits differ by ${err.toExponential(2)}`);
  }

  // tfjs on WebGPU, then on wasm: the same code
  for (const [e, backend] of [['tfjs-webgpu', 'webgpu'], ['tfjs-wasm', 'wasm']] as const) {
    let net_: TfNet | null = null;
    try {
      if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') failed`);
      await tf.ready();
      net_ = new TfNet(tf, g, A, backend === 'webgpu' ? maxBinding : Infinity);
      await net_.prepareDeeplift();
      for (const n of net_.notes) notes.push(`${title} ${e}: ${n}`);
      if (!probed.has(e)) {
        probed.add(e);
        const poolGrad = await zeroWindowPoolGrad(tf);
        if (poolGrad !== 2) notes.push(`${e}: max-pool's gradient over windows of zeros sums to ${poolGrad}, not 2 (one per window): the gradient `
          + 'of an all-zero window is lost, which breaks gradients through a max-pool after a ReLU (VGG16\'s head)');
        if (backend === 'wasm') notes.push(`tfjs-wasm: ${tfWasm.getThreadsCount()} thread(s), SIMD ${await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')}`);
      }
      const t = new TfTasks(tf, net_, C);
      await measure(net, 'forward', e, async () => ({ err: relErr(await t.forward(xHwc), logits), tol: LOGIT_TOL, what: 'logits vs camgpu' }), () => t.forward(xHwc));
      await measure(net, 'gradcam', e, async () => {
        const r = await t.gradcam(xHwc);
        return { err: r.target === camOne.target ? absErr(r.map, camOne.methods.gradcam!.map) : Infinity, tol: MAP_TOL, what: 'map vs camgpu' };
      }, () => t.gradcam(xHwc));
      await measure(net, 'seven', e, async () => {
        const r = await t.seven(xHwc), HW = SIZE * SIZE;
        const errs = camMaps.map((m, i) => absErr(r.maps.subarray(i * HW, (i + 1) * HW), m));
        notes.push(`${title} ${e} seven CAMs, max |map - camgpu's| per method: ${SEVEN.map((m, i) => `${m} ${errs[i].toExponential(1)}`).join(', ')}`);
        return { err: r.target === camSeven.target ? Math.max(...errs) : Infinity, tol: MAP_TOL, what: 'maps vs camgpu' };
      }, () => t.seven(xHwc));
    } catch (err) {
      for (const task of ['forward', 'gradcam', 'seven'] as Task[]) if (!results.get(net)![task][e]) cell(net, task, e, { failed: errText(err) });
      console.error(`  ${e}: FAILED: ${errText(err)}`);
    } finally {
      net_?.dispose();
      tf.disposeVariables();
    }
  }

  // onnxruntime-web on WebGPU, onnxruntime-node on the CPU (forward only)
  for (const e of ['ort-webgpu', 'ort-node'] as const) {
    for (const task of ['gradcam', 'seven'] as Task[]) cell(net, task, e, { skipped: 'no gradients' });
    const ort = e === 'ort-webgpu' ? ortWeb : ortNode;
    let session: import('onnxruntime-common').InferenceSession | null = null;
    try {
      const t = performance.now();
      session = await (ort.InferenceSession as typeof import('onnxruntime-common').InferenceSession).create(onnx, { executionProviders: [e === 'ort-webgpu' ? 'webgpu' : 'cpu'] });
      if (e === 'ort-webgpu') ortWebDevice = true;
      notes.push(`${title} ${e}: session created in ${f1((performance.now() - t) / 1000)} s${e === 'ort-webgpu' ? ` (wasm threads ${ortWeb.env.wasm.numThreads})` : ''}`);
      const s = session, input = () => ({ [g.input]: new ort.Tensor('float32', x, [1, 3, SIZE, SIZE]) });
      const run = async () => (await s.run(input()))[g.output].data as Float32Array;
      await measure(net, 'forward', e, async () => ({ err: relErr(await run(), logits), tol: LOGIT_TOL, what: 'logits vs camgpu' }), run);
    } catch (err) {
      if (!results.get(net)!.forward[e]) cell(net, 'forward', e, { failed: errText(err) });
      console.error(`  ${e}: FAILED: ${errText(err)}`);
    } finally {
      await session?.release();
    }
  }
  onnx = new Uint8Array(0);
}

// ---------- report ----------

const fmtCell = (c: Cell | undefined, base: Cell | undefined) => {
  if (!c) return '—';
  if (c.skipped) return `n/a (${c.skipped})`;
  if (c.failed || c.ms === undefined) return c.wrong ? 'wrong result' : 'failed';
  const r = base?.ms !== undefined && c !== base ? ` (${(c.ms / base.ms).toFixed(2)}x)` : '';
  return `${c.ms >= 100 ? c.ms.toFixed(0) : f1(c.ms)}${r}`;
};
const table: string[] = [];
table.push(`| model | task | ${ENGINES.map((e) => e === 'camgpu' ? 'camgpu ms' : `${e} ms (x camgpu)`).join(' | ')} |`);
table.push(`|---|---|${ENGINES.map(() => '--:').join('|')}|`);
for (const [net, title] of nets) {
  const r = results.get(net);
  if (!r) continue;
  for (const task of ['forward', 'gradcam', 'seven'] as Task[])
    table.push(`| ${title} | ${TASK_NAMES[task]} | ${ENGINES.map((e) => fmtCell(r[task][e], r[task].camgpu)).join(' | ')} |`);
}
const failures = [...results].flatMap(([net, r]) => Object.entries(r).flatMap(([task, row]) =>
  Object.entries(row as Row).filter(([, c]) => c?.failed).map(([e, c]) => `${c!.wrong ? 'wrong' : 'failed'}: ${net} ${task} ${e}: ${c!.failed}`)));
console.log(`# camgpu vs the WebGPU peers${QUICK ? ' (--quick)' : ''}\n`);
console.log(`adapter: ${gpu.adapterInfo} (all WebGPU engines); ${cpus().length} CPUs, load ${load0.toFixed(2)} -> ${loadavg()[0].toFixed(2)}; `
  + `224x224, batch 1; wall ms per call (upload and read-back included), median of 3 after a warm-up (1 where a call takes over 20 s); (x camgpu) = peer / camgpu, above 1 camgpu is faster\n`);
console.log(table.join('\n'));
console.log(`\nversions: ${Object.entries(versions).map(([p, v]) => `${p} ${v}`).join(', ')}`);
for (const [net, title] of nets) {
  const r = results.get(net);
  if (r) console.log(`- checks, ${title}: ${(['forward', 'gradcam', 'seven'] as Task[]).flatMap((task) => ENGINES.filter((e) => r[task][e]?.check)
    .map((e) => `${e} ${TASK_NAMES[task]} ${r[task][e]!.check}`)).join('; ')}`);
}
for (const n of notes) console.log(`- ${n}`);
for (const f of failures) console.log(`- ${f}`);

const date = new Date().toISOString().slice(0, 10), file = `bench/results/peers-${date}${QUICK ? '-quick' : ''}.json`;
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), adapter: gpu.adapterInfo, quick: QUICK, cpus: cpus().length, load: [load0, loadavg()[0]],
  versions, tolerances: { logits: LOGIT_TOL, maps: MAP_TOL }, results: Object.fromEntries(results), notes, failures, totalS: (performance.now() - t0) / 1000 }, null, 1));
console.log(`\nwrote ${file} (${f1((performance.now() - t0) / 1000)} s)`);

// close: tfjs backends (and the device tfjs-webgpu requested), onnxruntime-web's device, camgpu's
const tfDevice = (tf.findBackend('webgpu') as unknown as { device?: GPUDevice } | null)?.device;
for (const b of ['webgpu', 'wasm']) if (tf.findBackend(b)) tf.removeBackend(b);
tfDevice?.destroy();
if (ortWebDevice) (await ortWeb.env.webgpu.device as GPUDevice).destroy();
await closeGpu();
