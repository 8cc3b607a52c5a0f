"""The wheel ships the default model and the training package, and its own copy of authvision works once installed.

Slow: builds a wheel from a copy of the source tree (so the shared checkout gets no build/ or egg-info
churn) and installs it into a fresh virtual environment.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
WHEEL_FILES = (
    "authvision/__init__.py",
    "authvision/py.typed",
    "authvision/embedder.py",
    "authvision/evidence/__init__.py",
    "authvision/weights/__init__.py",
    "authvision/weights/manifest.json",
    "authvision/weights/model_int8.onnx",
    "authvision/weights/model_fp32.onnx",
    "authvision_train/__init__.py",
    "authvision_train/backbone.py",
    "authvision_train/export.py",
)


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("build")
    source = root / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("authvision", "training", "weights"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "setup.cfg"):
        if (REPO / name).is_file():
            shutil.copy(REPO / name, source / name)
    out = root / "dist"
    # No build isolation: there is no network, and the outer environment already has setuptools.
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(out)], cwd=root)
    (wheel_path,) = out.glob("authvision-*.whl")
    return wheel_path


def test_wheel_contains_models_and_training_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for required in WHEEL_FILES:
            assert required in names, f"{required} missing from {wheel.name}"
        assert archive.getinfo("authvision/weights/model_int8.onnx").file_size == (
            REPO / "weights" / "model_int8.onnx"
        ).stat().st_size
    assert not any(n.startswith(("tests/", "benchmarks/", "training/", "weights/")) for n in names), sorted(names)[:20]


def test_installed_wheel_embeds_with_its_own_copy(wheel, tmp_path):
    venv = tmp_path / "venv"
    # A plain venv: `--system-site-packages` from inside a venv exposes the *base* interpreter's packages,
    # not the outer venv's. The dependencies come from the outer site-packages through a .pth path entry,
    # which adds the directory without running its .pth files, so the outer editable finder stays off.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).stdout.strip())
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "outer_dependencies.pth").write_text("\n".join(sorted(outer)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)], cwd=tmp_path)

    photo = tmp_path / "photo.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 40, 40)).save(buffer, format="JPEG", quality=85)
    photo.write_bytes(buffer.getvalue())
    code = (
        "import sys\n"
        "import authvision as av, authvision_train\n"
        "e = av.Embedder.load()\n"
        "v = e.embed(sys.argv[1])\n"
        "assert v.shape == (1, e.dim) == (1, 1280), v.shape\n"
        "assert 'torch' not in sys.modules\n"
        "print(av.__file__); print(authvision_train.__file__); print(e.source)\n"
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    lines = _run([str(python), "-I", "-c", code, str(photo)], cwd=workdir).stdout.split()
    assert len(lines) == 3, lines
    for line in lines:
        assert Path(line).resolve().is_relative_to(site.resolve()), f"{line} is not the wheel's copy in {site}"
    assert lines[2].endswith("authvision/weights/model_int8.onnx")
