// WGSL reflection: a shader family's uniform struct `Params` (field names, types, byte offsets under WGSL's
// uniform layout rules) and its bindings (index, names, access), read from the shader text. Parameters and buffers
// are then passed by name (packParams, bindings by name in Gpu.bindGroup) and cannot drift from the WGSL struct.

export type Scalar = 'u32' | 'i32' | 'f32';
/** One field of Params: `lanes` scalars (1 for a scalar, 2..4 for vecN) at byte `offset`. */
export interface Field { name: string; type: Scalar; lanes: number; offset: number }
export type Access = 'uniform' | 'read' | 'rw';
/** A binding index with every name the shader declares at it (aliases such as x and x4, dy in x's slot). */
export interface Binding { index: number; names: string[]; access: Access }
export interface Reflection { fields: Field[]; size: number; bindings: Binding[] }
export type ParamValues = Record<string, number | readonly number[]>;

/** WGSL alignment and size of scalars and vectors (WGSL spec, "Alignment and Size"). */
function layoutOf(type: string): { type: Scalar; lanes: number; align: number; size: number } {
  const m = /^(?:vec([234])<(u32|i32|f32)>|(u32|i32|f32))$/.exec(type.replace(/\s+/g, ''));
  if (!m) throw new Error(`internal: WGSL Params field type '${type}' is not a scalar or vector of u32/i32/f32`);
  const lanes = m[1] ? Number(m[1]) : 1, scalar = (m[2] ?? m[3]) as Scalar;
  const align = lanes === 1 ? 4 : lanes === 2 ? 8 : 16;
  return { type: scalar, lanes, align, size: 4 * lanes };
}

export function reflect(code: string): Reflection {
  const fields: Field[] = [];
  let offset = 0, align = 4;
  const struct = /struct\s+Params\s*\{([^}]*)\}/.exec(code.replace(/\/\/[^\n]*/g, ''));
  if (struct) {
    for (const decl of struct[1].split(',').map((d) => d.trim()).filter(Boolean)) {
      const [name, type] = decl.split(':').map((v) => v.trim());
      const l = layoutOf(type);
      offset = Math.ceil(offset / l.align) * l.align;
      fields.push({ name, type: l.type, lanes: l.lanes, offset });
      offset += l.size; align = Math.max(align, l.align);
    }
  }
  const size = Math.ceil(Math.max(offset, 4) / 16) * 16; // a uniform struct's size rounds up to 16 bytes
  const byIndex = new Map<number, Binding>();
  for (const m of code.matchAll(/@group\(0\)\s*@binding\((\d+)\)\s*var<([^>]*)>\s*(\w+)/g)) {
    const index = Number(m[1]), kind = m[2].replace(/\s+/g, '');
    const access: Access = kind === 'uniform' ? 'uniform' : kind === 'storage,read' ? 'read' : 'rw';
    const b = byIndex.get(index);
    if (b && b.access !== access) throw new Error(`internal: WGSL binding ${index} is declared both ${b.access} and ${access}`);
    if (b) b.names.push(m[3]); else byIndex.set(index, { index, names: [m[3]], access });
  }
  const bindings = [...byIndex.values()].sort((a, b) => a.index - b.index);
  bindings.forEach((b, i) => { if (b.index !== i) throw new Error(`internal: WGSL bindings are not 0..n-1 (missing ${i})`); });
  return { fields, size, bindings };
}

/** The uniform bytes of Params from named values: every name must be a field (a typo is an error), fields not
 *  given are 0; u32 fields take non-negative integers, i32 integers, f32 any finite number; vectors take arrays. */
export function packParams(r: Reflection, values: ParamValues, what: string): ArrayBuffer {
  const buf = new ArrayBuffer(r.size), view = new DataView(buf);
  const byName = new Map(r.fields.map((f) => [f.name, f]));
  for (const [name, v] of Object.entries(values)) {
    const f = byName.get(name);
    if (!f) throw new Error(`internal: ${what}: no Params field '${name}' (fields: ${r.fields.map((x) => x.name).join(', ')})`);
    const lanes = typeof v === 'number' ? [v] : v;
    if (lanes.length !== f.lanes) throw new Error(`internal: ${what}: Params.${name} takes ${f.lanes} value(s), got ${lanes.length}`);
    lanes.forEach((x, i) => {
      const at = f.offset + 4 * i;
      const int = Number.isInteger(x);
      if (f.type === 'f32') { if (!Number.isFinite(x)) throw new Error(`internal: ${what}: Params.${name} = ${x} is not finite`); view.setFloat32(at, x, true); }
      else if (f.type === 'u32') { if (!int || x < 0 || x > 0xffffffff) throw new Error(`internal: ${what}: Params.${name} = ${x} is not a u32`); view.setUint32(at, x, true); }
      else { if (!int || Math.abs(x) > 0x7fffffff) throw new Error(`internal: ${what}: Params.${name} = ${x} is not an i32`); view.setInt32(at, x, true); }
    });
  }
  return buf;
}
