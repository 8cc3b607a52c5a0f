"""Scan beyond one machine with Ray Data (``pip install authvision[scale]``).

:func:`scan_with_ray` turns listings into a Ray dataset, runs :class:`~authvision.scanner.Scanner`
batches in a pool of actors (each loads the checker once: one ONNX Runtime session whose threads
are the actor's CPUs) and writes the same rows as ``authvision scan``:

* ``output`` ending in ``.jsonl``: the driver appends rows to one file through
  :class:`~authvision.journal.ResultJournal` as they stream back, so the file survives ``kill -9``
  and ``resume=True`` scans only what it lacks (rows arrive in completion order, not input order);
* any other ``output``: a directory (local, or a URI such as ``s3://bucket/scan/``) that
  ``Dataset.write_json`` fills with JSON-lines files from the workers. Nothing funnels through the
  driver, but there is no resume: Ray retries failed tasks, and a failed job is re-run.

On a cluster, every node needs the checker directory at the same path (or a shared filesystem) and
the listing files at the paths given, or pass a dataset with a ``bytes`` column (e.g. from
``ray.data.read_binary_files("s3://...", include_paths=True)`` renamed to ``bytes``/``id``)::

    ray start --head                               # on the head node
    ray start --address=HEAD:6379                  # on every worker node
    import ray
    from authvision.distributed import scan_with_ray
    from authvision.datasets import expand_inputs

    ray.init(address="auto")                       # the running cluster
    scan_with_ray(expand_inputs(["/shared/listings"]), "/shared/checker", "/shared/scan/", cpus_per_actor=2)

Throughput scales with actors (one per ``cpus_per_actor`` CPUs): there is no shared state between
them but the read-only checker each holds.

References beyond one machine's memory (not built here):
    Shard the reference index so each shard fits a node, and search every shard for every listing:

    * by brand: one checker per brand group (``AuthenticityChecker`` over that brand's references,
      saved as ``checker-<group>/``). Listings with a known brand go only to their shard (``brand=``
      filtering makes this exact); listings without one go to every shard;
    * by id range: N checkers holding disjoint slices of the references, or, inside one process,
      ``faiss.IndexShards`` over the slices (same ``d``, ``successive_ids``), which runs the shard
      searches in parallel and merges their top-k.

    Scores merge exactly because similarities are comparable across shards (same model, same
    metric): take the union of each shard's ``k`` neighbours, keep the global top ``k`` by
    similarity, take duplicates from every shard's hash index (closest Hamming distance first),
    then compute the checker's evidence (product vote, closest genuine / fake, fake share) and the
    calibrated score on the merged list — :meth:`AuthenticityChecker.assess` does exactly this on
    one index, so the merge is "search all shards, concatenate, sort, cut to k" before it. Each
    shard's top k contains every global top-k member it holds, so nothing is lost. In Ray, each
    shard is an actor pool (the shard pinned to nodes with enough memory); listings fan out to all
    shard pools and a final ``groupby(seq)`` merges. Approximate (HNSW) shards keep their own
    recall; calibrate on the sharded setup.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MissingExtraError
from .journal import ResultJournal, ScanSummary, check_resume, encode_row
from .scanner import DEFAULT_BATCH_SIZE, Scanner, _numbered

__all__ = ["scan_with_ray"]


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            "scan_with_ray needs Ray Data, which is not installed: it comes with authvision's [scale] extra",
            extra="scale", module="ray",
        ) from exc
    return ray


class _ScanActor:
    """One per Ray actor: loads the checker once, scans the batches Ray Data hands it."""

    def __init__(self, checker_dir: str, num_threads: int, batch_size: int, brand: str | None) -> None:
        from .checker import AuthenticityChecker

        checker = AuthenticityChecker.load(checker_dir, num_threads=num_threads)
        self.scanner = Scanner(checker, batch_size=batch_size, decode_workers=1, queue_size=1, brand=brand)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        seqs = batch["seq"].tolist()
        ids = [str(i) for i in batch["id"].tolist()]
        if "bytes" in batch:
            sources: list[Any] = [bytes(b) for b in batch["bytes"]]
            paths: list[str | None] = [None] * len(ids)
        else:
            sources = paths = [str(p) for p in batch["path"].tolist()]
        rows = []
        for seq, path, result in zip(seqs, paths, self.scanner.scan(list(zip(ids, sources)))):
            row = result.to_dict()
            row["seq"], row["path"] = int(seq), path
            rows.append(encode_row(row))
        # One JSON text per row: nested, sometimes-empty fields would give each block its own schema.
        return {"row": np.array(rows, dtype=object)}


def _json_lines_datasink(ray: Any, path: str) -> Any:
    from ray.data.datasource import BlockBasedFileDatasink

    class JsonLinesDatasink(BlockBasedFileDatasink):
        """Each block's ``row`` texts as the lines of one ``.jsonl`` file."""

        def write_block_to_file(self, block: Any, file: Any) -> None:
            for text in block.to_arrow().column("row").to_pylist():
                file.write((text + "\n").encode("utf-8"))

    return JsonLinesDatasink(path, file_format="jsonl")


def scan_with_ray(
    inputs: Iterable[Any] | Any,
    checker_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    num_actors: int | None = None,
    cpus_per_actor: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    brand: str | None = None,
    resume: bool = False,
) -> ScanSummary:
    """Scan listings on a Ray cluster (or a local Ray instance) with an actor pool.

    Args:
        inputs: paths or ``(id, path)`` pairs (listed into the dataset by the driver; the files
            must be readable on every node), or a ``ray.data.Dataset`` with ``seq`` (position in
            the inputs), ``id`` and ``path`` or ``bytes`` columns, for inputs too many to list.
        checker_dir: a saved checker, at this path on every node.
        output: a ``.jsonl`` file (written by the driver, resumable) or a directory / URI that
            the workers fill with ``.jsonl`` files (see the module docstring).
        num_actors: actor pool size; default: the cluster's CPUs // ``cpus_per_actor``.
        cpus_per_actor: CPUs reserved per actor, also its ONNX Runtime threads.
        batch_size: photos per actor call (model batch and index search).
        resume: for a ``.jsonl`` output, finish a scan already in it.

    Returns:
        a :class:`~authvision.journal.ScanSummary`; for a directory output, counts come from the
        written files when they are local, else only ``rows``.
    """
    ray = _ray()
    if not ray.is_initialized():
        ray.init()
    if num_actors is None:
        num_actors = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_actor)
    jsonl = str(output).endswith(".jsonl")
    start = time.perf_counter()
    journal = ResultJournal(output, resume=resume) if jsonl else None
    try:
        dataset, seen = _dataset(ray, inputs, journal)
        scanned = dataset.map_batches(
            _ScanActor,
            fn_constructor_kwargs={
                "checker_dir": str(checker_dir),
                "num_threads": cpus_per_actor,
                "batch_size": batch_size,
                "brand": brand,
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=num_actors),
            num_cpus=cpus_per_actor,
        )
        if journal is not None:
            written, first_row = _drain_into(journal, scanned)
            journal.check_complete(seen())
        else:
            scanned.write_datasink(_json_lines_datasink(ray, str(output)), ray_remote_args={"num_cpus": 0})
            written, first_row = None, None
    finally:
        if journal is not None:
            journal.close()
    seconds = time.perf_counter() - start
    labels, rows = _count(journal, output)
    return ScanSummary(
        output=str(output),
        rows=rows,
        resumed=journal.resumed if journal else 0,
        scanned=written if written is not None else rows,
        errors=labels.get("error", 0),
        labels=labels,
        seconds=seconds,
        listings_per_second=(written if written is not None else rows) / seconds if seconds > 0 else 0.0,
        extra={
            "num_actors": num_actors,
            "cpus_per_actor": cpus_per_actor,
            # actors start (each loads the checker) before the first row: the steady rate excludes it
            "seconds_to_first_row": None if first_row is None else round(first_row - start, 3),
        },
    )


def _dataset(ray: Any, inputs: Any, journal: ResultJournal | None) -> tuple[Any, Any]:
    """(dataset of seq / id / path-or-bytes rows, a callable giving the number of inputs)."""
    if isinstance(inputs, ray.data.Dataset):
        if "seq" not in inputs.columns():
            raise ValueError("a dataset input needs a 'seq' column (each row's position in the inputs)")
        count = inputs.count
        if journal is not None and journal.done.count:
            done, where = journal.done, str(journal.path)

            def missing(row: dict[str, Any]) -> bool:
                return not check_resume(done, where, int(row["seq"]), str(row["id"]))

            inputs = inputs.filter(missing)
        return inputs, count
    items, count = [], 0
    for item in _numbered(inputs):
        if item.path is None:
            raise TypeError(f"scan_with_ray takes paths or (id, path) pairs; input {item.seq} is {type(item.source).__name__}")
        count += 1
        if journal is None or not journal.skip(item.seq, item.id):
            items.append({"seq": item.seq, "id": item.id, "path": item.path})
    return ray.data.from_items(items), lambda: count


def _drain_into(journal: ResultJournal, dataset: Any) -> tuple[int, float | None]:
    """(rows written, perf_counter time of the first one)."""
    written, first = 0, None
    for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
        first = first or time.perf_counter()
        for text in batch["row"]:
            journal.write_row(json.loads(text))
            written += 1
    return written, first


def _count(journal: ResultJournal | None, output: Any) -> tuple[dict[str, int], int]:
    if journal is not None:
        return dict(sorted(journal.labels.items())), journal.done.count
    labels: Counter[str] = Counter()
    folder = Path(str(output))
    if folder.is_dir():
        for file in sorted(folder.glob("*.jsonl")):
            with open(file, encoding="utf-8") as handle:
                for line in handle:
                    labels[json.loads(line)["label"]] += 1
    return dict(sorted(labels.items())), sum(labels.values())
