"""Evaluation of every strategy on the protocol's pairs, and the seed-002-style loop on the same pairs.

    .venv/bin/python bench/seed_loop.py evaluate --data-dir D [--min-ratings 1000 --pairs 3000]
    .venv/bin/python bench/seed_loop.py seed     --data-dir D [--seed-pairs 3000]

``evaluate`` runs pipelines.steps.evaluate_step (as `nextwatch evaluate` does) and reports each strategy's
batch time; it saves the pairs for ``seed``. ``seed`` replays seed 002's evaluate loop for series, vector
and series+vector: per pair, in a Python loop, ``SELECT series_id FROM movie WHERE movie_id = :id`` and
``SELECT movie_id FROM movie WHERE series_id = :sid AND movie_id <> :id ORDER BY release_date DESC``
through a fresh connection each (the seed's ``get_rows``, DataFrame and all), plus one retrieve and one
11-nearest query through the vector store (the seed's ``vector_rcmd``). Each prints one ``BENCH`` line.
Two adaptations: a movie is in a series when its series_id is not NULL (the seed's Oracle used 0 for
"none" and had only TMDB series; our inferred series have negative ids), and random fill-ins come from a
seeded generator.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from harness import report  # first: it puts the repo root on sys.path
from offline import settings_for
from sqlalchemy import Engine, text

from pipelines.evaluation.protocol import Protocol
from pipelines.evaluation.run import evaluate_step
from services.settings import Settings
from services.stores.catalog import Catalog
from services.stores.vectors import VectorStore, open_vector_store

PAIRS_FILE = "bench_pairs.parquet"
K = 10


class SeedRecommenders:
    """seed 002's series_rcmd, vector_rcmd and series_vector_rcmd over our catalog and vector store."""

    def __init__(self, engine: Engine, store: VectorStore, movie_ids: np.ndarray, seed: int = 42) -> None:
        self.engine = engine
        self.store = store
        self.movie_ids = movie_ids
        self.rng = np.random.default_rng(seed)

    def get_rows(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        """The seed's get_rows: one connection per query, the rows as a DataFrame (transposed when one row)."""
        with self.engine.connect() as conn:
            result = conn.execute(text(sql), params)
            df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
            return df.T.rename(columns={0: "value"}) if len(df) == 1 else df

    def _random(self, n: int) -> list[int]:
        return self.rng.choice(self.movie_ids, n).tolist()

    def _series_list(self, movie_id: int) -> list[int] | None:
        """Other members of the movie's series, newest first; None when the movie is not in the catalog."""
        s = self.get_rows("SELECT series_id FROM movie WHERE movie_id = :movie_id", {"movie_id": movie_id})
        if len(s) == 0:
            return None
        series_id = s.loc["series_id"].iloc[0]
        if series_id is None or pd.isna(series_id):
            return []
        rows = self.get_rows(
            "SELECT movie_id FROM movie WHERE series_id = :series_id AND movie_id <> :movie_id "
            "ORDER BY release_date DESC",
            {"series_id": int(series_id), "movie_id": movie_id},
        )
        if len(rows) > 1:
            return rows["movie_id"].tolist()
        return [rows.loc["movie_id"].iloc[0]] if len(rows) == 1 else []

    def series(self, movie_id: int) -> list[int]:
        """series_rcmd: the series' other movies, filled up to 10 with random movies."""
        found = self._series_list(int(movie_id))
        if found is None:
            return self._random(K)
        return (found + self._random(K - len(found)))[:K] if len(found) < K else found[:K]

    def vector(self, movie_id: int) -> list[int]:
        """vector_rcmd: retrieve the movie's vector, query its 11 nearest, drop the first (itself)."""
        movie_id = int(movie_id)
        stored = self.store.vectors([movie_id])
        if not stored:
            return self._random(K)
        return [i for i, _ in self.store.search(stored[movie_id], K + 1)[1:]]

    def series_vector(self, movie_id: int) -> list[int]:
        """series_vector_rcmd: the series first, then vector neighbours."""
        found = self._series_list(int(movie_id))
        if found is None:
            return self._random(K)
        return (found + self.vector(movie_id))[:K] if len(found) < K else found[:K]


def seed_evaluate(pairs: pd.DataFrame, rcmd: Callable[[int], list[int]]) -> float:
    """The seed's evaluate: a Python loop over (prev, next) asking rcmd for 10 movies; the hit ratio."""
    result = [x[1] in set(rcmd(x[0])[:K]) for x in pairs[["prev_movieId", "movieId"]].values]
    return float(np.mean(result))


def evaluate(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """evaluate_step on the protocol; per-strategy batch seconds and hit ratios."""
    started = time.perf_counter()
    run = evaluate_step(
        settings, Protocol.from_settings(settings, min_ratings=args.min_ratings, pairs=args.pairs, k=K), progress=False
    )
    wall = time.perf_counter() - started
    run.pairs.to_parquet(settings.data_dir / PAIRS_FILE)
    strategies = {
        name: {"seconds": s.seconds, "hit_ratio": s.hit_ratio, "queries": s.queries} for name, s in run.scores.items()
    }
    return {
        "seconds": sum(s["seconds"] for s in strategies.values()),
        "step_seconds": wall,
        "als_eval_fit_seconds": run.models["als"]["fit_seconds"],
        "pairs": len(run.pairs),
        "distinct_prev": int(run.pairs["prev_movieId"].nunique()),
        "strategies": strategies,
    }


def seed(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """The seed-style loop for series, vector and series+vector on the first --seed-pairs saved pairs."""
    pairs = pd.read_parquet(settings.data_dir / PAIRS_FILE)
    subset = pairs.head(args.seed_pairs)
    db = Catalog(settings.catalog_url)
    store = open_vector_store(settings)
    try:
        recs = SeedRecommenders(db.engine, store, np.asarray(db.movie_facts().movie_ids), settings.protocol.seed)
        if store.info() is None:  # also opens the shard, as open_runtime does before ours is timed
            raise RuntimeError("no vector collection: run `bench/offline.py vectors` first")
        strategies = {}
        for name, rcmd in (("series", recs.series), ("vector", recs.vector), ("series+vector", recs.series_vector)):
            started = time.perf_counter()
            hit_ratio = seed_evaluate(subset, rcmd)
            seconds = time.perf_counter() - started
            strategies[name] = {
                "seconds": seconds,
                "hit_ratio": hit_ratio,
                "queries": len(subset),
                "seconds_per_pair": seconds / len(subset),
            }
    finally:
        store.close()
        db.close()
    return {"seconds": sum(s["seconds"] for s in strategies.values()), "pairs": len(subset), "strategies": strategies}


STAGES: dict[str, Callable[[Settings, argparse.Namespace], dict[str, Any]]] = {"evaluate": evaluate, "seed": seed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=sorted(STAGES))
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--min-ratings", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--seed-pairs", type=int, default=3000, help="pairs the seed-style loop runs on")
    args = ap.parse_args()
    report(args.stage, STAGES[args.stage](settings_for(args.data_dir), args))


if __name__ == "__main__":
    main()
