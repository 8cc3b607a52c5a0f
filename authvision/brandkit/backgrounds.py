"""Backgrounds that items are photographed on: procedural surfaces and real photos.

The background kinds are split into two disjoint pools: ``"train"`` (the surfaces seized fakes are
photographed on, and what training augmentation may use) and ``"test"`` (used only by listing
photos), so that an evaluation can report on backgrounds never seen in training. Real photos come
from scikit-image's bundled data; without scikit-image only the procedural kinds are available.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np
from PIL import Image

from authvision.errors import MissingExtraError

__all__ = [
    "BACKGROUND_POOLS",
    "PHOTO_BACKGROUNDS",
    "PROCEDURAL_BACKGROUNDS",
    "available_backgrounds",
    "render_background",
]

logger = logging.getLogger(__name__)

PROCEDURAL_BACKGROUNDS: dict[str, tuple[str, ...]] = {
    "train": ("table", "concrete", "tiles", "linen", "paper"),
    "test": ("wood", "fabric", "marble", "carpet", "gradient"),
}
# Background name -> scikit-image sample photo (authvision.sample_photos name).
PHOTO_BACKGROUNDS: dict[str, dict[str, str]] = {
    "train": {"brick": "brick", "grass": "grass", "gravel": "gravel", "camera": "camera", "page": "page"},
    "test": {
        "coffee": "coffee",
        "chelsea": "chelsea",
        "astronaut": "astronaut",
        "rocket": "rocket",
        "motorcycle": "stereo_motorcycle_left",
    },
}
BACKGROUND_POOLS: dict[str, tuple[str, ...]] = {
    pool: PROCEDURAL_BACKGROUNDS[pool] + tuple(PHOTO_BACKGROUNDS[pool]) for pool in ("train", "test")
}
"""Background names by pool; the pools are disjoint."""

_PHOTO_SOURCE = {name: src for names in PHOTO_BACKGROUNDS.values() for name, src in names.items()}


@functools.cache
def photos_available() -> bool:
    """Whether scikit-image (the source of the photo backgrounds) can be imported."""
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        logger.warning("scikit-image is not installed: brand-kit backgrounds are procedural only")
        return False
    return True


def available_backgrounds(pool: str) -> tuple[str, ...]:
    """The backgrounds of ``pool`` that can be rendered here (photos need scikit-image)."""
    if pool not in BACKGROUND_POOLS:
        raise ValueError(f"unknown background pool {pool!r}; choose from {', '.join(BACKGROUND_POOLS)}")
    if photos_available():
        return BACKGROUND_POOLS[pool]
    return PROCEDURAL_BACKGROUNDS[pool]


def render_background(name: str, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """An RGB background of kind ``name`` and ``size`` (width, height).

    Raises:
        ValueError: unknown ``name`` or a non-positive size.
        ImportError: a photo background without scikit-image installed.
    """
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    if name in _PROCEDURAL:
        arr = _PROCEDURAL[name](rng, height, width)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if name in _PHOTO_SOURCE:
        return _photo(_PHOTO_SOURCE[name], rng, width, height)
    known = ", ".join(sorted([*_PROCEDURAL, *_PHOTO_SOURCE]))
    raise ValueError(f"unknown background {name!r}; choose from {known}")


def _photo(source: str, rng: np.random.Generator, width: int, height: int) -> Image.Image:
    from authvision.sample_photos import sample_photo

    if not photos_available():
        raise MissingExtraError(
            f"photo background {source!r} needs scikit-image, which is not installed: it comes with authvision's [report] extra",
            extra="report", module="skimage",
        )
    img = Image.fromarray(sample_photo(source))
    # the largest crop of the frame's aspect, shrunk at random, somewhere in the photo
    aspect = width / height
    cw, ch = (img.width, img.width / aspect) if img.width / img.height < aspect else (img.height * aspect, img.height)
    f = rng.uniform(0.55, 1.0)
    cw, ch = cw * f, ch * f
    x0, y0 = rng.uniform(0, img.width - cw), rng.uniform(0, img.height - ch)
    out = img.resize((width, height), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch), reducing_gap=2.0)
    if rng.uniform() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out


# --- procedural surfaces (float arrays, HxWx3, 0-255) --------------------------------------------


def _noise(rng: np.random.Generator, h: int, w: int, cells_y: float, cells_x: float) -> np.ndarray:
    """Smooth value noise in [0, 1]: a random grid upsampled bicubically."""
    gy, gx = max(2, int(math.ceil(cells_y)) + 1), max(2, int(math.ceil(cells_x)) + 1)
    grid = Image.fromarray(rng.random((gy, gx), dtype=np.float32), "F")
    return np.asarray(grid.resize((w, h), Image.Resampling.BICUBIC), np.float32)


def _fbm(rng: np.random.Generator, h: int, w: int, cells: float, octaves: int = 4) -> np.ndarray:
    total, amp, norm = np.zeros((h, w), np.float32), 1.0, 0.0
    for k in range(octaves):
        total += amp * _noise(rng, h, w, cells * 2**k * h / max(h, w), cells * 2**k * w / max(h, w))
        norm += amp
        amp *= 0.5
    return total / norm


def _tint(rng: np.random.Generator, base: tuple[float, float, float], spread: float = 12.0) -> np.ndarray:
    return np.clip(np.asarray(base, np.float32) + rng.uniform(-spread, spread, 3), 0, 255)


def _shade(colour: np.ndarray, field: np.ndarray) -> np.ndarray:
    return field[:, :, None] * colour[None, None, :]


def _table(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    bases = [(236, 234, 228), (196, 198, 200), (214, 200, 176), (60, 60, 62), (150, 118, 86)]
    colour = _tint(rng, bases[rng.integers(len(bases))], 8)
    field = 0.96 + 0.06 * _fbm(rng, h, w, 3, 3) + rng.normal(0, 0.008, (h, w)).astype(np.float32)
    return _shade(colour, field)


def _concrete(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    colour = np.clip(np.float32(rng.uniform(120, 185)) + rng.uniform(-4, 4, 3), 0, 255).astype(np.float32)
    field = 0.8 + 0.3 * _fbm(rng, h, w, 6, 5) + rng.normal(0, 0.03, (h, w)).astype(np.float32)
    specks = (rng.random((h, w), dtype=np.float32) < 0.01) * rng.uniform(-0.25, 0.2)
    return _shade(colour, field + specks)


def _tiles(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    colour = _tint(rng, [(225, 225, 220), (190, 205, 210), (120, 90, 70)][rng.integers(3)], 10)
    period = int(rng.integers(90, 200))
    grout = int(rng.integers(3, 7))
    yy, xx = np.mgrid[0:h, 0:w]
    ox, oy = rng.integers(period, size=2)
    tx, ty = (xx + ox) // period, (yy + oy) // period
    tone = rng.uniform(0.93, 1.04, (h // period + 3, w // period + 3)).astype(np.float32)
    field = tone[ty, tx] * (0.97 + 0.05 * _fbm(rng, h, w, 4, 3))
    lines = (((xx + ox) % period) < grout) | (((yy + oy) % period) < grout)
    field = np.where(lines, 0.72, field)
    return _shade(colour, field)


def _weave(rng: np.random.Generator, h: int, w: int, period: float, colour: np.ndarray, relief: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = math.radians(rng.uniform(-10, 10))
    u = xx * math.cos(a) + yy * math.sin(a)
    v = -xx * math.sin(a) + yy * math.cos(a)
    warp = np.sin(math.pi * u / period) ** 2
    weft = np.sin(math.pi * v / period) ** 2
    over = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    field = 1.0 - relief + relief * np.where(over, warp, weft)
    slub = 0.92 + 0.16 * _noise(rng, h, w, h / (period * 6), 3)
    folds = 0.85 + 0.2 * _fbm(rng, h, w, 2, 2)
    return _shade(colour, field * slub * folds)


def _linen(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return _weave(rng, h, w, rng.uniform(2.5, 4.5), _tint(rng, (222, 210, 186), 12), 0.18)


def _fabric(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    hue_rgb = rng.uniform(40, 220, 3)
    return _weave(rng, h, w, rng.uniform(4, 9), hue_rgb.astype(np.float32), 0.35)


def _paper(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    colour = _tint(rng, [(245, 243, 236), (190, 150, 105)][rng.integers(2)], 6)
    fibres = _noise(rng, h, w, h / 3, w / 40)
    field = 0.95 + 0.05 * _fbm(rng, h, w, 3, 3) + 0.03 * (fibres - 0.5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a, c = rng.uniform(0, math.pi), rng.uniform(0.3, 0.7)
    dist = (xx / w - c) * math.cos(a) + (yy / h - 0.5) * math.sin(a)
    field = field - 0.06 * np.exp(-((dist * 150) ** 2))  # a crease
    return _shade(colour, field)


def _wood(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    woods = [(176, 128, 82), (110, 72, 46), (206, 170, 120), (150, 90, 60), (90, 60, 40)]
    colour = _tint(rng, woods[rng.integers(len(woods))], 12)
    vertical = rng.uniform() < 0.5
    hh, ww = (h, w) if vertical else (w, h)
    plank = int(rng.integers(max(40, ww // 6), max(41, ww // 3)))
    xx = np.arange(ww, dtype=np.float32)[None, :] * np.ones((hh, 1), np.float32)
    warp = 6.0 * _fbm(rng, hh, ww, 4, 3) + 2.0 * _noise(rng, hh, ww, 3, ww / 30)
    rings = 0.5 + 0.5 * np.sin(2 * math.pi * (xx / rng.uniform(9, 20) + warp))
    streak = _noise(rng, hh, ww, 4, ww / 3)
    idx = (xx // plank).astype(np.int64)
    tone = rng.uniform(0.85, 1.1, ww // plank + 2).astype(np.float32)[idx]
    field = tone * (0.78 + 0.16 * rings + 0.12 * streak)
    field = np.where((xx % plank) < 2, 0.45, field)
    field = field if vertical else field.T
    return _shade(colour, field)


def _marble(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    colour = _tint(rng, [(236, 236, 232), (60, 62, 66), (226, 216, 206)][rng.integers(3)], 8)
    vein = _tint(rng, (110, 110, 112), 30)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, math.pi)
    t = (xx * math.cos(a) + yy * math.sin(a)) / max(h, w)
    turb = _fbm(rng, h, w, 4, 5)
    wave = np.sin(2 * math.pi * (t * rng.uniform(1.0, 2.5) + 2.0 * turb))
    veins = 1.0 - 0.75 * np.exp(-((wave / rng.uniform(0.06, 0.14)) ** 2))  # thin veins where the wave crosses zero
    base = _shade(colour, 0.94 + 0.08 * _fbm(rng, h, w, 3, 3))
    return base * veins[:, :, None] + vein[None, None, :] * (1 - veins[:, :, None])


def _carpet(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    colour = _tint(rng, [(170, 150, 120), (120, 120, 125), (130, 50, 50), (60, 70, 110)][rng.integers(4)], 15)
    pile: np.ndarray = rng.random((h, w), dtype=np.float32)
    pile = (pile + np.roll(pile, 1, 0) + np.roll(pile, 1, 1) + np.roll(pile, (1, 1), (0, 1))) / 4
    field = 0.75 + 0.35 * pile + 0.15 * (_fbm(rng, h, w, 5, 3) - 0.5)
    return _shade(colour, field)


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    c0, c1 = rng.uniform(60, 250, 3), rng.uniform(60, 250, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    t = (xx / w - 0.5) * math.cos(a) + (yy / h - 0.5) * math.sin(a)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return c0[None, None, :] * (1 - t[:, :, None]) + c1[None, None, :] * t[:, :, None]


_PROCEDURAL = {
    "table": _table,
    "concrete": _concrete,
    "tiles": _tiles,
    "linen": _linen,
    "paper": _paper,
    "wood": _wood,
    "fabric": _fabric,
    "marble": _marble,
    "carpet": _carpet,
    "gradient": _gradient,
}
