"""The evaluator: next-item pairs, deterministic ties, metrics on hand-made pairs with known hits, agreement
with a plain reference implementation on random data, windows and user-bootstrap intervals."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

from pipelines.evaluation.bootstrap import resample_users, user_bootstrap
from pipelines.evaluation.metrics import evaluate_strategies, score_lists
from pipelines.evaluation.protocol import evaluation_windows, next_item_pairs
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


# ---- agreement with a plain, obviously-correct reference on random data -----------------------------


def _reference_pairs(rows: list[tuple[int, int, int]], min_ratings: int, n: int) -> list[tuple[int, int, int, int]]:
    """Seed 002's protocol written out by hand: (userId, prev_movieId, movieId, timestamp)."""
    counts: dict[int, int] = {}
    for _, movie, _ in rows:
        counts[movie] = counts.get(movie, 0) + 1
    by_user: dict[int, list[tuple[int, int]]] = {}
    for user, movie, t in rows:
        if counts[movie] >= min_ratings:
            by_user.setdefault(user, []).append((t, movie))
    pairs = []
    for user, events in by_user.items():
        events.sort()  # by (timestamp, movieId)
        for (_, prev), (t, movie) in zip(events, events[1:]):
            pairs.append((user, prev, movie, t))
    pairs.sort(key=lambda p: (p[3], p[0], p[2]))
    return pairs[-n:] if n else []


def _reference_metrics(lists: list[list[int]], targets: list[int], k: int) -> tuple[float, float, float]:
    hr = ndcg = mrr = 0.0
    for ids, target in zip(lists, targets):
        top = ids[:k]
        for rank, movie in enumerate(top, start=1):
            if movie == target:
                hr += 1
                ndcg += 1 / math.log2(rank + 1)
                mrr += 1 / rank
    return hr / len(targets), ndcg / len(targets), mrr / len(targets)


class Scrambler:
    """A made-up deterministic strategy: some movies get nothing, others up to 12 distinct movies."""

    name = "scrambler"

    def __init__(self, catalogue: list[int]) -> None:
        self.catalogue = catalogue

    def lists(self, movie_id: int) -> list[int]:
        rng = random.Random(movie_id)
        if rng.random() < 0.2:
            return []
        others = [m for m in self.catalogue if m != movie_id]
        return rng.sample(others, min(len(others), rng.randint(1, 12)))

    def similar_batch(self, ids, k):
        return [[Recommendation(m, 1.0, "scrambler") for m in self.lists(i)[:k]] for i in ids]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_evaluator_agrees_with_a_plain_reference_on_random_data(seed: int) -> None:
    rng = random.Random(seed)
    catalogue = list(range(1, 41))
    rows = []
    for user in range(1, 61):
        for movie in rng.sample(catalogue, rng.randint(2, 15)):
            rows.append((user, movie, rng.randint(0, 30)))  # few distinct seconds: many ties
    ratings = _ratings(rows).sample(frac=1, random_state=seed)  # row order must not matter
    min_ratings, n, k = 8, 150, rng.choice([5, 10])

    pairs = next_item_pairs(ratings, min_ratings=min_ratings, n_pairs=n)
    expected = _reference_pairs(rows, min_ratings, n)
    got = pairs[["userId", "prev_movieId", "movieId", "timestamp"]].values
    assert [tuple(int(x) for x in row) for row in got] == expected

    strategy = Scrambler(catalogue)
    score = evaluate_strategies({"scrambler": strategy}, pairs, k=k, catalog_size=len(catalogue), resamples=0)[
        "scrambler"
    ]
    lists = [strategy.lists(prev) for _, prev, _, _ in expected]
    targets = [movie for _, _, movie, _ in expected]
    hr, ndcg, mrr = _reference_metrics(lists, targets, k)
    assert score.hit_ratio == pytest.approx(hr, abs=1e-12)
    assert score.ndcg == pytest.approx(ndcg, abs=1e-12)
    assert score.mrr == pytest.approx(mrr, abs=1e-12)
    assert score.coverage == pytest.approx(len({m for ids in lists for m in ids[:k]}) / len(catalogue))
    assert score.answered == pytest.approx(sum(1 for ids in lists if ids) / len(lists))


def test_bootstrap_agrees_with_a_plain_loop_over_the_same_draws() -> None:
    rng = np.random.default_rng(5)
    users = rng.integers(100, 130, size=400)
    hits = (rng.random(400) < 0.15).astype(float)
    lo, hi = user_bootstrap(users, {"hr": hits}, resamples=300, seed=9)["hr"]
    distinct = sorted(set(users.tolist()))
    draws = resample_users(len(distinct), 300, 9)
    means = []
    for draw in draws:
        total = count = 0.0
        for index in draw:
            mine = hits[users == distinct[index]]
            total += mine.sum()
            count += len(mine)
        means.append(total / count)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), abs=1e-12)


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_users() -> None:
    rng = np.random.default_rng(0)

    def width(n_users: int) -> tuple[float, float, float]:
        users = np.repeat(np.arange(n_users), 20)
        rate = rng.uniform(0.0, 0.3, size=n_users)[users]  # users differ: pairs of one user are correlated
        hits = (rng.random(len(users)) < rate).astype(float)
        lo, hi = user_bootstrap(users, {"hr": hits}, resamples=1000, seed=1)["hr"]
        return lo, float(hits.mean()), hi

    few, many = width(10), width(1000)
    assert few[0] <= few[1] <= few[2] and many[0] <= many[1] <= many[2]
    assert many[2] - many[0] < (few[2] - few[0]) / 3


def test_user_bootstrap_is_wider_than_a_pair_bootstrap_when_users_differ() -> None:
    users = np.repeat(np.arange(20), 50)
    hits = np.repeat((np.arange(20) < 4).astype(float), 50)  # 4 users always hit, 16 never
    lo, hi = user_bootstrap(users, {"hr": hits}, resamples=1000, seed=3)["hr"]
    pair_lo, pair_hi = user_bootstrap(np.arange(len(hits)), {"hr": hits}, resamples=1000, seed=3)["hr"]
    assert hi - lo > 3 * (pair_hi - pair_lo)


def test_windows_are_consecutive_and_do_not_overlap() -> None:
    rows = [(u, m, 10 * u + m) for u in range(1, 21) for m in range(1, 8)]
    windows = evaluation_windows(_ratings(rows), min_ratings=1, n_pairs=30)
    everything = next_item_pairs(_ratings(rows), min_ratings=1, n_pairs=60)
    pd.testing.assert_frame_equal(pd.concat([windows.validation, windows.test], ignore_index=True), everything)
    assert windows.validation_cutoff < windows.test_cutoff
    assert int(windows.validation["timestamp"].max()) <= windows.test_cutoff


def test_evaluate_strategies_attaches_user_intervals() -> None:
    class Echo:
        sources = ()

        def similar_batch(self, ids, k):
            return [[Recommendation(m + 1, 1.0, "echo")] for m in ids]

    pairs = pd.DataFrame(
        {"userId": [1, 1, 2, 3], "prev_movieId": [1, 5, 2, 3], "movieId": [2, 7, 3, 9], "timestamp": [1, 2, 3, 4]}
    )
    score = evaluate_strategies({"echo": Echo()}, pairs, k=10, catalog_size=10, resamples=200, seed=1)["echo"]
    assert set(score.intervals) == {"hr", "ndcg", "mrr"}
    lo, hi = score.intervals["hr"]
    assert 0.0 <= lo <= score.hit_ratio <= hi <= 1.0 and hi > lo
    assert score.as_dict(10)["hr@10_ci"] == [lo, hi]
