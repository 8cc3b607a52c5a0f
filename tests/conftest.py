"""Shared fixtures: real photos (scikit-image, matplotlib) and the shipped default embedder, loaded once."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import authvision as av
from authvision.sample_photos import sample_photo


@pytest.fixture(scope="session")
def embedder() -> av.Embedder:
    return av.Embedder.load()


@pytest.fixture(scope="session")
def embedder_fp32() -> av.Embedder:
    return av.Embedder.load(precision="fp32")


def jpeg_bytes(array: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    names = ("chelsea", "coffee", "astronaut", "rocket", "grace_hopper", "stereo_motorcycle_left", "hubble_deep_field")
    return {name: sample_photo(name) for name in names}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (``CI`` set, as .ci/run runs), a skipped test fails the run: every extra is installed there,
    so a skip means a test silently stopped testing (a missing dependency, a mount refused)."""
    import os

    if not os.environ.get("CI") or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        for report in skipped:
            reporter.write_line(f"skipped in CI: {report.nodeid}: {report.longrepr}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
