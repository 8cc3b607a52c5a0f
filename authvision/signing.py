"""HMAC-SHA256 signatures of saved manifests: checkers (and the indexes they hold) and model directories.

A saved checker directory or model directory is described by its ``manifest.json``, which records the
sha256 of every other file. Signing that manifest therefore signs the whole directory: a signature
file ``manifest.sig`` beside it holds one line, ``authvision-hmac-sha256 <key id> <hex digest>``, the
HMAC-SHA256 under the signing key of ``DOMAIN + manifest bytes`` (the exact bytes on disk, so there is
no re-serialisation to disagree about).

Keys: ``signing_key=`` (bytes, or a str taken as UTF-8; a list of them on load, for rotation: any one
may have signed, the first one signs on save), or else the environment variable
:data:`KEY_ENV_VAR` (several keys separated by commas, first one signs). A key id is the first 16 hex
digits of HMAC-SHA256(key, "authvision key id"): it names a key in messages without revealing it.

Load with a key: the signature is checked on the manifest's raw bytes before they are parsed, and
every other file is then read once and checked against the (now authenticated) sha256 before a
parser sees it, so nothing unsigned reaches JSON, SQLite, FAISS, numpy or ONNX Runtime. The signature
line itself is parsed by a fixed-format split of at most :data:`_MAX_SIGNATURE_BYTES` bytes.

Load without a key (and no environment variable) works as before and logs once per process that
the directory is not authenticated: the sha256 values then only catch corruption, not tampering.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from .errors import SignatureError

__all__ = [
    "DOMAIN",
    "KEY_ENV_VAR",
    "SIGNATURE_FILE",
    "KeyArg",
    "key_id",
    "note_unauthenticated",
    "resolve_keys",
    "sign_bytes",
    "signature_line",
    "verify_signature",
]

LOG = logging.getLogger(__name__)

KEY_ENV_VAR = "AUTHVISION_CHECKER_KEY"
"""Environment variable holding the signing key (or comma-separated keys; the first signs)."""
SIGNATURE_FILE = "manifest.sig"
"""The signature file, beside ``manifest.json``; it is not itself listed in the manifest."""
DOMAIN = b"authvision manifest signature v1\n"
_SCHEME = "authvision-hmac-sha256"
_MAX_SIGNATURE_BYTES = 256
_LINE = re.compile(rb"\A" + _SCHEME.encode() + rb" ([0-9a-f]{16}) ([0-9a-f]{64})\n?\Z")

KeyArg = bytes | str | Sequence[bytes | str] | None
"""What ``signing_key=`` accepts: one key, several (rotation), or None for the environment variable."""

_RESIGN = {
    "checker": "AuthenticityChecker.load(dir).save(dir, signing_key=KEY)",
    "index": "ReferenceIndex.load(dir).save(dir, signing_key=KEY)",
    "model directory": "authvision.manifest.ModelManifest.read(dir).write(dir, signing_key=KEY)",
}

_noted: set[str] = set()
_noted_lock = threading.Lock()


def _as_bytes(key: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(key, str):
        key = key.encode("utf-8")
    elif isinstance(key, (bytearray, memoryview)):
        key = bytes(key)
    elif not isinstance(key, bytes):
        raise TypeError(f"a signing key must be bytes or str, got {type(key).__name__}")
    if not key:
        raise ValueError("a signing key must not be empty")
    return key


def resolve_keys(signing_key: KeyArg) -> list[bytes]:
    """The keys to use: ``signing_key`` if given, else those in :data:`KEY_ENV_VAR`, else none."""
    if signing_key is None:
        value = os.environ.get(KEY_ENV_VAR, "")
        return [_as_bytes(part) for part in value.split(",") if part.strip()] if value.strip() else []
    if isinstance(signing_key, (bytes, bytearray, memoryview, str)):
        return [_as_bytes(signing_key)]
    keys = [_as_bytes(key) for key in signing_key]
    if not keys:
        raise ValueError("signing_key is an empty list: give at least one key, or None to use the environment")
    return keys


def key_id(key: bytes) -> str:
    """A public name of ``key``: 16 hex digits that reveal nothing about it."""
    return hmac.new(key, b"authvision key id", hashlib.sha256).hexdigest()[:16]


def sign_bytes(key: bytes, manifest: bytes) -> str:
    return hmac.new(key, DOMAIN + manifest, hashlib.sha256).hexdigest()


def signature_line(key: bytes, manifest: bytes) -> bytes:
    """The contents of ``manifest.sig`` for ``manifest`` signed with ``key``."""
    return f"{_SCHEME} {key_id(key)} {sign_bytes(key, manifest)}\n".encode("ascii")


def verify_signature(directory: Path, manifest: bytes, keys: Sequence[bytes], *, what: str = "directory") -> str:
    """Check ``directory/manifest.sig`` against the raw ``manifest`` bytes; returns the key id that signed.

    Raises:
        SignatureError: ``reason`` is ``"unsigned"`` (no signature file), ``"malformed"`` (not a
            signature line), ``"unknown key"`` (signed by a key none of ``keys`` is) or
            ``"bad signature"`` (made by one of ``keys``' ids, but the manifest was changed since).
    """
    path = directory / SIGNATURE_FILE
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_SIGNATURE_BYTES + 1)
    except FileNotFoundError:
        raise SignatureError(
            f"{directory} is not signed (no {SIGNATURE_FILE}), but a signing key is set "
            f"(signing_key= or {KEY_ENV_VAR}): refusing to load an unauthenticated {what}; sign one you trust "
            f"({_RESIGN.get(what, 'save it again with the key')}), or load it without a key",
            reason="unsigned",
            path=path,
        ) from None
    except OSError as exc:
        raise SignatureError(f"cannot read {path}: {exc}", reason="unsigned", path=path) from exc
    match = _LINE.match(raw) if len(raw) <= _MAX_SIGNATURE_BYTES else None
    if match is None:
        raise SignatureError(
            f"{path} is not an authvision signature (expected one line '{_SCHEME} <key id> <hmac>')",
            reason="malformed",
            path=path,
        )
    signed_by, digest = match.group(1).decode(), match.group(2).decode()
    ids = [key_id(key) for key in keys]
    for key in keys:  # every key is tried: the key id in the file is only a hint for the message
        if hmac.compare_digest(sign_bytes(key, manifest), digest):
            return key_id(key)
    if signed_by in ids:
        raise SignatureError(
            f"{path}: bad signature: it names key id {signed_by} (one of the given keys), but does not match "
            f"{directory / 'manifest.json'}: the {what} was modified after it was signed",
            reason="bad signature",
            path=path,
            key_id=signed_by,
        )
    raise SignatureError(
        f"{path} is signed with key id {signed_by}, which is none of the given keys (key ids {', '.join(ids)}): "
        "load it with the key that signed it (several keys may be given, for rotation), or it was forged",
        reason="unknown key",
        path=path,
        key_id=signed_by,
    )


def note_unauthenticated(kind: str, directory: Path) -> None:
    """Log once per process and ``kind`` that a directory of that kind was loaded without a key."""
    with _noted_lock:
        if kind in _noted:
            return
        _noted.add(kind)
    LOG.warning(
        "%s at %s loaded without a signing key: its checksums catch corruption, not tampering; "
        "set %s (or pass signing_key=) to refuse directories that were not signed with your key",
        kind,
        directory,
        KEY_ENV_VAR,
    )
