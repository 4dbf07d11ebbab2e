"""The evaluator: next-item pairs, deterministic ties, metrics on hand-made pairs with known hits."""
from __future__ import annotations

import pandas as pd
import pytest

from pipelines.evaluation import evaluate_strategies, next_item_pairs, score_lists
from services.recommender.base import Recommendation


def _ratings(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["userId", "movieId", "timestamp"])
    frame["rating"] = 4.0
    return frame


def test_pairs_follow_each_users_time_order() -> None:
    ratings = _ratings([(1, 10, 100), (1, 20, 200), (1, 30, 300), (2, 20, 150), (2, 10, 250)])
    pairs = next_item_pairs(ratings, min_ratings=1, n_pairs=10)
    assert pairs[["userId", "prev_movieId", "movieId"]].values.tolist() == [[1, 10, 20], [2, 20, 10], [1, 20, 30]]


def test_min_ratings_filters_movies_before_pairing() -> None:
    ratings = _ratings([(1, 10, 100), (1, 99, 150), (1, 20, 200), (2, 10, 100), (2, 20, 300)])
    pairs = next_item_pairs(ratings, min_ratings=2, n_pairs=10)
    assert pairs[["prev_movieId", "movieId"]].values.tolist() == [[10, 20], [10, 20]]


def test_latest_n_and_ties_are_deterministic() -> None:
    rows = [(1, 10, 100), (1, 30, 500), (1, 20, 500), (2, 10, 100), (2, 20, 500)]
    ratings = _ratings(rows)
    first = next_item_pairs(ratings, min_ratings=1, n_pairs=2)
    shuffled = next_item_pairs(ratings.sample(frac=1, random_state=3), min_ratings=1, n_pairs=2)
    pd.testing.assert_frame_equal(first, shuffled)
    # user 1 at t=500: movies 20 then 30 (movieId breaks the tie); latest two by (t, user, movie)
    assert first[["userId", "prev_movieId", "movieId"]].values.tolist() == [[1, 20, 30], [2, 10, 20]]


def test_metrics_on_known_hits() -> None:
    recs = [
        [Recommendation(5, 1, "series"), Recommendation(6, 1, "series")],  # hit at rank 1
        [Recommendation(7, 1, "random"), Recommendation(8, 1, "random")],  # hit at rank 2, not own source
        [Recommendation(9, 1, "series")],  # miss
        [],  # miss
    ]
    score = score_lists(recs, [5, 8, 1, 2], k=2, own_sources={"series"}, catalog_size=10)
    assert score.hit_ratio == pytest.approx(0.5)
    assert score.mrr == pytest.approx((1 + 0.5) / 4)
    assert score.ndcg == pytest.approx((1 + 1 / 1.5849625007211562) / 4)
    assert score.answered == pytest.approx(0.5)
    assert score.coverage == pytest.approx(5 / 10)


def test_only_top_k_counts() -> None:
    recs = [[Recommendation(i, 0, "vector") for i in range(1, 12)]]
    assert score_lists(recs, [11], k=10, own_sources={"vector"}, catalog_size=20).hit_ratio == 0
    assert score_lists(recs, [10], k=10, own_sources={"vector"}, catalog_size=20).hit_ratio == 1


def test_evaluate_strategies_uses_the_batch_path() -> None:
    class Echo:
        name = "echo"
        sources = ()

        def similar_batch(self, ids, k):
            return [[Recommendation(m + 1, 1.0, "echo")] for m in ids]

    pairs = pd.DataFrame({"userId": [1, 2], "prev_movieId": [1, 5], "movieId": [2, 7], "timestamp": [1, 2]})
    scores = evaluate_strategies({"echo": Echo()}, pairs, k=10, catalog_size=10)
    assert scores["echo"].hit_ratio == 0.5 and scores["echo"].answered == 1.0
