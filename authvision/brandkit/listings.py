"""Marketplace listing photos: phone photos of items, re-used copies of photos, photos of no product.

* Listings: phone photos on backgrounds of a pool (``"test"`` by default), with conditions drawn
  per photo and recorded by name: background, framing, scale (item 35-90% of the frame), rotation,
  perspective, lighting gradient and colour cast, blur, noise, partial crop, white padding to a
  square, promotional banner, watermark, JPEG quality 40-90.
* Re-used photos: a seller's lightly edited copy of an existing photo (re-compression, mirror, small
  crop, resize, padding, banner, watermark).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from ..listing_edits import decode_jpeg, draw_banner, jpeg_bytes, mirror, pad_to_square, watermark
from . import _draw
from ._fonts import font
from ._shooting import PHOTO_SIZE, _composite, _frame, _frame_mask, _light, _noise, _place, _pose, _shadow
from .backgrounds import (
    PHOTO_BACKGROUNDS,
    PROCEDURAL_BACKGROUNDS,
    available_backgrounds,
    photos_available,
    render_background,
)
from .catalog import Product
from .defects import Defect
from .items import render_item
from .visibility import defect_visibility

__all__ = ["BANNER_TEXTS", "condition_tags", "render_listing", "reuse_photo"]

BANNER_TEXTS: tuple[str, ...] = (
    "SALE -50%", "FREE SHIPPING", "NEW ARRIVAL", "100% AUTHENTIC", "HOT DEAL",
    "LIMITED STOCK", "BEST PRICE", "-70% TODAY ONLY",
)  # fmt: skip
_BANNER_COLOURS = ((214, 32, 40), (250, 196, 0), (24, 24, 24), (255, 118, 0), (196, 0, 118), (0, 120, 200))
_HANDLE_PARTS = ("lux", "deal", "shop", "style", "brand", "outlet", "vip", "mode", "bag", "kicks", "time")

# A condition is tagged in listings.csv when at least this strong.
_TAG_THRESHOLDS = {"rotation": 5.0, "perspective": 0.03, "lighting": 0.25, "blur": 0.5, "noise": 3.0, "crop": 0.03}


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
