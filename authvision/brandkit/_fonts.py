"""The DejaVu fonts shipped in ``fonts/`` (Bitstream Vera licence, see ``fonts/LICENSE``).

Brand wordmarks use one of them; counterfeit wordmarks use a look-alike. Text is laid out with
Pillow's BASIC engine so that rendering does not depend on whether libraqm is installed.
"""

from __future__ import annotations

import functools
import io
from importlib import resources

from PIL import ImageFont

FONT_FILES: dict[str, str] = {
    "sans-bold": "DejaVuSans-Bold.ttf",
    "sans-condensed-bold": "DejaVuSansCondensed-Bold.ttf",
    "serif": "DejaVuSerif.ttf",
    "serif-bold": "DejaVuSerif-Bold.ttf",
    "serif-condensed": "DejaVuSerifCondensed.ttf",
    "serif-condensed-bold": "DejaVuSerifCondensed-Bold.ttf",
}

# Near, middle and far look-alikes of each font, for a `font` defect of rising severity. The near one
# is the same design at another width or weight; the far one another design (serif vs sans).
LOOKALIKES: dict[str, tuple[str, str, str]] = {
    "sans-bold": ("sans-condensed-bold", "serif-condensed-bold", "serif"),
    "sans-condensed-bold": ("sans-bold", "serif-condensed-bold", "serif"),
    "serif": ("serif-condensed", "serif-bold", "sans-condensed-bold"),
    "serif-bold": ("serif-condensed-bold", "serif", "sans-bold"),
    "serif-condensed": ("serif", "serif-condensed-bold", "sans-condensed-bold"),
    "serif-condensed-bold": ("serif-bold", "serif-condensed", "sans-condensed-bold"),
}


@functools.cache
def _font_bytes(key: str) -> bytes:
    if key not in FONT_FILES:
        raise KeyError(f"unknown font {key!r}; choose from {', '.join(FONT_FILES)}")
    return resources.files(__package__).joinpath("fonts").joinpath(FONT_FILES[key]).read_bytes()


@functools.lru_cache(maxsize=256)
def font(key: str, size: int) -> ImageFont.FreeTypeFont:
    """A shipped font by key at ``size`` pixels."""
    return ImageFont.truetype(
        io.BytesIO(_font_bytes(key)), max(1, int(size)), layout_engine=ImageFont.Layout.BASIC
    )
