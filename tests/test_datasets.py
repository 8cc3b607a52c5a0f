"""Photo sets: adding labelled photos to a checker in chunks."""

import io
from pathlib import Path

from PIL import Image

import authvision as av
from authvision.datasets import LabelledPhoto, add_labelled_photos


def jpeg_bytes(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_add_labelled_photos_in_chunks_skips_unreadable_ones(embedder, photos, tmp_path):
    paths = []
    for name, array in list(photos.items())[:5]:
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(jpeg_bytes(array))
        paths.append(path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    set_ = [LabelledPhoto(p, "genuine" if i % 2 else "fake", f"product-{i}", "acme") for i, p in enumerate(paths)]
    set_.insert(2, LabelledPhoto(broken, "genuine", "product-x", "acme"))
    checker = av.AuthenticityChecker(embedder)
    chunks: list[int] = []
    skipped = add_labelled_photos(checker, set_, chunk=2, progress=chunks.append)
    assert skipped == [str(broken)] and chunks == [2, 2, 2]
    assert len(checker.index) == 5 and checker.index.info()["labels"] == {"fake": 3, "genuine": 2}
    refs = checker.index.references(checker.index.ids())
    assert sorted(Path(r.source).name for r in refs) == sorted(p.name for p in paths)
    assert {r.product for r in refs} == {f"product-{i}" for i in range(5)} and {r.brand for r in refs} == {"acme"}
