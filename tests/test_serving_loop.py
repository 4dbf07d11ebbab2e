"""Answers from memory run on the event loop; an answer that needs a store runs again on a worker thread.

The single-movie recommendation route is `async def`: its work is a few neighbour-table reads, so the
threadpool hop (more than half of a request's time) is skipped. A guarded store call inside
`in_memory_only` raises WouldBlock, which the strategies' degradation handlers let through, and the
whole answer is computed again on a worker thread, where the call may wait under its time limit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.recommender.filters import ItemFacts
from services.recommender.fusion import FusionStrategy
from services.serving import guards
from services.serving.guards import Guard, GuardedSource, WouldBlock, in_memory_only, on_the_loop_unless_blocking
from services.settings import Settings
from services.stores.generations import resolve_generation
from tests.support.servers import private_copy

CATALOG = list(range(1, 21))


class Lists:
    """Each query's next ten movies, as a store-backed source would give them."""

    name = "vector"

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        return [[(m, 1.0 / r) for r, m in enumerate((x for x in CATALOG if x != q), 1)][:k] for q in movie_ids]


def run(fn: Callable[[], Any]) -> tuple[Any, int]:
    """on_the_loop_unless_blocking(fn) in a fresh event loop; its answer and the loop's thread id."""

    async def main() -> tuple[Any, int]:
        return await on_the_loop_unless_blocking(fn), threading.get_ident()

    return asyncio.run(main())


def test_memory_only_work_runs_once_on_the_loop() -> None:
    threads: list[int] = []
    answer, loop_thread = run(lambda: threads.append(threading.get_ident()) or "답")
    assert answer == "답" and threads == [loop_thread]


def test_work_that_calls_a_store_runs_again_on_a_worker_thread() -> None:
    guard = Guard("vectors", timeout=1.0)
    threads: list[int] = []

    def work() -> list[int]:
        threads.append(threading.get_ident())
        return guard.call(lambda: [1, 2, 3])

    try:
        answer, loop_thread = run(work)
    finally:
        guard.close()
    assert answer == [1, 2, 3]
    assert len(threads) == 2 and threads[0] == loop_thread and threads[1] != loop_thread


def test_a_failing_store_still_degrades_on_the_worker_thread() -> None:
    guard = Guard("vectors", timeout=1.0)

    def down() -> None:
        raise ConnectionError("qdrant is down")

    try:
        with pytest.raises(guards.StoreUnavailable, match="vectors unavailable: ConnectionError"):
            run(lambda: guard.call(down))
    finally:
        guard.close()


def test_the_hybrid_lets_would_block_through_instead_of_degrading() -> None:
    guard = Guard("vectors", timeout=1.0)
    facts = ItemFacts(CATALOG, ["Drama"] * len(CATALOG), [False] * len(CATALOG))
    hybrid = FusionStrategy(
        "hybrid", [GuardedSource(Lists(), guard)], {"vector": 1.0}, facts=facts, optional=["vector"]
    )
    try:
        with in_memory_only(), pytest.raises(WouldBlock):
            hybrid.recommend_batch([1], 5)
        served = hybrid.recommend_batch([1], 5)  # outside: the store is asked
    finally:
        guard.close()
    assert served.missing == [] and [r.movie_id for r in served.items[0]] == [2, 3, 4, 5, 6]


class Memory:
    """An in-memory source that notes when it answered, once `ready` is set (or after a second)."""

    name = "sequential"

    def __init__(self, log: list[str], ready: threading.Event) -> None:
        self.log = log
        self.ready = ready

    def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        self.ready.wait(1.0)
        self.log.append("memory answered")
        return [[(m, 1.0) for m in reversed(CATALOG) if m != q][:k] for q in movie_ids]


def test_the_hybrid_starts_its_store_call_first_and_answers_as_without_it() -> None:
    guard = Guard("vectors", timeout=1.0)
    log: list[str] = []
    started = threading.Event()

    class Slow(Lists):
        def candidates(self, movie_ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
            log.append("store started")
            started.set()
            return super().candidates(movie_ids, k)

    facts = ItemFacts(CATALOG, ["Drama"] * len(CATALOG), [False] * len(CATALOG))
    weights = {"sequential": 1.0, "vector": 0.5}
    plain = FusionStrategy("hybrid", [Memory([], started), Lists()], weights, facts=facts, optional=["vector"])
    hybrid = FusionStrategy(
        "hybrid", [Memory(log, started), GuardedSource(Slow(), guard)], weights, facts=facts, optional=["vector"]
    )
    try:
        served = hybrid.recommend_batch([1, 2], 5, explain=True)
    finally:
        guard.close()
    assert log == ["store started", "memory answered"]  # asked before the in-memory source, listed after it
    assert served == plain.recommend_batch([1, 2], 5, explain=True)


def test_a_started_call_keeps_its_time_limit_from_the_start() -> None:
    guard = Guard("vectors", timeout=0.2)
    release = threading.Event()
    try:
        result = guard.start(release.wait, 5)
        with pytest.raises(guards.StoreUnavailable, match="no answer within 0.2 s"):
            result()
    finally:
        release.set()
        guard.close()
    with in_memory_only(), pytest.raises(WouldBlock):
        Guard("vectors", timeout=None).start(lambda: None)


class CountingHops:
    """Counts the worker-thread runs of the serving layer."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = guards.anyio.to_thread.run_sync

        async def counted(fn: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await real(fn, *args, **kwargs)

        monkeypatch.setattr(guards.anyio.to_thread, "run_sync", counted)


def test_table_answers_stay_on_the_loop_and_live_ones_hop(
    built_settings: Settings, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same request, with the build's tables (no hop) and without them (one hop), answers the same
    (scores within float tolerance: the table holds the exact search's float32 products)."""
    tabled = built_settings.updated(neighbour_cache_size=0)
    live = private_copy(built_settings, tmp_path_factory.mktemp("live") / "data", neighbour_cache_size=0)
    for table in resolve_generation(live).neighbours_dir.glob("vector.*"):
        table.unlink()
    hops = CountingHops(monkeypatch)
    answers = []
    for settings, expected_hops in ((tabled, 0), (live, 1)):
        with TestClient(create_app(settings)) as client:
            assert ("vector" in client.app.state.runtime.tables) is (expected_hops == 0)
            hops.count = 0
            response = client.get("/movies/1/recommendations?k=10&strategy=vector")
            assert response.status_code == 200, response.text
            assert hops.count == expected_hops
            answers.append(response.json())
    tabled_items, live_items = (answer["items"] for answer in answers)
    assert [i["movie_id"] for i in tabled_items] == [i["movie_id"] for i in live_items] and len(live_items) == 10
    assert [i["score"] for i in tabled_items] == pytest.approx([i["score"] for i in live_items], abs=1e-5)
