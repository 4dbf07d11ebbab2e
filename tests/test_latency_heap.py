"""What the request-latency work of issues 19 and 21 keeps out of a request's way: the served heap is frozen out of
the garbage collector's full collections while the app serves, events are made cheaply, and the event store's
connections keep the indexes a batch touches in their page cache. Behaviour only: timings are benchmarks
(bench/next_latency.py, bench/events.py)."""

from __future__ import annotations

import gc
import threading
import weakref
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.serving import reload
from services.serving.events import NewEvent, record
from services.settings import Settings
from services.stores.events import CACHE_KIB, EventStore


def test_the_heap_is_frozen_while_the_app_serves(built_settings: Settings) -> None:
    with TestClient(create_app(built_settings.updated(reload_poll_seconds=0))) as client:
        assert client.get("/health").status_code == 200
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0  # given back when it stops


def test_event_connections_keep_a_larger_page_cache_and_stay_durable(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.sqlite'}")
    try:
        at = datetime(2026, 12, 1, 20, tzinfo=UTC)
        done = record(store, [NewEvent("e-1", "u1", 1, "watched", None, at)] * 2, frozenset({1}))
        assert (done.accepted, done.duplicates, done.unknown_movies) == (1, 1, [])
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -CACHE_KIB
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: fsynced before the answer
    finally:
        store.close()


class _Runtime:
    """What the watcher reads of a runtime: its generation, and close() (noted in `closed`)."""

    def __init__(self, generation: str, closed: list[str] | None = None) -> None:
        self.settings = SimpleNamespace(data_dir=Path("unused"), generation=generation)
        self._closed = closed if closed is not None else []

    def close(self) -> None:
        self._closed.append(self.settings.generation)


def test_a_replaced_runtime_is_closed_then_collectable_when_retired(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a reload the old build is closed, nothing of the watcher keeps it, and `on_retired` (where the app
    collects it and freezes the heap again) runs after that."""
    monkeypatch.setattr(reload, "GRACE_SECONDS", 0.01)
    monkeypatch.setattr(reload, "current_generation", lambda data_dir: "g2")
    closed: list[str] = []
    holder = SimpleNamespace(runtime=_Runtime("g1", closed))
    gone = weakref.ref(holder.runtime)
    seen: list[tuple[list[str], bool]] = []
    retired = threading.Event()

    def on_retired() -> None:
        gc.collect()
        seen.append((list(closed), gone() is None))
        retired.set()

    watcher = reload.GenerationWatcher(holder, _Runtime, poll_seconds=60, on_retired=on_retired)  # type: ignore[arg-type]
    assert watcher.check() is True
    assert holder.runtime.settings.generation == "g2"
    assert retired.wait(5)
    assert seen == [(["g1"], True)]  # closed first, then nothing refers to it
