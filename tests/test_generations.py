"""Build generations: a build is made beside the served one and switched in whole; a running server picks
it up without a failed request; a failed build changes nothing; the last two generations are kept; a killed
build's generation is discarded, never the served one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from pipelines import steps
from pipelines.status import status_lines
from services.settings import Settings
from services.stores.generations import current_generation, generations
from tests.support.servers import private_copy, running_server
from tests.support.tmdb_data import cli_env, nextwatch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(built_settings: Settings, tmp_path: Path) -> Settings:
    same = {name: built_settings.flat(name) for name in ("als_factors", "als_iterations")} | {
        "source": built_settings.source
    }
    return private_copy(built_settings, tmp_path / "data", **same)


def test_builds_switch_generations_and_keep_the_last_two(settings: Settings) -> None:
    data = settings.data_dir
    first = current_generation(data)
    assert first is not None and generations(data) == [first]
    steps.build(settings, progress=False)  # nothing changed: no new generation
    assert generations(data) == [first]
    assert status_lines(settings)[-1].startswith("next: nothing to build")

    retrained = settings.updated(als_factors=12)
    results = steps.build(retrained, progress=False)
    assert results["train"] is not None and results["catalog"] is None  # only what changed is redone
    second = current_generation(data)
    assert second != first and generations(data) == [first, second]
    time.sleep(1.1)  # generation ids have a one-second resolution (and a suffix within one second)
    steps.build(settings.updated(als_factors=10), progress=False)
    third = current_generation(data)
    assert generations(data) == [second, third]  # the oldest is pruned
    assert (data / "builds" / third / "catalog.sqlite").is_file()
    assert "stale: train (its inputs changed)" in "\n".join(status_lines(settings))  # 16 factors asked


def test_a_failed_build_leaves_the_served_generation(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    data = settings.data_dir
    before = current_generation(data)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(steps, "BUILD_ORDER", tuple((n, broken if n == "train" else s) for n, s in steps.BUILD_ORDER))
    with pytest.raises(RuntimeError, match="the disk is full"):
        steps.build(settings.updated(als_factors=12), progress=False)
    assert current_generation(data) == before and generations(data) == [before]


def test_a_build_while_serving_swaps_in_without_a_failed_request(settings: Settings) -> None:
    served = settings.updated(reload_poll_seconds=0.2)
    failures: list[str] = []
    answered = 0
    stop = threading.Event()
    with running_server(served) as url:
        old = httpx.get(f"{url}/ready").headers["X-Build-Generation"]

        def hammer() -> None:
            nonlocal answered
            with httpx.Client(base_url=url, timeout=10) as client:
                while not stop.is_set():
                    for path in (
                        "/movies/1/recommendations?k=10",
                        "/movies/1",
                        "/movies/2/recommendations?strategy=vector",
                    ):
                        response = client.get(path)
                        if response.status_code != 200:
                            failures.append(f"{path}: {response.status_code} {response.text[:200]}")
                        answered += 1

        threads = [threading.Thread(target=hammer) for _ in range(2)]
        for thread in threads:
            thread.start()
        env = {
            **os.environ,
            "NEXTWATCH_DATA_DIR": str(settings.data_dir),
            "NEXTWATCH_SOURCE": str(settings.source),
            "NEXTWATCH_ALS_FACTORS": "12",
            "NEXTWATCH_ALS_ITERATIONS": "5",
            "PYTHONPATH": str(ROOT),
        }
        build = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "build", "--quiet"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert build.returncode == 0, build.stderr
        new = current_generation(settings.data_dir)
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/ready").headers["X-Build-Generation"] != new:
            assert time.monotonic() < deadline, "the server did not pick up the new generation"
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()
    assert new != old and answered > 0 and failures == []


def test_a_build_killed_mid_way_never_costs_the_served_generation(settings: Settings) -> None:
    """`nextwatch build --force` killed with SIGKILL once its generation exists, then a build that
    switches: the killed build's generation is discarded and the served one kept (a server reads it)."""
    data = settings.data_dir
    served = current_generation(data)
    env = cli_env(data, NEXTWATCH_SOURCE=str(settings.source), NEXTWATCH_ALS_FACTORS="16")
    killed = nextwatch(["build", "--force", "--quiet"], env, data.parent)
    deadline = time.monotonic() + 120
    while generations(data) == [served] and killed.poll() is None:
        assert time.monotonic() < deadline, "the build made no generation"
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, "the build ended before it was killed"
    (abandoned,) = set(generations(data)) - {served}
    (data / "builds" / abandoned / "killed").touch()  # the next build may reuse its id within one second

    steps.build(settings.updated(als_factors=12), progress=False)
    new = current_generation(data)
    assert generations(data) == [served, new] and not list(data.glob("builds/*/killed"))
    assert (data / "builds" / str(served) / "catalog.sqlite").is_file()
