"""An LRU memory of a deterministic source's candidate lists, per query movie."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from services.recommender.base import Source


class CachedSource:
    """Remembers the candidates a source gave for each query movie (the `size` most recently asked).

    A request for k candidates is answered from memory when at least k were remembered, or when the
    source had fewer to give; otherwise the source is asked and the longer list remembered. Only for
    sources whose answer for a movie does not change while serving (vector and ALS neighbours).
    """

    def __init__(self, source: Source, size: int) -> None:
        self.name = source.name
        self._source = source
        self._size = size
        self._lists: OrderedDict[int, tuple[np.ndarray, np.ndarray, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        out: list[list[tuple[int, float]] | None] = [None] * len(movie_ids)
        with self._lock:
            for pos, movie_id in enumerate(movie_ids):
                remembered = self._lists.get(int(movie_id))
                if remembered is not None and (len(remembered[0]) >= k or remembered[2]):
                    self._lists.move_to_end(int(movie_id))
                    ids, scores, _ = remembered
                    out[pos] = list(zip(ids[:k].tolist(), scores[:k].tolist()))
        misses = [pos for pos, found in enumerate(out) if found is None]
        if misses:
            fetched = self._source.candidates([movie_ids[pos] for pos in misses], k)
            with self._lock:
                for pos, found in zip(misses, fetched):
                    out[pos] = found
                    self._remember(int(movie_ids[pos]), found, complete=len(found) < k)
        return out  # type: ignore[return-value]

    def _remember(self, movie_id: int, found: list[tuple[int, float]], *, complete: bool) -> None:
        ids = np.fromiter((m for m, _ in found), dtype=np.int64, count=len(found))
        scores = np.fromiter((s for _, s in found), dtype=np.float64, count=len(found))
        self._lists[movie_id] = (ids, scores, complete)
        self._lists.move_to_end(movie_id)
        while len(self._lists) > self._size:
            self._lists.popitem(last=False)
