"""``authvision`` command line: a thin layer over the library (argument parsing, progress, JSON output)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ._version import __version__
from .errors import AuthvisionError
from .train_args import add_train_arguments

LOG = logging.getLogger("authvision.cli")

Handler = Callable[[argparse.Namespace], int]


def _progress(total: int, desc: str, args: argparse.Namespace) -> tqdm:
    """A progress bar on stderr, only on a terminal and unless --quiet."""
    return tqdm(total=total, desc=desc, unit="img", disable=args.quiet or not sys.stderr.isatty(), dynamic_ncols=True)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _load_embedder(args: argparse.Namespace):
    from .embedder import Embedder

    return Embedder.load(args.model, precision=args.precision, num_threads=args.threads)


def _load_checker(args: argparse.Namespace):
    from .checker import AuthenticityChecker

    return AuthenticityChecker.load(args.checker, num_threads=getattr(args, "threads", None))


# -- index -----------------------------------------------------------------------------------------


def cmd_index_build(args: argparse.Namespace) -> int:
    from .checker import AuthenticityChecker
    from .datasets import read_photo_set
    from .evidence import default_providers, inspection_providers
    from .index import ReferenceIndex

    photos = read_photo_set(args.refs)
    embedder = _load_embedder(args)
    index = ReferenceIndex(embedder.dim, factory=args.factory, model_sha256=embedder.model_sha256)
    providers = inspection_providers(min_similarity=args.inspect_min_similarity) if args.inspection else default_providers()
    checker = AuthenticityChecker(embedder, index, k=args.k, providers=providers)
    skipped = add_photos(checker, photos, args)
    checker.save(args.out)
    summary = {"checker": str(args.out), "references": len(checker.index), "skipped": skipped, **_label_counts(checker)}
    _print_json(summary)
    return 0


def add_photos(checker, photos, args: argparse.Namespace) -> list[str]:
    """Add labelled photos with a progress bar; returns the paths that could not be read."""
    from .datasets import add_labelled_photos

    with _progress(len(photos), "indexing", args) as bar:
        skipped = add_labelled_photos(checker, photos, progress=bar.update)
    for path in skipped:
        LOG.warning("skipped unreadable photo %s", path)
    return skipped


def _label_counts(checker) -> dict[str, Any]:
    info = checker.index.info()
    return {"labels": info["labels"], "products": info["products"], "brands": info["brands"]}


def cmd_index_add(args: argparse.Namespace) -> int:
    from .datasets import LabelledPhoto, list_images

    checker = _load_checker(args)
    photos = [LabelledPhoto(p, args.label, args.product, args.brand) for p in list_images(args.images)]
    skipped = add_photos(checker, photos, args)
    checker.save(args.checker)
    _print_json({"references": len(checker.index), "added": len(photos) - len(skipped), "skipped": skipped})
    return 0


def cmd_index_remove(args: argparse.Namespace) -> int:
    checker = _load_checker(args)
    checker.remove_references(args.ids)
    checker.save(args.checker)
    _print_json({"references": len(checker.index), "removed": args.ids})
    return 0


def cmd_index_info(args: argparse.Namespace) -> int:
    checker = _load_checker(args)
    report = checker.calibration_report
    _print_json(
        {
            "version": checker.version,
            "model": {"name": checker.embedder.manifest.name, "sha256": checker.embedder.model_sha256,
                      "precision": checker.embedder.precision, "dim": checker.embedder.dim},
            "index": checker.index.info(),
            "calibrated": checker.calibrated,
            "calibration": None if report is None else report.to_dict(),
        }
    )
    return 0


# -- check / calibrate -----------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from .datasets import list_images

    checker = _load_checker(args)
    paths = list_images(args.images)
    verdicts = checker.check_many(paths, brand=args.brand)
    for path, verdict in zip(paths, verdicts):
        sys.stdout.write(json.dumps({"path": str(path), **verdict.to_dict()}) + "\n")
    if args.explain is not None:
        _write_explanations(checker, paths, verdicts, args.explain)
    return 1 if any(v.label == "error" for v in verdicts) else 0


def _write_explanations(checker, paths, verdicts, out: Path) -> None:
    """One overlay PNG per inspected listing (``--explain OUTDIR``); the others are listed on stderr."""
    from .overlay import explain

    out.mkdir(parents=True, exist_ok=True)
    for n, (path, verdict) in enumerate(zip(paths, verdicts)):
        png = None if verdict.label == "error" else explain(checker, path, verdict, title=Path(path).name)
        if png is None:
            reason = (verdict.inspection or {}).get("reason") or verdict.error or "the checker does not inspect listings"
            sys.stderr.write(f"authvision: no overlay for {path}: {reason}\n")
            continue
        (out / f"{n:04d}-{Path(path).stem}.png").write_bytes(png)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .datasets import read_photo_csv

    checker = _load_checker(args)
    photos = read_photo_csv(args.listings)
    report = checker.calibrate([p.path for p in photos], [p.label for p in photos])
    checker.save(args.checker)
    _print_json(report.to_dict())
    return 0


# -- scan ------------------------------------------------------------------------------------------


def cmd_scan(args: argparse.Namespace) -> int:
    from .checker import AuthenticityChecker
    from .datasets import expand_inputs
    from .scanner import DEFAULT_BATCH_SIZE, Scanner, default_threads, scan_to_jsonl

    ort_threads, decode_workers = default_threads()  # measured best on 2 cores: 1 ORT thread + 2 decoders
    checker = AuthenticityChecker.load(args.checker, num_threads=args.threads or ort_threads)
    scanner = Scanner(
        checker,
        batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
        decode_workers=args.decode_workers or decode_workers,
        brand=args.brand,
    )
    bar = _ScanProgress(args)
    try:
        summary = scan_to_jsonl(
            scanner, expand_inputs(args.inputs), args.out, resume=args.resume, csv_path=args.csv, progress=bar
        )
    finally:
        bar.close()
    _print_json(summary.to_dict())
    return 0


class _ScanProgress:
    """Rows written / inputs, with rate and ETA, on stderr on a terminal; rows found by --resume start it."""

    def __init__(self, args: argparse.Namespace) -> None:
        from .datasets import expand_inputs

        self.enabled = not args.quiet and sys.stderr.isatty()
        self.total = sum(1 for _ in expand_inputs(args.inputs)) if self.enabled else None
        self.bar: tqdm | None = None

    def __call__(self, rows: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=self.total, initial=rows, desc="scanning", unit="listing", disable=not self.enabled,
                            dynamic_ncols=True, smoothing=0.05)
        else:
            self.bar.update(rows - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- demo / evaluate / brandkit ------------------------------------------------------------------


def _families(text: str | None) -> tuple[str, ...]:
    return tuple(f.strip() for f in (text or "").split(",") if f.strip())


def cmd_demo(args: argparse.Namespace) -> int:
    from .brandkit import KitConfig
    from .demo import run_demo

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            if not args.quiet:
                sys.stderr.write(f"authvision demo: {stage}\n")
            bar = bars[stage] = _progress(total, stage, args)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    config = KitConfig(listings=args.listings, heldout_families=_families(args.heldout_families))
    result = run_demo(args.out, seed=args.seed, config=config, model=args.model, workers=args.workers,
                      progress=progress, real_photos=not args.no_real_photos, inspection=not args.no_inspection)
    d, c = result.summary["detection"], result.summary["catalogue"]
    sys.stdout.write(
        f"authvision demo: {result.summary['listings_checked']} test listings checked in {result.seconds:.0f} s "
        f"(whole demo; scanning at {result.summary['listings_per_s']} listings/s)\n"
        f"  fake ROC-AUC {_num(d['roc_auc'])}, calibration error {_num(d['ece'])}, fakes caught {_num(d['fake_recall_at_decision'])}, "
        f"genuine flagged {_num(d['genuine_flagged_fake_at_decision'])}\n"
        f"  product top-1 {_num(c['product_top1'])}, re-used photos top-1 {_num(c['reused_product_top1'])}, "
        f"unindexed products called unknown {_num(c['unknown_rate_on_unindexed'])}\n"
        f"  checker: {result.checker_dir}\n"
        f"  report:  {result.report}\n"
    )
    return 0


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .datasets import read_photo_csv
    from .evaluation import evaluate, write_report

    checker = _load_checker(args)
    listings = read_photo_csv(args.listings)
    if args.split:
        listings = [item for item in listings if item.extra.get("split") == args.split]
    with _progress(len(listings), "evaluating", args) as bar:
        result = evaluate(checker, listings, progress=bar.update, brand_from_truth=args.brand_from_truth)
    files = write_report(result, args.out, title=args.title)
    d = result.summary["detection"]
    _print_json({"report": str(files["markdown"]), "roc_auc": d["roc_auc"], "ece": d["ece"],
                 "listings_per_s": result.summary["throughput"]["listings_per_s"]})
    return 0


def cmd_brandkit(args: argparse.Namespace) -> int:
    from .brandkit import KitConfig, generate_kit

    families = _families(args.heldout_families)
    summary = generate_kit(args.out, seed=args.seed, config=KitConfig(listings=args.listings, heldout_families=families),
                           workers=args.workers)
    _print_json({"kit": str(args.out), "references": str(summary.references_dir), "listings": str(summary.listings_csv)})
    return 0


# -- train / export ------------------------------------------------------------------------------


def _training():
    try:
        from authvision_train import pipeline
    except ImportError as exc:
        raise SystemExit(f"authvision: error: training needs the [train] extra (torch): pip install 'authvision[train]' ({exc})") from exc
    return pipeline


def cmd_train(args: argparse.Namespace) -> int:
    summary = _training().run_from_args(args)
    if summary is not None:  # None on a non-zero rank under torchrun
        _print_json(summary)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    pipeline = _training()
    manifest = pipeline.export_checkpoint(args.model, int8=args.int8)
    _print_json({"model": str(args.model), "files": {k: v.filename for k, v in manifest.files.items()},
                 "quantization_gate": manifest.quantization.get("gate")})
    return 0


# -- parser ----------------------------------------------------------------------------------------


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, help="model directory or .onnx file (default: the shipped model)")
    parser.add_argument("--precision", choices=["int8", "fp32"], default="int8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authvision", description="Tell genuine from counterfeit products in listing photos.")
    parser.add_argument("--version", action="version", version=f"authvision {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = commands.add_parser("index", help="build and maintain a checker's reference index")
    index_commands = index.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    build = index_commands.add_parser("build", help="index a brand folder or CSV of reference photos")
    build.add_argument("refs", type=Path, help="REFS/<brand>/<product>/<genuine|fake>/*.jpg, or a CSV path,label,product,brand")
    build.add_argument("--out", type=Path, required=True, help="checker directory to write")
    build.add_argument("--factory", default="auto", help="FAISS index type: auto (default), Flat, HNSW32,SQ8, IVF1024,SQ8 ...")
    build.add_argument("--k", type=int, default=10, help="neighbours per check")
    build.add_argument("--inspection", action=argparse.BooleanOptionalAction, default=True,
                       help="region inspection of listings matched to a product (default on; --no-inspection: the screen alone)")
    build.add_argument("--inspect-min-similarity", type=float, default=0.0,
                       help="inspect only listings whose best reference similarity reaches this")
    _model_options(build)
    build.set_defaults(func=cmd_index_build)

    add = index_commands.add_parser("add", help="add reference photos to a checker")
    add.add_argument("checker", type=Path)
    add.add_argument("images", nargs="+", type=Path, help="photos or folders")
    add.add_argument("--label", choices=["genuine", "fake"], required=True)
    add.add_argument("--product", required=True)
    add.add_argument("--brand", default=None)
    add.set_defaults(func=cmd_index_add)

    remove = index_commands.add_parser("remove", help="remove references by id")
    remove.add_argument("checker", type=Path)
    remove.add_argument("ids", nargs="+", type=int)
    remove.set_defaults(func=cmd_index_remove)

    info = index_commands.add_parser("info", help="describe a checker")
    info.add_argument("checker", type=Path)
    info.set_defaults(func=cmd_index_info)

    check = commands.add_parser("check", help="check listing photos; prints one JSON verdict per line")
    check.add_argument("images", nargs="+", type=Path, help="photos or folders")
    check.add_argument("--checker", type=Path, required=True)
    check.add_argument("--brand", default=None, help="only compare with this brand's references")
    check.add_argument("--explain", type=Path, default=None, metavar="OUTDIR",
                       help="write an overlay PNG per inspected listing: listing registered beside its genuine reference, heatmap, worst regions")
    check.set_defaults(func=cmd_check)

    calibrate = commands.add_parser("calibrate", help="fit a checker's calibration on held-out labelled listings")
    calibrate.add_argument("checker", type=Path)
    calibrate.add_argument("listings", type=Path, help="CSV with path,label (genuine, fake or unknown)")
    calibrate.set_defaults(func=cmd_calibrate)

    scan = commands.add_parser(
        "scan",
        help="scan listings into JSON lines, resumable after any crash (one row per input)",
        description="Scan listing photos into JSON lines: one row per input, error rows for unreadable ones. "
        "After a crash or kill, run the same command with --resume to finish it. Exits 0 when every input has "
        "its row (error rows included).",
    )
    scan.add_argument("inputs", nargs="+", type=Path, help="photos, folders (recursive), .txt lists (one path a line) or .csv lists (path[,id])")
    scan.add_argument("--checker", type=Path, required=True)
    scan.add_argument("--out", type=Path, required=True, help="JSON-lines output")
    scan.add_argument("--resume", action="store_true", help="finish the scan already in --out (same inputs)")
    scan.add_argument("--csv", type=Path, default=None, help="also write a CSV of the results when the scan completes")
    scan.add_argument("--brand", default=None, help="only compare with this brand's references")
    scan.add_argument("--batch-size", type=int, default=None, help="photos per model call (default 32)")
    scan.add_argument("--decode-workers", type=int, default=None, help="decoding threads (default: cores - ORT threads + 1)")
    scan.set_defaults(func=cmd_scan)

    demo = commands.add_parser("demo", help="offline end-to-end demo: brand kit -> checker -> scan -> report")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="folder for kit/, checker/ and report/")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--heldout-families", default="",
                      help="comma-separated defect families whose fakes appear only in test listings (leave-one-family-out)")
    demo.add_argument("--listings", type=int, default=400, help="listing photos in the generated kit")
    demo.add_argument("--workers", type=int, default=2, help="processes rendering the kit")
    demo.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped model)")
    demo.add_argument("--no-real-photos", action="store_true", help="skip the real-photo re-use evaluation")
    demo.add_argument("--no-inspection", action="store_true", help="the screen alone: no region inspection")
    demo.set_defaults(func=cmd_demo)

    evaluate = commands.add_parser("evaluate", help="evaluate a checker on labelled listings; writes a report")
    evaluate.add_argument("listings", type=Path, help="CSV path,label[,product,brand,defects,conditions,...]")
    evaluate.add_argument("--checker", type=Path, required=True)
    evaluate.add_argument("--out", type=Path, required=True, help="report folder")
    evaluate.add_argument("--split", default=None, help="only rows whose split column has this value (e.g. test)")
    evaluate.add_argument("--brand-from-truth", action="store_true", help="restrict each check to the listing's brand")
    evaluate.add_argument("--title", default="authvision evaluation")
    evaluate.set_defaults(func=cmd_evaluate)

    brandkit = commands.add_parser("brandkit", help="generate a simulated brand kit (references + listings)")
    brandkit.add_argument("out", type=Path)
    brandkit.add_argument("--seed", type=int, default=0)
    brandkit.add_argument("--listings", type=int, default=400)
    brandkit.add_argument("--workers", type=int, default=2)
    brandkit.add_argument("--heldout-families", default="", help="comma-separated defect families seen only in test listings")
    brandkit.set_defaults(func=cmd_brandkit)

    train = commands.add_parser("train", help="retrain on brand photos: model, calibrated checker, model card (needs [train])")
    add_train_arguments(train)
    train.set_defaults(func=cmd_train)

    export = commands.add_parser("export", help="export a trained model folder's best checkpoint to ONNX fp32 (+ int8)")
    export.add_argument("model", type=Path, help="a folder written by `authvision train`")
    export.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True, help="also write the gated int8 model")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (AuthvisionError, FileNotFoundError, FileExistsError, ValueError) as exc:
        sys.stderr.write(f"authvision: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("authvision: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
