"""Score calibration: evidence features → probability that a pictured item is genuine.

A logistic model on standardised evidence features (Platt scaling generalised to several scores,
fitted by Newton's method with a small L2 penalty) turns the checker's evidence into a calibrated
probability; it is tiny, so it is fitted with numpy here rather than pulling scikit-learn into the
inference install. The "unknown" threshold on the best reference similarity is fitted from the same
held-out photos. Reported quality figures are *out-of-fold* (k-fold cross-fitting), so they estimate
how the calibration does on photos it was not fitted on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import CalibrationError

__all__ = [
    "Calibration",
    "CalibrationReport",
    "expected_calibration_error",
    "fit_calibration",
    "fit_logistic",
    "fit_unknown_threshold",
]

LOG = logging.getLogger(__name__)

MIN_PER_CLASS = 5
"""Fewest genuine and fewest fake photos :func:`fit_calibration` accepts."""

_L2 = 1.0  # penalty on standardised weights: keeps tiny calibration sets from separating perfectly
PRIOR_WEIGHT = 0.5
"""With directions known (``signs``), the standardised weight each directed feature is pulled towards: one
standard deviation of an anomaly channel moves the log-odds by 0.5 towards fake unless the calibration
listings say otherwise. Without it a channel that no calibration fake exercises (a kind of defect the
brand has not met yet) is fitted to 0 and its defects go unseen: leaving one defect family's fakes out
of calibration, that family scored 0.748 (colour) and 0.779 (typography) on the demo kit
(``training/research/fusion_study.py --prior``)."""
PRIOR_L2 = 20.0
"""The penalty pulling weights towards :data:`PRIOR_WEIGHT`. Chosen on two kits (100 calibration draws each):
every held-out family 0.811 / 0.798 or better (was 0.748 / 0.779), overall fake ROC-AUC 0.874 -> 0.868 and
0.854 -> 0.855, ECE unchanged (0.071 -> 0.072, 0.069 -> 0.068); a prior of 1 at 10 held out as well but
raised the ECE by 0.003-0.006, larger priors by 0.02-0.05."""
_FOLDS = 5


@dataclass(frozen=True)
class Calibration:
    """A fitted mapping from evidence features to P(genuine), and the unknown threshold.

    ``probability(x) = sigmoid(bias + Σ weights_i · (x_i - mean_i) / scale_i)``.
    """

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    unknown_threshold: float
    fitted: bool = True

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (len(self.weights) == len(self.mean) == len(self.scale) == n):
            raise ValueError("features, weights, mean and scale must have the same length")
        if min(self.scale, default=1.0) <= 0:
            raise ValueError("scale must be positive")

    def probability(self, features: np.ndarray) -> np.ndarray:
        """P(genuine) for rows of ``features`` (columns in :attr:`features` order)."""
        x = np.asarray(features, dtype=np.float64)
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return _sigmoid(z @ np.asarray(self.weights) + self.bias)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            features=tuple(data["features"]),
            weights=tuple(float(v) for v in data["weights"]),
            bias=float(data["bias"]),
            mean=tuple(float(v) for v in data["mean"]),
            scale=tuple(float(v) for v in data["scale"]),
            unknown_threshold=float(data["unknown_threshold"]),
            fitted=bool(data.get("fitted", True)),
        )


@dataclass(frozen=True)
class CalibrationReport:
    """How a calibration was fitted and how well it does on photos it was not fitted on.

    ``ece``, ``brier`` and ``roc_auc`` are out-of-fold estimates over the genuine/fake photos
    (``roc_auc`` of the fake class, scored by 1 - P(genuine)). ``known_recall`` is the share of
    genuine/fake photos above the unknown threshold, ``unknown_recall`` the share of ``unknown``
    photos below it (None when none were given).
    """

    calibration: Calibration
    genuine: int
    fake: int
    unknown: int
    skipped: int
    ece: float
    brier: float
    roc_auc: float
    known_recall: float
    unknown_recall: float | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["calibration"] = self.calibration.to_dict()
        return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free


def _newton(design: np.ndarray, y: np.ndarray, penalty: np.ndarray, centre: np.ndarray, iterations: int) -> np.ndarray:
    """Parameters of a logistic regression on ``design`` (its last column the bias), L2-penalised towards ``centre``."""
    theta = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = _sigmoid(design @ theta)
        gradient = design.T @ (p - y) + penalty * (theta - centre)
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty) + 1e-9 * np.eye(design.shape[1])
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    *,
    l2: float = _L2,
    iterations: int = 50,
    signs: Sequence[int] | None = None,
    prior: Sequence[float] | None = None,
) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2-penalised logistic regression (Newton's method; bias unpenalised).

    ``prior``: per feature, the weight the penalty pulls towards (default 0: plain ridge shrinkage).

    ``signs``: per feature, the direction it may push the outcome (+1: only up, -1: only down, 0: free).
    Evidence has a known direction (an anomaly score can only speak for a fake), and a few dozen
    calibration photos can still fit a weight the wrong way round, e.g. photos of a few seized
    factories that happen to read their wordmark better than the genuine ones. A weight that would
    take the wrong sign is held at 0 instead: an active set, each violating feature removed (the
    worst first) and refitted, a removed one re-admitted when the loss's slope at 0 points its
    allowed way, until neither happens (the constrained optimum of this convex loss).
    """
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    centre = np.zeros(d + 1)
    if prior is not None:
        if len(prior) != d:
            raise ValueError(f"{len(prior)} prior weights for {d} features")
        centre[:-1] = np.asarray(prior, dtype=np.float64)
    if signs is None or not any(signs):
        theta = _newton(design, y, penalty, centre, iterations)
        return theta[:-1], float(theta[-1])
    sign = np.asarray(signs, dtype=np.float64)
    if sign.shape != (d,):
        raise ValueError(f"{sign.size} signs for {d} features")
    active = np.ones(d + 1, bool)
    feasible = np.zeros(d + 1)
    feasible[-1] = _newton(design[:, -1:], y, penalty[-1:], centre[-1:], iterations)[0]  # the bias alone
    for _ in range(2 * d + 2):
        theta = np.zeros(d + 1)
        theta[active] = _newton(design[:, active], y, penalty[active], centre[active], iterations)
        wrong = np.flatnonzero(active[:-1] & (sign * theta[:-1] < 0))
        if wrong.size:
            active[wrong[np.argmin(sign[wrong] * theta[wrong])]] = False
            continue
        feasible = theta
        # a held feature re-enters when moving its weight its allowed way lowers the loss
        slope = design.T @ (_sigmoid(design @ theta) - y) + penalty * (theta - centre)
        wants = np.flatnonzero(~active[:-1] & (sign * slope[:-1] < -1e-9))
        if not wants.size:
            break
        active[wants[np.argmin(sign[wants] * slope[wants])]] = True
    return feasible[:-1], float(feasible[-1])  # the last iterate that kept every sign (an active set can cycle)


def expected_calibration_error(probabilities: np.ndarray, outcomes: np.ndarray, bins: int = 10) -> float:
    """ECE: mean |observed frequency - mean predicted probability| over equal-width bins, weighted by bin size."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(outcomes, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"probabilities and outcomes must be 1-d and equally long, got {p.shape} and {y.shape}")
    if p.size == 0:
        return float("nan")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.sum() * abs(y[members].mean() - p[members].mean())
    return float(total / p.size)


def _roc_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Mann-Whitney estimate of ROC-AUC (ties count a half)."""
    pos, neg = scores[positives], scores[~positives]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(order.size)
    values = np.concatenate([pos, neg])[order]
    # average ranks over ties
    _, first, counts = np.unique(values, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def fit_unknown_threshold(known: np.ndarray, unknown: np.ndarray) -> float:
    """Similarity threshold below which a listing is ``unknown``.

    With ``unknown`` examples: the threshold maximising (share of known photos at or above it) +
    (share of unknown photos below it), midway between the two neighbouring scores. Without: just
    below the lowest known score, so no known calibration photo would have been called unknown.
    """
    known = np.sort(np.asarray(known, dtype=np.float64))
    if known.size == 0:
        raise CalibrationError("no genuine or fake photos to place the unknown threshold")
    if unknown.size == 0:
        return float(known[0] - 1e-6)
    unknown = np.sort(np.asarray(unknown, dtype=np.float64))
    candidates = np.unique(np.concatenate([known, unknown, [known[-1] + 1e-6]]))
    kept = 1.0 - np.searchsorted(known, candidates, side="left") / known.size
    rejected = np.searchsorted(unknown, candidates, side="left") / unknown.size
    best = int(np.argmax(kept + rejected))
    upper = candidates[best]
    lower = candidates[best - 1] if best > 0 else upper - 1e-3
    return float((upper + lower) / 2.0)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0  # a constant feature: weight stays near 0 under the penalty
    return mean, scale


def fit_calibration(
    features: np.ndarray,
    feature_names: Sequence[str],
    labels: Sequence[str],
    max_similarity: np.ndarray,
    *,
    skipped: int = 0,
    seed: int = 0,
    signs: Sequence[int] | None = None,
) -> CalibrationReport:
    """Fit P(genuine) on the genuine/fake rows and the unknown threshold on all rows.

    Args:
        features: (n, d) evidence features, columns named by ``feature_names``.
        labels: per row ``"genuine"``, ``"fake"`` or ``"unknown"`` (a photo of nothing in the index).
        max_similarity: per row, similarity to the closest reference (what the threshold cuts).
        skipped: inputs the caller could not score (counted in the report only).
        signs: per feature, the direction it may push P(genuine) (+1, -1, 0: free; see :func:`fit_logistic`); with
            them, each directed weight is also pulled towards :data:`PRIOR_WEIGHT` in its direction (:data:`PRIOR_L2`).
    """
    x = np.asarray(features, dtype=np.float64)
    labels = list(labels)
    sims = np.asarray(max_similarity, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(labels) or sims.shape != (len(labels),):
        raise ValueError(f"features {x.shape}, labels {len(labels)} and max_similarity {sims.shape} disagree")
    bad = sorted({label for label in labels if label not in ("genuine", "fake", "unknown")})
    if bad:
        raise CalibrationError(f"labels must be 'genuine', 'fake' or 'unknown'; got {bad}")
    label_array = np.array(labels)
    known = label_array != "unknown"
    genuine = label_array == "genuine"
    n_genuine, n_fake = int(genuine.sum()), int((label_array == "fake").sum())
    if n_genuine < MIN_PER_CLASS or n_fake < MIN_PER_CLASS:
        raise CalibrationError(
            f"calibration needs at least {MIN_PER_CLASS} genuine and {MIN_PER_CLASS} fake photos that "
            f"could be scored; got {n_genuine} genuine and {n_fake} fake"
        )
    threshold = fit_unknown_threshold(sims[known], sims[~known])

    xk, yk = x[known], genuine[known].astype(np.float64)
    mean, scale = _standardise(xk)
    weights, bias = _fit_directed((xk - mean) / scale, yk, signs)
    calibration = Calibration(
        features=tuple(feature_names),
        weights=tuple(float(w) for w in weights),
        bias=bias,
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        unknown_threshold=threshold,
    )

    out_of_fold = _cross_fitted(xk, yk, seed, signs)
    report = CalibrationReport(
        calibration=calibration,
        genuine=n_genuine,
        fake=n_fake,
        unknown=int((~known).sum()),
        skipped=skipped,
        ece=expected_calibration_error(out_of_fold, yk),
        brier=float(np.mean((out_of_fold - yk) ** 2)),
        roc_auc=_roc_auc(1.0 - out_of_fold, yk == 0),
        known_recall=float(np.mean(sims[known] >= threshold)),
        unknown_recall=float(np.mean(sims[~known] < threshold)) if (~known).any() else None,
    )
    LOG.info(
        "calibrated on %d genuine, %d fake, %d unknown photos: out-of-fold ECE %.3f, ROC-AUC %.3f; unknown below %.4f",
        n_genuine, n_fake, report.unknown, report.ece, report.roc_auc, threshold,
    )
    return report


def _fit_directed(x: np.ndarray, y: np.ndarray, signs: Sequence[int] | None) -> tuple[np.ndarray, float]:
    """The calibration's fit: with directions, weights held to them and pulled towards :data:`PRIOR_WEIGHT` in their direction."""
    if signs is None or not any(signs):
        return fit_logistic(x, y, signs=signs)
    return fit_logistic(x, y, l2=PRIOR_L2, signs=signs, prior=[PRIOR_WEIGHT * s for s in signs])


def _cross_fitted(x: np.ndarray, y: np.ndarray, seed: int, signs: Sequence[int] | None = None) -> np.ndarray:
    """Out-of-fold P(genuine): each row predicted by a model fitted without its fold (stratified)."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    for value in (0.0, 1.0):
        members = np.flatnonzero(y == value)
        folds[members] = rng.permutation(len(members)) % _FOLDS
    out = np.empty(len(y))
    for fold in range(_FOLDS):
        test = folds == fold
        if not test.any():
            continue
        train = ~test
        mean, scale = _standardise(x[train])
        weights, bias = _fit_directed((x[train] - mean) / scale, y[train], signs)
        out[test] = _sigmoid(((x[test] - mean) / scale) @ weights + bias)
    return out


def uncalibrated(
    feature_names: Sequence[str], weights: Sequence[float], bias: float, unknown_threshold: float
) -> Calibration:
    """A fixed default mapping (not fitted) on raw features, for checkers not calibrated yet."""
    n = len(feature_names)
    return Calibration(
        features=tuple(feature_names),
        weights=tuple(float(w) for w in weights),
        bias=float(bias),
        mean=(0.0,) * n,
        scale=(1.0,) * n,
        unknown_threshold=float(unknown_threshold),
        fitted=False,
    )

