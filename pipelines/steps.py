"""The offline steps in order (ingest, catalog, embed, train) and the evaluation run, each idempotent."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.collaborative.als import train_als
from pipelines.catalog.load import CatalogResult, load_catalog
from pipelines.embeddings.plan import EmbeddingPlan, plan_embedding
from pipelines.embeddings.texts import content_text
from services.embeddings.backends import make_backend
from pipelines.evaluation.heldout import evaluation_build
from pipelines.evaluation.protocol import (
    EvaluationRun,
    Protocol,
    StrategyScore,
    evaluate_strategies,
    next_item_pairs,
    ratings_fingerprint,
    utc,
)
from pipelines.ingest.movielens import IngestResult, ingest
from pipelines.evaluation.served import ServedStrategy, ServiceClient
from pipelines.state import BuildState, fingerprint
from pipelines.evaluation.tuning import tune
from pipelines.embeddings.vectors import VectorBuildResult, build_vectors
from services.recommender.strategies import STRATEGY_NAMES
from services.serving.runtime import assemble_strategies, open_runtime
from services.settings import TUNABLE, Settings
from services.stores.catalog import Catalog
from services.stores.collaborative import ALSParams, CollaborativeModel
from services.stores.embedding_cache import EmbeddingCache
from services.stores.vectors import open_vector_store

log = logging.getLogger(__name__)


def als_params(settings: Settings) -> ALSParams:
    """ALS hyperparameters from the settings."""
    return ALSParams(
        factors=settings.als_factors, iterations=settings.als_iterations,
        regularization=settings.als_regularization, alpha=settings.als_alpha,
        min_rating=settings.als_min_rating, seed=settings.als_seed,
    )


def ingest_step(settings: Settings, *, force: bool = False, progress: bool = True) -> IngestResult | None:
    """MovieLens -> ratings.parquet + movies.parquet; None when already ingested from the same source."""
    state = BuildState(settings.resolved_data_dir)
    digest = fingerprint("ingest", settings.source, settings.ratings_path, settings.movies_path)
    if not force and settings.ratings_path.exists() and state.is_fresh("ingest", digest):
        return None
    result = ingest(settings.source, settings.resolved_data_dir, md5=settings.source_md5, progress=progress)
    state.mark("ingest", fingerprint("ingest", settings.source, settings.ratings_path, settings.movies_path))
    return result


def catalog_step(settings: Settings, *, force: bool = False) -> CatalogResult | None:
    """Load movies, rating statistics and inferred series into the catalog; None when unchanged."""
    _require_ingested(settings)
    state = BuildState(settings.resolved_data_dir)
    digest = fingerprint("catalog", settings.catalog_url, settings.ratings_path, settings.movies_path)
    catalog = Catalog(settings.catalog_url)
    try:
        catalog.create_schema()
        if not force and catalog.count_movies() > 0 and state.is_fresh("catalog", digest):
            return None
        movies = pd.read_parquet(settings.movies_path)
        ratings = pd.read_parquet(settings.ratings_path, columns=["movieId", "rating"])
        result = load_catalog(catalog, movies, ratings)
    finally:
        catalog.close()
    state.mark("catalog", digest)
    return result


def embed_step(settings: Settings, *, recreate: bool = False, progress: bool = True) -> VectorBuildResult:
    """Embed content texts (cached) and load them into the Qdrant collection."""
    catalog = Catalog(settings.catalog_url)
    store = open_vector_store(settings)
    cache = EmbeddingCache(settings.embedding_cache_path)
    try:
        if catalog.count_movies() == 0:
            raise RuntimeError("the catalog is empty: run `nextwatch catalog` first")
        return build_vectors(
            catalog, store, make_backend(settings), cache, BuildState(settings.resolved_data_dir),
            state_key=f"vectors:{settings.qdrant_url or 'embedded'}:{settings.collection}",
            recreate=recreate, batch_size=settings.embedding_batch_size, progress=progress,
        )
    finally:
        cache.close()
        store.close()
        catalog.close()


def embed_plan_step(settings: Settings) -> EmbeddingPlan:
    """What `embed` would send (texts, cache hits, requests, estimated tokens and cost); calls no API."""
    catalog = Catalog(settings.catalog_url)
    cache = EmbeddingCache(settings.embedding_cache_path)
    try:
        if catalog.count_movies() == 0:
            raise RuntimeError("the catalog is empty: run `nextwatch catalog` first")
        texts = [content_text(r) for r in catalog.content_rows()]
        return plan_embedding(make_backend(settings), cache, texts, batch_size=settings.embedding_batch_size)
    finally:
        cache.close()
        catalog.close()


def train_step(settings: Settings, *, force: bool = False, progress: bool = True) -> dict[str, Any] | None:
    """Train ALS on all ratings for serving (tuned settings apply); None when the saved model is up to date."""
    _require_ingested(settings)
    params = als_params(settings.with_tuned())
    state = BuildState(settings.resolved_data_dir)
    digest = fingerprint("als", settings.ratings_path, asdict(params))
    if not force and CollaborativeModel.exists(settings.als_dir) and state.is_fresh("als", digest):
        return None
    ratings = pd.read_parquet(settings.ratings_path)
    model = train_als(ratings, params, progress=progress)
    model.save(settings.als_dir)
    state.mark("als", digest)
    return model.info


def build_step(settings: Settings, *, progress: bool = True) -> None:
    """All offline steps in order (ingest, catalog, embed, train), each skipped when up to date."""
    ingest_step(settings, progress=progress)
    catalog_step(settings)
    embed_step(settings, progress=progress)
    train_step(settings, progress=progress)


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
    _require_ingested(settings)
    started = time.perf_counter()
    sources = _tunable_sources(settings)
    settings = settings.with_tuned()
    ratings = pd.read_parquet(settings.ratings_path)
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
    held_out = evaluation_build(settings, ratings, cutoff, als_params(settings), progress=progress)
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
    _require_ingested(settings)
    ratings = pd.read_parquet(settings.ratings_path)
    runtime = open_runtime(settings, require=("vectors",))
    try:
        result = tune(ratings, runtime.facts, runtime.vectors, protocol, als_params(settings), say=say)
    finally:
        runtime.close()
    write_json(settings.tuned_path, result)
    return result


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")


def _require_ingested(settings: Settings) -> None:
    if not settings.ratings_path.exists():
        raise RuntimeError(f"no ratings in {settings.resolved_data_dir}: run `nextwatch ingest` first")
