"""torch side of the one preprocessing definition, built from the model manifest's PreprocessConfig.

The geometric half is :func:`authvision.preprocess.resize_and_crop` itself (a Pillow resize of the
centre crop's footprint), so training and ONNX Runtime inference crop the same pixels; the pixel
half is torchvision.transforms.v2 (scale, normalise), equal to the numpy lookup to float rounding.
"""

from __future__ import annotations

import torch
from PIL import Image
from torchvision.transforms import v2

from authvision.manifest import PreprocessConfig
from authvision.preprocess import resize_and_crop


class ResizeAndCrop:
    """Shorter side to ``resize_size``, centre crop ``input_size``: a PIL image in, a PIL image out."""

    def __init__(self, config: PreprocessConfig) -> None:
        self.config = config

    def __call__(self, image: Image.Image) -> Image.Image:
        return resize_and_crop(image, self.config)

    def __repr__(self) -> str:
        return f"ResizeAndCrop({self.config!r})"


def geometric_transform(config: PreprocessConfig) -> ResizeAndCrop:
    return ResizeAndCrop(config)


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
