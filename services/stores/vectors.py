"""The movie overview embeddings collection: one small interface, two Qdrant backends.

* :class:`EdgeVectorStore` -- an embedded qdrant-edge shard on local disk (the default: no server).
* :class:`ServerVectorStore` -- a Qdrant server (or qdrant-client's local mode) through qdrant-client.

Points: id = movieId (non-negative int), one dense cosine vector, payload
``{"series_id": int | None, "genres": list[str], "year": int | None}``. The embedding model id and the
dimension are stored with the collection, so a store built with another model is refused instead of
silently mixing vector spaces.

Search results are ``(movie_id, cosine similarity)`` pairs, best first, ties broken by ascending id;
excluded ids never appear; ``k`` larger than the collection returns what exists.

Exact vs. approximate (edge backend): a collection of at most ``exact_search_max_points`` points is
searched exactly (full scan p50 ~1.8 ms at 20k x 384 on 2 cores, vs ~1 ms for HNSW, and always exact);
a larger one goes through HNSW with ``hnsw_ef`` (87k x 384: HNSW ~1.1 ms, exact ~7.5 ms). ``finalize()``
only builds HNSW (the slow ``optimize()``: ~3 minutes for 87k x 384) above that threshold.
:func:`measure_recall` reports the recall@k of a built collection's HNSW against exact search, on its
own stored vectors (bench/vector_recall.py for the synthetic benchmark). The HNSW full-scan threshold
is derived from ``exact_search_max_points`` when the collection is created.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from qdrant_client import QdrantClient

    from services.settings import Settings

log = logging.getLogger(__name__)

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


def open_vector_store(settings: Settings) -> VectorStore:
    """Embedded qdrant-edge shard under settings.qdrant_path when settings.qdrant_url is empty, else a
    Qdrant server via qdrant-client (``":memory:"`` selects qdrant-client's in-process mode)."""
    if not settings.qdrant_url:
        return EdgeVectorStore(
            settings.qdrant_path, settings.collection, settings.hnsw_ef, settings.exact_search_max_points
        )
    from qdrant_client import QdrantClient

    if settings.qdrant_url == ":memory:":
        client = QdrantClient(location=":memory:")
    else:
        client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key)
    return ServerVectorStore(
        client, settings.collection, settings.hnsw_ef, shards=settings.qdrant_shards, replicas=settings.qdrant_replicas
    )


def measure_recall(store: Any, k: int = 10, sample: int = 200, seed: int = 0) -> float:
    """Recall@k of the store's normal (approximate) search against exact search.

    Queries are ``sample`` stored vectors picked at random; each query's own id is excluded. Works on
    both backends (they accept ``exact=`` on ``search_batch``); 1.0 when the store searches exactly.
    """
    all_ids = store.ids()
    if len(all_ids) == 0:
        raise VectorStoreError("cannot measure recall on an empty collection")
    rng = np.random.default_rng(seed)
    picked = rng.choice(all_ids, size=min(sample, len(all_ids)), replace=False)
    stored = store.vectors(picked.tolist())
    qids = [int(i) for i in picked if int(i) in stored]
    matrix = np.stack([stored[i] for i in qids])
    exclude = [[i] for i in qids]
    approx = store.search_batch(matrix, k, exclude=exclude, exact=False)
    truth = store.search_batch(matrix, k, exclude=exclude, exact=True)
    found = sum(len({i for i, _ in a} & {i for i, _ in t}) for a, t in zip(approx, truth))
    total = sum(len(t) for t in truth)
    return found / total if total else 1.0


# ---------------------------------------------------------------------------------------------------
# shared helpers


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


# ---------------------------------------------------------------------------------------------------
# embedded: qdrant-edge


class EdgeVectorStore:
    """A qdrant-edge shard in ``path/<collection>/`` with its metadata in ``path/<collection>.json``.

    The shard is opened lazily on first use and holds a lock on its write-ahead log until close(): only
    one process (one store object) may have it open at a time; opening it again raises
    :class:`VectorStoreLocked`. Threads may share one store. Updates are durable when they return
    (write-ahead log).

    Extra keyword-only arguments of :meth:`search` / :meth:`search_batch` beyond the protocol:
    ``exact`` (None = policy, True/False = force) and ``series_id`` (restrict to one series, served by
    the payload index).
    """

    UPSERT_BATCH = 1024
    QUERY_BATCH = 256
    PAGE = 10_000

    def __init__(
        self,
        path: Path | str,
        collection: str,
        hnsw_ef: int = 128,
        exact_search_max_points: int = 20_000,
    ) -> None:
        if not collection or any(c in collection for c in "/\\") or collection.startswith("."):
            raise VectorStoreError(f"invalid collection name {collection!r}")
        self.path = Path(path)
        self.collection = collection
        self.hnsw_ef = int(hnsw_ef)
        self.exact_search_max_points = int(exact_search_max_points)
        self.overfetch_max_exclude = OVERFETCH_MAX_EXCLUDE
        self._shard: Any = None
        self._meta: dict[str, Any] | None = None
        self._lock = threading.RLock()

    # -- locations and metadata -------------------------------------------------------------------

    @property
    def shard_path(self) -> Path:
        return self.path / self.collection

    @property
    def meta_path(self) -> Path:
        return self.path / f"{self.collection}.json"

    def _read_meta(self) -> dict[str, Any]:
        if self.meta_path.exists():
            return json.loads(self.meta_path.read_text())
        # a shard without our metadata (interrupted create, or made by hand): dimension from its config
        meta: dict[str, Any] = {"model": "", "dim": 0}
        try:
            config = json.loads((self.shard_path / "edge_config.json").read_text())
            meta["dim"] = int(config["vectors"][""]["size"])
        except (OSError, KeyError, ValueError, TypeError):
            pass
        return meta

    def _write_meta(self, meta: dict[str, Any]) -> None:
        tmp = self.meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(tmp, self.meta_path)

    # -- shard lifecycle ----------------------------------------------------------------------------

    def _open(self) -> Any:
        """The open shard; raises VectorStoreError when the collection doesn't exist or is locked."""
        with self._lock:
            if self._shard is None:
                if not self.shard_path.is_dir():
                    raise VectorStoreError(
                        f"collection {self.collection} does not exist under {self.path}: build it first"
                    )
                from qdrant_edge import EdgeShard

                try:
                    self._shard = EdgeShard.load(str(self.shard_path))
                except Exception as exc:
                    if "WouldBlock" in str(exc):
                        raise VectorStoreLocked(
                            f"collection {self.collection} at {self.shard_path} is open in another process "
                            "or store (qdrant-edge allows one at a time): close it and retry"
                        ) from exc
                    raise VectorStoreError(
                        f"cannot open collection {self.collection} at {self.shard_path}: {exc}"
                    ) from exc
                self._meta = self._read_meta()
            return self._shard

    def _dim(self) -> int:
        self._open()
        assert self._meta is not None
        return int(self._meta["dim"])

    def _points(self) -> int:
        return int(self._open().info().points_count)

    def close(self) -> None:
        with self._lock:
            shard, self._shard, self._meta = self._shard, None, None
            if shard is not None:
                shard.close()  # updates are already durable in the write-ahead log

    def __enter__(self) -> EdgeVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- protocol -------------------------------------------------------------------------------------

    def info(self) -> CollectionInfo | None:
        with self._lock:
            if not self.shard_path.is_dir():
                return None
            shard = self._open()
            assert self._meta is not None
            return CollectionInfo(
                name=self.collection,
                dim=int(self._meta["dim"]),
                points=int(shard.info().points_count),
                model=str(self._meta["model"]),
            )

    def recreate(self, dim: int, model: str) -> None:
        dim, model = _check_spec(dim, model)
        from qdrant_edge import (
            Distance,
            EdgeConfig,
            EdgeOptimizersConfig,
            EdgeShard,
            EdgeVectorParams,
            HnswIndexConfig,
            PayloadSchemaType,
            UpdateOperation,
        )

        # qdrant's own plain-vs-HNSW switch (per segment, and per filter cardinality) agrees with ours:
        # full scan at or below exact_search_max_points points. indexing_threshold 1 KB: optimize()
        # (which we only call above that threshold) always builds HNSW.
        full_scan_kb = math.ceil(max(self.exact_search_max_points, 0) * dim * 4 / 1024)
        hnsw = {"m": HNSW_M, "ef_construct": HNSW_EF_CONSTRUCT, "full_scan_threshold_kb": full_scan_kb}
        config = EdgeConfig(
            vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine),
            hnsw_config=HnswIndexConfig(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=full_scan_kb),
            optimizers=EdgeOptimizersConfig(indexing_threshold=1),
        )
        with self._lock:
            if self.shard_path.is_dir():
                try:  # never wipe a shard another process has open
                    self._open()
                except VectorStoreLocked:
                    raise
                except VectorStoreError as exc:  # unreadable leftovers: wiping them is the point
                    log.warning("replacing unreadable collection: %s", exc)
            self.close()
            if self.meta_path.exists():
                self.meta_path.unlink()
            if self.shard_path.exists():
                shutil.rmtree(self.shard_path)
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                shard = EdgeShard.create(str(self.shard_path), config)
            except Exception as exc:
                raise VectorStoreError(
                    f"cannot create collection {self.collection} at {self.shard_path}: {exc}"
                ) from exc
            shard.update(UpdateOperation.create_field_index(SERIES_FIELD, PayloadSchemaType.Integer))
            meta = {
                "collection": self.collection,
                "model": model,
                "dim": dim,
                "distance": "cosine",
                "hnsw": hnsw,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            self._write_meta(meta)
            self._shard, self._meta = shard, meta
        log.info("created collection %s (%d-d, %s) at %s", self.collection, dim, model, self.shard_path)

    def ensure(self, dim: int, model: str) -> None:
        dim, model = _check_spec(dim, model)
        with self._lock:
            info = self.info()
            if info is None:
                self.recreate(dim, model)
            elif info.dim != dim or info.model != model:
                raise _mismatch(info.name, info.dim, info.model, dim, model)

    def upsert(self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict]) -> None:
        from qdrant_edge import Point, UpdateOperation

        point_ids = _as_ids(ids)
        matrix = _as_matrix(vectors, self._dim())
        if not (len(point_ids) == len(matrix) == len(payloads)):
            raise VectorStoreError(
                f"upsert needs as many ids, vectors and payloads: {len(point_ids)}, {len(matrix)}, {len(payloads)}"
            )
        with self._lock:
            shard = self._open()
            for start in range(0, len(point_ids), self.UPSERT_BATCH):
                stop = start + self.UPSERT_BATCH
                points = [
                    Point(i, v.tolist(), _plain(dict(p or {})))
                    for i, v, p in zip(point_ids[start:stop], matrix[start:stop], payloads[start:stop])
                ]
                shard.update(UpdateOperation.upsert_points(points))

    def finalize(self) -> None:
        with self._lock:
            shard = self._open()
            points = int(shard.info().points_count)
            if points > self.exact_search_max_points:
                started = time.perf_counter()
                shard.optimize()
                log.info(
                    "built HNSW for %s (%d points) in %.1f s", self.collection, points, time.perf_counter() - started
                )
            shard.flush()

    def ids(self) -> np.ndarray:
        from qdrant_edge import ScrollRequest

        out: list[int] = []
        with self._lock:
            shard = self._open()
            offset = None
            while True:
                records, offset = shard.scroll(
                    ScrollRequest(offset=offset, limit=self.PAGE, with_payload=False, with_vector=False)
                )
                out.extend(int(r.id) for r in records)
                if offset is None or not records:
                    break
        return np.unique(np.asarray(out, dtype=np.int64))

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        wanted = list(dict.fromkeys(_as_ids(ids)))
        shard = self._open()
        found: dict[int, np.ndarray] = {}
        for chunk in _chunks(wanted, self.PAGE):
            for record in shard.retrieve(list(chunk), False, True):
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
        shard = self._open()
        matrix = _as_matrix(vector, self._dim(), "query vector")
        if len(matrix) != 1:
            raise VectorStoreError(f"search takes one query vector, got {len(matrix)}: use search_batch")
        if k <= 0:
            return []
        excluded = {int(i) for i in exclude}
        request = self._request(matrix[0], k, excluded, self._use_exact(exact), series_id)
        return _ranked(((p.id, p.score) for p in shard.query(request)), k, excluded)

    def search_batch(
        self,
        vectors: np.ndarray,
        k: int,
        exclude: Sequence[Sequence[int]] | None = None,
        *,
        exact: bool | None = None,
        series_id: int | None = None,
    ) -> list[list[tuple[int, float]]]:
        from qdrant_edge import QueryBatchRequest

        shard = self._open()
        matrix = _as_matrix(vectors, self._dim(), "query vectors")
        excluded = _excludes(exclude, len(matrix))
        if k <= 0:
            return [[] for _ in matrix]
        use_exact = self._use_exact(exact)
        out: list[list[tuple[int, float]]] = []
        for start in range(0, len(matrix), self.QUERY_BATCH):
            stop = start + self.QUERY_BATCH
            requests = [
                self._request(v, k, e, use_exact, series_id) for v, e in zip(matrix[start:stop], excluded[start:stop])
            ]
            results = shard.query_batch(QueryBatchRequest(requests))
            out.extend(
                _ranked(((p.id, p.score) for p in hits), k, e) for hits, e in zip(results, excluded[start:stop])
            )
        return out

    # -- query building -------------------------------------------------------------------------------

    def _use_exact(self, exact: bool | None) -> bool:
        return exact if exact is not None else self._points() <= self.exact_search_max_points

    def _request(self, vector: np.ndarray, k: int, excluded: set[int], exact: bool, series_id: int | None) -> Any:
        from qdrant_edge import FieldCondition, Filter, HasIdCondition, MatchValue, Query, QueryRequest, SearchParams

        limit = k + TIE_SLACK
        must_not = None
        if excluded:
            if len(excluded) <= self.overfetch_max_exclude:
                limit += len(excluded)
            else:
                must_not = [HasIdCondition(set(excluded))]
        must = [FieldCondition(SERIES_FIELD, match=MatchValue(int(series_id)))] if series_id is not None else None
        return QueryRequest(
            limit=limit,
            query=Query.Nearest(vector.tolist()),
            filter=Filter(must=must, must_not=must_not) if (must or must_not) else None,
            params=SearchParams(hnsw_ef=max(self.hnsw_ef, limit), exact=exact),
            with_payload=False,
            with_vector=False,
        )


# ---------------------------------------------------------------------------------------------------
# server: qdrant-client


class ServerVectorStore:
    """A collection on a Qdrant server (or in qdrant-client's local mode) through qdrant-client.

    ``collection`` is an alias, and readers always go through it. recreate() builds a new physical
    collection ``<collection>_v<n>`` (``shards`` x ``replicas`` on a server) that only this store
    writes and reads; finalize() then points the alias at it in one atomic alias operation and drops
    the collection it replaced (and leftovers of interrupted rebuilds), so a rebuild never serves half
    an index. Without recreate, upserts update the live collection in place. A plain collection named
    ``<collection>`` (built before aliases) is read as it is and replaced by the alias at the next rebuild.

    Model and dimension live in the collection's ``metadata`` (Qdrant >= 1.16); on a server that drops
    it, in a one-point side collection ``<physical>__meta``. The store owns the client: close() closes it.
    Exclusion uses a ``must_not`` HasId filter. Extra keyword-only ``exact`` / ``series_id`` arguments
    of search / search_batch as on the edge backend (``exact=None`` lets the server plan).
    """

    UPSERT_BATCH = 256
    QUERY_BATCH = 64
    PAGE = 1024

    def __init__(
        self, client: QdrantClient, collection: str, hnsw_ef: int = 128, *, shards: int = 1, replicas: int = 1
    ) -> None:
        self.client = client
        self.collection = collection
        self.hnsw_ef = int(hnsw_ef)
        self.shards = int(shards)
        self.replicas = int(replicas)
        self._building: str | None = None  # physical collection of a rebuild, until finalize() switches to it
        self._meta: dict[str, Any] | None = None  # cached {"model", "dim"} of an existing collection
        options = getattr(client, "init_options", None) or {}
        # qdrant-client's local mode always searches exactly and warns about any search params
        self._local = options.get("location") == ":memory:" or bool(options.get("path"))

    def close(self) -> None:
        self._meta = None
        self.client.close()

    def __enter__(self) -> ServerVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- names ----------------------------------------------------------------------------------------

    def _target(self) -> str:
        """The name this store reads and writes: the collection being rebuilt, else the alias."""
        return self._building or self.collection

    def _aliased(self) -> str | None:
        """The physical collection behind the alias (or a pre-alias collection of that name), else None."""
        for alias in self.client.get_aliases().aliases:
            if alias.alias_name == self.collection:
                return alias.collection_name
        names = {c.name for c in self.client.get_collections().collections}
        return self.collection if self.collection in names else None

    def _versions(self) -> dict[int, str]:
        """This alias's physical collections ``<collection>_v<n>`` by n."""
        pattern = re.compile(rf"{re.escape(self.collection)}_v(\d+)")
        matches = (pattern.fullmatch(c.name) for c in self.client.get_collections().collections)
        return {int(m.group(1)): m.group(0) for m in matches if m}

    def _drop(self, physical: str) -> None:
        """Delete a physical collection and its side metadata collection, if they exist."""
        names = {c.name for c in self.client.get_collections().collections}
        for name in (physical, f"{physical}__meta"):
            if name in names:
                self.client.delete_collection(name)

    # -- metadata -----------------------------------------------------------------------------------

    def _load_meta(self) -> dict[str, Any] | None:
        """{"model", "dim"} of the collection, None when it doesn't exist."""
        if self._meta is not None:
            return self._meta
        physical = self._building or self._aliased()
        if physical is None:
            return None
        config = self.client.get_collection(physical).config
        vectors = config.params.vectors
        if isinstance(vectors, dict):
            vectors = vectors.get("") or next(iter(vectors.values()), None)
        dim = int(vectors.size) if vectors is not None else 0
        metadata = dict(getattr(config, "metadata", None) or {})
        side = f"{physical}__meta"
        if "model" not in metadata and self.client.collection_exists(side):
            records = self.client.retrieve(side, ids=[0], with_payload=True)
            if records:
                metadata = dict(records[0].payload or {})
        self._meta = {"model": str(metadata.get("model", "")), "dim": dim}
        return self._meta

    def _dim(self) -> int:
        meta = self._load_meta()
        if meta is None:
            raise VectorStoreError(f"collection {self.collection} does not exist on the Qdrant server: build it first")
        return int(meta["dim"])

    # -- protocol -------------------------------------------------------------------------------------

    def info(self) -> CollectionInfo | None:
        meta = self._load_meta()
        if meta is None:
            return None
        points = self.client.count(self._target(), exact=True).count
        return CollectionInfo(name=self.collection, dim=int(meta["dim"]), points=int(points), model=meta["model"])

    def recreate(self, dim: int, model: str) -> None:
        """Start a rebuild in a new physical collection; readers keep the current one until finalize()."""
        from qdrant_client import models

        dim, model = _check_spec(dim, model)
        self._meta = None
        if self._building is not None:
            self._drop(self._building)
            self._building = None
        physical = f"{self.collection}_v{max(self._versions(), default=0) + 1}"
        metadata = {"model": model, "dim": dim, "distance": "cosine"}
        self.client.create_collection(
            physical,
            vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
            shard_number=self.shards,
            replication_factor=self.replicas,
            metadata=metadata,
        )
        with warnings.catch_warnings():  # local mode: "Payload indexes have no effect in the local Qdrant"
            warnings.simplefilter("ignore", UserWarning)
            self.client.create_payload_index(physical, SERIES_FIELD, models.PayloadSchemaType.INTEGER)
        stored = getattr(self.client.get_collection(physical).config, "metadata", None) or {}
        if stored.get("model") != model:  # server without collection metadata: side collection
            self.client.create_collection(
                f"{physical}__meta", vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT)
            )
            self.client.upsert(
                f"{physical}__meta", points=[models.PointStruct(id=0, vector=[1.0], payload=metadata)], wait=True
            )
        self._building = physical
        self._meta = {"model": model, "dim": dim}
        log.info("building collection %s (%d-d, %s) for alias %s", physical, dim, model, self.collection)

    def ensure(self, dim: int, model: str) -> None:
        dim, model = _check_spec(dim, model)
        meta = self._load_meta()
        if meta is None:
            self.recreate(dim, model)
        elif meta["dim"] != dim or meta["model"] != model:
            raise _mismatch(self.collection, int(meta["dim"]), meta["model"], dim, model)

    def upsert(self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict]) -> None:
        from qdrant_client import models

        point_ids = _as_ids(ids)
        matrix = _as_matrix(vectors, self._dim())
        if not (len(point_ids) == len(matrix) == len(payloads)):
            raise VectorStoreError(
                f"upsert needs as many ids, vectors and payloads: {len(point_ids)}, {len(matrix)}, {len(payloads)}"
            )
        for start in range(0, len(point_ids), self.UPSERT_BATCH):
            stop = start + self.UPSERT_BATCH
            batch = models.Batch(
                ids=point_ids[start:stop],
                vectors=matrix[start:stop].tolist(),
                payloads=[_plain(dict(p or {})) for p in payloads[start:stop]],
            )
            self.client.upsert(self._target(), points=batch, wait=True)

    def finalize(self) -> None:
        """Switch the alias to a rebuilt collection and drop older ones; after incremental upserts there
        is nothing to do (the server indexes in the background and upserts wait for durability)."""
        from qdrant_client import models

        self._dim()
        if self._building is None:
            return
        built, replaced = self._building, self._aliased()
        if replaced == self.collection:  # a pre-alias collection holds the name the alias needs
            self._drop(replaced)
        alias = self.collection
        operations: list[Any] = []
        if replaced is not None and replaced != alias:
            operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        operations.append(
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=built, alias_name=alias))
        )
        self.client.update_collection_aliases(change_aliases_operations=operations)  # one atomic switch
        self._building = None
        built_version = int(built.rsplit("_v", 1)[1])
        for version, name in self._versions().items():
            if version < built_version:
                self._drop(name)
        log.info("alias %s now points at %s", self.collection, built)

    def ids(self) -> np.ndarray:
        self._dim()
        out: list[int] = []
        offset = None
        while True:
            records, offset = self.client.scroll(
                self._target(), limit=self.PAGE, offset=offset, with_payload=False, with_vectors=False
            )
            out.extend(int(r.id) for r in records)
            if offset is None or not records:
                break
        return np.unique(np.asarray(out, dtype=np.int64))

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        self._dim()
        wanted = list(dict.fromkeys(_as_ids(ids)))
        found: dict[int, np.ndarray] = {}
        for chunk in _chunks(wanted, self.PAGE):
            for record in self.client.retrieve(self._target(), ids=list(chunk), with_payload=False, with_vectors=True):
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
        return self.search_batch(np.asarray(vector)[None, :] if np.ndim(vector) == 1 else vector, k, [exclude],
                                 exact=exact, series_id=series_id)[0]

    def search_batch(
        self,
        vectors: np.ndarray,
        k: int,
        exclude: Sequence[Sequence[int]] | None = None,
        *,
        exact: bool | None = None,
        series_id: int | None = None,
    ) -> list[list[tuple[int, float]]]:
        from qdrant_client import models

        matrix = _as_matrix(vectors, self._dim(), "query vectors")
        excluded = _excludes(exclude, len(matrix))
        if k <= 0:
            return [[] for _ in matrix]
        must = (
            [models.FieldCondition(key=SERIES_FIELD, match=models.MatchValue(value=int(series_id)))]
            if series_id is not None
            else None
        )
        limit = k + TIE_SLACK
        params = None if self._local else models.SearchParams(hnsw_ef=max(self.hnsw_ef, limit), exact=bool(exact))
        requests = []
        for v, e in zip(matrix, excluded):
            must_not = [models.HasIdCondition(has_id=sorted(e))] if e else None
            requests.append(
                models.QueryRequest(
                    query=v.tolist(),
                    limit=limit,
                    filter=models.Filter(must=must, must_not=must_not) if (must or must_not) else None,
                    params=params,
                    with_payload=False,
                    with_vector=False,
                )
            )
        out: list[list[tuple[int, float]]] = []
        for chunk, chunk_excluded in zip(_chunks(requests, self.QUERY_BATCH), _chunks(excluded, self.QUERY_BATCH)):
            responses = self.client.query_batch_points(self._target(), requests=list(chunk))
            out.extend(
                _ranked(((p.id, p.score) for p in r.points), k, e) for r, e in zip(responses, chunk_excluded)
            )
        return out
