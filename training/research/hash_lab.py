"""Hash lab: the two perceptual-hash definitions side by side — robustness to edits, and CPU cost.

Produced the decision for hash version 2 (issue 15, see authvision/hashing.py): hash the decoded
photo directly (border trim at its resolution, grey, a 32 x 32 area-average thumbnail, one DCT)
instead of version 1's canonical 256 px resize and Pillow Lanczos thumbnail. Version 2 had to be as
robust as version 1 on every edit below, mirror-exact, and much cheaper. Variants measured and
dropped on the way (written here so nobody re-tries them blind):

* trimming on the model's 256 px resize, or on a 64-128 px reduction, then the Lanczos thumbnail:
  2-3x cheaper, but padding was no longer free — white padding moved 3.9 bits on average (v1: 1.1)
  and up to 22 (a 1411 px retina photo), 10-15 on average at 64 px, because the trim box is only as
  precise as the image it is found on;
* Pillow's BOX thumbnail (0.09 ms): not mirror-exact (209 of 424 photos gave a mirror hash that was
  not the photo's hash with its rows swapped; Pillow's box kernel is half-open), OpenCV's INTER_AREA
  was exact on all 424.

Run (needs the [dev] extra for the sample photos)::

    python training/research/hash_lab.py            # ~30 s

Output (2 shared cores, quiet; border trimming already the faster one, which finds the same boxes):

    edit                           v1 worst/mean   v2 worst/mean
    jpeg q60                              36/2.5          36/2.2
    jpeg q40                              36/2.7          36/2.7
    800px q80 draft                       16/1.4          16/1.3
    resize 0.9                             6/0.5           6/0.3
    crop 3%                               18/5.0          22/5.2
    white pad                             16/1.1          16/1.0
    white pad q60                         14/2.2          16/2.2
    800 pad q70                           10/2.6          10/3.0
    black frame+white pad                 12/1.1          12/1.0
    grey pad q50                          28/6.6          28/6.5
    mirror q80                            12/1.5          12/1.2
    different photos, 3 closest      [4, 20, 20]     [4, 20, 20]
    mirror not exact                     0 / 224         0 / 224
    CPU ms per listing (1 thread): v1 2.26 (with the model's resize shared when no border: 2.07), v2 1.29

(the worst JPEG case is the 128 px sample logo on a flat background; the different-photo pair at
4 bits is a stereo pair of one scene). These listings are larger and more often padded than the
scan benchmark's, whose step table gave v1 1.64 / v2 0.89 ms in the same run.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from authvision.hashing import HASH_VERSIONS, hamming, perceptual_hashes  # noqa: E402
from authvision.imageio import decode_image  # noqa: E402
from authvision.manifest import PreprocessConfig  # noqa: E402
from authvision.preprocess import resize_shorter  # noqa: E402
from authvision.sample_photos import ALL_PHOTOS, sample_photo  # noqa: E402


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _listing(image: Image.Image, quality: int = 80) -> Image.Image:
    """What the scanner sees: a JPEG decoded with draft scaling to a shorter side of >= 256."""
    return decode_image(_jpeg(image, quality), min_side=256).image


def _crop(image: Image.Image, fraction: float) -> Image.Image:
    dx, dy = round(image.width * fraction / 2), round(image.height * fraction / 2)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def _pad(image: Image.Image, colour: str | tuple[int, int, int] = "white", extra: int = 40) -> Image.Image:
    side = max(image.size) + extra
    out = Image.new("RGB", (side, side), colour)
    out.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return out


def _to800(image: Image.Image) -> Image.Image:
    scale = 800 / max(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)


EDITS = {
    "jpeg q60": lambda im: _listing(im, 60),
    "jpeg q40": lambda im: _listing(im, 40),
    "800px q80 draft": lambda im: _listing(_to800(im), 80),
    "resize 0.9": lambda im: im.resize((round(im.width * 0.9), round(im.height * 0.9)), Image.Resampling.BICUBIC),
    "crop 3%": lambda im: _crop(im, 0.03),
    "white pad": _pad,
    "white pad q60": lambda im: _listing(_pad(im), 60),
    "800 pad q70": lambda im: _listing(_to800(_pad(im, extra=120)), 70),
    "black frame+white pad": lambda im: _pad(_pad(im, "black", 20)),
    "grey pad q50": lambda im: _listing(_pad(im, (200, 200, 200), 200), 50),
    "mirror q80": lambda im: _listing(ImageOps.mirror(im), 80),
}


def _distance(reference: np.ndarray, query: np.ndarray) -> int:
    """As the index matches: the query's row 0 against both rows of the reference."""
    return int(min(hamming(query[0], reference[0]), hamming(query[0], reference[1])))


def _cpu_ms(fn, items, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        for item in items:
            fn(item)
        best = min(best, (time.thread_time() - start) / len(items))
    return 1000 * best


def main() -> None:
    photos = {name: Image.fromarray(sample_photo(name)).convert("RGB") for name in ALL_PHOTOS}
    edited = {edit: {name: fn(photo) for name, photo in photos.items()} for edit, fn in EDITS.items()}
    refs = {v: {name: perceptual_hashes(photo, version=v) for name, photo in photos.items()} for v in HASH_VERSIONS}
    print(f"{'edit':28s}" + "".join(f"{f'v{v} worst/mean':>16s}" for v in HASH_VERSIONS))
    for edit, images in edited.items():
        cells = []
        for v in HASH_VERSIONS:
            d = [_distance(refs[v][name], perceptual_hashes(image, version=v)) for name, image in images.items()]
            cells.append(f"{max(d)}/{np.mean(d):.1f}")
        print(f"{edit:28s}" + "".join(f"{c:>16s}" for c in cells))
    names = list(photos)
    closest = []
    for v in HASH_VERSIONS:
        d = sorted(_distance(refs[v][a], refs[v][b]) for i, a in enumerate(names) for b in names[i + 1 :])
        closest.append(str(d[:3]))
    print(f"{'different photos, 3 closest':28s}" + "".join(f"{c:>16s}" for c in closest))

    # listing-like inputs for the mirror check and the CPU cost: 800 px JPEGs, 60% padded
    rng = np.random.default_rng(0)
    listings = []
    for k in range(200):
        photo = photos[names[k % len(names)]]
        photo = _crop(photo, float(rng.uniform(0, 0.3)))
        if rng.random() < 0.6:
            photo = _pad(photo, extra=int(rng.integers(20, 200)))
        listings.append(_listing(_to800(photo), int(rng.integers(70, 91))))
    mirror_cases = list(photos.values()) + listings
    cells = []
    for v in HASH_VERSIONS:
        bad = sum(
            not np.array_equal(perceptual_hashes(ImageOps.mirror(im), version=v)[::-1], perceptual_hashes(im, version=v))
            for im in mirror_cases
        )
        cells.append(f"{bad} / {len(mirror_cases)}")
    print(f"{'mirror not exact':28s}" + "".join(f"{c:>16s}" for c in cells))
    config = PreprocessConfig()
    pairs = [(im, resize_shorter(im, config)) for im in listings]
    costs = {v: _cpu_ms(lambda im, v=v: perceptual_hashes(im, version=v), listings) for v in HASH_VERSIONS}
    shared = _cpu_ms(lambda pair: perceptual_hashes(pair[0], version=1, resized=pair[1]), pairs)
    print(f"CPU ms per listing (1 thread): v1 {costs[1]:.2f} (with the model's resize shared when no border: {shared:.2f}), v2 {costs[2]:.2f}")


if __name__ == "__main__":
    main()
