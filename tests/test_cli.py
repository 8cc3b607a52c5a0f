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
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    code, out, _ = run(capsys, "check", str(listing), str(broken), "--checker", str(checker))
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1  # one input could not be checked
    assert lines[0]["product"] == "mug" and lines[0]["label"] in ("genuine", "fake")
    assert lines[1]["label"] == "error" and "broken.jpg" in lines[1]["error"] and lines[1]["calibrated"] is None
    code, out, err = run(capsys, "check", str(listing), str(tmp_path / "missing.jpg"), "--checker", str(checker))
    assert code == 2 and out == "" and "missing.jpg does not exist" in err  # a mistyped path: nothing checked

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


@pytest.fixture(scope="module")
def listings(refs, tmp_path_factory) -> Path:
    """A listings CSV with a split column: 12 calibration rows (6 genuine, 6 fake) and 4 test rows."""
    root = tmp_path_factory.mktemp("listings")
    rows = []
    for n in range(8):
        for product, name in (("rocket", "rocket"), ("mug", "coffee")):
            photo = Image.fromarray(sample_photo(name)).rotate(3 * n - 9, fillcolor="white")
            label = "genuine" if (n + (product == "mug")) % 2 else "fake"
            if label == "fake":
                photo = photo.convert("L").convert("RGB")
            path = write(root / f"{product}-{n}.jpg", photo)
            rows.append(f"{path.name},{label},{product},{'calibration' if n < 6 else 'test'}\n")
    (root / "listings.csv").write_text("path,label,product,split\n" + "".join(rows))
    return root / "listings.csv"


def test_calibrate_uses_the_calibration_split_and_the_warning_goes_away(refs, listings, tmp_path, capsys):
    checker = tmp_path / "checker"
    assert run(capsys, "index", "build", str(refs), "--out", str(checker), "--no-inspection")[0] == 0
    photo = listings.parent / "mug-0.jpg"
    code, _, err = run(capsys, "check", str(photo), str(listings.parent / "mug-1.jpg"), "--checker", str(checker))
    assert code == 0 and err.count("is not calibrated") == 1  # once per command, not per photo
    assert "authvision calibrate" in err

    code, out, err = run(capsys, "calibrate", str(checker), str(listings))
    assert code == 0, err
    report = json.loads(out)
    assert report["rows"] == 12 and report["split"] == "calibration"
    assert f"calibrating on 12 of 16 rows of {listings} (split calibration" in err
    code, out, err = run(capsys, "calibrate", str(checker), str(listings), "--split", "all")
    assert code == 0 and json.loads(out)["rows"] == 16 and json.loads(out)["split"] == "all"
    code, out, err = run(capsys, "calibrate", str(checker), str(listings), "--split", "held-out")
    assert code == 2 and out == "" and "calibration, test" in err and "--split all" in err

    code, out, err = run(capsys, "check", str(photo), "--checker", str(checker))
    assert code == 0 and "not calibrated" not in err and json.loads(out)["calibrated"] is True

    pytest.importorskip("sklearn")
    report = tmp_path / "report"
    code, out, err = run(capsys, "evaluate", str(listings), "--checker", str(checker), "--out", str(report))
    assert code == 0, err
    assert json.loads(out)["rows"] == 4 and json.loads(out)["split"] == "test"  # the test rows by default
    assert f"evaluating on 4 of 16 rows of {listings} (split test" in err and (report / "report.md").is_file()
    code, _, err = run(capsys, "evaluate", str(listings), "--checker", str(checker), "--out", str(report))
    assert code == 2 and "--force" in err


def test_check_text_format_is_one_readable_line_per_photo(refs, listings, tmp_path, capsys):
    checker = tmp_path / "checker"
    assert run(capsys, "index", "build", str(refs), "--out", str(checker))[0] == 0  # with inspection (needs 3 genuine: none here)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    photo = listings.parent / "mug-1.jpg"
    code, out, err = run(capsys, "check", str(photo), str(broken), "--checker", str(checker), "--format", "text")
    assert code == 1
    first, second = out.splitlines()
    assert first.startswith(f"{photo}  ") and "product bolt/mug" in first and "(uncalibrated)" in first
    assert "nearest genuine 0." in first and "nearest fake 0." in first and "inspect" in first
    assert first.split("  ")[1] in ("genuine", "fake", "unknown")
    assert second.startswith(f"{broken}  error  ")


def test_an_unknown_brand_is_refused_with_the_known_ones(refs, listings, tmp_path, capsys):
    checker = tmp_path / "checker"
    assert run(capsys, "index", "build", str(refs), "--out", str(checker), "--no-inspection")[0] == 0
    code, out, err = run(capsys, "check", str(listings.parent / "mug-1.jpg"), "--checker", str(checker), "--brand", "blot")
    assert code == 2 and out == "" and "acme, bolt" in err
    code, out, _ = run(capsys, "check", str(listings.parent / "mug-1.jpg"), "--checker", str(checker), "--brand", "bolt")
    assert code == 0 and json.loads(out)["brand"] == "bolt"


def test_the_text_line_summarises_a_registered_inspection():
    from authvision.cli_support import verdict_line
    from authvision.verdict import Match, Verdict

    inspection = {"inspected": True, "registered": True, "inliers": 61, "regions": [{"score": 1.25}, {"score": 3.5}]}
    verdict = Verdict(0.91, "genuine", "mug", "bolt", calibrated=True, provider_evidence={"inspection": inspection},
                      neighbors=(Match(3, "genuine", "mug", "bolt", 0.95, "a.jpg"), Match(5, "fake", "mug", "bolt", 0.8, "c.jpg")),
                      duplicate_of=Match(3, "genuine", "mug", "bolt", 0.95, "a.jpg", hamming=2))
    assert verdict_line("x.jpg", verdict) == (
        "x.jpg  genuine  authenticity 0.910  product bolt/mug  nearest genuine 0.950 (ref 3)  nearest fake 0.800 (ref 5)  "
        "duplicate of ref 3 (genuine, 2 bits apart)  inspection: registered (61 inliers), worst region 3.50"
    )
    unknown = Verdict(None, "unknown", evidence={"max_similarity": 0.412})
    assert verdict_line("y.jpg", unknown) == "y.jpg  unknown  no indexed product is close (best similarity 0.412)"
