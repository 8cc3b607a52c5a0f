"""Registration of a listing photo to a genuine template: ORB keypoints, USAC-MAGSAC homography.

Mirror-aware (re-used listing photos are often mirrored and ORB is not mirror invariant: keypoints
are also detected on the mirror image and mapped back, so the homography may reverse orientation),
two passes (the coarse fit pre-warps the listing into the template frame, keypoints are detected
again there and matched within a small spatial gate, a second fit is composed on top), and checked
(inliers, reprojection error, a sane, well-conditioned homography that covers the item).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistrationParams:
    """Knobs of :func:`register` (defaults are the measured ones)."""

    side: int = 480
    """Longest side in pixels at which listing keypoints are detected."""
    nfeatures: int = 3000
    ratio: float = 0.8
    min_inliers: int = 8
    ransac_px: float = 3.0
    refine_gate_px: float = 12.0
    refine_ransac_px: float = 2.0
    max_reprojection_px: float = 3.0
    max_condition: float = 6.0
    max_scale_spread: float = 3.0
    min_coverage: float = 0.5


@dataclass(frozen=True)
class Keypoints:
    """Keypoint positions (Nx2 float32) and their ORB descriptors (Nx32 uint8)."""

    points: np.ndarray
    descriptors: np.ndarray


@dataclass(frozen=True)
class ListingKeypoints:
    """Keypoints of a listing and of its mirror, both in the listing's own pixel coordinates."""

    plain: Keypoints
    mirror: Keypoints
    shape: tuple[int, int]


@dataclass(frozen=True)
class Registration:
    """Outcome of one registration; ``homography`` maps listing pixels into the template frame."""

    homography: np.ndarray | None
    mirrored: bool
    inliers: int
    reprojection_error: float
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None


def gray(rgb: np.ndarray) -> np.ndarray:
    """Grey levels of an RGB uint8 image."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def detect(image_gray: np.ndarray, mask: np.ndarray | None = None, nfeatures: int = 3000) -> Keypoints:
    """ORB keypoints and descriptors (empty arrays when there are none)."""
    orb = cv2.ORB_create(nfeatures=nfeatures)  # type: ignore[attr-defined]  # missing from the cv2 stubs
    kp, des = orb.detectAndCompute(image_gray, None if mask is None else (mask > 0).astype(np.uint8) * 255)
    if des is None or not kp:
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    return Keypoints(np.array([k.pt for k in kp], dtype=np.float32).reshape(-1, 2), des)


def listing_keypoints(rgb: np.ndarray, params: RegistrationParams = RegistrationParams()) -> ListingKeypoints:
    """Keypoints of a listing at ``params.side`` px and of its mirror, mapped to listing pixels."""
    h, w = rgb.shape[:2]
    s = min(params.side / max(h, w), 1.0)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else rgb
    g = gray(small)
    plain = detect(g, None, params.nfeatures)
    mir = detect(np.ascontiguousarray(g[:, ::-1]), None, params.nfeatures)
    sw = g.shape[1]
    mpts = mir.points.copy()
    mpts[:, 0] = sw - 1 - mpts[:, 0]
    return ListingKeypoints(Keypoints(plain.points / s, plain.descriptors), Keypoints(mpts / s, mir.descriptors), (h, w))


def _ratio_matches(template: Keypoints, listing: Keypoints, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """(listing indices, template indices) of matches passing Lowe's ratio test."""
    if len(template.descriptors) < 2 or len(listing.descriptors) < 2:
        return np.zeros(0, int), np.zeros(0, int)
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(template.descriptors, listing.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    return np.array([m.trainIdx for m in good], int), np.array([m.queryIdx for m in good], int)


def _fit(src: np.ndarray, dst: np.ndarray, px: float) -> tuple[np.ndarray | None, np.ndarray]:
    H, inl = cv2.findHomography(src.astype(np.float32), dst.astype(np.float32), cv2.USAC_MAGSAC, px)
    if H is None or inl is None:
        return None, np.zeros(len(src), bool)
    return H, inl.ravel().astype(bool)


def _project(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), H).reshape(-1, 2)


def _refine(rgb: np.ndarray, H: np.ndarray, tk: Keypoints, search_mask: np.ndarray, p: RegistrationParams):
    """Second pass in the template frame; returns (homography, inliers, reprojection error) or None."""
    fh, fw = search_mask.shape
    warped = cv2.warpPerspective(rgb, H, (fw, fh), flags=cv2.INTER_LINEAR)
    lk = detect(gray(warped), search_mask, p.nfeatures)
    li, ti = _ratio_matches(tk, lk, 0.9)
    if len(li) < 12:
        return None
    q, t = lk.points[li], tk.points[ti]
    near = np.all(np.abs(q - t) < p.refine_gate_px, axis=1)
    if near.sum() < 12:
        return None
    H2, inl = _fit(q[near], t[near], p.refine_ransac_px)
    if H2 is None or inl.sum() < 10:
        return None
    err = float(np.linalg.norm(_project(H2, q[near][inl]) - t[near][inl], axis=1).mean())
    return H2 @ H, int(inl.sum()), err


def homography_problem(H: np.ndarray, listing_shape: tuple[int, int], item_mask: np.ndarray, mirrored: bool, p: RegistrationParams) -> str | None:
    """Why a homography (listing pixels -> template frame) is not a plausible view of the item, or None.

    Checks: finite and invertible; the item's box maps in front of the camera to a convex quad of the
    expected orientation; the local scale is sane and well conditioned with bounded perspective
    spread; the listing covers enough of the template's item.
    """
    if not np.all(np.isfinite(H)) or abs(np.linalg.det(H)) < 1e-12:
        return "degenerate homography"
    Hi = np.linalg.inv(H)
    ys, xs = np.nonzero(item_mask)
    if len(xs) == 0:
        return "template has no item"
    box = np.array([[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.max(), ys.max()], [xs.min(), ys.max()]], dtype=np.float64)
    w = (np.c_[box, np.ones(4)] @ Hi.T)[:, 2]
    if np.any(w <= 0) if w[0] > 0 else np.any(w >= 0):
        return "degenerate homography (item crosses the horizon)"
    quad = _project(Hi, box)
    e = np.roll(quad, -1, axis=0) - quad
    f = np.roll(e, -1, axis=0)
    cross = list(e[:, 0] * f[:, 1] - e[:, 1] * f[:, 0])
    if not (all(c > 0 for c in cross) or all(c < 0 for c in cross)):
        return "degenerate homography (item box not convex)"
    if (cross[0] < 0) != mirrored:
        return "degenerate homography (orientation)"
    scales, conds = [], []
    for pt in box:
        x, y = pt
        d = Hi[2] @ [x, y, 1.0]
        u = Hi[:2] @ [x, y, 1.0]
        J = (Hi[:2, :2] * d - np.outer(u, Hi[2, :2])) / d**2
        sv = np.linalg.svd(J, compute_uv=False)
        scales.append(float(np.sqrt(sv[0] * sv[1])))
        conds.append(float(sv[0] / max(sv[1], 1e-12)))
    if max(conds) > p.max_condition:
        return f"degenerate homography (conditioning {max(conds):.1f} > {p.max_condition:g})"
    if max(scales) / max(min(scales), 1e-12) > p.max_scale_spread:
        return "degenerate homography (perspective)"
    if not 0.02 < float(np.median(scales)) < 50:
        return f"degenerate homography (scale {np.median(scales):.3g})"
    lh, lw = listing_shape
    valid = cv2.warpPerspective(np.full((lh, lw), 255, np.uint8), H, item_mask.shape[::-1], flags=cv2.INTER_NEAREST)
    cover = float((valid[item_mask > 0] > 0).mean())
    if cover < p.min_coverage:
        return f"item mostly outside the listing ({cover:.0%} covered)"
    return None


def register(
    rgb: np.ndarray,
    lk: ListingKeypoints,
    tk: Keypoints,
    item_mask: np.ndarray,
    search_mask: np.ndarray,
    p: RegistrationParams = RegistrationParams(),
) -> Registration:
    """Registers a listing to one template (plain and mirrored, keeps the fit with more inliers).

    Args:
        rgb: the listing, HxWx3 uint8 at decode resolution.
        lk: its keypoints (:func:`listing_keypoints`).
        tk: the template's keypoints in the template frame.
        item_mask: the template's item mask in the template frame (quality checks).
        search_mask: where the refinement pass detects keypoints (the item, dilated).
        p: parameters.

    Returns:
        A :class:`Registration`; ``reason`` says why it failed when it did.
    """
    best: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool] | None = None
    most = 0
    for mirrored, k in ((False, lk.plain), (True, lk.mirror)):
        li, ti = _ratio_matches(tk, k, p.ratio)
        most = max(most, len(li))
        if len(li) < p.min_inliers:
            continue
        H, inl = _fit(k.points[li], tk.points[ti], p.ransac_px)
        if H is not None and (best is None or inl.sum() > best[3].sum()):
            best = (H, k.points[li], tk.points[ti], inl, mirrored)
    if best is None:
        return Registration(None, False, 0, float("nan"), f"too few keypoint matches ({most} < {p.min_inliers})")
    H, src, dst, inl, mirrored = best
    n = int(inl.sum())
    if n < p.min_inliers:
        return Registration(None, mirrored, n, float("nan"), f"too few inliers ({n} < {p.min_inliers})")
    err = float(np.linalg.norm(_project(H, src[inl]) - dst[inl], axis=1).mean())
    refined = _refine(rgb, H, tk, search_mask, p)
    if refined is not None:
        H, n, err = refined
    H = H / H[2, 2]
    if err > p.max_reprojection_px:
        return Registration(None, mirrored, n, err, f"reprojection error too large ({err:.2f} > {p.max_reprojection_px:g} px)")
    problem = homography_problem(H, lk.shape, item_mask, mirrored, p)
    if problem is not None:
        return Registration(None, mirrored, n, err, problem)
    return Registration(H, mirrored, n, err, None)
