"""kill -9 of a server taking `POST /events`, at seeded random moments, then a restart: every acknowledged event
is stored, each exactly once, and a batch sent again (acknowledged or not) never counts an event twice."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.settings import Settings
from tests.support.servers import free_port, private_copy, wait_for
from tests.support.tmdb_data import cli_env

pytestmark = pytest.mark.integration
SEED = 20261205
KILLS = 4
BATCH = 20


def start(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    """`nextwatch serve` as a child process, answering; its URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(server, url)
    return server, url


def stored_ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT event_id FROM event")]


def test_acknowledged_events_survive_kill_9_exactly_once(built_settings: Settings, tmp_path: Path) -> None:
    data = private_copy(built_settings, tmp_path / "data").data_dir
    env = cli_env(
        data,
        NEXTWATCH_PRECOMPUTE_K="0",
        NEXTWATCH_RELOAD_POLL_SECONDS="0",
        NEXTWATCH_WRITE_RATE="1000000/second",
        NEXTWATCH_ACCESS_LOG="false",
    )
    rng = random.Random(SEED)
    batches: list[list[dict[str, Any]]] = []
    answers: list[tuple[int, dict[str, int]]] = []  # (batch, its acknowledged answer)
    unanswered = 0
    for _ in range(KILLS):
        server, url = start(env, tmp_path)
        killer = threading.Timer(rng.uniform(0.2, 1.5), server.kill)  # SIGKILL, whatever it is doing
        killer.start()
        with httpx.Client(base_url=url, timeout=30) as client:
            while True:
                if batches and rng.random() < 0.3:  # an earlier batch again, as a client retrying would
                    index = rng.randrange(len(batches))
                else:
                    index = len(batches)
                    batches.append(
                        [
                            {"event_id": f"b{index}-{j}", "user_id": f"u{j % 7}", "movie_id": 1 + j, "type": "watched"}
                            for j in range(BATCH)
                        ]
                    )
                try:
                    response = client.post("/events", json={"events": batches[index]})
                except httpx.TransportError:
                    unanswered += 1
                    break
                assert response.status_code == 200, response.text
                answers.append((index, response.json()))
        killer.join()
        server.wait(timeout=30)
        acknowledged = {e["event_id"] for i, _ in answers for e in batches[i]}
        ids = stored_ids(data / "events.sqlite")
        assert len(ids) == len(set(ids)) and acknowledged <= set(ids)  # each once, none lost
    assert unanswered == KILLS and len(answers) > KILLS  # the kills did land between (and in) requests

    server, url = start(env, tmp_path)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for index, batch in enumerate(batches):
                answers.append((index, client.post("/events", json={"events": batch}).json()))
    finally:
        server.kill()
        server.wait(timeout=30)
    sent = {e["event_id"] for batch in batches for e in batch}
    assert sorted(stored_ids(data / "events.sqlite")) == sorted(sent)
    accepted: dict[int, int] = {}
    for index, answer in answers:
        assert answer["accepted"] + answer["duplicates"] == BATCH
        accepted[index] = accepted.get(index, 0) + answer["accepted"]
    assert all(n <= BATCH for n in accepted.values())  # no event counted twice, however often it was sent
    assert sum(accepted.values()) <= len(sent)
