"""The Qdrant server backend's alias switch, through qdrant-client's local mode (the same client calls).

A "reader" is a second store on the same client, standing in for the API process: it holds no
rebuild of its own, so it sees exactly what the alias points at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from services.settings import Settings
from services.stores.vectors import CollectionInfo, ServerVectorStore, open_vector_store

N, DIM = 120, 16
NAME = "movies_test"


def _unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def _data(seed: int, dim: int = DIM) -> tuple[list[int], np.ndarray, list[dict]]:
    vectors = _unit(np.random.default_rng(seed).normal(size=(N, dim)))
    return list(range(1, N + 1)), vectors, [{"series_id": None, "genres": [], "year": None}] * N


@pytest.fixture
def client() -> Iterator[QdrantClient]:
    c = QdrantClient(location=":memory:")
    yield c
    c.close()


def _store(client: QdrantClient, **kwargs: int) -> ServerVectorStore:
    return ServerVectorStore(client, NAME, **kwargs)


def _build(store: ServerVectorStore, model: str, seed: int, *, dim: int = DIM, recreate: bool = False) -> None:
    ids, vectors, payloads = _data(seed, dim)
    if recreate:
        store.recreate(dim, model)
    else:
        store.ensure(dim, model)
    store.upsert(ids, vectors, payloads)
    store.finalize()


def _physical(client: QdrantClient) -> set[str]:
    return {c.name for c in client.get_collections().collections}


def _alias_target(client: QdrantClient) -> str | None:
    return next((a.collection_name for a in client.get_aliases().aliases if a.alias_name == NAME), None)


def test_first_build_becomes_visible_at_finalize(client: QdrantClient) -> None:
    builder = _store(client)
    ids, vectors, payloads = _data(1)
    builder.ensure(DIM, "m1")
    builder.upsert(ids, vectors, payloads)
    assert builder.info().points == N  # the builder reads its own collection...
    assert _store(client).info() is None  # ...nobody else does yet
    builder.finalize()
    assert _store(client).info() == CollectionInfo(name=NAME, dim=DIM, points=N, model="m1")
    assert _physical(client) == {f"{NAME}_v1"} and _alias_target(client) == f"{NAME}_v1"


def test_rebuild_serves_the_old_index_until_the_switch(client: QdrantClient) -> None:
    _build(_store(client), "m1", seed=1)
    old_ids, old_vectors, _ = _data(1)
    before = _store(client).search(old_vectors[0], 5)

    builder = _store(client)
    ids, vectors, payloads = _data(2, dim=8)
    builder.recreate(8, "m2")
    builder.upsert(ids[: N // 2], vectors[: N // 2], payloads[: N // 2])  # half-built
    reader = _store(client)
    assert reader.info() == CollectionInfo(name=NAME, dim=DIM, points=N, model="m1")
    assert reader.search(old_vectors[0], 5) == before
    assert _alias_target(client) == f"{NAME}_v1"

    builder.upsert(ids[N // 2 :], vectors[N // 2 :], payloads[N // 2 :])
    builder.finalize()
    after = _store(client)
    assert after.info() == CollectionInfo(name=NAME, dim=8, points=N, model="m2")
    assert after.search(vectors[3], 1)[0][0] == ids[3]
    assert _physical(client) == {f"{NAME}_v2"}  # the replaced collection is gone
    assert _alias_target(client) == f"{NAME}_v2"


def test_incremental_upsert_updates_the_live_collection(client: QdrantClient) -> None:
    _build(_store(client), "m1", seed=1)
    store = _store(client)
    store.ensure(DIM, "m1")
    store.upsert([10_000], _unit(np.ones((1, DIM))), [{"series_id": 7}])
    store.finalize()
    assert _store(client).info().points == N + 1
    assert _physical(client) == {f"{NAME}_v1"}


def test_an_interrupted_rebuild_is_cleaned_up_by_the_next(client: QdrantClient) -> None:
    _build(_store(client), "m1", seed=1)
    crashed = _store(client)
    crashed.recreate(DIM, "m2")
    crashed.upsert(*_data(2))  # ...and the process dies before finalize()
    assert _store(client).info().model == "m1"
    _build(_store(client), "m3", seed=3, recreate=True)
    assert _physical(client) == {f"{NAME}_v3"}
    assert _store(client).info() == CollectionInfo(name=NAME, dim=DIM, points=N, model="m3")


def test_a_pre_alias_collection_is_read_then_replaced(client: QdrantClient) -> None:
    """A collection named like the alias, as built before aliases, keeps serving until the first rebuild."""
    client.create_collection(
        NAME,
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
        metadata={"model": "m0", "dim": DIM},
    )
    ids, vectors, payloads = _data(1)
    client.upsert(NAME, points=models.Batch(ids=ids, vectors=vectors.tolist(), payloads=payloads), wait=True)
    assert _store(client).info() == CollectionInfo(name=NAME, dim=DIM, points=N, model="m0")

    _build(_store(client), "m1", seed=2, recreate=True)
    assert _physical(client) == {f"{NAME}_v1"} and _alias_target(client) == f"{NAME}_v1"
    assert _store(client).info().model == "m1"


def test_shards_and_replicas_reach_the_server(client: QdrantClient, monkeypatch: pytest.MonkeyPatch) -> None:
    created: dict[str, dict] = {}
    real = client.create_collection

    def spy(name: str, **kwargs: object) -> bool:
        created[name] = kwargs
        return real(name, **kwargs)

    monkeypatch.setattr(client, "create_collection", spy)
    _build(_store(client, shards=6, replicas=2), "m1", seed=1)
    assert created[f"{NAME}_v1"]["shard_number"] == 6
    assert created[f"{NAME}_v1"]["replication_factor"] == 2


def test_open_vector_store_passes_shards_and_replicas(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, qdrant_url=":memory:", qdrant_shards=4, qdrant_replicas=3)
    with open_vector_store(settings) as store:
        assert isinstance(store, ServerVectorStore)
        assert (store.shards, store.replicas) == (4, 3)
