"""The genuine null: statistics of the comparison over genuine references under listing conditions.

Per template: per-pixel and per-cell mean and spread of the structure difference, and the
distribution (median, 95th percentile) of each channel's raw value. The channel distribution is
measured out of sample: each null sample is scored against statistics that leave out every sample
made from the same reference photo, so that a new genuine listing lands where the null says.
Standardised score: (raw - median) / (p95 - median): 0 = typical genuine, 1 = the null's 95th percentile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from authvision.inspection.compare import Measurement, cell_means
from authvision.inspection.points import point_raw

logger = logging.getLogger(__name__)

CHANNELS: tuple[str, ...] = ("structure", "spots", "cells", "peaks", "marks", "colour")
"""Channel names, in the order of the null's quantile arrays."""
FUSED_FROM: tuple[str, ...] = ("structure", "cells", "colour")
"""Channels whose maximum (standardised) is the fused score."""
PIXEL_SD_FLOOR = 0.05
SPOT_SIGMA = 3.0
"""Scale (px) of the "spots" channel: the largest blob of pixel z about a letter or a rivet wide."""
MIN_CELL_SAMPLES = 5


@dataclass(frozen=True)
class NullStats:
    """Genuine-null statistics of one template (arrays in the template frame / cell grid)."""

    pix_mu: np.ndarray
    pix_sd: np.ndarray
    cell_mu: np.ndarray
    cell_sd: np.ndarray
    cell_ok: np.ndarray
    marks: np.ndarray
    peak_mu: np.ndarray
    peak_sd: np.ndarray
    peak_ok: np.ndarray
    q50: np.ndarray
    q95: np.ndarray
    samples: int
    point_q50: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    """Per authentication point of the template (:mod:`authvision.inspection.points`), the median and
    95th percentile of its raw score over the null, out of sample."""
    point_q95: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


def _moments(sums: np.ndarray, sq: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = sums / n
        var = np.maximum(sq / n - mu**2, 0.0)
    return mu, np.sqrt(var)


def _pixel_stats(sums, sq, n, smooth: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = _moments(sums, sq, n)
    ok = n >= 2
    sd = np.where(ok, np.maximum(sd, PIXEL_SD_FLOOR), 1.0).astype(np.float32)
    if smooth > 0:  # a few dozen samples per pixel: never trust a spread below its neighbourhood's
        sd = np.maximum(sd, np.sqrt(cv2.GaussianBlur(sd**2, (0, 0), smooth)))
    return np.where(ok, mu, 1.0).astype(np.float32), sd


def _cell_stats(sums, sq, n) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu, sd = _moments(sums, sq, n)
    ok = n >= MIN_CELL_SAMPLES
    floor = 0.5 * float(np.nanmedian(sd[ok])) if ok.any() else 0.05
    return np.where(ok, mu, 0.0).astype(np.float32), np.where(ok, np.maximum(sd, floor), 1.0).astype(np.float32), ok


def pixel_z(meas: Measurement, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Per-pixel z of the structure difference (0 outside the compared mask), float32."""
    return np.where(meas.mask, (meas.diff - mu) / sd, 0.0).astype(np.float32)


def cell_z(meas: Measurement, mu: np.ndarray, sd: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per-cell z (NaN where the cell was not compared or has too few null samples)."""
    return np.where(ok & np.isfinite(meas.cells), (meas.cells - mu) / sd, np.nan).astype(np.float32)


def cell_peaks(z: np.ndarray, meas: Measurement, cell: int) -> np.ndarray:
    """Largest pixel z in each cell (NaN where the cell was not compared)."""
    nh, nw = meas.cells.shape
    zz = np.where(meas.mask, z, -np.inf)[: nh * cell, : nw * cell].reshape(nh, cell, nw, cell).max((1, 3))
    return np.where(np.isfinite(meas.cells), zz, np.nan).astype(np.float32)


def raw_channels(meas: Measurement, n: NullStats, cell: int) -> dict[str, float]:
    """Raw channel values of one measurement against null statistics."""
    z = pixel_z(meas, n.pix_mu, n.pix_sd)
    zc = cell_z(meas, n.cell_mu, n.cell_sd, n.cell_ok)
    fin = np.isfinite(zc)
    mk = fin & n.marks
    pk = cell_peaks(z, meas, cell)
    pz = np.where(n.peak_ok & np.isfinite(pk), (pk - n.peak_mu) / n.peak_sd, np.nan)
    pf = np.isfinite(pz)
    spots = cv2.GaussianBlur(z, (0, 0), SPOT_SIGMA)
    return {
        "structure": float(np.percentile(z[meas.mask], 99.7)) if meas.mask.any() else 0.0,
        "spots": float(spots[meas.mask].max()) if meas.mask.any() else 0.0,
        "cells": float(zc[fin].max()) if fin.any() else 0.0,
        "peaks": float(pz[pf].max()) if pf.any() else 0.0,
        "marks": float(zc[mk].max()) if mk.any() else 0.0,
        "colour": float(meas.hue_angle),
    }


def standardise(raw: dict[str, float], null: NullStats) -> dict[str, float]:
    """Channel scores on the null's scale, plus ``fused`` (its own null-standardised maximum)."""
    out = {}
    for i, c in enumerate(CHANNELS):
        out[c] = float((raw[c] - null.q50[i]) / max(float(null.q95[i] - null.q50[i]), 1e-6))
    f = max(out[c] for c in FUSED_FROM)
    j = len(CHANNELS)
    out["fused"] = float((f - null.q50[j]) / max(float(null.q95[j] - null.q50[j]), 1e-6))
    return out


def mark_cells(norm: np.ndarray, mask: np.ndarray, cell: int, cell_sd: np.ndarray, cell_ok: np.ndarray) -> np.ndarray:
    """Mark regions: cells rich in structure on the template and stable across the genuine null.

    A cell is a mark cell when its template structure energy (mean |LCN|) is in the top third of the
    item's cells and its null spread is below the item's median.
    """
    energy = cell_means(np.abs(norm), mask, cell)
    ok = cell_ok & np.isfinite(energy)
    if ok.sum() < 3:
        return ok
    return ok & (energy >= np.percentile(energy[ok], 66)) & (cell_sd <= np.median(cell_sd[ok]))


def fit_null(
    measurements: list[Measurement],
    groups: list[int],
    norm: np.ndarray,
    mask: np.ndarray,
    cell: int,
    smooth: float = 0.0,
    points: np.ndarray | None = None,
) -> NullStats:
    """Fits a template's null from measurements of degraded genuine references.

    Args:
        measurements: one per null sample (a degraded genuine reference registered to the template).
        groups: the source reference of each sample (samples of one reference are left out together).
        norm: the template's LCN map (mark regions).
        mask: the template's inspection mask (mark regions).
        cell: cell side in pixels.
        smooth: the per-pixel spread is raised to its Gaussian-smoothed (``smooth`` px) value where lower.
        points: (P, H, W) masks of the template's authentication points; their null quantiles are
            NaN where fewer than :data:`MIN_CELL_SAMPLES` null samples cover the point.
    """
    d = np.stack([np.where(m.mask, m.diff, 0.0) for m in measurements]).astype(np.float64)
    v = np.stack([m.mask for m in measurements]).astype(np.float64)
    c = np.stack([m.cells for m in measurements]).astype(np.float64)
    cv = np.isfinite(c).astype(np.float64)
    c = np.nan_to_num(c)
    g = np.asarray(groups)
    tot = (d.sum(0), (d**2).sum(0), v.sum(0), c.sum(0), (c**2).sum(0), cv.sum(0))
    full_pix = _pixel_stats(*tot[:3], smooth=smooth)
    full_cell = _cell_stats(*tot[3:])
    marks = mark_cells(norm, mask, cell, full_cell[1], full_cell[2])
    loo = {}
    peaks = []
    for grp in np.unique(g):
        sel = g == grp
        part = (d[sel].sum(0), (d[sel] ** 2).sum(0), v[sel].sum(0), c[sel].sum(0), (c[sel] ** 2).sum(0), cv[sel].sum(0))
        rest = [a - b for a, b in zip(tot, part)]
        loo[grp] = (_pixel_stats(rest[0], rest[1], rest[2], smooth=smooth), _cell_stats(*rest[3:]))
    point_masks = np.zeros((0, *mask.shape), bool) if points is None else points
    point_raws = np.full((len(measurements), len(point_masks)), np.nan)
    for i, m in enumerate(measurements):
        pm, ps = loo[g[i]][0]
        z = pixel_z(m, pm, ps)
        peaks.append(cell_peaks(z, m, cell))
        for k, pmask in enumerate(point_masks):
            point_raws[i, k] = point_raw(z, pmask, m.mask)
    pk = np.stack(peaks).astype(np.float64)
    pv = np.isfinite(pk).astype(np.float64)
    pk = np.nan_to_num(pk)
    ptot = (pk.sum(0), (pk**2).sum(0), pv.sum(0))
    full_peak = _cell_stats(*ptot)
    rows = []
    for i, m in enumerate(measurements):
        sel = g == g[i]
        (pm, ps), (cm, cs, ok) = loo[g[i]]
        pmu, psd, pok = _cell_stats(*(a - b for a, b in zip(ptot, (pk[sel].sum(0), (pk[sel] ** 2).sum(0), pv[sel].sum(0)))))
        dummy = np.zeros(len(CHANNELS) + 1, np.float32)
        rows.append(raw_channels(m, NullStats(pm, ps, cm, cs, ok, marks, pmu, psd, pok, dummy, dummy, 0), cell))
    raw = np.array([[r[ch] for ch in CHANNELS] for r in rows], np.float64)
    q50, q95 = np.percentile(raw, 50, axis=0), np.percentile(raw, 95, axis=0)
    std = (raw - q50) / np.maximum(q95 - q50, 1e-6)
    fused = std[:, [CHANNELS.index(ch) for ch in FUSED_FROM]].max(1)
    q50 = np.append(q50, np.percentile(fused, 50)).astype(np.float32)
    q95 = np.append(q95, np.percentile(fused, 95)).astype(np.float32)
    enough = np.isfinite(point_raws).sum(0) >= MIN_CELL_SAMPLES
    with np.errstate(all="ignore"):  # a point no null sample covers: all-NaN column
        pq50 = np.where(enough, np.nanpercentile(np.where(enough, point_raws, 0.0), 50, axis=0), np.nan).astype(np.float32)
        pq95 = np.where(enough, np.nanpercentile(np.where(enough, point_raws, 0.0), 95, axis=0), np.nan).astype(np.float32)
    return NullStats(*full_pix, *full_cell, marks, *full_peak, q50, q95, len(measurements), pq50, pq95)
