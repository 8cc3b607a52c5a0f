"""Listing edits: what marketplace templates and copying sellers do to a product photo.

White padding to a square (or a white border around it), a promotional banner, a watermark, a
mirror, a small crop, a JPEG round trip. One implementation for every place that makes listing-like
photos: the brand-kit simulator (:mod:`authvision.brandkit.photos`), the real-photo re-use check
(:mod:`authvision.photo_reuse`) and training augmentation (``training/augment.py``,
``training/data.py``).

Every edit is a pure function of the photo and explicit parameters; none draws random numbers. Each
caller draws the parameters from its own generator (numpy for the brand kit, ``random`` for
training), in its own order, so seeded outputs stay what they were. Pillow and numpy only.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "WHITE",
    "centred_offset",
    "crop_border",
    "decode_jpeg",
    "draw_banner",
    "jpeg_bytes",
    "jpeg_round_trip",
    "mirror",
    "pad_to_square",
    "stamp_text",
    "watermark",
]

WHITE = (255, 255, 255)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont | None


def centred_offset(size: tuple[int, int], side: int) -> tuple[int, int]:
    """Top-left corner of a ``size`` image centred on a ``side`` x ``side`` canvas."""
    return (side - size[0]) // 2, (side - size[1]) // 2


def pad_to_square(image: Image.Image, *, side: int | None = None, fill: Any = WHITE) -> Image.Image:
    """``image`` centred on a square canvas of ``fill`` (white by default), ``side`` pixels wide: its
    long side by default, more for a border all round. Works for any mode (an ``L`` mask: ``fill=0``)."""
    side = max(image.size) if side is None else int(side)
    if side < max(image.size):
        raise ValueError(f"side {side} is smaller than the image {image.size}")
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, centred_offset(image.size, side))
    return canvas


def draw_banner(
    image: Image.Image,
    *,
    top: int,
    height: int,
    colour: Any,
    text: str = "",
    font: Font = None,
    ink: Any = WHITE,
    text_at: tuple[float, float] | None = None,
    anchor: str | None = None,
) -> Image.Image:
    """A copy of ``image`` with a full-width banner of ``colour`` from row ``top``, ``height`` rows
    high, and ``text`` in ``ink`` at ``text_at`` (default: the banner's centre, anchored "mm")."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, top, out.width, top + height), fill=colour)
    if text:
        if text_at is None:
            text_at, anchor = (out.width / 2, top + height / 2), anchor or "mm"
        draw.text(text_at, text, font=font, fill=ink, anchor=anchor)
    return out


def watermark(
    image: Image.Image,
    text: str,
    *,
    font: ImageFont.FreeTypeFont,
    opacity: int,
    centred: bool,
    angle: float = 0.0,
    ink: Any = WHITE,
) -> Image.Image:
    """A copy of ``image`` with ``text`` blended in (``opacity`` 0-255): centred and rotated by
    ``angle`` degrees, or in the bottom-right corner."""
    layer = Image.new("L", (int(font.getlength(text)) + 20, int(font.size * 1.6)), 0)
    ImageDraw.Draw(layer).text((10, font.size * 0.2), text, font=font, fill=opacity)
    layer = layer.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    if centred:
        x, y = (image.width - layer.width) // 2, (image.height - layer.height) // 2
    else:
        x, y = image.width - layer.width - image.width // 40, image.height - layer.height - image.height // 40
    out = image.copy()
    out.paste(ink, (x, y, x + layer.width, y + layer.height), layer)
    return out


def stamp_text(
    image: Image.Image, text: str, positions: Iterable[tuple[int, int]], *, ink: Any = WHITE, font: Font = None
) -> Image.Image:
    """A copy of ``image`` with ``text`` printed opaquely at each of ``positions`` (a plain watermark)."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for xy in positions:
        draw.text(xy, text, font=font, fill=ink)
    return out


def mirror(image: Image.Image) -> Image.Image:
    """Left-right mirror image (re-used listing photos often are)."""
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def crop_border(image: Image.Image, fraction: float) -> Image.Image:
    """``image`` without a border of ``fraction`` of its width (left, right) and height (top, bottom)."""
    dx, dy = int(image.width * fraction), int(image.height * fraction)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    """``image`` as a JPEG file (Pillow's encoder, default settings, at ``quality``)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> Image.Image:
    """Decoded RGB image of JPEG (or any Pillow-readable) bytes."""
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def jpeg_round_trip(image: Image.Image, quality: int) -> Image.Image:
    """``image`` re-compressed as a JPEG at ``quality`` and decoded: its artefacts become part of it."""
    return decode_jpeg(jpeg_bytes(image, quality))
