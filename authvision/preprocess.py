"""The one preprocessing definition: decoded RGB image → normalised CHW float32 tensor.

The numpy path here serves ONNX Runtime inference; ``authvision_train.transforms`` builds the torch
path from the same :class:`~authvision.manifest.PreprocessConfig` with torchvision transforms, and a
test holds the two equal. Both resize with Pillow, so they agree to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from .manifest import PreprocessConfig

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def resized_size(width: int, height: int, shorter_side: int) -> tuple[int, int]:
    """(width, height) with the shorter side scaled to ``shorter_side``, as torchvision's Resize(int)."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shorter_side, int(shorter_side * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def center_crop_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """Pillow crop box of a centred ``size`` square, rounded as torchvision's CenterCrop."""
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return left, top, left + size, top + size


def resize_and_crop(image: Image.Image, config: PreprocessConfig) -> Image.Image:
    """Geometric part of preprocessing: shorter side to ``resize_size``, centre crop ``input_size``."""
    if image.mode != "RGB":
        raise ValueError(f"preprocess expects an RGB image (use authvision.load_image), got {image.mode}")
    size = resized_size(image.width, image.height, config.resize_size)
    if size != image.size:
        image = image.resize(size, _RESAMPLE[config.interpolation])
    return image.crop(center_crop_box(image.width, image.height, config.input_size))


def to_tensor(image: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """Pixel part: uint8 HWC → float32 CHW scaled to [0, 1] and normalised."""
    pixels = np.asarray(image, dtype=np.float32) * np.float32(1.0 / 255.0)
    mean = np.asarray(config.mean, dtype=np.float32)
    inv_std = np.float32(1.0) / np.asarray(config.std, dtype=np.float32)
    return np.ascontiguousarray(((pixels - mean) * inv_std).transpose(2, 0, 1))


def preprocess(image: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """One RGB image → (3, input_size, input_size) float32."""
    return to_tensor(resize_and_crop(image, config), config)


def preprocess_batch(images: Sequence[Image.Image], config: PreprocessConfig) -> np.ndarray:
    """RGB images → (n, 3, input_size, input_size) float32."""
    out = np.empty((len(images), 3, config.input_size, config.input_size), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = preprocess(image, config)
    return out
