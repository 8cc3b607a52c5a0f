"""Behaviour of authvision.imageio on real photos and on a corpus of broken or hostile files."""

from __future__ import annotations

import hashlib
import io
import resource
import struct
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile
from skimage import data as skdata

from authvision.errors import AuthvisionError, ImageDecodeError
from authvision.imageio import (
    ALLOWED_FORMATS,
    DEFAULT_MAX_PIXELS,
    DecodedImage,
    decode_image,
    load_image,
)

# ---------------------------------------------------------------------------- helpers


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)


def _png(width: int, height: int, *, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _png_bomb() -> bytes:
    """A complete, valid 30000x30000 1-bit PNG (900 M pixels) of about 110 kB.

    Streamed row by row: building it with Image.new would allocate the 900 MB we guard against.
    """
    width = height = 30_000
    rows_per_block = 1000
    block = (b"\x00" * (1 + width // 8)) * rows_per_block
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(block) for _ in range(height // rows_per_block)) + comp.flush()
    return _png(width, height, bit_depth=1, color_type=0, idat=idat)


def _png_header_only(width: int, height: int) -> bytes:
    """An 8-bit RGB PNG header claiming width x height, with a few bytes of pixel data."""
    return _png(width, height, bit_depth=8, color_type=2, idat=zlib.compress(b"\x00" * 64))


def _bmp_header_only(width: int, height: int) -> bytes:
    pixels = b"\x00" * 64
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 0, 0, 0, 0)
    head = struct.pack("<2sIHHI", b"BM", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return head + info + pixels


def _photo(name: str = "chelsea") -> Image.Image:
    return Image.fromarray(getattr(skdata, name)())


def _flip_bytes(raw: bytes, start: float, count: int = 64) -> bytes:
    out = bytearray(raw)
    pos = int(len(raw) * start)
    for i in range(pos, min(pos + count, len(out))):
        out[i] ^= 0x5A
    return bytes(out)


def _exif_jpeg(orientation: int) -> bytes:
    """A 64x32 (W x H) JPEG, red in its stored top-left 16x16 block, gray elsewhere."""
    arr = np.full((32, 64, 3), 128, np.uint8)
    arr[:16, :16] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes())


def _gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None]
    arr = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8)
    return Image.fromarray(arr)


# ------------------------------------------------------------------------------ corpus


def _chelsea_jpeg() -> bytes:
    return _encode(_photo("chelsea"), "JPEG", quality=90)


def _chelsea_png() -> bytes:
    return _encode(_photo("chelsea"), "PNG")


def _truncated(fraction_or_bytes: float) -> Callable[[], bytes]:
    def build() -> bytes:
        raw = _chelsea_jpeg()
        cut = int(fraction_or_bytes) if fraction_or_bytes >= 1 else int(len(raw) * fraction_or_bytes)
        return raw[:cut]

    return build


def _palette_trns() -> bytes:
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    img.paste(1, (0, 0, 4, 8))  # left half red (index 1), right half index 0: transparent
    return _encode(img, "PNG", transparency=0)


def _rgba() -> bytes:
    arr = np.zeros((8, 8, 4), np.uint8)  # black, fully transparent
    arr[:, :4] = (0, 0, 255, 255)  # left half opaque blue
    arr[:4, 4:] = (0, 0, 0, 128)  # top-right half-transparent black
    return _encode(Image.fromarray(arr), "PNG")


def _la() -> bytes:
    arr = np.zeros((8, 8, 2), np.uint8)
    arr[:, :4] = (50, 255)
    img = Image.merge("LA", [Image.fromarray(arr[..., 0]), Image.fromarray(arr[..., 1])])
    return _encode(img, "PNG")


def _frames() -> list[Image.Image]:
    return [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]


def _animated(fmt: str) -> Callable[[], bytes]:
    def build() -> bytes:
        first, *rest = _frames()
        return _encode(first, fmt, save_all=True, append_images=rest, duration=100, loop=0)

    return build


def _i16_ramp() -> bytes:
    ramp = np.arange(65536, dtype=np.uint32).reshape(256, 256).astype(np.uint16)
    img = Image.fromarray(ramp)
    assert img.mode == "I;16"
    return _encode(img, "PNG")


def _cmyk() -> bytes:
    return _encode(_photo("coffee").convert("CMYK"), "JPEG", quality=95)


def _solid(size: tuple[int, int]) -> Callable[[], bytes]:
    return lambda: _encode(Image.new("RGB", size, (10, 200, 30)), "PNG")


def _gradient_as(fmt: str) -> Callable[[], bytes]:
    return lambda: _encode(_gradient(40, 30), fmt)


CORPUS: dict[str, Callable[[], bytes]] = {
    "empty.jpg": lambda: b"",
    "text.jpg": lambda: b"<html><body>Sorry, this listing photo was removed.</body></html>\n",
    "random.jpg": lambda: np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes(),
    "jpeg_magic_only.jpg": lambda: b"\xff\xd8\xff",
    "png_magic_only.png": lambda: b"\x89PNG\r\n\x1a\n",
    "chelsea.jpg": _chelsea_jpeg,
    "chelsea_cut10.jpg": _truncated(10),
    "chelsea_cut100.jpg": _truncated(100),
    "chelsea_cut30pct.jpg": _truncated(0.30),
    "chelsea_cut60pct.jpg": _truncated(0.60),
    "chelsea_cut95pct.jpg": _truncated(0.95),
    "chelsea_flipped.jpg": lambda: _flip_bytes(_chelsea_jpeg(), 0.5),
    "chelsea_flipped_header.jpg": lambda: _flip_bytes(_chelsea_jpeg(), 0.0, 200),
    "chelsea.png": _chelsea_png,
    "chelsea_cut50pct.png": lambda: _chelsea_png()[: len(_chelsea_png()) // 2],
    "chelsea_flipped.png": lambda: _flip_bytes(_chelsea_png(), 0.5),
    "bomb_30000x30000.png": _png_bomb,
    "header_9000x9000.png": lambda: _png_header_only(9000, 9000),
    "header_10000x10000.png": lambda: _png_header_only(10_000, 10_000),
    "header_zero_width.png": lambda: _png_header_only(0, 100),
    "header_40000x40000.bmp": lambda: _bmp_header_only(40_000, 40_000),
    "cmyk.jpg": _cmyk,
    "i16_ramp.png": _i16_ramp,
    "palette_trns.png": _palette_trns,
    "rgba.png": _rgba,
    "la.png": _la,
    "anim.gif": _animated("GIF"),
    "anim.png": _animated("PNG"),
    "anim.webp": _animated("WEBP"),
    "anim_cut.gif": lambda: _animated("GIF")()[:-20],
    "exif6.jpg": lambda: _exif_jpeg(6),
    "exif3.jpg": lambda: _exif_jpeg(3),
    "one_pixel.png": _solid((1, 1)),
    "wide_10000x3.png": _solid((10_000, 3)),
    "gradient.bmp": _gradient_as("BMP"),
    "gradient.tiff": _gradient_as("TIFF"),
    "gradient.webp": _gradient_as("WEBP"),
    "gradient.gif": _gradient_as("GIF"),
    "gradient_cut.tiff": lambda: _gradient_as("TIFF")()[:300],
    "gradient_cut.webp": lambda: _gradient_as("WEBP")()[:60],
    "gradient_cut.bmp": lambda: _gradient_as("BMP")()[:500],
    "gradient.ico": _gradient_as("ICO"),
    "gradient.pcx": _gradient_as("PCX"),
    "gradient.ppm": _gradient_as("PPM"),
    "heic_brand.jpg": lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("imageio_corpus")
    paths = {}
    for name, build in CORPUS.items():
        paths[name] = root / name
        paths[name].write_bytes(build())
    return paths


def _rgb(decoded: DecodedImage | Image.Image) -> np.ndarray:
    img = decoded.image if isinstance(decoded, DecodedImage) else decoded
    assert img.mode == "RGB"
    return np.asarray(img)


# ------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_corpus_file_gives_rgb_or_image_decode_error(
    corpus: dict[str, Path], name: str
) -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may escape either
        try:
            decoded = decode_image(corpus[name])
        except ImageDecodeError as exc:
            assert type(exc) is ImageDecodeError
            assert str(exc)
        else:
            assert decoded.image.mode == "RGB"
            assert decoded.image.width >= 1 and decoded.image.height >= 1
            assert len(decoded.sha256) == 64
            decoded.image.tobytes()  # fully loaded and usable
    assert before == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))


def test_real_photo_path_bytes_and_views_agree(corpus: dict[str, Path]) -> None:
    path = corpus["chelsea.jpg"]
    raw = path.read_bytes()
    from_path = decode_image(path)
    assert from_path.format == "JPEG"
    assert from_path.image.size == from_path.original_size == (451, 300)
    assert from_path.sha256 == hashlib.sha256(raw).hexdigest()
    assert decode_image(str(path)).sha256 == from_path.sha256
    for source in (raw, bytearray(raw), memoryview(raw)):
        other = decode_image(source)
        assert other.sha256 == from_path.sha256
        np.testing.assert_array_equal(_rgb(other), _rgb(from_path))
    # close to the original photo (JPEG quality 90)
    assert np.abs(_rgb(from_path).astype(int) - skdata.chelsea().astype(int)).mean() < 4
    assert load_image(raw).size == (451, 300)


def test_empty_input(corpus: dict[str, Path]) -> None:
    with pytest.raises(ImageDecodeError, match="empty input"):
        decode_image(corpus["empty.jpg"])
    with pytest.raises(ImageDecodeError, match="empty input"):
        decode_image(b"")


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("text.jpg", "text"),
        ("gradient.ico", "ICO"),
        ("gradient.pcx", "PCX"),
        ("gradient.ppm", "PPM"),
        ("heic_brand.jpg", "HEIF"),
    ],
)
def test_formats_outside_the_allow_list_are_refused(
    corpus: dict[str, Path], name: str, named: str
) -> None:
    with pytest.raises(ImageDecodeError, match="not a supported image format") as info:
        decode_image(corpus[name])
    message = str(info.value)
    assert f"looks like {named}" in message
    assert all(fmt in message for fmt in ALLOWED_FORMATS)
    assert name in message


def test_all_allowed_formats_decode(corpus: dict[str, Path]) -> None:
    expected = np.asarray(_gradient(40, 30))
    for name, fmt, tol in [
        ("gradient.bmp", "BMP", 0),
        ("gradient.tiff", "TIFF", 0),
        ("gradient.webp", "WEBP", 8),
        ("gradient.gif", "GIF", 40),
    ]:
        decoded = decode_image(corpus[name])
        assert decoded.format == fmt
        assert decoded.original_size == (40, 30)
        assert np.abs(_rgb(decoded).astype(int) - expected).mean() <= tol, name


@pytest.mark.parametrize("cut", ["cut10", "cut100", "cut30pct", "cut60pct", "cut95pct"])
def test_truncated_jpeg_loads_or_raises(corpus: dict[str, Path], cut: str) -> None:
    path = corpus[f"chelsea_{cut}.jpg"]
    if cut in ("cut10", "cut100"):  # cut inside the header: never an image
        with pytest.raises(ImageDecodeError, match="truncated or corrupt JPEG"):
            decode_image(path)
        return
    try:
        decoded = decode_image(path)
    except ImageDecodeError as exc:
        assert "truncated or corrupt JPEG" in str(exc)
        assert exc.__cause__ is not None
    else:
        assert decoded.image.size == (451, 300)


def test_truncated_png_chains_the_cause(corpus: dict[str, Path]) -> None:
    with pytest.raises(ImageDecodeError, match="truncated or corrupt PNG") as info:
        decode_image(corpus["chelsea_cut50pct.png"])
    assert isinstance(info.value.__cause__, (OSError, SyntaxError, ValueError, zlib.error))


def test_png_bomb_is_refused_fast_without_allocating(corpus: dict[str, Path]) -> None:
    path = corpus["bomb_30000x30000.png"]
    assert path.stat().st_size < 1_000_000
    rss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(ImageDecodeError, match="too many pixels"):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match="too many pixels"):
        decode_image(path, max_pixels=10**12)  # Pillow's own limit still refuses it
    assert time.perf_counter() - start < 1.0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kb) / 1024
    assert grown_mb < 200


def test_pixel_limit_is_checked_on_the_header(corpus: dict[str, Path]) -> None:
    # 81 M pixels: below Pillow's own limit, above ours; decoding would need 243 MB
    with pytest.raises(ImageDecodeError, match=r"9000x9000 = 81,000,000 exceeds max_pixels=50,000,000"):
        decode_image(corpus["header_9000x9000.png"])
    with pytest.raises(ImageDecodeError, match=r"451x300 .* exceeds max_pixels=1,000"):
        decode_image(corpus["chelsea.jpg"], max_pixels=1000)
    assert DEFAULT_MAX_PIXELS == 50_000_000


def test_pillow_bomb_warning_becomes_an_error(corpus: dict[str, Path]) -> None:
    # 100 M pixels makes Pillow warn (not raise); with our limit raised that must still raise
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageDecodeError, match="MAX_IMAGE_PIXELS") as info:
            decode_image(corpus["header_10000x10000.png"], max_pixels=10**9)
    assert not caught
    assert isinstance(info.value.__cause__, Image.DecompressionBombWarning)
    with pytest.raises(ImageDecodeError, match="10000x10000"):
        decode_image(corpus["header_10000x10000.png"])


def test_zero_side_is_an_error(corpus: dict[str, Path]) -> None:
    with pytest.raises(ImageDecodeError):
        decode_image(corpus["header_zero_width.png"])
    with pytest.raises(ImageDecodeError, match="zero side"):
        decode_image(np.zeros((0, 5, 3), np.uint8))


def test_cmyk_jpeg_colours(corpus: dict[str, Path]) -> None:
    decoded = decode_image(corpus["cmyk.jpg"])
    assert decoded.format == "JPEG" and decoded.image.size == (600, 400)
    assert np.abs(_rgb(decoded).astype(int) - skdata.coffee().astype(int)).mean() < 6


def test_16_bit_png_is_scaled_not_clipped(corpus: dict[str, Path]) -> None:
    rgb = _rgb(decode_image(corpus["i16_ramp.png"]))
    gray = rgb[..., 0]
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    flat = gray.reshape(-1)  # flat[v] is the 8-bit value of 16-bit value v
    assert flat[0] == 0 and flat[65535] == 255 and flat[32768] == 128
    assert flat[20_000] == round(20_000 / 257)  # 78, not saturated
    assert (np.diff(flat.astype(int)) >= 0).all()


def test_16_bit_big_endian_and_wide_modes_from_pil() -> None:
    ramp = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)  # 0, 257, ..., 65535
    expected = np.arange(256, dtype=np.uint8).reshape(16, 16)
    big = Image.frombytes("I;16B", (16, 16), ramp.astype(">u2").tobytes())
    np.testing.assert_array_equal(_rgb(decode_image(big))[..., 0], expected)
    as_int32 = Image.fromarray(ramp.astype(np.int32))
    assert as_int32.mode == "I"
    np.testing.assert_array_equal(_rgb(decode_image(as_int32))[..., 1], expected)
    as_float = Image.fromarray((expected / 255).astype(np.float32))
    assert as_float.mode == "F"
    np.testing.assert_array_equal(_rgb(decode_image(as_float))[..., 2], expected)


def test_transparency_is_composited_on_white(corpus: dict[str, Path]) -> None:
    palette = _rgb(decode_image(corpus["palette_trns.png"]))
    assert (palette[:, :4] == (255, 0, 0)).all()
    assert (palette[:, 4:] == 255).all()

    rgba = _rgb(decode_image(corpus["rgba.png"]))
    assert (rgba[:, :4] == (0, 0, 255)).all()
    assert (rgba[4:, 4:] == 255).all()  # alpha 0 over black pixels: white, not black
    assert np.abs(rgba[:4, 4:].astype(int) - 127).max() <= 1  # half-transparent black: gray

    la = _rgb(decode_image(corpus["la.png"]))
    assert (la[:, :4] == 50).all() and (la[:, 4:] == 255).all()


@pytest.mark.parametrize("name", ["anim.gif", "anim.png", "anim.webp"])
def test_animated_images_give_the_first_frame(corpus: dict[str, Path], name: str) -> None:
    decoded = decode_image(corpus[name])
    assert decoded.image.size == (16, 12)
    assert np.abs(_rgb(decoded).astype(int) - (255, 0, 0)).max() <= 8


def test_exif_orientation_is_applied(corpus: dict[str, Path]) -> None:
    rotated = decode_image(corpus["exif6.jpg"])
    assert rotated.image.size == rotated.original_size == (32, 64)  # W and H swapped
    rgb = _rgb(rotated).astype(int)
    # orientation 6: rotate 90 degrees clockwise, the stored top-left ends up top-right
    assert np.abs(rgb[4, -4] - (255, 0, 0)).max() < 40
    assert np.abs(rgb[4, 4] - 128).max() < 20
    # decoding the result again must not rotate it twice
    again = decode_image(rotated.image)
    np.testing.assert_array_equal(_rgb(again), _rgb(rotated))

    upside_down = _rgb(decode_image(corpus["exif3.jpg"])).astype(int)
    assert upside_down.shape == (32, 64, 3)
    assert np.abs(upside_down[-4, -4] - (255, 0, 0)).max() < 40


def test_tiny_and_extreme_aspect_images(corpus: dict[str, Path]) -> None:
    one = decode_image(corpus["one_pixel.png"])
    assert one.image.size == (1, 1) and tuple(_rgb(one)[0, 0]) == (10, 200, 30)
    wide = decode_image(corpus["wide_10000x3.png"])
    assert wide.image.size == (10_000, 3) and (_rgb(wide) == (10, 200, 30)).all()


def test_jpeg_draft_keeps_both_sides_at_least_min_side() -> None:
    raw = _encode(_gradient(800, 600), "JPEG", quality=90)
    full = decode_image(raw)
    assert full.image.size == full.original_size == (800, 600)
    drafted = decode_image(raw, min_side=200)
    assert drafted.original_size == (800, 600)
    assert drafted.image.size == (400, 300)
    for min_side in (1, 75, 100, 150, 299, 300, 301, 599, 600, 601, 5000):
        size = decode_image(raw, min_side=min_side).image.size
        assert size[0] <= 800 and size[1] <= 600
        assert min(size) >= min(min_side, 600), (min_side, size)
    assert decode_image(raw, min_side=75).image.size == (100, 75)  # 1/8, the smallest step
    # non-JPEG inputs are never scaled
    assert decode_image(_encode(_gradient(800, 600), "PNG"), min_side=100).image.size == (800, 600)


def test_draft_then_exif_orientation() -> None:
    arr = np.full((400, 800, 3), 128, np.uint8)
    arr[:100, :100] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = _encode(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes())
    decoded = decode_image(raw, min_side=100)
    assert decoded.original_size == (400, 800)
    assert decoded.image.size == (100, 200)  # 1/4 of the stored 800x400, then rotated
    assert np.abs(_rgb(decoded)[3, -3].astype(int) - (255, 0, 0)).max() < 40


def test_arrays() -> None:
    photo = skdata.astronaut()
    decoded = decode_image(photo)
    assert decoded.format is None and decoded.original_size == (512, 512)
    np.testing.assert_array_equal(_rgb(decoded), photo)
    np.testing.assert_array_equal(_rgb(decode_image(photo[:, ::-1])), photo[:, ::-1])

    gray = skdata.camera()
    rgb = _rgb(decode_image(gray))
    assert (rgb == gray[..., None]).all()
    np.testing.assert_array_equal(_rgb(decode_image(gray[..., None])), rgb)

    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[:, :3] = (0, 255, 0, 255)
    out = _rgb(decode_image(rgba))
    assert (out[:, :3] == (0, 255, 0)).all() and (out[:, 3:] == 255).all()

    assert decode_image(photo).sha256 == decode_image(Image.fromarray(photo)).sha256
    assert decode_image(photo).sha256 != decode_image(photo.reshape(256, 1024, 3)).sha256


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((4, 4, 3), np.float32), "dtype must be uint8"),
        (np.zeros((4, 4, 3), np.uint16), "dtype must be uint8"),
        (np.zeros((4, 4, 3), bool), "dtype must be uint8"),
        (np.zeros((4, 4, 2), np.uint8), "shape must be"),
        (np.zeros((2, 4, 4, 3), np.uint8), "shape must be"),
        (np.zeros(12, np.uint8), "shape must be"),
        (np.zeros((3000, 3000), np.uint8), "too many pixels"),
    ],
)
def test_bad_arrays(array: np.ndarray, match: str) -> None:
    with pytest.raises(ImageDecodeError, match=match):
        decode_image(array, max_pixels=1_000_000)


def test_pil_input_is_converted_and_left_untouched() -> None:
    img = Image.open(io.BytesIO(_palette_trns()))
    img.load()
    before = (img.mode, img.tobytes(), dict(img.info))
    decoded = decode_image(img)
    assert decoded.format == "PNG"
    assert (_rgb(decoded)[:, 4:] == 255).all()
    assert (img.mode, img.tobytes(), dict(img.info)) == before

    rgb = _photo("chelsea")
    out = load_image(rgb)
    assert out is not rgb and out.tobytes() == rgb.tobytes()
    out.putpixel((0, 0), (1, 2, 3))
    assert rgb.getpixel((0, 0)) != (1, 2, 3)

    lazy = Image.open(io.BytesIO(_chelsea_jpeg()))  # not loaded yet
    assert decode_image(lazy).image.size == (451, 300)
    with pytest.raises(ImageDecodeError, match="too many pixels"):
        decode_image(Image.new("L", (100, 100)), max_pixels=9999)


def test_bad_paths(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ImageDecodeError, match="not found: .*nope.jpg") as info:
        decode_image(missing)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    with pytest.raises(ImageDecodeError, match="not a regular file"):
        decode_image(tmp_path)
    assert issubclass(ImageDecodeError, AuthvisionError) and issubclass(ImageDecodeError, ValueError)


@pytest.mark.parametrize("source", [None, 42, 3.5, ["a.jpg"], {"path": "a.jpg"}, object()])
def test_wrong_types_raise_type_error(source: object) -> None:
    with pytest.raises(TypeError, match="path .* bytes .* PIL.Image.Image .* numpy.ndarray"):
        decode_image(source)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"min_side": 0}, {"max_pixels": 0}, {"min_side": 2.5}])
def test_bad_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="positive int"):
        decode_image(np.zeros((2, 2), np.uint8), **kwargs)  # type: ignore[arg-type]
