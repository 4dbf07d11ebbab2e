"""`nextwatch tune`: ALS hyperparameters and hybrid's vector share, chosen on the validation window.

The validation window is the `pairs` next-item pairs just before the test window; its models train on
ratings strictly before its first pair, so neither the test pairs nor the validation pairs are seen.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd

from pipelines.evaluation.heldout import HeldOutModels, train_before
from pipelines.evaluation.metrics import StrategyScore, evaluate_strategies
from pipelines.evaluation.protocol import Protocol, evaluation_windows, ratings_fingerprint, utc
from services.recommender.sources import VectorIndex
from services.serving.runtime import assemble_strategies
from services.stores.catalog import MovieFacts
from services.stores.collaborative import ALSParams


@dataclass(frozen=True)
class Grid:
    """The candidate values (small: the whole search runs in seconds on the bundled sample)."""

    factors: tuple[int, ...] = (32, 64)
    regularization: tuple[float, ...] = (0.01, 0.1)
    alpha: tuple[float, ...] = (1.0, 10.0)
    iterations: tuple[int, ...] = (15,)
    hybrid_vector_limit: tuple[int | None, ...] = (0, 2, 5, None)

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
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Search the grid on the validation window; returns what tuned.json holds (settings + the evidence).

    ALS by HR@k of the `collaborative` strategy; then, with that model, hybrid's vector limit by HR@k of
    `hybrid` (skipped without vectors).
    """
    started = time.perf_counter()
    windows = evaluation_windows(ratings, protocol.min_ratings, protocol.pairs)
    validation = windows.validation
    if validation.empty:
        raise RuntimeError(
            f"no validation window: fewer than {protocol.pairs + 1} next-item pairs among movies with "
            f">= {protocol.min_ratings} ratings (lower --pairs or --min-ratings)"
        )
    cutoff, k, size = windows.validation_cutoff, protocol.k, len(facts.movie_ids)

    def score(name: str, models: HeldOutModels, limit: int | None = None) -> StrategyScore:
        strategies = assemble_strategies(
            facts, vectors=vectors if name == "hybrid" else None, collaborative=models.collaborative,
            popularity=models.popularity, seed=protocol.seed, hybrid_vector_limit=limit,
        )
        return evaluate_strategies({name: strategies[name]}, validation, k, size, resamples=0)[name]

    als_trials: list[tuple[tuple[ALSParams, HeldOutModels], StrategyScore]] = []
    for params in grid.als(base):
        models = train_before(ratings, cutoff, params)
        als_trials.append(((params, models), score("collaborative", models)))
        say(f"tune: {_describe(params)} -> HR@{k} {als_trials[-1][1].hit_ratio:.4f}")
    (params, models), _ = _best(als_trials)
    chosen = _als_fields(params)
    hybrid_trials: list[tuple[int | None, StrategyScore]] = []
    if vectors is not None:
        for limit in grid.hybrid_vector_limit:
            hybrid_trials.append((limit, score("hybrid", models, limit)))
            say(f"tune: hybrid_vector_limit={limit} -> HR@{k} {hybrid_trials[-1][1].hit_ratio:.4f}")
        chosen["hybrid_vector_limit"] = _best(hybrid_trials)[0]
    return {
        "settings": chosen,
        "chosen_by": f"hr@{k} on the validation window (ties: ndcg@{k}, then grid order)",
        "protocol": asdict(protocol),
        "validation": {
            "pairs": len(validation), "users": int(validation["userId"].nunique()),
            "first": utc(cutoff), "last": utc(int(validation["timestamp"].max())),
            "cutoff_timestamp": cutoff, "test_cutoff_timestamp": windows.test_cutoff,
        },
        "data": ratings_fingerprint(ratings),
        "trials": {
            "collaborative": [{**_als_fields(p), **_summary(s, k)} for (p, _), s in als_trials],
            "hybrid": [{"hybrid_vector_limit": limit, **_summary(s, k)} for limit, s in hybrid_trials],
        },
        "seconds": round(time.perf_counter() - started, 2),
    }


def _als_fields(params: ALSParams) -> dict[str, Any]:
    return {"als_factors": params.factors, "als_regularization": params.regularization,
            "als_alpha": params.alpha, "als_iterations": params.iterations}


def _describe(params: ALSParams) -> str:
    return " ".join(f"{k}={v}" for k, v in _als_fields(params).items())
