"""Evaluate a checker on labelled listing photos: metrics, breakdowns, plots and a written report.

Ground truth per listing is ``genuine``, ``fake`` or ``unknown`` (a photo of a product the checker
holds no references of), plus optional tags from the brand-kit simulator: defect types and family of
a fake, the listing conditions, the factory and whether its fakes were among the references, the
reference photo a re-used listing copies.

Fake detection is scored by ``1 - authenticity``. A listing the checker calls ``unknown`` (or cannot
read) has no authenticity; it scores a neutral 0.5 in the ranking metrics and counts in the
confusion matrix, and ``coverage`` says how many known-truth listings got a score at all.

Needs the ``[report]`` extra (scikit-learn for the curves, matplotlib for the plots).
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .calibration import expected_calibration_error
from .datasets import LabelledPhoto
from .errors import MissingExtraError
from .report import render_markdown, write_report
from .verdict import VERDICT_LABELS, Verdict

__all__ = [
    "EvaluationResult",
    "detection_metrics",
    "evaluate",
    "evaluate_verdicts",
    "fake_score",
    "precision_at_recall",
    "recall_at_precision",
    "reliability_bins",
    "render_markdown",
    "write_report",
]

LOG = logging.getLogger(__name__)

TRUTH_LABELS = ("genuine", "fake", "unknown")
NEUTRAL_SCORE = 0.5
MIN_GROUP = 5  # fewest listings of each class for a breakdown row to get a ROC-AUC
VISIBILITY_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("< 0.1 %", 0.0, 0.001),
    ("0.1-1 %", 0.001, 0.01),
    ("≥ 1 %", 0.01, math.inf),
)
"""Defect visibility buckets: the share of the item's pixels a fake's defects change in its photo
(the brand kit's ``defect_pixels`` column), as (name, low, high), low inclusive."""
VISIBLE = 0.01  # the headline figure: fakes whose defects change at least this share of the item


# -- metrics -----------------------------------------------------------------------------------------


def _curves():
    try:
        from sklearn import metrics
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingExtraError(
            "evaluation needs scikit-learn, which is not installed: it comes with authvision's [report] extra",
            extra="report", module="sklearn",
        ) from exc
    return metrics


def recall_at_precision(is_fake: np.ndarray, fake_score: np.ndarray, precision: float) -> float:
    """Largest recall of fakes among operating points whose precision is at least ``precision``."""
    p, r, _ = _curves().precision_recall_curve(is_fake, fake_score)
    ok = p >= precision
    return float(r[ok].max()) if ok.any() else 0.0


def precision_at_recall(is_fake: np.ndarray, fake_score: np.ndarray, recall: float) -> float:
    """Best precision among operating points that catch at least ``recall`` of the fakes."""
    p, r, _ = _curves().precision_recall_curve(is_fake, fake_score)
    ok = r >= recall
    return float(p[ok].max()) if ok.any() else 0.0


def detection_metrics(is_fake: Sequence[bool], fake_score: Sequence[float]) -> dict[str, float | None]:
    """ROC-AUC, PR-AUC (average precision) for the fake class, recall at 99% precision, precision at
    95% recall. None where a class is missing."""
    y = np.asarray(is_fake, dtype=bool)
    s = np.asarray(fake_score, dtype=np.float64)
    if y.all() or not y.any():
        return {"roc_auc": None, "pr_auc": None, "recall_at_99_precision": None, "precision_at_95_recall": None}
    metrics = _curves()
    return {
        "roc_auc": float(metrics.roc_auc_score(y, s)),
        "pr_auc": float(metrics.average_precision_score(y, s)),
        "recall_at_99_precision": recall_at_precision(y, s, 0.99),
        "precision_at_95_recall": precision_at_recall(y, s, 0.95),
    }


def reliability_bins(probability: np.ndarray, outcome: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per equal-width bin of predicted P(genuine): count, mean prediction, observed genuine share."""
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(outcome, dtype=np.float64)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    out = []
    for b in range(bins):
        members = which == b
        if members.any():
            out.append({
                "low": b / bins, "high": (b + 1) / bins, "count": int(members.sum()),
                "predicted": float(p[members].mean()), "observed": float(y[members].mean()),
            })
    return out


# -- evaluation --------------------------------------------------------------------------------------


@dataclass
class EvaluationResult:
    """Everything an evaluation measured; ``summary`` is what ``report.json`` holds."""

    summary: dict[str, Any]
    listings: list[LabelledPhoto]
    verdicts: list[Verdict]
    files: dict[str, Path] = field(default_factory=dict)

    def fake_scores(self) -> np.ndarray:
        """The fake score of every listing, in order (:func:`fake_score`)."""
        return np.array([fake_score(v) for v in self.verdicts], dtype=np.float64)


def evaluate(
    checker,
    listings: Sequence[LabelledPhoto],
    *,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
    brand_from_truth: bool = False,
) -> EvaluationResult:
    """Check every listing with ``checker``, time it, and compute the metrics.

    Args:
        listings: photos with ground truth (``label`` genuine/fake/unknown; tags in ``extra``).
        progress: called with the number of listings done after each batch (for progress bars).
        brand_from_truth: restrict each check to the listing's brand, as a marketplace that knows
            which brand a listing claims would.
    """
    verdicts: list[Verdict] = []
    start = time.perf_counter()
    for begin in range(0, len(listings), batch_size):
        chunk = listings[begin : begin + batch_size]
        if brand_from_truth:
            for item in chunk:
                verdicts.extend(checker.check_many([item.path], brand=item.brand))
        else:
            verdicts.extend(checker.check_many([item.path for item in chunk], batch_size=batch_size))
        if progress is not None:
            progress(len(chunk))
    seconds = time.perf_counter() - start
    summary = evaluate_verdicts(listings, verdicts)
    summary["throughput"] = {
        "listings": len(listings),
        "seconds": round(seconds, 3),
        "listings_per_s": round(len(listings) / seconds, 2) if seconds > 0 else None,
        "path": "AuthenticityChecker.check_many, batch %d, single process" % batch_size,
    }
    summary["checker"] = _describe_checker(checker)
    return EvaluationResult(summary=summary, listings=list(listings), verdicts=verdicts)


def _describe_checker(checker) -> dict[str, Any]:
    report = checker.calibration_report
    return {
        "model": checker.embedder.manifest.name,
        "model_sha256": checker.embedder.model_sha256,
        "precision": checker.embedder.precision,
        "references": len(checker.index),
        "index": checker.index.factory,
        "calibrated": checker.calibrated,
        "decision_threshold": checker.decision_threshold,
        "unknown_threshold": checker.calibration.unknown_threshold,
        "calibration": None if report is None else {
            k: v for k, v in report.to_dict().items() if k != "calibration"
        },
    }


def fake_score(verdict: Verdict) -> float:
    """What the metrics rank listings by: ``1 - authenticity``, or a neutral 0.5 without a score."""
    return NEUTRAL_SCORE if verdict.authenticity is None else 1.0 - verdict.authenticity


def _tags(item: LabelledPhoto, column: str) -> list[str]:
    raw = item.extra.get(column) or ""
    return [t.strip() for t in raw.split(";") if t.strip()]


def _condition_groups(item: LabelledPhoto) -> list[str]:
    """Listing-condition tags grouped: ``jpeg=55`` counts under ``jpeg``, ``background=wood`` as itself."""
    groups = []
    for tag in _tags(item, "conditions"):
        key, _, value = tag.partition("=")
        try:
            float(value)
            groups.append(key)
        except ValueError:
            groups.append(tag)
    return groups


def _defect_types(item: LabelledPhoto) -> list[str]:
    return [t.split(":")[0] for t in _tags(item, "defects")]


def defect_pixels(item: LabelledPhoto) -> float | None:
    """The share of the item's pixels a fake's defects change in its photo (``defect_pixels`` column
    of a brand kit's listings.csv), or None where not recorded."""
    raw = (item.extra.get("defect_pixels") or "").strip()
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _visibility_bucket(item: LabelledPhoto) -> list[str]:
    share = defect_pixels(item)
    if share is None:
        return []
    return [name for name, low, high in VISIBILITY_BUCKETS if low <= share < high]


def evaluate_verdicts(listings: Sequence[LabelledPhoto], verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """All metrics of an evaluation from listings and their verdicts (no checker needed)."""
    if len(listings) != len(verdicts):
        raise ValueError(f"{len(listings)} listings but {len(verdicts)} verdicts")
    truth = np.array([item.label for item in listings])
    bad = sorted(set(truth.tolist()) - set(TRUTH_LABELS))
    if bad:
        raise ValueError(f"ground-truth labels must be {TRUTH_LABELS}, got {bad}")
    predicted = np.array([v.label for v in verdicts])
    known = truth != "unknown"
    is_fake = truth == "fake"
    score = np.array([fake_score(v) for v in verdicts])
    has_score = np.array([v.authenticity is not None for v in verdicts])

    detection: dict[str, Any] = detection_metrics(is_fake[known], score[known])
    scored = known & has_score
    p_genuine = 1.0 - score[scored]
    outcome = (truth[scored] == "genuine").astype(np.float64)
    shares = np.array([np.nan if (v := defect_pixels(item)) is None else v for item in listings])
    visible = is_fake & (shares >= VISIBLE)  # NaN compares False: fakes without a record are left out
    with_visible = visible | (truth == "genuine")
    detection.update(
        visible_fakes=int(visible.sum()),
        measured_fakes=int((is_fake & ~np.isnan(shares)).sum()),
        roc_auc_visible=(
            detection_metrics(is_fake[with_visible], score[with_visible])["roc_auc"]
            if visible.sum() >= MIN_GROUP and (truth == "genuine").sum() >= MIN_GROUP
            else None
        ),
        coverage=float(scored.sum() / max(1, known.sum())),
        ece=expected_calibration_error(p_genuine, outcome) if scored.any() else None,
        brier=float(np.mean((p_genuine - outcome) ** 2)) if scored.any() else None,
        reliability=reliability_bins(p_genuine, outcome) if scored.any() else [],
        fake_recall_at_decision=_share(predicted[truth == "fake"] == "fake"),
        genuine_flagged_fake_at_decision=_share(predicted[truth == "genuine"] == "fake"),
    )

    confusion = {t: {p: int(((truth == t) & (predicted == p)).sum()) for p in VERDICT_LABELS} for t in TRUTH_LABELS}
    product_hit = np.array([
        item.product is not None and v.product == item.product for item, v in zip(listings, verdicts)
    ])
    reused = np.array([bool(item.extra.get("reused_from")) for item in listings])
    catalogue = {
        "product_top1": _share(product_hit[known]),
        "known_called_unknown": _share(predicted[known] == "unknown"),
        "unknown_rate_on_unindexed": _share(predicted[~known] == "unknown"),
        "reused_listings": int(reused.sum()),
        "reused_product_top1": _share(product_hit[reused & known]),
        "reused_duplicate_found": _share(np.array([v.duplicate_of is not None for v in verdicts])[reused]),
    }

    breakdown = {
        "defect": _by_group(listings, score, truth, predicted, lambda item: _defect_types(item), fakes_only=True),
        "family": _by_group(listings, score, truth, predicted, lambda item: [item.extra.get("family") or ""], fakes_only=True),
        "factory_seen": _by_group(
            listings, score, truth, predicted, lambda item: [f"seen={item.extra.get('factory_seen')}"], fakes_only=True
        ),
        "visibility": _by_visibility(listings, score, truth, predicted),
        "product": _by_group(listings, score, truth, predicted, lambda item: [item.product or "-"], fakes_only=False),
        "condition": _by_group(listings, score, truth, predicted, _condition_groups, fakes_only=False),
    }
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "authvision_version": __version__,
        "counts": {label: int((truth == label).sum()) for label in TRUTH_LABELS} | {
            "errors": int((predicted == "error").sum())
        },
        "detection": detection,
        "confusion": confusion,
        "catalogue": catalogue,
        "breakdown": breakdown,
        "breakdown_min_group": MIN_GROUP,
    }


def _by_visibility(
    listings: Sequence[LabelledPhoto], score: np.ndarray, truth: np.ndarray, predicted: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Fakes per defect-visibility bucket vs all genuine listings; once any fake is measured, every
    bucket has a row (an empty one says that no fake is that invisible, or that visible)."""
    names = [name for name, _, _ in VISIBILITY_BUCKETS]
    groups = _by_group(listings, score, truth, predicted, _visibility_bucket, fakes_only=True, order=names)
    if not groups:
        return {}
    empty = {"fake": 0, "genuine": None, "roc_auc": None, "fake_recall_at_decision": None}
    return {name: groups.get(name, dict(empty)) for name in names}


def _share(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def _by_group(
    listings: Sequence[LabelledPhoto],
    score: np.ndarray,
    truth: np.ndarray,
    predicted: np.ndarray,
    groups_of: Callable[[LabelledPhoto], Iterable[str]],
    *,
    fakes_only: bool,
    order: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics per group. ``fakes_only``: a group is fakes of that kind against every genuine listing
    (defect types, families); otherwise both classes within the group (products, conditions).
    Groups come sorted by name, or in ``order`` (groups without members left out)."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(listings):
        if truth[i] == "unknown" or (fakes_only and truth[i] != "fake"):
            continue
        for group in groups_of(item):
            if group:
                members[group].append(i)
    genuine = np.flatnonzero(truth == "genuine")
    out = {}
    names = sorted(members) if order is None else [g for g in order if g in members]
    for group in names:
        rows = members[group]
        rows_array = np.array(rows)
        if fakes_only:
            rows_array = np.concatenate([rows_array, genuine])
        y = truth[rows_array] == "fake"
        n_fake, n_genuine = int(y.sum()), int((~y).sum())
        entry: dict[str, Any] = {"fake": n_fake, "genuine": n_genuine if not fakes_only else None}
        enough = n_fake >= MIN_GROUP and n_genuine >= MIN_GROUP
        entry["roc_auc"] = float(_curves().roc_auc_score(y, score[rows_array])) if enough else None
        entry["fake_recall_at_decision"] = _share(predicted[rows_array][y] == "fake")
        if not fakes_only:
            entry["genuine_flagged_fake"] = _share(predicted[rows_array][~y] == "fake")
        out[group] = entry
    return out
