"""The offline build: each step idempotent, and `BUILD_ORDER`, the one place their order is written.

Every step takes the settings plus ``force`` (redo even when its inputs did not change) and ``progress``
(progress bars), and returns what it did, or None when it was up to date. The CLI (`nextwatch build`,
`demo` and each step's own command), the tests and the notebook all run the steps from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from pipelines import generations
from pipelines.catalog.load import CatalogResult, load_catalog
from pipelines.embeddings.plan import EmbeddingPlan, plan_embedding
from pipelines.embeddings.texts import content_text
from pipelines.embeddings.vectors import VectorBuildResult, build_vectors
from pipelines.ingest.movielens import IngestResult, ingest
from pipelines.ingest.source import DEFAULT_SOURCE, check_shrink, read_source, same_source, write_source
from pipelines.models.events import read_events
from pipelines.models.model_set import train_model_set
from pipelines.neighbours.step import NeighboursResult, build_neighbour_tables
from services.embeddings.backends import make_backend
from services.settings import Settings
from services.stores.build_state import BuildState, fingerprint
from services.stores.catalog import Catalog
from services.stores.embedding_cache import EmbeddingCache
from services.stores.errors import ArtifactError, reason
from services.stores.generations import current_generation, resolve_generation
from services.stores.vectors import open_vector_store

Step = Callable[..., Any]


def catalog_inputs(settings: Settings) -> str:
    """What the catalog is built from (the ingested files; the database when it is not the embedded one)."""
    return fingerprint("catalog", settings.database_url or "embedded", settings.ratings_path, settings.movies_path)


def ingest_step(settings: Settings, *, force: bool = False, progress: bool = True) -> IngestResult | None:
    """MovieLens -> ratings.parquet + movies.parquet; None when already ingested from the same source.

    The source is the one given (``--source`` / ``NEXTWATCH_SOURCE``), else the one the data dir was last
    ingested from, else the bundled sample: a build never swaps the user's release for the sample. A
    different source given explicitly replaces the release (``result.replaced`` names the old one). A
    release that would lose more than 90% of its ratings is refused unless `force`.
    """
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)  # ingest and build are the commands that may create it
    recorded = read_source(data_dir)
    source = settings.source or (recorded.source if recorded else DEFAULT_SOURCE)
    replacing = recorded is not None and not same_source(source, recorded.source)
    state = BuildState(data_dir)
    digest = fingerprint("ingest", source, settings.ratings_path, settings.movies_path)
    if not force and not replacing and settings.ratings_path.exists() and state.is_fresh("ingest", digest):
        return None
    result = ingest(
        source,
        data_dir,
        md5=settings.source_md5,
        progress=progress,
        accept=lambda ratings: check_shrink(recorded, source, ratings, force=force),
    )
    write_source(
        data_dir, source, settings.source_md5, ratings=result.ratings, users=result.users, movies=result.movies
    )
    state.mark("ingest", fingerprint("ingest", source, settings.ratings_path, settings.movies_path))
    if replacing and recorded is not None:
        return replace(result, replaced=f"{recorded.source} ({recorded.ratings:,} ratings)")
    return result


def catalog_step(settings: Settings, *, force: bool = False, progress: bool = True) -> CatalogResult | None:
    """Load movies, rating statistics and inferred series into the catalog; None when unchanged."""
    require_ingested(settings)
    settings = resolve_generation(settings)
    state = BuildState(settings.build_dir)
    digest = catalog_inputs(settings)
    catalog = Catalog(settings.catalog_url)
    try:
        catalog.create_schema()
        if not force and catalog.count_movies() > 0 and state.is_fresh("catalog", digest):
            return None
        movies = read_ingested(settings, settings.movies_path)
        ratings = read_ingested(settings, settings.ratings_path, columns=["movieId", "rating"])
        result = load_catalog(catalog, movies, ratings)
        if settings.tmdb_checkpoint_path.exists():  # fetched TMDB metadata applies to every release
            from pipelines.tmdb.runs import apply_checkpoints

            apply_checkpoints(settings, catalog)
    finally:
        catalog.close()
    state.mark("catalog", digest)
    return result


def embed_step(
    settings: Settings, *, force: bool = False, recreate: bool = False, progress: bool = True
) -> VectorBuildResult:
    """Embed content texts (cached) and load them into the Qdrant collection (`force`: rebuild it from the cache).

    The text variant is `settings.content.text` (tuned.json's when not set explicitly)."""
    settings = resolve_generation(settings)
    require_catalog(settings)
    text = settings.with_tuned().content.text
    catalog = Catalog(settings.catalog_url)
    store = open_vector_store(settings)
    cache = EmbeddingCache(settings.embedding_cache_path)
    try:
        return build_vectors(
            catalog,
            store,
            make_backend(settings),
            cache,
            BuildState(settings.build_dir),
            state_key=settings.vectors_state_key,
            recreate=recreate or force,
            batch_size=settings.embedding.batch_size,
            progress=progress,
            text=text,
        )
    finally:
        cache.close()
        store.close()
        catalog.close()


def embed_plan_step(settings: Settings) -> EmbeddingPlan:
    """What `embed` would send (texts, cache hits, requests, estimated tokens and cost); calls no API."""
    settings = resolve_generation(settings)
    require_catalog(settings)
    text = settings.with_tuned().content.text
    catalog = Catalog(settings.catalog_url, read_only=True)
    cache = EmbeddingCache(settings.embedding_cache_path)
    try:
        texts = [content_text(r, text) for r in catalog.content_rows()]
        return plan_embedding(make_backend(settings), cache, texts, batch_size=settings.embedding.batch_size)
    finally:
        cache.close()
        catalog.close()


def train_step(
    settings: Settings, *, force: bool = False, progress: bool = True, slow: bool = True
) -> dict[str, Any] | None:
    """The trained model set from all ratings and the viewers' events, for serving (tuned settings apply):
    every registered model whose inputs changed (without `slow`: but the slow ones); None when all were up to
    date."""
    require_ingested(settings)
    settings = resolve_generation(settings)
    ratings = read_ingested(settings, settings.ratings_path)
    trained = train_model_set(
        settings.with_tuned(), ratings, events=read_events(settings), force=force, progress=progress, slow=slow
    )
    return trained or None


def neighbours_step(settings: Settings, *, force: bool = False, progress: bool = True) -> NeighboursResult | None:
    """Each source's top N per movie (exact vector neighbours, ALS neighbours) for the served build."""
    require_ingested(settings)
    return build_neighbour_tables(resolve_generation(settings), force=force)


BUILD_ORDER: tuple[tuple[str, Step], ...] = (
    ("ingest", ingest_step),
    ("catalog", catalog_step),
    ("embed", embed_step),
    ("train", train_step),
    ("neighbours", neighbours_step),
)
# A quick build (what `make run` serves at once; a no-op when the served build is up to date) leaves these steps
# and the registry's slow models to the next full build: until then, the sources that read them answer `missing`.
QUICK_SKIPS = frozenset({"embed"})


def _quick(order: tuple[tuple[str, Step], ...]) -> tuple[tuple[str, Step], ...]:
    """`order` without `QUICK_SKIPS`, its train step without the slow models."""
    return tuple(
        (name, partial(train_step, slow=False) if step is train_step else step)
        for name, step in order
        if name not in QUICK_SKIPS
    )


def build(
    settings: Settings,
    *,
    force: bool = False,
    progress: bool = True,
    on_step: Callable[[str, Any], None] = lambda name, result: None,
    quick: bool = False,
) -> dict[str, Any]:
    """Run every step of `BUILD_ORDER`, each skipped when up to date; `on_step(name, result)` after each;
    `quick`: without the slow parts (`QUICK_SKIPS`, the slow models), for a first answer soon.

    Unless the settings pin a generation, the steps after ingest run in a new build generation beside
    the served one, switched in when all of them succeeded (and dropped when none had anything to do).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (first, ingest_first), *rest = _quick(BUILD_ORDER) if quick else BUILD_ORDER
    results: dict[str, Any] = {first: ingest_first(settings, force=force, progress=progress)}
    on_step(first, results[first])
    if settings.generation is not None:
        for name, step in rest:
            results[name] = step(settings, force=force, progress=progress)
            on_step(name, results[name])
        return results
    generation = generations.begin(settings)
    staged = settings.model_copy(update={"generation": generation})
    try:
        for name, step in rest:
            results[name] = step(staged, force=force, progress=progress)
            on_step(name, results[name])
    except BaseException:
        generations.discard(settings, generation)
        raise
    unchanged = all(results[name] is None or _unchanged(results[name]) for name, _ in rest)
    if unchanged and current_generation(settings.data_dir) is not None:
        generations.discard(settings, generation)
    else:
        generations.commit(settings, generation)
    return results


def _unchanged(result: Any) -> bool:
    """A step result that reports no change (the embed step always returns one)."""
    return isinstance(result, VectorBuildResult) and not result.upserted


def require_ingested(settings: Settings) -> None:
    """RuntimeError naming `nextwatch ingest` when the data dir holds no ratings yet."""
    if not settings.ratings_path.exists():
        raise RuntimeError(f"no ratings in {settings.data_dir}: run `nextwatch ingest` first")


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
    catalog = Catalog(settings.catalog_url, read_only=True)
    try:
        if not catalog.has_schema() or catalog.count_movies() == 0:
            raise RuntimeError("the catalog is empty: run `nextwatch catalog` first")
    finally:
        catalog.close()
