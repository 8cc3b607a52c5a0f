"""Real-photo re-use evaluation: do edited copies of indexed photos find their product, and do photos
that are not indexed come out ``unknown``?

Counterfeit sellers re-use photos (the brand's official shots, each other's) behind marketplace
templates. This check uses real photos that installed packages ship (scikit-image and matplotlib
sample data, :mod:`authvision.sample_photos`; nothing is downloaded): part of them are indexed as
references, one product each; listing-style edits of them are queried; the other photos, and edits
of them, are queried as photos of things not in the index. The unknown threshold is fitted on a
calibration half (split by photo) and applied to the other half.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageEnhance

from .calibration import fit_unknown_threshold
from .checker import AuthenticityChecker
from .embedder import Embedder
from .listing_edits import crop_border, draw_banner, jpeg_round_trip, mirror, pad_to_square, stamp_text

__all__ = ["EDITS", "ReuseResult", "evaluate_photo_reuse"]

LOG = logging.getLogger(__name__)

INDEXED = (
    "astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle_left", "grace_hopper", "hubble_deep_field",
    "immunohistochemistry", "retina", "colorwheel", "clock", "page", "minduka_present", "coins",
)  # fmt: skip
# stereo_motorcycle_right is left out: it is the other view of an indexed scene, the same "product".
NOT_INDEXED = ("camera", "brick", "grass", "gravel", "moon", "text", "logo", "cell", "shepp_logan_phantom")


def _pad(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return pad_to_square(image, side=int(max(image.size) * rng.uniform(1.05, 1.3)))


def _banner(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    height = int(image.height * rng.uniform(0.07, 0.14))
    top = 0 if rng.random() < 0.5 else image.height - height
    colour = tuple(int(v) for v in rng.integers(0, 255, 3))
    return draw_banner(image, top=top, height=height, colour=colour, text="SALE -50% FREE SHIPPING",
                       text_at=(image.width // 20, top + height // 3))


def _watermark(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    positions = [(int(rng.uniform(0, image.width * 0.7)), int(rng.uniform(0, image.height * 0.9))) for _ in range(3)]
    return stamp_text(image, "@bestdeals_shop", positions)


def _crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return crop_border(image, rng.uniform(0.01, 0.04))


EDITS = {
    "jpeg q40-70": lambda im, rng: jpeg_round_trip(im, int(rng.integers(40, 71))),
    "white padding + jpeg": lambda im, rng: jpeg_round_trip(_pad(im, rng), 75),
    "banner": _banner,
    "watermark": _watermark,
    "crop 2-8%": _crop,
    "mirror": lambda im, rng: mirror(im),
    "half size": lambda im, rng: im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR),
    "brighter": lambda im, rng: ImageEnhance.Brightness(im).enhance(rng.uniform(1.1, 1.3)),
    "rotate 3°": lambda im, rng: im.rotate(float(rng.uniform(-3, 3)), fillcolor=(255, 255, 255)),
    "mirror + banner + jpeg": lambda im, rng: jpeg_round_trip(_banner(mirror(im), rng), 60),
}
"""Listing-style edits: what marketplace templates and copying sellers do to a photo
(:mod:`authvision.listing_edits`, parameters drawn from the check's generator)."""


@dataclass(frozen=True)
class ReuseResult:
    """Figures of the re-use evaluation (test halves only)."""

    indexed_photos: int
    queries_of_indexed: int
    queries_not_indexed: int
    product_top1: float
    duplicate_found: float
    unknown_rate_not_indexed: float
    known_rate_indexed: float
    unknown_threshold: float
    per_edit_top1: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        rows = "\n".join(f"| {edit} | {share:.3f} |" for edit, share in self.per_edit_top1.items())
        return (
            f"{self.indexed_photos} real photos (scikit-image, matplotlib) indexed as products; "
            f"{self.queries_of_indexed} listing-style edits of them and {self.queries_not_indexed} photos or edits "
            "of photos that are not indexed, queried (test halves; the unknown threshold "
            f"{self.unknown_threshold:.3f} was fitted on the other halves).\n\n"
            "| measure | value |\n|---|---|\n"
            f"| product top-1 on edited copies | {self.product_top1:.3f} |\n"
            f"| edited copies found as near-duplicates (perceptual hash) | {self.duplicate_found:.3f} |\n"
            f"| edited copies above the unknown threshold | {self.known_rate_indexed:.3f} |\n"
            f"| photos not indexed called unknown | {self.unknown_rate_not_indexed:.3f} |\n\n"
            "| edit | product top-1 |\n|---|---|\n" + rows
        )


def evaluate_photo_reuse(embedder: Embedder, *, seed: int = 0, indexed: Sequence[str] = INDEXED,
                         not_indexed: Sequence[str] = NOT_INDEXED) -> ReuseResult:
    """Index ``indexed`` photos, query edits of them and of ``not_indexed`` ones (see module doc)."""
    from .sample_photos import sample_photo

    rng = np.random.default_rng(seed)
    checker = AuthenticityChecker(embedder)
    for name in indexed:
        checker.add_references([sample_photo(name)], "genuine", product=name, brand="sample-photos")

    queries: list[tuple[Image.Image, str | None, str, bool]] = []  # image, product, edit, calibration half
    for i, name in enumerate(indexed):
        photo = Image.fromarray(sample_photo(name))
        for j, (edit, apply) in enumerate(EDITS.items()):
            queries.append((apply(photo, rng), name, edit, (i + j) % 2 == 0))
    for i, name in enumerate(not_indexed):
        photo = Image.fromarray(sample_photo(name))
        queries.append((photo, None, "original", i % 2 == 0))
        for edit in ("jpeg q40-70", "crop 2-8%", "white padding + jpeg", "banner"):
            queries.append((EDITS[edit](photo, rng), None, edit, i % 2 == 0))

    assessments = checker.assess_images([embedder.decode(q[0]).image for q in queries])
    best = np.array([a.known_score for a in assessments])
    is_indexed = np.array([q[1] is not None for q in queries])
    calibration = np.array([q[3] for q in queries])
    threshold = fit_unknown_threshold(best[calibration & is_indexed], best[calibration & ~is_indexed])

    test = ~calibration
    hit = np.array([a.product == q[1] for a, q in zip(assessments, queries)])
    duplicate = np.array([a.duplicate_of is not None for a in assessments])
    edits = {edit: float(hit[test & is_indexed & np.array([q[2] == edit for q in queries])].mean()) for edit in EDITS}
    result = ReuseResult(
        indexed_photos=len(indexed),
        queries_of_indexed=int((test & is_indexed).sum()),
        queries_not_indexed=int((test & ~is_indexed).sum()),
        product_top1=float(hit[test & is_indexed].mean()),
        duplicate_found=float(duplicate[test & is_indexed].mean()),
        unknown_rate_not_indexed=float((best[test & ~is_indexed] < threshold).mean()),
        known_rate_indexed=float((best[test & is_indexed] >= threshold).mean()),
        unknown_threshold=threshold,
        per_edit_top1=edits,
    )
    LOG.info("photo re-use: product top-1 %.3f, unknown on not indexed %.3f", result.product_top1, result.unknown_rate_not_indexed)
    return result
