"""The marks every product kind draws the same way: monogram pattern, wordmark, emblem, stitching.

Each takes the :class:`~authvision.brandkit._item_look._Look` so a fake's defects show in it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from . import _draw as d
from ._item_look import RGB, _Look
from .catalog import Product


def _tile(canvas: d.Canvas, product: Product) -> np.ndarray:
    b = product.brand
    period = max(8, int(round(canvas.px(b.pattern_period))))
    return d.pattern_tile(b.emblem, b.pattern_mark, b.initials, b.font, period)


def _phase(canvas: d.Canvas, product: Product, shift: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    period = canvas.px(product.brand.pattern_period)
    px, py = product.params["pattern_phase"]
    return ((px + shift[0]) * period, (py + shift[1]) * period)


def _wordmark(
    canvas: d.Canvas, product: Product, look: _Look, centre: tuple[float, float], cap: float, max_w: float, rgb: RGB
) -> None:
    """The wordmark centred at ``centre`` (units), capitals ``cap`` units tall, fitted to ``max_w``.

    The genuine wordmark is scaled down to fit ``max_w``; a defective one gets the same scale, so a
    misspelt or wrongly spaced wordmark is as wide as the counterfeiter made it.
    """
    brand = product.brand
    px = d.cap_px(canvas.px(cap))
    genuine = d.text_mask(brand.name, brand.font, px, brand.tracking)
    fit = min(1.0, canvas.px(max_w) / max(genuine.width, 1))
    mask = d.text_mask(look.text, look.font, px, look.tracking, look.layout)
    if look.font != brand.font:
        # A look-alike font is fitted to the box the brand font would give the same text, the
        # more loosely the worse the copy.
        box = d.text_mask(look.text, brand.font, px, look.tracking, look.layout)
        loose = 1.0 + 0.1 * look.font_severity
        mask = mask.resize((round(box.width * loose), round(box.height * loose)), Image.Resampling.BICUBIC)
    if fit < 1.0:
        size = (max(1, round(mask.width * fit)), max(1, round(mask.height * fit)))
        mask = mask.resize(size, Image.Resampling.BICUBIC)
    d.paste_mask(canvas, mask, canvas.pt(*centre), rgb)


def _logo(
    canvas: d.Canvas,
    product: Product,
    look: _Look,
    centre: tuple[float, float],
    r: float,
    rgb: RGB,
    patch: RGB | None = None,
) -> None:
    """The brand emblem (optionally on a round leather patch), with logo defects applied."""
    cx, cy = centre[0] + look.logo_shift[0], centre[1] + look.logo_shift[1]
    r = r * look.logo_scale
    if patch is not None:
        m, md = canvas.mask()
        x, y, rp = canvas.px(cx), canvas.px(cy), canvas.px(1.3 * r)
        md.ellipse((x - rp, y - rp, x + rp, y + rp), fill=255)
        canvas.fill(m, patch)
        d.shade(canvas, m, "r", 0.25)
    m, md = canvas.mask()
    b = product.brand
    d.draw_emblem(md, canvas.px(cx), canvas.px(cy), canvas.px(r), look.emblem, look.emblem_detail, b.initials, b.font)
    canvas.fill(m, rgb)


def _stitch(
    canvas: d.Canvas,
    product: Product,
    look: _Look,
    path_units: Sequence[d.Point],
    *,
    dots: bool = False,
    closed: bool = False,
) -> None:
    p = product.params
    d.stitches(
        canvas,
        canvas.pts(path_units),
        canvas.px(p["stitch_pitch"] * look.stitch_pitch),
        canvas.px(0.0042 * look.stitch_width),
        product.brand.thread if not dots else d.scale_rgb(product.brand.thread, 0.75),
        dots=dots,
        closed=closed,
    )


def _margin(product: Product, look: _Look) -> float:
    return float(product.params["stitch_margin"]) * look.stitch_margin


def _engrave(rgb: RGB) -> RGB:
    """Colour of marks engraved in metal or printed on a surface of colour ``rgb``."""
    return d.scale_rgb(rgb, 0.45) if d.luminance(rgb) > 0.45 else d.mix(rgb, (250, 250, 250), 0.8)
