"""The server backend: a Qdrant server (or qdrant-client's local mode) through qdrant-client, with alias switches."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from services.stores.vectors.base import (
    SERIES_FIELD,
    TIE_SLACK,
    BaseVectorStore,
    CollectionInfo,
    VectorStoreError,
    _check_spec,
    _mismatch,
)

if TYPE_CHECKING:  # pragma: no cover
    from qdrant_client import QdrantClient

log = logging.getLogger(__name__)


class ServerVectorStore(BaseVectorStore):
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

    # -- engine calls (BaseVectorStore does checks, batching and ranking) --------------------------------

    def _write(self, ids: list[int], matrix: np.ndarray, payloads: list[dict]) -> None:
        from qdrant_client import models

        batch = models.Batch(ids=list(ids), vectors=matrix.tolist(), payloads=payloads)
        self.client.upsert(self._target(), points=batch, wait=True)

    def _page(self, offset: Any) -> tuple[list[Any], Any]:
        records, offset = self.client.scroll(
            self._target(), limit=self.PAGE, offset=offset, with_payload=False, with_vectors=False
        )
        return list(records), offset

    def _retrieve(self, ids: list[int]) -> list[Any]:
        return list(self.client.retrieve(self._target(), ids=ids, with_payload=False, with_vectors=True))

    def _query(
        self, matrix: np.ndarray, k: int, excluded: list[set[int]], exact: bool | None, series_id: int | None
    ) -> list[Iterable[tuple[int, float]]]:
        from qdrant_client import models

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
        responses = self.client.query_batch_points(self._target(), requests=requests)
        # point ids are the int movie ids this store upserts; qdrant types them as int | str | UUID
        return [((cast(int, p.id), p.score) for p in r.points) for r in responses]
