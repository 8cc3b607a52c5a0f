"""Which evidence features the checker's calibration should fit on, judged on many calibration draws.

``inspection_fusion.py`` compares feature choices on the demo's one calibration split (157 listings,
68 fakes): its out-of-fold and test figures disagreed by more than their noise. This study computes
every feature (and the inspection channels) of all of a demo's known listings once, then draws the
calibration split again and again (the demo's share, stratified by label), fits the checker's own
logistic calibration on each draw and scores the rest. Reported per choice: mean test fake ROC-AUC
and ECE over the draws, and how often the choice beats the checker's current features on the same
draw. Run it on demos of two kits (``authvision demo --seed 0`` and ``--seed 1``) before adopting.

    python training/research/fusion_study.py DEMO_OUT [--cache F.json] [--draws 200]
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

import authvision as av
from authvision.calibration import PRIOR_L2, PRIOR_WEIGHT, _fit_directed, _sigmoid, _standardise, expected_calibration_error, fit_logistic


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    pos, neg = score[positive][:, None], score[~positive][None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def compute(demo: Path, cache: Path) -> dict:
    if cache.is_file():
        return json.loads(cache.read_text())
    checker = av.AuthenticityChecker.load(demo / "checker")
    kit = demo / "kit"
    rows = [r for r in csv.DictReader(open(kit / "listings.csv")) if r["label"] != "unknown"]
    out = []
    for i in range(0, len(rows), 16):
        chunk = rows[i : i + 16]
        paths = [kit / r["path"] for r in chunk]
        listings = checker.listings([checker.embedder.decode(p).image for p in paths], paths)
        for r, a in zip(chunk, checker.assess_listings(listings)):
            channels = dict(a.provider_evidence.get("inspection", {}).get("channels") or {})
            out.append({"row": r, "features": list(a.features), "channels": channels})
    data = {"names": list(checker.feature_names), "rows": out}
    cache.write_text(json.dumps(data))
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("demo", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("fusion-study.json"))
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--share", type=float, default=0.4, help="calibration share (the demo's)")
    parser.add_argument("--l2", type=float, nargs="*", default=[], help="compare these L2 penalties on the kept features instead")
    parser.add_argument("--extra", default="", help="NAME=FILE.json: a lab feature per listing path (rows without it are dropped; "
                        "a NAME starting log_ is held towards fake)")
    parser.add_argument("--lofo", action="store_true",
                        help="leave one family out: calibrate without a defect family's fakes, score that family's test fakes")
    parser.add_argument("--prior", action="store_true", help="--lofo over a grid of prior weights and penalties")
    parser.add_argument("--signs", action="store_true",
                        help="compare the checker's features fitted free and with each weight held to its evidence's direction")
    parser.add_argument("--more-channels", action="store_true",
                        help="compare the checker's features with inspection's other channels (spots, peaks, marks) added")
    parser.add_argument("--platt", action="store_true",
                        help="the checker's fit, then its logit's scale and bias refitted on out-of-fold logits of the "
                             "calibration split (5 folds): the ranking stays, the probabilities' confidence is refitted")
    parser.add_argument("--per-product", action="store_true",
                        help="compare the kept features with inspection's features shifted per product by the median of that "
                             "product's genuine calibration listings")
    args = parser.parse_args()
    data = compute(args.demo, args.cache)
    names, rows = data["names"], data["rows"]
    extra: dict[str, float] = {}
    if args.extra:
        extra_name, extra_file = args.extra.split("=", 1)
        extra = json.loads(Path(extra_file).read_text())
        rows = [r for r in rows if r["row"]["path"] in extra]
    x = np.array([r["features"] for r in rows], dtype=np.float64)
    col = {n: x[:, i] for i, n in enumerate(names)}
    for channel in ("structure", "cells", "colour", "spots", "peaks", "marks"):
        values = np.array([r["channels"].get(channel) or 0.0 for r in rows], dtype=np.float64)
        col[f"log_{channel}"] = np.log1p(np.maximum(values, 0.0))
    if "genuine_similarity" in col:
        col["margin"] = col["genuine_similarity"] - col["fake_similarity"]
    if extra:
        col[extra_name] = np.log1p(np.maximum([extra[r["row"]["path"]] for r in rows], 0.0))
    label = np.array([r["row"]["label"] for r in rows])
    family = np.array([r["row"]["family"] for r in rows])
    seen = np.array([r["row"]["factory_seen"] for r in rows])
    genuine = label == "genuine"
    product = np.array([r["row"]["product"] for r in rows])

    current = list(names)
    inspection = ["inspection_log_score", "inspection_registered"]
    dup = ["duplicate_genuine", "duplicate_fake"]
    head = [n for n in names if n == "model_fake_logit"]
    choices: dict[str, list[str]] = {
        "current (every provider's features)": current,
        "margin for the two similarities": ["margin", "fake_share", *dup, *head, *inspection],
        "margin, no fake_share": ["margin", *dup, *head, *inspection],
        "no fake_share": [n for n in current if n != "fake_share"],
        "inspection + duplicates + head": [*inspection, *dup, *head],
        "inspection only": inspection,
        "margin + channels": ["margin", "fake_share", *dup, *head, "inspection_registered", "log_structure", "log_cells", "log_colour"],
        "current + channels": [*current, "log_structure", "log_cells", "log_colour"],
        "margin, no fake_share + channels": ["margin", *dup, *head, *inspection, "log_structure", "log_cells", "log_colour"],
        "inspection + dup + head + channels": [*inspection, *dup, *head, "log_structure", "log_cells", "log_colour"],
        "no fake_share + channels": [*[n for n in current if n != "fake_share"], "log_structure", "log_cells", "log_colour"],
    }
    if extra:  # fitted as the checker fits: weights held to their direction, pulled towards the prior
        choices = {"current, as calibrated": current, f"current + {extra_name}, as calibrated": [*current, extra_name]}
    l2 = 1.0
    if args.l2:
        kept = ["margin", *dup, *head, *inspection, "log_structure", "log_cells", "log_colour"]
        choices = {f"kept, L2 {v:g}": kept for v in args.l2}
    if args.more_channels:
        choices = {"current": current, **{f"current + log_{c}": [*current, f"log_{c}"] for c in ("spots", "peaks", "marks")},
                   "current + spots, peaks, marks": [*current, "log_spots", "log_peaks", "log_marks"]}
    if args.platt:
        choices = {"current, as calibrated": current, "current, as calibrated, Platt-refitted": current}
    if args.signs:
        choices = {"current": current, "current, weights held to their direction": current}
    shifted: set[str] = set()
    if args.per_product:
        shifted = {n for n in current if n.startswith("inspection_log_")}
        choices = {"current": current, "current, inspection shifted per product": current}
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(args.draws):
        calibration = np.zeros(len(rows), bool)
        for value in (True, False):
            members = np.flatnonzero(genuine == value)
            calibration[rng.choice(members, round(args.share * len(members)), replace=False)] = True
        draws.append(calibration)

    def per_product_shift(z: np.ndarray, columns: list[str], calibration: np.ndarray) -> np.ndarray:
        """Inspection's columns minus the median over the product's genuine calibration listings."""
        z = z.copy()
        for j, c in enumerate(columns):
            if c not in shifted:
                continue
            for p in np.unique(product):
                ref = calibration & genuine & (product == p)
                if ref.sum() >= 3:
                    z[product == p, j] -= np.median(z[ref, j])
        return z

    direction = {"neighbour_margin": 1, "genuine_similarity": 1, "fake_similarity": -1, "fake_share": -1, "duplicate_genuine": 1,
                 "duplicate_fake": -1, "model_fake_logit": -1, "inspection_text_mismatch": -1, "margin": 1}  # fmt: skip

    def signs_of(columns: list[str]) -> list[int]:
        return [direction.get(c, -1 if c.startswith(("inspection_log_", "log_")) else 0) for c in columns]

    def platt(x: np.ndarray, y: np.ndarray, signs: list[int], folds: int = 5) -> tuple[float, float]:
        """Scale and bias of the directed fit's logit, refitted on its out-of-fold logits."""
        order = np.random.default_rng(2).permutation(len(y))
        fold = np.empty(len(y), int)
        for value in (0.0, 1.0):
            members = order[y[order] == value]
            fold[members] = np.arange(len(members)) % folds
        logits = np.empty(len(y))
        for k in range(folds):
            test = fold == k
            m, s = _standardise(x[~test])
            w, b = _fit_directed((x[~test] - m) / s, y[~test], signs)
            logits[test] = ((x[test] - m) / s) @ w + b
        (a,), c = fit_logistic(logits[:, None], y, l2=1e-6)
        return float(max(a, 1e-3)), float(c)

    def evaluate(columns: list[str], l2: float = 1.0, shift: bool = False, signed: bool = False, prior: bool = False,
                 refit: bool = False) -> dict[str, np.ndarray]:  # fmt: skip
        z0 = np.stack([col[c] for c in columns], axis=1)
        out: dict[str, list[float]] = {"auc": [], "ece": [], "ece_floor": [], "never": [], "seen": [], "typography": [], "geometry": []}
        noise = np.random.default_rng(1)
        for calibration in draws:
            z = per_product_shift(z0, columns, calibration) if shift else z0
            m, s = _standardise(z[calibration])
            signs = signs_of(columns) if signed or prior else None
            if prior:
                w, b = _fit_directed((z[calibration] - m) / s, genuine[calibration].astype(float), signs)
            else:
                w, b = fit_logistic((z[calibration] - m) / s, genuine[calibration].astype(float), l2=l2, signs=signs)
            logit = ((z[~calibration] - m) / s) @ w + b
            if refit:
                a, c = platt(z[calibration], genuine[calibration].astype(float), signs_of(columns))
                logit = a * logit + c
            p = _sigmoid(logit)
            y = ~genuine[~calibration]
            out["auc"].append(auc(1 - p, y))
            out["ece"].append(expected_calibration_error(p, genuine[~calibration].astype(float)))
            # the ECE these probabilities would show on this many listings if they were exactly right
            out["ece_floor"].append(expected_calibration_error(p, (noise.random(p.size) < p).astype(float)))
            pick: dict[str, Callable[[np.ndarray], np.ndarray]] = {
                "never": lambda t: seen[t] == "false",
                "seen": lambda t: seen[t] == "true",
                "typography": lambda t: family[t] == "typography",
                "geometry": lambda t: family[t] == "geometry",
            }
            test = np.flatnonzero(~calibration)
            for key, chooser in pick.items():
                keep = chooser(test) | ~y
                out[key].append(auc(1 - p[keep], y[keep]))
        return {k: np.array(v) for k, v in out.items()}

    if args.lofo or args.prior:
        z0 = np.stack([col[c] for c in current], axis=1)
        signs = signs_of(current)
        settings = [(0.0, 1.0), (PRIOR_WEIGHT, PRIOR_L2)]
        if args.prior:
            settings = [(0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (0.5, 5.0), (1.0, 5.0), (1.0, 10.0), (1.5, 10.0), (2.0, 10.0), (1.0, 15.0),
                        (1.5, 15.0), (0.5, 20.0), (1.0, 20.0)]  # fmt: skip
        print(f"{len(rows)} known listings, {args.draws} draws; weights held to their direction, pulled towards prior x direction; "
              "each family's fakes left out of calibration in turn")  # fmt: skip
        families = sorted(set(family[~genuine]))
        for weight, penalty in settings:
            prior = [weight * v for v in signs]
            scores: dict[str, list[float]] = {"all": [], "ece": [], **{h: [] for h in families}}
            for calibration in draws:
                for held in [None, *families]:
                    fit_on = calibration & (family != held) if held else calibration
                    m, s = _standardise(z0[fit_on])
                    w, b = fit_logistic((z0[fit_on] - m) / s, genuine[fit_on].astype(float), l2=penalty, signs=signs, prior=prior)
                    test = ~calibration & (genuine | (family == held)) if held else ~calibration
                    logit = ((z0[test] - m) / s) @ w + b
                    scores[held or "all"].append(auc(-logit, ~genuine[test]))
                    if held is None:
                        scores["ece"].append(expected_calibration_error(_sigmoid(logit), genuine[test].astype(float)))
            held_out = "  ".join(f"{h} {np.mean(scores[h]):.3f}" for h in families)
            print(f"  prior {weight:g}, L2 {penalty:g}: all {np.mean(scores['all']):.3f}  ECE {np.mean(scores['ece']):.3f}  held out: {held_out}")
        return
    base = evaluate(current)
    print(f"{len(rows)} known listings, {args.draws} draws of a {args.share:.0%} calibration split")
    for name, columns in choices.items():
        penalty = float(name.rsplit(" ", 1)[1]) if name.startswith("kept, L2") else l2
        shift = "shifted per product" in name
        signed = "held to their direction" in name
        prior = "as calibrated" in name
        refit = "Platt" in name
        if prior and columns == current and not refit:
            base = evaluate(columns, prior=True)
        fresh = columns != current or penalty != 1.0 or shift or signed or refit
        r = evaluate(columns, penalty, shift, signed, prior, refit) if fresh else base
        wins = np.mean(r["auc"] > base["auc"]) if fresh else float("nan")
        print(
            f"{name:38s} test {r['auc'].mean():.3f} ± {r['auc'].std():.3f}  ECE {r['ece'].mean():.3f} (if exact {r['ece_floor'].mean():.3f})  "
            f"seen {r['seen'].mean():.3f}  never {r['never'].mean():.3f}  typo {r['typography'].mean():.3f}  "
            f"geom {r['geometry'].mean():.3f}  beats current {wins:.2f}"
        )


if __name__ == "__main__":
    main()
