"""The knobs of a brand kit (:class:`KitConfig`): how many brands, products, factories and photos."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ._shooting import PHOTO_SIZE
from .catalog import KINDS
from .defects import DEFAULT_SEVERITY_RANGE, DEFECT_FAMILIES

__all__ = ["KitConfig"]


@dataclass(frozen=True)
class KitConfig:
    """The knobs of a kit. The defaults make the demo's kit (about 580 photos).

    Attributes:
        brands: brands with reference photos.
        products_per_brand: products of each brand, their kinds taken from ``kinds`` in turn.
        kinds: product kinds.
        genuine_refs: genuine reference photos per product.
        fake_refs: seized-fake reference photos per product, spread over ``ref_factories`` factories.
        factories_per_product: factories making each product's fakes (families in a seeded order).
        ref_factories: factories per product whose fakes the brand has seized (seen factories).
        defects_per_factory: inclusive range of defects per factory (capped by its family's size).
        severity_range: factory severities are drawn uniformly from it, never tuned to a model.
        listings: listing photos in all.
        fake_share: share of fakes among fresh listings of referenced products.
        reused_share: share of listings that are edited copies of reference photos.
        unknown_share: share of listings of products with no references (extra brands, plain photos).
        unknown_brands: extra brands whose products appear in listings only.
        calibration_share: share of each (label, product) group put in the calibration split.
        heldout_families: defect families whose factories appear only in test listings.
        photo_size: long side of every photo, in pixels.
    """

    brands: int = 2
    products_per_brand: int = 4
    kinds: tuple[str, ...] = KINDS
    genuine_refs: int = 12
    fake_refs: int = 10
    factories_per_product: int = 4
    ref_factories: int = 2
    defects_per_factory: tuple[int, int] = (2, 3)
    severity_range: tuple[float, float] = DEFAULT_SEVERITY_RANGE
    listings: int = 400
    fake_share: float = 0.5
    reused_share: float = 0.1
    unknown_share: float = 0.1
    unknown_brands: int = 1
    calibration_share: float = 0.4
    heldout_families: tuple[str, ...] = ()
    photo_size: int = PHOTO_SIZE

    def __post_init__(self) -> None:
        for name in ("kinds", "heldout_families", "severity_range", "defects_per_factory"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # lists would make the config unhashable
        for name in ("brands", "products_per_brand", "genuine_refs", "fake_refs", "factories_per_product",
                     "ref_factories", "listings", "unknown_brands", "photo_size"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"KitConfig.{name} must be a non-negative int, got {value!r}")
        if self.brands < 1 or self.products_per_brand < 1 or self.factories_per_product < 1:
            raise ValueError("KitConfig needs at least one brand, product per brand and factory per product")
        if self.photo_size < 64:
            raise ValueError(f"KitConfig.photo_size must be >= 64, got {self.photo_size}")
        if not self.kinds or any(k not in KINDS for k in self.kinds):
            raise ValueError(f"KitConfig.kinds must be a non-empty tuple of {', '.join(KINDS)}, got {self.kinds!r}")
        for name in ("fake_share", "reused_share", "unknown_share", "calibration_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"KitConfig.{name} must be in [0, 1], got {value!r}")
        if self.reused_share + self.unknown_share > 1.0:
            raise ValueError("KitConfig.reused_share + unknown_share must be at most 1")
        unknown = [f for f in self.heldout_families if f not in DEFECT_FAMILIES]
        if unknown:
            raise ValueError(f"unknown heldout_families {unknown}; choose from {', '.join(DEFECT_FAMILIES)}")
        low, high = self.severity_range
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"KitConfig.severity_range must satisfy 0 < low <= high <= 1, got {self.severity_range!r}")
        dmin, dmax = self.defects_per_factory
        if not 1 <= dmin <= dmax:
            raise ValueError(
                f"KitConfig.defects_per_factory must satisfy 1 <= min <= max, got {self.defects_per_factory!r}"
            )
        if self.fake_refs and self.ref_factories < 1:
            raise ValueError("KitConfig.fake_refs > 0 needs ref_factories >= 1")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
