"""Shared fixtures: real photos (scikit-image, matplotlib) and the shipped default embedder, loaded once."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import authvision as av
from authvision.sample_photos import sample_photo


@pytest.fixture(scope="session")
def embedder() -> av.Embedder:
    return av.Embedder.load()


@pytest.fixture(scope="session")
def embedder_fp32() -> av.Embedder:
    return av.Embedder.load(precision="fp32")


def jpeg_bytes(array: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    names = ("chelsea", "coffee", "astronaut", "rocket", "grace_hopper", "stereo_motorcycle_left", "hubble_deep_field")
    return {name: sample_photo(name) for name in names}
