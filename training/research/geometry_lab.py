"""Geometry lab: does the local displacement left after the homography see moved and rescaled marks?

The structure channel compares the listing warped into a genuine template's frame with the template;
a logo moved or scaled by a few percent leaves only thin edge residuals there, and the geometry family
is the weakest (issue 13). Here: a dense optical flow (OpenCV DIS) from the template to the warped
listing, minus its smooth part (the registration's own error, a Gaussian of ``--sigma`` px over the
item), on textured item pixels only (flow is unreliable on flat ones), averaged per cell; the raw
score is the largest cell. No label is used to build anything: the score is standardised per product
by the median and spread of the product's own test listings (label-free), and reported alone and as
the maximum with the engine's fused score, per family.

    python training/research/geometry_lab.py KIT [--procs 1] [--sigma 20] [--preset medium]
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inspection_eval import FAMILIES, auc, load  # noqa: E402

from authvision.inspection import build_product_inspection, inspect  # noqa: E402
from authvision.inspection.compare import measure  # noqa: E402
from authvision.inspection.registration import gray  # noqa: E402

PRESETS = {"fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def residual_flow(template: np.ndarray, warped: np.ndarray, mask: np.ndarray, sigma: float, preset: str) -> np.ndarray:
    """|flow - its smooth part| (px) per template pixel, NaN off the textured item."""
    flow = cv2.DISOpticalFlow_create(PRESETS[preset]).calc(gray(template), gray(warped), None)  # type: ignore[attr-defined]
    m = mask.astype(np.float32)
    den = cv2.GaussianBlur(m, (0, 0), sigma) + 1e-3
    smooth = np.stack([cv2.GaussianBlur(flow[..., i] * m, (0, 0), sigma) / den for i in range(2)], -1)
    r = np.hypot(*(flow - smooth).transpose(2, 0, 1))
    g = gray(template).astype(np.float32)
    grad = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    textured = mask & (cv2.GaussianBlur(grad, (0, 0), 2.0) > 20.0)
    return np.where(textured, r, np.nan)


def cell_max(r: np.ndarray, cell: int, min_cover: float = 0.2) -> float:
    nh, nw = r.shape[0] // cell, r.shape[1] // cell
    blocks = r[: nh * cell, : nw * cell].reshape(nh, cell, nw, cell).transpose(0, 2, 1, 3).reshape(nh, nw, -1)
    ok = np.isfinite(blocks)
    cover = ok.mean(axis=2)
    with np.errstate(invalid="ignore"):
        means = np.where(cover >= min_cover, np.nansum(np.where(ok, blocks, 0), axis=2) / np.maximum(ok.sum(axis=2), 1), np.nan)
    return float(np.nanmax(means)) if np.isfinite(means).any() else float("nan")


def run_product(job):
    kit, product, listing_paths, ref_paths, sigma, preset = job
    cv2.setNumThreads(1)
    data = build_product_inspection([load(kit, p) for p in ref_paths], product=product, seed=0, templates=3)
    p = data.params
    out, spent = {}, 0.0
    for path in listing_paths:
        a = load(kit, path)
        r = inspect(a, data, heatmap=False)
        if not r.registered:
            out[path] = (float("inf"), float("nan"))
            continue
        t = data.templates[r.template]
        start = time.process_time()
        meas = measure(a, r.homography, t.view, p.cell, p.match_resolution)
        geo = cell_max(residual_flow(t.view.image, meas.warped, meas.mask, sigma, preset), p.cell)
        spent += time.process_time() - start
        out[path] = (r.score, geo)
    return product, out, spent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kit")
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--sigma", type=float, default=20.0)
    ap.add_argument("--preset", default="medium", choices=sorted(PRESETS))
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with open(os.path.join(a.kit, "listings.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test" and r["label"] in ("genuine", "fake")]
    with open(os.path.join(a.kit, "references.csv"), newline="") as f:
        refs = [r for r in csv.DictReader(f) if r["label"] == "genuine"]
    products = sorted({r["product"] for r in rows})
    jobs = [(a.kit, p, [r["path"] for r in rows if r["product"] == p], sorted(r["path"] for r in refs if r["product"] == p), a.sigma, a.preset)
            for p in products]  # fmt: skip
    t0 = time.time()
    if a.procs > 1:
        with Pool(a.procs) as pool:
            res = pool.map(run_product, jobs, chunksize=1)
    else:
        res = [run_product(j) for j in jobs]
    scores = {path: v for _, out, _ in res for path, v in out.items()}
    spent = sum(r[2] for r in res)
    fused = np.array([scores[r["path"]][0] for r in rows])
    geo_raw = np.array([scores[r["path"]][1] for r in rows])
    prod = np.array([r["product"] for r in rows])
    geo = np.full_like(geo_raw, np.nan)
    for p in products:  # label-free standardisation within each product: (x - median) / (q90 - median)
        sel = (prod == p) & np.isfinite(geo_raw)
        q50, q90 = np.percentile(geo_raw[sel], [50, 90])
        geo[sel] = (geo_raw[sel] - q50) / max(q90 - q50, 1e-6)
    geo = np.where(np.isfinite(geo), geo, np.where(np.isinf(fused), np.inf, 0.0))
    fake = np.array([r["label"] == "fake" for r in rows])
    fam = np.array([r["family"] for r in rows])
    kinds = np.array([r.get("defects", r.get("defect", "")) for r in rows])
    print(f"{len(rows)} listings; sigma {a.sigma}, preset {a.preset}; wall {time.time() - t0:.0f} s; "
          f"geometry channel CPU {1000 * spent / len(rows):.1f} ms per listing")  # fmt: skip
    for name, s in (("fused", fused), ("geometry", geo), ("max(fused, geometry)", np.maximum(fused, geo)),
                    ("max(fused, geometry - 1)", np.maximum(fused, geo - 1))):  # fmt: skip
        parts = [f"all {auc(s[fake], s[~fake]):.3f}"] + [f"{f[:5]} {auc(s[fam == f], s[~fake]):.3f}" for f in FAMILIES]
        print(f"{name:>26}: " + " ".join(parts))
    for kind in sorted({k for k in kinds[fake & (fam == 'geometry')]}):
        sel = fake & (kinds == kind)
        print(f"    geometry defect {kind}: n={sel.sum()} fused {auc(fused[sel], fused[~fake]):.3f} "
              f"geometry {auc(geo[sel], geo[~fake]):.3f} max {auc(np.maximum(fused, geo)[sel], np.maximum(fused, geo)[~fake]):.3f}")


if __name__ == "__main__":
    main()
