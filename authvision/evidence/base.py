"""The evidence seam: what a provider is given, what it returns, and the protocol it implements.

Every verdict rests on evidence from a list of :class:`EvidenceProvider` objects. The checker first
*screens* each listing (one batched FAISS search of its embedding and one perceptual-hash lookup,
then a product vote: :mod:`authvision.evidence.screen`); each provider then turns the listings and
their :class:`Screen` into named features (what calibration fits on) and optional JSON-able
artefacts (region boxes, registration quality...). The checker's feature list is the concatenation
of its providers' :attr:`~EvidenceProvider.features`, so a provider added later reaches calibration,
:meth:`Verdict.to_dict` and the scan rows with no other change.

A provider that keeps data (per-product inspection references, say) saves it with the checker
through :meth:`~EvidenceProvider.state_files` / :meth:`~EvidenceProvider.restore`, and hears of
reference changes through :meth:`~EvidenceProvider.references_added` /
:meth:`~EvidenceProvider.references_removed`. Providers are found by name on load
(:func:`register_provider`); a checker saved with a provider this process does not know is refused
with a message that names it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from PIL import Image

from ..errors import IndexFormatError
from ..verdict import Match

if TYPE_CHECKING:
    from ..checker import AuthenticityChecker
    from ..imageio import ImageSource
    from ..index import Reference

__all__ = [
    "EvidenceProvider",
    "Listing",
    "ProviderEvidence",
    "Screen",
    "feature_names",
    "make_listings",
    "provider_class",
    "register_provider",
]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listing:
    """One decoded listing photo as the providers see it.

    Attributes:
        image: the decoded RGB image, at the screen's resolution (JPEG draft scaling may have
            reduced it to the model's size; a provider that needs more pixels decodes ``source``).
        source: the input it was decoded from (a path, bytes, a PIL image or an array), or None.
        vector: its L2-normalised embedding.
        hashes: its perceptual hashes, uint8 (2, 8): the photo and its mirror.
        fake_logit: the model's own genuine-vs-fake logit, for a model with a fake head, else None.
    """

    image: Image.Image
    source: ImageSource | None
    vector: np.ndarray
    hashes: np.ndarray
    fake_logit: float | None = None


def make_listings(
    images: Sequence[Image.Image],
    sources: Sequence[ImageSource | None] | None,
    vectors: np.ndarray,
    hashes: np.ndarray,
    fake_logits: np.ndarray | None,
) -> list[Listing]:
    """Listings from decoded images and what the model and the hashing computed of them, row for row."""
    sources = [None] * len(images) if sources is None else sources
    return [
        Listing(image, source, vectors[i], hashes[i], None if fake_logits is None else float(fake_logits[i]))
        for i, (image, source) in enumerate(zip(images, sources))
    ]


@dataclass(frozen=True)
class Screen:
    """What the fast screen found for one listing: its neighbours, a re-used photo, the product."""

    neighbors: tuple[Match, ...]
    duplicate_of: Match | None
    product: str | None
    brand: str | None
    max_similarity: float

    @property
    def known_score(self) -> float:
        """What the unknown threshold cuts: the best similarity, or 1 for a near-duplicate (always known)."""
        return 1.0 if self.duplicate_of is not None else self.max_similarity


@dataclass(frozen=True)
class ProviderEvidence:
    """One provider's evidence for one listing: its features, in its ``features`` order, and artefacts.

    ``artefacts`` must be JSON-serialisable (they go into ``Verdict.to_dict()`` and scan rows).
    ``confirms_product``: the provider found the product in the photo beyond doubt (region
    inspection registered it to a genuine template on many keypoints): the listing is then never
    ``unknown``, whatever its embedding similarity.
    ``product`` / ``brand``: the product the provider found in the photo when it is not the screen's
    (region inspection registered the listing to another candidate among its neighbours); the
    verdict then names it. None: the screen's product stands.
    """

    features: tuple[float, ...]
    artefacts: Mapping[str, Any] = field(default_factory=dict)
    confirms_product: bool = False
    product: str | None = None
    brand: str | None = None


class EvidenceProvider:
    """Base class of evidence providers; subclasses set :attr:`name` and :attr:`features`, and implement :meth:`assess`.

    Subclasses are registered by name with :func:`register_provider` so that a saved checker can
    rebuild them. The hooks and state methods below are no-ops by default.
    """

    name: ClassVar[str] = ""
    features: tuple[str, ...] = ()
    default_weights: Mapping[str, float] = {}
    """Weights of the checker's uncalibrated default mapping (features not named weigh 0)."""
    feature_signs: Mapping[str, int] = {}
    """The direction each feature may push P(genuine) when calibration fits it: +1 only up, -1 only
    down (an anomaly score); features not named are free. Calibration holds a weight that would take
    the wrong sign at 0 (:func:`authvision.calibration.fit_logistic`)."""
    heavy: ClassVar[bool] = False
    """True for a provider that costs far more than the screen (the scanner then runs it on several threads)."""

    def assess(
        self, listings: Sequence[Listing], screens: Sequence[Screen], checker: AuthenticityChecker
    ) -> list[ProviderEvidence]:
        """One :class:`ProviderEvidence` per listing, in order. Must not raise for one bad listing:
        return neutral features and say why in the artefacts instead."""
        raise NotImplementedError

    # -- references ----------------------------------------------------------------------------------
    def references_added(self, references: Sequence[Reference], sources: Sequence[ImageSource], checker: AuthenticityChecker) -> None:
        """Called after references were indexed, with the inputs they were decoded from."""

    def references_removed(self, references: Sequence[Reference], checker: AuthenticityChecker) -> None:
        """Called after references were removed."""

    # -- persistence ---------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-able settings saved in ``checker.json`` and passed back to :meth:`restore`."""
        return {}

    def state_files(self) -> dict[str, bytes]:
        """Files to save with the checker (relative names; checksummed and signed with it)."""
        return {}

    @classmethod
    def restore(cls, config: Mapping[str, Any], read: Callable[[str], bytes], names: Sequence[str]) -> EvidenceProvider:
        """Rebuild a saved provider. ``read(name)`` returns a verified saved file; ``names`` lists them."""
        return cls(**dict(config))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_REGISTRY: dict[str, type[EvidenceProvider]] = {}


def register_provider(cls: type[EvidenceProvider]) -> type[EvidenceProvider]:
    """Class decorator: make a provider loadable by its :attr:`~EvidenceProvider.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    known = _REGISTRY.get(cls.name)
    if known is not None and known is not cls:
        LOG.warning("evidence provider %r re-registered: %s replaces %s", cls.name, cls.__qualname__, known.__qualname__)
    _REGISTRY[cls.name] = cls
    return cls


def provider_class(name: str) -> type[EvidenceProvider]:
    """The registered provider class called ``name``; IndexFormatError naming the fix if none is."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise IndexFormatError(
            f"the checker uses evidence provider {name!r}, which this process has not registered "
            f"(known: {sorted(_REGISTRY)}): import the module that defines it before loading, or pass "
            "providers= to AuthenticityChecker.load"
        ) from None


def feature_names(providers: Sequence[EvidenceProvider]) -> tuple[str, ...]:
    """The checker's features: each provider's, in provider order; duplicates are refused."""
    names: list[str] = []
    for provider in providers:
        for feature in provider.features:
            if feature in names:
                raise ValueError(f"feature {feature!r} of provider {provider.name!r} is already given by another provider")
            names.append(feature)
    return tuple(names)
