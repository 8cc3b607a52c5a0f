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
  rebuilds later. It never switches back.

  Why HNSW (``benchmarks/index_search.py``, 2 cores, product-clustered synthetic vectors): at 1M
  256-d references ``HNSW32,SQ8`` at efSearch 64 gives recall@10 0.962 against exact search at a
  single-query p50 of 0.23-0.57 ms (quiet vs loaded machine), 528 bytes per reference — the
  issue's target; IVF needed nprobe 256 (2-5.7 ms) for 0.95. At 1280-d no type tried meets all three targets on this machine: SQ4 codes
  cap recall near 0.95, PCA256 near 0.92, IVF is 5-10× slower at equal recall; ``HNSW32,SQ6``
  (1.2 KB per reference) is the compromise, see the benchmark table.
* an explicit ``faiss.index_factory`` string: ``"Flat"`` stays exact forever; an IVF family string
  (``"IVF1024,SQ8"``, ``"PCA256,IVF4096,SQ8"``, ``"OPQ64_256,IVF4096,PQ64"``) or an HNSW family one
  (``"HNSW32,SQ8"``, ``"HNSW32,Flat"``) is used as soon as there are enough references to train it
  (39 per IVF list / PQ centroid, at least 1000); until then references wait in an exact Flat index.
  Anything else (``LSH``, ``Refine``, ``IDMap``...) is refused with a ValueError.

Approximate indexes use the L2 metric (for unit vectors ``cos = 1 - L2² / 2``, the same ranking;
PCA centres the data, which would bias inner products), and similarities are reported as
``1 - L2² / 2`` on the quantised vectors: estimates (SQ8: within ~0.003 of the exact cosine).
Calibrate the checker on the index type it will run with (:attr:`ReferenceIndex.factory`).

Removal works for every type: Flat and IVF delete in place (``remove_ids``); HNSW cannot delete, so
removed ids become tombstones — excluded at query time with an ``IDSelector`` and rebuilt away (from
the stored quantised vectors, same quantiser) once they pass :data:`TOMBSTONE_REBUILD_FRACTION` of
the graph.

Searches take per-call FAISS parameters (``SearchParametersIVF`` / ``SearchParametersHNSW``, never
``index.nprobe =``). ``brand=`` restricts a search with an ``IDSelectorBatch``; so that restricted
searches do not miss references, IVF widens ``nprobe`` in proportion to how few references the brand
holds, and HNSW scans a small brand's quantised vectors exhaustively (a graph walk filtered to a few
percent of its nodes finds too few of them).

Padding: when fewer than ``k`` references qualify, ids are ``-1`` and similarities
:data:`PAD_SIMILARITY` (-1.0, the lowest cosine — finite, so results stay JSON-safe; skip ``id == -1``).

Thread safety: a writer-preferring readers-writer lock. Any number of threads may search, look up
or save at once; ``add`` and ``remove`` wait for them and run alone (FAISS is not safe for search
during add). An ``add`` that crosses the exact→approximate threshold, or a ``remove`` that triggers
a tombstone rebuild, holds the write lock for as long as building the new index takes.

Persistence: ``save(dir)`` writes ``vectors.faiss``, ``hashes.faiss``, ``metadata.sqlite`` and
``manifest.json`` atomically (see :mod:`authvision._storage`); ``load`` checks the format version and
the model sha256, verifies every file's sha256 before FAISS or SQLite parse it, and never unpickles.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, NamedTuple

import faiss
import numpy as np

from ._metadata import Metadata, Row
from ._storage import read_manifest, read_verified, resolve_directory, write_directory
from .errors import DuplicateReferenceError, IncompatibleModelError, IndexFormatError, UnknownReferenceError
from .hashing import DUPLICATE_MAX_DISTANCE, HASH_BYTES

__all__ = [
    "DEFAULT_EF_SEARCH",
    "DEFAULT_NPROBE",
    "EXACT_MAX_REFS",
    "PAD_SIMILARITY",
    "Reference",
    "ReferenceIndex",
    "SearchParams",
    "SearchResult",
    "auto_factory",
]

LOG = logging.getLogger(__name__)

FORMAT_NAME = "authvision.ReferenceIndex"
FORMAT_VERSION = 1

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

Label = Literal["genuine", "fake"]
OnDuplicate = Literal["raise", "skip", "allow"]
LABELS: tuple[str, ...] = ("genuine", "fake")

_VECTORS_FILE = "vectors.faiss"
_HASHES_FILE = "hashes.faiss"
_METADATA_FILE = "metadata.sqlite"
_NORM_TOLERANCE = 2e-3
_TRAIN_SAMPLE_MAX = 100_000
_ADD_CHUNK = 1 << 16
_MIN_TRAIN = 1000
_EXACT_FILTER_MAX = 20_000  # HNSW: brands up to this size are scanned exhaustively ...
_EXACT_FILTER_FRACTION = 0.05  # ... and so are brands holding up to this share of the graph
_EF_SEARCH_MAX = 4096
_SHA256 = re.compile(r"[0-9a-f]{64}")
_UNSUPPORTED = re.compile(r"IDMap|Refine|RFlat|LSH|IndexBinary", re.IGNORECASE)


def auto_factory(dim: int) -> str:
    """The approximate index ``factory="auto"`` switches to once exact search gets slow.

    HNSW32 over 8-bit scalar quantisation up to 512 dims (528 B per 256-d reference); 6-bit above,
    where 4 bits cost too much recall (see the module docstring for the measurements).
    """
    return "HNSW32,SQ8" if dim <= 512 else "HNSW32,SQ6"


@dataclass(frozen=True)
class SearchParams:
    """Per-call accuracy/speed knobs: IVF ``nprobe`` lists, HNSW ``efSearch`` (``ef_search``) candidates.

    ``None`` means the default (:data:`DEFAULT_NPROBE`, :data:`DEFAULT_EF_SEARCH`); a knob that does
    not apply to the index in use is ignored, so callers need not know which type is in use.
    """

    nprobe: int | None = None
    ef_search: int | None = None

    def __post_init__(self) -> None:
        for name in ("nprobe", "ef_search"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1):
                raise ValueError(f"SearchParams.{name} must be a positive int or None, got {value!r}")


class SearchResult(NamedTuple):
    """``similarities`` float32 (n, k), best first; ``ids`` int64 (n, k); ``-1`` ids pad."""

    similarities: np.ndarray
    ids: np.ndarray


@dataclass(frozen=True)
class Reference:
    """What the index knows about one reference photo."""

    ref_id: int
    label: Label
    product: str | None
    brand: str | None
    source: str | None
    sha256: str | None
    hashes: tuple[str, str] | None  # hex pHash of the photo and of its mirror
    added_at: str  # ISO 8601, UTC

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hashes"] = list(self.hashes) if self.hashes is not None else None
        return out


class _RWLock:
    """Many readers or one writer; a waiting writer blocks new readers (no writer starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


# -- FAISS plumbing ------------------------------------------------------------------------------


def _kind_of(index: faiss.Index) -> str:
    """'flat', 'ivf' or 'hnsw': what sits under id maps and pre-transforms."""
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIDMap2):
        inner = faiss.downcast_index(inner.index)
    while isinstance(inner, faiss.IndexPreTransform):
        inner = faiss.downcast_index(inner.index)
    if isinstance(inner, faiss.IndexFlat):
        return "flat"
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    return type(inner).__name__


def _new_index(dim: int, factory: str) -> tuple[faiss.Index, str]:
    """A fresh (untrained) FAISS index for ``factory`` and its kind. Flat/HNSW get an IDMap2 layer."""
    if _UNSUPPORTED.search(factory):
        raise ValueError(
            f"factory {factory!r} is not supported: ReferenceIndex maps ids itself and must remove "
            "references; use 'Flat', an IVF string ('IVF1024,SQ8', 'PCA256,IVF4096,SQ8') or an HNSW one ('HNSW32,SQ8')"
        )
    metric = faiss.METRIC_INNER_PRODUCT if factory == "Flat" else faiss.METRIC_L2
    try:
        probe = faiss.index_factory(dim, factory, metric)
    except RuntimeError as exc:
        raise ValueError(f"faiss.index_factory cannot build {factory!r} for dim {dim}: {exc}") from exc
    kind = _kind_of(probe)
    if kind not in ("flat", "ivf", "hnsw"):
        raise ValueError(
            f"factory {factory!r} builds a {kind}; ReferenceIndex supports Flat, IVF and HNSW index types"
        )
    if kind == "ivf":
        return probe, kind  # IVF stores ids natively and removes in place
    return faiss.index_factory(dim, "IDMap2," + factory, metric), kind


def _min_train(index: faiss.Index, kind: str) -> int:
    if index.is_trained:
        return 0
    need = _MIN_TRAIN
    if kind == "ivf":
        ivf = faiss.extract_index_ivf(index)
        need = max(need, 39 * ivf.nlist)
        pq = getattr(faiss.downcast_index(ivf), "pq", None)
        if pq is not None:
            need = max(need, 39 * pq.ksub)
    return need


def _hnsw_parts(index: faiss.Index) -> tuple[faiss.IndexIDMap2, list[faiss.VectorTransform], faiss.IndexHNSW]:
    idmap = faiss.downcast_index(index)
    inner = faiss.downcast_index(idmap.index)
    chain: list[faiss.VectorTransform] = []
    while isinstance(inner, faiss.IndexPreTransform):
        chain.extend(inner.chain.at(i) for i in range(inner.chain.size()))
        inner = faiss.downcast_index(inner.index)
    return idmap, chain, inner


def _to_bytes(array: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(array, dtype=np.uint8))


# -- input checks ----------------------------------------------------------------------------------


def _check_vectors(vectors: Any, dim: int, name: str) -> np.ndarray:
    if not isinstance(vectors, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of shape (n, {dim}), got {type(vectors).__name__}")
    if vectors.dtype.kind != "f":
        raise TypeError(f"{name} must hold floats (float32), got dtype {vectors.dtype}")
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        hint = f"; for one vector use {name}[None, :]" if vectors.ndim == 1 and vectors.shape[0] == dim else ""
        raise ValueError(f"{name} must have shape (n, {dim}), got {vectors.shape}{hint}")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    squared = np.einsum("ij,ij->i", x, x)  # NaN and inf show up here too: one pass over the data
    if not np.isfinite(squared).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    bad = np.flatnonzero(np.abs(np.sqrt(squared) - 1.0) > _NORM_TOLERANCE)
    if bad.size:
        raise ValueError(
            f"{name} rows must be L2-normalised; row {bad[0]} has norm {math.sqrt(squared[bad[0]]):.4f} "
            f"({bad.size} such rows). Use Embedder.embed, or faiss.normalize_L2 on float32 rows"
        )
    return x


def _check_column(name: str, values: Any, n: int, *, allowed: tuple[str, ...] | None = None) -> list[str | None]:
    """A per-reference text column: None, one str for every row, or a sequence of n str/None."""
    if values is None:
        column: list[Any] = [None] * n
    elif isinstance(values, str):
        column = [values] * n
    elif isinstance(values, (np.ndarray, Sequence)) and not isinstance(values, (bytes, bytearray)):
        column = list(values)
        if len(column) != n:
            raise ValueError(f"{name} has {len(column)} entries for {n} vectors")
    else:
        raise TypeError(f"{name} must be a str, a sequence of str, or None; got {type(values).__name__}")
    for i, value in enumerate(column):
        if isinstance(value, np.str_):
            column[i] = value = str(value)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name}[{i}] must be a str or None, got {type(value).__name__}")
        if allowed is not None and value not in allowed:
            raise ValueError(f"{name}[{i}] is {value!r}; expected one of {', '.join(map(repr, allowed))}")
    return column


def _check_ref_hashes(hashes: Any, n: int) -> np.ndarray | None:
    if hashes is None:
        return None
    array = np.asarray(hashes)
    if array.dtype != np.uint8:
        raise TypeError(f"hashes must be uint8 (from authvision.hashing.perceptual_hashes), got {array.dtype}")
    if array.shape != (n, 2, HASH_BYTES):
        raise ValueError(f"hashes must have shape ({n}, 2, {HASH_BYTES}) (one perceptual_hashes() per vector), got {array.shape}")
    return np.ascontiguousarray(array)


def _check_query_hashes(hashes: Any) -> np.ndarray:
    array = np.asarray(hashes)
    if array.dtype != np.uint8:
        raise TypeError(f"hashes must be uint8 (from authvision.hashing.perceptual_hashes), got {array.dtype}")
    if array.shape == (2, HASH_BYTES):
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (2, HASH_BYTES):
        raise ValueError(f"hashes must have shape (n, 2, {HASH_BYTES}) or (2, {HASH_BYTES}), got {array.shape}")
    return np.ascontiguousarray(array[:, 0])  # row 0 meets both rows of every reference


def _check_ids(ids: Any) -> np.ndarray:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (Iterable, np.ndarray)):
        raise TypeError(f"ids must be an iterable of int, got {type(ids).__name__}")
    values = list(ids.tolist() if isinstance(ids, np.ndarray) else ids)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"reference ids are int, got {value!r} ({type(value).__name__})")
    return np.array(values, dtype=np.int64)


def _library_version() -> str:
    try:
        from . import __version__

        return str(__version__)
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        return version("authvision")
    except Exception:  # noqa: BLE001 - any failure means "unknown"; never block a save on it
        return "0+unknown"


def _newer(saved: str, ours: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3])

    try:
        return parts(saved) > parts(ours)
    except ValueError:
        return False


# -- the index -------------------------------------------------------------------------------------


class ReferenceIndex:
    """Reference photos: embeddings for similarity, perceptual hashes for re-use, metadata for evidence.

    Args:
        dim: embedding dimension (``Embedder.dim``).
        factory: ``"auto"`` (exact while small, then :func:`auto_factory`) or a ``faiss.index_factory``
            string; see the module docstring.
        model_sha256: sha256 of the embedding model; :meth:`load` can refuse an index built with
            another model.
    """

    def __init__(self, dim: int, *, factory: str = "auto", model_sha256: str | None = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if not isinstance(factory, str) or not factory.strip():
            raise TypeError(f"factory must be 'auto' or a faiss index_factory string, got {factory!r}")
        if model_sha256 is not None and not isinstance(model_sha256, str):
            raise TypeError(f"model_sha256 must be a str or None, got {type(model_sha256).__name__}")
        factory = factory.strip()
        min_train = 0
        if factory != "auto":
            probe, kind = _new_index(int(dim), factory)  # validates the string now, not at the switch
            min_train = _min_train(probe, kind)
        index, kind = _new_index(int(dim), "Flat")
        self._setup(
            dim=int(dim),
            requested=factory,
            model_sha256=model_sha256,
            factory="Flat",
            index=index,
            hashes=faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(8 * HASH_BYTES)),
            metadata=Metadata(),
            next_id=0,
            min_train=min_train,
        )
        if factory != "auto" and factory != "Flat" and min_train == 0:
            self._index, self._kind = _new_index(self._dim, factory)  # nothing to train: use it at once
            self._factory = factory

    def _setup(self, *, dim: int, requested: str, model_sha256: str | None, factory: str, index: faiss.Index,
               hashes: faiss.IndexBinary, metadata: Metadata, next_id: int, min_train: int) -> None:
        self._dim = dim
        self._requested = requested
        self._model_sha256 = model_sha256
        self._factory = factory
        self._index = index
        self._kind = _kind_of(index)
        self._hashes = hashes
        self._meta = metadata
        self._next_id = next_id
        self._min_train = min_train
        self._count = metadata.count()
        self._tombstones = np.array(metadata.tombstones(), dtype=np.int64)
        self._lock = _RWLock()
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

    def bind_model(self, model_sha256: str) -> None:
        """Record the embedding model of an index created without one; a different model is refused."""
        if not isinstance(model_sha256, str) or not _SHA256.fullmatch(model_sha256):
            raise ValueError(f"model_sha256 must be 64 lowercase hex digits, got {model_sha256!r}")
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
        x = _check_vectors(vectors, self._dim, "vectors")
        n = len(x)
        label_column = _check_column("labels", labels, n, allowed=LABELS)
        product_column = _check_column("products", products, n)
        brand_column = _check_column("brands", brands, n)
        source_column = _check_column("sources", sources, n)
        hash_array = _check_ref_hashes(hashes, n)
        digests = _check_column("sha256s", sha256s, n)
        for i, digest in enumerate(digests):
            if digest is not None and not _SHA256.fullmatch(digest):
                raise ValueError(f"sha256s[{i}] must be 64 lowercase hex digits, got {digest!r}")
        if on_duplicate not in ("raise", "skip", "allow"):
            raise ValueError(f"on_duplicate must be 'raise', 'skip' or 'allow', got {on_duplicate!r}")
        if n == 0:
            return []

        with self._lock.write():
            out: list[int] = [-1] * n
            keep: list[int] = []
            if on_duplicate == "allow":
                keep = list(range(n))
            else:
                existing = self._meta.by_sha256(d for d in digests if d is not None)
                first_in_call: dict[str, int] = {}
                for i, digest in enumerate(digests):
                    if digest is None:
                        keep.append(i)
                    elif digest in existing:
                        if on_duplicate == "raise":
                            raise DuplicateReferenceError(
                                f"vectors[{i}]: this photo (sha256 {digest[:12]}…) is already reference "
                                f"{existing[digest]}; nothing was added. Pass on_duplicate='skip' to get the "
                                "existing id back, or 'allow' to add it again"
                            )
                        out[i] = existing[digest]
                    elif digest in first_in_call:
                        if on_duplicate == "raise":
                            raise DuplicateReferenceError(
                                f"vectors[{i}] and vectors[{first_in_call[digest]}] are the same photo "
                                f"(sha256 {digest[:12]}…); nothing was added. Pass on_duplicate='skip' or 'allow'"
                            )
                        out[i] = -2 - first_in_call[digest]  # resolved below, once ids are assigned
                    else:
                        first_in_call[digest] = i
                        keep.append(i)
            new_ids = np.arange(self._next_id, self._next_id + len(keep), dtype=np.int64)
            for i, ref_id in zip(keep, new_ids.tolist()):
                out[i] = ref_id
            out = [out[-2 - v] if v <= -2 else v for v in out]
            if not keep:
                return out

            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            rows = [
                Row(
                    ref_id=ref_id,
                    label=label_column[i],  # type: ignore[arg-type]
                    product=product_column[i],
                    brand=brand_column[i],
                    source=source_column[i],
                    sha256=digests[i],
                    hash=hash_array[i, 0].tobytes().hex() if hash_array is not None else None,
                    hash_mirror=hash_array[i, 1].tobytes().hex() if hash_array is not None else None,
                    added_at=now,
                )
                for i, ref_id in zip(keep, new_ids.tolist())
            ]
            keep_array = np.array(keep, dtype=np.int64)
            self._meta.insert(rows)
            try:
                self._add_vectors(x[keep_array], new_ids)
                if hash_array is not None:
                    codes = hash_array[keep_array].reshape(-1, HASH_BYTES)
                    self._hashes.add_with_ids(codes, (2 * new_ids[:, None] + np.arange(2)).reshape(-1))
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
        self._hashes.remove_ids(faiss.IDSelectorBatch(np.concatenate([2 * new_ids, 2 * new_ids + 1])))
        if self._kind == "hnsw":
            id_map = faiss.vector_to_array(faiss.downcast_index(self._index).id_map)
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
        idmap = faiss.downcast_index(self._index)
        flat = faiss.downcast_index(idmap.index)
        old_vectors = flat.reconstruct_n(0, flat.ntotal) if flat.ntotal else np.empty((0, self._dim), np.float32)
        old_ids = faiss.vector_to_array(idmap.id_map).astype(np.int64)
        vectors = np.concatenate([old_vectors, x])
        all_ids = np.concatenate([old_ids, ids])
        del old_vectors
        index, kind = _new_index(self._dim, target)
        if not index.is_trained:
            rng = np.random.default_rng(0)
            sample = vectors
            if len(vectors) > _TRAIN_SAMPLE_MAX:
                sample = vectors[np.sort(rng.choice(len(vectors), _TRAIN_SAMPLE_MAX, replace=False))]
            index.train(sample)
        for start in range(0, len(vectors), _ADD_CHUNK):
            index.add_with_ids(vectors[start : start + _ADD_CHUNK], all_ids[start : start + _ADD_CHUNK])
        LOG.info("switched the reference index from Flat to %s at %d references", target, len(vectors))
        self._index, self._kind, self._factory = index, kind, target

    # -- removing ------------------------------------------------------------------------------------
    def remove(self, ids: Iterable[int]) -> None:
        """Remove references by id. Any unknown id raises UnknownReferenceError and removes nothing."""
        wanted = np.unique(_check_ids(ids))
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
                removed = self._index.remove_ids(faiss.IDSelectorBatch(wanted))
                if removed != wanted.size:  # a broken invariant, not a user error
                    raise RuntimeError(f"FAISS removed {removed} vectors for {wanted.size} ids")
            hash_ids = np.concatenate([2 * wanted, 2 * wanted + 1])
            self._hashes.remove_ids(faiss.IDSelectorBatch(hash_ids))
            self._count -= int(wanted.size)
            self._filter_cache.clear()
            if tombstone and self._tombstones.size > TOMBSTONE_REBUILD_FRACTION * self._index.ntotal:
                self._rebuild_graph()

    def _rebuild_graph(self) -> None:
        """Re-add the live references of an HNSW index to an empty copy (same trained quantiser)."""
        old = self._index
        fresh = faiss.deserialize_index(faiss.serialize_index(old))
        fresh.reset()
        idmap, _, _ = _hnsw_parts(old)
        inner = idmap.index
        id_map = faiss.vector_to_array(idmap.id_map).astype(np.int64)
        for start in range(0, inner.ntotal, _ADD_CHUNK):
            stop = min(inner.ntotal, start + _ADD_CHUNK)
            chunk_ids = id_map[start:stop]
            live = ~np.isin(chunk_ids, self._tombstones)
            if live.any():
                vectors = inner.reconstruct_n(start, stop - start)
                fresh.add_with_ids(np.ascontiguousarray(vectors[live]), chunk_ids[live])
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
        q = _check_vectors(queries, self._dim, "queries")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if brand is not None and not isinstance(brand, str):
            raise TypeError(f"brand must be a str or None, got {type(brand).__name__}")
        if params is not None and not isinstance(params, SearchParams):
            raise TypeError(f"params must be a SearchParams or None, got {type(params).__name__}")
        k = int(k)
        params = params or SearchParams()
        with self._lock.read():
            subset = self._brand_ids(brand) if brand is not None else None
            if len(q) == 0 or self._count == 0 or (subset is not None and subset.size == 0):
                distances = np.zeros((len(q), k), dtype=np.float32)
                labels = np.full((len(q), k), -1, dtype=np.int64)
            elif self._kind == "flat":
                sel = None if subset is None else faiss.SearchParameters(sel=faiss.IDSelectorBatch(subset))
                distances, labels = self._index.search(q, k, params=sel)
            elif self._kind == "ivf":
                distances, labels = self._search_ivf(q, k, subset, params)
            else:
                distances, labels = self._search_hnsw(q, k, subset, params)
            metric_is_ip = self._index.metric_type == faiss.METRIC_INNER_PRODUCT
        similarities = distances if metric_is_ip else np.float32(1.0) - np.float32(0.5) * distances
        np.clip(similarities, -1.0, 1.0, out=similarities)
        similarities[labels < 0] = PAD_SIMILARITY
        return SearchResult(similarities, labels.astype(np.int64, copy=False))

    def _brand_ids(self, brand: str) -> np.ndarray:
        cached = self._filter_cache.get(brand)
        if cached is None:
            cached = np.array(self._meta.ids(brand=brand), dtype=np.int64)
            with self._filter_cache_lock:
                self._filter_cache[brand] = cached
        return cached

    def _search_ivf(self, q: np.ndarray, k: int, subset: np.ndarray | None, params: SearchParams) -> tuple[np.ndarray, np.ndarray]:
        nlist = faiss.extract_index_ivf(self._index).nlist
        nprobe = params.nprobe or DEFAULT_NPROBE
        sel = None
        if subset is not None:
            sel = faiss.IDSelectorBatch(subset)
            # Fewer of the probed lists' entries pass the filter: probe proportionally more lists.
            nprobe = math.ceil(nprobe * self._count / subset.size)
        search_params = faiss.SearchParametersIVF(nprobe=min(nprobe, nlist))
        if sel is not None:
            search_params.sel = sel
        return self._index.search(q, k, params=search_params)

    def _search_hnsw(self, q: np.ndarray, k: int, subset: np.ndarray | None, params: SearchParams) -> tuple[np.ndarray, np.ndarray]:
        ntotal = self._index.ntotal  # includes tombstones
        ef = max(params.ef_search or DEFAULT_EF_SEARCH, k)
        if subset is not None:
            if subset.size <= _EXACT_FILTER_MAX or subset.size <= _EXACT_FILTER_FRACTION * ntotal:
                return self._scan_hnsw(q, k, faiss.IDSelectorBatch(subset))
            sel: faiss.IDSelector | None = faiss.IDSelectorBatch(subset)
            wanted = subset.size
        elif self._tombstones.size:
            sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(self._tombstones))
            wanted = ntotal - self._tombstones.size
        else:
            sel, wanted = None, ntotal
        search_params = faiss.SearchParametersHNSW(efSearch=min(_EF_SEARCH_MAX, math.ceil(ef * ntotal / wanted)))
        if sel is not None:
            search_params.sel = sel
        distances, labels = self._index.search(q, k, params=search_params)
        if sel is not None:
            # A filtered graph walk can come back short; rescan those queries exhaustively.
            short = np.flatnonzero((labels >= 0).sum(axis=1) < min(k, wanted))
            if short.size:
                distances[short], labels[short] = self._scan_hnsw(q[short], k, sel)
        return distances, labels

    def _scan_hnsw(self, q: np.ndarray, k: int, sel: faiss.IDSelector) -> tuple[np.ndarray, np.ndarray]:
        """Exhaustive search over an HNSW index's stored vectors, restricted to ``sel`` (external ids)."""
        idmap, chain, hnsw = _hnsw_parts(self._index)
        for transform in chain:
            q = transform.apply(q)
        storage = faiss.downcast_index(hnsw.storage)
        translated = faiss.IDSelectorTranslated(idmap.id_map, sel)
        distances, positions = storage.search(np.ascontiguousarray(q), k, params=faiss.SearchParameters(sel=translated))
        id_map = faiss.rev_swig_ptr(idmap.id_map.data(), idmap.id_map.size())
        labels = np.where(positions >= 0, id_map[np.maximum(positions, 0)], -1)
        return distances, labels

    def find_duplicates(self, hashes: np.ndarray, max_distance: int = DUPLICATE_MAX_DISTANCE) -> list[list[tuple[int, int]]]:
        """References whose perceptual hash is within ``max_distance`` bits of each query photo.

        ``hashes``: uint8 (n, 2, 8) or (2, 8), from :func:`~authvision.hashing.perceptual_hashes`.
        Returns, per query, ``(ref_id, hamming distance)`` pairs, closest first. A mirrored copy of a
        reference matches too (references index their mirror's hash).
        """
        codes = _check_query_hashes(hashes)
        if isinstance(max_distance, bool) or not isinstance(max_distance, (int, np.integer)) or not 0 <= max_distance <= 64:
            raise ValueError(f"max_distance must be an int in [0, 64], got {max_distance!r}")
        with self._lock.read():
            if self._hashes.ntotal == 0 or len(codes) == 0:
                return [[] for _ in range(len(codes))]
            limits, distances, labels = self._hashes.range_search(codes, int(max_distance) + 1)  # radius is exclusive
        out: list[list[tuple[int, int]]] = []
        for i in range(len(codes)):
            best: dict[int, int] = {}
            for label, distance in zip(labels[limits[i] : limits[i + 1]].tolist(), distances[limits[i] : limits[i + 1]].tolist()):
                ref_id, distance = label // 2, int(distance)
                if distance < best.get(ref_id, 65):
                    best[ref_id] = distance
            out.append(sorted(best.items(), key=lambda item: (item[1], item[0])))
        return out

    # -- metadata ------------------------------------------------------------------------------------
    def references(self, ids: Iterable[int]) -> list[Reference]:
        """Metadata of references, in the order of ``ids``; an unknown id raises UnknownReferenceError."""
        wanted = _check_ids(ids).tolist()
        found = self.lookup(wanted)
        missing = sorted({i for i in wanted if i not in found})
        if missing:
            raise UnknownReferenceError(f"unknown reference id(s): {', '.join(map(str, missing[:10]))}")
        return [found[i] for i in wanted]

    def lookup(self, ids: Iterable[int]) -> dict[int, Reference]:
        """Metadata of those ``ids`` that are live references; unknown ids are left out.

        For readers racing a writer: a search result may name a reference removed since.
        """
        wanted = _check_ids(ids).tolist()
        with self._lock.read():
            rows = self._meta.rows(wanted)
        return {
            ref_id: Reference(
                ref_id=row.ref_id,
                label=row.label,  # type: ignore[arg-type]
                product=row.product,
                brand=row.brand,
                source=row.source,
                sha256=row.sha256,
                hashes=(row.hash, row.hash_mirror) if row.hash is not None else None,
                added_at=row.added_at,
            )
            for ref_id, row in rows.items()
        }

    def ids(self, *, brand: str | None = None, product: str | None = None, label: Label | None = None) -> list[int]:
        """Ids of the references matching every filter given (all references if none), ascending."""
        if label is not None and label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {label!r}")
        with self._lock.read():
            return self._meta.ids(brand=brand, product=product, label=label)

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write the index to ``directory`` atomically (a crash leaves the previous save loadable)."""
        with self._save_lock:
            files, fields = self.snapshot()
            write_directory(directory, files, {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **fields})

    def snapshot(self) -> tuple[dict[str, bytes | memoryview], dict[str, Any]]:
        """A consistent copy of the index as files and manifest fields, for savers that bundle it.

        Searches go on meanwhile; adds and removes wait until the copy is taken.
        """
        with self._lock.read():
            files = {
                _VECTORS_FILE: _to_bytes(faiss.serialize_index(self._index)),
                _HASHES_FILE: _to_bytes(faiss.serialize_index_binary(self._hashes)),
                _METADATA_FILE: self._meta.to_bytes(),
            }
            fields = {
                "library_version": _library_version(),
                "dim": self._dim,
                "factory": self._factory,
                "requested_factory": self._requested,
                "count": self._count,
                "next_id": self._next_id,
                "tombstones": int(self._tombstones.size),
                "model_sha256": self._model_sha256,
                "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        return files, fields

    @classmethod
    def load(cls, directory: str | Path, *, expected_model_sha256: str | None = None) -> ReferenceIndex:
        """Load a saved index; files are verified against the manifest before anything parses them.

        Raises IndexFormatError for a missing, truncated, modified or unknown-version save, and
        IncompatibleModelError when ``expected_model_sha256`` differs from the model it was built with.
        """
        path = resolve_directory(directory)
        manifest = read_manifest(path, format_name=FORMAT_NAME, supported_versions=(FORMAT_VERSION,))
        return cls.restore(
            manifest,
            lambda name: read_verified(path, manifest, name),
            where=path,
            expected_model_sha256=expected_model_sha256,
        )

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
        manifest = fields
        path = where
        where = path / "manifest.json"
        kinds = {"dim": int, "factory": str, "requested_factory": str, "count": int, "next_id": int, "tombstones": int}
        for name, kind in kinds.items():
            if not isinstance(manifest.get(name), kind) or isinstance(manifest.get(name), bool):
                raise IndexFormatError(f"{where}: {name!r} is missing or not a {kind.__name__}")
        model = manifest.get("model_sha256")
        if model is not None and not isinstance(model, str):
            raise IndexFormatError(f"{where}: 'model_sha256' is not a string")
        if expected_model_sha256 is not None and model != expected_model_sha256:
            built = f"model {model}" if model else "an unrecorded model"
            raise IncompatibleModelError(
                f"the index at {path} was built with {built}, but you gave model {expected_model_sha256}: "
                "its vectors are not comparable. Rebuild the index with `authvision index build`"
            )
        saved_version = str(manifest.get("library_version", "0+unknown"))
        if _newer(saved_version, _library_version()):
            LOG.warning("%s was saved by authvision %s, newer than this %s", path, saved_version, _library_version())

        vector_bytes = read(_VECTORS_FILE)
        hash_bytes = read(_HASHES_FILE)
        metadata_bytes = read(_METADATA_FILE)
        try:
            index = faiss.deserialize_index(np.frombuffer(vector_bytes, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexFormatError(f"{path / _VECTORS_FILE} is not a FAISS index FAISS can read: {exc}") from exc
        try:
            hashes = faiss.deserialize_index_binary(np.frombuffer(hash_bytes, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexFormatError(f"{path / _HASHES_FILE} is not a FAISS binary index: {exc}") from exc
        metadata = Metadata.from_bytes(metadata_bytes, what=str(path / _METADATA_FILE))

        kind = _kind_of(index)
        expected_type = faiss.IndexIDMap2 if kind in ("flat", "hnsw") else faiss.Index
        problems = []
        if index.d != manifest["dim"]:
            problems.append(f"{_VECTORS_FILE} has dim {index.d}, the manifest {manifest['dim']}")
        if kind not in ("flat", "ivf", "hnsw") or not isinstance(faiss.downcast_index(index), expected_type):
            problems.append(f"{_VECTORS_FILE} holds an unsupported {kind}")
        if index.ntotal != manifest["count"] + manifest["tombstones"]:
            problems.append(
                f"{_VECTORS_FILE} holds {index.ntotal} vectors, "
                f"the manifest {manifest['count']} + {manifest['tombstones']} removed"
            )
        if not isinstance(hashes, faiss.IndexBinaryIDMap2) or hashes.d != 8 * HASH_BYTES:
            problems.append(f"{_HASHES_FILE} is not a 64-bit binary id map")
        if metadata.count() != manifest["count"] or len(metadata.tombstones()) != manifest["tombstones"]:
            problems.append(f"{_METADATA_FILE} holds {metadata.count()} references, the manifest {manifest['count']}")
        if metadata.max_id() >= manifest["next_id"]:
            problems.append(f"{_METADATA_FILE} holds id {metadata.max_id()} ≥ next_id {manifest['next_id']}")
        if problems:
            raise IndexFormatError(f"{path} is inconsistent: " + "; ".join(problems))

        self = cls.__new__(cls)
        min_train = 0
        if manifest["requested_factory"] not in ("auto", "Flat") and manifest["factory"] == "Flat":
            try:
                min_train = _min_train(*_new_index(manifest["dim"], manifest["requested_factory"]))
            except ValueError as exc:
                raise IndexFormatError(f"{where}: requested_factory {manifest['requested_factory']!r}: {exc}") from exc
        self._setup(
            dim=manifest["dim"],
            requested=manifest["requested_factory"],
            model_sha256=model,
            factory=manifest["factory"],
            index=index,
            hashes=hashes,
            metadata=metadata,
            next_id=manifest["next_id"],
            min_train=min_train,
        )
        return self
