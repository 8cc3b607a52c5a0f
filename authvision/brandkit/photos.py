"""Photos of items: brand studio shots, photos of seized fakes, marketplace listings, re-used photos.

* Genuine references: the brand's studio shots. Seamless white/light-grey backdrop, soft shadow,
  small pose changes (scale, rotation within ±5°, slight perspective), JPEG quality 90-95.
* Fake references: photos of seized fakes on plain table/floor surfaces (train background pool),
  harsher light, hard shadows, more pose variation, some sensor noise, JPEG quality 75-90.
* Listings: phone photos on backgrounds of a pool (``"test"`` by default), with conditions drawn
  per photo and recorded by name: background, framing, scale (item 35-90% of the frame), rotation,
  perspective, lighting gradient and colour cast, blur, noise, partial crop, white padding to a
  square, promotional banner, watermark, JPEG quality 40-90.
* Re-used photos: a seller's lightly edited copy of an existing photo (re-compression, mirror, small
  crop, resize, padding, banner, watermark).

Every function returns the decoded JPEG (so its artefacts are part of the photo) and a dict saying
what was done. Each draws from its ``rng`` only, through child generators spawned for the item and
for the photo, so a genuine and a defective item photographed with equal generators are posed and
lit alike.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from ..listing_edits import decode_jpeg, draw_banner, jpeg_bytes, mirror, pad_to_square, watermark
from . import _draw
from ._fonts import font
from .backgrounds import (
    PHOTO_BACKGROUNDS,
    PROCEDURAL_BACKGROUNDS,
    available_backgrounds,
    photos_available,
    render_background,
)
from .catalog import Product
from .defects import Defect, Factory
from .items import render_item

__all__ = [
    "BANNER_TEXTS",
    "PHOTO_SIZE",
    "condition_tags",
    "defect_visibility",
    "render_listing",
    "render_reference",
    "reuse_photo",
]

PHOTO_SIZE = 800
"""Long side, in pixels, of every photo the kit writes."""

BANNER_TEXTS: tuple[str, ...] = (
    "SALE -50%", "FREE SHIPPING", "NEW ARRIVAL", "100% AUTHENTIC", "HOT DEAL",
    "LIMITED STOCK", "BEST PRICE", "-70% TODAY ONLY",
)  # fmt: skip
_BANNER_COLOURS = ((214, 32, 40), (250, 196, 0), (24, 24, 24), (255, 118, 0), (196, 0, 118), (0, 120, 200))
_HANDLE_PARTS = ("lux", "deal", "shop", "style", "brand", "outlet", "vip", "mode", "bag", "kicks", "time")
# Surfaces of the train pool that seized fakes are photographed on (tables, floors, walls).
_SEIZED_SURFACES = (*PROCEDURAL_BACKGROUNDS["train"], "gravel", "brick")

# A condition is tagged in listings.csv when at least this strong.
_TAG_THRESHOLDS = {"rotation": 5.0, "perspective": 0.03, "lighting": 0.25, "blur": 0.5, "noise": 3.0, "crop": 0.03}

Label = Literal["genuine", "fake"]


# --- public API ----------------------------------------------------------------------------------


def render_reference(
    product: Product,
    label: Label,
    factory: Factory | None = None,
    *,
    rng: np.random.Generator,
    size: int = PHOTO_SIZE,
) -> tuple[Image.Image, dict[str, Any]]:
    """A reference photo a brand supplies: a studio shot (genuine) or a seized fake's photo.

    Args:
        product: the item pictured.
        label: ``"genuine"`` (needs ``factory=None``) or ``"fake"`` (needs the factory that made it).
        factory: the fake's factory; its defects are drawn.
        rng: everything random about the photo and the item instance.
        size: long side of the photo in pixels.

    Returns:
        The RGB photo and its ``info`` (background, pose, lighting, jpeg quality...).
    """
    data, info = reference_jpeg(product, label, factory, rng=rng, size=size)
    return decode_jpeg(data), info


def render_listing(
    product: Product,
    defects: Iterable[Defect] = (),
    *,
    rng: np.random.Generator,
    pool: str = "test",
    size: int = PHOTO_SIZE,
    measure_defects: bool = False,
) -> tuple[Image.Image, dict[str, Any]]:
    """A marketplace listing photo of ``product`` (with ``defects`` for a fake).

    Args:
        measure_defects: also say how many of the item's pixels the defects change in this photo
            (``defect_pixels``, ``defect_pixels_count``, ``item_pixels``; see
            :func:`defect_visibility`), rendering the genuine twin alongside; the photo is the same.

    Returns:
        The RGB photo and its listing conditions, by name (see :func:`condition_tags`).
    """
    data, conditions = listing_jpeg(
        product, tuple(defects), rng=rng, pool=pool, size=size, measure_defects=measure_defects
    )
    return decode_jpeg(data), conditions


def reuse_photo(
    photo: Image.Image, *, rng: np.random.Generator, size: int = PHOTO_SIZE
) -> tuple[Image.Image, dict[str, Any]]:
    """A seller's edited copy of an existing photo (mirror, crop, resize, padding, banner, JPEG)."""
    data, conditions = reuse_jpeg(photo, rng=rng, size=size)
    return decode_jpeg(data), conditions


def condition_tags(conditions: Mapping[str, Any]) -> tuple[str, ...]:
    """Short tags naming the conditions that matter, e.g. ``("background=wood", "rotation", "jpeg=55")``."""
    c = conditions
    tags = [f"background={c['background']}"] if "background" in c else []
    if c.get("reused"):
        tags.append("reused")
    if "scale" in c:
        tags.append(f"scale={c['scale']:.2f}")
    for key, threshold in _TAG_THRESHOLDS.items():
        if abs(c.get(key, 0.0)) >= threshold:
            tags.append(key)
    for key in ("mirror", "pad_square", "banner", "watermark"):
        if c.get(key):
            tags.append(key)
    tags.append(f"jpeg={c['jpeg']}")
    return tuple(tags)


# --- JPEG-producing versions (what generate_kit writes) -----------------------------------------


def reference_jpeg(
    product: Product, label: Label, factory: Factory | None, *, rng: np.random.Generator, size: int = PHOTO_SIZE
) -> tuple[bytes, dict[str, Any]]:
    """Like :func:`render_reference`, returning the JPEG file's bytes."""
    data, info, _ = _reference(product, label, factory, rng=rng, size=size, twin=False)
    return data, info


def _reference(
    product: Product,
    label: Label,
    factory: Factory | None,
    *,
    rng: np.random.Generator,
    size: int,
    twin: bool,
) -> tuple[bytes, dict[str, Any], tuple[bytes, Image.Image] | None]:
    """:func:`reference_jpeg`, and with ``twin`` the genuine twin of a fake: the same photo of the
    item without its defects (JPEG bytes), and the item mask (``L``, 255 inside) in the photo's frame."""
    if label == "genuine":
        if factory is not None:
            raise ValueError("a genuine reference has no factory; pass factory=None")
        defects: tuple[Defect, ...] = ()
    elif label == "fake":
        if not isinstance(factory, Factory):
            raise ValueError("a fake reference needs the Factory that made it")
        defects = factory.defects
    else:
        raise ValueError(f"label must be 'genuine' or 'fake', got {label!r}")
    item_rng, photo_rng = rng.spawn(2)
    r = photo_rng
    if label == "genuine":
        w = h = size
        info: dict[str, Any] = {"background": "studio"}
        bg = _studio_backdrop(r, w, h)
        scale, rotation, perspective = r.uniform(0.62, 0.82), r.uniform(-5, 5), r.uniform(0.0, 0.025)
        shadow = (r.uniform(0.18, 0.3), r.uniform(0.012, 0.025) * size, 0.0, r.uniform(0.006, 0.02) * size)
        lighting, cast, hotspot, noise = r.uniform(0.0, 0.06), r.uniform(-0.01, 0.01), 0.0, 0.0
        quality = int(r.integers(90, 96))
    else:
        w, h = _frame(r, size, square=0.2)
        surfaces = [s for s in _SEIZED_SURFACES if s in PROCEDURAL_BACKGROUNDS["train"] or photos_available()]
        info = {"background": str(r.choice(surfaces))}
        bg = render_background(info["background"], r, (w, h))
        scale, rotation, perspective = r.uniform(0.5, 0.85), r.uniform(-15, 15), r.uniform(0.0, 0.08)
        shadow = _shadow(r, size, (0.4, 0.6), (0.003, 0.01), 0.02)
        lighting, cast, hotspot = r.uniform(0.15, 0.45), r.uniform(-0.06, 0.06), r.uniform(0.0, 0.25)
        noise = r.uniform(0.5, 5.0)
        quality = int(r.integers(75, 91))
    # The twin replays everything after this point from copies of both generators, without defects.
    forked = (copy.deepcopy(item_rng), copy.deepcopy(r)) if twin else None

    def shoot(item_defects: tuple[Defect, ...], item_rng: np.random.Generator, r: np.random.Generator):
        item = render_item(product, item_defects, rng=item_rng, size=max(32, round(scale * min(w, h))))
        item = _pose(item, rotation, perspective, r)
        x = (w - item.width) / 2 + r.uniform(-0.03, 0.03) * w
        y = (h - item.height) / 2 + r.uniform(-0.03, 0.03) * h
        photo = _composite(bg, item, (x, y), shadow)
        photo = _light(photo, r, lighting, cast, hotspot)
        if noise > 0:
            photo = _noise(photo, r, noise)
        return jpeg_bytes(photo, quality), _frame_mask(item, (x, y), (w, h))

    data, mask = shoot(defects, item_rng, r)
    info.update(
        scale=round(scale, 3), rotation=round(rotation, 2), perspective=round(perspective, 3),
        lighting=round(lighting, 3), noise=round(noise, 2), jpeg=quality,
    )  # fmt: skip
    if forked is None:
        return data, info, None
    twin_data, twin_mask = shoot((), *forked)
    return data, info, (twin_data, ImageChops.lighter(mask, twin_mask))


def listing_jpeg(
    product: Product | None,
    defects: tuple[Defect, ...],
    *,
    rng: np.random.Generator,
    pool: str = "test",
    size: int = PHOTO_SIZE,
    measure_defects: bool = False,
) -> tuple[bytes, dict[str, Any]]:
    """Like :func:`render_listing`, returning JPEG bytes; ``product=None`` photographs no item.

    ``measure_defects``: also render the genuine twin (the same photo without ``defects``) and record
    how many of the item's pixels the defects change (:func:`defect_visibility`) in the conditions.
    The photo is the same either way.
    """
    item_rng, r = rng.spawn(2)
    backgrounds = available_backgrounds(pool)
    w, h = _frame(r, size, square=0.3)
    c: dict[str, Any] = {"background": str(r.choice(backgrounds)), "frame": f"{w}x{h}"}
    photo = render_background(c["background"], r, (w, h))
    scale = r.uniform(0.35, 0.9)
    rotation = r.uniform(-20, 20) if r.uniform() < 0.5 else r.uniform(-4, 4)
    perspective = r.uniform(0.02, 0.1) if r.uniform() < 0.5 else 0.0
    crop = r.uniform(0.1, 0.3) if r.uniform() < 0.12 else 0.0
    shadow = _shadow(r, size, (0.2, 0.45), (0.008, 0.025), 0.015)
    if product is None:
        data, c, _ = _as_listing(photo, r, c, banner=0.2)
        return data, c
    # The twin replays everything after this point from copies of both generators, without defects.
    forked = (copy.deepcopy(item_rng), copy.deepcopy(r), dict(c)) if measure_defects else None

    def shoot(item_defects, item_rng, r, c, fake_mask=None):
        item = render_item(product, item_defects, rng=item_rng, size=max(32, round(scale * min(w, h))))
        item = _pose(item, rotation, perspective, r)
        x, y, out = _place(r, item.size, (w, h), crop)
        shot = _composite(photo, item, (x, y), shadow)
        c.update(scale=round(scale, 3), rotation=round(rotation, 2), perspective=round(perspective, 3))
        c["crop"] = round(out, 3)
        mask = None if forked is None else _frame_mask(item, (x, y), (w, h))
        if mask is not None and fake_mask is not None:  # the twin: the item's pixels are those of either
            data, _, mask = _as_listing(shot, r, c, banner=0.2, mask=ImageChops.lighter(mask, fake_mask))
            return data, c, mask
        data, c, _ = _as_listing(shot, r, c, banner=0.2)
        return data, c, mask

    data, c, fake_mask = shoot(tuple(defects), item_rng, r, c)
    if forked is not None:
        twin_data, twin_c, mask = shoot((), *forked, fake_mask=fake_mask)
        if twin_c != c:  # the twin must be the same photo in every condition
            raise RuntimeError(f"genuine twin drew other conditions: {twin_c} != {c}")
        c.update(defect_visibility(data, twin_data, mask))
    return data, c


def _as_listing(
    photo: Image.Image, r: np.random.Generator, c: dict[str, Any], *, banner: float, mask: Image.Image | None = None
) -> tuple[bytes, dict[str, Any], Image.Image | None]:
    """The seller's last steps: a phone's look, a shop template (padding, banner, watermark), JPEG.
    An item ``mask`` in the photo's frame comes back in the listing's frame."""
    photo, phone = _phone(photo, r)
    c.update(phone)
    photo, template, mask = _template(photo, r, pad=0.25, banner=banner, watermark=0.2, mask=mask)
    c.update(template)
    c["jpeg"] = int(r.integers(40, 91))
    return jpeg_bytes(photo, c["jpeg"]), c, mask


def defect_visibility(fake: bytes, twin: bytes, mask: Image.Image, *, threshold: int = 8) -> dict[str, Any]:
    """How many item pixels a fake's defects change: pixels inside ``mask`` (``L``, > 127 inside)
    whose largest channel difference between the decoded ``fake`` and its genuine ``twin`` (both JPEG
    bytes of the same size) exceeds ``threshold`` (of 255).

    Returns:
        ``defect_pixels`` (share of the item's visible pixels), ``defect_pixels_count`` and
        ``item_pixels``.
    """
    a, b = decode_jpeg(fake), decode_jpeg(twin)
    if not a.size == b.size == mask.size:
        raise ValueError(f"fake {a.size}, twin {b.size} and mask {mask.size} differ in size")
    box = mask.getbbox()
    changed = total = 0
    if box is not None:  # Pillow's C loops on the item's box only: this runs once per fake listing
        r, g, bl = ImageChops.difference(a.crop(box), b.crop(box)).split()
        peak = np.asarray(ImageChops.lighter(ImageChops.lighter(r, g), bl))
        inside = np.asarray(mask.crop(box)) > 127
        changed, total = int(np.count_nonzero((peak > threshold) & inside)), int(np.count_nonzero(inside))
    return {
        "defect_pixels": changed / total if total else 0.0,
        "defect_pixels_count": changed,
        "item_pixels": total,
    }


def _frame_mask(item: Image.Image, pos: tuple[float, float], frame: tuple[int, int]) -> Image.Image:
    """The item's pixels (alpha > 127) where :func:`_composite` pastes it, in a frame of size ``frame``."""
    mask = Image.new("L", frame, 0)
    mask.paste(item.getchannel("A").point(lambda v: 255 if v > 127 else 0), (round(pos[0]), round(pos[1])))
    return mask


def reuse_jpeg(
    photo: Image.Image, *, rng: np.random.Generator, size: int = PHOTO_SIZE
) -> tuple[bytes, dict[str, Any]]:
    """Like :func:`reuse_photo`, returning JPEG bytes."""
    data, c, _ = _reuse(photo, rng=rng, size=size)
    return data, c


def _reuse(
    photo: Image.Image, *, rng: np.random.Generator, size: int, mask: Image.Image | None = None
) -> tuple[bytes, dict[str, Any], Image.Image | None]:
    """:func:`reuse_jpeg`; an item ``mask`` in ``photo``'s frame comes back in the copy's frame."""
    r = rng.spawn(1)[0]
    img = photo.convert("RGB")
    c: dict[str, Any] = {"reused": True, "mirror": bool(r.uniform() < 0.35)}
    if c["mirror"]:
        img = mirror(img)
        mask = None if mask is None else mirror(mask)
    cuts = r.uniform(0.0, 0.07, 4) if r.uniform() < 0.45 else np.zeros(4)
    c["crop"] = round(float(cuts.max()), 3)
    box = (cuts[0] * img.width, cuts[1] * img.height, (1 - cuts[2]) * img.width, (1 - cuts[3]) * img.height)
    resize = r.uniform(0.55, 0.95) if r.uniform() < 0.5 else 1.0
    c["resize"] = round(resize, 3)
    bw, bh = box[2] - box[0], box[3] - box[1]
    f = min(size, max(img.size)) * resize / max(bw, bh)
    new_size = (max(1, round(bw * f)), max(1, round(bh * f)))
    img = img.resize(new_size, Image.Resampling.BICUBIC, box=box, reducing_gap=2.0)
    if mask is not None:
        mask = mask.resize(new_size, Image.Resampling.BILINEAR, box=box).point(lambda v: 255 if v > 127 else 0)
    img, template, mask = _template(img, r, pad=0.3, banner=0.3, watermark=0.25, mask=mask)
    c.update(template)
    c["jpeg"] = int(r.integers(50, 91))
    return jpeg_bytes(img, c["jpeg"]), c, mask


def reused_visibility(
    fake: bytes, twin_source: tuple[bytes, Image.Image], *, rng: np.random.Generator, size: int = PHOTO_SIZE
) -> dict[str, Any]:
    """:func:`defect_visibility` of a re-used copy (``fake``, from :func:`reuse_jpeg` with a generator
    equal to ``rng``) of a fake reference, given its genuine twin and item mask (``twin_source``)."""
    twin_bytes, source_mask = twin_source
    twin, _, mask = _reuse(decode_jpeg(twin_bytes), rng=rng, size=size, mask=source_mask)
    assert mask is not None
    return defect_visibility(fake, twin, mask)


# --- photo building blocks -----------------------------------------------------------------------


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


def _phone(photo: Image.Image, r: np.random.Generator) -> tuple[Image.Image, dict[str, Any]]:
    """What a phone camera and room light do: lighting, white balance, focus blur, sensor noise."""
    lighting = r.uniform(0.0, 0.45)
    cast = r.uniform(-0.08, 0.08)
    blur = r.uniform(0.6, 2.2) if r.uniform() < 0.35 else 0.0
    noise = r.uniform(2.0, 9.0) if r.uniform() < 0.5 else 0.0
    photo = _light(photo, r, lighting, cast, 0.0)
    if blur:
        photo = photo.filter(ImageFilter.GaussianBlur(blur))
    if noise:
        photo = _noise(photo, r, noise)
    conditions = {"lighting": round(lighting, 3), "colour_cast": round(cast, 3), "blur": round(blur, 2)}
    return photo, conditions | {"noise": round(noise, 2)}


def _template(
    img: Image.Image,
    r: np.random.Generator,
    *,
    pad: float,
    banner: float,
    watermark: float,
    mask: Image.Image | None = None,
) -> tuple[Image.Image, dict[str, Any], Image.Image | None]:
    """Marketplace template edits: white padding to a square, a promotional banner, a watermark.
    An item ``mask`` follows the padding and loses what the banner covers."""
    do_pad, do_banner, do_mark = r.uniform(size=3) < (pad, banner, watermark)
    c: dict[str, Any] = {"pad_square": False, "banner": None, "watermark": None}
    if do_pad and img.width != img.height:
        mask = None if mask is None else pad_to_square(mask, fill=0)
        img, c["pad_square"] = pad_to_square(img), True
    if do_banner:
        text = str(r.choice(BANNER_TEXTS))
        colour = _BANNER_COLOURS[int(r.integers(len(_BANNER_COLOURS)))]
        bh = max(12, round(img.height * r.uniform(0.08, 0.14)))
        top = 0 if r.uniform() < 0.5 else img.height - bh
        mask = None if mask is None else draw_banner(mask, top=top, height=bh, colour=0)
        ink = (20, 20, 20) if _draw.luminance(colour) > 0.6 else (255, 255, 255)
        f = font("sans-bold", max(8, round(bh * 0.55)))
        while f.getlength(text) > 0.92 * img.width and f.size > 8:
            f = font("sans-bold", f.size - 2)
        img = draw_banner(img, top=top, height=bh, colour=colour, text=text, font=f, ink=ink)
        c["banner"] = text
    if do_mark:
        handle = "@" + "".join(r.choice(_HANDLE_PARTS, size=2)) + str(int(r.integers(1, 999)))
        img = _watermark(img, handle, r)
        c["watermark"] = handle
    return img, c, mask


def _watermark(img: Image.Image, text: str, r: np.random.Generator) -> Image.Image:
    f = font("sans-bold", max(10, round(img.width * r.uniform(0.05, 0.09))))
    opacity = int(r.integers(70, 150))
    centred = bool(r.uniform() < 0.5)
    angle = r.uniform(-35, 35) if centred else 0.0
    return watermark(img, text, font=f, opacity=opacity, centred=centred, angle=angle)


def plain_photo_jpeg(
    rng: np.random.Generator, *, pool: str = "test", size: int = PHOTO_SIZE
) -> tuple[bytes, dict[str, Any]]:
    """A listing photo showing no product: a real photo (or a bare background without scikit-image)."""
    r = rng.spawn(1)[0]
    names = tuple(PHOTO_BACKGROUNDS[pool]) if photos_available() else PROCEDURAL_BACKGROUNDS[pool]
    w, h = _frame(r, size, square=0.3)
    c: dict[str, Any] = {"background": str(r.choice(names)), "frame": f"{w}x{h}"}
    photo = render_background(c["background"], r, (w, h))
    data, c, _ = _as_listing(photo, r, c, banner=0.3)
    return data, c
