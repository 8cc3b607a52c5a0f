"""ReferenceIndex: reference photos as FAISS vectors + FAISS binary perceptual hashes + SQLite metadata.

Vectors are float32 rows, L2-normalised by the caller (``Embedder.embed`` does it); similarity is
their inner product, the cosine. Every reference gets a stable int64 id, assigned here in increasing
order and never reused, even after removal.

Index type (``factory``), chosen by size unless given:

* ``"auto"`` (default): exact ``Flat`` (inner product) while the index holds fewer than
  :data:`EXACT_MAX_REFS` (20k) references — at 1280-d that is ~5 ms per single query at 10k,
  ~10 ms at 20k; from then on :func:`auto_factory`: HNSW32 over scalar-quantised vectors,
  ``HNSW32,SQ8`` for dim ≤ 512 and ``HNSW32,SQ6`` above. The switch happens inside the
  :meth:`~ReferenceIndex.add` that crosses the threshold: the exact vectors are still in the Flat
  index then, so the quantiser is trained on them (up to 100k, seeded) and nothing else is kept — no
  float copy of the vectors on the side (that would cost 2-4 bytes × dim per reference). A scalar
  quantiser under HNSW needs no retraining as the index grows, so there are no size-triggered
  rebuilds later. It never switches back. Why HNSW: see :mod:`authvision.faiss_tools`.
* an explicit ``faiss.index_factory`` string: ``"Flat"`` stays exact forever; an IVF family string
  (``"IVF1024,SQ8"``, ``"PCA256,IVF4096,SQ8"``, ``"OPQ64_256,IVF4096,PQ64"``) or an HNSW family one
  (``"HNSW32,SQ8"``, ``"HNSW32,Flat"``) is used as soon as there are enough references to train it
  (39 per IVF list / PQ centroid, at least 1000); until then references wait in an exact Flat index.
  Anything else (``LSH``, ``Refine``, ``IDMap``...) is refused with a ValueError.

Approximate indexes report similarities as ``1 - L2² / 2`` on the quantised vectors: estimates (SQ8:
within ~0.003 of the exact cosine). Calibrate on the index type you run (:attr:`ReferenceIndex.factory`).

Removal works for every type: Flat and IVF delete in place (``remove_ids``); HNSW cannot delete, so
removed ids become tombstones — excluded at query time with an ``IDSelector`` and rebuilt away (from
the stored quantised vectors, same quantiser) once they pass :data:`TOMBSTONE_REBUILD_FRACTION` of
the graph.

Searches take per-call parameters (:class:`SearchParams`); ``brand=`` restricts a search to that
brand's references without missing any. When fewer than ``k`` references qualify, ids are ``-1``
and similarities :data:`PAD_SIMILARITY` (-1.0, the lowest cosine — finite, so results stay JSON-safe).

Thread safety: a writer-preferring readers-writer lock (:mod:`authvision._rwlock`). Any number of
threads may search, look up or save at once; ``add`` and ``remove`` wait for them and run alone
(an ``add`` that switches to approximate, or a ``remove`` that rebuilds a graph, for that long).

Persistence: ``save(dir)`` writes ``vectors.faiss``, ``hashes.faiss``, ``metadata.sqlite`` and
``manifest.json`` atomically (see :mod:`authvision._storage`); ``load`` checks the format version and
the model sha256, verifies every file's sha256 before FAISS or SQLite parse it, and never unpickles
(see :mod:`authvision.index_store`). Argument checks live in :mod:`authvision.index_checks`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from . import faiss_tools as ft
from . import index_checks as checks
from ._metadata import Metadata
from ._rwlock import RWLock
from ._storage import load_consistent, read_manifest, read_verified, write_directory
from ._version import __version__
from .errors import IncompatibleModelError, UnknownReferenceError
from .faiss_tools import auto_factory
from .hashing import DUPLICATE_MAX_DISTANCE, HASH_BYTES, HASH_VERSION
from .index_store import FORMAT_NAME, FORMAT_VERSION, index_files, read_saved
from .index_types import LABELS, Label, OnDuplicate, Reference, SearchParams, SearchResult, new_rows
from .signing import KeyArg, note_unauthenticated, resolve_keys

__all__ = [
    "DEFAULT_EF_SEARCH",
    "DEFAULT_NPROBE",
    "EXACT_MAX_REFS",
    "LABELS",
    "PAD_SIMILARITY",
    "Label",
    "OnDuplicate",
    "Reference",
    "ReferenceIndex",
    "SearchParams",
    "SearchResult",
    "auto_factory",
]

LOG = logging.getLogger(__name__)

EXACT_MAX_REFS = 20_000
"""``factory="auto"`` searches exactly below this many references (Flat: ~5 ms per query at 1280-d)."""

DEFAULT_EF_SEARCH = 64
"""HNSW ``efSearch`` when :class:`SearchParams` gives none. At 1M references it gave recall@10 0.962
(256-d, SQ8, 0.23-0.57 ms) and 0.947 (1280-d, SQ6, 1.0 ms); ``SearchParams(ef_search=128)`` buys
0.98 / 0.97 for about twice the time (benchmarks/index_search.py)."""

DEFAULT_NPROBE = 32
"""IVF ``nprobe`` when :class:`SearchParams` gives none (capped at the number of lists)."""

TOMBSTONE_REBUILD_FRACTION = 0.2
"""An HNSW graph is rebuilt once removed-but-present references pass this share of it."""

PAD_SIMILARITY = -1.0
"""Similarity reported next to the ``-1`` ids that pad a result."""


class ReferenceIndex:
    """Reference photos: embeddings for similarity, perceptual hashes for re-use, metadata for evidence.

    Args:
        dim: embedding dimension (``Embedder.dim``).
        factory: ``"auto"`` (exact while small, then :func:`auto_factory`) or a ``faiss.index_factory``
            string; see the module docstring.
        model_sha256: sha256 of the embedding model; :meth:`load` can refuse an index built with
            another model.
        hash_version: the perceptual-hash definition of the hashes it will hold
            (:data:`authvision.hashing.HASH_VERSIONS`); kept in its saves, so a checker hashes its
            listings as its references were hashed.
    """

    def __init__(self, dim: int, *, factory: str = "auto", model_sha256: str | None = None, hash_version: int = HASH_VERSION) -> None:
        dim = checks.check_positive_int("dim", dim)
        factory = checks.check_factory(factory)
        checks.check_optional_type("model_sha256", model_sha256, str)
        hash_version = checks.check_hash_version(hash_version)
        min_train = 0
        if factory != "auto":
            probe, kind = ft.new_index(dim, factory)  # validates the string now, not at the switch
            min_train = ft.min_train(probe, kind)
        index, kind = ft.new_index(dim, "Flat")
        self._setup(
            dim=dim,
            requested=factory,
            model_sha256=model_sha256,
            factory="Flat",
            index=index,
            hashes=faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(8 * HASH_BYTES)),
            metadata=Metadata(),
            next_id=0,
            min_train=min_train,
            hash_version=hash_version,
        )
        if factory != "auto" and factory != "Flat" and min_train == 0:
            self._index, self._kind = ft.new_index(self._dim, factory)  # nothing to train: use it at once
            self._factory = factory

    def _setup(self, *, dim: int, requested: str, model_sha256: str | None, factory: str, index: faiss.Index,
               hashes: faiss.IndexBinary, metadata: Metadata, next_id: int, min_train: int, hash_version: int) -> None:
        self._dim = dim
        self._hash_version = hash_version
        self._requested = requested
        self._model_sha256 = model_sha256
        self._factory = factory
        self._index = index
        self._kind = ft.kind_of(index)
        self._hashes = hashes
        self._meta = metadata
        self._next_id = next_id
        self._min_train = min_train
        self._count = metadata.count()
        self._tombstones = np.array(metadata.tombstones(), dtype=np.int64)
        self._lock = RWLock()
        self._save_lock = threading.Lock()
        self._filter_cache: dict[str, np.ndarray] = {}
        self._filter_cache_lock = threading.Lock()

    # -- properties --------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def model_sha256(self) -> str | None:
        """sha256 of the embedding model the vectors come from (None: not recorded)."""
        return self._model_sha256

    @property
    def hash_version(self) -> int:
        """The perceptual-hash definition of its hashes (:func:`authvision.hashing.perceptual_hashes`'s
        ``version``): 1 for indexes saved before version 2 existed, which keep it."""
        return self._hash_version

    def bind_model(self, model_sha256: str) -> None:
        """Record the embedding model of an index created without one; a different model is refused."""
        checks.check_sha256("model_sha256", model_sha256)
        with self._lock.write():
            if self._model_sha256 is None:
                self._model_sha256 = model_sha256
            elif self._model_sha256 != model_sha256:
                raise IncompatibleModelError(
                    f"this index holds vectors of model {self._model_sha256[:12]}…, not of {model_sha256[:12]}…: "
                    "rebuild it with the model you want to check with"
                )

    @property
    def factory(self) -> str:
        """The FAISS factory string in use now (``"Flat"`` while exact)."""
        return self._factory

    @property
    def requested_factory(self) -> str:
        """What the index was created with: ``"auto"`` or an explicit factory string."""
        return self._requested

    @property
    def is_exact(self) -> bool:
        return self._factory == "Flat"

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"ReferenceIndex(dim={self._dim}, factory={self._factory!r}, references={self._count})"

    def info(self) -> dict[str, Any]:
        """A JSON-able summary (for ``authvision index info``)."""
        with self._lock.read():
            return {
                "references": self._count,
                "dim": self._dim,
                "factory": self._factory,
                "requested_factory": self._requested,
                "model_sha256": self._model_sha256,
                "hash_version": self._hash_version,
                "next_id": self._next_id,
                "tombstones": int(self._tombstones.size),
                "hashed": int(self._hashes.ntotal // 2),
                "labels": self._meta.count_by("label"),
                "brands": len(self._meta.count_by("brand")),
                "products": len(self._meta.count_by("product")),
            }

    # -- adding --------------------------------------------------------------------------------------
    def add(
        self,
        vectors: np.ndarray,
        labels: Label | Sequence[Label],
        *,
        products: str | Sequence[str | None] | None = None,
        brands: str | Sequence[str | None] | None = None,
        sources: str | Sequence[str | None] | None = None,
        hashes: np.ndarray | None = None,
        sha256s: Sequence[str | None] | None = None,
        on_duplicate: OnDuplicate = "raise",
    ) -> list[int]:
        """Add references; returns their ids, one per row, in order.

        ``labels``/``products``/``brands``/``sources`` take one str for every row or a sequence of n.
        ``hashes``: uint8 (n, 2, 8) from :func:`~authvision.hashing.perceptual_hashes`. ``sha256s``: hex
        sha256 of each photo's source bytes; a photo already present (or twice in this call) is a
        duplicate: ``on_duplicate="raise"`` raises DuplicateReferenceError naming the existing id,
        ``"skip"`` returns the existing id without adding, ``"allow"`` adds it again.
        """
        x = checks.check_vectors(vectors, self._dim, "vectors")
        n = len(x)
        label_column = checks.check_column("labels", labels, n, allowed=LABELS)
        product_column = checks.check_column("products", products, n)
        brand_column = checks.check_column("brands", brands, n)
        source_column = checks.check_column("sources", sources, n)
        hash_array = checks.check_ref_hashes(hashes, n)
        digests = checks.check_sha256s(sha256s, n)
        checks.check_choice("on_duplicate", on_duplicate, ("raise", "skip", "allow"))
        if n == 0:
            return []

        with self._lock.write():
            if on_duplicate == "allow":
                out, keep = [-1] * n, list(range(n))
            else:
                out, keep = checks.resolve_duplicates(digests, self._meta.by_sha256(d for d in digests if d is not None), on_duplicate)
            new_ids = np.arange(self._next_id, self._next_id + len(keep), dtype=np.int64)
            out = checks.assign_ids(out, keep, new_ids)
            if not keep:
                return out
            columns = {"label": label_column, "product": product_column, "brand": brand_column, "source": source_column}
            rows = new_rows(new_ids, keep, columns, digests, hash_array)
            keep_array = np.array(keep, dtype=np.int64)
            self._meta.insert(rows)
            try:
                self._add_vectors(x[keep_array], new_ids)
                if hash_array is not None:
                    ft.add_hashes(self._hashes, hash_array[keep_array], new_ids)
            except BaseException:
                self._undo_add(new_ids)
                raise
            self._next_id += len(keep)
            self._count += len(keep)
            self._filter_cache.clear()
            return out

    def _undo_add(self, new_ids: np.ndarray) -> None:
        """Take back a failed add: whatever part of it reached FAISS goes (ids are not reused)."""
        self._next_id += len(new_ids)
        ft.remove_hashes(self._hashes, new_ids)
        if self._kind == "hnsw":
            id_map = ft.id_map_of(self._index)
            present = np.intersect1d(new_ids, id_map[-len(new_ids) :])
            self._meta.delete(new_ids.tolist(), tombstone=False)
            self._meta.delete(present.tolist(), tombstone=True)
            self._tombstones = np.union1d(self._tombstones, present)
        else:
            self._meta.delete(new_ids.tolist(), tombstone=False)
            self._index.remove_ids(faiss.IDSelectorBatch(new_ids))

    def _switch_target(self, total: int) -> str | None:
        """The approximate factory to move to once the index holds ``total`` references, if any."""
        if self._factory != "Flat" or self._requested == "Flat":
            return None
        if self._requested == "auto":
            return auto_factory(self._dim) if total >= EXACT_MAX_REFS else None
        return self._requested if total >= max(self._min_train, 1) else None

    def _add_vectors(self, x: np.ndarray, ids: np.ndarray) -> None:
        target = self._switch_target(self._count + len(ids))
        if target is None:
            self._index.add_with_ids(x, ids)
            return
        # Build the approximate index from the exact vectors before touching anything: if training
        # fails, the index is still the old Flat one and the caller's add fails cleanly.
        old_vectors, old_ids = ft.flat_contents(self._index, self._dim)
        vectors = np.concatenate([old_vectors, x])
        all_ids = np.concatenate([old_ids, ids])
        del old_vectors
        index, kind = ft.build_trained(self._dim, target, vectors, all_ids)
        LOG.info("switched the reference index from Flat to %s at %d references", target, len(vectors))
        self._index, self._kind, self._factory = index, kind, target

    # -- removing ------------------------------------------------------------------------------------
    def remove(self, ids: Iterable[int]) -> None:
        """Remove references by id. Any unknown id raises UnknownReferenceError and removes nothing."""
        wanted = np.unique(checks.check_ids(ids))
        if wanted.size == 0:
            return
        with self._lock.write():
            missing = self._meta.missing(wanted.tolist())
            if missing:
                shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
                raise UnknownReferenceError(
                    f"{len(missing)} unknown reference id(s): {shown}; nothing was removed"
                )
            tombstone = self._kind == "hnsw"
            self._meta.delete(wanted.tolist(), tombstone=tombstone)
            if tombstone:
                self._tombstones = np.union1d(self._tombstones, wanted)
            else:
                ft.remove_vectors(self._index, wanted)
            ft.remove_hashes(self._hashes, wanted)
            self._count -= int(wanted.size)
            self._filter_cache.clear()
            if tombstone and self._tombstones.size > TOMBSTONE_REBUILD_FRACTION * self._index.ntotal:
                self._rebuild_graph()

    def _rebuild_graph(self) -> None:
        """Re-add the live references of an HNSW index to an empty copy (same trained quantiser)."""
        fresh = ft.rebuild_without(self._index, self._tombstones)
        LOG.info("rebuilt the %s graph without %d removed references", self._factory, self._tombstones.size)
        self._index = fresh
        self._tombstones = np.empty(0, dtype=np.int64)
        self._meta.clear_tombstones()

    # -- searching -----------------------------------------------------------------------------------
    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        *,
        brand: str | None = None,
        params: SearchParams | None = None,
    ) -> SearchResult:
        """The ``k`` most similar references of each query row (cosine), best first, ``-1`` padded.

        ``brand`` restricts the search to that brand's references. ``params`` tunes approximate
        indexes per call (ignored by exact search).
        """
        q = checks.check_vectors(queries, self._dim, "queries")
        k = checks.check_positive_int("k", k)
        checks.check_optional_type("brand", brand, str)
        checks.check_optional_type("params", params, SearchParams)
        params = params or SearchParams()
        with self._lock.read():
            subset = self._brand_ids(brand) if brand is not None else None
            if len(q) == 0 or self._count == 0 or (subset is not None and subset.size == 0):
                distances = np.zeros((len(q), k), dtype=np.float32)
                labels = np.full((len(q), k), -1, dtype=np.int64)
            elif self._kind == "flat":
                distances, labels = ft.search_flat(self._index, q, k, subset)
            elif self._kind == "ivf":
                distances, labels = ft.search_ivf(self._index, q, k, subset, params.nprobe or DEFAULT_NPROBE, self._count)
            else:
                ef_search = params.ef_search or DEFAULT_EF_SEARCH
                distances, labels = ft.search_hnsw(self._index, q, k, subset, self._tombstones, ef_search)
            metric = self._index.metric_type
        similarities = ft.cosine_similarities(distances, labels, metric, pad=PAD_SIMILARITY)
        return SearchResult(similarities, labels.astype(np.int64, copy=False))

    def _brand_ids(self, brand: str) -> np.ndarray:
        cached = self._filter_cache.get(brand)
        if cached is None:
            cached = np.array(self._meta.ids(brand=brand), dtype=np.int64)
            with self._filter_cache_lock:
                self._filter_cache[brand] = cached
        return cached

    def find_duplicates(self, hashes: np.ndarray, max_distance: int = DUPLICATE_MAX_DISTANCE) -> list[list[tuple[int, int]]]:
        """References whose perceptual hash is within ``max_distance`` bits of each query photo.

        ``hashes``: uint8 (n, 2, 8) or (2, 8), from :func:`~authvision.hashing.perceptual_hashes`.
        Returns, per query, ``(ref_id, hamming distance)`` pairs, closest first. A mirrored copy of a
        reference matches too (references index their mirror's hash).
        """
        codes = checks.check_query_hashes(hashes)
        max_distance = checks.check_max_distance(max_distance)
        with self._lock.read():
            if self._hashes.ntotal == 0 or len(codes) == 0:
                return [[] for _ in range(len(codes))]
            limits, distances, labels = self._hashes.range_search(codes, max_distance + 1)  # radius is exclusive
        return ft.closest_per_reference(limits, distances, labels)

    # -- metadata ------------------------------------------------------------------------------------
    def references(self, ids: Iterable[int]) -> list[Reference]:
        """Metadata of references, in the order of ``ids``; an unknown id raises UnknownReferenceError."""
        wanted = checks.check_ids(ids).tolist()
        found = self.lookup(wanted)
        missing = sorted({i for i in wanted if i not in found})
        if missing:
            raise UnknownReferenceError(f"unknown reference id(s): {', '.join(map(str, missing[:10]))}")
        return [found[i] for i in wanted]

    def lookup(self, ids: Iterable[int]) -> dict[int, Reference]:
        """Metadata of those ``ids`` that are live references; unknown ids are left out.

        For readers racing a writer: a search result may name a reference removed since.
        """
        wanted = checks.check_ids(ids).tolist()
        with self._lock.read():
            rows = self._meta.rows(wanted)
        return {ref_id: Reference.from_row(row) for ref_id, row in rows.items()}

    def ids(self, *, brand: str | None = None, product: str | None = None, label: Label | None = None) -> list[int]:
        """Ids of the references matching every filter given (all references if none), ascending."""
        if label is not None:
            checks.check_choice("label", label, LABELS)
        with self._lock.read():
            return self._meta.ids(brand=brand, product=product, label=label)

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, directory: str | Path, *, signing_key: KeyArg = None) -> None:
        """Write the index to ``directory`` atomically (a crash leaves the previous save loadable); signed
        with ``signing_key`` or ``AUTHVISION_CHECKER_KEY`` when one is set (:mod:`authvision.signing`)."""
        keys = resolve_keys(signing_key)
        with self._save_lock:
            files, fields = self.snapshot()
            write_directory(directory, files, {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **fields}, signing_keys=keys)

    def snapshot(self) -> tuple[dict[str, bytes | memoryview], dict[str, Any]]:
        """A consistent copy of the index as files and manifest fields, for savers that bundle it.

        Searches go on meanwhile; adds and removes wait until the copy is taken.
        """
        with self._lock.read():
            files = index_files(self._index, self._hashes, self._meta)
            fields = {
                "library_version": __version__,
                "dim": self._dim,
                "factory": self._factory,
                "requested_factory": self._requested,
                "count": self._count,
                "next_id": self._next_id,
                "tombstones": int(self._tombstones.size),
                "model_sha256": self._model_sha256,
                "hash_version": self._hash_version,
                "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        return files, fields

    @classmethod
    def load(cls, directory: str | Path, *, expected_model_sha256: str | None = None, signing_key: KeyArg = None) -> ReferenceIndex:
        """Load a saved index; files are verified against the manifest before anything parses them.

        Raises IndexFormatError for a missing, truncated, modified or unknown-version save, and
        IncompatibleModelError when ``expected_model_sha256`` differs from the model it was built with,
        SignatureError when a key (``signing_key`` or ``AUTHVISION_CHECKER_KEY``) is set and the save is not signed by it.
        """
        keys = resolve_keys(signing_key)

        def load_from(path: Path) -> ReferenceIndex:  # again if a concurrent save replaces the directory meanwhile
            manifest = read_manifest(path, format_name=FORMAT_NAME, supported_versions=(1, FORMAT_VERSION), signing_keys=keys, what="index")
            if not keys:
                note_unauthenticated("an index", path)
            return cls.restore(
                manifest,
                lambda name: read_verified(path, manifest, name),
                where=path,
                expected_model_sha256=expected_model_sha256,
            )

        return load_consistent(directory, load_from, what="index")

    @classmethod
    def restore(
        cls,
        fields: dict[str, Any],
        read: Callable[[str], bytes],
        *,
        where: Path,
        expected_model_sha256: str | None = None,
    ) -> ReferenceIndex:
        """Rebuild an index from :meth:`snapshot` fields and a reader of its (verified) files."""
        self = cls.__new__(cls)
        self._setup(**vars(read_saved(fields, read, where, expected_model_sha256)))
        return self
