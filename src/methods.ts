// The explanation methods as a table, the single source of what each method is and needs: its kind, the passes it
// adds to the one forward, its weight row / raw-map slot in the fused CAM kernel (shaders/cam.wgsl, whose row and
// slot counts come from here), the options it reads, and its runner (batched GPU plans or host work; src/explain/).
// explain() walks this table. Exact definitions: docs/METHODS.md (one section per method).
import type { ExplainOptions, MethodResult, RunContext } from './explain/types.js';
import { ablationCam, occlusion, randomCam, rise, scoreCam } from './explain/perturb.js';
import { deconvnet, deeplift, deepliftShap, gradientShap, guided, guidedGradcam, inputXGradient, integratedGradients, saliency, smoothGrad, varGrad } from './explain/pixel.js';

export type MethodKind = 'gradient' | 'perturbation' | 'pixel';
/**
 * Passes beyond the gradient pass's forward. In the gradient pass (one submit): 'grad-layer' dy/dA, 'grad-input'
 * dy/dx, 'deeplift-layer' DeepLIFT multipliers at A through the head (A' = 0). Own plans: 'guided-input',
 * 'deconv-input', 'deeplift-input' (one backward to the input in that mode), 'grad-batched' (backward to the input
 * for many modified inputs), 'deeplift-batched' (DeepLIFT to the input against many references), 'forward-batched' (many masked inputs), 'head-batched' (the head re-run from A).
 */
export type Pass = 'grad-layer' | 'grad-input' | 'deeplift-layer' | 'guided-input' | 'deconv-input' | 'deeplift-input' | 'grad-batched' | 'deeplift-batched' | 'forward-batched' | 'head-batched';
/** Host or batched work: a weight row of the fused kernel, a raw slot (with weights), or the whole result per row. */
export type Runner =
  | { writes: 'weights'; run: (c: RunContext) => Promise<Float32Array[]> }
  | { writes: 'raw'; run: (c: RunContext) => Promise<{ raw: Float32Array[]; weights: Float32Array[] }> }
  | { writes: 'result'; run: (c: RunContext) => Promise<MethodResult[]> };
export interface MethodInfo {
  kind: MethodKind;
  passes: Pass[];
  /** Weight row in the fused CAM kernel (channel-weight methods; their raw map is slot = row). */
  row?: number;
  /** Raw-map slot in the fused CAM kernel. */
  slot?: number;
  /** Computed inside shaders/cam.wgsl (else written by the runner before the maps are re-run). */
  fused?: boolean;
  /** Other methods' CAM maps this one needs (computed even when not requested). */
  uses?: string[];
  /** The ExplainOptions it reads beyond targets, layer, score and the map options. */
  options: (keyof ExplainOptions)[];
  /** One forward and one backward (plus LIFT-CAM's head pass): part of 'fast'. */
  fast: boolean;
  /** Whether it returns per-channel weights. */
  weights: boolean;
  runner?: Runner;
  /** Its runner reads the target activation A on the host (RunContext.act); else A is never read back. */
  readsA?: boolean;
  rule: string;
  paper: string;
}

const cam = (row: number, rule: string, paper: string, more: Partial<MethodInfo> = {}): MethodInfo =>
  ({ kind: 'gradient', passes: ['grad-layer'], row, slot: row, fused: true, options: [], fast: true, weights: true, rule, paper, ...more });
const elementwise = (slot: number, rule: string, paper: string, fast = true): MethodInfo =>
  ({ kind: 'gradient', passes: ['grad-layer'], slot, fused: true, options: [], fast, weights: false, rule, paper });
const pixel = (passes: Pass[], runner: (c: RunContext) => Promise<MethodResult[]>, rule: string, paper: string, more: Partial<MethodInfo> = {}): MethodInfo =>
  ({ kind: 'pixel', passes, options: [], fast: false, weights: false, runner: { writes: 'result', run: runner }, rule, paper, ...more });

const TABLE = {
  // fused weight rows 0..6 (cam_weights computes them in this order)
  gradcam: cam(0, 'w_k = mean_ij g_kij', 'Selvaraju et al., Grad-CAM, ICCV 2017'),
  'gradcam-neg': cam(1, 'w_k = mean_ij (-g_kij) (counterfactual)', 'Selvaraju et al., Grad-CAM, ICCV 2017, sec. 5'),
  'gradcam++': cam(2, 'w_k = sum_ij a_kij relu(g_kij), a = g^2/(2g^2 + sum(A_k) g^3 + 1e-6) (eq. 19)', 'Chattopadhay et al., Grad-CAM++, WACV 2018', { options: ['gradcamPP'] }),
  xgradcam: cam(3, 'w_k = sum_ij g_kij A_kij / (sum_ij A_kij + 1e-7)', 'Fu et al., Axiom-based Grad-CAM, BMVC 2020'),
  liftcam: cam(4, 'w_k = sum_ij m_kij A_kij, m = DeepLIFT Rescale multipliers, reference A = 0', 'Jung & Oh, Towards Better Explanations of CAM (LIFT-CAM), ICCV 2021', { passes: ['grad-layer', 'deeplift-layer'] }),
  cam: cam(5, 'w_k = W_fc[c,k] (needs A -> GAP -> linear)', 'Zhou et al., Learning Deep Features for Discriminative Localization, CVPR 2016', { fast: false }),
  fem: cam(6, 'w_k = mean_ij [A_kij > mean(A_k) + 2 std(A_k)] (k-sigma rule, class-independent)', 'Fuad et al., Features Understanding in 3D CNNs for Actions Recognition in Video (FEM), IPTA 2020', { passes: [], fast: false }),
  // weight rows 7..9 written by their runners
  scorecam: cam(7, 'w = softmax_k y_c(x * norm(up(A_k))) (pytorch-grad-cam); variant official', 'Wang et al., Score-CAM, CVPR-W 2020',
    { kind: 'perturbation', passes: ['forward-batched'], fused: false, fast: false, options: ['scorecam', 'batch'], readsA: true, runner: { writes: 'weights', run: scoreCam } }),
  ablationcam: cam(8, 'w_k = (y_c - y_c(A with channel k ablated)) / y_c', 'Desai & Ramaswamy, Ablation-CAM, WACV 2020',
    { kind: 'perturbation', passes: ['head-batched'], fused: false, fast: false, options: ['batch'], readsA: true, runner: { writes: 'weights', run: ablationCam } }),
  randomcam: cam(9, 'w_k uniform in [-1, 1], seeded (a baseline)', 'pytorch-grad-cam RandomCAM (a sanity baseline)',
    { passes: [], fused: false, fast: false, options: ['seed'], runner: { writes: 'weights', run: randomCam } }),
  // raw slots after the weighted ones: fused element-wise 10..12, then Eigen-CAM's (shaders/eigen.wgsl, in the epilogue)
  layercam: elementwise(10, 'raw_ij = sum_k relu(g_kij) A_kij', 'Jiang et al., LayerCAM, IEEE TIP 2021'),
  hirescam: elementwise(11, 'raw_ij = sum_k g_kij A_kij', 'Draelos & Carin, HiResCAM, 2020'),
  'gradcam-elementwise': elementwise(12, 'raw_ij = sum_k relu(g_kij A_kij)', 'pytorch-grad-cam GradCAMElementWise', false),
  eigencam: { kind: 'gradient', passes: [], slot: 13, options: [], fast: true, weights: true,
    rule: 'first principal component of A (Z,K) with channel means removed; sign: largest |value| positive', paper: 'Muhammad & Yeasin, Eigen-CAM, IJCNN 2020' },
  rise: { kind: 'perturbation', passes: ['forward-batched'], options: ['rise', 'batch'], fast: false, weights: false, runner: { writes: 'result', run: rise },
    rule: 'sum_i P_c(x * M_i) M_i / (N p), random upsampled binary masks', paper: 'Petsiuk et al., RISE, BMVC 2018' },
  occlusion: { kind: 'perturbation', passes: ['forward-batched'], options: ['occlusion', 'batch'], fast: false, weights: false, runner: { writes: 'result', run: occlusion },
    rule: 'mean over the windows covering a pixel of y_c(x) - y_c(x with the window set to the baseline)', paper: 'Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014' },
  saliency: pixel(['grad-input'], saliency, 'max over colour channels of |dy/dx|', 'Simonyan et al., Deep Inside Convolutional Networks, 2014', { fast: true }),
  inputxgradient: pixel(['grad-input'], inputXGradient, 'x * dy/dx', 'Shrikumar et al., Not Just a Black Box (Input x Gradient), 2016'),
  guided: pixel(['guided-input'], guided, 'guided backprop: dx = dy [x > 0] [dy > 0] at every ReLU', 'Springenberg et al., Striving for Simplicity, 2015', { fast: true }),
  'guided-gradcam': pixel(['guided-input'], guidedGradcam, 'guided backprop x upsampled Grad-CAM map', 'Selvaraju et al., Grad-CAM, ICCV 2017', { fast: true, uses: ['gradcam'] }),
  deconvnet: pixel(['deconv-input'], deconvnet, 'deconvolution: dx = relu(dy) at every ReLU', 'Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014'),
  deeplift: pixel(['deeplift-input'], deeplift, 'contributions m (x - x\'), Rescale rule through the whole net', 'Shrikumar et al., DeepLIFT, ICML 2017', { fast: true, options: ['reference'] }),
  'integrated-gradients': pixel(['grad-batched'], integratedGradients, '(x - x\') sum_s w_s dy/dx(x\' + a_s (x - x\')), Gauss-Legendre or Riemann', 'Sundararajan et al., Axiomatic Attribution for Deep Networks, ICML 2017', { options: ['ig', 'reference', 'batch'] }),
  smoothgrad: pixel(['grad-batched'], smoothGrad, 'mean_s dy/dx(x + e_s), e_s ~ N(0, sigma^2), seeded', 'Smilkov et al., SmoothGrad, 2017', { options: ['noise', 'seed', 'batch'] }),
  vargrad: pixel(['grad-batched'], varGrad, 'var_s dy/dx(x + e_s) = mean(g^2) - mean(g)^2, e_s ~ N(0, sigma^2), seeded', 'Adebayo et al., Local Explanation Methods for Deep Neural Networks Lack Sensitivity to Parameter Values, 2018', { options: ['noise', 'seed', 'batch'] }),
  gradientshap: pixel(['grad-batched'], gradientShap, 'mean_s (x + e_s - x\') dy/dx(x\' + a_s (x + e_s - x\')), a_s ~ U(0,1), e_s ~ N(0, sigma^2), seeded', 'Lundberg & Lee, A Unified Approach to Interpreting Model Predictions (SHAP), NeurIPS 2017', { options: ['noise', 'reference', 'seed', 'batch'] }),
  deepliftshap: pixel(['deeplift-batched'], deepliftShap, 'mean_b m_b (x - x\'_b): DeepLIFT against each of R references; sums to y(x) - mean_b y(x\'_b)', 'Lundberg & Lee, A Unified Approach to Interpreting Model Predictions (SHAP), NeurIPS 2017', { options: ['shapReferences', 'noise', 'seed', 'batch'] }),
} satisfies Record<string, MethodInfo>;

export type Method = keyof typeof TABLE;
export const METHODS: Record<Method, MethodInfo> = TABLE;
export const METHOD_NAMES = Object.keys(TABLE) as Method[];
/** 'fast': the twelve methods of one forward and one backward (plus LIFT-CAM's head-only reference pass, the pixel
 *  modes' backward) that the browser demo and the default CLI run. */
export const FAST_METHODS: Method[] = METHOD_NAMES.filter((m) => METHODS[m].fast);
/** The fused kernel's weight rows R and raw slots S (override constants of shaders/cam.wgsl). */
export const CAM_ROWS = Math.max(...METHOD_NAMES.map((m) => (METHODS[m].row ?? -1) + 1));
export const CAM_SLOTS = Math.max(...METHOD_NAMES.map((m) => (METHODS[m].slot ?? -1) + 1));
export const info = (m: Method): MethodInfo => METHODS[m];
