"""The history protocol's batch paths (issue 23) give the answers of the per-request path the API serves: every
history strategy asked with many histories at once against each history asked alone, on the built test
catalogue; and each row's history read with sorted arrays is the one a plain reading of the ratings gives."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from pipelines.evaluation.history_protocol import histories_before
from pipelines.evaluation.protocol import next_item_pairs
from pipelines.steps import read_ingested
from services.recommender.base import History, Recommendation
from services.serving.runtime import Runtime, open_runtime
from services.settings import Settings

# the learned and collaborative sources score with float32 matrix products whose last bits depend on how many
# rows BLAS multiplies at once (one request: a vector product): their lists are the same, their scores equal up
# to float32 rounding (a few 1e-7 on scores of about 1)
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def runtime(built_settings: Settings) -> Iterator[Runtime]:
    rt = open_runtime(built_settings, serving=True)
    yield rt
    rt.close()


def _histories(settings: Settings) -> list[History]:
    """Real viewers' histories of many lengths (some keeping seen movies), an empty one and an unknown one."""
    ratings = read_ingested(settings, settings.ratings_path).sort_values(["userId", "timestamp", "movieId"])
    by_user = [g["movieId"].astype(int).tolist() for _, g in ratings.groupby("userId")][:40]
    lengths = [1, 2, 5, 20, 60, 200, 1000]
    out = [
        History(tuple(movies[-lengths[i % len(lengths)] :]), drop_seen=i % 5 != 4) for i, movies in enumerate(by_user)
    ]
    return [*out, History(()), History((999_999_999,))]


def _same(batch: list[Recommendation], alone: list[Recommendation]) -> bool:
    return [(r.movie_id, r.source) for r in batch] == [(r.movie_id, r.source) for r in alone] and np.allclose(
        [r.score for r in batch], [r.score for r in alone], rtol=RTOL, atol=ATOL
    )


def test_every_history_strategy_answers_a_batch_as_it_answers_each_history_alone(
    built_settings: Settings, runtime: Runtime
) -> None:
    histories = _histories(built_settings)
    assert runtime.history_strategies
    for name, strategy in runtime.history_strategies.items():
        batch = strategy.similar_batch(histories, 10)
        alone = [strategy.similar_batch([h], 10)[0] for h in histories]
        assert any(batch), name
        differing = [i for i, (b, a) in enumerate(zip(batch, alone)) if not _same(b, a)]
        assert not differing, f"{name}: rows {differing[:5]} differ"


def test_histories_before_read_with_arrays_equal_a_plain_reading() -> None:
    rng = np.random.default_rng(8)
    n = 20_000
    ratings = pd.DataFrame(
        {
            "userId": rng.integers(1, 300, n),
            "movieId": rng.integers(1, 400, n),
            "timestamp": rng.integers(0, 2_000, n),  # many equal timestamps: movieId orders them
            "rating": 4.0,
        }
    )
    ratings = pd.concat([ratings, ratings.iloc[:50]], ignore_index=True)  # repeated ratings, too
    pairs = next_item_pairs(ratings, min_ratings=20, n_pairs=500)
    ordered = ratings.sort_values(["userId", "timestamp", "movieId"], kind="stable")
    expected = []
    for user, target, stamp in pairs[["userId", "movieId", "timestamp"]].itertuples(index=False):
        mine = ordered.loc[ordered["userId"] == user]
        keys = list(zip(mine["timestamp"].tolist(), mine["movieId"].tolist()))
        expected.append(History(tuple(m for (t, m) in keys if (t, m) < (stamp, target))))
    assert histories_before(ratings, pairs) == expected
    with pytest.raises(ValueError, match="not one of the ratings"):
        histories_before(ratings, pairs.assign(timestamp=pairs["timestamp"] + 10_000))
