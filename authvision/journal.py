"""The crash-safe JSON-lines journal of scan results, its resume check and its CSV export.

:class:`ResultJournal` (used by :func:`~authvision.scanner.scan_to_jsonl` and
:func:`~authvision.distributed.scan_with_ray`) writes results as JSON lines that a ``kill -9``
cannot tear or lose: each line goes out in one ``os.write`` on an ``O_APPEND`` descriptor (fsync'd
every few seconds and at the end, for power loss), and a resumed scan drops a trailing partial
line, skips the inputs already written (checking each one's id with :func:`check_resume`, so a
changed input list is refused) and appends the rest. :func:`encode_row` is the one encoding of a
row; :meth:`ResultJournal.write_csv` derives a CSV (:data:`CSV_COLUMNS`) from the finished file.

A full disk (``ENOSPC`` / ``EDQUOT``) mid-line cuts the partial line off again, fsyncs the rows
already written and raises :class:`~authvision.errors.StorageFullError` saying how many rows are
safe; a resume after space is freed goes on from there, one row per input.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock against a second writer
    fcntl = None  # type: ignore[assignment]

from .errors import AuthvisionError, OutputExistsError, StorageFullError

if TYPE_CHECKING:
    from .scanner import ScanResult

__all__ = ["CSV_COLUMNS", "ResultJournal", "ResumeError", "ScanSummary", "check_resume", "encode_row"]

LOG = logging.getLogger(__name__)

CSV_COLUMNS = (
    "seq", "id", "path", "label", "authenticity", "product", "brand", "duplicate_of", "neighbor_ids",
    "neighbor_similarities", "error", "decode_ms", "embed_ms", "search_ms", "model_sha256", "checker_version",
)  # fmt: skip

_FSYNC_SECONDS = 2.0
_MAX_SEQ = 1 << 34  # a larger seq in an output file is damage, not a row
_FULL = (errno.ENOSPC, errno.EDQUOT)


class ResumeError(AuthvisionError, ValueError):
    """A scan cannot resume into this output: the inputs differ from those it was started with."""


def encode_row(row: Mapping[str, Any]) -> str:
    """One result row (a :meth:`ScanResult.to_dict`) as the compact JSON text of one journal line."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


@dataclass
class ScanSummary:
    """What a :func:`scan_to_jsonl` run did. ``rows``, ``labels`` and ``errors`` cover the whole
    output file (resumed rows included); ``scanned``, ``seconds`` and the rate cover this run."""

    output: str
    rows: int
    resumed: int
    scanned: int
    errors: int
    labels: dict[str, int]
    seconds: float
    listings_per_second: float
    csv: str | None = None
    repaired_lines: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out["listings_per_second"] = round(self.listings_per_second, 1)
        out["seconds"] = round(self.seconds, 3)
        return {**out, **self.extra}


class _SeqIds:
    """Which seqs are done, with a 64-bit digest of each one's id: ~9 bytes per row, not a dict."""

    def __init__(self) -> None:
        self._digests = np.zeros(1024, dtype=np.uint64)
        self._done = np.zeros(1024, dtype=bool)
        self.count = 0
        self.max_seq = -1

    @staticmethod
    def digest(item_id: str) -> np.uint64:
        return np.frombuffer(hashlib.blake2b(item_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), dtype=np.uint64)[0]

    def add(self, seq: int, item_id: str) -> bool:
        """Record a row; False if ``seq`` is recorded already."""
        if seq >= len(self._done):
            grow = max(seq + 1, 2 * len(self._done))
            digests, done = np.zeros(grow, dtype=np.uint64), np.zeros(grow, dtype=bool)
            digests[: len(self._digests)], done[: len(self._done)] = self._digests, self._done
            self._digests, self._done = digests, done
        if self._done[seq]:
            return False
        self._done[seq] = True
        self._digests[seq] = self.digest(item_id)
        self.count += 1
        self.max_seq = max(self.max_seq, seq)
        return True

    def matches(self, seq: int, item_id: str) -> bool | None:
        """None if ``seq`` is not done, else whether the recorded id is ``item_id``."""
        if seq >= len(self._done) or not self._done[seq]:
            return None
        return bool(self._digests[seq] == self.digest(item_id))


def check_resume(done: _SeqIds, path: str | os.PathLike[str], seq: int, item_id: str) -> bool:
    """True if input ``seq`` is in ``done`` already (a resume skips it), False if not; raises
    :class:`ResumeError` if ``done`` holds a row for ``seq`` with another id (the inputs changed).

    A free function of picklable arguments, so Ray workers can run it (:mod:`authvision.distributed`).
    """
    match = done.matches(seq, item_id)
    if match is False:
        raise ResumeError(
            f"{path} holds a row for input {seq} with a different id than {item_id!r}: the inputs "
            "changed since this scan started; scan them into a new output"
        )
    return bool(match)


class ResultJournal:
    """Append-only JSON-lines output of scan results that ``kill -9`` can neither tear nor lose.

    Opening with ``resume=True`` reads an existing file: a trailing partial line is truncated away,
    complete lines that are not valid rows (only a power loss makes those) are dropped by rewriting
    the file atomically, and the rows found are remembered so :meth:`skip` leaves their inputs out.
    Without ``resume`` an existing non-empty file is refused (:class:`~authvision.errors.OutputExistsError`).
    """

    def __init__(self, path: str | os.PathLike[str], *, resume: bool = False, fsync_seconds: float = _FSYNC_SECONDS) -> None:
        self.path = Path(path)
        self.done = _SeqIds()
        self.labels: Counter[str] = Counter()
        self.repaired_lines = 0
        self._fsync_seconds = fsync_seconds
        self._fd = self._open_locked()
        try:
            if os.fstat(self._fd).st_size > 0:
                if not resume:
                    raise OutputExistsError(
                        f"{self.path} already holds the rows of a scan: resume that scan (the same inputs into "
                        "the same output) to finish it, or choose another output",
                        path=self.path,
                    )
                if self._recover():  # the file was replaced: append to the new one
                    os.close(self._fd)
                    self._fd = self._open_locked()
        except BaseException:
            os.close(self._fd)
            raise
        self.resumed = self.done.count
        self._last_sync = time.monotonic()
        self._size = os.fstat(self._fd).st_size  # where the next line starts: only this journal appends (flock)

    def _open_locked(self) -> int:
        """The output, opened for appending and locked, so two scans never write one file at once."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel on kill -9
            except BlockingIOError:
                os.close(fd)
                raise ResumeError(f"{self.path} is being written by another scan; wait for it or stop it") from None
        return fd

    def _recover(self) -> bool:
        """Read what a previous run wrote; True if the file had to be rewritten."""
        with open(self.path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            end = _last_newline_end(handle, size)
        if end < size:
            LOG.info("%s: dropping a partial last line (%d bytes)", self.path, size - end)
            os.truncate(self.path, end)
        bad = 0
        with open(self.path, "rb") as handle:
            for line in handle:
                row = _parse_row(line)
                if row is None or not self.done.add(row["seq"], row["id"]):
                    bad += 1
                    continue
                self.labels[row["label"]] += 1
        if bad:
            self._rewrite_valid()
            self.repaired_lines = bad
        return bool(bad)

    def _rewrite_valid(self) -> None:
        """Keep only the first valid row per seq: write them to a new file, then swap it in."""
        LOG.warning("%s: dropping damaged or repeated lines (power loss?); the file is rewritten", self.path)
        seen = _SeqIds()
        tmp = self.path.with_name(self.path.name + ".repair")
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            for line in src:
                row = _parse_row(line)
                if row is not None and seen.add(row["seq"], row["id"]):
                    dst.write(line)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def skip(self, seq: int, item_id: str) -> bool:
        """For :meth:`Scanner.scan`: True for inputs written already; raises if one's id changed."""
        return check_resume(self.done, self.path, seq, item_id)

    def write(self, result: ScanResult) -> None:
        """Append one result's row: one ``os.write`` of one complete line."""
        self.write_row(result.to_dict())

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Append one row (a :meth:`ScanResult.to_dict`), as :meth:`write` does."""
        data = (encode_row(row) + "\n").encode("utf-8", "surrogatepass")
        view = memoryview(data)
        try:
            while view:  # a short write (signal, a disk filling up) continues where it stopped
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self._cut_partial_line()
            if exc.errno in _FULL:
                raise self._full_error(exc) from exc
            raise
        self._size += len(data)
        self.done.add(row["seq"], row["id"])
        self.labels[row["label"]] += 1
        now = time.monotonic()
        if now - self._last_sync >= self._fsync_seconds:
            self._sync()
            self._last_sync = now

    def _sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:  # some file systems report a full disk only when the data is flushed
            if exc.errno in _FULL:
                raise self._full_error(exc) from exc
            raise

    def _cut_partial_line(self) -> None:
        """Truncate what a failed write left of its line, so the file ends with a complete row."""
        try:
            os.ftruncate(self._fd, self._size)
            os.fsync(self._fd)
        except OSError as exc:  # a resume drops a partial last line anyway
            LOG.warning("%s: could not cut a partial line after a failed write (%s); resuming the scan will", self.path, exc)

    def _full_error(self, exc: OSError) -> StorageFullError:
        return StorageFullError(
            exc.errno,
            f"no space left on the device writing {self.path} ({exc.strerror}): the scan stopped; the "
            f"{self.done.count} rows written are complete and kept. Free space, then resume the scan (the same "
            "inputs into the same output) to add the rest, one row per input",
        )

    def check_complete(self, inputs_seen: int) -> None:
        """Refuse a file holding rows for inputs beyond the ``inputs_seen`` of this run."""
        if self.done.max_seq >= inputs_seen:
            raise ResumeError(
                f"{self.path} holds a row for input {self.done.max_seq}, but only {inputs_seen} inputs were given: "
                "the inputs changed since this scan started; scan them into a new output"
            )

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self._sync()
            finally:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> ResultJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        """Derive a CSV (:data:`CSV_COLUMNS`, file order) from the JSON lines, written atomically."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(self.path, "rb") as src, open(tmp, "w", newline="", encoding="utf-8") as dst:
                writer = csv.writer(dst)
                writer.writerow(CSV_COLUMNS)
                for line in src:
                    row = json.loads(line)
                    writer.writerow(_csv_row(row))
                dst.flush()
                os.fsync(dst.fileno())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in _FULL:
                raise StorageFullError(
                    exc.errno, f"no space left on the device writing {path} ({exc.strerror}); {self.path} is complete: "
                    "free space and derive the CSV again"
                ) from exc
            raise
        os.replace(tmp, path)


def _csv_row(row: dict[str, Any]) -> list[Any]:
    timings = row.get("timings") or {}
    duplicate = row.get("duplicate_of")
    return [
        row["seq"], row["id"], row.get("path") or "", row["label"],
        "" if row.get("authenticity") is None else row["authenticity"],
        row.get("product") or "", row.get("brand") or "",
        "" if duplicate is None else duplicate["ref_id"],
        " ".join(str(i) for i in row.get("neighbor_ids", [])),
        " ".join(str(s) for s in row.get("neighbor_similarities", [])),
        row.get("error") or "", timings.get("decode", ""), timings.get("embed", ""), timings.get("search", ""),
        row.get("model_sha256", ""), row.get("checker_version", ""),
    ]  # fmt: skip


def _last_newline_end(handle: io.BufferedReader, size: int) -> int:
    """Offset just after the last ``\\n`` of the file (0 if none), reading backwards in blocks."""
    position = size
    while position > 0:
        start = max(0, position - 65536)
        handle.seek(start)
        block = handle.read(position - start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def _parse_row(line: bytes) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if not isinstance(row, dict) or type(row.get("seq")) is not int or not isinstance(row.get("id"), str):
        return None
    if not isinstance(row.get("label"), str) or not 0 <= row["seq"] < _MAX_SEQ:
        return None
    return row


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - not every platform opens directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
