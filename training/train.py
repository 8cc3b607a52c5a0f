"""Fine-tune EfficientNet-Lite0 into a brand's embedding model (supervised contrastive, CPU friendly).

Classes are (product, label) pairs; a batch holds both classes of a few products, so the loss pulls
photos of the same product-and-label together and pushes the genuine and fake photos of one product
apart (SupCon, pytorch-metric-learning). The stem and the first ``freeze_blocks`` MBConv blocks keep
their ImageNet weights (and BatchNorm statistics); a linear projection makes the embedding small.

After every epoch the model is validated the way the checker uses it: held-out photos, pasted on
backgrounds and listing-styled, are scored by their nearest genuine vs nearest fake training photo of
their best-matching product, and the fake ROC-AUC decides the best epoch and early stopping. A
checkpoint is written every epoch (``last.pt``, ``best.pt``); ``resume=True`` continues from
``last.pt`` with the same optimiser state and RNG streams.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its own share of every
epoch's batches under DistributedDataParallel (gloo on CPUs); rank 0 validates and writes checkpoints.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from authvision.embedder import available_cpus
from authvision.evaluation import detection_metrics
from authvision.manifest import PreprocessConfig

from .backbone import EmbeddingNet, ExportNet, lite0_pretrained
from .config import RunConfig
from .data import ListingStyle, PasteOnBackground, PhotoDataset, PreparedData, TrainingPhoto, per_class_batches
from .transforms import eval_transform

LOG = logging.getLogger(__name__)

CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"


@dataclass
class TrainResult:
    model: EmbeddingNet
    history: list[dict[str, Any]]
    best_epoch: int
    best_roc_auc: float
    seconds: float
    stopped: str
    extra: dict[str, Any] = field(default_factory=dict)


def preprocess_config(config: RunConfig) -> PreprocessConfig:
    return PreprocessConfig(input_size=config.model.input_size, resize_size=config.model.resize_size)


def build_model(config: RunConfig) -> EmbeddingNet:
    model = EmbeddingNet(
        lite0_pretrained(), pooling=config.model.pooling, projection_dim=config.model.projection_dim or None,
        fake_head=config.model.fake_head,
    )
    freeze(model, config.model.freeze_blocks)
    return model


def freeze(model: EmbeddingNet, blocks: int) -> None:
    """Stem and the first ``blocks`` MBConv blocks: no gradients, BatchNorm statistics kept."""
    backbone = model.backbone
    frozen: list[nn.Module] = [backbone._conv_stem, backbone._bn0, *backbone._blocks[:blocks]]
    for module in [*frozen, backbone._fc]:  # the ImageNet classifier is not part of the embedding
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    model._frozen = frozen  # type: ignore[attr-defined]


def set_train_mode(net: nn.Module, model: EmbeddingNet) -> None:
    """Training mode for ``net`` (``model`` or a wrapper of it) except for ``model``'s frozen modules,
    whose BatchNorm must keep its ImageNet statistics."""
    net.train()
    for module in getattr(model, "_frozen", []):
        module.eval()


def _optimizer(model: EmbeddingNet, config: RunConfig) -> torch.optim.Optimizer:
    head = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("backbone.")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")]
    return torch.optim.AdamW(
        [{"params": head, "lr": config.train.lr}, {"params": body, "lr": config.train.backbone_lr}],
        weight_decay=config.train.weight_decay,
    )


@torch.inference_mode()
def embed(model: EmbeddingNet, tensors: Sequence[torch.Tensor], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
    """(embeddings, fake logits or None) of preprocessed tensors, in eval mode."""
    model.eval()
    vectors, logits = [], []
    for i in range(0, len(tensors), batch_size):
        v, logit = model.embed_and_score(torch.stack(list(tensors[i : i + batch_size])))
        vectors.append(v.numpy())
        if logit is not None:
            logits.append(logit.numpy())
    if not vectors:
        return np.zeros((0, model.embedding_dim), np.float32), None
    return np.concatenate(vectors), (np.concatenate(logits) if logits else None)


def knn_fake_scores(query: np.ndarray, reference: np.ndarray, ref_products: Sequence[str], ref_labels: Sequence[str],
                    k: int = 10) -> np.ndarray:
    """Fake score per query: similarity to the nearest fake minus the nearest genuine reference of its
    best-matching product (the product of the most similar reference), as the checker's evidence."""
    sims = query @ reference.T
    products = np.asarray(ref_products)
    labels = np.asarray(ref_labels)
    scores = np.empty(len(query))
    for i, row in enumerate(sims):
        top = np.argsort(-row)[:k]
        product = products[top[0]]
        same = products == product
        genuine = row[same & (labels == "genuine")]
        fake = row[same & (labels == "fake")]
        scores[i] = (fake.max() if fake.size else -1.0) - (genuine.max() if genuine.size else -1.0)
    return scores


class Validator:
    """Validation as the checker sees it (see the module docstring); fixed images, so epochs compare.

    ``queries``: (image, label, product) — listing-styled held-out brand photos, or better, labelled
    listings held out for calibration (they show what the model will face).
    """

    def __init__(self, references: Sequence[TrainingPhoto], queries: Sequence[tuple[Any, str, str]], to_tensor: Callable):
        self.reference_tensors = [to_tensor(p.image) for p in references]
        self.reference_products = [p.product for p in references]
        self.reference_labels = [p.label for p in references]
        self.query_tensors = [to_tensor(image) for image, _, _ in queries]
        self.query_truth = [label for _, label, _ in queries]
        self.query_products = [product for _, _, product in queries]

    def __call__(self, model: EmbeddingNet) -> dict[str, float | None]:
        """``roc_auc`` decides the best epoch: the fake head's when the model has one (on listings it
        separates far better than neighbour distances, see RESEARCH.md), else the neighbours'."""
        reference, _ = embed(model, self.reference_tensors)
        query, logits = embed(model, self.query_tensors)
        is_fake = [t == "fake" for t in self.query_truth]
        knn = detection_metrics(is_fake, knn_fake_scores(query, reference, self.reference_products, self.reference_labels))
        head = detection_metrics(is_fake, logits) if logits is not None else None
        top1 = query @ reference.T
        hit = np.array(self.reference_products)[top1.argmax(1)] == np.array(self.query_products)
        return {
            "roc_auc": (head or knn)["roc_auc"],
            "knn_roc_auc": knn["roc_auc"],
            "head_roc_auc": None if head is None else head["roc_auc"],
            "product_top1": float(hit.mean()),
        }


def _forward(net: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(embeddings, fake logits or None) through the module's own forward, so DDP's hooks see both."""
    out = net(images)
    return out if isinstance(out, tuple) else (out, None)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def _rng_state(python_rng: random.Random) -> dict[str, Any]:
    return {"python": python_rng.getstate(), "torch": torch.get_rng_state(), "numpy": np.random.get_state()}


def _restore_rng(state: dict[str, Any], python_rng: random.Random) -> None:
    python_rng.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])


def train(
    config: RunConfig,
    data: PreparedData,
    validator: Validator,
    backgrounds,
    checkpoint_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    max_steps: int | None = None,
) -> TrainResult:
    """Train, validate every epoch, keep the best weights; see the module docstring."""
    from pytorch_metric_learning.losses import SupConLoss
    from tqdm import tqdm

    rank, world = _distributed()
    torch.set_num_threads(config.train.threads or max(1, available_cpus() // world))
    seed = config.seed + 1000 * rank
    python_rng = random.Random(seed)
    torch.manual_seed(seed)
    np.random.seed(seed)

    model = build_model(config)
    optimizer = _optimizer(model, config)
    epochs = config.train.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, epochs) / epochs)) if e > 0 else 0.3
    )
    loss_fn = SupConLoss(temperature=config.train.temperature)
    history: list[dict[str, Any]] = []
    best_auc, best_epoch, start_epoch, elapsed_before = -1.0, -1, 0, 0.0
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if resume and (checkpoint_dir / CHECKPOINT_LAST).is_file():
        state = torch.load(checkpoint_dir / CHECKPOINT_LAST, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, best_auc, best_epoch = state["history"], state["best_roc_auc"], state["best_epoch"]
        start_epoch, elapsed_before = state["epoch"] + 1, state["seconds"]
        _restore_rng(state["rng"][min(rank, len(state["rng"]) - 1)], python_rng)
        LOG.info("resumed after epoch %d (best ROC-AUC %.4f at epoch %d)", state["epoch"], best_auc, best_epoch)
    net: nn.Module = ExportNet(model)  # forward gives the embedding and, with a head, the fake logit
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net)

    to_tensor = eval_transform(preprocess_config(config))
    dataset = PhotoDataset(
        data.train,
        PasteOnBackground(backgrounds, config.augment.paste_probability, python_rng),
        ListingStyle(config.augment.strength, python_rng),
        to_tensor,
    )
    labels = [p.class_index for p in data.train]
    budget = config.train.time_budget_minutes * 60.0
    started = time.perf_counter() - elapsed_before
    stopped, steps = "epochs", 0
    epoch_seconds: list[float] = []
    for epoch in range(start_epoch, epochs):
        epoch_start = time.perf_counter()
        set_train_mode(net, model)
        batches = per_class_batches(data.classes, labels, config.train.batch_size, config.train.m_per_class, python_rng,
                                    steps=config.train.steps_per_epoch * world)
        if world > 1:  # every rank must run the same number of steps, or DDP's all-reduce waits forever
            per_rank = max(1, len(batches) // world)
            batches = [batches[(rank + world * i) % len(batches)] for i in range(per_rank)]
        losses = []
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress or rank != 0, leave=False)
        for batch in bar:
            images, targets = zip(*(dataset[i] for i in batch))
            embeddings, logits = _forward(net, torch.stack(images))
            loss = loss_fn(embeddings, torch.tensor(targets))
            if logits is not None:
                is_fake = torch.tensor([float(data.classes[t][1] == "fake") for t in targets])
                loss = loss + config.train.bce_weight * nn.functional.binary_cross_entropy_with_logits(logits, is_fake)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach().item())
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        scheduler.step()
        record: dict[str, Any] = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None}
        if rank == 0:
            record.update(validator(model))
            record["seconds"] = round(time.perf_counter() - epoch_start, 1)
            auc = record["roc_auc"] if record["roc_auc"] is not None else -1.0
            improved = auc > best_auc
            if improved:
                best_auc, best_epoch = auc, epoch + 1
            history.append(record)
            LOG.info("epoch %d: loss %.4f, validation ROC-AUC %.4f, product top-1 %.3f (%.0f s)", epoch + 1,
                     record["loss"] or float("nan"), auc, record["product_top1"], record["seconds"])
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "history": history,
                "best_roc_auc": best_auc,
                "best_epoch": best_epoch,
                "seconds": time.perf_counter() - started,
                "rng": [_rng_state(python_rng)],
                "config": config.to_dict(),
            }
            _atomic_save(state, checkpoint_dir / CHECKPOINT_LAST)
            if improved:
                _atomic_save({"model": model.state_dict(), "epoch": epoch + 1, "roc_auc": auc}, checkpoint_dir / CHECKPOINT_BEST)
        epoch_seconds.append(time.perf_counter() - epoch_start)
        decision = [None]
        if max_steps is not None and steps >= max_steps:
            decision = ["max_steps"]
        elif rank == 0 and best_epoch > 0 and epoch + 1 - best_epoch >= config.train.patience:
            decision = [f"early stop: no better validation ROC-AUC for {config.train.patience} epochs"]
        elif rank == 0 and time.perf_counter() - started + max(epoch_seconds) > budget:
            decision = [f"time budget of {config.train.time_budget_minutes:g} min"]
        if world > 1:  # rank 0 decides (it alone validates); the others follow
            torch.distributed.broadcast_object_list(decision, src=0)
        if decision[0] is not None:
            stopped = decision[0]
            break
    seconds = time.perf_counter() - started
    if rank == 0 and (checkpoint_dir / CHECKPOINT_BEST).is_file():
        model.load_state_dict(torch.load(checkpoint_dir / CHECKPOINT_BEST, map_location="cpu", weights_only=True)["model"])
    model.eval()
    return TrainResult(model, history, best_epoch, best_auc, seconds, stopped)


def _atomic_save(state: dict[str, Any], path: Path) -> None:
    """A crash while saving leaves the previous checkpoint, never a torn one."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
