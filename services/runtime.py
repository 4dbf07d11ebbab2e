"""Opens the stores once and assembles the strategies the API serves (and the evaluator scores)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.recommender.sources import ItemSimilarity, SeriesSource, VectorIndex
from services.recommender.strategies import ChainStrategy, build_strategies
from services.settings import Settings
from services.stores.catalog import Catalog, MovieFacts
from services.stores.collaborative import CollaborativeModel
from services.stores.vectors import VectorStore, open_vector_store

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a request needs, opened once per process."""

    settings: Settings
    catalog: Catalog
    facts: MovieFacts
    vectors: VectorStore | None
    collaborative: CollaborativeModel | None
    strategies: dict[str, ChainStrategy]
    missing: list[str] = field(default_factory=list)

    def close(self) -> None:
        if self.vectors is not None:
            self.vectors.close()
        self.catalog.close()


def assemble_strategies(
    facts: MovieFacts,
    *,
    vectors: VectorIndex | None,
    collaborative: ItemSimilarity | None,
    popularity: dict[int, int] | None = None,
    seed: int = 42,
) -> dict[str, ChainStrategy]:
    """The standard strategies over catalogue facts; popularity defaults to the catalogue's rating counts."""
    series = SeriesSource(facts.movie_ids, facts.series_ids, facts.release_dates)
    counts = popularity if popularity is not None else dict(zip(facts.movie_ids, facts.rating_counts))
    return build_strategies(
        movie_ids=facts.movie_ids, series=series, popularity=counts,
        vectors=vectors, collaborative=collaborative, seed=seed,
    )


def open_runtime(settings: Settings, *, require: Sequence[str] = ()) -> Runtime:
    """Open catalog, vectors and ALS model; a part that cannot be opened is reported in `missing`."""
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
    if CollaborativeModel.exists(settings.als_dir):
        collaborative = CollaborativeModel.load(settings.als_dir)
    else:
        log.warning("no ALS model in %s", settings.als_dir)
        missing.append("collaborative")
    for part in require:
        if part in missing:
            raise RuntimeError(f"{part} unavailable: run `nextwatch build` first")
    strategies = assemble_strategies(
        facts, vectors=vectors, collaborative=collaborative, seed=settings.seed
    )
    return Runtime(settings, catalog, facts, vectors, collaborative, strategies, missing)
