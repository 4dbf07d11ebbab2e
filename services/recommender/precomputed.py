"""One request shape's answers for every movie: computed by the build with the strategy that serves them,
memory-mapped by the server.

Item-to-item answers depend only on the query movie, so the API's most common request (hybrid, its
default k and filter) is answered for every catalogue movie by the build (`nextwatch build`, neighbours
step), the way production recommenders precompute item-to-item lists. The answers are the strategy's own:
its sources asked as a request asks them, a block of 1,000 movies at a time, and their lists fused with array
operations (`fuse_block`, equal to the per-request `fusion.fuse` to the bit), kept as arrays
(``services.stores.answers``) and given back for exactly that (k, filter); any other request, and a movie
whose answer was degraded when it was computed, goes to the strategy as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from services.recommender.base import BatchResult, Candidates, Recommendation
from services.recommender.filters import Filter
from services.stores.answers import AnswerArrays

PAD = -1


@dataclass(frozen=True)
class FusedBlock:
    """A block of queries' answers as arrays: per row its items best first, padded after the last."""

    ids: np.ndarray  # int64 [rows, k], PAD after the last item
    scores: np.ndarray  # float64 [rows, k]
    sources: np.ndarray  # int64 [rows, k]: index into names (PAD with the ids)
    names: list[str]
    missing: list[str]  # the parts absent or failed when the block was computed

    def row(self, i: int) -> list[Recommendation]:
        """Row i's items."""
        ids, scores, sources = self.ids[i].tolist(), self.scores[i].tolist(), self.sources[i].tolist()
        return [Recommendation(m, s, self.names[c]) for m, s, c in zip(ids, scores, sources) if m != PAD]


def fuse_block(
    lists: Sequence[Mapping[str, Candidates]],
    weights: Mapping[str, float],
    queries: Sequence[int],
    *,
    depth: int,
    rank_constant: float,
    allowed: Callable[[np.ndarray], np.ndarray] | None,
    k: int,
) -> FusedBlock:
    """`fusion.fuse` for every query of a block at once, with array operations: per query its sources'
    candidates (`lists`, the sources in the same order for every query), never the query itself nor a
    movie `allowed` rejects; the same scores to the bit (each movie's shares summed in source order), the
    same order (ties by movie id) and the same source per item (the largest share, ties the earlier source)."""
    names = list(lists[0]) if lists else []
    rows_n = len(queries)
    wanted = np.asarray(queries, dtype=np.int64).reshape(-1)
    rows_at: list[np.ndarray] = []
    ids_at: list[np.ndarray] = []
    shares: list[np.ndarray] = []
    source_at: list[np.ndarray] = []
    for j, name in enumerate(names):
        candidates = [per_query[name] for per_query in lists]
        lengths = np.fromiter(map(len, candidates), dtype=np.int64, count=rows_n)
        ids = np.fromiter((m for row in candidates for m, _ in row), dtype=np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(rows_n, dtype=np.int64), lengths)
        kept = ids != wanted[rows]
        if allowed is not None:
            kept &= allowed(ids)
        counted = np.cumsum(kept)  # a movie's rank among its row's kept candidates, repeats counted
        starts = np.cumsum(lengths) - lengths
        before = np.where(starts > 0, counted[np.maximum(starts - 1, 0)], 0) if len(ids) else starts
        rank = counted - np.repeat(before, lengths)
        kept &= rank <= depth
        at = np.flatnonzero(kept)
        first = _first_of_each(rows[at], ids[at])  # a source repeating a movie counts once, at its best rank
        at = at[first]
        rows_at.append(rows[at])
        ids_at.append(ids[at])
        shares.append(float(weights[name]) / (rank_constant + rank[at]))
        source_at.append(np.full(len(at), j, dtype=np.int64))
    return _ranked(rows_n, k, names, rows_at, ids_at, shares, source_at)


def _first_of_each(rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Positions (ascending) of the first entry of each distinct (row, id)."""
    return np.sort(np.unique(_pair_keys(rows, ids), return_index=True)[1])


def _pair_keys(rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """One int64 per (row, id), ordered as the pairs are (rows of a block, ids below 2**32: int32 movie ids)."""
    return (rows << 32) | (ids & 0xFFFFFFFF)


def _ranked(
    rows_n: int,
    k: int,
    names: list[str],
    rows_at: list[np.ndarray],
    ids_at: list[np.ndarray],
    shares_at: list[np.ndarray],
    source_at: list[np.ndarray],
) -> FusedBlock:
    """Each (row, movie)'s shares summed in source order, its largest share's source (ties: the earlier), and
    per row the k best by (-total, movie id)."""
    out_ids = np.full((rows_n, k), PAD, dtype=np.int64)
    out_scores = np.zeros((rows_n, k), dtype=np.float64)
    out_sources = np.full((rows_n, k), PAD, dtype=np.int64)
    if not sum(len(a) for a in ids_at) or k <= 0:
        return FusedBlock(out_ids, out_scores, out_sources, names, [])
    keys, group = np.unique(_pair_keys(np.concatenate(rows_at), np.concatenate(ids_at)), return_inverse=True)
    # bincount adds each group's entries in input order, the sources' order: 0 + a + b + ... as fuse adds them
    totals = np.bincount(group, weights=np.concatenate(shares_at), minlength=len(keys))
    best = np.full(len(keys), -np.inf)
    leader = np.zeros(len(keys), dtype=np.int64)
    bounds = np.cumsum([0, *(len(a) for a in ids_at)])
    for j in reversed(range(len(ids_at))):  # a source has one entry per group: the earlier source wins a tie
        mine, share = group[bounds[j] : bounds[j + 1]], shares_at[j]
        wins = share >= best[mine]
        best[mine[wins]], leader[mine[wins]] = share[wins], source_at[j][wins]
    g_rows, g_ids = keys >> 32, keys & 0xFFFFFFFF
    ranked = np.lexsort((-totals, g_rows))  # stable: ties stay in movie id order
    r = g_rows[ranked]
    col = np.arange(len(ranked)) - np.searchsorted(r, np.arange(rows_n))[r]
    take = col < k
    chosen, r, col = ranked[take], r[take], col[take]
    out_ids[r, col], out_scores[r, col], out_sources[r, col] = g_ids[chosen], totals[chosen], leader[chosen]
    return FusedBlock(out_ids, out_scores, out_sources, names, [])


def compute_answers(
    run: Callable[[Sequence[int]], FusedBlock],
    movie_ids: Sequence[int],
    k: int,
    *,
    expected_missing: Sequence[str] = (),
    batch: int = 1000,
) -> AnswerArrays:
    """`run(ids)` (the strategy's served answer to one request shape, as arrays) for every movie, a block at
    a time; a block that reports parts missing beyond `expected_missing` (the parts that are not there at all)
    keeps no answers, so those movies are answered live."""
    queries_all = np.unique(np.asarray(movie_ids, dtype=np.int64))
    ids = np.full((len(queries_all), k), PAD, dtype=np.int32)
    scores = np.zeros((len(queries_all), k), dtype=np.float64)
    sources = np.zeros((len(queries_all), k), dtype=np.int8)
    kept = np.zeros(len(queries_all), dtype=bool)
    names: dict[str, int] = {}
    expected = sorted(expected_missing)
    for start in range(0, len(queries_all), batch):
        block = run(queries_all[start : start + batch].tolist())
        if sorted(block.missing) != expected:
            continue
        rows = slice(start, start + len(block.ids))
        codes = np.array([names.setdefault(n, len(names)) for n in block.names] or [0], dtype=np.int64)
        ids[rows], scores[rows] = block.ids[:, :k], block.scores[:, :k]
        sources[rows] = np.where(block.ids[:, :k] != PAD, codes[np.maximum(block.sources[:, :k], 0)], 0)
        kept[rows] = True
    return AnswerArrays(queries_all[kept], ids[kept], scores[kept], sources[kept], list(names), expected)


class PrecomputedAnswers:
    """Answers to (k, `rules`) per movie from `arrays` (possibly memory-mapped)."""

    def __init__(self, arrays: AnswerArrays, rules: Filter) -> None:
        self.k = arrays.k
        self.rules = rules
        self._arrays = arrays

    def __len__(self) -> int:
        return int(len(self._arrays.movies))

    def answer(self, movie_ids: Sequence[int], k: int, rules: Filter | None) -> BatchResult | None:
        """The answers when the request is the precomputed one and every movie has an answer, else None."""
        held = self._arrays
        if k != self.k or rules != self.rules or not movie_ids or not len(held.movies):
            return None
        wanted = np.asarray([int(m) for m in movie_ids], dtype=np.int64)
        rows = np.minimum(np.searchsorted(held.movies, wanted), len(held.movies) - 1)
        if not bool(np.all(held.movies[rows] == wanted)):
            return None
        items = []
        for row in rows.tolist():
            ids, scores, sources = held.ids[row].tolist(), held.scores[row].tolist(), held.sources[row].tolist()
            items.append([Recommendation(m, s, held.names[c]) for m, s, c in zip(ids, scores, sources) if m != PAD])
        return BatchResult(items, list(held.missing))
