"""A seeded simulator of brand kits: what brands supply and what marketplaces show.

No public data set of genuine-vs-counterfeit listing photos exists, so authvision makes its own:
invented brands (wordmark, font, emblem, monogram pattern, palette, hardware metal), products drawn
parametrically (handbag, sneaker, watch, perfume), counterfeit factories whose fakes share
controllable defects (:mod:`~authvision.brandkit.defects`), brand reference photos (studio shots,
seized fakes) and marketplace listings (phone photos on cluttered backgrounds, templates, banners,
re-used photos). Pure Pillow + numpy; everything derives from one seed.

    from authvision.brandkit import KitConfig, generate_kit
    summary = generate_kit("kit/", seed=0, config=KitConfig(listings=400))

or ``python -m authvision.brandkit OUT --seed 0``.
"""

from __future__ import annotations

from .backgrounds import BACKGROUND_POOLS, available_backgrounds, render_background
from .catalog import KINDS, Brand, Product, make_brands, make_products
from .defects import DEFECT_FAMILIES, DEFECT_TYPES, Defect, Factory, family_of, make_factories
from .items import render_item
from .kit import LISTING_COLUMNS, REFERENCE_COLUMNS, Kit, KitConfig, KitSummary, generate_kit, make_kit
from .photos import condition_tags, render_listing, render_reference, reuse_photo

__all__ = [
    "BACKGROUND_POOLS",
    "DEFECT_FAMILIES",
    "DEFECT_TYPES",
    "KINDS",
    "LISTING_COLUMNS",
    "REFERENCE_COLUMNS",
    "Brand",
    "Defect",
    "Factory",
    "Kit",
    "KitConfig",
    "KitSummary",
    "Product",
    "available_backgrounds",
    "condition_tags",
    "family_of",
    "generate_kit",
    "make_brands",
    "make_factories",
    "make_kit",
    "make_products",
    "render_background",
    "render_item",
    "render_listing",
    "render_reference",
    "reuse_photo",
]
