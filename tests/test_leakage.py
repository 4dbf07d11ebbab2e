"""Leakage-free and reproducible: models see nothing from the test window; the same data gives the same run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.collaborative.als import train_als
from pipelines.collaborative.popularity import recent_popularity
from pipelines.collaborative.sequential import build_sequential
from pipelines.evaluation.metrics import evaluate_strategies
from pipelines.evaluation.protocol import Protocol
from pipelines.evaluation.run import evaluate_step
from pipelines.steps import catalog_step, embed_step, ingest_step
from services.recommender.registry import sequential_params, strategy_names
from services.recommender.standard import FusionConfig, assemble_strategies
from services.serving.runtime import open_runtime
from services.settings import Settings
from services.stores.catalog import Catalog
from services.stores.collaborative import ALSParams, CollaborativeModel
from services.stores.generations import resolve_generation
from services.stores.popularity import Counts
from services.stores.sequential import SequentialModel
from tests.support.servers import private_copy

WORDS = (
    "Amber",
    "Basalt",
    "Cobalt",
    "Dune",
    "Ember",
    "Fjord",
    "Garnet",
    "Harbor",
    "Indigo",
    "Juniper",
    "Kestrel",
    "Lagoon",
    "Meadow",
    "Nebula",
    "Orchid",
    "Prairie",
    "Quartz",
    "Raven",
    "Sierra",
    "Tundra",
    "Umber",
    "Violet",
    "Willow",
    "Xenon",
    "Yarrow",
    "Zephyr",
    "Aurora",
    "Bramble",
    "Cascade",
    "Delta",
    "Echo Lake",
    "Foxglove",
)
NEW_A, NEW_B = 31, 32  # first rated inside the test window, always one right after the other
TEST_START = 100_000


@pytest.fixture(scope="module")
def leaky_world(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A release where the test window is 40 new users watching movie 31 then 32, two brand-new movies.

    Anything trained on all ratings would have seen 31 -> 32 forty times (32 would be the most popular
    movie and 31's nearest ALS neighbour); before the test window 32 has not a single rating.
    """
    rng = np.random.default_rng(7)
    rows = []
    for user in range(1, 61):  # history: 60 users, 8 of movies 1..30 each
        for j, movie in enumerate(rng.choice(np.arange(1, 31), size=8, replace=False)):
            rows.append((user, int(movie), 4.0, 1_000 + 100 * user + j))
    for i, user in enumerate(range(101, 141)):  # test window: new users, 31 then 32
        rows.append((user, NEW_A, 5.0, TEST_START + 2 * i))
        rows.append((user, NEW_B, 5.0, TEST_START + 2 * i + 1))
    release = tmp_path_factory.mktemp("leaky-release")
    frame = pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])
    frame.to_csv(release / "ratings.csv", index=False)
    pd.DataFrame(
        {"movieId": range(1, 33), "title": [f"{w} ({1990 + i})" for i, w in enumerate(WORDS)], "genres": "Drama"}
    ).to_csv(release / "movies.csv", index=False)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("leaky-data"), source=str(release), als_factors=8, als_iterations=10
    )
    ingest_step(settings, progress=False)
    catalog_step(settings)
    embed_step(settings, progress=False)
    return settings


PROTOCOL = Protocol(min_ratings=5, pairs=40, k=5, seed=42, resamples=200)


def test_leakage_would_change_the_answer_and_the_evaluator_has_none(leaky_world: Settings) -> None:
    run = evaluate_step(leaky_world, PROTOCOL, progress=False)
    assert run.pairs[["prev_movieId", "movieId"]].drop_duplicates().values.tolist() == [[NEW_A, NEW_B]]
    assert run.cutoff_timestamp == TEST_START + 1  # the first test pair; 32 is first rated right then

    # the evaluator's numbers: nothing learned from ratings can know 32 yet
    assert run.scores["popular"].hit_ratio == 0.0
    assert run.scores["collaborative"].hit_ratio == 0.0
    assert run.scores["collaborative"].answered == 1.0  # ALS did answer (it knows 31): just not with 32

    # the same strategies trained on all ratings (the naive protocol) hit every single pair
    ratings = pd.read_parquet(leaky_world.ratings_path)
    catalog = Catalog(resolve_generation(leaky_world).catalog_url)
    try:
        facts = catalog.movie_facts()
    finally:
        catalog.close()
    newest = int(ratings["timestamp"].max()) + 1
    models = {
        "als": train_als(ratings, ALSParams(**leaky_world.als.model_dump()), progress=False),
        "sequential": build_sequential(ratings, sequential_params(leaky_world)),
        "recent-popular": Counts(recent_popularity(ratings, newest, 3650), newest),
        "popularity": Counts(ratings["movieId"].value_counts().to_dict(), newest),
    }
    leaky = assemble_strategies(facts, models, FusionConfig.from_settings(leaky_world), seed=PROTOCOL.seed)
    naive = evaluate_strategies(
        {n: leaky[n] for n in ("popular", "collaborative", "sequential")},
        run.pairs,
        PROTOCOL.k,
        len(facts.movie_ids),
        resamples=0,
    )
    assert naive["popular"].hit_ratio == 1.0 and naive["collaborative"].hit_ratio == 1.0
    assert naive["sequential"].hit_ratio == 1.0

    # the saved evaluation build (what a server in evaluation mode serves) is the leakage-free one
    evaluation = resolve_generation(leaky_world).models_dir(evaluation=True)
    model = CollaborativeModel.load(evaluation / "als")
    assert model.info["max_timestamp"] < run.cutoff_timestamp and NEW_B not in model
    assert NEW_B not in Counts.load(evaluation / "popularity").counts
    held_out = SequentialModel.load(evaluation / "sequential")  # nobody watched 32 after 31 yet
    assert NEW_B not in {m for m, _ in held_out.similar([NEW_A], 50)[0]}
    assert NEW_B not in Counts.load(evaluation / "recent-popular").counts
    assert run.as_json()["models"]["trained_before"] == run.cutoff_timestamp


def _comparable(run) -> dict:
    return {
        name: {k: v for k, v in s.as_dict(run.protocol.k).items() if k not in ("seconds", "qps")}
        for name, s in run.scores.items()
    }


def test_same_data_gives_the_same_pairs_and_metrics_twice(built_settings: Settings, tmp_path: Path) -> None:
    settings = private_copy(built_settings, tmp_path / "data", als_factors=16, als_iterations=5)
    protocol = Protocol.from_settings(Settings(), pairs=500, resamples=300)
    first = evaluate_step(settings, protocol, progress=False)
    shutil.rmtree(resolve_generation(settings).models_dir(evaluation=True))  # retrain the evaluation build
    again = evaluate_step(settings, protocol, progress=False)
    pd.testing.assert_frame_equal(first.pairs, again.pairs)
    assert first.cutoff_timestamp == again.cutoff_timestamp
    assert _comparable(first) == _comparable(again)
    assert first.data["sha256"] == again.data["sha256"]
    assert set(first.scores) == set(strategy_names())
    assert first.comparison is not None and first.comparison.as_dict() == again.comparison.as_dict()


def test_the_history_protocol_sees_nothing_at_or_after_the_target(leaky_world: Settings) -> None:
    from pipelines.evaluation.history_protocol import histories_before
    from services.recommender.base import History

    run = evaluate_step(leaky_world, PROTOCOL, progress=False)
    assert run.history is not None and run.history.rows == len(run.pairs)
    # each new user's history is the one movie before the target: never 32, nor anything after it
    ratings = pd.read_parquet(leaky_world.ratings_path)
    assert histories_before(ratings, run.pairs) == [History((NEW_A,))] * len(run.pairs)
    # the history strategies read the evaluation build: nothing learned from ratings knows 32 yet
    learned_from_ratings = {"popular", "recent-popular", "collaborative", "sequential", "learned"}
    for name in ("popular", "recent-popular", "collaborative", "learned"):  # each fills its k itself
        assert run.history.scores[name].hit_ratio == 0.0, name
    assert run.history.scores["collaborative"].answered == 1.0  # ALS folded each viewer in from 31
    # sequential knows nothing after 31 before the window, so its strategy fills from random (which may draw
    # 32 by chance): its source, as served in evaluation mode, never gives 32
    runtime = open_runtime(leaky_world.updated(serve_models="evaluation", seed=PROTOCOL.seed))
    try:
        for name in learned_from_ratings:
            source = runtime.history_sources.get(name)
            if source is not None:
                assert NEW_B not in {m for m, _ in source.candidates([History((NEW_A,))], 30)[0]}, name
    finally:
        runtime.close()
    assert run.as_json()["history"]["strategies"].keys() == run.history.scores.keys()
