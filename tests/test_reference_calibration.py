"""Calibration from a brand's references alone: held-out studio photos made to look like listings."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import authvision as av
from authvision.brandkit import KitConfig, generate_kit

pytest.importorskip("cv2")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> tuple[Path, list[dict[str, str]], list[dict[str, str]]]:
    """A small brand kit; a quarter of each product's genuine and fake references held out, the rest to index."""
    kit = tmp_path_factory.mktemp("kit")
    generate_kit(kit, seed=0, config=KitConfig(products_per_brand=2, listings=160), workers=2, overwrite=True)
    by_group: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in _rows(kit / "references.csv"):
        by_group[(row["product"], row["label"])].append(row)
    indexed, held_out = [], []
    for rows in by_group.values():
        cut = max(1, len(rows) // 4)
        held_out += rows[:cut]
        indexed += rows[cut:]
    return kit, indexed, held_out


@pytest.mark.slow
def test_a_checker_calibrated_on_held_out_references_finds_products_and_unknowns(split, embedder):
    kit, indexed, held_out = split
    checker = av.AuthenticityChecker(embedder)
    checker.add_references([kit / r["path"] for r in indexed], [r["label"] for r in indexed], product=[r["product"] for r in indexed],
                           brand=[r["brand"] for r in indexed])  # fmt: skip
    listings = [r for r in _rows(kit / "listings.csv") if r["split"] == "test"]
    known = np.array([r["label"] != "unknown" for r in listings])

    def measured() -> tuple[float, float]:
        verdicts = checker.check_many([kit / r["path"] for r in listings])
        found = np.array([v.product == r["product"] for v, r in zip(verdicts, listings)])
        called_unknown = np.array([v.label == "unknown" for v in verdicts])
        return float(found[known].mean()), float(called_unknown[~known].mean())

    # The failure this fixes: calibrated on the studio photos as they are, the unknown threshold sits
    # above what cluttered listings reach and most listings of indexed products come out unknown.
    checker.calibrate([kit / r["path"] for r in held_out], [r["label"] for r in held_out])
    found_plain, _ = measured()

    report = checker.calibrate_from_references([kit / r["path"] for r in held_out], [r["label"] for r in held_out],
                                               [r["product"] for r in held_out])  # fmt: skip
    assert checker.calibrated and report.unknown > 0 and report.known_recall >= 0.9
    found, unknown = measured()
    # Measured on this kit (seed 0): 0.51 of the listings of indexed products found (the screen's
    # product vote and look-alike products of an unindexed brand bound it), 0.80 of the listings of
    # unindexed products called unknown; the target, 0.9 / 0.9, is not reached by the screen.
    assert found >= found_plain + 0.15, (found_plain, found)  # measured: 0.33 -> 0.51
    assert found >= 0.45 and unknown >= 0.7, (found, unknown)


@pytest.mark.slow
def test_with_inspection_a_checker_calibrated_on_held_out_references_finds_nine_in_ten(split, embedder):
    """The issue's target: >= 0.9 of the listings of indexed products found, >= 0.9 of unindexed ones unknown.

    Inspection's registrations confirm the product of a cluttered listing the embedding places far from
    every reference. Measured on the whole demo kit (``training/research/reference_calibration_lab.py``):
    0.940 found, 0.960 of 25 unindexed listings called unknown; this smaller kit has 10 unindexed listings."""
    from authvision.evidence import inspection_providers

    kit, indexed, held_out = split
    checker = av.AuthenticityChecker(embedder, providers=inspection_providers())
    checker.add_references([kit / r["path"] for r in indexed], [r["label"] for r in indexed], product=[r["product"] for r in indexed],
                           brand=[r["brand"] for r in indexed])  # fmt: skip
    checker.provider("inspection").build()  # type: ignore[attr-defined]
    checker.calibrate_from_references([kit / r["path"] for r in held_out], [r["label"] for r in held_out], [r["product"] for r in held_out])
    listings = [r for r in _rows(kit / "listings.csv") if r["split"] == "test"]
    known = np.array([r["label"] != "unknown" for r in listings])
    verdicts = checker.check_many([kit / r["path"] for r in listings])
    found = np.array([v.product == r["product"] and v.label != "unknown" for v, r in zip(verdicts, listings)])
    called_unknown = np.array([v.label == "unknown" for v in verdicts])
    # measured: 0.953 found; 9 of the 10 unindexed listings called unknown
    assert float(found[known].mean()) >= 0.9 and float(called_unknown[~known].mean()) >= 0.8, (found[known].mean(), called_unknown[~known].mean())
