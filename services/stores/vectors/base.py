"""Shared parts of the two Qdrant backends: types, errors, input checks and the batching base class."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

SERIES_FIELD = "series_id"
# Extra hits fetched beyond k (+ excluded ids), so that score ties at the k-th place are broken by id
# rather than by the engine's internal order.
TIE_SLACK = 8
# Edge backend: exclude up to this many ids by over-fetching k + len(exclude) and dropping them;
# above it, a must_not HasId filter (see bench/vector_recall.py for the measurements).
OVERFETCH_MAX_EXCLUDE = 64
# HNSW graph of the edge backend (qdrant defaults; building 87k x 384 takes ~3 minutes on 2 cores).
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    dim: int
    points: int
    model: str  # embedding model id that produced the vectors (stored as collection metadata)


class VectorStoreError(RuntimeError):
    """The collection is missing, incompatible with the configuration, locked, or the input is invalid."""


class VectorStoreLocked(VectorStoreError):
    """The embedded shard is open in another process (qdrant-edge allows one at a time)."""


class VectorStore(Protocol):
    def info(self) -> CollectionInfo | None: ...

    def recreate(self, dim: int, model: str) -> None: ...

    def ensure(self, dim: int, model: str) -> None: ...

    def upsert(self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict]) -> None: ...

    def finalize(self) -> None: ...

    def ids(self) -> np.ndarray: ...

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]: ...

    def search(self, vector: np.ndarray, k: int, exclude: Sequence[int] = ()) -> list[tuple[int, float]]: ...

    def search_batch(
        self, vectors: np.ndarray, k: int, exclude: Sequence[Sequence[int]] | None = None
    ) -> list[list[tuple[int, float]]]: ...

    def close(self) -> None: ...


def _mismatch(name: str, have_dim: int, have_model: str, dim: int, model: str) -> VectorStoreError:
    return VectorStoreError(
        f"collection {name} holds {have_dim}-d vectors of {have_model or '<unknown model>'}, "
        f"configured {dim}-d {model}: rebuild with --recreate"
    )


def _check_spec(dim: int, model: str) -> tuple[int, str]:
    if isinstance(dim, bool) or int(dim) != dim or int(dim) <= 0:
        raise VectorStoreError(f"vector dimension must be a positive integer, got {dim!r}")
    if not isinstance(model, str) or not model:
        raise VectorStoreError(f"embedding model id must be a non-empty string, got {model!r}")
    return int(dim), model


def _as_ids(ids: Iterable[Any]) -> list[int]:
    out = []
    for i in ids:
        value = int(i)
        if value < 0 or value != i:
            raise VectorStoreError(f"point ids must be non-negative integers, got {i!r}")
        out.append(value)
    return out


def _as_matrix(vectors: Any, dim: int, what: str = "vectors") -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(0, dim) if matrix.size == 0 else matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise VectorStoreError(f"{what} must have shape (n, {dim}), got {np.shape(vectors)}")
    if not np.isfinite(matrix).all():
        raise VectorStoreError(f"{what} contain NaN or infinite values")
    return np.ascontiguousarray(matrix)


def _plain(value: Any) -> Any:
    """Payload values as plain JSON types (numpy scalars/arrays, tuples, NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _excludes(exclude: Sequence[Sequence[int]] | None, n: int) -> list[set[int]]:
    if exclude is None:
        return [set() for _ in range(n)]
    if len(exclude) != n:
        raise VectorStoreError(f"exclude has {len(exclude)} entries for {n} query vectors")
    return [{int(i) for i in e} for e in exclude]


def _ranked(hits: Iterable[tuple[int, float]], k: int, excluded: set[int]) -> list[tuple[int, float]]:
    """Drop excluded ids, sort by score desc then id asc, keep k."""
    kept = [(int(i), float(s)) for i, s in hits if int(i) not in excluded]
    kept.sort(key=lambda hit: (-hit[1], hit[0]))
    return kept[:k]


def _vector_of(raw: Any) -> np.ndarray:
    if isinstance(raw, dict):  # named vectors: the default one is ""
        raw = raw.get("", next(iter(raw.values())))
    return np.asarray(raw, dtype=np.float32)


def _chunks(seq: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


class BaseVectorStore:
    """What both backends share: input checks, batching, paging, ranking and exclusion of results.

    A backend supplies the engine calls: ``_dim()``, ``_write(ids, matrix, payloads)`` for one upsert
    batch, ``_page(offset)`` for one page of ids, ``_retrieve(ids)`` for one page of stored vectors and
    ``_query(matrix, k, excluded, exact, series_id)`` for one batch of searches (raw hits, any order).
    """

    UPSERT_BATCH = 256
    QUERY_BATCH = 64
    PAGE = 1024

    def _dim(self) -> int:
        raise NotImplementedError

    def _write(self, ids: list[int], matrix: np.ndarray, payloads: list[dict]) -> None:
        raise NotImplementedError

    def _page(self, offset: Any) -> tuple[list[Any], Any]:
        raise NotImplementedError

    def _retrieve(self, ids: list[int]) -> list[Any]:
        raise NotImplementedError

    def _query(
        self, matrix: np.ndarray, k: int, excluded: list[set[int]], exact: bool | None, series_id: int | None
    ) -> list[Iterable[tuple[int, float]]]:
        raise NotImplementedError

    def upsert(self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict]) -> None:
        """Insert or replace points (id = movieId), in batches of ``UPSERT_BATCH``."""
        point_ids = _as_ids(ids)
        matrix = _as_matrix(vectors, self._dim())
        if not (len(point_ids) == len(matrix) == len(payloads)):
            raise VectorStoreError(
                f"upsert needs as many ids, vectors and payloads: {len(point_ids)}, {len(matrix)}, {len(payloads)}"
            )
        for start in range(0, len(point_ids), self.UPSERT_BATCH):
            stop = start + self.UPSERT_BATCH
            plain = [_plain(dict(p or {})) for p in payloads[start:stop]]
            self._write(point_ids[start:stop], matrix[start:stop], plain)

    def ids(self) -> np.ndarray:
        """Every point id, sorted."""
        self._dim()
        out: list[int] = []
        offset = None
        while True:
            records, offset = self._page(offset)
            out.extend(int(r.id) for r in records)
            if offset is None or not records:
                break
        return np.unique(np.asarray(out, dtype=np.int64))

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored vectors of the ids that exist."""
        self._dim()
        wanted = list(dict.fromkeys(_as_ids(ids)))
        found: dict[int, np.ndarray] = {}
        for chunk in _chunks(wanted, self.PAGE):
            for record in self._retrieve(list(chunk)):
                found[int(record.id)] = _vector_of(record.vector)
        return found

    def search(
        self,
        vector: np.ndarray,
        k: int,
        exclude: Sequence[int] = (),
        *,
        exact: bool | None = None,
        series_id: int | None = None,
    ) -> list[tuple[int, float]]:
        """The k nearest points to one vector (cosine, best first, ties by id), `exclude` left out."""
        matrix = _as_matrix(vector, self._dim(), "query vector")
        if len(matrix) != 1:
            raise VectorStoreError(f"search takes one query vector, got {len(matrix)}: use search_batch")
        return self.search_batch(matrix, k, [exclude], exact=exact, series_id=series_id)[0]

    def search_batch(
        self,
        vectors: np.ndarray,
        k: int,
        exclude: Sequence[Sequence[int]] | None = None,
        *,
        exact: bool | None = None,
        series_id: int | None = None,
    ) -> list[list[tuple[int, float]]]:
        """:meth:`search` for each row of `vectors`, in batches of ``QUERY_BATCH`` engine requests."""
        matrix = _as_matrix(vectors, self._dim(), "query vectors")
        excluded = _excludes(exclude, len(matrix))
        if k <= 0:
            return [[] for _ in matrix]
        out: list[list[tuple[int, float]]] = []
        for start in range(0, len(matrix), self.QUERY_BATCH):
            stop = start + self.QUERY_BATCH
            hits = self._query(matrix[start:stop], k, excluded[start:stop], exact, series_id)
            out.extend(_ranked(h, k, e) for h, e in zip(hits, excluded[start:stop]))
        return out
