"""Independent random generators derived from (seed, role, index...).

Every generated object and image draws from its own ``numpy.random.Generator``, seeded from the kit
seed, a role code and its indices, so that nothing depends on generation order (and generation can
run in parallel). The global ``random`` / ``numpy.random`` state is never used.
"""

from __future__ import annotations

import zlib

import numpy as np

# Role codes: never renumber, or every kit changes.
ROLE_BRAND = 1
ROLE_BRAND_NAMES = 2
ROLE_PRODUCT = 3
ROLE_FACTORY = 4
ROLE_PLAN = 5
ROLE_REFERENCE_GENUINE = 6
ROLE_REFERENCE_FAKE = 7
ROLE_LISTING = 8


def generator(seed: int, role: int, *indices: int) -> np.random.Generator:
    """The generator of one object or image."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), role, *map(int, indices)]))


def text_key(text: str) -> int:
    """A stable integer for a name (Python's ``hash`` of a str changes between runs)."""
    return zlib.crc32(text.encode("utf-8"))
