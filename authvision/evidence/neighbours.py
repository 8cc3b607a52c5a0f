"""Evidence from the nearest reference photos of the matched product."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .base import EvidenceProvider, Listing, ProviderEvidence, Screen, register_provider
from .screen import vote_weights

if TYPE_CHECKING:
    from ..checker import AuthenticityChecker

__all__ = ["NeighbourEvidence"]


@register_provider
class NeighbourEvidence(EvidenceProvider):
    """For the matched product: how much closer the listing is to its genuine references than to its seized fakes.

    ``neighbour_margin`` = similarity of the closest genuine neighbour of the product minus that of
    the closest fake one. When a class is absent among the neighbours, the lowest neighbour
    similarity stands in (the true value can only be lower).

    Args:
        features: ``"margin"`` (the default), or ``"similarities"``: the two similarities and the
            vote-weighted share of fakes among the product's neighbours as three features, which
            checkers saved before the margin keep. Measured on the demo's listings (two brand kits,
            200 calibration draws each, ``training/research/fusion_study.py``): a photo's clutter
            moves both similarities together, their difference much less, and ``fake_share`` does
            not carry over from calibration to other listings; the margin alone beats the three.
    """

    name = "neighbours"
    _FEATURES = {
        "margin": ("neighbour_margin",),
        "similarities": ("genuine_similarity", "fake_similarity", "fake_share"),
    }
    default_weights = {"neighbour_margin": 30.0, "genuine_similarity": 30.0, "fake_similarity": -30.0, "fake_share": -3.0}
    feature_signs = {"neighbour_margin": 1, "genuine_similarity": 1, "fake_similarity": -1, "fake_share": -1}

    def __init__(self, *, features: str = "margin") -> None:
        if features not in self._FEATURES:
            raise ValueError(f"features must be one of {sorted(self._FEATURES)}, got {features!r}")
        self.mode = features
        self.features = self._FEATURES[features]

    def config(self) -> dict[str, Any]:
        return {"features": self.mode}

    @classmethod
    def restore(cls, config: Mapping[str, Any], read: Callable[[str], bytes], names: Sequence[str]) -> NeighbourEvidence:
        return cls(features=str(config.get("features", "similarities")))  # saved before the margin: the three features

    def __repr__(self) -> str:
        return f"NeighbourEvidence(features={self.mode!r})"

    def assess(self, listings: Sequence[Listing], screens: Sequence[Screen], checker: AuthenticityChecker) -> list[ProviderEvidence]:
        return [ProviderEvidence(self._features(s)) for s in screens]

    def _features(self, s: Screen) -> tuple[float, ...]:
        genuine, fake, fake_share = similarities(s)
        return (genuine - fake,) if self.mode == "margin" else (genuine, fake, fake_share)


def similarities(s: Screen) -> tuple[float, float, float]:
    """(closest genuine similarity, closest fake similarity, fake share) among the screen product's neighbours."""
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
