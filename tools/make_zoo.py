#!/usr/bin/python3
"""The model zoo: every torchvision classification family, a segmentation model and hand-written patterns of other
exporters, exported to ONNX with float64 PyTorch goldens, for tests/zoo.test.ts ("any model a user brings").

    /usr/bin/python3 tools/make_zoo.py                 # reduced models -> tests/fixtures/zoo/<name>/ (committed)
    /usr/bin/python3 tools/make_zoo.py resnet18 vit_b_16   # only these
    /usr/bin/python3 tools/make_zoo.py --full DIR      # full-size families (224 px, 299 for Inception-v3) -> DIR/<name>/
    /usr/bin/python3 tools/make_zoo.py --list          # names, one a line

Weights are random and seeded (the same command writes the same files). Every model starts from torchvision's own
init (torch.manual_seed per fixture), then: weights that torchvision initialises to zero (ViT's head, class token,
zero biases) get random values; LayerNorm affine parameters and ConvNeXt's layer scale are drawn at random (U(0.6,
1.4) / U(0.3, 1)); relative position bias tables get N(0, 0.5^2); BatchNorm running statistics are calibrated on 4
random batches (train mode, cumulative average) and then perturbed (mean + 0.1 sd N(0,1), var * U(0.6, 1.5), weight
U(0.6, 1.4), bias 0.1 N(0,1)), so folding BN into the conv before it changes every weight; the last layer is scaled
so the logits have a standard deviation of 3 on the calibration batches.

Reduced models (the committed ones) are torchvision's own classes with smaller configurations (fewer channels,
fewer blocks, 10 classes, small inputs); each meta.json says in "reduced" what changed against the full model. They
keep the family's op patterns: every ONNX op type of the full model appears in the reduced one (checked with
--full: see tools/README.md).

Files per fixture directory (every .npy float32, C order, written by numpy.save):
    model.onnx      input 'input', output 'logits' (segmentation: 'out'); dim 0 dynamic ('N'), dims 2, 3 too for
                    resnet18_dynhw. Opset 13 (17 where LayerNorm appears; the patterns choose theirs).
    x.npy           (2, C, H, W) input, N(0, 1) (pattern_nhwc: (2, H, W, C))
    logits.npy      (2, classes) the graph output (segmentation: (2, K, H, W))
    act.npy         the target layer's activation A (its ONNX tensor is meta.target)
    grad_act.npy    d score / dA, score = sum_i logits[i, classes[i]] (segmentation: sum_i (out[i, c_i] * mask).sum())
    grad_input.npy  d score / d x
    gradcam.npy     (2, h, w) Grad-CAM raw map before the ReLU: sum_k mean_ij(dA_k) A_kij on A reshaped to (N, D, h, w)
                    as pytorch-grad-cam's reshape_transform does (layout "tokens-cls": drop the class token, (N, 1+h*w, D)
                    -> (N, D, h, w); "nhwc": (N, h, w, C) -> (N, C, h, w); "tokens": (N, h*w, D) -> (N, D, h, w))
    mask.npy        (H, W) the segmentation region (segmentation only)
    meta.json       family, input, classes, target (ONNX tensor name of A), layout, opset, ops (every op type in the
                    graph; ops_on_activations / ops_on_shapes split them: see op_roles; forms: how they are used), reduced,
                    and the checks below
All goldens are computed in float64 from the float32 weights in model.onnx.

Checks, for every fixture: onnx.checker; the target's ONNX name is found by exporting once more with A as a second
output and mapping its producer node (torch 1.13 names nodes by module scope) back into model.onnx; then
onnxruntime-node (tools/zoo_ort.mjs, CPU) runs model.onnx with that tensor added as an output, and its logits and A
must match PyTorch's float32 values to 1e-4 of their max (meta.ort_max_rel). float32 PyTorch vs the float64
goldens is in meta.float32_max_rel.
"""
import copy
import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from functools import partial

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models as tvm
from torchvision.models import densenet as tv_densenet
from torchvision.models import efficientnet as tv_eff
from torchvision.models import inception as tv_inception
from torchvision.models import mnasnet as tv_mnasnet
from torchvision.models import mobilenetv2 as tv_mnv2
from torchvision.models import mobilenetv3 as tv_mnv3
from torchvision.models import regnet as tv_regnet
from torchvision.models import resnet as tv_resnet
from torchvision.models import squeezenet as tv_squeezenet
from torchvision.models import vgg as tv_vgg
from torchvision.models.convnext import CNBlockConfig
from torchvision.models.segmentation import fcn as tv_fcn
from torchvision.models.segmentation import lraspp as tv_lraspp

tv_googlenet = importlib.import_module("torchvision.models.googlenet")  # the package's `googlenet` is the builder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO_DIR = os.path.join(ROOT, "tests", "fixtures", "zoo")
B = 2
CLASSES = [3, 7]
LOGIT_STD = 3.0

torch.set_num_threads(1)
torch.backends.mkldnn.enabled = False  # plain CPU kernels: the same numbers run to run


# ----------------------------------------------------------------------------------------------
# Reduced torchvision models: torchvision's classes and blocks, smaller configurations
# ----------------------------------------------------------------------------------------------
class SlimResNet(tvm.ResNet):
    """torchvision's ResNet (its blocks, _make_layer and forward) with every width times `scale`: stem 64s, stages
    64s/128s/256s/512s (ResNet's constructor fixes the widths; this only scales them)."""

    def __init__(self, block, layers, scale, num_classes, **kw):
        self._scale = scale
        super().__init__(block, layers, num_classes, **kw)
        s = int(64 * scale)
        self.conv1 = nn.Conv2d(3, s, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.bn1 = self._norm_layer(s)
        self.fc = nn.Linear(int(512 * scale) * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:  # layer1: the stem's (scaled) width goes in
            self.inplanes = int(64 * self._scale)
        return super()._make_layer(block, int(planes * self._scale), blocks, stride, dilate)


def scaled_conv(k):
    """torchvision's BasicConv2d with every channel count divided by k (the image's 3 channels kept): passed as the
    conv_block of GoogLeNet / Inception-v3, whose modules hard-code their widths, it shrinks them all consistently."""

    def make(cin, cout, **kw):
        return tv_inception.BasicConv2d(cin if cin == 3 else cin // k, cout // k, **kw)

    return make


def r_alexnet(nc):
    m = tvm.AlexNet(num_classes=nc)
    m.features = nn.Sequential(
        nn.Conv2d(3, 16, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(32, 48, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(48, 32, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
    )
    m.avgpool = nn.AdaptiveAvgPool2d((2, 2))
    m.classifier = nn.Sequential(
        nn.Dropout(0.5), nn.Linear(32 * 2 * 2, 64), nn.ReLU(inplace=True),
        nn.Dropout(0.5), nn.Linear(64, 64), nn.ReLU(inplace=True), nn.Linear(64, nc),
    )
    return m


def r_vgg11_bn(nc):
    m = tvm.VGG(tv_vgg.make_layers([8, "M", 16, "M", 32, 32, "M", 32, 32, "M", 32, 32, "M"], batch_norm=True), nc)
    m.avgpool = nn.AdaptiveAvgPool2d((2, 2))
    m.classifier = nn.Sequential(
        nn.Linear(32 * 2 * 2, 64), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(64, 64), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(64, nc),
    )
    return m


def r_squeezenet(nc):
    m = tvm.SqueezeNet("1_1", num_classes=nc)
    Fire = tv_squeezenet.Fire
    m.features = nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, stride=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(16, 4, 16, 16), Fire(32, 4, 16, 16),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(32, 8, 32, 32), Fire(64, 8, 32, 32),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(64, 12, 48, 48), Fire(96, 12, 48, 48), Fire(96, 16, 64, 64), Fire(128, 16, 64, 64),
    )
    m.classifier[1] = nn.Conv2d(128, nc, kernel_size=1)
    return m


def r_googlenet(nc):
    conv = scaled_conv(8)
    m = tvm.GoogLeNet(num_classes=nc, aux_logits=False, init_weights=True,
                      blocks=[conv, partial(tv_googlenet.Inception, conv_block=conv), tv_googlenet.InceptionAux])
    m.fc = nn.Linear(1024 // 8, nc)
    return m


def r_inception_v3(nc):
    conv = scaled_conv(16)
    blocks = [conv] + [partial(b, conv_block=conv) for b in (tv_inception.InceptionA, tv_inception.InceptionB,
                                                             tv_inception.InceptionC, tv_inception.InceptionD,
                                                             tv_inception.InceptionE)] + [tv_inception.InceptionAux]
    m = tvm.Inception3(num_classes=nc, aux_logits=False, init_weights=True, inception_blocks=blocks)
    m.fc = nn.Linear(2048 // 16, nc)
    return m


def r_mobilenet_v2(nc):
    setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 1, 2], [6, 64, 1, 2], [6, 96, 1, 1], [6, 160, 1, 2], [6, 320, 1, 1]]
    m = tvm.MobileNetV2(num_classes=nc, width_mult=0.25, inverted_residual_setting=setting)
    m.features[-1] = tv_mnv2.Conv2dNormActivation(80, 128, kernel_size=1, activation_layer=nn.ReLU6)
    m.classifier[1] = nn.Linear(128, nc)
    return m


def r_mobilenet_v3_large(nc):
    setting, last = tv_mnv3._mobilenet_v3_conf("mobilenet_v3_large", width_mult=0.25)
    keep = [0, 1, 2, 3, 4, 6, 7, 10, 12]  # every block kind (RE / HS, with / without SE, residual, stride 2, 3x3 / 5x5)
    return tv_mnv3.MobileNetV3([setting[i] for i in keep], 64, num_classes=nc)


def r_mnasnet(nc):
    m = tvm.MNASNet(0.25, num_classes=nc)
    d = tv_mnasnet._get_depths(0.25)
    for i, (k, st, exp, rep) in enumerate([(3, 2, 3, 2), (5, 2, 3, 1), (5, 2, 6, 1), (3, 1, 6, 1), (5, 2, 6, 1), (3, 1, 6, 1)]):
        m.layers[8 + i] = tv_mnasnet._stack(d[1 + i], d[2 + i], k, st, exp, rep, tv_mnasnet._BN_MOMENTUM)
    m.layers[14] = nn.Conv2d(m.layers[14].in_channels, 128, 1, padding=0, stride=1, bias=False)
    m.layers[15] = nn.BatchNorm2d(128, momentum=m.layers[15].momentum)
    m.classifier[1] = nn.Linear(128, nc)
    return m


def r_efficientnet_b0(nc):
    conf = partial(tv_eff.MBConvConfig, width_mult=0.25, depth_mult=1.0)  # B0's stages, one block each but stage 2
    setting = [conf(1, 3, 1, 32, 16, 1), conf(6, 3, 2, 16, 24, 2), conf(6, 5, 2, 24, 40, 1), conf(6, 3, 2, 40, 80, 1),
               conf(6, 5, 1, 80, 112, 1), conf(6, 5, 2, 112, 192, 1), conf(6, 3, 1, 192, 320, 1)]
    return tvm.EfficientNet(setting, 0.2, num_classes=nc)


def r_efficientnet_v2_s(nc):
    setting = [
        tv_eff.FusedMBConvConfig(1, 3, 1, 8, 8, 1),
        tv_eff.FusedMBConvConfig(4, 3, 2, 8, 16, 2),
        tv_eff.MBConvConfig(4, 3, 2, 16, 24, 1),
        tv_eff.MBConvConfig(6, 3, 1, 24, 32, 2),
        tv_eff.MBConvConfig(6, 3, 2, 32, 48, 1),
    ]
    return tvm.EfficientNet(setting, 0.2, num_classes=nc, norm_layer=partial(nn.BatchNorm2d, eps=1e-03), last_channel=128)


def r_regnet_y_400mf(nc):
    params = tv_regnet.BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=4, se_ratio=0.25)
    return tvm.RegNet(params, num_classes=nc, stem_width=8, norm_layer=partial(nn.BatchNorm2d, eps=1e-05, momentum=0.1))


def r_convnext_tiny(nc):
    setting = [CNBlockConfig(8, 16, 1), CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 2), CNBlockConfig(64, None, 1)]
    return tvm.ConvNeXt(setting, stochastic_depth_prob=0.1, num_classes=nc)


def r_vit_b_16(nc):
    return tvm.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                                 num_classes=nc)


def r_swin_t(nc):
    return tvm.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                               stochastic_depth_prob=0.1, num_classes=nc)


def r_maxvit_t(nc):
    return tvm.MaxVit(input_size=(32, 32), stem_channels=8, partition_size=4, block_channels=[16, 32],
                      block_layers=[1, 1], head_dim=8, stochastic_depth_prob=0.1, num_classes=nc)


def full(builder, **kw):
    """torchvision's builder by name: the full-size model, 1000 classes, random weights (weights=None)."""
    return lambda nc: getattr(tvm, builder)(**kw)


class Spec:
    """One fixture: how to build it (reduced and full), its input, its Grad-CAM target and why."""

    def __init__(self, name, family, build, hw, target, why, reduced, layout="nchw", opset=13, full=None,
                 full_hw=224, dynamic_hw=False, nhwc_input=False, seg=False, full_target=None):
        self.name, self.family, self.build, self.hw, self.target, self.why = name, family, build, hw, target, why
        self.reduced, self.layout, self.opset, self.full, self.full_hw = reduced, layout, opset, full, full_hw
        self.dynamic_hw, self.nhwc_input, self.seg = dynamic_hw, nhwc_input, seg
        self.full_target = full_target or target


def r_resnet18(nc):
    return SlimResNet(tv_resnet.BasicBlock, [1, 1, 1, 1], 1 / 8, nc)


def r_resnext50_32x4d(nc):
    return SlimResNet(tv_resnet.Bottleneck, [1, 1, 1, 1], 1 / 16, nc, groups=4, width_per_group=32)


def r_wide_resnet50_2(nc):
    return SlimResNet(tv_resnet.Bottleneck, [1, 1, 1, 1], 1 / 16, nc, width_per_group=128)


def r_densenet121(nc):
    return tvm.DenseNet(growth_rate=4, block_config=(2, 2, 2, 2), num_init_features=8, bn_size=2, num_classes=nc)


def r_shufflenet_v2(nc):
    return tvm.ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=nc)


def r_resnet18_dynhw(nc):
    return r_resnet18(nc)


# ----------------------------------------------------------------------------------------------
# The fixtures
# ----------------------------------------------------------------------------------------------
def at(path):
    """A target module by its attribute path in the model ('layer4[-1]', 'encoder.layers[-1].ln_1')."""
    def get(model):
        m = model
        for part in path.replace("]", "").replace("[", ".").split("."):
            indexed = part.lstrip("-").isdigit() and isinstance(m, (nn.Sequential, nn.ModuleList))
            m = m[int(part)] if indexed else getattr(m, part)
        return m
    get.path = path
    return get


GC = "pytorch-grad-cam's README"
SPECS = [
    Spec("alexnet", "AlexNet", r_alexnet, 96, at("features[-1]"), f"features[-1] (the last MaxPool), as {GC} gives for VGG",
         "channels 64/192/384/256/256 -> 16/32/48/32/32, classifier 4096/4096 -> 64/64, avgpool (6,6) -> (2,2) (the "
         "map is 2x2 at 96 px, so the adaptive pool stays a 1x1 AveragePool as (6,6) is at 224), 10 classes, 96 px",
         full=full("alexnet")),
    Spec("vgg11_bn", "VGG11-BN", r_vgg11_bn, 64, at("features[-1]"), f"features[-1] (the last MaxPool), {GC} for VGG",
         "cfg A widths 64..512 -> 8/16/32/32/32 (same 8 conv-BN-ReLU and 5 MaxPool), avgpool (7,7) -> (2,2) (the map "
         "at 64 px), classifier 4096/4096 -> 64/64, 10 classes, 64 px", full=full("vgg11_bn")),
    Spec("resnet18", "ResNet-18", r_resnet18, 48, at("layer4[-1]"), f"layer4[-1], {GC} for ResNet",
         "BasicBlock layers [2,2,2,2] -> [1,1,1,1], widths x1/8 (stem 8, stages 8/16/32/64), 10 classes, 48 px",
         full=full("resnet18")),
    Spec("resnext50_32x4d", "ResNeXt-50", r_resnext50_32x4d, 48, at("layer4[-1]"), f"layer4[-1], {GC} for ResNet",
         "Bottleneck layers [3,4,6,3] -> [1,1,1,1], widths x1/16, groups 32 x 4 -> 4 x 32 (grouped 3x3 of width 2x "
         "planes as in 32x4d; group widths 2..16), 10 classes, 48 px", full=full("resnext50_32x4d")),
    Spec("wide_resnet50_2", "Wide-ResNet-50-2", r_wide_resnet50_2, 48, at("layer4[-1]"), f"layer4[-1], {GC} for ResNet",
         "Bottleneck layers [3,4,6,3] -> [1,1,1,1], widths x1/16 (width_per_group 128 kept: 3x3 width 2x planes), "
         "10 classes, 48 px", full=full("wide_resnet50_2")),
    Spec("squeezenet1_1", "SqueezeNet 1.1", r_squeezenet, 64, at("features[-1]"),
         "features[-1] (the last Fire module, the last conv block before the classifier)",
         "SqueezeNet 1.1 layout (conv s2, 3 ceil-mode MaxPools, 8 Fire) with widths x1/4, 10 classes, 64 px",
         full=full("squeezenet1_1")),
    Spec("densenet121", "DenseNet-121", r_densenet121, 64, at("features[-1]"),
         f"features[-1] (norm5, the final BatchNorm; the ReLU after it is functional), {GC} for DenseNet",
         "growth 32 -> 4, blocks (6,12,24,16) -> (2,2,2,2), init features 64 -> 8, bn_size 4 -> 2, 10 classes, 64 px",
         full=full("densenet121")),
    Spec("googlenet", "GoogLeNet", r_googlenet, 48, at("inception5b"), "inception5b (the last Inception block)",
         "every width x1/8 (BasicConv2d / Inception given a scaled conv_block), no aux heads, 10 classes, 48 px",
         full=full("googlenet", aux_logits=False, init_weights=True)),
    Spec("inception_v3", "Inception-v3", r_inception_v3, 107, at("Mixed_7c"), "Mixed_7c (the last Inception block)",
         "every width x1/16 (a scaled conv_block for every Inception module), no aux head, 10 classes, 107 px (the "
         "smallest input with a 2x2 Mixed_7c map; the architecture needs >= 75)",
         full=full("inception_v3", aux_logits=False, init_weights=True), full_hw=299),
    Spec("shufflenet_v2", "ShuffleNetV2", r_shufflenet_v2, 48, at("conv5"), "conv5 (the last conv block)",
         "x1.0 repeats [4,8,4] -> [2,2,2], channels [24,116,232,464,1024] -> [8,16,32,64,128], 10 classes, 48 px",
         full=full("shufflenet_v2_x1_0")),
    Spec("mobilenet_v2", "MobileNetV2", r_mobilenet_v2, 48, at("features[-1]"), "features[-1] (the last conv block)",
         "width_mult 0.25, repeats [1,2,3,4,3,3,1] -> [1,2,1,1,1,1,1], last conv 1280 -> 128, 10 classes, 48 px",
         full=full("mobilenet_v2")),
    Spec("mobilenet_v3_large", "MobileNetV3-Large", r_mobilenet_v3_large, 48, at("features[-1]"),
         "features[-1] (the last conv block)",
         "width_mult 0.25, 15 -> 9 inverted residuals (blocks 0,1,2,3,4,6,7,10,12: every kind kept), last channel "
         "1280 -> 64, 10 classes, 48 px", full=full("mobilenet_v3_large")),
    Spec("mnasnet", "MNASNet", r_mnasnet, 48, at("layers[-1]"), f"layers[-1] (the final ReLU), {GC} for MNASNet",
         "alpha 1.0 -> 0.25, stack repeats [3,3,3,2,4,1] -> [2,1,1,1,1,1], last conv 1280 -> 128, 10 classes, 48 px",
         full=full("mnasnet1_0")),
    Spec("efficientnet_b0", "EfficientNet-B0", r_efficientnet_b0, 48, at("features[-1]"),
         "features[-1] (the last conv block)",
         "width_mult 0.25, stage repeats [1,2,2,3,3,4,1] -> [1,2,1,1,1,1,1], 10 classes, 48 px",
         full=full("efficientnet_b0")),
    Spec("efficientnet_v2_s", "EfficientNet-V2-S", r_efficientnet_v2_s, 48, at("features[-1]"),
         "features[-1] (the last conv block)",
         "6 stages (2 Fused-MBConv expand 1 / 4, 4 MBConv with SE) -> 5 (Fused expand 1, Fused expand 4, MBConv x3), "
         "widths 24..256 -> 8..48, repeats -> [1,2,1,2,1], last channel 1280 -> 128, 10 classes, 48 px",
         full=full("efficientnet_v2_s")),
    Spec("regnet_y_400mf", "RegNetY-400MF", r_regnet_y_400mf, 48, at("trunk_output[-1]"),
         "trunk_output[-1] (the last stage, the last conv block before the pooling head)",
         "BlockParams depth 16, w_0 48, w_a 27.89, w_m 2.09, group width 8 -> depth 4, w_0 8, w_a 8, w_m 2, group "
         "width 4 (SE 0.25 kept), stem 32 -> 8, 10 classes, 48 px", full=full("regnet_y_400mf")),
    Spec("convnext_tiny", "ConvNeXt-Tiny", r_convnext_tiny, 64, at("features[-1]"), "features[-1] (the last stage)",
         "widths 96/192/384/768 -> 8/16/32/64, depths [3,3,9,3] -> [1,1,2,1], 10 classes, 64 px",
         opset=17, full=full("convnext_tiny")),
    Spec("vit_b_16", "ViT-B/16", r_vit_b_16, 32, at("encoder.layers[-1].ln_1"),
         f"encoder.layers[-1].ln_1 (blocks[-1].norm1 in {GC}'s ViT example; reshape_transform drops the class token)",
         "image 224 -> 32, patch 16 -> 8 (4x4 tokens), 12 -> 2 layers, 12 -> 2 heads, hidden 768 -> 32, mlp 3072 -> "
         "64, 10 classes", layout="tokens-cls", opset=17, full=full("vit_b_16")),
    Spec("swin_t", "Swin-T", r_swin_t, 32, at("features[-1][-1].norm1"),
         f"features[-1][-1].norm1 (layers[-1].blocks[-1].norm1 in {GC}'s Swin example), (N, h, w, C)",
         "embed 96 -> 16, depths [2,2,6,2] -> [2,2] (a shifted-window block in each stage; stage 2's 4x4 map equals the "
         "window, so only stage 1 shifts), heads [3,6,12,24] -> [2,4], window 7 -> 4, 10 classes, 32 px",
         layout="nhwc", opset=17, full=full("swin_t")),
    Spec("maxvit_t", "MaxViT-T", r_maxvit_t, 32, at("blocks[-1]"),
         "blocks[-1] (the last stage: an NCHW map before the pooling head; pytorch-grad-cam documents no MaxViT "
         "layer, this follows its CNN rule, the last conv-attention stage)",
         "stem 64 -> 8, 4 stages [64,128,256,512] x [2,2,5,2] -> 2 stages [16,32] x [1,1], head dim 32 -> 8, "
         "partition 7 -> 4, 224 -> 32 px, 10 classes", opset=17, full=full("maxvit_t")),
    Spec("resnet18_dynhw", "ResNet-18 (dynamic H, W)", r_resnet18_dynhw, (48, 80), at("layer4[-1]"),
         f"layer4[-1], {GC} for ResNet",
         "as resnet18, exported at 64x64 with dynamic_axes on dims 0, 2, 3; goldens at 48x80", dynamic_hw=True,
         full=full("resnet18"), full_hw=(192, 256)),
]


# ----------------------------------------------------------------------------------------------
# Random weights, BN calibrated then perturbed, logits scaled
# ----------------------------------------------------------------------------------------------
def head_layers(model):
    """The layers that make the logits (scaled so logits have std LOGIT_STD): the last conv / linear; for LRASPP
    both classifiers (its output is their sum)."""
    if isinstance(model, SegOut) and isinstance(model.model, tv_lraspp.LRASPP):
        return [model.model.classifier.low_classifier, model.model.classifier.high_classifier]
    return [[m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]]


@torch.no_grad()
def randomize(model, x_cal, gen, out=lambda y: y):
    def rnd(*shape):
        return torch.randn(*shape, generator=gen)

    def uni(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "layer_scale":
            p.copy_(uni(0.3, 1.0, *p.shape))
        elif leaf == "relative_position_bias_table":
            p.copy_(0.5 * rnd(*p.shape))
        elif leaf in ("class_token", "pos_embedding"):
            p.copy_(0.5 * rnd(*p.shape))
        elif "bias" in leaf and not p.any():
            p.copy_(0.1 * rnd(*p.shape))
        elif "weight" in leaf and p.dim() >= 2 and not p.any():  # ViT's zero head
            p.copy_(rnd(*p.shape) / math.sqrt(p[0].numel()))
    for m in model.modules():
        if isinstance(m, nn.LayerNorm) and m.elementwise_affine:
            m.weight.copy_(uni(0.6, 1.4, *m.weight.shape))
            m.bias.copy_(0.1 * rnd(*m.bias.shape))
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    for xb in x_cal.chunk(4):
        model(xb)
    model.eval()
    for m in bns:
        m.running_mean.add_(0.1 * rnd(m.num_features) * m.running_var.sqrt())
        m.running_var.mul_(uni(0.6, 1.5, m.num_features))
        m.weight.copy_(uni(0.6, 1.4, m.num_features))
        m.bias.copy_(0.1 * rnd(m.num_features))
        m.momentum = 0.1
    k = LOGIT_STD / out(model(x_cal)).std().item()
    for last in head_layers(model):
        last.weight.mul_(k)
        if last.bias is not None:
            last.bias.mul_(k)


# ----------------------------------------------------------------------------------------------
# Target capture, goldens, export, checks
# ----------------------------------------------------------------------------------------------
class Capture:
    """Forward hook on the target module: keeps its output A and passes a copy on, so an in-place op after the
    target (DenseNet's F.relu(features, inplace=True)) cannot overwrite A or its gradient."""

    def __init__(self, module):
        self.a = None
        self.handle = module.register_forward_hook(self.hook)

    def hook(self, module, inputs, output):
        self.a = output
        return output.clone()


class WithAct(nn.Module):
    """model(x) and the target activation, as two outputs: exported once to learn the target's ONNX name."""

    def __init__(self, model, target):
        super().__init__()
        self.model = model
        self.cap = Capture(target(model))

    def forward(self, x):
        return self.model(x), self.cap.a


def to_nchw(t, layout):
    """A target activation as (N, D, h, w), as pytorch-grad-cam's reshape_transform makes it."""
    if layout == "nchw":
        return t
    if layout == "nhwc":
        return t.permute(0, 3, 1, 2)
    tokens = t[:, 1:] if layout == "tokens-cls" else t
    n, hw, d = tokens.shape
    h = int(round(math.sqrt(hw)))
    assert h * h == hw, f"{hw} tokens are not a square map"
    return tokens.reshape(n, h, h, d).permute(0, 3, 1, 2)


def gradcam(a, g, layout):
    """Grad-CAM raw map (N, h, w) before the ReLU: sum_k mean_ij(g_k) A_kij."""
    a, g = to_nchw(a, layout), to_nchw(g, layout)
    return (g.mean((2, 3), keepdim=True) * a).sum(1)


def score_of(y, classes, mask):
    """sum_i logits[i, c_i]; segmentation (mask given): sum_i (out[i, c_i] * mask).sum()."""
    if mask is None:
        return sum(y[i, c] for i, c in enumerate(classes))
    return sum((y[i, c] * mask).sum() for i, c in enumerate(classes))


def run_torch(model, target, x, classes, layout, mask, dtype):
    m = copy.deepcopy(model).to(dtype).eval()
    cap = Capture(target(m))
    xx = x.detach().to(dtype).clone().requires_grad_(True)
    y = m(xx)
    a = cap.a
    g_a, g_x = torch.autograd.grad(score_of(y, classes, None if mask is None else mask.to(dtype)), [a, xx])
    return {"logits": y.detach(), "act": a.detach(), "grad_act": g_a, "grad_input": g_x,
            "gradcam": gradcam(a.detach(), g_a, layout)}


def export(model, x, path, opset, dynamic_hw, outputs, seg):
    spatial = {2: "H", 3: "W"} if dynamic_hw else {}
    axes = {"input": {0: "N", **spatial}, outputs[0]: {0: "N", **(spatial if seg else {})}}
    torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=list(outputs),
                      dynamic_axes=axes, do_constant_folding=True)


def target_name(model, target, x, path, opset, dynamic_hw, seg, out_name):
    """The ONNX tensor name of the target's output in model.onnx: export with A as a second output, find the
    node producing it (torch 1.13 names nodes by module scope, '/layer4/layer4.0/relu_1/Relu'), take that node's
    output in model.onnx."""
    with tempfile.TemporaryDirectory() as tmp:
        p2 = os.path.join(tmp, "with_act.onnx")
        export(WithAct(copy.deepcopy(model), target).eval(), x, p2, opset, dynamic_hw, (out_name, "act"), seg)
        g2 = onnx.load(p2).graph
    prod = [n for n in g2.node if "act" in n.output]
    assert len(prod) == 1, f"{path}: 'act' is produced by {len(prod)} nodes"
    prod = prod[0]
    assert prod.name.startswith("/model/"), f"{path}: node {prod.name} is not in WithAct's model scope"
    name = prod.name[len("/model"):]  # WithAct's attribute 'model' adds a scope
    g = onnx.load(path).graph
    same = [n for n in g.node if n.name == name]
    assert len(same) == 1 and same[0].op_type == prod.op_type, f"{path}: node {name} ({prod.op_type}) not in model.onnx"
    return same[0].output[list(prod.output).index("act")], same[0].op_type


def ort_outputs(path, x, extra):
    """onnxruntime-node's values of the graph outputs and of the tensors in `extra` (added as graph outputs)."""
    m = onnx.load(path)
    for name in extra:
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    with tempfile.TemporaryDirectory() as tmp:
        mp, xp = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "x.npy")
        onnx.save(m, mp)
        np.save(xp, x.numpy().astype("<f4"))
        r = subprocess.run(["node", os.path.join(ROOT, "tools", "zoo_ort.mjs"), mp, xp, os.path.join(tmp, "out")],
                           cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{path}: onnxruntime failed:\n{r.stderr[-3000:]}")
        names = json.loads(r.stdout.strip().splitlines()[-1])
        return {n: torch.from_numpy(np.load(os.path.join(tmp, f"out{k}.npy"))) for k, n in enumerate(names)}


def attr_text(v):
    return v.decode() if isinstance(v, bytes) else v


def forms(g):
    """How the ops on activations are used, where an engine may take only some forms (counted, sorted): Transpose
    perms, attention's MatMul / Softmax, Gather on activations, Concat / Split off the channel axis, Pad / Resize / ReduceMean / LayerNormalization
    attributes, Einsum equations, Add / Mul / Sub / Div of two activations."""
    data = {v.name for v in g.input} - {t.name for t in g.initializer}
    outputs = {o.name for o in g.output}
    seen = {}
    for n in g.node:
        act = [i in data for i in n.input]
        if n.op_type == "Shape" or not any(act):
            continue
        data.update(n.output)
        a = {x.name: attr_text(onnx.helper.get_attribute_value(x)) for x in n.attribute}
        op, f = n.op_type, None
        if op == "Transpose":
            f = f"Transpose perm={a.get('perm')}"
        elif op == "MatMul" and all(act[:2]):
            f = "MatMul of two activations"
        elif op == "Softmax" and n.output[0] not in outputs:
            f = f"Softmax inside the graph, axis={a.get('axis')}"
        elif op == "Gather" or (op in ("Concat", "Split") and a.get("axis", 0) != 1):
            f = f"{op} axis={a.get('axis', 0)}"
        elif op in ("Pad", "Resize", "Upsample", "ReduceMean", "LayerNormalization", "Einsum"):
            keep = ("mode", "coordinate_transformation_mode", "nearest_mode", "axes", "keepdims", "axis", "equation")
            f = op + " " + " ".join(f"{k}={a[k]}" for k in keep if k in a)
        elif op in ("Add", "Mul", "Sub", "Div") and all(act[:2]):
            f = f"{op} of two activations"
        if f:
            seen[f.strip()] = seen.get(f.strip(), 0) + 1
    return [f"{f} x{k}" for f, k in sorted(seen.items())]


def op_roles(g):
    """(op types applied to activations, op types applied only to constants and shapes): a node works on activations
    when one of its inputs is computed from the graph input through anything but Shape; the others only see
    initializers, Constants and shapes (what an importer can evaluate at load)."""
    data = {v.name for v in g.input} - {t.name for t in g.initializer}
    on_act, on_shapes = set(), set()
    for n in g.node:
        if n.op_type != "Shape" and any(i in data for i in n.input):
            on_act.add(n.op_type)
            data.update(n.output)
        else:
            on_shapes.add(n.op_type)
    return sorted(on_act), sorted(on_shapes)


def rel(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def save_npy(path, t):
    np.save(path, np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4")))


class SegOut(nn.Module):
    """A torchvision segmentation model's output['out'] as a plain tensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


# ----------------------------------------------------------------------------------------------
# Segmentation and other exporters' patterns (hand-written modules)
# ----------------------------------------------------------------------------------------------
SEG_CLASSES = 4
SEG_MASK = (slice(12, 30), slice(18, 42))  # rows, cols of the 48x48 output


def seg_mask(h, w):
    m = torch.zeros(h, w)
    m[SEG_MASK] = 1
    return m


def r_seg_lraspp(nc):
    """torchvision's LRASPP on a reduced dilated MobileNetV3-Large (as lraspp_mobilenet_v3_large builds it)."""
    setting, last = tv_mnv3._mobilenet_v3_conf("mobilenet_v3_large", width_mult=0.25, dilated=True)
    net = tv_mnv3.MobileNetV3([setting[i] for i in [0, 1, 3, 4, 6, 10, 12]], 64, num_classes=nc).features
    stages = [0] + [i for i, b in enumerate(net) if getattr(b, "_is_cn", False)] + [len(net) - 1]
    low, high = stages[-4], stages[-1]
    assert (low, high) == (3, 8), (low, high)  # the spec's target is model.backbone.8
    backbone = tv_lraspp.IntermediateLayerGetter(net, return_layers={str(low): "low", str(high): "high"})
    return SegOut(tv_lraspp.LRASPP(backbone, net[low].out_channels, net[high].out_channels, nc, inter_channels=16))



def r_seg_fcn(nc):
    """torchvision's FCN (as fcn_resnet50 builds it: a ResNet with strides 2 and 3 replaced by dilation, its layer4 as
    'out', FCNHead, bilinear up-sampling to the input size) on a width-1/16, one-block-per-stage Bottleneck ResNet."""
    net = SlimResNet(tv_resnet.Bottleneck, [1, 1, 1, 1], 0.0625, 10, replace_stride_with_dilation=[False, True, True])
    backbone = tv_lraspp.IntermediateLayerGetter(net, return_layers={"layer4": "out"})
    return SegOut(tv_fcn.FCN(backbone, tv_fcn.FCNHead(int(512 * 0.0625) * 4, nc)))


class ManualHardswish(nn.Module):
    """x * clamp(x + 3, 0, 6) / 6 as older exporters write it (Add, Clip, Mul, Div instead of HardSwish)."""

    def forward(self, x):
        return x * torch.clamp(x + 3, 0, 6) / 6


class ManualLayerNorm(nn.Module):
    """LayerNorm over the channels of (N, C, H, W) written out: (x - mean) / sqrt(var + eps) * g + b
    (ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add)."""

    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, c, 1, 1))
        self.b = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = ((x - mean) ** 2).mean(1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.g + self.b


def cbr(cin, cout, stride=1, act=None):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), act or nn.ReLU())


class Pattern(nn.Module):
    """features (the target is features[-1]) then a head written in the pattern's style."""

    def __init__(self, features, head, fc):
        super().__init__()
        self.features, self.head_fn, self.fc = features, head, fc

    def forward(self, x):
        return self.fc(self.head_fn(self.features(x)))


def p_hardswish(nc):
    f = nn.Sequential(cbr(3, 16, 2, ManualHardswish()), cbr(16, 32, 2, ManualHardswish()))
    return Pattern(f, lambda a: F.adaptive_avg_pool2d(a, 1).flatten(1), nn.Linear(32, nc))


def p_view(nc):
    """view(N, C*H*W) from sizes, then a hidden layer (Shape, Gather, Mul, Unsqueeze, Concat, Reshape)."""
    f = nn.Sequential(cbr(3, 8, 2), nn.MaxPool2d(2), cbr(8, 16, 2))
    fc = nn.Sequential(nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, nc))
    return Pattern(f, lambda a: a.view(a.size(0), a.size(1) * a.size(2) * a.size(3)), fc)


def p_flatten(nc):
    """Reshapes whose shapes are computed from x.shape (Shape, Slice, Gather, Div, Cast, Concat), torch.flatten."""
    f = nn.Sequential(cbr(3, 8, 2), cbr(8, 16, 2))

    def head(a):
        t = a.flatten(2)  # (N, C, H*W): Reshape to a shape sliced from Shape
        t = t.reshape(t.size(0), t.size(1) // 4, -1)  # (N, C/4, 4*H*W): integer division on a size
        return torch.flatten(F.max_pool2d(t.reshape(a.shape), 2), 1)  # back to (N, C, H, W); Flatten

    return Pattern(f, head, nn.Linear(16 * 4 * 4, nc))


class Upsampling(nn.Module):
    """conv s2 -> interpolate x2 (each mode) -> conv; several modes in one network."""

    def __init__(self, modes):
        super().__init__()
        self.modes = modes
        self.down = cbr(3, 8, 2)
        self.convs = nn.ModuleList([cbr(8, 8) for _ in modes])

    def forward(self, x):
        x = self.down(x)
        for (mode, align), conv in zip(self.modes, self.convs):
            kw = {} if mode == "nearest" else {"align_corners": align}
            x = conv(F.interpolate(x, scale_factor=2.0, mode=mode, **kw))
            x = F.max_pool2d(x, 2)
        return x


def p_upsample(nc, modes):
    return Pattern(nn.Sequential(Upsampling(modes), cbr(8, 16, 2)), lambda a: F.adaptive_avg_pool2d(a, 1).flatten(1),
                   nn.Linear(16, nc))


class ChannelsLast(nn.Module):
    """(N, H, W, C) input, permuted to NCHW, then Keras-style explicit padding before each strided conv."""

    def __init__(self):
        super().__init__()
        self.c1 = cbr(3, 8)
        self.c2 = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 0, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.c3 = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 0, bias=False), nn.BatchNorm2d(32), nn.ReLU())

    def forward(self, x):
        x = self.c1(x.permute(0, 3, 1, 2))
        x = self.c2(F.pad(x, (0, 1, 0, 1)))  # TF 'same' for stride 2: the extra row / column at the end
        return self.c3(F.pad(x, (0, 1, 0, 1)))


def p_nhwc(nc):
    return Pattern(nn.Sequential(ChannelsLast()), lambda a: F.adaptive_avg_pool2d(a, 1).flatten(1), nn.Linear(32, nc))


def p_gap_mean(nc):
    return Pattern(nn.Sequential(cbr(3, 16, 2), cbr(16, 32, 2)), lambda a: a.mean((2, 3)), nn.Linear(32, nc))


def p_layernorm(nc):
    f = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), ManualLayerNorm(16), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1),
                      ManualLayerNorm(32), nn.ReLU())
    return Pattern(f, lambda a: F.adaptive_avg_pool2d(a, 1).flatten(1), nn.Linear(32, nc))


NEAREST, BILINEAR, BILINEAR_AC = ("nearest", None), ("bilinear", False), ("bilinear", True)
LAST = "features[-1] (the last activation before the pooling head)"
SPECS += [
    Spec("seg_lraspp", "LRASPP-MobileNetV3 (segmentation)", r_seg_lraspp, 48, at("model.backbone.8"),
         "the backbone's last block (LRASPP's 'high' input, stride 16), as pytorch-grad-cam's segmentation tutorial "
         "targets the backbone's last layer",
         "backbone: MobileNetV3-Large dilated, width 0.25, blocks 0,1,3,4,6,10,12 of 15; LRASPP inter channels 128 -> "
         f"16; {SEG_CLASSES} classes (21 in torchvision's), 48 px", seg=True,
         full=lambda nc: SegOut(tvm.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)),
         full_target=at("model.backbone.16")),
    Spec("seg_fcn", "FCN-ResNet (segmentation)", r_seg_fcn, 48, at("model.backbone.layer4"),
         "the backbone's layer4 (FCN's 'out' feature, stride 8), as pytorch-grad-cam's segmentation tutorial targets",
         "backbone: ResNet-50's Bottleneck, dilated layers 3 and 4, widths x 1/16, 1 block per stage (3,4,6,3 in "
         f"ResNet-50); FCNHead 2048 -> 128 in; {SEG_CLASSES} classes (21 in torchvision's), 48 px", seg=True,
         full=lambda nc: SegOut(tvm.segmentation.fcn_resnet50(weights=None, weights_backbone=None, aux_loss=False)),
         full_target=at("model.backbone.layer4")),
    Spec("pattern_hardswish", "pattern: hard-swish written out", p_hardswish, 32, at("features[-1]"), LAST,
         "x * clamp(x + 3, 0, 6) / 6 (Add, Clip, Mul, Div) instead of HardSwish"),
    Spec("pattern_view_opset9", "pattern: view from sizes (opset 9)", p_view, 32, at("features[-1]"), LAST,
         "x.view(x.size(0), x.size(1) * x.size(2) * x.size(3)) at opset 9", opset=9),
    Spec("pattern_flatten_opset11", "pattern: torch.flatten and sliced shapes (opset 11)", p_flatten, 32,
         at("features[-1]"), LAST, "x.flatten(2), reshape(x.size(0), x.size(1) // 4, -1), reshape(x.shape), "
         "torch.flatten(x, 1), at opset 11",
         opset=11),
    Spec("pattern_upsample_opset9", "pattern: Upsample (opset 9)", partial(p_upsample, modes=[NEAREST]), 32,
         at("features[-1]"), LAST, "F.interpolate(scale 2, nearest) at opset 9 (Upsample; opset 9's linear Upsample "
         "does not match PyTorch's bilinear, so only nearest)", opset=9),
    Spec("pattern_resize_opset11", "pattern: Resize (opset 11)", partial(p_upsample, modes=[NEAREST, BILINEAR, BILINEAR_AC]),
         32, at("features[-1]"), LAST, "F.interpolate x2: nearest, bilinear align_corners False, bilinear "
         "align_corners True, at opset 11 (Resize)", opset=11),
    Spec("pattern_resize_opset13", "pattern: Resize (opset 13)", partial(p_upsample, modes=[NEAREST, BILINEAR, BILINEAR_AC]),
         32, at("features[-1]"), LAST, "as pattern_resize_opset11, at opset 13", opset=13),
    Spec("pattern_nhwc", "pattern: channels-last input, explicit pads", p_nhwc, 32, at("features[-1]"), LAST,
         "input (N, H, W, C), permute to NCHW (Transpose), F.pad(0,1,0,1) before each stride-2 conv (Pad)",
         nhwc_input=True),
    Spec("pattern_gap_mean", "pattern: global pooling as mean", p_gap_mean, 32, at("features[-1]"), LAST,
         "x.mean((2, 3)) (ReduceMean) instead of AdaptiveAvgPool2d"),
    Spec("pattern_layernorm", "pattern: LayerNorm written out", p_layernorm, 32, at("features[-1]"), LAST,
         "(x - mean) / sqrt(var + eps) * g + b over the channels (ReduceMean, Sub, Pow, Sqrt, Div)"),
]


# ----------------------------------------------------------------------------------------------
# One fixture
# ----------------------------------------------------------------------------------------------
def build(spec, out_dir, full=False):
    import zlib
    d = os.path.join(out_dir, spec.name)
    if os.path.isdir(d):
        shutil.rmtree(d)  # no stale goldens survive a change
    os.makedirs(d)
    seed = zlib.crc32(spec.name.encode()) % 100000
    target = spec.full_target if full else spec.target
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = (spec.full if full else spec.build)(1000 if full else 10).eval()
    hw = spec.full_hw if full else spec.hw
    h, w = hw if isinstance(hw, tuple) else (hw, hw)
    shape = (lambda n, hh, ww: (n, hh, ww, 3)) if spec.nhwc_input else (lambda n, hh, ww: (n, 3, hh, ww))
    randomize(model, torch.randn(*shape(16, h, w), generator=gen), gen)
    x = torch.randn(*shape(B, h, w), generator=torch.Generator().manual_seed(seed + 2))
    x_export = torch.randn(*shape(B, 64, 64)) if spec.dynamic_hw else x
    out_name = "out" if spec.seg else "logits"
    mask = seg_mask(h, w) if spec.seg else None
    classes = [1, 2] if spec.seg else CLASSES

    path = os.path.join(d, "model.onnx")
    export(model, x_export, path, spec.opset, spec.dynamic_hw, (out_name,), spec.seg)
    onnx.checker.check_model(path)
    tname, target_op = target_name(model, target, x_export, path, spec.opset, spec.dynamic_hw, spec.seg, out_name)
    gold = run_torch(model, target, x, classes, spec.layout, mask, torch.float64)
    g32 = run_torch(model, target, x, classes, spec.layout, mask, torch.float32)
    ort = ort_outputs(path, x, [tname])
    ort_rel = {"logits": rel(ort[out_name], g32["logits"]), "act": rel(ort[tname], g32["act"])}
    assert max(ort_rel.values()) < 1e-4, f"{spec.name}: onnxruntime disagrees with PyTorch: {ort_rel}"
    f32_rel = {k: rel(g32[k], v) for k, v in gold.items()}

    save_npy(os.path.join(d, "x.npy"), x)
    for k, v in gold.items():
        save_npy(os.path.join(d, f"{k}.npy"), v)
    if mask is not None:
        save_npy(os.path.join(d, "mask.npy"), mask)
    g = onnx.load(path).graph
    act = gold["act"]
    meta = {
        "family": spec.family,
        "input": list(x.shape),
        "input_layout": "nhwc" if spec.nhwc_input else "nchw",
        "dynamic": ["N", "H", "W"] if spec.dynamic_hw else ["N"],
        "classes": classes,
        "output": out_name,
        "output_shape": list(gold["logits"].shape),
        "target": tname,
        "target_op": target_op,
        "target_module": target.path,
        "target_why": spec.why,
        "layout": spec.layout,
        "act_shape": list(act.shape),
        "gradcam_shape": list(gold["gradcam"].shape),
        "opset": spec.opset,
        "ops": sorted({n.op_type for n in g.node}),
        "ops_on_activations": op_roles(g)[0],
        "ops_on_shapes": op_roles(g)[1],
        "forms": forms(g),
        "reduced": "full size (torchvision's builder, 1000 classes)" if full else spec.reduced,
        "seed": seed,
        "onnx_bytes": os.path.getsize(path),
        "ort_max_rel": ort_rel,
        "float32_max_rel": f32_rel,
        "stats": {"logits_std": gold["logits"].std().item(), "act_zero_frac": (act == 0).double().mean().item(),
                  "gradcam_absmax": gold["gradcam"].abs().max().item()},
        "notes": "goldens in float64 from the float32 weights in model.onnx, stored as float32; tools/make_zoo.py",
    }
    if mask is not None:
        meta["seed_rule"] = "mask: score = sum_i (output[i, classes[i]] * mask).sum(), mask.npy (H, W)"
        meta["mask_region"] = [[SEG_MASK[0].start, SEG_MASK[0].stop], [SEG_MASK[1].start, SEG_MASK[1].stop]]
    else:
        meta["seed_rule"] = "one-hot: score = sum_i logits[i, classes[i]]"
    with open(os.path.join(d, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    return meta, d


def main():
    args = sys.argv[1:]
    if args[:1] == ["--list"]:
        print("\n".join(s.name for s in SPECS))
        return
    full = args[:1] == ["--full"]
    out_dir = args[1] if full else ZOO_DIR
    names = set(args[2:] if full else args)
    specs = [s for s in SPECS if (not names or s.name in names) and (not full or s.full)]
    if not specs:
        raise SystemExit(f"no fixture selected; names: {' '.join(s.name for s in SPECS)}")
    os.makedirs(out_dir, exist_ok=True)
    total = 0
    for s in specs:
        meta, d = build(s, out_dir, full)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        total += size
        if full:
            reduced_meta = os.path.join(ZOO_DIR, s.name, "meta.json")
            with open(reduced_meta) as fh:
                small = set(json.load(fh)["ops"])
            print(f"{s.name:<24} ops of the full model missing in the reduced one: "
                  f"{' '.join(sorted(set(meta['ops']) - small)) or 'none'}; only in the reduced one: "
                  f"{' '.join(sorted(small - set(meta['ops']))) or 'none'}")
        print(f"{s.name:<24} onnx {meta['onnx_bytes'] / 1024:7.0f} KiB  dir {size / 1024:7.0f} KiB  opset {meta['opset']}  "
              f"A {meta['act_shape']} ({meta['target_op']})  ort {max(meta['ort_max_rel'].values()):.1e}  "
              f"f32 {max(meta['float32_max_rel'].values()):.1e}  logit std {meta['stats']['logits_std']:.2f}  "
              f"A zeros {meta['stats']['act_zero_frac']:.2f}", flush=True)
        print(f"{'':<24} target {meta['target']}", flush=True)
        print(f"{'':<24} ops {' '.join(meta['ops'])}", flush=True)
    print(f"total {total / 1024 / 1024:.2f} MiB in {out_dir}")


if __name__ == "__main__":
    main()
