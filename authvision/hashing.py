"""Perceptual hashes that catch re-used and lightly edited listing photos.

Each photo gets two 64-bit pHashes (imagehash, ``hash_size=8``): row 0 of the photo, row 1 of its
horizontal mirror. References index both rows, queries search with row 0, so a mirrored copy of a
reference photo matches that reference's row 1 (sellers flip official shots to dodge exact matching).

Before hashing, a photo is normalised the same way for references and queries:

1. uniform borders (white padding to a square, coloured frames, nested ones) are trimmed, because
   marketplace templates pad photos and padding changes the aspect ratio pHash squeezes to a square.
   A border line must be flat (colour range ≤ 8 grey levels, 2% outliers aside); up to 16 more lines
   whose median is still the border colour go too — JPEG ringing next to the photo;
2. the shorter side is resized to :data:`CANONICAL_SIDE` pixels (bilinear, ``reducing_gap``), because
   callers decode JPEGs with DCT draft scaling, so one photo can arrive at different decoded sizes.

Measured on the 22 scikit-image / matplotlib sample photos (``tests/test_hashing.py`` pins a subset),
bits of 64 between a photo and its edited copy: JPEG q=60 or q=40, draft decoding at 1/2, a 0.9
resize, white padding and mirroring: 0-6 (mostly 0-2); padding then JPEG q=60: ≤ 10; a 3% crop: ≤ 12
(textures; ≤ 8 on photos of objects). Two different photos: 20 or more (1st percentile; the closest
pair, 4 bits, is a stereo pair of one scene). Hence :data:`DUPLICATE_MAX_DISTANCE` = 10, the default
radius of ``ReferenceIndex.find_duplicates``. Weak spots: crops beyond ~5%, padding plus heavy
re-compression (q=40: up to 14), and tiny graphics on flat backgrounds (the 128-px sample logo moves
36 bits under JPEG, because noise changes how much flat background is trimmed).
"""

from __future__ import annotations

import numpy as np
import scipy.fftpack
from PIL import Image

__all__ = [
    "CANONICAL_SIDE",
    "DUPLICATE_MAX_DISTANCE",
    "HASH_BYTES",
    "hamming",
    "hash_to_hex",
    "hex_to_hash",
    "perceptual_hashes",
    "phash_pair",
    "trim_uniform_border",
]

CANONICAL_SIDE = 256
"""Shorter side, in pixels, that every photo is resized to before hashing."""

HASH_BYTES = 8
"""Bytes per hash (64 bits)."""

DUPLICATE_MAX_DISTANCE = 10
"""Default Hamming radius (bits of 64) under which two photos count as the same photo."""

_BORDER_TOLERANCE = 8  # colour range (grey levels) of a flat border line, outliers aside
_MAX_TRIM_PASSES = 4
_RINGING_LINES = 16  # two 4:2:0 JPEG chroma blocks
_MIN_KEPT_FRACTION = 0.2  # never trim a photo down to less than this share of each side


def _robust_spread(lines: np.ndarray) -> np.ndarray:
    """Colour range of each line (row of ``lines``), ignoring the 2% most extreme pixels of it."""
    width = lines.shape[1]
    low, high = (width - 1) // 50, width - 1 - (width - 1) // 50
    ordered = np.partition(lines, (low, high), axis=1)
    return (ordered[:, high].astype(np.int16) - ordered[:, low]).max(axis=1)


def _cut(lines: np.ndarray, tolerance: int) -> int:
    """How many leading lines (rows or columns, outermost first) are border.

    A border starts with lines of one flat colour; it goes on through at most ``_RINGING_LINES``
    lines whose median colour is still that colour (JPEG ringing next to the photo).
    """
    flat = _flat_lines(lines, tolerance)
    if flat == 0 or flat == lines.shape[0]:
        return flat
    colour = np.median(lines[:flat].reshape(-1, lines.shape[-1]), axis=0)
    medians = np.median(lines[flat : flat + _RINGING_LINES], axis=1)
    off = np.flatnonzero(np.abs(medians - colour).max(axis=1) > 2 * tolerance)
    return flat + (int(off[0]) if off.size else medians.shape[0])


def _flat_lines(lines: np.ndarray, tolerance: int) -> int:
    """Leading lines whose robust spread is within ``tolerance``.

    Measured outside-in in growing chunks, stopping at the first line that is not flat (most photos
    have no border; measuring every line cost ~5 ms per 400 px photo), and a line whose values all
    lie within ``tolerance`` of each other (all channels together) is flat without sorting it. Each
    line's spread is its own, so the answer is the same as measuring every line.
    """
    start, step = 0, 4
    while start < lines.shape[0]:
        chunk = lines[start : start + step]
        values = np.ascontiguousarray(chunk).reshape(len(chunk), -1)  # all channels of a line at once
        flat = values.max(axis=1).astype(np.int16) - values.min(axis=1) <= tolerance
        unsure = np.flatnonzero(~flat)
        if unsure.size:
            flat[unsure] = _robust_spread(chunk[unsure]) <= tolerance
        not_flat = np.flatnonzero(~flat)
        if not_flat.size:
            return start + int(not_flat[0])
        start, step = start + step, step * 2
    return lines.shape[0]


def trim_uniform_border(image: Image.Image, tolerance: int = _BORDER_TOLERANCE) -> Image.Image:
    """Crop away uniform borders (padding, frames) on each side of a photo.

    Each side is trimmed on its own and whatever its colour, nested frames go one per pass, and the
    rule is symmetric, so a photo and its mirror are trimmed alike. Returns the image unchanged when
    trimming would keep less than a fifth of a side (a blank photo).
    """
    rgb = image.convert("RGB") if image.mode != "RGB" else image
    box = _trim_box(np.asarray(rgb), tolerance)
    return rgb if box == (0, 0, rgb.width, rgb.height) else rgb.crop(box)


def _trim_box(pixels: np.ndarray, tolerance: int) -> tuple[int, int, int, int]:
    full_height, full_width = pixels.shape[:2]
    left, top, right, bottom = 0, 0, full_width, full_height
    for _ in range(_MAX_TRIM_PASSES):  # nested frames need one pass each
        view = pixels[top:bottom, left:right]
        rows, cols = view, view.transpose(1, 0, 2)
        cuts = (_cut(rows, tolerance), _cut(rows[::-1], tolerance), _cut(cols, tolerance), _cut(cols[::-1], tolerance))
        if not any(cuts):
            break
        if cuts[0] >= rows.shape[0] or cuts[2] >= cols.shape[0]:  # nothing but border
            return 0, 0, full_width, full_height
        top, bottom, left, right = top + cuts[0], bottom - cuts[1], left + cuts[2], right - cuts[3]
        if right - left < _MIN_KEPT_FRACTION * full_width or bottom - top < _MIN_KEPT_FRACTION * full_height:
            return 0, 0, full_width, full_height
    return left, top, right, bottom


_REDUCING_GAP = 3.0


def _canonical(image: Image.Image, resized: Image.Image | None = None, trim: bool = True) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"perceptual_hashes expects a PIL.Image.Image, got {type(image).__name__}")
    trimmed = trim_uniform_border(image) if trim else image
    width, height = trimmed.size
    scale = CANONICAL_SIDE / min(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == trimmed.size:
        return trimmed
    # Pillow's reducing_gap only acts (a reduce() before resampling) from a 2 * gap shrink factor;
    # below that the resize is a plain bilinear one, so the caller's identical resize can stand in.
    plain = int(width / size[0] / _REDUCING_GAP) <= 1 and int(height / size[1] / _REDUCING_GAP) <= 1
    if resized is not None and trimmed is image and resized.size == size and resized.mode == "RGB" and plain:
        return resized
    return trimmed.resize(size, Image.Resampling.BILINEAR, reducing_gap=_REDUCING_GAP)


_PHASH_SIZE = 8  # imagehash.phash(hash_size=8): the 8x8 lowest frequencies
_PHASH_SAMPLE = 32  # ... of the DCT of a 32x32 (hash_size x highfreq_factor 4) Lanczos thumbnail
_MIRROR_SIGNS = np.where(np.arange(_PHASH_SIZE) % 2 == 0, 1.0, -1.0)


def phash_pair(gray: Image.Image) -> np.ndarray:
    """Packed pHashes (uint8 (2, 8)) of a mode-"L" image and of its horizontal mirror, from one DCT.

    Each row is bit for bit ``imagehash.phash(image, hash_size=8)`` (the same Lanczos thumbnail, the
    same ``scipy.fftpack`` DCT, the median threshold). The mirror needs no second thumbnail or DCT:
    Pillow's resampling is symmetric, so the mirror's thumbnail is the thumbnail mirrored, and
    mirroring a row flips the sign of its odd DCT-II frequencies (X'[k] = (-1)^k X[k]).
    tests/test_hashing.py holds both rows equal to imagehash's on real photos.
    """
    thumbnail = np.asarray(gray.resize((_PHASH_SAMPLE, _PHASH_SAMPLE), Image.Resampling.LANCZOS))
    dct = scipy.fftpack.dct(scipy.fftpack.dct(thumbnail, axis=0), axis=1)
    low = dct[:_PHASH_SIZE, :_PHASH_SIZE]
    mirrored = low * _MIRROR_SIGNS
    bits = np.stack([low > np.median(low), mirrored > np.median(mirrored)])
    return np.packbits(bits.reshape(2, -1), axis=1)


def perceptual_hashes(image: Image.Image, *, resized: Image.Image | None = None, trim: bool = True) -> np.ndarray:
    """Row 0: pHash of the photo; row 1: pHash of its horizontal mirror. Returns uint8 (2, 8).

    ``resized``, optional: ``image.resize(size, Image.Resampling.BILINEAR)`` for some size, as
    preprocessing makes it (:func:`authvision.preprocess.resized_size`). When no border is trimmed
    and that size is the canonical one, it is hashed instead of resizing again (~0.7 ms saved per
    400 px photo); the hashes are the same either way. ``trim=False`` hashes the whole frame, borders
    included (for grouping photos whose backdrops are near-uniform, see authvision_train.data).
    """
    gray = _canonical(image, resized, trim).convert("L")  # what phash hashes; mirroring commutes with it
    return phash_pair(gray)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray | int:
    """Bits that differ between packed uint8 hashes; reduces over the last axis (broadcasts)."""
    a = np.asarray(a, dtype=np.uint8)
    b = np.asarray(b, dtype=np.uint8)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"hashes differ in length: {a.shape[-1]} and {b.shape[-1]} bytes")
    out = _POPCOUNT[np.bitwise_xor(a, b)].sum(axis=-1, dtype=np.int64)
    return int(out) if out.ndim == 0 else out


def hash_to_hex(hash_bytes: np.ndarray) -> str:
    """One packed hash (8 uint8) → 16 hex digits, as JSON evidence."""
    array = np.asarray(hash_bytes)
    if array.dtype != np.uint8 or array.shape != (HASH_BYTES,):
        raise ValueError(f"expected a uint8 array of shape ({HASH_BYTES},), got {array.dtype} {array.shape}")
    return array.tobytes().hex()


def hex_to_hash(text: str) -> np.ndarray:
    """16 hex digits → packed hash, uint8 (8,)."""
    if not isinstance(text, str):
        raise TypeError(f"expected a hex string, got {type(text).__name__}")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"not a hex hash: {text!r}") from exc
    if len(raw) != HASH_BYTES:
        raise ValueError(f"a hash is {2 * HASH_BYTES} hex digits, got {len(text)}: {text!r}")
    return np.frombuffer(raw, dtype=np.uint8).copy()
