"""`nextwatch serve --workers 2`: every worker follows a new build generation, a killed server takes its
workers with it, and `/metrics` adds up the requests of all workers (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from pipelines import generations
from services.serving.server import METRICS_PREFIX
from services.settings import Settings
from services.stores.generations import resolve_generation
from tests.support.servers import free_port, private_copy, wait_for
from tests.support.tmdb_data import cli_env

pytestmark = pytest.mark.integration
REQUESTS = 120


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (uvicorn's workers, and multiprocessing's helpers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def workers(pid: int) -> list[int]:
    """The server's worker processes: the children that map the build."""
    return [c for c in children(pid) if "/builds/" in _maps(c)]


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


@contextmanager
def two_workers(data: Path, **settings: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    env = cli_env(data, NEXTWATCH_ACCESS_LOG="false", **settings)
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(server, url)
        deadline = time.monotonic() + 120
        while len(workers(server.pid)) < 2:  # the second may still be opening the build
            assert time.monotonic() < deadline, "two workers did not start"
            time.sleep(0.2)
        yield server, url
    finally:
        server.terminate()
        server.communicate(timeout=60)


def many(url: str, n: int = REQUESTS) -> list[httpx.Response]:
    """`n` requests, 8 at a time, each on a new connection (so the kernel hands them to either worker)."""
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: httpx.get(url), range(n)))


def test_two_workers_both_follow_a_new_generation(built_settings: Settings, tmp_path: Path) -> None:
    settings = private_copy(built_settings, tmp_path / "data")
    with two_workers(settings.data_dir, NEXTWATCH_RELOAD_POLL_SECONDS="0.2") as (server, url):
        old = httpx.get(f"{url}/ready").headers["X-Build-Generation"]
        new = generations.begin(settings)  # a copy of the served build, switched in as a build would
        generations.commit(settings, new)
        assert new != old
        deadline = time.monotonic() + 60
        pids = workers(server.pid)
        while not all(f"/builds/{new}/" in _maps(pid) for pid in pids):
            assert time.monotonic() < deadline, "a worker did not open the new generation"
            time.sleep(0.2)
        seen = set()  # a worker maps the new build before it swaps it in: wait for the swaps
        while seen != {new}:
            assert time.monotonic() < deadline, f"still answering from {seen}"
            seen = {r.headers["X-Build-Generation"] for r in many(f"{url}/ready")}
        assert workers(server.pid) == pids  # followed, not restarted
        server.kill()  # SIGKILL: the workers must not serve on unsupervised
        while any(Path(f"/proc/{pid}").exists() and _state(pid) != "Z" for pid in pids):
            assert time.monotonic() < deadline + 30, "a worker outlived its killed server"
            time.sleep(0.2)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_metrics_of_two_workers_add_up(built_settings: Settings, tmp_path: Path) -> None:
    settings = private_copy(built_settings, tmp_path / "data")
    with two_workers(settings.data_dir, NEXTWATCH_RELOAD_POLL_SECONDS="0") as (server, url):
        movie = httpx.get(f"{url}/movies/random").json()
        movie_id = (movie["items"][0] if "items" in movie else movie)["movie_id"]
        ready = many(f"{url}/ready", 40)  # each worker has every part, the embedded vectors included
        assert {r.status_code for r in ready} == {200}, {r.text for r in ready}
        answers = many(f"{url}/movies/{movie_id}/recommendations")
        assert {r.status_code for r in answers} == {200}
        assert len({r.headers["X-Request-ID"] for r in answers}) == REQUESTS
        text = httpx.get(f"{url}/metrics").text  # counted: these, not /ready
        counted = re.findall(
            r'^nextwatch_http_requests_total\{[^}]*route="/movies/\{movie_id\}/recommendations"[^}]*\} (\S+)$',
            text,
            re.M,
        )
        assert sum(float(c) for c in counted) == REQUESTS
        for pid in workers(server.pid):  # forks of the server, which imported the app once, not spawned interpreters
            assert Path(f"/proc/{pid}/cmdline").read_bytes() == Path(f"/proc/{server.pid}/cmdline").read_bytes()
        directory = metrics_dir(server.pid)
        assert len(list(directory.glob("counter_*.db"))) == 2  # both workers answered and counted
    assert not directory.exists()  # removed when the server stopped


def metrics_dir(server: int) -> Path:
    """The private metrics directory `serve` made (named with its process id), which its workers count into."""
    (directory,) = Path(tempfile.gettempdir()).glob(f"{METRICS_PREFIX}{server}-*")
    return directory


def test_workers_take_the_facts_read_before_the_fork_once_and_only_for_their_unchanged_catalog(
    built_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.serving import runtime as runtime_module
    from services.stores.catalog import Catalog

    settings = resolve_generation(private_copy(built_settings, tmp_path / "data"))  # as open_runtime sees it
    runtime_module.read_facts_before_fork(settings)
    held = runtime_module._read_before_fork
    assert held is not None and len(held[1])

    def not_read(self: Catalog) -> None:
        raise AssertionError("a worker read the facts again")

    monkeypatch.setattr(Catalog, "movie_facts", not_read)
    rt = runtime_module.open_runtime(settings, serving=True)
    try:
        assert rt.facts is held[1]  # the server's arrays, not a copy
    finally:
        rt.close()
    with pytest.raises(AssertionError, match="read the facts again"):  # taken once: a reload reads its own
        runtime_module.open_runtime(settings, serving=True)
    monkeypatch.undo()

    runtime_module.read_facts_before_fork(settings)  # another catalog's facts are not taken
    other = Catalog(f"sqlite:///{tmp_path / 'elsewhere.sqlite'}")
    assert runtime_module._facts_read_before_fork(other) is None and runtime_module._read_before_fork is None
    other.close()
    runtime_module.read_facts_before_fork(settings)  # nor those of a catalog written since
    catalog = Catalog(settings.catalog_url)
    with catalog.transaction() as conn:
        conn.exec_driver_sql("UPDATE movie SET adult = 'Y' WHERE movie_id = (SELECT min(movie_id) FROM movie)")
    assert runtime_module._facts_read_before_fork(catalog) is None
    catalog.close()
    # no server listens there: nothing is read, not even a connection made
    served_elsewhere = settings.model_copy(update={"database_url": "postgresql+psycopg://nextwatch@127.0.0.1:9/none"})
    runtime_module.read_facts_before_fork(served_elsewhere)  # a database server's catalog: each worker reads it
    assert runtime_module._read_before_fork is None
