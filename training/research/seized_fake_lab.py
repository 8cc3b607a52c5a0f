"""Lab: is a listing closer, where a seized fake differs from the genuine item, to that fake than to genuine?

Builds on ``channel_lab.py``'s cache (registrations of the null samples and test listings to each
template). Registers the product's seized-fake reference photos to each template too; a fake's
*signature* is the cells where it differs from the template beyond the genuine null (cell z > Z).
For a listing (or a null sample), per fake: over the signature cells, the mean of
(d(listing, template) - d(listing, fake)) / (d(listing, template) + d(listing, fake)), d = the cell's
mean |LCN difference|; the channel is the maximum over the fakes. It is standardised against the
same statistic on the genuine null samples (out of sample by reference), then fused by max with the
genuine-only channels of ``channel_lab.py``. No listing is used to fit anything.

    python training/research/seized_fake_lab.py KIT --cache /tmp/lab3 [--products a,b]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import channel_lab as lab  # noqa: E402

from authvision.inspection.compare import cell_means, lcn, matched_norm, structure_diff  # noqa: E402
from authvision.inspection.product import make_template_parts  # noqa: E402
from authvision.inspection.registration import gray, listing_keypoints, register  # noqa: E402

Z = 2.0


def fake_views(t: dict, photos: list[np.ndarray], fakes: list[np.ndarray]) -> list[dict]:
    """The seized fakes warped into the template's frame, with their LCN maps and per-cell z."""
    view, kp, item, search, _ = make_template_parts(photos[t["source"]], lab.P)
    nc = np.stack([lab.ch_cells(s, view) for s in t["null"]]).astype(np.float64)
    mu, sd, ok = lab._stats(nc, np.ones(len(nc), bool))
    out = []
    for f in fakes:
        reg = register(f, listing_keypoints(f, lab.P.registration), kp, item, search, lab.P.registration)
        if not reg.ok or reg.homography is None:
            continue
        s = lab._warp(f, reg.homography, view)
        z = np.where(ok & np.isfinite(c := lab.ch_cells(s, view)), (c - mu) / sd, np.nan)
        sig = np.nan_to_num(z) > Z
        if sig.sum() >= 1:
            out.append({"norm": lcn(gray(s["warped"])), "mask": s["mask"], "signature": sig})
    return out


def closeness(s: dict, view, fakes: list[dict]) -> float:
    """Max over fakes of the mean relative closeness to the fake over its signature cells."""
    if not fakes:
        return 0.0
    dt = cell_means(structure_diff(s["warped"], matched_norm(view, s["mag"])), s["mask"], lab.P.cell)
    best = -1.0
    for f in fakes:
        df = cell_means(structure_diff(s["warped"], f["norm"]), s["mask"] & f["mask"], lab.P.cell)
        sel = f["signature"] & np.isfinite(dt) & np.isfinite(df)
        if sel.sum() == 0:
            continue
        best = max(best, float(np.mean((dt[sel] - df[sel]) / (dt[sel] + df[sel] + 1e-6))))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kit")
    ap.add_argument("--cache", default="/tmp/lab3")
    ap.add_argument("--products", default="")
    ap.add_argument("--dump", default="", help="write each listing's seized-fake score (lowest over templates) to this JSON")
    a = ap.parse_args()
    rows, refs = lab.kit_rows(a.kit)
    fake_refs = lab.references(a.kit, "fake")
    products = sorted({r["product"] for r in rows})
    if a.products:
        products = [p for p in products if p in a.products.split(",")]
    rows = [r for r in rows if r["product"] in products]
    scores: dict[str, dict[str, list[float]]] = {n: {} for n in ("px", "cells", "colour", "seized")}
    for p in products:
        with open(os.path.join(a.cache, p + ".pkl"), "rb") as fh:
            data = pickle.load(fh)
        photos = [lab.load(a.kit, q) for q in sorted(r["path"] for r in refs if r["product"] == p)]
        fakes = [lab.load(a.kit, r["path"]) for r in fake_refs if r["product"] == p]
        registered = []
        for t in data["templates"]:
            v = t["view"]
            for n in ("px", "cells", "colour"):
                out, q50, q95 = lab.score_template(t, n)
                for path, raw in out.items():
                    scores[n].setdefault(path, []).append((raw - q50) / max(q95 - q50, 1e-6))
            fv = fake_views(t, photos, fakes)
            registered.append(len(fv))
            null = np.array([closeness(s, v, fv) for s in t["null"]])
            q50, q95 = np.percentile(null, 50), np.percentile(null, 95)
            for path, s in t["listings"].items():
                scores["seized"].setdefault(path, []).append((closeness(s, v, fv) - q50) / max(q95 - q50, 1e-6))
        print(p, "seized fakes registered per template:", registered, flush=True)
    if a.dump:
        with open(a.dump, "w") as fh:
            json.dump({path: min(v) for path, v in scores["seized"].items()}, fh)
    fake = np.array([r["label"] == "fake" for r in rows])
    fam = np.array([r["family"] for r in rows])
    seen = np.array([r["factory_seen"] == "true" for r in rows])
    for combo in ("px+cells+colour", "seized", "px+cells+colour+seized", "px+colour+seized"):
        parts = combo.split("+")
        s = []
        for r in rows:
            vals = [scores[n].get(r["path"]) for n in parts]
            s.append(np.inf if any(v is None for v in vals) else min(max(v[k] for v in vals) for k in range(len(vals[0]))))
        s = np.array(s)
        line = f"{combo:>24}: all {lab.auc(s[fake], s[~fake]):.3f} "
        line += " ".join(f"{f[:5]} {lab.auc(s[fam == f], s[~fake]):.2f}" for f in lab.FAMILIES)
        line += f" seen {lab.auc(s[fake & seen], s[~fake]):.2f} unseen {lab.auc(s[fake & ~seen], s[~fake]):.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
