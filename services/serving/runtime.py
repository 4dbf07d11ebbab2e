"""Opens the stores once and assembles the strategies the API serves (and the evaluator scores)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from services.embeddings.backends import EmbeddingBackend, make_backend
from services.recommender.base import Source
from services.recommender.filters import Filter, ItemFacts
from services.recommender.fusion import FusionStrategy
from services.recommender.sources import ItemSimilarity, SeriesSource, VectorIndex
from services.recommender.standard import FusionConfig, Strategy, build_strategies
from services.recommender.tabled import TabledSource
from services.serving.cache import CachedSource
from services.serving.guards import PART_OF_SOURCE, GuardedSource, Guards
from services.settings import Settings
from services.stores.catalog import Catalog, MovieFacts
from services.stores.collaborative import CollaborativeModel
from services.stores.neighbours import NeighbourTable, load_table
from services.stores.popularity import RECENT_FILE_NAME, load_popularity, popularity_exists
from services.stores.sequential import SequentialModel
from services.stores.table_inputs import model_table_input, vector_table_input
from services.stores.vectors import VectorStore, open_vector_store

log = logging.getLogger(__name__)
# tables with a row for every movie their source knows: the ALS table holds every item of the model its
# fingerprint names, so a movie without a row is one ALS does not know (the vector table is not: a movie
# embedded after the build has no row but a vector)
COMPLETE_TABLES = frozenset({"collaborative"})


@dataclass
class Runtime:
    """Everything a request needs, opened once per process."""

    settings: Settings
    catalog: Catalog
    facts: MovieFacts
    vectors: VectorStore | None
    collaborative: CollaborativeModel | None
    strategies: dict[str, Strategy]
    missing: list[str] = field(default_factory=list)
    items: ItemFacts | None = None  # genres and adult flags (filters, random browsing)
    guards: Guards = field(default_factory=lambda: Guards(None))  # time limits of store calls
    tables: dict[str, NeighbourTable] = field(default_factory=dict)  # precomputed lists by source name
    sequential: SequentialModel | None = None  # "watched next": also explains sequential items (viewers)
    _query_backend: EmbeddingBackend | None = None
    _query_lock: threading.Lock = field(default_factory=threading.Lock)

    def query_backend(self) -> EmbeddingBackend:
        """The embedding backend for free-text queries (meaning search), created on first use and kept."""
        with self._query_lock:  # the first searches wait for one model load, not several
            if self._query_backend is None:
                self._query_backend = make_backend(self.settings)
            return self._query_backend

    def close(self) -> None:
        self.guards.close()
        if self.vectors is not None:
            self.vectors.close()
        self.catalog.close()


def assemble_strategies(
    facts: MovieFacts,
    *,
    vectors: VectorIndex | None,
    collaborative: ItemSimilarity | None,
    sequential: ItemSimilarity | None,
    recent_popularity: dict[int, int] | None,
    fusion: FusionConfig,
    seed: int,
    popularity: dict[int, int] | None = None,
    items: ItemFacts | None = None,
    wrap: Callable[[Source], Source] | None = None,
) -> dict[str, Strategy]:
    """The standard strategies over catalogue facts; popularity defaults to the catalogue's rating counts."""
    series = SeriesSource(facts.movie_ids, facts.series_ids, facts.release_dates)
    counts = popularity if popularity is not None else dict(zip(facts.movie_ids, facts.rating_counts))
    return build_strategies(
        movie_ids=facts.movie_ids,
        series=series,
        popularity=counts,
        vectors=vectors,
        collaborative=collaborative,
        sequential=sequential,
        recent_popularity=recent_popularity,
        fusion=fusion,
        seed=seed,
        facts=items or ItemFacts(facts.movie_ids, facts.genres, facts.adult),
        wrap=wrap,
    )


def load_tables(settings: Settings, *, evaluation: bool = False) -> dict[str, NeighbourTable]:
    """The neighbour tables whose inputs are the ones being served (the vector collection, the served or
    the evaluation ALS model); a missing or stale table is left out and its source answers live."""
    models_dir, step = (settings.als_eval_dir, "als_eval") if evaluation else (settings.als_dir, "als")
    inputs = {
        "vector": (settings.neighbours_dir, vector_table_input(settings)),
        "collaborative": (models_dir, model_table_input(settings, step)),
    }
    tables: dict[str, NeighbourTable] = {}
    for name, (directory, wanted) in inputs.items():
        table = load_table(directory, name, wanted) if wanted is not None else None
        if table is not None:
            tables[name] = table
    return tables


def tabled_sources(
    tables: Mapping[str, NeighbourTable], live: Callable[[Source], Source] | None = None
) -> Callable[[Source], Source]:
    """Store-backed sources answered from their neighbour table where one is loaded; the live source
    (decorated by `live`, e.g. time limits and caches) answers what the table cannot."""

    def wrap(source: Source) -> Source:
        inner = live(source) if live is not None else source
        table = tables.get(source.name)
        return TabledSource(table, inner, complete=source.name in COMPLETE_TABLES) if table is not None else inner

    return wrap


def serving_sources(guards: Guards, cache_size: int) -> Callable[[Source], Source]:
    """Store-backed sources as the API runs them: each call under its part's time limit, and the
    neighbour lists of the `cache_size` most recently asked movies kept in memory."""

    def wrap(source: Source) -> Source:
        guarded = GuardedSource(source, guards[PART_OF_SOURCE[source.name]])
        return CachedSource(guarded, cache_size) if cache_size else guarded

    return wrap


def check_servable(settings: Settings) -> str | None:
    """Why the data dir cannot be served yet (naming the command that fixes it), or None."""
    if not settings.ratings_path.exists():
        return f"nothing built in {settings.resolved_data_dir}: run `nextwatch build` first"
    return _missing_evaluation_build(settings)


def _missing_evaluation_build(settings: Settings) -> str | None:
    eval_dir = settings.als_eval_dir
    if settings.serve_models == "evaluation" and not (
        CollaborativeModel.exists(eval_dir) and popularity_exists(eval_dir)
    ):
        return f"no evaluation build in {eval_dir}: run `nextwatch evaluate` first"
    return None


def open_runtime(settings: Settings, *, require: Sequence[str] = (), serving: bool = False) -> Runtime:
    """Open catalog, vectors and ALS model; a part that cannot be opened is reported in `missing`.

    `serving` (the API): store calls run under ``store_timeout_seconds`` (hybrid answers without a part
    that fails or times out) and neighbour lists are cached (``neighbour_cache_size``).

    Tuned settings (tuned.json) apply. With ``serve_models="evaluation"`` the ALS model and popularity
    are the evaluation build (trained before the test window), so the API serves what `evaluate` scored.
    """
    problem = _missing_evaluation_build(settings)
    if problem:
        raise RuntimeError(problem)
    settings = settings.with_tuned()
    evaluation = settings.serve_models == "evaluation"
    models_dir = settings.als_eval_dir if evaluation else settings.als_dir
    catalog = Catalog(settings.catalog_url)
    facts = catalog.movie_facts()
    if not facts.movie_ids:
        catalog.close()
        raise RuntimeError("the catalog is empty: run `nextwatch build` first")
    missing: list[str] = []
    vectors: VectorStore | None = None
    try:
        vectors = open_vector_store(settings)
        if vectors.info() is None:
            raise RuntimeError(f"collection {settings.collection!r} does not exist")
    except Exception as exc:  # the service keeps answering from the other sources
        log.warning("vector store unavailable: %s", exc)
        if vectors is not None:
            vectors.close()
        vectors = None
        missing.append("vectors")
    collaborative: CollaborativeModel | None = None
    if CollaborativeModel.exists(models_dir):
        collaborative = CollaborativeModel.load(models_dir)
    else:
        log.warning("no ALS model in %s", models_dir)
        missing.append("collaborative")
    sequential_dir = models_dir / "sequential" if evaluation else settings.sequential_dir
    sequential: SequentialModel | None = None
    recent: dict[int, int] | None = None
    if SequentialModel.exists(sequential_dir):
        sequential = SequentialModel.load(sequential_dir)
        recent_dir = models_dir if evaluation else sequential_dir
        recent = (
            load_popularity(recent_dir, RECENT_FILE_NAME) if popularity_exists(recent_dir, RECENT_FILE_NAME) else None
        )
    else:
        log.warning("no sequential model in %s", sequential_dir)
        missing.append("sequential")
    for part in require:
        if part in missing:
            raise RuntimeError(f"{part} unavailable: run `nextwatch build` first")
    guards = Guards(settings.store_timeout_seconds if serving else None)
    items = ItemFacts(facts.movie_ids, facts.genres, facts.adult)
    tables = load_tables(settings, evaluation=evaluation)
    strategies = assemble_strategies(
        facts,
        vectors=vectors,
        collaborative=collaborative,
        sequential=sequential,
        recent_popularity=recent,
        fusion=FusionConfig.from_settings(settings),
        seed=settings.seed,
        items=items,
        wrap=tabled_sources(tables, serving_sources(guards, settings.neighbour_cache_size) if serving else None),
        popularity=load_popularity(models_dir) if evaluation else None,
    )
    if serving:
        precompute_default_answers(strategies, tables, facts.movie_ids, settings.precompute_k)
    return Runtime(
        settings, catalog, facts, vectors, collaborative, strategies, missing, items, guards, tables, sequential
    )


# the API's default request: no exclusions, any genre, no adult movies
DEFAULT_FILTER = Filter.of((), None, include_adult=False)


def precompute_default_answers(
    strategies: Mapping[str, Strategy], tables: Mapping[str, NeighbourTable], movie_ids: Sequence[int], k: int
) -> None:
    """Hybrid's answer to the default request (k, the default filter) for every movie, computed now so the
    API gives it from memory; only when every store-backed source hybrid asks is answered by a table
    (otherwise each movie would wait on a live search here)."""
    hybrid = strategies.get("hybrid")
    if not k or not isinstance(hybrid, FusionStrategy):
        return
    live = {s.name for s in hybrid.sources} & (set(PART_OF_SOURCE) - set(tables))
    if live:
        log.info("hybrid's default answers not precomputed: %s answer live (no table)", ", ".join(sorted(live)))
        return
    started = time.perf_counter()
    kept = hybrid.precompute(movie_ids, k, DEFAULT_FILTER)
    log.info("hybrid's default answers (k=%d) for %s movies in %.1f s", k, f"{kept:,}", time.perf_counter() - started)
