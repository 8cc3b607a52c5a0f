"""Embedder on ONNX Runtime: loading and verifying the shipped model, input types, and behaviour on real photos."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from PIL import Image

from authvision.embedder import Embedder, default_model_dir
from authvision.errors import ChecksumMismatchError, ImageDecodeError, ModelLoadError
from authvision.manifest import MODEL_MANIFEST, ModelManifest
from authvision.sample_photos import sample_photo

NAMES = ("chelsea", "coffee", "rocket", "astronaut", "grace_hopper", "stereo_motorcycle_left")
PRECISIONS = ("int8", "fp32")


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def listing_edit(array: np.ndarray) -> bytes:
    """What a reseller's template does: 10% crop, white padding to a square plus margin, JPEG q=50."""
    image = Image.fromarray(array)
    w, h = image.size
    dx, dy = w // 20, h // 20  # 5% off each side: 10% of each dimension
    image = image.crop((dx, dy, w - dx, h - dy))
    side = int(max(image.size) * 1.15)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return _jpeg(canvas, quality=50)


@pytest.fixture(scope="module")
def models() -> dict[str, Embedder]:
    return {p: Embedder.load(precision=p) for p in PRECISIONS}


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("photos")
    paths = {}
    for name in NAMES:
        paths[name] = root / f"{name}.jpg"
        paths[name].write_bytes(_jpeg(Image.fromarray(sample_photo(name))))
    return paths


@pytest.fixture(scope="module")
def photo_vectors(models, photo_files) -> dict[str, np.ndarray]:
    return {p: m.embed([photo_files[n] for n in NAMES]) for p, m in models.items()}


def _assert_embeddings(vectors: np.ndarray, n: int, dim: int = 1280) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (n, dim)
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# -------------------------------------------------------------------------- loading


def test_default_load_is_int8_and_fp32_on_request(models):
    assert models["int8"].precision == "int8" and models["int8"].source.name == "model_int8.onnx"
    assert models["fp32"].precision == "fp32" and models["fp32"].source.name == "model_fp32.onnx"
    manifest = ModelManifest.read(default_model_dir())
    for precision, model in models.items():
        assert model.dim == 1280 == manifest.embedding_dim
        assert model.model_sha256 == manifest.files[precision].sha256
        assert model.min_side == manifest.preprocess.resize_size == 256


def test_loading_an_onnx_file_uses_that_files_precision():
    model = Embedder.load(default_model_dir() / "model_fp32.onnx", precision="int8")
    assert model.precision == "fp32" and model.source.name == "model_fp32.onnx"
    assert Embedder.load(default_model_dir()).precision == "int8"  # a directory: the precision argument


@pytest.mark.parametrize("threads", [1, 2])
def test_num_threads_reaches_the_session(threads, photo_files):
    model = Embedder.load(num_threads=threads)
    options = model._session.get_session_options()
    assert options.intra_op_num_threads == threads
    _assert_embeddings(model.embed(photo_files["coffee"]), 1)


def test_unknown_precision_is_a_value_error():
    with pytest.raises(ValueError, match="precision must be 'int8' or 'fp32'"):
        Embedder.load(precision="fp16")  # type: ignore[arg-type]


def test_missing_path_and_missing_manifest(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        Embedder.load(tmp_path / "nowhere")
    shutil.copy(default_model_dir() / "model_int8.onnx", tmp_path / "model_int8.onnx")
    for target in (tmp_path, tmp_path / "model_int8.onnx"):
        with pytest.raises(ModelLoadError, match="no manifest.json"):
            Embedder.load(target)


def _copy_weights(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    for name in ("model_int8.onnx", "model_fp32.onnx", MODEL_MANIFEST):
        shutil.copy(default_model_dir() / name, directory / name)
    return directory


def test_onnx_file_not_in_manifest(tmp_path):
    directory = _copy_weights(tmp_path)
    shutil.copy(directory / "model_int8.onnx", directory / "retrained.onnx")
    with pytest.raises(ModelLoadError, match="retrained.onnx is not listed"):
        Embedder.load(directory / "retrained.onnx")


def test_precision_missing_from_manifest(tmp_path):
    directory = _copy_weights(tmp_path)
    data = json.loads((directory / MODEL_MANIFEST).read_text())
    del data["files"]["int8"]
    (directory / MODEL_MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="has no 'int8' file"):
        Embedder.load(directory)
    assert Embedder.load(directory, precision="fp32").precision == "fp32"


def test_flipped_byte_fails_checksum_before_onnxruntime(tmp_path, monkeypatch):
    directory = _copy_weights(tmp_path)
    model = directory / "model_int8.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("onnxruntime was handed a model")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        Embedder.load(directory)
    with pytest.raises(ChecksumMismatchError):
        Embedder.load(model)
    assert calls == []
    # The untouched fp32 file does reach onnxruntime, so the patch above is the one load() uses.
    with pytest.raises(ModelLoadError, match="onnxruntime was handed a model"):
        Embedder.load(directory, precision="fp32")
    assert len(calls) == 1


# -------------------------------------------------------------------------- embedding


def test_every_input_type_gives_unit_norm_float32(models, photo_files):
    model = models["int8"]
    path = photo_files["chelsea"]
    encoded = path.read_bytes()
    array = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))
    from_path = model.embed(path)
    from_str = model.embed(str(path))
    from_bytes = model.embed(encoded)
    from_array = model.embed(array)
    from_pil = model.embed(Image.fromarray(array))
    for vectors in (from_path, from_str, from_bytes, from_array, from_pil):
        _assert_embeddings(vectors, 1)
    # The same pixels give the same vector, whatever container carried them.
    np.testing.assert_array_equal(from_path, from_bytes)
    np.testing.assert_array_equal(from_path, from_str)
    np.testing.assert_allclose(from_array, from_pil, atol=1e-6)
    np.testing.assert_allclose(from_path, from_array, atol=1e-5)
    mixed = model.embed([path, encoded, array, Image.fromarray(array)])
    _assert_embeddings(mixed, 4)
    np.testing.assert_allclose(mixed, np.repeat(from_path, 4, axis=0), atol=1e-5)


def test_empty_input_gives_empty_matrix(models):
    out = models["int8"].embed([])
    assert out.shape == (0, 1280) and out.dtype == np.float32


def test_batch_size_does_not_change_results(models, photo_files):
    paths = [photo_files[n] for n in NAMES]
    for model in models.values():
        one = model.embed(paths, batch_size=1)
        many = model.embed(paths, batch_size=32)
        odd = model.embed(paths, batch_size=4)  # a ragged last batch
        _assert_embeddings(one, len(NAMES))
        np.testing.assert_allclose(one, many, atol=1e-4)
        np.testing.assert_allclose(one, odd, atol=1e-4)
    with pytest.raises(ValueError, match="batch_size"):
        models["int8"].embed(paths, batch_size=0)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_edited_copy_is_nearest_to_its_original(precision, models, photo_vectors):
    model = models[precision]
    references = photo_vectors[precision]
    edited = model.embed([listing_edit(sample_photo(n)) for n in NAMES])
    similarity = edited @ references.T
    assert list(similarity.argmax(axis=1)) == list(range(len(NAMES))), np.round(similarity, 3)
    # Unrelated photos are clearly further away than the edited copy.
    margin = np.diag(similarity) - np.where(np.eye(len(NAMES), dtype=bool), -1, similarity).max(axis=1)
    assert margin.min() > 0.2, np.round(similarity, 3)


def test_int8_agrees_with_fp32(photo_vectors, models):
    cosine = np.sum(photo_vectors["int8"] * photo_vectors["fp32"], axis=1)
    assert cosine.min() >= 0.97, dict(zip(NAMES, cosine.round(4)))
    assert np.median(cosine) >= 0.98
    # ... and the two precisions are genuinely different graphs, not the same file twice.
    assert models["int8"].model_sha256 != models["fp32"].model_sha256
    assert not np.array_equal(photo_vectors["int8"], photo_vectors["fp32"])


def test_different_photos_are_not_collapsed(photo_vectors):
    similarity = photo_vectors["fp32"] @ photo_vectors["fp32"].T
    off_diagonal = similarity[~np.eye(len(NAMES), dtype=bool)]
    assert off_diagonal.max() < 0.7


def test_bad_input_raises_image_decode_error(models, photo_files, tmp_path):
    model = models["int8"]
    with pytest.raises(ImageDecodeError):
        model.embed(b"this is not an image")
    with pytest.raises(ImageDecodeError, match="not found"):
        model.embed(tmp_path / "missing.jpg")
    with pytest.raises(ImageDecodeError, match="uint8"):
        model.embed(np.zeros((64, 64, 3), dtype=np.float32))
    truncated = photo_files["coffee"].read_bytes()[:2000]
    with pytest.raises(ImageDecodeError):
        model.embed([photo_files["chelsea"], truncated])


def test_inference_path_never_imports_torch_or_scipy(photo_files, tmp_path):
    """Embedding, indexing (hashes included) and checking run on the inference install, which has
    neither torch nor scipy / imagehash (hash version 1's DCT is numpy's, see authvision.hashing)."""
    code = (
        "import sys\n"
        "import authvision as av\n"
        f"v = av.Embedder.load().embed({str(photo_files['rocket'])!r})\n"
        "assert v.shape == (1, 1280), v.shape\n"
        "assert 'onnxruntime' in sys.modules\n"
        "checker = av.AuthenticityChecker(av.Embedder.load())\n"
        f"checker.add_references([{str(photo_files['rocket'])!r}, {str(photo_files['coffee'])!r}], 'genuine', product='p', brand='b')\n"
        f"assert checker.check({str(photo_files['coffee'])!r}).duplicate_of is not None\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'scipy', 'imagehash'))\n"
        "assert not leaked, leaked[:5]\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_pixels_and_normalised_tensors_give_the_same_embeddings(models, photo_files):
    """Checker and scanner hand the model uint8 crops, normalised in one lookup for the batch: the
    embeddings are bit for bit those of the float tensors of the one preprocessing definition."""
    from authvision.preprocess import pixels_batch, preprocess_batch

    images = [models["int8"].decode(path).image for path in photo_files.values()]
    for model in models.values():
        config = model.manifest.preprocess
        from_pixels = model.run_tensors(pixels_batch(images, config)).vectors
        np.testing.assert_array_equal(from_pixels, model.run_tensors(preprocess_batch(images, config)).vectors)
        np.testing.assert_array_equal(from_pixels, model.embed_decoded(images))
    with pytest.raises(ValueError, match="uint8"):
        models["int8"].run_tensors(np.zeros((1, 3, 224, 224), dtype=np.float64))
