"""torch side of the one preprocessing definition, built from the model manifest's PreprocessConfig.

Mirrors :mod:`authvision.preprocess` step by step with torchvision.transforms.v2 on PIL images (Resize
on a PIL image resizes with Pillow), so training and ONNX Runtime inference see the same tensor.
"""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode, v2

from authvision.manifest import PreprocessConfig

_INTERPOLATION = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


def geometric_transform(config: PreprocessConfig) -> v2.Compose:
    return v2.Compose(
        [
            v2.Resize(config.resize_size, interpolation=_INTERPOLATION[config.interpolation], antialias=True),
            v2.CenterCrop(config.input_size),
        ]
    )


def tensor_transform(config: PreprocessConfig) -> v2.Compose:
    return v2.Compose(
        [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(config.mean), std=list(config.std)),
        ]
    )


def eval_transform(config: PreprocessConfig) -> v2.Compose:
    """PIL RGB image → normalised (3, input_size, input_size) float tensor."""
    return v2.Compose([geometric_transform(config), tensor_transform(config)])
