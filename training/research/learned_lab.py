"""A learned comparison of registered listings with their template, trained on generic synthetic defects.

The issue's "learned metric on aligned crops": a small fully convolutional network reads the template
and a registered photo in the template frame (their LCN maps, the structure difference inspection
already computes, their item-relative colour, the compared mask) and outputs a defect logit every
8 px. It is trained only on the *genuine null samples* that ``channel_lab.py prepare`` cached (the
product's studio references through simulated listing conditions, registered to each template), with
generic defects painted on them: CutPaste (a patch of the item moved elsewhere on it), a
structure-rich patch shifted, scaled or rotated in place, a patch erased by inpainting, a region of
one colour recoloured. Nothing comes from fake photos or the kit's defect generator.

Out of sample by product: the kit's products are split into two folds, each mixing kinds and brands;
the model trained on one fold's null samples scores the other's. Its per-cell output (max logit per
24 px cell) is then a channel like any other in ``channel_lab``: z-scored per cell against the
template's null (leaving out the samples of the same reference), max over cells, on the null's
scale, lowest over templates, reported with the lab's other channels.

    python training/research/learned_lab.py KIT --cache /tmp/lab0 [--steps 1200] [--dump learned.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import channel_lab as lab  # noqa: E402

from authvision.inspection.compare import TemplateView, cell_means, lcn, matched_norm, structure_diff  # noqa: E402
from authvision.inspection.registration import gray  # noqa: E402

STRIDE = 8
CROP = 160
MARGIN = 24


def _ab(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab_ = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2LAB).astype(np.float32)
    return lab_[..., 1], lab_[..., 2]


def _medians(img: np.ndarray, m: np.ndarray) -> tuple[float, float]:
    a, b = _ab(img)
    return (float(np.median(a[m])), float(np.median(b[m]))) if m.any() else (128.0, 128.0)


def template_planes(v: TemplateView, mag: float) -> np.ndarray:
    """The template's input planes at the listing's resolution: LCN, item-relative a*, b*."""
    a, b = _ab(v.image)
    ma, mb = _medians(v.image, v.mask)
    return np.stack([matched_norm(v, mag), (a - ma) / 20.0, (b - mb) / 20.0]).astype(np.float32)


def features(warped: np.ndarray, mask: np.ndarray, tp: np.ndarray, medians: tuple[float, float]) -> np.ndarray:
    """The network's input, CxHxW float32: template LCN, listing LCN, structure diff, item-relative a*/b*
    of listing and template (``tp``: :func:`template_planes`; ``medians``: the listing's item a*/b*
    medians), the compared mask. Works on any window of the frame (the LCN's support is ~12 px)."""
    a, b = _ab(warped)
    tn = tp[0]
    planes = [tn, lcn(gray(warped)), structure_diff(warped, tn), (a - medians[0]) / 20.0, (b - medians[1]) / 20.0, tp[1], tp[2]]
    planes.append(mask.astype(np.float32))
    return np.stack(planes).astype(np.float32)


def frame_features(s: dict, v: TemplateView) -> np.ndarray:
    return features(s["warped"], s["mask"], template_planes(v, s["mag"]), _medians(s["warped"], s["mask"]))


# ---- generic synthetic defects on a registered genuine photo (template frame) ----------------------


def _box_in(mask: np.ndarray, rng: np.random.Generator, w: int, h: int, weight: np.ndarray | None = None) -> tuple[int, int] | None:
    """Top-left of a w x h box whose centre lies on the mask (drawn by ``weight`` when given)."""
    H, W = mask.shape
    ys, xs = np.nonzero(mask[h // 2 : H - h + h // 2, w // 2 : W - w + w // 2])
    if len(ys) == 0:
        return None
    if weight is not None:
        p = weight[h // 2 : H - h + h // 2, w // 2 : W - w + w // 2][ys, xs].astype(np.float64) + 1e-6
        i = rng.choice(len(ys), p=p / p.sum())
    else:
        i = rng.integers(len(ys))
    return int(xs[i]), int(ys[i])


def _edge_weight(img: np.ndarray) -> np.ndarray:
    g = gray(img).astype(np.float32)
    mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    return cv2.GaussianBlur(mag, (0, 0), 6) ** 2


def _soft(h: int, w: int) -> np.ndarray:
    a = np.zeros((h, w), np.float32)
    a[2:-2, 2:-2] = 1
    return cv2.GaussianBlur(a, (0, 0), 1.0)[..., None]


def synth_defect(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(defective copy, defect mask) of a registered photo; the mask is empty when no defect fitted."""
    out = img.copy()
    lab_mask = np.zeros(mask.shape, bool)
    kind = rng.choice(["cutpaste", "shift", "scale", "rotate", "erase", "recolour"])
    w, h = (int(v) for v in rng.integers(16, 72, 2))
    weight = _edge_weight(img) if kind in ("shift", "scale", "rotate", "erase") else None
    at = _box_in(mask, rng, w + 24, h + 24, weight)
    if at is None:
        return out, lab_mask
    x, y = at[0] + 12, at[1] + 12
    patch = img[y : y + h, x : x + w].astype(np.float32)
    if kind == "cutpaste":
        src = _box_in(mask, rng, w, h)
        if src is None:
            return out, lab_mask
        new = img[src[1] : src[1] + h, src[0] : src[0] + w].astype(np.float32)
        if rng.random() < 0.5:
            new = new[:, ::-1]
        k = _soft(h, w)
        out[y : y + h, x : x + w] = (new * k + patch * (1 - k)).astype(np.uint8)
        lab_mask[y : y + h, x : x + w] = True
    elif kind in ("shift", "scale", "rotate"):
        big = img[y - 12 : y + h + 12, x - 12 : x + w + 12]
        cx, cy = (w + 24) / 2, (h + 24) / 2
        if kind == "shift":
            dx, dy = (float(v) for v in rng.uniform(3, 9, 2) * rng.choice([-1, 1], 2))
            M = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
        elif kind == "scale":
            s = float(rng.choice([rng.uniform(0.72, 0.9), rng.uniform(1.12, 1.35)]))
            M = cv2.getRotationMatrix2D((cx, cy), 0.0, s)
        else:
            M = cv2.getRotationMatrix2D((cx, cy), float(rng.uniform(8, 25) * rng.choice([-1, 1])), 1.0)
        moved = cv2.warpAffine(big, M, (big.shape[1], big.shape[0]), borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        k = _soft(h + 24, w + 24)
        out[y - 12 : y + h + 12, x - 12 : x + w + 12] = (moved * k + big.astype(np.float32) * (1 - k)).astype(np.uint8)
        lab_mask[y - 12 : y + h + 12, x - 12 : x + w + 12] = True
    elif kind == "erase":
        hole = np.zeros(mask.shape, np.uint8)
        hole[y : y + h, x : x + w] = 255
        out = cv2.inpaint(np.ascontiguousarray(img), hole, 5, cv2.INPAINT_TELEA)
        lab_mask[y : y + h, x : x + w] = True
    else:  # recolour a region of one colour
        labimg = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
        seed = (x + w // 2, y + h // 2)
        ff = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), np.uint8)
        cv2.floodFill(labimg.copy(), ff, seed, (0, 0, 0), (6, 4, 4), (6, 4, 4), cv2.FLOODFILL_MASK_ONLY | (255 << 8))
        region = (ff[1:-1, 1:-1] > 0) & mask
        if not 200 < region.sum() < 0.35 * mask.sum():
            return out, lab_mask
        lf = labimg.astype(np.float32)
        a, b = lf[..., 1] - 128, lf[..., 2] - 128
        ang = float(rng.uniform(0.7, np.pi) * rng.choice([-1, 1]))
        chroma = max(float(np.median(np.hypot(a, b)[region])), 1.0)
        boost = float(rng.uniform(8, 30)) / chroma if chroma < 8 else 1.0
        na = (a * np.cos(ang) - b * np.sin(ang)) * boost
        nb = (a * np.sin(ang) + b * np.cos(ang)) * boost
        if chroma < 8:  # a grey part: give it a colour
            na, nb = na + rng.uniform(-25, 25), nb + rng.uniform(-25, 25)
        lf[..., 1] = np.where(region, na + 128, lf[..., 1])
        lf[..., 2] = np.where(region, nb + 128, lf[..., 2])
        out = cv2.cvtColor(np.clip(lf, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
        lab_mask = region
    return out, lab_mask & mask


# ---- the network ---------------------------------------------------------------------------------


def make_net(cin: int):
    import torch.nn as nn

    def block(a: int, b: int, stride: int = 1, dil: int = 1) -> list:
        return [nn.Conv2d(a, b, 3, stride, padding=dil, dilation=dil, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(cin, 24), *block(24, 32, 2), *block(32, 48, 2), *block(48, 64, 2),
        *block(64, 64, 1, 2), *block(64, 64, 1, 4), nn.Conv2d(64, 1, 1),
    )


def _labels(defect: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 8 px block: target (defect share >= 0.3) and weight (compared, and not a partial defect block)."""
    h, w = defect.shape[0] // STRIDE, defect.shape[1] // STRIDE
    f = defect[: h * STRIDE, : w * STRIDE].reshape(h, STRIDE, w, STRIDE).mean((1, 3))
    m = mask[: h * STRIDE, : w * STRIDE].reshape(h, STRIDE, w, STRIDE).mean((1, 3))
    target = (f >= 0.3).astype(np.float32)
    weight = ((m >= 0.5) & ((f >= 0.3) | (f == 0))).astype(np.float32)
    return target, weight


def _redegrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A light blur and a JPEG round trip over a painted photo, so that a pasted patch's edges are
    degraded like the rest of the listing (and clean photos get the same treatment)."""
    if rng.random() < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 1.2)))
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 91))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy() if ok else img


def train(samples: list[tuple[dict, TemplateView]], steps: int, seed: int, redegrade: bool = False):
    """A network trained on ``samples`` (null sample, its template view) with synthetic defects."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = make_net(8)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    batch = 12
    cache: dict[int, tuple[np.ndarray, tuple[float, float]]] = {}
    net.train()
    t0 = time.time()
    for step in range(steps):
        xs, ts, ws = [], [], []
        for _ in range(batch):
            s, v = samples[rng.integers(len(samples))]
            img, defect = (s["warped"], np.zeros(s["mask"].shape, bool))
            if rng.random() < 0.6:
                img, defect = synth_defect(s["warped"], s["mask"], rng)
            key = id(s)
            if key not in cache:
                cache[key] = (template_planes(v, s["mag"]), _medians(s["warped"], s["mask"]))
            tp, med = cache[key]
            ys, xs_ = np.nonzero(s["mask"])
            if defect.any() and rng.random() < 0.8:
                ys, xs_ = np.nonzero(defect)
            i = rng.integers(len(ys))
            H, W = s["mask"].shape
            cy = int(np.clip(ys[i] - CROP // 2 + rng.integers(-40, 41), 0, H - CROP)) // STRIDE * STRIDE
            cx = int(np.clip(xs_[i] - CROP // 2 + rng.integers(-40, 41), 0, W - CROP)) // STRIDE * STRIDE
            t, w = _labels(defect[cy : cy + CROP, cx : cx + CROP], s["mask"][cy : cy + CROP, cx : cx + CROP])
            y0, x0 = max(cy - MARGIN, 0), max(cx - MARGIN, 0)
            y1, x1 = min(cy + CROP + MARGIN, H), min(cx + CROP + MARGIN, W)
            window = img[y0:y1, x0:x1]
            if redegrade and rng.random() < 0.7:
                window = _redegrade(window, rng)
            x = features(window, s["mask"][y0:y1, x0:x1], tp[:, y0:y1, x0:x1], med)
            xs.append(x[:, cy - y0 : cy - y0 + CROP, cx - x0 : cx - x0 + CROP])
            ts.append(t)
            ws.append(w)
        x = torch.from_numpy(np.stack(xs))
        t = torch.from_numpy(np.stack(ts))[:, None]
        w = torch.from_numpy(np.stack(ws))[:, None]
        logit = net(x)
        pos = (t * w).sum().clamp(min=1)
        neg = ((1 - t) * w).sum().clamp(min=1)
        loss_map = torch.nn.functional.binary_cross_entropy_with_logits(logit, t, reduction="none")
        loss = (loss_map * w * t).sum() / pos + (loss_map * w * (1 - t)).sum() / neg
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            print(f"  step {step} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    return net.eval()


_MODEL = None


_CELLS: dict[tuple[int, int], np.ndarray] = {}


def ch_learned(s: dict, v: TemplateView) -> np.ndarray:
    """Per 24 px cell: the largest defect logit of the current model (NaN where the cell is not compared);
    computed once per sample and model (``learnedmax`` reads the same map)."""
    key = (id(_MODEL), id(s))
    if key not in _CELLS:
        _CELLS[key] = _learned_cells(s, v)
    return _CELLS[key]


def _learned_cells(s: dict, v: TemplateView) -> np.ndarray:
    import torch

    x = torch.from_numpy(frame_features(s, v)[None])
    with torch.no_grad():
        logit = _MODEL(x)[0, 0].numpy()
    up = cv2.resize(logit, (s["mask"].shape[1], s["mask"].shape[0]), interpolation=cv2.INTER_NEAREST)
    k = lab.P.cell
    cov = cell_means(np.ones(s["mask"].shape, np.float32), s["mask"], k)
    nh, nw = up.shape[0] // k, up.shape[1] // k
    cmax = np.where(s["mask"], up, -np.inf)[: nh * k, : nw * k].reshape(nh, k, nw, k).max((1, 3))
    return np.where(np.isfinite(cov), cmax, np.nan).astype(np.float32)


def ch_learnedmax(s: dict, v: TemplateView) -> np.ndarray:
    """The largest logit over the compared item as one value (scored against the null without per-cell z)."""
    c = ch_learned(s, v)
    return np.array([[np.nanmax(c) if np.isfinite(c).any() else np.nan]], np.float32)


def folds(products: list[str]) -> list[list[str]]:
    """Two folds of products, each with half of every brand's (sorted) products, alternating kinds."""
    by_brand: dict[str, list[str]] = {}
    for p in products:
        by_brand.setdefault(p.split("-")[0], []).append(p)
    a, b = [], []
    for k, (_, ps) in enumerate(sorted(by_brand.items())):
        for i, p in enumerate(sorted(ps)):
            (a if (i // 2 + k) % 2 == 0 else b).append(p)
    return [a, b]


def main() -> None:
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("kit")
    ap.add_argument("--cache", required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splits", default="test")
    ap.add_argument("--dump", default="")
    ap.add_argument("--redegrade", action="store_true", help="blur and JPEG the painted photos again")
    a = ap.parse_args()
    global _MODEL
    rows, _ = lab.kit_rows(a.kit, tuple(a.splits.split(",")))
    products = sorted({r["product"] for r in rows})
    data = {}
    for p in products:
        with open(os.path.join(a.cache, p + ".pkl"), "rb") as f:
            data[p] = pickle.load(f)
    names = ("cells", "colour", "px", "learned", "learnedmax")
    per: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    fs = folds(products)
    print("folds:", fs, flush=True)
    for k, test in enumerate(fs):
        trainp = [p for p in products if p not in test]
        samples = [(s, t["view"]) for p in trainp for t in data[p]["templates"] for s in t["null"]]
        print(f"fold {k}: training on {len(samples)} null samples of {trainp}", flush=True)
        _MODEL = train(samples, a.steps, a.seed + k, a.redegrade)
        lab.CHANNELS["learned"] = ch_learned
        lab.CHANNELS["learnedmax"] = ch_learnedmax
        t0 = time.process_time()
        for p in test:
            for t in data[p]["templates"]:
                for n in names:
                    out, q50, q95 = lab.score_template(t, n)
                    for path, raw in out.items():
                        per[n].setdefault(path, []).append((raw - q50) / max(q95 - q50, 1e-6))
        print(f"fold {k} scored in {time.process_time() - t0:.0f} s CPU", flush=True)
    if a.dump:
        with open(a.dump, "w") as f:
            json.dump({path: min(values) for path, values in per["learned"].items()}, f)
    lab.report(rows, per, list(names), products)


if __name__ == "__main__":
    main()
