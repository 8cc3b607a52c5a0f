"""Simulated listing conditions for the genuine null: a studio photo made to look like a listing.

Generic photo conditions only (no defect of any kind): a cluttered or plain background, the item
smaller in the frame, mirror, perspective, rotation, scale, relighting, noise, blur, saturation,
an occluding banner or watermark, JPEG.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from authvision.inspection.masks import cutout_mask

logger = logging.getLogger(__name__)

JPEG_QUALITY = (55, 91)
"""Range of the JPEG quality of simulated listings (35-91 was tried: a broader null, 0.847 -> 0.807)."""


def procedural_background(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random surface: a lit plain colour, a blurred-noise texture, stripes or clutter of shapes.

    Args:
        shape: (height, width).
        rng: random generator.

    Returns:
        HxWx3 uint8 image.
    """
    h, w = shape
    base = rng.uniform(20, 235, 3)
    kind = int(rng.integers(0, 4))
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    if kind == 1:  # texture: noise blurred at a random scale (fabric, wood, concrete-like)
        noise = rng.normal(0, 1, (h, w, 1)).astype(np.float32)
        sigma = float(rng.uniform(0.7, 6))
        noise = np.asarray(cv2.GaussianBlur(noise, (0, 0), sigma), dtype=np.float32)[..., None]
        img += noise / (noise.std() + 1e-6) * rng.uniform(8, 35) * rng.uniform(0.5, 1.0, 3)
    elif kind == 2:  # stripes or a weave
        period = rng.uniform(4, 40)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        img += wave[..., None] * rng.uniform(10, 40) * rng.uniform(0.3, 1.0, 3)
    elif kind == 3:  # clutter: random rectangles and discs (a desk, a shop shelf)
        for _ in range(int(rng.integers(5, 25))):
            c = tuple(float(v) for v in rng.uniform(0, 255, 3))
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            r = int(rng.integers(max(2, min(h, w) // 30), max(3, min(h, w) // 4)))
            if rng.random() < 0.5:
                cv2.rectangle(img, (x, y), (x + r, y + int(r * rng.uniform(0.3, 2))), c, -1)
            else:
                cv2.circle(img, (x, y), r, c, -1)
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 3))), dtype=np.float32)
    gy = np.linspace(rng.uniform(0.7, 1.2), rng.uniform(0.7, 1.2), h, dtype=np.float32)[:, None, None]
    return np.clip(img * gy, 0, 255).astype(np.uint8)


def _composite(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The item cut from its studio photo, scaled down and placed on a procedural background."""
    h, w = rgb.shape[:2]
    mask = cv2.GaussianBlur(cutout_mask(rgb).astype(np.float32), (0, 0), 1.0)[..., None]
    scale = float(rng.uniform(0.55, 1.0))
    out = procedural_background((h, w), rng).astype(np.float32)
    sw, sh = max(8, int(w * scale)), max(8, int(h * scale))
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
    sm = cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_AREA)[..., None]
    x0, y0 = int(rng.integers(0, w - sw + 1)), int(rng.integers(0, h - sh + 1))
    region = out[y0 : y0 + sh, x0 : x0 + sw]
    out[y0 : y0 + sh, x0 : x0 + sw] = small * sm + region * (1 - sm)
    return out.astype(np.uint8)


def _overlay(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A banner along one edge or a watermark text, as marketplaces and resellers add."""
    h, w = a.shape[:2]
    a = a.copy()
    c = tuple(int(v) for v in rng.integers(0, 256, 3))
    if rng.random() < 0.5:
        bh = int(h * rng.uniform(0.06, 0.14))
        y0 = 0 if rng.random() < 0.5 else h - bh
        cv2.rectangle(a, (0, y0), (w, y0 + bh), c, -1)
        ink = tuple(255 - v for v in c)
        cv2.putText(a, "SALE 50% OFF", (int(w * 0.1), y0 + int(bh * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, bh / 40, ink, 2)
    else:
        x, y = int(w * rng.uniform(0.05, 0.5)), int(h * rng.uniform(0.3, 0.95))
        cv2.putText(a, "@shop" + str(int(rng.integers(10, 999))), (x, y), cv2.FONT_HERSHEY_SIMPLEX, w / 500, c, 2)
    return a


def simulate_listing(rgb: np.ndarray, rng: np.random.Generator, perspective: float = 0.06) -> np.ndarray:
    """A genuine studio photo put through random listing conditions.

    Args:
        rgb: HxWx3 uint8 studio photo.
        rng: random generator (the only source of randomness: deterministic for its state).
        perspective: largest corner jitter as a fraction of the width.

    Returns:
        A new HxWx3 uint8 photo, possibly of another size.
    """
    a = np.ascontiguousarray(rgb)
    if rng.random() < 0.6:
        a = _composite(a, rng)
    if rng.random() < 0.25:
        a = np.ascontiguousarray(a[:, ::-1])
    h0, w0 = a.shape[:2]
    jit = rng.uniform(-perspective, perspective, (4, 2)).astype(np.float32) * w0
    src = np.array([[0, 0], [w0, 0], [w0, h0], [0, h0]], dtype=np.float32)
    a = cv2.warpPerspective(a, cv2.getPerspectiveTransform(src, src + jit), (w0, h0), borderMode=cv2.BORDER_REPLICATE)
    fill = tuple(int(v) for v in rng.integers(0, 256, 3))
    rot = cv2.getRotationMatrix2D((w0 / 2, h0 / 2), float(rng.uniform(-14, 14)), 1.0)
    a = cv2.warpAffine(a, rot, (w0, h0), flags=cv2.INTER_CUBIC, borderValue=fill)
    s = float(rng.uniform(0.6, 1.0))
    a = cv2.resize(a, (max(16, int(w0 * s)), max(16, int(h0 * s))), interpolation=cv2.INTER_AREA)
    f = a.astype(np.float32)
    gx = np.linspace(rng.uniform(0.75, 1.1), rng.uniform(0.75, 1.1), f.shape[1], dtype=np.float32)[None, :, None]
    tint = rng.uniform(0.94, 1.06, 3).astype(np.float32)
    f = f * gx * tint * float(rng.uniform(0.85, 1.1)) + rng.normal(0, rng.uniform(0, 6), f.shape).astype(np.float32)
    a = np.clip(f, 0, 255).astype(np.uint8)
    sigma = float(rng.uniform(0, 1.3))
    if sigma > 0.2:
        a = cv2.GaussianBlur(a, (0, 0), sigma)
    grey = cv2.cvtColor(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB).astype(np.float32)
    sat = float(rng.uniform(0.8, 1.2))
    a = np.clip(grey + (a.astype(np.float32) - grey) * sat, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        a = _overlay(a, rng)
    ok, buf = cv2.imencode(".jpg", a[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*JPEG_QUALITY))])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    return a if decoded is None else np.ascontiguousarray(decoded[..., ::-1])
