"""The ``train`` verb's command-line arguments, shared by ``authvision train`` and
``python -m authvision_train.pipeline`` (``torchrun``), so neither imports the other.

Torch-free: :mod:`authvision.cli` builds its parser from this without the ``[train]`` extra; the
training pipeline (:func:`authvision_train.pipeline.run_from_args`) runs what was parsed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["add_train_arguments", "parse_overrides"]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``train``: DATA, --out, --config, --set, --listings, --resume (and a hidden --max-steps)."""
    parser.add_argument("data", type=Path, help="DATA/<brand>/<product>/<genuine|fake>/*.jpg or a CSV path,label,product,brand")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--config", type=Path, default=None, help="TOML training config (defaults: authvision_train/default.toml)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config value")
    parser.add_argument("--listings", type=Path, default=None, help="labelled listings CSV: evaluate before vs after on its test rows")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--max-steps", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``section.key=value`` pairs, values parsed as TOML scalars (``3``, ``0.5``, ``true``, ``"avg"``)."""
    import tomllib

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects section.key=value, got {pair!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out
