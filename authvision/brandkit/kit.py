"""A whole brand kit on disk: reference photos as brands supply them, listings as marketplaces show them.

:func:`make_kit` decides everything (brands, products, factories, which factories' fakes the brand
has seized); :func:`generate_kit` plans every photo from the seed, renders each from its own
generator (so the bytes do not depend on order or on the number of workers) and writes::

    out_dir/references/<brand>/<product>/<genuine|fake>/<name>.jpg
    out_dir/references.csv      one row per reference photo (factory, defects, background...)
    out_dir/listings/<name>.jpg
    out_dir/listings.csv        ground truth and conditions of each listing (see LISTING_COLUMNS)
    out_dir/kit.json            seed, config, brands, products, factories, pools, counts, version

The kit's parts: :mod:`~authvision.brandkit.kit_config` (:class:`KitConfig`),
:mod:`~authvision.brandkit.kit_plan` (:func:`make_kit` and the photo plan),
:mod:`~authvision.brandkit._kit_jobs` (rendering the photos) and
:mod:`~authvision.brandkit.kit_files` (the CSVs and kit.json, :data:`LISTING_COLUMNS`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from authvision.errors import OutputExistsError

from ._kit_jobs import _run_all
from .kit_config import KitConfig
from .kit_files import KIT_FORMAT as KIT_FORMAT  # re-exported: the kit's names stay importable from here
from .kit_files import LISTING_COLUMNS, REFERENCE_COLUMNS, _counts, _describe, _listing_row, _reference_row, _write_csv
from .kit_plan import Kit, _listing_jobs, _reference_jobs, _splits, make_kit

__all__ = ["LISTING_COLUMNS", "REFERENCE_COLUMNS", "Kit", "KitConfig", "KitSummary", "generate_kit", "make_kit"]

logger = logging.getLogger(__name__)

_OWNED = ("references", "listings", "listings.csv", "references.csv", "kit.json")


@dataclass(frozen=True)
class KitSummary:
    """Where :func:`generate_kit` wrote the kit, and how many photos of each sort."""

    out_dir: Path
    references_dir: Path
    references_csv: Path
    listings_csv: Path
    kit_json: Path
    counts: Mapping[str, int] = field(hash=False)


def generate_kit(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    config: KitConfig = KitConfig(),  # noqa: B008 (frozen: one shared default is safe)
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
        OutputExistsError: ``out_dir`` already holds a kit and ``overwrite`` is False (a ``FileExistsError`` too).
        ValueError: a bad ``workers`` or an impossible config (see :func:`make_kit`).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    out = Path(out_dir)
    existing = [name for name in _OWNED if (out / name).exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{out} already holds a brand kit ({', '.join(existing)}): choose another folder, or replace that kit "
            "(only the kit's own files are removed)",
            path=out,
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
