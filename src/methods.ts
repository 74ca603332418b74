// The explanation methods as a table: one row per method with its rule, paper and the variant we implement.
// Exact definitions: docs/METHODS.md (one section per method). Slots and weight rows refer to shaders/cam.wgsl.

export type MethodKind = 'gradient' | 'perturbation' | 'pixel';
export interface MethodInfo {
  kind: MethodKind;
  /** Raw-map slot in the fused CAM kernel (gradient and channel-weight perturbation methods). */
  slot?: number;
  /** Whether the method has per-channel weights (returned with the map). */
  weights: boolean;
  rule: string;
  paper: string;
}

const TABLE = {
  gradcam: { kind: 'gradient', slot: 0, weights: true, rule: 'w_k = mean_ij g_kij', paper: 'Selvaraju et al., Grad-CAM, ICCV 2017' },
  'gradcam-neg': { kind: 'gradient', slot: 1, weights: true, rule: 'w_k = mean_ij (-g_kij) (counterfactual)', paper: 'Selvaraju et al., Grad-CAM, ICCV 2017, sec. 5' },
  'gradcam++': { kind: 'gradient', slot: 2, weights: true, rule: 'w_k = sum_ij a_kij relu(g_kij), a = g^2/(2g^2 + sum(A_k) g^3 + 1e-6) (eq. 19)', paper: 'Chattopadhay et al., Grad-CAM++, WACV 2018' },
  xgradcam: { kind: 'gradient', slot: 3, weights: true, rule: 'w_k = sum_ij g_kij A_kij / (sum_ij A_kij + 1e-7)', paper: 'Fu et al., Axiom-based Grad-CAM, BMVC 2020' },
  liftcam: { kind: 'gradient', slot: 4, weights: true, rule: 'w_k = sum_ij m_kij A_kij, m = DeepLIFT Rescale multipliers, reference A = 0', paper: 'Jung & Oh, Towards Better Explanations of CAM (LIFT-CAM), ICCV 2021' },
  cam: { kind: 'gradient', slot: 5, weights: true, rule: 'w_k = W_fc[c,k] (needs A -> GAP -> linear)', paper: 'Zhou et al., Learning Deep Features for Discriminative Localization, CVPR 2016' },
  layercam: { kind: 'gradient', slot: 8, weights: false, rule: 'raw_ij = sum_k relu(g_kij) A_kij', paper: 'Jiang et al., LayerCAM, IEEE TIP 2021' },
  hirescam: { kind: 'gradient', slot: 9, weights: false, rule: 'raw_ij = sum_k g_kij A_kij', paper: 'Draelos & Carin, HiResCAM, 2020' },
  eigencam: { kind: 'gradient', slot: 10, weights: true, rule: 'first principal component of A (Z,K) with channel means removed; sign: largest |value| positive', paper: 'Muhammad & Yeasin, Eigen-CAM, IJCNN 2020' },
  scorecam: { kind: 'perturbation', slot: 6, weights: true, rule: 'w = softmax_k y_c(x * norm(up(A_k))) (pytorch-grad-cam); variant official', paper: 'Wang et al., Score-CAM, CVPR-W 2020' },
  ablationcam: { kind: 'perturbation', slot: 7, weights: true, rule: 'w_k = (y_c - y_c(A with channel k ablated)) / y_c', paper: 'Desai & Ramaswamy, Ablation-CAM, WACV 2020' },
  rise: { kind: 'perturbation', weights: false, rule: 'sum_i P_c(x * M_i) M_i / (N p), random upsampled binary masks', paper: 'Petsiuk et al., RISE, BMVC 2018' },
  saliency: { kind: 'pixel', weights: false, rule: 'max over colour channels of |dy/dx|', paper: 'Simonyan et al., Deep Inside Convolutional Networks, 2014' },
  guided: { kind: 'pixel', weights: false, rule: 'guided backprop: dx = dy [x > 0] [dy > 0] at every ReLU', paper: 'Springenberg et al., Striving for Simplicity, 2015' },
  'guided-gradcam': { kind: 'pixel', weights: false, rule: 'guided backprop x upsampled Grad-CAM map', paper: 'Selvaraju et al., Grad-CAM, ICCV 2017' },
  deeplift: { kind: 'pixel', weights: false, rule: 'contributions m (x - x\'), Rescale rule through the whole net', paper: 'Shrikumar et al., DeepLIFT, ICML 2017' },
} satisfies Record<string, MethodInfo>;

export type Method = keyof typeof TABLE;
export const METHODS: Record<Method, MethodInfo> = TABLE;
export const METHOD_NAMES = Object.keys(TABLE) as Method[];
/** Methods that cost one forward and one backward (plus LIFT-CAM's head-only reference pass). */
export const FAST_METHODS: Method[] = ['gradcam', 'gradcam-neg', 'gradcam++', 'xgradcam', 'liftcam', 'layercam', 'hirescam', 'eigencam', 'saliency', 'guided', 'guided-gradcam', 'deeplift'];
export const info = (m: Method): MethodInfo => METHODS[m];
