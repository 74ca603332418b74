// The conv autotuner: for each distinct conv layer shape of a graph, time every forward register tile (TILES) on
// this device with timestamp queries and keep the fastest whose output matches the default tile's. The result
// (tiles by convShape) goes to Model.load({ tiles }); node/tune.ts caches it per adapter (`camgpu tune`).
import { Graph, Node, numel } from './graph.js';
import { macs } from './ops/index.js';
import { Gpu, GpuError } from './gpu.js';
import { Model } from './model.js';
import { TILES, Tile, convKernels, convShape, defaultTile, sameTile } from './conv.js';

export interface TuneEntry {
  shape: string; layers: string[]; macs: number;
  /** The tile picked and its GPU ms; the untuned default's. */
  best: Tile; ms: number; defaultTile: Tile; defaultMs: number;
  /** Every tile tried: GPU ms (median), or why it was left out. */
  tried: { tile: Tile; ms?: number; error?: string }[];
}
export interface TuneOptions {
  /** Timed runs per tile (median); default 3. */
  runs?: number;
  /** Largest output difference from the default tile, relative to its max; default 1e-5. */
  tol?: number;
  onProgress?: (done: number, total: number, shape: string) => void;
}


/** A graph of one conv node (its weights travel in the op), fed and read at its own tensors. */
function single(g: Graph, n: Node): Graph {
  const t = (name: string) => [name, { name, shape: g.tensors.get(name)!.shape }] as const;
  return { input: n.inputs[0], output: n.output, tensors: new Map([t(n.inputs[0]), t(n.output)]), nodes: [n] };
}

/** Tunes every distinct conv shape of g on gpu (ms per image); the device needs 'timestamp-query'. */
export async function tune(gpu: Gpu, g: Graph, o: TuneOptions = {}): Promise<TuneEntry[]> {
  if (!gpu.device.features.has('timestamp-query')) throw new GpuError(`tuning times kernels with timestamp queries; this device was created without 'timestamp-query'${gpu.adapterInfo ? ` (${gpu.adapterInfo})` : ''}`);
  const byShape = new Map<string, Node[]>();
  for (const n of g.nodes) if (n.op.kind === 'conv') { const k = convShape(g, n); byShape.set(k, [...(byShape.get(k) ?? []), n]); }
  const runs = o.runs ?? 3, tol = o.tol ?? 1e-5, out: TuneEntry[] = [];
  let done = 0;
  for (const [shape, nodes] of byShape) {
    o.onProgress?.(done++, byShape.size, shape);
    const n = nodes[0], sg = single(g, n), def = defaultTile(g, n);
    // one try per distinct kernel: tiles a grouped conv cannot use all fall back to the same grouped kernel
    const variant = (t: Tile) => { const k = convKernels(sg, n, t); return `${k.forward} ${JSON.stringify(k.forwardConsts)}`; };
    const tiles = [def, ...TILES].filter((t, i, all) => all.findIndex((u) => variant(u) === variant(t)) === i);
    if (tiles.length < 2) continue;
    const model = await Model.load(gpu, sg, `tune ${shape}`);
    try {
      const per = numel(sg.tensors.get(sg.input)!.shape), input = (b: number) => Float32Array.from({ length: b * per }, (_, i) => Math.sin(i * 0.37));
      // GPU ms of one dispatch with `tile` at `batch` (median of runs), or an error when its output is wrong
      const time = async (tile: Tile, batch: number, ref: Float32Array | null) => {
        model.tiles = { [shape]: tile };
        const plan = await model.plan({ batch }), xb = input(batch);
        try {
          const y = (await plan.run(xb)).logits;
          if (ref) {
            let d = 0, m = 0; for (let i = 0; i < y.length; i++) { d = Math.max(d, Math.abs(y[i] - ref[i])); m = Math.max(m, Math.abs(ref[i])); }
            if (!(d <= tol * (m || 1))) return { y, error: `output differs from the default tile's by ${(d / (m || 1)).toExponential(1)}` };
          }
          const ms: number[] = [];
          for (let r = 0; r < runs; r++) ms.push((await plan.run(xb, { profile: true })).profile!.reduce((s, e) => s + e.ms, 0)); // Winograd: 3 dispatches
          return { y, ms: ms.sort((a, b) => a - b)[runs >> 1] };
        } finally { plan.destroy(); }
      };
      // timestamps are coarse (Dawn: 0.066 ms), so small layers are timed at a batch that takes >= 2 ms
      const first = await time(def, 1, null), batch = Math.max(1, Math.min(32, model.maxBatch(), Math.ceil(2 / Math.max(first.ms!, 0.01))));
      const base = await time(def, batch, null); // measured again: the first run of a layer can be an outlier
      const tried: TuneEntry['tried'] = [{ tile: def, ms: base.ms! / batch }];
      for (const tile of tiles.slice(1)) {
        const r = await time(tile, batch, base.y);
        tried.push(r.error ? { tile, error: r.error } : { tile, ms: r.ms! / batch });
      }
      const timed = tried.filter((t) => t.ms !== undefined), best = timed.reduce((a, b) => (b.ms! < a.ms! ? b : a));
      const d0 = timed.find((t) => sameTile(t.tile, def))!;
      out.push({ shape, layers: nodes.map((m) => m.name), macs: macs(g, n), best: best.tile, ms: best.ms!, defaultTile: def, defaultMs: d0.ms!, tried });
    } finally { model.destroy(); }
  }
  o.onProgress?.(byShape.size, byShape.size, '');
  return out;
}
