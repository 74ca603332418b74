#!/usr/bin/python3
"""Train the three camgpu demo CNNs on cluttered Fashion-MNIST scenes (tools/make_scenes.py) and export them.

Models (input 3 x 64 x 64, normalised with the training scenes' per-channel mean / std; A = the default
CAM target, 8 x 8 for all three):
  vgg        VGG-style: [conv3x3-ReLU, MaxPool2] x3 (16, 32, 64 ch), conv3x3(96)-ReLU x2 -> A (96 x 8 x 8);
             head MaxPool2 - Flatten - Linear(1536,128) - ReLU - Dropout(0.3) - Linear(128,10). Trained with BN
             after every conv; the export folds it into the convs.
  resnet     ResNet-style (BasicBlocks with BN): conv3x3/2-BN-ReLU, MaxPool2, blocks 32@16, 64@8 (/2),
             96@8 -> A (96 x 8 x 8, after the last block's ReLU); head GAP - Flatten - Linear(96,10)
  mobilenet  MobileNetV2-style: conv3x3/2-BN-ReLU6, inverted residuals (depthwise 3x3, ReLU6, linear
             bottlenecks, residual adds), conv1x1-BN-ReLU6 -> A (128 x 8 x 8); head GAP - Flatten -
             Dropout(0.2) - Linear(128,10)

Commands (Debian's /usr/bin/python3; torch 1.13 CPU, 1 thread by default, see --threads):
  /usr/bin/python3 tools/make_scenes.py cache            # once: uint8 scene caches in out/scenes-cache/
  /usr/bin/python3 tools/train.py train vgg              # resumes from out/train/vgg/ckpt.pt (per epoch)
  /usr/bin/python3 tools/train.py export vgg             # weights/vgg.onnx + .json sidecar + .md card
  /usr/bin/python3 tools/train.py bench                  # throughput of each model (samples / s)

Training: AdamW, one-cycle learning rate, label smoothing 0.05, batch 64, the 2 x 60000 cached training
scenes (2 renderings of every Fashion-MNIST training image, 20% of them multi-instance) plus random
horizontal flips of the scene. Everything is seeded; a checkpoint is written after every epoch.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_scenes  # noqa: E402

SIZE = make_scenes.SIZE
CACHE = os.path.join(ROOT, "out", "scenes-cache")
RUNS = os.path.join(ROOT, "out", "train")
WEIGHTS = os.path.join(ROOT, "weights")
SEED = 1234


# ----------------------------------------------------------------------------------------------
# Models: forward = head(features(x)); A = features(x) is the default CAM target
# ----------------------------------------------------------------------------------------------
class Net(nn.Module):
    def __init__(self, features, head):
        super().__init__()
        self.features = features
        self.head = head
        self.return_act = False

    def forward(self, x):
        a = self.features(x)
        y = self.head(a)
        return (y, a) if self.return_act else y


def make_vgg(size=SIZE):
    """BatchNorm is used in training only: the ONNX export (eval mode, constant folding) folds each BN into its
    conv, so the exported graph is plain Conv(+bias)-Relu-MaxPool."""
    def cbr(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    features = nn.Sequential(
        *cbr(3, 16), nn.MaxPool2d(2),      # 32
        *cbr(16, 32), nn.MaxPool2d(2),     # 16
        *cbr(32, 64), nn.MaxPool2d(2),     # 8
        *cbr(64, 96), *cbr(96, 96),        # A: 96 x 8 x 8
    )
    head = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(96 * (size // 16) ** 2, 128), nn.ReLU(inplace=True),
                         nn.Dropout(0.3), nn.Linear(128, 10))
    net = Net(features, head)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + idt)


def make_resnet():
    features = nn.Sequential(
        nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU(inplace=True),  # 32
        nn.MaxPool2d(2),                                                                   # 16
        BasicBlock(24, 32),
        BasicBlock(32, 64, 2),                                                             # 8
        BasicBlock(64, 96),                                                                # A: 96 x 8 x 8
    )
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, 10))
    net = Net(features, head)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    for m in net.modules():  # zero-init the last BN of each residual branch
        if isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)
    return net


def conv_bn(cin, cout, k, s=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, expand, stride):
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = [] if expand == 1 else [conv_bn(cin, hid, 1)]
        layers += [conv_bn(hid, hid, 3, stride, groups=hid), conv_bn(hid, cout, 1, act=False)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.use_res else y


def make_mobilenet():
    features = nn.Sequential(
        conv_bn(3, 16, 3, 2),                     # 32
        InvertedResidual(16, 24, 1, 2),           # 16
        InvertedResidual(24, 24, 3, 1),
        InvertedResidual(24, 40, 3, 2),           # 8
        InvertedResidual(40, 40, 3, 1),
        InvertedResidual(40, 64, 3, 1),
        InvertedResidual(64, 64, 3, 1),
        conv_bn(64, 128, 1),                      # A: 128 x 8 x 8 (after ReLU6)
    )
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(128, 10))
    net = Net(features, head)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
    return net


MODELS = {"vgg": make_vgg, "resnet": make_resnet, "mobilenet": make_mobilenet}
HPARAMS = {  # epochs over the 120000 cached scenes, peak learning rate, weight decay
    "vgg": dict(epochs=4, lr=3e-3, wd=5e-4),
    "resnet": dict(epochs=6, lr=4e-3, wd=5e-4),
    "mobilenet": dict(epochs=5, lr=4e-3, wd=1e-4),
}


def cmd_bench(args):
    for name in args.models or MODELS:
        torch.manual_seed(0)
        net = MODELS[name](args.size) if name == "vgg" else MODELS[name]()
        nparam = sum(p.numel() for p in net.parameters())
        opt = torch.optim.AdamW(net.parameters(), 1e-3)
        x = torch.randn(64, 3, args.size, args.size)
        y = torch.randint(0, 10, (64,))
        for cl in (False, True):
            xx = x.contiguous(memory_format=torch.channels_last) if cl else x
            n2 = net.to(memory_format=torch.channels_last) if cl else net.to(memory_format=torch.contiguous_format)
            n2.train()
            for i in range(12):
                if i == 4:
                    t0 = time.time()
                opt.zero_grad()
                F.cross_entropy(n2(xx), y).backward()
                opt.step()
            dt = (time.time() - t0) / 8
            print(f"{name:10s} params {nparam:8d} channels_last={cl}: {64 / dt:6.0f} samples/s", flush=True)


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
def load_cache(name):
    px, py = make_scenes.cache_paths(CACHE, name)
    if not os.path.exists(px):
        sys.exit(f"missing {px}: run  /usr/bin/python3 tools/make_scenes.py cache")
    return np.load(px, mmap_mode="r"), np.load(py)


def train_sets(variants):
    return [load_cache(f"train{SIZE}_v{v}") for v in range(variants)]


def stats():
    """per-channel mean / std (pixel / 255) of the training scenes of variant 0, cached in stats.json."""
    path = os.path.join(CACHE, f"stats{SIZE}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    x, _ = load_cache(f"train{SIZE}_v0")
    s1 = np.zeros(3)
    s2 = np.zeros(3)
    n = 0
    for i in range(0, len(x), 5000):
        b = x[i: i + 5000].reshape(-1, 3).astype(np.float64) / 255.0
        s1 += b.sum(0)
        s2 += (b * b).sum(0)
        n += len(b)
    mean = s1 / n
    std = np.sqrt(s2 / n - mean * mean)
    st = {"mean": [round(float(v), 4) for v in mean], "std": [round(float(v), 4) for v in std]}
    with open(path, "w") as f:
        json.dump(st, f)
    return st


class Normalizer:
    def __init__(self, st):
        self.mean = torch.tensor(st["mean"], dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.inv = 1.0 / (torch.tensor(st["std"], dtype=torch.float32).view(1, 3, 1, 1) * 255.0)

    def __call__(self, xb_uint8):
        x = torch.from_numpy(np.array(xb_uint8)).permute(0, 3, 1, 2).float()
        return (x - self.mean) * self.inv


@torch.no_grad()
def evaluate(net, x, y, norm, n=None, bs=500, channels_last=False):
    net.eval()
    n = len(y) if n is None else n
    correct = 0
    for i in range(0, n, bs):
        xb = norm(x[i: min(i + bs, n)])
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        correct += int((net(xb).argmax(1).numpy() == y[i: min(i + bs, n)]).sum())
    return correct / n


CHANNELS_LAST = {"vgg": True, "resnet": False, "mobilenet": False}


def cmd_train(args):
    name = args.model
    hp = dict(HPARAMS[name])
    for k in ("epochs", "lr", "wd"):
        if getattr(args, k) is not None:
            hp[k] = getattr(args, k)
    run = os.path.join(RUNS, name)
    os.makedirs(run, exist_ok=True)
    ckpt_path = os.path.join(run, "ckpt.pt")
    st = stats()
    norm = Normalizer(st)
    sets = train_sets(args.variants)
    xs_test, ys_test = load_cache(f"test{SIZE}_single")
    n_total = sum(len(y) for _, y in sets)
    bs = args.batch
    steps_per_epoch = n_total // bs
    total_steps = steps_per_epoch * hp["epochs"]
    cl = CHANNELS_LAST[name]

    torch.manual_seed(SEED)
    net = MODELS[name]()
    if cl:
        net = net.to(memory_format=torch.channels_last)
    decay = [p for n_, p in net.named_parameters() if p.ndim > 1]
    no_decay = [p for n_, p in net.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["wd"]}, {"params": no_decay, "weight_decay": 0}],
                            lr=hp["lr"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp["lr"], total_steps=total_steps, pct_start=0.2,
                                                div_factor=20, final_div_factor=200)
    epoch0, elapsed, history = 0, 0.0, []
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        epoch0, elapsed, history = ck["epoch"], ck["elapsed"], ck["history"]
        assert ck["hp"] == hp, f"checkpoint was trained with {ck['hp']}, not {hp}: delete {ckpt_path}"
        print(f"resumed {name} at epoch {epoch0} ({elapsed / 60:.1f} min so far)", flush=True)
    print(f"{name}: {sum(p.numel() for p in net.parameters())} params, {hp}, {n_total} scenes / epoch, "
          f"batch {bs}, {total_steps} steps, mean {st['mean']} std {st['std']}", flush=True)
    # (set, row) index of every training scene
    index = np.concatenate([np.stack([np.full(len(y), k), np.arange(len(y))], 1) for k, (_, y) in enumerate(sets)])
    for epoch in range(epoch0, hp["epochs"]):
        t_ep = time.time()
        net.train()
        g = np.random.default_rng([SEED, epoch])
        order = index[g.permutation(len(index))]
        flips = g.random(len(index)) < 0.5
        tl, tc, tn, t_log = 0.0, 0, 0, time.time()
        for step in range(steps_per_epoch):
            sel = order[step * bs: (step + 1) * bs]
            xb_np = np.empty((bs, SIZE, SIZE, 3), np.uint8)
            yb_np = np.empty(bs, np.int64)
            for k, (xa, ya) in enumerate(sets):
                m = sel[:, 0] == k
                rows = sel[m, 1]
                srt = np.argsort(rows)
                dst = np.nonzero(m)[0][srt]
                xb_np[dst] = xa[rows[srt]]
                yb_np[dst] = ya[rows[srt]]
            f = flips[step * bs: (step + 1) * bs]
            xb_np[f] = xb_np[f, :, ::-1]
            xb = norm(xb_np)
            if cl:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yb = torch.from_numpy(yb_np)
            out = net(xb)
            loss = F.cross_entropy(out, yb, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tl += float(loss) * bs
            tc += int((out.argmax(1) == yb).sum())
            tn += bs
            if (step + 1) % args.log_every == 0:
                dt = time.time() - t_log
                print(f"  ep {epoch + 1} step {step + 1}/{steps_per_epoch} loss {tl / tn:.3f} acc {tc / tn:.3f} "
                      f"lr {sched.get_last_lr()[0]:.2e} {tn / dt:.0f} samples/s "
                      f"({(elapsed + time.time() - t_ep) / 60:.1f} min)", flush=True)
                tl, tc, tn, t_log = 0.0, 0, 0, time.time()
        acc = evaluate(net, xs_test, ys_test, norm, n=2000, channels_last=cl)
        elapsed += time.time() - t_ep
        history.append({"epoch": epoch + 1, "test_single_2000": acc, "minutes": round(elapsed / 60, 2)})
        print(f"epoch {epoch + 1}: test acc (first 2000 single) {acc:.4f}, {elapsed / 60:.1f} min", flush=True)
        torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch + 1, "elapsed": elapsed, "history": history, "hp": hp}, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)
    # final evaluation on the full test split
    net.eval()
    xs_m, ys_m = load_cache(f"test{SIZE}_multi")
    res = {"model": name, "hp": hp, "batch": bs, "variants": args.variants, "train_minutes": round(elapsed / 60, 2),
           "test_single": evaluate(net, xs_test, ys_test, norm, channels_last=cl),
           "test_multi": evaluate(net, xs_m, ys_m, norm, channels_last=cl),
           "n_single": int(len(ys_test)), "n_multi": int(len(ys_m)), "history": history,
           "mean": st["mean"], "std": st["std"]}
    with open(os.path.join(run, "result.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res), flush=True)


# ----------------------------------------------------------------------------------------------
# Export: weights/<name>.onnx + weights/<name>.json (sidecar) + weights/<name>.md (model card)
# ----------------------------------------------------------------------------------------------
ARCH = {
    "vgg": "VGG-style: [conv3x3(16)-ReLU, MaxPool2], [conv3x3(32)-ReLU, MaxPool2], [conv3x3(64)-ReLU, MaxPool2], "
           "conv3x3(96)-ReLU, conv3x3(96)-ReLU = A (96 x 8 x 8); head MaxPool2 - Flatten - Linear(1536,128) - ReLU - "
           "Dropout(0.3) - Linear(128,10). Trained with BatchNorm after each conv; the export (eval mode, constant "
           "folding) folds every BN into its conv, so the ONNX graph has no BatchNormalization. The non-linear "
           "FC-ReLU-FC head makes LIFT-CAM (DeepLIFT rescale) differ from Grad-CAM; CAM does not apply.",
    "resnet": "ResNet-style with BN: conv3x3/2(24)-BN-ReLU, MaxPool2, BasicBlock(24->32, 1x1 projection), "
              "BasicBlock(32->64, stride 2, 1x1 projection), BasicBlock(64->96, 1x1 projection) = A (96 x 8 x 8, "
              "the last block's ReLU after the residual add); head GlobalAveragePool - Flatten - Linear(96,10) "
              "(CAM applies).",
    "mobilenet": "MobileNetV2-style: conv3x3/2(16)-BN-ReLU6, inverted residuals (expand 1x1-BN-ReLU6, depthwise "
                 "3x3-BN-ReLU6, linear 1x1-BN; residual add when shapes match): 16->24 /2 (t=1), then t=3: "
                 "24->24, 24->40 /2, 40->40, 40->64, 64->64, then conv1x1(128)-BN-ReLU6 = A (128 x 8 x 8); head "
                 "GlobalAveragePool - Flatten - Dropout(0.2) - Linear(128,10) (CAM applies).",
}


def onnx_target_name(net, x, onnx_path, opset=13):
    """export net to onnx_path and return the ONNX name of A (the output of net.features), the way
    tools/make_fixtures.py does it: export once more with A as a second output and map its producer node."""
    import onnx

    def exp(path, names):
        torch.onnx.export(net, x, path, opset_version=opset, input_names=["input"], output_names=names,
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True)

    exp(onnx_path, ["logits"])
    tmp = onnx_path + ".act.onnx"
    net.return_act = True
    exp(tmp, ["logits"])
    net.return_act = False
    g2 = onnx.load(tmp).graph
    os.remove(tmp)
    out2 = g2.output[1].name
    prod2 = next(n for n in g2.node if out2 in n.output)
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m)
    same = [n for n in m.graph.node if n.name == prod2.name]
    assert len(same) == 1 and same[0].op_type == prod2.op_type
    return same[0].output[list(prod2.output).index(out2)], m


def cmd_export(args):
    import onnx
    from make_fixtures import run_onnx  # tiny float64 ONNX interpreter (no onnxruntime here)

    name = args.model
    run = os.path.join(RUNS, name)
    ck = torch.load(os.path.join(run, "ckpt.pt"))
    with open(os.path.join(run, "result.json")) as f:
        res = json.load(f)
    net = MODELS[name]()
    net.load_state_dict(ck["model"])
    net.eval()
    os.makedirs(WEIGHTS, exist_ok=True)
    onnx_path = os.path.join(WEIGHTS, f"{name}.onnx")
    # a real batch of test scenes (normalised) for the export trace and the check
    st = {"mean": res["mean"], "std": res["std"]}
    norm = Normalizer(st)
    xs, ys = load_cache(f"test{SIZE}_single")
    x = norm(xs[:8])
    target, m = onnx_target_name(net, x[:2], onnx_path)
    g = m.graph
    assert [i.name for i in g.input] == ["input"] and [o.name for o in g.output] == ["logits"]
    producer = next(n for n in g.node if target in n.output)
    with torch.no_grad():
        net.return_act = True
        y_t, a_t = net(x)
        net.return_act = False
    y_o, kept = run_onnx(g, x, keep=[target])
    err_y = float((y_o - y_t.double()).abs().max() / y_t.abs().max())
    err_a = float((kept[target] - a_t.double()).abs().max() / a_t.abs().max())
    assert err_y < 1e-4 and err_a < 1e-4, (err_y, err_a)
    assert tuple(kept[target].shape[1:]) == tuple(a_t.shape[1:])
    ops = sorted({n.op_type for n in g.node})
    sidecar = {"input": [3, SIZE, SIZE], "mean": st["mean"], "std": st["std"], "labels": make_scenes.LABELS,
               "layer": target, "resize": SIZE, "crop": SIZE}
    with open(os.path.join(WEIGHTS, f"{name}.json"), "w") as f:
        json.dump(sidecar, f, indent=1)
        f.write("\n")
    size_kb = os.path.getsize(onnx_path) / 1024
    nparam = sum(p.numel() for p in net.parameters())
    hp = res["hp"]
    # the committed sample (data/scenes): PyTorch accuracy, a reference for camgpu runs on the same PNGs
    from PIL import Image
    sdir = os.path.join(ROOT, "data", "scenes")
    with open(os.path.join(sdir, "boxes.json")) as f:
        entries = json.load(f)
    imgs = np.stack([np.asarray(Image.open(os.path.join(sdir, e["file"])).convert("RGB")) for e in entries])
    with torch.no_grad():
        pred = net(norm(imgs)).argmax(1).numpy()
    hit = pred == np.array([e["class"] for e in entries])
    multi = np.array([e["multi"] for e in entries])
    samp = f"{int(hit[~multi].sum())}/{int((~multi).sum())} single, {int(hit[multi].sum())}/{int(multi.sum())} multi"
    hist = ", ".join(f"{100 * h['test_single_2000']:.1f}% after epoch {h['epoch']}" for h in res["history"])
    card = f"""# {name}: camgpu demo model (cluttered Fashion-MNIST scenes)

- Architecture: {ARCH[name]}
- Parameters: {nparam}. `weights/{name}.onnx`: {size_kb:.0f} KiB, opset 13, input `input` (N,3,{SIZE},{SIZE}), output `logits` (N,10), dynamic N, exported in eval mode with constant folding (BN folded into the convs, Dropout removed). ONNX ops: {", ".join(ops)}.
- Default CAM target (`layer` in `weights/{name}.json`): `{target}` (output of a {producer.op_type} node), shape {list(a_t.shape[1:])}.
- Input: RGB scene {SIZE}x{SIZE}, pixel / 255, then (x - mean) / std per channel, mean {st["mean"]}, std {st["std"]} (statistics of the training scenes). Labels: the 10 Fashion-MNIST classes (sidecar `labels`).
- Data: {SIZE}x{SIZE} scenes from `tools/make_scenes.py`: textured coloured background, one tinted / scaled / flipped garment placed anywhere, small fragments of other-class garments as clutter; multi-instance scenes hold 2-3 garments of one class. Training set: {res["variants"]} renderings of each of the 60000 Fashion-MNIST training images ({res["variants"] * 60000} scenes, 20% multi-instance) + random horizontal flips of the scene. Test scenes are made only from the 10000 Fashion-MNIST test images.
- Training command: `/usr/bin/python3 tools/make_scenes.py cache && /usr/bin/python3 tools/train.py train {name}`, then `/usr/bin/python3 tools/train.py export {name}`.
- Training: AdamW (peak lr {hp["lr"]}, weight decay {hp["wd"]}, one-cycle schedule), batch {res["batch"]}, cross-entropy with label smoothing 0.05, {hp["epochs"]} epochs over the {res["variants"] * 60000} scenes, seed {SEED}; 1 torch thread on the shared 2-core CPU machine: {res["train_minutes"]:.1f} min wall time. Test accuracy on the first 2000 single scenes: {hist}.
- Test accuracy (PyTorch, float32, full test split of `tools/make_scenes.py test DIR`): single-instance {100 * res["test_single"]:.2f}% on {res["n_single"]} scenes (single_00000..09999), multi-instance {100 * res["test_multi"]:.2f}% on {res["n_multi"]} scenes (multi_00000..{res["n_multi"] - 1:05d}).
- Committed sample `data/scenes/` (PyTorch top-1 on the PNGs): {samp}.
- Export check: onnx.checker passes; a float64 re-run of the exported graph (the interpreter in `tools/make_fixtures.py`) matches PyTorch on 8 test scenes: logits max rel. deviation {err_y:.1e}, target activation {err_a:.1e}.
- camgpu accuracy: (to be measured)
"""
    md_path = os.path.join(WEIGHTS, f"{name}.md")
    if os.path.exists(md_path):  # keep a camgpu accuracy line measured by someone else
        with open(md_path) as f:
            kept = [ln for ln in f.read().splitlines() if ln.startswith("- camgpu accuracy")
                    and "(to be measured)" not in ln]
        if kept:
            card = card.replace("- camgpu accuracy: (to be measured)", kept[0])
    with open(md_path, "w") as f:
        f.write(card)
    print(card)
    print(json.dumps(sidecar))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("bench")
    p.add_argument("models", nargs="*")
    p.add_argument("--size", type=int, default=SIZE)
    p.set_defaults(fn=cmd_bench)
    p = sub.add_parser("train")
    p.add_argument("model", choices=list(MODELS))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--wd", type=float, default=None)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--variants", type=int, default=2)
    p.add_argument("--log-every", type=int, default=200)
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("export")
    p.add_argument("model", choices=list(MODELS))
    p.set_defaults(fn=cmd_export)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on the shared, oversubscribed 2-core machine 1 thread "
                         "trained ~4x faster than 2)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.fn(args)


if __name__ == "__main__":
    main()
