"""Item masks on studio reference photos: the item is what differs from the border (background) colour."""

from __future__ import annotations

import logging

import cv2
import numpy as np

logger = logging.getLogger(__name__)

BORDER = 8
"""Width in pixels of the photo border whose median colour is taken as the studio background."""


def background_distance(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel max-channel distance from the photo's border colour.

    Args:
        rgb: HxWx3 uint8 photo.

    Returns:
        HxW float32 distances in grey levels.
    """
    b = BORDER
    border = np.concatenate([rgb[:b].reshape(-1, 3), rgb[-b:].reshape(-1, 3), rgb[:, :b].reshape(-1, 3), rgb[:, -b:].reshape(-1, 3)])
    return np.abs(rgb.astype(np.float32) - np.median(border, 0)).max(2)


def item_mask(rgb: np.ndarray, threshold: float = 30.0, close: bool = True) -> np.ndarray:
    """The item on a studio photo: pixels far from the border colour, closed, largest component.

    Args:
        rgb: HxWx3 uint8 studio photo.
        threshold: distance from the background colour above which a pixel is the item's.
        close: close gaps of ~15 px (at 480 px) in the mask; off for a cut-out that keeps the gaps
            between an item's parts.

    Returns:
        HxW uint8 mask (0/1).
    """
    k = max(3, int(round((15 if close else 3) * max(rgb.shape[:2]) / 480)) | 1)
    m = cv2.morphologyEx((background_distance(rgb) > threshold).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m)
    if n > 1:
        m = (lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    return m


def fill_enclosed(mask: np.ndarray, rgb: np.ndarray, background_level: float = 12.0) -> np.ndarray:
    """Adds enclosed regions to a mask unless their median colour is the background's.

    A pale label or a white dial is close to the studio colour and left out by :func:`item_mask`;
    a handle loop shows the background itself and stays out.

    Args:
        mask: HxW mask (nonzero = item).
        rgb: the photo the mask was made from.
        background_level: median background distance below which an enclosed region is background.

    Returns:
        HxW bool mask.
    """
    p = np.pad((mask > 0).astype(np.uint8), 1)
    cv2.floodFill(p, None, (0, 0), 2)
    filled = (p != 2)[1:-1, 1:-1]
    d = background_distance(rgb)
    n, lab = cv2.connectedComponents((filled & ~(mask > 0)).astype(np.uint8))
    for i in range(1, n):
        if np.median(d[lab == i]) < background_level:
            filled[lab == i] = False
    return filled


def full_mask(rgb: np.ndarray) -> np.ndarray:
    """The item with its enclosed pale regions (bool HxW)."""
    return fill_enclosed(item_mask(rgb), rgb)


def cutout_mask(rgb: np.ndarray) -> np.ndarray:
    """The item's silhouette for cutting it out of its studio photo: like :func:`full_mask` but the
    background visible between parts (a box and a bottle, a handle's loop) stays out (bool HxW)."""
    return fill_enclosed(item_mask(rgb, close=False), rgb)


def inspection_mask(rgb: np.ndarray, erode: int) -> np.ndarray:
    """Item mask with enclosed pale regions, eroded so the outline band (pose, background) is left out.

    Args:
        rgb: HxWx3 uint8 studio photo at the inspection frame's resolution.
        erode: side in pixels of the square erosion kernel.

    Returns:
        HxW bool mask.
    """
    full = full_mask(rgb).astype(np.uint8)
    if erode > 1:
        full = np.asarray(cv2.erode(full, np.ones((erode, erode), np.uint8)), dtype=np.uint8)
    return full > 0
