// A tiny protobuf writer for hand-made ONNX models in tests (field numbers as in src/onnx.ts / onnx.proto).

/** One protobuf message under construction: fields appended in order. */
export class Pb {
  private out: number[] = [];
  private key(field: number, wire: number) { this.varint((field << 3) | wire); return this; }
  private varint(v: number | bigint) { // int64 two's complement, as protobuf writes negative ints
    let x = BigInt.asUintN(64, BigInt(v));
    do { const b = Number(x & 0x7fn); x >>= 7n; this.out.push(x ? b | 0x80 : b); } while (x);
  }
  int(field: number, v: number | bigint) { this.key(field, 0).varint(v); return this; }
  f32(field: number, v: number) { const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true); this.key(field, 5).out.push(...b); return this; }
  bytes(field: number, b: Uint8Array) { this.key(field, 2).varint(b.length); for (const x of b) this.out.push(x); return this; }
  str(field: number, s: string) { return this.bytes(field, new TextEncoder().encode(s)); }
  msg(field: number, m: Pb) { return this.bytes(field, m.finish()); }
  finish() { return Uint8Array.from(this.out); }
}

export const FLOAT = 1, INT64 = 7;
export type Dim = number | string;
export type AttrVal = number | number[] | string | { float: number } | { floats: number[] };

/** TensorProto: dims 1, data_type 2, int64_data 7, name 8, raw_data 9, external_data 13, data_location 14. */
export function tensor(name: string, dims: number[], data: Float32Array | bigint[], external = false): Pb {
  const t = new Pb();
  for (const d of dims) t.int(1, d);
  t.int(2, data instanceof Float32Array ? FLOAT : INT64).str(8, name);
  if (external) return t.msg(13, new Pb().str(1, 'location').str(2, `${name}.bin`)).int(14, 1);
  if (data instanceof Float32Array) t.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  else for (const v of data) t.int(7, v);
  return t;
}

/** ValueInfoProto: name 1, type 2 -> TypeProto.tensor_type 1 -> elem_type 1, shape 2 -> dim 1 -> dim_value 1 | dim_param 2. */
export function valueInfo(name: string, elemType: number, dims: Dim[]): Pb {
  const shape = new Pb();
  for (const d of dims) shape.msg(1, typeof d === 'number' ? new Pb().int(1, d) : new Pb().str(2, d));
  return new Pb().str(1, name).msg(2, new Pb().msg(1, new Pb().int(1, elemType).msg(2, shape)));
}

/** AttributeProto: name 1, f 2, i 3, s 4, floats 7, ints 8, type 20 (FLOAT 1, INT 2, STRING 3, FLOATS 6, INTS 7). */
export function attr(name: string, v: AttrVal): Pb {
  const a = new Pb().str(1, name);
  if (typeof v === 'number') return a.int(3, v).int(20, 2);
  if (typeof v === 'string') return a.str(4, v).int(20, 3);
  if (Array.isArray(v)) { for (const x of v) a.int(8, x); return a.int(20, 7); }
  if ('floats' in v) { for (const x of v.floats) a.f32(7, x); return a.int(20, 6); }
  return a.f32(2, v.float).int(20, 1);
}

/** NodeProto: input 1, output 2, name 3, op_type 4, attribute 5. */
export function node(op: string, name: string, inputs: string[], outputs: string[], attrs: Record<string, AttrVal> = {}): Pb {
  const n = new Pb();
  for (const i of inputs) n.str(1, i);
  for (const o of outputs) n.str(2, o);
  n.str(3, name).str(4, op);
  for (const [k, v] of Object.entries(attrs)) n.msg(5, attr(k, v));
  return n;
}

export interface Spec { nodes: Pb[]; inits?: Pb[]; inputs: Pb[]; outputs: Pb[]; opset?: number }

/** ModelProto: ir_version 1, producer_name 2, graph 7 (node 1, name 2, initializer 5, input 11, output 12), opset_import 8. */
export function model(s: Spec): Uint8Array {
  const g = new Pb();
  for (const n of s.nodes) g.msg(1, n);
  g.str(2, 'handmade');
  for (const t of s.inits ?? []) g.msg(5, t);
  for (const v of s.inputs) g.msg(11, v);
  for (const v of s.outputs) g.msg(12, v);
  return new Pb().int(1, 8).str(2, 'camgpu-test').msg(7, g).msg(8, new Pb().str(1, '').int(2, s.opset ?? 13)).finish();
}
