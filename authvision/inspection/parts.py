"""Items of several rigid parts (a perfume's box and bottle standing apart), registered part by part.

A template's parts are the connected pieces of its item cut-out in the template frame (the pieces the
studio background shows between), each at least ``min_share`` of the item. After the listing's
homography to the template, each part gets its own second-pass homography from keypoints on that
part alone, so that a bottle placed a little away from its box in a listing lines up as well as the
box does. A part whose own fit fails, or moves the part implausibly far from where the item's
homography put it, keeps the item's homography.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from authvision.inspection.masks import cutout_mask
from authvision.inspection.registration import Keypoints, ListingKeypoints, RegistrationParams, Target, refine

logger = logging.getLogger(__name__)

MIN_SHARE = 0.1
"""Smallest part, as a share of the item's cut-out area."""
MAX_PART_SHIFT = 0.15
"""Largest move of a part's corners by its own homography, as a share of the frame's longest side."""


@dataclass(frozen=True)
class Placement:
    """Where a listing's pixels go in the template frame: the item's homography, and one per part.

    ``labels`` is the template's part map (0 outside every part, k for part k); ``homographies[k-1]``
    maps listing pixels of part k into the frame, None where the part kept the item's homography.
    """

    homography: np.ndarray
    labels: np.ndarray | None = None
    homographies: tuple[np.ndarray | None, ...] = ()

    @property
    def parts_moved(self) -> int:
        """How many parts have a homography of their own."""
        return sum(h is not None for h in self.homographies)

    def then(self, S: np.ndarray) -> Placement:
        """The placement of the listing resampled by ``S`` (new listing pixels -> old listing pixels)."""
        return Placement(self.homography @ S, self.labels, tuple(None if h is None else h @ S for h in self.homographies))


def part_labels(frame_image: np.ndarray, min_share: float = MIN_SHARE) -> np.ndarray | None:
    """The template's part map (uint8, 0 = no part), or None when the item is a single piece."""
    cut = cutout_mask(frame_image).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(cut)
    if n <= 2:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    big = [i + 1 for i in np.argsort(-areas) if areas[i] >= min_share * areas.sum()]
    if len(big) < 2:
        return None
    labels = np.zeros(lab.shape, np.uint8)
    for k, i in enumerate(big, start=1):
        labels[lab == i] = k
    return labels


def _corners_move(H: np.ndarray, H2: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    c = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64).reshape(-1, 1, 2)
    Hi = np.linalg.inv(H)
    src = cv2.perspectiveTransform(c, Hi)
    return float(np.abs(cv2.perspectiveTransform(src, H2) - c).max())


def _on_part(k: Keypoints, labels: np.ndarray, part: int) -> Keypoints:
    xs = np.clip(k.points[:, 0].astype(int), 0, labels.shape[1] - 1)
    ys = np.clip(k.points[:, 1].astype(int), 0, labels.shape[0] - 1)
    sel = labels[ys, xs] == part
    return Keypoints(k.points[sel], k.descriptors[sel])


def place_parts(
    lk: ListingKeypoints,
    homography: np.ndarray,
    target: Target,
    labels: np.ndarray | None,
    p: RegistrationParams,
) -> Placement:
    """Registers each part of the template on its own, starting from the item's homography.

    Args:
        lk: the listing's keypoints (:func:`authvision.inspection.registration.listing_keypoints`).
        homography: listing pixels -> template frame, for the whole item.
        target: the template's registration target (its keypoints and masks).
        labels: the template's part map (:func:`part_labels`); None = a single piece.
        p: registration parameters (the second pass's gate and tolerance).
    """
    if labels is None:
        return Placement(homography)
    out: list[np.ndarray | None] = []
    limit = MAX_PART_SHIFT * max(labels.shape)
    grow = np.ones((9, 9), np.uint8)
    for k in range(1, int(labels.max()) + 1):
        part = labels == k
        ys, xs = np.nonzero(part)
        coarse = _on_part(target.keypoints, labels, k)
        second = coarse if target.refine_keypoints is None else _on_part(target.refine_keypoints, labels, k)
        sub = Target(coarse, target.item, cv2.dilate(part.astype(np.uint8) * 255, grow), second)
        refined = refine(lk, homography, sub, p) if len(second.points) >= 12 else None
        if refined is None:
            out.append(None)
            continue
        H2 = refined[0] / refined[0][2, 2]
        move = _corners_move(homography, H2, (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())))
        out.append(H2 if move <= limit else None)
        logger.debug("part %d: %d inliers, moved %.1f px%s", k, refined[1], move, "" if move <= limit else " (too far: kept the item's)")
    return Placement(homography, labels, tuple(out))


def warp_placement(listing: np.ndarray, placement: Placement, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The listing warped into the frame (``size`` = (width, height)), each part by its own homography,
    and the mask of frame pixels the listing covers."""
    flags = cv2.INTER_LINEAR
    ones = np.full(listing.shape[:2], 255, np.uint8)
    warped = cv2.warpPerspective(listing, placement.homography, size, flags=flags)
    valid = cv2.warpPerspective(ones, placement.homography, size, flags=cv2.INTER_NEAREST) > 0
    grow = np.ones((7, 7), np.uint8)
    for k, H in enumerate(placement.homographies, start=1):
        if H is None or placement.labels is None:
            continue
        region = cv2.dilate((placement.labels == k).astype(np.uint8), grow) > 0
        w = cv2.warpPerspective(listing, H, size, flags=flags)
        v = cv2.warpPerspective(ones, H, size, flags=cv2.INTER_NEAREST) > 0
        warped[region] = w[region]
        valid[region] = v[region]
    return warped, valid
