"""The command line's contract with a new user: exit codes 0/1/2 (``authvision --help``), no traceback
for any user error, existing checkers, models and reports refused without --force, optional extras
checked before work starts. Every command runs in-process on a tiny checker (no inspection)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from PIL import Image, ImageOps

import authvision.cli_support as cli_support
from authvision.cli import main
from authvision.sample_photos import sample_photo

pytest.importorskip("skimage")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-errors")
    refs = root / "refs"
    for brand, product, name in (("acme", "rocket", "rocket"), ("bolt", "mug", "coffee")):
        photo = Image.fromarray(sample_photo(name))
        for label, file, image in (("genuine", "a.jpg", photo), ("genuine", "b.jpg", ImageOps.mirror(photo)),
                                   ("fake", "c.jpg", photo.convert("L").convert("RGB"))):
            (refs / brand / product / label).mkdir(parents=True, exist_ok=True)
            image.save(refs / brand / product / label / file, quality=90)
    checker = root / "checker"
    assert main(["--quiet", "index", "build", str(refs), "--out", str(checker), "--no-inspection"]) == 0
    photo = root / "listing.jpg"
    Image.fromarray(sample_photo("coffee")).rotate(5, fillcolor="white").save(photo, quality=90)
    (root / "empty").mkdir()
    (root / "existing").mkdir()
    (root / "existing" / "keep.txt").write_text("a user's file\n")
    (root / "garbage.jpg").write_bytes(b"\x00\xff\xfe not a photo \x81\x82")
    (root / "garbage.csv").write_bytes(b"\x00\xff\xfe,\x81\n\x82\x83")
    (root / "empty.txt").write_text("# nothing listed\n")
    (root / "done.jsonl").write_text('{"seq": 0}\n')
    with open(root / "few.csv", "w") as handle:
        handle.write("path,label\n" + "".join(f"{photo},genuine\n" for _ in range(2)))
    return {"root": root, "refs": refs, "checker": checker, "photo": photo, "missing": root / "missing",
            **{name.replace(".", "_"): root / name
               for name in ("empty", "existing", "garbage.jpg", "garbage.csv", "empty.txt", "done.jsonl", "few.csv")}}


# (argv, exit code): bad arguments to every command; {name} is a path of the `paths` fixture, {new} a fresh one.
WALK = [
    ([], 2),
    (["index"], 2),
    (["nonsense"], 2),
    (["--threads", "0", "index", "info", "{checker}"], 2),
    (["index", "build", "{missing}", "--out", "{new}"], 2),
    (["index", "build", "{empty}", "--out", "{new}"], 2),
    (["index", "build", "{garbage_csv}", "--out", "{new}"], 2),
    (["index", "build", "{garbage_jpg}", "--out", "{new}"], 2),
    (["index", "build", "{refs}", "--out", "{checker}"], 2),
    (["index", "build", "{refs}", "--out", "{garbage_jpg}"], 2),
    (["index", "build", "{refs}", "--out", "{new}", "--k", "0"], 2),
    (["index", "build", "{refs}", "--out", "{new}", "--model", "{missing}"], 2),
    (["index", "build", "{refs}", "--out", "{new}", "--model", "{garbage_jpg}"], 2),
    (["index", "build", "{refs}"], 2),
    (["index", "build", "{checker}", "--out", "{new}"], 2),  # a checker where references belong
    (["index", "add", "{refs}", "{photo}", "--label", "genuine", "--product", "mug"], 2),  # references where a checker belongs
    (["calibrate", "{checker}", "{photo}"], 2),  # a photo where a CSV belongs
    (["scan", "{photo}", "--checker", "{refs}", "--out", "{new}"], 2),
    (["evaluate", "{checker}", "--checker", "{checker}", "--out", "{new}"], 2),
    (["index", "add", "{missing}", "{photo}", "--label", "genuine", "--product", "mug"], 2),
    (["index", "add", "{checker}", "{missing}", "--label", "genuine", "--product", "mug"], 2),
    (["index", "add", "{checker}", "{empty}", "--label", "genuine", "--product", "mug"], 2),
    (["index", "add", "{checker}", "{photo}", "--label", "counterfeit", "--product", "mug"], 2),
    (["index", "add", "{checker}", "{garbage_jpg}", "--label", "genuine", "--product", "mug"], 1),
    (["index", "remove", "{checker}", "999"], 2),
    (["index", "remove", "{checker}", "abc"], 2),
    (["index", "remove", "{missing}", "1"], 2),
    (["index", "info", "{missing}"], 2),
    (["index", "info", "{garbage_jpg}"], 2),
    (["index", "info", "{empty}"], 2),
    (["index", "info", "{refs}"], 2),
    (["check", "{photo}"], 2),
    (["check", "{missing}", "--checker", "{checker}"], 2),
    (["check", "{empty}", "--checker", "{checker}"], 2),
    (["check", "{photo}", "--checker", "{missing}"], 2),
    (["check", "{photo}", "--checker", "{garbage_jpg}"], 2),
    (["check", "{photo}", "--checker", "{empty}"], 2),
    (["check", "{photo}", "--checker", "{checker}", "--brand", "nope"], 2),
    (["check", "{photo}", "--checker", "{checker}", "--format", "xml"], 2),
    (["check", "{garbage_jpg}", "--checker", "{checker}"], 1),
    (["check", "{photo}", "{garbage_jpg}", "--checker", "{checker}", "--format", "text"], 1),
    (["calibrate", "{checker}", "{missing}"], 2),
    (["calibrate", "{checker}", "{garbage_csv}"], 2),
    (["calibrate", "{checker}", "{empty}"], 2),
    (["calibrate", "{checker}", "{few_csv}"], 2),
    (["calibrate", "{checker}", "{few_csv}", "--split", "calibration"], 2),
    (["calibrate", "{missing}", "{few_csv}"], 2),
    (["scan", "{missing}", "--checker", "{checker}", "--out", "{new}"], 2),
    (["scan", "{empty}", "--checker", "{checker}", "--out", "{new}"], 2),
    (["scan", "{empty_txt}", "--checker", "{checker}", "--out", "{new}"], 2),
    (["scan", "{garbage_csv}", "--checker", "{checker}", "--out", "{new}"], 2),
    (["scan", "{photo}", "--checker", "{checker}", "--out", "{done_jsonl}"], 2),
    (["scan", "{photo}", "--checker", "{checker}", "--out", "{empty}"], 2),
    (["scan", "{photo}", "--checker", "{missing}", "--out", "{new}"], 2),
    (["scan", "{photo}", "--checker", "{checker}", "--out", "{new}", "--batch-size", "0"], 2),
    (["scan", "{photo}", "--checker", "{checker}", "--out", "{new}", "--brand", "nope"], 2),
    (["scan", "{garbage_jpg}", "--checker", "{checker}", "--out", "{new}"], 0),
    (["demo", "--out", "{existing}"], 2),
    (["demo", "--out", "{garbage_jpg}"], 2),
    (["demo", "--listings", "0", "--out", "{new}"], 2),
    (["evaluate", "{missing}", "--checker", "{checker}", "--out", "{new}"], 2),
    (["evaluate", "{few_csv}", "--checker", "{checker}", "--out", "{existing}"], 2),
    (["evaluate", "{few_csv}", "--checker", "{missing}", "--out", "{new}"], 2),
    (["evaluate", "{few_csv}", "--checker", "{checker}", "--out", "{new}", "--split", "test"], 2),
    (["brandkit", "{existing}"], 2),
    (["brandkit", "{new}", "--listings", "-1"], 2),
    (["train"], 2),
    (["train", "{refs}", "--out", "{existing}"], 2),
    (["train", "{refs}", "--out", "{new}", "--config", "{missing}"], 2),
    (["export", "{missing}"], 2),
]


@pytest.mark.parametrize(("argv", "expected"), WALK, ids=[" ".join(a) or "(none)" for a, _ in WALK])
def test_every_command_with_bad_arguments_exits_with_its_code_and_no_traceback(paths, tmp_path, capsys, argv, expected):
    filled = [a.format(new=tmp_path / "new", **{k: str(v) for k, v in paths.items()}) for a in argv]
    code, out, err = run(capsys, *filled)
    assert code == expected, err
    assert "Traceback" not in err and "Traceback" not in out
    assert "=True" not in err and "resume=" not in err  # CLI messages name flags, not Python arguments
    if expected:
        assert err.strip(), "a failing command says why"
    if expected == 2 and argv[:1] not in (["train"], []) and "usage:" not in err:
        assert "authvision: error:" in err


def test_help_lists_the_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit status" in out and all(f"\n  {code} " in out for code in (0, 1, 2))
    assert main(["--version"]) == 0


def test_exit_codes_zero_with_error_rows_one_for_unreadable_checks(paths, tmp_path, capsys):
    out = tmp_path / "scan.jsonl"
    code, stdout, err = run(capsys, "scan", str(paths["photo"]), str(paths["garbage_jpg"]), "--checker", str(paths["checker"]),
                            "--out", str(out))
    assert code == 0 and json.loads(stdout)["errors"] == 1
    assert "1 of 2 rows are errors" in err
    assert err.count("is not calibrated") == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] == "error" for r in rows] == [False, True]

    code, stdout, err = run(capsys, "check", str(paths["photo"]), "--checker", str(paths["checker"]))
    assert code == 0 and json.loads(stdout)["label"] != "error"
    code, stdout, err = run(capsys, "check", str(paths["photo"]), str(paths["garbage_jpg"]), "--checker", str(paths["checker"]))
    assert code == 1 and "1 of 2 photos could not be checked" in err
    error_row = json.loads(stdout.splitlines()[1])
    assert error_row["label"] == "error" and error_row["calibrated"] is None  # an error makes no calibration claim


def test_a_missing_path_is_a_usage_error_before_any_output(paths, capsys):
    code, out, err = run(capsys, "check", str(paths["photo"]), str(paths["missing"]), "--checker", str(paths["checker"]))
    assert code == 2 and out == "" and f"{paths['missing']} does not exist" in err
    code, _, err = run(capsys, "index", "info", str(paths["missing"]))
    assert code == 2 and f"no checker at {paths['missing']}" in err and "index build" in err


# -- overwrite protection ------------------------------------------------------------------------------


def test_index_build_refuses_an_existing_checker_without_force(paths, tmp_path, capsys):
    checker = tmp_path / "checker"
    assert run(capsys, "index", "build", str(paths["refs"]), "--out", str(checker), "--no-inspection")[0] == 0
    before = {p.name: p.stat().st_mtime_ns for p in checker.iterdir()}
    code, out, err = run(capsys, "index", "build", str(paths["refs"]), "--out", str(checker), "--no-inspection")
    assert code == 2 and out == ""
    assert "--force" in err and f"authvision index add {checker}" in err
    assert {p.name: p.stat().st_mtime_ns for p in checker.iterdir()} == before  # untouched
    code, out, _ = run(capsys, "index", "build", str(paths["refs"]), "--out", str(checker), "--no-inspection", "--force")
    assert code == 0 and json.loads(out)["references"] == 6
    code, _, err = run(capsys, "index", "build", str(paths["refs"]), "--out", str(paths["existing"]), "--force")
    assert code == 2 and "is not a checker" in err and (paths["existing"] / "keep.txt").is_file()  # never other files
    empty = tmp_path / "made-for-it"
    empty.mkdir()
    assert run(capsys, "index", "build", str(paths["refs"]), "--out", str(empty), "--no-inspection")[0] == 0  # an empty folder is fine


@pytest.mark.parametrize("argv", [
    ["demo", "--out", "{target}"],
    ["evaluate", "{few_csv}", "--checker", "{checker}", "--out", "{target}"],
    ["brandkit", "{target}"],
    ["train", "{refs}", "--out", "{target}"],
], ids=["demo", "evaluate", "brandkit", "train"])
def test_commands_writing_a_folder_refuse_a_non_empty_one(paths, tmp_path, capsys, argv):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine\n")
    code, out, err = run(capsys, *[a.format(target=target, **{k: str(v) for k, v in paths.items()}) for a in argv])
    assert code == 2 and "--force" in err and "Traceback" not in err
    if argv[0] == "train":
        assert "--resume" in err
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


# -- optional extras --------------------------------------------------------------------------------


def _without(monkeypatch, *modules: str) -> None:
    real = cli_support.find_spec
    monkeypatch.setattr(cli_support, "find_spec", lambda name, *a: None if name in modules else real(name, *a))


@pytest.mark.parametrize(("argv", "missing", "extra"), [
    (["demo", "--out", "{new}"], "sklearn", "report"),
    (["demo", "--out", "{new}"], "skimage", "report"),
    (["evaluate", "{few_csv}", "--checker", "{checker}", "--out", "{new}"], "matplotlib", "report"),
    (["train", "{refs}", "--out", "{new}"], "torch", "train"),
    (["export", "{refs}"], "torch", "train"),
], ids=["demo-sklearn", "demo-skimage", "evaluate-matplotlib", "train-torch", "export-torch"])
def test_a_missing_extra_is_named_with_its_install_command_before_work_starts(paths, tmp_path, capsys, monkeypatch, argv, missing, extra):
    _without(monkeypatch, missing)
    new = tmp_path / "new"
    code, out, err = run(capsys, *[a.format(new=new, **{k: str(v) for k, v in paths.items()}) for a in argv])
    assert code == 2 and out == ""
    assert f'pip install ".[{extra}]"' in err and f"[{extra}] extra" in err
    assert not new.exists()  # nothing was started


# -- interrupts and logging ---------------------------------------------------------------------------


def test_ctrl_c_during_a_scan_says_how_to_finish_it(paths, tmp_path, capsys, monkeypatch):
    import authvision.scanner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(authvision.scanner, "scan_to_jsonl", interrupted)
    out = tmp_path / "r.jsonl"
    code, _, err = run(capsys, "scan", str(paths["photo"]), "--checker", str(paths["checker"]), "--out", str(out))
    assert code == 130 and "--resume" in err and str(out) in err


def test_a_full_disk_is_a_system_failure_not_a_usage_error(paths, tmp_path, capsys, monkeypatch):
    import errno

    import authvision.scanner
    from authvision.errors import StorageFullError

    def full(*args, **kwargs):
        raise StorageFullError(errno.ENOSPC, "no space left writing r.jsonl: 3 rows kept; free space, then run again with --resume")

    monkeypatch.setattr(authvision.scanner, "scan_to_jsonl", full)
    code, _, err = run(capsys, "scan", str(paths["photo"]), "--checker", str(paths["checker"]), "--out", str(tmp_path / "r.jsonl"))
    assert code == 1 and "authvision: error: no space left writing r.jsonl: 3 rows kept" in err and "Errno" not in err


def test_a_warning_is_printed_once_however_often_main_runs(paths, tmp_path, capsys):
    refs = tmp_path / "refs" / "bolt" / "mug" / "genuine"
    refs.mkdir(parents=True)
    Image.fromarray(sample_photo("coffee")).save(refs / "a.jpg")
    (refs / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    handlers = list(logging.getLogger().handlers)
    for n in range(2):
        code, _, err = run(capsys, "index", "build", str(tmp_path / "refs"), "--out", str(tmp_path / f"c{n}"), "--no-inspection")
        assert code == 0
        assert err.count("broken.jpg") == 1, err
        assert "1 of 2 photos could not be read" in err
    assert logging.getLogger().handlers == handlers  # main leaves logging as it found it


# -- train: inputs checked before --out is made -------------------------------------------------------


@pytest.mark.parametrize("data", ["{missing}", "{empty}", "{garbage_csv}"], ids=["missing", "empty", "garbage-csv"])
def test_train_with_bad_data_exits_2_and_creates_no_out(paths, tmp_path, capsys, data):
    pytest.importorskip("torch")
    out = tmp_path / "model"
    code, stdout, err = run(capsys, "train", data.format(**{k: str(v) for k, v in paths.items()}), "--out", str(out))
    assert code == 2 and stdout == "" and "Traceback" not in err
    assert "authvision: error:" in err
    assert not out.exists()  # a failed run leaves nothing behind


def test_train_with_bad_data_leaves_an_existing_empty_out_as_it_was(paths, tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "model"
    out.mkdir()
    code, _, err = run(capsys, "train", str(paths["missing"]), "--out", str(out))
    assert code == 2 and "Traceback" not in err
    assert out.is_dir() and list(out.iterdir()) == []


# -- library errors a command-line user reads ----------------------------------------------------------

PYTHON_TALK = ("=True", "=False", "resume=", "overwrite", "pip install 'authvision[")


def _speaks_to_both(message: str) -> None:
    """A library message names the thing and the fix, not a Python argument nor a flag of one front end."""
    assert not any(word in message for word in PYTHON_TALK), message
    assert "--" not in message, message


def test_library_refusals_of_an_existing_output_name_the_output_not_an_argument(tmp_path):
    from authvision.brandkit import generate_kit
    from authvision.errors import OutputExistsError
    from authvision.journal import ResultJournal

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"seq": 0}\n')
    with pytest.raises(OutputExistsError) as scan:
        ResultJournal(rows)
    assert isinstance(scan.value, FileExistsError) and scan.value.path == rows
    assert "already holds the rows of a scan" in str(scan.value) and "resume that scan" in str(scan.value)
    _speaks_to_both(str(scan.value))

    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "kit.json").write_text("{}\n")
    with pytest.raises(OutputExistsError) as existing:
        generate_kit(kit)
    assert "already holds a brand kit (kit.json)" in str(existing.value) and "choose another folder" in str(existing.value)
    _speaks_to_both(str(existing.value))


def test_the_cli_adds_its_flags_to_a_library_refusal_of_an_existing_output(paths, tmp_path, capsys, monkeypatch):
    import authvision.brandkit
    import authvision.scanner
    from authvision.errors import OutputExistsError

    def taken(out, *args, **kwargs):
        raise OutputExistsError(f"{out} already holds the rows of a scan: resume that scan or choose another output", path=out)

    monkeypatch.setattr(authvision.scanner, "scan_to_jsonl", lambda scanner, inputs, out, **kw: taken(out))
    code, _, err = run(capsys, "scan", str(paths["photo"]), "--checker", str(paths["checker"]), "--out", str(tmp_path / "r.jsonl"))
    assert code == 2 and "already holds the rows of a scan" in err and "--resume" in err and "another --out" in err
    monkeypatch.setattr(authvision.brandkit, "generate_kit", lambda out, **kw: taken(out))
    code, _, err = run(capsys, "brandkit", str(tmp_path / "kit"))
    assert code == 2 and "--force" in err and "Traceback" not in err


def test_a_missing_extra_found_by_the_library_is_named_with_the_clis_install_command(paths, tmp_path, capsys, monkeypatch):
    import sys

    from authvision.errors import MissingExtraError
    from authvision.evaluation import _curves

    monkeypatch.setattr(cli_support, "find_spec", lambda name, *a: object())  # the checks before work pass...
    monkeypatch.setitem(sys.modules, "sklearn", None)  # ...but the import fails (a broken install)
    with pytest.raises(MissingExtraError) as missing:
        _curves()
    assert isinstance(missing.value, ImportError) and missing.value.extra == "report"
    assert "scikit-learn" in str(missing.value) and "[report] extra" in str(missing.value)
    _speaks_to_both(str(missing.value))

    # the report's plots on an install without a working matplotlib
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    code, out, err = run(capsys, "evaluate", str(paths["few_csv"]), "--checker", str(paths["checker"]), "--out", str(tmp_path / "r"))
    assert code == 2 and out == "" and "Traceback" not in err
    assert "plots need matplotlib" in err and "[report] extra" in err and 'pip install ".[report]"' in err
    assert "authvision[report]" not in err and err.count("in the source tree") == 1, err
