// The explain() API lives in src/explain/ (index: orchestration, cam: the fused CAM epilogue, perturb, pixel, layer,
// maps, types); this path stays for importers.
export * from './explain/index.js';
