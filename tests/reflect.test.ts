// WGSL reflection (src/reflect.ts): the Params layouts it reads from every shader family against offsets worked out by
// hand from the WGSL spec's alignment rules (scalars 4, vec2 8, vec3/vec4 16; struct size rounded up to 16 for a
// uniform), the bindings it finds, and packParams' refusal of unknown names and out-of-range values.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FAMILIES } from '../src/gpu.js';
import { packParams, reflect } from '../src/reflect.js';

const test = suite('reflect');

test('layout with mixed alignments: u32, vec3<f32>, f32, vec2<u32>, i32', () => {
  const r = reflect('struct Params { a: u32, v: vec3<f32>, f: f32, q: vec2<u32>, i: i32 }\n@group(0) @binding(0) var<uniform> p: Params;');
  // a@0; vec3 aligns to 16: v@16..28; f fits at 28; vec2 aligns to 8: q@32..40; i@40; size 44 -> 48
  assert.equal(r.fields.map((f) => [f.name, f.offset, f.lanes]), [['a', 0, 1], ['v', 16, 3], ['f', 28, 1], ['q', 32, 2], ['i', 40, 1]]);
  assert.is(r.size, 48);
});

// Hand-computed from each shader's struct: all 4-byte scalars except binary's and layout's vec4 fields.
const EXPECTED: Record<string, { offsets: Record<string, number>; size: number; bindings: string[] }> = {
  binary: { offsets: { o: 0, sa: 16, sb: 32, su: 48, E: 64, acc: 68 }, size: 80, bindings: ['p', 'a', 'b', 'ar', 'br', 'dy', 'out'] },
  act: { offsets: { E: 0, acc: 4, alpha: 8, beta: 12, C: 16, HW: 20 }, size: 32, bindings: ['p', 'x', 'xr', 'dy', 'alphas', 'out'] },
  conv2d: { offsets: { N: 0, C: 4, KP: 64, alpha: 76, t0: 104 }, size: 112, bindings: ['p', 'x/x4', 'w/w4', 'b/b4', 'r', 'y'] },
  pool: { offsets: { N: 0, incpad: 64, acc: 68 }, size: 80, bindings: ['p', 'x', 'xr', 'idx', 'idxr', 'dy', 'out', 'oidx'] },
  linear: { offsets: { N: 0, acc: 20 }, size: 32, bindings: ['p', 'x/x4', 'w/w4', 'b', 'y'] },
  copy: { offsets: { N: 0, acc: 20 }, size: 32, bindings: ['p', 'x', 'y'] },
  // ten vec4 (16 bytes each) then six scalars: 160 + 24 = 184 -> 192
  layout: { offsets: { o0: 0, o1: 16, s0: 32, t1: 80, a0: 96, k1: 144, N: 160, XS: 164, YS: 168, G: 172, acc: 176, value: 180 }, size: 192, bindings: ['p', 'x/dy', 'idx', 'y/dx'] },
  softmax: { offsets: { N: 0, O: 4, F: 8, I: 12, acc: 16 }, size: 32, bindings: ['p', 'x', 'xr', 'y', 'dy', 'out'] },
  seed: { offsets: { N: 0, F: 4 }, size: 16, bindings: ['p', 'logits', 'cls', 'seed', 'chosen'] },
  // six u32: 24 bytes -> 32 (uniform structs round up to 16)
  eigen: { offsets: { N: 0, K: 4, Z: 8, D: 12, S: 16, SLOT: 20 }, size: 32, bindings: ['p', 'A', 'xc', 'src', 'dst', 'raw', 'wts'] },
  cam: { offsets: { N: 0, NSEL: 28 }, size: 32, bindings: ['p', 'A', 'g', 'm', 'sel', 'wts', 'raw', 'maps'] },
  norm: { offsets: { N: 0, G: 4, M: 8, SL: 12, SD: 16, eps: 20, acc: 24 }, size: 32, bindings: ['p', 'x', 'xr', 'w', 'b', 'dy', 'out'] },
  matmul: { offsets: { o: 0, sa: 16, sb: 32, u: 48, N: 64, M: 68, K: 72, P: 76, AS: 80, BS: 84, YS: 88, acc: 92 }, size: 96, bindings: ['p', 'a', 'b', 'ar', 'br', 'dy', 'out'] },
  reduce: { offsets: { s0: 0, s1: 16, mask: 32, N: 36, XS: 40, YS: 44, R: 48, acc: 52 }, size: 64, bindings: ['p', 'x', 'xr', 'y/idx', 'yr/idxr', 'dy', 'out', 'oidx'] },
  // fifteen u32: 60 -> 64
  resize: { offsets: { P: 0, H: 4, OW: 16, acc: 28, fw: 32, che: 44, cww: 56 }, size: 64, bindings: ['p', 'x/dy', 'tu', 'tf', 'y/dx'] },
  // seventeen 4-byte scalars (PT, PL i32): 68 -> 80
  convtranspose: { offsets: { N: 0, K: 16, KW: 32, PT: 44, PL: 48, G: 60, acc: 64 }, size: 80, bindings: ['p', 'x/dy', 'w', 'b', 'y/dx'] },
};

for (const [family, want] of Object.entries(EXPECTED)) {
  test(`${family}.wgsl: Params offsets, size ${want.size}, bindings ${want.bindings.join(' ')}`, () => {
    const r = reflect(FAMILIES[family as keyof typeof FAMILIES].code);
    const got = Object.fromEntries(r.fields.filter((f) => f.name in want.offsets).map((f) => [f.name, f.offset]));
    assert.equal(got, want.offsets);
    assert.is(r.size, want.size);
    assert.equal(r.bindings.map((b) => b.names.join('/')), want.bindings);
    assert.is(r.bindings[0].access, 'uniform');
  });
}

test('every family is covered above', () => {
  assert.equal(Object.keys(FAMILIES).sort(), Object.keys(EXPECTED).sort());
});

test('packParams: values at their offsets, f32 as floats; unknown names and bad values refused', () => {
  const r = reflect(FAMILIES.act.code);
  const v = new DataView(packParams(r, { E: 7, alpha: -0.5, HW: 3 }, 'test'));
  assert.is(v.getUint32(0, true), 7);
  assert.is(v.getFloat32(8, true), -0.5);
  assert.is(v.getUint32(20, true), 3);
  assert.is(v.getUint32(4, true), 0, 'fields not given are 0');
  assert.throws(() => packParams(r, { Ee: 1 }, 'test'), /no Params field 'Ee'/);
  assert.throws(() => packParams(r, { E: -1 }, 'test'), /not a u32/);
  assert.throws(() => packParams(r, { E: 1.5 }, 'test'), /not a u32/);
  assert.throws(() => packParams(r, { alpha: NaN }, 'test'), /not finite/);
  const b = reflect(FAMILIES.binary.code);
  assert.throws(() => packParams(b, { o: [1, 2, 3] }, 'test'), /takes 4 value/);
  const w = new DataView(packParams(b, { o: [1, 2, 3, 4], E: 9 }, 'test'));
  assert.equal([0, 4, 8, 12, 64].map((o) => w.getUint32(o, true)), [1, 2, 3, 4, 9]);
});

test.run();
