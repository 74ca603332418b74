// A transformer's token tensor as a CAM target: pytorch-grad-cam's reshape_transform, done in the graph. The CAM
// methods read a (K, h, w) map per sample; ViT's blocks give (1+h*w, D) tokens with a leading class token, DeiT-style
// models (h*w, D), Swin (h, w, D). tokenMap() rewrites the graph so that the token tensor passes through a (D, h, w)
// view of itself on its way to every consumer:
//   tokens (T,D) -> [slice 0:1 -> cls (1,D)], [slice 1:T (h*w,D) -> alias (h,w,D) -> transpose (D,h,w) = MAP
//                -> transpose (h,w,D) -> alias (h*w,D)] -> concat [cls, ...] (T,D) -> the old consumers
// The detour only moves values (each layout op is linear, its gradient and DeepLIFT multipliers a gather), so logits,
// gradients and every attribution are unchanged, and the gradient at MAP is the token gradient in (D, h, w) order: any
// CAM method then works on MAP as on a conv feature map, with no change to the methods or their kernels.
import { Graph, ModelError, Node, Shape, fmt, numel } from './graph.js';

/** How a target's per-sample shape reads as an h x w grid: (1+h*w, D) class token first, (h*w, D), or (h, w, D). */
export type TokenLayout = 'tokens-cls' | 'tokens' | 'nhwc';

/**
 * Rewrites g in place so that token tensor t is seen as a (D, h, w) map on the path to the output; returns the map's
 * tensor name (the CAM layer). grid: [h, w] (default: the square grid of the tokens).
 */
export function tokenMap(g: Graph, t: string, layout: TokenLayout, grid?: [number, number]): string {
  const ts = g.tensors.get(t);
  if (!ts || ts.data) throw new ModelError(`token layer '${t}' is not an activation of this model`);
  const s = ts.shape, bad = (why: string): never => { throw new ModelError(`token layer '${t}' of shape [N,${s}] as ${layout}: ${why}`); };
  if (layout === 'nhwc' ? s.length !== 3 : s.length !== 2) bad(`needs ${layout === 'nhwc' ? '(N, h, w, D)' : '(N, T, D)'}`);
  const D = s[s.length - 1], skip = layout === 'tokens-cls' ? 1 : 0, P = layout === 'nhwc' ? s[0] * s[1] : s[0] - skip;
  const side = Math.round(Math.sqrt(P)), [h, w] = layout === 'nhwc' ? [s[0], s[1]] : grid ?? [side, side];
  if (!(h * w === P && h >= 1 && w >= 1)) bad(`${P} tokens are not a ${grid ? `${h}x${w}` : 'square'} grid (give the grid)`);
  const at = g.nodes.findIndex((n) => n.output === t), fresh: Node[] = [], names = new Set(g.tensors.keys());
  if (at < 0 && t !== g.input) bad('no node produces it');
  const map = `${t}:map`;
  if (names.has(map)) return map; // already rewritten
  const add = (name: string, op: Node['op'], inputs: string[], shape: Shape) => {
    fresh.push({ name: `${t}:${name}`, source: 'tokenMap', op, inputs, output: `${t}:${name}` });
    g.tensors.set(`${t}:${name}`, { name: `${t}:${name}`, shape });
    return `${t}:${name}`;
  };
  const slice = (b: number, e: number) => ({ kind: 'slice' as const, begin: [b, 0], end: [e, D], step: [1, 1] });
  const patches = skip ? add('patches', slice(1, s[0]), [t], [P, D]) : t;
  const hwd = layout === 'nhwc' ? patches : add('grid', { kind: 'alias' }, [patches], [h, w, D]);
  add('map', { kind: 'transpose', perm: [2, 0, 1] }, [hwd], [D, h, w]);
  const back = add('back', { kind: 'transpose', perm: [1, 2, 0] }, [map], [h, w, D]);
  let out = layout === 'nhwc' ? back : add('rows', { kind: 'alias' }, [back], [P, D]);
  if (skip) out = add('tokens', { kind: 'concat' }, [add('cls', slice(0, 1), [t], [1, D]), out], s.slice());
  if (numel(g.tensors.get(out)!.shape) !== numel(s)) bad(`internal: ${fmt(g.tensors.get(out)!.shape)}`);
  // every old reader of t reads the detour's end instead
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === t ? out : i));
  if (g.output === t) g.output = out;
  g.nodes.splice(at + 1, 0, ...fresh);
  return map;
}
