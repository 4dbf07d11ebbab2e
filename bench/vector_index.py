"""Query latency of the built vector collection (qdrant-edge) and the same data in qdrant-client's local mode.

    .venv/bin/python bench/vector_index.py edge  --data-dir D   # after `bench/offline.py vectors`
    .venv/bin/python bench/vector_index.py local --data-dir D [--queries 100 --filter-queries 20]

Queries are stored vectors of randomly picked movies, excluding the movie itself (as the recommender
asks); "series filter" restricts a query to the picked movie's own series (payload ``series_id``).
``edge`` times the collection `bench/offline.py vectors` built (its build time is reported there), with
the store's policy (HNSW above ``exact_search_max_points``) and exact search, and the HNSW recall@k.
``local`` loads the same ids, vectors and series into qdrant-client's in-process mode (``:memory:``,
what ``NEXTWATCH_QDRANT_URL=:memory:`` selects) and times the upsert and the same kinds of query.
Timing and recall helpers come from bench/vector_recall.py. Each prints one ``BENCH`` line.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from harness import report  # first: it puts the repo root on sys.path
from offline import settings_for
from vector_recall import recall, timed

from services.settings import Settings
from services.stores.catalog import Catalog
from services.stores.vectors import ServerVectorStore, open_vector_store

K = 10


def _percentiles(ms: np.ndarray) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "n": len(ms)}


def _series_of(settings: Settings) -> dict[int, int]:
    db = Catalog(settings.catalog_url)
    try:
        facts = db.movie_facts()
    finally:
        db.close()
    return {int(m): int(s) for m, s in zip(facts.movie_ids, facts.series_ids) if s is not None}


def _queries(ids: np.ndarray, series_of: dict[int, int], n: int, n_filtered: int, seed: int) -> tuple[list, list]:
    """(movie_id,) picks for plain queries and (movie_id, series_id) picks for filtered ones."""
    rng = np.random.default_rng(seed)
    plain = rng.choice(ids, size=min(n, len(ids)), replace=False).tolist()
    stored = set(ids.tolist())
    members = np.asarray(sorted(m for m in series_of if m in stored), dtype=np.int64)
    filtered = rng.choice(members, size=min(n_filtered, len(members)), replace=False).tolist()
    return [int(m) for m in plain], [(int(m), series_of[int(m)]) for m in filtered]


def _latencies(
    search: Callable[..., list],
    stored: dict[int, np.ndarray],
    plain: Sequence[int],
    filtered: Sequence[tuple[int, int]],
    **kwargs: Any,
) -> tuple[dict, dict, list]:
    plain_ms, plain_res = timed(lambda v, e: search(v, K, e, **kwargs), [(stored[m], [m]) for m in plain])
    filt_ms, _ = timed(
        lambda v, e, s: search(v, K, e, series_id=s, **kwargs), [(stored[m], [m], s) for m, s in filtered]
    )
    return _percentiles(plain_ms), _percentiles(filt_ms), plain_res


def edge(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Policy (HNSW at this size) and exact query latency, with and without a series filter; HNSW recall@k."""
    series_of = _series_of(settings)
    store = open_vector_store(settings)
    try:
        info = store.info()
        if info is None:
            raise RuntimeError("no vector collection: run `bench/offline.py vectors` first")
        ids = store.ids()
        plain, filtered = _queries(ids, series_of, args.queries, args.queries, args.seed)
        stored = store.vectors(plain + [m for m, _ in filtered])
        policy, policy_filtered, approx = _latencies(store.search, stored, plain, filtered)
        exact, exact_filtered, truth = _latencies(store.search, stored, plain, filtered, exact=True)
        hnsw = info.points > settings.qdrant.exact_search_max_points
    finally:
        store.close()
    return {
        "points": info.points,
        "dim": info.dim,
        "hnsw": hnsw,
        "hnsw_ef": settings.qdrant.hnsw_ef,
        "query": policy,
        "query_series": policy_filtered,
        "exact": exact,
        "exact_series": exact_filtered,
        f"recall_at_{K}": recall(approx, truth),
    }


def local(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """The edge collection's points loaded into qdrant-client's :memory: mode: upsert time and query latency."""
    from qdrant_client import QdrantClient

    series_of = _series_of(settings)
    edge_store = open_vector_store(settings)
    try:
        ids = edge_store.ids()
        stored = edge_store.vectors(ids.tolist())
        model = edge_store.info().model
    finally:
        edge_store.close()
    matrix = np.stack([stored[int(i)] for i in ids])
    payloads = [{"series_id": series_of.get(int(i))} for i in ids]
    store = ServerVectorStore(QdrantClient(location=":memory:"), "bench_local", settings.qdrant.hnsw_ef)
    try:
        store.recreate(matrix.shape[1], model)
        started = time.perf_counter()
        store.upsert(ids.tolist(), matrix, payloads)
        upsert = time.perf_counter() - started
        plain, filtered = _queries(ids, series_of, args.queries, args.filter_queries, args.seed)
        query, query_series, _ = _latencies(store.search, stored, plain, filtered)
    finally:
        store.close()
    return {
        "points": len(ids),
        "dim": int(matrix.shape[1]),
        "upsert_seconds": upsert,
        "query": query,
        "query_series": query_series,
    }


STAGES: dict[str, Callable[[Settings, argparse.Namespace], dict[str, Any]]] = {"edge": edge, "local": local}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=sorted(STAGES))
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--queries", type=int, default=300, help="plain queries (edge: also filtered queries)")
    ap.add_argument("--filter-queries", type=int, default=20, help="local: series-filtered queries (slow there)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    report(args.stage, STAGES[args.stage](settings_for(args.data_dir), args))


if __name__ == "__main__":
    main()
