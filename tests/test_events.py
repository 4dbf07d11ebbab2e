"""`POST /events`, `DELETE /users/{user_id}` and what events do to `GET /users/{user_id}/next` and `/history`:
idempotency, all-or-nothing batches, unknown movies, write access (keys, hashed key file, read-only keys,
loopback), the rate limit, forgetting, the very next request's answer, a read-only data dir, PostgreSQL."""

from __future__ import annotations

import hashlib
import logging
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect
from sqlalchemy import exc as sqlalchemy_errors
from sqlalchemy.exc import OperationalError

from services.api.app import create_app
from services.serving.events import viewer_history
from services.serving.next import user_history
from services.serving.runtime import Runtime, open_runtime
from services.settings import Settings
from services.stores.events import (
    READ_ONLY,
    RETRY_SECONDS,
    SQLITE_VIEWER,
    SQLITE_VIEWER_UNTIMED,
    EventStore,
    WalCheckpointer,
)
from services.stores.sqlite_driver import sqlite_driver
from tests.support.servers import free_port, private_copy, wait_for
from tests.support.tmdb_data import cli_env
from tests.test_read_only import read_only

LOOPBACK = ("127.0.0.1", 50000)
KOREAN_USER = "시청자-1"


@pytest.fixture(scope="module")
def settings(built_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A private copy of the built data dir (its events.sqlite is this module's)."""
    copy = private_copy(built_settings, tmp_path_factory.mktemp("events") / "data")
    return copy.updated(precompute_k=0, reload_poll_seconds=0)


@pytest.fixture(scope="module")
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = open_runtime(settings, serving=True)
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def ratings(settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(settings.ratings_path)


def app_client(
    settings: Settings, runtime: Runtime, events: Path, client: tuple[str, int] = LOOPBACK, **flat: Any
) -> TestClient:
    """A client of the API over the module's runtime, with its own events database and settings."""
    changed = settings.updated(**flat).model_copy(update={"events_url": f"sqlite:///{events}"})
    return TestClient(create_app(changed, runtime=replace(runtime, settings=changed)), client=client)


@pytest.fixture
def client(settings: Settings, runtime: Runtime, tmp_path: Path) -> Iterator[TestClient]:
    """Loopback writes, no keys, an events database of the test's own."""
    with app_client(settings, runtime, tmp_path / "events.sqlite") as test_client:
        yield test_client


def event(event_id: str, movie_id: int = 1, kind: str = "watched", user: str = "u42", **more: Any) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": user, "movie_id": movie_id, "type": kind, **more}


def stored(client: TestClient) -> int:
    return EventStore(client.app.state.events.url).count()


def micros(at: datetime) -> int:
    """A naive UTC time as microseconds since 1970."""
    return (at - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def viewer_times(store: EventStore, user_id: str) -> list[int]:
    """The times of a viewer's events as the next list reads them (microseconds)."""
    return [at for at, _, _, _ in store.viewer(user_id)]


def stored_times(store: EventStore, user_id: str) -> list[int]:
    """The times of a viewer's events as stored, in microseconds."""
    return [micros(e.at) for e in store.of_user(user_id)]


def test_a_retried_batch_counts_once(client: TestClient) -> None:
    batch = [event("e-1", 1), event("e-2", 3114, "rated", rating=4.5), event("e-1", 1)]
    first = client.post("/events", json={"events": batch})
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 2, "duplicates": 1, "unknown_movies": []}  # e-1 twice in the batch
    assert client.post("/events", json={"events": batch}).json() == {
        "accepted": 0,
        "duplicates": 3,
        "unknown_movies": [],
    }
    assert stored(client) == 2


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"rating": 4.3, "type": "rated"}, "rating"),  # not in halves
        ({"rating": 4.0}, "rating"),  # only rated has a rating
        ({"type": "rated"}, "rating"),  # rated needs one
        ({"movie_id": True}, "movie_id"),
        ({"movie_id": 1.0}, "movie_id"),
        ({"type": "liked"}, "type"),
        ({"at": "2026-12-01T20:00:00"}, "at"),  # no time zone
        ({"at": 1764619200}, "at"),
        ({"user_id": "x" * 65}, "user_id"),
        ({"user_id": 42}, "user_id"),
        ({"event_id": ""}, "event_id"),
    ],
)
def test_one_bad_event_and_nothing_is_written(client: TestClient, bad: dict[str, Any], field: str) -> None:
    batch = [event("ok-1"), event("ok-2"), {**event("bad"), **bad}]
    response = client.post("/events", json={"events": batch})
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "events", 2, field]]
    assert not Path(client.app.state.events.path).exists()  # not even the database was made


def test_nan_is_refused(client: TestClient) -> None:
    body = '{"events": [{"event_id": "n", "user_id": "u", "movie_id": 1, "type": "rated", "rating": NaN}]}'
    response = client.post("/events", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "events", 0, "rating"]
    assert stored(client) == 0


def test_too_many_events_is_413(settings: Settings, runtime: Runtime, tmp_path: Path) -> None:
    with app_client(settings, runtime, tmp_path / "events.sqlite", max_events=2) as client:
        response = client.post("/events", json={"events": [event(f"e-{i}") for i in range(3)]})
        assert response.status_code == 413 and response.json()["detail"] == "at most 2 events per request, got 3"
        assert stored(client) == 0


def test_unknown_movies_are_kept_and_reported(client: TestClient) -> None:
    batch = [event("u-1", 999_999_999), event("u-2", 1), event("u-3", 999_999_999, "completed")]
    assert client.post("/events", json={"events": batch}).json() == {
        "accepted": 3,
        "duplicates": 0,
        "unknown_movies": [999_999_999],
    }
    history = client.get("/users/u42/history").json()["items"]
    assert [(i["movie_id"], i["type"]) for i in history] == [
        (999_999_999, "watched"),
        (1, "watched"),
        (999_999_999, "completed"),
    ]
    assert client.get("/users/u42/next").json()["ignored"] == [999_999_999]


def test_a_korean_user_id_round_trips(client: TestClient) -> None:
    batch = [
        event("k-1", 1, "completed", KOREAN_USER, at="2026-12-01T20:00:00Z"),
        event("k-2", 1, "rated", KOREAN_USER, rating=5.0, at="2026-12-01T22:00:00+02:00"),  # 20:00Z, received later
    ]
    assert client.post("/events", json={"events": batch}).json()["accepted"] == 2
    history = client.get(f"/users/{KOREAN_USER}/history").json()
    assert history["user_id"] == KOREAN_USER
    assert [(i["event_id"], i["type"], i["rating"], i["at"]) for i in history["items"]] == [
        ("k-1", "completed", None, "2026-12-01T20:00:00Z"),
        ("k-2", "rated", 5.0, "2026-12-01T20:00:00Z"),
    ]
    assert history["items"][0]["title"]  # a catalogue title
    next_ids = [i["movie_id"] for i in client.get(f"/users/{KOREAN_USER}/next?k=5").json()["items"]]
    assert len(next_ids) == 5 and 1 not in next_ids
    assert client.delete(f"/users/{KOREAN_USER}").json() == {
        "user_id": KOREAN_USER,
        "forgotten": 2,
        "movielens_ratings_kept": 0,
    }
    assert client.get(f"/users/{KOREAN_USER}/history").json()["items"] == []


def ml_user_recommended(client: TestClient, ratings: pd.DataFrame, movie_id: int) -> tuple[str, list[int]]:
    """A MovieLens user who never rated `movie_id` and whose next list holds it, and that list."""
    raters = set(ratings.loc[ratings["movieId"] == movie_id, "userId"])
    for user in sorted(set(ratings["userId"]) - raters):
        ids = [i["movie_id"] for i in client.get(f"/users/{user}/next?k=20").json()["items"]]
        if movie_id in ids:
            return str(user), ids
    raise AssertionError(f"no MovieLens user is recommended movie {movie_id}")


def test_an_event_shows_in_the_very_next_request(client: TestClient, ratings: pd.DataFrame) -> None:
    user, before = ml_user_recommended(client, ratings, 1)
    assert client.post("/events", json={"events": [event("ts-1", 1, "completed", user)]}).json()["accepted"] == 1
    after = client.get(f"/users/{user}/next?k=20&explain=true").json()["items"]
    ids = [i["movie_id"] for i in after]
    assert 1 not in ids and ids != before
    assert any(1 in i["because"] for i in after)  # the list follows Toy Story now
    items = client.get(f"/users/{user}/history").json()["items"]
    assert items[-1]["type"] == "completed" and items[-1]["movie_id"] == 1
    mine = ratings[ratings["userId"] == int(user)]
    assert [i["movie_id"] for i in items[:-1]] == mine.sort_values("timestamp", kind="stable")["movieId"].tolist()


def test_the_next_lists_history_is_the_viewers_items_in_time_order(
    client: TestClient, runtime: Runtime, ratings: pd.DataFrame
) -> None:
    """A MovieLens user's events merge with their ratings by time; a viewer with only events is read without
    times (in the store's order): both as the items `GET /users/{id}/history` lists."""
    store = client.app.state.events
    user = str(int(ratings["userId"].iloc[0]))
    movies = [m for m, _, _ in user_history(runtime, user)]
    times = [t for _, t, _ in user_history(runtime, user)]
    j = next(i for i in range(1, len(times)) if times[i] > times[i - 1])  # between two ratings' times
    between = datetime.fromtimestamp((times[j - 1] + times[j]) / 2, UTC).isoformat()
    new = [m for m in ratings["movieId"].unique().tolist() if m not in set(movies)][:4]
    later = (datetime.fromtimestamp(times[-1], UTC) + timedelta(days=1)).isoformat()
    batch = [
        event("m-1", new[0], "completed", user, at=between),
        event("m-2", movies[0], "rated", user, rating=2.0, at=later),  # disliked: leaves the history
        event("v-1", new[1], "watched", "신규", at="2026-12-01T20:00:00Z"),
        event("v-2", new[2], "not_interested", "신규", at="2026-12-01T19:00:00Z"),
        event("v-3", new[3], "abandoned", "신규", at="2026-12-01T21:00:00Z"),
        event("v-4", new[0], "completed", "신규", at="2026-12-01T18:00:00Z"),
    ]
    assert client.post("/events", json={"events": batch}).json()["accepted"] == len(batch)

    followed = viewer_history(runtime, store, user)
    assert followed.history == [m for m in [*movies[:j], new[0], *movies[j:]] if m != movies[0]]
    assert followed.seen == {movies[0]} and not followed.unwanted
    fresh = viewer_history(runtime, store, "신규")
    assert fresh.history == [new[0], new[1]]  # 18:00 then 20:00, whatever the order sent
    assert fresh.seen == {new[2], new[3]} and fresh.unwanted == {new[2]}
    listed = [(i["movie_id"], i["type"]) for i in client.get("/users/신규/history").json()["items"]]
    assert listed == [(new[0], "completed"), (new[2], "not_interested"), (new[1], "watched"), (new[3], "abandoned")]
    assert [at for at, _, _, _ in store.viewer("신규", timed=False)] == [0] * 4
    assert [e[1:] for e in store.viewer("신규", timed=False)] == [e[1:] for e in store.viewer("신규")]


def test_not_interested_never_comes_back_and_abandoned_is_seen_only(client: TestClient, ratings: pd.DataFrame) -> None:
    user, before = ml_user_recommended(client, ratings, 1)
    unwanted, abandoned, disliked = 1, before[1], before[2]
    batch = [
        event("ni-1", unwanted, "not_interested", user),
        event("ab-1", abandoned, "abandoned", user),
        event("lo-1", disliked, "rated", user, rating=2.0),
    ]
    client.post("/events", json={"events": batch})
    plain = [i["movie_id"] for i in client.get(f"/users/{user}/next?k=50").json()["items"]]
    seen_ok = [i["movie_id"] for i in client.get(f"/users/{user}/next?k=100&allow_seen=true").json()["items"]]
    assert not {unwanted, abandoned, disliked} & set(plain)
    assert unwanted not in seen_ok
    assert abandoned in seen_ok or disliked in seen_ok  # seen, and allowed back
    explained = client.get(f"/users/{user}/next?k=20&explain=true").json()["items"]
    assert not {abandoned, disliked} & {m for i in explained for m in i["because"]}  # not followed


def test_forgetting_keeps_the_movielens_ratings(client: TestClient, ratings: pd.DataFrame) -> None:
    user = int(ratings["userId"].iloc[0])
    count = int((ratings["userId"] == user).sum())
    client.post("/events", json={"events": [event(f"f-{i}", 1, "watched", str(user)) for i in range(3)]})
    assert len(client.get(f"/users/{user}/history").json()["items"]) == count + 3
    answer = client.delete(f"/users/{user}").json()
    assert answer == {"user_id": str(user), "forgotten": 3, "movielens_ratings_kept": count}
    items = client.get(f"/users/{user}/history").json()["items"]
    assert len(items) == count and {i["type"] for i in items} == {"movielens"}
    assert client.delete(f"/users/{user}").json()["forgotten"] == 0


def test_keys_guard_every_write(
    settings: Settings,
    runtime: Runtime,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(
        f"# write keys\n{hashlib.sha256(b'hashed-key').hexdigest()}\n"
        f"{hashlib.sha256(b'reader-key').hexdigest()} read-only\n\n",
        encoding="utf-8",
    )
    body = {"events": [event("a-1")]}
    remote = ("203.0.113.7", 4000)
    with (
        caplog.at_level(logging.INFO),
        app_client(
            settings, runtime, tmp_path / "events.sqlite", remote, api_keys="plain-key", api_keys_file=key_file
        ) as client,
    ):
        assert client.post("/events", json=body).status_code == 401
        assert client.post("/events", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.post("/events", json=body, headers={"X-API-Key": "reader-key"}).status_code == 403
        assert client.delete("/users/u42", headers={"X-API-Key": "reader-key"}).status_code == 403
        assert client.post("/events", json=body, headers={"X-API-Key": "plain-key"}).json()["accepted"] == 1
        assert client.post("/events", json=body, headers={"X-API-Key": "hashed-key"}).json()["duplicates"] == 1
        assert client.delete("/users/u42", headers={"X-API-Key": "hashed-key"}).json()["forgotten"] == 1
        assert client.get("/users/u42/history").status_code == 200  # reads need no key
    logged = capsys.readouterr().err + "\n".join(r.getMessage() for r in caplog.records)
    assert '"path": "/events"' in logged  # the access log (JSON lines on stderr) logged the writes
    assert not [k for k in ("plain-key", "hashed-key", "reader-key", "wrong") if k in logged]  # but no key
    assert "loopback clients only" not in logged


def test_a_bad_key_file_stops_the_app(settings: Settings, runtime: Runtime, tmp_path: Path) -> None:
    (tmp_path / "keys").write_text("not-a-digest\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"keys:1: not '<sha256 hex digest>'"):
        app_client(settings, runtime, tmp_path / "events.sqlite", api_keys_file=tmp_path / "keys")


@pytest.mark.parametrize(
    ("host", "status"), [("127.0.0.1", 200), ("::1", 200), ("192.0.2.1", 403), ("testclient", 403)]
)
def test_without_keys_only_loopback_writes(
    settings: Settings, runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture, host: str, status: int
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="services.api.writes"),
        app_client(settings, runtime, tmp_path / "events.sqlite", (host, 1234)) as client,
    ):
        assert client.post("/events", json={"events": [event("l-1")]}).status_code == status
        assert client.delete("/users/u42").status_code == status
    notices = [r.getMessage() for r in caplog.records if r.name == "services.api.writes"]
    assert len(notices) == 1 and "loopback clients only" in notices[0]


def test_writes_past_the_rate_get_429_with_retry_after(settings: Settings, runtime: Runtime, tmp_path: Path) -> None:
    with app_client(settings, runtime, tmp_path / "events.sqlite", write_rate="2/minute") as client:
        statuses = [client.post("/events", json={"events": [event(f"r-{i}")]}).status_code for i in range(2)]
        limited = client.delete("/users/u42")
    assert statuses == [200, 200] and limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "NEXTWATCH_WRITE_RATE" in limited.json()["detail"]


def test_the_routes_are_documented(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/events"]["post"]
    assert {"401", "403", "413", "422", "429", "503"} <= post["responses"].keys()
    assert post["security"] == [{"APIKeyHeader": []}]
    assert spec["components"]["schemas"]["EventBatch"]["examples"][0]["events"][0]["event_id"] == "e-1"
    assert "delete" in spec["paths"]["/users/{user_id}"]


def test_a_read_only_data_dir_answers_503_and_still_reads(settings: Settings, tmp_path: Path) -> None:
    data = private_copy(settings, tmp_path / "data").data_dir
    writer = EventStore(f"sqlite:///{data / 'events.sqlite'}")
    at = datetime(2026, 12, 1, 20)
    row = {"event_id": "w-1", "user_id": "u7", "movie_id": 1, "type": "watched", "rating": None}
    assert writer.add([{**row, "at": at, "received": at}]) == 1
    writer.close()
    before = sorted(str(p) for p in data.rglob("*"))
    port = free_port()
    with read_only(data) as prefix:
        env = cli_env(data, NEXTWATCH_PRECOMPUTE_K="0")
        server = subprocess.Popen(
            [*prefix, sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(server, url)
            posted = httpx.post(f"{url}/events", json={"events": [event("w-2", user="u7")]})
            assert (posted.status_code, posted.json()) == (503, {"detail": READ_ONLY})
            assert [i["event_id"] for i in httpx.get(f"{url}/users/u7/history").json()["items"]] == ["w-1"]
            assert httpx.get(f"{url}/users/u7/next").status_code == 200
            assert httpx.delete(f"{url}/users/u7").status_code == 503
        finally:
            server.terminate()
            err = server.communicate(timeout=60)[1]
    assert sorted(str(p) for p in data.rglob("*")) == before  # nothing written
    assert "loopback clients only" in err


def test_writers_take_turns_and_no_commit_checkpoints(tmp_path: Path) -> None:
    """Two stores on one file (as two worker processes: each its own file lock), two threads each (whose batches
    a commit may take together), writing overlapping batches at once: every event stored once and counted new
    once; no connection checkpoints in a commit, and the store's thread copies the WAL into the file."""
    path = tmp_path / "events.sqlite"
    stores = [EventStore(f"sqlite:///{path}") for _ in range(2)]
    at = datetime(2026, 12, 1, 20)
    accepted: list[int] = []

    def write(store: EventStore, first: int) -> None:
        for n in range(first, first + 20):  # batches 10-19 are every thread's
            rows = [
                {"event_id": f"e{n}-{j}", "user_id": f"u{j}", "movie_id": 1, "type": "watched", "rating": None}
                for j in range(50)
            ]
            accepted.append(store.add([{**r, "at": at, "received": at} for r in rows]))

    threads = [threading.Thread(target=write, args=(s, 10 * i)) for i, s in enumerate(stores) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with stores[0].engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    assert stores[0].count() == sum(accepted) == 30 * 50
    deadline = time.monotonic() + 30
    while True:  # the database file alone (without its WAL) holds every event once the checkpointer has run
        alone = tmp_path / "alone" / path.name
        alone.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, alone)
        with closing(sqlite3.connect(alone)) as copy:
            if copy.execute("SELECT count(*) FROM event").fetchone()[0] == 30 * 50:
                break
        assert time.monotonic() < deadline, "the WAL was not checkpointed"
        time.sleep(0.1)
    for store in stores:
        store.close()


def test_an_earlier_versions_table_gets_the_viewer_index_and_reads_in_order_without_sorting(tmp_path: Path) -> None:
    """A table made by an earlier version (indexed by user and time) keeps its events and gets this version's
    index at the first write, the retired one dropped; a viewer's events then come in order (ties by arrival,
    then id) straight from the index, without a temporary b-tree."""
    path = tmp_path / "events.sqlite"
    with closing(sqlite3.connect(path)) as old:
        old.execute(
            "CREATE TABLE event (event_id VARCHAR(128) NOT NULL PRIMARY KEY, user_id VARCHAR(64) NOT NULL, "
            "movie_id INTEGER NOT NULL, type VARCHAR(16) NOT NULL, rating FLOAT, at DATETIME NOT NULL, "
            "received DATETIME NOT NULL)"
        )
        old.execute("CREATE INDEX ix_event_user_at ON event (user_id, at)")
        old.execute("INSERT INTO event VALUES ('old-1', '시청자', 1, 'watched', NULL, "
                    "'2026-12-01 20:00:00.000000', '2026-12-01 21:00:00.000000')")  # fmt: skip
        old.commit()
    store = EventStore(f"sqlite:///{path}")
    try:
        same_time = datetime(2026, 12, 1, 20)
        rows = [("b", 3, datetime(2026, 12, 1, 22)), ("a", 2, datetime(2026, 12, 1, 22)), ("c", 4, same_time)]
        for event_id, movie, received in rows:
            store.add([{"event_id": event_id, "user_id": "시청자", "movie_id": movie, "type": "watched",
                        "rating": None, "at": same_time, "received": received}])  # fmt: skip
        with store.engine.connect() as conn:
            indexes = {i["name"]: i["column_names"] for i in inspect(conn).get_indexes("event")}
            plans = [
                " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", ("x",)))
                for statement in (SQLITE_VIEWER, SQLITE_VIEWER_UNTIMED)
            ]
        assert indexes == {"ix_event_user_order": ["user_id", "at", "received", "event_id"]}
        assert all("ix_event_user_order" in plan and "TEMP B-TREE" not in plan for plan in plans)
        assert [movie for _, movie, _, _ in store.viewer("시청자")] == [4, 1, 2, 3]  # by arrival, then by id
        assert viewer_times(store, "시청자") == stored_times(store, "시청자") == [micros(same_time)] * 4
        assert [e.event_id for e in store.of_user("시청자")] == ["c", "old-1", "a", "b"]
    finally:
        store.close()


def test_each_commit_is_checkpointed_as_it_lands() -> None:
    """The checkpointer copies a commit as soon as it is told of it, not after a pause since the last copy:
    checkpoints spaced apart let a large table's batches pile up in the WAL (about 1,250 pages a batch at 1M
    events) until the limit makes the writers wait for one long copy (BENCHMARKS.md, session 10)."""
    checkpoints: list[float] = []

    def checkpoint() -> int:  # no database: when each copy ran
        checkpoints.append(time.monotonic())
        return 0

    checkpointer = WalCheckpointer(Path("events.sqlite"), engine=lambda: None, writer=nullcontext())  # type: ignore[arg-type,return-value]
    checkpointer.checkpoint = checkpoint  # type: ignore[method-assign]
    began = time.monotonic()
    for n in range(1, 6):  # five commits, each told once the one before it was copied
        checkpointer.wrote()
        while len(checkpoints) < n:
            assert time.monotonic() - began < 10, "no checkpoint"
            time.sleep(0.005)
    checkpointer.close()
    assert time.monotonic() - began < 1.0  # a 0.5 s pause after each copy would take 2 s


def test_a_failing_checkpoint_is_retried_after_a_pause(caplog: pytest.LogCaptureFixture) -> None:
    """A checkpoint that fails (a full disk, say) is tried again at the next write, but not sooner than
    RETRY_SECONDS after the failure: writes coming fast do not make a log line each."""
    attempts: list[float] = []

    def checkpoint() -> int:
        attempts.append(time.monotonic())
        raise OperationalError("PRAGMA wal_checkpoint(PASSIVE)", None, Exception("disk I/O error"))

    checkpointer = WalCheckpointer(Path("events.sqlite"), engine=lambda: None, writer=nullcontext())  # type: ignore[arg-type,return-value]
    checkpointer.checkpoint = checkpoint  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="services.stores.events"):
        began = time.monotonic()
        while time.monotonic() - began < 1.2:  # a write every 10 ms
            checkpointer.wrote()
            time.sleep(0.01)
        checkpointer.close()
    assert 2 <= len(attempts) <= 4  # at 0, after 0.5 s, after 1 s (give or take a slow start)
    assert all(b - a >= RETRY_SECONDS * 0.9 for a, b in zip(attempts, attempts[1:]))
    assert sum("events checkpoint failed" in r.message for r in caplog.records) == len(attempts)


def test_a_broken_event_table_answers_503_not_500(settings: Settings, runtime: Runtime, tmp_path: Path) -> None:
    """The next list's read runs on the driver's own connection: its errors still come as SQLAlchemy's (503)."""
    path = tmp_path / "events.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE event (user_id TEXT)")  # an event table without the columns the read wants
    broken = settings.model_copy(update={"events_url": f"sqlite:///{path}"})
    with TestClient(create_app(broken, runtime=runtime), client=LOOPBACK) as client:
        answer = client.get("/users/u1/next")
    assert answer.status_code == 503 and "OperationalError" in answer.json()["detail"]


def test_the_drivers_errors_raise_as_sqlalchemys(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    try:
        with (
            engine.connect() as conn,
            pytest.raises(sqlalchemy_errors.OperationalError, match="no such table"),
            sqlite_driver(conn, "SELECT 1 FROM missing") as driver,
        ):
            driver.execute("SELECT 1 FROM missing")
    finally:
        engine.dispose()


def test_events_in_postgresql(postgres_url: str, settings: Settings, runtime: Runtime) -> None:
    on_pg = settings.model_copy(update={"events_url": postgres_url})
    batch = [
        event("pg-1", 1, "completed", KOREAN_USER, at="2026-12-01T20:00:00Z"),
        event("pg-2", 3114, "rated", KOREAN_USER, rating=4.5, at="2026-12-01T21:00:00Z"),
        event("pg-3", 999_999_999, "not_interested", KOREAN_USER, at="2026-12-01T19:00:00Z"),
        event("pg-1", 1, "completed", KOREAN_USER),
    ]
    with TestClient(create_app(on_pg, runtime=runtime), client=LOOPBACK) as client:
        assert client.get(f"/users/{KOREAN_USER}/history").json()["items"] == []  # no table yet: no events
        first = client.post("/events", json={"events": batch}).json()
        again = client.post("/events", json={"events": batch}).json()
        assert first == {"accepted": 3, "duplicates": 1, "unknown_movies": [999_999_999]}
        assert again == {"accepted": 0, "duplicates": 4, "unknown_movies": [999_999_999]}
        items = client.get(f"/users/{KOREAN_USER}/history").json()["items"]
        assert [i["event_id"] for i in items] == ["pg-3", "pg-1", "pg-2"]  # in time order
        ids = [i["movie_id"] for i in client.get(f"/users/{KOREAN_USER}/next?k=10").json()["items"]]
        assert not {1, 3114} & set(ids)
        store = EventStore(postgres_url)
        try:
            assert (
                viewer_times(store, KOREAN_USER)
                == stored_times(store, KOREAN_USER)
                == [micros(datetime(2026, 12, 1, hour)) for hour in (19, 20, 21)]
            )
            untimed = store.viewer(KOREAN_USER, timed=False)
            assert [e[1:] for e in untimed] == [e[1:] for e in store.viewer(KOREAN_USER)] and untimed[0][0] == 0
        finally:
            store.close()
        assert client.delete(f"/users/{KOREAN_USER}").json()["forgotten"] == 3
    store = EventStore(postgres_url)
    try:
        assert store.count() == 0 and store.of_user(KOREAN_USER) == []
        with store.engine.connect() as conn:
            indexes = {i["name"]: i["column_names"] for i in inspect(conn).get_indexes("event")}
        assert indexes == {"ix_event_user_order": ["user_id", "at", "received", "event_id"]}
    finally:
        store.close()
