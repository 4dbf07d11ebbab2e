"""Strategies as ordered chains of candidate sources, and the standard set the product serves."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple

from services.recommender.base import Recommendation, Source
from services.recommender.filters import Filter, ItemFacts
from services.recommender.sources import (
    CollaborativeSource,
    ItemSimilarity,
    LimitedSource,
    PopularSource,
    RandomSource,
    SeriesSource,
    VectorIndex,
    VectorSource,
)

log = logging.getLogger(__name__)

STRATEGY_NAMES: tuple[str, ...] = (
    "random", "popular", "series", "vector", "collaborative", "series+vector", "hybrid",
)


class ChainResult(NamedTuple):
    """A served batch: one list per query, and the sources it had to do without."""

    items: list[list[Recommendation]]
    missing: list[str]

    @property
    def degraded(self) -> bool:
        return bool(self.missing)


class ChainStrategy:
    """Takes each source's candidates in turn, skipping the query and duplicates, until k are found.

    With a :class:`Filter`, candidates the filter rejects are skipped too, and a source is asked again
    for more (up to ``MAX_FETCH``) while it may still fill k. ``optional`` sources may fail while
    serving (:meth:`recommend_batch` answers from the others); ``absent`` names optional sources the
    chain was built without. Both show in :attr:`ChainResult.missing`.
    """

    MAX_FETCH = 2000

    def __init__(
        self,
        name: str,
        sources: Sequence[Source],
        *,
        facts: ItemFacts | None = None,
        optional: Sequence[str] = (),
        absent: Sequence[str] = (),
    ) -> None:
        if not sources:
            raise ValueError(f"strategy {name!r} needs at least one source")
        self.name = name
        self.sources = list(sources)
        self.facts = facts
        self.optional = frozenset(optional)
        self.absent = list(absent)

    def similar(self, movie_id: int, k: int, *, filter: Filter | None = None) -> list[Recommendation]:
        return self.similar_batch([movie_id], k, filter=filter)[0]

    def similar_batch(
        self, movie_ids: Sequence[int], k: int, *, filter: Filter | None = None
    ) -> list[list[Recommendation]]:
        """Up to k recommendations per movie; any source failure propagates."""
        return self._run(movie_ids, k, filter, degrade=False).items

    def recommend_batch(self, movie_ids: Sequence[int], k: int, *, filter: Filter | None = None) -> ChainResult:
        """Serving: an optional source that raises is skipped and reported in `missing`."""
        return self._run(movie_ids, k, filter, degrade=True)

    def _run(self, movie_ids: Sequence[int], k: int, rules: Filter | None, *, degrade: bool) -> ChainResult:
        keep = self._predicate(rules)
        extra = len(rules.exclude) if rules is not None else 0
        ids = [int(m) for m in movie_ids]
        results: list[list[Recommendation]] = [[] for _ in ids]
        seen: list[set[int]] = [{m} for m in ids]
        missing = list(self.absent)
        for position, source in enumerate(self.sources):
            # a source that failed earlier in the chain (hybrid may hold vectors twice) is not asked again
            pending = [i for i, recs in enumerate(results) if len(recs) < k and source.name not in missing]
            # later sources may repeat earlier picks: ask for enough to still fill k
            want = min((k if position == 0 else 2 * k) + extra, self.MAX_FETCH)
            while pending:
                try:
                    batch = source.candidates([ids[i] for i in pending], want)
                except Exception:
                    if not (degrade and source.name in self.optional):
                        raise
                    log.warning("strategy %s: source %s failed, answering without it", self.name, source.name,
                                exc_info=True)
                    missing.append(source.name)
                    break
                for i, candidates in zip(pending, batch):
                    _take(results[i], seen[i], candidates, k, keep, source.name)
                if keep is None or want >= self.MAX_FETCH:
                    break
                # filtered out too many: ask again for more, where the source had more to give
                pending = [i for i, c in zip(pending, batch) if len(results[i]) < k and len(c) >= want]
                want = min(4 * want, self.MAX_FETCH)
        return ChainResult(results, missing)

    def _predicate(self, rules: Filter | None) -> Callable[[int], bool] | None:
        if rules is None:
            return None
        if self.facts is None:
            raise ValueError(f"strategy {self.name!r} has no catalogue facts to filter with")
        return self.facts.predicate(rules)


def _take(
    recs: list[Recommendation], taken: set[int], candidates: Sequence[tuple[int, float]], k: int,
    keep: Callable[[int], bool] | None, source: str,
) -> None:
    for movie_id, score in candidates:
        if len(recs) >= k:
            return
        if movie_id not in taken and (keep is None or keep(movie_id)):
            taken.add(movie_id)
            recs.append(Recommendation(movie_id, float(score), source))


def build_strategies(
    *,
    movie_ids: Sequence[int],
    series: SeriesSource,
    popularity: dict[int, int],
    vectors: VectorIndex | None,
    collaborative: ItemSimilarity | None,
    seed: int = 42,
    hybrid_vector_limit: int | None = None,
    facts: ItemFacts | None = None,
    wrap: Callable[[Source], Source] | None = None,
) -> dict[str, ChainStrategy]:
    """The seven strategies; those that need a missing part (vectors or ALS) are left out.

    `hybrid_vector_limit` caps how many vector neighbours hybrid takes before the collaborative ones
    (None: no cap; see :func:`_hybrid_chain`). Hybrid answers without vectors or ALS when they are missing
    or fail (degraded); `facts` lets every strategy take a :class:`Filter`; `wrap` decorates the sources
    that reach a store (vector, collaborative), e.g. with time limits.
    """
    rand = RandomSource(movie_ids, seed)
    popular = PopularSource(popularity)
    chains: dict[str, list[Source]] = {
        "random": [rand],
        "popular": [popular],
        "series": [series, rand],
    }
    wrap = wrap or (lambda source: source)
    vector = wrap(VectorSource(vectors)) if vectors is not None else None
    collab = wrap(CollaborativeSource(collaborative)) if collaborative is not None else None
    if vector:
        chains["vector"] = [vector, rand]
        chains["series+vector"] = [series, vector, rand]
    if collab:
        chains["collaborative"] = [collab, rand]
    chains["hybrid"] = _hybrid_chain(series, vector, collab, popular, hybrid_vector_limit)
    degradable = {"hybrid": [VectorSource.name, CollaborativeSource.name]}
    absent = [name for name, part in ((VectorSource.name, vector), (CollaborativeSource.name, collab)) if part is None]
    return {
        name: ChainStrategy(
            name, chains[name], facts=facts, optional=degradable.get(name, ()),
            absent=absent if name in degradable else (),
        )
        for name in STRATEGY_NAMES if name in chains
    }


def _hybrid_chain(
    series: Source, vector: Source | None, collab: Source | None, popular: Source, vector_limit: int | None
) -> list[Source]:
    """Series, then vector neighbours (at most `vector_limit` when set), then collaborative ones; with a
    limit the remaining vector neighbours come after collaborative (movies ALS doesn't know), then popular."""
    chain: list[Source] = [series]
    if vector and vector_limit is None:
        chain.append(vector)
    elif vector and vector_limit > 0:
        chain.append(LimitedSource(vector, vector_limit))
    if collab:
        chain.append(collab)
    if vector and vector_limit is not None:
        chain.append(vector)
    return chain + [popular]
