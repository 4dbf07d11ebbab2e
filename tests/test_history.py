"""The history sources and strategies: exact scores on hand-made data, the seen filter, recency, fallbacks."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from services.recommender.base import History
from services.recommender.history import (
    IgnoringHistory,
    SequentialHistorySource,
    SeriesHistorySource,
    VectorHistorySource,
)
from services.recommender.registry import REGISTRY
from services.recommender.sources import PopularSource, RandomSource, SeriesSource
from services.recommender.standard import FusionConfig, build_strategies
from services.stores.sequential import SequentialModel, SequentialParams
from tests.support.fakes import IDS, ExactVectors

PARAMS = SequentialParams(window=10, backward_weight=0.0, popularity_damping=0.0, neighbours=10, min_rating=None)


def hand_made_model() -> SequentialModel:
    """1 -> (2: 0.5, 3: 0.25); 2 -> (3: 1.0, 4: 0.5); 3 -> (4: 2.0); 4 -> nothing."""
    items = np.array([1, 2, 3, 4])
    rows = [[(1, 0.5), (2, 0.25)], [(2, 1.0), (3, 0.5)], [(3, 2.0)], []]
    indptr = np.cumsum([0, *(len(r) for r in rows)])
    indices = np.array([c for r in rows for c, _ in r], dtype=np.int32)
    scores = np.array([s for r in rows for _, s in r], dtype=np.float32)
    return SequentialModel(items, indptr, indices, scores, np.ones(len(scores), np.int32), PARAMS)


def test_sequential_history_scores_are_the_decayed_sum_of_the_last_movies() -> None:
    source = SequentialHistorySource(hand_made_model(), last=10, decay=0.7)
    # recent first: 2 (weight 1), then 1 (weight 0.7); 2 is seen, so only 3 and 4 remain
    [found] = source.candidates([History((1, 2))], 10)
    assert found == [(3, pytest.approx(1.0 + 0.7 * 0.25)), (4, pytest.approx(0.5))]
    [with_seen] = source.candidates([History((1, 2), drop_seen=False)], 10)
    assert with_seen == [(3, pytest.approx(1.175)), (4, pytest.approx(0.5)), (2, pytest.approx(0.35))]


def test_scaled_and_forward_scorings_weigh_each_movie_by_its_decay_alone() -> None:
    model = hand_made_model()  # viewer counts: 1 everywhere
    # recent first: 3 (best 2.0, weight 1), 1 (best 0.5, weight 0.5); 1 and 3 are seen
    [raw] = SequentialHistorySource(model, last=10, decay=0.5).candidates([History((1, 3))], 10)
    assert raw == [(4, pytest.approx(2.0)), (2, pytest.approx(0.5 * 0.5))]
    [scaled] = SequentialHistorySource(model, last=10, decay=0.5, scoring="scaled").candidates([History((1, 3))], 10)
    assert scaled == [(4, pytest.approx(2.0 / 2.0)), (2, pytest.approx(0.5 * 0.5 / 0.5))]
    # forward: viewer counts (1) over the row's best count (1); 1's two candidates tie, 3's one weighs 1
    [forward] = SequentialHistorySource(model, last=10, decay=0.5, scoring="forward").candidates([History((1, 3))], 10)
    assert forward == [(4, pytest.approx(1.0)), (2, pytest.approx(0.5))]
    [two] = SequentialHistorySource(model, last=10, decay=0.5, scoring="forward").candidates([History((3, 1))], 10)
    assert two == [(2, pytest.approx(1.0)), (4, pytest.approx(0.5))]  # 1 now the most recent: 2 first, 4 from 3
    with pytest.raises(ValueError, match="scoring"):
        SequentialHistorySource(model, last=10, decay=0.5, scoring="both")


def test_only_the_last_movies_count_and_order_matters() -> None:
    model = hand_made_model()
    assert SequentialHistorySource(model, last=1, decay=0.7).candidates([History((1, 2))], 10) == [
        [(3, pytest.approx(1.0)), (4, pytest.approx(0.5))]
    ]
    # the same movies in the other order: 1 is now the most recent
    [found] = SequentialHistorySource(model, last=10, decay=0.5).candidates([History((2, 1))], 10)
    assert found == [(3, pytest.approx(0.25 + 0.5 * 1.0)), (4, pytest.approx(0.5 * 0.5))]


def test_a_repeated_movie_counts_once_at_its_latest_position() -> None:
    assert History((1, 2, 1)).recent(10) == [1, 2]
    assert History((5, 6, 7, 8)).recent(2) == [8, 7]


def test_series_history_gives_the_next_parts_first() -> None:
    ids = [1, 2, 3, 4, 5]
    series = SeriesSource(ids, [7, 7, 7, 7, None], [date(2000 + m, 1, 1) for m in ids])
    [found] = SeriesHistorySource(series, last=5, decay=0.7).candidates([History((2,))], 10)
    assert [m for m, _ in found] == [3, 4, 1]  # the next parts in release order, then the earlier one
    [found] = SeriesHistorySource(series, last=5, decay=0.7).candidates([History((2, 3))], 10)
    assert [m for m, _ in found] == [4, 1]  # seen parts never come back


def test_vector_history_searches_near_the_recent_movies_and_never_returns_them() -> None:
    index = ExactVectors(IDS)
    [found] = VectorHistorySource(index, last=3, decay=0.7).candidates([History((1, 2, 3))], 5)
    assert len(found) == 5 and not {1, 2, 3} & {m for m, _ in found}
    [alone] = VectorHistorySource(index, last=1, decay=0.7).candidates([History((1, 2, 3))], 5)
    assert alone == index.search_batch(index.m[2:3], 5, [[1, 2, 3]])[0]


def test_a_history_strategy_drops_seen_movies_and_fills_from_popular() -> None:
    popular = IgnoringHistory(PopularSource({m: 100 - m for m in range(1, 11)}))
    sources = {"sequential": SequentialHistorySource(hand_made_model(), 10, 0.7), "popular": popular}
    strategy = build_strategies(
        {**dict.fromkeys(REGISTRY.sources), **sources}, FusionConfig({"sequential": 1.0}, 50, 60.0)
    )["hybrid"]
    [items] = strategy.similar_batch([History((1, 2))], 5)
    assert [r.movie_id for r in items] == [3, 4, 5, 6, 7]
    assert [r.source for r in items] == ["sequential", "sequential", "popular", "popular", "popular"]
    [again] = strategy.similar_batch([History((1, 2), drop_seen=False)], 3)
    assert [r.movie_id for r in again] == [3, 4, 2]


def test_random_over_a_history_draws_per_viewer_and_never_a_seen_movie() -> None:
    source = IgnoringHistory(RandomSource(IDS, seed=7))
    a, b, again = source.candidates([History((3, 5)), History((5, 3)), History((3, 5))], 10)
    assert a == again and a != b  # reproducible for a viewer, different across viewers (same movies seen)
    assert not {3, 5} & ({m for m, _ in a} | {m for m, _ in b})
