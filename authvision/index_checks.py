"""Checks of what callers hand :class:`~authvision.index.ReferenceIndex`, and of what a save holds.

Each check names the argument (and row) at fault and says what was expected; none touches FAISS.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DuplicateReferenceError, IndexFormatError
from .hashing import HASH_BYTES, HASH_VERSIONS

__all__ = [
    "SHA256",
    "assign_ids",
    "check_choice",
    "check_column",
    "check_factory",
    "check_ids",
    "check_manifest_fields",
    "check_max_distance",
    "check_optional_type",
    "check_positive_int",
    "check_query_hashes",
    "check_ref_hashes",
    "check_sha256",
    "check_sha256s",
    "check_vectors",
    "resolve_duplicates",
]

SHA256 = re.compile(r"[0-9a-f]{64}")
_NORM_TOLERANCE = 2e-3
_MANIFEST_FIELDS = {"dim": int, "factory": str, "requested_factory": str, "count": int, "next_id": int, "tombstones": int}


def check_factory(factory: Any) -> str:
    if not isinstance(factory, str) or not factory.strip():
        raise TypeError(f"factory must be 'auto' or a faiss index_factory string, got {factory!r}")
    return factory.strip()


def check_optional_type(name: str, value: Any, kind: type) -> None:
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__} or None, got {type(value).__name__}")


def check_hash_version(value: Any) -> int:
    if isinstance(value, bool) or value not in HASH_VERSIONS:
        raise ValueError(f"hash_version must be one of {HASH_VERSIONS}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be {', '.join(map(repr, choices[:-1]))} or {choices[-1]!r}, got {value!r}")


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_sha256(name: str, value: Any) -> str:
    if not isinstance(value, str) or not SHA256.fullmatch(value):
        raise ValueError(f"{name} must be 64 lowercase hex digits, got {value!r}")
    return value


def check_vectors(vectors: Any, dim: int, name: str) -> np.ndarray:
    """``vectors`` as contiguous float32 (n, dim) rows, each L2-normalised."""
    if not isinstance(vectors, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of shape (n, {dim}), got {type(vectors).__name__}")
    if vectors.dtype.kind != "f":
        raise TypeError(f"{name} must hold floats (float32), got dtype {vectors.dtype}")
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        hint = f"; for one vector use {name}[None, :]" if vectors.ndim == 1 and vectors.shape[0] == dim else ""
        raise ValueError(f"{name} must have shape (n, {dim}), got {vectors.shape}{hint}")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    squared = np.einsum("ij,ij->i", x, x)  # NaN and inf show up here too: one pass over the data
    if not np.isfinite(squared).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    bad = np.flatnonzero(np.abs(np.sqrt(squared) - 1.0) > _NORM_TOLERANCE)
    if bad.size:
        raise ValueError(
            f"{name} rows must be L2-normalised; row {bad[0]} has norm {math.sqrt(squared[bad[0]]):.4f} "
            f"({bad.size} such rows). Use Embedder.embed, or faiss.normalize_L2 on float32 rows"
        )
    return x


def check_column(name: str, values: Any, n: int, *, allowed: tuple[str, ...] | None = None) -> list[str | None]:
    """A per-reference text column: None, one str for every row, or a sequence of n str/None."""
    if values is None:
        column: list[Any] = [None] * n
    elif isinstance(values, str):
        column = [values] * n
    elif isinstance(values, (np.ndarray, Sequence)) and not isinstance(values, (bytes, bytearray)):
        column = list(values)
        if len(column) != n:
            raise ValueError(f"{name} has {len(column)} entries for {n} vectors")
    else:
        raise TypeError(f"{name} must be a str, a sequence of str, or None; got {type(values).__name__}")
    for i, value in enumerate(column):
        if isinstance(value, np.str_):
            column[i] = value = str(value)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name}[{i}] must be a str or None, got {type(value).__name__}")
        if allowed is not None and value not in allowed:
            raise ValueError(f"{name}[{i}] is {value!r}; expected one of {', '.join(map(repr, allowed))}")
    return column


def check_sha256s(sha256s: Any, n: int) -> list[str | None]:
    """A per-reference column of photo sha256s (64 lowercase hex digits or None)."""
    digests = check_column("sha256s", sha256s, n)
    for i, digest in enumerate(digests):
        if digest is not None and not SHA256.fullmatch(digest):
            raise ValueError(f"sha256s[{i}] must be 64 lowercase hex digits, got {digest!r}")
    return digests


def check_ref_hashes(hashes: Any, n: int) -> np.ndarray | None:
    if hashes is None:
        return None
    array = np.asarray(hashes)
    if array.dtype != np.uint8:
        raise TypeError(f"hashes must be uint8 (from authvision.hashing.perceptual_hashes), got {array.dtype}")
    if array.shape != (n, 2, HASH_BYTES):
        raise ValueError(f"hashes must have shape ({n}, 2, {HASH_BYTES}) (one perceptual_hashes() per vector), got {array.shape}")
    return np.ascontiguousarray(array)


def check_query_hashes(hashes: Any) -> np.ndarray:
    """Query photos' hashes as contiguous (n, 8) uint8 codes of the unmirrored pHash."""
    array = np.asarray(hashes)
    if array.dtype != np.uint8:
        raise TypeError(f"hashes must be uint8 (from authvision.hashing.perceptual_hashes), got {array.dtype}")
    if array.shape == (2, HASH_BYTES):
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (2, HASH_BYTES):
        raise ValueError(f"hashes must have shape (n, 2, {HASH_BYTES}) or (2, {HASH_BYTES}), got {array.shape}")
    return np.ascontiguousarray(array[:, 0])  # row 0 meets both rows of every reference


def check_max_distance(max_distance: Any) -> int:
    if isinstance(max_distance, bool) or not isinstance(max_distance, (int, np.integer)) or not 0 <= max_distance <= 64:
        raise ValueError(f"max_distance must be an int in [0, 64], got {max_distance!r}")
    return int(max_distance)


def check_ids(ids: Any) -> np.ndarray:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (Iterable, np.ndarray)):
        raise TypeError(f"ids must be an iterable of int, got {type(ids).__name__}")
    values = list(ids.tolist() if isinstance(ids, np.ndarray) else ids)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"reference ids are int, got {value!r} ({type(value).__name__})")
    return np.array(values, dtype=np.int64)


def resolve_duplicates(digests: Sequence[str | None], existing: dict[str, int], on_duplicate: str) -> tuple[list[int], list[int]]:
    """Which rows of an add are new, by photo sha256 against ``existing`` (sha256 → id) and each other.

    Returns ``(out, keep)``: ``keep`` the rows to add; ``out`` one entry per row, the existing id of a
    skipped duplicate, ``-2 - j`` for a repeat of row ``j`` of this call, -1 for a row to add.
    ``on_duplicate="raise"`` raises DuplicateReferenceError at the first duplicate instead.
    """
    out = [-1] * len(digests)
    keep: list[int] = []
    first_in_call: dict[str, int] = {}
    for i, digest in enumerate(digests):
        if digest is None:
            keep.append(i)
        elif digest in existing:
            if on_duplicate == "raise":
                raise DuplicateReferenceError(
                    f"vectors[{i}]: this photo (sha256 {digest[:12]}…) is already reference "
                    f"{existing[digest]}; nothing was added. Pass on_duplicate='skip' to get the "
                    "existing id back, or 'allow' to add it again"
                )
            out[i] = existing[digest]
        elif digest in first_in_call:
            if on_duplicate == "raise":
                raise DuplicateReferenceError(
                    f"vectors[{i}] and vectors[{first_in_call[digest]}] are the same photo "
                    f"(sha256 {digest[:12]}…); nothing was added. Pass on_duplicate='skip' or 'allow'"
                )
            out[i] = -2 - first_in_call[digest]  # resolved by the caller, once ids are assigned
        else:
            first_in_call[digest] = i
            keep.append(i)
    return out, keep


def assign_ids(out: list[int], keep: Sequence[int], new_ids: np.ndarray) -> list[int]:
    """Complete :func:`resolve_duplicates`'s ``out`` once the kept rows have their ``new_ids``."""
    for i, ref_id in zip(keep, new_ids.tolist()):
        out[i] = ref_id
    return [out[-2 - v] if v <= -2 else v for v in out]


def check_manifest_fields(manifest: dict[str, Any], where: Path) -> str | None:
    """Check a saved index's manifest fields have their types; returns its ``model_sha256``."""
    for name, kind in _MANIFEST_FIELDS.items():
        if not isinstance(manifest.get(name), kind) or isinstance(manifest.get(name), bool):
            raise IndexFormatError(f"{where}: {name!r} is missing or not a {kind.__name__}")
    model = manifest.get("model_sha256")
    if model is not None and not isinstance(model, str):
        raise IndexFormatError(f"{where}: 'model_sha256' is not a string")
    return model
