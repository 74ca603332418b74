"""Vision Transformer fixtures (tests/vit.test.ts), in tests/fixtures/vit/.

  /usr/bin/python3 tools/make_vit_fixtures.py

torchvision's VisionTransformer at a tiny config (image 32, patch 8, 2 layers, 2 heads, hidden 32, MLP 64, 10 classes;
seeded random init, with the zero-initialised class token, head and biases randomised so they matter), exported by
torch.onnx.export with a dynamic batch axis at opsets 13 (LayerNorm written out), 15 and 17 (LayerNormalization).
nn.MultiheadAttention's export moves the batch axis ((N,L,E) -> (L,N,E) -> (L,N*H,hd) -> (N*H,L,hd) and back through
(L*N,E)) and concatenates the class token Expand-ed to the batch: what src/batchaxis.ts imports exactly. Also
`vit_b16_layout`: ViT-B/16's real structure (12 layers, 12 heads, hidden 768, MLP 3072) is too big to commit; the same
block at ViT-B/16's head count and head size ratio (patch 16, 12 heads of 4, hidden 48, MLP 96, 1 layer, 32 px)
exercises H = 12 merged with the batch. `swin_tiny_op17`: torchvision's SwinTransformer (patch 4, embed 16, depths
[2, 2], heads [2, 4], window 4, 32 px: shifted windows (torch.roll as Slice + Concat), the window partition merging
the windows with the batch (N*nW), q, k, v as Gather of (3, N*nW, H, L, hd), the relative position bias and the shift
mask added per window, patch merging's Concat on the channel axis).
Each directory: model.onnx, x.npy (2,3,32,32), seed.npy (2,10), PyTorch float64 goldens logits.npy and grad.npy
(d sum(seed * logits) / dx), meta.json (opset, ONNX op types; tools/torch_fixture.py).
`bad_*`: small exports that mix the samples of a batch after moving its axis (precise rejections in the test):
softmax over the moved batch axis, a reshape after a transpose that does not transpose back (it splits the batch),
a MatMul contracting the batch axis, a reduction over it.
"""
import os
import torch
import torch.nn as nn
import torchvision.models as tvm
import torch_fixture

OUT = os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures', 'vit')


def randomise(m, seed):
    g = torch.Generator().manual_seed(seed)
    for name, p in m.named_parameters():
        if not p.any() or name.endswith('bias') or 'class_token' in name or name.startswith('head') or 'relative_position_bias_table' in name:
            p.data = 0.2 * torch.randn(p.shape, generator=g)
        if name.endswith('norm1.weight') or name.endswith('norm2.weight') or name.endswith('ln_1.weight') or name.endswith('ln_2.weight') or name.endswith('ln.weight'):
            p.data = 0.6 + 0.8 * torch.rand(p.shape, generator=g)
    return m.eval()


def vit(**kw):
    torch.manual_seed(0)
    return randomise(tvm.VisionTransformer(image_size=32, num_classes=10, **kw), 1)


class SoftmaxOverBatch(nn.Module):
    def forward(self, x):  # (N,3,32,32) -> (N,3*32,32) -> (96,N,32): softmax over N
        t = x.flatten(1, 2).transpose(0, 1)
        return t.softmax(dim=1).transpose(0, 1).flatten(1)


class ReshapeSplitsBatch(nn.Module):
    def forward(self, x):  # (N,96,32) -> (96,N,32) -> view (N, 96*32) without transposing back
        t = x.flatten(1, 2).transpose(0, 1)
        return t.reshape(x.shape[0], -1)


class MatmulOverBatch(nn.Module):
    def forward(self, x):  # (96,32,N) @ (96,N,32): contracts the batch
        t = x.flatten(1, 2).transpose(0, 1)
        return (t.transpose(1, 2) @ t).flatten(1).transpose(0, 1)[:, :1].repeat(1, 1)


class SumOverBatch(nn.Module):
    def forward(self, x):
        t = x.flatten(1, 2).transpose(0, 1)
        return (t - t.sum(1, keepdim=True)).transpose(0, 1).flatten(1)


def main():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 32, 32, generator=g)
    seed = torch.randn(2, 10, generator=g)
    tiny = dict(patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)
    for opset in (13, 15, 17):
        torch_fixture.write(OUT, f'vit_tiny_op{opset}', vit(**tiny), opset, x, seed)
    torch_fixture.write(OUT, 'vit_b16_layout', vit(patch_size=16, num_layers=1, num_heads=12, hidden_dim=48, mlp_dim=96), 17, x, seed)
    torch.manual_seed(0)
    swin = tvm.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                               stochastic_depth_prob=0.0, num_classes=10)
    torch_fixture.write(OUT, 'swin_tiny_op17', randomise(swin, 2), 17, x, seed)
    for name, m in [('bad_softmax', SoftmaxOverBatch()), ('bad_reshape', ReshapeSplitsBatch()), ('bad_matmul', MatmulOverBatch()),
                    ('bad_sum', SumOverBatch())]:
        d = os.path.join(OUT, name); os.makedirs(d, exist_ok=True)
        torch.onnx.export(m, x, os.path.join(d, 'model.onnx'), input_names=['x'], output_names=['y'], opset_version=13,
                          dynamic_axes={'x': {0: 'N'}, 'y': {0: 'N'}}, do_constant_folding=False)
        print(name)


if __name__ == '__main__':
    main()
