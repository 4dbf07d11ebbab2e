"""The history protocol: seed 002's test pairs, each strategy given the viewer's whole history before the target.

Row i is the pair (user, previous movie -> target) of :func:`~pipelines.evaluation.protocol.next_item_pairs`;
a history strategy gets ``History(movies)``, the user's ratings strictly before the target in (timestamp,
movieId) order (seed 002's order: equal timestamps are ordered by movieId), every movie of the catalogue
(the `min_ratings` filter chooses the pairs, not what the platform knows of a viewer). The user's earlier
test-window ratings belong to that history: the platform knows them; the models do not (they are the
evaluation build, trained before the first test pair). The rows are the seed-002 rows, so the one-movie
strategies' scores on those pairs (asked with the previous movie) pair with the history strategies' row by row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.evaluation.metrics import (
    Comparison,
    StrategyScore,
    compare_paired,
    compare_with_best,
    evaluate_histories,
    evaluate_strategies,
    format_scores_table,
)
from services.recommender.base import History, Recommender
from services.recommender.registry import HYBRID, fusable


@dataclass(frozen=True)
class UserOrder:
    """Every rating in (userId, timestamp, movieId) order, with where each user's ratings start and end."""

    users: np.ndarray
    movies: np.ndarray
    stamps: np.ndarray
    starts: np.ndarray  # per row: the first row of its user
    order: np.ndarray  # row i is ratings.iloc[order[i]]

    @classmethod
    def of(cls, ratings: pd.DataFrame) -> UserOrder:
        users, movies, stamps = (ratings[c].to_numpy(np.int64) for c in ("userId", "movieId", "timestamp"))
        order = np.lexsort((movies, stamps, users))
        users, movies, stamps = users[order], movies[order], stamps[order]
        first = np.r_[True, users[1:] != users[:-1]] if len(users) else np.zeros(0, bool)
        starts = np.maximum.accumulate(np.where(first, np.arange(len(users)), 0)) if len(users) else first
        return cls(users, movies, stamps, starts.astype(np.int64), order)

    def history(self, row: int) -> History:
        """The movies of row `row`'s user strictly before it, oldest first."""
        return History(tuple(self.movies[self.starts[row] : row].tolist()))


def histories_before(ratings: pd.DataFrame, pairs: pd.DataFrame) -> list[History]:
    """Per pair (userId, movieId, timestamp: the target rating), the user's ratings strictly before the target
    in (timestamp, movieId) order, oldest first: never the target, nothing rated after it."""
    ordered = UserOrder.of(ratings)
    keys = pd.DataFrame(
        {
            "userId": ordered.users,
            "movieId": ordered.movies,
            "timestamp": ordered.stamps,
            "row": np.arange(len(ordered.users)),
        }
    ).drop_duplicates(["userId", "movieId", "timestamp"], keep="first")
    found = (
        pairs[["userId", "movieId", "timestamp"]]
        .astype(np.int64)
        .merge(keys, how="left", on=["userId", "movieId", "timestamp"])
    )
    if found["row"].isna().any():
        raise ValueError("a pair's target is not one of the ratings")
    return [ordered.history(int(row)) for row in found["row"].to_numpy()]


@dataclass(frozen=True, eq=False)
class ProtocolResult:
    """One protocol's rows (a user and a target each), every strategy's scores on them, and paired comparisons."""

    name: str
    title: str
    k: int
    users: np.ndarray  # per row
    scores: dict[str, StrategyScore]
    paired: dict[str, Comparison] = field(default_factory=dict)  # hybrid against ...: "best_other", ...
    parts: dict[str, Comparison] = field(default_factory=dict)  # hybrid against each of its parts
    info: dict[str, Any] = field(default_factory=dict)  # how the rows and the models were made

    @property
    def rows(self) -> int:
        return int(len(self.users))

    @property
    def n_users(self) -> int:
        return int(len(np.unique(self.users)))

    @property
    def hybrid_below(self) -> list[str]:
        """The parts hybrid is significantly below (the paired interval of hybrid - part under 0)."""
        return [name for name, c in self.parts.items() if c.interval[1] < 0]

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": self.rows,
            "users": self.n_users,
            **self.info,
            "strategies": {name: s.as_dict(self.k) for name, s in self.scores.items()},
            "paired": {
                **{label: c.as_dict() for label, c in self.paired.items()},
                "parts": {name: c.as_dict() for name, c in self.parts.items()},
                "hybrid_below": self.hybrid_below,
            },
        }

    def table(self) -> str:
        """The scores as the fixed-width table `nextwatch evaluate` prints, with the paired comparisons."""
        notes = [c.describe() for c in self.paired.values()]
        one = self.info.get("one_movie_hybrid")
        if one:
            notes.insert(
                0,
                f"one-movie hybrid on the same rows (each history's last movie): HR@{self.k} {one[f'hr@{self.k}']:.4f}",
            )
        if self.parts:
            below = self.hybrid_below
            notes.append(
                f"hybrid is significantly below {', '.join(below)} (paired interval under 0)"
                if below
                else "hybrid is not significantly below any of its parts (paired intervals)"
            )
        if "leakage" in self.info:
            notes.append(f"(time leakage: {self.info['leakage']['note']})")
        return format_scores_table(
            self.scores, self.k, f"{self.title}: {self.rows:,} rows from {self.n_users:,} users", notes
        )


def paired_comparisons(
    scores: Mapping[str, StrategyScore],
    users: np.ndarray,
    k: int,
    *,
    resamples: int,
    seed: int,
    baselines: Mapping[str, tuple[StrategyScore, str, str]] | None = None,
) -> tuple[dict[str, Comparison], dict[str, Comparison]]:
    """Hybrid against the best other strategy, against each baseline scored on the same rows ({label: (score,
    name, note)}, e.g. the one-movie hybrid) and against each of its fusable parts; paired user-bootstrap
    intervals of the HR@k difference."""
    paired: dict[str, Comparison] = {}
    if resamples <= 0 or HYBRID not in scores:
        return paired, {}
    best = compare_with_best(scores, users, HYBRID, k, resamples=resamples, seed=seed)
    if best is not None:
        paired["best_other"] = best
    for label, (baseline, name, note) in (baselines or {}).items():
        paired[label] = compare_paired(
            scores[HYBRID], baseline, users, HYBRID, name, k, resamples=resamples, seed=seed, note=note
        )
    parts: dict[str, Comparison] = {
        name: compare_paired(
            scores[HYBRID], scores[name], users, HYBRID, name, k, resamples=resamples, seed=seed, note="a part"
        )
        for name in fusable()
        if name in scores
    }
    return paired, parts


def score_history_protocol(
    strategies: Mapping[str, Recommender],
    ratings: pd.DataFrame,
    pairs: pd.DataFrame,
    k: int,
    catalog_size: int,
    *,
    resamples: int,
    seed: int,
    one_movie: Mapping[str, Recommender] | None = None,
    seed_002: Mapping[str, StrategyScore] | None = None,
) -> ProtocolResult:
    """Every history strategy on seed 002's pairs, each given the user's history before the target.

    Hybrid is paired with the one-movie hybrid (`one_movie`: the one-movie strategies) asked with each
    history's last movie, and with seed 002's hybrid score on the same pairs (`seed_002`: asked with the
    previous movie among those with >= min_ratings ratings; the same movie unless the user rated a rarer one
    in between)."""
    histories = histories_before(ratings, pairs)
    users = pairs["userId"].to_numpy(np.int64)
    targets = pairs["movieId"].to_numpy(np.int64)
    scores = evaluate_histories(strategies, histories, targets, users, k, catalog_size, resamples=resamples, seed=seed)
    baselines: dict[str, tuple[StrategyScore, str, str]] = {}
    info: dict[str, Any] = {
        "protocol": "seed 002's test pairs; each strategy is given the user's ratings strictly before the target "
        "in (timestamp, movieId) order (earlier test-window ratings included: the platform knows them, the "
        "models do not); the one-movie hybrid answers the same rows from the history's last movie",
        "history_length": history_lengths(histories),
    }
    if one_movie is not None and HYBRID in one_movie:
        last = pairs.assign(prev_movieId=[h.movies[-1] for h in histories])
        one = evaluate_strategies({HYBRID: one_movie[HYBRID]}, last, k, catalog_size, resamples=resamples, seed=seed)[
            HYBRID
        ]
        baselines["one_movie_hybrid"] = (one, "one-movie hybrid", "the same rows, asked with the history's last movie")
        info["one_movie_hybrid"] = one.as_dict(k)
    if seed_002 is not None and HYBRID in seed_002:
        baselines["seed_002_hybrid"] = (
            seed_002[HYBRID],
            "seed 002's hybrid",
            "the same rows, asked with the previous movie of seed 002's pair",
        )
    paired, parts = paired_comparisons(scores, users, k, resamples=resamples, seed=seed, baselines=baselines)
    return ProtocolResult(
        "history", "history protocol (seed 002's pairs, whole history)", k, users, scores, paired, parts, info
    )


def history_lengths(histories: Sequence[History]) -> dict[str, float]:
    """Median, mean and longest history length."""
    lengths = np.array([len(h.movies) for h in histories])
    if not len(lengths):
        return {"median": 0.0, "mean": 0.0, "max": 0.0}
    return {"median": float(np.median(lengths)), "mean": round(float(lengths.mean()), 1), "max": float(lengths.max())}
