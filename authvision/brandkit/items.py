"""Parametric drawings of products, genuine or with counterfeit defects: :func:`render_item`.

A product's fixed parameters say how the genuine item looks; the defects turn that into a
:class:`_Look` (colours, wordmark text and font, emblem, logo placement, seam and stitch geometry)
and the kind's drawer paints it. The ``rng`` only varies what differs between photos of one item
(the time on a watch, how a handle or lace falls, how full a bottle is) and is drawn from before the
defects are applied, so a genuine item and a fake rendered with equal generators differ only by
their defects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from . import _draw as d
from ._fonts import LOOKALIKES
from .catalog import EMBLEMS, Product
from .defects import Defect

__all__ = ["DEFAULT_ITEM_SIZE", "render_item"]

DEFAULT_ITEM_SIZE = 640
"""Default long side of a rendered item, in pixels."""

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


# --- shared marks --------------------------------------------------------------------------------


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


# --- handbag -------------------------------------------------------------------------------------


def _handbag_variation(rng: np.random.Generator) -> dict[str, Any]:
    return {"handle_dx": float(rng.uniform(-0.02, 0.02)), "handle_lift": float(rng.uniform(-0.03, 0.03))}


def _handbag(canvas: d.Canvas, product: Product, look: _Look, var: dict[str, Any]) -> None:
    p, b = product.params, product.brand
    aspect = float(p["aspect"])
    top, bottom = float(p["handle_h"]), aspect - 0.02
    body_h = bottom - top
    taper, trim = float(p["taper"]), float(p["trim"])
    body_rgb, accent, ink = look.dye(p["body"]), look.dye(p["accent"]), look.dye(b.pattern_colour)
    dark_accent = d.scale_rgb(accent, 0.75)

    # handle behind the body, attached at two rings
    hx0, hx1 = 0.27 + var["handle_dx"], 0.73 + var["handle_dx"]
    htop = 0.03 + max(0.0, var["handle_lift"])
    hb = (canvas.px(hx0), canvas.px(htop), canvas.px(hx1), canvas.px(2 * top - htop))
    canvas.draw.arc(hb, 180, 360, fill=(*dark_accent, 255), width=canvas.lw(0.04))
    canvas.draw.arc(hb, 180, 360, fill=(*accent, 255), width=canvas.lw(0.028))

    # monogram canvas in two pieces meeting at a seam down the middle
    body = canvas.polygon(d.rounded_poly(0.03, top, 0.97, bottom, float(p["corner"]), taper))
    seam = ((0.5, top), (0.5, bottom))
    tile = _tile(canvas, product)
    left = d.intersect(body, d.half_plane(canvas, *seam, right=False))
    right = d.intersect(body, d.half_plane(canvas, *seam, right=True))
    d.pattern_fill(canvas, left, body_rgb, ink, tile, _phase(canvas, product))
    d.pattern_fill(canvas, right, body_rgb, ink, tile, _phase(canvas, product, look.seam_shift[::-1]))
    canvas.line(seam, d.scale_rgb(body_rgb, 0.6), 0.003)

    # leather trim along the top and bottom
    for y0, y1 in ((top, top + trim), (bottom - trim, bottom)):
        canvas.fill(d.intersect(canvas.rect(0.0, y0, 1.0, y1), body), accent)
    d.shade(canvas, body, "x", 0.35)

    m = _margin(product, look)
    _stitch(canvas, product, look, [(0.05 + taper, top + m), (0.95 - taper, top + m)])
    _stitch(canvas, product, look, [(0.08, bottom - m), (0.92, bottom - m)])
    for sx in (1, -1):
        x_top, x_bot = 0.5 - sx * (0.47 - taper - m), 0.5 - sx * (0.47 - m)
        _stitch(canvas, product, look, [(x_top, top + trim + m), (x_bot, bottom - trim - m - 0.05)])

    # rings and tabs where the handle meets the body
    for hx in (hx0 + 0.02, hx1 - 0.02):
        canvas.fill(canvas.rect(hx - 0.025, top - 0.02, hx + 0.025, top + trim + 0.03), dark_accent)
        d.metal_fill(canvas, canvas.disc(hx, top - 0.01, 0.028, outline=0.011), look.hardware)

    # plate with the wordmark, under a turn-lock clasp
    pw, ph = float(p["plate_w"]), float(p["plate_h"])
    py = top + trim + float(p["plate_y"]) * body_h
    d.metal_fill(canvas, canvas.rect(0.47, top - 0.005, 0.53, py, radius=0.012), look.hardware, angle=0.0)
    plate = canvas.rect(0.5 - pw / 2, py - ph / 2, 0.5 + pw / 2, py + ph / 2, radius=0.25 * ph)
    d.metal_fill(canvas, plate, look.hardware)
    _wordmark(canvas, product, look, (0.5, py), 0.42 * ph, 0.86 * pw, _engrave(look.hardware))

    logo_at = (float(p["logo_x"]), top + float(p["logo_y"]) * body_h)
    _logo(canvas, product, look, logo_at, float(p["logo_r"]), ink, patch=dark_accent)


# --- sneaker -------------------------------------------------------------------------------------


def _sneaker_variation(rng: np.random.Generator) -> dict[str, Any]:
    return {"lace": [float(a) for a in rng.uniform(-25, 25, size=2)], "lace_len": float(rng.uniform(0.06, 0.1))}


def _sneaker(canvas: d.Canvas, product: Product, look: _Look, var: dict[str, Any]) -> None:
    p, b = product.params, product.brand
    aspect = float(p["aspect"])
    st = aspect - float(p["sole_h"]) - 0.01  # top of the sole
    cy, tx = float(p["collar_y"]), float(p["tongue_x"])
    body_rgb, accent, ink = look.dye(p["body"]), look.dye(p["accent"]), look.dye(b.pattern_colour)
    lace_end = (0.76, st - 0.15)
    outline = d.smooth(
        [(0.04, st + 0.01), (0.018, st - 0.1), (0.03, cy + 0.04), (0.07, cy), (0.16, cy + 0.05),
         (0.26, cy + 0.07), (tx - 0.05, cy - 0.01), (tx, cy - 0.08), (tx + 0.05, cy - 0.07),
         lace_end, (0.87, st - 0.12), (0.95, st - 0.08), (0.985, st - 0.02), (0.97, st + 0.01)],
        iterations=3,
    )  # fmt: skip
    upper = canvas.polygon(outline)

    # quarter and vamp: monogram canvas in two pieces meeting at a slanted seam
    sx = float(p["seam_x"])
    seam = ((sx, cy - 0.1), (sx - 0.07, st))
    tile = _tile(canvas, product)
    quarter = d.intersect(upper, d.half_plane(canvas, *seam, right=False))
    vamp = d.intersect(upper, d.half_plane(canvas, *seam, right=True))
    d.pattern_fill(canvas, quarter, body_rgb, ink, tile, _phase(canvas, product))
    d.pattern_fill(canvas, vamp, body_rgb, ink, tile, _phase(canvas, product, look.seam_shift[::-1]))
    seam_line, sld = canvas.mask()
    sld.line(canvas.pts(seam), fill=255, width=canvas.lw(0.004))
    canvas.fill(d.intersect(seam_line, upper), d.scale_rgb(body_rgb, 0.55))

    hw = float(p["heel_w"])
    heel_line = ((hw - 0.04, cy - 0.05), (hw, st + 0.02))
    canvas.fill(d.intersect(upper, d.half_plane(canvas, *heel_line, right=False)), accent)
    d.shade(canvas, upper, "y", 0.3)

    m = _margin(product, look)
    _stitch(canvas, product, look, [(seam[0][0] + m, seam[0][1] + 0.1), (seam[1][0] + m, seam[1][1] - 0.01)])
    _stitch(canvas, product, look, [(heel_line[0][0] + m, cy + 0.06), (heel_line[1][0] + m, st - 0.01)])
    _stitch(canvas, product, look, [(0.05, st - m), (0.95, st - m)])

    # sole with its stripe and tread
    sole_rgb: RGB = tuple(p["sole"])
    sole = canvas.rect(0.012, st - 0.004, 0.988, aspect - 0.008, radius=0.035)
    canvas.fill(sole, sole_rgb if d.luminance(sole_rgb) > 0.8 else look.dye(sole_rgb))
    d.shade(canvas, sole, "y", 0.2)
    stripe_y = st + 0.45 * (aspect - st)
    canvas.line([(0.03, stripe_y), (0.97, stripe_y)], accent, 0.01)
    for x in np.arange(0.05, 0.96, 0.03):
        canvas.line([(x, aspect - 0.03), (x, aspect - 0.012)], d.scale_rgb(sole_rgb, 0.7), 0.004)

    # eyelets and laces along the lacing line
    a, z = (tx + 0.07, cy - 0.035), (lace_end[0] - 0.05, lace_end[1])
    steps = np.linspace(0, 1, int(p["eyelets"]))
    eyes = [(a[0] + (z[0] - a[0]) * t, a[1] + (z[1] - a[1]) * t + 0.02) for t in steps]
    lace_rgb = d.mix(b.thread, (255, 255, 255), 0.5)
    for (x0, y0), (x1, y1) in zip(eyes[:-1], eyes[1:]):
        canvas.line([(x0, y0 - 0.02), (x1, y1)], lace_rgb, 0.007)
    for ex, ey in eyes:
        d.metal_fill(canvas, canvas.disc(ex, ey, 0.011), look.hardware)
        canvas.dot(ex, ey, 0.011 / 2.4, d.scale_rgb(body_rgb, 0.4))
    bx, by = eyes[0]
    for angle in var["lace"]:
        t = math.radians(-120 + angle)
        tip = (bx + var["lace_len"] * math.cos(t), by + 0.6 * var["lace_len"] * math.sin(t))
        canvas.line([(bx, by), tip], lace_rgb, 0.007)

    _wordmark(canvas, product, look, (0.55 * hw + 0.01, 0.5 * (cy + 0.08 + st)), 0.03, 0.7 * hw, _engrave(accent))
    logo_at = (float(p["logo_x"]), float(p["logo_y"]) * aspect)
    _logo(canvas, product, look, logo_at, float(p["logo_r"]), ink, patch=d.scale_rgb(accent, 0.85))


# --- watch ---------------------------------------------------------------------------------------


def _watch_variation(rng: np.random.Generator) -> dict[str, Any]:
    hour, minute, second = rng.uniform(0, 12), rng.uniform(0, 60), rng.uniform(0, 60)
    return {"hour": float(hour), "minute": float(minute), "second": float(second)}


def _watch(canvas: d.Canvas, product: Product, look: _Look, var: dict[str, Any]) -> None:
    p, b = product.params, product.brand
    aspect = float(p["aspect"])
    cx, cy = 0.5, aspect / 2
    case_r, bezel, sw = float(p["case_r"]), float(p["bezel"]), float(p["strap_w"])
    body_rgb, accent, ink = look.dye(p["body"]), look.dye(p["accent"]), look.dye(b.pattern_colour)
    tile = _tile(canvas, product)
    m = _margin(product, look)

    # two monogram straps whose pattern lines up across the case
    for y0, y1, shift in ((0.02, cy - 0.1, (0.0, 0.0)), (cy + 0.1, aspect - 0.02, look.seam_shift)):
        strap = canvas.rect(cx - sw / 2, y0, cx + sw / 2, y1, radius=0.05)
        d.pattern_fill(canvas, strap, body_rgb, ink, tile, _phase(canvas, product, shift))
        d.shade(canvas, strap, "x", 0.35)
        for side in (-1, 1):
            x = cx + side * (sw / 2 - m)
            _stitch(canvas, product, look, [(x, y0 + 0.06), (x, y1 - 0.02)])
    # buckle at the end of the top strap, keeper on the bottom one
    buckle = canvas.rect(cx - sw / 2 - 0.025, 0.06, cx + sw / 2 + 0.025, 0.13, radius=0.015, outline=0.014)
    d.metal_fill(canvas, buckle, look.hardware)
    keeper = canvas.rect(cx - sw / 2 - 0.008, aspect - 0.24, cx + sw / 2 + 0.008, aspect - 0.2)
    canvas.fill(keeper, d.scale_rgb(accent, 0.8))

    # lugs, crown and case in one piece of metal, a bezel ring
    metal, md = canvas.mask()
    for sy in (-1, 1):
        lug_y = cy + sy * case_r * 0.75
        md.rectangle(canvas.pts([(cx - sw / 2 - 0.01, lug_y - 0.06), (cx + sw / 2 + 0.01, lug_y + 0.06)]), fill=255)
    crown = canvas.pts([(cx + case_r - 0.01, cy - 0.035), (cx + case_r + 0.045, cy + 0.035)])
    md.rounded_rectangle(crown, radius=canvas.px(0.01), fill=255)
    md.ellipse(canvas.pts([(cx - case_r, cy - case_r), (cx + case_r, cy + case_r)]), fill=255)
    d.metal_fill(canvas, metal, look.hardware, angle=60.0)
    canvas.fill(canvas.disc(cx, cy, case_r - 0.45 * bezel, outline=0.006), d.scale_rgb(look.hardware, 0.7))

    # dial: minute track, indices, wordmark under 12, emblem above 6
    dial_r = case_r - bezel
    dial_rgb: RGB = tuple(p["dial"])
    if 0.15 <= d.luminance(dial_rgb) <= 0.85:  # a coloured dial is dyed; white and black ones are not
        dial_rgb = look.dye(dial_rgb)
    light_dial = d.luminance(dial_rgb) > 0.5
    dial = canvas.disc(cx, cy, dial_r)
    canvas.fill(dial, dial_rgb)
    d.shade(canvas, dial, "r", 0.18)
    print_rgb = _engrave(dial_rgb)
    index_rgb = d.scale_rgb(look.hardware, 0.6) if light_dial else look.hardware
    for k in range(60):
        a = math.radians(k * 6 - 90)
        ca, sa = math.cos(a), math.sin(a)
        if k % 5:
            r0, r1 = 0.93 * dial_r, 0.97 * dial_r
            canvas.line([(cx + r0 * ca, cy + r0 * sa), (cx + r1 * ca, cy + r1 * sa)], print_rgb, 0.003)
        elif p["indices"] == "dot":
            canvas.dot(cx + 0.82 * dial_r * ca, cy + 0.82 * dial_r * sa, 0.022, index_rgb)
        else:
            for off in (-0.012, 0.012) if k == 0 else (0.0,):
                ox, oy = -sa * off, ca * off
                r0, r1 = 0.72 * dial_r, 0.9 * dial_r
                bar = [(cx + r0 * ca + ox, cy + r0 * sa + oy), (cx + r1 * ca + ox, cy + r1 * sa + oy)]
                canvas.line(bar, index_rgb, 0.014)
    word_at = (cx, cy - float(p["word_y"]) * dial_r)
    _wordmark(canvas, product, look, word_at, float(p["word_h"]) * dial_r, 0.95 * dial_r, print_rgb)
    _logo(canvas, product, look, (cx, cy + float(p["logo_y"]) * dial_r), float(p["logo_r"]) * dial_r, print_rgb)

    def hand(angle_deg: float, length: float, width: float, rgb: RGB) -> None:
        a = math.radians(angle_deg - 90)
        ca, sa = math.cos(a), math.sin(a)
        tail = (cx - 0.12 * length * ca, cy - 0.12 * length * sa)
        pts = [(tail[0] - width * sa, tail[1] + width * ca), (cx + length * ca, cy + length * sa),
               (tail[0] + width * sa, tail[1] - width * ca)]  # fmt: skip
        canvas.draw.polygon(canvas.pts(pts), fill=(*rgb, 255))

    hand_rgb = d.scale_rgb(look.hardware, 0.55 if light_dial else 1.15)
    hand(30 * (var["hour"] + var["minute"] / 60), 0.55 * dial_r, 0.022, hand_rgb)
    hand(6 * var["minute"], 0.85 * dial_r, 0.016, hand_rgb)
    hand(6 * var["second"], 0.9 * dial_r, 0.005, accent)
    canvas.dot(cx, cy, 0.018, hand_rgb)
    d.shade(canvas, dial, "r", 0.12, light=True)  # glass


# --- perfume -------------------------------------------------------------------------------------


def _perfume_variation(rng: np.random.Generator) -> dict[str, Any]:
    return {"level": float(rng.uniform(0.55, 0.92))}


def _perfume(canvas: d.Canvas, product: Product, look: _Look, var: dict[str, Any]) -> None:
    p, b = product.params, product.brand
    aspect = float(p["aspect"])
    body_rgb, accent, ink = look.dye(p["body"]), look.dye(p["accent"]), look.dye(b.pattern_colour)
    tile = _tile(canvas, product)
    m = _margin(product, look)

    # box seen from the left: side face and front face (the pattern runs on across the fold), lid
    depth, bw = float(p["box_depth"]), float(p["box_w"])
    bottom = aspect - 0.03
    top = bottom - float(p["box_h"]) * aspect
    x0, x1, x2 = 0.03, 0.03 + depth, 0.03 + depth + bw
    lift = 0.6 * depth
    side = canvas.polygon([(x0, top - lift), (x1, top), (x1, bottom), (x0, bottom - lift)])
    front = canvas.polygon([(x1, top), (x2, top), (x2, bottom), (x1, bottom)])
    d.pattern_fill(canvas, side, d.scale_rgb(body_rgb, 0.78), d.scale_rgb(ink, 0.8), tile, _phase(canvas, product))
    d.pattern_fill(canvas, front, body_rgb, ink, tile, _phase(canvas, product, look.seam_shift[::-1]))
    lid = canvas.polygon([(x0, top - lift), (x2 - depth, top - lift), (x2, top), (x1, top)])
    canvas.fill(lid, d.scale_rgb(body_rgb, 1.15))
    canvas.line([(x1, top), (x1, bottom)], d.scale_rgb(body_rgb, 0.5), 0.003)
    d.shade(canvas, front, "x", 0.2)

    band_y = top + float(p["band_y"]) * (bottom - top)
    canvas.fill(canvas.rect(x1, band_y - 0.05, x2, band_y + 0.05), accent)
    for y in (band_y - 0.05 + m, band_y + 0.05 - m):
        _stitch(canvas, product, look, [(x1 + 0.01, y), (x2 - 0.01, y)], dots=True)
    _wordmark(canvas, product, look, ((x1 + x2) / 2, band_y), 0.03, 0.8 * bw, _engrave(accent))

    # bottle in front, to the right: glass, liquid, a highlight
    bottle_w = float(p["bottle_w"])
    by1 = aspect - 0.015
    by0 = by1 - float(p["bottle_h"]) * aspect
    bx0, bx1 = 0.975 - bottle_w, 0.975
    glass = d.mix(accent, (245, 245, 245), 0.6)
    bottle = canvas.rect(bx0, by0, bx1, by1, radius=0.05)
    canvas.fill(bottle, glass)
    level = by0 + 0.03 + (1 - var["level"]) * (by1 - by0 - 0.06)
    canvas.fill(canvas.rect(bx0 + 0.025, level, bx1 - 0.025, by1 - 0.03, radius=0.03), d.mix(accent, glass, 0.35))
    d.shade(canvas, bottle, "x", 0.3)
    highlight = canvas.rect(bx0 + 0.03, by0 + 0.04, bx0 + 0.055, by1 - 0.05, radius=0.01, value=150)
    canvas.overlay(highlight, (255, 255, 255), 1.0)

    # neck and knurled cap
    cx = (bx0 + bx1) / 2
    cw = float(p["cap_w"]) * bottle_w
    ch = float(p["cap_h"]) * (by1 - by0)
    canvas.fill(canvas.rect(cx - 0.3 * cw, by0 - 0.03, cx + 0.3 * cw, by0 + 0.01), d.scale_rgb(glass, 0.85))
    cap = canvas.rect(cx - cw / 2, by0 - 0.03 - ch, cx + cw / 2, by0 - 0.025, radius=0.012)
    d.metal_fill(canvas, cap, look.hardware, angle=0.0)
    for x in np.linspace(cx - cw / 2 + 0.015, cx + cw / 2 - 0.015, 9):
        canvas.line([(x, by0 - 0.02 - ch), (x, by0 - 0.035)], d.scale_rgb(look.hardware, 0.7), 0.003)

    # label with a dotted frame, the emblem, the wordmark and a line of small print
    lw, lh = 0.74 * bottle_w, float(p["label_h"]) * (by1 - by0)
    ly = by0 + 0.52 * (by1 - by0)
    label_rgb: RGB = tuple(p["label"])
    canvas.fill(canvas.rect(cx - lw / 2, ly - lh / 2, cx + lw / 2, ly + lh / 2), label_rgb)
    fx, fy = lw / 2 - m - 0.004, lh / 2 - m - 0.004
    frame = [(cx - fx, ly - fy), (cx + fx, ly - fy), (cx + fx, ly + fy), (cx - fx, ly + fy)]
    _stitch(canvas, product, look, frame, dots=True, closed=True)
    text_rgb = (40, 36, 34)
    _logo(canvas, product, look, (cx, ly - 0.2 * lh), float(p["logo_r"]), text_rgb)
    _wordmark(canvas, product, look, (cx, ly + 0.12 * lh), 0.032, 0.8 * lw, text_rgb)
    small = d.text_mask("EAU DE PARFUM", b.font, d.cap_px(canvas.px(0.012)), 0.15)
    d.paste_mask(canvas, small, canvas.pt(cx, ly + 0.3 * lh), (90, 86, 80))


_DRAWERS: dict[str, Callable[[d.Canvas, Product, _Look, dict[str, Any]], None]] = {
    "handbag": _handbag,
    "sneaker": _sneaker,
    "watch": _watch,
    "perfume": _perfume,
}
_VARIATIONS: dict[str, Callable[[np.random.Generator], dict[str, Any]]] = {
    "handbag": _handbag_variation,
    "sneaker": _sneaker_variation,
    "watch": _watch_variation,
    "perfume": _perfume_variation,
}
