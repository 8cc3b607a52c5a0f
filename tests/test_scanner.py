"""Scanner and scan journal on real photos: same verdicts as check_many, lazy and bounded, and one row
per input after any number of ``kill -9`` + ``--resume`` rounds."""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

import authvision as av
from authvision.hashing import _canonical, perceptual_hashes
from authvision.manifest import PreprocessConfig
from authvision.preprocess import resize_shorter, to_tensor
from authvision.scanner import ResultJournal, ResumeError, Scanner, expand_inputs, scan_to_jsonl

pytest.importorskip("skimage")
from authvision.sample_photos import sample_photo  # noqa: E402

PRODUCTS = {"rocket-01": ("rocket", "acme"), "mug-01": ("coffee", "bolt"), "cat-01": ("chelsea", "bolt")}
LISTING_PHOTOS = ("rocket", "coffee", "chelsea", "astronaut", "camera", "grace_hopper", "stereo_motorcycle_left")


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def photo(name: str) -> Image.Image:
    return Image.fromarray(sample_photo(name)).convert("RGB")


def listing(name: str, variant: int, side: int = 480) -> Image.Image:
    """Listing-style edits: plain, white-padded square, banner, crop; resized so the long side is ``side``."""
    image = photo(name)
    w, h = image.size
    if variant % 4 == 1:
        canvas = Image.new("RGB", (max(w, h) + 40,) * 2, "white")
        canvas.paste(image, ((canvas.width - w) // 2, (canvas.height - h) // 2))
        image = canvas
    elif variant % 4 == 2:
        ImageDraw.Draw(image).rectangle((0, h - h // 9, w, h), fill=(220, 30, 30))
    elif variant % 4 == 3:
        image = image.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    scale = side / max(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)


@pytest.fixture(scope="module")
def checker(embedder) -> av.AuthenticityChecker:
    checker = av.AuthenticityChecker(embedder)
    for product, (name, brand) in PRODUCTS.items():
        image = photo(name)
        checker.add_references([jpeg(image), jpeg(ImageOps.mirror(image))], "genuine", product=product, brand=brand)
        hue = image.convert("HSV").split()
        fake = Image.merge("HSV", (hue[0].point(lambda x: (x + 14) % 256), hue[1], hue[2])).convert("RGB")
        checker.add_references([jpeg(fake)], "fake", product=product, brand=brand)
    return checker


@pytest.fixture(scope="module")
def listing_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("listings")
    paths = []
    for i, name in enumerate(LISTING_PHOTOS * 2):
        path = folder / f"{i:03d}-{name}.jpg"
        path.write_bytes(jpeg(listing(name, i), quality=70 + 3 * i))
        paths.append(path)
    return paths


# -- the scanner ---------------------------------------------------------------------------------------


def test_scan_gives_the_same_verdicts_as_check_many(checker, listing_files, tmp_path):
    missing = tmp_path / "missing.jpg"
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    inputs = [*listing_files, b"", missing, jpeg(photo("coffee"))[:400], text, photo("rocket"), 42]
    expected = checker.check_many(inputs[:-1]) + [None]
    results = list(Scanner(checker, batch_size=3, decode_workers=2).scan(inputs))
    assert [r.seq for r in results] == list(range(len(inputs)))
    for result, verdict in zip(results[:-1], expected):
        assert result.verdict.to_dict() == verdict.to_dict()
    n = len(listing_files)
    assert [r.verdict.label for r in results[n : n + 4]] == ["error"] * 4
    assert "not found" in results[n + 1].verdict.error
    assert results[-1].verdict.label == "error" and results[-1].verdict.error.startswith("TypeError")
    assert {r.verdict.label for r in results[:n]} <= {"genuine", "fake", "unknown"}
    assert any(r.verdict.product == "mug-01" for r in results[:n])


def test_a_bicubic_model_does_not_share_its_resize_with_hashing(checker, listing_files, monkeypatch):
    manifest = checker.embedder.manifest
    bicubic = dataclasses.replace(manifest.preprocess, interpolation="bicubic")
    monkeypatch.setattr(checker.embedder, "manifest", dataclasses.replace(manifest, preprocess=bicubic))
    expected = [v.to_dict() for v in checker.check_many(listing_files)]
    assert any(v["duplicate_of"] for v in expected)  # hamming distances are compared below
    assert [r.verdict.to_dict() for r in checker.scan(listing_files, batch_size=5)] == expected


def test_results_carry_ids_paths_timings_and_provenance(checker, listing_files):
    inputs = [listing_files[0], ("sku-7", listing_files[1]), jpeg(photo("chelsea")), ("sku-8", b"junk")]
    results = list(checker.scan(inputs, batch_size=2))
    assert [(r.id, r.path) for r in results] == [
        (str(listing_files[0]), str(listing_files[0])),
        ("sku-7", str(listing_files[1])),
        ("#2", None),
        ("sku-8", None),
    ]
    for r in results:
        assert r.model_sha256 == checker.embedder.model_sha256 and r.checker_version == checker.version
        assert set(r.timings) == {"decode", "embed", "search"} and r.timings["decode"] > 0
    assert results[0].timings["embed"] > 0 and results[0].timings["search"] > 0
    assert results[3].timings["embed"] == 0.0 and results[3].verdict.label == "error"
    row = json.loads(json.dumps(results[0].to_dict()))
    verdict = results[0].verdict
    assert row["seq"] == 0 and row["label"] == verdict.label and row["product"] == verdict.product
    assert row["neighbor_ids"] == [m.ref_id for m in verdict.neighbors]
    assert row["neighbor_similarities"] == pytest.approx([m.similarity for m in verdict.neighbors], abs=1e-6)
    assert row["error"] is None and json.loads(json.dumps(results[3].to_dict()))["error"]


def test_scan_reads_inputs_lazily_and_keeps_a_bounded_window(checker, listing_files):
    pulled = 0

    def endless():
        nonlocal pulled
        for path in itertools.cycle(listing_files):
            pulled += 1
            yield path

    scanner = Scanner(checker, batch_size=4, decode_workers=1, queue_size=2)
    before = threading.active_count()
    results = scanner.scan(endless())
    first = list(itertools.islice(results, 10))
    assert [r.seq for r in first] == list(range(10))
    assert pulled <= 10 + scanner.queue_size * scanner.batch_size
    results.close()  # stopping early shuts the pipeline's threads down
    assert threading.active_count() == before


def test_brand_restricts_every_search(checker, listing_files):
    results = list(checker.scan(listing_files[:6], brand="acme", batch_size=4))
    assert all(m.brand == "acme" for r in results for m in r.verdict.neighbors)


def test_scanner_validates_its_arguments(checker):
    with pytest.raises(TypeError, match="AuthenticityChecker"):
        Scanner(object())
    with pytest.raises(ValueError, match="batch_size"):
        Scanner(checker, batch_size=0)
    with pytest.raises(ValueError, match="decode_workers"):
        Scanner(checker, decode_workers=0)
    with pytest.raises(ValueError, match="switch_interval"):
        Scanner(checker, switch_interval=0)


def test_the_gil_switch_interval_is_lowered_only_while_scans_run(checker, listing_files):
    default = sys.getswitchinterval()
    untouched = checker.scan(listing_files[:4], batch_size=4)  # by default a scan leaves it alone
    next(untouched)
    assert sys.getswitchinterval() == pytest.approx(default)
    untouched.close()
    first = Scanner(checker, batch_size=4, switch_interval=0.0005).scan(listing_files[:8])
    second = Scanner(checker, batch_size=4, switch_interval=0.001).scan(listing_files[:8])
    next(first)
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    next(second)  # a second scan never raises it; the first scan's end does not restore it yet
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert len(list(first)) == 7
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    second.close()  # stopping early restores it too
    assert sys.getswitchinterval() == pytest.approx(default)
    list(Scanner(checker, batch_size=4, switch_interval=None).scan(listing_files[:2]))
    assert sys.getswitchinterval() == pytest.approx(default)


# -- the fast path's library helpers: same results as the plain path ----------------------------------


def test_version_1_hashes_reuse_the_model_resize_without_changing_them(listing_files):
    config = PreprocessConfig()
    reused = 0
    for path in listing_files:
        for image in (av.load_image(path, min_side=256), av.load_image(path)):
            resized = resize_shorter(image, config)
            assert np.array_equal(perceptual_hashes(image, version=1, resized=resized), perceptual_hashes(image, version=1))
            reused += _canonical(image, resized) is resized
    assert 0 < reused < 2 * len(listing_files)  # both paths were taken: shared resize, and trimmed first


def test_lookup_table_normalisation_is_bit_identical():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))
    for mean, std in (((0.5,) * 3, (0.5,) * 3), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        config = PreprocessConfig(mean=mean, std=std)
        pixels = np.asarray(image, dtype=np.float32) * np.float32(1.0 / 255.0)
        plain = ((pixels - np.asarray(mean, np.float32)) * (np.float32(1.0) / np.asarray(std, np.float32))).transpose(2, 0, 1)
        assert np.array_equal(to_tensor(image, config), plain)
    with pytest.raises(ValueError, match="RGB"):
        to_tensor(image.convert("L"), PreprocessConfig())


# -- the journal ---------------------------------------------------------------------------------------


def test_an_existing_output_is_refused_without_resume(checker, listing_files, tmp_path):
    out = tmp_path / "out.jsonl"
    summary = scan_to_jsonl(Scanner(checker, batch_size=4), listing_files[:5], out)
    assert summary.rows == summary.scanned == 5 and summary.resumed == 0
    with pytest.raises(FileExistsError, match="resume"):
        scan_to_jsonl(Scanner(checker), listing_files[:5], out)
    again = scan_to_jsonl(Scanner(checker), listing_files[:5], out, resume=True)
    assert again.scanned == 0 and again.resumed == again.rows == 5
    with ResultJournal(out, resume=True), pytest.raises(ResumeError, match="another scan"):
        ResultJournal(out, resume=True)  # two writers on one output


def test_resume_drops_a_torn_line_and_writes_only_missing_rows(checker, listing_files, tmp_path):
    out = tmp_path / "out.jsonl"
    inputs = listing_files[:9]
    scan_to_jsonl(Scanner(checker, batch_size=4), inputs[:4], out)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:3]) + lines[3][:25])  # a kill in mid-line (never seen, but handled)
    summary = scan_to_jsonl(Scanner(checker, batch_size=4), inputs, out, resume=True, csv_path=tmp_path / "out.csv")
    assert summary.resumed == 3 and summary.scanned == 6 and summary.rows == 9
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in rows] == list(range(9)) and [r["id"] for r in rows] == [str(p) for p in inputs]
    with open(tmp_path / "out.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["id"] for row in table] == [str(p) for p in inputs]
    assert [row["label"] for row in table] == [r["label"] for r in rows]


def test_resume_refuses_inputs_that_changed(checker, listing_files, tmp_path):
    out = tmp_path / "out.jsonl"
    scan_to_jsonl(Scanner(checker, batch_size=4), listing_files[:4], out)
    with pytest.raises(ResumeError, match="input 1 with a different id"):
        scan_to_jsonl(Scanner(checker), [listing_files[0], listing_files[5], *listing_files[2:6]], out, resume=True)
    with pytest.raises(ResumeError, match="only 3 inputs"):
        scan_to_jsonl(Scanner(checker), listing_files[:3], out, resume=True)


def test_resume_repairs_lines_a_power_loss_damaged(checker, listing_files, tmp_path):
    out = tmp_path / "out.jsonl"
    scan_to_jsonl(Scanner(checker, batch_size=4), listing_files[:5], out)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(lines[0] + b"\x00" * 40 + b"\n" + lines[1] + lines[1] + b"".join(lines[3:]))  # zeros, a repeat, row 2 lost
    journal = ResultJournal(out, resume=True)
    journal.close()
    assert journal.repaired_lines == 2 and journal.resumed == 4
    summary = scan_to_jsonl(Scanner(checker), listing_files[:5], out, resume=True)
    assert summary.scanned == 1 and summary.rows == 5
    seqs = [json.loads(line)["seq"] for line in out.read_text().splitlines()]
    assert sorted(seqs) == list(range(5))


def test_expand_inputs_reads_folders_text_and_csv_lists(listing_files, tmp_path):
    folder = listing_files[0].parent
    text = tmp_path / "inputs.txt"
    text.write_text(f"# listings\n{listing_files[0]}\n\nrel/photo.jpg\n")
    table = tmp_path / "inputs.csv"
    table.write_text(f"id,path\nsku-1,{listing_files[1]}\n,rel/other.jpg\n")
    found = list(expand_inputs([folder, text, table, listing_files[2]]))
    assert found[: len(listing_files)] == [(str(p), str(p)) for p in sorted(listing_files)]
    assert found[len(listing_files) :] == [
        (str(listing_files[0]), str(listing_files[0])),
        ("rel/photo.jpg", str(tmp_path / "rel/photo.jpg")),
        ("sku-1", str(listing_files[1])),
        ("rel/other.jpg", str(tmp_path / "rel/other.jpg")),
        (str(listing_files[2]), str(listing_files[2])),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx.jpg\n")
    with pytest.raises(av.AuthvisionError, match="'path' column"):
        list(expand_inputs([bad]))


# -- kill -9 at any moment, then --resume -------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_checker(checker, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("checker") / "checker"
    checker.save(directory)
    return directory


def _scan_command(folder: Path, extra: Path, checker_dir: Path, out: Path, resume: bool) -> list[str]:
    command = [sys.executable, "-m", "authvision", "-q", "--threads", "1", "scan", str(folder), str(extra),
               "--checker", str(checker_dir), "--out", str(out), "--batch-size", "4"]  # fmt: skip
    return command + (["--resume"] if resume else [])


def _wait_for_lines(out: Path, at_least: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= at_least:
            return
        time.sleep(0.005)


def test_kill_9_at_any_moment_then_resume_leaves_exactly_one_row_per_input(saved_checker, tmp_path):
    folder = tmp_path / "listings"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(180):  # small photos: many rows per second, so the kills land in mid-scan
        image = listing(LISTING_PHOTOS[i % len(LISTING_PHOTOS)], i, side=160)
        (folder / f"{i:03d}.jpg").write_bytes(jpeg(image, quality=int(rng.integers(60, 95))))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (folder / "empty.png").write_bytes(b"")
    extra = tmp_path / "more.txt"
    extra.write_text("missing-1.jpg\nmissing-2.jpg\n")
    expected = [i for i, _ in expand_inputs([folder, extra])]
    assert len(expected) == 184
    out = tmp_path / "scan.jsonl"

    kills = []
    # Kill while starting, then after a few rows, then at random moments; then finish.
    for attempt, at_least in enumerate((0, 5, 40, None, 100, None, 150)):
        process = subprocess.Popen(_scan_command(folder, extra, saved_checker, out, resume=attempt > 0),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        if at_least is None:
            time.sleep(float(rng.uniform(0.3, 1.0)))
        else:
            _wait_for_lines(out, at_least, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills.append(out.read_bytes().count(b"\n") if out.exists() else 0)
    done = subprocess.run(_scan_command(folder, extra, saved_checker, out, resume=True), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert sum(0 < k < len(expected) for k in kills) >= 3, kills  # most kills really were mid-scan

    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a complete line
    rows = [json.loads(line) for line in lines[:-1]]  # every line is valid JSON
    assert len(rows) == len(expected)
    assert sorted(r["seq"] for r in rows) == list(range(len(expected)))
    assert {r["seq"]: r["id"] for r in rows} == dict(enumerate(expected))
    errors = {r["id"] for r in rows if r["label"] == "error"}
    assert errors == {str(folder / "broken.jpg"), str(folder / "empty.png"), "missing-1.jpg", "missing-2.jpg"}
    assert all(r["error"] for r in rows if r["label"] == "error")
    summary = json.loads(done.stdout)
    assert summary["rows"] == len(expected) and summary["errors"] == 4
    assert summary["resumed"] + summary["scanned"] == len(expected)


def test_cli_scan_writes_csv_and_summary_and_refuses_to_overwrite(saved_checker, listing_files, tmp_path):
    from authvision.cli import main

    out, table = tmp_path / "r.jsonl", tmp_path / "r.csv"
    argv = ["-q", "--threads", "1", "scan", str(listing_files[0].parent), "--checker", str(saved_checker), "--out", str(out)]
    assert main([*argv, "--csv", str(table)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(listing_files) and all(r["label"] != "error" for r in rows)
    with open(table, newline="") as handle:
        assert [r["id"] for r in csv.DictReader(handle)] == [r["id"] for r in rows]
    assert main(argv) == 2  # exists, no --resume
    assert os.path.getsize(out) > 0 and len(out.read_text().splitlines()) == len(listing_files)
