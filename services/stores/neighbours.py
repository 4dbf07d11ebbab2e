"""Precomputed item-to-item neighbour tables: each query movie's top N (id, score), on disk as .npy files.

A table for source ``name`` in ``directory`` is four files: ``name.movies.npy`` (int64, the rows' query
movies, ascending), ``name.ids.npy`` (int32 ``[rows, N]``, best first, padded with -1),
``name.scores.npy`` (float32 ``[rows, N]``, padding 0) and ``name.json`` (fingerprint, N, rows, created),
written whole and mapped back by ``services.stores.array_files``: a half-written table reads as absent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.stores.array_files import array_paths, ascending, map_arrays, write_arrays

log = logging.getLogger(__name__)

PAD = -1
_ARRAYS = ("movies", "ids", "scores")


@dataclass(frozen=True)
class NeighbourTable:
    """Top-N neighbour lists of the movies in ``movie_ids`` (sorted), one row each."""

    movie_ids: np.ndarray  # int64 [rows], ascending
    ids: np.ndarray  # int32 [rows, N], padded with PAD
    scores: np.ndarray  # float32 [rows, N]

    @property
    def n(self) -> int:
        """Neighbours per row (the table's depth)."""
        return int(self.ids.shape[1])

    def __len__(self) -> int:
        return int(len(self.movie_ids))

    def positions(self, movie_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row of each movie, -1 where the table has none."""
        wanted = np.asarray(movie_ids, dtype=np.int64).reshape(-1)
        if len(self.movie_ids) == 0:
            return np.full(len(wanted), -1, dtype=np.int64)
        pos = np.searchsorted(self.movie_ids, wanted)
        pos[pos >= len(self.movie_ids)] = 0
        return np.where(self.movie_ids[pos] == wanted, pos, -1)

    def full(self, positions: np.ndarray) -> np.ndarray:
        """Whether each row holds all N neighbours (the source may have had more to give)."""
        if self.n == 0:
            return np.ones(len(positions), dtype=bool)
        return np.asarray(self.ids[positions, self.n - 1] != PAD)

    def row(self, movie_id: int) -> list[tuple[int, float]] | None:
        """The movie's whole neighbour list, None when the table has no row for it."""
        if self.positions([movie_id])[0] < 0:
            return None
        return self.candidates([movie_id], self.n)[0]

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        """Up to min(k, N) neighbours per movie, best first; [] for a movie without a row."""
        pos = self.positions(movie_ids)
        out: list[list[tuple[int, float]]] = [[] for _ in range(len(pos))]
        known = np.flatnonzero(pos >= 0)
        width = max(0, min(int(k), self.n))
        if len(known) == 0 or width == 0:
            return out
        ids = np.asarray(self.ids[pos[known], :width])
        lengths = (ids != PAD).sum(axis=1).tolist()
        score_rows = np.asarray(self.scores[pos[known], :width], dtype=np.float64).tolist()
        for at, length, row_ids, row_scores in zip(known.tolist(), lengths, ids.tolist(), score_rows):
            out[at] = list(zip(row_ids[:length], row_scores[:length]))
        return out


def table_files(directory: Path, source_name: str) -> list[Path]:
    """The files of source `source_name`'s table in `directory` (arrays and json)."""
    return list(array_paths(Path(directory), source_name, _ARRAYS).values())


def write_table(directory: Path, source_name: str, table: NeighbourTable, fingerprint: str) -> None:
    """Write the table atomically: the old json goes first, the arrays next, the new json last."""
    arrays: dict[str, np.ndarray] = {
        "movies": np.ascontiguousarray(table.movie_ids, dtype=np.int64),
        "ids": np.ascontiguousarray(table.ids, dtype=np.int32),
        "scores": np.ascontiguousarray(table.scores, dtype=np.float32),
    }
    rows, n = arrays["ids"].shape
    if arrays["movies"].shape != (rows,) or arrays["scores"].shape != (rows, n):
        raise ValueError(f"inconsistent table shapes: {[a.shape for a in arrays.values()]}")
    if not ascending(arrays["movies"]):
        raise ValueError("a table's movie ids must be strictly ascending")
    write_arrays(directory, source_name, arrays, {"fingerprint": fingerprint, "n": int(n), "rows": int(rows)})


def _shapes(meta: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], Any]]:
    rows, n = int(meta["rows"]), int(meta["n"])
    return {"movies": ((rows,), np.int64), "ids": ((rows, n), np.int32), "scores": ((rows, n), np.float32)}


def load_table(directory: Path, source_name: str, fingerprint: str | None = None) -> NeighbourTable | None:
    """The table memory-mapped, or None when it is missing, partial, inconsistent or (when `fingerprint`
    is given) built from other inputs."""
    mapped = map_arrays(directory, source_name, _ARRAYS, _shapes, fingerprint)
    if mapped is None:
        return None
    arrays, _ = mapped
    if not ascending(arrays["movies"]):
        log.info("neighbour table %s: movie ids are not strictly ascending", source_name)
        return None
    return NeighbourTable(arrays["movies"], arrays["ids"], arrays["scores"])
