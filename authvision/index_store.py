"""How a :class:`~authvision.index.ReferenceIndex` is stored: its files, and reading them back safely.

A save is ``vectors.faiss`` (FAISS), ``hashes.faiss`` (FAISS binary), ``metadata.sqlite`` and the
manifest fields of :meth:`~authvision.index.ReferenceIndex.snapshot`, written atomically by
:mod:`authvision._storage`. :func:`read_saved` checks the fields, the model, and that the three
files agree with the manifest and each other, after their sha256 has been verified and before
anything uses them; nothing is unpickled.

FAISS parses the verified bytes in memory (``deserialize_index``) under a deserialization limit of the
file's own size (:func:`_deserialize`): a length field inside the file cannot make FAISS allocate
more than the file holds (a fuzzed ``vectors.faiss`` made it ask for terabytes: ``std::bad_alloc``).
SQLite gets the metadata bytes through ``sqlite3.Connection.deserialize`` into a private ``:memory:``
database (:mod:`authvision._metadata`): it never opens a file of the saved directory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from . import faiss_tools as ft
from ._metadata import Metadata
from ._version import __version__, is_newer
from .errors import IncompatibleModelError, IndexFormatError
from .hashing import HASH_BYTES, HASH_VERSIONS
from .index_checks import check_manifest_fields

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Saved", "index_files", "read_saved"]

LOG = logging.getLogger(__name__)

FORMAT_NAME = "authvision.ReferenceIndex"
FORMAT_VERSION = 2
"""2: the manifest records ``hash_version``, the perceptual-hash definition of the hashes (version 2
hashes are not version 1's, so authvision before it must not read them). 1 still loads: its hashes
are version 1 and stay so."""

VECTORS_FILE = "vectors.faiss"
HASHES_FILE = "hashes.faiss"
METADATA_FILE = "metadata.sqlite"


@dataclass(frozen=True)
class Saved:
    """The parts of a saved index, checked: what :meth:`ReferenceIndex.restore` sets itself up from."""

    dim: int
    requested: str
    model_sha256: str | None
    factory: str
    index: faiss.Index
    hashes: faiss.IndexBinary
    metadata: Metadata
    next_id: int
    min_train: int
    hash_version: int


def index_files(index: faiss.Index, hashes: faiss.IndexBinary, metadata: Metadata) -> dict[str, bytes | memoryview]:
    """The files of a save, serialised (the caller holds the index's read lock)."""
    return {
        VECTORS_FILE: ft.to_bytes(faiss.serialize_index(index)),
        HASHES_FILE: ft.to_bytes(faiss.serialize_index_binary(hashes)),
        METADATA_FILE: metadata.to_bytes(),
    }


def read_saved(manifest: dict[str, Any], read: Callable[[str], bytes], path: Path, expected_model_sha256: str | None) -> Saved:
    """Parse and cross-check a save's files (``read(name)`` returns each one, verified).

    Raises IndexFormatError for anything inconsistent, IncompatibleModelError when the index was
    built with another model than ``expected_model_sha256``.
    """
    where = path / "manifest.json"
    model = check_manifest_fields(manifest, where)
    hash_version = manifest.get("hash_version", 1)  # saves before the field hold version 1 hashes
    if hash_version not in HASH_VERSIONS or isinstance(hash_version, bool):
        raise IndexFormatError(f"{where}: hash_version {hash_version!r} is not one this authvision computes {HASH_VERSIONS}")
    if expected_model_sha256 is not None and model != expected_model_sha256:
        built = f"model {model}" if model else "an unrecorded model"
        raise IncompatibleModelError(
            f"the index at {path} was built with {built}, but you gave model {expected_model_sha256}: "
            "its vectors are not comparable. Rebuild the index with `authvision index build`"
        )
    saved_version = str(manifest.get("library_version", "0+unknown"))
    if is_newer(saved_version, __version__):
        LOG.warning("%s was saved by authvision %s, newer than this %s", path, saved_version, __version__)

    vector_bytes = read(VECTORS_FILE)
    hash_bytes = read(HASHES_FILE)
    metadata_bytes = read(METADATA_FILE)
    try:
        index = _deserialize(faiss.deserialize_index, vector_bytes)
    except (RuntimeError, MemoryError) as exc:
        raise IndexFormatError(f"{path / VECTORS_FILE} is not a FAISS index FAISS can read: {exc}") from exc
    try:
        hashes = _deserialize(faiss.deserialize_index_binary, hash_bytes)
    except (RuntimeError, MemoryError) as exc:
        raise IndexFormatError(f"{path / HASHES_FILE} is not a FAISS binary index: {exc}") from exc
    metadata = Metadata.from_bytes(metadata_bytes, what=str(path / METADATA_FILE))

    problems = _problems(manifest, index, hashes, metadata)
    if problems:
        raise IndexFormatError(f"{path} is inconsistent: " + "; ".join(problems))
    min_train = 0
    if manifest["requested_factory"] not in ("auto", "Flat") and manifest["factory"] == "Flat":
        try:
            min_train = ft.min_train(*ft.new_index(manifest["dim"], manifest["requested_factory"]))
        except ValueError as exc:
            raise IndexFormatError(f"{where}: requested_factory {manifest['requested_factory']!r}: {exc}") from exc
    return Saved(
        dim=manifest["dim"],
        requested=manifest["requested_factory"],
        model_sha256=model,
        factory=manifest["factory"],
        index=index,
        hashes=hashes,
        metadata=metadata,
        next_id=manifest["next_id"],
        min_train=min_train,
        hash_version=hash_version,
    )


_LIMIT_LOCK = threading.Lock()  # FAISS's deserialization limit is process-wide


def _deserialize(reader: Callable[[np.ndarray], Any], data: bytes) -> Any:
    """``reader`` (a FAISS deserialize function) on ``data``, no vector in it allowed more bytes than ``data`` has."""
    with _LIMIT_LOCK:
        previous = faiss.get_deserialization_vector_byte_limit()
        faiss.set_deserialization_vector_byte_limit(max(len(data), 1 << 12))
        try:
            return reader(np.frombuffer(data, dtype=np.uint8))
        finally:
            faiss.set_deserialization_vector_byte_limit(previous)


def _problems(manifest: dict[str, Any], index: faiss.Index, hashes: faiss.IndexBinary, metadata: Metadata) -> list[str]:
    kind = ft.kind_of(index)
    expected_type = faiss.IndexIDMap2 if kind in ("flat", "hnsw") else faiss.Index
    problems = []
    if index.d != manifest["dim"]:
        problems.append(f"{VECTORS_FILE} has dim {index.d}, the manifest {manifest['dim']}")
    if kind not in ft.KINDS or not isinstance(faiss.downcast_index(index), expected_type):
        problems.append(f"{VECTORS_FILE} holds an unsupported {kind}")
    if index.ntotal != manifest["count"] + manifest["tombstones"]:
        problems.append(
            f"{VECTORS_FILE} holds {index.ntotal} vectors, "
            f"the manifest {manifest['count']} + {manifest['tombstones']} removed"
        )
    if not isinstance(hashes, faiss.IndexBinaryIDMap2) or hashes.d != 8 * HASH_BYTES:
        problems.append(f"{HASHES_FILE} is not a 64-bit binary id map")
    if metadata.count() != manifest["count"] or len(metadata.tombstones()) != manifest["tombstones"]:
        problems.append(f"{METADATA_FILE} holds {metadata.count()} references, the manifest {manifest['count']}")
    if metadata.max_id() >= manifest["next_id"]:
        problems.append(f"{METADATA_FILE} holds id {metadata.max_id()} ≥ next_id {manifest['next_id']}")
    return problems
