// Minimal ONNX ModelProto reader: just the protobuf fields camgpu needs (graph, nodes, attributes,
// initializers, inputs/outputs, opset). Wire format: https://protobuf.dev/programming-guides/encoding/
// Field numbers follow onnx/onnx.proto (ModelProto.graph = 7, GraphProto.node = 1, ...).

export class OnnxError extends Error {
  constructor(message: string) { super(message); this.name = 'OnnxError'; }
}

export interface OnnxTensor { name: string; dims: number[]; dataType: number; data: Float32Array | BigInt64Array | Int32Array }
export interface OnnxAttr { name: string; f?: number; i?: number; s?: string; t?: OnnxTensor; floats?: number[]; ints?: number[] }
export interface OnnxNode { name: string; opType: string; domain: string; inputs: string[]; outputs: string[]; attrs: Map<string, OnnxAttr> }
export interface OnnxValue { name: string; elemType: number; dims: (number | string)[] }
export interface OnnxModel {
  opset: number; producer: string;
  nodes: OnnxNode[]; initializers: Map<string, OnnxTensor>; inputs: OnnxValue[]; outputs: OnnxValue[];
}

const DT = { FLOAT: 1, INT32: 6, INT64: 7, FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13 } as const;
/** Integer types read as int32 values (ONNX keeps them in int32_data; raw_data at their own width): uint8, int8,
 *  uint16, int16, bool. */
const SMALL_INTS: Record<number, { BYTES_PER_ELEMENT: number; new (b: ArrayBuffer): ArrayLike<number> }> = { 2: Uint8Array, 3: Int8Array, 4: Uint16Array, 5: Int16Array, 9: Uint8Array };
const DT_NAMES: Record<number, string> = { 1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'bfloat16' };
export const dataTypeName = (t: number) => DT_NAMES[t] ?? `type ${t}`;

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array, readonly end = buf.length) {}
  varint(): number { // int64 varint -> JS number (two's complement for negatives, e.g. Reshape's -1)
    let v = 0n, shift = 0n, b: number;
    do {
      if (this.pos >= this.end) throw new OnnxError('truncated protobuf (varint runs past the end)');
      b = this.buf[this.pos++]; v |= BigInt(b & 0x7f) << shift; shift += 7n;
    } while (b & 0x80);
    return Number(BigInt.asIntN(64, v));
  }
  bytes(): Uint8Array {
    const n = this.varint(); const s = this.pos;
    if (n < 0 || s + n > this.end) throw new OnnxError(`truncated protobuf (field of ${n} bytes at offset ${s})`);
    this.pos += n; return this.buf.subarray(s, s + n);
  }
  string(): string { return new TextDecoder().decode(this.bytes()); }
  f32(): number { const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true); this.pos += 4; return v; }
  skip(wire: number) {
    if (wire === 0) this.varint(); else if (wire === 1) this.pos += 8; else if (wire === 2) this.bytes(); else if (wire === 5) this.pos += 4;
    else throw new OnnxError(`not an ONNX protobuf (wire type ${wire} at offset ${this.pos})`);
  }
  /** Calls fn(field, wire, reader) for every field of the message in [pos, end). */
  fields(fn: (field: number, wire: number) => boolean | void) {
    while (this.pos < this.end) {
      const key = this.varint(); const field = key >>> 3, wire = key & 7;
      if (!fn(field, wire)) this.skip(wire);
    }
  }
  sub(): Reader { const b = this.bytes(); return new Reader(b); }
  /** Repeated scalar field, packed (wire 2) or not. */
  repeated(wire: number, out: number[], read: (r: Reader) => number) {
    if (wire === 2) { const r = this.sub(); while (r.pos < r.end) out.push(read(r)); } else out.push(read(this));
  }
}

/** A serialized TensorProto (ONNX test data files are one each). */
export function parseTensor(bytes: Uint8Array): OnnxTensor { return readTensor(new Reader(bytes)); }

function readTensor(r: Reader): OnnxTensor {
  const dims: number[] = []; let dataType = 0, name = '', raw: Uint8Array | null = null, external = false;
  const floats: number[] = [], ints: number[] = [], doubles: number[] = [];
  r.fields((f, w) => {
    if (f === 1) r.repeated(w, dims, (q) => q.varint());
    else if (f === 2) dataType = r.varint();
    else if (f === 4) r.repeated(w, floats, (q) => q.f32());
    else if (f === 5 || f === 7) r.repeated(w, ints, (q) => q.varint());
    else if (f === 8) name = r.string();
    else if (f === 9) raw = r.bytes();
    else if (f === 10) r.repeated(w, doubles, (q) => { const v = new DataView(q.buf.buffer, q.buf.byteOffset + q.pos, 8).getFloat64(0, true); q.pos += 8; return v; });
    else if (f === 13) { external = true; return false; }
    else if (f === 14) external = r.varint() === 1;
    else return false;
    return true;
  });
  if (external) throw new OnnxError(`tensor '${name}' uses external data; camgpu needs the weights inside the .onnx file (onnx.load + onnx.save with save_as_external_data=False)`);
  const n = dims.reduce((a, b) => a * b, 1);
  let data: Float32Array | BigInt64Array | Int32Array;
  if (dataType === DT.FLOAT) data = raw ? copyAligned(raw, Float32Array) : Float32Array.from(floats);
  else if (dataType === DT.DOUBLE) data = Float32Array.from(raw ? copyAligned(raw, Float64Array) : doubles);
  else if (dataType === DT.FLOAT16) data = raw ? halfToFloat(copyAligned(raw, Uint16Array)) : halfToFloat(Uint16Array.from(ints));
  else if (dataType === DT.INT64) data = raw ? copyAligned(raw, BigInt64Array) : BigInt64Array.from(ints.map(BigInt));
  else if (dataType === DT.INT32) data = raw ? copyAligned(raw, Int32Array) : Int32Array.from(ints);
  else if (dataType in SMALL_INTS) data = Int32Array.from(raw ? (copyAligned(raw, SMALL_INTS[dataType]) as ArrayLike<number>) : ints);
  else if (dataType === DT.UINT32) data = BigInt64Array.from(raw ? Array.from(copyAligned(raw, Uint32Array), BigInt) : ints.map(BigInt));
  else if (dataType === DT.UINT64) data = BigInt64Array.from(raw ? copyAligned(raw, BigUint64Array) : ints.map(BigInt));
  else data = new Float32Array(0); // other types (strings, bfloat16, complex) are rejected where they are used, with the node name
  if (data.length !== n && (dataType === DT.FLOAT || dataType === DT.FLOAT16 || dataType === DT.INT64 || dataType === DT.DOUBLE || dataType === DT.INT32 || dataType in SMALL_INTS))
    throw new OnnxError(`tensor '${name}' has ${data.length} values but dims [${dims}] need ${n}`);
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

function readAttr(r: Reader): OnnxAttr {
  const a: OnnxAttr = { name: '' };
  r.fields((f, w) => {
    if (f === 1) a.name = r.string();
    else if (f === 2) a.f = r.f32();
    else if (f === 3) a.i = r.varint();
    else if (f === 4) a.s = r.string();
    else if (f === 5) a.t = readTensor(r.sub());
    else if (f === 7) r.repeated(w, (a.floats ??= []), (q) => q.f32());
    else if (f === 8) r.repeated(w, (a.ints ??= []), (q) => q.varint());
    else return false;
    return true;
  });
  return a;
}

function readNode(r: Reader): OnnxNode {
  const n: OnnxNode = { name: '', opType: '', domain: '', inputs: [], outputs: [], attrs: new Map() };
  r.fields((f) => {
    if (f === 1) n.inputs.push(r.string());
    else if (f === 2) n.outputs.push(r.string());
    else if (f === 3) n.name = r.string();
    else if (f === 4) n.opType = r.string();
    else if (f === 7) n.domain = r.string();
    else if (f === 5) { const a = readAttr(r.sub()); n.attrs.set(a.name, a); }
    else return false;
    return true;
  });
  if (!n.name) n.name = `${n.opType}(${n.outputs[0] ?? '?'})`;
  return n;
}

function readValueInfo(r: Reader): OnnxValue {
  const v: OnnxValue = { name: '', elemType: 0, dims: [] };
  r.fields((f) => {
    if (f === 1) { v.name = r.string(); return true; }
    if (f !== 2) return false;
    const type = r.sub(); // TypeProto.tensor_type = 1
    type.fields((tf) => {
      if (tf !== 1) return false;
      const tt = type.sub();
      tt.fields((ttf) => {
        if (ttf === 1) { v.elemType = tt.varint(); return true; }
        if (ttf !== 2) return false;
        const shape = tt.sub(); // TensorShapeProto.dim = 1
        shape.fields((sf) => {
          if (sf !== 1) return false;
          const d = shape.sub(); let dim: number | string = '?';
          d.fields((df) => { if (df === 1) dim = d.varint(); else if (df === 2) dim = d.string(); else return false; return true; });
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

export function parseOnnx(bytes: Uint8Array): OnnxModel {
  const m: OnnxModel = { opset: 0, producer: '', nodes: [], initializers: new Map(), inputs: [], outputs: [] };
  const r = new Reader(bytes); let sawGraph = false;
  try {
    r.fields((f) => {
      if (f === 2) m.producer = r.string();
      else if (f === 8) {
        const o = r.sub(); let domain = '', version = 0;
        o.fields((of) => { if (of === 1) domain = o.string(); else if (of === 2) version = o.varint(); else return false; return true; });
        if (domain === '' || domain === 'ai.onnx') m.opset = version;
      } else if (f === 7) {
        sawGraph = true; const g = r.sub();
        g.fields((gf) => {
          if (gf === 1) m.nodes.push(readNode(g.sub()));
          else if (gf === 5) { const t = readTensor(g.sub()); m.initializers.set(t.name, t); }
          else if (gf === 11) m.inputs.push(readValueInfo(g.sub()));
          else if (gf === 12) m.outputs.push(readValueInfo(g.sub()));
          else return false;
          return true;
        });
      } else return false;
      return true;
    });
  } catch (e) {
    if (e instanceof OnnxError) throw e;
    throw new OnnxError(`not a valid ONNX file: ${(e as Error).message}`);
  }
  if (!sawGraph || m.nodes.length === 0) throw new OnnxError('not an ONNX model: no graph with nodes found');
  return m;
}
