"""How visible a fake's defects are in a photo: the item pixels they change against its genuine twin."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageChops

from ..listing_edits import decode_jpeg
from ._shooting import PHOTO_SIZE

__all__ = ["defect_visibility", "reused_visibility"]


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


def reused_visibility(
    fake: bytes, twin_source: tuple[bytes, Image.Image], *, rng: np.random.Generator, size: int = PHOTO_SIZE
) -> dict[str, Any]:
    """:func:`defect_visibility` of a re-used copy (``fake``, from
    :func:`~authvision.brandkit.listings.reuse_jpeg` with a generator equal to ``rng``) of a fake
    reference, given its genuine twin and item mask (``twin_source``)."""
    from .listings import _reuse  # listings measures its photos with this module

    twin_bytes, source_mask = twin_source
    twin, _, mask = _reuse(decode_jpeg(twin_bytes), rng=rng, size=size, mask=source_mask)
    assert mask is not None
    return defect_visibility(fake, twin, mask)
