"""How the checker's calibration should take region inspection's score (the decision: log(1 + max(0, s))).

Computes every evidence feature of a demo's calibration and test listings once with a saved checker
(``authvision demo`` writes one), then fits the checker's logistic calibration on the calibration
listings under several choices and prints the test listings' fake ROC-AUC per choice, with the
calibration's own out-of-fold ROC-AUC (the only figure a choice may be made on).

    python training/research/inspection_fusion.py DEMO_OUT [--cache features.json]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

import authvision as av
from authvision.calibration import _sigmoid, _standardise, fit_logistic


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    pos, neg = score[positive][:, None], score[~positive][None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def features(demo: Path, cache: Path) -> dict:
    if cache.is_file():
        return json.loads(cache.read_text())
    checker = av.AuthenticityChecker.load(demo / "checker")
    kit = demo / "kit"
    rows = [r for r in csv.DictReader(open(kit / "listings.csv")) if r["split"] in ("test", "calibration")]
    out = []
    for i in range(0, len(rows), 16):
        chunk = rows[i : i + 16]
        paths = [kit / r["path"] for r in chunk]
        listings = checker.listings([checker.embedder.decode(p).image for p in paths], paths)
        out += [{"row": r, "features": list(a.features)} for r, a in zip(chunk, checker.assess_listings(listings))]
    data = {"names": list(checker.feature_names), "rows": out}
    cache.write_text(json.dumps(data))
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("demo", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("inspection-features.json"))
    args = parser.parse_args()
    data = features(args.demo, args.cache)
    names, rows = data["names"], data["rows"]
    x = np.array([r["features"] for r in rows])
    label = np.array([r["row"]["label"] for r in rows])
    split = np.array([r["row"]["split"] for r in rows])
    family = np.array([r["row"]["family"] for r in rows])
    seen = np.array([r["row"]["factory_seen"] for r in rows])
    known = label != "unknown"
    score_col = next(i for i, n in enumerate(names) if n.startswith("inspection_") and "registered" not in n)
    registered_col = names.index("inspection_registered")
    raw = np.expm1(x[:, score_col]) if names[score_col] == "inspection_log_score" else x[:, score_col]

    def fit(cols: list[int], logged: bool, l2: float = 1.0) -> tuple[np.ndarray, float]:
        z = x[:, cols].copy()
        if score_col in cols:
            j = cols.index(score_col)
            z[:, j] = np.log1p(np.maximum(raw, 0)) if logged else raw
        cal = np.flatnonzero((split == "calibration") & known)
        folds = np.random.default_rng(0).permutation(len(cal)) % 5
        oof = np.zeros(len(cal))
        for k in range(5):
            tr, te = cal[folds != k], cal[folds == k]
            m, s = _standardise(z[tr])
            w, b = fit_logistic((z[tr] - m) / s, (label[tr] == "genuine").astype(float), l2=l2)
            oof[folds == k] = 1 - _sigmoid(((z[te] - m) / s) @ w + b)
        m, s = _standardise(z[cal])
        w, b = fit_logistic((z[cal] - m) / s, (label[cal] == "genuine").astype(float), l2=l2)
        return 1 - _sigmoid(((z - m) / s) @ w + b), auc(oof, label[cal] == "fake")

    test = (split == "test") & known
    every = list(range(len(names)))
    screen = [i for i in every if i not in (score_col, registered_col)]
    choices = {
        "inspection score alone, uncalibrated": (raw, float("nan")),
        "all features, raw score": fit(every, False),
        "all features, log(1 + max(0, s))": fit(every, True),
        "all features, log, l2 3": fit(every, True, 3.0),
        "all features, log, l2 10": fit(every, True, 10.0),
        "inspection features only, log": fit([score_col, registered_col], True),
        "screen features only": fit(screen, True),
    }
    for name, (fake_score, oof) in choices.items():
        y, s = label[test] == "fake", fake_score[test]
        per = [f"{f[:5]} {auc(s[(family[test] == f) | ~y], y[(family[test] == f) | ~y]):.2f}"
               for f in ("colour", "typography", "geometry", "construction")]  # fmt: skip
        per += [f"seen={v} {auc(s[(seen[test] == v) | ~y], y[(seen[test] == v) | ~y]):.2f}" for v in ("true", "false")]
        print(f"{name:40s} calibration OOF {oof:.3f}  test {auc(s, y):.3f}  " + " ".join(per))


if __name__ == "__main__":
    main()
