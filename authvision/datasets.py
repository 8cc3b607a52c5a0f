"""Labelled photo sets on disk: the brand-supplied folder layout and CSV manifests.

Brands deliver reference photos as ``ROOT/<brand>/<product>/<genuine|fake>/*.jpg``; anything else can
be described by a CSV with a header naming at least ``path`` and ``label`` (optionally ``product``,
``brand``, and any other columns, which are kept). Relative paths in a CSV are relative to its folder.
Both readers check the structure and name the folder or line at fault; they do not decode images
(that happens, safely, where the photos are used).

:func:`add_labelled_photos` adds a photo set to a checker's references in chunks.
:func:`expand_inputs` turns the command line's listing arguments (folders, path lists, CSVs, single
photos) into ``(id, path)`` pairs for a scan.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import AuthvisionError, DatasetError

if TYPE_CHECKING:
    from .checker import AuthenticityChecker

__all__ = [
    "IMAGE_SUFFIXES",
    "LIST_SUFFIXES",
    "LabelledPhoto",
    "add_labelled_photos",
    "expand_inputs",
    "list_images",
    "read_brand_folder",
    "read_photo_csv",
    "read_photo_set",
    "summarise",
]

LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
"""Suffixes of a text file that lists one listing path per line (:func:`expand_inputs`)."""
REFERENCE_LABELS = ("genuine", "fake")
ADD_CHUNK = 64
"""Photos per :meth:`~authvision.checker.AuthenticityChecker.add_references` call in :func:`add_labelled_photos`."""


@dataclass(frozen=True)
class LabelledPhoto:
    """One photo file with what it shows; ``extra`` holds further CSV columns (e.g. ground-truth tags)."""

    path: Path
    label: str
    product: str | None = None
    brand: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)


def list_images(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Image files among ``paths``, folders searched recursively (sorted, so runs are repeatable)."""
    out: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(path)
    return out


def read_brand_folder(root: str | os.PathLike[str]) -> list[LabelledPhoto]:
    """Photos under ``root/<brand>/<product>/<genuine|fake>/``; a folder breaking the layout is an error."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    photos: list[LabelledPhoto] = []
    for brand_dir in _subfolders(root):
        for product_dir in _subfolders(brand_dir):
            for label_dir in _subfolders(product_dir):
                if label_dir.name not in REFERENCE_LABELS:
                    raise DatasetError(
                        f"{label_dir}: unknown label folder {label_dir.name!r}; the layout is "
                        "<brand>/<product>/<genuine|fake>/ photos"
                    )
                images = [p for p in sorted(label_dir.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
                photos.extend(LabelledPhoto(p, label_dir.name, product_dir.name, brand_dir.name) for p in images)
    if not photos:
        raise DatasetError(f"no photos found under {root} (expected <brand>/<product>/<genuine|fake>/*.jpg)")
    return photos


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_photo_csv(
    path: str | os.PathLike[str], *, labels: Sequence[str] = ("genuine", "fake", "unknown")
) -> list[LabelledPhoto]:
    """Rows of a CSV with columns ``path,label[,product,brand,...]``."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            missing = {"path", "label"} - set(fields)
            if missing:
                raise DatasetError(f"{path}: the header must name {sorted(missing)} (found {fields})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    photos = []
    for line, row in enumerate(rows, start=2):
        label = (row.get("label") or "").strip()
        if label not in labels:
            raise DatasetError(f"{path}:{line}: label {label!r} is not one of {', '.join(labels)}")
        file = Path((row.get("path") or "").strip())
        if not str(file) or str(file) == ".":
            raise DatasetError(f"{path}:{line}: empty path")
        extra = {k: v for k, v in row.items() if k not in ("path", "label", "product", "brand") and k is not None}
        photos.append(
            LabelledPhoto(
                path=file if file.is_absolute() else path.parent / file,
                label=label,
                product=(row.get("product") or "").strip() or None,
                brand=(row.get("brand") or "").strip() or None,
                extra=extra,
            )
        )
    if not photos:
        raise DatasetError(f"{path} lists no photos")
    return photos


def read_photo_set(source: str | os.PathLike[str], *, labels: Sequence[str] = REFERENCE_LABELS) -> list[LabelledPhoto]:
    """A brand folder or a CSV manifest, whichever ``source`` is."""
    source = Path(source)
    if source.is_dir():
        return read_brand_folder(source)
    if source.suffix.lower() == ".csv":
        return read_photo_csv(source, labels=labels)
    raise DatasetError(f"{source} is neither a folder (<brand>/<product>/<genuine|fake>/) nor a .csv manifest")


def summarise(photos: Sequence[LabelledPhoto]) -> dict[str, dict[str, int]]:
    """Photo counts per product and label (for run summaries and model cards)."""
    counts = Counter((p.product or "-", p.label) for p in photos)
    out: dict[str, dict[str, int]] = {}
    for (product, label), n in sorted(counts.items()):
        out.setdefault(product, {})[label] = n
    return out


def add_labelled_photos(
    checker: AuthenticityChecker,
    photos: Sequence[LabelledPhoto],
    *,
    chunk: int = ADD_CHUNK,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Add ``photos`` to ``checker``'s references, ``chunk`` at a time (one chunk's decoded photos
    in memory at once), each with its label, product and brand; unreadable photos are skipped.

    ``progress`` is called with the number of photos of each chunk once it is added. Returns the
    paths of the photos that were skipped.
    """
    skipped: list[str] = []
    for start in range(0, len(photos), chunk):
        batch = photos[start : start + chunk]
        ids = checker.add_references(
            [p.path for p in batch],
            [p.label for p in batch],  # type: ignore[misc]  # checked by add_references
            product=[p.product for p in batch],
            brand=[p.brand for p in batch],
            on_error="skip",
        )
        skipped.extend(str(p.path) for p, ref_id in zip(batch, ids) if ref_id is None)
        if progress is not None:
            progress(len(batch))
    return skipped


# -- scan inputs from the command line ---------------------------------------------------------------


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[str, str]]:
    """``(id, path)`` for every listing named by ``paths``, lazily, in a repeatable order.

    A folder gives its image files, recursively and sorted (:func:`~authvision.datasets.list_images`);
    a ``.txt``/``.lst``/``.list`` file one path per line (blank lines and ``#`` comments skipped);
    a ``.csv`` file one row per listing with a ``path`` column and an optional ``id`` column. Paths
    in a list are relative to the list's folder; an id defaults to the path as written. Anything else
    is one listing photo, its path its id.
    """
    for entry in paths:
        path = Path(entry)
        suffix = path.suffix.lower()
        if path.is_dir():
            for image in list_images([path]):
                yield str(image), str(image)
        elif suffix in LIST_SUFFIXES:
            yield from _text_list(path)
        elif suffix == ".csv":
            yield from _csv_list(path)
        else:
            yield str(path), str(path)


def _resolve(listed: str, base: Path) -> str:
    path = Path(listed)
    return str(path if path.is_absolute() else base / path)


def _text_list(path: Path) -> Iterator[tuple[str, str]]:
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                listed = line.strip()
                if listed and not listed.startswith("#"):
                    yield listed, _resolve(listed, path.parent)
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthvisionError(f"cannot read the input list {path}: {exc}") from exc


def _csv_list(path: Path) -> Iterator[tuple[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if "path" not in (reader.fieldnames or []):
                raise AuthvisionError(f"{path}: an input CSV needs a 'path' column (found {reader.fieldnames})")
            for line, row in enumerate(reader, start=2):
                listed = (row.get("path") or "").strip()
                if not listed:
                    raise AuthvisionError(f"{path}:{line}: empty path")
                yield (row.get("id") or "").strip() or listed, _resolve(listed, path.parent)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AuthvisionError(f"cannot read the input list {path}: {exc}") from exc
