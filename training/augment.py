"""Listing-style photo augmentations (torchvision.transforms.v2 on PIL images).

What marketplace templates and seller phones do to a product photo: crops and zoom, small rotations
and perspective, white padding to a square, colour and lighting shifts, blur, promotional banners,
and heavy JPEG re-compression. Used for int8 calibration data and for retraining. The edits
themselves are :mod:`authvision.listing_edits`; this module draws their parameters from ``random``.
"""

from __future__ import annotations

import random

from PIL import Image
from torchvision.transforms import v2

from authvision.listing_edits import draw_banner, jpeg_round_trip, pad_to_square


class PadToSquare:
    """White padding to a square canvas, as marketplace templates do."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return pad_to_square(image)


class Banner:
    """A promotional banner strip across the top or bottom of the photo."""

    def __init__(self, height_fraction: tuple[float, float] = (0.06, 0.15)):
        self.height_fraction = height_fraction

    def __call__(self, image: Image.Image) -> Image.Image:
        height = int(image.height * random.uniform(*self.height_fraction))
        top = 0 if random.random() < 0.5 else image.height - height
        colour = tuple(random.randint(0, 255) for _ in range(3))
        return draw_banner(image, top=top, height=height, colour=colour, text="SALE -50% FREE SHIPPING",
                           text_at=(image.width // 20, top + height // 4))


class JpegRecompress:
    """Re-encode as JPEG at a random quality (uses Pillow's encoder, like a marketplace would)."""

    def __init__(self, quality: tuple[int, int] = (35, 90)):
        self.quality = quality

    def __call__(self, image: Image.Image) -> Image.Image:
        return jpeg_round_trip(image, random.randint(*self.quality))


def listing_augmentation(strength: float = 1.0) -> v2.Compose:
    """A random listing-style edit of an RGB PIL image; seed ``random`` and ``torch`` to reproduce."""
    s = strength
    return v2.Compose(
        [
            v2.RandomApply([PadToSquare()], p=0.3 * s),
            v2.RandomResizedCrop(size=384, scale=(max(0.35, 1 - 0.6 * s), 1.0), ratio=(0.75, 1.33), antialias=True),
            v2.RandomApply([v2.RandomRotation(degrees=12 * s, fill=255)], p=0.4 * s),
            v2.RandomPerspective(distortion_scale=0.25 * s, p=0.3 * s, fill=255),
            v2.ColorJitter(brightness=0.3 * s, contrast=0.3 * s, saturation=0.3 * s, hue=0.03 * s),
            v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 1.5 * s + 0.1))], p=0.3 * s),
            v2.RandomApply([Banner()], p=0.25 * s),
            JpegRecompress(),
        ]
    )
