#!/usr/bin/python3
"""Build the small CNN fixture networks and the golden files the TypeScript tests compare against.

Regenerate everything (Debian's python, with torch 1.13 / torchvision / onnx / numpy installed):

    /usr/bin/python3 tools/make_fixtures.py

Fixtures (one directory each under tests/fixtures/):
    vgg         conv-BN-ReLU x2, MaxPool, standalone BN, dilated conv, AvgPool(count_include_pad=False),
                LeakyReLU, MaxPool(ceil_mode), conv-ReLU = A; head MaxPool-Flatten-FC-ReLU-FC-ReLU-FC (opset 13)
    resnet      conv7x7 stem + BN + MaxPool, two bottleneck blocks (grouped strided 3x3, 1x1 downsample);
                head GAP-Flatten-FC (input 64x64, opset 13)
    mobilenet   MobileNetV2 inverted residuals (ReLU6, depthwise); head GAP-Flatten-Dropout-FC (opset 13)
    squeezenet  Fire modules (Concat), MaxPool(ceil_mode); head Dropout-Conv1x1-ReLU-GAP-Flatten
                (input 64x64, opset 13)
    effnet      MBConv with SiLU, depthwise, squeeze-excitation (Sigmoid and Hardsigmoid gates), Hardswish,
                residual adds; head GAP-Flatten-FC (opset 14)
    linear_fc   two conv-ReLU, view(N,-1) Reshape, MatMul+Add, Unsqueeze/Squeeze, Softmax output
                (input 16x16, opset 13)

Files per fixture (every .npy is float32, C order, little endian, written by numpy.save):
    model.onnx        the exported network (input 'input' (N,3,H,W), output 'logits' (N,10); dynamic N).
                      For linear_fc the graph output is the softmax of the logits.
    x.npy             (B,3,H,W) input, B = 2, torch.randn with a fixed seed
    logits.npy        (B,10) pre-softmax logits
    probs.npy         (B,10) softmax(logits)  [linear_fc only]
    act.npy           (B,K,h,w) the target activation A (output of `features`)
    grad_act.npy      d(sum_i logits[i, c_i]) / dA, classes c = [3, 7]
    grad_input.npy    the same gradient w.r.t. x
    guided_input.npy  guided backprop w.r.t. x: at every nn.ReLU (only; not ReLU6 / LeakyReLU)
                      dx = dy * [x > 0] * [dy > 0]
    deeplift_act.npy  DeepLIFT (Rescale) multipliers of logits[i, c_i] w.r.t. A, reference A' = 0,
                      computed through the head only
    deeplift_input.npy  DeepLIFT (Rescale) multipliers of logits[i, c_i] w.r.t. x through the whole
                      network, reference x' = 0
    meta.json         input shape, classes, ONNX name of A ('target'), opset, ONNX op types (whole graph and
                      head = nodes downstream of A), summation-to-delta errors, and notes.

All golden values are computed in float64 from the float32 weights stored in model.onnx (the float32
results are also computed and their deviation from the float64 goldens is printed and stored in meta.json).
DeepLIFT rules (see docs/METHODS.md): Rescale at element-wise nonlinearities
((f(z)-f(z'))/(z-z'), f'(z) where |z-z'| < 1e-10), linear ops pass multipliers like gradients, MaxPool routes
dy*(y-y') to the actual / reference argmax, product of two non-constant tensors u*v gives dy*(v+v')/2 to u and
dy*(u+u')/2 to v. nn.SiLU is treated as the ONNX graph writes it: x * Sigmoid(x) (product rule + rescaled
Sigmoid); Hardswish is one ONNX op (HardSwish, opset 14) and gets the rescale rule as a whole.

Tolerances for float32 implementations (see meta.json "float32_max_rel_deviation"): forward values and
gradients agree with these goldens to ~1e-6 of max|value|. deeplift_input is ill-conditioned in float32
where |x_a - x'_a| at a MaxPool or |z - z'| at LeakyReLU / Sigmoid is small but above 1e-10 (the quotient
(y-y')/(x_a-x'_a) amplifies rounding): float32 torch deviates up to ~7e-4 of max|m| (vgg), so compare it
at ~2e-3 of max|m|, or compare the summed contributions sum(m * x).
"""
import copy
import hashlib
import json
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures")
B = 2
CLASSES = [3, 7]
EPS_RESCALE = 1e-10
LOGIT_STD = 3.0

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
torch.backends.mkldnn.enabled = False  # plain CPU kernels: identical results run to run


# ----------------------------------------------------------------------------------------------
# Model building blocks
# ----------------------------------------------------------------------------------------------
class Mul(nn.Module):
    """Element-wise product of two non-constant tensors (module so DeepLIFT can hook it)."""

    def forward(self, a, b):
        return a * b


class FixtureNet(nn.Module):
    """forward = head(features(x)); `return_act` exposes A as a second output (used once, to find its
    ONNX name); `softmax_out` appends a Softmax (linear_fc)."""

    def __init__(self, features, head, softmax_out=False):
        super().__init__()
        self.features = features
        self.head = head
        self.softmax_out = softmax_out
        self.return_act = False

    def logits(self, x):
        return self.head(self.features(x))

    def forward(self, x):
        a = self.features(x)
        y = self.head(a)
        if self.softmax_out:
            y = torch.softmax(y, dim=1)
        if self.return_act:
            return y, a
        return y


def conv_bn(cin, cout, k, s=1, p=0, groups=1, act=None):
    layers = [nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    def __init__(self, cin, mid, cout, stride=1, groups=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu3 = nn.ReLU()

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.relu2(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu3(y + idt)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, expand, stride):
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            conv_bn(cin, hid, 1, act=nn.ReLU6()),
            conv_bn(hid, hid, 3, stride, 1, groups=hid, act=nn.ReLU6()),
            conv_bn(hid, cout, 1),
        )

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.use_res else y


class Fire(nn.Module):
    def __init__(self, cin, sq, e1, e3):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, sq, 1)
        self.squeeze_act = nn.ReLU()
        self.expand1x1 = nn.Conv2d(sq, e1, 1)
        self.expand1x1_act = nn.ReLU()
        self.expand3x3 = nn.Conv2d(sq, e3, 3, padding=1)
        self.expand3x3_act = nn.ReLU()

    def forward(self, x):
        s = self.squeeze_act(self.squeeze(x))
        return torch.cat([self.expand1x1_act(self.expand1x1(s)), self.expand3x3_act(self.expand3x3(s))], 1)


class SqueezeExcite(nn.Module):
    def __init__(self, c, sq, act, gate):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, sq, 1)
        self.act = act
        self.fc2 = nn.Conv2d(sq, c, 1)
        self.gate = gate
        self.mul = Mul()

    def forward(self, x):
        s = self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))
        return self.mul(x, s)


class MBConv(nn.Module):
    def __init__(self, cin, cout, expand, k, stride, act, se_act, se_gate):
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            conv_bn(cin, hid, 1, act=act()),
            conv_bn(hid, hid, k, stride, k // 2, groups=hid, act=act()),
            SqueezeExcite(hid, max(4, cin // 4), se_act(), se_gate()),
            conv_bn(hid, cout, 1),
        )

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class LinearFCHead(nn.Module):
    """view(N,-1) -> MatMul with a (K,10) parameter -> Add bias -> unsqueeze(-1).squeeze(-1)."""

    def __init__(self, k, n=10):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(k, n) / k ** 0.5)
        self.bias = nn.Parameter(torch.zeros(n))

    def forward(self, a):
        f = a.view(a.size(0), -1)
        y = torch.matmul(f, self.weight) + self.bias
        return y.unsqueeze(-1).squeeze(-1)


def make_vgg():
    features = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),          # 0-2   32x32
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),         # 3-5
        nn.MaxPool2d(2),                                                        # 6     16x16
        nn.BatchNorm2d(16),                                                     # 7     standalone BN
        nn.Conv2d(16, 32, 3, padding=2, dilation=2), nn.ReLU(),                 # 8-9
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),          # 10
        nn.Conv2d(32, 32, 3, padding=1), nn.LeakyReLU(0.1),                     # 11-12
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),                   # 13    9x9
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),                             # 14-15 A: 32x9x9
    )
    head = nn.Sequential(
        nn.MaxPool2d(2), nn.Flatten(),                                          # 32x4x4 -> 512
        nn.Linear(512, 64), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(64, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )
    return FixtureNet(features, head)


def make_resnet():
    features = nn.Sequential(
        nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),   # 32x32
        nn.MaxPool2d(3, 2, 1),                                                  # 16x16
        Bottleneck(16, 8, 16),                                                  # identity residual
        Bottleneck(16, 16, 32, stride=2, groups=2),                             # A: 32x8x8
    )
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    return FixtureNet(features, head)


def make_mobilenet():
    features = nn.Sequential(
        conv_bn(3, 16, 3, 2, 1, act=nn.ReLU6()),                                # 16x16
        InvertedResidual(16, 16, 4, 1),
        InvertedResidual(16, 24, 4, 2),                                         # 8x8
        InvertedResidual(24, 24, 4, 1),
        conv_bn(24, 64, 1, act=nn.ReLU6()),                                     # A: 64x8x8
    )
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, 10))
    return FixtureNet(features, head)


def make_squeezenet():
    features = nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2), nn.ReLU(),                               # 31x31
        nn.MaxPool2d(3, 2, ceil_mode=True),                                     # 15x15
        Fire(32, 8, 16, 16), Fire(32, 8, 16, 16),
        nn.MaxPool2d(3, 2, ceil_mode=True),                                     # 7x7
        Fire(32, 16, 32, 32),                                                   # A: 64x7x7
    )
    head = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(64, 10, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return FixtureNet(features, head)


def make_effnet():
    features = nn.Sequential(
        conv_bn(3, 16, 3, 2, 1, act=nn.SiLU()),                                                  # 16x16
        MBConv(16, 16, 4, 3, 1, nn.SiLU, nn.SiLU, nn.Sigmoid),                                   # residual
        MBConv(16, 24, 3, 3, 2, nn.Hardswish, nn.ReLU, nn.Hardsigmoid),                          # 8x8
        MBConv(24, 24, 3, 5, 1, nn.SiLU, nn.SiLU, nn.Sigmoid),                                   # residual
        conv_bn(24, 64, 1, act=nn.SiLU()),                                                       # A: 64x8x8
    )
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    return FixtureNet(features, head)


def make_linear_fc():
    features = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),              # 8x8
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),                               # A: 8x8x8
    )
    return FixtureNet(features, LinearFCHead(8 * 8 * 8), softmax_out=True)


# name, builder, input H (=W), opset, seed
FIXTURES = [
    ("vgg", make_vgg, 32, 13, 101),
    ("resnet", make_resnet, 64, 13, 202),
    ("mobilenet", make_mobilenet, 32, 13, 303),
    ("squeezenet", make_squeezenet, 64, 13, 404),
    ("effnet", make_effnet, 32, 14, 505),
    ("linear_fc", make_linear_fc, 16, 13, 606),
]

NONLINEAR = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Sigmoid, nn.Hardsigmoid, nn.Hardswish, nn.SiLU, nn.MaxPool2d, Mul)
LINEAR = (nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.Flatten, nn.Dropout, nn.AvgPool2d, nn.AdaptiveAvgPool2d)


# ----------------------------------------------------------------------------------------------
# Data-driven initialisation: every conv / linear output channel gets unit std on a calibration batch
# (LSUV-like, in execution order), biases N(0, 0.2^2); BN gets running stats near the true batch
# statistics (perturbed), random affine weight / bias. Activations neither vanish nor explode.
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def calibrate(model, x_cal, gen):
    def rnd(*shape):
        return torch.randn(*shape, generator=gen)

    def uni(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    def conv_hook(m, inp, out):
        bias = m.bias
        if isinstance(m, nn.Conv2d):
            view = (1, -1, 1, 1)
            dims = (0, 2, 3)
        else:
            view = (1, -1)
            dims = (0,)
        nb = out - bias.view(view) if bias is not None else out
        std = nb.std(dim=dims).clamp_min(1e-3)
        if isinstance(m, nn.Conv2d):
            m.weight.div_(std.view(-1, 1, 1, 1))
        else:
            m.weight.div_(std.view(-1, 1))
        nb = nb / std.view(view)
        if bias is not None:  # centre the pre-activation (about half the units active), small offset
            bias.copy_(-nb.mean(dim=dims) + 0.2 * rnd(bias.numel()))
            return nb + bias.view(view)
        return nb

    def bn_hook(m, inp, out):
        x = inp[0]
        mean = x.mean((0, 2, 3))
        var = x.var((0, 2, 3))
        m.running_mean.copy_(mean + 0.1 * rnd(mean.numel()) * var.sqrt())
        m.running_var.copy_(var * uni(0.6, 1.5, var.numel()))
        m.weight.copy_(uni(0.6, 1.4, var.numel()))
        m.bias.copy_(0.1 * rnd(var.numel()))
        return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    hooks = []
    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.BatchNorm2d):
            hooks.append(mod.register_forward_hook(bn_hook))
    model.eval()
    model.logits(x_cal)
    for h in hooks:
        h.remove()
    if isinstance(model.head, LinearFCHead):  # parameters outside nn.Linear: scale like the others
        a = model.features(x_cal).flatten(1)
        std = (a @ model.head.weight).std(0).clamp_min(1e-3)
        model.head.weight.div_(std)
        model.head.bias.copy_(-(a @ model.head.weight).mean(0) + 0.2 * rnd(10))
    # logits spread of about LOGIT_STD: scale the last conv / linear layer (positively homogeneous after it)
    last = [mod for mod in model.head.modules() if isinstance(mod, (nn.Conv2d, nn.Linear, LinearFCHead))][-1]
    y = model.logits(x_cal)
    k = LOGIT_STD / y.std().item()
    last.weight.mul_(k)
    last.bias.mul_(k)


# ----------------------------------------------------------------------------------------------
# Guided backprop and DeepLIFT as autograd Functions (installed with forward hooks)
# ----------------------------------------------------------------------------------------------
class GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0).to(g.dtype) * (g > 0).to(g.dtype)


def _halves(t):
    n = t.shape[0] // 2
    return t[:n], t[n:]


class RescaleFn(torch.autograd.Function):
    """Joint batch [actual; reference]. Backward gives the actual half the Rescale multiplier
    (f(z)-f(z'))/(z-z') (f'(z) where |z-z'| < 1e-10) times dy; the reference half gets 0 (it is never
    seeded: only the actual half of the output is differentiated)."""

    @staticmethod
    def forward(ctx, z, f):
        ctx.f = f
        ctx.save_for_backward(z)
        with torch.no_grad():
            return f(z)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        f = ctx.f
        za, zr = _halves(z)
        ga, _ = _halves(g)
        with torch.enable_grad():
            t = za.detach().requires_grad_(True)
            fa = f(t)
            deriv = torch.autograd.grad(fa.sum(), t)[0]
        fa = fa.detach()
        fr = f(zr)
        d = za - zr
        big = d.abs() >= EPS_RESCALE
        mult = torch.where(big, (fa - fr) / torch.where(big, d, torch.ones_like(d)), deriv)
        return torch.cat([ga * mult, torch.zeros_like(zr)]), None


class ProductFn(torch.autograd.Function):
    """u*v of two non-constant tensors (broadcasting allowed): dy*(v+v')/2 to u, dy*(u+u')/2 to v."""

    @staticmethod
    def forward(ctx, u, v):
        ctx.save_for_backward(u, v)
        return u * v

    @staticmethod
    def backward(ctx, g):
        u, v = ctx.saved_tensors
        ua, ur = _halves(u)
        va, vr = _halves(v)
        ga, _ = _halves(g)
        gu = (ga * (va + vr) * 0.5).sum_to_size(ua.shape)
        gv = (ga * (ua + ur) * 0.5).sum_to_size(va.shape)
        return torch.cat([gu, torch.zeros_like(ur)]), torch.cat([gv, torch.zeros_like(vr)])


class MaxPoolDeepLiftFn(torch.autograd.Function):
    """MaxPool rule: window j with actual argmax a and reference argmax a' (PyTorch's indices: first
    index on ties). dy_j*(y_j-y'_j)/(x_a-x'_a) goes to a if |x_a-x'_a| >= 1e-10; else
    dy_j*(y_j-y'_j)/(x_a'-x'_a') to a' if that difference is >= 1e-10; else dy_j to a."""

    @staticmethod
    def forward(ctx, x, m):
        y, idx = F.max_pool2d(x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, return_indices=True)
        ctx.save_for_backward(x, y, idx)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y, idx = ctx.saved_tensors
        n, c, h, w = x.shape
        xa, xr = _halves(x.reshape(n, c, h * w))
        ya, yr = _halves(y.reshape(n, c, -1))
        ia, ir = _halves(idx.reshape(n, c, -1))
        ga, _ = _halves(g.reshape(n, c, -1))
        d1 = xa.gather(2, ia) - xr.gather(2, ia)
        d2 = xa.gather(2, ir) - xr.gather(2, ir)
        dy = ya - yr
        c1 = d1.abs() >= EPS_RESCALE
        c2 = ~c1 & (d2.abs() >= EPS_RESCALE)
        c3 = ~c1 & ~c2
        one = torch.ones_like(d1)
        val_a = torch.where(c1, ga * dy / torch.where(c1, d1, one), torch.where(c3, ga, torch.zeros_like(ga)))
        val_r = torch.where(c2, ga * dy / torch.where(c2, d2, one), torch.zeros_like(ga))
        gx = torch.zeros_like(xa)
        gx.scatter_add_(2, ia, val_a)
        gx.scatter_add_(2, ir, val_r)
        return torch.cat([gx, torch.zeros_like(xr)]).reshape(n, c, h, w), None


def _sigmoid(t):
    return torch.sigmoid(t)


def deeplift_hook(m, inp, out):
    x = inp[0]
    if isinstance(m, nn.MaxPool2d):
        return MaxPoolDeepLiftFn.apply(x, m)
    if isinstance(m, Mul):
        return ProductFn.apply(inp[0], inp[1])
    if isinstance(m, nn.SiLU):  # as exported: Mul(x, Sigmoid(x))
        return ProductFn.apply(x, RescaleFn.apply(x, _sigmoid))
    return RescaleFn.apply(x, m.forward)  # ReLU, ReLU6, LeakyReLU, Sigmoid, Hardsigmoid, Hardswish
    # (m.forward, not m(...): calling the module would re-enter this hook)


def install(model, kind):
    hooks = []
    for mod in model.modules():
        if kind == "deeplift" and isinstance(mod, NONLINEAR):
            hooks.append(mod.register_forward_hook(deeplift_hook))
        elif kind == "guided" and type(mod) is nn.ReLU:
            hooks.append(mod.register_forward_hook(lambda m, i, o: GuidedReLU.apply(i[0])))
    return hooks


def target_score(logits):
    return sum(logits[i, c] for i, c in enumerate(CLASSES))


# ----------------------------------------------------------------------------------------------
# Golden computation (in the model's dtype; run in float64 for the files and float32 for comparison)
# ----------------------------------------------------------------------------------------------
def goldens(model, x):
    out = {}
    x = x.clone().requires_grad_(True)
    a = model.features(x)
    a.retain_grad()
    logits = model.head(a)
    target_score(logits).backward()
    out["logits"] = logits.detach()
    out["act"] = a.detach()
    out["grad_act"] = a.grad.detach()
    out["grad_input"] = x.grad.detach()
    if model.softmax_out:
        out["probs"] = torch.softmax(logits.detach(), 1)

    hooks = install(model, "guided")
    xg = x.detach().clone().requires_grad_(True)
    target_score(model.logits(xg)).backward()
    out["guided_input"] = xg.grad.detach()
    for h in hooks:
        h.remove()

    hooks = install(model, "deeplift")
    err = {}
    # head-only DeepLIFT at A, reference A' = 0
    aa = out["act"]
    joint = torch.cat([aa, torch.zeros_like(aa)]).requires_grad_(True)
    yj = model.head(joint)
    target_score(yj[:B]).backward()
    m_act = joint.grad[:B].detach()
    out["deeplift_act"] = m_act
    delta = torch.stack([yj[i, c] - yj[B + i, c] for i, c in enumerate(CLASSES)]).detach()
    contrib = (m_act * aa).flatten(1).sum(1)
    err["deeplift_act"] = summation_error(contrib, delta)
    # pixel DeepLIFT, reference x' = 0
    xd = x.detach()
    joint = torch.cat([xd, torch.zeros_like(xd)]).requires_grad_(True)
    yj = model.logits(joint)
    target_score(yj[:B]).backward()
    m_in = joint.grad[:B].detach()
    out["deeplift_input"] = m_in
    delta = torch.stack([yj[i, c] - yj[B + i, c] for i, c in enumerate(CLASSES)]).detach()
    contrib = (m_in * xd).flatten(1).sum(1)
    err["deeplift_input"] = summation_error(contrib, delta)
    for h in hooks:
        h.remove()
    return out, err


@torch.no_grad()
def selftest_rules():
    """Hand-checked cases for the DeepLIFT Functions (the summation check alone cannot see misrouting)."""
    d = torch.float64
    m = nn.MaxPool2d(2)
    # one 2x2 window per image; actual then reference
    cases = [  # actual, reference, expected multipliers (dy = 1)
        ([1, 3, 2, 0], [5, 0, 0, 0], [0, (3 - 5) / 3, 0, 0]),  # |x_a - x'_a| = 3: all of dy*(y-y') to a
        ([1, 3, 2, 0], [5, 3, 0, 0], [(3 - 5) / (1 - 5), 0, 0, 0]),  # x_a = x'_a: to a' = 0
        ([3, 3, 0, 0], [3, 3, 1, 0], [1, 0, 0, 0]),  # both differences 0: plain gradient to a (first max)
    ]
    for xa, xr, want in cases:
        x = torch.tensor([xa, xr], dtype=d).view(2, 1, 2, 2)
        with torch.enable_grad():
            x.requires_grad_(True)
            y = MaxPoolDeepLiftFn.apply(x, m)
            y[:1].sum().backward()
        got = x.grad[0].flatten().tolist()
        assert np.allclose(got, want), (xa, xr, got, want)
        assert x.grad[1].abs().sum() == 0
    # rescale: multiplier, and fallback to f'(z) when z == z'
    z = torch.tensor([[2.0, -1.0, 0.5, 1.0], [-2.0, -3.0, 0.5, 1.0]], dtype=d)
    with torch.enable_grad():
        z.requires_grad_(True)
        RescaleFn.apply(z, torch.sigmoid)[:1].sum().backward()
    s = torch.sigmoid(torch.tensor([2.0, -1.0, 0.5, 1.0], dtype=d))
    sr = torch.sigmoid(torch.tensor([-2.0, -3.0], dtype=d))
    want = [(s[0] - sr[0]) / 4, (s[1] - sr[1]) / 2, s[2] * (1 - s[2]), s[3] * (1 - s[3])]
    assert np.allclose(z.grad[0].tolist(), [float(w) for w in want])
    # product with broadcasting: u (2,2) * v (2,1)
    u = torch.tensor([[1.0, 2.0], [3.0, 5.0]], dtype=d).view(2, 1, 2)
    v = torch.tensor([[4.0], [6.0]], dtype=d).view(2, 1, 1)
    with torch.enable_grad():
        u.requires_grad_(True)
        v.requires_grad_(True)
        ProductFn.apply(u, v)[:1].sum().backward()
    assert np.allclose(u.grad[0].flatten().tolist(), [5.0, 5.0])  # (4+6)/2
    assert np.allclose(v.grad[0].flatten().tolist(), [(1 + 3) / 2 + (2 + 5) / 2])


def check_vgg_head_by_hand(model, a, m_act):
    """Independent numpy DeepLIFT of the VGG head (MaxPool-Flatten-FC-ReLU-FC-ReLU-FC) with A' = 0, A >= 0:
    max-pool routing is then ordinary gradient routing, ReLUs use the rescale multiplier."""
    h = model.head
    W1, b1 = h[2].weight.detach().numpy(), h[2].bias.detach().numpy()
    W2, b2 = h[5].weight.detach().numpy(), h[5].bias.detach().numpy()
    W3 = h[7].weight.detach().numpy()
    a = a.numpy()
    n, k, hh, ww = a.shape
    ho, wo = hh // 2, ww // 2
    win = a[:, :, : ho * 2, : wo * 2].reshape(n, k, ho, 2, wo, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, k, ho, wo, 4)
    p = win.max(-1)
    arg = win.argmax(-1)  # first index on ties
    out = np.zeros_like(a)

    def resc(z, zr):
        dz = z - zr
        big = np.abs(dz) >= EPS_RESCALE
        return np.where(big, (np.maximum(z, 0) - np.maximum(zr, 0)) / np.where(big, dz, 1), (z > 0) * 1.0)

    for i, c in enumerate(CLASSES):
        f = p[i].reshape(-1)
        z1, z1r = W1 @ f + b1, b1
        r1, r1r = np.maximum(z1, 0), np.maximum(z1r, 0)
        z2, z2r = W2 @ r1 + b2, W2 @ r1r + b2
        mz2 = W3[c] * resc(z2, z2r)
        mz1 = (W2.T @ mz2) * resc(z1, z1r)
        mp = (W1.T @ mz1).reshape(k, ho, wo)
        for ch in range(k):
            for y in range(ho):
                for x in range(wo):
                    j = arg[i, ch, y, x]
                    out[i, ch, 2 * y + j // 2, 2 * x + j % 2] += mp[ch, y, x]
    err = np.abs(out - m_act.numpy()).max() / np.abs(out).max()
    assert err < 1e-12, err
    return err


def summation_error(contrib, delta):
    absd = (contrib - delta).abs()
    return {
        "sum_contrib": [float(v) for v in contrib],
        "delta": [float(v) for v in delta],
        "abs": [float(v) for v in absd],
        "rel": [float(v) for v in absd / delta.abs().clamp_min(1e-12)],
    }


def check_modules(model):
    for name, mod in model.named_modules():
        if len(list(mod.children())) == 0 and not isinstance(mod, NONLINEAR + LINEAR) and not isinstance(
            mod, LinearFCHead
        ):
            raise RuntimeError(f"unhandled leaf module {name}: {type(mod).__name__}")


# ----------------------------------------------------------------------------------------------
# ONNX export and graph inspection
# ----------------------------------------------------------------------------------------------
def export(model, x, path, opset, output_names=("logits",)):
    torch.onnx.export(
        model, x, path, opset_version=opset, input_names=["input"], output_names=list(output_names),
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True,
    )


def downstream_nodes(graph, tensor):
    live = {tensor}
    nodes = []
    for node in graph.node:  # ONNX nodes are topologically sorted
        if any(i in live for i in node.input):
            nodes.append(node)
            live.update(node.output)
    return nodes


def onnx_notes(graph):
    notes = []
    inits = {t.name: t for t in graph.initializer}
    consts = {}
    for node in graph.node:
        if node.op_type == "Constant":
            for at in node.attribute:
                if at.name == "value":
                    consts[node.output[0]] = onnx.numpy_helper.to_array(at.t)
    for node in graph.node:
        attrs = {at.name: onnx.helper.get_attribute_value(at) for at in node.attribute}
        if node.op_type == "Gemm":
            notes.append(f"Gemm transA={attrs.get('transA', 0)} transB={attrs.get('transB', 0)}")
        if node.op_type == "Reshape":
            shp = node.input[1]
            val = consts.get(shp)
            if val is None and shp in inits:
                val = onnx.numpy_helper.to_array(inits[shp])
            notes.append(f"Reshape shape={'computed' if val is None else val.tolist()}")
        if node.op_type == "Flatten":
            notes.append(f"Flatten axis={attrs.get('axis', 1)}")
        if node.op_type in ("MaxPool", "AveragePool"):
            notes.append(
                f"{node.op_type} k={attrs.get('kernel_shape')} s={attrs.get('strides')} p={attrs.get('pads')}"
                + (f" ceil={attrs['ceil_mode']}" if "ceil_mode" in attrs else "")
                + (f" cip={attrs['count_include_pad']}" if "count_include_pad" in attrs else "")
            )
        if node.op_type in ("LeakyRelu", "HardSigmoid", "Softmax", "Squeeze", "Unsqueeze", "Concat"):
            notes.append(f"{node.op_type} {attrs}")
    return sorted(set(notes))


def _pool_out(n, k, s, p0, p1, d, ceil):
    v = (n + p0 + p1 - ((k - 1) * d + 1)) / s + 1
    return int(np.ceil(v) if ceil else np.floor(v))


def run_onnx(graph, x, keep=()):
    """Tiny float64 interpreter for the ops in these fixtures (the installed onnx 1.12 has no reference
    evaluator and onnxruntime is absent). Checks that the exported graph (folded BN, pads, ceil_mode,
    count_include_pad, Reshape from Shape, ...) computes the goldens. Pool output sizes follow the ONNX
    formula and are compared with torch's."""
    env = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in graph.initializer}
    env = {k: (v.double() if v.is_floating_point() else v) for k, v in env.items()}
    env[graph.input[0].name] = x.double()
    for node in graph.node:
        a = {at.name: onnx.helper.get_attribute_value(at) for at in node.attribute}
        i = [env[n] if n else None for n in node.input]
        op = node.op_type
        if op == "Constant":
            v = torch.from_numpy(onnx.numpy_helper.to_array(a["value"]).copy())
            r = v.double() if v.is_floating_point() else v
        elif op == "Conv":
            pads = a.get("pads", [0, 0, 0, 0])
            assert pads[0] == pads[2] and pads[1] == pads[3]
            r = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a.get("strides", [1, 1]), pads[:2],
                         a.get("dilations", [1, 1]), a.get("group", 1))
        elif op in ("MaxPool", "AveragePool"):
            k, st, pads = a["kernel_shape"], a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])
            ceil = bool(a.get("ceil_mode", 0))
            assert pads[0] == pads[2] and pads[1] == pads[3]
            if op == "MaxPool":
                r = F.max_pool2d(i[0], k, st, pads[:2], a.get("dilations", [1, 1]), ceil)
            else:
                r = F.avg_pool2d(i[0], k, st, pads[:2], ceil, bool(a.get("count_include_pad", 0)))
            want = [_pool_out(i[0].shape[2 + j], k[j], st[j], pads[j], pads[j + 2], 1, ceil) for j in range(2)]
            assert list(r.shape[2:]) == want, (node.name, list(r.shape[2:]), want)
        elif op == "BatchNormalization":
            r = F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0, a.get("epsilon", 1e-5))
        elif op == "Relu":
            r = i[0].clamp_min(0)
        elif op == "LeakyRelu":
            r = F.leaky_relu(i[0], a.get("alpha", 0.01))
        elif op == "Clip":
            r = i[0].clamp(float(i[1]), float(i[2]))
        elif op == "Sigmoid":
            r = torch.sigmoid(i[0])
        elif op == "HardSigmoid":
            r = (a.get("alpha", 0.2) * i[0] + a.get("beta", 0.5)).clamp(0, 1)
        elif op == "HardSwish":
            r = i[0] * (i[0] / 6 + 0.5).clamp(0, 1)
        elif op == "Add":
            r = i[0] + i[1]
        elif op == "Mul":
            r = i[0] * i[1]
        elif op == "MatMul":
            r = i[0] @ i[1]
        elif op == "Gemm":
            A = i[0].T if a.get("transA", 0) else i[0]
            Bm = i[1].T if a.get("transB", 0) else i[1]
            r = a.get("alpha", 1.0) * (A @ Bm) + (a.get("beta", 1.0) * i[2] if len(i) > 2 else 0)
        elif op == "GlobalAveragePool":
            r = i[0].mean((2, 3), keepdim=True)
        elif op == "Flatten":
            ax = a.get("axis", 1)
            r = i[0].reshape(int(np.prod(i[0].shape[:ax])), -1)
        elif op == "Concat":
            r = torch.cat(i, a["axis"])
        elif op == "Shape":
            r = torch.tensor(i[0].shape, dtype=torch.int64)
        elif op == "Gather":
            r = torch.index_select(i[0], a.get("axis", 0), i[1].reshape(-1)).reshape(
                list(i[0].shape[: a.get("axis", 0)]) + list(i[1].shape) + list(i[0].shape[a.get("axis", 0) + 1 :]))
        elif op == "Unsqueeze":
            r = i[0]
            for ax in sorted(int(v) for v in i[1].reshape(-1)):
                r = r.unsqueeze(ax if ax >= 0 else ax + r.dim() + 1)
        elif op == "Squeeze":
            r = i[0]
            for ax in sorted((int(v) % r.dim() for v in i[1].reshape(-1)), reverse=True):
                r = r.squeeze(ax)
        elif op == "Reshape":
            r = i[0].reshape([int(v) for v in i[1]])
        elif op == "Softmax":
            r = torch.softmax(i[0], a.get("axis", -1))
        else:
            raise NotImplementedError(op)
        env[node.output[0]] = r
    return env[graph.output[0].name], {k: env[k] for k in keep}


def save_npy(path, t):
    arr = np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4"))
    np.save(path, arr)


def build_fixture(name, builder, hw, opset, seed):
    d = os.path.join(OUT_DIR, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):  # only what this script writes: no stale goldens survive a change
        if f.endswith(".npy") or f in ("model.onnx", "meta.json"):
            os.remove(os.path.join(d, f))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = builder()
    check_modules(model)
    model.eval()
    x_cal = torch.randn(16, 3, hw, hw, generator=gen)
    calibrate(model, x_cal, gen)
    x = torch.randn(B, 3, hw, hw, generator=torch.Generator().manual_seed(seed + 2))

    # ONNX: the model itself, and once more with A exposed to learn A's tensor name
    onnx_path = os.path.join(d, "model.onnx")
    tmp_path = os.path.join(d, "_with_act.onnx")
    export(model, x, onnx_path, opset)
    model.return_act = True
    export(model, x, tmp_path, opset)
    model.return_act = False
    g2 = onnx.load(tmp_path).graph
    os.remove(tmp_path)
    # torch 1.13 gives an extra graph output a generic name ('onnx::MaxPool_47'), but the node producing it
    # keeps its scoped name ('/features/features.15/Relu'); the same node in model.onnx gives A's name.
    out2 = g2.output[1].name
    prod2 = next(n for n in g2.node if out2 in n.output)
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m)
    g = m.graph
    same = [n for n in g.node if n.name == prod2.name]
    assert len(same) == 1 and same[0].op_type == prod2.op_type, f"{name}: node {prod2.name} not in model.onnx"
    target = same[0].output[list(prod2.output).index(out2)]
    produced = {o for n in g.node for o in n.output}
    assert target in produced, f"{name}: target {target} not produced by a node of model.onnx"
    ops = sorted({n.op_type for n in g.node})
    head_nodes = downstream_nodes(g, target)
    head_ops = sorted({n.op_type for n in head_nodes})
    n_bn = sum(n.op_type == "BatchNormalization" for n in g.node)
    producer = next(n for n in g.node if target in n.output)

    # goldens in float64 (files) and float32 (comparison only)
    m64 = copy.deepcopy(model).double().eval()
    gold, err = goldens(m64, x.double())
    if name == "vgg":
        print(f"vgg head DeepLIFT by hand vs hooks: max rel diff {check_vgg_head_by_hand(m64, gold['act'], gold['deeplift_act']):.1e}")
    if all(not isinstance(mod, NONLINEAR) for mod in model.head.modules()):
        assert torch.equal(gold["deeplift_act"], gold["grad_act"]), f"{name}: linear head but m != g"
    m32 = copy.deepcopy(model).float().eval()
    gold32, err32 = goldens(m32, x)
    dev32 = {}
    for k, v in gold.items():
        scale = v.abs().max().item()
        dev32[k] = (gold32[k].double() - v).abs().max().item() / max(scale, 1e-30)

    for k, v in err.items():
        assert max(v["rel"]) < 1e-5, f"{name} {k}: summation-to-delta error {max(v['rel'])}"

    y_onnx, kept = run_onnx(g, x, keep=[target])
    ref = gold["probs"] if model.softmax_out else gold["logits"]
    onnx_dev = max((y_onnx - ref).abs().max().item() / ref.abs().max().item(),
                   (kept[target] - gold["act"]).abs().max().item() / gold["act"].abs().max().item())
    assert onnx_dev < 1e-5, f"{name}: ONNX interpreter disagrees with torch: {onnx_dev}"

    files = {"x": x}
    files.update(gold)
    for k, v in files.items():
        save_npy(os.path.join(d, k + ".npy"), v)

    act = gold["act"]
    meta = {
        "input": list(x.shape),
        "classes": CLASSES,
        "target": target,
        "target_op": producer.op_type,
        "opset": opset,
        "ops": ops,
        "head_ops": head_ops,
        "output": "softmax" if model.softmax_out else "logits",
        "act_shape": list(act.shape),
        "batchnorm_nodes": n_bn,
        "summation_error": {k: {"rel_max": max(v["rel"]), **v} for k, v in err.items()},
        "summation_error_float32": {k: max(v["rel"]) for k, v in err32.items()},
        "float32_max_rel_deviation": dev32,
        "onnx_notes": onnx_notes(g),
        "onnx_interpreter_max_rel_deviation": onnx_dev,
        "notes": "goldens computed in float64 from the float32 weights in model.onnx, stored as float32",
    }
    with open(os.path.join(d, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True)
        fh.write("\n")

    stats = {
        "act_mean": act.mean().item(),
        "act_std": act.std().item(),
        "act_zero_frac": (act == 0).double().mean().item(),
        "dead_channels": int(((act.abs().amax((0, 2, 3))) == 0).sum()),
        "logits_std": gold["logits"].std().item(),
        "logits_absmax": gold["logits"].abs().max().item(),
    }
    return meta, stats, d


def main():
    only = set(sys.argv[1:])
    selftest_rules()
    rows = []
    for fx in FIXTURES:
        if only and fx[0] not in only:
            continue
        meta, stats, d = build_fixture(*fx)
        sizes = {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}
        rows.append((fx[0], meta, stats, sizes, d))

    total = 0
    print("\n=== fixtures ===")
    for name, meta, stats, sizes, d in rows:
        tot = sum(sizes.values())
        total += tot
        print(f"\n[{name}]  input {meta['input']}  opset {meta['opset']}  A {meta['act_shape']}  total {tot/1024:.1f} KiB")
        print(f"  target       {meta['target']}  ({meta['target_op']})")
        print(f"  ops          {' '.join(meta['ops'])}")
        print(f"  head_ops     {' '.join(meta['head_ops'])}")
        print(f"  BatchNormalization nodes: {meta['batchnorm_nodes']}   ONNX graph (float64 interpreter) vs goldens: "
              f"{meta['onnx_interpreter_max_rel_deviation']:.1e}")
        for note in meta["onnx_notes"]:
            print(f"  onnx         {note}")
        se = meta["summation_error"]
        print(
            "  summation    deeplift_act rel %.2e (f32 %.2e)   deeplift_input rel %.2e (f32 %.2e)"
            % (se["deeplift_act"]["rel_max"], meta["summation_error_float32"]["deeplift_act"],
               se["deeplift_input"]["rel_max"], meta["summation_error_float32"]["deeplift_input"])
        )
        print(f"  delta        act {se['deeplift_act']['delta']}  input {se['deeplift_input']['delta']}")
        print("  f32 vs f64   " + "  ".join(f"{k} {v:.1e}" for k, v in meta["float32_max_rel_deviation"].items()))
        print("  stats        " + "  ".join(f"{k} {v:.3g}" for k, v in stats.items()))
        print("  files        " + "  ".join(f"{f} {s}" for f, s in sizes.items()))
        h = hashlib.sha256()
        for f in sorted(sizes):
            if f.endswith(".npy"):
                with open(os.path.join(d, f), "rb") as fh:
                    h.update(fh.read())
        print(f"  npy sha256   {h.hexdigest()[:16]}")
    print(f"\nTotal size: {total/1024/1024:.2f} MiB\n")
    print(f"{'fixture':<11} {'KiB':>6} {'onnx KiB':>8}  {'sum err A (f64/f32)':>19}  {'sum err x (f64/f32)':>19}  target")
    for name, meta, stats, sizes, d in rows:
        se, s32 = meta["summation_error"], meta["summation_error_float32"]
        print(f"{name:<11} {sum(sizes.values())/1024:6.1f} {sizes['model.onnx']/1024:8.1f}  "
              f"{se['deeplift_act']['rel_max']:8.1e} /{s32['deeplift_act']:8.1e}  "
              f"{se['deeplift_input']['rel_max']:8.1e} /{s32['deeplift_input']:8.1e}  {meta['target']}")
    for name, meta, *_ in rows:
        print(f"{name:<11} ops: {' '.join(meta['ops'])}")


if __name__ == "__main__":
    main()
