"""Filters inside the strategies (exclude / genre / adult, with over-fetching) and serving degradation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pytest

from services.recommender.filters import Filter, ItemFacts, UnknownGenre
from services.recommender.sources import SeriesSource
from tests.support.fakes import IDS, SERIES, ExactVectors, FakeALS, standard

# movies 1..40: even ids are comedies, every fifth is adult, 7 is a drama only
GENRES = ["Comedy" if m % 2 == 0 else ("Drama" if m == 7 else "Action|Thriller") for m in IDS]
ADULT = [m % 5 == 0 for m in IDS]


@pytest.fixture
def facts() -> ItemFacts:
    return ItemFacts(IDS, GENRES, ADULT)


def strategies_with(facts: ItemFacts, vectors: object | None = None, collaborative: object | None = None) -> dict:
    series = SeriesSource(IDS, [SERIES.get(m) for m in IDS], [date(1990 + m, 1, 1) for m in IDS])
    return standard(
        movie_ids=IDS,
        series=series,
        popularity={m: 100 - m for m in IDS},
        vectors=vectors if vectors is not None else ExactVectors(IDS),
        collaborative=collaborative if collaborative is not None else FakeALS(),
        seed=7,
        facts=facts,
    )


def test_item_facts(facts: ItemFacts) -> None:
    assert facts.genres == ["Action", "Comedy", "Drama", "Thriller"]
    assert facts.genre("comedy") == "Comedy" and facts.genres_containing("thr") == ["Thriller"]
    with pytest.raises(UnknownGenre, match="known genres: Action, Comedy, Drama, Thriller"):
        facts.genre("Western")
    assert 3 in facts and 41 not in facts and facts.unknown([41, 3, 41, 42]) == [41, 42]
    assert facts.predicate(Filter()) is None
    keep = facts.predicate(Filter.of(exclude=[4], genre="Comedy", include_adult=False))
    assert [m for m in IDS if keep(m)] == [m for m in IDS if m % 2 == 0 and m % 5 and m != 4]


def test_sample_is_distinct_and_respects_genre_and_adult(facts: ItemFacts) -> None:
    rng = np.random.default_rng(0)
    picked = facts.sample(["Comedy"], 50, include_adult=False, rng=rng)
    assert sorted(picked) == [m for m in IDS if m % 2 == 0 and m % 5]
    assert len(set(facts.sample(None, 10, include_adult=True, rng=rng))) == 10
    assert facts.sample(["Western"], 5, include_adult=True, rng=rng) == []


@pytest.mark.parametrize("name", ["random", "popular", "series", "vector", "collaborative", "series+vector", "hybrid"])
@pytest.mark.parametrize(
    "rules",
    [
        Filter.of(exclude=[2, 3, 4, 5, 6]),
        Filter.of(genre="Comedy"),
        Filter.of(include_adult=False),
        Filter.of(exclude=[8], genre="Comedy", include_adult=False),
    ],
)
def test_every_strategy_filters_and_still_fills_k(facts: ItemFacts, name: str, rules: Filter) -> None:
    keep = facts.predicate(rules)
    strategy = strategies_with(facts)[name]
    for movie_id, recs in zip(IDS, strategy.similar_batch(IDS, 5, filter=rules)):
        ids = [r.movie_id for r in recs]
        assert all(keep(m) for m in ids) and movie_id not in ids and len(ids) == len(set(ids))
        assert len(ids) == 5 or name in ("series",), (movie_id, ids)


def test_a_rare_genre_is_found_by_asking_sources_again(facts: ItemFacts) -> None:
    recs = strategies_with(facts)["vector"].similar(1, 3, filter=Filter.of(genre="Drama"))
    assert [(r.movie_id, r.source) for r in recs] == [(7, "vector")]  # the only drama, found deep in the list


def test_no_filter_keeps_the_old_behaviour(facts: ItemFacts) -> None:
    strategies = strategies_with(facts)
    for name, strategy in strategies.items():
        assert strategy.similar_batch(IDS, 7) == strategy.similar_batch(IDS, 7, filter=None), name


class Broken:
    """A vector index (or ALS model) that is down."""

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        raise ConnectionError("vector store down")

    def search_batch(self, *args: object, **kwargs: object) -> list:
        raise ConnectionError("vector store down")

    def similar(self, movie_ids: Sequence[int], k: int) -> list:
        raise TimeoutError("model timed out")


def test_hybrid_serves_without_a_failing_source_and_says_so(facts: ItemFacts) -> None:
    strategies = strategies_with(facts, vectors=Broken())
    result = strategies["hybrid"].recommend_batch([1, 2], 5)
    assert result.degraded and result.missing == ["vector"]
    assert all(len(recs) == 5 for recs in result.items)
    assert {r.source for recs in result.items for r in recs} <= {"series", "collaborative", "popular"}
    both = strategies_with(facts, vectors=Broken(), collaborative=Broken())["hybrid"].recommend_batch([1], 5)
    assert both.missing == ["vector", "collaborative"] and len(both.items[0]) == 5


def test_failures_propagate_outside_hybrid_and_in_similar_batch(facts: ItemFacts) -> None:
    strategies = strategies_with(facts, vectors=Broken())
    with pytest.raises(ConnectionError):
        strategies["vector"].recommend_batch([1], 5)
    with pytest.raises(ConnectionError):  # the evaluator's path never degrades silently
        strategies["hybrid"].similar_batch([1], 5)


def test_hybrid_built_without_a_part_reports_it_missing() -> None:
    series = SeriesSource(IDS, [SERIES.get(m) for m in IDS], [date(1990 + m, 1, 1) for m in IDS])
    strategies = standard(
        movie_ids=IDS, series=series, popularity={m: 1 for m in IDS}, vectors=None, collaborative=FakeALS()
    )
    assert strategies["hybrid"].recommend_batch([1], 3).missing == ["vector"]
    assert strategies["collaborative"].recommend_batch([1], 3).missing == []
    assert "vector" not in strategies


def test_filtering_needs_facts() -> None:
    series = SeriesSource(IDS, [None] * len(IDS), [None] * len(IDS))
    strategies = standard(movie_ids=IDS, series=series, popularity={1: 1}, vectors=None, collaborative=None)
    with pytest.raises(ValueError, match="no catalogue facts"):
        strategies["popular"].similar(1, 3, filter=Filter.of(exclude=[2]))


@pytest.mark.parametrize("name", ["random", "popular", "series", "vector", "hybrid"])
def test_a_genre_few_movies_have_still_fills_k_from_the_whole_catalogue(name: str) -> None:
    """60 Film-Noir movies in a 10,000-movie catalogue: the fallbacks walk the whole catalogue (not only the
    first MAX_FETCH candidates, ~12 of them noir), so k=50 noir movies come back."""
    ids = list(range(1, 10_001))
    genres = ["Film-Noir" if m % 166 == 0 else "Drama" for m in ids]
    facts = ItemFacts(ids, genres, [False] * len(ids))
    series = SeriesSource(ids, [None] * len(ids), [date(2000, 1, 1)] * len(ids))
    strategies = standard(
        movie_ids=ids,
        series=series,
        popularity={m: 10_001 - m for m in ids},
        vectors=ExactVectors(ids),
        collaborative=FakeALS(),
        seed=7,
        facts=facts,
    )
    answer = strategies[name].similar(3, 50, filter=Filter.of(genre="Film-Noir"))
    assert len(answer) == 50 and all(r.movie_id % 166 == 0 for r in answer)
    everything = strategies[name].similar(3, 100, filter=Filter.of(genre="Film-Noir"))
    assert len(everything) == 60  # every noir movie, and no more exist
