"""Brand photos for training: load and check them, split by photo source, cut items out, augment.

* **Checks** name the folder at fault: a product needs both a genuine and a fake class, each with at
  least ``min_photos_per_class`` readable photos. Unreadable photos are skipped and listed.
* **Split by source**: photos whose perceptual hashes are within the duplicate radius (edited copies of
  one shot) form one group, as do photos sharing a ``source`` column in a CSV; whole groups go to
  validation, so near-duplicates never straddle train and validation. The hashes here skip the
  border trimming the index uses: studio shots sit on near-uniform backdrops, whose trimming JPEG
  noise changes, which split re-saved copies of one shot and merged unrelated shots.
* **Item cut-outs**: brand photos show the item on a studio backdrop or on a table. The backdrop is
  modelled from the photo's border colours, the item is what differs from it (largest connected
  region, holes filled). Pasting cut-outs of *both* classes on the same random backgrounds keeps the
  model from learning "white studio = genuine, table = fake", a shortcut listings would punish.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageFilter
from scipy import ndimage
from torchvision.transforms import v2

from authvision.datasets import LabelledPhoto
from authvision.errors import DatasetError, ImageDecodeError
from authvision.hashing import DUPLICATE_MAX_DISTANCE, hamming, perceptual_hashes
from authvision.imageio import load_image
from authvision.listing_edits import draw_banner, jpeg_round_trip, pad_to_square

LOG = logging.getLogger(__name__)

MAX_SIDE = 640  # photos are kept in memory at most this large
_MASK_SIDE = 160


@dataclass
class TrainingPhoto:
    """A decoded brand photo with its class and (when the backdrop could be modelled) its item mask."""

    source: LabelledPhoto
    image: Image.Image
    class_index: int
    group: int = -1
    mask: Image.Image | None = None  # "L", item = 255, same size as image
    hashes: np.ndarray | None = None

    @property
    def product(self) -> str:
        return self.source.product or "-"

    @property
    def label(self) -> str:
        return self.source.label


@dataclass
class PreparedData:
    train: list[TrainingPhoto]
    validation: list[TrainingPhoto]
    classes: list[tuple[str, str]]  # (product, label) per class index
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        def count(photos: list[TrainingPhoto]) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = defaultdict(dict)
            for (product, label), n in sorted(Counter((p.product, p.label) for p in photos).items()):
                out[product][label] = n
            return dict(out)

        return {
            "classes": len(self.classes),
            "products": len({product for product, _ in self.classes}),
            "train": count(self.train),
            "validation": count(self.validation),
            "train_groups": len({p.group for p in self.train}),
            "validation_groups": len({p.group for p in self.validation}),
            "masks": sum(p.mask is not None for p in self.train + self.validation),
            "skipped_unreadable": self.skipped,
        }


def prepare(photos: Sequence[LabelledPhoto], *, validation_fraction: float, min_photos_per_class: int,
            seed: int) -> PreparedData:
    """Decode, check, group and split brand photos (see the module docstring)."""
    loaded: list[TrainingPhoto] = []
    skipped: list[str] = []
    for photo in photos:
        if photo.label not in ("genuine", "fake"):
            raise DatasetError(f"{photo.path.parent}: label {photo.label!r}; training photos are genuine or fake")
        if not photo.product:
            raise DatasetError(f"{photo.path}: no product; use the <brand>/<product>/<label>/ layout or a product column")
        try:
            image = load_image(photo.path, min_side=MAX_SIDE // 2)
        except ImageDecodeError as exc:
            LOG.warning("skipping %s: %s", photo.path, exc)
            skipped.append(f"{photo.path}: {exc}")
            continue
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
        loaded.append(TrainingPhoto(photo, image, -1, hashes=perceptual_hashes(image, trim=False)))
    _check_classes(loaded, min_photos_per_class)
    classes = sorted({(p.product, p.label) for p in loaded})
    index = {c: i for i, c in enumerate(classes)}
    for p in loaded:
        p.class_index = index[(p.product, p.label)]
        p.mask = item_mask(p.image)
    _group_by_source(loaded)
    train, validation = _split(loaded, validation_fraction, seed)
    return PreparedData(train, validation, classes, skipped)


def _check_classes(photos: list[TrainingPhoto], minimum: int) -> None:
    by_product: dict[str, Counter] = defaultdict(Counter)
    folder: dict[str, str] = {}
    for p in photos:
        by_product[p.product][p.label] += 1
        folder.setdefault(p.product, str(p.source.path.parent.parent))
    if not by_product:
        raise DatasetError("no readable training photos")
    for product, counts in sorted(by_product.items()):
        missing = [label for label in ("genuine", "fake") if counts[label] == 0]
        if missing:
            raise DatasetError(
                f"{folder[product]}: product {product!r} has no {missing[0]} photos; training needs genuine and "
                "fake photos of every product (leave the product out, or add its seized fakes)"
            )
        few = [f"{counts[label]} {label}" for label in ("genuine", "fake") if counts[label] < minimum]
        if few:
            raise DatasetError(
                f"{folder[product]}: product {product!r} has only {' and '.join(few)} readable photos; "
                f"at least {minimum} of each are needed (split.min_photos_per_class)"
            )


def _group_by_source(photos: list[TrainingPhoto]) -> None:
    """Union-find over near-duplicate hashes and shared ``source`` columns."""
    parent = list(range(len(photos)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    hashes = np.stack([p.hashes[0] for p in photos])  # type: ignore[index]
    for i in range(len(photos)):
        distances = np.minimum(hamming(hashes[i], hashes), hamming(photos[i].hashes[1], hashes))  # type: ignore[index]
        for j in np.flatnonzero(distances <= DUPLICATE_MAX_DISTANCE):
            parent[find(int(j))] = find(i)
    by_source: dict[str, int] = {}
    for i, p in enumerate(photos):
        source = p.source.extra.get("source")
        if source:
            parent[find(i)] = find(by_source.setdefault(source, i))
    roots: dict[int, int] = {}
    for i, p in enumerate(photos):
        p.group = roots.setdefault(find(i), len(roots))


def _split(photos: list[TrainingPhoto], fraction: float, seed: int) -> tuple[list[TrainingPhoto], list[TrainingPhoto]]:
    """Per class, whole groups to validation until ``fraction`` of its photos; each side keeps ≥ 1 group."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
    rng = random.Random(seed)
    validation_groups: set[int] = set()
    by_class: dict[int, dict[int, int]] = defaultdict(Counter)
    for p in photos:
        by_class[p.class_index][p.group] += 1
    for class_index in sorted(by_class):
        groups = sorted(by_class[class_index].items())
        rng.shuffle(groups)
        total = sum(n for _, n in groups)
        taken = 0
        for group, n in groups[:-1]:  # the last group always stays for training
            if taken >= fraction * total:
                break
            validation_groups.add(group)
            taken += n
    train = [p for p in photos if p.group not in validation_groups]
    validation = [p for p in photos if p.group in validation_groups]
    if not validation:
        raise DatasetError("no photo group could be held out for validation: add more photos per product")
    return train, validation


# -- item cut-outs ------------------------------------------------------------------------------------


def item_mask(image: Image.Image, *, fill_holes: bool = True) -> Image.Image | None:
    """The item's mask ("L", 255 = item) when the backdrop can be told from it, else None.

    ``fill_holes=False`` keeps backdrop seen through the item (inside a handle) out of the mask.
    """
    small = image.copy()
    small.thumbnail((_MASK_SIDE, _MASK_SIDE), Image.Resampling.BILINEAR)
    pixels = np.asarray(small.filter(ImageFilter.GaussianBlur(1)), dtype=np.float32)
    h, w = pixels.shape[:2]
    ring = max(2, min(h, w) // 25)
    border = np.concatenate([pixels[:ring].reshape(-1, 3), pixels[-ring:].reshape(-1, 3),
                             pixels[:, :ring].reshape(-1, 3), pixels[:, -ring:].reshape(-1, 3)])
    # distance of every pixel to its nearest border colour (a few hundred samples cover a texture)
    rng = np.random.default_rng(0)
    samples = border[rng.choice(len(border), size=min(256, len(border)), replace=False)]
    flat = pixels.reshape(-1, 3)
    distance = np.full(len(flat), np.inf, dtype=np.float32)
    for start in range(0, len(samples), 32):
        chunk = samples[start : start + 32]
        d = np.sqrt(((flat[:, None, :] - chunk[None, :, :]) ** 2).sum(-1)).min(1)
        np.minimum(distance, d, out=distance)
    # How far a backdrop pixel lies from its nearest backdrop sample, judged on other border pixels:
    # small for flat backdrops and for fine textures alike, so the threshold adapts to both.
    held_out = border[rng.choice(len(border), size=min(512, len(border)), replace=False)]
    nearest = np.sqrt(((held_out[:, None, :] - samples[None, :, :]) ** 2).sum(-1)).min(1)
    threshold = max(14.0, 2.0 * float(np.percentile(nearest, 95)))
    fg = (distance > threshold).reshape(h, w)
    fg = ndimage.binary_opening(fg, iterations=1)
    fg = ndimage.binary_closing(fg, iterations=3)
    labels, count = ndimage.label(fg)
    if count == 0:
        return None
    sizes = ndimage.sum(fg, labels, range(1, count + 1))
    fg = labels == (1 + int(np.argmax(sizes)))
    if fill_holes:
        fg = ndimage.binary_fill_holes(fg)
    area = fg.mean()
    ys, xs = np.nonzero(fg)
    touches = (ys.min() == 0) + (ys.max() == h - 1) + (xs.min() == 0) + (xs.max() == w - 1)
    if not 0.04 <= area <= 0.85 or touches >= 3:
        return None
    mask = Image.fromarray((ndimage.binary_dilation(fg, iterations=1) * 255).astype(np.uint8))
    return mask.resize(image.size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(1.5))


# -- augmentation -------------------------------------------------------------------------------------


BackgroundSource = Callable[[random.Random, tuple[int, int]], Image.Image]


def brandkit_backgrounds(pool: str = "train", *, count: int = 40, side: int = 800, seed: int = 0) -> BackgroundSource:
    """Backgrounds for pasting, from the brand-kit renderer's ``pool`` (procedural surfaces and sample
    photos): ``count`` of them are rendered once, then served as random crops, flips and scales."""
    from authvision.brandkit import available_backgrounds, render_background

    names = available_backgrounds(pool)
    bank = [render_background(names[i % len(names)], np.random.default_rng([seed, i]), (side, side)) for i in range(count)]

    def draw(rng: random.Random, size: tuple[int, int]) -> Image.Image:
        image = rng.choice(bank)
        aspect = size[0] / size[1]
        crop_w = int(side * rng.uniform(0.5, 1.0))
        crop_h = min(side, int(crop_w / aspect))
        crop_w = min(side, int(crop_h * aspect))
        x, y = rng.randint(0, side - crop_w), rng.randint(0, side - crop_h)
        out = image.crop((x, y, x + crop_w, y + crop_h)).resize(size, Image.Resampling.BILINEAR)
        return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else out

    return draw


class PasteOnBackground:
    """Cut the item out with its mask and paste it, scaled and rotated, on a random background."""

    def __init__(self, backgrounds: BackgroundSource, probability: float, rng: random.Random):
        self.backgrounds = backgrounds
        self.probability = probability
        self.rng = rng

    def __call__(self, image: Image.Image, mask: Image.Image | None) -> Image.Image:
        if mask is None or self.rng.random() >= self.probability:
            return image
        box = mask.getbbox()
        if box is None:
            return image
        item, alpha = image.crop(box), mask.crop(box)
        angle = self.rng.uniform(-15, 15)
        item = item.rotate(angle, expand=True, resample=Image.Resampling.BILINEAR)
        alpha = alpha.rotate(angle, expand=True, resample=Image.Resampling.BILINEAR)
        width = self.rng.randint(560, 720)
        height = int(width * self.rng.uniform(0.75, 1.33))
        fill = self.rng.uniform(0.4, 0.9)  # share of the frame's shorter side the item spans
        scale = fill * min(width, height) / max(item.size)
        size = (max(8, int(item.width * scale)), max(8, int(item.height * scale)))
        item, alpha = item.resize(size, Image.Resampling.BILINEAR), alpha.resize(size, Image.Resampling.BILINEAR)
        canvas = self.backgrounds(self.rng, (width, height)).convert("RGB")
        x = self.rng.randint(0, max(0, width - size[0]))
        y = self.rng.randint(0, max(0, height - size[1]))
        shadow = Image.new("L", size, 0)
        shadow.paste(alpha.point(lambda v: v * 0.35), (0, 0))
        canvas.paste((0, 0, 0), (x + 6, y + 8), shadow.filter(ImageFilter.GaussianBlur(6)))
        canvas.paste(item, (x, y), alpha)
        return canvas


class ListingStyle:
    """Marketplace edits on a PIL image: padding, crop, perspective, relighting, colour, blur, banner, JPEG.

    Relighting (a light gradient, a hot spot, a colour cast, sensor noise) goes on every photo of both
    classes: seized fakes are photographed under harsher light than studio shots, and a model must not
    learn the lighting instead of the item.
    """

    def __init__(self, strength: float, rng: random.Random):
        s = strength
        self.strength = s
        self.rng = rng
        self.geometric = v2.Compose([
            v2.RandomResizedCrop(size=320, scale=(max(0.5, 1 - 0.45 * s), 1.0), ratio=(0.8, 1.25), antialias=True),
            v2.RandomPerspective(distortion_scale=0.2 * s, p=0.3 * s, fill=255),
        ])
        self.photometric = v2.Compose([
            v2.ColorJitter(brightness=0.25 * s, contrast=0.25 * s, saturation=0.15 * s, hue=0.0),
            v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 1.2 * s + 0.1))], p=0.3 * s),
        ])

    def __call__(self, image: Image.Image) -> Image.Image:
        rng = self.rng
        if rng.random() < 0.2:
            image = pad_to_square(image)
        image = self.photometric(self._relight(self.geometric(image)))
        if rng.random() < 0.25:
            height = int(image.height * rng.uniform(0.06, 0.13))
            top = 0 if rng.random() < 0.5 else image.height - height
            colour = tuple(rng.randint(0, 255) for _ in range(3))
            image = draw_banner(image, top=top, height=height, colour=colour, text="SALE -40%",
                                text_at=(image.width // 20, top + height // 4))
        return jpeg_round_trip(image, rng.randint(45, 92))

    def _relight(self, image: Image.Image) -> Image.Image:
        rng, s = self.rng, self.strength
        pixels = np.asarray(image, dtype=np.float32)
        h, w = pixels.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle = rng.uniform(0, 2 * math.pi)
        field = 1.0 + rng.uniform(0, 0.45) * s * ((xx / w - 0.5) * math.cos(angle) + (yy / h - 0.5) * math.sin(angle))
        if rng.random() < 0.5:
            cx, cy, radius = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.2, 0.6) * max(h, w)
            field += rng.uniform(0, 0.25) * s * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / radius**2)
        cast = np.array([1.0 + rng.uniform(-0.06, 0.06) * s for _ in range(3)], dtype=np.float32)
        pixels = pixels * field[..., None] * cast
        sigma = rng.uniform(0, 5) * s
        if sigma > 0.5:
            pixels += np.random.default_rng(rng.getrandbits(32)).normal(0, sigma, pixels.shape).astype(np.float32)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


class PhotoDataset(torch.utils.data.Dataset):
    """Training photos → (tensor, class index), pasted and listing-styled at random on every access."""

    def __init__(self, photos: Sequence[TrainingPhoto], paste: PasteOnBackground | None,
                 style: ListingStyle | None, to_tensor: Callable[[Image.Image], torch.Tensor]):
        self.photos = list(photos)
        self.paste = paste
        self.style = style
        self.to_tensor = to_tensor

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        photo = self.photos[i]
        image = photo.image
        if self.paste is not None:
            image = self.paste(image, photo.mask)
        if self.style is not None:
            image = self.style(image)
        return self.to_tensor(image), photo.class_index


def listing_like(photos: Sequence[TrainingPhoto], backgrounds: BackgroundSource, *, seed: int, copies: int = 2,
                 strength: float = 1.0) -> list[tuple[Image.Image, TrainingPhoto]]:
    """Deterministic listing-style versions of photos (validation and calibration)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    paste = PasteOnBackground(backgrounds, 1.0, rng)
    style = ListingStyle(strength, rng)
    out = []
    for photo in photos:
        for _ in range(copies):
            out.append((style(paste(photo.image, photo.mask)), photo))
    return out


def per_class_batches(classes: Sequence[tuple[str, str]], labels: Sequence[int], batch_size: int, m_per_class: int,
                      rng: random.Random, steps: int = 0) -> list[list[int]]:
    """Index batches of whole products: both classes (genuine, fake) of ``batch_size // (2 m)`` products,
    ``m_per_class`` photos each, so every batch holds the hard negatives (genuine vs fake of one product).
    ``steps`` batches, or (0) about as many photos as there are."""
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    by_product: dict[str, list[int]] = defaultdict(list)
    for c in sorted(by_class):
        by_product[classes[c][0]].append(c)
    products = sorted(by_product)
    per_batch = max(1, batch_size // (2 * m_per_class))
    batches = []
    for _ in range(steps or max(1, math.ceil(len(labels) / batch_size))):
        batch = []
        for product in rng.sample(products, min(per_batch, len(products))):
            for c in by_product[product]:
                members = by_class[c]
                picks = rng.sample(members, m_per_class) if len(members) >= m_per_class else rng.choices(members, k=m_per_class)
                batch.extend(picks)
        batches.append(batch)
    return batches
