"""Fusion weights chosen on the validation window: coordinate ascent over a small grid, vectorised.

Candidate lists are computed once per source for the distinct validation queries; every weight vector
is then scored with a few numpy passes that reproduce :func:`services.recommender.fusion.fuse` exactly
(ranks after dropping the query, ties by movieId, fallback fill where the fused list is short).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from services.recommender.base import Source

Candidates = Sequence[tuple[int, float]]
GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class FusionChoice:
    """The chosen weights and rank constant, their validation scores, and every trial (for tuned.json)."""

    weights: dict[str, float]
    rank_constant: float
    hit_ratio: float
    mrr: float
    trials: list[dict[str, Any]] = field(default_factory=list)


class _Scorer:
    """Scores weight vectors on fixed candidate lists: HR@k and MRR@k of the fused lists."""

    def __init__(
        self,
        lists: Mapping[str, Sequence[Candidates]],
        queries: Sequence[int],
        pair_query: np.ndarray,
        targets: np.ndarray,
        k: int,
        depth: int,
        fallback: Sequence[Candidates],
    ) -> None:
        self.names = list(lists)
        self.k = k
        self._queries = [int(q) for q in queries]
        self._fallback = fallback
        q_idx, s_idx, movies, ranks = [], [], [], []
        for s, name in enumerate(self.names):
            for q, (query, candidates) in enumerate(zip(self._queries, lists[name])):
                seen: set[int] = set()
                kept = [m for m, _ in candidates if m != query][:depth]
                for rank, movie_id in enumerate(kept, start=1):
                    if movie_id not in seen:
                        seen.add(movie_id)
                        q_idx.append(q)
                        s_idx.append(s)
                        movies.append(movie_id)
                        ranks.append(rank)
        q_arr, movie_arr = np.array(q_idx, np.int64), np.array(movies, np.int64)
        big = int(max(movie_arr.max(initial=0), targets.max(initial=0))) + 1
        keys, self._group = np.unique(q_arr * big + movie_arr, return_inverse=True)
        self._source = np.array(s_idx, np.int64)
        self._rank = np.array(ranks, np.float64)
        self._group_query, self._group_movie = keys // big, keys % big
        self._groups = len(keys)
        # the target's group per pair (-1: not a candidate), and every (pair, group of its query) slot
        target_keys = pair_query * big + targets
        found = np.searchsorted(keys, target_keys)
        found_ok = found < len(keys)
        found_ok[found_ok] = keys[found[found_ok]] == target_keys[found_ok]
        self._target_group = np.where(found_ok, found, -1)
        self._pair_query, self._targets = pair_query, targets
        starts = np.searchsorted(self._group_query, np.arange(len(self._queries)))
        ends = np.searchsorted(self._group_query, np.arange(len(self._queries)), side="right")
        sizes = (ends - starts)[pair_query]
        self._slot_pair = np.repeat(np.arange(len(pair_query)), sizes)
        self._slot_group = np.repeat(starts[pair_query], sizes) + (
            np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        )

    def score(self, weights: Mapping[str, float], rank_constant: float) -> tuple[float, float]:
        """(HR@k, MRR@k) of the fused lists with these weights."""
        w = np.array([weights.get(n, 0.0) for n in self.names])
        fused = np.bincount(self._group, weights=w[self._source] / (rank_constant + self._rank), minlength=self._groups)
        has_target = self._target_group >= 0
        target_score = np.where(has_target, fused[np.maximum(self._target_group, 0)], 0.0)
        slot_score = fused[self._slot_group]
        slot_target = target_score[self._slot_pair]
        ahead = (slot_score > slot_target) | (
            (slot_score == slot_target) & (self._group_movie[self._slot_group] < self._targets[self._slot_pair])
        )
        rank = np.bincount(self._slot_pair, weights=ahead & (slot_score > 0), minlength=len(self._targets))
        rank = np.where(target_score > 0, rank, np.inf)
        active = np.bincount(self._group_query, weights=fused > 0, minlength=len(self._queries))
        for p in np.flatnonzero(np.isinf(rank) & (active[self._pair_query] < self.k)):
            rank[p] = self._fallback_rank(int(p), fused, int(active[self._pair_query[p]]))
        hit = rank < self.k
        reciprocal = np.where(hit, 1.0 / (np.where(hit, rank, 0) + 1), 0.0)
        return float(hit.mean()), float(reciprocal.mean())

    def _fallback_rank(self, pair: int, fused: np.ndarray, n_fused: int) -> float:
        """Where the fallback fill puts the target after the fused movies (inf when it does not)."""
        q = int(self._pair_query[pair])
        mine = self._group_query == q
        taken = {self._queries[q], *self._group_movie[mine & (fused > 0)].tolist()}
        position = n_fused
        for movie_id, _ in self._fallback[q] if self._fallback else ():
            if movie_id in taken:
                continue
            if movie_id == self._targets[pair]:
                return float(position)
            taken.add(movie_id)
            position += 1
        return float("inf")


def search_weights(
    lists: Mapping[str, Sequence[Candidates]],
    queries: Sequence[int],
    pair_query: np.ndarray,
    targets: np.ndarray,
    k: int,
    *,
    depth: int = 50,
    grid: Sequence[float] = GRID,
    rank_constants: Sequence[float] = (1.0, 10.0, 60.0),
    fallback: Sequence[Candidates] = (),
    rounds: int = 3,
) -> FusionChoice:
    """Weights (and rank constant) maximising HR@k (then MRR@k) on the given pairs.

    `lists[source][i]` are the source's candidates for `queries[i]`; pair j asks `queries[pair_query[j]]`
    and hits when `targets[j]` is in the top k. `fallback[i]` fills short fused lists (popular). Every
    source alone is tried first and coordinate ascent starts from the best of them, accepting only strict
    improvements, so the choice is never worse on these pairs than the best single source.
    """
    scorer = _Scorer(
        lists, queries, np.asarray(pair_query, np.int64), np.asarray(targets, np.int64), k, depth, fallback
    )
    trials: list[dict[str, Any]] = []

    def trial(weights: dict[str, float], c: float) -> tuple[float, float]:
        hr, mrr = scorer.score(weights, c)
        trials.append({"weights": dict(weights), "rank_constant": c, f"hr@{k}": hr, f"mrr@{k}": mrr})
        return hr, mrr

    singles = [({n: (1.0 if n == name else 0.0) for n in scorer.names}, rank_constants[0]) for name in scorer.names]
    scored = [trial(w, c) for w, c in singles]
    best_i = max(range(len(singles)), key=lambda i: (scored[i], -i))
    best, best_score = singles[best_i], scored[best_i]
    for c in rank_constants:
        weights, current = dict(singles[best_i][0]), scored[best_i]
        for _ in range(rounds):
            improved = False
            for name in scorer.names:
                for value in grid:
                    candidate = {**weights, name: float(value)}
                    if value == weights[name] or not any(candidate.values()):
                        continue
                    result = trial(candidate, c)
                    if result > current:
                        weights, current, improved = candidate, result, True
            if not improved:
                break
        if current > best_score:
            best, best_score = (weights, c), current
    return FusionChoice(best[0], best[1], best_score[0], best_score[1], trials)


def choose_fusion(
    sources: Mapping[str, Source],
    pairs: pd.DataFrame,
    k: int,
    *,
    fallback: Source,
    depth: int = 50,
    grid: Sequence[float] = GRID,
    rank_constants: Sequence[float] = (1.0, 10.0, 60.0),
) -> FusionChoice:
    """Weights for :class:`~services.recommender.fusion.FusionStrategy` over `sources`, chosen on `pairs`
    (columns prev_movieId, movieId; the validation window, with sources trained before its cutoff).

    Each source is asked once for the distinct previous movies; `fallback` (popular) fills short lists.
    """
    queries = np.unique(pairs["prev_movieId"].to_numpy(np.int64))
    asked = queries.tolist()
    lists = {name: source.candidates(asked, depth) for name, source in sources.items()}
    return search_weights(
        lists,
        asked,
        np.searchsorted(queries, pairs["prev_movieId"].to_numpy(np.int64)),
        pairs["movieId"].to_numpy(np.int64),
        k,
        depth=depth,
        grid=grid,
        rank_constants=rank_constants,
        fallback=fallback.candidates(asked, 3 * k),
    )
