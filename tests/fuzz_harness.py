"""Fuzz targets for the image decoder and the checker loader (issue 16 point 3), run in a child process.

Two targets, one oracle each:

* ``decode``: mutated JPEG / PNG / GIF / WebP / TIFF / BMP encodings of real photos
  (:func:`authvision.sample_photos.sample_photo`) into :func:`authvision.imageio.decode_image`: it must
  return an RGB image or raise :class:`~authvision.errors.ImageDecodeError`, nothing else.
* ``checker``: one file of a small saved checker mutated (and, half the time, the manifest's sha256
  rewritten to match, as someone without the signing key could), then
  :meth:`AuthenticityChecker.load` and one check: only :class:`~authvision.errors.AuthvisionError`
  subclasses may escape.

Every input gets a time limit (``SIGALRM``; a hang becomes a failure naming the input) and the process
runs under ``RLIMIT_AS`` (bounded memory: a runaway allocation is a ``MemoryError``, reported as a
failure). A crash of the interpreter (a segfault in a C parser) is seen by the parent as the child's
exit status; the input being tried is always in ``<workdir>/current.bin``.

Engines: hypothesis (seeded, in rounds of a few hundred examples until the time budget is spent; the
default, used by tests/test_fuzz.py), or atheris (coverage-guided, for longer runs by hand)::

    python tests/fuzz_harness.py decode --seconds 600 --workdir /tmp/fuzz            # hypothesis
    python tests/fuzz_harness.py checker --engine atheris --seconds 600 --workdir /tmp/fuzz

The child prints one JSON line: ``{"target", "engine", "executions", "outcomes", "failures": [...]}``;
failing inputs are written to ``<workdir>/failures/``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import json
import os
import random
import resource
import shutil
import signal
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

INPUT_SECONDS = 10.0
"""Time limit of one input (a legitimate decode of a mutated small photo takes milliseconds)."""
MEMORY_LIMIT = 3 << 30
"""Address-space limit of the fuzzing process (ONNX Runtime and FAISS map ~0.7 GiB on their own)."""
DECODE_MAX_PIXELS = 4_000_000
SIDE = 96  # seed photos are small so that one execution takes about a millisecond

FORMATS = {  # Pillow format → save options of the seed encodings
    "JPEG": [{"quality": 85}, {"quality": 70, "progressive": True}, {"quality": 90, "subsampling": 0}],
    "PNG": [{}, {"optimize": True}],
    "GIF": [{}],
    "WEBP": [{"quality": 80}, {"lossless": True}],
    "TIFF": [{}, {"compression": "tiff_deflate"}, {"compression": "packbits"}],
    "BMP": [{}],
}
PHOTOS = ("chelsea", "coffee", "rocket", "camera")


class InputTimeout(Exception):
    """An input ran past :data:`INPUT_SECONDS`."""


class Failure(Exception):
    """An input made the target break its contract."""


# ------------------------------------------------------------------------------------------- seeds


def decode_seeds() -> list[bytes]:
    """Real photos, small, in every format the decoder allows (several encoder settings each)."""
    from PIL import Image

    from authvision.sample_photos import sample_photo

    seeds = []
    for name in PHOTOS:
        image = Image.fromarray(sample_photo(name))
        image.thumbnail((SIDE, SIDE))
        variants = [image, image.convert("L"), image.convert("RGBA"), image.convert("P")]
        for fmt, options in FORMATS.items():
            for i, params in enumerate(options):
                source = variants[i % len(variants)]
                if fmt == "JPEG" and source.mode in ("RGBA", "P"):
                    source = source.convert("RGB")
                buffer = io.BytesIO()
                source.save(buffer, fmt, **params)
                seeds.append(buffer.getvalue())
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(sample_photo("chelsea")).resize((SIDE, SIDE * 3 // 4)).save(buffer, "JPEG", exif=exif.tobytes())
    seeds.append(buffer.getvalue())
    frames = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 255, 0))]
    for fmt in ("GIF", "WEBP", "PNG"):
        buffer = io.BytesIO()
        frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
        seeds.append(buffer.getvalue())
    return seeds


def build_checker(directory: Path) -> None:
    """A small saved checker: 3 genuine and 2 fake references, evidence files and a calibration."""
    from PIL import Image

    import authvision as av
    from authvision.sample_photos import sample_photo

    checker = av.AuthenticityChecker(av.Embedder.load(num_threads=1))
    for product, name in (("mug", "coffee"), ("rocket", "rocket"), ("cat", "chelsea")):
        image = Image.fromarray(sample_photo(name))
        image.thumbnail((160, 160))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        checker.add_references([buffer.getvalue()], "genuine", product=product, brand="acme")
        if product != "cat":
            checker.add_references([image.rotate(180)], "fake", product=product, brand="acme")
    checker.save(directory, signing_key=b"fuzz")


# ---------------------------------------------------------------------------------------- mutations

INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFE, 0x10, 0x40)
INTERESTING_WIDE = (b"\x00\x00", b"\xff\xff", b"\x7f\xff", b"\x80\x00", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff",
                    b"\x00\x01\x00\x00", b"\x40\x00\x00\x00")


def mutate(data: bytes, rng: random.Random, count: int) -> bytes:
    """``count`` structure-blind mutations of ``data`` (the usual byte-level fuzzing operators), biased to the header."""
    buf = bytearray(data)
    for _ in range(count):
        if not buf:
            buf.extend(rng.randbytes(rng.randint(1, 16)))
            continue
        # Half the mutations hit the first 512 bytes, where format headers, chunk sizes and dimensions live.
        end = min(len(buf), 512) if rng.random() < 0.5 else len(buf)
        at = rng.randrange(end)
        op = rng.randrange(9)
        if op == 0:
            buf[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[at] = rng.choice(INTERESTING)
        elif op == 2:
            wide = rng.choice(INTERESTING_WIDE)
            buf[at : at + len(wide)] = wide
        elif op == 3:
            buf[at:at] = rng.randbytes(rng.randint(1, 32))
        elif op == 4:
            del buf[at : at + rng.randint(1, 64)]
        elif op == 5:
            del buf[rng.randint(at, len(buf)) :]  # truncate
        elif op == 6:
            length = rng.randint(1, 128)
            src = rng.randrange(len(buf))
            buf[at:at] = buf[src : src + length]  # duplicate a chunk
        elif op == 7:
            buf[at] = (buf[at] + rng.choice((1, -1, 16, -16))) % 256
        else:
            length = rng.randint(1, 32)
            buf[at : at + length] = rng.randbytes(length)
    return bytes(buf)


JSON_REPLACEMENTS: tuple[Any, ...] = (None, [], {}, "", "x", -1, 0, 2**63, 1e308, float("nan"), True, [None], {"": None}, "genuine")


def _replacement(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(JSON_REPLACEMENTS))  # a fresh object: a shared one could end up inside itself


def _containers(node: Any) -> Iterator[Any]:
    if isinstance(node, (dict, list)):
        yield node
        for child in node.values() if isinstance(node, dict) else node:
            yield from _containers(child)


def mutate_json(data: bytes, rng: random.Random, count: int) -> bytes:
    """Type confusion in a JSON document: values replaced by others of any type, keys deleted or added."""
    try:
        document = json.loads(data)
    except ValueError:
        return mutate(data, rng, count)
    for _ in range(count):
        containers = list(_containers(document))
        if not containers or rng.random() < 0.05:
            document = _replacement(rng)
            continue
        node = rng.choice(containers)
        if isinstance(node, dict) and node:
            key = rng.choice(sorted(node))
            if rng.random() < 0.2:
                del node[key]
            else:
                node[key] = _replacement(rng)
        elif isinstance(node, list) and node:
            node[rng.randrange(len(node))] = _replacement(rng)
        elif isinstance(node, dict):
            node["extra"] = _replacement(rng)
    return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"


# ------------------------------------------------------------------------------------------ targets


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expired(signum: int, frame: Any) -> None:
        raise InputTimeout(f"input ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class DecodeTarget:
    name = "decode"

    def __init__(self, workdir: Path) -> None:
        self.seeds = decode_seeds()

    def __call__(self, data: bytes) -> str:
        from authvision.errors import ImageDecodeError
        from authvision.imageio import decode_image

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # as under python -W error: a warning must not escape either
                decoded = decode_image(data, max_pixels=DECODE_MAX_PIXELS, min_side=None if data[:1] != b"\xff" else 64)
        except ImageDecodeError:
            return "ImageDecodeError"
        if decoded.image.mode != "RGB" or min(decoded.image.size) < 1:
            raise Failure(f"decode_image returned mode {decoded.image.mode} size {decoded.image.size}")
        return "decoded"


class CheckerTarget:
    """A mutated file of a saved checker, loaded (without a key, the case the signature exists for) and used once."""

    name = "checker"

    def __init__(self, workdir: Path) -> None:
        from PIL import Image

        import authvision as av
        from authvision.sample_photos import sample_photo

        self.original = workdir / "checker-original"
        if not (self.original / "manifest.json").is_file():
            shutil.rmtree(self.original, ignore_errors=True)
            build_checker(self.original)
        self.files = sorted(str(p.relative_to(self.original)) for p in self.original.rglob("*") if p.is_file())
        self.copy = workdir / "checker-mutated"
        self.embedder = av.Embedder.load(num_threads=1)
        image = Image.fromarray(sample_photo("coffee"))
        image.thumbnail((160, 160))
        self.probe = image
        # An input: byte 0 picks the file, byte 1 whether the manifest's sha256 is rewritten to match, the rest is the file.
        self.seeds = [bytes([i, 1]) + (self.original / name).read_bytes() for i, name in enumerate(self.files)]

    def mutate(self, data: bytes, rng: random.Random, count: int) -> bytes:
        """Byte mutations, or for a JSON file (checker.json, manifest.json) type confusion half the time."""
        if self.files[data[0] % len(self.files)].endswith(".json") and rng.random() < 0.5:
            return data[:2] + mutate_json(data[2:], rng, count)
        return mutate(data, rng, count)

    def __call__(self, data: bytes) -> str:
        import authvision as av
        from authvision.errors import AuthvisionError

        if len(data) < 2:
            return "too short"
        name, rewrite, body = self.files[data[0] % len(self.files)], data[1] % 2 == 1, data[2:]
        shutil.rmtree(self.copy, ignore_errors=True)
        shutil.copytree(self.original, self.copy)
        (self.copy / name).write_bytes(body)
        if rewrite and name != "manifest.json":
            manifest = json.loads((self.copy / "manifest.json").read_bytes())
            manifest["files"][name] = {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
            (self.copy / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        try:
            # Signed with b"fuzz": with the key every mutation must be refused before any parser.
            av.AuthenticityChecker.load(self.copy, embedder=self.embedder, signing_key=b"fuzz")
        except AuthvisionError:
            pass
        else:
            if body != (self.original / name).read_bytes():
                raise Failure(f"a checker with a mutated {name} loaded with the signing key")
        try:
            checker = av.AuthenticityChecker.load(self.copy, embedder=self.embedder)
        except AuthvisionError as exc:
            return type(exc).__name__
        try:
            checker.check(self.probe)
            checker.index.search(self.embedder.embed_decoded([self.probe]), k=3)
        except AuthvisionError as exc:
            return "loaded, then " + type(exc).__name__
        return "loaded"


TARGETS: dict[str, Callable[[Path], Any]] = {"decode": DecodeTarget, "checker": CheckerTarget}


# -------------------------------------------------------------------------------------------- engines


class Runner:
    def __init__(self, target: Any, workdir: Path) -> None:
        self.target = target
        self.workdir = workdir
        self.current = workdir / "current.bin"
        self.failures_dir = workdir / "failures"
        self.executions = 0
        self.outcomes: Counter[str] = Counter()
        self.failures: list[dict[str, Any]] = []
        self.kinds: set[tuple[str, str]] = set()
        self.slowest = 0.0

    def run_one(self, data: bytes) -> None:
        self.current.write_bytes(data)  # what the input was, should the process die on it
        start = time.perf_counter()
        try:
            with time_limit(INPUT_SECONDS):
                outcome = self.target(data)
        except Exception as exc:  # noqa: BLE001 - the contract: anything else escaping is a finding
            self.record(data, exc)
            outcome = f"FAILURE {type(exc).__name__}"
        self.slowest = max(self.slowest, time.perf_counter() - start)
        self.executions += 1
        self.outcomes[outcome] += 1

    def record(self, data: bytes, exc: BaseException) -> None:
        digest = hashlib.sha256(data).hexdigest()[:16]
        self.failures_dir.mkdir(parents=True, exist_ok=True)
        path = self.failures_dir / f"{self.target.name}-{digest}.bin"
        path.write_bytes(data)
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
        kind = (type(exc).__name__, where)
        if kind in self.kinds:  # one report per kind of failure (the files of all of them are kept)
            return
        self.kinds.add(kind)
        self.failures.append({"file": str(path), "error": f"{type(exc).__name__}: {exc}"[:500], "where": where,
                              "traceback": "".join(traceback.format_exception(exc))[-1500:]})

    def report(self, engine: str, seconds: float) -> dict[str, Any]:
        return {
            "target": self.target.name, "engine": engine, "executions": self.executions, "seconds": round(seconds, 1),
            "slowest_input_s": round(self.slowest, 3), "outcomes": dict(self.outcomes.most_common()), "failures": self.failures,
        }


def run_hypothesis(runner: Runner, seconds: float, seed: int) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    seeds = runner.target.seeds
    for seed_input in seeds:  # every seed unmutated first
        runner.run_one(seed_input)

    @settings(max_examples=200, deadline=None, database=None, derandomize=False, suppress_health_check=list(HealthCheck),
              phases=("generate",))
    @given(index=st.integers(0, len(seeds) - 1), count=st.integers(1, 12), mutation_seed=st.integers(0, 2**32 - 1))
    def example(index: int, count: int, mutation_seed: int) -> None:
        runner.run_one(mutator(seeds[index], random.Random(mutation_seed), count))

    mutator = getattr(runner.target, "mutate", mutate)

    deadline = time.monotonic() + seconds
    round_number = 0
    while time.monotonic() < deadline:
        hypothesis_seed(seed * 1_000_003 + round_number)(example)()
        round_number += 1


def run_atheris(runner: Runner, seconds: float, seed: int) -> None:
    """Coverage-guided (libFuzzer) over raw inputs, starting from the seeds; the Python code is instrumented."""
    import atheris

    corpus = runner.workdir / "atheris-corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(runner.target.seeds):
        (corpus / f"seed-{i:03d}").write_bytes(data)
    deadline = time.monotonic() + seconds
    start = time.monotonic()

    def one(data: bytes) -> None:
        if time.monotonic() > deadline:  # libFuzzer treats any exit as a crash: report, then leave at once
            sys.stdout.write(json.dumps(runner.report("atheris", time.monotonic() - start)) + "\n")
            sys.stdout.flush()
            os._exit(1 if runner.failures else 0)
        runner.run_one(data)

    max_len = max(65536, max(len(s) for s in runner.target.seeds) * 2)
    atheris.Setup([sys.argv[0], f"-seed={seed + 1}", "-rss_limit_mb=0", "-timeout=60", "-len_control=0", f"-max_len={max_len}", str(corpus)], one)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=("hypothesis", "atheris"), default="hypothesis")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--replay", type=Path, nargs="*", default=None, help="run these input files once each instead of fuzzing")
    args = parser.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    args.workdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    if args.engine == "atheris" and args.replay is None:
        import atheris

        with atheris.instrument_imports(include=["PIL", "authvision"]):  # coverage of the Python parsers (C code is not)
            import PIL.Image  # noqa: F401
            from PIL import GifImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin  # noqa: F401

            import authvision.checker_store  # noqa: F401
            import authvision.imageio  # noqa: F401
    runner = Runner(TARGETS[args.target](args.workdir), args.workdir)
    if args.replay is not None:
        for path in args.replay:
            runner.run_one(path.read_bytes())
        engine = "replay"
    elif args.engine == "atheris":
        engine = "atheris"
        run_atheris(runner, args.seconds, args.seed)
    else:
        engine = "hypothesis"
        run_hypothesis(runner, args.seconds, args.seed)
    sys.stdout.write(json.dumps(runner.report(engine, time.monotonic() - start)) + "\n")
    sys.stdout.flush()
    return 1 if runner.failures else 0


if __name__ == "__main__":
    sys.exit(main())
