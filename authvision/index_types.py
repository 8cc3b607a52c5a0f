"""The values :class:`~authvision.index.ReferenceIndex` takes and returns: labels, search knobs,
search results and what it knows about one reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import numpy as np

from ._metadata import Row

__all__ = ["LABELS", "Label", "OnDuplicate", "Reference", "SearchParams", "SearchResult", "new_rows"]

Label = Literal["genuine", "fake"]
OnDuplicate = Literal["raise", "skip", "allow"]
LABELS: tuple[str, ...] = ("genuine", "fake")


@dataclass(frozen=True)
class SearchParams:
    """Per-call accuracy/speed knobs: IVF ``nprobe`` lists, HNSW ``efSearch`` (``ef_search``) candidates.

    ``None`` means the default (:data:`DEFAULT_NPROBE`, :data:`DEFAULT_EF_SEARCH`); a knob that does
    not apply to the index in use is ignored, so callers need not know which type is in use.
    """

    nprobe: int | None = None
    ef_search: int | None = None

    def __post_init__(self) -> None:
        for name in ("nprobe", "ef_search"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1):
                raise ValueError(f"SearchParams.{name} must be a positive int or None, got {value!r}")


class SearchResult(NamedTuple):
    """``similarities`` float32 (n, k), best first; ``ids`` int64 (n, k); ``-1`` ids pad."""

    similarities: np.ndarray
    ids: np.ndarray


@dataclass(frozen=True)
class Reference:
    """What the index knows about one reference photo."""

    ref_id: int
    label: Label
    product: str | None
    brand: str | None
    source: str | None
    sha256: str | None
    hashes: tuple[str, str] | None  # hex pHash of the photo and of its mirror
    added_at: str  # ISO 8601, UTC

    @classmethod
    def from_row(cls, row: Row) -> Reference:
        return cls(
            ref_id=row.ref_id,
            label=row.label,  # type: ignore[arg-type]
            product=row.product,
            brand=row.brand,
            source=row.source,
            sha256=row.sha256,
            hashes=(row.hash, row.hash_mirror) if row.hash is not None and row.hash_mirror is not None else None,
            added_at=row.added_at,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hashes"] = list(self.hashes) if self.hashes is not None else None
        return out


def new_rows(
    ids: np.ndarray,
    keep: Sequence[int],
    columns: Mapping[str, Sequence[str | None]],
    sha256s: Sequence[str | None],
    hashes: np.ndarray | None,
) -> list[Row]:
    """Metadata rows for the references an add keeps: row ``keep[j]`` of the columns gets ``ids[j]``."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return [
        Row(
            ref_id=ref_id,
            label=columns["label"][i],  # type: ignore[arg-type]
            product=columns["product"][i],
            brand=columns["brand"][i],
            source=columns["source"][i],
            sha256=sha256s[i],
            hash=hashes[i, 0].tobytes().hex() if hashes is not None else None,
            hash_mirror=hashes[i, 1].tobytes().hex() if hashes is not None else None,
            added_at=now,
        )
        for i, ref_id in zip(keep, ids.tolist())
    ]
