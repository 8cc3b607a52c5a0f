"""Parametric drawings of products, genuine or with counterfeit defects: :func:`render_item`.

A product's fixed parameters say how the genuine item looks; the defects turn that into a
:class:`_Look` (colours, wordmark text and font, emblem, logo placement, seam and stitch geometry)
and the kind's drawer paints it. The ``rng`` only varies what differs between photos of one item
(the time on a watch, how a handle or lace falls, how full a bottle is) and is drawn from before the
defects are applied, so a genuine item and a fake rendered with equal generators differ only by
their defects.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

from . import _draw as d
from ._item_drawers import _DRAWERS, _VARIATIONS
from ._item_look import _resolve
from .catalog import Product
from .defects import Defect

__all__ = ["DEFAULT_ITEM_SIZE", "render_item"]

DEFAULT_ITEM_SIZE = 640
"""Default long side of a rendered item, in pixels."""


def render_item(
    product: Product,
    defects: Iterable[Defect] = (),
    *,
    rng: np.random.Generator,
    size: int = DEFAULT_ITEM_SIZE,
) -> Image.Image:
    """Draw ``product`` (with counterfeit ``defects``) as an RGBA image on a transparent background.

    Args:
        product: what to draw.
        defects: at most one defect of each type; empty for a genuine item.
        rng: varies the photo-to-photo details of the item (not its marks).
        size: long side of the result in pixels.

    Raises:
        ValueError: a repeated defect type, an unknown product kind, or ``size`` < 32.
        TypeError: ``rng`` is not a numpy Generator.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f"size must be an int >= 32, got {size!r}")
    drawer = _DRAWERS.get(product.kind)
    if drawer is None:
        raise ValueError(f"cannot draw product kind {product.kind!r}; choose from {', '.join(_DRAWERS)}")
    variation = _VARIATIONS[product.kind](rng)
    look = _resolve(product, tuple(defects))
    canvas = d.Canvas(size, float(product.params["aspect"]))
    drawer(canvas, product, look, variation)
    return canvas.finish()
