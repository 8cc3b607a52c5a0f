"""AuthenticityChecker: screen a listing photo against reference photos, gather the evidence, score it.

For each listing photo the checker

1. prepares it once (:mod:`authvision.prepare`: the model's tensor and the perceptual hashes) and
   runs the model (embedding, and the fake logit of a retrained model);
2. screens it (:mod:`authvision.evidence.screen`): the ``k`` nearest reference photos by embedding,
   near-duplicate reference photos by perceptual hash, and the product they vote for;
3. asks each of its :mod:`evidence providers <authvision.evidence>` for features — by default the
   nearest genuine/fake references of that product (``neighbours``), re-used photos
   (``duplicates``) and the model's fake head (``model_head``); more providers (region inspection)
   plug in the same way;
4. turns the features into P(genuine) with a :class:`~authvision.calibration.Calibration` (logistic,
   fitted by :meth:`AuthenticityChecker.calibrate` on held-out labelled photos). A listing whose best
   similarity is below the calibrated unknown threshold, with no duplicate, is ``unknown``. Until
   ``calibrate`` runs, a fixed default mapping is used and every Verdict says ``calibrated=False``.

``check``, ``check_many``, ``calibrate`` and the scanner all go through :meth:`AuthenticityChecker.assess_listings`.

Thread safety: ``check``/``check_many``/``calibrate`` may run in many threads while others add or
remove references; the index serialises writers against readers, and the calibration is replaced by
one attribute assignment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from .calibration import Calibration, CalibrationReport, fit_calibration, uncalibrated
from .embedder import Embedder
from .errors import ImageDecodeError, IncompatibleModelError, InspectionError
from .evidence import EvidenceProvider, InspectionEvidence, Listing, Screen, default_providers, feature_names
from .evidence.base import make_listings
from .evidence.screen import screen
from .hashing import DUPLICATE_MAX_DISTANCE
from .imageio import DecodedImage, ImageSource
from .index import Label, OnDuplicate, ReferenceIndex
from .prepare import as_input_list, create_transform, decode_inputs, per_item, source_name
from .signing import KeyArg
from .verdict import Match, Verdict

if TYPE_CHECKING:
    from .scanner import ScanResult

__all__ = ["FEATURES", "Assessment", "AuthenticityChecker"]

LOG = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = feature_names(default_providers())
"""The default providers' features, in the calibration's column order (a checker's own: ``checker.feature_names``)."""

DEFAULT_K = 10

# The uncalibrated mapping: P(genuine) = sigmoid(Σ provider default weights · features + 1.5), i.e.
# 30 · (genuine - fake similarity) - 3 · fake share + 1.5 - 6 · duplicate of a fake - fake logit.
# A placeholder with the right signs until calibrate() runs, never presented as calibrated. Its
# unknown threshold was read off the default model on the 22 sample photos: against 14 indexed
# ones, unrelated photos scored at most 0.63 (a different scene; 0.91 for the other half of a
# stereo pair), edited copies of an indexed photo (JPEG q40, 10-30% crops, padding, banner,
# mirror, 8° rotation) at least 0.75.
_DEFAULT_BIAS = 1.5
_DEFAULT_UNKNOWN_THRESHOLD = 0.68



@dataclass(frozen=True)
class Assessment:
    """Evidence for one photo before it becomes a Verdict (what calibration fits on)."""

    neighbors: tuple[Match, ...]
    duplicate_of: Match | None
    product: str | None
    brand: str | None
    max_similarity: float
    features: tuple[float, ...]
    provider_evidence: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    confirmed: bool = False  # a provider found the product in the photo (see ProviderEvidence.confirms_product)

    @property
    def known_score(self) -> float:
        """What the unknown threshold cuts: the best similarity, or 1 for a near-duplicate or a confirmed product (always known)."""
        return 1.0 if self.duplicate_of is not None or self.confirmed else self.max_similarity


class AuthenticityChecker:
    """Genuine-or-fake verdicts for listing photos, with the reference photos that support them.

    Args:
        embedder: the model that embeds photos (its sha256 must match the index's).
        index: reference photos; a new empty index for ``embedder`` when None.
        k: neighbours retrieved per photo.
        decision_threshold: a photo is ``"fake"`` when P(genuine) is below this. Raise it to catch
            more fakes, lower it to wrongly accuse fewer genuine sellers.
        duplicate_max_distance: Hamming radius (bits of 64) for a re-used photo.
        providers: the evidence providers (:mod:`authvision.evidence`); the default three when None.
    """

    def __init__(
        self,
        embedder: Embedder,
        index: ReferenceIndex | None = None,
        *,
        k: int = DEFAULT_K,
        decision_threshold: float = 0.5,
        duplicate_max_distance: int = DUPLICATE_MAX_DISTANCE,
        providers: Sequence[EvidenceProvider] | None = None,
    ) -> None:
        if not isinstance(embedder, Embedder):
            raise TypeError(f"embedder must be an authvision.Embedder, got {type(embedder).__name__}")
        if index is None:
            index = ReferenceIndex(embedder.dim, model_sha256=embedder.model_sha256)
        if not isinstance(index, ReferenceIndex):
            raise TypeError(f"index must be an authvision.ReferenceIndex, got {type(index).__name__}")
        if index.dim != embedder.dim:
            raise IncompatibleModelError(f"the index holds {index.dim}-d vectors, the embedder makes {embedder.dim}-d ones")
        index.bind_model(embedder.model_sha256)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if not 0.0 < decision_threshold < 1.0:
            raise ValueError(f"decision_threshold must be in (0, 1), got {decision_threshold!r}")
        if isinstance(duplicate_max_distance, bool) or not isinstance(duplicate_max_distance, int) or not 0 <= duplicate_max_distance <= 64:
            raise ValueError(f"duplicate_max_distance must be an int in [0, 64], got {duplicate_max_distance!r}")
        providers = default_providers() if providers is None else list(providers)
        for provider in providers:
            if not isinstance(provider, EvidenceProvider):
                raise TypeError(f"providers must be authvision.evidence.EvidenceProvider objects, got {type(provider).__name__}")
        if len({p.name for p in providers}) != len(providers):
            raise ValueError(f"two evidence providers share a name: {[p.name for p in providers]}")
        self.embedder = embedder
        self.index = index
        self.k = k
        self.decision_threshold = float(decision_threshold)
        self.duplicate_max_distance = duplicate_max_distance
        self.providers: tuple[EvidenceProvider, ...] = tuple(providers)
        self.feature_names: tuple[str, ...] = feature_names(self.providers)
        self.transform = create_transform(embedder, hash_version=index.hash_version)
        self._calibration = self._default_calibration()
        self._report: CalibrationReport | None = None

    # -- state ---------------------------------------------------------------------------------------
    @property
    def calibration(self) -> Calibration:
        return self._calibration

    @property
    def calibrated(self) -> bool:
        return self._calibration.fitted

    @property
    def calibration_report(self) -> CalibrationReport | None:
        """What the last :meth:`calibrate` measured (also restored by :meth:`load`)."""
        return self._report

    def provider(self, name: str) -> EvidenceProvider:
        """The evidence provider called ``name``; KeyError if the checker has none."""
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise KeyError(f"this checker has no evidence provider {name!r} (it has {[p.name for p in self.providers]})")

    @property
    def version(self) -> str:
        """Short fingerprint of model, references, evidence and calibration: changes whenever a verdict could."""
        info = self.index.info()
        state = {
            "model": self.embedder.model_sha256,
            "references": [info["references"], info["next_id"]],
            "providers": [[p.name, p.config()] for p in self.providers],
            "calibration": self._calibration.to_dict(),
            "k": self.k,
            "decision_threshold": self.decision_threshold,
            "duplicate_max_distance": self.duplicate_max_distance,
        }
        return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f"AuthenticityChecker(model={self.embedder.manifest.name!r}, references={len(self.index)}, "
            f"providers={[p.name for p in self.providers]}, calibrated={self.calibrated})"
        )

    # -- references ----------------------------------------------------------------------------------
    def add_references(
        self,
        images: ImageSource | Iterable[ImageSource],
        label: Label | Sequence[Label],
        *,
        product: str | Sequence[str | None] | None = None,
        brand: str | Sequence[str | None] | None = None,
        sources: Sequence[str | None] | None = None,
        on_duplicate: OnDuplicate = "skip",
        on_error: Literal["raise", "skip"] = "raise",
    ) -> list[int | None]:
        """Embed, hash and index reference photos; returns their ids in input order.

        ``label``, ``product`` and ``brand`` take one value for every photo or a sequence. ``sources``
        defaults to the paths of path inputs. A photo already indexed (same bytes) returns its
        existing id (``on_duplicate="skip"``). A photo that cannot be decoded raises
        :class:`~authvision.errors.ImageDecodeError` before anything is added, or with
        ``on_error="skip"`` is logged and gets ``None``. Providers that keep per-reference data
        (region inspection) are told of the new references.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        inputs = as_input_list(images)
        columns = {name: per_item(name, value, len(inputs)) for name, value in (("label", label), ("product", product), ("brand", brand))}
        if sources is None:
            sources = [source_name(source) for source in inputs]
        elif len(sources) != len(inputs):
            raise ValueError(f"sources has {len(sources)} entries for {len(inputs)} photos")
        decoded: list[DecodedImage] = []
        good: list[int] = []
        for i, entry in enumerate(decode_inputs(inputs, self.embedder.decode)):
            if isinstance(entry, str):
                if on_error == "raise":
                    raise ImageDecodeError(f"reference photo {i}: {entry}; nothing was added")
                LOG.warning("skipping reference photo %d: %s", i, entry)
                continue
            decoded.append(entry)
            good.append(i)
        out: list[int | None] = [None] * len(inputs)
        if not decoded:
            return out
        tensors, hashes = self.transform.batch([d.image for d in decoded])
        ids = self.index.add(
            self.embedder.run_tensors(tensors).vectors,
            [columns["label"][i] for i in good],
            products=[columns["product"][i] for i in good],
            brands=[columns["brand"][i] for i in good],
            sources=[sources[i] for i in good],
            hashes=hashes,
            sha256s=[d.sha256 for d in decoded],
            on_duplicate=on_duplicate,
        )
        for i, ref_id in zip(good, ids):
            out[i] = ref_id
        self._tell_providers_added(ids, [inputs[i] for i in good])
        return out

    def _tell_providers_added(self, ids: Sequence[int], inputs: Sequence[ImageSource]) -> None:
        refs = self.index.lookup(ids)
        new = [(refs[ref_id], source) for ref_id, source in zip(ids, inputs) if ref_id in refs]
        if not new:
            return
        for provider in self.providers:
            provider.references_added([r for r, _ in new], [s for _, s in new], self)

    def remove_references(self, ids: Iterable[int]) -> None:
        """Remove references by id (see :meth:`ReferenceIndex.remove`); providers are told."""
        ids = list(ids)
        refs = self.index.lookup(ids)
        self.index.remove(ids)
        removed = [refs[ref_id] for ref_id in ids if ref_id in refs]
        for provider in self.providers:
            provider.references_removed(removed, self)

    def set_authentication_points(
        self, product: str, reference: int | str, boxes: Mapping[str, Sequence[float]], *, fractions: bool = False
    ) -> None:
        """A brand's authentication points for a product: named boxes on one of its genuine reference photos.

        ``reference`` is the photo's reference id or the source it was added from; ``boxes`` maps a
        name to ``[x0, y0, x1, y1]`` in that photo's pixels (or, with ``fractions``, in fractions of
        its width and height). Region inspection scores each point on its own against the genuine
        null, reports it in ``verdict.inspection["points"]`` and lets the worst one raise the fused
        score (:mod:`authvision.inspection.points`). Save the checker to keep them.

        Raises:
            InspectionError: the checker has no region inspection, no such genuine reference of the
                product, or the boxes are malformed (see :meth:`InspectionEvidence.set_authentication_points`).
        """
        provider = self.inspection_provider()
        if isinstance(reference, str):
            ids = [r.ref_id for r in self.index.references(self.index.ids(product=product, label="genuine")) if r.source == reference]
            if not ids:
                raise InspectionError(f"product {product!r} has no genuine reference added from {reference!r}")
            reference = ids[0]
        provider.set_authentication_points(product, int(reference), boxes, fractions=fractions)

    def inspection_provider(self) -> InspectionEvidence:
        """The checker's region-inspection provider; InspectionError when it has none."""
        try:
            found = self.provider(InspectionEvidence.name)
        except KeyError:
            found = None
        if not isinstance(found, InspectionEvidence):
            raise InspectionError("this checker has no region inspection (build it with inspection on: `authvision index build`)")
        return found

    # -- checking ------------------------------------------------------------------------------------
    def check(self, image: ImageSource, *, brand: str | None = None) -> Verdict:
        """Check one listing photo; a photo that cannot be decoded raises ImageDecodeError.

        ``brand`` restricts the evidence to that brand's references.
        """
        decoded = self.embedder.decode(image)
        return self.verdicts_for(self.listings([decoded.image], [image]), brand=brand)[0]

    def check_many(self, images: Iterable[ImageSource], *, brand: str | None = None, batch_size: int = 32) -> list[Verdict]:
        """One Verdict per input, in order; an input that cannot be decoded gets label ``"error"``."""
        inputs = as_input_list(images)
        out: list[Verdict] = []
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            entries = decode_inputs(chunk, self.embedder.decode)
            good = [(source, e.image) for source, e in zip(chunk, entries) if not isinstance(e, str)]
            verdicts = iter(self.verdicts_for(self.listings([im for _, im in good], [s for s, _ in good]), brand=brand))
            out.extend(Verdict.failed(e) if isinstance(e, str) else next(verdicts) for e in entries)
        return out

    def scan(
        self,
        inputs: Iterable[Any],
        *,
        brand: str | None = None,
        batch_size: int = 32,
        decode_workers: int | None = None,
        queue_size: int | None = None,
    ) -> Iterator[ScanResult]:
        """One :class:`~authvision.scanner.ScanResult` per input, in order, pipelined (see :class:`~authvision.scanner.Scanner`).

        ``inputs``: paths, bytes, images or ``(id, source)`` pairs, read lazily; a bad one gives an error result.
        """
        from .scanner import Scanner

        scanner = Scanner(self, batch_size=batch_size, decode_workers=decode_workers, queue_size=queue_size, brand=brand)
        return scanner.scan(inputs)

    def verdicts(self, images: Sequence[Image.Image], *, brand: str | None = None) -> list[Verdict]:
        """Verdicts for decoded RGB images (as :meth:`Embedder.decode` gives them), one per image."""
        return self.verdicts_for(self.listings(images), brand=brand)

    def assess_images(self, images: Sequence[Image.Image], *, brand: str | None = None) -> list[Assessment]:
        """:meth:`assess_listings` for decoded RGB images: prepares and embeds them first."""
        return self.assess_listings(self.listings(images), brand=brand)

    def listings(self, images: Sequence[Image.Image], sources: Sequence[ImageSource | None] | None = None) -> list[Listing]:
        """Decoded RGB images → :class:`~authvision.evidence.Listing` (prepared, embedded, hashed)."""
        if not images:
            return []
        tensors, hashes = self.transform.batch(images)
        out = self.embedder.run_tensors(tensors)
        return make_listings(images, sources, out.vectors, hashes, out.fake_logits)

    def assess_listings(self, listings: Sequence[Listing], *, brand: str | None = None) -> list[Assessment]:
        """The evidence for each listing: the screen, then every provider's features and artefacts."""
        if not listings:
            return []
        screens = screen(
            self.index,
            np.stack([x.vector for x in listings]),
            np.stack([x.hashes for x in listings]),
            k=self.k,
            duplicate_max_distance=self.duplicate_max_distance,
            brand=brand,
        )
        per_provider = [self._provider_evidence(provider, listings, screens) for provider in self.providers]
        out = []
        for i, s in enumerate(screens):
            features: list[float] = []
            reports: dict[str, Mapping[str, Any]] = {}
            for provider, evidence in zip(self.providers, per_provider):
                values = evidence[i].features
                features.extend(values)
                reports[provider.name] = {**evidence[i].artefacts, "features": dict(zip(provider.features, values))}
            confirmed = any(evidence[i].confirms_product for evidence in per_provider)
            found = next((evidence[i] for evidence in per_provider if evidence[i].product is not None), None)
            product, owner = (s.product, s.brand) if found is None else (found.product, found.brand)
            out.append(Assessment(s.neighbors, s.duplicate_of, product, owner, s.max_similarity, tuple(features), reports, confirmed))
        return out

    def _provider_evidence(self, provider: EvidenceProvider, listings: Sequence[Listing], screens: Sequence[Screen]) -> list[Any]:
        evidence = provider.assess(listings, screens, self)
        if len(evidence) != len(listings) or any(len(e.features) != len(provider.features) for e in evidence):
            raise RuntimeError(
                f"evidence provider {provider.name!r} returned {len(evidence)} results for {len(listings)} listings, "
                f"or not {len(provider.features)} features each"
            )
        return evidence

    def verdicts_for(self, listings: Sequence[Listing], *, brand: str | None = None) -> list[Verdict]:
        """Verdicts for prepared listings: :meth:`assess_listings`, then the calibrated score."""
        calibration = self._calibration  # one read: a concurrent calibrate() swaps the whole object
        assessments = self.assess_listings(listings, brand=brand)
        if not assessments:
            return []
        probabilities = calibration.probability(np.array([a.features for a in assessments]))
        return [self._verdict(a, float(p), calibration) for a, p in zip(assessments, probabilities)]

    def _verdict(self, a: Assessment, p_genuine: float, calibration: Calibration) -> Verdict:
        evidence = dict(zip(self.feature_names, a.features))
        evidence["max_similarity"] = a.max_similarity
        if a.known_score < calibration.unknown_threshold:
            return Verdict(
                authenticity=None,
                label="unknown",
                neighbors=a.neighbors,
                calibrated=calibration.fitted,
                evidence=evidence,
                provider_evidence=a.provider_evidence,
            )
        return Verdict(
            authenticity=p_genuine,
            label="genuine" if p_genuine >= self.decision_threshold else "fake",
            product=a.product,
            brand=a.brand,
            neighbors=a.neighbors,
            duplicate_of=a.duplicate_of,
            calibrated=calibration.fitted,
            evidence=evidence,
            provider_evidence=a.provider_evidence,
        )

    @property
    def feature_signs(self) -> tuple[int, ...]:
        """Per feature (``feature_names`` order), the direction its provider says it may push P(genuine)
        (+1, -1; 0: free); calibration holds a weight that would take the wrong sign at 0."""
        return tuple(next((int(p.feature_signs.get(f, 0)) for p in self.providers if f in p.features), 0) for f in self.feature_names)

    def _default_calibration(self) -> Calibration:
        weights = [next((float(p.default_weights.get(f, 0.0)) for p in self.providers if f in p.features), 0.0) for f in self.feature_names]
        return uncalibrated(self.feature_names, weights, _DEFAULT_BIAS, _DEFAULT_UNKNOWN_THRESHOLD)

    # -- calibration ---------------------------------------------------------------------------------
    def calibrate(
        self,
        images: Iterable[ImageSource],
        labels: Sequence[str],
        *,
        brands: Sequence[str | None] | None = None,
        batch_size: int = 32,
    ) -> CalibrationReport:
        """Fit the score calibration and the unknown threshold on held-out labelled photos.

        Args:
            images: photos that are NOT reference photos in the index (listing photos).
            labels: per photo ``"genuine"``, ``"fake"``, or ``"unknown"`` for a photo of something
                the index holds no references of (it places the unknown threshold).
            brands: optional per-photo brand to restrict the search to, as ``check(brand=)`` would.

        Photos that cannot be decoded are skipped and counted. Raises CalibrationError when fewer
        than :data:`~authvision.calibration.MIN_PER_CLASS` genuine or fake photos remain.
        """
        inputs = as_input_list(images)
        labels = list(labels)
        if len(labels) != len(inputs):
            raise ValueError(f"{len(inputs)} photos but {len(labels)} labels")
        brand_column = [None] * len(inputs) if brands is None else list(brands)
        if len(brand_column) != len(inputs):
            raise ValueError(f"{len(inputs)} photos but {len(brand_column)} brands")
        rows: list[Assessment] = []
        kept_labels: list[str] = []
        skipped = 0
        for start in range(0, len(inputs), batch_size):
            chunk = range(start, min(len(inputs), start + batch_size))
            by_brand: dict[str | None, list[tuple[int, Image.Image]]] = {}
            for i, entry in zip(chunk, decode_inputs([inputs[i] for i in chunk], self.embedder.decode)):
                if isinstance(entry, str):
                    skipped += 1
                    LOG.warning("calibration photo %d skipped: %s", i, entry)
                else:
                    by_brand.setdefault(brand_column[i], []).append((i, entry.image))
            for brand, items in by_brand.items():
                listings = self.listings([image for _, image in items], [inputs[i] for i, _ in items])
                rows.extend(self.assess_listings(listings, brand=brand))
                kept_labels.extend(labels[i] for i, _ in items)
        features = np.array([a.features for a in rows], dtype=np.float64).reshape(len(rows), len(self.feature_names))
        known_score = np.array([a.known_score for a in rows])
        report = fit_calibration(features, self.feature_names, kept_labels, known_score, skipped=skipped, signs=self.feature_signs)
        self._calibration = report.calibration
        self._report = report
        return report

    def calibrate_from_references(
        self, photos: Sequence[ImageSource], labels: Sequence[str], products: Sequence[str], *, per_photo: int = 3, seed: int = 0
    ) -> CalibrationReport:
        """Calibrate without labelled listings: on held-out reference photos put through simulated listing
        conditions, the unknown threshold against other products and unrelated scenes
        (:func:`authvision.reference_calibration.calibrate_from_references`)."""
        from .reference_calibration import calibrate_from_references

        return calibrate_from_references(self, photos, labels, products, per_photo=per_photo, seed=seed)

    # -- persistence ---------------------------------------------------------------------------------
    def restore_calibration(self, calibration: Calibration, report: CalibrationReport | None) -> None:
        """Install a saved calibration (its features must be this checker's)."""
        if calibration.features != self.feature_names:
            raise ValueError(f"calibration on {list(calibration.features)}, this checker's features are {list(self.feature_names)}")
        self._calibration, self._report = calibration, report

    def save(self, directory: str | os.PathLike[str], *, signing_key: KeyArg = None) -> None:
        """Save references, evidence providers' data, calibration and the model reference to one directory, atomically.

        The shipped default model is referenced by its sha256; any other model's files are copied in,
        so the directory is self-contained (copy it to every node of a cluster). See :mod:`authvision.checker_store`.
        ``signing_key`` (default: ``AUTHVISION_CHECKER_KEY``) signs it; :meth:`load` with the key checks that.
        """
        from .checker_store import save_checker

        save_checker(self, directory, signing_key=signing_key)

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        *,
        embedder: Embedder | None = None,
        num_threads: int | None = None,
        providers: Sequence[EvidenceProvider] | None = None,
        discard_calibration: bool = False,
        signing_key: KeyArg = None,
    ) -> AuthenticityChecker:
        """Load a saved checker; every file is verified against the manifest before it is parsed.

        Args:
            embedder: use this model instead of the saved reference (it must be the same model).
            num_threads: ONNX Runtime threads of the model loaded from the reference.
            providers: evidence providers to use instead of the saved ones. When their features are
                not the saved calibration's, loading fails unless ``discard_calibration``.
            discard_calibration: load with the default (uncalibrated) mapping, to calibrate again.
            signing_key: a key or a list of keys (rotation); default ``AUTHVISION_CHECKER_KEY``. With one,
                an unsigned or wrongly signed directory raises SignatureError before any parser runs.
        """
        from .checker_store import load_checker

        return load_checker(
            cls, directory, embedder=embedder, num_threads=num_threads, providers=providers,
            discard_calibration=discard_calibration, signing_key=signing_key,
        )
