"""The written report of an evaluation: ``report.json``, ``report.md`` and the plots.

:func:`write_report` takes an :class:`~authvision.evaluation.EvaluationResult` (its ``summary`` from
:func:`~authvision.evaluation.evaluate_verdicts`); :mod:`authvision.evaluation` re-exports it. This
module imports :mod:`authvision.plots` and never :mod:`authvision.evaluation` (no import circle).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    drawn = {
        "roc": plots.roc_curve_plot(result, out / "roc.png"),
        "reliability": plots.reliability_plot(result, out / "reliability.png"),
        "histogram": plots.score_histogram(result, out / "scores.png"),
        "evidence": plots.evidence_grid(result, out / "evidence.png", examples=evidence_examples),
    }
    files = {k: v for k, v in drawn.items() if v is not None}
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


@dataclass(frozen=True)
class _Missing:
    """A table cell without a value: rendered "–" with a footnote saying why."""

    label: str
    why: str


class _Footnotes:
    """The footnotes of one report, numbered in the order of first use (Markdown ``[^label]``)."""

    def __init__(self) -> None:
        self.used: dict[str, str] = {}

    def dash(self, missing: _Missing) -> str:
        self.used.setdefault(missing.label, missing.why)
        return f"–[^{missing.label}]"

    def render(self) -> list[str]:
        if not self.used:
            return []
        return ["---", "", *(f"[^{label}]: {why}" for label, why in self.used.items()), ""]


def _or(value: Any, label: str, why: str) -> Any:
    """``value``, or a footnoted "–" saying ``why`` when it is None."""
    return _Missing(label, why) if value is None else value


_NOT_APPLICABLE = _Missing("na", "not measured for this row.")


def _fmt(value: Any, notes: _Footnotes, digits: int = 3) -> str:
    if value is None:
        value = _NOT_APPLICABLE
    if isinstance(value, _Missing):
        return notes.dash(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], notes: _Footnotes) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(_fmt(v, notes) for v in row) + " |" for row in rows)
    return "\n".join(lines)


def _headline(summary: dict[str, Any], min_group: int) -> list[list[Any]]:
    d, c = summary["detection"], summary["catalogue"]
    one_class = ("one-class", "needs both genuine and fake listings among those of indexed products; "
                 "this evaluation has only one of the two.")
    no_score = ("no-score", "no listing of an indexed product got a score (all were called unknown or unreadable).")
    if not d.get("measured_fakes"):
        visible_why = ("no-visibility", "the listings record no defect visibility: no `defect_pixels` column "
                       "(photos not from the brand kit, or a kit made before the column existed).")
    else:
        visible_why = ("few-visible", f"fewer than {min_group} such fakes, or fewer than {min_group} genuine "
                       "listings, to rank.")
    no_reused = ("no-reused", "no re-used listing (an edited copy of a reference photo) of an indexed product.")
    no_known = ("no-known", "no listing of an indexed product.")
    return [
        ["fake ROC-AUC", _or(d["roc_auc"], *one_class)],
        [
            f"fake ROC-AUC, fakes whose defects change ≥ 1 % of the item's pixels "
            f"({d.get('visible_fakes', 0)} of {d.get('measured_fakes', 0)} measured fakes)",
            _or(d.get("roc_auc_visible"), *visible_why),
        ],
        ["fake PR-AUC (average precision)", _or(d["pr_auc"], *one_class)],
        ["recall of fakes at 99% precision", _or(d["recall_at_99_precision"], *one_class)],
        ["precision at 95% recall of fakes", _or(d["precision_at_95_recall"], *one_class)],
        ["expected calibration error", _or(d["ece"], *no_score)],
        ["Brier score", _or(d["brier"], *no_score)],
        ["fakes caught at the decision threshold", _or(d["fake_recall_at_decision"], "no-fakes", "no fake listing.")],
        ["genuine listings flagged fake",
         _or(d["genuine_flagged_fake_at_decision"], "no-genuine", "no genuine listing.")],
        ["coverage (known listings with a score)", d["coverage"]],
        ["product top-1 (known listings)", _or(c["product_top1"], *no_known)],
        ["re-used listings: product top-1", _or(c["reused_product_top1"], *no_reused)],
        ["re-used listings: duplicate found", _or(c["reused_duplicate_found"], *no_reused)],
        ["unindexed products called unknown",
         _or(c["unknown_rate_on_unindexed"], "no-unindexed", "no listing of a product without references.")],
        ["known listings called unknown", _or(c["known_called_unknown"], *no_known)],
    ]


def _excluded_from_histogram(summary: dict[str, Any]) -> str:
    confusion = summary.get("confusion", {})
    left = {t: confusion.get(t, {}).get("unknown", 0) + confusion.get(t, {}).get("error", 0) for t in ("genuine", "fake")}
    if not any(left.values()):
        return ""
    return (f"The score histogram draws scored listings only: {left['genuine']} genuine and {left['fake']} fake "
            "listings called unknown or unreadable have no score and are not in it (they are in the counts above).")


def render_markdown(summary: dict[str, Any], *, title: str, notes: Sequence[str] = ()) -> str:
    """The human-readable report: headline metrics, confusion matrix, breakdowns, plots. Every "–"
    carries a footnote saying why there is no value."""
    footnotes = _Footnotes()
    min_group = int(summary.get("breakdown_min_group", 5))
    parts = [f"# {title}", ""]
    checker = summary.get("checker")
    if checker:
        threshold = _or(checker["unknown_threshold"], "no-unknown-threshold",
                        "the checker holds no finite unknown threshold, so no listing is called unknown for "
                        "being far from every reference.")
        parts += [
            f"Model `{checker['model']}` ({checker['precision']}, sha256 `{checker['model_sha256'][:12]}…`), "
            f"{checker['references']} references in a `{checker['index']}` index, "
            f"{'calibrated' if checker['calibrated'] else '**not calibrated**'}; "
            f"decision threshold {checker['decision_threshold']}, unknown below similarity "
            f"{_fmt(threshold, footnotes)}.",
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
        _table(["metric", "value"], _headline(summary, min_group), footnotes),
        "",
    ]
    throughput = summary.get("throughput")
    if throughput:
        speed = _or(throughput["listings_per_s"], "no-time", "the run was too short to time.")
        parts += [
            f"Throughput: {throughput['listings']} listings in {throughput['seconds']} s = "
            f"**{_fmt(speed, footnotes, 1)} listings/s** ({throughput['path']}).",
            "",
        ]
    parts += ["## Confusion matrix (rows: truth, columns: verdict)", ""]
    confusion = summary["confusion"]
    parts.append(_table(["truth \\ verdict", *VERDICT_LABELS], [[t, *confusion[t].values()] for t in confusion], footnotes))
    parts.append("")
    titles = {
        "defect": "Per defect type (fakes with that defect vs all genuine listings)",
        "family": "Per defect family (factory type)",
        "factory_seen": "Fakes from factories seen among the references vs unseen",
        "visibility": "Per defect visibility (share of the item's pixels its defects change in the listing photo, "
        "fakes vs all genuine listings)",
        "product": "Per product",
        "condition": "Per listing condition",
    }
    small = ("small-group", f"ROC-AUC needs at least {min_group} fake and {min_group} genuine listings in the group.")
    for key, heading in titles.items():
        groups = summary["breakdown"].get(key) or {}
        if not groups:
            continue
        parts += [f"## {heading}", ""]
        with_genuine = key in ("product", "condition")
        header = ["group", "fake", "genuine", "ROC-AUC", "fakes caught"] + (["genuine flagged"] if with_genuine else [])
        rows = []
        for group, e in groups.items():
            row = [
                group,
                e["fake"],
                e["genuine"] if with_genuine else "all",
                _or(e["roc_auc"], *small),
                _or(e["fake_recall_at_decision"], "no-fakes-group", "no fake listing in the group."),
            ]
            if with_genuine:
                row.append(_or(e.get("genuine_flagged_fake"), "no-genuine-group", "no genuine listing in the group."))
            rows.append(row)
        parts += [_table(header, rows, footnotes), ""]
    for key in summary:
        if key.startswith("section:"):
            section = summary[key]
            parts += [f"## {section['title']}", "", section["markdown"], ""]
            for label, why in (section.get("footnotes") or {}).items():  # a section's own "–[^label]" cells
                footnotes.used.setdefault(label, why)
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
            if key == "histogram" and (excluded := _excluded_from_histogram(summary)):
                parts += [excluded, ""]
            if key == "evidence":
                parts += ["Listings framed green got the right verdict, red the wrong one; a re-used photo says so, "
                          "and a mirrored copy that its reversed lettering is the mirror, not a defect.", ""]
    parts += [f"_authvision {summary.get('authvision_version', __version__)}, {summary.get('created', '')}_", ""]
    parts += footnotes.render()
    return "\n".join(parts)
