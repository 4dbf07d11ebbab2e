"""Candidate sources: random, popular, series, vector (Qdrant) and collaborative (ALS)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Protocol

import numpy as np

from services.recommender.base import Source


class RandomSource:
    """Uniformly random catalogue movies, reproducible per (seed, query movie)."""

    name = "random"

    def __init__(self, movie_ids: Sequence[int], seed: int = 42) -> None:
        self._ids = np.asarray(sorted(set(int(m) for m in movie_ids)), dtype=np.int64)
        self._seed = seed

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        out = []
        for movie_id in movie_ids:
            rng = np.random.default_rng([self._seed, int(movie_id) & 0x7FFFFFFF])
            take = min(k + 1, len(self._ids))
            picked = self._ids[rng.choice(len(self._ids), size=take, replace=False)]
            out.append([(int(m), 0.0) for m in picked if m != movie_id][:k])
        return out


class PopularSource:
    """The most-rated movies (counts from whatever ratings the caller trusts)."""

    name = "popular"

    def __init__(self, counts: dict[int, int]) -> None:
        ranked = sorted(((c, m) for m, c in counts.items() if c > 0), key=lambda cm: (-cm[0], cm[1]))
        top = ranked[0][0] if ranked else 1
        self._ranked = [(m, c / top) for c, m in ranked]

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        head = self._ranked[: k + 1]
        return [[(m, s) for m, s in head if m != movie_id][:k] for movie_id in movie_ids]


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
            s: [m for _, m in sorted(items, key=lambda dm: (-dm[0].toordinal(), dm[1]))]
            for s, items in members.items()
        }

    def series_of(self, movie_id: int) -> int | None:
        return self._series_of.get(int(movie_id))

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


class LimitedSource:
    """Another source's first `limit` candidates only (hybrid's share of vector neighbours)."""

    def __init__(self, source: Source, limit: int) -> None:
        self.name = source.name
        self._source = source
        self._limit = limit

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        return self._source.candidates(movie_ids, min(k, self._limit))
