"""Sequential model parameters (W, b, beta) and recent-popular's D, chosen by HR@k on a validation window."""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from pipelines.collaborative.popularity import recent_popularity
from pipelines.collaborative.sequential import build_sequential
from pipelines.evaluation.metrics import StrategyScore, evaluate_strategies
from services.recommender.sequential_sources import (
    RecentPopularSource,
    SequentialSource,
)
from services.recommender.sources import RandomSource
from services.recommender.strategies import ChainStrategy
from services.stores.sequential import SequentialModel, SequentialParams


@dataclass(frozen=True)
class SequentialGrid:
    """Candidate values (small: the whole search takes seconds on the bundled sample)."""

    window: tuple[int, ...] = (2, 5, 10, 20)
    backward_weight: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    popularity_damping: tuple[float, ...] = (0.0, 0.25, 0.5)
    recent_days: tuple[float, ...] = (7.0, 30.0, 90.0, 365.0)
    neighbours: int = 100
    min_rating: float | None = None

    def params(self) -> list[SequentialParams]:
        return [
            SequentialParams(w, b, beta, self.neighbours, self.min_rating)
            for w, b, beta in itertools.product(self.window, self.backward_weight, self.popularity_damping)
        ]


@dataclass(frozen=True)
class SequentialTuning:
    """The chosen parameters and days, the model they built, and every trial's validation scores."""

    params: SequentialParams
    model: SequentialModel  # built with `params` on the ratings before the cutoff
    recent_days: float
    trials: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: float = 0.0


def _summary(score: StrategyScore, k: int) -> dict[str, float]:
    return {f"hr@{k}": score.hit_ratio, f"ndcg@{k}": score.ndcg, f"mrr@{k}": score.mrr}


def tune_sequential(
    ratings: pd.DataFrame,
    validation_pairs: pd.DataFrame,
    cutoff: int,
    grid: SequentialGrid,
    k: int,
    *,
    seed: int = 42,
) -> SequentialTuning:
    """Build on ratings strictly before `cutoff` for every grid point and keep the best by HR@k on
    `validation_pairs` (ties: NDCG@k, then grid order); recent-popular's days likewise."""
    started = time.perf_counter()
    history = ratings.loc[ratings["timestamp"] < cutoff]
    catalog = sorted(int(m) for m in ratings["movieId"].unique())
    fill = RandomSource(catalog, seed)

    def score(strategy: ChainStrategy) -> StrategyScore:
        return evaluate_strategies({strategy.name: strategy}, validation_pairs, k, len(catalog), resamples=0)[
            strategy.name
        ]

    sequential: list[tuple[SequentialParams, StrategyScore]] = []
    best: SequentialModel | None = None
    for params in grid.params():
        model = build_sequential(history, params)
        sequential.append((params, score(ChainStrategy("sequential", [SequentialSource(model), fill]))))
        if _best(sequential) is params:
            best = model  # only the best so far is kept
    assert best is not None, "the grid has at least one point"
    recent = [
        (d, score(ChainStrategy("recent-popular", [RecentPopularSource(recent_popularity(ratings, cutoff, d)), fill])))
        for d in grid.recent_days
    ]
    return SequentialTuning(
        params=_best(sequential),
        model=best,
        recent_days=_best(recent),
        trials={
            "sequential": [{**asdict(p), **_summary(s, k)} for p, s in sequential],
            "recent-popular": [{"recent_days": d, **_summary(s, k)} for d, s in recent],
        },
        seconds=round(time.perf_counter() - started, 2),
    )


def _best(trials: list[tuple[Any, StrategyScore]]) -> Any:
    best = max(range(len(trials)), key=lambda i: (trials[i][1].hit_ratio, trials[i][1].ndcg, -i))
    return trials[best][0]
