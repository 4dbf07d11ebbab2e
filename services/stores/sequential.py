"""Sequential co-visitation artifacts (npz + json, no pickle): "viewers of this movie watched next"."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from scipy.sparse import csr_matrix

ARRAYS = "sequential.npz"
META = "sequential.json"


@dataclass(frozen=True)
class SequentialParams:
    """How a sequential model was built (the defaults live in Settings)."""

    window: int  # W: a title counts as "next" up to this many ratings later
    backward_weight: float  # b: weight of the reverse direction (j watched before i)
    popularity_damping: float  # beta: a candidate's score is divided by its rating count ** beta
    neighbours: int  # N: candidates kept per movie
    min_rating: float | None  # only ratings at or above this count; None: all ratings

    def __post_init__(self) -> None:
        if not 1 <= self.window <= 255:
            raise ValueError(f"window must be in 1..255, got {self.window}")
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be at least 1, got {self.neighbours}")
        if self.backward_weight < 0 or self.popularity_damping < 0:
            raise ValueError("backward_weight and popularity_damping must not be negative")


class SequentialModel:
    """Per movie, its top-N "watched next" candidates as CSR rows sorted by (score desc, movieId asc).

    ``viewers`` runs parallel to the scores: how many distinct users watched the candidate within the
    next `window` titles after the row's movie (0 for candidates that only came from the reverse direction).
    """

    def __init__(
        self,
        item_ids: np.ndarray,
        indptr: np.ndarray,
        indices: np.ndarray,
        scores: np.ndarray,
        viewers: np.ndarray,
        params: SequentialParams,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.item_ids = np.asarray(item_ids, dtype=np.int64)
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int32)
        self.scores = np.asarray(scores, dtype=np.float32)
        self.viewer_counts = np.asarray(viewers, dtype=np.int32)
        self.params = params
        self.info = info or {}
        if len(self.indptr) != len(self.item_ids) + 1 or not (
            len(self.indices) == len(self.scores) == len(self.viewer_counts) == self.indptr[-1]
        ):
            raise ValueError("inconsistent sequential model arrays")
        self._index = {int(m): i for i, m in enumerate(self.item_ids.tolist())}

    @property
    def matrix(self) -> csr_matrix:
        """The pruned score matrix (rows and columns index `item_ids`; each row in ranked order)."""
        n = len(self.item_ids)
        return csr_matrix((self.scores, self.indices, self.indptr), shape=(n, n))

    def __contains__(self, movie_id: object) -> bool:
        return isinstance(movie_id, (int, np.integer)) and int(movie_id) in self._index

    def similar(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        """Up to k candidates per movie, best first (ties by movieId); [] for unknown movies."""
        rows = np.array([self._index.get(int(m), -1) for m in movie_ids], dtype=np.int64)
        if len(rows) == 0:
            return []
        known = rows >= 0
        starts, stops = np.zeros(len(rows), np.int64), np.zeros(len(rows), np.int64)
        starts[known], stops[known] = self.indptr[rows[known]], self.indptr[rows[known] + 1]
        lengths = np.minimum(stops - starts, max(k, 0))
        ends = np.cumsum(lengths)
        flat = np.repeat(starts - (ends - lengths), lengths) + np.arange(ends[-1])
        ids = self.item_ids[self.indices[flat]].tolist()
        scores = self.scores[flat].astype(np.float64).tolist()
        pairs = list(zip(ids, scores))
        bounds = [0, *ends.tolist()]
        return [pairs[bounds[i] : bounds[i + 1]] for i in range(len(rows))]

    def row(self, movie_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        """A movie's whole kept row: candidate ids and scores, best first; None for an unknown movie."""
        i = self._index.get(int(movie_id))
        if i is None:
            return None
        start, stop = self.indptr[i], self.indptr[i + 1]
        return self.item_ids[self.indices[start:stop]], self.scores[start:stop]

    def viewers(self, movie_id: int, candidate_ids: Sequence[int]) -> dict[int, int]:
        """Distinct users who watched each candidate within the next `window` titles after `movie_id`.

        Only candidates among the movie's kept neighbours are in the answer.
        """
        row = self._index.get(int(movie_id))
        if row is None:
            return {}
        lo, hi = self.indptr[row], self.indptr[row + 1]
        kept = dict(zip(self.item_ids[self.indices[lo:hi]].tolist(), self.viewer_counts[lo:hi].tolist()))
        return {int(m): kept[int(m)] for m in candidate_ids if int(m) in kept}

    # ---- persistence -------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the arrays (npz) and params/info (json), each atomically."""
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(
            directory / ARRAYS,
            lambda f: np.savez(
                f,
                item_ids=self.item_ids,
                indptr=self.indptr,
                indices=self.indices,
                scores=self.scores,
                viewers=self.viewer_counts,
            ),
        )
        meta = json.dumps({"params": asdict(self.params), "info": self.info}, indent=2, ensure_ascii=False)
        _atomic_write(directory / META, lambda f: f.write(meta.encode("utf-8")))

    @classmethod
    def load(cls, directory: Path) -> SequentialModel:
        """Load a model saved by `save`; FileNotFoundError when none was built."""
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
        with np.load(directory / ARRAYS, allow_pickle=False) as data:
            return cls(
                data["item_ids"],
                data["indptr"],
                data["indices"],
                data["scores"],
                data["viewers"],
                SequentialParams(**meta["params"]),
                meta.get("info"),
            )

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / ARRAYS).is_file() and (directory / META).is_file()


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file, flushed and fsynced, then renamed over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
