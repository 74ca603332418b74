#!/usr/bin/python3
"""Golden attributions for the methods added with issue 12, per docs/METHODS.md (Captum's definitions for the pixel
methods, pytorch-grad-cam's for the CAMs), written in plain PyTorch.

Regenerate (Debian's python with torch 1.13; after tools/make_fixtures.py and tools/make_cam_goldens.py):

    /usr/bin/python3 tools/make_method_goldens.py            # vgg resnet mobilenet squeezenet effnet
    /usr/bin/python3 tools/make_method_goldens.py resnet     # a subset

The networks are rebuilt as make_cam_goldens.py does (same float32 weights as model.onnx, checked against
logits.npy); everything is computed in float64 and stored as float32. Sampling methods replay camgpu's seeded
stream (mulberry32, src/builder.ts; the draw layout of src/explain/maps.ts and pixel.ts), so the goldens are the
same numbers, not only the same distribution. Points where camgpu rounds to float32 (noisy inputs, path points,
RandomCAM weights) are rounded here too, then evaluated in float64.

Layout: tests/fixtures/<name>/methods/<setting>/ (setting fixed: classes [3, 7]; top1: each image's argmax),
N = 2 images, x (N,3,H,W) normalised, A (N,K,h,w) the CAM target layer, y = sum_i logits[i, c_i]:
    classes.npy                      (N,)       classes used
    inputxgradient.npy               (N,3,H,W)  x * dy/dx                                    (Captum InputXGradient)
    deconvnet.npy                    (N,3,H,W)  ReLU backward = relu(dy)                     (Captum Deconvolution)
    ig_<rule>.npy                    (N,3,H,W)  (x - 0) sum_s w_s dy/dx(alpha_s x), rules gausslegendre and
                                                riemann_trapezoid, PARAMS["ig_steps"] steps (Captum IntegratedGradients)
    ig_expected.npy                  (N,)       y_c(x) - y_c(0)   (completeness target)
    smoothgrad.npy, vargrad.npy      (N,3,H,W)  mean / variance of dy/dx(x + e), PARAMS noise (Captum NoiseTunnel)
    gradientshap.npy                 (N,3,H,W)  mean (x_s - 0) dy/dx(a_s x_s), x_s = x + e_s  (Captum GradientShap)
    deepliftshap.npy                 (N,3,H,W)  mean_b m_b (x - x'_b), DeepLIFT (make_fixtures.py's rules) against
                                                R = noise_n standard normal references          (Captum DeepLiftShap)
    deepliftshap_expected.npy        (N,)       y_c(x) - mean_b y_c(x'_b)   (summation to delta)
    occlusion.npy                    (N,H,W)    window 8, stride 4, baseline 0               (Captum Occlusion)
    occlusion_var.npy                (N,H,W)    window [6,4], stride [3,5], baseline 0.5
    gradcam_elementwise.{raw,map}.npy           sum_k relu(g A)               (pytorch-grad-cam GradCAMElementWise)
    fem.{weights,raw,map}.npy                   w_k = mean [A_k > mu_k + 2 std_k]            (pytorch-grad-cam FEM)
    randomcam.{weights,raw,map}.npy             w uniform [-1,1) from the seeded stream      (pytorch-grad-cam RandomCAM)
    *.map.npy: relu, per-image min-max (+1e-7), bilinear resize (as make_cam_goldens.py); pixel methods' maps are not
    stored (the test derives them).
tests/fixtures/<name>/methods/params.json: PARAMS, and per setting the conditioning: FEM's smallest distance to its
threshold (relative to max |A|), the IG completeness gap of the float64 goldens.
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_cam_goldens as mcg  # noqa: E402  (rebuilds the fixture nets; 1 thread, deterministic)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

mf = mcg.mf
D = torch.float64
PARAMS = {"ig_steps": 16, "noise_n": 4, "sigma": 0.2, "seed": 7, "occlusion": {"window": 8, "stride": 4, "baseline": 0.0},
          "occlusion_var": {"window": [6, 4], "stride": [3, 5], "baseline": 0.5}}
M32 = 0xFFFFFFFF


def mulberry32(seed):
    """camgpu's PRNG (src/builder.ts), uniform in [0, 1), in unsigned 32-bit arithmetic."""
    state = [seed & M32]

    def rand():
        state[0] = (state[0] + 0x6D2B79F5) & M32
        t = state[0]
        t = ((t ^ (t >> 15)) * (t | 1)) & M32
        t = (t ^ ((t + (((t ^ (t >> 7)) * (t | 61)) & M32)) & M32)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296.0
    return rand


def normal(rand):
    u1 = rand()
    u2 = rand()
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


def f32(t):
    return t.float().to(D)


class DeconvReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, g):
        return g.clamp_min(0)


def input_grad(model, x, classes):
    """dy/dx for y = sum_i logits[i, c_i]; x: (M,3,H,W), classes: M entries."""
    x = x.clone().requires_grad_(True)
    mcg.seed_score(model.logits(x), classes).backward()
    return x.grad.detach()


def deconv(model, x, classes):
    hooks = [m.register_forward_hook(lambda mod, i, o: DeconvReLU.apply(i[0])) for m in model.modules() if type(m) is nn.ReLU]
    g = input_grad(model, x, classes)
    for h in hooks:
        h.remove()
    return g


def ig_steps(n, rule):
    if rule == "gausslegendre":
        t, v = np.polynomial.legendre.leggauss(n)
        return list(0.5 * (t + 1)), list(0.5 * v)
    w = [1 / n] * n
    w[0] /= 2
    w[-1] /= 2
    return list(np.linspace(0, 1, n)), w


def integrated_gradients(model, x, classes, rule, n):
    alpha, w = ig_steps(n, rule)
    total = torch.zeros_like(x)
    for a, ws in zip(alpha, w):
        total += ws * input_grad(model, f32(a * x), classes)  # reference 0: x' + a (x - x') = a x
    return total * x


def noisy_samples(x, n, sigma, seed, extra):
    """The stream laid out as (rows, n, C*H*W normals [+ extra uniforms]) in C order -> noisy (N,n,...), extras."""
    rand = mulberry32(seed)
    per = x[0].numel()
    noisy = torch.zeros((x.shape[0], n) + tuple(x.shape[1:]), dtype=D)
    ex = torch.zeros(x.shape[0], n, extra, dtype=D)
    for i in range(x.shape[0]):
        for s in range(n):
            z = torch.tensor([normal(rand) for _ in range(per)], dtype=D).reshape(x.shape[1:])
            noisy[i, s] = f32(x[i] + sigma * z)
            for e in range(extra):
                ex[i, s, e] = rand()
    return noisy, ex


def tunnel(model, x, classes, noisy):
    g = torch.stack([input_grad(model, noisy[i], [classes[i]] * noisy.shape[1]) for i in range(x.shape[0])])  # (N,n,...)
    return g.mean(1), (g * g).mean(1) - g.mean(1) ** 2


def deeplift_shap(model, x, classes, n, seed):
    rand = mulberry32(seed)
    per = x[0].numel()
    refs = f32(torch.tensor([[normal(rand) for _ in range(per)] for _ in range(n)], dtype=D).reshape((n,) + tuple(x.shape[1:])))
    hooks = mf.install(model, "deeplift")
    out, expected = [], []
    for i, c in enumerate(classes):
        xs = x[i:i + 1].expand(n, -1, -1, -1)
        joint = torch.cat([xs, refs]).requires_grad_(True)
        yj = model.logits(joint)
        yj[:n, c].sum().backward()
        out.append((joint.grad[:n] * (xs - refs)).mean(0))
        expected.append((yj[0, c] - yj[n:, c].mean()).detach())
    for h in hooks:
        h.remove()
    return torch.stack(out).detach(), torch.stack(expected)


def gradient_shap(model, x, classes, noisy, alphas):
    out = []
    for i in range(x.shape[0]):
        d = noisy[i]  # x_s - 0, already float32-exact
        pts = f32(alphas[i, :, 0][:, None, None, None] * d)
        g = input_grad(model, pts, [classes[i]] * d.shape[0])
        out.append((d * g).mean(0))
    return torch.stack(out)


@torch.no_grad()
def occlusion(model, x, classes, window, stride, baseline):
    wh, ww = (window, window) if isinstance(window, int) else window
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    _, C, H, W = x.shape
    ys = list(range(0, H - wh + 1, sh))
    xs = list(range(0, W - ww + 1, sw))
    out = []
    for i, c in enumerate(classes):
        y = model.logits(x[i:i + 1])[0, c]
        batch, boxes = [], []
        for y0 in ys:
            for x0 in xs:
                t = x[i].clone()
                t[:, y0:y0 + wh, x0:x0 + ww] = baseline
                batch.append(t)
                boxes.append((y0, x0))
        diffs = y - model.logits(torch.stack(batch))[:, c]
        total = torch.zeros(H, W, dtype=D)
        count = torch.zeros(H, W, dtype=D)
        for (y0, x0), dv in zip(boxes, diffs):
            total[y0:y0 + wh, x0:x0 + ww] += dv
            count[y0:y0 + wh, x0:x0 + ww] += 1
        out.append(torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total)))
    return torch.stack(out)


def fem(a):
    mu = a.mean((2, 3), keepdim=True)
    sd = ((a - mu) ** 2).mean((2, 3), keepdim=True).sqrt()
    th = mu + 2 * sd
    w = (a > th).to(D).mean((2, 3))
    margin = ((a - th).abs().min() / a.abs().max()).item()
    return w, margin


def random_weights(n, k, seed):
    rand = mulberry32(seed)
    return torch.tensor([[float(np.float32(2 * rand() - 1)) for _ in range(k)] for _ in range(n)], dtype=D)


def compute(model, x, classes):
    out, info = {}, {}
    hw = x.shape[2:]
    a, logits, g, gx = mcg.grads(model, x, classes)
    out["inputxgradient.npy"] = gx * x
    out["deconvnet.npy"] = deconv(model, x, classes)
    for rule in ("gausslegendre", "riemann_trapezoid"):
        out[f"ig_{rule}.npy"] = integrated_gradients(model, x, classes, rule, PARAMS["ig_steps"])
    with torch.no_grad():
        y0 = model.logits(torch.zeros_like(x))
    expected = torch.stack([logits[i, c] - y0[i, c] for i, c in enumerate(classes)])
    out["ig_expected.npy"] = expected
    info["ig_gap"] = {r: (out[f"ig_{r}.npy"].flatten(1).sum(1) - expected).abs().max().item() for r in ("gausslegendre", "riemann_trapezoid")}
    n, sigma, seed = PARAMS["noise_n"], PARAMS["sigma"], PARAMS["seed"]
    noisy, _ = noisy_samples(x, n, sigma, seed, 0)
    out["smoothgrad.npy"], out["vargrad.npy"] = tunnel(model, x, classes, noisy)
    noisy, alphas = noisy_samples(x, n, sigma, seed, 1)
    out["gradientshap.npy"] = gradient_shap(model, x, classes, noisy, alphas)
    out["deepliftshap.npy"], out["deepliftshap_expected.npy"] = deeplift_shap(model, x, classes, n, seed)
    info["deepliftshap_gap"] = (out["deepliftshap.npy"].flatten(1).sum(1) - out["deepliftshap_expected.npy"]).abs().max().item()
    for key in ("occlusion", "occlusion_var"):
        p = PARAMS[key]
        out[f"{key}.npy"] = occlusion(model, x, classes, p["window"], p["stride"], p["baseline"])
    raw = (g * a).clamp_min(0).sum(1)
    out["gradcam_elementwise.raw.npy"], out["gradcam_elementwise.map.npy"] = raw, mcg.to_map(raw, hw)
    w, info["fem_margin"] = fem(a)
    raw = mcg.weighted(w, a)
    out["fem.weights.npy"], out["fem.raw.npy"], out["fem.map.npy"] = w, raw, mcg.to_map(raw, hw)
    w = random_weights(a.shape[0], a.shape[1], seed)
    raw = mcg.weighted(w, a)
    out["randomcam.weights.npy"], out["randomcam.raw.npy"], out["randomcam.map.npy"] = w, raw, mcg.to_map(raw, hw)
    out["classes.npy"] = torch.tensor(classes, dtype=D)
    return out, info


def run_fixture(name, builder, hw, seed):
    d = os.path.join(mf.OUT_DIR, name)
    model32, x_gen = mcg.build_model(builder, hw, seed)
    x = mcg.load(d, "x.npy")
    assert torch.equal(x_gen.to(D), x), f"{name}: regenerated x differs from x.npy"
    model = model32.double().eval()
    with torch.no_grad():
        logits = model.logits(x)
    e = mcg.rel(logits, mcg.load(d, "logits.npy"))
    assert e < 1e-5, f"{name}: logits differ from logits.npy: {e}"
    summary = {"params": PARAMS, "settings": {}}
    for setting in ("fixed", "top1"):
        classes = list(mf.CLASSES) if setting == "fixed" else [int(v) for v in logits.argmax(1)]
        out, info = compute(model, x, classes)
        os.makedirs(os.path.join(d, "methods", setting), exist_ok=True)
        for fn, t in sorted(out.items()):
            mcg.save(os.path.join(d, "methods", setting, fn), t)
        summary["settings"][setting] = info
        print(f"  {name} {setting}: {info}")
    with open(os.path.join(d, "methods", "params.json"), "w") as fh:
        json.dump(summary, fh, indent=1, sort_keys=True)
        fh.write("\n")


def main():
    only = set(sys.argv[1:])
    for name, builder, hw, _opset, seed in mf.FIXTURES:
        if name == "linear_fc" or (only and name not in only):
            continue
        run_fixture(name, builder, hw, seed)


if __name__ == "__main__":
    main()
