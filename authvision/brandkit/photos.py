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

The photos are made by :mod:`~authvision.brandkit.references` (reference photos),
:mod:`~authvision.brandkit.listings` (listings, re-used copies, plain photos) and
:mod:`~authvision.brandkit.visibility` (how many item pixels a fake's defects change), from the
building blocks of :mod:`~authvision.brandkit._shooting`; this module keeps their names importable
from one place.
"""

from __future__ import annotations

from ._shooting import PHOTO_SIZE
from .listings import BANNER_TEXTS, condition_tags, render_listing, reuse_photo
from .listings import listing_jpeg as listing_jpeg  # the JPEG-producing versions, as before
from .listings import plain_photo_jpeg as plain_photo_jpeg
from .listings import reuse_jpeg as reuse_jpeg
from .references import Label as Label
from .references import _reference as _reference
from .references import reference_jpeg as reference_jpeg
from .references import render_reference
from .visibility import defect_visibility
from .visibility import reused_visibility as reused_visibility

__all__ = [
    "BANNER_TEXTS",
    "PHOTO_SIZE",
    "condition_tags",
    "defect_visibility",
    "render_listing",
    "render_reference",
    "reuse_photo",
]
