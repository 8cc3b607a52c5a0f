"""Evidence providers: one seam for everything a verdict rests on (see :mod:`authvision.evidence.base`).

The screen's providers: :class:`NeighbourEvidence` (how much closer the matched product's nearest
genuine reference is than its nearest seized fake), :class:`DuplicateEvidence` (re-used photos) and :class:`ModelHeadEvidence` (a
retrained model's fake head), :func:`default_providers` in the checker's default order; and the second
stage, :class:`InspectionEvidence` (region inspection against the product's genuine references,
:func:`inspection_providers` = the default ones plus it).
"""

from __future__ import annotations

from .base import EvidenceProvider, Listing, ProviderEvidence, Screen, feature_names, provider_class, register_provider
from .duplicates import DuplicateEvidence
from .inspection import InspectionEvidence
from .model_head import ModelHeadEvidence
from .neighbours import NeighbourEvidence

__all__ = [
    "DuplicateEvidence",
    "EvidenceProvider",
    "InspectionEvidence",
    "Listing",
    "ModelHeadEvidence",
    "NeighbourEvidence",
    "ProviderEvidence",
    "Screen",
    "default_providers",
    "inspection_providers",
    "feature_names",
    "format1_providers",
    "provider_class",
    "register_provider",
]


def default_providers() -> list[EvidenceProvider]:
    """Neighbours, duplicates, the model's fake head: the evidence of every checker by default."""
    return [NeighbourEvidence(), DuplicateEvidence(), ModelHeadEvidence()]


def format1_providers() -> list[EvidenceProvider]:
    """The providers of a checker saved before providers were saved with it (checker format 1)."""
    return [NeighbourEvidence(features="similarities"), DuplicateEvidence(), ModelHeadEvidence()]


def inspection_providers(**inspection: object) -> list[EvidenceProvider]:
    """The default providers and region inspection (keyword arguments go to :class:`InspectionEvidence`)."""
    return [*default_providers(), InspectionEvidence(**inspection)]  # type: ignore[arg-type]
