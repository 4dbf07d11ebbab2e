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
from functools import cached_property
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


class RowHistory(History):
    """A protocol row's :class:`History` (equal to it), whose seen movies are a set made once: every strategy and
    source asks a row for them, and a long history's set costs more to make than most sources take to answer."""

    @cached_property
    def seen(self) -> frozenset[int]:
        return super().seen


@dataclass(frozen=True)
class UserOrder:
    """Every rating (or those of some users) in (userId, timestamp, movieId) order, with where each user's
    ratings start."""

    users: np.ndarray
    movies: np.ndarray
    stamps: np.ndarray
    starts: np.ndarray  # per row: the first row of its user
    order: np.ndarray  # row i is ratings.iloc[order[i]]

    @classmethod
    def of(cls, ratings: pd.DataFrame, only: np.ndarray | None = None) -> UserOrder:
        """The ratings in user order; with `only`, the ratings of those users only (the rest is never sorted)."""
        users, movies, stamps = (ratings[c].to_numpy(np.int64) for c in ("userId", "movieId", "timestamp"))
        kept = None if only is None else np.flatnonzero(np.isin(users, only))
        if kept is not None:
            users, movies, stamps = users[kept], movies[kept], stamps[kept]
        order = np.lexsort((movies, stamps, users))
        users, movies, stamps = users[order], movies[order], stamps[order]
        first = np.r_[True, users[1:] != users[:-1]] if len(users) else np.zeros(0, bool)
        starts = np.maximum.accumulate(np.where(first, np.arange(len(users)), 0)) if len(users) else first
        return cls(users, movies, stamps, starts.astype(np.int64), order if kept is None else kept[order])

    def history(self, row: int) -> RowHistory:
        """The movies of row `row`'s user strictly before it, oldest first."""
        return RowHistory(tuple(self.movies[self.starts[row] : row].tolist()))

    def rows_of(self, users: np.ndarray, movies: np.ndarray, stamps: np.ndarray) -> np.ndarray:
        """The first row of each rating (user, movie, timestamp); ValueError when one is not among the ratings."""
        n, wanted = len(self.users), len(users)
        # the ratings and the wanted keys sorted together, a wanted key before the ratings equal to it: the
        # ratings before it in that order are its row
        ask = np.r_[np.zeros(n, np.int8), np.ones(wanted, np.int8)]
        merged = np.lexsort((-ask, np.r_[self.movies, movies], np.r_[self.stamps, stamps], np.r_[self.users, users]))
        at = np.flatnonzero(merged >= n)
        rows = np.empty(wanted, dtype=np.int64)
        rows[merged[at] - n] = at - np.arange(wanted)
        found = rows < n
        found[found] &= (
            (self.users[rows[found]] == users[found])
            & (self.movies[rows[found]] == movies[found])
            & (self.stamps[rows[found]] == stamps[found])
        )
        if not found.all():
            raise ValueError("a pair's target is not one of the ratings")
        return rows


def histories_before(ratings: pd.DataFrame, pairs: pd.DataFrame) -> list[RowHistory]:
    """Per pair (userId, movieId, timestamp: the target rating), the user's ratings strictly before the target
    in (timestamp, movieId) order, oldest first: never the target, nothing rated after it."""
    users, movies, stamps = (pairs[c].to_numpy(np.int64) for c in ("userId", "movieId", "timestamp"))
    ordered = UserOrder.of(ratings, only=np.unique(users))
    return [ordered.history(row) for row in ordered.rows_of(users, movies, stamps).tolist()]


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
