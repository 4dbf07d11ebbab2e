"""Fusion hybrid: list invariants, filters, degradation, explanations, and the weight search."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from pipelines.evaluation.fusion_search import choose_fusion, search_weights
from pipelines.evaluation.metrics import evaluate_strategies
from services.recommender.base import BatchResult
from services.recommender.filters import Filter, ItemFacts
from services.recommender.fusion import FusionStrategy, fuse, fused_hybrid
from services.recommender.sources import PopularSource, RandomSource

CATALOG = list(range(1, 41))


class ListSource:
    """Fixed candidate lists per query (may include the query and repeats, like a careless source)."""

    def __init__(self, name: str, lists: dict[int, list[int]]) -> None:
        self.name = name
        self.lists = lists
        self.asked: list[int] = []

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        self.asked.append(k)
        return [[(m, 1.0 / (r + 1)) for r, m in enumerate(self.lists.get(int(q), []))][:k] for q in movie_ids]


class Failing:
    def __init__(self, name: str) -> None:
        self.name = name

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        raise RuntimeError(f"{self.name} is down")


def random_lists(name: str, seed: int, length: int = 12) -> ListSource:
    rng = np.random.default_rng(seed)
    return ListSource(name, {q: [int(m) for m in rng.choice(CATALOG, length)] for q in CATALOG})


def facts() -> ItemFacts:
    genres = ["Drama" if m % 2 else "Comedy" for m in CATALOG]
    return ItemFacts(CATALOG, genres, [m % 5 == 0 for m in CATALOG])


def hybrid(**kwargs) -> FusionStrategy:
    sources = kwargs.pop("sources", [random_lists("a", 1), random_lists("b", 2)])
    weights = kwargs.pop("weights", {"a": 1.0, "b": 0.5})
    return FusionStrategy(
        "hybrid",
        sources,
        weights,
        fallback=[PopularSource({m: 41 - m for m in CATALOG}), RandomSource(CATALOG)],
        depth=10,
        **kwargs,
    )


@pytest.mark.parametrize("k", [1, 5, 10, 39])
def test_never_the_query_never_duplicates_always_k_long(k: int):
    answers = hybrid().similar_batch(CATALOG, k)
    for query, recs in zip(CATALOG, answers):
        ids = [r.movie_id for r in recs]
        assert len(ids) == k and len(set(ids)) == k and query not in ids
    assert len(hybrid().similar(3, 100)) == 39  # the whole catalogue but the query


def test_order_is_by_fused_score_then_movie_id_and_explained():
    a = ListSource("a", {1: [2, 3, 4]})
    b = ListSource("b", {1: [3, 2, 5]})
    strategy = FusionStrategy("hybrid", [a, b], {"a": 1.0, "b": 1.0}, rank_constant=0.0)
    result = strategy.recommend_batch([1], 4, explain=True)
    assert isinstance(result, BatchResult) and result.contributions is not None and not result.degraded
    # 2: 1/1 + 1/2, 3: 1/2 + 1/1 (tie: lower id first), 4: 1/3 (a), 5: 1/3 (b)
    assert [(r.movie_id, r.score, r.source) for r in result.items[0]] == [
        (2, 1.5, "a"),
        (3, 1.5, "b"),
        (4, pytest.approx(1 / 3), "a"),
        (5, pytest.approx(1 / 3), "b"),
    ]
    assert result.contributions[0][0] == {"a": 1.0, "b": 0.5}
    assert result.contributions[0][3] == {"b": pytest.approx(1 / 3)}
    for recs, parts in zip(result.items, result.contributions):
        for rec, part in zip(recs, parts):
            assert rec.score == pytest.approx(sum(part.values())) and rec.source == max(part, key=part.get)
    plain = strategy.recommend_batch([1], 4)
    assert isinstance(plain, BatchResult) and plain.contributions is None and plain.items == result.items


def test_fuse_skips_the_query_and_ranks_after_it():
    fused = fuse({"a": [(1, 9.0), (2, 1.0), (2, 0.5), (3, 0.1)]}, {"a": 2.0}, 1, depth=2, rank_constant=0.0)
    assert [(m, s) for m, s, _ in fused] == [(2, 2.0)]  # rank 1 = 2; its repeat uses up rank 2


def test_fuse_scores_are_the_sum_of_the_parts_and_limit_keeps_the_best():
    rng = np.random.default_rng(11)
    lists = {s: [(int(m), 1.0) for m in rng.integers(1, 30, 25)] for s in ("a", "b", "c")}
    weights = {"a": 1.0, "b": 1 / 3, "c": 0.25}
    fused = fuse(lists, weights, 7, depth=20, rank_constant=10.0, keep=lambda m: m % 5 != 0)
    assert fused and all(m != 7 and m % 5 for m, _, _ in fused)
    assert [(-score, m) for m, score, _ in fused] == sorted((-score, m) for m, score, _ in fused)
    for _, score, parts in fused:
        assert score == sum(parts.values()) and list(parts) == [s for s in lists if s in parts]
    for limit in (1, 5, len(fused), len(fused) + 3):
        assert (
            fuse(lists, weights, 7, depth=20, rank_constant=10.0, keep=lambda m: m % 5 != 0, limit=limit)
            == (fused[:limit])
        )


def test_weight_zero_source_is_not_asked():
    unused = Failing("vectors")
    strategy = hybrid(sources=[random_lists("a", 1), unused], weights={"a": 1.0, "vectors": 0.0})
    assert len(strategy.similar(1, 10)) == 10
    assert [s.name for s in strategy.sources] == ["a"]


def test_failing_optional_source_degrades_and_is_reported():
    strategy = hybrid(
        sources=[random_lists("a", 1), Failing("vectors")],
        weights={"a": 1.0, "vectors": 2.0},
        optional=["vectors"],
        absent=["series"],
    )
    result = strategy.recommend_batch([1, 2], 10)
    assert result.degraded and result.missing == ["series", "vectors"]
    assert all(len(recs) == 10 for recs in result.items)
    with pytest.raises(RuntimeError):
        strategy.similar_batch([1], 10)
    required = hybrid(sources=[random_lists("a", 1), Failing("b")], weights={"a": 1.0, "b": 1.0})
    with pytest.raises(RuntimeError):
        required.recommend_batch([1], 10)


def test_fused_hybrid_reports_sources_that_were_not_built():
    strategy = fused_hybrid(
        {"a": random_lists("a", 1), "vector": None, "series": None},
        {"a": 1.0, "vector": 0.5, "series": 0.0},
        fallback=[RandomSource(CATALOG)],
        depth=10,
        rank_constant=10.0,
    )
    result = strategy.recommend_batch([1], 10)
    assert result.missing == ["vector"] and len(result.items[0]) == 10


def test_filters_apply_inside_and_sources_are_asked_for_more():
    deep = ListSource("a", {1: list(range(2, 41))})
    strategy = FusionStrategy("hybrid", [deep], {"a": 1.0}, depth=5, facts=facts(), fallback=[RandomSource(CATALOG)])
    rules = Filter.of(exclude=[3, 7], genre="drama", include_adult=False)
    recs = strategy.similar(1, 8, filter=rules)
    keep = facts().predicate(rules)
    assert len(recs) == 8 and all(keep(r.movie_id) for r in recs) and 1 not in [r.movie_id for r in recs]
    assert all(r.source == "a" for r in recs[:5])  # depth 5 of the filtered list is fused, then the fill
    assert len(deep.asked) > 1  # the filter left fewer than depth candidates: asked again for more
    with pytest.raises(ValueError):
        hybrid().similar(1, 5, filter=rules)  # no facts to filter with


# ---- weight search ---------------------------------------------------------------------


def case(n_queries: int = 40):
    """Queries 100.., each with a target; candidate lists built per scenario below."""
    queries = list(range(100, 100 + n_queries))
    targets = np.array([1000 + q for q in queries])
    return queries, np.arange(n_queries), targets


def filler(q: int, n: int, start: int) -> list[tuple[int, float]]:
    return [(start + 50 * q + i, 1.0) for i in range(n)]


def test_search_picks_the_clearly_best_source_and_never_loses_to_it():
    queries, pair_query, targets = case()
    good = [[(int(t), 1.0), *filler(q, 20, 10**5)] for q, t in zip(queries, targets)]
    noise = [filler(q, 20, 2 * 10**5) for q in queries]
    choice = search_weights({"noise": noise, "good": good}, queries, pair_query, targets, 10, depth=20)
    assert choice.hit_ratio == 1.0 and choice.weights["good"] > 0
    assert choice.trials[1]["weights"] == {"noise": 0.0, "good": 1.0}  # every source alone is tried first
    single = max(t["hr@10"] for t in choice.trials[:2])
    assert choice.hit_ratio >= single


def test_search_combines_complementary_sources():
    queries, pair_query, targets = case()
    half = len(queries) // 2
    # both agree on 7 movies; then a finds the first half's targets (rank 8), b the second half's
    a = [
        [*filler(q, 7, 10**5), *([(int(t), 1.0)] if i < half else []), *filler(q, 12, 3 * 10**5)]
        for i, (q, t) in enumerate(zip(queries, targets))
    ]
    b = [
        [*filler(q, 7, 10**5), *([(int(t), 1.0)] if i >= half else []), *filler(q, 12, 4 * 10**5)]
        for i, (q, t) in enumerate(zip(queries, targets))
    ]
    choice = search_weights({"a": a, "b": b}, queries, pair_query, targets, 10, depth=20, rank_constants=(1.0,))
    singles = [t["hr@10"] for t in choice.trials[:2]]
    assert singles == [0.5, 0.5]
    assert choice.hit_ratio > max(singles) and choice.weights["a"] > 0 and choice.weights["b"] > 0


def test_search_scores_exactly_what_the_strategy_serves():
    rng = np.random.default_rng(5)
    sources = [random_lists("a", 1, 15), random_lists("b", 2, 15), random_lists("c", 3, 5)]
    popular = PopularSource({m: 41 - m for m in CATALOG})
    pairs = pd.DataFrame(
        {
            "userId": rng.integers(0, 20, 300),
            "prev_movieId": rng.choice(CATALOG, 300),
            "movieId": rng.choice(CATALOG, 300),
        }
    )
    choice = choose_fusion({s.name: s for s in sources}, pairs, 10, fallback=popular, depth=10)
    for trial in choice.trials[:: max(len(choice.trials) // 15, 1)]:
        strategy = FusionStrategy(
            "hybrid", sources, trial["weights"], depth=10, rank_constant=trial["rank_constant"], fallback=[popular]
        )
        served = evaluate_strategies({"hybrid": strategy}, pairs, 10, len(CATALOG), resamples=0)["hybrid"]
        assert served.hit_ratio == pytest.approx(trial["hr@10"]) and served.mrr == pytest.approx(trial["mrr@10"])
