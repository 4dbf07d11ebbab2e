"""Hybrid's tunable vector share: series, at most N vector neighbours, collaborative, then the other neighbours."""
from __future__ import annotations

from datetime import date

import pytest

from services.recommender.sources import SeriesSource
from services.recommender.strategies import build_strategies
from tests.support.fakes import IDS, SERIES, ExactVectors, FakeALS


def _hybrid(limit: int | None):
    series = SeriesSource(IDS, [SERIES.get(m) for m in IDS], [date(1990 + m, 1, 1) for m in IDS])
    return build_strategies(
        movie_ids=IDS, series=series, popularity={m: 100 - m for m in IDS}, vectors=ExactVectors(IDS),
        collaborative=FakeALS(), seed=7, hybrid_vector_limit=limit,
    )["hybrid"]


@pytest.mark.parametrize("limit", [0, 1, 3, None])
def test_vector_share_is_capped_and_lists_stay_full(limit: int | None) -> None:
    for movie_id in (1, 10, 25):
        recs = _hybrid(limit).similar(movie_id, 10)
        sources = [r.source for r in recs]
        assert len({r.movie_id for r in recs}) == 10 and movie_id not in {r.movie_id for r in recs}
        assert sources.count("vector") <= (10 if limit is None else limit)
        assert sources == sorted(sources, key=["series", "vector", "collaborative", "popular"].index)
        if limit == 0:
            assert "vector" not in sources and "collaborative" in sources


@pytest.mark.parametrize("limit", [0, 2])
def test_vectors_still_answer_movies_als_does_not_know(limit: int) -> None:
    recs = _hybrid(limit).similar(40, 10)  # FakeALS knows nothing about movie 40
    assert [r.source for r in recs] == ["vector"] * 10
    assert [r.movie_id for r in recs] == [r.movie_id for r in _hybrid(None).similar(40, 10)]


def test_the_cap_takes_the_nearest_neighbours() -> None:
    capped = [r.movie_id for r in _hybrid(3).similar(25, 10) if r.source == "vector"]
    unlimited = [r.movie_id for r in _hybrid(None).similar(25, 10) if r.source == "vector"]
    assert capped == unlimited[:3]
