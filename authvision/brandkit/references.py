"""Reference photos a brand supplies: genuine studio shots and photos of seized fakes.

* Genuine references: the brand's studio shots. Seamless white/light-grey backdrop, soft shadow,
  small pose changes (scale, rotation within ±5°, slight perspective), JPEG quality 90-95.
* Fake references: photos of seized fakes on plain table/floor surfaces (train background pool),
  harsher light, hard shadows, more pose variation, some sensor noise, JPEG quality 75-90.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageChops

from ..listing_edits import decode_jpeg, jpeg_bytes
from ._shooting import (
    PHOTO_SIZE,
    _composite,
    _frame,
    _frame_mask,
    _light,
    _noise,
    _pose,
    _shadow,
    _studio_backdrop,
)
from .backgrounds import PROCEDURAL_BACKGROUNDS, photos_available, render_background
from .catalog import Product
from .defects import Defect, Factory
from .items import render_item

__all__ = ["render_reference"]

# Surfaces of the train pool that seized fakes are photographed on (tables, floors, walls).
_SEIZED_SURFACES = (*PROCEDURAL_BACKGROUNDS["train"], "gravel", "brick")

Label = Literal["genuine", "fake"]


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
