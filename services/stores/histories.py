"""Every viewer's ratings in time order (the histories `GET /users/{id}/next` starts from), as .npy arrays that
are memory-mapped when opened (no copy per worker; MovieLens 32M: about 0.6 GB on disk)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from services.stores.array_files import plain
from services.stores.atomic import atomic_path, write_text_atomic
from services.stores.errors import ArtifactError, reason, retrain_command

ARRAYS = ("user_ids", "indptr", "movies", "timestamps", "ratings")
META = "histories.json"


class Watched(NamedTuple):
    """One viewer's ratings, oldest first (ties by movieId)."""

    movies: np.ndarray
    timestamps: np.ndarray
    ratings: np.ndarray


class UserHistories:
    """Per user (ascending ids), a CSR slice of movies, timestamps and ratings in (timestamp, movieId) order."""

    def __init__(
        self,
        user_ids: np.ndarray,
        indptr: np.ndarray,
        movies: np.ndarray,
        timestamps: np.ndarray,
        ratings: np.ndarray,
        cutoff: int,
    ) -> None:
        if len(indptr) != len(user_ids) + 1 or not (len(movies) == len(timestamps) == len(ratings) == indptr[-1]):
            raise ValueError("inconsistent history arrays")
        self.user_ids, self.indptr = user_ids, indptr
        self.movies, self.timestamps, self.ratings = movies, timestamps, ratings
        self.cutoff = int(cutoff)

    @property
    def info(self) -> dict[str, int]:
        return {"users": len(self.user_ids), "ratings": int(self.indptr[-1]), "cutoff_timestamp": self.cutoff}

    def of(self, user_id: int) -> Watched | None:
        """The user's ratings, oldest first; None for a user with none."""
        at = int(np.searchsorted(self.user_ids, user_id))
        if at >= len(self.user_ids) or int(self.user_ids[at]) != user_id:
            return None
        start, stop = int(self.indptr[at]), int(self.indptr[at + 1])
        return Watched(self.movies[start:stop], self.timestamps[start:stop], self.ratings[start:stop])

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in ARRAYS:
            with atomic_path(directory / f"{name}.npy") as tmp, open(tmp, "wb") as handle:
                np.save(handle, getattr(self, name), allow_pickle=False)
        write_text_atomic(directory / META, json.dumps(self.info))

    @classmethod
    def load(cls, directory: Path) -> UserHistories:
        """The saved histories, memory-mapped; ArtifactError naming the command that rebuilds them."""
        try:
            meta = json.loads((directory / META).read_text(encoding="utf-8"))
            user_ids, indptr, movies, timestamps, ratings = (
                plain(np.load(directory / f"{name}.npy", mmap_mode="r", allow_pickle=False)) for name in ARRAYS
            )
            return cls(user_ids, indptr, movies, timestamps, ratings, meta["cutoff_timestamp"])
        except Exception as exc:  # missing or truncated arrays, bad JSON
            raise ArtifactError(
                f"viewer histories in {directory} are unreadable ({type(exc).__name__}: {reason(exc)}): "
                f"run `{retrain_command(directory)}`"
            ) from exc

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / META).is_file()
