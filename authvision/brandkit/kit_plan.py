"""What a kit contains and which photos it needs, decided from the seed before any is rendered.

:func:`make_kit` picks brands, products, factories and the factories whose fakes the brand has
seized (:class:`Kit`); the job planners list every reference and listing photo as a :class:`_Job`
(what to render, where to write it, which generator to draw from) and split the listings into
calibration and test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ._seeding import (
    ROLE_LISTING,
    ROLE_PLAN,
    ROLE_REFERENCE_FAKE,
    ROLE_REFERENCE_GENUINE,
    generator,
    text_key,
)
from .catalog import Brand, Product, make_brands, make_products
from .defects import Factory, make_factories
from .kit_config import KitConfig

__all__ = ["Kit", "make_kit"]

_PLAIN_PHOTO_SHARE = 0.2  # of unknown listings: photos showing no product at all
_REUSED_GENUINE_SHARE = 0.7  # of re-used listings: copies of official studio shots (rest: seized fakes' photos)


@dataclass(frozen=True)
class Kit:
    """What a kit contains, before any photo is rendered (from :func:`make_kit`)."""

    seed: int
    config: KitConfig
    brands: tuple[Brand, ...]  # referenced brands
    unknown_brands: tuple[Brand, ...]  # appear in listings only
    products: tuple[Product, ...]  # referenced products
    unknown_products: tuple[Product, ...]
    factories: Mapping[str, tuple[Factory, ...]] = field(hash=False)  # product id -> its factories
    seen_factories: Mapping[str, tuple[str, ...]] = field(hash=False)  # product id -> names (in references)

    def is_heldout(self, factory: Factory) -> bool:
        return factory.family in self.config.heldout_families


def make_kit(seed: int = 0, config: KitConfig = KitConfig()) -> Kit:  # noqa: B008 (frozen)
    """Brands, products and factories of a kit, and which factories' fakes are in the references.

    Raises:
        ValueError: ``heldout_families`` leave a product no factory for its fake references.
    """
    all_brands = make_brands(seed, config.brands + config.unknown_brands)
    kinds = tuple(config.kinds[j % len(config.kinds)] for j in range(config.products_per_brand))
    brands, unknown_brands = all_brands[: config.brands], all_brands[config.brands :]
    products = tuple(p for b in brands for p in make_products(b, seed=seed, kinds=kinds))
    unknown_products = tuple(p for b in unknown_brands for p in make_products(b, seed=seed, kinds=kinds))
    factories = {
        p.id: make_factories(
            p,
            seed=seed,
            count=config.factories_per_product,
            severity_range=config.severity_range,
            defects_per_factory=config.defects_per_factory,
        )
        for p in products
    }
    seen: dict[str, tuple[str, ...]] = {}
    for p in products:
        eligible = [f for f in factories[p.id] if f.family not in config.heldout_families]
        if config.fake_refs and not eligible:
            raise ValueError(
                f"heldout_families={config.heldout_families} leave product {p.id} no factory for its fake "
                "references; hold out fewer families or raise factories_per_product"
            )
        rng = generator(seed, ROLE_PLAN, 0, text_key(p.id))
        k = min(config.ref_factories, len(eligible))
        picked = sorted(rng.choice(len(eligible), size=k, replace=False).tolist()) if k else []
        seen[p.id] = tuple(eligible[i].name for i in picked)
    return Kit(seed, config, brands, unknown_brands, products, unknown_products, factories, seen)


@dataclass(frozen=True)
class _Job:
    kind: str  # "reference" | "listing" | "reuse" | "plain"
    path: str  # relative to out_dir
    role: int
    index: tuple[int, ...]
    product: Product | None = None
    label: str = ""
    factory: Factory | None = None
    source: str = ""  # reference path for "reuse"
    source_index: tuple[int, ...] = ()  # generator indices of that reference (ROLE_REFERENCE_FAKE for a fake)


def _reference_jobs(kit: Kit) -> list[_Job]:
    cfg = kit.config
    jobs = []
    for p in kit.products:
        base = f"references/{p.brand.slug}/{p.id}"
        key = text_key(p.id)
        for i in range(cfg.genuine_refs):
            path = f"{base}/genuine/{p.id}-g{i:03d}.jpg"
            jobs.append(_Job("reference", path, ROLE_REFERENCE_GENUINE, (key, i), p, "genuine"))
        by_name = {f.name: f for f in kit.factories[p.id]}
        seen = [by_name[n] for n in kit.seen_factories[p.id]]
        for i in range(cfg.fake_refs if seen else 0):
            f = seen[i % len(seen)]
            path = f"{base}/fake/{f.name}-{i:03d}.jpg"
            jobs.append(_Job("reference", path, ROLE_REFERENCE_FAKE, (key, i), p, "fake", f))
    return jobs


def _listing_jobs(kit: Kit, ref_jobs: Sequence[_Job]) -> list[_Job]:
    """Every listing, in a seeded shuffled order (names say nothing about labels)."""
    cfg = kit.config
    rng = generator(kit.seed, ROLE_PLAN)
    n_unknown = round(cfg.listings * cfg.unknown_share)
    n_reused = min(round(cfg.listings * cfg.reused_share), cfg.listings - n_unknown)
    n_fresh = cfg.listings - n_unknown - n_reused
    n_fake = round(n_fresh * cfg.fake_share)
    products = kit.products
    specs: list[tuple[str, Product | None, str, Factory | None, str, tuple[int, ...]]] = []
    for i in range(n_fresh - n_fake):
        specs.append(("listing", products[i % len(products)], "genuine", None, "", ()))
    for i in range(n_fake):
        p = products[i % len(products)]
        factories = kit.factories[p.id]
        specs.append(("listing", p, "fake", factories[(i // len(products)) % len(factories)], "", ()))

    genuine_refs = [j for j in ref_jobs if j.label == "genuine"]
    fake_refs = [j for j in ref_jobs if j.label == "fake"]
    if n_reused and not (genuine_refs or fake_refs):
        raise ValueError("re-used listings copy reference photos: raise genuine_refs or set reused_share=0")
    if not fake_refs:
        n_from_genuine = n_reused
    elif not genuine_refs:
        n_from_genuine = 0
    else:
        n_from_genuine = round(n_reused * _REUSED_GENUINE_SHARE)
    n_from_fakes = n_reused - n_from_genuine
    for pool, n in ((genuine_refs, n_from_genuine), (fake_refs, n_from_fakes)):
        picks: Sequence[int] = rng.choice(len(pool), size=n, replace=n > len(pool)).tolist() if n else []
        for k in picks:
            src = pool[int(k)]
            specs.append(("reuse", src.product, src.label, src.factory, src.path, src.index))

    n_plain = round(n_unknown * _PLAIN_PHOTO_SHARE) if kit.unknown_products else n_unknown
    for i in range(n_unknown - n_plain):
        specs.append(("listing", kit.unknown_products[i % len(kit.unknown_products)], "unknown", None, "", ()))
    specs.extend(("plain", None, "unknown", None, "", ()) for _ in range(n_plain))

    order = rng.permutation(len(specs))
    jobs = []
    for i, k in enumerate(order):
        kind, product, label, factory, source, source_index = specs[int(k)]
        path = f"listings/listing-{i:05d}.jpg"
        jobs.append(_Job(kind, path, ROLE_LISTING, (i,), product, label, factory, source, source_index))
    return jobs


def _splits(kit: Kit, jobs: Sequence[_Job]) -> list[str]:
    """Calibration/test, stratified by (label, product); held-out families only ever in test."""
    rng = generator(kit.seed, ROLE_PLAN, 1)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault((job.label, job.product.id if job.product else ""), []).append(i)
    split = ["test"] * len(jobs)
    for key in sorted(groups):
        members = groups[key]
        eligible = [i for i in members if (f := jobs[i].factory) is None or not kit.is_heldout(f)]
        n_cal = min(len(eligible), round(kit.config.calibration_share * len(members)))
        for k in rng.permutation(len(eligible))[:n_cal]:
            split[eligible[int(k)]] = "calibration"
    return split
