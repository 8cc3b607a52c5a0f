"""Invented brands and their products: everything fixed about how a genuine item looks.

A :class:`Brand` carries the marks a brand puts on everything (wordmark, font, tracking, emblem,
monogram pattern, palette, hardware metal); a :class:`Product` is one parametric item of a brand
(``kind`` plus its own colours, proportions and the places its marks sit). Both are drawn from the
kit seed alone, so the same seed describes the same catalogue.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._fonts import FONT_FILES
from ._seeding import ROLE_BRAND, ROLE_BRAND_NAMES, ROLE_PRODUCT, generator, text_key

__all__ = ["EMBLEMS", "HARDWARE", "KINDS", "Brand", "Product", "make_brands", "make_products"]

RGB = tuple[int, int, int]

KINDS: tuple[str, ...] = ("handbag", "sneaker", "watch", "perfume")
"""Product kinds that :func:`~authvision.brandkit.render_item` can draw."""

HARDWARE: dict[str, RGB] = {
    "gold": (214, 176, 92),
    "silver": (198, 201, 207),
    "gunmetal": (98, 101, 108),
    "rose-gold": (201, 144, 126),
}
"""Metals of clasps, rings, cases and caps."""

EMBLEMS: tuple[str, ...] = ("star-circle", "initials", "quatrefoil", "diamond", "sun")
"""Styles of brand emblem (monogram motif)."""

PATTERN_MARKS: tuple[str, ...] = ("star4", "dot", "flower")
"""Secondary marks that alternate with the emblem in a monogram pattern."""

_NAMES = (
    "VARENNE", "KOSTRA", "ORLANDA", "MERIDAL", "SOLVINE", "BRAVIK",
    "CASTELO", "LUMERE", "HALDEN", "PRAVIA", "TORVAL", "ELSKIN",
)  # fmt: skip
_SYLLABLES = ("VA", "RE", "NO", "KA", "LI", "MO", "SE", "TRA", "DU", "BE", "QUI", "ZO", "FEL", "MAR")


@dataclass(frozen=True)
class Brand:
    """A brand's marks. Colours are sRGB triples; ``tracking`` is letter spacing in em."""

    name: str
    slug: str
    font: str
    tracking: float
    emblem: str
    initials: str
    pattern_mark: str
    pattern_period: float  # tile side of the monogram pattern, as a fraction of the item width
    body: RGB
    accent: RGB
    pattern_colour: RGB
    thread: RGB
    hardware: str

    @property
    def hardware_rgb(self) -> RGB:
        return HARDWARE[self.hardware]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "slug": self.slug, "font": self.font, "tracking": self.tracking,
            "emblem": self.emblem, "initials": self.initials, "pattern_mark": self.pattern_mark,
            "pattern_period": self.pattern_period, "body": list(self.body), "accent": list(self.accent),
            "pattern_colour": list(self.pattern_colour), "thread": list(self.thread),
            "hardware": self.hardware,
        }  # fmt: skip


@dataclass(frozen=True)
class Product:
    """One item of a brand. ``params`` are the kind's fixed drawing parameters (JSON-serialisable)."""

    id: str
    brand: Brand
    kind: str
    params: Mapping[str, Any] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "brand": self.brand.slug, "kind": self.kind, "params": _jsonable(self.params)}


def make_brands(seed: int, n: int) -> tuple[Brand, ...]:
    """``n`` invented brands. Brand ``i`` depends on ``seed`` and ``i`` only (a prefix is stable)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    names_rng = generator(seed, ROLE_BRAND_NAMES)
    order = names_rng.permutation(len(_NAMES))
    base_hue = float(names_rng.uniform())
    # Fonts, emblems and metals taken in turn from a seeded start, so a kit's brands differ.
    starts = names_rng.integers(0, 1000, size=3)
    brands: list[Brand] = []
    used: set[str] = set()
    for i in range(n):
        rng = generator(seed, ROLE_BRAND, i)
        name = _NAMES[order[i]] if i < len(_NAMES) else _invent_name(rng, used)
        used.add(name)
        # Golden-ratio steps keep the body colours of a kit's brands apart.
        hue = (base_hue + 0.618034 * i + rng.uniform(-0.05, 0.05)) % 1.0
        fonts, metals = sorted(FONT_FILES), sorted(HARDWARE)
        marks = (
            fonts[(starts[0] + i) % len(fonts)],
            EMBLEMS[(starts[1] + i) % len(EMBLEMS)],
            metals[(starts[2] + i) % len(metals)],
        )
        brands.append(_make_brand(name, hue, marks, rng))
    return tuple(brands)


def make_products(brand: Brand, *, seed: int, kinds: Sequence[str] = KINDS) -> tuple[Product, ...]:
    """One product per entry of ``kinds`` (a kind may repeat: its products get ids ``-2``, ``-3``...)."""
    products = []
    seen: dict[str, int] = {}
    for j, kind in enumerate(kinds):
        if kind not in _PARAM_SAMPLERS:
            raise ValueError(f"unknown product kind {kind!r}; choose from {', '.join(KINDS)}")
        seen[kind] = seen.get(kind, 0) + 1
        pid = f"{brand.slug}-{kind}" + (f"-{seen[kind]}" if seen[kind] > 1 else "")
        rng = generator(seed, ROLE_PRODUCT, text_key(brand.slug), j)
        products.append(Product(id=pid, brand=brand, kind=kind, params=_PARAM_SAMPLERS[kind](brand, rng)))
    return tuple(products)


def _invent_name(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        name = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4))))
        if 5 <= len(name) <= 9 and name not in used and name not in _NAMES:
            return name


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def _jitter(rgb: RGB, rng: np.random.Generator, hue: float = 0.03, sat: float = 0.12, val: float = 0.12) -> RGB:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    return _hsv(h + rng.uniform(-hue, hue), s * rng.uniform(1 - sat, 1 + sat), v * rng.uniform(1 - val, 1 + val))


def _make_brand(name: str, hue: float, marks: tuple[str, str, str], rng: np.random.Generator) -> Brand:
    font_key, emblem, hardware = marks
    # Rich, saturated leathers and dyes: a hue shift must show, so no near-grey body colours.
    body = _hsv(hue, rng.uniform(0.5, 0.8), rng.uniform(0.38, 0.62))
    accent = _hsv(hue + rng.choice([0.08, -0.08, 0.5]) + rng.uniform(-0.03, 0.03),
                  rng.uniform(0.45, 0.75), rng.uniform(0.45, 0.75))  # fmt: skip
    pattern_colour = _hsv(hue + rng.uniform(-0.06, 0.06) + 0.05, rng.uniform(0.2, 0.4), rng.uniform(0.82, 0.93))
    thread = _hsv(rng.uniform(0.1, 0.16), rng.uniform(0.25, 0.5), rng.uniform(0.85, 0.95))
    consonants = [c for c in name[1:] if c not in "AEIOU" and c != name[0]]
    return Brand(
        name=name,
        slug=name.lower(),
        font=font_key,
        tracking=round(float(rng.uniform(0.06, 0.2)), 3),
        emblem=emblem,
        initials=name[0] + (consonants[0] if consonants else name[-1]),
        pattern_mark=str(rng.choice(PATTERN_MARKS)),
        pattern_period=round(float(rng.uniform(0.11, 0.15)), 4),
        body=body,
        accent=accent,
        pattern_colour=pattern_colour,
        thread=thread,
        hardware=hardware,
    )


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return round(float(rng.uniform(low, high)), 4)


def _common(brand: Brand, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "body": _jitter(brand.body, rng),
        "accent": _jitter(brand.accent, rng),
        "pattern_phase": (_u(rng, 0, 1), _u(rng, 0, 1)),
    }


def _handbag_params(brand: Brand, rng: np.random.Generator) -> dict[str, Any]:
    return _common(brand, rng) | {
        "aspect": _u(rng, 0.86, 0.98),
        "handle_h": _u(rng, 0.22, 0.3),
        "taper": _u(rng, 0.03, 0.1),
        "corner": _u(rng, 0.04, 0.09),
        "trim": _u(rng, 0.035, 0.05),
        "plate_w": _u(rng, 0.32, 0.38),
        "plate_h": _u(rng, 0.075, 0.09),
        "plate_y": _u(rng, 0.12, 0.2),
        "logo_x": _u(rng, 0.3, 0.7),
        "logo_y": _u(rng, 0.58, 0.72),
        "logo_r": _u(rng, 0.065, 0.085),
        "stitch_pitch": _u(rng, 0.016, 0.022),
        "stitch_margin": _u(rng, 0.012, 0.016),
    }


def _sneaker_params(brand: Brand, rng: np.random.Generator) -> dict[str, Any]:
    light_sole = bool(rng.uniform() < 0.7)
    return _common(brand, rng) | {
        "aspect": _u(rng, 0.48, 0.55),
        "sole_h": _u(rng, 0.09, 0.12),
        "sole": _hsv(0.1, 0.06, 0.96) if light_sole else _jitter(brand.accent, rng),
        "collar_y": _u(rng, 0.16, 0.24),
        "tongue_x": _u(rng, 0.42, 0.48),
        "toe_y": _u(rng, 0.5, 0.6),
        "seam_x": _u(rng, 0.56, 0.62),
        "heel_w": _u(rng, 0.22, 0.27),
        "logo_x": _u(rng, 0.36, 0.42),
        "logo_y": _u(rng, 0.56, 0.64),
        "logo_r": _u(rng, 0.06, 0.072),
        "eyelets": int(rng.integers(5, 8)),
        "stitch_pitch": _u(rng, 0.013, 0.018),
        "stitch_margin": _u(rng, 0.01, 0.013),
    }


def _watch_params(brand: Brand, rng: np.random.Generator) -> dict[str, Any]:
    dial = int(rng.integers(3))
    return _common(brand, rng) | {
        "aspect": _u(rng, 1.42, 1.55),
        "case_r": _u(rng, 0.31, 0.35),
        "bezel": _u(rng, 0.035, 0.05),
        "strap_w": _u(rng, 0.36, 0.42),
        "dial": [_hsv(0.11, 0.08, 0.95), _jitter(brand.accent, rng), _hsv(0.6, 0.15, 0.12)][dial],
        "indices": str(rng.choice(["bar", "dot"])),
        "word_y": _u(rng, 0.38, 0.46),
        "word_h": _u(rng, 0.1, 0.12),
        "logo_y": _u(rng, 0.42, 0.5),
        "logo_r": _u(rng, 0.13, 0.16),
        "stitch_pitch": _u(rng, 0.016, 0.02),
        "stitch_margin": _u(rng, 0.016, 0.02),
    }


def _perfume_params(brand: Brand, rng: np.random.Generator) -> dict[str, Any]:
    return _common(brand, rng) | {
        "aspect": _u(rng, 1.05, 1.18),
        "box_w": _u(rng, 0.38, 0.44),
        "box_h": _u(rng, 0.68, 0.78),
        "box_depth": _u(rng, 0.07, 0.1),
        "band_y": _u(rng, 0.55, 0.65),
        "bottle_w": _u(rng, 0.42, 0.48),
        "bottle_h": _u(rng, 0.5, 0.58),
        "cap_h": _u(rng, 0.15, 0.2),
        "cap_w": _u(rng, 0.4, 0.55),
        "label": _hsv(0.11, _u(rng, 0.04, 0.12), 0.95),
        "label_h": _u(rng, 0.42, 0.5),
        "logo_r": _u(rng, 0.05, 0.065),
        "stitch_pitch": _u(rng, 0.013, 0.017),
        "stitch_margin": _u(rng, 0.012, 0.016),
    }


_PARAM_SAMPLERS = {
    "handbag": _handbag_params,
    "sneaker": _sneaker_params,
    "watch": _watch_params,
    "perfume": _perfume_params,
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
