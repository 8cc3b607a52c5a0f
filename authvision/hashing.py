"""Perceptual hashes that catch re-used and lightly edited listing photos.

Each photo gets two 64-bit pHashes: row 0 of the photo, row 1 of its horizontal mirror. References
index both rows, queries search with row 0, so a mirrored copy of a reference photo matches that
reference's row 1 (sellers flip official shots to dodge exact matching).

Two definitions (:data:`HASH_VERSIONS`); an index records which one its hashes are
(:attr:`authvision.ReferenceIndex.hash_version`) and a checker hashes its listings the same way:

**Version 2** (:data:`HASH_VERSION`, new indexes), from the decoded photo as it is:

1. uniform borders (white padding to a square, coloured frames, nested ones) are trimmed at the
   decoded resolution, because marketplace templates pad photos and padding changes the aspect
   ratio pHash squeezes to a square. A border line must be flat (colour range ≤ 8 grey levels, 2%
   outliers aside); up to 16 more lines whose median is still the border colour go too (JPEG
   ringing next to the photo);
2. the photo goes to grey (ITU-R 601 luma) and straight to a 32 x 32 thumbnail by area averaging
   (OpenCV ``INTER_AREA``: each thumbnail pixel is the mean over its exact footprint), so the
   decoded size (JPEG draft scaling, a PNG at full size) hardly matters and the thumbnail of the
   mirror is the thumbnail mirrored, exactly;
3. pHash of it: the 2-D DCT-II, its 8 x 8 lowest frequencies against their median; the mirror's
   hash from the same DCT (mirroring flips the sign of the odd horizontal frequencies).

**Version 1** (indexes saved before it): ``imagehash.phash(hash_size=8)`` bit for bit, of the
trimmed photo resized to :data:`CANONICAL_SIDE` on its shorter side (bilinear, ``reducing_gap``),
through Pillow's Lanczos 32 x 32 thumbnail. It costs ~2x version 2's CPU (800 px listings, one
thread: 1.64 against 0.89 ms in benchmarks/scan_throughput.py's step table, 2.26 against 1.29 ms
on ``training/research/hash_lab.py``'s more often padded ones), because Pillow resamples twice and
the Lanczos kernel spans 48 source pixels per thumbnail pixel.

Measured on the 24 scikit-image / matplotlib sample photos (``hash_lab.py``; ``tests/test_hashing.py``
pins a subset), bits of 64 between a photo and its edited copy, worst / mean, version 2 (version 1:
the same worst cases but for a 3% crop, 18, and padding then q=60, 14): JPEG q=60 or q=40: 36 /
2.2-2.7 (the worst is the 128-px sample logo, below); an 800 px copy decoded with JPEG draft
scaling: 16 / 1.3; a 0.9 resize: 6 / 0.3; white padding: 16 / 1.0 (0 on 21 of the 24); padding
then JPEG q=60: 16 / 2.2; a black frame in white padding: 12 / 1.0; grey padding then q=50: 28 /
6.5; mirrored then JPEG: 12 / 1.2; a 3% crop: 22 / 5.2 (v1 18 / 5.0). Two different photos: 20 or
more (the closest pair, 4 bits, is a stereo pair of one scene). Hence :data:`DUPLICATE_MAX_DISTANCE`
= 10, the default radius of ``ReferenceIndex.find_duplicates``. Weak spots: crops beyond ~5%, padding plus heavy re-compression,
and tiny graphics on flat backgrounds (the 128-px sample logo moves 36 bits under JPEG, because
noise changes how much flat background is trimmed).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

__all__ = [
    "CANONICAL_SIDE",
    "DUPLICATE_MAX_DISTANCE",
    "HASH_BYTES",
    "HASH_VERSION",
    "HASH_VERSIONS",
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

HASH_VERSION = 2
"""The hash definition new indexes use (see the module docstring)."""

HASH_VERSIONS = (1, 2)
"""Every hash definition this library computes: an index keeps the one it was built with."""

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
    colour = _channel_medians(lines[:flat].reshape(-1, lines.shape[-1]))
    medians = np.median(lines[flat : flat + _RINGING_LINES], axis=1)
    off = np.flatnonzero(np.abs(medians - colour).max(axis=1) > 2 * tolerance)
    return flat + (int(off[0]) if off.size else medians.shape[0])


def _channel_medians(values: np.ndarray) -> np.ndarray:
    """``np.median(values, axis=0)`` of uint8 (n, channels) values, exactly, from a histogram per channel
    (a border of 60 lines is ~70k values: counting them is several times faster than partitioning them)."""
    n = values.shape[0]
    ranks = np.array([(n - 1) // 2, n // 2])  # the middle order statistics (one when n is odd)
    out = np.empty(values.shape[1])
    for channel in range(values.shape[1]):
        cumulative = np.cumsum(np.bincount(values[:, channel], minlength=256))
        out[channel] = np.searchsorted(cumulative, ranks, side="right").mean()
    return out


def _flat_lines(lines: np.ndarray, tolerance: int) -> int:
    """Leading lines whose robust spread is within ``tolerance``.

    Measured outside-in in growing chunks, stopping at the first line that is not flat (most photos
    have no border; measuring every line cost ~5 ms per 400 px photo). A line whose values all lie
    within ``tolerance`` of each other (all channels together) is flat without sorting it; the others
    of a chunk are sorted a few at a time, in order, up to the first that is not flat (a chunk that
    runs from a border into the photo holds dozens of photo lines). Each line's spread is its own, so
    the answer is the same as measuring every line.
    """
    start, step = 0, 4
    while start < lines.shape[0]:
        chunk = lines[start : start + step]
        values = np.ascontiguousarray(chunk).reshape(len(chunk), -1)  # all channels of a line at once
        flat = values.max(axis=1).astype(np.int16) - values.min(axis=1) <= tolerance
        unsure = np.flatnonzero(~flat)
        done, batch = 0, 1
        while done < unsure.size:
            lines_now = unsure[done : done + batch]
            spread_ok = _robust_spread(chunk[lines_now]) <= tolerance
            if not spread_ok.all():
                return start + int(lines_now[np.argmin(spread_ok)])
            done, batch = done + batch, batch * 2
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
# The 8 lowest rows of the unnormalised DCT-II matrix (scipy.fftpack.dct's): X[k] = 2 sum_n x[n] cos(pi k (2n + 1) / 2N)
_DCT_LOW = 2.0 * np.cos(np.pi * np.arange(_PHASH_SIZE)[:, None] * (2 * np.arange(_PHASH_SAMPLE) + 1) / (2 * _PHASH_SAMPLE))


def phash_pair(gray: Image.Image) -> np.ndarray:
    """Version 1: packed pHashes (uint8 (2, 8)) of a mode-"L" image and of its mirror, from one DCT.

    Each row is bit for bit ``imagehash.phash(image, hash_size=8)`` (the same Lanczos thumbnail, its
    DCT-II, the median threshold) on every photo with any texture; the DCT is two small matrix
    products rather than ``scipy.fftpack`` (so inference needs neither scipy nor imagehash), equal
    to ~1e-11, which decides a bit only where the low frequencies tie exactly: a flat photo, whose
    hash is rounding noise in either. The mirror needs no second thumbnail or DCT:
    Pillow's resampling is symmetric, so the mirror's thumbnail is the thumbnail mirrored, and
    mirroring a row flips the sign of its odd DCT-II frequencies (X'[k] = (-1)^k X[k]).
    tests/test_hashing.py holds both rows equal to imagehash's on real photos.
    """
    thumbnail = np.asarray(gray.resize((_PHASH_SAMPLE, _PHASH_SAMPLE), Image.Resampling.LANCZOS))
    return _pair_from_thumbnail(thumbnail)


def _pair_from_thumbnail(thumbnail: np.ndarray) -> np.ndarray:
    """Packed pHashes of a 32 x 32 thumbnail and of its mirror, from one DCT (see :func:`phash_pair`)."""
    low = _DCT_LOW @ thumbnail @ _DCT_LOW.T  # the 8 x 8 lowest frequencies of the 2-D DCT-II
    mirrored = low * _MIRROR_SIGNS
    bits = np.stack([low > np.median(low), mirrored > np.median(mirrored)])
    return np.packbits(bits.reshape(2, -1), axis=1)


def perceptual_hashes(
    image: Image.Image, *, version: int = HASH_VERSION, resized: Image.Image | None = None, trim: bool = True
) -> np.ndarray:
    """Row 0: pHash of the photo; row 1: pHash of its horizontal mirror. Returns uint8 (2, 8).

    ``version``: the hash definition (:data:`HASH_VERSIONS`; an index's is its ``hash_version``).
    ``trim=False`` hashes the whole frame, borders included (for grouping photos whose backdrops are
    near-uniform, see authvision_train.data). ``resized``, version 1 only and optional:
    ``image.resize(size, Image.Resampling.BILINEAR)`` for some size, as preprocessing makes it
    (:func:`authvision.preprocess.resized_size`); when no border is trimmed and that size is the
    canonical one it is hashed instead of resizing again, with the same hashes either way.
    """
    if version == 2:
        return _hashes_v2(image, trim)
    if version == 1:
        gray = _canonical(image, resized, trim).convert("L")  # what phash hashes; mirroring commutes with it
        return phash_pair(gray)
    raise ValueError(f"hash version must be one of {HASH_VERSIONS}, got {version!r}")


def _hashes_v2(image: Image.Image, trim: bool) -> np.ndarray:
    if not isinstance(image, Image.Image):
        raise TypeError(f"perceptual_hashes expects a PIL.Image.Image, got {type(image).__name__}")
    pixels = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
    if trim:
        left, top, right, bottom = _trim_box(pixels, _BORDER_TOLERANCE)
        pixels = pixels[top:bottom, left:right]
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY).astype(np.float32)
    thumbnail = cv2.resize(gray, (_PHASH_SAMPLE, _PHASH_SAMPLE), interpolation=cv2.INTER_AREA)
    return _pair_from_thumbnail(thumbnail.astype(np.float64))


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
