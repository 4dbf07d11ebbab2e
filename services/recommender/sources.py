"""Candidate sources: random, popular, series, vector (Qdrant) and collaborative (ALS)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from itertools import repeat
from typing import Any, Protocol

import numpy as np


class RandomSource:
    """Uniformly random catalogue movies, reproducible per (seed, query movie).

    The catalogue is shuffled once (seeded); a query movie walks that order from a start with a stride
    coprime to the catalogue size, both derived from (seed, movie id), so each position is uniform over
    the catalogue, the k picks are distinct, and a whole batch is drawn with array operations.
    """

    name = "random"
    walks_catalogue = True  # every movie is cheap to list: filtered lists are filled from the whole catalogue

    def __init__(self, movie_ids: Sequence[int] | np.ndarray, seed: int = 42) -> None:
        ids = np.unique(np.asarray(movie_ids, dtype=np.int64))
        self._order = ids[np.random.default_rng(seed).permutation(len(ids))]
        size = len(ids)
        steps = np.arange(1, max(size, 2), dtype=np.int64)
        self._strides = steps[np.gcd(steps, size) == 1] if size > 1 else np.ones(1, dtype=np.int64)
        self._key = _mix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        queries = np.asarray(movie_ids, dtype=np.int64).reshape(-1)
        size = len(self._order)
        take = min(k + 1, size)
        if take <= 0 or len(queries) == 0:
            return [[] for _ in queries]
        mixed = _mix(queries.astype(np.uint64) ^ self._key)
        start = (mixed % np.uint64(size)).astype(np.int64)
        stride = self._strides[((mixed >> np.uint64(32)) % np.uint64(len(self._strides))).astype(np.int64)]
        walk = self._order[(start[:, None] + stride[:, None] * np.arange(take, dtype=np.int64)) % size]
        return [list(zip(row, repeat(0.0))) for row in _without_queries(walk.tolist(), walk, queries, k)]


class PopularSource:
    """The most-rated movies (counts from whatever ratings the caller trusts)."""

    name = "popular"
    walks_catalogue = True

    def __init__(self, counts: dict[int, int]) -> None:
        ids = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        hits = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
        ids, hits = ids[hits > 0], hits[hits > 0]
        ranked = np.lexsort((ids, -hits))  # most counts first, ties by movie id
        self._ids = ids[ranked]
        self._scores = hits[ranked] / (hits[ranked[0]] if len(ranked) else 1)  # float64, as c / top

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        queries = np.asarray(movie_ids, dtype=np.int64).reshape(-1)
        head = self._ids[: max(k, 0) + 1]
        pairs = list(zip(head.tolist(), self._scores[: len(head)].tolist()))
        return _without_queries([pairs] * len(queries), np.broadcast_to(head, (len(queries), len(head))), queries, k)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-mixed uint64 per input uint64."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _without_queries(rows: list[list[Any]], ids: np.ndarray, queries: np.ndarray, k: int) -> list[list[Any]]:
    """The first k items of each row other than its query movie; `ids[i]` are row i's (distinct) ids.

    Only slicing per row: where the query sits is found for the whole batch at once."""
    if k <= 0:
        return [[] for _ in queries]
    hit = ids == queries[:, None]
    at = np.where(hit.any(axis=1), hit.argmax(axis=1), -1).tolist()
    return [row[:k] if p < 0 else row[:p] + row[p + 1 : k + 1] for row, p in zip(rows, at)]


class SeriesSource:
    """Other movies of the same series, newest release first (seed 002's ORDER BY release_date DESC)."""

    name = "series"

    def __init__(
        self, movie_ids: Sequence[int], series_ids: Sequence[int | None], release_dates: Sequence[date | None]
    ) -> None:
        members: dict[int, list[tuple[date, int]]] = defaultdict(list)
        self._series_of: dict[int, int] = {}
        for movie_id, series_id, released in zip(movie_ids, series_ids, release_dates):
            if series_id is not None:
                self._series_of[int(movie_id)] = int(series_id)
                members[int(series_id)].append((released or date.min, int(movie_id)))
        self._members = {
            s: [m for _, m in sorted(items, key=lambda dm: (-dm[0].toordinal(), dm[1]))] for s, items in members.items()
        }

    def series_of(self, movie_id: int) -> int | None:
        return self._series_of.get(int(movie_id))

    def in_release_order(self, movie_id: int) -> list[int]:
        """Every part of the movie's series (itself included), oldest release first; [] outside a series."""
        series_id = self._series_of.get(int(movie_id))
        return self._members[series_id][::-1] if series_id is not None else []

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        out = []
        for movie_id in movie_ids:
            series_id = self._series_of.get(int(movie_id))
            others = [m for m in self._members.get(series_id, ()) if m != movie_id] if series_id is not None else []
            out.append([(m, 1.0) for m in others[:k]])
        return out


class VectorIndex(Protocol):
    """The part of the vector store the vector source needs."""

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]: ...

    def search_batch(
        self, vectors: np.ndarray, k: int, exclude: Sequence[Sequence[int]] | None = None
    ) -> list[list[tuple[int, float]]]: ...


class VectorSource:
    """Nearest overview embeddings (cosine) of the query movie's stored vector."""

    name = "vector"

    def __init__(self, index: VectorIndex) -> None:
        self._index = index

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        stored = self._index.vectors([int(m) for m in movie_ids])
        known = [(pos, int(m)) for pos, m in enumerate(movie_ids) if int(m) in stored]
        out: list[list[tuple[int, float]]] = [[] for _ in movie_ids]
        if not known:
            return out
        matrix = np.stack([stored[m] for _, m in known])
        results = self._index.search_batch(matrix, k, exclude=[[m] for _, m in known])
        for (pos, movie_id), hits in zip(known, results):
            out[pos] = [(m, s) for m, s in hits if m != movie_id][:k]
        return out


class ItemSimilarity(Protocol):
    def similar(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]: ...


class CollaborativeSource:
    """Nearest ALS item factors: "people who liked this also liked"."""

    name = "collaborative"

    def __init__(self, model: ItemSimilarity) -> None:
        self._model = model

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        return self._model.similar([int(m) for m in movie_ids], k)
