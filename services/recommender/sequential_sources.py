"""Candidate sources for "what next": the sequential co-visitation model and recent popularity."""

from __future__ import annotations

from collections.abc import Sequence

from services.recommender.sources import ItemSimilarity, PopularSource


class SequentialSource:
    """Movies viewers watched within the next few titles after the query movie (co-visitation)."""

    name = "sequential"

    def __init__(self, model: ItemSimilarity) -> None:
        self._model = model

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        return self._model.similar([int(m) for m in movie_ids], k)


class RecentPopularSource(PopularSource):
    """The most-rated movies of the last days (counts from `pipelines.collaborative.popularity`)."""

    name = "recent-popular"
