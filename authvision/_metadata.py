"""Reference metadata in SQLite (standard library): label, product, brand, source, sha256, hashes, time.

The database lives in memory while an index is in use and travels as bytes (``serialize`` /
``deserialize``), so saving writes one verified file and loading never opens a file in the saved
directory at all: SQLite parses the verified (with a key: signed) bytes of ``metadata.sqlite`` inside a
private ``:memory:`` database, after a header check, and ``PRAGMA integrity_check`` runs before any query.
One connection, guarded by a mutex: calls are short, and SQLite's own
thread-safety then does not depend on how the library was compiled.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import IndexFormatError

__all__ = ["Metadata", "Row"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE refs (
    ref_id INTEGER PRIMARY KEY,
    label TEXT NOT NULL CHECK (label IN ('genuine', 'fake')),
    product TEXT,
    brand TEXT,
    source TEXT,
    sha256 TEXT,
    hash TEXT,
    hash_mirror TEXT,
    added_at TEXT NOT NULL
);
CREATE INDEX refs_sha256 ON refs (sha256);
CREATE INDEX refs_brand ON refs (brand);
CREATE INDEX refs_product ON refs (product);
CREATE TABLE tombstones (ref_id INTEGER PRIMARY KEY);
"""

_MAGIC = b"SQLite format 3\x00"
_HEADER_BYTES = 100

_COLUMNS = ("ref_id", "label", "product", "brand", "source", "sha256", "hash", "hash_mirror", "added_at")


@dataclass(frozen=True)
class Row:
    ref_id: int
    label: str
    product: str | None
    brand: str | None
    source: str | None
    sha256: str | None
    hash: str | None
    hash_mirror: str | None
    added_at: str


_SCHEMA_QUERY = "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"


@functools.cache
def _schema_objects() -> list[tuple[str, str, str]]:
    """sqlite_master of a fresh database: what a saved one must hold, exactly."""
    connection = _connect()
    try:
        connection.executescript(_SCHEMA)
        return connection.execute(_SCHEMA_QUERY).fetchall()
    finally:
        connection.close()


def _connect() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)


class Metadata:
    """The ``refs`` table (one row per live reference) and ``tombstones`` (ids removed from a graph
    index that cannot delete, still physically present until the next rebuild)."""

    def __init__(self, connection: sqlite3.Connection | None = None) -> None:
        self._lock = threading.Lock()
        if connection is None:
            connection = _connect()
            connection.executescript(_SCHEMA)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._db = connection

    # -- persistence -----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        with self._lock:
            return self._db.serialize()

    @classmethod
    def from_bytes(cls, data: bytes, *, what: str) -> Metadata:
        """Load a serialized database; ``what`` names the file in errors."""
        if len(data) < _HEADER_BYTES or not data.startswith(_MAGIC):  # CPython raises MemoryError on b"" (found by fuzzing)
            raise IndexFormatError(f"{what} is not a SQLite database ({len(data)} bytes, no SQLite header)")
        connection = _connect()
        try:
            connection.deserialize(data)
            (check,) = connection.execute("PRAGMA integrity_check").fetchone()
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            columns = tuple(row[1] for row in connection.execute("PRAGMA table_info(refs)"))
            # Exactly our tables and indexes: no trigger (one could relabel every reference added later), no view.
            objects = connection.execute(_SCHEMA_QUERY).fetchall()
        except (sqlite3.Error, MemoryError, OverflowError) as exc:
            connection.close()
            raise IndexFormatError(f"{what} is not a readable SQLite database: {exc!r}") from exc
        if check == "ok" and version == SCHEMA_VERSION and columns == _COLUMNS and objects != _schema_objects():
            connection.close()
            raise IndexFormatError(
                f"{what} holds other SQLite schema objects than authvision's (triggers, views or altered tables): "
                f"{sorted({(kind, name) for kind, name, _ in objects} ^ {(kind, name) for kind, name, _ in _schema_objects()})}"
            )
        if check != "ok" or version != SCHEMA_VERSION or columns != _COLUMNS:
            connection.close()
            raise IndexFormatError(
                f"{what} does not hold authvision reference metadata (integrity {check!r}, "
                f"schema version {version}, columns {columns})"
            )
        return cls(connection)

    # -- writes ----------------------------------------------------------------------------------
    def insert(self, rows: Sequence[Row]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    f"INSERT INTO refs VALUES ({', '.join('?' * len(_COLUMNS))})",
                    [tuple(getattr(row, column) for column in _COLUMNS) for row in rows],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def delete(self, ids: Sequence[int], *, tombstone: bool) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("DELETE FROM refs WHERE ref_id = ?", [(i,) for i in ids])
                if tombstone:
                    self._db.executemany("INSERT INTO tombstones VALUES (?)", [(i,) for i in ids])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def clear_tombstones(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM tombstones")

    # -- reads -----------------------------------------------------------------------------------
    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM refs").fetchone()[0]

    def tombstones(self) -> list[int]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT ref_id FROM tombstones ORDER BY ref_id")]

    def max_id(self) -> int:
        """Largest id ever stored here (live or tombstoned), -1 if none."""
        with self._lock:
            live = self._db.execute("SELECT max(ref_id) FROM refs").fetchone()[0]
            dead = self._db.execute("SELECT max(ref_id) FROM tombstones").fetchone()[0]
        return max(-1 if live is None else live, -1 if dead is None else dead)

    def missing(self, ids: Iterable[int]) -> list[int]:
        """Those of ``ids`` that are not live references."""
        wanted = sorted(set(ids))
        with self._lock:
            found: set[int] = set()
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = f"SELECT ref_id FROM refs WHERE ref_id IN ({', '.join('?' * len(chunk))})"
                found.update(row[0] for row in self._db.execute(query, chunk))
        return [i for i in wanted if i not in found]

    def rows(self, ids: Sequence[int]) -> dict[int, Row]:
        wanted = sorted(set(ids))
        out: dict[int, Row] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = f"SELECT {', '.join(_COLUMNS)} FROM refs WHERE ref_id IN ({', '.join('?' * len(chunk))})"
                for values in self._db.execute(query, chunk):
                    out[values[0]] = Row(*values)
        return out

    def by_sha256(self, digests: Iterable[str]) -> dict[str, int]:
        """sha256 → smallest live ref id holding it."""
        wanted = sorted(set(digests))
        out: dict[str, int] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = (
                    f"SELECT sha256, min(ref_id) FROM refs WHERE sha256 IN ({', '.join('?' * len(chunk))}) "
                    "GROUP BY sha256"
                )
                out.update(self._db.execute(query, chunk).fetchall())
        return out

    def ids(self, *, brand: str | None = None, product: str | None = None, label: str | None = None) -> list[int]:
        clauses, values = [], []
        for column, value in (("brand", brand), ("product", product), ("label", label)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            return [row[0] for row in self._db.execute(f"SELECT ref_id FROM refs{where} ORDER BY ref_id", values)]

    def count_by(self, column: str) -> dict[str | None, int]:
        if column not in ("label", "brand", "product"):
            raise ValueError(column)
        with self._lock:
            return dict(self._db.execute(f"SELECT {column}, count(*) FROM refs GROUP BY {column}").fetchall())
