"""Rendering a kit's photos: one :class:`~authvision.brandkit.kit_plan._Job` each, in any order and any process.

Each job draws from its own generator, so the bytes do not depend on order or on the number of workers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

from ._seeding import ROLE_REFERENCE_FAKE, generator
from .kit_plan import _Job
from .listings import listing_jpeg, plain_photo_jpeg, reuse_jpeg
from .references import _reference, reference_jpeg
from .visibility import reused_visibility


def _run(job: _Job, seed: int, out_dir: str, size: int) -> dict[str, Any]:
    rng = generator(seed, job.role, *job.index)
    if job.kind == "reference":
        assert job.product is not None
        data, info = reference_jpeg(job.product, job.label, job.factory, rng=rng, size=size)  # type: ignore[arg-type]
    elif job.kind == "listing":
        assert job.product is not None
        defects = job.factory.defects if job.factory is not None else ()
        data, info = listing_jpeg(job.product, defects, rng=rng, size=size, measure_defects=bool(defects))
    elif job.kind == "reuse":
        with Image.open(os.path.join(out_dir, job.source)) as src:
            data, info = reuse_jpeg(src.convert("RGB"), rng=rng, size=size)
        if job.label == "fake":  # the seized fake's photo, re-rendered with its genuine twin
            assert job.product is not None and job.factory is not None
            ref_rng = generator(seed, ROLE_REFERENCE_FAKE, *job.source_index)
            source, _, twin = _reference(job.product, "fake", job.factory, rng=ref_rng, size=size, twin=True)
            with open(os.path.join(out_dir, job.source), "rb") as f:
                if twin is None or f.read() != source:
                    raise RuntimeError(f"{job.source} does not re-render identically: cannot measure its defects")
            info.update(reused_visibility(data, twin, rng=generator(seed, job.role, *job.index), size=size))
    else:
        data, info = plain_photo_jpeg(rng, size=size)
    target = os.path.join(out_dir, job.path)
    with open(target, "wb") as f:
        f.write(data)
    return info


def _run_star(args: tuple[_Job, int, str, int]) -> dict[str, Any]:
    return _run(*args)


def _run_all(jobs: Sequence[_Job], seed: int, out_dir: Path, size: int, workers: int) -> list[dict[str, Any]]:
    args = [(job, seed, str(out_dir), size) for job in jobs]
    if workers <= 1 or len(jobs) < 2:
        return [_run_star(a) for a in args]
    # Processes, not threads: drawing is pure-Python-heavy and would serialise on the GIL.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_run_star, args, chunksize=max(1, len(args) // (8 * workers))))
