"""Fixtures for constant folding, symbolic input sizes and map outputs (tests/fold.test.ts, tests/cli.test.ts), written
to tests/fixtures/fold/.

  /usr/bin/python3 tools/make_fold_fixtures.py

dyn_hw:  a small CNN exported with dynamic N, H and W (opset 11) and x.view(x.size(0), -1): Shape/Gather/Unsqueeze/
         Concat feeding Reshape. Goldens: logits at two input sizes, 32x32 and 40x48 (float64 PyTorch).
shapes:  exporter shape arithmetic that must fold at import (opset 11): a scale built with torch.ones(C,1,1) from
         y.shape (ConstantOfShape), integer arithmetic on sizes (Div, Mul, Cast), an expand of a constant to the batch
         (Expand with the batch size), arithmetic on initializers (Mul/Add/Sqrt of weights), and a Range.
hswish:  normalisation inside the graph ((x - mean) / std: Sub, Div) and hard-swish written out as
         x * clamp(x + 3, 0, 6) / 6 (Clip, Div), as other exporters write MobileNetV3, and global pooling as
         ReduceMean over (2, 3), keepdims 0 and 1 (opset 11).
fcn:     a fully convolutional net whose output is a (3,H/2,W/2) map (segmentation-like), dynamic N, H, W.
Each: model.onnx, x*.npy inputs, logits*.npy goldens, meta.json.
"""
import json, os
import numpy as np
import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures', 'fold')
torch.manual_seed(0)


class DynHW(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 12, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        y = torch.relu(self.bn(self.c1(x)))
        y = torch.relu(self.c2(y))
        y = self.pool(y)
        return self.fc(y.view(y.size(0), -1))


class Shapes(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.w = nn.Parameter(torch.rand(6, 1, 1) + 0.5)
        self.fc = nn.Linear(6 * 8 * 8, 4)

    def forward(self, x):
        y = torch.relu(self.c1(x))
        n, c = y.shape[0], y.shape[1]
        scale = torch.ones(c, 1, 1) * (c // 2) * 0.25            # ConstantOfShape, integer Div, Cast, Mul
        y = y * scale * torch.sqrt(self.w * 2.0 + 1.0)            # arithmetic on an initializer
        offs = torch.arange(c).float().view(1, c, 1, 1) * 0.01    # Range, Cast, Reshape
        y = y + offs.expand(n, -1, -1, -1)                        # Expand to the batch size
        return self.fc(y.reshape(n, -1))


def calibrate(m, shape):
    m.train()
    with torch.no_grad():
        for _ in range(3): m(torch.randn(*shape))
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.add_(torch.randn_like(mod.running_mean) * 0.1)
            mod.running_var.mul_(torch.rand_like(mod.running_var) + 0.5)
    m.eval()


def write(name, m, inputs, dynamic):
    d = os.path.join(OUT, name); os.makedirs(d, exist_ok=True)
    x0 = inputs[0]
    torch.onnx.export(m, x0, os.path.join(d, 'model.onnx'), input_names=['x'], output_names=['logits'], opset_version=11,
                      dynamic_axes={'x': dynamic, 'logits': {0: 'N'}}, do_constant_folding=False)
    md = m.double()
    sizes = []
    for i, x in enumerate(inputs):
        with torch.no_grad(): y = md(x.double()).numpy()
        tag = f'{x.shape[2]}x{x.shape[3]}'
        np.save(os.path.join(d, f'x{tag}.npy'), x.numpy().astype(np.float32))
        np.save(os.path.join(d, f'logits{tag}.npy'), y.astype(np.float32))
        sizes.append(tag)
    m.float()
    import onnx
    ops = sorted({n.op_type for n in onnx.load(os.path.join(d, 'model.onnx')).graph.node})
    json.dump({'sizes': sizes, 'ops': ops, 'dynamic': {k: v for k, v in dynamic.items()}}, open(os.path.join(d, 'meta.json'), 'w'), indent=1)
    print(name, sizes, ops)


class FCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 3, 3, stride=2, padding=1)

    def forward(self, x):
        return self.c2(torch.relu(self.c1(x)))


class HSwish(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer('mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = (x - self.mean) / self.std
        y = self.c1(x)
        y = y * torch.clamp(y + 3, 0, 6) / 6
        return self.fc(y.mean((2, 3)) + 0.5 * torch.flatten(y.mean((-2, -1), keepdim=True), 1))  # ReduceMean, both keepdims


dyn = DynHW(); calibrate(dyn, (4, 3, 32, 32))
write('dyn_hw', dyn, [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 40, 48)], {0: 'N', 2: 'H', 3: 'W'})
sh = Shapes(); sh.eval()
write('shapes', sh, [torch.randn(2, 3, 8, 8)], {0: 'N'})
fcn = FCN(); fcn.eval()
write('fcn', fcn, [torch.randn(2, 3, 16, 16)], {0: 'N', 2: 'H', 3: 'W'})
hs = HSwish(); hs.eval()
write('hswish', hs, [torch.rand(2, 3, 16, 16)], {0: 'N'})
