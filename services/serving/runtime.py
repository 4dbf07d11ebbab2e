"""Opens the stores once and assembles the strategies the API serves (and the evaluator scores)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from services.embeddings.backends import EmbeddingBackend, make_backend
from services.recommender.base import Source
from services.recommender.filters import ItemFacts, MovieSet
from services.recommender.registry import REGISTRY, SourceInputs, make_history_sources, make_sources, store_parts
from services.recommender.standard import FusionConfig, build_strategies, wrap_store_backed
from services.recommender.strategies import BatchStrategy
from services.recommender.tabled import TabledSource
from services.serving.answers import DEFAULT_FILTER as DEFAULT_FILTER
from services.serving.answers import map_default_answers
from services.serving.cache import CachedSource
from services.serving.guards import GuardedSource, Guards
from services.serving.servable import missing_evaluation_build
from services.settings import Settings
from services.stores.catalog import Catalog, FileState, MovieFacts
from services.stores.checksums import damage
from services.stores.collaborative import CollaborativeModel
from services.stores.generations import resolve_generation
from services.stores.neighbours import NeighbourTable, load_table
from services.stores.sequential import SequentialModel
from services.stores.table_inputs import model_state_key, table_input, table_location
from services.stores.vectors import VectorStore, open_vector_store

log = logging.getLogger(__name__)


class Busy(RuntimeError):
    """Every slot of a capped kind of work is taken: try again shortly."""


@dataclass
class Runtime:
    """Everything a request needs, opened once per process."""

    settings: Settings
    catalog: Catalog
    facts: MovieFacts
    vectors: VectorStore | None
    models: dict[str, Any]  # the trained model set by registry name (missing ones absent)
    strategies: dict[str, BatchStrategy]
    missing: list[str] = field(default_factory=list)
    history_strategies: dict[str, BatchStrategy] = field(default_factory=dict)  # queries are histories
    sources: dict[str, Source | None] = field(default_factory=dict)  # the one-movie sources, as served
    items: ItemFacts | None = None  # genres and adult flags (filters, random browsing)
    guards: Guards = field(default_factory=lambda: Guards(None))  # time limits of store calls
    tables: dict[str, NeighbourTable] = field(default_factory=dict)  # precomputed lists by source name
    damaged: dict[str, str] = field(default_factory=dict)  # part -> which of its artifacts failed its checksum
    history_sources: dict[str, Source | None] = field(default_factory=dict)  # as served (experiments re-fuse them)
    answers: str = "off"  # hybrid's default answers: "mapped" from the build, "live: why", or "off"
    _query_backend: EmbeddingBackend | None = None
    _query_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._embedding_slots = threading.BoundedSemaphore(self.settings.api.search_concurrency)

    @cached_property
    def known_ids(self) -> MovieSet:
        """Every catalogue movie id."""
        return self.items.known if self.items is not None else MovieSet(self.facts.ids)

    @property
    def collaborative(self) -> CollaborativeModel | None:
        """The ALS model (user-based answers)."""
        return self.models.get("als")

    @property
    def sequential(self) -> SequentialModel | None:
        """The "watched next" model (it also explains sequential items: viewers)."""
        return self.models.get("sequential")

    def embed_query(self, text: str) -> Any:
        """`text` embedded as a search query by one of `api.search_concurrency` slots; :class:`Busy` at once when
        every slot is taken (embedding is CPU work: more at once only queue, and would hold the worker threads
        the other routes need)."""
        if not self._embedding_slots.acquire(blocking=False):
            raise Busy(f"{self.settings.api.search_concurrency} meaning searches are already running")
        try:
            return self.query_backend().embed_queries([text])
        finally:
            self._embedding_slots.release()

    def query_backend(self) -> EmbeddingBackend:
        """The embedding backend for free-text queries, created on first use and kept."""
        with self._query_lock:  # the first searches wait for one model load, not several
            if self._query_backend is None:
                self._query_backend = make_backend(self.settings)
            return self._query_backend

    def close(self) -> None:
        self.guards.close()
        if self.vectors is not None:
            self.vectors.close()
        self.catalog.close()


def load_model_set(settings: Settings, *, evaluation: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """Every registered model saved in the (served or evaluation) model set, and the parts whose model is
    damaged (part -> why): a missing or damaged model is left out."""
    directory = settings.models_dir(evaluation)
    models: dict[str, Any] = {}
    damaged: dict[str, str] = {}
    for spec in REGISTRY.models.values():
        where = directory / spec.name
        if not spec.store.exists(where):
            log.warning("no %s model in %s", spec.name, where)
            continue
        problem = _damage(settings, model_state_key(spec.name, evaluation=evaluation))
        if problem is not None:
            damaged.update({part: f"damaged ({problem})" for part in _parts_reading(spec.name)})
            continue
        models[spec.name] = spec.store.load(where)  # ArtifactError names the command that retrains it
    return models, damaged


def load_tables(settings: Settings) -> tuple[dict[str, NeighbourTable], dict[str, str]]:
    """The neighbour tables whose inputs are the ones being served (the vector collection, the models of the
    served set), and the parts whose table is damaged (part -> why); a missing, stale or damaged table is
    left out and its source answers live."""
    evaluation = settings.serve_models == "evaluation"
    tables: dict[str, NeighbourTable] = {}
    damaged: dict[str, str] = {}
    for name, spec in REGISTRY.sources.items():
        wanted = table_input(settings, spec.model, evaluation=evaluation) if spec.table is not None else None
        if wanted is None:
            continue
        directory, key = table_location(settings, name, spec.model, evaluation=evaluation)
        problem = _damage(settings, key)
        if problem is not None:
            damaged[spec.part or name] = f"damaged table, answered live ({problem})"
            continue
        table = load_table(directory, name, wanted)
        if table is not None:
            tables[name] = table
    return tables, damaged


def _damage(settings: Settings, key: str) -> str | None:
    """What is wrong with artifact `key` of the served generation (checksums; reads only), logged."""
    problem = damage(settings.build_dir, key)
    if problem is not None:
        fix = "nextwatch evaluate" if key.startswith(model_state_key("", evaluation=True)) else "nextwatch build"
        log.error("%s is damaged and not served: %s (run `%s`)", key, problem, fix)
    return problem


def _parts_reading(model: str) -> list[str]:
    """The readiness parts of the sources that read `model`."""
    return [s.part for s in REGISTRY.sources.values() if s.model == model and s.part]


def tabled_sources(
    tables: Mapping[str, NeighbourTable], live: Callable[[Source], Source] | None = None
) -> Callable[[Source], Source]:
    """Sources answered from their neighbour table where one is loaded; the live source (a store-backed one
    decorated by `live`, e.g. time limits and caches) answers what the table cannot."""
    backed = set(store_parts())

    def wrap(source: Source) -> Source:
        inner = live(source) if live is not None and source.name in backed else source
        table = tables.get(source.name)
        if table is None:
            return inner
        spec = REGISTRY.sources[source.name].table
        return TabledSource(table, inner, complete=spec is not None and spec.complete)

    return wrap


def guarded_sources(guards: Guards) -> Callable[[Source], Source]:
    """Store-backed sources with each call under its part's time limit."""
    parts = store_parts()
    return lambda source: GuardedSource(source, guards[parts[source.name]])


def serving_sources(guards: Guards, cache_size: int) -> Callable[[Source], Source]:
    """Store-backed sources as the API runs them: each call under its part's time limit, and the
    neighbour lists of the `cache_size` most recently asked movies kept in memory."""
    parts = store_parts()

    def wrap(source: Source) -> Source:
        guarded = GuardedSource(source, guards[parts[source.name]])
        return CachedSource(guarded, cache_size) if cache_size else guarded

    return wrap


def open_runtime(settings: Settings, *, require: Sequence[str] = (), serving: bool = False) -> Runtime:
    """Open the catalog, the vectors and the trained model set; a part that cannot be opened is reported in
    `missing`.

    `serving` (the API): store calls run under ``store_timeout_seconds`` (hybrid answers without a part
    that fails or times out) and neighbour lists are cached (``neighbour_cache_size``).

    Tuned settings (tuned.json) apply. With ``serve_models="evaluation"`` the model set is the evaluation
    build (trained before the test window), so the API serves what `evaluate` scored.
    """
    settings = resolve_generation(settings)
    problem = missing_evaluation_build(settings)
    if problem:
        raise RuntimeError(problem)
    settings = settings.with_tuned()
    catalog, facts = _open_catalog(settings)
    vectors = _open_vectors(settings)
    models, damaged = load_model_set(settings, evaluation=settings.serve_models == "evaluation")
    inputs = SourceInputs(facts, models, vectors, settings.protocol.seed, settings.history, settings.content)
    made = make_sources(inputs)
    guards = Guards(settings.api.store_timeout_seconds if serving else None)
    items = ItemFacts.of(facts)
    tables, damaged_tables = load_tables(settings)
    live = serving_sources(guards, settings.api.neighbour_cache_size) if serving else None
    sources = wrap_store_backed(made, tabled_sources(tables, live))
    strategies = build_strategies(sources, FusionConfig.from_settings(settings), facts=items)
    history_sources = served_history_sources(inputs, guards)
    history = build_strategies(history_sources, history_fusion(settings), facts=items)
    missing = missing_parts(made)
    for part in require:
        if part in missing:
            catalog.close()
            if vectors is not None:
                vectors.close()
            raise RuntimeError(f"{part} unavailable: run `nextwatch build` first")
    answers = map_default_answers(settings, strategies, tables, facts) if serving else "off"
    if serving:
        _return_freed_memory()
    return Runtime(
        settings,
        catalog,
        facts,
        vectors,
        models,
        strategies,
        missing,
        history,
        sources,
        items,
        guards,
        tables,
        damaged_tables | damaged,
        history_sources=history_sources,
        answers=answers,
    )


def _return_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's malloc_trim): what opening the build freed
    would otherwise stay in each worker's private memory."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def served_history_sources(inputs: SourceInputs, guards: Guards) -> dict[str, Source | None]:
    """The history sources of `inputs`; serving (guards with a time limit), the store-backed ones under it."""
    wrap = guarded_sources(guards) if guards.timeout is not None else None
    return wrap_store_backed(make_history_sources(inputs), wrap, history=True)


def history_sources_reading(rt: Runtime, last: int) -> dict[str, Source | None]:
    """The runtime's history sources made again to read a history's last `last` movies (an experiment's
    variant with its own history length): over the same models and stores, under the same time limits."""
    settings = rt.settings
    history = settings.history.model_copy(update={"last": last})
    inputs = SourceInputs(rt.facts, rt.models, rt.vectors, settings.protocol.seed, history, settings.content)
    return served_history_sources(inputs, rt.guards)


def history_fusion(settings: Settings) -> FusionConfig:
    """Hybrid over a history: its own weights and rank constant, the one-movie hybrid's depth."""
    return FusionConfig(dict(settings.history.weights), settings.fusion.depth, settings.history.rank_constant)


# the movie facts `serve` read before it forked its workers, with the embedded catalog's file state then: the
# worker that opens that catalog first, unchanged, takes them instead of reading its own (the arrays' pages stay
# shared with the server process); a worker uvicorn starts again later, after a change, reads its own
_read_before_fork: tuple[FileState, MovieFacts] | None = None


def read_facts_before_fork(settings: Settings) -> None:
    """Read the movie facts of the embedded catalog the workers `serve` is about to fork will open (0.5 s at
    32M shape that each worker would spend at the same time on the same cores). A database server's catalog is
    read by each worker: nothing here says whether it changed since."""
    global _read_before_fork
    catalog = Catalog(resolve_generation(settings).catalog_url, read_only=True)
    try:
        state = catalog.file_state()
        if state is not None:
            facts = catalog.movie_facts()
            if catalog.file_state() == state:  # not written while it was read
                _read_before_fork = (state, facts)
    finally:
        catalog.close()


def _facts_read_before_fork(catalog: Catalog) -> MovieFacts | None:
    """The facts read before the fork when they are this catalog's, unchanged since (taken once: a reload, or a
    worker started again, reads its own)."""
    global _read_before_fork
    held, _read_before_fork = _read_before_fork, None
    return held[1] if held is not None and held[0] == catalog.file_state() else None


def _open_catalog(settings: Settings) -> tuple[Catalog, MovieFacts]:
    catalog = Catalog(settings.catalog_url, read_only=True)
    facts = _facts_read_before_fork(catalog)
    if facts is None:
        facts = catalog.movie_facts()
    if not len(facts):
        catalog.close()
        raise RuntimeError("the catalog is empty: run `nextwatch build` first")
    return catalog, facts


def _open_vectors(settings: Settings) -> VectorStore | None:
    vectors: VectorStore | None = None
    try:
        vectors = open_vector_store(settings, reader=True)
        if vectors.info() is None:
            raise RuntimeError(f"collection {settings.qdrant.collection!r} does not exist")
        return vectors
    except Exception as exc:  # the service keeps answering from the other sources
        log.warning("vector store unavailable: %s", exc)
        if vectors is not None:
            vectors.close()
        return None


def missing_parts(sources: Mapping[str, Source | None]) -> list[str]:
    """The parts of the sources that could not be made (what they read is missing)."""
    return list(dict.fromkeys(s.part for n, s in REGISTRY.sources.items() if s.part and sources.get(n) is None))
