"""Exceptions raised by authvision. Every one derives from :class:`AuthvisionError`."""

from __future__ import annotations


class AuthvisionError(Exception):
    """Base class of every error authvision raises on purpose."""


class ImageDecodeError(AuthvisionError, ValueError):
    """An input could not be turned into an RGB image (unsupported, corrupt, too large, ...)."""


class ModelLoadError(AuthvisionError):
    """A model file or its manifest is missing, unreadable or inconsistent."""


class ChecksumMismatchError(ModelLoadError):
    """A file's sha256 differs from the one its manifest records (corrupt or tampered)."""


class IndexFormatError(AuthvisionError):
    """A saved index or checker directory is missing files, corrupt, tampered with or of an unknown version."""


class IncompatibleModelError(AuthvisionError):
    """An index or checker was built with a different embedding model than the one given."""


class UnknownReferenceError(AuthvisionError, KeyError):
    """A reference id that the index does not hold."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DuplicateReferenceError(AuthvisionError, ValueError):
    """The same photo (same source bytes) is already in the index."""


class CalibrationError(AuthvisionError, ValueError):
    """Calibration data is unusable (too few photos, a single class, ...)."""


class DatasetError(AuthvisionError, ValueError):
    """A folder or CSV of labelled photos breaks the expected layout (the message names where)."""


class InspectionError(AuthvisionError, ValueError):
    """Region inspection cannot be built or run on the given photos (too few, unusable, unknown option)."""


class SignatureError(AuthvisionError):
    """A signing key is set and a saved directory is unsigned, wrongly signed or signed by another key.

    Attributes:
        reason: ``"unsigned"``, ``"malformed"``, ``"unknown key"`` or ``"bad signature"``.
        path: the signature file concerned.
        key_id: the key id the signature names (None when there is none).
    """

    def __init__(self, message: str, reason: str = "unsigned", path: object = None, key_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.path = path
        self.key_id = key_id

    def __reduce__(self) -> tuple[type[SignatureError], tuple[str, str, object, str | None]]:  # picklable (Ray)
        return (type(self), (str(self), self.reason, self.path, self.key_id))


class StorageFullError(AuthvisionError, OSError):
    """The file system ran out of space (or quota) while writing; the message says what was kept.

    An :class:`OSError` too (``errno`` is ``ENOSPC`` or ``EDQUOT``); built as ``StorageFullError(errno, message)``.
    """

    def __str__(self) -> str:
        return str(self.strerror) if self.strerror else super().__str__()


class OutputExistsError(AuthvisionError, FileExistsError):
    """An output (a scan's results file, a brand kit) already exists, and neither resuming nor replacing it was asked for.

    The message names the output and what to do about it in words a Python caller and a command-line user
    both follow; a command line that knows its flag adds it (:mod:`authvision.cli`). ``path`` is the output.
    """

    def __init__(self, message: str, path: object = None) -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self) -> tuple[type[OutputExistsError], tuple[str, object]]:  # picklable (Ray)
        return (type(self), (str(self), self.path))


class MissingExtraError(AuthvisionError, ImportError):
    """An optional dependency is not installed: ``extra`` names authvision's extra that brings it (``report``, ``train``, ``scale``).

    The message says what needs what; :func:`authvision.cli_support.install_hint` says how to install the extra.
    """

    def __init__(self, message: str, extra: str, module: str | None = None) -> None:
        super().__init__(message, name=module)
        self.extra = extra

    def __reduce__(self) -> tuple[type[MissingExtraError], tuple[str, str, str | None]]:  # picklable (Ray)
        return (type(self), (str(self), self.extra, self.name))
