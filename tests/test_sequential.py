"""Sequential co-visitation: exact counts, pruning, persistence, determinism and no leakage."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.collaborative.popularity import DAY_SECONDS, recent_popularity
from pipelines.collaborative.sequential import build_sequential
from services.recommender.sequential_sources import (
    RecentPopularSource,
    SequentialSource,
)
from services.stores.sequential import SequentialModel, SequentialParams


def params(window: int = 2, b: float = 0.5, beta: float = 0.0, n: int = 100, min_rating: float | None = None):
    return SequentialParams(
        window=window, backward_weight=b, popularity_damping=beta, neighbours=n, min_rating=min_rating
    )


def frame(rows: list[tuple[int, int, int]], rating: float = 4.0) -> pd.DataFrame:
    users, movies, stamps = zip(*rows)
    return pd.DataFrame({"userId": users, "movieId": movies, "rating": rating, "timestamp": stamps})


# user 1 watches 10, 20, 30, 40; user 2 watches 20, 10, 30
HAND = frame([(1, 10, 1), (1, 20, 2), (1, 30, 3), (1, 40, 4), (2, 20, 5), (2, 10, 6), (2, 30, 7)])


def reference(ratings: pd.DataFrame, p: SequentialParams) -> tuple[dict, dict]:
    """Plain loops: (scores, viewers) keyed by (movie, candidate), before pruning."""
    if p.min_rating is not None:
        ratings = ratings[ratings["rating"] >= p.min_rating]
    scores: dict[tuple[int, int], float] = defaultdict(float)
    viewers: dict[tuple[int, int], set] = defaultdict(set)
    for user, group in ratings.groupby("userId"):
        ordered = group.sort_values(["timestamp", "movieId"]).drop_duplicates("movieId")["movieId"].tolist()
        for i, a in enumerate(ordered):
            for j in range(i + 1, min(i + p.window, len(ordered) - 1) + 1):
                d, b = j - i, ordered[j]
                scores[(a, b)] += 1 / d
                viewers[(a, b)].add(user)
                if p.backward_weight > 0:
                    scores[(b, a)] += p.backward_weight / d
    counts = ratings.drop_duplicates(["userId", "movieId"])["movieId"].value_counts()
    if p.popularity_damping:
        scores = {(a, b): s / counts[b] ** p.popularity_damping for (a, b), s in scores.items()}
    return dict(scores), {key: len(users) for key, users in viewers.items()}


def ranked(scores: dict, movie: int, n: int) -> list[tuple[int, float]]:
    row = [(b, s) for (a, b), s in scores.items() if a == movie]
    return sorted(row, key=lambda bs: (-bs[1], bs[0]))[:n]


def test_hand_made_sequence_exact_scores_ties_and_viewers():
    model = build_sequential(HAND, params(window=2, b=0.5))
    # 10 -> 20: forward d=1 (user 1) + backward 0.5 (user 2 watched 20 just before 10); 10 -> 30: 1/2 + 1
    assert model.similar([10], 10) == [[(20, 1.5), (30, 1.5)]]  # tie: lower movieId first
    assert model.similar([20], 10) == [[(10, 1.5), (30, 1.5), (40, 0.5)]]
    assert model.similar([30], 10) == [[(40, 1.0), (10, 0.75), (20, 0.75)]]
    assert model.similar([40], 10) == [[(30, 0.5), (20, 0.25)]]
    assert model.viewers(10, [20, 30, 40]) == {20: 1, 30: 2}
    assert model.viewers(30, [40, 10]) == {40: 1, 10: 0}  # 30 -> 10 only from the reverse direction
    assert model.viewers(99, [10]) == {}


def test_window_bounds_the_distance_and_backward_weight_zero():
    model = build_sequential(HAND, params(window=1, b=0.0))
    assert model.similar([10, 20, 30, 40], 10) == [[(20, 1.0), (30, 1.0)], [(10, 1.0), (30, 1.0)], [(40, 1.0)], []]


@pytest.mark.parametrize("window,b,beta", [(1, 0.0, 0.0), (3, 0.5, 0.0), (5, 1.0, 0.5), (12, 2.0, 1.0)])
def test_matches_plain_loops_on_random_sequences(window: int, b: float, beta: float):
    rng = np.random.default_rng(window)
    rows = [
        (int(u), int(m), int(t))
        for u, m, t in zip(rng.integers(0, 30, 900), rng.integers(0, 60, 900), rng.integers(0, 200, 900))
    ]  # repeats and equal times
    ratings = frame(rows)
    p = params(window=window, b=b, beta=beta, n=1000)
    scores, viewers = reference(ratings, p)
    model = build_sequential(ratings, p)
    for movie in sorted(ratings["movieId"].unique()):
        got = model.similar([movie], 1000)[0]
        want = ranked(scores, movie, 1000)
        assert dict(got) == pytest.approx(dict(want), rel=1e-5)
        assert got == sorted(got, key=lambda ms: (-ms[1], ms[0]))
        assert model.viewers(movie, [m for m, _ in got]) == {m: viewers.get((movie, m), 0) for m, _ in got}


def test_pruning_keeps_the_top_n_by_score_then_movie_id():
    rng = np.random.default_rng(7)
    ratings = frame(
        [
            (int(u), int(m), int(t))
            for u, m, t in zip(rng.integers(0, 40, 2000), rng.integers(0, 50, 2000), rng.integers(0, 10**6, 2000))
        ]
    )
    p = params(window=4, b=0.5, n=3)
    scores, _ = reference(ratings, p)
    model = build_sequential(ratings, p)
    for movie in sorted(ratings["movieId"].unique()):
        got = model.similar([movie], 10)[0]
        assert len(got) == min(3, len(ranked(scores, movie, 1000)))
        assert [s for _, s in got] == pytest.approx([s for _, s in ranked(scores, movie, 3)], rel=1e-5)
    assert np.all(np.diff(model.indptr) <= 3)


def test_blocks_row_order_and_min_rating_do_not_change_the_result():
    rng = np.random.default_rng(3)
    ratings = frame(
        [
            (int(u), int(m), int(t))
            for u, m, t in zip(rng.integers(0, 50, 3000), rng.integers(0, 80, 3000), rng.integers(0, 500, 3000))
        ]
    )
    ratings["rating"] = rng.choice([1.0, 3.0, 5.0], len(ratings))
    p = params(window=5, b=0.5, beta=0.25, n=20)
    whole = build_sequential(ratings, p)
    for other in (
        build_sequential(ratings, p, block_pairs=1),
        build_sequential(ratings.sample(frac=1.0, random_state=1), p),
    ):
        for name in ("item_ids", "indptr", "indices", "scores", "viewer_counts"):
            assert np.array_equal(getattr(whole, name), getattr(other, name)), name
    liked = build_sequential(ratings, params(window=5, b=0.5, beta=0.25, n=20, min_rating=3.0))
    plain = build_sequential(ratings[ratings["rating"] >= 3.0], p)
    assert np.array_equal(liked.scores, plain.scores) and np.array_equal(liked.indices, plain.indices)


def test_empty_and_single_rating_histories():
    empty = build_sequential(HAND.iloc[:0], params())
    assert empty.similar([10], 5) == [[]] and empty.info["ratings"] == 0
    single = build_sequential(HAND.iloc[:1], params())
    assert single.similar([10], 5) == [[]] and 10 in single


def test_popularity_damping_divides_by_the_candidates_count():
    ratings = frame([(1, 1, 1), (1, 2, 2), (2, 1, 3), (2, 3, 4), (3, 3, 5), (4, 3, 6)])
    model = build_sequential(ratings, params(window=1, b=0.0, beta=1.0))
    assert model.similar([1], 5) == [[(2, 1.0), (3, pytest.approx(1 / 3))]]


def test_similar_batches_unknown_movies_and_never_the_query():
    model = build_sequential(HAND, params())
    assert model.similar([99, 10, 99], 1) == [[], [(20, 1.5)], []]
    assert model.similar([10], 0) == [[]]
    assert model.similar([], 5) == []
    assert all(m != q for q in (10, 20, 30, 40) for m, _ in model.similar([q], 10)[0])
    assert SequentialSource(model).candidates([20], 2) == [[(10, 1.5), (30, 1.5)]]


def test_save_load_round_trip(tmp_path: Path):
    model = build_sequential(HAND, params(window=3, b=0.25, beta=0.5, n=2))
    assert not SequentialModel.exists(tmp_path)
    model.save(tmp_path)
    assert SequentialModel.exists(tmp_path)
    arrays = ["item_ids", "indptr", "indices", "scores", "viewers"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["sequential.json", *(f"sequential.{name}.npy" for name in arrays)]
    )
    loaded = SequentialModel.load(tmp_path)
    assert loaded.params == model.params and loaded.info == model.info
    for name in ("item_ids", "indptr", "indices", "scores", "viewer_counts"):
        assert np.array_equal(getattr(loaded, name), getattr(model, name))
        assert not getattr(loaded, name).flags.writeable  # mapped read-only, shared by workers
    assert loaded.similar([10, 20, 30, 40], 5) == model.similar([10, 20, 30, 40], 5)
    assert all(np.load(tmp_path / f"sequential.{name}.npy", allow_pickle=False).dtype != object for name in arrays)


def test_params_have_no_defaults_and_are_checked():
    with pytest.raises(TypeError):
        SequentialParams()  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        params(window=0)
    with pytest.raises(ValueError):
        params(n=0)


def test_no_leakage_ratings_after_the_cutoff_change_nothing():
    rng = np.random.default_rng(11)
    rows = [
        (int(u), int(m), int(t))
        for u, m, t in zip(
            rng.integers(0, 30, 1500), rng.integers(0, 60, 1500), rng.integers(0, 100 * DAY_SECONDS, 1500)
        )
    ]
    ratings = frame(rows)
    cutoff = 60 * DAY_SECONDS
    later = frame(
        [
            (int(u), int(m), cutoff + int(t))
            for u, m, t in zip(rng.integers(0, 40, 500), rng.integers(0, 90, 500), rng.integers(0, 10**6, 500))
        ]
    )
    before = ratings[ratings["timestamp"] < cutoff]
    grown = pd.concat([ratings, later], ignore_index=True)
    p = params(window=4, b=0.5, beta=0.5, n=10)
    a, b = build_sequential(before, p), build_sequential(grown[grown["timestamp"] < cutoff], p)
    for name in ("item_ids", "indptr", "indices", "scores", "viewer_counts"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert recent_popularity(ratings, cutoff, 30) == recent_popularity(grown, cutoff, 30)


def test_recent_popularity_counts_only_the_last_days_before_the_cutoff():
    day = DAY_SECONDS
    ratings = frame(
        [(1, 1, 10 * day), (2, 1, 10 * day), (1, 2, 3 * day), (3, 2, 11 * day), (4, 3, 12 * day - 1), (5, 4, 12 * day)]
    )
    assert recent_popularity(ratings, 12 * day, 2) == {1: 2, 2: 1, 3: 1}
    assert recent_popularity(ratings, 12 * day, 1) == {2: 1, 3: 1}
    source = RecentPopularSource(recent_popularity(ratings, 12 * day, 2))
    assert source.name == "recent-popular"
    assert source.candidates([1], 2) == [[(2, 0.5), (3, 0.5)]]
