"""Saving and loading an :class:`~authvision.checker.AuthenticityChecker` as one checksummed, optionally signed directory.

A checker directory holds ``index/`` (the reference index), ``checker.json`` (settings, the evidence
providers by name with their config, the calibration), ``evidence/<provider>/`` (files a provider
keeps, such as region inspection's per-product data) and, for a model other than the shipped
default, ``model/``. ``manifest.json`` records the sha256 of every file; each is verified before a
parser reads it (:mod:`authvision._storage`), and saves are atomic directory swaps.

Signing (:mod:`authvision.signing`): with ``signing_key=`` or ``AUTHVISION_CHECKER_KEY``, a save also
writes ``manifest.sig``, an HMAC-SHA256 of the exact ``manifest.json`` bytes, and a load refuses
(:class:`~authvision.errors.SignatureError`) a directory that is unsigned, signed by another key or
changed since it was signed. Without a key a load works as before and logs once per process that
the checker is not authenticated: the sha256 values alone stop corruption, not a person who
rewrites them (issue 16: relabelling fakes as genuine in ``metadata.sqlite``).

What reads which bytes, in order, in :func:`load_checker` (every read is of a regular file, bounded):

1. ``manifest.json``: read once (≤ 1 MiB) as raw bytes; with a key, ``manifest.sig`` (≤ 256 bytes,
   one fixed-format line matched by a regular expression, no parser) is checked against those bytes
   with ``hmac.compare_digest``; only then does ``json.loads`` parse them.
2. ``model/manifest.json`` and ``model/<file>.onnx`` (embedded models only): read once each, checked
   against the checker manifest's sha256; the model manifest is parsed by ``json.loads``, the ONNX
   bytes are checked against the model manifest's sha256 and handed, as bytes, to ONNX Runtime.
   (The shipped default model is read from the installed package instead.)
3. ``index/vectors.faiss``, ``index/hashes.faiss``, ``index/metadata.sqlite``: each read once and
   checked against its sha256, then FAISS ``deserialize_index`` / ``deserialize_index_binary`` parse
   the in-memory bytes, and SQLite ``deserialize`` loads the metadata bytes into a private in-memory
   database (``:memory:``): SQLite never opens a file of the directory, so nothing there can be
   written, and ``PRAGMA integrity_check`` plus the schema checks run before any query.
4. ``checker.json``: read once, checked, parsed by ``json.loads``.
5. ``evidence/<provider>/*``: each read once and checked when the provider restores (region
   inspection: ``products.json`` by ``json.loads``, ``.npz`` files by ``numpy.load(..., allow_pickle=False)``;
   its reference JPEGs are kept as bytes and decoded by :mod:`authvision.imageio` when used).

Nothing is unpickled. Without a key the same order holds, but the sha256 values are only as
trustworthy as whoever last wrote ``manifest.json``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._storage import load_consistent, read_manifest, read_verified, write_directory
from ._version import __version__
from .calibration import Calibration, CalibrationReport
from .embedder import Embedder, default_model_dir
from .errors import ChecksumMismatchError, IncompatibleModelError, IndexFormatError
from .evidence import EvidenceProvider, format1_providers, provider_class
from .index import ReferenceIndex
from .manifest import MODEL_MANIFEST as MODEL_MANIFEST_NAME
from .manifest import ModelManifest, sha256_bytes
from .signing import KeyArg, note_unauthenticated, resolve_keys

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .checker import AuthenticityChecker

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load_checker", "save_checker"]

LOG = logging.getLogger(__name__)

FORMAT_NAME = "authvision.AuthenticityChecker"
FORMAT_VERSION = 2
"""2: evidence providers are saved by name with their config and files (``evidence/<name>/``). 1 still loads."""

_CHECKER_FILE = "checker.json"
_INDEX_DIR = "index/"
_MODEL_DIR = "model/"
_EVIDENCE_DIR = "evidence/"


def save_checker(checker: AuthenticityChecker, directory: str | os.PathLike[str], *, signing_key: KeyArg = None) -> None:
    """Save references, calibration and the model reference to one directory, atomically.

    The shipped default model is referenced by its sha256; any other model's files are copied in,
    so the directory is self-contained (copy it to every node of a cluster). ``signing_key`` (default:
    ``AUTHVISION_CHECKER_KEY`` if set; the first of a list) signs the manifest (``manifest.sig``).
    Raises :class:`~authvision.errors.StorageFullError` when the disk fills; the previous save stays.
    """
    keys = resolve_keys(signing_key)
    index_files, index_fields = checker.index.snapshot()
    files: dict[str, Any] = {_INDEX_DIR + name: data for name, data in index_files.items()}
    model = _model_reference(checker)
    if model["location"] == "embedded":
        model_dir = checker.embedder.source.parent
        files[_MODEL_DIR + MODEL_MANIFEST_NAME] = (model_dir / MODEL_MANIFEST_NAME).read_bytes()
        files[_MODEL_DIR + checker.embedder.source.name] = checker.embedder.source.read_bytes()
    for provider in checker.providers:
        for name, data in provider.state_files().items():
            files[f"{_EVIDENCE_DIR}{provider.name}/{name}"] = data
    settings = {
        "k": checker.k,
        "decision_threshold": checker.decision_threshold,
        "duplicate_max_distance": checker.duplicate_max_distance,
        "providers": [{"name": p.name, "config": p.config()} for p in checker.providers],
        "features": list(checker.feature_names),
        "calibration": checker.calibration.to_dict(),
        "calibration_report": None if checker.calibration_report is None else checker.calibration_report.to_dict(),
    }
    files[_CHECKER_FILE] = (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode()
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "model": model,
        "index": index_fields,
    }
    write_directory(directory, files, manifest, signing_keys=keys)


def _model_reference(checker: AuthenticityChecker) -> dict[str, Any]:
    embedder = checker.embedder
    default = embedder.source.parent.resolve() == default_model_dir().resolve()
    return {
        "name": embedder.manifest.name,
        "sha256": embedder.model_sha256,
        "precision": embedder.precision,
        "embedding_dim": embedder.dim,
        "location": "default" if default else "embedded",
        "file": embedder.source.name,
    }


def load_checker(
    cls: type[AuthenticityChecker],
    directory: str | os.PathLike[str],
    *,
    embedder: Embedder | None = None,
    num_threads: int | None = None,
    providers: Sequence[EvidenceProvider] | None = None,
    discard_calibration: bool = False,
    signing_key: KeyArg = None,
) -> AuthenticityChecker:
    """What :meth:`AuthenticityChecker.load` does (its arguments are documented there).

    A save replacing ``directory`` meanwhile makes it load again (:func:`authvision._storage.load_consistent`).
    """
    keys = resolve_keys(signing_key)
    return load_consistent(
        directory,
        functools.partial(
            _load_from, cls, embedder=embedder, num_threads=num_threads, providers=providers,
            discard_calibration=discard_calibration, keys=keys,
        ),
        what="checker",
    )


def _load_from(
    cls: type[AuthenticityChecker],
    path: Path,
    *,
    embedder: Embedder | None,
    num_threads: int | None,
    providers: Sequence[EvidenceProvider] | None,
    discard_calibration: bool,
    keys: list[bytes],
) -> AuthenticityChecker:
    """One attempt at loading the checker saved at ``path`` (resolved)."""
    manifest = read_manifest(
        path, format_name=FORMAT_NAME, supported_versions=(1, FORMAT_VERSION), signing_keys=keys, what="checker"
    )
    if not keys:
        note_unauthenticated("a checker", path)
    model = manifest.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("sha256"), str):
        raise IndexFormatError(f"{path / 'manifest.json'}: the model reference is missing or malformed")
    if embedder is None:
        embedder = _load_model(path, manifest, model, num_threads)
    elif embedder.model_sha256 != model["sha256"]:
        raise IncompatibleModelError(
            f"the checker at {path} was built with model {model.get('name')!r} ({model['sha256'][:12]}…), "
            f"not with {embedder.manifest.name!r} ({embedder.model_sha256[:12]}…)"
        )
    fields = manifest.get("index")
    if not isinstance(fields, dict):
        raise IndexFormatError(f"{path / 'manifest.json'}: the index section is missing")
    index = ReferenceIndex.restore(
        fields,
        lambda name: read_verified(path, manifest, _INDEX_DIR + name),
        where=path / _INDEX_DIR.rstrip("/"),
        expected_model_sha256=embedder.model_sha256,
    )
    try:
        settings = json.loads(read_verified(path, manifest, _CHECKER_FILE))
        if not isinstance(settings, dict):
            raise TypeError(f"a JSON object was expected, not {type(settings).__name__}")
        if providers is None:
            providers = _saved_providers(path, manifest, settings.get("providers"))
        checker = cls(
            embedder,
            index,
            k=int(settings["k"]),
            decision_threshold=float(settings["decision_threshold"]),
            duplicate_max_distance=int(settings["duplicate_max_distance"]),
            providers=providers,
        )
        if tuple(settings["features"]) != checker.feature_names:
            if discard_calibration:
                LOG.warning("%s: calibration on %s discarded; calibrate the checker again", path, settings["features"])
                return checker
            raise IndexFormatError(
                f"{path}: calibrated on evidence features {settings['features']}, but its evidence providers give "
                f"{list(checker.feature_names)}: recalibrate it (load with discard_calibration=True, then calibrate; "
                "CLI: authvision calibrate)"
            )
        checker._calibration = Calibration.from_dict(settings["calibration"])
        report = settings.get("calibration_report")
        if report is not None:
            report = dict(report)
            report["calibration"] = checker._calibration
            checker._report = CalibrationReport(**report)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:  # found by tests/test_fuzz.py
        raise IndexFormatError(f"{path / _CHECKER_FILE} is malformed: {exc!r}") from exc
    return checker


def _load_model(path: Path, manifest: dict[str, Any], model: dict[str, Any], num_threads: int | None) -> Embedder:
    precision = model.get("precision", "int8")
    if model.get("location") == "embedded":
        # Read once and verified against the checker's (signed) manifest; ONNX Runtime gets those bytes.
        model_dir = path / _MODEL_DIR.rstrip("/")
        model_manifest = ModelManifest.from_bytes(
            read_verified(path, manifest, _MODEL_DIR + MODEL_MANIFEST_NAME), where=model_dir / MODEL_MANIFEST_NAME
        )
        precision = "fp32" if precision == "fp32" else "int8"
        model_file = model_manifest.model_file(precision)
        if model_file.filename != model.get("file"):
            raise IndexFormatError(f"{path / 'manifest.json'}: the model reference names {model.get('file')!r}, "
                                   f"its model manifest {model_file.filename!r}")
        data = read_verified(path, manifest, _MODEL_DIR + model_file.filename)
        if sha256_bytes(data) != model_file.sha256:
            raise ChecksumMismatchError(f"{model_dir / model_file.filename} is not the file its model manifest records")
        embedder = Embedder.from_verified(model_manifest, precision, data, model_dir / model_file.filename, num_threads=num_threads)
    else:
        embedder = Embedder.load(precision=precision, num_threads=num_threads)
    if embedder.model_sha256 != model["sha256"]:
        raise IncompatibleModelError(
            f"the checker at {path} was built with model {model.get('name')!r} ({model['sha256'][:12]}…), but the "
            f"{'embedded' if model.get('location') == 'embedded' else 'installed default'} model is "
            f"{embedder.manifest.name!r} ({embedder.model_sha256[:12]}…): rebuild the checker with this model"
        )
    return embedder


def _saved_providers(path: Path, manifest: dict[str, Any], saved: Any) -> list[EvidenceProvider]:
    """The providers a checker was saved with (format 1 had the default ones), rebuilt from their files."""
    if saved is None:
        return format1_providers()
    providers = []
    for entry in saved:
        cls = provider_class(entry["name"])
        prefix = f"{_EVIDENCE_DIR}{entry['name']}/"
        names = sorted(name[len(prefix) :] for name in manifest.get("files", {}) if name.startswith(prefix))
        providers.append(cls.restore(entry.get("config", {}), functools.partial(_read_prefixed, path, manifest, prefix), names))
    return providers


def _read_prefixed(path: Path, manifest: dict[str, Any], prefix: str, name: str) -> bytes:
    return read_verified(path, manifest, prefix + name)
