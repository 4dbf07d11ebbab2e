"""Build the sequential co-visitation model: which movies viewers watch within the next W titles.

For each user, ratings are ordered by (timestamp, movieId); every pair of positions p < q with
d = q - p <= W adds 1/d to (movie_p -> movie_q) and b/d to (movie_q -> movie_p). A user's repeated
ratings of one movie count once (the earliest), so the forward pair count is the number of distinct
users ("viewers"). Scores may be damped by the candidate's rating count ** beta, then each row keeps
its top N by (score desc, movieId asc).

Everything is vectorised. Positions are grouped by movie once (a linear COO -> CSR conversion); movies
are then taken in blocks of about `block_pairs` window entries, and a block's rows are one sparse product
``X @ Y``: Y holds each position's window (2W + 1 neighbours, out-of-reach ones with weight 0), X sums
them per movie, so scipy's dense-accumulator SpGEMM sums duplicates without sorting. Complex data carries
two sums at once: the real part is the score, the imaginary part the forward pair count. Memory stays
within one block plus a few O(ratings) arrays.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.sparse import coo_matrix, csr_matrix

from services.stores.sequential import SequentialModel, SequentialParams

BLOCK_PAIRS = 24_000_000


def build_sequential(
    ratings: pd.DataFrame, params: SequentialParams, *, block_pairs: int = BLOCK_PAIRS
) -> SequentialModel:
    """The sequential model of `ratings` (columns userId, movieId, timestamp; rating when min_rating is set)."""
    started = time.perf_counter()
    if params.min_rating is not None:
        ratings = ratings.loc[ratings["rating"] >= params.min_rating]
    item_ids, items, users = _sequences(ratings)
    m = len(item_ids)
    by_movie = _positions_by_movie(items, m)
    repeated = _repeats(by_movie, users)
    if repeated.any():
        items, users = items[~repeated], users[~repeated]
        by_movie = _positions_by_movie(items, m)
    windows = _Windows(items, users, params, m)
    counts = np.diff(by_movie.indptr)
    damping = counts.astype(np.float64) ** -params.popularity_damping if params.popularity_damping else None
    col_bits = max(int(m - 1).bit_length(), 1)
    max_rows = 1 << (63 - 31 - col_bits)  # a block's local row must fit the sort key (see _prune)
    parts = [(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.int32))]
    per_block = max(block_pairs // windows.width, 1)  # positions per block
    a = 0
    while a < m:
        b = int(np.searchsorted(by_movie.indptr, by_movie.indptr[a] + per_block, side="right")) - 1
        b = min(max(b, a + 1), a + max_rows, m)
        parts.append(_prune(windows.sum(by_movie[a:b]), params.neighbours, col_bits, damping))
        a = b
    lengths, indices, scores, viewers = (np.concatenate(p) for p in zip(*parts))
    info = {
        "ratings": len(items),
        "users": int(np.count_nonzero(users[1:] != users[:-1])) + int(len(users) > 0),
        "movies": m,
        "neighbours_kept": len(indices),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return SequentialModel(item_ids, np.concatenate([[0], np.cumsum(lengths)]), indices, scores, viewers, params, info)


def _sequences(ratings: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted movie ids, and per rating in (user, timestamp, movieId) order its movie and user index."""
    movie_codes, item_ids = pd.factorize(ratings["movieId"].to_numpy(), sort=True)
    user_codes, _ = pd.factorize(ratings["userId"].to_numpy(), sort=True)
    order = _sequence_order(user_codes, ratings["timestamp"].to_numpy().astype(np.int64), movie_codes)
    return np.asarray(item_ids, dtype=np.int64), movie_codes[order].astype(np.int32), user_codes[order].astype(np.int32)


def _sequence_order(users: np.ndarray, stamps: np.ndarray, movies: np.ndarray) -> np.ndarray:
    """Indices that sort ratings by (user, timestamp, movie); users and movies are non-negative codes.

    Two stable sorts of packed int64 keys, (user, timestamp) then (rank of that, movie): the second is
    over nearly sorted data, and both are much faster than a three-key lexsort at 32M ratings.
    """
    if len(users) == 0:
        return np.zeros(0, dtype=np.int64)
    low = int(stamps.min())
    span_bits = int(stamps.max() - low).bit_length()
    movie_bits = int(movies.max()).bit_length()
    if int(users.max()).bit_length() + span_bits > 63 or len(users).bit_length() + movie_bits > 63:
        return np.lexsort((movies, stamps, users))
    key = (users.astype(np.int64) << span_bits) | (stamps - low)
    order = np.argsort(key, kind="stable")
    key = key[order]
    rank = np.cumsum(np.concatenate([[0], key[1:] != key[:-1]]), dtype=np.int64)
    del key
    return order[np.argsort((rank << movie_bits) | movies[order], kind="stable")]


def _positions_by_movie(items: np.ndarray, m: int) -> csr_matrix:
    """Rows = movies, columns = the positions where each is rated, ascending (a linear counting sort)."""
    n = len(items)
    return coo_matrix((np.ones(n, np.complex64), (items, np.arange(n))), shape=(m, n)).tocsr()


def _repeats(by_movie: csr_matrix, users: np.ndarray) -> np.ndarray:
    """Per position: whether its user rated the same movie at an earlier position."""
    positions = by_movie.indices
    repeated = np.zeros(len(users), dtype=bool)
    if len(positions) < 2:
        return repeated
    first = np.zeros(len(positions), dtype=bool)
    first[by_movie.indptr[:-1][np.diff(by_movie.indptr) > 0]] = True
    who = users[positions]
    again = (who[1:] == who[:-1]) & ~first[1:]
    repeated[positions[1:][again]] = True
    return repeated


class _Windows:
    """Each position's window (W before, itself, W after) as a fixed-width sparse row of
    (weight + 1j * is_forward); neighbours out of the user's sequence, and itself, weigh 0."""

    def __init__(self, items: np.ndarray, users: np.ndarray, params: SequentialParams, m: int) -> None:
        w = params.window
        start = 0 if params.backward_weight > 0 else w  # without the reverse direction: only itself and after
        offsets = np.arange(start - w, w + 1)
        padded = np.concatenate([np.zeros(w, np.int32), items, np.zeros(w + 1, np.int32)])  # +1: never empty
        self._columns = sliding_window_view(padded, 2 * w + 1)[:, start:]
        distance = np.maximum(np.abs(offsets), 1).astype(np.float64)
        backward = np.where(offsets < 0, params.backward_weight / distance, 0)
        weights = np.where(offsets > 0, 1.0 / distance + 1j, backward)
        back, ahead = np.meshgrid(np.arange(w + 1), np.arange(w + 1), indexing="ij")
        valid = (offsets >= -back[..., None]) & (offsets <= ahead[..., None])
        self._patterns = np.where(valid, weights, 0).reshape((w + 1) ** 2, len(offsets)).astype(np.complex64)
        self._pattern_of = _pattern_codes(users, w)
        self.width = len(offsets)
        self._m = m

    def sum(self, block: csr_matrix) -> csr_matrix:
        """Per row (movie) of `block`, the summed windows of its positions: a (rows x movies) matrix."""
        positions = block.indices
        cells = len(positions) * self.width
        neighbours = csr_matrix(
            (
                self._patterns[self._pattern_of[positions]].reshape(-1),
                self._columns[positions].reshape(-1),
                np.arange(0, cells + 1, self.width, dtype=np.int64 if cells >= 2**31 else np.int32),
            ),
            shape=(len(positions), self._m),
        )
        summing = csr_matrix(
            (block.data, np.arange(len(positions)), block.indptr), shape=(block.shape[0], len(positions))
        )
        return summing @ neighbours


def _pattern_codes(users: np.ndarray, window: int) -> np.ndarray:
    """Per position: (earlier positions of the same user within the window) * (W + 1) + (later ones)."""
    n = len(users)
    starts = np.flatnonzero(np.concatenate([[True], users[1:] != users[:-1]])) if n else np.zeros(0, np.int64)
    lengths = np.diff(np.concatenate([starts, [n]]))
    offset = np.arange(n, dtype=np.int64) - np.repeat(starts, lengths)
    back = np.minimum(offset, window)
    ahead = np.minimum(np.repeat(lengths, lengths) - 1 - offset, window)
    return (back * (window + 1) + ahead).astype(np.uint16)


def _prune(
    block: csr_matrix, neighbours: int, col_bits: int, damping: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each row's top `neighbours` by (score desc, column asc): row lengths, columns, scores, viewers.

    Zero-weight entries are dropped. In rows longer than N, entries below the N-th largest score of 16N
    entries spread over the row (a lower bound of the row's N-th largest) are dropped before ranking. One int64
    key per entry packs (row, score descending, column): positive float32 bit patterns order like their
    values, so one sort of unique keys ranks every row at once.
    """
    rows = len(block.indptr) - 1
    row_of = np.repeat(np.arange(rows, dtype=np.int64), np.diff(block.indptr))
    cols, values = block.indices.astype(np.int64), block.data
    live = values.real > 0  # scipy's product already leaves out exact zeros (out-of-reach neighbours)
    if not live.all():
        row_of, cols, values = row_of[live], cols[live], values[live]
    scores = values.real.astype(np.float32)
    if damping is not None:
        scores = (scores * damping[cols]).astype(np.float32)
    per_row = np.bincount(row_of, minlength=rows)
    survive = scores >= _thresholds(scores, per_row, neighbours)[row_of]
    row_of, cols, scores, values = row_of[survive], cols[survive], scores[survive], values[survive]
    key = (row_of << (31 + col_bits)) | ((0x7FFFFFFF - scores.view(np.int32).astype(np.int64)) << col_bits) | cols
    order = np.argsort(key)
    del key
    starts = np.concatenate([[0], np.cumsum(np.bincount(row_of, minlength=rows))[:-1]])
    kept = order[np.arange(len(order)) - starts[row_of[order]] < neighbours]
    viewers = np.rint(values.imag[kept]).astype(np.int32)
    return np.minimum(per_row, neighbours), cols[kept].astype(np.int32), scores[kept], viewers


def _thresholds(scores: np.ndarray, per_row: np.ndarray, neighbours: int) -> np.ndarray:
    """Per row, a score at or below its `neighbours`-th largest (0 for rows no longer than that)."""
    out = np.zeros(len(per_row), dtype=np.float32)
    long_rows = np.flatnonzero(per_row > neighbours)
    if len(long_rows) == 0:
        return out
    sample = 16 * neighbours
    lengths = per_row[long_rows]
    starts = np.concatenate([[0], np.cumsum(per_row)[:-1]])[long_rows]
    taken = np.minimum(lengths, sample)
    slots = np.arange(taken.sum()) - np.repeat(np.cumsum(taken) - taken, taken)
    picked = np.repeat(starts, taken) + slots * np.repeat(lengths, taken) // np.repeat(taken, taken)
    head = np.zeros((len(long_rows), sample), dtype=np.float32)
    head[np.repeat(np.arange(len(long_rows)), taken), slots] = scores[picked]
    out[long_rows] = np.partition(head, sample - neighbours, axis=1)[:, sample - neighbours]
    return out
