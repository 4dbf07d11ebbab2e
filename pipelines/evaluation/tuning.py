"""`nextwatch tune`: every learned setting, chosen on the validation window.

In order: ALS hyperparameters (by `collaborative` HR@k), the sequential model's window, backward weight
and popularity damping and recent-popular's days (by their own HR@k), then hybrid's fusion weights and
rank constant over series, sequential, collaborative, vector and recent-popular (by hybrid HR@k; every
source alone is in the search space, so on validation hybrid is never below its best part).

The validation window is the `pairs` next-item pairs just before the test window; its models train on
ratings strictly before its first pair, so neither the test pairs nor the validation pairs are seen.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd

from pipelines.collaborative.als import train_als
from pipelines.collaborative.popularity import recent_popularity
from pipelines.evaluation.fusion_search import choose_fusion
from pipelines.evaluation.heldout import popularity_before
from pipelines.evaluation.metrics import StrategyScore, evaluate_strategies
from pipelines.evaluation.protocol import Protocol, evaluation_windows, ratings_fingerprint, utc
from pipelines.evaluation.sequential_tuning import SequentialGrid, tune_sequential
from services.recommender.base import Source
from services.recommender.sequential_sources import RecentPopularSource, SequentialSource
from services.recommender.sources import CollaborativeSource, PopularSource, SeriesSource, VectorIndex, VectorSource
from services.recommender.standard import FusionConfig
from services.serving.runtime import assemble_strategies
from services.stores.catalog import MovieFacts
from services.stores.collaborative import ALSParams, CollaborativeModel


@dataclass(frozen=True)
class Grid:
    """The candidate values (small: the whole search runs in well under a minute on the bundled sample)."""

    factors: tuple[int, ...] = (32, 64)
    regularization: tuple[float, ...] = (0.01, 0.1)
    alpha: tuple[float, ...] = (1.0, 10.0)
    iterations: tuple[int, ...] = (15,)
    sequential: SequentialGrid = field(default_factory=SequentialGrid)

    def als(self, base: ALSParams) -> list[ALSParams]:
        return [
            replace(base, factors=f, regularization=r, alpha=a, iterations=i)
            for f, r, a, i in itertools.product(self.factors, self.regularization, self.alpha, self.iterations)
        ]


def _summary(score: StrategyScore, k: int) -> dict[str, float]:
    return {f"hr@{k}": score.hit_ratio, f"ndcg@{k}": score.ndcg, f"mrr@{k}": score.mrr}


def _best(trials: list[tuple[Any, StrategyScore]]) -> tuple[Any, StrategyScore]:
    """Highest hit ratio, then highest NDCG, then the earliest in grid order."""
    best = max(range(len(trials)), key=lambda i: (trials[i][1].hit_ratio, trials[i][1].ndcg, -i))
    return trials[best]


def tune(
    ratings: pd.DataFrame,
    facts: MovieFacts,
    vectors: VectorIndex | None,
    protocol: Protocol,
    base: ALSParams,
    grid: Grid = Grid(),
    *,
    depth: int,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Search the grid on the validation window; returns what tuned.json holds (settings + the evidence)."""
    started = time.perf_counter()
    windows = evaluation_windows(ratings, protocol.min_ratings, protocol.pairs)
    validation = windows.validation
    if validation.empty:
        raise RuntimeError(
            f"no validation window: fewer than {protocol.pairs + 1} next-item pairs among movies with "
            f">= {protocol.min_ratings} ratings (lower --pairs or --min-ratings)"
        )
    cutoff, k, size = windows.validation_cutoff, protocol.k, len(facts.movie_ids)
    history = ratings.loc[ratings["timestamp"] < cutoff]
    popularity = popularity_before(ratings, cutoff)

    def score(strategy: Any) -> StrategyScore:
        return evaluate_strategies({strategy.name: strategy}, validation, k, size, resamples=0)[strategy.name]

    def standard(**parts: Any) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            "vectors": None,
            "collaborative": None,
            "sequential": None,
            "recent_popularity": None,
            "fusion": FusionConfig({}, depth, 60.0),
        }
        return assemble_strategies(facts, popularity=popularity, seed=protocol.seed, **{**defaults, **parts})

    als_trials: list[tuple[tuple[ALSParams, CollaborativeModel], StrategyScore]] = []
    for params in grid.als(base):
        model = train_als(history, params, progress=False)
        als_trials.append(((params, model), score(standard(collaborative=model)["collaborative"])))
        say(f"tune: {_describe(params)} -> HR@{k} {als_trials[-1][1].hit_ratio:.4f}")
    (als_params, als_model), _ = _best(als_trials)

    sequential = tune_sequential(ratings, validation, cutoff, grid.sequential, k, seed=protocol.seed)
    say(f"tune: sequential {asdict(sequential.params)}, recent-popular days {sequential.recent_days}")
    sequential_model = sequential.model
    recent = recent_popularity(ratings, cutoff, sequential.recent_days)

    sources: dict[str, Source] = {
        "series": SeriesSource(facts.movie_ids, facts.series_ids, facts.release_dates),
        "sequential": SequentialSource(sequential_model),
        "collaborative": CollaborativeSource(als_model),
        "recent-popular": RecentPopularSource(recent),
    }
    if vectors is not None:
        sources["vector"] = VectorSource(vectors)
    fusion = choose_fusion(sources, validation, k, fallback=PopularSource(popularity), depth=depth)
    chosen_fusion = FusionConfig(fusion.weights, depth, fusion.rank_constant)
    served = standard(
        vectors=vectors,
        collaborative=als_model,
        sequential=sequential_model,
        recent_popularity=recent,
        fusion=chosen_fusion,
    )
    validated = {name: _summary(score(served[name]), k) for name in served}
    say(
        f"tune: hybrid weights {fusion.weights}, rank constant {fusion.rank_constant} -> HR@{k} "
        f"{validated['hybrid'][f'hr@{k}']:.4f}"
    )
    chosen = {
        **_als_fields(als_params),
        "sequential_window": sequential.params.window,
        "sequential_backward_weight": sequential.params.backward_weight,
        "sequential_popularity_damping": sequential.params.popularity_damping,
        "recent_popular_days": sequential.recent_days,
        "fusion_weights": fusion.weights,
        "fusion_rank_constant": fusion.rank_constant,
    }
    return {
        "settings": chosen,
        "chosen_by": f"hr@{k} on the validation window (ties: ndcg@{k} or mrr@{k}, then grid order)",
        "protocol": asdict(protocol),
        "validation": {
            "pairs": len(validation),
            "users": int(validation["userId"].nunique()),
            "first": utc(cutoff),
            "last": utc(int(validation["timestamp"].max())),
            "cutoff_timestamp": cutoff,
            "test_cutoff_timestamp": windows.test_cutoff,
            "strategies": validated,
        },
        "data": ratings_fingerprint(ratings),
        "trials": {
            "collaborative": [{**_als_fields(p), **_summary(s, k)} for (p, _), s in als_trials],
            **sequential.trials,
            "hybrid": fusion.trials,
        },
        "seconds": round(time.perf_counter() - started, 2),
    }


def _als_fields(params: ALSParams) -> dict[str, Any]:
    return {
        "als_factors": params.factors,
        "als_regularization": params.regularization,
        "als_alpha": params.alpha,
        "als_iterations": params.iterations,
    }


def _describe(params: ALSParams) -> str:
    return " ".join(f"{k}={v}" for k, v in _als_fields(params).items())
