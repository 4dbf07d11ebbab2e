"""Benchmark of the embedded (qdrant-edge) vector store: build time, query latency, HNSW recall.

Builds an edge collection of N x DIM clustered random unit vectors (a stand-in for overview
embeddings; ``--spread`` large gives structureless random vectors, the worst case for HNSW) with a
series_id payload, then times, on stored vectors used as queries (excluding themselves, as the
recommender does):

* upsert and finalize (= HNSW build via optimize());
* query p50/p99 through HNSW and exact, without and with a series_id filter;
* recall@k of HNSW vs exact for a sweep of hnsw_ef;
* excluding ids by over-fetching vs a must_not HasId filter;
* search_batch per query, and reopening the shard.

    .venv/bin/python bench/vector_recall.py               # 87,000 x 384 (HNSW build takes minutes)
    .venv/bin/python bench/vector_recall.py --n 20000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.stores.vectors import EdgeVectorStore


def clustered(n: int, dim: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clusters = max(2, n // 60)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, clusters, n)] + spread * rng.normal(size=(n, dim)).astype(np.float32) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def payloads_for(n: int, seed: int) -> list[dict]:
    """~12% of movies in series of 2-6 members, like MovieLens collections."""
    rng = np.random.default_rng(seed + 1)
    series = np.full(n, -1)
    pos, sid = 0, 1
    members = rng.permutation(n)[: int(n * 0.12)]
    while pos < len(members):
        size = int(rng.integers(2, 7))
        series[members[pos : pos + size]] = sid
        pos, sid = pos + size, sid + 1
    genres = ["Drama", "Comedy", "Action", "Thriller", "Romance", "Horror", "Sci-Fi"]
    return [
        {
            "series_id": int(series[i]) if series[i] > 0 else None,
            "genres": [genres[j] for j in rng.choice(len(genres), int(rng.integers(1, 4)), replace=False)],
            "year": int(rng.integers(1920, 2024)),
        }
        for i in range(n)
    ]


def timed(fn, queries, warmup: int = 5) -> tuple[np.ndarray, list]:
    for q in queries[:warmup]:
        fn(*q)
    times, results = [], []
    for q in queries:
        t = time.perf_counter()
        results.append(fn(*q))
        times.append(time.perf_counter() - t)
    return np.asarray(times) * 1e3, results


def recall(approx: list, truth: list) -> float:
    found = sum(len({i for i, _ in a} & {i for i, _ in t}) for a, t in zip(approx, truth))
    return found / max(1, sum(len(t) for t in truth))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", nargs="?", type=int, default=87_000, help="points (default 87000)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--hnsw-ef", type=int, default=128)
    ap.add_argument(
        "--exact-max",
        type=int,
        default=None,
        help="exact_search_max_points of the store (default min(20000, n // 10), so HNSW is built)",
    )
    ap.add_argument("--spread", type=float, default=1.0, help="noise around cluster centres (>=10: random)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=None, help="where to build (default: a temp dir, removed)")
    args = ap.parse_args()

    n, k = args.n, args.k
    exact_max = args.exact_max if args.exact_max is not None else min(20_000, n // 10)
    root = Path(tempfile.mkdtemp(prefix="vector-bench-", dir=args.dir))
    rows: list[tuple[str, str]] = []

    def row(name: str, value: str) -> None:
        rows.append((name, value))
        print(f"  {name:<46} {value}", flush=True)

    try:
        print(
            f"edge collection {n:,} x {args.dim}, spread {args.spread}, hnsw_ef {args.hnsw_ef}, "
            f"exact_search_max_points {exact_max:,}, k {k}",
            flush=True,
        )
        vectors = clustered(n, args.dim, args.spread, args.seed)
        payloads = payloads_for(n, args.seed)
        ids = np.arange(1, n + 1, dtype=np.int64)
        store = EdgeVectorStore(root, "bench", args.hnsw_ef, exact_max)
        store.recreate(args.dim, "bench-model")

        t = time.perf_counter()
        store.upsert(ids, vectors, payloads)
        row("upsert", f"{time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        store.finalize()
        shard_info = store._open().info()
        row(
            "finalize (optimize = HNSW build)",
            f"{time.perf_counter() - t:.2f} s  ({shard_info.segments_count} segments, "
            f"{shard_info.indexed_vectors_count:,} indexed)",
        )

        rng = np.random.default_rng(args.seed + 2)
        picks = rng.choice(n, size=min(args.queries, n), replace=False)
        plain = [(vectors[j], k, [int(ids[j])]) for j in picks]

        hnsw_ms, hnsw_res = timed(lambda v, kk, e: store.search(v, kk, e), plain)
        exact_ms, exact_res = timed(lambda v, kk, e: store.search(v, kk, e, exact=True), plain)
        row("query HNSW p50 / p99", f"{np.percentile(hnsw_ms, 50):.2f} / {np.percentile(hnsw_ms, 99):.2f} ms")
        row("query exact p50 / p99", f"{np.percentile(exact_ms, 50):.2f} / {np.percentile(exact_ms, 99):.2f} ms")
        row(f"recall@{k} HNSW (ef {args.hnsw_ef}) vs exact", f"{recall(hnsw_res, exact_res):.4f}")

        in_series = [j for j in picks if payloads[j]["series_id"] is not None] or list(picks[:1])
        filtered = [(vectors[j], k, [int(ids[j])], payloads[j]["series_id"]) for j in in_series]
        f_ms, f_res = timed(lambda v, kk, e, s: store.search(v, kk, e, series_id=s), filtered)
        fe_ms, fe_res = timed(lambda v, kk, e, s: store.search(v, kk, e, exact=True, series_id=s), filtered)
        row(
            "query + series_id filter p50 / p99",
            f"{np.percentile(f_ms, 50):.2f} / {np.percentile(f_ms, 99):.2f} ms  (recall {recall(f_res, fe_res):.4f})",
        )
        row(
            "query + series_id filter, exact p50 / p99",
            f"{np.percentile(fe_ms, 50):.2f} / {np.percentile(fe_ms, 99):.2f} ms",
        )

        for ef in (32, 64, 128, 256, 512):
            store.hnsw_ef = ef
            ms, res = timed(lambda v, kk, e: store.search(v, kk, e), plain)
            row(f"  hnsw_ef {ef:<4} recall@{k} / p50", f"{recall(res, exact_res):.4f} / {np.percentile(ms, 50):.2f} ms")
        store.hnsw_ef = args.hnsw_ef

        top = store.search_batch(vectors[picks[:50]], 1000, exact=True)
        for size in (1, 10, 50, 200, 1000):
            # exclude the query's own top-`size` neighbours: the worst case for over-fetching
            cases = [(vectors[j], k, [i for i, _ in hits[:size]]) for j, hits in zip(picks[:50], top)]
            cells = []
            for label, threshold in (("over-fetch", 10**9), ("must_not", 0)):
                store.overfetch_max_exclude = threshold
                ms, res = timed(lambda v, kk, e: store.search(v, kk, e), cases)
                cells.append(f"{label} {np.percentile(ms, 50):.2f} ms")
            row(f"exclude {size:>4} ids, HNSW p50", " | ".join(cells))
        store.overfetch_max_exclude = EdgeVectorStore(root, "bench").overfetch_max_exclude

        batch = np.stack([v for v, _, _ in plain])
        excludes = [e for _, _, e in plain]
        store.search_batch(batch[:10], k, excludes[:10])
        t = time.perf_counter()
        batch_res = store.search_batch(batch, k, excludes)
        row("search_batch HNSW per query", f"{(time.perf_counter() - t) * 1e3 / len(batch):.2f} ms")
        assert batch_res == hnsw_res, "search_batch differs from search"

        store.close()
        t = time.perf_counter()
        store = EdgeVectorStore(root, "bench", args.hnsw_ef, exact_max)
        store.search(vectors[0], k)
        row("reopen + first query", f"{time.perf_counter() - t:.2f} s")
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
