"""What the request-latency work of issues 19 and 21 keeps out of a request's way: the served heap is frozen out of
the garbage collector's full collections while the app serves, events are made cheaply, and the event store's
connections keep the indexes a batch touches in their page cache. Behaviour only: timings are benchmarks
(bench/next_latency.py, bench/events.py)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from services.api.app import create_app
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
