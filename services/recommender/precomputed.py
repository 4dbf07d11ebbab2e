"""One request shape's answers for every movie, computed up front by the strategy that serves them.

Item-to-item answers depend only on the query movie, so the API's most common request (hybrid, its
default k and filter) can be answered for every catalogue movie when a build is opened, the way
production recommenders precompute item-to-item lists. The answers are the strategy's own (computed by
its `recommend_batch`), kept as arrays, and given back for exactly that (k, filter); any other request,
and a movie whose answer was degraded when it was computed, goes to the strategy as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from services.recommender.base import BatchResult, Recommendation
from services.recommender.filters import Filter

PAD = -1


class PrecomputedAnswers:
    """Answers to (`k`, `rules`) per movie: ids, scores and source of each item, padded with PAD."""

    def __init__(
        self,
        k: int,
        rules: Filter,
        rows: dict[int, int],
        ids: np.ndarray,
        scores: np.ndarray,
        sources: np.ndarray,
        names: Sequence[str],
        missing: Sequence[str],
    ) -> None:
        self.k = k
        self.rules = rules
        self._rows = rows
        self._ids = ids
        self._scores = scores
        self._sources = sources
        self._names = list(names)
        self._missing = list(missing)

    def __len__(self) -> int:
        return len(self._rows)

    @classmethod
    def compute(
        cls,
        run: Callable[[Sequence[int]], BatchResult],
        movie_ids: Sequence[int],
        k: int,
        rules: Filter,
        *,
        expected_missing: Sequence[str] = (),
        batch: int = 1000,
    ) -> PrecomputedAnswers:
        """`run(ids)` (the strategy's served answer to (k, rules)) for every movie, a batch at a time; a
        batch that reports parts missing beyond `expected_missing` (the parts that are not there at all)
        keeps no answers, so those movies are answered live."""
        ids = np.full((len(movie_ids), k), PAD, dtype=np.int64)
        scores = np.zeros((len(movie_ids), k), dtype=np.float64)
        sources = np.zeros((len(movie_ids), k), dtype=np.int8)
        names: dict[str, int] = {}
        rows: dict[int, int] = {}
        expected = sorted(expected_missing)
        for start in range(0, len(movie_ids), batch):
            queries = [int(m) for m in movie_ids[start : start + batch]]
            result = run(queries)
            if sorted(result.missing) != expected:
                continue
            for row, (query, recs) in enumerate(zip(queries, result.items), start):
                for col, rec in enumerate(recs[:k]):
                    ids[row, col], scores[row, col] = rec.movie_id, rec.score
                    sources[row, col] = names.setdefault(rec.source, len(names))
                rows[query] = row
        return cls(k, rules, rows, ids, scores, sources, list(names), expected)

    def answer(self, movie_ids: Sequence[int], k: int, rules: Filter | None) -> BatchResult | None:
        """The answers when the request is the precomputed one and every movie has an answer, else None."""
        if k != self.k or rules != self.rules:
            return None
        found = [self._rows.get(int(m)) for m in movie_ids]
        rows = [row for row in found if row is not None]
        if not rows or len(rows) < len(found):
            return None
        items = []
        for row in rows:
            ids, scores, sources = self._ids[row].tolist(), self._scores[row].tolist(), self._sources[row].tolist()
            items.append([Recommendation(m, s, self._names[c]) for m, s, c in zip(ids, scores, sources) if m != PAD])
        return BatchResult(items, list(self._missing))
