// The element-wise activation table: one row per function, read by the act record (src/ops/act.ts: ONNX imports,
// pipelines), the builder (node sources, default parameters) and documented against shaders/act.wgsl f / df /
// secant and the float64 reference tests/ref.ts actF / actD, which both follow the `kink` column: PyTorch's
// derivative where f is not differentiable (or not defined).

export type ActFn = 'relu' | 'clip' | 'leakyrelu' | 'sigmoid' | 'hardsigmoid' | 'hardswish' | 'tanh' | 'exp' | 'log' | 'sqrt'
  | 'reciprocal' | 'neg' | 'abs' | 'erf' | 'gelu' | 'gelu_tanh' | 'elu' | 'selu' | 'celu' | 'softplus' | 'softsign' | 'mish' | 'pow';

export interface ActRow {
  /** act.wgsl's FN override. */
  id: number;
  /** The ONNX op type (the builder's node source). */
  onnx: string;
  /** ONNX attributes read into alpha and beta, with ONNX's defaults; a row without them takes none. */
  alpha?: [string, number];
  beta?: [string, number];
  /** The builder's [alpha, beta] when the row has no ONNX defaults for them (PyTorch's module defaults). */
  builder?: [number, number];
  /** PyTorch's derivative at the kinks (and where f is undefined). */
  kink: string;
}

const SELU_ALPHA = 1.67326319217681884765625, SELU_GAMMA = 1.05070102214813232421875; // ONNX's (float32) defaults

export const ACTS: Record<ActFn, ActRow> = {
  relu: { id: 0, onnx: 'Relu', kink: '0 at x = 0 (threshold_backward)' },
  clip: { id: 1, onnx: 'Clip', builder: [0, 6], kink: '0 at both bounds [alpha, beta] (hardtanh_backward)' },
  leakyrelu: { id: 2, onnx: 'LeakyRelu', alpha: ['alpha', 0.01], kink: 'alpha at x = 0; PRelu the same with its per-channel slope' },
  sigmoid: { id: 3, onnx: 'Sigmoid', kink: 'smooth' },
  hardsigmoid: { id: 4, onnx: 'HardSigmoid', alpha: ['alpha', 0.2], beta: ['beta', 0.5], kink: '0 where alpha x + beta is 0 or 1' },
  hardswish: { id: 5, onnx: 'HardSwish', builder: [1 / 6, 0.5], kink: 'x/3 + 1/2 on [-3, 3] inclusive: -0.5 at -3, 1.5 at 3' },
  tanh: { id: 6, onnx: 'Tanh', kink: 'smooth' },
  exp: { id: 7, onnx: 'Exp', kink: 'smooth' },
  log: { id: 8, onnx: 'Log', kink: '1/x everywhere (also at x <= 0, where f is -inf or NaN)' },
  sqrt: { id: 9, onnx: 'Sqrt', kink: '1/(2 sqrt x): +inf at 0, NaN below' },
  reciprocal: { id: 10, onnx: 'Reciprocal', kink: '-1/x^2: -inf at 0' },
  neg: { id: 11, onnx: 'Neg', kink: 'linear' },
  abs: { id: 12, onnx: 'Abs', kink: 'sign(x): 0 at x = 0 (sgn)' },
  erf: { id: 13, onnx: 'Erf', kink: 'smooth' },
  gelu: { id: 14, onnx: 'Gelu', kink: "smooth (approximate='none': x Phi(x))" },
  gelu_tanh: { id: 15, onnx: 'Gelu', kink: "smooth (approximate='tanh')" },
  elu: { id: 16, onnx: 'Elu', alpha: ['alpha', 1], kink: 'alpha at x = 0 (elu_backward takes the x <= 0 branch)' },
  selu: { id: 17, onnx: 'Selu', alpha: ['alpha', SELU_ALPHA], beta: ['gamma', SELU_GAMMA], kink: 'gamma alpha at x = 0 (the x <= 0 branch)' },
  celu: { id: 18, onnx: 'Celu', alpha: ['alpha', 1], kink: '1 at x = 0 (both branches agree: f is C1)' },
  softplus: { id: 19, onnx: 'Softplus', kink: 'smooth: sigmoid(x) (PyTorch returns x and 1 above x = 20, the same in float32)' },
  softsign: { id: 20, onnx: 'Softsign', kink: '1/(1 + |x|)^2 (1 at 0)' },
  mish: { id: 21, onnx: 'Mish', kink: 'smooth' },
  pow: { id: 22, onnx: 'Pow', builder: [2, 0], kink: 'alpha x^(alpha - 1), 0 everywhere when alpha = 0 (pow_backward): at x = 0, 1 for alpha = 1, 0 above, inf below' },
};

/** The builder's default [alpha, beta] of a function. */
export const actDefaults = (fn: ActFn): [number, number] => ACTS[fn].builder ?? [ACTS[fn].alpha?.[1] ?? 0, ACTS[fn].beta?.[1] ?? 0];
