"""Readers never create files, and a read-only data dir is served: the catalog is opened read-only (a
deleted catalog is reported missing, not made again empty); on a read-only volume `nextwatch serve`
answers with every part, and the writers stop in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.serving.runtime import open_runtime
from services.settings import Settings
from services.stores.catalog import Catalog
from services.stores.errors import ArtifactError
from services.stores.generations import resolve_generation
from tests.support.servers import free_port, private_copy
from tests.support.tmdb_data import cli_env

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def read_only(data: Path) -> Iterator[list[str]]:
    """A prefix for a command line that runs it with `data` read-only. A normal user's files lose their
    write bits for the block; root, whom permissions do not stop, gets a private mount namespace in
    which `data` is a read-only bind mount (a read-only volume, as replicas share a build)."""
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in (data, *data.rglob("*"))}
        for path, mode in modes.items():
            path.chmod(mode & ~0o222)
        try:
            yield []
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    prefix = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, str(data)]
    try:
        probe = subprocess.run([*prefix, "sh", "-c", f"! touch '{data}/probe'"], capture_output=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no unshare(1) to make a read-only mount as root")
    if probe.returncode != 0:
        pytest.skip(f"no read-only mount for root here: {probe.stderr.decode()[:200]}")
    yield prefix


def test_a_reader_never_creates_the_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    reader = Catalog(f"sqlite:///{path}", read_only=True)
    with pytest.raises(ArtifactError, match=r"catalog .* is missing: run `nextwatch catalog`"):
        reader.count_movies()
    assert not path.exists()
    writer = Catalog(f"sqlite:///{path}")
    writer.create_schema()
    writer.close()
    assert reader.ping() and reader.count_movies() == 0
    path.unlink()
    assert reader.ping() is False  # its open connection still reads the deleted file
    reader.close()


def test_ready_reports_a_deleted_catalog_missing(built_settings: Settings, tmp_path: Path) -> None:
    settings = private_copy(built_settings, tmp_path / "data", reload_poll_seconds=0)
    catalog = resolve_generation(settings).build_dir / "catalog.sqlite"
    with TestClient(create_app(settings)) as client:
        assert client.get("/ready").status_code == 200
        catalog.unlink()
        response = client.get("/ready")
    assert response.status_code == 503 and response.json()["parts"]["catalog"] == "missing"
    with pytest.raises(ArtifactError, match="is missing: run `nextwatch catalog`"):
        open_runtime(settings)
    assert not catalog.exists()


@pytest.mark.parametrize("command", [["build", "--quiet"], ["evaluate", "--quiet"]])
def test_writers_stop_in_one_line_on_a_read_only_data_dir(tmp_path: Path, command: list[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "ratings.parquet").write_bytes(b"")
    with read_only(data) as prefix:
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "pipelines.cli", *command],
            env=cli_env(data),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1 and done.stderr == f"error: data dir not writable: {data}\n", done.stderr
    assert sorted(p.name for p in data.iterdir()) == ["ratings.parquet"]


def test_a_read_only_data_dir_is_served(built_settings: Settings, tmp_path: Path) -> None:
    settings = private_copy(built_settings, tmp_path / "data")
    data = settings.data_dir
    before = sorted(str(p) for p in data.rglob("*"))
    port = free_port()
    with read_only(data) as prefix:
        server = subprocess.Popen(
            [*prefix, sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port)],
            env=cli_env(data),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, server.communicate()[1][-2000:]
                assert time.monotonic() < deadline, "the server did not start"
                try:
                    ready = httpx.get(f"{url}/ready")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert ready.status_code == 200, ready.text
            assert set(ready.json()["parts"].values()) == {"ok"}
            assert httpx.get(f"{url}/movies/1/recommendations?strategy=vector&k=5").status_code == 200
        finally:
            server.send_signal(signal.SIGTERM)
            server.communicate(timeout=60)
    assert sorted(str(p) for p in data.rglob("*")) == before  # the server wrote nothing
