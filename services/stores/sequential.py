"""Sequential co-visitation artifacts (.npy arrays, memory-mapped when loaded, + json; no pickle): "viewers of
this movie watched next"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from services.stores.array_files import IdIndex, read_arrays, write_arrays
from services.stores.errors import ArtifactError, reason, retrain_command

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

NAME = "sequential"  # sequential.json and sequential.<array>.npy
ARRAYS = ("item_ids", "indptr", "indices", "scores", "viewers")


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
        self._index = IdIndex(self.item_ids)

    @property
    def matrix(self) -> csr_matrix:
        """The pruned score matrix (rows and columns index `item_ids`; each row in ranked order)."""
        from scipy.sparse import csr_matrix  # training and tuning only: not imported by a server's start

        n = len(self.item_ids)
        return csr_matrix((self.scores, self.indices, self.indptr), shape=(n, n))

    def __contains__(self, movie_id: object) -> bool:
        return movie_id in self._index

    def similar(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        """Up to k candidates per movie, best first (ties by movieId); [] for unknown movies."""
        rows = self._index.positions(movie_ids)
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

    def position(self, movie_id: int) -> int | None:
        """The movie's row (and column) of the score matrix; None for an unknown movie."""
        return self._index.get(int(movie_id))

    def positions(self, movie_ids: Sequence[int]) -> np.ndarray:
        """Each movie's row (and column) of the score matrix, -1 for an unknown movie."""
        return self._index.positions(movie_ids)

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
        """Write the arrays (.npy) and params/info (json, last), each atomically."""
        arrays: dict[str, np.ndarray] = {
            "item_ids": self.item_ids,
            "indptr": self.indptr,
            "indices": self.indices,
            "scores": self.scores,
            "viewers": self.viewer_counts,
        }
        write_arrays(directory, NAME, arrays, {"params": asdict(self.params), "info": self.info})

    @classmethod
    def load(cls, directory: Path) -> SequentialModel:
        """Map a model saved by `save` (its arrays are shared read-only by every process that loads them);
        FileNotFoundError when none was built, ArtifactError when it is unreadable."""
        try:
            arrays, meta = read_arrays(directory, NAME, ARRAYS)
            item_ids, indptr, indices, scores, viewers = (arrays[name] for name in ARRAYS)
            params = SequentialParams(**meta["params"])
            return cls(item_ids, indptr, indices, scores, viewers, params, meta.get("info"))
        except FileNotFoundError:
            raise
        except Exception as exc:  # cut-short arrays, bad JSON, missing arrays or fields: all mean "retrain"
            raise ArtifactError(
                f"sequential model in {directory} is unreadable ({type(exc).__name__}: {reason(exc)}): "
                f"run `{retrain_command(directory)}`"
            ) from exc

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / f"{NAME}.json").is_file()
