"""A kit's tables and description: the rows of references.csv and listings.csv, counts, kit.json."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .backgrounds import BACKGROUND_POOLS, available_backgrounds
from .defects import DEFECT_FAMILIES, Defect
from .kit_plan import Kit, _Job
from .listings import condition_tags

__all__ = ["KIT_FORMAT", "LISTING_COLUMNS", "REFERENCE_COLUMNS"]

KIT_FORMAT = 1

LISTING_COLUMNS: tuple[str, ...] = (
    "path", "label", "product", "brand", "kind", "factory", "factory_seen", "family", "defects",
    "conditions", "background", "reused_from", "split", "defect_pixels", "defect_pixels_count",
)  # fmt: skip
"""Columns of listings.csv. ``label`` is what the photo shows: genuine, fake, or unknown (a product
with no references at all). ``defects`` is ``type:severity;...``; ``conditions`` is the listing's
condition tags (:func:`~authvision.brandkit.listings.condition_tags`); ``reused_from`` the reference a
re-used photo was copied from; ``split`` calibration or test. For a fake, ``defect_pixels`` is the
share of the item's visible pixels that its defects change in this very photo, and
``defect_pixels_count`` their number: the genuine twin (the same item without defects, in the same
photo conditions: background, pose, light, noise, template, JPEG) is rendered alongside and the two
decoded photos compared (largest channel difference > 8/255, counted inside the item's mask; see
:func:`~authvision.brandkit.visibility.defect_visibility`). Empty for genuine and unknown listings."""

REFERENCE_COLUMNS: tuple[str, ...] = (
    "path", "label", "product", "brand", "kind", "factory", "family", "defects", "background", "conditions",
)  # fmt: skip
"""Columns of references.csv."""


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
