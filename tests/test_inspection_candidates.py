"""Inspection finds the pictured product among the screen's candidates, and the verdict names it.

The screen's product vote is wrong for some cluttered listings; a listing inspected against the wrong
product fails to register or is compared with the wrong marks. A small two-product brand kit.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import authvision as av
from authvision.brandkit import KitConfig, generate_kit
from authvision.evidence import EvidenceProvider, InspectionEvidence, NeighbourEvidence, ProviderEvidence, inspection_providers
from authvision.evidence.base import Screen
from authvision.evidence.inspection import FUSED_FROM
from authvision.verdict import Match

cv2 = pytest.importorskip("cv2")

from authvision.inspection import build_product_inspection, inspect_best  # noqa: E402  (needs OpenCV)
from authvision.inspection.null import FUSED_FROM as NULL_FUSED_FROM  # noqa: E402

CONFIG = KitConfig(brands=1, products_per_brand=2, kinds=("handbag", "sneaker"), genuine_refs=4, fake_refs=1, listings=10,
                   reused_share=0.0, unknown_share=0.0, photo_size=480)  # fmt: skip


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kit2")
    generate_kit(root, seed=5, config=CONFIG, workers=1, overwrite=True)
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _photo(kit: Path, row: dict[str, str]) -> np.ndarray:
    return np.asarray(Image.open(kit / row["path"]).convert("RGB"))


@pytest.fixture(scope="module")
def genuine_listing(kit) -> dict[str, str]:
    return next(r for r in _rows(kit / "listings.csv") if r["label"] == "genuine")


@pytest.fixture(scope="module")
def products(kit) -> list[str]:
    return sorted({r["product"] for r in _rows(kit / "references.csv")})


@pytest.fixture(scope="module")
def checker(kit, embedder) -> av.AuthenticityChecker:
    checker = av.AuthenticityChecker(embedder, providers=inspection_providers())
    for row in _rows(kit / "references.csv"):
        checker.add_references([kit / row["path"]], row["label"], product=row["product"], brand=row["brand"])
    return checker


def test_the_pictured_product_wins_whichever_candidate_comes_first(kit, products, genuine_listing):
    refs = _rows(kit / "references.csv")
    data = {
        p: build_product_inspection([_photo(kit, r) for r in refs if r["product"] == p and r["label"] == "genuine"], product=p)
        for p in products
    }
    pictured = genuine_listing["product"]
    other = next(p for p in products if p != pictured)
    listing = _photo(kit, genuine_listing)
    chosen, result = inspect_best(listing, [data[other], data[pictured]], heatmap=False)
    assert chosen == 1 and result.registered and result.inliers >= 20
    chosen, result = inspect_best(listing, [data[pictured], data[other]], heatmap=False)
    assert chosen == 0 and result.registered

    class NeverTried:
        @property
        def params(self):
            raise AssertionError("a candidate after one registered on enough inliers was tried")

    chosen, result = inspect_best(listing, [data[pictured], NeverTried()], heatmap=False, enough=20)  # type: ignore[list-item]
    assert chosen == 0 and result.inliers >= 20


def _screen_naming(wrong: str, right: str, brand: str) -> Screen:
    neighbours = (Match(1, "genuine", wrong, brand, 0.95, None), Match(2, "genuine", right, brand, 0.94, None))
    return Screen(neighbours, None, wrong, brand, 0.95)


def test_a_listing_the_screen_gave_the_wrong_product_is_inspected_as_the_right_one(checker, kit, products, genuine_listing):
    pictured = genuine_listing["product"]
    wrong = next(p for p in products if p != pictured)
    listing = checker.listings([Image.open(kit / genuine_listing["path"]).convert("RGB")], [kit / genuine_listing["path"]])
    provider = next(p for p in checker.providers if isinstance(p, InspectionEvidence))
    [evidence] = provider.assess(listing, [_screen_naming(wrong, pictured, genuine_listing["brand"])], checker)
    assert evidence.product == pictured and evidence.brand == genuine_listing["brand"]
    assert evidence.artefacts["product"] == pictured and evidence.artefacts["registered"]
    assert dict(zip(provider.features, evidence.features))["inspection_registered"] == 1.0

    screen_only = InspectionEvidence(candidates=1)
    screen_only._photos, screen_only._data = provider._photos, provider._data
    [evidence] = screen_only.assess(listing, [_screen_naming(wrong, pictured, genuine_listing["brand"])], checker)
    assert evidence.product is None and evidence.artefacts["product"] == wrong


class _NamesAnotherProduct(EvidenceProvider):
    name = "test-names-another-product"
    features = ("test_constant",)

    def assess(self, listings, screens, checker):
        return [ProviderEvidence((0.0,), product="found-product", brand="found-brand") for _ in listings]


def test_the_verdict_names_the_product_a_provider_found(embedder, kit):
    checker = av.AuthenticityChecker(embedder, providers=[NeighbourEvidence(), _NamesAnotherProduct()])
    rows = _rows(kit / "references.csv")
    checker.add_references([kit / r["path"] for r in rows], [r["label"] for r in rows], product=[r["product"] for r in rows])
    verdict = checker.check(kit / rows[0]["path"])
    assert verdict.product == "found-product" and verdict.brand == "found-brand"


def test_checkers_saved_before_the_margin_and_the_channel_features_keep_their_features():
    assert NeighbourEvidence().features == ("neighbour_margin",)
    legacy = NeighbourEvidence.restore({}, lambda name: b"", [])
    assert legacy.features == ("genuine_similarity", "fake_similarity", "fake_share")
    assert NeighbourEvidence.restore(NeighbourEvidence().config(), lambda name: b"", []).features == ("neighbour_margin",)

    assert InspectionEvidence().features == (
        "inspection_log_score", "inspection_registered", *(f"inspection_log_{c}" for c in FUSED_FROM), "inspection_text_mismatch",
    )  # fmt: skip
    old = {"min_similarity": 0.0, "products": None, "brands": None, "templates": 3, "seed": 0, "regions": 5}
    assert InspectionEvidence.restore(old, lambda name: b"", []).features == ("inspection_log_score", "inspection_registered")
    assert InspectionEvidence.restore(InspectionEvidence().config(), lambda name: b"", []).features == InspectionEvidence().features
    with pytest.raises(ValueError, match="margin"):
        NeighbourEvidence(features="nearest")


def test_the_channel_features_are_the_channels_the_fused_score_is_made_of():
    assert FUSED_FROM == NULL_FUSED_FROM
