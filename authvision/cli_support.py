"""What the ``authvision`` command checks before any work starts, and its human-readable output.

Every check raises :class:`~authvision.errors.AuthvisionError` with a message that names the fix;
:func:`authvision.cli.main` prints it as one line and exits 2 (see :data:`EXIT_CODES`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .errors import AuthvisionError

EXIT_OK, EXIT_FAILED_INPUTS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_CODES = """\
exit status, the same for every command:
  0    every input got its result (error rows of unreadable photos included; their count goes to stderr)
  1    the command could not do its job for some inputs you named (`check` of an unreadable photo,
       nothing readable to index) or the system failed (disk full, ...)
  2    usage error: a bad option, a path that does not exist, an empty input set (no photos in a folder,
       no rows in a CSV), an existing output it will not replace (--force), a missing optional extra
  130  interrupted (Ctrl-C); `scan` and `train` finish with --resume
"""

EXTRAS: dict[str, dict[str, str]] = {
    # extra -> {importable module: distribution name}
    "report": {"sklearn": "scikit-learn", "matplotlib": "matplotlib", "skimage": "scikit-image"},
    "train": {"torch": "torch", "torchvision": "torchvision", "pytorch_metric_learning": "pytorch-metric-learning",
              "onnx": "onnx", "skimage": "scikit-image", "matplotlib": "matplotlib"},
}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture, a redirected stream)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@contextmanager
def cli_logging(verbose: int) -> Iterator[None]:
    """Library warnings on stderr, once each, while one command runs: a single handler on the root logger
    (none if one is there already), ``-v``/``-vv`` lowering the ``authvision`` loggers' level; both undone
    afterwards, so ``main`` called in-process leaves logging as it found it."""
    logger, root = logging.getLogger("authvision"), logging.getLogger()
    level = logger.level
    logger.setLevel(logging.WARNING - 10 * min(verbose, 2))
    handler = None
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("authvision: %(levelname)s (%(name)s): %(message)s"))
        root.addHandler(handler)
    try:
        yield
    finally:
        logger.setLevel(level)
        if handler is not None:
            root.removeHandler(handler)


def say(message: str) -> None:
    """One line for the user on stderr (results go to stdout)."""
    sys.stderr.write(f"authvision: {message}\n")


def install_hint(extra: str) -> str:
    """How to install authvision's optional ``extra`` (what a library :class:`~authvision.errors.MissingExtraError` leaves to us)."""
    return f'in the source tree run pip install ".[{extra}]" (or pip install "WHEEL[{extra}]" for a wheel built with pip wheel .)'


def require_extra(extra: str, command: str, modules: Sequence[str] | None = None) -> None:
    """Refuse to start ``command`` when the optional ``extra`` (or its ``modules``) is not installed."""
    wanted = EXTRAS[extra]
    missing = [wanted[m] for m in (modules or wanted) if find_spec(m) is None]
    if missing:
        raise AuthvisionError(
            f"`authvision {command}` needs the [{extra}] extra, and {', '.join(missing)} is not installed: {install_hint(extra)}"
        )


def require_paths(paths: Iterable[Path], what: str = "input") -> None:
    """Every path named on the command line exists."""
    for path in paths:
        if not path.exists():
            raise AuthvisionError(f"{what} {path} does not exist")


def require_file(path: Path, what: str) -> None:
    """``path`` exists and is a file (a CSV, not a folder)."""
    require_paths([path], what)
    if path.is_dir():
        raise AuthvisionError(f"{what} {path} is a folder: name the CSV file")


def require_checker(path: Path) -> None:
    """``path`` is a checker folder (or a save that was interrupted, which loading recovers)."""
    from ._storage import SAVE_MANIFEST

    if not path.exists():
        return  # the loader recovers an interrupted save from its sibling, or says there is no checker
    written = "name a folder that `authvision index build` wrote"
    if not path.is_dir():
        raise AuthvisionError(f"{path} is a file, not a checker folder: {written}")
    if not (path / SAVE_MANIFEST).is_file():
        raise AuthvisionError(f"{path} is not a checker (it has no {SAVE_MANIFEST}): {written}")


def require_photos_in_folders(paths: Iterable[Path]) -> None:
    """A folder named on the command line holds at least one photo (a mistyped or empty folder is a usage error)."""
    from .datasets import IMAGE_SUFFIXES

    for path in paths:
        if path.is_dir() and not any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*")):
            raise AuthvisionError(f"no photos in {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, in subfolders too)")


def refuse_existing(path: Path, what: str, *, force: bool, flag: str = "--out", instead: str | None = None) -> None:
    """Refuse to write ``what`` over an existing non-empty ``path`` unless ``force`` (the ``--force`` flag).

    ``instead``: what to do with the existing target instead (for a checker, add to it with ``index add``).
    """
    if not path.exists():
        return
    if not path.is_dir():
        raise AuthvisionError(f"{flag} {path} is a file, not a folder: choose another {flag} for the {what}")
    if force or not any(path.iterdir()):
        return
    hint = f", or {instead} instead" if instead else ""
    raise AuthvisionError(f"{path} exists and is not empty: pass --force to replace the {what} there{hint}")


def require_brand(checker: Any, brand: str | None) -> None:
    """``--brand NAME`` names a brand the checker's index holds (else every listing would be ``unknown``)."""
    if brand is None or checker.index.ids(brand=brand):
        return
    index = checker.index
    known = sorted({ref.brand for ref in index.references(index.ids()) if ref.brand})
    listed = ", ".join(known) if known else "none: its references carry no brand"
    raise AuthvisionError(f"--brand {brand!r}: the checker has no references of that brand (its brands: {listed})")


def warn_uncalibrated(checker: Any, path: Path) -> None:
    """One warning on stderr when ``checker`` still runs on its uncalibrated default score mapping."""
    if not checker.calibrated:
        say(
            f"warning: the checker {path} is not calibrated: authenticity scores are placeholders, not probabilities; "
            f"calibrate it with `authvision calibrate {path} LISTINGS.csv` (at least 5 genuine and 5 fake listing photos)"
        )


# -- check --format text ---------------------------------------------------------------------------------


def verdict_line(path: str, verdict: Any) -> str:
    """One human-readable line for ``check --format text``."""
    name = str(path)
    if verdict.label == "error":
        return f"{name}  error  {verdict.error}"
    parts = [name, verdict.label]
    if verdict.authenticity is not None:
        parts.append(f"authenticity {verdict.authenticity:.3f}" + ("" if verdict.calibrated else " (uncalibrated)"))
    if verdict.product is not None:
        parts.append(f"product {verdict.brand + '/' if verdict.brand else ''}{verdict.product}")
    elif verdict.label == "unknown":
        best = verdict.evidence.get("max_similarity")
        parts.append("no indexed product is close" + ("" if best is None else f" (best similarity {best:.3f})"))
    for kind, match in (("genuine", verdict.nearest_genuine), ("fake", verdict.nearest_fake)):
        if match is not None and match.similarity is not None:
            parts.append(f"nearest {kind} {match.similarity:.3f} (ref {match.ref_id}{_product(match, verdict)})")
    if verdict.duplicate_of is not None:
        d = verdict.duplicate_of
        parts.append(f"duplicate of ref {d.ref_id} ({d.label}{'' if d.hamming is None else f', {d.hamming} bits apart'})")
    summary = inspection_summary(verdict.inspection)
    if summary:
        parts.append(summary)
    return "  ".join(parts)


def _product(match: Any, verdict: Any) -> str:
    return "" if match.product in (None, verdict.product) else f", {match.product}"


def inspection_summary(inspection: Any) -> str | None:
    """``inspection: registered, worst region 2.31`` / ``inspection: not registered (reason)``; None when not inspected."""
    if not inspection:
        return None
    if not inspection.get("inspected"):
        return f"not inspected ({inspection['reason']})" if inspection.get("reason") else None
    if not inspection.get("registered"):
        return f"inspection: not registered ({inspection.get('reason') or 'no fit'})"
    scores = [r["score"] for r in inspection.get("regions") or () if isinstance(r, dict) and r.get("score") is not None]
    worst = f", worst region {max(scores):.2f}" if scores else ""
    return f"inspection: registered ({inspection.get('inliers', 0)} inliers){worst}"
