"""AuthenticityChecker: embed a listing photo, find its reference photos, score the evidence.

For each listing photo the checker gathers evidence from the :class:`~authvision.index.ReferenceIndex`:

* the ``k`` nearest reference photos by embedding similarity. They vote for a product, each with
  weight ``exp((similarity - best) / PRODUCT_TEMPERATURE)``; the product with the largest total wins
  (a near-duplicate reference photo, when there is one, names the product instead);
* for that product: the similarity of the closest *genuine* and the closest *fake* reference
  among the neighbours (when a class is absent there, the lowest neighbour similarity stands in: the
  true value can only be lower), and the similarity-weighted share of fakes;
* perceptual-hash near-duplicates: a re-used copy of a known-fake photo is strong evidence of a fake;
  a re-used copy of a genuine reference photo is reported (official-photo re-use is a marketplace
  signal in itself) and scored for what calibration says it is worth;
* a model retrained for the brand (``authvision train``) also scores the photo itself: the logit of
  its genuine-vs-fake head (0 for models without one, such as the shipped default).

These :data:`FEATURES` go through a :class:`~authvision.calibration.Calibration` (logistic, fitted by
:meth:`AuthenticityChecker.calibrate` on held-out labelled photos) to P(genuine). A listing whose best
similarity is below the calibrated unknown threshold, with no duplicate, is ``unknown``. Until
``calibrate`` runs, a fixed default mapping is used and every Verdict says ``calibrated=False``.

Thread safety: ``check``/``check_many``/``calibrate`` may run in many threads while others add or
remove references; the index serialises writers against readers, and the calibration is replaced by
one attribute assignment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from ._version import __version__
from ._storage import read_manifest, read_verified, resolve_directory, write_directory
from .calibration import Calibration, CalibrationReport, fit_calibration, uncalibrated
from .embedder import Embedder, ModelOutput, default_model_dir
from .errors import ImageDecodeError, IncompatibleModelError, IndexFormatError
from .hashing import DUPLICATE_MAX_DISTANCE, perceptual_hashes
from .imageio import DecodedImage, ImageSource
from .index import Label, OnDuplicate, Reference, ReferenceIndex
from .manifest import MODEL_MANIFEST as MODEL_MANIFEST_NAME
from .verdict import Match, Verdict

if TYPE_CHECKING:
    from .scanner import ScanResult

__all__ = ["FEATURES", "AuthenticityChecker"]

LOG = logging.getLogger(__name__)

FORMAT_NAME = "authvision.AuthenticityChecker"
FORMAT_VERSION = 1

FEATURES: tuple[str, ...] = (
    "genuine_similarity",
    "fake_similarity",
    "fake_share",
    "duplicate_genuine",
    "duplicate_fake",
    "model_fake_logit",
)
"""Evidence the authenticity score is computed from, in the calibration's column order."""

PRODUCT_TEMPERATURE = 0.05
"""Cosine scale of the neighbours' product vote: a neighbour 0.05 less similar weighs e times less."""

DEFAULT_K = 10

# The uncalibrated mapping: P(genuine) = sigmoid(30 · (genuine - fake similarity) - 3 · fake share
# + 1.5 - 6 · duplicate of a fake). A placeholder with the right signs until calibrate() runs, never
# presented as calibrated. Its unknown threshold was read off the default model on the 22 sample
# photos: against 14 indexed ones, unrelated photos scored at most 0.63 (a different scene; 0.91 for
# the other half of a stereo pair), edited copies of an indexed photo (JPEG q40, 10-30% crops,
# padding, banner, mirror, 8° rotation) at least 0.75.
_DEFAULT_WEIGHTS = (30.0, -30.0, -3.0, 0.0, -6.0, -1.0)
_DEFAULT_BIAS = 1.5
_DEFAULT_UNKNOWN_THRESHOLD = 0.68

_CHECKER_FILE = "checker.json"
_INDEX_DIR = "index/"
_MODEL_DIR = "model/"


def _inputs(images: ImageSource | Iterable[ImageSource]) -> list[ImageSource]:
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray)):
        return [images]
    return list(images)


def _source_name(source: ImageSource) -> str | None:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else None  # type: ignore[return-value]


@dataclass(frozen=True)
class Assessment:
    """Evidence for one photo before it becomes a Verdict (what calibration fits on)."""

    neighbors: tuple[Match, ...]
    duplicate_of: Match | None
    product: str | None
    brand: str | None
    max_similarity: float
    features: tuple[float, ...]

    @property
    def known_score(self) -> float:
        """What the unknown threshold cuts: the best similarity, or 1 for a near-duplicate (always known)."""
        return 1.0 if self.duplicate_of is not None else self.max_similarity


class AuthenticityChecker:
    """Genuine-or-fake verdicts for listing photos, with the reference photos that support them.

    Args:
        embedder: the model that embeds photos (its sha256 must match the index's).
        index: reference photos; a new empty index for ``embedder`` when None.
        k: neighbours retrieved per photo.
        decision_threshold: a photo is ``"fake"`` when P(genuine) is below this. Raise it to catch
            more fakes, lower it to wrongly accuse fewer genuine sellers.
        duplicate_max_distance: Hamming radius (bits of 64) for a re-used photo.
    """

    def __init__(
        self,
        embedder: Embedder,
        index: ReferenceIndex | None = None,
        *,
        k: int = DEFAULT_K,
        decision_threshold: float = 0.5,
        duplicate_max_distance: int = DUPLICATE_MAX_DISTANCE,
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
        self.embedder = embedder
        self.index = index
        self.k = k
        self.decision_threshold = float(decision_threshold)
        self.duplicate_max_distance = duplicate_max_distance
        self._calibration = _default_calibration()
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

    @property
    def version(self) -> str:
        """Short fingerprint of model, references and calibration: changes whenever a verdict could."""
        info = self.index.info()
        state = {
            "model": self.embedder.model_sha256,
            "references": [info["references"], info["next_id"]],
            "calibration": self._calibration.to_dict(),
            "k": self.k,
            "decision_threshold": self.decision_threshold,
            "duplicate_max_distance": self.duplicate_max_distance,
        }
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f"AuthenticityChecker(model={self.embedder.manifest.name!r}, references={len(self.index)}, "
            f"calibrated={self.calibrated})"
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
        ``on_error="skip"`` is logged and gets ``None``.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        inputs = _inputs(images)
        columns = {name: _per_item(name, value, len(inputs)) for name, value in (("label", label), ("product", product), ("brand", brand))}
        if sources is None:
            sources = [_source_name(source) for source in inputs]
        elif len(sources) != len(inputs):
            raise ValueError(f"sources has {len(sources)} entries for {len(inputs)} photos")
        decoded: list[DecodedImage] = []
        good: list[int] = []
        for i, source in enumerate(inputs):
            try:
                decoded.append(self.embedder.decode(source))
                good.append(i)
            except ImageDecodeError as exc:
                if on_error == "raise":
                    raise ImageDecodeError(f"reference photo {i}: {exc}; nothing was added") from exc
                LOG.warning("skipping reference photo %d: %s", i, exc)
        out: list[int | None] = [None] * len(inputs)
        if not decoded:
            return out
        vectors = self.embedder.embed_decoded([d.image for d in decoded])
        hashes = np.stack([perceptual_hashes(d.image) for d in decoded])
        ids = self.index.add(
            vectors,
            [columns["label"][i] for i in good],  # type: ignore[misc]
            products=[columns["product"][i] for i in good],
            brands=[columns["brand"][i] for i in good],
            sources=[sources[i] for i in good],
            hashes=hashes,
            sha256s=[d.sha256 for d in decoded],
            on_duplicate=on_duplicate,
        )
        for i, ref_id in zip(good, ids):
            out[i] = ref_id
        return out

    def remove_references(self, ids: Iterable[int]) -> None:
        """Remove references by id (see :meth:`ReferenceIndex.remove`)."""
        self.index.remove(ids)

    # -- checking ------------------------------------------------------------------------------------
    def check(self, image: ImageSource, *, brand: str | None = None) -> Verdict:
        """Check one listing photo; a photo that cannot be decoded raises ImageDecodeError.

        ``brand`` restricts the evidence to that brand's references.
        """
        decoded = self.embedder.decode(image)
        return self.verdicts([decoded.image], brand=brand)[0]

    def check_many(
        self, images: Iterable[ImageSource], *, brand: str | None = None, batch_size: int = 32
    ) -> list[Verdict]:
        """One Verdict per input, in order; an input that cannot be decoded gets label ``"error"``."""
        inputs = _inputs(images)
        out: list[Verdict | None] = [None] * len(inputs)
        for start in range(0, len(inputs), batch_size):
            chunk = range(start, min(len(inputs), start + batch_size))
            decoded, where = [], []
            for i in chunk:
                try:
                    decoded.append(self.embedder.decode(inputs[i]).image)
                    where.append(i)
                except (ImageDecodeError, TypeError) as exc:
                    out[i] = Verdict.failed(str(exc))
            for i, verdict in zip(where, self.verdicts(decoded, brand=brand)):
                out[i] = verdict
        return out  # type: ignore[return-value]

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
        if not images:
            return []
        out, hashes = self._run_model_and_hash(images)
        return self.verdicts_from_embeddings(out.vectors, hashes, brand=brand, fake_logits=out.fake_logits)

    def assess_images(self, images: Sequence[Image.Image], *, brand: str | None = None) -> list[Assessment]:
        """:meth:`assess` for decoded RGB images: embeds and hashes them first."""
        if not images:
            return []
        out, hashes = self._run_model_and_hash(images)
        return self.assess(out.vectors, hashes, brand=brand, fake_logits=out.fake_logits)

    def _run_model_and_hash(self, images: Sequence[Image.Image]) -> tuple[ModelOutput, np.ndarray]:
        return self.embedder.run_decoded(images), np.stack([perceptual_hashes(image) for image in images])

    def verdicts_from_embeddings(
        self, vectors: np.ndarray, hashes: np.ndarray, *, brand: str | None = None, fake_logits: np.ndarray | None = None
    ) -> list[Verdict]:
        """Verdicts from what the model and the hashing already computed (the scanner's fast path)."""
        calibration = self._calibration  # one read: a concurrent calibrate() swaps the whole object
        assessments = self.assess(vectors, hashes, brand=brand, fake_logits=fake_logits)
        if not assessments:
            return []
        probabilities = calibration.probability(np.array([a.features for a in assessments]))
        return [self._verdict(a, float(p), calibration) for a, p in zip(assessments, probabilities)]

    def _verdict(self, a: Assessment, p_genuine: float, calibration: Calibration) -> Verdict:
        evidence = dict(zip(FEATURES, a.features))
        evidence["max_similarity"] = a.max_similarity
        if a.known_score < calibration.unknown_threshold:
            return Verdict(
                authenticity=None, label="unknown", neighbors=a.neighbors, calibrated=calibration.fitted, evidence=evidence
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
        )

    def assess(
        self, vectors: np.ndarray, hashes: np.ndarray, *, brand: str | None = None, fake_logits: np.ndarray | None = None
    ) -> list[Assessment]:
        """The evidence for each photo: neighbours, duplicate, product and :data:`FEATURES`.

        ``fake_logits``: the model's own per-photo fake logits (:attr:`Embedder.has_fake_head`), if any.
        """
        result = self.index.search(vectors, self.k, brand=brand)
        duplicates = self.index.find_duplicates(hashes, self.duplicate_max_distance)
        wanted = set(result.ids[result.ids >= 0].tolist())
        for row in duplicates:
            wanted.update(ref_id for ref_id, _ in row)
        refs = self.index.lookup(wanted)  # a reference removed since the search is simply left out
        logits = np.zeros(len(vectors)) if fake_logits is None else np.asarray(fake_logits, dtype=np.float64)
        return [
            self._assess_one(result.similarities[i], result.ids[i], duplicates[i], refs, brand, float(logits[i]))
            for i in range(len(vectors))
        ]

    def _assess_one(
        self,
        similarities: np.ndarray,
        ids: np.ndarray,
        duplicates: list[tuple[int, int]],
        refs: dict[int, Reference],
        brand: str | None,
        fake_logit: float,
    ) -> Assessment:
        neighbors = tuple(
            _match(refs[ref_id], float(sim))
            for ref_id, sim in zip(ids.tolist(), similarities.tolist())
            if ref_id >= 0 and ref_id in refs
        )
        similarity_of = {m.ref_id: m.similarity for m in neighbors}
        duplicate = next(
            (
                _match(refs[ref_id], similarity_of.get(ref_id), hamming=distance)
                for ref_id, distance in duplicates
                if ref_id in refs and (brand is None or refs[ref_id].brand == brand)
            ),
            None,
        )
        if not neighbors:
            features = (-1.0, -1.0, 0.0, *_duplicate_features(duplicate, self.duplicate_max_distance), fake_logit)
            product = duplicate.product if duplicate else None
            owner = duplicate.brand if duplicate else None
            return Assessment((), duplicate, product, owner, -1.0, features)

        best = neighbors[0].similarity or 0.0
        votes: dict[tuple[str | None, str | None], float] = {}
        for m in neighbors:
            key = (m.product, m.brand)
            votes[key] = votes.get(key, 0.0) + math.exp(((m.similarity or 0.0) - best) / PRODUCT_TEMPERATURE)
        product, owner = (duplicate.product, duplicate.brand) if duplicate else max(votes, key=votes.__getitem__)
        floor = min(m.similarity or 0.0 for m in neighbors)
        genuine = max((m.similarity or 0.0 for m in neighbors if m.product == product and m.label == "genuine"), default=floor)
        fake = max((m.similarity or 0.0 for m in neighbors if m.product == product and m.label == "fake"), default=floor)
        weights = [
            (m.label, math.exp(((m.similarity or 0.0) - best) / PRODUCT_TEMPERATURE))
            for m in neighbors
            if m.product == product
        ]
        total = sum(w for _, w in weights)
        fake_share = sum(w for label, w in weights if label == "fake") / total if total else 0.0
        features = (genuine, fake, fake_share, *_duplicate_features(duplicate, self.duplicate_max_distance), fake_logit)
        return Assessment(neighbors, duplicate, product, owner, best, features)

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
        inputs = _inputs(images)
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
            for i in chunk:
                try:
                    by_brand.setdefault(brand_column[i], []).append((i, self.embedder.decode(inputs[i]).image))
                except ImageDecodeError as exc:
                    skipped += 1
                    LOG.warning("calibration photo %d skipped: %s", i, exc)
            for brand, items in by_brand.items():
                rows.extend(self.assess_images([image for _, image in items], brand=brand))
                kept_labels.extend(labels[i] for i, _ in items)
        features = np.array([a.features for a in rows], dtype=np.float64).reshape(len(rows), len(FEATURES))
        known_score = np.array([a.known_score for a in rows])
        report = fit_calibration(features, FEATURES, kept_labels, known_score, skipped=skipped)
        self._calibration = report.calibration
        self._report = report
        return report

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> None:
        """Save references, calibration and the model reference to one directory, atomically.

        The shipped default model is referenced by its sha256; any other model's files are copied in,
        so the directory is self-contained (copy it to every node of a cluster).
        """
        index_files, index_fields = self.index.snapshot()
        files: dict[str, Any] = {_INDEX_DIR + name: data for name, data in index_files.items()}
        model = self._model_reference()
        if model["location"] == "embedded":
            model_dir = self.embedder.source.parent
            files[_MODEL_DIR + MODEL_MANIFEST_NAME] = (model_dir / MODEL_MANIFEST_NAME).read_bytes()
            files[_MODEL_DIR + self.embedder.source.name] = self.embedder.source.read_bytes()
        settings = {
            "k": self.k,
            "decision_threshold": self.decision_threshold,
            "duplicate_max_distance": self.duplicate_max_distance,
            "features": list(FEATURES),
            "calibration": self._calibration.to_dict(),
            "calibration_report": None if self._report is None else self._report.to_dict(),
        }
        files[_CHECKER_FILE] = (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode()
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "model": model,
            "index": index_fields,
        }
        write_directory(directory, files, manifest)

    def _model_reference(self) -> dict[str, Any]:
        embedder = self.embedder
        default = embedder.source.parent.resolve() == default_model_dir().resolve()
        return {
            "name": embedder.manifest.name,
            "sha256": embedder.model_sha256,
            "precision": embedder.precision,
            "embedding_dim": embedder.dim,
            "location": "default" if default else "embedded",
            "file": embedder.source.name,
        }

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], *, embedder: Embedder | None = None, num_threads: int | None = None
    ) -> AuthenticityChecker:
        """Load a saved checker; every file is verified against the manifest before it is parsed.

        Args:
            embedder: use this model instead of the saved reference (it must be the same model).
            num_threads: ONNX Runtime threads of the model loaded from the reference.
        """
        path = resolve_directory(directory)
        manifest = read_manifest(path, format_name=FORMAT_NAME, supported_versions=(FORMAT_VERSION,))
        model = manifest.get("model")
        if not isinstance(model, dict) or not isinstance(model.get("sha256"), str):
            raise IndexFormatError(f"{path / 'manifest.json'}: the model reference is missing or malformed")
        if embedder is None:
            embedder = _load_model(path, manifest, model, num_threads)
        elif embedder.model_sha256 != model["sha256"]:
            raise IncompatibleModelError(
                f"the checker at {path} was built with model {model.get('name')!r} ({model['sha256'][:12]}…), "
                f"not with {embedder.manifest.name!r} ({embedder.model_sha256[:12]}…)"
            )
        fields = manifest.get("index")
        if not isinstance(fields, dict):
            raise IndexFormatError(f"{path / 'manifest.json'}: the index section is missing")
        index = ReferenceIndex.restore(
            fields,
            lambda name: read_verified(path, manifest, _INDEX_DIR + name),
            where=path / _INDEX_DIR.rstrip("/"),
            expected_model_sha256=embedder.model_sha256,
        )
        try:
            settings = json.loads(read_verified(path, manifest, _CHECKER_FILE))
            if tuple(settings["features"]) != FEATURES:
                raise IndexFormatError(
                    f"{path}: saved with evidence features {settings['features']}, this authvision uses {list(FEATURES)}; "
                    "recalibrate it with this version"
                )
            checker = cls(
                embedder,
                index,
                k=int(settings["k"]),
                decision_threshold=float(settings["decision_threshold"]),
                duplicate_max_distance=int(settings["duplicate_max_distance"]),
            )
            checker._calibration = Calibration.from_dict(settings["calibration"])
            report = settings.get("calibration_report")
            if report is not None:
                report = dict(report)
                report["calibration"] = checker._calibration
                checker._report = CalibrationReport(**report)
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{path / _CHECKER_FILE} is malformed: {exc!r}") from exc
        return checker


def _load_model(path: Path, manifest: dict[str, Any], model: dict[str, Any], num_threads: int | None) -> Embedder:
    precision = model.get("precision", "int8")
    if model.get("location") == "embedded":
        # Verified here against the checker's manifest; Embedder.load checks the ONNX sha256 again.
        for name in (MODEL_MANIFEST_NAME, str(model.get("file"))):
            read_verified(path, manifest, _MODEL_DIR + name)
        embedder = Embedder.load(path / _MODEL_DIR.rstrip("/"), precision=precision, num_threads=num_threads)
    else:
        embedder = Embedder.load(precision=precision, num_threads=num_threads)
    if embedder.model_sha256 != model["sha256"]:
        raise IncompatibleModelError(
            f"the checker at {path} was built with model {model.get('name')!r} ({model['sha256'][:12]}…), but the "
            f"{'embedded' if model.get('location') == 'embedded' else 'installed default'} model is "
            f"{embedder.manifest.name!r} ({embedder.model_sha256[:12]}…): rebuild the checker with this model"
        )
    return embedder


def _default_calibration() -> Calibration:
    return uncalibrated(FEATURES, _DEFAULT_WEIGHTS, _DEFAULT_BIAS, _DEFAULT_UNKNOWN_THRESHOLD)


def _duplicate_features(duplicate: Match | None, max_distance: int) -> tuple[float, float]:
    """(duplicate_genuine, duplicate_fake): 1 for an identical hash, falling to ~0 at the radius."""
    if duplicate is None:
        return 0.0, 0.0
    strength = 1.0 - (duplicate.hamming or 0) / (max_distance + 1)
    return (strength, 0.0) if duplicate.label == "genuine" else (0.0, strength)


def _match(ref: Reference, similarity: float | None, *, hamming: int | None = None) -> Match:
    return Match(
        ref_id=ref.ref_id,
        label=ref.label,
        product=ref.product,
        brand=ref.brand,
        similarity=similarity,
        source=ref.source,
        hamming=hamming,
    )


def _per_item(name: str, value: Any, n: int) -> list[Any]:
    if value is None or isinstance(value, str):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} photos")
    return values
