"""Authentication points: the marks a brand's experts check, given as named boxes on one genuine photo.

A brand knows where its marks are (the wordmark plate, the emblem, the serial plate...). Given as
boxes on one of a product's genuine reference photos, each point is carried into every template's
frame through that photo's registration to the template, and scored like a channel: the 99th
percentile of the per-pixel null z inside the point, standardised against the same statistic over
the genuine null (out of sample, as every channel is). A point's score is on the channels' scale
(0 = typical genuine, 1 = the null's 95th percentile) and joins the fused score's maximum, so a
small mark that the whole item's statistics drown is still seen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from authvision.errors import InspectionError

__all__ = ["MIN_POINT_PIXELS", "AuthenticationPoint", "point_mask", "point_raw", "points_from_boxes"]

MIN_POINT_PIXELS = 24
"""Compared pixels a point needs in a template's frame (fewer: the point is not scored there)."""
_PERCENTILE = 99.0


@dataclass(frozen=True)
class AuthenticationPoint:
    """A named box (x0, y0, x1, y1, pixels of the photo it was drawn on) that a brand's experts check."""

    name: str
    box: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.box
        if not self.name or not isinstance(self.name, str):
            raise InspectionError("an authentication point needs a name")
        if not all(math.isfinite(v) for v in self.box) or x1 <= x0 or y1 <= y0 or x0 < 0 or y0 < 0:
            raise InspectionError(f"authentication point {self.name!r}: box {list(self.box)} is not x0 < x1, y0 < y1, all ≥ 0")

    def scaled(self, sx: float, sy: float) -> AuthenticationPoint:
        x0, y0, x1, y1 = self.box
        return AuthenticationPoint(self.name, (x0 * sx, y0 * sy, x1 * sx, y1 * sy))


def points_from_boxes(boxes: Mapping[str, Sequence[float]]) -> tuple[AuthenticationPoint, ...]:
    """``{"wordmark": [x0, y0, x1, y1], ...}`` → points, in name order; InspectionError if malformed."""
    if not isinstance(boxes, Mapping) or not boxes:
        raise InspectionError("authentication points must be a non-empty mapping of name -> [x0, y0, x1, y1]")
    out = []
    for name in sorted(boxes):
        box = boxes[name]
        if not isinstance(box, Sequence) or isinstance(box, str) or len(box) != 4:
            raise InspectionError(f"authentication point {name!r}: box must be [x0, y0, x1, y1], got {box!r}")
        try:
            values = tuple(float(v) for v in box)
        except (TypeError, ValueError):
            raise InspectionError(f"authentication point {name!r}: box must hold numbers, got {box!r}") from None
        out.append(AuthenticationPoint(str(name), (values[0], values[1], values[2], values[3])))
    return tuple(out)


def point_mask(point: AuthenticationPoint, H: np.ndarray, compared: np.ndarray) -> np.ndarray:
    """The point's box carried by ``H`` (its photo's pixels → the template frame), within the compared mask."""
    x0, y0, x1, y1 = point.box
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64).reshape(-1, 1, 2)
    quad = cv2.perspectiveTransform(corners, np.asarray(H, np.float64)).reshape(-1, 2)
    mask = np.zeros(compared.shape, np.uint8)
    if np.all(np.isfinite(quad)):
        cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 1)
    return (mask > 0) & compared


def point_raw(z: np.ndarray, point: np.ndarray, compared: np.ndarray) -> float:
    """Raw score of one point: the 99th percentile of pixel z inside it (NaN with too few compared pixels)."""
    inside = point & compared
    if int(inside.sum()) < MIN_POINT_PIXELS:
        return float("nan")
    return float(np.percentile(z[inside], _PERCENTILE))
