"""Weighted reciprocal-rank fusion of candidate sources: a hybrid that ranks by every source at once.

Each source's top `depth` candidates per query (after the query itself and filtered movies are dropped)
get ``weight / (rank_constant + rank)`` (rank from 1); a movie's fused score is the sum over sources.
Movies are ordered by fused score (ties by movieId), then fallback sources fill the list to k.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from itertools import islice
from typing import Any

import numpy as np

from services.recommender.base import BatchResult, Candidates, Recommendation, Source, StartableSource
from services.recommender.filters import Filter, ItemFacts
from services.recommender.precomputed import PAD, FusedBlock, PrecomputedAnswers, compute_answers, fuse_block
from services.recommender.strategies import BatchStrategy, most_to_ask, take_new
from services.stores.answers import AnswerArrays


def fuse(
    lists: Mapping[str, Candidates],
    weights: Mapping[str, float],
    query: int | None,
    *,
    depth: int,
    rank_constant: float,
    keep: Callable[[int], bool] | None = None,
    limit: int | None = None,
    seen: AbstractSet[int] = frozenset(),
) -> list[tuple[int, float, dict[str, float]]]:
    """Fused (movie, score, contributions) best first (ties by movieId), the best `limit` of them when
    given; never the query, the `seen` movies or filtered movies."""
    shares: dict[str, dict[int, float]] = {}  # per source: movie -> its share of the fused score
    totals: dict[int, float] = {}
    for source, candidates in lists.items():
        weight, rank, mine = weights[source], 0, shares.setdefault(source, {})
        for movie_id, _ in candidates:
            if rank >= depth:
                break
            if movie_id == query or movie_id in seen or (keep is not None and not keep(movie_id)):
                continue
            rank += 1
            if movie_id not in mine:  # a source repeating a movie counts once, at its best rank
                share = mine[movie_id] = weight / (rank_constant + rank)
                totals[movie_id] = totals[movie_id] + share if movie_id in totals else share
    ranked = [(-total, movie_id) for movie_id, total in totals.items()]  # best first, ties by movieId
    best = sorted(ranked) if limit is None else heapq.nsmallest(limit, ranked)
    return [(m, -negative, {s: mine[m] for s, mine in shares.items() if m in mine}) for negative, m in best]


class FusionStrategy(BatchStrategy):
    """A hybrid over named sources, fused by weighted reciprocal rank, filled from fallback sources.

    The same surface as :class:`~services.recommender.strategies.ChainStrategy`: `similar`,
    `similar_batch` (failures propagate), `recommend_batch` (``optional`` sources that raise are skipped
    and reported in `missing`, with ``absent`` ones), :class:`Filter` support through `facts`. A source
    whose weight is 0 (or missing from `weights`) is not asked. ``Recommendation.source`` is the source
    that contributed most (ties: the earlier source); ``recommend_batch(..., explain=True)`` also gives
    every item's contributions (none for the movies a fallback source filled in). After `precompute`, one
    request shape is answered from memory.
    """

    def __init__(
        self,
        name: str,
        sources: Sequence[Source],
        weights: Mapping[str, float],
        *,
        fallback: Sequence[Source] = (),
        depth: int = 50,
        rank_constant: float = 10.0,
        facts: ItemFacts | None = None,
        optional: Sequence[str] = (),
        absent: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.sources = [s for s in sources if weights.get(s.name, 0.0) > 0]
        if not self.sources and not fallback:
            raise ValueError(f"strategy {name!r} needs a source with a positive weight or a fallback")
        self.weights = {s.name: float(weights[s.name]) for s in self.sources}
        self.fallback = list(fallback)
        self.depth = depth
        self.rank_constant = rank_constant
        self.facts = facts
        self.optional = frozenset(optional)
        self.absent = list(absent)
        self.precomputed: PrecomputedAnswers | None = None  # see `precompute`
        self._startable = [s for s in self.sources if isinstance(s, StartableSource)]  # see `_start`

    def recommend_batch(
        self, queries: Sequence[Any], k: int, *, filter: Filter | None = None, explain: bool = False
    ) -> BatchResult:
        """As :meth:`BatchStrategy.recommend_batch`, from the precomputed answers when they hold this request."""
        if not explain and self.precomputed is not None:
            answered = self.precomputed.answer(queries, k, filter)
            if answered is not None:
                return answered
        return super().recommend_batch(queries, k, filter=filter, explain=explain)

    def default_answers(self, movie_ids: Sequence[int], k: int, rules: Filter) -> AnswerArrays:
        """What `recommend_batch` answers to (k, rules) for each of these movies, computed now a block at a time
        (degraded answers are not kept): the sources asked as a request asks them, their lists fused with array
        operations (`fuse_block`: the same scores and order as `fuse`), the short lists filled as a request
        fills them. The build's artifact."""
        allowed = self.facts.allows(rules) if self.facts is not None else None

        def served(ids: Sequence[int]) -> FusedBlock:
            keep, extra, seen, lists, missing = self._collect(ids, k, rules, degrade=True)
            block = fuse_block(
                lists, self.weights, ids, depth=self.depth, rank_constant=self.rank_constant, allowed=allowed, k=k
            )
            short = np.flatnonzero(block.ids[:, k - 1] == PAD).tolist() if k > 0 else []
            items = [block.row(i) for i in short]
            self._fill(ids, seen, items, short, k, keep, extra, degrade=True, missing=missing)
            names = {name: j for j, name in enumerate(block.names)}
            for i, recs in zip(short, items):
                for col, rec in enumerate(recs):
                    block.ids[i, col], block.scores[i, col] = rec.movie_id, rec.score
                    block.sources[i, col] = names.setdefault(rec.source, len(names))
            return FusedBlock(block.ids, block.scores, block.sources, list(names), missing)

        return compute_answers(served, movie_ids, k, expected_missing=self.absent)

    def precompute(self, movie_ids: Sequence[int], k: int, rules: Filter) -> int:
        """Serve (k, rules) for these movies from answers computed now; returns how many were kept."""
        self.precomputed = PrecomputedAnswers(self.default_answers(movie_ids, k, rules), rules)
        return len(self.precomputed)

    def _run(self, queries: Sequence[Any], k: int, rules: Filter | None, *, degrade: bool) -> BatchResult:
        keep, extra, seen, lists, missing = self._collect(queries, k, rules, degrade=degrade)
        items: list[list[Recommendation]] = []
        explained: list[list[dict[str, float]]] = []
        for exclude, per_query in zip(seen, lists):
            fused = fuse(
                per_query,
                self.weights,
                None,
                depth=self.depth,
                rank_constant=self.rank_constant,
                keep=keep,
                limit=k,
                seen=exclude,
            )
            items.append([Recommendation(m, score, max(parts, key=parts.__getitem__)) for m, score, parts in fused])
            explained.append([parts for _, _, parts in fused])
        rows = list(range(len(items)))
        self._fill(list(queries), seen, items, rows, k, keep, extra, degrade=degrade, missing=missing)
        for parts, recs in zip(explained, items):
            parts.extend({} for _ in range(len(recs) - len(parts)))
        return BatchResult(items, missing, explained)

    def _collect(
        self, queries: Sequence[Any], k: int, rules: Filter | None, *, degrade: bool
    ) -> tuple[Callable[[int], bool] | None, int, list[set[int]], list[dict[str, Candidates]], list[str]]:
        """What fusing asks of the sources: the filter's test, how many more to ask for (the excluded ids), per
        query its seen movies and every source's candidates (in source order), and the missing parts."""
        keep = self._predicate(rules)
        extra = len(rules.exclude) if rules is not None else 0
        ids = list(queries)
        seen = self._seen(ids)
        missing = list(self.absent)
        lists: list[dict[str, Candidates]] = [{} for _ in ids]
        started = self._start(ids, self.depth + extra)
        for source in self.sources:
            # a source is asked again only when the filter left fewer than k of its candidates: the fused
            # ranks are among those kept, and k of them fill the list
            asked = started.get(source.name, source)
            answers = self._ask_all(asked, ids, seen, self.depth + extra, keep, min(k, self.depth), degrade, missing)
            if answers is not None:
                for per_query, candidates in zip(lists, answers):
                    per_query[source.name] = candidates
        return keep, extra, seen, lists, missing

    def _fill(
        self,
        ids: Sequence[Any],
        seen: list[set[int]],
        items: list[list[Recommendation]],
        rows: list[int],
        k: int,
        keep: Callable[[int], bool] | None,
        extra: int,
        *,
        degrade: bool,
        missing: list[str],
    ) -> None:
        """Fill each list of `items` (the answers of queries ``ids[rows[i]]``) shorter than k from the fallback
        sources, in order."""
        for source in self.fallback:
            short = [i for i, recs in enumerate(items) if len(recs) < k]
            if not short:
                break
            at = [rows[i] for i in short]
            answers = self._ask_all(
                source, [ids[j] for j in at], [seen[j] for j in at], 2 * k + extra, keep, k, degrade, missing
            )
            for i, j, candidates in zip(short, at, answers or []):
                take_new(items[i], {*seen[j], *(r.movie_id for r in items[i])}, candidates, k, keep, source.name)

    def _start(self, ids: list[Any], want: int) -> dict[str, Source]:
        """The sources that reach a store, their first call (what `_ask_all` asks first) started now, so that
        the stores work while the other sources answer."""
        if not ids:
            return {}
        catalogue = len(self.facts) if self.facts is not None else 0
        return {s.name: _Started(s, ids, min(want, most_to_ask(s, catalogue))) for s in self._startable}

    def _ask_all(
        self,
        source: Source,
        ids: list[Any],
        seen: list[set[int]],
        want: int,
        keep: Callable[[int], bool] | None,
        enough: int,
        degrade: bool,
        missing: list[str],
    ) -> list[Candidates] | None:
        """The source's candidates per query, asked again where the filter left fewer than `enough`; None
        when an optional source failed while serving (noted in `missing`)."""
        answers: list[Candidates] = [[] for _ in ids]

        def take(i: int, candidates: Candidates) -> None:
            answers[i] = candidates

        def short(i: int, candidates: Candidates) -> bool:
            kept = (m for m, _ in candidates if m not in seen[i] and (keep is None or keep(m)))
            return sum(1 for _ in islice(kept, enough)) < enough  # counts no further than `enough`

        asked = self._ask(
            source,
            ids,
            list(range(len(ids))),
            want,
            take=take,
            short=None if keep is None else short,
            degrade=degrade,
            missing=missing,
        )
        return answers if asked else None


class _Started:
    """A source whose call (`queries`, `k`) was started ahead: that call waits for it, any other goes to the
    source."""

    def __init__(self, source: StartableSource, queries: list[Any], k: int) -> None:
        self.name = source.name
        self._source = source
        self._call = (queries, k)
        self._result: Callable[[], list[list[tuple[int, float]]]] | None = source.start(queries, k)

    def candidates(self, queries: Sequence[Any], k: int) -> list[list[tuple[int, float]]]:
        result, self._result = self._result, None
        if result is not None and (list(queries), k) == self._call:
            return result()
        return self._source.candidates(queries, k)


def fused_hybrid(
    sources: Mapping[str, Source | None],
    weights: Mapping[str, float],
    *,
    fallback: Sequence[Source],
    depth: int,
    rank_constant: float,
    facts: ItemFacts | None = None,
    optional: Sequence[str] = (),
    name: str = "hybrid",
) -> FusionStrategy:
    """The fused hybrid over the sources that exist; weighted ones that are None (not built, not
    configured) are reported in `missing` as absent, like ChainStrategy's hybrid."""
    present = [s for s in sources.values() if s is not None]
    absent = [n for n, s in sources.items() if s is None and weights.get(n, 0.0) > 0]
    return FusionStrategy(
        name,
        present,
        weights,
        fallback=fallback,
        depth=depth,
        rank_constant=rank_constant,
        facts=facts,
        optional=optional,
        absent=absent,
    )
