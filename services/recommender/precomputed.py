"""One request shape's answers for every movie: computed by the build with the strategy that serves them,
memory-mapped by the server.

Item-to-item answers depend only on the query movie, so the API's most common request (hybrid, its
default k and filter) is answered for every catalogue movie by the build (`nextwatch build`, neighbours
step), the way production recommenders precompute item-to-item lists. The answers are the strategy's own
(computed by its batch path), kept as arrays (``services.stores.answers``), and given back for exactly
that (k, filter); any other request, and a movie whose answer was degraded when it was computed, goes to
the strategy as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from services.recommender.base import BatchResult, Recommendation
from services.recommender.filters import Filter
from services.stores.answers import AnswerArrays

PAD = -1


def compute_answers(
    run: Callable[[Sequence[int]], BatchResult],
    movie_ids: Sequence[int],
    k: int,
    *,
    expected_missing: Sequence[str] = (),
    batch: int = 1000,
) -> AnswerArrays:
    """`run(ids)` (the strategy's served answer to one request shape) for every movie, a batch at a time; a
    batch that reports parts missing beyond `expected_missing` (the parts that are not there at all) keeps
    no answers, so those movies are answered live."""
    queries_all = sorted({int(m) for m in movie_ids})
    ids = np.full((len(queries_all), k), PAD, dtype=np.int32)
    scores = np.zeros((len(queries_all), k), dtype=np.float64)
    sources = np.zeros((len(queries_all), k), dtype=np.int8)
    kept = np.zeros(len(queries_all), dtype=bool)
    names: dict[str, int] = {}
    expected = sorted(expected_missing)
    for start in range(0, len(queries_all), batch):
        queries = queries_all[start : start + batch]
        result = run(queries)
        if sorted(result.missing) != expected:
            continue
        for row, recs in enumerate(result.items, start):
            for col, rec in enumerate(recs[:k]):
                ids[row, col], scores[row, col] = rec.movie_id, rec.score
                sources[row, col] = names.setdefault(rec.source, len(names))
            kept[row] = True
    movies = np.asarray(queries_all, dtype=np.int64)
    return AnswerArrays(movies[kept], ids[kept], scores[kept], sources[kept], list(names), expected)


class PrecomputedAnswers:
    """Answers to (k, `rules`) per movie from `arrays` (possibly memory-mapped)."""

    def __init__(self, arrays: AnswerArrays, rules: Filter) -> None:
        self.k = arrays.k
        self.rules = rules
        self._arrays = arrays

    def __len__(self) -> int:
        return int(len(self._arrays.movies))

    def answer(self, movie_ids: Sequence[int], k: int, rules: Filter | None) -> BatchResult | None:
        """The answers when the request is the precomputed one and every movie has an answer, else None."""
        held = self._arrays
        if k != self.k or rules != self.rules or not movie_ids or not len(held.movies):
            return None
        wanted = np.asarray([int(m) for m in movie_ids], dtype=np.int64)
        rows = np.minimum(np.searchsorted(held.movies, wanted), len(held.movies) - 1)
        if not bool(np.all(held.movies[rows] == wanted)):
            return None
        items = []
        for row in rows.tolist():
            ids, scores, sources = held.ids[row].tolist(), held.scores[row].tolist(), held.sources[row].tolist()
            items.append([Recommendation(m, s, held.names[c]) for m, s, c in zip(ids, scores, sources) if m != PAD])
        return BatchResult(items, list(held.missing))
