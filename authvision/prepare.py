"""One way to prepare a photo: decoded RGB image → the model's input pixels and its perceptual hashes.

In the manner of timm's ``resolve_model_data_config`` → ``create_transform``: the transform is made
from the model manifest's :class:`~authvision.manifest.PreprocessConfig`, and every caller (the
checker's ``check``/``check_many``/``calibrate``/``add_references`` and the scanner's decode workers)
calls the same object, so the tensors and hashes of a photo are the same whichever path it took.

Also here: :func:`is_single_input` (does this argument name one photo or many?) and
:func:`decode_inputs` (a batch of inputs → decoded image or error message, one per input).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .errors import ImageDecodeError
from .hashing import HASH_BYTES, HASH_VERSION, perceptual_hashes
from .manifest import PreprocessConfig
from .preprocess import pixels_to_tensor, resize_and_crop

if TYPE_CHECKING:
    from .embedder import Embedder
    from .imageio import DecodedImage, ImageSource

__all__ = ["PhotoTransform", "PreparedPhoto", "create_transform", "decode_inputs", "is_single_input", "resolve_preprocess_config"]

_SINGLE = (str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray)


def is_single_input(images: Any) -> bool:
    """True when ``images`` is one photo (a path, encoded bytes, a PIL image or an array), not a collection."""
    return isinstance(images, _SINGLE)


def as_input_list(images: Any) -> list[Any]:
    """One photo → a one-element list; a collection → its list."""
    return [images] if is_single_input(images) else list(images)


@dataclass(frozen=True)
class PreparedPhoto:
    """What the screen needs of one decoded photo."""

    image: Image.Image  # the decoded RGB image
    pixels: np.ndarray  # (S, S, 3) uint8: the model's centre crop, before normalisation
    hashes: np.ndarray  # (2, HASH_BYTES) uint8: pHash of the photo and of its mirror
    config: PreprocessConfig

    @property
    def tensor(self) -> np.ndarray:
        """(3, S, S) float32: the crop normalised, as :func:`authvision.preprocess.preprocess` gives."""
        return pixels_to_tensor(self.pixels[None], self.config)[0]


class PhotoTransform:
    """Decoded RGB image → :class:`PreparedPhoto` (resize shorter side, centre crop; hashes).

    The model's input stays uint8 pixels here (normalising is the model's, or the embedder's, job:
    see :meth:`authvision.embedder.Embedder.run_tensors`). The perceptual hashes are of definition
    ``hash_version`` (the index's: :attr:`authvision.ReferenceIndex.hash_version`), of the decoded
    photo. The crop is one resize of its footprint (:func:`authvision.preprocess.resize_and_crop`),
    so no resized whole photo exists to share with version 1's canonical resize: indexes of that
    version (saved before version 2) pay its own resize, ~0.9 ms a listing.
    """

    def __init__(self, config: PreprocessConfig, *, hash_version: int = HASH_VERSION) -> None:
        self.config = config
        self.hash_version = hash_version

    @property
    def input_size(self) -> int:
        return self.config.input_size

    def __call__(self, image: Image.Image, *, pixels_out: np.ndarray | None = None, hash_out: np.ndarray | None = None) -> PreparedPhoto:
        """Prepare one image; ``pixels_out`` / ``hash_out`` receive the results in place when given."""
        crop = resize_and_crop(image, self.config)
        hashes = perceptual_hashes(image, version=self.hash_version)
        if pixels_out is not None:
            pixels_out[...] = np.asarray(crop)
            pixels = pixels_out
        else:
            pixels = np.asarray(crop, dtype=np.uint8)
        if hash_out is not None:
            hash_out[...] = hashes
            hashes = hash_out
        return PreparedPhoto(image, pixels, hashes, self.config)

    def batch(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """(pixels (n, S, S, 3) uint8, hashes (n, 2, HASH_BYTES) uint8) of decoded images; the pixels
        go to :meth:`authvision.embedder.Embedder.run_tensors` as they are."""
        side = self.config.input_size
        pixels = np.empty((len(images), side, side, 3), dtype=np.uint8)
        hashes = np.empty((len(images), 2, HASH_BYTES), dtype=np.uint8)
        for i, image in enumerate(images):
            self(image, pixels_out=pixels[i], hash_out=hashes[i])
        return pixels, hashes

    def __repr__(self) -> str:
        return f"PhotoTransform({self.config!r}, hash_version={self.hash_version})"


def resolve_preprocess_config(model: Embedder | PreprocessConfig) -> PreprocessConfig:
    """The preprocessing config of a model (its manifest's), or the config itself."""
    if isinstance(model, PreprocessConfig):
        return model
    return model.manifest.preprocess


def create_transform(model: Embedder | PreprocessConfig, *, hash_version: int = HASH_VERSION) -> PhotoTransform:
    """The photo transform of a model (``create_transform(embedder)``) or of a preprocessing config,
    hashing with definition ``hash_version`` (an index's ``hash_version``)."""
    return PhotoTransform(resolve_preprocess_config(model), hash_version=hash_version)


def decode_inputs(sources: Iterable[ImageSource], decode: Callable[[ImageSource], DecodedImage]) -> list[DecodedImage | str]:
    """Each input decoded, or the message saying why it could not be (one entry per input, in order)."""
    out: list[DecodedImage | str] = []
    for source in sources:
        try:
            out.append(decode(source))
        except Exception as exc:  # noqa: BLE001 - any bad input becomes its own error entry, never a lost one
            out.append(error_message(exc))
    return out


def error_message(exc: BaseException) -> str:
    """What an error verdict says about a failed input: the library's own message, else type and message."""
    if isinstance(exc, ImageDecodeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def source_name(source: Any) -> str | None:
    """The path of a path input, else None."""
    return str(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else None


def per_item(name: str, value: Any, n: int) -> list[Any]:
    """One value for each of ``n`` items: a scalar (or None) repeated, or a sequence of exactly ``n``."""
    if value is None or isinstance(value, str):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} photos")
    return values
