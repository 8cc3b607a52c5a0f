"""The one listing-edits module: pure edits with explicit parameters, used by every place that edits photos."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from authvision.listing_edits import (
    crop_border,
    decode_jpeg,
    draw_banner,
    jpeg_bytes,
    jpeg_round_trip,
    mirror,
    pad_to_square,
    stamp_text,
    watermark,
)

ROOT = Path(__file__).resolve().parents[1]


def _photo(w: int = 120, h: int = 80) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "RGB")


def test_pad_to_square_centres_the_photo_on_white_or_a_given_fill() -> None:
    photo = _photo()
    square = pad_to_square(photo)
    assert square.size == (120, 120) and square.mode == "RGB"
    assert square.getpixel((0, 0)) == (255, 255, 255)
    assert square.crop((0, 20, 120, 100)).tobytes() == photo.tobytes()
    bordered = pad_to_square(photo, side=150)
    assert bordered.crop((15, 35, 135, 115)).tobytes() == photo.tobytes()
    mask = pad_to_square(Image.new("L", (120, 80), 255), fill=0)
    assert mask.mode == "L" and np.asarray(mask).sum() == 255 * 120 * 80
    with pytest.raises(ValueError):
        pad_to_square(photo, side=100)


def test_banner_watermark_stamp_mirror_crop_leave_the_input_alone() -> None:
    photo = _photo()
    before = photo.tobytes()
    banner = draw_banner(photo, top=60, height=20, colour=(200, 0, 0), text="SALE")
    assert banner.getpixel((0, 70)) == (200, 0, 0) and banner.crop((0, 0, 120, 59)).tobytes() == photo.crop((0, 0, 120, 59)).tobytes()
    from authvision.brandkit._fonts import font

    marked = watermark(photo, "@shop", font=font("sans-bold", 14), opacity=120, centred=True, angle=20)
    assert marked.size == photo.size and marked.tobytes() != before
    assert stamp_text(photo, "@x", [(5, 5)]).tobytes() != before
    assert np.array_equal(np.asarray(mirror(photo)), np.asarray(photo)[:, ::-1])
    assert crop_border(photo, 0.1).size == (120 - 24, 80 - 16)
    assert photo.tobytes() == before


def test_jpeg_round_trip_is_the_decoded_jpeg_file() -> None:
    photo = _photo()
    data = jpeg_bytes(photo, 60)
    assert data[:2] == b"\xff\xd8"
    assert jpeg_round_trip(photo, 60).tobytes() == decode_jpeg(data).tobytes() != photo.tobytes()


@pytest.mark.parametrize(
    "path",
    [
        "authvision/photo_reuse.py",
        "authvision/brandkit/listings.py",
        "authvision/brandkit/references.py",
        "authvision/brandkit/visibility.py",
        "training/augment.py",
        "training/data.py",
    ],
)
def test_every_editing_place_uses_the_module(path: str) -> None:
    source = (ROOT / path).read_text(encoding="utf-8")
    assert "listing_edits import" in source
    assert '"JPEG"' not in source and "Image.new(\"RGB\", (side, side)" not in source  # no private copies left


def test_importing_it_is_light() -> None:
    assert importlib.util.find_spec("authvision.listing_edits") is not None
    code = "import sys, authvision.listing_edits; assert 'torch' not in sys.modules and 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
