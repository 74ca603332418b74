#!/usr/bin/python3
"""Golden class-activation maps (and pixel attributions) for the fixture networks, per docs/METHODS.md.

Regenerate (after tools/make_fixtures.py; Debian's python with torch 1.13 / torchvision / numpy):

    /usr/bin/python3 tools/make_cam_goldens.py            # all fixtures except linear_fc
    /usr/bin/python3 tools/make_cam_goldens.py vgg resnet # a subset

The networks are rebuilt with make_fixtures.py's builders, seeds and calibration (the same float32 weights as
tests/fixtures/<name>/model.onnx; checked: logits on x.npy against logits.npy, and the fixture's own gradient /
guided / DeepLIFT goldens for classes [3,7]). Everything is computed in float64 from those float32 weights and
stored as float32 (numpy.save, C order, little endian). The output is byte-identical from run to run.

Layout: tests/fixtures/<name>/cam/<setting>/ with setting
    fixed   classes [3, 7] (image i uses c_i)
    top1    each image's argmax logit
and the target score y = sum_i logits[i, c_i] (images are independent, so d y / d A[i] is image i's gradient).
N = 2 images, A: (N,K,h,w) the target activation (meta.json "target"), x: (N,3,H,W) in normalised space.

Files in each <setting>/ (shapes: B = N):
    classes.npy                 (N,)       the class indices used, as float32
    <M>.weights.npy             (N,K)      channel weights, for M in
        gradcam         mean_ij g
        gradcam_neg     mean_ij (-g)                              (counterfactual)
        gradcampp       a = g^2 / (2 g^2 + S_k g^3 + 1e-6), S_k = sum_ab A_kab, a = 0 where g == 0;
                        w = sum_ij a * relu(g)                    (pytorch-grad-cam)
        gradcampp_norm  as gradcampp but a_kij / sum_ij a_kij for channels where that sum != 0 (the
                        Grad-CAM++ authors' code)
        xgradcam        sum_ij g A / (sum_ij A + 1e-7)
        liftcam         sum_ij m A, m = DeepLIFT (Rescale) multipliers of y at A through the head, A' = 0
        cam             W_fc[c, k]                                (resnet, mobilenet, effnet: GAP-Flatten-FC heads)
        scorecam        softmax_k(y_c(x * M_k)), M_k = A_k upsampled to (H,W) (bilinear, align_corners=True),
                        min-max normalised (M - min) / (max - min + 1e-8); M_k = 0 where A_k is constant
        scorecam_official  w_k = p_c(x * M_k) (softmax probability), M_k upsampled with align_corners=False,
                        (M - min) / (max - min), channels with constant A_k skipped (w_k = 0)
        ablationcam     (y_c - y_c^(k)) / y_c, y_c^(k) = head(A with channel k set to 0 if min(A[i]) == 0,
                        else min(A[i]) - 1e7)
        eigencam        v1, first right singular vector of the centred (Z,K) matrix (sign: see below)
    <M>.raw.npy                 (N,h,w)    sum_k w_k A_k (no ReLU); element-wise methods:
        layercam        sum_k relu(g_k) A_k
        hirescam        sum_k g_k A_k
        eigencam        (A_c @ v1) reshaped, A_c = A (Z,K) minus its channel means; the sign of v1 is chosen
                        so that the element of the projection with the largest |value| is positive
    <M>.map.npy                 (N,H,W)    relu(raw), per-image (v - min) / (max - min + 1e-7), then
                                           F.interpolate(bilinear, align_corners=False) to (H,W)
    gradcam.map_norelu.npy      (N,H,W)    no ReLU, min-max, resize
    gradcam.map_after.npy       (N,H,W)    ReLU, resize, then min-max over the (H,W) map
    gradcam.map_raw.npy         (N,H,W)    ReLU, resize, no normalisation
    saliency.npy                (N,H,W)    max over colour channels of |dy/dx|
    guided.npy                  (N,3,H,W)  guided backprop (nn.ReLU only: dx = dy [x > 0] [dy > 0])
    guided_gradcam.npy          (N,3,H,W)  guided * gradcam.map
    deeplift_pixel.npy          (N,3,H,W)  m * (x - 0), DeepLIFT Rescale through the whole network, x' = 0
    prob/gradcam.{weights,raw,map}.npy     Grad-CAM with y = softmax probability p_c  (fixed setting only)
tests/fixtures/<name>/cam/summary.json: per setting the classes, logits, top-1 margins, files and shapes,
conditioning numbers (constant channels, Grad-CAM++ denominators, Eigen-CAM singular-value gap and sign margin,
max relu(raw) per image) and "float32_rel_deviation": per file and image, max |f32 - f64| / max |f64| of the same
computation run in float32 (which goldens a float32 engine can match, and how closely); "checks": the invariants.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import copy  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402  (also sets 1 thread, deterministic algorithms, no mkldnn)

SETTINGS = ("fixed", "top1")
CHANNEL_METHODS = ("gradcam", "gradcam_neg", "gradcampp", "gradcampp_norm", "xgradcam", "liftcam", "cam",
                   "scorecam", "scorecam_official", "ablationcam")
ELEMENT_METHODS = ("layercam", "hirescam", "eigencam")
EPS_MAP = 1e-7
EPS_PP = 1e-6
EPS_XGRAD = 1e-7
EPS_SCORE = 1e-8
ABLATION_VALUE = 1e7
D = torch.float64


# ----------------------------------------------------------------------------------------------
# Model reconstruction (exactly build_fixture's steps up to calibration) and verification
# ----------------------------------------------------------------------------------------------
def build_model(builder, hw, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = builder()
    mf.check_modules(model)
    model.eval()
    x_cal = torch.randn(16, 3, hw, hw, generator=gen)
    mf.calibrate(model, x_cal, gen)
    x = torch.randn(mf.B, 3, hw, hw, generator=torch.Generator().manual_seed(seed + 2))
    return model, x


def load(d, f):
    return torch.from_numpy(np.load(os.path.join(d, f))).to(D)


def rel(a, b):
    """max |a - b| / max |b| (b the reference)."""
    a, b = torch.as_tensor(a, dtype=D), torch.as_tensor(b, dtype=D)
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def gap_linear(head):
    """The head's nn.Linear if the head is AdaptiveAvgPool2d(1) -> Flatten -> [Dropout] -> Linear, else None."""
    mods = [m for m in head if not isinstance(m, nn.Dropout)]
    if (len(mods) == 3 and isinstance(mods[0], nn.AdaptiveAvgPool2d) and mods[0].output_size in (1, (1, 1))
            and isinstance(mods[1], nn.Flatten) and isinstance(mods[2], nn.Linear)):
        return mods[2]
    return None


# ----------------------------------------------------------------------------------------------
# Map pipeline
# ----------------------------------------------------------------------------------------------
def minmax(v):
    # v: (N,h,w) -> per-image (v - min) / (max - min + 1e-7)
    lo = v.flatten(1).min(1)[0][:, None, None]
    hi = v.flatten(1).max(1)[0][:, None, None]
    return (v - lo) / (hi - lo + EPS_MAP)


def resize(v, hw):
    # v: (N,h,w) -> (N,H,W), bilinear, half-pixel centres
    return F.interpolate(v[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0]


def to_map(raw, hw, relu=True, norm="before"):
    v = raw.clamp_min(0) if relu else raw
    if norm == "before":
        v = minmax(v)
    v = resize(v, hw)
    if norm == "after":
        v = minmax(v)
    return v


def weighted(w, a):
    # w: (N,K), a: (N,K,h,w) -> (N,h,w)
    return torch.einsum("nk,nkhw->nhw", w, a)


# ----------------------------------------------------------------------------------------------
# Backward passes
# ----------------------------------------------------------------------------------------------
def seed_score(out, classes):
    return sum(out[i, c] for i, c in enumerate(classes))


def grads(model, x, classes, prob=False):
    """-> A (N,K,h,w), logits (N,10), g = dy/dA, gx = dy/dx for y = sum_i logit (or prob) [i, c_i]."""
    x = x.clone().requires_grad_(True)
    a = model.features(x)
    a.retain_grad()
    logits = model.head(a)
    out = torch.softmax(logits, 1) if prob else logits
    seed_score(out, classes).backward()
    return a.detach(), logits.detach(), a.grad.detach(), x.grad.detach()


def guided(model, x, classes):
    hooks = mf.install(model, "guided")
    xg = x.clone().requires_grad_(True)
    seed_score(model.logits(xg), classes).backward()
    for h in hooks:
        h.remove()
    return xg.grad.detach()


def deeplift(model, a, x, classes):
    """DeepLIFT multipliers (make_fixtures.py's rules) of y: at A through the head (A' = 0), and at x through
    the whole network (x' = 0). Also returns the deltas y(A) - y(0) and y(x) - y(0) per image."""
    n = a.shape[0]
    hooks = mf.install(model, "deeplift")
    joint = torch.cat([a, torch.zeros_like(a)]).requires_grad_(True)
    yj = model.head(joint)
    seed_score(yj[:n], classes).backward()
    m_act = joint.grad[:n].detach()
    d_act = torch.stack([yj[i, c] - yj[n + i, c] for i, c in enumerate(classes)]).detach()
    joint = torch.cat([x, torch.zeros_like(x)]).requires_grad_(True)
    yj = model.logits(joint)
    seed_score(yj[:n], classes).backward()
    m_in = joint.grad[:n].detach()
    d_in = torch.stack([yj[i, c] - yj[n + i, c] for i, c in enumerate(classes)]).detach()
    for h in hooks:
        h.remove()
    return m_act, d_act, m_in, d_in


# ----------------------------------------------------------------------------------------------
# Perturbation methods
# ----------------------------------------------------------------------------------------------
def constant_channels(a):
    # a: (N,K,h,w) -> (N,K) bool, A_k constant (max == min, exactly)
    f = a.flatten(2)
    return f.max(2)[0] == f.min(2)[0]


@torch.no_grad()
def scorecam(model, x, a, classes, official):
    """x: (N,3,H,W), a: (N,K,h,w) -> weights (N,K), scores (N,K)."""
    n, k = a.shape[:2]
    hw = x.shape[2:]
    up = F.interpolate(a, size=hw, mode="bilinear", align_corners=not official)  # (N,K,H,W)
    lo = up.flatten(2).min(2)[0][:, :, None, None]
    hi = up.flatten(2).max(2)[0][:, :, None, None]
    const = constant_channels(a)
    if official:  # constant channels are skipped below; no epsilon (as the official code)
        span = torch.where(const[:, :, None, None], torch.ones_like(hi), hi - lo)
        masks = (up - lo) / span
    else:
        masks = (up - lo) / (hi - lo + EPS_SCORE)
    masks = torch.where(const[:, :, None, None], torch.zeros_like(masks), masks)  # constant A_k: mask 0
    scores = torch.zeros(n, k, dtype=a.dtype)
    for i, c in enumerate(classes):
        out = model.logits(x[i:i + 1] * masks[i][:, None])  # (K,10)
        if official:
            out = torch.softmax(out, 1)
        scores[i] = out[:, c]
    if official:
        w = torch.where(const, torch.zeros_like(scores), scores)
    else:
        w = torch.softmax(scores, 1)
    return w, scores


@torch.no_grad()
def ablationcam(model, a, logits, classes):
    """a: (N,K,h,w) -> weights (N,K), ablation values (N,)."""
    n, k = a.shape[:2]
    w = torch.zeros(n, k, dtype=a.dtype)
    vals = []
    for i, c in enumerate(classes):
        amin = a[i].min()
        val = 0.0 if amin == 0 else amin.item() - ABLATION_VALUE
        vals.append(val)
        rep = a[i:i + 1].repeat(k, 1, 1, 1)
        idx = torch.arange(k)
        rep[idx, idx] = val
        yk = model.head(rep)[:, c]
        y = logits[i, c]
        w[i] = (y - yk) / y
    return w, vals


# ----------------------------------------------------------------------------------------------
# Eigen-CAM
# ----------------------------------------------------------------------------------------------
def eigencam(a):
    """a: (N,K,h,w) -> v1 (N,K), projection (N,h,w), conditioning info."""
    n, k, h, w = a.shape
    vs, projs, info = [], [], []
    for i in range(n):
        m = a[i].reshape(k, h * w).T.numpy()          # (Z,K)
        mc = m - m.mean(0, keepdims=True)
        _, s, vt = np.linalg.svd(mc, full_matrices=False)
        v = vt[0]
        p = mc @ v
        j = int(np.argmax(np.abs(p)))                  # first index on ties
        if p[j] < 0:
            v, p = -v, -p
        pos, neg = p.max(), -p.min()
        info.append({"s1_over_s0": float(s[1] / s[0]),
                     "min_over_max_abs_extremes": float(min(pos, neg) / max(pos, neg))})
        vs.append(torch.from_numpy(v.copy()))
        projs.append(torch.from_numpy(p.reshape(h, w).copy()))
    return torch.stack(vs), torch.stack(projs), info


# ----------------------------------------------------------------------------------------------
# One fixture, one setting
# ----------------------------------------------------------------------------------------------
def save(path, t):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4")))


def num(v):
    return float(v)


def compute_setting(model, x, classes, fixture_dir, setting, checks):
    """All files of one setting -> (files dict, info). checks=None: no checks (the float32 comparison run)."""
    out = {}
    hw = tuple(x.shape[2:])
    a, logits, g, gx = grads(model, x, classes)
    n, k, h, w = a.shape
    z = h * w
    info = {"classes": classes, "logit_c": [num(logits[i, c]) for i, c in enumerate(classes)]}
    srt = logits.sort(1, descending=True)[0]
    info["top1_margin"] = [num(srt[i, 0] - srt[i, 1]) for i in range(n)]

    weights = {}
    weights["gradcam"] = g.mean((2, 3))
    weights["gradcam_neg"] = (-g).mean((2, 3))
    s = a.sum((2, 3), keepdim=True)
    den = 2 * g ** 2 + s * g ** 3 + EPS_PP
    alpha = torch.where(g != 0, g ** 2 / den, torch.zeros_like(g))
    weights["gradcampp"] = (alpha * g.clamp_min(0)).sum((2, 3))
    asum = alpha.sum((2, 3), keepdim=True)
    alpha_n = alpha / torch.where(asum != 0, asum, torch.ones_like(asum))
    weights["gradcampp_norm"] = (alpha_n * g.clamp_min(0)).sum((2, 3))
    nz = g != 0
    info["gradcampp"] = {
        # |denominator| / g^2 = |2 + S g + 1e-6/g^2| near 0 -> alpha ill-conditioned (matters for _norm only
        # where g < 0, since relu(g) masks those positions in the plain weights)
        "min_abs_den_over_g2": num((den.abs() / g ** 2)[nz].min()) if nz.any() else None,
        "min_abs_alpha_sum": num(asum.abs()[asum != 0].min()) if (asum != 0).any() else None,
        "zero_alpha_sum_channels": int((asum == 0).sum()),
    }
    weights["xgradcam"] = (g * a).sum((2, 3)) / (a.sum((2, 3)) + EPS_XGRAD)

    m_act, d_act, m_in, d_in = deeplift(model, a, x, classes)
    weights["liftcam"] = (m_act * a).sum((2, 3))

    fc = gap_linear(model.head)
    if fc is not None:
        weights["cam"] = fc.weight.detach()[classes]

    weights["scorecam"], sc_scores = scorecam(model, x, a, classes, official=False)
    weights["scorecam_official"], sco_scores = scorecam(model, x, a, classes, official=True)
    weights["ablationcam"], abl_vals = ablationcam(model, a, logits, classes)
    const = constant_channels(a)
    span = (a.flatten(2).max(2)[0] - a.flatten(2).min(2)[0])
    info["constant_channels"] = [int(v) for v in const.sum(1)]
    nonzero = a.flatten(2).abs().max(2)[0] != 0
    info["constant_channels_nonzero"] = [int((const[i] & nonzero[i]).sum()) for i in range(n)]
    info["min_nonconstant_channel_range"] = num(span[~const].min())
    info["scorecam_scores_range"] = [num(sc_scores.min()), num(sc_scores.max())]
    info["scorecam_official_scores_range"] = [num(sco_scores.min()), num(sco_scores.max())]
    info["ablation_value"] = abl_vals

    raws = {m: weighted(wt, a) for m, wt in weights.items()}
    raws["layercam"] = (g.clamp_min(0) * a).sum(1)
    raws["hirescam"] = (g * a).sum(1)
    v1, proj, eig_info = eigencam(a)
    weights["eigencam"] = v1
    raws["eigencam"] = proj
    info["eigencam"] = eig_info

    maps = {m: to_map(r, hw) for m, r in raws.items()}
    maps["gradcam.map_norelu"] = to_map(raws["gradcam"], hw, relu=False)
    maps["gradcam.map_after"] = to_map(raws["gradcam"], hw, norm="after")
    maps["gradcam.map_raw"] = to_map(raws["gradcam"], hw, norm=None)

    for m, wt in weights.items():
        out[f"{m}.weights.npy"] = wt
    for m, r in raws.items():
        out[f"{m}.raw.npy"] = r
    for m, mp in maps.items():
        out[m + ".npy" if "." in m else f"{m}.map.npy"] = mp
    # conditioning of the map normalisation: max of relu(raw) per image (0 -> all-zero map)
    info["relu_raw_max"] = {m: [num(r[i].clamp_min(0).max()) for i in range(n)] for m, r in sorted(raws.items())}
    info["raw_range"] = {m: [num(r.min()), num(r.max())] for m, r in sorted(raws.items())}

    gd = guided(model, x, classes)
    out["saliency.npy"] = gx.abs().max(1)[0]
    out["guided.npy"] = gd
    out["guided_gradcam.npy"] = gd * maps["gradcam"][:, None]
    out["deeplift_pixel.npy"] = m_in * x

    if setting == "fixed":
        _, _, gp, _ = grads(model, x, classes, prob=True)  # g of y = sum_i p[i, c_i]
        wp = gp.mean((2, 3))
        rp = weighted(wp, a)
        out["prob/gradcam.weights.npy"] = wp
        out["prob/gradcam.raw.npy"] = rp
        out["prob/gradcam.map.npy"] = to_map(rp, hw)
    if checks is None:
        return out, info
    if setting == "fixed":
        # against the fixture's own goldens (classes [3,7]): same float64 values, stored there as float32
        for name, mine in (("grad_act", g), ("grad_input", gx), ("guided_input", gd), ("deeplift_act", m_act),
                           ("deeplift_input", m_in), ("act", a)):
            e = rel(mine, load(fixture_dir, name + ".npy"))
            checks[f"{setting}: {name} vs fixture golden (rel)"] = e
            assert e < 1e-6, (name, e)
        if fc is not None:  # softmax chain rule on a GAP-linear head: dp_c/dA_k = p_c (W[c,k] - sum_j p_j W[j,k]) / Z
            p = torch.softmax(logits, 1)
            wfc = fc.weight.detach()
            want = torch.stack([p[i, c] * (wfc[c] - p[i] @ wfc) / z for i, c in enumerate(classes)])
            checks[f"{setting}: prob gradcam weights vs p_c (W_c - p W) / Z (rel)"] = e = rel(wp, want)
            assert e < 1e-10, e

    # ---------------- invariants ----------------
    lift = weights["liftcam"]
    e = ((lift.sum(1) - d_act).abs() / d_act.abs()).max().item()
    checks[f"{setting}: liftcam sum_k w_k vs y(A)-y(0) (rel)"] = e
    assert e < 1e-10, e
    e = ((((m_in * x).flatten(1).sum(1)) - d_in).abs() / d_in.abs()).max().item()
    checks[f"{setting}: deeplift_pixel sum vs y(x)-y(0) (rel)"] = e
    assert e < 1e-10, e
    if fc is not None:
        wc = weights["cam"]
        checks[f"{setting}: CAM vs Z*gradcam (rel)"] = e1 = rel(z * weights["gradcam"], wc)
        meanA = a.mean((2, 3))
        ok = meanA != 0
        safe = torch.where(ok, meanA, torch.ones_like(meanA))
        checks[f"{setting}: CAM vs liftcam/mean(A_k), mean!=0 (rel)"] = e2 = rel((lift / safe)[ok], wc[ok])
        e3 = num(lift[~ok].abs().max()) if (~ok).any() else 0.0
        checks[f"{setting}: liftcam where mean(A_k)==0 (abs max)"] = e3
        checks[f"{setting}: liftcam vs W_fc*mean(A) (rel)"] = e4 = rel(lift, wc * meanA)
        checks[f"{setting}: hirescam raw vs gradcam raw (rel)"] = e5 = rel(raws["hirescam"], raws["gradcam"])
        e6 = 0.0
        if all(v == 0 for v in abl_vals):  # zeroing channel k removes exactly W[c,k] mean(A_k)
            e6 = rel(weights["ablationcam"] * torch.stack([logits[i, c] for i, c in enumerate(classes)])[:, None], lift)
            checks[f"{setting}: ablationcam*y vs liftcam (rel)"] = e6
        assert max(e1, e2, e3, e4, e5, e6) < 1e-10, (e1, e2, e3, e4, e5, e6)
    for m, mp in maps.items():
        if m == "gradcam.map_raw":
            continue
        assert mp.min() >= 0 and mp.max() <= 1, (m, mp.min(), mp.max())
    lo = min(num(mp.min()) for m, mp in maps.items() if m != "gradcam.map_raw")
    hi = max(num(mp.max()) for m, mp in maps.items() if m != "gradcam.map_raw")
    checks[f"{setting}: all maps within [0,1]: min, max"] = [lo, hi]
    ev = (weights["eigencam"].norm(dim=1) - 1).abs().max().item()
    assert ev < 1e-12
    return out, info


def per_image_dev(a32, a64):
    a32, a64 = a32.to(D), a64.to(D)
    out = []
    for i in range(a64.shape[0]):
        scale = a64[i].abs().max().item()
        out.append((a32[i] - a64[i]).abs().max().item() / scale if scale > 0 else (a32[i] - a64[i]).abs().max().item())
    return out


def run_fixture(name, builder, hw, seed, checks):
    d = os.path.join(mf.OUT_DIR, name)
    model32, x_gen = build_model(builder, hw, seed)
    x = load(d, "x.npy")
    assert torch.equal(x_gen.to(D), x), f"{name}: regenerated x differs from x.npy"
    model = copy.deepcopy(model32).double().eval()
    m32 = copy.deepcopy(model32).float().eval()
    with torch.no_grad():
        logits = model.logits(x)
    e = rel(logits, load(d, "logits.npy"))
    checks["logits vs logits.npy (rel)"] = e
    assert e < 1e-5, f"{name}: logits differ from logits.npy: {e}"
    with open(os.path.join(d, "meta.json")) as fh:
        meta = json.load(fh)
    assert meta["classes"] == mf.CLASSES

    cam_dir = os.path.join(d, "cam")
    for root, _, files in os.walk(cam_dir):  # only what this script writes: no stale goldens survive
        for fn in files:
            if fn.endswith(".npy") or fn == "summary.json":
                os.remove(os.path.join(root, fn))

    summary = {"fixture": name, "input": list(x.shape), "target": meta["target"], "settings": {}}
    total = 0
    for setting in SETTINGS:
        classes = list(mf.CLASSES) if setting == "fixed" else [int(v) for v in logits.argmax(1)]
        out, info = compute_setting(model, x, classes, d, setting, checks)
        # the same computation in float32 (as an engine would do it): per file and image, max |f32 - f64| /
        # max |f64| -- tells the tests which goldens are well-conditioned in float32
        out32, _ = compute_setting(m32, x.float(), classes, d, setting, None)
        info["float32_rel_deviation"] = {fn: per_image_dev(out32[fn], out[fn]) for fn in sorted(out)}
        out["classes.npy"] = torch.tensor(classes, dtype=D)
        for m in CHANNEL_METHODS + ELEMENT_METHODS:  # every method of the brief is present
            if m == "cam" and gap_linear(model.head) is None:
                continue
            want = ["raw", "map"] + (["weights"] if m in CHANNEL_METHODS or m == "eigencam" else [])
            assert all(f"{m}.{kind}.npy" in out for kind in want), (name, setting, m)
        files = {}
        for fn in sorted(out):
            p = os.path.join(cam_dir, setting, fn)
            save(p, out[fn])
            files[fn] = list(out[fn].shape)
            total += os.path.getsize(p)
        info["files"] = files
        summary["settings"][setting] = info
    a_shape = list(load(d, "act.npy").shape)
    summary["act_shape"] = a_shape
    summary["cam_available"] = gap_linear(model.head) is not None
    summary["checks"] = checks
    summary["notes"] = ("float64 from the float32 weights of model.onnx, stored float32; see the docstring of "
                        "tools/make_cam_goldens.py for the definitions")
    with open(os.path.join(cam_dir, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1, sort_keys=True)
        fh.write("\n")
    total += os.path.getsize(os.path.join(cam_dir, "summary.json"))
    return summary, total


def main():
    only = set(sys.argv[1:])
    grand = 0
    for name, builder, hw, _opset, seed in mf.FIXTURES:
        if name == "linear_fc" or (only and name not in only):
            continue
        checks = {}
        summary, total = run_fixture(name, builder, hw, seed, checks)
        grand += total
        print(f"\n[{name}]  A {summary['act_shape']}  input {summary['input']}  cam/ {total / 1024:.1f} KiB")
        for setting, info in summary["settings"].items():
            print(f"  {setting:<5} classes {info['classes']}  logit_c {[round(v, 4) for v in info['logit_c']]}  "
                  f"top1 margin {[round(v, 4) for v in info['top1_margin']]}")
            print(f"        constant channels {info['constant_channels']} "
                  f"(nonzero {info['constant_channels_nonzero']}), "
                  f"min non-constant range {info['min_nonconstant_channel_range']:.3g}, ablation value "
                  f"{info['ablation_value']}")
            gp = info["gradcampp"]
            print(f"        gradcam++: min |den|/g^2 {gp['min_abs_den_over_g2']:.3g}  min |sum a| "
                  f"{gp['min_abs_alpha_sum']:.3g}  zero-sum channels {gp['zero_alpha_sum_channels']}")
            print("        eigencam: " + "  ".join(f"s1/s0 {e['s1_over_s0']:.3f} extremes ratio "
                                                   f"{e['min_over_max_abs_extremes']:.3f}" for e in info["eigencam"]))
            zero = [m for m, v in info["relu_raw_max"].items() if min(v) == 0]
            dev = info["float32_rel_deviation"]
            worst = max(dev, key=lambda fn: max(dev[fn]))
            bad = {fn: [float(f"{v:.1e}") for v in dev[fn]] for fn in sorted(dev) if max(dev[fn]) > 1e-4}
            print(f"        maps all-zero for some image: {zero}  float32 vs float64: worst {worst} "
                  f"{max(dev[worst]):.1e}; above 1e-4 (per image): {bad}")
        for k, v in summary["checks"].items():
            print(f"  check  {k}: {v}")
    print(f"\nTotal cam/ size: {grand / 1024 / 1024:.2f} MiB")


if __name__ == "__main__":
    main()
