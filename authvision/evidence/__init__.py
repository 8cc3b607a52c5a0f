"""Evidence providers: one seam for everything a verdict rests on (see :mod:`authvision.evidence.base`).

The default providers: :class:`NeighbourEvidence` (nearest genuine and fake references of the matched
product), :class:`DuplicateEvidence` (re-used photos) and :class:`ModelHeadEvidence` (a retrained
model's fake head). :func:`default_providers` gives them in the checker's default order.
"""

from __future__ import annotations

from .base import EvidenceProvider, Listing, ProviderEvidence, Screen, feature_names, provider_class, register_provider
from .duplicates import DuplicateEvidence
from .model_head import ModelHeadEvidence
from .neighbours import NeighbourEvidence

__all__ = [
    "DuplicateEvidence",
    "EvidenceProvider",
    "Listing",
    "ModelHeadEvidence",
    "NeighbourEvidence",
    "ProviderEvidence",
    "Screen",
    "default_providers",
    "feature_names",
    "provider_class",
    "register_provider",
]


def default_providers() -> list[EvidenceProvider]:
    """Neighbours, duplicates, the model's fake head: the evidence of every checker by default."""
    return [NeighbourEvidence(), DuplicateEvidence(), ModelHeadEvidence()]
