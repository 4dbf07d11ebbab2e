"""The standard strategies the product serves (and the evaluator scores), built from the sources there are."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from services.recommender.base import Source
from services.recommender.filters import ItemFacts
from services.recommender.fusion import FusionStrategy, fused_hybrid
from services.recommender.sequential_sources import RecentPopularSource, SequentialSource
from services.recommender.sources import (
    CollaborativeSource,
    ItemSimilarity,
    PopularSource,
    RandomSource,
    SeriesSource,
    VectorIndex,
    VectorSource,
)
from services.recommender.strategies import ChainStrategy
from services.settings import Settings

STRATEGY_NAMES: tuple[str, ...] = (
    "random",
    "popular",
    "recent-popular",
    "series",
    "vector",
    "collaborative",
    "sequential",
    "series+vector",
    "hybrid",
)
# hybrid's sources that can be missing or fail while serving: it answers without them (degraded)
DEGRADABLE = (VectorSource.name, CollaborativeSource.name, SequentialSource.name)

Strategy = ChainStrategy | FusionStrategy


@dataclass(frozen=True)
class FusionConfig:
    """Hybrid's fusion: a weight per source (0: not asked), candidates taken per source, rank constant."""

    weights: Mapping[str, float]
    depth: int
    rank_constant: float

    @classmethod
    def from_settings(cls, settings: Settings) -> FusionConfig:
        """The fusion settings (apply `Settings.with_tuned` first for the tuned values)."""
        return cls(dict(settings.fusion_weights), settings.fusion_depth, settings.fusion_rank_constant)


def build_strategies(
    *,
    movie_ids: Sequence[int],
    series: SeriesSource,
    popularity: dict[int, int],
    vectors: VectorIndex | None,
    collaborative: ItemSimilarity | None,
    sequential: ItemSimilarity | None,
    recent_popularity: dict[int, int] | None,
    fusion: FusionConfig,
    seed: int,
    facts: ItemFacts | None = None,
    wrap: Callable[[Source], Source] | None = None,
) -> dict[str, Strategy]:
    """Every strategy whose parts exist (vectors, ALS, the sequential model, recent counts).

    Hybrid fuses series, sequential, collaborative, vector and recent-popular by `fusion`'s weights and
    fills from popular; it answers without a part that is missing or fails (degraded). `facts` lets every
    strategy take a :class:`Filter`; `wrap` decorates the sources that reach a store (vector,
    collaborative), e.g. with neighbour tables and time limits.
    """
    rand = RandomSource(movie_ids, seed)
    popular = PopularSource(popularity)
    wrap = wrap or (lambda source: source)
    vector = wrap(VectorSource(vectors)) if vectors is not None else None
    collab = wrap(CollaborativeSource(collaborative)) if collaborative is not None else None
    after = SequentialSource(sequential) if sequential is not None else None
    recent = RecentPopularSource(recent_popularity) if recent_popularity else None
    chains: dict[str, list[Source]] = {"random": [rand], "popular": [popular], "series": [series, rand]}
    if recent:
        chains["recent-popular"] = [recent, popular, rand]
    if vector:
        chains["vector"] = [vector, rand]
        chains["series+vector"] = [series, vector, rand]
    if collab:
        chains["collaborative"] = [collab, rand]
    if after:
        chains["sequential"] = [after, rand]
    built: dict[str, Strategy] = {name: ChainStrategy(name, chain, facts=facts) for name, chain in chains.items()}
    built["hybrid"] = fused_hybrid(
        {"series": series, "vector": vector, "collaborative": collab, "sequential": after, "recent-popular": recent},
        fusion.weights,
        fallback=[popular, rand],
        depth=fusion.depth,
        rank_constant=fusion.rank_constant,
        facts=facts,
        optional=DEGRADABLE,
    )
    return {name: built[name] for name in STRATEGY_NAMES if name in built}
