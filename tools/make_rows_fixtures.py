"""Fixtures for the reduction, normalisation, softmax and matmul ops (tests/rows.test.ts), in tests/fixtures/rows/.

  /usr/bin/python3 tools/make_rows_fixtures.py

One small net built from the patterns PyTorch exports for them, with a dynamic batch axis, at opsets 11, 13 and 17:
InstanceNorm2d, a BatchNorm2d after a Concat (not foldable into a conv), a channel Softmax inside the graph (dim=1 of
(N,C,H,W)), a token sequence through LayerNorm (opset 17: LayerNormalization; 11 and 13: written out as ReduceMean,
Sub, Pow, Sqrt, Div), single-head-pair attention (Linear over the last axis = MatMul by a constant, q k^T and a v as
MatMuls of two activations, Softmax over the last axis), and a head of reductions: mean and amax over the tokens
(ReduceMean, ReduceMax), an L2 norm and a sum over (H, W) (ReduceL2, ReduceSum: axes an attribute before opset 13,
an input from 13), adaptive max pooling to 1 (GlobalMaxPool), a BatchNorm1d on (N, C) and a LogSoftmax inside.
Each directory: model.onnx, x.npy (2,3,8,8), seed.npy (2,5), and PyTorch float64 goldens logits.npy and grad.npy
(d sum(seed * logits) / dx), meta.json (the ONNX op types).
"""
import math, os
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_fixture

OUT = os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures', 'rows')


class Rows(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.ln = nn.LayerNorm(16)
        self.qkv = nn.Linear(16, 48)
        self.proj = nn.Linear(16, 16)
        self.bn1 = nn.BatchNorm1d(16)
        self.fc = nn.Linear(48, 5)

    def forward(self, x):                                             # (N,3,8,8)
        n = x.shape[0]
        y = torch.relu(self.inorm(self.c1(x)))                        # (N,8,8,8)
        t = self.bn(torch.cat([self.c2(y), F.max_pool2d(y, 2)], 1))   # (N,16,4,4): BN after a Concat
        t = torch.softmax(t, dim=1) * 4 + t                           # a channel softmax inside the graph
        tok = t.flatten(2).transpose(1, 2)                            # (N,16,16) tokens
        qkv = self.qkv(self.ln(tok))                                  # (N,16,48)
        heads = [qkv[:, :, 16 * i:16 * (i + 1)].reshape(n, 16, 2, 8).transpose(1, 2) for i in range(3)]  # (N,2,16,8)
        q, k, v = heads
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1)   # (N,2,16,16)
        o = self.proj((a @ v).transpose(1, 2).reshape(n, 16, 16)) + tok     # (N,16,16)
        g = torch.cat([self.bn1(o.mean(1)) + F.adaptive_max_pool2d(t, 1).flatten(1),
                       o.amax(1) * 0.5 + t.sum(dim=(2, 3)) * 0.1, t.norm(p=2, dim=(2, 3))], 1)  # (N,48)
        return self.fc(torch.log_softmax(g, dim=1) + g)


def randomise(m):
    """BN and norm parameters away from the identity, so folding and the affine parts matter."""
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.LayerNorm)):
            c = mod.weight.shape[0]
            mod.weight.data = 0.6 + 0.8 * torch.rand(c, generator=g)
            mod.bias.data = 0.2 * torch.randn(c, generator=g)
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean = 0.3 * torch.randn(c, generator=g)
                mod.running_var = 0.5 + torch.rand(c, generator=g)


def write(name, m, opset, x, seed):
    torch_fixture.write(OUT, name, m, opset, x, seed)


torch.manual_seed(0)
net = Rows().eval()
randomise(net)
x, seed = torch.randn(2, 3, 8, 8), torch.randn(2, 5)
for opset in (11, 13, 17):
    write(f'op{opset}', net, opset, x, seed)
