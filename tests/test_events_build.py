"""The build learns from viewers' events (issue #21): how events become interactions, a model trained with them
differs from one without in the way they say, new events make `train` stale, and `nextwatch status` counts them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines import steps
from pipelines.models.events import ABANDONED, WATCHED, fold_events, read_events
from pipelines.models.model_set import train_model_set
from pipelines.status import stale_steps, status_lines
from services.settings import Settings
from services.stores.events import EventStore
from services.stores.generations import resolve_generation
from services.stores.histories import UserHistories
from services.stores.popularity import Counts
from services.stores.sequential import SequentialModel
from tests.support.servers import private_copy

VIEWERS = 40  # new viewers who all watch A, then B
START = datetime(2026, 12, 1, 20, 0)


def ratings_frame(rows: list[tuple[int, int, float, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])
    return frame.astype({"userId": "int32", "movieId": "int32", "rating": "float32", "timestamp": "int64"})


def events_frame(rows: list[tuple[str, int, str, float | None, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "type", "rating", "at"])


def as_set(frame: pd.DataFrame) -> set[tuple[int, int, float, int]]:
    return {
        (int(u), int(m), float(r), int(t)) for u, m, r, t in frame[["userId", "movieId", "rating", "timestamp"]].values
    }


def test_events_become_interactions() -> None:
    ratings = ratings_frame([(1, 10, 4.0, 100), (1, 11, 5.0, 110), (7, 10, 3.0, 100)])
    events = events_frame(
        [
            ("1", 12, "completed", None, 200),  # MovieLens user 1
            ("1", 11, "not_interested", None, 210),  # removes user 1's rating of 11
            ("0007", 10, "rated", 2.0, 300),  # user 7 as the server reads it: the latest rating counts
            ("b", 13, "abandoned", None, 400),
            ("a", 13, "watched", None, 500),
            ("a", 14, "not_interested", None, 510),  # nothing to remove, and no interaction
            ("a", 14, "watched", None, 520),  # after not_interested: counts again
        ]
    )
    folded = fold_events(ratings, events)
    assert folded.dtypes.to_dict() == ratings.dtypes.to_dict()
    assert as_set(folded) == {
        (1, 10, 4.0, 100),
        (1, 12, WATCHED, 200),
        (7, 10, 2.0, 100),  # one interaction per movie: first time, latest rating
        (8, 14, WATCHED, 520),  # "a" and "b" are new viewers above the largest MovieLens id, in sorted order
        (8, 13, WATCHED, 500),
        (9, 13, ABANDONED, 400),
    }
    assert fold_events(ratings, events_frame([])) is ratings


def test_the_evaluation_set_never_sees_events(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="MovieLens ratings only"):
        train_model_set(
            Settings(data_dir=tmp_path),
            ratings_frame([(1, 1, 4.0, 1)]),
            cutoff=1,
            events=read_events(Settings(data_dir=tmp_path)),
        )


@pytest.fixture(scope="module")
def settings(built_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A private copy of the built data dir with the build's own settings (only events make `train` stale)."""
    return private_copy(
        built_settings, tmp_path_factory.mktemp("events-build") / "data", als_factors=16, als_iterations=5
    )


def served(settings: Settings, model: str) -> Any:
    directory = resolve_generation(settings).models_dir(evaluation=False) / model
    return {"sequential": SequentialModel, "popularity": Counts, "histories": UserHistories}[model].load(directory)


def rank(model: SequentialModel, a: int, b: int) -> int | None:
    row = model.row(a)
    assert row is not None
    found = np.flatnonzero(row[0] == b)
    return int(found[0]) if len(found) else None


def add(settings: Settings, rows: list[dict[str, Any]]) -> None:
    store = EventStore(settings.events_store_url)
    try:
        received = datetime.now(UTC).replace(tzinfo=None)
        store.add([{"rating": None, "received": received, **row} for row in rows])
    finally:
        store.close()


@pytest.fixture(scope="module")
def chosen(settings: Settings) -> Iterator[dict[str, int]]:
    """Movie A, a movie B that is far down A's sequential row (or not in it), a MovieLens user and a movie they
    liked (neither A nor B)."""
    model = served(settings, "sequential")
    ratings = pd.read_parquet(settings.ratings_path)
    popular = ratings["movieId"].value_counts().index.tolist()
    a = int(popular[0])
    row = model.row(a)
    assert row is not None
    b = next(int(m) for m in popular[50:] if m not in set(row[0][:20].tolist()))
    liked = ratings.loc[(ratings["rating"] >= 4) & ~ratings["movieId"].isin([a, b])].iloc[0]
    yield {"a": a, "b": b, "user": int(liked["userId"]), "movie": int(liked["movieId"])}


def test_the_build_learns_from_events(settings: Settings, chosen: dict[str, int]) -> None:
    a, b, user, movie = chosen["a"], chosen["b"], chosen["user"], chosen["movie"]
    assert stale_steps(settings) == []
    assert "events: none yet" in status_lines(settings)
    before_rank = rank(served(settings, "sequential"), a, b)
    before_count = served(settings, "popularity").counts[movie]
    rows = []
    for i in range(VIEWERS):
        at = START + timedelta(hours=i)
        rows.append({"event_id": f"a-{i}", "user_id": f"viewer-{i}", "movie_id": a, "type": "completed", "at": at})
        rows.append(
            {
                "event_id": f"b-{i}",
                "user_id": f"viewer-{i}",
                "movie_id": b,
                "type": "completed",
                "at": at + timedelta(minutes=100),
            }
        )
    rows.append({"event_id": "no", "user_id": str(user), "movie_id": movie, "type": "not_interested", "at": START})
    add(settings, rows)
    total = len(rows)

    assert any(s.startswith("train") for s in stale_steps(settings))
    assert f"events: 0 in the served models, {total} since (run `nextwatch build`)" in status_lines(settings)

    results = steps.build(settings, progress=False)
    assert results["train"] is not None and "histories" not in results["train"]  # the histories stay MovieLens'
    assert results["neighbours"] is not None

    after_rank = rank(served(settings, "sequential"), a, b)
    assert after_rank is not None and (before_rank is None or after_rank < before_rank)
    assert after_rank < 5  # 40 viewers went from A straight to B
    counts = served(settings, "popularity").counts
    assert counts[movie] == before_count - 1  # not_interested took the viewer's rating out
    watched = served(settings, "histories").of(user)
    assert watched is not None and movie in watched.movies.tolist()  # the served MovieLens history keeps it
    assert stale_steps(settings) == []
    assert f"events: {total} in the served models, none since" in status_lines(settings)

    store = EventStore(settings.events_store_url)
    try:
        store.forget("viewer-0")
    finally:
        store.close()
    assert f"events: {total} in the served models, 0 since, 2 forgotten (run `nextwatch build`)" in status_lines(
        settings
    )
    assert any(s.startswith("train") for s in stale_steps(settings))
