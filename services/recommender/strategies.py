"""Strategies as ordered chains of candidate sources (the seed's series, vector and series+vector among them)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from services.recommender.base import BatchResult, Candidates, History, Recommendation, Source
from services.recommender.filters import Filter, ItemFacts

log = logging.getLogger(__name__)

MAX_FETCH = 2000  # the most candidates a source is asked for per query when a filter leaves too few


def most_to_ask(source: Source, catalogue: int) -> int:
    """How many candidates `source` may be asked for per query: MAX_FETCH, or the whole catalogue for a source
    that walks it cheaply (`walks_catalogue`: popular, random), so a filter that few movies pass still fills k."""
    return max(MAX_FETCH, catalogue) if getattr(source, "walks_catalogue", False) else MAX_FETCH


class BatchStrategy:
    """What every strategy shares: one query or a batch through `_run`, served answers (degraded, explained),
    filters over catalogue facts, and asking a source again for more while a filter leaves too few.

    A query is a movie id (the one-movie strategies) or a :class:`History` (the history strategies, built
    from history sources); an answer never holds the query movie, nor a history's seen movies."""

    name: str
    facts: ItemFacts | None
    optional: frozenset[str]  # sources that may fail while serving: the answer is given without them

    def similar(self, movie_id: int, k: int, *, filter: Filter | None = None) -> list[Recommendation]:
        return self.similar_batch([movie_id], k, filter=filter)[0]

    def similar_batch(
        self, queries: Sequence[Any], k: int, *, filter: Filter | None = None
    ) -> list[list[Recommendation]]:
        """Up to k recommendations per query; any source failure propagates."""
        return self._run(queries, k, filter, degrade=False).items

    def recommend_batch(
        self, queries: Sequence[Any], k: int, *, filter: Filter | None = None, explain: bool = False
    ) -> BatchResult:
        """Serving: an optional source that raises is skipped and reported in `missing`; with `explain`,
        `contributions` give each item's score per source."""
        result = self._run(queries, k, filter, degrade=True)
        return result if explain else BatchResult(result.items, result.missing)

    def _run(self, queries: Sequence[Any], k: int, rules: Filter | None, *, degrade: bool) -> BatchResult:
        """Every query's list with its contributions, and the sources missing."""
        raise NotImplementedError

    @staticmethod
    def _seen(queries: Sequence[Any]) -> list[set[int]]:
        """Per query, the movies its answer may not hold: the query movie, or a history's seen movies."""
        return [set(q.seen) if isinstance(q, History) else {int(q)} for q in queries]

    def _ask(
        self,
        source: Source,
        ids: Sequence[Any],
        pending: list[int],
        want: int,
        *,
        take: Callable[[int, Candidates], None],
        short: Callable[[int, Candidates], bool] | None,
        degrade: bool,
        missing: list[str],
    ) -> bool:
        """Hands `take(i, candidates)` the source's `want` candidates for each query ``ids[i]`` of `pending`.

        With a filter (`short` given), a query that `short(i, candidates)` finds short of kept candidates is
        asked again for 4x as many (up to :func:`most_to_ask`), where the source had `want` to give. False when
        an optional source failed while serving (noted in `missing`); any other failure propagates.
        """
        limit = most_to_ask(source, len(self.facts) if self.facts is not None else 0)
        want = min(want, limit)
        while pending:
            batch = self._candidates_or_skip(source, [ids[i] for i in pending], want, degrade, missing)
            if batch is None:
                return False
            for i, candidates in zip(pending, batch):
                take(i, candidates)
            if short is None or want >= limit:
                break
            pending = [i for i, c in zip(pending, batch) if len(c) >= want and short(i, c)]
            want = min(4 * want, limit)
        return True

    def _candidates_or_skip(
        self, source: Source, queries: Sequence[Any], want: int, degrade: bool, missing: list[str]
    ) -> list[list[tuple[int, float]]] | None:
        """The source's candidates; None when it failed and may be skipped (serving, an optional
        source), after noting it in `missing`; any other failure propagates."""
        try:
            return source.candidates(queries, want)
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
    chain was built without. Both show in :attr:`BatchResult.missing`. An item's contribution is its own
    source's score.
    """

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

    def _run(self, queries: Sequence[Any], k: int, rules: Filter | None, *, degrade: bool) -> BatchResult:
        keep = self._predicate(rules)
        extra = len(rules.exclude) if rules is not None else 0
        ids = list(queries)
        results: list[list[Recommendation]] = [[] for _ in ids]
        seen = self._seen(ids)
        missing = list(self.absent)
        for position, source in enumerate(self.sources):
            # a source that failed earlier in the chain (hybrid may hold vectors twice) is not asked again
            pending = [i for i, recs in enumerate(results) if len(recs) < k and source.name not in missing]

            def take(i: int, candidates: Candidates, name: str = source.name) -> None:
                take_new(results[i], seen[i], candidates, k, keep, name)

            # later sources may repeat earlier picks: ask for enough to still fill k
            want = (k if position == 0 else 2 * k) + extra
            short = None if keep is None else lambda i, _: len(results[i]) < k
            self._ask(source, ids, pending, want, take=take, short=short, degrade=degrade, missing=missing)
        return BatchResult(results, missing, [[{r.source: r.score} for r in recs] for recs in results])


def take_new(
    recs: list[Recommendation],
    taken: set[int],
    candidates: Candidates,
    k: int,
    keep: Callable[[int], bool] | None,
    source: str,
) -> None:
    """Append `source`'s candidates to `recs` in order, up to k, skipping the `taken` ones and those `keep`
    rejects (each taken is added to `taken`)."""
    for movie_id, score in candidates:
        if len(recs) >= k:
            return
        if movie_id not in taken and (keep is None or keep(movie_id)):
            taken.add(movie_id)
            recs.append(Recommendation(movie_id, float(score), source))
