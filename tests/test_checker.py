"""AuthenticityChecker end to end on real photos: evidence, verdicts, calibration, persistence, threads.

"Products" are scikit-image / matplotlib photos; a product's "fakes" are the same scene with its
colours shifted (the way a counterfeit gets a hue wrong), and "listings" are edited copies (JPEG
re-compression, crops, padding, banners) of either.
"""

from __future__ import annotations

import io
import json
import shutil
import threading

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

import authvision as av
from authvision.embedder import default_model_dir
from authvision.sample_photos import sample_photo

pytest.importorskip("skimage")

PRODUCTS = {  # product -> (photo, brand)
    "rocket-01": ("rocket", "acme"),
    "moto-01": ("stereo_motorcycle_left", "acme"),
    "mug-01": ("coffee", "bolt"),
    "cat-01": ("chelsea", "bolt"),
}
UNRELATED = ("astronaut", "camera", "brick", "grass")


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def fake_of(image: Image.Image, shift: int = 14) -> Image.Image:
    """The same scene with the hue rotated: a counterfeit's wrong colour."""
    h, s, v = image.convert("HSV").split()
    h = h.point(lambda x: (x + shift) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def edit(image: Image.Image, which: int) -> Image.Image:
    """Listing-style edits of a photo, several kinds."""
    w, h = image.size
    if which % 4 == 0:
        return image.crop((w // 12, h // 12, w - w // 12, h - h // 12))
    if which % 4 == 1:
        side = max(w, h) + 40
        canvas = Image.new("RGB", (side, side), "white")
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        return canvas
    if which % 4 == 2:
        out = image.copy()
        ImageDraw.Draw(out).rectangle((0, h - h // 9, w, h), fill=(220, 30, 30))
        return out
    return Image.open(io.BytesIO(jpeg(image.rotate(4, fillcolor="white"), 45))).convert("RGB")


def photo(name: str) -> Image.Image:
    return Image.fromarray(sample_photo(name))


@pytest.fixture(scope="module")
def checker(embedder) -> av.AuthenticityChecker:
    checker = av.AuthenticityChecker(embedder)
    for product, (name, brand) in PRODUCTS.items():
        genuine = photo(name)
        checker.add_references([jpeg(genuine), jpeg(ImageOps.mirror(genuine))], "genuine", product=product, brand=brand)
        checker.add_references([jpeg(fake_of(genuine))], "fake", product=product, brand=brand)
    return checker


def test_references_are_indexed_with_metadata(checker):
    assert len(checker.index) == 12
    info = checker.index.info()
    assert info["labels"] == {"genuine": 8, "fake": 4} and info["brands"] == 2 and info["hashed"] == 12


def test_edited_copy_of_a_genuine_photo_is_genuine_with_evidence(checker):
    listing = edit(photo("coffee"), 1)  # white padding: a re-used official photo
    verdict = checker.check(jpeg(listing))
    assert verdict.label == "genuine" and verdict.product == "mug-01" and verdict.brand == "bolt"
    assert verdict.authenticity is not None and verdict.authenticity > 0.5
    assert verdict.nearest_genuine is not None and verdict.nearest_genuine.product == "mug-01"
    assert verdict.neighbors[0].similarity >= verdict.neighbors[-1].similarity
    assert verdict.evidence["neighbour_margin"] > 0
    assert verdict.calibrated is False
    assert verdict.duplicate_of is not None and verdict.duplicate_of.label == "genuine"  # official photo re-used


def test_reused_photo_of_a_seized_fake_is_fake(checker):
    listing = edit(fake_of(photo("rocket")), 1)
    verdict = checker.check(listing)
    assert verdict.label == "fake" and verdict.product == "rocket-01"
    assert verdict.duplicate_of is not None and verdict.duplicate_of.label == "fake"
    assert verdict.duplicate_of.hamming is not None and verdict.duplicate_of.hamming <= 10
    assert verdict.authenticity < 0.5


def test_photo_of_something_not_indexed_is_unknown(checker):
    verdicts = checker.check_many([photo(name) for name in UNRELATED])
    assert [v.label for v in verdicts] == ["unknown"] * len(UNRELATED)
    assert all(v.authenticity is None and v.product is None for v in verdicts)


def test_check_many_keeps_order_and_turns_bad_inputs_into_error_verdicts(checker, tmp_path):
    missing = tmp_path / "nope.jpg"
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    inputs = [jpeg(photo("chelsea")), b"", missing, jpeg(photo("coffee"))[:300], text, photo("rocket")]
    verdicts = checker.check_many(inputs, batch_size=2)
    assert [v.label for v in verdicts][1:5] == ["error"] * 4
    assert verdicts[0].product == "cat-01" and verdicts[5].product == "rocket-01"
    assert all(v.error for v in verdicts[1:5]) and "not found" in verdicts[2].error
    json.dumps([v.to_dict() for v in verdicts])  # JSON all the way down
    with pytest.raises(av.ImageDecodeError):
        checker.check(b"")


def test_brand_restricts_the_evidence(checker):
    verdict = checker.check(edit(photo("coffee"), 2), brand="acme")
    assert all(m.brand == "acme" for m in verdict.neighbors)
    assert verdict.product != "mug-01"
    assert checker.check(edit(photo("coffee"), 2), brand="bolt").product == "mug-01"


def test_add_references_detects_duplicates_and_refuses_bad_photos_atomically(embedder):
    checker = av.AuthenticityChecker(embedder)
    first = checker.add_references([jpeg(photo("coffee"))], "genuine", product="mug", brand="b")
    again = checker.add_references([jpeg(photo("coffee"))], "genuine", product="mug", brand="b")
    assert again == first and len(checker.index) == 1
    with pytest.raises(av.DuplicateReferenceError):
        checker.add_references([jpeg(photo("coffee"))], "genuine", product="mug", on_duplicate="raise")
    with pytest.raises(av.ImageDecodeError, match="reference photo 1.*nothing was added"):
        checker.add_references([jpeg(photo("rocket")), b"garbage"], "fake", product="rocket")
    assert len(checker.index) == 1
    ids = checker.add_references([jpeg(photo("rocket")), b"garbage"], "fake", product="rocket", on_error="skip")
    assert ids[1] is None and isinstance(ids[0], int) and len(checker.index) == 2
    with pytest.raises(ValueError, match="label"):
        checker.add_references([photo("camera")], "counterfeit")


def listing_set() -> tuple[list[Image.Image], list[str]]:
    """Held-out 'listings': edits of genuine and fake photos of each product, and unrelated photos."""
    images, labels = [], []
    for i, (name, _) in enumerate(PRODUCTS.values()):
        for j in range(3):
            images.append(edit(photo(name), i + j))
            labels.append("genuine")
            images.append(edit(fake_of(photo(name)), i + j + 1))
            labels.append("fake")
    for name in ("astronaut", "camera", "brick", "grass", "hubble_deep_field", "page"):
        images.append(photo(name))
        labels.append("unknown")
    return images, labels


def test_calibrate_fits_scores_and_unknown_threshold(embedder, checker):
    fresh = av.AuthenticityChecker(embedder, checker.index)
    images, labels = listing_set()
    report = fresh.calibrate(images + [b"broken"], labels + ["genuine"])
    assert report.genuine == 12 and report.fake == 12 and report.unknown == 6 and report.skipped == 1
    assert 0.0 <= report.ece <= 1.0 and 0.0 <= report.brier <= 0.25
    assert report.known_recall == 1.0 and report.unknown_recall == 1.0
    assert fresh.calibrated and fresh.calibration_report is report
    verdicts = fresh.check_many(images)
    assert all(v.calibrated for v in verdicts)
    decided = [(v.label, truth) for v, truth in zip(verdicts, labels)]
    accuracy = np.mean([label == truth for label, truth in decided])
    assert accuracy >= 0.9, decided
    with pytest.raises(av.CalibrationError, match="at least"):
        fresh.calibrate(images[:4], labels[:4])
    with pytest.raises(av.CalibrationError, match="labels"):
        fresh.calibrate(images, ["authentic"] * len(images))


def test_save_and_load_round_trip(embedder, checker, tmp_path):
    checker.save(tmp_path / "checker")
    loaded = av.AuthenticityChecker.load(tmp_path / "checker")
    assert len(loaded.index) == len(checker.index) and loaded.version == checker.version
    listing = edit(photo("chelsea"), 3)
    a, b = checker.check(listing), loaded.check(listing)
    assert a.to_dict() == b.to_dict()
    manifest = json.loads((tmp_path / "checker" / "manifest.json").read_text())
    assert manifest["model"]["location"] == "default" and manifest["model"]["sha256"] == embedder.model_sha256


def test_calibration_survives_save_and_load(embedder, checker, tmp_path):
    fresh = av.AuthenticityChecker(embedder, checker.index, decision_threshold=0.6)
    images, labels = listing_set()
    report = fresh.calibrate(images, labels)
    fresh.save(tmp_path / "c")
    loaded = av.AuthenticityChecker.load(tmp_path / "c")
    assert loaded.calibrated and loaded.decision_threshold == 0.6
    assert loaded.calibration == report.calibration
    assert loaded.calibration_report.ece == pytest.approx(report.ece)
    assert loaded.check(images[0]).to_dict() == fresh.check(images[0]).to_dict()


def test_tampered_or_foreign_checkers_are_refused(embedder, embedder_fp32, checker, tmp_path):
    target = tmp_path / "checker"
    checker.save(target)
    with pytest.raises(av.IncompatibleModelError, match="built with model"):
        av.AuthenticityChecker.load(target, embedder=embedder_fp32)
    settings = target / "checker.json"
    settings.write_text(settings.read_text().replace('"k": 10', '"k": 11'))
    with pytest.raises(av.IndexFormatError, match="sha256"):
        av.AuthenticityChecker.load(target)
    with pytest.raises(av.IncompatibleModelError):
        av.AuthenticityChecker(embedder_fp32, checker.index)  # int8 vectors, fp32 model


def test_a_model_outside_the_package_travels_inside_the_checker(checker, tmp_path):
    model_dir = tmp_path / "my-model"
    shutil.copytree(default_model_dir(), model_dir, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    custom = av.Embedder.load(model_dir)
    fresh = av.AuthenticityChecker(custom)
    fresh.add_references([jpeg(photo("coffee"))], "genuine", product="mug", brand="bolt")
    fresh.save(tmp_path / "checker")
    shutil.rmtree(model_dir)
    loaded = av.AuthenticityChecker.load(tmp_path / "checker")
    assert loaded.embedder.source.is_relative_to(tmp_path / "checker")
    assert loaded.check(edit(photo("coffee"), 0)).product == "mug"


def test_concurrent_checks_while_references_change(embedder, checker):
    # Readers search their own brands: the reference the writer adds and removes (brand "nasa") could
    # otherwise be among a listing's k neighbours for a moment, a legitimate change of evidence.
    listings = [(edit(photo(name), i), brand) for i, (name, brand) in enumerate(PRODUCTS.values())]

    def check_all() -> list[dict]:
        return [checker.check_many([image], brand=brand)[0].to_dict() for image, brand in listings]

    expected = check_all()
    extra = photo("hubble_deep_field")
    errors: list[BaseException] = []
    results: list[list[dict]] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                results.append(check_all())
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    def writer() -> None:
        try:
            for i in range(6):
                (ref_id,) = checker.add_references([extra.rotate(i * 7)], "genuine", product="space", brand="nasa")
                checker.remove_references([ref_id])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            stop.set()

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert results and all(r == expected for r in results)


@pytest.mark.parametrize("key", [None, "a signing key"], ids=["unsigned", "signed"])
def test_loads_racing_saves_of_the_same_directory_each_get_one_saved_state(embedder, checker, tmp_path, key):
    small = av.AuthenticityChecker(embedder)  # a second state whose verdict differs: no cat among its references
    for product in ("rocket-01", "mug-01"):
        name, brand = PRODUCTS[product]
        small.add_references([jpeg(photo(name))], "genuine", product=product, brand=brand)
    listing = edit(photo("chelsea"), 3)
    states = [checker, small]
    expected = [state.check(listing).to_dict() for state in states]
    assert expected[0] != expected[1]
    target = tmp_path / "checker"
    checker.save(target, signing_key=key)
    stop, failures, saves = threading.Event(), [], [0]

    def save_repeatedly() -> None:
        try:
            while not stop.is_set():
                states[saves[0] % 2].save(target, signing_key=key)
                saves[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    saver = threading.Thread(target=save_repeatedly)
    saver.start()
    loaded = []
    try:
        while saves[0] < 30 and not failures:
            loaded.append(av.AuthenticityChecker.load(target, embedder=embedder, signing_key=key))
    finally:
        stop.set()
        saver.join()
    assert not failures
    verdicts = {json.dumps(one.check(listing).to_dict(), sort_keys=True) for one in loaded[:: max(1, len(loaded) // 20)]}
    assert verdicts <= {json.dumps(verdict, sort_keys=True) for verdict in expected}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checker"]  # no generation left behind


def test_a_broken_directory_nobody_is_saving_is_refused_at_once(checker, tmp_path, monkeypatch):
    import authvision._storage

    target = tmp_path / "checker"
    checker.save(target)
    settings = target / "checker.json"
    settings.write_text(settings.read_text().replace('"k": 10', '"k": 11'))
    monkeypatch.setattr(authvision._storage.time, "sleep", lambda seconds: pytest.fail("retried a load of a broken directory"))
    with pytest.raises(av.IndexFormatError, match="sha256"):
        av.AuthenticityChecker.load(target)
