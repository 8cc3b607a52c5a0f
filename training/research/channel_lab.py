"""Comparison-channel lab for region inspection: registrations cached once, channels scored fast.

Registration is ~70 % of inspection's cost, and a comparison channel does not change it. This script
registers, once per product, the genuine null samples (the product's studio references through
simulated listing conditions, exactly as ``build_product_inspection`` draws them) and the kit's test
listings to each template, and caches the warped listings in the template frame. Channels are then
functions of (warped listing, valid mask, template view, magnification) returning a per-cell map;
each is standardised against the genuine null out of sample (per cell: mean and spread leaving out
the samples of the same reference; the channel = max cell z; then (raw - null median) / (null p95 -
null median)), and scored as fake ROC-AUC per family, seen / never-seized factory and product, the
listing's score being the lowest over templates. Nothing is fitted to listings.

    python training/research/channel_lab.py KIT --cache /tmp/lab prepare [--products a,b]
    python training/research/channel_lab.py KIT --cache /tmp/lab score cells,ncc3 [--products a,b]
    python training/research/channel_lab.py KIT --cache /tmp/lab --splits test,calibration prepare
    python training/research/channel_lab.py KIT --cache /tmp/lab --splits test,calibration score cells2x \
        --dump cells2x.json   # then: fusion_study.py DEMO --extra cells2x=cells2x.json
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import pickle
import time
import zlib
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from authvision.inspection import InspectionParams
from authvision.inspection.compare import (
    TemplateView,
    cell_means,
    hue_angle,
    lcn,
    magnification,
    matched_norm,
    measure,
    structure_diff,
)
from authvision.inspection.conditions import simulate_listing
from authvision.inspection.product import choose_templates, make_template_parts
from authvision.inspection.registration import gray, listing_keypoints, register

FAMILIES = ("colour", "typography", "geometry", "construction")
P = InspectionParams()


def load(kit: str, path: str) -> np.ndarray:
    return np.asarray(Image.open(os.path.join(kit, path)).convert("RGB"))


def auc(pos, neg) -> float:
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def references(kit: str, label: str) -> list[dict]:
    """The kit's reference rows of one label."""
    with open(os.path.join(kit, "references.csv"), newline="") as f:
        return [r for r in csv.DictReader(f) if r["label"] == label]


def kit_rows(kit: str, splits: tuple[str, ...] = ("test",)) -> tuple[list[dict], list[dict]]:
    """(listings of indexed products in ``splits``, genuine references)."""
    with open(os.path.join(kit, "listings.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] in splits and r["label"] in ("genuine", "fake")]
    return rows, references(kit, "genuine")


def _warp(img: np.ndarray, H: np.ndarray, view: TemplateView) -> dict:
    m = measure(img, H, view, P.cell, P.match_resolution)
    return {"warped": m.warped, "mask": m.mask, "mag": magnification(H, view.mask.shape)}


def prepare(kit: str, cache: str, product: str, listing_paths: list[str], ref_paths: list[str], seed: int = 0) -> None:
    """Registers null samples and test listings to each template; caches the warped images."""
    cv2.setNumThreads(1)
    photos = [load(kit, p) for p in ref_paths]
    rng = np.random.default_rng([seed, zlib.crc32(product.encode())])
    degraded = [[simulate_listing(g, rng) for _ in range(P.null_per_reference)] for g in photos]
    keyed = [[(d, listing_keypoints(d, P.registration)) for d in ds] for ds in degraded]
    listings = {p: load(kit, p) for p in listing_paths}
    lkeys = {p: listing_keypoints(a, P.registration) for p, a in listings.items()}
    out = {"product": product, "templates": []}
    for t in choose_templates(photos, 3, P.selection):
        view, kp, item, search, _ = make_template_parts(photos[t], P)
        null, lst = [], {}
        for j, ds in enumerate(keyed):
            if j == t:
                continue
            for d, lk in ds:
                reg = register(d, lk, kp, item, search, P.registration)
                if reg.ok and reg.homography is not None:
                    null.append({"group": j, **_warp(d, reg.homography, view)})
        for p, a in listings.items():
            reg = register(a, lkeys[p], kp, item, search, P.registration)
            if reg.ok and reg.homography is not None:
                lst[p] = _warp(a, reg.homography, view)
        out["templates"].append({"source": t, "view": view, "null": null, "listings": lst})
    with open(os.path.join(cache, product + ".pkl"), "wb") as f:
        pickle.dump(out, f, protocol=5)


# ---- channels: (sample dict, template view) -> per-cell map (NaN where not compared) ----------------

Channel = Callable[[dict, TemplateView], np.ndarray]


def ch_cells(s: dict, v: TemplateView) -> np.ndarray:
    """Today's "cells": |LCN diff|, min over +-1 px, blurred, mean per cell."""
    d = structure_diff(s["warped"], matched_norm(v, s["mag"]))
    return cell_means(d, s["mask"], P.cell)


def _ncc_cells(a: np.ndarray, b: np.ndarray, m: np.ndarray, cell: int, r: int) -> np.ndarray:
    """Per cell: 1 - max over shifts |dx|,|dy| <= r of the NCC of a's cell against b around it."""
    nh, nw = a.shape[0] // cell, a.shape[1] // cell
    out = np.full((nh, nw), np.nan, np.float32)
    cover = cell_means(m.astype(np.float32), np.ones_like(m, bool), cell)
    pb = np.pad(b, r, mode="edge")
    for y in range(nh):
        for x in range(nw):
            if not cover[y, x] > 0.6:
                continue
            ta = a[y * cell : (y + 1) * cell, x * cell : (x + 1) * cell]
            if ta.std() < 1e-3:
                continue
            sb = pb[y * cell : (y + 1) * cell + 2 * r, x * cell : (x + 1) * cell + 2 * r]
            res = cv2.matchTemplate(sb, ta, cv2.TM_CCOEFF_NORMED)
            out[y, x] = 1.0 - float(res.max())
    return out


def ch_ncc(r: int, sigma: float = 1.0) -> Channel:
    def f(s: dict, v: TemplateView) -> np.ndarray:
        a = cv2.GaussianBlur(lcn(gray(s["warped"])), (0, 0), sigma)
        b = cv2.GaussianBlur(matched_norm(v, s["mag"]), (0, 0), sigma)
        return _ncc_cells(a, b, s["mask"], P.cell, r)

    return f


BLURS = (0.0, 0.6, 1.0, 1.5, 2.2, 3.2)


def _blur_matched(s: dict, v: TemplateView) -> tuple[np.ndarray, np.ndarray]:
    """(listing LCN, template LCN) after blurring the sharper one to the other's level (least median diff)."""
    ln_raw = gray(s["warped"])
    h, w = v.mask.shape
    mag = s["mag"]
    timg = v.image
    if mag > 1.25:
        small = cv2.resize(timg, (max(8, round(w / mag)), max(8, round(h / mag))), interpolation=cv2.INTER_AREA)
        timg = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    tg = gray(timg).astype(np.float32)
    lg = ln_raw.astype(np.float32)
    m = s["mask"]
    best = None
    for sg in BLURS:
        for side in ("t", "l") if sg else ("t",):
            a = lcn(cv2.GaussianBlur(lg, (0, 0), sg) if side == "l" and sg else lg)
            b = lcn(cv2.GaussianBlur(tg, (0, 0), sg) if side == "t" and sg else tg)
            e = float(np.median(np.abs(a - b)[m])) if m.any() else 0.0
            if best is None or e < best[0]:
                best = (e, a, b)
    assert best is not None
    return best[1], best[2]


def ch_blurcells(s: dict, v: TemplateView) -> np.ndarray:
    a, b = _blur_matched(s, v)
    d = np.abs(a - b)
    pad = np.pad(a, 1, mode="edge")
    hh, ww = a.shape
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                np.minimum(d, np.abs(pad[1 + dy : 1 + dy + hh, 1 + dx : 1 + dx + ww] - b), out=d)
    return cell_means(cv2.GaussianBlur(d, (0, 0), 2.0), s["mask"], P.cell)


def ch_blurncc(r: int) -> Channel:
    def f(s: dict, v: TemplateView) -> np.ndarray:
        a, b = _blur_matched(s, v)
        return _ncc_cells(cv2.GaussianBlur(a, (0, 0), 1.0), cv2.GaussianBlur(b, (0, 0), 1.0), s["mask"], P.cell, r)

    return f


def ch_px(s: dict, v: TemplateView) -> np.ndarray:
    """Today's "structure" (pixel level; scored as the 99.7th percentile of pixel z)."""
    d = structure_diff(s["warped"], matched_norm(v, s["mag"]))
    return np.where(s["mask"], d, np.nan).astype(np.float32)


def ch_pxblur(s: dict, v: TemplateView) -> np.ndarray:
    """Pixel-level structure after blur matching."""
    a, b = _blur_matched(s, v)
    d = np.abs(a - b)
    return np.where(s["mask"], cv2.GaussianBlur(d, (0, 0), 2.0), np.nan).astype(np.float32)


def ch_pxblob(sigma: float) -> Channel:
    """Pixel-level structure blurred to a logo's scale (``sigma`` px): a scaled or moved mark changes its
    whole outline a little, where a letter changes a few pixels a lot."""

    def f(s: dict, v: TemplateView) -> np.ndarray:
        d = structure_diff(s["warped"], matched_norm(v, s["mag"]))
        m = s["mask"].astype(np.float32)
        blob = cv2.GaussianBlur(d * m, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(m, (0, 0), sigma), 1e-3)
        return np.where(s["mask"], blob, np.nan).astype(np.float32)

    return f


def ch_bigcells(factor: int) -> Channel:
    """Today's cells at ``factor`` times the cell side (a mark of a few cells)."""

    def f(s: dict, v: TemplateView) -> np.ndarray:
        d = structure_diff(s["warped"], matched_norm(v, s["mag"]))
        return cell_means(d, s["mask"], P.cell * factor)

    return f


def ch_colour(s: dict, v: TemplateView) -> np.ndarray:
    return np.array([[hue_angle(s["warped"], s["mask"], v)]], np.float32)


_NET = None


def _deep(image: np.ndarray) -> list[np.ndarray]:
    """ImageNet EfficientNet-Lite0 feature maps of an RGB frame: stride 8 (40 ch) and 16 (112 ch), L2-normalised per location."""
    global _NET
    import torch
    import torch.nn.functional as F

    from training.backbone import lite0_pretrained

    if _NET is None:
        _NET = lite0_pretrained().eval()
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    out = []
    with torch.no_grad():
        y = F.relu6(_NET._bn0(_NET._conv_stem(x)))
        for i, block in enumerate(_NET._blocks[:11]):
            y = block(y)
            if i in (4, 10):
                out.append(F.normalize(y, dim=1)[0].numpy())
    return out


def _matched_rgb(v: TemplateView, mag: float) -> np.ndarray:
    if mag <= 1.25:
        return v.image
    h, w = v.mask.shape
    small = cv2.resize(v.image, (max(8, round(w / mag)), max(8, round(h / mag))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


_TEMPLATE_FEATURES: dict[tuple[int, float], list[np.ndarray]] = {}


def ch_deep(layers: tuple[int, ...], shift: int) -> Channel:
    def f(s: dict, v: TemplateView) -> np.ndarray:
        key = (id(v), round(float(s["mag"]), 1) if s["mag"] > 1.25 else 1.0)
        if key not in _TEMPLATE_FEATURES:
            _TEMPLATE_FEATURES[key] = _deep(_matched_rgb(v, s["mag"]))
        tf = _TEMPLATE_FEATURES[key]
        lf = _deep(s["warped"])
        h, w = v.mask.shape
        total = np.zeros((h, w), np.float32)
        for k in layers:
            a, b = lf[k], tf[k]
            _, fh, fw = a.shape
            best = np.full((fh, fw), np.inf, np.float32)
            pad = np.pad(a, ((0, 0), (shift, shift), (shift, shift)), mode="edge")
            for dy in range(-shift, shift + 1):
                for dx in range(-shift, shift + 1):
                    sh = pad[:, shift + dy : shift + dy + fh, shift + dx : shift + dx + fw]
                    np.minimum(best, 1.0 - (sh * b).sum(0), out=best)
            total += cv2.resize(best, (w, h), interpolation=cv2.INTER_LINEAR)
        return cell_means(total / len(layers), s["mask"], P.cell)

    return f


def _ab(rgb: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB).astype(np.float32)
    return cv2.GaussianBlur(lab[..., 1] - 128, (0, 0), sigma), cv2.GaussianBlur(lab[..., 2] - 128, (0, 0), sigma)


def ch_abcells(s: dict, v: TemplateView, sigma: float = 2.0) -> np.ndarray:
    """Local colour: per cell, the mean |a*b* difference| after the item's global cast and saturation are
    taken out (the listing's chroma scaled to the template's median, the median a*b* difference
    subtracted), the planes blurred by ``sigma`` px (chroma subsampling, residual misalignment)."""
    m = s["mask"]
    if m.sum() < 50:
        return cell_means(np.zeros(m.shape, np.float32), m, P.cell)
    al, bl = _ab(s["warped"], sigma)
    at, bt = _ab(v.image, sigma)
    k = float(np.median(np.hypot(at, bt)[m])) / max(float(np.median(np.hypot(al, bl)[m])), 1e-3)
    k = min(max(k, 0.5), 2.0)
    da, db = al * k - at, bl * k - bt
    da -= np.median(da[m])
    db -= np.median(db[m])
    return cell_means(np.hypot(da, db), m, P.cell)


CHANNELS: dict[str, Channel] = {
    "abcells": ch_abcells,
    "cells": ch_cells,
    "ncc2": ch_ncc(2),
    "ncc4": ch_ncc(4),
    "blurcells": ch_blurcells,
    "blurncc3": ch_blurncc(3),
    "colour": ch_colour,
    "px": ch_px,
    "pxblob6": ch_pxblob(6.0),
    "pxblob12": ch_pxblob(12.0),
    "cells2x": ch_bigcells(2),
    "pxblur": ch_pxblur,
    "deep8": ch_deep((0,), 0),
    "deep16": ch_deep((1,), 0),
    "deep": ch_deep((0, 1), 0),
    "deep8s": ch_deep((0,), 1),
}


# ---- null and scoring -----------------------------------------------------------------------------


def _stats(c: np.ndarray, sel: np.ndarray, pixel: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = c[sel]
    fin = np.isfinite(x)
    n = fin.sum(0)
    x0 = np.where(fin, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = x0.sum(0) / n
        sd = np.sqrt(np.maximum((x0**2).sum(0) / n - mu**2, 0))
    ok = n >= (2 if pixel else 5)
    floor = 0.05 if pixel else (0.5 * float(np.nanmedian(sd[ok])) if ok.any() else 0.05)
    return np.where(ok, mu, 0), np.where(ok, np.maximum(sd, floor), 1), ok


def _zmax(c: np.ndarray, st, pixel: bool = False) -> float:
    mu, sd, ok = st
    z = np.where(ok & np.isfinite(c), (c - mu) / sd, np.nan)
    if not np.isfinite(z).any():
        return 0.0
    return float(np.nanpercentile(z, 99.7)) if pixel else float(np.nanmax(z))


def _bank_diff(a: np.ndarray, bank: list[tuple[np.ndarray, np.ndarray]], shift: int = 1) -> np.ndarray:
    """Per pixel: min over the bank's aligned genuine LCN maps (and +-shift px) of |a - b|."""
    best = np.full(a.shape, np.inf, np.float32)
    pad = np.pad(a, shift, mode="edge")
    h, w = a.shape
    for b, m in bank:
        for dy in range(-shift, shift + 1):
            for dx in range(-shift, shift + 1):
                sh = pad[shift + dy : shift + dy + h, shift + dx : shift + dx + w]
                d = np.abs(sh - b)
                d[~m] = np.inf
                np.minimum(best, d, out=best)
    best[~np.isfinite(best)] = 2.0
    return cv2.GaussianBlur(best, (0, 0), 2.0)


def bank_channel(t: dict, kind: str, include_template: bool) -> Callable[[dict, TemplateView, int], np.ndarray]:
    """Nearest-genuine channel: the listing against several aligned genuine photos (one null sample per
    reference, and the template itself), pixel-wise minimum difference; leave-one-reference-out."""
    v = t["view"]
    first: dict[int, dict] = {}
    for s in t["null"]:
        first.setdefault(s["group"], s)
    members = [(g, lcn(gray(s["warped"])), s["mask"]) for g, s in first.items()]

    def f(s: dict, v2: TemplateView, group: int) -> np.ndarray:
        bank = [(b, m) for g, b, m in members if g != group]
        if include_template:
            bank.append((matched_norm(v, s["mag"]), v.mask))
        d = _bank_diff(lcn(gray(s["warped"])), bank)
        if kind == "px":
            return np.where(s["mask"], d, np.nan).astype(np.float32)
        return cell_means(d, s["mask"], P.cell)

    return f


def score_template(t: dict, name: str) -> tuple[dict[str, float], float, float]:
    """Listing raw scores of one channel, and the null's out-of-sample median and p95."""
    v = t["view"]
    if name.startswith(("bank", "pxbank")):
        bf = bank_channel(t, "px" if name.startswith("px") else "cells", name.endswith("t"))
        px = name.startswith("px")
        nc = np.stack([bf(s, v, s["group"]) for s in t["null"]]).astype(np.float32 if px else np.float64)
        g = np.array([s["group"] for s in t["null"]])
        full = _stats(nc, np.ones(len(g), bool), px)
        loo = {k: _stats(nc, g != k, px) for k in np.unique(g)}
        raw_null = [_zmax(nc[i], loo[g[i]], px) for i in range(len(g))]
        q50, q95 = np.percentile(raw_null, 50), np.percentile(raw_null, 95)
        out = {p: _zmax(bf(s, v, -1), full, px) for p, s in t["listings"].items()}
        return out, float(q50), float(q95)
    f = CHANNELS[name]
    px = name.startswith("px")
    nc = np.stack([f(s, v) for s in t["null"]]).astype(np.float32 if px else np.float64)
    g = np.array([s["group"] for s in t["null"]])
    full = _stats(nc, np.ones(len(g), bool), px)
    loo = {k: _stats(nc, g != k, px) for k in np.unique(g)}
    raw_null = [_zmax(nc[i], loo[g[i]], px) for i in range(len(g))]
    q50, q95 = np.percentile(raw_null, 50), np.percentile(raw_null, 95)
    out = {p: _zmax(f(s, v), full, px) for p, s in t["listings"].items()}
    return out, float(q50), float(q95)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kit")
    ap.add_argument("--cache", default="/tmp/lab")
    ap.add_argument("--products", default="")
    ap.add_argument("verb", choices=("prepare", "score"))
    ap.add_argument("channels", nargs="?", default="cells")
    ap.add_argument("--splits", default="test", help="listing splits to register and score (e.g. test,calibration)")
    ap.add_argument("--dump", default="", help="score: write {listing path: score} of the first channel to this JSON "
                    "(the lowest over templates; fusion_study.py --extra NAME=FILE)")
    a = ap.parse_args()
    os.makedirs(a.cache, exist_ok=True)
    rows, refs = kit_rows(a.kit, tuple(a.splits.split(",")))
    products = sorted({r["product"] for r in rows})
    if a.products:
        products = [p for p in products if p in a.products.split(",")]
    rows = [r for r in rows if r["product"] in products]
    if a.verb == "prepare":
        for p in products:
            t0 = time.process_time()
            prepare(a.kit, a.cache, p, [r["path"] for r in rows if r["product"] == p], sorted(r["path"] for r in refs if r["product"] == p))
            print(f"{p}: {time.process_time() - t0:.0f} s", flush=True)
        return
    names = a.channels.split(",")
    per: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    t0 = time.process_time()
    for p in products:
        with open(os.path.join(a.cache, p + ".pkl"), "rb") as f:
            data = pickle.load(f)
        for t in data["templates"]:
            for n in names:
                out, q50, q95 = score_template(t, n)
                for path, raw in out.items():
                    per[n].setdefault(path, []).append((raw - q50) / max(q95 - q50, 1e-6))
    print(f"scored in {time.process_time() - t0:.0f} s CPU")
    if a.dump:
        with open(a.dump, "w") as f:
            json.dump({path: min(values) for path, values in per[names[0]].items()}, f)
    report(rows, per, names, products)


def report(rows: list[dict], per: dict[str, dict[str, list[float]]], names: list[str], products: list[str]) -> None:
    """Fake ROC-AUC of every channel and max-fusion of up to three (lowest over templates), per family,
    seen / never-seized factory and product. A listing no template registered counts as +inf."""
    fake = np.array([r["label"] == "fake" for r in rows])
    fam = np.array([r["family"] for r in rows])
    seen = np.array([r["factory_seen"] == "true" for r in rows])
    prod = np.array([r["product"] for r in rows])
    combos = ["+".join(c) for k in range(1, 4) for c in itertools.combinations(names, k)]
    for c in combos:
        parts = c.split("+")
        s = []
        for r in rows:
            vals = [per[n].get(r["path"]) for n in parts]
            if any(v is None for v in vals):
                s.append(np.inf)
                continue
            s.append(min(max(v[k] for v in vals) for k in range(len(vals[0]))))
        s = np.array(s)
        line = f"{c:>22}: all {auc(s[fake], s[~fake]):.3f} "
        line += " ".join(f"{f[:5]} {auc(s[fam == f], s[~fake]):.2f}" for f in FAMILIES)
        line += f" seen {auc(s[fake & seen], s[~fake]):.2f} unseen {auc(s[fake & ~seen], s[~fake]):.2f} |"
        line += " ".join(f" {q.split('-')[0][0]}-{q.split('-')[1][:5]} {auc(s[fake & (prod == q)], s[~fake & (prod == q)]):.2f}" for q in products)
        print(line, flush=True)


if __name__ == "__main__":
    main()
