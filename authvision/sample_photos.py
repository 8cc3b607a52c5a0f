"""Real photos that installed packages ship (scikit-image, matplotlib), for tests, demos and calibration.

Nothing is downloaded: these come from ``skimage.data`` and matplotlib's sample data, which are in the
``[dev]`` and ``[train]`` extras. Grey-scale photos are returned as RGB.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .errors import MissingExtraError

# Split once and for all so that int8 calibration never sees the photos its accuracy gate is measured on.
# (skimage.data.cat is chelsea under another name, so it is not listed.)
CALIBRATION_PHOTOS: tuple[str, ...] = (
    "astronaut", "hubble_deep_field", "immunohistochemistry", "retina", "stereo_motorcycle_left",
    "colorwheel", "brick", "camera", "clock", "grass", "gravel", "moon", "page", "minduka_present",
)
HOLDOUT_PHOTOS: tuple[str, ...] = (
    "chelsea", "coffee", "rocket", "stereo_motorcycle_right", "grace_hopper", "coins", "text", "logo",
)
# Used by neither the int8 calibration nor its gate (the re-use evaluation queries them as unindexed photos).
OTHER_PHOTOS: tuple[str, ...] = ("cell", "shepp_logan_phantom")
ALL_PHOTOS: tuple[str, ...] = CALIBRATION_PHOTOS + HOLDOUT_PHOTOS + OTHER_PHOTOS


def _as_rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).astype(np.uint8) if array.dtype.kind == "f" else array.astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 4:  # composite on white, as authvision.imageio does
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        array = (array[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(array)


@functools.cache
def sample_photo(name: str) -> np.ndarray:
    """One real photo as an HxWx3 uint8 array (read-only)."""
    if name not in ALL_PHOTOS:
        raise KeyError(f"unknown sample photo {name!r}; choose from {', '.join(ALL_PHOTOS)}")
    try:
        if name.startswith("stereo_motorcycle_"):
            from skimage.data import stereo_motorcycle

            left, right, _ = stereo_motorcycle()
            array = left if name.endswith("left") else right
        elif name in ("grace_hopper", "minduka_present"):
            from matplotlib import cbook
            from PIL import Image

            filename = {"grace_hopper": "grace_hopper.jpg", "minduka_present": "Minduka_Present_Blue_Pack.png"}
            with Image.open(Path(cbook.get_sample_data(filename[name], asfileobj=False))) as img:
                array = np.asarray(img.convert("RGBA"))
        else:
            import skimage.data

            array = getattr(skimage.data, name)()
    except ImportError as exc:
        raise MissingExtraError(
            f"sample photos come from scikit-image and matplotlib, and {exc.name or 'one of them'} is not installed: "
            "both come with authvision's [report] extra",
            extra="report", module=exc.name,
        ) from exc
    out = _as_rgb(array)
    out.setflags(write=False)
    return out


def sample_photos(names: tuple[str, ...] = ALL_PHOTOS) -> dict[str, np.ndarray]:
    """Several real photos by name (default: all)."""
    return {name: sample_photo(name) for name in names}
