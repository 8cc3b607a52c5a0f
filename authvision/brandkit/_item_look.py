"""What a drawer paints: a product's genuine marks with counterfeit defects applied (:class:`_Look`).

Each defect type changes the look in its own way (a look-alike font, a misspelt wordmark, a shifted
logo, a recoloured dye or metal, a shifted pattern seam, coarser stitching); :func:`_resolve` applies
a fake's defects to the genuine look of its product. Used by :func:`~authvision.brandkit.render_item`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from . import _draw as d
from ._fonts import LOOKALIKES
from .catalog import EMBLEMS, Product
from .defects import Defect

RGB = tuple[int, int, int]

_SIMILAR_LETTERS = {
    "N": "M", "M": "N", "E": "F", "F": "E", "O": "Q", "Q": "O", "C": "G", "G": "C", "R": "P",
    "P": "R", "B": "R", "I": "L", "L": "I", "U": "V", "V": "U", "K": "X", "X": "K", "T": "I",
    "D": "O", "H": "N", "S": "Z", "Z": "S", "Y": "V", "W": "V",
}  # fmt: skip
_WRONG_METALS: tuple[RGB, ...] = ((226, 203, 70), (184, 108, 62), (214, 224, 238), (60, 60, 64))


@dataclass(frozen=True)
class _Look:
    """What a drawer paints: the genuine marks with the defects applied."""

    hue: float = 0.0
    saturation: float = 1.0
    hardware: RGB = (0, 0, 0)
    text: str = ""
    layout: str = ""  # text whose letter places ``text`` is printed in ("" = its own)
    font: str = ""
    brand_font: str = ""
    font_severity: float = 0.0
    tracking: float = 0.0
    emblem: str = ""
    emblem_detail: int = 2
    logo_scale: float = 1.0
    logo_shift: tuple[float, float] = (0.0, 0.0)
    seam_shift: tuple[float, float] = (0.0, 0.0)  # along and across a seam, in pattern periods
    stitch_pitch: float = 1.0
    stitch_width: float = 1.0
    stitch_margin: float = 1.0

    def dye(self, rgb: RGB) -> RGB:
        """A dyed material's colour (body, accent, pattern, dial, liquid) after colour defects."""
        if self.hue == 0.0 and self.saturation == 1.0:
            return tuple(rgb)  # type: ignore[return-value]
        return d.hsv_adjust(tuple(rgb), self.hue, self.saturation)  # type: ignore[arg-type]


def _resolve(product: Product, defects: tuple[Defect, ...]) -> _Look:
    brand = product.brand
    look = _Look(
        hardware=brand.hardware_rgb,
        text=brand.name,
        font=brand.font,
        brand_font=brand.font,
        tracking=brand.tracking,
        emblem=brand.emblem,
    )
    seen: set[str] = set()
    for defect in defects:
        if not isinstance(defect, Defect):
            raise TypeError(f"defects must be Defect objects, got {type(defect).__name__}")
        if defect.type in seen:
            raise ValueError(f"defect type {defect.type!r} given twice")
        seen.add(defect.type)
        look = _APPLY[defect.type](look, defect.severity, defect.variant, product)
    return look


def _sign(variant: int) -> int:
    return -1 if variant % 2 else 1


def _misspell(name: str, s: float, variant: int) -> tuple[str, str]:
    """The misspelt wordmark, and the text whose letter places it is printed in."""
    positions = list(range(1, len(name)))  # the first letter is the one shoppers read: keep it
    if s < 0.4:
        similar = [i for i in positions if name[i] in _SIMILAR_LETTERS] or positions
        i = similar[variant % len(similar)]
        return name[:i] + _SIMILAR_LETTERS.get(name[i], "X") + name[i + 1 :], name
    if s < 0.75:
        pairs = [i for i in positions[:-1] if name[i] != name[i + 1]]
        if pairs:
            i = pairs[variant % len(pairs)]
            return name[:i] + name[i + 1] + name[i] + name[i + 2 :], name
    i = positions[variant % len(positions)]
    return name[:i] + name[i + 1 :], ""


def _misspelling_defect(look: _Look, s: float, variant: int) -> _Look:
    text, layout = _misspell(look.text, s, variant)
    return replace(look, text=text, layout=layout)


def _hardware_defect(look: _Look, s: float, variant: int) -> _Look:
    far = [m for m in _WRONG_METALS if math.dist(m, look.hardware) > 60] or list(_WRONG_METALS)
    return replace(look, hardware=d.mix(look.hardware, far[variant % len(far)], 0.7 * s))


def _emblem_defect(look: _Look, s: float, variant: int) -> _Look:
    if s < 0.4:
        return replace(look, emblem_detail=1)
    if s < 0.75:
        return replace(look, emblem_detail=0)
    others = [e for e in EMBLEMS if e != look.emblem]
    return replace(look, emblem=others[variant % len(others)], emblem_detail=2)


_APPLY: dict[str, Callable[[_Look, float, int, Product], _Look]] = {
    "font": lambda lk, s, v, p: replace(
        lk, font=LOOKALIKES[lk.brand_font][0 if s < 0.45 else 1 if s < 0.75 else 2], font_severity=s
    ),
    "spacing": lambda lk, s, v, p: replace(lk, tracking=max(-0.12, lk.tracking + _sign(v) * 0.3 * s)),
    "misspelling": lambda lk, s, v, p: _misspelling_defect(lk, s, v),
    "logo_scale": lambda lk, s, v, p: replace(lk, logo_scale=1 + 0.35 * s if v % 2 == 0 else 1 - 0.3 * s),
    "logo_shift": lambda lk, s, v, p: replace(
        lk,
        logo_shift=(
            0.06 * s * math.cos(math.radians(45 + 90 * v)),
            0.06 * s * math.sin(math.radians(45 + 90 * v)),
        ),
    ),
    "emblem": lambda lk, s, v, p: _emblem_defect(lk, s, v),
    "hue": lambda lk, s, v, p: replace(lk, hue=_sign(v) * 30.0 * s),
    "saturation": lambda lk, s, v, p: replace(lk, saturation=1 - 0.6 * s if v % 2 == 0 else 1 + 0.8 * s),
    "hardware_colour": lambda lk, s, v, p: _hardware_defect(lk, s, v),
    # Along and across: a pure half-period shift along the seam would look aligned again.
    "pattern_seam": lambda lk, s, v, p: replace(lk, seam_shift=(_sign(v) * 0.35 * s, 0.2 * s)),
    "stitch_count": lambda lk, s, v, p: replace(
        lk, stitch_pitch=1 + 0.6 * s, stitch_width=1 + 0.4 * s, stitch_margin=1 + 0.8 * s
    ),
}
