// ONNX ModelProto -> camgpu Graph: op normalisation, BN folding, static shape inference and validation.
// Every error names the node, its op and the shapes involved.
import { parseOnnx, attrTypeName, dataTypeName, OnnxAttr, OnnxModel, OnnxNode, OnnxTensor } from './onnx.js';
import { Graph, batchMultiple, ModelError, Node, Op, Shape, Tensor, numel } from './graph.js';

/** Values per sample of any one tensor: 2^28 float32 = 1 GiB, past every adapter's largest storage binding. */
export const MAX_TENSOR_ELEMS = 2 ** 28;
import { CONST_FIRST, ONNX_IMPORTS, inferShape } from './ops/index.js';
import { CTensor, FOLD, FoldError } from './fold.js';
import { BatchAxis, batchOf, handles, importBatchAware, onnxDims, showDims } from './batchaxis.js';

/** ONNX op types the importer takes: the op table's imports and the constant folding below. */
export const SUPPORTED_OPS = [...new Set([...Object.keys(ONNX_IMPORTS), 'Constant', 'Shape'])];
/** ONNX op types evaluated at import when all their inputs are constants (src/fold.ts), whether or not the GPU has them. */
export const FOLDED_OPS = [...Object.keys(FOLD), 'Shape', 'Constant'];

export interface ImportOptions {
  /** The full input shape [N, C, H, W] (N is ignored: plans choose the batch) for inputs with symbolic dimensions;
   *  a static dimension must agree. */
  inputShape?: number[];
}

/** The attributes ONNX defines for each op camgpu reads (opsets 7 to 20); any other attribute is an error, as in
 *  onnx.checker, so a misspelt 'pads' never silently becomes the default. */
const ATTRS: Record<string, string[]> = {
  Conv: ['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides'],
  MaxPool: ['auto_pad', 'ceil_mode', 'dilations', 'kernel_shape', 'pads', 'storage_order', 'strides'],
  AveragePool: ['auto_pad', 'ceil_mode', 'count_include_pad', 'dilations', 'kernel_shape', 'pads', 'strides'],
  LeakyRelu: ['alpha'], HardSigmoid: ['alpha', 'beta'], Elu: ['alpha'], Selu: ['alpha', 'gamma'], Celu: ['alpha'], Clip: ['min', 'max'],
  Gelu: ['approximate'], BatchNormalization: ['epsilon', 'momentum', 'spatial', 'training_mode'],
  Add: ['axis', 'broadcast'], Sub: ['axis', 'broadcast'], Mul: ['axis', 'broadcast'], Div: ['axis', 'broadcast'],
  Gemm: ['alpha', 'beta', 'transA', 'transB', 'broadcast'], Dropout: ['ratio', 'seed'], Flatten: ['axis'], Reshape: ['allowzero'],
  Squeeze: ['axes'], Unsqueeze: ['axes'], Concat: ['axis'], Transpose: ['perm'], Slice: ['axes', 'ends', 'starts'],
  Split: ['axis', 'split', 'num_outputs'], Pad: ['mode', 'pads', 'value'], Gather: ['axis'],
  Softmax: ['axis'], LogSoftmax: ['axis'], LayerNormalization: ['axis', 'epsilon', 'stash_type'], InstanceNormalization: ['epsilon'],
  Constant: ['value', 'value_float', 'value_floats', 'value_int', 'value_ints', 'value_string', 'value_strings', 'sparse_value'],
  Resize: ['antialias', 'axes', 'coordinate_transformation_mode', 'cubic_coeff_a', 'exclude_outside', 'extrapolation_value', 'keep_aspect_ratio_policy', 'mode', 'nearest_mode'],
  Upsample: ['mode', 'scales'], ConvTranspose: ['auto_pad', 'dilations', 'group', 'kernel_shape', 'output_padding', 'output_shape', 'pads', 'strides'],
  LRN: ['alpha', 'beta', 'bias', 'size'], DepthToSpace: ['blocksize', 'mode'], SpaceToDepth: ['blocksize'],
  Shape: ['start', 'end'], Cast: ['to', 'saturate'], ConstantOfShape: ['value'], Mod: ['fmod'], ScatterND: ['reduction'],
  ...Object.fromEntries(['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceL2', 'ReduceL1', 'ReduceSumSquare'].map((k) => [k, ['axes', 'keepdims', 'noop_with_empty_axes']])),
};
const NO_ATTRS = ['Relu', 'Sigmoid', 'Tanh', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Neg', 'Abs', 'Erf', 'Softplus', 'Softsign', 'Mish', 'HardSwish',
  'PRelu', 'Pow', 'Sum', 'Max', 'Min', 'Mean', 'GlobalAveragePool', 'GlobalMaxPool', 'Identity', 'Expand', 'Tile', 'MatMul', 'Range', 'Where',
  'Equal', 'Not', 'And', 'Or', 'Less', 'Greater', 'Floor', 'Ceil'];
for (const k of NO_ATTRS) ATTRS[k] = [];

/** Ops that take exactly one input. */
const UNARY = ['Relu', 'Sigmoid', 'Tanh', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Neg', 'Abs', 'Erf', 'Softplus', 'Softsign', 'Mish', 'HardSwish',
  'LeakyRelu', 'HardSigmoid', 'Elu', 'Selu', 'Celu', 'Gelu', 'GlobalAveragePool', 'GlobalMaxPool', 'MaxPool', 'AveragePool', 'Identity', 'Flatten',
  'Transpose', 'Softmax', 'LogSoftmax', 'Shape', 'Cast', 'Not', 'Floor', 'Ceil', 'ConstantOfShape', 'LRN', 'DepthToSpace', 'SpaceToDepth'];
/** [min, max] inputs of each op (max -1: any number; null: not checked here, an op camgpu does not know is refused as
 *  unsupported); optional inputs may be given as ''. */
function arity(op: string, opset: number): [number, number] | null {
  const table: Record<string, [number, number]> = {
    Conv: [2, 3], Gemm: [2, 3], MatMul: [2, 2], Add: [2, 2], Sub: [2, 2], Mul: [2, 2], Div: [2, 2], Pow: [2, 2], PRelu: [2, 2], Mod: [2, 2],
    Equal: [2, 2], Less: [2, 2], Greater: [2, 2], And: [2, 2], Or: [2, 2], Where: [3, 3], Range: [3, 3], ScatterND: [3, 3],
    BatchNormalization: [5, 5], InstanceNormalization: [3, 3], LayerNormalization: [2, 3], Expand: [2, 2], Tile: [2, 2], Gather: [2, 2],
    Reshape: opset >= 5 ? [2, 2] : [1, 1], Slice: opset >= 10 ? [3, 5] : [1, 1], Pad: opset >= 11 ? [2, 4] : [1, 1],
    Clip: opset >= 11 ? [1, 3] : [1, 1], Dropout: [1, 3], Split: [1, 2], Squeeze: [1, 2], Unsqueeze: [1, 2], Constant: [0, 0],
    Sum: [1, -1], Max: [1, -1], Min: [1, -1], Mean: [1, -1], Concat: [1, -1],
    Resize: opset >= 11 ? [1, 4] : [2, 2], Upsample: opset >= 9 ? [2, 2] : [1, 1], ConvTranspose: [2, 3],
    ...Object.fromEntries(['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceL2', 'ReduceL1', 'ReduceSumSquare'].map((k) => [k, [1, 2] as [number, number]])),
  };
  return table[op] ?? (UNARY.includes(op) ? [1, 1] : null);
}

export class UnsupportedError extends ModelError {
  constructor(message: string) { super(message); this.name = 'UnsupportedError'; }
}

export function importOnnx(bytes: Uint8Array, o: ImportOptions = {}): Graph { return importModel(parseOnnx(bytes), o); }

/** Imports an already parsed model (the conformance tests turn graph inputs into initializers first). */
export function importModel(m: OnnxModel, o: ImportOptions = {}): Graph {
  // 20: Gelu. Opsets 19 and 20 change no op camgpu imports but by new attribute values, which each importer refuses
  if (m.opset && (m.opset < 7 || m.opset > 20)) throw new UnsupportedError(`ONNX opset ${m.opset} is not supported (opsets 7 to 20 are)`);
  return new Importer(m, o).run();
}

/** ONNX -> IR for one model; the op records (src/ops/) call its helpers to read, check and emit nodes. */
export class Importer {
  g: Graph = { input: '', output: '', tensors: new Map(), nodes: [] };
  floats = new Map<string, { dims: number[]; data: Float32Array }>(); // constant float tensors, full ONNX shape
  ints = new Map<string, { dims: number[]; data: number[] }>();       // constant integer tensors (shapes, axes), full ONNX shape
  uses = new Map<string, number>();
  unreadable = new Map<string, string>();                             // constants of a type camgpu does not read -> type name
  alias = new Map<string, string>();                                   // ONNX name -> IR tensor name (after folding)
  batch = new Map<string, BatchAxis>();                                // activations whose batch axis is not ONNX axis 0 alone (src/batchaxis.ts)
  batchConsts = new Set<string>();                                     // constants Expand-ed over the batch: the same for every sample
  constructor(readonly m: OnnxModel, readonly o: ImportOptions = {}) {}
  get opset() { return this.m.opset; }

  run(): Graph {
    const { m, g } = this;
    for (const t of m.initializers.values()) this.addConst(t);
    const inputs = m.inputs.filter((v) => !m.initializers.has(v.name));
    if (inputs.length !== 1) throw new UnsupportedError(`camgpu needs exactly one graph input, found ${inputs.length}: ${inputs.map((v) => v.name).join(', ')}`);
    const inp = inputs[0];
    if (inp.elemType !== 1) throw new UnsupportedError(`graph input '${inp.name}' is ${dataTypeName(inp.elemType)}; only float32 inputs are supported`);
    g.input = inp.name;
    g.tensors.set(inp.name, { name: inp.name, shape: this.inputShape(inp.name, inp.dims) });
    if (m.outputs.length !== 1) throw new UnsupportedError(`camgpu needs exactly one graph output, found ${m.outputs.length}: ${m.outputs.map((v) => v.name).join(', ')}`);
    this.checkGraph(inp.name);
    for (const n of m.nodes) for (const i of n.inputs) if (i) this.uses.set(i, (this.uses.get(i) ?? 0) + 1);
    for (const n of m.nodes) this.node(n);
    g.output = this.name(m.outputs[0].name);
    if (g.output === g.input) throw new ModelError(`graph output '${m.outputs[0].name}' is the graph input '${g.input}': no node computes it`);
    if (!g.tensors.has(g.output) || g.tensors.get(g.output)!.data) throw new ModelError(`graph output '${m.outputs[0].name}' is not computed from the input`);
    const moved = this.batch.get(g.output), last = g.nodes.find((n) => n.output === g.output);
    if (moved && last) throw new UnsupportedError(`node '${last.name}': ${last.source} gives the graph output '${m.outputs[0].name}' ${showDims(g.tensors.get(g.output)!.shape, moved)} with the batch at axis ${moved.axis}; camgpu needs the batch at axis 0 of the output`);
    return g;
  }

  /**
   * The graph as ONNX requires it, before any node is imported: nodes in topological order (every input the graph
   * input, an initializer or an earlier node's output, so the graph is a DAG), every tensor written once, each op's
   * input count and attributes as the op defines them, the graph output produced by a node. One pass, linear in size.
   */
  checkGraph(input: string) {
    const { m } = this, known = new Set<string>([input, ...m.initializers.keys()]);
    const out = m.outputs[0].name;
    if (!out) throw new ModelError('the graph output has no name');
    for (const n of m.nodes) {
      const what = `node '${n.name}' (${n.opType})`;
      const [lo, hi] = arity(n.opType, this.opset) ?? [0, -1], given = n.inputs.length;
      if (given < lo || (hi >= 0 && given > hi))
        throw new ModelError(`${what} has ${given} input${given === 1 ? '' : 's'}; ${n.opType} takes ${lo === hi ? lo : hi < 0 ? `at least ${lo}` : `${lo} to ${hi}`}`);
      n.inputs.forEach((i, k) => {
        if (!i && k < lo) throw new ModelError(`${what}: required input ${k} is empty`);
        if (i && !known.has(i)) throw new ModelError(`${what} reads '${i}', which no earlier node, initializer or graph input produces (the nodes must be in topological order, without cycles)`);
      });
      if (!n.outputs.length || !n.outputs[0]) throw new ModelError(`${what} has no output`);
      for (const o of n.outputs) {
        if (!o) continue;
        if (known.has(o)) throw new ModelError(`${what} writes '${o}', which ${o === input ? 'is the graph input' : m.initializers.has(o) ? 'is an initializer' : 'another node already writes'}`);
        known.add(o);
      }
      // onnx.proto: "the type field MUST be present for this version of the IR" (IR 2 on); ONNX Runtime refuses it too
      if ((m.irVersion ?? 0) >= 2) for (const a of n.attrs.values()) if (!a.type) throw new ModelError(`${what}: attribute '${a.name}' has no type field (required from IR version 2; this file is IR ${m.irVersion})`);
      const allowed = ATTRS[n.opType];
      if (allowed) for (const k of n.attrs.keys()) if (!allowed.includes(k))
        throw new ModelError(`${what}: unknown attribute '${k}' (${n.opType} takes ${allowed.length ? allowed.join(', ') : 'no attributes'})`);
    }
    if (!known.has(out) || out === input || m.initializers.has(out))
      throw new ModelError(`graph output '${out}' is ${out === input ? 'the graph input: no node computes it' : m.initializers.has(out) ? 'an initializer: no node computes it' : 'not produced by any node'}`);
  }

  /** The per-sample input shape: static dims as declared, symbolic ones from ImportOptions.inputShape. */
  inputShape(name: string, dims: (number | string)[]): Shape {
    const given = this.o.inputShape, sym = (d: number | string) => typeof d !== 'number' || d < 1;
    if (dims.length < 2 || dims.length > 4) throw new UnsupportedError(`graph input '${name}' has shape [${dims}]; camgpu needs (N,C,H,W) (or (N,F), (N,C,L))`);
    if (given && given.length !== dims.length) throw new ModelError(`input shape ${given.join('x')} has ${given.length} dimensions; graph input '${name}' has ${dims.length} ([${dims}])`);
    return dims.slice(1).map((d, i) => {
      const g = given?.[i + 1];
      if (g !== undefined && (!Number.isInteger(g) || g < 1)) throw new ModelError(`input shape ${given!.join('x')}: dimension ${i + 1} must be a positive integer`);
      if (!sym(d)) {
        if (g !== undefined && g !== d) throw new ModelError(`graph input '${name}' has static dimension ${i + 1} = ${d}; the input shape ${given!.join('x')} says ${g}`);
        return d as number;
      }
      if (g === undefined) throw new ModelError(`graph input '${name}' has symbolic dimension ${i + 1} ('${d || '?'}') in [${dims.map((v) => v || '?').join(',')}]; give its size with --input-shape ${dims.map((v, k) => (k === 0 ? 1 : typeof v === 'number' && v > 0 ? v : k === 2 ? 'H' : k === 3 ? 'W' : 'D')).join('x')} (API: LoadOptions.inputShape)`);
      return g;
    });
  }

  addConst(t: OnnxTensor) {
    if (t.data.length !== t.dims.reduce((p, v) => p * v, 1)) { this.unreadable.set(t.name, dataTypeName(t.dataType)); return; }
    if (t.data instanceof Float32Array) this.floats.set(t.name, { dims: t.dims, data: t.data });
    else this.ints.set(t.name, { dims: t.dims, data: Array.from(t.data as ArrayLike<number | bigint>, Number) });
  }
  /** A constant as a fold input (undefined when the name is not a constant). */
  constant(name: string): CTensor | undefined {
    const f = this.floats.get(name);
    if (f) return { dims: f.dims, data: Array.from(f.data), int: false };
    const i = this.ints.get(name);
    return i && { dims: i.dims, data: i.data, int: true };
  }
  name(onnxName: string) { return this.alias.get(onnxName) ?? onnxName; }
  shape(node: OnnxNode, i: number): Shape {
    const t = this.g.tensors.get(this.name(node.inputs[i]));
    if (!t) throw new ModelError(`node '${node.name}' (${node.opType}) reads '${node.inputs[i]}', which is not computed from the graph input (constant subgraphs other than shapes are not supported)`);
    return t.shape;
  }
  isVar(n: string) { const t = this.g.tensors.get(this.name(n)); return !!t && !t.data; }
  constFloat(node: OnnxNode, i: number, what: string) {
    const name = node.inputs[i] ?? '', c = this.floats.get(name);
    if (!name) throw new UnsupportedError(`node '${node.name}' (${node.opType}): ${what} (input ${i}) is missing`);
    if (!c) {
      const t = this.m.initializers.get(name), why = t ? ` ('${name}' is ${dataTypeName(t.dataType)})` : this.ints.has(name) ? ` ('${name}' is an integer constant)` : this.isVar(name) ? ` ('${name}' is computed from the input)` : '';
      throw new UnsupportedError(`node '${node.name}' (${node.opType}): ${what} (input ${i} '${name}') must be a constant float tensor${why}`);
    }
    return c;
  }
  constInts(node: OnnxNode, i: number, what: string): number[] {
    const name = node.inputs[i] ?? '', c = this.ints.get(name);
    if (!name) throw new UnsupportedError(`node '${node.name}' (${node.opType}): ${what} (input ${i}) is missing`);
    if (!c) throw new UnsupportedError(`node '${node.name}' (${node.opType}): ${what} (input '${name}') must be a constant integer tensor${this.isVar(name) ? ' (it is computed from the image here)' : this.floats.has(name) ? ' (it is a float tensor)' : ''}`);
    return c.data;
  }
  /** An IR node for an ONNX node (out and name default to its first output and its name; Split emits one per output). */
  emit(node: OnnxNode, op: Op, inputs: string[], shape?: Shape, out = node.outputs[0], name = node.name) {
    const n: Node = { name, source: node.opType, op, inputs: inputs.map((i) => this.name(i)), output: out };
    const s = shape ?? inferShape(n, n.inputs.map((i) => this.g.tensors.get(i)!.shape));
    // a tensor no GPU buffer could hold is refused here, by name, before anything is sized from it (a mutated pad or
    // stride must not reach an allocation as a 5e9-element typed array)
    if (numel(s) > MAX_TENSOR_ELEMS) throw new ModelError(`node '${name}' (${node.opType}): output '${out}' would have shape (N,${s.join(',')}), ${numel(s).toExponential(2)} values per sample; the limit is ${MAX_TENSOR_ELEMS} (1 GiB of float32)`);
    this.g.tensors.set(out, { name: out, shape: s });
    this.g.nodes.push(n);
  }
  unsupported(node: OnnxNode, why: string): never {
    throw new UnsupportedError(`node '${node.name}': ${node.opType} ${why}`);
  }

  node(n: OnnxNode) {
    const a = (k: string) => n.attrs.get(k);
    if (n.domain && n.domain !== 'ai.onnx') this.unsupported(n, `from domain '${n.domain}' is not supported (only the default ONNX domain)`);
    for (const extra of n.outputs.slice(1)) if (extra && this.uses.has(extra) && n.opType !== 'Dropout' && n.opType !== 'Split' && n.opType !== 'LayerNormalization') this.unsupported(n, `output '${extra}' is used; only the first output is supported`);
    if (n.opType === 'Dropout' && n.outputs[1] && this.uses.has(n.outputs[1])) this.unsupported(n, 'mask output is used');
    // opset 12+: with training_mode true, Dropout masks at random and scales by 1/(1-ratio); camgpu runs it only as the inference identity
    // a constant false training_mode is inference; so is training with a constant ratio 0 (torchvision 0.14's Swin
    // attention dropout: training=True, p=0: no element dropped, scale 1/(1-0))
    const zero = (i: string | undefined, m: Map<string, { data: ArrayLike<number> }>) => !!i && (m.get(i)?.data.length ?? 0) > 0 && Array.from(m.get(i)!.data).every((v) => v === 0);
    if (n.opType === 'Dropout' && n.inputs[2] && !zero(n.inputs[2], this.ints) && !zero(n.inputs[1], this.floats))
      this.unsupported(n, `with a training_mode input '${n.inputs[2]}' (only inference-mode Dropout: without that input, with a constant false, or with a constant ratio 0)`);
    if (n.opType === 'Constant') {
      const t = a('value')?.t, vf = a('value_float')?.f, vfs = a('value_floats')?.floats, vi = a('value_int')?.i, vis = a('value_ints')?.ints;
      if (t) { t.name = n.outputs[0]; this.addConst(t); }
      else if (vf !== undefined || vfs) this.floats.set(n.outputs[0], { dims: vfs ? [vfs.length] : [], data: Float32Array.from(vfs ?? [vf!]) });
      else if (vi !== undefined || vis) this.ints.set(n.outputs[0], { dims: vis ? [vis.length] : [], data: vis ?? [vi!] });
      else this.unsupported(n, 'without a tensor value');
      return;
    }
    if (n.opType === 'Shape') {
      const c = this.floats.get(n.inputs[0]) ?? this.ints.get(n.inputs[0]), full = c ? c.dims : onnxDims(this.shape(n, 0), batchOf(this, n.inputs[0]));
      const r = full.length, at = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
      const start = at(this.attrs(n).i('start', 0)), end = at(this.attrs(n).i('end', r));
      this.ints.set(n.outputs[0], { dims: [Math.max(end - start, 0)], data: full.slice(start, end) });
      return;
    }
    for (const i of n.inputs) if (this.unreadable.has(i)) this.unsupported(n, `reads constant '${i}' of type ${this.unreadable.get(i)}, which camgpu does not read`);
    // every input a constant: evaluated here (src/fold.ts)
    const fold = FOLD[n.opType === 'Dropout' ? 'Identity' : n.opType];
    if (fold && n.inputs.every((i) => !i || this.floats.has(i) || this.ints.has(i))) {
      let out: CTensor;
      try { out = fold(n.inputs.map((i) => (i ? this.constant(i) : undefined)), this.attrs(n), n, this.m.opset); }
      catch (e) { if (e instanceof FoldError) this.unsupported(n, `on constants: ${e.message}`); throw e; }
      if (out.data.length !== out.dims.reduce((p, v) => p * v, 1)) this.unsupported(n, 'on constants: internal size mismatch');
      if (out.int) this.ints.set(n.outputs[0], { dims: out.dims, data: out.data });
      else this.floats.set(n.outputs[0], { dims: out.dims, data: Float32Array.from(out.data) });
      if (n.opType === 'Expand' && this.ints.get(n.inputs[1])?.data.some(batchMultiple)) this.batchConsts.add(n.outputs[0]);
      return;
    }

    // Identity (and inference Dropout) of an activation is the same tensor under a new name: no IR node, so a chain of
    // them costs nothing in the plan
    if ((n.opType === 'Identity' || n.opType === 'Dropout') && this.isVar(n.inputs[0]) && !this.isGraphOutput(n.outputs[0])) { this.alias.set(n.outputs[0], this.name(n.inputs[0])); return; }
    const imp = ONNX_IMPORTS[n.opType];
    if (!imp) throw new UnsupportedError(`node '${n.name}': op ${n.opType} is not supported. Supported ops: ${SUPPORTED_OPS.join(', ')}`);
    const x = n.inputs[0];
    if (!this.isVar(x) && !CONST_FIRST.has(n.opType)) {
      if (this.floats.has(x)) this.unsupported(n, `on a constant input '${x}' is not supported (fold constants before export)`);
      this.shape(n, 0);
    }
    if (handles(this, n)) return importBatchAware(this, n); // the batch axis may move (src/batchaxis.ts)
    imp(this, n);
  }

  /** Typed attribute getters with defaults: an attribute of another type is an error naming it, never the default;
   *  floats must be finite. */
  attrs(n: OnnxNode) {
    const get = <T>(k: string, d: T, want: string, v: (a: OnnxAttr) => T | undefined): T => {
      const a = n.attrs.get(k);
      if (!a) return d;
      const x = v(a);
      if (x === undefined) this.unsupported(n, `attribute ${k} must be ${want}, got ${a.type ? attrTypeName(a.type) : 'no value'}`);
      return x;
    };
    return {
      i: (k: string, d: number) => get(k, d, 'an INT', (a) => a.i),
      f: (k: string, d: number) => {
        const v = get(k, d, 'a FLOAT', (a) => a.f);
        if (!Number.isFinite(v)) this.unsupported(n, `attribute ${k} = ${v} (must be finite)`);
        return v;
      },
      s: (k: string, d: string) => get(k, d, 'a STRING', (a) => a.s),
      ints: (k: string, d: number[]) => get(k, d, 'INTS', (a) => a.ints),
    };
  }
  /** An int attribute that must lie in [lo, hi]. */
  intIn(n: OnnxNode, k: string, d: number, lo: number, hi: number): number {
    const v = this.attrs(n).i(k, d);
    if (!(v >= lo && v <= hi)) this.unsupported(n, `attribute ${k} = ${v} (must be ${lo === 0 && hi === 1 ? '0 or 1' : `in [${lo}, ${hi}]`})`);
    return v;
  }
  /** An ints attribute checked for count and range: `len` values (default d), each >= min. */
  intList(n: OnnxNode, k: string, d: number[], len: number, min: number): number[] {
    const v = this.attrs(n).ints(k, d);
    if (v.length !== len) this.unsupported(n, `attribute ${k} has ${v.length} values [${v}]; expected ${len}`);
    const bad = v.find((x) => !Number.isInteger(x) || x < min);
    if (bad !== undefined) this.unsupported(n, `attribute ${k} = [${v}]: every value must be an integer >= ${min}`);
    return v;
  }
  /** A constant scalar input (Clip's min/max). */
  scalar(n: OnnxNode, i: number, what: string): number {
    const c = this.constFloat(n, i, what);
    if (c.data.length !== 1) this.unsupported(n, `${what} has ${c.data.length} values (needs a scalar)`);
    return c.data[0];
  }
  isGraphOutput(name: string) { return this.m.outputs.some((o) => o.name === name); }

  /** An operand of a binary op (Add, Sub, Mul, Div, Sum, ...): an activation, or a constant turned into a per-sample constant tensor. */
  operand(n: OnnxNode, name: string): string {
    if (this.isVar(name)) return name;
    const c = this.floats.get(name);
    if (!c) { this.shape(n, n.inputs.indexOf(name)); return name; }
    let dims = c.dims;
    const other = n.inputs.find((i) => i !== name && this.isVar(i));
    const rank = other ? this.g.tensors.get(this.name(other))!.shape.length + 1 : dims.length;
    if (dims.length > rank) this.unsupported(n, `constant '${name}' of shape [${dims}] has more axes than the activations (the batch axis would move)`);
    if (dims.length === rank) { if (dims[0] !== 1) this.unsupported(n, `constant '${name}' of shape [${dims}] varies along the batch axis`); dims = dims.slice(1); }
    if (!this.g.tensors.has(name)) this.g.tensors.set(name, { name, shape: dims.slice(), data: c.data });
    return name;
  }

  /** pads [top, left, bottom, right] from pads or auto_pad (SAME_UPPER puts the extra pixel at the end). */
  pads(n: OnnxNode, x: Shape, k: number[], s: number[], d: number[]): [number, number, number, number] {
    const auto = this.attrs(n).s('auto_pad', 'NOTSET');
    if (auto !== 'NOTSET' && n.attrs.has('pads')) this.unsupported(n, `with both auto_pad=${auto} and pads (ONNX allows one of them)`);
    if (auto === 'NOTSET') {
      const p = this.intList(n, 'pads', [0, 0, 0, 0], 4, 0);
      return [p[0], p[1], p[2], p[3]];
    }
    if (auto === 'VALID') return [0, 0, 0, 0];
    if (auto !== 'SAME_UPPER' && auto !== 'SAME_LOWER') this.unsupported(n, `with auto_pad=${auto}`);
    const p = [0, 1].map((i) => Math.max(0, (Math.ceil(x[i + 1] / s[i]) - 1) * s[i] + d[i] * (k[i] - 1) + 1 - x[i + 1]));
    const lo = p.map((v) => (auto === 'SAME_UPPER' ? Math.floor(v / 2) : Math.ceil(v / 2)));
    return [lo[0], lo[1], p[0] - lo[0], p[1] - lo[1]];
  }

  /** Folds a per-channel y = x * mul[c] + add[c] into the conv that produces x, when that conv feeds only this node
   *  (a BatchNormalization after a conv); false when it cannot. */
  foldIntoConv(n: OnnxNode, mul: Float32Array, add: Float32Array): boolean {
    const x = this.name(n.inputs[0]);
    const prev = this.g.nodes[this.g.nodes.length - 1];
    if (!prev || prev.output !== x || prev.op.kind !== 'conv' || this.uses.get(n.inputs[0]) !== 1 || this.isGraphOutput(n.inputs[0])) return false;
    if (x !== n.inputs[0] && (this.uses.get(x) !== 1 || this.isGraphOutput(x))) return false; // through an Identity: the conv's own output must feed only it
    const op = prev.op, per = op.w.length / op.cout;
    if (mul.length !== op.cout) return false;
    for (let c = 0; c < op.cout; c++) { for (let i = 0; i < per; i++) op.w[c * per + i] *= mul[c]; op.b[c] = op.b[c] * mul[c] + add[c]; }
    this.alias.set(n.outputs[0], x);
    return true;
  }
}

export type { Tensor };
