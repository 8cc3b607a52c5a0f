"""Region inspection as an evidence provider: in verdicts and scan rows, saved with the checker, never losing a row.

A small brand kit (one product, a handful of genuine studio references) keeps it fast.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import authvision as av
from authvision.brandkit import KitConfig, generate_kit
from authvision.errors import IndexFormatError
from authvision.evidence import inspection_providers
from authvision.sample_photos import sample_photo

pytest.importorskip("cv2")

import authvision.inspection as inspection_engine  # noqa: E402  (needs OpenCV)

CONFIG = KitConfig(brands=1, products_per_brand=1, kinds=("handbag",), genuine_refs=5, fake_refs=2, listings=14,
                   reused_share=0.0, unknown_share=0.0, photo_size=480)  # fmt: skip


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kit")
    generate_kit(root, seed=3, config=CONFIG, workers=1, overwrite=True)
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def checker(kit, embedder) -> av.AuthenticityChecker:
    checker = av.AuthenticityChecker(embedder, providers=inspection_providers())
    for row in _rows(kit / "references.csv"):
        checker.add_references([kit / row["path"]], row["label"], product=row["product"], brand=row["brand"])
    return checker


def _listings(kit: Path) -> list[Path]:
    return [kit / r["path"] for r in _rows(kit / "listings.csv") if r["label"] in ("genuine", "fake")]


def test_listings_of_the_product_are_inspected_and_say_how(checker, kit):
    verdicts = checker.check_many(_listings(kit)[:6])
    inspected = [v.inspection for v in verdicts]
    assert all(i is not None and i["inspected"] for i in inspected)
    registered = [i for i in inspected if i["registered"]]
    assert len(registered) >= 4
    for i in registered:
        assert i["inliers"] >= 8 and i["reprojection_error"] < 5 and i["regions"]
        assert set(i["features"]) == {"inspection_log_score", "inspection_registered", "inspection_log_structure", "inspection_log_cells",
                                      "inspection_log_colour", "inspection_text_mismatch"}  # fmt: skip
        assert i["features"]["inspection_registered"] == 1.0
        assert all(len(region["listing_box"]) == 4 for region in i["regions"])
    json.dumps([v.to_dict() for v in verdicts])


def test_an_unrelated_photo_is_not_given_a_garbage_score(checker):
    verdict = checker.check(Image.fromarray(sample_photo("astronaut")))
    inspection = verdict.inspection
    assert inspection is not None
    assert not inspection.get("registered", False)
    assert inspection["reason"]
    assert all(verdict.evidence[f] == 0.0 for f in ("inspection_log_score", "inspection_registered", "inspection_log_structure"))


def test_inspection_data_is_saved_and_a_copied_checker_inspects_without_the_photos(kit, embedder, tmp_path):
    photos = tmp_path / "kit"
    shutil.copytree(kit, photos)
    checker = av.AuthenticityChecker(embedder, providers=inspection_providers())
    rows = _rows(photos / "references.csv")
    checker.add_references([photos / r["path"] for r in rows], [r["label"] for r in rows], product=[r["product"] for r in rows])
    listings = [tmp_path / p.name for p in _listings(kit)[:4]]
    for src, dst in zip(_listings(kit)[:4], listings):
        shutil.copy(src, dst)
    expected = [v.to_dict() for v in checker.check_many(listings)]
    assert all(e["provider_evidence"]["inspection"]["inspected"] for e in expected)
    checker.save(tmp_path / "c")
    shutil.copytree(tmp_path / "c", tmp_path / "elsewhere")
    shutil.rmtree(photos)  # the reference photos are gone
    loaded = av.AuthenticityChecker.load(tmp_path / "elsewhere")
    assert [v.to_dict() for v in loaded.check_many(listings)] == expected


def test_tampered_inspection_data_is_refused(checker, tmp_path):
    checker.save(tmp_path / "c")
    npz = next((tmp_path / "c" / "evidence" / "inspection").rglob("inspection.npz"))
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError):
        av.AuthenticityChecker.load(tmp_path / "c")


def test_a_save_that_fails_midway_leaves_the_previous_checker(checker, kit, tmp_path, monkeypatch):
    checker.save(tmp_path / "c")
    before = av.AuthenticityChecker.load(tmp_path / "c").check(_listings(kit)[0]).to_dict()

    import authvision._storage as storage

    real = storage._write_file
    calls = {"n": 0}

    def dies_after_three(path, data):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError("disk gone")
        real(path, data)

    monkeypatch.setattr(storage, "_write_file", dies_after_three)
    with pytest.raises(OSError):
        checker.save(tmp_path / "c")
    monkeypatch.undo()
    assert av.AuthenticityChecker.load(tmp_path / "c").check(_listings(kit)[0]).to_dict() == before


def test_an_inspection_failure_never_loses_a_row(checker, kit, monkeypatch):
    listings = _listings(kit)[:3]

    def broken(listing, candidates, **kwargs):
        raise RuntimeError("inspection exploded")

    monkeypatch.setattr(inspection_engine, "inspect_best", broken)
    results = list(checker.scan([*listings, b"not an image"], batch_size=2))
    assert [r.seq for r in results] == [0, 1, 2, 3]
    rows = [json.loads(json.dumps(r.to_dict())) for r in results]
    for row in rows[:3]:
        assert row["label"] in ("genuine", "fake", "unknown")
        inspection = row["provider_evidence"]["inspection"]
        assert inspection["inspected"] is False and "inspection exploded" in inspection["reason"]
    assert rows[3]["label"] == "error"


def test_removing_genuine_references_updates_the_product(embedder, kit):
    checker = av.AuthenticityChecker(embedder, providers=inspection_providers())
    rows = [r for r in _rows(kit / "references.csv") if r["label"] == "genuine"]
    ids = checker.add_references([kit / r["path"] for r in rows], "genuine", product=rows[0]["product"])
    provider = checker.provider("inspection")
    assert provider.product_data(rows[0]["product"]) is not None
    checker.remove_references([i for i in ids[2:] if i is not None])
    verdict = checker.check(_listings(kit)[0])
    assert verdict.inspection is not None and verdict.inspection["inspected"] is False
    assert "fewer than" in verdict.inspection["reason"]
    assert provider.product_data(rows[0]["product"]) is None


def test_only_chosen_products_are_inspected(embedder, kit):
    checker = av.AuthenticityChecker(embedder, providers=inspection_providers(products=["some-other-product"]))
    rows = _rows(kit / "references.csv")
    checker.add_references([kit / r["path"] for r in rows], [r["label"] for r in rows], product=[r["product"] for r in rows])
    verdict = checker.check(_listings(kit)[0])
    assert verdict.inspection["inspected"] is False and "not inspected" in verdict.inspection["reason"]
    assert np.isfinite(verdict.evidence["neighbour_margin"])


def test_a_registered_listing_confirms_its_product_unless_it_reads_another_word(checker, kit, monkeypatch):
    from authvision.evidence.inspection import CONFIRM_INLIERS

    genuine = [kit / r["path"] for r in _rows(kit / "listings.csv") if r["label"] == "genuine"]
    images = [Image.open(p).convert("RGB") for p in genuine]
    assessments = checker.assess_images(images)
    strong = [(img, a) for img, a in zip(images, assessments) if (a.provider_evidence["inspection"].get("inliers") or 0) >= CONFIRM_INLIERS]
    assert strong, "some genuine listings register on many keypoints"
    assert all(a.confirmed and a.known_score == 1.0 for _, a in strong), "a well-registered listing is known whatever its similarity"
    # the same listings reading another word where the wordmark sits ("KOSTRA" for "TORVAL"): a look-alike, not this product
    from authvision.inspection import inspector
    from authvision.inspection.text import Word, WordReading, mismatch

    def reading(read: str, confidence: float):
        word = Word("TORVAL", (10.0, 10.0, 60.0, 25.0))
        return lambda *args: (WordReading(word, read, confidence, mismatch("TORVAL", read)),)

    again = [img for img, _ in strong]
    monkeypatch.setattr(inspector, "_read", reading("KOSTRA", 0.99))
    assert not any(a.confirmed for a in checker.assess_images(again))
    assert all(a.known_score == a.max_similarity < 1.0 for a in checker.assess_images(again))
    monkeypatch.setattr(inspector, "_read", reading("TROVAL", 0.99))  # a misspelling: a counterfeit of this product
    assert all(a.confirmed for a in checker.assess_images(again))
    monkeypatch.setattr(inspector, "_read", reading("KOSTRA", 0.85))  # another word, but not surely read (a garbled wordmark)
    assert all(a.confirmed for a in checker.assess_images(again))
