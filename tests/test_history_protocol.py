"""The history and last-item protocols: what each row's history holds (never the target or anything after
it), the leave-last-out split and its training ratings, scoring and paired comparisons on hand-made rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.evaluation.history_protocol import histories_before, paired_comparisons, score_history_protocol
from pipelines.evaluation.last_item import VALIDATION, later_share, leave_last_out
from pipelines.evaluation.metrics import StrategyScore, compare_paired, evaluate_histories
from pipelines.evaluation.protocol import next_item_pairs
from services.recommender.base import History, Recommendation


def _ratings(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["userId", "movieId", "timestamp"])
    frame["rating"] = 4.0
    return frame


# user 1 rates 10, 20, then 30 and 40 in the same second (movieId breaks the tie), then 50; user 2 rates 20, 10
ROWS = [(1, 10, 100), (1, 20, 200), (1, 40, 300), (1, 30, 300), (1, 50, 400), (2, 20, 150), (2, 10, 250)]


def test_a_history_is_the_users_ratings_strictly_before_the_target_in_time_order() -> None:
    ratings = _ratings(ROWS).sample(frac=1, random_state=5)  # row order never matters
    pairs = next_item_pairs(ratings, min_ratings=1, n_pairs=10)
    histories = histories_before(ratings, pairs)
    by_target = {(int(u), int(m)): h for u, m, h in zip(pairs["userId"], pairs["movieId"], histories)}
    assert by_target[(1, 20)] == History((10,))
    assert by_target[(1, 30)] == History((10, 20))  # 40 has the same second but a larger id: after 30
    assert by_target[(1, 40)] == History((10, 20, 30))
    assert by_target[(1, 50)] == History((10, 20, 30, 40))
    assert by_target[(2, 10)] == History((20,))
    # every history ends with the pair's previous movie: the one-movie strategies' query is its last movie
    assert all(h.movies[-1] == p for h, p in zip(histories, pairs["prev_movieId"]))


def test_no_rating_at_or_after_the_target_reaches_the_history() -> None:
    rng = np.random.default_rng(3)
    rows = [
        (int(u), int(m), int(t))
        for u, m, t in zip(rng.integers(1, 30, 3000), rng.integers(1, 200, 3000), rng.integers(0, 500, 3000))
    ]
    ratings = _ratings(rows).drop_duplicates(["userId", "movieId"])
    pairs = next_item_pairs(ratings, min_ratings=3, n_pairs=300)
    histories = histories_before(ratings, pairs)
    when = {(int(u), int(m)): int(t) for u, m, t in ratings[["userId", "movieId", "timestamp"]].itertuples(index=False)}
    for (user, target, stamp), history in zip(
        pairs[["userId", "movieId", "timestamp"]].itertuples(index=False), histories
    ):
        assert target not in history.movies
        for movie in history.movies:  # strictly before the target in (timestamp, movieId) order
            assert (when[(user, movie)], movie) < (stamp, target)
        before = {m for (u, m), t in when.items() if u == user and (t, m) < (stamp, target)}
        assert set(history.movies) == before  # ... and all of those, unfiltered by min_ratings
        stamps = [(when[(user, m)], m) for m in history.movies]
        assert stamps == sorted(stamps)  # oldest first


def test_leave_last_out_holds_out_each_users_last_ratings_and_trains_on_the_rest() -> None:
    ratings = _ratings([*ROWS, (3, 10, 50), (3, 20, 60)])  # user 3 has 2 ratings: trains, no target
    test = leave_last_out(ratings)
    assert test.users.tolist() == [1] and test.targets.tolist() == [50]
    assert test.histories == [History((10, 20, 30, 40))]
    kept = set(map(tuple, test.train[["userId", "movieId"]].to_numpy().tolist()))
    assert (1, 50) not in kept and (1, 40) in kept and (2, 10) in kept and (3, 20) in kept
    assert len(test.train) == len(ratings) - 1
    validation = leave_last_out(ratings, VALIDATION)
    assert validation.targets.tolist() == [40] and validation.histories == [History((10, 20, 30))]
    kept = set(map(tuple, validation.train[["userId", "movieId"]].to_numpy().tolist()))
    assert not {(1, 40), (1, 50)} & kept and len(validation.train) == len(ratings) - 2
    assert validation.until == 301  # one after the newest training rating (user 1's 30, at t=300)


def test_the_split_states_how_much_later_training_data_it_uses() -> None:
    # user 1's target is at t=10; user 2 rates later: all of user 2's training ratings are newer than it
    ratings = _ratings([(1, 1, 1), (1, 2, 2), (1, 3, 10), (2, 1, 20), (2, 2, 30), (2, 3, 40)])
    split = leave_last_out(ratings)
    # training: (1,1,1) (1,2,2) (2,1,20) (2,2,30); target t=10 -> 2 of 4 newer; target t=40 -> none
    assert later_share(split) == pytest.approx((0.5 + 0.0) / 2)


class _Fixed:
    """A strategy answering a fixed list per history (by its last movie)."""

    def __init__(self, name: str, lists: dict[int, list[int]]) -> None:
        self.name = name
        self.lists = lists
        self.asked: list[History] = []

    def similar(self, movie_id, k):  # pragma: no cover - the evaluator uses the batch path
        raise AssertionError

    def similar_batch(self, queries, k):
        self.asked.extend(queries)
        return [[Recommendation(m, 1.0, self.name) for m in self.lists.get(q.movies[-1], [])][:k] for q in queries]


def test_history_protocol_scores_each_row_with_its_history_and_pairs_with_the_one_movie_hybrid() -> None:
    ratings = _ratings(ROWS)
    pairs = next_item_pairs(ratings, min_ratings=1, n_pairs=10)  # 5 rows: targets 20, 10, 30, 40, 50
    hybrid = _Fixed("hybrid", {10: [20], 20: [30], 30: [40], 40: [99]})  # hits 20, 30, 40 (user 1), not 10, 50
    sequential = _Fixed("sequential", {20: [30, 10]})  # hits 30 and user 2's 10
    seed_002 = {"hybrid": StrategyScore(ranks=np.array([-1] * 5), own=np.ones(5, bool), coverage=0.0)}
    one_movie = {"hybrid": _OneMovie({10: [20]})}  # hits user 1's 20 only
    result = score_history_protocol(
        {"sequential": sequential, "hybrid": hybrid},
        ratings,
        pairs,
        2,
        100,
        resamples=200,
        seed=1,
        one_movie=one_movie,
        seed_002=seed_002,
    )
    assert result.scores["hybrid"].hit_ratio == pytest.approx(3 / 5)
    assert result.scores["sequential"].hit_ratio == pytest.approx(2 / 5)
    assert [len(h.movies) for h in hybrid.asked] == [1, 1, 2, 3, 4]  # rows in pair order
    payload = result.as_json()
    assert set(payload) >= {"strategies", "paired", "rows", "users"}
    assert payload["rows"] == 5 and payload["users"] == 2
    assert (
        payload["strategies"]["hybrid"]["hr@2"] == pytest.approx(0.6) and "hr@2_ci" in payload["strategies"]["hybrid"]
    )
    assert payload["paired"]["best_other"]["against"] == "sequential"
    assert payload["paired"]["one_movie_hybrid"]["difference"] == pytest.approx(0.6 - 0.2)
    assert payload["one_movie_hybrid"]["hr@2"] == pytest.approx(0.2)
    assert payload["paired"]["seed_002_hybrid"]["difference"] == pytest.approx(0.6)
    assert payload["paired"]["parts"]["sequential"]["difference"] == pytest.approx(0.2)
    assert "history protocol" in result.table() and "one-movie hybrid" in result.table()


class _OneMovie:
    """A one-movie strategy answering a fixed list per movie."""

    def __init__(self, lists: dict[int, list[int]]) -> None:
        self.lists = lists
        self.asked: list[int] = []

    def similar(self, movie_id, k):  # pragma: no cover - the evaluator uses the batch path
        raise AssertionError

    def similar_batch(self, movie_ids, k):
        self.asked.extend(movie_ids)
        return [[Recommendation(m, 1.0, "hybrid") for m in self.lists.get(q, [])][:k] for q in movie_ids]


def test_the_one_movie_hybrid_is_asked_with_the_historys_last_movie_not_the_pairs_previous_one() -> None:
    # user 1 rated 77 (too rare for the pairs) between 10 and 20: the pair is 10 -> 20, the history (10, 77)
    ratings = _ratings([(1, 10, 1), (1, 77, 2), (1, 20, 3), (2, 10, 1), (2, 20, 2)])
    pairs = next_item_pairs(ratings, min_ratings=2, n_pairs=10)
    assert pairs[["userId", "prev_movieId", "movieId"]].values.tolist() == [[2, 10, 20], [1, 10, 20]]
    one_movie = _OneMovie({10: [20], 77: [55]})
    result = score_history_protocol(
        {"hybrid": _Fixed("hybrid", {77: [20], 10: [20]})},
        ratings,
        pairs,
        2,
        100,
        resamples=100,
        seed=1,
        one_movie={"hybrid": one_movie},
    )
    assert sorted(one_movie.asked) == [10, 77]  # each distinct last movie once
    assert result.info["one_movie_hybrid"]["hr@2"] == pytest.approx(0.5)  # 77 -> 55 misses user 1's 20
    assert result.paired["one_movie_hybrid"].difference == pytest.approx(0.5)


def test_paired_interval_is_over_users_and_flags_a_hybrid_below_its_part() -> None:
    users = np.repeat(np.arange(200), 2)
    # sequential hits every row at rank 0; hybrid misses every fourth row
    hybrid = StrategyScore(ranks=np.where(np.arange(400) % 4 == 0, -1, 0), own=np.ones(400, bool), coverage=0.0)
    sequential = StrategyScore(ranks=np.zeros(400, np.int64), own=np.ones(400, bool), coverage=0.0)
    paired, parts = paired_comparisons({"hybrid": hybrid, "sequential": sequential}, users, 10, resamples=300, seed=3)
    assert parts["sequential"].difference == pytest.approx(-0.25)
    assert parts["sequential"].interval[1] < 0
    one = compare_paired(hybrid, sequential, users, "hybrid", "sequential", 10, resamples=300, seed=3)
    assert one.interval == parts["sequential"].interval


def test_evaluate_histories_asks_every_row_once_without_merging_equal_last_movies() -> None:
    strategy = _Fixed("sequential", {1: [5, 6]})
    histories = [History((9, 1)), History((1,)), History((8, 1))]
    scores = evaluate_histories({"sequential": strategy}, histories, [5, 6, 7], [1, 2, 3], 2, 10, resamples=0)
    assert strategy.asked == histories
    assert scores["sequential"].ranks.tolist() == [0, 1, -1]


def _sequences(users: int = 300, seed: int = 11) -> pd.DataFrame:
    """Users walking a chain of 60 movies (m -> m+1 mostly, sometimes a jump): history sources can learn it."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, users + 1):
        movie = int(rng.integers(1, 61))
        seen: set[int] = set()
        for step in range(int(rng.integers(4, 12))):
            if movie not in seen:
                seen.add(movie)
                rows.append((user, movie, 1_000 * user + step))
            movie = movie % 60 + 1 if rng.random() < 0.8 else int(rng.integers(1, 61))
    frame = _ratings(rows)
    frame["rating"] = 4.5
    return frame


def test_tune_history_chooses_on_the_last_item_validation_targets_and_keeps_a_fusion_only_beyond_noise() -> None:
    from pipelines.evaluation.protocol import Protocol
    from pipelines.evaluation.tuning import HistoryGrid, tune_history
    from services.settings import Settings
    from services.stores.catalog import MovieFacts

    ratings = _sequences()
    ids = list(range(1, 61))
    facts = MovieFacts(ids, [None] * 60, [None] * 60, [0] * 60, [False] * 60, ["Drama"] * 60)
    # small models: the learned one (when registered) trains one short epoch
    settings = Settings(
        als_factors=8, als_iterations=3, learned_dims=8, learned_blocks=1, learned_max_len=10, learned_epochs=1
    )
    protocol = Protocol(min_ratings=1, pairs=100, k=5, seed=3, resamples=200)
    result = tune_history(settings, ratings, facts, None, protocol, HistoryGrid(last=(1, 5), decay=(0.5, 0.9)))

    chosen = result["settings"]
    assert set(chosen) == {
        "history_last",
        "history_decay",
        "history_sequential",
        "history_weights",
        "history_rank_constant",
        "history_learned_last",
    }
    assert Settings().updated(**chosen).history.last == chosen["history_last"]  # valid flat settings
    assert chosen["history_learned_last"] is None  # a model of 10 positions has no shorter window to try
    assert list(result["learned_windows"]) == ["all"]
    validation = result["validation"]
    assert validation["targets"] == validation["users"] == int((ratings.groupby("userId").size() >= 3).sum())
    assert len(result["trials"]) == 12  # 2 L x 2 decays x 3 sequential scorings
    best = max(result["trials"], key=lambda t: (t["hr@5"], t["mrr@5"]))
    assert (chosen["history_last"], chosen["history_decay"], chosen["history_sequential"]) == (
        best["last"],
        best["decay"],
        best["sequential"],
    )
    decision = result["fusion_against_best_single"]
    served = validation["strategies"]["hybrid"]["hr@5"]
    if decision["kept"] == "fusion":
        dropped = {name for name, entry in result["sources_within_noise"].items() if entry["dropped"]}
        assert chosen["history_weights"] == {n: 0.0 if n in dropped else w for n, w in best["weights"].items()}
        assert decision["paired"] is None or decision["paired"]["ci"][0] > 0
        for entry in result["sources_within_noise"].values():  # every source tried against the searched fusion
            assert entry["best_minus_without"]["strategy"] == "hybrid"
            assert (entry["best_minus_without"]["ci"][0] <= 0) == entry["dropped"]
        if not dropped:
            assert served == pytest.approx(best["hr@5"])  # the served hybrid is what was searched
    else:
        assert decision["paired"]["ci"][0] <= 0
        assert [n for n, w in chosen["history_weights"].items() if w > 0] == [decision["single"]["source"]]
        assert served == pytest.approx(decision["single"]["hr@5"])
    # sequential co-visitation learns the chain: far above popular on these targets
    assert validation["strategies"]["sequential"]["hr@5"] > 2 * validation["strategies"]["popular"]["hr@5"]


def test_the_learned_window_is_the_shortest_the_best_does_not_beat_by_more_than_noise() -> None:
    from types import SimpleNamespace

    from pipelines.evaluation.tuning import learned_windows
    from pipelines.evaluation.within_noise import shortest_within_noise

    def scored(hits: int, users: int = 400) -> StrategyScore:
        """One target per user, the first `hits` of them hit at rank 0."""
        return StrategyScore(ranks=np.where(np.arange(users) < hits, 0, -1), own=np.ones(users, bool), coverage=0.0)

    model = SimpleNamespace(params=SimpleNamespace(max_len=200))
    asked: list[int | None] = []

    def score(last: int | None) -> StrategyScore:
        asked.append(last)
        return scored(100)

    full = scored(100)
    tried = learned_windows({"learned": 0.5}, model, None, full, score)
    assert list(tried) == [None, 50, 100] and tried[None] is full
    assert list(learned_windows({"learned": 0.0, "sequential": 1.0}, model, None, full, score)) == [None]
    assert list(learned_windows({"learned": 0.5}, model, 50, full, score)) == [50]  # nothing shorter to try
    short = SimpleNamespace(params=SimpleNamespace(max_len=50))
    assert list(learned_windows({"learned": 0.5}, short, None, full, score)) == [None]
    assert asked == [50, 100]

    users = np.arange(400)

    def choose(windows: dict[int | None, StrategyScore]) -> int | None:
        return shortest_within_noise(windows, users, 10, resamples=200, seed=0)[0]

    assert choose({None: scored(100), 100: scored(100)}) == 100  # a tie: the shorter
    assert choose({None: scored(101), 100: scored(100)}) == 100  # one hit of 400 more: noise
    assert choose({None: scored(160), 100: scored(100)}) is None  # 15 points more: the longer earns its time
    assert choose({None: scored(100), 100: scored(101)}) == 100  # the shorter is the best
    assert choose({None: scored(160), 100: scored(158), 50: scored(100)}) == 100  # the shortest within noise
    window, evidence = shortest_within_noise({None: scored(101), 100: scored(100)}, users, 10, resamples=200, seed=0)
    assert evidence["all"] == {"hr@10": 101 / 400}
    assert evidence["100"]["hr@10"] == 0.25 and evidence["100"]["best_minus_this"]["ci"][0] <= 0


def test_a_fusion_drops_each_source_the_slowest_first_while_it_does_not_need_it_beyond_noise() -> None:
    from pipelines.evaluation.within_noise import lightest_within_noise

    users = np.arange(400)

    def scored(hits: int) -> StrategyScore:
        return StrategyScore(ranks=np.where(users < hits, 0, -1), own=np.ones(400, bool), coverage=0.0)

    # the hits of the fusion of these sources besides series (the searched fusion: all four); series takes under a
    # tenth of the answer's time, so it is kept without a trial
    hits = {
        frozenset({"vector", "learned", "sequential"}): 100,
        frozenset({"learned", "sequential"}): 99,  # vector adds one hit of 400: noise
        frozenset({"sequential"}): 40,
        frozenset({"learned"}): 60,
    }
    asked: list[frozenset[str]] = []

    def score(weights: dict[str, float]) -> StrategyScore:
        used = frozenset(n for n, w in weights.items() if w > 0)
        asked.append(used)
        return scored(hits[used - {"series"}])

    weights = {"vector": 0.5, "learned": 0.25, "sequential": 1.0, "series": 0.5, "popular": 0.0}
    seconds = {"vector": 0.0018, "learned": 0.0007, "sequential": 0.0004, "series": 0.00001}
    kept, kept_score, evidence = lightest_within_noise(
        scored(100), weights, seconds, score, users, 10, resamples=200, seed=0
    )
    assert kept == {"vector": 0.0, "learned": 0.25, "sequential": 1.0, "series": 0.5, "popular": 0.0}
    assert kept_score.hit_ratio == 99 / 400
    assert asked == [  # the slowest first; each trial without one more source than what is kept
        frozenset({"learned", "sequential", "series"}),
        frozenset({"sequential", "series"}),
        frozenset({"learned", "series"}),
    ]
    assert [name for name in evidence] == ["vector", "learned", "sequential"]
    assert [entry["dropped"] for entry in evidence.values()] == [True, False, False]
    assert evidence["vector"]["ms_per_answer"] == 1.8
    assert evidence["learned"]["best_minus_without"]["ci"][0] > 0

    # equal everywhere: sources are dropped down to the fastest one, never below one
    asked.clear()
    kept, _, evidence = lightest_within_noise(
        scored(100),
        {"learned": 1.0, "sequential": 1.0},
        seconds,
        lambda w: scored(100),
        users,
        10,
        resamples=200,
        seed=0,
    )
    assert kept == {"learned": 0.0, "sequential": 1.0} and list(evidence) == ["learned"]


def test_a_shorter_window_is_compared_with_the_searched_fusion_when_sources_were_dropped() -> None:
    from pipelines.evaluation.within_noise import shortest_within_noise

    users = np.arange(400)

    def scored(hit: np.ndarray) -> StrategyScore:
        return StrategyScore(ranks=np.where(hit, 0, -1), own=np.ones(400, bool), coverage=0.0)

    def users_in(*spans: tuple[int, int]) -> np.ndarray:
        return np.any([(users >= a) & (users < b) for a, b in spans], axis=0)

    # the searched fusion hits users 0-127; without a source (window all) 0-99 and 128-147, 8 hits fewer; with
    # 50 movies 0-111, 8 fewer again: each step is noise (hits lost and won), both together are not
    searched = scored(users_in((0, 128)))
    windows = {None: scored(users_in((0, 100), (128, 148))), 50: scored(users_in((0, 112)))}
    assert shortest_within_noise(windows, users, 10, resamples=200, seed=0)[0] == 50
    window, evidence = shortest_within_noise(windows, users, 10, resamples=200, seed=0, searched=searched)
    assert window is None
    assert evidence["50"]["best_minus_this"]["strategy"] == "searched fusion"
    assert evidence["all"]["best_minus_this"]["ci"][0] <= 0  # the window served now is within noise of it


def test_a_sources_answer_time_is_timed_one_history_at_a_time() -> None:
    from pipelines.evaluation.within_noise import COST_HISTORIES, answer_seconds

    class Counting:
        name = "counting"

        def __init__(self) -> None:
            self.sizes: list[int] = []

        def candidates(self, queries: list[History], k: int) -> list[list[tuple[int, float]]]:
            self.sizes.append(len(queries))
            return [[(1, 1.0)] for _ in queries]

    source = Counting()
    histories = [History((m, m + 1)) for m in range(COST_HISTORIES + 10)]
    seconds = answer_seconds({"counting": source}, histories, 50)
    assert seconds["counting"] > 0
    assert source.sizes == [1] * (COST_HISTORIES + 1)  # one untimed call, then one per timed history
    assert answer_seconds({"counting": Counting()}, [], 50) == {"counting": 0.0}
