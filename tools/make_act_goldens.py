"""PyTorch's values and derivatives of the element-wise ops (float64 autograd), at ordinary points and exactly at the
kinks, written to tests/fixtures/acts/torch.json. tests/ref.test.ts checks the float64 reference (tests/ref.ts actF /
actD and the binary ops' gradients) against them, so the derivative conventions at the kinks are PyTorch's own.

  /usr/bin/python3 tools/make_act_goldens.py

Each activation entry: fn and [alpha, beta] in camgpu's terms (src/ops/acts.ts), x, y = f(x), dy/dx. Each binary
entry: op, a, b, y, dy/da, dy/db (torch.maximum / minimum: a tie splits the gradient). Infinities are written as
+-1e999 (JSON.parse reads them as Infinity), NaN as null.
"""
import json, math, os
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures', 'acts')
torch.set_default_dtype(torch.float64)
POINTS = [-21.0, -6.5, -3.0, -2.25, -1.0, -0.3, -1e-3, 0.0, 1e-3, 0.4, 1.0, 2.5, 3.0, 4.75, 21.0]
POS = [0.0, 1e-3, 0.05, 0.5, 1.0, 2.5, 9.0]


def pw(a):
    return lambda x: torch.pow(x, a)


# fn, alpha, beta, the torch function, points
ACTS = [
    ('relu', 0, 0, F.relu, POINTS),
    ('clip', -1, 2.5, lambda x: F.hardtanh(x, -1.0, 2.5), POINTS),
    ('leakyrelu', 0.1, 0, lambda x: F.leaky_relu(x, 0.1), POINTS),
    ('sigmoid', 0, 0, torch.sigmoid, POINTS),
    ('hardsigmoid', 1 / 6, 0.5, F.hardsigmoid, POINTS),
    ('hardswish', 1 / 6, 0.5, F.hardswish, POINTS),
    ('tanh', 0, 0, torch.tanh, POINTS),
    ('exp', 0, 0, torch.exp, POINTS),
    ('log', 0, 0, torch.log, POS),
    ('sqrt', 0, 0, torch.sqrt, POS),
    ('reciprocal', 0, 0, torch.reciprocal, [p for p in POINTS if p != 0]),
    ('neg', 0, 0, torch.neg, POINTS),
    ('abs', 0, 0, torch.abs, POINTS),
    ('erf', 0, 0, torch.erf, POINTS),
    ('gelu', 0, 0, F.gelu, POINTS),
    ('gelu_tanh', 0, 0, lambda x: F.gelu(x, approximate='tanh'), POINTS),
    ('elu', 1.0, 0, F.elu, POINTS),
    ('elu', 0.4, 0, lambda x: F.elu(x, 0.4), POINTS),
    ('selu', 1.6732632423543772, 1.0507009873554805, F.selu, POINTS),  # torch's float64 constants (ONNX's defaults are float32)
    ('celu', 0.5, 0, lambda x: F.celu(x, 0.5), POINTS),
    ('softplus', 0, 0, F.softplus, [p for p in POINTS if abs(p) < 21]),  # torch returns x above 20, ONNX does not
    ('softsign', 0, 0, F.softsign, POINTS),
    ('mish', 0, 0, F.mish, POINTS),
    ('pow', 2, 0, pw(2.0), POINTS),
    ('pow', 3, 0, pw(3.0), POINTS),
    ('pow', 1, 0, pw(1.0), POINTS),
    ('pow', 0, 0, pw(0.0), POINTS),
    ('pow', -1, 0, pw(-1.0), [p for p in POINTS if p != 0]),
    ('pow', 0.5, 0, pw(0.5), POS),
    ('pow', 1.5, 0, pw(1.5), POS),
]
PAIRS = [(-1.5, 2.0), (2.0, -1.5), (0.75, 0.75), (-3.0, -3.0), (0.0, 0.0), (4.0, 0.5), (-2.0, 0.25)]
BINARY = [('sub', torch.sub), ('mul', torch.mul), ('div', torch.div), ('max', torch.maximum), ('min', torch.minimum)]


def num(v):
    v = float(v)
    return None if math.isnan(v) else v


def main():
    acts = []
    for fn, alpha, beta, f, pts in ACTS:
        x = torch.tensor(pts, requires_grad=True)
        y = f(x)
        (g,) = torch.autograd.grad(y.sum(), x)
        acts.append({'fn': fn, 'alpha': alpha, 'beta': beta, 'x': pts, 'y': [num(v) for v in y.detach()], 'dy': [num(v) for v in g]})
    binary = []
    for op, f in BINARY:
        a = torch.tensor([p[0] for p in PAIRS], requires_grad=True)
        b = torch.tensor([p[1] for p in PAIRS], requires_grad=True)
        y = f(a, b)
        ga, gb = torch.autograd.grad(y.sum(), (a, b))
        binary.append({'op': op, 'a': a.tolist(), 'b': b.tolist(), 'y': [num(v) for v in y.detach()], 'da': [num(v) for v in ga], 'db': [num(v) for v in gb]})
    os.makedirs(OUT, exist_ok=True)
    text = json.dumps({'torch': torch.__version__, 'acts': acts, 'binary': binary}, indent=1)
    text = text.replace('-Infinity', '-1e999').replace('Infinity', '1e999')
    with open(os.path.join(OUT, 'torch.json'), 'w') as fh:
        fh.write(text + '\n')


if __name__ == '__main__':
    main()
