"""Evaluation at 32M shape (issue 23): every one-movie strategy's batch path and the history protocol, timed.

Over a data dir built by ``bench/api_latency.py --build-only`` (a copy: this writes its evaluation build):
trains the evaluation build (models before the first test pair, their tables) as `nextwatch evaluate` does,
untimed (`--reuse-models`: the evaluation models already there are kept, so a measurement takes minutes), then
times what the issue's targets name: every strategy's batch over the protocol's pairs (the sum
of their seconds, <= 2 s) and the history protocol (every history strategy given each viewer's history before
the target, with its comparisons, <= 60 s).

    NEXTWATCH_LEARNED_MAX_SECONDS=120 .venv/bin/python bench/evaluation_32m.py --data-dir /tmp/copy-of-32m-build
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from harness import ROOT  # noqa: F401  (puts the repo root on sys.path)

from pipelines.evaluation.history_protocol import score_history_protocol
from pipelines.evaluation.metrics import evaluate_strategies
from pipelines.evaluation.protocol import Protocol, next_item_pairs
from pipelines.models.model_set import train_model_set
from pipelines.neighbours.step import build_neighbour_tables
from pipelines.steps import read_ingested
from services.serving.runtime import open_runtime
from services.settings import Settings
from services.stores.generations import resolve_generation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--min-ratings", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--no-history", action="store_true", help="time the one-movie strategies only")
    parser.add_argument(
        "--reuse-models",
        action="store_true",
        help="keep the evaluation models already in the data dir as they are (no training, even if their inputs "
        "changed); their tables are still brought up to date",
    )
    args = parser.parse_args()
    settings = resolve_generation(Settings(data_dir=args.data_dir)).with_tuned()
    protocol = Protocol.from_settings(settings, min_ratings=args.min_ratings, pairs=args.pairs)
    result: dict[str, object] = {"load_before": os.getloadavg()}
    began = time.perf_counter()
    ratings = read_ingested(settings, settings.ratings_path)
    pairs = next_item_pairs(ratings, protocol.min_ratings, protocol.pairs)
    cutoff = int(pairs["timestamp"].min())
    if args.reuse_models:
        if not settings.models_dir(evaluation=True).is_dir():
            parser.error(f"--reuse-models: no evaluation models in {settings.models_dir(evaluation=True)}")
    else:
        train_model_set(settings, ratings, cutoff=cutoff, progress=False)
    build_neighbour_tables(settings, evaluation=True)
    result["evaluation_build_s"] = round(time.perf_counter() - began, 1)
    runtime = open_runtime(settings.updated(serve_models="evaluation", seed=protocol.seed), require=("vectors",))
    try:
        size = len(runtime.facts.movie_ids)
        scores = evaluate_strategies(
            runtime.strategies, pairs, protocol.k, size, resamples=protocol.resamples, seed=protocol.seed
        )
        result["strategies_s"] = {name: round(s.seconds, 3) for name, s in scores.items()}
        result["all_strategies_s"] = round(sum(s.seconds for s in scores.values()), 3)
        result["load_mid"] = os.getloadavg()
        if not args.no_history:
            began = time.perf_counter()
            history = score_history_protocol(
                runtime.history_strategies,
                ratings,
                pairs,
                protocol.k,
                size,
                resamples=protocol.resamples,
                seed=protocol.seed,
                one_movie=runtime.strategies,
                seed_002=scores,
            )
            result["history_protocol_s"] = round(time.perf_counter() - began, 1)
            result["history_strategies_s"] = {name: round(s.seconds, 2) for name, s in history.scores.items()}
            result["history_rows"] = history.rows
    finally:
        runtime.close()
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
