"""Both vector store backends against numpy exact cosine search, on small seeded data."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from services.settings import Settings
from services.stores.vectors import (
    CollectionInfo,
    EdgeVectorStore,
    ServerVectorStore,
    VectorStoreError,
    VectorStoreLocked,
    measure_recall,
    open_vector_store,
)
from services.stores.vectors.edge import COPY_PREFIX

N, DIM, MODEL = 500, 32, "test-model-32"
K = 10


def unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, seed: int, clusters: int | None = None, spread: float = 1.0) -> np.ndarray:
    """L2-normalised points around random centres (a stand-in for text embeddings)."""
    rng = np.random.default_rng(seed)
    clusters = clusters or max(2, n // 60)
    centres = unit(rng.normal(size=(clusters, dim)))
    labels = rng.integers(0, clusters, n)
    return unit(centres[labels] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, list[dict]]:
    rng = np.random.default_rng(7)
    ids = rng.choice(np.arange(1, 200_000), size=N, replace=False).astype(np.int64)
    vectors = clustered(N, DIM, seed=7)
    payloads = [
        {
            "series_id": int(i % 40) if i % 3 == 0 else None,
            "genres": ["Drama", "Comedy"][: int(i % 3)],
            "year": 1950 + int(i % 70),
        }
        for i in ids
    ]
    return ids, vectors, payloads


def exact_top(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int, exclude=()) -> list[tuple[int, float]]:
    scores = vectors @ query
    order = sorted(range(len(ids)), key=lambda j: (-scores[j], ids[j]))
    excluded = set(int(e) for e in exclude)
    return [(int(ids[j]), float(scores[j])) for j in order if int(ids[j]) not in excluded][:k]


def make_store(kind: str, tmp_path: Path, *, on_disk: bool = False, **edge_kwargs):
    """edge: a shard in tmp_path; server: qdrant-client local mode (in memory unless on_disk)."""
    if kind == "edge":
        options = {"hnsw_ef": 128, "exact_search_max_points": 20_000, **edge_kwargs}
        return EdgeVectorStore(tmp_path / "qdrant", "movies_test", **options)
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(tmp_path / "qdrant-local")) if on_disk else QdrantClient(location=":memory:")
    return ServerVectorStore(client, "movies_test", hnsw_ef=128)


@pytest.fixture(params=["edge", "server"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator:
    s = make_store(kind, tmp_path)
    yield s
    s.close()


def load(store, data):
    ids, vectors, payloads = data
    store.ensure(DIM, MODEL)
    store.upsert(ids, vectors, payloads)
    store.finalize()
    return store


@pytest.fixture
def loaded(store, data):
    """A loaded store a test may modify."""
    return load(store, data)


@pytest.fixture(scope="module", params=["edge", "server"])
def shared(request, data, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A loaded store shared by the read-only tests (building one costs ~0.5 s of fsyncs on edge)."""
    s = load(make_store(request.param, tmp_path_factory.mktemp(request.param)), data)
    yield s
    s.close()


def assert_same_hits(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_missing_collection(store) -> None:
    assert store.info() is None
    with pytest.raises(VectorStoreError, match="does not exist"):
        store.search(np.ones(DIM, dtype=np.float32), 5)


def test_round_trip_and_info(shared, data) -> None:
    ids, vectors, _ = data
    assert shared.info() == CollectionInfo(name="movies_test", dim=DIM, points=N, model=MODEL)
    got_ids = shared.ids()
    assert got_ids.dtype == np.int64
    assert got_ids.tolist() == sorted(ids.tolist())
    wanted = [int(ids[0]), int(ids[5]), 999_999_999, int(ids[42])]
    stored = shared.vectors(wanted)
    assert set(stored) == {int(ids[0]), int(ids[5]), int(ids[42])}
    for j in (0, 5, 42):
        np.testing.assert_allclose(stored[int(ids[j])], vectors[j], atol=1e-6)
        assert stored[int(ids[j])].dtype == np.float32


def test_search_matches_numpy(shared, data) -> None:
    ids, vectors, _ = data
    rng = np.random.default_rng(1)
    for query in unit(rng.normal(size=(20, DIM))):
        assert_same_hits(shared.search(query, K), exact_top(ids, vectors, query, K))


def test_exclude(shared, data) -> None:
    ids, vectors, _ = data
    query = vectors[3]
    top = [i for i, _ in exact_top(ids, vectors, query, 30)]
    for exclude in ([top[0]], top[:5], top[::2], ids[:200].tolist() + top[:3]):  # small (over-fetch) and big (filter)
        got = shared.search(query, K, exclude=exclude)
        assert not set(i for i, _ in got) & set(exclude)
        assert_same_hits(got, exact_top(ids, vectors, query, K, exclude))


def test_search_batch_equals_search(shared, data) -> None:
    ids, vectors, _ = data
    queries = vectors[:12]
    excludes = [[int(i)] for i in ids[:12]]
    excludes[3] = ids[100:300].tolist()
    batch = shared.search_batch(queries, K, exclude=excludes)
    assert len(batch) == 12
    for q, e, hits in zip(queries, excludes, batch):
        assert hits == shared.search(q, K, exclude=e)
    assert shared.search_batch(queries[:2], K) == [shared.search(queries[0], K), shared.search(queries[1], K)]


def test_k_beyond_size_and_ties(store) -> None:
    store.ensure(4, MODEL)
    twin = unit(np.array([[1.0, 1.0, 0.0, 0.0]]))[0]
    store.upsert(
        [30, 10, 20, 40], np.stack([twin, twin, twin, unit(np.array([[0.0, 0.0, 1.0, 0.0]]))[0]]), [{}, {}, {}, {}]
    )
    store.finalize()
    hits = store.search(twin, 50)
    assert [i for i, _ in hits] == [10, 20, 30, 40]  # equal scores: ascending id
    assert hits[0][1] == pytest.approx(1.0, abs=1e-6) and hits[3][1] == pytest.approx(0.0, abs=1e-6)
    assert store.search(twin, 50, exclude=[10, 40]) == [(20, hits[1][1]), (30, hits[2][1])]
    assert store.search(twin, 0) == []


def test_series_filter(shared, data) -> None:
    ids, vectors, payloads = data
    members = np.array([p["series_id"] == 3 for p in payloads])
    got = shared.search(vectors[0], K, series_id=3)
    assert_same_hits(got, exact_top(ids[members], vectors[members], vectors[0], K))


def test_ensure_mismatch_raises(shared) -> None:
    shared.ensure(DIM, MODEL)  # same spec: no-op
    with pytest.raises(VectorStoreError) as err:
        shared.ensure(1536, "text-embedding-ada-002")
    assert str(err.value) == (
        "collection movies_test holds 32-d vectors of test-model-32, "
        "configured 1536-d text-embedding-ada-002: rebuild with --recreate"
    )
    with pytest.raises(VectorStoreError, match="holds 32-d vectors of test-model-32, configured 32-d other"):
        shared.ensure(DIM, "other")
    assert shared.info().points == N  # untouched


def test_recreate_wipes(loaded) -> None:
    loaded.recreate(16, "another-model")
    assert loaded.info() == CollectionInfo(name="movies_test", dim=16, points=0, model="another-model")
    assert loaded.ids().tolist() == []
    assert loaded.search(unit(np.ones((1, 16)))[0], 5) == []


def test_bad_input(shared, data) -> None:
    ids, vectors, payloads = data
    with pytest.raises(VectorStoreError, match="shape"):
        shared.upsert(ids[:2], vectors[:2, :8], payloads[:2])
    with pytest.raises(VectorStoreError, match="as many"):
        shared.upsert(ids[:3], vectors[:2], payloads[:2])
    with pytest.raises(VectorStoreError, match="NaN"):
        shared.search(np.full(DIM, np.nan, dtype=np.float32), 3)
    with pytest.raises(VectorStoreError, match="non-negative"):
        shared.upsert([-1], vectors[:1], payloads[:1])


def test_incremental_upsert_overwrites(loaded, data) -> None:
    ids, vectors, _ = data
    new_vector = unit(np.random.default_rng(3).normal(size=(1, DIM)))
    loaded.upsert(
        [int(ids[0]), 1_000_000],
        np.vstack([new_vector, new_vector]),
        [{"series_id": np.int64(5), "genres": ("Drama",), "year": float("nan")}] * 2,
    )
    assert loaded.info().points == N + 1
    np.testing.assert_allclose(loaded.vectors([int(ids[0])])[int(ids[0])], new_vector[0], atol=1e-6)
    assert {i for i, _ in loaded.search(new_vector[0], 2)} == {int(ids[0]), 1_000_000}


def test_edge_reopen_keeps_data(tmp_path: Path, data) -> None:
    ids, vectors, payloads = data
    with make_store("edge", tmp_path) as first:
        first.ensure(DIM, MODEL)
        first.upsert(ids, vectors, payloads)
        first.finalize()
        before = first.search(vectors[9], K)
    assert (tmp_path / "qdrant" / "movies_test.json").exists()
    with make_store("edge", tmp_path) as second:
        assert second.info() == CollectionInfo(name="movies_test", dim=DIM, points=N, model=MODEL)
        assert second.search(vectors[9], K) == before
        with pytest.raises(VectorStoreError, match="configured 384-d"):
            second.ensure(384, MODEL)


def test_server_reopen_keeps_metadata(tmp_path: Path, data) -> None:
    ids, vectors, payloads = data
    with make_store("server", tmp_path, on_disk=True) as first:
        first.ensure(DIM, MODEL)
        first.upsert(ids[:50], vectors[:50], payloads[:50])
        first.finalize()  # the alias (and with it the collection) becomes visible here
    with make_store("server", tmp_path, on_disk=True) as second:
        assert second.info() == CollectionInfo(name="movies_test", dim=DIM, points=50, model=MODEL)


def test_edge_locked_by_other_process(tmp_path: Path, data) -> None:
    ids, vectors, payloads = data
    with make_store("edge", tmp_path) as holder:
        holder.ensure(DIM, MODEL)
        holder.upsert(ids[:10], vectors[:10], payloads[:10])
        script = textwrap.dedent(f"""
            from services.stores.vectors import EdgeVectorStore, VectorStoreLocked
            try:
                EdgeVectorStore({str(tmp_path / "qdrant")!r}, "movies_test").info()
            except VectorStoreLocked as exc:
                print("LOCKED", exc)
        """)
        out = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
            timeout=60,
        )
        assert "LOCKED" in out.stdout and "another process" in out.stdout, out.stderr
    assert issubclass(VectorStoreLocked, VectorStoreError)


def test_edge_second_reader_copies_into_its_own_directory(
    tmp_path: Path, data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second reader (another server worker) searches a private copy named for its process, gone at close; the
    copy leaves out the files of an atomic write the first reader has under way (renamed away mid-copy, they
    failed the second worker's open one start in about fifteen)."""
    ids, vectors, payloads = data
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with make_store("edge", tmp_path) as builder:
        builder.ensure(DIM, MODEL)
        builder.upsert(ids[:10], vectors[:10], payloads[:10])
        builder.finalize()
    first = EdgeVectorStore(tmp_path / "qdrant", "movies_test", copy_when_locked=True)
    second = EdgeVectorStore(tmp_path / "qdrant", "movies_test", copy_when_locked=True)
    try:
        expected = first.search(vectors[0], 3)
        (tmp_path / "qdrant" / "movies_test" / ".atomicwrite0a1b2c").write_bytes(b"half written")
        assert second.search(vectors[0], 3) == expected
        (copy,) = scratch.iterdir()
        assert copy.name.startswith(f"{COPY_PREFIX}{os.getpid()}-")
        assert not list(copy.rglob(".atomicwrite*"))
    finally:
        first.close()
        second.close()
    assert not any(scratch.iterdir())


def test_open_vector_store(tmp_path: Path) -> None:
    edge = open_vector_store(Settings(data_dir=tmp_path, qdrant_url="", collection="c1"))
    assert isinstance(edge, EdgeVectorStore) and edge.shard_path == tmp_path / "qdrant" / "c1"
    assert edge.info() is None
    edge.close()
    server = open_vector_store(Settings(data_dir=tmp_path, qdrant_url=":memory:", collection="c1", hnsw_ef=64))
    assert isinstance(server, ServerVectorStore) and server.hnsw_ef == 64
    server.ensure(8, MODEL)
    assert server.info() == CollectionInfo(name="c1", dim=8, points=0, model=MODEL)
    server.close()


def test_edge_hnsw_recall(tmp_path: Path) -> None:
    """The HNSW path (forced: exact_search_max_points=0 + finalize) against exact search."""
    n, dim = 3000, 32
    vectors = clustered(n, dim, seed=11)
    ids = np.arange(1, n + 1)
    with make_store("edge", tmp_path, exact_search_max_points=0) as store:
        store.ensure(dim, MODEL)
        store.upsert(ids, vectors, [{"series_id": None, "genres": [], "year": None}] * n)
        store.finalize()
        shard_info = store._open().info()
        assert shard_info.indexed_vectors_count == n  # HNSW really built
        queries = vectors[np.random.default_rng(0).choice(n, 300, replace=False)]
        approx = store.search_batch(queries, K)
        truth = store.search_batch(queries, K, exact=True)
        recall = np.mean([len({i for i, _ in a} & {i for i, _ in t}) / K for a, t in zip(approx, truth)])
        assert recall >= 0.99, recall
        assert measure_recall(store, k=K, sample=200) >= 0.99
        # exact=True really is exact
        for q, t in zip(queries[:20], truth[:20]):
            assert_same_hits(t, exact_top(ids, vectors, q, K))


def test_empty_upsert_and_batch(shared) -> None:
    shared.upsert([], np.zeros((0, DIM), dtype=np.float32), [])
    shared.upsert([], [], [])
    assert shared.info().points == N
    assert shared.search_batch(np.zeros((0, DIM), dtype=np.float32), K) == []


def test_server_metadata_side_collection(tmp_path: Path, monkeypatch) -> None:
    """A server that drops collection metadata (Qdrant < 1.16): model/dim go to `<name>__meta`."""
    store = make_store("server", tmp_path)
    real = store.client.get_collection

    def without_metadata(name: str):
        info = real(name)
        return info.model_copy(update={"config": info.config.model_copy(update={"metadata": None})})

    monkeypatch.setattr(store.client, "get_collection", without_metadata)
    store.ensure(DIM, MODEL)
    assert store.client.collection_exists("movies_test_v1__meta")  # beside the physical collection
    store._meta = None  # forget the cache: read it back
    assert store.info() == CollectionInfo(name="movies_test", dim=DIM, points=0, model=MODEL)
    with pytest.raises(VectorStoreError, match="configured 8-d"):
        store.ensure(8, MODEL)
    store.recreate(8, "m2")
    store._meta = None
    assert store.info().model == "m2"
    store.close()
