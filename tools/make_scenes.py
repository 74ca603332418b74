#!/usr/bin/python3
"""Cluttered Fashion-MNIST scenes with ground-truth boxes (deterministic, seeded).

Source: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, the real 60k train / 10k test
idx files). Train scenes are built only from the train images, test scenes only from the test images
(garment and clutter fragments alike).

A scene (S x S RGB, S = 64 by default; 64 rather than 96 so that the three demo CNNs train in < 25 min each
on the shared 2-core CPU machine; --size 96 works for every command):
  * background: two random colours blended by a smooth pattern (low-frequency value noise, stripes at a
    random angle / frequency, a checkerboard, or concentric rings), mixed with a second pattern at
    lower weight;
  * clutter: 3-6 small fragments (a 6-12 px patch, 30-85% covered, of a garment of a *different* class,
    scaled by 1.2-2.0 x S/96, randomly tinted and flipped), pasted before the garment(s), which occlude them;
  * single-instance scene: one labelled garment, cropped to its tight extent, scaled so its longer side is
    0.32-0.62 S, randomly flipped horizontally, tinted (a random colour shaded by the Fashion-MNIST
    intensity) and placed anywhere fully inside the scene;
  * multi-instance scene: 2-3 different garments of the same class, longer side 0.26-0.42 S, placed without
    overlap (>= 2 px apart).
Each garment's alpha is 1 where its (resized) intensity >= 0.1 and ramps below, so dark garments stay
opaque; its tint is drawn up to 12 times until its L1 distance to the mean background colour underneath is
>= 150 (else the most distant draw is kept).

Boxes: [x0, y0, x1, y1] in pixels of the S x S scene, x0/y0 inclusive, x1/y1 exclusive (the tight box of
the garment's pixels with alpha >= 0.5), one per labelled garment.

Every scene is drawn from its own generator np.random.default_rng([SEED, split, multi, variant, index]),
so any scene can be regenerated alone, in any order (resumable, parallel-safe).

Commands (Debian's /usr/bin/python3):
  # the committed sample: 200 single + 100 multi test scenes -> data/scenes/{*.png, boxes.json}; they are
  # scenes of the full test split below (same file names, same pixels)
  /usr/bin/python3 tools/make_scenes.py sample
  # the full test split (10000 single: test image i in scene i; + 2000 multi) as PNG + boxes.json (~90 s)
  /usr/bin/python3 tools/make_scenes.py test OUT_DIR [--single 10000] [--multi 2000]
  # uint8 numpy caches used by tools/train.py (train: variants x 60000 scenes, 20% multi-instance)
  /usr/bin/python3 tools/make_scenes.py cache [--variants 2] [--dir out/scenes-cache]
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SEED = 20240611
SPLITS = {"train": 0, "test": 1}
SIZE = 64
TRAIN_MULTI_FRACTION = 0.2


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST
# ----------------------------------------------------------------------------------------------
def _read_idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(stem):
    for ext in ("", ".gz"):
        p = os.path.join(FMNIST_DIR, stem + ext)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{stem} not found in {FMNIST_DIR} (apt install dataset-fashion-mnist)")


_CACHE = {}


def load_fmnist(split):
    """(images uint8 (N,28,28), labels int64 (N,), per-class index lists)"""
    if split not in _CACHE:
        stem = "train" if split == "train" else "t10k"
        x = _read_idx(_find(f"{stem}-images-idx3-ubyte"))
        y = _read_idx(_find(f"{stem}-labels-idx1-ubyte")).astype(np.int64)
        assert len(x) == len(y) and x.shape[1:] == (28, 28)
        by_class = [np.nonzero(y == c)[0] for c in range(10)]
        _CACHE[split] = (x, y, by_class)
    return _CACHE[split]


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------
def _resize(a, w, h):
    """float32 2-D array resized (bilinear) to (h, w)."""
    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))


def _pattern(rng, s):
    """smooth pattern in [0,1] of shape (s,s)."""
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    if kind == 0:  # value noise
        g = rng.integers(3, 9)
        t = _resize(rng.random((g, g)).astype(np.float32), s, s)
    elif kind == 1:  # stripes
        ang = rng.uniform(0, np.pi)
        f = rng.uniform(3, 10)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * f * (np.cos(ang) * xx + np.sin(ang) * yy) + rng.uniform(0, 6.3))
    elif kind == 2:  # checkerboard (soft)
        f = rng.uniform(3, 8)
        ang = rng.uniform(0, np.pi / 2)
        u = np.cos(ang) * xx + np.sin(ang) * yy
        v = -np.sin(ang) * xx + np.cos(ang) * yy
        t = 0.5 + 0.5 * np.tanh(4 * np.sin(2 * np.pi * f * u) * np.sin(2 * np.pi * f * v))
    else:  # rings
        cx, cy = rng.uniform(-0.2, 1.2, 2)
        f = rng.uniform(3, 9)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * f * np.hypot(xx - cx, yy - cy))
    return t.astype(np.float32)


def _background(rng, s):
    c1 = rng.uniform(0, 255, 3).astype(np.float32)
    c2 = rng.uniform(0, 255, 3).astype(np.float32)
    c2 = c1 + (c2 - c1) * rng.uniform(0.3, 0.8)  # moderate contrast
    t = 0.75 * _pattern(rng, s) + 0.25 * _pattern(rng, s)
    return c1[None, None, :] * (1 - t[..., None]) + c2[None, None, :] * t[..., None]


def _garment_layer(img28, scale_px, flip):
    """crop a Fashion-MNIST image to its extent, resize so the longer side is scale_px.
    returns (shade (h,w) in [0,1], alpha (h,w) in [0,1])."""
    a = img28.astype(np.float32) / 255.0
    ys, xs = np.nonzero(a >= 0.04)
    a = a[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    h, w = a.shape
    k = scale_px / max(h, w)
    nh, nw = max(2, int(round(h * k))), max(2, int(round(w * k)))
    a = np.clip(_resize(a, nw, nh), 0, 1)
    if flip:
        a = a[:, ::-1]
    alpha = np.clip((a - 0.02) / 0.08, 0, 1)
    shade = np.clip(a / max(float(a.max()), 1e-3), 0, 1)
    return shade, alpha


def _tint_for(rng, under):
    """random colour that differs from the mean colour `under` (the background below the garment)."""
    best, bestd = None, -1.0
    for _ in range(12):
        c = rng.uniform(0, 255, 3).astype(np.float32)
        d = float(np.abs(c - under).sum())
        if d > bestd:
            best, bestd = c, d
        if d >= 150:
            break
    return best


def _paste(canvas, shade, alpha, tint, x, y, lo=0.35):
    h, w = shade.shape
    col = tint[None, None, :] * (lo + (1 - lo) * shade[..., None])
    region = canvas[y: y + h, x: x + w]
    canvas[y: y + h, x: x + w] = region * (1 - alpha[..., None]) + col * alpha[..., None]


def _fragment(rng, imgs, labels, by_class, exclude_class, s):
    c = rng.choice([k for k in range(10) if k != exclude_class])
    src = imgs[by_class[c][rng.integers(len(by_class[c]))]].astype(np.float32) / 255.0
    for _ in range(20):
        p = int(rng.integers(6, 13))
        y0, x0 = rng.integers(0, 28 - p + 1, 2)
        patch = src[y0: y0 + p, x0: x0 + p]
        if 0.3 <= (patch >= 0.1).mean() <= 0.85:  # a piece with some garment edge, not a solid square
            break
    k = rng.uniform(1.2, 2.0) * s / 96
    n = max(2, int(round(p * k)))
    patch = np.clip(_resize(patch, n, n), 0, 1)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    if rng.random() < 0.5:
        patch = patch[::-1, :]
    alpha = np.clip((patch - 0.02) / 0.08, 0, 1)
    shade = np.clip(patch / max(float(patch.max()), 1e-3), 0, 1)
    return shade, alpha


def _box(alpha, x, y):
    ys, xs = np.nonzero(alpha >= 0.5)
    return [int(x + xs.min()), int(y + ys.min()), int(x + xs.max() + 1), int(y + ys.max() + 1)]


def _overlaps(b, boxes, gap=2):
    return any(not (b[2] + gap <= o[0] or o[2] + gap <= b[0] or b[3] + gap <= o[1] or o[3] + gap <= b[1])
               for o in boxes)


def render(split, index, multi, variant=0, size=SIZE, src=None):
    """Render scene `index` of (split, multi, variant). `src`: Fashion-MNIST index of the (first) labelled
    garment (default: index mod N). Returns (uint8 (S,S,3), class, boxes, source indices)."""
    imgs, labels, by_class = load_fmnist(split)
    rng = np.random.default_rng([SEED, SPLITS[split], int(multi), variant, index])
    if src is None:
        src = index % len(imgs)
    cls = int(labels[src])
    s = size
    canvas = _background(rng, s)
    for _ in range(int(rng.integers(3, 7))):
        shade, alpha = _fragment(rng, imgs, labels, by_class, cls, s)
        h, w = shade.shape
        x, y = rng.integers(0, s - w + 1), rng.integers(0, s - h + 1)
        _paste(canvas, shade, alpha, rng.uniform(0, 255, 3).astype(np.float32), x, y)
    if not multi:
        srcs = [int(src)]
        lo, hi = 0.32, 0.62
    else:
        k = int(rng.integers(2, 4))
        pool = by_class[cls]
        others = []
        while len(others) < k - 1:
            j = int(pool[rng.integers(len(pool))])
            if j != src and j not in others:
                others.append(j)
        srcs = [int(src)] + others
        lo, hi = 0.26, 0.42
    boxes = []
    for j in srcs:
        for attempt in range(50):
            shade, alpha = _garment_layer(imgs[j], rng.uniform(lo, hi) * s, rng.random() < 0.5)
            h, w = shade.shape
            x, y = int(rng.integers(0, s - w + 1)), int(rng.integers(0, s - h + 1))
            b = _box(alpha, x, y)
            if not _overlaps(b, boxes):
                break
            if attempt > 25:  # crowded: shrink
                lo, hi = lo * 0.95, hi * 0.95
        else:
            raise RuntimeError(f"could not place garment {j} in scene {split}/{index}")
        under = (canvas[y: y + h, x: x + w] * alpha[..., None]).sum((0, 1)) / max(alpha.sum(), 1e-3)
        _paste(canvas, shade, alpha, _tint_for(rng, under), x, y)
        boxes.append(b)
    img = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return img, cls, boxes, srcs


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------
def write_png_split(out_dir, split, singles, multis, size, prefix=""):
    """singles / multis: lists of (scene index, source index). Writes PNGs and boxes.json."""
    os.makedirs(out_dir, exist_ok=True)
    entries = []
    for multi, items in ((False, singles), (True, multis)):
        for idx, src in items:
            img, cls, boxes, srcs = render(split, idx, multi, size=size, src=src)
            name = f"{'multi' if multi else 'single'}_{idx:05d}.png"
            Image.fromarray(img).save(os.path.join(out_dir, name), optimize=True)
            entries.append({"file": name, "class": cls, "label": LABELS[cls], "boxes": boxes, "multi": multi,
                            "source": srcs})
    with open(os.path.join(out_dir, "boxes.json"), "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(e, separators=(",", ":")) for e in entries) + "\n]\n")
    return entries


def cmd_sample(args):
    out = args.out or os.path.join(ROOT, "data", "scenes")
    # the sample is scenes 0..n-1 of the full test split (same indices, same pixels)
    # (single scenes drawn from 0..9999, multi-instance scenes from 0..1999, the full split's ranges)
    perm = np.random.default_rng([SEED, 99]).permutation(10000)
    perm_m = np.random.default_rng([SEED, 98]).permutation(2000)
    singles = [(int(i), int(i)) for i in sorted(perm[: args.single])]
    multis = [(int(i), int(i)) for i in sorted(perm_m[: args.multi])]
    e = write_png_split(out, "test", singles, multis, args.size)
    print(f"wrote {len(e)} scenes to {out}")


def cmd_test(args):
    singles = [(i, i) for i in range(args.single)]
    multis = [(i, i) for i in range(args.multi)]
    t0 = time.time()
    e = write_png_split(args.out, "test", singles, multis, args.size)
    print(f"wrote {len(e)} scenes to {args.out} in {time.time() - t0:.0f} s")


def build_arrays(split, n, multi_mask, variant, size, log_every=10000):
    x = np.empty((n, size, size, 3), np.uint8)
    y = np.empty(n, np.int64)
    t0 = time.time()
    for i in range(n):
        x[i], y[i], _, _ = render(split, i, bool(multi_mask[i]), variant=variant, size=size)
        if log_every and (i + 1) % log_every == 0:
            print(f"  {split} v{variant}: {i + 1}/{n} ({time.time() - t0:.0f} s)", flush=True)
    return x, y


def cache_paths(d, name):
    return os.path.join(d, f"{name}_x.npy"), os.path.join(d, f"{name}_y.npy")


def ensure_cache(d, name, split, n, multi_mask, variant, size):
    """build (or reuse) a uint8 cache; written atomically so an interrupted run is simply redone."""
    px, py = cache_paths(d, name)
    if os.path.exists(px) and os.path.exists(py):
        return px, py
    os.makedirs(d, exist_ok=True)
    x, y = build_arrays(split, n, multi_mask, variant, size)
    np.save(px + ".tmp.npy", x)
    np.save(py + ".tmp.npy", y)
    os.replace(px + ".tmp.npy", px)
    os.replace(py + ".tmp.npy", py)
    return px, py


def train_multi_mask(variant, n=60000):
    return np.random.default_rng([SEED, 7, variant]).random(n) < TRAIN_MULTI_FRACTION


def cmd_cache(args):
    for v in range(args.variants):
        ensure_cache(args.dir, f"train{args.size}_v{v}", "train", 60000, train_multi_mask(v), v, args.size)
        print(f"train variant {v} ready", flush=True)
    ensure_cache(args.dir, f"test{args.size}_single", "test", 10000, np.zeros(10000, bool), 0, args.size)
    ensure_cache(args.dir, f"test{args.size}_multi", "test", 2000, np.ones(2000, bool), 0, args.size)
    print("test caches ready")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("sample")
    p.add_argument("--out", default=None)
    p.add_argument("--single", type=int, default=200)
    p.add_argument("--multi", type=int, default=100)
    p.add_argument("--size", type=int, default=SIZE)
    p.set_defaults(fn=cmd_sample)
    p = sub.add_parser("test")
    p.add_argument("out")
    p.add_argument("--single", type=int, default=10000)
    p.add_argument("--multi", type=int, default=2000)
    p.add_argument("--size", type=int, default=SIZE)
    p.set_defaults(fn=cmd_test)
    p = sub.add_parser("cache")
    p.add_argument("--dir", default=os.path.join(ROOT, "out", "scenes-cache"))
    p.add_argument("--variants", type=int, default=2)
    p.add_argument("--size", type=int, default=SIZE)
    p.set_defaults(fn=cmd_cache)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
