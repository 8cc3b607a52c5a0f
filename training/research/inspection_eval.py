"""Measures region inspection (authvision.inspection) on a brand kit's test listings.

Builds each product's inspection data from its genuine studio references only, inspects the test
listings of indexed products and prints fake ROC-AUC overall, per defect family, seen vs
never-seized factories, per product, and CPU ms per inspected listing. No listing is used to fit
anything: every score is standardised against the genuine null. An unregistered listing scores
+inf (the checker treats it as "not inspected"; here it counts as suspicious) and is counted.

    python training/research/inspection_eval.py KIT [--procs 1] [--templates 3] [--params JSON] [--out scores.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import time
from multiprocessing import Pool

import cv2
import numpy as np
from PIL import Image

from authvision.inspection import InspectionParams, RegistrationParams, build_product_inspection, inspect

FAMILIES = ("colour", "typography", "geometry", "construction")


def auc(pos, neg) -> float:
    """ROC-AUC of positives vs negatives (ties count one half)."""
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def load(kit: str, path: str) -> np.ndarray:
    return np.asarray(Image.open(os.path.join(kit, path)).convert("RGB"))


def params_from(js: str) -> InspectionParams:
    raw = json.loads(js) if js else {}
    reg = RegistrationParams(**raw.pop("registration", {}))
    return InspectionParams(**raw, registration=reg)


def run_product(job):
    kit, product, listing_paths, ref_paths, k, pjson, seed = job
    cv2.setNumThreads(1)
    t0 = time.process_time()
    data = build_product_inspection([load(kit, p) for p in ref_paths], product=product, seed=seed, templates=k, params=params_from(pjson))
    build_s = time.process_time() - t0
    out, spent = {}, 0.0
    for p in listing_paths:
        a = load(kit, p)
        t0 = time.process_time()
        r = inspect(a, data, heatmap=False)
        spent += time.process_time() - t0
        out[p] = {"registered": r.registered, "reason": r.reason, "score": r.score, "scores": r.scores,
                  "templates": list(r.template_scores), "inliers": r.inliers, "mirrored": r.mirrored,
                  "templates_registered": r.templates_registered}  # fmt: skip
    return product, out, spent, build_s


def fuse(rec: dict, how: str) -> float:
    """Listing score from one record: "score" (lowest fused over templates), a channel name, or "chanmin"."""
    if not rec["registered"]:
        return float("inf")
    if how == "score":
        return rec["score"]
    if how == "chanmin":  # per channel minimum over templates, then the maximum over the fused channels
        ts = rec["templates"]
        return max(min(t[c] for t in ts) for c in ("structure", "cells", "colour"))
    if "+" in how:  # max over the named standardised channels per template, lowest over templates
        return min(max(t[c] for c in how.split("+")) for t in rec["templates"])
    return min(t[how] for t in rec["templates"])


def report(rows: list[dict], scores: dict, how: str) -> str:
    s = np.array([fuse(scores[r["path"]], how) for r in rows])
    fake = np.array([r["label"] == "fake" for r in rows])
    fam = np.array([r["family"] for r in rows])
    seen = np.array([r["factory_seen"] == "true" for r in rows])
    prod = np.array([r["product"] for r in rows])
    parts = [f"{how:>10}: all {auc(s[fake], s[~fake]):.3f}"]
    parts += [f"{f[:5]} {auc(s[fam == f], s[~fake]):.2f}" for f in FAMILIES]
    parts += [f"seen {auc(s[fake & seen], s[~fake]):.2f}", f"unseen {auc(s[fake & ~seen], s[~fake]):.2f}"]
    line = " ".join(parts)
    per = " ".join(f"{p.split('-')[0][0]}-{p.split('-')[1][:5]} {auc(s[fake & (prod == p)], s[~fake & (prod == p)]):.2f}" for p in sorted(set(prod)))
    return line + "\n            per product: " + per


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kit")
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--templates", type=int, default=3)
    ap.add_argument("--params", default="")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--products", default="", help="comma-separated subset")
    ap.add_argument("--out", default="")
    ap.add_argument("--fusions", default="structure+colour,spots+cells+colour,structure+spots+cells+colour")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with open(os.path.join(a.kit, "listings.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test" and r["label"] in ("genuine", "fake")]
    with open(os.path.join(a.kit, "references.csv"), newline="") as f:
        refs = [r for r in csv.DictReader(f) if r["label"] == "genuine"]
    products = sorted({r["product"] for r in rows})
    if a.products:
        products = [p for p in products if p in a.products.split(",")]
        rows = [r for r in rows if r["product"] in products]
    jobs = [(a.kit, p, [r["path"] for r in rows if r["product"] == p], sorted(r["path"] for r in refs if r["product"] == p),
             a.templates, a.params, a.seed) for p in products]  # fmt: skip
    t0 = time.time()
    if a.procs > 1:
        with Pool(a.procs) as pool:
            res = pool.map(run_product, jobs, chunksize=1)
    else:
        res = [run_product(j) for j in jobs]
    scores = {p: rec for _, out, _, _ in res for p, rec in out.items()}
    spent, build = sum(r[2] for r in res), sum(r[3] for r in res)
    unreg = [(r["label"], scores[r["path"]]["reason"]) for r in rows if not scores[r["path"]]["registered"]]
    print(f"{len(rows)} listings, {a.templates} templates, params {a.params or '{}'}; wall {time.time() - t0:.0f} s")
    print(f"CPU {1000 * spent / len(rows):.1f} ms/listing (inspect), build {build / len(products):.1f} s/product; load {os.getloadavg()[0]:.2f}")
    print(f"unregistered: {len(unreg)} ({sum(lab == 'genuine' for lab, _ in unreg)} genuine) {sorted({r for _, r in unreg})[:4]}")
    channels = [c for c in ("structure", "spots", "cells", "peaks", "marks", "colour") if any(c in rec["scores"] for rec in scores.values())]
    for how in ["score", "chanmin", *channels, *a.fusions.split(",")]:
        print(report(rows, scores, how))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(scores, f)


if __name__ == "__main__":
    main()
