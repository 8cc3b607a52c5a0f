"""Plain-array persistence of :class:`~authvision.inspection.product.ProductInspection` (no pickle)."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from authvision.errors import IndexFormatError
from authvision.inspection.compare import TemplateView
from authvision.inspection.null import CHANNELS, NullStats
from authvision.inspection.parts import part_labels
from authvision.inspection.registration import Keypoints, RegistrationParams
from authvision.inspection.text import Word

if TYPE_CHECKING:
    from authvision.inspection.product import ProductInspection

logger = logging.getLogger(__name__)

# name -> (dtype, number of dimensions); shapes are cross-checked in from_arrays
_FIELDS: dict[str, tuple[str, int]] = {
    "image": ("uint8", 3),
    "mask": ("bool", 2),
    "item": ("uint8", 2),
    "search": ("uint8", 2),
    "points": ("float32", 2),
    "descriptors": ("uint8", 2),
    "pix_mu": ("float32", 2),
    "pix_sd": ("float32", 2),
    "cell_mu": ("float32", 2),
    "cell_sd": ("float32", 2),
    "cell_ok": ("bool", 2),
    "marks": ("bool", 2),
    "peak_mu": ("float32", 2),
    "peak_sd": ("float32", 2),
    "peak_ok": ("bool", 2),
    "q50": ("float32", 1),
    "q95": ("float32", 1),
    "links": ("float64", 3),
}
# authentication points, present only for a template that scores some
_POINT_FIELDS: dict[str, tuple[str, int]] = {
    "point_masks": ("bool", 3),
    "point_q50": ("float32", 1),
    "point_q95": ("float32", 1),
}


def to_arrays(data: ProductInspection) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays named ``t{i}.{field}`` and metadata (format, version, product, seed, params, templates)."""
    from authvision.inspection.product import FORMAT, FORMAT_VERSION

    arrays: dict[str, np.ndarray] = {}
    templates = []
    for i, t in enumerate(data.templates):
        n = t.null
        fields = {
            "image": t.view.image, "mask": t.view.mask, "item": t.item, "search": t.search,
            "points": t.keypoints.points, "descriptors": t.keypoints.descriptors,
            "pix_mu": n.pix_mu, "pix_sd": n.pix_sd, "cell_mu": n.cell_mu, "cell_sd": n.cell_sd,
            "cell_ok": n.cell_ok, "marks": n.marks, "peak_mu": n.peak_mu, "peak_sd": n.peak_sd, "peak_ok": n.peak_ok,
            "q50": n.q50, "q95": n.q95, "links": t.links,
        }  # fmt: skip
        for k, v in fields.items():
            arrays[f"t{i}.{k}"] = np.ascontiguousarray(v, dtype=_FIELDS[k][0])
        entry: dict[str, Any] = {"source": int(t.source), "scale": float(t.scale), "null_samples": int(n.samples)}
        if t.points:
            for k, v in {"point_masks": t.point_masks, "point_q50": n.point_q50, "point_q95": n.point_q95}.items():
                arrays[f"t{i}.{k}"] = np.ascontiguousarray(v, dtype=_POINT_FIELDS[k][0])
            entry["points"] = list(t.points)
        if t.words:
            entry["words"] = [[w.text, *(float(v) for v in w.box)] for w in t.words]
        templates.append(entry)
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "product": data.product,
        "seed": data.seed,
        "channels": list(CHANNELS),
        "params": asdict(data.params),
        "templates": templates,
    }
    return arrays, meta


def _get(arrays: dict[str, np.ndarray], key: str) -> np.ndarray:
    if key not in arrays:
        raise IndexFormatError(f"inspection data lacks array {key!r}")
    a = np.asarray(arrays[key])
    name = key.split(".", 1)[1]
    dtype, ndim = _FIELDS[name] if name in _FIELDS else _POINT_FIELDS[name]
    if a.dtype != np.dtype(dtype) or a.ndim != ndim:
        raise IndexFormatError(f"inspection array {key!r} is {a.dtype} with {a.ndim} dims, expected {dtype} with {ndim}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise IndexFormatError(f"inspection array {key!r} holds non-finite values")
    return a


def _params(raw: Any):
    from authvision.inspection.product import InspectionParams

    if not isinstance(raw, dict):
        raise IndexFormatError("inspection metadata 'params' is not an object")
    try:
        reg = RegistrationParams(**raw.get("registration", {}))
        return InspectionParams(**{**{k: v for k, v in raw.items() if k != "registration"}, "registration": reg})
    except TypeError as e:
        raise IndexFormatError(f"inspection metadata 'params' is malformed: {e}") from None


def _words(tm: dict, i: int) -> tuple[Word, ...]:
    """A template's words from its metadata (``[[text, x0, y0, x1, y1], ...]``)."""
    raw = tm.get("words", [])
    try:
        words = tuple(Word(str(w[0]), (float(w[1]), float(w[2]), float(w[3]), float(w[4]))) for w in raw)
    except (TypeError, ValueError, IndexError):
        raise IndexFormatError(f"inspection metadata of template {i}: 'words' is malformed") from None
    if not isinstance(raw, list) or any(not w.text or not all(math.isfinite(v) for v in w.box) for w in words):
        raise IndexFormatError(f"inspection metadata of template {i}: 'words' is malformed")
    return words


def _points(arrays: dict[str, np.ndarray], i: int, tm: dict, frame: tuple[int, int]) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """A template's authentication points (names and arrays; empty ones when it scores none)."""
    names = tm.get("points", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise IndexFormatError(f"inspection metadata of template {i}: 'points' is not a list of names")
    if not names:
        return (), {"point_masks": np.zeros((0, *frame), bool), "point_q50": np.zeros(0, np.float32), "point_q95": np.zeros(0, np.float32)}
    a = {k: _get(arrays, f"t{i}.{k}") for k in _POINT_FIELDS}
    if a["point_masks"].shape != (len(names), *frame) or a["point_q50"].shape != (len(names),) or a["point_q95"].shape != (len(names),):
        raise IndexFormatError(f"inspection template {i}: authentication point arrays do not match its {len(names)} points")
    return tuple(names), a


def from_arrays(arrays: dict[str, np.ndarray], meta: dict) -> ProductInspection:
    """Inverse of :func:`to_arrays`; raises IndexFormatError on anything missing or inconsistent."""
    from authvision.inspection.product import FORMAT, FORMAT_VERSION, ProductInspection, Template

    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise IndexFormatError("not authvision inspection data (format field)")
    if meta.get("version") != FORMAT_VERSION:
        raise IndexFormatError(f"inspection data version {meta.get('version')!r}, this authvision reads {FORMAT_VERSION}")
    if list(meta.get("channels", [])) != list(CHANNELS):
        raise IndexFormatError(f"inspection channels {meta.get('channels')!r}, expected {list(CHANNELS)}")
    tmeta = meta.get("templates")
    if not isinstance(tmeta, list) or not tmeta:
        raise IndexFormatError("inspection metadata lists no templates")
    params = _params(meta.get("params"))
    templates = []
    expected: set[str] = set()
    for i, tm in enumerate(tmeta):
        a = {k: _get(arrays, f"t{i}.{k}") for k in _FIELDS}
        h, w = a["mask"].shape
        for k in ("image", "item", "search", "pix_mu", "pix_sd"):
            if a[k].shape[:2] != (h, w):
                raise IndexFormatError(f"inspection array t{i}.{k} has shape {a[k].shape}, frame is {(h, w)}")
        grid = (h // params.cell, w // params.cell)
        for k in ("cell_mu", "cell_sd", "cell_ok", "marks", "peak_mu", "peak_sd", "peak_ok"):
            if a[k].shape != grid:
                raise IndexFormatError(f"inspection array t{i}.{k} has shape {a[k].shape}, cell grid is {grid}")
        if a["image"].shape[2] != 3 or a["points"].shape[1:] != (2,) or a["descriptors"].shape[1:] != (32,):
            raise IndexFormatError(f"inspection template {i} image or keypoint arrays have the wrong shape")
        if len(a["points"]) != len(a["descriptors"]):
            raise IndexFormatError(f"inspection template {i} has {len(a['points'])} points, {len(a['descriptors'])} descriptors")
        if a["q50"].shape != (len(CHANNELS) + 1,) or a["q95"].shape != (len(CHANNELS) + 1,):
            raise IndexFormatError(f"inspection template {i} null quantiles have the wrong length")
        if a["links"].shape != (len(tmeta), 3, 3):
            raise IndexFormatError(f"inspection template {i} links have shape {a['links'].shape}, expected {(len(tmeta), 3, 3)}")
        if np.any(a["pix_sd"] <= 0) or np.any(a["cell_sd"] <= 0) or np.any(a["peak_sd"] <= 0):
            raise IndexFormatError(f"inspection template {i} null spread is not positive")
        try:
            source, scale, samples = int(tm["source"]), float(tm["scale"]), int(tm["null_samples"])
        except (KeyError, TypeError, ValueError):
            raise IndexFormatError(f"inspection metadata of template {i} is malformed") from None
        names, point_arrays = _points(arrays, i, tm, (h, w))
        view = TemplateView.from_image(a["image"], a["mask"])
        null = NullStats(
            a["pix_mu"], a["pix_sd"], a["cell_mu"], a["cell_sd"], a["cell_ok"], a["marks"],
            a["peak_mu"], a["peak_sd"], a["peak_ok"], a["q50"], a["q95"], samples,
            point_arrays["point_q50"], point_arrays["point_q95"],
        )  # fmt: skip
        kps = Keypoints(a["points"], a["descriptors"])
        templates.append(Template(source, view, kps, a["item"], a["search"], null, scale, a["links"], part_labels(a["image"]),
                                  names, point_arrays["point_masks"], _words(tm, i)))  # fmt: skip
        expected |= {f"t{i}.{k}" for k in _FIELDS} | ({f"t{i}.{k}" for k in _POINT_FIELDS} if names else set())
    extra = set(arrays) - expected
    if extra:
        raise IndexFormatError(f"inspection data holds unexpected arrays {sorted(extra)[:3]}")
    return ProductInspection(str(meta.get("product", "")), int(meta.get("seed", 0)), params, tuple(templates))
