"""Plots of an evaluation (matplotlib, headless): ROC, reliability diagram, score histograms, evidence grid.

Each function takes an :class:`~authvision.evaluation.EvaluationResult` and a PNG path, writes the
figure and returns the path (None when there is nothing to draw). Needs the ``[report]`` extra.

:mod:`authvision.evaluation` imports this module (to write a report), never the other way round:
what a plot needs from an evaluation comes through the result's public attributes and methods.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ImageDecodeError, MissingExtraError
from .imageio import load_image

if TYPE_CHECKING:
    from .evaluation import EvaluationResult

LOG = logging.getLogger(__name__)

_COLOURS = {"genuine": "#2a9d8f", "fake": "#e76f51", "unknown": "#8d99ae"}


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingExtraError(
            "plots need matplotlib, which is not installed: it comes with authvision's [report] extra",
            extra="report", module="matplotlib",
        ) from exc
    return plt


def _save(plt, fig, path: Path, *, layout: bool = True) -> Path:
    """Write ``fig`` to ``path`` and free it (pyplot keeps every open figure alive)."""
    if layout:
        fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _scored(result: EvaluationResult) -> tuple[np.ndarray, np.ndarray]:
    """(is_fake, fake score) over known-truth listings; unknown verdicts score 0.5."""
    known = np.array([item.label != "unknown" for item in result.listings], dtype=bool)
    if not known.any():
        return np.zeros(0, bool), np.zeros(0)
    is_fake = np.array([item.label == "fake" for item in result.listings], dtype=bool)
    return is_fake[known], result.fake_scores()[known]


def roc_curve_plot(result: EvaluationResult, path: Path) -> Path | None:
    y, s = _scored(result)
    if y.all() or not y.any():
        return None
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = result.fake_scores()
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4), dpi=110)
    fpr, tpr, _ = roc_curve(y, s)
    ax.plot(fpr, tpr, color=_COLOURS["fake"], lw=2, label=f"all fakes (AUC {roc_auc_score(y, s):.3f})")
    families = sorted({item.extra.get("family") or "" for item in result.listings if item.label == "fake"} - {""})
    genuine = [i for i, item in enumerate(result.listings) if item.label == "genuine"]
    for family in families:
        fakes = [i for i, item in enumerate(result.listings) if item.label == "fake" and item.extra.get("family") == family]
        rows = fakes + genuine
        yy = np.array([result.listings[i].label == "fake" for i in rows])
        ss = scores[rows]
        if yy.any() and not yy.all():
            f, t, _ = roc_curve(yy, ss)
            ax.plot(f, t, lw=1, alpha=0.8, label=f"{family} ({roc_auc_score(yy, ss):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="genuine listings flagged (FPR)", ylabel="fakes caught (TPR)", title="Fake detection ROC")
    ax.legend(fontsize=7, loc="lower right")
    return _save(plt, fig, path)


def reliability_plot(result: EvaluationResult, path: Path) -> Path | None:
    """Observed genuine share against predicted P(genuine) per bin, as points sized by the bin's
    listings (a bin of one listing is one small point, not a full bar), with the counts under it."""
    bins = result.summary["detection"].get("reliability") or []
    if not bins:
        return None
    plt = _pyplot()
    fig, (ax, counts) = plt.subplots(
        2, 1, figsize=(4.8, 5.4), dpi=110, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    total = sum(b["count"] for b in bins)
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect calibration")
    predicted, observed = [b["predicted"] for b in bins], [b["observed"] for b in bins]
    ax.plot(predicted, observed, "-", color=_COLOURS["genuine"], lw=1, alpha=0.6)
    sizes = [12 + 200 * b["count"] / total for b in bins]
    ax.scatter(predicted, observed, s=sizes, color=_COLOURS["genuine"], edgecolor="black", lw=0.5, zorder=3,
               label="bin: mean prediction vs observed\n(area ∝ listings in the bin)")
    for b in bins:
        ax.annotate(f"n={b['count']}", (b["predicted"], b["observed"]), xytext=(0, 7), textcoords="offset points",
                    ha="center", va="bottom", fontsize=6)
    ece = result.summary["detection"].get("ece")
    title = f"Reliability (ECE {ece:.3f}, {total} scored listings)" if ece is not None else "Reliability"
    ax.set(xlim=(0, 1), ylim=(-0.05, 1.12), ylabel="observed share genuine", title=title)
    ax.title.set_fontsize(9)
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    counts.bar(centres, [b["count"] for b in bins], width=0.09, color=_COLOURS["unknown"])
    for x, b in zip(centres, bins):
        counts.annotate(str(b["count"]), (x, b["count"]), ha="center", va="bottom", fontsize=6)
    counts.set(xlabel="predicted P(genuine)", ylabel="listings", ylim=(0, max(b["count"] for b in bins) * 1.3))
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _save(plt, fig, path, layout=False)


def score_histogram(result: EvaluationResult, path: Path) -> Path | None:
    """Authenticity of genuine and fake listings; those without a score (called ``unknown`` or
    unreadable) cannot be drawn, and the figure says how many of each class were left out."""
    values: dict[str, list[float]] = {"genuine": [], "fake": []}
    excluded = {"genuine": 0, "fake": 0}
    for item, verdict in zip(result.listings, result.verdicts):
        if item.label in values:
            if verdict.authenticity is None:
                excluded[item.label] += 1
            else:
                values[item.label].append(verdict.authenticity)
    if not any(values.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.8), dpi=110)
    edges = np.linspace(0, 1, 26)
    for label, scores in values.items():
        total = len(scores) + excluded[label]
        ax.hist(scores, bins=edges, alpha=0.6, color=_COLOURS[label],
                label=f"{label} listings: {len(scores)} of {total} scored")
    threshold = result.summary.get("checker", {}).get("decision_threshold")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1, label="decision threshold")
    ax.set(xlabel="authenticity = P(genuine)", ylabel="listings", title="Scores by true class")
    if any(excluded.values()):
        ax.text(0.5, -0.3, f"Not drawn: {excluded['genuine']} genuine and {excluded['fake']} fake listings without a score "
                "(called unknown or unreadable).", transform=ax.transAxes, ha="center", va="top", fontsize=7)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def _pick_examples(result: EvaluationResult, examples: int) -> list[int]:
    """A few listings of each outcome: fakes caught, fakes missed, genuine passed, genuine flagged."""
    buckets: dict[str, list[int]] = {"fake caught": [], "fake missed": [], "genuine flagged": [], "genuine passed": []}
    for i, (item, verdict) in enumerate(zip(result.listings, result.verdicts)):
        if item.label == "fake":
            buckets["fake caught" if verdict.label == "fake" else "fake missed"].append(i)
        elif item.label == "genuine":
            buckets["genuine flagged" if verdict.label == "fake" else "genuine passed"].append(i)
    chosen: list[int] = []
    while len(chosen) < examples and any(buckets.values()):
        for bucket in buckets.values():
            if bucket and len(chosen) < examples:
                chosen.append(bucket.pop(0))
    return chosen


def _thumbnail(source: object, side: int = 256) -> np.ndarray | None:
    try:
        image = load_image(source, min_side=side)  # type: ignore[arg-type]
    except (ImageDecodeError, TypeError):
        return None
    image.thumbnail((side, side))
    return np.asarray(image)


def _listing_caption(item, verdict) -> tuple[str, bool]:  # noqa: ANN001 - LabelledPhoto, Verdict
    """The listing panel's caption and whether the verdict is right (the verdict's label is the truth)."""
    right = verdict.label == item.label
    p = "–" if verdict.authenticity is None else f"{verdict.authenticity:.2f}"
    truth = item.label
    if item.label == "fake" and item.extra.get("family"):
        truth += f" ({item.extra['family']})"
    lines = [f"{'✓ right' if right else '✗ wrong'}: truth {truth}", f"verdict {verdict.label}, P(genuine) {p}"]
    if item.extra.get("reused_from"):
        conditions = (item.extra.get("conditions") or "").split(";")
        lines.append("re-used photo, mirrored (reversed text\nis the mirror, not a defect)" if "mirror" in conditions
                     else "re-used photo")
    return "\n".join(lines), right


def evidence_grid(result: EvaluationResult, path: Path, *, examples: int = 8) -> Path | None:
    """Rows of: listing photo, its nearest genuine and nearest fake reference, with similarities.
    The listing is framed and captioned green when its verdict is right, red when wrong; a re-used
    photo says so, and a mirrored one that its reversed lettering is no misspelling."""
    rows = _pick_examples(result, examples)
    if not rows:
        return None
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    columns = 3
    fig, axes = plt.subplots(len(rows), columns, figsize=(3 * columns, 2.9 * len(rows)), dpi=90, squeeze=False)
    for r, i in enumerate(rows):
        item, verdict = result.listings[i], result.verdicts[i]
        caption, right = _listing_caption(item, verdict)
        panels: list[tuple[object, str]] = [(item.path, caption)]
        for kind, match in (("genuine", verdict.nearest_genuine), ("fake", verdict.nearest_fake)):
            if match is None:
                panels.append((None, f"no {kind} reference\namong the neighbours"))
            else:
                sim = "?" if match.similarity is None else f"{match.similarity:.3f}"
                panels.append((match.source, f"nearest {kind} #{match.ref_id} ({match.product})\nsimilarity {sim}"))
        for c, (source, text) in enumerate(panels):
            ax = axes[r][c]
            ax.axis("off")
            pixels = _thumbnail(source) if source is not None else None
            if pixels is not None:
                ax.imshow(pixels)
            if c == 0:
                colour = _COLOURS["genuine"] if right else "#c1121f"
                ax.set_title(text, fontsize=7, color=colour, fontweight="bold")
                ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, lw=4, edgecolor=colour, clip_on=False))
            else:
                ax.set_title(text, fontsize=7)
    return _save(plt, fig, path)
