"""authvision: tell genuine from counterfeit products in e-commerce listing photos.

Embed listing photos with a CNN on ONNX Runtime, search reference photos of genuine items and known
fakes (FAISS + perceptual hashes), and turn the evidence into a calibrated verdict.

    import authvision as av
    checker = av.AuthenticityChecker(av.Embedder.load())
    checker.add_references(["ref1.jpg", "ref2.jpg"], label="genuine", product="bag-01", brand="acme")
    verdict = checker.check("listing.jpg")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .calibration import Calibration, CalibrationReport
from .checker import FEATURES, AuthenticityChecker
from .embedder import Embedder, ModelOutput
from .errors import (
    AuthvisionError,
    CalibrationError,
    ChecksumMismatchError,
    DuplicateReferenceError,
    ImageDecodeError,
    IncompatibleModelError,
    IndexFormatError,
    ModelLoadError,
    UnknownReferenceError,
)
from .imageio import DecodedImage, decode_image, load_image
from .index import Reference, ReferenceIndex, SearchParams, SearchResult
from .scanner import Scanner, ScanResult
from .verdict import Match, Verdict

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
    "UnknownReferenceError",
    "Verdict",
    "__version__",
    "decode_image",
    "load_image",
]
