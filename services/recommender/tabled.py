"""A source answered from its precomputed neighbour table, with the live source for what the table lacks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.recommender.base import Source
from services.stores.neighbours import NeighbourTable


class TabledSource:
    """Answers like `live` (same name, same lists) from `table`, asking `live` only for movies the table
    has no row for (added after the build) and for requests beyond a full row (k > N, when the source
    may hold more than the N the table kept: a filtered request that used them up). Without a live
    source those get the table's answer (nothing, or the N it holds). With `complete` (the table has a row
    for every movie the live source knows, as the ALS table for the model it was computed from), a movie
    without a row has no answer: the live source is not asked for it."""

    def __init__(
        self, table: NeighbourTable, live: Source | None, name: str | None = None, *, complete: bool = False
    ) -> None:
        if live is None and name is None:
            raise ValueError("a tabled source without a live source needs a name")
        self.name = name or live.name  # type: ignore[union-attr]
        self.table = table
        self._live = live
        self._complete = complete

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        out = self.table.candidates(movie_ids, k)
        if self._live is None or not out:
            return out
        pos = self.table.positions(movie_ids)
        ask = np.zeros(len(pos), dtype=bool) if self._complete else pos < 0
        if k > self.table.n:
            known = pos >= 0
            ask[known] = self.table.full(pos[known])
        misses = np.flatnonzero(ask).tolist()
        if misses:
            for at, found in zip(misses, self._live.candidates([movie_ids[at] for at in misses], k)):
                out[at] = found
        return out
