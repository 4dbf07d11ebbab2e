"""Seed 002's next-item protocol: prev -> next pairs, latest N, hit ratio and friends at k."""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.recommender.base import Recommendation, Strategy


@dataclass(frozen=True)
class Protocol:
    """The evaluation protocol's parameters (defaults: seed 002 on the bundled sample)."""

    min_ratings: int = 20
    pairs: int = 3000
    k: int = 10


def next_item_pairs(ratings: pd.DataFrame, min_ratings: int, n_pairs: int) -> pd.DataFrame:
    """Latest `n_pairs` (previous movie -> next movie) pairs among movies with >= min_ratings ratings.

    Deterministic: within a user ratings are ordered by (timestamp, movieId), and the latest pairs are
    chosen by (timestamp, userId, movieId), so equal timestamps never make the result depend on row order.
    Returns columns userId, prev_movieId, movieId, timestamp (oldest first).
    """
    counts = ratings["movieId"].value_counts()
    popular = counts.index[counts.to_numpy() >= min_ratings]
    kept = ratings.loc[ratings["movieId"].isin(popular), ["userId", "movieId", "timestamp"]]
    kept = kept.sort_values(["userId", "timestamp", "movieId"], kind="stable")
    users = kept["userId"].to_numpy()
    movies = kept["movieId"].to_numpy()
    same_user = np.zeros(len(kept), dtype=bool)
    same_user[1:] = users[1:] == users[:-1]
    prev = np.empty_like(movies)
    prev[1:] = movies[:-1]
    pairs = pd.DataFrame({
        "userId": users[same_user], "prev_movieId": prev[same_user],
        "movieId": movies[same_user], "timestamp": kept["timestamp"].to_numpy()[same_user],
    })
    pairs = pairs.sort_values(["timestamp", "userId", "movieId"], kind="stable").tail(n_pairs)
    return pairs.reset_index(drop=True)


@dataclass(frozen=True)
class StrategyScore:
    """One strategy's metrics at k on one set of pairs."""

    hit_ratio: float
    ndcg: float
    mrr: float
    coverage: float
    answered: float
    queries: int
    seconds: float

    @property
    def qps(self) -> float:
        """Queries per second of the batch path."""
        return self.queries / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self, k: int) -> dict[str, float]:
        return {
            f"hr@{k}": self.hit_ratio, f"ndcg@{k}": self.ndcg, f"mrr@{k}": self.mrr,
            "coverage": self.coverage, "answered": self.answered, "qps": round(self.qps, 1),
        }


def score_lists(
    recommendations: Sequence[Sequence[Recommendation]],
    targets: Sequence[int],
    k: int,
    own_sources: set[str],
    catalog_size: int,
    seconds: float = 0.0,
) -> StrategyScore:
    """Hit ratio, NDCG and MRR at k, coverage of the catalogue, and the share answered by own sources."""
    hits, ndcg, rr, answered = 0, 0.0, 0.0, 0
    distinct: set[int] = set()
    for recs, target in zip(recommendations, targets):
        ids = [r.movie_id for r in recs[:k]]
        distinct.update(ids)
        if any(r.source in own_sources for r in recs[:k]):
            answered += 1
        if target in ids:
            rank = ids.index(target)
            hits += 1
            ndcg += 1.0 / np.log2(rank + 2)
            rr += 1.0 / (rank + 1)
    n = max(len(targets), 1)
    return StrategyScore(
        hit_ratio=hits / n, ndcg=ndcg / n, mrr=rr / n,
        coverage=len(distinct) / max(catalog_size, 1), answered=answered / n,
        queries=len(targets), seconds=seconds,
    )


def evaluate_strategies(
    strategies: Mapping[str, Strategy],
    pairs: pd.DataFrame,
    k: int,
    catalog_size: int,
) -> dict[str, StrategyScore]:
    """Run each strategy's batch path on the pairs' previous movies and score against the next ones."""
    queries = pairs["prev_movieId"].astype(int).tolist()
    targets = pairs["movieId"].astype(int).tolist()
    results: dict[str, StrategyScore] = {}
    for name, strategy in strategies.items():
        started = time.perf_counter()
        recs = strategy.similar_batch(queries, k)
        elapsed = time.perf_counter() - started
        own = {src.name for src in getattr(strategy, "sources", [])} - {"random", "popular"} or {name}
        results[name] = score_lists(recs, targets, k, own, catalog_size, elapsed)
    return results


def format_table(scores: Mapping[str, StrategyScore], k: int, n_pairs: int) -> str:
    """A fixed-width table of the scores."""
    head = f"{'strategy':<15}{'HR@' + str(k):>9}{'NDCG':>9}{'MRR':>9}{'answered':>10}{'coverage':>10}{'q/s':>10}"
    lines = [f"next-item evaluation on {n_pairs} pairs", head, "-" * len(head)]
    for name, s in scores.items():
        lines.append(
            f"{name:<15}{s.hit_ratio:>9.4f}{s.ndcg:>9.4f}{s.mrr:>9.4f}{s.answered:>10.3f}"
            f"{s.coverage:>10.4f}{s.qps:>10.0f}"
        )
    return "\n".join(lines)
