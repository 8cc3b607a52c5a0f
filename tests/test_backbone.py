"""The torch EfficientNet-Lite0: ImageNet weights load right, heads behave, and torch matches the shipped ONNX."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from authvision.embedder import Embedder, default_model_dir  # noqa: E402
from authvision.manifest import ModelManifest, PreprocessConfig, sha256_file  # noqa: E402
from authvision.sample_photos import sample_photo  # noqa: E402
from authvision_train.backbone import EmbeddingNet, GeM, lite0_pretrained  # noqa: E402
from authvision_train.transforms import eval_transform  # noqa: E402

pytestmark = pytest.mark.train

NAMES = ("chelsea", "coffee", "rocket", "astronaut", "grace_hopper", "stereo_motorcycle_left", "hubble_deep_field")
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968}  # espresso, cup
ROCKET_CLASSES = {657, 744, 812}  # missile, projectile, space shuttle


@pytest.fixture(scope="module")
def manifest() -> ModelManifest:
    return ModelManifest.read(default_model_dir())


@pytest.fixture(scope="module")
def backbone():
    return lite0_pretrained()


@pytest.fixture(scope="module")
def pixels(manifest) -> dict[str, torch.Tensor]:
    assert manifest.preprocess == PreprocessConfig()  # the shipped model uses the library defaults
    transform = eval_transform(manifest.preprocess)
    return {name: transform(Image.fromarray(sample_photo(name))) for name in NAMES}


@pytest.fixture(scope="module")
def batch(pixels) -> torch.Tensor:
    return torch.stack([pixels[name] for name in NAMES])


@pytest.fixture(scope="module")
def features(backbone, batch) -> torch.Tensor:
    with torch.inference_mode():
        return backbone.forward_features(batch)


def test_imagenet_head_recognises_real_photos(backbone, features):
    assert not backbone.training
    with torch.inference_mode():
        logits = backbone.forward_head(features)
    assert logits.shape == (len(NAMES), 1000)
    top = dict(zip(NAMES, logits.argmax(dim=1).tolist()))
    assert top["chelsea"] in CAT_CLASSES, top
    assert top["coffee"] in COFFEE_CLASSES, top
    assert top["rocket"] in ROCKET_CLASSES, top
    # A confident cat: the five cat classes together hold most of the probability.
    cat_probability = logits[NAMES.index("chelsea")].softmax(0)[sorted(CAT_CLASSES)].sum()
    assert cat_probability > 0.8


def test_forward_features_shape(backbone, features):
    assert features.shape == (len(NAMES), 1280, 7, 7)
    assert features.min() >= 0 and features.max() <= 6  # ReLU6 output
    with torch.inference_mode():
        assert backbone.forward_features(torch.zeros(1, 3, 256, 256)).shape == (1, 1280, 8, 8)
        assert backbone.forward_head(features, pre_logits=True).shape == (len(NAMES), 1280)


def test_gem_with_p1_is_average_pooling(features):
    average = features.mean(dim=(2, 3))
    torch.testing.assert_close(GeM(p=1.0)(features), average, atol=1e-5, rtol=1e-5)
    # p = 3 is a different pooling, bounded below by the mean (power-mean inequality).
    gem3 = GeM(p=3.0)(features)
    assert (gem3 >= average - 1e-5).all()
    assert (gem3 - average).abs().max() > 0.1


def test_embedding_net_gem_p1_matches_avg_pooling(backbone, batch):
    with torch.inference_mode():
        gem1 = EmbeddingNet(backbone, pooling="gem", gem_p=1.0)(batch)
        avg = EmbeddingNet(backbone, pooling="avg")(batch)
    torch.testing.assert_close(gem1, avg, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        EmbeddingNet(backbone, pooling="max")


def test_projection_gives_unit_norm_rows(backbone, batch):
    torch.manual_seed(0)
    net = EmbeddingNet(backbone, projection_dim=256).eval()
    assert net.embedding_dim == 256
    with torch.inference_mode():
        out = net(batch)
    assert out.shape == (len(NAMES), 256) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(len(NAMES)), atol=1e-5, rtol=0)


def test_torch_matches_shipped_onnx_fp32(backbone, batch, manifest):
    assert manifest.pooling == "gem"
    net = EmbeddingNet(backbone, pooling=manifest.pooling).eval()
    with torch.inference_mode():
        expected = net(batch).numpy()
    onnx = Embedder.load(precision="fp32").embed_tensors(batch.numpy())
    assert onnx.shape == expected.shape == (len(NAMES), manifest.embedding_dim)
    cosine = np.sum(expected * onnx, axis=1)
    assert cosine.min() >= 0.999, dict(zip(NAMES, cosine.round(6)))
    # Distinct photos stay distinct, so the agreement above is not a constant vector agreeing with itself.
    assert (expected @ expected.T)[~np.eye(len(NAMES), dtype=bool)].max() < 0.9


@pytest.mark.slow
def test_export_writes_gated_checksummed_model(tmp_path, backbone, batch):
    from authvision_train.export import DEFAULT_PROVENANCE, GATE_MEDIAN, GATE_MIN, export_model

    net = EmbeddingNet(backbone, pooling="gem").eval()
    out = tmp_path / "model"
    manifest = export_model(net, out, name="test-export", config=PreprocessConfig(), provenance=dict(DEFAULT_PROVENANCE))

    assert ModelManifest.read(out) == manifest
    assert set(manifest.files) == {"fp32", "int8"}
    for model_file in manifest.files.values():
        path = out / model_file.filename
        assert sha256_file(path) == model_file.sha256
        assert path.stat().st_size == model_file.size_bytes
    gate = manifest.quantization["gate"]
    assert gate["cosine_median"] >= GATE_MEDIAN and gate["cosine_min"] >= GATE_MIN, gate
    assert manifest.quantization["torch_vs_fp32_min_cosine"] >= 0.999

    # The exported files load through the checksum-verifying path and reproduce the shipped model.
    tensors = batch.numpy()
    for precision in ("fp32", "int8"):
        exported = Embedder.load(out, precision=precision).embed_tensors(tensors)
        shipped = Embedder.load(precision=precision).embed_tensors(tensors)
        assert np.sum(exported * shipped, axis=1).min() >= 0.99, precision
