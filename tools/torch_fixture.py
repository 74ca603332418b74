"""One PyTorch fixture directory for the op tests (used by make_layout_fixtures.py and make_rows_fixtures.py)."""
import json, os
import numpy as np


def write(out, name, m, opset, x, seed):
    """out/name/: model.onnx (m exported at `opset`, dynamic batch), x.npy, seed.npy, the float64 goldens logits.npy
    and grad.npy (d sum(seed * logits) / dx, stored as float32) and meta.json (the opset and the ONNX op types)."""
    import torch, onnx
    d = os.path.join(out, name); os.makedirs(d, exist_ok=True)
    torch.onnx.export(m, x, os.path.join(d, 'model.onnx'), input_names=['x'], output_names=['logits'], opset_version=opset,
                      dynamic_axes={'x': {0: 'N'}, 'logits': {0: 'N'}}, do_constant_folding=False)
    md = m.double()
    xd = x.double().requires_grad_(True)
    y = md(xd)
    (y * seed.double()).sum().backward()
    m.float()
    np.save(os.path.join(d, 'x.npy'), x.numpy().astype(np.float32))
    np.save(os.path.join(d, 'seed.npy'), seed.numpy().astype(np.float32))
    np.save(os.path.join(d, 'logits.npy'), y.detach().numpy().astype(np.float32))
    np.save(os.path.join(d, 'grad.npy'), xd.grad.numpy().astype(np.float32))
    ops = sorted({n.op_type for n in onnx.load(os.path.join(d, 'model.onnx')).graph.node})
    json.dump({'opset': opset, 'ops': ops}, open(os.path.join(d, 'meta.json'), 'w'), indent=1)
    print(name, ops)
