"""Evaluation metrics against hand-computed cases, and a written report with its plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from authvision.calibration import expected_calibration_error  # noqa: E402
from authvision.datasets import LabelledPhoto  # noqa: E402
from authvision.evaluation import (  # noqa: E402
    EvaluationResult,
    detection_metrics,
    evaluate_verdicts,
    precision_at_recall,
    recall_at_precision,
    reliability_bins,
    write_report,
)
from authvision.verdict import Match, Verdict  # noqa: E402

Y = np.array([True, True, False, False])  # is fake
S = np.array([0.9, 0.4, 0.6, 0.1])  # fake score


def test_detection_metrics_by_hand():
    m = detection_metrics(Y, S)
    # pairs (fake, genuine) ranked right: (.9,.6) (.9,.1) (.4,.1) of 4
    assert m["roc_auc"] == pytest.approx(0.75)
    # ranked: fake(.9) P=1 R=.5, genuine(.6), fake(.4) P=2/3 R=1 → AP = .5·1 + .5·2/3
    assert m["pr_auc"] == pytest.approx(0.5 + 1 / 3)
    assert m["recall_at_99_precision"] == pytest.approx(0.5)
    assert m["precision_at_95_recall"] == pytest.approx(2 / 3)
    assert recall_at_precision(Y, S, 0.6) == pytest.approx(1.0)
    assert precision_at_recall(Y, S, 0.5) == pytest.approx(1.0)
    assert detection_metrics([True, True], [0.2, 0.3])["roc_auc"] is None


def test_calibration_error_and_bins_by_hand():
    p = np.array([0.9, 0.9, 0.1, 0.1])
    y = np.array([1.0, 0.0, 0.0, 0.0])
    # bin 0.9: predicted .9, observed .5 → .4 × 2; bin 0.1: .1 vs 0 → .1 × 2; over 4
    assert expected_calibration_error(p, y) == pytest.approx(0.25)
    bins = reliability_bins(p, y)
    assert [(b["count"], b["predicted"], b["observed"]) for b in bins] == [(2, 0.1, 0.0), (2, 0.9, 0.5)]
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0


def photo(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (96, 80), colour).save(path)
    return path


def match(ref_id: int, label: str, product: str, sim: float, source: Path | None = None) -> Match:
    return Match(ref_id, label, product, "acme", sim, None if source is None else str(source))


def make_case(tmp_path: Path) -> EvaluationResult:
    """6 genuine, 6 fake (3 'hue', 3 'font'), 2 unknown listings, with known verdicts."""
    ref_g, ref_f = photo(tmp_path / "g.jpg", (20, 120, 40)), photo(tmp_path / "f.jpg", (200, 40, 40))
    listings, verdicts = [], []
    genuine_scores = [0.9, 0.8, 0.7, 0.95, 0.6, 0.3]  # the last one is flagged fake
    fake_scores = [0.1, 0.2, 0.55, 0.05, 0.4, 0.35]  # 0.55 slips through
    for i, p in enumerate(genuine_scores):
        listings.append(LabelledPhoto(photo(tmp_path / f"l{i}.jpg", (30, 110, 50)), "genuine", "bag", "acme",
                                      {"conditions": "background=wood;jpeg=55" if i % 2 else "background=grass;banner"}))
        verdicts.append(Verdict(p, "genuine" if p >= 0.5 else "fake", "bag", "acme",
                                (match(1, "genuine", "bag", 0.9, ref_g), match(2, "fake", "bag", 0.8, ref_f)), calibrated=True))
    for i, p in enumerate(fake_scores):
        defect = "hue:0.4" if i < 3 else "font:0.6;spacing:0.3"
        listings.append(LabelledPhoto(photo(tmp_path / f"f{i}.jpg", (190, 50, 50)), "fake", "bag", "acme",
                                      {"defects": defect, "family": "colour" if i < 3 else "typography",
                                       "conditions": "background=wood;jpeg=40", "reused_from": "g.jpg" if i == 0 else ""}))
        duplicate = match(2, "fake", "bag", 0.99) if i == 0 else None
        verdicts.append(Verdict(p, "genuine" if p >= 0.5 else "fake", "bag" if i != 4 else "shoe", "acme",
                                (match(2, "fake", "bag", 0.85, ref_f),), duplicate_of=duplicate, calibrated=True))
    for i in range(2):
        listings.append(LabelledPhoto(photo(tmp_path / f"u{i}.jpg", (0, 0, 200)), "unknown", None, None))
        verdicts.append(Verdict(None, "unknown") if i == 0 else Verdict(0.7, "genuine", "bag", "acme"))
    return EvaluationResult(summary={}, listings=listings, verdicts=verdicts)


def test_evaluate_verdicts_counts_and_breakdowns(tmp_path):
    case = make_case(tmp_path)
    s = evaluate_verdicts(case.listings, case.verdicts)
    assert s["counts"] == {"genuine": 6, "fake": 6, "unknown": 2, "errors": 0}
    assert s["confusion"]["genuine"]["genuine"] == 5 and s["confusion"]["genuine"]["fake"] == 1
    assert s["confusion"]["fake"]["fake"] == 5 and s["confusion"]["fake"]["genuine"] == 1
    assert s["confusion"]["unknown"] == {"genuine": 1, "fake": 0, "unknown": 1, "error": 0}
    d = s["detection"]
    assert d["fake_recall_at_decision"] == pytest.approx(5 / 6)
    assert d["genuine_flagged_fake_at_decision"] == pytest.approx(1 / 6)
    # fake score = 1 - p: genuine .1 .2 .3 .05 .4 .7; fake .9 .8 .45 .95 .6 .65
    # pairs wrong: fake .45 < genuine .7 (1), .6 < .7, .65 < .7 → 3 of 36 wrong
    assert d["roc_auc"] == pytest.approx(33 / 36)
    assert d["coverage"] == 1.0
    c = s["catalogue"]
    assert c["product_top1"] == pytest.approx(11 / 12)
    assert c["unknown_rate_on_unindexed"] == 0.5
    assert c["reused_listings"] == 1 and c["reused_duplicate_found"] == 1.0
    defects = s["breakdown"]["defect"]
    assert set(defects) == {"hue", "font", "spacing"} and defects["hue"]["fake"] == 3
    assert defects["hue"]["fake_recall_at_decision"] == pytest.approx(2 / 3)
    assert defects["hue"]["roc_auc"] is None  # fewer than 5 fakes: no AUC for the group
    assert set(s["breakdown"]["condition"]) == {"background=wood", "background=grass", "jpeg", "banner"}
    assert s["breakdown"]["condition"]["jpeg"]["fake"] == 6 and s["breakdown"]["condition"]["jpeg"]["genuine"] == 3
    assert s["breakdown"]["product"]["bag"]["roc_auc"] == pytest.approx(33 / 36)


def test_write_report_files(tmp_path):
    case = make_case(tmp_path)
    case.summary = evaluate_verdicts(case.listings, case.verdicts)
    case.summary["checker"] = {
        "model": "m", "model_sha256": "0" * 64, "precision": "int8", "references": 2, "index": "Flat",
        "calibrated": True, "decision_threshold": 0.5, "unknown_threshold": 0.6, "calibration": None,
    }
    files = write_report(case, tmp_path / "report", title="Test report")
    for key in ("roc", "reliability", "histogram", "evidence", "json", "markdown"):
        assert files[key].is_file() and files[key].stat().st_size > 0, key
    for key in ("roc", "reliability", "histogram", "evidence"):
        with Image.open(files[key]) as image:
            assert image.format == "PNG" and min(image.size) > 100
    report = json.loads(files["json"].read_text())
    assert report["detection"]["roc_auc"] == pytest.approx(33 / 36, abs=1e-6)
    text = files["markdown"].read_text()
    assert text.startswith("# Test report") and "| fake ROC-AUC | 0.917 |" in text
    assert "![Evidence: listing, nearest genuine and nearest fake reference](evidence.png)" in text


def test_plots_do_not_import_evaluation():
    """evaluation → plots only: plots take what they need from the result's public methods."""
    import subprocess
    import sys

    code = "import sys, authvision.plots; assert 'authvision.evaluation' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    case = EvaluationResult(summary={}, listings=[], verdicts=[Verdict(0.8, "genuine"), Verdict(None, "unknown")])
    assert case.fake_scores() == pytest.approx([0.2, 0.5])


def test_breakdown_by_defect_visibility(tmp_path):
    """Fakes bucketed by the share of item pixels their defects change (listings.csv defect_pixels)."""
    listings, verdicts = [], []
    for i, p in enumerate([0.9, 0.8, 0.7, 0.6, 0.4, 0.3]):  # fake scores .1 .2 .3 .4 .6 .7
        listings.append(LabelledPhoto(tmp_path / f"g{i}.jpg", "genuine", "bag", "acme", {"defect_pixels": ""}))
        verdicts.append(Verdict(p, "genuine" if p >= 0.5 else "fake", "bag", "acme", calibrated=True))
    # invisible fakes rank among the genuine ones; visible ones above them all
    buckets = {0.0002: [0.95, 0.85, 0.65, 0.55, 0.35], 0.004: [0.5, 0.45, 0.35, 0.25, 0.15], 0.2: [0.2, 0.1, 0.05, 0.1, 0.2]}
    for share, scores in buckets.items():
        for j, p in enumerate(scores):
            listings.append(LabelledPhoto(tmp_path / f"f{share}-{j}.jpg", "fake", "bag", "acme",
                                          {"defect_pixels": f"{share:.6f}", "family": "colour"}))
            verdicts.append(Verdict(p, "genuine" if p >= 0.5 else "fake", "bag", "acme", calibrated=True))
    listings.append(LabelledPhoto(tmp_path / "old.jpg", "fake", "bag", "acme", {}))  # a kit without the column
    verdicts.append(Verdict(0.1, "fake", "bag", "acme", calibrated=True))
    s = evaluate_verdicts(listings, verdicts)
    visibility = s["breakdown"]["visibility"]
    assert list(visibility) == ["< 0.1 %", "0.1-1 %", "≥ 1 %"]
    assert [e["fake"] for e in visibility.values()] == [5, 5, 5]
    # < 0.1 %: fake scores .05 .15 .35 .45 .65 vs genuine .1 .2 .3 .4 .6 .7: pairs right 0+1+3+4+5 = 13 of 30
    assert visibility["< 0.1 %"]["roc_auc"] == pytest.approx(13 / 30)
    # 0.1-1 %: fake scores .5 .55 .65 .75 .85: right 4+4+5+6+6 = 25 of 30
    assert visibility["0.1-1 %"]["roc_auc"] == pytest.approx(25 / 30)
    assert visibility["≥ 1 %"]["roc_auc"] == 1.0 and visibility["≥ 1 %"]["fake_recall_at_decision"] == 1.0
    d = s["detection"]
    assert d["visible_fakes"] == 5 and d["measured_fakes"] == 15 and d["roc_auc_visible"] == 1.0

    case = EvaluationResult(summary=s, listings=listings, verdicts=verdicts)
    for item in listings:
        photo(item.path, (90, 90, 90))
    files = write_report(case, tmp_path / "report")
    report = json.loads(files["json"].read_text())
    assert report["breakdown"]["visibility"]["0.1-1 %"]["fake"] == 5
    text = files["markdown"].read_text()
    assert "| fake ROC-AUC, fakes whose defects change ≥ 1 % of the item's pixels (5 of 15 measured fakes) | 1.000 |" in text
    assert "## Per defect visibility" in text and "| ≥ 1 % | 5 | all | 1.000 | 1.000 |" in text
    # without any measured fake (an older kit), no visibility table and the headline says why
    old = evaluate_verdicts(listings[:6] + listings[-1:], verdicts[:6] + verdicts[-1:])
    assert old["breakdown"]["visibility"] == {} and old["detection"]["roc_auc_visible"] is None


def test_every_dash_in_the_report_has_a_footnote_and_plots_say_what_they_leave_out(tmp_path):
    import re

    from authvision.plots import _listing_caption

    case = make_case(tmp_path)
    case.verdicts[6] = Verdict(None, "unknown")  # a fake called unknown: no score, not in the histogram
    case.summary = evaluate_verdicts(case.listings, case.verdicts)
    case.summary["checker"] = {
        "model": "m", "model_sha256": "0" * 64, "precision": "int8", "references": 2, "index": "Flat",
        "calibrated": True, "decision_threshold": 0.5, "unknown_threshold": None, "calibration": None,
    }
    text = write_report(case, tmp_path / "report", title="Test report")["markdown"].read_text()
    dashes = re.findall(r"–(\[\^[\w-]+\])?", text)
    assert dashes and all(dashes), "a bare – without a footnote"
    for label in set(re.findall(r"–\[\^([\w-]+)\]", text)):
        assert re.search(rf"^\[\^{label}\]: \w", text, re.M), label
    assert "ROC-AUC needs at least 5 fake and 5 genuine listings" in text  # the hue/font groups are small
    assert "0 genuine and 1 fake listings called unknown or unreadable" in text

    mirrored = LabelledPhoto(tmp_path / "m.jpg", "genuine", "bag", "acme",
                             {"reused_from": "g.jpg", "conditions": "background=studio;reused;mirror;jpeg=70"})
    caption, right = _listing_caption(mirrored, Verdict(0.2, "fake", "bag", "acme"))
    assert not right and caption.startswith("✗ wrong") and "mirrored" in caption and "not a defect" in caption
    caption, right = _listing_caption(case.listings[7], case.verdicts[7])
    assert right and caption.startswith("✓ right: truth fake (colour)") and "re-used" not in caption
