"""Evidence from the nearest reference photos of the matched product."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import EvidenceProvider, Listing, ProviderEvidence, Screen, register_provider
from .screen import vote_weights

if TYPE_CHECKING:
    from ..checker import AuthenticityChecker

__all__ = ["NeighbourEvidence"]


@register_provider
class NeighbourEvidence(EvidenceProvider):
    """For the matched product: the closest genuine and the closest fake neighbour, and the share of fakes.

    When a class is absent among the neighbours, the lowest neighbour similarity stands in (the true
    value can only be lower); ``fake_share`` is the vote-weighted share of fakes among the product's
    neighbours.
    """

    name = "neighbours"
    features = ("genuine_similarity", "fake_similarity", "fake_share")
    default_weights = {"genuine_similarity": 30.0, "fake_similarity": -30.0, "fake_share": -3.0}

    def assess(self, listings: Sequence[Listing], screens: Sequence[Screen], checker: AuthenticityChecker) -> list[ProviderEvidence]:
        return [ProviderEvidence(self._features(s)) for s in screens]

    @staticmethod
    def _features(s: Screen) -> tuple[float, ...]:
        if not s.neighbors:
            return (-1.0, -1.0, 0.0)
        sims = [m.similarity or 0.0 for m in s.neighbors]
        floor = min(sims)
        same = [(m, sim, w) for m, sim, w in zip(s.neighbors, sims, vote_weights(s.neighbors)) if m.product == s.product]
        genuine = max((sim for m, sim, _ in same if m.label == "genuine"), default=floor)
        fake = max((sim for m, sim, _ in same if m.label == "fake"), default=floor)
        total = sum(w for _, _, w in same)
        fake_share = sum(w for m, _, w in same if m.label == "fake") / total if total else 0.0
        return (genuine, fake, fake_share)
