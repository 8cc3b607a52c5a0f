"""How an item is photographed: the frame, a studio backdrop, the pose, placement, shadow, light and noise.

The building blocks that :mod:`~authvision.brandkit.references` and
:mod:`~authvision.brandkit.listings` compose, each drawing only from the generator it is given.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

PHOTO_SIZE = 800
"""Long side, in pixels, of every photo the kit writes."""


def _frame_mask(item: Image.Image, pos: tuple[float, float], frame: tuple[int, int]) -> Image.Image:
    """The item's pixels (alpha > 127) where :func:`_composite` pastes it, in a frame of size ``frame``."""
    mask = Image.new("L", frame, 0)
    mask.paste(item.getchannel("A").point(lambda v: 255 if v > 127 else 0), (round(pos[0]), round(pos[1])))
    return mask


def _frame(rng: np.random.Generator, size: int, square: float) -> tuple[int, int]:
    """Photo size: square, landscape 4:3 or portrait 3:4, ``size`` on the long side."""
    u = rng.uniform()
    short = round(size * 3 / 4)
    if u < square:
        return size, size
    return (size, short) if u < square + (1 - square) / 2 else (short, size)


def _studio_backdrop(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A seamless paper sweep: near-white or light grey, lighter towards the floor, soft vignette."""
    level = rng.uniform(228, 252)
    colour = np.clip(level + rng.uniform(-3, 3, 3), 0, 255).astype(np.float32)
    fall = rng.uniform(0.03, 0.08)
    field = _smooth_field(w, h, lambda u, v: (1.0 - fall * (1 - v)) * (1.0 - 0.1 * ((u - 0.5) ** 2 + (v - 0.5) ** 2)))
    arr = colour[None, None, :] * field[:, :, None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _perspective_coeffs(dst: np.ndarray, src: np.ndarray) -> tuple[float, ...]:
    """Coefficients of Pillow's PERSPECTIVE transform mapping output points ``dst`` to input ``src``."""
    rows, rhs = [], []
    for (X, Y), (x, y) in zip(dst, src):
        rows.append([X, Y, 1, 0, 0, 0, -X * x, -Y * x])
        rows.append([0, 0, 0, X, Y, 1, -X * y, -Y * y])
        rhs += [x, y]
    return tuple(np.linalg.solve(np.asarray(rows, np.float64), np.asarray(rhs, np.float64)).tolist())


def _pose(item: Image.Image, rotation: float, perspective: float, rng: np.random.Generator) -> Image.Image:
    """Rotate ``item`` by ``rotation`` degrees and tilt it (corners moved up to ``perspective`` x size)."""
    w, h = item.size
    src = np.array([(0, 0), (w, 0), (w, h), (0, h)], np.float64)
    a = math.radians(rotation)
    centred = src - (w / 2, h / 2)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    dst = centred @ rot.T + rng.uniform(-perspective, perspective, (4, 2)) * max(w, h)
    dst -= dst.min(axis=0) - 2
    size = (int(math.ceil(dst[:, 0].max())) + 2, int(math.ceil(dst[:, 1].max())) + 2)
    coeffs = _perspective_coeffs(dst, src)
    # premultiplied alpha, so transparent pixels do not bleed dark into the edges
    warped = item.convert("RGBa").transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
    return warped.convert("RGBA")


def _place(
    rng: np.random.Generator, item: tuple[int, int], frame: tuple[int, int], crop: float
) -> tuple[float, float, float]:
    """Top-left corner for the item, and the share of its width or height left outside the frame."""
    (iw, ih), (w, h) = item, frame
    x = rng.uniform(0, w - iw) if w >= iw else (w - iw) / 2
    y = rng.uniform(0, h - ih) if h >= ih else (h - ih) / 2
    side = int(rng.integers(4))
    if crop > 0:
        if side == 0:
            x = -crop * iw
        elif side == 1:
            x = w - (1 - crop) * iw
        elif side == 2:
            y = -crop * ih
        else:
            y = h - (1 - crop) * ih
    out_x = max(0.0, -x, x + iw - w) / iw
    out_y = max(0.0, -y, y + ih - h) / ih
    return x, y, max(out_x, out_y)


def _shadow(
    r: np.random.Generator, size: int, opacity: tuple[float, float], blur: tuple[float, float], offset: float
) -> tuple[float, float, float, float]:
    """A drop shadow: opacity, blur radius and offset (pixels), cast in a random direction."""
    angle = r.uniform(0, 2 * math.pi)
    dx, dy = math.cos(angle) * offset * size, math.sin(angle) * offset * size
    return (r.uniform(*opacity), r.uniform(*blur) * size, dx, dy)


def _composite(
    bg: Image.Image, item: Image.Image, pos: tuple[float, float], shadow: tuple[float, float, float, float]
) -> Image.Image:
    """Paste ``item`` (RGBA) at ``pos`` over its shadow (opacity, blur, dx, dy) on ``bg``."""
    opacity, blur, dx, dy = shadow
    out = bg.copy()
    alpha = item.getchannel("A")
    pad = int(3 * blur) + 2
    sh = Image.new("L", (item.width + 2 * pad, item.height + 2 * pad), 0)
    sh.paste(alpha, (pad, pad))
    sh = sh.filter(ImageFilter.GaussianBlur(blur)).point(lambda v: int(v * opacity))
    sx, sy = round(pos[0] + dx) - pad, round(pos[1] + dy) - pad
    out.paste((0, 0, 0), (sx, sy, sx + sh.width, sy + sh.height), sh)
    x, y = round(pos[0]), round(pos[1])
    out.paste(item.convert("RGB"), (x, y, x + item.width, y + item.height), alpha)
    return out


def _light(img: Image.Image, rng: np.random.Generator, strength: float, cast: float, hotspot: float) -> Image.Image:
    """A lighting gradient of ``strength`` in a random direction, a colour cast, a flash hotspot."""
    w, h = img.size
    angle = rng.uniform(0, 2 * math.pi)
    cx, cy = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)
    if strength == 0 and cast == 0 and hotspot == 0:
        return img
    ca, sa = math.cos(angle), math.sin(angle)

    def gain(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        ramp = 2.0 * strength * ((u - 0.5) * ca + (v - 0.5) * sa) / 1.42
        return 1.0 + ramp + hotspot * np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / 0.02)

    field = _smooth_field(w, h, gain)
    gains = np.array([1 + cast, 1.0, 1 - cast], np.float32)
    arr = np.asarray(img, np.float32) * field[:, :, None] * gains[None, None, :]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _smooth_field(w: int, h: int, f) -> np.ndarray:
    """``f`` evaluated on a coarse grid and upsampled: lighting varies slowly, so this is exact enough."""
    gw, gh = max(2, w // 16), max(2, h // 16)
    v, u = np.mgrid[0 : 1 : gh * 1j, 0 : 1 : gw * 1j].astype(np.float32)
    coarse = Image.fromarray(np.asarray(f(u, v), np.float32), "F")
    return np.asarray(coarse.resize((w, h), Image.Resampling.BILINEAR), np.float32)


def _noise(img: Image.Image, rng: np.random.Generator, sigma: float) -> Image.Image:
    """Sensor noise: per-pixel luminance noise plus coarser, weaker chroma noise."""
    h, w = img.height, img.width
    luma = rng.standard_normal((h, w, 1), dtype=np.float32) * sigma
    chroma = rng.standard_normal(((h + 1) // 2, (w + 1) // 2, 3), dtype=np.float32) * (0.5 * sigma)
    chroma = chroma.repeat(2, axis=0).repeat(2, axis=1)[:h, :w]
    arr = np.asarray(img, np.float32) + luma + chroma
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
