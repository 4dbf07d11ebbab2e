"""Strategies as ordered chains of candidate sources (the seed's series, vector and series+vector among them)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from services.recommender.base import ChainResult, Recommendation, Served, Source
from services.recommender.filters import Filter, ItemFacts

log = logging.getLogger(__name__)


class BatchStrategy:
    """What every strategy shares: one movie or a batch through `_run`, and filters over catalogue facts."""

    name: str
    facts: ItemFacts | None
    optional: frozenset[str]  # sources that may fail while serving: the answer is given without them

    def similar(self, movie_id: int, k: int, *, filter: Filter | None = None) -> list[Recommendation]:
        return self.similar_batch([movie_id], k, filter=filter)[0]

    def similar_batch(
        self, movie_ids: Sequence[int], k: int, *, filter: Filter | None = None
    ) -> list[list[Recommendation]]:
        """Up to k recommendations per movie; any source failure propagates."""
        return self._run(movie_ids, k, filter, degrade=False).items

    def _run(self, movie_ids: Sequence[int], k: int, rules: Filter | None, *, degrade: bool) -> Served:
        raise NotImplementedError

    def _candidates_or_skip(
        self, source: Source, movie_ids: Sequence[int], want: int, degrade: bool, missing: list[str]
    ) -> list[list[tuple[int, float]]] | None:
        """The source's candidates; None when it failed and may be skipped (serving, an optional
        source), after noting it in `missing`; any other failure propagates."""
        try:
            return source.candidates(movie_ids, want)
        except Exception:
            if not (degrade and source.name in self.optional):
                raise
            log.warning("strategy %s: source %s failed, answering without it", self.name, source.name, exc_info=True)
            missing.append(source.name)
            return None

    def _predicate(self, rules: Filter | None) -> Callable[[int], bool] | None:
        if rules is None:
            return None
        if self.facts is None:
            raise ValueError(f"strategy {self.name!r} has no catalogue facts to filter with")
        return self.facts.predicate(rules)


class ChainStrategy(BatchStrategy):
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
                batch = self._candidates_or_skip(source, [ids[i] for i in pending], want, degrade, missing)
                if batch is None:
                    break
                for i, candidates in zip(pending, batch):
                    _take(results[i], seen[i], candidates, k, keep, source.name)
                if keep is None or want >= self.MAX_FETCH:
                    break
                # filtered out too many: ask again for more, where the source had more to give
                pending = [i for i, c in zip(pending, batch) if len(results[i]) < k and len(c) >= want]
                want = min(4 * want, self.MAX_FETCH)
        return ChainResult(results, missing)


def _take(
    recs: list[Recommendation],
    taken: set[int],
    candidates: Sequence[tuple[int, float]],
    k: int,
    keep: Callable[[int], bool] | None,
    source: str,
) -> None:
    for movie_id, score in candidates:
        if len(recs) >= k:
            return
        if movie_id not in taken and (keep is None or keep(movie_id)):
            taken.add(movie_id)
            recs.append(Recommendation(movie_id, float(score), source))
