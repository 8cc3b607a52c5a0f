"""The README's Python example runs as written (in a fresh folder), and its commands name real verbs."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.slow
def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    example = next(block for block in _python_blocks() if "generate_kit" in block)
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "calibrated: out-of-fold ECE" in out
    assert (tmp_path / "acme-checker" / "manifest.json").is_file()


def test_the_readme_command_lines_name_real_commands():
    from authvision.cli import build_parser

    parser = build_parser()
    verbs = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    blocks = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S))
    named = set(re.findall(r"^(?:\.venv/bin/)?authvision ([a-z]+)", blocks, flags=re.M))
    assert named and named <= verbs, named - verbs
