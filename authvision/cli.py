"""``authvision`` command line: a thin layer over the library (argument parsing, checks before work
starts, progress, JSON or text output). Exit codes: :data:`authvision.cli_support.EXIT_CODES`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .cli_support import (
    EXIT_FAILED_INPUTS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    cli_logging,
    install_hint,
    refuse_existing,
    require_brand,
    require_checker,
    require_extra,
    require_file,
    require_paths,
    require_photos_in_folders,
    say,
    verdict_line,
    warn_uncalibrated,
)
from .errors import AuthvisionError, InspectionError, MissingExtraError, OutputExistsError, StorageFullError

LOG = logging.getLogger("authvision.cli")

Handler = Callable[[argparse.Namespace], int]


def _progress(total: int, desc: str, args: argparse.Namespace) -> tqdm:
    """A progress bar on stderr, only on a terminal and unless --quiet."""
    return tqdm(total=total, desc=desc, unit="img", disable=args.quiet or not sys.stderr.isatty(), dynamic_ncols=True)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _load_embedder(args: argparse.Namespace):
    from .embedder import Embedder

    if args.model is not None:
        require_paths([args.model], "--model")
    return Embedder.load(args.model, precision=args.precision, num_threads=args.threads)


def _load_checker(args: argparse.Namespace, *, threads: int | None = None, discard_calibration: bool = False):
    from .checker import AuthenticityChecker

    require_checker(args.checker)
    try:
        return AuthenticityChecker.load(args.checker, num_threads=threads or getattr(args, "threads", None),
                                        discard_calibration=discard_calibration)
    except FileNotFoundError as exc:
        if Path(args.checker).exists():
            raise
        raise AuthvisionError(f"no checker at {args.checker}: build one with `authvision index build REFS --out {args.checker}`") from exc


# -- index -----------------------------------------------------------------------------------------


def cmd_index_build(args: argparse.Namespace) -> int:
    from .checker import AuthenticityChecker
    from .datasets import read_photo_set
    from .evidence import default_providers, inspection_providers
    from .index import ReferenceIndex

    require_paths([args.refs], "references")
    add = f"`authvision index add {args.out} PHOTOS --label genuine|fake --product NAME` to add to it"
    refuse_existing(args.out, "checker", force=args.force, instead=add)
    if args.force and args.out.is_dir() and any(args.out.iterdir()) and not (args.out / "manifest.json").is_file():
        # a save replaces the whole folder: --force replaces a checker, never other files
        raise AuthvisionError(f"{args.out} holds files but is not a checker: --force replaces only a checker; choose another --out")
    photos = read_photo_set(args.refs)
    embedder = _load_embedder(args)
    index = ReferenceIndex(embedder.dim, factory=args.factory, model_sha256=embedder.model_sha256)
    providers = inspection_providers(min_similarity=args.inspect_min_similarity) if args.inspection else default_providers()
    checker = AuthenticityChecker(embedder, index, k=args.k, providers=providers)
    skipped = add_photos(checker, photos, args)
    if len(skipped) == len(photos):
        say(f"error: none of the {len(photos)} reference photos in {args.refs} could be read; no checker written")
        return EXIT_FAILED_INPUTS
    checker.save(args.out)
    summary = {"checker": str(args.out), "references": len(checker.index), "skipped": skipped, **_label_counts(checker)}
    _print_json(summary)
    return EXIT_OK


def add_photos(checker, photos, args: argparse.Namespace) -> list[str]:
    """Add labelled photos with a progress bar; returns the paths that could not be read (counted on stderr;
    the library has logged each one's reason)."""
    from .datasets import add_labelled_photos

    with _progress(len(photos), "indexing", args) as bar:
        skipped = add_labelled_photos(checker, photos, progress=bar.update)
    if skipped:
        say(f"{len(skipped)} of {len(photos)} photos could not be read and were skipped (listed under \"skipped\")")
    return skipped


def _label_counts(checker) -> dict[str, Any]:
    info = checker.index.info()
    return {"labels": info["labels"], "products": info["products"], "brands": info["brands"]}


def cmd_index_add(args: argparse.Namespace) -> int:
    from .datasets import LabelledPhoto, list_images

    require_paths(args.images)
    require_photos_in_folders(args.images)
    checker = _load_checker(args)
    photos = [LabelledPhoto(p, args.label, args.product, args.brand) for p in list_images(args.images)]
    skipped = add_photos(checker, photos, args)
    if len(skipped) == len(photos):
        say(f"error: none of the {len(photos)} photos could be read; {args.checker} is unchanged")
        return EXIT_FAILED_INPUTS
    checker.save(args.checker)
    _print_json({"references": len(checker.index), "added": len(photos) - len(skipped), "skipped": skipped})
    return EXIT_OK


def cmd_index_remove(args: argparse.Namespace) -> int:
    checker = _load_checker(args)
    checker.remove_references(args.ids)
    checker.save(args.checker)
    _print_json({"references": len(checker.index), "removed": args.ids})
    return EXIT_OK


def cmd_index_regions(args: argparse.Namespace) -> int:
    require_paths([args.boxes])
    try:
        spec = json.loads(args.boxes.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InspectionError(f"{args.boxes}: not JSON: {exc}") from None
    if not isinstance(spec, dict) or "reference" not in spec or not isinstance(spec.get("boxes"), dict):
        raise InspectionError(f'{args.boxes}: expected {{"reference": ID or source, "boxes": {{name: [x0, y0, x1, y1]}}}}')
    checker = _load_checker(args)
    if not spec["boxes"]:
        checker.inspection_provider().clear_authentication_points(args.product)
    else:
        checker.set_authentication_points(args.product, spec["reference"], spec["boxes"], fractions=bool(spec.get("fractions", False)))
    checker.save(args.checker)
    _print_json({"product": args.product, "points": checker.inspection_provider().authentication_points(args.product)})
    return EXIT_OK


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
    return EXIT_OK


# -- check / calibrate -----------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from .datasets import list_images

    require_paths(args.images)
    require_photos_in_folders(args.images)
    checker = _load_checker(args)
    require_brand(checker, args.brand)
    warn_uncalibrated(checker, args.checker)
    paths = list_images(args.images)
    verdicts = checker.check_many(paths, brand=args.brand)
    for path, verdict in zip(paths, verdicts):
        if args.format == "text":
            sys.stdout.write(verdict_line(str(path), verdict) + "\n")
        else:
            sys.stdout.write(json.dumps({"path": str(path), **verdict.to_dict()}) + "\n")
    if args.explain is not None:
        _write_explanations(checker, paths, verdicts, args.explain)
    errors = sum(v.label == "error" for v in verdicts)
    if errors:
        say(f"{errors} of {len(paths)} photos could not be checked (label \"error\")")
        return EXIT_FAILED_INPUTS
    return EXIT_OK


def _write_explanations(checker, paths, verdicts, out: Path) -> None:
    """One overlay PNG per inspected listing (``--explain OUTDIR``); the others are listed on stderr."""
    from .overlay import explain

    out.mkdir(parents=True, exist_ok=True)
    for n, (path, verdict) in enumerate(zip(paths, verdicts)):
        png = None if verdict.label == "error" else explain(checker, path, verdict, title=Path(path).name)
        if png is None:
            reason = (verdict.inspection or {}).get("reason") or verdict.error or "the checker does not inspect listings"
            say(f"no overlay for {path}: {reason}")
            continue
        (out / f"{n:04d}-{Path(path).stem}.png").write_bytes(png)


def _select_split(listings: list, wanted: str | None, default: str, csv_path: Path) -> tuple[list, str, str]:
    """The rows of ``--split`` (``default`` when the CSV has a split column and none is given; ``all``: every row),
    the split used and its description for the user."""
    has_column = any("split" in item.extra for item in listings)
    if wanted == "all" or (wanted is None and not has_column):
        return listings, "all", "every row" if has_column else "every row: no split column"
    wanted = wanted or default
    if not has_column:
        raise AuthvisionError(f"--split {wanted}: {csv_path} has no split column; pass --split all to use every row")
    chosen = [item for item in listings if item.extra.get("split") == wanted]
    if not chosen:
        values = sorted({item.extra.get("split") or "(empty)" for item in listings})
        raise AuthvisionError(f"no rows of {csv_path} have split {wanted!r} (its splits: {', '.join(values)}); pass --split VALUE or --split all")
    return chosen, wanted, f"split {wanted}; --split all for every row"


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .datasets import read_photo_csv

    require_file(args.listings, "listings CSV")
    checker = _load_checker(args, discard_calibration=True)  # a calibration on other evidence features is replaced anyway
    photos = read_photo_csv(args.listings)
    chosen, split, described = _select_split(photos, args.split, "calibration", args.listings)
    say(f"calibrating on {len(chosen)} of {len(photos)} rows of {args.listings} ({described})")
    report = checker.calibrate([p.path for p in chosen], [p.label for p in chosen])
    if report.skipped:
        say(f"{report.skipped} of {len(chosen)} calibration photos could not be read and were skipped")
    checker.save(args.checker)
    _print_json({"rows": len(chosen), "split": split, **report.to_dict()})
    return EXIT_OK


# -- scan ------------------------------------------------------------------------------------------


def cmd_scan(args: argparse.Namespace) -> int:
    from .datasets import expand_inputs
    from .scanner import DEFAULT_BATCH_SIZE, Scanner, default_threads, scan_to_jsonl

    require_paths(args.inputs)
    require_photos_in_folders(args.inputs)
    if next(iter(expand_inputs(args.inputs)), None) is None:
        raise AuthvisionError(f"no listings to scan: {', '.join(map(str, args.inputs))} list{'s' if len(args.inputs) == 1 else ''} none")
    if args.out.is_dir():
        raise AuthvisionError(f"--out {args.out} is a folder: name a .jsonl file")
    if not args.resume and args.out.exists() and args.out.stat().st_size > 0:
        raise AuthvisionError(f"{args.out} exists and is not empty: run the same command with --resume to finish that scan, or choose another --out")
    ort_threads, decode_workers = default_threads()  # measured best on 2 cores: 1 ORT thread + 2 decoders
    checker = _load_checker(args, threads=args.threads or ort_threads)
    require_brand(checker, args.brand)
    warn_uncalibrated(checker, args.checker)
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
    except OutputExistsError as exc:  # filled since the check above: another scan
        raise AuthvisionError(f"{exc}: run the same command with --resume, or choose another --out") from exc
    except StorageFullError as exc:
        raise StorageFullError(exc.errno, f"{_message(exc)}: run the same command with --resume") from exc
    finally:
        bar.close()
    _print_json(summary.to_dict())
    if summary.errors:
        say(f"{summary.errors} of {summary.rows} rows are errors (unreadable inputs: label \"error\" in {args.out})")
    return EXIT_OK


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

    require_extra("report", "demo")
    refuse_existing(args.out, "demo's kit, checker and report", force=args.force)
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            if not args.quiet:
                say(f"demo: {stage}")
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
    return EXIT_OK


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def cmd_evaluate(args: argparse.Namespace) -> int:
    require_extra("report", "evaluate", ["sklearn", "matplotlib"])
    from .datasets import read_photo_csv
    from .evaluation import evaluate, write_report

    require_file(args.listings, "listings CSV")
    refuse_existing(args.out, "report", force=args.force)
    checker = _load_checker(args)
    warn_uncalibrated(checker, args.checker)
    rows = read_photo_csv(args.listings)
    listings, split, described = _select_split(rows, args.split, "test", args.listings)
    say(f"evaluating on {len(listings)} of {len(rows)} rows of {args.listings} ({described})")
    with _progress(len(listings), "evaluating", args) as bar:
        result = evaluate(checker, listings, progress=bar.update, brand_from_truth=args.brand_from_truth)
    files = write_report(result, args.out, title=args.title)
    errors = result.summary.get("counts", {}).get("errors", 0)
    if errors:
        say(f"{errors} of {len(listings)} listings could not be read (counted as errors in the report)")
    d = result.summary["detection"]
    _print_json({"report": str(files["markdown"]), "rows": len(listings), "split": split, "roc_auc": d["roc_auc"], "ece": d["ece"],
                 "listings_per_s": result.summary["throughput"]["listings_per_s"]})
    return EXIT_OK


def cmd_brandkit(args: argparse.Namespace) -> int:
    from .brandkit import KitConfig, generate_kit

    refuse_existing(args.out, "brand kit", force=args.force, flag="OUT")
    families = _families(args.heldout_families)
    try:
        summary = generate_kit(args.out, seed=args.seed, config=KitConfig(listings=args.listings, heldout_families=families),
                               workers=args.workers, overwrite=args.force)
    except OutputExistsError as exc:
        raise AuthvisionError(f"{exc}: pass --force to replace it, or choose another OUT") from exc
    _print_json({"kit": str(args.out), "references": str(summary.references_dir), "listings": str(summary.listings_csv)})
    return EXIT_OK


# -- train / export ------------------------------------------------------------------------------


def _training(command: str):
    """The training pipeline (torch: imported only once every check has passed)."""
    try:
        from authvision_train import pipeline
    except ImportError as exc:
        raise AuthvisionError(f"`authvision {command}` needs the [train] extra ({exc}): {install_hint('train')}") from exc
    return pipeline


def cmd_train(args: argparse.Namespace) -> int:
    # A missing DATA is refused here, before torch loads; the pipeline reads DATA (and reports a malformed
    # one) before it makes --out
    require_paths([args.data], "training data")
    for option, path in (("--config", args.config), ("--listings", args.listings)):
        if path is not None:
            require_paths([path], option)
    require_extra("train", "train")
    if not args.resume:
        refuse_existing(args.out, "model", force=args.force, instead="--resume to continue that run")
    summary = _training("train").run_from_args(args)
    if summary is not None:  # None on a non-zero rank under torchrun
        _print_json(summary)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    require_paths([args.model], "model folder")
    require_extra("train", "export", ["torch", "onnx"])
    pipeline = _training("export")
    manifest = pipeline.export_checkpoint(args.model, int8=args.int8)
    _print_json({"model": str(args.model), "files": {k: v.filename for k, v in manifest.files.items()},
                 "quantization_gate": manifest.quantization.get("gate")})
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------------------

HANDLERS: dict[str, Handler] = {
    "index_build": cmd_index_build,
    "index_add": cmd_index_add,
    "index_remove": cmd_index_remove,
    "index_info": cmd_index_info,
    "index_regions": cmd_index_regions,
    "check": cmd_check,
    "calibrate": cmd_calibrate,
    "scan": cmd_scan,
    "demo": cmd_demo,
    "evaluate": cmd_evaluate,
    "brandkit": cmd_brandkit,
    "train": cmd_train,
    "export": cmd_export,
}


def build_parser() -> argparse.ArgumentParser:
    """The ``authvision`` argument parser (:mod:`authvision.cli_parser`) with this module's commands."""
    from .cli_parser import build_parser as parser_with

    return parser_with(HANDLERS)


_PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (:data:`~authvision.cli_support.EXIT_CODES`)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error argparse has printed (2)
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_USAGE)
    with cli_logging(args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        say(_interrupted(args))
        return EXIT_INTERRUPTED
    except StorageFullError as exc:  # the system failed, not the user; the message says what was kept
        say(f"error: {_message(exc)}")
        return EXIT_FAILED_INPUTS
    except MissingExtraError as exc:  # the library names the extra; how to install it is ours to say
        say(f"error: {exc}: {install_hint(exc.extra)}")
        return EXIT_USAGE
    except (AuthvisionError, ValueError, *_PATH_ERRORS) as exc:
        say(f"error: {_message(exc)}")
        return EXIT_USAGE
    except ImportError as exc:  # an optional dependency the checks before work did not foresee
        say(f'error: {exc} (in the source tree, pip install ".[report]" or ".[train]" installs the optional extras)')
        return EXIT_USAGE
    except MemoryError:
        say("error: out of memory")
        return EXIT_FAILED_INPUTS
    except OSError as exc:  # disk full, I/O error: the system failed, not the user
        say(f"error: {_message(exc)}")
        return EXIT_FAILED_INPUTS
    except Exception as exc:  # a bug: one line for the user, the traceback with -vv
        LOG.debug("internal error", exc_info=True)
        say(f"internal error (a bug, please report it with the output of -vv): {type(exc).__name__}: {exc}")
        return EXIT_FAILED_INPUTS


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror if exc.filename is None else f"{exc.filename}: {exc.strerror}"
    return str(exc)


def _interrupted(args: argparse.Namespace) -> str:
    if args.command == "scan":
        return f"interrupted; the rows written are kept in {args.out}: run the same command with --resume to finish the scan"
    if args.command == "train":
        return "interrupted; run the same command with --resume to continue from the last checkpoint"
    return "interrupted"


if __name__ == "__main__":
    sys.exit(main())
