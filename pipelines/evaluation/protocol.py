"""Seed 002's next-item protocol: its parameters, the prev -> next pairs, the test and validation windows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from services.settings import Settings


@dataclass(frozen=True)
class Protocol:
    """The evaluation protocol's parameters (defaults live in `Settings`)."""

    min_ratings: int
    pairs: int
    k: int
    seed: int
    resamples: int

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: int | None) -> Protocol:
        """The protocol the settings describe; overrides that are not None win (command-line options)."""
        values = {
            "min_ratings": settings.protocol.min_ratings,
            "pairs": settings.protocol.pairs,
            "k": settings.protocol.k,
            "seed": settings.protocol.seed,
            "resamples": settings.protocol.bootstrap_resamples,
        }
        values.update({name: value for name, value in overrides.items() if value is not None})
        most = settings.api.max_k
        if values["k"] > most:
            raise ValueError(
                f"k {values['k']:,} is more than the API's max k, {most} (NEXTWATCH_MAX_K), the longest list the "
                f"service answers: rerun with --k {most} or less (`nextwatch evaluate --k {most}`)"
            )
        return cls(**values)

    def __post_init__(self) -> None:
        for name in ("min_ratings", "pairs", "k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


def _latest_pairs(ratings: pd.DataFrame, min_ratings: int, n_pairs: int) -> pd.DataFrame:
    """The latest `n_pairs` (previous movie -> next movie) pairs, ordered by (timestamp, userId, movieId).

    Only the pairs at or after the n-th latest timestamp are sorted by (timestamp, userId, movieId): the
    choice is the same as sorting every pair, at a fraction of the cost on MovieLens 32M.
    """
    counts = ratings["movieId"].value_counts()
    popular = counts.index[counts.to_numpy() >= min_ratings]
    kept = ratings.loc[ratings["movieId"].isin(popular), ["userId", "movieId", "timestamp"]]
    users, movies, stamps = (kept[c].to_numpy() for c in ("userId", "movieId", "timestamp"))
    order = np.lexsort((movies, stamps, users))  # by user, then time, then movie
    users, movies, stamps = users[order], movies[order], stamps[order]
    same_user = users[1:] == users[:-1]
    pair_users, pair_prev = users[1:][same_user], movies[:-1][same_user]
    pair_movies, pair_stamps = movies[1:][same_user], stamps[1:][same_user]
    if 0 < n_pairs < len(pair_stamps):
        threshold = np.partition(pair_stamps, len(pair_stamps) - n_pairs)[len(pair_stamps) - n_pairs]
        recent = pair_stamps >= threshold
        pair_users, pair_prev = pair_users[recent], pair_prev[recent]
        pair_movies, pair_stamps = pair_movies[recent], pair_stamps[recent]
    latest: np.ndarray | list[int] = (
        np.lexsort((pair_movies, pair_users, pair_stamps))[-n_pairs:] if n_pairs > 0 else []
    )
    return pd.DataFrame(
        {
            "userId": pair_users[latest],
            "prev_movieId": pair_prev[latest],
            "movieId": pair_movies[latest],
            "timestamp": pair_stamps[latest],
        }
    )


def next_item_pairs(ratings: pd.DataFrame, min_ratings: int, n_pairs: int) -> pd.DataFrame:
    """Latest `n_pairs` (previous movie -> next movie) pairs among movies with >= min_ratings ratings.

    Deterministic: within a user ratings are ordered by (timestamp, movieId), and the latest pairs are
    chosen by (timestamp, userId, movieId), so equal timestamps never make the result depend on row order.
    Returns columns userId, prev_movieId, movieId, timestamp (oldest first).
    """
    return _latest_pairs(ratings, min_ratings, n_pairs)


def no_pairs(ratings: pd.DataFrame, min_ratings: int) -> str:
    """Why there are no next-item pairs among movies with >= `min_ratings` ratings, and what to lower."""
    counts = np.sort(ratings["movieId"].value_counts().to_numpy())[::-1]
    first, second = (int(counts[i]) if len(counts) > i else 0 for i in (0, 1))
    return (
        f"no next-item pairs among movies with >= {min_ratings:,} ratings (the two most-rated movies have "
        f"{first:,} and {second:,}): lower --min-ratings to at most {second:,} (`nextwatch evaluate --min-ratings N` "
        "or NEXTWATCH_MIN_RATINGS)"
    )


@dataclass(frozen=True)
class Windows:
    """The test window (latest pairs) and the validation window of as many pairs just before it."""

    validation: pd.DataFrame
    test: pd.DataFrame

    @property
    def test_cutoff(self) -> int:
        """Models scored on the test window train only on ratings strictly before this timestamp."""
        return int(self.test["timestamp"].min())

    @property
    def validation_cutoff(self) -> int:
        """Models scored on the validation window train only on ratings strictly before this timestamp."""
        return int(self.validation["timestamp"].min())


def evaluation_windows(ratings: pd.DataFrame, min_ratings: int, n_pairs: int) -> Windows:
    """The latest `n_pairs` pairs (test) and the `n_pairs` pairs immediately preceding them (validation)."""
    pairs = _latest_pairs(ratings, min_ratings, 2 * n_pairs)
    split = max(len(pairs) - n_pairs, 0)
    return Windows(pairs.iloc[:split].reset_index(drop=True), pairs.iloc[split:].reset_index(drop=True))


def ratings_fingerprint(ratings: pd.DataFrame) -> dict[str, Any]:
    """Size, time range and a content hash of the ratings (row order does not matter)."""
    columns = [c for c in ("userId", "movieId", "rating", "timestamp") if c in ratings]
    ordered = ratings[columns].sort_values(columns, kind="stable")
    digest = hashlib.sha256(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes()).hexdigest()
    return {
        "ratings": int(len(ratings)),
        "users": int(ratings["userId"].nunique()),
        "movies": int(ratings["movieId"].nunique()),
        "first_timestamp": int(ratings["timestamp"].min()),
        "last_timestamp": int(ratings["timestamp"].max()),
        "sha256": digest,
    }


def utc(timestamp: int) -> str:
    """A Unix timestamp as an ISO-8601 UTC string."""
    return datetime.fromtimestamp(int(timestamp), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
