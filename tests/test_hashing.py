"""Perceptual hashes on real photos: edited copies stay close, different photos stay far apart."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from authvision.hashing import (
    CANONICAL_SIDE,
    DUPLICATE_MAX_DISTANCE,
    HASH_VERSIONS,
    hamming,
    hash_to_hex,
    hex_to_hash,
    perceptual_hashes,
    trim_uniform_border,
)

pytest.importorskip("skimage")
from authvision.sample_photos import sample_photo  # noqa: E402

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera", "grace_hopper")


def _photo(name: str) -> Image.Image:
    return Image.fromarray(sample_photo(name))


def _jpeg(image: Image.Image, quality: int, draft_scale: int = 1) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    if draft_scale > 1:  # what callers do: DCT-domain down-scaling while decoding
        decoded.draft("RGB", (image.width // draft_scale, image.height // draft_scale))
    return decoded.convert("RGB")


def _crop(image: Image.Image, fraction: float) -> Image.Image:
    dx, dy = round(image.width * fraction / 2), round(image.height * fraction / 2)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def _pad_square(image: Image.Image, colour: str = "white") -> Image.Image:
    side = max(image.size) + 40
    out = Image.new("RGB", (side, side), colour)
    out.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return out


EDITS = {
    "jpeg q=60": lambda im: _jpeg(im, 60),
    "jpeg draft 1/2": lambda im: _jpeg(im, 90, draft_scale=2),
    "resize 0.9": lambda im: im.resize((round(im.width * 0.9), round(im.height * 0.9)), Image.Resampling.BICUBIC),
    "crop 3%": lambda im: _crop(im, 0.03),
    "white padding": _pad_square,
    "white padding + jpeg q=60": lambda im: _jpeg(_pad_square(im), 60),
    "mirror": ImageOps.mirror,
}


def _distance(reference: np.ndarray, query: np.ndarray) -> int:
    """As the index matches: the query's row 0 against both rows of the reference."""
    return int(min(hamming(query[0], reference[0]), hamming(query[0], reference[1])))


@pytest.fixture(scope="module", params=HASH_VERSIONS, ids=lambda v: f"v{v}")
def version(request) -> int:
    return request.param


@pytest.fixture(scope="module")
def reference_hashes(version) -> dict[str, np.ndarray]:
    return {name: perceptual_hashes(_photo(name), version=version) for name in PHOTOS}


def test_shape_dtype_and_determinism(reference_hashes, version):
    hashes = perceptual_hashes(_photo("chelsea"), version=version)
    assert hashes.shape == (2, 8) and hashes.dtype == np.uint8
    np.testing.assert_array_equal(hashes, reference_hashes["chelsea"])
    # row 1 is the mirror's hash: hashing the mirror swaps the rows
    mirrored = perceptual_hashes(ImageOps.mirror(_photo("chelsea")), version=version)
    np.testing.assert_array_equal(mirrored[::-1], hashes)


@pytest.mark.parametrize("edit", list(EDITS))
def test_edited_copies_stay_close(edit, reference_hashes, version):
    # measured, both versions: every edit here is <= 6 bits on these photos (most 0-2); DUPLICATE_MAX_DISTANCE is 10
    distances = {
        name: _distance(reference_hashes[name], perceptual_hashes(EDITS[edit](_photo(name)), version=version))
        for name in PHOTOS
    }
    assert max(distances.values()) <= 8, distances
    assert max(distances.values()) <= DUPLICATE_MAX_DISTANCE


def test_different_photos_stay_far(reference_hashes):
    # measured: >= 20 bits between every pair of distinct scikit-image photos (except a stereo pair)
    names = list(reference_hashes)
    distances = [
        _distance(reference_hashes[a], reference_hashes[b]) for i, a in enumerate(names) for b in names[i + 1 :]
    ]
    assert min(distances) >= 18, distances
    assert min(distances) > DUPLICATE_MAX_DISTANCE + 5


def test_decoded_size_is_irrelevant(version):
    photo = _photo("astronaut")
    small = photo.resize((CANONICAL_SIDE // 2, CANONICAL_SIDE // 2), Image.Resampling.BILINEAR)
    big = photo.resize((1024, 1024), Image.Resampling.BILINEAR)
    assert _distance(perceptual_hashes(big, version=version), perceptual_hashes(small, version=version)) <= 2


def test_the_two_versions_differ_and_an_unknown_one_is_refused():
    # an index keeps the version its hashes are of: the two agree closely, but not bit for bit
    from authvision.sample_photos import ALL_PHOTOS

    distances = [_distance(perceptual_hashes(_photo(n), version=1), perceptual_hashes(_photo(n), version=2)) for n in ALL_PHOTOS]
    assert max(distances) > 0 and np.median(distances) <= 2, distances
    with pytest.raises(ValueError, match="hash version"):
        perceptual_hashes(_photo("coffee"), version=3)


def test_trim_uniform_border_removes_padding_and_keeps_photos():
    photo = _photo("coffee")
    assert trim_uniform_border(photo).size == photo.size
    framed = _pad_square(_pad_square(photo, "black"), "white")  # nested frames of two colours
    trimmed = trim_uniform_border(framed)
    assert abs(trimmed.width - photo.width) <= 2 and abs(trimmed.height - photo.height) <= 2
    blank = Image.new("RGB", (100, 80), "white")
    assert trim_uniform_border(blank).size == blank.size


def test_hamming_and_hex_round_trip(reference_hashes):
    a, b = reference_hashes["chelsea"][0], reference_hashes["coffee"][0]
    expected = sum(bin(x ^ y).count("1") for x, y in zip(a.tolist(), b.tolist()))
    assert hamming(a, b) == expected
    assert hamming(a, a) == 0
    np.testing.assert_array_equal(hamming(reference_hashes["chelsea"], b), [expected, hamming(reference_hashes["chelsea"][1], b)])
    text = hash_to_hex(a)
    assert len(text) == 16 and int(text, 16) >= 0
    np.testing.assert_array_equal(hex_to_hash(text), a)
    with pytest.raises(ValueError, match="16 hex digits"):
        hex_to_hash("abcd")
    with pytest.raises(ValueError, match="not a hex hash"):
        hex_to_hash("zz" * 8)
    with pytest.raises(ValueError, match="shape"):
        hash_to_hex(np.zeros(4, dtype=np.uint8))


def test_rejects_non_images():
    with pytest.raises(TypeError, match="PIL.Image.Image"):
        perceptual_hashes(np.zeros((10, 10, 3), dtype=np.uint8))  # type: ignore[arg-type]


def test_both_phashes_from_one_dct_are_imagehash_bit_for_bit_on_real_photos():
    """Version 1: row 0 is imagehash.phash of the canonical photo, row 1 imagehash.phash of its
    mirror, though the mirror's comes from the photo's own thumbnail and DCT (odd horizontal
    frequencies negated). Both versions: hashing the mirror gives the rows swapped, exactly."""
    import imagehash
    import skimage.data

    from authvision.hashing import phash_pair
    from authvision.sample_photos import ALL_PHOTOS

    photos = [_photo(name) for name in ALL_PHOTOS]
    photos += [Image.fromarray(skimage.data.astronaut()).rotate(7, expand=True), _pad_square(_photo("coffee"))]
    photos += [_jpeg(_photo(name), 70, draft_scale=2) for name in PHOTOS]
    for photo in photos:
        gray = photo.convert("L")
        expected = [imagehash.phash(gray, hash_size=8).hash, imagehash.phash(ImageOps.mirror(gray), hash_size=8).hash]
        np.testing.assert_array_equal(phash_pair(gray), np.packbits(np.stack(expected).reshape(2, -1), axis=1))
        for version in HASH_VERSIONS:  # the same through border trimming and resizing
            hashes = perceptual_hashes(photo, version=version)
            np.testing.assert_array_equal(perceptual_hashes(ImageOps.mirror(photo), version=version), hashes[::-1])
