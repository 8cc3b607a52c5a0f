"""Item masks on studio reference photos: the item is what differs from the border (background) colour."""

from __future__ import annotations

import logging

import cv2
import numpy as np

logger = logging.getLogger(__name__)

BORDER = 8
"""Width in pixels of the photo border whose median colour is taken as the studio background."""


def border_colour(rgb: np.ndarray) -> np.ndarray:
    """Median colour (float32, 3) of the photo's border: the studio background's."""
    b = BORDER
    border = np.concatenate([rgb[:b].reshape(-1, 3), rgb[-b:].reshape(-1, 3), rgb[:, :b].reshape(-1, 3), rgb[:, -b:].reshape(-1, 3)])
    return np.median(border, 0).astype(np.float32)


def background_distance(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel max-channel distance from the photo's border colour.

    Args:
        rgb: HxWx3 uint8 photo.

    Returns:
        HxW float32 distances in grey levels.
    """
    return np.abs(rgb.astype(np.float32) - border_colour(rgb)).max(2)


def item_mask(rgb: np.ndarray, threshold: float = 30.0, close: bool = True, min_part: float = 0.15) -> np.ndarray:
    """The item on a studio photo: pixels far from the border colour, closed; its largest piece and
    every piece at least ``min_part`` of it (the parts of an item standing apart: a box and a bottle).

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
        areas = stats[:, cv2.CC_STAT_AREA].copy()
        areas[0] = 0
        m = (areas >= min_part * areas.max())[lab].astype(np.uint8)
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


def _is_background(
    pixels: np.ndarray, distances: np.ndarray, background: np.ndarray, opens_outside: bool, level: float, shadow_spread: float
) -> bool:
    """Whether a region's pixels (Nx3, and their distances from the background colour) show the
    background: its colour (median distance under ``level``, the rule of :func:`fill_enclosed`), or —
    for a region that opens onto the background around the item, as a gap between parts does — its
    colour in shadow (every channel darkened by the same factor)."""
    if float(np.median(distances)) < level:
        return True
    median = np.median(pixels.astype(np.float32), 0)
    ratio = median / np.maximum(background, 1.0)
    return bool(opens_outside and ratio.max() < 1.0 and ratio.max() - ratio.min() < shadow_spread)


def cutout_mask(rgb: np.ndarray, threshold: float = 30.0, background_level: float = 12.0, shadow_spread: float = 0.025) -> np.ndarray:
    """The item's silhouette for cutting it out of its studio photo: like :func:`full_mask` but the
    background visible between parts (a box and a bottle, a handle's loop) stays out (bool HxW).

    The candidates are the pale regions of the closed mask (within ``threshold`` of the background
    colour); one is background when its median distance from the background colour is under
    ``background_level`` or, for a region opening onto the background around the item, the
    background's in shadow (all channels darkened alike, within ``shadow_spread``), as the gap between
    a box and a bottle is. Pale parts of the item itself — a
    white strap, a cream label carrying the wordmark — stay in: cut out, they would be replaced by a
    random background in the simulated listings, and the genuine null would learn that the wordmark
    may be anything.
    """
    full = full_mask(rgb)
    d = background_distance(rgb)
    n, lab = cv2.connectedComponents((full & ~(d > threshold)).astype(np.uint8))
    if n > 1:
        background = border_colour(rgb)
        outside = cv2.dilate((~full).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        for i in range(1, n):
            region = lab == i
            if _is_background(rgb[region], d[region], background, bool((region & outside).any()), background_level, shadow_spread):
                full[region] = False
    return full


def inspection_mask(rgb: np.ndarray, erode: int, gaps: bool = False) -> np.ndarray:
    """The item's pixels to compare, eroded so the outline band (pose, background) is left out.

    Args:
        rgb: HxWx3 uint8 studio photo at the inspection frame's resolution.
        erode: side in pixels of the square erosion kernel.
        gaps: keep the background visible between the item's parts (:func:`full_mask`, the closed
            silhouette) instead of the item's cut-out (:func:`cutout_mask`). In a listing those gaps
            show the listing's own background, and the erosion then leaves the parts' edges along a
            gap out too, as it does along the outline.

    Returns:
        HxW bool mask.
    """
    full = (full_mask(rgb) if gaps else cutout_mask(rgb)).astype(np.uint8)
    if erode > 1:
        full = np.asarray(cv2.erode(full, np.ones((erode, erode), np.uint8)), dtype=np.uint8)
    return full > 0
