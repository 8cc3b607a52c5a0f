"""Calibration from a brand's reference photos alone, when it has no labelled listings.

Studio references are not listings: calibrated on them as they are, the unknown threshold lands far
above what cluttered, blurred, re-compressed listings reach and every listing comes out ``unknown``.
So the held-out references are first put through simulated listing conditions (the same generic
degradations as the inspection's genuine null: backgrounds, item scale, perspective, rotation,
light, noise, blur, saturation, banners, JPEG), and the ``unknown`` threshold is fitted against
listings of products the index does *not* hold, simulated two ways: each degraded reference scored
against the other products' references only (leave its product out), and photos of unrelated
scenes (procedural surfaces and clutter without any item).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .calibration import CalibrationReport, fit_calibration
from .errors import CalibrationError, ImageDecodeError
from .imageio import ImageSource, decode_image

if TYPE_CHECKING:
    from .checker import AuthenticityChecker

__all__ = ["calibrate_from_references"]

LOG = logging.getLogger(__name__)

_OTHERS_K = 50  # neighbours searched to find the best reference of another product


def calibrate_from_references(
    checker: AuthenticityChecker,
    photos: Sequence[ImageSource],
    labels: Sequence[str],
    products: Sequence[str],
    *,
    per_photo: int = 3,
    unrelated: int = 40,
    keep_known: float = 0.9,
    seed: int = 0,
) -> CalibrationReport:
    """Fit ``checker``'s calibration on held-out reference photos made to look like listings.

    Args:
        photos: genuine and fake reference photos NOT indexed in the checker (held out).
        labels: ``"genuine"`` or ``"fake"`` per photo.
        products: the product of each photo (its listings of other products place the unknown threshold).
        per_photo: simulated listings made from each photo.
        unrelated: photos of unrelated scenes among the unknown examples.
        keep_known: the unknown threshold is placed no higher than keeps this share of the simulated
            listings of indexed products known. Simulated listings only approximate real ones, and
            listings of look-alike products of other brands overlap them in similarity: balancing
            the two (as :meth:`~authvision.checker.AuthenticityChecker.calibrate` does on real
            listings) put the threshold far too high on the demo kit (0.80: 43 % of its listings of
            indexed products found), so losing known listings is bounded instead.
        seed: seed of the simulated conditions (the result is deterministic for it).

    Raises:
        CalibrationError: fewer than :data:`~authvision.calibration.MIN_PER_CLASS` of a class remain.
    """
    from .inspection.conditions import procedural_background, simulate_listing

    if not len(photos) == len(labels) == len(products):
        raise ValueError(f"{len(photos)} photos, {len(labels)} labels and {len(products)} products")
    bad = sorted({label for label in labels if label not in ("genuine", "fake")})
    if bad:
        raise CalibrationError(f"reference labels must be 'genuine' or 'fake', got {bad}")
    rng = np.random.default_rng(seed)
    images: list[Image.Image] = []
    sources: list[np.ndarray] = []
    kept_labels: list[str] = []
    kept_products: list[str] = []
    skipped = 0
    for photo, label, product in zip(photos, labels, products):
        try:
            rgb = np.asarray(decode_image(photo).image)
        except ImageDecodeError as exc:
            skipped += 1
            LOG.warning("reference photo skipped: %s", exc)
            continue
        for _ in range(per_photo):
            listing = np.ascontiguousarray(simulate_listing(rgb, rng))
            sources.append(listing)
            images.append(Image.fromarray(listing))
            kept_labels.append(label)
            kept_products.append(product)
    listings = checker.listings(images, sources)
    assessments = checker.assess_listings(listings)
    features = [a.features for a in assessments]
    known = [a.known_score for a in assessments]

    others = _best_of_other_products(checker, np.stack([x.vector for x in listings]), kept_products)
    scenes = [Image.fromarray(procedural_background((int(rng.integers(360, 720)), int(rng.integers(360, 720))), rng)) for _ in range(unrelated)]
    scene_assessments = checker.assess_images(scenes) if scenes else []

    rows = len(features)
    all_features = np.array(features + features + [a.features for a in scene_assessments], dtype=np.float64)
    all_labels = kept_labels + ["unknown"] * (rows + len(scene_assessments))
    all_known = np.array(known + others + [a.known_score for a in scene_assessments])
    report = fit_calibration(all_features.reshape(len(all_labels), len(checker.feature_names)), checker.feature_names,
                             all_labels, all_known, skipped=skipped, seed=seed, signs=checker.feature_signs)  # fmt: skip
    ceiling = float(np.quantile(np.array(known), 1.0 - keep_known))
    if report.calibration.unknown_threshold > ceiling:
        LOG.info("unknown threshold %.4f lowered to %.4f to keep %.0f%% of known listings", report.calibration.unknown_threshold,
                 ceiling, 100 * keep_known)  # fmt: skip
        calibration = dataclasses.replace(report.calibration, unknown_threshold=ceiling)
        report = dataclasses.replace(
            report,
            calibration=calibration,
            known_recall=float(np.mean(all_known[: len(kept_labels)] >= ceiling)),
            unknown_recall=float(np.mean(all_known[len(kept_labels) :] < ceiling)),
        )
    checker.restore_calibration(report.calibration, report)
    return report


def _best_of_other_products(checker: AuthenticityChecker, vectors: np.ndarray, products: Sequence[str]) -> list[float]:
    """Per listing, its best similarity to references of any other product (as if its own were not indexed)."""
    result = checker.index.search(vectors, min(_OTHERS_K, max(1, len(checker.index))))
    refs = checker.index.lookup(set(result.ids[result.ids >= 0].tolist()))
    out = []
    for i, product in enumerate(products):
        best = -1.0
        for ref_id, similarity in zip(result.ids[i].tolist(), result.similarities[i].tolist()):
            if ref_id >= 0 and ref_id in refs and refs[ref_id].product != product:
                best = max(best, float(similarity))
        out.append(best)
    return out
