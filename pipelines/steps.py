"""The offline build: each step idempotent, and `BUILD_ORDER`, the one place their order is written.

Every step takes the settings plus ``force`` (redo even when its inputs did not change) and ``progress``
(progress bars), and returns what it did, or None when it was up to date. The CLI (`nextwatch build`,
`demo` and each step's own command), the tests and the notebook all run the steps from here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from pipelines.catalog.load import CatalogResult, load_catalog
from pipelines.collaborative.als import train_als
from pipelines.embeddings.plan import EmbeddingPlan, plan_embedding
from pipelines.embeddings.texts import content_text
from pipelines.embeddings.vectors import VectorBuildResult, build_vectors
from pipelines.ingest.movielens import IngestResult, ingest
from pipelines.state import BuildState, fingerprint
from services.embeddings.backends import make_backend
from services.settings import Settings
from services.stores.catalog import Catalog
from services.stores.collaborative import ALSParams, CollaborativeModel
from services.stores.embedding_cache import EmbeddingCache
from services.stores.errors import ArtifactError, reason
from services.stores.vectors import open_vector_store

Step = Callable[..., Any]


def ingest_step(settings: Settings, *, force: bool = False, progress: bool = True) -> IngestResult | None:
    """MovieLens -> ratings.parquet + movies.parquet; None when already ingested from the same source."""
    state = BuildState(settings.resolved_data_dir)
    digest = fingerprint("ingest", settings.source, settings.ratings_path, settings.movies_path)
    if not force and settings.ratings_path.exists() and state.is_fresh("ingest", digest):
        return None
    result = ingest(settings.source, settings.resolved_data_dir, md5=settings.source_md5, progress=progress)
    state.mark("ingest", fingerprint("ingest", settings.source, settings.ratings_path, settings.movies_path))
    return result


def catalog_step(settings: Settings, *, force: bool = False, progress: bool = True) -> CatalogResult | None:
    """Load movies, rating statistics and inferred series into the catalog; None when unchanged."""
    require_ingested(settings)
    state = BuildState(settings.resolved_data_dir)
    digest = fingerprint("catalog", settings.catalog_url, settings.ratings_path, settings.movies_path)
    catalog = Catalog(settings.catalog_url)
    try:
        catalog.create_schema()
        if not force and catalog.count_movies() > 0 and state.is_fresh("catalog", digest):
            return None
        movies = read_ingested(settings, settings.movies_path)
        ratings = read_ingested(settings, settings.ratings_path, columns=["movieId", "rating"])
        result = load_catalog(catalog, movies, ratings)
    finally:
        catalog.close()
    state.mark("catalog", digest)
    return result


def embed_step(
    settings: Settings, *, force: bool = False, recreate: bool = False, progress: bool = True
) -> VectorBuildResult:
    """Embed content texts (cached) and load them into the Qdrant collection (`force`: rebuild it from the cache)."""
    require_catalog(settings)
    catalog = Catalog(settings.catalog_url)
    store = open_vector_store(settings)
    cache = EmbeddingCache(settings.embedding_cache_path)
    try:
        return build_vectors(
            catalog, store, make_backend(settings), cache, BuildState(settings.resolved_data_dir),
            state_key=f"vectors:{settings.qdrant_url or 'embedded'}:{settings.collection}",
            recreate=recreate or force, batch_size=settings.embedding_batch_size, progress=progress,
        )
    finally:
        cache.close()
        store.close()
        catalog.close()


def embed_plan_step(settings: Settings) -> EmbeddingPlan:
    """What `embed` would send (texts, cache hits, requests, estimated tokens and cost); calls no API."""
    require_catalog(settings)
    catalog = Catalog(settings.catalog_url)
    cache = EmbeddingCache(settings.embedding_cache_path)
    try:
        texts = [content_text(r) for r in catalog.content_rows()]
        return plan_embedding(make_backend(settings), cache, texts, batch_size=settings.embedding_batch_size)
    finally:
        cache.close()
        catalog.close()


def train_step(settings: Settings, *, force: bool = False, progress: bool = True) -> dict[str, Any] | None:
    """Train ALS on all ratings for serving (tuned settings apply); None when the saved model is up to date."""
    require_ingested(settings)
    params = ALSParams.from_settings(settings.with_tuned())
    state = BuildState(settings.resolved_data_dir)
    digest = fingerprint("als", settings.ratings_path, asdict(params))
    if not force and CollaborativeModel.exists(settings.als_dir) and state.is_fresh("als", digest):
        return None
    ratings = read_ingested(settings, settings.ratings_path)
    model = train_als(ratings, params, progress=progress)
    model.save(settings.als_dir)
    state.mark("als", digest)
    return model.info


BUILD_ORDER: tuple[tuple[str, Step], ...] = (
    ("ingest", ingest_step),
    ("catalog", catalog_step),
    ("embed", embed_step),
    ("train", train_step),
)


def build(
    settings: Settings,
    *,
    force: bool = False,
    progress: bool = True,
    on_step: Callable[[str, Any], None] = lambda name, result: None,
) -> dict[str, Any]:
    """Run every step of `BUILD_ORDER`, each skipped when up to date; `on_step(name, result)` after each."""
    results: dict[str, Any] = {}
    for name, step in BUILD_ORDER:
        results[name] = step(settings, force=force, progress=progress)
        on_step(name, results[name])
    return results


def require_ingested(settings: Settings) -> None:
    """RuntimeError naming `nextwatch ingest` when the data dir holds no ratings yet."""
    if not settings.ratings_path.exists():
        raise RuntimeError(f"no ratings in {settings.resolved_data_dir}: run `nextwatch ingest` first")


def read_ingested(settings: Settings, path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """An ingested parquet file (ratings or movies); ArtifactError naming `nextwatch ingest --force` when
    it is unreadable, RuntimeError naming `nextwatch ingest` when nothing was ingested."""
    require_ingested(settings)
    try:
        return pd.read_parquet(path, columns=columns)
    except (pa.ArrowException, OSError, ValueError) as exc:  # truncated, not parquet, missing columns
        raise ArtifactError(f"{path} is unreadable ({reason(exc)}): run `nextwatch ingest --force`") from exc


def require_catalog(settings: Settings) -> None:
    """RuntimeError naming `nextwatch catalog` when the catalog has no movies (or no tables) yet."""
    catalog = Catalog(settings.catalog_url)
    try:
        if not catalog.has_schema() or catalog.count_movies() == 0:
            raise RuntimeError("the catalog is empty: run `nextwatch catalog` first")
    finally:
        catalog.close()
