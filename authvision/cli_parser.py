"""The ``authvision`` command's argument parser. The commands themselves are in :mod:`authvision.cli`,
which passes them in (``handlers``), so this module imports nothing heavy and ``--help`` stays fast."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path

from ._version import __version__
from .cli_support import EXIT_CODES
from .train_args import add_train_arguments

Handler = Callable[[argparse.Namespace], int]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, help="model directory or .onnx file (default: the shipped model)")
    parser.add_argument("--precision", choices=["int8", "fp32"], default="int8")


def _force(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--force", action="store_true", help=f"replace {what} in an existing, non-empty target (refused without it)")


def build_parser(handlers: Mapping[str, Handler]) -> argparse.ArgumentParser:
    """The parser; each command's ``func`` is its entry of ``handlers`` (``cmd_<name>`` of :mod:`authvision.cli`)."""
    parser = argparse.ArgumentParser(prog="authvision", description="Tell genuine from counterfeit products in listing photos.",
                                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"authvision {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=_positive_int, default=None, help="ONNX Runtime threads (default: all cores)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = commands.add_parser("index", help="build and maintain a checker's reference index")
    index_commands = index.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    build = index_commands.add_parser("build", help="index a brand folder or CSV of reference photos")
    build.add_argument("refs", type=Path, help="REFS/<brand>/<product>/<genuine|fake>/*.jpg, or a CSV path,label,product,brand")
    build.add_argument("--out", type=Path, required=True, help="checker directory to write (refused if it exists: --force, or `index add`)")
    _force(build, "the checker")
    build.add_argument("--factory", default="auto", help="FAISS index type: auto (default), Flat, HNSW32,SQ8, IVF1024,SQ8 ...")
    build.add_argument("--k", type=_positive_int, default=10, help="neighbours per check")
    build.add_argument("--inspection", action=argparse.BooleanOptionalAction, default=True,
                       help="region inspection of listings matched to a product (default on; --no-inspection: the screen alone)")
    build.add_argument("--inspect-min-similarity", type=float, default=0.0,
                       help="inspect only listings whose best reference similarity reaches this")
    _model_options(build)
    build.set_defaults(func=handlers["index_build"])

    add = index_commands.add_parser("add", help="add reference photos to a checker")
    add.add_argument("checker", type=Path)
    add.add_argument("images", nargs="+", type=Path, help="photos or folders")
    add.add_argument("--label", choices=["genuine", "fake"], required=True)
    add.add_argument("--product", required=True)
    add.add_argument("--brand", default=None)
    add.set_defaults(func=handlers["index_add"])

    remove = index_commands.add_parser("remove", help="remove references by id")
    remove.add_argument("checker", type=Path)
    remove.add_argument("ids", nargs="+", type=int)
    remove.set_defaults(func=handlers["index_remove"])

    regions = index_commands.add_parser(
        "regions", help="give a product's authentication points: named boxes on one of its genuine reference photos")
    regions.add_argument("checker", type=Path)
    regions.add_argument("product")
    regions.add_argument("boxes", type=Path, help='JSON: {"reference": ID or source path, "boxes": {"wordmark": [x0, y0, x1, y1], ...}, '
                                                   '"fractions": false}; "boxes": {} clears them')
    regions.set_defaults(func=handlers["index_regions"])

    info = index_commands.add_parser("info", help="describe a checker")
    info.add_argument("checker", type=Path)
    info.set_defaults(func=handlers["index_info"])

    check = commands.add_parser("check", help="check listing photos; one verdict per line (JSON, or --format text)")
    check.add_argument("images", nargs="+", type=Path, help="photos or folders")
    check.add_argument("--checker", type=Path, required=True)
    check.add_argument("--brand", default=None, help="only compare with this brand's references")
    check.add_argument("--format", choices=["json", "text"], default="json",
                       help="json (default): one JSON verdict per line; text: one readable line per photo")
    check.add_argument("--explain", type=Path, default=None, metavar="OUTDIR",
                       help="write an overlay PNG per inspected listing: listing registered beside its genuine reference, heatmap, worst regions")
    check.set_defaults(func=handlers["check"])

    calibrate = commands.add_parser("calibrate", help="fit a checker's calibration on held-out labelled listings")
    calibrate.add_argument("checker", type=Path)
    calibrate.add_argument("listings", type=Path, help="CSV with path,label (genuine, fake or unknown): at least 5 genuine and 5 fake")
    calibrate.add_argument("--split", default=None,
                           help="only rows whose split column has this value (default: calibration when the CSV has a split column; all: every row)")
    calibrate.set_defaults(func=handlers["calibrate"])

    scan = commands.add_parser(
        "scan",
        help="scan listings into JSON lines, resumable after any crash (one row per input)",
        description="Scan listing photos into JSON lines: one row per input, error rows for unreadable ones. "
        "After a crash or kill, run the same command with --resume to finish it. Exits 0 when every input has "
        "its row (error rows included, their count on stderr).",
    )
    scan.add_argument("inputs", nargs="+", type=Path, help="photos, folders (recursive), .txt lists (one path a line) or .csv lists (path[,id])")
    scan.add_argument("--checker", type=Path, required=True)
    scan.add_argument("--out", type=Path, required=True, help="JSON-lines output (an existing one is refused without --resume)")
    scan.add_argument("--resume", action="store_true", help="finish the scan already in --out (same inputs)")
    scan.add_argument("--csv", type=Path, default=None, help="also write a CSV of the results when the scan completes")
    scan.add_argument("--brand", default=None, help="only compare with this brand's references")
    scan.add_argument("--batch-size", type=_positive_int, default=None, help="photos per model call (default 32)")
    scan.add_argument("--decode-workers", type=_positive_int, default=None, help="decoding threads (default: cores - ORT threads + 1)")
    scan.set_defaults(func=handlers["scan"])

    demo = commands.add_parser("demo", help="offline end-to-end demo: brand kit -> checker -> scan -> report (needs [report])")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="folder for kit/, checker/ and report/")
    _force(demo, "the demo's kit, checker and report")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--heldout-families", default="",
                      help="comma-separated defect families whose fakes appear only in test listings (leave-one-family-out)")
    demo.add_argument("--listings", type=_positive_int, default=400, help="listing photos in the generated kit")
    demo.add_argument("--workers", type=_positive_int, default=2, help="processes rendering the kit")
    demo.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped model)")
    demo.add_argument("--no-real-photos", action="store_true", help="skip the real-photo re-use evaluation")
    demo.add_argument("--no-inspection", action="store_true", help="the screen alone: no region inspection")
    demo.set_defaults(func=handlers["demo"])

    evaluate = commands.add_parser("evaluate", help="evaluate a checker on labelled listings; writes a report (needs [report])")
    evaluate.add_argument("listings", type=Path, help="CSV path,label[,product,brand,defects,conditions,split,...]")
    evaluate.add_argument("--checker", type=Path, required=True)
    evaluate.add_argument("--out", type=Path, required=True, help="report folder")
    _force(evaluate, "the report")
    evaluate.add_argument("--split", default=None,
                          help="only rows whose split column has this value (default: test when the CSV has a split column; all: every row)")
    evaluate.add_argument("--brand-from-truth", action="store_true", help="restrict each check to the listing's brand")
    evaluate.add_argument("--title", default="authvision evaluation")
    evaluate.set_defaults(func=handlers["evaluate"])

    brandkit = commands.add_parser("brandkit", help="generate a simulated brand kit (references + listings)")
    brandkit.add_argument("out", type=Path)
    _force(brandkit, "the kit")
    brandkit.add_argument("--seed", type=int, default=0)
    brandkit.add_argument("--listings", type=_positive_int, default=400)
    brandkit.add_argument("--workers", type=_positive_int, default=2)
    brandkit.add_argument("--heldout-families", default="", help="comma-separated defect families seen only in test listings")
    brandkit.set_defaults(func=handlers["brandkit"])

    train = commands.add_parser("train", help="retrain on brand photos: model, calibrated checker, model card (needs [train])")
    add_train_arguments(train)
    _force(train, "the model")
    train.set_defaults(func=handlers["train"])

    export = commands.add_parser("export", help="export a trained model folder's best checkpoint to ONNX fp32 (+ int8) (needs [train])")
    export.add_argument("model", type=Path, help="a folder written by `authvision train`")
    export.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True, help="also write the gated int8 model")
    export.set_defaults(func=handlers["export"])
    return parser
