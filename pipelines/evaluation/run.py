"""One evaluation run, in process or through a running service: pairs, scores and their provenance."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.evaluation.heldout import evaluation_build
from pipelines.evaluation.metrics import StrategyScore, evaluate_strategies
from pipelines.evaluation.protocol import Protocol, next_item_pairs, ratings_fingerprint, utc
from pipelines.evaluation.served import ServedStrategy, ServiceClient
from pipelines.evaluation.tuning import tune
from pipelines.steps import read_ingested, require_ingested
from services.recommender.strategies import STRATEGY_NAMES
from services.serving.runtime import assemble_strategies, open_runtime
from services.settings import TUNABLE, Settings
from services.stores.atomic import write_text_atomic
from services.stores.catalog import Catalog
from services.stores.collaborative import ALSParams

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
                "first_timestamp": self.cutoff_timestamp, "last_timestamp": int(self.pairs["timestamp"].max()),
                "first": utc(self.cutoff_timestamp), "last": utc(int(self.pairs["timestamp"].max())),
            },
            "cutoff_timestamp": self.cutoff_timestamp,
            "cutoff": utc(self.cutoff_timestamp),
            "data": self.data,
            "models": self.models,
            "strategies": {name: s.as_dict(k) for name, s in self.scores.items()},
            "seconds": round(self.seconds, 3),
        }


def evaluate_step(
    settings: Settings,
    protocol: Protocol,
    *,
    progress: bool = True,
    through_api: str | None = None,
    concurrency: int = 4,
) -> EvaluationRun:
    """Score every strategy on the latest next-item pairs, in process or through a running service.

    In process, anything learned from ratings (ALS, popularity) comes from the evaluation build, trained
    only on ratings strictly before the first test pair, with the settings `nextwatch tune` chose.
    """
    require_ingested(settings)
    started = time.perf_counter()
    sources = _tunable_sources(settings)
    settings = settings.with_tuned()
    ratings = read_ingested(settings, settings.ratings_path)
    pairs = next_item_pairs(ratings, protocol.min_ratings, protocol.pairs)
    if pairs.empty:
        raise RuntimeError(f"no next-item pairs among movies with >= {protocol.min_ratings} ratings")
    cutoff = int(pairs["timestamp"].min())
    if through_api:
        scores, models, catalog_size = _score_served(settings, pairs, protocol, through_api, concurrency)
    else:
        scores, models, catalog_size = _score_in_process(settings, ratings, pairs, protocol, progress=progress)
        models["settings_source"] = sources
        models["tuned"] = _tuning_record(settings, cutoff) if "tuned.json" in sources.values() else None
    data = {**ratings_fingerprint(ratings), "catalog_movies": catalog_size}
    return EvaluationRun(protocol, pairs, cutoff, scores, data, models, mode=through_api or "in-process",
                         seconds=time.perf_counter() - started)


def _score_in_process(
    settings: Settings, ratings: pd.DataFrame, pairs: pd.DataFrame, protocol: Protocol, *, progress: bool
) -> tuple[dict[str, StrategyScore], dict[str, Any], int]:
    """Scores of every strategy over the evaluation build, what its models were trained on, the catalogue size."""
    cutoff = int(pairs["timestamp"].min())
    held_out = evaluation_build(settings, ratings, cutoff, ALSParams.from_settings(settings), progress=progress)
    runtime = open_runtime(settings, require=("vectors",))
    try:
        strategies = assemble_strategies(
            runtime.facts, vectors=runtime.vectors, collaborative=held_out.collaborative,
            popularity=held_out.popularity, seed=protocol.seed, hybrid_vector_limit=settings.hybrid_vector_limit,
        )
        catalog_size = len(runtime.facts.movie_ids)
        scores = evaluate_strategies(
            strategies, pairs, protocol.k, catalog_size, resamples=protocol.resamples, seed=protocol.seed
        )
    finally:
        runtime.close()
    models = {
        "trained_before": cutoff, "trained_before_utc": utc(cutoff),
        "popularity": "rating counts before the cutoff",
        "als": {**asdict(held_out.collaborative.params), **held_out.collaborative.info},
        "hybrid_vector_limit": settings.hybrid_vector_limit,
        "evaluation_build": str(settings.als_eval_dir),
    }
    return scores, models, catalog_size


def _score_served(
    settings: Settings, pairs: pd.DataFrame, protocol: Protocol, url: str, concurrency: int
) -> tuple[dict[str, StrategyScore], dict[str, Any], int]:
    """Scores of every strategy the service at `url` answers, its provenance, and the catalogue size."""
    catalog = Catalog(settings.catalog_url)
    try:
        catalog_size = catalog.count_movies()
    finally:
        catalog.close()
    with ServiceClient(url, concurrency=concurrency) as client:
        names = client.available(STRATEGY_NAMES, int(pairs["prev_movieId"].iloc[0]))
        strategies = {name: ServedStrategy(client, name) for name in names}
        scores = evaluate_strategies(
            strategies, pairs, protocol.k, catalog_size, resamples=protocol.resamples, seed=protocol.seed
        )
    models = {"served_by": url, "note": "the service's own models: leakage-free only when it serves the "
              "evaluation build (NEXTWATCH_SERVE_MODELS=evaluation or `nextwatch serve --evaluation`)"}
    return scores, models, catalog_size


def _tunable_sources(settings: Settings) -> dict[str, str]:
    """Where each tunable setting's value comes from: tuned.json, an explicit setting, or the default."""
    tuned = settings.tuned_overrides()
    return {
        name: "tuned.json" if name in tuned else "explicit" if name in settings.model_fields_set else "default"
        for name in TUNABLE
    }


def _tuning_record(settings: Settings, cutoff: int) -> dict[str, Any]:
    """Where tuned.json's values were chosen, and whether its validation window ends at this test window."""
    saved = json.loads(settings.tuned_path.read_text(encoding="utf-8"))
    validation = saved.get("validation", {})
    return {
        "path": str(settings.tuned_path), "chosen_by": saved.get("chosen_by"), "validation": validation,
        "precedes_this_test_window": validation.get("test_cutoff_timestamp") == cutoff,
    }


def tune_step(settings: Settings, protocol: Protocol, *, say: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Choose ALS hyperparameters and hybrid's vector limit on the validation window; writes tuned.json."""
    ratings = read_ingested(settings, settings.ratings_path)
    runtime = open_runtime(settings, require=("vectors",))
    try:
        result = tune(ratings, runtime.facts, runtime.vectors, protocol, ALSParams.from_settings(settings), say=say)
    finally:
        runtime.close()
    write_json(settings.tuned_path, result)
    return result


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False))
