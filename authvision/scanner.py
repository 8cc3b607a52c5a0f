"""Scan listing photos at volume: a pipelined batch scanner and a journal that survives ``kill -9``.

:class:`Scanner` (or :meth:`AuthenticityChecker.scan`) turns a stream of inputs into one
:class:`ScanResult` per input, in input order. Inputs are consumed lazily, so an iterator of ten
million paths is never held in memory. Work is pipelined over threads, each stage bounded:

::

    inputs ─► batches of ``batch_size`` ─► decode pool (``decode_workers`` threads), per photo:
                 decode (JPEG draft to the model's size) → the centre crop's footprint resized
                 (not the whole photo), kept as uint8 pixels, and both perceptual hashes from that
                 decoded image (border trim, one thumbnail and one DCT for photo and mirror; the
                 index's hash version)
           ─► embed thread: normalise (one table lookup per slice) and ONNX Runtime, in slices of
                 ``model_batch_size``
           ─► evidence stage: one batched FAISS search + hash lookup (the screen), then every
                 evidence provider of the checker (``AuthenticityChecker.verdicts_for``, the same
                 path as ``check``) → verdicts. One thread, or ``evidence_workers`` threads when a
                 provider is heavy (region inspection of the listings matched to a product)
           ─► caller's thread: results in input order

Pillow, numpy, FAISS and ONNX Runtime release the GIL in their heavy loops, so the stages overlap
on separate cores; each takes it back between loops (a scan can lower the switch interval for
that, measured no faster now: :data:`DEFAULT_SWITCH_INTERVAL`). At most ``queue_size`` batches are
in flight, whatever the number of inputs (~150 KB of pixels per photo in flight), so memory stays flat.

Where a photo's CPU time goes (one 800 px JPEG listing, 62% of them padded, one thread per step,
2-core AMD EPYC, quiet; benchmarks/scan_throughput.py prints the table): decode 0.9-1.1 ms, resize
0.85 ms and crop 0.05 ms (since replaced by resizing only the crop's footprint: 0.75 against 0.96 ms
for the two on a 2-core Xeon, 8.7 against 9.1 ms of CPU per listing end to end), both perceptual
hashes 0.69 ms (hash version 2; version 1, kept for indexes saved before it, 1.54 ms), normalising
0.1 ms, the int8 model 2.4-2.5 ms, screen and evidence 0.2-0.3 ms. In the pipeline each step costs
~30% more than alone (four threads on two cores); end to end 6.7-6.9 ms of CPU per listing at
10k-100k inputs, 0.61-0.63 of the floor (decode + model); 0.63-0.67 on the Xeon after the change.

:func:`scan_to_jsonl` writes results through :class:`~authvision.journal.ResultJournal`, JSON lines
that a ``kill -9`` cannot tear or lose, and a resumed scan skips the inputs already written (see
:mod:`authvision.journal`). Rows are written in input order, so a resumed file is in input order
too; only a repair of lines damaged by a power loss (logged) can leave it unsorted. Input lists
from the command line are expanded by :func:`~authvision.datasets.expand_inputs`.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .datasets import expand_inputs
from .embedder import available_cpus
from .evidence.base import make_listings
from .hashing import HASH_BYTES
from .imageio import ImageSource
from .journal import ResultJournal, ResumeError, ScanSummary
from .prepare import error_message, is_single_input
from .verdict import Verdict

if TYPE_CHECKING:
    from .checker import AuthenticityChecker

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MODEL_BATCH_SIZE",
    "DEFAULT_SWITCH_INTERVAL",
    "ResultJournal",
    "ResumeError",
    "ScanResult",
    "ScanSummary",
    "Scanner",
    "default_threads",
    "expand_inputs",
    "scan_to_jsonl",
]

LOG = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32
"""Photos per pipeline batch: per decode task and per FAISS search."""

DEFAULT_MODEL_BATCH_SIZE = 8
"""Photos per ONNX Runtime call. The int8 model costs 2.0 ms of CPU per photo in batches of 1-8 and
2.6 ms in batches of 32 (1 thread, this machine): small batches keep the activations in cache."""

DEFAULT_SWITCH_INTERVAL: float | None = None
"""The interpreter's GIL switch interval while a scan runs: None leaves Python's (5 ms) as it is.

``Scanner(switch_interval=0.0005)`` lowers it while a scan runs (never raises it; put back when the
last concurrent scan ends): a thread that wants the GIL back after a C loop (the embed thread after
each ONNX Runtime call) then waits at most that long behind another thread's Python code. That gave
+25-30% listings/s when the decode workers ran more Python per photo (two pairs of 2,000-input
scans, load 4.8-5.5). Re-measured once hashing became cheaper (issue 15; 3,000-input scans, three
rounds alternating 0.5 ms / 5 ms / 2 ms on quiet cores, then two rounds beside a busy process):
0.5 ms was the slowest in every round, 191-239 against 199-271 listings/s at 5 ms quiet and 151-154
against 168-169 beside the busy process, for 0.3-0.6 ms more CPU per listing in switching; 2 ms was
within a few percent of 5 ms. Hence no change by default.
"""

_switch_lock = threading.Lock()
_switch_scans = 0
_switch_saved = 0.005

_NO_TENSORS = np.empty((0, 1, 1, 3), dtype=np.uint8)


def default_threads(cpus: int | None = None) -> tuple[int, int]:
    """(ONNX Runtime intra-op threads, decode workers) for a scan on ``cpus`` cores.

    Decoding + preparing (resize, crop, hashes) takes ~50% of a listing's CPU time, normalising and
    the int8 model ~45%, search ~5%. One ORT thread is the most CPU-efficient: re-measured after
    issue 15 (2,000-input scans, 2 cores at load 4.3-7.9), ORT 1 thread cost 12.7-13.4 ms CPU per
    listing, 2 threads 17.1-19.2 ms (its spinning pool) and no more listings/s; with one ORT thread,
    1, 2 or 3 decode workers were within the noise of each other (47-63 listings/s), and earlier
    measurements on idle cores found one decode worker the bottleneck. Hence a quarter of the cores
    (at least 1) for ORT and the rest, plus one, for decoding.
    """
    cpus = cpus or available_cpus()
    ort = max(1, cpus // 4)
    return ort, cpus - ort + 1


# -- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanResult:
    """The verdict for one scanned input, with where it came from and what produced it.

    Attributes:
        seq: position of the input in the input stream (0-based).
        id: the input's id: the path for path inputs, the given id for ``(id, source)`` pairs,
            ``"#<seq>"`` for anything else.
        path: the file path for path inputs, else None.
        verdict: the verdict (label ``"error"`` for an input that could not be read).
        timings: milliseconds per photo: ``decode`` (decode + preprocess + hashes, measured per
            photo), ``embed`` and ``search`` (the batch's time divided by the photos in it).
        model_sha256: sha256 of the ONNX model that embedded it.
        checker_version: :attr:`AuthenticityChecker.version` when the scan started.
    """

    seq: int
    id: str
    path: str | None
    verdict: Verdict
    timings: Mapping[str, float]
    model_sha256: str
    checker_version: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON row that :func:`scan_to_jsonl` writes: :meth:`Verdict.to_dict` with the input's
        seq, id and path, the neighbours as ``neighbor_ids`` / ``neighbor_similarities`` (rows stay
        compact), the timings and what produced it."""
        verdict = self.verdict.to_dict()
        neighbors = verdict.pop("neighbors")
        return {
            "seq": self.seq,
            "id": self.id,
            "path": self.path,
            **verdict,
            "neighbor_ids": [m["ref_id"] for m in neighbors],
            "neighbor_similarities": [m["similarity"] for m in neighbors],
            "timings": {name: round(float(ms), 3) for name, ms in self.timings.items()},
            "model_sha256": self.model_sha256,
            "checker_version": self.checker_version,
        }


@dataclass(frozen=True)
class _Item:
    seq: int
    id: str
    path: str | None
    source: Any


@dataclass
class _Batch:
    items: list[_Item]
    tensors: np.ndarray  # (n_ok, S, S, 3) uint8: the model's crops (normalised by the model or the embedder)
    hashes: np.ndarray  # (n_ok, 2, 8) uint8
    ok: list[int]  # positions in items that decoded
    errors: dict[int, str]
    decode_ms: list[float]
    buffer: tuple[queue.SimpleQueue[np.ndarray], np.ndarray]  # where ``tensors`` lives, and its pool
    images: list[Image.Image]  # the decoded photos, for the evidence providers
    vectors: np.ndarray | None = None
    fake_logits: np.ndarray | None = None  # from a model with a genuine-vs-fake head
    embed_ms: float = 0.0


# -- the scanner -------------------------------------------------------------------------------------


class Scanner:
    """Pipelined batch scanning with one checker; see the module docstring for the pipeline.

    Args:
        checker: the checker to scan with. Its embedder's ONNX Runtime threads are fixed when it is
            loaded (``AuthenticityChecker.load(dir, num_threads=...)``; see :func:`default_threads`).
        batch_size: photos per pipeline batch: one decode task, one index search.
        decode_workers: threads that decode, preprocess and hash; default from :func:`default_threads`.
        queue_size: batches in flight at most (bounds memory); default ``decode_workers + 2``.
        brand: restrict every search to this brand's references.
        model_batch_size: photos per ONNX Runtime call (a batch is embedded in slices of this).
        evidence_workers: threads that screen batches and run the evidence providers; default 1,
            or ``decode_workers`` when a provider of the checker is heavy (region inspection).
        switch_interval: seconds: lower the interpreter's GIL switch interval to this while
            scanning; None (the default, :data:`DEFAULT_SWITCH_INTERVAL`) leaves it as it is.
    """

    def __init__(
        self,
        checker: AuthenticityChecker,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        decode_workers: int | None = None,
        queue_size: int | None = None,
        brand: str | None = None,
        model_batch_size: int = DEFAULT_MODEL_BATCH_SIZE,
        evidence_workers: int | None = None,
        switch_interval: float | None = DEFAULT_SWITCH_INTERVAL,
    ) -> None:
        from .checker import AuthenticityChecker

        if not isinstance(checker, AuthenticityChecker):
            raise TypeError(f"checker must be an authvision.AuthenticityChecker, got {type(checker).__name__}")
        decode_workers = default_threads()[1] if decode_workers is None else decode_workers
        queue_size = decode_workers + 2 if queue_size is None else queue_size
        if evidence_workers is None:
            evidence_workers = decode_workers if any(p.heavy for p in checker.providers) else 1
        sizes = {
            "batch_size": batch_size,
            "decode_workers": decode_workers,
            "queue_size": queue_size,
            "model_batch_size": model_batch_size,
            "evidence_workers": evidence_workers,
        }
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if switch_interval is not None and not (isinstance(switch_interval, (int, float)) and 0 < switch_interval <= 1):
            raise ValueError(f"switch_interval must be None or seconds in (0, 1], got {switch_interval!r}")
        if brand is not None and not isinstance(brand, str):
            raise TypeError(f"brand must be a str or None, got {type(brand).__name__}")
        self.checker = checker
        self.batch_size = batch_size
        self.decode_workers = decode_workers
        self.queue_size = queue_size
        self.brand = brand
        self.model_batch_size = model_batch_size
        self.evidence_workers = evidence_workers
        self.switch_interval = switch_interval

    def __repr__(self) -> str:
        return (
            f"Scanner({self.checker!r}, batch_size={self.batch_size}, decode_workers={self.decode_workers}, "
            f"queue_size={self.queue_size}, brand={self.brand!r}, model_batch_size={self.model_batch_size})"
        )

    def scan(
        self,
        inputs: ImageSource | Iterable[ImageSource | tuple[Any, ImageSource]],
        *,
        skip: Callable[[int, str], bool] | None = None,
    ) -> Iterator[ScanResult]:
        """One :class:`ScanResult` per input, in input order; inputs are read lazily.

        Args:
            inputs: paths, encoded bytes, PIL images or arrays, or ``(id, source)`` pairs (any
                2-tuple is a pair; its id is turned into a str). One path or bytes is one input.
                An input that cannot be decoded, of any kind, gives a result with label ``"error"``.
            skip: called with ``(seq, id)`` of every input before it is read; True leaves it out
                (no result). It may raise to refuse the inputs (:class:`ResultJournal` does when
                a resumed input's id changed); the exception comes out of the iteration.

        Raises:
            whatever iterating ``inputs`` or ``skip`` raises, and model or index failures (a
            batch that ONNX Runtime or FAISS rejects stops the scan rather than turning into rows).
        """
        items = _numbered(inputs)
        if skip is not None:
            items = (item for item in items if not skip(item.seq, item.id))
        return self._run(items)

    def _run(self, items: Iterator[_Item]) -> Iterator[ScanResult]:
        with _gil_switch_interval(self.switch_interval):
            yield from self._pipeline(items)

    def _pipeline(self, items: Iterator[_Item]) -> Iterator[ScanResult]:
        version = self.checker.version
        sha = self.checker.embedder.model_sha256
        decode_pool = ThreadPoolExecutor(self.decode_workers, thread_name_prefix="authvision-decode")
        embed_pool = ThreadPoolExecutor(1, thread_name_prefix="authvision-embed")
        search_pool = ThreadPoolExecutor(self.evidence_workers, thread_name_prefix="authvision-evidence", initializer=_one_openmp_thread)
        window: deque[tuple[Future[_Batch], Future[_Batch], Future[list[ScanResult]]]] = deque()
        # One pixel buffer per batch in flight, reused: allocating a batch's tensors each time let
        # glibc's per-thread arenas fragment, and RSS crept up by ~10% over 10k listings.
        side = self.checker.embedder.manifest.preprocess.input_size
        buffers: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        for _ in range(self.queue_size):
            buffers.put(np.empty((self.batch_size, side, side, 3), dtype=np.uint8))
        try:
            for chunk in _chunks(items, self.batch_size):
                # Each stage's thread waits on the previous stage's future of the same batch, so
                # batches go through every stage in order; the caller's thread only hands out rows.
                decoding = decode_pool.submit(self._prepare, chunk, buffers)
                embedding = embed_pool.submit(self._embed, decoding)
                window.append((decoding, embedding, search_pool.submit(self._search, embedding, sha, version)))
                if len(window) >= self.queue_size:
                    yield from window.popleft()[-1].result()
            while window:
                yield from window.popleft()[-1].result()
        finally:
            for futures in window:  # the caller stopped early, or something failed
                for future in reversed(futures):
                    future.cancel()
            for pool in (search_pool, embed_pool, decode_pool):
                pool.shutdown(wait=True, cancel_futures=True)

    def _prepare(self, items: list[_Item], buffers: queue.SimpleQueue[np.ndarray]) -> _Batch:
        """Decode, preprocess and hash one batch (in a decode worker)."""
        decode, transform = self.checker.embedder.decode, self.checker.transform
        buffer = buffers.get()  # never waits: there is one per batch in flight
        tensors = buffer[: len(items)]
        hashes = np.empty((len(items), 2, HASH_BYTES), dtype=np.uint8)
        ok: list[int] = []
        images: list[Image.Image] = []
        errors: dict[int, str] = {}
        decode_ms: list[float] = []
        for i, item in enumerate(items):
            start = time.perf_counter()
            try:
                image = decode(item.source).image
                transform(image, pixels_out=tensors[len(ok)], hash_out=hashes[len(ok)])
                ok.append(i)
                images.append(image)
            except Exception as exc:  # noqa: BLE001 - any bad input must become an error row, never stop a scan
                errors[i] = error_message(exc)
                LOG.debug("input %d (%s) failed: %s", item.seq, item.id, errors[i])
            decode_ms.append(1000.0 * (time.perf_counter() - start))
        n = len(ok)
        return _Batch(items, tensors[:n], hashes[:n], ok, errors, decode_ms, (buffers, buffer), images)

    def _embed(self, decoding: Future[_Batch]) -> _Batch:
        batch = decoding.result()
        start = time.perf_counter()
        embedder, step = self.checker.embedder, self.model_batch_size
        vectors = np.empty((len(batch.tensors), embedder.dim), dtype=np.float32)
        logits = np.empty(len(batch.tensors), dtype=np.float32) if embedder.has_fake_head else None
        try:
            for i in range(0, len(batch.tensors), step):
                out = embedder.run_tensors(batch.tensors[i : i + step])
                vectors[i : i + step] = out.vectors
                if logits is not None:
                    logits[i : i + step] = out.fake_logits
        finally:
            batch.tensors = _NO_TENSORS
            buffers, buffer = batch.buffer
            buffers.put(buffer)  # for the next batch to decode into
        batch.vectors = vectors
        batch.fake_logits = logits
        batch.embed_ms = 1000.0 * (time.perf_counter() - start)
        return batch

    def _search(self, embedding: Future[_Batch], sha: str, version: str) -> list[ScanResult]:
        batch = embedding.result()
        n = len(batch.ok)
        search_ms = 0.0
        verdicts: list[Verdict] = []
        if n:
            start = time.perf_counter()
            assert batch.vectors is not None  # set by _embed
            listings = make_listings(
                batch.images, [batch.items[i].source for i in batch.ok], batch.vectors, batch.hashes, batch.fake_logits
            )
            batch.images = []
            verdicts = self.checker.verdicts_for(listings, brand=self.brand)
            search_ms = 1000.0 * (time.perf_counter() - start) / n
        embed_ms = batch.embed_ms / n if n else 0.0
        by_position = dict(zip(batch.ok, verdicts))
        results = []
        for i, item in enumerate(batch.items):
            verdict = by_position.get(i)
            if verdict is None:
                verdict = Verdict.failed(batch.errors[i])
                timings = {"decode": batch.decode_ms[i], "embed": 0.0, "search": 0.0}
            else:
                timings = {"decode": batch.decode_ms[i], "embed": embed_ms, "search": search_ms}
            results.append(ScanResult(item.seq, item.id, item.path, verdict, timings, sha, version))
        return results


@contextmanager
def _gil_switch_interval(seconds: float | None) -> Iterator[None]:
    """Lower ``sys.setswitchinterval`` to ``seconds`` while any scan runs; restore it after the last."""
    global _switch_scans, _switch_saved
    if seconds is None:
        yield
        return
    with _switch_lock:
        if _switch_scans == 0:
            _switch_saved = sys.getswitchinterval()
        _switch_scans += 1
        sys.setswitchinterval(min(sys.getswitchinterval(), seconds))
    try:
        yield
    finally:
        with _switch_lock:
            _switch_scans -= 1
            if _switch_scans == 0:
                sys.setswitchinterval(_switch_saved)


def _one_openmp_thread() -> None:
    """FAISS parallelises a batch search over OpenMP threads whose spinning competes with decoding
    and ONNX Runtime for the same cores; one batch at a time on one thread measured faster. OpenMP's
    thread count is per calling thread, so this only affects the scanner's search thread."""
    import faiss

    faiss.omp_set_num_threads(1)


def _numbered(inputs: Any) -> Iterator[_Item]:
    if is_single_input(inputs):
        inputs = [inputs]
    for seq, entry in enumerate(inputs):
        if isinstance(entry, tuple) and len(entry) == 2:
            item_id, source = str(entry[0]), entry[1]
        elif isinstance(entry, (str, os.PathLike)):
            item_id, source = os.fspath(entry), entry
        else:
            item_id, source = f"#{seq}", entry
        path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        yield _Item(seq, item_id, None if path is None else str(path), source)


def _chunks(items: Iterator[_Item], size: int) -> Iterator[list[_Item]]:
    chunk: list[_Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def scan_to_jsonl(
    scanner: Scanner,
    inputs: Iterable[Any],
    output: str | os.PathLike[str],
    *,
    resume: bool = False,
    csv_path: str | os.PathLike[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScanSummary:
    """Scan ``inputs`` into a JSON-lines file, one row per input; see :class:`ResultJournal`.

    ``progress`` is called with the number of rows in the file: once before scanning (the rows a
    resume found), then after each row. ``csv_path``: a CSV derived from the finished JSON lines.
    """
    seen = 0

    def counted(items: Iterable[Any]) -> Iterator[Any]:
        nonlocal seen
        if is_single_input(items):
            items = [items]
        for item in items:
            seen += 1
            yield item

    start = time.perf_counter()
    with ResultJournal(output, resume=resume) as journal:
        if progress is not None:
            progress(journal.done.count)
        scanned = 0
        results = scanner.scan(counted(inputs), skip=journal.skip)
        try:
            for result in results:
                journal.write(result)  # a full disk raises StorageFullError here; the rows before it are kept
                scanned += 1
                if progress is not None:
                    progress(journal.done.count)
        finally:
            close = getattr(results, "close", None)  # a generator: stop its threads now, not when the traceback goes
            if close is not None:
                close()
        journal.check_complete(seen)
    seconds = time.perf_counter() - start
    if csv_path is not None:
        journal.write_csv(csv_path)
    labels = dict(sorted(journal.labels.items()))
    return ScanSummary(
        output=str(output),
        rows=journal.done.count,
        resumed=journal.resumed,
        scanned=scanned,
        errors=labels.get("error", 0),
        labels=labels,
        seconds=seconds,
        listings_per_second=scanned / seconds if seconds > 0 else 0.0,
        csv=None if csv_path is None else str(csv_path),
        repaired_lines=journal.repaired_lines,
    )
