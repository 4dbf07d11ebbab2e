"""In-memory stand-ins for the stores: a hand-made catalogue, an exact vector index and an ALS double."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from services.recommender.filters import ItemFacts
from services.recommender.registry import SourceInputs, make_sources
from services.recommender.sources import SeriesSource
from services.recommender.standard import FusionConfig, build_strategies
from services.recommender.strategies import BatchStrategy
from services.stores.catalog import MovieFacts
from services.stores.popularity import Counts

IDS = list(range(1, 41))


SERIES = {1: 100, 2: 100, 3: 100, 10: 200, 11: 200}  # movie -> series


class ExactVectors:
    """Brute-force cosine index over random unit vectors (what Qdrant does, exactly)."""

    def __init__(self, ids: Sequence[int], dim: int = 8) -> None:
        rng = np.random.default_rng(0)
        m = rng.normal(size=(len(ids), dim)).astype(np.float32)
        self.ids = np.asarray(ids)
        self.m = m / np.linalg.norm(m, axis=1, keepdims=True)

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        pos = {int(m): i for i, m in enumerate(self.ids)}
        return {int(i): self.m[pos[int(i)]] for i in ids if int(i) in pos}

    def search_batch(self, vectors, k, exclude=None):
        out = []
        for row, ex in zip(vectors, exclude or [[]] * len(vectors)):
            scores = self.m @ row
            order = np.lexsort((self.ids, -scores))
            out.append([(int(self.ids[i]), float(scores[i])) for i in order if self.ids[i] not in ex][:k])
        return out


class FakeALS:
    def similar(self, movie_ids, k):
        out = []
        for m in movie_ids:
            near = [(m + j) % 40 + 1 for j in range(k + 1)]
            out.append([] if m == 40 else [(x, 1.0 - j / 100) for j, x in enumerate(near) if x != m][:k])
        return out


class FakeOrder:
    """A learned-model double: after a history, the ALS double's neighbours of its last movie."""

    def recommend(self, histories: Sequence[Sequence[int]], k: int, exclude_seen: bool = True) -> list:
        out = []
        for history in histories:
            found = FakeALS().similar([history[-1]], k + len(history))[0]
            out.append([(m, s) for m, s in found if not (exclude_seen and m in history)][:k])
        return out


# hybrid as the unit tests know it: series first, then vector neighbours, then collaborative ones
TEST_FUSION = FusionConfig({"series": 4.0, "vector": 2.0, "collaborative": 1.0}, depth=50, rank_constant=10.0)


def standard(
    *,
    movie_ids: Sequence[int],
    series: SeriesSource,
    popularity: dict[int, int],
    vectors: Any = None,
    collaborative: Any = None,
    sequential: Any = None,
    learned: Any = None,
    recent_popularity: dict[int, int] | None = None,
    fusion: FusionConfig = TEST_FUSION,
    seed: int = 42,
    facts: ItemFacts | None = None,
) -> dict[str, BatchStrategy]:
    """The registry's strategies over these parts (a test leaves out what it does not need: no sequential
    model, no recent counts, seed 42 and `TEST_FUSION` by default); `series` is the test's own source."""
    models = {"als": collaborative, "sequential": sequential, "learned": learned, "popularity": Counts(popularity, 0)}
    if recent_popularity is not None:
        models["recent-popular"] = Counts(recent_popularity, 0)
    catalogue = MovieFacts(
        list(movie_ids),
        [series.series_of(m) for m in movie_ids],
        [None] * len(movie_ids),
        [0] * len(movie_ids),
        [False] * len(movie_ids),
        [""] * len(movie_ids),
    )
    sources = make_sources(SourceInputs(catalogue, {k: v for k, v in models.items() if v is not None}, vectors, seed))
    return build_strategies({**sources, "series": series}, fusion, facts=facts)
