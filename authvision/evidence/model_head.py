"""Evidence from the model itself: the logit of a retrained model's genuine-vs-fake head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import EvidenceProvider, Listing, ProviderEvidence, Screen, register_provider

if TYPE_CHECKING:
    from ..checker import AuthenticityChecker

__all__ = ["ModelHeadEvidence"]


@register_provider
class ModelHeadEvidence(EvidenceProvider):
    """``model_fake_logit``: the fake head's logit (``authvision train`` models); 0 for models without one."""

    name = "model_head"
    features = ("model_fake_logit",)
    default_weights = {"model_fake_logit": -1.0}
    feature_signs = {"model_fake_logit": -1}

    def assess(self, listings: Sequence[Listing], screens: Sequence[Screen], checker: AuthenticityChecker) -> list[ProviderEvidence]:
        return [ProviderEvidence((0.0 if listing.fake_logit is None else float(listing.fake_logit),)) for listing in listings]
