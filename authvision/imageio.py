"""Safe decoding of listing photos into RGB images.

Every path that reads pixels (reference indexing, scanning, training) goes through
:func:`decode_image` / :func:`load_image`, so the safety rules live here once:

* an allow-list of formats (Pillow is not even asked to try other decoders);
* a pixel limit checked on the header, before any pixel is allocated, that raises;
* EXIF orientation applied; every mode converted to 8-bit RGB (alpha composited on
  white, 16/32-bit data scaled by its range rather than clipped);
* optional JPEG draft (DCT-domain) down-scaling when the caller needs only ``min_side``;
* every problem with the *content* of an input raised as :class:`ImageDecodeError`,
  chained to its cause. A wrong *type* of input raises :class:`TypeError`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from authvision.errors import ImageDecodeError

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "DecodedImage",
    "ImageSource",
    "decode_image",
    "load_image",
]

logger = logging.getLogger(__name__)

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray

# 50 MP covers the full resolution of today's 48-50 MP phone sensors (8000x6000 = 48 MP) with
# room to spare, decodes to at most 150 MB of RGB, and sits below Pillow's own warning
# threshold (Image.MAX_IMAGE_PIXELS, about 89.5 MP), so Pillow's guard never fires first for
# images we would accept. Marketplace listing photos are rarely above 4000x4000 (16 MP).
DEFAULT_MAX_PIXELS: int = 50_000_000

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})

# Uncompressed float RGBA TIFF is the densest allowed encoding (16 bytes/pixel); a file larger
# than that for max_pixels cannot be a photo we would accept, so we refuse to read it at all.
_MAX_FILE_BYTES_PER_PIXEL = 16
_MIN_FILE_BYTES_LIMIT = 64 << 20

# What Pillow's plugins raise on corrupt or truncated data. Warning is here because a caller's
# "-W error" turns Pillow's warnings (malformed MPO, corrupt EXIF, ...) into exceptions.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    EOFError,
    OverflowError,
    ZeroDivisionError,
    struct.error,
    zlib.error,
    Warning,
)

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_ORIENTATION_TAG = 0x0112
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class DecodedImage:
    """An input decoded to RGB, with what is known about its source.

    Attributes:
        image: mode "RGB", fully loaded, holding no open file.
        sha256: hex sha256 of the source bytes for files and bytes; for PIL images and arrays,
            of the width and height (two little-endian uint32) followed by the RGB pixel buffer.
        original_size: (width, height) before JPEG draft scaling, after EXIF orientation.
        format: Pillow's format name ("JPEG", "PNG", ...), None for arrays and in-memory images.
    """

    image: Image.Image
    sha256: str
    original_size: tuple[int, int]
    format: str | None


def load_image(
    source: ImageSource, *, min_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Decode ``source`` to an RGB PIL image; see :func:`decode_image`."""
    return decode_image(source, min_side=min_side, max_pixels=max_pixels).image


def decode_image(
    source: ImageSource, *, min_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> DecodedImage:
    """Decode a path, encoded bytes, a PIL image or a uint8 array to an RGB image.

    Args:
        source: a file path; encoded image bytes (bytes, bytearray, memoryview); a PIL image
            (its current frame, never modified); or a uint8 array of shape HxW, HxWx1, HxWx3
            or HxWx4 (alpha composited on white).
        min_side: the smallest side the caller needs. JPEGs are then decoded at 1/2, 1/4 or
            1/8 scale (DCT draft) while both sides stay >= min_side; other inputs are returned
            at full size. This is a decoding speed-up, not a resize.
        max_pixels: refuse images with more pixels than this, read from the header before
            decoding. Pillow's global ``Image.MAX_IMAGE_PIXELS`` stays an upper bound too.

    Raises:
        ImageDecodeError: missing file, empty input, format outside ALLOWED_FORMATS, too many
            pixels, truncated or corrupt data, unsupported mode, wrong array dtype or shape.
        TypeError: ``source`` is not one of the accepted types.
        ValueError: ``min_side`` or ``max_pixels`` is not a positive int.
    """
    _check_positive_int("max_pixels", max_pixels)
    if min_side is not None:
        _check_positive_int("min_side", min_side)

    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):  # os.PathLike may return bytes
            path = os.fsdecode(path)
        data = _read_file(path, max_pixels)
        return _decode_encoded(data, f"image file {path!r}", min_side, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = source if isinstance(source, bytes) else bytes(source)
        return _decode_encoded(data, f"image bytes ({len(data)} bytes)", min_side, max_pixels)
    if isinstance(source, Image.Image):
        return _decode_pil(source, max_pixels)
    if isinstance(source, np.ndarray):
        return _decode_array(source, max_pixels)
    raise TypeError(
        "image source must be a path (str or os.PathLike), encoded bytes (bytes, bytearray, "
        f"memoryview), a PIL.Image.Image or a uint8 numpy.ndarray; got {type(source).__name__}"
    )


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _read_file(path: str, max_pixels: int) -> bytes:
    """Read a whole regular file, refusing files too large to hold an acceptable image."""
    limit = max(_MIN_FILE_BYTES_LIMIT, _MAX_FILE_BYTES_PER_PIXEL * max_pixels)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # directories, FIFOs, devices: could block or never end
            raise ImageDecodeError(f"not a regular file: {path!r}")
        if st.st_size > limit:
            raise ImageDecodeError(
                f"image file {path!r} is too large: {st.st_size:,} bytes "
                f"(at most {limit:,} for max_pixels={max_pixels:,})"
            )
        with open(path, "rb") as f:
            data = f.read()  # sized from the file's length, checked above
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"image file not found: {path!r}") from exc
    except (OSError, ValueError) as exc:  # ValueError: embedded NUL byte in the path
        raise ImageDecodeError(f"cannot read image file {path!r}: {exc}") from exc
    return data


def _decode_encoded(
    data: bytes, what: str, min_side: int | None, max_pixels: int
) -> DecodedImage:
    if not data:
        raise ImageDecodeError(f"empty input: {what} holds no data")
    digest = hashlib.sha256(data).hexdigest()

    # Pillow *warns* between MAX_IMAGE_PIXELS and twice that; we make the warning an error so a
    # bomb can only ever surface as ImageDecodeError. catch_warnings touches process-global
    # state (before Python 3.14); the filter it adds is harmless if a thread race leaks it.
    with warnings.catch_warnings(), io.BytesIO(data) as buf:
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(buf, formats=sorted(ALLOWED_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb_error(what, exc, max_pixels) from exc
        except UnidentifiedImageError as exc:
            raise _unidentified_error(what, data) from exc
        except _DECODE_ERRORS as exc:
            kind = _sniff_format(data[:16]) or "image"
            raise ImageDecodeError(f"{what}: truncated or corrupt {kind} header ({exc})") from exc

        with img:
            fmt = img.format
            width, height = img.size
            _check_pixels(what, width, height, max_pixels)
            if min_side is not None and isinstance(img, JpegImagePlugin.JpegImageFile):
                # Pillow picks the largest 1/s (s in 8, 4, 2, 1) with W // s and H // s both
                # >= the requested size, so no side drops below min_side (JpegImagePlugin.draft).
                img.draft("RGB", (min_side, min_side))
            try:
                img.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise _bomb_error(what, exc, max_pixels) from exc
            except _DECODE_ERRORS as exc:
                raise ImageDecodeError(
                    f"{what}: truncated or corrupt {fmt} data ({exc})"
                ) from exc
            if img.size != (width, height):
                logger.debug("%s: JPEG draft decoded %s at %s", what, (width, height), img.size)
            orientation = _orientation(img, what)
            rgb = _apply_orientation(_to_rgb(img, what), orientation)
    # Leaving both with-blocks dropped the image's file pointer and freed the BytesIO buffer, so
    # even when ``rgb`` is ``img`` itself (an RGB JPEG) no copy is made and nothing stays open.
    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return DecodedImage(image=rgb, sha256=digest, original_size=(width, height), format=fmt)


def _decode_pil(source: Image.Image, max_pixels: int) -> DecodedImage:
    what = f"PIL image (mode {source.mode}, size {source.size[0]}x{source.size[1]})"
    _check_pixels(what, *source.size, max_pixels)
    try:
        source.load()  # a lazily opened file: decoding may fail here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(what, exc, max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise ImageDecodeError(f"{what}: truncated or corrupt image data ({exc})") from exc
    rgb = _apply_orientation(_to_rgb(source, what), _orientation(source, what))
    if rgb is source:
        rgb = source.copy()  # never hand back (and let anyone mutate) the caller's object
    return DecodedImage(
        image=rgb, sha256=_pixel_digest(rgb), original_size=rgb.size, format=source.format
    )


def _decode_array(array: np.ndarray, max_pixels: int) -> DecodedImage:
    # A wrong dtype or shape is a problem with the content of an accepted type, hence
    # ImageDecodeError; silently rescaling floats or ints would guess at the caller's range.
    what = f"array of shape {array.shape} and dtype {array.dtype}"
    if array.dtype != np.uint8:
        raise ImageDecodeError(
            f"{what}: dtype must be uint8; convert first, e.g. "
            "(x * 255).round().clip(0, 255).astype(np.uint8) for floats in [0, 1]"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ImageDecodeError(
            f"{what}: shape must be HxW (gray), HxWx1, HxWx3 (RGB) or HxWx4 (RGBA)"
        )
    height, width = array.shape[:2]
    _check_pixels(what, width, height, max_pixels)
    img = _to_rgb(Image.fromarray(np.ascontiguousarray(array)), what)
    return DecodedImage(image=img, sha256=_pixel_digest(img), original_size=img.size, format=None)


def _check_pixels(what: str, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{what}: image has a zero side ({width}x{height})")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"{what}: too many pixels, {width}x{height} = {width * height:,} "
            f"exceeds max_pixels={max_pixels:,}"
        )


def _bomb_error(what: str, exc: BaseException, max_pixels: int) -> ImageDecodeError:
    return ImageDecodeError(
        f"{what}: too many pixels ({exc}); max_pixels={max_pixels:,} and Pillow's global "
        f"Image.MAX_IMAGE_PIXELS={Image.MAX_IMAGE_PIXELS:,} both apply"
    )


def _unidentified_error(what: str, data: bytes) -> ImageDecodeError:
    allowed = ", ".join(sorted(ALLOWED_FORMATS))
    guess = _sniff_format(data[:16])
    if guess in ALLOWED_FORMATS:
        return ImageDecodeError(f"{what}: truncated or corrupt {guess} header")
    hint = f" (it looks like {guess})" if guess else ""
    return ImageDecodeError(f"{what}: not a supported image format{hint}; allowed: {allowed}")


def _sniff_format(prefix: bytes) -> str | None:
    """Name the format of refused bytes from their magic number, for the error message only.

    Only Pillow's prefix tests run here (no decoder), and only on the error path.
    """
    if prefix[4:8] == b"ftyp" and prefix[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
        return "HEIF"
    Image.init()
    for fmt in Image.ID:
        _, accept = Image.OPEN[fmt]
        if accept is None:  # plugins without a magic number would claim anything
            continue
        try:
            if accept(prefix) is True:
                return fmt
        except Exception:  # noqa: BLE001 - a guess for a message must never mask the real error
            continue
    if prefix.isascii() and all(c >= 32 or c in b"\t\n\r" for c in prefix):
        return "text"
    return None


def _orientation(img: Image.Image, what: str) -> int:
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if 1 <= int(value) <= 8 else 1
    except (*_DECODE_ERRORS, RuntimeError) as exc:  # a broken EXIF block must not lose the photo
        logger.debug("%s: ignoring unreadable EXIF orientation (%s)", what, exc)
        return 1


def _apply_orientation(img: Image.Image, orientation: int) -> Image.Image:
    """Transpose pixels as the EXIF orientation says (ImageOps.exif_transpose's table).

    Done by hand rather than with ``ImageOps.exif_transpose``, which re-serialises the EXIF
    block (and can fail on a corrupt one). The result carries no metadata, so decoding it again
    cannot rotate it twice.
    """
    method = _TRANSPOSE.get(orientation)
    if method is None:
        return img
    out = img.transpose(method)
    out.info = {}
    return out


def _to_rgb(img: Image.Image, what: str) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; never modifies ``img`` (may return it)."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_wide_to_uint8(np.asarray(img))).convert("RGB")
    has_alpha = "A" in mode or "a" in mode or "transparency" in img.info
    try:
        if not has_alpha:
            return img.convert("RGB")
        rgba = img.convert("RGBA")
    except ValueError as exc:
        raise ImageDecodeError(f"{what}: unsupported image mode {mode!r} ({exc})") from exc
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, (0, 0), rgba)  # transparent areas show white, not black
    return background


def _wide_to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale 16-bit, 32-bit int or float pixels to uint8 by their range, without clipping.

    16-bit data (I;16*, and "I" images whose values fit in 0..65535, as Pillow gives for
    16-bit files) map 0..65535 onto 0..255 (rounded division by 257). Floats within [0, 1]
    are multiplied by 255. Anything else is stretched linearly from its min to its max.
    """
    if values.dtype.kind in "ui" and values.dtype.itemsize == 2:
        return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if values.dtype.kind == "f":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        if low >= 0.0 and high <= 1.0:
            return np.rint(values * 255.0).astype(np.uint8)
    else:
        low, high = int(values.min()), int(values.max())
        if low >= 0 and high <= 65535:
            return ((values.astype(np.int64) + 128) // 257).astype(np.uint8)
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float64) - low) * (255.0 / (high - low))
    return np.rint(scaled).astype(np.uint8)


def _pixel_digest(img: Image.Image) -> str:
    digest = hashlib.sha256(struct.pack("<II", *img.size))
    digest.update(img.tobytes())
    return digest.hexdigest()
