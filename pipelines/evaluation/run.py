"""One evaluation run, in process or through a running service: pairs, scores and their provenance."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.evaluation.history_protocol import ProtocolResult, score_history_protocol
from pipelines.evaluation.last_item import score_last_item
from pipelines.evaluation.metrics import Comparison, StrategyScore, compare_with_best, evaluate_strategies
from pipelines.evaluation.protocol import Protocol, next_item_pairs, no_pairs, ratings_fingerprint, utc
from pipelines.evaluation.sequential_tuning import SequentialGrid
from pipelines.evaluation.served import ServedStrategy, ServiceClient
from pipelines.evaluation.tuning import Grid, tune
from pipelines.models.model_set import train_model_set
from pipelines.neighbours.step import build_neighbour_tables
from pipelines.steps import read_ingested, require_ingested
from services.recommender.registry import strategy_names, tunable
from services.serving.runtime import open_runtime
from services.settings import Settings
from services.stores.atomic import write_text_atomic
from services.stores.catalog import Catalog
from services.stores.generations import resolve_generation

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class EvaluationRun:
    """One evaluation: the protocol, its pairs and cutoff, every strategy's scores, and their provenance."""

    protocol: Protocol
    pairs: pd.DataFrame
    cutoff_timestamp: int
    scores: dict[str, StrategyScore]
    data: dict[str, Any]  # ratings_fingerprint of the data the pairs come from, plus the catalogue size
    models: dict[str, Any]  # what the learned models were trained on and where their settings came from
    mode: str = "in-process"  # or the URL of the service scored over HTTP
    seconds: float = 0.0
    comparison: Comparison | None = None  # hybrid against the best other strategy, paired
    history: ProtocolResult | None = None  # the same pairs, each strategy given the user's history
    last_item: ProtocolResult | None = None  # each user's last rating, models trained on the others

    @property
    def users(self) -> int:
        return int(self.pairs["userId"].nunique())

    def as_json(self) -> dict[str, Any]:
        k = self.protocol.k
        return {
            "mode": self.mode,
            "protocol": {**asdict(self.protocol), "confidence": 0.95, "resampled": "users"},
            "pairs": len(self.pairs),
            "users": self.users,
            "test_window": {
                "first_timestamp": self.cutoff_timestamp,
                "last_timestamp": int(self.pairs["timestamp"].max()),
                "first": utc(self.cutoff_timestamp),
                "last": utc(int(self.pairs["timestamp"].max())),
            },
            "cutoff_timestamp": self.cutoff_timestamp,
            "cutoff": utc(self.cutoff_timestamp),
            "data": self.data,
            "models": self.models,
            "strategies": {name: s.as_dict(k) for name, s in self.scores.items()},
            "comparison": self.comparison.as_dict() if self.comparison else None,
            "history": self.history.as_json() if self.history else None,
            "last_item": self.last_item.as_json() if self.last_item else None,
            "seconds": round(self.seconds, 3),
        }


def evaluate_step(
    settings: Settings,
    protocol: Protocol,
    *,
    progress: bool = True,
    through_api: str | None = None,
    concurrency: int = 4,
    strategies: Sequence[str] = (),
    histories: bool = True,
) -> EvaluationRun:
    """Score every strategy (or only `strategies`) on the latest next-item pairs, in process or through a
    running service, and compare hybrid with the best other strategy (paired, by users).

    In process, anything learned from ratings (ALS, sequential, popularity) comes from the evaluation build,
    trained only on ratings strictly before the first test pair, with the settings `nextwatch tune` chose.
    With `histories` (in process) the history strategies are also scored on the history protocol (the same
    pairs, each given the user's history before the target, over the same evaluation build) and the
    last-item protocol (each user's last rating; models trained in memory on the other ratings).
    """
    names = strategy_names()
    unknown = sorted(set(strategies) - set(names))
    if unknown:
        raise ValueError(f"unknown strategies {', '.join(unknown)}: choose from {', '.join(names)}")
    require_ingested(settings)
    settings = resolve_generation(settings)
    started = time.perf_counter()
    sources = _tunable_sources(settings)
    settings = settings.with_tuned()
    ratings = read_ingested(settings, settings.ratings_path)
    pairs = next_item_pairs(ratings, protocol.min_ratings, protocol.pairs)
    if pairs.empty:
        raise RuntimeError(no_pairs(ratings, protocol.min_ratings))
    cutoff = int(pairs["timestamp"].min())
    extra: dict[str, ProtocolResult] = {}
    if through_api:
        scores, models, catalog_size = _score_served(settings, pairs, protocol, through_api, concurrency, strategies)
    else:
        scores, models, catalog_size, extra = _score_in_process(
            settings, ratings, pairs, protocol, progress=progress, only=strategies, histories=histories
        )
        models["settings_source"] = sources
        models["tuned"] = _tuning_record(settings, cutoff) if "tuned.json" in sources.values() else None
    data = {**ratings_fingerprint(ratings), "catalog_movies": catalog_size}
    comparison = compare_with_best(
        scores, pairs["userId"], "hybrid", protocol.k, resamples=protocol.resamples, seed=protocol.seed
    )
    return EvaluationRun(
        protocol,
        pairs,
        cutoff,
        scores,
        data,
        models,
        mode=through_api or "in-process",
        seconds=time.perf_counter() - started,
        comparison=comparison,
        history=extra.get("history"),
        last_item=extra.get("last_item"),
    )


def _score_in_process(
    settings: Settings,
    ratings: pd.DataFrame,
    pairs: pd.DataFrame,
    protocol: Protocol,
    *,
    progress: bool,
    only: Sequence[str] = (),
    histories: bool = True,
) -> tuple[dict[str, StrategyScore], dict[str, Any], int, dict[str, ProtocolResult]]:
    """Scores of every strategy over the evaluation build, what its models were trained on, the catalogue size,
    and (with `histories`) the history and last-item protocols' results."""
    cutoff = int(pairs["timestamp"].min())
    train_model_set(settings, ratings, cutoff=cutoff, progress=progress)
    build_neighbour_tables(settings, evaluation=True)
    # the runtime `nextwatch serve --evaluation` serves: the same strategy objects, over the evaluation build
    served = settings.updated(serve_models="evaluation", seed=protocol.seed)
    runtime = open_runtime(served, require=("vectors",))
    try:
        chosen = {name: s for name, s in runtime.strategies.items() if not only or name in only}
        catalog_size = len(runtime.facts.movie_ids)
        scores = evaluate_strategies(
            chosen, pairs, protocol.k, catalog_size, resamples=protocol.resamples, seed=protocol.seed
        )
        extra: dict[str, ProtocolResult] = {}
        if histories:
            extra["history"] = score_history_protocol(
                {name: s for name, s in runtime.history_strategies.items() if not only or name in only},
                ratings,
                pairs,
                protocol.k,
                catalog_size,
                resamples=protocol.resamples,
                seed=protocol.seed,
                one_movie=runtime.strategies,
                seed_002=scores,
            )
            extra["last_item"] = score_last_item(
                runtime.settings,
                ratings,
                runtime.facts,
                runtime.vectors,
                protocol.k,
                resamples=protocol.resamples,
                seed=protocol.seed,
                only=only,
            )
        tables = sorted(runtime.tables)
        trained = {name: _provenance(model) for name, model in runtime.models.items()}
    finally:
        runtime.close()
    models = {
        "trained_before": cutoff,
        "trained_before_utc": utc(cutoff),
        **trained,
        "recent_popular_days": settings.sequential.recent_popular_days,
        "fusion": {
            "weights": dict(settings.fusion.weights),
            "depth": settings.fusion.depth,
            "rank_constant": settings.fusion.rank_constant,
        },
        "evaluation_build": str(settings.models_dir(evaluation=True)),
        "neighbour_tables": tables,
        "history": {
            "last": settings.history.last,
            "decay": settings.history.decay,
            "sequential": settings.history.sequential,
            "weights": dict(settings.history.weights),
            "rank_constant": settings.history.rank_constant,
        },
    }
    return scores, models, catalog_size, extra


def _provenance(model: Any) -> dict[str, Any]:
    """What a model of the set was trained with and on: its parameters and its training figures."""
    params = getattr(model, "params", None)
    return {**(asdict(params) if is_dataclass(params) and not isinstance(params, type) else {}), **model.info}


def _score_served(
    settings: Settings, pairs: pd.DataFrame, protocol: Protocol, url: str, concurrency: int, only: Sequence[str]
) -> tuple[dict[str, StrategyScore], dict[str, Any], int]:
    """Scores of every strategy the service at `url` answers, its provenance, and the catalogue size."""
    catalog = Catalog(settings.catalog_url)
    try:
        catalog_size = catalog.count_movies()
    finally:
        catalog.close()
    with ServiceClient(url, concurrency=concurrency) as client:
        names = client.available(
            [n for n in strategy_names() if not only or n in only], int(pairs["prev_movieId"].iloc[0])
        )
        strategies = {name: ServedStrategy(client, name) for name in names}
        scores = evaluate_strategies(
            strategies, pairs, protocol.k, catalog_size, resamples=protocol.resamples, seed=protocol.seed
        )
    models = {
        "served_by": url,
        "note": "the service's own models: leakage-free only when it serves the "
        "evaluation build (NEXTWATCH_SERVE_MODELS=evaluation or `nextwatch serve --evaluation`)",
    }
    return scores, models, catalog_size


def _tunable_sources(settings: Settings) -> dict[str, str]:
    """Where each tunable setting's value comes from: tuned.json, an explicit setting, or the default."""
    tuned = settings.tuned_overrides()
    return {
        name: "tuned.json" if name in tuned else "explicit" if settings.is_explicit(name) else "default"
        for name in tunable()
    }


def _tuning_record(settings: Settings, cutoff: int) -> dict[str, Any]:
    """Where tuned.json's values were chosen, and whether its validation window ends at this test window."""
    saved = json.loads(settings.tuned_path.read_text(encoding="utf-8"))
    validation = saved.get("validation", {})
    return {
        "path": str(settings.tuned_path),
        "chosen_by": saved.get("chosen_by"),
        "validation": validation,
        "precedes_this_test_window": validation.get("test_cutoff_timestamp") == cutoff,
    }


def tune_step(
    settings: Settings, protocol: Protocol, *, content_embed: bool = False, say: Callable[[str], None] = log.info
) -> dict[str, Any]:
    """Choose every learned setting (content inputs, ALS, sequential, recent-popular, fusion, history) on the
    validation window; writes tuned.json. `content_embed`: embed every text the content choice lacks."""
    settings = resolve_generation(settings)
    ratings = read_ingested(settings, settings.ratings_path)
    runtime = open_runtime(settings, require=("vectors",))
    try:
        grid = Grid(
            sequential=SequentialGrid(
                neighbours=settings.sequential.neighbours, min_rating=settings.sequential.min_rating
            )
        )
        result = tune(
            settings, ratings, runtime.facts, runtime.vectors, protocol, grid, content_embed=content_embed, say=say
        )
    finally:
        runtime.close()
    write_json(settings.tuned_path, result)
    return result


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False))
