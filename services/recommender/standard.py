"""The strategies the product serves (and the evaluator scores), built from the registry's sources.

Each source with a chain is a strategy of its own, each composite is one, and hybrid fuses every fusable
source by the fusion weights, filled from the fallback sources; all of them take a :class:`Filter`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.recommender.base import Source
from services.recommender.filters import ItemFacts
from services.recommender.fusion import fused_hybrid
from services.recommender.registry import (
    HYBRID,
    REGISTRY,
    SourceInputs,
    degradable,
    fallback_sources,
    fusable,
    make_sources,
    strategy_names,
)
from services.recommender.sources import VectorIndex
from services.recommender.strategies import BatchStrategy, ChainStrategy
from services.settings import ContentSettings, Settings
from services.stores.catalog import MovieFacts

DEFAULT_CONTENT = ContentSettings()  # what the content sources are made from, untuned


@dataclass(frozen=True)
class FusionConfig:
    """Hybrid's fusion: a weight per source (0: not asked), candidates taken per source, rank constant."""

    weights: Mapping[str, float]
    depth: int
    rank_constant: float

    @classmethod
    def from_settings(cls, settings: Settings) -> FusionConfig:
        """The fusion settings (apply `Settings.with_tuned` first for the tuned values)."""
        return cls(dict(settings.fusion.weights), settings.fusion.depth, settings.fusion.rank_constant)


def build_strategies(
    sources: Mapping[str, Source | None], fusion: FusionConfig, *, facts: ItemFacts | None = None
) -> dict[str, BatchStrategy]:
    """Every strategy over the registry's `sources` (:func:`make_sources`, or their history forms) whose
    first source exists (composites: all of their sources), and hybrid.

    Hybrid answers without a degradable part that is missing or fails (degraded). `facts` lets every
    strategy take a :class:`Filter`.
    """
    chains: dict[str, list[Source | None]] = {}
    for name, spec in REGISTRY.sources.items():
        if spec.chain is not None and sources[name] is not None:
            chains[name] = [sources[name], *(sources[n] for n in spec.chain)]
    for composite in REGISTRY.composites.values():
        if all(sources[n] is not None for n in composite.chain):
            chains[composite.name] = [sources[n] for n in composite.chain]
    built: dict[str, BatchStrategy] = {
        name: ChainStrategy(name, [s for s in chain if s is not None], facts=facts) for name, chain in chains.items()
    }
    fillers = sorted(fallback_sources(), key=lambda n: REGISTRY.sources[n].display)
    built[HYBRID] = fused_hybrid(
        {name: sources[name] for name in fusable()},
        fusion.weights,
        fallback=[s for s in (sources[n] for n in fillers) if s is not None],
        depth=fusion.depth,
        rank_constant=fusion.rank_constant,
        facts=facts,
        optional=degradable(),
    )
    return {name: built[name] for name in strategy_names() if name in built}


def assemble_strategies(
    facts: MovieFacts,
    models: Mapping[str, Any],
    fusion: FusionConfig,
    *,
    vectors: VectorIndex | None = None,
    seed: int = 42,
    content: ContentSettings = DEFAULT_CONTENT,
) -> dict[str, BatchStrategy]:
    """The standard strategies over catalogue facts and a model set ({registry model name: artifact}; a
    missing "popularity" counts the catalogue's ratings), each taking a :class:`Filter`."""
    sources = make_sources(SourceInputs(facts, models, vectors, seed, content=content))
    items = ItemFacts.of(facts)
    return build_strategies(sources, fusion, facts=items)


def wrap_store_backed(
    sources: Mapping[str, Source | None], wrap: Callable[[Source], Source] | None, *, history: bool = False
) -> dict[str, Source | None]:
    """The sources with the store-backed ones, and those with a neighbour table, decorated by `wrap` (neighbour
    tables, time limits, caches); with `history`, the history forms whose calls reach a store (not only models in
    memory)."""
    if wrap is None:
        return dict(sources)
    specs = REGISTRY.sources
    backed = {
        n for n, s in specs.items() if (s.history_store_backed if history else s.store_backed or s.table is not None)
    }
    return {name: wrap(source) if source is not None and name in backed else source for name, source in sources.items()}
