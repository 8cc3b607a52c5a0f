"""A brand's authentication points: given through the library or `authvision index regions`, scored in
every verdict of the product, saved with the checker, dropped with the photo they were drawn on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import authvision as av
from authvision.brandkit import KitConfig, generate_kit
from authvision.cli import main
from authvision.errors import InspectionError
from authvision.evidence import inspection_providers

pytest.importorskip("cv2")

CONFIG = KitConfig(brands=1, products_per_brand=1, kinds=("sneaker",), genuine_refs=5, fake_refs=1, listings=6,
                   reused_share=0.0, unknown_share=0.0, photo_size=480)  # fmt: skip
CENTRE = {"centre": [0.3, 0.3, 0.7, 0.7]}


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kit-points")
    generate_kit(root, seed=11, config=CONFIG, workers=1, overwrite=True)
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def saved(kit, embedder, tmp_path_factory) -> tuple[Path, str, int, str]:
    """A checker with inspection saved to disk; (its directory, the product, a genuine reference's id and source)."""
    checker = av.AuthenticityChecker(embedder, providers=inspection_providers())
    for row in _rows(kit / "references.csv"):
        checker.add_references([str(kit / row["path"])], row["label"], product=row["product"], brand=row["brand"])
    directory = tmp_path_factory.mktemp("checker-points") / "checker"
    checker.save(directory)
    product = _rows(kit / "references.csv")[0]["product"]
    ref = checker.index.references(checker.index.ids(product=product, label="genuine"))[1]
    assert ref.source is not None
    return directory, product, ref.ref_id, ref.source


def _listing(kit: Path) -> Path:
    return kit / next(r["path"] for r in _rows(kit / "listings.csv") if r["label"] == "genuine")


def test_points_given_through_the_library_are_scored_and_saved(saved, kit, tmp_path):
    directory, product, _, source = saved
    checker = av.AuthenticityChecker.load(directory)
    checker.set_authentication_points(product, source, CENTRE, fractions=True)
    verdict = checker.check(_listing(kit))
    assert verdict.inspection is not None and verdict.inspection["registered"]
    [point] = verdict.inspection["points"]
    assert point["name"] == "centre" and -5 < point["score"] < 5 and len(point["listing_box"]) == 4
    checker.save(tmp_path / "copy")
    again = av.AuthenticityChecker.load(tmp_path / "copy")
    assert again.inspection_provider().authentication_points(product)["boxes"] == CENTRE
    assert again.check(_listing(kit)).inspection["points"][0]["score"] == pytest.approx(point["score"], abs=1e-3)


def test_bad_points_are_refused_and_change_nothing(saved):
    directory, product, ref_id, _ = saved
    checker = av.AuthenticityChecker.load(directory)
    with pytest.raises(InspectionError, match="no genuine reference"):
        checker.set_authentication_points(product, 99999, CENTRE, fractions=True)
    with pytest.raises(InspectionError, match="outside the photo"):
        checker.set_authentication_points(product, ref_id, {"big": [0, 0, 5000, 10]})
    with pytest.raises(InspectionError, match="box"):
        checker.set_authentication_points(product, ref_id, {"flat": [10, 10, 10, 20]})
    with pytest.raises(InspectionError, match="no genuine reference added from"):
        checker.set_authentication_points(product, "nowhere.jpg", CENTRE, fractions=True)
    assert checker.inspection_provider().authentication_points(product) is None


def test_removing_the_photo_they_were_drawn_on_drops_the_points(saved):
    directory, product, ref_id, _ = saved
    checker = av.AuthenticityChecker.load(directory)
    checker.set_authentication_points(product, ref_id, CENTRE, fractions=True)
    checker.remove_references([ref_id])
    assert checker.inspection_provider().authentication_points(product) is None


def test_index_regions_command(saved, kit, tmp_path, capsys):
    directory, product, ref_id, _ = saved
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"reference": ref_id, "boxes": {"plate": [100, 120, 300, 260]}}))
    work = tmp_path / "checker"
    av.AuthenticityChecker.load(directory).save(work)
    assert main(["--quiet", "index", "regions", str(work), product, str(boxes)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["points"]["boxes"] == {"plate": [100.0, 120.0, 300.0, 260.0]} and out["points"]["reference"] == ref_id
    assert av.AuthenticityChecker.load(work).inspection_provider().authentication_points(product)["reference"] == ref_id

    for text, message in (("{not json", "not JSON"), (json.dumps({"boxes": {}}), "expected"),
                          (json.dumps({"reference": 99999, "boxes": {"a": [1, 1, 9, 9]}}), "no genuine reference")):  # fmt: skip
        boxes.write_text(text)
        assert main(["--quiet", "index", "regions", str(work), product, str(boxes)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert av.AuthenticityChecker.load(work).inspection_provider().authentication_points(product)["boxes"] == {"plate": [100.0, 120.0, 300.0, 260.0]}

    boxes.write_text(json.dumps({"reference": ref_id, "boxes": {}}))  # clears them
    assert main(["--quiet", "index", "regions", str(work), product, str(boxes)]) == 0
    assert av.AuthenticityChecker.load(work).inspection_provider().authentication_points(product) is None


def test_the_reviewers_overlay_draws_the_points(saved, kit):
    from io import BytesIO

    import numpy as np
    from PIL import Image

    from authvision.overlay import explain

    directory, product, _, source = saved
    checker = av.AuthenticityChecker.load(directory)

    def amber_pixels() -> int:
        png = explain(checker, _listing(kit))
        assert png is not None
        rgb = np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int)
        return int(((np.abs(rgb - [255, 200, 0]) <= 8).all(-1)).sum())

    without = amber_pixels()
    checker.set_authentication_points(product, source, CENTRE, fractions=True)
    assert amber_pixels() > without + 100  # the point's box outlined on the template and the heatmap
