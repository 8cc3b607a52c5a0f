"""``authvision train`` and ``python -m authvision_train.pipeline`` share one argument list and one runner."""

import json
from pathlib import Path

import pytest

from authvision.cli import main as cli_main
from authvision.train_args import parse_overrides

pytestmark = pytest.mark.train


def test_overrides_parse_toml_scalars():
    assert parse_overrides(["train.epochs=3", "train.lr=0.5", "model.pooling=avg", "x.flag=true"]) == {
        "train.epochs": 3, "train.lr": 0.5, "model.pooling": "avg", "x.flag": True,
    }
    with pytest.raises(ValueError, match="section.key=value"):
        parse_overrides(["nope"])


@pytest.fixture
def fake_run(monkeypatch):
    pipeline = pytest.importorskip("authvision_train.pipeline")
    calls = []

    def run(data, out, **kwargs):
        calls.append((Path(data), Path(out), kwargs))
        metrics = {"training": {"seconds": 90.0, "best_validation_roc_auc": 0.9, "stopped": "epochs"}}
        return pipeline.PipelineResult(model_dir=Path(out), checker_dir=Path(out) / "checker", metrics=metrics)

    monkeypatch.setattr(pipeline, "run", run)
    return pipeline, calls


@pytest.mark.parametrize("entry", ["cli", "pipeline"])
def test_both_entry_points_run_the_same_train(fake_run, entry, tmp_path, capsys):
    pipeline, calls = fake_run
    (tmp_path / "data").mkdir()  # the CLI refuses a missing DATA before it loads torch
    argv = [str(tmp_path / "data"), "--out", str(tmp_path / "model"), "--set", "train.epochs=1", "--max-steps", "2"]
    code = cli_main(["-q", "train", *argv]) if entry == "cli" else pipeline.main(["-q", *argv])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == str(tmp_path / "model") and summary["minutes"] == 1.5
    (data, out, kwargs), = calls
    assert out == tmp_path / "model" and kwargs["max_steps"] == 2 and kwargs["config"].train.epochs == 1
