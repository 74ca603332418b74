"""Fixtures for the layout ops (tests/layout.test.ts), written to tests/fixtures/layout/.

  /usr/bin/python3 tools/make_layout_fixtures.py

One small net built from the layout patterns PyTorch exports, with a dynamic batch axis, at opsets 9, 11 and 13 (the
three ways ONNX spells Slice, Pad and Split: attributes before opsets 10 / 11 / 13, inputs after):
  F.pad reflect, replicate (edge) and constant 0.5 (opset 11+: pads computed by a Shape/ConstantOfShape/Concat/Slice
  sub-graph that the importer folds), the ShuffleNetV2 channel shuffle (view, transpose, reshape), torch.split into
  two used outputs (Split), slices with offsets and steps and a flip (Slice with step -1), repeat (Tile), a token
  sequence (flatten(2).transpose(1, 2)) with a class token padded in front and read back as tok[:, 0] (Gather), and
  tok[:, 1:5] (Slice).
Opset 9 cannot export steps (torch: "step!=1 is currently not supported"), so its net slices without steps or flip.
Each directory: model.onnx, x.npy (2,3,10,12), seed.npy (2,5), and PyTorch float64 goldens logits.npy and grad.npy
(d sum(seed * logits) / dx), meta.json (the ONNX op types).
"""
import os
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_fixture

OUT = os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures', 'layout')


def shuffle(x, g):
    n, c, h, w = x.shape
    return x.view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)


class Layout(nn.Module):
    def __init__(self, steps):
        super().__init__()
        self.steps = steps
        self.c1 = nn.Conv2d(3, 8, 3)
        self.c2 = nn.Conv2d(4, 6, 3)
        self.c3 = nn.Conv2d(4, 6, 1)
        self.fc = nn.Linear(6 * 5, 5)

    def forward(self, x):                                          # (N,3,10,12)
        y = F.pad(x, (1, 2, 2, 1), mode='reflect')                 # (N,3,13,15)
        y = torch.relu(self.c1(y))                                 # (N,8,11,13)
        y = shuffle(y, 2)
        a, b = torch.split(y, [4, 4], 1)                           # Split: two outputs, both used
        a = self.c2(F.pad(a, (1, 1, 0, 2), mode='replicate'))      # (N,6,11,13)
        b = self.c3(F.pad(b, (0, 0, 1, 1), value=0.5))             # (N,6,13,13)
        b = b[:, :, ::2, 1:] if self.steps else b[:, :, 3:10, 1:]  # (N,6,7,12)
        t = a[:, :, 2:9, :12] + b
        r = t.repeat(1, 1, 1, 2)[:, :, :, 6:18]                    # Tile, then Slice
        t = (t.flip(3) if self.steps else t[:, :, :, 2:] .repeat(1, 1, 1, 2)[:, :, :, :12]) + r
        tok = t.flatten(2).transpose(1, 2)                         # (N,84,6)
        tok = F.pad(tok, (0, 0, 1, 0), value=0.25)                 # a class token in front: (N,85,6)
        cls = tok[:, 0]                                            # Gather: (N,6)
        rest = tok[:, 1:5].reshape(x.shape[0], -1)                 # (N,24)
        return self.fc(torch.cat([cls, rest], 1))


def write(name, m, opset, x, seed):
    torch_fixture.write(OUT, name, m, opset, x, seed)


torch.manual_seed(0)
x, seed = torch.randn(2, 3, 10, 12), torch.randn(2, 5)
with_steps = Layout(True).eval()
without = Layout(False).eval()
without.load_state_dict(with_steps.state_dict())
write('op9', without, 9, x, seed)
write('op11', with_steps, 11, x, seed)
write('op13', with_steps, 13, x, seed)
