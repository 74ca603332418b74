// ONNX ModelProto -> camgpu Graph: op normalisation, BN folding, static shape inference and validation.
// Every error names the node, its op and the shapes involved.
import { parseOnnx, dataTypeName, OnnxModel, OnnxNode, OnnxTensor } from './onnx.js';
import { ActFn, Graph, ModelError, Node, Op, Shape, Tensor, fmt, inferShape, numel } from './graph.js';

export const SUPPORTED_OPS = ['Conv', 'Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Add', 'Mul',
  'MaxPool', 'AveragePool', 'GlobalAveragePool', 'BatchNormalization', 'Gemm', 'MatMul', 'Flatten', 'Reshape',
  'Squeeze', 'Unsqueeze', 'Concat', 'Dropout', 'Identity', 'Softmax', 'Constant', 'Shape', 'Gather'];

export class UnsupportedError extends ModelError {
  constructor(message: string) { super(message); this.name = 'UnsupportedError'; }
}

/** Marker for the (symbolic) batch size inside integer shape computations (Shape -> Gather -> Concat -> Reshape). */
const BATCH = -(2 ** 40);

export function importOnnx(bytes: Uint8Array): Graph { return importModel(parseOnnx(bytes)); }

/** Imports an already parsed model (the conformance tests turn graph inputs into initializers first). */
export function importModel(m: OnnxModel): Graph {
  if (m.opset && (m.opset < 7 || m.opset > 18)) throw new UnsupportedError(`ONNX opset ${m.opset} is not supported (opsets 7 to 18 are)`);
  return new Importer(m).run();
}

class Importer {
  g: Graph = { input: '', output: '', tensors: new Map(), nodes: [] };
  floats = new Map<string, { dims: number[]; data: Float32Array }>(); // constant float tensors, full ONNX shape
  ints = new Map<string, number[]>();                                  // constant integer tensors (shapes, axes)
  uses = new Map<string, number>();
  alias = new Map<string, string>();                                   // ONNX name -> IR tensor name (after folding)
  constructor(readonly m: OnnxModel) {}

  run(): Graph {
    const { m, g } = this;
    for (const t of m.initializers.values()) this.addConst(t);
    const inputs = m.inputs.filter((v) => !m.initializers.has(v.name));
    if (inputs.length !== 1) throw new UnsupportedError(`camgpu needs exactly one graph input, found ${inputs.length}: ${inputs.map((v) => v.name).join(', ')}`);
    const inp = inputs[0];
    if (inp.elemType !== 1) throw new UnsupportedError(`graph input '${inp.name}' is ${dataTypeName(inp.elemType)}; only float32 inputs are supported`);
    if (inp.dims.length < 2 || inp.dims.length > 4 || inp.dims.slice(1).some((d) => typeof d !== 'number' || d < 1))
      throw new UnsupportedError(`graph input '${inp.name}' has shape [${inp.dims}]; camgpu needs (N,C,H,W) (or (N,F)) with static sizes after the batch N`);
    g.input = inp.name;
    g.tensors.set(inp.name, { name: inp.name, shape: (inp.dims.slice(1) as number[]) });
    if (m.outputs.length !== 1) throw new UnsupportedError(`camgpu needs exactly one graph output, found ${m.outputs.length}: ${m.outputs.map((v) => v.name).join(', ')}`);
    for (const n of m.nodes) for (const i of n.inputs) if (i) this.uses.set(i, (this.uses.get(i) ?? 0) + 1);
    for (const n of m.nodes) this.node(n);
    g.output = this.name(m.outputs[0].name);
    if (!g.tensors.has(g.output) || g.tensors.get(g.output)!.data) throw new ModelError(`graph output '${m.outputs[0].name}' is not computed from the input`);
    return g;
  }

  addConst(t: OnnxTensor) {
    if (t.data instanceof Float32Array) this.floats.set(t.name, { dims: t.dims, data: t.data });
    else this.ints.set(t.name, Array.from(t.data as ArrayLike<number | bigint>, Number));
  }
  name(onnxName: string) { return this.alias.get(onnxName) ?? onnxName; }
  shape(node: OnnxNode, i: number): Shape {
    const t = this.g.tensors.get(this.name(node.inputs[i]));
    if (!t) throw new ModelError(`node '${node.name}' (${node.opType}) reads '${node.inputs[i]}', which is not computed from the graph input (constant subgraphs other than shapes are not supported)`);
    return t.shape;
  }
  isVar(n: string) { const t = this.g.tensors.get(this.name(n)); return !!t && !t.data; }
  constFloat(node: OnnxNode, i: number, what: string) {
    const c = this.floats.get(node.inputs[i] ?? '');
    if (!c) throw new UnsupportedError(`node '${node.name}' (${node.opType}): ${what} (input ${i} '${node.inputs[i]}') must be a constant float tensor`);
    return c;
  }
  constInts(node: OnnxNode, i: number, what: string): number[] {
    const c = this.ints.get(node.inputs[i] ?? '');
    if (!c) throw new UnsupportedError(`node '${node.name}' (${node.opType}): ${what} (input '${node.inputs[i]}') must be a constant (dynamic shapes are not supported)`);
    return c;
  }
  emit(node: OnnxNode, op: Op, inputs: string[], shape?: Shape) {
    const out = node.outputs[0];
    const n: Node = { name: node.name, source: node.opType, op, inputs: inputs.map((i) => this.name(i)), output: out };
    const s = shape ?? inferShape(n, n.inputs.map((i) => this.g.tensors.get(i)!.shape));
    this.g.tensors.set(out, { name: out, shape: s });
    this.g.nodes.push(n);
  }
  unsupported(node: OnnxNode, why: string): never {
    throw new UnsupportedError(`node '${node.name}': ${node.opType} ${why}`);
  }

  node(n: OnnxNode) {
    const a = (k: string) => n.attrs.get(k);
    const ai = (k: string, d: number) => a(k)?.i ?? d, af = (k: string, d: number) => a(k)?.f ?? d;
    const ints = (k: string, d: number[]) => a(k)?.ints ?? d;
    if (n.domain && n.domain !== 'ai.onnx') this.unsupported(n, `from domain '${n.domain}' is not supported (only the default ONNX domain)`);
    for (const extra of n.outputs.slice(1)) if (extra && this.uses.has(extra) && n.opType !== 'Dropout') this.unsupported(n, `output '${extra}' is used; only the first output is supported`);
    if (n.opType === 'Dropout' && n.outputs[1] && this.uses.has(n.outputs[1])) this.unsupported(n, 'mask output is used');
    // opset 12+: with training_mode true, Dropout masks at random and scales by 1/(1-ratio); camgpu runs it only as the inference identity
    if (n.opType === 'Dropout' && n.inputs[2]) this.unsupported(n, `with a training_mode input '${n.inputs[2]}' (only inference-mode Dropout, without that input, is supported)`);
    // integer shape arithmetic that torch emits for x.view(x.size(0), -1)
    if (n.opType === 'Constant') {
      const t = a('value')?.t; const vf = a('value_float')?.f, vi = a('value_int')?.i, vis = a('value_ints')?.ints;
      if (t) { t.name = n.outputs[0]; this.addConst(t); }
      else if (vf !== undefined) this.floats.set(n.outputs[0], { dims: [], data: Float32Array.of(vf) });
      else if (vi !== undefined || vis) this.ints.set(n.outputs[0], vis ?? [vi!]);
      else this.unsupported(n, 'without a tensor value');
      return;
    }
    if (n.opType === 'Shape') { this.ints.set(n.outputs[0], [BATCH, ...this.shape(n, 0)]); return; }
    if (this.ints.has(n.inputs[0]) && (n.opType === 'Gather' || n.opType === 'Unsqueeze' || n.opType === 'Concat' || n.opType === 'Squeeze')) {
      const v = this.ints.get(n.inputs[0])!;
      if (n.opType === 'Gather') { const idx = this.constInts(n, 1, 'indices'); this.ints.set(n.outputs[0], idx.map((i) => v[i < 0 ? i + v.length : i])); }
      else if (n.opType === 'Concat') this.ints.set(n.outputs[0], n.inputs.flatMap((i, k) => this.constInts(n, k, `input ${i}`)));
      else this.ints.set(n.outputs[0], v);
      return;
    }
    if (n.opType === 'Gather') this.unsupported(n, 'on activations is not supported (only on constant shapes)');

    // torch stores identical initializers once and links the copies with Identity nodes
    if ((n.opType === 'Identity' || n.opType === 'Dropout') && (this.floats.has(n.inputs[0]) || this.ints.has(n.inputs[0]))) {
      const f = this.floats.get(n.inputs[0]);
      if (f) this.floats.set(n.outputs[0], f); else this.ints.set(n.outputs[0], this.ints.get(n.inputs[0])!);
      return;
    }
    const x = n.inputs[0];
    if (!this.isVar(x) && n.opType !== 'Add' && n.opType !== 'Mul') {
      if (this.floats.has(x)) this.unsupported(n, `on a constant input '${x}' is not supported (fold constants before export)`);
      this.shape(n, 0);
    }
    switch (n.opType) {
      case 'Conv': {
        const w = this.constFloat(n, 1, 'weight');
        if (w.dims.length !== 4) this.unsupported(n, `weight of shape [${w.dims}] (only 2-D convolution is supported)`);
        const [cout, , kh, kw] = w.dims; const group = ai('group', 1);
        const b = n.inputs[2] ? this.constFloat(n, 2, 'bias').data : new Float32Array(cout);
        const s = ints('strides', [1, 1]), d = ints('dilations', [1, 1]);
        const pad = this.pads(n, this.shape(n, 0), [kh, kw], s, d);
        this.emit(n, { kind: 'conv', w: Float32Array.from(w.data), b: Float32Array.from(b), cout, kh, kw, stride: [s[0], s[1]], pad, dil: [d[0], d[1]], group }, [x]);
        return;
      }
      case 'Relu': return this.emit(n, { kind: 'act', fn: 'relu', alpha: 0, beta: 0 }, [x]);
      case 'Sigmoid': return this.emit(n, { kind: 'act', fn: 'sigmoid', alpha: 0, beta: 0 }, [x]);
      case 'LeakyRelu': return this.emit(n, { kind: 'act', fn: 'leakyrelu', alpha: af('alpha', 0.01), beta: 0 }, [x]);
      case 'HardSigmoid': return this.emit(n, { kind: 'act', fn: 'hardsigmoid', alpha: af('alpha', 0.2), beta: af('beta', 0.5) }, [x]);
      case 'HardSwish': return this.emit(n, { kind: 'act', fn: 'hardswish', alpha: 1 / 6, beta: 0.5 }, [x]);
      case 'Clip': {
        const bound = (i: number, attr: string, d: number) => n.inputs[i] ? this.constFloat(n, i, attr).data[0] : af(attr, d);
        const lo = bound(1, 'min', -3.4e38), hi = bound(2, 'max', 3.4e38);
        return this.emit(n, { kind: 'act', fn: 'clip' as ActFn, alpha: lo, beta: hi }, [x]);
      }
      case 'Add': case 'Mul': {
        const ins = n.inputs.map((i) => this.operand(n, i));
        if (!ins.some((i) => this.isVar(i))) this.unsupported(n, 'of two constants (fold constants before export)');
        return this.emit(n, { kind: n.opType === 'Add' ? 'add' : 'mul' }, ins);
      }
      case 'MaxPool': case 'AveragePool': {
        const k = ints('kernel_shape', []);
        if (k.length !== 2) this.unsupported(n, `with kernel_shape [${k}] (only 2-D pooling)`);
        if (ai('storage_order', 0)) this.unsupported(n, 'with storage_order=1');
        const s = ints('strides', [1, 1]), d = ints('dilations', [1, 1]);
        if (n.opType === 'AveragePool' && d.some((v) => v !== 1)) this.unsupported(n, `with dilations [${d}] (only MaxPool takes dilations)`);
        const pad = this.pads(n, this.shape(n, 0), k, s, d);
        return this.emit(n, { kind: n.opType === 'MaxPool' ? 'maxpool' : 'avgpool', kh: k[0], kw: k[1], stride: [s[0], s[1]], pad,
          dil: [d[0], d[1]], ceil: ai('ceil_mode', 0) === 1, countIncludePad: ai('count_include_pad', 0) === 1 }, [x]);
      }
      case 'GlobalAveragePool': return this.emit(n, { kind: 'gap' }, [x]);
      case 'BatchNormalization': return this.batchNorm(n, af('epsilon', 1e-5));
      case 'Gemm': {
        if (ai('transA', 0)) this.unsupported(n, 'with transA=1 (it would mix the batch dimension)');
        const B = this.constFloat(n, 1, 'B'); const alpha = af('alpha', 1), beta = af('beta', 1);
        if (B.dims.length !== 2) this.unsupported(n, `with B of shape [${B.dims}]`);
        const w = ai('transB', 0) ? B.data.map((v) => v * alpha) : transpose(B.data, B.dims[0], B.dims[1], alpha);
        const out = ai('transB', 0) ? B.dims[0] : B.dims[1], inn = w.length / out;
        let b = new Float32Array(out);
        if (n.inputs[2]) {
          const C = this.constFloat(n, 2, 'C');
          const perOutput = C.dims.length === 1 || (C.dims.length === 2 && C.dims[0] === 1); // [out] or [1,out]; (M,1) would be per sample
          if (C.data.length === 1) b.fill(C.data[0] * beta); else if (C.data.length === out && perOutput) b = C.data.map((v) => v * beta);
          else this.unsupported(n, `with C of shape [${C.dims}] (needs (${out}) or a scalar)`);
        }
        return this.emit(n, { kind: 'linear', w, b, out, in: inn }, [x]);
      }
      case 'MatMul': {
        const B = this.constFloat(n, 1, 'B (the right-hand side)');
        if (B.dims.length !== 2) this.unsupported(n, `with B of shape [${B.dims}] (needs a 2-D constant)`);
        return this.emit(n, { kind: 'linear', w: transpose(B.data, B.dims[0], B.dims[1], 1), b: new Float32Array(B.dims[1]), out: B.dims[1], in: B.dims[0] }, [x]);
      }
      case 'Flatten': {
        const axis = ai('axis', 1), s = this.shape(n, 0);
        if (axis !== 1 && axis !== -s.length) this.unsupported(n, `with axis=${axis} (only axis=1 keeps the batch dimension)`);
        return this.emit(n, { kind: 'alias' }, [x], [numel(s)]);
      }
      case 'Reshape': {
        const s = this.shape(n, 0), t = this.constInts(n, 1, 'shape');
        if (!(t[0] === BATCH || t[0] === -1 || t[0] === 0 || t[0] === 1))
          this.unsupported(n, `to [${t.map((v) => v === BATCH ? 'N' : v)}]: the first dimension must stay the batch`);
        const rest = t.slice(1).map((v, i) => v === 0 ? s[i] : v === BATCH ? this.unsupported(n, 'moves the batch dimension') : v);
        const known = rest.filter((v) => v !== -1).reduce((p, v) => p * v, 1);
        const out = rest.map((v) => v === -1 ? numel(s) / known : v);
        if (t[0] === -1 && rest.includes(-1)) this.unsupported(n, 'with two -1 dimensions');
        if (numel(out) !== numel(s)) this.unsupported(n, `of per-sample shape ${fmt(s)} to ${fmt(out)} changes the element count`);
        return this.emit(n, { kind: 'alias' }, [x], out);
      }
      case 'Squeeze': case 'Unsqueeze': {
        const s = this.shape(n, 0);
        const axes = n.inputs[1] ? this.constInts(n, 1, 'axes') : ints('axes', []);
        const rank = n.opType === 'Squeeze' ? s.length + 1 : s.length + 1 + axes.length;
        const ax = axes.map((v) => (v < 0 ? v + rank : v));
        if (ax.includes(0)) this.unsupported(n, 'on the batch axis 0');
        let out: Shape;
        if (n.opType === 'Squeeze') {
          out = ax.length ? s.filter((_, i) => !ax.includes(i + 1)) : s.filter((d) => d !== 1);
          for (const i of ax) if (s[i - 1] !== 1) this.unsupported(n, `of axis ${i} with size ${s[i - 1]}`);
        } else { out = s.slice(); for (const i of ax.sort((p, q) => p - q)) out.splice(i - 1, 0, 1); }
        return this.emit(n, { kind: 'alias' }, [x], out);
      }
      case 'Dropout': case 'Identity': return this.emit(n, { kind: 'alias' }, [x], this.shape(n, 0).slice());
      case 'Concat': {
        const s = this.shape(n, 0), axis = ai('axis', 1);
        if (axis !== 1 && axis !== 1 - (s.length + 1)) this.unsupported(n, `with axis=${axis} (only channel axis 1)`);
        for (const i of n.inputs) if (!this.isVar(i)) this.unsupported(n, `of constant input '${i}' (only activations can be concatenated)`);
        return this.emit(n, { kind: 'concat' }, n.inputs);
      }
      case 'Softmax': {
        const s = this.shape(n, 0), axis = ai('axis', this.m.opset >= 13 ? -1 : 1);
        if (s.length !== 1 || (axis !== 1 && axis !== -1)) this.unsupported(n, `over axis ${axis} of ${fmt(s)} (only the class axis of (N,F))`);
        if (!this.m.outputs.some((o) => o.name === n.outputs[0])) this.unsupported(n, 'is only supported as the last node (at the graph output)');
        return this.emit(n, { kind: 'softmax' }, [x]);
      }
      default:
        throw new UnsupportedError(`node '${n.name}': op ${n.opType} is not supported. Supported ops: ${SUPPORTED_OPS.join(', ')}`);
    }
  }

  /** An Add/Mul operand: an activation, or a constant turned into a per-sample constant tensor. */
  operand(n: OnnxNode, name: string): string {
    if (this.isVar(name)) return name;
    const c = this.floats.get(name);
    if (!c) { this.shape(n, n.inputs.indexOf(name)); return name; }
    let dims = c.dims;
    const other = n.inputs.find((i) => i !== name && this.isVar(i));
    const rank = other ? this.g.tensors.get(this.name(other))!.shape.length + 1 : dims.length;
    if (dims.length === rank) { if (dims[0] !== 1) this.unsupported(n, `constant '${name}' of shape [${dims}] varies along the batch axis`); dims = dims.slice(1); }
    if (!this.g.tensors.has(name)) this.g.tensors.set(name, { name, shape: dims.slice(), data: c.data });
    return name;
  }

  /** pads [top, left, bottom, right] from pads or auto_pad (SAME_UPPER puts the extra pixel at the end). */
  pads(n: OnnxNode, x: Shape, k: number[], s: number[], d: number[]): [number, number, number, number] {
    const auto = n.attrs.get('auto_pad')?.s ?? 'NOTSET';
    if (auto === 'NOTSET') { const p = n.attrs.get('pads')?.ints ?? [0, 0, 0, 0]; return [p[0], p[1], p[2], p[3]]; }
    if (auto === 'VALID') return [0, 0, 0, 0];
    if (auto !== 'SAME_UPPER' && auto !== 'SAME_LOWER') this.unsupported(n, `with auto_pad=${auto}`);
    const p = [0, 1].map((i) => Math.max(0, (Math.ceil(x[i + 1] / s[i]) - 1) * s[i] + d[i] * (k[i] - 1) + 1 - x[i + 1]));
    const lo = p.map((v) => (auto === 'SAME_UPPER' ? Math.floor(v / 2) : Math.ceil(v / 2)));
    return [lo[0], lo[1], p[0] - lo[0], p[1] - lo[1]];
  }

  /** BatchNormalization: folded into the producing conv when that conv feeds only this node, else a per-channel affine. */
  batchNorm(n: OnnxNode, eps: number) {
    if (n.attrs.get('training_mode')?.i) this.unsupported(n, 'with training_mode=1');
    const [scale, bias, mean, vari] = [1, 2, 3, 4].map((i) => this.constFloat(n, i, ['scale', 'B', 'mean', 'var'][i - 1]).data);
    const mul = scale.map((s, c) => s / Math.sqrt(vari[c] + eps)), add = bias.map((b, c) => b - mean[c] * mul[c]);
    const x = this.name(n.inputs[0]);
    const prev = this.g.nodes[this.g.nodes.length - 1];
    if (prev && prev.output === x && prev.op.kind === 'conv' && this.uses.get(n.inputs[0]) === 1 && !this.m.outputs.some((o) => o.name === n.inputs[0])) {
      const op = prev.op, per = op.w.length / op.cout;
      for (let c = 0; c < op.cout; c++) { for (let i = 0; i < per; i++) op.w[c * per + i] *= mul[c]; op.b[c] = op.b[c] * mul[c] + add[c]; }
      this.alias.set(n.outputs[0], x);
      return;
    }
    const s = this.shape(n, 0);
    if (s.length < 1 || mul.length !== s[0]) this.unsupported(n, `with ${mul.length} channels on input ${fmt(s)}`);
    this.emit(n, { kind: 'affine', scale: mul, shift: add }, [x]);
  }
}

function transpose(a: Float32Array, rows: number, cols: number, scale: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c] * scale;
  return t;
}

export type { Tensor };
