"""Strategies as ordered chains of candidate sources, and the standard set the product serves."""
from __future__ import annotations

from collections.abc import Sequence

from services.recommender.base import Recommendation, Source
from services.recommender.sources import (
    CollaborativeSource,
    ItemSimilarity,
    PopularSource,
    RandomSource,
    SeriesSource,
    VectorIndex,
    VectorSource,
)

STRATEGY_NAMES: tuple[str, ...] = (
    "random", "popular", "series", "vector", "collaborative", "series+vector", "hybrid",
)


class ChainStrategy:
    """Takes each source's candidates in turn, skipping the query and duplicates, until k are found."""

    def __init__(self, name: str, sources: Sequence[Source]) -> None:
        if not sources:
            raise ValueError(f"strategy {name!r} needs at least one source")
        self.name = name
        self.sources = list(sources)

    def similar(self, movie_id: int, k: int) -> list[Recommendation]:
        return self.similar_batch([movie_id], k)[0]

    def similar_batch(self, movie_ids: Sequence[int], k: int) -> list[list[Recommendation]]:
        ids = [int(m) for m in movie_ids]
        results: list[list[Recommendation]] = [[] for _ in ids]
        seen: list[set[int]] = [{m} for m in ids]
        for position, source in enumerate(self.sources):
            pending = [i for i, recs in enumerate(results) if len(recs) < k]
            if not pending:
                break
            # later sources may repeat earlier picks: ask for enough to still fill k
            want = k if position == 0 else 2 * k
            batch = source.candidates([ids[i] for i in pending], want)
            for i, candidates in zip(pending, batch):
                recs, taken = results[i], seen[i]
                for movie_id, score in candidates:
                    if len(recs) >= k:
                        break
                    if movie_id not in taken:
                        taken.add(movie_id)
                        recs.append(Recommendation(movie_id, float(score), source.name))
        return results


def build_strategies(
    *,
    movie_ids: Sequence[int],
    series: SeriesSource,
    popularity: dict[int, int],
    vectors: VectorIndex | None,
    collaborative: ItemSimilarity | None,
    seed: int = 42,
) -> dict[str, ChainStrategy]:
    """The seven strategies; those that need a missing part (vectors or ALS) are left out."""
    rand = RandomSource(movie_ids, seed)
    popular = PopularSource(popularity)
    chains: dict[str, list[Source]] = {
        "random": [rand],
        "popular": [popular],
        "series": [series, rand],
    }
    vector = VectorSource(vectors) if vectors is not None else None
    collab = CollaborativeSource(collaborative) if collaborative is not None else None
    if vector:
        chains["vector"] = [vector, rand]
        chains["series+vector"] = [series, vector, rand]
    if collab:
        chains["collaborative"] = [collab, rand]
    chains["hybrid"] = [series] + [s for s in (vector, collab) if s] + [popular]
    return {name: ChainStrategy(name, chains[name]) for name in STRATEGY_NAMES if name in chains}
