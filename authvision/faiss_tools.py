"""FAISS index-type plumbing for :class:`~authvision.index.ReferenceIndex`, as small free functions.

In the manner of FAISS contrib's ``factory_tools.py``: each function takes a FAISS index (or a
factory string) and knows about its type — Flat, IVF or HNSW, under id maps and pre-transforms —
so the index class only decides *when* to build, search, switch or rebuild.

Why HNSW for ``factory="auto"`` (``benchmarks/index_search.py``, 2 cores, product-clustered
synthetic vectors): at 1M 256-d references ``HNSW32,SQ8`` at efSearch 64 gives recall@10 0.962
against exact search at a single-query p50 of 0.23-0.57 ms (quiet vs loaded machine), 528 bytes per
reference; IVF needed nprobe 256 (2-5.7 ms) for 0.95. At 1280-d no type tried meets all three
targets on this machine: SQ4 codes cap recall near 0.95, PCA256 near 0.92, IVF is 5-10× slower at
equal recall; ``HNSW32,SQ6`` (1.2 KB per reference) is the compromise, see the benchmark table.

Approximate indexes use the L2 metric (for unit vectors ``cos = 1 - L2² / 2``, the same ranking;
PCA centres the data, which would bias inner products). Searches take per-call FAISS parameters
(``SearchParametersIVF`` / ``SearchParametersHNSW``, never ``index.nprobe =``). A brand filter is an
``IDSelectorBatch``; so that restricted searches do not miss references, IVF widens ``nprobe`` in
proportion to how few references the brand holds, and HNSW scans a small brand's quantised vectors
exhaustively (a graph walk filtered to a few percent of its nodes finds too few of them).

FAISS's bundled stubs (``faiss/__init__.pyi``) know neither the subclasses ``downcast_index``
returns nor the keyword constructors of ``SearchParameters*``: :func:`_down` returns ``Any``, and
the few ``type: ignore`` comments here mark those constructors.
"""

from __future__ import annotations

import math
import re
from typing import Any

import faiss
import numpy as np

__all__ = [
    "KINDS",
    "add_hashes",
    "auto_factory",
    "build_trained",
    "closest_per_reference",
    "cosine_similarities",
    "flat_contents",
    "hnsw_parts",
    "id_map_of",
    "kind_of",
    "min_train",
    "new_index",
    "rebuild_without",
    "remove_hashes",
    "remove_vectors",
    "scan_hnsw",
    "search_flat",
    "search_hnsw",
    "search_ivf",
    "to_bytes",
]

KINDS = ("flat", "ivf", "hnsw")
"""The index kinds :func:`kind_of` recognises and :class:`~authvision.index.ReferenceIndex` supports."""

TRAIN_SAMPLE_MAX = 100_000
ADD_CHUNK = 1 << 16
MIN_TRAIN = 1000
EXACT_FILTER_MAX = 20_000  # HNSW: brands up to this size are scanned exhaustively ...
EXACT_FILTER_FRACTION = 0.05  # ... and so are brands holding up to this share of the graph
EF_SEARCH_MAX = 4096
_UNSUPPORTED = re.compile(r"IDMap|Refine|RFlat|LSH|IndexBinary", re.IGNORECASE)


def auto_factory(dim: int) -> str:
    """The approximate index ``factory="auto"`` switches to once exact search gets slow.

    HNSW32 over 8-bit scalar quantisation up to 512 dims (528 B per 256-d reference); 6-bit above,
    where 4 bits cost too much recall (see the module docstring for the measurements).
    """
    return "HNSW32,SQ8" if dim <= 512 else "HNSW32,SQ6"


def _down(index: Any) -> Any:
    """``faiss.downcast_index``, typed loosely: FAISS's stubs know the base class only."""
    return faiss.downcast_index(index)


def kind_of(index: faiss.Index) -> str:
    """'flat', 'ivf' or 'hnsw': what sits under id maps and pre-transforms (else its class name)."""
    inner = _down(index)
    if isinstance(inner, faiss.IndexIDMap2):
        inner = _down(inner.index)
    while isinstance(inner, faiss.IndexPreTransform):
        inner = _down(inner.index)
    if isinstance(inner, faiss.IndexFlat):
        return "flat"
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    return type(inner).__name__


def new_index(dim: int, factory: str) -> tuple[faiss.Index, str]:
    """A fresh (untrained) FAISS index for ``factory`` and its kind. Flat/HNSW get an IDMap2 layer.

    Raises ValueError for a factory string FAISS cannot build or that builds an unsupported type.
    """
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
    kind = kind_of(probe)
    if kind not in KINDS:
        raise ValueError(
            f"factory {factory!r} builds a {kind}; ReferenceIndex supports Flat, IVF and HNSW index types"
        )
    if kind == "ivf":
        return probe, kind  # IVF stores ids natively and removes in place
    return faiss.index_factory(dim, "IDMap2," + factory, metric), kind


def min_train(index: faiss.Index, kind: str) -> int:
    """How many vectors training ``index`` needs (0 if it needs none): 39 per IVF list / PQ centroid."""
    if index.is_trained:
        return 0
    need = MIN_TRAIN
    if kind == "ivf":
        ivf = faiss.extract_index_ivf(index)
        need = max(need, 39 * ivf.nlist)
        pq = getattr(_down(ivf), "pq", None)
        if pq is not None:
            need = max(need, 39 * pq.ksub)
    return need


def hnsw_parts(index: faiss.Index) -> tuple[faiss.IndexIDMap2, list[faiss.VectorTransform], faiss.IndexHNSW]:
    """An ``IDMap2,[transforms,]HNSW`` index as (its id map, its transforms in order, the HNSW index)."""
    idmap = _down(index)
    inner = _down(idmap.index)
    chain: list[faiss.VectorTransform] = []
    while isinstance(inner, faiss.IndexPreTransform):
        vector: Any = inner.chain  # a SWIG std::vector; the stubs say list
        chain.extend(vector.at(i) for i in range(vector.size()))
        inner = _down(inner.index)
    return idmap, chain, inner


def id_map_of(index: faiss.Index) -> np.ndarray:
    """The external ids of an IDMap2 index, in storage order (int64)."""
    return faiss.vector_to_array(_down(index).id_map).astype(np.int64)


def to_bytes(array: np.ndarray) -> memoryview:
    """A serialised index (``faiss.serialize_index``) as bytes to write, without a copy."""
    return np.ascontiguousarray(array, dtype=np.uint8).data


def flat_contents(index: faiss.Index, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, ids) held by an ``IDMap2,Flat`` index, in storage order."""
    idmap = _down(index)
    flat = _down(idmap.index)
    vectors = flat.reconstruct_n(0, flat.ntotal) if flat.ntotal else np.empty((0, dim), np.float32)
    return vectors, id_map_of(index)


def build_trained(dim: int, factory: str, vectors: np.ndarray, ids: np.ndarray) -> tuple[faiss.Index, str]:
    """A ``factory`` index trained on ``vectors`` (up to 100k of them, seeded) and holding them all."""
    index, kind = new_index(dim, factory)
    if not index.is_trained:
        rng = np.random.default_rng(0)
        sample = vectors
        if len(vectors) > TRAIN_SAMPLE_MAX:
            sample = vectors[np.sort(rng.choice(len(vectors), TRAIN_SAMPLE_MAX, replace=False))]
        index.train(sample)
    for start in range(0, len(vectors), ADD_CHUNK):
        index.add_with_ids(vectors[start : start + ADD_CHUNK], ids[start : start + ADD_CHUNK])
    return index, kind


def rebuild_without(index: faiss.Index, tombstones: np.ndarray) -> faiss.Index:
    """An HNSW index's live references re-added to an empty copy of it (same trained quantiser)."""
    fresh = faiss.deserialize_index(faiss.serialize_index(index))
    fresh.reset()
    idmap, _, _ = hnsw_parts(index)
    inner = idmap.index
    id_map = id_map_of(index)
    for start in range(0, inner.ntotal, ADD_CHUNK):
        stop = min(inner.ntotal, start + ADD_CHUNK)
        chunk_ids = id_map[start:stop]
        live = ~np.isin(chunk_ids, tombstones)
        if live.any():
            vectors = inner.reconstruct_n(start, stop - start)
            fresh.add_with_ids(np.ascontiguousarray(vectors[live]), chunk_ids[live])
    return fresh


def remove_vectors(index: faiss.Index, ids: np.ndarray) -> None:
    """Delete ``ids`` (all present) from a Flat or IVF index in place."""
    removed = index.remove_ids(faiss.IDSelectorBatch(ids))
    if removed != ids.size:  # a broken invariant, not a user error
        raise RuntimeError(f"FAISS removed {removed} vectors for {ids.size} ids")


def add_hashes(hashes: faiss.IndexBinary, codes: np.ndarray, ids: np.ndarray) -> None:
    """Add references' (n, 2, 8) perceptual hashes: the photo's as id ``2 * ref_id``, its mirror's ``+ 1``."""
    hashes.add_with_ids(codes.reshape(-1, codes.shape[-1]), (2 * ids[:, None] + np.arange(2)).reshape(-1))


def remove_hashes(hashes: faiss.IndexBinary, ids: np.ndarray) -> None:
    """Remove both hashes (photo and mirror) of the references ``ids``."""
    hashes.remove_ids(faiss.IDSelectorBatch(np.concatenate([2 * ids, 2 * ids + 1])))


# -- searching ---------------------------------------------------------------------------------------


def search_flat(index: faiss.Index, q: np.ndarray, k: int, subset: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Exact search, restricted to the ids in ``subset`` if given."""
    sel = None if subset is None else faiss.SearchParameters(sel=faiss.IDSelectorBatch(subset))  # type: ignore[call-arg]
    return index.search(q, k, params=sel)


def search_ivf(
    index: faiss.Index, q: np.ndarray, k: int, subset: np.ndarray | None, nprobe: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """IVF search probing ``nprobe`` lists, proportionally more when ``subset`` holds few of ``count``."""
    nlist = faiss.extract_index_ivf(index).nlist
    sel = None
    if subset is not None:
        sel = faiss.IDSelectorBatch(subset)
        # Fewer of the probed lists' entries pass the filter: probe proportionally more lists.
        nprobe = math.ceil(nprobe * count / subset.size)
    search_params = faiss.SearchParametersIVF(nprobe=min(nprobe, nlist))  # type: ignore[call-arg]
    if sel is not None:
        search_params.sel = sel
    return index.search(q, k, params=search_params)


def search_hnsw(
    index: faiss.Index, q: np.ndarray, k: int, subset: np.ndarray | None, tombstones: np.ndarray, ef_search: int
) -> tuple[np.ndarray, np.ndarray]:
    """HNSW search that skips ``tombstones``; a small ``subset`` is scanned exhaustively instead."""
    ntotal = index.ntotal  # includes tombstones
    ef = max(ef_search, k)
    if subset is not None:
        if subset.size <= EXACT_FILTER_MAX or subset.size <= EXACT_FILTER_FRACTION * ntotal:
            return scan_hnsw(index, q, k, faiss.IDSelectorBatch(subset))
        sel: faiss.IDSelector | None = faiss.IDSelectorBatch(subset)
        wanted = subset.size
    elif tombstones.size:
        sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(tombstones))
        wanted = ntotal - tombstones.size
    else:
        sel, wanted = None, ntotal
    search_params = faiss.SearchParametersHNSW(efSearch=min(EF_SEARCH_MAX, math.ceil(ef * ntotal / wanted)))  # type: ignore[attr-defined]
    if sel is not None:
        search_params.sel = sel
    distances, labels = index.search(q, k, params=search_params)
    if sel is not None:
        # A filtered graph walk can come back short; rescan those queries exhaustively.
        short = np.flatnonzero((labels >= 0).sum(axis=1) < min(k, wanted))
        if short.size:
            distances[short], labels[short] = scan_hnsw(index, q[short], k, sel)
    return distances, labels


def scan_hnsw(index: faiss.Index, q: np.ndarray, k: int, sel: faiss.IDSelector) -> tuple[np.ndarray, np.ndarray]:
    """Exhaustive search over an HNSW index's stored vectors, restricted to ``sel`` (external ids)."""
    idmap, chain, hnsw = hnsw_parts(index)
    for transform in chain:
        q = transform.apply(q)
    storage = _down(hnsw.storage)
    translated = faiss.IDSelectorTranslated(idmap.id_map, sel)  # type: ignore[arg-type]
    distances, positions = storage.search(np.ascontiguousarray(q), k, params=faiss.SearchParameters(sel=translated))  # type: ignore[call-arg]
    id_map = faiss.rev_swig_ptr(idmap.id_map.data(), idmap.id_map.size())
    labels = np.where(positions >= 0, id_map[np.maximum(positions, 0)], -1)
    return distances, labels


def cosine_similarities(distances: np.ndarray, labels: np.ndarray, metric: int, *, pad: float) -> np.ndarray:
    """FAISS search distances as cosines in [-1, 1] (``1 - L2² / 2`` for L2), ``pad`` where ``labels < 0``."""
    similarities = distances if metric == faiss.METRIC_INNER_PRODUCT else np.float32(1.0) - np.float32(0.5) * distances
    np.clip(similarities, -1.0, 1.0, out=similarities)
    similarities[labels < 0] = pad
    return similarities


def closest_per_reference(limits: np.ndarray, distances: np.ndarray, labels: np.ndarray) -> list[list[tuple[int, int]]]:
    """A binary ``range_search`` over reference hashes (ids ``2 * ref_id`` and ``2 * ref_id + 1``, the
    photo and its mirror) as, per query, ``(ref_id, hamming distance)`` pairs, closest first."""
    out: list[list[tuple[int, int]]] = []
    for i in range(len(limits) - 1):
        best: dict[int, int] = {}
        for label, distance in zip(labels[limits[i] : limits[i + 1]].tolist(), distances[limits[i] : limits[i + 1]].tolist()):
            ref_id, distance = label // 2, int(distance)
            if distance < best.get(ref_id, 65):
                best[ref_id] = distance
        out.append(sorted(best.items(), key=lambda item: (item[1], item[0])))
    return out
