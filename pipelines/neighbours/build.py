"""Neighbour tables from vectors (exact cosine), ALS item factors, or any candidate source.

Exact top N by blocked matrix products: rows normalised once, then ``block x all`` similarities, the
best N per row picked with ``np.argpartition`` (within the column groups that can hold them) and sorted
by (score desc, movieId asc); the query movie itself is never its own neighbour. Memory beyond the
matrix (normalised into a copy) is a few ``block x rows`` arrays (block 256 at 87,585 rows: about 90 MB of
float32 similarities).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from services.recommender.base import Source
from services.recommender.history import LearnedSource
from services.settings import Settings
from services.stores.collaborative import CollaborativeModel
from services.stores.neighbours import PAD, NeighbourTable
from services.stores.order_model import OrderModel
from services.stores.ranking import SCORE_BLOCK
from services.stores.vectors import open_vector_store

BLOCK = 256
# implicit's floor for zero norms (similar_items), so zero vectors score 0 against everything
MIN_NORM = 1e-10


def _sorted_unique(movie_ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ids ascending and the order that sorts them; duplicate ids (or ids that int32 table cells
    cannot hold) are an error."""
    ids = np.asarray(movie_ids, dtype=np.int64).reshape(-1)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    if len(ids) > 1 and not bool(np.all(np.diff(ids) > 0)):
        raise ValueError("movie ids must be unique")
    if len(ids) and (ids[0] < 0 or ids[-1] > np.iinfo(np.int32).max):
        raise ValueError("movie ids must be in 0 .. 2**31 - 1")
    return ids, order


def exact_vector_table(
    movie_ids: Sequence[int] | np.ndarray, matrix: np.ndarray, n: int, block: int = BLOCK
) -> NeighbourTable:
    """Exact cosine top-n of every row against all others; ties by movieId ascending."""
    ids, order = _sorted_unique(movie_ids)
    vectors = np.asarray(matrix, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError(f"matrix must have one row per movie id: {vectors.shape} for {len(ids)} ids")
    rows = len(ids)
    width = max(0, min(int(n), rows - 1))
    out_ids = np.full((rows, int(n)), PAD, dtype=np.int32)
    out_scores = np.zeros((rows, int(n)), dtype=np.float32)
    if width == 0:
        return NeighbourTable(ids, out_ids, out_scores)
    size = max(1, rows // (8 * width))  # column groups of `size`: about 8 x width of them
    padded = np.zeros((-(-rows // size) * size, vectors.shape[1]), dtype=np.float32)  # whole groups
    padded[:rows] = vectors[order]
    padded[:rows] /= np.maximum(np.linalg.norm(padded[:rows], axis=1), MIN_NORM)[:, None]
    unit = padded[:rows]
    for start in range(0, rows, block):
        stop = min(start + block, rows)
        sims = unit[start:stop] @ padded.T
        sims[:, rows:] = -np.inf
        local = np.arange(stop - start)
        sims[local, start + local] = -np.inf
        top, scores = _top_columns(sims, size, width)
        out_ids[start:stop, :width] = ids[top]
        out_scores[start:stop, :width] = scores
    return NeighbourTable(ids, out_ids, out_scores)


def _top_columns(sims: np.ndarray, size: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `width` best columns and their scores, best first, ties by column (= movieId) ascending.

    The best `width` values of a row lie in the `width` column groups (of `size` columns) with the
    largest maxima, so only those groups' values are partitioned. Rows with ties at either cut (equal
    group maxima, equal scores) are redone by a full sort of the row, so the selection is exact.
    """
    rows, cols = sims.shape
    grouped = sims.reshape(rows, cols // size, size)
    maxima = grouped.max(axis=2)
    cut = maxima.shape[1] - width
    groups = np.argpartition(maxima, cut, axis=1)[:, cut:]
    bound = np.take_along_axis(maxima, groups, axis=1).min(axis=1, keepdims=True)
    values = np.take_along_axis(grouped, groups[:, :, None], axis=1).reshape(rows, -1)
    columns = (groups[:, :, None] * size + np.arange(size)).reshape(rows, -1)
    cut = values.shape[1] - width
    best = np.argpartition(values, cut, axis=1)[:, cut:]
    scores = np.take_along_axis(values, best, axis=1)
    top = np.take_along_axis(columns, best, axis=1)
    threshold = scores.min(axis=1, keepdims=True)
    tied = ((maxima >= bound).sum(axis=1) > width) | (
        (values == threshold).sum(axis=1) > (scores == threshold).sum(axis=1)
    )
    for row in np.flatnonzero(tied):
        top[row] = np.lexsort((np.arange(cols), -sims[row]))[:width]
        scores[row] = sims[row, top[row]]
    order = np.lexsort((top, -scores), axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(scores, order, axis=1)


def als_table(model: CollaborativeModel, n: int, block: int = BLOCK) -> NeighbourTable:
    """The lists ``model.similar`` gives (implicit's cosine over item factors), for every item."""
    return exact_vector_table(model.item_ids, model.item_factors, n, block)


def als_table_of(settings: Settings, directory: Path) -> NeighbourTable:
    """The collaborative source's table (registry builder): from the ALS model saved in `directory`."""
    return als_table(CollaborativeModel.load(directory), settings.neighbours)


def learned_table_of(settings: Settings, directory: Path) -> NeighbourTable:
    """The learned source's table (registry builder): its one-movie answer for every movie the model saved in
    `directory` knows, computed by the source that serves it (a block of movies at a time)."""
    model = OrderModel.load(directory)
    return source_table(LearnedSource(model), model.item_ids, settings.neighbours, batch=SCORE_BLOCK)


def vector_table_of(settings: Settings, directory: Path | None) -> NeighbourTable:
    """The vector source's table (registry builder): exact neighbours of every stored vector."""
    store = open_vector_store(settings)
    try:
        ids, matrix = stored_vectors(store)
    finally:
        store.close()
    return exact_vector_table(ids, matrix, settings.neighbours)


def source_table(source: Source, movie_ids: Sequence[int] | np.ndarray, n: int, batch: int = 1024) -> NeighbourTable:
    """Any source's first n candidates for each movie, asked `batch` movies at a time."""
    ids, _ = _sorted_unique(movie_ids)
    out_ids = np.full((len(ids), int(n)), PAD, dtype=np.int32)
    out_scores = np.zeros((len(ids), int(n)), dtype=np.float32)
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch].tolist()
        for row, found in enumerate(source.candidates(chunk, int(n)), start):
            found = found[: int(n)]
            out_ids[row, : len(found)] = [m for m, _ in found]
            out_scores[row, : len(found)] = [s for _, s in found]
    return NeighbourTable(ids, out_ids, out_scores)


class StoredVectors(Protocol):
    """The part of a vector store that reading all of it needs (both backends have it)."""

    def ids(self) -> np.ndarray: ...

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]: ...


def stored_vectors(store: StoredVectors) -> tuple[np.ndarray, np.ndarray]:
    """Every (movie id, vector) of a vector store, ids ascending: ``ids()`` scrolls all points and
    ``vectors(ids)`` retrieves them page by page (both backends)."""
    ids = np.asarray(store.ids(), dtype=np.int64)
    found = store.vectors(ids.tolist())
    ids = np.asarray([m for m in ids.tolist() if m in found], dtype=np.int64)
    if len(ids) == 0:
        return ids, np.zeros((0, 0), dtype=np.float32)
    return ids, np.stack([found[m] for m in ids.tolist()]).astype(np.float32, copy=False)
