"""Embed listing photos with the exported CNN on ONNX Runtime (no torch).

``Embedder.load()`` opens the default model shipped in the wheel (``authvision.weights``); a path opens
an exported or retrained model. The ONNX file's sha256 is checked against the model manifest before
ONNX Runtime sees a byte of it.

Signed models: with ``signing_key=`` (or the environment variable ``AUTHVISION_CHECKER_KEY``), a model
directory given by path must hold a ``manifest.sig`` made with one of the keys
(:mod:`authvision.signing`), checked on the manifest's raw bytes before they are parsed. The shipped
default model is part of the installed package and is trusted as the package's code is.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from PIL import Image

from .errors import ModelLoadError
from .imageio import DecodedImage, ImageSource, decode_image
from .manifest import MODEL_MANIFEST, ModelManifest, read_manifest_bytes, read_model_file
from .preprocess import pixels_batch, pixels_to_tensor
from .signing import KeyArg, note_unauthenticated, resolve_keys, verify_signature

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32


class ModelOutput(NamedTuple):
    """What the model gives per photo: an L2-normalised embedding, and a fake logit if it has a head."""

    vectors: np.ndarray  # float32 (n, dim)
    fake_logits: np.ndarray | None  # float32 (n,), None for models without a head


def default_model_dir() -> Path:
    """Directory of the default model shipped inside the package."""
    return Path(str(importlib.resources.files("authvision.weights")))


def available_cpus() -> int:
    """CPUs this process may run on (affinity- and container-aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _resolve(path: str | os.PathLike[str] | None, precision: str, signing_key: KeyArg = None) -> tuple[Path, ModelManifest, str]:
    """(model directory, manifest, precision) for a directory, an .onnx file or the default.

    A directory given by path is checked against its signature when there are keys (``signing_key``
    or the environment), before its manifest is parsed.
    """
    if path is None:
        directory = default_model_dir()
    else:
        candidate = Path(path)
        if not candidate.exists():
            raise ModelLoadError(f"model path {candidate} does not exist")
        directory = candidate if candidate.is_dir() else candidate.parent
    if not (directory / MODEL_MANIFEST).is_file():
        raise ModelLoadError(
            f"no {MODEL_MANIFEST} in {directory}: authvision loads models written by "
            "`authvision export` / `authvision train`, which record checksums and the input spec"
        )
    raw = read_manifest_bytes(directory)
    if path is not None and directory.resolve() != default_model_dir().resolve():  # the default, named by its path
        keys = resolve_keys(signing_key)
        if keys:
            verify_signature(directory, raw, keys, what="model directory")
        else:
            note_unauthenticated("a model directory", directory)
    manifest = ModelManifest.from_bytes(raw, where=directory / MODEL_MANIFEST)
    if path is not None and Path(path).is_file():
        by_name = {f.filename: p for p, f in manifest.files.items()}
        if Path(path).name not in by_name:
            raise ModelLoadError(f"{Path(path).name} is not listed in {directory / MODEL_MANIFEST}")
        precision = by_name[Path(path).name]
    return directory, manifest, precision


class Embedder:
    """A CNN that turns listing photos into L2-normalised float32 vectors, on ONNX Runtime."""

    def __init__(self, session: object, manifest: ModelManifest, precision: str, model_sha256: str, source: Path):
        self._session = session
        self._outputs = [manifest.output_name] + ([manifest.score_output_name] if manifest.score_output_name else [])
        self.manifest = manifest
        self.precision = precision
        self.model_sha256 = model_sha256
        self.source = source

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        precision: Literal["int8", "fp32"] = "int8",
        num_threads: int | None = None,
        signing_key: KeyArg = None,
    ) -> Embedder:
        """Open a model: the shipped default (``path=None``), a model directory, or one of its .onnx files.

        Args:
            path: model directory or ONNX file with ``manifest.json`` beside it; None for the default.
            precision: which file of the directory to run; ignored when ``path`` names a file.
            num_threads: ONNX Runtime intra-op threads; default: every CPU this process may use.
            signing_key: key (or list of keys, any of which may have signed) the directory's
                ``manifest.sig`` must verify with; default: ``AUTHVISION_CHECKER_KEY`` if set. Without
                any, an unsigned directory loads (logged once per process). Not used for the default.

        Raises:
            SignatureError: a key is set and the directory is unsigned or signed otherwise.
            ModelLoadError: missing, corrupt or inconsistent files.
        """
        if precision not in ("int8", "fp32"):
            raise ValueError(f"precision must be 'int8' or 'fp32', got {precision!r}")
        directory, manifest, resolved = _resolve(path, precision, signing_key)
        precision = "fp32" if resolved == "fp32" else "int8"
        model_file = manifest.model_file(precision)
        data = read_model_file(directory / model_file.filename, model_file.sha256)
        return cls.from_verified(manifest, precision, data, directory / model_file.filename, num_threads=num_threads)

    @classmethod
    def from_verified(
        cls, manifest: ModelManifest, precision: str, data: bytes, source: Path, *, num_threads: int | None = None
    ) -> Embedder:
        """A model from ``data``: the ONNX bytes of ``manifest``'s ``precision`` file, which the caller has
        read once and checked against the manifest's sha256 (:meth:`load` does; a checker's embedded model
        is checked against the checker's signed manifest), so ONNX Runtime parses only checked bytes."""
        import onnxruntime as ort

        model_file = manifest.model_file(precision)
        directory = source.parent
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or available_cpus()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(f"ONNX Runtime could not load {directory / model_file.filename}: {exc}") from exc
        inputs = [i.name for i in session.get_inputs()]
        if manifest.input_name not in inputs:
            raise ModelLoadError(f"model input {manifest.input_name!r} not in the ONNX graph inputs {inputs}")
        outputs = [o.name for o in session.get_outputs()]
        for wanted in (manifest.output_name, manifest.score_output_name):
            if wanted is not None and wanted not in outputs:
                raise ModelLoadError(f"model output {wanted!r} not in the ONNX graph outputs {outputs}")
        log.debug("loaded %s (%s, sha256 %s)", model_file.filename, precision, model_file.sha256[:12])
        return cls(session, manifest, precision, model_file.sha256, source)

    @property
    def dim(self) -> int:
        return self.manifest.embedding_dim

    @property
    def min_side(self) -> int:
        """Shorter side a decoder must keep (JPEG draft scaling may stop here)."""
        return self.manifest.preprocess.resize_size

    def decode(self, source: ImageSource) -> DecodedImage:
        """Decode one input at the size this model needs (JPEG DCT scaling where it is free)."""
        return decode_image(source, min_side=self.min_side)

    def embed(self, images: ImageSource | Iterable[ImageSource], *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Embed photos; raises :class:`~authvision.errors.ImageDecodeError` on the first bad one.

        Returns:
            float32 array (n, dim), rows L2-normalised.
        """
        if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray)):
            images = [images]
        decoded = [self.decode(source).image for source in images]
        return self.embed_decoded(decoded, batch_size=batch_size)

    def embed_decoded(self, images: Sequence[Image.Image], *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Embed already decoded RGB images."""
        return self.run_decoded(images, batch_size=batch_size).vectors

    def run_decoded(self, images: Sequence[Image.Image], *, batch_size: int = DEFAULT_BATCH_SIZE) -> ModelOutput:
        """Embeddings, and fake logits when the model has a head, of already decoded RGB images."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        vectors = np.empty((len(images), self.dim), dtype=np.float32)
        logits = np.empty(len(images), dtype=np.float32) if self.has_fake_head else None
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            out = self.run_tensors(pixels_batch(chunk, self.manifest.preprocess))
            vectors[start : start + len(chunk)] = out.vectors
            if logits is not None:
                logits[start : start + len(chunk)] = out.fake_logits
        return ModelOutput(vectors, logits)

    def embed_tensors(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a prepared batch (see :meth:`run_tensors`)."""
        return self.run_tensors(batch).vectors

    def run_tensors(self, batch: np.ndarray) -> ModelOutput:
        """Embeddings (and fake logits, for a model with a head) of a prepared batch.

        ``batch``: uint8 (n, S, S, 3) crops (``preprocess.pixels_batch``, what checker and scanner
        prepare), normalised here in one table lookup for the whole batch, or normalised float32
        (n, 3, S, S) tensors (``preprocess.preprocess_batch``). Normalising inside the ONNX graph
        instead was measured and did not pay: see benchmarks/scan_throughput.py.
        """
        if len(batch) == 0:
            return ModelOutput(np.empty((0, self.dim), dtype=np.float32),
                               np.empty(0, dtype=np.float32) if self.has_fake_head else None)
        feed = self._model_input(batch)
        outputs = self._session.run(self._outputs, {self.manifest.input_name: feed})  # type: ignore[attr-defined]
        vectors = np.asarray(outputs[0], dtype=np.float32)
        # The graph normalises already; int8 rounding leaves norms a hair off 1, so normalise again.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, np.float32(1e-12))
        logits = np.asarray(outputs[1], dtype=np.float32).reshape(-1) if self.has_fake_head else None
        return ModelOutput(vectors, logits)

    def _model_input(self, batch: np.ndarray) -> np.ndarray:
        config = self.manifest.preprocess
        side = config.input_size
        if batch.dtype == np.uint8 and batch.shape[1:] == (side, side, 3):
            return pixels_to_tensor(batch, config)
        if batch.dtype == np.float32 and batch.shape[1:] == (3, side, side):
            return batch
        raise ValueError(
            f"expected uint8 (n, {side}, {side}, 3) pixels or float32 (n, 3, {side}, {side}) tensors, "
            f"got {batch.dtype} {batch.shape}"
        )

    @property
    def has_fake_head(self) -> bool:
        """Whether the model also scores each photo (a fake logit from a trained classification head)."""
        return self.manifest.score_output_name is not None

    def __repr__(self) -> str:
        return f"Embedder({self.manifest.name!r}, precision={self.precision!r}, dim={self.dim}, source={str(self.source)!r})"

