"""authvision: tell genuine from counterfeit products in e-commerce listing photos.

Embed listing photos with a CNN on ONNX Runtime, search reference photos of genuine items and known
fakes (FAISS + perceptual hashes), and turn the evidence into a calibrated verdict.

    import authvision as av
    checker = av.AuthenticityChecker(av.Embedder.load())
    checker.add_references(["ref1.jpg", "ref2.jpg"], label="genuine", product="bag-01", brand="acme")
    verdict = checker.check("listing.jpg")

The package root is lazy (PEP 562): ``av.AuthenticityChecker`` imports :mod:`authvision.checker`
(and with it FAISS and ONNX Runtime) on first use, so ``import authvision.brandkit`` or
``authvision --version`` stay light. See ARCHITECTURE.md for which module owns what.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AuthvisionError,
    CalibrationError,
    ChecksumMismatchError,
    DuplicateReferenceError,
    ImageDecodeError,
    IncompatibleModelError,
    IndexFormatError,
    ModelLoadError,
    SignatureError,
    StorageFullError,
    UnknownReferenceError,
)

if TYPE_CHECKING:
    from .calibration import Calibration, CalibrationReport
    from .checker import FEATURES, AuthenticityChecker
    from .embedder import Embedder, ModelOutput
    from .imageio import DecodedImage, decode_image, load_image
    from .index import Reference, ReferenceIndex, SearchParams, SearchResult
    from .scanner import Scanner, ScanResult
    from .verdict import Match, Verdict

# public name -> the submodule that defines it, imported on first access
_LAZY = {
    "Calibration": "calibration",
    "CalibrationReport": "calibration",
    "FEATURES": "checker",
    "AuthenticityChecker": "checker",
    "Embedder": "embedder",
    "ModelOutput": "embedder",
    "DecodedImage": "imageio",
    "decode_image": "imageio",
    "load_image": "imageio",
    "Reference": "index",
    "ReferenceIndex": "index",
    "SearchParams": "index",
    "SearchResult": "index",
    "Scanner": "scanner",
    "ScanResult": "scanner",
    "Match": "verdict",
    "Verdict": "verdict",
}

__all__ = [
    "FEATURES",
    "AuthenticityChecker",
    "AuthvisionError",
    "Calibration",
    "CalibrationError",
    "CalibrationReport",
    "ChecksumMismatchError",
    "DecodedImage",
    "DuplicateReferenceError",
    "Embedder",
    "ImageDecodeError",
    "IncompatibleModelError",
    "IndexFormatError",
    "Match",
    "ModelLoadError",
    "ModelOutput",
    "Reference",
    "ReferenceIndex",
    "SearchParams",
    "ScanResult",
    "Scanner",
    "SearchResult",
    "SignatureError",
    "StorageFullError",
    "UnknownReferenceError",
    "Verdict",
    "__version__",
    "decode_image",
    "load_image",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
