// Minimal ONNX ModelProto reader: just the protobuf fields camgpu needs (graph, nodes, attributes,
// initializers, inputs/outputs, opset). Wire format: https://protobuf.dev/programming-guides/encoding/
// Field numbers follow onnx/onnx.proto (ModelProto.graph = 7, GraphProto.node = 1, ...).

import { oneLine } from './graph.js';

export class OnnxError extends Error {
  constructor(message: string) { super(oneLine(message)); this.name = 'OnnxError'; }
}

export interface OnnxTensor { name: string; dims: number[]; dataType: number; data: Float32Array | BigInt64Array | Int32Array }
/** An attribute; type is AttributeProto.type (FLOAT 1, INT 2, STRING 3, TENSOR 4, GRAPH 5, FLOATS 6, INTS 7, STRINGS 8, ...),
 *  0 when the file leaves it out (then the value fields present say which it is). */
export interface OnnxAttr { name: string; type: number; f?: number; i?: number; s?: string; t?: OnnxTensor; floats?: number[]; ints?: number[]; other?: boolean }
export interface OnnxNode { name: string; opType: string; domain: string; inputs: string[]; outputs: string[]; attrs: Map<string, OnnxAttr> }
export interface OnnxValue { name: string; elemType: number; dims: (number | string)[] }
export interface OnnxModel {
  opset: number; producer: string;
  /** ModelProto.ir_version (0 when absent). */
  irVersion?: number;
  nodes: OnnxNode[]; initializers: Map<string, OnnxTensor>; inputs: OnnxValue[]; outputs: OnnxValue[];
}

const DT = { FLOAT: 1, INT32: 6, INT64: 7, FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13 } as const;
/** Integer types read as int32 values (ONNX keeps them in int32_data; raw_data at their own width): uint8, int8,
 *  uint16, int16, bool. */
const SMALL_INTS: Record<number, { BYTES_PER_ELEMENT: number; new (b: ArrayBuffer): ArrayLike<number> }> = { 2: Uint8Array, 3: Int8Array, 4: Uint16Array, 5: Int16Array, 9: Uint8Array };
const DT_NAMES: Record<number, string> = { 1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'bfloat16' };
export const dataTypeName = (t: number) => DT_NAMES[t] ?? `type ${t}`;

const utf8 = new TextDecoder();

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array, readonly end = buf.length) {}
  /** A varint field (wire 0); what names it in the error. */
  int(wire: number, what: string): number { if (wire !== 0) this.wrong(wire, what); return this.varint(); }
  /** A string field (wire 2). */
  str(wire: number, what: string): string { if (wire !== 2) this.wrong(wire, what); return this.string(); }
  wrong(wire: number, what: string): never { throw new OnnxError(`not an ONNX protobuf (${what} with wire type ${wire} at offset ${this.pos})`); }
  /** int64 varint -> JS number (two's complement for negatives, e.g. Reshape's -1); at most 10 bytes, as protobuf. */
  varint(): number {
    let v = 0, b = 0, i = 0;
    for (; i < 4; i++) { // up to 28 bits in plain arithmetic
      if (this.pos >= this.end) throw new OnnxError(`truncated protobuf (varint runs past the end at offset ${this.pos})`);
      b = this.buf[this.pos++]; v += (b & 0x7f) * 2 ** (7 * i);
      if (!(b & 0x80)) return v;
    }
    let big = BigInt(v);
    for (; i < 10; i++) {
      if (this.pos >= this.end) throw new OnnxError(`truncated protobuf (varint runs past the end at offset ${this.pos})`);
      b = this.buf[this.pos++]; big |= BigInt(b & 0x7f) << BigInt(7 * i);
      if (!(b & 0x80)) return Number(BigInt.asIntN(64, big));
    }
    throw new OnnxError(`not an ONNX protobuf (varint longer than 10 bytes at offset ${this.pos - 10})`);
  }
  need(n: number, what: string) {
    if (n > this.end - this.pos) throw new OnnxError(`truncated protobuf (${what} of ${n} bytes at offset ${this.pos}, ${this.end - this.pos} left)`);
  }
  bytes(): Uint8Array {
    const at = this.pos, n = this.varint(), s = this.pos;
    if (n < 0) throw new OnnxError(`not an ONNX protobuf (negative length ${n} at offset ${at})`);
    this.need(n, 'field');
    this.pos += n; return this.buf.subarray(s, s + n);
  }
  string(): string { return utf8.decode(this.bytes()); }
  f32(): number { this.need(4, 'float'); const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true); this.pos += 4; return v; }
  f64(): number { this.need(8, 'double'); const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true); this.pos += 8; return v; }
  skip(wire: number) {
    if (wire === 0) this.varint(); else if (wire === 1) { this.need(8, 'fixed64'); this.pos += 8; } else if (wire === 2) this.bytes();
    else if (wire === 5) { this.need(4, 'fixed32'); this.pos += 4; }
    else throw new OnnxError(`not an ONNX protobuf (wire type ${wire} at offset ${this.pos})`);
  }
  /** Calls fn(field, wire, reader) for every field of the message in [pos, end). */
  fields(fn: (field: number, wire: number) => boolean | void) {
    while (this.pos < this.end) {
      const at = this.pos, key = this.varint(), field = Math.floor(key / 8), wire = key % 8;
      if (key < 8 || !Number.isSafeInteger(key)) throw new OnnxError(`not an ONNX protobuf (field key ${key} at offset ${at})`);
      if (!fn(field, wire)) this.skip(wire);
    }
  }
  /** A length-delimited field as its own reader; wire must be 2 (a message). */
  sub(wire = 2): Reader {
    if (wire !== 2) throw new OnnxError(`not an ONNX protobuf (a message field with wire type ${wire} at offset ${this.pos})`);
    const b = this.bytes(); return new Reader(b);
  }
  /** Repeated scalar field, packed (wire 2) or not. */
  repeated(wire: number, out: number[], read: (r: Reader) => number) {
    if (wire === 2) { const r = this.sub(); while (r.pos < r.end) out.push(read(r)); } else out.push(read(this));
  }
}

/** A serialized TensorProto (ONNX test data files are one each). */
export function parseTensor(bytes: Uint8Array): OnnxTensor { return guarded(() => readTensor(new Reader(bytes))); }

/** Bytes per element of the data types camgpu reads (raw_data is exactly dims' product times this). */
const WIDTH: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8 };
/** The typed field a data type keeps its values in when there is no raw_data: float_data 4, int32_data 5, int64_data 7,
 *  double_data 10, uint64_data 11 (float16, bool and the small ints are in int32_data; uint32 in uint64_data). */
const FIELD: Record<number, number> = { 1: 4, 2: 5, 3: 5, 4: 5, 5: 5, 6: 5, 9: 5, 10: 5, 7: 7, 11: 10, 12: 11, 13: 11 };

function readTensor(r: Reader): OnnxTensor {
  const dims: number[] = []; let dataType = 0, name = '', raw: Uint8Array | null = null, external = false;
  const floats: number[] = [], ints: number[] = [], doubles: number[] = [], seen = new Set<number>();
  r.fields((f, w) => {
    if (f === 1) r.repeated(w, dims, (q) => q.varint());
    else if (f === 2) dataType = r.int(w, 'tensor data_type');
    else if (f === 4) { seen.add(4); if (w !== 2 && w !== 5) r.wrong(w, 'float_data'); r.repeated(w, floats, (q) => q.f32()); }
    else if (f === 5 || f === 7 || f === 11) { seen.add(f); if (w !== 2 && w !== 0) r.wrong(w, 'integer data'); r.repeated(w, ints, (q) => q.varint()); }
    else if (f === 8) name = r.str(w, 'tensor name');
    else if (f === 9) { if (w !== 2) r.wrong(w, 'raw_data'); raw = r.bytes(); }
    else if (f === 10) { seen.add(10); if (w !== 2 && w !== 1) r.wrong(w, 'double_data'); r.repeated(w, doubles, (q) => q.f64()); }
    else if (f === 13) { external = true; return false; }
    else if (f === 14) external = r.int(w, 'data_location') === 1;
    else return false;
    return true;
  });
  const what = `tensor '${name}'`;
  if (external) throw new OnnxError(`${what} uses external data; camgpu needs the weights inside the .onnx file (onnx.load + onnx.save with save_as_external_data=False)`);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new OnnxError(`${what} has dims [${dims}]; every dimension must be a non-negative integer`);
  const n = dims.reduce((a, b) => a * b, 1), width = WIDTH[dataType];
  if (width === undefined) return { name, dims, dataType, data: new Float32Array(0) }; // strings, bfloat16, complex: rejected where used, with the node name
  const field = FIELD[dataType], others = [...seen].filter((x) => x !== field);
  if (others.length) throw new OnnxError(`${what} is ${dataTypeName(dataType)} but holds values in field ${others[0]} (${dataTypeName(dataType)} values go in field ${field} or raw_data)`);
  if (raw && seen.size) throw new OnnxError(`${what} holds both raw_data and typed values`);
  const count = raw ? (raw as Uint8Array).length / width : dataType === 1 ? floats.length : dataType === 11 ? doubles.length : ints.length;
  if (!Number.isSafeInteger(n) || count !== n)
    throw new OnnxError(`${what} (${dataTypeName(dataType)}) has ${raw ? `${(raw as Uint8Array).length} bytes of raw_data (${Number.isInteger(count) ? count : count.toFixed(2)} values)` : `${count} values`}; dims [${dims}] need ${n}`);
  let data: Float32Array | BigInt64Array | Int32Array;
  if (dataType === DT.FLOAT) data = raw ? copyAligned(raw, Float32Array) : Float32Array.from(floats);
  else if (dataType === DT.DOUBLE) data = Float32Array.from(raw ? copyAligned(raw, Float64Array) : doubles);
  else if (dataType === DT.FLOAT16) data = raw ? halfToFloat(copyAligned(raw, Uint16Array)) : halfToFloat(Uint16Array.from(ints));
  else if (dataType === DT.INT64) data = raw ? copyAligned(raw, BigInt64Array) : BigInt64Array.from(ints.map(BigInt));
  else if (dataType === DT.INT32) data = raw ? copyAligned(raw, Int32Array) : Int32Array.from(ints);
  else if (dataType in SMALL_INTS) data = Int32Array.from(raw ? (copyAligned(raw, SMALL_INTS[dataType]) as ArrayLike<number>) : ints);
  else if (dataType === DT.UINT32) data = BigInt64Array.from(raw ? Array.from(copyAligned(raw, Uint32Array), BigInt) : ints.map(BigInt));
  else data = BigInt64Array.from(raw ? copyAligned(raw, BigUint64Array) : ints.map(BigInt));
  return { name, dims, dataType, data };
}

/** Copies little-endian raw_data into a fresh, aligned typed array. */
function copyAligned<T>(raw: Uint8Array, Ctor: { BYTES_PER_ELEMENT: number; new (b: ArrayBuffer): T }): T {
  const copy = new Uint8Array(raw.length - (raw.length % Ctor.BYTES_PER_ELEMENT)); copy.set(raw.subarray(0, copy.length));
  return new Ctor(copy.buffer);
}

/** IEEE half -> float32, for float16 initializers (converted once at load). */
function halfToFloat(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const s = h[i] & 0x8000 ? -1 : 1, e = (h[i] >> 10) & 0x1f, m = h[i] & 0x3ff;
    out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

const ATTR_TYPES: Record<number, string> = { 1: 'FLOAT', 2: 'INT', 3: 'STRING', 4: 'TENSOR', 5: 'GRAPH', 6: 'FLOATS', 7: 'INTS', 8: 'STRINGS', 9: 'TENSORS', 10: 'GRAPHS', 11: 'SPARSE_TENSOR', 12: 'SPARSE_TENSORS', 13: 'TYPE_PROTO', 14: 'TYPE_PROTOS' };
export const attrTypeName = (t: number) => ATTR_TYPES[t] ?? `type ${t}`;

function readAttr(r: Reader): OnnxAttr {
  const a: OnnxAttr = { name: '', type: 0 }, has = new Set<number>();
  r.fields((f, w) => {
    if (f === 1) a.name = r.str(w, 'attribute name');
    else if (f === 20) a.type = r.int(w, 'attribute type');
    else if (f === 2) { if (w !== 5) r.wrong(w, 'attribute f'); a.f = r.f32(); has.add(1); }
    else if (f === 3) { a.i = r.int(w, 'attribute i'); has.add(2); }
    else if (f === 4) { a.s = r.str(w, 'attribute s'); has.add(3); }
    else if (f === 5) { a.t = readTensor(r.sub(w)); has.add(4); }
    else if (f === 7) { if (w !== 2 && w !== 5) r.wrong(w, 'attribute floats'); r.repeated(w, (a.floats ??= []), (q) => q.f32()); has.add(6); }
    else if (f === 8) { if (w !== 2 && w !== 0) r.wrong(w, 'attribute ints'); r.repeated(w, (a.ints ??= []), (q) => q.varint()); has.add(7); }
    else if (f === 6 || f === 9 || f === 10 || f === 11 || f === 22 || f === 23 || f === 14 || f === 15) { a.other = true; has.add(f === 6 ? 5 : f === 9 ? 8 : f === 10 ? 9 : f === 11 ? 10 : 11); return false; }
    else return false;
    return true;
  });
  if (a.type) {
    const stray = [...has].filter((t) => t !== a.type);
    if (stray.length) throw new OnnxError(`attribute '${a.name}' is declared ${attrTypeName(a.type)} but holds a ${attrTypeName(stray[0])} value`);
    if (a.type === 7) a.ints ??= [];
    if (a.type === 6) a.floats ??= [];
    if (a.type !== 1 && a.type !== 2 && a.type !== 3 && a.type !== 4 && a.type !== 6 && a.type !== 7) a.other = true;
  } else if (has.size > 1) throw new OnnxError(`attribute '${a.name}' holds values of ${has.size} types (${[...has].map(attrTypeName).join(', ')})`);
  return a;
}

function readNode(r: Reader): OnnxNode {
  const n: OnnxNode = { name: '', opType: '', domain: '', inputs: [], outputs: [], attrs: new Map() };
  let dup = '';
  r.fields((f, w) => {
    if (f === 1) n.inputs.push(r.str(w, 'node input'));
    else if (f === 2) n.outputs.push(r.str(w, 'node output'));
    else if (f === 3) n.name = r.str(w, 'node name');
    else if (f === 4) n.opType = r.str(w, 'node op_type');
    else if (f === 7) n.domain = r.str(w, 'node domain');
    else if (f === 5) { const a = readAttr(r.sub(w)); if (n.attrs.has(a.name)) dup ||= a.name; n.attrs.set(a.name, a); }
    else return false;
    return true;
  });
  if (!n.name) n.name = `${n.opType}(${n.outputs[0] ?? '?'})`;
  if (!n.opType) throw new OnnxError(`node '${n.name}' has no op_type`);
  if (dup) throw new OnnxError(`node '${n.name}' (${n.opType}): attribute '${dup}' appears twice`);
  for (const a of n.attrs.values()) if (!a.name) throw new OnnxError(`node '${n.name}' (${n.opType}) has an attribute without a name`);
  return n;
}

function readValueInfo(r: Reader): OnnxValue {
  const v: OnnxValue = { name: '', elemType: 0, dims: [] };
  r.fields((f, w) => {
    if (f === 1) { v.name = r.str(w, 'value name'); return true; }
    if (f !== 2) return false;
    const type = r.sub(w); // TypeProto.tensor_type = 1
    type.fields((tf, tw) => {
      if (tf !== 1) return false;
      const tt = type.sub(tw);
      tt.fields((ttf, ttw) => {
        if (ttf === 1) { v.elemType = tt.int(ttw, 'elem_type'); return true; }
        if (ttf !== 2) return false;
        const shape = tt.sub(ttw); // TensorShapeProto.dim = 1
        shape.fields((sf, sw) => {
          if (sf !== 1) return false;
          const d = shape.sub(sw); let dim: number | string = '?';
          d.fields((df, dw) => { if (df === 1) dim = d.int(dw, 'dim_value'); else if (df === 2) dim = d.str(dw, 'dim_param'); else return false; return true; });
          v.dims.push(dim); return true;
        });
        return true;
      });
      return true;
    });
    return true;
  });
  return v;
}

/** Runs a reader; anything but an OnnxError (a bug or an engine limit on a hostile file) becomes one. */
function guarded<T>(f: () => T): T {
  try { return f(); } catch (e) {
    if (e instanceof OnnxError) throw e;
    throw new OnnxError(`not a valid ONNX file (${e instanceof RangeError ? 'a size beyond the limits' : (e as Error).name})`);
  }
}

export function parseOnnx(bytes: Uint8Array): OnnxModel {
  const m: OnnxModel = { opset: 0, producer: '', nodes: [], initializers: new Map(), inputs: [], outputs: [] };
  const r = new Reader(bytes); let graphs = 0;
  guarded(() => r.fields((f, w) => {
    if (f === 1) m.irVersion = r.int(w, 'ir_version');
    else if (f === 2) m.producer = r.str(w, 'producer_name');
    else if (f === 8) {
      const o = r.sub(w); let domain = '', version = 0;
      o.fields((of, ow) => { if (of === 1) domain = o.str(ow, 'opset domain'); else if (of === 2) version = o.int(ow, 'opset version'); else return false; return true; });
      if (domain === '' || domain === 'ai.onnx') m.opset = version;
    } else if (f === 7) {
      if (++graphs > 1) throw new OnnxError('not an ONNX model: more than one graph field');
      const g = r.sub(w);
      g.fields((gf, gw) => {
        if (gf === 1) m.nodes.push(readNode(g.sub(gw)));
        else if (gf === 5) {
          const t = readTensor(g.sub(gw));
          if (m.initializers.has(t.name)) throw new OnnxError(`initializer '${t.name}' appears twice`);
          m.initializers.set(t.name, t);
        } else if (gf === 11) m.inputs.push(readValueInfo(g.sub(gw)));
        else if (gf === 12) m.outputs.push(readValueInfo(g.sub(gw)));
        else return false;
        return true;
      });
    } else return false;
    return true;
  }));
  if (!graphs || m.nodes.length === 0) throw new OnnxError('not an ONNX model: no graph with nodes found');
  return m;
}
