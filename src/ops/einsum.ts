// Einsum in the forms attention blocks export, imported as a chain of existing records (no IR kind, no shader of its
// own), so it inherits their kernels, float64 references and exact DeepLIFT rules (as ./composite.ts does):
//   two activations a, b (MaxViT's 'B G H I D, B G H J D -> B G H I J' and 'B G H I J, B G H J D -> B G H I D'):
//   each letter is a batch letter (in a, b and the output), a contracted letter k (in a and b only), or a free letter
//   of one operand (m: a and the output; p: b and the output). Then
//     y[batch, m, p] = sum_k a[batch, m, k] b[batch, k, p]
//   is a Transpose of a to (batch..., m..., k...) and of b to (batch..., k..., p...) (skipped when already in that
//   order), aliases to (batch, M, K) and (batch, K, P) (M, K, P the products of the m, k, p sizes), one batched matmul
//   (./matmul.ts: bilinear, DeepLIFT with the mean of both passes, exact summation to delta), an alias back to
//   (batch..., m..., p...) and a Transpose to the output's letter order (skipped when it is already that order);
//   one activation: a permutation of its letters (a Transpose).
// The first letter of every term is the batch axis N (camgpu keeps N outside the per-sample shapes). Everything else
// (ellipsis, a repeated letter (a diagonal), a letter summed within one operand, a constant operand, three or more
// operands) is an UnsupportedError naming the node, the equation and the shapes.
// Reference: tests/ref.ts einsumForward / einsumBackward (direct enumeration of the equation, in tests/einsum.test.ts).
import { numel } from '../graph.js';
import type { Importer } from '../import.js';
import type { OnnxNode } from '../onnx.js';
import type { OnnxImport } from './types.js';
import { part } from './composite.js';

/** An equation's terms: inputs and output as letter strings, whitespace dropped; the implicit output (no '->') is
 *  every letter that appears once, in alphabetical order (ONNX's rule). */
export function parseEquation(eq: string): { ins: string[]; out: string } | string {
  const e = eq.replace(/\s+/g, '');
  if (e.includes('.')) return 'uses an ellipsis (...), which is not supported: name every axis';
  const [lhs, rhs, more] = e.split('->');
  if (more !== undefined) return "has two '->'";
  const ins = lhs.split(',');
  const all = [...lhs.replace(/,/g, '')];
  for (const t of [...ins, rhs ?? '']) if (!/^[A-Za-z]*$/.test(t)) return `has a term '${t}' that is not letters`;
  const out = rhs ?? [...new Set(all)].filter((c) => all.indexOf(c) === all.lastIndexOf(c)).sort().join('');
  return { ins, out };
}

/** x with letters `from` reordered to `to` (per-sample axes: the batch letter stays first); x itself when in order. */
function permute(im: Importer, n: OnnxNode, x: string, from: string, to: string, what: string) {
  const perm = [...to.slice(1)].map((c) => from.indexOf(c) - 1);
  return perm.every((p, i) => p === i) ? x : part(im, n, what, { kind: 'transpose', perm }, [x]);
}

function einsumImport(im: Importer, n: OnnxNode) {
  const eq = im.attrs(n).s('equation', '');
  const shapes = () => n.inputs.map((t) => (im.isVar(t) ? `[N,${im.g.tensors.get(im.name(t))!.shape}]` : `constant '${t}'`)).join(', ');
  const bad = (why: string): never => im.unsupported(n, `'${eq}' on ${shapes()}: ${why}`);
  const p = parseEquation(eq);
  if (typeof p === 'string') return bad(p);
  const { ins, out } = p;
  if (ins.length !== n.inputs.length) bad(`the equation has ${ins.length} operands, the node ${n.inputs.length} inputs`);
  if (ins.length > 2) bad(`${ins.length} operands (at most two)`);
  for (const t of n.inputs) if (!im.isVar(t)) bad(`operand '${t}' is a constant (only activations)`);
  const dims = new Map<string, number>();
  ins.forEach((term, k) => {
    const s = im.shape(n, k);
    if (term.length !== s.length + 1) bad(`term '${term}' has ${term.length} letters for operand ${k} of rank ${s.length + 1}`);
    if (new Set(term).size !== term.length) bad(`term '${term}' repeats a letter (a diagonal)`);
    [...term.slice(1)].forEach((c, i) => {
      if (dims.has(c) && dims.get(c) !== s[i]) bad(`letter ${c} has sizes ${dims.get(c)} and ${s[i]}`);
      dims.set(c, s[i]);
    });
  });
  if (new Set(out).size !== out.length) bad(`output '${out}' repeats a letter`);
  const lost = [...out].find((c) => !ins.some((t) => t.includes(c)));
  if (lost) bad(`output letter ${lost} is in no operand`);
  const N = ins[0][0];
  if (ins.some((t) => t[0] !== N) || out[0] !== N) bad(`the batch axis: every term must start with the same letter (${N}), the output '${out}' too`);
  if (ins.length === 1) {
    if (out.length !== ins[0].length) bad(`sums letters ${[...ins[0]].filter((c) => !out.includes(c)).join(', ')} of one operand (only a permutation)`);
    const perm = [...out.slice(1)].map((c) => ins[0].indexOf(c) - 1);
    im.emit(n, perm.every((q, i) => q === i) ? { kind: 'alias' } : { kind: 'transpose', perm }, [n.inputs[0]], perm.map((q) => im.shape(n, 0)[q]));
    return;
  }
  const [ta, tb] = ins, inA = (c: string) => ta.includes(c), inB = (c: string) => tb.includes(c);
  const alone = [...ta, ...tb].find((c) => !out.includes(c) && inA(c) !== inB(c));
  if (alone) bad(`letter ${alone} is summed within one operand (a reduction; only letters shared by both operands are contracted)`);
  // batch, m and p letters in the output's order; k letters in a's order
  const batch = [...out.slice(1)].filter((c) => inA(c) && inB(c)).join(''), m = [...out].filter((c) => inA(c) && !inB(c)).join('');
  const pl = [...out].filter((c) => inB(c) && !inA(c)).join(''), k = [...ta].filter((c) => inB(c) && !out.includes(c)).join('');
  const size = (ls: string) => numel([...ls].map((c) => dims.get(c)!));
  const lead = batch.length ? [size(batch)] : [];
  const a = part(im, n, 'a', { kind: 'alias' }, [permute(im, n, n.inputs[0], ta, N + batch + m + k, 'a_order')], [...lead, size(m), size(k)]);
  const b = part(im, n, 'b', { kind: 'alias' }, [permute(im, n, n.inputs[1], tb, N + batch + k + pl, 'b_order')], [...lead, size(k), size(pl)]);
  const mm = part(im, n, 'matmul', { kind: 'matmul' }, [a, b]);
  const order = N + batch + m + pl;
  const split = [...order.slice(1)].map((c) => dims.get(c)!);
  if (order === out) { im.emit(n, { kind: 'alias' }, [mm], split); return; }
  const y = part(im, n, 'split', { kind: 'alias' }, [mm], split);
  im.emit(n, { kind: 'transpose', perm: [...out.slice(1)].map((c) => order.indexOf(c) - 1) }, [y]);
}

export const onnx: Record<string, OnnxImport> = { Einsum: einsumImport };
