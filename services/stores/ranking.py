"""The k best of rows of scores over a catalogue, best first, ties by movieId: how the learned model and the
ALS fold-in rank every movie for a batch of viewers (one request is a batch of one)."""

from __future__ import annotations

import numpy as np

SCORE_BLOCK = 256  # viewers scored at a time: a block's (viewers x catalogue) float32 scores are in memory
GROUP = 256  # columns whose maximum bounds a row's best scores (the k-th largest group maximum)


def best_k(scores: np.ndarray, ids: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Per row of `scores` (lines x len(ids); -inf for a movie the row may not get), its k best (id, score),
    best first; ties by id (at the cut, the smallest ids)."""
    out = []
    for row, candidates in zip(scores, _best_columns(scores, k)):
        best = candidates[np.lexsort((ids[candidates], -row[candidates]))][:k]
        out.append(list(zip(ids[best].tolist(), row[best].astype(np.float64).tolist())))
    return out


def _best_columns(scores: np.ndarray, k: int) -> list[np.ndarray]:
    """Per row of `scores`, the columns (ascending) that may hold its k best finite scores: every column scoring
    at least the k-th largest of the row's group maxima (groups of up to GROUP columns), so ties at the cut are
    all there; without the -inf ones. A few passes over the scores, not a selection over each row."""
    lines_n, n = scores.shape
    # groups narrow enough that there are several times k of them (else every column would be a candidate)
    starts = np.arange(0, n, max(1, min(GROUP, n // (4 * max(k, 1)))))
    lowest = np.finfo(scores.dtype).min
    if len(starts) <= k:
        bound = np.full(lines_n, lowest, dtype=scores.dtype)
    else:
        maxima = np.maximum.reduceat(scores, starts, axis=1)
        cut = len(starts) - k
        bound = np.maximum(np.partition(maxima, cut, axis=1)[:, cut], lowest)
    # row by row: numpy's nonzero of a 2-d mask is 5-7x slower than flatnonzero of each of its rows
    return [np.flatnonzero(row >= least) for row, least in zip(scores, bound)]
