"""ReferenceIndex behaviour: search against exact ground truth, removal, filters, duplicates,
persistence and its failure modes, concurrency. Seeded synthetic vectors with product clusters."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image, ImageOps

import authvision._storage as storage
import authvision.index as index_module
from authvision.errors import (
    DuplicateReferenceError,
    IncompatibleModelError,
    IndexFormatError,
    UnknownReferenceError,
)
from authvision.index import PAD_SIMILARITY, ReferenceIndex, SearchParams, auto_factory

DIM = 64
APPROXIMATE = ["IVF32,SQ8", "HNSW16,SQ8"]
REPO = Path(__file__).resolve().parents[1]


def product_vectors(n: int, *, dim: int = DIM, products: int = 60, seed: int = 0, spread: float = 0.35):
    """L2-normalised float32 rows: a cluster per product plus noise. Returns (vectors, product ids)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((products, dim))
    product = rng.integers(0, products, n)
    x = centres[product] + spread * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), product


def exact_knn(queries: np.ndarray, base: np.ndarray, ids: np.ndarray, k: int):
    """Brute-force ground truth, as FAISS contrib's knn_ground_truth."""
    sims = queries @ base.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), ids[order]


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth)]))


def brands_for(product: np.ndarray) -> list[str]:
    return [f"brand{p % 7}" for p in product]


def build(factory: str, n: int = 2000, seed: int = 0, **kwargs) -> tuple[ReferenceIndex, np.ndarray, np.ndarray]:
    x, product = product_vectors(n, seed=seed)
    index = ReferenceIndex(DIM, factory=factory, **kwargs)
    index.add(x, ["genuine" if p % 3 else "fake" for p in product], products=[f"p{p}" for p in product], brands=brands_for(product))
    return index, x, product


def tree_digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


# -- search ----------------------------------------------------------------------------------------


def test_exact_search_matches_brute_force():
    index, x, _ = build("auto", n=1500)
    assert index.factory == "Flat" and index.is_exact and len(index) == 1500
    queries, _ = product_vectors(50, seed=1)
    result = index.search(queries, k=10)
    sims, ids = exact_knn(queries, x, np.arange(1500), 10)
    np.testing.assert_array_equal(result.ids, ids)
    np.testing.assert_allclose(result.similarities, sims, atol=1e-5)
    assert result.similarities.dtype == np.float32 and result.ids.dtype == np.int64
    self_hit = index.search(x[:5], k=1)
    assert self_hit.ids[:, 0].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(self_hit.similarities[:, 0], 1.0, atol=1e-5)


@pytest.mark.parametrize("factory", APPROXIMATE)
def test_approximate_search_against_exact(factory):
    index, x, _ = build(factory)
    assert index.factory == factory and not index.is_exact
    queries, _ = product_vectors(200, seed=1)
    result = index.search(queries, k=10)
    truth_sims, truth_ids = exact_knn(queries, x, np.arange(len(x)), 10)
    # measured 0.93-0.99 for these factories on this data
    assert recall_at_k(result.ids, truth_ids) >= 0.85
    # similarities are estimates from quantised vectors: close to the exact cosine
    exact_of_found = np.take_along_axis(queries @ x.T, result.ids, axis=1)
    assert np.abs(result.similarities - exact_of_found).max() < 0.02
    # per-call parameters change accuracy without touching shared state
    wide = index.search(queries, k=10, params=SearchParams(nprobe=32, ef_search=256))
    assert recall_at_k(wide.ids, truth_ids) >= recall_at_k(result.ids, truth_ids) - 0.01
    again = index.search(queries, k=10)
    np.testing.assert_array_equal(again.ids, result.ids)


def test_auto_switches_from_exact_to_approximate(monkeypatch):
    monkeypatch.setattr(index_module, "EXACT_MAX_REFS", 1500)
    x, product = product_vectors(2500)
    index = ReferenceIndex(DIM)
    first = index.add(x[:1000], "genuine")
    assert index.factory == "Flat"
    second = index.add(x[1000:], "fake")
    assert index.factory == auto_factory(DIM) == "HNSW32,SQ8"
    assert first + second == list(range(2500)) and len(index) == 2500
    queries, _ = product_vectors(100, seed=1)
    _, truth = exact_knn(queries, x, np.arange(2500), 10)
    assert recall_at_k(index.search(queries, 10).ids, truth) >= 0.9
    assert index.references([0, 2499])[1].label == "fake"


def test_explicit_factory_waits_for_enough_training_data():
    index = ReferenceIndex(DIM, factory="IVF32,SQ8")  # 39 × 32 training vectors needed
    x, _ = product_vectors(1300)
    index.add(x[:1000], "genuine")
    assert index.factory == "Flat"
    assert index.search(x[:3], 1).ids[:, 0].tolist() == [0, 1, 2]
    index.add(x[1000:], "genuine")
    assert index.factory == "IVF32,SQ8"
    assert index.search(x[:3], 1).ids[:, 0].tolist() == [0, 1, 2]


def test_k_larger_than_index_pads():
    x, _ = product_vectors(3)
    index = ReferenceIndex(DIM)
    index.add(x, "genuine")
    result = index.search(x[:1], k=5)
    assert result.ids[0, :3].tolist() != [-1] * 3 and result.ids[0, 3:].tolist() == [-1, -1]
    assert result.similarities[0, 3:].tolist() == [PAD_SIMILARITY] * 2


def test_empty_index():
    index = ReferenceIndex(DIM)
    queries, _ = product_vectors(2)
    result = index.search(queries, k=4)
    assert result.ids.shape == (2, 4) and (result.ids == -1).all()
    assert (result.similarities == PAD_SIMILARITY).all()
    assert json.dumps(result.similarities.tolist())  # finite: JSON-safe
    assert len(index) == 0 and index.ids() == []
    assert index.find_duplicates(np.zeros((2, 8), np.uint8)) == [[]]
    index.remove([])
    with pytest.raises(UnknownReferenceError, match="unknown reference id"):
        index.remove([0])
    assert index.search(queries[:0], k=3).ids.shape == (0, 3)


# -- removal ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", ["Flat", "IVF32,SQ8", "HNSW16,SQ8"])
def test_remove_keeps_ids_stable_and_never_reuses_them(factory, tmp_path):
    index, x, _ = build(factory)
    removed = list(range(0, 2000, 10))  # 10%: HNSW keeps them as tombstones
    index.remove(removed)
    assert len(index) == 1800
    result = index.search(x[:50], k=10)
    assert not set(result.ids.ravel().tolist()) & set(removed)
    survivors = [i for i in range(1, 50) if i % 10]
    assert index.search(x[survivors], k=1).ids[:, 0].tolist() == survivors  # ids unchanged
    new = index.add(x[:2], "genuine")
    assert new == [2000, 2001]  # never reused
    index.save(tmp_path / "idx")
    loaded = ReferenceIndex.load(tmp_path / "idx")
    np.testing.assert_array_equal(loaded.search(x[:50], 10).ids, index.search(x[:50], 10).ids)
    assert loaded.add(x[2:3], "fake") == [2002]
    with pytest.raises(UnknownReferenceError, match="1 unknown reference id.*: 10; nothing was removed"):
        loaded.remove([11, 10])
    assert len(loaded) == 1803 and 11 in loaded.ids()


def test_hnsw_tombstones_are_rebuilt_away():
    index, x, _ = build("HNSW16,SQ8")
    index.remove(range(0, 300))
    assert index.info()["tombstones"] == 300
    index.remove(range(300, 600))  # past 20% of the graph: rebuilt
    assert index.info()["tombstones"] == 0 and len(index) == 1400
    queries, _ = product_vectors(100, seed=1)
    _, truth = exact_knn(queries, x[600:], np.arange(600, 2000), 10)
    assert recall_at_k(index.search(queries, 10).ids, truth) >= 0.9


class _FailingHashes:
    """Stands in for the binary hash index and fails on add, as running out of memory would."""

    def __init__(self, inner):
        self.inner = inner

    def add_with_ids(self, *args):
        raise MemoryError("simulated")

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("factory", ["Flat", "HNSW16,SQ8"])
def test_a_failed_add_leaves_no_trace(factory, tmp_path):
    index, x, _ = build(factory, n=1200)
    queries, _ = product_vectors(20, seed=1)
    before = index.search(queries, 10)
    real = index._hashes
    index._hashes = _FailingHashes(real)
    with pytest.raises(MemoryError):
        index.add(x[:5], "fake", hashes=np.zeros((5, 2, 8), np.uint8), sha256s=[f"{i:064x}" for i in range(5)])
    index._hashes = real
    assert len(index) == 1200 and index.ids()[-1] == 1199
    np.testing.assert_array_equal(index.search(queries, 10).ids, before.ids)
    assert index.add(x[:1], "fake", sha256s=[f"{0:064x}"]) == [1205]  # not a duplicate of the failed add
    index.save(tmp_path / "idx")
    assert len(ReferenceIndex.load(tmp_path / "idx")) == 1201


def test_remove_rejects_bad_ids():
    index, _, _ = build("Flat", n=20)
    with pytest.raises(TypeError):
        index.remove(["3"])
    with pytest.raises(TypeError):
        index.remove(5)  # type: ignore[arg-type]
    index.remove(np.array([3, 3, 4]))  # repeats collapse
    assert len(index) == 18


# -- filters and metadata -------------------------------------------------------------------------


@pytest.mark.parametrize("factory", ["Flat", "IVF32,SQ8", "HNSW16,SQ8", "PCA32,HNSW16,SQ8"])
def test_brand_filter_returns_only_that_brand(factory):
    index, x, product = build(factory)
    brands = np.array(brands_for(product))
    queries, _ = product_vectors(100, seed=1)
    result = index.search(queries, k=10, brand="brand3")
    found = result.ids[result.ids >= 0]
    assert found.size == 100 * 10
    assert set(brands[found]) == {"brand3"}
    members = np.flatnonzero(brands == "brand3")
    _, truth = exact_knn(queries, x[members], members, 10)
    if not factory.startswith("PCA"):  # PCA32 of this full-rank data changes the neighbours themselves
        assert recall_at_k(result.ids, truth) >= (1.0 if factory == "Flat" else 0.9)
    nobody = index.search(queries[:2], k=3, brand="no such brand")
    assert (nobody.ids == -1).all()


def test_metadata_round_trip():
    x, _ = product_vectors(3)
    hashes = np.arange(48, dtype=np.uint8).reshape(3, 2, 8)
    index = ReferenceIndex(DIM)
    ids = index.add(
        x, ["genuine", "fake", "genuine"], products="bag", brands=["acme", "acme", None],
        sources=["a.jpg", "b.jpg", "c.jpg"], hashes=hashes, sha256s=["0" * 64, None, "f" * 64],
    )
    refs = index.references([ids[1], ids[0]])
    assert [r.ref_id for r in refs] == [1, 0]
    assert refs[0].label == "fake" and refs[0].product == "bag" and refs[0].brand == "acme" and refs[0].sha256 is None
    assert refs[1].hashes == (hashes[0, 0].tobytes().hex(), hashes[0, 1].tobytes().hex())
    assert refs[1].added_at.endswith("+00:00")
    assert json.dumps(refs[1].to_dict())
    assert index.ids(brand="acme") == [0, 1]
    assert index.ids(label="genuine") == [0, 2]
    assert index.ids(brand="acme", label="fake") == [1]
    with pytest.raises(UnknownReferenceError):
        index.references([0, 7])


def test_duplicate_photos_by_sha256():
    x, _ = product_vectors(4)
    index = ReferenceIndex(DIM)
    a, b = "a" * 64, "b" * 64
    assert index.add(x[:2], "genuine", sha256s=[a, b]) == [0, 1]
    with pytest.raises(DuplicateReferenceError, match="already reference 1"):
        index.add(x[2:4], "genuine", sha256s=[None, b])
    assert len(index) == 2  # nothing added by the failed call
    assert index.add(x[2:4], "genuine", sha256s=[b, None], on_duplicate="skip") == [1, 2]
    with pytest.raises(DuplicateReferenceError, match="same photo"):
        index.add(x[:2], "genuine", sha256s=["c" * 64, "c" * 64])
    assert index.add(x[:2], "genuine", sha256s=["c" * 64, "c" * 64], on_duplicate="skip") == [3, 3]
    assert index.add(x[:1], "fake", sha256s=[a], on_duplicate="allow") == [4]
    assert len(index) == 5
    index.remove([0, 4])
    assert index.add(x[:1], "genuine", sha256s=[a]) == [5]  # removed photos are no longer duplicates


def test_input_validation():
    index = ReferenceIndex(DIM)
    x, _ = product_vectors(3)
    with pytest.raises(TypeError, match="floats"):
        index.add(x.astype(np.int32), "genuine")
    with pytest.raises(ValueError, match=r"shape \(n, 64\)"):
        index.add(x[:, :10], "genuine")
    with pytest.raises(ValueError, match=r"queries\[None, :\]"):
        index.search(x[0])
    with pytest.raises(ValueError, match="L2-normalised; row 1"):
        index.add(x * np.array([[1.0], [2.0], [1.0]], np.float32), "genuine")
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.full((1, DIM), np.nan, np.float32), "genuine")
    with pytest.raises(ValueError, match=r"labels\[1\] is 'real'"):
        index.add(x, ["genuine", "real", "fake"])
    with pytest.raises(ValueError, match="brands has 2 entries for 3 vectors"):
        index.add(x, "genuine", brands=["a", "b"])
    with pytest.raises(ValueError, match=r"shape \(3, 2, 8\)"):
        index.add(x, "genuine", hashes=np.zeros((3, 8), np.uint8))
    with pytest.raises(ValueError, match="64 lowercase hex"):
        index.add(x, "genuine", sha256s=["xyz", None, None])
    with pytest.raises(ValueError, match="on_duplicate"):
        index.add(x, "genuine", on_duplicate="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        index.search(x, k=0)
    with pytest.raises(ValueError, match="ef_search"):
        SearchParams(ef_search=0)
    with pytest.raises(ValueError, match="not supported"):
        ReferenceIndex(DIM, factory="IDMap,Flat")
    with pytest.raises(ValueError, match="index_factory cannot build"):
        ReferenceIndex(DIM, factory="NoSuchIndex12")
    with pytest.raises(ValueError, match="supports Flat, IVF and HNSW"):
        ReferenceIndex(DIM, factory="PQ8")
    assert len(index) == 0
    assert index.add(x.astype(np.float64), "genuine") == [0, 1, 2]  # float64 is converted


# -- perceptual-hash duplicates on real photos ------------------------------------------------------


def test_find_duplicates_catches_edited_copies_of_real_photos():
    pytest.importorskip("skimage")
    from authvision.hashing import perceptual_hashes
    from authvision.sample_photos import sample_photo

    names = ["chelsea", "coffee", "astronaut", "rocket"]
    photos = {name: Image.fromarray(sample_photo(name)) for name in names}
    x, _ = product_vectors(len(names))
    index = ReferenceIndex(DIM)
    ids = index.add(x, "genuine", hashes=np.stack([perceptual_hashes(photos[n]) for n in names]), sources=names)

    def jpeg(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=60)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")

    def pad(image: Image.Image) -> Image.Image:
        side = max(image.size) + 40
        out = Image.new("RGB", (side, side), "white")
        out.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        return out

    queries = [jpeg(photos["coffee"]), ImageOps.mirror(photos["rocket"]), jpeg(pad(photos["chelsea"])), Image.fromarray(sample_photo("camera"))]
    found = index.find_duplicates(np.stack([perceptual_hashes(q) for q in queries]))
    assert [hits[0][0] if hits else None for hits in found] == [ids[1], ids[3], ids[0], None]
    assert all(hits[0][1] <= 8 for hits in found[:3])
    assert index.find_duplicates(perceptual_hashes(queries[1]))[0][0] == (ids[3], found[1][0][1])  # (2, 8) works
    assert index.find_duplicates(perceptual_hashes(queries[3]), max_distance=64)[0]  # everything within 64 bits
    index.remove([ids[1]])
    assert index.find_duplicates(perceptual_hashes(queries[0])) == [[]]
    with pytest.raises(ValueError, match="max_distance"):
        index.find_duplicates(perceptual_hashes(queries[0]), max_distance=65)


# -- persistence -----------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", ["auto", "IVF32,SQ8", "HNSW16,SQ8", "PCA32,HNSW16,SQ8"])
def test_save_load_round_trip(factory, tmp_path):
    index, x, _ = build(factory, model_sha256="ab" * 32)
    index.remove([5, 6])
    index.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["hashes.faiss", "manifest.json", "metadata.sqlite", "vectors.faiss"]
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and manifest["dim"] == DIM and manifest["count"] == 1998
    assert manifest["hash_version"] == 2 == index.hash_version
    assert manifest["next_id"] == 2000 and manifest["model_sha256"] == "ab" * 32 and manifest["factory"] == index.factory
    assert manifest["library_version"]
    loaded = ReferenceIndex.load(tmp_path / "idx", expected_model_sha256="ab" * 32)
    queries, _ = product_vectors(50, seed=1)
    before, after = index.search(queries, 10, brand="brand2"), loaded.search(queries, 10, brand="brand2")
    np.testing.assert_array_equal(before.ids, after.ids)
    np.testing.assert_array_equal(before.similarities, after.similarities)
    np.testing.assert_array_equal(index.search(queries, 10).ids, loaded.search(queries, 10).ids)
    assert loaded.references([7]) == index.references([7])
    assert loaded.factory == index.factory and loaded.model_sha256 == "ab" * 32 and len(loaded) == 1998
    # saving again over the previous save replaces it and leaves no temporary siblings behind
    loaded.remove([7])
    loaded.save(tmp_path / "idx")
    assert len(ReferenceIndex.load(tmp_path / "idx")) == 1997
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("saved") / "idx"
    index, _, _ = build("auto", n=300, model_sha256="cd" * 32)
    index.save(directory)
    return directory


def _copy(saved: Path, tmp_path: Path) -> Path:
    target = tmp_path / "idx"
    target.mkdir()
    for p in saved.iterdir():
        (target / p.name).write_bytes(p.read_bytes())
    return target


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _set_version(path: Path) -> None:
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 99
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("vectors.faiss", _truncate, r"vectors\.faiss has \d+ bytes, the manifest says \d+: truncated"),
        ("vectors.faiss", _flip, r"vectors\.faiss fails its sha256 check"),
        ("metadata.sqlite", _flip, r"metadata\.sqlite fails its sha256 check"),
        ("hashes.faiss", _truncate, r"hashes\.faiss has"),
        ("hashes.faiss", Path.unlink, r"hashes\.faiss is missing"),
        ("manifest.json", Path.unlink, r"manifest\.json is missing"),
        ("manifest.json", _truncate, r"manifest\.json is not valid JSON"),
        ("manifest.json", _set_version, r"format_version 99 .*upgrade authvision"),
    ],
)
def test_load_refuses_damaged_directories_and_leaves_them_alone(saved, tmp_path, name, damage, message):
    directory = _copy(saved, tmp_path)
    damage(directory / name)
    before = tree_digest(directory)
    with pytest.raises(IndexFormatError, match=message):
        ReferenceIndex.load(directory)
    assert tree_digest(directory) == before


def _as_format_1(path: Path) -> None:
    """The manifest an index saved before hash versions had: format 1, no hash_version."""
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 1
    del manifest["hash_version"]
    path.write_text(json.dumps(manifest))


def test_an_index_saved_before_hash_versions_keeps_version_1_hashes(saved, tmp_path):
    directory = _copy(saved, tmp_path)
    _as_format_1(directory / "manifest.json")
    old = ReferenceIndex.load(directory)
    assert old.hash_version == 1 and ReferenceIndex.load(saved).hash_version == 2
    old.save(tmp_path / "again")  # a save of it is format 2 and still says version 1
    manifest = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and manifest["hash_version"] == 1
    assert ReferenceIndex.load(tmp_path / "again").hash_version == 1
    assert ReferenceIndex(DIM, hash_version=1).hash_version == 1
    with pytest.raises(ValueError, match="hash_version must be one of"):
        ReferenceIndex(DIM, hash_version=3)
    manifest["hash_version"] = 7
    (tmp_path / "again" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="hash_version 7"):
        ReferenceIndex.restore(manifest, lambda name: (tmp_path / "again" / name).read_bytes(), where=tmp_path / "again")


def test_load_refuses_another_model(saved, tmp_path):
    directory = _copy(saved, tmp_path)
    before = tree_digest(directory)
    with pytest.raises(IncompatibleModelError, match=f"built with model {'cd' * 32}, but you gave model {'ef' * 32}.*authvision index build"):
        ReferenceIndex.load(directory, expected_model_sha256="ef" * 32)
    assert tree_digest(directory) == before
    assert len(ReferenceIndex.load(directory, expected_model_sha256="cd" * 32)) == 300


def test_load_refuses_a_consistently_rehashed_but_wrong_payload(saved, tmp_path):
    # Someone swaps a file and updates the manifest: checksums pass, but FAISS/SQLite content is checked too.
    directory = _copy(saved, tmp_path)
    (directory / "vectors.faiss").write_bytes(b"not a faiss index at all")
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["vectors.faiss"] = {"sha256": hashlib.sha256(b"not a faiss index at all").hexdigest(), "bytes": 24}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="vectors.faiss is not a FAISS index"):
        ReferenceIndex.load(directory)


def test_save_refuses_to_replace_an_unrelated_directory(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"...")
    index, _, _ = build("Flat", n=10)
    with pytest.raises(FileExistsError, match="not a saved authvision directory"):
        index.save(tmp_path / "photos")
    assert (tmp_path / "photos" / "cat.jpg").read_bytes() == b"..."


def _saved_pair(tmp_path: Path) -> tuple[Path, ReferenceIndex, ReferenceIndex]:
    """An index saved at tmp_path/idx (300 refs) and a grown version of it not yet saved (400)."""
    old, x, _ = build("auto", n=300)
    old.save(tmp_path / "idx")
    new = ReferenceIndex.load(tmp_path / "idx")
    new.add(product_vectors(100, seed=5)[0], "fake")
    return tmp_path / "idx", old, new


def test_a_write_failing_mid_save_leaves_the_previous_save(tmp_path, monkeypatch):
    directory, _, new = _saved_pair(tmp_path)
    before = tree_digest(directory)
    real_write, calls = storage._write_file, []

    def failing_write(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(storage, "_write_file", failing_write)
    with pytest.raises(OSError, match="No space left"):
        new.save(directory)
    assert tree_digest(directory) == before
    assert len(ReferenceIndex.load(directory)) == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # the temporary directory is gone


def test_a_failed_swap_puts_the_previous_save_back(tmp_path, monkeypatch):
    directory, _, new = _saved_pair(tmp_path)
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the old save is already aside; moving the new one in fails
            raise OSError("simulated failure")
        real_replace(src, dst)

    monkeypatch.setattr(storage.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        new.save(directory)
    monkeypatch.setattr(storage.os, "replace", real_replace)
    assert len(ReferenceIndex.load(directory)) == 300


_CRASHING_SAVE = """
import os, sys
import numpy as np
import authvision._storage as storage
from authvision.index import ReferenceIndex
index = ReferenceIndex.load(sys.argv[1])
rng = np.random.default_rng(9)
x = rng.standard_normal((50, index.dim)).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
index.add(x, "fake")
real, calls = os.replace, []
def crash(src, dst):
    calls.append(src)
    if len(calls) == int(sys.argv[2]):
        os._exit(17)  # the process dies: no except, no finally
    real(src, dst)
storage.os.replace = crash
index.save(sys.argv[1])
"""


@pytest.mark.parametrize("crash_at", [1, 2])
def test_a_save_killed_midway_leaves_a_loadable_index(tmp_path, crash_at):
    directory, old, _ = _saved_pair(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _CRASHING_SAVE, str(directory), str(crash_at)], env=env, capture_output=True, timeout=120)
    assert proc.returncode == 17, proc.stderr.decode()
    # crash_at=1: killed before the old save moved; crash_at=2: between the two renames
    assert directory.exists() == (crash_at == 1)
    recovered = ReferenceIndex.load(directory)
    assert len(recovered) == 300
    queries, _ = product_vectors(20, seed=1)
    np.testing.assert_array_equal(recovered.search(queries, 5).ids, old.search(queries, 5).ids)
    # the next save cleans up what the crash left behind
    recovered.save(directory)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


# -- concurrency -----------------------------------------------------------------------------------


@pytest.fixture
def one_faiss_thread():
    # HNSW insertion order, hence the graph, depends on OpenMP scheduling; one thread makes it repeatable.
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(previous)


@pytest.mark.parametrize("factory", ["auto", "IVF32,SQ8", "HNSW16,SQ8"])
def test_concurrent_search_while_adding_and_removing(factory, one_faiss_thread):
    x, product = product_vectors(2400)
    queries, _ = product_vectors(32, seed=1)
    batches = [x[i : i + 200] for i in range(0, 2400, 200)]

    def writes(index: ReferenceIndex) -> None:
        for b, batch in enumerate(batches):
            ids = index.add(batch, "genuine", brands=brands_for(product[b * 200 : (b + 1) * 200]))
            if b % 2:
                index.remove(ids[::7])

    sequential = ReferenceIndex(DIM, factory=factory)
    writes(sequential)

    concurrent = ReferenceIndex(DIM, factory=factory)
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                result = concurrent.search(queries, 5, brand="brand1" if threading.get_ident() % 2 else None)
                assert (np.diff(result.similarities, axis=1) <= 1e-6).all()
                assert result.ids.max() < 2400
                concurrent.find_duplicates(np.zeros((1, 2, 8), np.uint8))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        writes(concurrent)
    finally:
        done.set()
        for thread in readers:
            thread.join(timeout=60)
    assert not errors, errors[0]
    assert len(concurrent) == len(sequential) and concurrent.factory == sequential.factory
    for brand in (None, "brand1"):
        a, b = concurrent.search(queries, 10, brand=brand), sequential.search(queries, 10, brand=brand)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_allclose(a.similarities, b.similarities, atol=1e-6)


def test_saving_while_searching(tmp_path):
    index, x, _ = build("HNSW16,SQ8")
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(30):
                index.search(x[:8], 5)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [
        threading.Thread(target=index.save, args=(tmp_path / "idx",))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    np.testing.assert_array_equal(ReferenceIndex.load(tmp_path / "idx").search(x[:8], 5).ids, index.search(x[:8], 5).ids)
