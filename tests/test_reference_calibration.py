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


@pytest.mark.slow
def test_a_checker_calibrated_on_held_out_references_finds_products_and_unknowns(tmp_path, embedder):
    kit = tmp_path / "kit"
    generate_kit(kit, seed=0, config=KitConfig(listings=200), workers=2, overwrite=True)
    by_group: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in _rows(kit / "references.csv"):
        by_group[(row["product"], row["label"])].append(row)
    indexed, held_out = [], []
    for rows in by_group.values():  # a quarter of each product's genuine and fake references held out
        cut = max(1, len(rows) // 4)
        held_out += rows[:cut]
        indexed += rows[cut:]

    checker = av.AuthenticityChecker(embedder)
    checker.add_references([kit / r["path"] for r in indexed], [r["label"] for r in indexed], product=[r["product"] for r in indexed],
                           brand=[r["brand"] for r in indexed])  # fmt: skip
    report = checker.calibrate_from_references([kit / r["path"] for r in held_out], [r["label"] for r in held_out],
                                               [r["product"] for r in held_out])  # fmt: skip
    assert checker.calibrated and report.unknown > 0

    listings = [r for r in _rows(kit / "listings.csv") if r["split"] == "test"]
    verdicts = checker.check_many([kit / r["path"] for r in listings])
    known = np.array([r["label"] != "unknown" for r in listings])
    found = np.array([v.product == r["product"] for v, r in zip(verdicts, listings)])
    called_unknown = np.array([v.label == "unknown" for v in verdicts])
    assert found[known].mean() >= 0.9, found[known].mean()
    assert called_unknown[~known].mean() >= 0.9, called_unknown[~known].mean()
