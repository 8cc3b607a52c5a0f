"""Retraining: config, data checks and split, item cut-outs, a tiny end-to-end run with resume, DDP on gloo.

Runs on a tiny seeded brand kit (1 brand, 2 products) at a small input size so that a few training
steps, the ONNX export and the checker fit in CI time.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_metric_learning")
pytestmark = pytest.mark.train

import authvision as av  # noqa: E402
from authvision.brandkit import KitConfig, generate_kit, make_brands, make_products, render_background, render_item  # noqa: E402
from authvision.datasets import read_photo_set  # noqa: E402
from authvision.errors import DatasetError  # noqa: E402
from authvision_train import pipeline  # noqa: E402
from authvision_train.config import load_config  # noqa: E402
from authvision_train.data import item_mask, prepare  # noqa: E402

TINY = {
    "model.input_size": 96, "model.resize_size": 110, "model.projection_dim": 32,
    "train.epochs": 1, "train.batch_size": 8, "train.m_per_class": 2, "train.steps_per_epoch": 2,
    "split.min_photos_per_class": 2,
}


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kit")
    config = KitConfig(brands=1, products_per_brand=2, genuine_refs=6, fake_refs=6, listings=24, photo_size=320)
    generate_kit(out, seed=3, config=config)
    return out


def copy_refs(kit: Path, dest: Path) -> Path:
    shutil.copytree(kit / "references", dest)
    return dest


def test_config_defaults_overrides_and_typos(tmp_path):
    config = load_config()
    assert config.model.projection_dim == 256 and config.train.time_budget_minutes == 15.0
    assert load_config(None, {"train.epochs": 3, "seed": 5}).train.epochs == 3
    custom = tmp_path / "c.toml"
    custom.write_text("seed = 9\n[model]\ninput_size = 192\nresize_size = 220\n")
    loaded = load_config(custom)
    assert loaded.seed == 9 and loaded.model.input_size == 192 and loaded.train.epochs == config.train.epochs
    with pytest.raises(ValueError, match="unknown key"):
        load_config(None, {"train.epoch": 3})
    with pytest.raises(ValueError, match="integer"):
        load_config(None, {"train.epochs": "many"})
    custom.write_text("[trian]\nepochs = 1\n")
    with pytest.raises(ValueError, match="trian"):
        load_config(custom)


def test_split_keeps_near_duplicates_together_and_skips_corrupt_photos(kit, tmp_path):
    refs = copy_refs(kit, tmp_path / "refs")
    product = sorted((refs / next(p.name for p in refs.iterdir())).iterdir())[0]
    originals = sorted((product / "genuine").glob("*.jpg"))
    for original in originals:  # a re-saved copy of every genuine photo: same source
        Image.open(original).save(original.with_name(original.stem + "-copy.jpg"), quality=70)
    (product / "fake" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    data = prepare(read_photo_set(refs), validation_fraction=0.3, min_photos_per_class=2, seed=0)
    in_train = {id(p) for p in data.train}
    side = {p.source.path.name: ("train" if id(p) in in_train else "validation") for p in data.train + data.validation}
    for original in originals:
        assert side[original.name] == side[original.stem + "-copy.jpg"]
    assert any(v == "validation" for v in side.values()) and any(v == "train" for v in side.values())
    assert len(data.skipped) == 1 and "broken.jpg" in data.skipped[0]
    summary = data.summary()
    assert summary["products"] == 2 and summary["classes"] == 4


def test_bad_brand_folders_name_the_folder(kit, tmp_path):
    refs = copy_refs(kit, tmp_path / "one-class")
    product = sorted(next(refs.iterdir()).iterdir())[0]
    shutil.rmtree(product / "fake")
    with pytest.raises(DatasetError, match=f"{product.name}.*no fake photos"):
        prepare(read_photo_set(refs), validation_fraction=0.3, min_photos_per_class=2, seed=0)

    refs = copy_refs(kit, tmp_path / "few")
    product = sorted(next(refs.iterdir()).iterdir())[0]
    for photo in sorted((product / "fake").glob("*.jpg"))[1:]:
        photo.unlink()
    with pytest.raises(DatasetError, match=f"{product.name}.*only 1 fake"):
        prepare(read_photo_set(refs), validation_fraction=0.3, min_photos_per_class=2, seed=0)

    refs = copy_refs(kit, tmp_path / "label")
    product = sorted(next(refs.iterdir()).iterdir())[0]
    (product / "fake").rename(product / "replica")
    with pytest.raises(DatasetError, match="replica"):
        read_photo_set(refs)


@pytest.mark.parametrize("backdrop", ["studio", "table", "concrete"])
def test_item_mask_finds_the_item(backdrop):
    product = make_products(make_brands(1, 1)[0], seed=1)[0]
    rng = np.random.default_rng(0)
    item = render_item(product, rng=rng, size=300)
    if backdrop == "studio":
        canvas = Image.new("RGB", (480, 420), (236, 236, 238))
    else:
        canvas = render_background(backdrop, rng, (480, 420)).convert("RGB")
    canvas.paste(item, (90, 60), item)
    truth = np.zeros((420, 480), bool)
    truth[60 : 60 + item.height, 90 : 90 + item.width] = np.asarray(item.getchannel("A")) > 127
    mask = item_mask(canvas)
    assert mask is not None and mask.size == canvas.size
    found = np.asarray(mask) > 127
    iou = (found & truth).sum() / (found | truth).sum()
    assert iou > 0.8, iou


def test_tiny_end_to_end_training_with_resume(kit, tmp_path):
    out = tmp_path / "model"
    config = load_config(None, TINY)
    result = pipeline.run(kit / "references", out, config=config, listings=kit / "listings.csv", progress=False, max_steps=2)
    for name in ("model_fp32.onnx", "manifest.json", "README.md", "metrics.json", "run.json", "checkpoints/last.pt",
                 "checkpoints/best.pt", "checker/manifest.json", "report/before/report.md", "report/after/report.md",
                 "report/comparison.md"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["epochs_run"] == 1 and metrics["training"]["stopped"] == "max_steps"
    assert set(metrics["evaluation"]) == {"before", "after"}
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["model"]["input_size"] == 96 and run["versions"]["torch"] == torch.__version__
    card = (out / "README.md").read_text()
    assert "Intended use" in card and "Limitations" in card and "before and after" in card

    embedder = av.Embedder.load(out, precision="fp32")
    assert embedder.dim == 32 and embedder.manifest.preprocess.input_size == 96 and embedder.has_fake_head
    checker = av.AuthenticityChecker.load(result.checker_dir)
    assert checker.calibrated and len(checker.index) == 24
    listing = next((kit / "listings").glob("*.jpg"))
    verdict = checker.check(listing)
    assert verdict.label in ("genuine", "fake", "unknown") and verdict.evidence["model_fake_logit"] != 0.0
    scanned = next(iter(checker.scan([listing])))  # the scanner carries the head's logit too
    assert scanned.verdict.evidence["model_fake_logit"] == pytest.approx(verdict.evidence["model_fake_logit"], abs=1e-4)

    resumed = pipeline.run(kit / "references", out, config=load_config(None, {**TINY, "train.epochs": 2}),
                           progress=False, max_steps=2, resume=True)
    history = resumed.metrics["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, refs: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    from authvision_train.data import brandkit_backgrounds, listing_like
    from authvision_train.train import Validator, preprocess_config, train
    from authvision_train.transforms import eval_transform

    config = load_config(None, {**TINY, "train.epochs": 2, "train.threads": 1})
    data = prepare(read_photo_set(refs), validation_fraction=0.3, min_photos_per_class=2, seed=0)
    backgrounds = brandkit_backgrounds("train", count=4, side=320)
    queries = [(image, photo.label, photo.product) for image, photo in listing_like(data.validation, backgrounds, seed=1, copies=1)]
    validator = Validator(data.train, queries, eval_transform(preprocess_config(config)))
    result = train(config, data, validator, backgrounds, Path(out) / "checkpoints", progress=False)
    weights = torch.cat([p.detach().flatten() for p in result.model.parameters()])
    torch.save({"weights": weights, "epochs": len(result.history)}, Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_with_two_cpu_processes_on_gloo(kit, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(kit / "references"), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    # rank 0 validated and checkpointed both epochs (at the end it reloads its best epoch's weights)
    last = torch.load(tmp_path / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 1 and rank0["epochs"] == 2 and len(last["history"]) == 2
    # DDP keeps every replica identical after each optimiser step: rank 1's final weights = rank 0's last epoch
    last_weights = torch.cat([p.flatten() for name, p in last["model"].items()
                              if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))])
    assert torch.allclose(rank1["weights"], last_weights, atol=1e-6)
