"""What a check returns: a :class:`Verdict` with the evidence behind it, as :class:`Match` rows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

VerdictLabel = Literal["genuine", "fake", "unknown", "error"]
VERDICT_LABELS: tuple[str, ...] = ("genuine", "fake", "unknown", "error")


@dataclass(frozen=True)
class Match:
    """One reference photo that a listing matched.

    Attributes:
        ref_id: the reference's id in the index.
        label: ``"genuine"`` or ``"fake"``: what the reference photo shows.
        similarity: cosine similarity of the two embeddings (estimates on approximate indexes). For a
            ``duplicate_of`` match it is still the embedding similarity when known, else None.
        hamming: for a ``duplicate_of`` match, bits (of 64) between the perceptual hashes; else None.
    """

    ref_id: int
    label: str
    product: str | None
    brand: str | None
    similarity: float | None
    source: str | None
    hamming: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref_id": self.ref_id,
            "label": self.label,
            "product": self.product,
            "brand": self.brand,
            "similarity": None if self.similarity is None else round(float(self.similarity), 6),
            "source": self.source,
            "hamming": self.hamming,
        }


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one listing photo.

    Attributes:
        authenticity: probability that the pictured item is genuine, in [0, 1]; None for ``unknown``
            and ``error``. Calibrated on held-out labelled photos once ``calibrated`` is True.
        label: ``"genuine"`` / ``"fake"`` (authenticity against the checker's decision threshold),
            ``"unknown"`` (no reference is close enough to say anything) or ``"error"``.
        product, brand: the best-matching reference product, or None.
        neighbors: the nearest reference photos, most similar first.
        duplicate_of: a reference photo this listing re-uses (near-identical perceptual hash), or None.
        error: what went wrong, for label ``"error"``.
        calibrated: False while the checker runs on its uncalibrated default score mapping (``to_dict``
            gives None for an ``"error"`` verdict: no score, so no calibration claim).
        evidence: the named scores the authenticity was computed from (the checker's
            ``feature_names``, from its evidence providers), and ``max_similarity``.
        provider_evidence: per evidence provider (by name), its scores and its JSON-able artefacts
            (``{"features": {...}, ...}``; the inspection provider adds registration quality and regions).
    """

    authenticity: float | None
    label: VerdictLabel
    product: str | None = None
    brand: str | None = None
    neighbors: tuple[Match, ...] = ()
    duplicate_of: Match | None = None
    error: str | None = None
    calibrated: bool = False
    evidence: Mapping[str, float] = field(default_factory=dict)
    provider_evidence: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def inspection(self) -> Mapping[str, Any] | None:
        """The region inspection's evidence (registration quality, per-region scores and boxes), or None when not inspected."""
        return self.provider_evidence.get("inspection")

    @property
    def nearest_genuine(self) -> Match | None:
        return next((m for m in self.neighbors if m.label == "genuine"), None)

    @property
    def nearest_fake(self) -> Match | None:
        return next((m for m in self.neighbors if m.label == "fake"), None)

    @classmethod
    def failed(cls, message: str) -> Verdict:
        """The verdict for an input that could not be checked."""
        return cls(authenticity=None, label="error", error=message)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (floats rounded to 6 digits)."""
        return {
            "label": self.label,
            "authenticity": None if self.authenticity is None else round(float(self.authenticity), 6),
            "product": self.product,
            "brand": self.brand,
            "calibrated": None if self.label == "error" else self.calibrated,  # an error makes no calibration claim
            "duplicate_of": None if self.duplicate_of is None else self.duplicate_of.to_dict(),
            "neighbors": [m.to_dict() for m in self.neighbors],
            "evidence": {name: round(float(value), 6) for name, value in self.evidence.items()},
            "provider_evidence": {name: _jsonable(value) for name, value in self.provider_evidence.items()},
            "error": self.error,
        }


def _jsonable(value: Any) -> Any:
    """Artefacts as plain JSON values: floats rounded to 6 digits, tuples as lists, numpy scalars unwrapped."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    raise TypeError(f"evidence artefact of type {type(value).__name__} is not JSON-serialisable")
