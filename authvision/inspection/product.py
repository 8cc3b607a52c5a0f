"""Inspection data of one product: templates, their keypoints and masks, mark regions, genuine null.

Built from the product's genuine studio references only; persisted as plain numpy arrays plus
JSON-able metadata (no pickle) through :meth:`ProductInspection.to_arrays` / ``from_arrays``.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import cv2
import numpy as np

from authvision.errors import InspectionError
from authvision.inspection.compare import Measurement, TemplateView, lcn, measure
from authvision.inspection.conditions import simulate_listing
from authvision.inspection.masks import full_mask, inspection_mask, item_mask
from authvision.inspection.null import NullStats, fit_null
from authvision.inspection.parts import part_labels, place_parts
from authvision.inspection.points import MIN_POINT_PIXELS, AuthenticationPoint, point_mask
from authvision.inspection.registration import (
    Keypoints,
    RegistrationParams,
    Target,
    detect,
    gray,
    link_templates,
    listing_keypoints,
    make_target,
    register_templates,
)
from authvision.inspection.text import Word, consensus, find_words, share_words

logger = logging.getLogger(__name__)

FORMAT = "authvision.inspection"
FORMAT_VERSION = 4
"""2: template-to-template links; the genuine null keeps an item's pale parts (labels, straps) in its
simulated listings; part maps of items of several parts (derived from the frame image, not stored).
3: the comparison mask is the item's cut-out (the background between its parts is no longer compared).
4: pixels near the listing photo's edge are not compared (:data:`~authvision.inspection.compare.EDGE_MARGIN`),
so the null's statistics change."""


@dataclass(frozen=True)
class InspectionParams:
    """How a product's inspection data is built and compared (defaults are the measured ones)."""

    frame: int = 448
    """Longest side in pixels of the template frame where keypoints live and comparison happens."""
    cell: int = 24
    erode: int = 31
    read_text: bool = True
    """Read each template's words at build time and again in every inspected listing (:mod:`~authvision.inspection.text`)."""
    compare_gaps: bool = False
    """Compare the background visible between an item's parts too (the closed silhouette). Off: only
    the item's own pixels are compared (its cut-out, :func:`~authvision.inspection.masks.cutout_mask`)."""
    null_per_reference: int = 2
    null_smooth: float = 0.0
    """Gaussian sigma (px) under which the per-pixel null spread is smoothed (raised, never lowered)."""
    match_resolution: bool = True
    """Compare listing and template at the coarser of their two resolutions (see compare.measure)."""
    flow_sigma: float = 0.0
    """Smoothing (px) of the optical-flow local refinement after the homography; 0 turns it off."""
    flow_max: float = 6.0
    selection: str = "cover"
    """Template choice: "cover" (medoid, then farthest genuine photos) or "first"."""
    registration: RegistrationParams = field(default_factory=RegistrationParams)


@dataclass(frozen=True)
class Template:
    """One genuine reference as a template: frame image and maps, keypoints, masks, null."""

    source: int
    view: TemplateView
    keypoints: Keypoints
    item: np.ndarray
    search: np.ndarray
    null: NullStats
    scale: float
    """Template frame pixels per source-photo pixel."""
    links: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)), compare=False)
    """Homographies (T x 3 x 3) from this template's frame into each template's frame, in template
    order; all zeros where this template does not register to that one."""
    parts: np.ndarray | None = field(default=None, compare=False)
    """Part map of an item of several rigid parts (:func:`authvision.inspection.parts.part_labels`),
    derived from ``view.image``; None for an item of one piece."""
    points: tuple[str, ...] = ()
    """Names of the brand's authentication points scored on this template (:mod:`~authvision.inspection.points`)."""
    point_masks: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), bool), compare=False)
    """(P, H, W) masks of those points in the template frame (their null quantiles: ``null.point_q50/q95``)."""
    words: tuple[Word, ...] = ()
    """The words the template's photo reads (:func:`authvision.inspection.text.find_words`), boxes in its frame."""


@dataclass(frozen=True)
class ProductInspection:
    """Everything :func:`authvision.inspection.inspect` needs for one product."""

    product: str
    seed: int
    params: InspectionParams
    templates: tuple[Template, ...]

    @cached_property
    def targets(self) -> list[Target]:
        """What registration needs of each template."""
        return [make_target(t.view.image, t.keypoints, t.item, t.search, self.params.registration) for t in self.templates]

    @cached_property
    def links(self) -> np.ndarray | None:
        """Template-to-template homographies (T x T x 3 x 3, see :attr:`Template.links`), or None when absent."""
        n = len(self.templates)
        if any(t.links.shape != (n, 3, 3) for t in self.templates):
            return None
        return np.stack([t.links for t in self.templates])

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """Numpy arrays and JSON-able metadata (see :meth:`from_arrays`)."""
        from authvision.inspection._arrays import to_arrays

        return to_arrays(self)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict) -> ProductInspection:
        """Rebuilds inspection data; raises :class:`authvision.errors.IndexFormatError` if malformed."""
        from authvision.inspection._arrays import from_arrays

        return from_arrays(arrays, meta)


def frame_image(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """The photo resized so its longest side is ``side`` px, and the scale used."""
    s = side / max(rgb.shape[:2])
    h, w = rgb.shape[:2]
    out = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return out, s


def make_template_parts(rgb: np.ndarray, p: InspectionParams) -> tuple[TemplateView, Keypoints, np.ndarray, np.ndarray, float]:
    """Frame image, maps, keypoints and masks of a genuine photo used as a template."""
    img, s = frame_image(rgb, p.frame)
    item = item_mask(img)
    kp = detect(gray(img), item, p.registration.nfeatures)
    search = cv2.dilate(item, np.ones((15, 15), np.uint8))
    view = TemplateView.from_image(img, inspection_mask(img, p.erode, gaps=p.compare_gaps))
    return view, kp, item, search, s


def _signature(rgb: np.ndarray) -> np.ndarray:
    """A small pose-sensitive descriptor of a studio photo: LCN of the item crop at 48x48."""
    small, _ = frame_image(rgb, 160)
    m = full_mask(small)
    ys, xs = np.nonzero(m)
    crop = small if len(xs) < 16 else small[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    g = cv2.resize(gray(crop), (48, 48), interpolation=cv2.INTER_AREA)
    return lcn(g, 3).ravel()


def choose_templates(genuine: list[np.ndarray], k: int, how: str) -> list[int]:
    """Indices of ``k`` genuine photos to use as templates.

    "cover": the medoid of the pose signatures, then repeatedly the photo farthest from those chosen
    (covers genuine variation such as a watch's hands or a handle's fall). "first": the first ``k``.
    """
    k = max(1, min(k, len(genuine)))
    if how == "first" or len(genuine) <= k:
        return list(range(k))
    if how != "cover":
        raise InspectionError(f"unknown template selection {how!r}")
    sig = np.stack([_signature(g) for g in genuine])
    dist = np.abs(sig[:, None] - sig[None]).mean(2)
    chosen = [int(np.argmin(dist.sum(1)))]
    while len(chosen) < k:
        chosen.append(int(np.argmax(dist[:, chosen].min(1))))
    return chosen


def _carry_points(
    photos: Sequence[np.ndarray],
    points: tuple[int, Sequence[AuthenticationPoint]] | None,
    chosen: Sequence[int],
    parts: Sequence[tuple[TemplateView, Keypoints, np.ndarray, np.ndarray, float]],
    targets: Sequence[Target],
    links: np.ndarray,
    p: InspectionParams,
) -> list[tuple[tuple[str, ...], np.ndarray]]:
    """Per template: the names and frame masks of the authentication points it can score."""
    empty: list[tuple[tuple[str, ...], np.ndarray]] = [((), np.zeros((0, *view.mask.shape), bool)) for view, *_ in parts]
    if points is None or not points[1]:
        return empty
    source, given = points
    if not 0 <= source < len(photos):
        raise InspectionError(f"authentication points drawn on photo {source}, but there are {len(photos)} genuine photos")
    regs = register_templates(listing_keypoints(photos[source], p.registration), targets, links, p.registration)
    out: list[tuple[tuple[str, ...], np.ndarray]] = []
    for ti, ((view, _, _, _, scale), reg) in enumerate(zip(parts, regs)):
        if chosen[ti] == source:
            H: np.ndarray | None = np.diag([scale, scale, 1.0])
        else:
            H = reg.homography if reg.ok else None
        if H is None:
            logger.warning("authentication points: their photo does not register to template %d (%s)", chosen[ti], reg.reason)
            out.append(empty[ti])
            continue
        masks = [point_mask(pt, H, view.mask) for pt in given]
        kept = [(pt.name, m) for pt, m in zip(given, masks) if int(m.sum()) >= MIN_POINT_PIXELS]
        for pt, m in zip(given, masks):
            if int(m.sum()) < MIN_POINT_PIXELS:
                logger.warning("authentication point %r: under %d compared pixels on template %d", pt.name, MIN_POINT_PIXELS, chosen[ti])
        out.append((tuple(n for n, _ in kept), np.stack([m for _, m in kept]) if kept else empty[ti][1]))
    return out


def build_product_inspection(
    genuine: list[np.ndarray],
    *,
    product: str,
    seed: int = 0,
    templates: int = 3,
    params: InspectionParams | None = None,
    points: tuple[int, Sequence[AuthenticationPoint]] | None = None,
) -> ProductInspection:
    """Builds a product's inspection data from its genuine studio reference photos.

    Args:
        genuine: RGB uint8 HxWx3 photos at decode resolution (at least two).
        product: product id (metadata, and part of the random seed).
        seed: seed of the simulated listing conditions; the result is deterministic for it.
        templates: how many templates to keep.
        params: build and comparison parameters.
        points: the brand's authentication points: (index of the photo in ``genuine`` they were drawn
            on, the points in that photo's pixels). Each template scores the points that its
            registration of that photo carries into its frame with enough compared pixels.

    Returns:
        The product's :class:`ProductInspection`.

    Raises:
        InspectionError: fewer than two usable genuine photos, or no template with a usable null.
    """
    p = params or InspectionParams()
    photos = [np.ascontiguousarray(g) for g in genuine]
    for g in photos:
        if g.ndim != 3 or g.shape[2] != 3 or g.dtype != np.uint8:
            raise InspectionError("genuine photos must be RGB uint8 HxWx3 arrays")
    if len(photos) < 2:
        raise InspectionError(f"{product}: inspection needs at least two genuine photos, got {len(photos)}")
    rng = np.random.default_rng([seed, zlib.crc32(product.encode())])
    degraded = [[simulate_listing(g, rng) for _ in range(p.null_per_reference)] for g in photos]
    keyed = [[(d, listing_keypoints(d, p.registration)) for d in ds] for ds in degraded]
    chosen = choose_templates(photos, templates, p.selection)
    parts = [make_template_parts(photos[t], p) for t in chosen]
    targets = [make_target(view.image, kp, item, search, p.registration) for view, kp, item, search, _ in parts]
    links = link_templates([view.image for view, *_ in parts], targets, p.registration)
    # every simulated listing registered to every template the way a listing is (same registration path)
    regs = [[register_templates(lk, targets, links, p.registration) for d, lk in ds] for ds in keyed]
    carried = _carry_points(photos, points, chosen, parts, targets, links, p)
    built: list[tuple[int, Template]] = []
    for ti, t in enumerate(chosen):
        view, kp, item, search, s = parts[ti]
        labels = part_labels(view.image)
        meas: list[Measurement] = []
        groups: list[int] = []
        for j, ds in enumerate(keyed):
            if j == t:
                continue
            for (d, lk), rr in zip(ds, regs[j]):
                reg = rr[ti]
                if reg.ok and reg.homography is not None:
                    placement = place_parts(lk, reg.homography, targets[ti], labels, p.registration)
                    meas.append(measure(d, reg.homography, view, p.cell, p.match_resolution, p.flow_sigma, p.flow_max, placement))
                    groups.append(j)
                else:
                    logger.debug("%s template %d: null sample of photo %d not registered: %s", product, t, j, reg.reason)
        if len(set(groups)) < 3:
            logger.warning("%s: template %d dropped, only %d null photos registered", product, t, len(set(groups)))
            continue
        names, masks = carried[ti]
        null = fit_null(meas, groups, view.norm, view.mask, p.cell, p.null_smooth, masks)
        keep = np.isfinite(null.point_q50) & np.isfinite(null.point_q95)
        null = replace(null, point_q50=null.point_q50[keep], point_q95=null.point_q95[keep])
        names = tuple(n for n, k in zip(names, keep) if k)
        built.append((ti, Template(t, view, kp, item, search, null, s, parts=labels, points=names, point_masks=masks[keep])))
        logger.info("%s: template %d, %d null samples", product, t, len(meas))
    if not built:
        raise InspectionError(f"{product}: no template could be built (genuine photos do not register to each other)")
    kept = [ti for ti, _ in built]
    words: list[tuple[Word, ...]] = [()] * len(built)
    if p.read_text:
        fh, fw = built[0][1].view.mask.shape
        read = consensus([find_words(photos[tm.source], tm.scale) for _, tm in built])
        words = share_words(read, links[np.ix_(kept, kept)], (int(fh), int(fw)))
    final = tuple(replace(tm, links=links[ti][kept], words=w) for (ti, tm), w in zip(built, words))
    return ProductInspection(product, int(seed), p, final)
