"""Metrics at k per strategy (hit ratio, NDCG, MRR, coverage, answered) with user-bootstrap intervals."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from pipelines.evaluation.bootstrap import user_bootstrap
from services.recommender.base import Recommendation, Recommender
from services.recommender.registry import fallback_sources


@dataclass(frozen=True, eq=False)
class StrategyScore:
    """One strategy's results at k on one set of pairs, kept per pair so intervals can resample users."""

    ranks: np.ndarray  # per pair: 0-based rank of the target in the top k, -1 for a miss
    own: np.ndarray  # per pair: whether the strategy's own source (not a fallback) contributed
    coverage: float
    seconds: float = 0.0
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # metric -> 95% interval

    def per_pair(self) -> dict[str, np.ndarray]:
        """Hit, NDCG gain and reciprocal rank of every pair."""
        hit = self.ranks >= 0
        position = np.where(hit, self.ranks, 0).astype(np.float64)
        return {
            "hr": hit.astype(np.float64),
            "ndcg": np.where(hit, 1.0 / np.log2(position + 2), 0.0),
            "mrr": np.where(hit, 1.0 / (position + 1), 0.0),
        }

    def _mean(self, metric: str) -> float:
        return float(self.per_pair()[metric].mean()) if self.queries else 0.0

    @property
    def queries(self) -> int:
        return int(len(self.ranks))

    @property
    def hit_ratio(self) -> float:
        return self._mean("hr")

    @property
    def ndcg(self) -> float:
        return self._mean("ndcg")

    @property
    def mrr(self) -> float:
        return self._mean("mrr")

    @property
    def answered(self) -> float:
        """Share of pairs the strategy's own source answered (e.g. series only when a series exists)."""
        return float(self.own.mean()) if self.queries else 0.0

    @property
    def qps(self) -> float:
        """Queries per second of the batch path."""
        return self.queries / self.seconds if self.seconds > 0 else 0.0

    def formatted(self, metric: str) -> str:
        """A metric ("hr", "ndcg", "mrr") as text, with its interval when computed: 0.0720 [0.0410, 0.1080]."""
        value = self._mean(metric)
        if metric not in self.intervals:
            return f"{value:.4f}"
        lo, hi = self.intervals[metric]
        return f"{value:.4f} [{lo:.4f}, {hi:.4f}]"

    def as_dict(self, k: int) -> dict[str, Any]:
        """Metrics by name (with `_ci` intervals when computed); seconds and q/s describe the run."""
        out: dict[str, Any] = {}
        for metric, value in (("hr", self.hit_ratio), ("ndcg", self.ndcg), ("mrr", self.mrr)):
            out[f"{metric}@{k}"] = value
            if metric in self.intervals:
                out[f"{metric}@{k}_ci"] = list(self.intervals[metric])
        out.update(
            coverage=self.coverage,
            answered=self.answered,
            queries=self.queries,
            seconds=round(self.seconds, 4),
            qps=round(self.qps, 1),
        )
        return out


def score_lists(
    recommendations: Sequence[Sequence[Recommendation]],
    targets: Sequence[int],
    k: int,
    own_sources: set[str],
    catalog_size: int,
    seconds: float = 0.0,
) -> StrategyScore:
    """Rank of each target in its top k, catalogue coverage, and whether own sources answered."""
    ranks = np.full(len(targets), -1, dtype=np.int64)
    own = np.zeros(len(targets), dtype=bool)
    distinct: set[int] = set()
    for i, (recs, target) in enumerate(zip(recommendations, targets)):
        ids = [r.movie_id for r in recs[:k]]
        distinct.update(ids)
        own[i] = any(r.source in own_sources for r in recs[:k])
        if target in ids:
            ranks[i] = ids.index(target)
    return StrategyScore(ranks=ranks, own=own, coverage=len(distinct) / max(catalog_size, 1), seconds=seconds)


def evaluate_strategies(
    strategies: Mapping[str, Recommender],
    pairs: pd.DataFrame,
    k: int,
    catalog_size: int,
    *,
    resamples: int = 1000,
    seed: int = 42,
) -> dict[str, StrategyScore]:
    """Run each strategy's batch path once per distinct previous movie and score against the next ones.

    Intervals (95%, `resamples` user resamples seeded by `seed`, shared by all strategies) are added
    when `resamples` > 0.
    """
    queries = pairs["prev_movieId"].to_numpy(np.int64)
    targets = pairs["movieId"].astype(int).tolist()
    distinct, inverse = np.unique(queries, return_inverse=True)
    results: dict[str, StrategyScore] = {}
    fillers = fallback_sources()  # they fill lists; a strategy named after one owns it
    for name, strategy in strategies.items():
        started = time.perf_counter()
        answers = strategy.similar_batch(distinct.tolist(), k)
        elapsed = time.perf_counter() - started
        recs = [answers[i] for i in inverse]
        own = {r.source for answer in answers for r in answer if r.source not in fillers} | {name}
        score = score_lists(recs, targets, k, own, catalog_size, elapsed)
        if resamples > 0:
            score = replace(
                score, intervals=user_bootstrap(pairs["userId"], score.per_pair(), resamples=resamples, seed=seed)
            )
        results[name] = score
    return results


def format_table(
    scores: Mapping[str, StrategyScore], k: int, n_pairs: int, comparison: Comparison | None = None
) -> str:
    """A fixed-width table of the scores, with 95% intervals where computed."""

    head = (
        f"{'strategy':<15}{f'HR@{k} [95% CI]':>26}{f'NDCG@{k} [95% CI]':>26}{f'MRR@{k} [95% CI]':>26}"
        f"{'answered':>10}{'coverage':>10}{'q/s':>9}"
    )
    lines = [f"next-item evaluation on {n_pairs} pairs", head, "-" * len(head)]
    for name, s in scores.items():
        lines.append(
            f"{name:<15}{s.formatted('hr'):>26}{s.formatted('ndcg'):>26}{s.formatted('mrr'):>26}"
            f"{s.answered:>10.3f}{s.coverage:>10.4f}{s.qps:>9.0f}"
        )
    if comparison is not None:
        lines.append(comparison.describe())
    return "\n".join(lines)


@dataclass(frozen=True)
class Comparison:
    """One strategy against another on the same pairs: the difference of HR@k with a paired interval
    (users resampled together for both, so what they share cancels out)."""

    strategy: str
    against: str
    k: int
    difference: float
    interval: tuple[float, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "against": self.against,
            "metric": f"hr@{self.k}",
            "difference": self.difference,
            "ci": list(self.interval),
            "confidence": 0.95,
        }

    def describe(self) -> str:
        lo, hi = self.interval
        return (
            f"{self.strategy} - {self.against} (the best other strategy): HR@{self.k} {self.difference:+.4f} "
            f"[{lo:+.4f}, {hi:+.4f}], paired 95% interval over users"
        )


def compare_with_best(
    scores: Mapping[str, StrategyScore],
    users: Sequence[int] | np.ndarray | pd.Series,
    strategy: str,
    k: int,
    *,
    resamples: int,
    seed: int,
) -> Comparison | None:
    """`strategy` against the other strategy with the highest HR@k, with a paired user-bootstrap interval of
    the difference; None when either is missing or no intervals are computed."""
    others = {name: s for name, s in scores.items() if name != strategy}
    if strategy not in scores or not others or resamples <= 0:
        return None
    best = max(others, key=lambda name: (others[name].hit_ratio, others[name].ndcg))
    diff = scores[strategy].per_pair()["hr"] - others[best].per_pair()["hr"]
    interval = user_bootstrap(users, {"hr": diff}, resamples=resamples, seed=seed)["hr"]
    return Comparison(strategy, best, k, float(diff.mean()), interval)


def evaluate_histories(
    strategies: Mapping[str, Recommender],
    histories: Sequence[Any],
    targets: Sequence[int] | np.ndarray,
    users: Sequence[int] | np.ndarray,
    k: int,
    catalog_size: int,
    *,
    resamples: int = 1000,
    seed: int = 42,
) -> dict[str, StrategyScore]:
    """Each strategy's batch path over every row's query (a :class:`~services.recommender.base.History`, or
    any query the strategies take), each asked once, scored against the row's target; intervals resample
    `users` (one per row) when `resamples` > 0."""
    queries = list(histories)
    wanted = [int(t) for t in targets]
    results: dict[str, StrategyScore] = {}
    fillers = fallback_sources()
    for name, strategy in strategies.items():
        started = time.perf_counter()
        answers = strategy.similar_batch(queries, k)
        elapsed = time.perf_counter() - started
        own = {r.source for answer in answers for r in answer if r.source not in fillers} | {name}
        score = score_lists(answers, wanted, k, own, catalog_size, elapsed)
        if resamples > 0 and len(wanted):
            score = replace(score, intervals=user_bootstrap(users, score.per_pair(), resamples=resamples, seed=seed))
        results[name] = score
    return results


@dataclass(frozen=True)
class PairedComparison(Comparison):
    """A :class:`Comparison` against a named strategy (not necessarily the best other one); `note` says which."""

    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "note": self.note}

    def describe(self) -> str:
        lo, hi = self.interval
        return (
            f"{self.strategy} - {self.against}{f' ({self.note})' if self.note else ''}: HR@{self.k} "
            f"{self.difference:+.4f} [{lo:+.4f}, {hi:+.4f}], paired 95% interval over users"
        )


def compare_paired(
    score: StrategyScore,
    other: StrategyScore,
    users: Sequence[int] | np.ndarray | pd.Series,
    strategy: str,
    against: str,
    k: int,
    *,
    resamples: int,
    seed: int,
    note: str = "",
) -> PairedComparison:
    """`score` against `other` on the same rows: the HR@k difference with a paired user-bootstrap interval."""
    if score.queries != other.queries:
        raise ValueError(f"{strategy} and {against} were not scored on the same rows")
    diff = score.per_pair()["hr"] - other.per_pair()["hr"]
    interval = user_bootstrap(users, {"hr": diff}, resamples=resamples, seed=seed).get("hr", (0.0, 0.0))
    return PairedComparison(strategy, against, k, float(diff.mean()) if len(diff) else 0.0, interval, note)


def format_scores_table(scores: Mapping[str, StrategyScore], k: int, title: str, notes: Sequence[str] = ()) -> str:
    """:func:`format_table`'s table under another title, with free-form notes below it."""
    table = format_table(scores, k, 0).split("\n")[1:]
    return "\n".join([title, *table, *notes])
