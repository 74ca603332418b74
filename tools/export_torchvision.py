#!/usr/bin/python3
"""Export torchvision ResNet-50 and VGG-16 to ONNX with PyTorch reference logits: the full-size check of
camgpu's importer and kernels (VGG-16's 392 MiB FC weight is over lavapipe's 128 MiB storage binding, so it
also exercises the row-chunked linear layer). The files are too big to commit (VGG-16 is 528 MB); this script
is the reproducible way to get them. No network: weights=None (torchvision's random init), fixed seed.

    /usr/bin/python3 tools/export_torchvision.py [OUT_DIR]      # default /tmp/camgpu-tv/
    node dist/cli.js info OUT_DIR/vgg16/model.onnx
    node dist/cli.js classify --model OUT_DIR/vgg16/model.onnx --input OUT_DIR/vgg16/x.npy --out /tmp/l.npy

Files, one directory per network (resnet50/, vgg16/):
    model.onnx   input 'input' (N,3,224,224), output 'logits' (N,1000); opset 13, dynamic N
    x.npy        (2,3,224,224) float32 torch.randn (seed 0): stands in for a normalised image batch
    logits.npy   (2,1000) float32, the logits computed in float64 from the float32 weights
    meta.json    parameter counts (torch's and the ONNX file's), float32-vs-float64 deviation of PyTorch

BatchNorm: torchvision's init leaves every BN at the identity (running mean 0, var 1, weight 1, bias 0),
which would make folding BN into the conv untestable. So, before export, the running statistics are set
from 4 random calibration batches (train-mode forwards with a cumulative average, as a trained network's
would be: activations neither vanish nor explode through 50 layers) and the BN weight / bias are drawn
from U(0.5, 1.5) / N(0, 0.1^2). VGG-16 has no BN and is exported as initialised.
"""
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
import torchvision

SEED = 0
H = W = 224
OPSET = 13


@torch.no_grad()
def calibrate_bn(model, gen):
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    for _ in range(4):
        model(torch.randn(8, 3, H, W, generator=gen))
    for m in bns:
        m.weight.copy_(0.5 + torch.rand(m.num_features, generator=gen))
        m.bias.copy_(0.1 * torch.randn(m.num_features, generator=gen))
    model.eval()


def rel(a, b):
    """max |a - b| / max |b|: the deviation relative to the scale of the reference."""
    return float(np.abs(a - b).max() / np.abs(b).max())


def export(name, out_dir):
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = getattr(torchvision.models, name)(weights=None)
    calibrate_bn(model, gen)
    model.eval()
    x = torch.randn(2, 3, H, W, generator=gen)

    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    t0 = time.time()
    torch.onnx.export(
        model, x, path, opset_version=OPSET, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True,
    )
    t_export = time.time() - t0

    with torch.no_grad():
        t0 = time.time()
        y32 = model(x).numpy()
        t_f32 = time.time() - t0
        y64 = model.double()(x.double()).numpy()
    np.save(os.path.join(d, "x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(d, "logits.npy"), y64.astype(np.float32))

    m = onnx.load(path)
    onnx_params = sum(int(np.prod(t.dims)) for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    ops = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    meta = {
        "model": f"torchvision.models.{name}(weights=None), seed {SEED}" + (", BN calibrated" if "resnet" in name else ""),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "opset": OPSET,
        "input": list(x.shape), "torch_parameters": sum(p.numel() for p in model.parameters()),
        "onnx_float_initializer_values": onnx_params, "onnx_bytes": os.path.getsize(path), "onnx_ops": ops,
        "top5": np.argsort(-y64, axis=1)[:, :5].tolist(),
        "float32_torch_max_rel_deviation": rel(y32, y64),
        "seconds": {"export": round(t_export, 2), "torch_float32_forward_batch2": round(t_f32, 2)},
    }
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: {path} ({meta['onnx_bytes'] / 1e6:.0f} MB), torch parameters {meta['torch_parameters']:,}, "
          f"ONNX float initializers {onnx_params:,}, torch float32 vs float64 {meta['float32_torch_max_rel_deviation']:.2e}, "
          f"torch float32 forward (batch 2) {t_f32:.2f} s")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "/tmp/camgpu-tv/"
    if out_dir in ("-h", "--help"):
        print(__doc__)
        return
    torch.set_num_threads(os.cpu_count() or 1)
    for name in ("resnet50", "vgg16"):
        export(name, out_dir)


if __name__ == "__main__":
    main()
