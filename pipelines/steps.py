"""The offline steps in order (ingest, catalog, embed, train) and the evaluation run, each idempotent."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.als import train_als
from pipelines.catalog_load import CatalogResult, load_catalog
from pipelines.embeddings import EmbeddingPlan, content_text, make_backend, plan_embedding
from pipelines.evaluation import Protocol, StrategyScore, evaluate_strategies, next_item_pairs
from pipelines.movielens import IngestResult, ingest
from pipelines.state import BuildState, fingerprint
from pipelines.vector_build import VectorBuildResult, build_vectors
from services.runtime import assemble_strategies, open_runtime
from services.settings import Settings
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
    """Train ALS on all ratings for serving; None when the saved model is already up to date."""
    _require_ingested(settings)
    params = als_params(settings)
    state = BuildState(settings.resolved_data_dir)
    digest = fingerprint("als", settings.ratings_path, asdict(params))
    if not force and CollaborativeModel.exists(settings.als_dir) and state.is_fresh("als", digest):
        return None
    ratings = pd.read_parquet(settings.ratings_path)
    model = train_als(ratings, params, progress=progress)
    model.save(settings.als_dir)
    state.mark("als", digest)
    return model.info


@dataclass(frozen=True)
class EvaluationRun:
    protocol: Protocol
    pairs: pd.DataFrame
    cutoff_timestamp: int
    scores: dict[str, StrategyScore]

    def as_json(self) -> dict[str, Any]:
        k = self.protocol.k
        return {
            "pairs": len(self.pairs),
            "users": int(self.pairs["userId"].nunique()),
            "protocol": asdict(self.protocol),
            "cutoff_timestamp": self.cutoff_timestamp,
            "strategies": {name: s.as_dict(k) for name, s in self.scores.items()},
        }


def evaluate_step(settings: Settings, protocol: Protocol, *, progress: bool = True) -> EvaluationRun:
    """Score every served strategy on the latest next-item pairs.

    Anything learned from ratings (ALS, popularity) is trained only on ratings strictly before the
    first test pair, so the test pairs never leak into the models being scored.
    """
    _require_ingested(settings)
    ratings = pd.read_parquet(settings.ratings_path)
    pairs = next_item_pairs(ratings, protocol.min_ratings, protocol.pairs)
    if pairs.empty:
        raise RuntimeError(f"no next-item pairs among movies with >= {protocol.min_ratings} ratings")
    cutoff = int(pairs["timestamp"].min())
    history = ratings.loc[ratings["timestamp"] < cutoff]
    collaborative = _eval_model(settings, history, cutoff, progress=progress)
    popularity = history["movieId"].value_counts().to_dict()
    runtime = open_runtime(settings, require=("vectors",))
    try:
        strategies = assemble_strategies(
            runtime.facts, vectors=runtime.vectors, collaborative=collaborative,
            popularity={int(m): int(c) for m, c in popularity.items()}, seed=settings.seed,
        )
        scores = evaluate_strategies(strategies, pairs, protocol.k, len(runtime.facts.movie_ids))
    finally:
        runtime.close()
    return EvaluationRun(protocol, pairs, cutoff, scores)


def _eval_model(settings: Settings, history: pd.DataFrame, cutoff: int, *, progress: bool) -> CollaborativeModel:
    """ALS trained on ratings before the cutoff, cached in the data dir by (ratings, cutoff, params)."""
    params = als_params(settings)
    directory = settings.resolved_data_dir / "als_eval"
    state = BuildState(settings.resolved_data_dir)
    digest = fingerprint("als_eval", settings.ratings_path, cutoff, asdict(params))
    if CollaborativeModel.exists(directory) and state.is_fresh("als_eval", digest):
        return CollaborativeModel.load(directory)
    model = train_als(history, params, progress=progress)
    model.save(directory)
    state.mark("als_eval", digest)
    return model


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")


def _require_ingested(settings: Settings) -> None:
    if not settings.ratings_path.exists():
        raise RuntimeError(f"no ratings in {settings.resolved_data_dir}: run `nextwatch ingest` first")
