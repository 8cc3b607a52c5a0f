"""Registration of a listing photo to a genuine template: ORB keypoints, USAC-MAGSAC homography.

Mirror-aware (re-used listing photos are often mirrored and ORB is not mirror invariant: keypoints
are also detected on the mirror image and mapped back, so the homography may reverse orientation),
two passes (the coarse fit pre-warps the listing into the template frame, keypoints are detected
again there and matched within a small spatial gate, a second fit is composed on top), and checked
(inliers, reprojection error, a sane, well-conditioned homography that covers the item).

Speed (:func:`register_templates`): descriptors are matched with an exact FAISS binary index (the
same nearest neighbours as OpenCV's brute-force matcher, several times cheaper); one template (the
anchor) is registered from scratch, plain and mirrored, and the others start from the anchor's
homography composed with template-to-template homographies computed when the product's data is
built, so that only their second pass runs (a registration from scratch is the fallback when it
fails); the second pass detects 1000 keypoints on a 3-level pyramid (the pre-warped listing is
already at the template's scale) and matches them to template keypoints detected the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import cv2
import faiss
import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistrationParams:
    """Knobs of :func:`register` (defaults are the measured ones)."""

    side: int = 480
    """Longest side in pixels at which listing keypoints are detected."""
    nfeatures: int = 3000
    """ORB keypoints of a template."""
    listing_features: int = 3000
    """ORB keypoints of the listing (and of its mirror) for the coarse pass."""
    ratio: float = 0.8
    min_inliers: int = 8
    ransac_px: float = 3.0
    refine_gate_px: float = 12.0
    refine_ransac_px: float = 2.0
    max_reprojection_px: float = 3.0
    max_condition: float = 6.0
    max_scale_spread: float = 3.0
    min_coverage: float = 0.5
    mirror_inliers: int = 0
    """The mirror is tried only when the plain coarse fit has fewer inliers than this (0: always). Off:
    on near-symmetric items a mirrored photo's plain fit often reaches 30 inliers, and the demo kit's
    fake ROC-AUC fell from 0.85 to 0.61 on its perfume and handbag with 30."""
    derive: bool = True
    """Start the other templates from the anchor template's fit and the template-to-template homographies."""
    refine_features: int = 1000
    """ORB keypoints of the pre-warped listing in the second pass."""
    refine_levels: int = 3
    """ORB pyramid levels in the second pass (the pre-warped listing is already at the template's scale)."""
    retry_side: int = 960
    """A listing that registers to no template with keypoints detected at ``side`` px is tried again at its
    decode resolution, up to this longest side (0: never). A small item in clutter has few keypoints at
    480 px: on the demo kit 5 of 218 known test listings registered to none of their product's templates,
    3 of them at 800 px (38 ms each, paid only by listings that fail)."""
    retry_features: int = 5000
    """ORB keypoints of the listing in that second try."""
    refine_alike: bool = True
    """Second pass against template keypoints detected like the pre-warped listing's (``refine_features``
    on ``refine_levels`` levels) instead of the template's coarse-pass keypoints."""


@dataclass(frozen=True)
class Keypoints:
    """Keypoint positions (Nx2 float32) and their ORB descriptors (Nx32 uint8)."""

    points: np.ndarray
    descriptors: np.ndarray

    @cached_property
    def index(self) -> faiss.IndexBinaryFlat:
        """Exact Hamming-distance index of the descriptors (built on first use)."""
        ix = faiss.IndexBinaryFlat(8 * self.descriptors.shape[1])
        if len(self.descriptors):
            ix.add(np.ascontiguousarray(self.descriptors, dtype=np.uint8))
        return ix


class ListingKeypoints:
    """Keypoints of a listing and of its mirror, both in the listing's own pixel coordinates.

    The mirror's keypoints are detected on first use (most listings are not mirrored)."""

    def __init__(self, rgb: np.ndarray, small_gray: np.ndarray, scale: float, nfeatures: int) -> None:
        self._rgb = rgb
        self._gray = small_gray
        self._scale = scale
        self._nfeatures = nfeatures
        self.shape: tuple[int, int] = (rgb.shape[0], rgb.shape[1])
        k = detect(small_gray, None, nfeatures)
        self.plain = Keypoints(k.points / scale, k.descriptors)

    @property
    def flip(self) -> np.ndarray:
        """The mirror as a homography of listing pixels (x -> c - x)."""
        c = (self._gray.shape[1] - 1) / self._scale
        return np.array([[-1.0, 0.0, c], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])

    @cached_property
    def mirror(self) -> Keypoints:
        """Keypoints of the mirrored listing, mapped back to (unmirrored) listing pixels."""
        k = detect(np.ascontiguousarray(self._gray[:, ::-1]), None, self._nfeatures)
        pts = k.points.copy()
        pts[:, 0] = self._gray.shape[1] - 1 - pts[:, 0]
        return Keypoints(pts / self._scale, k.descriptors)

    @cached_property
    def gray(self) -> np.ndarray:
        """Grey levels of the listing at decode resolution."""
        return gray(self._rgb)


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


@dataclass(frozen=True)
class Target:
    """What registration needs of one template: keypoints, item mask (checks), search mask (second pass)."""

    keypoints: Keypoints
    item: np.ndarray
    search: np.ndarray
    refine_keypoints: Keypoints | None = None
    """Keypoints of the second pass (None: ``keypoints``)."""


def make_target(frame: np.ndarray, keypoints: Keypoints, item: np.ndarray, search: np.ndarray, p: RegistrationParams) -> Target:
    """A template's :class:`Target` from its frame image (RGB) and masks; with ``p.refine_alike`` its
    second-pass keypoints are detected here (deterministic, a few ms: not persisted)."""
    refine = detect(gray(frame), item, p.refine_features, p.refine_levels) if p.refine_alike else None
    return Target(keypoints, item, search, refine)


def gray(rgb: np.ndarray) -> np.ndarray:
    """Grey levels of an RGB uint8 image."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def detect(image_gray: np.ndarray, mask: np.ndarray | None = None, nfeatures: int = 3000, nlevels: int = 8) -> Keypoints:
    """ORB keypoints and descriptors (empty arrays when there are none)."""
    orb = cv2.ORB_create(nfeatures=nfeatures, nlevels=nlevels)  # type: ignore[attr-defined]  # missing from the cv2 stubs
    kp, des = orb.detectAndCompute(image_gray, None if mask is None else (mask > 0).astype(np.uint8) * 255)
    if des is None or not kp:
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    return Keypoints(np.array([k.pt for k in kp], dtype=np.float32).reshape(-1, 2), des)


def listing_keypoints(rgb: np.ndarray, params: RegistrationParams = RegistrationParams()) -> ListingKeypoints:
    """Keypoints of a listing at ``params.side`` px (and, on demand, of its mirror), in listing pixels."""
    h, w = rgb.shape[:2]
    s = min(params.side / max(h, w), 1.0)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else rgb
    return ListingKeypoints(rgb, gray(small), s, params.listing_features)


def _ratio_matches(template: Keypoints, listing: Keypoints, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """(listing indices, template indices) of matches passing Lowe's ratio test.

    Each template descriptor's two nearest listing descriptors (Hamming), from an exact FAISS index:
    the pairs OpenCV's brute-force ``knnMatch(template, listing, k=2)`` finds, at a fraction of its cost."""
    if len(template.descriptors) < 2 or len(listing.descriptors) < 2:
        return np.zeros(0, int), np.zeros(0, int)
    # One OpenMP thread: a search takes a few ms, so threads only spin (measured: 10x the CPU on a busy
    # machine), and listings are inspected in parallel already. The setting is the calling thread's own.
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        dist, idx = listing.index.search(np.ascontiguousarray(template.descriptors, dtype=np.uint8), 2)
    finally:
        faiss.omp_set_num_threads(threads)
    good = (dist[:, 0] < ratio * dist[:, 1]) & (idx[:, 0] >= 0) & (idx[:, 1] >= 0)
    return idx[good, 0].astype(int), np.nonzero(good)[0].astype(int)


def _fit(src: np.ndarray, dst: np.ndarray, px: float) -> tuple[np.ndarray | None, np.ndarray]:
    H, inl = cv2.findHomography(src.astype(np.float32), dst.astype(np.float32), cv2.USAC_MAGSAC, px)
    if H is None or inl is None:
        return None, np.zeros(len(src), bool)
    return H, inl.ravel().astype(bool)


def _project(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), H).reshape(-1, 2)


def refine(lk: ListingKeypoints, H: np.ndarray, target: Target, p: RegistrationParams) -> tuple[np.ndarray, int, float] | None:
    """Second pass in the template frame from a starting homography (listing pixels -> frame), with no
    quality checks; returns (homography, inliers, reprojection error), or None on too little support."""
    fh, fw = target.search.shape
    warped = cv2.warpPerspective(lk.gray, H, (fw, fh), flags=cv2.INTER_LINEAR)
    wk = detect(warped, target.search, p.refine_features, p.refine_levels)
    tk = target.keypoints if target.refine_keypoints is None else target.refine_keypoints
    li, ti = _ratio_matches(tk, wk, 0.9)
    q, t = wk.points[li], tk.points[ti]
    if len(q) < 12:
        return None
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
    x0, y0, bw, bh = cv2.boundingRect((item_mask > 0).astype(np.uint8))
    if bw == 0 or bh == 0:
        return "template has no item"
    x1, y1 = x0 + bw - 1, y0 + bh - 1
    box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
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


def _coarse(lk: ListingKeypoints, tk: Keypoints, p: RegistrationParams):
    """Coarse fit (plain, and mirrored when the plain fit is weak): ((H, src, dst, inliers, mirrored) or None, most matches)."""
    best: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool] | None = None
    most = 0
    for mirrored in (False, True):
        if mirrored and best is not None and 0 < p.mirror_inliers <= int(best[3].sum()):
            break
        k = lk.mirror if mirrored else lk.plain
        li, ti = _ratio_matches(tk, k, p.ratio)
        most = max(most, len(li))
        if len(li) < p.min_inliers:
            continue
        if mirrored:
            # fitted in the mirror's own coordinates, then composed with the flip: USAC's sample checks
            # refuse orientation-reversing samples, so a direct fit of the mirrored matches often fails
            flip = lk.flip
            H, inl = _fit(_project(flip, k.points[li]), tk.points[ti], p.ransac_px)
            H = None if H is None else H @ flip
        else:
            H, inl = _fit(k.points[li], tk.points[ti], p.ransac_px)
        if H is not None and (best is None or inl.sum() > best[3].sum()):
            best = (H, k.points[li], tk.points[ti], inl, mirrored)
    return best, most


def _checked(H: np.ndarray, n: int, err: float, mirrored: bool, lk: ListingKeypoints, target: Target, p: RegistrationParams) -> Registration:
    H = H / H[2, 2]
    if err > p.max_reprojection_px:
        return Registration(None, mirrored, n, err, f"reprojection error too large ({err:.2f} > {p.max_reprojection_px:g} px)")
    problem = homography_problem(H, lk.shape, target.item, mirrored, p)
    if problem is not None:
        return Registration(None, mirrored, n, err, problem)
    return Registration(H, mirrored, n, err, None)


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
        rgb: the listing, HxWx3 uint8 at decode resolution (the one ``lk`` was computed from).
        lk: its keypoints (:func:`listing_keypoints`).
        tk: the template's keypoints in the template frame.
        item_mask: the template's item mask in the template frame (quality checks).
        search_mask: where the refinement pass detects keypoints (the item, dilated).
        p: parameters (``mirror_inliers``: the mirror is tried only when the plain fit is weak).

    Returns:
        A :class:`Registration`; ``reason`` says why it failed when it did.
    """
    return _register(lk, Target(tk, item_mask, search_mask), p)


def _register(lk: ListingKeypoints, target: Target, p: RegistrationParams) -> Registration:
    best, most = _coarse(lk, target.keypoints, p)
    if best is None:
        return Registration(None, False, 0, float("nan"), f"too few keypoint matches ({most} < {p.min_inliers})")
    H, src, dst, inl, mirrored = best
    n = int(inl.sum())
    if n < p.min_inliers:
        return Registration(None, mirrored, n, float("nan"), f"too few inliers ({n} < {p.min_inliers})")
    err = float(np.linalg.norm(_project(H, src[inl]) - dst[inl], axis=1).mean())
    refined = refine(lk, H, target, p)
    if refined is not None:
        H, n, err = refined
    return _checked(H, n, err, mirrored, lk, target, p)


def register_from(lk: ListingKeypoints, start: np.ndarray, mirrored: bool, target: Target, p: RegistrationParams) -> Registration:
    """Registers a listing to a template from a starting homography (listing pixels -> template frame):
    the second pass only. Fails (``reason`` set) when the second pass finds too little support."""
    if not np.all(np.isfinite(start)) or abs(np.linalg.det(start)) < 1e-12:
        return Registration(None, mirrored, 0, float("nan"), "degenerate starting homography")
    refined = refine(lk, start, target, p)
    if refined is None:
        return Registration(None, mirrored, 0, float("nan"), "second pass found too few matches near the derived fit")
    H, n, err = refined
    return _checked(H, n, err, mirrored, lk, target, p)


def register_anchor(lk: ListingKeypoints, targets: Sequence[Target], p: RegistrationParams = RegistrationParams()) -> tuple[int, list[Registration]]:
    """The templates registered from scratch, in order, up to the first that registers (the anchor).

    Returns:
        (index of the anchor, or -1 when none registers; the registrations tried).
    """
    tried: list[Registration] = []
    for i in range(len(targets)):
        tried.append(_register(lk, targets[i], p))
        if tried[-1].ok:
            return i, tried
    return -1, tried


def register_templates(
    lk: ListingKeypoints,
    targets: Sequence[Target],
    links: np.ndarray | None,
    p: RegistrationParams = RegistrationParams(),
    anchor: tuple[int, list[Registration]] | None = None,
) -> list[Registration]:
    """Registers a listing to each of a product's templates.

    Without ``links`` (or with ``p.derive`` off) every template is registered from scratch
    (:func:`register`). Otherwise the first template that registers from scratch is the anchor, and
    every other one starts from the anchor's homography composed with ``links[anchor, i]`` (anchor
    frame -> template ``i`` frame; an entry whose ``[2, 2]`` is 0 means "no link") and runs the second
    pass only, falling back to a registration from scratch when that fails.

    ``anchor``: what :func:`register_anchor` returned for this listing and these targets, when the
    caller has it already (it is not computed twice).

    Returns:
        One :class:`Registration` per target, in order.
    """
    full = lambda i: _register(lk, targets[i], p)  # noqa: E731
    if links is None or not p.derive or len(targets) < 2:
        done = {} if anchor is None else dict(enumerate(anchor[1]))
        return [done[i] if i in done else full(i) for i in range(len(targets))]
    first, tried = register_anchor(lk, targets, p) if anchor is None else anchor
    regs: list[Registration | None] = [*tried, *[None] * (len(targets) - len(tried))]
    if first < 0:  # every template was tried from scratch
        return list(tried)
    a = regs[first]
    assert a is not None and a.homography is not None
    for i in range(len(targets)):
        if i == first:
            continue
        link = links[first, i]
        derived = register_from(lk, link @ a.homography, a.mirrored, targets[i], p) if link[2, 2] != 0 else None
        if derived is not None and derived.ok:
            regs[i] = derived
        elif regs[i] is None:
            regs[i] = full(i)
    return [r for r in regs if r is not None]


def link_templates(frames: Sequence[np.ndarray], targets: Sequence[Target], p: RegistrationParams = RegistrationParams()) -> np.ndarray:
    """Template-to-template homographies (T x T x 3 x 3): ``[i, j]`` maps template ``i``'s frame into
    template ``j``'s, registered like a listing (plain only); all zeros where ``i`` does not register to ``j``."""
    n = len(targets)
    links = np.zeros((n, n, 3, 3))
    plain = RegistrationParams(**{**p.__dict__, "mirror_inliers": 1})
    for i in range(n):
        links[i, i] = np.eye(3)
        lk = listing_keypoints(frames[i], plain)
        for j in range(n):
            if j != i:
                reg = _register(lk, targets[j], plain)
                if reg.ok and reg.homography is not None and not reg.mirrored:
                    links[i, j] = reg.homography
                else:
                    logger.debug("template %d does not register to template %d: %s", i, j, reg.reason)
    return links
