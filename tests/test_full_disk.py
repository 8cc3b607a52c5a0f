"""A full disk (issue 16 point 4): scans and saves on a small tmpfs that fills up.

A scan that runs out of space stops with :class:`StorageFullError` (an ``OSError`` with ``ENOSPC``), keeps every
complete row it wrote and no partial one, and a resume after space is freed gives exactly one row per input. A
checker save that fills the disk leaves the previous checker loadable. The tmpfs is mounted by the test; where
mounting is not allowed (not root, no CAP_SYS_ADMIN, no tmpfs) the tests are skipped and say why.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

import authvision as av
from authvision.cli import main as cli_main
from authvision.errors import StorageFullError
from authvision.sample_photos import sample_photo
from authvision.scanner import Scanner, scan_to_jsonl
from authvision.signing import KEY_ENV_VAR

PAGE = 4096


@contextlib.contextmanager
def small_tmpfs(where: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted at ``where`` (skips the test where mounting is not allowed)."""
    where.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small file system to fill")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def fill(path: Path, leave: int) -> Path:
    """A ballast file that leaves about ``leave`` bytes (whole pages) free on ``path``'s file system."""
    ballast = path / "ballast"
    with open(ballast, "wb") as handle:
        handle.write(b"\0" * max(0, free_bytes(path) - leave))
    assert free_bytes(path) <= leave + PAGE
    return ballast


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def photo(name: str, side: int = 192) -> Image.Image:
    image = Image.fromarray(sample_photo(name))
    image.thumbnail((side, side))
    return image


NAMES = ("coffee", "rocket", "chelsea", "astronaut", "camera", "brick")


@pytest.fixture(scope="module")
def checker(embedder: av.Embedder) -> av.AuthenticityChecker:
    checker = av.AuthenticityChecker(embedder)
    for name in NAMES[:3]:
        checker.add_references([jpeg(photo(name))], "genuine", product=name, brand="acme")
    return checker


@pytest.fixture(scope="module")
def listings(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    """30 listing files on the ordinary disk (the scan's output goes to the small file system)."""
    folder = tmp_path_factory.mktemp("listings")
    out = []
    for i in range(30):
        image = photo(NAMES[i % len(NAMES)]).rotate(3 * (i // len(NAMES)), fillcolor="white")
        path = folder / f"listing-{i:02d}.jpg"
        path.write_bytes(jpeg(image, 60 + i))
        out.append((f"listing-{i:02d}", str(path)))
    return out


def rows_of(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "the output must end with a complete line"
    return [json.loads(line) for line in data.splitlines()]


def comparable(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "timings"}


def test_a_scan_that_fills_the_disk_stops_keeps_its_rows_and_resumes_to_one_row_per_input(checker, listings, tmp_path):
    expected_path = tmp_path / "expected.jsonl"
    scanner = Scanner(checker, batch_size=4, decode_workers=1)
    scan_to_jsonl(scanner, listings, expected_path)
    expected = {row["seq"]: comparable(row) for row in rows_of(expected_path)}
    row_bytes = expected_path.stat().st_size // len(listings)

    with small_tmpfs(tmp_path / "fs", 16 * PAGE) as fs:
        ballast = fill(fs, 2 * PAGE)  # room for roughly a third of the rows
        assert 2 * PAGE < row_bytes * len(listings)
        out = fs / "scan.jsonl"
        seen: list[int] = []
        with pytest.raises(StorageFullError) as full:
            scan_to_jsonl(scanner, listings, out, progress=seen.append)
        assert isinstance(full.value, OSError) and full.value.errno == errno.ENOSPC
        message = str(full.value)
        assert "no space left" in message and str(out) in message and "resume the scan" in message

        written = rows_of(out)  # every line complete: the partial one was cut off
        assert 0 < len(written) < len(listings)
        assert len(written) == seen[-1], "a row the scan reported as written is missing"
        assert f"{len(written)} rows written" in message
        assert [row["seq"] for row in written] == list(range(len(written)))
        assert all(comparable(row) == expected[row["seq"]] for row in written)

        # Still full: a resume stops again, losing nothing and adding no partial line.
        with pytest.raises(StorageFullError):
            scan_to_jsonl(scanner, listings, out, resume=True)
        assert rows_of(out)[: len(written)] == written

        ballast.unlink()  # space freed
        summary = scan_to_jsonl(scanner, listings, out, resume=True)
        assert summary.rows == len(listings) and summary.resumed >= len(written)
        final = rows_of(out)
        assert sorted(row["seq"] for row in final) == list(range(len(listings)))  # exactly one row per input
        assert {row["seq"]: comparable(row) for row in final} == expected
        assert [row["id"] for row in sorted(final, key=lambda r: r["seq"])] == [item_id for item_id, _ in listings]


def test_the_cli_scan_stops_with_a_clear_error_and_resume_finishes(checker, listings, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    checker.save(tmp_path / "checker")
    folder = Path(listings[0][1]).parent
    with small_tmpfs(tmp_path / "fs", 16 * PAGE) as fs:
        ballast = fill(fs, 2 * PAGE)
        out = fs / "scan.jsonl"
        command = ["scan", str(folder), "--checker", str(tmp_path / "checker"), "--out", str(out)]
        assert cli_main(command) != 0
        err = capsys.readouterr().err
        assert "no space left" in err and "--resume" in err and "Traceback" not in err
        kept = rows_of(out)
        assert 0 < len(kept) < len(listings)

        ballast.unlink()
        assert cli_main([*command, "--resume"]) == 0
        summary = json.loads(capsys.readouterr().out)
        final = rows_of(out)
        assert summary["rows"] == len(final) == len(listings)
        assert sorted(row["seq"] for row in final) == list(range(len(listings)))
        assert final[: len(kept)] == kept


def test_a_save_that_fills_the_disk_leaves_the_previous_checker_loadable(checker, embedder, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    with small_tmpfs(tmp_path / "fs", 64 * PAGE) as fs:
        target = fs / "checker"
        checker.save(target, signing_key="k")
        saved_bytes = sum(path.stat().st_size for path in target.rglob("*") if path.is_file())
        before = av.AuthenticityChecker.load(target, signing_key="k")
        probe = jpeg(photo("coffee").rotate(2, fillcolor="white"))
        verdict = before.check(probe).to_dict()

        bigger = av.AuthenticityChecker.load(target, signing_key="k")
        bigger.add_references([jpeg(photo(name, 256)) for name in NAMES[3:]], "fake", product="other", brand="acme")
        ballast = fill(fs, saved_bytes // 2)  # not enough for a second copy
        with pytest.raises(StorageFullError) as full:
            bigger.save(target, signing_key="k")
        assert full.value.errno == errno.ENOSPC
        assert "previous save" in str(full.value) and "untouched" in str(full.value)
        assert sorted(p.name for p in fs.iterdir()) == ["ballast", "checker"]  # no temporary directory left behind

        after = av.AuthenticityChecker.load(target, signing_key="k")  # the previous checker, intact and signed
        assert len(after.index) == len(checker.index)
        assert after.check(probe).to_dict() == verdict

        ballast.unlink()
        bigger.save(target, signing_key="k")  # with space again the save goes through
        assert len(av.AuthenticityChecker.load(target, signing_key="k").index) == len(checker.index) + 3

        # A first save on a full disk: nothing half-written is left either.
        ballast = fill(fs, PAGE)
        with pytest.raises(StorageFullError, match="nothing was saved"):
            checker.save(fs / "new-checker")
        assert not (fs / "new-checker").exists()
        assert sorted(p.name for p in fs.iterdir()) == ["ballast", "checker"]
