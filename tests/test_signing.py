"""Signed checkers, indexes and model directories (issue 16): HMAC-SHA256 over the manifest, checked before any parser.

The attack of issue 16 point 1 is done here exactly: every known-fake reference is relabelled genuine in the
checker's SQLite metadata and the manifest's sha256 values are rewritten to match. Without a key the doctored
checker loads (the documented limitation: checksums stop corruption, not a person); with a key it is refused
before FAISS, SQLite or JSON see a byte of it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import shutil
import sqlite3
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

import authvision as av
from authvision import signing
from authvision.cli import main as cli_main
from authvision.embedder import default_model_dir
from authvision.errors import AuthvisionError, SignatureError
from authvision.manifest import ModelManifest
from authvision.sample_photos import sample_photo
from authvision.signing import KEY_ENV_VAR, SIGNATURE_FILE, key_id

KEY = b"0123456789abcdef-current-signing-key"
OLD_KEY = "an older key, still accepted during rotation"
OTHER_KEY = b"someone else's key"


def jpeg(image: Image.Image, quality: int = 88) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def photo(name: str) -> Image.Image:
    return Image.fromarray(sample_photo(name))


def fake_of(image: Image.Image, shift: int = 14) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    return Image.merge("HSV", (h.point(lambda x: (x + shift) % 256), s, v)).convert("RGB")


def crop(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((w // 14, h // 14, w - w // 14, h - h // 14))


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def checker(embedder: av.Embedder) -> av.AuthenticityChecker:
    checker = av.AuthenticityChecker(embedder)
    for product, name in (("mug-01", "coffee"), ("rocket-01", "rocket"), ("cat-01", "chelsea")):
        genuine = photo(name)
        checker.add_references([jpeg(genuine)], "genuine", product=product, brand="acme")
        checker.add_references([jpeg(fake_of(genuine))], "fake", product=product, brand="acme")
    return checker


@pytest.fixture()
def signed(checker: av.AuthenticityChecker, tmp_path: Path) -> Path:
    target = tmp_path / "signed"
    checker.save(target, signing_key=KEY)
    return target


class OpenedFiles:
    """Every file this process opens under a folder while recording (an audit hook: it sees C extensions too)."""

    hooked = False
    lock = threading.Lock()
    active: list[tuple[Path, list[Path]]] = []

    @classmethod
    def _hook(cls, event: str, args: tuple) -> None:
        if event != "open" or not cls.active or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path = Path(os.fsdecode(args[0])).absolute()
        for root, seen in cls.active:
            if path.is_relative_to(root):
                seen.append(path.relative_to(root))

    def __init__(self, root: Path) -> None:
        if not OpenedFiles.hooked:
            sys.addaudithook(OpenedFiles._hook)
            OpenedFiles.hooked = True
        self.root, self.seen = root.absolute(), []

    def __enter__(self) -> list[Path]:
        OpenedFiles.active.append((self.root, self.seen))
        return self.seen

    def __exit__(self, *exc: object) -> None:
        OpenedFiles.active.remove((self.root, self.seen))


def doctor_like_issue_16(directory: Path) -> int:
    """Issue 16 point 1: every fake reference becomes genuine in metadata.sqlite; the manifest's sha256 is rewritten."""
    database = directory / "index" / "metadata.sqlite"
    connection = sqlite3.connect(database)
    changed = connection.execute("UPDATE refs SET label = 'genuine' WHERE label = 'fake'").rowcount
    connection.commit()
    connection.execute("VACUUM")  # one tidy file again, as a careful attacker would leave it
    connection.close()
    data = database.read_bytes()
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    import hashlib

    manifest["files"]["index/metadata.sqlite"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return changed


# ------------------------------------------------------------------------------------------- the attack


def test_issue_16_attack_loads_without_a_key_and_is_refused_with_one(checker, signed, tmp_path):
    fake_listing = jpeg(crop(fake_of(photo("coffee"))), 80)
    assert checker.check(fake_listing).label == "fake"

    doctored = tmp_path / "doctored"
    shutil.copytree(signed, doctored)
    assert doctor_like_issue_16(doctored) == 3

    # Without a key: the documented limitation. The manifest matches the files, so the checker loads, every
    # reference is genuine now and the counterfeit listing is cleared.
    loaded = av.AuthenticityChecker.load(doctored)
    assert loaded.index.ids(label="fake") == []
    assert loaded.check(fake_listing).label != "fake"

    # With the key: refused, naming what failed, and no parser saw any file but the manifest and its signature.
    with OpenedFiles(doctored) as opened, pytest.raises(SignatureError) as refused:
        av.AuthenticityChecker.load(doctored, signing_key=KEY)
    assert refused.value.reason == "bad signature"
    assert refused.value.key_id == key_id(KEY)
    assert "bad signature" in str(refused.value) and "modified after it was signed" in str(refused.value)
    assert set(opened) == {Path("manifest.json"), Path(SIGNATURE_FILE)}, opened
    with OpenedFiles(doctored) as opened_without_key:
        av.AuthenticityChecker.load(doctored)
    assert Path("index/metadata.sqlite") in opened_without_key  # the hook does see the parsers' reads

    # The attacker deletes the signature, or signs with a key of their own: refused too.
    (doctored / SIGNATURE_FILE).unlink()
    with pytest.raises(SignatureError, match="is not signed") as unsigned:
        av.AuthenticityChecker.load(doctored, signing_key=KEY)
    assert unsigned.value.reason == "unsigned"
    (doctored / SIGNATURE_FILE).write_bytes(signing.signature_line(OTHER_KEY, (doctored / "manifest.json").read_bytes()))
    with OpenedFiles(doctored) as opened, pytest.raises(SignatureError, match=key_id(OTHER_KEY)) as foreign:
        av.AuthenticityChecker.load(doctored, signing_key=KEY)
    assert foreign.value.reason == "unknown key" and foreign.value.key_id == key_id(OTHER_KEY)
    assert set(opened) <= {Path("manifest.json"), Path(SIGNATURE_FILE)}

    # The genuine signed checker loads with the key and gives the verdict it was saved with.
    genuine = av.AuthenticityChecker.load(signed, signing_key=KEY)
    assert genuine.check(fake_listing).to_dict() == checker.check(fake_listing).to_dict()


def test_every_file_of_a_signed_checker_is_covered(signed):
    """Changing any byte of any file (data files via their sha256, the manifest via the HMAC) is refused."""
    names = [path.relative_to(signed) for path in sorted(signed.rglob("*")) if path.is_file() and path.name != SIGNATURE_FILE]
    assert Path("manifest.json") in names and Path("checker.json") in names
    for name in names:
        original = (signed / name).read_bytes()
        (signed / name).write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        try:
            with pytest.raises(AuthvisionError):
                av.AuthenticityChecker.load(signed, signing_key=KEY)
        finally:
            (signed / name).write_bytes(original)
    av.AuthenticityChecker.load(signed, signing_key=KEY)


def test_a_malformed_signature_file_is_refused_with_its_reason(signed):
    for content in (b"", b"authvision-hmac-sha256 nothex 00\n", b"x" * 1000, b"authvision-hmac-sha256 " + b"0" * 16 + b" " + b"0" * 64 + b"\n\n"):
        (signed / SIGNATURE_FILE).write_bytes(content)
        with pytest.raises(SignatureError) as refused:
            av.AuthenticityChecker.load(signed, signing_key=KEY)
        assert refused.value.reason == "malformed", content


# ---------------------------------------------------------------------------------- keys and rotation


def test_key_rotation_and_key_types(checker, tmp_path):
    old = tmp_path / "old"
    checker.save(old, signing_key=OLD_KEY)  # a str is its UTF-8 bytes
    av.AuthenticityChecker.load(old, signing_key=OLD_KEY.encode())
    av.AuthenticityChecker.load(old, signing_key=[KEY, OLD_KEY])  # rotation: the new key first, the old still accepted
    with pytest.raises(SignatureError) as refused:
        av.AuthenticityChecker.load(old, signing_key=[KEY])
    assert refused.value.reason == "unknown key" and key_id(OLD_KEY.encode()) in str(refused.value)

    new = tmp_path / "new"
    checker.save(new, signing_key=[KEY, OLD_KEY])  # the first key of a list signs
    assert key_id(KEY) in (new / SIGNATURE_FILE).read_text()
    av.AuthenticityChecker.load(new, signing_key=KEY)

    for bad in (b"", "", []):
        with pytest.raises(ValueError):
            checker.save(tmp_path / "bad", signing_key=bad)
    with pytest.raises(TypeError):
        av.AuthenticityChecker.load(new, signing_key=[42])  # type: ignore[list-item]


def test_the_environment_variable_signs_and_checks(checker, tmp_path, monkeypatch):
    unsigned = tmp_path / "unsigned"
    checker.save(unsigned)
    assert not (unsigned / SIGNATURE_FILE).exists()

    monkeypatch.setenv(KEY_ENV_VAR, f"{KEY.decode()},{OLD_KEY}")
    with pytest.raises(SignatureError, match=KEY_ENV_VAR):
        av.AuthenticityChecker.load(unsigned)
    checker.save(tmp_path / "by-env")
    assert key_id(KEY) in (tmp_path / "by-env" / SIGNATURE_FILE).read_text()
    av.AuthenticityChecker.load(tmp_path / "by-env")
    checker.index.save(tmp_path / "index")  # a bare index is signed the same way
    av.ReferenceIndex.load(tmp_path / "index")
    monkeypatch.setenv(KEY_ENV_VAR, OLD_KEY)
    with pytest.raises(SignatureError):
        av.ReferenceIndex.load(tmp_path / "index")
    av.AuthenticityChecker.load(tmp_path / "by-env", signing_key=KEY)  # an explicit key wins over the environment

    monkeypatch.delenv(KEY_ENV_VAR)
    av.AuthenticityChecker.load(tmp_path / "by-env")  # no key: a signed checker loads, unauthenticated


def test_the_cli_uses_the_environment_variable(checker, tmp_path, monkeypatch, capsys):
    checker.save(tmp_path / "unsigned")
    checker.save(tmp_path / "signed", signing_key=KEY)
    monkeypatch.setenv(KEY_ENV_VAR, KEY.decode())
    assert cli_main(["index", "info", str(tmp_path / "signed")]) == 0
    capsys.readouterr()
    assert cli_main(["index", "info", str(tmp_path / "unsigned")]) == 2
    err = capsys.readouterr().err
    assert "is not signed" in err and "authvision: error" in err


def test_loading_without_a_key_logs_once_per_process(checker, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(signing, "_noted", set())
    checker.save(tmp_path / "c")
    with caplog.at_level(logging.WARNING, logger="authvision.signing"):
        av.AuthenticityChecker.load(tmp_path / "c")
        av.AuthenticityChecker.load(tmp_path / "c")
    notes = [r for r in caplog.records if "without a signing key" in r.getMessage()]
    assert len(notes) == 1 and KEY_ENV_VAR in notes[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="authvision.signing"):
        checker.save(tmp_path / "s", signing_key=KEY)
        av.AuthenticityChecker.load(tmp_path / "s", signing_key=KEY)
    assert not [r for r in caplog.records if "without a signing key" in r.getMessage()]


def test_signature_error_pickles_with_its_fields():
    error = SignatureError("bad", reason="bad signature", path="x/manifest.sig", key_id="ab" * 8)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.reason, copy.path, copy.key_id) == ("bad", "bad signature", "x/manifest.sig", "ab" * 8)


# ------------------------------------------------------------------------------------- model directories


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    shutil.copytree(default_model_dir(), directory, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return directory


def test_a_signed_model_directory(model_dir, monkeypatch):
    ModelManifest.read(model_dir).write(model_dir, signing_key=KEY)  # what training/export.py does with a key
    assert (model_dir / SIGNATURE_FILE).is_file()
    model = av.Embedder.load(model_dir, signing_key=[OTHER_KEY, KEY])
    assert model.model_sha256 == av.Embedder.load().model_sha256
    av.Embedder.load(model_dir / "model_int8.onnx", signing_key=KEY)

    with OpenedFiles(model_dir) as opened, pytest.raises(SignatureError) as refused:
        av.Embedder.load(model_dir, signing_key=OTHER_KEY)
    assert refused.value.reason == "unknown key"
    assert set(opened) <= {Path("manifest.json"), Path(SIGNATURE_FILE)}

    # A doctored manifest (another ONNX file, its sha256 rewritten to match) is refused before ONNX Runtime runs.
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["name"] = "not what was signed"
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with OpenedFiles(model_dir) as opened, pytest.raises(SignatureError, match="bad signature"):
        av.Embedder.load(model_dir, signing_key=KEY)
    assert set(opened) <= {Path("manifest.json"), Path(SIGNATURE_FILE)}
    av.Embedder.load(model_dir)  # without a key it loads, as before

    # Writing without a key removes a stale signature; the environment variable then decides.
    ModelManifest.read(model_dir).write(model_dir)
    assert not (model_dir / SIGNATURE_FILE).exists()
    monkeypatch.setenv(KEY_ENV_VAR, KEY.decode())
    with pytest.raises(SignatureError, match="not signed"):
        av.Embedder.load(model_dir)
    av.Embedder.load()  # the shipped default is part of the installed package: trusted as its code is
    av.Embedder.load(default_model_dir())  # also when named by its path


def test_a_signed_checker_carries_its_embedded_model(model_dir, tmp_path):
    custom = av.Embedder.load(model_dir)
    fresh = av.AuthenticityChecker(custom)
    fresh.add_references([jpeg(photo("coffee"))], "genuine", product="mug")
    fresh.save(tmp_path / "checker", signing_key=KEY)
    shutil.rmtree(model_dir)
    loaded = av.AuthenticityChecker.load(tmp_path / "checker", signing_key=KEY)  # model/ is covered by the checker's signature
    assert loaded.embedder.source.is_relative_to(tmp_path / "checker")
    assert loaded.check(jpeg(crop(photo("coffee")))).product == "mug"


def test_a_metadata_database_with_a_trigger_is_refused_even_without_a_key(signed, tmp_path):
    """Beyond issue 16's relabelling: a trigger would relabel every reference added later, surviving re-saves.
    Signed bytes stop it with a key; without one the schema check (exactly authvision's tables and indexes) does."""
    import hashlib

    doctored = tmp_path / "trigger"
    shutil.copytree(signed, doctored)
    database = doctored / "index" / "metadata.sqlite"
    connection = sqlite3.connect(database)
    connection.execute("CREATE TRIGGER clear AFTER INSERT ON refs BEGIN UPDATE refs SET label = 'genuine'; END")
    connection.commit()
    connection.close()
    data = database.read_bytes()
    manifest = json.loads((doctored / "manifest.json").read_text())
    manifest["files"]["index/metadata.sqlite"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (doctored / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    with pytest.raises(SignatureError, match="bad signature"):
        av.AuthenticityChecker.load(doctored, signing_key=KEY)
    with pytest.raises(av.IndexFormatError, match="trigger"):
        av.AuthenticityChecker.load(doctored)


def test_a_model_manifest_naming_a_file_outside_its_directory_is_refused(model_dir):
    """Without a key the manifest is whatever its writer says; it still cannot point ONNX Runtime elsewhere."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["files"]["int8"]["filename"] = "../elsewhere/model_int8.onnx"
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(av.ModelLoadError, match="not a plain file name"):
        av.Embedder.load(model_dir)
