"""The fast screen: neighbours by embedding, re-used photos by perceptual hash, and the product vote.

For each listing the ``k`` nearest reference photos vote for a product, each with weight
``exp((similarity - best) / PRODUCT_TEMPERATURE)``; the product with the largest total wins, unless
a near-duplicate reference photo names the product instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..index import Reference, ReferenceIndex
from ..verdict import Match
from .base import Screen

__all__ = ["PRODUCT_TEMPERATURE", "match", "screen", "vote_weights"]

PRODUCT_TEMPERATURE = 0.05
"""Cosine scale of the neighbours' product vote: a neighbour 0.05 less similar weighs e times less."""


def screen(
    index: ReferenceIndex, vectors: np.ndarray, hashes: np.ndarray, *, k: int, duplicate_max_distance: int, brand: str | None = None
) -> list[Screen]:
    """One :class:`Screen` per row of ``vectors`` / ``hashes``: one batched search, one hash lookup."""
    if len(vectors) == 0:
        return []
    result = index.search(vectors, k, brand=brand)
    duplicates = index.find_duplicates(hashes, duplicate_max_distance)
    wanted = set(result.ids[result.ids >= 0].tolist())
    for row in duplicates:
        wanted.update(ref_id for ref_id, _ in row)
    refs = index.lookup(wanted)  # a reference removed since the search is simply left out
    return [_screen_one(result.similarities[i], result.ids[i], duplicates[i], refs, brand) for i in range(len(vectors))]


def _screen_one(
    similarities: np.ndarray, ids: np.ndarray, duplicates: list[tuple[int, int]], refs: dict[int, Reference], brand: str | None
) -> Screen:
    neighbors = tuple(
        match(refs[ref_id], float(sim)) for ref_id, sim in zip(ids.tolist(), similarities.tolist()) if ref_id >= 0 and ref_id in refs
    )
    similarity_of = {m.ref_id: m.similarity for m in neighbors}
    duplicate = next(
        (
            match(refs[ref_id], similarity_of.get(ref_id), hamming=distance)
            for ref_id, distance in duplicates
            if ref_id in refs and (brand is None or refs[ref_id].brand == brand)
        ),
        None,
    )
    if not neighbors:
        return Screen((), duplicate, duplicate.product if duplicate else None, duplicate.brand if duplicate else None, -1.0)
    votes: dict[tuple[str | None, str | None], float] = {}
    for m, weight in zip(neighbors, vote_weights(neighbors)):
        votes[(m.product, m.brand)] = votes.get((m.product, m.brand), 0.0) + weight
    product, owner = (duplicate.product, duplicate.brand) if duplicate else max(votes, key=votes.__getitem__)
    return Screen(neighbors, duplicate, product, owner, neighbors[0].similarity or 0.0)


def vote_weights(neighbors: Sequence[Match]) -> list[float]:
    """Each neighbour's vote, ``exp((similarity - best) / PRODUCT_TEMPERATURE)`` (neighbours most similar first)."""
    best = (neighbors[0].similarity or 0.0) if neighbors else 0.0
    return [math.exp(((m.similarity or 0.0) - best) / PRODUCT_TEMPERATURE) for m in neighbors]


def match(ref: Reference, similarity: float | None, *, hamming: int | None = None) -> Match:
    """A reference as a :class:`~authvision.verdict.Match` row of a verdict."""
    return Match(
        ref_id=ref.ref_id,
        label=ref.label,
        product=ref.product,
        brand=ref.brand,
        similarity=similarity,
        source=ref.source,
        hamming=hamming,
    )
