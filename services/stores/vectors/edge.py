"""The embedded backend: a qdrant-edge shard on local disk (no server)."""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from services.stores.atomic import write_text_atomic
from services.stores.errors import reason
from services.stores.scratch import private_dir
from services.stores.vectors.base import (
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    OVERFETCH_MAX_EXCLUDE,
    SERIES_FIELD,
    TIE_SLACK,
    BaseVectorStore,
    CollectionInfo,
    VectorStoreError,
    VectorStoreLocked,
    _check_spec,
    _mismatch,
)

if TYPE_CHECKING:
    from qdrant_edge import ConditionType  # declared in the stub only

log = logging.getLogger(__name__)
COPY_PREFIX = "nextwatch-vectors-"  # a private shard copy: nextwatch-vectors-<pid>-...
# qdrant-edge's files of an atomic write in progress (the reader that opens the shard in place writes some as it
# loads): never part of a shard, and gone (renamed) before a copy that listed them reaches them
IN_PROGRESS = shutil.ignore_patterns(".atomicwrite*")


class EdgeVectorStore(BaseVectorStore):
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
        *,
        copy_when_locked: bool = False,
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
        self._copy: Path | None = None  # the private copy a read-only (or, reading, a locked) shard is opened from
        self._copy_when_locked = copy_when_locked
        self._claimed: int | None = None  # a reader's claim on the shard where it is (see _loadable)

    # -- locations and metadata -------------------------------------------------------------------

    @property
    def shard_path(self) -> Path:
        return self.path / self.collection

    @property
    def meta_path(self) -> Path:
        return self.path / f"{self.collection}.json"

    def _read_meta(self) -> dict[str, Any]:
        """The model and dimension stored with the shard; VectorStoreError when missing or unreadable (a
        shard without them is what a build killed while creating the collection leaves)."""
        try:
            return dict(json.loads(self.meta_path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise VectorStoreError(
                f"metadata {self.meta_path} of collection {self.collection} is missing or "
                f"unreadable ({reason(exc)}): run `nextwatch embed --recreate`"
            ) from exc

    def _write_meta(self, meta: dict[str, Any]) -> None:
        write_text_atomic(self.meta_path, json.dumps(meta, indent=2, sort_keys=True))

    # -- shard lifecycle ----------------------------------------------------------------------------

    def _open(self) -> Any:
        """The open shard; raises VectorStoreError when the collection doesn't exist or is locked."""
        with self._lock:
            if self._shard is None:
                if not self.shard_path.is_dir():
                    raise VectorStoreError(
                        f"collection {self.collection} does not exist under {self.path}: run `nextwatch embed`"
                    )
                from qdrant_edge import EdgeShard

                meta = self._read_meta()
                try:
                    try:
                        self._shard = EdgeShard.load(str(self._loadable()))
                    except Exception as exc:
                        if "WouldBlock" not in str(exc) or not self._copy_when_locked:
                            raise
                        self._shard = EdgeShard.load(str(self._private_copy()))  # a reader beside another
                except Exception as exc:
                    if "WouldBlock" in str(exc):
                        raise VectorStoreLocked(
                            f"collection {self.collection} at {self.shard_path} is open in another process "
                            "or store (qdrant-edge allows one at a time): close it and retry"
                        ) from exc
                    raise VectorStoreError(
                        f"cannot open collection {self.collection} at {self.shard_path} ({reason(exc)}): "
                        "run `nextwatch embed --recreate`"
                    ) from exc
                self._meta = meta
            return self._shard

    def _loadable(self) -> Path:
        """The shard's directory, or where it cannot be written (a read-only volume) a private copy of it
        in the temporary directory: qdrant-edge writes beside its files even to read them. Readers claim the
        shard first (`_claim`): one opens it where it is, the others copy it at once (qdrant-edge locks it only
        after loading its segments, and what a failed load allocated stays with the process: about 36 MB per
        extra server worker at 87k points)."""
        if self._copy_when_locked and self._claimed is None:
            self._claimed = _claim(self.shard_path)
        if os.access(self.shard_path, os.W_OK) and (not self._copy_when_locked or self._claimed is not None):
            return self.shard_path
        return self._private_copy()

    def _private_copy(self) -> Path:
        """A copy of the shard in a private temporary directory, removed by close() (or, when the process was
        killed, by the next process that copies a shard)."""
        self._copy = private_dir(COPY_PREFIX)
        copy = Path(
            shutil.copytree(
                self.shard_path, self._copy / self.collection, ignore=IN_PROGRESS, copy_function=shutil.copyfile
            )
        )
        for path in (copy, *copy.rglob("*")):
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
        return copy

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
            if self._copy is not None:
                shutil.rmtree(self._copy, ignore_errors=True)
                self._copy = None
            if self._claimed is not None:
                os.close(self._claimed)
                self._claimed = None

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

    # -- engine calls (BaseVectorStore does checks, batching and ranking) --------------------------------

    def _write(self, ids: list[int], matrix: np.ndarray, payloads: list[dict]) -> None:
        from qdrant_edge import Point, UpdateOperation

        with self._lock:
            points = [Point(i, v.tolist(), p) for i, v, p in zip(ids, matrix, payloads)]
            self._open().update(UpdateOperation.upsert_points(points))

    def _page(self, offset: Any) -> tuple[list[Any], Any]:
        from qdrant_edge import ScrollRequest

        with self._lock:
            request = ScrollRequest(offset=offset, limit=self.PAGE, with_payload=False, with_vector=False)
            records, offset = self._open().scroll(request)
        return list(records), offset

    def _retrieve(self, ids: list[int]) -> list[Any]:
        return list(self._open().retrieve(ids, False, True))

    def _query(
        self, matrix: np.ndarray, k: int, excluded: list[set[int]], exact: bool | None, series_id: int | None
    ) -> list[Iterable[tuple[int, float]]]:
        from qdrant_edge import QueryBatchRequest

        use_exact = self._use_exact(exact)
        requests = [self._request(v, k, e, use_exact, series_id) for v, e in zip(matrix, excluded)]
        results = self._open().query_batch(QueryBatchRequest(requests))
        return [((p.id, p.score) for p in hits) for hits in results]

    # -- query building -------------------------------------------------------------------------------

    def _use_exact(self, exact: bool | None) -> bool:
        return exact if exact is not None else self._points() <= self.exact_search_max_points

    def _request(self, vector: np.ndarray, k: int, excluded: set[int], exact: bool, series_id: int | None) -> Any:
        from qdrant_edge import FieldCondition, Filter, HasIdCondition, MatchValue, Query, QueryRequest, SearchParams

        limit = k + TIE_SLACK
        must_not: list[ConditionType] | None = None
        if excluded:
            if len(excluded) <= self.overfetch_max_exclude:
                limit += len(excluded)
            else:
                must_not = [HasIdCondition(set(excluded))]
        must: list[ConditionType] | None = (
            [FieldCondition(SERIES_FIELD, match=MatchValue(int(series_id)))] if series_id is not None else None
        )
        return QueryRequest(
            limit=limit,
            query=Query.Nearest(vector.tolist()),
            filter=Filter(must=must, must_not=must_not) if (must or must_not) else None,
            params=SearchParams(hnsw_ef=max(self.hnsw_ef, limit), exact=exact),
            with_payload=False,
            with_vector=False,
        )


def _claim(shard: Path) -> int | None:
    """A descriptor of the shard's directory holding an exclusive flock (released when it is closed), or None
    when another reader holds it."""
    fd = os.open(shard, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
