"""The package root is lazy: light submodules do not drag FAISS or ONNX Runtime in."""

import subprocess
import sys

import pytest


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("module", ["authvision", "authvision.brandkit", "authvision.datasets", "authvision._version"])
def test_light_imports_do_not_load_faiss_or_onnxruntime(module):
    _run(f"import sys, {module}; assert 'faiss' not in sys.modules and 'onnxruntime' not in sys.modules, sorted(sys.modules)")


def test_the_root_names_still_resolve():
    _run(
        "import authvision as av\n"
        "from authvision import AuthenticityChecker, Verdict, __version__\n"
        "assert av.AuthenticityChecker is AuthenticityChecker and av.ReferenceIndex.__name__ == 'ReferenceIndex'\n"
        "assert all(hasattr(av, name) for name in av.__all__)\n"
        "from authvision._version import __version__ as v; assert v == __version__\n"
    )
