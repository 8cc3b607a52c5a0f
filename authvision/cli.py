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

from . import __version__
from .errors import AuthvisionError

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
    from .index import ReferenceIndex

    photos = read_photo_set(args.refs)
    embedder = _load_embedder(args)
    index = ReferenceIndex(embedder.dim, factory=args.factory, model_sha256=embedder.model_sha256)
    checker = AuthenticityChecker(embedder, index, k=args.k)
    skipped = add_photos(checker, photos, args)
    checker.save(args.out)
    summary = {"checker": str(args.out), "references": len(checker.index), "skipped": skipped, **_label_counts(checker)}
    _print_json(summary)
    return 0


def add_photos(checker, photos, args: argparse.Namespace, chunk: int = 64) -> list[str]:
    """Add labelled photos in chunks with a progress bar; returns the paths that could not be read."""
    skipped: list[str] = []
    with _progress(len(photos), "indexing", args) as bar:
        for start in range(0, len(photos), chunk):
            batch = photos[start : start + chunk]
            ids = checker.add_references(
                [p.path for p in batch],
                [p.label for p in batch],
                product=[p.product for p in batch],
                brand=[p.brand for p in batch],
                on_error="skip",
            )
            skipped.extend(str(p.path) for p, ref_id in zip(batch, ids) if ref_id is None)
            bar.update(len(batch))
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
    return 1 if any(v.label == "error" for v in verdicts) else 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .datasets import read_photo_csv

    checker = _load_checker(args)
    photos = read_photo_csv(args.listings)
    report = checker.calibrate([p.path for p in photos], [p.label for p in photos])
    checker.save(args.checker)
    _print_json(report.to_dict())
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
    check.set_defaults(func=cmd_check)

    calibrate = commands.add_parser("calibrate", help="fit a checker's calibration on held-out labelled listings")
    calibrate.add_argument("checker", type=Path)
    calibrate.add_argument("listings", type=Path, help="CSV with path,label (genuine, fake or unknown)")
    calibrate.set_defaults(func=cmd_calibrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (AuthvisionError, FileNotFoundError, FileExistsError) as exc:
        sys.stderr.write(f"authvision: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("authvision: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
