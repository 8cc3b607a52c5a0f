"""The command line over real photos: build a checker from a brand folder, inspect, check, edit it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from authvision.cli import main
from authvision.sample_photos import sample_photo

pytest.importorskip("skimage")


def write(path: Path, image: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("refs")
    for brand, product, name in (("acme", "rocket", "rocket"), ("bolt", "mug", "coffee")):
        photo = Image.fromarray(sample_photo(name))
        write(root / brand / product / "genuine" / "a.jpg", photo)
        write(root / brand / product / "genuine" / "b.jpg", ImageOps.mirror(photo))
        write(root / brand / product / "fake" / "c.jpg", photo.convert("L").convert("RGB"))
    (root / "bolt" / "mug" / "fake" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_build_info_check_add_remove(refs, tmp_path, capsys):
    checker = tmp_path / "checker"
    code, out, _ = run(capsys, "index", "build", str(refs), "--out", str(checker))
    summary = json.loads(out)
    assert code == 0 and summary["references"] == 6 and summary["labels"] == {"genuine": 4, "fake": 2}
    assert summary["skipped"] == [str(refs / "bolt" / "mug" / "fake" / "broken.jpg")]

    code, out, _ = run(capsys, "index", "info", str(checker))
    info = json.loads(out)
    assert info["index"]["references"] == 6 and info["calibrated"] is False and info["model"]["dim"] == 1280

    listing = write(tmp_path / "listing.jpg", Image.fromarray(sample_photo("coffee")).rotate(5, fillcolor="white"))
    code, out, _ = run(capsys, "check", str(listing), str(tmp_path / "missing.jpg"), "--checker", str(checker))
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1  # one input failed
    assert lines[0]["product"] == "mug" and lines[0]["label"] in ("genuine", "fake")
    assert lines[1]["label"] == "error" and "not found" in lines[1]["error"]

    extra = write(tmp_path / "new" / "x.jpg", Image.fromarray(sample_photo("chelsea")))
    code, out, _ = run(capsys, "index", "add", str(checker), str(extra.parent), "--label", "genuine", "--product", "cat")
    assert code == 0 and json.loads(out)["references"] == 7
    code, out, _ = run(capsys, "index", "remove", str(checker), "6")
    assert code == 0 and json.loads(out)["references"] == 6
    code, _, err = run(capsys, "index", "remove", str(checker), "6")
    assert code == 2 and "unknown reference" in err


def test_bad_layouts_are_reported_with_the_folder(tmp_path, capsys):
    bad = tmp_path / "refs" / "acme" / "bag" / "counterfeit"
    bad.mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(bad / "x.jpg")
    code = main(["--quiet", "index", "build", str(tmp_path / "refs"), "--out", str(tmp_path / "c")])
    assert code == 2 and "counterfeit" in capsys.readouterr().err


def test_entry_point_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "authvision", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("authvision ")


@pytest.mark.slow
def test_demo_leaves_a_report_and_holds_out_a_defect_family(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["--quiet", "demo", "--out", str(out), "--listings", "60", "--no-real-photos",
                 "--heldout-families", "geometry"])
    assert code == 0
    assert str(out / "report" / "report.md") in capsys.readouterr().out
    report = json.loads((out / "report" / "report.json").read_text())
    assert {"roc", "reliability", "histogram", "evidence"} <= set(report["plots"])
    assert all((out / "report" / name).stat().st_size > 1000 for name in report["plots"].values())
    assert 0.0 <= report["detection"]["roc_auc"] <= 1.0
    assert "Held out" in (out / "report" / "report.md").read_text()
    kit = json.loads((out / "kit" / "kit.json").read_text())
    held = [f for f in kit["factories"] if f["heldout"]]
    assert held and all(f["family"] == "geometry" and not f["seen"] for f in held)
    with open(out / "kit" / "references.csv", newline="") as refs:  # held-out fakes never reach the references
        assert all(row["family"] != "geometry" for row in csv.DictReader(refs))


def test_demo_refuses_an_unknown_defect_family(tmp_path, capsys):
    assert main(["--quiet", "demo", "--out", str(tmp_path / "d"), "--heldout-families", "typo"]) == 2
    assert "unknown heldout_families" in capsys.readouterr().err
