"""The one preprocessing definition: decoded RGB image → normalised CHW float32 tensor.

The numpy path here serves ONNX Runtime inference; ``authvision_train.transforms`` builds the torch
path from the same :class:`~authvision.manifest.PreprocessConfig` with torchvision transforms, and a
test holds the two equal. Both resize with Pillow, so they agree to float rounding.
"""

from __future__ import annotations

import functools
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
    return center_crop(resize_shorter(image, config), config)


def resize_shorter(image: Image.Image, config: PreprocessConfig) -> Image.Image:
    """Shorter side to ``resize_size`` (the image itself when it is that size already)."""
    if image.mode != "RGB":
        raise ValueError(f"preprocess expects an RGB image (use authvision.load_image), got {image.mode}")
    size = resized_size(image.width, image.height, config.resize_size)
    if size != image.size:
        image = image.resize(size, _RESAMPLE[config.interpolation])
    return image


def center_crop(image: Image.Image, config: PreprocessConfig) -> Image.Image:
    """The centred ``input_size`` square of an image that :func:`resize_shorter` gave."""
    return image.crop(center_crop_box(image.width, image.height, config.input_size))


def to_tensor(image: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """Pixel part: uint8 HWC → float32 CHW scaled to [0, 1] and normalised."""
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"to_tensor expects an RGB image, got an array of shape {pixels.shape}")
    lut = _pixel_table(tuple(config.mean), tuple(config.std))
    out = np.empty((3, pixels.shape[0], pixels.shape[1]), dtype=np.float32)
    for channel in range(3):
        np.take(lut[channel], pixels[:, :, channel], out=out[channel])
    return out


@functools.lru_cache(maxsize=8)
def _pixel_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: each uint8 value after scaling and normalisation, per channel.

    The same float32 operations, in the same order, as normalising the pixels themselves, so a
    lookup is bit-identical to computing them, and 4-5x faster (one pass instead of five).
    """
    values = np.arange(256, dtype=np.float32)[:, None] * np.float32(1.0 / 255.0)
    mean_ = np.asarray(mean, dtype=np.float32)
    inv_std = np.float32(1.0) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(((values - mean_) * inv_std).T)


def preprocess(image: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """One RGB image → (3, input_size, input_size) float32."""
    return to_tensor(resize_and_crop(image, config), config)


def preprocess_batch(images: Sequence[Image.Image], config: PreprocessConfig) -> np.ndarray:
    """RGB images → (n, 3, input_size, input_size) float32."""
    out = np.empty((len(images), 3, config.input_size, config.input_size), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = preprocess(image, config)
    return out
