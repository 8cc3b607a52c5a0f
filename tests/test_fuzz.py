"""Bounded, seeded fuzzing of the image decoder and the checker loader (issue 16 point 3).

The fuzz loop runs in a child process (``tests/fuzz_harness.py``) under an address-space limit with a
time limit per input, so a hang, a runaway allocation or a segfault in a C parser is reported here with
the input that caused it instead of taking pytest down. Only ``ImageDecodeError`` (decoder) and
``AuthvisionError`` subclasses (loader) may escape.

Budgets: ``AUTHVISION_FUZZ_SECONDS`` per target in the default run (6 s), ``AUTHVISION_FUZZ_SLOW_SECONDS`` per
target in the ``slow`` run (15 s); ``AUTHVISION_FUZZ_SEED`` picks the seed (default 0; the slow run uses the next
one). For hours of coverage-guided fuzzing by hand: ``python tests/fuzz_harness.py decode --engine atheris
--seconds 3600 --workdir /tmp/fuzz``.

Inputs that once broke the contract live in ``tests/data/fuzz-corpus/<target>/`` and are replayed on every run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")

HARNESS = Path(__file__).with_name("fuzz_harness.py")
CORPUS = Path(__file__).parent / "data" / "fuzz-corpus"
SECONDS = float(os.environ.get("AUTHVISION_FUZZ_SECONDS", "6"))
SLOW_SECONDS = float(os.environ.get("AUTHVISION_FUZZ_SLOW_SECONDS", "15"))
SEED = int(os.environ.get("AUTHVISION_FUZZ_SEED", "0"))
STARTUP_SECONDS = 90  # importing, building the small checker; on a loaded machine


def run_harness(target: str, workdir: Path, *args: str, budget: float) -> dict:
    command = [sys.executable, str(HARNESS), target, "--workdir", str(workdir), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=budget + STARTUP_SECONDS,
                              env={**os.environ, "PYTHONHASHSEED": "0"}, cwd=workdir)  # cwd: hypothesis and libFuzzer write files there
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the {target} fuzzer hung past {budget + STARTUP_SECONDS} s; last input: {workdir / 'current.bin'}\n{exc.stderr}")
    if done.returncode < 0:  # killed by a signal: a crash in a C extension
        crash = workdir / "current.bin"
        pytest.fail(f"the {target} fuzzer died of signal {-done.returncode} on {crash} ({crash.stat().st_size} bytes)\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no report from the {target} fuzzer (exit {done.returncode}):\n{done.stderr[-3000:]}"
    report = json.loads(lines[-1])
    assert not report["failures"], json.dumps(report["failures"], indent=2)
    assert done.returncode == 0, done.stderr[-3000:]
    return report


def fuzz(target: str, tmp_path: Path, seconds: float, seed: int) -> dict:
    report = run_harness(target, tmp_path, "--seconds", str(seconds), "--seed", str(seed), budget=seconds)
    print(f"\n{target} fuzz: {report['executions']} executions in {report['seconds']} s, slowest input {report['slowest_input_s']} s, "
          f"outcomes {report['outcomes']}")
    return report


def test_decoder_fuzz(tmp_path):
    report = fuzz("decode", tmp_path, SECONDS, SEED)
    assert report["executions"] >= 200
    assert report["outcomes"].get("decoded", 0) > 0 and report["outcomes"].get("ImageDecodeError", 0) > 0  # both sides reached
    assert report["slowest_input_s"] < 10


def test_checker_loader_fuzz(tmp_path):
    report = fuzz("checker", tmp_path, SECONDS, SEED)
    assert report["executions"] >= 20
    assert report["outcomes"].get("loaded", 0) > 0 and report["outcomes"].get("IndexFormatError", 0) > 0


@pytest.mark.parametrize("target", sorted(p.name for p in CORPUS.iterdir()) if CORPUS.is_dir() else [])
def test_inputs_that_once_broke_the_contract_are_handled(target, tmp_path):
    files = sorted(str(p) for p in (CORPUS / target).iterdir())
    report = run_harness(target, tmp_path, "--replay", *files, budget=30)
    assert report["executions"] == len(files)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["decode", "checker"])
def test_longer_fuzz(target, tmp_path):
    report = fuzz(target, tmp_path, SLOW_SECONDS, SEED + 1)
    assert report["executions"] > 0


@pytest.mark.parametrize("document", [b"[]", b"1", b'"x"', b"null", b'{"p": 3}', b'{"p": {"stem": "s", "references": 5, "data": null}}'])
def test_inspection_data_of_the_wrong_shape_is_an_index_format_error(document):
    """What the checker fuzzer found in checker.json (a JSON document of another type), for the region inspection's products.json."""
    from authvision.errors import IndexFormatError
    from authvision.evidence.inspection import InspectionEvidence

    with pytest.raises(IndexFormatError, match="inspection data is malformed"):
        InspectionEvidence.restore({}, lambda name: document if name == "products.json" else b"", ["products.json"])
