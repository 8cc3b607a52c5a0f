"""The written report of an evaluation: ``report.json``, ``report.md`` and the plots.

:func:`write_report` takes an :class:`~authvision.evaluation.EvaluationResult` (its ``summary`` from
:func:`~authvision.evaluation.evaluate_verdicts`); :mod:`authvision.evaluation` re-exports it. This
module imports :mod:`authvision.plots` and never :mod:`authvision.evaluation` (no import circle).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .verdict import VERDICT_LABELS

if TYPE_CHECKING:
    from .evaluation import EvaluationResult

__all__ = ["render_markdown", "write_report"]


def write_report(
    result: EvaluationResult,
    out_dir: str | Path,
    *,
    title: str = "authvision evaluation",
    notes: Sequence[str] = (),
    extra_sections: dict[str, Any] | None = None,
    evidence_examples: int = 8,
) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and the plots (ROC, reliability, histograms, evidence grid)."""
    from . import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = dict(result.summary)
    if extra_sections:
        summary.update(extra_sections)
    files = {
        "roc": plots.roc_curve_plot(result, out / "roc.png"),
        "reliability": plots.reliability_plot(result, out / "reliability.png"),
        "histogram": plots.score_histogram(result, out / "scores.png"),
        "evidence": plots.evidence_grid(result, out / "evidence.png", examples=evidence_examples),
    }
    files = {k: v for k, v in files.items() if v is not None}
    summary["plots"] = {k: v.name for k, v in files.items()}
    (out / "report.json").write_text(json.dumps(_jsonable(summary), indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(summary, title=title, notes=notes), encoding="utf-8")
    files["json"] = out / "report.json"
    files["markdown"] = out / "report.md"
    result.files = files
    return files


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows)
    return "\n".join(lines)


def render_markdown(summary: dict[str, Any], *, title: str, notes: Sequence[str] = ()) -> str:
    """The human-readable report: headline metrics, confusion matrix, breakdowns, plots."""
    d = summary["detection"]
    c = summary["catalogue"]
    parts = [f"# {title}", ""]
    checker = summary.get("checker")
    if checker:
        parts += [
            f"Model `{checker['model']}` ({checker['precision']}, sha256 `{checker['model_sha256'][:12]}…`), "
            f"{checker['references']} references in a `{checker['index']}` index, "
            f"{'calibrated' if checker['calibrated'] else '**not calibrated**'}; "
            f"decision threshold {checker['decision_threshold']}, unknown below similarity "
            f"{_fmt(checker['unknown_threshold'])}.",
            "",
        ]
    parts += list(notes) + ([""] if notes else [])
    counts = summary["counts"]
    parts += [
        f"Listings: {counts['genuine']} genuine, {counts['fake']} fake, {counts['unknown']} of products "
        f"without references; {counts['errors']} could not be read.",
        "",
        "## Headline",
        "",
        _table(
            ["metric", "value"],
            [
                ["fake ROC-AUC", d["roc_auc"]],
                [
                    f"fake ROC-AUC, fakes whose defects change ≥ 1 % of the item's pixels "
                    f"({d.get('visible_fakes', 0)} of {d.get('measured_fakes', 0)} measured fakes)",
                    d.get("roc_auc_visible"),
                ],
                ["fake PR-AUC (average precision)", d["pr_auc"]],
                ["recall of fakes at 99% precision", d["recall_at_99_precision"]],
                ["precision at 95% recall of fakes", d["precision_at_95_recall"]],
                ["expected calibration error", d["ece"]],
                ["Brier score", d["brier"]],
                ["fakes caught at the decision threshold", d["fake_recall_at_decision"]],
                ["genuine listings flagged fake", d["genuine_flagged_fake_at_decision"]],
                ["coverage (known listings with a score)", d["coverage"]],
                ["product top-1 (known listings)", c["product_top1"]],
                ["re-used listings: product top-1", c["reused_product_top1"]],
                ["re-used listings: duplicate found", c["reused_duplicate_found"]],
                ["unindexed products called unknown", c["unknown_rate_on_unindexed"]],
                ["known listings called unknown", c["known_called_unknown"]],
            ],
        ),
        "",
    ]
    throughput = summary.get("throughput")
    if throughput:
        parts += [
            f"Throughput: {throughput['listings']} listings in {throughput['seconds']} s = "
            f"**{_fmt(throughput['listings_per_s'], 1)} listings/s** ({throughput['path']}).",
            "",
        ]
    parts += ["## Confusion matrix (rows: truth, columns: verdict)", ""]
    confusion = summary["confusion"]
    parts.append(_table(["truth \\ verdict", *VERDICT_LABELS], [[t, *confusion[t].values()] for t in confusion]))
    parts.append("")
    titles = {
        "defect": "Per defect type (fakes with that defect vs all genuine listings)",
        "family": "Per defect family (factory type)",
        "factory_seen": "Fakes from factories seen among the references vs unseen",
        "visibility": "Per defect visibility (share of the item's pixels its defects change in the listing photo)",
        "product": "Per product",
        "condition": "Per listing condition",
    }
    for key, heading in titles.items():
        groups = summary["breakdown"].get(key) or {}
        if not groups:
            continue
        parts += [f"## {heading}", ""]
        with_genuine = key in ("product", "condition")
        header = ["group", "fake", "genuine", "ROC-AUC", "fakes caught"] + (["genuine flagged"] if with_genuine else [])
        rows = []
        for group, e in groups.items():
            row = [group, e["fake"], e["genuine"] if with_genuine else "all", e["roc_auc"], e["fake_recall_at_decision"]]
            if with_genuine:
                row.append(e.get("genuine_flagged_fake"))
            rows.append(row)
        parts += [_table(header, rows), ""]
    for key in summary:
        if key.startswith("section:"):
            section = summary[key]
            parts += [f"## {section['title']}", "", section["markdown"], ""]
    plots_ = summary.get("plots", {})
    if plots_:
        parts += ["## Plots", ""]
        captions = {
            "roc": "ROC curve for fakes",
            "reliability": "Reliability diagram",
            "histogram": "Scores by class",
            "evidence": "Evidence: listing, nearest genuine and nearest fake reference",
        }
        for key, name in plots_.items():
            parts += [f"![{captions.get(key, key)}]({name})", ""]
    parts += [f"_authvision {summary.get('authvision_version', __version__)}, {summary.get('created', '')}_", ""]
    return "\n".join(parts)
