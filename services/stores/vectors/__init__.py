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

from typing import TYPE_CHECKING, Any

import numpy as np

from services.stores.vectors.base import (
    SERIES_FIELD,
    BaseVectorStore,
    CollectionInfo,
    VectorStore,
    VectorStoreError,
    VectorStoreLocked,
)
from services.stores.vectors.edge import EdgeVectorStore
from services.stores.vectors.server import ServerVectorStore

if TYPE_CHECKING:  # pragma: no cover
    from services.settings import Settings

__all__ = [
    "SERIES_FIELD",
    "BaseVectorStore",
    "CollectionInfo",
    "EdgeVectorStore",
    "ServerVectorStore",
    "VectorStore",
    "VectorStoreError",
    "VectorStoreLocked",
    "measure_recall",
    "open_vector_store",
]


def open_vector_store(settings: Settings, *, reader: bool = False) -> VectorStore:
    """Embedded qdrant-edge shard under settings.qdrant_path when settings.qdrant.url is empty, else a
    Qdrant server via qdrant-client (``":memory:"`` selects qdrant-client's in-process mode). A `reader`
    (the server: it only searches) reads an embedded shard that another process has open from a private
    copy, so every worker of `nextwatch serve --workers N` has the vectors."""
    if not settings.qdrant.url:
        return EdgeVectorStore(
            settings.qdrant_path,
            settings.qdrant.collection,
            settings.qdrant.hnsw_ef,
            settings.qdrant.exact_search_max_points,
            copy_when_locked=reader,
        )
    from qdrant_client import QdrantClient

    if settings.qdrant.url == ":memory:":
        client = QdrantClient(location=":memory:")
    else:
        client = QdrantClient(url=settings.qdrant.url, api_key=settings.qdrant.api_key)
    return ServerVectorStore(
        client,
        settings.qdrant.collection,
        settings.qdrant.hnsw_ef,
        shards=settings.qdrant.shards,
        replicas=settings.qdrant.replicas,
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
