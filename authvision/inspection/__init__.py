"""Region inspection: register a listing to a product's genuine references and compare the marks.

A listing photo is registered to genuine studio templates of its product (ORB keypoints,
USAC-MAGSAC homography, mirror-aware, two passes, quality-checked), compared in the template's
frame (local-contrast-normalised structure per pixel and per cell, hue relative to the template)
and scored against a *genuine null*: the same comparison over the product's other genuine
references put through simulated listing conditions. No fake photo is used anywhere.

    data = build_product_inspection(genuine_photos, product="p")
    result = inspect(listing, data)   # result.score, result.scores["structure" | "cells" | "colour" | ...]

Scores are on the null's scale (0 = typical genuine, 1 = the null's 95th percentile). Demo kit
(seed 0): fake ROC-AUC 0.83 — see training/RESEARCH.md, "Region inspection".
"""

from authvision.inspection.inspector import SCORE_CHANNELS, InspectionResult, PointScore, Region, inspect, inspect_best
from authvision.inspection.points import AuthenticationPoint, points_from_boxes
from authvision.inspection.product import InspectionParams, ProductInspection, build_product_inspection
from authvision.inspection.registration import RegistrationParams

__all__ = [
    "SCORE_CHANNELS",
    "AuthenticationPoint",
    "InspectionParams",
    "InspectionResult",
    "PointScore",
    "ProductInspection",
    "Region",
    "RegistrationParams",
    "build_product_inspection",
    "inspect",
    "inspect_best",
    "points_from_boxes",
]
