"""Listing-style photo augmentations (torchvision.transforms.v2 on PIL images).

What marketplace templates and seller phones do to a product photo: crops and zoom, small rotations
and perspective, white padding to a square, colour and lighting shifts, blur, promotional banners,
and heavy JPEG re-compression. Used for int8 calibration data and for retraining.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw
from torchvision.transforms import v2


class PadToSquare:
    """White padding to a square canvas, as marketplace templates do."""

    def __call__(self, image: Image.Image) -> Image.Image:
        side = max(image.size)
        canvas = Image.new("RGB", (side, side), (255, 255, 255))
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        return canvas


class Banner:
    """A promotional banner strip across the top or bottom of the photo."""

    def __init__(self, height_fraction: tuple[float, float] = (0.06, 0.15)):
        self.height_fraction = height_fraction

    def __call__(self, image: Image.Image) -> Image.Image:
        image = image.copy()
        draw = ImageDraw.Draw(image)
        height = int(image.height * random.uniform(*self.height_fraction))
        top = 0 if random.random() < 0.5 else image.height - height
        colour = tuple(random.randint(0, 255) for _ in range(3))
        draw.rectangle((0, top, image.width, top + height), fill=colour)
        draw.text((image.width // 20, top + height // 4), "SALE -50% FREE SHIPPING", fill=(255, 255, 255))
        return image


class JpegRecompress:
    """Re-encode as JPEG at a random quality (uses Pillow's encoder, like a marketplace would)."""

    def __init__(self, quality: tuple[int, int] = (35, 90)):
        self.quality = quality

    def __call__(self, image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=random.randint(*self.quality))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return decoded.convert("RGB")


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
