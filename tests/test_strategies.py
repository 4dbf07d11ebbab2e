"""Every strategy's invariants on a hand-made catalogue with in-memory vectors and ALS stand-ins."""

from __future__ import annotations

from datetime import date

import pytest

from services.recommender.registry import strategy_names
from services.recommender.sources import SeriesSource
from services.recommender.standard import FusionConfig
from tests.support.fakes import IDS, SERIES, ExactVectors, FakeALS, FakeOrder, standard


@pytest.fixture
def strategies():
    series = SeriesSource(IDS, [SERIES.get(m) for m in IDS], [date(1990 + m, 1, 1) for m in IDS])
    return standard(
        movie_ids=IDS,
        series=series,
        popularity={m: 100 - m for m in IDS},
        vectors=ExactVectors(IDS),
        collaborative=FakeALS(),
        seed=7,
        sequential=FakeALS(),
        learned=FakeOrder(),
        recent_popularity={m: m for m in IDS[:5]},
    )


@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("k", [1, 5, 10, 39])
def test_invariants(strategies, name: str, k: int) -> None:
    strategy = strategies[name]
    batch = strategy.similar_batch(IDS, k)
    for movie_id, recs in zip(IDS, batch):
        ids = [r.movie_id for r in recs]
        assert movie_id not in ids
        assert len(ids) == len(set(ids)) == k
        assert set(ids) <= set(IDS)
    assert [strategy.similar(m, k) for m in IDS[:5]] == batch[:5]


def test_k_larger_than_catalogue_returns_everything_else(strategies) -> None:
    recs = strategies["hybrid"].similar(1, 100)
    assert sorted(r.movie_id for r in recs) == IDS[1:]


def test_series_first_newest_release_first(strategies) -> None:
    recs = strategies["series"].similar(1, 5)
    assert [(r.movie_id, r.source) for r in recs[:2]] == [(3, "series"), (2, "series")]
    assert {r.source for r in recs[2:]} == {"random"}


def test_hybrid_order_of_sources(strategies) -> None:
    recs = strategies["hybrid"].similar(10, 10)
    assert [r.source for r in recs] == ["series"] + ["vector"] * 9
    series = SeriesSource(IDS, [SERIES.get(m) for m in IDS], [date(1990 + m, 1, 1) for m in IDS])
    only_content = standard(
        movie_ids=IDS,
        series=series,
        popularity={m: 1 for m in IDS},
        vectors=ExactVectors(IDS),
        collaborative=None,
        fusion=FusionConfig({"series": 4.0, "vector": 2.0}, 50, 10.0),
    )
    assert [r.movie_id for r in only_content["hybrid"].similar(10, 10)] == [
        r.movie_id for r in strategies["series+vector"].similar(10, 10)
    ]


def test_vector_neighbours_are_the_exact_nearest(strategies) -> None:
    index = ExactVectors(IDS)
    expected = index.search_batch(index.m[:1], 5, [[1]])[0]
    assert [(r.movie_id, pytest.approx(r.score)) for r in strategies["vector"].similar(1, 5)] == expected


def test_hybrid_without_vectors_falls_back_to_collaborative_then_popular() -> None:
    series = SeriesSource(IDS, [SERIES.get(m) for m in IDS], [None] * len(IDS))
    strategies = standard(
        movie_ids=IDS, series=series, popularity={m: 100 - m for m in IDS}, vectors=None, collaborative=FakeALS()
    )
    assert "vector" not in strategies and "series+vector" not in strategies
    assert {r.source for r in strategies["hybrid"].similar(5, 10)} == {"collaborative"}
    recs = strategies["hybrid"].similar(40, 10)  # unknown to ALS
    assert [r.source for r in recs] == ["popular"] * 10 and 40 not in [r.movie_id for r in recs]


def test_random_is_reproducible_and_popular_is_ranked(strategies) -> None:
    assert strategies["random"].similar(3, 10) == strategies["random"].similar(3, 10)
    assert [r.movie_id for r in strategies["popular"].similar(1, 3)] == [2, 3, 4]
