"""`nextwatch tune`: every learned setting, chosen on the validation window.

In order: ALS hyperparameters (by `collaborative` HR@k), the sequential model's window, backward weight
and popularity damping and recent-popular's days (by their own HR@k), then hybrid's fusion weights and
rank constant over every fusable source of the registry (by hybrid HR@k; every source alone is in the
search space, so on validation hybrid is never below its best part).

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
from pipelines.evaluation.metrics import StrategyScore, evaluate_strategies
from pipelines.evaluation.protocol import Protocol, evaluation_windows, ratings_fingerprint, utc
from pipelines.evaluation.sequential_tuning import SequentialGrid, tune_sequential
from pipelines.models.model_set import resolve
from services.recommender.registry import REGISTRY, SourceInputs, fusable, make_sources
from services.recommender.sources import VectorIndex
from services.recommender.standard import FusionConfig, assemble_strategies
from services.settings import Settings
from services.stores.catalog import MovieFacts
from services.stores.collaborative import ALSParams, CollaborativeModel
from services.stores.popularity import Counts

# models chosen by grids of their own below (the others are trained with the settings as they are)
OWN_GRIDS = ("als", "sequential", "recent-popular")
# strategies scored alone need no fusion
NO_FUSION = FusionConfig({}, 50, 60.0)


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
    settings: Settings,
    ratings: pd.DataFrame,
    facts: MovieFacts,
    vectors: VectorIndex | None,
    protocol: Protocol,
    grid: Grid = Grid(),
    *,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Search the grid on the validation window; returns what tuned.json holds (settings + the evidence).

    ALS and the sequential model (and recent-popular's days) are chosen by their own grids; every other
    model of the registry is trained with `settings`; hybrid's weights are searched over every fusable
    source of the registry."""
    started = time.perf_counter()
    windows = evaluation_windows(ratings, protocol.min_ratings, protocol.pairs)
    validation = windows.validation
    if validation.empty:
        raise RuntimeError(
            f"no validation window: fewer than {protocol.pairs + 1} next-item pairs among movies with "
            f">= {protocol.min_ratings} ratings (lower --pairs or --min-ratings)"
        )
    cutoff, k, size = windows.validation_cutoff, protocol.k, len(facts.movie_ids)
    depth = settings.fusion.depth
    history = ratings.loc[ratings["timestamp"] < cutoff]

    def score(strategy: Any) -> StrategyScore:
        return evaluate_strategies({strategy.name: strategy}, validation, k, size, resamples=0)[strategy.name]

    def strategies(models: dict[str, Any], fusion: FusionConfig) -> dict[str, Any]:
        return assemble_strategies(facts, models, fusion, vectors=vectors, seed=protocol.seed)

    models: dict[str, Any] = {
        spec.name: resolve(spec.trainer)(history, spec.params(settings), cutoff=cutoff, progress=False)
        for spec in REGISTRY.models.values()
        if spec.name not in OWN_GRIDS
    }
    als_trials: list[tuple[tuple[ALSParams, CollaborativeModel], StrategyScore]] = []
    for params in grid.als(ALSParams(**settings.als.model_dump())):
        model = train_als(history, params, progress=False)
        als_trials.append(((params, model), score(strategies({**models, "als": model}, NO_FUSION)["collaborative"])))
        say(f"tune: {_describe(params)} -> HR@{k} {als_trials[-1][1].hit_ratio:.4f}")
    (als_params, models["als"]), _ = _best(als_trials)

    sequential = tune_sequential(ratings, validation, cutoff, grid.sequential, k, seed=protocol.seed)
    say(f"tune: sequential {asdict(sequential.params)}, recent-popular days {sequential.recent_days}")
    models["sequential"] = sequential.model
    models["recent-popular"] = Counts(recent_popularity(ratings, cutoff, sequential.recent_days), cutoff)

    sources = make_sources(SourceInputs(facts, models, vectors, protocol.seed))
    searched = {name: source for name in fusable() if (source := sources[name]) is not None}
    popular = sources["popular"]
    assert popular is not None, "popular is always there"
    fusion = choose_fusion(searched, validation, k, fallback=popular, depth=depth)
    served = strategies(models, FusionConfig(fusion.weights, depth, fusion.rank_constant))
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
