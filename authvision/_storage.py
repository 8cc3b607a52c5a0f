"""Saved directories: written atomically, read back only after every file's checksum is verified.

A saved directory holds data files plus ``manifest.json``, which records the sha256 and size of every
data file. :func:`write_directory` writes everything into a hidden sibling ``.NAME.tmp-XXXX``,
fsyncs the files and the folder, then swaps it in:

* no previous directory: one ``os.replace`` (atomic);
* a previous directory: ``NAME`` is renamed to ``.NAME.old-XXXX``, the new one renamed to ``NAME``,
  the old one deleted. Between the two renames ``NAME`` does not exist; a crash in that window leaves
  the complete previous directory at ``.NAME.old-XXXX``, and :func:`resolve_directory` (used by every
  loader) falls back to it. So a crash at any point leaves the old or the new directory loadable.

:func:`read_verified` reads a saved file's bytes once, checks size and sha256 against the save's
manifest (:data:`SAVE_MANIFEST`), and returns those same bytes, so nothing unverified ever reaches a
parser. Reading never writes. (A model directory's files are checked by
:func:`authvision.manifest.read_model_file` against the model manifest instead.)

Signing (:mod:`authvision.signing`): with keys, :func:`write_directory` also writes ``manifest.sig``
(an HMAC of the exact ``manifest.json`` bytes) and :func:`read_manifest` checks it on the raw bytes
before parsing them; since the manifest holds every file's sha256, :func:`read_verified` then hands
parsers only signed bytes.

Loading while another thread or process saves the same directory: a loader resolves the path once
and reads each file through it, so a swap in the middle hands it files of two saves (or none, between
the renames), which fail their checks. :func:`load_consistent` runs a load again, a bounded number of
times with a short backoff, when the directory was replaced while it read (each save's manifest holds
a fresh ``save_id``, so a different ``manifest.json`` means a different save); a load that fails on a
directory nobody replaced raises its own precise error at once. Every load that succeeds has read the
files of one save only: each was checked against the one manifest it started from.

A write that runs out of space (``ENOSPC`` / ``EDQUOT``) raises :class:`~authvision.errors.StorageFullError`
after removing its partial temporary directory; the previous save is untouched.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .errors import AuthvisionError, IndexFormatError, StorageFullError
from .signing import SIGNATURE_FILE, signature_line, verify_signature

_FULL = (errno.ENOSPC, errno.EDQUOT)

__all__ = [
    "SAVE_MANIFEST",
    "load_consistent",
    "read_manifest",
    "read_verified",
    "resolve_directory",
    "sha256_hex",
    "write_directory",
]

LOG = logging.getLogger(__name__)

SAVE_MANIFEST = "manifest.json"
"""The manifest of a saved directory (a checker or an index): its format and every file's sha256 and size.
Not the model manifest (:data:`authvision.manifest.MODEL_MANIFEST`), which happens to share the file name."""
_MAX_MANIFEST_BYTES = 1 << 20
_LOAD_ATTEMPTS = 10
_LOAD_BACKOFF_S = 0.002  # doubled after each attempt, at most _LOAD_BACKOFF_MAX_S
_LOAD_BACKOFF_MAX_S = 0.1

T = TypeVar("T")


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes | memoryview) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _siblings(directory: Path, kind: str) -> list[Path]:
    return sorted(directory.parent.glob(f".{directory.name}.{kind}-*"))


def write_directory(
    directory: str | os.PathLike[str],
    files: Mapping[str, bytes | memoryview],
    manifest: dict[str, Any],
    *,
    signing_keys: Sequence[bytes] = (),
) -> None:
    """Atomically replace ``directory`` with ``files`` plus ``manifest.json`` (and ``manifest.sig``).

    ``manifest`` gets a ``files`` entry (name → sha256 and size) and is written last. Names may hold
    a folder (``"index/vectors.faiss"``); they must not leave ``directory``. An existing
    ``directory`` must be a previous save (it has a ``manifest.json``): anything else is refused rather
    than deleted. With ``signing_keys`` the first one signs the manifest (``manifest.sig``).
    """
    directory = Path(directory)
    if directory.name in ("", ".", ".."):
        raise ValueError(f"cannot save to {str(directory)!r}: name the directory to create")
    if directory.exists():
        if not directory.is_dir():
            raise FileExistsError(f"{directory} exists and is not a directory")
        if any(directory.iterdir()) and not (directory / SAVE_MANIFEST).is_file():
            raise FileExistsError(
                f"{directory} exists and is not a saved authvision directory (no {SAVE_MANIFEST}); "
                "refusing to replace it: choose a new or empty directory"
            )
    for name in files:
        if name in (SAVE_MANIFEST, SIGNATURE_FILE) or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"bad file name in a saved directory: {name!r}")
    directory.parent.mkdir(parents=True, exist_ok=True)
    manifest = dict(manifest)
    manifest["save_id"] = secrets.token_hex(8)  # tells a loader that a save replaced the directory it reads
    manifest["files"] = {name: {"sha256": sha256_hex(data), "bytes": len(data)} for name, data in sorted(files.items())}

    tmp = directory.parent / f".{directory.name}.tmp-{secrets.token_hex(4)}"
    try:
        tmp.mkdir()
        for name, data in files.items():
            target = tmp / name
            if target.parent != tmp:  # bundles (a checker holds an index) nest one level of folders
                target.parent.mkdir(parents=True, exist_ok=True)
            _write_file(target, data)
        for folder in {(tmp / name).parent for name in files} - {tmp}:
            _fsync_directory(folder)
        manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        if signing_keys:
            _write_file(tmp / SIGNATURE_FILE, signature_line(signing_keys[0], manifest_bytes))
        _write_file(tmp / SAVE_MANIFEST, manifest_bytes)
        _fsync_directory(tmp)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in _FULL and not isinstance(exc, StorageFullError):
            kept = f"the previous save at {directory} is untouched" if directory.exists() else "nothing was saved"
            raise StorageFullError(
                exc.errno, f"no space left on the device while saving {directory} ({exc.strerror}): {kept}; free space and save again"
            ) from exc
        raise

    if not directory.exists():
        try:
            os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_directory(directory.parent)
    else:
        old = directory.parent / f".{directory.name}.old-{secrets.token_hex(4)}"
        os.replace(directory, old)
        try:
            os.replace(tmp, directory)
        except BaseException:
            os.replace(old, directory)  # put the previous save back before reporting the failure
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_directory(directory.parent)
    # Whatever earlier crashed saves left behind is superseded now.
    for stale in _siblings(directory, "old") + _siblings(directory, "tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def resolve_directory(directory: str | os.PathLike[str], *, warn: bool = True) -> Path:
    """The directory to load: ``directory`` itself, or the previous save a crashed swap left aside."""
    directory = Path(directory)
    if directory.is_dir():
        return directory
    if directory.exists():
        raise IndexFormatError(f"{directory} is not a directory")
    candidates = [path for path in _siblings(directory, "old") if (path / SAVE_MANIFEST).is_file()]
    if not candidates:
        raise FileNotFoundError(f"no saved directory at {directory}")
    chosen = max(candidates, key=lambda path: (path / SAVE_MANIFEST).stat().st_mtime)
    if warn:
        LOG.warning("%s is missing (a save was interrupted); loading the previous save from %s", directory, chosen)
    return chosen


def _generation(directory: Path) -> tuple[Path, str] | None:
    """Which save ``directory`` holds now: the path a loader would read and its manifest's sha256."""
    try:
        path = resolve_directory(directory, warn=False)
        with open(path / SAVE_MANIFEST, "rb") as handle:
            return path, sha256_hex(handle.read(_MAX_MANIFEST_BYTES + 1))
    except (OSError, AuthvisionError):
        return None


def load_consistent(directory: str | os.PathLike[str], load: Callable[[Path], T], *, what: str = "directory") -> T:
    """``load(path)`` of the save in ``directory``, run again when a concurrent save replaced it meanwhile.

    ``path`` is ``directory`` or the previous save a crashed swap left aside (:func:`resolve_directory`).
    A failure (an :class:`~authvision.errors.AuthvisionError` or an ``OSError``) on a directory that
    did not change is raised as it is; after :data:`_LOAD_ATTEMPTS` loads that each saw the directory
    replaced, :class:`~authvision.errors.IndexFormatError` says so.
    """
    directory = Path(directory)
    delay = _LOAD_BACKOFF_S
    for attempt in range(1, _LOAD_ATTEMPTS + 1):
        before = _generation(directory)
        try:
            return load(resolve_directory(directory))
        except (AuthvisionError, OSError) as exc:
            if isinstance(exc, StorageFullError) or _generation(directory) == before:
                raise  # nobody replaced the directory: the failure is its own
            if attempt == _LOAD_ATTEMPTS:
                raise IndexFormatError(
                    f"the {what} at {directory} was replaced by another save during each of {_LOAD_ATTEMPTS} "
                    "attempts to load it: load it again when saving pauses"
                ) from exc
            LOG.debug("%s changed while it was loaded (%s); loading it again (attempt %d)", directory, exc, attempt + 1)
        time.sleep(delay)
        delay = min(2 * delay, _LOAD_BACKOFF_MAX_S)
    raise AssertionError("unreachable")  # pragma: no cover


def read_manifest(
    directory: Path,
    *,
    format_name: str,
    supported_versions: tuple[int, ...],
    signing_keys: Sequence[bytes] = (),
    what: str = "directory",
) -> dict[str, Any]:
    """Parse and check ``manifest.json``: our format, a version we can read, a files table.

    With ``signing_keys`` the raw bytes are first checked against ``manifest.sig``
    (:func:`authvision.signing.verify_signature`, raising :class:`~authvision.errors.SignatureError`);
    nothing parses them before that.
    """
    path = directory / SAVE_MANIFEST
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError as exc:
        raise IndexFormatError(f"{path} is missing: {directory} is not a complete saved index") from exc
    if len(raw) > _MAX_MANIFEST_BYTES:
        raise IndexFormatError(f"{path} is larger than {_MAX_MANIFEST_BYTES} bytes: not a manifest")
    if signing_keys:
        verify_signature(directory, raw, signing_keys, what=what)
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFormatError(f"{path} is not valid JSON (truncated or corrupt): {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != format_name:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise IndexFormatError(f"{path} does not describe a {format_name} (format: {found!r})")
    version = manifest.get("format_version")
    if version not in supported_versions:
        newest = max(supported_versions)
        hint = "upgrade authvision to read it" if isinstance(version, int) and version > newest else "it is corrupt"
        raise IndexFormatError(
            f"{path}: format_version {version!r} is not one this authvision reads ({', '.join(map(str, supported_versions))}); {hint}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and isinstance(entry.get("bytes"), int)
        for entry in files.values()
    ):
        raise IndexFormatError(f"{path}: the 'files' table is missing or malformed")
    return manifest


def read_verified(directory: Path, manifest: Mapping[str, Any], name: str) -> bytes:
    """Bytes of ``directory/name`` after checking them against the manifest's size and sha256."""
    entry = manifest["files"].get(name)
    if entry is None:
        raise IndexFormatError(f"{directory / SAVE_MANIFEST} lists no {name}: the save is incomplete")
    path = directory / name
    try:
        with open(path, "rb") as handle:
            data = handle.read(entry["bytes"] + 1)
    except FileNotFoundError as exc:
        raise IndexFormatError(f"{path} is missing") from exc
    if len(data) != entry["bytes"]:
        size = f"{len(data)}{'+' if len(data) > entry['bytes'] else ''}"
        raise IndexFormatError(f"{path} has {size} bytes, the manifest says {entry['bytes']}: truncated or replaced")
    if sha256_hex(data) != entry["sha256"]:
        raise IndexFormatError(f"{path} fails its sha256 check: the file is corrupt or was modified after saving")
    return data
