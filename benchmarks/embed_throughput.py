"""Embedding throughput: torch eager vs ONNX Runtime fp32 vs ONNX Runtime int8, and JPEG decode speed.

Targets: int8 ≥ 1.9× fp32 and ≥ 10× torch eager at each batch size (1, 8, 32), all cores.

Inputs are real photos (``authvision.sample_photos``) made into typical marketplace photos: centre square
crop, 800×800, JPEG quality 85. They are decoded and preprocessed once (as ``Embedder.embed`` does:
``decode_image(min_side=256)`` then the manifest's preprocessing), so the model cells time the network
alone, on identical tensors. Each cell is measured in ``--rounds`` rounds interleaved across engines (so a
burst of load from another process hits every engine alike), each round after a warm-up and lasting at
least ``--seconds / --rounds``; the reported figure is the median over rounds of images / second, where a
round's figure is batch size / median batch time.

Decode: one 800 px JPEG decoded in full vs with ``min_side=256`` (JPEG DCT draft scaling), single thread.

    python benchmarks/embed_throughput.py                      # ~2-3 min on 2 cores
    python benchmarks/embed_throughput.py --quick --json bench.json

torch is optional (the ``[train]`` extra); without it the torch column is skipped and says so.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import onnxruntime  # noqa: E402

from authvision.embedder import Embedder, available_cpus  # noqa: E402
from authvision.imageio import decode_image  # noqa: E402
from authvision.preprocess import preprocess_batch  # noqa: E402
from authvision.sample_photos import ALL_PHOTOS, sample_photo  # noqa: E402

TARGET_INT8_VS_FP32 = 1.9
TARGET_INT8_VS_TORCH = 10.0
PHOTO_SIDE = 800
JPEG_QUALITY = 85
# Photographs (not charts or textures) make the typical listing photo.
DECODE_PHOTOS = ("coffee", "chelsea", "rocket", "astronaut", "grace_hopper", "stereo_motorcycle_left")


# -- data ---------------------------------------------------------------------------------------------


def marketplace_jpeg(name: str) -> bytes:
    """A sample photo as a square 800 px JPEG, quality 85."""
    image = Image.fromarray(sample_photo(name))
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def input_tensors(embedder: Embedder, names: tuple[str, ...], count: int) -> np.ndarray:
    """``count`` preprocessed tensors cycling over the photos, decoded as Embedder.embed decodes them."""
    decoded = [embedder.decode(marketplace_jpeg(name)).image for name in names]
    tensors = preprocess_batch(decoded, embedder.manifest.preprocess)
    return np.ascontiguousarray(tensors[np.arange(count) % len(tensors)])


# -- timing -------------------------------------------------------------------------------------------


def time_cell(run: Callable[[int], object], batch_size: int, pool: int, seconds: float, warmup: int) -> dict:
    """Run batches until ``seconds`` have passed (at least 3 batches); images/s from the median batch time."""
    starts = list(range(0, pool - batch_size + 1, batch_size)) or [0]
    for i in range(warmup):
        run(starts[i % len(starts)])
    times: list[float] = []
    begin = time.perf_counter()
    i = 0
    while len(times) < 3 or time.perf_counter() - begin < seconds:
        t0 = time.perf_counter()
        run(starts[i % len(starts)])
        times.append(time.perf_counter() - t0)
        i += 1
    return {"batches": len(times), "images": len(times) * batch_size, "median_batch_s": statistics.median(times),
            "images_per_s": batch_size / statistics.median(times)}


def make_runners(tensors: np.ndarray, threads: int) -> tuple[dict[str, Callable[[int, int], object]], dict]:
    """One callable (start, batch) per engine; notes on anything skipped."""
    notes: dict = {}
    runners: dict[str, Callable[[int, int], object]] = {}
    try:
        import torch

        from authvision_train.backbone import EmbeddingNet, lite0_pretrained

        torch.set_num_threads(threads)
        net = EmbeddingNet(lite0_pretrained()).eval()
        torch_input = torch.from_numpy(tensors)

        def run_torch(start: int, batch: int) -> object:
            with torch.inference_mode():
                return net(torch_input[start : start + batch])

        runners["torch"] = run_torch
        notes["torch_version"] = torch.__version__
        notes["torch_threads"] = torch.get_num_threads()
    except ImportError as exc:
        notes["torch_skipped"] = f"torch eager skipped: {exc} (install the [train] extra)"
    for precision in ("fp32", "int8"):
        embedder = Embedder.load(precision=precision, num_threads=threads)

        def run_ort(start: int, batch: int, embedder: Embedder = embedder) -> object:
            return embedder.embed_tensors(tensors[start : start + batch])

        runners[f"ort_{precision}"] = run_ort
    return runners, notes


def parity(runners: dict, tensors: np.ndarray, distinct: int) -> dict[str, float]:
    """Cosine between engines on each distinct photo, so the timed engines provably compute the same thing."""
    out = {name: np.asarray(run(0, distinct), dtype=np.float32) for name, run in runners.items()}
    result = {}
    for a, b in (("ort_int8", "ort_fp32"), ("torch", "ort_fp32")):
        if a in out:
            cosine = np.sum(out[a] * out[b], axis=1)
            key = f"{a.removeprefix('ort_')}_vs_{b.removeprefix('ort_')}"
            result[f"{key}_min_cosine"] = float(cosine.min())
            result[f"{key}_median_cosine"] = float(np.median(cosine))
    return result


def bench_models(
    tensors: np.ndarray, distinct: int, batch_sizes: list[int], threads: int, seconds: float, rounds: int, warmup: int
) -> dict:
    runners, notes = make_runners(tensors, threads)
    rounds_out: dict[str, dict[int, list[dict]]] = {name: {b: [] for b in batch_sizes} for name in runners}
    for r in range(rounds):
        for batch in batch_sizes:
            for name, run in runners.items():
                cell = time_cell(lambda s, run=run, batch=batch: run(s, batch), batch, len(tensors), seconds / rounds, warmup)
                rounds_out[name][batch].append(cell)
                print(f"  round {r + 1}/{rounds} batch {batch:>2} {name:<9} {cell['images_per_s']:8.1f} img/s", file=sys.stderr)
    cells = {
        name: {b: statistics.median(c["images_per_s"] for c in per_batch[b]) for b in batch_sizes}
        for name, per_batch in rounds_out.items()
    }
    ratios = {}
    for b in batch_sizes:
        ratio = {"int8_vs_fp32": cells["ort_int8"][b] / cells["ort_fp32"][b]}
        if "torch" in cells:
            ratio["int8_vs_torch"] = cells["ort_int8"][b] / cells["torch"][b]
        ratios[b] = ratio
    return {"images_per_s": cells, "ratios": ratios, "rounds": rounds_out, "parity": parity(runners, tensors, distinct), **notes}


def bench_decode(seconds: float) -> dict:
    """Single-thread decode of 800 px JPEGs: full vs JPEG draft for min_side=256."""
    jpegs = [marketplace_jpeg(name) for name in DECODE_PHOTOS]
    out: dict = {"photo": f"{PHOTO_SIDE}x{PHOTO_SIDE} JPEG q{JPEG_QUALITY}",
                 "mean_bytes": int(np.mean([len(j) for j in jpegs]))}
    for label, min_side in (("full", None), ("min_side_256", 256)):
        size = decode_image(jpegs[0], min_side=min_side).image.size
        times = []
        begin = time.perf_counter()
        i = 0
        while len(times) < 20 or time.perf_counter() - begin < seconds:
            t0 = time.perf_counter()
            decode_image(jpegs[i % len(jpegs)], min_side=min_side)
            times.append(time.perf_counter() - t0)
            i += 1
        out[label] = {"decoded_size": list(size), "images_per_s": 1.0 / statistics.median(times), "count": len(times)}
    out["ratio"] = out["min_side_256"]["images_per_s"] / out["full"]["images_per_s"]
    return out


# -- report -------------------------------------------------------------------------------------------


def machine_info(threads: int) -> dict:
    cpu_model, flags = platform.processor() or "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu_model:
                cpu_model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "available_cpus": available_cpus(),
        "threads_used": threads,
        "isa": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"}),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "pillow": Image.__version__,
    }


def verdict(value: float, target: float) -> str:
    return "PASS" if value >= target else "FAIL"


def markdown(result: dict) -> str:
    models, decode, info = result["models"], result["decode"], result["machine"]
    cells, has_torch = models["images_per_s"], "torch" in models["images_per_s"]
    lines = [
        f"Embedding throughput, images/s ({info['threads_used']} threads, {info['cpu_model']}, "
        f"onnxruntime {info['onnxruntime']}, torch {models.get('torch_version', 'not installed')})",
        "",
        "| batch | torch eager | ORT fp32 | ORT int8 | int8 / fp32 (≥ 1.9) | int8 / torch (≥ 10) |",
        "|---:|---:|---:|---:|---|---|",
    ]
    for b in result["batch_sizes"]:
        ratio = models["ratios"][b]
        torch_cell = f"{cells['torch'][b]:.1f}" if has_torch else "skipped"
        vs_torch = (f"{ratio['int8_vs_torch']:.2f}× {verdict(ratio['int8_vs_torch'], TARGET_INT8_VS_TORCH)}"
                    if has_torch else "n/a")
        lines.append(
            f"| {b} | {torch_cell} | {cells['ort_fp32'][b]:.1f} | {cells['ort_int8'][b]:.1f} | "
            f"{ratio['int8_vs_fp32']:.2f}× {verdict(ratio['int8_vs_fp32'], TARGET_INT8_VS_FP32)} | {vs_torch} |"
        )
    if not has_torch:
        lines.append(f"\n{models['torch_skipped']}")
    parity_text = ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in models["parity"].items())
    lines += [
        f"\nParity on the {result['settings']['distinct_photos']} distinct timed photos: {parity_text}",
        "",
        f"JPEG decode, single thread, {decode['photo']} (~{decode['mean_bytes'] // 1024} KiB):",
        "",
        "| decode | output size | images/s |",
        "|---|---|---:|",
        f"| full | {decode['full']['decoded_size'][0]}×{decode['full']['decoded_size'][1]} | {decode['full']['images_per_s']:.1f} |",
        f"| min_side=256 (DCT draft) | {decode['min_side_256']['decoded_size'][0]}×{decode['min_side_256']['decoded_size'][1]} "
        f"| {decode['min_side_256']['images_per_s']:.1f} |",
        f"\nDraft / full: {decode['ratio']:.2f}×",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter cells (≥ 1 s each, 2 rounds) for a smoke run")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: every CPU available)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=None, help="timed seconds per cell, over all rounds (default 3)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per cell (default 3)")
    args = parser.parse_args(argv)
    threads = args.threads or available_cpus()
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 3.0)
    rounds = args.rounds or (2 if args.quick else 3)
    warmup = 2 if args.quick else 3
    if min(args.batch_sizes) < 1:
        parser.error("batch sizes must be ≥ 1")

    info = machine_info(threads)
    pool = max(64, 2 * max(args.batch_sizes))
    names = ALL_PHOTOS
    print(f"preparing {pool} tensors from {len(names)} photos as {PHOTO_SIDE}px JPEG q{JPEG_QUALITY} ...", file=sys.stderr)
    tensors = input_tensors(Embedder.load(), names, pool)
    began = time.time()
    models = bench_models(tensors, len(names), args.batch_sizes, threads, seconds, rounds, warmup)
    decode = bench_decode(seconds)
    result = {
        "machine": info,
        "batch_sizes": args.batch_sizes,
        "settings": {"seconds_per_cell": seconds, "rounds": rounds, "warmup_batches": warmup, "pool": pool,
                     "distinct_photos": len(names), "quick": args.quick},
        "targets": {"int8_vs_fp32": TARGET_INT8_VS_FP32, "int8_vs_torch": TARGET_INT8_VS_TORCH},
        "models": models,
        "decode": decode,
        "wall_s": time.time() - began,
    }
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
