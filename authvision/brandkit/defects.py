"""Counterfeit defects, their families, and the factories that make fakes.

A :class:`Defect` is one way a fake departs from the genuine item, with a ``severity`` in (0, 1]
(0.2: barely visible, 1: obvious). What each type does at severity ``s`` (``W``: item width):

=================  ==============================================================================
``font``           wordmark in a look-alike font, scaled to ``1 + 0.1 * s`` times the genuine
                   wordmark's box: same design at another width/weight (s < 0.45), a related design
                   (s < 0.75), another design
``spacing``        letter spacing off by ``0.3 * s`` em (tighter or looser)
``misspelling``    a look-alike letter in the right letter's place (VARENNE → VARENME, s < 0.4),
                   two letters swapped in place (s < 0.75), a letter dropped
``logo_scale``     emblem ``1 + 0.35 * s`` times larger, or ``1 - 0.3 * s`` times smaller
``logo_shift``     emblem moved by ``0.06 * s * W`` diagonally
``emblem``         emblem missing a detail (s < 0.4), simplified (s < 0.75), another emblem
``hue``            body, accent and pattern colours hue-rotated by ``30 * s`` degrees
``saturation``     their saturation scaled by ``1 - 0.6 * s`` (dull dye) or ``1 + 0.8 * s``
``hardware_colour``  metal blended ``0.7 * s`` of the way to another metal (brass, copper, chrome)
``pattern_seam``   monogram pattern misaligned at its seam: ``0.35 * s`` pattern periods along the
                   seam and ``0.2 * s`` across it
``stitch_count``   stitches ``1 + 0.6 * s`` times longer (fewer), thread ``1 + 0.4 * s`` thicker, sewn
                   ``1 + 0.8 * s`` times further from the edge (on a perfume: the dotted borders)
=================  ==============================================================================

``variant`` picks among a type's forms (direction of a shift, which letter, which other emblem).

Defects are grouped in :data:`DEFECT_FAMILIES`. A :class:`Factory` makes one product's fakes with
2-3 defects of one family, at severities fixed by the seed, so its fakes share them; a product has
several factories, and a family can be held out of everything but test listings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._seeding import ROLE_FACTORY, generator, text_key
from .catalog import Product

__all__ = [
    "DEFAULT_SEVERITY_RANGE",
    "DEFECT_FAMILIES",
    "DEFECT_TYPES",
    "Defect",
    "Factory",
    "family_of",
    "make_factories",
]

DEFECT_FAMILIES: dict[str, tuple[str, ...]] = {
    "colour": ("hue", "saturation", "hardware_colour"),
    "typography": ("font", "spacing", "misspelling"),
    "geometry": ("logo_scale", "logo_shift", "emblem"),
    "construction": ("pattern_seam", "stitch_count"),
}
"""Defect types by family; the families partition :data:`DEFECT_TYPES`."""

DEFECT_TYPES: tuple[str, ...] = tuple(t for types in DEFECT_FAMILIES.values() for t in types)
"""Every defect type."""

DEFAULT_SEVERITY_RANGE: tuple[float, float] = (0.3, 0.8)
"""Factory severities are drawn uniformly from this range unless a kit says otherwise."""

_FAMILY_OF = {t: family for family, types in DEFECT_FAMILIES.items() for t in types}
N_VARIANTS = 4


def family_of(defect_type: str) -> str:
    """The family of a defect type."""
    try:
        return _FAMILY_OF[defect_type]
    except KeyError:
        raise ValueError(f"unknown defect type {defect_type!r}; choose from {', '.join(DEFECT_TYPES)}") from None


@dataclass(frozen=True)
class Defect:
    """One counterfeit defect: ``type`` from :data:`DEFECT_TYPES`, ``severity`` in (0, 1]."""

    type: str
    severity: float
    variant: int = 0

    def __post_init__(self) -> None:
        family_of(self.type)
        if isinstance(self.severity, bool) or not isinstance(self.severity, (int, float)):
            raise TypeError(f"severity must be a float in (0, 1], got {type(self.severity).__name__}")
        if not 0.0 < self.severity <= 1.0:
            raise ValueError(f"severity must be in (0, 1], got {self.severity!r}")
        if isinstance(self.variant, bool) or not isinstance(self.variant, int) or self.variant < 0:
            raise ValueError(f"variant must be a non-negative int, got {self.variant!r}")

    @property
    def family(self) -> str:
        return _FAMILY_OF[self.type]

    @property
    def tag(self) -> str:
        """``type:severity``, as listings.csv writes it."""
        return f"{self.type}:{self.severity:.2f}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "severity": self.severity, "variant": self.variant}


@dataclass(frozen=True)
class Factory:
    """A counterfeit workshop making one product's fakes, all with the same defects."""

    name: str
    product: str
    family: str
    defects: tuple[Defect, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "product": self.product,
            "family": self.family,
            "defects": [d.to_dict() for d in self.defects],
        }


def make_factories(
    product: Product,
    *,
    seed: int,
    count: int = 4,
    severity_range: tuple[float, float] = DEFAULT_SEVERITY_RANGE,
    defects_per_factory: tuple[int, int] = (2, 3),
) -> tuple[Factory, ...]:
    """``count`` factories of ``product``, families taken in a seeded order then cycled.

    Each factory gets ``defects_per_factory`` (inclusive range, capped by the family's size) distinct
    defects of its family, with severities drawn uniformly from ``severity_range`` (rounded to 0.01).
    """
    low, high = severity_range
    if not 0.0 < low <= high <= 1.0:
        raise ValueError(f"severity_range must satisfy 0 < low <= high <= 1, got {severity_range!r}")
    dmin, dmax = defects_per_factory
    if not 1 <= dmin <= dmax:
        raise ValueError(f"defects_per_factory must satisfy 1 <= min <= max, got {defects_per_factory!r}")
    key = text_key(product.id)
    families = list(DEFECT_FAMILIES)
    order = [families[i] for i in generator(seed, ROLE_FACTORY, key).permutation(len(families))]
    factories = []
    for k in range(count):
        rng = generator(seed, ROLE_FACTORY, key, k + 1)
        family = order[k % len(order)]
        types = DEFECT_FAMILIES[family]
        n = min(int(rng.integers(dmin, dmax + 1)), len(types))
        chosen = sorted(rng.choice(len(types), size=n, replace=False))
        defects = tuple(
            Defect(
                types[i],
                # Rounded so that what kit.json and listings.csv record is exactly what was drawn.
                max(0.01, round(float(rng.uniform(low, high)), 2)),
                int(rng.integers(N_VARIANTS)),
            )
            for i in chosen
        )
        factories.append(Factory(f"{product.id}-f{k + 1}", product.id, family, defects))
    return tuple(factories)
