"""Training configuration: a TOML file (``default.toml`` holds every key with its default) → dataclasses."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    input_size: int = 224
    resize_size: int = 256
    pooling: str = "gem"
    projection_dim: int = 256
    freeze_blocks: int = 6
    fake_head: bool = True


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15
    steps_per_epoch: int = 40
    batch_size: int = 32
    m_per_class: int = 4
    lr: float = 1e-3
    backbone_lr: float = 3e-4
    weight_decay: float = 1e-4
    temperature: float = 0.1
    bce_weight: float = 1.0
    time_budget_minutes: float = 15.0
    patience: int = 5
    threads: int = 0
    workers: int = 0


@dataclass(frozen=True)
class AugmentConfig:
    paste_probability: float = 0.7
    strength: float = 1.0


@dataclass(frozen=True)
class SplitConfig:
    validation_fraction: float = 0.25
    min_photos_per_class: int = 4


@dataclass(frozen=True)
class ExportConfig:
    int8: bool = True


@dataclass(frozen=True)
class CheckerConfig:
    inspection: bool = True  # the written checker inspects listings (region inspection) besides the screen


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    checker: CheckerConfig = field(default_factory=CheckerConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SECTIONS = {
    "model": ModelConfig, "train": TrainConfig, "augment": AugmentConfig, "split": SplitConfig, "export": ExportConfig, "checker": CheckerConfig,
}


def default_config_text() -> str:
    return resources.files("authvision_train").joinpath("default.toml").read_text(encoding="utf-8")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The defaults, updated by a TOML file and then by ``overrides`` (``{"train.epochs": 3}``).

    Unknown sections or keys raise ValueError naming them: a typo must not silently train with defaults.
    """
    data = tomllib.loads(default_config_text())
    if path is not None:
        try:
            user = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"cannot read training config {path}: {exc}") from exc
        _merge(data, user, str(path))
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.rpartition(".")
        _merge(data, {section: {key: value}} if section else {key: value}, "overrides")
    sections = {}
    for name, kind in _SECTIONS.items():
        values = data.get(name, {})
        allowed = {f.name: f.type for f in fields(kind)}
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ValueError(f"unknown key(s) in [{name}]: {', '.join(unknown)}")
        sections[name] = kind(**{k: _coerce(getattr(kind(), k), v, f"{name}.{k}") for k, v in values.items()})
    extra = sorted(set(data) - set(_SECTIONS) - {"seed"})
    if extra:
        raise ValueError(f"unknown section(s) or key(s): {', '.join(extra)}")
    return RunConfig(seed=int(data.get("seed", 0)), **sections)


def _merge(base: dict[str, Any], update: dict[str, Any], where: str) -> None:
    for key, value in update.items():
        if isinstance(value, dict):
            if key not in _SECTIONS:
                raise ValueError(f"{where}: unknown section [{key}]")
            base.setdefault(key, {}).update(value)
        else:
            base[key] = value


def _coerce(default: Any, value: Any, name: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value
