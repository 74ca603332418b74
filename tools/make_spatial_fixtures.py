"""Fixtures for the spatial ops (tests/spatial.test.ts), written to tests/fixtures/spatial/.

  /usr/bin/python3 tools/make_spatial_fixtures.py

A tiny text-detector-style encoder-decoder (DBNet's shape: a strided conv encoder, an FPN whose top-down path
upsamples by nearest x2 and adds the lateral, a head of two ConvTranspose 2x2 s2 back to full resolution giving a
one-channel probability-logit map), with the up-sampling every way exporters write it:
  F.interpolate(nearest, x2), F.interpolate(bilinear, align_corners False and True, to a size; nearest by the same
  factor at opset 9, whose Upsample has only asymmetric coordinates, unlike PyTorch's bilinear), a grouped
  ConvTranspose 3x3 s2 p1 output_padding 1, ConvTranspose 2x2 s2, PixelShuffle / PixelUnshuffle (DepthToSpace /
  SpaceToDepth at opset 11+; Reshape/Transpose at opset 9).
Random init; BatchNorm running statistics calibrated on a few random batches (train mode, momentum None: the
cumulative average) and then perturbed, so folding matters and activations are O(1). Exported with a dynamic batch
axis at opset 9 (Upsample), 11 and 13 (Resize). Each directory: model.onnx, x.npy (2,3,32,32), seed.npy (the output
map's shape), PyTorch float64 goldens logits.npy (the map) and grad.npy (d sum(seed * map) / dx), meta.json.
"""
import os
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_fixture

OUT = os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures', 'spatial')


def cbr(i, o, s=1, k=3):
    return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU())


class TextDetector(nn.Module):
    def __init__(self, opset):
        super().__init__()
        self.opset = opset
        self.e1, self.e2, self.e3 = cbr(3, 8, 2), cbr(8, 16, 2), cbr(16, 32, 2)            # 1/2, 1/4, 1/8
        self.l2, self.l3 = nn.Conv2d(16, 16, 1), nn.Conv2d(32, 16, 1)
        self.up3 = nn.ConvTranspose2d(16, 16, 3, 2, 1, output_padding=1, groups=4)         # 1/8 -> 1/4
        self.ps = nn.Conv2d(16, 32, 1)                                                      # PixelShuffle(2) -> 8 ch
        self.fuse = cbr(16 + 8 + 8, 16)
        self.head = nn.Sequential(nn.ConvTranspose2d(16, 8, 2, 2), nn.BatchNorm2d(8), nn.ReLU(), nn.ConvTranspose2d(8, 1, 2, 2))

    def forward(self, x):                                              # (N,3,32,32)
        c1 = self.e1(x)                                                # (N,8,16,16)
        c2 = self.e2(c1)                                               # (N,16,8,8)
        c3 = self.e3(c2)                                               # (N,32,4,4)
        p3 = self.l3(c3)
        p2 = self.l2(c2) + F.interpolate(p3, scale_factor=2, mode='nearest')        # FPN top-down (N,16,8,8)
        p2 = p2 + self.up3(p3)                                                      # learned up-sampling
        s = F.pixel_shuffle(self.ps(p3), 2)                                         # (N,8,8,8)
        u = F.pixel_unshuffle(c1, 2)[:, :8]                                         # (N,32,8,8) -> 8 channels
        a = self.resize(p3[:, :8], 8, 2, True)
        f = self.fuse(torch.cat([p2, s + a, u], 1))                                 # (N,16,8,8)
        m = self.head(f)                                                            # (N,1,32,32)
        return m + self.resize(f[:, :1], 32, 4, False)

    def resize(self, t, size, factor, corners):
        # opset 9's Upsample has only asymmetric coordinates: PyTorch's bilinear differs there, so it gets nearest x k
        if self.opset < 11:
            return F.interpolate(t, scale_factor=float(factor), mode='nearest')
        return F.interpolate(t, size=(size, size), mode='bilinear', align_corners=corners)


def calibrate(m, batches=4):
    """BatchNorm running stats from random batches (cumulative average), then perturbed (folding must matter)."""
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.momentum = None
            mod.reset_running_stats()
    m.train()
    with torch.no_grad():
        for _ in range(batches):
            m(torch.randn(8, 3, 32, 32, generator=g))
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5, generator=g)
                mod.bias.uniform_(-0.3, 0.3, generator=g)
                mod.running_mean.mul_(1 + 0.1 * torch.randn(mod.running_mean.shape, generator=g))
                mod.running_var.mul_(1 + 0.1 * torch.rand(mod.running_var.shape, generator=g))
    return m.eval()


torch.manual_seed(0)
x = torch.randn(2, 3, 32, 32)
seed = torch.randn(2, 1, 32, 32)
base = calibrate(TextDetector(13))
for opset in (9, 11, 13):
    m = TextDetector(opset)
    m.load_state_dict(base.state_dict())
    torch_fixture.write(OUT, f'textdet_op{opset}', m.eval(), opset, x, seed)
