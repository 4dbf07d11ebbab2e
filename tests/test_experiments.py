"""Experiments (#22): the config file, deterministic assignment and stable shares, exposures (durable,
idempotent), the online hit computation, and the routes over a built data dir."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipelines import steps
from services.api.app import create_app
from services.recommender.base import History
from services.recommender.history import SequentialHistorySource
from services.serving.experiment_report import arm_of, bootstrap_means, judge
from services.serving.experiments import (
    ExperimentBook,
    ExperimentsError,
    load_experiments,
    missing_parts,
    pinned_generations,
)
from services.serving.runtime import Runtime, open_runtime
from services.settings import Settings
from services.stores.events import EventStore
from services.stores.exposures import EXPOSURES_PER_CHECKPOINT, Exposure, ExposureStore, Watch
from services.stores.generations import current_generation, generations
from tests.support.servers import private_copy

FIFTY_FIFTY = """
[experiments.next-list]
salt = "2026-12"
control = "hybrid"
variants.hybrid = { share = 0.5, strategy = "hybrid" }
variants.sequential = { share = 0.5, strategy = "sequential" }
"""
VIEWERS = [f"viewer-{i}" for i in range(100_000)]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_assignment_is_deterministic_and_shares_hold(tmp_path: Path) -> None:
    experiment = load_experiments(write(tmp_path / "x.toml", FIFTY_FIFTY))["next-list"]
    assert [v.name for v in experiment.variants] == ["hybrid", "sequential"]  # the control first
    first = [experiment.assign(v).name for v in VIEWERS]
    again = load_experiments(tmp_path / "x.toml")["next-list"]
    assert [again.assign(v).name for v in VIEWERS] == first
    assert abs(first.count("hybrid") / len(VIEWERS) - 0.5) < 0.01


def test_a_changed_share_moves_only_the_viewers_it_must(tmp_path: Path) -> None:
    before = load_experiments(write(tmp_path / "a.toml", FIFTY_FIFTY))["next-list"]
    sixty = FIFTY_FIFTY.replace('share = 0.5, strategy = "hybrid"', 'share = 0.6, strategy = "hybrid"')
    after = load_experiments(write(tmp_path / "b.toml", sixty.replace("0.5", "0.4")))["next-list"]
    moved = [v for v in VIEWERS if before.assign(v).name != after.assign(v).name]
    assert abs(len(moved) / len(VIEWERS) - 0.10) < 0.01
    assert all(before.assign(v).name == "sequential" and after.assign(v).name == "hybrid" for v in moved)
    assert abs(sum(after.assign(v).name == "hybrid" for v in VIEWERS) / len(VIEWERS) - 0.6) < 0.01


def test_another_salt_reshuffles(tmp_path: Path) -> None:
    one = load_experiments(write(tmp_path / "a.toml", FIFTY_FIFTY))["next-list"]
    two = load_experiments(write(tmp_path / "b.toml", FIFTY_FIFTY.replace("2026-12", "2027-01")))["next-list"]
    same = sum(one.assign(v).name == two.assign(v).name for v in VIEWERS[:10_000])
    assert 4_700 < same < 5_300


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (
            ('0.5, strategy = "sequential"', '0.6, strategy = "sequential"'),
            "experiments.next-list.variants: the shares add up to 1.1",
        ),
        (('strategy = "sequential"', 'strategy = "nope"'), "experiments.next-list.variants.sequential.strategy:"),
        (('control = "hybrid"', 'control = "other"'), "experiments.next-list.control:"),
        (('salt = "2026-12"', "salt = 3"), "experiments.next-list.salt:"),
        (
            ('strategy = "sequential" }', 'strategy = "sequential", generation = "x" }'),
            "variants.sequential.generation: variant sequential is pinned to build generation 'x', which this data",
        ),
        (
            ('strategy = "sequential" }', 'strategy = "sequential", weights = { series = 1 } }'),
            "sequential.weights: only",
        ),
        (('strategy = "sequential" }', 'strategy = "sequential", history = 0 }'), "sequential.history: a whole"),
        (
            ('strategy = "sequential" }', 'strategy = "sequential", colour = 1 }'),
            "variants.sequential.colour: unknown key",
        ),
        (("[experiments.next-list]", "[experiments.next-list"), "unreadable"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file_and_key(tmp_path: Path, change: tuple[str, str], key: str) -> None:
    path = write(tmp_path / "bad.toml", FIFTY_FIFTY.replace(*change))
    with pytest.raises(ExperimentsError) as caught:
        load_experiments(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and key in message


def test_a_stopped_variant_sends_its_viewers_to_control_without_a_restart(tmp_path: Path) -> None:
    path = write(tmp_path / "x.toml", FIFTY_FIFTY)
    book = ExperimentBook.open(path)
    viewers = VIEWERS[:2000]
    assert {book.assign(v)[1].name for v in viewers} == {"hybrid", "sequential"}  # type: ignore[index]
    write(path, FIFTY_FIFTY.replace('strategy = "sequential" }', 'strategy = "sequential", stopped = true }'))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert {book.assign(v)[1].name for v in viewers} == {"hybrid"}  # type: ignore[index]
    write(path, "not toml [")  # a broken edit keeps the last good experiments
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000))
    assert {book.assign(v)[1].name for v in viewers} == {"hybrid"}  # type: ignore[index]


def exposure(request_id: str, user: str, served: datetime, items: tuple[int, ...], variant: str = "a") -> Exposure:
    return Exposure(request_id, user, "x", variant, "hybrid", items, served)


def test_exposures_are_durable_and_idempotent_by_request_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.sqlite'}"
    store = ExposureStore(EventStore(url))
    at = datetime(2026, 12, 1, 20)
    assert store.add(exposure("r-1", "u1", at, (1, 2, 3)))
    assert not store.add(exposure("r-1", "u1", at, (4, 5, 6)))  # a retried request is logged once
    store.close()
    reopened = ExposureStore(EventStore(url))  # another process, later: it is there
    assert reopened.of_experiment("x") == [exposure("r-1", "u1", at, (1, 2, 3))]
    assert reopened.of_experiment("y") == []


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another writer's transaction on the SQLite file (as an event batch's commit holds it)."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("COMMIT")
        other.close()


def test_an_exposure_logged_while_another_writer_commits_does_not_wait_and_is_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    store = ExposureStore(EventStore(f"sqlite:///{path}"))
    at = datetime(2026, 12, 1, 20)
    store.log(exposure("r-1", "u1", at, (1, 2)))  # nobody else writes: stored before log returns
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT request_id FROM exposure").fetchall() == [("r-1",)]
    with write_lock(path):
        began = time.perf_counter()
        store.log(exposure("r-2", "u1", at, (3, 4)))
        store.log(exposure("r-2", "u1", at, (3, 4)))  # a retried request
        assert time.perf_counter() - began < 1  # not SQLite's 5 s busy wait
    store.flush()  # the writer thread stored them once the lock was released
    assert [x.request_id for x in store.of_experiment("x")] == ["r-1", "r-2"]
    with write_lock(path):
        store.log(exposure("r-3", "u2", at, (5,)))
        store.log(exposure("r-4", "u1", at, (6,)))
    assert store.forget("u2") == 1  # what was logged before is forgotten too
    store.close()  # stores what is still queued
    reopened = ExposureStore(EventStore(f"sqlite:///{path}"))
    assert [x.request_id for x in reopened.of_experiment("x")] == ["r-1", "r-2", "r-4"]


def test_exposures_wake_the_checkpointer_every_hundredth_commit(tmp_path: Path) -> None:
    """Each wake copies the WAL with two fsyncs, which slowed a 200-event viewer's answer by 1-3 ms when every
    exposure woke it; the WAL of a server that only answers still never grows past ~100 commits."""
    events = EventStore(f"sqlite:///{tmp_path / 'events.sqlite'}")
    store = ExposureStore(events)
    wakes: list[None] = []
    events.wrote = lambda: wakes.append(None)  # type: ignore[method-assign]
    at = datetime(2026, 12, 1, 20)
    for i in range(2 * EXPOSURES_PER_CHECKPOINT + 1):
        store.log(exposure(f"r-{i}", "u1", at, (1,)))
    assert len(wakes) == 2
    store.close()


def test_online_hits_misses_pending_and_the_horizon() -> None:
    t0 = datetime(2026, 12, 1, 20)
    hour = timedelta(hours=1)
    exposures = [
        exposure("hit", "u1", t0, (10, 11)),
        exposure("miss-other-movie", "u1", t0 + 2 * hour, (10, 11)),
        exposure("miss-too-late", "u2", t0, (20,)),
        exposure("pending", "u3", t0 + 30 * hour, (30,)),
        exposure("no-event-horizon-passed", "u4", t0, (40,)),
        exposure("beyond-top-10", "u5", t0, tuple(range(100, 111))),
    ]
    watches = [
        Watch("u1", 11, t0 + hour),  # u1's next after the first exposure: in the list
        Watch("u1", 12, t0 + 3 * hour),  # after the second: not in it
        Watch("u2", 20, t0 + 25 * hour),  # in the list, but after the 24-hour horizon
        Watch("u5", 110, t0 + hour),  # the 11th item: not in the top 10
    ]
    outcomes = judge(exposures, watches, 24 * hour, now=t0 + 40 * hour)
    assert outcomes == [True, False, False, None, False, False]


def test_the_bootstrap_resamples_viewers() -> None:
    import numpy as np

    users = ["a"] * 9 + ["b"]  # one viewer with nine hits, one with a miss
    means = bootstrap_means(users, [True] * 9 + [False], 2000, np.random.default_rng(0))
    assert set(np.round(means, 6)) <= {0.0, 0.9, 1.0}  # each resample keeps a viewer's exposures together


# ---- the routes over a built data dir ------------------------------------------------------------------


@pytest.fixture(scope="module")
def runtime(built_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    copy = private_copy(built_settings, tmp_path_factory.mktemp("experiments") / "data")
    rt = open_runtime(copy.updated(precompute_k=0, reload_poll_seconds=0), serving=True)
    yield rt
    rt.close()


def client_of(runtime: Runtime, tmp_path: Path, experiments: str | None) -> TestClient:
    path = None if experiments is None else write(tmp_path / "experiments.toml", experiments)
    update = {"events_url": f"sqlite:///{tmp_path / 'events.sqlite'}", "experiments": path}
    settings = runtime.settings.model_copy(update=update)
    return TestClient(create_app(settings, runtime=replace(runtime, settings=settings)), client=("127.0.0.1", 5000))


def test_answers_carry_the_request_id_and_variant_and_are_reported(runtime: Runtime, tmp_path: Path) -> None:
    weighted = FIFTY_FIFTY.replace(
        'strategy = "sequential" }', 'strategy = "hybrid", weights = { sequential = 1.0, series = 1.0 } }'
    )
    with client_of(runtime, tmp_path, weighted) as client:
        variants = {}
        for user in ("1", "2", "3", "4", "5", "6"):
            answer = client.get(f"/users/{user}/next?k=10", headers={"X-Request-ID": f"r-{user}"}).json()
            assert answer["request_id"] == f"r-{user}" and answer["variant"] in ("hybrid", "sequential")
            variants[user] = answer["variant"]
            top = answer["items"][0]["movie_id"]
            client.post(
                "/events",
                json={"events": [{"event_id": f"e-{user}", "user_id": user, "movie_id": top, "type": "completed"}]},
            )
        client.get("/users/1/next", headers={"X-Request-ID": "r-1"})  # a retried request: logged once
        report = client.get("/experiments/next-list").json()
        assert sum(v["exposures"] for v in report["variants"].values()) == 6
        assert all(v["hr@10"] == 1.0 for v in report["variants"].values() if v["exposures"])
        assert report["difference"]["against"] == "hybrid" and report["difference"]["variant"] == "sequential"
        assert client.get("/experiments").json()["experiments"][0]["name"] == "next-list"
        assert client.get("/experiments/nope").status_code == 404
        assert client.delete("/users/1").status_code == 200  # forgetting a viewer forgets their exposures
        exposures = client.app.state.exposures.of_experiment("next-list")  # type: ignore[attr-defined]
        assert len(exposures) == 5 and "1" not in {x.user_id for x in exposures}
        metrics = client.get("/metrics").text
        assert 'nextwatch_experiment_exposures_total{experiment="next-list"' in metrics
        assert "nextwatch_experiment_hits{" in metrics


def test_without_experiments_the_variant_is_null(runtime: Runtime, tmp_path: Path) -> None:
    with client_of(runtime, tmp_path, None) as client:
        answer = client.get("/users/1/next").json()
        assert answer["variant"] is None and answer["request_id"]
        assert client.get("/experiments").json() == {"experiments": []}
    assert ExposureStore(EventStore(f"sqlite:///{tmp_path / 'events.sqlite'}")).of_experiment("x") == []


def test_a_bad_file_stops_the_app_at_start(runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(ExperimentsError, match="experiments.next-list.control"):
        client_of(runtime, tmp_path, FIFTY_FIFTY.replace('control = "hybrid"', 'control = "x"'))


def test_the_command_line_shows_a_bad_file_as_its_one_line(tmp_path: Path) -> None:
    from pipelines.cli_errors import one_line

    with pytest.raises(ExperimentsError) as caught:
        load_experiments(write(tmp_path / "bad.toml", "[other]\nx = 1\n"))
    assert (
        one_line(caught.value)
        == f"experiments file {tmp_path / 'bad.toml'}: other: expected [experiments.NAME] tables only"
    )


def test_the_report_plots_each_variants_cumulative_hit_ratio_over_time(runtime: Runtime, tmp_path: Path) -> None:
    """Hand-made exposures and events over two hours: 10-minute buckets, each variant's cumulative HR@10 at
    the end of every bucket that scored one of its exposures or a later one; pending exposures are left out."""
    t0 = datetime(2026, 12, 1, 20)
    minute = timedelta(minutes=1)
    with client_of(runtime, tmp_path, FIFTY_FIFTY) as client:
        store = client.app.state.exposures  # type: ignore[attr-defined]
        served = [
            ("r1", "u1", "hybrid", 0, (10, 11)),  # hit
            ("r2", "u3", "sequential", 30, (30,)),  # hit
            ("r3", "u2", "hybrid", 65, (20,)),  # miss: another movie
            ("r4", "u4", "sequential", 125, (40, 41)),  # hit
        ]
        for request_id, user, variant, minutes, items in served:
            store.add(Exposure(request_id, user, "next-list", variant, variant, items, t0 + minutes * minute))
        store.add(
            Exposure("r5", "u5", "next-list", "hybrid", "hybrid", (50,), datetime.now(UTC).replace(tzinfo=None))
        )  # pending
        watched = [("u1", 11, 5), ("u3", 30, 40), ("u2", 21, 70), ("u4", 41, 130)]
        store.events.add(
            [
                {
                    "event_id": f"e-{u}",
                    "user_id": u,
                    "movie_id": m,
                    "type": "completed",
                    "rating": None,
                    "at": t0 + minutes * minute,
                    "received": t0 + minutes * minute,
                }
                for u, m, minutes in watched
            ]
        )
        report = client.get("/experiments/next-list").json()
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["OverTime"]["examples"] and schemas["ExperimentReport"]["properties"]["over_time"]["examples"]
    assert report["variants"]["hybrid"]["pending"] == 1 and report["variants"]["hybrid"]["hits"] == 1
    assert report["over_time_bucket_seconds"] == 600
    points = [(p["at"], p["variant"], p["exposures"], p["hits"], p["hr@10"]) for p in report["over_time"]]
    assert points == [
        ("2026-12-01T20:10:00Z", "hybrid", 1, 1, 1.0),
        ("2026-12-01T20:40:00Z", "hybrid", 1, 1, 1.0),
        ("2026-12-01T20:40:00Z", "sequential", 1, 1, 1.0),
        ("2026-12-01T21:10:00Z", "hybrid", 2, 1, 0.5),
        ("2026-12-01T21:10:00Z", "sequential", 1, 1, 1.0),
        ("2026-12-01T22:10:00Z", "hybrid", 2, 1, 0.5),
        ("2026-12-01T22:10:00Z", "sequential", 2, 2, 1.0),
    ]
    assert set(report) >= {"name", "variants", "difference"}  # the contract's fields stay


def pinned(generation: str) -> str:
    return FIFTY_FIFTY.replace('strategy = "sequential" }', f'strategy = "sequential", generation = "{generation}" }}')


PINNED = """
[experiments.builds]
salt = "pin"
control = "new"
variants.new = { share = 0.5, strategy = "collaborative" }
variants.old = { share = 0.5, strategy = "collaborative", generation = "GENERATION" }
"""


def test_a_variant_pinned_to_another_generation_answers_from_it_and_builds_keep_it(
    built_settings: Settings, tmp_path: Path
) -> None:
    same = {"als_factors": 16, "als_iterations": 5, "source": built_settings.source}
    settings = private_copy(built_settings, tmp_path / "data", **same)
    old = str(current_generation(settings.data_dir))
    steps.build(settings.updated(als_factors=12), progress=False)  # a new generation, other ALS factors
    new = str(current_generation(settings.data_dir))
    assert new != old
    path = write(tmp_path / "builds.toml", PINNED.replace("GENERATION", old))
    served = settings.updated(
        als_factors=12, experiments=path, events_url=f"sqlite:///{tmp_path / 'events.sqlite'}", precompute_k=0
    )
    with TestClient(create_app(served), client=("127.0.0.1", 5000)) as client:
        arms: dict[str, list[bool]] = {"new": [], "old": []}
        for user in map(str, range(1, 41)):
            pinned_answer = client.get(f"/users/{user}/next?k=10").json()
            live = client.get(f"/users/{user}/next?k=10&strategy=collaborative").json()  # the served generation
            same_items = [i["movie_id"] for i in pinned_answer["items"]] == [i["movie_id"] for i in live["items"]]
            arms[pinned_answer["variant"]].append(same_items)
        report = client.get("/experiments/builds").json()
    assert arms["new"] and all(arms["new"])  # the served generation answers the control
    # the pinned one answers its variant with its own ALS model (a viewer the release does not know gets
    # recent-popular from both)
    assert arms["old"] and arms["old"].count(False) >= 0.8 * len(arms["old"])
    assert report["variants"]["old"]["generation"] == old and not report["variants"]["old"]["degraded"]
    assert report["variants"]["old"]["offline_hr@10"] is None  # the offline report is the served build's

    time.sleep(1.1)  # generation ids have a one-second resolution
    steps.build(served.updated(als_factors=10), progress=False)
    assert old in generations(settings.data_dir)  # pinned: kept beside the last two
    steps.build(settings.updated(als_factors=8), progress=False)  # no experiments file: nothing pinned
    assert old not in generations(settings.data_dir)


def test_a_pin_to_a_generation_not_held_is_one_line_and_one_that_cannot_open_sends_viewers_to_control(
    runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served = str(runtime.settings.generation)
    path = write(tmp_path / "x.toml", PINNED.replace("GENERATION", "20990101T000000"))
    with pytest.raises(ExperimentsError) as caught:
        load_experiments(path, [served])
    message = str(caught.value)
    assert "\n" not in message and "variants.old.generation: variant old is pinned to build generation" in message
    assert f"which this data dir does not hold (it holds: {served})" in message

    def cannot_open(generation: str) -> Runtime:
        raise RuntimeError(f"no build generation {generation}")

    book = ExperimentBook.open(path, lambda: ["20990101T000000", served], cannot_open)
    viewers = VIEWERS[:200]
    assert {arm_of(runtime, book, v, None).variant.name for v in viewers} == {"new"}  # type: ignore[union-attr]
    assert "build generation 20990101T000000 (pinned by an experiment) cannot be opened" in caplog.text
    old = book.experiments["builds"].variant("old")
    assert missing_parts(book.runtime_for(runtime, old), old) == ["generation"]
    assert pinned_generations(path) == {"20990101T000000"} and pinned_generations(None) == set()


def test_a_variant_reads_its_own_history_length(runtime: Runtime, tmp_path: Path) -> None:
    """`history = 1`: the variant's sequential source reads only the last movie (never answering a seen one),
    through the API; the default reads the last NEXTWATCH_HISTORY_LAST."""
    assert runtime.sequential is not None and runtime.settings.history.last > 1
    short = FIFTY_FIFTY.replace('variants.hybrid = { share = 0.5, strategy = "hybrid" }', "").replace(
        'control = "hybrid"', 'control = "short"'
    )
    short = short.replace(
        'variants.sequential = { share = 0.5, strategy = "sequential" }',
        'variants.short = { share = 1.0, strategy = "sequential", history = 1 }',
    )
    shape = runtime.settings.history

    def source(last: int) -> SequentialHistorySource:
        return SequentialHistorySource(runtime.sequential, last, shape.decay, scoring=shape.sequential)

    with client_of(runtime, tmp_path, short) as client:
        for user in map(str, range(1, 60)):
            known = tuple(
                m
                for m in (i["movie_id"] for i in client.get(f"/users/{user}/history").json()["items"])
                if m in runtime.known_ids
            )
            one, usual = ([m for m, _ in source(last).scores(History(known), 10)] for last in (1, 10))
            if len(one) >= 5 and one[:5] != usual[:5]:
                break
        else:
            pytest.fail("no viewer whose last movie alone answers otherwise")
        answer = client.get(f"/users/{user}/next?k=10").json()
    assert answer["variant"] == "short" and answer["strategy"] == "sequential"
    served = [i["movie_id"] for i in answer["items"]]
    assert served[:5] == one[:5] and not set(served) & set(known)
    report_entry = load_experiments(tmp_path / "experiments.toml")["next-list"].variant("short")
    assert report_entry.history == 1 and report_entry.own_settings  # no offline figure for it
