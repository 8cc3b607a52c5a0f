"""A whole brand kit on disk: reference photos as brands supply them, listings as marketplaces show them.

:func:`make_kit` decides everything (brands, products, factories, which factories' fakes the brand
has seized); :func:`generate_kit` plans every photo from the seed, renders each from its own
generator (so the bytes do not depend on order or on the number of workers) and writes::

    out_dir/references/<brand>/<product>/<genuine|fake>/<name>.jpg
    out_dir/references.csv      one row per reference photo (factory, defects, background...)
    out_dir/listings/<name>.jpg
    out_dir/listings.csv        ground truth and conditions of each listing (see LISTING_COLUMNS)
    out_dir/kit.json            seed, config, brands, products, factories, pools, counts, version
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ._seeding import (
    ROLE_LISTING,
    ROLE_PLAN,
    ROLE_REFERENCE_FAKE,
    ROLE_REFERENCE_GENUINE,
    generator,
    text_key,
)
from .backgrounds import BACKGROUND_POOLS, available_backgrounds
from .catalog import KINDS, Brand, Product, make_brands, make_products
from .defects import (
    DEFAULT_SEVERITY_RANGE,
    DEFECT_FAMILIES,
    Defect,
    Factory,
    make_factories,
)
from .photos import (
    PHOTO_SIZE,
    _reference,
    condition_tags,
    listing_jpeg,
    plain_photo_jpeg,
    reference_jpeg,
    reuse_jpeg,
    reused_visibility,
)

__all__ = ["LISTING_COLUMNS", "REFERENCE_COLUMNS", "Kit", "KitConfig", "KitSummary", "generate_kit", "make_kit"]

logger = logging.getLogger(__name__)

KIT_FORMAT = 1

LISTING_COLUMNS: tuple[str, ...] = (
    "path", "label", "product", "brand", "kind", "factory", "factory_seen", "family", "defects",
    "conditions", "background", "reused_from", "split", "defect_pixels", "defect_pixels_count",
)  # fmt: skip
"""Columns of listings.csv. ``label`` is what the photo shows: genuine, fake, or unknown (a product
with no references at all). ``defects`` is ``type:severity;...``; ``conditions`` is the listing's
condition tags (:func:`~authvision.brandkit.photos.condition_tags`); ``reused_from`` the reference a
re-used photo was copied from; ``split`` calibration or test. For a fake, ``defect_pixels`` is the
share of the item's visible pixels that its defects change in this very photo, and
``defect_pixels_count`` their number: the genuine twin (the same item without defects, in the same
photo conditions: background, pose, light, noise, template, JPEG) is rendered alongside and the two
decoded photos compared (largest channel difference > 8/255, counted inside the item's mask; see
:func:`~authvision.brandkit.photos.defect_visibility`). Empty for genuine and unknown listings."""

REFERENCE_COLUMNS: tuple[str, ...] = (
    "path", "label", "product", "brand", "kind", "factory", "family", "defects", "background", "conditions",
)  # fmt: skip
"""Columns of references.csv."""

_PLAIN_PHOTO_SHARE = 0.2  # of unknown listings: photos showing no product at all
_REUSED_GENUINE_SHARE = 0.7  # of re-used listings: copies of official studio shots (rest: seized fakes' photos)
_OWNED = ("references", "listings", "listings.csv", "references.csv", "kit.json")


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


@dataclass(frozen=True)
class KitSummary:
    """Where :func:`generate_kit` wrote the kit, and how many photos of each sort."""

    out_dir: Path
    references_dir: Path
    references_csv: Path
    listings_csv: Path
    kit_json: Path
    counts: Mapping[str, int] = field(hash=False)


def make_kit(seed: int = 0, config: KitConfig = KitConfig()) -> Kit:
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


# --- jobs: one photo each, run in any order and any process --------------------------------------


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


def _run(job: _Job, seed: int, out_dir: str, size: int) -> dict[str, Any]:
    rng = generator(seed, job.role, *job.index)
    if job.kind == "reference":
        assert job.product is not None
        data, info = reference_jpeg(job.product, job.label, job.factory, rng=rng, size=size)  # type: ignore[arg-type]
    elif job.kind == "listing":
        assert job.product is not None
        defects = job.factory.defects if job.factory is not None else ()
        data, info = listing_jpeg(job.product, defects, rng=rng, size=size, measure_defects=bool(defects))
    elif job.kind == "reuse":
        with Image.open(os.path.join(out_dir, job.source)) as src:
            data, info = reuse_jpeg(src.convert("RGB"), rng=rng, size=size)
        if job.label == "fake":  # the seized fake's photo, re-rendered with its genuine twin
            assert job.product is not None and job.factory is not None
            ref_rng = generator(seed, ROLE_REFERENCE_FAKE, *job.source_index)
            source, _, twin = _reference(job.product, "fake", job.factory, rng=ref_rng, size=size, twin=True)
            with open(os.path.join(out_dir, job.source), "rb") as f:
                if twin is None or f.read() != source:
                    raise RuntimeError(f"{job.source} does not re-render identically: cannot measure its defects")
            info.update(reused_visibility(data, twin, rng=generator(seed, job.role, *job.index), size=size))
    else:
        data, info = plain_photo_jpeg(rng, size=size)
    target = os.path.join(out_dir, job.path)
    with open(target, "wb") as f:
        f.write(data)
    return info


def _run_star(args: tuple[_Job, int, str, int]) -> dict[str, Any]:
    return _run(*args)


def _run_all(jobs: Sequence[_Job], seed: int, out_dir: Path, size: int, workers: int) -> list[dict[str, Any]]:
    args = [(job, seed, str(out_dir), size) for job in jobs]
    if workers <= 1 or len(jobs) < 2:
        return [_run_star(a) for a in args]
    # Processes, not threads: drawing is pure-Python-heavy and would serialise on the GIL.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_run_star, args, chunksize=max(1, len(args) // (8 * workers))))


# --- the kit --------------------------------------------------------------------------------------


def generate_kit(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    config: KitConfig = KitConfig(),
    workers: int = 1,
    overwrite: bool = False,
) -> KitSummary:
    """Render a whole kit into ``out_dir``; the same seed and config give byte-identical files.

    Args:
        out_dir: created if missing.
        seed: the kit's seed; every brand, product, factory and photo derives from it.
        config: sizes and shares (:class:`KitConfig`).
        workers: processes rendering photos; the output does not depend on it.
        overwrite: replace an existing kit in ``out_dir`` (only the kit's own files are removed).

    Raises:
        FileExistsError: ``out_dir`` already holds a kit and ``overwrite`` is False.
        ValueError: a bad ``workers`` or an impossible config (see :func:`make_kit`).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    out = Path(out_dir)
    existing = [name for name in _OWNED if (out / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out} already holds a kit ({', '.join(existing)}); pass overwrite=True to replace it"
        )
    for name in existing:
        target = out / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    kit = make_kit(seed, config)
    size = config.photo_size
    ref_jobs = _reference_jobs(kit)
    for job in ref_jobs:
        (out / job.path).parent.mkdir(parents=True, exist_ok=True)
    logger.info("rendering %d reference photos with %d worker(s)", len(ref_jobs), workers)
    ref_infos = _run_all(ref_jobs, seed, out, size, workers)

    listing_jobs = _listing_jobs(kit, ref_jobs)
    (out / "listings").mkdir(parents=True, exist_ok=True)
    logger.info("rendering %d listing photos", len(listing_jobs))
    listing_infos = _run_all(listing_jobs, seed, out, size, workers)

    ref_info_by_path = {job.path: info for job, info in zip(ref_jobs, ref_infos)}
    ref_rows = [_reference_row(job, info) for job, info in zip(ref_jobs, ref_infos)]
    splits = _splits(kit, listing_jobs)
    rows = [
        _listing_row(kit, job, info, split, ref_info_by_path)
        for job, info, split in zip(listing_jobs, listing_infos, splits)
    ]
    _write_csv(out / "references.csv", REFERENCE_COLUMNS, ref_rows)
    _write_csv(out / "listings.csv", LISTING_COLUMNS, rows)
    counts = _counts(ref_rows, rows)
    (out / "kit.json").write_text(json.dumps(_describe(kit, counts), indent=2) + "\n", encoding="utf-8")
    return KitSummary(
        out_dir=out,
        references_dir=out / "references",
        references_csv=out / "references.csv",
        listings_csv=out / "listings.csv",
        kit_json=out / "kit.json",
        counts=counts,
    )


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


def _defect_tags(defects: Sequence[Defect]) -> str:
    return ";".join(d.tag for d in defects)


def _reference_row(job: _Job, info: Mapping[str, Any]) -> dict[str, str]:
    p, f = job.product, job.factory
    assert p is not None
    return {
        "path": job.path,
        "label": job.label,
        "product": p.id,
        "brand": p.brand.slug,
        "kind": p.kind,
        "factory": f.name if f else "",
        "family": f.family if f else "",
        "defects": _defect_tags(f.defects) if f else "",
        "background": str(info["background"]),
        "conditions": ";".join(condition_tags(info)),
    }


def _listing_row(
    kit: Kit, job: _Job, info: Mapping[str, Any], split: str, ref_infos: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    p, f = job.product, job.factory
    info = dict(info)
    if job.kind == "reuse":
        info["background"] = ref_infos[job.source]["background"]
    seen = f is not None and f.name in kit.seen_factories.get(f.product, ())
    return {
        "path": job.path,
        "label": job.label,
        "product": p.id if p else "",
        "brand": p.brand.slug if p else "",
        "kind": p.kind if p else "",
        "factory": f.name if f else "",
        "factory_seen": ("true" if seen else "false") if f else "",
        "family": f.family if f else "",
        "defects": _defect_tags(f.defects) if f else "",
        "conditions": ";".join(condition_tags(info)),
        "background": str(info["background"]),
        "reused_from": job.source,
        "split": split,
        "defect_pixels": f"{info['defect_pixels']:.6f}" if "defect_pixels" in info else "",
        "defect_pixels_count": str(info["defect_pixels_count"]) if "defect_pixels_count" in info else "",
    }


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _counts(ref_rows: Sequence[Mapping[str, str]], rows: Sequence[Mapping[str, str]]) -> dict[str, int]:
    counts = {
        "references": len(ref_rows),
        "references_genuine": sum(r["label"] == "genuine" for r in ref_rows),
        "references_fake": sum(r["label"] == "fake" for r in ref_rows),
        "listings": len(rows),
    }
    for label in ("genuine", "fake", "unknown"):
        counts[f"listings_{label}"] = sum(r["label"] == label for r in rows)
    counts["listings_reused"] = sum(bool(r["reused_from"]) for r in rows)
    counts["listings_fake_unseen_factory"] = sum(r["factory_seen"] == "false" for r in rows)
    # fakes by defect visibility: the share of the item's pixels their defects change in the photo
    shares = [float(r["defect_pixels"]) for r in rows if r["defect_pixels"]]
    counts["listings_fake_defect_pixels_below_0.1pct"] = sum(v < 0.001 for v in shares)
    counts["listings_fake_defect_pixels_0.1_to_1pct"] = sum(0.001 <= v < 0.01 for v in shares)
    counts["listings_fake_defect_pixels_1pct_or_more"] = sum(v >= 0.01 for v in shares)
    for split in ("calibration", "test"):
        counts[f"listings_{split}"] = sum(r["split"] == split for r in rows)
    return counts


def _describe(kit: Kit, counts: Mapping[str, int]) -> dict[str, Any]:
    from authvision import __version__

    return {
        "format": KIT_FORMAT,
        "authvision_version": __version__,
        "seed": kit.seed,
        "config": kit.config.to_dict(),
        "brands": [b.to_dict() | {"referenced": True} for b in kit.brands]
        + [b.to_dict() | {"referenced": False} for b in kit.unknown_brands],
        "products": [
            p.to_dict() | {"referenced": True, "seen_factories": list(kit.seen_factories[p.id])} for p in kit.products
        ]
        + [p.to_dict() | {"referenced": False} for p in kit.unknown_products],
        "factories": [
            f.to_dict() | {"seen": f.name in kit.seen_factories[pid], "heldout": kit.is_heldout(f)}
            for pid, factories in kit.factories.items()
            for f in factories
        ],
        "defect_families": {k: list(v) for k, v in DEFECT_FAMILIES.items()},
        "background_pools": {k: list(v) for k, v in BACKGROUND_POOLS.items()},
        "backgrounds_available": {pool: list(available_backgrounds(pool)) for pool in BACKGROUND_POOLS},
        "counts": dict(counts),
        "files": {"references": "references", "references_csv": "references.csv", "listings_csv": "listings.csv"},
    }
