"""Sources that read a viewer's history (a :class:`History`, oldest first) instead of one movie.

Each returns up to k (movie_id, score) per history, best first (ties by movieId), never one of the history's
seen movies. They read the last movies with a recency decay: the j-th most recent (j from 0) weighs
``decay ** j``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, get_args

import numpy as np

from services.recommender.base import History, Source
from services.recommender.sources import SeriesSource, VectorIndex
from services.settings import SequentialScoring
from services.stores.sequential import SequentialModel


def _ranked(scores: dict[int, float], seen: frozenset[int], k: int) -> list[tuple[int, float]]:
    """The k best (movie, score), ties by movieId, without `seen`."""
    kept = [(m, s) for m, s in scores.items() if m not in seen and s > 0]
    kept.sort(key=lambda ms: (-ms[1], ms[0]))
    return kept[:k]


def _unseen(found: Sequence[tuple[int, float]], seen: frozenset[int], k: int) -> list[tuple[int, float]]:
    """The first k of `found` that are not `seen`."""
    return [(m, s) for m, s in found if m not in seen][:k]


SEQUENTIAL_SCORINGS: tuple[str, ...] = get_args(SequentialScoring)


class SequentialHistorySource:
    """Co-visitation over the last `last` movies: score(c) = sum_j decay**j * s(h_j, c), where s is, by `scoring`:
    the model's scores (`scores`: both directions, weighted by distance), those divided by h_j's best one
    (`scaled`: a recent movie with many viewers does not drown the others), or the forward viewer counts (how
    many viewers watched c within the window after h_j) divided by h_j's best one (`forward`)."""

    name = "sequential"

    def __init__(self, model: SequentialModel, last: int, decay: float, *, scoring: str = "scores") -> None:
        if scoring not in SEQUENTIAL_SCORINGS:
            raise ValueError(f"scoring must be one of {SEQUENTIAL_SCORINGS}, got {scoring!r}")
        self._model = model
        self._last = last
        self._decay = decay
        self._values = model.viewer_counts if scoring == "forward" else model.scores
        self._scaled = scoring != "scores"

    def candidates(self, queries: Sequence[History], k: int) -> list[list[tuple[int, float]]]:
        return [self.scores(history, k) for history in queries]

    def scores(self, history: History, k: int) -> list[tuple[int, float]]:
        """The history's best k co-visitation scores (over every neighbour the model keeps of its last movies)."""
        model, values = self._model, self._values
        recent = history.recent(self._last)
        if not recent or k <= 0:
            return []
        at = model.positions(recent)  # -1: unknown (its row bounds are read, then dropped)
        starts, stops = model.indptr[at].tolist(), model.indptr[at + 1].tolist()
        spans = [
            (self._decay**j, a, b) for j, (i, a, b) in enumerate(zip(at.tolist(), starts, stops)) if i >= 0 and b > a
        ]
        if self._scaled:  # each row over its best value (none: the row adds nothing)
            bests = [float(values[start:stop].max()) for _, start, stop in spans]
            spans = [(w / best, start, stop) for (w, start, stop), best in zip(spans, bests) if best > 0]
        if not spans:
            return []
        # every kept value of these rows, weighted by its movie's decay, summed per candidate column in row order
        columns = np.concatenate([model.indices[start:stop] for _, start, stop in spans])
        raw = np.concatenate([values[start:stop] for _, start, stop in spans])
        weights = np.repeat([w for w, _, _ in spans], [stop - start for _, start, stop in spans])
        totals = np.bincount(columns, weights=weights * raw.astype(np.float64), minlength=len(model.item_ids))
        seen = model.positions(list(history.seen))
        totals[seen[seen >= 0]] = 0.0
        keep = np.flatnonzero(totals > 0)
        if len(keep) > k:  # only those at least as good as the k-th best can be among the best k
            keep = keep[totals[keep] >= -np.partition(-totals[keep], k - 1)[k - 1]]
        movies = model.item_ids[keep]
        order = np.lexsort((movies, -totals[keep]))[:k]
        return list(zip(movies[order].tolist(), totals[keep[order]].tolist()))


class UserModel(Protocol):
    """The part of the ALS model that folds a viewer in from their movies."""

    def recommend_for_many(self, users: Sequence[dict[int, float]], k: int) -> list[list[tuple[int, float]]]: ...


class CollaborativeHistorySource:
    """ALS with the viewer folded in from the history (each movie as a liked one, `rating`)."""

    name = "collaborative"

    def __init__(self, model: UserModel, rating: float = 4.0) -> None:
        self._model = model
        self._rating = rating

    def candidates(self, queries: Sequence[History], k: int) -> list[list[tuple[int, float]]]:
        found = self._model.recommend_for_many([dict.fromkeys(h.movies, self._rating) for h in queries], k)
        return [_unseen(hits, h.seen, k) for h, hits in zip(queries, found)]


class SeriesHistorySource:
    """The next unseen parts of the series of the last `last` movies: for the j-th most recent movie, the
    parts released after it (in release order), then its series' other parts, all weighted decay**j."""

    name = "series"

    def __init__(self, series: SeriesSource, last: int, decay: float) -> None:
        self._series = series
        self._last = last
        self._decay = decay

    def candidates(self, queries: Sequence[History], k: int) -> list[list[tuple[int, float]]]:
        return [self._one(history, k) for history in queries]

    def _one(self, history: History, k: int) -> list[tuple[int, float]]:
        totals: dict[int, float] = {}
        for j, movie_id in enumerate(history.recent(self._last)):
            parts = self._series.in_release_order(movie_id)
            if not parts:
                continue
            at = parts.index(movie_id)
            ordered = parts[at + 1 :] + parts[:at][::-1]  # the next parts, then the earlier ones backwards
            for rank, candidate in enumerate(ordered):
                share = self._decay**j / (1 + rank)
                totals[candidate] = max(totals.get(candidate, 0.0), share)
        return _ranked(totals, history.seen, k)


class VectorHistorySource:
    """Nearest overview embeddings to the recency-weighted centroid of the last `last` movies' vectors."""

    name = "vector"
    KEPT = 4096  # the most movies whose stored vector (and its norm) is kept in memory once read

    def __init__(self, index: VectorIndex, last: int, decay: float) -> None:
        self._index = index
        self._last = last
        self._decay = decay
        self._kept: dict[int, tuple[np.ndarray, float]] = {}

    def candidates(self, queries: Sequence[History], k: int) -> list[list[tuple[int, float]]]:
        recents = [history.recent(self._last) for history in queries]
        stored = self._stored({m for recent in recents for m in recent})
        out: list[list[tuple[int, float]]] = [[] for _ in queries]
        rows, centroids = [], []
        for i, recent in enumerate(recents):
            known = [(j, stored[m]) for j, m in enumerate(recent) if m in stored]
            if not known:
                continue
            centroid = sum(self._decay**j * vector / norm for j, (vector, norm) in known)
            rows.append(i)
            centroids.append(np.asarray(centroid, dtype=np.float32))
        if not rows:
            return out
        excluded = [sorted(queries[i].seen) for i in rows]
        found = self._index.search_batch(np.stack(centroids), k, exclude=excluded)
        for i, hits in zip(rows, found):
            out[i] = _unseen(hits, queries[i].seen, k)
        return out

    def _stored(self, movie_ids: set[int]) -> dict[int, tuple[np.ndarray, float]]:
        """The stored vector and its norm (at least 1e-10) of each of these movies the index holds; the store
        is asked only for those not kept yet (the first KEPT movies read are kept)."""
        kept = self._kept
        found = {m: kept[m] for m in movie_ids if m in kept}
        if len(found) < len(movie_ids):
            read = self._index.vectors(sorted(movie_ids - found.keys()))
            fresh = {m: (v, max(float(np.linalg.norm(v)), 1e-10)) for m, v in read.items()}
            found.update(fresh)
            if len(kept) < self.KEPT:
                kept.update(fresh)
        return found


class IgnoringHistory:
    """A one-movie source that does not depend on its query (popular, recent-popular, random), asked with the
    history's last movie (random draws per viewer, not one list for all) and without the history's seen movies.

    The source's longer lists begin with its shorter ones (a ranking, or a walk), so a history's answer, the
    first k unseen of the list of k + len(seen), is read from the shortest list that holds it: all histories
    are asked together for k x 2, 4, ... movies, each until it has k unseen ones."""

    NO_MOVIE = 0  # an empty history's query (MovieLens ids start at 1)

    def __init__(self, source: Source) -> None:
        self.name = source.name
        self.walks_catalogue: bool = getattr(source, "walks_catalogue", False)
        self._source = source

    def candidates(self, queries: Sequence[History], k: int) -> list[list[tuple[int, float]]]:
        out: list[list[tuple[int, float]]] = [[] for _ in queries]
        seens = [h.seen for h in queries]
        lasts = [h.movies[-1] if h.movies else self.NO_MOVIE for h in queries]
        read = [0] * len(queries)  # how much of each history's list its answer has read
        todo = list(range(len(queries))) if k > 0 else []
        size = k
        while todo:
            size *= 2
            wants = [min(size, k + len(seens[i])) for i in todo]
            found = self._source.candidates([lasts[i] for i in todo], max(wants))
            later = []
            for i, want, hits in zip(todo, wants, found):
                kept, seen = out[i], seens[i]
                for movie_id, score in hits[read[i] : want]:
                    if movie_id not in seen:
                        kept.append((movie_id, score))
                        if len(kept) == k:
                            break
                read[i] = want
                if len(kept) < k and len(hits) >= want < k + len(seen):  # its list goes on: ask for more
                    later.append(i)
            todo = later
        return out


class OrderModel(Protocol):
    """The learned order-aware model: scores every movie given the ordered history."""

    def recommend(
        self, histories: Sequence[Sequence[int]], k: int, exclude_seen: bool = True, window: int | None = None
    ) -> list[list[tuple[int, float]]]: ...


class LearnedSource:
    """The learned model's next movies after one movie (a history of one)."""

    name = "learned"

    def __init__(self, model: OrderModel) -> None:
        self._model = model

    def candidates(self, queries: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        return self._model.recommend([[int(m)] for m in queries], k, exclude_seen=True)


class LearnedHistorySource:
    """The learned order-aware model's next movies after the last `last` movies of a history (None: as many as
    it was trained to read)."""

    name = "learned"

    def __init__(self, model: OrderModel, last: int | None = None) -> None:
        self._model = model
        self._last = last

    def candidates(self, queries: Sequence[History], k: int) -> list[list[tuple[int, float]]]:
        out: list[list[tuple[int, float]]] = [[] for _ in queries]
        for drop in (True, False):  # the model leaves out a history's movies it knows: all it could score
            at = [i for i, h in enumerate(queries) if h.drop_seen is drop]
            if at:
                found = self._model.recommend([queries[i].movies for i in at], k, exclude_seen=drop, window=self._last)
                for i, hits in zip(at, found):
                    out[i] = hits
        return out
