"""The authvision version, in a module of its own so that any submodule can import it cheaply."""

from __future__ import annotations

import re

__all__ = ["__version__", "is_newer"]

__version__ = "0.1.0"


def is_newer(saved: str, ours: str = __version__) -> bool:
    """Whether version ``saved`` (e.g. recorded in a save) is newer than ``ours``, by major.minor.patch."""

    def parts(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3])

    try:
        return parts(saved) > parts(ours)
    except ValueError:
        return False
