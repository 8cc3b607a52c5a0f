"""Comparison of a registered listing with a template in the template's frame.

Structure: local-contrast-normalised grey levels (LCN), |listing - template|, the minimum over
+-1 px shifts (residual misalignment), blurred; averaged per cell. Colour: the median hue-angle
difference (Lab a*/b* plane) over chromatic item pixels, which brightness and saturation leave alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from authvision.inspection.registration import gray

logger = logging.getLogger(__name__)

LCN_SIGMA = 4.0
BLUR_SIGMA = 2.0
MIN_CHROMA = 12.0


def lcn(g: np.ndarray, sigma: float = LCN_SIGMA) -> np.ndarray:
    """Local contrast normalisation: (g - local mean) / (local std + 8), float32."""
    g = g.astype(np.float32)
    mu = cv2.GaussianBlur(g, (0, 0), sigma)
    return (g - mu) / (np.sqrt(cv2.GaussianBlur((g - mu) ** 2, (0, 0), sigma)) + 8)


def hue_chroma(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hue angle (radians) and chroma of each pixel in the Lab a*/b* plane."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    a, b = lab[..., 1] - 128, lab[..., 2] - 128
    return np.arctan2(b, a), np.hypot(a, b)


def cell_means(x: np.ndarray, m: np.ndarray, cell: int, min_cover: float = 0.6) -> np.ndarray:
    """Mean of ``x`` over the masked pixels of each ``cell`` x ``cell`` block; NaN where under-covered."""
    nh, nw = x.shape[0] // cell, x.shape[1] // cell
    mf = m[: nh * cell, : nw * cell].astype(np.float32)
    cover = mf.reshape(nh, cell, nw, cell).sum((1, 3))
    s = (x[: nh * cell, : nw * cell] * mf).reshape(nh, cell, nw, cell).sum((1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cover > min_cover * cell * cell, s / np.maximum(cover, 1e-6), np.nan).astype(np.float32)


@dataclass(frozen=True)
class TemplateView:
    """What the comparison needs from a template: its frame image and maps derived from it."""

    image: np.ndarray
    mask: np.ndarray
    norm: np.ndarray
    hue: np.ndarray
    chroma: np.ndarray

    @classmethod
    def from_image(cls, image: np.ndarray, mask: np.ndarray) -> "TemplateView":
        """Derives the maps from the frame image (RGB uint8) and inspection mask (bool)."""
        h, c = hue_chroma(image)
        return cls(image, mask.astype(bool), lcn(gray(image)), h, c)


@dataclass(frozen=True)
class Measurement:
    """Raw comparison maps of one listing against one template."""

    diff: np.ndarray
    mask: np.ndarray
    cells: np.ndarray
    hue_angle: float
    warped: np.ndarray


def structure_diff(warped: np.ndarray, norm: np.ndarray, shift: int = 1) -> np.ndarray:
    """|LCN(listing) - LCN(template)|, minimum over shifts of up to ``shift`` px, blurred."""
    n = lcn(gray(warped))
    d = np.abs(n - norm)
    if shift > 0:
        pad = np.pad(n, shift, mode="edge")
        h, w = n.shape
        for dy in range(-shift, shift + 1):
            for dx in range(-shift, shift + 1):
                if dy or dx:
                    sh = pad[shift + dy : shift + dy + h, shift + dx : shift + dx + w]
                    np.minimum(d, np.abs(sh - norm), out=d)
    return cv2.GaussianBlur(d, (0, 0), BLUR_SIGMA)


def hue_angle(warped: np.ndarray, m: np.ndarray, view: TemplateView) -> float:
    """|median hue-angle difference| over item pixels chromatic in both images (0 if too few)."""
    h1, c1 = hue_chroma(warped)
    w = (np.minimum(view.chroma, c1) > MIN_CHROMA) & m
    if w.sum() <= 30:
        return 0.0
    return float(abs(np.median(np.angle(np.exp(1j * (h1[w] - view.hue[w]))))))


def measure(listing: np.ndarray, H: np.ndarray, view: TemplateView, cell: int) -> Measurement:
    """Warps a listing into the template frame with ``H`` and computes the raw comparison maps.

    Args:
        listing: HxWx3 uint8 listing at decode resolution.
        H: homography, listing pixels -> template frame.
        view: the template's maps.
        cell: cell side in pixels of the per-cell channel.
    """
    h, w = view.mask.shape
    warped = cv2.warpPerspective(listing, H, (w, h), flags=cv2.INTER_LINEAR)
    valid = cv2.warpPerspective(np.full(listing.shape[:2], 255, np.uint8), H, (w, h), flags=cv2.INTER_NEAREST) > 0
    m = view.mask & valid
    d = structure_diff(warped, view.norm)
    return Measurement(d, m, cell_means(d, m, cell), hue_angle(warped, m, view), warped)
