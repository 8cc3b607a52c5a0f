"""Seized-fake match lab: does a listing share the defects of a seized fake, where that fake has them?

Issue 13 asks for "a listing closer to a seized fake's region than to the genuine ones" as extra
evidence (NAGL: normal *and* abnormal references). This lab measures one form of it on top of
``channel_lab.py``'s cache (templates, genuine null samples and listings already registered and
warped into each template's frame):

1. ``prepare``: each seized-fake reference photo of the product is registered to each template like
   a listing and warped into its frame (added to the cache as ``fakes``).
2. ``score``: per template, the genuine null's per-cell mean and spread of the structure difference
   (today's "cells" channel); each seized fake's cell z-map; its *defect cells*, those with z above
   ``--tau`` (or its ``--top`` highest cells). A listing's match to that fake is its mean cell z over
   the fake's defect cells; the feature is the best match over the product's seized fakes, on the
   null's scale (null samples scored out of sample, leaving out their own reference), the lowest over
   templates as ``channel_lab.py`` scores. Only genuine photos and seized fakes (references a brand
   supplies) go in; nothing is fitted to listings.

    python training/research/channel_lab.py KIT --cache /tmp/lab --splits test,calibration prepare
    python training/research/fake_match_lab.py KIT --cache /tmp/lab prepare
    python training/research/fake_match_lab.py KIT --cache /tmp/lab score --tau 3 --dump match.json
    python training/research/fusion_study.py DEMO --extra log_fakematch=match.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from channel_lab import FAMILIES, P, _stats, _warp, auc, ch_cells, kit_rows, load, references  # noqa: E402

from authvision.inspection.product import make_template_parts  # noqa: E402
from authvision.inspection.registration import listing_keypoints, register  # noqa: E402


def prepare(kit: str, cache: str, product: str, genuine_paths: list[str], fake_paths: list[str]) -> None:
    cv2.setNumThreads(1)
    path = os.path.join(cache, product + ".pkl")
    with open(path, "rb") as f:
        data = pickle.load(f)
    photos = [load(kit, p) for p in genuine_paths]
    fakes = {p: load(kit, p) for p in fake_paths}
    keys = {p: listing_keypoints(a, P.registration) for p, a in fakes.items()}
    for t in data["templates"]:
        _, kp, item, search, _ = make_template_parts(photos[t["source"]], P)
        t["fakes"] = {}
        for p, a in fakes.items():
            reg = register(a, keys[p], kp, item, search, P.registration)
            if reg.ok and reg.homography is not None:
                t["fakes"][p] = _warp(a, reg.homography, t["view"])
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=5)


def _defects(z: np.ndarray, tau: float, top: int) -> np.ndarray:
    fin = np.isfinite(z)
    if top:
        order = np.argsort(np.where(fin, z, -np.inf), axis=None)[::-1][:top]
        cells = np.zeros(z.size, bool)
        cells[order] = True
        return cells.reshape(z.shape) & fin
    return fin & (z > tau)


def _match(z: np.ndarray, defect_sets: list[np.ndarray]) -> float:
    best = -np.inf
    for cells in defect_sets:
        sel = cells & np.isfinite(z)
        if sel.sum():
            best = max(best, float(z[sel].mean()))
    return best if np.isfinite(best) else 0.0


def score_template(t: dict, tau: float, top: int) -> tuple[dict[str, float], float, float]:
    v = t["view"]
    nc = np.stack([ch_cells(s, v) for s in t["null"]]).astype(np.float64)
    g = np.array([s["group"] for s in t["null"]])
    mu, sd, ok = _stats(nc, np.ones(len(g), bool))
    defect_sets = []
    for s in t.get("fakes", {}).values():
        zf = np.where(ok, (ch_cells(s, v) - mu) / sd, np.nan)
        cells = _defects(zf, tau, top)
        if cells.any():
            defect_sets.append(cells)
    raw_null = []
    for i in range(len(g)):
        lmu, lsd, lok = _stats(nc, g != g[i])
        raw_null.append(_match(np.where(lok, (nc[i] - lmu) / lsd, np.nan), defect_sets))
    q50, q95 = np.percentile(raw_null, 50), np.percentile(raw_null, 95)
    out = {p: _match(np.where(ok, (ch_cells(s, v) - mu) / sd, np.nan), defect_sets) for p, s in t["listings"].items()}
    return out, float(q50), float(q95)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kit")
    ap.add_argument("--cache", default="/tmp/lab")
    ap.add_argument("verb", choices=("prepare", "score"))
    ap.add_argument("--splits", default="test,calibration")
    ap.add_argument("--tau", type=float, default=3.0, help="a seized fake's defect cells: cell z above this")
    ap.add_argument("--top", type=int, default=0, help="instead: its this many highest cells")
    ap.add_argument("--dump", default="")
    a = ap.parse_args()
    rows, refs = kit_rows(a.kit, tuple(a.splits.split(",")))
    fakes = references(a.kit, "fake")
    products = sorted({r["product"] for r in rows})
    if a.verb == "prepare":
        for p in products:
            prepare(a.kit, a.cache, p, sorted(r["path"] for r in refs if r["product"] == p),
                    sorted(r["path"] for r in fakes if r["product"] == p))  # fmt: skip
            print(p, flush=True)
        return
    per: dict[str, list[float]] = {}
    for p in products:
        with open(os.path.join(a.cache, p + ".pkl"), "rb") as f:
            data = pickle.load(f)
        for t in data["templates"]:
            out, q50, q95 = score_template(t, a.tau, a.top)
            for path, raw in out.items():
                per.setdefault(path, []).append((raw - q50) / max(q95 - q50, 1e-6))
    rows = [r for r in rows if r["path"] in per]
    s = np.array([min(per[r["path"]]) for r in rows])
    fake = np.array([r["label"] == "fake" for r in rows])
    fam = np.array([r["family"] for r in rows])
    seen = np.array([r["factory_seen"] == "true" for r in rows])
    line = f"tau {a.tau:g} top {a.top}: all {auc(s[fake], s[~fake]):.3f} "
    line += " ".join(f"{f[:5]} {auc(s[fam == f], s[~fake]):.2f}" for f in FAMILIES)
    print(line + f" seen {auc(s[fake & seen], s[~fake]):.2f} unseen {auc(s[fake & ~seen], s[~fake]):.2f}", flush=True)
    if a.dump:
        with open(a.dump, "w") as f:
            json.dump({r["path"]: float(min(per[r["path"]])) for r in rows}, f)


if __name__ == "__main__":
    main()
