"""ALS artifacts (.npy arrays, memory-mapped when loaded, + json; no pickle) and the item/user lookups the
recommender needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from services.stores.array_files import IdIndex, read_arrays, write_arrays
from services.stores.errors import ArtifactError, reason, retrain_command
from services.stores.ranking import SCORE_BLOCK, best_k

if TYPE_CHECKING:
    from implicit.cpu.als import AlternatingLeastSquares
    from scipy.sparse import csr_matrix

NAME = "model"  # model.json, model.item_ids.npy, model.item_factors.npy
ARRAYS = ("item_ids", "item_factors")


@dataclass(frozen=True)
class ALSParams:
    """Hyperparameters and data choices an ALS model was trained with (defaults live in `Settings`)."""

    factors: int
    iterations: int
    regularization: float
    alpha: float
    min_rating: float
    seed: int


def make_als(params: ALSParams) -> AlternatingLeastSquares:
    """The one place an implicit ALS model is constructed (CPU; training and serving alike)."""
    from implicit.cpu.als import AlternatingLeastSquares

    return AlternatingLeastSquares(
        factors=params.factors,
        regularization=params.regularization,
        alpha=params.alpha,
        iterations=params.iterations,
        random_state=params.seed,
    )


class CollaborativeModel:
    """Item factors of a trained implicit ALS model, keyed by movieId."""

    def __init__(self, item_ids: np.ndarray, item_factors: np.ndarray, params: ALSParams, info: dict | None = None):
        self.item_ids = np.asarray(item_ids, dtype=np.int64)
        self.params = params
        self.info = info or {}
        self._index = IdIndex(self.item_ids)
        self._factors = np.ascontiguousarray(item_factors, dtype=np.float32)

    @property
    def item_factors(self) -> np.ndarray:
        return self._factors

    @cached_property
    def _als(self) -> AlternatingLeastSquares:
        """implicit's model over the factors, made on first use (importing implicit takes a start a second)."""
        als = make_als(self.params)
        als.num_threads = 1  # one viewer at a time: an OpenMP team per call costs more than it saves
        als.item_factors = self._factors
        als.user_factors = np.zeros((1, self._factors.shape[1]), dtype=np.float32)
        return als

    def __contains__(self, movie_id: int) -> bool:
        return int(movie_id) in self._index

    def similar(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        """Nearest items by ALS factors for each movie (itself excluded); [] for unknown movies."""
        out: list[list[tuple[int, float]]] = [[] for _ in movie_ids]
        rows_of = self._index.positions(movie_ids).tolist()
        known = [(pos, row) for pos, row in enumerate(rows_of) if row >= 0]
        if not known or k <= 0:
            return out
        rows = np.array([i for _, i in known], dtype=np.int64)
        n = min(k + 1, len(self.item_ids))
        ids, scores = self._als.similar_items(rows, N=n)
        for (pos, own), row_ids, row_scores in zip(known, np.atleast_2d(ids), np.atleast_2d(scores)):
            picked = [(int(self.item_ids[i]), float(s)) for i, s in zip(row_ids, row_scores) if i != own]
            out[pos] = picked[:k]
        return out

    def recommend_for_ratings(self, ratings: Mapping[int, float], k: int) -> list[tuple[int, float]]:
        """User-based: recompute a user from ad-hoc ratings and rank the items they did not rate.

        Ratings below ``min_rating`` don't count as liked, but their movies are not recommended either.
        """
        return self.recommend_for_many([ratings], k)[0]

    def recommend_for_many(self, users: Sequence[Mapping[int, float]], k: int) -> list[list[tuple[int, float]]]:
        """:meth:`recommend_for_ratings` for many ad-hoc users at once, SCORE_BLOCK users at a time: each folded
        in on their own (the same factors as alone), scored and ranked (ties by movieId)."""
        out: list[list[tuple[int, float]]] = [[] for _ in users]
        n_items = len(self.item_ids)
        lines, items, values = self._rated(users)
        liked = values >= self.params.min_rating
        rated_n = np.bincount(lines, minlength=len(users))
        wanted = (np.bincount(lines[liked], minlength=len(users)) > 0) & (np.minimum(k, n_items - rated_n) > 0)
        asked = np.flatnonzero(wanted)
        if not len(asked):
            return out
        kept = wanted[lines]  # the asked users' ratings, renumbered 0.. in order
        lines, items, values, liked = np.cumsum(wanted)[lines[kept]] - 1, items[kept], values[kept], liked[kept]
        liked_lines, liked_items, liked_values = lines[liked], items[liked], values[liked]
        for start in range(0, len(asked), SCORE_BLOCK):
            stop = min(start + SCORE_BLOCK, len(asked))
            at, to = np.searchsorted(liked_lines, [start, stop])  # the block's liked ratings: its users' factors
            factors = self._fold_in(liked_lines[at:to] - start, liked_items[at:to], liked_values[at:to], stop - start)
            scores = factors @ self._factors.T
            first, last = np.searchsorted(lines, [start, stop])  # the block's ratings: never recommended
            scores[lines[first:last] - start, items[first:last]] = -np.inf
            for i, best in zip(asked[start:stop].tolist(), best_k(scores, self.item_ids, k)):
                out[i] = best
        return out

    def _fold_in(self, lines: np.ndarray, items: np.ndarray, values: np.ndarray, users: int) -> np.ndarray:
        """(users, factors): each user's factors from their liked (line, item row, rating) entries, ordered by
        line: implicit's fold-in (confidence alpha * rating; (YtY + reg I + Yu' (Cu - I) Yu) x = Yu' Cu), each
        system built from the user's own rows and all solved at once in float64 (without implicit's CSR matrix
        and solver: a 200-movie history 0.44 -> 0.32 ms, 3,000 users 257 -> 129 ms; BENCHMARKS.md, session 14)."""
        y = self._factors
        bounds = np.searchsorted(lines, np.arange(users + 1)).tolist()
        confidence = self.params.alpha * values.astype(np.float64)
        a = np.empty((users, y.shape[1], y.shape[1]))
        b = np.empty((users, y.shape[1]))
        for u, (first, last) in enumerate(zip(bounds, bounds[1:])):
            rows, c = y[items[first:last]].astype(np.float64), confidence[first:last]
            np.matmul(rows.T * (c - 1), rows, out=a[u])
            np.matmul(c, rows, out=b[u])
        a += self._regularized_gram
        return np.linalg.solve(a, b[..., None])[..., 0].astype(np.float32)

    @cached_property
    def _regularized_gram(self) -> np.ndarray:
        """YtY + reg I of the item factors (float64), shared by every fold-in."""
        y = self._factors.astype(np.float64)
        return y.T @ y + self.params.regularization * np.eye(y.shape[1])

    def _rated(self, users: Sequence[Mapping[int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The users' ratings of the movies the model knows as (user line, item row, rating), by line then row."""
        lengths = [len(ratings) for ratings in users]
        total = sum(lengths)
        movies = np.fromiter(chain.from_iterable(users), np.int64, total)
        values = np.fromiter(chain.from_iterable(r.values() for r in users), np.float64, total)
        lines = np.repeat(np.arange(len(users)), lengths)
        items = self._index.positions(movies)
        known = np.flatnonzero(items >= 0)
        known = known[np.lexsort((items[known], lines[known]))]
        return lines[known], items[known], values[known]

    def explain_for_ratings(
        self, ratings: Mapping[int, float], movie_ids: Sequence[int], n: int = 10
    ) -> dict[int, list[tuple[int, float]]]:
        """For each movie, the rated movies that contribute most to its user-based score, largest first
        (implicit's ``explain``; the user's factorisation is computed once and reused)."""
        row = self._user_row(self._indexed(ratings))
        out: dict[int, list[tuple[int, float]]] = {int(m): [] for m in movie_ids}
        weights = None
        for movie_id in out:
            idx = self._index.get(movie_id)
            if idx is None or row.nnz == 0:
                continue
            _, top, weights = self._als.explain(0, row, idx, user_weights=weights, N=n)
            out[movie_id] = [(int(self.item_ids[i]), float(s)) for i, s in top]
        return out

    def _indexed(self, ratings: Mapping[int, float]) -> list[tuple[int, float]]:
        """(item row, rating) of each rated movie the model knows, in row order."""
        rows = self._index.positions(list(ratings)).tolist()
        return sorted((idx, float(r)) for idx, r in zip(rows, ratings.values()) if idx >= 0)

    def _user_row(self, indexed: list[tuple[int, float]]) -> csr_matrix:
        """The liked ones of (item row, rating) in row order as one CSR row."""
        from scipy.sparse import csr_matrix  # with implicit, on first use: not part of a start

        liked = [(idx, rating) for idx, rating in indexed if rating >= self.params.min_rating]
        data = np.array([rating for _, rating in liked], np.float32)
        indices = np.array([idx for idx, _ in liked], np.int32)
        return csr_matrix((data, indices, np.array([0, len(liked)], np.int32)), shape=(1, len(self.item_ids)))

    # ---- persistence -------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the item ids and factors (.npy) and the params (json, last), each atomically."""
        arrays = {"item_ids": self.item_ids, "item_factors": self.item_factors}
        write_arrays(directory, NAME, arrays, {"params": asdict(self.params), "info": self.info})

    @classmethod
    def load(cls, directory: Path) -> CollaborativeModel:
        """Map a model saved by `save` (the factors' pages are shared by every process that loads them);
        FileNotFoundError when none was trained, ArtifactError when it is unreadable (naming the command that
        retrains it)."""
        try:
            arrays, meta = read_arrays(directory, NAME, ARRAYS)
            return cls(arrays["item_ids"], arrays["item_factors"], ALSParams(**meta["params"]), meta.get("info"))
        except FileNotFoundError:
            raise
        except Exception as exc:  # cut-short arrays, bad JSON, missing arrays or fields: all mean "retrain"
            retrain = retrain_command(directory)
            raise ArtifactError(
                f"ALS model in {directory} is unreadable ({type(exc).__name__}: {reason(exc)}): run `{retrain}`"
            ) from exc

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / f"{NAME}.json").is_file()
