"""Evidence from region inspection: the listing registered to its product's genuine references, marks compared.

:class:`InspectionEvidence` keeps, per product, the genuine reference photos (reduced to
:data:`REFERENCE_SIDE` px, JPEG) and the :class:`~authvision.inspection.ProductInspection` built from
them (templates, keypoints, masks, the genuine null). Both are saved with the checker (plain arrays
and JPEG bytes, checksummed with every other file; no pickle), so a checker copied to another machine
inspects without the original photo files. Adding or removing a genuine reference marks its product
for a rebuild, done on the next inspection of that product or on save.

A listing is inspected when the screen matched it to a product that has inspection data (at least
:data:`MIN_GENUINE` genuine references), its best similarity reaches ``min_similarity`` and, when
``products`` / ``brands`` are given, the product or brand is among them. It is decoded again at full
resolution from its source (the screen's copy is JPEG-draft reduced to the model's size). Features:

* ``inspection_log_score``: ``log(1 + max(0, s))`` of the fused anomaly score ``s``, standardised
  against the genuine null (0 ≈ a typical genuine listing, 1 ≈ the null's 95th percentile); 0 when
  not inspected. The logarithm tames the score's heavy tail (a replaced emblem scores 20-50): on the
  raw score the logistic calibration let a few such listings set its slope and the demo's fake
  ROC-AUC was 0.716 fused with the screen, 0.772 with the logarithm (inspection alone 0.786);
* ``inspection_registered``: 1 when the listing registered to a template, else 0;
* ``inspection_log_structure``, ``inspection_log_cells``, ``inspection_log_colour``: the same
  ``log(1 + max(0, ·))`` of the channels the fused score is the maximum of, so that calibration can
  weigh them (a wrong letter shows in the structure and cells channels, a dyed bag in colour).
  Measured on the demo's listings of two brand kits (``training/research/fusion_study.py``, 200
  calibration draws each): fake ROC-AUC 0.847 / 0.841 with them, 0.846 / 0.805 without. Checkers
  saved before they existed keep the two features above (``channels=False``);
* ``inspection_text_mismatch`` (with the channels): the largest edit-distance mismatch between a
  word the template reads (its wordmark) and what the listing reads in the same place
  (:mod:`authvision.inspection.text`); 0 when the template reads no word.

A registration on :data:`CONFIRM_INLIERS` keypoints or more confirms the product: the listing is not
``unknown`` even when its embedding is far from every reference (a cluttered photo of a small item),
unless the listing reads *another word* where the product's wordmark sits, with a confidence of at
least :data:`OTHER_WORD_CONFIDENCE` and more than :data:`OTHER_WORD_MISMATCH` of its letters different:
"KOSTRA" for "TORVAL" is another brand's look-alike item, where a counterfeit's "TROVAL" differs by a
third, and a garbled counterfeit wordmark ("PRATM", "JAVRGY") is read less surely. Such a listing is
then known or ``unknown`` by its similarity alone, like one that did not register.

The artefacts say whether the listing was inspected, why not, the registration quality and the
worst regions with their boxes in listing pixels. A failure of any kind (unregistrable listing,
corrupt data, out of memory) leaves the screen's evidence with ``inspected: false`` and the reason.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..embedder import available_cpus
from ..errors import AuthvisionError, IndexFormatError, InspectionError
from ..imageio import decode_image
from .base import EvidenceProvider, Listing, ProviderEvidence, Screen, register_provider
from .screen import vote_weights

if TYPE_CHECKING:
    from ..checker import AuthenticityChecker
    from ..imageio import ImageSource
    from ..index import Reference
    from ..inspection import InspectionResult, ProductInspection
    from ..inspection.points import AuthenticationPoint

__all__ = ["InspectionEvidence"]

LOG = logging.getLogger(__name__)

REFERENCE_SIDE = 800
"""Longest side of the genuine reference photos kept for (re)building a product's inspection data."""
MIN_GENUINE = 3
"""Genuine references a product needs before it is inspected (two templates' nulls need the others)."""
CONFIRM_INLIERS = 30
"""A registration on at least this many keypoint inliers confirms the product (never ``unknown``): an unrelated
photo's best homography is supported by a handful of chance matches (the registration itself accepts 8), a
photo of the product by hundreds, a small one in clutter by a few dozen. Measured on the demos of two kits
(known test listings known / unindexed products called ``unknown``): 50 inliers 0.908 / 0.92 and 0.903 / 1.0;
30: 0.927 / 0.92 and 0.926 / 1.0; 15: 0.936 / 0.92 and 0.935 / 0.96 (an unindexed look-alike confirmed)."""
ENOUGH_INLIERS = 50
"""A candidate product registered on this many inliers is taken without trying the next ones (a product of the
same brand shares its wordmark and emblem, so a weaker fit does not settle which product the photo shows)."""
OTHER_WORD_MISMATCH = 0.5
"""A reading whose mismatch with the template's word is above this is another word, not a misspelling
(:mod:`authvision.inspection.text`): on the demo's two kits no genuine listing of the inspected product reads
its wordmark that far off, while an unindexed brand's look-alikes read their own names at 0.71-1.0."""
OTHER_WORD_CONFIDENCE = 0.95
"""How sure that reading must be (unindexed brands' names read at 0.95-1.0 on the two kits; two garbled
counterfeit wordmarks that read far off at 0.82-0.93 keep their product)."""
_PRODUCTS_FILE = "products.json"
FUSED_FROM = ("structure", "cells", "colour")
"""The channels whose maximum is the fused score (``authvision.inspection.null.FUSED_FROM``, kept equal by a
test; not imported from there so that importing the evidence seam does not import OpenCV)."""


@register_provider
class InspectionEvidence(EvidenceProvider):
    """Region inspection of listings matched to an indexed product (see the module docstring).

    Args:
        min_similarity: inspect only listings whose best reference similarity reaches this.
        products, brands: inspect only these products / brands (all when None).
        templates: genuine templates per product.
        seed: seed of the simulated listing conditions of the genuine null.
        regions: worst regions reported per listing.
        channels: also give calibration the fused score's channels as features (see the module docstring).
        candidates: products tried per listing: the screen's, then the other products among its
            neighbours by vote; the one the listing registers to on the most keypoints is inspected
            (and named by the verdict); a product registered on :data:`CONFIRM_INLIERS` or more is
            taken without trying the rest. 1: the screen's product only.
        workers: threads inspecting the listings of one batch, and building products' data (default: the CPUs).
    """

    name = "inspection"
    _CHANNEL_FEATURES = (*(f"inspection_log_{c}" for c in FUSED_FROM), "inspection_text_mismatch")
    default_weights = {"inspection_log_score": -2.0}
    feature_signs = {"inspection_log_score": -1, **{name: -1 for name in _CHANNEL_FEATURES}}
    """Every anomaly channel and the wordmark's mismatch speak only for a fake; being registered is free."""
    heavy = True

    def __init__(
        self,
        *,
        min_similarity: float = 0.0,
        products: Sequence[str] | None = None,
        brands: Sequence[str] | None = None,
        templates: int = 3,
        seed: int = 0,
        regions: int = 5,
        candidates: int = 3,
        channels: bool = True,
        workers: int | None = None,
    ) -> None:
        self.channels = bool(channels)
        self.features = ("inspection_log_score", "inspection_registered", *(self._CHANNEL_FEATURES if self.channels else ()))
        self.min_similarity = float(min_similarity)
        self.products = None if products is None else sorted(set(products))
        self.brands = None if brands is None else sorted(set(brands))
        self.templates = int(templates)
        self.seed = int(seed)
        self.regions = int(regions)
        self.candidates = max(1, int(candidates))
        self.workers = available_cpus() if workers is None else max(1, int(workers))
        self._photos: dict[str, dict[int, bytes]] = {}  # product -> ref id -> reduced JPEG
        self._sizes: dict[str, dict[int, tuple[int, int]]] = {}  # product -> ref id -> the photo's (width, height) as added
        self._points: dict[str, dict[str, Any]] = {}  # product -> {"reference": ref id, "boxes": {name: box}} (photo pixels)
        self._data: dict[str, ProductInspection | None] = {}  # None: could not be built
        self._dirty: set[str] = set()
        self._lock = threading.RLock()
        self._build_lock = threading.Lock()

    def config(self) -> dict[str, Any]:
        return {
            "min_similarity": self.min_similarity,
            "products": self.products,
            "brands": self.brands,
            "templates": self.templates,
            "seed": self.seed,
            "regions": self.regions,
            "candidates": self.candidates,
            "channels": self.channels,
        }

    def __repr__(self) -> str:
        return f"InspectionEvidence(products={len(self._photos)}, min_similarity={self.min_similarity})"

    # -- references ----------------------------------------------------------------------------------
    def references_added(self, references: Sequence[Reference], sources: Sequence[ImageSource], checker: AuthenticityChecker) -> None:
        for ref, source in zip(references, sources):
            if ref.label != "genuine" or ref.product is None:
                continue
            try:
                image = decode_image(source).image
            except Exception as exc:  # noqa: BLE001 - the reference is indexed already; inspection goes without it
                LOG.warning("reference %d (%s): not kept for inspection: %s", ref.ref_id, ref.product, exc)
                continue
            with self._lock:
                self._photos.setdefault(ref.product, {})[ref.ref_id] = _reduced_jpeg(image)
                self._sizes.setdefault(ref.product, {})[ref.ref_id] = image.size
                self._dirty.add(ref.product)

    def references_removed(self, references: Sequence[Reference], checker: AuthenticityChecker) -> None:
        with self._lock:
            for ref in references:
                photos = self._photos.get(ref.product or "")
                if photos is not None and photos.pop(ref.ref_id, None) is not None:
                    self._dirty.add(ref.product or "")
                    self._sizes.get(ref.product or "", {}).pop(ref.ref_id, None)
                    if self._points.get(ref.product or "", {}).get("reference") == ref.ref_id:
                        LOG.warning("%s: authentication points were drawn on reference %d, now removed: dropped", ref.product, ref.ref_id)
                        del self._points[ref.product or ""]

    def set_authentication_points(
        self, product: str, reference: int, boxes: Mapping[str, Sequence[float]], *, fractions: bool = False
    ) -> None:
        """Give the brand's authentication points of a product: named boxes on one of its genuine references.

        Args:
            product: the product.
            reference: id of the genuine reference photo the boxes are drawn on.
            boxes: ``{name: [x0, y0, x1, y1]}`` in that photo's pixels as it was added, or with
                ``fractions`` in fractions of its width and height.

        The product's inspection data is rebuilt (on the next inspection or save) with each point
        scored on its own against the genuine null (:mod:`authvision.inspection.points`).

        Raises:
            InspectionError: the product has no such genuine reference kept for inspection, the boxes
                are malformed or fall outside the photo, or pixel boxes were given for a reference
                whose size this checker does not know (saved before sizes were kept: give fractions).
        """
        from ..inspection.points import points_from_boxes

        given = points_from_boxes(boxes)
        with self._lock:
            if reference not in self._photos.get(product, {}):
                raise InspectionError(f"product {product!r} has no genuine reference {reference} kept for inspection")
            size = self._sizes.get(product, {}).get(reference)
            if fractions:
                limit = (1.0, 1.0)
            elif size is None:
                raise InspectionError(f"reference {reference} was added before its size was kept: give the boxes as fractions")
            else:
                limit = (float(size[0]), float(size[1]))
            for pt in given:
                if pt.box[2] > limit[0] + 1e-6 or pt.box[3] > limit[1] + 1e-6:
                    raise InspectionError(
                        f"authentication point {pt.name!r}: box {list(pt.box)} falls outside the photo ({limit[0]:g} x {limit[1]:g})"
                    )
            self._points[product] = {
                "reference": int(reference), "fractions": bool(fractions), "boxes": {pt.name: list(pt.box) for pt in given},
            }  # fmt: skip
            self._dirty.add(product)

    def authentication_points(self, product: str) -> dict[str, Any] | None:
        """The product's authentication points as given (reference, boxes, fractions), or None."""
        with self._lock:
            spec = self._points.get(product)
            return None if spec is None else json.loads(json.dumps(spec))

    def clear_authentication_points(self, product: str) -> None:
        """Forget a product's authentication points (its inspection data is rebuilt without them)."""
        with self._lock:
            if self._points.pop(product, None) is not None:
                self._dirty.add(product)

    def product_data(self, product: str) -> ProductInspection | None:
        """The product's inspection data, (re)built if its references changed; None if it has none."""
        self.build([product])
        with self._lock:
            return self._data.get(product)

    def build(self, products: Iterable[str] | None = None) -> None:
        """(Re)build the inspection data of products whose genuine references changed (all when None), in parallel."""
        from ..inspection import build_product_inspection

        with self._build_lock:  # one build at a time; readers wait for it rather than see stale data
            with self._lock:
                wanted = self._dirty if products is None else self._dirty.intersection(products)
                todo = {product: dict(self._photos.get(product, {})) for product in sorted(wanted)}
                specs = {product: self._points.get(product) for product in todo}
                sizes = {product: dict(self._sizes.get(product, {})) for product in todo}
            if not todo:
                return

            def build_one(product: str) -> ProductInspection | None:
                photos = todo[product]
                if len(photos) < MIN_GENUINE:
                    return None
                order = sorted(photos)
                arrays = [np.asarray(Image.open(io.BytesIO(photos[ref_id])).convert("RGB")) for ref_id in order]
                points = _kept_points(specs[product], order, arrays, sizes[product])
                try:
                    return build_product_inspection(arrays, product=product, seed=self.seed, templates=self.templates, points=points)
                except AuthvisionError as exc:
                    LOG.warning("%s: no inspection data: %s", product, exc)
                    return None

            with ThreadPoolExecutor(min(self.workers, len(todo)), thread_name_prefix="authvision-inspection-build") as pool:
                built = dict(zip(todo, pool.map(build_one, todo)))
            with self._lock:
                for product, data in built.items():
                    if self._photos.get(product, {}).keys() != todo[product].keys():
                        continue  # its references changed during the build: still dirty, built next time
                    self._dirty.discard(product)
                    self._data[product] = data

    # -- evidence ------------------------------------------------------------------------------------
    def assess(self, listings: Sequence[Listing], screens: Sequence[Screen], checker: AuthenticityChecker) -> list[ProviderEvidence]:
        wanted = {product for s in screens if self._skip_reason(s) is None for product, _ in self._candidates(s)}
        self.build(wanted)
        if self.workers == 1 or len(listings) < 2:
            return [self._assess_one(listing, s) for listing, s in zip(listings, screens)]
        with ThreadPoolExecutor(min(self.workers, len(listings)), thread_name_prefix="authvision-inspection") as pool:
            return list(pool.map(self._assess_one, listings, screens))

    def _assess_one(self, listing: Listing, s: Screen) -> ProviderEvidence:
        skipped = self._skip_reason(s)
        if skipped is not None:
            return self._not_inspected(skipped)
        try:
            found = self._inspect_candidates(listing, self._candidates(s))
        except MemoryError:
            return self._not_inspected("out of memory during inspection")
        except Exception as exc:  # noqa: BLE001 - a failed inspection never loses the screen's verdict
            LOG.warning("inspection of a %s listing failed: %r", s.product, exc)
            return self._not_inspected(f"inspection failed: {type(exc).__name__}: {exc}")
        if found is None:
            return self._not_inspected(f"no inspection data for product {s.product!r}")
        (product, brand), result = found
        summary = result.to_dict()
        summary.pop("homography", None)
        artefacts = {"inspected": True, "product": product, "channels": summary.pop("scores"), **summary}
        if not result.registered:
            return ProviderEvidence(self._neutral(), artefacts)
        logged = lambda v: float(np.log1p(max(0.0, v))) if np.isfinite(v) else 0.0  # noqa: E731
        text = result.text_mismatch if np.isfinite(result.text_mismatch) else 0.0
        values = (logged(result.score), 1.0, *((*(logged(result.scores[c]) for c in FUSED_FROM), text) if self.channels else ()))
        other = product != s.product
        return ProviderEvidence(
            values, artefacts, confirms_product=result.inliers >= CONFIRM_INLIERS and not _reads_another_word(result),
            product=product if other else None, brand=brand if other else None,
        )

    def _neutral(self) -> tuple[float, ...]:
        return (0.0,) * len(self.features)

    def _not_inspected(self, reason: str) -> ProviderEvidence:
        return ProviderEvidence(self._neutral(), {"inspected": False, "reason": reason})

    def _candidates(self, s: Screen) -> list[tuple[str, str | None]]:
        """(product, brand) to try: the screen's, then other inspectable products among its neighbours by vote."""
        if s.product is None:
            return []
        out = [(s.product, s.brand)]
        votes: dict[tuple[str, str | None], float] = {}
        for m, w in zip(s.neighbors, vote_weights(s.neighbors)):
            if m.product is not None:
                votes[(m.product, m.brand)] = votes.get((m.product, m.brand), 0.0) + w
        for key in sorted(votes, key=votes.__getitem__, reverse=True):
            if len(out) >= self.candidates:
                break
            if key[0] != s.product and self._inspectable(*key):
                out.append(key)
        return out

    def _inspectable(self, product: str, brand: str | None) -> bool:
        return (
            (self.products is None or product in self.products)
            and (self.brands is None or brand in self.brands)
            and len(self._photos.get(product, {})) >= MIN_GENUINE
        )

    def _inspect_candidates(
        self, listing: Listing, candidates: Sequence[tuple[str, str | None]]
    ) -> tuple[tuple[str, str | None], InspectionResult] | None:
        """The candidate the listing registers to best and its inspection (None: the screen's product has no data)."""
        from ..inspection import inspect_best

        usable = [(key, data) for key in candidates if (data := self.product_data(key[0])) is not None]
        if not usable or usable[0][0] != candidates[0]:
            return None
        chosen, result = inspect_best(
            _full_resolution(listing), [data for _, data in usable], regions=self.regions, heatmap=False, enough=ENOUGH_INLIERS
        )
        return usable[chosen][0], result

    def _skip_reason(self, s: Screen) -> str | None:
        if s.product is None:
            return "no product matched"
        if s.known_score < self.min_similarity:
            return f"best similarity {s.max_similarity:.3f} under the inspection floor {self.min_similarity:.3f}"
        if self.products is not None and s.product not in self.products:
            return f"product {s.product!r} is not inspected"
        if self.brands is not None and s.brand not in self.brands:
            return f"brand {s.brand!r} is not inspected"
        if len(self._photos.get(s.product, {})) < MIN_GENUINE:
            return f"product {s.product!r} has fewer than {MIN_GENUINE} genuine references"
        return None

    def inspect(self, listing: Listing | ImageSource, product: str, *, heatmap: bool = True) -> InspectionResult | None:
        """Inspect one listing (a :class:`Listing` or any image input) against ``product``; None without data."""
        from ..inspection import inspect

        data = self.product_data(product)
        if data is None:
            return None
        return inspect(_full_resolution(listing), data, regions=self.regions, heatmap=heatmap)

    # -- persistence ---------------------------------------------------------------------------------
    def state_files(self) -> dict[str, bytes]:
        self.build()
        with self._lock:
            files: dict[str, bytes] = {}
            index: dict[str, dict[str, Any]] = {}
            for n, product in enumerate(sorted(self._photos)):
                stem = f"p{n:04d}-{_slug(product)}"
                refs = sorted(self._photos[product])
                for ref_id in refs:
                    files[f"{stem}/ref-{ref_id}.jpg"] = self._photos[product][ref_id]
                entry: dict[str, Any] = {"stem": stem, "references": refs, "data": None}
                entry["sizes"] = {str(r): list(wh) for r, wh in sorted(self._sizes.get(product, {}).items())}
                if product in self._points:
                    entry["points"] = self._points[product]
                data = self._data.get(product)
                if data is not None:
                    arrays, meta = data.to_arrays()
                    buffer = io.BytesIO()
                    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types the keywords as allow_pickle
                    files[f"{stem}/inspection.npz"] = buffer.getvalue()
                    entry["data"] = meta
                index[product] = entry
            files[_PRODUCTS_FILE] = (json.dumps(index, indent=1, sort_keys=True) + "\n").encode()
            return files

    @classmethod
    def restore(cls, config: Mapping[str, Any], read: Callable[[str], bytes], names: Sequence[str]) -> InspectionEvidence:
        from ..inspection import ProductInspection

        provider = cls(**{"channels": False, **config})  # saved before the channel features: the two features
        if _PRODUCTS_FILE not in names:
            return provider
        try:
            index = json.loads(read(_PRODUCTS_FILE))
            for product, entry in index.items():
                stem = entry["stem"]
                provider._photos[product] = {int(ref_id): read(f"{stem}/ref-{int(ref_id)}.jpg") for ref_id in entry["references"]}
                provider._sizes[product] = {int(r): (int(wh[0]), int(wh[1])) for r, wh in entry.get("sizes", {}).items()}
                if entry.get("points") is not None:
                    provider._points[product] = _checked_points(entry["points"])
                if entry["data"] is None:
                    provider._dirty.add(product)
                    continue
                with np.load(io.BytesIO(read(f"{stem}/inspection.npz")), allow_pickle=False) as npz:
                    arrays = {key: npz[key] for key in npz.files}
                try:
                    provider._data[product] = ProductInspection.from_arrays(arrays, entry["data"])
                except IndexFormatError as exc:
                    # Verified bytes (checksummed, signed with a key) of another inspection format: the
                    # reference photos are kept, so the data is rebuilt rather than the checker refused.
                    LOG.warning("%s: saved inspection data not usable by this version (%s); rebuilding it from its references", product, exc)
                    provider._dirty.add(product)
        except (KeyError, TypeError, ValueError, OSError, AttributeError) as exc:  # AttributeError: products.json not an object
            raise IndexFormatError(f"the checker's inspection data is malformed: {exc!r}") from exc
        return provider


def _kept_points(
    spec: Mapping[str, Any] | None, order: Sequence[int], photos: Sequence[np.ndarray], sizes: Mapping[int, tuple[int, int]]
) -> tuple[int, tuple[AuthenticationPoint, ...]] | None:
    """A product's authentication points in the pixels of its kept (reduced) reference photo, for the build."""
    from ..inspection.points import points_from_boxes

    if spec is None or spec["reference"] not in order:
        return None
    i = order.index(spec["reference"])
    h, w = photos[i].shape[:2]
    if spec.get("fractions"):
        sx, sy = float(w), float(h)
    else:
        ow, oh = sizes.get(spec["reference"], (w, h))
        sx, sy = w / ow, h / oh
    return i, tuple(pt.scaled(sx, sy) for pt in points_from_boxes(spec["boxes"]))


def _checked_points(raw: Any) -> dict[str, Any]:
    """A saved authentication-point spec, checked (IndexFormatError-worthy errors raise ValueError/TypeError/KeyError)."""
    from ..inspection.points import points_from_boxes

    if not isinstance(raw, dict):
        raise TypeError("authentication points are not an object")
    boxes = {pt.name: list(pt.box) for pt in points_from_boxes(raw["boxes"])}
    return {"reference": int(raw["reference"]), "fractions": bool(raw.get("fractions", False)), "boxes": boxes}


def _reads_another_word(result: InspectionResult) -> bool:
    """Whether the listing surely reads another word where one of the template's words sits."""
    return any(r.confidence >= OTHER_WORD_CONFIDENCE and r.mismatch > OTHER_WORD_MISMATCH for r in result.text)


def _full_resolution(listing: Listing | ImageSource) -> np.ndarray:
    """The listing's pixels at full decode resolution (its source decoded again when it has one)."""
    if isinstance(listing, Listing):
        source = listing.source if listing.source is not None else listing.image
    else:
        source = listing
    return np.ascontiguousarray(np.asarray(decode_image(source).image))


def _reduced_jpeg(image: Image.Image) -> bytes:
    scale = REFERENCE_SIDE / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:48] or "product"
