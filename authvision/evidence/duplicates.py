"""Evidence from re-used photos: a near-identical perceptual hash of a genuine or a known-fake reference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import EvidenceProvider, Listing, ProviderEvidence, Screen, register_provider

if TYPE_CHECKING:
    from ..checker import AuthenticityChecker

__all__ = ["DuplicateEvidence"]


@register_provider
class DuplicateEvidence(EvidenceProvider):
    """``duplicate_genuine`` / ``duplicate_fake``: 1 for an identical hash, falling to ~0 at the Hamming radius.

    A re-used copy of a known-fake photo is strong evidence of a fake; a re-used copy of a genuine
    reference photo is reported (official-photo re-use is a marketplace signal in itself) and scored
    for what calibration says it is worth.
    """

    name = "duplicates"
    features = ("duplicate_genuine", "duplicate_fake")
    default_weights = {"duplicate_fake": -6.0}
    feature_signs = {"duplicate_genuine": 1, "duplicate_fake": -1}

    def assess(self, listings: Sequence[Listing], screens: Sequence[Screen], checker: AuthenticityChecker) -> list[ProviderEvidence]:
        radius = checker.duplicate_max_distance
        out = []
        for s in screens:
            duplicate = s.duplicate_of
            if duplicate is None:
                out.append(ProviderEvidence((0.0, 0.0)))
                continue
            strength = 1.0 - (duplicate.hamming or 0) / (radius + 1)
            out.append(ProviderEvidence((strength, 0.0) if duplicate.label == "genuine" else (0.0, strength)))
        return out
