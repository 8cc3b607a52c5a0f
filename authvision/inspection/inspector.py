"""Inspection of one listing photo against a product's genuine templates."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from authvision.errors import InspectionError
from authvision.inspection.compare import Measurement, measure
from authvision.inspection.null import CHANNELS, cell_z, pixel_z, raw_channels, standardise
from authvision.inspection.parts import Placement, place_parts
from authvision.inspection.points import point_raw
from authvision.inspection.product import ProductInspection, Template
from authvision.inspection.registration import ListingKeypoints, Registration, listing_keypoints, register_anchor, register_templates
from authvision.inspection.text import WordReading, read_words

logger = logging.getLogger(__name__)

SCORE_CHANNELS: tuple[str, ...] = CHANNELS
"""Names in :attr:`InspectionResult.scores`."""


@dataclass(frozen=True)
class Region:
    """A scored region: its box in the template frame and in listing pixels, its null-standardised score."""

    box: tuple[int, int, int, int]
    listing_box: tuple[float, float, float, float]
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"box": list(self.box), "listing_box": [round(v, 1) for v in self.listing_box], "score": round(self.score, 3)}


@dataclass(frozen=True)
class PointScore:
    """One authentication point's score (null scale) and its box in the template frame and in listing pixels."""

    name: str
    score: float
    box: tuple[int, int, int, int]
    listing_box: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": round(self.score, 3), "box": list(self.box), "listing_box": [round(v, 1) for v in self.listing_box]}


@dataclass(frozen=True)
class InspectionResult:
    """Outcome of :func:`inspect`.

    ``scores`` are standardised against the genuine null (0 = typical genuine, 1 = the null's 95th
    percentile) and ``score`` is the fused anomaly score on the same scale (higher = more likely
    fake). An unregistered listing has ``registered=False``, a ``reason``, empty scores and NaN score.
    """

    registered: bool
    reason: str | None = None
    template: int | None = None
    mirrored: bool = False
    inliers: int = 0
    reprojection_error: float = float("nan")
    scores: dict[str, float] = field(default_factory=dict)
    score: float = float("nan")
    regions: tuple[Region, ...] = ()
    heatmap: np.ndarray | None = field(default=None, repr=False, compare=False)
    homography: np.ndarray | None = field(default=None, repr=False, compare=False)
    templates_registered: int = 0
    template_scores: tuple[dict[str, float], ...] = ()
    """Per registered template, its standardised channel scores and ``fused`` (diagnostics)."""
    parts_registered: int = 0
    """Parts of an item of several rigid parts registered on their own (0 for a one-piece item)."""
    points: tuple[PointScore, ...] = ()
    """The brand's authentication points scored on the reported template (their maximum joins ``score``)."""
    text: tuple[WordReading, ...] = ()
    """The reported template's words as read in the listing (:mod:`~authvision.inspection.text`)."""

    @property
    def text_mismatch(self) -> float:
        """The largest mismatch between a template's word and the listing's sure readings (NaN: none)."""
        return max((r.mismatch for r in self.text if math.isfinite(r.mismatch)), default=float("nan"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no heatmap; numbers rounded)."""
        r = lambda v: None if v is None or not math.isfinite(v) else round(float(v), 3)  # noqa: E731
        return {
            "registered": self.registered,
            "reason": self.reason,
            "template": self.template,
            "mirrored": self.mirrored,
            "inliers": self.inliers,
            "reprojection_error": r(self.reprojection_error),
            "scores": {k: r(v) for k, v in self.scores.items()},
            "score": r(self.score),
            "regions": [g.to_dict() for g in self.regions],
            "homography": None if self.homography is None else [[round(float(v), 6) for v in row] for row in self.homography],
            "templates_registered": self.templates_registered,
            "parts_registered": self.parts_registered,
            "points": [pt.to_dict() for pt in self.points],
            "text": [w.to_dict() for w in self.text],
            "text_mismatch": r(self.text_mismatch),
        }


def _read(listing: np.ndarray, H: np.ndarray, t: Template) -> tuple[WordReading, ...]:
    """The template's words read in the listing; none when reading fails (the rest of the inspection stands)."""
    try:
        return read_words(listing, H, t.words, t.scale)
    except Exception as exc:  # noqa: BLE001 - OCR is one channel among several
        logger.warning("reading the listing's words failed: %r", exc)
        return ()


def _point_scores(meas: Measurement, t: Template) -> dict[str, float]:
    """The template's authentication points on the null scale (a point the listing does not cover is left out)."""
    if not t.points:
        return {}
    z = pixel_z(meas, t.null.pix_mu, t.null.pix_sd)
    out = {}
    for name, mask, q50, q95 in zip(t.points, t.point_masks, t.null.point_q50, t.null.point_q95):
        raw = point_raw(z, mask, meas.mask)
        if math.isfinite(raw):
            out[name] = float((raw - q50) / max(float(q95 - q50), 1e-6))
    return out


def _points(scores: dict[str, float], t: Template, H: np.ndarray) -> tuple[PointScore, ...]:
    """The scored points (``scores``: :func:`_point_scores` of the template) with their boxes."""
    out = []
    for name, mask in zip(t.points, t.point_masks):
        if name not in scores:
            continue
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        out.append(PointScore(name, scores[name], box, _listing_box(box, H)))
    return tuple(out)


def _listing_box(box: tuple[int, int, int, int], H: np.ndarray) -> tuple[float, float, float, float]:
    """A template-frame box in listing pixels (the bounding box of its corners through ``H``'s inverse)."""
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]], dtype=np.float64)
    lp = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), np.linalg.inv(H)).reshape(-1, 2)
    return (float(lp[:, 0].min()), float(lp[:, 1].min()), float(lp[:, 0].max()), float(lp[:, 1].max()))


def _regions(meas: Measurement, t: Template, H: np.ndarray, k: int) -> tuple[Region, ...]:
    """The ``k`` worst cells (null-standardised, mapped to the score scale of the cells channel)."""
    zc = cell_z(meas, t.null.cell_mu, t.null.cell_sd, t.null.cell_ok)
    i = CHANNELS.index("cells")
    q50, q95 = float(t.null.q50[i]), float(t.null.q95[i])
    order = np.argsort(np.where(np.isfinite(zc), -zc, np.inf), axis=None)[:k]
    c = t.null.cell_mu.shape
    cell = meas.diff.shape[0] // max(c[0], 1) if c[0] else 1
    out = []
    for flat in order:
        y, x = np.unravel_index(int(flat), zc.shape)
        if not np.isfinite(zc[y, x]):
            break
        box = (int(x * cell), int(y * cell), int((x + 1) * cell), int((y + 1) * cell))
        out.append(Region(box, _listing_box(box, H), float((zc[y, x] - q50) / max(q95 - q50, 1e-6))))
    return tuple(out)


def inspect(listing: np.ndarray, data: ProductInspection, *, regions: int = 5, heatmap: bool = True) -> InspectionResult:
    """Registers a listing to each of the product's templates and compares it where registered.

    The template with the lowest fused score is reported (the genuine view that explains the listing
    best); its channel scores, worst regions, heatmap (per-pixel null z in the template frame) and
    homography (listing pixels -> template frame) come with it.

    Args:
        listing: RGB uint8 HxWx3 listing photo at decode resolution.
        data: the product's inspection data.
        regions: how many worst regions to return.
        heatmap: whether to return the heatmap array.

    Raises:
        InspectionError: ``listing`` is not an RGB uint8 image.
    """
    return inspect_best(listing, [data], regions=regions, heatmap=heatmap)[1]


def inspect_best(
    listing: np.ndarray,
    candidates: Sequence[ProductInspection],
    *,
    regions: int = 5,
    heatmap: bool = True,
    enough: int | None = None,
) -> tuple[int, InspectionResult]:
    """Which of several candidate products a listing pictures, and its inspection against that one.

    The screen's product vote is wrong for some cluttered listings (another product of the same kind
    or brand looks alike to a global embedding), and a listing inspected against the wrong product
    either fails to register or is compared with the wrong marks. Here each candidate's templates are
    registered from scratch up to the first that registers (the listing's keypoints are detected once);
    the candidate whose registration has the most keypoint inliers wins (ties: the earlier candidate,
    so pass the screen's product first), and only it is compared. When none registers, the first
    candidate's result says why, after every candidate was tried once more with the listing's
    keypoints detected at its decode resolution (up to ``RegistrationParams.retry_side``). ``enough``:
    a candidate registered on at least this many inliers is taken without trying the ones after it.

    Returns:
        (index of the chosen candidate, its :class:`InspectionResult`).

    Raises:
        InspectionError: ``listing`` is not an RGB uint8 image, or ``candidates`` is empty.
    """
    if not candidates:
        raise InspectionError("inspect_best needs at least one candidate product")
    listing = _checked(listing)
    lks, anchors = _anchors(listing, candidates, enough, lambda p: p)
    if all(first < 0 for first, _ in anchors):  # nothing registered: once more with keypoints at full resolution
        sharper = lambda p: replace(p, side=p.retry_side, listing_features=p.retry_features)  # noqa: E731
        if any(p.retry_side > p.side and max(listing.shape[:2]) > p.side for p in (d.params.registration for d in candidates)):
            retried = _anchors(listing, candidates, enough, sharper)
            if any(first >= 0 for first, _ in retried[1]):
                lks, anchors = retried
    inliers = [tried[first].inliers if first >= 0 else -1 for first, tried in anchors]
    best = int(np.argmax(inliers))  # the first of equals
    data = candidates[best]
    regs = register_templates(lks[best], data.targets, data.links, data.params.registration, anchor=anchors[best])
    return best, _inspect_registered(listing, lks[best], data, regs, regions, heatmap)


def _anchors(
    listing: np.ndarray, candidates: Sequence[ProductInspection], enough: int | None, detection: Callable[[Any], Any]
) -> tuple[list[ListingKeypoints], list[tuple[int, list[Registration]]]]:
    """Each candidate's anchor registration (:func:`register_anchor`) up to the first registered on ``enough``
    inliers, with the listing's keypoints detected once per ``detection(params)``; and those keypoints."""
    keypoints: dict[Any, ListingKeypoints] = {}
    lks: list[ListingKeypoints] = []
    anchors: list[tuple[int, list[Registration]]] = []
    for data in candidates:
        p = data.params.registration
        if p not in keypoints:
            keypoints[p] = listing_keypoints(listing, detection(p))
        lks.append(keypoints[p])
        anchors.append(register_anchor(keypoints[p], data.targets, p))
        first, tried = anchors[-1]
        if enough is not None and first >= 0 and tried[first].inliers >= enough:
            break
    return lks, anchors


def _checked(listing: np.ndarray) -> np.ndarray:
    if not isinstance(listing, np.ndarray) or listing.ndim != 3 or listing.shape[2] != 3 or listing.dtype != np.uint8:
        raise InspectionError("listing must be an RGB uint8 HxWx3 array")
    return np.ascontiguousarray(listing)


def _inspect_registered(
    listing: np.ndarray, lk: ListingKeypoints, data: ProductInspection, regs: Sequence[Registration], regions: int, heatmap: bool
) -> InspectionResult:
    """The comparison of a listing with every template it registered to (``regs``, one per template)."""
    p = data.params
    best: tuple[float, int, Registration, Measurement, dict[str, float], Placement, dict[str, float]] | None = None
    failed: list[Registration] = []
    per_template = []
    for i, (t, reg, target) in enumerate(zip(data.templates, regs, data.targets)):
        if not reg.ok or reg.homography is None:
            failed.append(reg)
            continue
        placement = place_parts(lk, reg.homography, target, t.parts, p.registration)
        meas = measure(listing, reg.homography, t.view, p.cell, p.match_resolution, p.flow_sigma, p.flow_max, placement)
        n = t.null
        std = standardise(raw_channels(meas, n, p.cell), n)
        points = _point_scores(meas, t)
        if points:
            std["points"] = max(points.values())
        per_template.append(std)
        fused = max([std["fused"], *points.values()])
        if best is None or fused < best[0]:
            best = (fused, i, reg, meas, std, placement, points)
    if best is None:
        worst = max(failed, key=lambda r: r.inliers)
        return InspectionResult(False, worst.reason, inliers=worst.inliers, reprojection_error=worst.reprojection_error)
    fused, i, reg, meas, std, placement, points = best
    homography = reg.homography
    assert homography is not None  # only registered templates are kept as best
    t = data.templates[i]
    hm = pixel_z(meas, t.null.pix_mu, t.null.pix_sd) if heatmap else None
    return InspectionResult(
        registered=True,
        reason=None,
        template=i,
        mirrored=reg.mirrored,
        inliers=reg.inliers,
        reprojection_error=reg.reprojection_error,
        scores={c: std[c] for c in SCORE_CHANNELS},
        score=fused,
        regions=_regions(meas, t, homography, regions),
        points=_points(points, t, homography),
        text=_read(listing, homography, t),
        heatmap=hm,
        homography=reg.homography,
        templates_registered=len(per_template),
        template_scores=tuple(per_template),
        parts_registered=placement.parts_moved,
    )
