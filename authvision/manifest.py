"""The model manifest: one source of truth for a model's files, input spec and provenance.

Every model directory holds ``manifest.json`` beside its ONNX files. The torch training path, the ONNX
export and ONNX Runtime inference all build their preprocessing from :class:`PreprocessConfig` read
here, so they cannot drift apart (the way timm's ``PretrainedCfg`` drives ``resolve_data_config``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ChecksumMismatchError, ModelLoadError
from .signing import SIGNATURE_FILE, KeyArg, resolve_keys, signature_line

MODEL_MANIFEST = "manifest.json"
"""The model manifest's file name in a model directory (:class:`ModelManifest`). Not a saved checker's or
index's manifest (:data:`authvision._storage.SAVE_MANIFEST`), which happens to share the file name."""
MANIFEST_VERSION = 1

Precision = Literal["int8", "fp32"]
Interpolation = Literal["bilinear", "bicubic"]


@dataclass(frozen=True)
class PreprocessConfig:
    """How a decoded RGB image becomes the model's input tensor.

    Resize so the shorter side is ``resize_size``, centre-crop ``input_size`` square, scale to [0, 1],
    then normalise with ``mean`` and ``std`` per channel. Output layout is CHW float32.
    """

    input_size: int = 224
    resize_size: int = 256
    interpolation: Interpolation = "bilinear"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        if self.input_size < 8 or self.resize_size < self.input_size:
            raise ValueError(
                f"need 8 <= input_size <= resize_size, got input_size={self.input_size}, "
                f"resize_size={self.resize_size}"
            )
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {self.interpolation!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values each, std > 0; got {self.mean}, {self.std}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        return cls(
            input_size=int(data["input_size"]),
            resize_size=int(data["resize_size"]),
            interpolation=data.get("interpolation", "bilinear"),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class ModelFile:
    """One ONNX file of a model, at one precision."""

    filename: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class ModelManifest:
    """What a model directory contains and how its files were made."""

    name: str
    embedding_dim: int
    pooling: str
    preprocess: PreprocessConfig
    files: dict[str, ModelFile]
    input_name: str = "pixels"
    output_name: str = "embedding"
    score_output_name: str | None = None  # per-photo logit that the photo shows a fake (a trained head)
    provenance: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)
    manifest_version: int = MANIFEST_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        try:
            version = int(data.get("manifest_version", 0))
            if version != MANIFEST_VERSION:
                raise ModelLoadError(
                    f"model manifest version {version} is not supported (this library reads "
                    f"version {MANIFEST_VERSION}); re-export the model with this authvision version"
                )
            return cls(
                name=str(data["name"]),
                embedding_dim=int(data["embedding_dim"]),
                pooling=str(data["pooling"]),
                preprocess=PreprocessConfig.from_dict(data["preprocess"]),
                files={k: ModelFile(**v) for k, v in data["files"].items()},
                input_name=str(data.get("input_name", "pixels")),
                output_name=str(data.get("output_name", "embedding")),
                score_output_name=data.get("score_output_name"),
                provenance=dict(data.get("provenance", {})),
                quantization=dict(data.get("quantization", {})),
                manifest_version=version,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelLoadError(f"model manifest is malformed: {exc!r}") from exc

    @classmethod
    def from_bytes(cls, data: bytes, *, where: object = MODEL_MANIFEST) -> ModelManifest:
        """Parse a manifest's bytes (``where`` names it in errors)."""
        try:
            parsed = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"cannot read model manifest {where}: {exc}") from exc
        if not isinstance(parsed, dict):
            raise ModelLoadError(f"model manifest {where} is not a JSON object")
        return cls.from_dict(parsed)

    @classmethod
    def read(cls, directory: str | os.PathLike[str]) -> ModelManifest:
        return cls.from_bytes(read_manifest_bytes(directory), where=Path(directory) / MODEL_MANIFEST)

    def write(self, directory: str | os.PathLike[str], *, signing_key: KeyArg = None) -> Path:
        """Write ``manifest.json``; with a key (or :data:`~authvision.signing.KEY_ENV_VAR`) also ``manifest.sig``."""
        path = Path(directory) / MODEL_MANIFEST
        data = (json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n").encode("utf-8")
        keys = resolve_keys(signing_key)
        signature = Path(directory) / SIGNATURE_FILE
        signature.unlink(missing_ok=True)  # a stale signature must not outlive the manifest it signed
        path.write_bytes(data)
        if keys:
            signature.write_bytes(signature_line(keys[0], data))
        return path

    def model_file(self, precision: str) -> ModelFile:
        try:
            found = self.files[precision]
        except KeyError:
            raise ModelLoadError(
                f"model {self.name!r} has no {precision!r} file; it has {sorted(self.files)}"
            ) from None
        name = str(found.filename)
        if name in ("", ".", "..") or Path(name).name != name or "\\" in name:  # a file beside the manifest, nothing else
            raise ModelLoadError(f"model {self.name!r}: {precision} file name {name!r} is not a plain file name")
        return found


_MAX_MANIFEST_BYTES = 1 << 20


def read_manifest_bytes(directory: str | os.PathLike[str]) -> bytes:
    """The raw bytes of a model directory's manifest (at most 1 MiB), read once."""
    path = Path(directory) / MODEL_MANIFEST
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError as exc:
        raise ModelLoadError(f"no {MODEL_MANIFEST} in model directory {Path(directory)}") from exc
    except OSError as exc:
        raise ModelLoadError(f"cannot read model manifest {path}: {exc}") from exc
    if len(data) > _MAX_MANIFEST_BYTES:
        raise ModelLoadError(f"model manifest {path} is larger than {_MAX_MANIFEST_BYTES} bytes")
    return data


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_model_file(path: str | os.PathLike[str], expected_sha256: str) -> bytes:
    """Read a model file and check its sha256 (from the model manifest) before anyone parses it."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc}") from exc
    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise ChecksumMismatchError(
            f"{path} has sha256 {actual[:16]}..., its manifest records {expected_sha256[:16]}...: "
            "the file is corrupt or was changed after export; re-export or reinstall it"
        )
    return data
