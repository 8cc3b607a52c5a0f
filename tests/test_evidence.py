"""The evidence seam: a provider added from outside reaches calibration, verdicts, scan rows and saves.

Also: one photo transform for every path, the decoded-or-error helper, the single-input test, and a
checker saved before evidence providers existed (format 1) still loading with the same verdicts.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import authvision as av
from authvision.errors import IndexFormatError
from authvision.evidence import EvidenceProvider, Listing, ProviderEvidence, Screen, default_providers, register_provider
from authvision.hashing import perceptual_hashes
from authvision.prepare import create_transform, decode_inputs, is_single_input
from authvision.preprocess import preprocess
from authvision.sample_photos import sample_photo

pytest.importorskip("skimage")

DATA = Path(__file__).parent / "data"


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def small(name: str) -> Image.Image:
    return Image.fromarray(sample_photo(name)).resize((192, 144))


def hue_shifted(image: Image.Image, shift: int = 20) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    return Image.merge("HSV", (h.point(lambda x: (x + shift) % 256), s, v)).convert("RGB")


@register_provider
class RedShareEvidence(EvidenceProvider):
    """Toy provider: the share of red in the listing, and how many references it has been told of."""

    name = "toy_red_share"
    features = ("red_share",)

    def __init__(self, seen: int = 0) -> None:
        self.seen = seen

    def assess(self, listings: Sequence[Listing], screens: Sequence[Screen], checker: Any) -> list[ProviderEvidence]:
        out = []
        for listing, screen in zip(listings, screens):
            pixels = np.asarray(listing.image, dtype=np.float64)
            share = float(pixels[..., 0].sum() / max(pixels.sum(), 1.0))
            out.append(ProviderEvidence((share,), {"pixels": int(pixels.shape[0] * pixels.shape[1]), "product_seen": screen.product}))
        return out

    def references_added(self, references: Sequence[Any], sources: Sequence[Any], checker: Any) -> None:
        self.seen += len(references)

    def references_removed(self, references: Sequence[Any], checker: Any) -> None:
        self.seen -= len(references)

    def state_files(self) -> dict[str, bytes]:
        return {"seen.json": json.dumps({"seen": self.seen}).encode()}

    @classmethod
    def restore(cls, config: Mapping[str, Any], read: Callable[[str], bytes], names: Sequence[str]) -> RedShareEvidence:
        assert list(names) == ["seen.json"]
        return cls(json.loads(read("seen.json"))["seen"])


@pytest.fixture(scope="module")
def toy_checker(embedder) -> av.AuthenticityChecker:
    checker = av.AuthenticityChecker(embedder, providers=[*default_providers(), RedShareEvidence()])
    for name in ("rocket", "coffee", "chelsea", "astronaut"):
        checker.add_references([jpeg(small(name))], "genuine", product=name)
        checker.add_references([jpeg(hue_shifted(small(name)))], "fake", product=name)
    photos, labels = [], []
    for i, name in enumerate(("rocket", "coffee", "chelsea", "astronaut") * 2):
        crop = small(name).crop((6 + i, 4, 186 - i, 140))
        photos += [jpeg(crop, 70), jpeg(hue_shifted(crop, 18 + i), 70)]
        labels += ["genuine", "fake"]
    checker.calibrate(photos, labels)
    return checker


def test_a_new_provider_reaches_calibration_verdicts_and_scan_rows(toy_checker, tmp_path):
    assert toy_checker.feature_names[-1] == "red_share"
    assert toy_checker.calibrated and toy_checker.calibration.features == toy_checker.feature_names
    assert toy_checker.provider("toy_red_share").seen == 8  # told of every reference

    listing = jpeg(small("coffee").crop((10, 10, 180, 130)), 75)
    verdict = toy_checker.check(listing)
    row = verdict.to_dict()
    json.dumps(row)
    assert row["evidence"]["red_share"] == pytest.approx(verdict.evidence["red_share"], abs=1e-6)
    toy = row["provider_evidence"]["toy_red_share"]
    assert toy["features"]["red_share"] == pytest.approx(verdict.evidence["red_share"], abs=1e-6)
    assert toy["product_seen"] == "coffee" and toy["pixels"] > 0
    assert row["provider_evidence"]["neighbours"]["features"]["neighbour_margin"] == pytest.approx(verdict.evidence["neighbour_margin"], abs=1e-6)

    (results,) = list(toy_checker.scan([listing]))
    scanned = json.loads(json.dumps(results.to_dict()))
    assert scanned["provider_evidence"]["toy_red_share"] == toy
    assert scanned["evidence"] == row["evidence"]
    assert [v.to_dict() for v in toy_checker.check_many([listing, b"not an image"])][0] == row


def test_a_provider_is_saved_and_restored_with_its_files(toy_checker, tmp_path):
    toy_checker.save(tmp_path / "c")
    assert (tmp_path / "c" / "evidence" / "toy_red_share" / "seen.json").is_file()
    loaded = av.AuthenticityChecker.load(tmp_path / "c")
    assert [p.name for p in loaded.providers] == [p.name for p in toy_checker.providers]
    assert loaded.provider("toy_red_share").seen == 8
    listing = jpeg(small("rocket"), 60)
    assert loaded.check(listing).to_dict() == toy_checker.check(listing).to_dict()


def test_loading_with_other_evidence_names_the_fix(toy_checker, tmp_path, embedder):
    toy_checker.save(tmp_path / "c")
    with pytest.raises(IndexFormatError, match="recalibrate"):
        av.AuthenticityChecker.load(tmp_path / "c", embedder=embedder, providers=default_providers())
    loaded = av.AuthenticityChecker.load(tmp_path / "c", embedder=embedder, providers=default_providers(), discard_calibration=True)
    assert not loaded.calibrated and len(loaded.index) == len(toy_checker.index)

    manifest = json.loads((tmp_path / "c" / "checker.json").read_text())
    manifest["providers"][-1]["name"] = "never_registered"
    shutil.copytree(tmp_path / "c", tmp_path / "d")
    (tmp_path / "d" / "checker.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError):  # checksum first: an edited file is refused before it is read
        av.AuthenticityChecker.load(tmp_path / "d", embedder=embedder)


def test_an_unknown_provider_name_is_refused_with_the_fix(embedder):
    from authvision.evidence import provider_class

    with pytest.raises(IndexFormatError, match="providers="):
        provider_class("never_registered")


def test_a_checker_saved_before_evidence_providers_loads_with_the_same_verdict():
    checker = av.AuthenticityChecker.load(DATA / "checker-format1")
    assert [p.name for p in checker.providers] == ["neighbours", "duplicates", "model_head"]
    listing = Image.fromarray(sample_photo("coffee")).resize((160, 120))
    verdict = checker.check(jpeg(listing, 70)).to_dict()
    expected = json.loads((DATA / "checker-format1-coffee-verdict.json").read_text())
    assert verdict["label"] == expected["label"] and verdict["product"] == expected["product"]
    assert [m["ref_id"] for m in verdict["neighbors"]] == [m["ref_id"] for m in expected["neighbors"]]
    # The verdict was saved when the crop came from resizing the whole photo; it now comes from resizing
    # the crop's footprint (authvision.preprocess.resize_and_crop), a level off here and
    # there, within the embedding parity issue 15 allows (fp32 cosine >= 0.999). Measured here:
    # similarities 7e-4 apart, the fake share 0.005, the (uncalibrated) authenticity 0.010.
    similarities = [name for name in expected["evidence"] if name.endswith("similarity")]
    assert {n: verdict["evidence"][n] for n in similarities} == pytest.approx({n: expected["evidence"][n] for n in similarities}, abs=2e-3)
    assert verdict["evidence"] == pytest.approx(expected["evidence"], abs=1e-2)
    assert verdict["authenticity"] == pytest.approx(expected["authenticity"], abs=2e-2)
    # its references were hashed with hash version 1, and its listings still are
    assert checker.index.hash_version == 1 and checker.transform.hash_version == 1
    assert verdict["duplicate_of"] == pytest.approx(expected["duplicate_of"], abs=2e-3)


def test_one_transform_gives_the_preprocessing_and_the_hashes(embedder):
    transform = create_transform(embedder)
    for name in ("chelsea", "rocket"):
        image = embedder.decode(jpeg(Image.fromarray(sample_photo(name)))).image
        prepared = transform(image)
        np.testing.assert_array_equal(prepared.tensor, preprocess(image, embedder.manifest.preprocess))
        np.testing.assert_array_equal(prepared.hashes, perceptual_hashes(image))
    pixels, hashes = transform.batch([image, image])  # uint8 crops, normalised by the model
    np.testing.assert_array_equal(pixels[1], prepared.pixels)
    np.testing.assert_array_equal(hashes[0], prepared.hashes)


def test_decode_inputs_gives_one_entry_per_input_and_single_inputs_are_recognised(embedder, tmp_path):
    good = jpeg(small("coffee"))
    entries = decode_inputs([good, b"garbage", str(tmp_path / "missing.jpg"), good], embedder.decode)
    assert len(entries) == 4
    assert not isinstance(entries[0], str) and not isinstance(entries[3], str)
    assert isinstance(entries[1], str) and isinstance(entries[2], str) and "not found" in entries[2]
    for one in (good, str(tmp_path), tmp_path, small("coffee"), np.zeros((4, 4, 3), np.uint8), bytearray(good)):
        assert is_single_input(one)
    for many in ([good], (good,), iter([good]), {"a": 1}):
        assert not is_single_input(many)
