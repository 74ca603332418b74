// Which activation the CAMs explain: the default layer, name resolution and its checks, and CAM's head check.
import { Graph, ModelError, consumers, isConst, logitsOf, numel, producers } from '../graph.js';
import { candidates } from '../model.js';

/**
 * The default CAM layer: the last 4-D activation before the head. The head starts at the last node that turns a
 * spatial activation (h*w > 1) into a non-spatial one (GlobalAveragePool, Flatten, a pool to 1x1); from its input we
 * step back over pooling, Dropout/Identity and a fully convolutional classifier (a conv to exactly `classes` channels
 * and its activation, as in SqueezeNet). VGG: the last ReLU before the MaxPool; ResNet: the last block's ReLU;
 * SqueezeNet: the last Fire module's Concat.
 */
export function defaultLayer(g: Graph): string {
  const prod = producers(g), classes = numel(g.tensors.get(logitsOf(g))!.shape);
  const shape = (t: string) => g.tensors.get(t)!.shape;
  const spatial = (t: string) => !g.tensors.get(t)!.data && shape(t).length === 3 && shape(t)[1] * shape(t)[2] > 1;
  let t: string | undefined;
  for (const n of g.nodes) if (!spatial(n.output)) t = n.inputs.find(spatial) ?? t;
  const isClassifier = (name: string) => { const p = prod.get(name); return p?.op.kind === 'conv' && p.op.cout === classes; };
  while (t) {
    const p = prod.get(t);
    if (!p) break;
    const k = p.op.kind;
    // over Dropout/Identity only: a Reshape is an alias too, but stepping back over one lands on the exporter's
    // intermediate view (MaxViT's departition Transpose, ONNX shape (N,32,4,1,4,1)) instead of the NCHW map itself
    const passThrough = k === 'alias' && (p.source === 'Dropout' || p.source === 'Identity');
    if (k === 'maxpool' || k === 'avgpool' || passThrough || isClassifier(t) || (k === 'act' && isClassifier(p.inputs[0]))) t = p.inputs[0];
    else break;
  }
  if (t && t !== g.input) return t;
  const c = candidates(g);
  if (!c.length) throw new ModelError('this model has no 4-D activation with spatial size > 1 on the path to the output; CAM methods need one');
  return c[c.length - 1];
}

function upstream(g: Graph, t: string): Set<string> {
  const prod = producers(g), seen = new Set<string>(), stack = [t];
  while (stack.length) { const x = stack.pop()!; if (seen.has(x)) continue; seen.add(x); const p = prod.get(x); if (p) stack.push(...p.inputs); }
  return seen;
}

/** Resolves a layer name (tensor or node name) and checks it can be a CAM target. */
export function resolveLayer(g: Graph, name?: string): string {
  if (!name) return defaultLayer(g);
  const t = g.tensors.has(name) ? name : g.nodes.find((n) => n.name === name)?.output;
  const list = () => candidates(g).join(', ');
  if (!t || isConst(g, t)) throw new ModelError(`layer '${name}' is not a tensor or node of this model; 4-D candidates: ${list()}`);
  if (g.tensors.get(t)!.shape.length !== 3) throw new ModelError(`layer '${name}' has shape [N,${g.tensors.get(t)!.shape}], not a 4-D (N,K,h,w) activation; candidates: ${list()}`);
  if (t === g.input) throw new ModelError(`layer '${name}' is the input image; choose a feature map: ${list()}`);
  if (!upstream(g, logitsOf(g)).has(t)) throw new ModelError(`layer '${name}' is not on the path to the output; candidates: ${list()}`);
  return t;
}

/** CAM needs A -> GlobalAveragePool -> (Flatten) -> linear = logits. */
export function checkCamHead(g: Graph, A: string) {
  const cons = consumers(g), path: string[] = [];
  let t = A;
  for (;;) {
    const c = cons.get(t) ?? [];
    if (c.length !== 1) break;
    path.push(c[0].op.kind); t = c[0].output;
    if (t === logitsOf(g)) break;
  }
  const kinds = path.filter((k) => k !== 'alias');
  if (t !== logitsOf(g) || kinds.length !== 2 || kinds[0] !== 'gap' || kinds[1] !== 'linear')
    throw new ModelError(`CAM needs the target layer to feed GlobalAveragePool -> linear; after '${A}' the head is ${path.join(' -> ') || 'missing'} (use gradcam, whose weights equal CAM's up to 1/Z on such heads)`);
}
